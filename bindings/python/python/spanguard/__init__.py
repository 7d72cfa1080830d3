"""spanguard for Python: spans recorded in native code and delivered by
spanguard's exporter, kill-safe; and a bridge from the OpenTelemetry SDK
(`spanguard.otel`).

    import spanguard
    tracer = spanguard.Tracer(service_name="my-agent")
    with tracer.span("agent.session") as session:
        with tracer.span("llm.chat", kind=spanguard.KIND_CLIENT) as llm:
            llm.set_attribute("gen_ai.request.model", "gpt-4o")

The recording path (`spanguard._native`) is a compiled extension over the
spanguard library's C ABI; this module adds what is plain Python: the
`traced` decorator, context helpers for thread pools, and the hooks that
shut tracers down at interpreter exit, in multiprocessing workers and in
billiard's (Celery's prefork pool's) workers.

Errors: recording calls (beginning spans, setting attributes, events,
links, status, ending) never raise; what they could not record is counted
in `Tracer.stats()` and warned once through `logging` (logger
"spanguard"). Programming errors raise where they are made: a wrong type
or an unknown kind/status code (TypeError, ValueError), a tracer used
after `close()` (SpanguardError), an invalid setting (SpanguardError,
TypeError, ValueError).

News of the spans (the library's error callback: a batch lost or spooled,
a backend's warning, a setting ignored, spans not recorded, values cut) is
logged to the same logger once the program has configured logging, with
the library's message and `extra` attributes `spanguard_event` (its
number) and `spanguard_event_name`: at ERROR for spans lost, INFO for a
spooled batch delivered, WARNING for the rest (and for an event of a newer
library). Unconfigured, stderr has the library's own lines. The library's
threads never log themselves (`spanguard._events`): a thread of this
package logs the news as it comes, and a flush, shutdown or close logs,
before it returns, what the library told before it did.
"""

from __future__ import annotations

import atexit
import contextvars
import enum
import functools
import inspect
import os
import signal
import sys
import threading
from concurrent import futures
from dataclasses import dataclass, fields

from . import _events, _green, _native
from ._native import (
    KIND_CLIENT,
    KIND_CONSUMER,
    KIND_INTERNAL,
    KIND_PRODUCER,
    KIND_SERVER,
    KIND_UNSPECIFIED,
    STATUS_ERROR,
    STATUS_OK,
    STATUS_UNSET,
    Span,
    SpanguardError,
)

__all__ = [
    "Tracer", "Span", "SpanguardError", "Stats", "current_span", "wrap", "ThreadPoolExecutor",
    "KIND_UNSPECIFIED", "KIND_INTERNAL", "KIND_SERVER", "KIND_CLIENT", "KIND_PRODUCER", "KIND_CONSUMER",
    "STATUS_UNSET", "STATUS_OK", "STATUS_ERROR", "library_version", "FlushStatus",
]

__version__ = "0.1.0"

_CURRENT: contextvars.ContextVar = _native.CURRENT_SPAN


def library_version() -> str:
    """The version of the spanguard library compiled into this package."""
    return _native.LIBRARY_VERSION


