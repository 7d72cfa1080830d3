'use strict';
// OpenTelemetry's value types through the Node binding, and an LLM-sized
// span, judged by what the loopback OTLP receiver decoded with
// opentelemetry-proto (strict: unknown fields and bad ids are refused).
const { test } = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const spanguard = require('..');
const { startReceiver, expectedAttributes, bridgedProvider } = require('./receiver');

function tracerTo(rx, options = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-node-values-'));
  return new spanguard.Tracer({ fromEnv: false, serviceName: 'node-values', endpoint: rx.url,
    spoolDir: path.join(dir, 'spool'), scheduleDelayMs: 50, ...options });
}

/** A loopback receiver, stopped after the test `t`, and a tracer exporting to it (`options` added). */
async function receiverAndTracer(t, options = {}) {
  const rx = await startReceiver();
  t.after(() => rx.stop());
  return { rx, tracer: tracerTo(rx, options) };
}

/** The spans that arrived after `before`, by name, each once. */
async function arrived(rx, before, tracer, n) {
  assert.strictEqual(await tracer.flush(20000), true);
  const spans = (await rx.waitFor(before + n)).slice(before);
  const out = {};
  for (const s of spans) {
    assert.ok(!out[s.name], `${s.name} arrived twice`);
    out[s.name] = s;
  }
  return out;
}

const VALUES = {
  'gen_ai.response.finish_reasons': ['stop', 'length'],
  'strings.utf8': ['a', '', 'ünï'],
  'ints.safe': [1, -2, 9007199254740991],
  'ints.bigint': [1n, -(2n ** 63n), 2n ** 63n - 1n],
  'doubles.mixed': [1, 2.5],
  'doubles.big': [1e300],
  bools: [true, false, true],
  empty: [],
  'raw.buffer': Buffer.from([0x00, 0xff, 0x10, 0x80]),
  'raw.uint8array': new Uint8Array([1, 2, 3]),
  'raw.empty': Buffer.alloc(0),
};

/** What the receiver reports for VALUES: BigInts as numbers (the record is JSON; these fit a double or are compared as text). */
function want() {
  const out = expectedAttributes(VALUES);
  out['ints.bigint'] = [1, -(2 ** 63), 2 ** 63 - 1];
  return out;
}

for (const protocol of ['http/protobuf', 'http/json']) {
  test(`arrays and bytes round-trip everywhere a value goes (${protocol})`, async (t) => {
    const { rx, tracer } = await receiverAndTracer(t, { protocol });
    tracer.startSpan('at.start', { attributes: VALUES }).end();
    const one = tracer.startSpan('one.by.one');
    for (const [k, v] of Object.entries(VALUES)) one.setAttribute(k, v);
    one.end();
    const all = tracer.startSpan('all.at.once');
    all.setAttributes(VALUES);
    all.addEvent('event', VALUES);
    const linked = tracer.startSpan('linked');
    all.addLink(linked.traceparent(), VALUES);
    linked.end();
    all.end();
    const foreign = tracer.startForeignSpan('foreign', { traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      spanId: '00f067aa0ba902b7', traceFlags: 1, attributes: VALUES });
    foreign.end();
    const spans = await arrived(rx, 0, tracer, 5);
    const expected = want();
    for (const name of ['at.start', 'one.by.one', 'all.at.once', 'foreign']) {
      assert.deepStrictEqual(spans[name].attributes, expected, name);
    }
    assert.deepStrictEqual(spans['all.at.once'].events[0].attributes, expected);
    assert.deepStrictEqual(spans['all.at.once'].links[0].attributes, expected);
    await tracer.close();
  });
}

test('integer arrays are int64 when every element is a safe integer, else doubles', async (t) => {
  // The receiver's JSON record loses the difference (1.0 is 1), so the
  // types are read from the OTLP/JSON the local sink writes.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-node-types-'));
  const tracer = new spanguard.Tracer({ fromEnv: false, sinkDir: dir, spoolDir: path.join(dir, 'spool') });
  t.after(() => tracer.close());
  tracer.startSpan('typed', { attributes: { ints: [1, 2], doubles: [1, 2.5], unsafe: [2 ** 53] } }).end();
  await tracer.close();
  const text = fs.readdirSync(dir).filter((f) => f.endsWith('.jsonl'))
    .map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).join('');
  assert.match(text, /{"key":"ints","value":{"arrayValue":{"values":\[{"intValue":"1"},{"intValue":"2"}\]}}}/);
  assert.match(text, /{"key":"doubles","value":{"arrayValue":{"values":\[{"doubleValue":1(\.0)?},{"doubleValue":2\.5}\]}}}/);
  assert.match(text, /{"key":"unsafe","value":{"arrayValue":{"values":\[{"doubleValue":9007199254740992(\.0)?}\]}}}/);
});

