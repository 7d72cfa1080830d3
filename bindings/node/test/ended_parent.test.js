'use strict';
// An ended span stays usable as a parent, as the OpenTelemetry API asks
// ("It MUST still be possible to use an ended span as parent"), and its
// context stays the same for its whole life: after it was exported and its
// slot went to another span too. Who needs it: a callback or a streamed
// response that outlives the span of the request that began it.
const { test } = require('node:test');
const assert = require('node:assert');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const { internal } = require('..');
const { readSpans, byName, newTracer } = require('./sink');

// OTLP span flags: bit 8 says whether the parent is known to be remote,
// bit 9 that it is.
const HAS_IS_REMOTE = 0x100;
const IS_REMOTE = 0x200;

/**
 * Exports the ended spans and begins and ends others until their slots went
 * to new spans, checked by the slot in the handles' high words (tracer id
 * << 24 | slot).
 */
async function reuseSlots(tracer, ended) {
  const slots = new Set(ended.map((s) => internal.spanSlot(s)));
  const reused = new Set();
  for (let round = 0; round < 20 && [...slots].some((s) => !reused.has(s)); round++) {
    assert.strictEqual(await tracer.flush(10000), true);
    for (let i = 0; i < 300; i++) {
      const other = tracer.startSpan(`other-${round}-${i}`);
      reused.add(internal.spanSlot(other));
      other.end();
    }
  }
  assert.ok([...slots].every((s) => reused.has(s)), "the ended spans' slots were not reused");
  assert.strictEqual(await tracer.flush(10000), true);
}

function assertChildOf(child, parent) {
  assert.strictEqual(child.traceId, parent.traceId);
  assert.strictEqual(child.parentSpanId, parent.spanId);
  assert.ok(child.flags & HAS_IS_REMOTE, 'is_remote known');
  assert.ok(!(child.flags & IS_REMOTE), 'a local parent, not remote');
  assert.strictEqual(child.flags & 0xff, parent.flags & 0xff, 'sampled as the parent was');
}

test('an ended and exported span keeps its traceparent and still parents, explicitly and as the current span', async () => {
  const { tracer, sink } = newTracer();
  let request;
  let later;
  const streamed = new Promise((resolve) => { later = resolve; });
  let streaming;
  await tracer.withSpan('request', async (span) => {
    request = span;
    // Work the request started and that runs on after its span ended: the
    // request is its current span (AsyncLocalStorage).
    streaming = streamed.then(() => tracer.withSpan('stream.chunk', async () => {}));
  });
  const traceparent = request.traceparent();
  await reuseSlots(tracer, [request]);

  assert.strictEqual(request.traceparent(), traceparent);
  tracer.startSpan('explicit-child', { parent: request }).end();
  tracer.startSpan('child-with-attributes', { parent: request, attributes: { 'tool.name': 'search' } }).end();
  later();
  await streaming;
  assert.strictEqual(await tracer.flush(10000), true);

  const spans = byName(readSpans(sink));
  const parent = spans.request;
  assert.strictEqual(traceparent.slice(3, 35), parent.traceId);
  assert.strictEqual(traceparent.slice(36, 52), parent.spanId);
  for (const name of ['explicit-child', 'child-with-attributes', 'stream.chunk']) assertChildOf(spans[name], parent);
  assert.deepStrictEqual(spans['child-with-attributes'].attributes, [{ key: 'tool.name', value: { stringValue: 'search' } }]);
  await tracer.close();
});

test("an ended remote child and an unsampled span keep their parent's decision and trace", async () => {
  const { tracer, sink } = newTracer();
  const server = tracer.startSpan('server', { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
  server.end();
  const unsampled = tracer.startSpan('unsampled', { traceparent: '00-0af7651916cd43dd8448eb211c80319d-b7ad6b7169203331-00' });
  const unsampledTraceparent = unsampled.traceparent();
  unsampled.end();
  await reuseSlots(tracer, [server, unsampled]);

  tracer.startSpan('handler', { parent: server }).end();
  const late = tracer.startSpan('late', { parent: unsampled });
  const lateTraceparent = late.traceparent();
  late.end();
  assert.strictEqual(unsampled.traceparent(), unsampledTraceparent);
  assert.strictEqual(await tracer.flush(10000), true);

  const spans = byName(readSpans(sink));
  assert.ok(spans.server.flags & IS_REMOTE, 'its own parent is remote');
  assertChildOf(spans.handler, spans.server);
  assert.ok(!('unsampled' in spans) && !('late' in spans), 'unsampled, as the parent');
  assert.match(lateTraceparent, /^00-0af7651916cd43dd8448eb211c80319d-[0-9a-f]{16}-00$/);
  assert.notStrictEqual(lateTraceparent.slice(36, 52), unsampledTraceparent.slice(36, 52));
  await tracer.close();
});

test("a disabled tracer's ended span still passes its context on", () => {
  // A disabled tracer records nothing and passes the incoming context on
  // (OpenTelemetry's API without an SDK); its contexts live in a ring of
  // 1024 that 2000 later remote begins come round.
  const incoming = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  const script = `
    const spanguard = require(${JSON.stringify(path.join(__dirname, '..'))});
    const tracer = new spanguard.Tracer({ sinkDir: ${JSON.stringify(path.join(os.tmpdir(), 'sg-node-disabled'))} });
    const server = tracer.startSpan('server', { traceparent: '${incoming}' });
    server.end();
    for (let i = 0; i < 2000; i++) {
      tracer.startSpan('other', { traceparent: '00-${'1'.repeat(32)}-${'2'.repeat(16)}-01' }).end();
    }
    const child = tracer.startSpan('child', { parent: server });
    console.log(JSON.stringify([server.traceparent(), child.traceparent()]));
  `;
  const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, OTEL_SDK_DISABLED: 'true' }, encoding: 'utf8' });
  assert.strictEqual(r.status, 0, r.stderr);
  assert.deepStrictEqual(JSON.parse(r.stdout), [incoming, incoming]);
});
