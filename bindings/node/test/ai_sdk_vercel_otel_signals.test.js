'use strict';
// A Vercel AI SDK agent under @vercel/otel's registerOTel stopped by
// SIGTERM (a container stopped, a deploy) or SIGINT (Ctrl-C) in the
// middle of a streamed completion. registerOTel installs no signal
// handling of its own and gives back no handle to shut down: spanguard's
// process hooks do it. With the processor, the spans ended and those still
// open (marked unended, the 60 KB prompt whole) arrive, each once; with
// the exporter, the ended spans registerOTel's BatchSpanProcessor queued.
const { test } = require('node:test');
const assert = require('node:assert');
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { readSpans } = require('./sink');

const PACKAGE = path.resolve(__dirname, '..');
const PROMPT = `Résume: ${'ü東'.repeat(20000)}`;

/** The agent in a child node under registerOTel set up by `setup`, sent `signal` at its stream's first chunk. */
function runAgent(setup, signal) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-vercel-signal-'));
  const program = `
    const { registerOTel } = require('@vercel/otel');
    const { trace } = require('@opentelemetry/api');
    const { generateText, streamText, simulateReadableStream } = require('ai');
    const { MockLanguageModelV3 } = require('ai/test');
    const { SpanguardSpanProcessor, SpanguardSpanExporter } = require(${JSON.stringify(path.join(PACKAGE, 'otel.js'))});
    const dir = ${JSON.stringify(dir)};
    const options = { fromEnv: false, serviceName: 'unused', sinkDir: dir + '/sink', spoolDir: dir + '/spool' };
    ${setup}
    const usage = { inputTokens: { total: 30000 }, outputTokens: { total: 2 } };
    const model = new MockLanguageModelV3({
      doGenerate: async () => ({ content: [{ type: 'text', text: 'olá' }], finishReason: { unified: 'stop', raw: 'stop' },
        usage, warnings: [] }),
      doStream: async () => ({
        stream: simulateReadableStream({ chunkDelayInMs: 100, chunks: [
          { type: 'stream-start', warnings: [] }, { type: 'text-start', id: 't' },
          ...Array.from({ length: 600 }, () => ({ type: 'text-delta', id: 't', delta: 'é' })),
          { type: 'text-end', id: 't' }, { type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage },
        ] }),
      }),
    });
    const PROMPT = ${JSON.stringify(PROMPT)};
    const telemetry = { isEnabled: true, recordInputs: true, recordOutputs: true };
    trace.getTracer('agent').startActiveSpan('agent.turn', async (turn) => {
      await generateText({ model, prompt: PROMPT, experimental_telemetry: telemetry });
      const streamed = streamText({ model, prompt: PROMPT, experimental_telemetry: telemetry });
      let said = false;
      for await (const delta of streamed.textStream) {
        if (!said) { said = true; console.log('streaming'); }
      }
      turn.end();
    });
  `;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', program], { cwd: PACKAGE });
    let stdout = '';
    let stderr = '';
    let sent = false;
    const killer = setTimeout(() => child.kill('SIGKILL'), 60000);
    child.stdout.on('data', (d) => {
      stdout += d;
      if (!sent && stdout.includes('streaming\n')) {
        sent = true;
        child.kill(signal);
      }
    });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('exit', (status, sig) => {
      clearTimeout(killer);
      resolve({ status, signal: sig, stderr, spans: readSpans(path.join(dir, 'sink')) });
    });
  });
}

const SETUPS = {
  'spanProcessors: [SpanguardSpanProcessor]': `const bridge = new SpanguardSpanProcessor(options);
    bridge.tracer.installProcessHooks();
    registerOTel({ serviceName: 'vercel-agent', spanProcessors: [bridge] });`,
  'traceExporter: SpanguardSpanExporter': `const exporter = new SpanguardSpanExporter(options);
    exporter.tracer.installProcessHooks();
    registerOTel({ serviceName: 'vercel-agent', traceExporter: exporter });`,
};

for (const signal of ['SIGTERM', 'SIGINT']) {
  for (const [what, setup] of Object.entries(SETUPS)) {
    const open = what.startsWith('spanProcessors');
    test(`${signal} mid-stream under registerOTel({ ${what} }) with the hooks: ${
      open ? 'every span once, the open ones unended' : 'the ended spans its queue held'}`, async () => {
      const run = await runAgent(setup, signal);
      assert.strictEqual(run.signal, signal, `the process ended by its signal: ${run.status} ${run.stderr}`);
      assert.ok(!/SPANGUARD_/.test(run.stderr), `no warning: ${run.stderr}`);
      const ended = ['ai.generateText', 'ai.generateText.doGenerate'];
      const opened = open ? ['agent.turn', 'ai.streamText', 'ai.streamText.doStream'] : [];
      assert.deepStrictEqual(run.spans.map((s) => s.name).sort(), [...ended, ...opened].sort(),
        `the spans, each once: ${run.stderr}`);
      for (const s of run.spans) {
        const unended = s.attrs['spanguard.unended'];
        assert.strictEqual(Boolean(unended && unended.boolValue), opened.includes(s.name), `${s.name}: unended iff open`);
        assert.ok(!('spanguard.interrupted' in s.attrs), s.name);
      }
      const generate = run.spans.find((s) => s.name === 'ai.generateText');
      assert.strictEqual(JSON.parse(generate.attrs['ai.prompt'].stringValue).prompt, PROMPT);
      if (open) {
        const stream = run.spans.find((s) => s.name === 'ai.streamText');
        assert.strictEqual(JSON.parse(stream.attrs['ai.prompt'].stringValue).prompt, PROMPT, 'the open stream\'s prompt whole');
        assert.strictEqual(stream.parentSpanId, run.spans.find((s) => s.name === 'agent.turn').spanId);
      }
    });
  }
}