test('values OpenTelemetry does not take are left out, counted, warned about once, never thrown', async (t) => {
  // OpenTelemetry's setAttribute ignores null and undefined, and warns about
  // and ignores a value that is not one of its types (a Date, a Map, a class
  // instance, a function, a symbol, a map holding one); a recording call
  // never throws. Each left out is counted in stats().values_rejected.
  const { rx, tracer } = await receiverAndTracer(t);
  const warnings = [];
  const onWarning = (w) => { if (w.code === 'SPANGUARD_NOT_RECORDED') warnings.push(w.message); };
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  class Message { constructor() { this.role = 'user'; } }
  const BAD = [{ toString: () => 'obj' }, () => 1, Symbol('s'), new Date(0), new Map(), new Message(),
    [1, new Date(0)], { nested: { fn: () => 1 } }, [Symbol('s')], 2n ** 64n, [1, 2n ** 64n], new Float32Array(2)];
  const span = tracer.startSpan('refused', { attributes: { 'start.kept': 1, 'start.bad': [1, () => 1], 'start.null': null } });
  for (const bad of BAD) span.setAttribute('bad', bad);
  span.setAttribute('null', null).setAttribute('undefined', undefined);
  span.setAttributes({ kept: ['fine'], bad: new Date(0), fn: () => 1, gone: undefined, 'also.kept': 2 });
  span.addEvent('event', { 'event.kept': 'yes', 'event.bad': ['a', new Map()] });
  const linked = tracer.startSpan('linked');
  span.addLink(linked.traceparent(), { 'link.kept': true, 'link.bad': [new Message()] });
  linked.end();
  span.end();
  // More attributes than beginKV takes as arguments: the array form.
  const many = Object.fromEntries([...Array(10).keys()].map((i) => [`k${i}`, i]));
  tracer.startSpan('many', { attributes: { ...many, bad: [null, Symbol('x')] } }).end();
  tracer.startForeignSpan('foreign', { traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    spanId: '00f067aa0ba902b7', traceFlags: 1, attributes: { 'foreign.kept': 'x', 'foreign.bad': { d: new Date(0) } } }).end();
  const spans = await arrived(rx, 0, tracer, 4);
  assert.deepStrictEqual(spans.refused.attributes, { 'start.kept': 1, kept: ['fine'], 'also.kept': 2 });
  // Each left out of the span counted in its dropped attributes, as the
  // Python binding counts them: start.bad, BAD, bad and fn.
  assert.strictEqual(spans.refused.dropped_attributes_count, 1 + BAD.length + 2);
  assert.strictEqual(spans.many.dropped_attributes_count, 1);
  assert.strictEqual(spans.foreign.dropped_attributes_count, 1);
  assert.deepStrictEqual(spans.refused.events[0].attributes, { 'event.kept': 'yes' });
  assert.deepStrictEqual(spans.refused.links[0].attributes, { 'link.kept': true });
  assert.deepStrictEqual(spans.many.attributes, many);
  assert.deepStrictEqual(spans.foreign.attributes, { 'foreign.kept': 'x' });
  // start.bad, BAD, bad and fn, event.bad, link.bad, many's bad, foreign.bad.
  assert.strictEqual(tracer.stats().values_rejected, 1 + BAD.length + 2 + 1 + 1 + 1 + 1);
  // process.emitWarning delivers on the next tick.
  await new Promise((r) => setImmediate(r));
  const leftOut = warnings.filter((w) => w.includes('not one OpenTelemetry takes'));
  assert.strictEqual(leftOut.length, 1, warnings.join('\n'));
  await tracer.close();
  assert.strictEqual(tracer.stats().values_rejected, 1 + BAD.length + 2 + 1 + 1 + 1 + 1, 'kept after close');
});

/** A tool call's arguments and a chat's messages, as OpenInference and OpenLLMetry JS set them. */
const COMPLEX = {
  'gen_ai.tool.arguments': { city: 'Paris', days: 3, metric: true, score: 0.5, note: null, tags: ['a', 'b'] },
  'llm.input_messages': [{ role: 'user', content: 'hi' }, { role: 'assistant', content: '', tool_calls: [] }],
  mixed: [1, 'two', false, 2.5, null, undefined, 9007199254740993n],
  nested: [[1, 2], ['x'], [], [[true]]],
  'with.bytes': { raw: Buffer.from([0, 0xff]), list: [new Uint8Array([7])] },
  'null.proto': Object.assign(Object.create(null), { k: 'v' }),
  'empty.map': {},
  'objects.in.array': [null, { a: 1 }],
};

/** COMPLEX as the receiver reports it (decoded by opentelemetry-proto: kvlist as dict, array as list, empty as null). */
const COMPLEX_ARRIVED = {
  'gen_ai.tool.arguments': { city: 'Paris', days: 3, metric: true, score: 0.5, note: null, tags: ['a', 'b'] },
  'llm.input_messages': [{ role: 'user', content: 'hi' }, { role: 'assistant', content: '', tool_calls: [] }],
  mixed: [1, 'two', false, 2.5, null, null, 9007199254740993],
  nested: [[1, 2], ['x'], [], [[true]]],
  'with.bytes': { raw: { bytes: '00ff' }, list: [{ bytes: '07' }] },
  'null.proto': { k: 'v' },
  'empty.map': {},
  'objects.in.array': [null, { a: 1 }],
};

for (const protocol of ['http/protobuf', 'http/json']) {
  test(`maps and mixed or nested arrays arrive as kvlistValue and arrayValue everywhere a value goes (${protocol})`,
    async (t) => {
      // They were left out (warned), though OpenTelemetry's AnyValue carries
      // them and OpenInference and OpenLLMetry JS set them.
      const { rx, tracer } = await receiverAndTracer(t, { protocol });
      tracer.startSpan('at.start', { attributes: COMPLEX }).end();
      tracer.startSpan('at.start.kv', { attributes: { 'gen_ai.tool.arguments': COMPLEX['gen_ai.tool.arguments'] } }).end();
      const one = tracer.startSpan('one.by.one');
      for (const [k, v] of Object.entries(COMPLEX)) one.setAttribute(k, v);
      one.end();
      const all = tracer.startSpan('all.at.once');
      all.setAttributes(COMPLEX);
      all.addEvent('event', COMPLEX);
      const linked = tracer.startSpan('linked');
      all.addLink(linked.traceparent(), COMPLEX);
      linked.end();
      all.end();
      tracer.startForeignSpan('foreign', { traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
        spanId: '00f067aa0ba902b7', traceFlags: 1, attributes: COMPLEX }).end();
      const spans = await arrived(rx, 0, tracer, 6);
      for (const name of ['at.start', 'one.by.one', 'all.at.once', 'foreign']) {
        assert.deepStrictEqual(spans[name].attributes, COMPLEX_ARRIVED, name);
      }
      assert.deepStrictEqual(spans['at.start.kv'].attributes,
        { 'gen_ai.tool.arguments': COMPLEX_ARRIVED['gen_ai.tool.arguments'] });
      assert.deepStrictEqual(spans['all.at.once'].events[0].attributes, COMPLEX_ARRIVED);
      assert.deepStrictEqual(spans['all.at.once'].links[0].attributes, COMPLEX_ARRIVED);
      assert.strictEqual(tracer.stats().values_rejected, 0);
      await tracer.close();
    });
}