@dataclass(frozen=True)
class Stats:
    """A tracer's counters (`spanguard_counters`, field for field) and the
    binding's own `values_rejected`: attribute values, traceparents and
    links it could not pass on (wrong type, out of range, invalid)."""

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
    exporter_throttled_ns: int = 0
    spans_unsampled: int = 0
    #: Spans from the spool directory the backend refused for good when
    #: replayed (or too large to send), or rejected in a partial success.
    dropped_replay_failed: int = 0
    dropped_replay_rejected: int = 0
    #: Panics the exporter thread caught (an internal bug).
    exporter_panics: int = 0
    #: Files in the spool or sink directory that could not be used,
    #: renamed to `<name>.unreadable`.
    files_set_aside: int = 0
    values_rejected: int = 0
    #: Values that found the payload pool used up and waited for chunks
    #: (the `wait` full policy), and of those, the values cut all the same:
    #: many waits stall the program; raise SPANGUARD_PAYLOAD_POOL_MIB.
    payload_waits: int = 0
    payload_waits_cut: int = 0
    #: Begins that found every span slot taken and waited for the exporter
    #: to give one back (the `wait` full policy), and the nanoseconds they
    #: waited in all: the program records faster than the exporter exports.
    slot_waits: int = 0
    slot_wait_ns: int = 0
    #: Spans still open when a shutdown for a termination signal ended them
    #: (`spanguard_shutdown_for_signal`), exported marked
    #: spanguard.interrupted: counted in spans_exported too, not as unended.
    #: Those the signal watchdog finds open at a death go to the crash dump
    #: and count in recovered_spans of the process that sends them.
    spans_interrupted_at_shutdown: int = 0
    #: Shutdowns that waited their timeout and a grace for an exporter
    #: stuck where nothing of spanguard's cuts it short (the error callback
    #: blocked) and left it running, its spans in the crash dump.
    exporter_waits_ran_out: int = 0
    #: Times the signal watchdog waited its whole second for the program's
    #: own signal handler (delivered after spanguard's flush) with the
    #: tracers frozen: it neither returned nor was found done (an exit or
    #: a longjmp from it). Process-wide: every tracer reports the same.
    host_handler_waits_ran_out: int = 0
    #: Event records sent through OpenTelemetry's Logs API (the prompts and
    #: completions of some GenAI instrumentations) that the
    #: `spanguard.otel.SpanguardLogRecordProcessor`s given this tracer's
    #: bridge put on their spans; those that did not reach their span (it
    #: did not come, or came ended; past the caps; refused), and those still
    #: waiting for their span's export (with `SpanguardSpanExporter`). The
    #: Python layer's own counts: the native hot path keeps nothing for them.
    log_records_attached: int = 0
    log_records_not_attached: int = 0
    log_records_held: int = 0


_STATS_FIELDS = frozenset(f.name for f in fields(Stats))


def current_span() -> Span | None:
    """The span of the innermost `with` block (or traced call) in this
    context, or None."""
    return _CURRENT.get()


# --- exit, fork and worker hooks ---------------------------------------------

_LIVE: set[Tracer] = set()
_LIVE_LOCK = threading.Lock()
_worker_exit_pid = 0
_after_forker_registered = False


class _Anchor:
    """What multiprocessing's after-fork registry holds (weakly) for us."""


_ANCHOR = _Anchor()


# What `_shutdown_all` runs before it shuts the tracers down, given half
# of its timeout: functions that hand spanguard the spans something else
# still holds for it. `spanguard.otel` adds the OpenTelemetry SDK's flush,
# whose BatchSpanProcessor queue feeds its exporter: at exit the SDK's own
# atexit shutdown does that, but it runs after ours when the provider was
# made before spanguard was imported (atexit runs last-registered first),
# and a worker's exit runs no atexit at all; the tracers, shut down first,
# refused those spans.
_BEFORE_SHUTDOWN_ALL: list = []


def _shutdown_all(timeout_s: float = 5.0) -> None:
    for before in list(_BEFORE_SHUTDOWN_ALL):
        try:
            before(timeout_s / 2)
        except Exception:  # noqa: BLE001 - an exit hook must not raise
            pass
    with _LIVE_LOCK:
        tracers = list(_LIVE)
    for tracer in tracers:
        try:
            tracer.shutdown(timeout_s)
        except Exception:  # noqa: BLE001 - an exit hook must not raise
            pass
    # The news the tracers told on their way out, logged while logging
    # and the interpreter are still whole (shutdown logged it unless a
    # handler held the reader up: waited for that, a little).
    try:
        _events.deliver(_events.WAIT_AT_FLUSH_S)
    except Exception:  # noqa: BLE001 - an exit hook must not raise
        pass
    # The interpreter is finalized next (at exit): not under the watchdog's
    # hook, a thread the library started that enters Python (it aborted the
    # process). Shuts it out, and waits for one inside Python.
    try:
        _native.settle_signals_at_exit()
    except Exception:  # noqa: BLE001 - an exit hook must not raise
        pass


def _arm_worker_exit() -> None:
    """In a multiprocessing child: shut the tracers down on the way out.
    Workers leave through os._exit, which skips atexit; before it,
    multiprocessing runs the finalizers registered in the process
    (util._exit_function), for fork, forkserver and spawn alike. A process
    it starts clears the finalizer registry as it begins (its parent's
    finalizers are not its own) and then runs the after-fork registry, so
    the finalizer is made again from there."""
    global _worker_exit_pid, _after_forker_registered
    _arm_billiard_worker_exit()
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is None and "billiard" in sys.modules:
        # billiard's processes run multiprocessing's registries, but its fork
        # start loads them only in the child's bootstrap, after this fork
        # hook: a tracer made before then left the child unarmed. billiard
        # is about to load the module anyway.
        import multiprocessing.util as mp_util
    if mp_util is None:
        return
    if _worker_exit_pid != os.getpid():
        # Lowest priority: after the other finalizers, whose work may end spans.
        mp_util.Finalize(None, _shutdown_all, exitpriority=-100)
        _worker_exit_pid = os.getpid()
    if not _after_forker_registered:
        mp_util.register_after_fork(_ANCHOR, _rearm_worker_exit)
        _after_forker_registered = True


