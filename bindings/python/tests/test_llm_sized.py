"""LLM-sized data arrives whole, with the default settings: one span with a
4 MB `input.value` (a RAG context, a base64 image), a 1 MB
`llm.input_messages.0.message.content`, a tool output map holding a
500 KB string and 200 events of 20 KB, recorded through the native API and
through the OpenTelemetry bridge, must arrive byte for byte at the loopback
receiver (decoded by opentelemetry-proto) over OTLP/protobuf with gzip and
over OTLP/JSON, after a spool replay (the backend down, then up) and from
the flight recorder after a SIGKILL. Only what a documented limit cuts is
missing: the events past OpenTelemetry's default event count limit (128,
counted in `dropped_events_count`). In the local sink the span is over
its line limit (`sink_max_line_bytes`, 1 MiB) and is written whole on a
line of its own; only over half the spool's cap are values cut: counted
in `values_truncated` and said on stderr.

The text is random base64 (as an image in a message is): a cut, a moved or
a repeated piece cannot pass for the original, and gzip cannot shrink it
below the sizes the tests rely on."""

import base64
import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading

import pytest
from conftest import read_sink
from opentelemetry.sdk.trace import TracerProvider

import spanguard
from spanguard.otel import SpanguardSpanProcessor

MB = 1_000_000
EVENTS, EVENT_BYTES, COUNT_LIMIT = 200, 20_000, 128


