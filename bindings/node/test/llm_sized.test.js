'use strict';
// LLM-sized data arrives whole through the Node binding and its
// OpenTelemetry bridge, with the default settings: a span with a 4 MB
// `input.value`, a 1 MB message and 200 events of 20 KB reaches the loopback
// receiver (decoded by opentelemetry-proto) byte for byte over OTLP/protobuf
// with gzip and over OTLP/JSON. Only what the SDK's default event count limit
// (128) drops is missing, counted as the SDK counts it. The text is random
// base64, so a cut, moved or repeated piece cannot pass for the original.
const { test } = require('node:test');
const assert = require('node:assert');
const crypto = require('crypto');

const spanguard = require('..');
const { startReceiver, assertSameSpans, bridgedProvider } = require('./receiver');

const MB = 1000000;
const text = (n) => crypto.randomBytes(Math.ceil((n * 3) / 4)).toString('base64').slice(0, n);
const CONTEXT = text(4 * MB);
const MESSAGE = text(MB);
const EVENT_TEXTS = Array.from({ length: 200 }, () => text(20000));

/** Length and digest: a failure names the size that arrived instead of printing megabytes. */
const fingerprint = (v) => (typeof v === 'string' ? [v.length, crypto.createHash('sha256').update(v).digest('hex')] : [typeof v]);

function record(span) {
  span.setAttribute('input.value', CONTEXT);
  span.setAttribute('llm.input_messages.0.message.content', MESSAGE);
  EVENT_TEXTS.forEach((t, i) => span.addEvent('gen_ai.content.prompt', { 'gen_ai.prompt': t, i }));
  span.end();
}

function assertWhole(got) {
  assert.deepStrictEqual(fingerprint(got.attributes['input.value']), fingerprint(CONTEXT), 'input.value');
  assert.deepStrictEqual(fingerprint(got.attributes['llm.input_messages.0.message.content']), fingerprint(MESSAGE), 'message');
  for (const e of got.events) {
    assert.deepStrictEqual(fingerprint(e.attributes['gen_ai.prompt']), fingerprint(EVENT_TEXTS[e.attributes.i]), `event ${e.attributes.i}`);
  }
  assert.strictEqual(got.events.length + got.dropped_events_count, 200);
}

// A request (megabytes of JSON for the receiver to decode) may take its
// time on a loaded machine: with the default 10 s request timeout the
// exporter gave up on one the receiver then recorded, spooled the span, and
// the test saw it arrive yet not counted exported. These bound a hang.
const PATIENT = { requestTimeoutMs: 120000, exportTimeoutMs: 120000 };

for (const [protocol, compression] of [['http/protobuf', 'gzip'], ['http/json', 'none']]) {
  test(`an LLM-sized span from the bridge arrives whole (${protocol}, ${compression})`, async (t) => {
    const rx = await startReceiver();
    t.after(() => rx.stop());
    const { memory, bridge, provider } = bridgedProvider(rx, 'llm-sized', {}, { protocol, compression, ...PATIENT });
    record(provider.getTracer('openllmetry').startSpan('llm.chat'));
    // The tracer's own flush first, with room: the processor's (the
    // provider's forceFlush) waits 5 s, and a request still in flight at a
    // flush's deadline is abandoned and spooled; the receiver, decoding
    // megabytes of JSON on a loaded machine, recorded it anyway, and the
    // replay brought the span a second time.
    await bridge.tracer.flush(120000);
    await provider.forceFlush();
    const [sdkSpan] = memory.getFinishedSpans();
    const arrived = await rx.waitFor(1);
    assert.strictEqual(arrived.length, 1);
    assertWhole(arrived[0]);
    assert.strictEqual(arrived[0].events.length, 128, "the SDK's default event count limit");
    assertSameSpans([sdkSpan], arrived);
    const stats = bridge.tracer.stats();
    assert.deepStrictEqual([stats.values_truncated, stats.dropped_export_failed, bridge.failures], [0, 0, 0]);
    await provider.shutdown();
  });

  test(`an LLM-sized span from the native API arrives whole (${protocol}, ${compression})`, async (t) => {
    const rx = await startReceiver();
    t.after(() => rx.stop());
    const tracer = new spanguard.Tracer({ fromEnv: false, endpoint: rx.url, scheduleDelayMs: 50, protocol, compression,
      ...PATIENT, spoolDir: require('fs').mkdtempSync(require('path').join(require('os').tmpdir(), 'sg-llm-')) });
    record(tracer.startSpan('llm.chat'));
    assert.strictEqual(await tracer.shutdownStatus(120000), 'delivered');
    const stats = tracer.stats();
    await tracer.close();
    const arrived = await rx.waitFor(1);
    assert.strictEqual(arrived.length, 1);
    assertWhole(arrived[0]);
    // spanguard's own default event count limit (128) keeps the first ones.
    assert.deepStrictEqual(arrived[0].events.map((e) => e.attributes.i), [...Array(128).keys()]);
    assert.deepStrictEqual([stats.values_truncated, stats.dropped_export_failed, stats.spans_exported], [0, 0, 1]);
  });
}

