// Writes tests/cli/ai_sdk/ai-agent-4242.jsonl, the sink line of the spans
// the Vercel AI SDK (npm `ai`, experimental_telemetry) makes for one
// generateText: a system prompt, a user message of a text and an image, a
// model call that answers a text and a tool call, the tool, a second model
// call that answers. The attributes are the SDK's as it ended the spans;
// ids and times are fixed so that the file reads the same each time.
// After `make test-node` (it installs `ai`):
//   node tests/cli/ai_sdk/make_spans.cjs bindings/node > tests/cli/ai_sdk/ai-agent-4242.jsonl
const path = require('path');
const nm = path.join(process.argv[2], 'node_modules');
const req = (m) => require(require.resolve(m, { paths: [nm] }));
const { NodeSDK } = req('@opentelemetry/sdk-node');
const { generateText, tool, stepCountIs } = req('ai');
const { MockLanguageModelV3 } = req('ai/test');
const { z } = req('zod');
const usage = (i, o) => ({ inputTokens: { total: i, noCache: i }, outputTokens: { total: o, text: o } });
let calls = 0;
const model = new MockLanguageModelV3({ provider: 'mock-provider', modelId: 'mock-model-1', doGenerate: async () => {
  calls++;
  if (calls === 1) return { content: [{ type: 'text', text: 'Looking it up.' }, { type: 'tool-call', toolCallId: 'call-1', toolName: 'weather', input: JSON.stringify({ city: 'Lisboa' }) }],
    finishReason: { unified: 'tool-calls', raw: 'tool_calls' }, usage: usage(120, 12), warnings: [] };
  return { content: [{ type: 'text', text: 'Em Lisboa está sol,\n23 °C.' }], finishReason: { unified: 'stop', raw: 'stop' }, usage: usage(150, 20), warnings: [] };
} });
const weather = tool({ description: 'The weather in a city', inputSchema: z.object({ city: z.string() }),
  execute: async ({ city }) => ({ city, sky: 'sol', celsius: 23 }) });
const got = [];
const memory = { onStart() {}, onEnd(span) { got.push(span); }, forceFlush: async () => {}, shutdown: async () => {} };
const sdk = new NodeSDK({ serviceName: 'ai-agent', spanProcessors: [memory], instrumentations: [] });
sdk.start();
(async () => {
  await generateText({ model, system: 'You are a weather bot.', messages: [
      { role: 'user', content: [{ type: 'text', text: 'Weather in Lisbon?' }, { type: 'image', image: new Uint8Array([137, 80, 78, 71]), mediaType: 'image/png' }] }],
    tools: { weather }, stopWhen: stepCountIs(3),
    experimental_telemetry: { isEnabled: true, recordInputs: true, recordOutputs: true, functionId: 'weather-agent' } });
  // Fixed ids in the order the spans started, each 10 ms after the last.
  const started = [...got].sort((a, b) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1]);
  const ids = new Map(started.map((s, i) => [s.spanContext().spanId, `a15d0000000000${String(i + 1).padStart(2, '0')}`]));
  const t0 = 1796029200000000000n;
  const value = (v) => (typeof v === 'string' ? { stringValue: v } : Number.isInteger(v) ? { intValue: String(v) }
    : typeof v === 'boolean' ? { boolValue: v } : Array.isArray(v) ? { arrayValue: { values: v.map(value) } } : { doubleValue: v });
  const spans = started.map((s, i) => ({
    traceId: '7a15d000000000000000000000004242',
    spanId: ids.get(s.spanContext().spanId),
    ...(s.parentSpanContext ? { parentSpanId: ids.get(s.parentSpanContext.spanId) } : {}),
    name: s.name,
    kind: 1,
    startTimeUnixNano: String(t0 + BigInt(i) * 10000000n),
    endTimeUnixNano: String(t0 + BigInt(i) * 10000000n + (s.parentSpanContext ? 8000000n : 50000000n)),
    attributes: Object.entries(s.attributes).filter(([k]) => !/^ai\.response\.(id|timestamp)$|^gen_ai\.response\.id$/.test(k))
      .map(([key, v]) => ({ key, value: value(v) })),
    status: {},
  }));
  console.log(JSON.stringify({ resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'ai-agent' } }] },
    scopeSpans: [{ scope: { name: 'ai' }, spans }] }] }));
  await sdk.shutdown();
})();
