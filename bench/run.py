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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUICK = "--quick" in sys.argv


def run(cmd, cwd=REPO, env=None):
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=dict(os.environ, **(env or {})))
    if out.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return f"{os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}"


def go_rows():
    count = "3" if QUICK else "7"
    out = run(["go", "test", "-run", "^$", "-bench", ".", "-benchmem", "-count", count, "-benchtime", "200000x"],
              cwd=REPO / "bench" / "go")
    samples = {}
    for m in re.finditer(r"^Benchmark(\w+)_(\w+)-\d+\s+\d+\s+([\d.]+) ns/op\s+\d+ B/op\s+(\d+) allocs/op", out, re.M):
        who, case, ns, allocs = m.group(1), m.group(2), float(m.group(3)), int(m.group(4))
        samples.setdefault((case, who), []).append((ns, allocs))
    labels = {"BeginEnd": ("begin+end", 1), "Attrs3": ("begin+3 attrs+end", 1),
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


def fmt_allocs(a):
    return "n/a" if a is None else f"{a:.2f}"


def main():
    quick = ["--quick"] if QUICK else []
    print(f"# spanguard benchmarks\n\n- machine: {machine()}\n- date: {datetime.date.today().isoformat()}\n"
          f"- command: `make bench` (`python3 bench/run.py{' --quick' if QUICK else ''}`)\n"
          "- every figure is a median over repeated samples; ratios compare figures from this same run\n")
    print("## Native: spanguard (Rust API and C ABI) vs opentelemetry_sdk\n")
    rust = run([str(REPO / "bench" / "rust" / "target" / "release" / "spanguard-bench"), *quick])
    print(rust)
    idle = json.loads(run([str(REPO / "build" / "bench" / "idle_rss"), str(REPO / "build" / "bench" / "idle-rss-spans")]))
    print(f"- idle tracer, default settings (C program, bench/c/idle_rss.c): RSS {idle['rss_before_kib']} KiB before "
          f"spanguard_tracer_new, {idle['rss_idle_tracer_kib']} KiB a second after; address space reserved "
          f"{idle['address_space_added_kib']} KiB (the payload pool is reserved, not resident)")
    print(run([str(REPO / "bench" / "rust" / "target" / "release" / "spanguard-bench"), "--large-burst", *quick]))
    print("## C program through libspanguard.so\n")
    print("The C ABI column above calls the library linked into the benchmark. A C program "
          "calls it through the shared library: each call goes through the PLT, and each "
          "thread-local lookup is a call to `__tls_get_addr`. Same cases and sampling "
          "(bench/c/hot_path.c); no C peer (the OpenTelemetry C++ SDK is not built here).\n")
    print("| case | spanguard ns/span |")
    print("|---|---|")
    for line in run([str(REPO / "build" / "bench" / "hot_path"), *quick]).splitlines():
        r = json.loads(line)
        print(f"| {r['case']} | {r['spanguard_ns']:.1f} |")
    print()
    rows = go_rows()
    rows += json_rows(run(["node", "bench.js", *quick], cwd=REPO / "bench" / "node"), "Node.js (N-API addon)")
    # The wheel of make dist, installed into the bench venv by make bench.
    rows += json_rows(run([str(REPO / "build" / "bench-venv" / "bin" / "python"), "bench/python/bench.py", *quick]),
                      "Python (extension)")
    print("## Bindings: each against its language's OpenTelemetry SDK\n")
    print("| language | case | spanguard ns/span | allocs/span | peer | peer ns/span | peer allocs/span | ratio (peer / spanguard) |")
    print("|---|---|---|---|---|---|---|---|")
    for lang, case, sn, sa, peer, pn, pa in rows:
        print(f"| {lang} | {case} | {sn:.0f} | {fmt_allocs(sa)} | {peer} | {pn:.0f} | {fmt_allocs(pa)} | {pn / sn:.2f} |")


main()
