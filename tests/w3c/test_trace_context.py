"""W3C Trace Context conformance of spanguard, through a test service on its
C ABI (tracecontext_service.py).

The cases are those of the W3C test harness (github.com/w3c/trace-context,
test/test.py: Level 1 at strict levels 1 and 2, and Level 2's random flag),
written afresh for pytest: the harness sends the service a request with
given headers and asks it to call back; the callback's traceparent and
tracestate headers are what is judged. Strict-level-2 cases are marked and
run at level 2 only, so the suite runs once per level. A last group checks
what a disabled tracer (OTEL_SDK_DISABLED) does: pass the context on
unchanged.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from tracecontext_service import Library, TraceContextService  # noqa: E402

TID = "12345678901234567890123456789012"
PID = "1234567890123456"
VALID = f"00-{TID}-{PID}-01"
TRACEPARENT_RE = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
KEY = r"[0-9a-z][_0-9a-z\-\*\/@]{0,255}"
VALUE = r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
MEMBER_RE = re.compile(f"^({KEY})=({VALUE})$")


# ---- The harness: a callback server and the request that starts a case ----


class Callbacks:
    """Records the headers of each callback the service makes, by path."""

    def __init__(self):
        self.seen: dict[str, list[tuple[str, str]]] = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length") or 0))
                with outer.lock:
                    outer.seen[self.path.lstrip("/")] = list(self.headers.items())
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", "4")
                self.end_headers()
                self.wfile.write(b"null")

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}/{name}"

    def close(self):
        self.http.shutdown()
        self.http.server_close()


class Traceparent:
    def __init__(self, text: str):
        m = TRACEPARENT_RE.match(text)
        assert m, f"not a valid traceparent: {text!r}"
        self.version, self.trace_id, self.parent_id, flags = m.groups()
        self.flags = int(flags, 16)


def parse_tracestate(values: list[str]) -> dict[str, str]:
    """The harness's reading: combined, every member valid, keys unique."""
    members: dict[str, str] = {}
    for value in values:
        for member in re.split(r"[ \t]*,[ \t]*", value.strip(" \t")):
            if not member:
                continue
            m = MEMBER_RE.match(member)
            assert m, f"the service sent an invalid tracestate member {member!r}"
            assert m.group(1) not in members, f"the service sent {m.group(1)!r} twice"
            members[m.group(1)] = m.group(2)
    return members


