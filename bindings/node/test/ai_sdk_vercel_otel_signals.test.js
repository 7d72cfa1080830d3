'use strict';
// A Vercel AI SDK agent under @vercel/otel's registerOTel stopped by
// SIGTERM (a container stopped, a deploy) or SIGINT (Ctrl-C) in the
// middle of a streamed completion. registerOTel installs no signal
// handling of its own and gives back no handle to shut down: spanguard's
// process hooks do it. With the processor, the spans ended and those still
// open (marked interrupted by the signal, the 60 KB prompt whole) arrive,
// each once; with
// the exporter, the ended spans registerOTel's BatchSpanProcessor queued.
const { test } = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { readSpans } = require('./sink');
const { runNode, aiAgent } = require('./agent_child');

const PROMPT = `Résume: ${'ü東'.repeat(20000)}`;

/** The agent (agent_child.js) in a child node under registerOTel set up by `setup`, sent `signal` at its stream's first chunk. */
async function runAgent(setup, signal) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-vercel-signal-'));
  const program = aiAgent({
    dir,
    options: "serviceName: 'unused'",
    setup: `const { registerOTel } = require('@vercel/otel');
    ${setup}`,
    prompt: PROMPT,
    inputTokens: 30000,
  });
  const run = await runNode(program, { signal, limitMs: 120000 });
  return { ...run, spans: readSpans(path.join(dir, 'sink')) };
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
      open ? 'every span once, the open ones interrupted by it' : 'the ended spans its queue held'}`, async () => {
      const run = await runAgent(setup, signal);
      assert.strictEqual(run.signal, signal, `the process ended by its signal: ${run.status} ${run.stderr}`);
      assert.ok(!/SPANGUARD_/.test(run.stderr), `no warning: ${run.stderr}`);
      const ended = ['ai.generateText', 'ai.generateText.doGenerate'];
      const opened = open ? ['agent.turn', 'ai.streamText', 'ai.streamText.doStream'] : [];
      assert.deepStrictEqual(run.spans.map((s) => s.name).sort(), [...ended, ...opened].sort(),
        `the spans, each once: ${run.stderr}`);
      for (const s of run.spans) {
        const interrupted = s.attrs['spanguard.interrupted'];
        assert.strictEqual(Boolean(interrupted && interrupted.boolValue), opened.includes(s.name),
          `${s.name}: interrupted iff open`);
        if (opened.includes(s.name)) {
          assert.deepStrictEqual(s.attrs['spanguard.signal'], { intValue: String(os.constants.signals[signal]) },
            `${s.name}: by ${signal}`);
        }
        assert.ok(!('spanguard.unended' in s.attrs), s.name);
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
