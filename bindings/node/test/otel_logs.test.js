'use strict';
// SpanguardLogRecordProcessor: event log records (what instrumentations send
// through the Logs API in the stead of span attributes or events) added to
// spanguard's copy of the span whose context they carry, as span events,
// with their body under `log.record.body`; those whose span is not open
// counted; those the SDK's event limit would take with its evicted events
// kept. (otel_openai_contrib.test.js: with @opentelemetry/instrumentation-openai.)
const { test } = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');

const api = require('@opentelemetry/api');
const { LoggerProvider } = require('@opentelemetry/sdk-logs');

const { SpanguardLogRecordProcessor, SpanguardSpanExporter, LOG_RECORD_BODY } = require('../otel');
const { startReceiver, bridgedProvider } = require('./receiver');

function setup(rx, name) {
  const { memory, bridge, provider } = bridgedProvider(rx, name);
  const toSpans = new SpanguardLogRecordProcessor(bridge);
  const logs = new LoggerProvider({ processors: [toSpans] });
  return { memory, bridge, provider, toSpans, logger: logs.getLogger('genai') };
}

const inSpan = (span) => api.trace.setSpan(api.context.active(), span);

test('an event record goes onto its open span, body and attributes whole; others are left alone or counted', async (t) => {
  const rx = await startReceiver();
  t.after(() => rx.stop());
  const { bridge, provider, toSpans, logger } = setup(rx, 'otel-logs');
  const tracer = provider.getTracer('agent');
  const turn = tracer.startSpan('agent.turn');
  const chat = tracer.startSpan('chat gpt-4o', {}, inSpan(turn));
  const body = { content: 'Grüße aus Lissabon 🌞 — 天気は？', parts: [{ type: 'text', n: 2 }] };
  // Matched by the context the record carries, not the current span (turn is current here).
  api.context.with(inSpan(turn), () => {
    logger.emit({ eventName: 'gen_ai.user.message', body, attributes: { 'gen_ai.system': 'openai' }, context: inSpan(chat) });
    // The Events API's way (still instrumentation-openai's): the name among the attributes.
    logger.emit({ attributes: { 'event.name': 'gen_ai.choice', 'gen_ai.system': 'openai' }, body: 'a string body',
      context: inSpan(chat) });
    logger.emit({ body: 'a plain log line', context: inSpan(chat) }); // no event name: left alone
  });
  logger.emit({ eventName: 'gen_ai.user.message', body: 'no span', context: api.ROOT_CONTEXT }); // no span: left alone
  assert.deepStrictEqual([toSpans.attached, toSpans.notAttached], [2, 0]);
  chat.end();
  logger.emit({ eventName: 'gen_ai.choice', body: 'too late', context: inSpan(chat) }); // its span has ended
  assert.deepStrictEqual([toSpans.attached, toSpans.notAttached], [2, 1]);
  // One emitted on a span still open when the process stops is exported with it.
  logger.emit({ eventName: 'gen_ai.assistant.message', body: { content: 'partial' }, context: inSpan(turn) });
  await bridge.tracer.shutdown();
  const arrived = await rx.waitFor(2);
  const got = arrived.find((s) => s.name === 'chat gpt-4o');
  assert.strictEqual(got.parent_span_id, turn.spanContext().spanId);
  assert.deepStrictEqual(got.events.map((e) => [e.name, e.attributes]), [
    ['gen_ai.user.message', { 'gen_ai.system': 'openai', [LOG_RECORD_BODY]: body }],
    ['gen_ai.choice', { 'gen_ai.system': 'openai', [LOG_RECORD_BODY]: 'a string body' }],
  ]);
  const open = arrived.find((s) => s.name === 'agent.turn');
  assert.strictEqual(open.attributes['spanguard.unended'], true);
  assert.deepStrictEqual(open.events.map((e) => [e.name, e.attributes]),
    [['gen_ai.assistant.message', { [LOG_RECORD_BODY]: { content: 'partial' } }]]);
  assert.deepStrictEqual([toSpans.attached, toSpans.notAttached, bridge.failures], [3, 1, 0]);
  await provider.shutdown();
});

