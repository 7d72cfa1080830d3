'use strict';
// The OpenTelemetry bridge with an OpenAI instrumentation
// (@traceloop/instrumentation-openai) and the `openai` client, against a
// loopback fake OpenAI server: the chat span, with its prompt, completion
// and token counts, must arrive at the loopback OTLP receiver as the SDK had
// it, inside the agent's own span. (The fake: fake_openai.js, answering
// a short completion, not streamed.)
const { test } = require('node:test');
const assert = require('node:assert');

const { registerInstrumentations } = require('@opentelemetry/instrumentation');
const { OpenAIInstrumentation } = require('@traceloop/instrumentation-openai');

const { startReceiver, assertSameSpans, bridgedProvider } = require('./receiver');
const { openAIClient } = require('./fake_openai');

test('an OpenAI chat completion arrives as the instrumentation recorded it', async (t) => {
  const rx = await startReceiver();
  t.after(() => rx.stop());
  const { memory, bridge, provider } = bridgedProvider(rx, 'otel-openai-test');
  registerInstrumentations({ tracerProvider: provider, instrumentations: [new OpenAIInstrumentation()] });
  const { fake, client } = await openAIClient(t, { completion: 'Lisbon is sunny today.',
    usage: { prompt_tokens: 812, completion_tokens: 6, total_tokens: 818 } });
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
