'use strict';
// The OpenTelemetry span exporter (SpanguardSpanExporter), for what takes
// only an exporter: NodeSDK's traceExporter, OpenLLMetry's
// traceloop.initialize({ exporter }), a Simple- or BatchSpanProcessor a
// framework builds. What the loopback receiver gets must be the spans an
// in-memory exporter on the same provider got; a span spanguard does not
// take must make `export` answer FAILED, never throw.
const { test } = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');

const api = require('@opentelemetry/api');
const { ExportResultCode } = require('@opentelemetry/core');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const {
  BasicTracerProvider, BatchSpanProcessor, InMemorySpanExporter, SimpleSpanProcessor, SamplingDecision,
} = require('@opentelemetry/sdk-trace-base');
const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');

const spanguard = require('..');
const { SpanguardSpanExporter } = require('../otel');
const { startReceiver, assertSameSpans } = require('./receiver');
const { readSpans, newTracer } = require('./sink');

// An LLM-sized prompt: it must arrive whole.
const PROMPT = Array.from({ length: 100000 }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');

function receiverTracer(rx, serviceName) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-otel-exp-'));
  return new spanguard.Tracer({ fromEnv: false, endpoint: rx.url, spoolDir: path.join(dir, 'spool'),
    scheduleDelayMs: 50, serviceName });
}

/**
 * An agent's spans, with everything an exporter carries: a parent and
 * children, a 100 KB prompt, arrays, events, a link, an exception, an
 * error status, a renamed span, and (under the provider's limits of 4
 * attributes a span past the first, 2 events) dropped attributes and events.
 */
function agentSpans(provider) {
  const agent = provider.getTracer('my.agent', '1.4.0', { schemaUrl: 'https://opentelemetry.io/schemas/1.28.0' });
  const session = agent.startSpan('agent.session', { kind: api.SpanKind.SERVER,
    attributes: { 'session.id': 's-1', turn: 3 } });
  session.addEvent('plan.ready', { steps: 2, tools: ['search', 'calc'] });
  const inSession = api.trace.setSpan(api.ROOT_CONTEXT, session);
  const llm = agent.startSpan('llm.chat', { kind: api.SpanKind.CLIENT,
    links: [{ context: session.spanContext(), attributes: { why: 'origin' } }] }, inSession);
  llm.setAttributes({ 'gen_ai.prompt.0.content': PROMPT, 'gen_ai.usage.input_tokens': 25000,
    'gen_ai.response.finish_reasons': ['stop'], 'gen_ai.request.temperature': 0.25 });
  llm.setAttribute('over.the.limit', true);
  for (let i = 0; i < 5; i++) llm.addEvent('gen_ai.content.chunk', { index: i });
  llm.updateName('llm.chat gpt-4o');
  llm.setStatus({ code: api.SpanStatusCode.OK });
  llm.end();
  const tool = agent.startSpan('tool.search', {}, inSession);
  tool.recordException(new Error('upstream timeout'));
  tool.setStatus({ code: api.SpanStatusCode.ERROR, message: 'upstream timeout' });
  tool.end();
  session.end();
}

/** What `export` answered. */
function exported(exporter, spans) {
  return new Promise((resolve) => exporter.export(spans, resolve));
}

/** Ended SDK spans as a processor is handed them, unsampled (recorded) ones too. */
function endedSpans(run, providerOptions = {}) {
  const ended = [];
  const collect = { onStart() {}, onEnd(span) { ended.push(span); }, forceFlush: async () => {}, shutdown: async () => {} };
  const provider = new BasicTracerProvider({ ...providerOptions, spanProcessors: [collect] });
  run(provider.getTracer('ended'));
  return ended;
}

const LIMITS = { spanLimits: { attributeCountLimit: 4, eventCountLimit: 2 } };
const SETUPS = [
  ['NodeTracerProvider', NodeTracerProvider, 'SimpleSpanProcessor', (e) => new SimpleSpanProcessor(e)],
  ['NodeTracerProvider', NodeTracerProvider, 'BatchSpanProcessor', (e) => new BatchSpanProcessor(e)],
  ['BasicTracerProvider', BasicTracerProvider, 'SimpleSpanProcessor', (e) => new SimpleSpanProcessor(e)],
  ['BasicTracerProvider', BasicTracerProvider, 'BatchSpanProcessor', (e) => new BatchSpanProcessor(e)],
];

