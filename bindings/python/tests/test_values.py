"""OpenTelemetry's value types through the Python package, and an
LLM-sized span, judged by what the loopback receiver decoded with
opentelemetry-proto (strict: unknown fields and bad ids are refused)."""

import os

import pytest

import spanguard


def tracer_to(receiver, tmp_path, protocol="http/protobuf", **extra):
    return spanguard.Tracer(from_env=False, service_name="py-values", endpoint=receiver.traces_url,
                            protocol=protocol, spool_dir=tmp_path / "spool", schedule_delay_ms=50,
                            install_signal_handlers=False, **extra)


def arrived(receiver, before: int, tracer) -> dict:
    assert tracer.flush(20)
    out = {}
    for s in receiver.spans()[before:]:
        assert s["name"] not in out, f"{s['name']} arrived twice"
        out[s["name"]] = s
    return out


ARRAYS = {
    "gen_ai.response.finish_reasons": ("stop", "length"),
    "strings.list": ["a", "", "ünï"],
    "ints": [1, -2, 2 ** 63 - 1, -(2 ** 63)],
    "doubles": (0.5, -1.25, 1e300),
    "bools": [True, False, True],
    "empty": [],
}
BYTES = {
    "raw.bytes": b"\x00\xff\x10\x80",
    "raw.bytearray": bytearray(b"\x01\x02"),
    "raw.memoryview": memoryview(b"xyz\x00"),
    "raw.empty": b"",
}


def expected(attrs: dict) -> dict:
    """An attribute dict as the receiver reports it (arrays as lists,
    bytes as {"bytes": hex})."""
    out = {}
    for k, v in attrs.items():
        if isinstance(v, (bytes, bytearray, memoryview)):
            out[k] = {"bytes": bytes(v).hex()}
        elif isinstance(v, (list, tuple)):
            out[k] = list(v)
        else:
            out[k] = v
    return out


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_arrays_and_bytes_round_trip_everywhere_a_value_goes(receiver, tmp_path, protocol):
    before = len(receiver.spans())
    tracer = tracer_to(receiver, tmp_path, protocol)
    everything = {**ARRAYS, **BYTES}
    with tracer.span("at.start", attributes=everything):
        pass
    with tracer.span("one.by.one") as span:
        for k, v in everything.items():
            span.set_attribute(k, v)
    with tracer.span("all.at.once") as span:
        span.set_attributes(everything)
        span.add_event("event", everything)
        with tracer.span("linked") as linked:
            span.add_link(linked.traceparent(), everything)
    spans = arrived(receiver, before, tracer)
    want = expected(everything)
    for name in ("at.start", "one.by.one", "all.at.once"):
        assert spans[name]["attributes"] == want, name
    (event,) = spans["all.at.once"]["events"]
    assert event["attributes"] == want
    (link,) = spans["all.at.once"]["links"]
    assert link["attributes"] == want
    assert tracer.stats().values_rejected == 0
    tracer.close()


TOOL_ARGS = {"city": "Paris", "days": [1, 2.5, "x"], "ok": None}
# As the receiver reports a complex value: maps as dicts, arrays as lists,
# the empty value as None.
COMPLEX = {
    "tool.args": TOOL_ARGS,
    "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "hé"}]},
                              {"role": "assistant", "tool_calls": ({"name": "weather", "id": 7},)}],
    "mixed": [1, "two"],
    "int.and.float": (1, 2.5),
    "bool.and.int": [True, 1],
    "none.and.mixed": [None, "a", 1],
    "nested": [[1], [2]],
    "none": None,
    "empty.map": {},
    "raw.inside": {"b": b"\x00\xff"},
}


