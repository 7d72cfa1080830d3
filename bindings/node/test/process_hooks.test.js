'use strict';
// installProcessHooks in a process that is sent SIGTERM: each hooked
// tracer's spans are sent or spooled before the process ends, and a
// program's own listener for the signal runs once, as it would without
// spanguard.
const { test } = require('node:test');
const assert = require('node:assert');
const { execFileSync, spawn, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { readSpans } = require('./sink');

const PACKAGE = path.resolve(__dirname, '..');
const BINARY = process.env.SPANGUARD_CLI || path.resolve(__dirname, '..', '..', '..', 'target', 'release', 'spanguard');

/** Runs `body` in a child node with `spanguard` and `dir` (a fresh directory) defined; its spawnSync result. */
function runChild(body) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-hooks-'));
  const program = `
    const spanguard = require(${JSON.stringify(PACKAGE)});
    const dir = ${JSON.stringify(dir)};
    ${body}
  `;
  const run = spawnSync(process.execPath, ['-e', program], { cwd: PACKAGE, encoding: 'utf8', timeout: 30000 });
  return { run, dir };
}

test("a program's own SIGTERM listener runs once, and the spans are exported", () => {
  // A graceful shutdown of its own (close the server, then exit): the
  // hook's re-raised signal ran it a second time, which many programs
  // take as "force quit".
  const { run, dir } = runChild(`
    const tracer = new spanguard.Tracer({ fromEnv: false, serviceName: 'hooks', sinkDir: dir + '/sink',
      spoolDir: dir + '/spool' }).installProcessHooks();
    let calls = 0;
    process.on('SIGTERM', () => {
      calls++;
      setTimeout(() => { console.log('listener calls ' + calls); process.exit(0); }, 1000);
    });
    tracer.startSpan('ended').end();
    setTimeout(() => process.kill(process.pid, 'SIGTERM'), 50);
    setInterval(() => {}, 1000);
  `);
  assert.strictEqual(run.status, 0, `the program ended itself: ${run.signal} ${run.stderr}`);
  assert.strictEqual(run.stdout.trim(), 'listener calls 1');
  assert.deepStrictEqual(readSpans(path.join(dir, 'sink')).map((s) => s.name), ['ended']);
});

test('spans open at SIGTERM are counted in spans_interrupted_at_shutdown, not as unended', () => {
  // They counted in spans_exported alone, as spans the program had ended.
  // The program's own listener decides, and ends the process a second
  // later: the spans open then were interrupted by the signal.
  const { run, dir } = runChild(`
    const tracer = new spanguard.Tracer({ fromEnv: false, serviceName: 'hooks', sinkDir: dir + '/sink',
      spoolDir: dir + '/spool' }).installProcessHooks();
    process.on('SIGTERM', () => setTimeout(() => process.exit(0), 1000));
    process.on('exit', () => {
      const s = tracer.stats();
      console.log(JSON.stringify([s.spans_interrupted_at_shutdown, s.spans_unended_at_shutdown, s.spans_exported]));
    });
    tracer.startSpan('ended').end();
    tracer.startSpan('open.one');
    tracer.startSpan('open.two');
    setTimeout(() => process.kill(process.pid, 'SIGTERM'), 50);
    setInterval(() => {}, 1000);
  `);
  assert.strictEqual(run.status, 0, `the program ended itself: ${run.signal} ${run.stderr}`);
  assert.deepStrictEqual(JSON.parse(run.stdout.trim()), [2, 0, 3]);
  const spans = readSpans(path.join(dir, 'sink'));
  assert.deepStrictEqual(spans.map((s) => s.name).sort(), ['ended', 'open.one', 'open.two']);
  for (const open of spans.filter((s) => s.name.startsWith('open.'))) {
    assert.deepStrictEqual(open.attrs['spanguard.signal'], { intValue: '15' });
  }
});

