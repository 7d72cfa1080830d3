'use strict';
/**
 * The OpenTelemetry bridge: a SpanProcessor for @opentelemetry/sdk-trace-base
 * and sdk-trace-node that records every span the SDK makes in spanguard, with
 * the SDK's own trace and span ids, parent, flags, tracestate, start and end
 * times, name (a rename with updateName included), kind, instrumentation
 * scope, attributes (arrays as arrays), events, links (with their
 * tracestate and whether their context was remote; one with an invalid
 * context kept when it has attributes or a tracestate), status, and the
 * counts of what its span limits dropped.
 *
 * Each span begins in spanguard when the SDK starts it (onStart), so a
 * process killed in the middle of a call still exports the open span, and
 * what the application sets on it while it is open (attributes, events,
 * links, a new name, status) is passed on as it is set, so that span
 * carries it too (a SIGKILL runs no JavaScript; neither does a crash).
 * What only the end knows (the end time) is added at onEnd. Add it to a
 * provider you make; it never sets a global provider:
 *
 *   const provider = new NodeTracerProvider({ spanProcessors: [new SpanguardSpanProcessor({ serviceName: 'agent' })] });
 *
 * Like the SDK's own processors it never throws into the application: a
 * span or a part of one that spanguard refuses is counted in `failures`.
 *
 * For what takes only an exporter, SpanguardSpanExporter (below) records
 * each span once it has ended, through the same code.
 */
const fs = require('fs');
const path = require('path');

const { Tracer, SpanguardError, RESULT, internal } = require('./index.js');
// What otel.js reads of spanguard's spans and tracers, whose internals are private.
const { beforeHookedShutdown, spanEnded, recordsNothing, tracerClosed, addLogRecordCounts } = internal;

const hasOwn = (o, k) => Object.prototype.hasOwnProperty.call(o, k);
const NONE = Object.freeze([]);
/** No attributes, as attributeLists gives them (its lists are only read). */
const NO_LISTS = Object.freeze([NONE, NONE]);

/**
 * OpenTelemetry attributes as spanguard takes them, as two lists (keys and
 * values, arrays as arrays), in one pass and with no object in between;
 * undefined and null values are left out, as the SDK leaves them out, and
 * so are those equal to `unchanged`'s (the attributes a span started
 * with, at its end). An array holding null or undefined (which
 * OpenTelemetry allows) goes as it is: the binding sends those elements
 * as their type's zero, as OpenTelemetry lets an exporter do. None
 * (usually so at an end, where what was set came as it was set): the
 * lists of NO_LISTS, none made.
 */
function attributeLists(attributes, processor, unchanged) {
  let keys = null;
  let values = null;
  if (!attributes) return NO_LISTS;
  for (const key in attributes) {
    if (!hasOwn(attributes, key)) continue;
    const v = attributes[key];
    if (v === undefined || v === null || (unchanged !== undefined && unchanged[key] === v)) continue;
    if (keys === null) {
      keys = [];
      values = [];
    }
    keys.push(key);
    values.push(v);
  }
  return keys === null ? NO_LISTS : [keys, values];
}

/** The same as an object, for the calls that take one (links, events). */
function attributesOf(attributes, processor) {
  const [keys, values] = attributeLists(attributes, processor);
  const out = {};
  for (let i = 0; i < keys.length; i++) out[keys[i]] = values[i];
  return out;
}

/** The SDK span's setters `follow` needs (addLink and addLinks it follows where the SDK has them). */
const FOLLOWED = ['setAttribute', 'setAttributes', 'addEvent', 'updateName', 'setStatus'];
/** The setters that pass on through `forward`, and what they set. */
const FORWARDED = [['addEvent', 'events'], ['addLink', 'links'], ['addLinks', 'links'], ['updateName', 'name'],
  ['setStatus', 'status']];

/**
 * A prototype over the SDK span's own (`base`) whose setters do its work
 * and then pass on what it kept to `processor` (`forward`), for a span
 * that has an entry in `open` (the processor's open spans), as long as it
 * has one (onEnd takes it out). One a prototype and processor, made at its
 * first span: a span then costs one prototype change, not a closure a
 * setter.
 */
function followingPrototype(base, processor, open) {
  const proto = Object.create(base);
  const define = (name, fn) => Object.defineProperty(proto, name, {
    value: fn, writable: true, configurable: true, enumerable: false,
  });
  define('setAttribute', function setAttribute(key, value) {
    const result = base.setAttribute.call(this, key, value);
    const entry = open.get(this);
    // Within setAttributes (the SDK's sets through setAttribute) its keys go on in one call.
    if (entry !== undefined && !entry.inSetAttributes) processor.forwardAttribute(this, entry, key);
    return result;
  });
  define('setAttributes', function setAttributes(attributes) {
    const entry = open.get(this);
    if (entry === undefined) return base.setAttributes.call(this, attributes);
    entry.inSetAttributes = true;
    let result;
    try {
      result = base.setAttributes.call(this, attributes);
    } finally {
      entry.inSetAttributes = false;
    }
    processor.forward(this, entry, 'attributes', attributes);
    return result;
  });
  for (const [name, what] of FORWARDED) {
    if (typeof base[name] !== 'function') continue; // addLink, addLinks: SDKs since 1.24
    define(name, function followed(...args) {
      const result = base[name].apply(this, args);
      const entry = open.get(this);
      if (entry !== undefined) processor.forward(this, entry, what);
      return result;
    });
  }
  return proto;
}

/**
 * The events SpanguardLogRecordProcessor added to the span that lie among
 * the oldest ones `complete` drops (dropOldest, for the `evicted` oldest
 * of the SDK's events spanguard holds): each as tryAddEvent's arguments,
 * to be added again. A log event lies there when fewer of the SDK's events
 * came before it than go (an instrumentation adding an event a streamed
 * chunk has the SDK evict its oldest past its limit of 128, and the prompt
 * event emitted before them would go with them). They are added again
 * after the others (their times say when they came). `logged` is
 * forgotten, so a second call finds nothing.
 */
function keepLogged(entry, evicted) {
  const { logged } = entry;
  if (!logged || !evicted) return NONE;
  entry.logged = null;
  return logged.filter(([before]) => before < evicted).map(([, args]) => args);
}

/** How many of the SDK's events spanguard holds for `entry`: those passed on, less those it refused. */
function heldEvents(entry) {
  return entry.events - entry.eventsFrom - (entry.eventsRefused ? entry.eventsRefused.length : 0);
}

/**
 * What onEnd does with an SDK span's events or links: how many of the
 * oldest spanguard holds it drops, which it sends, and how many more it
 * counts dropped. The SDK keeps the last of those it was given (`kept`;
 * the `dropped` first ones it evicted); the bridge passed on those
 * numbered `from` to `to`, and spanguard took those of them not in
 * `refused` (counted dropped when refused). Those it took that the SDK
 * evicted since are spanguard's oldest: dropped there (and counted by
 * spanguard); no more, or it would drop ones the SDK kept in the stead of
 * those it never held. Those the SDK kept that were not passed are sent,
 * so that spanguard ends with the SDK's own, in order (less those it
 * refused), and each one given is held or counted once.
 */
function stillToSend(kept, dropped, from, to, refused) {
  const all = kept || [];
  const gone = dropped || 0;
  // Every one the SDK had was passed on (no events, say): then it evicted
  // none since (they are passed on only while it has room); nothing to copy.
  if (all.length + gone === to) return [0, NONE, from];
  const evicted = Math.max(0, Math.min(to, gone) - from);
  const held = refused ? evicted - refused.filter((n) => n < gone).length : evicted;
  return [held, all.slice(Math.max(0, to - gone)), gone - evicted];
}

/**
 * SDK spans let go of open (garbage-collected without an end: a stream
 * never read to its end, a span started on a path that skipped its end):
 * their spanguard span is ended then, marked `spanguard.unended` as a
 * shutdown marks the spans still open. Nothing else could end it, and
 * open it held one of the tracer's slots for the life of the process:
 * after 4,096 such spans no span was recorded any more (the SDK's own
 * processors hold nothing for a span before its end). The held value is
 * the spanguard span and its processor, neither of which refers to the
 * SDK span; the entry is the token onEnd unregisters with.
 */
/**
 * The resource attributes last passed on to each spanguard tracer, by any
 * processor or exporter of this bridge: a tracer has one resource, which
 * it sends with every batch (`noteResource`).
 */
const RESOURCE_OF = new WeakMap();

/**
 * The exporters of the span processors on the provider an SDK span came
 * from (its `_spanProcessor`, the provider's MultiSpanProcessor): a
 * Batch- or SimpleSpanProcessor's `_exporter`.
 */