// A bridged span killed open (SIGKILL, the flight recorder) holds the events
// the SDK held: its first 128 (the bridge passes them on while the SDK's list
// has not gone past its limit). otel.js held back the event that fills the
// SDK's list (`now.length + dropped >= limit`), so 127 arrived; the Python
// bridge had the same off-by-one (fixed there: `count <= limit`). What the
// SDK's limits dropped is counted as it drops it (the bridge counted it only
// at onEnd, which a killed span never reaches: 0 arrived).
test('an LLM-sized bridged span killed open arrives from the flight recorder with the SDK\'s 128 events',
  async (t) => {
    const fs = require('fs');
    const os = require('os');
    const path = require('path');
    const { spawn } = require('child_process');
    const rx = await startReceiver();
    t.after(() => rx.stop());
    const spool = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-llm-kill-'));
    const program = `
      const spanguard = require(${JSON.stringify(path.resolve(__dirname, '..'))});
      const { SpanguardSpanProcessor } = require(${JSON.stringify(path.resolve(__dirname, '..', 'otel.js'))});
      const { BasicTracerProvider } = require('@opentelemetry/sdk-trace-base');
      // Sent to the receiver that later gets its flight file: a dead
      // process's spans go only to a sender set up like it.
      const tracer = new spanguard.Tracer({ fromEnv: false, endpoint: ${JSON.stringify(rx.url)},
        spoolDir: ${JSON.stringify(spool)}, flightRecorder: true, scheduleDelayMs: 600000 });
      const provider = new BasicTracerProvider({ spanProcessors: [new SpanguardSpanProcessor(tracer)] });
      const span = provider.getTracer('openllmetry').startSpan('llm.chat');
      const text = 'x'.repeat(20000);
      span.setAttribute('input.value', 'y'.repeat(4000000));
      for (let i = 0; i < 200; i++) span.addEvent('gen_ai.content.prompt', { 'gen_ai.prompt': text, i });
      // 130 more attributes: 3 past the SDK's limit of 128, which it refuses.
      for (let i = 0; i < 130; i++) span.setAttribute('k' + i, i);
      globalThis.held = span;
      process.stdout.write('recorded\\n');
      setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['-e', program], { cwd: path.resolve(__dirname, '..') });
    await new Promise((resolve, reject) => {
      let out = '';
      let err = '';
      child.stderr.on('data', (d) => { err += d; });
      child.stdout.on('data', (d) => { out += d; if (out.includes('recorded\n')) resolve(); });
      child.on('exit', () => reject(new Error(`the child ended first: ${err}`)));
    });
    child.removeAllListeners('exit');
    const killed = new Promise((resolve) => child.on('exit', (status, sig) => resolve(sig)));
    child.kill('SIGKILL');
    assert.strictEqual(await killed, 'SIGKILL');
    const after = new spanguard.Tracer({ fromEnv: false, endpoint: rx.url, spoolDir: spool });
    assert.strictEqual(await after.shutdown(30000), true);
    await after.close();
    const [got] = await rx.waitFor(1);
    assert.strictEqual(got.attributes['input.value'].length, 4000000);
    assert.deepStrictEqual(got.events.map((e) => Number(e.attributes.i)), [...Array(128).keys()]);
    assert.deepStrictEqual([got.dropped_events_count, got.dropped_attributes_count], [72, 3]);
    assert.strictEqual(Object.keys(got.attributes).filter((k) => !k.startsWith('spanguard.')).length, 128);
  });
