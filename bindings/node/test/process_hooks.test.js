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

/** The crash dumps (open spans kept for the next start) in `spool`. */
function dumpsIn(spool) {
  return fs.existsSync(spool) ? fs.readdirSync(spool).filter((f) => f.endsWith('.sgdump')) : [];
}

/** How many spans the next start of a tracer on `spool` recovers from it, sent to `sink`. */
async function recoverAtNextStart(spool, sink) {
  const next = new (require('..').Tracer)({ fromEnv: false, serviceName: 'next', sinkDir: sink, spoolDir: spool,
    processHooks: false });
  await next.shutdown(30000);
  const recovered = next.stats().recovered_spans;
  await next.close();
  return recovered;
}

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
  assert.strictEqual(dumpsIn(path.join(dir, 'spool')).length, 1, 'the open span was dumped');
  assert.strictEqual(await recoverAtNextStart(path.join(dir, 'spool'), path.join(dir, 'sink')), 1);
  const open = readSpans(path.join(dir, 'sink')).filter((s) => s.name === 'worker.open');
  assert.strictEqual(open.length, 1);
  assert.deepStrictEqual(open[0].attrs['spanguard.interrupted'], { boolValue: true });
  assert.deepStrictEqual(open[0].attrs['spanguard.signal'], { intValue: '15' });
});

// A worker thread's tracer, hooked by default and so with the library's
// termination handler: an ended span and an open one, then 'ready'. The
// batch waits a minute: only a flush or a shutdown sends it.
const HOOKED_WORKER = `
  const { workerData, parentPort } = require('worker_threads');
  const spanguard = require(workerData.pkg);
  const tracer = new spanguard.Tracer({ fromEnv: false, serviceName: 'worker', sinkDir: workerData.dir + '/sink',
    spoolDir: workerData.dir + '/spool-worker', scheduleDelayMs: 60000 });
  tracer.startSpan('worker.ended').end();
  tracer.startSpan('worker.open');
  parentPort.postMessage('ready');
  setInterval(() => {}, 1000);
`;

// The main thread's hooked tracer, as \`tracer\`, its batch waiting a minute too.
const MAIN_TRACER = `const tracer = new spanguard.Tracer({ fromEnv: false, serviceName: 'main', sinkDir: dir + '/sink',
  spoolDir: dir + '/spool-main', scheduleDelayMs: 60000 });`;

/** `main` run in a child node after a HOOKED_WORKER has started and said 'ready'; `spanguard` and `dir` defined. */
function runWithHookedWorker(main) {
  return runChild(`
    const { Worker } = require('worker_threads');
    const started = new Worker(${JSON.stringify(HOOKED_WORKER)}, { eval: true,
      workerData: { dir, pkg: ${JSON.stringify(PACKAGE)} } });
    started.once('message', () => { ${main} });
  `);
}

test("main and worker thread both hooked: at SIGTERM the worker's termination handler and the main thread's hook "
  + 'both act, and every span of both, open ones included, arrives once', async () => {
  // The main thread's tracer comes first: its listener puts Node's signal
  // handler in, and the worker's tracer the library's over it, which at
  // the signal flushes, dumps, hands the signal to Node's and takes its
  // dump back; the main thread's hook then shuts every hooked tracer down
  // and raises the signal again. A span sent by both, or a dump left
  // behind (sent again at the next start), would be a duplicate.
  const { run, dir } = runChild(`
    const { Worker } = require('worker_threads');
    ${MAIN_TRACER}
    tracer.startSpan('main.ended').end();
    tracer.startSpan('main.open');
    new Worker(${JSON.stringify(HOOKED_WORKER)}, { eval: true, workerData: { dir, pkg: ${JSON.stringify(PACKAGE)} } })
      .on('message', () => process.kill(process.pid, 'SIGTERM'));
  `);
  assert.strictEqual(run.signal, 'SIGTERM', `the process ended by its signal: ${run.status} ${run.stderr}`);
  const sink = path.join(dir, 'sink');
  const spans = readSpans(sink);
  assert.deepStrictEqual(spans.map((s) => s.name).sort(), ['main.ended', 'main.open', 'worker.ended', 'worker.open']);
  for (const open of spans.filter((s) => s.name.endsWith('.open'))) {
    assert.deepStrictEqual(open.attrs['spanguard.interrupted'], { boolValue: true }, open.name);
    assert.deepStrictEqual(open.attrs['spanguard.signal'], { intValue: '15' }, open.name);
  }
  for (const spool of ['spool-main', 'spool-worker']) {
    assert.deepStrictEqual(dumpsIn(path.join(dir, spool)), [], `no dump left in ${spool}`);
    assert.strictEqual(await recoverAtNextStart(path.join(dir, spool), sink), 0, spool);
  }
  assert.strictEqual(readSpans(sink).length, 4);
});

test("the main thread's last SIGTERM listener gone, Node's default disposition set: the worker's termination "
  + 'handler is put back, and SIGTERM still ends the process with the spans delivered and dumped', async () => {
  // Node sets SIGTERM's default disposition as its last listener goes,
  // over the handler the worker's tracer installed: the signal then ended
  // the process at once, the worker's spans nowhere, uncounted.
  const { run, dir } = runWithHookedWorker(`
    const listener = () => {};
    process.on('SIGTERM', listener);
    process.removeListener('SIGTERM', listener);
    process.kill(process.pid, 'SIGTERM');
  `);
  assert.strictEqual(run.signal, 'SIGTERM', `the process ended by its signal, as without spanguard: ${run.status} ${run.stderr}`);
  const sink = path.join(dir, 'sink');
  assert.deepStrictEqual(readSpans(sink).map((s) => s.name), ['worker.ended'], run.stderr);
  assert.strictEqual(await recoverAtNextStart(path.join(dir, 'spool-worker'), sink), 1, 'the open span was dumped');
  assert.deepStrictEqual(readSpans(sink).map((s) => s.name).sort(), ['worker.ended', 'worker.open']);
});

