'use strict';
/**
 * spanguard for Node.js: crash-proof span export through koffi (dlopen of
 * libspanguard.so). The library is found through SPANGUARD_LIB, else
 * ../../build/lib/libspanguard.so relative to this package (a spanguard
 * source tree after `make build`), else the system loader
 * (libspanguard.so.0). A thin skin: all logic is in the C library.
 *
 * The library's own signal handlers are OFF by default here (Node owns
 * signals); call installProcessHooks() to flush on SIGTERM/SIGINT/beforeExit.
 */
const koffi = require('koffi');
const path = require('path');
const { AsyncLocalStorage } = require('async_hooks');

const KIND = { UNSPECIFIED: 0, INTERNAL: 1, SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 };
const STATUS = { UNSET: 0, OK: 1, ERROR: 2 };
const VALUE = { STRING: 1, INT: 2, DOUBLE: 3, BOOL: 4 };
const RESULT = { OK: 0, STALE_SPAN: 3, ALREADY_ENDED: 4, SHUT_DOWN: 5, TIMEOUT: 8, INVALID_TRACEPARENT: 10, INVALID_CONFIG: 11 };
const TRACEPARENT_SIZE = 56;

let lib = null;

function candidates() {
  if (process.env.SPANGUARD_LIB) return [process.env.SPANGUARD_LIB];
  return [path.resolve(__dirname, '..', '..', 'build', 'lib', 'libspanguard.so'), 'libspanguard.so.0'];
}

/** Loads libspanguard once and declares its functions. */
function load(libPath) {
  if (lib && !libPath) return lib;
  const errors = [];
  let handle = null;
  for (const candidate of libPath ? [libPath] : candidates()) {
    try {
      handle = koffi.load(candidate);
      break;
    } catch (e) {
      errors.push(`${candidate}: ${e.message}`);
    }
  }
  if (!handle) {
    throw new Error('spanguard: cannot load libspanguard. Set SPANGUARD_LIB to the path of libspanguard.so '
      + `(run \`make build\` in the spanguard tree for build/lib/libspanguard.so). Tried: ${errors.join('; ')}`);
  }
  koffi.opaque('spanguard_tracer');
  const Config = koffi.struct('spanguard_config', {
    struct_size: 'uint32_t', protocol: 'uint32_t', compression: 'uint32_t', full_policy: 'uint32_t',
    service_name: 'const char *', resource_attributes: 'const char *', endpoint: 'const char *',
    headers: 'const char *', sink_dir: 'const char *', spool_dir: 'const char *',
    request_timeout_ms: 'uint32_t', schedule_delay_ms: 'uint32_t', max_queue_size: 'uint32_t',
    max_export_batch_size: 'uint32_t', export_timeout_ms: 'uint32_t', max_open_spans: 'uint32_t',
    full_wait_ms: 'uint32_t', install_signal_handlers: 'uint32_t', flight_recorder: 'uint32_t',
    spool_max_mib: 'uint32_t', signal_flush_timeout_ms: 'uint32_t', exporter_max_cpu_percent: 'uint32_t',
  });
  const counterNames = ['spans_begun', 'spans_ended', 'spans_exported', 'queue_depth', 'spans_open',
    'dropped_buffer_full', 'dropped_export_failed', 'dropped_rejected', 'dropped_spool_overflow',
    'spans_unended_at_shutdown', 'batches_sent', 'batches_failed', 'bytes_sent', 'retries',
    'attributes_dropped', 'events_dropped', 'links_dropped', 'values_truncated', 'utf8_replaced',
    'spooled_batches', 'spooled_spans', 'replayed_batches', 'replayed_spans', 'spool_bytes', 'recovered_spans'];
  const counterFields = { struct_size: 'uint32_t', _reserved: 'uint32_t' };
  for (const n of counterNames) counterFields[n] = 'uint64_t';
  koffi.struct('spanguard_counters', counterFields);
  koffi.struct('spanguard_attribute', {
    key: 'const char *', key_len: 'size_t', type_: 'uint32_t', bool_value: 'bool', int_value: 'int64_t',
    double_value: 'double', string_value: 'const char *', string_len: 'size_t',
  });
  const f = (proto) => handle.func(proto);
  lib = {
    counterNames,
    Config,
    version: f('const char *spanguard_version(void)'),
    strerror: f('const char *spanguard_strerror(uint32_t code)'),
    isOk: f('bool spanguard_result_is_ok(uint32_t code)'),
    configInit: f('uint32_t spanguard_config_init(_Out_ spanguard_config *cfg, size_t cfg_size)'),
    tracerNew: f('uint32_t spanguard_tracer_new(const spanguard_config *cfg, _Out_ spanguard_tracer **out)'),
    tracerNewFromEnv: f('uint32_t spanguard_tracer_new_from_env(const spanguard_config *cfg, _Out_ spanguard_tracer **out)'),
    tracerFree: f('void spanguard_tracer_free(spanguard_tracer *t)'),
    flush: f('uint32_t spanguard_flush(spanguard_tracer *t, uint32_t timeout_ms)'),
    shutdown: f('uint32_t spanguard_shutdown(spanguard_tracer *t, uint32_t timeout_ms)'),
    stats: f('uint32_t spanguard_stats(spanguard_tracer *t, _Inout_ spanguard_counters *out)'),
    begin: f('uint32_t spanguard_span_begin(spanguard_tracer *t, const char *name, size_t len, uint64_t parent, uint32_t kind, _Out_ uint64_t *out)'),
    beginRemote: f('uint32_t spanguard_span_begin_remote(spanguard_tracer *t, const char *name, size_t len, const char *tp, size_t tp_len, uint32_t kind, _Out_ uint64_t *out)'),
    traceparent: f('uint32_t spanguard_span_traceparent(uint64_t span, _Out_ uint8_t *buf, size_t len)'),
    setString: f('uint32_t spanguard_span_set_string(uint64_t span, const char *k, size_t kl, const char *v, size_t vl)'),
    setInt: f('uint32_t spanguard_span_set_int(uint64_t span, const char *k, size_t kl, int64_t v)'),
    setDouble: f('uint32_t spanguard_span_set_double(uint64_t span, const char *k, size_t kl, double v)'),
    setBool: f('uint32_t spanguard_span_set_bool(uint64_t span, const char *k, size_t kl, bool v)'),
    addEvent: f('uint32_t spanguard_span_add_event(uint64_t span, const char *n, size_t nl, uint64_t time, const spanguard_attribute *attrs, size_t count)'),
    setStatus: f('uint32_t spanguard_span_set_status(uint64_t span, uint32_t code, const char *m, size_t ml)'),
    end: f('uint32_t spanguard_span_end(uint64_t span)'),
  };
  return lib;
}

