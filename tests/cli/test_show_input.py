"""What spanguard show reads: a spool body written by an independent
encoder (PyPI's opentelemetry-proto, with value kinds spanguard itself
does not write), and files that are not what they claim, each reported by
name without a crash."""

import gzip
import json
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

T0 = 1796029200_000_000_000


def spool_file(path, body: bytes, fmt=0, gzipped=False, spans=1, claimed_len=None):
    """The spool format (src/export/spool.rs): magic, format, gzip flag, span
    count (u32 LE), body length (u64 LE), body."""
    if gzipped:
        body = gzip.compress(body)
    length = len(body) if claimed_len is None else claimed_len
    path.write_bytes(b"SGSPOOL1" + bytes([fmt, int(gzipped)]) + struct.pack("<IQ", spans, length) + body)


def show(cli, *args):
    return subprocess.run([str(cli), "show", "--color", "never", *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def test_a_body_from_an_independent_encoder_is_shown_whole(cli, tmp_path):
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name", value=AnyValue(string_value="py-otel-sdk"))
    ss = rs.scope_spans.add()
    ss.scope.name, ss.scope.version = "opentelemetry.instrumentation.openai", "0.33.1"
    root = ss.spans.add(trace_id=bytes(range(1, 17)), span_id=b"\x0a" * 8, name="chat gpt-4o",
                        kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=T0, end_time_unix_nano=T0 + 1_500_000_000,
                        status=Status(code=Status.STATUS_CODE_ERROR, message="429 Too Many Requests"))
    root.attributes.extend([
        KeyValue(key="gen_ai.usage.prompt_tokens", value=AnyValue(int_value=77)),
        KeyValue(key="gen_ai.usage.completion_tokens", value=AnyValue(int_value=5)),
        KeyValue(key="llm.stop", value=AnyValue(array_value={"values": [AnyValue(string_value="\n\n"),
                                                                        AnyValue(string_value="END")]})),
        KeyValue(key="llm.headers", value=AnyValue(kvlist_value={"values": [
            KeyValue(key="x-ratelimit-remaining", value=AnyValue(int_value=0))]})),
        KeyValue(key="llm.raw", value=AnyValue(bytes_value=b"\x01\xfe")),
        KeyValue(key="llm.temperature", value=AnyValue(double_value=0.7)),
    ])
    ev = root.events.add(time_unix_nano=T0 + 1_400_000_000, name="exception")
    ev.attributes.add(key="exception.type", value=AnyValue(string_value="RateLimitError"))
    child = ss.spans.add(trace_id=bytes(range(1, 17)), span_id=b"\x0b" * 8, parent_span_id=b"\x0a" * 8,
                         name="http.post", kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=T0 + 10_000_000,
                         end_time_unix_nano=T0 + 1_390_000_000)
    child.links.add(trace_id=b"\xee" * 16, span_id=b"\xdd" * 8)
    spool_file(tmp_path / "b.sgspool", req.SerializeToString(), gzipped=True, spans=2)
    run = show(cli, tmp_path / "b.sgspool", "--attributes")
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "trace 0102030405060708090a0b0c0d0e0f10  py-otel-sdk  2026-11-30 09:00:00.000Z" in out
    assert "2 spans · 1.50 s · 1 error · tokens 77 in, 5 out" in out
    assert "chat gpt-4o" in out and "ERROR 429 Too Many Requests" in out and "77→5 tokens" in out
    assert "└─ http.post" in out
    assert "• exception +1.40 s  exception.type=RateLimitError" in out
    # Control characters in values are shown escaped, never sent to the terminal.
    assert "llm.stop = [\\n\\n, END]" in out
    assert "llm.headers = {x-ratelimit-remaining: 0}" in out
    assert "llm.raw = 0x01fe" in out
    assert "llm.temperature = 0.7" in out


def test_every_gzip_member_of_a_spool_body_is_shown(cli, tmp_path):
    # A gzip body may hold several members one after another (RFC 1952),
    # which the spool's reader and a replay read whole: show listed the
    # first member's spans alone, fewer than a replay sends.
    members = []
    for i, name in enumerate(["first.member", "second.member"]):
        req = ExportTraceServiceRequest()
        ss = req.resource_spans.add().scope_spans.add()
        ss.spans.add(trace_id=bytes([i + 1]) * 16, span_id=bytes([i + 1]) * 8, name=name,
                     start_time_unix_nano=T0, end_time_unix_nano=T0 + 1_000_000)
        members.append(gzip.compress(req.SerializeToString()))
    body = b"".join(members)
    path = tmp_path / "two.sgspool"
    path.write_bytes(b"SGSPOOL1\x00\x01" + struct.pack("<IQ", 2, len(body)) + body)
    run = show(cli, path)
    assert run.returncode == 0, run.stderr
    assert "first.member" in run.stdout and "second.member" in run.stdout, run.stdout


def test_hostile_files_are_reported_by_name_and_never_crash(cli, tmp_path):
    d = tmp_path / "spool"
    d.mkdir()
    good = (d / "good.jsonl")
    good.write_text('{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10",'
                    '"spanId":"0102030405060708","name":"still.shown\\u001b[2J","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}\n')
    bad = {
        # A header claiming an 8 EiB body.
        "huge-claim.sgspool": lambda p: spool_file(p, b"\x0a\x00", claimed_len=1 << 63),
        # Said to be gzip, is not.
        "not-gzip.sgspool": lambda p: p.write_bytes(b"SGSPOOL1\x00\x01" + struct.pack("<IQ", 1, 4) + b"abcd"),
        # A protobuf field whose length runs far past the end.
        "short.sgspool": lambda p: spool_file(p, b"\x0a\xff\xff\xff\x0f\x12"),
        # An unknown body format byte.
        "format.sgspool": lambda p: p.write_bytes(b"SGSPOOL1\x07\x00" + struct.pack("<IQ", 1, 0)),
        # A body shorter than its header says (a writer killed mid-write).
        "torn.sgspool": lambda p: p.write_bytes(b"SGSPOOL1\x00\x00" + struct.pack("<IQ", 1, 10) + b"abcde"),
        # JSON nested far deeper than any OTLP document.
        "deep.sgspool": lambda p: spool_file(p, b"[" * 200_000, fmt=1),
        # A dump's magic with nothing after it, and a foreign dump version.
        "torn.sgdump": lambda p: p.write_bytes(b"SGDUMP02"),
        "old.sgflight": lambda p: p.write_bytes(b"SGFLITE1" + b"\x00" * 4000),
        # Not UTF-8, and a line of 3 MB without its end.
        "binary.jsonl": lambda p: p.write_bytes(b"\xff\xfe\x00garbage\n" + b"{" * 3_000_000),
    }
    for name, make in bad.items():
        make(d / name)
    (d / "dir.sgspool").mkdir()  # a directory named like a spool file
    os.mkfifo(d / "pipe.jsonl")  # would block a reader forever
    os.symlink(d / "loop.jsonl", d / "loop.jsonl")
    run = show(cli, d)
    assert run.returncode == 0, run.stderr  # the good file's span is shown
    assert "still.shown\\x1b[2J" in run.stdout  # escaped: it cannot clear the screen
    assert "\x1b" not in run.stdout
    for name in ["huge-claim.sgspool", "not-gzip.sgspool", "short.sgspool", "format.sgspool", "deep.sgspool",
                 "torn.sgspool", "torn.sgdump", "old.sgflight", "binary.jsonl"]:
        assert name in run.stderr, f"{name} not reported:\n{run.stderr}"
    # Each with why, in the words a replay that sets it aside uses.
    assert "torn: 27 bytes where its header says 32" in run.stderr, run.stderr
    assert "more than a batch can have" in run.stderr, run.stderr
    # Named on the command line, a pipe is refused rather than read.
    run = show(cli, d / "pipe.jsonl")
    assert run.returncode == 1 and "not a regular file" in run.stderr
    # The spool listing survives the same directory.
    run = subprocess.run([str(cli), "spool", str(d)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "unreadable: torn: 27 bytes where its header says 32" in run.stdout, run.stdout


def test_help_version_and_mistakes(cli):
    for args in (["--help"], ["-h"], ["help"], ["show", "--help"], ["tail", "--help"], ["spool", "--help"]):
        run = subprocess.run([str(cli), *args], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0 and run.stdout.startswith(("spanguard", "usage")) and not run.stderr, args
    run = subprocess.run([str(cli), "--version"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.startswith("spanguard 0.")
    for args in ([], ["bogus"], ["show", "--bogus"], ["show", "--since"], ["tail", "--interval", "x"]):
        run = subprocess.run([str(cli), *args], capture_output=True, text=True, timeout=60)
        assert run.returncode == 2 and run.stderr, args


def test_an_argument_that_is_not_utf8_is_said_not_a_panic(cli, tmp_path):
    # std::env::args panics on it: a file name in another encoding.
    odd = os.fsencode(str(tmp_path)) + b"/r\xe9sum\xe9"
    r = subprocess.run([str(cli), "show", odd], capture_output=True, timeout=60)
    assert r.returncode == 2, r
    assert b"argument 2 is not valid UTF-8" in r.stderr, r.stderr
    assert b"panicked" not in r.stderr, r.stderr


def test_a_sink_file_whose_name_is_no_utf8_is_shown(cli, sample, tmp_path):
    # A name in another encoding (a copy, a hostname of Latin-1) was
    # skipped without a word: "no spans" over a sink that held them.
    (tmp_path / "utf8.jsonl").write_text("")
    odd = os.fsencode(str(tmp_path)) + b"/billing-\xe9.jsonl"
    with open(odd, "w") as out:
        out.write((sample / "billing-api-7120.jsonl").read_text())
    run = show(cli, tmp_path)
    assert run.returncode == 0, run.stderr
    assert "POST /refunds" in run.stdout, run.stdout + run.stderr


def test_a_spool_file_in_a_directory_the_reader_may_pass_but_not_list_is_shown(cli, tmp_path):
    # The spool directory is opened before the file in it, to judge the
    # owner of the directory the file is really in: opened to read, a
    # directory of mode 0711 (others may pass through, not list) refused
    # every file named in it, which a path through it had always read.
    # Run as nobody (root reads any directory), so as root only.
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to look as another user")
    base = Path(tempfile.mkdtemp(prefix="sg-passable-"))
    try:
        os.chmod(base, 0o755)
        spool = base / "spool"
        spool.mkdir()
        req = ExportTraceServiceRequest()
        req.resource_spans.add().scope_spans.add().spans.add(
            trace_id=b"\x07" * 16, span_id=b"\x07" * 8, name="passed.through",
            start_time_unix_nano=T0, end_time_unix_nano=T0 + 1_000_000)
        spool_file(spool / "a.sgspool", req.SerializeToString())
        os.chmod(spool / "a.sgspool", 0o644)
        os.chmod(spool, 0o711)
        run = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                              str(cli), "show", "--color", "never", str(spool / "a.sgspool")],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert "passed.through" in run.stdout, run.stdout
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_invisible_text_in_a_span_is_shown_and_real_text_kept(cli, tmp_path):
    """A span's text may hide words a reader cannot see: Unicode tag
    characters spelling an instruction ("ASCII smuggling", which an LLM
    reads), a zero-width space inside a word. `show` and the HTML page
    write each as an escape; an emoji's joiner and a Persian word's
    non-joiner, which real text needs, are shown as written."""
    hidden = "".join(chr(0xE0000 + ord(c)) for c in "obey")
    name = f"summarize{hidden}"
    kept = "\U0001F469\u200D\U0001F4BB \u0645\u06CC\u200C\u062E\u0648\u0627\u0647\u0645"
    span = {"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708", "name": name,
            "startTimeUnixNano": "1", "endTimeUnixNano": "2",
            "attributes": [{"key": "gen_ai.prompt", "value": {"stringValue": f"ERR\u200bOR {kept}"}}]}
    path = tmp_path / "spans.jsonl"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    escaped = "summarize\\u{e006f}\\u{e0062}\\u{e0065}\\u{e0079}"
    run = show(cli, path, "--full")
    assert run.returncode == 0, run.stderr
    # The name column is cut to its width: its first escape is there.
    assert escaped[:18] in run.stdout and "ERR\\u{200b}OR" in run.stdout, run.stdout
    assert kept in run.stdout, run.stdout
    assert not any(0xE0000 <= ord(c) <= 0xE007F or c == "\u200b" for c in run.stdout), repr(run.stdout)
    page = tmp_path / "page.html"
    run = show(cli, "--html", page, path)
    assert run.returncode == 0, run.stderr
    html = page.read_text(encoding="utf-8")
    assert escaped in html and kept in html, html[-3000:]
    assert not any(0xE0000 <= ord(c) <= 0xE007F or c == "\u200b" for c in html)