test('a complex value\'s kinds are OTLP\'s: int64 for integers, double otherwise, the empty value for null', async (t) => {
  // The receiver's JSON record loses int against double: read the OTLP/JSON the local sink writes.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-node-any-'));
  const tracer = new spanguard.Tracer({ fromEnv: false, sinkDir: dir, spoolDir: path.join(dir, 'spool') });
  tracer.startSpan('kinds', { attributes: { m: { i: 2, d: 2.5, n: null, b: -1n, s: 'x', big: 2 ** 63 } } }).end();
  await tracer.close();
  const text = fs.readdirSync(dir).filter((f) => f.endsWith('.jsonl'))
    .map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).join('');
  assert.match(text, new RegExp('{"key":"m","value":{"kvlistValue":{"values":\\['
    + '{"key":"i","value":{"intValue":"2"}},{"key":"d","value":{"doubleValue":2\\.5}},{"key":"n","value":{}},'
    + '{"key":"b","value":{"intValue":"-1"}},{"key":"s","value":{"stringValue":"x"}},'
    + '{"key":"big","value":{"doubleValue":9\\.223372036854776e\\+?18}}\\]}}}'));
});

test('a value too big or holding what OpenTelemetry does not take is left out and counted, without a hang or a crash',
  async (t) => {
    const { rx, tracer } = await receiverAndTracer(t);
    // No cycle, yet 2^60 values: each level refers to the one below twice.
    let shared = { leaf: 1 };
    for (let i = 0; i < 60; i++) shared = { l: shared, r: shared };
    // No cycle and 25 levels, but 2^25 values: past the 1000000 a value may hold.
    let wide = { leaf: 1 };
    for (let i = 0; i < 25; i++) wide = { l: wide, r: wide };
    // Four billion holes: they were read one by one (and 32 GB allocated), a hang.
    const sparse = [];
    sparse.length = 2 ** 32 - 1;
    const inMap = { sparse };
    const throwing = { get boom() { throw new Error('getter'); } };
    const proxy = new Proxy({}, { ownKeys() { throw new Error('trap'); } });
    // Each way in (startSpan's attributes, setAttribute, setAttributes)
    // is given every cheap one; the two found out only by a walk of a
    // million values, one way each: all three ways meet one walker in the
    // addon (attr_push), and six such walks made this file run past
    // node --test's 120 s on a loaded machine (make test-node).
    const CHEAP = { sparse, inMap, throwing, proxy };
    let okDeep = 'leaf';
    for (let i = 0; i < 31; i++) okDeep = { d: okDeep };
    const span = tracer.startSpan('hostile', { attributes: { kept: 1, shared, ...CHEAP } });
    for (const [k, v] of Object.entries({ ...CHEAP, wide })) span.setAttribute(`later.${k}`, v);
    span.setAttributes({ ...CHEAP, 'also.kept': 'yes', 'deep.enough': okDeep });
    // The same object twice, side by side, is no cycle.
    const twice = { x: 1 };
    span.setAttribute('twice', [twice, twice]);
    span.end();
    const spans = await arrived(rx, 0, tracer, 1);
    let want = 'leaf';
    for (let i = 0; i < 31; i++) want = { d: want };
    assert.deepStrictEqual(spans.hostile.attributes, { kept: 1, 'also.kept': 'yes', 'deep.enough': want,
      twice: [{ x: 1 }, { x: 1 }] });
    assert.strictEqual(tracer.stats().values_rejected, 3 * Object.keys(CHEAP).length + 2);
    assert.strictEqual(tracer.stats().values_truncated, 0);
    await tracer.close();
  });

/** An OTLP/JSON AnyValue as JavaScript: arrays, objects, null for the empty value. */
function plainOf(v) {
  if (v.arrayValue) return (v.arrayValue.values || []).map(plainOf);
  if (v.kvlistValue) return Object.fromEntries((v.kvlistValue.values || []).map((kv) => [kv.key, plainOf(kv.value)]));
  if ('stringValue' in v) return v.stringValue;
  if ('intValue' in v) return Number(v.intValue);
  if ('boolValue' in v) return v.boolValue;
  assert.deepStrictEqual(v, {}, 'the empty value or a kind this test does not expect');
  return null;
}

/** `levels` Arrays and plain objects in turn (the outer an Array) around `inner`. */
function nested(levels, inner) {
  let v = inner;
  for (let i = levels - 1; i >= 0; i--) v = i % 2 === 0 ? [v] : { k: v };
  return v;
}