test('with two tracers hooked, the signal ends the process only once both have shut down', () => {
  // One tracer's backend never answers: its shutdown ends by spooling the
  // span once the request times out. The other's, quick, re-raised the
  // signal first and the process ended with the slow one's span nowhere.
  const { run, dir } = runChild(`
    const net = require('net');
    const silent = net.createServer((c) => c.on('data', () => {}));
    silent.listen(0, '127.0.0.1', () => {
      const quick = new spanguard.Tracer({ fromEnv: false, serviceName: 'quick', sinkDir: dir + '/sink',
        spoolDir: dir + '/spool-quick' }).installProcessHooks();
      const slow = new spanguard.Tracer({ fromEnv: false, serviceName: 'slow',
        endpoint: 'http://127.0.0.1:' + silent.address().port + '/v1/traces', requestTimeoutMs: 500,
        spoolDir: dir + '/spool-slow' }).installProcessHooks();
      quick.startSpan('quick.span').end();
      slow.startSpan('slow.span').end();
      setTimeout(() => process.kill(process.pid, 'SIGTERM'), 50);
    });
  `);
  assert.strictEqual(run.signal, 'SIGTERM', `the process ended by its signal: ${run.status} ${run.stderr}`);
  assert.deepStrictEqual(readSpans(path.join(dir, 'sink')).map((s) => s.name), ['quick.span']);
  const spooled = fs.existsSync(path.join(dir, 'spool-slow')) ? fs.readdirSync(path.join(dir, 'spool-slow')) : [];
  assert.ok(spooled.some((f) => f.endsWith('.sgspool')), `the slow tracer's span was spooled: ${spooled}`);
});

test("a worker thread's hooked tracer is shut down by the main thread's hook: its spans are exported", () => {
  // Signals reach the main thread only: the worker's own listener never
  // ran, and the main thread's hook ended the process with the spans the
  // worker's tracer held (queued for a minute here) nowhere.
  const worker = `
    const { workerData, parentPort } = require('worker_threads');
    const spanguard = require(workerData.pkg);
    const tracer = new spanguard.Tracer({ fromEnv: false, serviceName: 'worker', sinkDir: workerData.dir + '/sink',
      spoolDir: workerData.dir + '/spool-worker', scheduleDelayMs: 60000 }).installProcessHooks();
    tracer.startSpan('worker.span').end();
    tracer.startSpan('worker.open');
    parentPort.postMessage('ready');
    setInterval(() => {}, 1000);
  `;
  const { run, dir } = runChild(`
    const { Worker } = require('worker_threads');
    const tracer = new spanguard.Tracer({ fromEnv: false, serviceName: 'main', sinkDir: dir + '/sink',
      spoolDir: dir + '/spool-main', scheduleDelayMs: 60000 }).installProcessHooks();
    tracer.startSpan('main.span').end();
    new Worker(${JSON.stringify(worker)}, { eval: true, workerData: { dir, pkg: ${JSON.stringify(PACKAGE)} } })
      .on('message', () => process.kill(process.pid, 'SIGTERM'));
  `);
  assert.strictEqual(run.signal, 'SIGTERM', `the process ended by its signal: ${run.status} ${run.stderr}`);
  const spans = readSpans(path.join(dir, 'sink'));
  assert.deepStrictEqual(spans.map((s) => s.name).sort(), ['main.span', 'worker.open', 'worker.span']);
  const open = spans.find((s) => s.name === 'worker.open').attrs;
  assert.deepStrictEqual(open['spanguard.interrupted'], { boolValue: true });
  assert.deepStrictEqual(open['spanguard.signal'], { intValue: '15' });
  assert.strictEqual(open['spanguard.unended'], undefined);
});

