#!/usr/bin/env python3
"""A sample AI agent that already uses OpenTelemetry (its own provider and
exporter, instrumentations on it), with spanguard added as one more span
processor: the same spans also go through spanguard's kill-safe pipeline,
with the ids OpenTelemetry gave them. The other way, spanguard's native
API, is examples/python/agent.py.

With the wheel of `make dist-python` and opentelemetry-sdk installed:
    SPANGUARD_SINK_DIR=build/py-otel-demo python3 examples/python/otel_agent.py

An instrumentation joins the same way, e.g. for the openai client:
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    OpenAIInstrumentor().instrument(tracer_provider=provider)
"""

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanguard
from spanguard.otel import SpanguardSpanProcessor

# The application's existing setup (an in-memory exporter stands in for
# its OTLP exporter here).
provider = TracerProvider()
existing = InMemorySpanExporter()
provider.add_span_processor(SimpleSpanProcessor(existing))

# spanguard beside it. No global provider is set by it.
sg = spanguard.Tracer(service_name="py-otel-demo-agent")
provider.add_span_processor(SpanguardSpanProcessor(sg))

tracer = provider.get_tracer("demo.agent", "0.1.0")


def llm(model, prompt, tokens_in, tokens_out):
    with tracer.start_as_current_span(f"chat {model}", kind=trace.SpanKind.CLIENT) as span:
        span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": model,
                             "gen_ai.input.messages": f'[{{"role":"user","content":"{prompt}"}}]',
                             "gen_ai.usage.input_tokens": tokens_in, "gen_ai.usage.output_tokens": tokens_out})


def search(query, fail=False):
    with tracer.start_as_current_span("execute_tool search") as span:
        span.set_attribute("gen_ai.tool.name", "search")
        span.set_attribute("tool.arguments", query)
        if fail:
            error = TimeoutError("upstream timeout after 30s")
            span.record_exception(error)
            span.set_status(trace.Status(trace.StatusCode.ERROR, str(error)))
            return None
        return ["LIS 09:10"]


with tracer.start_as_current_span("invoke_agent travel", kind=trace.SpanKind.SERVER) as session:
    session.set_attribute("session.id", "py-otel-0001")
    for step in range(3):
        llm("gpt-4o-mini", "Plan the next action", 400 + step, 60 + step)
        search("flights to Lisbon", fail=(step == 1))
    llm("gpt-4o", "Summarise for the user", 1800, 240)

provider.shutdown()  # the provider's shutdown shuts the spanguard tracer down too
stats = sg.stats()
print(f"py-otel-demo-agent: {len(existing.get_finished_spans())} spans to the existing exporter, "
      f"{stats.spans_exported} through spanguard")
assert stats.spans_exported == len(existing.get_finished_spans())
