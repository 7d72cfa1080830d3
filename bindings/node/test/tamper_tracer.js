'use strict';
// Run by internals.test.js in a child node (a tampered tracer could crash
// the process: its pointer freed under it): `node tamper_tracer.js <field>
// <dir>` tampers with `field` of a tracer in every way of TRACER_HOWS, open
// and closed, and prints one JSON line a case with what it saw. Run with no
// arguments (node --test finds it in test/) it does nothing.
const fs = require('fs');
const path = require('path');
const spanguard = require('..');

// What a program can do to a property: the other tracer's value, a huge
// number, NaN, a string, null, delete it.
const TRACER_HOWS = ['other', 'huge', 'nan', 'string', 'null', 'delete'];
const VALUES = { huge: 2 ** 40, nan: NaN, string: 'x', null: null };

function tamper(obj, field, how, other) {
  if (how === 'delete') delete obj[field];
  else obj[field] = how === 'other' ? other[field] : VALUES[how];
}

function newTracer(dir, name) {
  return new spanguard.Tracer({ fromEnv: false, serviceName: name, sinkDir: path.join(dir, name, 'sink'),
    spoolDir: path.join(dir, name, 'spool'), scheduleDelayMs: 50 });
}

/**
 * One case: tracer `mine` has `field` tampered with (before its spans, or
 * once closed), `other` is a tracer beside it. Every call is made whatever
 * an earlier one threw; the test judges by what arrived in each sink.
 */
async function runCase(dir, field, how, when) {
  const tag = `${field}-${how}-${when}`;
  const mine = newTracer(dir, `mine-${tag}`);
  const other = newTracer(dir, `other-${tag}`);
  const errors = [];
  const attempt = async (what, fn) => {
    try {
      return await fn();
    } catch (e) {
      errors.push(`${what}: ${e && e.name}: ${e && e.message}`);
      return undefined;
    }
  };
  const before = mine.startSpan('before');
  if (when === 'open') tamper(mine, field, how, other);
  await attempt('startSpan', () => mine.startSpan('after').end());
  await attempt('withSpan', () => mine.withSpan('with', () => {}));
  await attempt('end', () => before.end());
  await attempt('flush', () => mine.flush(10000));
  const exported = await attempt('stats', () => mine.stats().spans_exported);
  await attempt('close', () => mine.close());
  if (when === 'closed') tamper(mine, field, how, other);
  // A closed tracer: spans that record nothing, counters as they were.
  await attempt('startSpan after close', () => mine.startSpan('after-close').end());
  const final = await attempt('stats after close', () => mine.stats());
  await attempt('sinkPath after close', () => mine.sinkPath());
  await attempt('flush after close', () => mine.flush(100));
  await attempt('close again', () => mine.close());
  // The tracer beside it is untouched.
  other.startSpan('beside').end();
  await other.close();
  const s = final || {};
  process.stdout.write(`${JSON.stringify({
    tag, errors, exported, spansExported: s.spans_exported, valuesRejected: s.values_rejected,
    logRecordsAttached: s.log_records_attached,
  })}\n`);
}

async function main(field, dir) {
  fs.mkdirSync(dir, { recursive: true });
  for (const when of ['open', 'closed']) {
    for (const how of TRACER_HOWS) await runCase(dir, field, how, when);
  }
}

if (require.main === module && process.argv.length > 3) main(process.argv[2], process.argv[3]);

module.exports = { TRACER_HOWS };
