'use strict';
// A span's and a tracer's internals (the span's native handle, its slot
// and generation; its ended flag and the ids it keeps at its end; its
// place on the watch list; the tracer's native pointer, its closed flag,
// its flushes in flight; the addon that load() gave) were public
// properties: any code holding a span or a tracer (an instrumentation that
// copies, spreads or serialises objects, a proxy, a program's own slip)
// could read or overwrite them, and then a call ended another span, lost
// one, or used a tracer freed under it (a crash). The binding's one rule
// for bad input (README, "API"): a programming error throws, what the
// library did not record is a no-op counted in stats(); never a crash, a
// wrong span ended or a span lost. Each test tampers as a program could
// and requires every span to arrive once, ended by its own end(), with
// its own attributes, under its own parent.
const { test } = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const spanguard = require('..');
const { readSpans, newTracer } = require('./sink');
const { TRACER_HOWS } = require('./tamper_tracer');

// What a Span held as own properties or methods before they were private.
const SPAN_INTERNALS = ['tracer', 'hi', 'lo', 'ended', 'traceState', 'kept', 'i0', 'i1', 'i2', 'i3', 'i4', 'i5', 'i6',
  'i7', 'watchedAt', 'keptTraceparent'];
// And a Tracer.
const TRACER_INTERNALS = ['ptr', 'closed', 'inflight', 'flushRunning', 'flushNext', 'final', 'valuesRejected',
  'logRecordCounts', 'blocking', 'live', 'afterClose', 'beginUnwatched', 'beginUnderEnded', 'sharedFlush',
  'runFlush', 'readSinkPath', 'readStats'];
// What a program can do to a property: another span's value (of the same
// tracer, of another), a huge number, NaN, a string, delete it.
const HOWS = ['sibling', 'foreign', 'huge', 'nan', 'string', 'delete'];
const VALUES = { huge: 2 ** 40, nan: NaN, string: 'x' };

function tamper(obj, field, how, sibling, foreign) {
  if (how === 'delete') delete obj[field];
  else if (how === 'sibling') obj[field] = sibling[field];
  else if (how === 'foreign') obj[field] = foreign[field];
  else obj[field] = VALUES[how];
}

/** Calls fn, keeping what it threw in `errors` (a thrown programming error is allowed; the spans judge). */
function attempt(errors, what, fn) {
  try {
    return fn();
  } catch (e) {
    errors.push(`${what}: ${e && e.name}: ${e && e.message}`);
    return undefined;
  }
}

/** Two tracers writing to sinks of their own. */
function twoTracers() {
  const mine = newTracer();
  const theirs = newTracer();
  return { tracer: mine.tracer, sink: mine.sink, other: theirs.tracer, otherSink: theirs.sink };
}

/** The spans in `sink` by name, each required once, ended by its own end (not marked unended). */
function arrivedOnce(sink) {
  const out = {};
  for (const s of readSpans(sink)) {
    assert.ok(!(s.name in out), `${s.name}: arrived twice`);
    assert.ok(!('spanguard.unended' in s.attrs), `${s.name}: lost (exported unended at shutdown)`);
    out[s.name] = s;
  }
  return out;
}

function assertOwn(spans, name, errors) {
  const s = spans[name];
  assert.ok(s, `${name}: never arrived (${errors.join('; ')})`);
  assert.deepStrictEqual(s.attrs.own, { stringValue: name }, `${name}: another span's attribute (${errors.join('; ')})`);
  return s;
}

function assertChild(spans, child, parent, errors) {
  const c = spans[child];
  const p = spans[parent];
  assert.ok(c, `${child}: never arrived (${errors.join('; ')})`);
  assert.strictEqual(c.traceId, p.traceId, `${child}: not in ${parent}'s trace (${errors.join('; ')})`);
  assert.strictEqual(c.parentSpanId, p.spanId, `${child}: not ${parent}'s child (${errors.join('; ')})`);
}

