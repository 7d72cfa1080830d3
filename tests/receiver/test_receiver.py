"""Tests of the test receiver itself, driven with http.client as the exporter stand-in.

Requests are built with the upstream opentelemetry-proto classes (or written out as
OTLP/JSON by hand), so the receiver is checked against the spec, not against us.
"""

from __future__ import annotations

import email.utils
import errno
import gzip
import http.client
import json
import socket
import sys
import threading
import time

import pytest
from google.protobuf import empty_pb2, unknown_fields
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1 import trace_pb2

from receiver_client import OtlpReceiverProcess, ReceiverError

PROTOBUF = "application/x-protobuf"
TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
PARENT_ID = bytes.fromhex("eee19b7ec3c1b174")


@pytest.fixture
def rx(tmp_path):
    with OtlpReceiverProcess(sys.executable, workdir=tmp_path) as receiver:
        yield receiver


def span_id(i: int) -> bytes:
    return (0x1000 + i).to_bytes(8, "big")


def make_request(n: int = 1, first: int = 0, big_attr: int = 0) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "svc"
    ss = rs.scope_spans.add()
    ss.scope.name, ss.scope.version = "spanguard", "0.1.0"
    for i in range(first, first + n):
        sp = ss.spans.add()
        sp.trace_id, sp.span_id, sp.parent_span_id = TRACE_ID, span_id(i), PARENT_ID
        sp.name = f"span-{i}"
        sp.kind = trace_pb2.Span.SPAN_KIND_CLIENT
        sp.start_time_unix_nano, sp.end_time_unix_nano = 1_700_000_000_000_000_000 + i, 1_700_000_000_000_000_500 + i
        sp.status.code, sp.status.message = trace_pb2.Status.STATUS_CODE_ERROR, "boom"
        for key, field, value in (("s", "string_value", "x"), ("b", "bool_value", True),
                                  ("i", "int_value", -(2**62)), ("d", "double_value", 1.5),
                                  ("raw", "bytes_value", b"\x00\xff")):
            a = sp.attributes.add()
            a.key = key
            setattr(a.value, field, value)
        arr = sp.attributes.add()
        arr.key = "arr"
        arr.value.array_value.values.add().int_value = 7
        if big_attr:
            a = sp.attributes.add()
            a.key, a.value.string_value = "big", "z" * big_attr
        ev = sp.events.add()
        ev.name, ev.time_unix_nano = "ev", 1_700_000_000_000_000_100
        ev.attributes.add(key="k").value.string_value = "v"
        ln = sp.links.add()
        ln.trace_id, ln.span_id = bytes(range(16)), bytes(range(8))
    return req