function exportersBeside(otelSpan) {
  const active = otelSpan && otelSpan._spanProcessor;
  const processors = active && Array.isArray(active._spanProcessors) ? active._spanProcessors : [];
  return processors.map((p) => p && p._exporter).filter(Boolean);
}

/**
 * An OTLPTraceExporter's endpoint: the http and proto exporters' URL
 * (behind their retrying transport), the grpc one's host:port; null when
 * its shape is not one of those (another SDK version).
 */
function otlpExporterEndpoint(exporter) {
  const transport = exporter._delegate && exporter._delegate._transport;
  if (!transport) return null;
  const http = transport._transport && transport._transport._parameters;
  if (http && typeof http.url === 'string') return http.url;
  const grpc = transport._parameters;
  if (grpc && typeof grpc.address === 'string') return grpc.address;
  return null;
}

// What loopback is called: one backend under any of these names.
const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/** An endpoint's { scheme, host, port } (a URL, or a grpc host:port); null for none or not a URL. */
function backendOf(endpoint) {
  if (typeof endpoint !== 'string' || endpoint === '') return null;
  let url;
  try {
    url = new URL(endpoint.includes('://') ? endpoint : `http://${endpoint}`);
  } catch (_) {
    return null;
  }
  if (!url.hostname) return null;
  const scheme = url.protocol.replace(/:$/, '');
  const port = url.port ? Number(url.port) : (scheme === 'https' ? 443 : 80);
  return { scheme, host: url.hostname.toLowerCase(), port };
}

/**
 * Whether two endpoints are one backend: one host (loopback by any name)
 * on one port, or a Collector's two OTLP ports (the SDK's grpc exporter
 * on 4317 beside spanguard's OTLP/HTTP on 4318).
 */
function sameBackend(a, b) {
  if (a.host !== b.host && !(LOOPBACK.has(a.host) && LOOPBACK.has(b.host))) return false;
  return a.port === b.port || (Math.min(a.port, b.port) === 4317 && Math.max(a.port, b.port) === 4318);
}

/** An endpoint as a warning says it: scheme, host and port (no path, no credentials). */
function shownBackend(b) {
  return `${b.scheme}://${b.host}:${b.port}`;
}

/** Whether two resources' attributes (as `passResource` passes them) are the same. */
function sameAttributes(a, b) {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const k of keys) {
    if (!hasOwn(b, k)) return false;
    const x = a[k];
    const y = b[k];
    if (Array.isArray(x) && Array.isArray(y)) {
      if (x.length !== y.length || x.some((v, i) => !Object.is(v, y[i]))) return false;
    } else if (!Object.is(x, y)) return false;
  }
  return true;
}

const COLLECTED_OPEN = new FinalizationRegistry(({ span, processor, key }) => {
  if (key !== undefined && processor.byContext !== null) processor.byContext.delete(key);
  if (spanEnded(span) || processor.stopped()) return;
  try {
    span.setAttribute('spanguard.unended', true);
    span.end();
  } catch (_) {
    processor.failures++;
  }
});

// The instrumentation that puts a chat's messages only in log records,
// never on the span (README, "With OpenTelemetry"; its chat spans always
// come with some: roles and finish reasons without captureMessageContent).
const LOG_RECORDS_ONLY_INSTRUMENTATION = '@opentelemetry/instrumentation-openai';

/** The package.json of each copy of package `name` loaded with require() (by its directory), for a warning. */
function loadedCopies(name) {
  const copies = new Map();
  const marker = `${path.sep}node_modules${path.sep}${name.split('/').join(path.sep)}${path.sep}`;
  for (const file of Object.keys(require.cache)) {
    const at = file.lastIndexOf(marker);
    if (at < 0) continue;
    const dir = file.slice(0, at + marker.length - 1);
    if (copies.has(dir)) continue;
    let manifest = {};
    try {
      manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    } catch (_) {
      // Counted, without its version.
    }
    copies.set(dir, manifest);
  }
  return [...copies.values()];
}

/**
 * What to say of the copies of @opentelemetry/api-logs loaded: how many, their versions, and the one
 * install that makes sdk-node and the instrumentation share one (the version a loaded
 * @opentelemetry/sdk-node depends on).
 */
function apiLogsCopies() {
  const copies = loadedCopies('@opentelemetry/api-logs');
  const versions = [...new Set(copies.map((m) => m.version).filter(Boolean))].sort();
  const sdk = loadedCopies('@opentelemetry/sdk-node')[0];
  const wanted = sdk && sdk.dependencies ? sdk.dependencies['@opentelemetry/api-logs'] : undefined;
  const loaded = copies.length > 1 ? ` (${copies.length} copies loaded, of ${versions.join(', ')})` : '';
  return `${loaded}: \`npm ls @opentelemetry/api-logs\` shows them; installing the version `
    + (wanted ? `@opentelemetry/sdk-node depends on, \`npm install @opentelemetry/api-logs@${wanted}\`,`
      : '@opentelemetry/sdk-node depends on (npm install @opentelemetry/api-logs@<that version>)')
    + ' makes the SDK and the instrumentation share one';
}

class SpanguardSpanProcessor {
  // Each open SDK span's entry ({ span: spanguard Span, name, attributes
  // and links at start, ... }), by the SDK span: private, and not a
  // property of the SDK span (it was one, under a Symbol), which any code
  // holding the span reaches: a spread or Object.assign copied it (and a
  // copy's end() ended the original's spanguard span), and a program
  // could delete it (the span was lost) or put another span's there (that
  // one was ended in its stead).
  #open = new WeakMap();

  /**
   * @param {Tracer | import('./index').TracerOptions} [tracer] a spanguard Tracer, or options to make one.
   *   The provider's span limits apply to its spans, not the tracer's (see onStart).
   */
  constructor(tracer = {}) {
    // A tracer made here is this processor's alone: shutdown frees it.
    this.ownsTracer = !(tracer instanceof Tracer);
    this.tracer = this.ownsTracer ? new Tracer(tracer) : tracer;
    // The SDK span's prototype -> its following prototype (`follow`), or null for one that cannot be followed.
    this.following = new Map();
    this.failures = 0;
    this.shutDown = false;
    // The SpanguardLogRecordProcessors given this processor: what they could
    // not attach is said at its shutdown (sayNotAttached).
    this.logProcessors = [];
    this.warnedResources = false; // noteResource
    this.warnedSentTwice = false; // warnIfSentTwice
    // Whether a SpanguardLogRecordProcessor was made for this processor (or
    // the exporter around it), and how many log records reached it: none
    // by the end of a chat span that sends its messages as log records
    // means they go elsewhere (warnIfLogRecordsMissing).
    this.logProcessorGiven = false;
    this.logRecordsSeen = 0;
    this.warnedLogRecordsMissing = false;
    // The open spans' entries by trace and span id, for
    // SpanguardLogRecordProcessor (which finds a record's span by the span
    // context it carries): null, and no cost a span, until one is made.
    this.byContext = null;
  }

  /** Keeps the open spans' entries by their ids from now on (`byContext`). */
  watchContexts() {
    if (this.byContext === null) this.byContext = new Map();
  }

  /**
   * Whether shutdown has run (or the tracer was closed): what is set on or
   * ends a span after it is ignored, as the specification asks of a
   * processor. The tracer exported the spans open then, marked unended;
   * passing more on got a warning that spans begun now are not recorded
   * (none was begun), and on a tracer this processor made and freed the
   * span's handle names nothing.
   */
  stopped() {
    return this.shutDown || tracerClosed(this.tracer);
  }

  onStart(otelSpan) {
    try {
      const entry = this.begin(otelSpan);
      this.#open.set(otelSpan, entry);
      let key;
      if (this.byContext !== null) {
        const ctx = otelSpan.spanContext();
        key = ctx.traceId + ctx.spanId;
        entry.key = key;
        this.byContext.set(key, entry);
      }
      COLLECTED_OPEN.register(otelSpan, { span: entry.span, processor: this, key }, entry);
      this.follow(otelSpan);
    } catch (_) {
      this.failures++;
    }
  }

