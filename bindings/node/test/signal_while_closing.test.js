'use strict';
// A SIGTERM that comes as the program shuts its last tracer down (a
// container stopped as its job ends: `await sdk.shutdown()` at the end of
// an agent's run) ends the process by the signal, as without spanguard.
// The hooks' listener took the signal from Node; the shutdown then took
// the listener off before Node's event loop had run it, and the signal,
// already caught, went nowhere: the process ran on and exited 0 (a
// Kubernetes Job counted as succeeded), or, a server, ran on to the
// SIGKILL. Seen with a streamed OpenInference chat under NodeSDK: 4 of 6
// runs exited 0.
const { test } = require('node:test');
const assert = require('node:assert');
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { readSpans } = require('./sink');

const PACKAGE = path.resolve(__dirname, '..');

/** Runs `body` in a child node with `spanguard` and `dir`; resolves to its exit, stdout, stderr and dir. */
async function run(body) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-signal-closing-'));
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('SPANGUARD_') || k.startsWith('OTEL_')) delete env[k];
  const child = spawn(process.execPath, ['-e', `
    const spanguard = require(${JSON.stringify(PACKAGE)});
    const dir = ${JSON.stringify(dir)};
    ${body}
  `], { cwd: PACKAGE, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  // A child the signal left up: SIGKILL, which the assertion on its exit then shows.
  const killer = setTimeout(() => child.kill('SIGKILL'), 60000);
  const exit = await new Promise((resolve) => child.on('exit', (code, sig) => resolve({ code, signal: sig })));
  clearTimeout(killer);
  return { exit, stdout, stderr, dir };
}

const TRACER = `new spanguard.Tracer({ fromEnv: false, serviceName: 'job', sinkDir: dir + '/sink', spoolDir: dir + '/spool' })`;

for (const [what, body] of [
  ['Tracer.close()', `
    const tracer = ${TRACER};
    tracer.startSpan('job.step').end();
    process.kill(process.pid, 'SIGTERM');   // caught by Node; its listeners run at the next turn of the loop
    tracer.close().then(() => console.log('closed'));
    setTimeout(() => console.log('ran on past the signal'), 1000);
  `],
  ['Tracer.shutdown()', `
    const tracer = ${TRACER};
    tracer.startSpan('job.step').end();
    process.kill(process.pid, 'SIGTERM');
    tracer.shutdown();
    setTimeout(() => console.log('ran on past the signal'), 1000);
  `],
  ["the bridge's provider.shutdown()", `
    const { BasicTracerProvider } = require('@opentelemetry/sdk-trace-base');
    const { SpanguardSpanProcessor } = require(${JSON.stringify(PACKAGE)} + '/otel');
    const bridge = new SpanguardSpanProcessor({ fromEnv: false, serviceName: 'job',
      sinkDir: dir + '/sink', spoolDir: dir + '/spool' });
    const provider = new BasicTracerProvider({ spanProcessors: [bridge] });
    provider.getTracer('job').startSpan('job.step').end();
    process.kill(process.pid, 'SIGTERM');
    provider.shutdown();
    setTimeout(() => console.log('ran on past the signal'), 1000);
  `],
]) {
  test(`a SIGTERM caught just before ${what} of the last tracer ends the process by it, the spans delivered`, async () => {
    const { exit, stdout, stderr, dir } = await run(body);
    assert.deepStrictEqual(exit, { code: null, signal: 'SIGTERM' }, `ended by the signal: ${stdout}${stderr}`);
    assert.doesNotMatch(stdout, /ran on/);
    assert.deepStrictEqual(readSpans(path.join(dir, 'sink')).map((s) => s.name), ['job.step'], stderr);
  });
}

test('a tracer shut down with no signal leaves no listener of the hooks, once its shutdown has settled', async () => {
  const before = ['SIGTERM', 'SIGINT'].map((s) => process.listenerCount(s));
  const spanguard = require('..');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-signal-closing-'));
  const tracer = new spanguard.Tracer({ fromEnv: false, serviceName: 'job', sinkDir: dir, spoolDir: dir });
  assert.deepStrictEqual(['SIGTERM', 'SIGINT'].map((s) => process.listenerCount(s)), before.map((n) => n + 1));
  await tracer.shutdown();
  assert.deepStrictEqual(['SIGTERM', 'SIGINT'].map((s) => process.listenerCount(s)), before);
  await tracer.close();
});
