"""Compares two sink directories span by span: the same program run on
x86-64 and, under qemu-aarch64, on arm64 (make test-arm64). Every line is
decoded strictly as OTLP/JSON by PyPI's opentelemetry-proto (the loopback
receiver's decoder, not spanguard's code), so what the arm64 build wrote is
judged by the same rules as the x86-64 one, and must hold the same spans.

same_spans.py X86_SINK_DIR ARM64_SINK_DIR

Ids and times differ from run to run, so a span is compared by what the
program gave it: its name, kind, status, attributes, events (names and
attributes) and the name of its parent. Values that say how long something
took (a duration, a time) or where a file lies (a stack trace) differ
too: for the keys named in --ignore, only that both have them is compared,
not their values. Exits 1 with the difference when the two differ or
when either holds no span."""

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "receiver"))
from otlp_receiver import JSON, decode_request, span_dicts  # noqa: E402


def spans_in(sink: Path) -> list[dict]:
    spans = []
    for path in sorted(sink.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line:
                request, _ = decode_request(line.encode(), JSON, None, strict=True)
                spans += span_dicts(request)
    return spans


def shapes(spans: list[dict], ignore: set[str]) -> Counter:
    names = {s["span_id"]: s["name"] for s in spans}

    def attrs(kv):
        return json.dumps({k: "(not compared)" if k in ignore else v for k, v in kv.items()}, sort_keys=True)

    return Counter(
        (s["name"], s["kind"], s["status_code"], s["status_message"], names.get(s["parent_span_id"], ""),
         attrs(s["attributes"]), json.dumps([(e["name"], attrs(e["attributes"])) for e in s["events"]]))
        for s in spans)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("x86_sink", type=Path)
    ap.add_argument("arm64_sink", type=Path)
    ap.add_argument("--ignore", default="", help="attribute keys whose values are not compared, comma-separated")
    args = ap.parse_args()
    ignore = {k for k in args.ignore.split(",") if k}
    want, got = spans_in(args.x86_sink), spans_in(args.arm64_sink)
    if not want or not got:
        print(f"no spans: {len(want)} in {args.x86_sink}, {len(got)} in {args.arm64_sink}")
        return 1
    a, b = shapes(want, ignore), shapes(got, ignore)
    if a != b:
        print(f"the arm64 run's spans differ from the x86-64 run's ({args.arm64_sink} vs {args.x86_sink}):")
        for shape in (a - b):
            print("  only on x86-64:", shape)
        for shape in (b - a):
            print("  only on arm64: ", shape)
        return 1
    print(f"{args.arm64_sink}: the same {len(got)} spans as on x86-64")
    return 0


if __name__ == "__main__":
    sys.exit(main())
