#!/usr/bin/env python3
"""Loopback OTLP/HTTP trace receiver that records what it accepts and misbehaves on command.

It judges spanguard's exporter from the outside: it decodes with the upstream
`opentelemetry-proto` classes, never with our encoder, and it writes down exactly
which spans it acknowledged so a test can say "these N spans arrived, once each".

Run it with a Python that has `opentelemetry-proto` (e.g. /work/main/.venv/bin/python).

Command line
------------
    otlp_receiver.py [--host 127.0.0.1] [--port 0] [--port-file F]
                     [--control-port 0] [--control-port-file F]
                     [--record FILE] [--mode MODE] [--count K] [--retry-after V]
                     [--delay-s S] [--for-s S] [--lenient] [--max-body-bytes N]
                     [--hang-max-s S] [--verbose]
                     [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]]

With --tls-cert and --tls-key the trace port speaks HTTPS with that certificate;
with --tls-client-ca as well it requires a client certificate signed by that CA
(mutual TLS).  The control port is always plain HTTP.

Stdout gets `PORT <n>` as its first line and `CONTROL_PORT <m>` as its second; the
port files (written atomically) hold just the number.  SIGTERM, SIGINT or
`POST /shutdown` stop it cleanly (exit status 0).

Two listeners
-------------
* the trace port serves `POST /v1/traces` (and, for convenience, the control
  endpoints below);
* the control port is always on and serves only the control endpoints.  It exists
  because mode `refuse` closes the trace port's listening socket: only the control
  port can bring it back.

Trace requests
--------------
Body framing: Content-Length or chunked (else 411).  `Content-Encoding: gzip` is
gunzipped.  `Content-Type: application/x-protobuf` is parsed as
ExportTraceServiceRequest; `application/json` as OTLP/JSON (hex trace/span ids).
Anything else is 415.  Unless `--lenient`, a body is bad (400) when it carries a
field the schema does not know (the Python protobuf runtime keeps misnumbered
fields silently as unknown fields, so we walk them) or an id of the wrong length
(trace id 16 bytes, span id 8, parent span id 0 or 8).

Modes (`--mode` at start, `POST /control` at run time)
-------------------------------------------------------
    ok                 accept: record, answer 200 + empty ExportTraceServiceResponse
    status:<code>      answer <code> (400..599) with a google.rpc.Status body and,
                       if set, `Retry-After: <retry_after>`
    partial:<n>        accept, but answer 200 with partial_success.rejected_spans;
                       the LAST n spans of the request are the rejected ones
    hang               read the request, never answer; the connection is held until
                       the client closes it (or --hang-max-s passes)
    slow:<s>           wait s seconds, then accept (shorthand for ok + delay_s)
    drop_mid_body      read half the body (by Content-Length; none of a chunked
                       body), then reset the connection (RST)
    refuse             close the trace listener: connections get ECONNREFUSED; open
                       connections are shut down too.  Leave it via the control port.
    too_large:<n>      read the whole body, then answer 413 when it has more than n
                       bytes (as received, before gunzip); accept smaller requests

`delay_s` delays the answer in any mode that answers (ok, status, partial); a
client that leaves during the delay is recorded client_gone as it leaves.
`retry_after` is sent verbatim (`"7"`, an HTTP date), or `"date:+N"` for an HTTP
date N seconds after the answer.

Control API (JSON in, JSON out)
-------------------------------
    POST /control  {"mode": "status:503", "count": 2, "retry_after": "1",
                    "delay_s": 0.5, "for_s": 3}
        `mode` is required.  `count`: apply to the next k trace requests, then back
        to ok (not allowed with refuse: refused connections never reach us).
        `for_s`: back to ok after that many seconds (whichever of count/for_s comes
        first).  Neither: until changed.  Answers {"ok": true, "state": {...}};
        400 {"ok": false, "error": ...} on a bad request.
    GET  /control  the current state
    GET  /stats    {"state": ..., "requests": {outcome: n}, "spans": {...}}
    POST /shutdown stop the receiver

Record file (`--record`), one JSON object a line, flushed after each write
--------------------------------------------------------------------------
`seq` counts every line (one sequence for all kinds), `time_unix` is when it was
written.  A line is written before the answer (or the reset) is sent, so a client
that has seen the outcome can read its line; only a hang's line comes after, when
the hang ends.
* accepted (2xx answered; the only kind whose `spans` count as delivered):
      {"seq", "time_unix", "path", "content_type", "content_encoding", "headers",
       "body_bytes", "decoded_bytes", "peer", "spans": [span, ...]}
  partial adds "partial_success": {"rejected_spans", "error_message"} and
  "partial_rejected": [span, ...] (those are NOT in "spans").
* rejected (the request itself was wrong: 400/404/411/413/415):
      {"rejected": reason, "status": code, "seq", ...}
* refused (a misbehaviour mode did not accept it):
      {"refused": "status:503" | "hang" | "drop_mid_body" | "refuse" | "client_gone",
       "status": code or null, "seq", ..., "spans": [...] when the body was read}
  hang adds "ended_by": "client" | "receiver" | "hang_max_s"; client_gone (the
  client left during a delay) adds "mode".
A span is {"trace_id", "span_id", "parent_span_id" (hex, "" if none), "name",
"kind", "start", "end", "status_code", "status_message", "attributes",
"events", "links", "resource", "resource_dropped_attributes_count", "scope", "scope_version", "scope_schema_url", "scope_attributes", "trace_state", "flags",
"dropped_attributes_count", "dropped_events_count", "dropped_links_count"}.
Attribute values become JSON values; bytes become {"bytes": hex}.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import email.utils
import gzip
import json
import os
import re
import select
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from google.protobuf import json_format, unknown_fields
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

TRACES_PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"

# google.rpc.Code for the HTTP status we answer with; OTLP/HTTP error bodies are
# google.rpc.Status messages.
_GRPC_CODE_FOR_HTTP = {400: 3, 401: 16, 403: 7, 404: 5, 409: 10, 429: 8,
                       500: 13, 501: 12, 502: 14, 503: 14, 504: 4}


class BadRequest(Exception):
    """The request itself is wrong; answered with `status` and recorded as rejected."""

    def __init__(self, status: int, reason: str, close: bool = False):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.close = close  # the body framing is unknown, so the connection cannot be reused


# ---------------------------------------------------------------------------
# Modes

@dataclasses.dataclass(frozen=True)
class Behaviour:
    """What the receiver does with one trace request."""

    kind: str = "ok"            # ok status partial hang drop_mid_body refuse too_large
    status: int = 200           # for kind == "status"
    rejected: int = 0           # for kind == "partial"
    limit: int = 0              # for kind == "too_large": the largest body accepted
    delay_s: float = 0.0        # wait before answering
    retry_after: str | None = None
    name: str = "ok"            # as the user wrote it, for records and stats


OK = Behaviour()

_MODE_RE = re.compile(
    r"^(ok|hang|drop_mid_body|refuse|status:(\d{3})|partial:(\d+)|slow:([0-9.]+)|too_large:(\d+))$")


def parse_behaviour(mode: str, retry_after=None, delay_s=None) -> Behaviour:
    if not isinstance(mode, str):
        raise ValueError("mode must be a string")
    m = _MODE_RE.match(mode.strip())
    if not m:
        raise ValueError(f"unknown mode {mode!r}")
    name = m.group(1)
    delay = 0.0
    if delay_s is not None:
        if isinstance(delay_s, bool) or not isinstance(delay_s, (int, float)) or delay_s < 0:
            raise ValueError("delay_s must be a number >= 0")
        delay = float(delay_s)
    if retry_after is not None:
        if isinstance(retry_after, bool) or not isinstance(retry_after, (str, int, float)):
            raise ValueError("retry_after must be a string or a number")
        retry_after = str(retry_after)
        if retry_after.startswith("date:") and not re.fullmatch(r"date:\+\d+(\.\d+)?", retry_after):
            raise ValueError("retry_after date form is 'date:+SECONDS'")
    if m.group(2):
        code = int(m.group(2))
        if not 400 <= code <= 599:
            raise ValueError("status mode takes a code in 400..599")
        return Behaviour("status", status=code, delay_s=delay, retry_after=retry_after, name=name)
    if m.group(3):
        return Behaviour("partial", rejected=int(m.group(3)), delay_s=delay,
                         retry_after=retry_after, name=name)
    if m.group(5):
        return Behaviour("too_large", limit=int(m.group(5)), delay_s=delay,
                         retry_after=retry_after, name=name)
    if m.group(4):
        try:
            slow = float(m.group(4))
        except ValueError:
            raise ValueError(f"bad seconds in {mode!r}") from None
        return Behaviour("ok", delay_s=delay if delay_s is not None else slow,
                         retry_after=retry_after, name=name)
    return Behaviour(name, delay_s=delay, retry_after=retry_after, name=name)


class ModeState:
    """The current behaviour, shared by all handler threads.

    One lock guards the behaviour, the remaining count and the generation, so a
    count-limited mode applies to exactly `count` requests however many arrive at once.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._behaviour = OK
        self._remaining: int | None = None
        self._generation = 0

    def set(self, behaviour: Behaviour, count: int | None) -> int:
        with self._lock:
            self._behaviour = behaviour
            self._remaining = count
            self._generation += 1
            return self._generation

    def reset_if(self, generation: int) -> bool:
        """Back to ok unless the mode was changed since `generation` was set."""
        with self._lock:
            if self._generation != generation:
                return False
            self._behaviour, self._remaining = OK, None
            self._generation += 1
            return True

    def take(self) -> Behaviour:
        """The behaviour for one trace request; spends one unit of a count."""
        with self._lock:
            b = self._behaviour
            if self._remaining is not None:
                self._remaining -= 1
                if self._remaining <= 0:
                    self._behaviour, self._remaining = OK, None
                    self._generation += 1
            return b

    def snapshot(self) -> dict:
        with self._lock:
            b = self._behaviour
            return {"mode": b.name, "remaining": self._remaining, "delay_s": b.delay_s,
                    "retry_after": b.retry_after}


