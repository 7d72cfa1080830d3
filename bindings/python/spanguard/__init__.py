"""spanguard for Python: crash-proof span export through ctypes (no
compiler needed).

    import spanguard
    tracer = spanguard.Tracer(service_name="my-agent")
    with tracer.span("agent.session") as session:
        with tracer.span("llm.chat", kind=spanguard.KIND_CLIENT) as llm:
            llm.set_attribute("gen_ai.request.model", "gpt-4o")

The library is found through the SPANGUARD_LIB environment variable, else
build/lib/libspanguard.so of the source tree this package sits in, else the
system loader's search path (libspanguard.so.0). A thin skin: all logic is in
the C library.
"""

from __future__ import annotations

import atexit
import contextvars
import ctypes
import functools
import os
import sys
import threading
from dataclasses import dataclass, fields
from pathlib import Path

__all__ = [
    "Tracer", "Span", "SpanguardError", "Stats", "load_library",
    "KIND_UNSPECIFIED", "KIND_INTERNAL", "KIND_SERVER", "KIND_CLIENT", "KIND_PRODUCER", "KIND_CONSUMER",
    "STATUS_UNSET", "STATUS_OK", "STATUS_ERROR",
]

KIND_UNSPECIFIED, KIND_INTERNAL, KIND_SERVER, KIND_CLIENT, KIND_PRODUCER, KIND_CONSUMER = range(6)
STATUS_UNSET, STATUS_OK, STATUS_ERROR = range(3)
_VALUE_STRING, _VALUE_INT, _VALUE_DOUBLE, _VALUE_BOOL = 1, 2, 3, 4
_SPAN_NONE = 0
_TRACEPARENT_SIZE = 56
_RESULT_STALE_SPAN = 3
_RESULT_SHUT_DOWN = 5
_RESULT_TIMEOUT = 8
_RESULT_BUFFER_TOO_SMALL = 9


class SpanguardError(Exception):
    """A spanguard call failed; `code` is the spanguard_result."""

    def __init__(self, code: int, what: str, detail: str = ""):
        self.code = code
        message = _lib().spanguard_strerror(code).decode() if _LIB else f"code {code}"
        # detail: the library's own sentence, e.g. which variable was wrong.
        super().__init__(f"{what}: {message} (spanguard_result {code})" + (f": {detail}" if detail else ""))


class _Config(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32), ("protocol", ctypes.c_uint32), ("compression", ctypes.c_uint32),
        ("full_policy", ctypes.c_uint32), ("service_name", ctypes.c_char_p),
        ("resource_attributes", ctypes.c_char_p), ("endpoint", ctypes.c_char_p), ("headers", ctypes.c_char_p),
        ("sink_dir", ctypes.c_char_p), ("spool_dir", ctypes.c_char_p), ("request_timeout_ms", ctypes.c_uint32),
        ("schedule_delay_ms", ctypes.c_uint32), ("max_queue_size", ctypes.c_uint32),
        ("max_export_batch_size", ctypes.c_uint32), ("export_timeout_ms", ctypes.c_uint32),
        ("max_open_spans", ctypes.c_uint32), ("full_wait_ms", ctypes.c_uint32),
        ("install_signal_handlers", ctypes.c_uint32), ("flight_recorder", ctypes.c_uint32),
        ("spool_max_mib", ctypes.c_uint32), ("signal_flush_timeout_ms", ctypes.c_uint32),
        ("exporter_max_cpu_percent", ctypes.c_uint32),
    ]


class _Attribute(ctypes.Structure):
    _fields_ = [
        ("key", ctypes.c_char_p), ("key_len", ctypes.c_size_t), ("type_", ctypes.c_uint32),
        ("bool_value", ctypes.c_bool), ("int_value", ctypes.c_int64), ("double_value", ctypes.c_double),
        ("string_value", ctypes.c_char_p), ("string_len", ctypes.c_size_t),
    ]