def post(rx_or_port, body, content_type=PROTOBUF, headers=None, timeout=60.0,
         path="/v1/traces", conn=None):
    """One POST; returns (status, headers with lower-case names, body)."""
    port = rx_or_port if isinstance(rx_or_port, int) else rx_or_port.port
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdrs = {"Content-Type": content_type, **(headers or {})}
        if isinstance(body, list):
            conn.request("POST", path, body=iter(body), headers=hdrs, encode_chunked=True)
        else:
            conn.request("POST", path, body=body, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        if own:
            conn.close()


def rpc_status(body: bytes) -> dict:
    """Decode a google.rpc.Status without its generated class: its fields land as unknown fields."""
    msg = empty_pb2.Empty()
    msg.ParseFromString(body)
    return {f.field_number: f.data for f in unknown_fields.UnknownFieldSet(msg)}


# --- accepting ------------------------------------------------------------

def test_protobuf_request_is_recorded_span_by_span_and_answered_with_empty_response(rx):
    status, headers, body = post(rx, make_request(2).SerializeToString())
    assert status == 200
    assert headers["content-type"] == PROTOBUF
    resp = ExportTraceServiceResponse.FromString(body)
    assert not resp.HasField("partial_success")

    [rec] = rx.accepted_records()
    assert rec["path"] == "/v1/traces" and rec["content_type"] == PROTOBUF
    assert [s["name"] for s in rec["spans"]] == ["span-0", "span-1"]
    s = rec["spans"][0]
    assert s["trace_id"] == TRACE_ID.hex() and s["span_id"] == span_id(0).hex()
    assert s["parent_span_id"] == PARENT_ID.hex()
    assert (s["kind"], s["status_code"], s["status_message"]) == (3, 2, "boom")
    assert s["start"] == 1_700_000_000_000_000_000 and s["end"] == 1_700_000_000_000_000_500
    assert s["attributes"] == {"s": "x", "b": True, "i": -(2**62), "d": 1.5,
                               "raw": {"bytes": "00ff"}, "arr": [7]}
    assert s["events"][0]["name"] == "ev" and s["events"][0]["attributes"] == {"k": "v"}
    assert s["links"][0]["trace_id"] == bytes(range(16)).hex()
    assert s["resource"] == {"service.name": "svc"}
    assert (s["scope"], s["scope_version"]) == ("spanguard", "0.1.0")


def test_otlp_json_with_hex_ids_is_accepted_and_answered_in_json(rx):
    doc = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
        "scopeSpans": [{"scope": {"name": "js"}, "spans": [{
            "traceId": TRACE_ID.hex().upper(), "spanId": span_id(1).hex(),
            "parentSpanId": "", "name": "j", "kind": 2,
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": 1700000000000000001,
            "attributes": [{"key": "n", "value": {"intValue": "42"}}],
            "links": [{"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708"}],
            "status": {"code": 1}}]}]}]}
    status, headers, body = post(rx, json.dumps(doc).encode(), "application/json; charset=utf-8")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {}
    [s] = rx.spans()
    assert (s["trace_id"], s["span_id"], s["parent_span_id"]) == (TRACE_ID.hex(), span_id(1).hex(), "")
    assert (s["kind"], s["start"], s["end"], s["status_code"]) == (2, 1700000000000000000, 1700000000000000001, 1)
    assert s["attributes"] == {"n": 42}
    assert s["links"][0]["span_id"] == "0102030405060708"


def test_gzip_body_is_unpacked_and_headers_are_recorded_lower_case(rx):
    raw = make_request(3).SerializeToString()
    packed = gzip.compress(raw)
    status, _, _ = post(rx, packed, headers={"Content-Encoding": "gzip", "X-Api-Key": "s3cret",
                                              "Authorization": "Bearer t"})
    assert status == 200
    [rec] = rx.accepted_records()
    assert rec["content_encoding"] == "gzip"
    assert rec["body_bytes"] == len(packed) and rec["decoded_bytes"] == len(raw)
    assert rec["headers"]["x-api-key"] == "s3cret" and rec["headers"]["authorization"] == "Bearer t"
    assert len(rx.spans()) == 3


def test_chunked_body_and_keep_alive_connection(rx):
    conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=60)
    try:
        body = make_request(1).SerializeToString()
        assert post(rx, [body[:10], body[10:]], conn=conn)[0] == 200
        assert post(rx, make_request(1, first=1).SerializeToString(), conn=conn)[0] == 200
    finally:
        conn.close()
    recs = rx.accepted_records()
    assert len(recs) == 2 and recs[0]["peer"] == recs[1]["peer"]


def test_same_spans_twice_show_in_raw_view_and_once_in_deduplicated_view(rx):
    body = make_request(2).SerializeToString()
    assert post(rx, body)[0] == 200
    assert post(rx, body)[0] == 200
    assert len(rx.raw_spans()) == 4
    assert [s["name"] for s in rx.wait_for_spans(2)] == ["span-0", "span-1"]
    assert rx.duplicate_spans() == {(TRACE_ID.hex(), span_id(0).hex()): 2,
                                    (TRACE_ID.hex(), span_id(1).hex()): 2}


# --- rejecting bad requests -------------------------------------------------

def _with_unknown_field_in_span() -> bytes:
    req = make_request(1)
    odd = trace_pb2.Span()
    # Field 111, varint 1: what a misnumbered field looks like on the wire.
    odd.ParseFromString(req.resource_spans[0].scope_spans[0].spans[0].SerializeToString() + b"\xf8\x06\x01")
    req.resource_spans[0].scope_spans[0].spans[0].CopyFrom(odd)
    return req.SerializeToString()


