"""Real OpenAI instrumentations through the bridge: the `openai` client,
instrumented by opentelemetry-instrumentation-openai-v2 and by
openinference-instrumentation-openai, against a loopback fake
OpenAI-compatible server (chat completions with and without streaming,
and a tool call), under an agent span with a tool span between the LLM
calls. What the loopback receiver decodes must be what an in-memory
exporter on the same provider got: the same ids and parents, the GenAI
attributes and message content whole."""

import json

import openai
import pytest
from fake_openai import FakeOpenAI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_otel_bridge import assert_same

import spanguard
from spanguard.otel import SpanguardSpanProcessor

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather now in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def agent(tracer, client):
    """Asks, runs the tool the model calls, answers; then streams a reply."""
    question = {"role": "user", "content": "What is the weather in Lisbon?"}
    with tracer.start_as_current_span("agent.run", kind=trace.SpanKind.SERVER) as run:
        run.set_attribute("agent.name", "weather-agent")
        first = client.chat.completions.create(model="gpt-4o-mini", messages=[question], tools=[WEATHER_TOOL])
        call = first.choices[0].message.tool_calls[0]
        with tracer.start_as_current_span("tool.get_weather") as tool:
            tool.set_attribute("tool.arguments", call.function.arguments)
            result = f"22C and sunny in {json.loads(call.function.arguments)['city']}"
            tool.set_attribute("tool.result", result)
        second = client.chat.completions.create(model="gpt-4o-mini", messages=[
            question,
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": result}])
        assert second.choices[0].message.content == f"echo: {result}"
        stream = client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                                stream_options={"include_usage": True},
                                                messages=[{"role": "user", "content": "Say it as a haiku"}])
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert text == "echo: Say it as a haiku"


@pytest.fixture
def run_agent(receiver, tmp_path):
    """Runs the agent with `instrumentor` on a provider that has the bridge
    and an in-memory exporter; returns (OTel spans, received spans by id)."""
    def run(instrumentor):
        start = len(receiver.spans())
        tracer = spanguard.Tracer(from_env=False, service_name="weather-agent", endpoint=receiver.traces_url,
                                  spool_dir=tmp_path / "spool", schedule_delay_ms=50, install_signal_handlers=False)
        provider = TracerProvider()
        memory = InMemorySpanExporter()
        provider.add_span_processor(SpanguardSpanProcessor(tracer))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        instrumentor.instrument(tracer_provider=provider)
        try:
            with FakeOpenAI() as server:
                client = openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)
                agent(provider.get_tracer("weather.agent", "0.3.0"), client)
        finally:
            instrumentor.uninstrument()
        assert provider.force_flush()
        provider.shutdown()
        assert tracer.stats().values_truncated == 0
        tracer.close()
        return memory.get_finished_spans(), {s["span_id"]: s for s in receiver.spans()[start:]}
    return run


def check_tree(finished, got):
    """Every OTel span arrived, as it is; the LLM and tool spans are
    children of the agent span."""
    assert len(got) == len(finished)
    for otel_span in finished:
        assert_same(otel_span, got[f"{otel_span.get_span_context().span_id:016x}"])
    (agent_span,) = [s for s in got.values() if s["name"] == "agent.run"]
    children = [s for s in got.values() if s is not agent_span]
    assert len(children) == 4  # three LLM calls and the tool
    assert all(s["parent_span_id"] == agent_span["span_id"] and s["trace_id"] == agent_span["trace_id"]
               for s in children)
    return [s for s in children if s["name"] != "tool.get_weather"]


def test_openai_v2_instrumentation(run_agent, monkeypatch):
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    finished, got = run_agent(OpenAIInstrumentor())
    llm = check_tree(finished, got)
    assert len(llm) == 3
    for span in llm:
        a = span["attributes"]
        assert span["kind"] == 3  # CLIENT
        assert span["scope"] != "weather.agent"  # the instrumentation's own scope
        assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.model"] == "gpt-4o-mini"
        assert a["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
        assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (31, 7)
        json.loads(a["gen_ai.input.messages"]), json.loads(a["gen_ai.output.messages"])
    contents = " ".join(s["attributes"]["gen_ai.input.messages"] + s["attributes"]["gen_ai.output.messages"]
                        for s in llm)
    for text in ("What is the weather in Lisbon?", "get_weather", "22C and sunny in Lisbon", "Say it as a haiku"):
        assert text in contents


def test_openinference_instrumentation(run_agent):
    from openinference.instrumentation.openai import OpenAIInstrumentor
    finished, got = run_agent(OpenAIInstrumentor())
    llm = check_tree(finished, got)
    assert len(llm) == 3
    for span in llm:
        a = span["attributes"]
        assert a["openinference.span.kind"] == "LLM" and a["llm.model_name"] == "gpt-4o-mini-2024-07-18"
        assert (a["llm.token_count.prompt"], a["llm.token_count.completion"]) == (31, 7)
        assert a["llm.input_messages.0.message.content"] in ("What is the weather in Lisbon?", "Say it as a haiku")
        json.loads(a["input.value"]), json.loads(a["output.value"])
    calls = [s for s in llm if "llm.output_messages.0.message.tool_calls.0.tool_call.function.name" in s["attributes"]]
    assert len(calls) == 1
    assert calls[0]["attributes"]["llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments"] == \
        '{"city": "Lisbon"}'
