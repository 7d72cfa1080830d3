'use strict';
// A sample AI agent traced with the Node binding. From bindings/node after
// `make node-addon`: SPANGUARD_SINK_DIR=/tmp/node-demo node examples/agent.js
const { Tracer, KIND } = require('..');

const tracer = new Tracer({ serviceName: 'node-demo-agent' });   // SIGTERM, Ctrl-C: flushed (the process hooks are on by default)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function llm(model, tokensIn, tokensOut) {
  return tracer.withSpan('llm.chat', async (span) => {
    await sleep(2);
    span.setAttributes({ 'gen_ai.request.model': model, 'gen_ai.usage.input_tokens': tokensIn,
      'gen_ai.usage.output_tokens': tokensOut });
  }, { kind: KIND.CLIENT });
}

async function search(fail) {
  return tracer.withSpan('tool.call', async (span) => {
    span.setAttributes({ 'tool.name': 'search', 'tool.arguments': '{"q":"LIS"}' });
    if (fail) throw new Error('upstream timeout after 30s');
    await tracer.withSpan('http.get', async (http) => http.setAttribute('http.response.status_code', 200),
      { kind: KIND.CLIENT });
  });
}

(async () => {
  await tracer.withSpan('agent.session', async () => {
    for (let step = 0; step < 3; step++) {
      await tracer.withSpan('agent.step', async (s) => {
        s.setAttribute('agent.step', step);
        await llm('gpt-4o-mini', 400 + step, 60 + step);
        await search(step === 1).catch(() => {}); // the span already says ERROR
      });
    }
  }, { kind: KIND.SERVER });
  await tracer.shutdown();
  console.log(`node-demo-agent: exported ${tracer.stats().spans_exported} spans`);
})();
