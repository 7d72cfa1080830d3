"""The OpenTelemetry bridge through the SDK's own API: what the loopback
receiver gets (decoded with opentelemetry-proto) must be the spans an
in-memory exporter on the same provider got: the same ids, parents,
times, kinds, scopes, attributes, events, links and status."""


import textwrap

import pytest
from opentelemetry import context, propagate, trace
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

import spanguard
from spanguard.otel import SpanguardSpanProcessor


def provider_and_tracer(receiver, tmp_path, tracer_settings=None, **provider_args):
    """A provider (`provider_args`) with the bridge, over a spanguard tracer
    sending to the receiver (`tracer_settings` added to its own), and an
    in-memory exporter side by side: what the SDK kept, to compare with."""
    tracer = spanguard.Tracer(from_env=False, endpoint=receiver.traces_url, spool_dir=tmp_path / "spool",
                              schedule_delay_ms=50, install_signal_handlers=False, **(tracer_settings or {}))
    provider = TracerProvider(**provider_args)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SpanguardSpanProcessor(tracer))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory, tracer


@pytest.fixture
def bridged(receiver, tmp_path):
    """A provider with the bridge and an in-memory exporter side by side."""
    start = len(receiver.spans())
    provider, memory, tracer = provider_and_tracer(receiver, tmp_path, {"service_name": "bridge-test"})

    def arrived():
        assert provider.force_flush()
        return {s["span_id"]: s for s in receiver.spans()[start:]}

    yield provider, memory, arrived
    provider.shutdown()
    tracer.close()


def hex_ids(otel_span):
    ctx = otel_span.get_span_context()
    parent = otel_span.parent
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}", f"{parent.span_id:016x}" if parent else ""


def assert_same(otel_span, got: dict):
    trace_id, span_id, parent_id = hex_ids(otel_span)
    assert (got["trace_id"], got["span_id"], got["parent_span_id"]) == (trace_id, span_id, parent_id)
    assert got["name"] == otel_span.name
    assert got["kind"] == otel_span.kind.value + 1
    assert (got["start"], got["end"]) == (otel_span.start_time, otel_span.end_time)
    assert got["scope"] == otel_span.instrumentation_scope.name
    assert got["scope_version"] == (otel_span.instrumentation_scope.version or "")
    assert got["scope_schema_url"] == (otel_span.instrumentation_scope.schema_url or "")
    assert got["status_code"] == otel_span.status.status_code.value
    assert got["status_message"] == (otel_span.status.description or "")
    assert got["attributes"] == as_received(otel_span.attributes)
    assert [(e["name"], e["time"], e["attributes"]) for e in got["events"]] == \
        [(e.name, e.timestamp, as_received(e.attributes)) for e in otel_span.events]
    assert [(ln["trace_id"], ln["span_id"], ln["trace_state"], ln["attributes"]) for ln in got["links"]] == \
        [(f"{ln.context.trace_id:032x}", f"{ln.context.span_id:016x}",
          ln.context.trace_state.to_header() if ln.context.trace_state else "", as_received(ln.attributes))
         for ln in otel_span.links]
    assert (got["dropped_attributes_count"], got["dropped_events_count"], got["dropped_links_count"]) == \
        (otel_span.dropped_attributes, otel_span.dropped_events, otel_span.dropped_links)


def as_received(attributes) -> dict:
    """OpenTelemetry attributes as the receiver reports them: arrays (the
    SDK keeps tuples) as lists, bytes as {"bytes": hex}."""
    return {k: list(v) if isinstance(v, tuple) else {"bytes": v.hex()} if isinstance(v, bytes) else v
            for k, v in (attributes or {}).items()}


def test_spans_arrive_with_the_sdk_ids_and_everything_the_sdk_recorded(bridged):
    provider, memory, arrived = bridged
    agent_tracer = provider.get_tracer("my.agent", "1.4.0", schema_url="https://opentelemetry.io/schemas/1.28.0")
    tool_tracer = provider.get_tracer("my.tools")
    with agent_tracer.start_as_current_span("agent.run", kind=trace.SpanKind.SERVER,
                                            attributes={"session.id": "s-1", "turn": 3}) as agent:
        agent.set_attribute("user.tier", "pro")
        agent.add_event("plan.ready", {"steps": 2, "tools": ("search", "calc"), "weights": [0.5, 0.25]})
        with tool_tracer.start_as_current_span("tool.search", kind=trace.SpanKind.CLIENT,
                                               links=[trace.Link(agent.get_span_context(),
                                                                 {"why": "origin", "hops": [1, 2]})]) as tool:
            tool.set_attribute("tool.query", "flights to Lisbon")
            tool.record_exception(TimeoutError("upstream timeout"))
            tool.set_status(trace.Status(trace.StatusCode.ERROR, "upstream timeout"))
        with agent_tracer.start_as_current_span("llm.chat", kind=trace.SpanKind.CLIENT,
                                                attributes={"gen_ai.request.stop_sequences": ["\n", "END"]}) as llm:
            llm.set_attributes({"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 812,
                                "gen_ai.response.finish_reasons": ("stop",), "ids": [1, -2],
                                "stream.flags": [True, False], "raw": b"\x00\xff"})
            llm.update_name("llm.chat gpt-4o")  # instrumentations name a span once they know the model
            llm.set_status(trace.StatusCode.OK)
    got = arrived()
    finished = memory.get_finished_spans()
    assert len(finished) == 3 and len(got) == 3
    for otel_span in finished:
        assert_same(otel_span, got[f"{otel_span.get_span_context().span_id:016x}"])


def test_what_the_sdk_limits_dropped_is_counted_and_links_keep_their_tracestate(receiver, tmp_path):
    start = len(receiver.spans())
    provider, memory, tracer = provider_and_tracer(
        receiver, tmp_path, span_limits=SpanLimits(max_span_attributes=2, max_events=1, max_links=1))
    linked = trace.SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True,
                               trace_flags=trace.TraceFlags(1),
                               trace_state=trace.TraceState([("congo", "t61rcWkgMzE"), ("rojo", "00f067aa0ba902b7")]))
    with provider.get_tracer("limited").start_as_current_span(
            "over.the.limits", attributes={"a": 1, "b": 2, "c": 3},
            links=[trace.Link(linked, {"why": "batch"}), trace.Link(linked)]) as span:
        # (An attribute set now would evict one the bridge already passed
        # on: the Python SDK drops the oldest; spanguard cannot unset.)
        span.add_event("e1")
        span.add_event("e2")
    assert provider.force_flush()
    (otel_span,) = memory.get_finished_spans()
    assert (otel_span.dropped_attributes, otel_span.dropped_events, otel_span.dropped_links) == (1, 1, 1)
    (got,) = receiver.spans()[start:]
    assert got["links"][0]["trace_state"] == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    assert_same(otel_span, got)
    provider.shutdown()
    tracer.close()