/** A failed spanguard call; `code` is the spanguard_result. */
class SpanguardError extends Error {
  constructor(code, op) {
    super(`spanguard: ${op}: ${load().strerror(code)} (code ${code})`);
    this.code = code;
  }
}

// The codes that mean success (OK and the notices TRUNCATED, UTF8_REPLACED,
// PARENT_STALE, NON_RECORDING): spanguard_result_is_ok in JavaScript, so that
// a check is not a second FFI call per call (a test compares the two).
const OK_CODES = new Set([0, 15, 16, 17, 18]);
const isOk = (code) => OK_CODES.has(code);

function check(code, op) {
  if (!isOk(code)) throw new SpanguardError(code, op);
  return code;
}

const bytes = (s) => Buffer.byteLength(s, 'utf8');
const storage = new AsyncLocalStorage();

/** A started span. End it once (`end()`), or use `tracer.withSpan`. */
class Span {
  constructor(tracer, handle, name) {
    this.tracer = tracer;
    this.handle = handle;
    this.name = name;
    this.ended = false;
  }

  setAttribute(key, value) {
    const L = load();
    const kl = bytes(key);
    let code;
    if (typeof value === 'boolean') code = L.setBool(this.handle, key, kl, value);
    else if (typeof value === 'bigint') code = L.setInt(this.handle, key, kl, value);
    else if (typeof value === 'number' && Number.isInteger(value)) code = L.setInt(this.handle, key, kl, value);
    else if (typeof value === 'number') code = L.setDouble(this.handle, key, kl, value);
    else {
      const v = String(value);
      code = L.setString(this.handle, key, kl, v, bytes(v));
    }
    check(code, `setAttribute(${key})`);
    return this;
  }