@dataclass(frozen=True)
class Stats:
    """spanguard_counters, field for field."""

    spans_begun: int = 0
    spans_ended: int = 0
    spans_exported: int = 0
    queue_depth: int = 0
    spans_open: int = 0
    dropped_buffer_full: int = 0
    dropped_export_failed: int = 0
    dropped_rejected: int = 0
    dropped_spool_overflow: int = 0
    spans_unended_at_shutdown: int = 0
    batches_sent: int = 0
    batches_failed: int = 0
    bytes_sent: int = 0
    retries: int = 0
    attributes_dropped: int = 0
    events_dropped: int = 0
    links_dropped: int = 0
    values_truncated: int = 0
    utf8_replaced: int = 0
    spooled_batches: int = 0
    spooled_spans: int = 0
    replayed_batches: int = 0
    replayed_spans: int = 0
    spool_bytes: int = 0
    recovered_spans: int = 0


class _Counters(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("_reserved", ctypes.c_uint32)] + [
        (f.name, ctypes.c_uint64) for f in fields(Stats)]


_LIB = None
_LIB_LOCK = threading.Lock()


def _candidates():
    if os.environ.get("SPANGUARD_LIB"):
        return [os.environ["SPANGUARD_LIB"]]
    tree = Path(__file__).resolve().parents[3] / "build" / "lib" / "libspanguard.so"
    return [str(tree), "libspanguard.so.0", "libspanguard.so"]


def load_library(path: str | None = None):
    """Loads libspanguard (once) and declares every function's types."""
    global _LIB
    with _LIB_LOCK:
        if _LIB is not None and path is None:
            return _LIB
        errors = []
        lib = None
        for candidate in ([path] if path else _candidates()):
            try:
                lib = ctypes.CDLL(candidate)
                break
            except OSError as e:
                errors.append(f"{candidate}: {e}")
        if lib is None:
            raise ImportError(
                "spanguard: cannot load libspanguard. Set SPANGUARD_LIB to the path of libspanguard.so "
                "(run `make build` in the spanguard tree for build/lib/libspanguard.so). Tried: "
                + "; ".join(errors))
        u32, u64, sz, p = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_size_t, ctypes.c_void_p
        cs = ctypes.c_char_p
        sigs = {
            "spanguard_version": ([], cs),
            "spanguard_strerror": ([u32], cs),
            "spanguard_result_is_ok": ([u32], ctypes.c_bool),
            "spanguard_config_init": ([ctypes.POINTER(_Config), ctypes.c_size_t], u32),
            "spanguard_tracer_new": ([ctypes.POINTER(_Config), ctypes.POINTER(p)], u32),
            "spanguard_tracer_new_from_env": ([ctypes.POINTER(_Config), ctypes.POINTER(p)], u32),
            "spanguard_tracer_new_with_error": (
                [ctypes.POINTER(_Config), ctypes.c_bool, ctypes.POINTER(p), ctypes.c_char_p, sz,
                 ctypes.POINTER(sz)], u32),
            "spanguard_tracer_free": ([p], None),
            "spanguard_flush": ([p, u32], u32),
            "spanguard_shutdown": ([p, u32], u32),
            "spanguard_stats": ([p, ctypes.POINTER(_Counters)], u32),
            "spanguard_span_begin": ([p, cs, sz, u64, u32, ctypes.POINTER(u64)], u32),
            "spanguard_span_begin_remote": ([p, cs, sz, cs, sz, u32, ctypes.POINTER(u64)], u32),
            "spanguard_span_traceparent": ([u64, ctypes.c_char_p, sz], u32),
            "spanguard_span_set_string": ([u64, cs, sz, cs, sz], u32),
            "spanguard_span_set_int": ([u64, cs, sz, ctypes.c_int64], u32),
            "spanguard_span_set_double": ([u64, cs, sz, ctypes.c_double], u32),
            "spanguard_span_set_bool": ([u64, cs, sz, ctypes.c_bool], u32),
            "spanguard_span_add_event": ([u64, cs, sz, u64, ctypes.POINTER(_Attribute), sz], u32),
            "spanguard_span_add_link": ([u64, cs, sz, ctypes.POINTER(_Attribute), sz], u32),
            "spanguard_span_set_status": ([u64, u32, cs, sz], u32),
            "spanguard_span_end": ([u64], u32),
            "spanguard_tracer_sink_path": ([p, ctypes.c_char_p, sz, ctypes.POINTER(sz)], u32),
        }
        for name, (args, res) in sigs.items():
            fn = getattr(lib, name)
            fn.argtypes = args
            fn.restype = res
        _LIB = lib
        return lib


def _lib():
    return _LIB if _LIB is not None else load_library()