def test_the_attributes_the_sdk_dropped_on_an_event_or_link_are_counted_on_it(receiver, tmp_path):
    # The SDK's OTLP exporter sends each event's and link's dropped count;
    # spanguard's export said 0 for them.
    start = len(receiver.spans())
    provider, memory, tracer = provider_and_tracer(
        receiver, tmp_path, span_limits=SpanLimits(max_event_attributes=1, max_link_attributes=2))
    linked = trace.SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True,
                               trace_flags=trace.TraceFlags(1))
    with provider.get_tracer("limited").start_as_current_span(
            "over.item.limits", links=[trace.Link(linked, {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5})]) as span:
        span.add_event("three", {"x": 1, "y": 2, "z": 3})
        span.add_event("one", {"x": 1})
    assert provider.force_flush()
    (otel_span,) = memory.get_finished_spans()
    sdk_events = [e.attributes.dropped for e in otel_span.events]
    sdk_links = [ln.attributes.dropped for ln in otel_span.links]
    assert (sdk_events, sdk_links) == ([2, 0], [3])
    (got,) = receiver.spans()[start:]
    assert [e["dropped_attributes_count"] for e in got["events"]] == sdk_events
    assert [ln["dropped_attributes_count"] for ln in got["links"]] == sdk_links
    assert_same(otel_span, got)
    provider.shutdown()
    tracer.close()


@pytest.mark.parametrize("own_limit", [None, 2], ids=["spanguard-default", "spanguard-lower"])
def test_past_the_sdks_limit_its_last_events_and_links_arrive(receiver, tmp_path, own_limit):
    # Events and links are passed on as they are added while the SDK's
    # list has room (so a span killed by SIGTERM carries them); past its
    # limit the SDK evicts its oldest. The span arrived with the first ones
    # passed on (e0, e1, e2, then e6) where the SDK kept e6 to e9. It must
    # arrive as the SDK holds it at its end: its last events and links, in
    # order, the others counted; spanguard's own (lower) limits do not
    # apply to the bridge's spans.
    start = len(receiver.spans())
    own = {"event_count_limit": own_limit, "link_count_limit": own_limit} if own_limit else {}
    provider, memory, tracer = provider_and_tracer(receiver, tmp_path, own,
                                                   span_limits=SpanLimits(max_events=4, max_links=4))
    with provider.get_tracer("events").start_as_current_span("many.events") as span:
        for i in range(10):
            span.add_event(f"e{i}", {"i": i})
        for i in range(10):
            span.add_link(trace.SpanContext(0x0AF7651916CD43DD8448EB211C80319C, i + 1, is_remote=False),
                          {"n": i})
    assert provider.force_flush()
    (otel_span,) = memory.get_finished_spans()
    assert [e.name for e in otel_span.events] == ["e6", "e7", "e8", "e9"], "the SDK keeps its last ones"
    assert (otel_span.dropped_events, otel_span.dropped_links) == (6, 6)
    (got,) = receiver.spans()[start:]
    assert_same(otel_span, got)
    provider.shutdown()
    tracer.close()


def test_links_given_at_the_start_and_evicted_later_arrive_as_the_sdk_holds_them(receiver, tmp_path):
    # Links given at the start past the limit: the SDK kept the last ones
    # before the bridge saw them; those added later evict those passed on.
    start = len(receiver.spans())
    provider, memory, tracer = provider_and_tracer(receiver, tmp_path, span_limits=SpanLimits(max_links=3))
    linked = [trace.SpanContext(0x0AF7651916CD43DD8448EB211C80319C, i + 1, is_remote=True) for i in range(7)]
    with provider.get_tracer("links").start_as_current_span(
            "linked", links=[trace.Link(c, {"n": i}) for i, c in enumerate(linked[:5])]) as span:
        span.add_link(linked[5], {"n": 5})
        span.add_link(linked[6], {"n": 6})
    assert provider.force_flush()
    (otel_span,) = memory.get_finished_spans()
    assert [ln.attributes["n"] for ln in otel_span.links] == [4, 5, 6] and otel_span.dropped_links == 4
    (got,) = receiver.spans()[start:]
    assert_same(otel_span, got)
    provider.shutdown()
    tracer.close()


def test_links_keep_is_remote_and_an_invalid_context_with_attributes_arrives(bridged):
    # OTLP link flags: the W3C bits, 0x100 HAS_IS_REMOTE, 0x200 IS_REMOTE,
    # as the SDK's own exporter sends them. A link whose context is invalid
    # is kept by the SDK when it has attributes, and must arrive.
    provider, memory, arrived = bridged
    remote = trace.SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True,
                               trace_flags=trace.TraceFlags(1))
    local = trace.SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203332, is_remote=False,
                              trace_flags=trace.TraceFlags(1))
    with provider.get_tracer("links").start_as_current_span(
            "linked", links=[trace.Link(remote), trace.Link(local)]) as span:
        span.add_link(trace.INVALID_SPAN_CONTEXT, {"link.why": "context lost"})
        span.add_link(trace.INVALID_SPAN_CONTEXT)  # nothing to record: the SDK drops it
    (otel_span,) = memory.get_finished_spans()
    assert len(otel_span.links) == 3, "the SDK kept the links the test means it to"
    got = arrived()[f"{otel_span.get_span_context().span_id:016x}"]
    assert [(ln["span_id"], ln["flags"]) for ln in got["links"]] == \
        [("b7ad6b7169203331", 0x301), ("b7ad6b7169203332", 0x101), ("0" * 16, 0x100)]
    assert got["links"][2]["trace_id"] == "0" * 32
    assert_same(otel_span, got)


@pytest.mark.parametrize("later, kept, dropped", [
    # a, b at start; c, d, e later: the SDK evicts a and b (passed on
    # already), so the bridge passes on c, as many as the SDK kept, and
    # counts d and e dropped.
    (("c", "d", "e"), ["a", "b", "c"], 2),
    # c fits the limit (the SDK holds a, b, c) and is passed on as it is
    # set, as a span killed then must hold it; d, e, f evict a, b, c in
    # the SDK, past its limit: not passed, counted.
    (("c", "d", "e", "f"), ["a", "b", "c"], 3),
])
def test_attributes_past_the_limit_are_counted_once(receiver, tmp_path, monkeypatch, later, kept, dropped):
    # The SDK's limit (OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT; spanguard's tracer
    # reads it too, but the bridge's spans are the SDK's to limit): as
    # many keys arrive as the SDK kept, and every other key set is
    # counted, once.
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "3")
    start = len(receiver.spans())
    tracer = spanguard.Tracer(endpoint=receiver.traces_url, spool_dir=tmp_path / "spool",
                              schedule_delay_ms=50, install_signal_handlers=False)
    provider = TracerProvider()
    provider.add_span_processor(SpanguardSpanProcessor(tracer))
    with provider.get_tracer("limited").start_as_current_span("many", attributes={"a": 1, "b": 2}) as span:
        for key in later:
            span.set_attribute(key, 0)
    assert provider.force_flush()
    (got,) = receiver.spans()[start:]
    assert sorted(got["attributes"]) == kept
    assert got["dropped_attributes_count"] == dropped
    assert len(kept) + dropped == 2 + len(later)
    provider.shutdown()
    tracer.close()


