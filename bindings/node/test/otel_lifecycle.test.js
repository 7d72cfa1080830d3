'use strict';
// The bridge's lifecycle as applications drive it: a provider made and
// shut down again and again in one process (a test file each, a recycled
// worker, a re-initialised handler).
const { test } = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { BasicTracerProvider } = require('@opentelemetry/sdk-trace-base');
const { Tracer } = require('..');
const { SpanguardSpanProcessor } = require('../otel');
const { readSpans } = require('./sink');

test('a processor made from options frees its tracer at shutdown: providers made and shut down do not run out', async () => {
  // The library holds at most 255 tracers; each processor shut down kept
  // its own, and the 256th threw from its constructor.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-otel-churn-'));
  const sink = path.join(dir, 'sink');
  const cycles = 300;
  let last;
  for (let i = 0; i < cycles; i++) {
    last = new SpanguardSpanProcessor({ fromEnv: false, serviceName: 'churn', sinkDir: sink,
      spoolDir: path.join(dir, 'spool') });
    const provider = new BasicTracerProvider({ spanProcessors: [last] });
    provider.getTracer('churn').startSpan(`cycle.${i}`).end();
    await provider.shutdown();
    assert.strictEqual(last.failures, 0);
  }
  // What a program reads after the shutdown still answers: the counters
  // and the sink file, as the README's example reads it.
  assert.strictEqual(last.tracer.stats().spans_exported, 1);
  assert.ok(fs.existsSync(last.tracer.sinkPath()));
  assert.strictEqual(readSpans(sink).length, cycles, 'every cycle\'s span was exported');
});

for (const made of ['made from options', 'given a tracer']) {
  test(`a span that ends after the provider shut down is left alone, with no warning (${made})`, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-otel-late-'));
    const options = { fromEnv: false, serviceName: 'late', sinkDir: path.join(dir, 'sink'), spoolDir: path.join(dir, 'spool') };
    const bridge = new SpanguardSpanProcessor(made === 'given a tracer' ? new Tracer(options) : options);
    const provider = new BasicTracerProvider({ spanProcessors: [bridge] });
    const span = provider.getTracer('late').startSpan('open.at.shutdown');
    await provider.shutdown();
    // (Each kind of warning is given once a process: run alone, each of
    // these fails when a call after shutdown reaches the tracer.)
    const warnings = [];
    const onWarning = (w) => warnings.push(w.message);
    process.on('warning', onWarning);
    span.setAttribute('after', 'shutdown');
    span.addEvent('after.shutdown');
    span.end();
    await new Promise((r) => setImmediate(r));
    process.removeListener('warning', onWarning);
    assert.deepStrictEqual(warnings, []);
    assert.strictEqual(bridge.failures, 0);
    const spans = readSpans(path.join(dir, 'sink'));
    assert.deepStrictEqual(spans.map((s) => [s.name, s.attrs['spanguard.unended']]),
      [['open.at.shutdown', { boolValue: true }]], 'the open span was exported at the shutdown, marked unended');
  });
}

test('an SDK span collected open is ended, marked unended: spans dropped without end do not use up the slots', async () => {
  // A span started and let go of without end (a stream never read to its
  // end) held a slot of the tracer for good: after 4,096 of them, no span
  // was recorded any more.
  const v8 = require('v8');
  const vm = require('vm');
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-otel-collected-'));
  const sink = path.join(dir, 'sink');
  const processor = new SpanguardSpanProcessor({ fromEnv: false, serviceName: 'collected', sinkDir: sink,
    spoolDir: path.join(dir, 'spool') });
  const provider = new BasicTracerProvider({ spanProcessors: [processor] });
  const tracer = provider.getTracer('collected');
  const rounds = 4;
  const perRound = 2000;
  for (let r = 0; r < rounds; r++) {
    (() => {
      for (let i = 0; i < perRound; i++) tracer.startSpan(`dropped.${r}.${i}`);
    })();
    for (let k = 0; k < 20 && processor.tracer.stats().spans_open > 0; k++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  tracer.startSpan('afterwards').end();
  await provider.forceFlush();
  const stats = processor.tracer.stats();
  assert.strictEqual(stats.dropped_buffer_full, 0, 'no span was refused for want of a slot');
  assert.strictEqual(stats.spans_open, 0);
  const spans = readSpans(sink);
  const dropped = spans.filter((s) => s.name.startsWith('dropped.'));
  assert.strictEqual(dropped.length, rounds * perRound);
  assert.ok(dropped.every((s) => s.attrs['spanguard.unended'].boolValue === true));
  assert.ok(spans.some((s) => s.name === 'afterwards'));
  assert.strictEqual(processor.failures, 0);
  await provider.shutdown();
});
