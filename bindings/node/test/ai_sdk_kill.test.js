'use strict';
// A Vercel AI SDK agent under NodeSDK (spanguard's processor in its
// spanProcessors) that does not end by its own choice, in the middle of a
// streamed completion with a 60 KB prompt that is not ASCII, after a
// generateText with a tool call: spans ended and not yet exported (a
// 60 s schedule delay), spans still open (the turn, the stream, its model
// call). Each way the process can go, and what arrives:
// - SIGKILL (the OOM killer, a pod evicted), flight recorder on: the next
//   process on the spool directory delivers the ended spans whole and the
//   open ones marked spanguard.interrupted, each once, nothing lost;
// - a native crash (process.abort(), a SIGSEGV), the library's crash
//   handler on: the same, from its dump;
// - an uncaught exception, an unhandled rejection (Node's default exit
//   path, 'exit' then exit(1)): every span, at once, the open ones
//   spanguard.unended.
const { test } = require('node:test');
const assert = require('node:assert');
const { spawnSync } = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const spanguard = require('..');
const { readSpans } = require('./sink');
const { startReceiver } = require('./receiver');
const { runNode, aiAgent } = require('./agent_child');

const BINARY = process.env.SPANGUARD_CLI || path.resolve(__dirname, '..', '..', '..', 'target', 'release', 'spanguard');

const PROMPT = `Résume ce rapport, puis la météo à Lisbonne: ${'ü東'.repeat(20000)}`;
const ENDED = ['ai.generateText', 'ai.generateText.doGenerate', 'ai.generateText.doGenerate', 'ai.toolCall'];
const OPEN = ['agent.turn', 'ai.streamText', 'ai.streamText.doStream'];

/**
 * Runs the agent (agent_child.js) in a child node with `options` (spanguard's Tracer
 * options, as source) and, once the stream's first chunk is read, runs
 * `atFirstChunk` (source) in it or, when that is a signal name, sends the
 * signal from here. The child prints each span the SDK starts and ends
 * (its processor next to spanguard's). Resolves with its exit status,
 * signal, stderr, the SDK's spans by id ({ name, ended }) and the dirs.
 */
async function runAgent(options, atFirstChunk, { exporter = false, hooks = false } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-ai-kill-'));
  const signal = /^SIG[A-Z]+$/.test(atFirstChunk) ? atFirstChunk : null;
  const program = aiAgent({
    dir,
    options: `serviceName: 'ai-killed', scheduleDelayMs: 60000, ${options}`,
    setup: `const { NodeSDK } = require('@opentelemetry/sdk-node');
    const { BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
    const { tool, stepCountIs } = require('ai');
    const { z } = require('zod');
    const say = (what, span) => console.log(JSON.stringify({ [what]: span.name, id: span.spanContext().spanId }));
    const announce = { onStart: (span) => say('start', span), onEnd: (span) => say('end', span),
      forceFlush: async () => {}, shutdown: async () => {} };
    const bridge = new ${exporter ? 'SpanguardSpanExporter' : 'SpanguardSpanProcessor'}(options);
    ${hooks ? 'bridge.tracer.installProcessHooks();' : ''}
    const sdk = new NodeSDK({ serviceName: 'ai-killed', instrumentations: [],
      spanProcessors: [${exporter ? 'new BatchSpanProcessor(bridge)' : 'bridge'}, announce] });
    sdk.start();
    let calls = 0;
    const weather = tool({ description: 'weather', inputSchema: z.object({ city: z.string() }),
      execute: async ({ city }) => ({ city, sky: 'sol' }) });`,
    prompt: PROMPT,
    inputTokens: 30000,
    doGenerate: `async () => (++calls === 1
        ? { content: [{ type: 'tool-call', toolCallId: 'c1', toolName: 'weather', input: '{"city":"Lisboa"}' }],
          finishReason: { unified: 'tool-calls', raw: 'tool_calls' }, usage, warnings: [] }
        : { content: [{ type: 'text', text: 'sol, 23 °C' }], finishReason: { unified: 'stop', raw: 'stop' },
          usage, warnings: [] })`,
    generateArgs: 'tools: { weather }, stopWhen: stepCountIs(3),',
    atFirstChunk: signal ? '' : atFirstChunk,
  });
  const run = await runNode(program, { signal, limitMs: 120000 });
  const sdkSpans = {};
  for (const line of run.stdout.split('\n').filter(Boolean)) {
    const m = JSON.parse(line);
    if (m.start) sdkSpans[m.id] = { name: m.start, ended: false };
    if (m.end) sdkSpans[m.id].ended = true;
  }
  return { status: run.status, signal: run.signal, stderr: run.stderr, sdkSpans, sink: path.join(dir, 'sink'),
    spool: path.join(dir, 'spool') };
}