for (const [providerName, Provider, processorName, processorOf] of SETUPS) {
  test(`spans exported through a ${processorName} on a ${providerName} arrive as the SDK recorded them`, async (t) => {
    const rx = await startReceiver();
    t.after(() => rx.stop());
    const tracer = receiverTracer(rx, 'spanguard-own');
    const exporter = new SpanguardSpanExporter(tracer);
    const memory = new InMemorySpanExporter();
    const provider = new Provider({ ...LIMITS,
      resource: resourceFromAttributes({ 'service.name': 'exported-agent', replicas: 3 }),
      spanProcessors: [processorOf(exporter), new SimpleSpanProcessor(memory)] });
    agentSpans(provider);
    // A processor's forceFlush hands its spans to export (the Simple one
    // flushes the exporter too); the exporter's flushes spanguard.
    await provider.forceFlush();
    await exporter.forceFlush();
    const sdkSpans = memory.getFinishedSpans();
    assert.strictEqual(sdkSpans.length, 3);
    const llm = sdkSpans.find((s) => s.name === 'llm.chat gpt-4o');
    assert.deepStrictEqual([llm.droppedAttributesCount, llm.droppedEventsCount], [1, 3],
      'the SDK dropped what the test means it to');
    const arrived = await rx.waitFor(sdkSpans.length);
    assertSameSpans(sdkSpans, arrived);
    for (const got of arrived) {
      assert.strictEqual(got.resource['service.name'], 'exported-agent');
      assert.strictEqual(got.resource.replicas, 3);
    }
    assert.strictEqual(arrived.find((s) => s.name === 'llm.chat gpt-4o').attributes['gen_ai.prompt.0.content'], PROMPT);
    assert.strictEqual(tracer.stats().values_truncated, 0);
    assert.strictEqual(exporter.failures, 0);
    await provider.shutdown();
    assert.strictEqual(spanguard.internal.tracerClosed(tracer), false, 'a tracer passed in stays its owner\'s');
    await tracer.close();
  });
}

test('unsampled spans are left out, as the SDK\'s processors leave them out', async () => {
  // A sampler that records and does not sample: the SDK's processors pass
  // such a span to no exporter, a processor of one's own may.
  const recordOnly = { shouldSample: () => ({ decision: SamplingDecision.RECORD }), toString: () => 'RecordOnly' };
  const unsampled = endedSpans((t) => t.startSpan('recorded.unsampled').end(), { sampler: recordOnly });
  const sampled = endedSpans((t) => t.startSpan('sampled').end());
  assert.strictEqual(unsampled[0].spanContext().traceFlags & api.TraceFlags.SAMPLED, 0);
  const { tracer, sink } = newTracer();
  const exporter = new SpanguardSpanExporter(tracer);
  assert.deepStrictEqual(await exported(exporter, [...unsampled, ...sampled]), { code: ExportResultCode.SUCCESS });
  assert.strictEqual(tracer.stats().spans_begun, 1, 'an unsampled span costs spanguard nothing, not a slot');
  await tracer.close();
  assert.deepStrictEqual(readSpans(sink).map((s) => s.name), ['sampled']);
  assert.strictEqual(exporter.failures, 0);
});

for (const made of ['made from options', 'given a tracer']) {
  test(`export after shutdown answers FAILED, with no warning (${made})`, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-otel-exp-late-'));
    const options = { fromEnv: false, serviceName: 'late', sinkDir: path.join(dir, 'sink'), spoolDir: path.join(dir, 'spool') };
    const given = made === 'given a tracer' ? new spanguard.Tracer(options) : null;
    const exporter = new SpanguardSpanExporter(given || options);
    const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter)] });
    provider.getTracer('late').startSpan('before.shutdown').end();
    await provider.shutdown();
    // The shutdown delivered the batch: the tracer made here is closed, one
    // passed in flushed and left running.
    assert.deepStrictEqual(readSpans(path.join(dir, 'sink')).map((s) => s.name), ['before.shutdown']);
    assert.strictEqual(spanguard.internal.tracerClosed(exporter.tracer), given === null);
    const warnings = [];
    const onWarning = (w) => warnings.push(w.message);
    process.on('warning', onWarning);
    const result = await exported(exporter, endedSpans((t) => t.startSpan('after.shutdown').end()));
    await exporter.forceFlush();
    await exporter.shutdown();
    await new Promise((r) => setImmediate(r));
    process.removeListener('warning', onWarning);
    assert.strictEqual(result.code, ExportResultCode.FAILED);
    assert.match(result.error.message, /shut down/);
    assert.deepStrictEqual(warnings, []);
    if (given) {
      const own = given.startSpan('after the provider');
      own.end();
      await given.close();
    }
    const names = readSpans(path.join(dir, 'sink')).map((s) => s.name).sort();
    assert.deepStrictEqual(names, given ? ['after the provider', 'before.shutdown'] : ['before.shutdown']);
    assert.strictEqual(exporter.failures, 0);
  });
}