# The codes that mean success (OK and the notices TRUNCATED, UTF8_REPLACED,
# PARENT_STALE, NON_RECORDING): spanguard_result_is_ok in Python, so that a
# check is not a second ctypes call per call (a test compares the two).
_OK_CODES = frozenset((0, 15, 16, 17, 18))


def _check(code: int, what: str) -> int:
    if code not in _OK_CODES:
        raise SpanguardError(code, what)
    return code


def _utf8(text) -> bytes:
    if isinstance(text, bytes):
        return text
    # Lone surrogates cannot be UTF-8; the library replaces what is invalid.
    return str(text).encode("utf-8", "surrogatepass")


def _attribute(key, value) -> _Attribute:
    a = _Attribute()
    k = _utf8(key)
    a.key, a.key_len = k, len(k)
    if isinstance(value, bool):  # before int: bool is an int in Python
        a.type_, a.bool_value = _VALUE_BOOL, value
    elif isinstance(value, int):
        a.type_, a.int_value = _VALUE_INT, value
    elif isinstance(value, float):
        a.type_, a.double_value = _VALUE_DOUBLE, value
    else:
        v = _utf8(value)
        a.type_, a.string_value, a.string_len = _VALUE_STRING, v, len(v)
    return a


def _attributes(attrs: dict | None):
    items = [_attribute(k, v) for k, v in (attrs or {}).items()]
    array = (_Attribute * len(items))(*items) if items else None
    return array, len(items)


class Span:
    """A span. Ends once: by `end()`, or by leaving its `with` block."""

    __slots__ = ("handle", "name", "_ended")

    def __init__(self, handle: int, name: str):
        self.handle = handle
        self.name = name
        self._ended = False

    @property
    def recording(self) -> bool:
        return self.handle != _SPAN_NONE

    def set_attribute(self, key: str, value) -> "Span":
        k = _utf8(key)
        lib = _lib()
        if isinstance(value, bool):
            code = lib.spanguard_span_set_bool(self.handle, k, len(k), value)
        elif isinstance(value, int):
            code = lib.spanguard_span_set_int(self.handle, k, len(k), value)
        elif isinstance(value, float):
            code = lib.spanguard_span_set_double(self.handle, k, len(k), value)
        else:
            v = _utf8(value)
            code = lib.spanguard_span_set_string(self.handle, k, len(k), v, len(v))
        _check(code, f"set_attribute({key!r})")
        return self

    def set_attributes(self, attrs: dict) -> "Span":
        for k, v in attrs.items():
            self.set_attribute(k, v)
        return self

    def add_event(self, name: str, attributes: dict | None = None, time_unix_ns: int = 0) -> "Span":
        n = _utf8(name)
        array, count = _attributes(attributes)
        _check(_lib().spanguard_span_add_event(self.handle, n, len(n), time_unix_ns, array, count),
               f"add_event({name!r})")
        return self

    def add_link(self, traceparent: str, attributes: dict | None = None) -> "Span":
        tp = _utf8(traceparent)
        array, count = _attributes(attributes)
        _check(_lib().spanguard_span_add_link(self.handle, tp, len(tp), array, count), "add_link")
        return self

    def set_status(self, code: int, message: str = "") -> "Span":
        m = _utf8(message)
        _check(_lib().spanguard_span_set_status(self.handle, code, m, len(m)), "set_status")
        return self

    def record_exception(self, exc: BaseException) -> "Span":
        self.add_event("exception", {"exception.type": type(exc).__name__, "exception.message": str(exc)})
        return self.set_status(STATUS_ERROR, str(exc) or type(exc).__name__)

    def traceparent(self) -> str:
        """The W3C traceparent to pass to another process."""
        buf = ctypes.create_string_buffer(_TRACEPARENT_SIZE)
        _check(_lib().spanguard_span_traceparent(self.handle, buf, _TRACEPARENT_SIZE), "traceparent")
        return buf.value.decode()

    def end(self) -> None:
        if self._ended:
            return
        self._ended = True
        code = _lib().spanguard_span_end(self.handle)
        # A span the shutdown already exported (marked unended) is fine.
        if code != _RESULT_SHUT_DOWN:
            _check(code, f"end({self.name!r})")

    def __repr__(self):
        return f"Span({self.name!r}, handle={self.handle:#x})"


