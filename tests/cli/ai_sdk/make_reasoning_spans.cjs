// Writes tests/cli/ai_sdk/ai-reasoning-4343.jsonl, the sink line of the
// spans the Vercel AI SDK (npm `ai`, experimental_telemetry) makes for one
// agent turn: embedMany of two texts (one model call), then a generateText
// whose conversation holds an earlier answer's reasoning part and a user's
// image of 3 KB (base64), to a model that reasons before it answers
// (reasoning tokens among its output tokens). The attributes are the SDK's
// as it ended the spans; ids and times are fixed so that the file reads
// the same each time. After `make test-node` (it installs `ai`):
//   node tests/cli/ai_sdk/make_reasoning_spans.cjs bindings/node > tests/cli/ai_sdk/ai-reasoning-4343.jsonl
const path = require('path');
const nm = path.join(process.argv[2], 'node_modules');
const req = (m) => require(require.resolve(m, { paths: [nm] }));
const { NodeSDK } = req('@opentelemetry/sdk-node');
const { trace } = req('@opentelemetry/api');
const { generateText, embedMany } = req('ai');
const { MockLanguageModelV3, MockEmbeddingModelV3 } = req('ai/test');
const model = new MockLanguageModelV3({ provider: 'mock-provider', modelId: 'mock-reasoner-1', doGenerate: async () => ({
  content: [{ type: 'reasoning', text: 'The picture is a chart.\nIts last bar is the highest.' }, { type: 'text', text: 'Sales rose in March.' }],
  finishReason: { unified: 'stop', raw: 'stop' },
  usage: { inputTokens: { total: 900, noCache: 900 }, outputTokens: { total: 60, text: 12, reasoning: 48 } }, warnings: [] }) });
const embedder = new MockEmbeddingModelV3({ provider: 'mock-provider', modelId: 'mock-embed-1', maxEmbeddingsPerCall: 2,
  doEmbed: async ({ values }) => ({ embeddings: values.map(() => [0.25, 0.5]), usage: { tokens: 14 }, warnings: [] }) });
// 3 KB of base64: a picture's bytes as the SDK is given them.
const picture = Buffer.alloc(2304, 7).toString('base64');
const got = [];
const memory = { onStart() {}, onEnd(span) { got.push(span); }, forceFlush: async () => {}, shutdown: async () => {} };
const sdk = new NodeSDK({ serviceName: 'ai-agent', spanProcessors: [memory], instrumentations: [] });
sdk.start();
const telemetry = { isEnabled: true, recordInputs: true, recordOutputs: true, functionId: 'chart-agent' };
(async () => {
  await trace.getTracer('agent').startActiveSpan('agent.turn', async (turn) => {
    await embedMany({ model: embedder, values: ['sales in march', 'sales in april'], experimental_telemetry: telemetry });
    await generateText({ model, messages: [
        { role: 'user', content: 'Hello' },
        { role: 'assistant', content: [{ type: 'reasoning', text: 'A greeting; answer it.' }, { type: 'text', text: 'Hi! Send me a chart.' }] },
        { role: 'user', content: [{ type: 'text', text: 'What does this chart say?' }, { type: 'file', data: picture, mediaType: 'image/png' }] }],
      experimental_telemetry: telemetry });
    turn.end();
  });
  // Fixed ids in the order the spans started, each 10 ms after the last.
  const started = [...got].sort((a, b) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1]);
  const ids = new Map(started.map((s, i) => [s.spanContext().spanId, `a15e0000000000${String(i + 1).padStart(2, '0')}`]));
  const t0 = 1796029200000000000n;
  const value = (v) => (typeof v === 'string' ? { stringValue: v } : Number.isInteger(v) ? { intValue: String(v) }
    : typeof v === 'boolean' ? { boolValue: v } : Array.isArray(v) ? { arrayValue: { values: v.map(value) } } : { doubleValue: v });
  const spans = started.map((s, i) => ({
    traceId: '7a15e000000000000000000000004343',
    spanId: ids.get(s.spanContext().spanId),
    ...(s.parentSpanContext ? { parentSpanId: ids.get(s.parentSpanContext.spanId) } : {}),
    name: s.name,
    kind: 1,
    startTimeUnixNano: String(t0 + BigInt(i) * 10000000n),
    endTimeUnixNano: String(t0 + BigInt(i) * 10000000n + (s.parentSpanContext ? 8000000n : 90000000n)),
    attributes: Object.entries(s.attributes).filter(([k]) => !/^ai\.response\.(id|timestamp)$|^gen_ai\.response\.id$/.test(k))
      .map(([key, v]) => ({ key, value: value(v) })),
    status: {},
  }));
  console.log(JSON.stringify({ resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'ai-agent' } }] },
    scopeSpans: [{ scope: { name: 'ai' }, spans }] }] }));
  await sdk.shutdown();
})();