  setAttributes(attrs) {
    for (const [k, v] of Object.entries(attrs || {})) this.setAttribute(k, v);
    return this;
  }

  addEvent(name, attrs = {}) {
    const list = Object.entries(attrs).map(([key, value]) => {
      const a = { key, key_len: bytes(key), type_: VALUE.STRING, bool_value: false, int_value: 0, double_value: 0, string_value: null, string_len: 0 };
      if (typeof value === 'boolean') Object.assign(a, { type_: VALUE.BOOL, bool_value: value });
      else if (typeof value === 'number' && Number.isInteger(value)) Object.assign(a, { type_: VALUE.INT, int_value: value });
      else if (typeof value === 'number') Object.assign(a, { type_: VALUE.DOUBLE, double_value: value });
      else Object.assign(a, { string_value: String(value), string_len: bytes(String(value)) });
      return a;
    });
    check(load().addEvent(this.handle, name, bytes(name), 0, list.length ? list : null, list.length), 'addEvent');
    return this;
  }

  setStatus(code, message = '') {
    check(load().setStatus(this.handle, code, message, bytes(message)), 'setStatus');
    return this;
  }

  recordException(err) {
    const message = err && err.message ? err.message : String(err);
    this.addEvent('exception', { 'exception.type': (err && err.name) || 'Error', 'exception.message': message });
    return this.setStatus(STATUS.ERROR, message);
  }

  /** The W3C traceparent, to pass to another process. */
  traceparent() {
    const buf = Buffer.alloc(TRACEPARENT_SIZE);
    check(load().traceparent(this.handle, buf, TRACEPARENT_SIZE), 'traceparent');
    return buf.toString('utf8', 0, TRACEPARENT_SIZE - 1);
  }

  end() {
    if (this.ended) return;
    this.ended = true;
    const code = load().end(this.handle);
    if (code !== RESULT.SHUT_DOWN) check(code, `end(${this.name})`);
  }
}

const SETTINGS = {
  serviceName: 'service_name', resourceAttributes: 'resource_attributes', endpoint: 'endpoint',
  headers: 'headers', sinkDir: 'sink_dir', spoolDir: 'spool_dir', requestTimeoutMs: 'request_timeout_ms',
  scheduleDelayMs: 'schedule_delay_ms', maxQueueSize: 'max_queue_size',
  maxExportBatchSize: 'max_export_batch_size', exportTimeoutMs: 'export_timeout_ms',
  maxOpenSpans: 'max_open_spans', flightRecorder: 'flight_recorder',
  installSignalHandlers: 'install_signal_handlers', spoolMaxMib: 'spool_max_mib',
  signalFlushTimeoutMs: 'signal_flush_timeout_ms', exporterMaxCpuPercent: 'exporter_max_cpu_percent',
};

/** A spanguard tracer. */
class Tracer {
  /**
   * @param {object} [options] serviceName, endpoint, headers ({name: value} or "n=v,..."), sinkDir,
   *   spoolDir, protocol ('http/protobuf'|'http/json'), compression ('none'|'gzip'), scheduleDelayMs,
   *   spoolMaxMib, signalFlushTimeoutMs, exporterMaxCpuPercent (1..100, the exporter thread's CPU cap),
   *   fromEnv (default true: OTEL_* and SPANGUARD_* variables apply on top), installSignalHandlers (default false).
   */
  constructor(options = {}) {
    const L = load();
    const cfg = {};
    check(L.configInit(cfg, koffi.sizeof('spanguard_config')), 'config_init');
    cfg.install_signal_handlers = 0;
    for (const [k, v] of Object.entries(options)) {
      if (k === 'fromEnv') continue;
      if (k === 'protocol') cfg.protocol = v === 'http/json' ? 1 : 0;
      else if (k === 'compression') cfg.compression = v === 'gzip' ? 1 : 0;
      else if (k === 'headers' || k === 'resourceAttributes') {
        cfg[SETTINGS[k]] = typeof v === 'object' ? Object.entries(v).map(([a, b]) => `${a}=${b}`).join(',') : v;
      } else if (SETTINGS[k]) cfg[SETTINGS[k]] = typeof v === 'boolean' ? Number(v) : v;
      else throw new TypeError(`unknown spanguard option ${k}`);
    }
    const out = [null];
    const create = options.fromEnv === false ? L.tracerNew : L.tracerNewFromEnv;
    check(create(cfg, out), 'tracer_new');
    this.ptr = out[0];
    this.closed = false;
  }

