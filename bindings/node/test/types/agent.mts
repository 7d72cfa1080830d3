// Type-checked by `make test-node` (tsc --noEmit): what a TypeScript agent
// writes against spanguard's types, with OpenTelemetry's own types beside
// them. Never run.
import type { Attributes as OtelAttributes } from '@opentelemetry/api';
import { Tracer, type Attributes } from 'spanguard';
import { LOG_RECORD_BODY, SpanguardLogRecordProcessor, SpanguardSpanExporter, SpanguardSpanProcessor } from 'spanguard/otel';
import { LoggerProvider, type LogRecordProcessor } from '@opentelemetry/sdk-logs';
import { BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { ExportResultCode } from '@opentelemetry/core';

const tracer = new Tracer({ serviceName: 'typed-agent' });
// OpenTelemetry's Attributes (values may be undefined) are taken as they are.
const fromOtel: OtelAttributes = { 'gen_ai.request.model': 'gpt-4o', 'gen_ai.request.temperature': undefined };
const span = tracer.startSpan('llm.chat', { attributes: fromOtel });
span.setAttributes(fromOtel);
// null and undefined are ignored, in a record and alone.
const mine: Attributes = { 'tool.name': 'search', 'tool.error': null, 'tool.retries': undefined, ids: [1n, null] };
span.setAttributes(mine).setAttribute('maybe', undefined).setAttribute('none', null);
span.addEvent('gen_ai.choice', { index: 0, finish_reason: 'stop' }, new Date());
span.addLinkIds('0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203331', 1, { why: 'retry' }, '', true);
const held: boolean | null = span.tryAddEvent('gen_ai.choice', { index: 1 });
if (held === false) span.tryAddLinkIds('0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203332');
span.end([1_700_000_000, 5]);
const processor: SpanguardSpanProcessor = new SpanguardSpanProcessor(tracer);
void processor.forceFlush();
// The log processor goes where the SDK takes a LogRecordProcessor.
const toSpans: LogRecordProcessor = new SpanguardLogRecordProcessor(processor);
const logs = new LoggerProvider({ processors: [toSpans] });
void logs.forceFlush();
const body: 'log.record.body' = LOG_RECORD_BODY;
console.log(body, new SpanguardLogRecordProcessor(processor).notAttached);
void tracer.close();
// OpenTelemetry's SpanStatus, and kinds by name.
const call = tracer.startSpan('tool.call', { kind: 'client' });
call.setStatus({ code: 2, message: 'rate limited' }).setStatus('OK');
call.end();
// The exporter goes where the SDK takes a SpanExporter.
const exporter: SpanExporter = new SpanguardSpanExporter(tracer);
const batched = new BatchSpanProcessor(new SpanguardSpanExporter({ serviceName: 'typed-agent' }));
void batched.forceFlush();
// ... and the log processor takes the exporter too, with its caps.
const toExported: LogRecordProcessor = new SpanguardLogRecordProcessor(exporter as SpanguardSpanExporter,
  { maxHeld: 128, maxHeldBytes: 1 << 20, holdS: 70 });
const waiting: number = new SpanguardLogRecordProcessor(new SpanguardSpanExporter(tracer)).held;
console.log(toExported, waiting);
exporter.export([], (result) => { if (result.code !== ExportResultCode.SUCCESS) throw result.error; });
// Complex values (AnyValue): a map, a mixed or nested array, bytes and nulls inside.
span.setAttribute('gen_ai.tool.arguments', { query: 'weather', days: 3, units: null, tags: ['a', 1, [true]] });
span.setAttributes({ 'llm.messages': [{ role: 'user', content: 'hi' }, { role: 'assistant', raw: new Uint8Array(2) }] });
// The README's count of what really happened, under noUncheckedIndexedAccess and
// noPropertyAccessFromIndexSignature (tsconfig.json; @tsconfig/strictest sets both).
const s = tracer.stats();
const lost: number = s.dropped_export_failed + s.dropped_rejected + s.dropped_buffer_full
  + s.dropped_replay_failed + s.dropped_replay_rejected;
const accounted: number = s.spans_exported + s.spooled_spans + s.spans_unsampled + lost;
console.log(`${s.spans_exported} of ${s.spans_ended} exported, ${accounted} accounted for`);
