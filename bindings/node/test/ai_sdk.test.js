'use strict';
// The most common TypeScript agent stack: the Vercel AI SDK (`ai`, its
// experimental_telemetry) under @opentelemetry/sdk-node's NodeSDK, with
// spanguard's processor in NodeSDK's spanProcessors, and a mock model (no
// network). generateText with a tool call and streamText, a 60 KB prompt
// and a completion that is not ASCII: every span the SDK ended arrives in
// the local sink, the prompt whole, byte for byte, the spans nested as the
// SDK nested them, and `spanguard show --full` prints them.
const { test } = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');

const { NodeSDK } = require('@opentelemetry/sdk-node');
const { trace } = require('@opentelemetry/api');
const { BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { generateText, streamText, tool, stepCountIs, simulateReadableStream } = require('ai');
const { MockLanguageModelV3 } = require('ai/test');
const { z } = require('zod');

const { SpanguardSpanProcessor, SpanguardSpanExporter } = require('../otel');
const { readSpans } = require('./sink');

const BINARY = process.env.SPANGUARD_CLI || path.resolve(__dirname, '..', '..', '..', 'target', 'release', 'spanguard');

/** A prompt of about 60 KB, not only ASCII: a document the agent was given. */
const PROMPT = `Summarise this report, then look up the weather in Lisbon.\n${
  Array.from({ length: 700 }, (_, i) => `Line ${i}: Ação, naïve café, 東京 — ${'x'.repeat(50)}`).join('\n')}`;
const ANSWER = 'Em Lisboa está sol, 23 °C ☀️ — 晴れ、気温は23度です。';

const usage = (input, output) => ({
  inputTokens: { total: input, noCache: input, cacheRead: undefined, cacheWrite: undefined },
  outputTokens: { total: output, text: output, reasoning: undefined },
});

/** A model that first calls the weather tool, then answers ANSWER (generateText); streamed, ANSWER in chunks. */
function mockModel() {
  let calls = 0;
  return new MockLanguageModelV3({
    provider: 'mock-provider',
    modelId: 'mock-model-1',
    doGenerate: async () => {
      calls++;
      if (calls === 1) {
        return {
          content: [{ type: 'tool-call', toolCallId: 'call-1', toolName: 'weather', input: JSON.stringify({ city: 'Lisboa' }) }],
          finishReason: { unified: 'tool-calls', raw: 'tool_calls' },
          usage: usage(15000, 12),
          warnings: [],
        };
      }
      return {
        content: [{ type: 'text', text: ANSWER }],
        finishReason: { unified: 'stop', raw: 'stop' },
        usage: usage(15030, 20),
        warnings: [],
      };
    },
    doStream: async () => ({
      stream: simulateReadableStream({
        chunks: [
          { type: 'stream-start', warnings: [] },
          { type: 'text-start', id: 't1' },
          ...Array.from(ANSWER.match(/.{1,5}/gu), (delta) => ({ type: 'text-delta', id: 't1', delta })),
          { type: 'text-end', id: 't1' },
          { type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage: usage(15000, 20) },
        ],
      }),
    }),
  });
}

const weather = tool({
  description: 'The weather in a city',
  inputSchema: z.object({ city: z.string() }),
  execute: async ({ city }) => ({ city, sky: 'sol', celsius: 23 }),
});

/** Each span's OTLP/JSON attribute as the SDK's value (strings, numbers, booleans, string arrays). */
function plain(v) {
  if ('stringValue' in v) return v.stringValue;
  if ('intValue' in v) return Number(v.intValue);
  if ('doubleValue' in v) return v.doubleValue;
  if ('boolValue' in v) return v.boolValue;
  if ('arrayValue' in v) return (v.arrayValue.values || []).map(plain);
  throw new Error(`unexpected value ${JSON.stringify(v)}`);
}

// NodeSDK takes the processor in spanProcessors, the exporter as its
// traceExporter (in a BatchSpanProcessor of its own).
const SETUPS = {
  'spanProcessors: [SpanguardSpanProcessor]': (options, memory) => {
    const bridge = new SpanguardSpanProcessor(options);
    return { bridge, sdk: new NodeSDK({ serviceName: 'ai-agent', spanProcessors: [memory, bridge], instrumentations: [] }) };
  },
  'traceExporter: SpanguardSpanExporter': (options, memory) => {
    const bridge = new SpanguardSpanExporter(options);
    // NodeSDK puts it in a BatchSpanProcessor of its own; what that hands it is what the SDK ended.
    const record = bridge.export.bind(bridge);
    bridge.export = (spans, done) => {
      for (const span of spans) memory.onEnd(span);
      record(spans, done);
    };
    return { bridge, sdk: new NodeSDK({ serviceName: 'ai-agent', traceExporter: bridge, instrumentations: [] }) };
  },
};

for (const [setup, make] of Object.entries(SETUPS)) {
  test(`NodeSDK with ${setup}: generateText with a tool call and streamText arrive whole, nested as the SDK nested them`,
    async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-ai-sdk-'));
    const sink = path.join(dir, 'sink');
    // The spans as the SDK ended them (an InMemorySpanExporter forgets them at shutdown).
    const sdkSpans = [];
    const memory = { onStart() {}, onEnd(span) { sdkSpans.push(span); }, forceFlush: async () => {}, shutdown: async () => {} };
    const { bridge, sdk } = make({ fromEnv: false, serviceName: 'ai-agent', sinkDir: sink, spoolDir: path.join(dir, 'spool') },
      memory);
    sdk.start();

    const telemetry = { isEnabled: true, recordInputs: true, recordOutputs: true, functionId: 'weather-agent' };
    const texts = await trace.getTracer('agent').startActiveSpan('agent.turn', async (turn) => {
      try {
        const generated = await generateText({ model: mockModel(), prompt: PROMPT, tools: { weather },
          stopWhen: stepCountIs(3), experimental_telemetry: telemetry });
        const streamed = streamText({ model: mockModel(), prompt: PROMPT, experimental_telemetry: telemetry });
        let text = '';
        for await (const delta of streamed.textStream) text += delta;
        return [generated.text, text];
      } finally {
        turn.end();
      }
    });
    assert.deepStrictEqual(texts, [ANSWER, ANSWER]);
    await sdk.shutdown();
    // NodeSDK's shutdown leaves its provider the global one: the next test's NodeSDK could not set its own.
    trace.disable();
    assert.strictEqual(bridge.failures, 0);

    const names = sdkSpans.map((s) => s.name).sort();
    assert.deepStrictEqual(names, ['agent.turn', 'ai.generateText', 'ai.generateText.doGenerate', 'ai.generateText.doGenerate',
      'ai.streamText', 'ai.streamText.doStream', 'ai.toolCall'].sort(), 'the AI SDK made the spans this test reads');
    const arrived = readSpans(sink);
    const byId = new Map(arrived.map((s) => [s.spanId, s]));
    assert.strictEqual(arrived.length, sdkSpans.length, 'as many spans arrived as the SDK ended');
    for (const o of sdkSpans) {
      const got = byId.get(o.spanContext().spanId);
      assert.ok(got, `${o.name} arrived`);
      assert.strictEqual(got.traceId, o.spanContext().traceId, `${o.name}: trace`);
      assert.strictEqual(got.parentSpanId || '', o.parentSpanContext ? o.parentSpanContext.spanId : '', `${o.name}: parent`);
      assert.strictEqual(got.name, o.name);
      const attrs = Object.fromEntries(Object.entries(got.attrs).map(([k, v]) => [k, plain(v)]));
      const sdkAttrs = Object.fromEntries(Object.entries(o.attributes).filter(([, v]) => v !== undefined && v !== null));
      assert.deepStrictEqual(attrs, sdkAttrs, `${o.name}: attributes, byte for byte`);
    }

    // What the test reads from them: the prompt whole, the answer, the nesting.
    const one = (name) => arrived.find((s) => s.name === name);
    const turn = one('agent.turn');
    const generate = one('ai.generateText');
    const stream = one('ai.streamText');
    assert.strictEqual(JSON.parse(generate.attrs['ai.prompt'].stringValue).prompt, PROMPT, 'the 60 KB prompt whole');
    assert.ok(Buffer.byteLength(generate.attrs['ai.prompt'].stringValue) > 60000);
    assert.strictEqual(generate.attrs['ai.response.text'].stringValue, ANSWER);
    assert.strictEqual(stream.attrs['ai.response.text'].stringValue, ANSWER);
    assert.strictEqual(generate.parentSpanId, turn.spanId);
    assert.strictEqual(stream.parentSpanId, turn.spanId);
    for (const s of arrived.filter((x) => x.name === 'ai.generateText.doGenerate' || x.name === 'ai.toolCall')) {
      assert.strictEqual(s.parentSpanId, generate.spanId, `${s.name} is under ai.generateText`);
    }
    assert.strictEqual(one('ai.streamText.doStream').parentSpanId, stream.spanId);
    assert.strictEqual(JSON.parse(one('ai.toolCall').attrs['ai.toolCall.result'].stringValue).sky, 'sol');
    assert.strictEqual(turn.traceId, generate.traceId);
    assert.strictEqual(turn.traceId, stream.traceId);

    // The CLI reads them: each call's prompt whole, the answer as written.
    assert.ok(fs.existsSync(BINARY), `${BINARY} is missing: run the tests through \`make test-node\``);
    const shown = execFileSync(BINARY, ['show', '--full', '--color', 'never', sink], { encoding: 'utf8',
      maxBuffer: 64 << 20 });
    assert.ok(shown.includes(ANSWER), 'show --full prints the answer');
    for (const line of PROMPT.split('\n').slice(-3)) {
      assert.ok(shown.includes(line), `show --full prints the prompt's ${line.slice(0, 8)}`);
    }
    for (const name of new Set(names)) assert.ok(shown.includes(name), `show --full draws ${name}`);
  });
}