def text(n: int, seed: int) -> str:
    return base64.b64encode(random.Random(seed).randbytes(n * 3 // 4)).decode()[:n]


CONTEXT, MESSAGE, TOOL_OUTPUT = text(4 * MB, 1), text(MB, 2), text(MB // 2, 3)
EVENT_TEXTS = [text(EVENT_BYTES, 100 + i) for i in range(EVENTS)]


def fingerprint(value) -> tuple:
    """A value's length and digest: a failure names the size that arrived
    instead of printing megabytes."""
    if not isinstance(value, str):
        return ("not a string", repr(value)[:200])
    return len(value), hashlib.sha256(value.encode()).hexdigest()[:16]


def record(api: str, tracer: "spanguard.Tracer", keep_open: bool = False):
    """Records the span (`api`: "native" or "bridge") and returns the OTel
    provider (None for native) so the caller can flush or shut it down, and
    the span. With `keep_open` the span is left open (killed mid-call): the
    caller holds it, as a call in progress does (a span let go of open is
    ended when collected, marked unended)."""
    attributes = {"input.value": CONTEXT, "llm.input_messages.0.message.content": MESSAGE,
                  "tool.output": {"role": "tool", "content": TOOL_OUTPUT, "n": 3}}
    if api == "native":
        span, provider = tracer.start_span("llm.chat"), None
    else:
        provider = TracerProvider()
        provider.add_span_processor(SpanguardSpanProcessor(tracer))
        span = provider.get_tracer("openinference").start_span("llm.chat")
    for key, value in attributes.items():
        span.set_attribute(key, value)
    for i, event_text in enumerate(EVENT_TEXTS):
        span.add_event("gen_ai.content.prompt", {"gen_ai.prompt": event_text, "i": i})
    if not keep_open:
        span.end()
    return provider, span


def assert_whole(api: str, got: dict, killed: bool = False):
    attrs = got["attributes"]
    assert fingerprint(attrs["input.value"]) == fingerprint(CONTEXT)
    assert fingerprint(attrs["llm.input_messages.0.message.content"]) == fingerprint(MESSAGE)
    tool = attrs["tool.output"]
    assert isinstance(tool, dict) and (tool["role"], tool["n"]) == ("tool", 3), str(tool)[:200]
    assert fingerprint(tool["content"]) == fingerprint(TOOL_OUTPUT)
    # OpenTelemetry's default event count limit (128) applies: spanguard's
    # own keeps the first ones, the SDK its last ones (a bridged span killed
    # open holds the first ones, passed on while the SDK had room); the
    # rest is counted.
    kept = range(COUNT_LIMIT) if api == "native" or killed else range(EVENTS - COUNT_LIMIT, EVENTS)
    assert [e["attributes"]["i"] for e in got["events"]] == list(kept)
    for e in got["events"]:
        assert e["name"] == "gen_ai.content.prompt"
        assert fingerprint(e["attributes"]["gen_ai.prompt"]) == fingerprint(EVENT_TEXTS[e["attributes"]["i"]])
    # Also a bridged span killed open: the bridge counts what the SDK
    # evicts as it evicts it; and one that ended, once (not again at on_end).
    assert got["dropped_events_count"] == EVENTS - COUNT_LIMIT
    assert got["dropped_attributes_count"] == 0


def new_tracer(tmp_path, **settings):
    return spanguard.Tracer(from_env=False, spool_dir=tmp_path / "spool", schedule_delay_ms=50,
                            install_signal_handlers=False, **settings)


def ours(receiver, start: int) -> dict:
    (got,) = [s for s in receiver.spans()[start:] if s["name"] == "llm.chat"]
    return got


APIS = ["native", "bridge"]

# A request of megabytes (JSON, for the receiver to decode) may take its
# time on a loaded machine: with the default 10 s request timeout the
# exporter gave up on one the receiver then recorded, and the span was
# counted spooled, not exported. These bound a hang, not a speed.
PATIENT = dict(request_timeout_ms=120_000, export_timeout_ms=120_000)


def assert_shown_whole(directory):
    """`spanguard show --full` (the binary make test-python-binding names in
    SPANGUARD_CLI) prints what waits in `directory` with every value whole."""
    cli = os.environ.get("SPANGUARD_CLI")
    if not cli:
        return
    shown = subprocess.run([cli, "show", str(directory), "--color", "never", "--attributes", "--full"],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "llm.chat" in shown.stdout, shown.stdout[:2000]
    for value in (CONTEXT, MESSAGE, TOOL_OUTPUT):
        assert value in shown.stdout, (len(shown.stdout), shown.stdout[:2000])


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("protocol,compression", [("http/protobuf", "gzip"), ("http/json", "none")],
                         ids=["protobuf-gzip", "json"])
def test_an_llm_sized_span_arrives_whole_at_the_receiver(receiver, tmp_path, api, protocol, compression):
    start = len(receiver.spans())
    tracer = new_tracer(tmp_path, endpoint=receiver.traces_url, protocol=protocol, compression=compression,
                        **PATIENT)
    provider, _ = record(api, tracer)
    assert tracer.shutdown(120)
    stats = tracer.stats()
    tracer.close()
    if provider:
        provider.shutdown()
    assert (stats.spans_exported, stats.values_truncated, stats.dropped_export_failed) == (1, 0, 0)
    assert_whole(api, ours(receiver, start))
    request = [r for r in receiver.accepted_records() if any(s["name"] == "llm.chat" for s in r["spans"])][-1]
    assert request["content_encoding"] == (compression if compression != "none" else None)
    # Alone over max_request_bytes (1,000,000), it went whole in a request of its own.
    assert request["decoded_bytes"] > 7 * MB


@pytest.mark.parametrize("api", APIS)
def test_an_llm_sized_span_spooled_while_the_backend_is_down_is_replayed_whole(receiver, tmp_path, api):
    start = len(receiver.spans())
    receiver.set_mode("refuse")
    try:
        # Retries for up to 10 minutes: a flush that cannot wait them out
        # has the request spooled. 30 s of it, not 3: on a loaded machine
        # encoding the span took longer than 3 s, and the flush timed out
        # before the first request.
        tracer = new_tracer(tmp_path, endpoint=receiver.traces_url, compression="gzip", export_timeout_ms=600_000)
        provider, _ = record(api, tracer)
        assert tracer.flush_status(30) == "spooled"
        assert tracer.stats().spooled_spans == 1
        assert_shown_whole(tmp_path / "spool")
    finally:
        receiver.reset_mode()
    # Up again: the tracer's probe, or the next start on the spool
    # directory, replays it.
    assert tracer.shutdown(120)
    replayed = tracer.stats().replayed_spans
    tracer.close()
    if provider:
        provider.shutdown()
    later = new_tracer(tmp_path, endpoint=receiver.traces_url, compression="gzip", **PATIENT)
    assert later.shutdown(120)
    replayed += later.stats().replayed_spans
    later.close()
    assert replayed == 1
    assert_whole(api, ours(receiver, start))


KILLED = textwrap.dedent("""
    import sys
    import time

    sys.path.insert(0, sys.argv[1])
    import spanguard
    from test_llm_sized import record

    tracer = spanguard.Tracer(from_env=False, spool_dir=sys.argv[3], flight_recorder=True,
                              endpoint=sys.argv[4], schedule_delay_ms=600000,
                              install_signal_handlers=False)
    provider, span = record(sys.argv[2], tracer, keep_open=True)
    print("recorded", flush=True)
    time.sleep(600)
""")


@pytest.mark.parametrize("api", APIS)
def test_an_llm_sized_span_open_at_a_sigkill_is_recovered_whole_from_the_flight_recorder(receiver, tmp_path, api):
    start = len(receiver.spans())
    spool = tmp_path / "spool"
    # The receiver's URL: a flight file waits for a sender set up like its
    # own (nothing is sent before the kill: a 10-minute schedule delay).
    proc = subprocess.Popen([sys.executable, "-c", KILLED, os.path.dirname(__file__), api, str(spool),
                             receiver.traces_url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        line = proc.stdout.readline()
        assert line == "recorded\n", proc.stderr.read() if proc.poll() is not None else line
    finally:
        proc.kill()
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert_shown_whole(spool)  # the flight file
    after = new_tracer(tmp_path, endpoint=receiver.traces_url, compression="gzip")
    assert after.shutdown(30)
    recovered = after.stats().recovered_spans
    after.close()
    assert recovered == 1
    got = ours(receiver, start)
    assert got["attributes"].pop("spanguard.interrupted") is True
    assert_whole(api, got, killed=True)


def recorded_and_shut_down(api: str, tracer: "spanguard.Tracer"):
    """Records the span (`record`), shuts the tracer (and the bridge's
    provider) down and returns the tracer's stats as it ended."""
    provider, _ = record(api, tracer)
    assert tracer.shutdown(30)
    stats = tracer.stats()
    tracer.close()
    if provider:
        provider.shutdown()
    return stats


@pytest.mark.parametrize("api", APIS)
def test_the_default_sink_writes_an_llm_sized_span_whole_and_says_it_once(tmp_path, api, capfd):
    """The local sink's lines keep the Collector file receiver's limit (1 MiB,
    `sink_max_line_bytes`) for batches; a span alone over it is written whole
    on a line of its own (it was cut to 1 MiB), said once on stderr with the
    receiver's setting (max_log_size) that reads it. Only a span over half
    the spool's cap (32 MiB by default) is cut: here a 4 MiB cap, counted in
    values_truncated and said with the setting that raises it."""
    whole = new_tracer(tmp_path, sink_dir=tmp_path / "whole")
    stats = recorded_and_shut_down(api, whole)
    assert stats.spans_exported == 1 and stats.values_truncated == 0
    said = capfd.readouterr().err
    assert "max_log_size" in said and "written whole" in said, said
    (span,) = read_sink(tmp_path / "whole")
    assert_whole(api, span)
    assert_shown_whole(tmp_path / "whole")

    cut = new_tracer(tmp_path, sink_dir=tmp_path / "sink", spool_max_mib=4)
    stats = recorded_and_shut_down(api, cut)
    assert stats.spans_exported == 1 and stats.values_truncated > 0
    said = capfd.readouterr().err
    assert "SPANGUARD_SPOOL_MAX_BYTES" in said and "values_truncated" in said, said
    lines = [ln for f in (tmp_path / "sink").glob("*.jsonl") for ln in f.read_bytes().splitlines(keepends=True)]
    assert len(lines) == 1 and len(lines[0]) <= 2 << 20
    (span,) = read_sink(tmp_path / "sink")
    assert span["name"] == "llm.chat" and len(span["events"]) == COUNT_LIMIT
    assert CONTEXT.startswith(span["attributes"]["input.value"])
    assert len(span["attributes"]["input.value"]) < len(CONTEXT)


def test_a_backend_that_refuses_bodies_over_1_mb_gets_the_4_mb_span_cut_counted_and_said(tmp_path, capfd):
    """A backend that answers 413 to a body over 1 MB (before gunzip; no gzip
    here, so the body is the encoded size): the span alone is sent again with
    its largest values cut until it passes, counted in values_truncated and
    said; never retried whole forever, never lost."""
    from receiver_client import OtlpReceiverProcess
    with OtlpReceiverProcess(sys.executable, workdir=tmp_path / "rx", mode="too_large:1000000") as rx:
        tracer = new_tracer(tmp_path, endpoint=rx.traces_url)
        provider, _ = record("native", tracer)
        assert tracer.shutdown(30)
        stats = tracer.stats()
        tracer.close()
        if provider:
            provider.shutdown()
        spans, rejected, accepted = rx.spans(), rx.rejected_records(), rx.accepted_records()
    assert stats.spans_exported == 1 and stats.dropped_export_failed == 0 and stats.values_truncated > 0
    assert rejected and all(r["status"] == 413 for r in rejected) and len(rejected) < 10
    assert all(r["body_bytes"] <= 1_000_000 for r in accepted)
    (got,) = spans
    assert got["name"] == "llm.chat"
    assert CONTEXT.startswith(got["attributes"]["input.value"])
    assert len(got["attributes"]["input.value"]) < len(CONTEXT)
    assert got["attributes"]["tool.output"]["role"] == "tool"
    said = capfd.readouterr().err
    assert "values_truncated" in said and "413" in said, said


def test_four_threads_of_200_kb_spans_with_the_default_pool_all_arrive_whole(receiver, tmp_path):
    """4 threads x 50 spans x 200 KB (40 MB) at once, default settings: the
    payload pool (256 MiB, reserved, used as needed) holds them; every span
    arrives whole, nothing is cut or dropped."""
    start = len(receiver.spans())
    base = text(400_000, 9)

    def prompt(t: int, i: int) -> str:
        return f"{t}-{i}:" + base[(t * 50 + i) * 1000:][:200_000]

    tracer = new_tracer(tmp_path, endpoint=receiver.traces_url, compression="gzip")

    def work(t: int):
        for i in range(50):
            with tracer.start_span(f"llm.call {t}-{i}") as span:
                span.set_attribute("gen_ai.prompt", prompt(t, i))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert tracer.shutdown(60)
    stats = tracer.stats()
    tracer.close()
    assert (stats.spans_exported, stats.values_truncated, stats.dropped_buffer_full) == (200, 0, 0)
    got = {s["name"]: s for s in receiver.spans()[start:] if s["name"].startswith("llm.call ")}
    assert len(got) == 200
    for t in range(4):
        for i in range(50):
            value = got[f"llm.call {t}-{i}"]["attributes"]["gen_ai.prompt"]
            assert fingerprint(value) == fingerprint(prompt(t, i)), (t, i)


# One to four bytes a character, and characters JSON escapes (or, U+2028,
# leaves as they are): chunks of the payload pool end inside characters.
MIXED = "".join(random.Random(5).choices(["a", "é", "日", "😀", "\n", '"', "\\", "\u2028", "\x01"], k=1_500_000))


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_long_text_of_many_byte_characters_arrives_whole_and_the_sink_cuts_it_on_a_character(receiver, tmp_path,
                                                                                             protocol):
    start = len(receiver.spans())
    tracer = new_tracer(tmp_path, endpoint=receiver.traces_url, protocol=protocol, compression="gzip")
    with tracer.start_span("llm.chat") as span:
        span.set_attribute("input.value", MIXED)
        span.add_event("gen_ai.content.prompt", {"gen_ai.prompt": MIXED[:300_000]})
    assert tracer.shutdown(30)
    assert tracer.stats().values_truncated == 0
    tracer.close()
    got = ours(receiver, start)
    assert fingerprint(got["attributes"]["input.value"]) == fingerprint(MIXED)
    assert fingerprint(got["events"][0]["attributes"]["gen_ai.prompt"]) == fingerprint(MIXED[:300_000])

    # A span alone is written whole up to half the spool's cap (sinkwhole57):
    # a 4 MiB cap makes the sink cut this one (over 3.5 MB as JSON).
    sink = new_tracer(tmp_path, sink_dir=tmp_path / "sink", spool_max_mib=4)
    with sink.start_span("llm.chat") as span:
        span.set_attribute("input.value", MIXED)
    assert sink.shutdown(30)
    assert sink.stats().values_truncated == 1
    sink.close()
    (span,) = read_sink(tmp_path / "sink")
    cut = span["attributes"]["input.value"]
    assert 0 < len(cut) < len(MIXED) and MIXED.startswith(cut)
