'use strict';
const { test } = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const spanguard = require('..');

const { readSpans, newTracer } = require('./sink');

test('withSpan nests across awaits and records errors', async () => {
  const { tracer, sink } = newTracer();
  await tracer.withSpan('agent.session', async (session) => {
    session.setAttribute('session.id', 'n-1');
    await tracer.withSpan('llm.chat', async (llm) => {
      await new Promise((r) => setTimeout(r, 5));
      llm.setAttributes({ 'gen_ai.usage.input_tokens': 812, stream: true, temperature: 0.25, model: 'gpt-4o' });
    }, { kind: spanguard.KIND.CLIENT });
    await assert.rejects(tracer.withSpan('tool.call', async () => { throw new Error('upstream timeout'); }),
      /upstream timeout/);
  }, { kind: spanguard.KIND.SERVER });
  assert.strictEqual(await tracer.flush(10000), true);
  const spans = Object.fromEntries(readSpans(sink).map((s) => [s.name, s]));
  const root = spans['agent.session'];
  assert.ok(!root.parentSpanId);
  for (const name of ['llm.chat', 'tool.call']) {
    assert.strictEqual(spans[name].parentSpanId, root.spanId);
    assert.strictEqual(spans[name].traceId, root.traceId);
  }
  assert.deepStrictEqual(spans['llm.chat'].attrs['gen_ai.usage.input_tokens'], { intValue: '812' });
  assert.deepStrictEqual(spans['llm.chat'].attrs.stream, { boolValue: true });
  assert.deepStrictEqual(spans['llm.chat'].attrs.temperature, { doubleValue: 0.25 });
  assert.deepStrictEqual(spans['tool.call'].status, { code: spanguard.STATUS.ERROR, message: 'upstream timeout' });
  assert.strictEqual(spans['tool.call'].events[0].name, 'exception');
  // As OpenTelemetry's recordException records one: the type, message and stack.
  const exc = Object.fromEntries(spans['tool.call'].events[0].attributes.map((a) => [a.key, a.value.stringValue]));
  assert.strictEqual(exc['exception.type'], 'Error');
  assert.strictEqual(exc['exception.message'], 'upstream timeout');
  assert.match(exc['exception.stacktrace'], /^Error: upstream timeout\n\s+at /);
  await tracer.close();
});

test('traceparent continues a trace; a bad one starts a new trace; a bad config is an error', async () => {
  const { tracer } = newTracer();
  const client = tracer.startSpan('client');
  const tp = client.traceparent();
  // Sampled, and random (W3C Level 2): spanguard makes random trace ids.
  assert.match(tp, /^00-[0-9a-f]{32}-[0-9a-f]{16}-03$/);
  const server = tracer.startSpan('server', { traceparent: tp });
  assert.strictEqual(server.traceparent().slice(3, 35), tp.slice(3, 35));
  // A header from outside never throws: a new trace, warned about once.
  const bad = tracer.startSpan('bad', { traceparent: '00-nothex', attributes: { kept: 'yes' } });
  assert.match(bad.traceparent(), /^00-[0-9a-f]{32}-[0-9a-f]{16}-03$/);
  assert.notStrictEqual(bad.traceparent().slice(3, 35), tp.slice(3, 35));
  bad.end();
  assert.throws(() => new spanguard.Tracer({ fromEnv: false, endpoint: 'ftp://nope' }),
    (e) => e.code === spanguard.RESULT.INVALID_CONFIG
      && e.message.includes('endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)=ftp://nope'));
  assert.throws(() => new spanguard.Tracer({ nope: 1 }), TypeError);
  assert.throws(() => new spanguard.Tracer({ fromEnv: false, exporterMaxCpuPercent: 101 }),
    (e) => e.code === spanguard.RESULT.INVALID_CONFIG);
  const capped = new spanguard.Tracer({ fromEnv: false, endpoint: 'discard:', exporterMaxCpuPercent: 25 });
  await capped.close();
  server.end();
  client.end();
  await tracer.close();
});