@pytest.mark.parametrize("body,ctype,headers,code,reason", [
    (b"\xff\xff\xff", PROTOBUF, {}, 400, "protobuf"),
    (None, PROTOBUF, {}, 400, "unknown fields: request.resource_spans[0].scope_spans[0].spans[0]: field 111"),
    (b"not gzip", PROTOBUF, {"Content-Encoding": "gzip"}, 400, "gzip"),
    (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}', "application/json", {}, 400, "hex"),
    (b'{"resourceSpans":[{"bogus":1}]}', "application/json", {}, 400, "otlp/json"),
    (b"x", "text/plain", {}, 415, "Content-Type"),
])
def test_bad_body_is_answered_with_4xx_and_recorded_as_rejected(rx, body, ctype, headers, code, reason):
    body = _with_unknown_field_in_span() if body is None else body
    status, hdrs, resp = post(rx, body, ctype, headers)
    assert status == code
    [rec] = rx.records()
    assert rec["status"] == code and reason in rec["rejected"]
    assert rx.raw_spans() == []


def test_ids_of_the_wrong_length_are_rejected(rx):
    req = make_request(1)
    req.resource_spans[0].scope_spans[0].spans[0].span_id = b"\x01\x02"
    assert post(rx, req.SerializeToString())[0] == 400
    assert "span_id has 2 bytes" in rx.rejected_records()[0]["rejected"]


def test_lenient_receiver_keeps_spans_with_unknown_fields(tmp_path):
    with OtlpReceiverProcess(sys.executable, lenient=True, workdir=tmp_path) as rx:
        assert post(rx, _with_unknown_field_in_span())[0] == 200
        assert len(rx.spans()) == 1


def test_wrong_path_is_404_and_delivers_nothing(rx):
    status, _, _ = post(rx, make_request(1).SerializeToString(), path="/v1/trace")
    assert status == 404
    assert rx.rejected_records()[0]["rejected"] == "not_found" and rx.raw_spans() == []


# --- misbehaving ------------------------------------------------------------

def test_status_mode_answers_code_retry_after_and_rpc_status_and_delivers_nothing(rx):
    rx.set_mode("status:503", retry_after="7")
    status, headers, body = post(rx, make_request(2).SerializeToString())
    assert status == 503 and headers["retry-after"] == "7"
    assert rpc_status(body)[1] == 14  # UNAVAILABLE
    [rec] = rx.refused_records()
    assert rec["refused"] == "status:503" and rec["status"] == 503 and len(rec["spans"]) == 2
    assert rx.raw_spans() == []
    assert rx.stats()["requests"] == {"refused:status:503": 1}


def test_retry_after_can_be_an_http_date(rx):
    rx.set_mode("status:429", retry_after="date:+30")
    status, headers, _ = post(rx, make_request(1).SerializeToString())
    assert status == 429
    ahead = email.utils.parsedate_to_datetime(headers["retry-after"]).timestamp() - time.time()
    assert 20 < ahead <= 31


def test_count_limited_mode_applies_to_exactly_k_concurrent_requests_then_reverts(rx):
    rx.set_mode("status:503", count=4)
    statuses = [None] * 10

    def one(i):
        statuses[i] = post(rx, make_request(1, first=i).SerializeToString())[0]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] * 6 + [503] * 4
    assert len(rx.spans()) == 6 and not rx.duplicate_spans()
    assert rx.state()["mode"] == "ok"


def test_mode_given_at_start_with_count(tmp_path):
    with OtlpReceiverProcess(sys.executable, mode="status:500", count=1, workdir=tmp_path) as rx:
        body = make_request(1).SerializeToString()
        assert post(rx, body)[0] == 500
        assert post(rx, body)[0] == 200


def test_for_s_returns_to_ok_on_its_own(rx):
    # The mode holds for 2 s from set_mode: a post after that (a loaded
    # machine) meets ok, and says nothing about the mode.
    set_at = time.monotonic()
    rx.set_mode("status:502", for_s=2)
    status = post(rx, make_request(1).SerializeToString())[0]
    assert status == 502 or time.monotonic() - set_at >= 2, status
    rx.wait_for(lambda r: r.state()["mode"] == "ok", what="for_s expiry")
    assert post(rx, make_request(1).SerializeToString())[0] == 200