# ---------------------------------------------------------------------------
# Decoding

_HEX_RE = re.compile(r"^(?:[0-9a-fA-F]{2})*$")


def _hex_to_b64(value, what: str) -> str:
    if not isinstance(value, str) or not _HEX_RE.match(value):
        raise BadRequest(400, f"{what} is not a hex string: {value!r}")
    return base64.b64encode(bytes.fromhex(value)).decode("ascii")


def _convert_ids(obj: dict, keys: tuple[str, ...], where: str) -> None:
    for key in keys:
        if key in obj:
            obj[key] = _hex_to_b64(obj[key], f"{where}.{key}")


def _list_of_dicts(obj, key_camel: str, key_snake: str, where: str) -> list:
    items = obj.get(key_camel, obj.get(key_snake, []))
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise BadRequest(400, f"{where}.{key_camel} is not a list of objects")
    return items


def otlp_json_ids_to_base64(doc) -> None:
    """OTLP/JSON writes ids as hex; protobuf's JSON mapping wants base64 bytes."""
    if not isinstance(doc, dict):
        raise BadRequest(400, "JSON body is not an object")
    for ri, rs in enumerate(_list_of_dicts(doc, "resourceSpans", "resource_spans", "")):
        for si, ss in enumerate(_list_of_dicts(rs, "scopeSpans", "scope_spans", f"resourceSpans[{ri}]")):
            where = f"resourceSpans[{ri}].scopeSpans[{si}]"
            for pi, span in enumerate(_list_of_dicts(ss, "spans", "spans", where)):
                sw = f"{where}.spans[{pi}]"
                _convert_ids(span, ("traceId", "trace_id", "spanId", "span_id",
                                    "parentSpanId", "parent_span_id"), sw)
                for li, link in enumerate(_list_of_dicts(span, "links", "links", sw)):
                    _convert_ids(link, ("traceId", "trace_id", "spanId", "span_id"),
                                 f"{sw}.links[{li}]")


