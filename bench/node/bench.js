'use strict';
// spanguard's Node binding vs @opentelemetry/sdk-trace-base (BatchSpanProcessor
// with a discarding exporter), same process, same run, their samples taken in
// turn (so that both sides meet the same moments of a noisy host: one side's
// 15 samples then the other's put a minute of host drift into the ratio). One
// JSON line per case.
// Allocations are not measured for Node (V8 allocates on its own schedule).
const path = require('path');
const spanguard = require(path.join(__dirname, '..', '..', 'bindings', 'node'));
const api = require('@opentelemetry/api');
const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');

const QUICK = process.argv.includes('--quick');
const [SAMPLES, N] = QUICK ? [5, 5000] : [15, 20000];

const discard = { export(spans, done) { done({ code: 0 }); }, shutdown() { return Promise.resolve(); } };

function median(v) { v.sort((a, b) => a - b); return v[Math.floor(v.length / 2)]; }

// ns per span of one sample of `fn`, then its flush (not timed).
async function sample(fn, per, flush) {
  const t0 = process.hrtime.bigint();
  fn(N);
  const ns = Number(process.hrtime.bigint() - t0) / (N * per);
  await flush();
  return ns;
}

// Medians of SAMPLES samples of a and of b, taken in turn (a first in even
// rounds, b first in odd ones), after a whole sample of each as warm-up,
// not a tenth of one: in a quick run with the first case run twice, it took
// 1,378 ns a span the first time and 540 the second.
async function measurePair(a, flushA, b, flushB, per) {
  a(N);
  await flushA();
  b(N);
  await flushB();
  const [xs, ys] = [[], []];
  for (let s = 0; s < SAMPLES; s++) {
    if (s % 2 === 0) {
      xs.push(await sample(a, per, flushA));
      ys.push(await sample(b, per, flushB));
    } else {
      ys.push(await sample(b, per, flushB));
      xs.push(await sample(a, per, flushA));
    }
  }
  return [median(xs), median(ys)];
}

(async () => {
  const sg = new spanguard.Tracer({ fromEnv: false, endpoint: 'discard:', maxQueueSize: 1 << 16 });
  const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(discard, { maxQueueSize: 1 << 16 })] });
  const ot = provider.getTracer('bench');
  const cases = [
    ['begin+end', 1,
      (n) => { for (let i = 0; i < n; i++) sg.startSpan('op').end(); },
      (n) => { for (let i = 0; i < n; i++) ot.startSpan('op').end(); }],
    ['begin+3 attrs+end', 1,
      (n) => { for (let i = 0; i < n; i++) { const s = sg.startSpan('op'); s.setAttribute('gen_ai.usage.input_tokens', i); s.setAttribute('gen_ai.request.model', 'gpt-4o'); s.setAttribute('stream', true); s.end(); } },
      (n) => { for (let i = 0; i < n; i++) { const s = ot.startSpan('op'); s.setAttribute('gen_ai.usage.input_tokens', i); s.setAttribute('gen_ai.request.model', 'gpt-4o'); s.setAttribute('stream', true); s.end(); } }],
    ['begin with 3 attrs+end', 1,
      (n) => { for (let i = 0; i < n; i++) sg.startSpan('op', { attributes: { 'gen_ai.usage.input_tokens': i, 'gen_ai.request.model': 'gpt-4o', stream: true } }).end(); },
      (n) => { for (let i = 0; i < n; i++) ot.startSpan('op', { attributes: { 'gen_ai.usage.input_tokens': i, 'gen_ai.request.model': 'gpt-4o', stream: true } }).end(); }],
    ['nested (parent+child), per span', 2,
      (n) => { for (let i = 0; i < n; i++) { const p = sg.startSpan('op'); sg.startSpan('child', { parent: p }).end(); p.end(); } },
      (n) => { for (let i = 0; i < n; i++) { const p = ot.startSpan('op'); ot.startSpan('child', {}, api.trace.setSpan(api.context.active(), p)).end(); p.end(); } }],
  ];
  for (const [label, per, a, b] of cases) {
    const [x, y] = await measurePair(a, () => sg.flush(30000), b, () => provider.forceFlush(), per);
    console.log(JSON.stringify({ lang: 'node', case: label, spanguard_ns: x, peer_ns: y, peer: '@opentelemetry/sdk-trace-base' }));
  }
  await sg.close();
  await provider.shutdown();
})();
