"""What spanguard says on stderr (OTEL_LOG_LEVEL): one warning naming the
reason for a streak of failures, not one per batch; the switch back
("delivering again"); losses the rate limit held back, and where unsent
spans wait, at the stop; nothing at all with `none`; where the local sink
writes at `info`. Lines start with `spanguard: ` and the level."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from receiver_client import OtlpReceiverProcess

REPO = Path(__file__).resolve().parents[2]


def emit(emitter, endpoint, tmp_path, env, count=60, extra=()):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANGUARD_"))}
    manifest, stats = tmp_path / "m.json", tmp_path / "s.json"
    out = subprocess.run([str(emitter), *extra, "--endpoint", endpoint, "--manifest", str(manifest),
                          "--count", str(count), "--spool-dir", str(tmp_path / "spool"),
                          "--stats-json", str(stats), "--from-env", "--allow-loss", "--batch", "7",
                          "--export-timeout-ms", "1000", "--shutdown-timeout-ms", "3000"],
                         capture_output=True, text=True, timeout=120, env={**clean, **env})
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("spanguard:")]
    return lines, json.loads(stats.read_text())


def leading_number(line):
    """The count a line starts with, after `spanguard: LEVEL: `."""
    return int(re.match(r"spanguard: \w+: (\d+) ", line).group(1))


def test_an_unreachable_backend_is_told_once_with_its_reason(emitter, tmp_path):
    with OtlpReceiverProcess(workdir=tmp_path, mode="refuse") as rx:
        lines, stats = emit(emitter, rx.endpoint, tmp_path, {})
    assert stats["spooled_batches"] > 3, "several batches failed"
    reasons = [line for line in lines if "connection refused" in line]
    assert len(reasons) == 1, lines
    assert reasons[0].startswith("spanguard: warn: export to http://127.0.0.1:")
    assert any("spool" in line for line in lines if line.startswith("spanguard: warn:"))
    assert len(lines) <= 3, lines


def test_every_refused_span_is_told_kept_not_only_the_first_batch(emitter, tmp_path):
    # A backend that refuses every request (401: no API key) for a run
    # shorter than the rate limit's minute: stderr said "7 spans lost" for
    # 40 lost, the rest held back and never told. Now none is lost: each
    # is kept for a sender with its key set, and said so.
    with OtlpReceiverProcess(workdir=tmp_path, mode="status:401") as rx:
        lines, stats = emit(emitter, rx.endpoint, tmp_path, {}, count=40)
    assert stats["dropped_export_failed"] == 0 and stats["spooled_spans"] == 40, stats
    told = [leading_number(line) for line in lines if re.search(r" spans? refused and kept", line)]
    assert len(told) == 2 and sum(told) == 40, lines


def test_a_refusal_of_the_sender_is_said_once_with_its_hint_and_how_to_send(emitter, tmp_path):
    # A URL where nothing takes traces answers 404 to every batch: stderr
    # said the one cause three times, each with its fix hint ("export to
    # ... failed: HTTP 404", "13 spans lost: HTTP 404", "1 more spans
    # lost; the last: HTTP 404" at the stop). Once with the hint, the
    # count and how to send them once the URL is fixed, then counts alone.
    with OtlpReceiverProcess(workdir=tmp_path, mode="status:404") as rx:
        lines, stats = emit(emitter, rx.endpoint, tmp_path, {}, count=40)
    assert stats["dropped_export_failed"] == 0 and stats["spooled_spans"] == 40, stats
    assert sum("HTTP 404" in line for line in lines) == 2, lines
    assert sum("nothing takes traces at this URL" in line for line in lines) == 1, lines
    assert "for a corrected setting" in lines[0] and "spanguard replay --endpoint URL" in lines[0], lines
    # Where they are kept and why, once: the reason carried "; kept for a
    # sender set up otherwise" too, said again inside the same line.
    assert lines[0].count("kept") == 1 and "set up otherwise" not in lines[0], lines
    # What to fix, once: the reason's hint names the endpoint variables;
    # the line went on "fix the key or the URL (OTEL_EXPORTER_OTLP_HEADERS,
    # OTEL_EXPORTER_OTLP_ENDPOINT)", the key to a 404.
    assert lines[0].count("OTEL_EXPORTER_OTLP_ENDPOINT") == 1 and "HEADERS" not in lines[0], lines
    assert any(line.endswith(" more spans refused and kept for a corrected setting: HTTP 404 (as said above)")
               for line in lines), lines
    assert sum(leading_number(line) for line in lines if "HTTP 404" in line) == 40, lines


def test_stopping_says_where_the_unsent_spans_wait(emitter, tmp_path):
    with OtlpReceiverProcess(workdir=tmp_path, mode="refuse") as rx:
        lines, stats = emit(emitter, rx.endpoint, tmp_path, {}, count=10)
    assert stats["spooled_spans"] == 10 and stats["replayed_spans"] == 0
    spool = tmp_path / "spool"
    # The replay command names the endpoint: `spanguard replay DIR` alone,
    # in a shell without the program's endpoint variable, exits 2.
    # Only a process set up as this one sends them (`SpoolDir::takes`):
    # "the next process that uses it" promised it of any.
    assert lines[-1] == (f"spanguard: warn: stopping with spans waiting in the spool ({spool}): a process "
                         f"set up as this one (the same endpoint, headers and TLS files) sends them at its "
                         f"next run, or `spanguard replay --endpoint {rx.endpoint}/v1/traces {spool}` does"), lines


def test_a_refused_run_says_its_own_spans_apart_from_another_senders_at_the_stop(emitter, tmp_path):
    # A Python user's walk: a 404 run (the base URL without its path) left
    # its refused batch in the spool; the next run, with the URL fixed
    # but no API key, is refused too (401). Its stop said "stopping with
    # spans waiting in the spool: a process set up as this one sends them
    # at its next run", true of the 404 run's batch (this sender takes
    # it) but read as said of its own spans, which the line above had
    # just said such a process never sends.
    spool = tmp_path / "spool"
    with OtlpReceiverProcess(workdir=tmp_path, mode="status:404") as rx:
        emit(emitter, rx.endpoint, tmp_path, {}, count=10)
    with OtlpReceiverProcess(workdir=tmp_path, mode="status:401") as rx:
        lines, stats = emit(emitter, rx.endpoint, tmp_path, {}, count=10)
    assert stats["spooled_spans"] == 10 and stats["dropped_export_failed"] == 0, (stats, lines)
    assert any("a process set up as this one never sends them" in line for line in lines[:-1]), lines
    assert lines[-1] == (f"spanguard: warn: stopping with spans waiting in the spool ({spool}): the 10 spans "
                         f"refused to this process wait for a corrected setting (a process set up as this one "
                         f"never sends them, as said above); the others, not refused to it, a process set up "
                         f"as this one (the same endpoint, headers and TLS files) sends at its next run, or "
                         f"`spanguard replay --endpoint {rx.endpoint}/v1/traces {spool}` does"), lines


def test_a_spool_that_cannot_be_written_is_named(emitter, tmp_path):
    # The backend is away and the spool directory cannot be made (here a
    # file is where its parent should be; in the field a read-only or full
    # disk): the loss said "the spool could not take it: Not a directory"
    # without saying which directory, or what sets it.
    (tmp_path / "a-file").write_text("")
    spool = tmp_path / "a-file" / "spool"
    with OtlpReceiverProcess(workdir=tmp_path, mode="refuse") as rx:
        lines, stats = emit(emitter, rx.endpoint, tmp_path, {"SPANGUARD_SPOOL_DIR": str(spool)}, count=10)
    assert stats["dropped_export_failed"] == 10
    told = [line for line in lines if re.search(r" spans? lost", line)]
    assert told and f"the spool ({spool}) could not take it: Not a directory" in told[0], lines
    assert "SPANGUARD_SPOOL_DIR" in told[0], lines


def test_a_spool_that_took_nothing_is_not_said_to_hold_spans(emitter, tmp_path):
    # The backend is away before the exporter's first look at the spool,
    # and the spool cannot be written: every span was said lost, then the
    # stop said "stopping with spans waiting in the spool (...): the next
    # process that uses it sends them", sending the user to look for spans
    # that are nowhere. Whether the backend is known down before that first
    # look is a race (here about half the runs; a queue of 2 makes the
    # exporter busy at once), so the run is repeated.
    (tmp_path / "a-file").write_text("")
    spool = tmp_path / "a-file" / "spool"
    with OtlpReceiverProcess(workdir=tmp_path, mode="refuse") as rx:
        for _ in range(30):
            lines, stats = emit(emitter, rx.endpoint, tmp_path,
                                {"SPANGUARD_SPOOL_DIR": str(spool), "OTEL_BSP_MAX_QUEUE_SIZE": "2"}, count=10)
            assert stats["dropped_export_failed"] == 10, (stats, lines)
            assert not any("waiting in the spool" in line for line in lines), lines


def test_the_way_back_is_told_too(emitter, tmp_path):
    with OtlpReceiverProcess(workdir=tmp_path, mode="status:503", count=1) as rx:
        lines, stats = emit(emitter, rx.endpoint, tmp_path, {}, count=5)
    assert stats["retries"] == 1
    assert [line.split(":")[1].strip() for line in lines] == ["warn", "warn"], lines
    assert "HTTP 503" in lines[0] and "delivering again" in lines[1]


def test_level_none_says_nothing(emitter, tmp_path):
    with OtlpReceiverProcess(workdir=tmp_path, mode="status:400") as rx:
        lines, stats = emit(emitter, rx.endpoint, tmp_path, {"OTEL_LOG_LEVEL": "none"})
    assert stats["dropped_export_failed"] > 0
    assert lines == []


def test_info_says_where_the_local_sink_writes(emitter, tmp_path):
    sink = tmp_path / "sink"
    lines, stats = emit(emitter, "sink", tmp_path, {"OTEL_LOG_LEVEL": "info"}, count=3,
                        extra=["--sink-dir", str(sink)])
    (path,) = sink.glob("*.jsonl")
    assert any(line.startswith("spanguard: info:") and str(path) in line for line in lines), lines


def test_an_ignored_endpoint_says_where_the_spans_go_instead(tmp_path):
    # OTEL_EXPORTER_OTLP_ENDPOINT=localhost:4318 (no scheme) is ignored; the
    # spans went to the local sink with that said only at info: at the
    # default level they seemed to vanish.
    demo = os.environ.get("SPANGUARD_DEMO", str(REPO / "build" / "examples" / "agent_demo"))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANGUARD_"))}
    sink = tmp_path / "sink"
    out = subprocess.run([demo], capture_output=True, text=True, timeout=60,
                         env={**clean, "OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318",
                              "SPANGUARD_SINK_DIR": str(sink), "SPANGUARD_SPOOL_DIR": str(tmp_path / "spool")})
    assert out.returncode == 0, out.stderr
    (path,) = sink.glob("*.jsonl")
    lines = [line for line in out.stderr.splitlines() if line.startswith("spanguard:")]
    assert lines == [
        "spanguard: warn: OTEL_EXPORTER_OTLP_ENDPOINT=localhost:4318: not a URL starting with http:// or "
        "https://, without spaces or control characters; ignored",
        f"spanguard: warn: no usable endpoint: writing spans to {path} instead",
    ], lines


def test_what_the_local_sink_could_not_take_is_said_to_wait_for_replay(emitter, tmp_path):
    # The sink's directory cannot be made (a file is in the way): spans go
    # to the spool, which a process writing to the local sink never reads
    # back, not even once the sink takes spans again; stderr said "until
    # the backend answers", and nothing at the stop.
    blocker = tmp_path / "in-the-way"
    blocker.write_text("")
    lines, stats = emit(emitter, "sink", tmp_path, {}, count=20, extra=["--sink-dir", str(blocker / "sink")])
    assert stats["spooled_spans"] == 20, (stats, lines)
    spool = tmp_path / "spool"
    assert sum(f"`spanguard replay --endpoint URL {spool}` sends them to the OTLP/HTTP endpoint at URL" in line for line in lines) == 2, lines
    assert not any("until the backend answers" in line for line in lines), lines
    assert lines[-1].startswith(f"spanguard: warn: stopping with spans the local sink could not take in the "
                                f"spool ({spool})"), lines


def test_a_full_disk_under_the_local_sink_is_said_full_and_the_demo_says_what_it_dropped(tmp_path):
    # The sample agent writing to the local sink, its sink and its spool on
    # a full disk (a small tmpfs filled, in a mount namespace of its own:
    # root only). stderr said "the backend is down; next try in N ms" of
    # a local file, and the demo "shutdown ok" beside the spans it dropped.
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("mounting a small tmpfs takes root and unshare(1)")
    demo = os.environ.get("SPANGUARD_DEMO", str(REPO / "build" / "examples" / "agent_demo"))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANGUARD_"))}
    disk = tmp_path / "disk"
    disk.mkdir()
    fill = f"mount -t tmpfs -o size=64k,mode=0700 tmpfs {disk} && (cat /dev/zero > {disk}/filler 2>/dev/null; exec \"$0\")"
    out = subprocess.run(["unshare", "-m", "sh", "-c", fill, demo], capture_output=True, text=True, timeout=60,
                         env={**clean, "SPANGUARD_SINK_DIR": str(disk / "sink"),
                              "SPANGUARD_SPOOL_DIR": str(disk / "spool")})
    said = out.stdout.strip().splitlines()[-1]
    begun = int(re.search(r"spans begun (\d+)", said).group(1))
    assert said.startswith(f"demo-agent: shutdown ok, {begun} spans dropped; spans begun {begun}, exported 0, "
                           f"to the spool 0, dropped {begun}, "), (said, out.stderr)
    lines = [line for line in out.stderr.splitlines() if line.startswith("spanguard:")]
    assert not [line for line in lines if "backend" in line], lines
    assert [line for line in lines
            if f"the disk is full where the local sink writes: writing {disk}/sink/demo-agent-" in line], lines


def test_a_used_up_payload_pool_is_told_once(emitter, tmp_path):
    # 20 spans with a 300 KB prompt, 7 to a batch, against a 1 MiB pool,
    # under the full policy `drop` (under `wait` a value waits for the
    # chunks the exporter gives back, and none is cut: the test below):
    # prompts are cut, and a person is told why and what to raise, once.
    with OtlpReceiverProcess(workdir=tmp_path) as rx:
        lines, stats = emit(emitter, rx.endpoint, tmp_path,
                            {"SPANGUARD_PAYLOAD_POOL_MIB": "1", "SPANGUARD_FULL_POLICY": "drop"}, count=20,
                            extra=["--prompt-bytes", "300000"])
    assert stats["values_truncated"] > 0
    told = [line for line in lines if "payload pool (1 MiB) was used up" in line]
    assert len(told) == 1, lines
    assert told[0].startswith("spanguard: warn:") and "SPANGUARD_PAYLOAD_POOL_MIB" in told[0]


def test_a_burst_beyond_the_payload_pool_waits_and_arrives_whole(emitter, tmp_path):
    # The same burst under the default full policy (`wait`): a prompt that
    # finds the pool used up waits for the chunks of spans already ended,
    # which the exporter gives back; every prompt arrives whole. Nothing
    # is said to be cut; the waits are said (each stalled the caller), with
    # what to raise, as the stats count them. A full wait of 30 s, not the
    # default 200 ms: the test is about chunks coming back, and on a loaded
    # machine (CI's two lanes) an exporter may be off its core for longer.
    with OtlpReceiverProcess(workdir=tmp_path) as rx:
        lines, stats = emit(emitter, rx.endpoint, tmp_path,
                            {"SPANGUARD_PAYLOAD_POOL_MIB": "1", "SPANGUARD_FULL_WAIT_MS": "30000"}, count=20,
                            extra=["--prompt-bytes", "300000"])
    assert stats["values_truncated"] == 0, lines
    assert stats["payload_waits"] > 0 and stats["payload_waits_cut"] == 0, stats
    told = [line for line in lines if "payload pool" in line]
    assert told and all(line.startswith("spanguard: warn: values waited for the payload pool (1 MiB)")
                        and "SPANGUARD_PAYLOAD_POOL_MIB" in line for line in told), lines


def test_values_cut_to_fit_a_sink_line_are_told_once(emitter, tmp_path):
    # 20 spans with a 300 KB prompt into the local sink with lines of at
    # most 64 KiB: each prompt is cut to fit its line, and a person is told
    # so, once, with what to raise (a newcomer's OpenInference spans, whose
    # prompt and completion appear twice, were cut with nothing said), and
    # the number held back since at the stop.
    sink = tmp_path / "sink"
    # A span alone goes whole on a line of its own up to half the spool's
    # cap: with a 128 KiB cap, no more than a 64 KiB line, so 300 KB
    # prompts are cut to the line limit.
    lines, stats = emit(emitter, "sink", tmp_path,
                        {"SPANGUARD_SINK_MAX_LINE_BYTES": "65536", "SPANGUARD_SPOOL_MAX_BYTES": "131072"}, count=20,
                        extra=["--sink-dir", str(sink), "--prompt-bytes", "300000"])
    assert stats["values_truncated"] >= 20
    told = [line for line in lines
            if re.search(r"long values? (was|were) cut to fit (its span|their spans) into one line", line)]
    assert len(told) == 2 and sum(leading_number(line) for line in told) == stats["values_truncated"], lines
    assert told[0].startswith("spanguard: warn:") and "SPANGUARD_SINK_MAX_LINE_BYTES" in told[0], told


def test_values_cut_to_fit_a_request_are_told(emitter, tmp_path):
    # A span alone goes whole up to half the spool's cap: with a 128 KiB
    # cap, no more than the 64 KiB of a request, so 300 KB prompts are cut.
    with OtlpReceiverProcess(workdir=tmp_path) as rx:
        lines, stats = emit(emitter, rx.endpoint, tmp_path,
                            {"SPANGUARD_MAX_REQUEST_BYTES": "65536", "SPANGUARD_SPOOL_MAX_BYTES": "131072"},
                            count=5, extra=["--prompt-bytes", "300000"])
    assert stats["values_truncated"] >= 5
    cut = r"long values? (was|were) cut to fit (its span|their spans) into a request of one span \(65536 bytes"
    told = [line for line in lines if re.search(cut, line)]
    assert 1 <= len(told) <= 2 and "SPANGUARD_MAX_REQUEST_BYTES" in told[0], lines
    assert sum(leading_number(line) for line in told) == stats["values_truncated"], lines


def test_a_resource_over_the_request_size_is_sent_cut_and_told_once(emitter, tmp_path):
    # 100 resource attributes of 1 KiB (an environment variable holds at
    # most 128 KiB) under a 64 KiB request limit: every span was lost, with
    # "the resource" as the reason. They arrive, under the service.name and
    # the attributes that fit, the rest counted in the request's
    # Resource.dropped_attributes_count (read here by the official
    # protobuf, from protobuf and from JSON) and in attributes_dropped, and
    # a person is told once what raises the limit.
    resource = ",".join(f"big.{i}={'v' * 1024}" for i in range(100))
    for protocol in ("http/protobuf", "http/json"):
        with OtlpReceiverProcess(workdir=tmp_path / protocol.replace("/", "-")) as rx:
            env = {"SPANGUARD_MAX_REQUEST_BYTES": "65536", "OTEL_RESOURCE_ATTRIBUTES": resource,
                   "OTEL_EXPORTER_OTLP_PROTOCOL": protocol}
            lines, stats = emit(emitter, rx.endpoint, tmp_path, env, count=20)
            spans = rx.wait_for_spans(20)
        assert stats["spans_exported"] == 20 and stats["dropped_export_failed"] == 0, (protocol, stats)
        dropped = {s["resource_dropped_attributes_count"] for s in spans}
        assert len(dropped) == 1 and dropped.pop() > 0, protocol
        s = spans[0]
        assert s["resource"]["service.name"] == "spanguard-emitter", protocol  # given in code
        assert s["resource"]["big.0"] == "v" * 1024, "kept in order, first ones first"
        assert sum(k.startswith("big.") for k in s["resource"]) + s["resource_dropped_attributes_count"] == 100
        assert stats["attributes_dropped"] == s["resource_dropped_attributes_count"], (protocol, stats)
        told = [line for line in lines if "took over half of one request" in line]
        assert len(told) == 1 and "SPANGUARD_MAX_REQUEST_BYTES" in told[0], lines
