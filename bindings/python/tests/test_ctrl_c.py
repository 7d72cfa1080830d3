"""Ctrl-C (and a SIGTERM the program handles itself) with spanguard's
signal watchdog on, its default. The watchdog flushes, then hands the
signal to the handler that was there before (Python's). It raised it on
its own thread, where CPython's handler only notes the signal for the
main thread, and nothing woke that thread: `time.sleep(20)` saw Ctrl-C
20 s later, and a busy loop never (the KeyboardInterrupt surfaced in an
atexit hook). Now the handler runs on the thread the signal arrived on,
and the tracers are thawed before that thread goes on, so the spans the
program records as it stops are taken too."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from conftest import read_sink, sigint_as_at_a_terminal

CHILD = textwrap.dedent("""
    import signal
    import sys
    import time

    import spanguard

    how, sink = sys.argv[1], sys.argv[2]


    class Stop(Exception):
        pass


    def stop(signum, frame):
        raise Stop()


    signal.signal(signal.SIGTERM, stop)  # before spanguard's
    tracer = spanguard.Tracer(from_env=False, service_name="ctrl-c", sink_dir=sink, spool_dir=sink + "-spool")
    tracer.start_span("before").end()
    try:
        # Said inside the try: the signal may come as soon as the line is
        # written, before the print returns, and Python raises there.
        print("ready", flush=True)
        if how == "sleep":
            time.sleep(600)
        else:
            while True:
                pass
    except (KeyboardInterrupt, Stop) as e:
        # Recorded as the program stops: the tracers must be thawed by now.
        tracer.start_span("stopping").end()
        print(type(e).__name__, flush=True)
    tracer.shutdown(10)
""")


@pytest.mark.parametrize("sig,caught", [(signal.SIGINT, "KeyboardInterrupt"), (signal.SIGTERM, "Stop")],
                         ids=["SIGINT", "SIGTERM-own-handler"])
@pytest.mark.parametrize("how", ["sleep", "busy"])
def test_the_signal_reaches_the_main_thread_and_its_last_spans_arrive(tmp_path, how, sig, caught):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPANGUARD_", "OTEL_"))}
    proc = subprocess.Popen([sys.executable, str(script), how, str(tmp_path / "sink")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_as_at_a_terminal)
    try:
        assert proc.stdout.readline() == "ready\n", proc.stderr.read()
        proc.send_signal(sig)
        # Not a timing: the child would wait 600 s (or forever) for it.
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"{signal.Signals(sig).name} never reached the main thread: {proc.communicate()}")
    assert proc.returncode == 0, err
    assert out == f"{caught}\n", err
    names = sorted(s["name"] for s in read_sink(tmp_path / "sink"))
    assert names == ["before", "stopping"], err