  /**
   * Begins the SDK span in spanguard with what it holds now (its start, or
   * all of it for an ended span the exporter is given) and returns its
   * entry, which `complete` finishes from. Throws what the tracer throws.
   */
  begin(otelSpan) {
    // The provider's resource, once (an identity check a span): spans
    // arrive under its service.name and attributes, as with the SDK's
    // own exporter.
    const resource = otelSpan.resource;
    if (resource && resource !== this.resource) {
      this.passResource(resource);
      this.warnIfSentTwice(otelSpan);
    }
    const ctx = otelSpan.spanContext();
    // sdk-trace-base 2.x gives the parent's context; 1.x only its id.
    const parent = otelSpan.parentSpanContext;
    const scope = otelSpan.instrumentationScope || otelSpan.instrumentationLibrary || {};
    const atStart = { ...otelSpan.attributes };
    const span = this.tracer.beginForeign(otelSpan.name, {
      kind: (otelSpan.kind || 0) + 1, // OpenTelemetry's SpanKind counts from INTERNAL = 0
      traceId: ctx.traceId,
      spanId: ctx.spanId,
      parentSpanId: parent ? parent.spanId : otelSpan.parentSpanId,
      parentIsRemote: Boolean(parent && parent.isRemote),
      traceFlags: ctx.traceFlags,
      traceState: ctx.traceState ? ctx.traceState.serialize() : '',
      startTime: otelSpan.startTime,
      scopeName: scope.name,
      scopeVersion: scope.version,
      scopeSchemaUrl: scope.schemaUrl,
      // The SDK's span limits applied (its user's); spanguard's own would
      // cut what it kept (128 of the 1000 attributes a provider allowed).
      limitedByCaller: true,
    }, attributeLists(atStart, this));
    const links = otelSpan.links || [];
    const droppedLinks = otelSpan.droppedLinksCount || 0;
    let linksRefused = null;
    for (let i = 0; i < links.length; i++) {
      if (!this.link(span, links[i])) (linksRefused || (linksRefused = [])).push(droppedLinks + i);
    }
    // What the SDK dropped before the start (attributes and links given
    // past its limits), counted now: a span killed open says so too.
    const droppedAttributes = otelSpan.droppedAttributesCount || 0;
    if (droppedAttributes > 0 || droppedLinks > 0) span.addDroppedCounts(droppedAttributes, 0, droppedLinks);
    return {
      span, name: otelSpan.name, attributes: atStart,
      // Events and links numbered as the SDK span has had them (those it
      // evicted included): from*, up to events and links, passed on;
      // *Refused, those of them spanguard did not take (counted dropped
      // when refused; null while there are none), which onEnd must not
      // drop from spanguard in the stead of ones the SDK kept.
      eventsFrom: 0, events: 0, eventsRefused: null, linksFrom: droppedLinks, links: droppedLinks + links.length,
      linksRefused, inSetAttributes: false,
      // What the SDK had dropped (attributes, events, links) when the
      // bridge last looked, and what it counted on the spanguard span for
      // it as it happened (`passDrops`).
      droppedSeen: [droppedAttributes, 0, droppedLinks], droppedCounted: [droppedAttributes, 0, droppedLinks],
      // The events SpanguardLogRecordProcessor added (null while there are
      // none), each as [how many of the SDK's events spanguard held before
      // it, tryAddEvent's arguments]: they are not the SDK's to evict
      // (`keepLogged`). `key`: the span's in `byContext`, when kept there.
      logged: null, key: undefined,
    };
  }

