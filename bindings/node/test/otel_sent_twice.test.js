'use strict';
// Keeping the SDK's own OTLPTraceExporter beside the bridge (both read
// OTEL_EXPORTER_OTLP_ENDPOINT) sends every span to the backend twice: a
// newcomer's receiver got 4 spans for 2, with no word said. The bridge
// says it once, at the provider's first span; an SDK exporter sending to
// another backend, none at all, or spanguard writing to its local sink,
// is not warned of. spanguard sends to a loopback receiver; spans are
// started and not ended where the SDK's exporter names a host nobody
// serves: nothing is sent there.

const { test, before, after } = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');

const { BasicTracerProvider, SimpleSpanProcessor, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');
const { OTLPTraceExporter: OTLPTraceExporterGrpc } = require('@opentelemetry/exporter-trace-otlp-grpc');

const spanguard = require('..');
const { SpanguardSpanProcessor, SpanguardSpanExporter } = require('../otel');
const { startReceiver } = require('./receiver');

function tracerTo(endpoint) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-twice-'));
  const where = endpoint ? { endpoint } : { sinkDir: path.join(dir, 'sink') };
  return new spanguard.Tracer({ fromEnv: false, serviceName: 'twice', spoolDir: path.join(dir, 'spool'),
    scheduleDelayMs: 50, ...where });
}

/** The SPANGUARD_SENT_TWICE warnings `run` gives rise to. */
async function sentTwiceWarnings(run) {
  const warnings = [];
  const onWarning = (w) => { if (w.code === 'SPANGUARD_SENT_TWICE') warnings.push(w.message); };
  process.on('warning', onWarning);
  try {
    await run();
    await new Promise((r) => setImmediate(r));
  } finally {
    process.removeListener('warning', onWarning);
  }
  return warnings;
}

let rx;
let port;
before(async () => {
  rx = await startReceiver();
  port = new URL(rx.url).port;
});
after(() => rx.stop());

for (const [name, sdkExporter, warned] of [
  ['the same URL', () => new OTLPTraceExporter({ url: rx.url }), 1],
  ['the same backend as localhost', () => new OTLPTraceExporter({ url: `http://localhost:${port}/v1/traces` }), 1],
  ['the same backend over grpc', () => new OTLPTraceExporterGrpc({ url: `http://localhost:${port}` }), 1],
  ['another host, on purpose', () => new OTLPTraceExporter({ url: `http://collector-b.internal:${port}/v1/traces` }), 0],
  ['another port of the host', () => new OTLPTraceExporter({ url: `http://127.0.0.1:${Number(port) + 1}/v1/traces` }), 0],
  ['no SDK exporter', null, 0],
]) {
  test(`the SDK's own OTLP exporter beside the bridge: ${name} is warned of ${warned} time(s)`, async () => {
    const tracer = tracerTo(rx.url);
    const spanProcessors = [new SpanguardSpanProcessor(tracer)];
    if (sdkExporter) spanProcessors.push(new BatchSpanProcessor(sdkExporter()));
    const provider = new BasicTracerProvider({ spanProcessors });
    const warnings = await sentTwiceWarnings(() => {
      for (const span of ['a', 'b', 'c']) provider.getTracer('t').startSpan(span);
    });
    assert.strictEqual(warnings.length, warned, warnings.join('\n'));
    if (warned) assert.match(warnings[0], new RegExp(`OTLPTraceExporter.*127\\.0\\.0\\.1:${port}\\).*arrives there twice`, 's'));
    await tracer.close();
  });
}

// A Collector takes OTLP/gRPC on 4317 and OTLP/HTTP on 4318: the SDK's
// exporter on one beside spanguard on the other of one host sends every
// span there twice (sameBackend); 4317 beside any other port is two
// backends. Nothing listens there: the spans are started, not ended, and
// spanguard's close spools them.
for (const [name, ours, sdkExporter, warned] of [
  ['grpc on 4317 beside spanguard on 4318', 'http://127.0.0.1:4318/v1/traces',
    () => new OTLPTraceExporterGrpc({ url: 'http://localhost:4317' }), 1],
  ['http on 4318 beside spanguard on 4317', 'http://localhost:4317/v1/traces',
    () => new OTLPTraceExporter({ url: 'http://127.0.0.1:4318/v1/traces' }), 1],
  ['grpc on 4317 beside spanguard on 9999', 'http://127.0.0.1:9999/v1/traces',
    () => new OTLPTraceExporterGrpc({ url: 'http://127.0.0.1:4317' }), 0],
]) {
  test(`a Collector's two OTLP ports are one backend: ${name} is warned of ${warned} time(s)`, async () => {
    const tracer = tracerTo(ours);
    const provider = new BasicTracerProvider({ spanProcessors: [new SpanguardSpanProcessor(tracer),
      new BatchSpanProcessor(sdkExporter())] });
    const warnings = await sentTwiceWarnings(() => {
      for (const span of ['a', 'b']) provider.getTracer('t').startSpan(span);
    });
    assert.strictEqual(warnings.length, warned, warnings.join('\n'));
    if (warned) assert.ok(warnings[0].includes(new URL(ours).host), warnings[0]);
    await tracer.close();
  });
}

test('a local sink beside the SDK\'s OTLP exporter is not warned of: spanguard sends to no backend', async () => {
  const tracer = tracerTo(null);
  assert.strictEqual(tracer.endpoint(), '');
  const provider = new BasicTracerProvider({ spanProcessors: [new SpanguardSpanProcessor(tracer),
    new BatchSpanProcessor(new OTLPTraceExporter({ url: rx.url }))] });
  const warnings = await sentTwiceWarnings(() => { provider.getTracer('t').startSpan('a'); });
  assert.deepStrictEqual(warnings, []);
  await tracer.close();
});

test('SpanguardSpanExporter beside the SDK\'s OTLP exporter to one receiver: it gets each span twice, and it is said once', async () => {
  const tracer = tracerTo(rx.url);
  assert.strictEqual(tracer.endpoint(), rx.url);
  const before = rx.spans().length;
  const provider = new BasicTracerProvider({ spanProcessors: [
    new SimpleSpanProcessor(new SpanguardSpanExporter(tracer)),
    new SimpleSpanProcessor(new OTLPTraceExporter({ url: rx.url }))] });
  const warnings = await sentTwiceWarnings(async () => {
    provider.getTracer('t').startSpan('one').end();
    provider.getTracer('t').startSpan('two').end();
    await provider.forceFlush();
    await tracer.flush();
  });
  assert.strictEqual(warnings.length, 1, warnings.join('\n'));
  const names = (await rx.waitFor(before + 4)).slice(before).map((s) => s.name).sort();
  assert.deepStrictEqual(names, ['one', 'one', 'two', 'two'], 'what the warning is about');
  await provider.shutdown();
  await tracer.close();
});
