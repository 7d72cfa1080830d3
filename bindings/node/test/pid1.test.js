'use strict';
// A Node agent that is a container's PID 1 (`unshare --pid --fork`),
// stopped as `docker stop` stops it: SIGTERM from outside its namespace,
// then SIGKILL. A namespace's init does not die of a signal it has no
// handler for (pid_namespaces(7)): Node's own SIGTERM handler re-raises
// it at its default, and the agent lives on. With spanguard it must live
// on as it would without (and keep recording), or end as its own listener
// says.
const { test } = require('node:test');
const assert = require('node:assert');
const { spawn, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { readSpans } = require('./sink');

const PACKAGE = path.resolve(__dirname, '..');
const OTEL = path.join(PACKAGE, 'otel.js');

const probe = spawnSync('unshare', ['--pid', '--fork', 'sh', '-c', 'test $$ = 1'], { encoding: 'utf8' });
const skip = probe.status === 0 ? false
  : `no PID namespace here (unshare --pid --fork: ${probe.error ? probe.error.message : probe.stderr.trim() || probe.status})`;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * `program` (source) run by node as PID 1 of a new PID namespace, with
 * `tracer` (its spans), `dir` and a command loop on stdin ("span NAME"
 * ends a span through `record`, each answered "ok"), after it prints
 * "ready". Resolves with { pid (here, outside), line(), say(), exited }.
 */
async function startPid1(dir, program) {
  const source = `
    const dir = ${JSON.stringify(dir)};
    if (process.pid !== 1) throw new Error('not PID 1: ' + process.pid);
    ${program}
    console.log('ready');
    require('readline').createInterface({ input: process.stdin }).on('line', (line) => {
      const [command, name] = line.split(' ');
      if (command === 'span') record(name);
      console.log('ok');
    });
  `;
  // No step to start the PID 1 with the default dispositions, as the C
  // and Python PID 1 tests have (their agents inherited SIGINT and SIGHUP
  // ignored from a nohup or background launcher): node resets every
  // disposition at its start (then ignores SIGPIPE and SIGXFSZ itself).
  // Measured: from a shell ignoring SIGHUP, SIGINT, SIGQUIT and SIGTERM
  // (SigIgn 0x4007), this PID 1's SigIgn is 0x1001000; these tests pass
  // run from `setsid nohup bash -c` and from a plain shell alike.
  const child = spawn('unshare', ['--pid', '--fork', '--kill-child', process.execPath, '-e', source],
    { cwd: PACKAGE, stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => child.on('exit', (status, signal) => resolve({ status, signal })));
  const lines = [];
  let waiting = null;
  let buffered = '';
  child.stdout.on('data', (d) => {
    buffered += d;
    let at;
    while ((at = buffered.indexOf('\n')) >= 0) {
      lines.push(buffered.slice(0, at));
      buffered = buffered.slice(at + 1);
    }
    if (waiting && lines.length) waiting();
  });
  const line = async (withinMs = 30000) => {
    const until = Date.now() + withinMs;
    while (!lines.length && Date.now() < until) {
      await Promise.race([new Promise((resolve) => { waiting = resolve; }), sleep(100)]);
    }
    return lines.shift();
  };
  const children = `/proc/${child.pid}/task/${child.pid}/children`;
  let pid = 0;
  for (let i = 0; i < 1000 && !pid; i++) {
    pid = Number((fs.existsSync(children) ? fs.readFileSync(children, 'utf8') : '').trim().split(' ')[0]) || 0;
    if (!pid) await sleep(10);
  }
  return { pid, line, say: (text) => child.stdin.write(text + '\n'), exited, unshare: child };
}

async function inSink(sink, name, withinMs = 10000) {
  const until = Date.now() + withinMs;
  while (Date.now() < until) {
    if (fs.existsSync(sink) && readSpans(sink).some((s) => s.name === name)) return true;
    await sleep(20);
  }
  return false;
}

/** The agent says 'ready', gets SIGTERM, and once `settled` resolves ends 'after': it lived on. */
async function livesThroughSigterm(agent, settled) {
  assert.strictEqual(await agent.line(), 'ready');
  process.kill(agent.pid, 'SIGTERM');
  await settled();
  agent.say('span after');
  assert.strictEqual(await agent.line(), 'ok', 'the agent lived on');
}

const names = (sink) => (fs.existsSync(sink) ? readSpans(sink).map((s) => s.name).sort() : []);

// A tracer whose spans leave only on a flush (or the signal's).
const TRACER = `
  const spanguard = require(${JSON.stringify(PACKAGE)});
  const options = { fromEnv: false, serviceName: 'pid1', sinkDir: dir + '/sink', spoolDir: dir + '/spool',
    scheduleDelayMs: 60000 };
`;

test('PID 1 with the default hooks under NodeSDK: each SIGTERM flushes, the agent lives on recording', { skip }, async () => {
  // The hooks shut spanguard down and raised the signal again to end the
  // process, which as PID 1 it did not: the agent went on with its
  // tracer shut down, its spans from then on refused, and a second
  // SIGTERM found no hook.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-pid1-sdk-'));
  const agent = await startPid1(dir, `${TRACER}
    const { NodeSDK } = require('@opentelemetry/sdk-node');
    const { trace } = require('@opentelemetry/api');
    const { SpanguardSpanExporter } = require(${JSON.stringify(OTEL)});
    const exporter = new SpanguardSpanExporter(options);
    const sdk = new NodeSDK({ serviceName: 'pid1', traceExporter: exporter });
    sdk.start();
    const otel = trace.getTracer('agent');
    const record = (name) => otel.startSpan(name).end();
    record('before');
  `);
  const sink = path.join(dir, 'sink');
  try {
    await livesThroughSigterm(agent, async () => {
      assert.ok(await inSink(sink, 'before'), 'the first SIGTERM flushed the SDK and spanguard');
      await sleep(300);
    });
    process.kill(agent.pid, 'SIGTERM');
    assert.ok(await inSink(sink, 'after'), 'the second SIGTERM flushed again');
    process.kill(agent.pid, 'SIGKILL');
    await agent.exited;
  } finally {
    agent.unshare.kill('SIGKILL');
  }
  assert.deepStrictEqual(names(sink), ['after', 'before']);
  const spool = path.join(dir, 'spool');
  const left = fs.existsSync(spool) ? fs.readdirSync(spool).filter((f) => f !== 'outcomes' && f !== '.sender-key') : [];
  assert.deepStrictEqual(left.filter((f) => f.endsWith('.sgdump') || f.endsWith('.sgspool')), []);
});

test('PID 1 with the hooks off: SIGTERM leaves it alive and recording, as Node alone does', { skip }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-pid1-plain-'));
  const agent = await startPid1(dir, `${TRACER}
    const tracer = new spanguard.Tracer({ ...options, processHooks: false });
    const record = (name) => tracer.startSpan(name).end();
    record('before');
  `);
  const sink = path.join(dir, 'sink');
  try {
    await livesThroughSigterm(agent, () => sleep(500));
    process.kill(agent.pid, 'SIGKILL');
    await agent.exited;
  } finally {
    agent.unshare.kill('SIGKILL');
  }
  // Nothing flushes at the signal with the hooks off and without the
  // library's handlers (installSignalHandlers): both spans waited for the schedule
  // and died with the SIGKILL, as README says of SIGKILL.
  assert.deepStrictEqual(names(sink), []);
});

test("PID 1 with its own listener that exits 143: it ends so, its spans delivered", { skip }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-pid1-exit-'));
  const agent = await startPid1(dir, `${TRACER}
    const tracer = new spanguard.Tracer(options).installProcessHooks();
    process.on('SIGTERM', () => process.exit(143));
    const record = (name) => tracer.startSpan(name).end();
    record('before');
  `);
  let ended;
  try {
    assert.strictEqual(await agent.line(), 'ready');
    process.kill(agent.pid, 'SIGTERM');
    ended = await agent.exited;
  } finally {
    agent.unshare.kill('SIGKILL');
  }
  assert.deepStrictEqual(ended, { status: 143, signal: null });
  assert.deepStrictEqual(names(path.join(dir, 'sink')), ['before']);
});

