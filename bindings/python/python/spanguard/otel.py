"""The OpenTelemetry bridge: spans made through an application's own
OpenTelemetry SDK (and every instrumentation on it: OpenLLMetry,
OpenInference, opentelemetry-instrumentation-openai-v2, ...) recorded and
delivered by spanguard.

    from opentelemetry.sdk.trace import TracerProvider
    from spanguard.otel import SpanguardSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SpanguardSpanProcessor(spanguard.Tracer()))

`on_start` begins a spanguard span with the OpenTelemetry span's own trace
id, span id, parent, trace flags, tracestate, start time, kind, name,
instrumentation scope, attributes and links, so what the SDK propagates
downstream names spans spanguard exports, and a process killed in the
middle of a call still delivers the open span (marked
`spanguard.interrupted`). `on_end` adds what came later (attributes,
events, links, status, a new name) and ends it at the OpenTelemetry end
time. Attribute values keep their types: arrays (tuples) stay arrays,
bytes stay bytes. Links keep their tracestate, and what the SDK's span
limits dropped is counted on the span (its dropped attribute, event and
link counts; an event's or a link's own dropped count is not carried).
The provider's span limits (`span_limits`, or the OTEL_*_LIMIT variables
the SDK reads) are the ones that apply: the spanguard tracer's own count
and value length limits are not applied on top (they still apply to its
own spans), so what the SDK kept arrives whole, up to spanguard's bounds
(32767 attributes, events or links a span; values to its payload pool).
Unsampled spans are left out, as the SDK's BatchSpanProcessor leaves them.
The spans carry spanguard's resource (service.name from the spanguard
tracer or OTEL_SERVICE_NAME), not the provider's.

The processor sets no global provider. `force_flush` and `shutdown` are
the tracer's; the provider's shutdown shuts the tracer down.
"""

from __future__ import annotations

import logging
import threading

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanContext, SpanKind, StatusCode

from . import Span as _SpanguardSpan
from . import SpanguardError, Tracer

__all__ = ["SpanguardSpanProcessor"]

_logger = logging.getLogger("spanguard")

# OpenTelemetry's SpanKind counts from INTERNAL = 0; OTLP (and spanguard)
# from UNSPECIFIED = 0.
_KIND = {kind: kind.value + 1 for kind in SpanKind}
_STATUS = {StatusCode.UNSET: 0, StatusCode.OK: 1, StatusCode.ERROR: 2}
# SPANGUARD_RESULT_SHUT_DOWN: the tracer was shut down or closed.
_SHUT_DOWN = 5
_MISSING = object()


def _traceparent(ctx: SpanContext) -> str:
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags) & 0xff:02x}"


def _link(sg: _SpanguardSpan, link) -> None:
    state = link.context.trace_state
    sg.add_link(_traceparent(link.context), link.attributes, tracestate=state.to_header() if state else None)


class _Open:
    """A span begun at on_start: what on_end must not send twice."""

    __slots__ = ("span", "name", "attributes", "events", "links")

    def __init__(self, span: _SpanguardSpan, name: str, attributes: dict, events: int, links: int):
        self.span, self.name = span, name
        self.attributes, self.events, self.links = attributes, events, links