test('a value nested deeper than the depth limit, or holding itself, arrives cut there, counted', async (t) => {
  // OpenTelemetry's attribute_value_depth_limit (64 by default): the
  // attribute's value is level 1, and an array or map deeper is replaced
  // by the empty value, the rest kept, counted in values_truncated (the
  // library's rule, and the Python binding's). The binding refused such a
  // value whole past 32 (values_rejected), a cycle too. Read from the
  // OTLP/JSON the local sink writes: the receiver's protobuf decoder (upb)
  // stops at 100 nested messages, under 64 levels.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-node-depth-'));
  const tracer = new spanguard.Tracer({ fromEnv: false, sinkDir: dir, spoolDir: path.join(dir, 'spool') });
  const self = { name: 'loop' };
  self.self = self;
  const ring = [1];
  ring.push(ring);
  const a = { b: {} };
  a.b.a = a;
  const DEEP = { 'deep.70': nested(70, 'leaf'), 'at.limit': nested(64, 'leaf'), 'far.past': nested(1000, 'leaf'),
    self, ring, a };
  const span = tracer.startSpan('deep', { attributes: { 'deep.70': DEEP['deep.70'] } });
  span.setAttribute('at.limit', DEEP['at.limit']);
  span.setAttributes({ 'far.past': DEEP['far.past'], self, ring, a });
  span.end();
  await tracer.close();
  const lines = fs.readdirSync(dir).filter((f) => f.endsWith('.jsonl'))
    .flatMap((f) => fs.readFileSync(path.join(dir, f), 'utf8').split('\n').filter(Boolean));
  const got = lines.flatMap((l) => JSON.parse(l).resourceSpans).flatMap((r) => r.scopeSpans)
    .flatMap((s) => s.spans).find((s) => s.name === 'deep');
  assert.ok(got, 'the span arrived');
  const attributes = Object.fromEntries(got.attributes.map((kv) => [kv.key, plainOf(kv.value)]));
  // 64 levels kept, the 65th the empty value.
  assert.deepStrictEqual(attributes['deep.70'], nested(64, null));
  assert.deepStrictEqual(attributes['at.limit'], nested(64, 'leaf'));
  assert.deepStrictEqual(attributes['far.past'], nested(64, null));
  let wantSelf = null;
  let wantRing = null;
  for (let i = 0; i < 64; i++) {
    wantSelf = { name: 'loop', self: wantSelf };
    wantRing = [1, wantRing];
  }
  let wantA = null;
  for (let i = 0; i < 32; i++) wantA = { b: { a: wantA } };
  assert.deepStrictEqual(attributes.self, wantSelf);
  assert.deepStrictEqual(attributes.ring, wantRing);
  assert.deepStrictEqual(attributes.a, wantA);
  const stats = tracer.stats();
  assert.deepStrictEqual([stats.values_truncated, stats.values_rejected], [5, 0]);
});

test('valueDepthLimit is the tracer\'s depth limit: at 3 a 5-deep value arrives cut at level 4, counted', async (t) => {
  // nested(4, 'leaf'): an array, a map, an array, a map (levels 1 to 4)
  // around a string (level 5). At 3 the level-4 map is the empty value;
  // one whose arrays and maps stop at level 3 arrives whole. Without the
  // option (the default, 64) both arrived whole.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-node-depth3-'));
  const tracer = new spanguard.Tracer({ fromEnv: false, sinkDir: dir, spoolDir: path.join(dir, 'spool'),
    valueDepthLimit: 3 });
  const span = tracer.startSpan('deep', { attributes: { 'five.deep': nested(4, 'leaf'), 'at.limit': nested(3, 'leaf') } });
  span.end();
  await tracer.close();
  const lines = fs.readdirSync(dir).filter((f) => f.endsWith('.jsonl'))
    .flatMap((f) => fs.readFileSync(path.join(dir, f), 'utf8').split('\n').filter(Boolean));
  const got = lines.flatMap((l) => JSON.parse(l).resourceSpans).flatMap((r) => r.scopeSpans)
    .flatMap((s) => s.spans).find((s) => s.name === 'deep');
  assert.ok(got, 'the span arrived');
  const attributes = Object.fromEntries(got.attributes.map((kv) => [kv.key, plainOf(kv.value)]));
  assert.deepStrictEqual(attributes['five.deep'], nested(3, null));
  assert.deepStrictEqual(attributes['at.limit'], nested(3, 'leaf'));
  assert.strictEqual(tracer.stats().values_truncated, 1);
});

test('a valueDepthLimit past 128 is refused, not taken as another depth', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-node-depth129-'));
  assert.throws(() => new spanguard.Tracer({ fromEnv: false, sinkDir: dir, spoolDir: path.join(dir, 'spool'),
    valueDepthLimit: 129 }));
});

test('integers beyond int64 are doubles or (BigInts) left out, never wrapped', async (t) => {
  // The types are read from the OTLP/JSON the local sink writes.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-node-int64-'));
  const tracer = new spanguard.Tracer({ fromEnv: false, sinkDir: dir, spoolDir: path.join(dir, 'spool') });
  const span = tracer.startSpan('wide');
  span.setAttribute('big', 1e20).setAttribute('small', -1e19).setAttribute('edge', 2 ** 63)
    .setAttribute('max', 9223372036854775807n).setAttribute('huge', 2n ** 64n).setAttribute('tiny', -(2n ** 63n) - 1n)
    .setAttribute('huge.array', [1n, 2n ** 64n]);
  span.end();
  await tracer.close();
  const text = fs.readdirSync(dir).filter((f) => f.endsWith('.jsonl'))
    .map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).join('');
  assert.match(text, /{"key":"big","value":{"doubleValue":1(\.0)?e\+?20}}/);
  assert.match(text, /{"key":"small","value":{"doubleValue":-1(\.0)?e\+?19}}/);
  assert.match(text, /{"key":"edge","value":{"doubleValue":9\.223372036854776e\+?18}}/);
  assert.match(text, /{"key":"max","value":{"intValue":"9223372036854775807"}}/);
  for (const gone of ['huge', 'tiny', 'huge.array']) assert.ok(!text.includes(`"key":"${gone}"`), gone);
});

