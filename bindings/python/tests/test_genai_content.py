"""Where today's OpenAI instrumentations put the prompt and the completion,
and that spanguard keeps both whole.

Each instrumentation runs the `openai` client against the loopback fake
OpenAI server (tests/python/fake_openai.py) under an agent span: one chat
completion with a 60 KB prompt of many-byte characters, and one streamed
(its answer arrives in some ten thousand chunks). The spans go through the
bridge into a local sink (decoded strictly by opentelemetry-proto) and, for
the events, to the loopback OTLP receiver too; the prompt and the completion
must be there byte for byte, where the instrumentation puts them with the
settings a user sets:

- OpenInference: span attributes `llm.input_messages.0.message.content`,
  `llm.output_messages.0.message.content`.
- OpenLLMetry (opentelemetry-instrumentation-openai, default
  `use_attributes=True`): span attributes `gen_ai.input.messages`,
  `gen_ai.output.messages` (JSON); with `use_attributes=False`, events
  emitted through the Logs API.
- opentelemetry-instrumentation-openai-v2: with
  `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true` (what its
  README says) the content goes only to Logs API events
  (`gen_ai.user.message`, `gen_ai.choice`, their bodies); with
  `OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`, `span_only`
  puts it on span attributes (`gen_ai.input.messages`, JSON) and
  `event_only` on a `gen_ai.client.inference.operation.details` event's
  attributes (structured).

What goes through the Logs API reaches spanguard only through
`SpanguardLogRecordProcessor`, which adds each event to its span: without
it the spans hold no prompt (checked: that is the silent loss it is for).
`spanguard show --full` (SPANGUARD_CLI, set by make test-python-binding)
must print the chat: the prompt and the completion whole. An agent killed
mid-call (SIGKILL) must still deliver the prompt event emitted as the call
began."""

import json
import multiprocessing
import os
import random
import re
import signal
import subprocess
import sys
import traceback
from types import SimpleNamespace

import openai
import pytest
from conftest import read_sink
from fake_openai import FakeOpenAI
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import spanguard
from spanguard import otel
from spanguard.otel import SpanguardLogRecordProcessor, SpanguardSpanExporter, SpanguardSpanProcessor

# Words of one to four bytes a character, and characters JSON escapes.
WORDS = ["Olá", "mundo", "日本語の", "テキスト", "😀🚀", "Ünïcödé", "naïve", "ключ", '"quoted"', "back\\slash",
         "line\nbreak", "tab\tend", "\u2028sep", "plain", "ascii"]


def prompt(seed: int, size: int = 60_000) -> str:
    """A prompt of `size` UTF-8 bytes or a few more, of WORDS in a random order."""
    rnd, words, n = random.Random(seed), [], 0
    while n < size:
        w = rnd.choice(WORDS)
        words.append(w)
        n += len(w.encode()) + 1
    return " ".join(words)


PROMPT, STREAM_PROMPT = prompt(1), prompt(2)
ANSWER, STREAM_ANSWER = f"echo: {PROMPT}", f"echo: {STREAM_PROMPT}"


def run(tmp_path, instrumentor, logs: bool, endpoint: str | None = None, exporter: bool = False):
    """The two calls under `agent.run`, instrumented by `instrumentor` on a
    provider with the bridge (the span processor; with `exporter`, a
    BatchSpanProcessor over SpanguardSpanExporter) and, with `logs`, a
    LoggerProvider with SpanguardLogRecordProcessor given that bridge,
    passed to the instrumentation as an application passes its own.
    Returns (spans by name, the log processor)."""
    where = dict(endpoint=endpoint) if endpoint else dict(sink_dir=tmp_path / "sink", sink_max_line_bytes=64 << 20)
    tracer = spanguard.Tracer(from_env=False, service_name="chat-agent", spool_dir=tmp_path / "spool",
                              schedule_delay_ms=50, install_signal_handlers=False, **where)
    provider = TracerProvider()
    if exporter:
        bridge = SpanguardSpanExporter(tracer)
        provider.add_span_processor(BatchSpanProcessor(bridge))
    else:
        bridge = SpanguardSpanProcessor(tracer)
        provider.add_span_processor(bridge)
    kwargs, events = {"tracer_provider": provider}, None
    if logs:
        events = SpanguardLogRecordProcessor(bridge)
        kwargs["logger_provider"] = LoggerProvider()
        kwargs["logger_provider"].add_log_record_processor(events)
    instrumentor.instrument(**kwargs)
    try:
        with FakeOpenAI() as server:
            client = openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)
            with provider.get_tracer("chat.agent").start_as_current_span("agent.run", kind=trace.SpanKind.SERVER):
                answer = client.chat.completions.create(model="gpt-4o-mini",
                                                        messages=[{"role": "user", "content": PROMPT}])
                assert answer.choices[0].message.content == ANSWER
                stream = client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                                        stream_options={"include_usage": True},
                                                        messages=[{"role": "user", "content": STREAM_PROMPT}])
                streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
                assert streamed == STREAM_ANSWER
    finally:
        instrumentor.uninstrument()
    provider.shutdown()  # shuts the spanguard tracer down: every span written
    stats = tracer.stats()
    tracer.close()
    assert (stats.spans_exported, stats.values_truncated, stats.values_rejected) == (3, 0, 0), stats
    spans = read_sink(tmp_path / "sink") if not endpoint else None
    return spans, events


