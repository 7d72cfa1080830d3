"""Judges spanguard's OTLP encoders with an independent decoder.

tests/otlp_fixtures.rs writes, per case, our protobuf (<case>.pb) and
OTLP/JSON (<case>.json) encodings and <case>.expected.json, built from the
Rust test's own inputs. Here opentelemetry-proto decodes both encodings and
every field is compared with the expectation. A misnumbered field or a wrong
wire type would be kept silently as an unknown field, so unknown fields are
walked and must be absent.

Run `cargo test --test otlp_fixtures` first; both sides read
$SPANGUARD_FIXTURE_DIR (relative to the repository root), default
target/otlp-fixtures.
"""

import base64
import json
import math
import os
import re
import struct
from pathlib import Path

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.unknown_fields import UnknownFieldSet
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

REPO_ROOT = Path(__file__).resolve().parents[2]


def fixture_dir():
    configured = os.environ.get("SPANGUARD_FIXTURE_DIR")
    if configured:
        return REPO_ROOT / configured
    return REPO_ROOT / "target" / "otlp-fixtures"


def case_names():
    listing = fixture_dir() / "cases.txt"
    if not listing.exists():
        return []
    return [line for line in listing.read_text().splitlines() if line]


CASES = case_names()


def load_expected(case):
    return json.loads((fixture_dir() / f"{case}.expected.json").read_text())


# ---- Walking decoded messages ----


def assert_no_unknown_fields(msg, path="request"):
    unknown = UnknownFieldSet(msg)
    assert len(unknown) == 0, f"{path}: unknown fields " + str(
        [(f.field_number, f.wire_type) for f in unknown]
    )
    for field, value in msg.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        if field.is_repeated:
            for i, item in enumerate(value):
                assert_no_unknown_fields(item, f"{path}.{field.name}[{i}]")
        else:
            assert_no_unknown_fields(value, f"{path}.{field.name}")


# ---- OTLP/JSON conventions ----

# OTLP/JSON differs from proto3 JSON here: ids are hex, not base64.
HEX_ID_CHARS = {"trace_id": 32, "span_id": 16, "parent_span_id": 16}
INT64_TYPES = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_SFIXED64,
}
INT32_TYPES = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_SFIXED32,
}
# Our encoder always writes these span fields, even at their defaults.
ALWAYS_WRITTEN_SPAN_KEYS = {
    "traceId",
    "spanId",
    "name",
    "kind",
    "startTimeUnixNano",
    "endTimeUnixNano",
}


def strict_json(raw, what):
    """Parses JSON rejecting what Python would otherwise let through: bare
    NaN/Infinity, duplicate keys, raw control characters in strings."""

    def no_constants(name):
        raise AssertionError(f"{what}: bare {name} is not JSON")

    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), f"{what}: duplicate keys {keys}"
        return dict(pairs)

    return json.loads(
        raw.decode("utf-8"),
        parse_constant=no_constants,
        object_pairs_hook=no_duplicates,
    )


def to_proto3_json(obj, descriptor, path):
    """Checks OTLP/JSON conventions in `obj` and returns the proto3 JSON that
    json_format expects (ids as base64)."""
    assert isinstance(obj, dict), f"{path}: expected an object"
    by_json_name = {f.json_name: f for f in descriptor.fields}
    converted = {}
    for key, value in obj.items():
        assert re.fullmatch(r"[a-z][A-Za-z0-9]*", key), f"{path}: key {key!r}"
        assert key in by_json_name, f"{path}: {key!r} is not a field of {descriptor.name}"
        field = by_json_name[key]
        if field.is_repeated:
            assert isinstance(value, list), f"{path}.{key}: expected a list"
            converted[key] = [
                convert_value(field, v, f"{path}.{key}[{i}]") for i, v in enumerate(value)
            ]
        else:
            converted[key] = convert_value(field, value, f"{path}.{key}")
    return converted


def convert_value(field, value, path):
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        return to_proto3_json(value, field.message_type, path)
    if kind == FieldDescriptor.TYPE_BYTES and field.name in HEX_ID_CHARS:
        chars = HEX_ID_CHARS[field.name]
        assert isinstance(value, str) and re.fullmatch(f"[0-9a-f]{{{chars}}}", value), (
            f"{path}: {value!r} is not {chars} lowercase hex digits"
        )
        return base64.b64encode(bytes.fromhex(value)).decode()
    if kind in INT64_TYPES:
        assert isinstance(value, str) and re.fullmatch(r"-?(0|[1-9][0-9]*)", value), (
            f"{path}: 64-bit integers are decimal strings, got {value!r}"
        )
    elif kind == FieldDescriptor.TYPE_ENUM or kind in INT32_TYPES:
        assert type(value) is int, f"{path}: expected an integer, got {value!r}"
    elif kind == FieldDescriptor.TYPE_DOUBLE:
        assert type(value) in (int, float) or value in ("NaN", "Infinity", "-Infinity"), (
            f"{path}: {value!r} is not a double"
        )
    elif kind == FieldDescriptor.TYPE_BOOL:
        assert type(value) is bool, f"{path}: expected a bool"
    elif kind == FieldDescriptor.TYPE_STRING:
        assert isinstance(value, str), f"{path}: expected a string"
    return value