test('a time that is no time is now, not the year 2262: counted, warned about once, never thrown', async (t) => {
  // As the Python binding takes one (values_rejected, one warning): an
  // end() in an error handler must not fail over a timestamp.
  const { rx, tracer } = await receiverAndTracer(t);
  const warnings = [];
  const onWarning = (w) => { if (w.code === 'SPANGUARD_NOT_RECORDED') warnings.push(w.message); };
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  const before = BigInt(Date.now()) * 1000000n;
  const BAD = [['bad.date', new Date('bad')], ['text', '2024-01-01'], ['nan', NaN], ['nan.hrtime', [NaN, 0]],
    ['negative', -5], ['infinite.ns', [1, Infinity]]];
  for (const [name, time] of [...BAD, ['null', null]]) {
    const span = tracer.startSpan(name, { startTime: time });
    span.addEvent('e', {}, time);
    span.end(time);
  }
  tracer.startForeignSpan('foreign', { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7',
    traceFlags: 1, startTime: 'soon' }).addEvent('e').end();
  // Each bad time of an event and an end, and the foreign span's start.
  assert.strictEqual(tracer.stats().values_rejected, 2 * BAD.length + 1);
  await new Promise((r) => setImmediate(r));
  assert.strictEqual(warnings.filter((w) => w.includes('a time was not one')).length, 1, warnings.join('\n'));
  const spans = await arrived(rx, 0, tracer, BAD.length + 2);
  const after = BigInt(Date.now()) * 1000000n;
  for (const s of Object.values(spans)) {
    for (const at of [s.start, s.end, s.events[0].time]) {
      assert.ok(BigInt(at) >= before - 1000000000n && BigInt(at) <= after, `${s.name}: ${at}`);
    }
  }
  await tracer.close();
});

test('a null or undefined in an array arrives as its type\'s zero', async (t) => {
  // OpenTelemetry keeps nulls in arrays and lets an exporter that cannot
  // send one send '', 0 or false: the other elements arrive.
  const { rx, tracer } = await receiverAndTracer(t);
  tracer.startSpan('nulls', { attributes: { s: ['a', null, 'c'], i: [undefined, 2], f: [1.5, null], b: [null, true],
    'all.null': [null, undefined] } }).end();
  const spans = await arrived(rx, 0, tracer, 1);
  assert.deepStrictEqual(spans.nulls.attributes, { s: ['a', '', 'c'], i: [0, 2], f: [1.5, 0], b: [false, true],
    'all.null': ['', ''] });
  await tracer.close();
});

test('an LLM-sized span arrives whole with every key', async (t) => {
  const { rx, tracer } = await receiverAndTracer(t);
  const prompt = Array.from({ length: 100000 }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');
  const completion = Array.from({ length: 20000 }, (_, i) => String.fromCharCode(65 + (i % 26))).join('');
  const extra = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`extra.${i}`, `value-${i}`]));
  const llm = tracer.startSpan('llm.chat', { kind: spanguard.KIND.CLIENT });
  llm.setAttribute('gen_ai.prompt', prompt);
  llm.setAttribute('gen_ai.completion', completion);
  llm.setAttribute('gen_ai.usage.input_tokens', 25000);
  llm.setAttribute('gen_ai.usage.output_tokens', 5000);
  llm.setAttributes(extra);
  llm.end();
  const atOnce = tracer.startSpan('llm.chat.at.once', { kind: spanguard.KIND.CLIENT,
    attributes: { 'gen_ai.prompt': prompt, 'gen_ai.completion': completion } });
  atOnce.setAttributes({ 'gen_ai.usage.input_tokens': 25000, 'gen_ai.usage.output_tokens': 5000, ...extra });
  atOnce.end();
  const spans = await arrived(rx, 0, tracer, 2);
  const expected = { 'gen_ai.prompt': prompt, 'gen_ai.completion': completion, 'gen_ai.usage.input_tokens': 25000,
    'gen_ai.usage.output_tokens': 5000, ...extra };
  for (const name of ['llm.chat', 'llm.chat.at.once']) {
    assert.deepStrictEqual(spans[name].attributes, expected, name);
    assert.strictEqual(spans[name].dropped_attributes_count, 0);
  }
  const stats = tracer.stats();
  assert.strictEqual(stats.values_truncated, 0);
  assert.strictEqual(stats.attributes_dropped, 0);
  await tracer.close();
});

test('non-ASCII text of any size arrives whole, wherever it goes', async (t) => {
  // A character of 2 to 4 bytes that straddles the end of the addon's
  // buffer was left out by N-API, and the shorter copy taken as the whole
  // string: a 120 KB CJK prompt arrived as its first 4 KB, nothing
  // counted. Sizes around the buffer's end, and an LLM-sized one, in each
  // place a value goes.
  const { rx, tracer } = await receiverAndTracer(t);
  const text = (n) => Array.from({ length: n }, (_, i) => ['天', 'é', '🙂', 'a'][i % 4]).join('');
  const sizes = [...Array.from({ length: 40 }, (_, i) => 1000 + 100 * i), 40000];
  for (const n of sizes) {
    const value = text(n);
    const span = tracer.startSpan(`utf8.${n}`, { attributes: { 'at.start': value } });
    span.setAttribute('one', value);
    span.setAttributes({ many: value, other: 1 });
    span.addEvent('gen_ai.content.prompt', { 'gen_ai.prompt': value });
    span.end();
  }
  const spans = await arrived(rx, 0, tracer, sizes.length);
  for (const n of sizes) {
    const got = spans[`utf8.${n}`];
    const value = text(n);
    for (const key of ['at.start', 'one', 'many']) {
      assert.strictEqual(got.attributes[key].length, value.length, `${n}: ${key}`);
      assert.strictEqual(got.attributes[key], value, `${n}: ${key}`);
    }
    assert.strictEqual(got.events[0].attributes['gen_ai.prompt'], value, `${n}: event`);
  }
  const stats = tracer.stats();
  assert.strictEqual(stats.values_truncated, 0);
  assert.strictEqual(stats.utf8_replaced, 0);
  await tracer.close();
});