class Harness:
    def __init__(self, service_url: str, callbacks: Callbacks):
        self.service_url = service_url
        self.callbacks = callbacks

    def request(self, headers: list[tuple[str, str]], count: int = 1) -> list[list[tuple[str, str]]]:
        """Sends the service `headers` (repeats allowed) and asks for `count`
        callbacks; returns each callback's headers."""
        scope = uuid.uuid4().hex
        names = [f"{scope}.{i}" for i in range(count)]
        body = json.dumps([{"url": self.callbacks.url(n), "arguments": []} for n in names]).encode()
        host, port = self.service_url.split("//")[1].split("/")[0].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.putrequest("POST", "/test")
        for name, value in headers:
            conn.putheader(name, value)
        conn.putheader("content-type", "application/json")
        conn.putheader("content-length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        response.read()
        conn.close()
        assert response.status == 200
        missing = [n for n in names if n not in self.callbacks.seen]
        assert not missing, f"the service made no callback for {missing}"
        return [self.callbacks.seen[n] for n in names]

    def context(self, headers: list[tuple[str, str]]) -> tuple[Traceparent, dict[str, str]]:
        got = self.request(headers)[0]
        tps = [v for k, v in got if k.lower() == "traceparent"]
        assert len(tps) == 1, f"expected one traceparent header, got {tps}"
        return Traceparent(tps[0]), parse_tracestate([v for k, v in got if k.lower() == "tracestate"])


@pytest.fixture(scope="module")
def library():
    return Library(os.environ["SPANGUARD_LIB"])


@pytest.fixture(scope="module")
def callbacks():
    c = Callbacks()
    yield c
    c.close()


@pytest.fixture(scope="module")
def harness(library, callbacks, tmp_path_factory):
    sink = tmp_path_factory.mktemp("w3c-sink")
    os.environ["SPANGUARD_SINK_DIR"] = str(sink)
    os.environ["SPANGUARD_SPOOL_DIR"] = str(sink / "spool")
    os.environ["SPANGUARD_SIGNAL_HANDLERS"] = "false"
    try:
        service = TraceContextService(library).start()
    finally:
        for v in ("SPANGUARD_SINK_DIR", "SPANGUARD_SPOOL_DIR", "SPANGUARD_SIGNAL_HANDLERS"):
            del os.environ[v]
    yield Harness(service.url, callbacks)
    service.close()


@pytest.fixture(params=[1, 2], ids=["strict1", "strict2"])
def strict(request):
    return request.param


def strict_only(level):
    if level < 2:
        pytest.skip("strict level 2 only")


# ---- traceparent ----


def test_both_traceparent_and_tracestate_missing(harness, strict):
    harness.context([])


def test_traceparent_included_tracestate_missing(harness, strict):
    tp, _ = harness.context([("traceparent", VALID)])
    assert tp.trace_id == TID and tp.parent_id != PID


def test_traceparent_duplicated(harness, strict):
    tp, _ = harness.context([("traceparent", f"00-{TID[:-1]}1-{PID}-01"), ("traceparent", VALID)])
    assert tp.trace_id not in (f"{TID[:-1]}1", TID)


def test_traceparent_header_name(harness, strict):
    for name in ("trace-parent", "trace.parent"):
        tp, _ = harness.context([(name, VALID)])
        assert tp.trace_id != TID


def test_traceparent_header_name_valid_casing(harness, strict):
    for name in ("TraceParent", "TrAcEpArEnT", "TRACEPARENT"):
        tp, _ = harness.context([(name, VALID)])
        assert tp.trace_id == TID


@pytest.mark.parametrize("value,kept", [
    (f"00-{TID}-{PID}-01.", False),
    (f"00-{TID}-{PID}-01-what-the-future-will-be-like", False),
    (f"cc-{TID}-{PID}-01", True),
    (f"cc-{TID}-{PID}-01-what-the-future-will-be-like", True),
    (f"cc-{TID}-{PID}-01.what-the-future-will-be-like", False),
    (f"ff-{TID}-{PID}-01", False),
    (f".0-{TID}-{PID}-01", False),
    (f"0.-{TID}-{PID}-01", False),
    (f"000-{TID}-{PID}-01", False),
    (f"0000-{TID}-{PID}-01", False),
    (f"0-{TID}-{PID}-01", False),
], ids=["00_trailing_dot", "00_extra_fields", "cc", "cc_extra_fields", "cc_trailing_dot", "ff",
        "version_dot_first", "version_dot_second", "version_3_chars", "version_4_chars", "version_1_char"])
def test_traceparent_version(harness, strict, value, kept):
    tp, _ = harness.context([("traceparent", value)])
    assert (tp.trace_id == TID) == kept
    assert tp.version == "00", "a higher version is sent downgraded"


@pytest.mark.parametrize("value", [
    f"00-{'0' * 32}-{PID}-01",
    f"00-.{TID[1:]}-{PID}-01",
    f"00-{TID[:-1]}.-{PID}-01",
    f"00-{TID}3-{PID}-01",
    f"00-{TID[:-1]}-{PID}-01",
    f"00-{TID}-{'0' * 16}-01",
    f"00-{TID}-.{PID[1:]}-01",
    f"00-{TID}-{PID[:-1]}.-01",
    f"00-{TID}-{PID}7-01",
    f"00-{TID}-{PID[:-1]}-01",
    f"00-{TID}-{PID}-.0",
    f"00-{TID}-{PID}-0.",
    f"00-{TID}-{PID}-001",
    f"00-{TID}-{PID}-1",
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
    f"00-{TID}-{PID}-0A",
], ids=["trace_id_all_zero", "trace_id_dot_first", "trace_id_dot_last", "trace_id_too_long",
        "trace_id_too_short", "parent_id_all_zero", "parent_id_dot_first", "parent_id_dot_last",
        "parent_id_too_long", "parent_id_too_short", "flags_dot_first", "flags_dot_last",
        "flags_too_long", "flags_too_short", "uppercase_trace_id", "uppercase_flags"])
def test_traceparent_invalid_restarts_the_trace(harness, strict, value):
    tp, _ = harness.context([("traceparent", value)])
    assert tp.trace_id not in (TID, "0" * 32, TID + "3", "4bf92f3577b34da6a3ce929d0e0e4736")


@pytest.mark.parametrize("value", [
    f" {VALID}", f"\t{VALID}", f"{VALID} ", f"{VALID}\t", f"\t {VALID} \t",
])
def test_traceparent_ows_handling(harness, strict, value):
    tp, _ = harness.context([("traceparent", value)])
    assert tp.trace_id == TID


def test_reserved_flags_are_cleared(harness, strict):
    tp, _ = harness.context([("traceparent", f"00-{TID}-{PID}-ff")])
    assert tp.trace_id == TID and tp.flags == 0x03
    tp, _ = harness.context([("traceparent", f"cc-{TID}-{PID}-fe")])
    assert tp.trace_id == TID and tp.flags & ~0x03 == 0 and not tp.flags & 0x01


# ---- tracestate ----

UNSAMPLED = f"00-{TID}-{PID}-00"


def test_tracestate_included_traceparent_missing(harness, strict):
    _, ts1 = harness.context([("tracestate", "foo=1")])
    _, ts2 = harness.context([("tracestate", "foo=1,bar=2")])
    assert len(ts1) == len(ts2)


def test_tracestate_included_traceparent_included(harness, strict):
    tp, ts = harness.context([("traceparent", UNSAMPLED), ("tracestate", "foo=1,bar=2")])
    assert tp.trace_id == TID and ts == {"foo": "1", "bar": "2"}
    assert tp.flags & 0x01 == 0, "the parent's decision is kept"


def test_tracestate_header_name(harness, strict):
    for name in ("trace-state", "trace.state"):
        _, ts = harness.context([("traceparent", UNSAMPLED), (name, "foo=1")])
        assert "foo" not in ts


def test_tracestate_header_name_valid_casing(harness, strict):
    for name in ("TraceState", "TrAcEsTaTe", "TRACESTATE"):
        _, ts = harness.context([("traceparent", UNSAMPLED), (name, "foo=1")])
        assert ts.get("foo") == "1"


def test_tracestate_empty_header(harness, strict):
    tp, ts = harness.context([("traceparent", UNSAMPLED), ("tracestate", "")])
    assert tp.trace_id == TID and ts == {}
    for headers in ([("tracestate", "foo=1"), ("tracestate", "")], [("tracestate", ""), ("tracestate", "foo=1")]):
        tp, ts = harness.context([("traceparent", UNSAMPLED), *headers])
        assert tp.trace_id == TID and ts.get("foo") == "1"


def test_tracestate_multiple_headers_different_keys(harness, strict):
    got = harness.request([("traceparent", UNSAMPLED), ("tracestate", "foo=1,bar=2"),
                           ("tracestate", "rojo=1,congo=2"), ("tracestate", "baz=3")])[0]
    text = ",".join(v for k, v in got if k.lower() == "tracestate")
    order = [text.index(m) for m in ("foo=1", "bar=2", "rojo=1", "congo=2", "baz=3")]
    assert order == sorted(order)


def test_tracestate_duplicated_keys(harness, strict):
    strict_only(strict)
    for headers, allowed in (
        ([("tracestate", "foo=1,foo=1")], {"1"}),
        ([("tracestate", "foo=1,foo=2")], {"1", "2"}),
        ([("tracestate", "foo=1"), ("tracestate", "foo=1")], {"1"}),
        ([("tracestate", "foo=1"), ("tracestate", "foo=2")], {"1", "2"}),
    ):
        tp, ts = harness.context([("traceparent", UNSAMPLED), *headers])
        assert tp.trace_id == TID and ts.get("foo") in allowed


def test_tracestate_all_allowed_characters(harness, strict):
    key = "".join(map(chr, range(0x61, 0x7B))) + "0123456789_-*/"
    value = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in ",=")
    for k in (key, key + "@a-z0-9_-*/"):
        _, ts = harness.context([("traceparent", UNSAMPLED), ("tracestate", f"{k}={value}")])
        assert ts.get(k) == value


