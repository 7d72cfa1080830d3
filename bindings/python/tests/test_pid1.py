"""A Python agent that is a container's PID 1 (`unshare --pid --fork`),
stopped as `docker stop` stops it: SIGTERM from outside its namespace,
then SIGKILL. Python leaves SIGTERM at its default, and a namespace's
init does not die of a signal it does not handle (pid_namespaces(7)): the
agent lives on without spanguard, and must with it. Each SIGTERM flushes
what has ended (the SDK's queue too, under SpanguardSpanExporter), the
agent records on (a thread recording all along has none of its spans
refused), and at the SIGKILL the flight recorder covers what ended since;
no span arrives twice, none is left in the spool."""

import signal
import sys
import textwrap
import time

import pytest
from conftest import read_sink
from pid1 import Pid1, why_not

import spanguard

pytestmark = pytest.mark.skipif(why_not() is not None, reason=f"no PID namespace: {why_not()}")

# After "ready", reads a command a line: "span NAME" ends a span of that
# name through `record`; each answered "ok".
COMMANDS = textwrap.dedent("""
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, name = line.strip().partition(" ")
        if command == "span":
            record(name).end()
        if command == "busy":
            # Joined, not slept on: 0.1 s is a guess a loaded machine can
            # outlast, and a thread still between a span's end and its
            # count said one span fewer than the sink then held.
            busy["stop"] = True
            busy["thread"].join()
            print(busy["ended"], flush=True)
            continue
        print("ok", flush=True)
""")

PLAIN = textwrap.dedent("""
    import os, sys, threading, time
    import spanguard

    state = sys.argv[1]
    assert os.getpid() == 1, os.getpid()
    tracer = spanguard.Tracer(from_env=False, service_name="pid1-py", sink_dir=state + "/sink",
                              spool_dir=state + "/spool", schedule_delay_ms=60000, flight_recorder=True)
    tracer.start_span("before").end()
    record = tracer.start_span

    # A thread recording all along, as a busy agent does while it is
    # told to stop; "busy" stops it and says how many it ended.
    busy = {"stop": False, "ended": 0}

    def record_all_along():
        while not busy["stop"]:
            tracer.start_span("busy").end()
            busy["ended"] += 1
            time.sleep(0.002)

    busy["thread"] = threading.Thread(target=record_all_along, daemon=True)
    busy["thread"].start()
""") + COMMANDS

# The same agent's spans through the OpenTelemetry SDK, queued for 30 s
# by its BatchSpanProcessor ahead of SpanguardSpanExporter.
BRIDGE = textwrap.dedent("""
    import os, sys
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    import spanguard
    from spanguard.otel import SpanguardSpanExporter

    state = sys.argv[1]
    assert os.getpid() == 1, os.getpid()
    tracer = spanguard.Tracer(from_env=False, service_name="pid1-otel", sink_dir=state + "/sink",
                              spool_dir=state + "/spool", schedule_delay_ms=60000, flight_recorder=True)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(SpanguardSpanExporter(tracer), schedule_delay_millis=30000))
    trace.set_tracer_provider(provider)
    agent = trace.get_tracer("agent")
    agent.start_span("before").end()
    record = agent.start_span
""") + COMMANDS


def names_in(sink) -> list[str]:
    return sorted(s["name"] for s in read_sink(sink)) if sink.exists() else []


