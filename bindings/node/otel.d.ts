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
declare const bridge: { SpanguardSpanProcessor: typeof SpanguardSpanProcessor };
export default bridge;
