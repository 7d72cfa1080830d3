"""SIGTERM to a process whose spans go through the SDK's BatchSpanProcessor
to `SpanguardSpanExporter`: the spans the SDK's queue holds (here for
30 s) reach spanguard before its signal watchdog freezes the tracers,
and the signal still ends the process. The watchdog froze them at once:
those spans were refused and died with the process."""

import os
import signal
import subprocess
import sys
import textwrap
import time

from conftest import read_sink

import spanguard

SPANS = 20

CHILD = textwrap.dedent("""
    import sys
    import threading
    import time

    from opentelemetry import trace
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    import spanguard
    import spanguard.otel
    from spanguard.otel import SpanguardSpanExporter

    mode, state, count = sys.argv[1], sys.argv[2], int(sys.argv[3])

    if mode in ("shut", "live"):
        # What the watchdog calls before its flush, wrapped to say it was
        # called (it takes the interpreter's lock to run).
        flush = spanguard.otel._flush_provider_before_signal

        def said(timeout_s):
            with open(state + "/hook-called", "a") as f:
                f.write("called\\n")
            flush(timeout_s)

        spanguard.otel._flush_provider_before_signal = said


    class Stuck(SpanProcessor):
        '''Another exporter's processor whose flush never returns.'''
        def force_flush(self, timeout_millis=30000):
            threading.Event().wait()


    if mode == "own":  # the exporter's own tracer, from the variables
        exporter = SpanguardSpanExporter()
    else:  # the program's tracer, passed in
        tracer = spanguard.Tracer(from_env=False, service_name="signal-exporter", sink_dir=state + "/sink",
                                  spool_dir=state + "/spool")
        exporter = SpanguardSpanExporter(tracer)
        if mode == "stuck":
            tracer.start_span("own").end()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=30000))
    if mode == "stuck":
        provider.add_span_processor(Stuck())
    if mode == "shut":  # every exporter shut down before the signal
        exporter.shutdown()
    if mode == "direct":  # used directly, never the global provider
        spanguard.otel.flush_before_shutdown(provider)
        agent = provider.get_tracer("agent")
    else:
        trace.set_tracer_provider(provider)
        agent = trace.get_tracer("agent")
    for i in range(count):
        agent.start_span(f"queued.{i}").end()
    print("ready", flush=True)
    time.sleep(60)
""")


def run_to_sigterm(tmp_path, mode, child=CHILD, **env_extra):
    """Runs the child in `mode` until it says ready, sends it SIGTERM; its
    return code, how long it took from the signal, its stderr, and the
    names of the spans delivered (the sink, then what it spooled, which a
    later tracer on the same spool sends)."""
    script = tmp_path / "child.py"
    script.write_text(child)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPANGUARD_", "OTEL_"))}
    env.update(SPANGUARD_SINK_DIR=str(tmp_path / "sink"), SPANGUARD_SPOOL_DIR=str(tmp_path / "spool"),
               SPANGUARD_SIGNAL_FLUSH_TIMEOUT_MS="2000", **env_extra)
    proc = subprocess.Popen([sys.executable, str(script), mode, str(tmp_path), str(SPANS)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n", proc.stderr.read()
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        took = time.monotonic() - signalled
    finally:
        proc.kill()
    after = spanguard.Tracer(from_env=False, sink_dir=tmp_path / "sink", spool_dir=tmp_path / "spool",
                             install_signal_handlers=False)
    assert after.shutdown(30)
    after.close()
    return proc.returncode, took, proc.stderr.read(), sorted(s["name"] for s in read_sink(tmp_path / "sink"))


QUEUED = sorted(f"queued.{i}" for i in range(SPANS))


def test_sigterm_hands_the_sdks_queue_to_the_exporters_own_tracer(tmp_path):
    code, _, stderr, names = run_to_sigterm(tmp_path, "own")
    assert code == -signal.SIGTERM, stderr
    assert names == QUEUED, stderr


def test_sigterm_hands_the_sdks_queue_to_a_tracer_passed_to_the_exporter(tmp_path):
    code, _, stderr, names = run_to_sigterm(tmp_path, "passed")
    assert code == -signal.SIGTERM, stderr
    assert names == QUEUED, stderr


def test_a_provider_flush_that_never_returns_holds_the_signal_up_for_its_deadline_only(tmp_path):
    # The spanguard queue was flushed first (the SDK flushes its processors
    # in order), so its spans arrive too; the stuck one is given up on.
    code, took, stderr, names = run_to_sigterm(tmp_path, "stuck")
    assert code == -signal.SIGTERM, stderr
    assert names == sorted(QUEUED + ["own"]), stderr
    assert took < 30, f"took {took:.1f} s"  # a bound far from any timing: the deadline is 2 s


def test_sigterm_hands_the_queue_of_a_provider_used_directly_once_named(tmp_path):
    # Never set as the global provider: the watchdog flushed only that one,
    # and this provider's queue died with the process.
    code, _, stderr, names = run_to_sigterm(tmp_path, "direct")
    assert code == -signal.SIGTERM, stderr
    assert names == QUEUED, stderr


def test_the_watchdog_calls_the_flush_hook_while_an_exporter_is_live(tmp_path):
    code, _, stderr, _ = run_to_sigterm(tmp_path, "live")
    assert code == -signal.SIGTERM, stderr
    assert (tmp_path / "hook-called").read_text() == "called\n", stderr


def test_the_watchdog_leaves_python_alone_once_every_exporter_is_shut_down(tmp_path):
    # It took the interpreter's lock at every signal to find nothing to
    # flush; now the hook is taken away when the last exporter shuts down.
    code, _, stderr, _ = run_to_sigterm(tmp_path, "shut")
    assert code == -signal.SIGTERM, stderr
    assert not (tmp_path / "hook-called").exists(), stderr


# The README's way with spanguard's signal watchdog off: the application's
# own SIGTERM handler, a normal exit. The provider is made before spanguard
# is imported, so the SDK's atexit shutdown runs after spanguard's (atexit
# runs the last registered first): spanguard's flushes the SDK first.
OWN_HANDLER_CHILD = textwrap.dedent("""
    import signal
    import sys
    import time

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    mode, state, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    provider = TracerProvider()

    from spanguard.otel import SpanguardSpanExporter

    provider.add_span_processor(BatchSpanProcessor(SpanguardSpanExporter(), schedule_delay_millis=30000))
    trace.set_tracer_provider(provider)
    # Python's default SIGTERM ends the process with no exit hooks run: a
    # normal exit instead runs them (the SDK's shutdown, spanguard's).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    agent = trace.get_tracer("agent")
    for i in range(count):
        agent.start_span(f"queued.{i}").end()
    print("ready", flush=True)
    time.sleep(60)
""")


def test_with_the_watchdog_off_an_own_sigterm_handler_delivers_the_sdks_queue(tmp_path):
    code, _, stderr, names = run_to_sigterm(tmp_path, "own", child=OWN_HANDLER_CHILD,
                                            SPANGUARD_SIGNAL_HANDLERS="false")
    assert code == 128 + signal.SIGTERM, stderr
    assert names == QUEUED, stderr


def test_with_the_watchdog_on_an_own_sigterm_handler_delivers_the_sdks_queue(tmp_path):
    # The application's handler, set after spanguard's, takes the signal
    # from the watchdog: the exit hooks are what deliver.
    code, _, stderr, names = run_to_sigterm(tmp_path, "own", child=OWN_HANDLER_CHILD)
    assert code == 128 + signal.SIGTERM, stderr
    assert names == QUEUED, stderr
