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
    # A hang guard, not a speed check (the deadline is 2 s): a hook that
    # waited for the flush held the process until the wait's 60 s ran out.
    assert took < 30, f"hung: the process ended {took:.1f} s after its SIGTERM, its flush deadline 2 s"


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


# The watchdog's hook thread is started by the library, not by Python:
# caught inside the interpreter by its finalization (the main thread went
# on to exit), it is ended as it takes the interpreter's lock back, and
# the process aborts (SIGABRT) instead of dying of its SIGTERM. `before`:
# the signal lands before the exit, and the hook is still in the SDK's
# flush as the main thread exits; `after`: it lands at exit, after
# spanguard's own exit hook (an atexit callback registered before spanguard
# was imported runs after it). The hook waits inside Python (2 s at most)
# for the last atexit callback, which lets it go as its last act: the main
# thread, holding the interpreter's lock, goes on to finalize the
# interpreter, and gives the lock up there to write what stdout holds.
FINALIZED_UNDER_THE_HOOK = textwrap.dedent("""
    import atexit
    import os
    import signal
    import sys
    import threading

    when = sys.argv[1]
    in_the_hook = threading.Event()
    let_go = threading.Event()
    main_thread = threading.get_ident()


    def last_at_exit():
        if when == "after":
            os.kill(os.getpid(), signal.SIGTERM)
            in_the_hook.wait(30)  # the hook, let into Python, is in the SDK's flush
        let_go.set()


    atexit.register(last_at_exit)  # registered first, runs last: after spanguard's

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    import spanguard
    from spanguard.otel import SpanguardSpanExporter


    class Provider(TracerProvider):
        def force_flush(self, timeout_millis=30000):
            if threading.get_ident() != main_thread:  # the watchdog's hook
                in_the_hook.set()
                let_go.wait(2)
            return super().force_flush(timeout_millis)


    # Not shut down at exit by the SDK for `after` (its exporter stays live,
    # and the hook set, after spanguard's exit hook flushed it).
    provider = Provider(shutdown_on_exit=(when == "before"))
    provider.add_span_processor(BatchSpanProcessor(SpanguardSpanExporter(spanguard.Tracer(service_name="fin")),
                                                   schedule_delay_millis=60000))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("agent")
    for n in range(40):
        with tracer.start_as_current_span("request", attributes={"n": n}):
            pass
    if when == "before":
        os.kill(os.getpid(), signal.SIGTERM)
        in_the_hook.wait(30)
    print("done")  # kept in stdout's buffer (a pipe) until the finalization
""")


def run_finalized_under_the_hook(tmp_path, when):
    (tmp_path / "fin.py").write_text(FINALIZED_UNDER_THE_HOOK)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPANGUARD_", "OTEL_"))}
    env.update(SPANGUARD_SINK_DIR=str(tmp_path / "sink"), SPANGUARD_SPOOL_DIR=str(tmp_path / "spool"),
               XDG_STATE_HOME=str(tmp_path / "state"), SPANGUARD_SIGNAL_FLUSH_TIMEOUT_MS="20000")
    proc = subprocess.run([sys.executable, str(tmp_path / "fin.py"), when], capture_output=True, text=True,
                          timeout=90, env=env)
    assert proc.returncode == -signal.SIGTERM, f"exit status {proc.returncode}:\n{proc.stderr}"
    got = sorted(s["attributes"]["n"] for s in read_sink(tmp_path / "sink"))
    assert got == list(range(40)), f"{len(got)} of 40 spans arrived:\n{proc.stderr}"


def test_a_signal_whose_hook_is_in_python_as_the_program_exits_still_ends_it(tmp_path):
    """SIGTERM, then the program ends while the watchdog's hook is inside
    Python (the SDK's flush): the exit waits for the hook and for the
    watchdog, so the interpreter is not finalized under it. It was: the
    hook's thread, ended as it took the interpreter's lock back, aborted
    the process (SIGABRT, a crash for a supervisor), spans delivered."""
    run_finalized_under_the_hook(tmp_path, "before")


def test_a_signal_at_exit_after_spanguards_exit_hook_leaves_python_alone(tmp_path):
    """SIGTERM at exit, after spanguard's exit hook shut the tracers down
    (an atexit callback that runs after it): the watchdog's hook does not
    enter Python any more, whose finalization is near. It did, and was
    caught there by the finalization: SIGABRT instead of SIGTERM."""
    run_finalized_under_the_hook(tmp_path, "after")


# A fork by one thread while another holds what arming the signal flush
# takes. The child has one thread, the forking one: what the other held
# stays held there for good, and the child's next arming (its exporter made
# or shut down: a pre-fork server's worker starting its tracer, a
# multiprocessing worker's) waited forever. Each case holds it for a second
# while the main thread forks; the child arms, and dies of its alarm if it
# cannot.
FORK_WHILE_HELD = textwrap.dedent("""
    import os, signal, sys, threading, time
    import spanguard.otel
    from spanguard import _native

    held = threading.Event()

    class Hook:
        # The hook replaced, let go of inside set_before_signal_flush: its
        # finalizer lets the main thread in while the setter is not done.
        def __call__(self, deadline):
            return False

        def __del__(self):
            held.set()
            time.sleep(1)

    def hold_the_arm_lock():
        with spanguard.otel._arm_lock:
            held.set()
            time.sleep(1)

    if sys.argv[1] == "native":
        _native.set_before_signal_flush(Hook())
        holder = threading.Thread(target=_native.set_before_signal_flush, args=(None,))
    else:
        holder = threading.Thread(target=hold_the_arm_lock)
    holder.start()
    assert held.wait(10)
    pid = os.fork()
    if pid == 0:
        signal.alarm(5)
        if sys.argv[1] == "native":
            _native.set_before_signal_flush(None)
        else:
            spanguard.otel._arm_signal_flush()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    holder.join()
    print("exited" if os.WIFEXITED(status) else f"died of signal {os.WTERMSIG(status)}")
""")


def run_fork_while_held(tmp_path, what):
    (tmp_path / "held.py").write_text(FORK_WHILE_HELD)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPANGUARD_", "OTEL_"))}
    env.update(SPANGUARD_SINK_DIR=str(tmp_path / "sink"), SPANGUARD_SPOOL_DIR=str(tmp_path / "spool"))
    proc = subprocess.run([sys.executable, "-W", "ignore", str(tmp_path / "held.py"), what], capture_output=True,
                          text=True, timeout=60, env=env)
    assert (proc.returncode, proc.stdout) == (0, "exited\n"), proc.stderr


def test_a_fork_while_another_thread_sets_the_flush_hook_leaves_the_child_able_to_set_it(tmp_path):
    """The native slot for the hook: a std Mutex, held by a setter while
    the hook it replaced was let go of (and by the watchdog's thread as it
    waited for the hook to be taken away)."""
    run_fork_while_held(tmp_path, "native")


def test_a_fork_while_another_thread_arms_the_signal_flush_leaves_the_child_able_to_arm_it(tmp_path):
    """`spanguard.otel._arm_lock`, an RLock a thread held as it armed the
    flush (the GIL may pass to a forking thread meanwhile)."""
    run_fork_while_held(tmp_path, "arm")
