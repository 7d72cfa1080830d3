"""Monkey-patched agents: gevent's `patch_all()` and eventlet's
`monkey_patch()` first, as `gunicorn -k gevent`, `celery -P gevent` /
`-P eventlet` and many agents run. Threads are greenlets there, sharing
one OS thread and a hub: a call that waits in native code stops every
greenlet unless it waits elsewhere. Each case runs in a fresh interpreter
of its own (with a timeout: a hang fails, not stalls the suite) and
judges what the loopback receiver got (decoded by opentelemetry-proto):
every span once, with its ~30 KB prompt; the library's news in
`logging`; and a greenlet ticking all along, which must keep ticking
while a flush waits for a slow backend."""

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
import spanguard
from conftest import read_sink
from receiver_client import OtlpReceiverProcess
from test_celery import Worker, assert_task_spans_once
from test_servers import gunicorn_stopped_by_sigterm_delivers_every_span

PROMPT_BYTES = 30_000
GREENLETS = 40

# Patched first, before anything else is imported, as the green libraries ask.
PATCH = {
    "gevent": """
        from gevent import monkey
        monkey.patch_all()
        import gevent
        spawn, sleep = gevent.spawn, gevent.sleep
        def join_all(greenlets):
            gevent.joinall(greenlets, raise_error=True)
    """,
    "eventlet": """
        import eventlet
        eventlet.monkey_patch()
        spawn, sleep = eventlet.spawn, eventlet.sleep
        def join_all(greenlets):
            for g in greenlets:
                g.wait()
    """,
}

# What every program does after the patch: news kept from logging (with
# the thread that logged it), a greenlet that ticks every 5 ms, and the
# spans: GREENLETS greenlets each ending one with a 30 KB prompt, through
# spanguard's own API or the OpenTelemetry SDK with spanguard's bridge.
AGENT = """
    import json, logging, os, sys, threading, time
    import spanguard

    news = []

    class KeepNews(logging.Handler):
        def emit(self, record):
            news.append((getattr(record, "spanguard_event_name", None), record.threadName))

    logging.getLogger("spanguard").addHandler(KeepNews())
    logging.getLogger("spanguard").setLevel(logging.DEBUG)

    ticks = 0

    def ticker():
        global ticks
        while True:
            ticks += 1
            sleep(0.005)

    spawn(ticker)
    tracer = spanguard.Tracer(from_env=False, service_name="green-agent", endpoint=os.environ["ENDPOINT"],
                              spool_dir=os.environ["SPOOL"], schedule_delay_ms=50,
                              install_signal_handlers=os.environ.get("SIGNALS") == "1")
    PROMPT = "p" * {prompt_bytes}

    if os.environ["API"] == "otel":
        from opentelemetry.sdk.trace import TracerProvider
        from spanguard.otel import SpanguardSpanProcessor
        provider = TracerProvider()
        provider.add_span_processor(SpanguardSpanProcessor(tracer))
        otel_tracer = provider.get_tracer("green")

        def one(name):
            with otel_tracer.start_as_current_span(name, attributes={{"gen_ai.prompt": PROMPT}}):
                sleep(0)

        def flush():
            return provider.force_flush(60_000)

        def shutdown():
            provider.shutdown()  # the bridge shuts the tracer down
            return tracer.stats().spans_exported == tracer.stats().spans_ended
    else:
        def one(name):
            with tracer.span(name, attributes={{"gen_ai.prompt": PROMPT}}):
                sleep(0)

        def flush():
            return tracer.flush(60)

        def shutdown():
            return tracer.shutdown(60)

    def record(prefix):
        join_all([spawn(one, f"{{prefix}}-{{i}}") for i in range({greenlets})])

    def ticking(wait):
        \"\"\"What `wait` said, and how often the ticker ran while it waited.\"\"\"
        before = ticks
        said = wait()
        return said, ticks - before

    def say(**what):
        print(json.dumps(what), flush=True)

    def result(greenlet):
        return greenlet.get() if hasattr(greenlet, "get") else greenlet.wait()
"""


def program(green: str, body: str, first: str = "") -> str:
    """`first` (a program's own start, usually nothing), the patch, AGENT and `body`."""
    return "\n".join(textwrap.dedent(part) for part in (
        first, PATCH[green], AGENT.format(prompt_bytes=PROMPT_BYTES, greenlets=GREENLETS), body))