def test_a_value_the_sdk_limited_arrives_as_the_sdk_kept_it(receiver, tmp_path, monkeypatch):
    # OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT is read by the SDK and by spanguard
    # alike, and both count characters (OpenTelemetry's rule): a Japanese
    # completion or an emoji the SDK cut to 5 characters is not cut again
    # to 5 bytes (which kept one character of it before).
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "5")
    start = len(receiver.spans())
    tracer = spanguard.Tracer(service_name="bridge-limits", endpoint=receiver.traces_url,
                              spool_dir=tmp_path / "spool", sink_dir=tmp_path / "sink", schedule_delay_ms=50,
                              install_signal_handlers=False)
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SpanguardSpanProcessor(tracer))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("limits").start_as_current_span("limited.text") as span:
        span.set_attribute("gen_ai.completion", "日本語の回答です。")
        span.set_attribute("emoji", "😀😁😂🤣😃😄")
        span.set_attribute("list", ["héllo wörld", "ok"])
    assert provider.force_flush()
    (otel_span,) = memory.get_finished_spans()
    assert otel_span.attributes["gen_ai.completion"] == "日本語の回"
    (got,) = receiver.spans()[start:]
    assert got["attributes"] == {"gen_ai.completion": "日本語の回", "emoji": "😀😁😂🤣😃",
                                 "list": ["héllo", "ok"]}
    assert_same(otel_span, got)
    provider.shutdown()
    tracer.close()