test('a prompt event stays when the SDK evicts the span\'s oldest events past its limit', async (t) => {
  const rx = await startReceiver();
  t.after(() => rx.stop());
  const { memory, bridge, provider, toSpans, logger } = setup(rx, 'otel-logs-evicted');
  const chat = provider.getTracer('agent').startSpan('chat gpt-4o');
  logger.emit({ eventName: 'gen_ai.user.message', body: { content: 'the prompt' }, context: inSpan(chat) });
  // An instrumentation adding an event a streamed chunk: 200, past the SDK's default limit of 128.
  for (let i = 0; i < 200; i++) chat.addEvent('chunk', { i });
  chat.end();
  await provider.forceFlush();
  const [sdkSpan] = memory.getFinishedSpans();
  assert.deepStrictEqual([sdkSpan.events.length, sdkSpan.droppedEventsCount], [128, 72]);
  const [got] = await rx.waitFor(1);
  const prompt = got.events.filter((e) => e.name === 'gen_ai.user.message');
  assert.deepStrictEqual(prompt.map((e) => e.attributes), [{ [LOG_RECORD_BODY]: { content: 'the prompt' } }], 'the prompt event');
  assert.deepStrictEqual(got.events.filter((e) => e.name === 'chunk').map((e) => e.attributes.i),
    sdkSpan.events.map((e) => e.attributes.i), 'the chunks the SDK kept, and no other');
  assert.strictEqual(got.dropped_events_count, 72);
  assert.deepStrictEqual([toSpans.attached, toSpans.notAttached, bridge.failures], [1, 0, 0]);
  await provider.shutdown();
});

test('records of spans not open in the exporter\'s processor are counted; only a bridge is taken', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-logs-'));
  const exporter = new SpanguardSpanExporter({ fromEnv: false, sinkDir: path.join(dir, 'sink'), spoolDir: path.join(dir, 'spool') });
  assert.throws(() => new SpanguardLogRecordProcessor(), TypeError);
  assert.throws(() => new SpanguardLogRecordProcessor({}), TypeError);
  // The exporter's inner processor opens no span: given it, a record is counted at once.
  const toSpans = new SpanguardLogRecordProcessor(exporter.bridge);
  const logger = new LoggerProvider({ processors: [toSpans] }).getLogger('genai');
  const ctx = api.trace.setSpanContext(api.ROOT_CONTEXT,
    { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1 });
  logger.emit({ eventName: 'gen_ai.user.message', body: 'hi', context: ctx });
  const unsampled = api.trace.setSpanContext(api.ROOT_CONTEXT,
    { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203332', traceFlags: 0 });
  logger.emit({ eventName: 'gen_ai.user.message', body: 'hi', context: unsampled }); // unsampled: left alone
  assert.deepStrictEqual([toSpans.attached, toSpans.notAttached], [0, 1]);
  await exporter.shutdown();
});

// SpanguardSpanExporter under a BatchSpanProcessor gets each span once it
// has ended and left the SDK's queue: the log processor given the exporter
// holds each event record until the exporter gets its span.
function exporterSetup(rx, name, held) {
  const { BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
  const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-logs-exporter-'));
  const exporter = new SpanguardSpanExporter({ fromEnv: false, endpoint: rx.url, spoolDir: path.join(dir, 'spool'),
    scheduleDelayMs: 50, serviceName: name });
  // Exports only when flushed.
  const provider = new NodeTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter,
    { scheduledDelayMillis: 3600000, exportTimeoutMillis: 30000 })] });
  const toSpans = new SpanguardLogRecordProcessor(exporter, held);
  const logs = new LoggerProvider({ processors: [toSpans] });
  return { exporter, provider, toSpans, logger: logs.getLogger('genai') };
}

const counts = (p) => [p.attached, p.notAttached, p.held];
const nobodys = api.trace.setSpanContext(api.ROOT_CONTEXT,
  { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: '00000000000abcde', traceFlags: 1 });

test('with the exporter, records of ended spans wait for their export; past maxHeld or maxHeldBytes the oldest is counted',
  async (t) => {
    const rx = await startReceiver();
    t.after(() => rx.stop());
    const { provider, toSpans, logger } = exporterSetup(rx, 'otel-logs-exporter', { maxHeld: 2 });
    const big = 'Grüße 🌞 天気 '.repeat(6000); // 60 KB and more of UTF-8
    const ended = ['first', 'second', 'third'].map((name) => {
      const span = provider.getTracer('agent').startSpan(name);
      span.end();
      return span;
    });
    // Emitted after their spans ended, before the export.
    for (const span of ended) {
      logger.emit({ eventName: 'gen_ai.user.message', body: { content: `to ${span.name} ${big}` }, context: inSpan(span) });
    }
    assert.deepStrictEqual(counts(toSpans), [0, 1, 2]);
    await provider.forceFlush();
    assert.deepStrictEqual(counts(toSpans), [2, 1, 0]);
    const got = Object.fromEntries((await rx.waitFor(3)).map((s) => [s.name, s]));
    assert.deepStrictEqual(got.first.events, []);
    for (const name of ['second', 'third']) {
      assert.deepStrictEqual(got[name].events.map((e) => e.name), ['gen_ai.user.message']);
      assert.strictEqual(got[name].events[0].attributes[LOG_RECORD_BODY].content, `to ${name} ${big}`);
    }
    await provider.shutdown();

    // Bytes: a record holds about 2 bytes a UTF-16 unit here; one fits, not two.
    const bytes = exporterSetup(rx, 'otel-logs-exporter-bytes', { maxHeldBytes: 3 * big.length });
    for (let i = 0; i < 5; i++) bytes.logger.emit({ eventName: 'gen_ai.user.message', body: big, context: nobodys });
    assert.deepStrictEqual(counts(bytes.toSpans), [0, 4, 1]);
    await bytes.provider.shutdown();
    assert.deepStrictEqual(counts(bytes.toSpans), [0, 5, 0]);
  });

