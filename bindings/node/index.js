'use strict';
/**
 * spanguard for Node.js: crash-proof span export through a small N-API
 * addon over libspanguard. Both ship in this package, built for linux-x64
 * and linux-arm64 (glibc), under prebuilds/<platform>/, the one for this
 * process.arch picked at load. A thin skin: all logic is in the C
 * library.
 *
 * The library's crash handlers are OFF by default here (Node owns
 * signals); the process hooks, JavaScript listeners, flush on
 * SIGTERM/SIGINT/beforeExit instead, on by default (installProcessHooks),
 * with the library's termination watchdog under them for where no
 * listener acts (see the Tracer constructor).
 */
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { AsyncLocalStorage } = require('async_hooks');
const { EventEmitter } = require('events');
const { isMainThread } = require('worker_threads');

// @opentelemetry/api's SpanKind numbers, so that its SpanKind.SERVER means
// what KIND.SERVER does (a bare number cannot say which it is); OTLP's
// count one more, from UNSPECIFIED = 0 (see kindOf). STATUS's are both
// OTLP's and @opentelemetry/api's SpanStatusCode.
const KIND = { INTERNAL: 0, SERVER: 1, CLIENT: 2, PRODUCER: 3, CONSUMER: 4 };
const OTLP_KIND_INTERNAL = 1;
const STATUS = { UNSET: 0, OK: 1, ERROR: 2 };
// spanguard_span_add_link_ids' link_flags (SPANGUARD_LINK_REMOTE, _LOCAL).
const LINK_REMOTE = 1;
const LINK_LOCAL = 2;
// spanguard_config.install_signal_handlers: SPANGUARD_SIGNAL_HANDLERS_TERMINATION,
// the termination watchdog without the crash handlers.
const SIGNAL_HANDLERS_TERMINATION = 2;
// spanguard_span_options.flags (SPANGUARD_SPAN_OPTION_*).
const SPAN_OPTION = { PARENT_IS_REMOTE: 1, LIMITED_BY_CALLER: 2 };
const RESULT = {
  OK: 0, NULL_ARGUMENT: 1, INVALID_ARGUMENT: 2, STALE_SPAN: 3, ALREADY_ENDED: 4, SHUT_DOWN: 5,
  BUFFER_FULL: 6, LIMIT_REACHED: 7, TIMEOUT: 8, BUFFER_TOO_SMALL: 9, INVALID_TRACEPARENT: 10,
  INVALID_CONFIG: 11, IO: 12, TOO_MANY_TRACERS: 13, PANIC: 14, TRUNCATED: 15, UTF8_REPLACED: 16,
  PARENT_STALE: 17, NON_RECORDING: 18, SPOOLED: 19, WOULD_WAIT: 20, EMPTY_KEY: 21, INVALID_ANY_VALUE: 22,
};
// What the library tells of its spans (spanguard_event): the error
// callback's events, each with a message. New ones are added after the
// last; one this table does not know is emitted as 'UNKNOWN' with its number.
const EVENT = {
  BATCH_FAILED: 1, BATCH_SPOOLED: 2, SPOOL_OVERFLOW: 3, BATCH_REPLAYED: 4, SPANS_REJECTED: 5,
  EXPORTER_PANICKED: 6, FILE_SET_ASIDE: 7, BACKEND_WARNING: 8, SETTING_IGNORED: 9, BUFFER_FULL: 10,
  VALUES_CUT: 11, VALUES_WAITED: 12, FILE_MISCOUNTED: 13, SPANS_RECOVERED: 14,
};
const EVENT_NAMES = new Map(Object.entries(EVENT).map(([name, code]) => [code, name]));

/**
 * Every tracer's news, as 'event' ({ code, name, message }): a batch lost
 * or spooled, a backend's warning, a setting ignored... (the error callback:
 * README, "The error callback"). Emitted on the main thread, a tick or so
 * after the exporter told it; it keeps no event loop alive. With no
 * listener, the library's stderr lines are all that is said.
 */
const events = new EventEmitter();

/** The name of event `code` (one of EVENT), 'UNKNOWN' for a newer library's. */
const eventName = (code) => EVENT_NAMES.get(code) ?? 'UNKNOWN';

function emitEvent(code, message) {
  events.emit('event', { code, name: eventName(code), message });
}

// The platforms this package carries a native build for, and where.
const PREBUILDS = { 'linux-x64': 'linux-x64', 'linux-arm64': 'linux-arm64' };

function isMusl() {
  // glibc's version is in the report header; musl has none.
  const report = typeof process.report?.getReport === 'function' ? process.report.getReport() : null;
  return Boolean(report && report.header && !report.header.glibcVersionRuntime);
}

/** The directory of the native build for this platform; throws a clear error where there is none. */
function prebuildDir() {
  const platform = `${process.platform}-${process.arch}`;
  const dir = PREBUILDS[platform];
  if (!dir) {
    throw new Error(`spanguard: no native build for ${platform}: this package ships libspanguard for `
      + `${Object.keys(PREBUILDS).join(', ')} only. Build spanguard from source on this platform.`);
  }
  if (process.platform === 'linux' && isMusl()) {
    throw new Error('spanguard: the bundled native build is for glibc Linux; this Node.js runs on musl '
      + '(Alpine?). Use a glibc-based image, or build spanguard from source.');
  }
  const full = path.join(__dirname, 'prebuilds', dir);
  if (!fs.existsSync(path.join(full, 'spanguard.node'))) {
    // A bundler (esbuild --bundle, webpack) copies this file's code into
    // the bundle, in another directory, without the addon: the prebuilds
    // are looked for beside the bundle. Saying there that the package "was
    // packed without its build" sent the user to rebuild spanguard.
    if (!fs.existsSync(path.join(__dirname, 'prebuilds'))) {
      throw new Error(`spanguard: its native addon cannot be bundled, and this code runs from a bundle (${__dirname} `
        + 'has no prebuilds/, as the spanguard package has): mark spanguard external in the bundler '
        + '(esbuild --external:spanguard, webpack\'s externals) and install the spanguard package where the bundle '
        + 'runs (in a node_modules it finds), for the bundle to require it there.');
    }
    // A package packed by `make dist-node` alone carries this machine's
    // build only: say so, rather than a bare "cannot find module".
    throw new Error(`spanguard: this copy of the package was packed without its ${platform} build `
      + `(${full} has no spanguard.node): install a release built with \`make dist\`, or build spanguard `
      + 'from source on this platform.');
  }
  return full;
}

let native = null;
// Where begin* write the new span's handle ([hi, lo]) and end writes the
// ended span's ids ([2..10], as the addon's end_keeping_ids says).
const OUT = new Uint32Array(11);

/**
 * Loads the addon (and with it libspanguard) once; the addon, for this
 * module alone: its calls take raw handles and pointers, and its init()
 * swaps the buffer handles are written to.
 */
function addon() {
  if (native) return native;
  const file = path.join(prebuildDir(), 'spanguard.node');
  let loaded;
  try {
    loaded = require(file);
  } catch (e) {
    throw new Error(`spanguard: cannot load its native addon ${file}: ${e.message}`);
  }
  loaded.init(OUT);
  loaded.setEventSink(emitEvent);
  native = loaded;
  return native;
}

/** The API's load(): loads the addon, so that a platform without a build fails early; gives nothing back. */
function load() {
  addon();
}

/** A failed spanguard call; `code` is the spanguard_result. */
class SpanguardError extends Error {
  /** `detail`: the library's own sentence, e.g. which variable was wrong. */
  constructor(code, op, detail) {
    super(`spanguard: ${op}: ${addon().strerror(code)} (code ${code})${detail ? `: ${detail}` : ''}`);
    this.name = 'SpanguardError';
    this.code = code;
  }
}

// The codes that mean success (OK and the notices TRUNCATED, UTF8_REPLACED,
// PARENT_STALE, NON_RECORDING, SPOOLED): spanguard_result_is_ok in
// JavaScript, so that a check is not a second native call (a test compares
// the two). The addon's span calls return undefined for OK (making no
// number saves a call into N-API on every crossing).
const isOk = (code) => code === undefined || code === 0 || (code >= 15 && code <= 19);

/** How a flush or shutdown ended: 'delivered', 'spooled' (done, but some spans
 * only reached the spool directory while the backend was down: safe on disk,
 * sent later) or 'timeout'. */
function flushStatus(code, op) {
  if (code === RESULT.TIMEOUT) return 'timeout';
  check(code, op);
  return code === RESULT.SPOOLED ? 'spooled' : 'delivered';
}

function check(code, op) {
  if (!isOk(code)) throw new SpanguardError(code, op);
  return code;
}

// The addon's own notice (ADDON_VALUE_LEFT_OUT): the call succeeded and
// left out values OpenTelemetry does not take, as its setAttribute does
// (how many: native.leftOut(), counted in stats().values_rejected).
const VALUE_LEFT_OUT = 100;
// This file's own: a time that is no time (NaN, negative, a string, an
// invalid Date) was taken as now, counted in stats().values_rejected and
// warned once, never thrown, as the Python binding does: an end() or a
// recordException() in an error handler must not fail over a timestamp.
const TIME_LEFT_OUT = 102;

/**
 * A wrong argument of one of spanguard's own calls (a kind, a status, a
 * count): a programming error, thrown at the call as the Python binding
 * raises TypeError or ValueError and the Go one returns an error
 * (INVALID_ARGUMENT). Values from the program's data (attribute values
 * and keys, times, names, headers) never throw: see SOFT.
 */
function badArgument(op, name, expected, v) {
  return new SpanguardError(RESULT.INVALID_ARGUMENT, op, `${name}: expected ${expected}, got ${described(v)}`);
}

/**
 * The OTLP number of a span kind, the one rule of every binding: one of
 * KIND (@opentelemetry/api's SpanKind, passed as it is), or its name in
 * any case ('client', 'SERVER'); undefined is INTERNAL, as OpenTelemetry's
 * default; anything else throws (badArgument).
 */
function kindOf(kind, op) {
  if (kind === undefined) return OTLP_KIND_INTERNAL;
  const k = typeof kind === 'string' && hasOwn(KIND, kind.toUpperCase()) ? KIND[kind.toUpperCase()] : kind;
  if (Number.isInteger(k) && k >= KIND.INTERNAL && k <= KIND.CONSUMER) return k + 1;
  throw badArgument(op, 'kind', "one of KIND (@opentelemetry/api's SpanKind, 0 to 4) or its name", kind);
}

