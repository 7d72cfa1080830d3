#!/usr/bin/env python3
"""Runs every benchmark and prints one Markdown report: spanguard and the
OpenTelemetry SDK a user would otherwise pick, measured on this machine in
this invocation, as medians and same-run ratios. Standard library only; the
peers are installed by `make bench`.

bench/run.py [--quick]"""

import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUICK = "--quick" in sys.argv
RUST_BENCH = str(REPO / "bench" / "rust" / "target" / "release" / "spanguard-bench")
# The bench venv, with the wheel of make dist installed by make bench.
PYTHON = str(REPO / "build" / "bench-venv" / "bin" / "python")


def run(cmd, cwd=REPO, env=None):
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=dict(os.environ, **(env or {})))
    if out.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return f"{os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}"


def go_rows():
    # One `go test` per sample, not `-count`: -count takes all of one
    # benchmark's samples before the next benchmark's, so spanguard's and
    # the SDK's samples of a case fell in different moments of a noisy host;
    # each run below takes every case once, the two sides next to each other.
    count = 3 if QUICK else 7
    out = "".join(run(["go", "test", "-run", "^$", "-bench", ".", "-benchmem", "-count", "1",
                       "-benchtime", "200000x"], cwd=REPO / "bench" / "go") for _ in range(count))
    samples = {}
    for m in re.finditer(r"^Benchmark(\w+)_(\w+)-\d+\s+\d+\s+([\d.]+) ns/op\s+\d+ B/op\s+(\d+) allocs/op", out, re.M):
        who, case, ns, allocs = m.group(1), m.group(2), float(m.group(3)), int(m.group(4))
        samples.setdefault((case, who), []).append((ns, allocs))
    labels = {"BeginEnd": ("begin+end", 1), "Attrs3": ("begin+3 attrs+end", 1),
              "StartAttrs3": ("begin with 3 attrs+end", 1),
              "Nested": ("nested (parent+child), per span", 2), "Parallel": ("2 goroutines (RunParallel), begin+3 attrs+end", 1)}
    rows = []
    for case, (label, per) in labels.items():
        sg, ot = samples[(case, "Spanguard")], samples[(case, "Otel")]
        rows.append(("Go (cgo)", label, statistics.median(s[0] for s in sg) / per,
                     statistics.median(s[1] for s in sg) / per, "go.opentelemetry.io/otel/sdk/trace",
                     statistics.median(s[0] for s in ot) / per, statistics.median(s[1] for s in ot) / per))
    return rows


def json_rows(lines, lang):
    rows = []
    for line in lines.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            rows.append((lang, r["case"], r["spanguard_ns"], None, r["peer"], r["peer_ns"], None))
    return rows


