'use strict';
// The bridge passes on what the SDK's span limits dropped (the span's
// dropped attribute, event and link counts) and each link's tracestate.
const { test } = require('node:test');
const assert = require('node:assert');
const { TraceState } = require('@opentelemetry/core');

const { startReceiver, assertSameSpans, bridgedProvider } = require('./receiver');

test('what the SDK limits dropped is counted, and links keep their tracestate', async (t) => {
  const rx = await startReceiver();
  t.after(() => rx.stop());
  const { memory, bridge, provider } = bridgedProvider(rx, 'otel-limits-test',
    { spanLimits: { attributeCountLimit: 2, eventCountLimit: 1, linkCountLimit: 1 } });
  const linked = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1, isRemote: true,
    traceState: new TraceState('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7') };
  const span = provider.getTracer('limited').startSpan('over.the.limits', {
    attributes: { a: 1, b: 2, c: 3 },
    links: [{ context: linked, attributes: { why: 'batch' } }, { context: linked }],
  });
  span.setAttribute('d', 4);
  span.addEvent('e1');
  span.addEvent('e2');
  span.end();
  await provider.forceFlush();
  const [sdkSpan] = memory.getFinishedSpans();
  assert.deepStrictEqual([sdkSpan.droppedAttributesCount, sdkSpan.droppedEventsCount, sdkSpan.droppedLinksCount], [2, 1, 1],
    'the SDK dropped what the test means it to');
  const arrived = await rx.waitFor(1);
  assert.strictEqual(arrived[0].links[0].trace_state, 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7');
  assertSameSpans([sdkSpan], arrived);
  assert.strictEqual(bridge.failures, 0);
  await provider.shutdown();
});

test('links keep isRemote in their flags, and one with an invalid context arrives with its attributes', async (t) => {
  // OTLP link flags: the W3C bits, 0x100 HAS_IS_REMOTE, 0x200 IS_REMOTE, as
  // the SDK's own exporter sends them. A link whose context is invalid is
  // kept by the SDK and must be recorded when it has attributes.
  const rx = await startReceiver();
  t.after(() => rx.stop());
  const { memory, bridge, provider } = bridgedProvider(rx, 'otel-link-flags-test');
  const remote = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1, isRemote: true };
  const local = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203332', traceFlags: 1, isRemote: false };
  const invalid = { traceId: '0'.repeat(32), spanId: '0'.repeat(16), traceFlags: 0 };
  const span = provider.getTracer('links').startSpan('linked', {
    links: [{ context: remote }, { context: local }],
  });
  span.addLink({ context: invalid, attributes: { 'link.why': 'context lost' } });
  span.end();
  await provider.forceFlush();
  const [sdkSpan] = memory.getFinishedSpans();
  assert.strictEqual(sdkSpan.links.length, 3, 'the SDK kept the links the test means it to');
  const arrived = await rx.waitFor(1);
  assert.deepStrictEqual(arrived[0].links.map((l) => [l.span_id, l.flags]),
    [['b7ad6b7169203331', 0x301], ['b7ad6b7169203332', 0x101], ['0000000000000000', 0x100]]);
  assert.strictEqual(arrived[0].links[2].trace_id, '0'.repeat(32));
  assertSameSpans([sdkSpan], arrived);
  assert.strictEqual(bridge.failures, 0);
  await provider.shutdown();
});

test('a flush after shutdown resolves: calls after shutdown are ignored, never rejected', async (t) => {
  const rx = await startReceiver();
  t.after(() => rx.stop());
  const { bridge, provider } = bridgedProvider(rx, 'otel-late-flush-test');
  provider.getTracer('late').startSpan('before').end();
  await provider.shutdown();
  await provider.forceFlush();
  await bridge.forceFlush();
});