def _arm_billiard_worker_exit() -> None:
    """In a billiard pool worker (Celery's prefork pool): the same, another
    way. billiard.util re-exports multiprocessing's registries, so the
    finalizer above is made in billiard's processes too, but a pool worker
    never runs it: it leaves through os._exit from inside its run
    (billiard.pool.Worker._do_exit: the pool's exit callback, a DEATH
    message to the pool, os._exit), before the process would run the
    finalizers; whether the pool recycles it (maxtasksperchild, max memory,
    a shrink), closes or terminates it. The tracers shut down there,
    after the exit callback: Celery's worker_process_shutdown signal, whose
    handlers may end spans. Called where the finalizer is made (a tracer
    made, a fork, a billiard process's start); billiard is never imported
    here, and its pool's workers have it loaded."""
    worker = getattr(sys.modules.get("billiard.pool"), "Worker", None)
    do_exit = getattr(worker, "_do_exit", None)
    if do_exit is None or getattr(do_exit, "_spanguard_shuts_down", False):
        return  # no billiard pool here, or wrapped already (a fork inherits it)

    @functools.wraps(do_exit)
    def _do_exit(self, *args, **kwargs):
        exit_callback = getattr(self, "on_exit", None)

        def exit_callback_then_shut_down(*cb_args, **cb_kwargs):
            try:
                if exit_callback is not None:
                    exit_callback(*cb_args, **cb_kwargs)
            finally:
                _shutdown_all()

        self.on_exit = exit_callback_then_shut_down
        return do_exit(self, *args, **kwargs)

    _do_exit._spanguard_shuts_down = True
    worker._do_exit = _do_exit


def _rearm_worker_exit(_anchor) -> None:
    global _worker_exit_pid
    _worker_exit_pid = 0  # the finalizer registry was just cleared
    if _LIVE:
        _arm_worker_exit()


def _before_fork() -> None:
    # The span current in the forking thread keeps its context: the child's
    # spans under it (multiprocessing's fork workers, an os.fork in a span)
    # join its trace, though its handle names nothing in the child.
    span = _CURRENT.get(None)
    if span is not None:
        span._keep_context_for_fork()


def _after_fork_in_child() -> None:
    global _LIVE_LOCK
    # A lock of its own: a thread of the parent that held it at the fork
    # (making or closing a tracer) is not in the child, where it stayed
    # taken for good, and the exit hook that takes it hung the worker at
    # its exit with its last spans unsent.
    _LIVE_LOCK = threading.Lock()
    _events.after_fork_in_child()
    # The library has given each tracer a fresh pipeline in the child (the
    # parent's spans stay the parent's); what the child ends must be sent
    # before a worker's os._exit. Its news is its own, read by a thread of
    # its own.
    if _LIVE:
        _arm_worker_exit()
        _events.start_reader()


atexit.register(_shutdown_all)
os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


# Python records each signal's handler at start-up and reports SIG_DFL for
# SIGTERM where the library's signal watchdog is. A server that swaps its
# own handler in and puts back "what was there" when it is done (uvicorn
# does, at the end of its graceful shutdown, then re-raises the signal it
# caught) set SIG_DFL over the watchdog: the re-raise killed the process
# with nothing flushed, the last schedule delay of spans (all of a
# BatchSpanProcessor's queue) lost uncounted. After a SIG_DFL set from
# Python, the watchdog goes back over it (it re-raises with the default
# once it has flushed). A handler of the application's own stays as set.
_set_signal_handler = signal.signal


@functools.wraps(_set_signal_handler)
def _signal_keeping_watchdog(signalnum, handler):
    old = _set_signal_handler(signalnum, handler)
    if handler == signal.SIG_DFL:
        _native.reclaim_signal_from_default(int(signalnum))
    return old


signal.signal = _signal_keeping_watchdog


# --- the tracer ---------------------------------------------------------------

