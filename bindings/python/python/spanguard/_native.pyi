"""Type stubs of the compiled extension (bindings/python/src)."""

import enum
from contextvars import ContextVar
from datetime import datetime
from types import TracebackType
from typing import Any, Callable, Literal, Mapping, Protocol

KIND_UNSPECIFIED: int
KIND_INTERNAL: int
KIND_SERVER: int
KIND_CLIENT: int
KIND_PRODUCER: int
KIND_CONSUMER: int
STATUS_UNSET: int
STATUS_OK: int
STATUS_ERROR: int
LIBRARY_VERSION: str
CURRENT_SPAN: ContextVar[Span | None]

AttributeValue = (
    str | bool | int | float | bytes | bytearray | memoryview
    | list[str] | list[bool] | list[int] | list[float]
    | tuple[str, ...] | tuple[bool, ...] | tuple[int, ...] | tuple[float, ...]
)
Attributes = Mapping[str, AttributeValue]
# Unix nanoseconds (OpenTelemetry's unit) as an int or a float, or a datetime;
# anything else is now, counted in values_rejected (never raised).
Time = int | float | datetime

# A span kind: KIND_* (OTLP's numbers, 0 to 5), its name (any case), or
# OpenTelemetry's opentelemetry.trace.SpanKind (an enum.Enum). Anything else
# raises TypeError (another type) or ValueError (out of range, unknown name).
SpanKindArg = (
    int
    | Literal["internal", "server", "client", "producer", "consumer"]
    | Literal["INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"]
    | enum.Enum
)

class _OtelStatus(Protocol):
    """OpenTelemetry's opentelemetry.trace.Status."""
    @property
    def status_code(self) -> enum.Enum: ...
    @property
    def description(self) -> str | None: ...

# A status: STATUS_* (0 to 2), its name (any case), OpenTelemetry's
# opentelemetry.trace.StatusCode (an enum.Enum) or Status.
StatusArg = (
    int | Literal["unset", "ok", "error"] | Literal["UNSET", "OK", "ERROR"] | enum.Enum | _OtelStatus
)

def strerror(code: int) -> str: ...
def span_kind(kind: SpanKindArg | None = None) -> int: ...
def run_command(args: list[bytes]) -> int: ...
def set_before_signal_flush(hook: Callable[[float], object] | None) -> None: ...
def reclaim_signal_from_default(signum: int) -> bool: ...
def settle_signals_at_exit() -> bool: ...
def _log_event_for_test(event: int, message: str) -> None: ...
def _green_looks() -> int: ...
def _queue_event_for_test(event: int, message: str) -> None: ...
def _take_events(most: int) -> tuple[list[tuple[int, str, int, str]], int]: ...
def _events_fd() -> int: ...
def _name_events_reader() -> None: ...
def _start_events_reader(start: Callable[..., object], function: Callable[..., object], args: tuple) -> None: ...

_EVENTS_QUEUE_CAPACITY: int

class SpanguardError(Exception):
    code: int

class Span:
    @property
    def handle(self) -> int: ...
    def is_recording(self) -> bool: ...
    def set_attribute(self, key: str, value: AttributeValue) -> None: ...
    def set_attributes(self, attributes: Attributes) -> None: ...
    def update_name(self, name: str) -> None: ...
    # True: the span holds it; False: refused, counted dropped on the span
    # (its limit, or a used-up payload pool); None: neither.
    # dropped_attributes: what another SDK already dropped of the event's
    # (or link's) attributes, exported with spanguard's own drops.
    def add_event(self, name: str, attributes: Attributes | None = None,
                  timestamp: Time | None = None, dropped_attributes: int = 0) -> bool | None: ...
    def add_link(self, traceparent: str, attributes: Attributes | None = None,
                 tracestate: str | None = None) -> bool | None: ...
    def add_link_ids(self, trace_id: int, span_id: int, trace_flags: int = 0,
                     attributes: Attributes | None = None, tracestate: str | None = None,
                     is_remote: bool | None = None, dropped_attributes: int = 0) -> bool | None: ...
    def add_dropped_counts(self, attributes: int = 0, events: int = 0, links: int = 0) -> None: ...
    def drop_oldest(self, events: int = 0, links: int = 0, counted: bool = True) -> None: ...
    def set_status(self, code: StatusArg, description: str | None = None) -> None: ...
    def record_exception(
        self,
        exception: BaseException,
        attributes: Mapping[str, object] | None = None,
        timestamp: Time | None = None,
        escaped: bool = False,
        *,
        set_status: bool = True,
    ) -> None: ...
    def traceparent(self) -> str: ...
    def tracestate(self) -> str: ...
    def end(self, end_time: Time | None = None) -> None: ...
    def _end_refused(self, end_time: Time | None = None) -> bool: ...
    def __enter__(self) -> Span: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> bool: ...

class Tracer:
    def __new__(cls, from_env: bool = True, **settings: Any) -> Tracer: ...
    def start_span(
        self,
        name: str,
        kind: SpanKindArg | None = None,
        parent: Span | None = None,
        attributes: Attributes | None = None,
        traceparent: str | None = None,
        tracestate: str | None = None,
        start_time: Time | None = None,
    ) -> Span: ...
    def start_span_with_ids(
        self,
        name: str,
        kind: int,
        trace_id: bytes | int,
        span_id: bytes | int,
        parent_span_id: bytes | int | None,
        trace_flags: int,
        parent_is_remote: bool = False,
        tracestate: str | None = None,
        start_time: Time | None = None,
        scope_name: str | None = None,
        scope_version: str | None = None,
        attributes: Attributes | None = None,
        scope_schema_url: str | None = None,
        limited_by_caller: bool = False,
    ) -> Span: ...
    def set_resource(self, attributes: Attributes) -> None: ...
    def set_scope_attributes(
        self,
        name: str,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes | None = None,
    ) -> None: ...
    def flush(self, timeout_s: float = 5.0) -> bool: ...
    def flush_status(self, timeout_s: float = 5.0) -> str: ...
    def shutdown(self, timeout_s: float = 5.0) -> bool: ...
    def shutdown_status(self, timeout_s: float = 5.0) -> str: ...
    def close(self) -> None: ...
    def sink_path(self) -> str: ...
    def endpoint(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def _counters(self) -> dict[str, int]: ...

class SdkSpanHooks:
    """spanguard.otel's SpanguardSpanProcessor's on_start and on_end for
    the common SDK span, one native call each (bindings/python/src/bridge.rs)."""

    def __init__(self, tracer: Tracer, open: dict, following: dict, open_class: type, watch_class: type,
                 on_collected: Callable[..., object], span_context: type, sdk_spans: tuple[type, ...],
                 kinds: list[tuple[object, int]], status_codes: tuple[object, object, object]) -> None: ...
    def start(self, span: object, resource: object, scope: tuple) -> bool: ...
    def end(self, span: object, shut_down: bool) -> int: ...