test('with the exporter, a record whose span never comes is counted at shutdown or holdS after; an open span\'s waits',
  async (t) => {
    const rx = await startReceiver();
    t.after(() => rx.stop());
    const { provider, toSpans, logger } = exporterSetup(rx, 'otel-logs-exporter-lost');
    logger.emit({ eventName: 'gen_ai.user.message', body: 'lost', context: nobodys });
    await provider.forceFlush();
    assert.deepStrictEqual(counts(toSpans), [0, 0, 1]);
    await provider.shutdown(); // the exporter's shutdown: no span comes any more
    assert.deepStrictEqual(counts(toSpans), [0, 1, 0]);
    logger.emit({ eventName: 'gen_ai.user.message', body: 'late', context: nobodys });
    assert.deepStrictEqual(counts(toSpans), [0, 2, 0]);

    // holdS 0: counted at the next look; a record of a span still open waits for it all the same.
    const aged = exporterSetup(rx, 'otel-logs-exporter-aged', { holdS: 0 });
    aged.logger.emit({ eventName: 'gen_ai.user.message', body: 'lost', context: nobodys });
    const chat = aged.provider.getTracer('agent').startSpan('chat');
    aged.logger.emit({ eventName: 'gen_ai.user.message', body: { content: 'the prompt' }, context: inSpan(chat) });
    await aged.toSpans.forceFlush(); // a look at what is held
    assert.deepStrictEqual(counts(aged.toSpans), [0, 1, 1]);
    chat.end();
    await aged.provider.forceFlush();
    assert.deepStrictEqual(counts(aged.toSpans), [1, 1, 0]);
    const [got] = await rx.waitFor(1);
    assert.deepStrictEqual(got.events.map((e) => [e.name, e.attributes]),
      [['gen_ai.user.message', { [LOG_RECORD_BODY]: { content: 'the prompt' } }]]);
    await aged.provider.shutdown();
  });

test('the ES module entry point exports the log record processor', async () => {
  const esm = await import('../otel.mjs');
  assert.strictEqual(esm.SpanguardLogRecordProcessor, SpanguardLogRecordProcessor);
  assert.strictEqual(esm.LOG_RECORD_BODY, 'log.record.body');
  assert.strictEqual(esm.default.SpanguardLogRecordProcessor, SpanguardLogRecordProcessor);
});

const logRecordStats = (tracer) => {
  const stats = tracer.stats();
  return [stats.log_records_attached, stats.log_records_not_attached, stats.log_records_held];
};

/** The process warnings with `code` emitted while `fn` runs. */
async function warningsOf(code, fn) {
  const seen = [];
  const listener = (w) => { if (w.code === code) seen.push(w.message); };
  process.on('warning', listener);
  try {
    await fn();
    await new Promise((resolve) => setImmediate(resolve)); // process warnings are emitted on the next tick
  } finally {
    process.off('warning', listener);
  }
  return seen;
}

test('the tracer\'s stats() count the log records of every processor given its bridge; the shutdown names what was lost',
  async (t) => {
    const rx = await startReceiver();
    t.after(() => rx.stop());
    const { exporter, provider, toSpans, logger } = exporterSetup(rx, 'otel-logs-stats');
    const tracer = exporter.tracer;
    const chat = provider.getTracer('agent').startSpan('chat');
    logger.emit({ eventName: 'gen_ai.user.message', body: 'kept', context: inSpan(chat) });
    chat.end();
    logger.emit({ eventName: 'gen_ai.user.message', body: 'lost', context: nobodys });
    assert.deepStrictEqual(logRecordStats(tracer), [0, 0, 2]);
    await provider.forceFlush();
    assert.deepStrictEqual(logRecordStats(tracer), [1, 0, 1]);
    assert.deepStrictEqual(counts(toSpans), [1, 0, 1]);
    // The exporter made its tracer: its shutdown closes it, and stats() still answers, with the counts.
    const said = await warningsOf('SPANGUARD_LOG_RECORDS_NOT_ATTACHED', () => provider.shutdown());
    assert.deepStrictEqual(said, ['spanguard: 1 event record(s) sent through the Logs API (prompts, with some '
      + 'instrumentations) did not reach their spans (counted in the tracer\'s stats().log_records_not_attached)']);
    assert.deepStrictEqual(logRecordStats(tracer), [1, 1, 0]);

    // The span processor's path: its counts are its tracer's, and its shutdown says the same.
    const { bridge, provider: bridged, logger: bridgedLogger } = setup(rx, 'otel-logs-stats-bridge');
    const open = bridged.getTracer('agent').startSpan('open');
    bridgedLogger.emit({ eventName: 'gen_ai.user.message', body: 'kept', context: inSpan(open) });
    open.end();
    bridgedLogger.emit({ eventName: 'gen_ai.choice', body: 'late', context: inSpan(open) });
    assert.deepStrictEqual(logRecordStats(bridge.tracer), [1, 1, 0]);
    const bridgeSaid = await warningsOf('SPANGUARD_LOG_RECORDS_NOT_ATTACHED', () => bridged.shutdown());
    assert.deepStrictEqual(bridgeSaid.map((m) => m.split(' event record(s)')[0]), ['spanguard: 1']);
    await bridge.tracer.close();
    assert.deepStrictEqual(logRecordStats(bridge.tracer), [1, 1, 0]);
  });