/** The next process on the same spool directory: a tracer started, shut down. Its stats. */
async function recover(run) {
  const next = new spanguard.Tracer({ fromEnv: false, serviceName: 'next', sinkDir: run.sink, spoolDir: run.spool });
  await next.shutdown(30000);
  const stats = next.stats();
  await next.close();
  return stats;
}

/** The sink's spans as { spanId, parentSpanId, name, attrs: key -> value, events: names }. */
function fromSink(dir) {
  const plain = (v) => ('stringValue' in v ? v.stringValue : 'boolValue' in v ? v.boolValue : v);
  return readSpans(dir).map((s) => ({ spanId: s.spanId, parentSpanId: s.parentSpanId, name: s.name,
    attrs: Object.fromEntries(Object.entries(s.attrs).map(([k, v]) => [k, plain(v)])),
    events: (s.events || []).map((e) => e.name) }));
}

/** The loopback receiver's spans in the same form. */
function fromReceiver(spans) {
  return spans.map((s) => ({ spanId: s.span_id, parentSpanId: s.parent_span_id, name: s.name, attrs: s.attributes,
    events: s.events.map((e) => e.name) }));
}

/**
 * The spans the SDK made, each once in `spans`, by its id: the ended ones
 * not marked, the open ones marked `mark` (and nothing else marked); the
 * prompt whole on the open stream and the ended generateText; the tool
 * call's result; the open stream nested in the open turn, and the event
 * the AI SDK added to the open model call at its first chunk.
 */
function assertEverySpanOnce(run, spans, mark) {
  const sdkNames = Object.values(run.sdkSpans);
  assert.deepStrictEqual(sdkNames.filter((s) => s.ended).map((s) => s.name).sort(), [...ENDED].sort(),
    `the agent ended these before it went: ${run.stderr}`);
  assert.deepStrictEqual(sdkNames.filter((s) => !s.ended).map((s) => s.name).sort(), [...OPEN].sort());
  assert.deepStrictEqual(spans.map((s) => s.spanId).sort(), Object.keys(run.sdkSpans).sort(),
    `every span the SDK made, once: ${spans.map((s) => s.name)} ${run.stderr}`);
  const other = mark === 'spanguard.unended' ? 'spanguard.interrupted' : 'spanguard.unended';
  for (const s of spans) {
    assert.strictEqual(s.name, run.sdkSpans[s.spanId].name);
    assert.strictEqual(s.attrs[mark] === true, !run.sdkSpans[s.spanId].ended, `${s.name}: marked ${mark} iff it was open`);
    assert.ok(!(other in s.attrs), `${s.name}: not ${other}`);
  }
  const byName = (name) => spans.find((s) => s.name === name);
  for (const name of ['ai.streamText', 'ai.generateText']) {
    assert.strictEqual(JSON.parse(byName(name).attrs['ai.prompt']).prompt, PROMPT, `${name}: the prompt whole`);
  }
  assert.strictEqual(byName('ai.toolCall').attrs['ai.toolCall.result'], '{"city":"Lisboa","sky":"sol"}');
  assert.strictEqual(byName('ai.streamText').parentSpanId, byName('agent.turn').spanId);
  assert.strictEqual(byName('ai.streamText.doStream').parentSpanId, byName('ai.streamText').spanId);
  assert.deepStrictEqual(byName('ai.streamText.doStream').events, ['ai.stream.firstChunk'], 'the open call\'s event');
}

