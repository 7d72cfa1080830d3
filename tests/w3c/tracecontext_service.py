"""A W3C Trace Context test service on top of libspanguard's C ABI.

It behaves as the W3C test harness (github.com/w3c/trace-context, test/)
asks of a service: a POST carries a JSON list of `{"url": ..., "arguments":
[...]}`; for each, the service makes an outgoing POST to `url` with
`arguments` as its body and the trace context of its own client span in the
`traceparent` and `tracestate` headers. The incoming request's headers
become the parent of the service's server span, as an HTTP framework would
hand them over: header names are case-insensitive, several `tracestate`
headers are joined with `,` (RFC 9110), and several `traceparent` headers
make the context invalid.

All the Trace Context rules live in the library (spanguard_span_begin_ex,
spanguard_span_traceparent, spanguard_span_tracestate); this file only moves
headers. It talks to the C ABI with ctypes directly, so it judges the
library, not a binding.

    python tracecontext_service.py PORT      # serves until killed
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RESULT_OK = 0
RESULT_INVALID_TRACEPARENT = 10
RESULT_TRUNCATED = 15
RESULT_NON_RECORDING = 18
KIND_SERVER, KIND_CLIENT = 2, 3
TRACEPARENT_SIZE = 56
MAX_TRACESTATE = 512


class _SpanOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32), ("kind", ctypes.c_uint32),
        ("name", ctypes.c_char_p), ("name_len", ctypes.c_size_t),
        ("parent", ctypes.c_uint64),
        ("traceparent", ctypes.c_char_p), ("traceparent_len", ctypes.c_size_t),
        ("tracestate", ctypes.c_char_p), ("tracestate_len", ctypes.c_size_t),
        ("trace_id", ctypes.c_void_p), ("span_id", ctypes.c_void_p), ("parent_span_id", ctypes.c_void_p),
        ("trace_flags", ctypes.c_uint32), ("flags", ctypes.c_uint32),
        ("start_time_unix_ns", ctypes.c_uint64),
        ("scope_name", ctypes.c_char_p), ("scope_name_len", ctypes.c_size_t),
        ("scope_version", ctypes.c_char_p), ("scope_version_len", ctypes.c_size_t),
        ("attributes", ctypes.c_void_p), ("attribute_count", ctypes.c_size_t),
    ]


class Library:
    """The few C calls the service needs."""

    def __init__(self, path: str):
        lib = ctypes.CDLL(path)
        u32, u64, vp = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_void_p
        sigs = {
            "spanguard_tracer_new_from_env": ([vp, ctypes.POINTER(vp)], u32),
            "spanguard_span_options_init": ([ctypes.POINTER(_SpanOptions)], u32),
            "spanguard_span_begin_ex": ([vp, ctypes.POINTER(_SpanOptions), ctypes.POINTER(u64)], u32),
            "spanguard_span_traceparent": ([u64, ctypes.c_char_p, ctypes.c_size_t], u32),
            "spanguard_span_tracestate": ([u64, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)], u32),
            "spanguard_span_end": ([u64], u32),
            "spanguard_shutdown": ([vp, u32], u32),
            "spanguard_tracer_free": ([vp], None),
            "spanguard_result_is_ok": ([u32], ctypes.c_bool),
        }
        for name, (args, res) in sigs.items():
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = args, res
        self.c = lib


class TraceContextService:
    """One tracer (made from the environment) and an HTTP server on
    127.0.0.1:`port` (0: any free port)."""

    def __init__(self, lib: Library, port: int = 0):
        self.lib = lib
        self.tracer = ctypes.c_void_p()
        rc = lib.c.spanguard_tracer_new_from_env(None, ctypes.byref(self.tracer))
        if rc != RESULT_OK:
            raise RuntimeError(f"spanguard_tracer_new_from_env: {rc}")
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                service.handle(self.headers, json.loads(body or b"[]"))
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.http = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.http.daemon_threads = True
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}/test"

    def start(self) -> "TraceContextService":
        self.thread.start()
        return self

    def close(self):
        self.http.shutdown()
        self.http.server_close()
        self.lib.c.spanguard_shutdown(self.tracer, 5000)
        self.lib.c.spanguard_tracer_free(self.tracer)

    def _begin(self, name: bytes, kind: int, parent: int = 0,
               traceparent: bytes | None = None, tracestate: bytes | None = None) -> tuple[int, int]:
        o = _SpanOptions()
        self.lib.c.spanguard_span_options_init(ctypes.byref(o))
        o.name, o.name_len, o.kind, o.parent = name, len(name), kind, parent
        if traceparent is not None:
            o.traceparent, o.traceparent_len = traceparent, len(traceparent)
        if tracestate is not None:
            o.tracestate, o.tracestate_len = tracestate, len(tracestate)
        span = ctypes.c_uint64()
        rc = self.lib.c.spanguard_span_begin_ex(self.tracer, ctypes.byref(o), ctypes.byref(span))
        return rc, span.value

    def outgoing_headers(self, span: int) -> dict[str, str]:
        """The context a span sends downstream (nothing when it has none)."""
        headers = {}
        tp = ctypes.create_string_buffer(TRACEPARENT_SIZE)
        if self.lib.c.spanguard_span_traceparent(span, tp, TRACEPARENT_SIZE) == RESULT_OK:
            headers["traceparent"] = tp.value.decode()
            ts = ctypes.create_string_buffer(MAX_TRACESTATE + 1)
            n = ctypes.c_size_t()
            rc = self.lib.c.spanguard_span_tracestate(span, ts, MAX_TRACESTATE + 1, ctypes.byref(n))
            if rc == RESULT_OK and n.value:
                headers["tracestate"] = ts.value.decode()
        return headers

    def handle(self, incoming, calls: list):
        traceparents = incoming.get_all("traceparent") or []
        tracestates = incoming.get_all("tracestate") or []
        server = 0
        if len(traceparents) == 1:
            rc, server = self._begin(b"POST /test", KIND_SERVER, traceparent=traceparents[0].encode(),
                                     tracestate=",".join(tracestates).encode())
            if not self.lib.c.spanguard_result_is_ok(rc):
                server = 0
        if not server:
            # No usable parent: a new trace, and the tracestate of the one
            # that could not be continued is dropped, as the spec advises.
            _, server = self._begin(b"POST /test", KIND_SERVER)
        for call in calls:
            _, client = self._begin(b"POST", KIND_CLIENT, parent=server)
            request = urllib.request.Request(
                call["url"], data=json.dumps(call.get("arguments", [])).encode(), method="POST",
                headers={"content-type": "application/json", **self.outgoing_headers(client)})
            try:
                urllib.request.urlopen(request, timeout=60).read()
            finally:
                self.lib.c.spanguard_span_end(client)
        self.lib.c.spanguard_span_end(server)


def main():
    lib = Library(os.environ["SPANGUARD_LIB"])
    service = TraceContextService(lib, int(sys.argv[1]) if len(sys.argv) > 1 else 0).start()
    print(service.url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
