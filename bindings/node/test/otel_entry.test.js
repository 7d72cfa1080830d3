'use strict';
// The bridge keeps, for each open SDK span, an entry (its spanguard span
// and what was passed on) that its setters and onEnd find from the SDK
// span. Held as a property of the SDK span (under a Symbol), it was in
// reach of any code holding the span: Reflect.ownKeys and
// Object.getOwnPropertySymbols showed it, a spread or Object.assign copied
// it, and a program or an instrumentation could delete or overwrite it.
// Then a copy's end() ended the original's spanguard span, one span's
// setters went to another's, or a span was lost (exported unended at
// shutdown). Each test tampers as a program could and requires every span
// to arrive once, ended by its own end() at its own end time, with what
// the SDK span itself holds, and no call of the program's to throw.
const { test } = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { BasicTracerProvider } = require('@opentelemetry/sdk-trace-base');
const { SpanguardSpanProcessor } = require('../otel');
const { readSpans } = require('./sink');

/** A provider whose only processor is a bridge writing to a sink of its own; the bridge and the sink. */
function bridged(name) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sg-otel-entry-${name}-`));
  const bridge = new SpanguardSpanProcessor({ fromEnv: false, serviceName: name, sinkDir: path.join(dir, 'sink'),
    spoolDir: path.join(dir, 'spool') });
  const provider = new BasicTracerProvider({ spanProcessors: [bridge] });
  return { provider, bridge, tracer: provider.getTracer(name), sink: path.join(dir, 'sink') };
}

/** What a program can do to the properties the bridge put on an SDK span (`s`), given its sibling `t` and `f` of another bridge. */
const TAMPERS = {
  delete: (s) => {
    for (const k of Reflect.ownKeys(s)) if (typeof k === 'symbol') delete s[k];
  },
  "a sibling's": (s, t) => {
    for (const k of Reflect.ownKeys(s)) if (typeof k === 'symbol') s[k] = t[k];
  },
  "another bridge's": (s, t, f) => {
    const theirs = Object.getOwnPropertySymbols(f);
    for (const k of Object.getOwnPropertySymbols(s)) s[k] = theirs.length > 0 ? f[theirs[0]] : undefined;
  },
  string: (s) => {
    for (const k of Object.getOwnPropertySymbols(s)) s[k] = 'x';
  },
  object: (s) => {
    for (const k of Object.getOwnPropertySymbols(s)) s[k] = { span: {} };
  },
  'a getter that throws': (s) => {
    for (const k of Object.getOwnPropertySymbols(s)) {
      Object.defineProperty(s, k, { configurable: true, get() { throw new Error('tampered'); } });
    }
  },
  // Copies of the span, ended: a copy is no span the bridge began.
  'Object.assign copy, ended': (s) => {
    const c = Object.assign(Object.create(Object.getPrototypeOf(s)), s);
    c.setAttribute('copy.set', true);
    c.end();
  },
  'spread copy, renamed and ended': (s) => {
    const c = { __proto__: Object.getPrototypeOf(s), ...s };
    c.updateName('renamed by a copy');
    c.end();
  },
  // (structuredClone of an SDK span throws a DataCloneError: a clone that cannot be made is no harm.)
  'structuredClone, ended through the prototype': (s) => {
    const c = Object.setPrototypeOf(structuredClone(s), Object.getPrototypeOf(s));
    c.end();
  },
};

/** Calls fn, keeping what it threw in `errors`. */
function attempt(errors, what, fn) {
  try {
    fn();
  } catch (e) {
    errors.push(`${what}: ${e && e.name}: ${e && e.message}`);
  }
}

/** What the SDK span holds at its end, as the sink should have it. */
function sdkView(span) {
  return {
    name: span.name,
    attributes: Object.keys(span.attributes).sort(),
    own: span.attributes.own,
    events: span.events.map((e) => e.name),
    end: (BigInt(span.endTime[0]) * 1000000000n + BigInt(span.endTime[1])).toString(),
  };
}

/** The spans in `sink` by name, each name's in a list. */
function byName(sink) {
  const out = {};
  for (const s of readSpans(sink)) (out[s.name] || (out[s.name] = [])).push(s);
  return out;
}

/**
 * Problems with the spans of a name in the sink (`arrived`) against
 * `want` (sdkView): one, ended by its own end (not marked unended at
 * shutdown), holding what the SDK span holds.
 */
function differences(want, arrived) {
  if (!arrived) return ['never arrived'];
  if (arrived.length !== 1) return [`arrived ${arrived.length} times`];
  const got = arrived[0];
  const problems = [];
  if ('spanguard.unended' in got.attrs) problems.push('lost (exported unended at shutdown)');
  const keys = Object.keys(got.attrs).filter((k) => k !== 'spanguard.unended').sort();
  if (keys.join() !== want.attributes.join()) problems.push(`attributes ${keys.join()}, the SDK's ${want.attributes.join()}`);
  const own = got.attrs.own && got.attrs.own.stringValue;
  if (own !== want.own) problems.push(`own ${own}, the SDK's ${want.own}`);
  const events = (got.events || []).map((e) => e.name);
  if (events.join() !== want.events.join()) problems.push(`events ${events.join()}, the SDK's ${want.events.join()}`);
  if (got.endTimeUnixNano !== want.end) problems.push(`ended at ${got.endTimeUnixNano}, the SDK's ${want.end}`);
  return problems;
}