test('a span the tracer has no room for answers FAILED and is counted', async () => {
  // Its slots (maxQueueSize + maxOpenSpans) all held by open spans of its own.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-otel-exp-full-'));
  const tracer = new spanguard.Tracer({ fromEnv: false, serviceName: 'full', sinkDir: path.join(dir, 'sink'),
    spoolDir: path.join(dir, 'spool'), maxQueueSize: 1, maxOpenSpans: 1 });
  const exporter = new SpanguardSpanExporter(tracer);
  const spans = endedSpans((t) => t.startSpan('no.room').end());
  const holders = [tracer.startSpan('holds.a.slot.1'), tracer.startSpan('holds.a.slot.2')];
  assert.strictEqual(tracer.stats().spans_open, 2);
  const before = tracer.stats().dropped_buffer_full;
  const result = await exported(exporter, spans);
  assert.strictEqual(result.code, ExportResultCode.FAILED);
  assert.match(result.error.message, /1 not recorded: every span slot was taken/);
  assert.strictEqual(tracer.stats().dropped_buffer_full, before + 1, 'the span refused is counted');
  for (const h of holders) h.end();
  assert.ok(await tracer.flush(), 'the holders were exported, their slots free');
  assert.deepStrictEqual(await exported(exporter, spans), { code: ExportResultCode.SUCCESS }, 'with a slot free it is taken');
  await tracer.close();
  assert.deepStrictEqual(readSpans(path.join(dir, 'sink')).map((s) => s.name).sort(),
    ['holds.a.slot.1', 'holds.a.slot.2', 'no.room']);
  assert.strictEqual(exporter.failures, 0);
});

test('a span it cannot read fails the export without throwing; the others are recorded', async () => {
  const { tracer, sink } = newTracer();
  const exporter = new SpanguardSpanExporter(tracer);
  const result = await exported(exporter, [{}, ...endedSpans((t) => t.startSpan('readable').end())]);
  assert.strictEqual(result.code, ExportResultCode.FAILED);
  assert.match(result.error.message, /1 not an OpenTelemetry ReadableSpan/);
  assert.strictEqual(exporter.failures, 1);
  await tracer.close();
  assert.deepStrictEqual(readSpans(sink).map((s) => s.name), ['readable']);
});

test('spans of providers with different resources on one tracer are warned about, once, naming both', async () => {
  // A tracer sends one resource with every batch (the last one passed on):
  // the spans of two providers sharing one exporter arrive under one of
  // them. That happened in silence; the Python bridge says so, and so
  // must this one. Providers with the same resource are not warned of.
  const endedUnder = (service, name) => endedSpans((t) => t.startSpan(name).end(),
    { resource: resourceFromAttributes({ 'service.name': service, 'deployment.environment.name': 'prod' }) });
  const { tracer } = newTracer();
  const exporter = new SpanguardSpanExporter(tracer);
  // A second exporter on the same tracer sees what the first passed on.
  const second = new SpanguardSpanExporter(tracer);
  const warnings = [];
  const onWarning = (w) => { if (w.code === 'SPANGUARD_RESOURCES_DIFFER') warnings.push(w.message); };
  process.on('warning', onWarning);
  try {
    const same = [...endedUnder('billing-agent', 'a'), ...endedUnder('billing-agent', 'b')];
    assert.deepStrictEqual(await exported(exporter, same), { code: ExportResultCode.SUCCESS });
    await new Promise((r) => setImmediate(r));
    assert.deepStrictEqual(warnings, [], 'two providers with equal resources are not warned of');
    const mixed = [...endedUnder('search-agent', 'c'), ...endedUnder('billing-agent', 'd'),
      ...endedUnder('search-agent', 'e')];
    assert.deepStrictEqual(await exported(exporter, mixed), { code: ExportResultCode.SUCCESS });
    assert.deepStrictEqual(await exported(second, endedUnder('billing-agent', 'f')), { code: ExportResultCode.SUCCESS });
    await new Promise((r) => setImmediate(r));
  } finally {
    process.removeListener('warning', onWarning);
  }
  assert.strictEqual(warnings.length, 2, `once by each exporter: ${warnings}`);
  assert.match(warnings[0], /'billing-agent'.*'search-agent'/);
  assert.match(warnings[1], /'search-agent'.*'billing-agent'/);
  assert.match(warnings[0], /its own spanguard Tracer/);
  await tracer.close();
  assert.strictEqual(exporter.failures + second.failures, 0);
});

