'use strict';
// Two copies of the Node package in one process, sample by sample in turn
// (A then B, B then A, alternating): for a change to the package's
// JavaScript, where separate runs of bench.js on this host spread by up to
// 2x from run to run. The same spanguard loops as bench.js, and spans open
// across a tick (begun, the tick ends, ended), 1,000 at a time.
//
//   node bench/node/ab.js A_DIR B_DIR [ROUNDS]
//
// A_DIR, B_DIR: directories of the package with its addon built, e.g. the
// tree's bindings/node and a copy of it whose index.js is another
// commit's: cp -r bindings/node /tmp/a && git show BASE:bindings/node/index.js
// > /tmp/a/index.js. Prints one JSON line a case: both medians, their
// ratio, and the median of the pairs' ratios (B over A).
const path = require('path');

const [dirA, dirB] = process.argv.slice(2, 4).map((d) => path.resolve(d || ''));
if (!process.argv[3]) {
  console.error('usage: node bench/node/ab.js A_DIR B_DIR [ROUNDS]');
  process.exit(2);
}
const A = require(dirA);
const B = require(dirB);
const ROUNDS = Number(process.argv[4] || 31);
const N = 20000;
const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

// Each side's loops are compiled apart (new Function), so that neither's
// call sites see the other's classes.
const synchronous = {
  'begin+end': "for (let i = 0; i < n; i++) sg.startSpan('op').end();",
  'begin+3 attrs+end':
    "for (let i = 0; i < n; i++) { const s = sg.startSpan('op'); s.setAttribute('gen_ai.usage.input_tokens', i);" +
    " s.setAttribute('gen_ai.request.model', 'gpt-4o'); s.setAttribute('stream', true); s.end(); }",
  'begin with 3 attrs+end':
    "for (let i = 0; i < n; i++) sg.startSpan('op', { attributes: { 'gen_ai.usage.input_tokens': i," +
    " 'gen_ai.request.model': 'gpt-4o', stream: true } }).end();",
  'nested (parent+child), per span':
    "for (let i = 0; i < n; i++) { const p = sg.startSpan('op'); sg.startSpan('child', { parent: p }).end(); p.end(); }",
};
const SPANS_PER_ROUND = { 'nested (parent+child), per span': 2 };

// Times N spans of `fn`, then lets the tick end and flushes, untimed.
async function synchronousSample(sg, fn, per) {
  const t0 = process.hrtime.bigint();
  fn(sg, N);
  const ns = Number(process.hrtime.bigint() - t0) / (N * per);
  await new Promise((r) => setImmediate(r));
  await sg.flush(30000);
  return ns;
}

// 20 batches of 1,000 spans begun, the tick over, then ended: timed whole.
const K = 1000;
const BATCHES = 20;
const acrossTick = () =>
  new Function(
    'sg',
    'K',
    `return (async () => { const spans = new Array(K);
      for (let i = 0; i < K; i++) spans[i] = sg.startSpan('op');
      await new Promise((r) => setImmediate(r));
      for (let i = 0; i < K; i++) spans[i].end(); })();`,
  );
async function acrossTickSample(sg, fn) {
  const t0 = process.hrtime.bigint();
  for (let b = 0; b < BATCHES; b++) await fn(sg, K);
  const ns = Number(process.hrtime.bigint() - t0) / (K * BATCHES);
  await sg.flush(30000);
  return ns;
}

async function pairs(label, sampleA, sampleB) {
  await sampleA();
  await sampleB();
  const xs = [];
  const ys = [];
  for (let r = 0; r < ROUNDS; r++) {
    if (r % 2 === 0) {
      xs.push(await sampleA());
      ys.push(await sampleB());
    } else {
      ys.push(await sampleB());
      xs.push(await sampleA());
    }
  }
  console.log(
    JSON.stringify({
      case: label,
      A_ns: +median(xs).toFixed(1),
      B_ns: +median(ys).toFixed(1),
      ratio_of_medians: +(median(ys) / median(xs)).toFixed(3),
      median_pair_ratio: +median(xs.map((x, i) => ys[i] / x)).toFixed(3),
    }),
  );
}

(async () => {
  const opts = { fromEnv: false, endpoint: 'discard:', maxQueueSize: 1 << 16 };
  const ta = new A.Tracer(opts);
  const tb = new B.Tracer(opts);
  for (const [label, body] of Object.entries(synchronous)) {
    const fa = new Function('sg', 'n', body);
    const fb = new Function('sg', 'n', body);
    const per = SPANS_PER_ROUND[label] || 1;
    await pairs(label, () => synchronousSample(ta, fa, per), () => synchronousSample(tb, fb, per));
  }
  const fa = acrossTick();
  const fb = acrossTick();
  await pairs(
    'begin, tick ends, end (1,000 at a time)',
    () => acrossTickSample(ta, fa),
    () => acrossTickSample(tb, fb),
  );
  await ta.close();
  await tb.close();
})();
