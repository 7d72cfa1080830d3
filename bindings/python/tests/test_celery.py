"""A real Celery worker (celery 5.7, prefork pool, kombu's filesystem://
broker: no network), its tasks tracing through both APIs (the native
Tracer and the OpenTelemetry SDK through SpanguardSpanProcessor, plus
opentelemetry-instrumentation-celery's task spans), each task span with a
20 KB prompt. The worker's main process is stopped as a container stops
it (SIGTERM: Celery's warm shutdown; SIGQUIT: its cold shutdown), and a
pool child is SIGKILLed as the OOM killer does. Every span is judged
from the sink, decoded with opentelemetry-proto."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from celery import Celery
from conftest import read_sink, session_members
from otlp_receiver import JSON, decode_request, span_dicts

# Celery gives each pool child PR_SET_PDEATHSIG=SIGKILL (to die with the
# main process), and Linux sends it when the *thread* that forked the child
# ends. With a broker Celery polls (filesystem:// here) the pool is
# billiard's threaded one, whose Supervisor thread forks the children that
# replace others (recycled, terminated) and ends at the warm shutdown: its
# children died there at once, one of them holding the job queue's shared
# lock, and the main process's pool finalizer waited for that lock at exit
# forever (1 run in ~90 of the child-terminated test under load; Celery's,
# not spanguard's). README "Celery" gives users this workaround: a child
# keeps the signal only when the main thread forked it. In the agent below,
# and judged alone by test_a_child_forked_by_a_pool_thread_outlives_it.
OUTLIVE_THE_FORKING_THREAD = textwrap.dedent('''
    import os
    import threading

    FORKED_BY_MAIN_THREAD = [True]
    os.register_at_fork(before=lambda: FORKED_BY_MAIN_THREAD.__setitem__(
        0, threading.current_thread() is threading.main_thread()))


    def outlive_the_forking_thread(**_):
        """A worker_process_init handler: Celery armed the signal just before it."""
        if not FORKED_BY_MAIN_THREAD[0]:
            from billiard.util import set_pdeathsig
            set_pdeathsig(0)
''')

AGENT = textwrap.dedent('''
    import os
    import time

    from celery import Celery
    from celery.signals import worker_process_init, worker_ready, worker_shutdown
    from opentelemetry.sdk.trace import TracerProvider

    import spanguard
    from spanguard.otel import SpanguardSpanProcessor

    tracer = spanguard.Tracer(service_name="celery-agent")  # at import, as agents do
    ZERO_CODE = os.environ.get("ROUTE") == "zero-code"
    if ZERO_CODE:  # `opentelemetry-instrument` made the provider and instruments Celery
        from opentelemetry import trace
        otel = trace.get_tracer("celery-agent")
    else:
        provider = TracerProvider()
        provider.add_span_processor(SpanguardSpanProcessor(tracer))
        otel = provider.get_tracer("celery-agent")
    PROMPT = "p" * 20_000  # an LLM-sized prompt
    HERE = os.path.dirname(os.path.abspath(__file__))
    QUEUE = os.path.join(HERE, "queue")

    app = Celery("agent", broker="filesystem://")
    app.conf.update(
        broker_transport_options={"data_folder_in": QUEUE, "data_folder_out": QUEUE, "polling_interval": 0.05},
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=1,  # each child recycled after one task
        worker_hijack_root_logger=False,
        # How long the pool waits for the result of a child that died (10 s
        # by default) before it calls the job lost: a killed or terminated
        # child's task sends none, so the default only made the stop wait.
        worker_lost_wait=1.0,
    )


    def mark(name):
        with open(os.path.join(HERE, "marks", name), "w") as f:
            f.write(str(os.getpid()))


    WORKAROUND
    worker_process_init.connect(outlive_the_forking_thread)


    @worker_process_init.connect
    def instrument_child(**_):
        # Where the instrumentation's documentation says to, for prefork.
        if not ZERO_CODE:
            from opentelemetry.instrumentation.celery import CeleryInstrumentor
            CeleryInstrumentor().instrument(tracer_provider=provider)


    if os.environ.get("USER_HANDLER"):
        from celery.signals import worker_process_shutdown

        @worker_process_shutdown.connect
        def flush_before_exit(**_):  # what a user writes on older advice: harmless, never needed
            provider.force_flush()
            tracer.flush()
            provider.shutdown()
            tracer.shutdown()
            mark(f"user-handler-{os.getpid()}")


    @worker_ready.connect
    def ready(**_):
        with tracer.span("parent.ready"):
            pass
        mark("ready")


    @worker_shutdown.connect
    def shutting_down(**_):
        with otel.start_as_current_span("parent.shutdown"):
            pass


    @app.task
    def work(t):
        with tracer.span("task.native", attributes={"task": t, "prompt": PROMPT}):
            with otel.start_as_current_span("task.otel", attributes={"task": t, "prompt": PROMPT}):
                pass
        mark(f"done-{t}")


    @app.task
    def slow(t, seconds):
        with tracer.span("task.native", attributes={"task": t, "prompt": PROMPT}):
            with otel.start_as_current_span("task.otel", attributes={"task": t, "prompt": PROMPT}):
                mark(f"busy-{t}")
                time.sleep(seconds)
        mark(f"done-{t}")
''').replace("WORKAROUND\n", OUTLIVE_THE_FORKING_THREAD)

def wait_for(path: Path, timeout_s: float = 60.0) -> str:
    deadline = time.monotonic() + timeout_s
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)
    return path.read_text()


class Worker:
    """`celery -A agent worker` (prefork, two children) in a directory of its own."""

    def __init__(self, tmp: Path, route: str = "processor", **env_extra):
        self.tmp = tmp
        (tmp / "agent.py").write_text(AGENT)
        for d in ("queue", "outbox", "marks"):
            (tmp / d).mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SPANGUARD_", "OTEL_"))}
        env.update(SPANGUARD_SINK_DIR=str(tmp / "sink"), SPANGUARD_SPOOL_DIR=str(tmp / "spool"),
                   XDG_STATE_HOME=str(tmp / "state"), ROUTE=route, **env_extra)
        command = [sys.executable, "-m", "celery", "-A", "agent", "worker", "--pool=prefork", "--concurrency=2",
                   "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO"]
        if route == "zero-code":
            env.update(OTEL_TRACES_EXPORTER="spanguard", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none",
                       OTEL_SERVICE_NAME="celery-agent")
            command = [str(Path(sys.executable).parent / "opentelemetry-instrument"), *command]
        self.env, self.command = env, command
        self.start()

    def start(self) -> None:
        """(Again after a stop: the same directory, queue, sink and spool.)"""
        for f in (self.tmp / "marks").iterdir():
            f.unlink()
        self.log = open(self.tmp / "worker.log", "a")
        self.proc = subprocess.Popen(self.command, cwd=self.tmp, env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self.mark("ready")
        except BaseException:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f"the worker never got ready: {self.log_text()[-3000:]}") from None

    def send(self, *tasks: str) -> None:
        """Queues each `name:arg:...` task, sent from this process (a
        send.py of its own paid ~3 s a send starting Python and Celery).
        kombu 5.7.0's filesystem transport writes a message in place (open,
        then write) and its reader takes whatever file it lists, without the
        writer's lock: a worker polling at that moment reads an empty message,
        and its JSONDecodeError is Celery's "Unrecoverable error" (the worker
        stops, the task is lost; celery/kombu#1551): seen here in the
        whole-worker kill test, 5 failures in 30 runs under load. So the
        messages are written to an outbox and renamed into the queue whole
        (atomic in one file system)."""
        outbox, queue = self.tmp / "outbox", self.tmp / "queue"
        app = Celery("agent", broker="filesystem://", set_as_current=False)
        app.conf.broker_transport_options = {"data_folder_in": str(queue), "data_folder_out": str(outbox),
                                             "control_folder": str(self.tmp / "control")}  # the worker's (its cwd)
        try:
            for task in tasks:
                name, *args = task.split(":")
                app.send_task(f"agent.{name}", args=[int(a) for a in args])
        finally:
            app.close()
        for message in sorted(os.listdir(outbox)):  # in the order sent (names start with a clock)
            os.rename(outbox / message, queue / message)

    def mark(self, name: str) -> str:
        return wait_for(self.tmp / "marks" / name)

    def stop(self, signum: int) -> int:
        self.proc.send_signal(signum)
        try:
            try:
                code = self.proc.wait(timeout=50)
            except subprocess.TimeoutExpired:
                # A worker that never ends: its processes' stacks, taken
                # before it is killed, are what a rare hang leaves to read.
                raise AssertionError(f"the worker did not stop: {self.log_text()[-3000:]}\n"
                                     f"{stacks_of(self.proc.pid)}") from None
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.log.close()
        deadline = time.monotonic() + 30  # the pool's children outlive the main process a moment
        while any(self._in_session()):
            assert time.monotonic() < deadline, f"left running: {self._in_session()}"
            time.sleep(0.05)
        return code

    def _in_session(self) -> list[str]:
        return session_members(self.proc.pid)

    def spans(self) -> list[dict]:
        return read_sink(self.tmp / "sink")

    def spool_left(self) -> list[str]:
        spool = self.tmp / "spool"
        # Every file but the tracers' records (outcomes/, for `spanguard why`)
        # and the key of the files' sender marks (.sender-key).
        return sorted(p.name for p in spool.rglob("*")
                      if p.is_file() and p.suffix != ".sgoutcome" and p.name != ".sender-key") if spool.exists() else []

    def log_text(self) -> str:
        return (self.tmp / "worker.log").read_text()


def stacks_of(session: int) -> str:
    """The Python and native stacks of every process of a session, by
    py-spy (`py-spy dump --native`, where SPANGUARD_PY_SPY names it or it is
    on PATH) and gdb (`thread apply all bt`: the library's own threads,
    the locks they wait on), for a test's failure message."""
    py_spy = os.environ.get("SPANGUARD_PY_SPY") or shutil.which("py-spy")
    gdb = shutil.which("gdb")
    pids = session_members(session)
    out = [f"stacks of session {session}: processes {pids}"
           + ("" if py_spy else "; no py-spy (set SPANGUARD_PY_SPY)") + ("" if gdb else "; no gdb")]
    for pid in pids:
        try:
            command_line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        out.append(f"--- {pid}: {command_line}")
        commands = []
        if py_spy:
            commands.append([py_spy, "dump", "--native", "--pid", pid])
        if gdb:
            commands.append([gdb, "-p", pid, "-batch", "-nx", "-ex", "thread apply all bt"])
        for command in commands:
            try:
                run = subprocess.run(command, capture_output=True, text=True, timeout=30)
                out.append(run.stdout + run.stderr[-2000:])
            except (OSError, subprocess.TimeoutExpired) as e:
                out.append(f"{command[0]}: {e}")
    return "\n".join(out)


