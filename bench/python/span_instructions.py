"""Instructions a span takes on the Python package's recording path,
counted by callgrind: exact enough to compare two builds of the package on
a loaded host, where timings are not (bench/node/span_instructions.js does
the same for the Node package).

    python bench/python/span_instructions.py [--runs R] [--spans N] [--case NAME] DIR [DIR2 ...]

DIR: a directory `import spanguard` finds a build of the package in (a
wheel unzipped there, or a virtualenv's site-packages). For each case and
DIR, R times (default 3): two processes under valgrind --tool=callgrind,
one recording WARM spans, the other WARM + N (default 10,000); the main
thread's instructions (--separate-threads: not the exporter's), their
difference over N, so that start-up, imports and the warm-up cancel. The
children run with PYTHONHASHSEED=0, so that both take the same path
through every dict. The bridge case needs opentelemetry-sdk where this
script's Python finds it (make venv's .venv); without it, it is left out.
Prints each run's figure and the median, one line a case and DIR. --case
runs one case (all by default).

No gevent or eventlet is imported: the figures are what a program
without a green library pays, including what the binding spends asking
whether one is loaded (spanguard/_green.py, bindings/python/src/green.rs).
"""

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

WARM = 5000


def status_event(tracer, n):
    """A failed step: a status with its message and an event."""
    import spanguard

    for _ in range(n):
        s = tracer.start_span("op")
        s.add_event("retry", {"attempt": 2})
        s.set_status(spanguard.STATUS_ERROR, "timed out")
        s.end()


# Each case: what it does `n` times with `sg` (a spanguard Tracer) or
# `otel` (an OpenTelemetry tracer whose provider's only processor is
# SpanguardSpanProcessor). bench.py's cases where it has them: the rows
# of make bench, counted here.
CASES = {
    "begin+end": lambda sg, otel, n: bench.sg_cases(sg)[0](n),
    "begin+3 attrs+end": lambda sg, otel, n: bench.sg_cases(sg)[1](n),
    "begin+event+status+end": lambda sg, otel, n: status_event(sg, n),
    "bridge: begin+3 attrs+end": lambda sg, otel, n: bench.otel_cases(otel)[1](n),
}


def child(directory, name, extra):
    sys.path.insert(0, directory)
    import spanguard

    global bench
    import bench  # bench.py beside this file: imports spanguard, found above

    assert spanguard.__file__.startswith(directory + os.sep), f"{spanguard.__file__} is not {directory}'s"
    # The exporter asleep throughout (no batch is due before the exit): its
    # taking spans while the main thread records them would make the main
    # thread wait on locks a different number of times from run to run.
    tracer = spanguard.Tracer(from_env=False, endpoint="discard:", install_signal_handlers=False,
                              max_queue_size=1 << 16, max_export_batch_size=1 << 16,
                              schedule_delay_ms=3600000)
    otel = None
    if name.startswith("bridge"):
        from opentelemetry.sdk.trace import TracerProvider
        from spanguard.otel import SpanguardSpanProcessor

        provider = TracerProvider()
        provider.add_span_processor(SpanguardSpanProcessor(tracer))
        otel = provider.get_tracer("bench")
    assert "gevent.monkey" not in sys.modules and "eventlet.patcher" not in sys.modules
    CASES[name](tracer, otel, WARM)
    CASES[name](tracer, otel, extra)
    # No flush, no close: their work is the exporter's and the exit's, the same for both runs.
    sys.stdout.flush()
    os._exit(0)


def main_thread_instructions(directory, name, extra):
    """The main thread's instructions of one run of the child."""
    text = callgrind_main_thread([__file__, "--child", directory, name, str(extra)])
    return int(re.search(r"^(?:totals|summary): (\d+)", text, re.M).group(1))


def callgrind_main_thread(args):
    """The callgrind file of the main thread of `python args...` run under
    callgrind (its text), with PYTHONHASHSEED=0."""
    out = tempfile.mkdtemp(prefix="sg-instr-")
    try:
        env = dict(os.environ, PYTHONHASHSEED="0")
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", "--separate-threads=yes",
             f"--callgrind-out-file={os.path.join(out, 'cg.%p')}", sys.executable, *args],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"the child failed ({run.returncode}): {run.stderr[-2000:]}")
        first = [f for f in os.listdir(out) if re.search(r"-0*1$", f)]
        if len(first) != 1:
            raise RuntimeError(f"no main thread's file in {os.listdir(out)}")
        with open(os.path.join(out, first[0])) as f:
            return f.read()
    finally:
        shutil.rmtree(out, ignore_errors=True)


def have_otel_sdk():
    try:
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        return False
    return True


def arguments(argv, runs, spans, usage):
    """--runs R, --spans N, --case NAME and the directories `argv` gives
    (R and N by default, every case): (R, N, NAME or None, [DIR...]), or
    None, `usage` said, when it gives no directory."""
    only, dirs = None, []
    args = iter(argv)
    for a in args:
        if a == "--runs":
            runs = int(next(args))
        elif a == "--spans":
            spans = int(next(args))
        elif a == "--case":
            only = next(args)
        else:
            dirs.append(os.path.abspath(a))
    if not dirs:
        print(usage, file=sys.stderr)
        return None
    return runs, spans, only, dirs


def main(argv):
    given = arguments(argv, 3, 10000, __doc__.split("\n\n")[1])
    if given is None:
        return 2
    runs, spans, only, dirs = given
    names = [n for n in CASES if only is None or n == only]
    if not have_otel_sdk():
        print("note: no opentelemetry-sdk for this Python: the bridge case left out", file=sys.stderr)
        names = [n for n in names if not n.startswith("bridge")]
    for name in names:
        # The directories in turn within each run, so that a host's drift meets each alike.
        figures = [[] for _ in dirs]
        for _ in range(runs):
            for d, directory in enumerate(dirs):
                base = main_thread_instructions(directory, name, 0)
                more = main_thread_instructions(directory, name, spans)
                figures[d].append(round((more - base) / spans))
        for d, directory in enumerate(dirs):
            print(f"{name}: {directory}: median {statistics.median(figures[d]):.0f} instructions a span "
                  f"(runs: {', '.join(map(str, figures[d]))}; callgrind, main thread, {spans} spans after {WARM})",
                  flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    sys.exit(main(sys.argv[1:]))