test('a span whose ids spanguard refuses fails the export with an error that says so; the others are recorded', async () => {
  // A ReadableSpan with an invalid (all-zero) trace and span id, as a
  // processor of one's own or a span from elsewhere may hand over: it was
  // said to be "not an OpenTelemetry ReadableSpan it could read".
  const { tracer, sink } = newTracer();
  const exporter = new SpanguardSpanExporter(tracer);
  const [invalid, readable] = endedSpans((t) => {
    t.startSpan('invalid.ids').end();
    t.startSpan('readable').end();
  });
  const zeros = { ...invalid.spanContext(), traceId: '0'.repeat(32), spanId: '0'.repeat(16) };
  invalid.spanContext = () => zeros;
  const result = await exported(exporter, [invalid, readable]);
  assert.strictEqual(result.code, ExportResultCode.FAILED);
  assert.match(result.error.message, /of 2 spans, 1 refused by spanguard, counted in failures: an invalid trace, span or parent id/);
  assert.match(result.error.message, /startForeignSpan\(invalid\.ids\): an argument was out of range/);
  assert.doesNotMatch(result.error.message, /not an OpenTelemetry ReadableSpan/);
  assert.strictEqual(exporter.failures, 1);
  await tracer.close();
  assert.deepStrictEqual(readSpans(sink).map((s) => s.name), ['readable']);
});

test('the ES module entry point exports the exporter', async () => {
  const esm = await import('../otel.mjs');
  assert.strictEqual(esm.SpanguardSpanExporter, SpanguardSpanExporter);
  assert.strictEqual(esm.default.SpanguardSpanExporter, SpanguardSpanExporter);
});

// Last in this file: NodeSDK sets the API's globals (provider, context
// manager, propagator) for the rest of the process.
test('NodeSDK({ traceExporter }): spans arrive under its resource, and its shutdown delivers them', async (t) => {
  const rx = await startReceiver();
  t.after(() => rx.stop());
  const { NodeSDK } = require('@opentelemetry/sdk-node');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-otel-exp-sdk-'));
  // Options, as an application passes them: the exporter's own tracer,
  // closed by the SDK's shutdown.
  const exporter = new SpanguardSpanExporter({ fromEnv: false, endpoint: rx.url, spoolDir: path.join(dir, 'spool'),
    scheduleDelayMs: 50, serviceName: 'spanguard-own' });
  // What the SDK's BatchSpanProcessor handed over, to compare with.
  const handed = [];
  const results = [];
  const exportSpans = exporter.export.bind(exporter);
  exporter.export = (spans, done) => {
    handed.push(...spans);
    exportSpans(spans, (r) => { results.push(r.code); done(r); });
  };
  const sdk = new NodeSDK({ serviceName: 'sdk-agent', traceExporter: exporter, instrumentations: [] });
  sdk.start();
  agentSpans(api.trace.getTracerProvider());
  // Nothing flushed before the shutdown (the batch waits 5 s): the
  // shutdown hands the batch to export, then closes the exporter's tracer.
  await sdk.shutdown();
  assert.strictEqual(handed.length, 3);
  assert.deepStrictEqual(results, [ExportResultCode.SUCCESS]);
  assert.strictEqual(spanguard.internal.tracerClosed(exporter.tracer), true);
  const arrived = await rx.waitFor(handed.length);
  assertSameSpans(handed, arrived);
  for (const got of arrived) {
    assert.strictEqual(got.resource['service.name'], 'sdk-agent');
    assert.strictEqual(got.resource['process.pid'], process.pid, 'the SDK\'s detectors\' attributes');
  }
  assert.strictEqual(exporter.failures, 0);
});