class FlushStatus(str, enum.Enum):
    """How a flush or shutdown ended."""

    DELIVERED = "delivered"
    """Every span ended before the call was delivered (or refused for good,
    which the counters and the error callback report)."""
    SPOOLED = "spooled"
    """Done, but some of those spans only reached the spool directory (the
    backend was down): safe on disk, sent when the backend answers again."""
    TIMED_OUT = "timed_out"
    """Time ran out first; the export goes on in the background."""


# What opentelemetry-distro sets when unset (OpenTelemetryDistro._configure,
# which `opentelemetry-instrument` runs before the configurator makes the
# exporters): the protocol of its own OTLP exporter, not the user's choice.
# spanguard read it as the user's and warned a newcomer who set nothing to
# change a setting they never made. The library's table (src/config.rs
# DISTRO_DEFAULTS), the one every binding's library and `spanguard check`
# read the marker by.
_DISTRO_DEFAULTS = dict(_native.DISTRO_DEFAULTS)
# Where a process names, for its children, the variables the distro set in
# it or in an ancestor: NAME=value,... A child (subprocess, multiprocessing
# spawn or forkserver, a worker that re-execs, a Node tool or a Go helper)
# inherits the distro's grpc in the environment it starts with, as if the
# user had exported it; the name here says it did not, and the library
# reads it so in any language. An entry holds only while the variable keeps
# its value: a child given another value judges that value as the user's.
_DISTRO_SET_VARIABLE = _native.DISTRO_SET_VARIABLE
_initial_env_names: frozenset | None = None


def _start_env_names() -> frozenset | None:
    """The names in the environment this process started with
    (/proc/self/environ: what the shell, the parent, or
    opentelemetry-instrument's own --flags set before Python ran; later
    writes to os.environ are not there). None where it cannot be read."""
    global _initial_env_names
    if _initial_env_names is None:
        try:
            with open("/proc/self/environ", "rb") as f:
                block = f.read()
        except OSError:
            return None
        _initial_env_names = frozenset(
            entry.split(b"=", 1)[0].decode("utf-8", "replace") for entry in block.split(b"\0") if entry)
    return _initial_env_names


def _distro_ran_before_the_program() -> bool:
    """Whether opentelemetry-distro was configured by
    opentelemetry-instrument's sitecustomize, which the site module runs
    before any of the program's code: then nothing but the environment the
    process started with was there before the distro's defaults. False when
    the program started the auto-instrumentation itself (`initialize()`
    from its code): what it set in os.environ before is the user's, and
    cannot be told from the distro's afterwards."""
    if "opentelemetry.distro" not in sys.modules:
        return False
    site = getattr(sys.modules.get("sitecustomize"), "__file__", None)
    auto = getattr(sys.modules.get("opentelemetry.instrumentation.auto_instrumentation"), "__file__", None)
    return bool(site and auto) and \
        os.path.realpath(os.path.dirname(site)) == os.path.realpath(os.path.dirname(auto))


def _env_set_by_host() -> str | None:
    """The variables opentelemetry-distro set rather than the user, for
    the `env_set_by_host` setting (read as unset): those holding the
    distro's default now that either an ancestor named in
    _SPANGUARD_DISTRO_SET with that value, or that the distro set in this
    process (configured by opentelemetry-instrument before the program ran,
    and not in the environment the process started with). Named in
    _SPANGUARD_DISTRO_SET for this process's children. None when none: a
    variable is taken as the user's when it cannot be told (grpc the
    program set before starting the auto-instrumentation itself is warned
    of, even where the distro would have set the same)."""
    marked = {}
    for entry in os.environ.get(_DISTRO_SET_VARIABLE, "").split(","):
        name, sep, value = entry.strip().partition("=")
        if sep and name:
            marked[name] = value
    now = {name: os.environ.get(name) for name in _DISTRO_DEFAULTS}
    names = [name for name, default in _DISTRO_DEFAULTS.items() if now[name] == default == marked.get(name)]
    start = _start_env_names() if _distro_ran_before_the_program() else None
    if start is not None:
        names += [name for name, default in _DISTRO_DEFAULTS.items()
                  if now[name] == default and name not in start and name not in names]
    keep = {name: value for name, value in marked.items() if os.environ.get(name) == value}
    keep.update((name, now[name]) for name in names)
    if keep:
        os.environ[_DISTRO_SET_VARIABLE] = ",".join(f"{name}={value}" for name, value in keep.items())
    else:
        os.environ.pop(_DISTRO_SET_VARIABLE, None)
    return ",".join(names) or None


