#!/usr/bin/env python3
"""Checks that an OpenTelemetry Collector's file-exporter output holds exactly
the spans a spanguard emitter's manifest lists, once each, with every field
equal. Standard library only.

check_collector_output.py --collector-output FILE --manifest FILE [--wait-s N]
"""

import argparse
import base64
import json
import sys
import time


def typed(value):
    """A manifest-style {"type", "value"} from an OTLP/JSON AnyValue."""
    if "arrayValue" in value:
        return {"type": "array", "value": [typed(v) for v in value["arrayValue"].get("values", [])]}
    if "bytesValue" in value:
        return {"type": "bytes", "value": base64.b64decode(value["bytesValue"]).hex()}
    if "stringValue" in value:
        return {"type": "string", "value": value["stringValue"]}
    if "boolValue" in value:
        return {"type": "bool", "value": value["boolValue"]}
    if "intValue" in value:
        return {"type": "int", "value": int(value["intValue"])}
    if "doubleValue" in value:
        return {"type": "double", "value": float(value["doubleValue"])}
    return {"type": "unknown", "value": value}


def attrs(kvs):
    return {kv["key"]: typed(kv.get("value", {})) for kv in kvs or []}


def spans_of_run(path, run_id):
    found = []
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except FileNotFoundError:
        return found
    for line in lines:
        if not line.strip():
            continue
        doc = json.loads(line)
        for rs in doc.get("resourceSpans", []):
            resource = attrs(rs.get("resource", {}).get("attributes"))
            if resource.get("spanguard.run_id", {}).get("value") != run_id:
                continue
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    span["_resource"] = resource
                    span["_scope"] = ss.get("scope", {}).get("name", "")
                    found.append(span)
    return found


def compare(span, want):
    problems = []

    def same(what, got, expected):
        if got != expected:
            problems.append(f"{want['name']!r} {what}: got {got!r}, want {expected!r}")

    same("parent", span.get("parentSpanId", ""), want["parent_span_id"])
    same("name", span.get("name"), want["name"])
    same("kind", span.get("kind", 0), want["kind"])
    same("start", int(span.get("startTimeUnixNano", 0)), want["start_time_unix_nano"])
    same("end", int(span.get("endTimeUnixNano", 0)), want["end_time_unix_nano"])
    status = span.get("status", {})
    same("status code", status.get("code", 0), want["status"]["code"])
    same("status message", status.get("message", ""), want["status"]["message"])
    same("attributes", attrs(span.get("attributes")), want["attributes"])
    same("events", [{"name": e.get("name"), "time_unix_nano": int(e.get("timeUnixNano", 0)),
                     "attributes": attrs(e.get("attributes"))} for e in span.get("events", [])],
         want["events"])
    same("links", [{"trace_id": link.get("traceId"), "span_id": link.get("spanId"),
                    "attributes": attrs(link.get("attributes"))} for link in span.get("links", [])],
         want["links"])
    same("service.name", span["_resource"].get("service.name", {}).get("value"), "spanguard-emitter")
    same("scope", span["_scope"], "spanguard")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--collector-output", required=True)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--wait-s", type=float, default=15.0)
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    manifest = json.load(open(args.manifest, encoding="utf-8"))
    want = {(s["trace_id"], s["span_id"]): s for s in manifest["spans"]}
    deadline = time.monotonic() + args.wait_s
    while True:  # the file exporter flushes on an interval
        got = spans_of_run(args.collector_output, manifest["run_id"])
        if len(got) >= len(want) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    problems = []
    seen = {}
    for span in got:
        key = (span.get("traceId"), span.get("spanId"))
        seen[key] = seen.get(key, 0) + 1
    problems += [f"span {k} arrived {n} times" for k, n in seen.items() if n > 1]
    problems += [f"span {w['name']!r} {k} never arrived" for k, w in want.items() if k not in seen]
    problems += [f"unexpected span {k}" for k in seen if k not in want]
    for span in got:
        key = (span.get("traceId"), span.get("spanId"))
        if key in want and seen[key] == 1:
            problems += compare(span, want[key])
    if problems:
        print(f"interop {args.label}: FAILED", *problems[:30], sep="\n  ")
        return 1
    print(f"interop {args.label}: {len(want)} spans ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
