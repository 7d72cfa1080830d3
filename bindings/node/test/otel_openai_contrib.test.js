'use strict';
// OpenTelemetry's own OpenAI instrumentation (@opentelemetry/instrumentation-openai,
// opentelemetry-js-contrib) sends the prompt and the completion as events
// through the Logs API (`gen_ai.system.message`, `gen_ai.user.message`,
// `gen_ai.choice`, their content in the record's body), never on the span:
// a span processor alone never sees them. With SpanguardLogRecordProcessor on
// the LoggerProvider the instrumentation is given, a 60 KB non-ASCII prompt
// and a streamed completion from a loopback fake OpenAI arrive at the
// loopback OTLP receiver byte for byte, as events of the chat span, inside
// the agent's own span; the SDK's span (what the application's other
// exporters send) is left as it was.
const { test } = require('node:test');
const assert = require('node:assert');

const { registerInstrumentations } = require('@opentelemetry/instrumentation');
const { OpenAIInstrumentation } = require('@opentelemetry/instrumentation-openai');
const { LoggerProvider, InMemoryLogRecordExporter, SimpleLogRecordProcessor } = require('@opentelemetry/sdk-logs');

const { SpanguardLogRecordProcessor, LOG_RECORD_BODY } = require('../otel');
const { startReceiver, assertSameSpans, bridgedProvider } = require('./receiver');
const { streamedChat, fingerprint, PROMPT, COMPLETION } = require('./fake_openai');

test('the official instrumentation\'s prompt and streamed completion, sent as log events, arrive whole on the chat span',
  async (t) => {
    const rx = await startReceiver();
    t.after(() => rx.stop());
    const { memory, bridge, provider } = bridgedProvider(rx, 'otel-openai-contrib');
    const logged = new InMemoryLogRecordExporter();
    const toSpans = new SpanguardLogRecordProcessor(bridge);
    const logs = new LoggerProvider({ processors: [new SimpleLogRecordProcessor({ exporter: logged }), toSpans] });
    registerInstrumentations({
      tracerProvider: provider,
      loggerProvider: logs,
      instrumentations: [new OpenAIInstrumentation({ captureMessageContent: true })],
    });
    const { fake, sdkSpans, turn, chat } = await streamedChat(t, provider, memory);
    assert.strictEqual(fake.requests[0].body.messages[1].content, PROMPT, 'the fake got the prompt whole');
    assert.strictEqual(chat.parentSpanContext.spanId, turn.spanContext().spanId);
    // Where this instrumentation puts the content: nowhere on the span, in the log records' bodies.
    assert.ok(!JSON.stringify(chat.attributes).includes(PROMPT.slice(0, 40)), 'no prompt in the span\'s attributes');
    assert.deepStrictEqual(chat.events, [], 'no span events');
    const records = logged.getFinishedLogRecords();
    assert.deepStrictEqual(records.map((r) => r.attributes['event.name']),
      ['gen_ai.system.message', 'gen_ai.user.message', 'gen_ai.choice']);
    assert.ok(records.every((r) => r.spanContext.spanId === chat.spanContext().spanId), 'each record carries the chat span');
    assert.deepStrictEqual([toSpans.attached, toSpans.notAttached], [3, 0]);

    const arrived = await rx.waitFor(sdkSpans.length);
    const got = arrived.find((s) => s.span_id === chat.spanContext().spanId);
    assert.strictEqual(got.parent_span_id, turn.spanContext().spanId, 'parented on the agent\'s span');
    assert.deepStrictEqual(got.events.map((e) => e.name), ['gen_ai.system.message', 'gen_ai.user.message', 'gen_ai.choice']);
    const [system, user, choice] = got.events;
    assert.deepStrictEqual(system.attributes, { 'gen_ai.system': 'openai', [LOG_RECORD_BODY]: { content: 'Réponds brièvement.' } });
    assert.deepStrictEqual(Object.keys(user.attributes).sort(), ['gen_ai.system', LOG_RECORD_BODY]);
    assert.deepStrictEqual(fingerprint(user.attributes[LOG_RECORD_BODY].content), fingerprint(PROMPT), 'the prompt, byte for byte');
    const body = choice.attributes[LOG_RECORD_BODY];
    assert.deepStrictEqual([body.index, body.finish_reason], [0, 'stop']);
    assert.deepStrictEqual(fingerprint(body.message.content), fingerprint(COMPLETION), 'the streamed completion, byte for byte');
    // Each at its record's time, within the span.
    const ns = (hr) => (BigInt(hr[0]) * 1000000000n + BigInt(hr[1])).toString();
    assert.deepStrictEqual(got.events.map((e) => e.time), records.map((r) => ns(r.hrTime)));

    // Everything else as the SDK had it (its spans have no such events).
    assertSameSpans(sdkSpans, arrived.map((s) => (s === got ? { ...s, events: [] } : s)));
    assert.strictEqual(bridge.failures, 0);
    await provider.shutdown();
    await logs.shutdown();
  });