test('an array holding null arrives with its other elements', async (t) => {
  // OpenTelemetry keeps null in arrays; the bridge left the whole attribute
  // out. The binding sends such an element as its type's zero.
  const rx = await startReceiver();
  t.after(() => rx.stop());
  const { bridge, provider } = bridgedProvider(rx, 'otel-null-array-test');
  const span = provider.getTracer('nulls').startSpan('with.nulls', { attributes: { reasons: ['stop', null] } });
  span.setAttribute('later', [1, undefined, 3]);
  span.addEvent('e', { flags: [true, null] });
  span.end();
  await provider.forceFlush();
  const [got] = await rx.waitFor(1);
  assert.deepStrictEqual(got.attributes, { reasons: ['stop', ''], later: [1, 0, 3] });
  assert.deepStrictEqual(got.events[0].attributes, { flags: [true, false] });
  assert.strictEqual(bridge.failures, 0);
  await provider.shutdown();
});

test('spans carry the provider\'s resource, as with the SDK\'s own exporter', async (t) => {
  // They arrived with spanguard's (service.name and all); its arrays (the
  // process detector's process.command_args) were left out, counted
  // nowhere.
  const { resourceFromAttributes } = require('@opentelemetry/resources');
  const rx = await startReceiver();
  t.after(() => rx.stop());
  const { bridge, provider } = bridgedProvider(rx, 'otel-resource-test', {
    resource: resourceFromAttributes({ 'service.name': 'checkout-agent', 'deployment.environment.name': 'prod', replicas: 3,
      'process.command_args': ['/usr/bin/node', 'agent.js', '--model=gpt-4o'], ports: [80, 443] }),
  });
  provider.getTracer('res').startSpan('op').end();
  await provider.forceFlush();
  const [got] = await rx.waitFor(1);
  assert.strictEqual(got.resource['service.name'], 'checkout-agent');
  assert.strictEqual(got.resource['deployment.environment.name'], 'prod');
  assert.strictEqual(got.resource.replicas, 3);
  assert.deepStrictEqual(got.resource['process.command_args'], ['/usr/bin/node', 'agent.js', '--model=gpt-4o']);
  assert.deepStrictEqual(got.resource.ports, [80, 443]);
  assert.strictEqual(bridge.failures, 0);
  await provider.shutdown();
});

test('a resource whose detectors are still resolving arrives whole, with the bridge as the only processor', async () => {
  // NodeSDK's resource holds its detectors' attributes as promises, and
  // stays "pending" until someone calls waitForAsyncAttributes(), which the
  // SDK's own span processors do before they export. With spanguard's
  // bridge as the only processor nobody did: every span arrived under the
  // tracer's service.name, never NodeSDK's serviceName.
  const fs = require('fs');
  const os = require('os');
  const path = require('path');
  const { resourceFromAttributes } = require('@opentelemetry/resources');
  const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');
  const spanguard = require('..');
  const { SpanguardSpanProcessor } = require('../otel');
  const { readSpans } = require('./sink');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-otel-async-resource-'));
  const bridge = new SpanguardSpanProcessor(new spanguard.Tracer({ fromEnv: false, serviceName: 'the-tracers-own',
    sinkDir: path.join(dir, 'sink'), spoolDir: path.join(dir, 'spool') }));
  const resource = resourceFromAttributes({ 'service.name': 'detected-agent', team: 'search',
    'host.id': new Promise((r) => setTimeout(() => r('machine-1'), 20)) });
  assert.ok(resource.asyncAttributesPending);
  const provider = new NodeTracerProvider({ resource, spanProcessors: [bridge] });
  provider.getTracer('res').startSpan('op').end();
  await provider.shutdown();
  const spans = readSpans(path.join(dir, 'sink'));
  assert.strictEqual(spans.length, 1);
  const [line] = fs.readdirSync(path.join(dir, 'sink')).map((f) => fs.readFileSync(path.join(dir, 'sink', f), 'utf8'));
  const attrs = Object.fromEntries(JSON.parse(line.split('\n')[0]).resourceSpans[0].resource.attributes
    .map((a) => [a.key, a.value.stringValue]));
  assert.strictEqual(attrs['service.name'], 'detected-agent');
  assert.strictEqual(attrs.team, 'search');
  assert.strictEqual(attrs['host.id'], 'machine-1');
  assert.strictEqual(bridge.failures, 0);
});

/**
 * A span of 200 attributes (100 at its start, 100 later), 150 events and
 * 150 links, made by `provider`; what the SDK kept of it.
 */