def complex_as_received(v):
    """A complex value the SDK kept (sequences as tuples, at any depth) as
    the receiver reports it."""
    if isinstance(v, dict):
        return {k: complex_as_received(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [complex_as_received(x) for x in v]
    return v


def test_complex_values_the_sdk_keeps_arrive_whole_and_the_rest_is_counted_dropped(bridged):
    # The SDK keeps any value now (a dict, None, a mixed or nested
    # sequence: OpenTelemetry's AnyValue; an int past 64 bits): the
    # complex values arrive whole; what spanguard cannot hold (the int) is
    # counted, so the span says it lost it.
    provider, memory, arrived = bridged
    with provider.get_tracer("extended").start_as_current_span(
            "chat", attributes={"gen_ai.input.messages": [{"role": "user", "content": "hi"}], "ok": 1}) as span:
        span.set_attribute("gen_ai.request.metadata", {"tenant": "t-1"})
        span.set_attribute("tool.args", {"city": "Paris", "days": [1, 2.5, "x"], "ok": None})
        span.set_attribute("nothing", None)
        span.set_attributes({"mixed": (1, "a"), "too.big": 2 ** 64, "model": "gpt-4o"})
    (otel_span,) = memory.get_finished_spans()
    assert len(otel_span.attributes) == 8 and otel_span.dropped_attributes == 0
    got = arrived()[f"{otel_span.get_span_context().span_id:016x}"]
    want = {k: complex_as_received(v) for k, v in otel_span.attributes.items() if k != "too.big"}
    assert want["tool.args"] == {"city": "Paris", "days": [1, 2.5, "x"], "ok": None}
    assert got["attributes"] == want
    assert got["dropped_attributes_count"] == 1


def test_a_remote_parent_and_the_traceparent_sent_downstream(bridged):
    provider, memory, arrived = bridged
    tracer = provider.get_tracer("server")
    incoming = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"}
    token = context.attach(propagate.extract(incoming))
    try:
        with tracer.start_as_current_span("handle", kind=trace.SpanKind.SERVER):
            outgoing = {}
            propagate.inject(outgoing)  # what an instrumentation sends downstream
    finally:
        context.detach(token)
    got = arrived()
    (handle,) = got.values()
    assert handle["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert handle["parent_span_id"] == "b7ad6b7169203331"
    assert handle["trace_state"] == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    assert outgoing["traceparent"].split("-")[2] == handle["span_id"]  # downstream names an exported span
    assert_same(memory.get_finished_spans()[0], handle)


def test_unsampled_spans_are_left_out_as_the_batch_processor_leaves_them(receiver, tmp_path):
    start = len(receiver.spans())
    tracer = spanguard.Tracer(from_env=False, endpoint=receiver.traces_url, spool_dir=tmp_path / "spool",
                              schedule_delay_ms=50, install_signal_handlers=False)
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))
    provider.add_span_processor(SpanguardSpanProcessor(tracer))
    with provider.get_tracer("t").start_as_current_span("unsampled"):
        pass
    assert provider.force_flush()
    provider.shutdown()
    assert receiver.spans()[start:] == []
    assert tracer.stats().spans_begun == 0
    tracer.close()


def test_the_processor_sets_no_global_provider_and_shutdown_is_the_tracer(tmp_path):
    before = trace.get_tracer_provider()
    tracer = spanguard.Tracer(from_env=False, sink_dir=tmp_path / "sink", spool_dir=tmp_path / "spool",
                              install_signal_handlers=False)
    provider = TracerProvider()
    provider.add_span_processor(SpanguardSpanProcessor(tracer))
    span = provider.get_tracer("t").start_span("left open")
    assert trace.get_tracer_provider() is before
    provider.shutdown()  # the tracer's shutdown: the open span is exported, marked unended
    from conftest import read_sink
    (got,) = read_sink(tmp_path / "sink")
    assert got["span_id"] == f"{span.get_span_context().span_id:016x}"
    assert got["attributes"]["spanguard.unended"] is True
    tracer.close()


def test_spans_collected_open_are_ended_marked_and_hold_no_slot(receiver, tmp_path):
    """An SDK span garbage-collected without ending (a streamed answer never
    read to its end) can never be ended: its spanguard span is ended then,
    marked unended as at shutdown. Each one used to hold a slot for the
    life of the process, and once they filled every slot the spans of the
    rest of the program were dropped."""
    import gc
    start = len(receiver.spans())
    tracer = spanguard.Tracer(from_env=False, service_name="leaky", endpoint=receiver.traces_url,
                              spool_dir=tmp_path / "spool", schedule_delay_ms=50, install_signal_handlers=False,
                              max_open_spans=32, max_queue_size=64)
    provider = TracerProvider()
    provider.add_span_processor(SpanguardSpanProcessor(tracer))
    otel = provider.get_tracer("leaky")
    for i in range(300):
        otel.start_span(f"stream.{i}", attributes={"i": i})  # dropped open
        if i % 16 == 0:
            assert provider.force_flush()
    gc.collect()
    with otel.start_as_current_span("afterwards"):
        pass
    assert provider.force_flush()
    got = {s["name"]: s for s in receiver.spans()[start:]}
    assert "afterwards" in got
    assert "spanguard.unended" not in got["afterwards"]["attributes"]
    assert got["stream.299"]["attributes"] == {"i": 299, "spanguard.unended": True}
    assert tracer.stats().dropped_buffer_full == 0
    assert len(got) == 301
    provider.shutdown()
    tracer.close()


def test_calls_after_the_tracer_closed_are_ignored_not_raised(tmp_path, caplog):
    """A provider flushed or used after its spanguard tracer closed (a
    `with spanguard.Tracer()` block that ended): force_flush says False,
    spans are not recorded and nothing is raised or logged as a failure,
    as the specification asks of calls after shutdown."""
    with spanguard.Tracer(from_env=False, sink_dir=tmp_path / "sink", spool_dir=tmp_path / "spool",
                          install_signal_handlers=False) as tracer:
        provider = TracerProvider()
        provider.add_span_processor(SpanguardSpanProcessor(tracer))
    with caplog.at_level("WARNING", logger="spanguard"):
        with provider.get_tracer("t").start_as_current_span("late"):
            pass
        assert provider.force_flush() is False
        provider.shutdown()
    assert not [r for r in caplog.records if "bridge failed" in r.getMessage()]


def test_a_resource_passed_after_the_tracer_shut_down_is_ignored_not_raised(tmp_path, caplog):
    """The bridge passes a provider's resource on its first span: after the
    spanguard tracer shut down (SHUT_DOWN from set_resource), that span
    starts without an exception and nothing is logged as a failure."""
    from opentelemetry.sdk.resources import Resource
    tracer = spanguard.Tracer(from_env=False, sink_dir=tmp_path / "sink", spool_dir=tmp_path / "spool",
                              install_signal_handlers=False)
    assert tracer.shutdown(10)
    provider = TracerProvider(resource=Resource.create({"service.name": "late-agent"}))
    provider.add_span_processor(SpanguardSpanProcessor(tracer))
    with caplog.at_level("WARNING", logger="spanguard"):
        with provider.get_tracer("t").start_as_current_span("late"):
            pass
        provider.shutdown()
    assert not [r for r in caplog.records if "bridge failed" in r.getMessage()]
    tracer.close()


def test_spans_carry_the_providers_resource(receiver, tmp_path):
    """The provider's Resource is the spans' resource, as with the SDK's own
    exporter (they arrived with spanguard's, service.name and all), its
    arrays too (the SDKs' process detectors give `process.command_args`
    as one; it was left out, counted nowhere), and so are a tracer's scope
    attributes."""
    from opentelemetry.sdk.resources import Resource
    tracer = spanguard.Tracer(from_env=False, service_name="spanguard-own", endpoint=receiver.traces_url,
                              spool_dir=tmp_path / "spool", schedule_delay_ms=50, install_signal_handlers=False)
    provider = TracerProvider(resource=Resource.create({
        "service.name": "checkout-agent", "deployment.environment.name": "prod", "replicas": 3,
        "process.command_args": ["python3", "agent.py", "--model", "gpt-4o"], "ports": [80, 443],
        "weights": [0.5, 1.5], "flags": [True, False]}))
    provider.add_span_processor(SpanguardSpanProcessor(tracer))
    start = len(receiver.spans())
    with provider.get_tracer("res", attributes={"lib.features": ["stream", "tools"]}).start_as_current_span("op"):
        pass
    assert provider.force_flush()
    (got,) = receiver.spans()[start:]
    assert got["resource"]["service.name"] == "checkout-agent"
    assert got["resource"]["deployment.environment.name"] == "prod"
    assert got["resource"]["replicas"] == 3
    assert got["resource"]["telemetry.sdk.language"] == "python"
    assert got["resource"]["process.command_args"] == ["python3", "agent.py", "--model", "gpt-4o"]
    assert got["resource"]["ports"] == [80, 443]
    assert got["resource"]["weights"] == [0.5, 1.5]
    assert got["resource"]["flags"] == [True, False]
    assert got["scope_attributes"] == {"lib.features": ["stream", "tools"]}
    provider.shutdown()
    tracer.close()


def test_providers_with_different_resources_on_one_tracer_are_warned_about(tmp_path, caplog):
    """A spanguard tracer sends one resource with every batch (the last one
    passed on): the spans of two providers with different resources on it
    arrive under one of them. That used to happen in silence; it is said,
    once, naming both. Providers with the same resource are not warned of."""
    from opentelemetry.sdk.resources import Resource
    tracer = spanguard.Tracer(from_env=False, sink_dir=tmp_path / "sink", spool_dir=tmp_path / "spool",
                              install_signal_handlers=False)
    shared = SpanguardSpanProcessor(tracer)
    providers = []
    for service in ("billing-agent", "billing-agent", "search-agent", "search-agent", "billing-agent"):
        providers.append(TracerProvider(resource=Resource.create({"service.name": service})))
        providers[-1].add_span_processor(shared)
    # A second processor on the same tracer sees what the first passed on.
    own = TracerProvider(resource=Resource.create({"service.name": "search-agent"}))
    own.add_span_processor(SpanguardSpanProcessor(tracer))
    with caplog.at_level("WARNING", logger="spanguard"):
        providers[0].get_tracer("t").start_span("a").end()
        providers[1].get_tracer("t").start_span("b").end()
        assert not [r for r in caplog.records if "resources" in r.getMessage()]
        for provider in providers[2:]:
            provider.get_tracer("t").start_span("c").end()
        own.get_tracer("t").start_span("d").end()
    warned = [r.getMessage() for r in caplog.records if "resources" in r.getMessage()]
    assert len(warned) == 2, warned  # once by each processor
    assert "'billing-agent'" in warned[0] and "'search-agent'" in warned[0]
    tracer.close()


@pytest.mark.parametrize("renews_resource", [True, False], ids=["sdk-renews-resource", "older-sdk"])
def test_a_forked_childs_spans_carry_the_resource_and_scope_attributes(tmp_path, renews_resource):
    """In a forked child (a prefork server's workers) the library replaces
    each tracer, without what the bridge passed on in the parent, which it
    passed once: the child's spans lost their scope attributes, and with an
    SDK that does not renew the provider's resource at a fork (before
    1.45; `_handle_fork` skipped here to be one) its service.name too."""
    from conftest import read_sink, run_python
    code = f"""
import os, threading
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
import spanguard
from spanguard.otel import SpanguardSpanProcessor

class OlderProvider(TracerProvider):
    def _handle_fork(self):
        self._tracers_lock = threading.Lock()

tracer = spanguard.Tracer(from_env=False, service_name="spanguard-own", sink_dir={str(tmp_path / "sink")!r},
                          spool_dir={str(tmp_path / "spool")!r}, install_signal_handlers=False)
provider = ({renews_resource!r} and TracerProvider or OlderProvider)(
    resource=Resource.create({{"service.name": "prefork-agent"}}))
provider.add_span_processor(SpanguardSpanProcessor(tracer))
otel = provider.get_tracer("agent.scope", "1.0", attributes={{"scope.team": "search"}})
with otel.start_as_current_span("in.parent"):
    pass
assert provider.force_flush()
pid = os.fork()
if pid == 0:
    try:
        with otel.start_as_current_span("in.child"):
            pass
        provider.shutdown()
    finally:
        os._exit(0)
os.waitpid(pid, 0)
provider.shutdown()
"""
    run = run_python(code)
    assert run.returncode == 0, run.stderr
    spans = {s["name"]: s for s in read_sink(tmp_path / "sink")}
    assert sorted(spans) == ["in.child", "in.parent"]
    for s in spans.values():
        assert s["resource"]["service.name"] == "prefork-agent", s["name"]
        assert s["scope_attributes"] == {"scope.team": "search"}, s["name"]
    assert "resources" not in run.stderr  # a fork is no second provider


def test_spans_carry_their_tracers_scope_attributes(bridged):
    """A tracer's scope attributes (`get_tracer(..., attributes=...)`)
    arrive on its spans' InstrumentationScope, as with the SDK's own
    exporter; another tracer's spans have none (they arrived with none)."""
    provider, _, arrived = bridged
    tagged = provider.get_tracer("agent.lib", "1.2.0", schema_url="https://opentelemetry.io/schemas/1.28.0",
                                 attributes={"library.kind": "llm", "tier": 2})
    plain = provider.get_tracer("other.lib", "1.2.0")
    with tagged.start_as_current_span("tagged") as a, plain.start_as_current_span("plain") as b:
        pass
    got = arrived()
    one, other = got[f"{a.get_span_context().span_id:016x}"], got[f"{b.get_span_context().span_id:016x}"]
    assert (one["scope"], one["scope_version"]) == ("agent.lib", "1.2.0")
    assert one["scope_attributes"] == {"library.kind": "llm", "tier": 2}
    assert other["scope_attributes"] == {}


def many_span(provider) -> None:
    """A span of 200 attributes (100 at its start, 100 later, as an LLM
    instrumentation flattens a long conversation), 150 events, 150 links."""
    linked = trace.SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True,
                               trace_flags=trace.TraceFlags(1))
    at_start = {f"gen_ai.prompt.{i}.content": f"message {i}" for i in range(100)}
    links = [trace.Link(linked, {"n": i}) for i in range(150)]
    with provider.get_tracer("limits").start_as_current_span("llm.chat", attributes=at_start, links=links) as span:
        for i in range(100, 200):
            span.set_attribute(f"gen_ai.prompt.{i}.content", f"message {i}")
        for i in range(150):
            span.add_event(f"chunk.{i}", {"i": i})


