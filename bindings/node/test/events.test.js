'use strict';
// The library's news (the error callback's events) reaches a Node program
// as 'event' on spanguard.events: a backend's warning (an OTLP partial
// success rejecting none, with a message) was said on stderr alone, and a
// program that routes its logs to its own logger, or whose stderr is
// thrown away, never saw it.
const { test } = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');

const spanguard = require('..');
const { startReceiver } = require('./receiver');

const HEADER = path.resolve(__dirname, '../../../include/spanguard.h');

/** enum spanguard_event of the C header, name (without SPANGUARD_EVENT_) to number. */
function headerEvents() {
  const text = fs.readFileSync(HEADER, 'utf8');
  const body = text.slice(text.indexOf('enum spanguard_event'), text.indexOf('typedef enum spanguard_event'));
  return Object.fromEntries([...body.matchAll(/SPANGUARD_EVENT_(\w+) = (\d+)/g)].map((m) => [m[1], Number(m[2])]));
}

test('EVENT names every event of the header, with its number', () => {
  const events = headerEvents();
  assert.ok(events.BATCH_FAILED === 1 && events.BACKEND_WARNING === 8, JSON.stringify(events));
  assert.deepStrictEqual(spanguard.EVENT, events);
});

test("a backend's warning is emitted as 'event' with the backend's words", async () => {
  const rx = await startReceiver(['--mode', 'partial:0']);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-node-events-'));
  const seen = [];
  const listener = (e) => seen.push(e);
  spanguard.events.on('event', listener);
  try {
    // Nothing on stderr: the program is told all the same.
    const tracer = new spanguard.Tracer({ fromEnv: false, serviceName: 'node-events', endpoint: rx.url,
      spoolDir: path.join(dir, 'spool'), scheduleDelayMs: 50, logLevel: 'none' });
    for (let i = 0; i < 3; i++) {
      tracer.startSpan(`op${i}`).end();
      await tracer.flush(10000);
    }
    await tracer.close();
    // Emitted on this thread from the exporter's queue: a few ticks on.
    const deadline = Date.now() + 10000;
    while (seen.filter((e) => e.name === 'BACKEND_WARNING').length < 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    spanguard.events.off('event', listener);
    rx.stop();
  }
  const message = 'test receiver mode partial:0: the last 0 spans were rejected';
  const warnings = seen.filter((e) => e.name === 'BACKEND_WARNING');
  assert.deepStrictEqual(warnings, [
    { code: 8, name: 'BACKEND_WARNING', message: `the backend accepted 1 span with a warning: ${message}` },
    // The two other requests, held back by the minute's rate limit and
    // told at the stop, as stderr tells them.
    { code: 8, name: 'BACKEND_WARNING',
      message: 'the backend accepted 2 more spans with a warning: test receiver mode partial:0 (as said above)' },
  ], JSON.stringify(seen));
});

test('an event this binding does not know is emitted with its number, not dropped or thrown on', () => {
  const seen = [];
  const listener = (e) => seen.push(e);
  spanguard.events.on('event', listener);
  try {
    spanguard.emitEventForTest(4242, 'news from the future');
  } finally {
    spanguard.events.off('event', listener);
  }
  assert.deepStrictEqual(seen, [{ code: 4242, name: 'UNKNOWN', message: 'news from the future' }]);
});
