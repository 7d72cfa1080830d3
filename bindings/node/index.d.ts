/** Span kinds: @opentelemetry/api's SpanKind numbers, so its SpanKind.SERVER is KIND.SERVER. */
export declare const KIND: { INTERNAL: 0; SERVER: 1; CLIENT: 2; PRODUCER: 3; CONSUMER: 4 };
/** Status codes: OTLP's and @opentelemetry/api's SpanStatusCode numbers. */
export declare const STATUS: { UNSET: 0; OK: 1; ERROR: 2 };
/**
 * A span kind: one of KIND (a SpanKind of @opentelemetry/api is one), or its name in any case; undefined is
 * INTERNAL. Anything else throws a SpanguardError (INVALID_ARGUMENT).
 */
export type SpanKindInput =
  | 0 | 1 | 2 | 3 | 4
  | 'internal' | 'server' | 'client' | 'producer' | 'consumer'
  | 'INTERNAL' | 'SERVER' | 'CLIENT' | 'PRODUCER' | 'CONSUMER';
/**
 * A status: one of STATUS (a SpanStatusCode of @opentelemetry/api is one), its name in any case, or
 * OpenTelemetry's SpanStatus ({ code, message }). Anything else throws a SpanguardError (INVALID_ARGUMENT).
 */
export type SpanStatusInput =
  | 0 | 1 | 2 | 'unset' | 'ok' | 'error' | 'UNSET' | 'OK' | 'ERROR' | { code: number; message?: string };
export declare const RESULT: {
  OK: 0; NULL_ARGUMENT: 1; INVALID_ARGUMENT: 2; STALE_SPAN: 3; ALREADY_ENDED: 4; SHUT_DOWN: 5;
  BUFFER_FULL: 6; LIMIT_REACHED: 7; TIMEOUT: 8; BUFFER_TOO_SMALL: 9; INVALID_TRACEPARENT: 10;
  INVALID_CONFIG: 11; IO: 12; TOO_MANY_TRACERS: 13; PANIC: 14; TRUNCATED: 15; UTF8_REPLACED: 16;
  PARENT_STALE: 17; NON_RECORDING: 18; SPOOLED: 19; WOULD_WAIT: 20; EMPTY_KEY: 21;
};
/**
 * An attribute value: a string, a number (an int64 when it is an integer,
 * else a double), a BigInt (int64), a boolean; an Array of strings, of
 * numbers (an int64 array when every element is a safe integer, else
 * doubles: [1, 2] is ints, [1, 2.5] doubles), of booleans or of BigInts
 * (OpenTelemetry's homogeneous arrays); or a Uint8Array or Buffer (a bytes
 * value). null and undefined are ignored; in such an array they are the
 * elements' zero ('', 0, false: OpenTelemetry keeps nulls in arrays, or
 * lets an exporter send those). A plain object (a map), an Array of mixed
 * or nested elements, and null or undefined inside those, are sent whole
 * as OpenTelemetry's complex attribute values (AnyValue: kvlistValue,
 * arrayValue, the empty value): see AnyValue; one nested deeper than the
 * depth limit (64), or holding itself, arrives cut there (the empty value
 * in place of what is deeper, counted in stats().values_truncated).
 * Anything else (a Date, a Map, a class instance, a function, a symbol, a
 * value holding more than a million values) is left out with a warning
 * given once, counted in stats().values_rejected, never thrown.
 */
export type AttributeValue =
  | string | number | bigint | boolean
  | Array<string | null | undefined> | Array<number | null | undefined>
  | Array<boolean | null | undefined> | Array<bigint | null | undefined>
  | Uint8Array
  | AnyValueMap | AnyValue[];
/** An element of a complex attribute value: any value, nested. */
export type AnyValue = string | number | bigint | boolean | Uint8Array | null | undefined | AnyValueMap | AnyValue[];
/** A map in a complex attribute value: a plain object (its own enumerable string keys, in order). */
export interface AnyValueMap { [key: string]: AnyValue }
/**
 * Attributes by key. A null or undefined value is ignored (OpenTelemetry's
 * own `Attributes` type allows undefined), so such a record is taken as is.
 */