def run(green: str, body: str, rx: OtlpReceiverProcess, tmp_path, api: str = "native",
        stdin=subprocess.DEVNULL, first: str = "", **env) -> subprocess.Popen:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("SPANGUARD_", "OTEL_"))},
           "ENDPOINT": rx.traces_url, "SPOOL": str(tmp_path / "spool"), "API": api, **env}
    return subprocess.Popen([sys.executable, "-c", program(green, body, first)], stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)


def said_next(proc: subprocess.Popen, timeout: float = 120) -> dict:
    """The program's next line (a JSON object); killed and failed when it
    says nothing in time."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        raise AssertionError(f"the program said nothing:\n{proc.communicate()[1]}")
    line = proc.stdout.readline()
    assert line.startswith("{"), line + proc.communicate()[1]
    return json.loads(line)


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, list[dict], str]:
    """The program's exit code, what it said (a JSON object a line) and its
    stderr; killed and failed when it hangs."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the program hung:\n{out}\n{err}") from None
    return proc.returncode, [json.loads(line) for line in out.splitlines() if line.startswith("{")], err


def assert_every_span_once(rx: OtlpReceiverProcess, prefixes: tuple[str, ...]) -> None:
    want = {f"{prefix}-{i}" for prefix in prefixes for i in range(GREENLETS)}
    spans = rx.wait_for_spans(len(want), timeout_s=60)
    got = Counter(s["name"] for s in spans)
    assert set(got) == want, f"missing {sorted(want - set(got))[:5]}, unexpected {sorted(set(got) - want)[:5]}"
    assert set(got.values()) == {1}, f"spans arrived twice: {[k for k, v in got.items() if v > 1][:5]}"
    assert not rx.duplicate_spans()
    assert {len(s["attributes"]["gen_ai.prompt"]) for s in spans} == {PROMPT_BYTES}


@pytest.mark.parametrize("api", ["native", "otel"])
@pytest.mark.parametrize("green", ["gevent", "eventlet"])
def test_other_greenlets_run_while_a_flush_waits_for_a_slow_backend(tmp_path, green, api):
    """The backend takes 1 s to answer each request. A flush, then a
    shutdown, wait for it on an OS thread of the green library's pool: the
    ticker greenlet ran while they did. (Waiting on the hub's own thread,
    with the GIL let go, they stopped every greenlet: the ticker, and in a
    server every request, ticked 0 times in the seconds it took.) 1 s,
    not more: the bridge's shutdown gives the tracer 5 s, and two slow
    requests over a loaded machine's time spooled the last spans (seen)."""
    with OtlpReceiverProcess(sys.executable, delay_s=1.0) as rx:
        proc = run(green, """
            record("slow")
            flushed, ticked = ticking(flush)
            say(done=flushed, ticked=ticked)
            record("last")
            shut_down, ticked = ticking(shutdown)
            say(done=shut_down, ticked=ticked)
        """, rx, tmp_path, api=api)
        code, said, err = finish(proc)
        assert code == 0, err
        assert [s["done"] for s in said] == [True, True], err
        # 1 s at a tick each 5 ms is 200; a loaded machine gives fewer.
        flush, shutdown = (s["ticked"] for s in said)
        assert flush >= 10, f"the other greenlets stood still during the flush: {said}"
        assert shutdown >= 10, f"the other greenlets stood still during the shutdown: {said}"
        assert_every_span_once(rx, ("slow", "last"))


@pytest.mark.parametrize("green", ["gevent", "eventlet"])
def test_news_reaches_logging_and_every_span_arrives_once_at_exit(tmp_path, green):
    """The backend answers 503 until the library spools what it could
    not send, then 200: the news of it reaches `logging` by the reader
    thread, which is an OS thread named spanguard-log in `threading` too,
    not an anonymous "Dummy-1"; the program leaves at its end without a
    hang, and every span arrives once (spooled, then sent by the next start)."""
    with OtlpReceiverProcess(sys.executable, mode="status:503") as rx:
        proc = run(green, """
            record("news")
            flush()
            # The reader logs what comes after the flush, in the greenlets' time.
            deadline = time.monotonic() + 60
            while not news:
                assert time.monotonic() < deadline, "no news reached logging"
                sleep(0.05)
            say(news=news, threads=[t.name for t in threading.enumerate()])
            sys.stdin.readline()  # the backend is back
            say(flushed=flush())
        """, rx, tmp_path, stdin=subprocess.PIPE)
        said = said_next(proc)
        rx.reset_mode()
        proc.stdin.write("back\n")
        proc.stdin.flush()
        code, _, err = finish(proc)
        assert code == 0, err
        news = said["news"]
        assert news, err
        print("news:", sorted({name for name, _ in news}), sorted({thread for _, thread in news}))
        assert not [t for _, t in news if t.startswith("Dummy")], news
        assert not [t for t in said["threads"] if t.startswith("Dummy")], said["threads"]
        assert "Traceback" not in err, err
        # What the library spooled is sent by the next tracer to start with
        # that spool directory (a restarted worker): each span once.
        with spanguard.Tracer(from_env=False, service_name="green-agent", endpoint=rx.traces_url,
                              spool_dir=tmp_path / "spool", install_signal_handlers=False) as next_start:
            next_start.flush(30)
        assert_every_span_once(rx, ("news",))