test('shutdown exports open spans; spans after it record nothing and never throw', async () => {
  const { tracer, sink } = newTracer();
  const open = tracer.startSpan('still.open');
  assert.strictEqual(await tracer.shutdown(10000), true);
  assert.strictEqual(await tracer.shutdown(10000), true);
  assert.strictEqual(tracer.stats().spans_unended_at_shutdown, 1);
  open.end();
  // After shutdown a span records nothing and its calls do not throw.
  const late = tracer.startSpan('late');
  late.setAttribute('k', 'v').addEvent('e');
  late.end();
  // The bridge passes a provider's resource on a span's start: after
  // shutdown (SHUT_DOWN) that does not throw either.
  assert.doesNotThrow(() => tracer.setResource({ 'service.name': 'late' }));
  assert.strictEqual(tracer.stats().spans_begun, 1);
  const [span] = readSpans(sink);
  assert.deepStrictEqual(span.attrs['spanguard.unended'], { boolValue: true });
  await tracer.close();
  await tracer.close();
});

test('a flush after shutdown or close resolves false, never rejects', async () => {
  // A late flush (a request handler finishing after the SIGTERM hook shut
  // the tracer down, a library's own cleanup) rejected with SHUT_DOWN: an
  // unhandled rejection where the SDK's forceFlush resolves after its
  // shutdown, as the specification asks of calls after Shutdown.
  const { tracer } = newTracer();
  tracer.startSpan('before').end();
  assert.strictEqual(await tracer.shutdown(10000), true);
  assert.strictEqual(await tracer.flush(1000), false);
  await tracer.close();
  assert.strictEqual(await tracer.flush(1000), false);
  // flushStatus has no status to give: it still rejects.
  await assert.rejects(tracer.flushStatus(1000), (e) => e.code === spanguard.RESULT.SHUT_DOWN);
});

test('close() while a flush is pending: the flush settles before the tracer is freed', async () => {
  // A backend that accepts and never answers, so the flush is still
  // waiting on libuv's pool when close() shuts the tracer down.
  const net = require('net');
  const server = net.createServer(() => {});
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-node-'));
  const tracer = new spanguard.Tracer({ fromEnv: false, endpoint: `http://127.0.0.1:${server.address().port}/v1/traces`,
    spoolDir: path.join(dir, 'spool'), requestTimeoutMs: 500, exportTimeoutMs: 1000, logLevel: 'none' });
  tracer.startSpan('waiting').end();
  let settled = false;
  const pending = tracer.flush(60000).then(() => { settled = true; }, (e) => { settled = true; return e; });
  await tracer.close();
  assert.strictEqual(settled, true, 'close() freed the tracer under a pending flush');
  const outcome = await pending;
  // The shutdown overtook it: SHUT_DOWN, or done (the span was spooled).
  assert.ok(outcome === undefined || outcome.code === spanguard.RESULT.SHUT_DOWN, String(outcome));
  server.close();
});

