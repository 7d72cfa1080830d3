'use strict';
// @opentelemetry/instrumentation-openai sends the prompt and the completion
// only as Logs API events. With spanguard plugged in as the span EXPORTER
// (a BatchSpanProcessor over SpanguardSpanExporter, how an exporter is added
// to an existing setup), the exporter gets the chat span only once it has
// ended and left the SDK's queue: SpanguardLogRecordProcessor, given the
// exporter, holds each event record until then and adds it to the span in
// `export`. A 60 KB non-ASCII prompt and a streamed completion from the
// loopback fake OpenAI arrive at the loopback OTLP receiver byte for byte,
// as events of the chat span, none counted not attached. (Its own process:
// the instrumentation patches openai once.)
const { test } = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');

const api = require('@opentelemetry/api');
const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks');
const { registerInstrumentations } = require('@opentelemetry/instrumentation');
const { OpenAIInstrumentation } = require('@opentelemetry/instrumentation-openai');
const { LoggerProvider, InMemoryLogRecordExporter, SimpleLogRecordProcessor } = require('@opentelemetry/sdk-logs');
const { BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');

const { SpanguardLogRecordProcessor, SpanguardSpanExporter, LOG_RECORD_BODY } = require('../otel');
const { startReceiver } = require('./receiver');
const { openAIClient, streamedTurn, fingerprint, PROMPT, COMPLETION } = require('./fake_openai');

test('with the exporter, the instrumentation\'s prompt and streamed completion, sent as log events, arrive whole',
  async (t) => {
    const rx = await startReceiver();
    t.after(() => rx.stop());
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-contrib-exporter-'));
    const exporter = new SpanguardSpanExporter({ fromEnv: false, endpoint: rx.url, spoolDir: path.join(dir, 'spool'),
      scheduleDelayMs: 50, serviceName: 'otel-openai-contrib-exporter' });
    const provider = new NodeTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter)] });
    api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    const toSpans = new SpanguardLogRecordProcessor(exporter);
    const logged = new InMemoryLogRecordExporter();
    const logs = new LoggerProvider({ processors: [new SimpleLogRecordProcessor({ exporter: logged }), toSpans] });
    registerInstrumentations({
      tracerProvider: provider,
      loggerProvider: logs,
      instrumentations: [new OpenAIInstrumentation({ captureMessageContent: true })],
    });
    const { client } = await openAIClient(t);

    const text = await streamedTurn(provider, client);
    assert.strictEqual(text, COMPLETION);
    // The spans wait in the BatchSpanProcessor's queue: the records wait with them.
    assert.deepStrictEqual([toSpans.attached, toSpans.notAttached, toSpans.held], [0, 0, 3]);
    await provider.forceFlush(); // the queue to the exporter's export
    assert.deepStrictEqual([toSpans.attached, toSpans.notAttached, toSpans.held], [3, 0, 0]);

    const arrived = await rx.waitFor(2);
    const turn = arrived.find((s) => s.name === 'agent.turn');
    const got = arrived.find((s) => s.name !== 'agent.turn');
    assert.strictEqual(got.parent_span_id, turn.span_id, 'parented on the agent\'s span');
    assert.deepStrictEqual(got.events.map((e) => e.name), ['gen_ai.system.message', 'gen_ai.user.message', 'gen_ai.choice']);
    const [system, user, choice] = got.events;
    assert.deepStrictEqual(system.attributes, { 'gen_ai.system': 'openai', [LOG_RECORD_BODY]: { content: 'Réponds brièvement.' } });
    assert.deepStrictEqual(fingerprint(user.attributes[LOG_RECORD_BODY].content), fingerprint(PROMPT), 'the prompt, byte for byte');
    const body = choice.attributes[LOG_RECORD_BODY];
    assert.deepStrictEqual(fingerprint(body.message.content), fingerprint(COMPLETION), 'the streamed completion, byte for byte');
    // Each at its record's own time, to the nanosecond. (Not "within the
    // span": the SDK stamps a log record from Date.now(), to the
    // millisecond, and a span from the performance clock, so the choice,
    // emitted as the stream ends, can read a little past the span's end:
    // it did in one make test run.)
    const ns = (hr) => (BigInt(hr[0]) * 1000000000n + BigInt(hr[1])).toString();
    const records = logged.getFinishedLogRecords();
    assert.deepStrictEqual(got.events.map((e) => e.time), records.map((r) => ns(r.hrTime)));
    assert.deepStrictEqual(turn.events, []);
    assert.strictEqual(exporter.failures, 0);
    await provider.shutdown();
    await logs.shutdown();
    assert.deepStrictEqual([toSpans.attached, toSpans.notAttached, toSpans.held], [3, 0, 0]);
  });
