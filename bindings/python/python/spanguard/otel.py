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
`spanguard.interrupted`). What the application sets on the span while it
is open (attributes, events, links, a new name, its status) is passed on
as it is set, so that span carries it too: on SIGTERM and SIGKILL no Python
code runs before the open spans are dumped. `on_end` adds anything that
came another way and ends it at the OpenTelemetry end time. Attribute
values keep their types: arrays (tuples) stay arrays, bytes stay bytes.
Links keep their tracestate and whether their context was remote (a link
with an invalid context is kept when it has attributes or a tracestate),
and what the SDK's span limits dropped is counted on the span (its dropped
attribute, event and link counts; an event's or a link's own dropped count
is not carried).
The provider's span limits (`span_limits`, or the OTEL_*_LIMIT variables
the SDK reads) are the ones that apply: the spanguard tracer's own count
and value length limits are not applied on top (they still apply to its
own spans), so what the SDK kept arrives whole, up to spanguard's bounds
(32767 attributes, events or links a span; values to its payload pool: an
event or link it has no room for is counted dropped, and costs none of the
others the SDK kept).
Unsampled spans are left out, as the SDK's BatchSpanProcessor leaves them.
A span garbage-collected open (a stream never read to its end) is ended
then, marked `spanguard.unended` as at shutdown: nothing else could end
it, and it would hold one of the tracer's slots for good.
The spans carry the provider's resource (its service.name and attributes
over the spanguard tracer's own, `Tracer.set_resource`), as the SDK's own
exporter would send them. A spanguard tracer sends one resource with each
batch: providers with different resources each need their own tracer
(given one, their spans go under the last resource passed on, and a
warning says so).