def unknown_field_paths(msg: Message, path: str = "request") -> list[str]:
    """Every place in `msg` holding a field the schema does not define."""
    found = [f"{path}: field {f.field_number} (wire type {f.wire_type})"
             for f in unknown_fields.UnknownFieldSet(msg)]
    for fd, value in msg.ListFields():
        if fd.message_type is None:
            continue
        if fd.is_repeated:
            for i, item in enumerate(value):
                found += unknown_field_paths(item, f"{path}.{fd.name}[{i}]")
        else:
            found += unknown_field_paths(value, f"{path}.{fd.name}")
    return found


def bad_id_lengths(req: ExportTraceServiceRequest) -> list[str]:
    bad = []
    for ri, rs in enumerate(req.resource_spans):
        for si, ss in enumerate(rs.scope_spans):
            for pi, sp in enumerate(ss.spans):
                where = f"resource_spans[{ri}].scope_spans[{si}].spans[{pi}]"
                if len(sp.trace_id) != 16:
                    bad.append(f"{where}.trace_id has {len(sp.trace_id)} bytes")
                if len(sp.span_id) != 8:
                    bad.append(f"{where}.span_id has {len(sp.span_id)} bytes")
                if len(sp.parent_span_id) not in (0, 8):
                    bad.append(f"{where}.parent_span_id has {len(sp.parent_span_id)} bytes")
                for li, ln in enumerate(sp.links):
                    if len(ln.trace_id) != 16 or len(ln.span_id) != 8:
                        bad.append(f"{where}.links[{li}] ids have {len(ln.trace_id)}/{len(ln.span_id)} bytes")
    return bad


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode_request(body: bytes, content_type: str | None, content_encoding: str | None,
                   strict: bool) -> tuple[ExportTraceServiceRequest, int]:
    """The decoded request and the size of the body after gunzip."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "gzip":
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as e:
            raise BadRequest(400, f"gzip: {e}") from None
    elif encoding != "identity":
        raise BadRequest(415, f"unsupported Content-Encoding {content_encoding!r}")
    mtype = media_type(content_type)
    req = ExportTraceServiceRequest()
    if mtype == PROTOBUF:
        try:
            req.ParseFromString(body)
        except DecodeError as e:
            raise BadRequest(400, f"protobuf: {e}") from None
        if strict:
            unknown = unknown_field_paths(req)
            if unknown:
                raise BadRequest(400, "unknown fields: " + "; ".join(unknown[:10]))
    elif mtype == JSON:
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise BadRequest(400, f"json: {e}") from None
        otlp_json_ids_to_base64(doc)
        try:
            json_format.ParseDict(doc, req, ignore_unknown_fields=not strict)
        except (json_format.ParseError, TypeError, ValueError, AttributeError) as e:
            raise BadRequest(400, f"otlp/json: {e}") from None
    else:
        raise BadRequest(415, f"unsupported Content-Type {content_type!r}")
    if strict:
        bad = bad_id_lengths(req)
        if bad:
            raise BadRequest(400, "bad ids: " + "; ".join(bad[:10]))
    return req, len(body)


def any_value(v):
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return {"bytes": v.bytes_value.hex()}
    if which == "string_value_strindex":
        return {"strindex": v.string_value_strindex}
    return getattr(v, which)


def key_values(kvs) -> dict:
    return {kv.key: any_value(kv.value) for kv in kvs}


def span_dicts(req: ExportTraceServiceRequest) -> list[dict]:
    """The request's spans, flattened in wire order."""
    out = []
    for rs in req.resource_spans:
        resource = key_values(rs.resource.attributes)
        for ss in rs.scope_spans:
            for sp in ss.spans:
                out.append({
                    "trace_id": sp.trace_id.hex(),
                    "span_id": sp.span_id.hex(),
                    "parent_span_id": sp.parent_span_id.hex(),
                    "name": sp.name,
                    "kind": sp.kind,
                    "start": sp.start_time_unix_nano,
                    "end": sp.end_time_unix_nano,
                    "status_code": sp.status.code,
                    "status_message": sp.status.message,
                    "attributes": key_values(sp.attributes),
                    "events": [{"name": e.name, "time": e.time_unix_nano,
                                "attributes": key_values(e.attributes),
                                "dropped_attributes_count": e.dropped_attributes_count}
                               for e in sp.events],
                    "links": [{"trace_id": ln.trace_id.hex(), "span_id": ln.span_id.hex(),
                               "trace_state": ln.trace_state, "flags": ln.flags,
                               "attributes": key_values(ln.attributes),
                               "dropped_attributes_count": ln.dropped_attributes_count}
                              for ln in sp.links],
                    "resource": resource,
                    "resource_dropped_attributes_count": rs.resource.dropped_attributes_count,
                    "scope": ss.scope.name,
                    "scope_version": ss.scope.version,
                    "scope_schema_url": ss.schema_url,
                    "scope_attributes": key_values(ss.scope.attributes),
                    "trace_state": sp.trace_state,
                    "flags": sp.flags,
                    "dropped_attributes_count": sp.dropped_attributes_count,
                    "dropped_events_count": sp.dropped_events_count,
                    "dropped_links_count": sp.dropped_links_count,
                })
    return out


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def rpc_status_body(http_status: int, message: str, mtype: str) -> tuple[bytes, str]:
    """A google.rpc.Status error body (hand-encoded: googleapis protos are not installed)."""
    code = _GRPC_CODE_FOR_HTTP.get(http_status, 2)
    if mtype == JSON:
        return json.dumps({"code": code, "message": message}).encode(), JSON
    msg = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(msg)) + msg, PROTOBUF


