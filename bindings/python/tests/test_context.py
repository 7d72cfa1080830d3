"""`traced` on every kind of function, and the current span across asyncio
tasks and threads. Coverage is judged by parenthood and by times relative
to other spans, never by how long anything took."""

import asyncio
import threading

import pytest
from conftest import by_name, read_sink

import spanguard


def covers(outer: dict, inner: dict) -> bool:
    return outer["start"] <= inner["start"] and inner["end"] <= outer["end"]


def test_an_async_function_is_traced_for_its_whole_run(tracer, sink):
    @tracer.traced("agent.plan")
    async def plan():
        await asyncio.sleep(0.01)
        with tracer.span("after-await"):
            pass
        return "plan"

    async def main():
        with tracer.span("session"):
            coroutine = plan()
            with tracer.span("between"):  # made after the call, before the await
                pass
            return await coroutine

    assert asyncio.run(main()) == "plan"
    assert tracer.flush(10)
    spans = by_name(read_sink(sink))
    assert spans["after-await"]["parent_span_id"] == spans["agent.plan"]["span_id"]
    assert spans["agent.plan"]["parent_span_id"] == spans["session"]["span_id"]
    assert spans["between"]["parent_span_id"] == spans["session"]["span_id"]
    assert covers(spans["agent.plan"], spans["after-await"])


def test_an_async_exception_is_recorded_and_propagates(tracer, sink):
    @tracer.traced("tool.fetch")
    async def fetch():
        await asyncio.sleep(0)
        raise TimeoutError("upstream timeout after 30s")

    with pytest.raises(TimeoutError):
        asyncio.run(fetch())
    assert tracer.flush(10)
    (span,) = read_sink(sink)
    assert span["status_code"] == spanguard.STATUS_ERROR
    (event,) = span["events"]
    assert event["name"] == "exception"
    assert event["attributes"]["exception.type"] == "TimeoutError"
    assert event["attributes"]["exception.message"] == "upstream timeout after 30s"
    assert "fetch" in event["attributes"]["exception.stacktrace"]


def test_a_generator_is_traced_for_its_whole_iteration(tracer, sink):
    @tracer.traced("stream.tokens")
    def tokens():
        for i in range(3):
            with tracer.span(f"produce-{i}"):
                pass
            yield i

    with tracer.span("consumer"):
        got = []
        for t in tokens():
            with tracer.span(f"consume-{t}"):  # the caller's own context between steps
                got.append(t)
    assert got == [0, 1, 2]
    assert tracer.flush(10)
    spans = by_name(read_sink(sink))
    gen, consumer = spans["stream.tokens"], spans["consumer"]
    assert gen["parent_span_id"] == consumer["span_id"]
    for i in range(3):
        assert spans[f"produce-{i}"]["parent_span_id"] == gen["span_id"]
        assert spans[f"consume-{i}"]["parent_span_id"] == consumer["span_id"]
        assert covers(gen, spans[f"produce-{i}"]) and covers(gen, spans[f"consume-{i}"])


def test_a_generator_that_fails_or_is_closed_early(tracer, sink):
    @tracer.traced("failing")
    def failing():
        yield 1
        raise KeyError("missing")

    @tracer.traced("abandoned")
    def abandoned():
        yield 1
        yield 2

    with pytest.raises(KeyError):
        list(failing())
    g = abandoned()
    assert next(g) == 1
    g.close()
    assert tracer.flush(10)
    spans = by_name(read_sink(sink))
    assert spans["failing"]["status_code"] == spanguard.STATUS_ERROR
    assert spans["failing"]["events"][0]["attributes"]["exception.type"] == "KeyError"
    assert spans["abandoned"]["status_code"] == spanguard.STATUS_UNSET  # closing early is no error
    assert spans["abandoned"]["events"] == []


def test_an_async_generator_is_traced_for_its_whole_iteration(tracer, sink):
    @tracer.traced("stream.chunks")
    async def chunks():
        for i in range(3):
            await asyncio.sleep(0)
            with tracer.span(f"chunk-{i}"):
                pass
            yield i

    @tracer.traced("stream.broken")
    async def broken():
        yield 0
        raise ConnectionError("reset by peer")

    async def main():
        with tracer.span("reader"):
            got = [c async for c in chunks()]
            with pytest.raises(ConnectionError):
                async for _ in broken():
                    pass
            return got

    assert asyncio.run(main()) == [0, 1, 2]
    assert tracer.flush(10)
    spans = by_name(read_sink(sink))
    gen = spans["stream.chunks"]
    assert gen["parent_span_id"] == spans["reader"]["span_id"]
    for i in range(3):
        assert spans[f"chunk-{i}"]["parent_span_id"] == gen["span_id"]
        assert covers(gen, spans[f"chunk-{i}"])
    assert spans["stream.broken"]["status_code"] == spanguard.STATUS_ERROR
    assert spans["stream.broken"]["parent_span_id"] == spans["reader"]["span_id"]


def test_asyncio_tasks_keep_their_own_current_span(tracer, sink):
    @tracer.traced("tool")
    async def tool(name):
        await asyncio.sleep(0.01)  # the tasks interleave here
        with tracer.span(f"{name}.step"):
            await asyncio.sleep(0)
        return name

    async def main():
        with tracer.span("agent"):
            return await asyncio.gather(*(asyncio.create_task(tool(n)) for n in ("a", "b", "c")))

    assert asyncio.run(main()) == ["a", "b", "c"]
    assert tracer.flush(10)
    spans = read_sink(sink)
    agent = next(s for s in spans if s["name"] == "agent")
    tools = {s["span_id"]: s for s in spans if s["name"] == "tool"}
    assert len(tools) == 3 and all(t["parent_span_id"] == agent["span_id"] for t in tools.values())
    steps = [s for s in spans if s["name"].endswith(".step")]
    assert len(steps) == 3
    # each step under its own task's tool span: three different parents
    assert {s["parent_span_id"] for s in steps} == set(tools)


def test_threads_start_from_an_empty_context_unless_given_one(tracer, sink):
    results = {}

    def child(label):
        with tracer.span(label):
            results[label] = spanguard.current_span().traceparent()

    with tracer.span("parent"):
        plain = threading.Thread(target=child, args=("plain-thread",))
        plain.start()
        plain.join()
        wrapped = threading.Thread(target=spanguard.wrap(child), args=("wrapped-thread",))
        wrapped.start()
        wrapped.join()
        with spanguard.ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(child, ["pool-1", "pool-2"]))
            pool.submit(child, "pool-3").result()
    assert tracer.flush(10)
    spans = by_name(read_sink(sink))
    parent = spans["parent"]
    assert spans["plain-thread"]["parent_span_id"] == ""  # threading.Thread does not inherit
    for label in ("wrapped-thread", "pool-1", "pool-2", "pool-3"):
        assert spans[label]["parent_span_id"] == parent["span_id"], label
        assert spans[label]["trace_id"] == parent["trace_id"]
