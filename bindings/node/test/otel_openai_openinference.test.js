'use strict';
// OpenInference's OpenAI instrumentation (@arizeai/openinference-instrumentation-openai)
// puts the prompt and the completion in span attributes
// (`llm.input_messages.N.message.content`, `llm.output_messages.0.message.content`,
// and the whole request as JSON in `input.value`; a streamed answer in
// `output.value` too, set once the stream ends): through the bridge, a 60 KB
// non-ASCII prompt and a streamed completion from a loopback fake OpenAI arrive at
// the loopback OTLP receiver byte for byte, inside the agent's own span.
const { test } = require('node:test');
const assert = require('node:assert');

const { registerInstrumentations } = require('@opentelemetry/instrumentation');
const { OpenAIInstrumentation } = require('@arizeai/openinference-instrumentation-openai');

const { startReceiver, assertSameSpans, bridgedProvider } = require('./receiver');
const { streamedChat, fingerprint, PROMPT, COMPLETION } = require('./fake_openai');

test('OpenInference: a 60 KB prompt and a streamed completion arrive whole in the chat span\'s attributes', async (t) => {
  const rx = await startReceiver();
  t.after(() => rx.stop());
  const { memory, bridge, provider } = bridgedProvider(rx, 'otel-openai-openinference');
  registerInstrumentations({ tracerProvider: provider, instrumentations: [new OpenAIInstrumentation()] });
  const { sdkSpans, turn, chat } = await streamedChat(t, provider, memory);
  assert.strictEqual(chat.parentSpanContext.spanId, turn.spanContext().spanId);

  const arrived = await rx.waitFor(sdkSpans.length);
  const got = arrived.find((s) => s.span_id === chat.spanContext().spanId);
  assert.strictEqual(got.parent_span_id, turn.spanContext().spanId, 'parented on the agent\'s span');
  const a = got.attributes;
  assert.deepStrictEqual(fingerprint(a['llm.input_messages.1.message.content']), fingerprint(PROMPT), 'the prompt, byte for byte');
  assert.deepStrictEqual(fingerprint(JSON.parse(a['input.value']).messages[1].content), fingerprint(PROMPT), 'input.value');
  assert.deepStrictEqual(fingerprint(a['llm.output_messages.0.message.content']), fingerprint(COMPLETION),
    'the streamed completion, byte for byte');
  assert.deepStrictEqual(fingerprint(a['output.value']), fingerprint(COMPLETION), 'output.value');
  assertSameSpans(sdkSpans, arrived);
  assert.strictEqual(bridge.failures, 0);
  await provider.shutdown();
});