def assert_defaults_omitted(ours, canonical, descriptor, path):
    """Our JSON has the keys a proto3 JSON encoder would write: none missing,
    and no extra defaults except the span fields we always write."""
    extra = set(ours) - set(canonical)
    missing = set(canonical) - set(ours)
    allowed = ALWAYS_WRITTEN_SPAN_KEYS if descriptor.full_name == Span.DESCRIPTOR.full_name else set()
    assert not missing, f"{path}: missing {sorted(missing)}"
    assert extra <= allowed, f"{path}: default values written for {sorted(extra - allowed)}"
    by_json_name = {f.json_name: f for f in descriptor.fields}
    for key in set(ours) & set(canonical):
        field = by_json_name[key]
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        if field.is_repeated:
            assert len(ours[key]) == len(canonical[key]), f"{path}.{key}"
            for i, (a, b) in enumerate(zip(ours[key], canonical[key])):
                assert_defaults_omitted(a, b, field.message_type, f"{path}.{key}[{i}]")
        else:
            assert_defaults_omitted(ours[key], canonical[key], field.message_type, f"{path}.{key}")


# ---- Comparing with the expectation ----

ONEOF_TYPES = {
    "string_value": "string",
    "int_value": "int",
    "double_value": "double",
    "bool_value": "bool",
    "bytes_value": "bytes",
    "array_value": "array",
}


def check_value(any_value, exp, where):
    which = any_value.WhichOneof("value")
    assert ONEOF_TYPES.get(which) == exp["type"], f"{where}: type {which}"
    value = getattr(any_value, which)
    if exp["type"] == "double":
        wanted = struct.unpack(">d", bytes.fromhex(exp["bits"]))[0]
        if math.isnan(wanted):
            assert math.isnan(value), f"{where}: {value} is not NaN"
        else:
            assert struct.pack(">d", value).hex() == exp["bits"], f"{where}: {value} != {wanted}"
    elif exp["type"] == "bytes":
        assert value == bytes.fromhex(exp["hex"]), f"{where}: {len(value)} bytes differ"
    elif exp["type"] == "array":
        assert len(value.values) == len(exp["values"]), f"{where}: {len(value.values)} elements"
        for i, (item, e) in enumerate(zip(value.values, exp["values"])):
            check_value(item, e, f"{where}[{i}]")
    else:
        assert type(value) is type(exp["value"]), f"{where}: {value!r}"
        assert value == exp["value"], f"{where}: {str(value)[:80]!r} != {str(exp['value'])[:80]!r}"


def check_attributes(actual, expected, path):
    assert [kv.key for kv in actual] == [e["key"] for e in expected], f"{path}: keys"
    for kv, exp in zip(actual, expected):
        check_value(kv.value, exp, f"{path}[{exp['key']!r}]")


def check_span(span, exp, path):
    assert span.trace_id == bytes.fromhex(exp["trace_id"]), f"{path}.trace_id"
    assert span.span_id == bytes.fromhex(exp["span_id"]), f"{path}.span_id"
    assert span.parent_span_id == bytes.fromhex(exp["parent_span_id"]), f"{path}.parent_span_id"
    assert span.trace_state == exp["trace_state"], f"{path}.trace_state"
    assert span.flags == exp["flags"], f"{path}.flags {span.flags:#x}"
    assert span.name == exp["name"], f"{path}.name"
    assert span.kind == exp["kind"], f"{path}.kind"
    assert span.start_time_unix_nano == exp["start_time_unix_nano"], f"{path}.start"
    assert span.end_time_unix_nano == exp["end_time_unix_nano"], f"{path}.end"
    check_attributes(span.attributes, exp["attributes"], f"{path}.attributes")
    assert span.dropped_attributes_count == exp["dropped_attributes_count"], f"{path}.dropped_attributes_count"

    assert len(span.events) == len(exp["events"]), f"{path}.events"
    for i, (event, e) in enumerate(zip(span.events, exp["events"])):
        where = f"{path}.events[{i}]"
        assert event.time_unix_nano == e["time_unix_nano"], f"{where}.time"
        assert event.name == e["name"], f"{where}.name"
        check_attributes(event.attributes, e["attributes"], f"{where}.attributes")
        assert event.dropped_attributes_count == e["dropped_attributes_count"], where
    assert span.dropped_events_count == exp["dropped_events_count"], f"{path}.dropped_events_count"

    assert len(span.links) == len(exp["links"]), f"{path}.links"
    for i, (link, e) in enumerate(zip(span.links, exp["links"])):
        where = f"{path}.links[{i}]"
        assert link.trace_id == bytes.fromhex(e["trace_id"]), f"{where}.trace_id"
        assert link.span_id == bytes.fromhex(e["span_id"]), f"{where}.span_id"
        assert link.trace_state == e["trace_state"], f"{where}.trace_state"
        assert link.flags == e["flags"], f"{where}.flags"
        check_attributes(link.attributes, e["attributes"], f"{where}.attributes")
        assert link.dropped_attributes_count == e["dropped_attributes_count"], where
    assert span.dropped_links_count == exp["dropped_links_count"], f"{path}.dropped_links_count"

    assert span.status.code == exp["status"]["code"], f"{path}.status.code"
    assert span.status.message == exp["status"]["message"], f"{path}.status.message"


