'use strict';
// The loopback OTLP receiver (tests/receiver/otlp_receiver.py, which decodes
// with opentelemetry-proto) for the bridge tests, and the comparison of what
// it accepted with the spans the OpenTelemetry SDK made.
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');

const { wholeLines } = require('./lines');

const REPO = path.resolve(__dirname, '..', '..', '..');
const PYTHON = process.env.SPANGUARD_TEST_PYTHON || path.join(REPO, '.venv', 'bin', 'python');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * The spans the receiver accepted, from its record file (one JSON line an
 * outcome), whole lines only (wholeLines): the receiver may be writing the
 * last one (one of otel_logs.test.js's 60 KB bodies is a 500 KB line).
 */
function recordedSpans(record) {
  if (!fs.existsSync(record)) return [];
  const out = [];
  for (const line of wholeLines(fs.readFileSync(record, 'utf8'))) {
    // Nanosecond times pass 2^53: keep them as text.
    const r = JSON.parse(line.replace(/"(start|end|time)":\s*(\d+)/g, '"$1": "$2"'));
    if (!r.rejected && !r.refused) out.push(...(r.spans || []));
  }
  return out;
}

/**
 * Starts a receiver (with `args`, e.g. ['--mode', 'slow:3']); resolves to
 * { url, spans(), waitFor(n), stop() }.
 */
async function startReceiver(args = []) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-rx-'));
  const record = path.join(dir, 'record.jsonl');
  const portFile = path.join(dir, 'port');
  const proc = spawn(PYTHON, [path.join(REPO, 'tests', 'receiver', 'otlp_receiver.py'), '--port', '0',
    '--port-file', portFile, '--record', record, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  // A bound for a receiver that never starts, not a speed: its imports
  // (protobuf) took seconds on a loaded machine.
  const deadline = Date.now() + 60000;
  while (!fs.existsSync(portFile) || !fs.readFileSync(portFile, 'utf8').trim()) {
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`the receiver did not start (${PYTHON})`);
    await sleep(50);
  }
  const port = Number(fs.readFileSync(portFile, 'utf8').trim());
  // However a test ends, the receiver ends with this process.
  process.on('exit', () => proc.kill('SIGTERM'));
  const spans = () => recordedSpans(record);
  return {
    url: `http://127.0.0.1:${port}/v1/traces`,
    spans,
    async waitFor(n, ms = 60000) {
      const deadline = Date.now() + ms;
      while (spans().length < n && Date.now() < deadline) await sleep(50);
      return spans();
    },
    stop() { proc.kill('SIGTERM'); },
  };
}

const ns = (hr) => (BigInt(hr[0]) * 1000000000n + BigInt(hr[1])).toString();

/** An OpenTelemetry attribute value as the receiver reports what spanguard exported (arrays as arrays, bytes as hex). */
function expectedValue(v) {
  return v instanceof Uint8Array ? { bytes: Buffer.from(v).toString('hex') } : v;
}

function expectedAttributes(attrs) {
  const out = {};
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) out[k] = expectedValue(v);
  return out;
}

/**
 * Every sampled span the SDK ended (as the in-memory exporter has them)
 * arrived once, with the same ids, parent, name, kind, times, scope,
 * attributes, events, links and status.
 */
function assertSameSpans(sdkSpans, arrived) {
  const byId = new Map();
  for (const s of arrived) {
    assert.ok(!byId.has(s.span_id), `span ${s.name} ${s.span_id} arrived twice`);
    byId.set(s.span_id, s);
  }
  for (const o of sdkSpans) {
    const ctx = o.spanContext();
    const got = byId.get(ctx.spanId);
    assert.ok(got, `the SDK span ${o.name} (${ctx.spanId}) did not arrive`);
    const what = `span ${o.name}`;
    assert.strictEqual(got.trace_id, ctx.traceId, `${what}: trace id`);
    const parent = o.parentSpanContext ? o.parentSpanContext.spanId : (o.parentSpanId || '');
    assert.strictEqual(got.parent_span_id, parent, `${what}: parent`);
    assert.strictEqual(got.name, o.name, `${what}: name`);
    assert.strictEqual(got.kind, o.kind + 1, `${what}: kind`);
    assert.strictEqual(got.start, ns(o.startTime), `${what}: start`);
    assert.strictEqual(got.end, ns(o.endTime), `${what}: end`);
    assert.strictEqual(got.scope, o.instrumentationScope.name, `${what}: scope`);
    assert.strictEqual(got.scope_version, o.instrumentationScope.version || '', `${what}: scope version`);
    assert.strictEqual(got.scope_schema_url, o.instrumentationScope.schemaUrl || '', `${what}: scope schema URL`);
    assert.deepStrictEqual(got.attributes, expectedAttributes(o.attributes), `${what}: attributes`);
    assert.deepStrictEqual(got.events.map((e) => [e.name, e.time, e.attributes]),
      o.events.map((e) => [e.name, ns(e.time), expectedAttributes(e.attributes)]), `${what}: events`);
    assert.deepStrictEqual(got.links.map((l) => [l.trace_id, l.span_id, l.trace_state, l.attributes]),
      o.links.map((l) => [l.context.traceId, l.context.spanId, l.context.traceState ? l.context.traceState.serialize() : '',
        expectedAttributes(l.attributes)]), `${what}: links`);
    assert.deepStrictEqual([got.dropped_attributes_count, got.dropped_events_count, got.dropped_links_count],
      [o.droppedAttributesCount || 0, o.droppedEventsCount || 0, o.droppedLinksCount || 0], `${what}: dropped counts`);
    assert.strictEqual(got.status_code, o.status.code, `${what}: status`);
    assert.strictEqual(got.status_message, o.status.code === 2 ? (o.status.message || '') : '', `${what}: status message`);
  }
  assert.strictEqual(arrived.length, sdkSpans.length, 'as many spans arrived as the SDK ended');
}

/**
 * A NodeTracerProvider with an in-memory exporter and the bridge, whose
 * spanguard tracer (made with `tracerOptions` too) sends to `rx`; the API's context manager set globally
 * (the instrumentations need it), the provider not.
 */
function bridgedProvider(rx, serviceName, providerOptions = {}, tracerOptions = {}) {
  /* eslint-disable global-require */
  const api = require('@opentelemetry/api');
  const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks');
  const { InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');
  const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');
  const spanguard = require('..');
  const { SpanguardSpanProcessor } = require('../otel');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-otel-'));
  const tracer = new spanguard.Tracer({ fromEnv: false, endpoint: rx.url, spoolDir: path.join(dir, 'spool'),
    scheduleDelayMs: 50, serviceName, ...tracerOptions });
  const memory = new InMemorySpanExporter();
  const bridge = new SpanguardSpanProcessor(tracer);
  const provider = new NodeTracerProvider({ ...providerOptions, spanProcessors: [new SimpleSpanProcessor(memory), bridge] });
  api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  return { memory, bridge, provider };
}

module.exports = { startReceiver, recordedSpans, assertSameSpans, bridgedProvider, expectedAttributes, REPO };
