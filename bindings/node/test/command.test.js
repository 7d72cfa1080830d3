'use strict';
// The spanguard command as `npm install` installs it (the package's bin,
// node_modules/.bin/spanguard) is the spanguard binary's: the same output
// and exit statuses, judged against the binary built from the same
// sources (SPANGUARD_CLI, set by make test-node), and the signals that
// end it end the bin the same way. The package is packed and installed
// into a scratch project, as a user gets it. Deadlines only bound a hang.
const { test, before } = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { spawn, spawnSync, execFileSync } = require('child_process');
const spanguard = require('..');

const { newTracer } = require('./sink');

const BINARY = process.env.SPANGUARD_CLI || path.resolve(__dirname, '..', '..', '..', 'target', 'release', 'spanguard');
let bin;

before(() => {
  assert.ok(fs.existsSync(BINARY), `${BINARY} is missing: run the tests through \`make test-node\``);
  const project = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-node-bin-'));
  const packed = execFileSync('npm', ['pack', '--silent', '--pack-destination', project],
    { cwd: path.resolve(__dirname, '..'), encoding: 'utf8' }).trim();
  fs.writeFileSync(path.join(project, 'package.json'), '{"name": "scratch", "private": true}');
  execFileSync('npm', ['install', '--silent', '--offline', '--no-audit', '--no-fund', `./${packed}`], { cwd: project });
  bin = path.join(project, 'node_modules', '.bin', 'spanguard');
});

/** This environment without spanguard's or OpenTelemetry's settings. */
function cleanEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(SPANGUARD_|OTEL_)/.test(k)));
}

function run(program, args) {
  const r = spawnSync(program, args, { encoding: 'utf8', env: cleanEnv(), timeout: 60000 });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** A sink directory holding one trace (agent.session > llm.chat) of service node-test. */
async function traced() {
  const { tracer, sink } = newTracer();
  const session = tracer.startSpan('agent.session');
  const llm = tracer.startSpan('llm.chat', { parent: session });
  llm.setAttribute('gen_ai.request.model', 'gpt-4o');
  llm.end();
  session.end();
  await tracer.close();
  return sink;
}

/** A spool directory holding one batch: the backend was down. */
async function spooled() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-node-spool-'));
  const spool = path.join(dir, 'spool');
  const tracer = new spanguard.Tracer({ fromEnv: false, serviceName: 'node-test', endpoint: 'http://127.0.0.1:9/v1/traces',
    spoolDir: spool, installSignalHandlers: false });
  tracer.startSpan('agent.session').end();
  await tracer.shutdown(1000);
  await tracer.close();
  assert.ok(fs.readdirSync(spool).some((f) => f.endsWith('.sgspool')), 'nothing was spooled');
  return spool;
}

/** Runs `args`, sends `signal` to the program alone once `ready(child)` resolves, and returns how it ended. */
function interrupted(program, args, signal, ready) {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const hang = setTimeout(() => {
      child.kill('SIGKILL');
      // A command the bin left behind would hold the pipes open.
      child.stdout.destroy();
      child.stderr.destroy();
      reject(new Error(`${program} did not end on ${signal} in 30 s: ${stderr}`));
    }, 30000);
    child.on('error', (e) => { clearTimeout(hang); reject(e); });
    child.on('close', (status, sig) => { clearTimeout(hang); resolve({ status, signal: sig, stdout, stderr }); });
    ready(child).then(() => child.kill(signal), reject);
  });
}

test('the bin shows a trace as the binary does', async () => {
  const sink = await traced();
  const shown = run(bin, ['show', sink, '--color', 'never']);
  assert.strictEqual(shown.status, 0, shown.stderr);
  for (const word of ['node-test', 'agent.session', 'llm.chat', 'gpt-4o']) assert.ok(shown.stdout.includes(word), shown.stdout);
  assert.strictEqual(shown.stdout, run(BINARY, ['show', sink, '--color', 'never']).stdout);
});