def task_spans(spans: list[dict]) -> Counter:
    return Counter((s["name"], s["attributes"]["task"]) for s in spans if s["name"] in ("task.native", "task.otel"))


def marks(s: dict) -> dict:
    return {k: v for k, v in s["attributes"].items() if k.startswith("spanguard.")}


def assert_task_spans_once(spans: list[dict], tasks, instrumented: bool = True) -> None:
    """Each task's spans of both APIs (and the instrumentation's
    run/agent.* span) arrived once, with the whole prompt."""
    got = task_spans(spans)
    want = {(name, t) for t in tasks for name in ("task.native", "task.otel")}
    assert set(got) == want, f"missing {sorted(want - set(got))}, unexpected {sorted(set(got) - want)}"
    assert set(got.values()) == {1}, f"a task span arrived twice: {got}"
    for s in spans:
        if s["name"] in ("task.native", "task.otel"):
            assert len(s["attributes"]["prompt"]) == 20_000, (s["name"], len(s["attributes"]["prompt"]))
    if instrumented:
        runs = [s for s in spans if s["name"].startswith("run/agent.")]
        assert len(runs) == len(tasks), [s["name"] for s in runs]
        assert len({s["span_id"] for s in runs}) == len(tasks), "an instrumentation span arrived twice"


@pytest.mark.parametrize("route", ["processor", "zero-code", "user-handler"])
def test_recycled_children_deliver_every_span_once(tmp_path, route):
    """worker_max_tasks_per_child=1: each pool child runs one task and
    leaves through billiard's os._exit (Worker._do_exit), which skips
    atexit and multiprocessing's finalizers; with no worker_process_shutdown
    handler of the user's. Then SIGTERM to the main process: Celery's warm
    shutdown. Both routes: the bridge processor on a provider of the
    agent's (instrumented in worker_process_init), and zero-code
    (`opentelemetry-instrument`, OTEL_TRACES_EXPORTER=spanguard: a
    BatchSpanProcessor whose queue lives in each child). Every task span
    arrives once, from the child that made it, and the main process's
    spans (worker_ready, worker_shutdown) once. `user-handler`: the
    processor route with the worker_process_shutdown handler a user may
    still write (flush, then shut the provider and tracer down): spanguard's
    own shutdown after it must neither fail nor send a span twice."""
    if route == "user-handler":
        w = Worker(tmp_path, USER_HANDLER="1")
    else:
        w = Worker(tmp_path, route=route)
    w.send(*(f"work:{t}" for t in range(6)))
    pids = {w.mark(f"done-{t}") for t in range(6)}
    assert w.stop(signal.SIGTERM) == 0, w.log_text()[-3000:]
    assert len(pids) > 2, f"the pool did not recycle its two children: {pids}"
    if route == "user-handler":
        ran = {f.name.rsplit("-", 1)[1] for f in (tmp_path / "marks").glob("user-handler-*")}
        assert pids <= ran, f"the handler did not run in every child: {pids - ran}"
    spans = w.spans()
    assert_task_spans_once(spans, range(6))
    parent = sorted(s["name"] for s in spans if s["name"].startswith("parent."))
    assert parent == ["parent.ready", "parent.shutdown"], parent
    # From the child that made it: each task's native span is in the sink
    # file of the pid that marked the task done.
    for t in range(6):
        pid = (tmp_path / "marks" / f"done-{t}").read_text()
        in_file = [s for s in read_sink_file(tmp_path / "sink" / f"celery-agent-{pid}.jsonl")
                   if s["name"] == "task.native"]
        assert [s["attributes"]["task"] for s in in_file] == [t], (t, pid)
    assert w.spool_left() == []


