'use strict';
// A WebAssembly out-of-bounds access is no crash in Node: V8 (its trap
// handler, on by default on linux-x64) takes the SIGSEGV the guard pages
// raise and throws a RuntimeError the program may catch (a wasm tokenizer,
// sql.js, an ONNX runtime: a bug in the module, caught by the agent). With
// spanguard's crash handlers installed (installSignalHandlers: true), that
// SIGSEGV reached spanguard first, as a crash: every tracer frozen and
// dumped, the program living on with spanguard refusing each span, the
// handler gone for a real crash later. The trap is V8's: spanguard lets it
// be, records on, and still dumps at a real crash.
const { test } = require('node:test');
const assert = require('node:assert');
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const spanguard = require('..');
const { readSpans } = require('./sink');

const PACKAGE = path.resolve(__dirname, '..');

// (module (memory 1) (func (export "f") (result i32) (i32.load (i32.const 100000))))
// 100000 is past the one 64 KiB page.
const WASM = [
  '0061736d01000000', // magic, version 1
  '010501600001' + '7f', // type section: () -> i32
  '03020100', // function section: function 0 of type 0
  '0503010001', // memory section: one memory, at least one page
  '07050101660000', // export section: "f", function 0
  '0a0b010900' + '41a08d06' + '2802000b', // code: i32.const 100000, i32.load, end
].join('');

test('a WebAssembly trap caught by the program, crash handlers on: spanguard records on, and still dumps at a real crash',
  async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-wasm-'));
    const program = `
      const spanguard = require(${JSON.stringify(PACKAGE)});
      const dir = ${JSON.stringify(dir)};
      const tracer = new spanguard.Tracer({ fromEnv: false, serviceName: 'wasm-agent', sinkDir: dir + '/sink',
        spoolDir: dir + '/spool', installSignalHandlers: true });
      const tokenize = tracer.startSpan('tokenize');
      const wasm = new WebAssembly.Instance(new WebAssembly.Module(Buffer.from(${JSON.stringify(WASM)}, 'hex')));
      try {
        wasm.exports.f();
        console.log('no trap');
      } catch (err) {
        tokenize.setAttribute('error.type', err.constructor.name);
        tokenize.setAttribute('error.message', err.message);
      }
      tokenize.end();
      tracer.startSpan('llm.chat').end();
      tracer.flush(10000).then((delivered) => {
        console.log(delivered);
        tracer.startSpan('agent.turn');
        process.abort();
      });
    `;
    const run = spawnSync(process.execPath, ['-e', program], { encoding: 'utf8', timeout: 60000 });
    assert.strictEqual(run.signal, 'SIGABRT', `${run.status} ${run.stdout} ${run.stderr}`);
    assert.strictEqual(run.stdout.trim(), 'true', 'the flush after the trap delivered');
    assert.ok(!/SPANGUARD_/.test(run.stderr), `no span refused: ${run.stderr}`);
    const flushed = readSpans(path.join(dir, 'sink'));
    assert.deepStrictEqual(flushed.map((s) => s.name).sort(), ['llm.chat', 'tokenize']);
    const tokenize = flushed.find((s) => s.name === 'tokenize');
    assert.strictEqual(tokenize.attrs['error.type'].stringValue, 'RuntimeError');
    assert.strictEqual(tokenize.attrs['error.message'].stringValue, 'memory access out of bounds');
    for (const s of flushed) assert.ok(!('spanguard.interrupted' in s.attrs), `${s.name} was not dumped`);
    // The crash after it was dumped, by the handler still in place.
    assert.strictEqual(fs.readdirSync(path.join(dir, 'spool')).filter((f) => f.endsWith('.sgdump')).length, 1);
    const next = new spanguard.Tracer({ fromEnv: false, serviceName: 'next', sinkDir: path.join(dir, 'sink'),
      spoolDir: path.join(dir, 'spool') });
    await next.shutdown(30000);
    assert.strictEqual(next.stats().recovered_spans, 1);
    await next.close();
    const turn = readSpans(path.join(dir, 'sink')).filter((s) => s.name === 'agent.turn');
    assert.strictEqual(turn.length, 1);
    assert.strictEqual(turn[0].attrs['spanguard.interrupted'].boolValue, true);
    assert.strictEqual(turn[0].attrs['spanguard.signal'].intValue, String(os.constants.signals.SIGABRT));
  });

test('a real SIGSEGV in a V8 process (a stack overflow past --stack-size) is still a crash: dumped, recovered', async () => {
  // V8's check answers false for a fault outside wasm code: spanguard dumps.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-segv-'));
  const program = `
    const spanguard = require(${JSON.stringify(PACKAGE)});
    const tracer = new spanguard.Tracer({ fromEnv: false, serviceName: 'overflow', sinkDir: ${JSON.stringify(dir)} + '/sink',
      spoolDir: ${JSON.stringify(dir)} + '/spool', installSignalHandlers: true });
    tracer.startSpan('agent.turn');
    const deeper = (n) => deeper(n + 1) + 1;
    deeper(0);
  `;
  const run = spawnSync(process.execPath, ['--stack-size=60000', '-e', program], { encoding: 'utf8', timeout: 60000 });
  assert.strictEqual(run.signal, 'SIGSEGV', `${run.status} ${run.stderr}`);
  const next = new spanguard.Tracer({ fromEnv: false, serviceName: 'next', sinkDir: path.join(dir, 'sink'),
    spoolDir: path.join(dir, 'spool') });
  await next.shutdown(30000);
  await next.close();
  const spans = readSpans(path.join(dir, 'sink'));
  assert.deepStrictEqual(spans.map((s) => [s.name, s.attrs['spanguard.signal'].intValue]),
    [['agent.turn', String(os.constants.signals.SIGSEGV)]]);
});