test('flushes called together leave libuv\'s pool to the application, and each answers by its own timeout', async () => {
  // A backend that accepts and never answers: a flush waits out its
  // timeout. Each one held a pool thread meanwhile: more than the pool's
  // (4) took them all, a file read waited behind them, and the calls past
  // the fourth answered a timeout later than their own.
  const net = require('net');
  // (Unref'd: a failed assertion must not leave the test process waiting on it.)
  const server = net.createServer((c) => { c.unref(); c.on('data', () => {}); }).unref();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-node-'));
  const tracer = new spanguard.Tracer({ fromEnv: false, endpoint: `http://127.0.0.1:${server.address().port}/v1/traces`,
    spoolDir: path.join(dir, 'spool'), requestTimeoutMs: 4000, logLevel: 'none' });
  tracer.startSpan('waiting').end();
  const timeoutMs = 1500;
  const events = [];
  const started = Date.now();
  const flushes = Array.from({ length: 6 }, (_, i) => tracer.flush(timeoutMs).then((ok) => {
    events.push(`flush.${i}`);
    return [ok, Date.now() - started];
  }));
  await fs.promises.readFile(__filename);
  events.push('read');
  const answers = await Promise.all(flushes);
  // Counted, not timed: the read answered before any flush, so no flush
  // held a pool thread it needed (the calls past the fourth waited behind
  // the others, and the read behind them all).
  assert.strictEqual(events[0], 'read', `the file read waited for the flushes: ${events}`);
  for (const [ok, ms] of answers) {
    assert.strictEqual(ok, false, 'the backend never answered');
    // A hang guard, not a speed check: the backend never answers at all.
    assert.ok(ms < 20 * timeoutMs, `hung: a flush of ${timeoutMs} ms answered after ${ms} ms`);
  }
  // Flushes still run after, each by its own timeout: this one times out,
  // or (the backend counted down once a short probe went unanswered too)
  // keeps its span in the spool at once; never delivered.
  tracer.startSpan('later').end();
  const laterStarted = Date.now();
  const later = await tracer.flushStatus(timeoutMs);
  assert.ok(later === 'timeout' || later === 'spooled', `flushes still run after: ${later}`);
  // A hang guard, not a speed check.
  const laterMs = Date.now() - laterStarted;
  assert.ok(laterMs < 20 * timeoutMs, `hung: the later flush of ${timeoutMs} ms answered after ${laterMs} ms`);
  await tracer.close();
  server.close();
});

test('every slot taken: startSpan gives a span that records nothing, counted, warned about once', async () => {
  const tracer = new spanguard.Tracer({ fromEnv: false, endpoint: 'discard:', maxOpenSpans: 8, maxQueueSize: 8 });
  const warnings = [];
  const onWarning = (w) => { if (w.code === 'SPANGUARD_NOT_RECORDED') warnings.push(w.message); };
  process.on('warning', onWarning);
  const spans = [];
  for (let i = 0; i < 18; i++) spans.push(tracer.startSpan(`open.${i}`));
  const stats = tracer.stats();
  assert.strictEqual(stats.spans_begun + stats.dropped_buffer_full, 18);
  assert.ok(stats.dropped_buffer_full >= 2, `dropped ${stats.dropped_buffer_full}`);
  const first = spans[0].traceparent();
  for (const s of spans) s.setAttribute('a', 1).end();
  assert.strictEqual(spans[17].traceparent(), '', 'a span that records nothing');
  // Ended and exported: its handle is stale; its context was kept.
  assert.strictEqual(await tracer.flush(10000), true);
  assert.strictEqual(spans[0].traceparent(), first);
  await new Promise((resolve) => setImmediate(resolve));
  process.off('warning', onWarning);
  assert.deepStrictEqual(warnings.filter((m) => m.includes('every span slot was taken')).length, 1);
  await tracer.close();
});

test('many spans, none lost: each arrives in the sink once', async () => {
  const { tracer, sink } = newTracer();
  for (let i = 0; i < 5000; i++) tracer.startSpan('work', { attributes: { i } }).end();
  assert.strictEqual(await tracer.flushStatus(20000), 'delivered');
  const seen = readSpans(sink).filter((s) => s.name === 'work').map((s) => Number(s.attrs.i.intValue));
  assert.strictEqual(seen.length, 5000);
  assert.deepStrictEqual([...new Set(seen)].sort((a, b) => a - b), Array.from({ length: 5000 }, (_, i) => i));
  await tracer.close();
});