def read_sink_file(path: Path) -> list[dict]:
    """The spans of one sink file (one process's), as read_sink decodes them."""
    spans = []
    for line in path.read_text().split("\n"):
        if line.strip():
            request, _ = decode_request(line.encode(), JSON, None, strict=True)
            spans.extend(span_dicts(request))
    return spans


def test_warm_shutdown_mid_task_delivers_the_running_tasks_spans(tmp_path):
    """SIGTERM to the main process while a task runs: Celery waits for it;
    its spans arrive once, ended as the task ended them (not marked
    interrupted or unended)."""
    w = Worker(tmp_path)
    w.send("slow:0:3")
    w.mark("busy-0")
    assert w.stop(signal.SIGTERM) == 0, w.log_text()[-3000:]
    assert (tmp_path / "marks" / "done-0").exists(), "the warm shutdown did not wait for the task"
    spans = w.spans()
    assert_task_spans_once(spans, [0])
    assert [marks(s) for s in spans] == [{}] * len(spans), [(s["name"], marks(s)) for s in spans]
    assert w.spool_left() == []


def test_cold_shutdown_mid_task_delivers_the_running_tasks_spans(tmp_path):
    """SIGQUIT to the main process (Celery's cold shutdown) while a task
    sleeps for a minute: the pool terminates its children (SIGTERM, which
    billiard turns into SystemExit in the child). The task's spans arrive
    once each, ended by that SystemExit or marked interrupted; nothing is
    left in the spool. (Celery sends no worker_shutdown at a cold one.)"""
    w = Worker(tmp_path)
    w.send("slow:0:60")
    w.mark("busy-0")
    w.stop(signal.SIGQUIT)
    assert not (tmp_path / "marks" / "done-0").exists()
    spans = w.spans()
    assert_task_spans_once(spans, [0])
    assert [s["name"] for s in spans if s["name"].startswith("parent.")] == ["parent.ready"]
    assert w.spool_left() == []


