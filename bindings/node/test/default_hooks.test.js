'use strict';
// The process hooks are on by default: an agent stopped with SIGTERM
// (docker stop, Kubernetes, systemd) or Ctrl-C keeps its spans without
// the program calling installProcessHooks(), and ends by the signal as
// Node would have ended it. Before, every span not yet exported and every
// open one was lost, uncounted, unless the program knew to ask.
const { test } = require('node:test');
const assert = require('node:assert');
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { readSpans } = require('./sink');
const spanguard = require('..');

const PACKAGE = path.resolve(__dirname, '..');

/**
 * Starts a child node running `body` with `spanguard` and `dir` defined;
 * once it prints 'ready', sends it `signal` (and SIGKILL 30 s later, should
 * it still be up). Resolves to its exit
 * ({ code, signal }), stdout, stderr and `dir`.
 */
async function signalled(body, signal, env = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-default-hooks-'));
  const childEnv = { ...process.env, ...env };
  for (const k of Object.keys(childEnv)) {
    if (k.startsWith('SPANGUARD_') && !(k in env)) delete childEnv[k];
  }
  const child = spawn(process.execPath, ['-e', `
    const spanguard = require(${JSON.stringify(PACKAGE)});
    const dir = ${JSON.stringify(dir)};
    ${body}
  `], { cwd: PACKAGE, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => child.on('exit', (code, sig) => resolve({ code, signal: sig })));
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      stdout += d;
      if (stdout.includes('ready')) resolve();
    });
    exited.then((e) => reject(new Error(`the child ended before it was ready: ${JSON.stringify(e)} ${stderr}`)));
  });
  child.kill(signal);
  // A child the signal left up (as a container runtime would after its
  // grace): SIGKILL, which the assertions on its exit then show.
  const killer = setTimeout(() => child.kill('SIGKILL'), 30000);
  const exit = await exited;
  clearTimeout(killer);
  return { exit, stdout, stderr, dir };
}

// An agent as a newcomer writes it from the README, without
// installProcessHooks(): 50 ended spans and an open session span. Held
// for a minute: the first batch leaves once 1/16 of the largest batch
// has ended (128 of 2048 here), so none has left at the signal.
const AGENT = (options = '') => `
  const tracer = new spanguard.Tracer({ fromEnv: false, serviceName: 'agent', sinkDir: dir + '/sink',
    spoolDir: dir + '/spool', scheduleDelayMs: 60000, maxExportBatchSize: 2048 ${options} });
  const session = tracer.startSpan('agent.session');
  for (let i = 0; i < 50; i++) tracer.startSpan('llm.chat', { parent: session }).end();
  console.log('ready');
  setInterval(() => {}, 1000);
`;

for (const [signal, number] of [['SIGTERM', 15], ['SIGINT', 2]]) {
  test(`without installProcessHooks, ${signal} delivers every ended span, marks the open one interrupted, `
    + 'and ends the process by the signal', async () => {
    const { exit, stderr, dir } = await signalled(AGENT(), signal);
    assert.deepStrictEqual(exit, { code: null, signal }, `ended by ${signal} as Node ends it: ${stderr}`);
    const spans = readSpans(path.join(dir, 'sink'));
    assert.strictEqual(spans.filter((s) => s.name === 'llm.chat').length, 50, 'every ended span arrived');
    const open = spans.filter((s) => s.name === 'agent.session');
    assert.strictEqual(open.length, 1, 'the open session span arrived');
    assert.deepStrictEqual(open[0].attrs['spanguard.interrupted'], { boolValue: true });
    assert.deepStrictEqual(open[0].attrs['spanguard.signal'], { intValue: String(number) });
  });
}

test('processHooks: false and SPANGUARD_PROCESS_HOOKS=false leave the signal to Node: the process ends at once, '
  + 'nothing flushed', async () => {
  for (const [options, env] of [[', processHooks: false', {}], ['', { SPANGUARD_PROCESS_HOOKS: 'false' }]]) {
    // fromEnv: false would ignore the variable: the agent reads it here.
    const body = env.SPANGUARD_PROCESS_HOOKS ? AGENT(options).replace('fromEnv: false, ', '') : AGENT(options);
    const { exit, stderr, dir } = await signalled(body, 'SIGTERM', env);
    assert.deepStrictEqual(exit, { code: null, signal: 'SIGTERM' }, `${options}${JSON.stringify(env)}: ${stderr}`);
    assert.deepStrictEqual(readSpans(path.join(dir, 'sink')), [], `${options}${JSON.stringify(env)}: no hook ran`);
  }
});