class Tracer(_native.Tracer):
    """A spanguard tracer. Settings are the `spanguard_config` fields by
    keyword (service_name, endpoint, headers (dict or "k=v,..."), sink_dir,
    spool_dir, protocol ("http/protobuf", "http/json"), compression
    ("gzip"), schedule_delay_ms, flight_recorder, ...; the payload pool
    payload_pool_mib, and OpenTelemetry's limits value_length_limit,
    attribute_count_limit, event_count_limit, link_count_limit,
    event_attribute_count_limit, link_attribute_count_limit,
    value_depth_limit); with
    from_env=True (the default) the OTEL_* and SPANGUARD_* variables apply
    on top (a resource attribute or service_name given here wins). A wrong
    setting given here raises SpanguardError; a wrong variable is ignored,
    as the OpenTelemetry SDKs ignore one, and named in a warning on stderr.
    What opentelemetry-distro set by default (OTEL_EXPORTER_OTLP_PROTOCOL=grpc
    under `opentelemetry-instrument`, when the user set none) is read as
    unset, without a warning, in the process and in its children that
    inherit it (`env_set_by_host`: the names, comma-separated).

    Shut down at interpreter exit, and at the exit of a multiprocessing or
    billiard (Celery prefork) pool worker, if not before. Every method may be called from any thread."""

    def __new__(cls, from_env: bool = True, **settings):
        if from_env and settings.get("env_set_by_host") is None:
            settings["env_set_by_host"] = _env_set_by_host()
        return super().__new__(cls, from_env, **settings)

    def __init__(self, from_env: bool = True, **settings):
        super().__init__()
        # What the OpenTelemetry bridge's log record processors feeding
        # this tracer counted (`spanguard.otel._LogRecordCounts`), for stats().
        self._log_record_counts: list = []
        with _LIVE_LOCK:
            _LIVE.add(self)
        _arm_worker_exit()
        _events.start_reader()

    # `with tracer.span(...) as span:` begins a span as start_span does; the
    # Span's `with` block makes it current and ends it, and an exception
    # sets status ERROR with an `exception` event, and propagates.
    span = _native.Tracer.start_span

    def traced(self, name=None, *, kind: _native.SpanKindArg = KIND_INTERNAL, attributes: dict | None = None):
        """Decorator: each call runs in a span (named after the function
        unless `name` is given). Works on functions, `async def` functions,
        generators and async generators; the span covers the whole call or
        iteration and is current inside it. An exception sets status ERROR,
        is recorded as an `exception` event, and propagates.

        `@tracer.traced` and `@tracer.traced("name", kind=...)` both work;
        `kind` is what start_span takes, and a wrong one raises here, where
        the decorator is written, not at every call."""
        if callable(name):
            return self.traced()(name)
        kind = _native.span_kind(kind)

        def decorate(fn):
            return _traced(self, name or fn.__qualname__, kind, attributes, fn)
        return decorate

    # Each of flush, shutdown and close logs, before it returns, the news
    # the library told until then (`_events`): a program that flushes and
    # then looks at its logs finds it there.
    def flush(self, timeout_s: float = 5.0) -> bool:
        """Waits until every span ended before the call is delivered or
        spooled, at most `timeout_s`. True when it was; False on timeout,
        and after shutdown or close."""
        try:
            return _green.off_the_hub(super().flush, timeout_s)
        finally:
            _events.deliver(min(timeout_s, _events.WAIT_AT_FLUSH_S))

    def flush_status(self, timeout_s: float = 5.0) -> FlushStatus:
        """Like flush, saying whether the spans were delivered or only
        spooled (safe on disk while the backend is down)."""
        try:
            return FlushStatus(_green.off_the_hub(super().flush_status, timeout_s))
        finally:
            _events.deliver(min(timeout_s, _events.WAIT_AT_FLUSH_S))

    def shutdown(self, timeout_s: float = 5.0) -> bool:
        """Flushes, exports the spans still open (marked
        `spanguard.unended`), stops. True when done in time; safe to call
        twice."""
        try:
            return _green.off_the_hub(super().shutdown, timeout_s)
        finally:
            _events.deliver(min(timeout_s, _events.WAIT_AT_FLUSH_S))

    def shutdown_status(self, timeout_s: float = 5.0) -> FlushStatus:
        """Like shutdown, saying whether the spans were delivered or only
        spooled. A second call says DELIVERED (nothing was left)."""
        try:
            return FlushStatus(_green.off_the_hub(super().shutdown_status, timeout_s))
        finally:
            _events.deliver(min(timeout_s, _events.WAIT_AT_FLUSH_S))

    def stats(self) -> Stats:
        counters = self._counters()
        stats = {k: v for k, v in counters.items() if k in _STATS_FIELDS}
        attached = not_attached = held = 0
        for counts in list(getattr(self, "_log_record_counts", ())):
            attached += counts.attached
            not_attached += counts.not_attached
            held += counts.held()
        return Stats(**stats, log_records_attached=attached, log_records_not_attached=not_attached,
                     log_records_held=held)

    def close(self) -> None:
        """Shuts down (if needed) and frees the tracer. Safe to call twice;
        the tracer raises SpanguardError when used after it (flush() says False,
        shutdown() True: nothing is left). Call it after
        every other call on the tracer and its spans has returned."""
        with _LIVE_LOCK:
            _LIVE.discard(self)
        try:
            _green.off_the_hub(super().close)
        finally:
            _events.deliver(_events.WAIT_AT_FLUSH_S)

    def __enter__(self) -> Tracer:
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False