test('a lone surrogate is replaced and counted, wherever it goes, through the binding and the bridge', async (t) => {
  // JavaScript strings may hold one (the SDK's attributeValueLengthLimit
  // cuts UTF-16 units, so a prompt cut inside an emoji ends in one); UTF-8
  // cannot. V8 wrote it as U+FFFD, silently: utf8_replaced said 0. It now
  // reaches the library as the Python binding passes it, to be replaced
  // and counted. A real U+FFFD and a whole pair are left alone.
  const { rx, tracer } = await receiverAndTracer(t);
  const lone = ['cut \ud83d', '\udc00 first', 'mid\udbffdle', `${'a'.repeat(5000)}\ud800`];
  const whole = { real: 'a real \ufffd stays', pair: 'an emoji 🙂 stays' };
  const attributes = { ...whole };
  lone.forEach((v, i) => { attributes[`lone.${i}`] = v; });
  const span = tracer.startSpan('lone.native', { attributes });
  span.setAttribute('lone.later', lone[0]);
  span.end();

  const { bridge, provider } = bridgedProvider(rx, 'node-values-bridge', { spanLimits: { attributeValueLengthLimit: 7 } },
    { protocol: 'http/protobuf' });
  const sdkSpan = provider.getTracer('lone').startSpan('lone.bridge');
  sdkSpan.setAttribute('gen_ai.prompt', 'hello 🙂 world'); // kept as 'hello \ud83d'
  sdkSpan.end();
  await provider.forceFlush();
  assert.strictEqual(bridge.tracer.stats().utf8_replaced, 1);

  const spans = await arrived(rx, 0, tracer, 1);
  assert.strictEqual(tracer.stats().utf8_replaced, lone.length + 1, 'each value holding one was counted');
  const got = spans['lone.native'].attributes;
  const mended = (v) => v.replace(/[\ud800-\udfff]/g, '\ufffd\ufffd\ufffd');
  lone.forEach((v, i) => assert.strictEqual(got[`lone.${i}`], mended(v), `lone.${i}`));
  assert.strictEqual(got['lone.later'], mended(lone[0]));
  for (const [k, v] of Object.entries(whole)) assert.strictEqual(got[k], v, k);
  const [bridged] = (await rx.waitFor(2)).filter((s) => s.name === 'lone.bridge');
  assert.strictEqual(bridged.attributes['gen_ai.prompt'], mended('hello \ud83d'));
  await provider.shutdown();
  await tracer.close();
});

test('more attributes than one call takes are all set, at start and later', async (t) => {
  // 300 values of 100 bytes: more than one call takes (128), and more text
  // than a call converts on its stack.
  const { rx, tracer } = await receiverAndTracer(t, { attributeCountLimit: 1000 });
  const many = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, `${i}:${'v'.repeat(100)}`]));
  tracer.startSpan('many.at.start', { attributes: many }).end();
  tracer.startSpan('many.later').setAttributes(many).end();
  tracer.startForeignSpan('many.foreign', { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b8',
    traceFlags: 1, attributes: many }).end();
  const spans = await arrived(rx, 0, tracer, 3);
  for (const name of ['many.at.start', 'many.later', 'many.foreign']) assert.deepStrictEqual(spans[name].attributes, many, name);
  await tracer.close();
});

test('the limits are options; updateName renames', async (t) => {
  const { rx, tracer } = await receiverAndTracer(t, { valueLengthLimit: 4, attributeCountLimit: 2, eventCountLimit: 1,
    linkCountLimit: 1, eventAttributeCountLimit: 1, linkAttributeCountLimit: 1, payloadPoolMib: 1 });
  const span = tracer.startSpan('first.name');
  span.setAttributes({ a: 'abcdefgh', b: ['abcdefgh', 'xy'] });
  // Past a limit: dropped and counted, never thrown (OpenTelemetry's API never throws from a span).
  span.setAttribute('c', 3);
  span.addEvent('e1', { x: 1, y: 2 });
  span.addEvent('e2');
  span.addLink('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', { x: 1, y: 2 });
  span.updateName('second.name');
  assert.strictEqual(span.name, 'second.name');
  span.end();
  const { 'second.name': got } = await arrived(rx, 0, tracer, 1);
  assert.deepStrictEqual(got.attributes, { a: 'abcd', b: ['abcd', 'xy'] });
  assert.strictEqual(got.dropped_attributes_count, 1);
  assert.deepStrictEqual(got.events.map((e) => [e.name, e.dropped_attributes_count]), [['e1', 1]]);
  assert.strictEqual(got.dropped_events_count, 1);
  assert.deepStrictEqual(got.links.map((l) => l.dropped_attributes_count), [1]);
  await tracer.close();
});