// What a recording call may answer when the library did less than asked
// and the program is not wrong: counted in stats() and warned about once
// per kind (process.emitWarning), never thrown. OpenTelemetry's API never
// throws from a span, and an agent must not crash because every slot is
// taken, a limit was reached or a header from outside was bad. The
// Python binding does the same.
const SOFT = new Map([
  [RESULT.LIMIT_REACHED, "a span's attribute, event or link limit was reached; the rest were dropped "
    + '(counted in stats(): attributes_dropped, events_dropped, links_dropped)'],
  [RESULT.BUFFER_FULL, 'every span slot was taken; spans are not recorded (counted in stats().dropped_buffer_full; '
    + 'raise maxOpenSpans)'],
  [RESULT.SHUT_DOWN, 'the tracer is shut down; spans begun now are not recorded'],
  [RESULT.STALE_SPAN, 'a span was used after it ended; the call did nothing (spans end once)'],
  [RESULT.ALREADY_ENDED, 'a span was used after it ended; the call did nothing (spans end once)'],
  [RESULT.INVALID_TRACEPARENT, 'a traceparent was not valid W3C text; the span began a new trace '
    + '(or the link was left out)'],
  [RESULT.EMPTY_KEY, 'an attribute had an empty key, which OpenTelemetry forbids; it was left out '
    + '(counted in stats().attributes_dropped)'],
  [VALUE_LEFT_OUT, 'an attribute value was not one OpenTelemetry takes (a function, a symbol, a Date, a Map, '
    + 'a class instance, a BigInt past int64, or a plain object or array holding one or more than a million values); '
    + 'it was left out (counted in stats().values_rejected). Plain objects and mixed or nested arrays are otherwise '
    + 'sent whole, as OpenTelemetry\'s complex attribute values (AnyValue); one nested deeper than the depth limit '
    + '(64), or holding itself, arrives cut there, the empty value in place of what is deeper (counted in '
    + 'stats().values_truncated)'],
  [RESULT.INVALID_ANY_VALUE, 'a complex attribute value was refused by the library; the call set nothing'],
  [TIME_LEFT_OUT, 'a time was not one spanguard takes (an HrTime [seconds, nanoseconds], a Date or epoch '
    + 'milliseconds, not negative); now was used (counted in stats().values_rejected)'],
]);
const warned = new Set();

// A span's and a tracer's internals (the span's native handle, ended flag,
// kept ids and watch; the tracer's native pointer, closed flag, flushes in
// flight, counts) are #private fields: a program, or an instrumentation
// that spreads, copies or serialises what it is given, could read and
// overwrite them as properties, and then ended another span, lost one, or
// freed a tracer still in use. What this module needs of them beyond
// their own class goes through these functions, set in the classes'
// static blocks (the only code that can read a #field), and otel.js's
// through `internal` (read-only, but for its log record counts).
// A Span's: whether `p` is a span of `tracer`; its handle's two words; the
// trace flags kept at its end (0 while open: `kept`); its tracestate; the
// traceparent of the ids it kept; whether it ended; watch (`young`).
let isSpanOf, spanHi, spanLo, spanKept, spanTraceState, keptTraceparentOf, spanEnded, watch;
// A Tracer's: whether it is closed; counts values it left out in
// stats().values_rejected; adds a log record processor's counts to its
// stats() (otel.js).
let tracerClosed, countRejected, addLogRecordCounts;

/**
 * Throws for a failure of the program's own making; warns once for the rest
 * (SOFT). Values left out are counted in `tracer`'s stats().values_rejected.
 */
function recorded(code, op, tracer) {
  if (isOk(code)) return;
  if (code === VALUE_LEFT_OUT && tracer) countRejected(tracer, native.leftOut());
  const why = SOFT.get(code);
  if (why === undefined) throw new SpanguardError(code, op);
  if (warned.has(why)) return;
  warned.add(why);
  process.emitWarning(`spanguard: ${why}`, { code: 'SPANGUARD_NOT_RECORDED', detail: `${op}: code ${code}` });
}

/**
 * `recorded` for a call that set attributes on the span of handle (hi,
 * lo), of `tracer`: what it left out is counted in the span's dropped
 * attributes too, as the Python binding counts it and the library counts
 * an empty key. Counted in values_rejected alone, the span arrived saying
 * it had lost nothing.
 */
function recordedOnSpan(code, op, hi, lo, tracer) {
  if (code === VALUE_LEFT_OUT) native.addDroppedCounts(hi, lo, native.leftOut(), 0, 0);
  recorded(code, op, tracer);
}

/**
 * What became of the one event or link a call added, from its code (warned
 * about or thrown as `recorded` does): true, the span holds it (its text
 * cut or its UTF-8 mended, maybe, or an attribute value left out); false,
 * refused and counted in the span's dropped events or links (its limit, or
 * no room left in the payload pool for it); null, neither (an invalid link,
 * an ended span, a shut-down tracer, a span that records nothing).
 */
function held(code, op, tracer) {
  recorded(code, op, tracer);
  if (code === undefined || code === RESULT.OK || code === RESULT.TRUNCATED || code === RESULT.UTF8_REPLACED
    || code === VALUE_LEFT_OUT) return true;
  return code === RESULT.LIMIT_REACHED ? false : null;
}

const storage = new AsyncLocalStorage();

/**
 * A time as (seconds, nanoseconds) since the epoch: an OpenTelemetry HrTime
 * ([s, ns]), a Date, or milliseconds (a number); absent: [0, 0], "now".
 * Anything else (NaN, negative, a string, an invalid Date) is now too,
 * rather than a time in the year 2262, counted in `tracer`'s
 * stats().values_rejected and warned once (TIME_LEFT_OUT), never thrown.
 */
function hrTime(t, tracer, op) {
  if (t === undefined || t === null) return [0, 0];
  if (Array.isArray(t)) {
    if (t.length === 2 && t[0] >= 0 && t[1] >= 0 && Number.isFinite(t[0]) && Number.isFinite(t[1])) return t;
  } else {
    const ms = t instanceof Date ? t.getTime() : typeof t === 'number' ? t : NaN;
    if (ms >= 0 && Number.isFinite(ms)) {
      const s = Math.floor(ms / 1000);
      return [s, Math.round((ms - s * 1000) * 1e6)];
    }
  }
  countRejected(tracer, 1);
  recorded(TIME_LEFT_OUT, op);
  return [0, 0];
}

// int64's bounds, for numbers and BigInts that are integers beyond them:
// a double, or (a BigInt) left out, never wrapped or saturated.
const INT64_BOUND = 2 ** 63;
const INT64_MIN_BIG = -(2n ** 63n);
const INT64_MAX_BIG = 2n ** 63n - 1n;

/**
 * A dropped-attribute count another SDK gives (an event's or link's
 * droppedAttributesCount) as the addon takes it: a whole number from 0 to
 * 2^32-1; anything else (undefined, NaN, negative) is 0.
 */
function droppedCount(n) {
  return typeof n === 'number' && n > 0 ? Math.min(Math.floor(n), 0xffffffff) : 0;
}

/**
 * `attrs` when it is attributes (an object of them, or undefined or null:
 * none); anything else (a string, a number, an array) is no attributes:
 * counted in `tracer`'s stats().values_rejected and warned once, never
 * thrown, as the Python binding takes a set_attributes() of no mapping.
 * (Object.keys gave a string's characters as keys: 'ab' set 0 and 1.)
 */
function attributesOf(attrs, tracer, op) {
  if (attrs === undefined || attrs === null || (typeof attrs === 'object' && !Array.isArray(attrs))) return attrs;
  countRejected(tracer, 1);
  recorded(VALUE_LEFT_OUT, op);
  return undefined;
}

/** [keys, values] of an attribute object, for one native call. */
function split(attrs) {
  if (!attrs) return [null, null];
  const keys = Object.keys(attrs);
  if (keys.length === 0) return [null, null];
  return [keys, keys.map((k) => attrs[k])];
}

// The most attributes one native call takes (SPANGUARD_MAX_ATTRIBUTES); a
// span holds as many as its limit allows, set in as many calls as needed.
const MAX_ATTRIBUTES_PER_CALL = 128;

/** Sets keys[from..] and values[from..] on the span of handle (hi, lo), MAX_ATTRIBUTES_PER_CALL a call. */
function setAll(hi, lo, tracer, keys, values, from) {
  for (let i = from; i < keys.length; i += MAX_ATTRIBUTES_PER_CALL) {
    const end = i + MAX_ATTRIBUTES_PER_CALL;
    const whole = i === 0 && end >= keys.length;
    const code = native.setAttributes(hi, lo, whole ? keys : keys.slice(i, end), whole ? values : values.slice(i, end));
    recordedOnSpan(code, 'setAttributes', hi, lo, tracer);
  }
}

// The most attributes beginKV takes as arguments (KV_PAIRS in the addon).
const KV_PAIRS = 8;
// beginKV's answer when the attributes are too many for it.
const TOO_MANY_FOR_KV = -1;
const hasOwn = (o, k) => Object.prototype.hasOwnProperty.call(o, k);

/**
 * Begins a span with the attributes of object `attrs` in one native call,
 * passed as arguments (key, value, key, value...) rather than two arrays,
 * whose elements the addon would read one N-API call at a time. Returns
 * the call's code, or TOO_MANY_FOR_KV (nothing begun) when `attrs` has
 * more than KV_PAIRS keys.
 */
function beginKV(N, ptr, name, hi, lo, kind, attrs) {
  // for...in, not Object.keys (an array a span); own keys only, as
  // Object.keys has them.
  let k0, v0, k1, v1, k2, v2, k3, v3, k4, v4, k5, v5, k6, v6, k7, v7;
  let n = 0;
  for (const k in attrs) {
    if (!hasOwn(attrs, k)) continue;
    const v = attrs[k];
    switch (n++) {
      case 0: k0 = k; v0 = v; break;
      case 1: k1 = k; v1 = v; break;
      case 2: k2 = k; v2 = v; break;
      case 3: k3 = k; v3 = v; break;
      case 4: k4 = k; v4 = v; break;
      case 5: k5 = k; v5 = v; break;
      case 6: k6 = k; v6 = v; break;
      case 7: k7 = k; v7 = v; break;
      default: return TOO_MANY_FOR_KV;
    }
  }
  // A call of exactly as many arguments as pairs: the addon counts them.
  switch (n) {
    case 0: return N.begin(ptr, name, hi, lo, kind);
    case 1: return N.beginKV(ptr, name, hi, lo, kind, k0, v0);
    case 2: return N.beginKV(ptr, name, hi, lo, kind, k0, v0, k1, v1);
    case 3: return N.beginKV(ptr, name, hi, lo, kind, k0, v0, k1, v1, k2, v2);
    case 4: return N.beginKV(ptr, name, hi, lo, kind, k0, v0, k1, v1, k2, v2, k3, v3);
    case 5: return N.beginKV(ptr, name, hi, lo, kind, k0, v0, k1, v1, k2, v2, k3, v3, k4, v4);
    case 6: return N.beginKV(ptr, name, hi, lo, kind, k0, v0, k1, v1, k2, v2, k3, v3, k4, v4, k5, v5);
    case 7: return N.beginKV(ptr, name, hi, lo, kind, k0, v0, k1, v1, k2, v2, k3, v3, k4, v4, k5, v5, k6, v6);
    default: return N.beginKV(ptr, name, hi, lo, kind, k0, v0, k1, v1, k2, v2, k3, v3, k4, v4, k5, v5, k6, v6, k7, v7);
  }
}