test('PID 1 that sends itself SIGBUS, no listener: dropped for init as Node alone drops it; it records on', { skip }, async () => {
  // The crash handler (installSignalHandlers) took the program's own
  // signal for abort()'s: it dumped, froze the tracer and re-raised in
  // vain, and the agent went on with every span after it refused (the
  // flush below timed out, nothing arrived, a dump was left).
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-pid1-raised-'));
  const agent = await startPid1(dir, `${TRACER}
    const tracer = new spanguard.Tracer({ ...options, installSignalHandlers: true });
    const record = (name) => tracer.startSpan(name).end();
    record('before');
    process.kill(process.pid, 'SIGBUS');
    setTimeout(() => { record('raised'); tracer.flush(10000); }, 200);
  `);
  const sink = path.join(dir, 'sink');
  try {
    assert.strictEqual(await agent.line(), 'ready');
    assert.ok(await inSink(sink, 'raised'), 'the span after the signal arrived');
    agent.say('span after');
    assert.strictEqual(await agent.line(), 'ok', 'the agent lived on');
    process.kill(agent.pid, 'SIGKILL');
    await agent.exited;
  } finally {
    agent.unshare.kill('SIGKILL');
  }
  assert.deepStrictEqual(names(sink), ['before', 'raised']);
  const spool = path.join(dir, 'spool');
  const left = fs.existsSync(spool) ? fs.readdirSync(spool) : [];
  assert.deepStrictEqual(left.filter((f) => f.endsWith('.sgdump')), []);
});
