"""A process killed in the middle of an LLM call still delivers its open
spans: an agent under the OpenTelemetry SDK with the bridge and the
openai-v2 instrumentation calls the fake OpenAI server, which holds the
answer; the test kills the agent with SIGTERM (the signal watchdog) or
SIGKILL (the flight recorder), then a tracer started on the same spool
directory delivers what the agent left. The open agent and LLM spans must
arrive at the loopback receiver with the SDK's ids, marked
`spanguard.interrupted`, with what was set on them after their start, and
with what the SDK's span limits dropped counted (events, attributes and
links past its 128: the bridge passes the first ones on and counted the
rest only at on_end, which a killed span never reaches)."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from fake_openai import FakeOpenAI

import spanguard

AGENT = textwrap.dedent("""
    import json
    import sys

    import openai
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.trace import Link, SpanContext

    import spanguard
    from spanguard.otel import SpanguardSpanProcessor


    class Announce(SpanProcessor):
        def on_start(self, span, parent_context=None):
            print(json.dumps({"name": span.name, "span_id": f"{span.get_span_context().span_id:016x}"}),
                  flush=True)


    tracer = spanguard.Tracer(service_name="killed-agent")  # endpoint, spool, flight recorder: from env
    provider = TracerProvider()
    provider.add_span_processor(SpanguardSpanProcessor(tracer))
    provider.add_span_processor(Announce())
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    client = openai.OpenAI(base_url=sys.argv[1], api_key="test-key", max_retries=0, timeout=600)
    agent = provider.get_tracer("weather.agent")
    # 130 links at the start, 2 past the SDK's limit of 128.
    links = [Link(SpanContext(0x1F, n + 1, False)) for n in range(130)]
    with agent.start_as_current_span("agent.run", links=links) as run:
        # Set while the span is open: no Python runs before the dump.
        run.set_attribute("agent.goal", "weather")
        run.add_event("agent.step", {"step": 1})
        # A streamed answer recorded an event a chunk: 200 more, 73 past
        # the SDK's limit of 128 events; and 130 more attributes, 3 past.
        for n in range(200):
            run.add_event("chunk", {"n": n})
        for n in range(130):
            run.set_attribute(f"k{n}", n)
        with agent.start_as_current_span("plan"):
            pass
        client.chat.completions.create(model="gpt-4o-mini",
                                       messages=[{"role": "user", "content": "HOLD: what is the weather?"}])
""")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_agent_still_delivers_its_open_llm_span(receiver, tmp_path, sig):
    start = len(receiver.spans())
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    spool = tmp_path / "spool"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPANGUARD_", "OTEL_"))}
    env.update(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.traces_url, SPANGUARD_SPOOL_DIR=str(spool),
               OTEL_BSP_SCHEDULE_DELAY="100", SPANGUARD_FLIGHT_RECORDER="true" if sig == signal.SIGKILL else "false")
    with FakeOpenAI() as server:
        proc = subprocess.Popen([sys.executable, str(script), server.base_url], env=env, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started = {}
        for line in proc.stdout:
            s = json.loads(line)
            started[s["name"]] = s["span_id"]
            if s["name"].startswith("chat"):
                break
        assert server.held.wait(60), proc.stderr.read() if proc.poll() is not None else "no held request"
        proc.send_signal(sig)
        proc.wait(60)
        assert proc.returncode == -sig
    # The next start on the same spool directory sends what the agent left.
    after = spanguard.Tracer(from_env=False, endpoint=receiver.traces_url, spool_dir=spool,
                             install_signal_handlers=False)
    assert after.shutdown(30)
    after.close()
    got = {s["span_id"]: s for s in receiver.spans()[start:]}
    llm_name = next(name for name in started if name.startswith("chat"))
    assert set(started) == {"agent.run", "plan", llm_name}
    assert {got[i]["name"] for i in started.values() if i in got} == set(started), "a span is missing"
    plan, run, llm = got[started["plan"]], got[started["agent.run"]], got[started[llm_name]]
    assert "spanguard.interrupted" not in plan["attributes"]  # it had ended
    for span in (run, llm):
        assert span["attributes"]["spanguard.interrupted"] is True, span
    assert llm["parent_span_id"] == run["span_id"] == plan["parent_span_id"]
    assert llm["attributes"]["gen_ai.request.model"] == "gpt-4o-mini"
    assert run["attributes"]["agent.goal"] == "weather", run
    # The first ones the SDK was given (the bridge stops passing them on at
    # its limit), and what it dropped counted: 0 before the bridge passed
    # its drops on as they happen.
    assert [(e["name"], e["attributes"]) for e in run["events"][:2]] == [("agent.step", {"step": 1}),
                                                                         ("chunk", {"n": 0})], run
    assert len(run["events"]) == 128 and run["dropped_events_count"] == 73
    given = [k for k in run["attributes"] if not k.startswith("spanguard.")]
    assert (len(given), run["dropped_attributes_count"]) == (128, 3), sorted(run["attributes"])
    assert len(run["links"]) == 128 and run["dropped_links_count"] == 2
    assert llm["scope"].startswith("opentelemetry") and run["scope"] == "weather.agent"
