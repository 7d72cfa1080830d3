'use strict';
// The README's bridge and exporter examples, as a user copies them, keep
// the README's promises about a process stopped by SIGTERM. The bridge's:
// a process stopped in the middle of a call still exports the open span.
// Node owns its signals (the library's handlers are off), so that holds
// through the tracer's process hooks, on by default: the examples no
// longer call installProcessHooks(), and before the default a SIGTERM
// ended such a program with nothing in the sink, not even the spans that
// had ended. The exporter's: the spans the SDK still queues reach
// spanguard, the process hooks flushing the SDK at the signal.
const { test } = require('node:test');
const assert = require('node:assert');
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const { readSpans, byName } = require('./sink');

const PACKAGE = path.resolve(__dirname, '..');

/** The program of the README's `<!-- example: NAME ... -->` block. */
function readmeExample(name) {
  const text = fs.readFileSync(path.join(PACKAGE, 'README.md'), 'utf8');
  const at = text.indexOf(`<!-- example: ${name} `);
  assert.ok(at >= 0, `README.md has no example ${name}`);
  const m = /```[a-z]*\n([\s\S]*?)```/.exec(text.slice(at));
  return m[1];
}

/**
 * Runs `program` (the package resolving 'spanguard/otel' to itself) with
 * its state in a new directory and no SPANGUARD_ or OTEL_ variables, to its
 * end by SIGTERM; the spans in its sink, by name, and its stderr.
 */
function runToSigterm(program, prefix) {
  const state = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const env = Object.fromEntries(Object.entries(process.env)
    .filter(([k]) => !k.startsWith('SPANGUARD_') && !k.startsWith('OTEL_')));
  env.XDG_STATE_HOME = state;
  // -e resolves 'spanguard/otel' from the working directory: this package
  // (a self-reference through its "exports").
  const run = spawnSync(process.execPath, ['-e', program], { cwd: PACKAGE, env, encoding: 'utf8', timeout: 30000 });
  assert.strictEqual(run.signal, 'SIGTERM', `the example ended by its signal: ${run.stderr}`);
  return { spans: byName(readSpans(path.join(state, 'spanguard', 'spans'))), stderr: run.stderr };
}

test('the README bridge example, stopped by SIGTERM, still exports its spans', () => {
  const example = readmeExample('bridge.cjs');
  // The example as written up to where its span ends; then a second span
  // is left open, and the process is stopped as a service manager would.
  const cut = example.indexOf('span.end();');
  assert.ok(cut >= 0, 'the example ends a span');
  const program = `${example.slice(0, cut)}span.end();
const open = provider.getTracer('my-agent', '1.0.0').startSpan('llm.stream');
open.setAttribute('gen_ai.prompt', 'p'.repeat(100000));
setTimeout(() => process.kill(process.pid, 'SIGTERM'), 50);
setInterval(() => {}, 1000);
`;
  const { spans, stderr } = runToSigterm(program, 'sg-readme-bridge-');
  assert.deepStrictEqual(Object.keys(spans).sort(), ['llm.chat', 'llm.stream'],
    `both spans arrived in the sink: ${stderr}`);
  assert.strictEqual(spans['llm.chat'].attrs['gen_ai.request.model'].stringValue, 'gpt-4o');
  assert.strictEqual(spans['llm.stream'].attrs['gen_ai.prompt'].stringValue.length, 100000);
  assert.strictEqual(spans['llm.stream'].attrs['spanguard.interrupted'].boolValue, true);
  assert.deepStrictEqual(spans['llm.stream'].attrs['spanguard.signal'], { intValue: '15' });
  assert.strictEqual(spans['llm.stream'].attrs['spanguard.unended'], undefined);
});

test('the README exporter example, stopped by SIGTERM, hands the SDK\'s queued spans to spanguard', () => {
  // The BatchSpanProcessor NodeSDK builds around the exporter holds ended
  // spans for 5 s; a SIGTERM before then lost them unless something
  // flushes the SDK first, as the default process hooks do.
  const example = readmeExample('exporter.cjs');
  const cut = example.indexOf('sdk.shutdown().then(');
  assert.ok(cut >= 0, 'the example shuts the SDK down at its end');
  const program = `${example.slice(0, cut)}
setTimeout(() => process.kill(process.pid, 'SIGTERM'), 50);
setInterval(() => {}, 1000);
`;
  const { spans, stderr } = runToSigterm(program, 'sg-readme-exporter-');
  assert.deepStrictEqual(Object.keys(spans).sort(), ['agent.session', 'llm.chat'], `both spans arrived: ${stderr}`);
  assert.strictEqual(spans['llm.chat'].attrs['gen_ai.request.model'].stringValue, 'gpt-4o');
  assert.strictEqual(spans['llm.chat'].parentSpanId, spans['agent.session'].spanId);
});