/**
 * An agent with `listener` (source) added `order` ('before' or 'after')
 * its tracer: 'before.signal' ended, 'agent.session' open (`session`).
 */
const listenedAgent = (order, listener) => `
  ${order === 'before' ? listener : ''}
  const tracer = new spanguard.Tracer({ fromEnv: false, serviceName: 'agent', sinkDir: dir + '/sink',
    spoolDir: dir + '/spool', scheduleDelayMs: 60000 });
  ${order === 'after' ? listener : ''}
  const session = tracer.startSpan('agent.session');
  tracer.startSpan('before.signal').end();
  console.log('ready');
  setInterval(() => {}, 1000);
`;

for (const order of ['before', 'after']) {
  test(`a program's own SIGTERM listener, added ${order} the tracer, decides: one that does not exit `
    + 'keeps running with its tracing working', async () => {
    // A CLI agent that takes SIGTERM (or Ctrl-C) to cancel the current
    // step and go on: the hook that shut the tracer down there left the
    // rest of the run recording nothing.
    const listener = `process.on('SIGTERM', () => {
      signalled = true;
      setTimeout(async () => {
        tracer.startSpan('after.signal').end();
        session.end();
        console.log('flushed ' + await tracer.flush(5000));
        process.exit(0);
      }, 500);
    });`;
    const { exit, stdout, stderr, dir } = await signalled(
      `let signalled = false; ${listenedAgent(order, listener)}`, 'SIGTERM');
    assert.deepStrictEqual(exit, { code: 0, signal: null }, `the program ended itself: ${stderr}`);
    assert.match(stdout, /flushed true/);
    const spans = readSpans(path.join(dir, 'sink'));
    assert.deepStrictEqual(spans.map((s) => s.name).sort(), ['after.signal', 'agent.session', 'before.signal']);
    const session = spans.find((s) => s.name === 'agent.session');
    assert.strictEqual(session.attrs['spanguard.interrupted'], undefined, 'ended by the program, not interrupted');
  });
}

test('the bridge gets it too: NodeSDK with SpanguardSpanExporter, and a provider with SpanguardSpanProcessor',
  async () => {
    // The exporter under the SDK's BatchSpanProcessor: its queue (5 s
    // schedule) must reach spanguard before it shuts down.
    const exporter = await signalled(`
      const { NodeSDK } = require('@opentelemetry/sdk-node');
      const { trace } = require('@opentelemetry/api');
      const { SpanguardSpanExporter } = require(${JSON.stringify(path.join(PACKAGE, 'otel.js'))});
      const exporter = new SpanguardSpanExporter({ fromEnv: false, serviceName: 'bridge', sinkDir: dir + '/sink',
        spoolDir: dir + '/spool' });
      const sdk = new NodeSDK({ serviceName: 'bridge', traceExporter: exporter });
      sdk.start();
      const t = trace.getTracer('bridge');
      for (let i = 0; i < 20; i++) t.startSpan('queued').end();
      console.log('ready');
      setInterval(() => {}, 1000);
    `, 'SIGTERM');
    assert.deepStrictEqual(exporter.exit, { code: null, signal: 'SIGTERM' }, exporter.stderr);
    assert.strictEqual(readSpans(path.join(exporter.dir, 'sink')).filter((s) => s.name === 'queued').length, 20,
      `the SDK's queue arrived: ${exporter.stderr}`);

    const processor = await signalled(`
      const { BasicTracerProvider } = require('@opentelemetry/sdk-trace-base');
      const { SpanguardSpanProcessor } = require(${JSON.stringify(path.join(PACKAGE, 'otel.js'))});
      const bridge = new SpanguardSpanProcessor({ fromEnv: false, serviceName: 'bridge', sinkDir: dir + '/sink',
        spoolDir: dir + '/spool', scheduleDelayMs: 60000 });
      const t = new BasicTracerProvider({ spanProcessors: [bridge] }).getTracer('bridge');
      t.startSpan('ended').end();
      t.startSpan('open');
      console.log('ready');
      setInterval(() => {}, 1000);
    `, 'SIGTERM');
    assert.deepStrictEqual(processor.exit, { code: null, signal: 'SIGTERM' }, processor.stderr);
    const spans = readSpans(path.join(processor.dir, 'sink'));
    assert.deepStrictEqual(spans.map((s) => s.name).sort(), ['ended', 'open']);
    assert.deepStrictEqual(spans.find((s) => s.name === 'open').attrs['spanguard.interrupted'], { boolValue: true });
  });

