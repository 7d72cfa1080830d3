"""Writes the sink lines of the spans an agent turn makes when its OpenAI
instrumentation sends the chat as GenAI events through OpenTelemetry's Logs
API, put on their spans by spanguard's SpanguardLogRecordProcessor:

- openai-v2-event-only.jsonl: opentelemetry-instrumentation-openai-v2 with
  OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental and
  OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=event_only: a
  `gen_ai.client.inference.operation.details` event a call, its messages
  structured (arrays of maps) in its attributes.
- openllmetry-events.jsonl: OpenLLMetry (opentelemetry-instrumentation-openai)
  with use_attributes=False: `gen_ai.system.message`, `gen_ai.user.message`,
  `gen_ai.assistant.message`, `gen_ai.tool.message`, `gen_ai.choice`, their
  bodies as the event attribute `log.record.body`.

The turn: a system message (with an escape sequence, which show must not
send to the terminal as it is), a user's question of two lines and a tab,
a tool offered: the model (tests/python/fake_openai.py) asks for the tool,
then answers the tool's result. Ids and times are made fixed (in the order
the spans started, each 10 ms after the last, events 1 ms apart) so that
the files read the same each time; what the instrumentations wrote is kept
as it is. After `make test-python-binding` (it installs the wheel and the
instrumentations in .venv):

  .venv/bin/python tests/cli/genai_events/make_spans.py tests/cli/genai_events
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
CASES = {
    "openai-v2-event-only": {"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
                             "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "event_only"},
    "openllmetry-events": {},
}
TRACE = {"openai-v2-event-only": "9e0e0000000000000000000000004141", "openllmetry-events": "9e0e0000000000000000000000004242"}
T0 = 1796029200000000000
SYSTEM = "You are a weather agent.\x1b[2J Answer in one line."
QUESTION = "What is the weather in Lisbon?\nAnswer with\tthe temperature."
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


def agent(case: str, sink: str):
    """The turn, instrumented as `case` says, into the sink directory `sink`."""
    sys.path.insert(0, str(REPO / "tests/python"))
    import openai
    from fake_openai import FakeOpenAI
    from opentelemetry import trace
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.trace import TracerProvider

    import spanguard
    from spanguard.otel import SpanguardLogRecordProcessor, SpanguardSpanProcessor

    if case == "openai-v2-event-only":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
        instrumentor = OpenAIInstrumentor()
    else:
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
        instrumentor = OpenAIInstrumentor(use_attributes=False)
    tracer = spanguard.Tracer(from_env=False, service_name="weather-agent", sink_dir=sink,
                              spool_dir=sink + "-spool", install_signal_handlers=False)
    provider = TracerProvider()
    bridge = SpanguardSpanProcessor(tracer)
    provider.add_span_processor(bridge)
    logs = LoggerProvider()
    logs.add_log_record_processor(SpanguardLogRecordProcessor(bridge))
    instrumentor.instrument(tracer_provider=provider, logger_provider=logs)
    with FakeOpenAI() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)
        with provider.get_tracer("weather.agent").start_as_current_span("agent.turn"):
            messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
            first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
            call = first.choices[0].message.tool_calls[0]
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": call.id, "type": "function",
                 "function": {"name": call.function.name, "arguments": call.function.arguments}}]})
            messages.append({"role": "tool", "tool_call_id": call.id, "content": "18°C, clear sky"})
            client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
    instrumentor.uninstrument()
    provider.shutdown()
    tracer.close()


def fixed(line: dict, trace_id: str) -> dict:
    """The sink line with fixed ids and times; resource and scope kept
    but the host's and process's own attributes."""
    spans = [s for rs in line["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    spans.sort(key=lambda s: int(s["startTimeUnixNano"]))
    ids = {s["spanId"]: f"9e0e0000000000{i + 1:02d}" for i, s in enumerate(spans)}
    for i, s in enumerate(spans):
        start = int(s["startTimeUnixNano"])
        s["traceId"] = trace_id
        s["spanId"] = ids[s["spanId"]]
        if s.get("parentSpanId"):
            s["parentSpanId"] = ids[s["parentSpanId"]]
        new_start = T0 + i * 10_000_000
        s["startTimeUnixNano"] = str(new_start)
        s["endTimeUnixNano"] = str(new_start + (8_000_000 if s.get("parentSpanId") else 90_000_000))
        for j, e in enumerate(s.get("events", [])):
            e["timeUnixNano"] = str(new_start + (j + 1) * 1_000_000)
        s["attributes"] = [a for a in s.get("attributes", [])
                           if a["key"] not in ("gen_ai.response.id", "server.port", "gen_ai.openai.api_base")]
    for rs in line["resourceSpans"]:
        rs["resource"]["attributes"] = [a for a in rs["resource"].get("attributes", [])
                                        if a["key"] in ("service.name", "telemetry.sdk.language")]
    return line


def main():
    if len(sys.argv) == 3 and sys.argv[1] in CASES:  # the agent, in a process of its own
        agent(sys.argv[1], sys.argv[2])
        return
    out = Path(sys.argv[1])
    for case, env in CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            sink = os.path.join(tmp, "sink")
            clean = {k: v for k, v in os.environ.items() if not k.startswith(("SPANGUARD_", "OTEL_", "TRACELOOP_"))}
            subprocess.run([sys.executable, __file__, case, sink], env={**clean, **env}, check=True)
            lines = [json.loads(l) for f in sorted(Path(sink).glob("*.jsonl"))
                     for l in f.read_text().split("\n") if l.strip()]
        merged = lines[0]
        for more in lines[1:]:
            merged["resourceSpans"].extend(more["resourceSpans"])
        (out / f"{case}.jsonl").write_text(json.dumps(fixed(merged, TRACE[case]), ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
