'use strict';
// Cross-process propagation: a Node "agent" calls a Go "tool" process with
// its span's traceparent; both export to one sink directory, and the spans
// must form one trace with the tool's span parented on the agent's call.
const { test } = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const repo = path.resolve(__dirname, '..', '..');
const spanguard = require(path.join(repo, 'bindings', 'node'));

function readSpans(dir) {
  const spans = [];
  for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.jsonl'))) {
    for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n').filter(Boolean)) {
      for (const rs of JSON.parse(line).resourceSpans) {
        const service = rs.resource.attributes.find((a) => a.key === 'service.name').value.stringValue;
        for (const ss of rs.scopeSpans) for (const s of ss.spans || []) spans.push({ ...s, service });
      }
    }
  }
  return spans;
}

test('a Go tool called by a Node agent joins the agent\'s trace', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-prop-'));
  const env = { ...process.env, SPANGUARD_SINK_DIR: path.join(dir, 'sink'), SPANGUARD_SPOOL_DIR: path.join(dir, 'spool') };
  const tracer = new spanguard.Tracer({ serviceName: 'node-agent', sinkDir: env.SPANGUARD_SINK_DIR, spoolDir: env.SPANGUARD_SPOOL_DIR });
  let callTraceparent;
  await tracer.withSpan('agent.session', async () => {
    await tracer.withSpan('tool.invoke', async (call) => {
      callTraceparent = call.traceparent();
      const run = spawnSync(process.env.SPANGUARD_GO_TOOL || path.join(repo, 'build', 'tests', 'go_tool'), ['flights'],
        { env: { ...env, TRACEPARENT: callTraceparent }, encoding: 'utf8' });
      assert.strictEqual(run.status, 0, run.stderr);
    }, { kind: spanguard.KIND.CLIENT });
  });
  await tracer.close();

  const spans = readSpans(env.SPANGUARD_SINK_DIR);
  const by = Object.fromEntries(spans.map((s) => [s.name, s]));
  assert.deepStrictEqual(Object.keys(by).sort(), ['agent.session', 'tool.invoke', 'tool.query', 'tool.search']);
  const traceId = by['agent.session'].traceId;
  assert.ok(spans.every((s) => s.traceId === traceId), 'one trace');
  assert.strictEqual(by['tool.invoke'].parentSpanId, by['agent.session'].spanId);
  assert.strictEqual(by['tool.search'].parentSpanId, by['tool.invoke'].spanId);
  assert.strictEqual(by['tool.search'].service, 'go-tool');
  assert.ok(by['tool.search'].flags & 0x200, 'the Go span knows its parent is remote');
  assert.strictEqual(by['tool.query'].parentSpanId, by['tool.search'].spanId);
  assert.strictEqual(callTraceparent.slice(36, 52), by['tool.invoke'].spanId);
});
