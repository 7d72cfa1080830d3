"""multiprocessing workers lose nothing: a tracer made at import, a
Pool(4) mapping 8 tasks of 100 spans each, with every start method,
closed and joined or terminated by the pool's context manager. Every span
a worker ended must arrive in the sink once, and the spool directory must
be empty after the run (judged from the sink, decoded with
opentelemetry-proto)."""

import os
import subprocess
import sys
import textwrap
import time
from collections import Counter

import pytest
from conftest import read_sink, run_python, session_members

AGENT = textwrap.dedent("""
    import multiprocessing
    import os
    import sys

    import spanguard

    tracer = spanguard.Tracer(service_name="pool-agent")  # at import, as agents do


    def task(t):
        for i in range(100):
            with tracer.span("work", attributes={"task": t, "i": i}):
                pass
        return os.getpid()


    if __name__ == "__main__":
        method, how = sys.argv[1], sys.argv[2]
        ctx = multiprocessing.get_context(method)
        with tracer.span("fan-out"):
            if how == "close":
                pool = ctx.Pool(4)
                pids = pool.map(task, range(8))
                pool.close()
                pool.join()
            else:  # the context manager terminates the workers
                with ctx.Pool(4) as pool:
                    pids = pool.map(task, range(8))
        print("workers", len(set(pids)))
""")


RUNS = {}