def retry_after_value(raw: str | None) -> str | None:
    if raw is None or not raw.startswith("date:"):
        return raw
    return email.utils.formatdate(time.time() + float(raw[len("date:+"):]), usegmt=True)


# ---------------------------------------------------------------------------
# Records and counters

class RecordLog:
    """Appends one JSON line per outcome; one lock keeps lines whole and `seq` dense."""

    def __init__(self, path: str | None):
        self._lock = threading.Lock()
        self._file = open(path, "a", encoding="utf-8") if path else None
        self._seq = 0

    def write(self, line: dict) -> int:
        with self._lock:
            self._seq += 1
            line = {"seq": self._seq, "time_unix": time.time(), **line}
            if self._file:
                self._file.write(json.dumps(line, separators=(",", ":")) + "\n")
                self._file.flush()
            return self._seq

    def close(self):
        with self._lock:
            if self._file:
                self._file.close()
                self._file = None


class OutcomeCounts:
    def __init__(self):
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._spans: Counter[str] = Counter()

    def add(self, outcome: str, **spans: int):
        with self._lock:
            self._requests[outcome] += 1
            for k, n in spans.items():
                self._spans[k] += n

    def snapshot(self) -> dict:
        with self._lock:
            return {"requests": dict(self._requests),
                    "spans": {"delivered": 0, "partial_rejected": 0, "refused": 0, **self._spans}}