def await_in_sink(sink, name: str, within_s: float = 10) -> bool:
    until = time.monotonic() + within_s
    needle = f'"name":"{name}"'
    while time.monotonic() < until:
        # The text first: decoding the busy thread's spans at every look
        # took seconds.
        if any(needle in f.read_text() for f in sink.glob("*.jsonl")) and name in names_in(sink):
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("program", ["plain", "bridge"])
def test_a_pid1_agent_lives_through_sigterm_flushed_each_time(tmp_path, program):
    body = PLAIN if program == "plain" else BRIDGE
    agent = Pid1([sys.executable, "-c", body, str(tmp_path)])
    sink = tmp_path / "sink"
    try:
        assert agent.line() == "ready"
        agent.signal(signal.SIGTERM)
        assert await_in_sink(sink, "before"), "the first SIGTERM flushed nothing"
        busy = 0
        if program == "plain":
            time.sleep(1)  # the busy thread records through the watchdog's work
            agent.say("busy")
            busy = int(agent.line())
        agent.say("span after")
        assert agent.line() == "ok", "the agent did not live on after SIGTERM"
        agent.signal(signal.SIGTERM)
        assert await_in_sink(sink, "after"), "the second SIGTERM flushed nothing"
        if program == "plain":
            agent.say("span unflushed")
            assert agent.line() == "ok"
        assert agent.alive()
        agent.signal(signal.SIGKILL)
        agent.wait()  # unshare's own status then says nothing: it cannot die of SIGKILL in turn
    finally:
        agent.unshare.kill()
        agent.unshare.wait()
    spool = tmp_path / "spool"
    assert not list(spool.glob("*.sgdump")), "a dump was left for a death that never came"
    # The next start: what the flight recorder kept, once.
    nxt = spanguard.Tracer(from_env=False, service_name="next", sink_dir=str(sink), spool_dir=str(spool))
    nxt.flush()
    nxt.shutdown()
    got = names_in(sink)
    # Every span the busy thread ended: none refused while the agent,
    # which the signal cannot end, went on.
    assert got.count("busy") == busy
    want = ["after", "before"] + (["unflushed"] if program == "plain" else [])
    assert [n for n in got if n != "busy"] == sorted(want)
    assert not [f for f in spool.iterdir() if f.name not in ("outcomes", ".sender-key")]


# A Python agent as PID 1 that crashes: a span ended and unflushed, one
# open, then a real fault (SIGSEGV) or os.abort(). The crash handler
# dumps and re-raises at the default, a raise the kernel drops for init;
# the fault recurs and ends it, abort() falls back to its own fault (or
# _exit). It must end, not hang, with its dump on disk for the next start.
CRASH = textwrap.dedent("""
    import ctypes, os, sys
    import spanguard

    state, how = sys.argv[1], sys.argv[2]
    assert os.getpid() == 1, os.getpid()
    tracer = spanguard.Tracer(from_env=False, service_name="pid1-crash", sink_dir=state + "/sink",
                              spool_dir=state + "/spool", schedule_delay_ms=60000)
    tracer.start_span(how + "-before").end()
    still_open = tracer.start_span(how + "-open")
    print("ready", flush=True)
    sys.stdin.readline()
    if how == "abort":
        os.abort()
    ctypes.string_at(0)
""")

# The next start, PID 1 again on the same spool (the container restarted).
NEXT = textwrap.dedent("""
    import os, sys
    import spanguard

    state = sys.argv[1]
    assert os.getpid() == 1, os.getpid()
    tracer = spanguard.Tracer(from_env=False, service_name="next", sink_dir=state + "/sink",
                              spool_dir=state + "/spool")
    tracer.flush()
    tracer.shutdown()
    print("done", flush=True)
    sys.stdin.readline()  # found by its pid before it ends
""")


def no_core_file():
    import resource
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


@pytest.mark.parametrize("how", ["segv", "abort"])
def test_a_pid1_agent_that_crashes_ends_and_the_next_pid1_sends_its_dump_once(tmp_path, how):
    agent = Pid1([sys.executable, "-c", CRASH, str(tmp_path), how], preexec_fn=no_core_file)
    try:
        assert agent.line() == "ready"
        agent.say("crash")
        # 20 s: the dump takes milliseconds; a hang or a spin ends here.
        status = agent.wait(timeout=20)
    finally:
        agent.unshare.kill()
        agent.unshare.wait()
    # abort() as PID 1 ends by glibc's fallback (hlt, SIGSEGV on x86-64),
    # or _exit(127) where there is none.
    ends = {-signal.SIGSEGV} if how == "segv" else {-signal.SIGSEGV, -signal.SIGILL, -signal.SIGTRAP,
                                                    -signal.SIGABRT, 127}
    assert status in ends, status
    spool = tmp_path / "spool"
    assert len(list(spool.glob("*.sgdump"))) == 1, sorted(f.name for f in spool.iterdir())
    nxt = Pid1([sys.executable, "-c", NEXT, str(tmp_path)])
    try:
        assert nxt.line() == "done"
        nxt.say("bye")
        assert nxt.wait() == 0
    finally:
        nxt.unshare.kill()
        nxt.unshare.wait()
    assert names_in(tmp_path / "sink") == sorted([f"{how}-before", f"{how}-open"])
    assert not [f for f in spool.iterdir() if f.name not in ("outcomes", ".sender-key")]


