// Type-checked by `make test-node` (tsc -p test/types): each plain line must
// compile, each line after `// @ts-expect-error` must not (tsc fails on such
// a line that compiles). Under strict and exactOptionalPropertyTypes, as
// `tsc --init` sets them for a new project. Never run.
import spanguard, { EVENT, Tracer, events, type SpanOptions, type TracerOptions } from 'spanguard';
import * as namespace from 'spanguard';
import bridge, { SpanguardLogRecordProcessor, SpanguardSpanProcessor } from 'spanguard/otel';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';

// Settings read from the environment or a config file: undefined or null
// leaves an option unset (index.js skips both).
declare const fromEnv: string | undefined;
declare const fromConfig: number | null;
const tracer = new Tracer({ serviceName: 'typed', endpoint: fromEnv, maxQueueSize: fromConfig });
const options: TracerOptions = { sinkDir: undefined, spoolDir: null, fromEnv: undefined, headers: null, processHooks: false };
// @ts-expect-error a string for a number throws SpanguardError (INVALID_CONFIG)
void new Tracer({ maxQueueSize: '10' });
// @ts-expect-error an unknown option throws TypeError
void new Tracer({ serviceNmae: 'typo' });

// Span options: undefined is the default of each.
const spanOptions: SpanOptions = { kind: undefined, parent: undefined, attributes: undefined, traceparent: fromEnv };
tracer.startSpan('typed', spanOptions).end();
// @ts-expect-error a null kind is no kind: it throws (INVALID_ARGUMENT)
tracer.startSpan('typed', { kind: null });
// A kind and a status as @opentelemetry/api gives them, as KIND and STATUS,
// or by name; OTLP's CONSUMER (5) is no KIND and throws.
declare const someKind: SpanKind;
tracer.startSpan('typed', { kind: SpanKind.SERVER }).setStatus(SpanStatusCode.ERROR).end();
tracer.startSpan('typed', { kind: someKind }).setStatus({ code: SpanStatusCode.OK }).end();
tracer.startSpan('typed', { kind: spanguard.KIND.CLIENT }).setStatus(spanguard.STATUS.OK).end();
tracer.startSpan('typed', { kind: 'consumer' }).setStatus('error', 'by name').end();
// @ts-expect-error 5 is no kind: it throws (INVALID_ARGUMENT)
tracer.startSpan('typed', { kind: 5 });
// @ts-expect-error an unknown name throws (INVALID_ARGUMENT)
tracer.startSpan('typed').setStatus('failed');
tracer.installProcessHooks({ timeoutMs: undefined, signals: undefined });
// @ts-expect-error null options throw (they are destructured)
tracer.installProcessHooks(null);
void new SpanguardLogRecordProcessor(new SpanguardSpanProcessor(tracer), { maxHeld: undefined, holdS: undefined });
// @ts-expect-error a null cap throws TypeError
void new SpanguardLogRecordProcessor(new SpanguardSpanProcessor(tracer), { maxHeld: null });

// The default import is the module's exports (index.mjs, otel.mjs: `export
// default` of the CommonJS module), with no `default` inside them.
void new spanguard.Tracer(options);
void new namespace.default.Tracer();
// @ts-expect-error undefined at run time
void new spanguard.default.Tracer();
void new bridge.SpanguardSpanProcessor(tracer);
// @ts-expect-error undefined at run time
void new bridge.default.SpanguardSpanProcessor(tracer);
// The library's news, from the named exports.
events.on('event', (e) => void [e.code === EVENT.BACKEND_WARNING, e.name, e.message.length]);