# ---------------------------------------------------------------------------
# HTTP

class TrackingServer(ThreadingHTTPServer):
    """A threaded server that knows its open connections, so they can be cut."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops SYNs when a test opens many connections at once

    def __init__(self, addr, receiver: "Receiver", serves_traces: bool):
        self.receiver = receiver
        self.serves_traces = serves_traces
        self._conns_lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        super().__init__(addr, RequestHandler)
        if serves_traces and receiver.tls is not None:
            # The handshake happens in the handler's thread (on first read),
            # so a client that fails it cannot stall the accept loop.
            self.socket = receiver.tls.wrap_socket(self.socket, server_side=True,
                                                   do_handshake_on_connect=False)

    def server_bind(self):
        if self.serves_traces:
            # So that a socket bound but not listening can hold the port
            # while mode `refuse` closes this listener (TraceListener).
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

    def finish_request(self, request, client_address):
        if isinstance(request, ssl.SSLSocket):
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError) as e:
                self.receiver.tls_failures.append(str(e))
                self.receiver.counts.add("tls_handshake_failed")
                return
        with self._conns_lock:
            self._conns.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            with self._conns_lock:
                self._conns.discard(request)

    def open_connections(self) -> int:
        with self._conns_lock:
            return len(self._conns)

    def cut_connections(self, keep: socket.socket | None = None):
        with self._conns_lock:
            conns = [c for c in self._conns if c is not keep]
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class TraceListener:
    """The trace port, which mode `refuse` closes and any other mode reopens on the same port."""

    def __init__(self, receiver: "Receiver", host: str, port: int):
        self._receiver = receiver
        self._host = host
        self._server: TrackingServer | None = None
        self._old: list[TrackingServer] = []
        # While refusing: a socket bound to the port, not listening, so that
        # connections are still refused and no other process's bind to port
        # 0 is given this port. Without it, a receiver another test started
        # meanwhile (make test runs two lanes, pytest two workers) could be
        # given the closed port and answer 200: a test of a backend that is
        # away saw its 10 spans exported, nothing said.
        self._placeholder: socket.socket | None = None
        self.port = port
        self.open()

    @property
    def listening(self) -> bool:
        return self._server is not None

    def open(self):
        if self._server is not None:
            return
        deadline = time.monotonic() + 3.0
        while True:
            try:
                server = TrackingServer((self._host, self.port), self._receiver, serves_traces=True)
                break
            except OSError:
                if self.port == 0 or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.port = server.server_address[1]
        if self._placeholder is not None:
            self._placeholder.close()
            self._placeholder = None
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         name=f"traces:{self.port}", daemon=True).start()
        self._server = server

    def close(self, keep: socket.socket | None = None):
        """Stop accepting and cut open connections, so a pooled connection cannot sneak through."""
        server, self._server = self._server, None
        if server is None:
            return
        # Bound before the listener closes (both SO_REUSEPORT, this one
        # without SO_REUSEADDR: a bind to port 0 elsewhere skips the port).
        placeholder = socket.socket(server.address_family, socket.SOCK_STREAM)
        placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        placeholder.bind((self._host, self.port))
        self._placeholder = placeholder
        server.shutdown()
        server.server_close()
        server.cut_connections(keep)
        self._old.append(server)

    def is_serving(self, server: TrackingServer) -> bool:
        return server is self._server

    def open_connections(self) -> int:
        servers = self._old + ([self._server] if self._server else [])
        return sum(s.open_connections() for s in servers)

    def cut_all(self):
        for s in self._old + ([self._server] if self._server else []):
            s.cut_connections()


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "spanguard-test-receiver/1"
    timeout = 120  # an idle keep-alive connection does not hold a thread forever

    server: TrackingServer

    @property
    def receiver(self) -> "Receiver":
        return self.server.receiver

    def log_message(self, format, *args):
        if self.receiver.verbose:
            super().log_message(format, *args)

    # -- dispatch ----------------------------------------------------------

    def do_GET(self):
        path = urlsplit(self.path).path
        if path == "/stats":
            self._send_json(200, self.receiver.stats())
        elif path == "/control":
            self._send_json(200, {"ok": True, "state": self.receiver.state()})
        else:
            self._send_json(404, {"error": f"no GET {path}"})

    def do_POST(self):
        path = urlsplit(self.path).path
        if path == "/control":
            self._control()
        elif path == "/shutdown":
            self.close_connection = True
            self._send_json(200, {"ok": True})
            self.receiver.request_stop()
        elif path == TRACES_PATH and self.server.serves_traces:
            self._trace(path)
        else:
            self._not_found(path)

    def _not_found(self, path: str):
        try:
            self._read_body()
        except BadRequest:
            self.close_connection = True
        self.receiver.reject(self._meta(path, b""), "not_found", 404)
        self._send_json(404, {"error": f"no POST {path}"})

    def _control(self):
        try:
            body = self._read_body()
            payload = json.loads(body.decode("utf-8") or "{}")
        except (BadRequest, UnicodeDecodeError, ValueError) as e:
            self.close_connection = True
            self._send_json(400, {"ok": False, "error": f"bad control body: {e}"})
            return
        try:
            state = self.receiver.apply_control(payload, keep=self.connection)
        except ValueError as e:
            self._send_json(400, {"ok": False, "error": str(e)})
            return
        except OSError as e:
            self._send_json(500, {"ok": False, "error": f"listener: {e}"})
            return
        if state["mode"] == "refuse" and self.server.serves_traces:
            self.close_connection = True
        self._send_json(200, {"ok": True, "state": state})

    # -- trace requests ----------------------------------------------------

    def _trace(self, path: str):
        rx = self.receiver
        behaviour = rx.modes.take()
        if behaviour.kind == "refuse":
            # A pooled connection that outlived the listener: cut it like a dead server would.
            rx.refuse_line(self._meta(path, b""), "refuse", None, None)
            self._reset_connection()
            return
        if behaviour.kind == "drop_mid_body":
            got = self._read_part_of_body()
            rx.refuse_line(self._meta(path, got), "drop_mid_body", None, None)
            self._reset_connection()
            return
        try:
            body = self._read_body()
        except BadRequest as e:
            self.close_connection = True
            rx.reject(self._meta(path, b""), e.reason, e.status)
            self._send_error_status(e.status, e.reason)
            return
        meta = self._meta(path, body)
        mtype = media_type(meta["content_type"])
        if behaviour.kind == "too_large" and len(body) > behaviour.limit:
            reason = f"body of {len(body)} bytes is over {behaviour.limit}"
            rx.reject(meta, reason, 413)
            self._send_error_status(413, reason, mtype=mtype)
            return
        try:
            req, meta["decoded_bytes"] = decode_request(
                body, meta["content_type"], meta["content_encoding"], rx.strict)
            spans, bad = span_dicts(req), None
        except BadRequest as e:
            spans, bad = None, e

        if behaviour.kind == "hang":
            ended_by = self._hold_until_someone_gives_up(rx.hang_max_s)
            self.close_connection = True
            rx.refuse_line(meta, "hang", None, spans, ended_by=ended_by)
            return
        if behaviour.delay_s and not self._delay_and_check_client(behaviour.delay_s):
            self.close_connection = True
            rx.refuse_line(meta, "client_gone", None, spans, mode=behaviour.name)
            return
        if behaviour.kind == "status":
            rx.refuse_line(meta, behaviour.name, behaviour.status, spans)
            self._send_error_status(behaviour.status, f"test receiver mode {behaviour.name}",
                                    retry_after=retry_after_value(behaviour.retry_after),
                                    mtype=mtype)
            return
        if bad is not None:
            rx.reject(meta, bad.reason, bad.status)
            self._send_error_status(bad.status, bad.reason, mtype=mtype)
            return

        resp = ExportTraceServiceResponse()
        if behaviour.kind == "partial":
            n = min(behaviour.rejected, len(spans))
            kept, dropped = spans[:len(spans) - n], spans[len(spans) - n:]
            resp.partial_success.rejected_spans = n
            resp.partial_success.error_message = (
                f"test receiver mode {behaviour.name}: the last {n} spans were rejected")
            rx.accept(meta, kept, partial=(resp.partial_success, dropped))
        else:
            rx.accept(meta, spans)
        if mtype == JSON:
            out = json_format.MessageToJson(resp, indent=None).encode()
        else:
            out, mtype = resp.SerializeToString(), PROTOBUF
        self._send(200, out, mtype)

    # -- body framing ------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            raise BadRequest(411, "no Content-Length and not chunked", close=True)
        try:
            n = int(length)
            if n < 0:
                raise ValueError
        except ValueError:
            raise BadRequest(400, f"bad Content-Length {length!r}", close=True) from None
        if n > self.receiver.max_body_bytes:
            raise BadRequest(413, f"body of {n} bytes is over the limit", close=True)
        body = self.rfile.read(n)
        if len(body) != n:
            raise BadRequest(400, f"body ended after {len(body)} of {n} bytes", close=True)
        return body

    def _read_chunked(self) -> bytes:
        parts, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BadRequest(400, f"bad chunk size line {line!r}", close=True) from None
            if size == 0:
                while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > self.receiver.max_body_bytes:
                raise BadRequest(413, "chunked body is over the limit", close=True)
            chunk = self.rfile.read(size)
            if len(chunk) != size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise BadRequest(400, "truncated chunk", close=True)
            parts.append(chunk)

    def _read_part_of_body(self) -> bytes:
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = 0
        return self.rfile.read(n // 2) if n > 1 else b""

    # -- connection tricks -------------------------------------------------

    def _reset_connection(self):
        """Close with SO_LINGER 0, so the client sees a reset, not an answer or a clean FIN."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            os.close(self.connection.detach())
        except OSError:
            pass

    def _client_left(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _hold_until_someone_gives_up(self, max_s: float) -> str:
        """Keep the connection open without answering; say who ended it.

        "client" (it closed), "receiver" (stop, or refuse cut the connection) or "hang_max_s".
        """
        deadline = time.monotonic() + max_s
        rx = self.receiver
        while time.monotonic() < deadline:
            try:
                readable, _, _ = select.select([self.connection], [], [], 0.1)
                eof = bool(readable) and not self.connection.recv(65536)
            except (OSError, ValueError):
                eof = True
            if rx.stopping.is_set() or not rx.traces.is_serving(self.server):
                return "receiver"
            if eof:
                return "client"
        return "hang_max_s"

    def _delay_and_check_client(self, delay_s: float) -> bool:
        """Wait out the delay; False as soon as the client leaves. Looked at
        through the delay, not only at its end: a test of a client that gives
        up then needs no race between its timeout and the delay (a delay far
        longer than the client's patience costs nothing)."""
        deadline = time.monotonic() + delay_s
        while (left := deadline - time.monotonic()) > 0:
            if self.receiver.stopping.wait(min(left, 0.05)):
                break
            if self._client_left():
                return False
        return not self._client_left()

    # -- answers -----------------------------------------------------------

    def _meta(self, path: str, body: bytes) -> dict:
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return {"path": path,
                "content_type": self.headers.get("Content-Type"),
                "content_encoding": self.headers.get("Content-Encoding"),
                "headers": headers,
                "body_bytes": len(body),
                "peer": f"{self.client_address[0]}:{self.client_address[1]}"}

    def _send_error_status(self, status: int, message: str, retry_after: str | None = None,
                           mtype: str = PROTOBUF):
        body, ctype = rpc_status_body(status, message, mtype)
        extra = {"Retry-After": retry_after} if retry_after is not None else {}
        self._send(status, body, ctype, extra)

    def _send_json(self, status: int, obj):
        self._send(status, json.dumps(obj).encode(), JSON)

    def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None):
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True