@pytest.mark.parametrize("green", ["gevent", "eventlet"])
def test_sigterm_delivers_every_span(tmp_path, green):
    """A SIGTERM while the greenlets sleep (a server idle between
    requests): the library's signal watchdog delivers what was ended, and
    the process dies of the signal, not hangs."""
    with OtlpReceiverProcess(sys.executable) as rx:
        proc = run(green, """
            record("term")
            say(ready=True)
            while True:
                sleep(0.05)
        """, rx, tmp_path, SIGNALS="1")
        assert said_next(proc) == {"ready": True}
        proc.send_signal(signal.SIGTERM)
        code, _, err = finish(proc, timeout=60)
        assert code == -signal.SIGTERM, err
        assert_every_span_once(rx, ("term",))


def test_a_fork_under_gevent_sends_the_childs_spans_and_the_parents(tmp_path):
    """os.fork is gevent's under patch_all: the child (a gunicorn gevent
    worker's way to start) records in greenlets of its own, leaves through
    sys.exit, and its spans arrive; the parent's too, each once."""
    with OtlpReceiverProcess(sys.executable) as rx:
        proc = run("gevent", """
            record("parent")
            pid = os.fork()
            if pid == 0:
                record("child")
                sys.exit(0)
            _, status = os.waitpid(pid, 0)
            say(child_exit=os.waitstatus_to_exitcode(status))
        """, rx, tmp_path)
        code, said, err = finish(proc)
        assert code == 0, err
        assert said == [{"child_exit": 0}], err
        assert_every_span_once(rx, ("parent", "child"))


@pytest.mark.parametrize("setup", ["post_fork", "preload"])
def test_gunicorn_gevent_workers_deliver_every_span_at_sigterm(tmp_path, setup):
    """gunicorn -k gevent, two workers (each patches itself after the
    fork), spanguard set up after the fork or in the master (--preload,
    before any patch): gunicorn's graceful stop gives every span, once."""
    gunicorn_stopped_by_sigterm_delivers_every_span(tmp_path, setup, "-k", "gevent")


@pytest.mark.parametrize("pool", ["gevent", "eventlet"])
def test_celery_green_pool_delivers_every_task_span_at_sigterm(tmp_path, pool):
    """`celery worker -P gevent` / `-P eventlet` (Celery patches before it
    loads the app, which makes its tracer at import): ten tasks, each in a
    greenlet, tracing through both APIs with a 20 KB prompt, then the warm
    shutdown a SIGTERM starts: every task span arrives once and the
    worker leaves."""
    class GreenWorker(Worker):
        def start(self):
            self.command = [{"--pool=prefork": f"--pool={pool}", "--concurrency=2": "--concurrency=10"}.get(c, c)
                            for c in self.command]
            super().start()

    worker = GreenWorker(tmp_path)
    tasks = range(10)
    worker.send(*(f"work:{t}" for t in tasks))
    for t in tasks:
        worker.mark(f"done-{t}")
    assert worker.stop(signal.SIGTERM) == 0, worker.log_text()[-3000:]
    assert_task_spans_once(worker.spans(), tasks, instrumented=False)


README = Path(__file__).resolve().parents[3] / "README.md"

# README's tasks.py sent as `python tasks.py` does, but written whole into
# the queue (kombu 5.7.0's filesystem transport writes a message in place, and
# a worker polling then can read it empty: celery/kombu#1551, see Worker.send).
SEND_README_TASK = textwrap.dedent("""
    import os

    import tasks

    tasks.app.conf.broker_transport_options = {"data_folder_in": "outbox", "data_folder_out": "outbox"}
    os.makedirs("outbox", exist_ok=True)
    result = tasks.chat.delay("flights to Lisbon")
    for message in sorted(os.listdir("outbox")):
        os.rename(os.path.join("outbox", message), os.path.join("broker", message))
    print(result.get(timeout=60))
""")