export type Attributes = Record<string, AttributeValue | null | undefined>;
/** [seconds, nanoseconds] since the epoch (OpenTelemetry's HrTime), a Date, or epoch milliseconds. */
export type TimeInput = [number, number] | Date | number;
/** A span whose ids another SDK chose (the OpenTelemetry bridge). */
export interface ForeignSpanOptions {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  parentIsRemote?: boolean;
  /**
   * The SDK applied its span limits already (the bridge sets it): the
   * tracer's count and value length limits do not apply to this span, so
   * what the SDK kept arrives whole (up to 32767 of each).
   */
  limitedByCaller?: boolean;
  traceFlags?: number;
  traceState?: string;
  startTime?: TimeInput;
  /** As SpanOptions.kind. */
  kind?: SpanKindInput | undefined;
  scopeName?: string;
  scopeVersion?: string;
  /** The scope's schema URL (an OpenTelemetry tracer's schemaUrl). */
  scopeSchemaUrl?: string;
  attributes?: Attributes;
}
export interface SpanOptions {
  /**
   * One of KIND (@opentelemetry/api's SpanKind numbers: SpanKind.CLIENT is KIND.CLIENT), or its name ('client');
   * default INTERNAL. Anything else throws a SpanguardError (INVALID_ARGUMENT).
   */
  kind?: SpanKindInput | undefined;
  /** The parent; by default the span of the innermost withSpan, else none (a new trace). */
  parent?: Span | undefined;
  /** Attributes the span has from its start (one native call). */
  attributes?: Attributes | undefined;
  /** A W3C traceparent from another process, to continue its trace. */
  traceparent?: string | undefined;
}
/**
 * A spanguard tracer's options. An option of the wrong type (a string for a
 * number, a number out of 0..4294967295 or not whole, an unknown protocol)
 * throws SpanguardError (RESULT.INVALID_CONFIG) naming it and what it
 * takes; undefined or null leaves it unset; an unknown option throws
 * TypeError.
 */
