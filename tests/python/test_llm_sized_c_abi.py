"""LLM-sized values through the C ABI (emit_spans), with the default
settings: a 4 MB prompt and a 1 MB completion on one span arrive whole at
the loopback receiver (decoded by opentelemetry-proto) over OTLP/protobuf
with gzip and over OTLP/JSON, and the exporter does not hold many copies of
them (peak resident memory). The Python binding's tests
(bindings/python/tests/test_llm_sized.py) take the same sizes through the
native API and the OpenTelemetry bridge to the spool, the flight recorder
and the local sink."""

import json
import subprocess

import pytest
from receiver_client import OtlpReceiverProcess

PROMPT, COMPLETION = 4_000_000, 1_000_000


def emit(emitter, tmp_path, endpoint: str, prompt: int, completion: int, *extra: str) -> tuple[dict, dict]:
    manifest, stats = tmp_path / "manifest.json", tmp_path / "stats.json"
    args = [str(emitter), "--endpoint", endpoint, "--run-id", "llm", "--manifest", str(manifest), "--count", "1",
            "--spool-dir", str(tmp_path / "spool"), "--stats-json", str(stats),
            "--prompt-bytes", str(prompt), "--completion-bytes", str(completion), *extra]
    run = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(manifest.read_text()), json.loads(stats.read_text())


@pytest.mark.parametrize("protocol,compression", [("http/protobuf", "gzip"), ("http/json", "none")],
                         ids=["protobuf-gzip", "json"])
def test_a_4_mb_prompt_through_the_c_abi_arrives_whole(emitter, tmp_path, protocol, compression):
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx:
        manifest, stats = emit(emitter, tmp_path, rx.endpoint, PROMPT, COMPLETION,
                               "--protocol", protocol, "--compression", compression)
        (got,) = rx.spans()
        (request,) = rx.accepted_records()
    (sent,) = manifest["spans"]
    for key, size in (("gen_ai.prompt", PROMPT), ("gen_ai.completion", COMPLETION)):
        value = got["attributes"][key]
        assert len(value) == size and value == sent["attributes"][key]["value"], (key, len(value))
    assert stats["values_truncated"] == 0 and stats["spans_exported"] == 1
    assert request["content_encoding"] == (None if compression == "none" else compression)
    assert request["decoded_bytes"] > PROMPT + COMPLETION


def test_the_exporter_holds_a_4_mb_span_in_few_copies(emitter, tmp_path):
    """Peak resident memory of the emitter with the 5 MB of text, less its
    peak without: the program's own copy (5 MB), the span's in the pool, the
    encoded request and its gzip stay well under 10 copies of the text (a
    bound, not a timing: pages are counted, not clocks)."""
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx:
        _, small = emit(emitter, tmp_path, rx.endpoint, 0, 0, "--compression", "gzip")
        _, large = emit(emitter, tmp_path, rx.endpoint, PROMPT, COMPLETION, "--compression", "gzip")
    grown_kib = large["peak_rss_kib"] - small["peak_rss_kib"]
    text_kib = (PROMPT + COMPLETION) // 1024
    print(f"peak RSS {small['peak_rss_kib']} KiB without the text, {large['peak_rss_kib']} KiB with it: "
          f"{grown_kib / text_kib:.1f} copies of its {text_kib} KiB")
    assert grown_kib < 6 * text_kib, (small["peak_rss_kib"], large["peak_rss_kib"])