test("overwriting or deleting a span's former internals changes nothing: each span ends itself, keeps its attributes and parents its children",
  async () => {
    const { tracer, sink, other, otherSink } = twoTracers();
    const cases = [];
    for (const field of SPAN_INTERNALS) {
      for (const how of HOWS) {
        const tag = `${field}-${how}`;
        const errors = [];
        const a = tracer.startSpan(`a ${tag}`);
        const b = tracer.startSpan(`b ${tag}`);
        const f = other.startSpan(`f ${tag}`);
        // Open: its end, its attributes, its children.
        attempt(errors, 'tamper open', () => tamper(a, field, how, b, f));
        attempt(errors, 'setAttribute', () => a.setAttribute('own', `a ${tag}`));
        attempt(errors, 'child', () => tracer.startSpan(`c ${tag}`, { parent: a }).setAttribute('own', `c ${tag}`).end());
        const traceparent = attempt(errors, 'traceparent', () => a.traceparent());
        attempt(errors, 'end', () => a.end());
        // Ended: the ids it kept parent its children, its traceparent stays.
        attempt(errors, 'tamper ended', () => tamper(a, field, how, b, f));
        attempt(errors, 'child of ended', () => tracer.startSpan(`d ${tag}`, { parent: a }).setAttribute('own', `d ${tag}`)
          .end());
        const after = attempt(errors, 'traceparent ended', () => a.traceparent());
        b.setAttribute('own', `b ${tag}`).end();
        f.setAttribute('own', `f ${tag}`).end();
        cases.push({ tag, errors, traceparent, after });
      }
    }
    await tracer.close();
    await other.close();
    const spans = arrivedOnce(sink);
    const others = arrivedOnce(otherSink);
    for (const { tag, errors, traceparent, after } of cases) {
      for (const n of ['a', 'b']) assertOwn(spans, `${n} ${tag}`, errors);
      assertOwn(others, `f ${tag}`, errors);
      assertChild(spans, `c ${tag}`, `a ${tag}`, errors);
      assertChild(spans, `d ${tag}`, `a ${tag}`, errors);
      const a = spans[`a ${tag}`];
      const flags = (a.flags & 0xff).toString(16).padStart(2, '0');
      assert.strictEqual(traceparent, `00-${a.traceId}-${a.spanId}-${flags}`, `${tag}: traceparent`);
      assert.strictEqual(after, traceparent, `${tag}: the ended span's traceparent changed (${errors.join('; ')})`);
    }
    assert.strictEqual(Object.keys(spans).length, cases.length * 4, 'no span but those begun');
  });

test('a frozen, sealed or non-extensible span still ends, records and parents', async () => {
  const { tracer, sink } = newTracer();
  const cases = [];
  for (const how of ['freeze', 'seal', 'preventExtensions']) {
    const errors = [];
    const a = tracer.startSpan(`a ${how}`);
    Object[how](a);
    attempt(errors, 'setAttribute', () => a.setAttribute('own', `a ${how}`));
    attempt(errors, 'child', () => tracer.startSpan(`c ${how}`, { parent: a }).setAttribute('own', `c ${how}`).end());
    attempt(errors, 'end', () => a.end());
    attempt(errors, 'child of ended', () => tracer.startSpan(`d ${how}`, { parent: a }).setAttribute('own', `d ${how}`)
      .end());
    cases.push({ how, errors });
  }
  await tracer.close();
  const spans = arrivedOnce(sink);
  for (const { how, errors } of cases) {
    assertOwn(spans, `a ${how}`, errors);
    assertChild(spans, `c ${how}`, `a ${how}`, errors);
    assertChild(spans, `d ${how}`, `a ${how}`, errors);
    assert.deepStrictEqual(errors, [], `${how}: a call threw`);
  }
});