test("the hooks are one listener a signal for every tracer, gone once the last is closed: Node's own "
  + 'handling is back', async () => {
  // A listener a tracer, never removed: 11 tracers warned of a leak
  // (MaxListenersExceededWarning), and each closed tracer was held for good.
  const before = ['SIGTERM', 'SIGINT', 'beforeExit'].map((s) => process.listenerCount(s));
  const warnings = [];
  const onWarning = (w) => warnings.push(w.name);
  process.on('warning', onWarning);
  const tracers = [];
  for (let i = 0; i < 12; i++) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-default-hooks-'));
    tracers.push(new spanguard.Tracer({ fromEnv: false, serviceName: 'many', sinkDir: dir, spoolDir: dir }));
  }
  tracers[0].installProcessHooks();   // the README's explicit call: no second listener
  assert.deepStrictEqual(['SIGTERM', 'SIGINT', 'beforeExit'].map((s) => process.listenerCount(s)),
    before.map((n) => n + 1));
  for (const t of tracers) await t.close();
  assert.deepStrictEqual(['SIGTERM', 'SIGINT', 'beforeExit'].map((s) => process.listenerCount(s)), before);
  await new Promise((resolve) => setImmediate(resolve));
  process.removeListener('warning', onWarning);
  assert.deepStrictEqual(warnings, []);
});

// signal-exit, as npm bundles it with Node (execa, write-file-atomic and
// nyc load it): its listener ends the process by raising the signal again
// once it finds itself alone, and leaves the signal to the others while
// another listener is there.
const SIGNAL_EXIT = path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules',
  'signal-exit');

test("signal-exit's listener (an execa child running) is not the program's: SIGTERM still delivers the spans and "
  + 'ends the process, its exit handlers run', { skip: !fs.existsSync(SIGNAL_EXIT) && `no ${SIGNAL_EXIT}` },
async () => {
  // Counted as the program's listener, it left the signal to spanguard,
  // and spanguard to it: the process stayed up, flushed, until the SIGKILL.
  for (const options of ['', ', processHooks: false']) {
    const { exit, stdout, stderr, dir } = await signalled(`
      const { onExit } = require(${JSON.stringify(SIGNAL_EXIT)});
      onExit((code, signal) => { require('fs').writeSync(1, 'signal-exit saw ' + signal + '\\n'); });
      ${AGENT(options)}`, 'SIGTERM');
    assert.deepStrictEqual(exit, { code: null, signal: 'SIGTERM' }, `${options}: ${stderr}`);
    assert.match(stdout, /signal-exit saw SIGTERM/, options);
    const spans = readSpans(path.join(dir, 'sink'));
    assert.strictEqual(spans.length, options ? 0 : 51, `${options}: the spans, with the hooks on only`);
  }
});

/** Runs `body` to its natural end in a child node with `spanguard` and `dir` defined; its spawnSync result and `dir`. */
function ranToEnd(body) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-default-hooks-'));
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('SPANGUARD_')) delete env[k];
  const run = require('child_process').spawnSync(process.execPath, ['-e', `
    const spanguard = require(${JSON.stringify(PACKAGE)});
    const dir = ${JSON.stringify(dir)};
    ${body}
  `], { cwd: PACKAGE, env, encoding: 'utf8', timeout: 60000 });
  return { run, dir };
}