def test_the_providers_span_limits_apply_not_spanguards_on_top(receiver, tmp_path):
    # A provider that allowed 1000 attributes got 128 of 200 (72 counted
    # dropped): the bridge's tracer cut again at its own default.
    start = len(receiver.spans())
    provider, memory, tracer = provider_and_tracer(
        receiver, tmp_path, span_limits=SpanLimits(max_span_attributes=1000, max_events=1000, max_links=1000))
    many_span(provider)
    assert provider.force_flush()
    (otel_span,) = memory.get_finished_spans()
    (got,) = receiver.spans()[start:]
    assert (len(got["attributes"]), len(got["events"]), len(got["links"])) == (200, 150, 150)
    assert (got["dropped_attributes_count"], got["dropped_events_count"], got["dropped_links_count"]) == (0, 0, 0)
    assert_same(otel_span, got)
    provider.shutdown()
    tracer.close()


def test_with_the_sdks_default_limits_what_it_dropped_is_counted_once(receiver, tmp_path):
    start = len(receiver.spans())
    provider, memory, tracer = provider_and_tracer(receiver, tmp_path)
    many_span(provider)
    assert provider.force_flush()
    (otel_span,) = memory.get_finished_spans()
    assert (otel_span.dropped_attributes, otel_span.dropped_events, otel_span.dropped_links) == (72, 22, 22)
    (got,) = receiver.spans()[start:]
    assert (len(got["attributes"]), len(got["events"]), len(got["links"])) == (128, 128, 128)
    assert (got["dropped_attributes_count"], got["dropped_events_count"], got["dropped_links_count"]) == (72, 22, 22)
    # The SDK evicted its oldest attributes, 72 of them passed on at the
    # start: as many arrive as the SDK kept, each one the SDK was given.
    assert set(got["attributes"]) <= {f"gen_ai.prompt.{i}.content" for i in range(200)}
    # Events are passed on as they are added while the SDK has room for
    # them (so that a span killed mid-call carries them): the first 127,
    # which the SDK evicted later to keep its last 128. Those arrive that
    # the SDK kept, in order; links likewise.
    names = [e["name"] for e in got["events"]]
    assert names == [e.name for e in otel_span.events] == [f"chunk.{i}" for i in range(22, 150)]
    assert [ln["attributes"]["n"] for ln in got["links"]] == [ln.attributes["n"] for ln in otel_span.links]
    provider.shutdown()
    tracer.close()