  /**
   * Makes what is set on the open span reach spanguard as it is set: the
   * SDK tells a processor nothing between onStart and onEnd. The span's
   * prototype is swapped for one over it whose setters pass on what the
   * SDK kept after doing their own work (`followingPrototype`;
   * recordException adds its event through addEvent, setAttributes sets
   * through setAttribute). A span that cannot take another prototype, or
   * whose setters are its own properties (which hide the prototype's), is
   * completed at onEnd.
   */
  follow(otelSpan) {
    const base = Object.getPrototypeOf(otelSpan);
    let proto = this.following.get(base);
    if (proto === undefined) {
      const ok = base !== null && FOLLOWED.every((name) => typeof base[name] === 'function');
      proto = ok ? followingPrototype(base, this, this.#open) : null;
      this.following.set(base, proto);
    }
    if (proto !== null) Reflect.setPrototypeOf(otelSpan, proto); // false for a span that cannot take it: left as it is
  }

  /** `forward` for one attribute, the setter instrumentations call most. */
  forwardAttribute(otelSpan, entry, key) {
    if (this.stopped()) return;
    try {
      const kept = otelSpan.attributes;
      if (!kept || !hasOwn(kept, key)) {
        this.passDrops(otelSpan, entry); // refused past the SDK's limit, maybe
        return;
      }
      const v = kept[key];
      if (v === undefined || v === null || entry.attributes[key] === v) return;
      entry.attributes[key] = v;
      entry.span.setAttribute(key, v);
    } catch (_) {
      this.failures++;
    }
  }

  /**
   * Counts on the spanguard span what the SDK dropped since the bridge
   * last looked, as it happens: past its limits the SDK refuses new
   * attributes and evicts its oldest events and links, which the bridge
   * does not pass on, and a span killed open carried none of it, the
   * count being added only at onEnd. An evicted event or link spanguard
   * had refused is not counted again (spanguard counted it when it
   * refused it). `complete` counts only the rest.
   */
  passDrops(otelSpan, entry) {
    const now = [otelSpan.droppedAttributesCount || 0, otelSpan.droppedEventsCount || 0,
      otelSpan.droppedLinksCount || 0];
    const seen = entry.droppedSeen;
    const refused = [null, entry.eventsRefused, entry.linksRefused];
    const add = [0, 0, 0];
    for (let i = 0; i < 3; i++) {
      if (now[i] <= seen[i]) continue;
      let n = now[i] - seen[i];
      if (refused[i]) n -= refused[i].filter((r) => r >= seen[i] && r < now[i]).length;
      seen[i] = now[i];
      add[i] = Math.max(0, n);
    }
    if (add[0] > 0 || add[1] > 0 || add[2] > 0) {
      entry.span.addDroppedCounts(add[0], add[1], add[2]);
      for (let i = 0; i < 3; i++) entry.droppedCounted[i] += add[i];
    }
  }

  /**
   * Passes on what a setter of the open span just set (the SDK's value,
   * after its limits), once: `entry` records what was passed, and onEnd
   * sends only what it does not hold. Events and links only while the
   * SDK's list has never gone past its limit: past it the SDK drops its
   * oldest, and passing each new one on would leave spanguard holding
   * every one evicted (its room in the payload pool is not given back
   * before the span ends: an LLM span streaming thousands of events would
   * hold them all), so what comes then is left to onEnd, which drops from
   * spanguard those the SDK evicted. A span killed before its end holds
   * the first ones. (Attributes past the limit the SDK refuses, keeping
   * the first: those it kept may all go on.)
   */
  forward(otelSpan, entry, what, attributes) {
    if (this.stopped()) return;
    try {
      const { span } = entry;
      if (what === 'attributes') {
        const given = attributes || {};
        const kept = otelSpan.attributes || {};
        const keys = [];
        const values = [];
        for (const key in given) {
          if (!hasOwn(given, key) || !hasOwn(kept, key)) continue;
          const v = kept[key];
          if (v === undefined || v === null || entry.attributes[key] === v) continue;
          keys.push(key);
          values.push(v);
          entry.attributes[key] = v;
        }
        if (keys.length > 0) span.setAttributeLists(keys, values);
        this.passDrops(otelSpan, entry);
      } else if (what === 'events' || what === 'links') {
        // The SDK's limits are private (`_spanLimits`, in
        // @opentelemetry/sdk-trace-base 1.x and 2.x and sdk-trace 2.x; no
        // public API gives them). Its public dropped count tells the same
        // since 1.x: past the limit it has evicted one and counted it.
        const limits = otelSpan._spanLimits;
        const limit = limits && (what === 'events' ? limits.eventCountLimit : limits.linkCountLimit);
        const now = (what === 'events' ? otelSpan.events : otelSpan.links) || [];
        const count = what === 'events' ? otelSpan.droppedEventsCount : otelSpan.droppedLinksCount;
        const dropped = count || 0;
        // Past the limit the SDK has evicted one; at it, it still holds
        // every one, the last that fits too (`>=` held it back, and a span
        // killed open held one fewer than the SDK's, as in the Python bridge).
        // Neither the limits nor the count: nothing tells what it kept, and
        // the end sends what it has. (With the limits alone in the check,
        // an SDK that renamed them passed nothing on: an event on a span
        // open at SIGTERM, such as the AI SDK's ai.stream.firstChunk, was
        // lost.)
        if (!limits && typeof count !== 'number') return;
        if (dropped > 0 || (limit !== undefined && now.length + dropped > limit)) {
          this.passDrops(otelSpan, entry);
          return;
        }
        const from = Math.max(0, entry[what] - dropped);
        const refused = what === 'events' ? 'eventsRefused' : 'linksRefused';
        for (let i = from; i < now.length; i++) {
          if (!(what === 'events' ? this.event(span, now[i]) : this.link(span, now[i]))) {
            (entry[refused] || (entry[refused] = [])).push(dropped + i);
          }
        }
        entry[what] = dropped + now.length;
      } else if (what === 'name') {
        if (otelSpan.name !== entry.name) {
          span.updateName(otelSpan.name);
          entry.name = otelSpan.name;
        }
      } else if (what === 'status') {
        const status = otelSpan.status || {};
        if (status.code) span.setStatus(status.code, status.message || '');
      }
    } catch (_) {
      this.failures++;
    }
  }

  /** Passes on an event; whether spanguard holds it (`held`). */
  event(span, event) {
    let answer = null;
    try {
      // The SDK's drops past attributePerEventCountLimit: its own OTLP
      // exporter sends them in the event's droppedAttributesCount.
      answer = span.tryAddEvent(event.name, attributesOf(event.attributes, this), event.time,
        event.droppedAttributesCount);
    } catch (_) {
      this.failures++;
    }
    return this.held(span, answer, 1, 0);
  }

  /**
   * Passes on a link by its ids, with its tracestate and isRemote; one with
   * an invalid context is passed too (spanguard keeps it when it has
   * attributes or a tracestate, as OpenTelemetry's spec asks). Whether
   * spanguard holds it (`held`).
   */
  link(span, link) {
    let answer = null;
    try {
      const ctx = link.context;
      const state = ctx.traceState;
      answer = span.tryAddLinkIds(ctx.traceId, ctx.spanId, ctx.traceFlags, attributesOf(link.attributes, this),
        state ? state.serialize() : '', Boolean(ctx.isRemote), link.droppedAttributesCount);
    } catch (_) {
      this.failures++;
    }
    return this.held(span, answer, 0, 1);
  }

  /**
   * Whether spanguard holds the event or link a call passed on, from what
   * it answered: true (held, cut maybe); false (refused: the span's count
   * limit, or no room in the payload pool for it, and counted dropped by
   * spanguard); null (neither held nor counted, as a link spanguard finds
   * nothing to record in, or a call that threw: counted here, so that each
   * one the SDK kept is held or counted once).
   */
  held(span, answer, events, links) {
    if (answer === null) {
      try {
        span.addDroppedCounts(0, events, links);
      } catch (_) {
        this.failures++;
      }
    }
    return answer === true;
  }

  onEnd(otelSpan) {
    const entry = this.#open.get(otelSpan);
    // A span this processor did not begin (a copy of one, say) is none of its own.
    if (entry === undefined) return;
    // Out: the setters pass nothing more on.
    this.#open.delete(otelSpan);
    COLLECTED_OPEN.unregister(entry);
    if (entry.key !== undefined && this.byContext !== null) this.byContext.delete(entry.key);
    if (this.stopped()) return;
    this.complete(otelSpan, entry);
  }

  /**
   * Ends the spanguard span of `entry` with what the ended SDK span holds
   * that `entry` says spanguard does not (what was set and not passed on,
   * the events and links the SDK kept, dropped counts, status), at its end
   * time. Never throws: what spanguard refuses is counted in `failures`.
   */
  complete(otelSpan, entry) {
    const { span } = entry;
    if (this.logProcessorGiven && this.logRecordsSeen === 0) this.warnIfLogRecordsMissing(otelSpan);
    try {
      // What was set after the start and not passed on (past the
      // limit, or on a span that could not be followed), in one native
      // call per 128: usually nothing.
      const [keys, values] = attributeLists(otelSpan.attributes, this, entry.attributes);
      if (keys.length > 0) span.setAttributeLists(keys, values);
    } catch (_) {
      this.failures++;
    }
    try {
      if (otelSpan.name !== entry.name) span.updateName(otelSpan.name);
    } catch (_) {
      this.failures++;
    }
    // Events and links: those the SDK kept (its last ones), in order, the
    // others counted. Those passed on (and taken by spanguard) that the SDK
    // evicted since are dropped from spanguard first.
    const [evictedLinks, links, dl] = stillToSend(otelSpan.links, otelSpan.droppedLinksCount, entry.linksFrom,
      entry.links, entry.linksRefused);
    const [evictedEvents, events, de] = stillToSend(otelSpan.events, otelSpan.droppedEventsCount, entry.eventsFrom,
      entry.events, entry.eventsRefused);
    // What the SDK's own limits left out (an event's or link's own count
    // is not carried), less what was counted as it happened (`passDrops`):
    // counted first, then those evicted taken off uncounted (a crash
    // between the two counts one twice, never none).
    const counted = entry.droppedCounted || [0, 0, 0];
    // The log events among the oldest spanguard holds go with those the
    // SDK evicted (dropOldest takes the oldest): taken off uncounted and
    // added again (`keepLogged`).
    const relogged = keepLogged(entry, evictedEvents);
    const live = counted[0] > 0 || counted[1] > 0 || counted[2] > 0 || relogged.length > 0;
    if (!live && (evictedEvents > 0 || evictedLinks > 0)) {
      try {
        span.dropOldest(evictedEvents, evictedLinks);
      } catch (_) {
        this.failures++;
      }
    }
    try {
      const da = otelSpan.droppedAttributesCount || 0;
      const rest = live
        ? [Math.max(0, da - counted[0]), Math.max(0, evictedEvents + de - counted[1]),
            Math.max(0, evictedLinks + dl - counted[2])]
        : [da, de, dl];
      if (rest[0] > 0 || rest[1] > 0 || rest[2] > 0) span.addDroppedCounts(rest[0], rest[1], rest[2]);
    } catch (_) {
      this.failures++;
    }
    if (live && (evictedEvents > 0 || evictedLinks > 0)) {
      try {
        span.dropOldest(evictedEvents + relogged.length, evictedLinks, false);
      } catch (_) {
        this.failures++;
      }
    }
    for (const args of relogged) {
      try {
        span.tryAddEvent(...args);
      } catch (_) {
        this.failures++;
      }
    }
    for (const link of links) this.link(span, link);
    for (const event of events) this.event(span, event);
    try {
      const status = otelSpan.status;
      if (status && status.code) span.setStatus(status.code, status.message || '');
    } catch (_) {
      this.failures++;
    }
    try {
      span.end(otelSpan.endTime);
    } catch (_) {
      this.failures++;
    }
  }

  /**
   * Passes the provider's resource to the tracer. One whose detectors are
   * still resolving (NodeSDK's: a promise an attribute) stays pending until
   * someone calls its waitForAsyncAttributes(), as the SDK's own span
   * processors do before they export; with this bridge the only processor,
   * no one else would. So its settled attributes (service.name among them)
   * go now, and the whole resource once it has settled.
   */
  passResource(resource) {
    this.resource = resource;
    // `whole`: not the settled part of a resource still resolving (which
    // differs from what it will be, and is not compared).
    const set = (attributes, whole) => {
      const [keys, values] = attributeLists(attributes, this);
      const attrs = {};
      for (let i = 0; i < keys.length; i++) attrs[keys[i]] = values[i];
      if (whole) this.noteResource(attrs);
      this.tracer.setResource(attrs);
    };
    if (!resource.asyncAttributesPending || typeof resource.waitForAsyncAttributes !== 'function') {
      set(resource.attributes, true);
      return;
    }
    if (typeof resource.getRawAttributes === 'function') {
      // Not `attributes`, which logs an error while some are pending.
      const settled = {};
      for (const [k, v] of resource.getRawAttributes()) {
        if (v != null && typeof v.then !== 'function' && !(k in settled)) settled[k] = v;
      }
      set(settled, false);
    }
    const settling = resource.waitForAsyncAttributes().then(() => {
      if (this.resource === resource) set(resource.attributes, true);
    }).catch(() => { this.failures++; }).finally(() => {
      if (this.resource === resource) this.resourceSettling = null;
      resourcesSettling.delete(settling);
    });
    this.resourceSettling = settling;
    resourcesSettling.add(settling);
  }

  /**
   * Says, once a processor (or exporter), when the provider of the span
   * (the first of each provider's, as its resource is passed on) also has
   * the SDK's own OTLPTraceExporter (http, proto or grpc, in a Batch- or
   * SimpleSpanProcessor) sending to the backend spanguard sends to: every
   * span then arrives there twice. Both read OTEL_EXPORTER_OTLP_ENDPOINT,
   * so keeping the exporter of a setup made before spanguard does it; the
   * README warns, but a newcomer who missed that got duplicates with no
   * word said. An exporter sending elsewhere, or a spanguard tracer
   * writing to its local sink, is left unsaid.
   */
  warnIfSentTwice(otelSpan) {
    if (this.warnedSentTwice) return;
    try {
      const ours = backendOf(this.tracer.endpoint());
      if (ours === null) return;
      for (const exporter of exportersBeside(otelSpan)) {
        if (!exporter || !exporter.constructor || exporter.constructor.name !== 'OTLPTraceExporter') continue;
        const theirs = backendOf(otlpExporterEndpoint(exporter));
        if (theirs === null || !sameBackend(ours, theirs)) continue;
        this.warnedSentTwice = true;
        process.emitWarning(`spanguard: the TracerProvider also has the OpenTelemetry SDK's own exporter `
          + `(OTLPTraceExporter), which sends to ${shownBackend(theirs)}, the backend spanguard sends to `
          + `(${shownBackend(ours)}): every span arrives there twice. Remove the SDK's exporter (spanguard delivers `
          + 'every span; with NodeSDK, its traceExporter), or point one of them at another backend',
        { code: 'SPANGUARD_SENT_TWICE' });
        return;
      }
    } catch (_) {
      this.failures++;
    }
  }

  /**
   * Says, once, that a chat span of an instrumentation that sends the
   * messages only as log records ended while no log record at all reached
   * the SpanguardLogRecordProcessor made for this bridge: the prompt and
   * the completion went elsewhere. That is so when the log processor is
   * not among the LoggerProvider's processors, or when the instrumentation
   * writes to a copy of @opentelemetry/api-logs other than the one NodeSDK
   * registered its LoggerProvider with (each copy keeps its own global
   * provider): a plain `npm install` of the latest @opentelemetry/sdk-node
   * and instrumentation-openai installs two. The spans arrived without
   * their prompts, and nothing said so.
   */
  warnIfLogRecordsMissing(otelSpan) {
    if (this.warnedLogRecordsMissing) return;
    try {
      const scope = otelSpan.instrumentationScope || otelSpan.instrumentationLibrary;
      if (!scope || scope.name !== LOG_RECORDS_ONLY_INSTRUMENTATION) return;
      if (!otelSpan.attributes || otelSpan.attributes['gen_ai.operation.name'] !== 'chat') return;
      this.warnedLogRecordsMissing = true;
      process.emitWarning(`spanguard: the chat span '${otelSpan.name}' of ${LOG_RECORDS_ONLY_INSTRUMENTATION} ended, and `
        + 'no log record (its prompt and completion, sent through the Logs API) reached the '
        + 'SpanguardLogRecordProcessor: it is not among the LoggerProvider\'s processors (NodeSDK\'s '
        + 'logRecordProcessors), or the instrumentation writes to another copy of @opentelemetry/api-logs than '
        + `the SDK's${apiLogsCopies()}`,
      { code: 'SPANGUARD_LOG_RECORDS_MISSING' });
    } catch (_) {
      this.failures++;
    }
  }

  /**
   * Records `attrs` as the tracer's resource and says, once a processor
   * (or exporter), when it differs from the one passed on before: a
   * spanguard tracer sends one resource with every batch, the last one
   * passed on, so the spans of providers with different resources that
   * share it (one exporter given to two providers, say) arrive under one
   * of them, where the SDK's own exporter sends each span under its
   * provider's. That happened in silence, one service's spans filed
   * under another's service.name; the fix is a tracer a provider.
   */
  noteResource(attrs) {
    const previous = RESOURCE_OF.get(this.tracer);
    RESOURCE_OF.set(this.tracer, attrs);
    if (previous === undefined || this.warnedResources || sameAttributes(previous, attrs)) return;
    this.warnedResources = true;
    const name = (a) => (a['service.name'] === undefined ? 'none' : `'${a['service.name']}'`);
    process.emitWarning(`spanguard: spans of TracerProviders with different resources (service.name ${name(previous)}, `
      + `then ${name(attrs)}) go to one spanguard tracer, which sends the last resource passed on with every batch: `
      + 'some spans arrive under the other provider\'s; give each provider its own spanguard Tracer (and its own '
      + 'SpanguardSpanProcessor or SpanguardSpanExporter)', { code: 'SPANGUARD_RESOURCES_DIFFER' });
  }

  /**
   * Resolves when every span ended so far has been exported (or the flush
   * timed out). After shutdown it resolves at once: a processor ignores
   * calls after shutdown (the specification's SHOULD), where a rejection
   * would be an unhandled one in a late request handler.
   */
  async forceFlush() {
    // Spans flushed now go out under the whole resource (passResource).
    if (this.resourceSettling) await this.resourceSettling;
    try {
      await this.tracer.flush();
    } catch (err) {
      if (!(err instanceof SpanguardError && err.code === RESULT.SHUT_DOWN)) throw err;
    }
  }

  /**
   * Flushes, exports spans still open (marked unended) and stops the
   * tracer; one this processor made is freed too (its stats() and
   * sinkPath() still answer): each one the library holds counts towards
   * the 255 it allows, and an application that makes and shuts down
   * providers (a test file each, a recycled worker) ran out. A tracer
   * passed in stays its owner's to close().
   */
  async shutdown() {
    if (!this.shutDown) sayNotAttached(this.logProcessors);
    if (this.resourceSettling) await this.resourceSettling;
    try {
      if (this.ownsTracer) await this.tracer.close();
      else await this.tracer.shutdown();
    } finally {
      this.shutDown = true;
    }
  }
}

// The span event attribute that holds an event log record's body (a map,
// a string, a list: as the record has it), as OpenTelemetry Java's
// event-to-span-event bridge named it, and spanguard's Python bridge names it.
const LOG_RECORD_BODY = 'log.record.body';

// The event records a SpanguardLogRecordProcessor given a
// SpanguardSpanExporter holds at most for spans not exported yet (maxHeld,
// maxHeldBytes): past either, the oldest is counted notAttached. The
// defaults, unless SPANGUARD_LOG_RECORDS_MAX_HELD and
// SPANGUARD_LOG_RECORDS_MAX_HELD_BYTES say otherwise (capFromEnv), as in
// the Python bridge.
const MAX_HELD = 4096;
const MAX_HELD_BYTES = 64 * 1024 * 1024;
// The variables already warned about (once a process each).
const warnedVariables = new Set();

/**
 * A cap given in code checked: a whole number from 1 to
 * Number.MAX_SAFE_INTEGER (2**53 - 1, as in Python); else a TypeError
 * naming `name`. NaN and Infinity were taken, and held records without
 * bound; 0 counted every record at once.
 */
function cap(name, value) {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new TypeError(`spanguard: ${name} must be a whole number from 1 to ${Number.MAX_SAFE_INTEGER}, not ${String(value)}`);
  }
  return value;
}