test("tampering with what the bridge keeps on an SDK span, or ending a copy of it, changes nothing: each span arrives once, as the SDK has it",
  async () => {
    const mine = bridged('mine');
    const theirs = bridged('theirs');
    const cases = [];
    for (const [how, tamper] of Object.entries(TAMPERS)) {
      const errors = [];
      const tampering = [];
      const s = mine.tracer.startSpan(`s ${how}`);
      const t = mine.tracer.startSpan(`t ${how}`);
      const f = theirs.tracer.startSpan(`f ${how}`);
      // A copy that cannot be made (structuredClone of a span) is no harm.
      attempt(tampering, 'tamper', () => tamper(s, t, f));
      attempt(errors, 's.setAttribute', () => s.setAttribute('own', `s ${how}`));
      attempt(errors, 's.addEvent', () => s.addEvent('own.event'));
      attempt(errors, 't.setAttribute', () => t.setAttribute('own', `t ${how}`));
      attempt(errors, 's.end', () => s.end());
      attempt(errors, 't.end', () => t.end());
      attempt(errors, 'f.setAttribute', () => f.setAttribute('own', `f ${how}`));
      attempt(errors, 'f.end', () => f.end());
      cases.push({ how, errors, s: sdkView(s), t: sdkView(t), f: sdkView(f) });
    }
    await mine.provider.shutdown();
    await theirs.provider.shutdown();
    const spans = byName(mine.sink);
    const others = byName(theirs.sink);
    const failures = [];
    for (const { how, errors, s, t, f } of cases) {
      const problems = [...errors];
      for (const [n, want, sink] of [['s', s, spans], ['t', t, spans], ['f', f, others]]) {
        for (const p of differences(want, sink[`${n} ${how}`])) problems.push(`${n}: ${p}`);
      }
      if (problems.length > 0) failures.push(`${how}: ${problems.join('; ')}`);
    }
    assert.deepStrictEqual(failures, []);
    assert.strictEqual(Object.keys(spans).length, cases.length * 2, 'no span but those begun');
    assert.strictEqual(mine.bridge.failures, 0, 'nothing refused');
    assert.strictEqual(theirs.bridge.failures, 0, 'nothing refused (the other bridge)');
  });

test('an SDK span under the bridge shows a program no property the bridge put there (nothing to read, copy or delete)',
  async () => {
    const bare = new BasicTracerProvider();
    const { provider, tracer } = bridged('shown');
    const plain = bare.getTracer('shown').startSpan('plain');
    const span = tracer.startSpan('bridged');
    assert.deepStrictEqual(Reflect.ownKeys(span), Reflect.ownKeys(plain), 'own keys, as a span no bridge saw');
    assert.deepStrictEqual(Object.getOwnPropertySymbols(span), []);
    assert.deepStrictEqual(Reflect.ownKeys({ ...span }), Reflect.ownKeys({ ...plain }), 'what a spread copies');
    span.end();
    plain.end();
    assert.deepStrictEqual(Reflect.ownKeys(span), Reflect.ownKeys(plain), 'nor once ended');
    await provider.shutdown();
    await bare.shutdown();
  });