def test_partial_success_rejects_the_last_n_spans(rx):
    rx.set_mode("partial:2", count=1)
    status, _, body = post(rx, make_request(5).SerializeToString())
    assert status == 200
    ps = ExportTraceServiceResponse.FromString(body).partial_success
    assert ps.rejected_spans == 2 and ps.error_message
    [rec] = rx.accepted_records()
    assert [s["name"] for s in rec["spans"]] == ["span-0", "span-1", "span-2"]
    assert [s["name"] for s in rec["partial_rejected"]] == ["span-3", "span-4"]
    assert rec["partial_success"]["rejected_spans"] == 2
    assert [s["name"] for s in rx.spans()] == ["span-0", "span-1", "span-2"]


def test_partial_success_in_json(rx):
    rx.set_mode("partial:1")
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": TRACE_ID.hex(), "spanId": span_id(i).hex(), "name": f"j{i}"} for i in range(2)]}]}]}
    status, _, body = post(rx, json.dumps(doc).encode(), "application/json")
    assert status == 200
    assert json.loads(body)["partialSuccess"]["rejectedSpans"] in ("1", 1)
    assert [s["name"] for s in rx.spans()] == ["j0"]


def test_hang_holds_the_request_until_the_client_gives_up_without_blocking_others(rx):
    rx.set_mode("hang", count=1)
    outcome = {}

    # The client gives up when the test says (its socket shut down), not
    # on a timer: on a loaded machine a 1.5 s timeout ran out before the
    # other request was answered, and the test could not tell a hang that
    # blocked others from a slow machine.
    conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=120)

    def hung_client():
        try:
            post(rx, make_request(1).SerializeToString(), conn=conn)
            outcome["result"] = "answered"
        except (ConnectionError, OSError):
            outcome["result"] = "gave up"

    t = threading.Thread(target=hung_client)
    t.start()
    rx.wait_for(lambda r: r.state()["mode"] == "ok", what="hang to be taken")
    assert post(rx, make_request(1, first=1).SerializeToString())[0] == 200
    assert t.is_alive()  # the hung request is still waiting while the other one was answered
    conn.sock.shutdown(socket.SHUT_RDWR)
    t.join(60)
    conn.close()
    assert outcome["result"] == "gave up"
    rec = rx.wait_for(lambda r: r.refused_records(), what="hang record")[0]
    assert rec["refused"] == "hang" and rec["ended_by"] == "client"
    assert [s["name"] for s in rx.spans()] == ["span-1"]


def test_slow_answers_after_the_delay(rx):
    rx.set_mode("slow:0.3", count=1)
    t0 = time.monotonic()
    assert post(rx, make_request(1).SerializeToString())[0] == 200
    assert time.monotonic() - t0 >= 0.3
    assert len(rx.spans()) == 1


def test_slow_answer_to_a_client_that_left_is_not_delivered(rx):
    # A delay far beyond the client's patience: the receiver sees it leave
    # as it leaves, and no loaded machine stretches 0.2 s of patience to 60.
    rx.set_mode("slow:60", count=1)
    with pytest.raises(TimeoutError):
        post(rx, make_request(1).SerializeToString(), timeout=0.2)
    rec = rx.wait_for(lambda r: r.refused_records(), what="client_gone record")[0]
    assert rec["refused"] == "client_gone" and rec["mode"] == "slow:60"
    assert rx.raw_spans() == []


def test_drop_mid_body_resets_the_connection(rx):
    rx.set_mode("drop_mid_body", count=1)
    body = make_request(1, big_attr=256 * 1024).SerializeToString()
    with pytest.raises(ConnectionError):
        post(rx, body)
    [rec] = rx.refused_records()
    assert rec["refused"] == "drop_mid_body" and rec["body_bytes"] == len(body) // 2
    assert rx.raw_spans() == []
    assert post(rx, make_request(1).SerializeToString())[0] == 200


