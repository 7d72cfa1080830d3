'use strict';
// The README's program for @opentelemetry/instrumentation-openai (NodeSDK,
// SpanguardLogRecordProcessor among its logRecordProcessors), installed as
// a newcomer installs it: `npm install @opentelemetry/sdk-node
// @opentelemetry/instrumentation-openai openai`, no versions pinned. npm
// then puts two copies of @opentelemetry/api-logs in node_modules (the
// instrumentation's newer one on top, sdk-node's under it), each keeping
// its own global LoggerProvider: NodeSDK registers its provider with one,
// the instrumentation emits to the other's no-op one. The chat span
// arrived with none of its events (the prompt, the completion), the
// tracer's counts all 0, and nothing said so. The bridge now warns at the
// chat span's end (SPANGUARD_LOG_RECORDS_MISSING), naming the copies
// loaded and how to leave one. Here the two copies are laid out as npm
// lays them out (sdk-node and an api-logs under it copied into a project's
// node_modules, the rest found through NODE_PATH); with one copy, the
// events arrive and nothing is said.
const { test } = require('node:test');
const assert = require('node:assert');
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const { readSpans } = require('./sink');

const PACKAGE = path.resolve(__dirname, '..');
const MODULES = path.join(PACKAGE, 'node_modules');

const AGENT = `
const { NodeSDK } = require('@opentelemetry/sdk-node');
const { OpenAIInstrumentation } = require('@opentelemetry/instrumentation-openai');
const { SpanguardLogRecordProcessor, SpanguardSpanProcessor } = require('spanguard/otel');

const spans = new SpanguardSpanProcessor({ serviceName: 'my-agent' });
const sdk = new NodeSDK({
  serviceName: 'my-agent',
  spanProcessors: [spans],
  logRecordProcessors: [new SpanguardLogRecordProcessor(spans)],
  instrumentations: [new OpenAIInstrumentation({ captureMessageContent: true })],
});
sdk.start();
const { default: OpenAI } = require('openai');
const fetch = async () => Response.json({
  id: 'chatcmpl-1', object: 'chat.completion', created: 1764500000, model: 'gpt-4o-2024-08-06',
  choices: [{ index: 0, message: { role: 'assistant', content: 'Lisboa: sol.' }, finish_reason: 'stop' }],
});
const client = new OpenAI({ apiKey: 'sk-stand-in', fetch });
client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Weather in Lisbon?' }] })
  .then(() => sdk.shutdown())
  .then(() => console.log(JSON.stringify({ attached: spans.tracer.stats().log_records_attached })));
`;

/**
 * A project dir holding the agent, spanguard (a link to this package) and, with `twoCopies`, its own copy of
 * @opentelemetry/sdk-node with a copy of @opentelemetry/api-logs under it, as npm lays out sdk-node 0.223.0
 * beside instrumentation-openai 0.21.0: NodeSDK registers its LoggerProvider with that copy, while
 * @opentelemetry/instrumentation (found through NODE_PATH, as everything else) hands the instrumentation
 * the other copy's provider.
 */
function project(t, twoCopies) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spanguard-api-logs-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'node_modules', '@opentelemetry'), { recursive: true });
  fs.symlinkSync(PACKAGE, path.join(dir, 'node_modules', 'spanguard'));
  if (twoCopies) {
    const sdk = path.join(dir, 'node_modules', '@opentelemetry', 'sdk-node');
    fs.cpSync(path.join(MODULES, '@opentelemetry', 'sdk-node'), sdk, { recursive: true, dereference: true });
    fs.cpSync(path.join(MODULES, '@opentelemetry', 'api-logs'), path.join(sdk, 'node_modules', '@opentelemetry', 'api-logs'),
      { recursive: true, dereference: true });
  }
  fs.writeFileSync(path.join(dir, 'agent.js'), AGENT);
  return dir;
}

function run(dir) {
  const sink = path.join(dir, 'sink');
  const r = spawnSync(process.execPath, ['agent.js'], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, NODE_PATH: MODULES, SPANGUARD_SINK_DIR: sink, SPANGUARD_SPOOL_DIR: path.join(dir, 'spool'),
      OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '', OTEL_TRACES_EXPORTER: '',
      OTEL_LOGS_EXPORTER: '', OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: '' },
  });
  assert.strictEqual(r.status, 0, r.stderr);
  const chat = readSpans(sink).filter((s) => s.name === 'chat gpt-4o');
  assert.strictEqual(chat.length, 1, 'the chat span arrived');
  return { ...r, chat: chat[0], counts: JSON.parse(r.stdout.trim().split('\n').pop()) };
}

test('two copies of @opentelemetry/api-logs: the chat span ends without its events, and a warning says why', (t) => {
  const dir = project(t, true);
  const r = run(dir);
  // What happened before too: the events went to the other copy's no-op provider.
  assert.deepStrictEqual((r.chat.events || []).map((e) => e.name), []);
  assert.strictEqual(r.counts.attached, 0);
  // What is new: said, once, with the copies counted and what to do.
  const warnings = r.stderr.split('\n').filter((l) => l.includes('[SPANGUARD_LOG_RECORDS_MISSING]'));
  assert.strictEqual(warnings.length, 1, r.stderr);
  assert.match(warnings[0], /the chat span 'chat gpt-4o' of @opentelemetry\/instrumentation-openai ended/);
  // sdk-node's api-logs, which the instrumentation can share once it is the one at the top.
  const wanted = JSON.parse(fs.readFileSync(path.join(MODULES, '@opentelemetry', 'sdk-node', 'package.json'), 'utf8'))
    .dependencies['@opentelemetry/api-logs'];
  assert.ok(warnings[0].includes(`(2 copies loaded, of ${wanted})`), warnings[0]);
  assert.ok(warnings[0].includes(`\`npm install @opentelemetry/api-logs@${wanted}\`, makes the SDK and the instrumentation `
    + 'share one'), warnings[0]);
});

test('one copy of @opentelemetry/api-logs: the events arrive on the chat span, and nothing is said', (t) => {
  const dir = project(t, false);
  const r = run(dir);
  assert.deepStrictEqual(r.chat.events.map((e) => e.name), ['gen_ai.user.message', 'gen_ai.choice']);
  assert.strictEqual(r.counts.attached, 2);
  assert.doesNotMatch(r.stderr, /SPANGUARD_LOG_RECORDS_MISSING/);
});