_CURRENT: contextvars.ContextVar[Span | None] = contextvars.ContextVar("spanguard_current_span", default=None)


def current_span() -> Span | None:
    """The span of the innermost `with tracer.span(...)` in this context."""
    return _CURRENT.get()


class _SpanScope:
    def __init__(self, tracer, name, kind, parent, attributes, traceparent):
        self._args = (tracer, name, kind, parent, attributes, traceparent)
        self._span = None
        self._token = None

    def __enter__(self) -> Span:
        tracer, name, kind, parent, attributes, traceparent = self._args
        self._span = tracer.start_span(name, kind=kind, parent=parent, attributes=attributes,
                                       traceparent=traceparent)
        self._token = _CURRENT.set(self._span)
        return self._span

    def __exit__(self, exc_type, exc, tb):
        _CURRENT.reset(self._token)
        if exc is not None and self._span.recording:
            try:
                self._span.record_exception(exc)
            except SpanguardError:
                pass  # never hide the application's exception behind ours
        try:
            self._span.end()
        except SpanguardError:
            if exc is None:
                raise
        return False


_LIVE_TRACERS: "set[Tracer]" = set()
_ATEXIT_ONCE = threading.Lock()
_atexit_registered = False


def _shutdown_all():
    for tracer in list(_LIVE_TRACERS):
        tracer.shutdown(timeout_s=5.0)


def _runtime_attributes() -> str:
    """process.runtime.* as OpenTelemetry's Python SDK reports them, in
    OTEL_RESOURCE_ATTRIBUTES syntax (',' and '%' percent-encoded)."""
    v = sys.implementation.version
    runtime = {
        "process.runtime.name": sys.implementation.name,
        "process.runtime.version": f"{v.major}.{v.minor}.{v.micro}",
        "process.runtime.description": sys.version.replace("\n", " "),
    }
    return ",".join(f"{k}={v.replace('%', '%25').replace(',', '%2C')}" for k, v in runtime.items())