def test_refuse_closes_the_port_and_cuts_pooled_connections_until_control_reopens_it(rx):
    pooled = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=60)
    try:
        assert post(rx, make_request(1).SerializeToString(), conn=pooled)[0] == 200
        state = rx.set_mode("refuse")
        assert state["listening"] is False
        with pytest.raises(ConnectionError):
            post(rx, make_request(1, first=1).SerializeToString(), conn=pooled)
    finally:
        pooled.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", rx.port), timeout=2).close()
    assert rx.stats()["state"]["listening"] is False  # the control port still answers
    rx.set_mode("ok")
    assert post(rx, make_request(1, first=2).SerializeToString())[0] == 200
    assert [s["name"] for s in rx.spans()] == ["span-0", "span-2"]


def test_a_refused_port_stays_held_so_no_other_server_is_given_it(rx):
    # make test runs many receivers at once (two lanes, pytest workers):
    # a port closed for refuse mode was free, and a receiver another test
    # started could be given it and answer 200 to spans meant to be
    # refused. Held, a bind to it fails, as every bind elsewhere does.
    rx.set_mode("refuse")
    other = socket.socket()
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        with pytest.raises(OSError) as held:
            other.bind(("127.0.0.1", rx.port))
        assert held.value.errno == errno.EADDRINUSE
    finally:
        other.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", rx.port), timeout=2).close()
    rx.set_mode("ok")
    assert post(rx, make_request(1).SerializeToString())[0] == 200
    rx.set_mode("refuse")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", rx.port), timeout=2).close()


def test_refuse_for_a_while_comes_back_on_its_own(rx):
    # Refused for 2 s from set_mode: a connection after that (a loaded
    # machine) is let in, and says nothing about the refusal.
    set_at = time.monotonic()
    rx.set_mode("refuse", for_s=2)
    try:
        socket.create_connection(("127.0.0.1", rx.port), timeout=30).close()
        assert time.monotonic() - set_at >= 2, "let in while refusing"
    except ConnectionRefusedError:
        pass
    rx.wait_for(lambda r: r.state()["listening"], what="listener back")
    assert post(rx, make_request(1).SerializeToString())[0] == 200


@pytest.mark.parametrize("payload", [
    {"mode": "teapot"}, {"mode": "status:200"}, {"mode": "refuse", "count": 1},
    {"mode": "ok", "count": 0}, {"mode": "ok", "colour": "red"}, {"count": 2},
])
def test_bad_control_requests_are_refused_and_change_nothing(rx, payload):
    with pytest.raises(ReceiverError, match="400"):
        rx._control_request("POST", "/control", payload)
    assert rx.state()["mode"] == "ok"


def test_stats_count_outcomes_and_records_outlive_a_temporary_workdir():
    rx = OtlpReceiverProcess(sys.executable).start()
    try:
        body = make_request(2).SerializeToString()
        post(rx, body)
        rx.set_mode("status:504", count=1)
        post(rx, body)
        post(rx, b"junk")
        stats = rx.stats()
        assert stats["requests"] == {"accepted": 1, "refused:status:504": 1, "rejected:400": 1}
        assert stats["spans"] == {"delivered": 2, "partial_rejected": 0, "refused": 2}
    finally:
        assert rx.stop() == 0
    assert [r["seq"] for r in rx.records()] == [1, 2, 3]
    assert len(rx.spans()) == 2


def test_refuse_cuts_a_hung_request_and_says_the_receiver_ended_it(rx):
    rx.set_mode("hang")
    conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=60)
    try:
        conn.request("POST", "/v1/traces", body=make_request(1).SerializeToString(),
                     headers={"Content-Type": PROTOBUF})
        rx.wait_for(lambda r: r.stats()["open_trace_connections"] == 1, what="hung request")
        rx.set_mode("refuse")
        with pytest.raises(ConnectionError):
            conn.getresponse()
    finally:
        conn.close()
    rec = rx.wait_for(lambda r: r.refused_records(), what="hang record")[0]
    assert rec["ended_by"] == "receiver" and rx.raw_spans() == []
