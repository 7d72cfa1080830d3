"""`spanguard replay` by hand: every file kind the exporter recovers (spool
files, crash dumps, flight files of dead processes) goes through the
library's own delivery path; only http:// and https:// endpoints; a file is
deleted only after a real answer from a server; the OTEL_* variables are the
defaults; the exit status says whether everything was delivered; no
credential is printed."""

import json
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from receiver_client import OtlpReceiverProcess
from said_warnings import spans_said_warned

REPO = Path(__file__).resolve().parents[2]
CLI = Path(os.environ.get("SPANGUARD_CLI", REPO / "target" / "release" / "spanguard"))
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANGUARD_"))}


def replay(*args, env=None):
    return subprocess.run([str(CLI), "replay", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env={**CLEAN_ENV, **(env or {})})


def spool_while_down(emitter, tmp_path, count=20):
    """A spool directory holding the spans of a run whose backend was down."""
    spool = tmp_path / "spool"
    with OtlpReceiverProcess(workdir=tmp_path / "down", mode="refuse") as rx:
        manifest = tmp_path / "down.json"
        out = subprocess.run([str(emitter), "--endpoint", rx.endpoint, "--manifest", str(manifest),
                              "--count", str(count), "--spool-dir", str(spool), "--allow-loss",
                              "--export-timeout-ms", "300", "--shutdown-timeout-ms", "3000"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    files = sorted(spool.glob("*.sgspool"))
    assert files
    return spool, files, {(s["trace_id"], s["span_id"]) for s in json.loads(manifest.read_text())["spans"]}


def arrived(rx):
    assert rx.duplicate_spans() == {}
    return {(s["trace_id"], s["span_id"]) for s in rx.spans()}


def test_help_prints_usage_and_succeeds():
    out = replay("--help")
    assert out.returncode == 0 and out.stdout.startswith("usage: spanguard replay")


@pytest.mark.parametrize("endpoint", ["file:///etc/passwd", "htp://127.0.0.1:9/v1/traces", "127.0.0.1:4318"])
def test_only_http_endpoints_are_used_and_a_typo_deletes_nothing(emitter, tmp_path, endpoint):
    spool, files, _ = spool_while_down(emitter, tmp_path)
    out = replay(spool, "--endpoint", endpoint)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "http:// or https://" in out.stderr
    assert sorted(spool.glob("*.sgspool")) == files


def kept_bytes(spool):
    """What the spool's files hold, whatever their names: a file a replay
    could not send is set back behind the others (renamed, unchanged)."""
    return sorted(f.read_bytes() for f in spool.glob("*.sgspool"))


def test_no_answer_from_a_server_keeps_every_file_and_fails(emitter, tmp_path):
    spool, files, keys = spool_while_down(emitter, tmp_path)
    before = kept_bytes(spool)
    with OtlpReceiverProcess(workdir=tmp_path / "rx", mode="refuse") as rx:
        out = replay(spool, "--endpoint", rx.endpoint, env={"OTEL_BSP_EXPORT_TIMEOUT": "300"})
    assert out.returncode == 1, out.stdout + out.stderr
    assert kept_bytes(spool) == before
    # Every span waiting is counted kept, not only the first request's.
    assert f"; {len(keys)} spans kept;" in out.stdout and f"; {len(files)} files left" in out.stdout, out.stdout
    # One file tried, then the probe, which failed too: the pass stopped there.
    assert "; 1 probe sent (0 taken, 1 failed);" in out.stdout, out.stdout
    # A host that does not resolve (no DNS answer is an answer from a server).
    out = replay(spool, "--endpoint", "http://no-such-host.invalid:4318", env={"OTEL_BSP_EXPORT_TIMEOUT": "300"})
    assert out.returncode == 1
    assert kept_bytes(spool) == before


def test_the_otel_variables_are_the_defaults(emitter, tmp_path):
    spool, _, keys = spool_while_down(emitter, tmp_path)
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx:
        out = replay(env={"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint, "SPANGUARD_SPOOL_DIR": str(spool),
                          "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=s3cret"})
        assert out.returncode == 0, out.stdout + out.stderr
        rx.wait_for_spans(len(keys))
        assert arrived(rx) == keys
        assert all(r["headers"]["x-api-key"] == "s3cret" for r in rx.accepted_records())
    assert not list(spool.glob("*.sgspool"))
    assert f"({len(keys)} spans)" in out.stdout


def test_a_refused_file_is_counted_and_the_exit_status_says_so(emitter, tmp_path):
    spool, files, keys = spool_while_down(emitter, tmp_path)
    # 3: a file and both its halves, or its spans are delivered split.
    with OtlpReceiverProcess(workdir=tmp_path / "rx", mode="status:400", count=3) as rx:
        out = replay(spool, "--endpoint", f"http://user:pa55word@127.0.0.1:{rx.port}")
        got = arrived(rx)
    # 4: spans lost for good, which no run brings back (1 is "run it
    # again", 3 "fix a setting").
    assert out.returncode == 4, out.stdout + out.stderr
    refused = len(keys) - len(got)
    # "1 span refused" when the split leaves one span alone (as emit_spans
    # happened to batch): the singular, not a failure.
    assert refused > 0 and f"{refused} span{'s' if refused != 1 else ''} refused" in out.stdout
    assert "pa55word" not in out.stdout + out.stderr and "user:***@127.0.0.1" in out.stdout
    assert not list(spool.glob("*.sgspool")), "a file the server refused for good is done with"


def test_the_summary_counts_the_probes(emitter, tmp_path):
    """A backend busy (503) for the first file alone: the pass sends an
    empty request (a probe, no spans) to learn whether it is up, and the
    summary said nothing of it: a request the backend saw that no figure
    counted. It says the probes sent, taken and failed."""
    spool, files, keys = spool_while_down(emitter, tmp_path)
    assert len(files) > 1
    with OtlpReceiverProcess(workdir=tmp_path / "rx", mode="status:503", count=1) as rx:
        # 1 ms of retry budget: the file gets one attempt, then the probe.
        out = replay(spool, "--endpoint", rx.endpoint, env={"OTEL_BSP_EXPORT_TIMEOUT": "1"})
        got = arrived(rx)
    assert "; 1 probe sent (1 taken, 0 failed);" in out.stdout, out.stdout
    # The file that failed is set back, behind the others, for the next pass.
    assert "; 1 file left" in out.stdout and out.returncode == 1, out.stdout + out.stderr
    with OtlpReceiverProcess(workdir=tmp_path / "rx2") as rx:
        out = replay(spool, "--endpoint", rx.endpoint)
        assert out.returncode == 0, out.stdout + out.stderr
        rx.wait_for_spans(len(keys) - len(got))
        assert got | arrived(rx) == keys
    assert "; 0 probes sent; 0 files left" in out.stdout, out.stdout


class ProbesTakenSpansHung:
    """A backend (or a gateway before it) that answers an empty request
    200 and never answers a request of spans: it reads the body and holds
    the connection until the client gives up."""

    def __init__(self):
        import http.server

        outer = self
        self.stop = threading.Event()
        self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.requests.append(len(body))
                if body in (b"", b"{}"):
                    self.send_response(200)
                    self.send_header("Content-Type", "application/x-protobuf")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                outer.stop.wait(30)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def test_a_backend_that_takes_probes_and_hangs_on_spans_is_said_so(emitter, tmp_path):
    """The exporter's "backend takes probes but hangs on spans" state, seen
    by hand: the replay's file got no answer, the probe after it was taken,
    and the summary said "1 probe sent (1 taken, 0 failed)" beside the
    files kept, read as a backend down and back. It says what happened and
    where to look."""
    spool, files, keys = spool_while_down(emitter, tmp_path)
    backend = ProbesTakenSpansHung()
    try:
        out = replay(spool, "--endpoint", backend.endpoint,
                     env={"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "500", "OTEL_BSP_EXPORT_TIMEOUT": "1"})
    finally:
        backend.close()
    assert out.returncode == 1, out.stdout + out.stderr
    probes = re.search(r"; (\d+) probes? sent \((\d+) taken, 0 failed\);", out.stdout)
    assert probes and probes.group(1) == probes.group(2) != "0", out.stdout
    assert "0 spans refused" in out.stdout and f"{len(keys)} spans kept" in out.stdout, out.stdout
    hung = sum(1 for n in backend.requests if n > 2)
    assert hung > 0
    said = (f"spanguard replay: {hung} request{'s' if hung > 1 else ''} of spans got no answer in 500 ms (the request "
            f"timeout), and an empty request after that was answered: {backend.endpoint} answers, and hangs on "
            "requests of spans.")
    assert said in out.stderr, out.stderr
    assert "SPANGUARD_MAX_REQUEST_BYTES" in out.stderr
    # A backend that answers no request at all is not said to take probes.
    with OtlpReceiverProcess(workdir=tmp_path / "rx", mode="refuse") as rx:
        out = replay(spool, "--endpoint", rx.endpoint, env={"OTEL_BSP_EXPORT_TIMEOUT": "300"})
    assert "hangs on requests of spans" not in out.stderr, out.stderr


def test_a_file_behind_a_retry_after_is_judged_by_a_probe_in_the_same_run(emitter, tmp_path):
    """A backend answering the first file 503 with Retry-After: 1, then
    200. No probe goes before the time it asked; the exporter probes at
    its next replay, and that probe's word counts the file set back (a
    gateway that always answers the file so splits it at the fifth).
    spanguard replay has no next replay: each run sent the file again,
    set it back uncounted and stopped, "0 probes sent", so such a file
    was never split. It now waits out the server's wait and probes: the
    file is counted set back (its name says so) and the others go."""
    spool, files, keys = spool_while_down(emitter, tmp_path)
    assert len(files) > 1
    with OtlpReceiverProcess(workdir=tmp_path / "rx", mode="status:503", count=1, retry_after="1") as rx:
        # 1 ms of retry budget: the file gets one attempt, no retry waits.
        out = replay(spool, "--endpoint", rx.endpoint, env={"OTEL_BSP_EXPORT_TIMEOUT": "1"})
        got = arrived(rx)
    assert "; 1 probe sent (1 taken, 0 failed);" in out.stdout, out.stdout + out.stderr
    left = list(spool.glob("*.sgspool"))
    assert len(left) == 1 and "-setback1" in left[0].name, left
    assert "; 1 file left" in out.stdout and out.returncode == 1, out.stdout + out.stderr
    assert got and len(got) < len(keys)


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_server_refusing_the_sender_keeps_every_file(emitter, tmp_path, status):
    # A replay without its --headers (401/403), or to a base URL whose
    # path is missing (404): the server refused who sent the spans or
    # where, not the spans. Every file was deleted as refused for good:
    # a forgotten flag lost the whole spool.
    spool, files, keys = spool_while_down(emitter, tmp_path)
    with OtlpReceiverProcess(workdir=tmp_path / "rx", mode=f"status:{status}") as rx:
        out = replay(spool, "--endpoint", rx.endpoint)
        assert arrived(rx) == set()
    assert sorted(spool.glob("*.sgspool")) == files, "every file is still there"
    said_refused(out, status, len(keys), spool)
    # With the sender set up right, they go.
    with OtlpReceiverProcess(workdir=tmp_path / "rx2") as rx:
        out = replay(spool, "--endpoint", rx.endpoint)
        assert out.returncode == 0, out.stdout + out.stderr
        rx.wait_for_spans(len(keys))
        assert arrived(rx) == keys
    assert not list(spool.glob("*.sgspool"))


def said_refused(out, status, spans, spool):
    """A replay refused for the sender or the URL says so: it said "export
    to URL failed: HTTP 401", read as a failure to try again, beside a
    summary of "0 spans refused; 20 spans kept", and exited 1 as for a
    backend down (a script that replays until it succeeds ran for ever
    with a key missing). Now: the spans refused and kept, in the
    exporter's words, with the server's, where they wait and what sends
    them; the summary says they were refused; exit status 3."""
    assert out.returncode == 3, out.stdout + out.stderr
    # The pass stops at the first file refused so: its spans were refused,
    # the others not sent.
    summary = re.search(rf"; 0 spans refused; {spans} spans kept \((\d+) refused to this sender or URL\);",
                        out.stdout)
    assert summary, out.stdout
    refused = int(summary.group(1))
    assert 0 < refused <= spans, out.stdout
    said = [line for line in out.stderr.splitlines() if f"HTTP {status}" in line]
    assert len(said) == 1, out.stderr
    hint = "OTEL_EXPORTER_OTLP_HEADERS" if status in (401, 403) else "/v1/traces"
    assert said[0].startswith(f"spanguard replay: {refused} span{'s' if refused > 1 else ''} refused and kept in "
                              f"the spool ({spool}) for a corrected setting: HTTP {status}"), said[0]
    assert hint in said[0], said[0]
    unsent = spans - refused
    if unsent:
        assert f"; {unsent} other span{'s wait' if unsent > 1 else ' waits'} there not sent, as the server would " \
               "refuse them alike;" in said[0], said[0]
    assert said[0].endswith(f"; once it is fixed, `spanguard replay --endpoint URL {spool} --headers KEY=VALUE` "
                            "sends them"), said[0]


class PermanentRedirect:
    """A server that answers every request 308 to another URL: a moved
    backend, refused for where the spans went."""

    def __init__(self):
        import http.server

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(308)
                self.send_header("Location", "http://127.0.0.1:9/elsewhere/v1/traces")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_permanent_redirect_is_said_refused_as_the_others(emitter, tmp_path):
    spool, files, keys = spool_while_down(emitter, tmp_path)
    server = PermanentRedirect()
    try:
        out = replay(spool, "--endpoint", server.endpoint)
    finally:
        server.close()
    assert sorted(spool.glob("*.sgspool")) == files, "every file is still there"
    said_refused(out, 308, len(keys), spool)


def kill_child_leftovers(tmp_path, endpoint, how, flight):
    """Runs the kill test's child against `endpoint` and kills it: returns
    the spool it left and the numbers of the spans it reported ended."""
    spool = tmp_path / "spool"
    child = subprocess.Popen([str(REPO / "build" / "tests" / "kill_child"), endpoint, str(spool), "2",
                              str(flight), "none", "0", "replay-cli", "300"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    reported = bytearray()

    def read_reports():
        while chunk := child.stdout.read1(4096):
            reported.extend(chunk)

    reader = threading.Thread(target=read_reports)
    reader.start()
    deadline = time.monotonic() + 30
    while len(reported) < 400 and time.monotonic() < deadline:
        time.sleep(0.05)
    child.send_signal(how)
    child.wait(timeout=60)
    reader.join(timeout=60)
    usable = len(reported) - len(reported) % 4
    numbers = {n & ~(1 << 30) for (n,) in struct.iter_unpack("=i", bytes(reported[:usable]))}
    assert numbers
    return spool, numbers


@pytest.mark.parametrize("how,flight,leftover", [(signal.SIGTERM, 0, "*.sgdump"),
                                                 (signal.SIGKILL, 1, "*.sgflight")])
def test_crash_dumps_and_flight_files_are_replayed_too(tmp_path, how, flight, leftover):
    with OtlpReceiverProcess(workdir=tmp_path / "rx", mode="refuse") as rx:
        spool, numbers = kill_child_leftovers(tmp_path, rx.traces_url, how, flight)
        assert list(spool.glob(leftover)), "the child left no file of that kind"
        rx.set_mode("ok")
        out = replay(spool, "--endpoint", rx.endpoint)
        assert out.returncode == 0, out.stdout + out.stderr
        got = {s["attributes"]["n"] for s in rx.raw_spans() if s["name"] == "work" and "n" in s["attributes"]}
    assert numbers <= got, f"{len(numbers - got)} reported spans did not arrive"
    left = [p.name for p in spool.iterdir() if p.suffix in (".sgspool", ".sgdump", ".sgflight")]
    assert left == []


LIB = Path(os.environ.get("SPANGUARD_LIB", REPO / "build" / "lib" / "libspanguard.so"))

# Ends one span with a prompt of PROMPT bytes through the C ABI (the tracer
# from the environment, its flight recorder on), then dies by SIGKILL before
# the exporter wakes: the span is left in the flight file.
KILLED_WITH_A_BIG_SPAN = r"""
import ctypes, os, signal, sys
lib = ctypes.CDLL(sys.argv[1])
vp, u64 = ctypes.c_void_p, ctypes.c_uint64
lib.spanguard_tracer_new_from_env.argtypes = [vp, ctypes.POINTER(vp)]
lib.spanguard_span_begin.argtypes = [vp, ctypes.c_char_p, ctypes.c_size_t, u64, ctypes.c_uint32, ctypes.POINTER(u64)]
lib.spanguard_span_set_string.argtypes = [u64, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
lib.spanguard_span_end.argtypes = [u64]
t, s = vp(), u64()
assert lib.spanguard_tracer_new_from_env(None, ctypes.byref(t)) == 0
assert lib.spanguard_span_begin(t, b"llm.chat", 8, 0, 0, ctypes.byref(s)) == 0
prompt = b"p" * int(sys.argv[2])
assert lib.spanguard_span_set_string(s, b"gen_ai.prompt", 13, prompt, len(prompt)) == 0
assert lib.spanguard_span_end(s) == 0
os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_with_a_big_span(tmp_path, prompt_bytes):
    """The spool directory a process with max_request_bytes raised to 100 MB
    left when it was killed with a span of a `prompt_bytes` prompt in its
    flight file."""
    spool = tmp_path / "spool"
    child_env = {**CLEAN_ENV, "SPANGUARD_SPOOL_DIR": str(spool), "SPANGUARD_FLIGHT_RECORDER": "true",
                 "SPANGUARD_MAX_REQUEST_BYTES": "100000000", "OTEL_BSP_SCHEDULE_DELAY": "60000",
                 "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9/v1/traces"}
    child = subprocess.run([sys.executable, "-c", KILLED_WITH_A_BIG_SPAN, str(LIB), str(prompt_bytes)],
                           env=child_env, capture_output=True, text=True, timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert list(spool.glob("*.sgflight")), "no flight file left"
    return spool


def test_replay_says_a_backend_warning_once_and_loses_nothing(emitter, tmp_path):
    """`spanguard replay` to a backend that answers every request 200 with
    a partial success rejecting no span but carrying a message: every span
    arrives, none is said lost, and the server's message is said once on
    stderr, the rest of the spans summed under it. It was dropped unsaid."""
    spool, _, keys = spool_while_down(emitter, tmp_path)
    with OtlpReceiverProcess(workdir=tmp_path / "rx", mode="partial:0") as rx:
        out = replay(spool, "--endpoint", rx.endpoint, env={"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "5"})
        rx.wait_for_spans(len(keys))
        assert arrived(rx) == keys
    assert out.returncode == 0, out.stdout + out.stderr
    message = "test receiver mode partial:0: the last 0 spans were rejected"
    assert spans_said_warned(out.stderr.splitlines(), message) == len(keys), out.stderr
    assert "lost" not in out.stderr, out.stderr


def test_replay_says_how_many_values_it_cut_to_fit(tmp_path):
    """A process dies with a span of a 3 MB prompt in its flight file;
    `spanguard replay` sends it whole, alone, to a receiver that answers 413
    over 1,000,000 bytes, and cuts the prompt to fit. It said nothing of it."""
    spool = killed_with_a_big_span(tmp_path, 3_000_000)
    with OtlpReceiverProcess(workdir=tmp_path / "rx", mode="too_large:1000000") as rx:
        out = replay(spool, "--endpoint", rx.endpoint)
        spans = rx.spans()
    assert out.returncode == 0, out.stdout + out.stderr
    assert "; 1 value cut;" in out.stdout, out.stdout
    assert "spanguard replay: 1 value cut to fit" in out.stderr, out.stderr
    assert len(spans) == 1 and spans[0]["name"] == "llm.chat"
    assert 0 < len(spans[0]["attributes"]["gen_ai.prompt"]) < 1_000_000


def test_replay_sends_a_span_alone_over_the_request_limit_whole(tmp_path):
    """The same span, to a receiver that takes it: `spanguard replay`'s
    default 1,000,000-byte limit bounds requests of several spans; the 3 MB
    prompt, alone in its request, arrives whole (it was cut to 1 MB)."""
    spool = killed_with_a_big_span(tmp_path, 3_000_000)
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx:
        out = replay(spool, "--endpoint", rx.endpoint)
        spans = rx.spans()
    assert out.returncode == 0, out.stdout + out.stderr
    assert "; 0 values cut;" in out.stdout and "values cut to fit" not in out.stderr, out.stdout + out.stderr
    assert len(spans) == 1 and spans[0]["attributes"]["gen_ai.prompt"] == "p" * 3_000_000
