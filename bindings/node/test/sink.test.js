'use strict';
// The local sink read while a tracer is writing it (sink.js): the tests that
// read a sink after a child process was stopped, or while one runs, see
// whatever the tracer's last write has reached.
const { test } = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');

const { readSpans } = require('./sink');

test('a sink line the tracer is still writing is left for the next look, not parsed', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-sink-read-'));
  const file = path.join(dir, 'agent-1.jsonl');
  // An OTLP/JSON request a line, as the file sink writes them; a prompt-sized attribute makes it many pages.
  const line = (name) => `${JSON.stringify({ resourceSpans: [{ resource: {}, scopeSpans: [{ scope: { name: 'test' },
    spans: [{ name, attributes: [{ key: 'gen_ai.prompt', value: { stringValue: 'Gr\u00fc\u00dfe '.repeat(10000) } }] }] }] }] })}\n`;
  const second = line('second');
  fs.writeFileSync(file, line('first') + second.slice(0, second.length >> 1));
  assert.deepStrictEqual(readSpans(dir).map((s) => s.name), ['first'], 'a half-written line');
  fs.appendFileSync(file, second.slice(second.length >> 1, -1));
  assert.deepStrictEqual(readSpans(dir).map((s) => s.name), ['first'], 'all but the newline');
  fs.appendFileSync(file, '\n');
  assert.deepStrictEqual(readSpans(dir).map((s) => s.name), ['first', 'second'], 'once whole');
});