@pytest.mark.parametrize("later", [100, 70], ids=["refused-all-evicted", "refused-some-kept"])
def test_what_spanguard_refused_while_its_pool_was_used_up_costs_none_the_sdk_kept(receiver, tmp_path, later):
    # Spans in flight that use up the payload pool make spanguard refuse
    # the events and links passed on once a span's own room is full (their
    # entries have nowhere to go): counted dropped, not held. When room
    # comes back the later ones are held. Past its limit the SDK evicts
    # its oldest, and the bridge drops from spanguard those of them it
    # holds: counting the refused ones as held, it dropped as many more of
    # those the SDK kept (the first ones added after the pool had room).
    start = len(receiver.spans())
    provider, memory, tracer = provider_and_tracer(receiver, tmp_path, {"payload_pool_mib": 1},
                                                   span_limits=SpanLimits(max_events=100, max_links=100))
    hog = tracer.start_span("pool.hog")
    for i in range(24):  # 24 values of 64 KiB: more than the pool's MiB
        hog.set_attribute(f"big.{i}", "x" * 65536)
    probe = tracer.start_span("probe")
    span = provider.get_tracer("refused").start_span("refused")
    early = 60

    def add(n):
        span.add_event(f"event.{n}", {"n": n})
        span.add_link(trace.SpanContext(0x0AF7651916CD43DD8448EB211C80319C, n + 1, is_remote=False), {"n": n})

    for n in range(early):
        add(n)
        probe.add_event(f"event.{n}", {"n": n})
        probe.add_link(f"00-0af7651916cd43dd8448eb211c80319c-{n + 1:016x}-00", {"n": n})
    hog.end()
    probe.end()
    assert tracer.flush(5.0), "the pool's room given back"
    for n in range(early, early + later):
        add(n)
    span.end()
    assert provider.force_flush()
    got = {s["name"]: s for s in receiver.spans()[start:]}
    assert len(got["probe"]["events"]) < early and len(got["probe"]["links"]) < early, \
        "spanguard refused some of the first ones (the pool was used up)"
    (otel_span,) = memory.get_finished_spans()
    assert otel_span.dropped_events == early + later - 100
    given = early + later
    for field, sdk in (("events", [e.attributes["n"] for e in otel_span.events]),
                       ("links", [ln.attributes["n"] for ln in otel_span.links])):
        held = [e["attributes"]["n"] for e in got["refused"][field]]
        # Those the SDK kept, in order, less some of the first ones (those
        # refused); every one added once the pool had room; each one given
        # held or counted once.
        assert held == [n for n in sdk if n in set(held)], field
        assert [n for n in sdk if n >= early] == [n for n in held if n >= early], field
        assert len(held) + got["refused"][f"dropped_{field}_count"] == given, field
    if later == 100:  # the SDK's own are all among those added with room
        assert_same(otel_span, got["refused"])
    provider.shutdown()
    tracer.close()


def test_a_link_spanguard_refused_costs_none_the_sdk_kept(receiver, tmp_path):
    # A link the SDK keeps and spanguard refuses: an invalid context whose
    # one tracestate member (a key and a value of 256 bytes, 513 with its
    # '=') is longer than any tracestate spanguard keeps, so that the link
    # has nothing to record (neither held nor counted by spanguard). Given
    # at the start between links spanguard took, and evicted later with the
    # first of them, it must cost none of those the SDK kept, and be counted.
    start = len(receiver.spans())
    provider, memory, tracer = provider_and_tracer(receiver, tmp_path, span_limits=SpanLimits(max_links=4))
    link = lambda n: trace.Link(trace.SpanContext(0x0AF7651916CD43DD8448EB211C80319C, n, is_remote=False),  # noqa: E731
                                {"n": n})
    long_state = trace.TraceState([("k" + "a" * 255, "v" * 256)])
    refused = trace.Link(trace.SpanContext(0, 0, is_remote=False, trace_state=long_state))
    with provider.get_tracer("links").start_as_current_span("refused.link",
                                                            links=[link(1), refused, link(3), link(4)]) as span:
        span.add_link(link(5).context, {"n": 5})
        span.add_link(link(6).context, {"n": 6})
    assert provider.force_flush()
    (otel_span,) = memory.get_finished_spans()
    assert [ln.attributes.get("n") for ln in otel_span.links] == [3, 4, 5, 6] and otel_span.dropped_links == 2, \
        "the SDK kept what the test means it to"
    (got,) = receiver.spans()[start:]
    assert_same(otel_span, got)
    provider.shutdown()
    tracer.close()


def test_a_span_ended_after_the_tracer_shut_down_is_counted_not_raised(tmp_path):
    """The spanguard tracer shut down (by its owner here; a signal's flush
    or the exit hook does the same) while an SDK span was open: the
    shutdown exported it marked unended, and its end, with what was set on
    it since, is refused. That vanished in silence (the Go and Node bridges
    count it); now the processor's `failures` counts it, and nothing raises into the SDK's hooks. After the
    provider's own shutdown a call is ignored, as the specification asks:
    not counted."""
    from conftest import read_sink
    tracer = spanguard.Tracer(from_env=False, sink_dir=tmp_path / "sink", spool_dir=tmp_path / "spool",
                              install_signal_handlers=False)
    processor = SpanguardSpanProcessor(tracer)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    otel = provider.get_tracer("t")
    lost = otel.start_span("lost its end")
    ignored = otel.start_span("ended after the provider's shutdown")
    assert processor.failures == 0
    assert tracer.shutdown(10)
    lost.set_attribute("answer", "set after the shutdown")  # refused by the core, not raised
    lost.end()
    assert processor.failures == 1
    provider.shutdown()
    ignored.end()
    assert processor.failures == 1
    got = {s["name"]: s for s in read_sink(tmp_path / "sink")}
    assert got["lost its end"]["attributes"] == {"spanguard.unended": True}
    tracer.close()


# A fresh interpreter's bridge (a warning said once is its own), with
# spanguard's warnings on stderr: `tracer`, `processor`, `provider`, `d`.
A_BRIDGE_IN_A_FRESH_INTERPRETER = """\
import logging, tempfile
logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
import spanguard
from opentelemetry.sdk.trace import TracerProvider
from spanguard.otel import SpanguardSpanProcessor
d = tempfile.mkdtemp()
tracer = spanguard.Tracer(from_env=False, sink_dir=d + "/sink", spool_dir=d + "/spool",
                          install_signal_handlers=False)
processor = SpanguardSpanProcessor(tracer)
provider = TracerProvider()
provider.add_span_processor(processor)
"""


def test_a_span_ended_after_the_tracer_shut_down_is_warned_once():
    """The refusal `failures` counts is said once a process through logger
    "spanguard", as the binding's other drops are (a fresh interpreter: a
    warning said once)."""
    from conftest import run_python
    run = run_python(A_BRIDGE_IN_A_FRESH_INTERPRETER + textwrap.dedent("""
        spans = [provider.get_tracer("t").start_span(f"s{i}") for i in range(3)]
        tracer.shutdown(10)
        for span in spans:
            span.end()
        print("failures", processor.failures)
    """))
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["failures", "3"]
    warned = [line for line in run.stderr.splitlines() if "ended after the spanguard tracer shut down" in line]
    assert len(warned) == 1, run.stderr
    assert "Traceback" not in run.stderr