def test_a_child_terminated_mid_task_delivers_its_spans(tmp_path):
    """SIGTERM to one busy child: what `celery control revoke --terminate`,
    a hard time limit and a cgroup-wide stop (systemd's default) send it.
    Its task's spans arrive once; the pool replaces the child, whose next
    task's spans arrive once too."""
    w = Worker(tmp_path)
    w.send("slow:0:60")
    os.kill(int(w.mark("busy-0")), signal.SIGTERM)
    w.send("work:1")
    w.mark("done-1")
    assert w.stop(signal.SIGTERM) == 0, w.log_text()[-3000:]
    assert not (tmp_path / "marks" / "done-0").exists()
    assert_task_spans_once(w.spans(), [0, 1])
    assert w.spool_left() == []


def test_a_child_killed_mid_task_is_recovered_with_the_flight_recorder(tmp_path):
    """SIGKILL of one busy child (the OOM killer), flight recorder on:
    nothing runs in it, and its open spans (the task's, both APIs and the
    instrumentation's) are in its flight file, which the main process's
    running tracer sends: each once, marked interrupted, prompt whole."""
    w = Worker(tmp_path, SPANGUARD_FLIGHT_RECORDER="1")
    w.send("slow:0:60")
    killed = w.mark("busy-0")
    os.kill(int(killed), signal.SIGKILL)
    w.send("work:1")
    w.mark("done-1")
    assert w.stop(signal.SIGTERM) == 0, w.log_text()[-3000:]
    spans = w.spans()
    assert_task_spans_once(spans, [0, 1])
    for s in spans:
        interrupted = s["name"] == "run/agent.slow" or s["attributes"].get("task") == 0
        assert marks(s) == ({"spanguard.interrupted": True} if interrupted else {}), (s["name"], marks(s))
    assert not (tmp_path / "sink" / f"celery-agent-{killed}.jsonl").exists(), "the killed child sent"
    assert w.spool_left() == []


