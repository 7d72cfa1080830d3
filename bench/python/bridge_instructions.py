"""Where the instructions of a span recorded through the OpenTelemetry
bridge (SpanguardSpanProcessor under the SDK's TracerProvider) go: the
SDK's own span vs the bridge's on_start/on_end and what its following
setters add, counted by callgrind (the main thread, as
span_instructions.py counts the package's own API).

    python bench/python/bridge_instructions.py [--runs R] [--spans N] [--case NAME] DIR [DIR2 ...]

DIR as span_instructions.py takes it (a build of the package that
`import spanguard` finds there); the script's Python needs
opentelemetry-sdk (make venv's .venv). For each case (bench.py's
begin+end and begin+3 attrs+end through an SDK tracer) and DIR, R times
(default 1): two processes under callgrind, WARM spans and WARM + N
(default 2,000), their difference over N, for two providers:

  sdk     the SDK alone: its only processor one that does nothing (the
          SDK's SpanProcessor), so that it pays for calling a processor
  bridge  SpanguardSpanProcessor as the only processor

Per span, for each: all of the main thread's instructions; those in the
processor's on_start and on_end, with what they call (both are called
through a functools.partial, in the sdk row too, and counted as the
inclusive cost of partial_vectorcall); and those executed in the
package's compiled extension itself (the binding and the library linked
into it, not the interpreter's work it asks for). bridge - sdk is what
the bridge adds; of it, what on_start/on_end do not hold is its
following setters (and the interpreter's memory work for the larger
span). Prints one line a case, provider and DIR, with the runs' medians.
"""

import functools
import os
import re
import statistics
import sys

from span_instructions import arguments, callgrind_main_thread

WARM = 1000
PROVIDERS = ("sdk", "bridge")
CASES = {"begin+end": 0, "begin+3 attrs+end": 1}


def bridged(directory, provider_kind, case):
    """A child's setup: the build in `directory` imported, a spanguard
    tracer whose exporter sleeps throughout (as in span_instructions.py),
    a provider with the processor `provider_kind` names, and the case's
    work on it: (processor, tracer, work)."""
    sys.path.insert(0, directory)
    import spanguard

    import bench  # bench.py beside this file: imports spanguard, found above
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from spanguard.otel import SpanguardSpanProcessor

    assert spanguard.__file__.startswith(directory + os.sep), f"{spanguard.__file__} is not {directory}'s"
    tracer = spanguard.Tracer(from_env=False, endpoint="discard:", install_signal_handlers=False,
                              max_queue_size=1 << 16, max_export_batch_size=1 << 16,
                              schedule_delay_ms=3600000)
    processor = SpanguardSpanProcessor(tracer) if provider_kind == "bridge" else SpanProcessor()
    provider = TracerProvider()
    provider.add_span_processor(processor)
    return processor, tracer, bench.otel_cases(provider.get_tracer("bench"))[CASES[case]]


def child(directory, provider_kind, case, extra):
    processor, _, work = bridged(directory, provider_kind, case)
    # Through a partial, so that callgrind names the calls (partial_vectorcall).
    processor.on_start = functools.partial(type(processor).on_start, processor)
    processor.on_end = functools.partial(type(processor).on_end, processor)
    work(WARM)
    work(extra)
    sys.stdout.flush()
    os._exit(0)


def costs(text, native_object):
    """The main thread's instructions in all, those under
    partial_vectorcall (inclusive), and those executed in
    `native_object` (self cost), from a callgrind file's text."""
    names, objects = {}, {}

    def named(table, value):
        m = re.match(r"\((\d+)\)(?: (.*))?", value)
        if not m:
            return value
        if m.group(2) is not None:
            table[m.group(1)] = m.group(2)
        return table.get(m.group(1), "")

    total = int(re.search(r"^(?:totals|summary): (\d+)", text, re.M).group(1))
    under_partial = native = 0
    ob = fn = cfn = ""
    after_calls = False
    for line in text.splitlines():
        if not line:
            continue
        head = line[0]
        if head.isdigit() or head in "+-*":
            ir = int(line.split()[1]) if len(line.split()) > 1 else 0
            if after_calls:
                if cfn == "partial_vectorcall" and fn != "partial_vectorcall":
                    under_partial += ir
                after_calls = False
            elif ob.endswith(native_object):
                native += ir
        elif line.startswith("ob="):
            ob = named(objects, line[3:])
        elif line.startswith("cob="):
            named(objects, line[4:])
        elif line.startswith("fn="):
            fn = named(names, line[3:])
        elif line.startswith("cfn="):
            cfn = named(names, line[4:])
        elif line.startswith("calls="):
            after_calls = True
    return total, under_partial, native


def per_span(directory, provider_kind, case, spans):
    figures = []
    for extra in (0, spans):
        text = callgrind_main_thread([__file__, "--child", directory, provider_kind, case, str(extra)])
        figures.append(costs(text, "_native.abi3.so"))
    (t0, p0, n0), (t1, p1, n1) = figures
    # + 0.0: a difference of none prints 0, not -0.
    return (t1 - t0) / spans + 0.0, (p1 - p0) / spans + 0.0, (n1 - n0) / spans + 0.0


def main(argv):
    given = arguments(argv, 1, 2000, __doc__.split("\n\n")[1])
    if given is None:
        return 2
    runs, spans, only, dirs = given
    for case in [c for c in CASES if only is None or c == only]:
        for directory in dirs:
            medians = {}
            for provider_kind in PROVIDERS:
                got = [per_span(directory, provider_kind, case, spans) for _ in range(runs)]
                medians[provider_kind] = [statistics.median(g[i] for g in got) for i in range(3)]
                total, hooks, native = medians[provider_kind]
                print(f"{case}: {provider_kind}: {directory}: {total:.0f} instructions a span; "
                      f"on_start+on_end {hooks:.0f}; in the extension {native:.0f} "
                      f"(median of {runs}; callgrind, main thread, {spans} spans after {WARM})", flush=True)
            added = medians["bridge"][0] - medians["sdk"][0]
            hooks = medians["bridge"][1] - medians["sdk"][1]
            print(f"{case}: the bridge adds {added:.0f} a span to the SDK's {medians['sdk'][0]:.0f}: "
                  f"{hooks:.0f} in on_start+on_end, {added - hooks:.0f} elsewhere (its setters); "
                  f"{medians['bridge'][2]:.0f} of it in the extension", flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    sys.exit(main(sys.argv[1:]))
