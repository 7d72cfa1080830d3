'use strict';
// Spans of the native API (startSpan, withSpan) let go of without end: an
// exception path that skipped end(), a stream never read to its end. Each
// held one of the tracer's slots for good, and once they had all been
// taken nothing more was recorded. They are ended as they are garbage
// collected, marked spanguard.unended, as the OpenTelemetry bridge ends
// the SDK spans it is given.
const { test } = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const v8 = require('v8');
const vm = require('vm');
const { Worker } = require('worker_threads');
const spanguard = require('..');
const { readSpans } = require('./sink');

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');

// 16 + 16 = 32 span slots (queue plus open spans): a few dozen spans let go
// of open would take them all.
const SMALL = { maxQueueSize: 16, maxOpenSpans: 16 };
const SLOTS = SMALL.maxQueueSize + SMALL.maxOpenSpans;

function smallTracer(name) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sg-collected-${name}-`));
  const tracer = new spanguard.Tracer({ fromEnv: false, serviceName: name, sinkDir: path.join(dir, 'sink'),
    spoolDir: path.join(dir, 'spool'), ...SMALL });
  return { tracer, sink: path.join(dir, 'sink') };
}

/** Collects garbage until `tracer` has no span open (or 20 rounds), letting the registry's callbacks run. */
async function collectOpen(tracer) {
  for (let k = 0; k < 20 && tracer.stats().spans_open > 0; k++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// Each in a function of its own, so that nothing of the caller's refers to the spans.
function dropSameTick(tracer, prefix, n) {
  for (let i = 0; i < n; i++) tracer.startSpan(`${prefix}.${i}`).setAttribute('i', i);
}

async function dropAfterAwait(tracer, prefix, n) {
  const spans = [];
  for (let i = 0; i < n; i++) spans.push(tracer.startSpan(`${prefix}.${i}`, { attributes: { i } }));
  await new Promise((resolve) => setTimeout(resolve, 1));
  spans[0].addEvent('still.open');
}

function dropPendingWithSpan(tracer, prefix, n) {
  // fn's promise never settles (a stream nobody reads to its end): withSpan
  // never reaches its end(), and the whole chain is garbage.
  for (let i = 0; i < n; i++) tracer.withSpan(`${prefix}.${i}`, () => new Promise(() => {}));
}

test('spans let go of without end are ended when collected, marked unended: more of them than slots do not stop recording', async () => {
  const { tracer, sink } = smallTracer('dropped');
  const warnings = [];
  const onWarning = (w) => warnings.push(w.message);
  process.on('warning', onWarning);
  const rounds = 6;
  for (let r = 0; r < rounds; r++) {
    dropSameTick(tracer, `same.${r}`, 6);
    await dropAfterAwait(tracer, `awaited.${r}`, 4);
    dropPendingWithSpan(tracer, `pending.${r}`, 2);
    await collectOpen(tracer);
    assert.strictEqual(await tracer.flush(10000), true);
  }
  const dropped = rounds * 12;
  assert.ok(dropped > SLOTS);
  tracer.startSpan('afterwards').end();
  assert.strictEqual(await tracer.flush(10000), true);
  process.removeListener('warning', onWarning);
  const stats = tracer.stats();
  assert.strictEqual(stats.dropped_buffer_full, 0, 'no span was refused for want of a slot');
  assert.strictEqual(stats.spans_open, 0);
  assert.deepStrictEqual(warnings, []);
  const spans = readSpans(sink);
  const names = spans.map((s) => s.name);
  assert.strictEqual(new Set(names).size, names.length, 'no span was exported twice');
  const unended = spans.filter((s) => s.name !== 'afterwards');
  assert.strictEqual(unended.length, dropped);
  for (const s of unended) assert.deepStrictEqual(s.attrs['spanguard.unended'], { boolValue: true }, s.name);
  // What was set on them before they were let go of is kept.
  const awaited = spans.find((s) => s.name === 'awaited.0.0');
  assert.deepStrictEqual(awaited.attrs.i, { intValue: '0' });
  assert.deepStrictEqual(awaited.events.map((e) => e.name), ['still.open']);
  assert.ok(spans.some((s) => s.name === 'afterwards' && !s.attrs['spanguard.unended']));
  await tracer.close();
});

test('a span ended, then collected, is exported once, not marked unended', async () => {
  const { tracer, sink } = smallTracer('ended');
  const n = 20;
  // Open across a tick (watched), then ended: end() takes it off the watch.
  await (async () => {
    const spans = [];
    for (let i = 0; i < n; i++) spans.push(tracer.startSpan(`ended.${i}`));
    await new Promise((resolve) => setTimeout(resolve, 1));
    for (const s of spans) s.end();
  })();
  await tracer.withSpan('with.awaited', async () => { await new Promise((resolve) => setTimeout(resolve, 1)); });
  gc();
  await new Promise((resolve) => setTimeout(resolve, 20));
  gc();
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.strictEqual(await tracer.flush(10000), true);
  const spans = readSpans(sink);
  assert.strictEqual(spans.length, n + 1);
  assert.strictEqual(tracer.stats().spans_exported, n + 1);
  for (const s of spans) assert.strictEqual(s.attrs['spanguard.unended'], undefined, s.name);
  await tracer.close();
});

test('a span collected after its tracer shut down or closed does nothing: no warning, nothing reaches another tracer', async () => {
  const warnings = [];
  const onWarning = (w) => warnings.push(w.message);
  process.on('warning', onWarning);
  const shut = smallTracer('shut');
  const closed = smallTracer('closed');
  await dropAfterAwait(shut.tracer, 'shut', 4);
  await dropAfterAwait(closed.tracer, 'closed', 4);
  // The shutdown exports the open spans, marked unended; close frees the
  // tracer, and a tracer made next may take its place in the library.
  assert.strictEqual(await shut.tracer.shutdown(10000), true);
  await closed.tracer.close();
  const next = smallTracer('next');
  gc();
  await new Promise((resolve) => setTimeout(resolve, 20));
  gc();
  await new Promise((resolve) => setTimeout(resolve, 20));
  next.tracer.startSpan('next.own').end();
  assert.strictEqual(await next.tracer.flush(10000), true);
  process.removeListener('warning', onWarning);
  assert.deepStrictEqual(warnings, []);
  for (const [{ sink }, prefix] of [[shut, 'shut'], [closed, 'closed']]) {
    const spans = readSpans(sink);
    assert.deepStrictEqual(spans.map((s) => s.name).sort(), [0, 1, 2, 3].map((i) => `${prefix}.${i}`));
    for (const s of spans) assert.deepStrictEqual(s.attrs['spanguard.unended'], { boolValue: true });
  }
  assert.deepStrictEqual(readSpans(next.sink).map((s) => s.name), ['next.own']);
  assert.strictEqual(next.tracer.stats().spans_begun, 1);
  await shut.tracer.close();
  await next.tracer.close();
});

test("a worker thread's spans let go of open are ended when collected there", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-collected-worker-'));
  const sink = path.join(dir, 'sink');
  const script = `
    const { parentPort, workerData } = require('worker_threads');
    // The main thread's --expose-gc gave this thread's global its gc.
    const collect = globalThis.gc;
    const spanguard = require(workerData.pkg);
    const tracer = new spanguard.Tracer({ fromEnv: false, serviceName: 'worker', sinkDir: workerData.sink,
      spoolDir: workerData.spool, ...workerData.small });
    const drop = (r) => { for (let i = 0; i < 10; i++) tracer.startSpan('worker.' + r + '.' + i); };
    (async () => {
      for (let r = 0; r < 8; r++) {
        drop(r);
        for (let k = 0; k < 20 && tracer.stats().spans_open > 0; k++) {
          collect();
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        await tracer.flush(10000);
      }
      tracer.startSpan('worker.afterwards').end();
      await tracer.flush(10000);
      const stats = tracer.stats();
      await tracer.close();
      parentPort.postMessage(stats);
    })();`;
  const worker = new Worker(script, { eval: true,
    workerData: { pkg: path.resolve(__dirname, '..'), sink, spool: path.join(dir, 'spool'), small: SMALL } });
  const stats = await new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  await new Promise((resolve) => worker.once('exit', resolve));
  assert.strictEqual(stats.dropped_buffer_full, 0);
  const spans = readSpans(sink);
  assert.strictEqual(spans.length, 8 * 10 + 1);
  const unended = spans.filter((s) => s.name !== 'worker.afterwards');
  for (const s of unended) assert.deepStrictEqual(s.attrs['spanguard.unended'], { boolValue: true }, s.name);
});