export interface TracerOptions {
  serviceName?: string | null | undefined;
  endpoint?: string | null | undefined;
  headers?: string | Record<string, string> | null | undefined;
  resourceAttributes?: string | Record<string, string> | null | undefined;
  sinkDir?: string | null | undefined;
  spoolDir?: string | null | undefined;
  protocol?: 'http/protobuf' | 'http/json' | null | undefined;
  compression?: 'none' | 'gzip' | null | undefined;
  scheduleDelayMs?: number | null | undefined;
  requestTimeoutMs?: number | null | undefined;
  exportTimeoutMs?: number | null | undefined;
  maxQueueSize?: number | null | undefined;
  maxExportBatchSize?: number | null | undefined;
  maxOpenSpans?: number | null | undefined;
  /**
   * What a begin does when every span slot is taken (SPANGUARD_FULL_POLICY): 'wait' (default) wakes the exporter
   * and waits up to `fullWaitMs` for it to give a slot back (counted in stats().slot_waits); 'drop' returns at
   * once with a span that records nothing, counted in stats().dropped_buffer_full. On Node the waiting thread is
   * the event loop.
   */
  fullPolicy?: 'wait' | 'drop' | null | undefined;
  /** With fullPolicy 'wait', the longest a begin (or a value, for the payload pool) waits, in ms (default 200). */
  fullWaitMs?: number | null | undefined;
  /**
   * Which spans are recorded and exported, by OTEL_TRACES_SAMPLER's names (default 'parentbased_always_on').
   * A span left out has ids and propagates its context but records nothing; counted in stats().spans_unsampled.
   */
  sampler?: 'parentbased_always_on' | 'always_on' | 'always_off' | 'traceidratio' | 'parentbased_always_off'
    | 'parentbased_traceidratio' | null | undefined;
  /** The share of traces the '*traceidratio' samplers keep, 0 to 1 (default 1; OTEL_TRACES_SAMPLER_ARG). */
  samplerRatio?: number | null | undefined;
  /** Keep the spans in a file mapped in memory, which outlives a SIGKILL: the next process on the spool directory sends them (default false). */
  flightRecorder?: boolean | null | undefined;
  /** Populate every span slot at start: no span takes a page fault; the slots' whole size is resident from the start. */
  prefaultSlots?: boolean | null | undefined;
  /**
   * The library's own signal handlers (not given: its termination watchdog alone, under the process hooks, when
   * they are on; false: none; true: the crash handlers too, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, which dump
   * the spans for the next start, leaving V8's WebAssembly traps to V8). Node owns signals, see processHooks.
   */
  installSignalHandlers?: boolean | null | undefined;
  spoolMaxMib?: number | null | undefined;
  signalFlushTimeoutMs?: number | null | undefined;
  /** The exporter thread's CPU cap in percent of one core, 1..100 (default 50). */
  exporterMaxCpuPercent?: number | null | undefined;
  /** The payload pool in MiB: what spans hold past their slots (default 256). */
  payloadPoolMib?: number | null | undefined;
  /** The longest value, each array element too: a string's characters (code points, as OpenTelemetry counts them), a bytes value's bytes (default: none). */
  valueLengthLimit?: number | null | undefined;
  /** How deep an array or map value may nest, 1..128 (default 64; SPANGUARD_ATTRIBUTE_VALUE_DEPTH_LIMIT): the attribute's value is level 1, each element or map value one more; one deeper is replaced by the empty value, counted in values_truncated. */
  valueDepthLimit?: number | null | undefined;
  /** Attributes per span (default 128). */
  attributeCountLimit?: number | null | undefined;
  /** Events per span (default 128). */
  eventCountLimit?: number | null | undefined;
  /** Links per span (default 128). */
  linkCountLimit?: number | null | undefined;
  /** Attributes per event (default 128). */
  eventAttributeCountLimit?: number | null | undefined;
  /** Attributes per link (default 128). */
  linkAttributeCountLimit?: number | null | undefined;
  /** PEM file of the CA certificates that verify the backend (OTEL_EXPORTER_OTLP_CERTIFICATE). */
  certificate?: string | null | undefined;
  /** PEM files of a client certificate and its key, for mutual TLS. */
  clientCertificate?: string | null | undefined;
  clientKey?: string | null | undefined;
  /** The largest request body of several spans in bytes, before compression (default 1000000); a span alone over it goes whole in a request of its own, up to 64 MiB or half the spool's cap. */
  maxRequestBytes?: number | null | undefined;
  /** The longest local sink line in bytes, newline included (default 1048576). */
  sinkMaxLineBytes?: number | null | undefined;
  /** What spanguard writes to stderr: 'none' | 'error' | 'warn' (default) | 'info' | 'debug'. */
  logLevel?: string | null | undefined;
  fromEnv?: boolean | null | undefined;
  /**
   * The process hooks (installProcessHooks), on by default: SIGTERM and SIGINT deliver or spool every span, the
   * open ones marked interrupted, then end the process as Node would have. false leaves the signals to Node alone
   * (spans not yet exported are lost at them); so does SPANGUARD_PROCESS_HOOKS=false, unless fromEnv is false.
   */
  processHooks?: boolean | null | undefined;
}
/** A call the program got wrong (a bad config or argument); `code` is one of RESULT. A span's calls do not throw for what the library did not record (counted in stats(), warned about once). */
export declare class SpanguardError extends Error {
  code: number;
}
/**
 * A started span, begun by a Tracer (startSpan, withSpan): constructing one throws a TypeError. Its internals are
 * private: its methods called on anything but the Span (a copy, a Proxy, `this` bound to another object) throw a
 * TypeError and leave it untouched.
 */