def run_in_child(tmp_path, make, logs: bool, exporter: bool = False):
    """`run` in a forked child, for OpenLLMetry: opentelemetry-instrumentation-openai
    0.62.4 instrumented again in a process (after its `uninstrument`) wraps
    the stream once more, and a streamed answer's event then holds each
    chunk as many times ("echo:echo: one one two two"), a second time as
    its own event too. Returns what `run` returns (the log processor's
    counts only)."""
    context = multiprocessing.get_context("fork")
    answers = context.Queue()

    def child():
        try:
            _, events = run(tmp_path, make(), logs, exporter=exporter)
            answers.put(("ok", events and (events.attached, events.not_attached, events.held)))
        except BaseException:  # noqa: BLE001 - said to the parent
            answers.put(("failed", traceback.format_exc()))

    process = context.Process(target=child)
    process.start()
    outcome, what = answers.get(timeout=300)
    process.join(60)
    assert outcome == "ok", what
    assert process.exitcode == 0
    events = SimpleNamespace(attached=what[0], not_attached=what[1], held=what[2]) if what else None
    return read_sink(tmp_path / "sink"), events


def llm_spans(spans) -> list[dict]:
    """The two LLM spans, the plain call's first, children of agent.run."""
    (agent,) = [s for s in spans if s["name"] == "agent.run"]
    llm = sorted((s for s in spans if s is not agent), key=lambda s: s["start"])
    assert len(llm) == 2 and all(s["parent_span_id"] == agent["span_id"] for s in llm)
    return llm


def strings(value):
    """Every string in `value` (an attribute's or a body's: maps, arrays,
    and strings that are JSON, as the GenAI attributes are, opened)."""
    if isinstance(value, str):
        yield value
        if value[:1] in "[{":
            try:
                yield from strings(json.loads(value))
            except ValueError:
                pass
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def holds(values, text: str) -> bool:
    """Whether one of the strings in `values` is `text`, byte for byte (a
    cut, a re-encoded or a joined-wrong text is not)."""
    return any(s == text for v in values for s in strings(v))


def in_attributes(span, *keys):
    return [span["attributes"][k] for k in keys if k in span["attributes"]]


def in_events(span, name):
    return [e["attributes"] for e in span["events"] if e["name"] == name]


def assert_whole(spans, where, stream_answer_on_parent=False):
    """`where(span)` -> the values the prompt and its answer must be in
    (the streamed answer in the agent span's, `stream_answer_on_parent`)."""
    (agent,) = [s for s in spans if s["name"] == "agent.run"]
    for i, (span, (asked, answer)) in enumerate(zip(llm_spans(spans), ((PROMPT, ANSWER),
                                                                      (STREAM_PROMPT, STREAM_ANSWER)))):
        values = where(span)
        assert holds(values, asked), (span["name"], [str(v)[:200] for v in values])
        answered = where(agent) if i == 1 and stream_answer_on_parent else values
        assert holds(answered, answer), (span["name"], [str(v)[:200] for v in answered])


def assert_no_content(spans):
    """Neither the prompt nor its answer is anywhere on the spans."""
    for span in llm_spans(spans):
        everything = [span["attributes"], *[e["attributes"] for e in span["events"]]]
        assert not any(PROMPT[:1000] in s or STREAM_PROMPT[:1000] in s for v in everything for s in strings(v))


