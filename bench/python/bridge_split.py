"""Where the OpenTelemetry bridge's own instructions a span go, piece by
piece: the inclusive cost of each of the SpanguardSpanProcessor's steps
(bridge_instructions.py gives the whole), counted by callgrind.

    python bench/python/bridge_split.py [--runs R] [--spans N] [--case NAME] DIR [DIR2 ...] [-- PIECE ...]

DIR, the cases and the provider as bridge_instructions.py takes them. A
Python 3.11 frame is no C function callgrind can name (one
_PyEval_EvalFrameDefault runs a Python function and the ones it calls), so
each piece is measured on its own: made a functools.partial (the only one
in the process) and counted with --toggle-collect=partial_vectorcall, over
two runs (WARM spans, WARM + N), their difference over N. A piece that a
build of the bridge does not have prints as "-". The partial itself adds
a few hundred instructions to each piece. The pieces:

  on_start, on_end          the processor's hooks, whole
  native start              Tracer.start_span_with_ids (the span's begin in the extension)
  setters                   the following span's set_attribute, whole (the 3 attrs case)
  and the processor's own methods and the module's helpers, by name
"""

import functools
import os
import re
import statistics
import sys

from bridge_instructions import CASES, bridged
from span_instructions import arguments

WARM = 1000
# Each piece: where it is (the processor's method, the module's function,
# the tracer's method), as `patch` finds it.
PIECES = [
    ("on_start", "processor", "on_start"),
    ("on_end", "processor", "on_end"),
    ("native start", "tracer", "start_span_with_ids"),
    ("_pass_resource", "processor", "_pass_resource"),
    ("_begin", "processor", "_begin"),
    ("_follow", "processor", "_follow"),
    ("_complete", "processor", "_complete"),
    ("_record", "processor", "_record"),
    ("_had", "module", "_had"),
    ("_own_attributes", "module", "_own_attributes"),
    ("_unsent", "module", "_unsent"),
    ("_Open", "module", "_Open"),
    ("_Watch", "module", "_Watch"),
    ("setters", "setter", "set_attribute"),
]


def patch(processor, tracer, where, name):
    """Makes the piece a functools.partial; False when this build has none."""
    import spanguard.otel as otel

    if where == "processor":
        method = getattr(type(processor), name, None)
        if method is None:
            return False
        setattr(processor, name, functools.partial(method, processor))
    elif where == "tracer":
        method = getattr(type(tracer), name, None)
        if method is None:
            return False
        setattr(tracer, name, functools.partial(method, tracer))
    elif where == "module":
        fn = getattr(otel, name, None)
        if fn is None:
            return False
        setattr(otel, name, functools.partial(fn))
    return True


def child(directory, case, piece, extra):
    processor, tracer, work = bridged(directory, "bridge", case)
    _, where, name = next(p for p in PIECES if p[0] == piece)
    work(1)
    if where == "setter":
        # The following subclass the first span made: its setter wrapped in
        # a Python function that calls it through the partial.
        classes = [c for c in getattr(processor, "_following", {}).values() if c is not None]
        if not classes:
            print("none", flush=True)
            os._exit(0)
        sub = classes[0]
        inner = functools.partial(sub.__dict__[name])

        def wrapped(self, *args, _inner=inner):
            return _inner(self, *args)

        setattr(sub, name, wrapped)
    elif not patch(processor, tracer, where, name):
        print("none", flush=True)
        os._exit(0)
    work(WARM)
    work(extra)
    sys.stdout.flush()
    os._exit(0)


def collected(directory, case, piece, extra):
    import shutil
    import subprocess
    import tempfile

    out = tempfile.mkdtemp(prefix="sg-split-")
    try:
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", "--separate-threads=yes", "--toggle-collect=partial_vectorcall",
             f"--callgrind-out-file={os.path.join(out, 'cg.%p')}", sys.executable, __file__, "--child", directory,
             case, piece, str(extra)],
            env=dict(os.environ, PYTHONHASHSEED="0"), stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"the child failed ({run.returncode}): {run.stderr[-2000:]}")
        if run.stdout.strip() == "none":
            return None
        first = [f for f in os.listdir(out) if re.search(r"-0*1$", f)]
        with open(os.path.join(out, first[0])) as f:
            return int(re.search(r"^(?:totals|summary): (\d+)", f.read(), re.M).group(1))
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv):
    pieces = [p for p, _, _ in PIECES]
    if "--" in argv:  # the pieces named after "--" alone
        pieces = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    given = arguments(argv, 1, 2000, __doc__.split("\n\n")[1])
    if given is None:
        return 2
    runs, spans, only, dirs = given
    for case in [c for c in CASES if only is None or c == only]:
        for directory in dirs:
            for piece in pieces:
                got = []
                for _ in range(runs):
                    a = collected(directory, case, piece, 0)
                    b = collected(directory, case, piece, spans) if a is not None else None
                    got.append(None if b is None else (b - a) / spans)
                shown = "-" if None in got else f"{statistics.median(got):.0f}"
                print(f"{case}: {directory}: {piece}: {shown}", flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        sys.exit(0)
    sys.exit(main(sys.argv[1:]))