// The ways a program gets an object that is not the span but looks like
// it: a spread, Object.assign onto Span's prototype, structuredClone, a
// JSON round trip, a Proxy (a #field is the span's own: a Proxy of it has
// none, as a Proxy of a Map has no map), a plain object of the same
// properties as `this`.
const LOOKALIKES = {
  Proxy: (a) => new Proxy(a, {}),
  spread: (a) => ({ ...a }),
  'assign onto the prototype': (a) => Object.assign(Object.create(spanguard.Span.prototype), a),
  'spread with the prototype': (a) => ({ __proto__: spanguard.Span.prototype, ...a }),
  structuredClone: (a) => {
    try {
      return Object.setPrototypeOf(structuredClone(a), spanguard.Span.prototype);
    } catch (_) { // a value it cannot clone (the tracer's native pointer)
      return Object.setPrototypeOf(structuredClone({ ...a, tracer: undefined }), spanguard.Span.prototype);
    }
  },
  JSON: (a) => Object.setPrototypeOf(JSON.parse(JSON.stringify({ ...a, tracer: undefined })), spanguard.Span.prototype),
};

// Every method of Span, with arguments it takes.
const SPAN_CALLS = {
  setAttribute: ['own', 'copy'], setAttributes: [{ own: 'copy' }], setAttributeLists: [['own'], ['copy']],
  updateName: ['renamed'], addEvent: ['copy.event'], tryAddEvent: ['copy.event'],
  addLink: ['00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'],
  addLinkIds: ['4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7', 1],
  tryAddLinkIds: ['4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7', 1], addDroppedCounts: [1, 1, 1],
  dropOldest: [1, 1], setStatus: [2, 'copy'], recordException: [new Error('copy')], traceparent: [], end: [],
};

test("a span's methods called on a copy of it, or with `this` bound to another object, throw a TypeError and leave the span alone",
  async () => {
    const { tracer, sink } = newTracer();
    const cases = [];
    const lookalikes = Object.entries(LOOKALIKES);
    // `this` bound to a plain object holding what the span held (as far as a program could read it).
    lookalikes.push(['plain object', (a) => ({ ...a, tracer: a.tracer })]);
    for (const [how, copy] of lookalikes) {
      for (const [method, args] of Object.entries(SPAN_CALLS)) {
        const tag = `${how} ${method}`;
        const a = tracer.startSpan(`a ${tag}`);
        a.setAttribute('own', `a ${tag}`);
        const errors = [];
        let thrown = null;
        try {
          const fake = copy(a);
          spanguard.Span.prototype[method].apply(fake, args);
        } catch (e) {
          thrown = e;
        }
        attempt(errors, 'child', () => tracer.startSpan(`c ${tag}`, { parent: a }).setAttribute('own', `c ${tag}`).end());
        attempt(errors, 'end', () => a.end());
        cases.push({ tag, thrown, errors });
      }
    }
    await tracer.close();
    const spans = arrivedOnce(sink);
    for (const { tag, thrown, errors } of cases) {
      assert.ok(thrown instanceof TypeError, `${tag}: ${thrown ? `threw ${thrown.name}: ${thrown.message}` : 'did not throw'}`);
      const a = assertOwn(spans, `a ${tag}`, errors);
      assert.strictEqual(a.status ? a.status.code : undefined, undefined, `${tag}: the copy set the span's status`);
      assert.deepStrictEqual(a.events || [], [], `${tag}: the copy added an event`);
      assert.deepStrictEqual(a.links || [], [], `${tag}: the copy added a link`);
      assert.ok(!a.droppedAttributesCount && !a.droppedEventsCount, `${tag}: the copy added dropped counts`);
      assertChild(spans, `c ${tag}`, `a ${tag}`, errors);
    }
  });

test('a Span is begun by a tracer only: one constructed by the program throws a TypeError', async () => {
  const { tracer, sink } = newTracer();
  const a = tracer.startSpan('a');
  const b = tracer.startSpan('b');
  for (const args of [[], [tracer, b.hi, b.lo, 'fake', ''], [tracer, 1 << 24, 1, 'guessed', '']]) {
    assert.throws(() => new spanguard.Span(...args).end(), TypeError);
  }
  a.end();
  b.setAttribute('own', 'b').end();
  await tracer.close();
  assert.deepStrictEqual(Object.keys(arrivedOnce(sink)).sort(), ['a', 'b']);
  assert.deepStrictEqual(arrivedOnce(sink).b.attrs.own, { stringValue: 'b' });
});