test('a count that is no uint32 is refused by name, never wrapped', async (t) => {
  // dropOldest(-1) dropped every event and link (N-API's uint32
  // conversion makes -1 4294967295), 2 ** 32 + 1 dropped one, 1.9 one,
  // NaN none, all silently; a string threw "N-API call failed".
  const { rx, tracer } = await receiverAndTracer(t);
  const span = tracer.startSpan('counts');
  span.addEvent('e0').addEvent('e1').addEvent('e2');
  span.addLink('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
  const refused = (what) => (e) => e instanceof spanguard.SpanguardError && e.code === spanguard.RESULT.INVALID_ARGUMENT
    && e.message.includes(what);
  for (const bad of [-1, 2 ** 32 + 1, 1.9, NaN, Infinity, '1', null, 1n]) {
    assert.throws(() => span.dropOldest(bad, 0), refused('events'), String(bad));
    assert.throws(() => span.dropOldest(0, bad), refused('links'), String(bad));
    assert.throws(() => span.addDroppedCounts(bad), refused('attributes'), String(bad));
    assert.throws(() => span.addDroppedCounts(0, 0, bad), refused('links'), String(bad));
  }
  // The largest count is one: all it holds, counted once.
  span.dropOldest(1, 0xffffffff).addDroppedCounts(0, 0, 0);
  span.end();
  const { counts: got } = await arrived(rx, 0, tracer, 1);
  assert.deepStrictEqual(got.events.map((e) => e.name), ['e1', 'e2']);
  assert.deepStrictEqual([got.links.length, got.dropped_events_count, got.dropped_links_count], [0, 1, 1]);
  assert.strictEqual(got.dropped_attributes_count, 0);
  await tracer.close();
});
test('an empty key is left out and counted, never thrown', async (t) => {
  // OpenTelemetry: "the attribute key MUST be a non-null and non-empty string".
  const { rx, tracer } = await receiverAndTracer(t);
  const span = tracer.startSpan('empty.key');
  span.setAttribute('', 1);
  span.setAttributes({ '': 'x', kept: 2 });
  span.end();
  const { 'empty.key': got } = await arrived(rx, 0, tracer, 1);
  assert.deepStrictEqual(got.attributes, { kept: 2 });
  assert.strictEqual(got.dropped_attributes_count, 2);
  assert.strictEqual(tracer.stats().attributes_dropped, 2);
  await tracer.close();
});

test('setStatus takes OpenTelemetry\'s SpanStatus and names; a kind or status that is neither throws, the span kept',
  async (t) => {
    // A wrong kind or status is a programming error, thrown at the call as
    // the Python binding raises (ValueError, TypeError) and the Go one
    // returns an error: INVALID_ARGUMENT, naming what was wrong. A span
    // whose status was refused is recorded all the same.
    const { rx, tracer } = await receiverAndTracer(t);
    tracer.startSpan('otel.shape').setStatus({ code: spanguard.STATUS.ERROR, message: 'rate limited' }).end();
    tracer.startSpan('by.name', { kind: 'client' }).setStatus('ok').end();
    const refused = (code) => (err) => err instanceof spanguard.SpanguardError
      && err.code === spanguard.RESULT.INVALID_ARGUMENT && err.message.includes(code);
    for (const kind of [99, 5, -1, 1.5, NaN, 'sideways', 'unspecified', 'toString', null, {}, [2], 3n, true]) {
      assert.throws(() => tracer.startSpan('never', { kind }), refused('kind'), String(kind));
    }
    assert.strictEqual(tracer.stats().spans_begun, 2, 'a start that threw began nothing');
    const odd = tracer.startSpan('odd');
    for (const status of [{ code: 7 }, 'broken', 'hasOwnProperty', undefined, null, 1.5, 3, -1, [1]]) {
      assert.throws(() => odd.setStatus(status), refused('status'), String(status));
    }
    odd.end();
    const spans = await arrived(rx, 0, tracer, 3);
    assert.deepStrictEqual([spans['otel.shape'].status_code, spans['otel.shape'].status_message], [2, 'rate limited']);
    assert.deepStrictEqual([spans['by.name'].status_code, spans['by.name'].kind], [1, 3], 'OTLP\'s CLIENT');
    assert.deepStrictEqual([spans.odd.status_code, spans.odd.kind], [0, 1], 'OTLP\'s INTERNAL');
    await tracer.close();
  });

test('a kind is one of KIND, its name or @opentelemetry/api\'s SpanKind, and means the same in each', async (t) => {
  // KIND was OTLP's numbers, one more than SpanKind's: SpanKind.SERVER (1)
  // began an INTERNAL span, SpanKind.INTERNAL (0) an UNSPECIFIED one, and
  // nothing said so. KIND and STATUS are now @opentelemetry/api's own.
  const api = require('@opentelemetry/api');
  const { rx, tracer } = await receiverAndTracer(t);
  tracer.startSpan('otel.internal', { kind: api.SpanKind.INTERNAL }).setStatus(api.SpanStatusCode.OK).end();
  tracer.startSpan('otel.server', { kind: api.SpanKind.SERVER })
    .setStatus({ code: api.SpanStatusCode.ERROR, message: 'as SpanStatus' }).end();
  tracer.startSpan('otel.consumer', { kind: api.SpanKind.CONSUMER }).end();
  tracer.startSpan('const.client', { kind: spanguard.KIND.CLIENT }).setStatus('error', 'by name').end();
  tracer.startSpan('name.producer', { kind: 'producer' }).setStatus('OK').end();
  await tracer.withSpan('with.server', () => {}, { kind: 'Server' });
  tracer.startForeignSpan('foreign.client', { traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    spanId: '00f067aa0ba902b9', traceFlags: 1, kind: api.SpanKind.CLIENT }).end();
  tracer.startForeignSpan('foreign.default', { traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    spanId: '00f067aa0ba902ba', traceFlags: 1 }).end();
  const spans = await arrived(rx, 0, tracer, 8);
  const got = Object.fromEntries(Object.entries(spans).map(([name, s]) => [name, [s.kind, s.status_code]]));
  const [internal, server, client, producer, consumer] = [1, 2, 3, 4, 5]; // OTLP's
  assert.deepStrictEqual(got, {
    'otel.internal': [internal, 1], 'otel.server': [server, 2], 'otel.consumer': [consumer, 0],
    'const.client': [client, 2], 'name.producer': [producer, 1], 'with.server': [server, 0],
    'foreign.client': [client, 0], 'foreign.default': [internal, 0],
  });
  assert.strictEqual(spans['otel.server'].status_message, 'as SpanStatus');
  assert.strictEqual(spans['const.client'].status_message, 'by name');
  assert.throws(() => tracer.startForeignSpan('never', { traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    spanId: '00f067aa0ba902bb', kind: 5 }), (err) => err.code === spanguard.RESULT.INVALID_ARGUMENT);
  const members = (e) => Object.fromEntries(Object.entries(e).filter(([name]) => Number.isNaN(Number(name))));
  assert.deepStrictEqual({ ...spanguard.KIND }, members(api.SpanKind));
  assert.deepStrictEqual({ ...spanguard.STATUS }, members(api.SpanStatusCode));
  await tracer.close();
});

test('names, links and exceptions of odd types are taken as their text, never thrown', async (t) => {
  const { rx, tracer } = await receiverAndTracer(t);
  const span = tracer.startSpan('odd.args');
  span.updateName(42).addEvent(7).addLink(123, {}, null);
  const err = new Error('boom');
  err.code = { nested: true };
  span.recordException(err);
  // Keys too, as the Python binding takes str() of a key (and
  // '<unprintable>' when that fails): a Symbol, or an object whose
  // toString throws, threw a TypeError out of the addon's coercion.
  const unprintable = { toString() { throw new Error('no text'); } };
  span.setAttribute(5, 'five').setAttribute(Symbol('sym'), 'symbol').setAttribute(unprintable, 'unprintable');
  span.end();
  tracer.startSpan(Symbol('span')).updateName(unprintable).addEvent(Symbol('event')).end();
  const spans = await arrived(rx, 0, tracer, 2);
  const got = spans['42'];
  assert.ok(got, Object.keys(spans).join());
  assert.strictEqual(got.events[0].name, '7');
  assert.strictEqual(got.events[1].attributes['exception.type'], 'Error');
  assert.deepStrictEqual([got.attributes['5'], got.attributes['Symbol(sym)'], got.attributes['<unprintable>']],
    ['five', 'symbol', 'unprintable']);
  assert.deepStrictEqual(spans['<unprintable>'].events.map((e) => e.name), ['Symbol(event)']);
  await tracer.close();
});


test('attributes that are no object and a traceparent that is no W3C text are counted, as in Python', async (t) => {
  // Python's set_attributes(5) and add_link('garbage') count one in
  // values_rejected and warn once; Object.keys set a string's characters as
  // attributes ('ab': 0 and 1) and a bad traceparent was not counted.
  const { rx, tracer } = await receiverAndTracer(t);
  const span = tracer.startSpan('odd.containers', { attributes: 'ab' });
  span.setAttributes('cd').setAttributes(5).setAttributes([1, 2]).setAttributes({ kept: 1 });
  span.addEvent('e', 'ef').addLink('garbage').addLinkIds('0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203331', 1, 'gh');
  span.end();
  tracer.startSpan('bad.header', { traceparent: 'not-a-traceparent', attributes: 'ij' }).end();
  const spans = await arrived(rx, 0, tracer, 2);
  assert.deepStrictEqual(spans['odd.containers'].attributes, { kept: 1 });
  assert.deepStrictEqual(spans['odd.containers'].events[0].attributes, {});
  assert.deepStrictEqual(spans['bad.header'].attributes, {});
  // 'ab', 'cd', 5, [1, 2], 'ef', 'garbage', 'gh'; the header and 'ij'.
  assert.strictEqual(tracer.stats().values_rejected, 9);
  await tracer.close();
});
test('the bridge and the exporter pass complex values on as the SDK\'s span holds them', async (t) => {
  // The SDK's setAttribute (2.x) drops a map or a mixed array with a
  // warning before a processor sees it; a span whose attributes hold one
  // anyway (set on `span.attributes`, as an SDK that takes AnyValue
  // attributes keeps them) arrives with it, through the processor and the
  // exporter alike, as the SDK's own OTLP exporter sends it.
  /* eslint-disable global-require */
  const { InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');
  const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');
  const { SpanguardSpanExporter } = require('../otel');
  const rx = await startReceiver();
  t.after(() => rx.stop());
  const { memory, provider } = bridgedProvider(rx, 'node-values-complex-bridge');
  const exported = tracerTo(rx);
  const viaExporter = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(new SpanguardSpanExporter(exported))] });
  const complex = { 'gen_ai.tool.arguments': { city: 'Paris', days: 3 }, 'llm.input_messages': [{ role: 'user' }, 'x', 1] };
  for (const [name, p] of [['via.processor', provider], ['via.exporter', viaExporter]]) {
    const span = p.getTracer('complex').startSpan(name, { attributes: { plain: 1 } });
    Object.assign(span.attributes, complex);
    span.end();
  }
  await provider.forceFlush();
  await viaExporter.forceFlush();
  assert.strictEqual(await exported.flush(20000), true);
  const got = Object.fromEntries((await rx.waitFor(2)).map((s) => [s.name, s.attributes]));
  assert.strictEqual(memory.getFinishedSpans().length, 1);
  for (const name of ['via.processor', 'via.exporter']) assert.deepStrictEqual(got[name], { plain: 1, ...complex }, name);
  await provider.shutdown();
  await viaExporter.shutdown();
  await exported.close();
});