/**
 * A cap from `variable`, `fallback` when unset or empty. A value that is
 * not a whole number from 1 to 2**53 - 1 is ignored, as spanguard ignores
 * any wrong variable, and named in a warning, once: the default applies.
 */
function capFromEnv(variable, fallback) {
  const raw = (process.env[variable] || '').trim();
  if (raw === '') return fallback;
  const value = /^[0-9]+$/.test(raw) ? Number(raw) : NaN;
  if (Number.isSafeInteger(value) && value >= 1) return value;
  if (!warnedVariables.has(variable)) {
    warnedVariables.add(variable);
    process.emitWarning(`spanguard: ${variable}=${JSON.stringify(raw.slice(0, 40))} ignored: not a whole number from 1 `
      + `to ${Number.MAX_SAFE_INTEGER}; the default, ${fallback}, applies`, { code: 'SPANGUARD_BAD_VARIABLE' });
  }
  return fallback;
}

/**
 * Says (a process warning, at the shutdown of the span processor or
 * exporter they were given: their counts are final then) how many event
 * records `processors` could not put on their spans, naming where they are
 * counted. Nothing when none.
 */
function sayNotAttached(processors) {
  const lost = processors.reduce((n, p) => n + p.notAttached, 0);
  if (lost > 0) {
    process.emitWarning(`spanguard: ${lost} event record(s) sent through the Logs API (prompts, with some `
      + 'instrumentations) did not reach their spans (counted in the tracer\'s stats().log_records_not_attached)',
    { code: 'SPANGUARD_LOG_RECORDS_NOT_ATTACHED' });
  }
}

// @opentelemetry/api's key of the span in a context (createContextKey is Symbol.for).
const SPAN_KEY = Symbol.for('OpenTelemetry Context Key SPAN');

/** An OTEL_BSP_* variable in milliseconds, as the SDK's BatchSpanProcessor reads it. */
function bspMs(name, fallback) {
  const raw = process.env[name];
  const value = raw === undefined || raw.trim() === '' ? NaN : Number(raw);
  return Number.isFinite(value) && value >= 0 ? value : fallback;
}

/**
 * How long an event record waits for its span's export once the span has
 * ended, in seconds: twice the BatchSpanProcessor's schedule delay and
 * export timeout (OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_EXPORT_TIMEOUT; 5 s
 * and 30 s by default: 70 s).
 */