class SpanguardSpanProcessor(SpanProcessor):
    """A SpanProcessor that records every sampled span in spanguard as it
    starts and completes it as it ends. Thread-safe; never raises into the
    SDK (a failure is logged once through logger "spanguard")."""

    def __init__(self, tracer: Tracer):
        if not isinstance(tracer, Tracer):
            raise TypeError("SpanguardSpanProcessor needs a spanguard.Tracer")
        self._tracer = tracer
        self._resource = None  # the provider's resource last passed on
        self._open: dict[tuple[int, int], _Open] = {}
        self._failed_once = False
        self._lock = threading.Lock()

    # -- SpanProcessor --------------------------------------------------------

    def on_start(self, span, parent_context=None) -> None:
        ctx = span.get_span_context()
        if not ctx.trace_flags.sampled:
            return
        resource = getattr(span, "resource", None)
        if resource is not None and resource is not self._resource:
            # The provider's resource, once (an identity check a span):
            # spans arrive under its service.name and attributes, as with
            # the SDK's own exporter.
            self._resource = resource
            try:
                self._tracer.set_resource(dict(resource.attributes))
            except Exception as e:  # noqa: BLE001 - a processor must not throw into the SDK
                self._failed("on_start", e)
        try:
            opened = self._begin(span, ctx)
        except Exception as e:  # noqa: BLE001 - a processor must not throw into the SDK
            self._failed("on_start", e)
            return
        self._open[(ctx.trace_id, ctx.span_id)] = opened

    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.get_span_context()
        if not ctx.trace_flags.sampled:
            return
        try:
            opened = self._open.pop((ctx.trace_id, ctx.span_id), None)
            if opened is None:  # began before this processor was added
                opened = self._begin(span, ctx)
            self._complete(span, opened)
        except Exception as e:  # noqa: BLE001 - a processor must not throw into the SDK
            self._failed("on_end", e)

    def shutdown(self) -> None:
        try:
            self._tracer.shutdown()
        except SpanguardError:
            pass  # closed already: shut down, as asked

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        # After the tracer closed, False rather than an exception: a
        # processor reports a failed flush, never raises into the SDK.
        try:
            return self._tracer.flush(timeout_millis / 1000)
        except SpanguardError:
            return False

    # -- the work -------------------------------------------------------------

    def _begin(self, span, ctx: SpanContext) -> _Open:
        parent = span.parent
        scope = getattr(span, "instrumentation_scope", None) or getattr(span, "instrumentation_info", None)
        attributes = dict(span.attributes or {})
        trace_state = ctx.trace_state.to_header() if ctx.trace_state else None
        sg = self._tracer.start_span_with_ids(
            span.name,
            _KIND.get(span.kind, 1),
            ctx.trace_id,
            ctx.span_id,
            parent.span_id if parent is not None else None,
            int(ctx.trace_flags),
            parent_is_remote=bool(parent is not None and parent.is_remote),
            tracestate=trace_state or None,
            start_time=span.start_time,
            scope_name=scope.name if scope is not None else None,
            scope_version=(scope.version or None) if scope is not None else None,
            attributes=attributes,
            scope_schema_url=(getattr(scope, "schema_url", None) or None) if scope is not None else None,
            # The SDK's span limits applied (its user's); spanguard's own
            # would cut what it kept (128 of the 1000 attributes allowed).
            limited_by_caller=True,
        )
        links = span.links or ()
        for link in links:
            _link(sg, link)
        events = span.events or ()
        for event in events:
            sg.add_event(event.name, event.attributes, event.timestamp)
        return _Open(sg, span.name, attributes, len(events), len(links))

    def _complete(self, span: ReadableSpan, opened: _Open) -> None:
        sg, before = opened.span, opened.attributes
        if span.name != opened.name:  # renamed with update_name
            sg.update_name(span.name)
        kept = span.attributes or {}
        later = {k: v for k, v in kept.items() if before.get(k, _MISSING) is not v}
        # The SDK drops its oldest attribute for a new one past its limit
        # (BoundedAttributes), also one the bridge passed on at the start,
        # which spanguard cannot unset. So no more new keys go on than the
        # SDK kept in all (the first ones set): the span then holds as many
        # attributes as the SDK's, each one the SDK was given.
        new = [k for k in later if k not in before]
        room = max(0, len(kept) - len(before))
        if len(new) > room:
            left_out = set(new[room:])
            later = {k: v for k, v in later.items() if k not in left_out}
        if later:
            sg.set_attributes(later)
        for event in tuple(span.events or ())[opened.events:]:
            sg.add_event(event.name, event.attributes, event.timestamp)
        for link in tuple(span.links or ())[opened.links:]:
            _link(sg, link)
        # What the SDK's own limits left out. Attributes: every key the SDK
        # was given is held by spanguard or counted, once: what the SDK
        # kept and dropped, less what spanguard holds (counting the SDK's
        # figure whole counted twice a key it evicted after the start).
        held = len(before) + min(len(new), room)
        unseen = max(0, len(kept) + span.dropped_attributes - held)
        dropped = (unseen, span.dropped_events, span.dropped_links)
        if any(dropped):
            sg.add_dropped_counts(*dropped)
        status = span.status
        if status is not None and status.status_code is not StatusCode.UNSET:
            sg.set_status(_STATUS[status.status_code], status.description or "")
        sg.end(span.end_time)

    def _failed(self, where: str, error: Exception) -> None:
        if isinstance(error, SpanguardError) and getattr(error, "code", None) == _SHUT_DOWN:
            return  # a call after shutdown is ignored, as the specification asks, not reported
        with self._lock:
            if self._failed_once:
                return
            self._failed_once = True
        _logger.warning("spanguard: the OpenTelemetry bridge failed in %s; that span is incomplete", where,
                        exc_info=True)