test("a span, a tracer and load() show a program none of their internals (nothing to read, spread or serialise)",
  async () => {
    const { tracer } = newTracer();
    const span = tracer.startSpan('shown');
    assert.deepStrictEqual(Object.getOwnPropertyNames(span), []);
    assert.deepStrictEqual(Object.getOwnPropertySymbols(span), []);
    assert.strictEqual(JSON.stringify(span), '{}');
    assert.strictEqual(span.name, 'shown', 'the name stays readable');
    for (const field of SPAN_INTERNALS) assert.strictEqual(span[field], undefined, `span.${field}`);
    assert.deepStrictEqual(Object.getOwnPropertyNames(tracer), []);
    for (const field of TRACER_INTERNALS) assert.strictEqual(tracer[field], undefined, `tracer.${field}`);
    span.end();
    assert.deepStrictEqual(Object.getOwnPropertyNames(span), [], 'nor once ended');
    assert.strictEqual(spanguard.load(), undefined, 'load() hands out no native addon');
    await tracer.close();
  });

test("load()'s answer cannot swap the buffer the addon writes handles to", async () => {
  const { tracer, sink } = newTracer();
  const addon = spanguard.load();
  if (addon && typeof addon.init === 'function') addon.init(new Uint32Array(11));
  const a = tracer.startSpan('a');
  const b = tracer.startSpan('b');
  b.setAttribute('own', 'b').end();
  a.setAttribute('own', 'a').end();
  await tracer.close();
  const spans = arrivedOnce(sink);
  assertOwn(spans, 'a', []);
  assertOwn(spans, 'b', []);
});

test("overwriting or deleting a tracer's former internals neither crashes, nor loses a span, nor touches another tracer",
  () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-tamper-'));
    const child = path.join(__dirname, 'tamper_tracer.js');
    const failures = [];
    for (const field of TRACER_INTERNALS) {
      const out = path.join(dir, field);
      const run = spawnSync(process.execPath, [child, field, out], { encoding: 'utf8', timeout: 120000 });
      const lines = run.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
      if (run.status !== 0 || lines.length !== TRACER_HOWS.length * 2) {
        const last = lines.length > 0 ? lines[lines.length - 1].tag : '(none)';
        failures.push(`${field}: the child ended with status ${run.status}, signal ${run.signal} after case ${last}: `
          + `${run.stderr.split('\n').filter((l) => !l.includes('Warning')).slice(-3).join(' | ')}`);
      }
      for (const c of lines) {
        const mine = readSpans(path.join(out, `mine-${c.tag}`, 'sink'));
        const names = mine.map((s) => s.name).sort();
        const unended = mine.filter((s) => 'spanguard.unended' in s.attrs).map((s) => s.name);
        const beside = readSpans(path.join(out, `other-${c.tag}`, 'sink')).map((s) => s.name);
        const problems = [];
        if (names.join() !== 'after,before,with') problems.push(`its spans: ${names.join()}`);
        if (unended.length > 0) problems.push(`lost: ${unended.join()}`);
        if (beside.join() !== 'beside') problems.push(`the other tracer's: ${beside.join()}`);
        if (c.exported !== 3 || c.spansExported !== 3) problems.push(`spans_exported ${c.exported}, ${c.spansExported}`);
        if (c.valuesRejected !== 0 || c.logRecordsAttached !== 0) {
          problems.push(`values_rejected ${c.valuesRejected}, log_records_attached ${c.logRecordsAttached}`);
        }
        if (problems.length > 0) failures.push(`${c.tag}: ${problems.join('; ')} (${c.errors.join('; ')})`);
      }
    }
    assert.deepStrictEqual(failures, []);
  });
