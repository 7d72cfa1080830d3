'use strict';
// The OpenTelemetry bridge with an OpenAI instrumentation
// (@traceloop/instrumentation-openai) and the `openai` client, against a
// loopback fake OpenAI server: the chat span, with its prompt, completion
// and token counts, must arrive at the loopback OTLP receiver as the SDK had
// it, inside the agent's own span.
const { test } = require('node:test');
const assert = require('node:assert');
const http = require('http');

const { registerInstrumentations } = require('@opentelemetry/instrumentation');
const { OpenAIInstrumentation } = require('@traceloop/instrumentation-openai');

const { startReceiver, assertSameSpans, bridgedProvider } = require('./receiver');

/** A loopback server that answers chat completions as OpenAI does. */
async function fakeOpenAI() {
  const requests = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      requests.push({ url: req.url, body: JSON.parse(body || '{}') });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({
        id: 'chatcmpl-loopback-1',
        object: 'chat.completion',
        created: 1764500000,
        model: 'gpt-4o-2024-08-06',
        choices: [{ index: 0, message: { role: 'assistant', content: 'Lisbon is sunny today.' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 812, completion_tokens: 6, total_tokens: 818 },
      }));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { server, requests, url: `http://127.0.0.1:${server.address().port}/v1` };
}

test('an OpenAI chat completion arrives as the instrumentation recorded it', async (t) => {
  const rx = await startReceiver();
  t.after(() => rx.stop());
  const { memory, bridge, provider } = bridgedProvider(rx, 'otel-openai-test');
  registerInstrumentations({ tracerProvider: provider, instrumentations: [new OpenAIInstrumentation()] });
  const { default: OpenAI } = require('openai');

  const fake = await fakeOpenAI();
  t.after(() => fake.server.close());
  const client = new OpenAI({ apiKey: 'sk-loopback', baseURL: fake.url, maxRetries: 0 });
  const answer = await provider.getTracer('agent').startActiveSpan('agent.turn', async (turn) => {
    try {
      const completion = await client.chat.completions.create({
        model: 'gpt-4o',
        messages: [{ role: 'system', content: 'You answer briefly.' }, { role: 'user', content: 'Weather in Lisbon?' }],
        temperature: 0.2,
      });
      return completion.choices[0].message.content;
    } finally {
      turn.end();
    }
  });
  assert.strictEqual(answer, 'Lisbon is sunny today.');
  assert.strictEqual(fake.requests.length, 1);
  await provider.forceFlush();

  const sdkSpans = memory.getFinishedSpans();
  const chat = sdkSpans.find((s) => s.name !== 'agent.turn');
  const turn = sdkSpans.find((s) => s.name === 'agent.turn');
  assert.ok(chat, `the instrumentation made a span: ${sdkSpans.map((s) => s.name)}`);
  assert.strictEqual(chat.parentSpanContext.spanId, turn.spanContext().spanId);
  // The messages are JSON text in the GenAI conventions this instrumentation follows.
  assert.match(String(chat.attributes['gen_ai.input.messages']), /Weather in Lisbon\?/, 'the prompt is recorded');
  assert.match(String(chat.attributes['gen_ai.output.messages']), /Lisbon is sunny today\./, 'the completion is recorded');
  assert.strictEqual(chat.attributes['gen_ai.usage.input_tokens'], 812);
  const arrived = await rx.waitFor(sdkSpans.length);
  assertSameSpans(sdkSpans, arrived);
  assert.strictEqual(bridge.failures, 0);
  await provider.shutdown();
});
