"""An ended span stays usable as a parent, as the OpenTelemetry API asks
("It MUST still be possible to use an ended span as parent"), and its
context stays the same for its whole life: after it was exported and its
slot went to another span too. Who needs it: an asyncio task or a
streamed response that outlives the span of the request that began it."""

import asyncio
import contextvars

from conftest import by_name, read_sink, run_python

import spanguard

# OTLP span flags: bit 8 says whether the parent is known to be remote,
# bit 9 that it is.
HAS_IS_REMOTE, IS_REMOTE = 0x100, 0x200


def reuse_slots(tracer, ended) -> None:
    """Exports the ended spans and begins and ends enough others that
    their slots go to new spans, checked by the slot number in the
    handles (tracer id << 56 | slot << 32 | generation)."""
    slots = {span.handle >> 32 for span in ended}
    reused = set()
    for round_ in range(20):
        assert tracer.flush(10)
        for i in range(300):
            other = tracer.start_span(f"other-{round_}-{i}")
            reused.add(other.handle >> 32)
            other.end()
        if slots <= reused:
            break
    assert slots <= reused, "the ended spans' slots were not reused"
    assert tracer.flush(10)


def assert_child_of(child: dict, parent: dict) -> None:
    assert child["trace_id"] == parent["trace_id"]
    assert child["parent_span_id"] == parent["span_id"]
    assert child["flags"] & HAS_IS_REMOTE and not child["flags"] & IS_REMOTE, "a local parent, not remote"


def test_an_ended_and_exported_span_still_parents_and_keeps_its_traceparent(tracer, sink):
    with tracer.span("request") as request:
        traceparent, tracestate = request.traceparent(), request.tracestate()
        inside = contextvars.copy_context()  # the request is current in it
    reuse_slots(tracer, [request])

    assert request.traceparent() == traceparent
    assert request.tracestate() == tracestate
    tracer.start_span("explicit-child", parent=request).end()
    inside.run(lambda: tracer.start_span("implicit-child").end())
    with tracer.span("child-in-with", parent=request) as child:
        with tracer.span("grandchild"):  # the new child is an open parent again
            pass
    assert tracer.flush(10)

    spans = by_name(read_sink(sink))
    parent = spans["request"]
    assert traceparent.split("-")[1:3] == [parent["trace_id"], parent["span_id"]]
    for name in ("explicit-child", "implicit-child", "child-in-with"):
        assert_child_of(spans[name], parent)
        assert spans[name]["flags"] & 0xff == parent["flags"] & 0xff, "sampled as the parent was"
    assert_child_of(spans["grandchild"], spans["child-in-with"])
    assert child.traceparent().split("-")[1:3] == [parent["trace_id"], spans["child-in-with"]["span_id"]]


def test_an_asyncio_task_begins_its_child_after_the_parent_ended(tracer, sink):
    async def stream(parent_gone: asyncio.Event):
        # The task began inside the request's block, so the request is its
        # current span; it streams on after the request's span ended.
        await parent_gone.wait()
        with tracer.span("stream.chunk"):
            pass

    async def main():
        parent_gone = asyncio.Event()
        with tracer.span("request") as request:
            task = asyncio.create_task(stream(parent_gone))
            await asyncio.sleep(0)
        reuse_slots(tracer, [request])
        parent_gone.set()
        await task

    asyncio.run(main())
    assert tracer.flush(10)
    spans = by_name(read_sink(sink))
    assert_child_of(spans["stream.chunk"], spans["request"])


def test_a_remote_childs_tracestate_and_an_unsampled_spans_decision_outlive_them(tracer, sink):
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    server = tracer.start_span("server", traceparent=incoming, tracestate="vendor=abc,other=1")
    server.end()
    unsampled = tracer.start_span("unsampled", traceparent="00-0af7651916cd43dd8448eb211c80319d-b7ad6b7169203331-00")
    unsampled_traceparent = unsampled.traceparent()
    unsampled.end()
    reuse_slots(tracer, [server, unsampled])

    assert server.tracestate() == "vendor=abc,other=1"
    tracer.start_span("handler", parent=server).end()
    late = tracer.start_span("late", parent=unsampled)
    late_traceparent = late.traceparent()
    late.end()
    assert unsampled.traceparent() == unsampled_traceparent
    assert tracer.flush(10)

    spans = by_name(read_sink(sink))
    assert spans["server"]["flags"] & IS_REMOTE  # its own parent is remote
    assert_child_of(spans["handler"], spans["server"])
    assert spans["handler"]["trace_state"] == "vendor=abc,other=1"
    # Unsampled, as its parent: the same trace, flags 00, never exported.
    assert "unsampled" not in spans and "late" not in spans
    assert late_traceparent.startswith("00-0af7651916cd43dd8448eb211c80319d-")
    assert late_traceparent.endswith("-00")
    assert late_traceparent.split("-")[2] != unsampled_traceparent.split("-")[2]


def test_a_disabled_tracers_ended_span_still_passes_its_context_on(tmp_path):
    # A disabled tracer records nothing and passes the incoming context on
    # (OpenTelemetry's API without an SDK); its contexts live in a ring of
    # 1024 that 2000 later remote begins come round.
    result = run_python(f"""
        import spanguard
        tracer = spanguard.Tracer(sink_dir={str(tmp_path / "sink")!r}, install_signal_handlers=False)
        incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        server = tracer.start_span("server", traceparent=incoming, tracestate="vendor=abc")
        server.end()
        for i in range(2000):
            tracer.start_span("other", traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01").end()
        child = tracer.start_span("child", parent=server)
        print(server.traceparent(), server.tracestate(), child.traceparent(), child.tracestate())
    """, env={"OTEL_SDK_DISABLED": "true", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert result.stdout.split() == [incoming, "vendor=abc", incoming, "vendor=abc"]


def test_a_span_that_never_began_stays_without_a_context(tmp_path):
    tracer = spanguard.Tracer(from_env=False, sink_dir=tmp_path / "sink", install_signal_handlers=False)
    tracer.shutdown()
    span = tracer.start_span("after-shutdown")
    span.end()
    assert span.traceparent() == ""
    tracer.close()
