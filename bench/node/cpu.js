'use strict';
// What a span costs the process in Node: CPU time of every thread (user +
// system, process.cpuUsage) per span, for spanguard's Node binding and for
// @opentelemetry/sdk-trace-base with its real OTLP/HTTP protobuf exporter
// (@opentelemetry/exporter-trace-otlp-proto), both sending to the same
// loopback sink, each run ending with every span delivered; and the same
// SDK with spanguard's bridge (SpanguardSpanProcessor) in place of its
// batch processor and exporter, what a user already on OpenTelemetry
// runs. Interleaved rounds, medians; JSON lines for bench/run.py.
//
// node cpu.js SINK_URL [--quick]
const path = require('path');
const http = require('http');
const spanguard = require(path.join(__dirname, '..', '..', 'bindings', 'node'));
const { SpanguardSpanProcessor } = require(path.join(__dirname, '..', '..', 'bindings', 'node', 'otel.js'));
const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-proto');

const URL_ = process.argv[2];
const QUICK = process.argv.includes('--quick');
const [ROUNDS, CHUNKS, CHUNK] = QUICK ? [3, 2, 5000] : [5, 4, 20000];

function cpuNs() { const u = process.cpuUsage(); return (u.user + u.system) * 1000; }
function median(v) { v.sort((a, b) => a - b); return v[Math.floor(v.length / 2)]; }

function received() {
  const base = new URL(URL_);
  return new Promise((resolve, reject) => {
    http.get({ host: base.hostname, port: base.port, path: '/count', agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(Number(body.trim())));
    }).on('error', reject);
  });
}

async function measure(emit, flush) {
  // Threads, connections, buffers, and memory faulted in as it is first
  // used are one-time costs, not a span's: whole chunks until one takes
  // under one page fault and under a page of resident set per 1,000
  // spans (at least 2, at most 12), the rule bench/rust/src/cpu.rs
  // explains.
  for (let w = 1; ; w++) {
    const f0 = process.resourceUsage().minorPageFault;
    const r0 = process.memoryUsage.rss();
    emit(CHUNK);
    await flush();
    const grown = Math.max(process.memoryUsage.rss() - r0, 0);
    const quiet =
      (process.resourceUsage().minorPageFault - f0) * 1000 < CHUNK && grown * 1000 < CHUNK * 4096;
    if ((w >= 2 && quiet) || w >= 12) break;
  }
  const before = await received();
  const c0 = cpuNs();
  for (let c = 0; c < CHUNKS; c++) {
    emit(CHUNK);
    await flush();
  }
  const c1 = cpuNs();
  return [(c1 - c0) / (CHUNKS * CHUNK), (await received()) - before];
}

// begin+3 attrs+end, n times, on either tracer (both have this API).
function attrs3(tracer) {
  return (n) => {
    for (let i = 0; i < n; i++) {
      const s = tracer.startSpan('op');
      s.setAttribute('gen_ai.usage.input_tokens', i);
      s.setAttribute('gen_ai.request.model', 'gpt-4o');
      s.setAttribute('stream', true);
      s.end();
    }
  };
}

// A spanguard tracer sending to the sink, and the flush that ends a chunk;
// its slots populated at start (bench/rust/src/cpu.rs says why).
function spanguardTracer() {
  const sg = new spanguard.Tracer({ fromEnv: false, endpoint: URL_, maxQueueSize: 1 << 16, installSignalHandlers: false,
    prefaultSlots: true });
  return [sg, async () => {
    if (!(await sg.flush(60000))) throw new Error('flush timed out');
  }];
}

async function spanguardRun() {
  const [sg, flush] = spanguardTracer();
  const r = await measure(attrs3(sg), flush);
  await sg.close();
  return r;
}

async function bridgeRun() {
  const [sg, flush] = spanguardTracer();
  const provider = new BasicTracerProvider({ spanProcessors: [new SpanguardSpanProcessor(sg)] });
  const r = await measure(attrs3(provider.getTracer('bench')), flush);
  await provider.shutdown();
  return r;
}

async function otelRun() {
  // Its default of 30 requests in flight is less than a flush of a chunk
  // needs (a chunk is 40 batches of 512): the SDK then fails the export.
  const exporter = new OTLPTraceExporter({ url: URL_, concurrencyLimit: 256 });
  const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter, { maxQueueSize: 1 << 16 })] });
  const ot = provider.getTracer('bench');
  const r = await measure(attrs3(ot), () => provider.forceFlush());
  await provider.shutdown();
  return r;
}

(async () => {
  const sg = [], br = [], ot = [];
  let sgGot = 0, brGot = 0, otGot = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const [a, ga] = await spanguardRun();
    sg.push(a); sgGot += ga;
    const [c, gc] = await bridgeRun();
    br.push(c); brGot += gc;
    const [b, gb] = await otelRun();
    ot.push(b); otGot += gb;
  }
  const peer = { peer: '@opentelemetry/sdk-trace-base + exporter-trace-otlp-proto', peer_cpu_ns: median(ot), peer_received: otGot };
  const common = { lang: 'Node.js', case: 'begin+3 attrs+end', spans: ROUNDS * CHUNKS * CHUNK, rounds: ROUNDS };
  console.log(JSON.stringify({ ...common, spanguard: 'Node binding', spanguard_cpu_ns: median(sg), spanguard_received: sgGot, ...peer }));
  console.log(JSON.stringify({
    ...common, spanguard: 'sdk-trace-base + spanguard bridge (SpanguardSpanProcessor)', spanguard_cpu_ns: median(br),
    spanguard_received: brGot, ...peer,
  }));
})().catch((e) => { console.error(e); process.exit(1); });