# ---------------------------------------------------------------------------
# The receiver

class Receiver:
    def __init__(self, args):
        self.verbose = args.verbose
        self.strict = not args.lenient
        self.max_body_bytes = args.max_body_bytes
        self.hang_max_s = args.hang_max_s
        self.tls = None
        self.tls_failures: list[str] = []
        if args.tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(args.tls_cert, args.tls_key)
            if args.tls_client_ca:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(args.tls_client_ca)
            self.tls = ctx
        self.modes = ModeState()
        self.records = RecordLog(args.record)
        self.counts = OutcomeCounts()
        self.stopping = threading.Event()
        # Serialises mode changes with listener open/close, so `refuse` and its undo cannot interleave.
        self._control_lock = threading.Lock()
        self.traces = TraceListener(self, args.host, args.port)
        self.control = TrackingServer((args.host, args.control_port), self, serves_traces=False)
        threading.Thread(target=self.control.serve_forever, kwargs={"poll_interval": 0.05},
                         name="control", daemon=True).start()
        initial = {"mode": args.mode, "count": args.count, "retry_after": args.retry_after,
                   "delay_s": args.delay_s, "for_s": args.for_s}
        self.apply_control({k: v for k, v in initial.items() if v is not None})

    # -- control -----------------------------------------------------------

    def apply_control(self, payload, keep: socket.socket | None = None) -> dict:
        if not isinstance(payload, dict):
            raise ValueError("control body must be a JSON object")
        unknown = set(payload) - {"mode", "count", "retry_after", "delay_s", "for_s"}
        if unknown:
            raise ValueError(f"unknown control keys {sorted(unknown)}")
        if "mode" not in payload:
            raise ValueError("control body needs a mode")
        behaviour = parse_behaviour(payload["mode"], payload.get("retry_after"), payload.get("delay_s"))
        count = payload.get("count")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise ValueError("count must be an integer >= 1")
        if count is not None and behaviour.kind == "refuse":
            raise ValueError("count cannot apply to refuse (refused connections never reach the "
                             "receiver); use for_s or a later control call")
        for_s = payload.get("for_s")
        if for_s is not None and (isinstance(for_s, bool) or not isinstance(for_s, (int, float))
                                  or for_s <= 0):
            raise ValueError("for_s must be a number > 0")
        with self._control_lock:
            generation = self.modes.set(behaviour, count)
            if behaviour.kind == "refuse":
                self.traces.close(keep=keep)
                self.counts.add("refuse_periods")
            else:
                self.traces.open()
            if for_s is not None:
                timer = threading.Timer(for_s, self._expire, args=(generation,))
                timer.daemon = True
                timer.start()
            return self._state_locked()

    def _expire(self, generation: int):
        with self._control_lock:
            if self.modes.reset_if(generation):
                self.traces.open()

    def _state_locked(self) -> dict:
        return {**self.modes.snapshot(), "listening": self.traces.listening,
                "port": self.traces.port, "control_port": self.control.server_address[1]}

    def state(self) -> dict:
        with self._control_lock:
            return self._state_locked()

    def stats(self) -> dict:
        return {"state": self.state(), "open_trace_connections": self.traces.open_connections(),
                **self.counts.snapshot()}

    # -- outcomes ----------------------------------------------------------

    def accept(self, meta: dict, spans: list[dict], partial=None):
        line = {**meta, "spans": spans}
        if partial is not None:
            ps, dropped = partial
            line["partial_success"] = {"rejected_spans": ps.rejected_spans,
                                       "error_message": ps.error_message}
            line["partial_rejected"] = dropped
            self.counts.add("partial", delivered=len(spans), partial_rejected=len(dropped))
        else:
            self.counts.add("accepted", delivered=len(spans))
        self.records.write(line)

    def reject(self, meta: dict, reason: str, status: int):
        self.counts.add(f"rejected:{status}")
        self.records.write({"rejected": reason, "status": status, **meta})

    def refuse_line(self, meta: dict, outcome: str, status: int | None, spans, **extra):
        self.counts.add(f"refused:{outcome}", refused=len(spans or ()))
        line = {"refused": outcome, "status": status, **meta, **extra}
        if spans is not None:
            line["spans"] = spans
        self.records.write(line)

    # -- life --------------------------------------------------------------

    def request_stop(self):
        self.stopping.set()

    def close(self):
        self.stopping.set()
        with self._control_lock:
            self.traces.close()
        self.traces.cut_all()
        self.control.shutdown()
        self.control.server_close()
        self.control.cut_connections()
        self.records.close()