class Tracer:
    """A spanguard tracer. Configuration by keyword (the spanguard_config
    fields: service_name, endpoint, headers, sink_dir, spool_dir, protocol,
    compression, schedule_delay_ms, ...); with from_env=True (the default)
    the OTEL_* and SPANGUARD_* variables apply on top. Shut down at
    interpreter exit if not before."""

    def __init__(self, from_env: bool = True, **settings):
        lib = _lib()
        cfg = _Config()
        _check(lib.spanguard_config_init(ctypes.byref(cfg), ctypes.sizeof(cfg)), "config_init")
        protocol = settings.pop("protocol", None)
        if protocol is not None:
            cfg.protocol = {"http/protobuf": 0, "http/json": 1}[protocol] if isinstance(protocol, str) else protocol
        compression = settings.pop("compression", None)
        if compression is not None:
            cfg.compression = {"none": 0, "gzip": 1}[compression] if isinstance(compression, str) else compression
        headers = settings.pop("headers", None)
        if isinstance(headers, dict):
            settings["headers"] = ",".join(f"{k}={v}" for k, v in headers.items())
        elif headers is not None:
            settings["headers"] = headers
        resource = settings.pop("resource_attributes", None)
        if isinstance(resource, dict):
            resource = ",".join(f"{k}={v}" for k, v in resource.items())
        # The runtime first, so that the caller's own attributes override it.
        settings["resource_attributes"] = ",".join(filter(None, [_runtime_attributes(), resource]))
        self._keep = []  # the C strings must outlive the call
        names = {f[0] for f in _Config._fields_}
        for key, value in settings.items():
            if key not in names or key == "struct_size":
                raise TypeError(f"unknown spanguard setting {key!r}")
            if isinstance(value, (str, os.PathLike)):
                value = os.fsencode(value)
                self._keep.append(value)
            elif isinstance(value, bool):
                value = int(value)
            setattr(cfg, key, value)
        handle = ctypes.c_void_p()
        message = ctypes.create_string_buffer(512)  # SPANGUARD_ERROR_MESSAGE_SIZE
        code = lib.spanguard_tracer_new_with_error(
            ctypes.byref(cfg), from_env, ctypes.byref(handle), message, len(message), None)
        if code != 0:
            raise SpanguardError(code, "tracer_new", message.value.decode("utf-8", "replace"))
        self._handle = handle
        self._closed = False
        _LIVE_TRACERS.add(self)
        global _atexit_registered
        with _ATEXIT_ONCE:
            if not _atexit_registered:
                atexit.register(_shutdown_all)
                _atexit_registered = True

    def _h(self):
        if self._closed:
            raise SpanguardError(_RESULT_SHUT_DOWN, "tracer is closed")
        return self._handle

    def start_span(self, name: str, kind: int = KIND_INTERNAL, parent: Span | None = None,
                   attributes: dict | None = None, traceparent: str | None = None) -> Span:
        """Starts a span; its parent is `parent`, else the W3C `traceparent`,
        else the current span of this context, else none (a new trace)."""
        lib = _lib()
        n = _utf8(name)
        out = ctypes.c_uint64()
        if parent is None and traceparent is None:
            parent = _CURRENT.get()
        if traceparent is not None and parent is None:
            tp = _utf8(traceparent)
            code = lib.spanguard_span_begin_remote(self._h(), n, len(n), tp, len(tp), kind, ctypes.byref(out))
        else:
            code = lib.spanguard_span_begin(self._h(), n, len(n), parent.handle if parent else _SPAN_NONE,
                                            kind, ctypes.byref(out))
        _check(code, f"span_begin({name!r})")
        span = Span(out.value, name)
        if attributes:
            span.set_attributes(attributes)
        return span

    def start_span_from_traceparent(self, name: str, traceparent: str, kind: int = KIND_SERVER,
                                    attributes: dict | None = None) -> Span:
        return self.start_span(name, kind=kind, attributes=attributes, traceparent=traceparent)

    def span(self, name: str, kind: int = KIND_INTERNAL, parent: Span | None = None,
             attributes: dict | None = None, traceparent: str | None = None) -> _SpanScope:
        """`with tracer.span(...) as span:` — the span is current inside the
        block; an exception sets status ERROR with an `exception` event and
        propagates."""
        return _SpanScope(self, name, kind, parent, attributes, traceparent)

    def traced(self, name: str | None = None, kind: int = KIND_INTERNAL):
        """Decorator: runs the function inside a span named after it."""
        def decorate(fn):
            span_name = name or fn.__qualname__

            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                with self.span(span_name, kind=kind):
                    return fn(*args, **kwargs)
            return wrapper
        return decorate

    def flush(self, timeout_s: float = 5.0) -> bool:
        """True when every span ended before the call was exported in time."""
        code = _lib().spanguard_flush(self._h(), int(timeout_s * 1000))
        if code == _RESULT_TIMEOUT:
            return False
        _check(code, "flush")
        return True

    def shutdown(self, timeout_s: float = 5.0) -> bool:
        """Flush, export open spans (marked unended), stop. Safe to call twice."""
        if self._closed:
            return True
        code = _lib().spanguard_shutdown(self._handle, int(timeout_s * 1000))
        if code == _RESULT_SHUT_DOWN:
            return True
        if code == _RESULT_TIMEOUT:
            return False
        _check(code, "shutdown")
        return True

    def close(self) -> None:
        """Shuts down (if needed) and frees the tracer. Safe to call twice."""
        if self._closed:
            return
        self.shutdown()
        self._closed = True
        _LIVE_TRACERS.discard(self)
        _lib().spanguard_tracer_free(self._handle)

    def sink_path(self) -> str:
        """The file the local sink appends to, where spans go with no endpoint; "" with one."""
        n = ctypes.c_size_t(0)
        code = _lib().spanguard_tracer_sink_path(self._h(), None, 0, ctypes.byref(n))
        if code != _RESULT_BUFFER_TOO_SMALL:
            _check(code, "sink_path")
        buf = ctypes.create_string_buffer(n.value + 1)
        _check(_lib().spanguard_tracer_sink_path(self._h(), buf, len(buf), ctypes.byref(n)), "sink_path")
        return buf.raw[:n.value].decode("utf-8", "surrogateescape")

    def stats(self) -> Stats:
        counters = _Counters()
        counters.struct_size = ctypes.sizeof(_Counters)
        _check(_lib().spanguard_stats(self._h(), ctypes.byref(counters)), "stats")
        return Stats(**{f.name: getattr(counters, f.name) for f in fields(Stats)})

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def version() -> str:
    return _lib().spanguard_version().decode()