export declare class Span {
  private constructor();
  readonly name: string;
  setAttribute(key: string, value: AttributeValue | null | undefined): this;
  /** Sets several attributes in one native call (one per 128 attributes). */
  setAttributes(attrs: Attributes): this;
  /** setAttributes with the attributes as two lists of the same length (the bridge's form). */
  setAttributeLists(keys: string[], values: Array<AttributeValue | null | undefined>): this;
  /** Renames the span (OpenTelemetry's updateName): it is exported with its last name. */
  updateName(name: string): this;
  /** An event at `time` (an OpenTelemetry HrTime [s, ns], a Date or epoch milliseconds; default now). */
  addEvent(name: string, attrs?: Attributes, time?: TimeInput): this;
  /** A link to another span, given as a W3C traceparent, with the linked span's tracestate if it has one. */
  addLink(traceparent: string, attrs?: Attributes, tracestate?: string): this;
  /**
   * A link to another span given by its ids (hex), W3C trace flags, attributes,
   * tracestate and whether its context was remote (undefined: not known). A
   * link with all-zero ids is kept when it has attributes or a tracestate.
   */
  addLinkIds(traceId: string, spanId: string, traceFlags?: number, attrs?: Attributes, tracestate?: string,
    isRemote?: boolean): this;
  /**
   * `addEvent`, answering what became of the event: true, the span holds it (its name cut, maybe); false, refused
   * and counted in the span's dropped events (its event limit, or no room left in the payload pool); null, neither
   * (an ended span, a shut-down tracer, a span that records nothing). For a bridge that must know which of those it
   * passed on the span holds.
   */
  tryAddEvent(name: string, attrs?: Attributes, time?: TimeInput, droppedAttributes?: number): boolean | null;
  /**
   * `addLinkIds`, answering what became of the link as `tryAddEvent` does (null too for a link left out).
   * `droppedAttributes` (both): what another SDK already dropped of the event's or link's attributes, exported in
   * its dropped count with spanguard's own.
   */
  tryAddLinkIds(traceId: string, spanId: string, traceFlags?: number, attrs?: Attributes, tracestate?: string,
    isRemote?: boolean, droppedAttributes?: number): boolean | null;
  /**
   * Adds to the span's dropped counts what another SDK dropped before the span reached spanguard. Each count is a
   * whole number from 0 to 4294967295; another value throws a SpanguardError (INVALID_ARGUMENT).
   */
  addDroppedCounts(attributes?: number, events?: number, links?: number): this;
  /**
   * Drops the span's `events` oldest events and `links` oldest links, counted dropped unless `counted` is false
   * (the bridge counted them with addDroppedCounts as the SDK evicted them): what the bridge does when the SDK
   * evicted, past its limit, some it had passed on. Each count is a whole number from 0 to 4294967295; another
   * value throws a SpanguardError (INVALID_ARGUMENT).
   */
  dropOldest(events?: number, links?: number, counted?: boolean): this;
  /**
   * Sets the status: a code of STATUS (UNSET, OK, ERROR, OpenTelemetry's
   * SpanStatusCode numbers too) or its name in any case, or OpenTelemetry's SpanStatus
   * object ({ code, message }). Anything else throws a SpanguardError (INVALID_ARGUMENT), nothing set: a
   * programming error, as in the Python binding (ValueError) and the Go one (an error).
   */
  setStatus(code: SpanStatusInput, message?: string): this;
  /** An `exception` event (type, message, stacktrace) at `time`, and status ERROR. */
  recordException(err: unknown, time?: TimeInput): this;
  /** The W3C traceparent; '' for a span that records nothing. The same after its end: an ended span keeps its context and still parents spans. */
  traceparent(): string;
  /** Ends the span, now or at `endTime`. Once. */
  end(endTime?: TimeInput): void;
}
/**
 * What `tracer.stats()` answers: the library's counters (`spanguard_counters` in spanguard.h; README.md,
 * "Counters", says what each means) and the binding's `values_rejected`. Once the queue is empty and nothing
 * is in flight, spans_ended = spans_exported + spooled_spans + dropped_export_failed + dropped_rejected
 * + spans_unsampled.
 */
