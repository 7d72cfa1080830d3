'use strict';
// tracer.stats() holds every counter of the C ABI's spanguard_counters
// (and the binding's values_rejected), and index.d.ts's Stats names each
// of them. The addon copied 26 of the 31: a Node program could not see
// spans_unsampled (so the README's identity, spans_ended = spans_exported
// + spooled_spans + dropped_export_failed + dropped_rejected +
// spans_unsampled, did not add up under OTEL_TRACES_SAMPLER), nor the
// spans lost replaying the spool (dropped_replay_failed,
// dropped_replay_rejected), exporter_panics or files_set_aside. And
// stats() was typed Record<string, number>, which TypeScript under
// noUncheckedIndexedAccess or noPropertyAccessFromIndexSignature refuses
// in the README's own `s.dropped_export_failed + ...`.
const { test } = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const path = require('path');
const { newTracer } = require('./sink');

const HEADER = path.resolve(__dirname, '../../../include/spanguard.h');

/** The fields of spanguard_counters in the C header, but its size and reserved word. */
function headerCounters() {
  const text = fs.readFileSync(HEADER, 'utf8');
  const body = text.slice(text.indexOf('typedef struct spanguard_counters {'), text.indexOf('} spanguard_counters;'));
  return [...body.matchAll(/^\s*uint64_t (\w+);/gm)].map((m) => m[1]);
}

/** The members of `interface Stats` in index.d.ts. */
function declaredStats() {
  const text = fs.readFileSync(path.resolve(__dirname, '../index.d.ts'), 'utf8');
  const start = text.indexOf('export interface Stats {');
  assert.ok(start >= 0, 'index.d.ts declares interface Stats');
  const body = text.slice(start, text.indexOf('\n}', start));
  return [...body.matchAll(/^ {2}(\w+): number;/gm)].map((m) => m[1]);
}

test('stats() holds every counter of spanguard_counters, and index.d.ts types each', async () => {
  const counters = headerCounters();
  assert.ok(counters.length >= 31 && counters.includes('spans_begun'), `header read: ${counters}`);
  const { tracer } = newTracer();
  tracer.startSpan('one').end();
  await tracer.flush(10000);
  const stats = tracer.stats();
  await tracer.close();
  // And the OpenTelemetry bridge's log record counts, the binding's own (Python's stats() has the same three).
  const expected = [...counters, 'values_rejected', 'log_records_attached', 'log_records_not_attached',
    'log_records_held'].sort();
  assert.deepStrictEqual(Object.keys(stats).sort(), expected);
  for (const [k, v] of Object.entries(stats)) assert.strictEqual(typeof v, 'number', k);
  assert.deepStrictEqual(declaredStats().sort(), expected);
  // After close(), the same keys.
  assert.deepStrictEqual(Object.keys(tracer.stats()).sort(), expected);
});
