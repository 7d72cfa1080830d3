'use strict';
// installProcessHooks with SpanguardSpanExporter under the SDK's
// BatchSpanProcessor: the spans the SDK's queue holds when SIGTERM comes
// (or when the process runs out of work) reach spanguard before it shuts
// down. The hooks shut spanguard down at once, and the queue (here held
// for 30 s) was lost with the process.
const { test } = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { readSpans } = require('./sink');
const { runNode, PACKAGE, OTEL } = require('./agent_child');

const SPANS = 20;

/**
 * Runs `body` in a child node with `dir` (a fresh directory), `provider`
 * (a BasicTracerProvider, the global one unless `register` is false, its BatchSpanProcessor over
 * `exporter`, set up by `setup`, holding spans for 30 s) and `record()`
 * (ends SPANS spans, then prints 'ready'); sends it SIGTERM once it says
 * 'ready' when `signal`. Resolves with its exit status, signal, stdout,
 * stderr and the spans in its sink.
 */
async function runChild({ setup, body = 'record();', signal = true, register = true }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-hooks-exporter-'));
  const program = `
    const spanguard = require(${JSON.stringify(PACKAGE)});
    const { SpanguardSpanExporter, flushBeforeShutdown } = require(${JSON.stringify(OTEL)});
    const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
    const { trace } = require('@opentelemetry/api');
    const dir = ${JSON.stringify(dir)};
    const options = { fromEnv: false, serviceName: 'hooks-exporter', sinkDir: dir + '/sink', spoolDir: dir + '/spool' };
    ${setup}
    const provider = new BasicTracerProvider({
      spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 30000, maxExportBatchSize: 512 })],
    });
    ${register ? 'trace.setGlobalTracerProvider(provider);' : ''}
    function record() {
      const otel = provider.getTracer('agent');
      for (let i = 0; i < ${SPANS}; i++) otel.startSpan('queued.' + i).end();
      console.log('ready');
    }
    ${body}
  `;
  const run = await runNode(program, { signal: signal ? 'SIGTERM' : null, at: 'ready\n' });
  return { ...run, spans: readSpans(path.join(dir, 'sink')) };
}

const names = (spans) => spans.map((s) => s.name).sort();
const expected = Array.from({ length: SPANS }, (_, i) => `queued.${i}`).sort();

test("SIGTERM with the exporter's own tracer hooked: the SDK's queued spans arrive, and the signal ends the process", async () => {
  const run = await runChild({
    setup: `const exporter = new SpanguardSpanExporter(options);
      exporter.tracer.installProcessHooks();
      setInterval(() => {}, 1000);`,
  });
  assert.strictEqual(run.signal, 'SIGTERM', `the process ended by its signal: ${run.status} ${run.stderr}`);
  assert.deepStrictEqual(names(run.spans), expected, run.stderr);
});

test('SIGTERM with a tracer of the program hooked and passed to the exporter: the queued spans arrive', async () => {
  const run = await runChild({
    setup: `const tracer = new spanguard.Tracer(options).installProcessHooks();
      const exporter = new SpanguardSpanExporter(tracer);
      setInterval(() => {}, 1000);`,
  });
  assert.strictEqual(run.signal, 'SIGTERM', `the process ended by its signal: ${run.status} ${run.stderr}`);
  assert.deepStrictEqual(names(run.spans), expected, run.stderr);
});

test('SIGTERM with two tracers hooked: the SDK is flushed before either shuts down, and once', async () => {
  // Each tracer's hook runs; the second one's shutdown of every hooked
  // tracer must not overtake the first one's flush of the SDK.
  const run = await runChild({
    setup: `const other = new spanguard.Tracer({ ...options, serviceName: 'other' }).installProcessHooks();
      const exporter = new SpanguardSpanExporter(options);
      exporter.tracer.installProcessHooks();
      setInterval(() => {}, 1000);`,
    body: `const flush = provider.forceFlush.bind(provider);
      provider.forceFlush = () => { console.log('flush'); return flush(); };
      record();`,
  });
  assert.strictEqual(run.signal, 'SIGTERM', `the process ended by its signal: ${run.status} ${run.stderr}`);
  assert.deepStrictEqual(names(run.spans), expected, run.stderr);
  assert.deepStrictEqual(run.stdout.split('\n').filter((l) => l === 'flush'), ['flush']);
});

test('a process that runs out of work with spans in the SDK\'s queue: beforeExit hands them to spanguard', async () => {
  const run = await runChild({
    setup: `const exporter = new SpanguardSpanExporter(options);
      exporter.tracer.installProcessHooks();`,
    signal: false,
  });
  assert.strictEqual(run.status, 0, run.stderr);
  assert.deepStrictEqual(names(run.spans), expected, run.stderr);
});

test('a provider whose forceFlush never settles holds the SIGTERM hook up for timeoutMs only', async () => {
  // Another exporter of the provider's that never answers, say: the
  // spans already in spanguard are still delivered, and the signal still
  // ends the process.
  const run = await runChild({
    setup: `const exporter = new SpanguardSpanExporter(options);
      exporter.tracer.installProcessHooks({ timeoutMs: 500 });
      exporter.tracer.startSpan('own').end();
      setInterval(() => {}, 1000);`,
    body: 'provider.forceFlush = () => new Promise(() => {}); record();',
  });
  assert.strictEqual(run.signal, 'SIGTERM', `the process ended by its signal: ${run.status} ${run.stderr}`);
  assert.deepStrictEqual(names(run.spans), ['own']);
  // From the signal, not from the child's start: loading node and the SDK
  // took 10 s on a loaded machine. A hook that waited for the flush would
  // hold the process until runNode's killer (SIGKILL, 120 s).
  // A hang guard, not a speed check (the hook's timeout is 500 ms).
  assert.ok(run.afterSignalMs < 20000, `hung: the process ended ${run.afterSignalMs} ms after its SIGTERM`);
});