@contextmanager
def loopback_sink():
    """A loopback OTLP/HTTP sink in a process of its own (so its CPU time is
    nobody's): accepts and discards requests fast, counting their spans.
    Yields its traces URL; stops when its standard input closes."""
    sink = subprocess.Popen([RUST_BENCH, "--sink"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        yield sink.stdout.readline().strip()
    finally:
        sink.stdin.close()
        sink.wait(timeout=30)


def startup_lines():
    """Cold starts in fresh processes (bench/c/startup.c): medians of
    spanguard_tracer_new's time and of the RSS an idle tracer adds."""
    runs = 5 if QUICK else 11
    state = REPO / "build" / "bench-startup"
    lines = []
    for flight in (False, True):
        got = []
        # The first run makes the state directory, as a program's first
        # start on a machine does; it is not counted.
        for _ in range(runs + 1):
            out = run([str(REPO / "build" / "bench" / "startup"), str(state), *(["flight"] if flight else [])])
            got.append(json.loads(out))
        got = got[1:]
        med = {k: statistics.median(g[k] for g in got) for k in ("ms", "idle_kib", "first_span_kib")}
        lines.append(f"- tracer start-up, default settings{' with the flight recorder' if flight else ''}: "
                     f"spanguard_tracer_new {med['ms']:.2f} ms; an idle tracer adds {med['idle_kib']:.0f} KiB of RSS, "
                     f"a thread's first span {med['first_span_kib']:.0f} KiB more (medians of {runs} fresh processes, "
                     "bench/c/startup.c)")
    run(["rm", "-rf", str(state)])
    return "\n".join(lines) + "\n"


def early_lines():
    """The recording path early in a process's life and in a forked child
    (bench/c/early_spans.c), in fresh processes: medians."""
    runs = 3 if QUICK else 9
    program = str(REPO / "build" / "bench" / "early_spans")
    got = {mode: [] for mode in ("fresh", "fork")}
    for _ in range(runs):
        for mode in got:
            out = run([program, *(["fork"] if mode == "fork" else [])])
            got[mode].append(json.loads(out)["ns_per_span"])
    med = {mode: statistics.median(v) for mode, v in got.items()}
    return (f"- early spans (C program, bench/c/early_spans.c; begin+3 attrs+end, regime (a)): "
            f"{med['fresh']:.1f} ns/span 50 ms after spanguard_tracer_new in a fresh process; "
            f"{med['fork']:.1f} ns/span in a child forked from a process whose tracer had run 300 ms "
            f"(medians of {runs} processes each; the C program rows (bench/c/hot_path.c) are the same "
            "spans in a process past its first second)")


def cpu_rows(url):
    """One JSON line per language: CPU per span over all threads, spanguard
    and the SDK, each with real OTLP/HTTP protobuf export to `url`."""
    quick = ["--quick"] if QUICK else []
    lines = run([RUST_BENCH, "--cpu", url, *quick])
    lines += run(["go", "run", "./cpu", url, *quick], cwd=REPO / "bench" / "go")
    lines += run(["node", "cpu.js", url, *quick], cwd=REPO / "bench" / "node")
    lines += run([PYTHON, "bench/python/cpu.py", url, *quick])
    return [json.loads(line) for line in lines.splitlines() if line.startswith("{")]


def fmt_allocs(a):
    return "n/a" if a is None else f"{a:.2f}"


def main():
    quick = ["--quick"] if QUICK else []
    print(f"# spanguard benchmarks\n\n- machine: {machine()}\n- date: {datetime.date.today().isoformat()}\n"
          f"- command: `make bench` (`python3 bench/run.py{' --quick' if QUICK else ''}`)\n"
          "- every figure is a median over repeated samples; ratios compare figures from this same run\n")
    print("## Native: spanguard (Rust API and C ABI) vs opentelemetry_sdk\n")
    rust = run([RUST_BENCH, *quick])
    print(rust)
    idle = json.loads(run([str(REPO / "build" / "bench" / "idle_rss"), str(REPO / "build" / "bench" / "idle-rss-spans")]))
    print(f"- idle tracer, default settings (C program, bench/c/idle_rss.c): RSS {idle['rss_before_kib']} KiB before "
          f"spanguard_tracer_new, {idle['rss_idle_tracer_kib']} KiB a second after; address space reserved "
          f"{idle['address_space_added_kib']} KiB (the payload pool is reserved, not resident)")
    print(startup_lines())
    print(early_lines())
    print(run([RUST_BENCH, "--large-burst", *quick]))
    print("## C program through libspanguard.so\n")
    print("The C ABI column above calls the library linked into the benchmark. A C program "
          "calls it through the shared library: each call goes through the PLT, and each "
          "thread-local lookup is a call to `__tls_get_addr`. Same cases and sampling "
          "(bench/c/hot_path.c), in both regimes of the exporter, interleaved; the exporter's share is "
          "how many of a sample's spans it exported while the sample ran. No C peer (the "
          "OpenTelemetry C++ SDK is not built here).\n")
    print("| case | spanguard ns/span, (b) exporter busy | exporter's share of the sample (b) | spanguard ns/span, (a) exporter idle | exporter's share of the sample (a) |")
    print("|---|---|---|---|---|")
    by_case = {}
    for line in run([str(REPO / "build" / "bench" / "hot_path"), *quick]).splitlines():
        r = json.loads(line)
        by_case.setdefault(r["case"], {})[r["regime"][:3]] = r
    for case, r in by_case.items():
        b, a = r["(b)"], r["(a)"]
        print(f"| {case} | {b['spanguard_ns']:.1f} | {100 * b['exported_share']:.0f}% | "
              f"{a['spanguard_ns']:.1f} | {100 * a['exported_share']:.0f}% |")
    print()
    rows = go_rows()
    rows += json_rows(run(["node", "bench.js", *quick], cwd=REPO / "bench" / "node"), "Node.js (N-API addon)")
    rows += json_rows(run([PYTHON, "bench/python/bench.py", *quick]), "Python (extension)")
    print("## Bindings: each against its language's OpenTelemetry SDK\n")
    print("| language | case | spanguard ns/span | allocs/span | peer | peer ns/span | peer allocs/span | ratio (peer / spanguard) |")
    print("|---|---|---|---|---|---|---|---|")
    for lang, case, sn, sa, peer, pn, pa in rows:
        print(f"| {lang} | {case} | {sn:.0f} | {fmt_allocs(sa)} | {peer} | {pn:.0f} | {fmt_allocs(pa)} | {pn / sn:.2f} |")
    print()
    with loopback_sink() as url:
        cpu = cpu_rows(url)
    print("## CPU per span, all threads, with real OTLP/HTTP export\n")
    print("What a span costs the process: user plus system CPU time of every thread (recording, "
          "batching, encoding, sending), from getrusage before and after, over the spans; "
          "begin+3 attrs+end, root spans, in chunks each flushed to a loopback OTLP/HTTP sink "
          "(a separate process that accepts, counts and discards). spanguard and each SDK use "
          "their real OTLP/HTTP protobuf exporter, the same queue (65536) and batch size (512), "
          "no compression; medians of interleaved rounds in one process per language. "
          "\"received\" is what the sink counted over all rounds. The bridge rows (Go, Node, Python) "
          "are the same SDK with spanguard's SpanProcessor in place of its batch processor and "
          "exporter: the SDK still makes every span, and spanguard exports it; the goal of 3x is "
          "for the bindings' own rows.\n")
    print("| language | spanguard | CPU ns/span | received / sent | peer with its OTLP exporter | CPU ns/span | received / sent | ratio (peer / spanguard) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in cpu:
        print(f"| {r['lang']} | {r['spanguard']} | {r['spanguard_cpu_ns']:.0f} | {r['spanguard_received']} / {r['spans']} | "
              f"{r['peer']} | {r['peer_cpu_ns']:.0f} | {r['peer_received']} / {r['spans']} | {r['peer_cpu_ns'] / r['spanguard_cpu_ns']:.2f} |")
    print("\nEvery side of every row warms up with whole chunks until one takes under one page fault and grows "
          "the resident set by under a page per 1,000 spans (at least 2, at most 12): memory grows until a "
          "chunk's burst needs no more, a one-time cost; spanguard's tracers populate their slots at start "
          "(prefault_slots), where a burst that outruns the exporter would otherwise keep reaching fresh ones "
          "(bench/rust/src/cpu.rs says why).")
    for r in cpu:
        if "spanguard_warm_chunks" in r:
            print(f"{r['lang']}: median {r['spanguard_warm_chunks']:.0f} warm-up chunks for spanguard and "
                  f"{r['peer_warm_chunks']:.0f} for the peer; page faults a span in the measured chunks: "
                  f"{r['spanguard_faults_per_span']:.4f} and {r['peer_faults_per_span']:.4f}.")


main()
