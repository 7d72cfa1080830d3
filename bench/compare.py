"""Run two builds of bench/c/hot_path.c (or llm_spans.c) in turn and compare them pair by pair.

Each argument is LABEL=PROGRAM. A pair runs both programs once, the first
of them alternating from pair to pair, so that a slow spell of the host
falls on both. For each case and regime the report gives each program's
median over pairs (ns a span, and the exporter's share of a sample), the
median of the pairs' ratios (second / first: above 1 means the second is
slower), and in how many pairs the second was faster. bench/compare.sh
builds the two programs; see it for how.
"""

import argparse
import json
import statistics
import subprocess
import sys


def run(program, quick):
    out = subprocess.run([program, *(["--quick"] if quick else [])], check=True,
                         capture_output=True, text=True).stdout
    rows = {}
    for line in out.splitlines():
        row = json.loads(line)
        rows[(row["case"], row["regime"])] = (row["spanguard_ns"], row["exported_share"])
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="short samples: checks it runs")
    parser.add_argument("--name", default="bench/c/hot_path.c", help="what the programs are built from")
    parser.add_argument("programs", nargs=2, metavar="LABEL=PROGRAM")
    args = parser.parse_args()
    (label_a, prog_a), (label_b, prog_b) = (p.split("=", 1) for p in args.programs)

    runs_a, runs_b = [], []
    for pair in range(args.pairs):
        if pair % 2 == 0:
            runs_a.append(run(prog_a, args.quick))
            runs_b.append(run(prog_b, args.quick))
        else:
            runs_b.append(run(prog_b, args.quick))
            runs_a.append(run(prog_a, args.quick))
        print(f"pair {pair + 1} of {args.pairs} done", file=sys.stderr)

    print(f"{args.name}, {args.pairs} pairs, alternating which runs first; "
          f"ns a span are medians over pairs of each run's median; the ratio is "
          f"the median over pairs of {label_b} / {label_a} (above 1: {label_b} slower)\n")
    print(f"| case | regime | {label_a} ns/span | {label_b} ns/span | ratio | "
          f"pairs where {label_b} was faster | exporter's share ({label_a} / {label_b}) |")
    print("|---|---|---|---|---|---|---|")
    for key in runs_a[0]:
        ns_a = [r[key][0] for r in runs_a]
        ns_b = [r[key][0] for r in runs_b]
        ratios = [b / a for a, b in zip(ns_a, ns_b)]
        faster = sum(b < a for a, b in zip(ns_a, ns_b))
        share_a = statistics.median(r[key][1] for r in runs_a)
        share_b = statistics.median(r[key][1] for r in runs_b)
        print(f"| {key[0]} | {key[1]} | {statistics.median(ns_a):.1f} | {statistics.median(ns_b):.1f} | "
              f"{statistics.median(ratios):.3f} | {faster} of {len(ratios)} | "
              f"{share_a:.0%} / {share_b:.0%} |")


if __name__ == "__main__":
    main()