Instrumentations that send the prompt and the completion as events
through the Logs API (opentelemetry-instrumentation-openai-v2 with
`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=event_only`,
OpenLLMetry's `use_attributes=False`) reach spanguard through
`SpanguardLogRecordProcessor`, added to the LoggerProvider they are given
and given the span processor or the span exporter: it adds each event to
its span in spanguard, whole (with the exporter, once the span is exported).

The processor sets no global provider. `force_flush` and `shutdown` are
the tracer's; the provider's shutdown shuts the tracer down.

Where only a span exporter can be given (zero-code instrumentation,
`OTEL_TRACES_EXPORTER=spanguard opentelemetry-instrument python app.py`;
OpenLLMetry's `Traceloop.init(exporter=...)`), `SpanguardSpanExporter`
records each finished span whole, as the processor records one it never
saw start. It sees a span only once it has ended and left the SDK's span
processor: prefer the processor where it can be added, as it alone
delivers the spans open when the process is killed.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import weakref
import operator
from operator import is_

from opentelemetry import trace as _otel_trace
from opentelemetry.sdk import trace as _sdk_trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import SpanContext, SpanKind, StatusCode, TraceFlags

try:  # the SDK's Logs API is still under `_logs` (1.20 to 1.45 at least)
    from opentelemetry.sdk._logs import LogRecordProcessor as _LogRecordProcessor
except ImportError:  # pragma: no cover - an SDK without it: the processor still has the methods
    _LogRecordProcessor = object

from . import Span as _SpanguardSpan
from . import _BEFORE_SHUTDOWN_ALL, SpanguardError, Tracer, _native

__all__ = ["SpanguardSpanProcessor", "SpanguardLogRecordProcessor", "SpanguardSpanExporter",
           "flush_before_shutdown"]


# What getattr gives for a span of an SDK without instrumentation_scope.
_NO_SCOPE_ATTRIBUTE = object()
_logger = logging.getLogger("spanguard")


def _warn(message: str, *args, **kwargs) -> None:
    """Logs `message` at WARNING to the logger "spanguard". A handler's
    format names the logger (basicConfig's LEVEL:LOGGER:MESSAGE read
    `WARNING:spanguard:spanguard: ...` with the prefix in the message);
    with no handler set up, logging's last resort prints the message
    alone, and the prefix is what says who speaks."""
    if not _logger.hasHandlers():
        message = "spanguard: " + message
    _logger.warning(message, *args, **kwargs)


# OpenTelemetry's SpanKind counts from INTERNAL = 0; OTLP (and spanguard)
# from UNSPECIFIED = 0. Both maps are keyed by the member's id: an Enum
# member hashes in Python (Enum.__hash__), a cost on every span, and the
# members live as long as their enum.
_KIND = {id(kind): kind.value + 1 for kind in SpanKind}
_STATUS = {id(code): n for code, n in ((StatusCode.UNSET, 0), (StatusCode.OK, 1), (StatusCode.ERROR, 2))}
# The same for `_native.SdkSpanHooks`: each kind with its OTLP number, and
# the status codes in spanguard's order.
_KIND_NUMBERS = [(kind, kind.value + 1) for kind in SpanKind]
_STATUS_CODES = (StatusCode.UNSET, StatusCode.OK, StatusCode.ERROR)
# What `SdkSpanHooks.end` answers for a span ended after the tracer shut down.
_END_REFUSED = 2
# SPANGUARD_RESULT_SHUT_DOWN: the tracer was shut down or closed.
_SHUT_DOWN = 5
_MISSING = object()
# Scopes `_pass_scope` remembers: past this, new ones are left without
# their attributes (spanguard holds those of 256 at most).
_MAX_SCOPES_SEEN = 1024
# TraceFlags' sampled bit (its `sampled` property costs a Python call).
_SAMPLED = TraceFlags.SAMPLED
# The resource attributes last passed on to each spanguard tracer, by any
# processor: a tracer has one resource for every batch it exports.
_RESOURCE_OF: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# Every processor, for `_forget_what_was_passed_in_child`.
_PROCESSORS: weakref.WeakSet = weakref.WeakSet()


def _forget_what_was_passed_in_child() -> None:
    """In a forked child, each spanguard tracer is a new one (the library
    replaces it: the parent's spans stay the parent's), without the
    resource and scope attributes the bridge passed on in the parent; and
    the bridge passes each on once. The child's spans (a prefork server's
    workers, multiprocessing's fork workers) arrived without their scope
    attributes, and under spanguard's own service.name with an SDK that
    does not renew the provider's resource at a fork. Forgotten, they are
    passed on again with the child's first span."""
    _RESOURCE_OF.clear()
    for processor in list(_PROCESSORS):
        processor._forget_what_was_passed()


os.register_at_fork(after_in_child=_forget_what_was_passed_in_child)


def _link(sg: _SpanguardSpan, link) -> bool:
    """Passes on a link by its ids, with its tracestate and is_remote; one
    with an invalid context is passed too (the SDK keeps it when it has
    attributes or a tracestate, and so does spanguard). Whether spanguard
    holds it (`_held`)."""
    ctx = link.context
    state = ctx.trace_state
    return _held(sg, sg.add_link_ids(ctx.trace_id, ctx.span_id, int(ctx.trace_flags), link.attributes,
                                     tracestate=state.to_header() if state else None, is_remote=bool(ctx.is_remote),
                                     dropped_attributes=_dropped_attributes(link)),
                 links=1)


def _event(sg: _SpanguardSpan, event) -> bool:
    """Passes on an event; whether spanguard holds it (`_held`)."""
    return _held(sg, sg.add_event(event.name, event.attributes, event.timestamp,
                                  dropped_attributes=_dropped_attributes(event)), events=1)


def _dropped_attributes(item) -> int:
    """How many attributes the SDK dropped on an event or link (its
    attribute-per-event/per-link limit), which its own OTLP exporter sends
    in the event's or link's dropped_attributes_count: passed on so that
    spanguard's export says the same. `dropped_attributes` where the SDK
    has it, else its BoundedAttributes' `dropped`; 0 for plain attributes."""
    dropped = getattr(item, "dropped_attributes", None)
    if dropped is None:
        dropped = getattr(item.attributes, "dropped", 0)
    try:
        return max(0, min(int(dropped), 0xFFFFFFFF))
    except (TypeError, ValueError):
        return 0


def _held(sg: _SpanguardSpan, held, events: int = 0, links: int = 0) -> bool:
    """Whether spanguard holds the event or link a call passed on, from
    what the call answered: True (held, cut maybe); False (refused: the
    span's count limit, or no room in the payload pool for it, and counted
    dropped by spanguard); None (neither held nor counted, as a link
    spanguard finds nothing to record in: counted here, so that each one
    the SDK kept is held or counted once)."""
    if held is None:
        sg.add_dropped_counts(0, events, links)
    return bool(held)


def _pass_drops(opened: _Open, attributes: int | None, events: int | None, links: int | None) -> None:
    """Counts on the spanguard span what the SDK dropped since the bridge
    last looked (its dropped attribute, event and link counts now; None:
    not looked at), as it happens: past its limits the SDK evicts its
    oldest, which the bridge does not pass on, and a span killed open
    (no Python runs before the dump) carried none of it, the count being
    added only at on_end. An evicted event or link spanguard had refused
    is not counted again (spanguard counted it when it refused it).
    `_complete` counts only the rest."""
    seen, counted = opened.dropped_seen, opened.dropped_counted
    add = [0, 0, 0]
    for i, (now, refused) in enumerate(((attributes, None), (events, opened.events_refused),
                                        (links, opened.links_refused))):
        if now is None or now <= seen[i]:
            continue
        n = now - seen[i]
        if refused:
            n -= sum(1 for r in refused if seen[i] <= r < now)
        seen[i] = now
        add[i] = max(0, n)
    if any(add):
        opened.span.add_dropped_counts(*add)
        for i in range(3):
            counted[i] += add[i]


def _own_attributes(span):
    """The SDK span's own BoundedAttributes (its `_attributes`, with `_dict`
    and `dropped`), or None: its public `attributes` copies its keys under
    a lock and reads each value through a Python `__getitem__`, the
    largest part of what the bridge cost a span."""
    own = getattr(span, "_attributes", None)
    return own if type(getattr(own, "_dict", None)) is dict and hasattr(own, "dropped") else None


# A SpanContext's trace id, span id, trace flags and tracestate, read in C
# from the tuple it is (`_context_fields`).
_CONTEXT_FIELDS = operator.itemgetter(0, 1, 3, 4)
# A SpanContext's span id and is_remote (a parent's), read in C likewise.
_PARENT_FIELDS = operator.itemgetter(1, 2)
# The SDK's own span classes (the open span on_start gets, its tracer's
# `_Span`; the snapshot on_end and an exporter get), whose properties
# (name, kind, parent, the times, status, scope) each return the
# attribute of the same name with an underscore: read there, not through
# a Python call each.
_SDK_SPANS = frozenset(c for c in (getattr(_sdk_trace, "_Span", None), _sdk_trace.Span, ReadableSpan) if c)


def _context_fields(ctx) -> tuple:
    """A span context's trace id, span id, trace flags and tracestate. The
    API's own SpanContext is a tuple (trace_id, span_id, is_remote,
    trace_flags, trace_state, is_valid) whose properties are each a Python
    call, ten a span through the bridge: its fields are read in C
    (`_CONTEXT_FIELDS`, where `type(ctx) is SpanContext`); any other
    context's by its properties."""
    if type(ctx) is SpanContext:
        return _CONTEXT_FIELDS(ctx)
    return ctx.trace_id, ctx.span_id, ctx.trace_flags, ctx.trace_state


def _had(span, field: str) -> int:
    """How many events or links the SDK span has had, those its limit
    dropped counted, from its own list (`_events`, `_links`, a BoundedList,
    or a sequence without a dropped count), or -1 when it has none: the
    public properties copy the list into a tuple under a lock. A
    BoundedList's length is its deque's (`_dq`), read in C: its
    `__len__` is a Python call, four of them a span through the bridge."""
    own = getattr(span, field, None)
    if own is None:
        return -1
    if type(own) is BoundedList:
        return len(own._dq) + own.dropped
    return len(own) + getattr(own, "dropped", 0)


def _scope_fields(scope) -> tuple:
    """The instrumentation scope's name, version and schema URL as
    spanguard takes them (None for none)."""
    if scope is None:
        return None, None, None
    return scope.name, scope.version or None, getattr(scope, "schema_url", None) or None


def _exporter_of(processor):
    """A span processor's exporter: a SimpleSpanProcessor's `span_exporter`,
    a BatchSpanProcessor's (`_batch_processor._exporter` since SDK 1.28,
    `span_exporter` before); None for another processor."""
    exporter = getattr(processor, "span_exporter", None)
    if exporter is None:
        exporter = getattr(getattr(processor, "_batch_processor", None), "_exporter", None)
    return exporter


def _exporters_beside(span, exporter=None):
    """The exporters of the span processors on the provider an SDK span
    came from: its `_span_processor`, the provider's active multi span
    processor. The span an exporter is given is a snapshot that names no
    provider: for `exporter`'s spans, the global provider's, when one of
    its processors holds `exporter` (zero-code instrumentation,
    Traceloop.init(exporter=...) set it up so)."""
    active = getattr(span, "_span_processor", None)
    if active is None and exporter is not None:
        candidate = getattr(_otel_trace.get_tracer_provider(), "_active_span_processor", None)
        if any(_exporter_of(p) is exporter for p in tuple(getattr(candidate, "_span_processors", ()))):
            active = candidate
    for processor in tuple(getattr(active, "_span_processors", ())):
        found = _exporter_of(processor)
        if found is not None:
            yield found


# What loopback is called: one backend under any of these names.
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
# The OTLP ports of one Collector: gRPC (4317) and HTTP (4318).
_OTLP_PORTS = {4317, 4318}


def _backend(endpoint) -> tuple | None:
    """An endpoint's (scheme, host, port): a URL, or a gRPC exporter's
    host:port; None for none (a local sink, a `discard:`)."""
    if not endpoint or not isinstance(endpoint, str):
        return None
    from urllib.parse import urlsplit

    url = urlsplit(endpoint if "://" in endpoint else "//" + endpoint)
    try:
        host, port = url.hostname, url.port
    except ValueError:  # a port that is not a number
        return None
    if not host:
        return None
    scheme = url.scheme or "http"
    return scheme, host.lower(), port or (443 if scheme == "https" else 80)


def _same_backend(a: tuple, b: tuple) -> bool:
    """Whether two endpoints are one backend: one host (loopback by any
    name) on one port, or a Collector's two OTLP ports (the SDK's gRPC
    exporter on 4317 beside spanguard's OTLP/HTTP on 4318)."""
    host_a, host_b = a[1], b[1]
    if host_a != host_b and not (host_a in _LOOPBACK and host_b in _LOOPBACK):
        return False
    return a[2] == b[2] or {a[2], b[2]} == _OTLP_PORTS


def _shown(backend: tuple) -> str:
    """An endpoint as said in a warning: scheme, host and port only (its
    path and any credentials in it left out)."""
    scheme, host, port = backend
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


class _Watch(weakref.ref):
    """A weak reference to an open SDK span (`_Open.watch`) that knows the
    key of its `_Open` (a slot: cheaper, a span, than a callback made for
    each one)."""

    __slots__ = ("key",)


class _Open:
    """A span begun at on_start: what on_end must not send twice.

    Events and links are counted as the SDK's span has had them, dropped
    ones included (the SDK evicts its oldest when full): those numbered
    from `*_from` (what the SDK had dropped when the bridge first passed
    them) up to `events` and `links` were passed on, and those of them
    spanguard took are its oldest; `*_refused` numbers those it did not
    take (counted dropped when refused), None while there are none: on_end
    must not drop from spanguard, in their stead, ones the SDK kept.
    `dropped_seen` is what the SDK had dropped (attributes, events, links)
    when the bridge last looked, and `dropped_counted` what the bridge
    counted on the spanguard span for it as it happened (`_pass_drops`),
    so that a span killed open carries the SDK's dropped counts.
    `logged` holds the events `SpanguardLogRecordProcessor` added (None
    while there are none), each as (how many of the SDK's events spanguard
    held before it, then what `add_event` was given): on_end drops from
    spanguard its oldest events for those the SDK evicted, and these are
    not the SDK's to evict (`_keep_logged`). It
    refers to nothing that refers to the SDK's span (`kept` is the span's
    attribute map; `watch` a weak reference), so keeping it on the span
    makes no reference cycle."""

    __slots__ = ("span", "name", "attributes", "kept", "events", "events_from", "events_refused", "links",
                 "links_from", "links_refused", "attribute_limit", "ended", "watch", "dropped_seen",
                 "dropped_counted", "logged")

    def __init__(self, span: _SpanguardSpan, name: str, attributes: dict, kept, events_from: int, events: int,
                 links_from: int, links: int, attribute_limit, events_refused: list | None = None,
                 links_refused: list | None = None, dropped_at_start: list | None = None):
        self.span, self.name, self.attributes, self.kept = span, name, attributes, kept
        self.events_from, self.events, self.events_refused = events_from, events, events_refused
        self.links_from, self.links, self.links_refused = links_from, links, links_refused
        # The SDK span's attribute limit (None: none).
        self.attribute_limit = attribute_limit
        self.ended = False  # on_end has it: setters pass nothing more
        # A weak reference to the SDK span, whose callback ends the
        # spanguard span if the SDK span is collected open (`_abandoned`).
        self.watch = None
        # Counted at the start (`_begin`), so both are what the SDK had.
        self.dropped_seen = dropped_at_start or [0, 0, 0]
        self.dropped_counted = list(self.dropped_seen)
        self.logged = None

    def held_events(self) -> int:
        """How many of the SDK's events spanguard holds: those passed on,
        less those it refused."""
        return self.events - self.events_from - len(self.events_refused or ())


def _keep_logged(opened: _Open, evicted: int) -> list:
    """The events `SpanguardLogRecordProcessor` added to the span that lie
    among the oldest ones on_end drops (`Span.drop_oldest`, for the
    `evicted` oldest of the SDK's events spanguard holds): each as
    `add_event`'s arguments, to be added again. A log event lies there
    when fewer of the SDK's events came before it than go. (Streamed, an
    instrumentation adding an event a chunk has the SDK evict the oldest
    past its limit of 128, and the prompt event emitted before them went
    with them.) They are added again after the others (their times say
    when they came). `logged` is forgotten, so a second call finds
    nothing."""
    logged = opened.logged
    if not logged or not evicted:
        return []
    going = [args for before, args in logged if before < evicted]
    opened.logged = None
    return going


def _room(count: int, limit) -> bool:
    """Whether an SDK list or map holding `count` (dropped ones counted)
    has never gone past `limit` (None: no limit), so none of it was
    evicted. At the limit itself the SDK still holds every one: the last
    that fits is passed on too, or a span killed open held one fewer than
    the SDK's."""
    return limit is None or count <= limit


def _still_to_send(kept, dropped: int, passed_from: int, passed_to: int,
                   refused: list | None = None) -> tuple[int, tuple, int]:
    """What on_end does with an SDK span's events or links: how many of
    the oldest spanguard holds it drops, which it sends, and how many more
    it counts dropped. The SDK keeps the last of those it was given
    (`kept`; the `dropped` first ones it evicted); the bridge passed on
    those numbered `passed_from` to `passed_to`, and spanguard took those
    of them not in `refused` (counted dropped when refused). Those it took
    that the SDK evicted since are spanguard's oldest: dropped there (and
    counted by spanguard); no more, or it would drop ones the SDK kept in
    the stead of those it never held. Those the SDK kept that were not
    passed are sent, so that spanguard ends with the SDK's own, in order
    (less those it refused), and each one given is held or counted once."""
    kept = tuple(kept or ())
    evicted = max(0, min(passed_to, dropped) - passed_from)
    held = evicted - sum(1 for n in refused if n < dropped) if refused else evicted
    return held, kept[max(0, passed_to - dropped):], dropped - evicted


def _unsent(span, field: str, public: str, dropped: str, passed_from: int,
            passed_to: int, refused: list | None) -> tuple[int, tuple, int]:
    """`_still_to_send` for the span's events or links, without copying
    them when every one the SDK had was passed on (then the SDK has
    evicted none since: the bridge passes on only while it has room; none
    is sent and those the SDK had dropped before the first was passed are
    counted)."""
    if _had(span, field) == passed_to:
        return 0, (), passed_from
    return _still_to_send(getattr(span, public), getattr(span, dropped), passed_from, passed_to, refused)


# The SDK span's setters `_follow` passes on.
_FOLLOWED = ("set_attribute", "set_attributes", "add_event", "add_link", "update_name", "set_status")


def _following_class(base: type, processor: SpanguardSpanProcessor) -> type:
    """A subclass of the SDK's span class whose setters also pass on what
    they set (`SpanguardSpanProcessor._forward`). `record_exception` adds
    its event through `add_event`. The span's `_Open` is its attribute
    `_spanguard_open` (`_follow`); once on_end has it, or the processor
    shut down, `ended` says so."""

    def set_attribute(self, key, value):
        base.set_attribute(self, key, value)
        opened = self._spanguard_open
        if opened is not None and not opened.ended:
            # `_forward_attributes` for one key, inline: the setter
            # instrumentations call most.
            try:
                kept = opened.kept
                limit = opened.attribute_limit
                if limit is None or len(kept._dict) + kept.dropped <= limit:
                    v = kept._dict.get(key, _MISSING)
                    before = opened.attributes
                    old = before.get(key, _MISSING)
                    if v is not _MISSING and old is not v:
                        opened.span.set_attribute(key, v)
                        if old is not _MISSING:
                            del before[key]  # the SDK moves a key set again to its end
                        before[key] = v
                elif kept.dropped != opened.dropped_seen[0]:
                    _pass_drops(opened, kept.dropped, None, None)
            except Exception as e:  # noqa: BLE001 - a setter must not raise for the bridge
                processor._failed("a setter", e)

    def set_attributes(self, attributes):
        base.set_attributes(self, attributes)
        opened = self._spanguard_open
        if attributes and opened is not None and not opened.ended:
            processor._forward_attributes(opened, attributes)

    def add_event(self, *args, **kwargs):
        base.add_event(self, *args, **kwargs)
        opened = self._spanguard_open
        if opened is not None and not opened.ended:
            processor._forward(self, opened, events=True)

    def add_link(self, *args, **kwargs):
        base.add_link(self, *args, **kwargs)
        opened = self._spanguard_open
        if opened is not None and not opened.ended:
            processor._forward(self, opened, links=True)

    def update_name(self, name):
        base.update_name(self, name)
        opened = self._spanguard_open
        if opened is not None and not opened.ended:
            processor._forward(self, opened, name=True)

    def set_status(self, *args, **kwargs):
        base.set_status(self, *args, **kwargs)
        opened = self._spanguard_open
        if opened is not None and not opened.ended:
            processor._forward(self, opened, status=True)

    namespace = {"__slots__": (), "__module__": base.__module__, "__qualname__": base.__qualname__,
                 "_spanguard_open": None}
    for method in (set_attribute, set_attributes, add_event, add_link, update_name, set_status):
        method.__qualname__ = f"{base.__qualname__}.{method.__name__}"
        namespace[method.__name__] = method
    return type(base.__name__, (base,), namespace)


class SpanguardSpanProcessor(SpanProcessor):
    """A SpanProcessor that records every sampled span in spanguard as it
    starts and completes it as it ends. Thread-safe; never raises into the
    SDK (a failure is logged once through logger "spanguard"): what
    spanguard refused or the bridge could not pass on is counted in
    `failures`."""

    def __init__(self, tracer: Tracer):
        if not isinstance(tracer, Tracer):
            raise TypeError("SpanguardSpanProcessor needs a spanguard.Tracer")
        self._tracer = tracer
        self._resource = None  # the provider's resource last passed on
        # Instrumentation scopes seen (by identity; kept, so that an id is
        # not reused), whose attributes were passed on (`_pass_scope`).
        self._scopes: dict[int, object] = {}
        self._open: dict[tuple[int, int], _Open] = {}
        self._failed_once = False
        self._failures = 0  # `failures`
        self._shut_down = False  # `shutdown` ran: later calls are ignored, not counted
        self._warned_resources = False  # `_warn_if_resources_differ`
        self._warned_sent_twice = False  # `_warn_if_sent_twice`
        # The SpanguardSpanExporter this processor records for, if any (`_exporters_beside`).
        self._exporter = None
        # The SpanguardLogRecordProcessors given this processor: what they
        # could not attach is said at its shutdown (`_say_not_attached`).
        self._log_processors: list[SpanguardLogRecordProcessor] = []
        # `_abandoned`, bound once: a span's weak reference costs no more.
        self._on_collected = self._abandoned
        _PROCESSORS.add(self)
        self._lock = threading.Lock()
        # Span class -> its following subclass, or None for a class that
        # cannot be followed (`_follow`).
        self._following: dict[type, type | None] = {}
        # The last scope seen and its fields: a tracer's spans share one.
        self._scope: tuple = (None, *_scope_fields(None))
        # on_start and on_end for the common span, one native call each
        # (`_native.SdkSpanHooks`): the Python path below takes the rest.
        self._hooks = _native.SdkSpanHooks(tracer, self._open, self._following, _Open, _Watch, self._on_collected,
                                           SpanContext, tuple(_SDK_SPANS), _KIND_NUMBERS, _STATUS_CODES)

    # -- SpanProcessor --------------------------------------------------------

    def on_start(self, span, parent_context=None) -> None:
        try:
            if self._hooks.start(span, self._resource, self._scope):
                return
        except Exception as e:  # noqa: BLE001 - a processor must not throw into the SDK
            self._failed("on_start", e)
            return
        ctx = span.get_span_context()
        fields = _CONTEXT_FIELDS(ctx) if type(ctx) is SpanContext else _context_fields(ctx)
        if not fields[2] & _SAMPLED:
            return
        self._pass_resource(span, "on_start")
        try:
            opened = self._begin(span, fields)
        except Exception as e:  # noqa: BLE001 - a processor must not throw into the SDK
            self._failed("on_start", e)
            return
        key = fields[:2]
        self._open[key] = opened
        try:
            watch = opened.watch = _Watch(span, self._on_collected)
            watch.key = key
        except TypeError:
            pass  # a span class that takes no weak reference: ended at shutdown
        self._follow(span, opened)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            done = self._hooks.end(span, self._shut_down)
        except Exception as e:  # noqa: BLE001 - a processor must not throw into the SDK
            self._failed("on_end", e)
            return
        if done:
            if done == _END_REFUSED:
                with self._lock:
                    self._failures += 1  # as `_complete` counts it
            return
        ctx = span.get_span_context()
        fields = _CONTEXT_FIELDS(ctx) if type(ctx) is SpanContext else _context_fields(ctx)
        if not fields[2] & _SAMPLED:
            return
        try:
            opened = self._open.pop(fields[:2], None)
            if opened is None:  # began before this processor was added
                opened = self._begin(span, fields)
            elif opened.ended:
                return  # open at this processor's shutdown: ignored (`shutdown`)
            opened.ended = True
            opened.watch = None  # its callback has nothing left to do
            self._complete(span, opened)
        except Exception as e:  # noqa: BLE001 - a processor must not throw into the SDK
            self._failed("on_end", e)

    def shutdown(self) -> None:
        if not self._shut_down:
            _say_not_attached(self._log_processors)
        self._shut_down = True
        try:
            self._tracer.shutdown()
        except SpanguardError:
            pass  # closed already: shut down, as asked
        # The tracer's shutdown exported the spans still open, marked
        # spanguard.unended. What is set on them later, and their end, is
        # ignored, as the specification asks of calls after Shutdown: a
        # stream an agent held to its exit finishes from `__del__` after the
        # provider's shutdown, and each of its setters was said on stderr as
        # "the tracer is shut down; spans begun now are not recorded".
        for opened in tuple(self._open.values()):
            opened.ended = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        # After the tracer closed, False rather than an exception: a
        # processor reports a failed flush, never raises into the SDK.
        try:
            return self._tracer.flush(timeout_millis / 1000)
        except SpanguardError:
            return False

    # -- the work -------------------------------------------------------------

    def _abandoned(self, watch: _Watch) -> None:
        """The SDK span `watch` referred to was garbage-collected without
        ending (a stream never read to its end, a span started and
        dropped): nothing can end it now. Its spanguard span is ended, marked
        `spanguard.unended` as a shutdown marks the spans still open, and
        the bridge lets go of it. Kept open, each one held a slot of the
        tracer and an entry here for the life of the process, and once
        such spans filled every slot no span was recorded any more (the
        SDK's own processors hold nothing for a span before its end)."""
        try:
            opened = self._open.pop(watch.key, None)
            if opened is not None and not opened.ended:
                opened.ended = True
                opened.span._end_unended()
        except Exception as e:  # noqa: BLE001 - a garbage collection must not raise
            self._failed("a collected span", e)

    def _pass_resource(self, span, where: str) -> None:
        """Passes on the provider's resource the first time one of its
        spans comes (an identity check a span): spans arrive under its
        service.name and attributes, as with the SDK's own exporter."""
        resource = getattr(span, "resource", None)
        if resource is None or resource is self._resource:
            return
        self._resource = resource
        try:
            attributes = dict(resource.attributes)
            self._warn_if_resources_differ(attributes)
            self._tracer.set_resource(attributes)
        except Exception as e:  # noqa: BLE001 - a processor must not throw into the SDK
            self._failed(where, e)
        self._warn_if_sent_twice(span)

    def _warn_if_sent_twice(self, span) -> None:
        """Says, once per processor, when the provider of the span (the
        first of each provider's, as its resource is passed on) also has
        the SDK's own OTLP exporter (http or grpc, in a Batch- or
        SimpleSpanProcessor) sending to the backend spanguard sends to:
        every span then arrives there twice. Both read
        OTEL_EXPORTER_OTLP_ENDPOINT, so keeping the exporter a setup had
        before spanguard does it; the READMEs warn, but a newcomer who
        missed that got duplicates with no word said. An exporter sending
        elsewhere (spanguard to one Collector, the SDK to another) is
        left unsaid, as is a spanguard tracer writing to its local sink."""
        if self._warned_sent_twice:
            return
        try:
            ours = _backend(self._tracer.endpoint())
            if ours is None:
                return
            for exporter in _exporters_beside(span, self._exporter):
                kind = type(exporter)
                if kind.__name__ != "OTLPSpanExporter" or not kind.__module__.startswith("opentelemetry.exporter.otlp"):
                    continue
                theirs = _backend(getattr(exporter, "_endpoint", None))
                if theirs is None or not _same_backend(ours, theirs):
                    continue
                self._warned_sent_twice = True
                _warn("the TracerProvider also has the OpenTelemetry SDK's own exporter "
                      "(%s.OTLPSpanExporter), which sends to %s, the backend spanguard sends to (%s): "
                      "every span arrives there twice. Remove the SDK's exporter (spanguard delivers "
                      "every span; with opentelemetry-instrument, OTEL_TRACES_EXPORTER=spanguard alone), "
                      "or point one of them at another backend", kind.__module__, _shown(theirs),
                      _shown(ours))
                return
        except Exception as e:  # noqa: BLE001 - a processor must not throw into the SDK
            self._failed("a check of the provider's exporters", e)

    def _pass_scope(self, scope) -> None:
        """Passes on the attributes of an SDK tracer's instrumentation scope
        (`get_tracer(..., attributes=...)`) the first time one of its spans
        starts, so that its spans arrive with them as with the SDK's own
        exporter. A tracer keeps one scope object: one identity check a span
        (`_begin`), a dict lookup when the scope changes."""
        if id(scope) in self._scopes or len(self._scopes) >= _MAX_SCOPES_SEEN:
            return
        self._scopes[id(scope)] = scope
        attributes = getattr(scope, "attributes", None)
        if not attributes:
            return
        try:
            self._tracer.set_scope_attributes(scope.name, scope.version or None,
                                              getattr(scope, "schema_url", None) or None, dict(attributes))
        except Exception as e:  # noqa: BLE001 - a processor must not throw into the SDK
            self._failed("on_start", e)

    def _forget_what_was_passed(self) -> None:
        """Forgets the resource and scopes passed on, so that the next span
        passes them on again (`_forget_what_was_passed_in_child`)."""
        self._resource = None
        self._scopes = {}
        self._scope = (None, *_scope_fields(None))

    def _warn_if_resources_differ(self, attributes: dict) -> None:
        """Says, once per processor, that spans of providers with different
        resources share one spanguard tracer: it sends one resource with
        every batch, the last one passed on, so the other provider's spans
        arrive under it (the SDK's own exporter sends each span's). Left
        unsaid, one service's spans were silently filed under another's
        service.name; the fix is a spanguard tracer per provider."""
        previous = _RESOURCE_OF.get(self._tracer)
        _RESOURCE_OF[self._tracer] = attributes
        if previous is None or previous == attributes or self._warned_resources:
            return
        self._warned_resources = True
        _warn("spans of TracerProviders with different resources (service.name %r, then %r) "
              "go to one spanguard tracer, which sends the last resource passed on with every batch: "
              "some spans arrive under the other provider's; give each provider its own "
              "spanguard.Tracer", previous.get("service.name"), attributes.get("service.name"))

    def _begin(self, span, fields: tuple) -> _Open:
        """Begins the spanguard span of `span`, whose context's fields
        `fields` are (`_context_fields`)."""
        trace_id, span_id, flags, state = fields
        if type(span) in _SDK_SPANS and hasattr(span, "_instrumentation_scope"):
            parent, scope, name, kind, start_time = (span._parent, span._instrumentation_scope, span._name, span._kind,
                                                     span._start_time)
        else:
            parent, name, kind, start_time = span.parent, span.name, span.kind, span.start_time
            # SDKs before 1.11.1 have only instrumentation_info, which later
            # ones deprecate: read only where the scope's own attribute is
            # missing (a span with no scope, None, read it and warned
            # DeprecationWarning).
            scope = getattr(span, "instrumentation_scope", _NO_SCOPE_ATTRIBUTE)
            if scope is _NO_SCOPE_ATTRIBUTE:
                scope = getattr(span, "instrumentation_info", None)
        if parent is None:
            parent_span_id, parent_is_remote = None, False
        elif type(parent) is SpanContext:
            parent_span_id, parent_is_remote = _PARENT_FIELDS(parent)
        else:
            parent_span_id, parent_is_remote = parent.span_id, parent.is_remote
        cached = self._scope
        if cached[0] is not scope:
            # An InstrumentationScope is immutable: its fields are read once,
            # and its attributes passed on once.
            cached = self._scope = (scope, *_scope_fields(scope))
            if scope is not None:
                self._pass_scope(scope)
        kept = _own_attributes(span)
        # A copy of the SDK's dict is one C call (atomic under the GIL).
        attributes = kept._dict.copy() if kept is not None else dict(span.attributes or {})
        # Positionally: the native call parses keywords by name, a cost a span.
        sg = self._tracer.start_span_with_ids(
            name,
            _KIND.get(id(kind), 1),
            trace_id,
            span_id,
            parent_span_id,
            int(flags),
            bool(parent_is_remote),
            (state.to_header() or None) if state else None,  # tracestate
            start_time,
            cached[1],  # scope_name
            cached[2],  # scope_version
            attributes or None,
            cached[3],  # scope_schema_url
            # limited_by_caller: the SDK's span limits applied (its
            # user's); spanguard's own would cut what it kept (128 of the
            # 1000 attributes allowed).
            True,
        )
        # An SDK span has no events at the start, and links only when given.
        links, dropped_links = ((), 0) if _had(span, "_links") == 0 else (span.links or (), span.dropped_links)
        # Those spanguard refuses numbered (`_Open`); no list without links.
        links_refused = [dropped_links + i for i, link in enumerate(links) if not _link(sg, link)] if links else None
        events, dropped_events = ((), 0) if _had(span, "_events") == 0 else (span.events or (), span.dropped_events)
        events_refused = [dropped_events + i for i, ev in enumerate(events) if not _event(sg, ev)] if events else None
        limits = getattr(span, "_limits", None)
        # What the SDK dropped before the start (attributes and links given
        # to start_span past its limits), counted now: a span killed open
        # says so too.
        dropped_at_start = None
        dropped_attributes = kept.dropped if kept is not None else 0
        if dropped_attributes or dropped_events or dropped_links:
            dropped_at_start = [dropped_attributes, dropped_events, dropped_links]
            sg.add_dropped_counts(*dropped_at_start)
        return _Open(sg, name, attributes, kept, dropped_events, dropped_events + len(events), dropped_links,
                     dropped_links + len(links), limits.max_span_attributes if limits is not None else None,
                     events_refused or None, links_refused or None, dropped_at_start)

    def _follow(self, span, opened: _Open) -> None:
        """Makes what is set on the open span reach spanguard as it is set.

        The SDK tells a processor nothing between on_start and on_end, so
        the span's class is swapped for a subclass whose setters pass on
        what the SDK kept (`_forward`) after doing their own work: no
        per-span closure (one would tie the span into a reference cycle),
        no new slot (the object's layout is unchanged). A span of a class
        that cannot take it keeps its own and is completed at on_end."""
        base = type(span)
        sub = self._following.get(base, _MISSING)
        if sub is _MISSING:
            ok = all(callable(getattr(base, m, None)) for m in _FOLLOWED)
            sub = self._following[base] = _following_class(base, self) if ok else None
        if sub is None or opened.kept is None or getattr(span, "_limits", None) is None:
            return  # not the SDK's span as this bridge knows it
        try:
            span._spanguard_open = opened
        except AttributeError:
            return  # no __dict__ to hold it
        try:
            span.__class__ = sub
        except TypeError:
            del span._spanguard_open  # an object layout that does not allow it

    def _forward_attributes(self, opened: _Open, keys) -> None:
        """`_forward` for attributes, the setters instrumentations call most,
        kept short (through `_forward` it cost 2.7 us an attribute): the
        SDK's attributes read from its bounded map (`_follow` follows only
        spans with one)."""
        try:
            kept = opened.kept
            limit = opened.attribute_limit
            if limit is not None and len(kept._dict) + kept.dropped > limit:
                if kept.dropped != opened.dropped_seen[0]:
                    _pass_drops(opened, kept.dropped, None, None)
                return
            now, before = kept._dict, opened.attributes
            out = {}
            for k in keys:
                v = now.get(k, _MISSING)
                if v is not _MISSING and before.get(k, _MISSING) is not v:
                    out[k] = v
            if len(out) == 1:
                ((k, v),) = out.items()
                opened.span.set_attribute(k, v)
            elif out:
                opened.span.set_attributes(out)
            before.update(out)
        except Exception as e:  # noqa: BLE001 - a setter must not raise for the bridge
            self._failed("a setter", e)

    def _forward(self, span, opened: _Open, events=False, links=False, name=False, status=False) -> None:
        """Passes on what a setter of the open `span` just set (the SDK's
        value, after its limits), once: `_Open` records what was passed,
        and on_end sends only what it does not hold.

        Events and links only while the span has no more than its SDK limit
        allows (counting what the SDK dropped): past it, the SDK evicts its
        oldest, and passing each new one on would leave spanguard holding
        every one evicted (its room in the payload pool is not given back
        before the span ends: an LLM span streaming thousands of events
        would hold them all), so what comes then is left to on_end, which
        drops from spanguard those the SDK evicted. A span killed before
        its end holds the first ones. (`_follow` follows only spans with
        `_limits`.)"""
        try:
            sg, limits = opened.span, span._limits
            if events:
                now, dropped = tuple(span.events or ()), span.dropped_events
                if _room(len(now) + dropped, limits.max_events):
                    for i in range(max(0, opened.events - dropped), len(now)):
                        if not _event(sg, now[i]):
                            opened.events_refused = (opened.events_refused or []) + [dropped + i]
                    opened.events = dropped + len(now)
                elif dropped != opened.dropped_seen[1]:
                    _pass_drops(opened, None, dropped, None)
            if links:
                now, dropped = tuple(span.links or ()), span.dropped_links
                if _room(len(now) + dropped, limits.max_links):
                    for i in range(max(0, opened.links - dropped), len(now)):
                        if not _link(sg, now[i]):
                            opened.links_refused = (opened.links_refused or []) + [dropped + i]
                    opened.links = dropped + len(now)
                elif dropped != opened.dropped_seen[2]:
                    _pass_drops(opened, None, None, dropped)
            if name and span.name != opened.name:
                sg.update_name(span.name)
                opened.name = span.name
            if status and span.status is not None and span.status.status_code is not StatusCode.UNSET:
                sg.set_status(_STATUS[id(span.status.status_code)], span.status.description or "")
        except Exception as e:  # noqa: BLE001 - a setter must not raise for the bridge
            self._failed("a setter", e)

    def _complete(self, span: ReadableSpan, opened: _Open) -> None:
        sg, before = opened.span, opened.attributes
        if type(span) in _SDK_SPANS:
            name, status, end_time = span._name, span._status, span._end_time
        else:
            name, status, end_time = span.name, span.status, span.end_time
        if name != opened.name:  # renamed with update_name
            sg.update_name(name)
        # The ReadableSpan the SDK made at the end holds the span's own
        # attribute map, the one `_begin` found (`opened.kept`).
        own = opened.kept
        if own is None or getattr(span, "_attributes", None) is not own:
            own = _own_attributes(span)
        kept = own._dict if own is not None else (span.attributes or {})
        # What was set after the start and not passed on (past the limit,
        # or on a span that could not be followed): usually nothing, seen
        # by a comparison in C when `before` mirrors the SDK's map, the
        # same keys in the same order with the same values (the setters
        # keep its order).
        later = None
        if not (len(kept) == len(before) and all(map(is_, kept, before))
                and all(map(is_, kept.values(), before.values()))):
            for k, v in kept.items():
                if before.get(k, _MISSING) is not v:
                    if later is None:
                        later = {}
                    later[k] = v
        new = 0
        room = len(kept) - len(before)
        if later:
            # The SDK drops its oldest attribute for a new one past its
            # limit (BoundedAttributes), also one the bridge passed on at the
            # start, which spanguard cannot unset. So no more new keys go on
            # than the SDK kept in all (the first ones set): the span then
            # holds as many attributes as the SDK's, each one the SDK was
            # given.
            fresh = [k for k in later if k not in before]
            new = len(fresh)
            if new > max(0, room):
                for k in fresh[max(0, room):]:
                    del later[k]
            if later:
                sg.set_attributes(later)
        # Events and links: those the SDK kept (its last ones), in order,
        # the others counted. Those passed on (and taken by spanguard) that
        # the SDK evicted since are dropped from spanguard first.
        evicted_events, events, dropped_events = _unsent(span, "_events", "events", "dropped_events",
                                                         opened.events_from, opened.events, opened.events_refused)
        evicted_links, links, dropped_links = _unsent(span, "_links", "links", "dropped_links", opened.links_from,
                                                      opened.links, opened.links_refused)
        # What the SDK's own limits left out. Attributes: every key the SDK
        # was given is held by spanguard or counted, once: what the SDK
        # kept and dropped, less what spanguard holds (counting the SDK's
        # figure whole counted twice a key it evicted after the start).
        held = len(before) + min(new, max(0, room))
        unseen = max(0, len(kept) + (own.dropped if own is not None else span.dropped_attributes) - held)
        counted = opened.dropped_counted
        # The log events among the oldest spanguard holds go with those the
        # SDK evicted (`drop_oldest` takes the oldest): taken off uncounted
        # and added again (`_keep_logged`).
        relogged = _keep_logged(opened, evicted_events) if opened.logged else ()
        if counted == [0, 0, 0] and not relogged:
            if evicted_events or evicted_links:
                sg.drop_oldest(evicted_events, evicted_links)
            if unseen or dropped_events or dropped_links:
                sg.add_dropped_counts(unseen, dropped_events, dropped_links)
        else:
            # Some were counted as the SDK dropped them (`_pass_drops`):
            # the rest now, then those evicted taken off uncounted (in that
            # order: a crash between the two counts one twice, never none).
            rest = (max(0, unseen - counted[0]), max(0, evicted_events + dropped_events - counted[1]),
                    max(0, evicted_links + dropped_links - counted[2]))
            if any(rest):
                sg.add_dropped_counts(*rest)
            if evicted_events or evicted_links or relogged:
                sg.drop_oldest(evicted_events + len(relogged), evicted_links, counted=False)
        for logged in relogged:
            sg.add_event(*logged)
        for event in events:
            _event(sg, event)
        for link in links:
            _link(sg, link)
        if status is not None and status.status_code is not StatusCode.UNSET:
            sg.set_status(_STATUS[id(status.status_code)], status.description or "")
        if self._shut_down:
            # After this processor's own shutdown (the provider's) a call
            # is ignored, as the specification asks: not counted.
            sg.end(end_time)
        elif sg._end_refused(end_time):
            # The tracer shut down before the span ended (a signal, the
            # exit hook, its owner's shutdown): exported marked unended,
            # without its end and what was set since. It was lost in
            # silence; counted (and warned once), as the Go and Node
            # bridges count it, so a program can see what it lost.
            with self._lock:
                self._failures += 1

    @property
    def failures(self) -> int:
        """Spans, or parts of spans, spanguard refused or the bridge could
        not pass on: a span ended after the spanguard tracer shut down
        (other than by this processor's shutdown), whose end and what was
        set on it since were lost (the shutdown exported it marked
        `spanguard.unended`), and what failed in the bridge (logged once).
        The bridge never raises into the SDK; this is how a program sees
        what it lost."""
        return self._failures

    def _failed(self, where: str, error: Exception) -> None:
        if isinstance(error, SpanguardError) and getattr(error, "code", None) == _SHUT_DOWN:
            return  # a call after shutdown is ignored, as the specification asks, not reported
        with self._lock:
            self._failures += 1
            if self._failed_once:
                return
            self._failed_once = True
        _warn("the OpenTelemetry bridge failed in %s; that span is incomplete", where,
              exc_info=True)


# The span event attribute that holds an event log record's body (a map,
# a string, a list: as the record has it), as OpenTelemetry Java's
# event-to-span-event bridge named it.
LOG_RECORD_BODY = "log.record.body"


# Event records a SpanguardLogRecordProcessor given a SpanguardSpanExporter
# holds at most for spans not exported yet (`max_held`, `max_held_bytes`):
# past either, the oldest is counted `not_attached`. The defaults, unless
# the variables say otherwise (`_cap_from_env`); Node reads the same ones.
_MAX_HELD = 4096
_MAX_HELD_BYTES = 64 << 20
MAX_HELD_VARIABLE = "SPANGUARD_LOG_RECORDS_MAX_HELD"
MAX_HELD_BYTES_VARIABLE = "SPANGUARD_LOG_RECORDS_MAX_HELD_BYTES"
# The largest cap taken: the largest whole number a JavaScript number holds
# exactly, so that both bindings take the same values.
_MOST_HELD = (1 << 53) - 1
# The variables already warned about (once a process each).
_warned_variables: set = set()


def _cap(name: str, value) -> int:
    """`value` checked as a cap given in code: a whole number (an int or
    any integer type, numpy's too; not a bool) from 1 to 2**53 - 1.
    TypeError or ValueError naming `name` otherwise: 0 would count every
    record not attached at once, and a float, a string, NaN or infinity
    was a mistake."""
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"spanguard: {name} must be a whole number (an int), not {type(value).__name__}") from None
    if not 1 <= value <= _MOST_HELD:
        raise ValueError(f"spanguard: {name} must be from 1 to {_MOST_HELD}, not {value}")
    return value


def _cap_from_env(variable: str, default: int) -> int:
    """A cap from `variable` (SPANGUARD_LOG_RECORDS_MAX_HELD, ..._BYTES),
    `default` when unset or empty. A value that is not a whole number from
    1 to 2**53 - 1 is ignored, as spanguard ignores any wrong variable (as
    the OpenTelemetry SDKs do), and named in a warning, once: the default
    applies."""
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        return _cap(variable, int(raw, 10))
    except (TypeError, ValueError):
        if variable not in _warned_variables:
            _warned_variables.add(variable)
            _warn("%s=%.40r ignored: not a whole number from 1 to %d; the default, %d, "
                  "applies", variable, raw, _MOST_HELD, default)
        return default


def _hold_time(value) -> float:
    """`hold_s` checked: a finite number of seconds, 0 or more (an int or
    a float, not a bool): NaN or infinity held records until the caps."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"spanguard: hold_s must be a number of seconds, not {type(value).__name__}")
    if not 0 <= value < float("inf"):
        raise ValueError(f"spanguard: hold_s must be a finite number of seconds, 0 or more, not {value}")
    return float(value)


def _bsp_ms(name: str, default: int) -> int:
    """An OTEL_BSP_* variable in milliseconds, as the SDK's
    BatchSpanProcessor reads it (its default when unset or not a number)."""
    try:
        value = int(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value >= 0 else default


def _default_hold_s() -> float:
    """How long an event record waits for its span's export once the span
    has ended: twice the BatchSpanProcessor's schedule delay and export
    timeout (OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_EXPORT_TIMEOUT; 5 s and
    30 s by default: 70 s), time for a queued span to be exported once
    more after a timed-out try."""
    return 2 * (_bsp_ms("OTEL_BSP_SCHEDULE_DELAY", 5000) + _bsp_ms("OTEL_BSP_EXPORT_TIMEOUT", 30000)) / 1000


def _size(value, depth: int = 0) -> int:
    """About the memory `value` (a record's attributes or body) holds: a
    string's or bytes' own size, containers with what they hold."""
    if depth < 32:
        if isinstance(value, dict):
            return sys.getsizeof(value) + sum(_size(k, depth + 1) + _size(v, depth + 1) for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return sys.getsizeof(value) + sum(_size(v, depth + 1) for v in value)
    return sys.getsizeof(value)


def _event_args(record, name: str) -> tuple:
    """`Span.add_event`'s arguments for an event record: its event name,
    its attributes as they are (`event.name` left out when it says the
    same), its body under `log.record.body`, its time (its observed time
    when it has none), and the attributes the SDK's log limits dropped."""
    attributes = record.attributes
    event = dict(attributes) if attributes else {}
    if event.get("event.name") == name:
        del event["event.name"]  # the span event's name says it
    if record.body is not None:
        event[LOG_RECORD_BODY] = record.body
    return name, event, record.timestamp or record.observed_timestamp, _dropped_attributes(record)


def _span_of(record):
    """A weak reference to the SDK span whose context the record carries
    (the API's LogRecord keeps the `context` it was emitted in, since SDK
    1.35), or None: what says whether the span is still open."""
    context = getattr(record, "context", None)
    if context is None:
        return None
    span = _otel_trace.get_current_span(context)
    ctx = span.get_span_context()
    if ctx.span_id != record.span_id or ctx.trace_id != record.trace_id or not hasattr(span, "end_time"):
        return None
    try:
        return weakref.ref(span)
    except TypeError:
        return None


class _Waiting:
    """An event record held for the export of its span (`key`): what
    `add_event` will be given, about the memory it holds, its span (a weak
    reference, or None when the record did not say), when it came and when
    its span was first seen ended (monotonic seconds)."""

    __slots__ = ("key", "args", "size", "span", "since", "ended_at")

    def __init__(self, key: tuple, args: tuple, size: int, span, since: float):
        self.key, self.args, self.size, self.span, self.since = key, args, size, span, since
        self.ended_at = None

    def gone(self, now: float, hold_s: float) -> bool:
        """Whether its span can no longer reach the exporter: ended
        `hold_s` ago (from when a look first found it ended, or let go of:
        late, never early); for a record that named no span object,
        `hold_s` after it came. (The SDK's span processors get a
        ReadableSpan made at the end, not the span itself: the span is let
        go of while its copy still waits in the BatchSpanProcessor's queue.)"""
        if self.span is None:
            return now - self.since >= hold_s
        span = self.span()
        if span is not None and span.end_time is None:
            return False  # still open: a long call's prompt waits for it
        if self.ended_at is None:
            self.ended_at = now
        return now - self.ended_at >= hold_s


# The log record processors, for the fork hook below.
_LOG_PROCESSORS: weakref.WeakSet = weakref.WeakSet()


class _LogRecordCounts:
    """What one SpanguardLogRecordProcessor did with the event records it
    got: its `attached` and `not_attached`, and `held()`, its records
    waiting. The spanguard tracer keeps it (`Tracer._log_record_counts`)
    for `stats()`, so the counts stay with the tracer's other figures,
    even once the processor is let go of (then holding none)."""

    __slots__ = ("attached", "not_attached", "processor")

    def __init__(self, processor: SpanguardLogRecordProcessor):
        self.attached = 0
        self.not_attached = 0
        self.processor = weakref.ref(processor)

    def held(self) -> int:
        processor = self.processor()
        return 0 if processor is None else len(processor._waiting)


def _forget_held_in_child() -> None:
    """In a forked child the records held are the parent's, for spans
    its exporter sends (the SDK's BatchSpanProcessor empties its queue in a
    child): let go of, not counted, as the parent counts them. The counts
    start again, as the child's tracer's own figures do."""
    for processor in list(_LOG_PROCESSORS):
        processor._lock = threading.Lock()
        processor._waiting, processor._by_span, processor._held_bytes = {}, {}, 0
        processor._counts.attached = processor._counts.not_attached = 0


os.register_at_fork(after_in_child=_forget_held_in_child)


class SpanguardLogRecordProcessor(_LogRecordProcessor):
    """A LogRecordProcessor that records each event (a log record with an
    event name: `gen_ai.user.message`, `gen_ai.choice`,
    `gen_ai.client.inference.operation.details`, ...) emitted inside a
    span spanguard records as an event of that span in spanguard, whole:
    what the instrumentations that moved prompts and
    completions from span attributes to the Logs API
    (opentelemetry-instrumentation-openai-v2 with
    `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`, or
    `event_only` / `span_and_event` under
    `OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`;
    OpenLLMetry's `use_attributes=False`) emit. Without it their content
    reaches only a log exporter, or nothing when the application has no
    LoggerProvider, and the spans spanguard keeps hold no prompt.

        logs = LoggerProvider()
        logs.add_log_record_processor(SpanguardLogRecordProcessor(bridge))
        OpenAIInstrumentor().instrument(tracer_provider=provider, logger_provider=logs)

    `bridge` is the `SpanguardSpanProcessor` or the `SpanguardSpanExporter`
    the TracerProvider was given, whichever it is.

    The span event is named by the record's event name, at the record's
    timestamp (its observed one when it has none), with the record's
    attributes as they are (structured values, as the GenAI events'
    `gen_ai.input.messages` list of maps, stay structured: spanguard holds
    maps and arrays) and its body under `log.record.body` (as OpenTelemetry
    Java's event-to-span-event bridge names it), also as it is. The record is
    matched to its span by the span context it carries (the instrumentation
    may pass a context explicitly, as a stream's end does), not by the
    current span. The event goes to spanguard's span only: the SDK's span,
    and what the application's own exporters send, are left as they were.

    With the span processor, the event is added as it is emitted, to the
    span the processor has open; one whose span it does not have open
    (ended already, or begun before the bridge was added) is not attached:
    counted in `not_attached`.

    With the exporter, which gets each span only once it has ended and
    left the SDK's span processor, each event record waits (`held`) until
    the exporter gets its span in `export`, and is added to it then, at
    its own time: a record emitted after its span ended, before its
    export, too. One whose span does not come is counted `not_attached`:
    `hold_s` after its span was seen ended (by default twice the BatchSpanProcessor's schedule delay
    and export timeout, OTEL_BSP_*: 70 s; for a record that names no span
    the SDK made, `hold_s` after it came), at the exporter's shutdown, or,
    the oldest first, past `max_held` records or `max_held_bytes` of
    them (4096 and 64 MiB, or SPANGUARD_LOG_RECORDS_MAX_HELD and
    SPANGUARD_LOG_RECORDS_MAX_HELD_BYTES when set: whole numbers from 1 to
    2**53 - 1; a wrong one given here raises, a wrong variable is warned
    about once and the default applies). A record waits as long as its
    span is open, however long the call takes; what waits dies with a
    killed process (as the spans in the SDK's queue do: the span processor
    alone delivers those).

    The counts (`attached`, `not_attached`, `held`) are the tracer's too:
    its `stats()` adds up those of every log record processor given its
    bridge (`log_records_attached`, `log_records_not_attached`,
    `log_records_held`), and the bridge's shutdown says on stderr how many
    did not reach their spans.

    A record without an event name (a plain log line), without a span, or
    of an unsampled span is left alone. Never raises into the SDK; the
    record goes on to the LoggerProvider's other processors."""

    def __init__(self, bridge, *, max_held: int | None = None, max_held_bytes: int | None = None,
                 hold_s: float | None = None):
        if isinstance(bridge, SpanguardSpanExporter):
            self._exporter = bridge
            self._spans = bridge._bridge
        elif isinstance(bridge, SpanguardSpanProcessor):
            self._exporter = None
            self._spans = bridge
        else:
            raise TypeError("SpanguardLogRecordProcessor needs the SpanguardSpanProcessor or the "
                            "SpanguardSpanExporter whose spans it adds to")
        self._max_held = _cap_from_env(MAX_HELD_VARIABLE, _MAX_HELD) if max_held is None \
            else _cap("max_held", max_held)
        self._max_held_bytes = _cap_from_env(MAX_HELD_BYTES_VARIABLE, _MAX_HELD_BYTES) if max_held_bytes is None \
            else _cap("max_held_bytes", max_held_bytes)
        self._hold_s = _default_hold_s() if hold_s is None else _hold_time(hold_s)
        self._lock = threading.Lock()
        # `attached`, `not_attached`: kept by the tracer too, for its stats().
        self._counts = _LogRecordCounts(self)
        counts_of_tracer = getattr(self._spans._tracer, "_log_record_counts", None)
        if counts_of_tracer is not None:
            counts_of_tracer.append(self._counts)
        # The records held for the exporter, oldest first, by a number of
        # their own; the numbers of each span's (by trace and span id).
        self._waiting: dict[int, _Waiting] = {}
        self._by_span: dict[tuple[int, int], list[int]] = {}
        self._held_bytes = 0
        self._numbered = 0
        self._next_look = 0.0  # `_count_gone`: when to look again
        # Added by `_add_log_processor_to_zero_code_exporters`: no one holds
        # it to read its counts, so the exporter's shutdown says them.
        self._zero_code = False
        _LOG_PROCESSORS.add(self)
        if self._exporter is not None:
            self._exporter._log_processors.append(self)
        else:
            self._spans._log_processors.append(self)

    @property
    def attached(self) -> int:
        """Event records passed on to spanguard as span events (also in the
        tracer's `stats().log_records_attached`)."""
        return self._counts.attached

    @property
    def not_attached(self) -> int:
        """Event records of a sampled span that spanguard did not have open
        (with the exporter: whose span did not come, or that did not fit),
        or that spanguard refused (the span's event limit, a used-up payload
        pool: counted dropped on the span too), or that the bridge failed to
        pass on (logged once by the span processor, counted in its
        `failures` too). The tracer's `stats().log_records_not_attached`
        adds up those of its log record processors."""
        return self._counts.not_attached

    @property
    def held(self) -> int:
        """Event records waiting for their span's export (with the exporter):
        each ends attached or counted in `not_attached` (the tracer's
        `stats().log_records_held`)."""
        return len(self._waiting)

    def on_emit(self, log_data) -> None:
        # The SDK passes a ReadWriteLogRecord (LogData before 1.39): the
        # API's LogRecord is its `log_record`.
        record = getattr(log_data, "log_record", log_data)
        try:
            attributes = record.attributes
            name = getattr(record, "event_name", None)
            if not name and attributes:
                name = attributes.get("event.name")  # the Events API before event_name
            if not name or not record.span_id or not (record.trace_flags or 0) & _SAMPLED:
                return
            if self._exporter is not None:
                self._hold(record, name)
                return
            opened = self._spans._open.get((record.trace_id, record.span_id))
            held = None
            if opened is not None and not opened.ended:
                args = _event_args(record, name)
                before = opened.held_events()
                held = opened.span.add_event(*args)
                if held:
                    opened.logged = (opened.logged or []) + [(before, args)]
        except Exception as e:  # noqa: BLE001 - a processor must not throw into the SDK
            self._spans._failed("the log record processor", e)
            held = None
        with self._lock:
            if held:
                self._counts.attached += 1
            else:
                # False: spanguard refused it (the span's event limit or a
                # used-up payload pool), counted dropped on the span too.
                self._counts.not_attached += 1

    def _hold(self, record, name: str) -> None:
        """Holds an event record for the exporter's `export` of its span
        (`_attach_held`); counted at once when the exporter is shut down."""
        key = (record.trace_id, record.span_id)
        args = _event_args(record, name)
        size = _size(args[1]) + 256
        waiting = _Waiting(key, args, size, _span_of(record), time.monotonic())
        with self._lock:
            if self._exporter._shut_down:
                self._counts.not_attached += 1
                return
            n = self._numbered = self._numbered + 1
            self._waiting[n] = waiting
            self._by_span.setdefault(key, []).append(n)
            self._held_bytes += size
            # The oldest go past the caps (the newest too, alone past the bytes).
            while self._waiting and (len(self._waiting) > self._max_held or self._held_bytes > self._max_held_bytes):
                self._let_go(next(iter(self._waiting)))
        self._count_gone()

    def _let_go(self, n: int) -> None:
        """Counts held record `n` not attached (under the lock)."""
        waiting = self._waiting.pop(n)
        numbers = self._by_span[waiting.key]
        numbers.remove(n)
        if not numbers:
            del self._by_span[waiting.key]
        self._held_bytes -= waiting.size
        self._counts.not_attached += 1

    def _count_gone(self, everything: bool = False) -> None:
        """Counts not attached the held records whose span can no longer
        come (`_Waiting.gone`), or all of them (`everything`: the exporter
        shut down). Looks at most once a second (or every `hold_s`, when
        shorter): a look goes through every record held."""
        now = time.monotonic()
        if not everything and (now < self._next_look or not self._waiting):
            return
        with self._lock:
            self._next_look = now + min(1.0, self._hold_s)
            for n in [n for n, w in self._waiting.items() if everything or w.gone(now, self._hold_s)]:
                self._let_go(n)

    def _attach_held(self, key: tuple, opened: _Open) -> None:
        """Adds to the span the exporter is recording (`opened`, begun with
        the SDK span's own events) the records held for it, in the order
        they came, as `on_emit` adds them to an open span."""
        if not self._by_span:
            return
        with self._lock:
            numbers = self._by_span.pop(key, None)
            if not numbers:
                return
            records = [self._waiting.pop(n) for n in numbers]
            self._held_bytes -= sum(w.size for w in records)
        attached = 0
        for waiting in records:
            try:
                attached += bool(opened.span.add_event(*waiting.args))
            except Exception as e:  # noqa: BLE001 - an exporter must not throw into the SDK
                self._spans._failed("the log record processor", e)
        with self._lock:
            self._counts.attached += attached
            self._counts.not_attached += len(records) - attached

    def shutdown(self) -> None:
        """The spanguard tracer is the span processor's (or the exporter's):
        left to it. Records held for the exporter stay held: their spans may
        still be in the SDK's queue (the exporter's shutdown counts what is
        left then)."""
        self._count_gone()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing waits here: an event is passed on as it is emitted, or
        held until its span is exported."""
        self._count_gone()
        return True


def _say_not_attached(processors: list) -> None:
    """Says on stderr (logger "spanguard", once, at the shutdown of the
    span processor or exporter they were given: their counts are final
    then) how many event records `processors` could not put on their
    spans, with where they are counted: beside the spans lost that
    spanguard itself names as it stops. Nothing when none."""
    lost = sum(p.not_attached for p in processors)
    if lost:
        _warn("%d event record(s) sent through the Logs API (prompts, with some "
              "instrumentations) did not reach their spans (counted in the tracer's "
              "stats().log_records_not_attached)", lost)


# The exporters not shut down, for the flush below (weakly: one let go of
# without its shutdown is not kept for it).
_live_exporters: weakref.WeakSet = weakref.WeakSet()
# The providers `flush_before_shutdown` was given (weakly: a provider let
# go of is not kept for it).
_providers_to_flush: weakref.WeakSet = weakref.WeakSet()
# Reentrant: `_arm_signal_flush` also runs from an exporter's finalizer,
# which the garbage collector may call on a thread already in it.
_arm_lock = threading.RLock()


def _new_arm_lock_in_child() -> None:
    """A lock of its own in a forked child: a thread of the parent that
    held it at the fork (arming the flush; the GIL may pass to the forking
    thread meanwhile) is not in the child, where it stayed taken for good,
    and the child's first exporter made or shut down (a pre-fork server's
    worker starting its tracer) hung there."""
    global _arm_lock
    _arm_lock = threading.RLock()


os.register_at_fork(after_in_child=_new_arm_lock_in_child)


def flush_before_shutdown(provider) -> None:
    """Flushes `provider` (an OpenTelemetry `TracerProvider` that is not
    the global one, whose BatchSpanProcessor feeds a
    `SpanguardSpanExporter`) whenever spanguard is about to shut down with
    an exporter live: at SIGTERM, SIGINT, SIGHUP and SIGQUIT (the signal
    watchdog's flush), at interpreter exit and at a multiprocessing or
    Celery worker's exit. The global provider (`trace.set_tracer_provider`)
    is flushed then without this call; the SDK never tells an exporter
    which provider holds it, so a provider used directly must be named:

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(SpanguardSpanExporter(tracer)))
        spanguard.otel.flush_before_shutdown(provider)

    Its queue then reaches spanguard before the tracers freeze or shut
    down; otherwise it died with a process a signal ended. Held weakly
    (a provider let go of is not kept); giving one twice flushes it once.
    Anything with a `force_flush(timeout_millis)` will do."""
    if not callable(getattr(provider, "force_flush", None)):
        raise TypeError(f"spanguard: flush_before_shutdown takes a TracerProvider (something with force_flush), "
                        f"not {type(provider).__name__}")
    _providers_to_flush.add(provider)


def _exporter_live() -> bool:
    return any(not e._shut_down for e in list(_live_exporters))


def _arm_signal_flush(_=None) -> None:
    """Gives the library's signal watchdog `_flush_provider_before_signal`
    while an exporter is live, and takes it away once none is (shut down,
    or let go of): set, the watchdog takes the interpreter's lock at every
    signal to run it, which a process whose exporters were all shut down
    has no use for (and its signal waited on a lock another thread may hold
    for long). Looked up by name each time: a process that forked keeps
    what was set."""
    with _arm_lock:
        _native.set_before_signal_flush(_flush_provider_before_signal if _exporter_live() else None)


def _flush_providers(timeout_s: float) -> bool:
    """Flushes the global provider and those given to
    `flush_before_shutdown` (each once), while an exporter is live, within
    `timeout_s` in all: each one's `force_flush` hands the spans its
    BatchSpanProcessor holds to the exporter's `export`. False when one
    answered False (a processor shut down, or out of time) or failed.
    Never raises."""
    if not _exporter_live():
        return True
    flushed = True
    deadline = time.monotonic() + timeout_s
    providers = [_otel_trace.get_tracer_provider()]
    for provider in list(_providers_to_flush):
        if not any(provider is p for p in providers):
            providers.append(provider)
    for provider in providers:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            force_flush = getattr(provider, "force_flush", None)
            if force_flush is not None:  # the API's proxy before any is set has none
                flushed = force_flush(max(1, int(left * 1000))) is not False and flushed
        except Exception:  # noqa: BLE001 - the shutdown goes on without the SDK's
            flushed = False
            _warn("flushing an OpenTelemetry provider before shutting down failed",
                  exc_info=True)
    return flushed


def _flush_provider_before_signal(timeout_s: float) -> bool:
    """What the library's signal watchdog runs at SIGTERM (SIGINT, SIGHUP,
    SIGQUIT), on a thread of its own, before it flushes and freezes the
    tracers, while an exporter is live (`_arm_signal_flush`): the
    providers' `force_flush` (`_flush_providers`), which hands the spans
    their BatchSpanProcessors hold to the exporter's `export`. Frozen
    first, the tracers refused them, and a process the signal ends took
    them along. The watchdog waits for it `timeout_s` at most.

    True asks the watchdog to wait, for the rest of `timeout_s`, until no
    exporter is live (this hook taken away by `_arm_signal_flush`): a
    provider whose `force_flush` answered False may be shutting down on
    another thread. So it is when the signal was raised on the main
    thread as the program ended (uvicorn raises the SIGTERM it caught as
    its last act, and Python exits): the SDK's at-exit shutdown has its
    BatchSpanProcessor refuse the flush at once (it is shut down) while
    its worker thread has yet to hand the queue to the exporter, which the
    processor's shutdown shuts down once it has. The watchdog froze the
    tracers and ended the process before that worker got the
    interpreter's lock (on a loaded machine): the queue, all of it or what
    was not exported yet, was lost uncounted. The wait is the library's,
    outside the interpreter: a thread waiting inside it, woken as the
    main thread went on to finalize the interpreter, aborted the process.
    (A live exporter of another provider that is not shutting down holds
    the signal up for the rest of `timeout_s`; no span is lost by that.)"""
    return not _flush_providers(timeout_s)


# At exit (and a worker's), before the tracers shut down: the SDK's own
# atexit shutdown runs after spanguard's when the provider was made first.
_BEFORE_SHUTDOWN_ALL.append(_flush_providers)


class SpanguardSpanExporter(SpanExporter):
    """A SpanExporter that records each finished span in spanguard, whole,
    for what takes only an exporter: zero-code instrumentation
    (`OTEL_TRACES_EXPORTER=spanguard opentelemetry-instrument ...`, through
    the `opentelemetry_traces_exporter` entry point), OpenLLMetry's
    `Traceloop.init(exporter=...)`, a library's "additional exporters".

    Without `tracer` it makes its own `spanguard.Tracer()`, configured from
    the SPANGUARD_* and OTEL_* variables (the configurator constructs
    exporters with no arguments), and its `shutdown` shuts that tracer
    down. A tracer passed in stays its owner's: `shutdown` flushes it and
    leaves it running (it may hold other spans; it is shut down at
    interpreter exit or by its owner).

    Each span arrives as the SDK's own OTLP exporter would send it: its
    ids, parent, times, name, kind, scope, attributes, events, links,
    status, dropped counts and the provider's resource (a span is recorded
    as `SpanguardSpanProcessor.on_end` records one it never saw start).
    `export` answers SUCCESS once spanguard holds every span (its exporter
    retries and spools them from there), FAILURE for one it could not take
    (counted by the tracer, or after shutdown). Thread-safe (the SDK's
    BatchSpanProcessor calls `export` from its worker thread, the
    SimpleSpanProcessor from whichever thread ends a span); never raises
    into the SDK.

    An exporter sees a span only once it has ended and left the SDK's
    span processor: open spans, and spans still in a BatchSpanProcessor's
    queue, are not spanguard's until then (lost on SIGKILL; at SIGTERM,
    SIGINT, SIGHUP and SIGQUIT spanguard's signal watchdog first flushes
    the global provider, and those named to `flush_before_shutdown`, whose
    queues then reach the exporter, while an exporter is live; so does
    spanguard's exit hook). `SpanguardSpanProcessor` is what records a span
    from its start, so that a killed process still delivers it.

    Events sent through the Logs API (prompts, with some instrumentations)
    reach its spans through `SpanguardLogRecordProcessor(exporter)`, which
    holds each until `export` gets its span. Under `opentelemetry-instrument`
    the wheel adds it to the global LoggerProvider for the exporter the
    configurator made (`_add_log_processor_to_zero_code_exporters`)."""

    def __init__(self, tracer: Tracer | None = None):
        # A tracer of its own when none is given; its shutdown is ours.
        self._owns_tracer = tracer is None
        self._tracer = Tracer() if tracer is None else tracer
        # The processor's path for a span it never saw start (`_begin`,
        # then `_complete`), with its resource and scope passing; `_open`
        # and the setters' following are never used (`on_start` is not).
        self._bridge = SpanguardSpanProcessor(self._tracer)
        self._bridge._exporter = self
        self._shut_down = False
        # The SpanguardLogRecordProcessors given this exporter: the event
        # records they hold for a span are added to it in `export`.
        self._log_processors: list[SpanguardLogRecordProcessor] = []
        _live_exporters.add(self)
        # Let go of without its shutdown, it no longer asks for the flush
        # (not run at exit: the tracers' own exit hook comes then).
        weakref.finalize(self, _arm_signal_flush).atexit = False
        _arm_signal_flush()

    @property
    def tracer(self) -> Tracer:
        """The spanguard tracer the exporter records into: the one passed
        in, or the one it made. Its `stats()` says what became of the
        spans exported (`spans_exported`, `spooled_spans`, the dropped
        counts) and `sink_path()` where the local sink writes them, as for
        a tracer of one's own; read them after the provider's
        `force_flush` and `exporter.force_flush()` (or its shutdown), once
        the spans have reached it. A tracer the exporter made is still the
        exporter's: its `shutdown` shuts it down."""
        return self._tracer

    def export(self, spans) -> SpanExportResult:
        if self._shut_down:
            return SpanExportResult.FAILURE
        bridge = self._bridge
        logs = self._log_processors
        held = True
        for span in spans:
            try:
                fields = _context_fields(span.get_span_context())
                if not fields[2] & _SAMPLED:
                    continue  # left out, as the SDK's processors leave it
                bridge._pass_resource(span, "export")
                opened = bridge._begin(span, fields)
                # Not recording: the tracer shut down, or it had no room
                # (counted there); the span is not spanguard's.
                held = opened.span.is_recording() and held
                for log_processor in logs:  # the event records it held for the span
                    log_processor._attach_held(fields[:2], opened)
                opened.ended = True
                bridge._complete(span, opened)
            except Exception as e:  # noqa: BLE001 - an exporter must not throw into the SDK
                held = False
                bridge._failed("export", e)
        for log_processor in logs:
            log_processor._count_gone()
        return SpanExportResult.SUCCESS if held else SpanExportResult.FAILURE

    def shutdown(self, timeout_millis: float = 5000) -> None:
        """Later exports answer FAILURE. The spans exported so far are
        delivered or spooled when it returns (within `timeout_millis`; the
        BatchSpanProcessor passes what is left of its own timeout), as
        after the SDK's own exporter's shutdown: a tracer the exporter made
        is shut down; one passed in is flushed and left running, its
        owner's (it may hold other spans). Unflushed, they waited in its
        queue, lost to a process that then ends without its exit hooks (a
        multiprocessing worker leaves by os._exit)."""
        if self._shut_down:
            return
        self._shut_down = True
        _arm_signal_flush()
        for log_processor in self._log_processors:  # no span comes for what they hold now
            log_processor._count_gone(everything=True)
        _say_not_attached(self._log_processors)
        timeout = max(0.0, timeout_millis) / 1000
        try:
            if self._owns_tracer:
                self._tracer.shutdown(timeout)
            else:
                self._tracer.flush(timeout)
        except SpanguardError:
            pass  # closed already: its shutdown delivered what it held
        except Exception:  # noqa: BLE001 - an exporter must not throw into the SDK
            _warn("the exporter's tracer failed to shut down or flush", exc_info=True)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flushes the spanguard tracer: True once the spans exported so far
        were delivered or spooled. (The SDK's span processors' force_flush
        does not call it: they hand their spans to `export` and return.)"""
        if self._shut_down:
            return False
        # After the tracer closed, False rather than an exception, as the
        # processor answers.
        try:
            return self._tracer.flush(max(0.0, timeout_millis) / 1000)
        except SpanguardError:
            return False
        except Exception:  # noqa: BLE001 - an exporter must not throw into the SDK
            _warn("the exporter's flush failed", exc_info=True)
            return False


def _add_log_processor_to_zero_code_exporters() -> None:
    """`opentelemetry-instrument`'s `opentelemetry_pre_instrument` hook
    (the wheel's entry point): run once the SDK's configurator has set the
    global providers up, before the instrumentations are instrumented.
    Gives the global LoggerProvider (the configurator sets one even with
    OTEL_LOGS_EXPORTER=none) a `SpanguardLogRecordProcessor` for each
    `SpanguardSpanExporter` made without a tracer, as the configurator
    makes the one OTEL_TRACES_EXPORTER=spanguard names: the application
    holds no exporter to give one, so the prompts openai-v2 (event_only)
    and OpenLLMetry (use_attributes=False) send as Logs API events were
    lost to its spans, counted nowhere. An exporter made later (by the
    application, with its own setup) is left to it.

    With no LoggerProvider set (the SDK's configurator set one only with
    OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true until
    open-telemetry/opentelemetry-python#4340, December 2024; another
    configurator may set none) the instrumentations' events went
    to the API's no-op logger, lost uncounted: spanguard sets the SDK's
    LoggerProvider, with the tracer provider's resource and that
    processor, as today's configurator does (`_set_sdk_logger_provider`).
    A global provider that is not the SDK's (a no-op one set on purpose,
    another vendor's) takes no processor: said once, naming what to do,
    as its events can reach no span and be counted by no one. Never
    raises: an exception here would stop every instrumentation."""
    try:
        from opentelemetry._logs import get_logger_provider

        exporters = [e for e in list(_live_exporters) if e._owns_tracer and not e._shut_down
                     and not any(p._zero_code for p in e._log_processors)]
        if not exporters:
            return
        logs = get_logger_provider()
        add = getattr(logs, "add_log_record_processor", None)
        if add is None:
            logs = _set_sdk_logger_provider(logs)
            add = getattr(logs, "add_log_record_processor", None)
        if add is None:
            _warn("the global OpenTelemetry LoggerProvider is %s, not the SDK's: events "
                  "that instrumentations send through the Logs API (prompts and completions: "
                  "openai-v2 with OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=event_only, "
                  "OpenLLMetry with use_attributes=False) cannot reach spanguard's spans, and are "
                  "counted nowhere. Set opentelemetry.sdk._logs.LoggerProvider as the global one "
                  "(set_logger_provider), or have the instrumentation put the content on the span "
                  "(span_only; use_attributes=True)", type(logs).__name__)
            return
        for exporter in exporters:
            processor = SpanguardLogRecordProcessor(exporter)
            processor._zero_code = True
            add(processor)
    except Exception:  # noqa: BLE001 - the instrumentations must still be instrumented
        _warn("could not add the log record processor to the global LoggerProvider",
              exc_info=True)


def _set_sdk_logger_provider(current):
    """The SDK LoggerProvider set as the global one, when none is set
    (`current` is the API's proxy, which hands out loggers that forward to
    the global provider once one is set) and the SDK has one; else
    `current`, untouched. Its resource is the global tracer provider's, as
    the configurator gives both the same. Set once, as the API allows:
    the application's own `set_logger_provider` later is refused (the
    API's warning), as it is under today's configurator, which always
    sets one; its processors go on `get_logger_provider()` instead."""
    from opentelemetry import _logs

    try:
        from opentelemetry._logs._internal import ProxyLoggerProvider
        from opentelemetry.sdk._logs import LoggerProvider
    except ImportError:  # an SDK without the Logs API (or of another shape): nothing to set
        return current
    if not isinstance(current, ProxyLoggerProvider):
        return current
    resource = getattr(_otel_trace.get_tracer_provider(), "resource", None)
    provider = LoggerProvider(resource=resource) if resource is not None else LoggerProvider()
    _logs.set_logger_provider(provider)
    now = _logs.get_logger_provider()
    if now is provider:
        _logger.debug("no LoggerProvider was set; set the SDK's, so that events sent through the "
                      "Logs API reach the spans")
    return now
