"""What a span costs the process in Python: CPU time of every thread (user +
system, getrusage) per span, for spanguard's Python binding and for
opentelemetry-sdk with its real OTLP/HTTP protobuf exporter
(opentelemetry-exporter-otlp-proto-http), both sending to the same loopback
sink, each run ending with every span delivered; and the same SDK with
spanguard's bridge (SpanguardSpanProcessor) in place of its batch processor
and exporter, what a user already on OpenTelemetry runs. Interleaved
rounds, medians; JSON lines for bench/run.py.

python cpu.py SINK_URL [--quick]"""

import json
import os
import resource
import statistics
import sys
import urllib.request

import spanguard
from bench import otel_cases, sg_cases
from spanguard.otel import SpanguardSpanProcessor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

URL = sys.argv[1]
QUICK = "--quick" in sys.argv
ROUNDS, CHUNKS, CHUNK = (3, 2, 2000) if QUICK else (5, 4, 5000)


def cpu_ns():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return int((u.ru_utime + u.ru_stime) * 1e9)


def received():
    base = URL.split("/v1/")[0]
    with urllib.request.urlopen(base + "/count") as r:
        return int(r.read().decode().strip())


def resident_bytes():
    """The process's resident set now (/proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(emit, flush):
    # Threads, connections, buffers, and memory faulted in as it is first
    # used are one-time costs, not a span's: whole chunks until one takes
    # under one page fault and under a page of resident set per 1,000
    # spans (at least 2, at most 12), the rule bench/rust/src/cpu.rs
    # explains.
    warm = 0
    while True:
        f0, r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, resident_bytes()
        emit(CHUNK)
        flush()
        warm += 1
        grown = max(resident_bytes() - r0, 0)
        quiet = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) * 1000 < CHUNK and grown * 1000 < CHUNK * 4096
        if (warm >= 2 and quiet) or warm >= 12:
            break
    before = received()
    c0 = cpu_ns()
    for _ in range(CHUNKS):
        emit(CHUNK)
        flush()
    c1 = cpu_ns()
    return (c1 - c0) / (CHUNKS * CHUNK), received() - before


def spanguard_tracer():
    """A spanguard tracer sending to the sink, and the flush that ends a chunk;
    its slots populated at start (bench/rust/src/cpu.rs says why)."""
    sg = spanguard.Tracer(from_env=False, endpoint=URL, install_signal_handlers=False, max_queue_size=1 << 16,
                          prefault_slots=True)

    def flush():
        if not sg.flush(60):
            raise RuntimeError("flush timed out")

    return sg, flush


def spanguard_run():
    sg, flush = spanguard_tracer()
    r = measure(sg_cases(sg)[1], flush)  # begin+3 attrs+end, as in bench.py
    sg.close()
    return r


def bridge_run():
    """The SDK with spanguard's bridge in place of its batch processor and
    exporter: what a user already on OpenTelemetry runs."""
    sg, flush = spanguard_tracer()
    provider = TracerProvider()
    provider.add_span_processor(SpanguardSpanProcessor(sg))
    r = measure(otel_cases(provider.get_tracer("bench"))[1], flush)
    provider.shutdown()
    sg.close()
    return r


def otel_run():
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=URL), max_queue_size=1 << 16))
    ot = provider.get_tracer("bench")

    emit = otel_cases(ot)[1]  # begin+3 attrs+end, as in bench.py

    def flush():
        if not provider.force_flush(60_000):
            raise RuntimeError("force_flush timed out")

    r = measure(emit, flush)
    provider.shutdown()
    return r


def main():
    sg, br, ot = [], [], []
    sg_got = br_got = ot_got = 0
    for _ in range(ROUNDS):
        a, ga = spanguard_run()
        sg.append(a)
        sg_got += ga
        c, gc = bridge_run()
        br.append(c)
        br_got += gc
        b, gb = otel_run()
        ot.append(b)
        ot_got += gb
    for who, ns, got in (("Python binding", sg, sg_got),
                         ("opentelemetry-sdk + spanguard bridge (SpanguardSpanProcessor)", br, br_got)):
        print(json.dumps({
            "lang": "Python", "case": "begin+3 attrs+end", "spanguard": who,
            "spanguard_cpu_ns": statistics.median(ns), "spanguard_received": got,
            "peer": "opentelemetry-sdk + exporter-otlp-proto-http", "peer_cpu_ns": statistics.median(ot),
            "peer_received": ot_got, "spans": ROUNDS * CHUNKS * CHUNK, "rounds": ROUNDS}))


main()