test('SIGTERM with a provider used directly, never the global one, named to flushBeforeShutdown: its queue arrives', async () => {
  // The hooks flushed the global provider only, and this one's queue was
  // lost with the process.
  const run = await runChild({
    setup: `const exporter = new SpanguardSpanExporter(options);
      exporter.tracer.installProcessHooks();
      setInterval(() => {}, 1000);`,
    register: false,
    body: 'flushBeforeShutdown(provider); record();',
  });
  assert.strictEqual(run.signal, 'SIGTERM', `the process ended by its signal: ${run.status} ${run.stderr}`);
  assert.deepStrictEqual(names(run.spans), expected, run.stderr);
});

test('flushBeforeShutdown takes a provider, and refuses what is not one', () => {
  const { flushBeforeShutdown } = require('../otel.js');
  flushBeforeShutdown({ forceFlush: async () => {} });
  assert.throws(() => flushBeforeShutdown({}), TypeError);
  assert.throws(() => flushBeforeShutdown(null), TypeError);
});

test('process.exit() from the program with spans in the SDK\'s queue: they arrive, with no process hooks', async () => {
  // 'exit' runs no promise to its end, but the SDK's forceFlush hands its
  // queue to export at once; the queue was lost with the process.
  const run = await runChild({
    setup: 'const exporter = new SpanguardSpanExporter(options);',
    signal: false,
    body: 'record(); setTimeout(() => process.exit(0), 50); setInterval(() => {}, 1000);',
  });
  assert.strictEqual(run.status, 0, run.stderr);
  assert.deepStrictEqual(names(run.spans), expected, run.stderr);
});

/**
 * Runs the README's exporter setup (NodeSDK's traceExporter) in a child
 * node: SPANS spans ended, then `end` (a statement). The SDK's
 * BatchSpanProcessor waits for its resource's detectors before its first
 * export (5 s in), and at 'exit' no promise settles. Resolves with the
 * exit status, stderr, the sink's spans and the service.names of their
 * resources.
 */
async function runNodeSdk({ setup = '', end }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-hooks-exporter-sdk-'));
  const program = `
    const { SpanguardSpanExporter } = require(${JSON.stringify(OTEL)});
    const { NodeSDK } = require('@opentelemetry/sdk-node');
    const { trace } = require('@opentelemetry/api');
    const dir = ${JSON.stringify(dir)};
    const exporter = new SpanguardSpanExporter({ fromEnv: false, sinkDir: dir + '/sink', spoolDir: dir + '/spool' });
    ${setup}
    new NodeSDK({ serviceName: 'sdk-agent', traceExporter: exporter }).start();
    const otel = trace.getTracer('agent');
    for (let i = 0; i < ${SPANS}; i++) otel.startSpan('queued.' + i).end();
    ${end}
  `;
  const run = await runNode(program);
  const services = new Set();
  const sink = path.join(dir, 'sink');
  for (const f of (fs.existsSync(sink) ? fs.readdirSync(sink) : []).filter((n) => n.endsWith('.jsonl'))) {
    for (const line of fs.readFileSync(path.join(dir, 'sink', f), 'utf8').split('\n').filter(Boolean)) {
      for (const rs of JSON.parse(line).resourceSpans) {
        const name = (rs.resource.attributes || []).find((a) => a.key === 'service.name');
        services.add(name && name.value.stringValue);
      }
    }
  }
  return { ...run, spans: readSpans(path.join(dir, 'sink')), services: [...services] };
}

test('process.exit() under NodeSDK, its resource detectors still unsettled: the queued spans arrive, with its service.name', async () => {
  // Every span of a program that called process.exit() in its first
  // seconds was lost, neither delivered nor counted.
  const run = await runNodeSdk({ end: 'setTimeout(() => process.exit(0), 50);' });
  assert.strictEqual(run.status, 0, run.stderr);
  assert.deepStrictEqual(names(run.spans), expected, run.stderr);
  assert.deepStrictEqual(run.services, ['sdk-agent']);
});

test('SIGTERM under NodeSDK with hooks and the program\'s own listener calling process.exit(): the queued spans arrive', async () => {
  // What a container's PID 1 needs (there the signal raised again does
  // not end the process). The hook's flush moved the queue into a
  // promise waiting for the resource's detectors, the listener's
  // process.exit() came next, and every span was lost.
  const run = await runNodeSdk({
    setup: `exporter.tracer.installProcessHooks();
      process.on('SIGTERM', () => process.exit(143));
      setInterval(() => {}, 1000);`,
    end: "setTimeout(() => process.kill(process.pid, 'SIGTERM'), 50);",
  });
  assert.strictEqual(run.status, 143, run.stderr);
  assert.deepStrictEqual(names(run.spans), expected, run.stderr);
  assert.deepStrictEqual(run.services, ['sdk-agent']);
});
