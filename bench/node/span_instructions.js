'use strict';
// Instructions a span takes on the Node package's recording path, counted
// by callgrind: exact enough to compare two versions of the package's
// JavaScript on a loaded host, where timings spread by 2x (ab.js).
//
//   node bench/node/span_instructions.js [--runs R] [--spans N] [--case NAME] DIR [DIR2 ...]
//
// DIR: a directory of the package with its addon built (the tree's
// bindings/node, or a copy whose index.js and otel.js are another
// commit's; see ab.js). For each case and DIR, R times (default 5): two
// processes under valgrind --tool=callgrind, one recording WARM spans,
// the other WARM + N (default 20,000); the main thread's instructions
// (--separate-threads: not the exporter's), their difference over N, so
// that start-up, loading and the warm-up's compiling cancel. Node runs
// with V8's --predictable (no compiler or GC threads, fixed seeds): with
// its compiler on a thread of its own, the optimised code arrived at a
// different point of the warm-up from run to run, and the difference
// moved by 100 instructions a span and more. Prints each run's figure and the
// median, one line a case and DIR. --case runs one case (all by default).
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const WARM = 20000;

/** `n` spans of `tracer` (spanguard's or OpenTelemetry's), each with three attributes set one by one. */
function threeAttributes(tracer, n) {
  for (let i = 0; i < n; i++) {
    const s = tracer.startSpan('op');
    s.setAttribute('gen_ai.usage.input_tokens', i);
    s.setAttribute('gen_ai.request.model', 'gpt-4o');
    s.setAttribute('stream', true);
    s.end();
  }
}

// Each case: what it does `n` times with `sg` (a Tracer) or `otel` (an
// OpenTelemetry tracer whose provider's only processor is
// SpanguardSpanProcessor).
const CASES = {
  'begin+end': (sg, otel, n) => {
    for (let i = 0; i < n; i++) sg.startSpan('op').end();
  },
  'begin+3 attrs+end': (sg, otel, n) => threeAttributes(sg, n),
  'parent+child (per span)': (sg, otel, n) => {
    for (let i = 0; i < n; i += 2) {
      const p = sg.startSpan('op');
      sg.startSpan('child', { parent: p }).end();
      p.end();
    }
  },
  'bridge: begin+3 attrs+end': (sg, otel, n) => threeAttributes(otel, n),
};

/** The child: WARM spans of the case, then `extra` more, in one tick. */
function child(dir, name, extra) {
  const sg = require(dir);
  // The exporter asleep throughout (no batch is due before the exit): its
  // taking spans while the main thread records them made the main thread
  // wait on locks a different number of times from run to run.
  const opts = { fromEnv: false, endpoint: 'discard:', maxQueueSize: 1 << 16, maxExportBatchSize: 1 << 16,
    scheduleDelayMs: 3600000 };
  const tracer = new sg.Tracer(opts);
  let otel = null;
  if (name.startsWith('bridge')) {
    const { BasicTracerProvider } = require(require.resolve('@opentelemetry/sdk-trace-base', { paths: [dir] }));
    const { SpanguardSpanProcessor } = require(path.join(dir, 'otel.js'));
    otel = new BasicTracerProvider({ spanProcessors: [new SpanguardSpanProcessor(tracer)] }).getTracer('bench');
  }
  CASES[name](tracer, otel, WARM);
  CASES[name](tracer, otel, extra);
  // No flush, no close: their work is the exporter's and the exit's, the same for both runs.
  process.exit(0);
}

/** The main thread's instructions of one run of the child. */
function mainThreadInstructions(dir, name, extra) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-instr-'));
  try {
    execFileSync('valgrind', ['--tool=callgrind', '--separate-threads=yes',
      `--callgrind-out-file=${path.join(out, 'cg.%p')}`, process.execPath, '--predictable', __filename, '--child', dir, name,
      String(extra)], { stdio: ['ignore', 'ignore', 'pipe'] });
    const first = fs.readdirSync(out).filter((f) => /-0*1$/.test(f));
    if (first.length !== 1) throw new Error(`no main thread's file in ${fs.readdirSync(out).join()}`);
    const text = fs.readFileSync(path.join(out, first[0]), 'utf8');
    const m = /^(?:totals|summary): (\d+)/m.exec(text);
    return Number(m[1]);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}

const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

function main(argv) {
  let runs = 5;
  let spans = 20000;
  let only = null;
  const dirs = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--runs') runs = Number(argv[++i]);
    else if (argv[i] === '--spans') spans = Number(argv[++i]);
    else if (argv[i] === '--case') only = argv[++i];
    else dirs.push(path.resolve(argv[i]));
  }
  if (dirs.length === 0) {
    console.error('usage: node bench/node/span_instructions.js [--runs R] [--spans N] [--case NAME] DIR [DIR2 ...]');
    process.exit(2);
  }
  for (const name of Object.keys(CASES).filter((n) => only === null || n === only)) {
    // The directories in turn within each run, so that a host's drift meets each alike.
    const figures = dirs.map(() => []);
    for (let r = 0; r < runs; r++) {
      dirs.forEach((dir, d) => {
        const base = mainThreadInstructions(dir, name, 0);
        const more = mainThreadInstructions(dir, name, spans);
        figures[d].push(Math.round((more - base) / spans));
      });
    }
    dirs.forEach((dir, d) => {
      console.log(`${name}: ${dir}: median ${median(figures[d])} instructions a span `
        + `(runs: ${figures[d].join(', ')}; callgrind, main thread, ${spans} spans after ${WARM})`);
    });
  }
}

if (process.argv[2] === '--child') child(process.argv[3], process.argv[4], Number(process.argv[5]));
else main(process.argv.slice(2));