test('the resource names the Node.js runtime', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-node-'));
  const given = { team: 'search', discount: '50%', 'a=b': 'c,d=e', hex: '%41' };
  const tracer = new spanguard.Tracer({ fromEnv: false, sinkDir: dir, resourceAttributes: given });
  tracer.startSpan('one').end();
  await tracer.close();
  const file = fs.readdirSync(dir).find((f) => f.endsWith('.jsonl'));
  const [rs] = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8').split('\n')[0]).resourceSpans;
  const attrs = Object.fromEntries(rs.resource.attributes.map((a) => [a.key, a.value.stringValue]));
  assert.strictEqual(attrs['process.runtime.name'], 'nodejs');
  assert.strictEqual(attrs['process.runtime.version'], process.versions.node);
  // Each key and value as given: the object form escapes what the
  // key=value text gives a meaning ('%' too: '50%' refused the tracer).
  for (const [k, v] of Object.entries(given)) assert.strictEqual(attrs[k], v, k);
});

test('sinkPath names the file the spans arrived in', async () => {
  const { tracer, sink } = newTracer();
  tracer.startSpan('probe').end();
  assert.strictEqual(await tracer.flush(10000), true);
  const file = tracer.sinkPath();
  assert.strictEqual(path.dirname(file), sink);
  assert.match(fs.readFileSync(file, 'utf8'), /"probe"/);
  const remote = new spanguard.Tracer({ fromEnv: false, endpoint: 'discard:' });
  assert.strictEqual(remote.sinkPath(), '');
  await remote.close();
  await tracer.close();
});

test('attributes of every type, set one by one, at start and all at once', async () => {
  const { tracer, sink } = newTracer();
  const span = tracer.startSpan('typed', { attributes: { 'at.start': 'yes', n: 7 } });
  span.setAttribute('big', 2n ** 62n).setAttribute('neg', -3).setAttribute('half', 0.5).setAttribute('t', true);
  span.setAttributes({ many: 'x'.repeat(3000), 'utf8.key.é': 'ünïcode', obj: { toString: () => 'left out' } });
  span.addEvent('evt', { k: 1, s: 's', d: 1.5, b: false });
  span.end();
  assert.strictEqual(await tracer.flush(10000), true);
  const [got] = readSpans(sink).filter((s) => s.name === 'typed');
  assert.deepStrictEqual(got.attrs['at.start'], { stringValue: 'yes' });
  assert.deepStrictEqual(got.attrs.n, { intValue: '7' });
  assert.deepStrictEqual(got.attrs.big, { intValue: String(2n ** 62n) });
  assert.deepStrictEqual(got.attrs.neg, { intValue: '-3' });
  assert.deepStrictEqual(got.attrs.half, { doubleValue: 0.5 });
  assert.deepStrictEqual(got.attrs.t, { boolValue: true });
  assert.ok(got.attrs.many.stringValue.startsWith('xxx'), 'a long value arrives (cut at the library limit)');
  assert.deepStrictEqual(got.attrs['utf8.key.é'], { stringValue: 'ünïcode' });
  // Not an OpenTelemetry attribute value: left out, as the JS SDK does.
  assert.strictEqual(got.attrs.obj, undefined);
  const evt = got.events.find((e) => e.name === 'evt');
  const ea = Object.fromEntries(evt.attributes.map((a) => [a.key, a.value]));
  assert.deepStrictEqual(ea, { k: { intValue: '1' }, s: { stringValue: 's' }, d: { doubleValue: 1.5 }, b: { boolValue: false } });
  await tracer.close();
});

