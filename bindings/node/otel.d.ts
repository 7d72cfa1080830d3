import type { Tracer, TracerOptions } from './index';

/**
 * A SpanProcessor for @opentelemetry/sdk-trace-base and sdk-trace-node that
 * records every span the SDK makes in spanguard, with the SDK's ids, times,
 * scope, attributes, events, links and status; begun at the SDK span's start.
 * Structurally an SDK SpanProcessor; it never sets a global provider.
 */
export declare class SpanguardSpanProcessor {
  /**
   * A spanguard Tracer, or options to make one (a wrong one throws
   * SpanguardError, RESULT.INVALID_CONFIG, naming it). The provider's span
   * limits are the ones that apply to its spans: the tracer's count and
   * value length limits apply only to spans started with it directly.
   */
  constructor(tracer?: Tracer | TracerOptions);
  readonly tracer: Tracer;
  /** SDK spans, or parts of them, that spanguard refused (the processor never throws). */
  readonly failures: number;
  onStart(span: unknown, parentContext?: unknown): void;
  onEnd(span: unknown): void;
  forceFlush(): Promise<void>;
  /**
   * Flushes, exports the spans still open (marked unended) and stops the
   * tracer; one made from options is freed too (its stats() and sinkPath()
   * still answer); a Tracer passed in stays its owner's to close(). What is
   * set on or ends a span after it is ignored.
   */
  shutdown(): Promise<void>;
}

/**
 * A LogRecordProcessor for @opentelemetry/sdk-logs that adds each event
 * record (a log record with an event name, `gen_ai.user.message`,
 * `gen_ai.choice`, ...) emitted inside a span the given
 * SpanguardSpanProcessor has open to that span in spanguard, whole: its
 * attributes as they are, its body under `log.record.body`. The
 * instrumentations that send prompts and completions through the Logs API
 * (@opentelemetry/instrumentation-openai) need it, or the spans hold no
 * prompt. Only spanguard's copy of the span gets them. Structurally an SDK
 * LogRecordProcessor; never throws into the SDK.
 */
export declare class SpanguardLogRecordProcessor {
  /**
   * The span processor or the span exporter the TracerProvider was given, whose spans the events go to
   * (anything else throws a TypeError). With the exporter each record waits for its span's export: at most
   * `maxHeld` records (4096, or SPANGUARD_LOG_RECORDS_MAX_HELD) and `maxHeldBytes` of them (64 MiB, or
   * SPANGUARD_LOG_RECORDS_MAX_HELD_BYTES), the oldest counted in notAttached past either, and `holdS` seconds
   * after its span ended (twice OTEL_BSP_SCHEDULE_DELAY + OTEL_BSP_EXPORT_TIMEOUT). The caps are whole numbers
   * from 1 to 2**53 - 1 and holdS a finite number, 0 or more: anything else throws a TypeError; a wrong
   * variable is warned about once and the default applies. The counts are the tracer's too (its stats()'s
   * log_records_attached, log_records_not_attached, log_records_held), and the bridge's shutdown warns of
   * those not attached.
   */
  constructor(bridge: SpanguardSpanProcessor | SpanguardSpanExporter,
    options?: { maxHeld?: number | undefined; maxHeldBytes?: number | undefined; holdS?: number | undefined });
  /** Event records passed on to spanguard as span events. */
  readonly attached: number;
  /**
   * Event records of a sampled span spanguard did not have open (ended, begun before this processor; with
   * the exporter: whose span did not come, or that did not fit), or refused.
   */
  readonly notAttached: number;
  /** With the exporter: event records waiting for their span's export. */
  readonly held: number;
  onEmit(logRecord: unknown, context?: unknown): void;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

/** The span event attribute that holds an event record's body: `log.record.body`. */
export declare const LOG_RECORD_BODY: 'log.record.body';

/** What `export` answers: @opentelemetry/core's ExportResult (code 0 SUCCESS, 1 FAILED). */
export interface SpanguardExportResult {
  code: 0 | 1;
  /** With FAILED: why (no free span slot, a shut-down tracer, a span it could not read). */
  error?: Error;
}

/**
 * A SpanExporter for @opentelemetry/sdk-trace-base and sdk-trace-node, for
 * what takes only an exporter (NodeSDK's `traceExporter`, OpenLLMetry's
 * `traceloop.initialize({ exporter })`, a Simple- or BatchSpanProcessor):
 * records each finished span in spanguard as the SDK's own OTLP exporter
 * would send it (ids, parent, times, name, kind, scope, attributes, events,
 * links, status, dropped counts, the provider's resource). Structurally an
 * SDK SpanExporter. It sees a span only once it ended and left the SDK's
 * processor: SpanguardSpanProcessor records it from its start.
 */
export declare class SpanguardSpanExporter {
  /**
   * A spanguard Tracer, or options to make one (a wrong one throws
   * SpanguardError, RESULT.INVALID_CONFIG, naming it). One made from
   * options is closed by shutdown; one passed in is flushed and left to its
   * owner to close().
   */
  constructor(tracer?: Tracer | TracerOptions);
  readonly tracer: Tracer;
  /** Spans, or parts of them, that spanguard refused or could not read (the exporter never throws). */
  readonly failures: number;
  /**
   * Records the sampled spans (unsampled ones are left out): SUCCESS once
   * spanguard holds them all, FAILED with an error otherwise (a span with
   * no free slot is counted in `tracer.stats().dropped_buffer_full`), and
   * FAILED after shutdown.
   */
  export(spans: readonly unknown[], resultCallback: (result: SpanguardExportResult) => void): void;
  /** Resolves once the spans exported so far were delivered or spooled (or the flush timed out). */
  forceFlush(): Promise<void>;
  /** Later exports answer FAILED; closes a tracer made from options, flushes one passed in. Never rejects. */
  shutdown(): Promise<void>;
}
/**
 * Flushes `provider` (a TracerProvider that is not the global one, whose BatchSpanProcessor feeds a
 * SpanguardSpanExporter) wherever the global one is flushed: by the process hooks before spanguard shuts down
 * (SIGTERM/SIGINT, beforeExit) and at the process's 'exit', while an exporter is live. Held weakly. Anything else
 * than an object with forceFlush() throws a TypeError.
 */
export declare function flushBeforeShutdown(provider: { forceFlush(): Promise<void> }): void;
