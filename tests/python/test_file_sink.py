"""The embedded default sink: the demo agent writes into a directory, and
every line must be an OTLP/JSON ExportTraceServiceRequest by the OTLP spec's
rules (hex ids, enums as integers, 64-bit integers as strings, lowerCamelCase
keys) that PyPI's opentelemetry-proto parses with no unknown field. The
content must be exactly the run the demo made."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from otlp_receiver import JSON, decode_request, span_dicts

REPO = Path(__file__).resolve().parents[2]
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
DIGITS = re.compile(r"^-?[0-9]+$")


def check_conventions(node, path="request"):
    """Walks raw OTLP/JSON and returns every place that breaks the rules."""
    bad = []
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}"
            if "_" in key:
                bad.append(f"{where}: key is not lowerCamelCase")
            if key == "traceId" and not HEX32.match(value):
                bad.append(f"{where}: {value!r} is not 32 lower-case hex digits")
            if key in ("spanId", "parentSpanId") and not HEX16.match(value):
                bad.append(f"{where}: {value!r} is not 16 lower-case hex digits")
            if key in ("startTimeUnixNano", "endTimeUnixNano", "timeUnixNano", "intValue"):
                if not (isinstance(value, str) and DIGITS.match(value)):
                    bad.append(f"{where}: 64-bit integer {value!r} is not a decimal string")
            if key in ("kind", "code", "flags") and not isinstance(value, int):
                bad.append(f"{where}: enum/flags {value!r} is not an integer")
            bad += check_conventions(value, where)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            bad += check_conventions(item, f"{path}[{i}]")
    return bad


@pytest.fixture(scope="module")
def demo_lines(tmp_path_factory):
    demo = Path(os.environ.get("SPANGUARD_DEMO", REPO / "build" / "examples" / "agent_demo"))
    if not demo.exists():
        pytest.fail(f"{demo} is missing: run the tests through `make test`")
    sink = tmp_path_factory.mktemp("sink")
    env = dict(os.environ, SPANGUARD_SINK_DIR=str(sink), SPANGUARD_SPOOL_DIR=str(sink / "spool"))
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    env.pop("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
    run = subprocess.run([str(demo)], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    files = list(sink.glob("*.jsonl"))
    assert len(files) == 1, files
    return [line for line in files[0].read_text().splitlines() if line]


def test_every_line_follows_the_otlp_json_rules(demo_lines):
    assert demo_lines
    for line in demo_lines:
        assert check_conventions(json.loads(line)) == []


def test_every_line_parses_with_no_unknown_field_and_holds_the_demo_run(demo_lines):
    spans = []
    for line in demo_lines:
        request, _ = decode_request(line.encode(), JSON, None, strict=True)
        spans += span_dicts(request)
    names = sorted(s["name"] for s in spans)
    assert names == sorted(["agent.session"] + ["agent.step"] * 3 + ["llm.chat"] * 4
                           + ["tool.call"] * 3 + ["http.get"] * 2 + ["background.prefetch"])
    assert len({(s["trace_id"], s["span_id"]) for s in spans}) == len(spans)
    roots = [s for s in spans if not s["parent_span_id"]]
    assert [r["name"] for r in roots] == ["agent.session"]
    ids = {s["span_id"] for s in spans}
    assert all(s["parent_span_id"] in ids for s in spans if s["parent_span_id"])
    assert {s["trace_id"] for s in spans} == {roots[0]["trace_id"]}
    failed = [s for s in spans if s["status_code"] == 2]
    assert len(failed) == 1 and failed[0]["status_message"] == "upstream timeout after 30s"
    assert failed[0]["events"][0]["attributes"] == {"exception.message": "upstream timeout after 30s"}
    unended = [s for s in spans if s["attributes"].get("spanguard.unended") is True]
    assert [s["name"] for s in unended] == ["background.prefetch"]
    llm = [s for s in spans if s["name"] == "llm.chat"]
    assert all(isinstance(s["attributes"]["gen_ai.usage.input_tokens"], int) for s in llm)
    assert all(s["attributes"]["gen_ai.request.temperature"] == 0.2 for s in llm)
    assert all(s["resource"]["service.name"] == "demo-agent" for s in spans)
    assert all(s["end"] >= s["start"] > 0 for s in spans)


def sink_run(emitter, tmp_path, count, env=None):
    """`count` spans with a 1 KB prompt and an 800-byte completion into the
    local sink, in batches of up to 512 (about 1.2 MB of JSON each)."""
    sink, manifest = tmp_path / "sink", tmp_path / "manifest.json"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANGUARD_"))}
    run = subprocess.run([str(emitter), "--endpoint", "sink", "--sink-dir", str(sink), "--manifest", str(manifest),
                          "--count", str(count), "--batch", "512", "--prompt-bytes", "1000",
                          "--completion-bytes", "800", "--spool-dir", str(tmp_path / "spool"), "--from-env"],
                         capture_output=True, text=True, timeout=120, env={**clean, **(env or {})})
    assert run.returncode == 0, run.stderr
    want = {(s["trace_id"], s["span_id"]) for s in json.loads(manifest.read_text())["spans"]}
    (path,) = sink.glob("*.jsonl")
    return want, path.read_bytes().split(b"\n")


def spans_in(lines):
    spans = []
    for line in lines:
        if line:
            request, _ = decode_request(line, JSON, None, strict=True)
            spans += span_dicts(request)
    return spans


def test_sink_lines_stay_under_the_collectors_limit_and_hold_every_span(emitter, tmp_path):
    """The Collector's otlpjsonfile receiver drops lines over 1 MiB (its default
    max_log_size), so no line may be longer, newline included."""
    want, lines = sink_run(emitter, tmp_path, 3000)
    assert lines[-1] == b"", "the file ends with a newline"
    assert max(len(line) + 1 for line in lines[:-1]) <= 1 << 20
    spans = spans_in(lines)
    got = [(s["trace_id"], s["span_id"]) for s in spans]
    assert len(got) == len(set(got)) == len(want) and set(got) == want
    assert all(len(s["attributes"]["gen_ai.prompt"]) == 1000 for s in spans)


def test_sink_lines_follow_their_setting(emitter, tmp_path):
    want, lines = sink_run(emitter, tmp_path, 300, env={"SPANGUARD_SINK_MAX_LINE_BYTES": "65536"})
    assert max(len(line) + 1 for line in lines[:-1]) <= 65536
    assert {(s["trace_id"], s["span_id"]) for s in spans_in(lines)} == want
