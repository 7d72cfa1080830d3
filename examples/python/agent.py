#!/usr/bin/env python3
"""A sample AI agent traced with spanguard's native Python API: a session,
LLM calls with token counts, tool calls (one fails), nested children.
With the wheel of `make dist-python` installed (pip install build/dist/spanguard-*.whl):
    SPANGUARD_SINK_DIR=build/py-demo python3 examples/python/agent.py
"""

import spanguard

tracer = spanguard.Tracer(service_name="py-demo-agent")


def llm(model, prompt, tokens_in, tokens_out):
    with tracer.span("llm.chat", kind=spanguard.KIND_CLIENT) as span:
        span.set_attributes({"gen_ai.request.model": model, "gen_ai.prompt": prompt,
                             "gen_ai.usage.input_tokens": tokens_in, "gen_ai.usage.output_tokens": tokens_out})


@tracer.traced("tool.call")
def search(query, fail=False):
    spanguard.current_span().set_attributes({"tool.name": "search", "tool.arguments": query})
    if fail:
        raise TimeoutError("upstream timeout after 30s")
    with tracer.span("http.get", kind=spanguard.KIND_CLIENT, attributes={"http.response.status_code": 200}):
        return ["LIS 09:10"]


with tracer.span("agent.session", kind=spanguard.KIND_SERVER, attributes={"session.id": "py-0001"}):
    for step in range(3):
        with tracer.span("agent.step", attributes={"agent.step": step}):
            llm("gpt-4o-mini", "Plan the next action", 400 + step, 60 + step)
            try:
                search("flights to Lisbon", fail=(step == 1))
            except TimeoutError:
                pass  # the span already says ERROR; the agent retries next step
    llm("gpt-4o", "Summarise for the user", 1800, 240)

tracer.shutdown()
print("py-demo-agent:", tracer.stats())