test('SIGKILL mid-stream with the flight recorder: the next process delivers every span once, the open ones interrupted',
  async () => {
    const run = await runAgent('flightRecorder: true', 'SIGKILL');
    assert.strictEqual(run.signal, 'SIGKILL', `${run.status} ${run.stderr}`);
    assert.deepStrictEqual(readSpans(run.sink), [], 'nothing was exported before the kill (60 s schedule delay)');
    const stats = await recover(run);
    assertEverySpanOnce(run, fromSink(run.sink), 'spanguard.interrupted');
    assert.strictEqual(stats.recovered_spans, 7);
    for (const lost of ['dropped_export_failed', 'dropped_rejected', 'dropped_replay_failed', 'dropped_replay_rejected',
      'dropped_spool_overflow', 'files_set_aside']) assert.strictEqual(stats[lost], 0, lost);
    // A third process finds nothing more to send.
    const again = await recover(run);
    assert.strictEqual(again.recovered_spans, 0);
    assert.strictEqual(readSpans(run.sink).length, 7);
  });

test('SIGKILL while a backend holds a batch unanswered: spanguard replay delivers every span once, the open ones interrupted',
  async () => {
    // The collector accepts the connection and never answers (overloaded,
    // a proxy stuck): the ended spans' batch is in flight at the kill,
    // kept in the spool's journal, the rest in the flight file; the
    // collector back, the CLI sends both.
    const hole = net.createServer((socket) => socket.on('data', () => {}));
    await new Promise((resolve) => hole.listen(0, '127.0.0.1', resolve));
    const rx = await startReceiver();
    try {
      const run = await runAgent(`flightRecorder: true, scheduleDelayMs: 50,
        endpoint: 'http://127.0.0.1:${hole.address().port}/v1/traces'`, 'SIGKILL');
      assert.strictEqual(run.signal, 'SIGKILL', `${run.status} ${run.stderr}`);
      const replay = (...args) => spawnSync(BINARY, ['replay', run.spool, '--endpoint', rx.url, ...args],
        { encoding: 'utf8', timeout: 60000 });
      const first = replay();
      assert.strictEqual(first.status, 0, `${first.stdout} ${first.stderr}`);
      assertEverySpanOnce(run, fromReceiver(rx.spans()), 'spanguard.interrupted');
      const second = replay();
      assert.strictEqual(second.status, 0, `${second.stdout} ${second.stderr}`);
      assert.strictEqual(rx.spans().length, 7, 'nothing sent twice');
      assert.deepStrictEqual(fs.readdirSync(run.spool).filter((f) => /\.sg(spool|flight|dump)$/.test(f)), [],
        'nothing left in the spool');
    } finally {
      rx.stop();
      hole.close();
    }
  });

for (const [how, act, sig] of [
  ['process.abort()', 'process.abort();', 'SIGABRT'],
  ["process.kill(process.pid, 'SIGSEGV')", "process.kill(process.pid, 'SIGSEGV');", 'SIGSEGV'],
]) {
  test(`a crash mid-stream (${how}) with the crash handler: the next process delivers every span once, the open ones interrupted`,
    async () => {
      const run = await runAgent('installSignalHandlers: true', act);
      assert.strictEqual(run.signal, sig, `the process died of its crash: ${run.status} ${run.stderr}`);
      assert.ok(fs.readdirSync(run.spool).some((f) => f.endsWith('.sgdump')), `a dump: ${fs.readdirSync(run.spool)}`);
      const stats = await recover(run);
      assertEverySpanOnce(run, fromSink(run.sink), 'spanguard.interrupted');
      assert.strictEqual(stats.recovered_spans, 7);
      assert.strictEqual(stats.files_set_aside, 0);
    });
}

for (const [how, act] of [
  ['an uncaught exception', "setImmediate(() => { throw new Error('the tool broke'); });"],
  ['an unhandled rejection', "Promise.reject(new Error('the tool broke'));"],
]) {
  test(`${how} mid-stream ends the process: every span arrives at once, the open ones unended`, async () => {
    const run = await runAgent('', act);
    assert.strictEqual(run.status, 1, `Node's exit status for it: ${run.signal} ${run.stderr}`);
    assert.match(run.stderr, /the tool broke/);
    assertEverySpanOnce(run, fromSink(run.sink), 'spanguard.unended');
  });
}