function manySpan(provider, memory) {
  const linked = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1 };
  const atStart = {};
  for (let i = 0; i < 100; i++) atStart[`gen_ai.prompt.${i}.content`] = `message ${i}`;
  const links = [];
  for (let i = 0; i < 150; i++) links.push({ context: linked, attributes: { n: i } });
  const span = provider.getTracer('limits').startSpan('llm.chat', { attributes: atStart, links });
  for (let i = 100; i < 200; i++) span.setAttribute(`gen_ai.prompt.${i}.content`, `message ${i}`);
  for (let i = 0; i < 150; i++) span.addEvent(`chunk.${i}`, { i });
  span.end();
  return memory.getFinishedSpans()[0];
}

test('the provider\'s span limits apply to its spans, not spanguard\'s own on top', async (t) => {
  // A provider that allowed 1000 attributes got 128 of 200 (72 counted
  // dropped): the bridge's tracer cut again at its own default.
  const rx = await startReceiver();
  t.after(() => rx.stop());
  const { memory, bridge, provider } = bridgedProvider(rx, 'otel-raised-limits-test',
    { spanLimits: { attributeCountLimit: 1000, eventCountLimit: 1000, linkCountLimit: 1000 } });
  const sdkSpan = manySpan(provider, memory);
  await provider.forceFlush();
  const [got] = await rx.waitFor(1);
  assert.strictEqual(Object.keys(got.attributes).length, 200);
  assert.strictEqual(got.events.length, 150);
  assert.strictEqual(got.links.length, 150);
  assert.deepStrictEqual([got.dropped_attributes_count, got.dropped_events_count, got.dropped_links_count], [0, 0, 0]);
  assertSameSpans([sdkSpan], [got]);
  assert.strictEqual(bridge.failures, 0);
  await provider.shutdown();
});

test('with the SDK\'s default limits what it dropped is counted once', async (t) => {
  const rx = await startReceiver();
  t.after(() => rx.stop());
  const { memory, bridge, provider } = bridgedProvider(rx, 'otel-default-limits-test');
  const sdkSpan = manySpan(provider, memory);
  await provider.forceFlush();
  const [got] = await rx.waitFor(1);
  assert.strictEqual(Object.keys(got.attributes).length, 128);
  assert.strictEqual(got.events.length, 128);
  assert.strictEqual(got.links.length, 128);
  assert.deepStrictEqual([got.dropped_attributes_count, got.dropped_events_count, got.dropped_links_count], [72, 22, 22]);
  // Events are passed on as they are added while the SDK has room for them
  // (so that a span killed mid-call carries them): the first 127, which the
  // SDK evicted later to keep its last 128. Those arrive that the SDK kept,
  // in order, as does the rest.
  const names = got.events.map((e) => e.name);
  assert.deepStrictEqual(names, Array.from({ length: 128 }, (_, i) => `chunk.${i + 22}`));
  assertSameSpans([sdkSpan], [got]);
  assert.strictEqual(bridge.failures, 0);
  await provider.shutdown();
});

for (const own of [undefined, 2]) {
  test(`past the SDK's limit its last events and links arrive (spanguard's own limit ${own || 'default'})`, async (t) => {
    // Events and links are passed on as they are added while the SDK's list
    // has room (so that a span killed mid-call carries them); past its limit
    // the SDK evicts its oldest. The span arrived with the first ones passed
    // on (e0, e1, e2, then e6) where the SDK kept e6 to e9. It must arrive as
    // the SDK holds it at its end: its last ones, in order, the others
    // counted; spanguard's own (lower) limits do not apply to the bridge's spans.
    const rx = await startReceiver();
    t.after(() => rx.stop());
    const { memory, bridge, provider } = bridgedProvider(rx, 'otel-last-events-test',
      { spanLimits: { eventCountLimit: 4, linkCountLimit: 4 } }, own ? { eventCountLimit: own, linkCountLimit: own } : {});
    const span = provider.getTracer('events').startSpan('many.events');
    for (let i = 0; i < 10; i++) span.addEvent(`e${i}`, { i });
    for (let i = 0; i < 10; i++) {
      span.addLink({ context: { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: (i + 1).toString(16).padStart(16, '0'),
        traceFlags: 1 }, attributes: { n: i } });
    }
    span.end();
    await provider.forceFlush();
    const [sdkSpan] = memory.getFinishedSpans();
    assert.deepStrictEqual(sdkSpan.events.map((e) => e.name), ['e6', 'e7', 'e8', 'e9'], 'the SDK keeps its last ones');
    assert.deepStrictEqual([sdkSpan.droppedEventsCount, sdkSpan.droppedLinksCount], [6, 6]);
    assertSameSpans([sdkSpan], await rx.waitFor(1));
    assert.strictEqual(bridge.failures, 0);
    await provider.shutdown();
  });
}

