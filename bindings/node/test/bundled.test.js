'use strict';
// An agent bundled with esbuild (`esbuild --bundle --platform=node`, what a
// TypeScript project ships to a container or a Lambda): the bundle holds
// spanguard's JavaScript but not its native addon, which no bundler can
// take in, and looks for the prebuilds beside itself. It said the package
// "was packed without its linux-x64 build" and to rebuild spanguard from
// source: nothing a newcomer could act on. It now says the addon cannot
// be bundled and what to do, the field's practice: mark spanguard external.
// Done so, the bundle requires the installed package and its spans arrive.
const { test } = require('node:test');
const assert = require('node:assert');
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const { readSpans } = require('./sink');

const PACKAGE = path.resolve(__dirname, '..');
const ESBUILD = path.join(PACKAGE, 'node_modules', '.bin', 'esbuild');

const AGENT = `
const { Tracer } = require('spanguard');
const tracer = new Tracer({ serviceName: 'bundled-agent' });
tracer.withSpan('agent.session', async () => {}).then(() => tracer.shutdown())
  .then(() => console.log(tracer.stats().spans_exported + ' exported'));
`;

/** A project dir with the agent and spanguard installed in its node_modules (a link to this package). */
function project(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spanguard-bundled-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(PACKAGE, path.join(dir, 'node_modules', 'spanguard'));
  fs.writeFileSync(path.join(dir, 'agent.js'), AGENT);
  return dir;
}

/** esbuild's bundle of the project's agent.js into dist/agent.js, with `extra` arguments. */
function bundle(dir, extra) {
  execFileSync(ESBUILD, ['agent.js', '--bundle', '--platform=node', '--outfile=dist/agent.js', '--log-level=error',
    ...extra], { cwd: dir });
  return path.join(dir, 'dist', 'agent.js');
}

function run(dir, script) {
  const sink = path.join(dir, 'sink');
  const r = spawnSync(process.execPath, [script], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, SPANGUARD_SINK_DIR: sink, SPANGUARD_SPOOL_DIR: path.join(dir, 'spool'),
      OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '' },
  });
  return { ...r, sink };
}

test('a bundle with spanguard inside says its addon cannot be bundled, and to mark it external', (t) => {
  const dir = project(t);
  const r = run(dir, bundle(dir, []));
  assert.notStrictEqual(r.status, 0);
  assert.match(r.stderr, /spanguard: its native addon cannot be bundled/, r.stderr);
  assert.match(r.stderr, /esbuild --external:spanguard/);
  assert.doesNotMatch(r.stderr, /packed without/, 'not sent to rebuild the package');
});

test('a bundle with spanguard external requires the installed package, and its spans arrive', (t) => {
  const dir = project(t);
  const r = run(dir, bundle(dir, ['--external:spanguard']));
  assert.strictEqual(r.status, 0, r.stderr);
  assert.strictEqual(r.stdout.trim(), '1 exported');
  assert.deepStrictEqual(readSpans(r.sink).map((s) => s.name), ['agent.session']);
});
