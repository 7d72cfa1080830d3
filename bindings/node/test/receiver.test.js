'use strict';
// The test receiver's record file read while the receiver is writing it
// (receiver.js): a test waiting for spans polls it every 50 ms.
const { test } = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');

const { recordedSpans } = require('./receiver');

test('a line the receiver is still writing is left for the next look, not parsed', () => {
  const record = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sg-rx-record-')), 'record.jsonl');
  assert.deepStrictEqual(recordedSpans(record), [], 'no file yet');
  // As otlp_receiver.py writes them: json.dumps escapes what is not ASCII.
  const line = (seq, name) => `${JSON.stringify({ seq, spans: [{ name, body: 'Gr\u00fc\u00dfe '.repeat(1000) }] })
    .replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}\n`;
  const second = line(2, 'second');
  fs.writeFileSync(record, line(1, 'first') + second.slice(0, second.length >> 1));
  assert.deepStrictEqual(recordedSpans(record).map((s) => s.name), ['first'], 'a half-written line');
  fs.appendFileSync(record, second.slice(second.length >> 1, -1));
  assert.deepStrictEqual(recordedSpans(record).map((s) => s.name), ['first'], 'all but the newline');
  fs.appendFileSync(record, '\n');
  assert.deepStrictEqual(recordedSpans(record).map((s) => s.name), ['first', 'second'], 'once whole');
});
