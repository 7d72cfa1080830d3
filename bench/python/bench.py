"""spanguard's Python package (the wheel's compiled extension) vs opentelemetry-sdk (BatchSpanProcessor with a
discarding exporter), same process, same run, their samples taken in turn. Prints one JSON line per case:
{"lang": "python", "case": ..., "spanguard_ns": median, "peer_ns": median}.
Allocation counts are not measured for Python (the interpreter allocates on
its own schedule), so the table shows them as n/a."""

import json
import statistics
import sys
import threading
import time

import spanguard
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

QUICK = "--quick" in sys.argv
SAMPLES, N = (5, 5000) if QUICK else (15, 20000)


class Discard(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS


def sg_cases(tracer):
    def begin_end(n):
        for _ in range(n):
            tracer.start_span("op").end()

    def attrs3(n):
        for i in range(n):
            s = tracer.start_span("op")
            s.set_attribute("gen_ai.usage.input_tokens", i)
            s.set_attribute("gen_ai.request.model", "gpt-4o")
            s.set_attribute("stream", True)
            s.end()

    def nested(n):
        for _ in range(n):
            p = tracer.start_span("op")
            tracer.start_span("child", parent=p).end()
            p.end()

    def with_attrs3(n):
        for i in range(n):
            with tracer.span("op") as s:
                s.set_attribute("gen_ai.usage.input_tokens", i)
                s.set_attribute("gen_ai.request.model", "gpt-4o")
                s.set_attribute("stream", True)

    return begin_end, attrs3, nested, with_attrs3


def otel_cases(tracer):
    def begin_end(n):
        for _ in range(n):
            tracer.start_span("op").end()

    def attrs3(n):
        for i in range(n):
            s = tracer.start_span("op")
            s.set_attribute("gen_ai.usage.input_tokens", i)
            s.set_attribute("gen_ai.request.model", "gpt-4o")
            s.set_attribute("stream", True)
            s.end()

    def nested(n):
        from opentelemetry import trace
        for _ in range(n):
            p = tracer.start_span("op")
            tracer.start_span("child", context=trace.set_span_in_context(p)).end()
            p.end()

    def with_attrs3(n):
        for i in range(n):
            with tracer.start_as_current_span("op") as s:
                s.set_attribute("gen_ai.usage.input_tokens", i)
                s.set_attribute("gen_ai.request.model", "gpt-4o")
                s.set_attribute("stream", True)

    return begin_end, attrs3, nested, with_attrs3


def sample(fn, per, threads, flush):
    """ns per span of one sample of fn (in `threads` threads), then its
    flush (not timed)."""
    t0 = time.perf_counter_ns()
    if threads == 1:
        fn(N)
    else:
        ts = [threading.Thread(target=fn, args=(N,)) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    ns = (time.perf_counter_ns() - t0) / (N * per * threads)
    flush()
    return ns


def measure_pair(a, flush_a, b, flush_b, per, threads):
    """Medians of SAMPLES samples of a and of b, taken in turn (a first in
    even rounds, b first in odd ones), so that both sides meet the same
    moments of a noisy host; a whole sample of each first, as warm-up."""
    a(N)
    flush_a()
    b(N)
    flush_b()
    xs, ys = [], []
    for s in range(SAMPLES):
        if s % 2 == 0:
            xs.append(sample(a, per, threads, flush_a))
            ys.append(sample(b, per, threads, flush_b))
        else:
            ys.append(sample(b, per, threads, flush_b))
            xs.append(sample(a, per, threads, flush_a))
    return statistics.median(xs), statistics.median(ys)


def main():
    sg = spanguard.Tracer(from_env=False, endpoint="discard:", install_signal_handlers=False,
                          max_queue_size=1 << 16)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard(), max_queue_size=1 << 16))
    ot = provider.get_tracer("bench")
    sgc, otc = sg_cases(sg), otel_cases(ot)
    rows = [("begin+end", 0, 1, 1), ("begin+3 attrs+end", 1, 1, 1),
            ("with span (current) + 3 attrs + end", 3, 1, 1), ("nested (parent+child), per span", 2, 2, 1),
            ("2 threads, begin+3 attrs+end", 1, 1, 2)]
    for label, i, per, threads in rows:
        a, b = measure_pair(sgc[i], lambda: sg.flush(30), otc[i], lambda: provider.force_flush(), per, threads)
        print(json.dumps({"lang": "python", "case": label, "spanguard_ns": a, "peer_ns": b,
                          "peer": "opentelemetry-sdk"}))
    sg.close()
    provider.shutdown()


if __name__ == "__main__":
    main()