def write_port_file(path: str | None, port: int):
    if not path:
        return
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="trace port (0: any free port)")
    p.add_argument("--port-file", help="write the trace port here")
    p.add_argument("--control-port", type=int, default=0)
    p.add_argument("--control-port-file", help="write the always-on control port here")
    p.add_argument("--record", help="append one JSON line per outcome to this file")
    p.add_argument("--mode", default="ok", help="initial mode (see the module doc)")
    p.add_argument("--count", type=int, help="apply the initial mode to this many requests")
    p.add_argument("--retry-after", help="Retry-After value for status modes")
    p.add_argument("--delay-s", type=float, help="delay before answering")
    p.add_argument("--for-s", type=float, help="return to ok after this many seconds")
    p.add_argument("--lenient", action="store_true",
                   help="accept unknown fields and ids of the wrong length")
    p.add_argument("--max-body-bytes", type=int, default=64 << 20)
    p.add_argument("--hang-max-s", type=float, default=600.0,
                   help="a hung request is released after this long even if the client stays")
    p.add_argument("--verbose", action="store_true", help="log each request to stderr")
    p.add_argument("--tls-cert", help="serve traces over HTTPS with this PEM certificate")
    p.add_argument("--tls-key", help="the certificate's PEM private key")
    p.add_argument("--tls-client-ca", help="require client certificates signed by this PEM CA")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        receiver = Receiver(args)
    except ValueError as e:
        print(f"otlp_receiver: {e}", file=sys.stderr)
        return 2
    stop = receiver.stopping
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    port, control_port = receiver.traces.port, receiver.control.server_address[1]
    write_port_file(args.port_file, port)
    write_port_file(args.control_port_file, control_port)
    print(f"PORT {port}\nCONTROL_PORT {control_port}", flush=True)
    while not stop.wait(0.2):
        pass
    receiver.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