# --- traced -------------------------------------------------------------------

def _traced(tracer: Tracer, name: str, kind: int, attributes, fn):
    if inspect.isasyncgenfunction(fn):
        @functools.wraps(fn)
        async def traced_async_generator(*args, **kwargs):
            span = tracer.start_span(name, kind=kind, attributes=attributes)
            try:
                agen = _in_span(span, fn, *args, **kwargs)
                sent, thrown = None, None
                while True:
                    token = _CURRENT.set(span)
                    try:
                        item = await (agen.asend(sent) if thrown is None else agen.athrow(thrown))
                    except StopAsyncIteration:
                        return
                    finally:
                        _CURRENT.reset(token)
                    sent, thrown = None, None
                    try:
                        sent = yield item
                    except GeneratorExit:
                        token = _CURRENT.set(span)
                        try:
                            await agen.aclose()
                        finally:
                            _CURRENT.reset(token)
                        raise
                    except BaseException as e:  # noqa: BLE001 - passed on to the generator
                        thrown = e
            except GeneratorExit:
                raise
            except BaseException as exc:
                span.record_exception(exc)
                raise
            finally:
                span.end()
        return traced_async_generator

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def traced_coroutine(*args, **kwargs):
            with tracer.span(name, kind=kind, attributes=attributes):
                return await fn(*args, **kwargs)
        return traced_coroutine

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def traced_generator(*args, **kwargs):
            span = tracer.start_span(name, kind=kind, attributes=attributes)
            try:
                gen = _in_span(span, fn, *args, **kwargs)
                sent, thrown = None, None
                while True:
                    token = _CURRENT.set(span)
                    try:
                        item = gen.send(sent) if thrown is None else gen.throw(thrown)
                    except StopIteration as stop:
                        return stop.value
                    finally:
                        _CURRENT.reset(token)
                    sent, thrown = None, None
                    try:
                        sent = yield item
                    except GeneratorExit:
                        _in_span(span, gen.close)
                        raise
                    except BaseException as e:  # noqa: BLE001 - passed on to the generator
                        thrown = e
            except GeneratorExit:
                raise
            except BaseException as exc:
                span.record_exception(exc)
                raise
            finally:
                span.end()
        return traced_generator

    @functools.wraps(fn)
    def traced_function(*args, **kwargs):
        with tracer.span(name, kind=kind, attributes=attributes):
            return fn(*args, **kwargs)
    return traced_function


def _in_span(span: Span, fn, *args, **kwargs):
    """Calls fn with `span` current. A generator's steps run this way, one
    at a time, so that between steps the caller's context is its own."""
    token = _CURRENT.set(span)
    try:
        return fn(*args, **kwargs)
    finally:
        _CURRENT.reset(token)


# --- threads ------------------------------------------------------------------

def wrap(fn):
    """`fn` bound to the current context (and so the current span): call
    the result in another thread, and spans begun there are children of
    the span current here. New threads do not inherit the context by
    themselves (threading.Thread starts from an empty one)."""
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def in_context(*args, **kwargs):
        # A copy per call: one Context cannot be entered by two threads.
        return ctx.copy().run(fn, *args, **kwargs)
    return in_context


class ThreadPoolExecutor(futures.ThreadPoolExecutor):
    """A concurrent.futures.ThreadPoolExecutor whose tasks run in the
    context of the code that submitted them, so spans they begin are
    children of the span current at `submit` (or `map`)."""

    def submit(self, fn, /, *args, **kwargs):
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)
