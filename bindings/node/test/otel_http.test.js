'use strict';
// The OpenTelemetry bridge with @opentelemetry/instrumentation-http: a
// client span calls a loopback server whose span continues its trace; both,
// and a manual span with an event, a link and an error status around them,
// must arrive at the loopback OTLP receiver as the SDK had them.
const { test } = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const api = require('@opentelemetry/api');
const { W3CTraceContextPropagator } = require('@opentelemetry/core');
const { registerInstrumentations } = require('@opentelemetry/instrumentation');
const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http');

const { startReceiver, assertSameSpans, bridgedProvider } = require('./receiver');

test('spans of instrumentation-http arrive as the SDK made them', async (t) => {
  const rx = await startReceiver();
  t.after(() => rx.stop());
  const { memory, bridge, provider } = bridgedProvider(rx, 'otel-http-test');
  // Propagation is the API's global too; the provider is not made global:
  // the instrumentation gets it explicitly.
  api.propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  registerInstrumentations({ tracerProvider: provider, instrumentations: [new HttpInstrumentation()] });
  const http = require('http');
  assert.ok(!api.trace.getTracerProvider().getDelegate || api.trace.getTracerProvider().getDelegate() !== provider,
    'the bridge sets no global provider');

  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ ok: true, path: req.url }));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  const get = (p) => new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });

  const otelTracer = provider.getTracer('agent-scope', '1.2.3', { schemaUrl: 'https://opentelemetry.io/schemas/1.28.0' });
  const earlier = otelTracer.startSpan('earlier.step');
  earlier.end();
  await otelTracer.startActiveSpan('agent.step', {
    kind: api.SpanKind.INTERNAL,
    attributes: { 'agent.step': 3, 'agent.tools': ['search', 'calc'], 'agent.temperature': 0.25 },
    links: [{ context: earlier.spanContext(), attributes: { 'link.why': 'retry', 'link.hops': [1, 2] } }],
  }, async (step) => {
    assert.strictEqual(JSON.parse(await get('/tool?q=lisbon')).ok, true);
    step.addEvent('tool.result', { 'result.count': 2, 'result.cached': false, 'result.ids': [7, 9] });
    step.setAttribute('agent.answer', 'Lisbon');
    step.setAttributes({ 'agent.scores': [0.5, 1], 'agent.flags': [true, false], 'agent.empty': [] });
    step.updateName('agent.step lisbon'); // instrumentations name a span once they know more
    step.setStatus({ code: api.SpanStatusCode.ERROR, message: 'upstream timeout' });
    step.end();
  });
  await new Promise((r) => server.close(r));
  await provider.forceFlush();

  const sdkSpans = memory.getFinishedSpans();
  const names = sdkSpans.map((s) => s.name).sort();
  assert.deepStrictEqual(names, ['GET', 'GET', 'agent.step lisbon', 'earlier.step']);
  const arrived = await rx.waitFor(sdkSpans.length);
  assertSameSpans(sdkSpans, arrived);
  const server_ = sdkSpans.find((s) => s.kind === api.SpanKind.SERVER);
  const client = sdkSpans.find((s) => s.kind === api.SpanKind.CLIENT);
  const step = sdkSpans.find((s) => s.name === 'agent.step lisbon');
  assert.strictEqual(server_.parentSpanContext.spanId, client.spanContext().spanId, 'the server continued the client\'s trace');
  assert.strictEqual(client.parentSpanContext.spanId, step.spanContext().spanId);
  assert.strictEqual(bridge.failures, 0);
  await provider.shutdown();
});

test('a span open when the process is stopped still arrives, with the SDK\'s ids', async (t) => {
  const rx = await startReceiver();
  t.after(() => rx.stop());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-otel-kill-'));
  const child = `
    const { BasicTracerProvider } = require('@opentelemetry/sdk-trace-base');
    const spanguard = require(${JSON.stringify(path.resolve(__dirname, '..'))});
    const { SpanguardSpanProcessor } = require(${JSON.stringify(path.resolve(__dirname, '..', 'otel.js'))});
    const tracer = new spanguard.Tracer({ fromEnv: false, endpoint: ${JSON.stringify(rx.url)},
      spoolDir: ${JSON.stringify(path.join(dir, 'spool'))} }).installProcessHooks();
    const provider = new BasicTracerProvider({ spanProcessors: [new SpanguardSpanProcessor(tracer)] });
    const span = provider.getTracer('killed-scope').startSpan('llm.call', { attributes: { 'gen_ai.request.model': 'gpt-4o' } });
    // Set while the span is open: the SDK tells a processor nothing of it.
    span.setAttribute('gen_ai.prompt', 'what is the weather?');
    span.setAttributes({ 'gen_ai.request.temperature': 0.5, 'agent.step': 2 });
    span.addEvent('gen_ai.content.prompt', { n: 1 });
    span.updateName('llm.chat');
    const c = span.spanContext();
    console.log(c.traceId + ' ' + c.spanId);
    setTimeout(() => process.kill(process.pid, 'SIGTERM'), 50);
    setInterval(() => {}, 1000);
  `;
  const run = spawnSync(process.execPath, ['-e', child], { cwd: path.resolve(__dirname, '..'), encoding: 'utf8', timeout: 30000 });
  assert.strictEqual(run.signal, 'SIGTERM', `the child ended by its signal: ${run.stderr}`);
  const [traceId, spanId] = run.stdout.trim().split(' ');
  const [got] = await rx.waitFor(1);
  assert.ok(got, 'the open span arrived');
  assert.strictEqual(got.trace_id, traceId);
  assert.strictEqual(got.span_id, spanId);
  assert.strictEqual(got.name, 'llm.chat');
  assert.strictEqual(got.scope, 'killed-scope');
  assert.strictEqual(got.attributes['gen_ai.request.model'], 'gpt-4o');
  assert.strictEqual(got.attributes['gen_ai.prompt'], 'what is the weather?');
  assert.strictEqual(got.attributes['gen_ai.request.temperature'], 0.5);
  assert.strictEqual(got.attributes['agent.step'], 2);
  assert.deepStrictEqual(got.events.map((e) => [e.name, e.attributes]), [['gen_ai.content.prompt', { n: 1 }]]);
  // Stopped by SIGTERM (the hooks' shutdown for it), not forgotten.
  assert.strictEqual(got.attributes['spanguard.interrupted'], true);
  assert.strictEqual(got.attributes['spanguard.signal'], 15);
  assert.strictEqual(got.attributes['spanguard.unended'], undefined);
});