  live() {
    if (this.closed) throw new SpanguardError(RESULT.SHUT_DOWN, 'tracer closed');
    return this.ptr;
  }

  /** Starts a span: a child of `parent`, else of the current span (withSpan), else a new trace. */
  startSpan(name, { kind = KIND.INTERNAL, parent, attributes, traceparent } = {}) {
    const L = load();
    const out = [0];
    let code;
    if (traceparent && !parent) {
      code = L.beginRemote(this.live(), name, bytes(name), traceparent, bytes(traceparent), kind, out);
    } else {
      const p = parent || (traceparent ? null : storage.getStore());
      code = L.begin(this.live(), name, bytes(name), p && p.tracer === this ? p.handle : 0, kind, out);
    }
    check(code, `startSpan(${name})`);
    const span = new Span(this, out[0], name);
    if (attributes) span.setAttributes(attributes);
    return span;
  }

  /** Runs `fn(span)` (sync or async) inside a span that is current for everything it awaits. */
  async withSpan(name, fn, options = {}) {
    const span = this.startSpan(name, options);
    try {
      return await storage.run(span, () => fn(span));
    } catch (err) {
      try { span.recordException(err); } catch (_) { /* keep the application's error */ }
      throw err;
    } finally {
      span.end();
    }
  }

  /** Resolves true when every span ended before the call was exported in time. */
  flush(timeoutMs = 5000) {
    const ptr = this.live();
    return new Promise((resolve, reject) => {
      load().flush.async(ptr, timeoutMs, (err, code) => {
        if (err) return reject(err);
        if (code === RESULT.TIMEOUT) return resolve(false);
        try { check(code, 'flush'); resolve(true); } catch (e) { reject(e); }
      });
    });
  }

  /** Flush, export open spans (marked unended), stop. Safe to call twice. */
  shutdown(timeoutMs = 5000) {
    if (this.closed) return Promise.resolve(true);
    return new Promise((resolve, reject) => {
      load().shutdown.async(this.ptr, timeoutMs, (err, code) => {
        if (err) return reject(err);
        if (code === RESULT.SHUT_DOWN) return resolve(true);
        if (code === RESULT.TIMEOUT) return resolve(false);
        try { check(code, 'shutdown'); resolve(true); } catch (e) { reject(e); }
      });
    });
  }

  /** Shuts down and frees the tracer. Safe to call twice. */
  async close() {
    if (this.closed) return;
    await this.shutdown();
    this.closed = true;
    load().tracerFree(this.ptr);
  }

  stats() {
    const L = load();
    const counters = { struct_size: 8 + 8 * L.counterNames.length, _reserved: 0 };
    for (const n of L.counterNames) counters[n] = 0;
    check(L.stats(this.live(), counters), 'stats');
    const out = {};
    for (const n of L.counterNames) out[n] = Number(counters[n]);
    return out;
  }

  /**
   * Flushes on SIGTERM/SIGINT (then re-raises with Node's default handling,
   * so the process ends as it would have) and on beforeExit.
   */
  installProcessHooks({ timeoutMs = 3000, signals = ['SIGTERM', 'SIGINT'] } = {}) {
    for (const sig of signals) {
      const handler = async () => {
        process.removeListener(sig, handler);
        try { await this.shutdown(timeoutMs); } finally { process.kill(process.pid, sig); }
      };
      process.on(sig, handler);
    }
    process.once('beforeExit', () => { this.shutdown(timeoutMs).catch(() => {}); });
    return this;
  }
}

/** The span of the innermost withSpan around the caller, or undefined. */
const currentSpan = () => storage.getStore();

module.exports = { Tracer, Span, SpanguardError, KIND, STATUS, RESULT, currentSpan, load, isOk, version: () => load().version() };