test('the bin answers as the binary does', () => {
  for (const args of [['--version'], ['no-such-command'], [], ['show', '--help'], ['replay']]) {
    assert.deepStrictEqual(run(bin, args), run(BINARY, args), args.join(' '));
  }
  assert.strictEqual(run(bin, ['--version']).stdout, `spanguard ${spanguard.version()}\n`);
  assert.strictEqual(run(bin, ['no-such-command']).status, 2);
});

test('the bin says what waits in the spool', async () => {
  const spool = await spooled();
  const report = run(bin, ['spool', spool]);
  assert.strictEqual(report.status, 0, report.stderr);
  assert.match(report.stdout, /1 span waits to be sent/);
});

test('Ctrl-C sent to the bin stops tail, which exits 0, as the binary', async () => {
  const sink = await traced();
  for (const program of [BINARY, bin]) {
    const firstLine = (child) => new Promise((resolve) => child.stdout.once('data', resolve));
    const ended = await interrupted(program, ['tail', sink, '--from-start', '--color', 'never'], 'SIGINT', firstLine);
    assert.deepStrictEqual([ended.status, ended.signal], [0, null], `${program}: ${ended.stderr}`);
    assert.match(ended.stdout, /agent\.session/);
  }
});

test('a signal that ends the command ends the bin, and the command with it', async () => {
  const spool = await spooled();
  for (const program of [BINARY, bin]) {
    // A backend that accepts and never answers: the replay waits on it.
    const backend = net.createServer().unref();
    let connection;
    const connected = new Promise((resolve) => backend.on('connection', (c) => { connection = c.resume(); resolve(); }));
    await new Promise((resolve) => backend.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${backend.address().port}/v1/traces`;
    const closed = connected.then(() => new Promise((resolve) => connection.on('close', resolve)));
    try {
      const ended = await interrupted(program, ['replay', spool, '--endpoint', url, '--timeout-ms', '120000'],
        'SIGTERM', () => connected);
      assert.deepStrictEqual([ended.status, ended.signal], [null, 'SIGTERM'], `${program}: ${ended.stderr}`);
      // The command itself is gone: its connection closed.
      let wait;
      const gone = await Promise.race([closed.then(() => true),
        new Promise((resolve) => { wait = setTimeout(resolve, 20000, false); })]);
      clearTimeout(wait);
      assert.ok(gone, `${program}: the command went on after the bin ended`);
    } finally {
      connection?.destroy();
      backend.close();
    }
  }
});

test('output into a closed pipe ends the bin as it ends the binary', async () => {
  const { tracer, sink } = newTracer();
  for (let i = 0; i < 400; i++) tracer.startSpan(`step ${i}`).end();
  await tracer.close();
  for (const program of [BINARY, bin]) {
    const stdout = closedPipe();
    const ended = await new Promise((resolve) => {
      const child = spawn(program, ['show', sink, '--color', 'never'], { env: cleanEnv(), stdio: ['ignore', stdout, 'pipe'] });
      fs.closeSync(stdout);
      let stderr = '';
      child.stderr.on('data', (d) => { stderr += d; });
      child.on('error', (e) => resolve({ error: e.message }));
      child.on('close', (status, signal) => resolve({ status, signal, stderr }));
    });
    assert.deepStrictEqual(ended, { status: null, signal: 'SIGPIPE', stderr: '' }, program);
  }
});

/**
 * The write end of a pipe whose reader is gone already: the first write
 * into it fails. A pipe Node makes for a child's stdout (spawn's 'pipe')
 * is closed only once the child runs: a busy machine let the command
 * write all of its output into the pipe's buffer first and exit 0.
 */
function closedPipe() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-node-pipe-'));
  const fifo = path.join(dir, 'out');
  execFileSync('mkfifo', [fifo]);
  const reader = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const writer = fs.openSync(fifo, fs.constants.O_WRONLY);
  fs.closeSync(reader);
  fs.rmSync(dir, { recursive: true });
  return writer;
}
