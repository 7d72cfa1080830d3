'use strict';
// The process hooks wait for a provider's resource still settling (an
// async detector: host.id, a cloud detector asking its metadata server)
// before they shut spanguard down, as the bridge's forceFlush and
// shutdown wait for it. At a SIGTERM in a process's first moments the
// spans went out under the settled part of the resource alone (here
// cloud.region gone), and the settling, after the shutdown, could warn
// SPANGUARD_NOT_RECORDED about a shut-down tracer.
const { test } = require('node:test');
const assert = require('node:assert');
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { readSpans } = require('./sink');

const PACKAGE = path.resolve(__dirname, '..');

test('SIGTERM while the provider\'s resource still settles: the spans arrive under the whole resource', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-hooks-resource-'));
  const program = `
    const { SpanguardSpanProcessor } = require(${JSON.stringify(path.join(PACKAGE, 'otel.js'))});
    const { BasicTracerProvider } = require('@opentelemetry/sdk-trace-base');
    const { resourceFromAttributes } = require('@opentelemetry/resources');
    const dir = ${JSON.stringify(dir)};
    const bridge = new SpanguardSpanProcessor({ fromEnv: false, sinkDir: dir + '/sink', spoolDir: dir + '/spool' });
    bridge.tracer.installProcessHooks();
    // Settles 100 ms in; the hooks wait up to 1.5 s (half their 3 s).
    const region = new Promise((resolve) => setTimeout(() => resolve('eu-west-1'), 100));
    const resource = resourceFromAttributes({ 'service.name': 'res-agent', 'cloud.region': region });
    const provider = new BasicTracerProvider({ resource, spanProcessors: [bridge] });
    provider.getTracer('agent').startSpan('work').end();
    setInterval(() => {}, 1000);
    process.kill(process.pid, 'SIGTERM');
  `;
  const run = await new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', program], { cwd: PACKAGE });
    let stderr = '';
    const killer = setTimeout(() => child.kill('SIGKILL'), 30000);
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('exit', (status, signal) => {
      clearTimeout(killer);
      resolve({ status, signal, stderr });
    });
  });
  assert.strictEqual(run.signal, 'SIGTERM', `the process ended by its signal: ${run.status} ${run.stderr}`);
  assert.deepStrictEqual(readSpans(path.join(dir, 'sink')).map((s) => s.name), ['work'], run.stderr);
  const resources = [];
  for (const f of fs.readdirSync(path.join(dir, 'sink')).filter((n) => n.endsWith('.jsonl'))) {
    for (const line of fs.readFileSync(path.join(dir, 'sink', f), 'utf8').split('\n').filter(Boolean)) {
      for (const rs of JSON.parse(line).resourceSpans) {
        resources.push(Object.fromEntries((rs.resource.attributes || [])
          .filter((a) => a.key === 'service.name' || a.key === 'cloud.region')
          .map((a) => [a.key, a.value.stringValue])));
      }
    }
  }
  assert.deepStrictEqual(resources, [{ 'service.name': 'res-agent', 'cloud.region': 'eu-west-1' }]);
  assert.ok(!run.stderr.includes('SPANGUARD_NOT_RECORDED'), run.stderr);
});
