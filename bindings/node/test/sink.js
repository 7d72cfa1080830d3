'use strict';
// What the tests that read the local sink share: a tracer writing to a
// fresh sink directory, and the spans found there.
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const spanguard = require('..');
const { wholeLines } = require('./lines');

/**
 * Every span in the .jsonl files of `dir`, each with `attrs` (key -> OTLP/JSON value). Whole lines only
 * (wholeLines): a tracer may be writing the last one, a line of big spans many pages long.
 */
function readSpans(dir) {
  const spans = [];
  for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    if (!f.endsWith('.jsonl')) continue;
    for (const line of wholeLines(fs.readFileSync(path.join(dir, f), 'utf8'))) {
      for (const rs of JSON.parse(line).resourceSpans) {
        for (const ss of rs.scopeSpans) {
          for (const s of ss.spans || []) {
            s.attrs = Object.fromEntries((s.attributes || []).map((a) => [a.key, a.value]));
            spans.push(s);
          }
        }
      }
    }
  }
  return spans;
}

/** `spans` by name, each name once. */
function byName(spans) {
  const out = {};
  for (const s of spans) {
    assert.ok(!(s.name in out), `two spans named ${s.name}`);
    out[s.name] = s;
  }
  return out;
}

/** A tracer writing to a new sink directory, and that directory. */
function newTracer() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-node-'));
  const tracer = new spanguard.Tracer({ fromEnv: false, serviceName: 'node-test', sinkDir: path.join(dir, 'sink'),
    spoolDir: path.join(dir, 'spool'), scheduleDelayMs: 50 });
  return { tracer, sink: path.join(dir, 'sink') };
}

module.exports = { readSpans, byName, newTracer };