test('links given at the start and evicted later arrive as the SDK holds them', async (t) => {
  // The SDK kept the last of the links given at the start before the bridge
  // saw them; those added later evict those passed on.
  const rx = await startReceiver();
  t.after(() => rx.stop());
  const { memory, bridge, provider } = bridgedProvider(rx, 'otel-start-links-test', { spanLimits: { linkCountLimit: 3 } });
  const linked = Array.from({ length: 7 }, (_, i) => ({ context: { traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: (i + 1).toString(16).padStart(16, '0'), traceFlags: 1, isRemote: true }, attributes: { n: i } }));
  const span = provider.getTracer('links').startSpan('linked', { links: linked.slice(0, 5) });
  span.addLink(linked[5]);
  span.addLink(linked[6]);
  span.end();
  await provider.forceFlush();
  const [sdkSpan] = memory.getFinishedSpans();
  assert.deepStrictEqual(sdkSpan.links.map((l) => l.attributes.n), [4, 5, 6], 'the SDK keeps its last ones');
  assertSameSpans([sdkSpan], await rx.waitFor(1));
  assert.strictEqual(bridge.failures, 0);
  await provider.shutdown();
});

for (const later of [100, 70]) {
  test(`what spanguard refused while its pool was used up costs none the SDK kept (${later} later)`, async (t) => {
    // Spans in flight that use up the payload pool make spanguard refuse
    // the events and links passed on once a span's own room is full (their
    // entries have nowhere to go): counted dropped, not held. When room
    // comes back the later ones are held. Past its limit the SDK evicts its
    // oldest, and the bridge drops from spanguard those of them it holds:
    // counting the refused ones as held, it dropped as many more of those
    // the SDK kept (the first ones added after the pool had room).
    const rx = await startReceiver();
    t.after(() => rx.stop());
    const { memory, bridge, provider } = bridgedProvider(rx, 'otel-refused-test',
      { spanLimits: { eventCountLimit: 100, linkCountLimit: 100 } }, { payloadPoolMib: 1 });
    const { tracer } = bridge;
    const hog = tracer.startSpan('pool.hog');
    for (let i = 0; i < 24; i++) hog.setAttribute(`big.${i}`, 'x'.repeat(65536)); // more than the pool's MiB
    const probe = tracer.startSpan('probe');
    const span = provider.getTracer('refused').startSpan('refused');
    const early = 60;
    const add = (n) => {
      span.addEvent(`event.${n}`, { n });
      span.addLink({ context: { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: (n + 1).toString(16).padStart(16, '0'),
        traceFlags: 1 }, attributes: { n } });
    };
    for (let n = 0; n < early; n++) {
      add(n);
      probe.addEvent(`event.${n}`, { n });
      probe.addLink(`00-0af7651916cd43dd8448eb211c80319c-${(n + 1).toString(16).padStart(16, '0')}-01`, { n });
    }
    hog.end();
    probe.end();
    assert.ok(await tracer.flush(), "the pool's room given back");
    for (let n = early; n < early + later; n++) add(n);
    span.end();
    await provider.forceFlush();
    const arrived = await rx.waitFor(3);
    const got = Object.fromEntries(arrived.map((s) => [s.name, s]));
    assert.ok(got.probe.events.length < early && got.probe.links.length < early,
      'spanguard refused some of the first ones (the pool was used up)');
    const [sdkSpan] = memory.getFinishedSpans();
    assert.strictEqual(sdkSpan.droppedEventsCount, early + later - 100);
    for (const [field, sdk] of [['events', sdkSpan.events], ['links', sdkSpan.links]]) {
      const kept = sdk.map((e) => e.attributes.n);
      const held = got.refused[field].map((e) => e.attributes.n);
      // Those the SDK kept, in order, less some of the first ones (those
      // refused); every one added once the pool had room; each one given
      // held or counted once.
      assert.deepStrictEqual(held, kept.filter((n) => held.includes(n)), field);
      assert.deepStrictEqual(held.filter((n) => n >= early), kept.filter((n) => n >= early), field);
      assert.strictEqual(held.length + got.refused[`dropped_${field}_count`], early + later, field);
    }
    if (later === 100) assertSameSpans([sdkSpan], [got.refused]); // the SDK's own are all among those added with room
    assert.strictEqual(bridge.failures, 0);
    await provider.shutdown();
  });
}

