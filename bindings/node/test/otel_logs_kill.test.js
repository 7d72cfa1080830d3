'use strict';
// An agent under @opentelemetry/instrumentation-openai, whose prompt goes
// only as a log event, SIGKILLed in the middle of a streamed completion (the
// OOM killer, a pod evicted) with the flight recorder on: the next process
// on the spool directory delivers the open chat span, marked
// spanguard.interrupted, with the prompt event SpanguardLogRecordProcessor
// passed on when the call began, its 60 KB non-ASCII body byte for byte as
// the client sent it, inside the agent's span.
const { test } = require('node:test');
const assert = require('node:assert');
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const spanguard = require('..');
const { readSpans } = require('./sink');
const { fakeOpenAI, fingerprint } = require('./fake_openai');

const PACKAGE = path.resolve(__dirname, '..');

/** An OTLP/JSON AnyValue as a plain value. */
function plain(v) {
  if ('stringValue' in v) return v.stringValue;
  if ('kvlistValue' in v) return Object.fromEntries((v.kvlistValue.values || []).map((kv) => [kv.key, plain(kv.value)]));
  if ('arrayValue' in v) return (v.arrayValue.values || []).map(plain);
  return Object.values(v)[0];
}

test('SIGKILL mid-stream: the prompt sent as a log event arrives whole on the interrupted chat span', async (t) => {
  const fake = await fakeOpenAI();
  t.after(() => fake.close());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-logs-kill-'));
  const program = `
    const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');
    const { LoggerProvider } = require('@opentelemetry/sdk-logs');
    const { registerInstrumentations } = require('@opentelemetry/instrumentation');
    const { OpenAIInstrumentation } = require('@opentelemetry/instrumentation-openai');
    const { SpanguardSpanProcessor, SpanguardLogRecordProcessor } = require(${JSON.stringify(path.join(PACKAGE, 'otel.js'))});
    const { PROMPT } = require(${JSON.stringify(path.join(__dirname, 'fake_openai.js'))});
    const dir = ${JSON.stringify(dir)};
    const bridge = new SpanguardSpanProcessor({ fromEnv: false, serviceName: 'killed', sinkDir: dir + '/sink',
      spoolDir: dir + '/spool', scheduleDelayMs: 60000, flightRecorder: true });
    const provider = new NodeTracerProvider({ spanProcessors: [bridge] });
    provider.register();
    const logs = new LoggerProvider({ processors: [new SpanguardLogRecordProcessor(bridge)] });
    registerInstrumentations({ tracerProvider: provider, loggerProvider: logs,
      instrumentations: [new OpenAIInstrumentation({ captureMessageContent: true })] });
    const { default: OpenAI } = require('openai');
    const client = new OpenAI({ apiKey: 'sk-loopback', baseURL: ${JSON.stringify(fake.url)}, maxRetries: 0 });
    provider.getTracer('agent').startActiveSpan('agent.turn', async () => {
      const stream = await client.chat.completions.create({ model: 'gpt-4o', stream: true,
        messages: [{ role: 'user', content: PROMPT }] });
      for await (const chunk of stream) {
        console.log('streaming');
        await new Promise(() => {}); // held here, mid-stream, until killed
      }
    });
  `;
  const run = await new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', program], { cwd: PACKAGE });
    let stderr = '';
    const killer = setTimeout(() => child.kill('SIGKILL'), 60000);
    child.stdout.on('data', (d) => { if (String(d).includes('streaming')) child.kill('SIGKILL'); });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('exit', (status, signal) => {
      clearTimeout(killer);
      resolve({ status, signal, stderr });
    });
  });
  assert.strictEqual(run.signal, 'SIGKILL', `${run.status} ${run.stderr}`);
  const sent = fake.requests[0].body.messages[0].content;

  const next = new spanguard.Tracer({ fromEnv: false, serviceName: 'next', sinkDir: path.join(dir, 'sink'),
    spoolDir: path.join(dir, 'spool') });
  await next.shutdown(30000);
  assert.strictEqual(next.stats().recovered_spans, 2);
  await next.close();
  const spans = readSpans(path.join(dir, 'sink'));
  assert.deepStrictEqual(spans.map((s) => s.name).sort(), ['agent.turn', 'chat gpt-4o']);
  const turn = spans.find((s) => s.name === 'agent.turn');
  const chat = spans.find((s) => s.name === 'chat gpt-4o');
  assert.strictEqual(chat.parentSpanId, turn.spanId);
  assert.strictEqual(plain(chat.attrs['spanguard.interrupted']), true);
  assert.deepStrictEqual((chat.events || []).map((e) => e.name), ['gen_ai.user.message'], 'the prompt event');
  const attrs = Object.fromEntries(chat.events[0].attributes.map((a) => [a.key, plain(a.value)]));
  assert.deepStrictEqual(fingerprint(attrs['log.record.body'].content), fingerprint(sent), 'the prompt, byte for byte');
});
