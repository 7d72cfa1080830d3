'use strict';
// OpenLLMetry's OpenAI instrumentation (@traceloop/instrumentation-openai)
// puts the prompt and the completion on the span, as JSON text
// (`gen_ai.input.messages`, `gen_ai.output.messages`; unless its
// `traceContent: false` or the context's allow-trace-content key says
// otherwise): through the bridge, a 60 KB non-ASCII prompt and a streamed
// completion from a loopback fake OpenAI arrive at the loopback OTLP receiver
// byte for byte, inside the agent's own span. (otel_openai.test.js: a call
// that is not streamed.)
const { test } = require('node:test');
const assert = require('node:assert');

const { registerInstrumentations } = require('@opentelemetry/instrumentation');
const { OpenAIInstrumentation } = require('@traceloop/instrumentation-openai');

const { startReceiver, assertSameSpans, bridgedProvider } = require('./receiver');
const { streamedChat, fingerprint, PROMPT, COMPLETION } = require('./fake_openai');

/** Every string inside a JSON value, at any depth. */
function strings(v, out = []) {
  if (typeof v === 'string') out.push(v);
  else if (v && typeof v === 'object') for (const x of Object.values(v)) strings(x, out);
  return out;
}

/** The one string in `json` (JSON text) as long as `like`, as a fingerprint (else the strings' lengths). */
function found(json, like) {
  const all = strings(JSON.parse(json));
  const same = all.filter((x) => x.length === like.length);
  return same.length === 1 ? fingerprint(same[0]) : all.map((x) => x.length);
}

test('OpenLLMetry: a 60 KB prompt and a streamed completion arrive whole in the chat span\'s attributes', async (t) => {
  const rx = await startReceiver();
  t.after(() => rx.stop());
  const { memory, bridge, provider } = bridgedProvider(rx, 'otel-openai-openllmetry');
  registerInstrumentations({ tracerProvider: provider, instrumentations: [new OpenAIInstrumentation()] });
  const { sdkSpans, turn, chat } = await streamedChat(t, provider, memory);
  const arrived = await rx.waitFor(sdkSpans.length);
  const got = arrived.find((s) => s.span_id === chat.spanContext().spanId);
  assert.strictEqual(got.parent_span_id, turn.spanContext().spanId, 'parented on the agent\'s span');
  assert.deepStrictEqual(found(got.attributes['gen_ai.input.messages'], PROMPT), fingerprint(PROMPT), 'the prompt, byte for byte');
  assert.deepStrictEqual(found(got.attributes['gen_ai.output.messages'], COMPLETION), fingerprint(COMPLETION),
    'the streamed completion, byte for byte');
  assertSameSpans(sdkSpans, arrived);
  assert.strictEqual(bridge.failures, 0);
  await provider.shutdown();
});