def reported(v):
    """A complex value as the receiver reports it."""
    if isinstance(v, dict):
        return {k: reported(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [reported(x) for x in v]
    if isinstance(v, bytes):
        return {"bytes": v.hex()}
    return v


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_maps_mixed_and_nested_values_and_none_arrive_whole(receiver, tmp_path, protocol):
    # OpenTelemetry's complex attribute values (AnyValue), which its Python
    # SDK keeps and LLM instrumentations set (tool-call arguments, message
    # lists): sent whole, as kvlistValue and arrayValue, by every setter.
    before = len(receiver.spans())
    tracer = tracer_to(receiver, tmp_path, protocol)
    with tracer.span("tool.call") as span:
        span.set_attribute("tool.args", TOOL_ARGS)
    with tracer.span("at.start", attributes=COMPLEX):
        pass
    with tracer.span("one.by.one") as span:
        for k, v in COMPLEX.items():
            span.set_attribute(k, v)
    with tracer.span("all.at.once") as span:
        span.set_attributes(COMPLEX)
        span.add_event("event", COMPLEX)
    spans = arrived(receiver, before, tracer)
    assert spans["tool.call"]["attributes"] == {"tool.args": {"city": "Paris", "days": [1, 2.5, "x"], "ok": None}}
    want = {k: reported(v) for k, v in COMPLEX.items()}
    for name in ("at.start", "one.by.one", "all.at.once"):
        assert spans[name]["attributes"] == want, name
        assert spans[name]["dropped_attributes_count"] == 0
    (event,) = spans["all.at.once"]["events"]
    assert event["attributes"] == want
    assert tracer.stats().values_rejected == 0
    tracer.close()


def test_a_complex_value_arrives_whole_in_the_sink(tmp_path):
    # The local sink writes OTLP/JSON lines: the map is a kvlistValue there
    # too, read back by opentelemetry-proto.
    from conftest import by_name, read_sink, tracer_settings
    tracer = spanguard.Tracer(**tracer_settings(tmp_path))
    with tracer.span("tool.call") as span:
        span.set_attribute("tool.args", TOOL_ARGS)
    assert tracer.flush(20)
    tracer.close()
    spans = by_name(read_sink(tmp_path / "sink"))
    assert spans["tool.call"]["attributes"] == {"tool.args": {"city": "Paris", "days": [1, 2.5, "x"], "ok": None}}


def test_the_value_length_limit_cuts_strings_inside_a_complex_value(receiver, tmp_path):
    # OpenTelemetry's attribute limits: each string in an array or a map
    # is cut at the limit (characters), counted.
    before = len(receiver.spans())
    tracer = tracer_to(receiver, tmp_path, value_length_limit=3)
    with tracer.span("cut") as span:
        span.set_attribute("messages", [{"content": "ééééé", "n": 12345}, "abcdef", b"\x01\x02\x03\x04"])
    spans = arrived(receiver, before, tracer)
    assert spans["cut"]["attributes"] == {"messages": [{"content": "ééé", "n": 12345}, "abc", {"bytes": "010203"}]}
    assert tracer.stats().values_truncated == 1
    tracer.close()


def test_values_no_complex_value_can_hold_stay_out_counted_and_never_raise(receiver, tmp_path):
    before = len(receiver.spans())
    tracer = tracer_to(receiver, tmp_path)
    with tracer.span("refused") as span:
        span.set_attribute("int.key", {1: "x"})
        span.set_attribute("object.inside", {"a": object()})
        span.set_attribute("int.too.big", [1, 2 ** 64])
        span.set_attributes({"kept": ["fine"], "mixed.too": ("x", 1), "set.inside": [{1, 2}]})
    spans = arrived(receiver, before, tracer)
    assert spans["refused"]["attributes"] == {"kept": ["fine"], "mixed.too": ["x", 1]}
    assert tracer.stats().values_rejected == 4
    tracer.close()


def nested(levels, inner, kept=None):
    """`inner` in `levels` lists and dicts in turn (the innermost a list);
    with `kept`, only the outer `kept` of them, around None: what a depth
    limit of `kept` leaves of it."""
    v, start = (inner, 0) if kept is None else (None, levels - kept)
    for i in range(start, levels):
        v = [v] if i % 2 == 0 else {"k": v}
    return v


def test_values_nested_deeper_than_the_depth_limit_arrive_with_none_in_their_place(receiver, tmp_path):
    # OpenTelemetry's attribute_value_depth_limit: the attribute's value is
    # level 1, and a list or dict deeper than the limit is replaced by the
    # empty value, the rest kept (it was left out whole past 32). Judged by
    # the receiver's decoder (opentelemetry-proto). A limit of 20 here: the
    # default, 64, nests past the 100 message levels Python's protobuf
    # (upb) decodes, and the receiver refuses such a request whole (the
    # Rust and C tests check 64 against spanguard's sink).
    before = len(receiver.spans())
    tracer = tracer_to(receiver, tmp_path, value_depth_limit=20)
    holds_itself = [1]
    holds_itself.append(holds_itself)
    with tracer.span("deep") as span:
        span.set_attribute("at.limit", nested(20, 7))
        span.set_attribute("past.limit", nested(21, 7))
        span.set_attribute("far.past", nested(1000, 7))
        # Ten times Python's own recursion limit: the binding reads 129
        # levels, never recursing past them (no RecursionError, no crash).
        span.set_attribute("ten.thousand", nested(10_000, 7))
        span.set_attribute("holds.itself", holds_itself)
        span.set_attribute("wide", list(range(100_000)))
    spans = arrived(receiver, before, tracer)
    attributes = spans["deep"]["attributes"]
    assert attributes["at.limit"] == nested(20, 7)
    assert attributes["past.limit"] == nested(21, 7, kept=20)
    assert attributes["far.past"] == nested(1000, 7, kept=20)
    assert attributes["ten.thousand"] == nested(10_000, 7, kept=20)
    assert attributes["wide"] == list(range(100_000))
    itself = None  # each level [1, the next], the 21st replaced
    for _ in range(20):
        itself = [1, itself]
    assert attributes["holds.itself"] == itself
    assert tracer.stats().values_truncated == 4
    assert tracer.stats().values_rejected == 0
    tracer.close()


def test_a_value_left_out_is_counted_on_its_span_as_a_dropped_attribute(receiver, tmp_path):
    # OpenTelemetry's Python SDK counts an attribute it refuses in the
    # span's dropped attributes (and spanguard counts an empty key there):
    # a span whose values were left out must not arrive saying it lost none.
    before = len(receiver.spans())
    tracer = tracer_to(receiver, tmp_path)
    with tracer.span("lossy", attributes={"at.start": {1: "int key"}, "kept.at.start": 1}) as span:
        span.set_attribute("a.dict", {"role": object()})  # a scalar setter's value
        span.set_attribute("too.big", 2 ** 64)
        span.set_attribute("a.set", {1})
        span.set_attribute("mixed", [1, 2 ** 64])  # an array's
        span.set_attributes({"kept": "fine", "obj": object(), "nested": ((1,), (object(),))})
    with tracer.span("whole") as span:
        span.set_attributes({"kept": "fine", "n": 2 ** 63 - 1})
    spans = arrived(receiver, before, tracer)
    assert spans["lossy"]["attributes"] == {"kept.at.start": 1, "kept": "fine"}
    assert spans["lossy"]["dropped_attributes_count"] == 7
    assert spans["whole"]["dropped_attributes_count"] == 0
    assert tracer.stats().values_rejected == 7
    tracer.close()


def test_a_none_in_an_array_arrives_as_its_types_zero(receiver, tmp_path):
    # OpenTelemetry keeps nulls in arrays and lets an exporter that cannot
    # send one send "", 0 or false: the other elements arrive.
    before = len(receiver.spans())
    tracer = tracer_to(receiver, tmp_path)
    with tracer.span("nulls") as span:
        span.set_attributes({"s": ["a", None, "c"], "i": (None, 2), "f": [1.5, None], "b": [None, True],
                             "all.none": [None, None]})
    spans = arrived(receiver, before, tracer)
    assert spans["nulls"]["attributes"] == {"s": ["a", "", "c"], "i": [0, 2], "f": [1.5, 0.0], "b": [False, True],
                                           "all.none": ["", ""]}
    assert tracer.stats().values_rejected == 0
    tracer.close()


def test_an_llm_sized_span_arrives_whole_with_every_key(receiver, tmp_path):
    before = len(receiver.spans())
    tracer = tracer_to(receiver, tmp_path)
    prompt = "".join(chr(ord("a") + i % 26) for i in range(100_000))
    completion = "".join(chr(ord("A") + i % 26) for i in range(20_000))
    extra = {f"extra.{i}": f"value-{i}" for i in range(100)}
    with tracer.span("llm.chat", kind=spanguard.KIND_CLIENT) as llm:
        llm.set_attribute("gen_ai.prompt", prompt)
        llm.set_attribute("gen_ai.completion", completion)
        llm.set_attribute("gen_ai.usage.input_tokens", 25_000)
        llm.set_attribute("gen_ai.usage.output_tokens", 5_000)
        llm.set_attributes(extra)
    with tracer.span("llm.chat.at.once", kind=spanguard.KIND_CLIENT) as llm:
        llm.set_attributes({"gen_ai.prompt": prompt, "gen_ai.completion": completion})
        llm.set_attributes({"gen_ai.usage.input_tokens": 25_000, "gen_ai.usage.output_tokens": 5_000, **extra})
    spans = arrived(receiver, before, tracer)
    want = {"gen_ai.prompt": prompt, "gen_ai.completion": completion, "gen_ai.usage.input_tokens": 25_000,
            "gen_ai.usage.output_tokens": 5_000, **extra}
    for name in ("llm.chat", "llm.chat.at.once"):
        assert spans[name]["attributes"] == want, name
        assert spans[name]["dropped_attributes_count"] == 0
    stats = tracer.stats()
    assert stats.values_truncated == 0 and stats.attributes_dropped == 0
    tracer.close()


def test_more_attributes_than_one_call_takes_are_all_set(receiver, tmp_path):
    """One call into the library takes 128 attributes: more are set in as
    many calls as needed, at start and later."""
    before = len(receiver.spans())
    tracer = tracer_to(receiver, tmp_path, attribute_count_limit=1000)
    many = {f"k{i}": i for i in range(300)}
    with tracer.span("many.at.start", attributes=many):
        pass
    with tracer.span("many.later") as span:
        span.set_attributes(many)
    spans = arrived(receiver, before, tracer)
    assert spans["many.at.start"]["attributes"] == many
    assert spans["many.later"]["attributes"] == many
    tracer.close()


def test_the_limits_are_settings(receiver, tmp_path):
    before = len(receiver.spans())
    tracer = tracer_to(receiver, tmp_path, value_length_limit=4, attribute_count_limit=2, event_count_limit=1,
                       link_count_limit=1, event_attribute_count_limit=1, link_attribute_count_limit=1,
                       payload_pool_mib=1)
    with tracer.span("limited") as span:
        span.set_attributes({"a": "abcdefgh", "b": ["abcdefgh", "xy"], "c": 3})
        span.add_event("e1", {"x": 1, "y": 2})
        span.add_event("e2")
        span.add_link("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", {"x": 1, "y": 2})
        span.add_link("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203332-01")
    (got,) = arrived(receiver, before, tracer).values()
    assert got["attributes"] == {"a": "abcd", "b": ["abcd", "xy"]}
    assert got["dropped_attributes_count"] == 1
    assert [(e["name"], e["dropped_attributes_count"]) for e in got["events"]] == [("e1", 1)]
    assert got["dropped_events_count"] == 1
    assert [ln["dropped_attributes_count"] for ln in got["links"]] == [1]
    assert got["dropped_links_count"] == 1
    tracer.close()
    with pytest.raises(TypeError):
        spanguard.Tracer(from_env=False, attribute_count_limit="many")


def test_an_empty_key_is_left_out_counted_and_never_raises(receiver, tmp_path):
    # OpenTelemetry: "the attribute key MUST be a non-null and non-empty
    # string"; the SDK leaves such an attribute out with a warning.
    before = len(receiver.spans())
    tracer = tracer_to(receiver, tmp_path)
    dropped = tracer.stats().attributes_dropped
    with tracer.span("empty.key") as span:
        span.set_attribute("", 1)
        span.set_attributes({"": "x", "kept": 2})
    (got,) = arrived(receiver, before, tracer).values()
    assert got["attributes"] == {"kept": 2}
    assert got["dropped_attributes_count"] == 2
    assert tracer.stats().attributes_dropped - dropped == 2
    tracer.close()


def test_update_name_renames_the_span(receiver, tmp_path):
    before = len(receiver.spans())
    tracer = tracer_to(receiver, tmp_path)
    with tracer.span("first.name") as span:
        span.update_name("second.name")
    spans = arrived(receiver, before, tracer)
    assert list(spans) == ["second.name"]
    tracer.close()


def _resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_prefault_slots_makes_the_slots_resident_at_start(tmp_path):
    # 8,192 + 2,048 slots of 3 KiB: about 30 MiB, resident at once.
    before = _resident_bytes()
    tracer = spanguard.Tracer(from_env=False, endpoint="discard:", install_signal_handlers=False,
                              sink_dir=str(tmp_path / "sink"), spool_dir=str(tmp_path / "spool"),
                              max_queue_size=8192, prefault_slots=True)
    grown = _resident_bytes() - before
    with tracer.span("after"):
        pass
    assert tracer.flush(10)
    tracer.close()
    assert grown >= 25 << 20, f"resident set grew {grown} bytes"


def test_a_sampled_out_span_is_not_recording(tmp_path):
    # OpenTelemetry: a DROP decision means IsRecording is false; the span
    # still carries its context (the sampled flag clear) for what it calls
    # downstream.
    for sampler, recording in (("always_off", False), ("always_on", True)):
        tracer = spanguard.Tracer(from_env=False, endpoint="discard:", sampler=sampler,
                                  install_signal_handlers=False, spool_dir=tmp_path / sampler)
        span = tracer.start_span("sampled." + sampler)
        assert span.is_recording() is recording
        assert int(span.traceparent()[-2:], 16) & 1 == recording
        span.end()
        assert span.is_recording() is False
        tracer.close()


def test_a_time_of_any_type_never_raises(receiver, tmp_path):
    """Recording calls never raise: a float of nanoseconds and a datetime are
    times; a string, a negative or a NaN is now, counted in values_rejected.
    (An end() that raised left its span open; a record_exception() that
    raised in an except block replaced the application's exception.)"""
    import datetime
    import math
    import time

    tracer = tracer_to(receiver, tmp_path)
    before = len(receiver.spans())
    at = 1_700_000_000_123_456_789
    as_datetime = datetime.datetime.fromtimestamp(1_700_000_000.5, tz=datetime.timezone.utc)
    span = tracer.start_span("floats", start_time=float(at))
    span.add_event("as.datetime", timestamp=as_datetime)
    span.record_exception(ValueError("x"), timestamp=float(at))
    span.end(end_time=float(at + 1_000_000))
    t0 = time.time_ns()
    rejected = tracer.stats().values_rejected
    bad = tracer.start_span("bad", start_time="yesterday")
    for when in (-5, math.nan, "now", object()):
        bad.add_event("bad.time", timestamp=when)
    bad.end(end_time=-1)
    t1 = time.time_ns()
    assert tracer.stats().values_rejected - rejected == 6
    spans = arrived(receiver, before, tracer)
    floats = spans["floats"]
    assert abs(floats["start"] - at) < 1000 and abs(floats["end"] - (at + 1_000_000)) < 1000
    assert floats["events"][0]["time"] == 1_700_000_000_500_000_000
    assert abs(floats["events"][1]["time"] - at) < 1000
    for t in [spans["bad"]["start"], spans["bad"]["end"]] + [e["time"] for e in spans["bad"]["events"]]:
        assert t0 - 10**9 <= t <= t1 + 10**9
    tracer.close()


def test_a_zero_length_limit_in_the_environment_is_zero_in_the_struct_none(receiver, tmp_path, monkeypatch):
    # OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT=0 is a limit of 0, as the SDK
    # configuration spec (valid values are non-negative, no custom meaning)
    # and the Python and Go SDKs read it: every string and bytes value is
    # sent empty, counted. A 0 given in code is the default: no limit.
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "0")
    before = len(receiver.spans())
    limited = spanguard.Tracer(service_name="py-values", endpoint=receiver.traces_url,
                               spool_dir=tmp_path / "spool-env", schedule_delay_ms=50, install_signal_handlers=False)
    with limited.span("env.zero") as span:
        span.set_attributes({"prompt": "hello", "tags": ["a", "bc"], "raw": b"xyz", "n": 7})
    spans = arrived(receiver, before, limited)
    assert spans["env.zero"]["attributes"] == {"prompt": "", "tags": ["", ""], "raw": {"bytes": ""}, "n": 7}
    assert limited.stats().values_truncated == 4
    limited.close()
    before = len(receiver.spans())
    whole = tracer_to(receiver, tmp_path, value_length_limit=0)
    with whole.span("struct.zero") as span:
        span.set_attribute("prompt", "hello")
    spans = arrived(receiver, before, whole)
    assert spans["struct.zero"]["attributes"] == {"prompt": "hello"}
    assert whole.stats().values_truncated == 0
    whole.close()


def test_a_begin_waiting_for_a_slot_is_counted(tmp_path):
    # 26 of the 32 slots held open, 20 spans through the 6 left: a begin
    # finds every slot taken, ended spans among them, and waits for the
    # exporter to give one back.
    from conftest import tracer_settings
    tracer = spanguard.Tracer(**tracer_settings(tmp_path, max_queue_size=16, max_open_spans=16))
    try:
        held = [tracer.start_span("held") for _ in range(26)]
        stats = tracer.stats()
        assert (stats.slot_waits, stats.slot_wait_ns) == (0, 0), stats
        for _ in range(20):
            tracer.start_span("through").end()
        stats = tracer.stats()
        assert stats.slot_waits > 0 and stats.slot_wait_ns > 0, stats
        assert stats.dropped_buffer_full == 0, stats
        for s in held:
            s.end()
    finally:
        tracer.close()


def test_a_key_or_name_of_any_type_is_its_text_never_raises(receiver, tmp_path):
    """As the Node binding takes one: a key, name or event name that is not
    a str is its str(), and '<unprintable>' when str() raises; the span and
    its other attributes arrive."""

    class Unprintable:
        def __str__(self):
            raise RuntimeError("no text")

    tracer = tracer_to(receiver, tmp_path)
    before = len(receiver.spans())
    span = tracer.start_span(42)
    span.set_attribute(5, "five")
    span.set_attribute(Unprintable(), "unprintable")
    span.set_attributes({7: "seven", "kept": 1})
    span.add_event(Unprintable())
    span.end()
    renamed = tracer.start_span("renamed")
    renamed.update_name(Unprintable())
    renamed.end()
    spans = arrived(receiver, before, tracer)
    assert spans["42"]["attributes"] == {"5": "five", "<unprintable>": "unprintable", "7": "seven", "kept": 1}
    assert [e["name"] for e in spans["42"]["events"]] == ["<unprintable>"]
    assert "<unprintable>" in spans
    tracer.close()