@pytest.mark.parametrize("value", [
    "foo=1 \t , \t bar=2, \t baz=3", "foo=1\t \t,\t \tbar=2,\t \tbaz=3",
])
def test_tracestate_ows_between_members(harness, strict, value):
    _, ts = harness.context([("traceparent", UNSAMPLED), ("tracestate", value)])
    assert ts == {"foo": "1", "bar": "2", "baz": "3"}


@pytest.mark.parametrize("value", [" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t"])
def test_tracestate_ows_around(harness, strict, value):
    tp, ts = harness.context([("traceparent", UNSAMPLED), ("tracestate", value)])
    assert tp.trace_id == TID and ts == {"foo": "1"}


@pytest.mark.parametrize("value", ["foo =1", "FOO=1", "foo.bar=1", "@foo=1,bar=2", "foo=bar=baz", "foo=,bar=3"])
def test_tracestate_invalid_is_discarded(harness, strict, value):
    strict_only(strict)
    _, ts = harness.context([("traceparent", UNSAMPLED), ("tracestate", value)])
    assert ts == {}


def test_tracestate_key_vendor_format(harness, strict):
    strict_only(strict)
    for key in ("foo@", "foo@@bar", "foo@bar@baz"):
        _, ts = harness.context([("traceparent", UNSAMPLED), ("tracestate", f"{key}=1,bar=2")])
        assert ts == {key: "1", "bar": "2"}