def readme_python_example(name: str) -> str:
    """The ```python block README marks `<!-- example: NAME ...-->`."""
    after = README.read_text().split(f"<!-- example: {name} ", 1)[1]
    return after.split("```python\n", 1)[1].split("\n```", 1)[0] + "\n"


@pytest.mark.parametrize("pool", ["gevent", "eventlet"])
def test_readme_celery_example_traces_its_task_under_a_green_pool(tmp_path, pool):
    """README's tasks.py, word for word, under `celery worker -P gevent` and
    `-P eventlet` ("nothing changes in your code"): its task's trace is
    run/tasks.chat with llm.chat under it, as under prefork. A green pool
    has no children, so Celery sends no worker_process_init, where the
    example instrumented Celery: only llm.chat arrived, the task's own span
    never made."""
    (tmp_path / "tasks.py").write_text(readme_python_example("tasks.py"))
    (tmp_path / "send.py").write_text(SEND_README_TASK)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPANGUARD_", "OTEL_"))}
    env.update(SPANGUARD_SINK_DIR=str(tmp_path / "spans"), SPANGUARD_SPOOL_DIR=str(tmp_path / "spool"),
               XDG_STATE_HOME=str(tmp_path / "state"))
    log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "tasks", "worker", f"--pool={pool}",
                               "--concurrency=2", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                              cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        sent = subprocess.run([sys.executable, "send.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120)
        assert sent.stdout == "3 flights to Lisbon\n", sent.stderr + (tmp_path / "worker.log").read_text()[-3000:]
        os.kill(worker.pid, signal.SIGTERM)  # the warm shutdown
        assert worker.wait(timeout=60) == 0, (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    spans = read_sink(tmp_path / "spans")
    got = Counter(s["name"] for s in spans)
    assert got == {"run/tasks.chat": 1, "llm.chat": 1}, f"{dict(got)}: the task's trace is run/tasks.chat, llm.chat"
    run, llm = (next(s for s in spans if s["name"] == name) for name in ("run/tasks.chat", "llm.chat"))
    assert (llm["trace_id"], llm["parent_span_id"]) == (run["trace_id"], run["span_id"]), "llm.chat not under the run"
    assert len(llm["attributes"]["gen_ai.prompt"]) > 20_000


# A tracer of 16 slots (8 queued, 8 open) whose exporter a slow backend
# holds: its first span is in the request the backend sits on, and 16 more
# spans, ended, fill every slot behind it. A third greenlet's begin then
# finds every slot taken, under the default full policy `wait`.
FULL = """
    small = spanguard.Tracer(from_env=False, service_name="green-full", endpoint=os.environ["ENDPOINT"],
                             spool_dir=os.environ["SPOOL"], schedule_delay_ms=20, max_queue_size=8,
                             max_open_spans=8, max_export_batch_size=4, full_wait_ms=int(os.environ["WAIT_MS"]),
                             install_signal_handlers=False)

    def hold_every_slot():
        small.start_span("first").end()
        sleep(0.3)  # the exporter sends it; the backend holds the request
        for i in range(16):
            small.start_span(f"fill-{i}").end()

    def begin_when_full():
        before = ticks
        # ATTRS: a begin with attributes (short: they never wait for chunks).
        attributes = {"gen_ai.system": "openai"} if os.environ.get("ATTRS") == "1" else None
        span = small.start_span("waiter", attributes=attributes)
        ticked = ticks - before
        span.end()
        return ticked

    join_all([spawn(hold_every_slot)])
    waiter = spawn(begin_when_full)
    join_all([waiter])
    ticked = result(waiter)
    # AGAIN: one more begin, with the slots still taken.
    again = spawn(begin_when_full) if os.environ.get("AGAIN") == "1" else None
    if again is not None:
        join_all([again])
    small.flush(60)
    s = small.stats()
    say(ticked=ticked, ticked_again=None if again is None else result(again), dropped=s.dropped_buffer_full,
        exported=s.spans_exported, slot_waits=s.slot_waits, slot_wait_ns=s.slot_wait_ns)
"""


def said_once(green: str, body: str, rx: OtlpReceiverProcess, tmp_path, first: str = "", **env) -> dict:
    """What the program said, once, having left with 0."""
    proc = run(green, body, rx, tmp_path, first=first, **env)
    code, said, err = finish(proc)
    assert code == 0, err
    [said] = said
    return said


def begin_when_full(green: str, rx: OtlpReceiverProcess, tmp_path, wait_ms: int, **env) -> dict:
    """What FULL said: how often the ticker ran while the waiter's begin
    ran, and the small tracer's counts; the greenlet let the hub run while
    it waited (at a tick each 5 ms, a loaded machine gives fewer)."""
    said = said_once(green, FULL, rx, tmp_path, WAIT_MS=str(wait_ms), **env)
    assert said["ticked"] >= 10, f"the other greenlets stood still while the begin waited: {said}"
    return said


def names_once(rx: OtlpReceiverProcess, n: int) -> Counter:
    spans = rx.wait_for_spans(n, timeout_s=60)
    got = Counter(s["name"] for s in spans if s["name"] != "first")
    assert set(got.values()) <= {1}, got
    return got


@pytest.mark.parametrize("attrs", ["none", "attributes"])
@pytest.mark.parametrize("green", ["gevent", "eventlet"])
def test_other_greenlets_run_while_a_begin_waits_for_a_slot(tmp_path, green, attrs):
    """Every slot taken, the backend answers after 2 s: the waiting
    begin lets the hub run (the ticker ticked while it waited; in native
    code it stopped every greenlet of the worker, 0 ticks), and once the
    backend answers, the exporter gives slots back and the begin gets one:
    every span arrives once, none dropped. A begin with attributes too:
    its wait for a slot is counted as one (it was counted nowhere: the
    begin could not tell it from a wait for payload chunks)."""
    with OtlpReceiverProcess(sys.executable, delay_s=2.0) as rx:
        said = begin_when_full(green, rx, tmp_path, 30_000, ATTRS="1" if attrs == "attributes" else "0")
        assert said["dropped"] == 0, said
        assert said["exported"] == 18, said
        # The wait is counted as a native one is (stats and `spanguard
        # why` said no begin waited: 0 and 0).
        assert said["slot_waits"] == 1 and said["slot_wait_ns"] > 0, said
        got = names_once(rx, 18)
        assert set(got) == {f"fill-{i}" for i in range(16)} | {"waiter"}, got
        if attrs == "attributes":
            [waiter] = [s for s in rx.wait_for_spans(18, timeout_s=60) if s["name"] == "waiter"]
            assert waiter["attributes"] == {"gen_ai.system": "openai"}, waiter["attributes"]


@pytest.mark.parametrize("green", ["gevent", "eventlet"])
def test_a_begin_whose_wait_runs_out_in_a_greenlet_drops_and_counts_its_span(tmp_path, green):
    """Every slot taken, the backend answers after 3 s, full_wait_ms 300:
    the begin lets the hub run for its 300 ms, then does what the policy
    does when the wait runs out, at once: the span is dropped and counted
    in dropped_buffer_full, no other lost. (A last begin that may wait,
    there, stopped the hub for another full_wait_ms.) The next begin,
    the slots still taken, drops and counts at once as a native one does
    after a wait in vain: it never lets the hub run (it let it run for
    another whole full_wait_ms, each begin, the ticker ticking)."""
    with OtlpReceiverProcess(sys.executable, delay_s=3.0) as rx:
        said = begin_when_full(green, rx, tmp_path, 300, AGAIN="1")
        assert said["dropped"] == 2, said
        assert said["ticked_again"] == 0, f"the next begin waited at the hub again: {said}"
        # One wait, the greenlet's at the hub, counted as a native one; it
        # did not wait in native code at its deadline too (2).
        assert said["slot_waits"] == 1 and said["slot_wait_ns"] > 0, said
        assert said["exported"] == 17, said
        got = names_once(rx, 17)
        assert set(got) == {f"fill-{i}" for i in range(16)}, got


# A tracer of a 1 MiB payload pool whose exporter a slow backend holds: its
# first span is in the request the backend sits on, and a 900 KB filler,
# ended and queued behind it, holds most of the pool. A 300 KB value then
# waits for the filler's chunks, which come back once the backend answers
# and the exporter encodes the filler.
POOL_USED_UP = """
    pooled = spanguard.Tracer(from_env=False, service_name="green-pool", endpoint=os.environ["ENDPOINT"],
                              spool_dir=os.environ["SPOOL"], schedule_delay_ms=20, payload_pool_mib=1,
                              full_wait_ms=30_000, export_timeout_ms=120_000, request_timeout_ms=120_000,
                              compression="none", install_signal_handlers=False)
    pooled.start_span("first").end()
    sleep(0.3)  # the exporter sends it; the backend holds the request
    filler = pooled.start_span("filler")
    filler.set_attribute("input.value", "f" * int(os.environ.get("FILLER", 900_000)))
    filler.end()

    def say_pool(**what):
        pooled.flush(60)
        s = pooled.stats()
        say(payload_waits=s.payload_waits, cut=s.payload_waits_cut, truncated=s.values_truncated,
            exported=s.spans_exported, slot_waits=s.slot_waits, **what)
"""

# A greenlet's 300 KB value (HOW: set_attribute, a one-string array,
# set_attributes, an event's or a link's attribute, an ERROR status's
# message; VALUE_BYTES another length, after FILL short values) finds the
# pool used up.
POOL = POOL_USED_UP + """
    def set_when_the_pool_is_used_up(how):
        span = pooled.start_span("waiter")
        # FILL short values first: most of the span's own 2 KiB arena.
        for i in range(int(os.environ.get("FILL", "0"))):
            span.set_attribute(f"k{i}", "s" * 250)
        value = "w" * int(os.environ.get("VALUE_BYTES", "300000"))
        before = ticks
        if how == "set_attribute":
            span.set_attribute("output.value", value)
        elif how == "string_array":
            span.set_attribute("output.value", [value])
        elif how == "set_attributes":
            span.set_attributes({"output.value": value, "n": 1})
        elif how == "add_link":
            span.add_link(LINKED, {"output.value": value})
        elif how == "add_link_ids":
            span.add_link_ids(0x1111, 0x2222, 1, {"output.value": value})
        elif how == "set_status":
            span.set_status(spanguard.STATUS_ERROR, value)
        else:
            span.add_event("gen_ai.choice", {"output.value": value})
        ticked = ticks - before
        span.end()
        return ticked

    LINKED = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    setter = spawn(set_when_the_pool_is_used_up, os.environ["HOW"])
    join_all([setter])
    say_pool(ticked=result(setter))
"""


def waited_value(span: dict, how: str):
    """Where HOW put the 300 KB value in the exported span."""
    if how == "add_event":
        return span["events"][0]["attributes"]["output.value"]
    if how.startswith("add_link"):
        return span["links"][0]["attributes"]["output.value"]
    if how == "set_status":
        assert span["status_code"] == 2, span["status_code"]
        return span["status_message"]
    return span["attributes"]["output.value"]


@pytest.mark.parametrize("how", ["set_attribute", "string_array", "set_attributes", "add_event", "add_link",
                                 "add_link_ids", "set_status"])
@pytest.mark.parametrize("green", ["gevent", "eventlet"])
def test_other_greenlets_run_while_a_value_waits_for_the_payload_pool(tmp_path, green, how):
    """An LLM-sized value (300 KB) finds the payload pool used up behind a
    backend that answers after 3 s: it waits for chunks on an OS thread of
    the green library's pool, and the ticker ticked meanwhile (waiting in
    native code on the hub's own thread, it stopped every greenlet of the
    worker until the chunks came back: 0 ticks). The value arrives whole,
    waited for once, nothing cut."""
    with OtlpReceiverProcess(sys.executable, delay_s=3.0) as rx:
        said = said_once(green, POOL, rx, tmp_path, HOW=how)
        assert said["ticked"] >= 10, f"the other greenlets stood still while the value waited: {said}"
        assert (said["payload_waits"], said["cut"], said["truncated"]) == (1, 0, 0), said
        assert said["exported"] == 3, said
        [waiter] = [s for s in rx.wait_for_spans(3, timeout_s=60) if s["name"] == "waiter"]
        assert waited_value(waiter, how) == (["w" * 300_000] if how == "string_array" else "w" * 300_000)


# The filler takes every chunk of the pool (256 of 4 KiB: 255 for its value,
# one to list those past the slot's 16). POOL's span fills most of its own
# 2 KiB arena with 7 short values, then a short value (400 bytes) finds no
# room left there, and the pool used up.
EVERY_CHUNK = 255 * 4096



@pytest.mark.parametrize("how", ["set_attribute", "set_attributes", "add_event", "add_link", "set_status"])
@pytest.mark.parametrize("green", ["gevent", "eventlet"])
def test_other_greenlets_run_while_a_short_value_waits_for_the_payload_pool(tmp_path, green, how):
    """A short value (400 bytes, which runs in place) finds its span's
    arena full and the payload pool used up behind a backend that answers
    after 3 s: it waits for a chunk on an OS thread of the green
    library's pool, and the ticker ticked meanwhile (it waited on the
    hub's own thread, stopping every greenlet of the worker: 0 ticks).
    Every value arrives whole, waited for once, nothing cut."""
    with OtlpReceiverProcess(sys.executable, delay_s=3.0) as rx:
        said = said_once(green, POOL, rx, tmp_path, HOW=how, FILLER=str(EVERY_CHUNK), FILL="7", VALUE_BYTES="400")
        assert said["ticked"] >= 10, f"the other greenlets stood still while the value waited: {said}"
        assert (said["payload_waits"], said["cut"], said["truncated"]) == (1, 0, 0), said
        assert said["exported"] == 3, said
        [waiter] = [s for s in rx.wait_for_spans(3, timeout_s=60) if s["name"] == "waiter"]
        assert waited_value(waiter, how) == "w" * 400
        assert [waiter["attributes"][f"k{i}"] for i in range(7)] == ["s" * 250] * 7


# A program that records spans before it patches (gevent or eventlet
# imported after spanguard, as some agents do): every short setter has
# asked whether a green library is loaded, and heard no, many times by then.
RECORDS_BEFORE_THE_PATCH = """
    import spanguard
    early = spanguard.Tracer(from_env=False, endpoint="discard:", install_signal_handlers=False)
    for _ in range(100):
        s = early.start_span("before-the-patch")
        s.set_attribute("gen_ai.system", "openai")
        s.set_attributes({"n": 1})
        s.add_event("e", {"n": 1})
        s.add_link("00-" + "1" * 32 + "-" + "2" * 16 + "-01", {"n": 1})
        s.set_status(spanguard.STATUS_ERROR, "short")
        s.end()
    early.shutdown(10)
"""


@pytest.mark.parametrize("green", ["gevent", "eventlet"])
def test_a_library_patched_after_spanguard_answered_no_still_keeps_greenlets_running(tmp_path, green):
    """The short-value case above in a program that recorded spans before
    it patched: the setters, having found no green library a hundred
    times each, find it once it is loaded, and a short value that waits
    for a chunk waits on the pool while the ticker ticks (an answer kept
    from before the patch had it wait on the hub's own thread: 0 ticks)."""
    with OtlpReceiverProcess(sys.executable, delay_s=3.0) as rx:
        said = said_once(green, POOL, rx, tmp_path, first=RECORDS_BEFORE_THE_PATCH, HOW="set_attribute",
                         FILLER=str(EVERY_CHUNK), FILL="7", VALUE_BYTES="400")
        assert said["ticked"] >= 10, f"the other greenlets stood still while the value waited: {said}"
        assert (said["payload_waits"], said["cut"], said["truncated"]) == (1, 0, 0), said
        [waiter] = [s for s in rx.wait_for_spans(3, timeout_s=60) if s["name"] == "waiter"]
        assert waiter["attributes"]["output.value"] == "w" * 400


# A program with no green library: its setters of every kind, a thousand
# spans, then an import (sys.modules grows), and what spanguard looked up.
LOOKS = """
    import json, sys
    import spanguard
    from spanguard import _native

    tracer = spanguard.Tracer(from_env=False, endpoint="discard:", install_signal_handlers=False)

    def record(n):
        for i in range(n):
            s = tracer.start_span("op", attributes={"n": i})
            s.set_attribute("gen_ai.usage.input_tokens", i)
            s.set_attribute("gen_ai.request.model", "gpt-4o")
            s.set_attribute("tags", ["a", "b"])
            s.set_attributes({"stream": True, "gen_ai.system": "openai"})
            s.add_event("retry", {"attempt": 2})
            s.add_link("00-" + "1" * 32 + "-" + "2" * 16 + "-01", {"n": 1})
            s.set_status(spanguard.STATUS_ERROR, "timed out")
            s.end()

    record(10)  # whatever spanguard imports as it first records, imported
    before = _native._green_looks()
    record(1000)
    after_the_spans = _native._green_looks()
    assert "colorsys" not in sys.modules
    import colorsys  # noqa: F401
    record(1)
    print(json.dumps({"spans": after_the_spans - before, "import": _native._green_looks() - after_the_spans}))
"""


def test_setters_of_a_program_without_a_green_library_do_not_look_for_one_each_time():
    """Every setter asks whether gevent or eventlet is loaded (under them a
    setter that would wait runs on their pool of OS threads): a thousand
    spans of seven setters each looked in `sys.modules` 7,000 times, the
    most of what a short setter cost beyond its call into the library, in
    a program that never imports either. The answer is kept until
    `sys.modules` changes: a handful of looks then, and one more once the
    program imports a module (gevent, after spans were recorded, is found:
    `test_a_library_patched_after_spanguard_answered_no_still_keeps_greenlets_running`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPANGUARD_", "OTEL_"))}
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(LOOKS)], capture_output=True, text=True,
                         env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    looks = json.loads(run.stdout)
    # Another thread's import meanwhile (spanguard's log reader, at its
    # first news) is a look more.
    assert looks["spans"] <= 3, f"the setters looked for gevent or eventlet each time: {looks}"
    assert looks["import"] >= 1, f"the import was not seen: {looks}"


# Two greenlets on one span: the setter's 300 KB value waits for chunks on
# an OS thread of the green library's pool, holding the span meanwhile;
# the ender ends the span then, from the hub's own thread (HOW: end, or
# end at a given time as the OpenTelemetry bridge does).
END_WHILE_HELD = POOL_USED_UP + """
    shared = pooled.start_span("shared")

    def long_setter():
        shared.set_attribute("output.value", "w" * 300_000)

    def ender(how):
        sleep(0.5)  # the setter holds the span by now, waiting for chunks
        before = ticks
        if how == "end_at":
            shared.end(time.time_ns())
        elif how == "short_set":
            shared.set_attribute("gen_ai.system", "openai")
        else:
            shared.end()
        ticked = ticks - before
        if how == "short_set":
            shared.end()
        return ticked

    setter, ending = spawn(long_setter), spawn(ender, os.environ["HOW"])
    join_all([setter, ending])
    say_pool(ticked=result(ending))
"""


@pytest.mark.parametrize("how", ["end", "end_at", "short_set"])
@pytest.mark.parametrize("green", ["gevent", "eventlet"])
def test_other_greenlets_run_while_an_end_waits_for_a_setter_on_the_pool(tmp_path, green, how):
    """Greenlet B's 300 KB value waits for payload chunks on an OS thread
    of the green library's pool, holding the span; greenlet A ends that
    span meanwhile. The end waits for B's hold (as every write of a span
    waits for another holder), on an OS thread of the pool too: the ticker
    ticked meanwhile (the end waited on the hub's own thread, and every
    greenlet of the worker stood still until B's wait ended: 0 ticks).
    The value and the end both land, once: the span arrives once, whole.
    A short value set meanwhile (short_set) waits for B's hold there too
    (it waited on the hub's thread: 0 ticks), then the end."""
    with OtlpReceiverProcess(sys.executable, delay_s=3.0) as rx:
        said = said_once(green, END_WHILE_HELD, rx, tmp_path, HOW=how)
        assert said["ticked"] >= 10, f"the other greenlets stood still while the end waited: {said}"
        assert (said["payload_waits"], said["cut"], said["truncated"]) == (1, 0, 0), said
        assert said["exported"] == 3, said
        spans = rx.wait_for_spans(3, timeout_s=60)
        [shared] = [s for s in spans if s["name"] == "shared"]
        assert shared["attributes"]["output.value"] == "w" * 300_000
        if how == "short_set":
            assert shared["attributes"]["gen_ai.system"] == "openai"
        assert shared["end"] >= shared["start"] > 0
        assert not rx.duplicate_spans()


# A greenlet begins a span with a 300 KB attribute while the pool is used
# up (every slot free): its begin waits for chunks, not for a slot.
BEGIN_POOL = POOL_USED_UP + """
    def begin_when_the_pool_is_used_up():
        before = ticks
        span = pooled.start_span("waiter", attributes={"output.value": "w" * 300_000})
        ticked = ticks - before
        span.end()
        return ticked

    beginner = spawn(begin_when_the_pool_is_used_up)
    join_all([beginner])
    say_pool(ticked=result(beginner))
"""


@pytest.mark.parametrize("green", ["gevent", "eventlet"])
def test_a_green_begin_waiting_for_payload_chunks_is_no_slot_wait(tmp_path, green):
    """A begin whose 300 KB attribute finds the payload pool used up (a
    slot free) lets the hub run while it waits, and its wait is not
    counted as a wait for a slot: slot_waits said 1, and `spanguard why`
    told the user to raise max_open_spans when the payload pool was short."""
    with OtlpReceiverProcess(sys.executable, delay_s=3.0) as rx:
        said = said_once(green, BEGIN_POOL, rx, tmp_path)
        assert said["ticked"] >= 10, f"the other greenlets stood still while the begin waited: {said}"
        assert said["slot_waits"] == 0, f"a wait for payload chunks counted as a wait for a slot: {said}"
        assert said["exported"] == 3, said
        [waiter] = [s for s in rx.wait_for_spans(3, timeout_s=60) if s["name"] == "waiter"]
        assert waiter["attributes"]["output.value"] == "w" * 300_000