def assert_shown(tmp_path):
    """`spanguard show --full` prints the chat with the prompt and the
    completion whole."""
    cli = os.environ.get("SPANGUARD_CLI")
    if not cli:
        pytest.skip("SPANGUARD_CLI not set (make test-python-binding sets it)")
    shown = subprocess.run([cli, "show", str(tmp_path / "sink"), "--color", "never", "--full"],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    # A text's later lines are drawn under a gutter ("│      ┊ "), a tab as
    # `\t`, a line separator (U+2028, which some viewers break a line at:
    # text from outside never forges a line) as `\u{2028}`: undone, each
    # text must be there whole.
    drawn = re.sub(r"\n[^\n┊]*┊ ", "\n", shown.stdout)
    for text in (PROMPT, ANSWER, STREAM_PROMPT, STREAM_ANSWER):
        shown_as = text.replace("\t", "\\t").replace("\u2028", "\\u{2028}")
        assert shown_as in drawn, (text[:80], shown.stdout[:3000])


def openinference():
    from openinference.instrumentation.openai import OpenAIInstrumentor
    return OpenAIInstrumentor()


def openllmetry(**kwargs):
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    return OpenAIInstrumentor(**kwargs)


def openai_v2():
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    return OpenAIInstrumentor()


def test_openinference_puts_the_chat_on_span_attributes(tmp_path):
    spans, _ = run(tmp_path, openinference(), logs=False)
    assert_whole(spans, lambda s: in_attributes(s, "llm.input_messages.0.message.content",
                                                "llm.output_messages.0.message.content"))
    assert_shown(tmp_path)


def test_openllmetry_puts_the_chat_on_span_attributes(tmp_path, monkeypatch):
    monkeypatch.delenv("TRACELOOP_TRACE_CONTENT", raising=False)  # its default: content traced
    spans, _ = run_in_child(tmp_path, openllmetry, logs=False)
    assert_whole(spans, lambda s: in_attributes(s, "gen_ai.input.messages", "gen_ai.output.messages"))
    assert_shown(tmp_path)


def test_openai_v2_span_only_puts_the_chat_on_span_attributes(tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "span_only")
    spans, _ = run(tmp_path, openai_v2(), logs=False)
    assert_whole(spans, lambda s: in_attributes(s, "gen_ai.input.messages", "gen_ai.output.messages"))
    assert_shown(tmp_path)


# The instrumentations and settings that put the content in Logs API events
# only, and where SpanguardLogRecordProcessor puts it on the span.
def legacy_events(span):
    return [a["log.record.body"] for n in ("gen_ai.user.message", "gen_ai.choice") for a in in_events(span, n)]


def details_event(span):
    return in_events(span, "gen_ai.client.inference.operation.details")


# (instrumentor, environment, where the content is, whether the streamed
# answer's event carries the agent span's context: OpenLLMetry 0.62.4
# emits it when the stream ends, in the context current then, not the LLM
# span's, so it is the agent span's event, as any bridge by span context
# makes it.)
EVENT_CASES = {
    "openai-v2-event-only": (openai_v2, {"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
                                         "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "event_only"},
                             details_event, False),
    "openai-v2-span-and-event": (openai_v2, {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_and_event"},
                                 details_event, False),
    "openllmetry-events": (lambda: openllmetry(use_attributes=False), {}, legacy_events, True),
}
# Run in a child of their own (`run_in_child`).
FRESH = {"openllmetry-events"
}


@pytest.mark.parametrize("case", [c for c in EVENT_CASES if c != "openai-v2-span-and-event"])  # on spans too
def test_content_emitted_as_log_events_is_lost_to_spanguard_without_the_log_processor(tmp_path, monkeypatch, case):
    make, env, _, _ = EVENT_CASES[case]
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    spans, _ = (run_in_child(tmp_path, make, logs=False) if case in FRESH else run(tmp_path, make(), logs=False))
    assert_no_content(spans)


@pytest.mark.parametrize("case", EVENT_CASES)
def test_the_log_processor_puts_event_content_on_its_span_whole(tmp_path, monkeypatch, case):
    make, env, where, on_parent = EVENT_CASES[case]
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    spans, events = run_in_child(tmp_path, make, logs=True) if case in FRESH else run(tmp_path, make(), logs=True)
    assert_whole(spans, where, on_parent)
    assert events.not_attached == 0 and events.attached >= 2
    for span in llm_spans(spans):  # at the record's time, inside the span
        for e in span["events"]:
            assert span["start"] <= e["time"] <= span["end"]
    assert_shown(tmp_path)


def test_event_content_arrives_whole_at_the_receiver_over_otlp_protobuf(tmp_path, monkeypatch, receiver):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "event_only")
    start = len(receiver.spans())
    run(tmp_path, openai_v2(), logs=True, endpoint=receiver.traces_url)
    assert_whole(receiver.spans()[start:], details_event)


def test_openai_v2_capture_content_true_captures_nothing(tmp_path, monkeypatch):
    """`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`, what
    openai-v2's own documentation still gives for its default conventions:
    with opentelemetry-util-genai 1.1b0 (the newest it imports) there is no
    legacy path any more, `true` is not one of the modes, and no content is
    captured anywhere, spans or events (a warning says so on stderr). The
    README names span_only / event_only / span_and_event; this fails the day
    `true` captures something again, to be put back in it."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    spans, events = run(tmp_path, openai_v2(), logs=True)
    assert_no_content(spans)
    assert (events.attached, events.not_attached) == (0, 0)


def test_an_event_of_a_span_spanguard_does_not_have_open_is_counted_not_attached(tmp_path):
    """A record emitted in a span begun before the bridge was added (and of
    one already ended) cannot be put on it: counted, never raised."""
    from opentelemetry._logs import LogRecord
    tracer = spanguard.Tracer(from_env=False, sink_dir=tmp_path / "sink", install_signal_handlers=False)
    provider = TracerProvider()
    early = provider.get_tracer("t").start_span("before the bridge")
    bridge = SpanguardSpanProcessor(tracer)
    provider.add_span_processor(bridge)
    logs = LoggerProvider()
    events = SpanguardLogRecordProcessor(bridge)
    logs.add_log_record_processor(events)
    logger = logs.get_logger("t")
    with trace.use_span(early, end_on_exit=True):
        logger.emit(LogRecord(event_name="gen_ai.user.message", body={"content": "hi"}))
    with provider.get_tracer("t").start_as_current_span("open") as span:
        logger.emit(LogRecord(event_name="gen_ai.user.message", body={"content": "kept"}))
        logger.emit(LogRecord(body="a log line, not an event"))
    with trace.use_span(span):
        logger.emit(LogRecord(event_name="gen_ai.choice", body={"message": {"content": "late"}}))
    provider.shutdown()
    tracer.close()
    assert (events.attached, events.not_attached) == (1, 2)
    got = {s["name"]: s for s in read_sink(tmp_path / "sink")}
    assert [(e["name"], e["attributes"]) for e in got["open"]["events"]] == \
        [("gen_ai.user.message", {"log.record.body": {"content": "kept"}})]


def bridged_logger(tracer):
    """A provider with the span processor over `tracer`, and a logger whose
    LoggerProvider has the log processor given that span processor."""
    provider = TracerProvider()
    bridge = SpanguardSpanProcessor(tracer)
    provider.add_span_processor(bridge)
    logs = LoggerProvider()
    logs.add_log_record_processor(SpanguardLogRecordProcessor(bridge))
    return provider, logs.get_logger("t")


def test_log_events_stay_when_the_sdk_evicts_its_oldest_events_and_the_count_is_the_sdks(tmp_path):
    """A streamed call whose instrumentation adds an event a chunk (OpenLLMetry
    with `use_attributes=False`: `gen_ai.content.completion.chunk`) has the
    SDK evict its oldest past 128, which the bridge mirrors by dropping
    spanguard's oldest at the end: the prompt event emitted before the
    chunks went with them. It stays (added again after the others, at its
    own time); the span ends with the SDK's last 128 events and the log
    events, and counts the 73 the SDK dropped, no more."""
    from opentelemetry._logs import LogRecord
    tracer = spanguard.Tracer(from_env=False, sink_dir=tmp_path / "sink", sink_max_line_bytes=64 << 20,
                              install_signal_handlers=False)
    provider, logger = bridged_logger(tracer)
    with provider.get_tracer("t").start_as_current_span("openai.chat") as span:
        span.add_event("before", {"i": -1})
        logger.emit(LogRecord(event_name="gen_ai.user.message", body={"content": PROMPT}))
        for i in range(200):
            span.add_event("gen_ai.content.completion.chunk", {"i": i})
            if i == 100:
                logger.emit(LogRecord(event_name="gen_ai.choice", body={"message": {"content": ANSWER}}))
    provider.shutdown()
    tracer.close()
    (got,) = read_sink(tmp_path / "sink")
    sdk = [e["attributes"]["i"] for e in got["events"] if "i" in e["attributes"]]
    logged = [e for e in got["events"] if "log.record.body" in e["attributes"]]
    assert sdk == list(range(72, 200))
    logged = {e["name"]: e for e in logged}
    assert sorted(logged) == ["gen_ai.choice", "gen_ai.user.message"]
    assert logged["gen_ai.user.message"]["attributes"]["log.record.body"]["content"] == PROMPT
    assert logged["gen_ai.choice"]["attributes"]["log.record.body"]["message"]["content"] == ANSWER
    assert logged["gen_ai.user.message"]["time"] < logged["gen_ai.choice"]["time"]
    assert got["dropped_events_count"] == 73


KILLED_AGENT = """
import json
import sys

import openai
from opentelemetry.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.trace import TracerProvider

import spanguard
from spanguard.otel import SpanguardLogRecordProcessor, SpanguardSpanProcessor

tracer = spanguard.Tracer(service_name="killed-agent")  # endpoint, spool, flight recorder: from env
provider = TracerProvider()
bridge = SpanguardSpanProcessor(tracer)
provider.add_span_processor(bridge)
logs = LoggerProvider()
logs.add_log_record_processor(SpanguardLogRecordProcessor(bridge))
OpenAIInstrumentor(use_attributes=False).instrument(tracer_provider=provider, logger_provider=logs)
client = openai.OpenAI(base_url=sys.argv[1], api_key="test-key", max_retries=0, timeout=600)
with open(sys.argv[2], encoding="utf-8") as f:
    prompt = f.read()
with provider.get_tracer("chat.agent").start_as_current_span("agent.run"):
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
"""


def test_a_prompt_event_arrives_whole_from_an_agent_killed_mid_call(receiver, tmp_path):
    """OpenLLMetry with `use_attributes=False` emits the prompt event as the
    call starts; the agent is killed (SIGKILL) while the server holds the
    answer: the flight recorder holds the open LLM span with its event, and
    the next start on the spool directory delivers the 60 KB prompt whole."""
    start = len(receiver.spans())
    asked = f"{PROMPT} HOLD"  # the fake server holds a request that says HOLD
    (tmp_path / "prompt.txt").write_text(asked, encoding="utf-8")
    (tmp_path / "agent.py").write_text(KILLED_AGENT)
    spool = tmp_path / "spool"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPANGUARD_", "OTEL_", "TRACELOOP_"))}
    env.update(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.traces_url, SPANGUARD_SPOOL_DIR=str(spool),
               SPANGUARD_FLIGHT_RECORDER="true")
    with FakeOpenAI() as server:
        proc = subprocess.Popen([sys.executable, str(tmp_path / "agent.py"), server.base_url,
                                 str(tmp_path / "prompt.txt")], env=env, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            held = server.held.wait(60)
        finally:
            proc.kill()
            _, err = proc.communicate(timeout=60)
        assert held, err
        assert proc.returncode == -signal.SIGKILL
    after = spanguard.Tracer(from_env=False, endpoint=receiver.traces_url, spool_dir=spool,
                             install_signal_handlers=False)
    assert after.shutdown(30)
    after.close()
    (llm,) = [s for s in receiver.spans()[start:] if s["name"] == "openai.chat"]
    assert llm["attributes"]["spanguard.interrupted"] is True
    assert holds(legacy_events(llm), asked)


# SpanguardSpanExporter under a BatchSpanProcessor (how an exporter is added
# to an existing setup) gets each span once it has ended and left the SDK's
# queue: the log processor given the exporter holds each event record until
# the exporter gets its span.
@pytest.mark.parametrize("case", ["openai-v2-event-only", "openllmetry-events"])
def test_with_the_exporter_event_content_arrives_whole_on_its_span(tmp_path, monkeypatch, case):
    make, env, where, on_parent = EVENT_CASES[case]
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    spans, events = (run_in_child(tmp_path, make, logs=True, exporter=True) if case in FRESH
                     else run(tmp_path, make(), logs=True, exporter=True))
    assert_whole(spans, where, on_parent)
    counts = (events.attached, events.not_attached, events.held)
    assert counts[0] >= 2 and counts[1:] == (0, 0), counts
    for span in llm_spans(spans):  # at the record's time, inside the span
        for e in span["events"]:
            assert span["start"] <= e["time"] <= span["end"]
    assert_shown(tmp_path)


def exporter_setup(tmp_path, **held):
    """A provider whose BatchSpanProcessor over SpanguardSpanExporter
    exports only when flushed, and a logger whose LoggerProvider has the
    log processor given that exporter (`held`: its caps)."""
    tracer = spanguard.Tracer(from_env=False, sink_dir=tmp_path / "sink", sink_max_line_bytes=64 << 20,
                              install_signal_handlers=False)
    provider = TracerProvider()
    exporter = SpanguardSpanExporter(tracer)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=3_600_000))
    logs = LoggerProvider()
    events = SpanguardLogRecordProcessor(exporter, **held)
    logs.add_log_record_processor(events)
    return tracer, provider, logs.get_logger("t"), events


def nobodys_context():
    """A context naming a sampled span nobody has."""
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
    return trace.set_span_in_context(NonRecordingSpan(SpanContext(0x1234, 0x5678, False, TraceFlags(1))))


def test_with_the_exporter_records_of_ended_spans_wait_for_their_export_the_oldest_counted_past_the_cap(tmp_path):
    """Records emitted after their spans ended, before the export, are
    added when the exporter gets the spans; past `max_held` the oldest is
    counted and its span exported without it. Memory stays bounded: so
    does it past `max_held_bytes`."""
    from opentelemetry._logs import LogRecord
    tracer, provider, logger, events = exporter_setup(tmp_path, max_held=2)
    ended = []
    for name in ("first", "second", "third"):
        with provider.get_tracer("t").start_as_current_span(name) as span:
            pass
        ended.append(span)
    for span in ended:
        logger.emit(LogRecord(event_name="gen_ai.user.message", body={"content": f"to {span.name} {PROMPT}"},
                              context=trace.set_span_in_context(span)))
    assert (events.attached, events.not_attached, events.held) == (0, 1, 2)
    provider.shutdown()
    tracer.close()
    assert (events.attached, events.not_attached, events.held) == (2, 1, 0)
    got = {s["name"]: s for s in read_sink(tmp_path / "sink")}
    assert got["first"]["events"] == []
    for name in ("second", "third"):
        (event,) = got[name]["events"]
        assert event["name"] == "gen_ai.user.message"
        assert event["attributes"]["log.record.body"]["content"] == f"to {name} {PROMPT}"

    # PROMPT has emoji: Python holds it in 4 bytes a character, and its UTF-8
    # (some 1.4 bytes a character) once native code has read it. One fits, not two.
    tracer, provider, logger, events = exporter_setup(tmp_path / "bytes", max_held_bytes=7 * len(PROMPT))
    for _ in range(5):
        logger.emit(LogRecord(event_name="gen_ai.user.message", body={"content": PROMPT}, context=nobodys_context()))
    assert (events.not_attached, events.held) == (4, 1)
    provider.shutdown()
    tracer.close()


def test_with_the_exporter_a_record_whose_span_never_comes_is_counted_at_shutdown_or_after_hold_s(tmp_path):
    """A record of a span nobody exports waits until the exporter's
    shutdown (the provider's), then is counted; with `hold_s` it is
    counted once that long has passed (0 here: at the next look). One of
    a span still open waits for it, however long: the long call's prompt
    is not counted early."""
    from opentelemetry._logs import LogRecord
    tracer, provider, logger, events = exporter_setup(tmp_path)
    logger.emit(LogRecord(event_name="gen_ai.user.message", body={"content": "lost"}, context=nobodys_context()))
    provider.force_flush()
    assert (events.attached, events.not_attached, events.held) == (0, 0, 1)
    provider.shutdown()
    assert (events.attached, events.not_attached, events.held) == (0, 1, 0)
    logger.emit(LogRecord(event_name="gen_ai.user.message", body={"content": "late"}, context=nobodys_context()))
    assert (events.not_attached, events.held) == (2, 0)  # no export can come after the shutdown
    tracer.close()

    tracer, provider, logger, events = exporter_setup(tmp_path / "aged", hold_s=0)
    logger.emit(LogRecord(event_name="gen_ai.user.message", body={"content": "lost"}, context=nobodys_context()))
    with provider.get_tracer("t").start_as_current_span("llm.chat"):
        logger.emit(LogRecord(event_name="gen_ai.user.message", body={"content": PROMPT}))
        events.force_flush()  # a look at what is held
        assert (events.attached, events.not_attached, events.held) == (0, 1, 1)
    provider.shutdown()
    tracer.close()
    assert (events.attached, events.not_attached, events.held) == (1, 1, 0)
    (got,) = read_sink(tmp_path / "aged" / "sink")
    assert [e["attributes"]["log.record.body"]["content"] for e in got["events"]] == [PROMPT]


def test_with_the_exporter_a_forked_child_lets_go_of_the_parents_held_records_uncounted(tmp_path):
    """The records held at a fork are the parent's, for spans the parent's
    exporter sends (the SDK's BatchSpanProcessor empties its queue in the
    child): the child lets go of them without counting them (its counts
    are its own; the parent's still attaches them)."""
    from opentelemetry._logs import LogRecord
    tracer, provider, logger, events = exporter_setup(tmp_path, hold_s=0)
    emit_for_nobody(logger, 1)
    with provider.get_tracer("t").start_as_current_span("llm.chat"):
        logger.emit(LogRecord(event_name="gen_ai.user.message", body={"content": "the parent's"}))
        events.force_flush()  # a look: nobody's record is counted, the open span's waits
    assert (events.attached, events.not_attached, events.held) == (0, 1, 1) == log_record_stats(tracer)
    context = multiprocessing.get_context("fork")
    answers = context.Queue()
    # The child's counts start again, as its tracer's figures do (its spans_begun is 0 too).
    child = context.Process(target=lambda: answers.put(
        ((events.attached, events.not_attached, events.held), log_record_stats(tracer), tracer.stats().spans_begun)))
    child.start()
    assert answers.get(timeout=60) == ((0, 0, 0), (0, 0, 0), 0)
    child.join(60)
    provider.shutdown()
    assert (events.attached, events.not_attached, events.held) == (1, 1, 0) == log_record_stats(tracer)
    tracer.close()


# `OTEL_TRACES_EXPORTER=spanguard opentelemetry-instrument python agent.py`:
# the application holds no exporter to give a log processor. It makes one
# call through the openai client, instrumented by whatever is installed
# (openai-v2, OpenInference, OpenLLMetry: their entry points share the name
# `openai`); after the provider's shutdown it prints the counts of the
# SpanguardLogRecordProcessors the global LoggerProvider holds.
ZERO_CODE_EVENT_AGENT = """
import json
import sys

import openai
from opentelemetry import _logs, trace

from spanguard.otel import SpanguardLogRecordProcessor

with open(sys.argv[2], encoding="utf-8") as f:
    asked = f.read()
with trace.get_tracer("zero.code.agent").start_as_current_span("agent.run", kind=trace.SpanKind.SERVER):
    client = openai.OpenAI(base_url=sys.argv[1], api_key="test-key", max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": asked}])
trace.get_tracer_provider().shutdown()  # every span exported: the records held for them settled
processors = [p for p in _logs.get_logger_provider()._multi_log_record_processor._log_record_processors
              if isinstance(p, SpanguardLogRecordProcessor)]
print(json.dumps([(p.attached, p.not_attached, p.held) for p in processors]))
"""


def test_zero_code_event_content_arrives_whole_with_only_environment_variables(tmp_path):
    """openai-v2 with `event_only` under `opentelemetry-instrument`, set up
    by environment variables only (OTEL_LOGS_EXPORTER=none, as the README
    runs it): the 60 KB prompt and its answer, sent as a Logs API event,
    arrive whole on the span in the sink, none counted not attached. The
    wheel's `opentelemetry_pre_instrument` hook gave the configurator's
    exporter its log processor (without it: no processor, no prompt)."""
    from fake_openai import FakeOpenAI

    (tmp_path / "agent.py").write_text(ZERO_CODE_EVENT_AGENT)
    (tmp_path / "prompt.txt").write_text(PROMPT, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANGUARD_"))}
    env.update(OTEL_TRACES_EXPORTER="spanguard", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none",
               OTEL_SERVICE_NAME="zero-code-agent", OTEL_SEMCONV_STABILITY_OPT_IN="gen_ai_latest_experimental",
               OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="event_only",
               SPANGUARD_SINK_DIR=str(tmp_path / "sink"), SPANGUARD_SPOOL_DIR=str(tmp_path / "spool"),
               SPANGUARD_SINK_MAX_LINE_BYTES=str(64 << 20), XDG_STATE_HOME=str(tmp_path / "state"))
    instrument = os.path.join(os.path.dirname(sys.executable), "opentelemetry-instrument")
    with FakeOpenAI() as server:
        proc = subprocess.run([instrument, sys.executable, str(tmp_path / "agent.py"), server.base_url,
                               str(tmp_path / "prompt.txt")], capture_output=True, text=True, timeout=300,
                              cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Failed to auto initialize" not in proc.stderr, proc.stderr
    counts = json.loads(proc.stdout.splitlines()[-1])
    assert len(counts) == 1, (counts, proc.stderr[-3000:])
    ((attached, not_attached, held),) = counts
    assert attached >= 1 and (not_attached, held) == (0, 0), counts
    assert "did not reach their spans" not in proc.stderr, proc.stderr
    spans = read_sink(tmp_path / "sink")
    (v2,) = [s for s in spans if details_event(s)]  # openai-v2's span, the event on it
    values = details_event(v2)
    assert holds(values, PROMPT), [str(v)[:200] for v in values]
    assert holds(values, ANSWER), [str(v)[:200] for v in values]
    for e in v2["events"]:  # at the record's time, inside the span
        assert v2["start"] <= e["time"] <= v2["end"]
    assert all(s["resource"]["service.name"] == "zero-code-agent" for s in spans)


ZERO_CODE_LOST_EVENT_AGENT = """
from opentelemetry import _logs, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

# A record of a sampled span no exporter gets (another process's).
elsewhere = trace.set_span_in_context(NonRecordingSpan(SpanContext(
    0x5b8efff798038103d269b633813fc60c, 0xeee19b7ec3c1b174, is_remote=True, trace_flags=TraceFlags(1))))
_logs.get_logger("zero.code.agent").emit(_logs.LogRecord(event_name="gen_ai.user.message", body="hi",
                                                         context=elsewhere))
"""


def test_zero_code_event_records_whose_span_never_comes_are_named_at_exit(tmp_path):
    """The zero-code user holds no log processor to read `not_attached`
    from: a record whose span never reaches the exporter is named on
    stderr when the exporter shuts down at exit."""
    (tmp_path / "agent.py").write_text(ZERO_CODE_LOST_EVENT_AGENT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANGUARD_"))}
    env.update(OTEL_TRACES_EXPORTER="spanguard", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none",
               OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="*", SPANGUARD_SINK_DIR=str(tmp_path / "sink"),
               SPANGUARD_SPOOL_DIR=str(tmp_path / "spool"), XDG_STATE_HOME=str(tmp_path / "state"))
    instrument = os.path.join(os.path.dirname(sys.executable), "opentelemetry-instrument")
    proc = subprocess.run([instrument, sys.executable, str(tmp_path / "agent.py")], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "spanguard: 1 event record(s) sent through the Logs API" in proc.stderr, proc.stderr


def log_record_stats(tracer) -> tuple:
    stats = tracer.stats()
    return stats.log_records_attached, stats.log_records_not_attached, stats.log_records_held


def test_the_tracers_stats_count_the_log_records_with_its_other_figures(tmp_path, caplog):
    """Where a user reads what became of the spans, `tracer.stats()`, the
    event records are counted too: attached, not attached and held, added
    up over every log record processor given the tracer's bridge (span
    processor or exporter). The
    span processor's shutdown says on stderr what did not reach its span,
    naming the counter."""
    from opentelemetry._logs import LogRecord
    tracer, provider, logger, events = exporter_setup(tmp_path)
    with provider.get_tracer("t").start_as_current_span("llm.chat"):
        logger.emit(LogRecord(event_name="gen_ai.user.message", body={"content": PROMPT}))
    logger.emit(LogRecord(event_name="gen_ai.user.message", body={"content": "lost"}, context=nobodys_context()))
    assert log_record_stats(tracer) == (0, 0, 2) == (events.attached, events.not_attached, events.held)
    provider.force_flush()
    assert log_record_stats(tracer) == (1, 0, 1)
    with caplog.at_level("WARNING", logger="spanguard"):
        provider.shutdown()  # the exporter's: the record nobody's span holds is counted
    assert log_record_stats(tracer) == (1, 1, 0)
    assert [r.getMessage() for r in caplog.records] == [
        "1 event record(s) sent through the Logs API (prompts, with some instrumentations) did not "
        "reach their spans (counted in the tracer's stats().log_records_not_attached)"]
    caplog.clear()

    # The span processor's path, on the same tracer: its counts add up.
    provider, logger = bridged_logger(tracer)
    with provider.get_tracer("t").start_as_current_span("open") as span:
        logger.emit(LogRecord(event_name="gen_ai.user.message", body={"content": "kept"}))
    with trace.use_span(span):
        logger.emit(LogRecord(event_name="gen_ai.choice", body={"message": {"content": "late"}}))
    assert log_record_stats(tracer) == (2, 2, 0)
    with caplog.at_level("WARNING", logger="spanguard"):
        provider.shutdown()
    assert log_record_stats(tracer) == (2, 2, 0)
    assert [r.getMessage().split(" event record(s)")[0] for r in caplog.records] == ["1"]
    tracer.close()


@pytest.mark.parametrize("option, value, error", [
    ("max_held", 0, ValueError), ("max_held", -1, ValueError), ("max_held", 1 << 53, ValueError),
    ("max_held", 2.5, TypeError), ("max_held", float("nan"), TypeError), ("max_held", "4096", TypeError),
    ("max_held", True, TypeError), ("max_held_bytes", 0, ValueError), ("max_held_bytes", 10 ** 40, ValueError),
    ("max_held_bytes", float("inf"), TypeError), ("hold_s", float("nan"), ValueError),
    ("hold_s", float("inf"), ValueError), ("hold_s", -1, ValueError), ("hold_s", "70", TypeError),
])
def test_a_wrong_cap_given_in_code_is_a_clear_error(tmp_path, option, value, error):
    """The caps are whole numbers from 1 to 2**53 - 1 (the same in Node),
    `hold_s` a finite number of seconds: anything else raises, naming the
    option. (NaN was taken: no record was ever let go of past a NaN cap,
    or aged past a NaN hold_s; 0 counted every record at once.)"""
    tracer = spanguard.Tracer(from_env=False, sink_dir=tmp_path / "sink", install_signal_handlers=False)
    exporter = SpanguardSpanExporter(tracer)
    with pytest.raises(error, match=f"spanguard: {option} must"):
        SpanguardLogRecordProcessor(exporter, **{option: value})
    events = SpanguardLogRecordProcessor(exporter, **{option: (1 << 53) - 1 if option != "hold_s" else 0})
    assert events.held == 0
    exporter.shutdown()
    tracer.close()


def test_a_cap_of_any_integer_type_is_taken(tmp_path):
    """An integer that is not an int (numpy's int64, anything with
    __index__) is a whole number: taken, as Python's own indexing takes it."""
    class Count:
        def __index__(self):
            return 3

    tracer, provider, logger, events = exporter_setup(tmp_path, max_held=Count())
    emit_for_nobody(logger, 4)
    assert (events.not_attached, events.held) == (1, 3)
    provider.shutdown()
    tracer.close()


def emit_for_nobody(logger, n: int) -> None:
    from opentelemetry._logs import LogRecord
    for i in range(n):
        logger.emit(LogRecord(event_name="gen_ai.user.message", body={"content": f"{i}"}, context=nobodys_context()))


def test_the_caps_default_to_the_spanguard_log_records_variables(tmp_path, monkeypatch):
    """A processor made without caps (the zero-code one) takes them from
    SPANGUARD_LOG_RECORDS_MAX_HELD and ..._MAX_HELD_BYTES; a cap given in
    code wins."""
    monkeypatch.setenv("SPANGUARD_LOG_RECORDS_MAX_HELD", " 2 ")
    tracer, provider, logger, events = exporter_setup(tmp_path)
    emit_for_nobody(logger, 3)
    assert (events.not_attached, events.held) == (1, 2)
    given = SpanguardLogRecordProcessor(events._exporter, max_held=3)
    logs = LoggerProvider()
    logs.add_log_record_processor(given)
    emit_for_nobody(logs.get_logger("t"), 4)
    assert (given.not_attached, given.held) == (1, 3)
    provider.shutdown()

    monkeypatch.setenv("SPANGUARD_LOG_RECORDS_MAX_HELD_BYTES", "1200")  # one small record (794 B), not two
    tracer2, provider, logger, events = exporter_setup(tmp_path / "bytes")
    emit_for_nobody(logger, 2)
    assert (events.not_attached, events.held) == (1, 1)
    provider.shutdown()
    tracer.close()
    tracer2.close()


@pytest.mark.parametrize("raw", ["0", "-5", "lots", "1e3", "2.5", "9" * 30, "0x10"])
def test_a_wrong_cap_variable_is_ignored_and_named_once_the_default_applies(tmp_path, monkeypatch, caplog, raw):
    """As spanguard treats any wrong variable (and the OpenTelemetry SDKs
    do): ignored, named in a warning once, the default (4096 records)
    applies; never an exception into the configurator."""
    monkeypatch.setenv("SPANGUARD_LOG_RECORDS_MAX_HELD", raw)
    monkeypatch.setattr(otel, "_warned_variables", set())
    with caplog.at_level("WARNING", logger="spanguard"):
        tracer, provider, logger, events = exporter_setup(tmp_path)
        SpanguardLogRecordProcessor(events._exporter)  # a second one: not said again
    emit_for_nobody(logger, 5)
    assert (events.not_attached, events.held) == (0, 5)
    assert [r.getMessage() for r in caplog.records] == [
        f"SPANGUARD_LOG_RECORDS_MAX_HELD={raw!r} ignored: not a whole number from 1 to "
        f"{(1 << 53) - 1}; the default, 4096, applies"]
    provider.shutdown()
    tracer.close()


def test_a_warning_says_spanguard_once_with_basic_config_and_alone(tmp_path):
    """The bridge's own warnings went to the logger "spanguard" with
    "spanguard: " in the message too: with logging.basicConfig() they read
    `WARNING:spanguard:spanguard: ...`. The logger's name says it there;
    with no handler set up (logging's last resort prints the message
    alone) the message says it."""
    script = (
        "import logging, sys\n"
        "if sys.argv[1] == 'basic':\n"
        "    logging.basicConfig()\n"
        "from spanguard import otel\n"
        "otel._cap_from_env('SPANGUARD_LOG_RECORDS_MAX_HELD', 4096)\n")
    env = {**os.environ, "SPANGUARD_LOG_RECORDS_MAX_HELD": "lots"}
    said = {how: subprocess.run([sys.executable, "-c", script, how], capture_output=True, text=True,
                                timeout=60, env=env, cwd=tmp_path).stderr.splitlines()
            for how in ("basic", "alone")}
    words = f"SPANGUARD_LOG_RECORDS_MAX_HELD='lots' ignored: not a whole number from 1 to {(1 << 53) - 1}; " \
        "the default, 4096, applies"
    assert said == {"basic": [f"WARNING:spanguard:{words}"], "alone": [f"spanguard: {words}"]}, said


# `opentelemetry-instrument`, as it runs with a configurator that set no
# LoggerProvider (opentelemetry-sdk's without
# OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED until December 2024,
# another distro's), or
# with one that is not the SDK's (argv[1] "noop"): the global tracer
# provider's BatchSpanProcessor over the exporter it made, then the
# wheel's opentelemetry_pre_instrument entry point, as the command runs it;
# then an event record in a span, and the tracer's counts.
NO_LOGGER_PROVIDER_AGENT = """
import importlib.metadata
import json
import sys

from opentelemetry import _logs, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from spanguard.otel import SpanguardSpanExporter

exporter = SpanguardSpanExporter()
provider = TracerProvider(resource=Resource.create({"service.name": "no-logs-agent"}))
provider.add_span_processor(BatchSpanProcessor(exporter))
trace.set_tracer_provider(provider)
if sys.argv[1] == "noop":
    _logs.set_logger_provider(_logs.NoOpLoggerProvider())
(hook,) = [e for e in importlib.metadata.entry_points(group="opentelemetry_pre_instrument") if e.name == "spanguard"]
hook.load()()
logger = _logs.get_logger("agent")
with trace.get_tracer("agent").start_as_current_span("llm.chat"):
    logger.emit(_logs.LogRecord(event_name="gen_ai.user.message", body={"content": "hi"}))
    logger.emit(_logs.LogRecord(event_name="gen_ai.user.message", body={"content": "again"}))
provider.shutdown()
stats = exporter.tracer.stats()
logs = _logs.get_logger_provider()
print(json.dumps([stats.log_records_attached, stats.log_records_not_attached, stats.log_records_held,
                  type(logs).__name__, getattr(getattr(logs, "resource", None), "attributes", {}).get("service.name")]))
"""


@pytest.mark.parametrize("global_provider", ["none", "noop"])
def test_zero_code_with_no_sdk_logger_provider_the_events_arrive_or_it_is_said(tmp_path, global_provider):
    """No LoggerProvider set when the hook runs: the events went to the
    API's no-op logger, lost and counted nowhere. The hook sets the SDK's
    (with the tracer provider's resource) and its processor: the events
    arrive on their span, counted in the tracer's stats. A global one
    that is not the SDK's takes no processor: said once on stderr, naming
    what to do."""
    (tmp_path / "agent.py").write_text(NO_LOGGER_PROVIDER_AGENT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANGUARD_"))}
    env.update(SPANGUARD_SINK_DIR=str(tmp_path / "sink"), SPANGUARD_SPOOL_DIR=str(tmp_path / "spool"),
               XDG_STATE_HOME=str(tmp_path / "state"))
    proc = subprocess.run([sys.executable, str(tmp_path / "agent.py"), global_provider], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    counts = json.loads(proc.stdout.splitlines()[-1])
    (span,) = read_sink(tmp_path / "sink")
    said = proc.stderr.count("the global OpenTelemetry LoggerProvider is NoOpLoggerProvider, not the SDK's")
    if global_provider == "none":
        assert counts == [2, 0, 0, "LoggerProvider", "no-logs-agent"], proc.stderr
        assert [e["attributes"]["log.record.body"]["content"] for e in span["events"]] == ["hi", "again"]
        assert said == 0, proc.stderr
    else:
        assert counts == [0, 0, 0, "NoOpLoggerProvider", None], proc.stderr
        assert span["events"] == []
        assert said == 1, proc.stderr
        assert "set_logger_provider" in proc.stderr and "span_only" in proc.stderr