test('attributes at start: any count, any type, own keys only, children keep their parent', async () => {
  const { tracer, sink } = newTracer();
  // 0 to 9 keys (8 go as arguments of one call, 9 as arrays) and 200 (several calls).
  for (const n of [0, 1, 2, 7, 8, 9, 200]) {
    const attrs = {};
    for (let i = 0; i < n; i++) attrs[`k${i}`] = i % 2 ? `v${i}` : i;
    tracer.startSpan(`count-${n}`, { attributes: attrs }).end();
  }
  const typed = { s: 'é', i: -5, big: 2n ** 62n, d: 0.25, b: false, arr: [1, 2], strs: ['a', 'b'], bytes: Buffer.from([1, 2]) };
  const parent = tracer.startSpan('parent', { attributes: typed });
  const inherited = Object.create({ fromProto: 'no' });
  inherited.own = 'yes';
  tracer.startSpan('child', { parent, attributes: inherited }).end();
  parent.end();
  assert.strictEqual(await tracer.flush(10000), true);
  const spans = readSpans(sink);
  for (const n of [0, 1, 2, 7, 8, 9, 200]) {
    const [got] = spans.filter((s) => s.name === `count-${n}`);
    assert.strictEqual(Object.keys(got.attrs).length, Math.min(n, 128), `count-${n}: attributes (128 is the default limit)`);
    assert.strictEqual(got.droppedAttributesCount || 0, Math.max(0, n - 128), `count-${n}: dropped and counted`);
    for (let i = 0; i < Math.min(n, 128); i++) {
      const want = i % 2 ? { stringValue: `v${i}` } : { intValue: String(i) };
      assert.deepStrictEqual(got.attrs[`k${i}`], want, `count-${n}: k${i}`);
    }
  }
  const p = spans.find((s) => s.name === 'parent');
  assert.deepStrictEqual(p.attrs.s, { stringValue: 'é' });
  assert.deepStrictEqual(p.attrs.i, { intValue: '-5' });
  assert.deepStrictEqual(p.attrs.big, { intValue: String(2n ** 62n) });
  assert.deepStrictEqual(p.attrs.d, { doubleValue: 0.25 });
  assert.deepStrictEqual(p.attrs.b, { boolValue: false });
  assert.deepStrictEqual(p.attrs.arr, { arrayValue: { values: [{ intValue: '1' }, { intValue: '2' }] } });
  assert.deepStrictEqual(p.attrs.strs, { arrayValue: { values: [{ stringValue: 'a' }, { stringValue: 'b' }] } });
  assert.deepStrictEqual(p.attrs.bytes, { bytesValue: Buffer.from([1, 2]).toString('base64') });
  const c = spans.find((s) => s.name === 'child');
  assert.deepStrictEqual(c.attrs, { own: { stringValue: 'yes' } });
  assert.strictEqual(c.parentSpanId, p.spanId);
  assert.strictEqual(c.traceId, p.traceId);
  await tracer.close();
});

test('flush tells delivered from spooled', async () => {
  const net = require('net');
  const port = await new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => { const p = srv.address().port; srv.close(() => resolve(p)); });
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-node-spool-'));
  const tracer = new spanguard.Tracer({ fromEnv: false, serviceName: 'node-spool', endpoint: `http://127.0.0.1:${port}/v1/traces`,
    spoolDir: dir, exportTimeoutMs: 200 });
  for (let i = 0; i < 3; i++) tracer.startSpan('kept').end();
  assert.strictEqual(await tracer.flushStatus(10000), 'spooled');
  assert.ok(fs.readdirSync(dir).some((f) => f.endsWith('.sgspool')), 'the spans are on disk');
  await tracer.close();
});

test('the JavaScript success check agrees with the library for every code', () => {
  for (let code = 0; code < 256; code++) {
    assert.strictEqual(spanguard.isOk(code), spanguard.internal.libraryIsOk(code), `code ${code}`);
  }
});

/** Starts a Tracer in a node that takes itself for platform-arch, from dir. */
function pretendingTo(platform, arch, dir) {
  const pretend = `Object.defineProperty(process, 'platform', { value: '${platform}' });`
    + `Object.defineProperty(process, 'arch', { value: '${arch}' });`;
  return spawnSync(process.execPath, ['-e', `${pretend} new (require('.').Tracer)()`],
    { cwd: dir, encoding: 'utf8' });
}

test('a platform without a native build fails with a clear message', () => {
  for (const [platform, arch] of [['darwin', 'arm64'], ['win32', 'x64'], ['linux', 's390x']]) {
    const run = pretendingTo(platform, arch, path.resolve(__dirname, '..'));
    assert.notStrictEqual(run.status, 0);
    assert.match(run.stderr, new RegExp(`no native build for ${platform}-${arch}`));
    assert.match(run.stderr, /linux-x64, linux-arm64/);
  }
});