function defaultHoldS() {
  return (2 * (bspMs('OTEL_BSP_SCHEDULE_DELAY', 5000) + bspMs('OTEL_BSP_EXPORT_TIMEOUT', 30000))) / 1000;
}

/** About the memory `value` (a record's attributes or body) holds. */
function sizeOf(value, depth = 0) {
  if (typeof value === 'string') return 16 + 2 * value.length;
  if (value === null || typeof value !== 'object') return 16;
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return 16 + value.byteLength;
  if (depth >= 32) return 16;
  let n = 16;
  if (Array.isArray(value)) {
    for (const v of value) n += 8 + sizeOf(v, depth + 1);
  } else {
    for (const k of Object.keys(value)) n += 8 + sizeOf(k, depth + 1) + sizeOf(value[k], depth + 1);
  }
  return n;
}

/**
 * tryAddEvent's arguments for an event record: its event name, its
 * attributes as they are (`event.name` left out when it says the same),
 * its body under `log.record.body`, its time (its observed time when it
 * has none) and the attributes the SDK's log limits dropped.
 */
function eventArgs(record, name, processor) {
  const event = attributesOf(record.attributes, processor);
  if (event['event.name'] === name) delete event['event.name']; // the span event's name says it
  if (record.body !== undefined && record.body !== null) event[LOG_RECORD_BODY] = record.body;
  return [name, event, record.hrTime || record.hrTimeObserved, record.droppedAttributesCount || 0];
}

/**
 * The SDK span of the record's span context, from the context onEmit is
 * given (the one it was emitted in), as a WeakRef, or null: what says
 * whether the span is still open.
 */
function spanOf(context, ctx) {
  try {
    const span = context && typeof context.getValue === 'function' ? context.getValue(SPAN_KEY) : undefined;
    if (!span || typeof span.spanContext !== 'function' || typeof span.isRecording !== 'function') return null;
    const own = span.spanContext();
    if (own.spanId !== ctx.spanId || own.traceId !== ctx.traceId) return null;
    return new WeakRef(span);
  } catch (_) {
    return null;
  }
}

/**
 * Whether a held record's span can no longer reach the exporter (`now`,
 * performance.now(), in ms): ended `holdMs` ago (from when a look first
 * found it ended, or let go of: late, never early); for a record that
 * named no span the SDK made, `holdMs` after it came. A span still open
 * keeps its records, however long.
 */
function gone(waiting, now, holdMs) {
  if (waiting.span === null) return now - waiting.since >= holdMs;
  const span = waiting.span.deref();
  if (span !== undefined && !(typeof span.ended === 'boolean' ? span.ended : !span.isRecording())) return false;
  if (waiting.endedAt === null) waiting.endedAt = now;
  return now - waiting.endedAt >= holdMs;
}

/**
 * A LogRecordProcessor for @opentelemetry/sdk-logs that records each event
 * (a log record with an event name: `gen_ai.user.message`,
 * `gen_ai.choice`, ...) emitted inside a span spanguard records as an
 * event of that span in spanguard, whole: what the
 * instrumentations that send prompts and completions through the Logs API
 * emit (@opentelemetry/instrumentation-openai with
 * `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`, or
 * `captureMessageContent: true`). Without it their content reaches only a
 * log exporter, or nothing when the application has no LoggerProvider,
 * and the spans spanguard keeps hold no prompt.
 *
 *   const logs = new LoggerProvider({ processors: [new SpanguardLogRecordProcessor(bridge)] });
 *   registerInstrumentations({ tracerProvider: provider, loggerProvider: logs, instrumentations: [...] });
 *
 * The span event is named by the record's event name (`event.name` among
 * its attributes where it has none), at the record's time (its observed
 * time when it has none), with the record's attributes as they are
 * (structured values stay structured: spanguard holds maps and arrays)
 * and its body under `log.record.body`, also as it is. The record is
 * matched to its span by the span context it carries (the instrumentation
 * passes the span's context explicitly), not by the current span, and
 * passed on as it is emitted, as what is set on an open span is: a
 * process killed mid-call still delivers the prompt event emitted as the
 * call began. The event goes to spanguard's span only: the SDK's span,
 * and what the application's own exporters send, are left as they were.
 *
 * With the span processor, the event is added as it is emitted, to the
 * span the processor has open; one whose span it does not have open
 * (ended already, or begun before this processor was made) is not
 * attached: counted in `notAttached`.
 *
 * With the exporter (`new SpanguardLogRecordProcessor(exporter)`), which
 * gets each span only once it has ended and left the SDK's span
 * processor, each event record waits (`held`) until the exporter gets its
 * span in `export`, and is added to it then, at its own time: a record
 * emitted after its span ended, before its export, too. One whose span
 * does not come is counted in `notAttached`: `holdS` after its span was
 * seen ended (by default twice the BatchSpanProcessor's schedule delay and
 * export timeout, OTEL_BSP_*: 70 s; for a record whose context holds no
 * span the SDK made, `holdS` after it came), at the exporter's shutdown,
 * or, the oldest first, past `maxHeld` records or `maxHeldBytes` of them.
 * A record waits as long as its span is open, however long the call
 * takes; what waits dies with a killed process (as the spans in the SDK's
 * queue do: the span processor alone delivers those).
 *
 * A record without an event name (a plain log line), without a span, or
 * of an unsampled span is left alone. Never throws into the SDK; the
 * record goes on to the LoggerProvider's other processors.
 */
class SpanguardLogRecordProcessor {
  /**
   * @param {SpanguardSpanProcessor | SpanguardSpanExporter} bridge the span processor or the span exporter the
   *   TracerProvider was given, whose spans the events are added to.
   * @param {{ maxHeld?: number, maxHeldBytes?: number, holdS?: number }} [options] with the exporter: how
   *   many records, and how many bytes of them, wait for their span's export at most, and how long after the
   *   span ended (seconds).
   */
  constructor(bridge, options = {}) {
    if (bridge instanceof SpanguardSpanExporter) {
      this.exporter = bridge;
      this.spans = bridge.bridge;
    } else if (bridge instanceof SpanguardSpanProcessor) {
      this.exporter = null;
      this.spans = bridge;
      bridge.watchContexts();
    } else {
      throw new TypeError('spanguard: SpanguardLogRecordProcessor needs the SpanguardSpanProcessor or the '
        + 'SpanguardSpanExporter whose spans it adds to');
    }
    const { maxHeld, maxHeldBytes, holdS } = options || {};
    this.maxHeld = maxHeld === undefined ? capFromEnv('SPANGUARD_LOG_RECORDS_MAX_HELD', MAX_HELD) : cap('maxHeld', maxHeld);
    this.maxHeldBytes = maxHeldBytes === undefined
      ? capFromEnv('SPANGUARD_LOG_RECORDS_MAX_HELD_BYTES', MAX_HELD_BYTES) : cap('maxHeldBytes', maxHeldBytes);
    if (holdS !== undefined && !(typeof holdS === 'number' && Number.isFinite(holdS) && holdS >= 0)) {
      throw new TypeError(`spanguard: holdS must be a finite number of seconds, 0 or more, not ${String(holdS)}`);
    }
    this.holdMs = (holdS === undefined ? defaultHoldS() : holdS) * 1000;
    // attached, notAttached: kept by the tracer too, for its stats() (the
    // counts stay there once this processor is let go of); this processor
    // weakly, so that the tracer's list does not keep what it holds.
    const self = new WeakRef(this);
    this.counts = { attached: 0, notAttached: 0, held: () => (self.deref() ? self.deref().waiting.size : 0) };
    addLogRecordCounts(this.spans.tracer, this.counts);
    // The records held for the exporter (Map keeps them oldest first), by
    // a number of their own; the numbers of each span's (trace + span id).
    this.waiting = new Map();
    this.bySpan = new Map();
    this.heldBytes = 0;
    this.numbered = 0;
    this.nextLook = 0; // countGone: when to look again (performance.now())
    if (this.exporter !== null) this.exporter.logProcessors.push(this);
    else this.spans.logProcessors.push(this);
    this.spans.logProcessorGiven = true;
  }

  /** Event records passed on to spanguard as span events (the tracer's stats().log_records_attached). */
  get attached() {
    return this.counts.attached;
  }

  /**
   * Event records of a sampled span that spanguard did not have open
   * (with the exporter: whose span did not come, or that did not fit),
   * or that it refused (the span's event limit, a used-up payload pool:
   * counted dropped on the span too), or that the bridge failed to pass
   * on (counted in the span processor's `failures` too). The tracer's
   * stats().log_records_not_attached adds up those of its processors.
   */
  get notAttached() {
    return this.counts.notAttached;
  }