def check_request(request, exp, label):
    assert_no_unknown_fields(request, label)
    assert len(request.resource_spans) == 1, f"{label}: one ResourceSpans"
    rs = request.resource_spans[0]
    assert rs.schema_url == ""
    check_attributes(rs.resource.attributes, exp["resource"]["attributes"], f"{label}.resource")
    assert rs.resource.dropped_attributes_count == 0
    assert len(rs.scope_spans) == len(exp["scope_spans"]), f"{label}: one ScopeSpans a scope"
    for g, (ss, group) in enumerate(zip(rs.scope_spans, exp["scope_spans"])):
        where = f"{label}.scope_spans[{g}]"
        assert ss.scope.name == group["scope"]["name"], f"{where}.scope.name"
        assert ss.scope.version == group["scope"]["version"], f"{where}.scope.version"
        check_attributes(ss.scope.attributes, group["scope"].get("attributes", []), f"{where}.scope.attributes")
        assert len(ss.spans) == len(group["spans"]), f"{where}: span count"
        for i, (span, e) in enumerate(zip(ss.spans, group["spans"])):
            check_span(span, e, f"{where}.spans[{i}]")


# ---- Tests ----


def test_fixtures_exist():
    assert CASES, (
        f"no fixtures listed in {fixture_dir() / 'cases.txt'}: "
        "run `cargo test --test otlp_fixtures` first"
    )


def test_fixtures_cover_every_field():
    """The cases together exercise what the encoders must handle, so a case
    quietly removed from the Rust side is noticed here."""
    spans = [s for case in CASES for g in load_expected(case)["scope_spans"] for s in g["spans"]]
    attrs = [a for s in spans for a in s["attributes"]]
    assert {s["kind"] for s in spans} == set(range(6))
    assert {a["type"] for a in attrs} == {"string", "int", "double", "bool", "bytes", "array"}
    elements = [v for a in attrs if a["type"] == "array" for v in a["values"]]
    assert {v["type"] for v in elements} == {"string", "int", "double", "bool"}
    # LLM-sized text (it crosses chunks of the payload pool).
    assert any(a["type"] == "string" and len(a["value"].encode()) >= 100_000 for a in attrs)
    assert any(a["type"] == "bytes" and len(a["hex"]) > 2 * 4096 for a in attrs)
    # Dropped attributes counted on an event and a link themselves.
    assert any(e["dropped_attributes_count"] for s in spans for e in s["events"])
    assert any(l["dropped_attributes_count"] for s in spans for l in s["links"])
    ints = {a["value"] for a in attrs if a["type"] == "int"}
    assert {-(2**63), 2**63 - 1, -1} <= ints
    doubles = {a["bits"] for a in attrs if a["type"] == "double"}
    assert {struct.pack(">d", v).hex() for v in (0.5, -1e300, math.nan)} <= doubles
    assert any(s["flags"] & 0x200 for s in spans) and any(s["parent_span_id"] for s in spans)
    assert any(e["attributes"] for s in spans for e in s["events"])
    assert any(l["trace_state"] and l["attributes"] for s in spans for l in s["links"])
    assert any(s["status"]["code"] == 2 and s["status"]["message"] for s in spans)
    for count in ("dropped_attributes_count", "dropped_events_count", "dropped_links_count"):
        assert any(s[count] for s in spans), count
    assert any(len(load_expected(case)["scope_spans"]) > 1 for case in CASES), "several scopes"
    keys = {a["key"] for a in attrs}
    assert {"spanguard.unended", "spanguard.interrupted", "spanguard.signal"} <= keys


@pytest.mark.parametrize("case", CASES or ["<no fixtures>"])
def test_case(case):
    directory = fixture_dir()
    expected = load_expected(case)
    assert expected["case"] == case

    from_pb = ExportTraceServiceRequest.FromString((directory / f"{case}.pb").read_bytes())
    check_request(from_pb, expected, f"{case}.pb")

    raw_json = (directory / f"{case}.json").read_bytes()
    assert not raw_json.endswith(b"\n"), "no trailing newline"
    ours = strict_json(raw_json, f"{case}.json")
    proto3 = to_proto3_json(ours, ExportTraceServiceRequest.DESCRIPTOR, "json")
    from_json = json_format.ParseDict(proto3, ExportTraceServiceRequest())
    check_request(from_json, expected, f"{case}.json")

    canonical = json_format.MessageToDict(from_json, use_integers_for_enums=True)
    assert_defaults_omitted(ours, canonical, ExportTraceServiceRequest.DESCRIPTOR, "json")

    assert from_pb == from_json
    assert from_pb.SerializeToString(deterministic=True) == from_json.SerializeToString(
        deterministic=True
    )