def test_tracestate_member_count_limit(harness, strict):
    strict_only(strict)
    members = [f"bar{i:02}={i:02}" for i in range(1, 34)]
    headers = [("tracestate", ",".join(members[i:i + 10])) for i in range(0, 30, 10)]
    _, ts = harness.context([("traceparent", UNSAMPLED), *headers, ("tracestate", ",".join(members[30:32]))])
    assert len(ts) == 32 and ts["bar01"] == "01"
    _, ts = harness.context([("traceparent", UNSAMPLED), *headers, ("tracestate", ",".join(members[30:33]))])
    assert ts == {}


def test_tracestate_key_length_limit(harness, strict):
    strict_only(strict)
    for key in ("z" * 256, "t" * 241 + "@" + "v" * 14, "t" * 242 + "@v", "t@" + "v" * 15):
        _, ts = harness.context([("traceparent", UNSAMPLED), ("tracestate", "foo=1"), ("tracestate", f"{key}=1")])
        assert ts == {"foo": "1", key: "1"}
    _, ts = harness.context([("traceparent", UNSAMPLED), ("tracestate", "foo=1"), ("tracestate", "z" * 257 + "=1")])
    assert ts == {}


def test_tracestate_is_cut_by_whole_members_beyond_512(harness, strict):
    members = [f"k{i:02}={'v' * 60}" for i in range(20)]
    _, ts = harness.context([("traceparent", UNSAMPLED), ("tracestate", ",".join(members))])
    text = ",".join(f"{k}={v}" for k, v in ts.items())
    assert 450 < len(text) <= 512
    assert text == ",".join(members[:len(ts)]), "whole members, from the end"


# ---- several callbacks ----


def test_multiple_requests_with_valid_traceparent(harness, strict):
    tps = [Traceparent(v) for got in harness.request([("traceparent", VALID)], 3)
           for k, v in got if k.lower() == "traceparent"]
    assert {t.trace_id for t in tps} == {TID}
    assert len({t.parent_id for t in tps}) == 3


def test_multiple_requests_without_traceparent(harness, strict):
    tps = [Traceparent(v) for got in harness.request([], 3) for k, v in got if k.lower() == "traceparent"]
    assert len({t.parent_id for t in tps}) == 3 and len({t.trace_id for t in tps}) == 1


def test_multiple_requests_with_illegal_traceparent(harness, strict):
    tps = [Traceparent(v) for got in harness.request([("traceparent", f"00-{'0' * 32}-{PID}-01")], 3)
           for k, v in got if k.lower() == "traceparent"]
    assert "0" * 32 not in {t.trace_id for t in tps}
    assert len({t.parent_id for t in tps}) == 3


# ---- Level 2 ----


def test_propagates_random_flag(harness, strict):
    tp, _ = harness.context([("traceparent", f"00-{TID}-{PID}-02")])
    assert tp.trace_id == TID and tp.parent_id != PID and tp.flags & 0x02


def test_new_traces_set_the_random_flag(harness, strict):
    tp, _ = harness.context([])
    assert tp.flags == 0x03
    tp, _ = harness.context([("traceparent", f"00-{TID}-{PID}-01")])
    assert not tp.flags & 0x02, "continuing a trace: the flag as received"


# ---- A disabled tracer passes the context on unchanged ----


@pytest.fixture(scope="module")
def disabled(library, callbacks):
    os.environ["OTEL_SDK_DISABLED"] = "true"
    try:
        service = TraceContextService(library).start()
    finally:
        del os.environ["OTEL_SDK_DISABLED"]
    yield Harness(service.url, callbacks)
    service.close()


def test_disabled_tracer_passes_the_incoming_context_on(disabled):
    tp, ts = disabled.context([("traceparent", VALID), ("tracestate", "foo=1,bar=2")])
    assert (tp.trace_id, tp.parent_id, tp.flags) == (TID, PID, 0x01)
    assert ts == {"foo": "1", "bar": "2"}


def test_disabled_tracer_sends_nothing_it_did_not_get(disabled):
    got = disabled.request([])[0]
    assert not [k for k, _ in got if k.lower() in ("traceparent", "tracestate")]