def test_what_is_set_on_a_span_after_the_shutdown_is_said_as_such_or_ignored():
    """A stream an agent held open to its exit (OpenLLMetry's, not read to
    its end) sets its attributes from `__del__` at interpreter teardown,
    after spanguard's exit hook shut the tracer down (the span exported
    marked unended) and the SDK's shut the provider down: stderr said
    "the tracer is shut down; spans begun now are not recorded", of a
    program that began nothing then. After the provider's shutdown the
    bridge ignores what is set, as it ignores the end (the specification
    asks calls after Shutdown to be ignored): nothing said, nothing
    counted. A native span's setter after its tracer's shutdown is said as
    what it is, a value set on a span the shutdown had exported; a begin
    then still says spans begun now are not recorded."""
    from conftest import run_python
    run = run_python(A_BRIDGE_IN_A_FRESH_INTERPRETER + textwrap.dedent("""
        stream = provider.get_tracer("t").start_span("openai.chat")
        provider.shutdown()
        stream.set_attribute("gen_ai.response.model", "gpt-4o")
        stream.set_attributes({"gen_ai.usage.output_tokens": 7})
        stream.add_event("gen_ai.content.completion.chunk")
        stream.end()
        import sys
        print("failures", processor.failures, flush=True)
        print("-- native", file=sys.stderr, flush=True)
        native = spanguard.Tracer(from_env=False, sink_dir=d + "/sink2", spool_dir=d + "/spool2",
                                  install_signal_handlers=False)
        span = native.start_span("open")
        native.shutdown(10)
        span.set_attribute("answer", "set after the shutdown")
        span.end()
        print("-- begin", file=sys.stderr, flush=True)
        native.start_span("late").end()
    """))
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["failures", "0"], run.stdout
    bridge, _, rest = run.stderr.partition("-- native")
    assert "spanguard" not in bridge, run.stderr
    native, _, begin = rest.partition("-- begin")
    assert "begun now" not in native, run.stderr
    assert "set on a span after its tracer shut down" in native, run.stderr
    assert "spans begun now are not recorded" in begin, run.stderr
    assert "Traceback" not in run.stderr


def sent_twice_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "arrives there twice" in r.getMessage()]


@pytest.mark.parametrize("sdk_endpoint, warned", [
    ("same", 1),                                       # both send to the receiver
    ("http://localhost:{port}/v1/traces", 1),          # the receiver by another name
    ("http://collector-b.internal:4318/v1/traces", 0),  # another backend, on purpose
    ("http://127.0.0.1:{other}/v1/traces", 0),         # another port of the same host
    (None, 0),                                         # no SDK exporter beside the bridge
], ids=["same-url", "same-backend-localhost", "other-host", "other-port", "no-sdk-exporter"])
def test_the_sdks_own_otlp_exporter_to_spanguards_backend_is_warned_once(receiver, tmp_path, caplog,
                                                                        sdk_endpoint, warned):
    """Keeping the SDK's own OTLP exporter beside the bridge (both read
    OTEL_EXPORTER_OTLP_ENDPOINT) sends every span to the backend twice: a
    newcomer's receiver got 4 spans for 2, with no word said. The first
    span of the provider has the bridge say it once, naming the backend;
    an SDK exporter sending to another backend is not warned of, nor a
    provider without one. (The spans are started, not ended: nothing is
    sent to the hosts named.)"""
    from urllib.parse import urlsplit

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    port = urlsplit(receiver.traces_url).port
    tracer = spanguard.Tracer(from_env=False, endpoint=receiver.traces_url, spool_dir=tmp_path / "spool",
                              install_signal_handlers=False)
    provider = TracerProvider()
    provider.add_span_processor(SpanguardSpanProcessor(tracer))
    if sdk_endpoint is not None:
        url = receiver.traces_url if sdk_endpoint == "same" else sdk_endpoint.format(port=port, other=port + 1)
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=url)))
    with caplog.at_level("WARNING", logger="spanguard"):
        for name in ("a", "b", "c"):
            provider.get_tracer("t").start_span(name)
    got = sent_twice_warnings(caplog)
    assert len(got) == warned, got
    if warned:
        assert f":{port}" in got[0] and "OTLPSpanExporter" in got[0], got
    provider.shutdown()


@pytest.mark.parametrize("spanguard_endpoint, sdk_endpoint, warned", [
    ("http://127.0.0.1:4318/v1/traces", "http://localhost:4317/v1/traces", 1),  # one Collector's two OTLP ports
    ("http://localhost:4317/v1/traces", "http://127.0.0.1:4318/v1/traces", 1),  # either way round
    ("http://127.0.0.1:9999/v1/traces", "http://127.0.0.1:4317/v1/traces", 0),  # 4317 beside another port
], ids=["4318-beside-4317", "4317-beside-4318", "9999-beside-4317"])
def test_a_collectors_other_otlp_port_is_one_backend(tmp_path, caplog, spanguard_endpoint, sdk_endpoint, warned):
    """A Collector takes OTLP/gRPC on 4317 and OTLP/HTTP on 4318: the
    SDK's exporter on one beside spanguard on the other of one host sends
    every span there twice (`_OTLP_PORTS`); 4317 beside any other port is
    two backends. (Nothing listens there: the spans are started, not
    ended, and spanguard's close spools them.)"""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    tracer = spanguard.Tracer(from_env=False, endpoint=spanguard_endpoint, spool_dir=tmp_path / "spool",
                              install_signal_handlers=False)
    provider = TracerProvider()
    provider.add_span_processor(SpanguardSpanProcessor(tracer))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=sdk_endpoint)))
    with caplog.at_level("WARNING", logger="spanguard"):
        for name in ("a", "b"):
            provider.get_tracer("t").start_span(name)
    got = sent_twice_warnings(caplog)
    assert len(got) == warned, got
    if warned:
        assert spanguard_endpoint.rsplit("/v1/", 1)[0].split("//")[1] in got[0], got
    tracer.close()


def test_a_local_sink_beside_the_sdks_otlp_exporter_is_not_warned_of(tmp_path, caplog):
    """spanguard writing to its local sink sends nothing to a backend: the
    SDK's exporter is then the only one sending, not a second."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    tracer = spanguard.Tracer(from_env=False, sink_dir=tmp_path / "sink", spool_dir=tmp_path / "spool",
                              install_signal_handlers=False)
    assert tracer.endpoint() == ""
    provider = TracerProvider()
    provider.add_span_processor(SpanguardSpanProcessor(tracer))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint="http://localhost:4318/v1/traces")))
    with caplog.at_level("WARNING", logger="spanguard"):
        provider.get_tracer("t").start_span("a")
    assert sent_twice_warnings(caplog) == []
    tracer.close()


# The common span's on_start and on_end are one native call each
# (`_native.SdkSpanHooks`, which reads the SDK's span in Rust): every field
# it reads arrives as the SDK kept it, and a span it does not take is left
# whole to the Python path.

EVERY_TYPE = {"s": "flights to Lisbon", "empty": "", "unicode": "h\u00e9llo \u2713", "yes": True, "no": False,
              "i": -42, "max": 2 ** 63 - 1, "f": 0.25, "tiny": -1e-300, "raw": b"\x00\xff", "strs": ("a", "b"),
              "bools": [True, False], "ints": [1, -2, 3], "floats": (0.5, 1.5),
              # A value of many KB, whole.
              "gen_ai.prompt": "".join(f"{i:06d}" for i in range(40_000))}


def past_its_first_span(provider, memory, name):
    """A tracer of the provider whose first span has ended: a provider's
    and a scope's first span goes the Python way, to pass them on."""
    tracer = provider.get_tracer(name)
    tracer.start_span("first").end()
    memory.clear()
    return tracer