/** A random span id (16 hex digits, not all zero). */
function newSpanId() {
  for (;;) {
    const id = crypto.randomBytes(8).toString('hex');
    if (id !== '0000000000000000') return id;
  }
}

const hex24 = (n) => n.toString(16).padStart(6, '0');

// A span's kept: 0, or the ended span's trace flags with 0x100 set (by the
// addon), and PASSES_THROUGH for a disabled tracer's span (which records
// nothing and passes its parent's context on).
const PASSES_THROUGH = 0x200;

// Spans of startSpan and withSpan let go of open (an exception path that
// skipped end(), a stream never read to its end, a withSpan whose fn never
// settles) are ended as they are garbage-collected, marked
// spanguard.unended, as the OpenTelemetry bridge ends the SDK spans it is
// given: open, each held one of the tracer's slots for good, and once they
// had taken every one nothing more was recorded.
//
// A FinalizationRegistry entry for every span cost about 40% of a span.
// Most spans end in the tick that began them (synchronous work) and can
// never be let go of open unnoticed: only a span still open once that
// tick is over needs watching. So startSpan only pushes the span onto
// `young` (and end() clears its place there); once a tick, setImmediate's
// check registers the spans still open and empties the list. setImmediate,
// not a microtask: microtasks run between the awaits of the very code that
// began the spans, which would register spans about to end in the same
// tick. A span begun and let go of in one tick is still open at the check
// (`young` holds it until then), so it is registered too.

// A span's watchedAt: its index in `young`, or one of these.
const UNWATCHED = -1;
const REGISTERED = -2;
let young = [];
// Whether registerStillOpen is scheduled (setImmediate).
let checkScheduled = false;

/**
 * Ends a collected span's spanguard span, marked unended. The held value
 * is its tracer and handle (never the Span, which would keep it alive).
 * Its tracer closed: the shutdown exported the span already, and the
 * handle may name a span of a tracer made since. Shut down but not
 * closed: the calls answer SHUT_DOWN (exported already) and are left at
 * that, unwarned. Nothing throws out of here, which would be an uncaught
 * exception in the program.
 */
const COLLECTED_OPEN = new FinalizationRegistry((held) => {
  if (tracerClosed(held.tracer)) return;
  try {
    native.setBool(held.hi, held.lo, 'spanguard.unended', true);
    native.end(held.hi, held.lo);
  } catch (_) {
    // Nothing to tell: the span is gone, and no caller is waiting.
  }
});

/**
 * Takes an ended span (at `w`) off `young`. Spans mostly end in the reverse
 * order of their beginnings (a loop's span before the next begins, a child
 * before its parent): the last is popped, with any places of spans ended
 * before it, so that `young` stays short in a long synchronous loop rather
 * than holding a place for every span the tick began.
 */
function unwatchYoung(w) {
  if (w !== young.length - 1) {
    young[w] = undefined;
    return;
  }
  young.pop();
  while (young.length > 0 && young[young.length - 1] === undefined) young.pop();
}

/**
 * A started span. End it once (`end()`), or use `tracer.withSpan`. Begun
 * by a Tracer only (the package exports ExportedSpan, whose constructor
 * throws); its methods called on anything but a Span (a copy, a Proxy,
 * `this` bound to another object) throw a TypeError, the span untouched.
 */
class Span {
  // The span's tracer and native handle (its tracer and slot, its
  // generation), as the addon takes it.
  #tracer;
  #hi;
  #lo;
  #name;
  #ended = false;
  // The W3C tracestate the span began with or inherited, as far as
  // JavaScript knows it ('' for none).
  #traceState;
  // From its end on: the span's ids, three bytes a number (small integers,
  // stored unboxed), read by its end. Once exported, its handle names
  // another span, and OpenTelemetry's API wants an ended span's context
  // to stay the same and to parent spans still (Tracer's beginUnderEnded).
  #kept = 0;
  #i0 = 0; #i1 = 0; #i2 = 0; #i3 = 0;
  #i4 = 0; #i5 = 0; #i6 = 0; #i7 = 0;
  // Where it is watched until its end (`watch`): its index in `young`,
  // UNWATCHED or REGISTERED.
  #watchedAt = UNWATCHED;

  constructor(tracer, hi, lo, name, traceState) {
    this.#tracer = tracer;
    this.#hi = hi;
    this.#lo = lo;
    this.#name = name;
    this.#traceState = traceState;
  }

