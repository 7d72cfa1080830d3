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

test("OpenTelemetry's own pattern, a SIGTERM listener that shuts the SDK down and exits: the open span "
  + 'arrives interrupted by the signal, not unended', async () => {
  // process.on('SIGTERM', () => sdk.shutdown().finally(() => process.exit(0))),
  // as opentelemetry.io's Node.js pages write it. The program's listener
  // took the signal; its shutdown marked the span still open (a streamed
  // chat) `spanguard.unended`, the mark of a span the program forgot,
  // where the README promises it interrupted by the signal.
  const { exit, stdout, stderr, dir } = await run(`
    const { BasicTracerProvider } = require('@opentelemetry/sdk-trace-base');
    const { SpanguardSpanProcessor } = require(${JSON.stringify(PACKAGE)} + '/otel');
    const bridge = new SpanguardSpanProcessor({ fromEnv: false, serviceName: 'job',
      sinkDir: dir + '/sink', spoolDir: dir + '/spool' });
    const provider = new BasicTracerProvider({ spanProcessors: [bridge] });
    process.on('SIGTERM', () => {
      provider.shutdown().then(() => console.log('Tracing terminated')).finally(() => process.exit(0));
    });
    const tracer = provider.getTracer('job');
    tracer.startSpan('job.step').end();
    tracer.startSpan('llm.stream');
    setTimeout(() => process.kill(process.pid, 'SIGTERM'), 50);
    setInterval(() => {}, 1000);
  `);
  assert.deepStrictEqual(exit, { code: 0, signal: null }, `the program's listener ended it: ${stdout}${stderr}`);
  const spans = readSpans(path.join(dir, 'sink'));
  assert.deepStrictEqual(spans.map((s) => s.name).sort(), ['job.step', 'llm.stream'], stderr);
  const open = spans.find((s) => s.name === 'llm.stream');
  assert.deepStrictEqual(open.attrs['spanguard.interrupted'], { boolValue: true }, JSON.stringify(open.attrs));
  assert.deepStrictEqual(open.attrs['spanguard.signal'], { intValue: '15' });
  assert.strictEqual(open.attrs['spanguard.unended'], undefined);
});

test('a shutdown no signal caused still marks the spans left open unended, after a signal the program took',
  async () => {
    // The program's listener takes SIGTERM and carries on (cancels a step);
    // its later shutdown, begun by a timer set before the signal, is its own.
    const { exit, stdout, stderr, dir } = await run(`
      const tracer = new spanguard.Tracer({ fromEnv: false, serviceName: 'job', sinkDir: dir + '/sink',
        spoolDir: dir + '/spool' });
      const open = tracer.startSpan('left.open');
      setTimeout(() => tracer.shutdown().then(() => console.log('shut down')), 1000);
      process.on('SIGTERM', () => console.log('step cancelled'));
      process.kill(process.pid, 'SIGTERM');
    `);
    assert.deepStrictEqual(exit, { code: 0, signal: null }, `${stdout}${stderr}`);
    const [open] = readSpans(path.join(dir, 'sink'));
    assert.deepStrictEqual(open.attrs['spanguard.unended'], { boolValue: true }, JSON.stringify(open.attrs));
    assert.strictEqual(open.attrs['spanguard.interrupted'], undefined);
  });