test('a wrong cap or holdS given in code throws a TypeError naming it', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-logs-caps-'));
  const exporter = new SpanguardSpanExporter({ fromEnv: false, sinkDir: path.join(dir, 'sink'), spoolDir: path.join(dir, 'spool') });
  for (const [option, value] of [['maxHeld', 0], ['maxHeld', -1], ['maxHeld', 2 ** 53], ['maxHeld', 2.5],
    ['maxHeld', NaN], ['maxHeld', Infinity], ['maxHeld', '4096'], ['maxHeld', null], ['maxHeldBytes', 0],
    ['maxHeldBytes', 1e40], ['maxHeldBytes', NaN], ['holdS', NaN], ['holdS', Infinity], ['holdS', -1],
    ['holdS', '70']]) {
    assert.throws(() => new SpanguardLogRecordProcessor(exporter, { [option]: value }),
      (err) => err instanceof TypeError && err.message.startsWith(`spanguard: ${option} must be`), `${option}: ${value}`);
  }
  const largest = new SpanguardLogRecordProcessor(exporter, { maxHeld: Number.MAX_SAFE_INTEGER, holdS: 0 });
  assert.strictEqual(largest.held, 0);
  await exporter.shutdown();
});

test('the caps default to SPANGUARD_LOG_RECORDS_MAX_HELD(_BYTES); a wrong one is warned about once, the default applies',
  async (t) => {
    const rx = await startReceiver();
    t.after(() => rx.stop());
    const saved = { ...process.env };
    t.after(() => {
      delete process.env.SPANGUARD_LOG_RECORDS_MAX_HELD;
      delete process.env.SPANGUARD_LOG_RECORDS_MAX_HELD_BYTES;
      Object.assign(process.env, saved);
    });
    process.env.SPANGUARD_LOG_RECORDS_MAX_HELD = ' 2 ';
    const two = exporterSetup(rx, 'otel-logs-env');
    for (let i = 0; i < 3; i++) two.logger.emit({ eventName: 'gen_ai.user.message', body: `${i}`, context: nobodys });
    assert.deepStrictEqual(counts(two.toSpans), [0, 1, 2]);
    const given = new SpanguardLogRecordProcessor(two.exporter, { maxHeld: 3 }); // given in code: it wins
    const logger = new LoggerProvider({ processors: [given] }).getLogger('genai');
    for (let i = 0; i < 4; i++) logger.emit({ eventName: 'gen_ai.user.message', body: `${i}`, context: nobodys });
    assert.deepStrictEqual(counts(given), [0, 1, 3]);
    await two.provider.shutdown();

    delete process.env.SPANGUARD_LOG_RECORDS_MAX_HELD;
    for (const raw of ['0', '-5', 'lots', '1e3', '2.5', '9'.repeat(30), '0x10']) {
      process.env.SPANGUARD_LOG_RECORDS_MAX_HELD_BYTES = raw;
      const said = await warningsOf('SPANGUARD_BAD_VARIABLE', async () => {
        const wrong = exporterSetup(rx, 'otel-logs-env-wrong');
        new SpanguardLogRecordProcessor(wrong.exporter); // eslint-disable-line no-new
        for (let i = 0; i < 5; i++) wrong.logger.emit({ eventName: 'gen_ai.user.message', body: `${i}`, context: nobodys });
        assert.deepStrictEqual(counts(wrong.toSpans), [0, 0, 5], raw); // the default, 64 MiB: all five held
        await wrong.provider.shutdown();
      });
      // Said once a process: the first wrong value only.
      assert.deepStrictEqual(said, raw === '0' ? [`spanguard: SPANGUARD_LOG_RECORDS_MAX_HELD_BYTES="0" ignored: not a `
        + `whole number from 1 to ${Number.MAX_SAFE_INTEGER}; the default, ${64 * 1024 * 1024}, applies`] : [], raw);
    }
  });