/**
 * A main thread's program: MAIN_TRACER ends 'main.before', then sends
 * itself SIGTERM, which a `once` listener of its own takes: the process
 * stays up, and 200 ms later the listener prints how many SIGTERM
 * listeners are left, runs `after` and sends the second SIGTERM.
 */
function secondSigtermAfterOnce(after) {
  return `
    ${MAIN_TRACER}
    tracer.startSpan('main.before').end();
    process.once('SIGTERM', () => setTimeout(() => {
      console.log('listeners ' + process.listenerCount('SIGTERM'));
      ${after}
      process.kill(process.pid, 'SIGTERM');
    }, 200));
    setInterval(() => {}, 1000);
    process.kill(process.pid, 'SIGTERM');
  `;
}

test("a second SIGTERM after a program's once listener ended the process at once, as without spanguard, "
  + "with no listener of spanguard's left, and the spans since the first one delivered, the worker's open one dumped", async () => {
  // The first SIGTERM: spanguard's listener flushed and stepped aside
  // after the program's `once` one (a listener that ends the process only
  // when alone must count none). Its going set Node's default disposition
  // over the worker's termination handler: the second SIGTERM (a "force
  // quit") ended the process with every span recorded since the first
  // nowhere. (A span the main thread's tracer has open then is not kept:
  // without installSignalHandlers it has no dump file for the handler.)
  const { run, dir } = runWithHookedWorker(secondSigtermAfterOnce("tracer.startSpan('main.after').end();"));
  assert.strictEqual(run.signal, 'SIGTERM', `the second signal ended the process: ${run.status} ${run.stderr}`);
  assert.strictEqual(run.stdout.trim(), 'listeners 0');
  const sink = path.join(dir, 'sink');
  assert.deepStrictEqual(readSpans(sink).map((s) => s.name).sort(), ['main.after', 'main.before', 'worker.ended']);
  assert.strictEqual(await recoverAtNextStart(path.join(dir, 'spool-worker'), sink), 1, 'the open span was dumped');
  assert.deepStrictEqual(readSpans(sink).map((s) => s.name).sort(),
    ['main.after', 'main.before', 'worker.ended', 'worker.open']);
});

test("a second SIGTERM after a program's once listener that keeps running: the process ends by it, the spans "
  + 'ended before it delivered and the one open dumped, recovered marked interrupted, each once', async () => {
  // The first SIGTERM: spanguard's listener flushed and stepped aside
  // after the program's `once` one (a listener that ends the process
  // only when alone must count none), and Node set SIGTERM's default as
  // it went. A main thread's tracer had no watchdog to put back over that
  // default, nor a dump file: the second SIGTERM ended the process at
  // once, the span ended since the first and the open one nowhere,
  // uncounted.
  const { run, dir } = runChild(secondSigtermAfterOnce("tracer.startSpan('main.after').end(); tracer.startSpan('main.open');"));
  assert.strictEqual(run.signal, 'SIGTERM', `the second signal ended the process: ${run.status} ${run.stderr}`);
  assert.strictEqual(run.stdout.trim(), 'listeners 0');
  const sink = path.join(dir, 'sink');
  assert.deepStrictEqual(readSpans(sink).map((s) => s.name).sort(), ['main.after', 'main.before'], run.stderr);
  assert.strictEqual(await recoverAtNextStart(path.join(dir, 'spool-main'), sink), 1, 'the open span was dumped');
  const spans = readSpans(sink);
  assert.deepStrictEqual(spans.map((s) => s.name).sort(), ['main.after', 'main.before', 'main.open']);
  const open = spans.find((s) => s.name === 'main.open');
  assert.deepStrictEqual(open.attrs['spanguard.interrupted'], { boolValue: true });
  assert.deepStrictEqual(open.attrs['spanguard.signal'], { intValue: '15' });
  assert.strictEqual(await recoverAtNextStart(path.join(dir, 'spool-main'), sink), 0, 'recovered once');
});

test("a worker's tracer, the main thread without spanguard: after the main thread's last SIGTERM listener went "
  + "(Node's default set over the worker's watchdog), SIGTERM still ends the process with the spans delivered and dumped",
async () => {
  // Only a main thread that loaded spanguard put the watchdog back at
  // once as its listener went: here nothing did, and the signal ended the
  // process with the worker's spans nowhere, uncounted.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-hooks-'));
  const run = spawnSync(process.execPath, ['-e', `
    const { Worker } = require('worker_threads');
    new Worker(${JSON.stringify(HOOKED_WORKER)}, { eval: true, workerData: { dir: ${JSON.stringify(dir)},
      pkg: ${JSON.stringify(PACKAGE)} } }).on('message', () => {
      const listener = () => {};
      process.on('SIGTERM', listener);
      process.removeListener('SIGTERM', listener);
      setTimeout(() => process.kill(process.pid, 'SIGTERM'), 1500);
    });
  `], { cwd: PACKAGE, encoding: 'utf8', timeout: 30000 });
  assert.strictEqual(run.signal, 'SIGTERM', `the process ended by its signal, as without spanguard: ${run.status} ${run.stderr}`);
  const sink = path.join(dir, 'sink');
  assert.deepStrictEqual(readSpans(sink).map((s) => s.name), ['worker.ended'], run.stderr);
  assert.strictEqual(await recoverAtNextStart(path.join(dir, 'spool-worker'), sink), 1, 'the open span was dumped');
  assert.deepStrictEqual(readSpans(sink).map((s) => s.name).sort(), ['worker.ended', 'worker.open']);
});