  static {
    isSpanOf = (p, tracer) => typeof p === 'object' && p !== null && #tracer in p && p.#tracer === tracer;
    spanHi = (span) => span.#hi;
    spanLo = (span) => span.#lo;
    spanKept = (span) => span.#kept;
    spanTraceState = (span) => span.#traceState;
    keptTraceparentOf = (span) => span.#keptTraceparent();
    spanEnded = (span) => span.#ended;

    /** The check once a tick: registers the spans of `young` still open (their ended ones are cleared). */
    const registerStillOpen = () => {
      checkScheduled = false;
      const spans = young;
      young = [];
      for (let i = 0; i < spans.length; i++) {
        const span = spans[i];
        if (span === undefined) continue;
        if (tracerClosed(span.#tracer)) {
          span.#watchedAt = UNWATCHED;
          continue;
        }
        span.#watchedAt = REGISTERED;
        // The span is its own unregister token (held weakly).
        COLLECTED_OPEN.register(span, { tracer: span.#tracer, hi: span.#hi, lo: span.#lo }, span);
      }
    };

    /** Watches `span` (just begun) until its tick is over: see `young`. */
    watch = (span) => {
      span.#watchedAt = young.length;
      young.push(span);
      if (!checkScheduled) {
        checkScheduled = true;
        setImmediate(registerStillOpen);
      }
    };
  }

  /** The name it has now (updateName renames it). */
  get name() {
    return this.#name;
  }

  /** The traceparent of the ids the span kept at its end. */
  #keptTraceparent() {
    const ids = hex24(this.#i0) + hex24(this.#i1) + hex24(this.#i2) + hex24(this.#i3)
      + hex24(this.#i4) + hex24(this.#i5) + hex24(this.#i6) + hex24(this.#i7);
    return `00-${ids.slice(0, 32)}-${ids.slice(32, 48)}-${(this.#kept & 0xff).toString(16).padStart(2, '0')}`;
  }

  setAttribute(key, value) {
    const N = native;
    if (typeof key !== 'string') key = textOf(key);
    let code;
    switch (typeof value) {
      case 'string': code = N.setString(this.#hi, this.#lo, key, value); break;
      case 'boolean': code = N.setBool(this.#hi, this.#lo, key, value); break;
      case 'bigint':
        if (value >= INT64_MIN_BIG && value <= INT64_MAX_BIG) code = N.setInt(this.#hi, this.#lo, key, value);
        else {
          countRejected(this.#tracer, 1); // beyond int64: never wrapped
          native.addDroppedCounts(this.#hi, this.#lo, 1, 0, 0);
          recorded(VALUE_LEFT_OUT, `setAttribute(${key})`);
        }
        break;
      case 'number':
        code = Number.isInteger(value) && value >= -INT64_BOUND && value < INT64_BOUND
          ? N.setInt(this.#hi, this.#lo, key, value) : N.setDouble(this.#hi, this.#lo, key, value);
        break;
      case 'undefined': return this; // ignored, as OpenTelemetry's setAttribute ignores it
      default:
        // null is ignored; the rest through the attribute-array call:
        // Arrays, Uint8Arrays (Buffers) and plain objects (complex values)
        // are taken; other objects, functions and symbols are not attribute
        // values: left out, counted, warned about once, never thrown.
        if (value === null) return this;
        code = N.setAttributes(this.#hi, this.#lo, [key], [value]);
    }
    if (code !== undefined) recordedOnSpan(code, `setAttribute(${key})`, this.#hi, this.#lo, this.#tracer);
    return this;
  }

  /** Sets several attributes in one native call (one per 128 attributes). */
  setAttributes(attrs) {
    const [keys, values] = split(attributesOf(attrs, this.#tracer, 'setAttributes'));
    if (keys) setAll(this.#hi, this.#lo, this.#tracer, keys, values, 0);
    return this;
  }

  /** setAttributes with the attributes as two lists, keys and values (the bridge's form). */
  setAttributeLists(keys, values) {
    setAll(this.#hi, this.#lo, this.#tracer, keys, values, 0);
    return this;
  }

  /** Renames the span (OpenTelemetry's updateName): it is exported with its last name. */
  updateName(name) {
    // A name that is not a string is its text, as for any recording call:
    // the addon would throw on it.
    if (typeof name !== 'string') name = textOf(name);
    recorded(native.updateName(this.#hi, this.#lo, name), 'updateName');
    this.#name = name;
    return this;
  }

  /** Adds an event, at `time` (HrTime, Date or epoch milliseconds; default now). */
  addEvent(name, attrs = {}, time = undefined) {
    this.tryAddEvent(name, attrs, time);
    return this;
  }

  /**
   * `addEvent`, answering what became of the event: true, the span holds it
   * (its name cut, maybe); false, refused and counted in the span's dropped
   * events (its event limit, or no room left in the payload pool); null,
   * neither (an ended span, a shut-down tracer, a span that records
   * nothing). For a bridge that must know which of those it passed on the
   * span holds.
   */
  tryAddEvent(name, attrs = {}, time = undefined, droppedAttributes = 0) {
    if (typeof name !== 'string') name = textOf(name);
    const [keys, values] = split(attributesOf(attrs, this.#tracer, 'addEvent'));
    const [s, ns] = hrTime(time, this.#tracer, 'addEvent');
    return held(native.addEvent(this.#hi, this.#lo, name, s, ns, keys, values, droppedCount(droppedAttributes)),
      'addEvent', this.#tracer);
  }

  /** Links this span to another, given as a W3C traceparent (and its tracestate, if any). */
  addLink(traceparent, attrs = {}, tracestate = '') {
    if (typeof traceparent !== 'string') traceparent = textOf(traceparent);
    if (typeof tracestate !== 'string') tracestate = tracestate === undefined || tracestate === null ? '' : textOf(tracestate);
    const [keys, values] = split(attributesOf(attrs, this.#tracer, 'addLink'));
    const code = native.addLink(this.#hi, this.#lo, traceparent, keys, values, tracestate);
    // Counted as the Python binding counts a traceparent that is no W3C text.
    if (code === RESULT.INVALID_TRACEPARENT) countRejected(this.#tracer, 1);
    recorded(code, 'addLink', this.#tracer);
    return this;
  }

  /**
   * Links this span to another given by its ids (hex, as an OpenTelemetry
   * SpanContext holds them), W3C trace flags and tracestate, and whether its
   * context was remote (`isRemote`: true, false, or undefined for not known),
   * which the export carries in the link's flags. A link whose ids are all
   * zero (an invalid context) is kept when it has attributes or a tracestate,
   * and left out (a warning, as for a bad traceparent) without either.
   */
  addLinkIds(traceId, spanId, traceFlags = 0, attrs = {}, tracestate = '', isRemote = undefined) {
    this.tryAddLinkIds(traceId, spanId, traceFlags, attrs, tracestate, isRemote);
    return this;
  }

  /**
   * `addLinkIds`, answering what became of the link as `tryAddEvent` does
   * (null too for a link left out as having nothing to record).
   */
  tryAddLinkIds(traceId, spanId, traceFlags = 0, attrs = {}, tracestate = '', isRemote = undefined,
    droppedAttributes = 0) {
    if (typeof tracestate !== 'string') tracestate = tracestate === undefined || tracestate === null ? '' : textOf(tracestate);
    const [keys, values] = split(attributesOf(attrs, this.#tracer, 'addLinkIds'));
    const linkFlags = isRemote === undefined || isRemote === null ? 0 : isRemote ? LINK_REMOTE : LINK_LOCAL;
    return held(native.addLinkIds(this.#hi, this.#lo, textOf(traceId), textOf(spanId), (traceFlags || 0) & 0xff, keys,
      values, tracestate, linkFlags, droppedCount(droppedAttributes)), 'addLinkIds', this.#tracer);
  }

  /**
   * Adds to the span's dropped counts what another SDK dropped before the span reached spanguard (the bridge).
   * Each count is a whole number from 0 to 4294967295; another value throws (INVALID_ARGUMENT), nothing added.
   */
  addDroppedCounts(attributes = 0, events = 0, links = 0) {
    const op = 'addDroppedCounts';
    recorded(native.addDroppedCounts(this.#hi, this.#lo, count(attributes, 'attributes', op), count(events, 'events', op),
      count(links, 'links', op)), op);
    return this;
  }

  /**
   * Drops the span's `events` oldest events and `links` oldest links, counted dropped unless `counted` is false
   * (the bridge counted them with addDroppedCounts as the SDK evicted them): what the bridge does when the SDK
   * evicted, past its limit, some it had passed on. Each count is a whole number from 0 to 4294967295; another
   * value throws (INVALID_ARGUMENT), nothing dropped.
   */
  dropOldest(events = 0, links = 0, counted = true) {
    const op = 'dropOldest';
    const drop = counted ? native.dropOldest : native.dropOldestUncounted;
    recorded(drop(this.#hi, this.#lo, count(events, 'events', op), count(links, 'links', op)), op);
    return this;
  }

  /**
   * Sets the status: one of STATUS, its name (any case), or OpenTelemetry's SpanStatus
   * ({ code, message }); anything else throws (badArgument), nothing set.
   */
  setStatus(status, message = '') {
    let code = status;
    if (status !== null && typeof status === 'object') {
      // OpenTelemetry's SpanStatus, { code, message }: its codes are ours.
      message = status.message;
      code = status.code;
    } else if (typeof status === 'string' && hasOwn(STATUS, status.toUpperCase())) code = STATUS[status.toUpperCase()];
    if (code !== STATUS.UNSET && code !== STATUS.OK && code !== STATUS.ERROR) {
      throw badArgument('setStatus', 'status', 'one of STATUS (0 to 2), its name or a SpanStatus', status);
    }
    message = message === undefined || message === null ? '' : textOf(message);
    recorded(native.setStatus(this.#hi, this.#lo, code, message), 'setStatus');
    return this;
  }

  /**
   * Records an exception as OpenTelemetry's recordException does (an
   * `exception` event with exception.type from its code or name, .message
   * and .stacktrace, at `time`) and, unlike it, sets status ERROR: a span
   * that recorded an exception failed.
   */
  recordException(err, time = undefined) {
    const attrs = {};
    if (typeof err === 'string' || err === null || typeof err !== 'object') {
      attrs['exception.message'] = textOf(err);
    } else {
      // As the JS SDK: a code that is a string or a number names the type.
      if ((typeof err.code === 'string' && err.code !== '') || typeof err.code === 'number') {
        attrs['exception.type'] = textOf(err.code);
      }
      else if (err.name) attrs['exception.type'] = textOf(err.name);
      if (err.message) attrs['exception.message'] = textOf(err.message);
      if (err.stack) attrs['exception.stacktrace'] = textOf(err.stack);
    }
    this.addEvent('exception', attrs, time);
    return this.setStatus(STATUS.ERROR, attrs['exception.message'] || attrs['exception.type'] || 'error');
  }

  /**
   * The W3C traceparent, to pass to another process; '' for a span that
   * records nothing. The same after the span's end (kept by it).
   */
  traceparent() {
    if (this.#kept !== 0) return this.#keptTraceparent();
    const out = native.traceparent(this.#hi, this.#lo);
    if (typeof out !== 'number') return out;
    // A span whose slot went to a newer span (ended long ago): '' as for a
    // span that records nothing, and a warning, not a throw.
    recorded(out, 'traceparent');
    return '';
  }

  /** Ends the span, now or at `endTime` (HrTime, Date or epoch milliseconds). Once. */
  end(endTime = undefined) {
    if (this.#ended) return;
    this.#ended = true;
    const w = this.#watchedAt;
    if (w >= 0) {
      // Its tick is not over: no longer kept alive by `young`, nor registered at the check.
      unwatchYoung(w);
      this.#watchedAt = UNWATCHED;
    } else if (w === REGISTERED) {
      COLLECTED_OPEN.unregister(this);
      this.#watchedAt = UNWATCHED;
    }
    let code;
    if (endTime === undefined || endTime === null) code = native.end(this.#hi, this.#lo);
    else {
      const [s, ns] = hrTime(endTime, this.#tracer, `end(${this.#name})`);
      code = native.endAt(this.#hi, this.#lo, s, ns);
    }
    const kept = OUT[10];
    if (kept !== 0) {
      this.#i0 = OUT[2]; this.#i1 = OUT[3]; this.#i2 = OUT[4]; this.#i3 = OUT[5];
      this.#i4 = OUT[6]; this.#i5 = OUT[7]; this.#i6 = OUT[8]; this.#i7 = OUT[9];
      // End answers NON_RECORDING only for a disabled tracer's span (an
      // unsampled one ends OK).
      this.#kept = code === RESULT.NON_RECORDING ? kept | PASSES_THROUGH : kept;
    }
    // SHUT_DOWN: the shutdown already exported it, marked unended.
    if (code !== undefined && code !== RESULT.SHUT_DOWN) recorded(code, `end(${this.#name})`);
  }
}

// Each option: its spanguard_config field and what it takes. 'number': a
// whole number that fits the field (uint32); 'boolean'; 'string'; 'pairs':
// a string 'k=v,k2=v2' or an object of such pairs; an object: one of its
// keys, sent as its value.
const SETTINGS = {
  serviceName: ['service_name', 'string'], resourceAttributes: ['resource_attributes', 'pairs'],
  endpoint: ['endpoint', 'string'], headers: ['headers', 'pairs'], sinkDir: ['sink_dir', 'string'],
  spoolDir: ['spool_dir', 'string'], protocol: ['protocol', { 'http/protobuf': 0, 'http/json': 1 }],
  compression: ['compression', { none: 0, gzip: 1 }], requestTimeoutMs: ['request_timeout_ms', 'number'],
  scheduleDelayMs: ['schedule_delay_ms', 'number'], maxQueueSize: ['max_queue_size', 'number'],
  maxExportBatchSize: ['max_export_batch_size', 'number'], exportTimeoutMs: ['export_timeout_ms', 'number'],
  maxOpenSpans: ['max_open_spans', 'number'],
  flightRecorder: ['flight_recorder', 'boolean'],
  prefaultSlots: ['prefault_slots', 'boolean'], installSignalHandlers: ['install_signal_handlers', 'boolean'],
  spoolMaxMib: ['spool_max_mib', 'number'], signalFlushTimeoutMs: ['signal_flush_timeout_ms', 'number'],
  exporterMaxCpuPercent: ['exporter_max_cpu_percent', 'number'], payloadPoolMib: ['payload_pool_mib', 'number'],
  valueLengthLimit: ['value_length_limit', 'number'], valueDepthLimit: ['value_depth_limit', 'number'],
  attributeCountLimit: ['attribute_count_limit', 'number'],
  eventCountLimit: ['event_count_limit', 'number'], linkCountLimit: ['link_count_limit', 'number'],
  eventAttributeCountLimit: ['event_attribute_count_limit', 'number'],
  linkAttributeCountLimit: ['link_attribute_count_limit', 'number'],
  certificate: ['certificate', 'string'], clientCertificate: ['client_certificate', 'string'],
  clientKey: ['client_key', 'string'], maxRequestBytes: ['max_request_bytes', 'number'],
  sinkMaxLineBytes: ['sink_max_line_bytes', 'number'], logLevel: ['log_level', 'string'],
  fullPolicy: ['full_policy', { wait: 0, drop: 1 }], fullWaitMs: ['full_wait_ms', 'number'],
  // The names OTEL_TRACES_SAMPLER and the Python binding use.
  sampler: ['sampler', {
    parentbased_always_on: 0, always_on: 1, always_off: 2, traceidratio: 3,
    parentbased_always_off: 4, parentbased_traceidratio: 5,
  }],
  samplerRatio: ['sampler_ratio', 'ratio'],
  fromEnv: [null, 'boolean'],
  processHooks: [null, 'boolean'],
};

/**
 * A count a span call passes to C as a uint32_t, checked here: N-API's
 * conversion wraps (-1 is 4294967295, so dropOldest(-1) dropped every
 * event; 2 ** 32 + 1 is 1, 1.9 is 1, NaN 0), and a count is never the
 * program's data from outside, so a wrong one is the caller's mistake,
 * thrown rather than guessed at.
 */
function count(v, name, op) {
  if (isUint32(v)) return v;
  throw new SpanguardError(RESULT.INVALID_ARGUMENT, op,
    `${name}: expected a whole number from 0 to 4294967295, got ${described(v)}`);
}

/** Whether `v` is a number C takes as a uint32_t whole: N-API's conversion would wrap any other. */
function isUint32(v) {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}

/**
 * The text of a name, key, header or message that is not a string, as the
 * Python binding takes str() of one: never a throw from a recording call
 * (a Symbol, or an object whose toString throws, made the addon's
 * coercion throw a TypeError into the program).
 */
function textOf(v) {
  try {
    return String(v);
  } catch (_) {
    return '<unprintable>';
  }
}

/** A value as an error message names it. */
function described(v) {
  if (v === null) return 'null';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  if (typeof v === 'number' || typeof v === 'boolean') return `${typeof v} ${v}`;
  if (typeof v === 'bigint') return `the bigint ${v}n`;
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/** A wrong option: a SpanguardError (INVALID_CONFIG), as the library's own config errors are. */
function badOption(name, expected, v) {
  return new SpanguardError(RESULT.INVALID_CONFIG, 'tracer_new', `option ${name}: expected ${expected}, got ${described(v)}`);
}

/** Option `name`'s value `v` (neither undefined nor null) as its config field takes it; throws when it is of the wrong type. */
function optionValue(name, kind, v) {
  if (kind === 'number') {
    if (!isUint32(v)) {
      throw badOption(name, 'a whole number from 0 to 4294967295', v);
    }
    return v;
  }
  if (kind === 'ratio') {
    // Checked by the library too; here, so the message names the option.
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw badOption(name, 'a number from 0 to 1', v);
    return v;
  }
  if (kind === 'boolean') {
    if (typeof v !== 'boolean') throw badOption(name, 'true or false', v);
    return Number(v);
  }
  if (kind === 'string') {
    if (typeof v !== 'string') throw badOption(name, 'a string', v);
    return v;
  }
  if (kind === 'pairs') {
    if (typeof v === 'string') return v;
    if (typeof v !== 'object' || Array.isArray(v)) throw badOption(name, "a string 'k=v,...' or an object of strings", v);
    return Object.entries(v).map(([k, value]) => {
      if (!['string', 'number', 'boolean'].includes(typeof value)) {
        throw badOption(`${name}.${k}`, 'a string, number or boolean', value);
      }
      // The text's own characters escaped: a value holding '%', ',' or
      // '=' ('50%', 'a,b') arrives as it was, not cut, decoded into
      // something else, or refused as a broken escape.
      const escape = (s) => String(s).replace(/[%,=]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
      return `${escape(k)}=${escape(value)}`;
    }).join(',');
  }
  const names = Object.keys(kind);
  if (typeof v !== 'string' || !hasOwn(kind, v)) throw badOption(name, `one of '${names.join("', '")}'`, v);
  return kind[v];
}

/** `promise`, or RESULT.TIMEOUT if it has not settled by `deadline` (epoch milliseconds). */
function untilDeadline(promise, deadline) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve(RESULT.TIMEOUT), Math.max(0, deadline - Date.now()));
    // The flush it waits for keeps the process alive; the timer need not.
    timer.unref();
    promise.then((code) => { clearTimeout(timer); resolve(code); }, (err) => { clearTimeout(timer); reject(err); });
  });
}

// This thread's tracers with their process hooks on -> the hooks' options
// ({ timeoutMs, signals }). Held only while they are on: a tracer shut
// down or closed leaves it, and with the last one the listeners go.
const hookedTracers = new Map();

// Event -> the one listener the hooks keep on it for every tracer of the
// thread ('SIGTERM', 'SIGINT', 'beforeExit', 'exit'). A listener a tracer,
// never removed, warned of a leak past ten tracers
// (MaxListenersExceededWarning), held each closed tracer for good, and
// kept Node's own signal handling away after the program had shut
// spanguard down.
const hookListenerOf = new Map();

// The listeners above, to tell them from a program's own.
const hookListeners = new WeakSet();

// The signal the program took with a listener of its own while the hooks
// were on (its number), and the hooks' timeout then: should the process
// exit after it (that listener's process.exit()), the spans still open
// were interrupted by it.
let signalTakenByProgram = null;

// The number of that signal, in the listeners that took it and in the work
// they start (AsyncLocalStorage carries it through their promises and
// timers): a shutdown begun there is for the signal, and the spans still
// open arrive interrupted by it. OpenTelemetry's own pattern,
// `process.on('SIGTERM', () => sdk.shutdown().finally(() => process.exit(0)))`,
// shut spanguard down before its exit: they arrived `spanguard.unended`,
// the mark of spans the program forgot.
const signalOfListeners = new AsyncLocalStorage();

/**
 * How many listeners signal-exit has on each signal it watches (SIGTERM
 * and SIGINT among them): one a loaded copy, counted in its global
 * emitter (v4's under Symbol.for('signal-exit emitter'), v3's at
 * process.__signal_exit_emitter__). execa (while a child runs),
 * write-file-atomic (while it writes) and nyc load it; its listener ends
 * the process by raising the signal again when it finds itself alone, and
 * does nothing otherwise, leaving the signal to the program's listeners.
 */
function signalExitListeners() {
  let n = 0;
  for (const emitter of [globalThis[Symbol.for('signal-exit emitter')], process.__signal_exit_emitter__]) {
    if (emitter && typeof emitter.count === 'number' && emitter.count > 0) n += emitter.count;
  }
  return n;
}

/**
 * Whether the program itself listens for `sig`: then its listener, not
 * spanguard, decides what the signal does. signal-exit's listeners are
 * not the program's: they end the process once they are alone, and
 * counted as the program's (with spanguard's there, neither raised the
 * signal), a SIGTERM while an execa child ran left the process up until
 * the SIGKILL.
 */
const programListens = (sig) => process.listeners(sig).filter((l) => !hookListeners.has(l)).length
  > signalExitListeners();

/** The longest of the hooked tracers' timeouts (those hooked for `sig`, when given). */
function hooksTimeout(sig) {
  let timeoutMs = 0;
  for (const { timeoutMs: t, signals } of hookedTracers.values()) {
    if (!sig || signals.includes(sig)) timeoutMs = Math.max(timeoutMs, t);
  }
  return timeoutMs;
}

/** The process hooks' work at `sig` (SIGTERM, SIGINT...), for every tracer of the thread. */
async function onHookedSignal(sig) {
  // No hooked tracer left: the signal came as the program shut the last
  // one down, before its listener came off (releaseUnwantedSignals).
  const timeoutMs = hookedTracers.size ? hooksTimeout(sig) : releasedTimeoutMs;
  const signo = require('os').constants.signals[sig] || 0;
  const tracers = [...hookedTracers.keys()];
  // A program listening for the signal decides what it does: a graceful
  // drain (whose requests still end their spans), or a cancel of the
  // current step and on. Shutting spanguard down there refused every
  // span after it. Not in a PID namespace's init (a container's PID 1)
  // with no listener either: the kernel drops a signal init has no
  // handler for (pid_namespaces(7)), and Node alone lives on there (the
  // library's rule, its watchdog's). Both: what has ended is flushed,
  // and the tracers record on.
  const listens = programListens(sig);
  if (listens || !native.raisedSignalCanEndProcess(false)) {
    if (listens) {
      signalTakenByProgram = { signo, timeoutMs };
      // This listener comes first: the program's, after it in the same
      // emit, run in this context.
      signalOfListeners.enterWith(signo);
      // Once the signal's listeners have all run: if the program's were
      // `once` listeners, now gone, step aside, so that the process is
      // left as it would be without spanguard. A listener that ends the
      // process only when it is alone (@prisma/client 2 to 4's: `if
      // (process.listenerCount('SIGTERM') === 0) process.exit()`) counted
      // ours, never exited, and the process waited for the SIGKILL with
      // its spans. At its exit the open spans are still marked
      // interrupted (onHookedExit); a second signal ends the process at
      // once, as without spanguard (a second Ctrl-C: "force quit").
      process.nextTick(() => { if (!programListens(sig)) stopListening(sig); });
    }
    const left = await feedWithinHalf(timeoutMs);
    await Promise.all(tracers.map((t) => t.flush(left)));
    return;
  }
  // Off first: a second signal meanwhile (a second Ctrl-C: "force quit")
  // meets Node's own handling and ends the process at once. Once the
  // signal's other listeners have run: ours runs first, and signal-exit's
  // after it, finding itself alone, ended the process before the shutdown.
  process.nextTick(() => stopListening(sig));
  try {
    // What the SDK still holds for spanguard first; then every hooked
    // tracer of the process, workers' too. The spans still open arrive
    // interrupted by the signal, as the library's own handler marks them
    // (Python's), not "unended", which reads as spans the program forgot.
    const left = await feedWithinHalf(timeoutMs);
    await native.shutdownHooked(left, signo);
    await Promise.allSettled(tracers.map((t) => t.shutdown(left)));
  } finally {
    // A listener of the program's added meanwhile ends it; raised with
    // that listener there, the signal ran it a second time. signal-exit's,
    // alone now, end the process when it comes again (after its exit
    // handlers: execa's kill of its children).
    if (!programListens(sig)) process.kill(process.pid, sig);
  }
}

/**
 * The process is exiting (process.exit(), or the end of its work): after a
 * signal the program's own listener took, the spans still open were
 * interrupted by it, and are shut down so, here, where no promise settles
 * any more; the SDK's queues first (their forceFlush hands them over at
 * once). Otherwise the library's own exit flush does the work.
 */
function onHookedExit() {
  if (!signalTakenByProgram || hookedTracers.size === 0) return;
  try {
    for (const fn of beforeHookedShutdown) {
      const out = fn();
      if (out && typeof out.catch === 'function') out.catch(() => {});
    }
    native.shutdownHookedNow(signalTakenByProgram.timeoutMs, signalTakenByProgram.signo);
  } catch (_) {
    // An exit listener must not throw: the process is leaving anyway.
  }
}

/**
 * Puts the one listener for `event` on the process, unless it is there:
 * a signal's first, so that it sees every listener the program had when
 * the signal came. After a program's `once` listener, it found that one
 * gone, took the signal for its own, shut down and raised it again,
 * ending the process under the program's graceful shutdown; and a
 * program's listener calling process.exit() at once left it unrun, the
 * open spans marked unended rather than interrupted.
 */
function listen(event, listener) {
  if (hookListenerOf.has(event)) return;
  hookListeners.add(listener);
  hookListenerOf.set(event, listener);
  if (event.startsWith('SIG')) process.prependListener(event, listener);
  else process.on(event, listener);
}

function stopListening(event) {
  const listener = hookListenerOf.get(event);
  if (!listener) return;
  hookListenerOf.delete(event);
  process.removeListener(event, listener);
}

// The signals the library's termination handler acts on (its
// TERMINATION_SIGNALS).
const TERMINATION_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT'];

/**
 * As the main thread's last listener for a termination signal goes
 * (the program's, or spanguard's own: stepped aside after a program's
 * `once` listener, or its tracers shut down), Node sets the signal's
 * default disposition, over the library's termination handler when the
 * process has one (a hooked tracer's, installSignalHandlers):
 * the next signal ended the process at once, the spans ended since the
 * last flush and the open ones nowhere, uncounted. The handler goes back
 * over that default, and raises the signal with it in turn: the process
 * still ends by the signal at once after the flush and dump, as without
 * spanguard, and no listener is left for a program's listenerCount to see
 * (@prisma/client's exit when alone). Nothing where the process has no
 * such handler.
 */
function reclaimWhenLastListenerGoes(event) {
  if (!TERMINATION_SIGNALS.includes(event) || process.listenerCount(event) > 0) return;
  try {
    addon().reclaimSignalFromDefault(require('os').constants.signals[event]);
  } catch (_) {
    // No addon for this platform: no handler of the library's either.
  }
}

// Node's own removeListener listener, which closes the signal's watcher
// (setting the default), was added at its start-up: it runs before this
// one. One a process: each copy of this module loaded (a test runner's
// module registry a test file) added its own, and the eleventh warned of
// a leak (MaxListenersExceededWarning).
const RECLAIM_WATCHER = Symbol.for('spanguard.reclaimWhenLastListenerGoes');
if (isMainThread && !process[RECLAIM_WATCHER]) {
  process[RECLAIM_WATCHER] = true;
  process.on('removeListener', reclaimWhenLastListenerGoes);
}

/**
 * The library's termination handler put back over each termination
 * signal's default, from a worker thread: its own process's listeners
 * (its hooks') are not the ones whose going set that default.
 */
function reclaimEachFromDefault() {
  const numbers = require('os').constants.signals;
  for (const sig of TERMINATION_SIGNALS) addon().reclaimSignalFromDefault(numbers[sig]);
}

// How often a worker thread looks whether Node has set a termination
// signal's default over the library's watchdog (watchWatchdogFromWorker),
// and the interval doing it (null: none).
const WATCHDOG_LOOK_MS = 250;
let watchdogLook = null;

/**
 * In a worker thread whose hooked tracer has the library's termination
 * watchdog: as the main thread's last listener for a signal goes, Node
 * sets the signal's default over the watchdog, and where the main thread
 * has not loaded spanguard, nothing there put it back
 * (reclaimWhenLastListenerGoes listens on the main thread only; a
 * worker's process emits no listener changes of the main thread's): the
 * next signal ended the process with the worker's spans nowhere,
 * uncounted. Looked at here every WATCHDOG_LOOK_MS instead (a sigaction
 * read a signal, on this thread's event loop, never on a span's path),
 * and put back over that default. Unref'd: it keeps no worker alive.
 * Until this thread's last hooked tracer goes.
 */
function watchWatchdogFromWorker() {
  if (isMainThread || watchdogLook) return;
  watchdogLook = setInterval(reclaimEachFromDefault, WATCHDOG_LOOK_MS);
  watchdogLook.unref();
}

/** The signals the hooked tracers want listened for. */
function wantedSignals() {
  const wanted = new Set();
  for (const { signals } of hookedTracers.values()) for (const sig of signals) wanted.add(sig);
  return wanted;
}

// The hooks' timeout as their last tracer for a signal went: a signal
// caught before its listener came off (releaseUnwantedSignals) is handled
// within it.
let releasedTimeoutMs = 0;
// The release under way (releaseUnwantedSignals), or null.
let releasing = null;

/**
 * Takes off the listeners of the signals no hooked tracer wants any more,
 * once Node's event loop has polled since: a signal Node had caught
 * before then (the program's shutdown of its last tracer called in the
 * same turn as a `docker stop`, an `await sdk.shutdown()` at the end of a
 * job) is still in libuv's signal pipe, and reaches its listener only
 * there. Taken off at once, it went nowhere: the process ran on and
 * exited 0, where without spanguard it ended by the signal. Two
 * setImmediate hops put a whole poll phase between the request and the
 * removal; a signal listener does not keep the loop alive, and two
 * immediates end at once. Resolves once done.
 */
function releaseUnwantedSignals() {
  if (releasing) return releasing;
  releasing = new Promise((resolve) => setImmediate(() => setImmediate(resolve))).then(() => {
    releasing = null;
    const wanted = wantedSignals();
    for (const event of [...hookListenerOf.keys()]) {
      if (event !== 'beforeExit' && event !== 'exit' && !wanted.has(event)) stopListening(event);
    }
  });
  return releasing;
}

/**
 * The listeners the hooked tracers want, and no others; resolves once
 * those no longer wanted are off (releaseUnwantedSignals).
 */
function syncHookListeners() {
  const wanted = wantedSignals();
  let released = Promise.resolve();
  if ([...hookListenerOf.keys()].some((e) => e !== 'beforeExit' && e !== 'exit' && !wanted.has(e))) {
    released = releaseUnwantedSignals();
  }
  for (const sig of wanted) listen(sig, () => { onHookedSignal(sig).catch(() => {}); });
  if (hookedTracers.size === 0) {
    stopListening('beforeExit');
    stopListening('exit');
    if (watchdogLook) clearInterval(watchdogLook);
    watchdogLook = null;
    return released;
  }
  listen('beforeExit', onHookedBeforeExit);
  listen('exit', onHookedExit);
  return released;
}

// What the hooked tracers had begun and ended (activityOf) when the last
// beforeExit flush settled; null before the first.
let activityAtLastFlush = null;

/** Spans begun and ended so far by `tracers`: what changes when the program records. */
function activityOf(tracers) {
  let n = 0;
  for (const t of tracers) {
    try {
      const s = t.stats();
      n += s.spans_begun + s.spans_ended;
    } catch (_) {
      // Closed meanwhile: it has left hookedTracers.
    }
  }
  return n;
}

/**
 * Out of work: the SDK's queue (its timer does not keep the process up)
 * and the tracers are flushed, not shut down. beforeExit comes again each
 * time the loop empties, and a program's own listener may schedule more
 * work there (drain a queue, close a pool, close-with-grace's close
 * function): shut down at the first, the tracers refused every span that
 * work recorded. Only when something was recorded since the last flush
 * settled: the flush's own work ending empties the loop again, and
 * flushing each time kept the process up for good. What comes after the
 * last flush is delivered at exit: the SDK's queue by otel.js's 'exit'
 * listener, the tracers by the library's exit flush (open spans marked
 * spanguard.unended).
 */
function onHookedBeforeExit() {
  const tracers = [...hookedTracers.keys()];
  if (activityAtLastFlush !== null && activityOf(tracers) === activityAtLastFlush) return;
  feedWithinHalf(hooksTimeout())
    .then((left) => Promise.allSettled(tracers.map((t) => t.flush(left))))
    .catch(() => {})
    .then(() => { activityAtLastFlush = activityOf(tracers); });
}

/**
 * Whether the process hooks go on by default for a new tracer: yes,
 * unless `processHooks: false`, or (read with the other variables, unless
 * `fromEnv: false`) SPANGUARD_PROCESS_HOOKS=false.
 */
function hooksByDefault(options) {
  if (options.processHooks !== undefined && options.processHooks !== null) return options.processHooks;
  if (options.fromEnv === false) return true;
  const v = (process.env.SPANGUARD_PROCESS_HOOKS || '').trim().toLowerCase();
  return !['false', '0', 'no', 'off'].includes(v);
}

// What the process hooks run before they shut spanguard down: functions
// that hand spanguard the spans something else still holds for it (the
// OpenTelemetry SDK's BatchSpanProcessor queue in front of
// SpanguardSpanExporter, which otel.js adds), each returning a Promise or
// nothing. Shutting down first left those spans nowhere: the exporter's
// tracer refuses what the SDK hands it after its shutdown.
const beforeHookedShutdown = new Set();
// The run of them under way: every hook of one signal (a tracer's each)
// waits for the same one, so they run once, and a second tracer's hook
// cannot shut everything down under the first one's flush.
let feeding = null;

/**
 * Runs the functions of beforeHookedShutdown, for `timeoutMs` at most
 * (one that never settles, an SDK waiting on another exporter that never
 * answers, must not keep the process from its signal). Never rejects.
 */
function feedBeforeShutdown(timeoutMs) {
  if (feeding) return feeding;
  if (beforeHookedShutdown.size === 0) return Promise.resolve();
  const runs = [...beforeHookedShutdown].map((fn) => {
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(err);
    }
  });
  feeding = new Promise((resolve) => {
    // Not unref'd: the SIGTERM hook's process must stay up to shut down
    // and raise its signal, even when nothing else holds the event loop.
    const timer = setTimeout(resolve, timeoutMs);
    Promise.allSettled(runs).then(() => { clearTimeout(timer); resolve(); });
  }).then(() => { feeding = null; });
  return feeding;
}

/**
 * feedBeforeShutdown for up to half of `timeoutMs`, resolving to what is
 * left of `timeoutMs` for the shutdown after it: the hooks' whole work
 * stays within their timeout, and an SDK flush that waits on another,
 * slow exporter leaves spanguard's own shutdown half of it at least.
 */
async function feedWithinHalf(timeoutMs) {
  const started = Date.now();
  await feedBeforeShutdown(Math.floor(timeoutMs / 2));
  return Math.max(0, timeoutMs - (Date.now() - started));
}

/** A spanguard tracer. */
class Tracer {
  // The library's tracer (an N-API External). Flushes and shutdowns run on
  // libuv's pool with it: close() frees only once they have settled
  // (`inflight`).
  #ptr;
  #closed = false;
  #inflight = new Set();
  // The flush running on the pool, and the one the calls made meanwhile share (sharedFlush).
  #flushRunning = null;
  #flushNext = null;
  // After close(): { stats, sinkPath } as they were as it freed the tracer.
  #final = null;
  // Attribute values left out (not OpenTelemetry's types), as the
  // Python binding counts them: the binding's own count, in stats().
  #valuesRejected = 0;
  // What the OpenTelemetry bridge's log record processors feeding this
  // tracer counted ({ attached, notAttached, held() }, otel.js), for stats().
  #logRecordCounts = [];

  static {
    tracerClosed = (tracer) => tracer.#closed;
    countRejected = (tracer, n) => { tracer.#valuesRejected += n; };
    addLogRecordCounts = (tracer, counts) => { tracer.#logRecordCounts.push(counts); };
  }

  /**
   * @param {object} [options] see index.d.ts (TracerOptions); `fromEnv` (default true) applies the
   *   OTEL_* and SPANGUARD_* variables on top; the library's crash handlers are off unless
   *   `installSignalHandlers` is true, its termination watchdog on with the process hooks unless it is false.
   */
  constructor(options = {}) {
    const N = addon();
    if (options === null) options = {};
    if (typeof options !== 'object' || Array.isArray(options)) throw badOption('options', 'an object', options);
    const cfg = { install_signal_handlers: 0 };
    for (const [k, v] of Object.entries(options)) {
      if (!hasOwn(SETTINGS, k)) throw new TypeError(`unknown spanguard option ${k}`);
      // Checked here, each with its name: the addon would throw a bare
      // N-API error ("A number was expected") or take -1 as 4294967295.
      if (v === undefined || v === null) continue;
      const [field, kind] = SETTINGS[k];
      const value = optionValue(k, kind, v);
      if (field) cfg[field] = value;
    }
    // process.runtime.* as OpenTelemetry's Node SDK reports it; first, so
    // that the caller's own attributes override it.
    const runtime = `process.runtime.name=nodejs,process.runtime.version=${process.versions.node},`
      + 'process.runtime.description=Node.js';
    cfg.resource_attributes = cfg.resource_attributes ? `${runtime},${cfg.resource_attributes}` : runtime;
    const hooks = hooksByDefault(options);
    // The library's termination watchdog (no crash handlers), under the
    // hooks' listeners, for where they cannot act. A worker thread's
    // hooks never hear a signal (they reach the main thread's listeners
    // only), and a main thread with none of its own, spanguard not loaded
    // there, ends by Node's default at once: the worker's spans were
    // lost, uncounted. And once the main thread's hooks have stepped
    // aside after a program's `once` listener, Node's default took a
    // second signal (a "force quit"), the spans ended since the first and
    // the open ones nowhere: the watchdog goes back over that default
    // (reclaimWhenLastListenerGoes). It delivers what has ended, dumps the
    // open spans for the next start, and hands the signal on as it came.
    // A listener the main thread adds takes the signal from it (Node puts
    // its own handler in). Not when the program chose
    // (installSignalHandlers, or SPANGUARD_SIGNAL_HANDLERS, which the
    // library reads over this).
    if (hooks && (options.installSignalHandlers === undefined || options.installSignalHandlers === null)) {
      cfg.install_signal_handlers = SIGNAL_HANDLERS_TERMINATION;
    }
    const [code, ptr, message] = N.tracerNew(cfg, options.fromEnv !== false);
    if (code !== RESULT.OK) throw new SpanguardError(code, 'tracer_new', message);
    this.#ptr = ptr;
    // On by default: a Node agent stopped with SIGTERM or Ctrl-C lost
    // every span not yet exported, and its open ones, uncounted, unless
    // the program knew to call installProcessHooks().
    if (hooks) this.installProcessHooks();
    if (hooks && cfg.install_signal_handlers === SIGNAL_HANDLERS_TERMINATION) watchWatchdogFromWorker();
  }

  /** Tracks a flush or shutdown running on libuv's pool until it settles. */
  #blocking(promise) {
    this.#inflight.add(promise);
    const settled = () => this.#inflight.delete(promise);
    promise.then(settled, settled);
    return promise;
  }

  #live() {
    if (this.#closed) throw new SpanguardError(RESULT.SHUT_DOWN, 'tracer closed');
    return this.#ptr;
  }

  /** What `op` gives on a closed tracer: a span that records nothing, warned about once, not thrown. */
  #afterClose(name, op) {
    recorded(RESULT.SHUT_DOWN, `${op}(${name})`);
    return new Span(this, 0, 0, name, '');
  }

  /**
   * Starts a span: a child of `parent`, else of the current span (withSpan),
   * else a new trace; or, with `traceparent`, of a span in another process.
   * A span let go of without end is ended when garbage-collected, marked
   * spanguard.unended (see `young`).
   */
  startSpan(name, options) {
    const span = this.#beginUnwatched(name, options);
    // A span that records nothing (handle 0: every slot taken, a closed tracer) holds no slot.
    if (spanHi(span) !== 0 || spanLo(span) !== 0) watch(span);
    return span;
  }

  /** startSpan, without the watch. */
  #beginUnwatched(name, options) {
    if (typeof name !== 'string') name = textOf(name);
    if (this.#closed) return this.#afterClose(name, 'startSpan');
    const ptr = this.#ptr;
    const N = native;
    let code;
    let traceState = '';
    if (options === undefined) {
      const p = storage.getStore();
      if (isSpanOf(p, this)) {
        if (spanKept(p) !== 0) return this.#beginUnderEnded(name, OTLP_KIND_INTERNAL, p, undefined);
        code = N.begin(ptr, name, spanHi(p), spanLo(p), OTLP_KIND_INTERNAL);
        traceState = spanTraceState(p);
      } else code = N.begin(ptr, name, 0, 0, OTLP_KIND_INTERNAL);
    } else {
      const { parent, traceparent } = options;
      const kind = kindOf(options.kind, 'startSpan');
      const attributes = attributesOf(options.attributes, this, 'startSpan');
      if (traceparent && !parent) {
        code = N.beginRemote(ptr, name, traceparent, kind);
        if (code === RESULT.INVALID_TRACEPARENT) {
          // A bad header from outside: a new trace, as a propagator that
          // finds no valid parent would start; counted, as the Python
          // binding counts it.
          this.#valuesRejected++;
          recorded(code, `startSpan(${name})`);
          return this.#beginUnwatched(name, { ...options, attributes, traceparent: undefined });
        }
        if (isOk(code) && attributes) {
          const hi = OUT[0], lo = OUT[1];
          const [keys, values] = split(attributes);
          if (keys) setAll(hi, lo, this, keys, values, 0);
          return new Span(this, hi, lo, name, '');
        }
      } else {
        const p = parent || storage.getStore();
        let hi = 0, lo = 0;
        // A parent that is no span of this tracer (another tracer's, an
        // object of the program's) is none: a new trace.
        if (isSpanOf(p, this)) {
          if (spanKept(p) !== 0) return this.#beginUnderEnded(name, kind, p, attributes);
          hi = spanHi(p); lo = spanLo(p);
          traceState = spanTraceState(p);
        }
        if (!attributes) code = N.begin(ptr, name, hi, lo, kind);
        else {
          code = beginKV(N, ptr, name, hi, lo, kind, attributes);
          if (code === TOO_MANY_FOR_KV) {
            const [keys, values] = split(attributes);
            code = N.beginWithAttributes(ptr, name, hi, lo, kind, keys.slice(0, MAX_ATTRIBUTES_PER_CALL),
              values.slice(0, MAX_ATTRIBUTES_PER_CALL));
            const newHi = OUT[0], newLo = OUT[1];
            recordedOnSpan(code, `startSpan(${name})`, newHi, newLo, this);
            setAll(newHi, newLo, this, keys, values, MAX_ATTRIBUTES_PER_CALL);
            return new Span(this, newHi, newLo, name, traceState);
          }
        }
      }
    }
    // A span not begun (every slot taken, say) is a non-recording one: its
    // calls succeed and do nothing.
    const span = new Span(this, OUT[0], OUT[1], name, traceState);
    if (code !== undefined) recordedOnSpan(code, `startSpan(${name})`, OUT[0], OUT[1], this);
    return span;
  }

  /**
   * Begins a child of an ended span from the ids the span kept: its trace,
   * its span id as the parent, its trace flags (the decision a parent-based
   * sampler takes from a parent) and tracestate, and a local parent still
   * (not remote), as a child of an open span has; the span id is made
   * here. A child of an open span begins from the parent's handle.
   */
  #beginUnderEnded(name, kind, parent, attributes) {
    const tp = keptTraceparentOf(parent);
    const kept = spanKept(parent);
    if ((kept & PASSES_THROUGH) !== 0) {
      // A disabled tracer passes a remote parent's context on unchanged,
      // which is what its ended span's children must carry; it records
      // nothing, so nothing is marked remote.
      recorded(native.beginRemote(this.#ptr, name, tp, kind), `startSpan(${name})`);
      return new Span(this, OUT[0], OUT[1], name, spanTraceState(parent));
    }
    return this.beginForeign(name, {
      kind, traceId: tp.slice(3, 35), spanId: newSpanId(), parentSpanId: tp.slice(36, 52),
      traceFlags: kept & 0xff, traceState: spanTraceState(parent),
    }, split(attributes));
  }

  /**
   * Starts a span whose ids another SDK chose (the OpenTelemetry bridge):
   * `traceId` and `spanId` (hex), `parentSpanId` (hex, absent for a root),
   * `traceFlags`, `parentIsRemote`, `traceState` (W3C text), `startTime`,
   * `kind` (as startSpan takes it), `scopeName`, `scopeVersion`, `scopeSchemaUrl` (the
   * scope's schema URL), `attributes`; `limitedByCaller`: the SDK applied
   * its span limits already, so the tracer's count and value length
   * limits do not apply to this span (what the SDK kept is kept whole).
   */
  startForeignSpan(name, o) {
    const kind = kindOf(o.kind, 'startForeignSpan');
    return this.beginForeign(name, { ...o, kind }, split(attributesOf(o.attributes, this, 'startForeignSpan')));
  }

  /**
   * startForeignSpan with the attributes as [keys, values] (the bridge
   * builds those in one pass over the SDK's attributes); `o.attributes` is
   * not read, and `o.kind` is OTLP's number (the library refuses one out
   * of range).
   */
  beginForeign(name, o, [keys, values]) {
    if (typeof name !== 'string') name = textOf(name);
    if (this.#closed) return this.#afterClose(name, 'startForeignSpan');
    if (keys && keys.length === 0) keys = values = null;
    const more = keys && keys.length > MAX_ATTRIBUTES_PER_CALL;
    const [s, ns] = hrTime(o.startTime, this, 'startForeignSpan');
    const code = native.beginEx(this.#ptr, name, o.kind === undefined ? OTLP_KIND_INTERNAL : o.kind, o.traceId, o.spanId,
      o.parentSpanId || '', o.traceFlags || 0,
      (o.parentIsRemote ? SPAN_OPTION.PARENT_IS_REMOTE : 0) | (o.limitedByCaller ? SPAN_OPTION.LIMITED_BY_CALLER : 0),
      o.traceState || '', s, ns,
      o.scopeName || '', o.scopeVersion || '', more ? keys.slice(0, MAX_ATTRIBUTES_PER_CALL) : keys,
      more ? values.slice(0, MAX_ATTRIBUTES_PER_CALL) : values, o.scopeSchemaUrl || '');
    const hi = OUT[0], lo = OUT[1];
    if (code !== undefined) recordedOnSpan(code, `startForeignSpan(${name})`, hi, lo, this);
    if (more) setAll(hi, lo, this, keys, values, MAX_ATTRIBUTES_PER_CALL);
    return new Span(this, hi, lo, name, o.traceState || '');
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

  /**
   * Resolves true when every span ended before the call was delivered or
   * spooled in time; false on timeout, and after shutdown or close. Not a
   * rejection then: a late flush (a request finishing after the SIGTERM
   * hook's shutdown) would be an unhandled one, where the SDK's forceFlush
   * resolves after its shutdown, as the specification asks.
   */
  async flush(timeoutMs = 5000) {
    if (this.#closed) return false;
    const code = await this.#sharedFlush(this.#ptr, timeoutMs);
    if (code === RESULT.SHUT_DOWN) return false;
    return flushStatus(code, 'flush') !== 'timeout';
  }

  /** Like flush, resolving 'delivered', 'spooled' or 'timeout'; rejects with SHUT_DOWN after shutdown or close. */
  async flushStatus(timeoutMs = 5000) {
    return flushStatus(await this.#sharedFlush(this.#live(), timeoutMs), 'flush');
  }

  /**
   * The code of a flush of every span ended before the call, within
   * `timeoutMs`. A flush holds one of libuv's pool threads (4 by default)
   * until it ends, up to its timeout while the backend is slow: flushes
   * called together (a forceFlush at the end of each request) took every
   * one, and the application's file reads, DNS lookups and zlib calls
   * waited seconds behind them. So a tracer runs one at a time: the calls
   * made while one runs (which may have begun before their spans ended)
   * share the next, given the latest of their deadlines, and each still
   * answers TIMEOUT at its own.
   */
  #sharedFlush(ptr, timeoutMs) {
    if (!this.#flushRunning) return this.#runFlush(ptr, timeoutMs);
    const deadline = Date.now() + timeoutMs;
    let next = this.#flushNext;
    if (next) next.deadline = Math.max(next.deadline, deadline);
    else {
      next = { deadline };
      this.#flushNext = next;
      const start = () => {
        this.#flushNext = null;
        // Closed meanwhile: the memory may be gone; a flush now would find it shut down.
        return this.#closed ? RESULT.SHUT_DOWN : this.#runFlush(ptr, Math.max(0, next.deadline - Date.now()));
      };
      next.promise = this.#flushRunning.then(start, start);
    }
    return untilDeadline(next.promise, deadline);
  }

  /** Starts a flush on the pool: the one running (sharedFlush) until it settles. */
  #runFlush(ptr, timeoutMs) {
    const running = this.#blocking(native.flush(ptr, timeoutMs));
    this.#flushRunning = running;
    const settled = () => {
      if (this.#flushRunning === running) this.#flushRunning = null;
    };
    running.then(settled, settled);
    return running;
  }

  /** Flush, export open spans (marked unended), stop. Safe to call twice. */
  async shutdown(timeoutMs = 5000) {
    return (await this.shutdownStatus(timeoutMs)) !== 'timeout';
  }

  /** Like shutdown, resolving 'delivered', 'spooled' or 'timeout'. */
  async shutdownStatus(timeoutMs = 5000) {
    if (this.#closed) return 'delivered';
    // Nothing left for the hooks to do: the signal is Node's again, once
    // one Node caught meanwhile has reached the hooks (releaseUnwantedSignals).
    const unhooked = this.#unhook();
    const code = await this.#blocking(native.shutdown(this.#ptr, timeoutMs, signalOfListeners.getStore() ?? 0));
    await unhooked;
    if (code === RESULT.SHUT_DOWN) return 'delivered';
    return flushStatus(code, 'shutdown');
  }

  /**
   * Shuts down and frees the tracer. Safe to call twice, and while a flush
   * is pending: that flush settles (a flush the shutdown overtook rejects
   * with SHUT_DOWN) before the memory goes. stats() and sinkPath() still
   * answer after it, with what they said as it freed the tracer.
   */
  async close() {
    if (this.#closed) return;
    await this.shutdown();
    if (this.#closed) return;
    this.#closed = true;
    // A flush started before close() may still run on the pool: freeing
    // under it ran it on freed memory.
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
    // The counters of a shut-down tracer are final (spans_unended_at_shutdown
    // is only known then): kept for a program that reads them after.
    this.#final = { stats: this.#readStats(), sinkPath: this.#readSinkPath(), endpoint: this.#readEndpoint() };
    // Off the process hooks' list first (waiting for a shutdown of its
    // tracers under way): a signal must not reach freed memory.
    native.hookRemove(this.#ptr);
    native.tracerFree(this.#ptr);
  }

  /** The file the local sink appends to, where spans go with no endpoint; '' with an endpoint. */
  sinkPath() {
    return this.#final ? this.#final.sinkPath : this.#readSinkPath();
  }

  #readSinkPath() {
    const out = native.sinkPath(this.#ptr);
    if (typeof out === 'number') throw new SpanguardError(out, 'sinkPath');
    return out;
  }

  /**
   * The OTLP/HTTP URL the tracer sends its spans to (given, or from
   * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT); ''
   * when it writes to the local sink or discards. The OpenTelemetry bridge
   * compares it with the SDK's own exporter's, to say when every span
   * reaches one backend twice. After close(), what it was.
   */
  endpoint() {
    return this.#final ? this.#final.endpoint : this.#readEndpoint();
  }

  #readEndpoint() {
    const out = native.endpoint(this.#ptr);
    if (typeof out === 'number') throw new SpanguardError(out, 'endpoint');
    return out;
  }

  /**
   * Sets resource attributes over the tracer's own for every batch
   * exported from now on: what the OpenTelemetry bridge passes for the SDK
   * provider's Resource, so that spans arrive under its service.name and
   * attributes. A service.name that is the SDK's fallback
   * ('unknown_service...') leaves the tracer's. A later call replaces an
   * earlier one's.
   */
  setResource(attrs) {
    const [keys, values] = split(attributesOf(attrs, this, 'setResource'));
    recorded(native.setResource(this.#live(), keys || [], values || []), 'setResource', this);
  }

  /**
   * The library's counters (after close(), those it had then), and the
   * OpenTelemetry bridge's counts of the event records sent through the
   * Logs API (log_records_*, added up over the log record processors given
   * this tracer's bridge; JavaScript's own, the native hot path keeps none).
   */
  stats() {
    const stats = this.#final ? { ...this.#final.stats } : this.#readStats();
    stats.log_records_attached = 0;
    stats.log_records_not_attached = 0;
    stats.log_records_held = 0;
    for (const counts of this.#logRecordCounts) {
      stats.log_records_attached += counts.attached;
      stats.log_records_not_attached += counts.notAttached;
      stats.log_records_held += counts.held();
    }
    return stats;
  }

  #readStats() {
    const [code, counters] = native.stats(this.#ptr);
    check(code, 'stats');
    counters.values_rejected = this.#valuesRejected;
    return counters;
  }

  /**
   * The process hooks, on by default (every new tracer has them with
   * these defaults, unless `processHooks: false` or
   * SPANGUARD_PROCESS_HOOKS=false): a call sets this tracer's `timeoutMs`
   * and `signals`, and adds no second listener. On SIGTERM/SIGINT every
   * hooked tracer of the process shuts down, its open spans marked
   * interrupted by the signal, and the signal is raised again with Node's
   * own handling, so the process ends as it would have; on beforeExit
   * they flush, and record on (a program's own beforeExit work keeps its
   * spans; the library's exit flush delivers the rest). First, with a SpanguardSpanExporter in the process, the
   * global OpenTelemetry provider is flushed (for up to half of
   * `timeoutMs`), so the spans its BatchSpanProcessor queue holds reach
   * spanguard before it shuts down in what is left of `timeoutMs`: the
   * whole stays within `timeoutMs` (a container's stop grace is counted
   * from the signal). A program with a listener of its own for the signal
   * (added before or after the tracer) decides: the hooks flush what has
   * ended and spanguard records on; should that listener then end the
   * process (process.exit()), the spans still open are exported
   * interrupted by the signal. Signals reach the main thread only: a
   * worker thread's tracer is shut down by the main thread's hook, with
   * every other hooked tracer of the process; made with its hooks on, it
   * also has the library's termination watchdog (see the constructor),
   * which does that work when the main thread has no hook (and is put
   * back when the main thread's last listener for the signal goes:
   * reclaimWhenLastListenerGoes). In a container's PID 1 with
   * no listener of the program's own, where the signal does not end the
   * process, they flush instead and stay. One listener a signal serves
   * every tracer; it goes once the last hooked tracer has shut down.
   */
  installProcessHooks({ timeoutMs = 3000, signals = ['SIGTERM', 'SIGINT'] } = {}) {
    native.hookAdd(this.#live());
    hookedTracers.set(this, { timeoutMs, signals: [...signals] });
    syncHookListeners();
    return this;
  }

  /** Takes this tracer's process hooks off (shut down, closed): with the last, Node's own signal handling is back. */
  #unhook() {
    const hooks = hookedTracers.get(this);
    if (!hooks) return Promise.resolve();
    releasedTimeoutMs = Math.max(hooksTimeout(), hooks.timeoutMs);
    hookedTracers.delete(this);
    return syncHookListeners();
  }
}

/**
 * The Span the package exports: its prototype is the class's (instanceof,
 * the methods), and constructing it throws. A span is begun by its tracer,
 * whose handle it holds: one a program made (new Span(tracer, hi, lo))
 * named whichever span it liked. Not a check in Span's constructor: that
 * cost 25 to 40 instructions a span (callgrind, Node 20).
 */
const ExportedSpan = function Span() {
  throw new TypeError('spanguard: a Span is begun by a Tracer (startSpan, withSpan), not constructed');
};
ExportedSpan.prototype = Span.prototype;
// span.constructor, too, is the one that throws: the class itself stays this module's.
Object.defineProperty(Span.prototype, 'constructor', { value: ExportedSpan, writable: true, configurable: true });

/** The span of the innermost withSpan around the caller, or undefined. */
const currentSpan = () => storage.getStore();

module.exports = {
  Tracer, Span: ExportedSpan, SpanguardError, KIND, STATUS, RESULT, EVENT, events, currentSpan, load, isOk,
  version: () => addon().version(),
};
// For the tests, not part of the API: what the addon's listener does with
// an event (a newer library's number included).
Object.defineProperty(module.exports, 'emitEventForTest', { value: emitEvent });
// For otel.js and the tests, not part of the API (index.d.ts leaves it
// out; not enumerable, so no spread or serialisation meets it). Nothing
// here writes a span's or a tracer's internals, nor hands out a handle a
// call could take: the addon stays this module's.
Object.defineProperty(module.exports, 'internal', {
  value: Object.freeze({
    beforeHookedShutdown,
    /** Whether `span` (a Span) ended. */
    spanEnded: (span) => spanEnded(span),
    /** Whether `span` (a Span) records nothing: no slot was free, or its tracer was closed. */
    recordsNothing: (span) => spanHi(span) === 0 && spanLo(span) === 0,
    /** Whether `tracer` (a Tracer) was closed. */
    tracerClosed: (tracer) => tracerClosed(tracer),
    /** Adds a log record processor's counts ({ attached, notAttached, held() }) to `tracer`'s stats(). */
    addLogRecordCounts: (tracer, counts) => addLogRecordCounts(tracer, counts),
    /** The slot `span` (a Span) had (its tracer's number and slot), for tests that wait for its reuse. */
    spanSlot: (span) => spanHi(span),
    /** spanguard_result_is_ok, the library's own, for the test that compares isOk with it. */
    libraryIsOk: (code) => addon().isOk(code),
  }),
});