test('a span open at SIGTERM arrives interrupted by it, as the library\'s own handler marks it, and show says so',
  async () => {
    // `docker stop`: the signal comes from outside. Marked unended (the
    // mark of a span the program never ended), it read as a bug in the
    // agent where a Python agent's same span read "interrupted by SIGTERM".
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-hooks-'));
    const child = spawn(process.execPath, ['-e', `
      const spanguard = require(${JSON.stringify(PACKAGE)});
      const dir = ${JSON.stringify(dir)};
      const tracer = new spanguard.Tracer({ fromEnv: false, serviceName: 'stopped', sinkDir: dir + '/sink',
        spoolDir: dir + '/spool' }).installProcessHooks();
      tracer.startSpan('ended.before').end();
      tracer.startSpan('open.at.sigterm');
      console.log('ready');
      setInterval(() => {}, 1000);
    `], { cwd: PACKAGE, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    const ended = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    await new Promise((resolve) => child.stdout.on('data', (d) => { if (String(d).includes('ready')) resolve(); }));
    child.kill('SIGTERM');
    const { code, signal } = await ended;
    assert.strictEqual(signal, 'SIGTERM', `the process ended by its signal: ${code} ${stderr}`);
    const spans = readSpans(path.join(dir, 'sink'));
    assert.deepStrictEqual(spans.map((s) => s.name).sort(), ['ended.before', 'open.at.sigterm']);
    const open = spans.find((s) => s.name === 'open.at.sigterm').attrs;
    assert.deepStrictEqual(open['spanguard.interrupted'], { boolValue: true });
    assert.deepStrictEqual(open['spanguard.signal'], { intValue: '15' });
    assert.strictEqual(open['spanguard.unended'], undefined, 'not a span the program forgot to end');
    assert.deepStrictEqual(spans.find((s) => s.name === 'ended.before').attrs, {});
    // The CLI draws it as it draws the spans the library's own handler found open.
    assert.ok(fs.existsSync(BINARY), `${BINARY} is missing: run the tests through \`make test-node\``);
    const shown = execFileSync(BINARY, ['show', '--color', 'never', path.join(dir, 'sink')], { encoding: 'utf8' });
    assert.match(shown, /open\.at\.sigterm.*INTERRUPTED by SIGTERM \(15\)/);
    assert.doesNotMatch(shown, /UNENDED/);
  });

test('a tracer made only in a worker thread, the main thread without spanguard: SIGTERM still ends the process, '
  + 'the ended spans delivered and the open one dumped for the next start', async () => {
  // Signals reach the main thread's listeners only, and this main thread
  // has none: Node's default ended the process at once, and every span
  // the worker's tracer held (queued for a minute here) was lost, uncounted.
  const worker = `
    const { workerData, parentPort } = require('worker_threads');
    const spanguard = require(workerData.pkg);
    const tracer = new spanguard.Tracer({ fromEnv: false, serviceName: 'worker', sinkDir: workerData.dir + '/sink',
      spoolDir: workerData.dir + '/spool', scheduleDelayMs: 60000 });
    tracer.startSpan('worker.span').end();
    tracer.startSpan('worker.open');
    parentPort.postMessage('ready');
    setInterval(() => {}, 1000);
  `;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-hooks-'));
  const run = spawnSync(process.execPath, ['-e', `
    const { Worker } = require('worker_threads');
    new Worker(${JSON.stringify(worker)}, { eval: true, workerData: { dir: ${JSON.stringify(dir)},
      pkg: ${JSON.stringify(PACKAGE)} } }).on('message', () => process.kill(process.pid, 'SIGTERM'));
  `], { cwd: PACKAGE, encoding: 'utf8', timeout: 30000 });
  assert.strictEqual(run.signal, 'SIGTERM', `the process ended by its signal, as without spanguard: ${run.status} ${run.stderr}`);
  assert.deepStrictEqual(readSpans(path.join(dir, 'sink')).map((s) => s.name), ['worker.span'], run.stderr);
  const dumps = fs.readdirSync(path.join(dir, 'spool')).filter((f) => f.endsWith('.sgdump'));
  assert.strictEqual(dumps.length, 1, `the open span was dumped: ${fs.readdirSync(path.join(dir, 'spool'))}`);
  const next = new (require('..').Tracer)({ fromEnv: false, serviceName: 'next', sinkDir: path.join(dir, 'sink'),
    spoolDir: path.join(dir, 'spool'), processHooks: false });
  await next.shutdown(30000);
  assert.strictEqual(next.stats().recovered_spans, 1);
  await next.close();
  const open = readSpans(path.join(dir, 'sink')).filter((s) => s.name === 'worker.open');
  assert.strictEqual(open.length, 1);
  assert.deepStrictEqual(open[0].attrs['spanguard.interrupted'], { boolValue: true });
  assert.deepStrictEqual(open[0].attrs['spanguard.signal'], { intValue: '15' });
});