def test_a_worker_killed_whole_is_recovered_by_the_next_start(tmp_path):
    """SIGKILL of the main process and its children at once, mid-task (a
    container's stop grace period running out, an OOM kill of the cgroup),
    flight recorder on: the spans ended and not yet sent (the main
    process's worker_ready span) and the running task's (open) are in flight
    files, which the worker started next on the same spool directory
    sends, each once."""
    # Exactly once needs no batch in flight at the kill (that one may
    # arrive twice, as the README says): the main process exports nothing
    # before it (a schedule delay longer than the test), and the child that
    # ran work:1 has finished its exit (its spans sent) first.
    w = Worker(tmp_path, SPANGUARD_FLIGHT_RECORDER="1", OTEL_BSP_SCHEDULE_DELAY="600000")
    w.send("work:1")
    recycled = w.mark("done-1")
    deadline = time.monotonic() + 60
    while recycled in w._in_session():
        assert time.monotonic() < deadline, "the child that ran work:1 did not exit"
        time.sleep(0.05)
    w.send("slow:0:60")
    w.mark("busy-0")
    os.killpg(w.proc.pid, signal.SIGKILL)
    w.stop(signal.SIGKILL)
    w.start()
    w.send("work:2")
    w.mark("done-2")
    assert w.stop(signal.SIGTERM) == 0, w.log_text()[-3000:]
    spans = w.spans()
    assert_task_spans_once(spans, [0, 1, 2])
    parent = sorted(s["name"] for s in spans if s["name"].startswith("parent."))
    assert parent == ["parent.ready", "parent.ready", "parent.shutdown"], parent
    assert {s["name"] for s in spans if marks(s)} == {"task.native", "task.otel", "run/agent.slow"}
    assert w.spool_left() == []


def test_a_child_forked_by_a_pool_thread_outlives_it(tmp_path):
    """README "Celery"'s workaround, alone: a billiard pool (Celery's
    threaded one, as with a broker it polls), each child given
    PR_SET_PDEATHSIG=SIGKILL as Celery's process_initializer gives it and
    then its worker_process_init handler (OUTLIVE_THE_FORKING_THREAD). The
    child that replaces a recycled one is forked by the pool's Supervisor
    thread and waits for a job holding the job queue's lock; the Supervisor
    thread then ends, as at a warm shutdown before the child has its
    sentinel. The child lives on, and the pool's terminate (what its
    finalizer runs at the main process's exit) returns. Without the
    workaround the child died of SIGKILL there, the lock held for good, and
    the terminate waited forever: the warm shutdown that never ended."""
    script = tmp_path / "pool.py"
    script.write_text(OUTLIVE_THE_FORKING_THREAD + textwrap.dedent('''
        import signal
        import time

        import billiard
        from billiard.util import set_pdeathsig


        def process_initializer():
            set_pdeathsig(signal.SIGKILL)  # Celery's, for the child to die with the main process
            outlive_the_forking_thread()  # the worker_process_init handler


        def until(condition, what):
            deadline = time.monotonic() + 30
            while not condition():
                if time.monotonic() > deadline:
                    print(f"never: {what}", flush=True)
                    os._exit(1)
                time.sleep(0.01)


        if __name__ == "__main__":
            pool = billiard.Pool(1, initializer=process_initializer, maxtasksperchild=1)
            recycled = pool.apply(os.getpid)
            job_queue_lock = pool._inqueue._rlock._semlock
            until(lambda: any(p.pid != recycled for p in pool._pool) and job_queue_lock._get_value() == 0,
                  "a replacement child waiting for a job, the queue's lock held")
            replacement = next(p for p in pool._pool if p.pid != recycled)
            pool._worker_handler.close()  # the Supervisor thread ends, as at a warm shutdown
            pool._worker_handler.join()
            terminate = threading.Thread(target=pool.terminate, daemon=True)
            terminate.start()
            terminate.join(30)
            print("terminate returned" if not terminate.is_alive() else "terminate waited for the queue's lock",
                  "; the replacement child's exit code:", replacement.exitcode, flush=True)
            os._exit(0)
    '''))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.stdout.startswith("terminate returned"), run.stdout + run.stderr[-3000:]
    assert not run.stdout.rstrip().endswith(str(-signal.SIGKILL)), run.stdout
