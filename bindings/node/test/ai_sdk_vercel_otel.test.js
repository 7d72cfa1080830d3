'use strict';
// The Vercel AI SDK's other usual setup: @vercel/otel's registerOTel
// (its own bundled copy of the SDK's provider and BatchSpanProcessor),
// given spanguard's processor or exporter, in a program that makes its
// calls and ends by itself, with no shutdown of its own (registerOTel
// returns no handle to shut down): the tracer's process hooks deliver
// every span, the 60 KB prompt whole, under registerOTel's service name.
const { test } = require('node:test');
const assert = require('node:assert');
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { readSpans } = require('./sink');

const PACKAGE = path.resolve(__dirname, '..');

for (const [what, setup] of [
  ['spanProcessors: [SpanguardSpanProcessor]', `const bridge = new SpanguardSpanProcessor(options);
    bridge.tracer.installProcessHooks();
    registerOTel({ serviceName: 'vercel-agent', spanProcessors: [bridge] });`],
  ['traceExporter: SpanguardSpanExporter', `const exporter = new SpanguardSpanExporter(options);
    exporter.tracer.installProcessHooks();
    registerOTel({ serviceName: 'vercel-agent', traceExporter: exporter });`],
]) {
  test(`registerOTel({ ${what} }): a program that ends by itself delivers every span`, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-vercel-otel-'));
    const program = `
      const { registerOTel } = require('@vercel/otel');
      const { generateText } = require('ai');
      const { MockLanguageModelV3 } = require('ai/test');
      const { SpanguardSpanProcessor, SpanguardSpanExporter } = require(${JSON.stringify(path.join(PACKAGE, 'otel.js'))});
      const options = { fromEnv: false, serviceName: 'unused', sinkDir: ${JSON.stringify(dir)} + '/sink',
        spoolDir: ${JSON.stringify(dir)} + '/spool' };
      ${setup}
      const model = new MockLanguageModelV3({
        doGenerate: async () => ({ content: [{ type: 'text', text: 'olá, 世界' }],
          finishReason: { unified: 'stop', raw: 'stop' },
          usage: { inputTokens: { total: 15000 }, outputTokens: { total: 3 } }, warnings: [] }),
      });
      generateText({ model, prompt: 'ç'.repeat(30000),
        experimental_telemetry: { isEnabled: true, recordInputs: true, recordOutputs: true } })
        .then((r) => console.log(r.text));
    `;
    const run = spawnSync(process.execPath, ['-e', program], { cwd: PACKAGE, encoding: 'utf8', timeout: 60000 });
    assert.strictEqual(run.status, 0, `${run.signal} ${run.stderr}`);
    assert.strictEqual(run.stdout.trim(), 'olá, 世界');
    const spans = readSpans(path.join(dir, 'sink'));
    assert.deepStrictEqual(spans.map((s) => s.name).sort(), ['ai.generateText', 'ai.generateText.doGenerate'], run.stderr);
    const generate = spans.find((s) => s.name === 'ai.generateText');
    assert.strictEqual(JSON.parse(generate.attrs['ai.prompt'].stringValue).prompt, 'ç'.repeat(30000));
    assert.strictEqual(generate.attrs['ai.response.text'].stringValue, 'olá, 世界');
    assert.strictEqual(spans.find((s) => s.name === 'ai.generateText.doGenerate').parentSpanId, generate.spanId);
    const services = new Set();
    for (const f of fs.readdirSync(path.join(dir, 'sink')).filter((n) => n.endsWith('.jsonl'))) {
      for (const line of fs.readFileSync(path.join(dir, 'sink', f), 'utf8').split('\n').filter(Boolean)) {
        for (const rs of JSON.parse(line).resourceSpans) {
          for (const a of rs.resource.attributes) if (a.key === 'service.name') services.add(a.value.stringValue);
        }
      }
    }
    assert.deepStrictEqual([...services], ['vercel-agent'], "registerOTel's resource");
  });
}