  /** Event records waiting for their span's export (with the exporter): each ends attached or in notAttached. */
  get held() {
    return this.waiting.size;
  }

  onEmit(record, context) {
    let held = false;
    this.spans.logRecordsSeen++;
    try {
      const attributes = record.attributes;
      let name = record.eventName;
      if (!name && attributes) name = attributes['event.name']; // the Events API's way, still instrumentation-openai's
      const ctx = record.spanContext;
      if (!name || !ctx || !ctx.spanId || ((ctx.traceFlags || 0) & SAMPLED) === 0) return;
      if (this.exporter !== null) {
        this.hold(record, name, ctx, context);
        return;
      }
      const spans = this.spans;
      const entry = spans.byContext !== null && !spans.stopped() ? spans.byContext.get(ctx.traceId + ctx.spanId) : undefined;
      if (entry !== undefined) {
        const args = eventArgs(record, name, spans);
        const before = heldEvents(entry);
        held = entry.span.tryAddEvent(...args) === true;
        if (held) (entry.logged || (entry.logged = [])).push([before, args]);
      }
    } catch (_) {
      this.spans.failures++;
      held = false;
    }
    if (held) this.counts.attached++;
    else this.counts.notAttached++;
  }

  /**
   * Holds an event record for the exporter's export of its span
   * (`attachHeld`); counted at once when the exporter is shut down. The
   * oldest go past the caps (the newest too, alone past the bytes).
   */
  hold(record, name, ctx, context) {
    if (this.exporter.shutDown) {
      this.counts.notAttached++;
      return;
    }
    const key = ctx.traceId + ctx.spanId;
    const args = eventArgs(record, name, this.spans);
    const size = 256 + sizeOf(args[1]);
    const n = ++this.numbered;
    this.waiting.set(n, { key, args, size, span: spanOf(context, ctx), since: performance.now(), endedAt: null });
    const numbers = this.bySpan.get(key);
    if (numbers === undefined) this.bySpan.set(key, [n]);
    else numbers.push(n);
    this.heldBytes += size;
    while (this.waiting.size > 0 && (this.waiting.size > this.maxHeld || this.heldBytes > this.maxHeldBytes)) {
      this.letGo(this.waiting.keys().next().value);
    }
    this.countGone();
  }

  /** Counts held record `n` not attached. */
  letGo(n) {
    const waiting = this.waiting.get(n);
    this.waiting.delete(n);
    const numbers = this.bySpan.get(waiting.key);
    numbers.splice(numbers.indexOf(n), 1);
    if (numbers.length === 0) this.bySpan.delete(waiting.key);
    this.heldBytes -= waiting.size;
    this.counts.notAttached++;
  }

  /**
   * Counts not attached the held records whose span can no longer come
   * (`gone`), or all of them (`everything`: the exporter shut down). Looks
   * at most once a second (or every holdS, when shorter): a look goes
   * through every record held.
   */
  countGone(everything = false) {
    const now = performance.now();
    if (this.waiting.size === 0 || (!everything && now < this.nextLook)) return;
    this.nextLook = now + Math.min(1000, this.holdMs);
    for (const [n, waiting] of [...this.waiting]) {
      if (everything || gone(waiting, now, this.holdMs)) this.letGo(n);
    }
  }

  /**
   * Adds to the span the exporter is recording (`entry`, begun with the
   * SDK span's own events) the records held for it (`key`: trace + span
   * id), in the order they came, as onEmit adds them to an open span.
   */
  attachHeld(key, entry) {
    if (this.bySpan.size === 0) return;
    const numbers = this.bySpan.get(key);
    if (numbers === undefined) return;
    this.bySpan.delete(key);
    for (const n of numbers) {
      const waiting = this.waiting.get(n);
      this.waiting.delete(n);
      this.heldBytes -= waiting.size;
      let held = false;
      try {
        held = entry.span.tryAddEvent(...waiting.args) === true;
      } catch (_) {
        this.spans.failures++;
      }
      if (held) this.counts.attached++;
      else this.counts.notAttached++;
    }
  }

  /**
   * The spanguard tracer is the span processor's (or the exporter's): left
   * to it. Records held for the exporter stay held: their spans may still
   * be in the SDK's queue (the exporter's shutdown counts what is left).
   */
  async shutdown() {
    this.countGone();
  }

  /** Nothing waits here: an event is passed on as it is emitted, or held until its span is exported. */
  async forceFlush() {
    this.countGone();
  }
}

// @opentelemetry/core's ExportResultCode (the package has no dependency to
// import it from) and api's TraceFlags.SAMPLED.
const EXPORT_SUCCESS = 0;
const EXPORT_FAILED = 1;
const SAMPLED = 1;

/**
 * A SpanExporter for @opentelemetry/sdk-trace-base and sdk-trace-node that
 * records each finished span in spanguard, whole, for what takes only an
 * exporter: OpenLLMetry's `traceloop.initialize({ exporter })`, NodeSDK's
 * `traceExporter`, a Simple- or BatchSpanProcessor a framework builds.
 *
 * Each span arrives as the SDK's own OTLP exporter would send it: its ids,
 * parent, times, name, kind, scope, attributes, events, links, status,
 * dropped counts and the provider's resource (it is recorded as the
 * processor records a span it never saw start: `begin`, then `complete`).
 * `export` answers SUCCESS once spanguard holds every sampled span (its
 * exporter retries and spools them from there), FAILED, with an error
 * that says why, when one was not taken (no free span slot, counted in
 * `tracer.stats().dropped_buffer_full`; a shut-down tracer; a span it could
 * not read, counted in `failures`). It never throws into the SDK.
 *
 * An exporter sees a span only once it has ended and left the SDK's span
 * processor: open spans, and spans still in a BatchSpanProcessor's queue,
 * are not spanguard's until then (lost on SIGKILL or a crash).
 * SpanguardSpanProcessor records a span from its start.
 *
 * Events sent through the Logs API (the prompts, with
 * @opentelemetry/instrumentation-openai) reach its spans through
 * `new SpanguardLogRecordProcessor(exporter)`, which holds each until
 * `export` gets its span.
 */
// The exporters not shut down (weakly: one let go of without its
// shutdown must not be kept), for the providers' flush below.
const liveExporters = new Set();
// The providers flushBeforeShutdown was given (weakly, as WeakRefs).
const providersToFlush = new Set();

/**
 * Flushes `provider` (a TracerProvider that is not the global one, whose
 * BatchSpanProcessor feeds a SpanguardSpanExporter) with the global one,
 * wherever that is flushed: by the process hooks (installProcessHooks) at
 * SIGTERM/SIGINT before spanguard shuts down and at beforeExit, and at the
 * process's 'exit' (process.exit() included), while an exporter is live.
 * The SDK never tells an exporter which provider holds it, so a provider
 * used directly (never register()ed) must be named; its queue was lost
 * with the process. Held weakly; given twice, flushed once. Anything
 * with a forceFlush() will do; anything else throws a TypeError.
 */
function flushBeforeShutdown(provider) {
  if (provider === null || typeof provider !== 'object' || typeof provider.forceFlush !== 'function') {
    throw new TypeError('spanguard: flushBeforeShutdown takes a TracerProvider (an object with forceFlush)');
  }
  for (const ref of providersToFlush) if (ref.deref() === provider) return;
  providersToFlush.add(new WeakRef(provider));
}

/** Whether an exporter not shut down is still about (forgetting the others). */
function exporterLive() {
  let live = false;
  for (const ref of liveExporters) {
    const exporter = ref.deref();
    if (exporter === undefined || exporter.shutDown) liveExporters.delete(ref);
    else live = true;
  }
  return live;
}

/**
 * The providers to flush before spanguard shuts down, each once: the
 * global one (NodeSDK's, a provider's register(), set it; the API's
 * ProxyTracerProvider stands in front of it), then those given to
 * flushBeforeShutdown. None with no @opentelemetry/api to find the global
 * one with and none given.
 */
function providersToFlushNow() {
  const providers = [];
  try {
    const global = require('@opentelemetry/api').trace.getTracerProvider();
    providers.push(typeof global.getDelegate === 'function' ? global.getDelegate() : global);
  } catch (_) {
    // No API installed: no global provider.
  }
  for (const ref of providersToFlush) {
    const provider = ref.deref();
    if (provider === undefined) providersToFlush.delete(ref);
    else if (!providers.includes(provider)) providers.push(provider);
  }
  return providers.filter((p) => typeof p.forceFlush === 'function');
}