export interface Stats {
  spans_begun: number;
  spans_ended: number;
  /** Accepted by the backend (or the local sink) on their first trip. */
  spans_exported: number;
  queue_depth: number;
  spans_open: number;
  /** Spans never begun: every slot was taken (not in spans_ended). */
  dropped_buffer_full: number;
  /** Lost on their first trip (refused for good, too large, the spool unwritable). */
  dropped_export_failed: number;
  /** Rejected by the backend in a partial success. */
  dropped_rejected: number;
  /** Spans of spool files deleted at the spool's cap. */
  dropped_spool_overflow: number;
  spans_unended_at_shutdown: number;
  batches_sent: number;
  batches_failed: number;
  bytes_sent: number;
  retries: number;
  attributes_dropped: number;
  events_dropped: number;
  links_dropped: number;
  values_truncated: number;
  utf8_replaced: number;
  spooled_batches: number;
  /** Spans whose first trip ended in the spool (sent later: the replay counters). */
  spooled_spans: number;
  replayed_batches: number;
  replayed_spans: number;
  spool_bytes: number;
  recovered_spans: number;
  exporter_throttled_ns: number;
  /** Left out by the sampler (OTEL_TRACES_SAMPLER): counted in spans_ended, never exported, by design. */
  spans_unsampled: number;
  /** Spans from the spool directory the backend refused for good when replayed (or too large to send). */
  dropped_replay_failed: number;
  /** Spans from the spool directory a backend rejected in a partial success when replayed. */
  dropped_replay_rejected: number;
  /** Panics the exporter thread caught (an internal bug). */
  exporter_panics: number;
  /** Files in the spool directory that could not be used, renamed to `<name>.unreadable`. */
  files_set_aside: number;
  /**
   * Values that found the payload pool used up and waited for chunks (the
   * `wait` full policy), each stalling its caller (on Node, the event loop)
   * up to `full_wait_ms`. Many: raise SPANGUARD_PAYLOAD_POOL_MIB.
   */
  payload_waits: number;
  /** Of those, values cut all the same (counted in `values_truncated` too). */
  payload_waits_cut: number;
  /**
   * Begins that found every span slot taken and waited for the exporter to
   * give one back (the `wait` full policy), and the nanoseconds they
   * waited in all: the program records faster than the exporter exports.
   */
  slot_waits: number;
  slot_wait_ns: number;
  /**
   * Spans still open when a shutdown for a termination signal ended them
   * (`installProcessHooks`' SIGTERM, SIGINT...), exported marked
   * spanguard.interrupted: counted in `spans_exported` too, not as unended.
   */
  spans_interrupted_at_shutdown: number;
  /**
   * Shutdowns that waited their timeout and a grace for an exporter stuck where nothing of spanguard's cuts
   * it short (the error callback blocked) and left it running, its spans in the crash dump.
   */
  exporter_waits_ran_out: number;
  /**
   * Times the signal watchdog waited its whole second for the program's own signal handler (delivered after
   * spanguard's flush) with the tracers frozen: it neither returned nor was found done (an exit or a longjmp
   * from it). Process-wide: every tracer reports the same count.
   */
  host_handler_waits_ran_out: number;
  /** Attribute values of no attribute type, left out by the binding. */
  values_rejected: number;
  /**
   * Event records sent through OpenTelemetry's Logs API (the prompts and completions of some GenAI
   * instrumentations) that the SpanguardLogRecordProcessors given this tracer's bridge put on their spans;
   * those that did not reach their span (it did not come, or came ended; past the caps; refused); and those
   * waiting for their span's export (with SpanguardSpanExporter). The binding's own counts, as in Python.
   */
  log_records_attached: number;
  log_records_not_attached: number;
  log_records_held: number;
}
export declare class Tracer {
  constructor(options?: TracerOptions);
  /**
   * Starts a span; end it once. A span let go of without `end()` is ended when garbage-collected, marked
   * `spanguard.unended` (until then it holds one of the tracer's slots).
   */
  startSpan(name: string, options?: SpanOptions): Span;
  /** Starts a span with the ids, parent, start and scope another SDK gave it (see otel.js). */
  startForeignSpan(name: string, options: ForeignSpanOptions): Span;
  /** startForeignSpan with the attributes as [keys, values]; `options.attributes` is not read. */
  beginForeign(name: string, options: ForeignSpanOptions, attributes: [string[], AttributeValue[]]): Span;
  /** Runs `fn(span)` with the span current; ends it when `fn` settles (or, if it never does, when the span is garbage-collected, marked `spanguard.unended`). */
  withSpan<T>(name: string, fn: (span: Span) => T | Promise<T>, options?: SpanOptions): Promise<T>;
  /** True once the spans ended before it were delivered or spooled; false on timeout, and after shutdown or close (never rejects then). */
  flush(timeoutMs?: number): Promise<boolean>;
  /** 'spooled': done, but some spans only reached the spool (backend down). Rejects with SHUT_DOWN after shutdown. */
  flushStatus(timeoutMs?: number): Promise<'delivered' | 'spooled' | 'timeout'>;
  shutdown(timeoutMs?: number): Promise<boolean>;
  shutdownStatus(timeoutMs?: number): Promise<'delivered' | 'spooled' | 'timeout'>;
  /** Shuts down and frees the tracer; a pending flush settles first. Safe to call twice. stats() and sinkPath() answer after it with what they said then. */
  close(): Promise<void>;
  /** The file the local sink appends to (where spans go with no endpoint); '' with an endpoint. */
  sinkPath(): string;
  /** The OTLP/HTTP URL the tracer sends its spans to; '' when it writes to the local sink or discards. */
  endpoint(): string;
  /** The OpenTelemetry provider's resource over the tracer's own, for batches exported from now on (the bridge calls it). */
  setResource(attrs: Attributes): void;
  /** The library's counters, and the binding's values_rejected (attribute values left out); after close(), those it had then. */
  stats(): Stats;
  /**
   * The process hooks, on by default for every tracer (`processHooks: false` turns them off): a call sets this
   * tracer's timeout and signals, adding no listener (one a signal serves every tracer, gone once the last has
   * shut down). Shuts down on SIGTERM/SIGINT, then raises the signal again (once every hooked tracer has shut
   * down). On beforeExit (each time the loop empties with something recorded since the last) it flushes, and
   * records on: work a program's own beforeExit listener schedules keeps its spans, and what is left at exit
   * is delivered by the library's exit flush. A program with a listener of its own for the signal decides: the hooks flush and
   * the tracer records on; if that listener ends the process, the spans open then are exported interrupted by
   * the signal. At a signal the spans still
   * open are exported marked `spanguard.interrupted` with `spanguard.signal` (its number), as the library's own
   * signal handler marks them; at a normal exit, `spanguard.unended`. In a worker thread, which
   * signals never reach, the tracer is shut down by the main thread's hook (installed for a tracer of its own);
   * a tracer made with its hooks on (and installSignalHandlers not given), in any thread, also installs the
   * library's termination watchdog, which delivers what has ended and dumps the open spans when no hook acts (a
   * worker's, the main thread without one; a second signal after the hooks stepped aside for a program's `once`
   * listener); when the main thread's last listener for a signal goes, Node sets the signal's default over it, and
   * spanguard puts the watchdog back: at once if loaded in the main thread (no listener of its own kept), else
   * from a worker's tracer within 250 ms.
   * With a SpanguardSpanExporter in the process, the global OpenTelemetry provider is flushed first (for up to
   * half of timeoutMs), so the spans its BatchSpanProcessor holds reach spanguard before it shuts down in what
   * is left of timeoutMs. In a container's PID 1 with no listener of the program's own, which the signal does
   * not end, it flushes (the provider first, as above) and stays hooked, the tracer recording.
   */
  installProcessHooks(options?: { timeoutMs?: number | undefined; signals?: string[] | undefined }): this;
}
/** What the library tells of its spans (spanguard_event); new ones are added after the last. */
export declare const EVENT: {
  BATCH_FAILED: 1; BATCH_SPOOLED: 2; SPOOL_OVERFLOW: 3; BATCH_REPLAYED: 4; SPANS_REJECTED: 5;
  EXPORTER_PANICKED: 6; FILE_SET_ASIDE: 7; BACKEND_WARNING: 8; SETTING_IGNORED: 9; BUFFER_FULL: 10;
  VALUES_CUT: 11; VALUES_WAITED: 12; FILE_MISCOUNTED: 13; SPANS_RECOVERED: 14;
};
/** One piece of a tracer's news: `code` is one of EVENT, or a newer library's number (`name` 'UNKNOWN'). */
export interface SpanguardEvent {
  code: number;
  name: keyof typeof EVENT | 'UNKNOWN';
  message: string;
}
/**
 * Every tracer's news, as 'event' (a SpanguardEvent): a batch lost or
 * spooled, a backend's warning, a setting ignored (the error callback).
 * Emitted on the main thread; it keeps no event loop alive.
 */
export declare const events: SpanguardEvents;
/** The EventEmitter `events` is, as far as its one event goes (no dependency on @types/node). */
export interface SpanguardEvents {
  on(event: 'event', listener: (e: SpanguardEvent) => void): this;
  once(event: 'event', listener: (e: SpanguardEvent) => void): this;
  off(event: 'event', listener: (e: SpanguardEvent) => void): this;
  removeListener(event: 'event', listener: (e: SpanguardEvent) => void): this;
}
export declare function currentSpan(): Span | undefined;
export declare function version(): string;
/** Loads the native addon (done by the first Tracer); throws a clear Error on a platform without a build. Gives nothing back. */
export declare function load(): unknown;
export declare function isOk(code: number): boolean;