# A Python agent as PID 1 that sends crash signals to itself, at their
# default disposition: os.kill(os.getpid(), ...), signal.raise_signal. The
# kernel drops them for init (the sender is the process, not the kernel),
# and without spanguard the agent goes on; with it, it must go on
# recording. The crash handler took them for abort()'s raise: it dumped,
# froze every tracer and re-raised in vain, and every later span was lost.
# (A SIGABRT of its own is still taken for abort()'s: tests/c/test_pid1.c.)
RAISED = textwrap.dedent("""
    import os, signal, sys
    import spanguard

    state = sys.argv[1]
    assert os.getpid() == 1, os.getpid()
    tracer = spanguard.Tracer(from_env=False, service_name="pid1-raised", sink_dir=state + "/sink",
                              spool_dir=state + "/spool", schedule_delay_ms=60000)
    tracer.start_span("raised-before").end()
    os.kill(os.getpid(), signal.SIGFPE)
    os.kill(os.getpid(), signal.SIGSEGV)
    signal.raise_signal(signal.SIGBUS)
    tracer.start_span("raised-after").end()
    tracer.flush()
    tracer.shutdown()
    print("done", flush=True)
    sys.stdin.readline()  # found by its pid before it ends
""")


def test_a_pid1_agent_that_raises_crash_signals_on_itself_records_on(tmp_path):
    agent = Pid1([sys.executable, "-c", RAISED, str(tmp_path)], preexec_fn=no_core_file)
    try:
        assert agent.line() == "done"
        agent.say("bye")
        assert agent.wait(timeout=20) == 0
    finally:
        agent.unshare.kill()
        agent.unshare.wait()
    assert names_in(tmp_path / "sink") == ["raised-after", "raised-before"]
    spool = tmp_path / "spool"
    assert not list(spool.glob("*.sgdump")), "a dump was left for a death that never came"


# A Python agent as PID 1 with handlers of its own: signal.signal for
# SIGTERM (a graceful stop's), Python's own for SIGINT (KeyboardInterrupt),
# none for SIGHUP. Each signal flushes what has ended, each handler runs
# and the agent goes on; every span it records, in the handlers and
# after them, arrives once; nothing is dumped. (A handler set after the
# tracer is the program's alone: the watchdog does not see that signal.)
HANDLED = textwrap.dedent("""
    import os, signal, sys
    import spanguard

    state = sys.argv[1]
    assert os.getpid() == 1, os.getpid()

    def on_term(signum, frame):
        tracer.start_span("in-term-handler").end()
        print("term", flush=True)

    # Before the tracer, as Python's own SIGINT handler is: the watchdog
    # goes over both, flushes, and hands each signal back to them.
    signal.signal(signal.SIGTERM, on_term)
    tracer = spanguard.Tracer(from_env=False, service_name="pid1-handled", sink_dir=state + "/sink",
                              spool_dir=state + "/spool", schedule_delay_ms=60000)
    tracer.start_span("before").end()
    print("ready", flush=True)
    while True:
        try:
            line = sys.stdin.readline()
        except KeyboardInterrupt:
            tracer.start_span("after-interrupt").end()
            print("interrupted", flush=True)
            continue
        if not line:
            break
        command, _, name = line.strip().partition(" ")
        if command == "span":
            tracer.start_span(name).end()
            print("ok", flush=True)
        if command == "stop":
            tracer.shutdown()
            sys.exit(0)
""")


def test_a_pid1_agent_with_handlers_runs_them_and_records_on(tmp_path):
    agent = Pid1([sys.executable, "-c", HANDLED, str(tmp_path)])
    sink = tmp_path / "sink"
    try:
        assert agent.line() == "ready"
        agent.signal(signal.SIGTERM)
        assert agent.line() == "term", "the program's SIGTERM handler did not run"
        assert await_in_sink(sink, "before"), "SIGTERM flushed nothing"
        agent.signal(signal.SIGINT)
        assert agent.line() == "interrupted", "Python's SIGINT handler did not run"
        agent.signal(signal.SIGHUP)  # no handler: dropped for init, flushed
        assert await_in_sink(sink, "after-interrupt"), "SIGHUP flushed nothing"
        agent.say("span after")
        assert agent.line() == "ok", "the agent did not live on after SIGHUP"
        agent.say("stop")
        assert agent.wait(timeout=20) == 0
    finally:
        agent.unshare.kill()
        agent.unshare.wait()
    assert names_in(sink) == ["after", "after-interrupt", "before", "in-term-handler"]
    spool = tmp_path / "spool"
    assert not list(spool.glob("*.sgdump")), "a dump was left for a death that never came"
