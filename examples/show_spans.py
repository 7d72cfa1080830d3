#!/usr/bin/env python3
"""Shows what arrived in a spanguard sink directory (OTLP/JSON lines, the
Collector file exporter's format) as one indented tree per trace.
Standard library only, so `make demo` needs nothing installed."""

import json
import sys
from pathlib import Path


def value_of(v):
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    if "intValue" in v:
        return int(v["intValue"])
    return v


def load(directory):
    spans = []
    files = sorted(Path(directory).glob("*.jsonl"))
    for f in files:
        for line in f.read_text().splitlines():
            if not line.strip():
                continue
            request = json.loads(line)
            for rs in request.get("resourceSpans", []):
                resource = {a["key"]: value_of(a["value"]) for a in rs.get("resource", {}).get("attributes", [])}
                for ss in rs.get("scopeSpans", []):
                    for s in ss.get("spans", []):
                        s["_service"] = resource.get("service.name", "?")
                        spans.append(s)
    return files, spans


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "build/demo-spans"
    files, spans = load(directory)
    if not spans:
        print(f"no spans found in {directory}")
        return 1
    print(f"{len(spans)} spans arrived in {', '.join(str(f) for f in files)}\n")
    by_id = {s["spanId"]: s for s in spans}
    children = {}
    for s in spans:
        children.setdefault(s.get("parentSpanId", ""), []).append(s)
    for group in children.values():
        group.sort(key=lambda s: int(s["startTimeUnixNano"]))

    def show(span, depth):
        ms = (int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])) / 1e6
        attrs = {a["key"]: value_of(a["value"]) for a in span.get("attributes", [])}
        status = {0: "", 1: " OK", 2: " ERROR"}.get(span.get("status", {}).get("code", 0), "")
        message = span.get("status", {}).get("message")
        shown = ", ".join(f"{k}={v}" for k, v in attrs.items())
        print(f"{'  ' * depth}- {span['name']} [{ms:.3f} ms]{status}{': ' + message if message else ''}")
        if shown:
            print(f"{'  ' * depth}    {shown}")
        for e in span.get("events", []):
            ea = ", ".join(f"{a['key']}={value_of(a['value'])}" for a in e.get("attributes", []))
            print(f"{'  ' * depth}    event {e['name']} {ea}")
        for c in children.get(span["spanId"], []):
            show(c, depth + 1)

    roots = [s for s in spans if not s.get("parentSpanId") or s["parentSpanId"] not in by_id]
    for root in sorted(roots, key=lambda s: int(s["startTimeUnixNano"])):
        print(f"trace {root['traceId']} (service {root['_service']})")
        show(root, 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