test('a link spanguard refused costs none the SDK kept, and is counted', async (t) => {
  // The SDK keeps a link whose context is invalid even with no attributes
  // and no tracestate; spanguard finds nothing to record in it and refuses
  // it without counting it. Given at the start between links spanguard
  // took, and evicted later with the first of them, it made the bridge drop
  // from spanguard one the SDK kept in its stead.
  const rx = await startReceiver();
  t.after(() => rx.stop());
  const { memory, bridge, provider } = bridgedProvider(rx, 'otel-refused-link-test', { spanLimits: { linkCountLimit: 4 } });
  const link = (n) => ({ context: { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: n.toString(16).padStart(16, '0'),
    traceFlags: 1 }, attributes: { n } });
  const refused = { context: { traceId: '0'.repeat(32), spanId: '0'.repeat(16), traceFlags: 0 } };
  const span = provider.getTracer('links').startSpan('refused.link', { links: [link(1), refused, link(3), link(4)] });
  span.addLink(link(5));
  span.addLink(link(6));
  span.end();
  await provider.forceFlush();
  const [sdkSpan] = memory.getFinishedSpans();
  assert.deepStrictEqual([sdkSpan.links.map((l) => l.attributes.n), sdkSpan.droppedLinksCount], [[3, 4, 5, 6], 2],
    'the SDK keeps what the test means it to');
  assertSameSpans([sdkSpan], await rx.waitFor(1));
  assert.strictEqual(bridge.failures, 0);
  await provider.shutdown();
});

test('the attributes the SDK dropped on an event or a link arrive counted on it', async (t) => {
  // The SDK's own OTLP exporter sends each event's and link's
  // droppedAttributesCount; spanguard's export said 0 for them.
  const rx = await startReceiver();
  t.after(() => rx.stop());
  const { memory, bridge, provider } = bridgedProvider(rx, 'otel-item-drops-test',
    { spanLimits: { eventCountLimit: 4, attributePerEventCountLimit: 1, attributePerLinkCountLimit: 2 } });
  const linked = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1, isRemote: true };
  const span = provider.getTracer('limited').startSpan('over.item.limits', {
    links: [{ context: linked, attributes: { a: 1, b: 2, c: 3, d: 4, e: 5 } }],
  });
  span.addEvent('three', { x: 1, y: 2, z: 3 });
  span.addEvent('one', { x: 1 });
  span.end();
  await provider.forceFlush();
  const [sdkSpan] = memory.getFinishedSpans();
  const sdkEvents = sdkSpan.events.map((e) => e.droppedAttributesCount || 0);
  const sdkLinks = sdkSpan.links.map((l) => l.droppedAttributesCount || 0);
  assert.deepStrictEqual([sdkEvents, sdkLinks], [[2, 0], [3]], 'the SDK dropped what the test means it to');
  const arrived = await rx.waitFor(1);
  assert.deepStrictEqual(arrived[0].events.map((e) => e.dropped_attributes_count), sdkEvents);
  assert.deepStrictEqual(arrived[0].links.map((l) => l.dropped_attributes_count), sdkLinks);
  assertSameSpans([sdkSpan], arrived);
  assert.strictEqual(bridge.failures, 0);
  await provider.shutdown();
});