test('a package packed without the linux-arm64 build says so on arm64', () => {
  // What `make dist-node` alone packs on x86-64: prebuilds/linux-x64 only.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spanguard-x64-only-'));
  try {
    fs.copyFileSync(path.resolve(__dirname, '..', 'index.js'), path.join(dir, 'index.js'));
    fs.mkdirSync(path.join(dir, 'prebuilds', 'linux-x64'), { recursive: true });
    const run = pretendingTo('linux', 'arm64', dir);
    assert.notStrictEqual(run.status, 0);
    assert.match(run.stderr, /packed without its linux-arm64 build/);
    assert.match(run.stderr, /make dist/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('prefaultSlots makes the slots resident at start', async () => {
  // 8,192 + 2,048 slots of 3 KiB: about 30 MiB, resident at once.
  const before = process.memoryUsage().rss;
  const tracer = new spanguard.Tracer({ fromEnv: false, endpoint: 'discard:', maxQueueSize: 8192, prefaultSlots: true });
  const grown = process.memoryUsage().rss - before;
  tracer.startSpan('after').end();
  assert.strictEqual(await tracer.flush(10000), true);
  await tracer.close();
  assert.ok(grown >= 25 * 2 ** 20, `resident set grew ${grown} bytes`);
});

test('tryAddEvent and tryAddLinkIds answer whether the span holds what they added', async () => {
  // true: held; false: refused and counted dropped (here the span's limit);
  // null: neither (an invalid link with nothing to record, an ended span).
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-node-'));
  const tracer = new spanguard.Tracer({ fromEnv: false, sinkDir: path.join(dir, 'sink'), spoolDir: path.join(dir, 'spool'),
    eventCountLimit: 1, linkCountLimit: 1 });
  const span = tracer.startSpan('answers');
  const traceId = '0af7651916cd43dd8448eb211c80319c';
  assert.strictEqual(span.tryAddEvent('e0'), true);
  assert.strictEqual(span.tryAddEvent('e1'), false);
  assert.strictEqual(span.tryAddLinkIds('0'.repeat(32), '0'.repeat(16)), null);
  assert.strictEqual(span.tryAddLinkIds(traceId, 'b7ad6b7169203331', 1), true);
  assert.strictEqual(span.tryAddLinkIds(traceId, 'b7ad6b7169203332', 1), false);
  span.end();
  assert.strictEqual(span.tryAddEvent('late'), null);
  await tracer.close();
});

test('a begin waiting for a slot is counted in slot_waits and slot_wait_ns', async () => {
  // 26 of the 32 slots held open, 20 spans through the 6 left: a begin finds
  // every slot taken, ended spans among them, and waits for the exporter.
  // A wait of 30 s, not the default 200 ms: the test is about the wait
  // being counted; on a loaded machine (CI's two lanes) the exporter was
  // off its core for longer and 8 of the 20 were dropped.
  const tracer = new spanguard.Tracer({ fromEnv: false, endpoint: 'discard:', maxOpenSpans: 16, maxQueueSize: 16,
    fullWaitMs: 30000 });
  const held = [];
  for (let i = 0; i < 26; i++) held.push(tracer.startSpan('held'));
  let stats = tracer.stats();
  assert.deepStrictEqual([stats.slot_waits, stats.slot_wait_ns], [0, 0], 'no wait yet');
  for (let i = 0; i < 20; i++) tracer.startSpan('through').end();
  stats = tracer.stats();
  assert.ok(stats.slot_waits > 0 && stats.slot_wait_ns > 0, `slot waits ${stats.slot_waits} (${stats.slot_wait_ns} ns)`);
  assert.strictEqual(stats.dropped_buffer_full, 0);
  for (const s of held) s.end();
  await tracer.close();
});