for (const order of ['before', 'after']) {
  test(`a program's own beforeExit listener (added ${order} the tracer) that schedules more work: every span `
    + 'that work records arrives, and the process still ends', () => {
    // A drain-then-exit pattern (close-with-grace's close function, a
    // queue emptied at the end): the hooks shut the tracers down at the
    // first beforeExit, and the spans of the work it scheduled were refused.
    const listener = `process.on('beforeExit', () => {
      if (rounds === 3) return;
      rounds++;
      setTimeout(() => tracer.startSpan('drained.' + rounds).end(), 20);
    });`;
    const { run, dir } = ranToEnd(`
      let rounds = 0;
      ${order === 'before' ? listener : ''}
      const tracer = new spanguard.Tracer({ fromEnv: false, serviceName: 'drain', sinkDir: dir + '/sink',
        spoolDir: dir + '/spool', scheduleDelayMs: 60000 });
      ${order === 'after' ? listener : ''}
      tracer.startSpan('work').end();
      tracer.startSpan('left.open');
    `);
    assert.strictEqual(run.status, 0, `ended by itself: ${run.signal} ${run.stderr}`);
    const spans = readSpans(path.join(dir, 'sink'));
    assert.deepStrictEqual(spans.map((s) => s.name).sort(),
      ['drained.1', 'drained.2', 'drained.3', 'left.open', 'work'], run.stderr);
    // Still open at exit: the program never ended it.
    assert.deepStrictEqual(spans.find((s) => s.name === 'left.open').attrs['spanguard.unended'], { boolValue: true });
    assert.doesNotMatch(run.stderr, /SPANGUARD_NOT_RECORDED/, 'no span was refused');
  });
}

test('a plain script that runs out of work: every span arrives, and the beforeExit flush runs once, not forever',
  () => {
    // The flush's own work ending empties the loop again: flushing at each
    // beforeExit would keep the process up for good.
    const { run, dir } = ranToEnd(`
      const tracer = new spanguard.Tracer({ fromEnv: false, serviceName: 'plain', sinkDir: dir + '/sink',
        spoolDir: dir + '/spool', scheduleDelayMs: 60000 });
      const flush = tracer.flush.bind(tracer);
      let flushes = 0;
      tracer.flush = (ms) => { flushes++; return flush(ms); };
      for (let i = 0; i < 10; i++) tracer.startSpan('span.' + i).end();
      process.on('exit', () => console.log('flushes ' + flushes));
    `);
    assert.strictEqual(run.status, 0, `ended by itself: ${run.signal} ${run.stderr}`);
    assert.strictEqual(run.stdout.trim(), 'flushes 1');
    assert.strictEqual(readSpans(path.join(dir, 'sink')).length, 10, run.stderr);
  });

for (const order of ['before', 'after']) {
  test(`a program's once SIGTERM listener (added ${order} the tracer) that exits only when it is alone: `
    + 'it exits, its cleanup\'s spans delivered, the open one interrupted', async () => {
    // @prisma/client 2 to 4 ended the process so: `if
    // (process.listenerCount('SIGTERM') === 0) process.exit()`. Counting
    // the hooks' listener, it never exited, and the process waited for the
    // SIGKILL with its spans (after); or the hooks, running after it, found
    // it gone, took the signal and ended the process under its cleanup (before).
    const listener = `process.once('SIGTERM', async () => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      tracer.startSpan('cleanup').end();
      if (process.listenerCount('SIGTERM') === 0) process.exit(0);
    });`;
    const { exit, stderr, dir } = await signalled(listenedAgent(order, listener), 'SIGTERM');
    assert.deepStrictEqual(exit, { code: 0, signal: null }, `the program's listener ended it: ${stderr}`);
    const spans = readSpans(path.join(dir, 'sink'));
    assert.deepStrictEqual(spans.map((s) => s.name).sort(), ['agent.session', 'before.signal', 'cleanup']);
    const session = spans.find((s) => s.name === 'agent.session').attrs;
    assert.deepStrictEqual(session['spanguard.interrupted'], { boolValue: true });
    assert.deepStrictEqual(session['spanguard.signal'], { intValue: '15' });
  });
}