def wait_for_session_end(sid: int, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive = session_members(sid)
        if not alive:
            return
        time.sleep(0.05)
    raise AssertionError(f"processes of the run still alive after {timeout_s}s: {alive}")


def run_pool(tmp_path_factory, method, how, agent=AGENT):
    """Runs the agent once per start method and way of ending the pool."""
    if (method, how) not in RUNS:
        tmp = tmp_path_factory.mktemp(f"{method}-{how}")
        script = tmp / "pool_agent.py"
        script.write_text(agent)
        sink, spool = tmp / "sink", tmp / "spool"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SPANGUARD_", "OTEL_"))}
        env.update(SPANGUARD_SINK_DIR=str(sink), SPANGUARD_SPOOL_DIR=str(spool), XDG_STATE_HOME=str(tmp / "state"))
        proc = subprocess.Popen([sys.executable, str(script), method, how], cwd=tmp, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        wait_for_session_end(proc.pid)  # the forkserver outlives the agent a moment
        # Every file but the tracers' records (outcomes/, for `spanguard why`)
        # and the key of the files' sender marks (.sender-key).
        left = sorted(p.name for p in spool.rglob("*")
                      if p.is_file() and p.suffix != ".sgoutcome" and p.name != ".sender-key") if spool.exists() else []
        RUNS[(method, how)] = (read_sink(sink), left)
    return RUNS[(method, how)]


METHODS = pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
HOWS = pytest.mark.parametrize("how", ["close", "terminate"])


@HOWS
@METHODS
def test_every_worker_span_arrives_once(tmp_path_factory, method, how):
    spans, _ = run_pool(tmp_path_factory, method, how)
    work = Counter((s["attributes"]["task"], s["attributes"]["i"]) for s in spans if s["name"] == "work")
    assert len(work) == 800, f"{len(work)} of 800 worker spans arrived ({method}, {how})"
    assert set(work.values()) == {1}, "a worker span arrived twice"
    assert [s["name"] for s in spans if s["name"] != "work"] == ["fan-out"]


@HOWS
@METHODS
def test_nothing_is_left_in_the_spool_directory(tmp_path_factory, method, how):
    _, left = run_pool(tmp_path_factory, method, how)
    assert left == [], f"left in the spool directory: {left}"


# Celery's prefork pool is billiard's Pool: a Celery worker's pool workers
# are this agent's. maxtasksperchild=3 over 8 tasks recycles workers while
# the pool runs (as Celery's max_tasks_per_child, max memory per child and a
# pool shrink do). Then either the pool is closed and joined (a Celery warm
# shutdown), or one more task keeps the worker busy until the pool
# terminates it (SIGTERM; an idle worker would take the pool's stop
# sentinel first and leave as a closed one does). One worker there: two
# workers terminated at once can deadlock the pool whatever is traced
# (billiard 4.3.2 blocks the pool's second SIGTERM around a worker's last
# message in the main thread only, and a worker with a second thread, such
# as spanguard's, can die holding the result queue's lock, which the other
# worker then waits for forever). Spans of both APIs: the native one and
# the OpenTelemetry SDK's through the bridge.
BILLIARD_AGENT = textwrap.dedent("""
    import os
    import sys
    import time

    import billiard
    from opentelemetry.sdk.trace import TracerProvider

    import spanguard
    from spanguard.otel import SpanguardSpanProcessor

    tracer = spanguard.Tracer(service_name="celery-agent")  # at import, as agents do
    provider = TracerProvider()
    provider.add_span_processor(SpanguardSpanProcessor(tracer))
    otel = provider.get_tracer("celery-agent")


    def task(t):
        for i in range(50):
            with tracer.span("work", attributes={"task": t, "i": i}):
                pass
            with otel.start_as_current_span("otel.work", attributes={"task": t, "i": i}):
                pass
        return os.getpid()


    def busy_task(t):
        task(t)
        open(f"busy-{t}", "w").close()
        time.sleep(120)  # until the pool terminates this worker


    if __name__ == "__main__":
        how = sys.argv[2]
        with tracer.span("fan-out"):
            if how == "close":
                pool = billiard.Pool(2, maxtasksperchild=3)
                pids = pool.map(task, range(8), chunksize=1)
                pool.close()
                pool.join()
            else:  # the context manager terminates the worker
                with billiard.Pool(1, maxtasksperchild=3) as pool:
                    pids = pool.map(task, range(8), chunksize=1)
                    pool.apply_async(busy_task, (8,))
                    deadline = time.monotonic() + 60
                    while not os.path.exists("busy-8"):
                        assert time.monotonic() < deadline, "the busy tasks did not start"
                        time.sleep(0.01)
        # The pool did recycle workers: more of them than it holds ran the tasks.
        assert len(set(pids)) > 2, f"{len(set(pids))} workers ran the 8 tasks"
""")


@HOWS
def test_every_billiard_worker_span_arrives_once(tmp_path_factory, how):
    """billiard's pool workers leave through os._exit from inside their run
    (billiard.pool.Worker._do_exit), so neither atexit nor the
    multiprocessing finalizer runs there: what a worker had ended since its
    exporter's last batch (all of it, for a worker of a few tasks) was lost,
    uncounted, each time the pool recycled, closed or terminated a worker."""
    spans, left = run_pool(tmp_path_factory, "billiard", how, agent=BILLIARD_AGENT)
    tasks = 8 if how == "close" else 9
    for name in ("work", "otel.work"):
        got = Counter((s["attributes"]["task"], s["attributes"]["i"]) for s in spans if s["name"] == name)
        assert len(got) == tasks * 50, f"{len(got)} of {tasks * 50} {name} spans arrived ({how})"
        assert set(got.values()) == {1}, f"a {name} span arrived twice"
    assert [s["name"] for s in spans if s["name"] not in ("work", "otel.work")] == ["fan-out"]
    assert left == [], f"left in the spool directory: {left}"


def test_a_billiard_process_made_right_after_import_delivers(tmp_path):
    """A tracer made right after `import billiard`, before anything loaded
    multiprocessing.util, and a billiard Process of each start method.
    billiard's fork start loads multiprocessing's registries (its util)
    only inside the child's bootstrap, after the fork hooks: the worker's
    exit hook was never armed there, and all the fork child's spans were
    lost. Every span must arrive once."""
    code = f'''
import billiard
import spanguard
tracer = spanguard.Tracer(from_env=False, service_name="procs", sink_dir={str(tmp_path / "sink")!r},
                          spool_dir={str(tmp_path / "spool")!r}, install_signal_handlers=False)
def child(method):
    for i in range(20):
        with tracer.span("child", attributes={{"method": method, "i": i}}):
            pass
if __name__ == "__main__":
    for method in ("fork", "spawn"):
        p = billiard.get_context(method).Process(target=child, args=(method,))
        p.start()
        p.join()
        assert p.exitcode == 0, (method, p.exitcode)
'''
    script = tmp_path / "procs.py"
    script.write_text(code)
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    got = Counter((s["attributes"]["method"], s["attributes"]["i"]) for s in read_sink(tmp_path / "sink"))
    assert sorted(got) == [(m, i) for m in ("fork", "spawn") for i in range(20)], sorted(got)
    assert set(got.values()) == {1}, "a span arrived twice"


def test_spans_of_forked_children_join_the_current_spans_trace(tmp_path):
    """The span current when the process forks (os.fork in a span,
    multiprocessing's fork workers made under one) is the parent of the
    children's spans, and its traceparent is the same there: they began
    new traces (the child's fresh pipeline knows no handle of the parent's)."""
    code = f'''
import json, multiprocessing, os
import spanguard
tracer = spanguard.Tracer(from_env=False, service_name="forks", sink_dir={str(tmp_path / "sink")!r},
                          spool_dir={str(tmp_path / "spool")!r}, install_signal_handlers=False)
def task(i):
    with tracer.span("worker.task"):
        pass
with tracer.span("fan-out") as root:
    pid = os.fork()
    if pid == 0:
        assert root.traceparent() and root.traceparent() == spanguard.current_span().traceparent()
        with tracer.span("forked.child"):
            pass
        tracer.close()
        os._exit(0)
    os.waitpid(pid, 0)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pool.map(task, range(2))
        pool.close()
        pool.join()
    with tracer.span("after.fork"):
        pass
    print(root.traceparent())
tracer.close()
'''
    run = run_python(code)
    assert run.returncode == 0, run.stderr
    root_trace, root_id = run.stdout.split()[-1].split("-")[1:3]
    spans = read_sink(tmp_path / "sink")
    names = sorted(s["name"] for s in spans)
    assert names == ["after.fork", "fan-out", "forked.child", "worker.task", "worker.task"], names
    for s in spans:
        if s["name"] != "fan-out":
            assert (s["trace_id"], s["parent_span_id"]) == (root_trace, root_id), s


def test_a_child_forked_while_another_thread_makes_a_tracer_exits(tmp_path):
    """A fork while another thread holds the lock of the live tracers (it
    is making or closing a tracer: `spanguard._LIVE_LOCK`, held here until
    the child is made, for a fork that lands there every time). The child
    has no such thread, so the lock stayed taken in it for good: its exit
    hook (which shuts its tracers down under that lock) hung the child at
    its exit, and the spans it had ended were never sent. The child must
    exit, with its span delivered once."""
    code = f'''
import os, signal, sys, threading
import spanguard
tracer = spanguard.Tracer(from_env=False, service_name="forks", sink_dir={str(tmp_path / "sink")!r},
                          spool_dir={str(tmp_path / "spool")!r}, install_signal_handlers=False,
                          schedule_delay_ms=60000)
held, release = threading.Event(), threading.Event()
def making_a_tracer():
    with spanguard._LIVE_LOCK:
        held.set()
        release.wait()
maker = threading.Thread(target=making_a_tracer)
maker.start()
held.wait()
pid = os.fork()
if pid == 0:
    signal.alarm(30)  # a hang is a failure, not a stuck test
    with tracer.span("in.child"):
        pass
    sys.exit(0)  # atexit: the tracers shut down
release.set()
maker.join()
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status))
tracer.close()
'''
    run = run_python(code)
    assert run.returncode == 0, run.stderr
    assert "child 0" in run.stdout, (run.stdout, run.stderr)
    names = [s["name"] for s in read_sink(tmp_path / "sink")]
    assert names.count("in.child") == 1, names


def test_a_child_forked_from_a_thread_exits_when_its_thread_ends(tmp_path):
    """A fork from a thread other than the main one (here while another
    thread records): the child's only thread is that one, and its code ends
    by leaving it (`sys.exit()` in a thread ends the thread), which ends a
    process with no other thread. The child's spanguard exporter thread
    kept it alive for good: a zombie main thread and our threads, which
    block the application's signals (SIGALRM, SIGTERM), so only SIGKILL
    ended it, its spans were never sent, and the parent's waitpid waited
    forever. Each child must exit 0, its spans delivered once."""
    code = f'''
import os, sys, threading, time
import spanguard
tracer = spanguard.Tracer(from_env=False, service_name="forks", sink_dir={str(tmp_path / "sink")!r},
                          spool_dir={str(tmp_path / "spool")!r}, install_signal_handlers=False,
                          schedule_delay_ms=100)
stop = threading.Event()
def record():
    while not stop.is_set():
        with tracer.span("parent.work"):
            pass
        time.sleep(0.0005)
def forker():
    for k in range(3):
        pid = os.fork()
        if pid == 0:
            for i in range(10):
                with tracer.span("child", attributes={{"k": k, "i": i}}):
                    pass
            sys.exit(0)  # ends this thread: the child's last one of its own
        deadline = time.monotonic() + 20
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                print("child", k, os.waitstatus_to_exitcode(status))
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                print("child", k, "stuck")
                break
            time.sleep(0.05)
recorder = threading.Thread(target=record)
recorder.start()
f = threading.Thread(target=forker)
f.start()
f.join()
stop.set()
recorder.join()
tracer.close()
'''
    run = run_python(code)
    assert run.returncode == 0, run.stderr
    assert [line for line in run.stdout.split("\n") if line.startswith("child")] == \
        ["child 0 0", "child 1 0", "child 2 0"], (run.stdout, run.stderr)
    got = Counter((s["attributes"]["k"], s["attributes"]["i"]) for s in read_sink(tmp_path / "sink")
                  if s["name"] == "child")
    assert sorted(got) == [(k, i) for k in range(3) for i in range(10)], sorted(got)
    assert set(got.values()) == {1}, "a span arrived twice"


@pytest.mark.parametrize("way", ["flush", "flight_recorder"])
def test_a_worker_leaving_through_os_exit_with_no_hook_delivers(tmp_path, way):
    """The README's two answers for a worker that leaves through os._exit
    with nothing run first (a pool of one's own; no atexit, no
    multiprocessing finalizer): flush before it (`flush`), or the flight
    recorder (`flight_recorder`), whose file the dead worker leaves and
    the parent's running tracer sends. Four forked workers of 1000 spans
    each, through the OpenTelemetry bridge: every span arrives once.
    (Without either, up to a schedule delay of what such a worker ended
    is lost: exit hooks do not run.)"""
    code = f'''
import os
import spanguard
from opentelemetry.sdk.trace import TracerProvider
from spanguard.otel import SpanguardSpanProcessor
way = {way!r}
tracer = spanguard.Tracer(from_env=False, service_name="pool", sink_dir={str(tmp_path / "sink")!r},
                          spool_dir={str(tmp_path / "spool")!r}, install_signal_handlers=False,
                          flight_recorder=way == "flight_recorder")
provider = TracerProvider()
provider.add_span_processor(SpanguardSpanProcessor(tracer))
otel = provider.get_tracer("pool")
pids = []
for w in range(4):
    pid = os.fork()
    if pid == 0:
        for i in range(1000):
            with otel.start_as_current_span("work", attributes={{"w": w, "i": i}}):
                pass
        if way == "flush":
            tracer.flush()  # what a worker's own finalizer calls before os._exit
        os._exit(0)
    pids.append(pid)
for pid in pids:
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
tracer.close()  # the parent's tracer sends what the dead workers' flight files hold
'''
    run = run_python(code)
    assert run.returncode == 0, run.stderr
    got = Counter((s["attributes"]["w"], s["attributes"]["i"]) for s in read_sink(tmp_path / "sink"))
    assert len(got) == 4000, f"{len(got)} of 4000 worker spans arrived ({way})"
    assert set(got.values()) == {1}, "a span arrived twice"
    left = sorted(p.name for p in (tmp_path / "spool").rglob("*") if p.is_file() and p.suffix != ".sgoutcome"
                  and p.name != ".sender-key")
    assert left == [], f"left in the spool directory: {left}"


FORK_WARNING = "is multi-threaded, use of fork() may lead to deadlocks in the child"


def test_from_python_3_12_a_fork_warns_of_the_tracers_threads_and_the_child_delivers(tmp_path):
    """CPython 3.12 and later warn (DeprecationWarning) at a fork in a
    process that has any thread besides the one forking, and a tracer's
    exporter and watchdog are such threads: the README tells 3.12 users
    that this warning (under pytest, -X dev, or a fork in __main__) comes
    from the tracer, and that the child delivers all the same. A fork
    before the tracer is made warns of nothing: the tracer's threads are
    the cause, not the test's."""
    code = f'''
import os
import warnings

import spanguard

def fork(in_child):
    """Forks, runs in_child there, and says what Python warned of."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pid = os.fork()
        if pid == 0:
            in_child()
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return [f"{{w.category.__name__}}: {{w.message}}" for w in caught]

def a_span():
    with tracer.span("in.child"):
        pass
    tracer.flush()

print("before the tracer:", fork(lambda: None))
tracer = spanguard.Tracer(from_env=False, service_name="fork-warning", sink_dir={str(tmp_path / "sink")!r},
                          spool_dir={str(tmp_path / "spool")!r}, install_signal_handlers=False)
print("with the tracer:", fork(a_span))
tracer.close()
'''
    run = run_python(code)
    assert run.returncode == 0, run.stderr
    before, after = run.stdout.splitlines()
    assert FORK_WARNING not in before, before
    if sys.version_info >= (3, 12):
        assert "DeprecationWarning: This process (pid=" in after and FORK_WARNING in after, after
    else:
        assert FORK_WARNING not in after, after
    assert [s["name"] for s in read_sink(tmp_path / "sink")] == ["in.child"]