def one_arrived(memory, arrived):
    (otel_span,) = memory.get_finished_spans()
    return otel_span, arrived()[f"{otel_span.get_span_context().span_id:016x}"]


@pytest.mark.parametrize("how", ["at the start", "set_attribute", "set_attributes"])
def test_an_attribute_of_each_type_arrives_as_the_sdk_kept_it(bridged, how):
    provider, memory, arrived = bridged
    tracer = past_its_first_span(provider, memory, "types")
    span = tracer.start_span("typed", attributes=EVERY_TYPE if how == "at the start" else None)
    if how == "set_attribute":
        for k, v in EVERY_TYPE.items():
            span.set_attribute(k, v)
    elif how == "set_attributes":
        span.set_attributes(EVERY_TYPE)
    span.end()
    otel_span, got = one_arrived(memory, arrived)
    assert got["attributes"] == as_received(EVERY_TYPE)
    assert len(got["attributes"]["gen_ai.prompt"]) == 240_000
    assert_same(otel_span, got)


@pytest.mark.parametrize("kind", list(trace.SpanKind), ids=lambda k: k.name)
def test_each_kind_under_a_remote_parent_with_a_tracestate_arrives_with_its_context(bridged, kind):
    provider, memory, arrived = bridged
    tracer = past_its_first_span(provider, memory, "kinds")
    parent = trace.SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True,
                               trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
                               trace_state=trace.TraceState([("congo", "t61rcWkgMzE"), ("rojo", "00f067aa0ba902b7")]))
    with tracer.start_as_current_span("remote child", context=trace.set_span_in_context(trace.NonRecordingSpan(parent)),
                                      kind=kind):
        with tracer.start_as_current_span("local child", kind=kind):
            pass
    got = arrived()
    finished = memory.get_finished_spans()
    assert len(finished) == 2
    for otel_span in finished:
        mine = got[f"{otel_span.get_span_context().span_id:016x}"]
        assert_same(otel_span, mine)
        assert mine["kind"] == kind.value + 1
        assert mine["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
        assert mine["trace_state"] == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
        # W3C sampled, and OTLP's has-is-remote and is-remote bits for the parent.
        remote = otel_span.parent.is_remote
        assert mine["flags"] == 0x101 | (0x200 if remote else 0), (otel_span.name, hex(mine["flags"]))
    assert got[f"{finished[1].get_span_context().span_id:016x}"]["parent_span_id"] == "b7ad6b7169203331"


@pytest.mark.parametrize("status", [None, trace.StatusCode.OK, trace.StatusCode.ERROR,
                                    trace.Status(trace.StatusCode.ERROR, "upstream timeout")],
                         ids=["unset", "ok", "error", "error with a description"])
def test_status_a_new_name_and_the_sdks_times_arrive(bridged, status):
    provider, memory, arrived = bridged
    tracer = past_its_first_span(provider, memory, "status")
    span = tracer.start_span("llm.chat", start_time=1_700_000_000_123_456_789)
    span.update_name("llm.chat gpt-4o")
    if status is not None:
        span.set_status(status)
    span.end(end_time=1_700_000_001_987_654_321)
    otel_span, got = one_arrived(memory, arrived)
    assert (got["name"], got["start"], got["end"]) == ("llm.chat gpt-4o", 1_700_000_000_123_456_789,
                                                         1_700_000_001_987_654_321)
    assert_same(otel_span, got)


def test_events_and_links_added_while_open_arrive_with_their_attributes_and_tracestate(bridged):
    provider, memory, arrived = bridged
    linked = trace.SpanContext(0x1234567890ABCDEF1234567890ABCDEF, 0x1122334455667788, is_remote=True,
                               trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
                               trace_state=trace.TraceState([("vendor", "v1")]))
    span = past_its_first_span(provider, memory, "events").start_span("tool.call")
    span.add_event("retry", {"attempt": 2, "why": "timeout", "ok": False, "backoff": [0.5, 1.0], "raw": b"\x01"},
                   timestamp=1_700_000_000_000_000_001)
    span.add_link(linked, {"why": "batch", "n": 3})
    span.add_event("done")
    span.end()
    otel_span, got = one_arrived(memory, arrived)
    assert [e["name"] for e in got["events"]] == ["retry", "done"]
    assert got["events"][0]["attributes"] == as_received(otel_span.events[0].attributes)
    (link,) = got["links"]
    assert (link["trace_state"], link["flags"]) == ("vendor=v1", 0x301)
    assert_same(otel_span, got)


def test_the_common_span_takes_no_python_step_of_the_bridge(bridged, monkeypatch):
    """Counts the Python path's steps (`_begin`, `_complete`): none for a
    span the native hooks take, whatever is set on it while it is open;
    one each where a span needs the Python path (a link given at its start
    begins it there, attributes past the SDK's limit complete it there),
    and those spans arrive as the SDK kept them too."""
    provider, memory, arrived = bridged
    tracer = past_its_first_span(provider, memory, "common")
    calls = []
    for step in ("_begin", "_complete"):
        def counted(self, *args, _step=step, _original=getattr(SpanguardSpanProcessor, step)):
            calls.append(_step)
            return _original(self, *args)
        monkeypatch.setattr(SpanguardSpanProcessor, step, counted)
    other = trace.SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True)
    with tracer.start_as_current_span("agent", kind=trace.SpanKind.SERVER, attributes={"turn": 3}) as agent:
        agent.set_attribute("user.tier", "pro")
        agent.set_attributes({"a": 1, "b": [1.5]})
        agent.add_event("plan.ready", {"steps": 2})
        agent.add_link(other, {"why": "origin"})
        agent.update_name("agent.run")
        with tracer.start_as_current_span("llm.chat", kind=trace.SpanKind.CLIENT) as llm:
            llm.set_status(trace.Status(trace.StatusCode.ERROR, "rate limited"))
    assert calls == []
    tracer.start_span("linked at its start", links=[trace.Link(other, {"why": "origin"})]).end()
    assert calls == ["_begin"]
    many = tracer.start_span("past the attribute limit")
    many.set_attributes({f"k{i}": i for i in range(130)})
    many.end()
    assert calls == ["_begin", "_complete"]
    got = arrived()
    finished = memory.get_finished_spans()
    assert len(finished) == 4
    for otel_span in finished:
        assert_same(otel_span, got[f"{otel_span.get_span_context().span_id:016x}"])
