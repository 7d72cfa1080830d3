"""The HTTP path end to end: a C program emits known spans through the C ABI
to a loopback OTLP/HTTP receiver, which decodes them with PyPI's
opentelemetry-proto (not our code). Checked: URL path, content type, gzip,
custom headers, and every span field against what was emitted."""

import json
import subprocess

import pytest

from receiver_client import OtlpReceiverProcess


def typed(value):
    """The manifest's {"type", "value"} for a decoded attribute value."""
    if isinstance(value, bool):
        return {"type": "bool", "value": value}
    if isinstance(value, int):
        return {"type": "int", "value": value}
    if isinstance(value, float):
        return {"type": "double", "value": value}
    if isinstance(value, list):
        return {"type": "array", "value": [typed(v) for v in value]}
    if isinstance(value, dict) and "bytes" in value:
        return {"type": "bytes", "value": value["bytes"]}
    return {"type": "string", "value": value}


def run_emitter(emitter, receiver, tmp_path, protocol, compression, count=24, extra=()):
    manifest = tmp_path / f"manifest-{protocol.replace('/', '_')}-{compression}.json"
    run_id = f"http-{protocol}-{compression}"
    result = subprocess.run(
        [str(emitter), "--endpoint", receiver.endpoint, "--protocol", protocol,
         "--compression", compression, "--run-id", run_id, "--manifest", str(manifest),
         "--count", str(count), "--header", "x-api-key=s3cret,x-team=agents", *extra],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(manifest.read_text())


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_every_emitted_span_arrives_once_with_every_field(emitter, tmp_path, protocol, compression):
    """Every fourth span has array and bytes values, and every fifth an
    LLM-sized payload (a 100,000-byte prompt, a 20,000-byte completion,
    token counts after them, 100 more attributes): all arrive whole, with
    every key."""
    with OtlpReceiverProcess(workdir=tmp_path) as receiver:
        manifest = run_emitter(emitter, receiver, tmp_path, protocol, compression, extra=("--large", "5"))
        receiver.wait_for_spans(len(manifest["spans"]))
        records = receiver.accepted_records()
        assert receiver.duplicate_spans() == {}
        got = {(s["trace_id"], s["span_id"]): s for s in receiver.spans()}

    assert records, "no request reached the receiver"
    for r in records:
        assert r["path"] == "/v1/traces"
        want_type = "application/x-protobuf" if protocol == "http/protobuf" else "application/json"
        assert r["content_type"].split(";")[0] == want_type
        assert (r["content_encoding"] or "") == ("gzip" if compression == "gzip" else "")
        assert r["headers"]["x-api-key"] == "s3cret"
        assert r["headers"]["x-team"] == "agents"
        assert r["headers"]["user-agent"].startswith("spanguard/")

    assert len(got) == len(manifest["spans"])
    assert sum("gen_ai.prompt" in w["attributes"] for w in manifest["spans"]) >= 4
    assert sum("arr.int" in w["attributes"] for w in manifest["spans"]) >= 4
    for want in manifest["spans"]:
        span = got.get((want["trace_id"], want["span_id"]))
        assert span is not None, f"span {want['name']} did not arrive"
        assert span["parent_span_id"] == want["parent_span_id"]
        assert span["name"] == want["name"]
        assert span["kind"] == want["kind"]
        assert span["start"] == want["start_time_unix_nano"]
        assert span["end"] == want["end_time_unix_nano"]
        assert span["status_code"] == want["status"]["code"]
        assert span["status_message"] == want["status"]["message"]
        assert {k: typed(v) for k, v in span["attributes"].items()} == want["attributes"]
        assert [{"name": e["name"], "time_unix_nano": e["time"],
                 "attributes": {k: typed(v) for k, v in e["attributes"].items()}}
                for e in span["events"]] == want["events"]
        assert [{"trace_id": ln["trace_id"], "span_id": ln["span_id"],
                 "attributes": {k: typed(v) for k, v in ln["attributes"].items()}}
                for ln in span["links"]] == want["links"]
        assert span["resource"]["service.name"] == "spanguard-emitter"
        assert span["resource"]["spanguard.run_id"] == manifest["run_id"]
        assert span["resource"]["telemetry.sdk.name"] == "spanguard"
        assert span["scope"] == "spanguard"
        # W3C sampled and random flags (spanguard's trace ids are random:
        # Level 2 says so with the random flag), and "is remote" known and
        # false for local parents.
        assert span["flags"] & 0xFF == 0x03
        assert span["flags"] & 0x100
        assert not span["flags"] & 0x200
