export declare const KIND: { UNSPECIFIED: 0; INTERNAL: 1; SERVER: 2; CLIENT: 3; PRODUCER: 4; CONSUMER: 5 };
export declare const STATUS: { UNSET: 0; OK: 1; ERROR: 2 };
export declare const RESULT: Record<string, number>;
export type AttributeValue = string | number | bigint | boolean;
export interface SpanOptions {
  kind?: number;
  parent?: Span;
  attributes?: Record<string, AttributeValue>;
  traceparent?: string;
}
export interface TracerOptions {
  serviceName?: string;
  endpoint?: string;
  headers?: string | Record<string, string>;
  resourceAttributes?: string | Record<string, string>;
  sinkDir?: string;
  spoolDir?: string;
  protocol?: 'http/protobuf' | 'http/json';
  compression?: 'none' | 'gzip';
  scheduleDelayMs?: number;
  requestTimeoutMs?: number;
  exportTimeoutMs?: number;
  maxQueueSize?: number;
  maxExportBatchSize?: number;
  maxOpenSpans?: number;
  flightRecorder?: boolean;
  installSignalHandlers?: boolean;
  spoolMaxMib?: number;
  signalFlushTimeoutMs?: number;
  /** The exporter thread's CPU cap in percent of one core, 1..100 (default 50). */
  exporterMaxCpuPercent?: number;
  /** PEM file of the CA certificates that verify the backend (OTEL_EXPORTER_OTLP_CERTIFICATE). */
  certificate?: string;
  /** PEM files of a client certificate and its key, for mutual TLS. */
  clientCertificate?: string;
  clientKey?: string;
  /** The largest request body in bytes, before compression (default 1000000). */
  maxRequestBytes?: number;
  /** The longest local sink line in bytes, newline included (default 1048576). */
  sinkMaxLineBytes?: number;
  /** What spanguard writes to stderr: 'none' | 'error' | 'warn' (default) | 'info' | 'debug'. */
  logLevel?: string;
  fromEnv?: boolean;
}
export declare class SpanguardError extends Error {
  code: number;
}
export declare class Span {
  readonly name: string;
  setAttribute(key: string, value: AttributeValue): this;
  setAttributes(attrs: Record<string, AttributeValue>): this;
  addEvent(name: string, attrs?: Record<string, AttributeValue>): this;
  setStatus(code: number, message?: string): this;
  recordException(err: unknown): this;
  traceparent(): string;
  end(): void;
}
export declare class Tracer {
  constructor(options?: TracerOptions);
  startSpan(name: string, options?: SpanOptions): Span;
  withSpan<T>(name: string, fn: (span: Span) => T | Promise<T>, options?: SpanOptions): Promise<T>;
  flush(timeoutMs?: number): Promise<boolean>;
  /** 'spooled': done, but some spans only reached the spool (backend down). */
  flushStatus(timeoutMs?: number): Promise<'delivered' | 'spooled' | 'timeout'>;
  shutdown(timeoutMs?: number): Promise<boolean>;
  shutdownStatus(timeoutMs?: number): Promise<'delivered' | 'spooled' | 'timeout'>;
  close(): Promise<void>;
  stats(): Record<string, number>;
  installProcessHooks(options?: { timeoutMs?: number; signals?: string[] }): this;
}
export declare function currentSpan(): Span | undefined;
export declare function version(): string;
export declare function load(path?: string): unknown;