/**
 * What the tracers' process hooks (installProcessHooks) run before they
 * shut spanguard down when an exporter is live: the providers'
 * forceFlush, which hands their BatchSpanProcessors' queues to the
 * exporter's `export`; the hooks bound the wait. Nothing with no exporter
 * live (the processor records spans as they end, and has no queue in
 * front of it). A provider whose forceFlush throws costs the others
 * nothing.
 */
function flushProviders() {
  if (!exporterLive()) return undefined;
  const providers = providersToFlushNow();
  handOverUnsettledQueues(providers);
  return Promise.allSettled(providers.map((p) => {
    try {
      return p.forceFlush();
    } catch (err) {
      return Promise.reject(err);
    }
  }));
}
beforeHookedShutdown.add(flushProviders);

// The resources still settling (passResource), which the process hooks
// wait for (within their bound) before they shut spanguard down, as the
// bridge's own forceFlush and shutdown do: a SIGTERM in a process's first
// moments (or while a cloud detector still asks its metadata server)
// exported the spans under the settled part of the resource alone
// (cloud.region, host.id gone), and the settling, after the shutdown,
// warned that the tracer was shut down.
const resourcesSettling = new Set();
beforeHookedShutdown.add(() => (resourcesSettling.size ? Promise.allSettled([...resourcesSettling]) : undefined));

/**
 * Hands our exporters, at once, the spans a BatchSpanProcessor of
 * `providers` still queues under a resource whose detectors have not
 * settled (NodeSDK's, until the processor's first export, 5 s in, waits
 * for them): its forceFlush would first move the queue into a promise
 * waiting for them, and at 'exit' no promise settles, so the whole queue
 * was lost with the process (a `process.exit()` in the first seconds lost
 * every span, in silence; so did a SIGTERM whose hook was overtaken by
 * the program's own listener calling process.exit()). The
 * bridge passes on the settled part of such a resource (service.name
 * among them). It reads the SDK's processor list and queue
 * (`_activeSpanProcessor._spanProcessors`, `_exporter`, `_finishedSpans`,
 * the names of @opentelemetry/sdk-trace-base 2.x and sdk-trace 3.x, which
 * the provider's own forceFlush reads too); a provider of another shape
 * is left to its forceFlush, as before.
 */
function handOverUnsettledQueues(providers) {
  for (const provider of providers) {
    try {
      const processors = provider._activeSpanProcessor && provider._activeSpanProcessor._spanProcessors;
      if (!Array.isArray(processors)) continue;
      for (const processor of processors) {
        const exporter = processor && processor._exporter;
        const queue = processor && processor._finishedSpans;
        if (!(exporter instanceof SpanguardSpanExporter) || exporter.shutDown || !Array.isArray(queue)) continue;
        if (!queue.some((span) => span && span.resource && span.resource.asyncAttributesPending)) continue;
        exporter.export(queue.splice(0, queue.length), () => {});
      }
    } catch (_) {
      // A provider of another shape: its forceFlush does what it can.
    }
  }
}

// At the process's 'exit' (process.exit() from the program, or the end of
// its work with no process hooks): no promise settles any more, but the
// SDK's BatchSpanProcessor calls `export` from within forceFlush(), at
// once (once its resource has settled: handOverUnsettledQueues), and the
// exporter records there; spanguard's own exit flush then delivers what
// it holds. The queue was lost with the process.
let exitFlushArmed = false;
function armExitFlush() {
  if (exitFlushArmed) return;
  exitFlushArmed = true;
  process.on('exit', () => {
    try {
      const flushed = flushProviders();
      if (flushed) flushed.catch(() => {});
    } catch (_) {
      // An exit listener must not throw: the process is leaving anyway.
    }
  });
}

class SpanguardSpanExporter {
  /**
   * @param {Tracer | import('./index').TracerOptions} [tracer] a spanguard Tracer, or options to make one.
   *   One made here is the exporter's: shutdown closes it. One passed in
   *   stays its owner's: shutdown flushes it and leaves it running.
   */
  constructor(tracer = {}) {
    // The processor's path for a span it never saw start (begin, then
    // complete), with its resource passing; its onStart, its following of
    // the setters and its finalizers are never used.
    this.bridge = new SpanguardSpanProcessor(tracer);
    this.shutDown = false;
    // The SpanguardLogRecordProcessors given this exporter: the event
    // records they hold for a span are added to it in `export`.
    this.logProcessors = [];
    liveExporters.add(new WeakRef(this));
    armExitFlush();
  }

  /** The spanguard Tracer the spans go to. */
  get tracer() {
    return this.bridge.tracer;
  }

  /** Spans, or parts of them, that spanguard refused or could not read (the exporter never throws). */
  get failures() {
    return this.bridge.failures;
  }

  export(spans, resultCallback) {
    let result;
    try {
      result = this.record(spans);
    } catch (err) {
      this.bridge.failures++;
      result = { code: EXPORT_FAILED, error: err instanceof Error ? err : new Error(String(err)) };
    }
    resultCallback(result);
  }

  /** Records the sampled spans of `spans`; the ExportResult that says whether spanguard holds them all. */
  record(spans) {
    const bridge = this.bridge;
    if (this.shutDown || bridge.stopped()) {
      return { code: EXPORT_FAILED, error: new Error('spanguard: the exporter is shut down; spans are not recorded') };
    }
    let refused = 0;
    let unreadable = 0;
    let invalid = 0;
    let invalidError = null; // the first, for the error
    for (const otelSpan of spans) {
      let entry;
      try {
        // Left out, as the SDK's processors leave it out (a processor of
        // one's own may pass it on).
        if ((otelSpan.spanContext().traceFlags & SAMPLED) === 0) continue;
        entry = bridge.begin(otelSpan);
      } catch (err) {
        bridge.failures++;
        // A span spanguard refused to begin (its ids all zero or not hex,
        // a kind out of range) was read: saying it was not a ReadableSpan
        // sent its user looking in the wrong place.
        if (err instanceof SpanguardError) {
          invalid++;
          if (invalidError === null) invalidError = err;
        } else unreadable++;
        continue;
      }
      // A span with no handle records nothing: every span slot was taken
      // (counted by the tracer), or the tracer was closed meanwhile.
      if (recordsNothing(entry.span)) refused++;
      else {
        if (this.logProcessors.length > 0) {
          const ctx = otelSpan.spanContext();
          for (const logs of this.logProcessors) logs.attachHeld(ctx.traceId + ctx.spanId, entry);
        }
        bridge.complete(otelSpan, entry);
      }
    }
    for (const logs of this.logProcessors) logs.countGone();
    if (refused === 0 && unreadable === 0 && invalid === 0) return { code: EXPORT_SUCCESS };
    const why = [];
    if (refused > 0) {
      why.push(bridge.stopped() ? `${refused} not recorded: the tracer is shut down`
        : `${refused} not recorded: every span slot was taken (counted in stats().dropped_buffer_full; `
          + 'raise maxQueueSize or maxOpenSpans), or the tracer is shut down or disabled');
    }
    if (invalid > 0) {
      why.push(`${invalid} refused by spanguard, counted in failures: an invalid trace, span or parent id (all zero, or not `
        + `hex of its length) or kind, say (${invalid > 1 ? 'the first: ' : ''}${invalidError.message})`);
    }
    if (unreadable > 0) why.push(`${unreadable} not an OpenTelemetry ReadableSpan it could read (counted in failures)`);
    return { code: EXPORT_FAILED, error: new Error(`spanguard: of ${spans.length} spans, ${why.join('; ')}`) };
  }

  /**
   * Later exports answer FAILED. A tracer the exporter made is closed
   * (flushed, spans delivered or spooled, freed); one passed in is flushed
   * and left running, its owner's to close (it may hold other spans).
   * Resolves, never rejects: the provider's shutdown goes on.
   */
  async shutdown() {
    if (this.shutDown) return;
    this.shutDown = true;
    for (const logs of this.logProcessors) logs.countGone(true); // no span comes for what they hold now
    sayNotAttached(this.logProcessors);
    try {
      if (this.bridge.ownsTracer) await this.bridge.shutdown();
      else await this.bridge.forceFlush();
    } catch (_) {
      this.bridge.failures++;
    }
  }

  /**
   * Resolves once the spans exported so far were delivered or spooled (or
   * the flush timed out); at once after shutdown. The SDK's
   * SimpleSpanProcessor calls it from its forceFlush; its
   * BatchSpanProcessor does not (it only hands its queue to `export`).
   */
  async forceFlush() {
    if (this.shutDown) return;
    try {
      await this.bridge.forceFlush();
    } catch (_) {
      this.bridge.failures++;
    }
  }
}

module.exports = {
  SpanguardSpanProcessor, SpanguardLogRecordProcessor, SpanguardSpanExporter, flushBeforeShutdown, LOG_RECORD_BODY,
};
