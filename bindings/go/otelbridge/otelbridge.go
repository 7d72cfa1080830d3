// Package otelbridge records the spans of an OpenTelemetry Go SDK
// TracerProvider in spanguard: a sdktrace.SpanProcessor that begins each
// span in spanguard when the SDK starts it, with the SDK's trace and span
// ids, parent, flags, tracestate, start time, kind, instrumentation scope,
// attributes (slices as arrays, byte slices as bytes) and links (with
// their tracestate and
// whether their context was remote), and
// adds at its end the later attributes, a new name (SetName), links,
// events, status, the counts of what the SDK's span limits dropped and the
// SDK's end time. The provider's span limits are the ones that apply: the
// tracer's own are not applied on top (they still apply to spans started
// with the tracer directly). Past its event or link limit the span ends
// with the SDK's last ones, in order, as its own exporter sends them, the
// others counted dropped (and so is one spanguard refuses, its payload
// pool used up, say: it costs none of those the SDK kept). A process
// stopped in the middle of a call keeps the open span: at SIGTERM the
// library's watchdog (on by default) spools it as it was at its start
// (with the counts of what the SDK dropped of what Start was given);
// spanguard.Tracer.FlushOnSignals, in a program that does not handle the
// signal itself, exports it at once with what was set on it by then (the
// tracer's stop, spanguard.Tracer.OnStop, passes on what each open span
// holds first), as Shutdown and Close do. The spans of the processor's
// TracerProvider (a wrapper of the SDK's) pass on what is set on them as
// it is set, so that one killed open (SIGKILL with the flight recorder,
// SIGTERM with the watchdog alone) carries it too. An SDK span let go of without its end (a stream never read
// to its end, a path that skipped `defer span.End()`) is ended when it is
// garbage-collected, marked spanguard.unended, with what it had at its
// start, rather than holding one of the tracer's slots for good. One
// whose End is under way is not: its cleanup waits on the span's name,
// which the SDK's snapshot holds too (so is, rarely, a span renamed since
// its start or with an empty name, collected while its End ran, before the
// bridge saw the end: counted in Failures).
//
// Register it on a provider you make; it never sets a global one:
//
//	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(otelbridge.New(tracer)))
//
// Like the SDK's own processors it never fails the application: spans (or
// parts of them) spanguard refuses are counted in Failures.
//
// A spanguard tracer sends one resource with every batch, the last one
// passed on: give each provider with a resource of its own a tracer of its
// own. Providers with different resources on one tracer are reported to
// OpenTelemetry's error handler (otel.Handle), once a processor or exporter.
//
// Where only a sdktrace.SpanExporter is taken, NewExporter records each
// span as the processor records one it never saw start, once it has
// ended and been handed over (SpanExporter says what that loses):
//
//	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(otelbridge.NewExporter(tracer)))
package otelbridge

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
	"weak"

	spanguard "github.com/spanguard/spanguard/bindings/go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// SpanProcessor is the bridge. Safe for concurrent use, as the SDK needs.
type SpanProcessor struct {
	tracer   *spanguard.Tracer
	open     sync.Map // spanKey -> openSpan
	failures atomic.Uint64
	// The provider's resource last passed to the tracer (SetResource).
	resource atomic.Pointer[resource.Resource]
	// Whether noteResource reported resources that differ.
	warnedResources atomic.Bool
	// Whether warnIfSentTwice reported the SDK's own OTLP exporter.
	warnedSentTwice atomic.Bool
	// The SpanExporter this processor records for (NewExporter), nil for
	// a processor: warnIfSentTwice finds its provider by it.
	exporter sdktrace.SpanExporter
	// Scopes whose attributes were passed on (SetScopeAttributes), by
	// name, version, schema URL and attribute set: what the SDK's
	// tracers are told apart by.
	scopes sync.Map // instrumentation.Scope -> struct{}
	// The tombstones endCollected left in open, the last ones.
	tombstones tombstones
}

type spanKey struct {
	trace trace.TraceID
	span  trace.SpanID
}

// openSpan is a span begun in spanguard and not yet ended there. Its
// fields from name on say what was passed on: at the start, and again by
// passOpen at the tracer's stop (so OnEnd, if the process goes on, sends
// only what came after).
type openSpan struct {
	sdk               heldSpan
	span              spanguard.Span
	collected         runtime.Cleanup // endCollected, stopped by OnEnd
	mu                sync.Mutex      // OnEnd against passOpen and endCollected
	ended             bool
	name              string               // the name passed
	attributes        []attribute.KeyValue // the attributes passed
	droppedAttributes int                  // the SDK's dropped attributes, counted
	links             passed
	events            passed
	status            codes.Code // the status passed
}

// passed says which of a span's links or events, numbered in the order
// the SDK was given them, were passed on: from..to-1, in order, which
// spanguard holds but for those in refused (it did not take them: no room
// for them in the payload pool, its own bound, or nothing to record in
// them, as a link whose context is invalid and whose tracestate it cannot
// keep). A refused one is counted dropped once: by spanguard when it says
// so (ErrLimitReached), else by the bridge (uncounted, until its next
// pass). Of those before from, it counted `counted` dropped.
type passed struct {
	from, to, counted int
	refused           []int
	uncounted         int
}

// heldSpan is the SDK span an openSpan was begun for, for passOpen. The
// SDK's own spans are held weakly: one let go of without its end (a
// stream never read to its end, a path that skipped `defer span.End()`)
// is collected, and its spanguard span ended then (endCollected); held,
// it kept one of the tracer's slots for the life of the process, and
// once they were all taken every later span was refused as buffer full.
// The SDK's own processors hold nothing for a span before its end. A span
// of another type (a wrapper another processor made, which may be let go
// of while the span it wraps goes on) is held as it is.
type heldSpan struct {
	weak   weak.Pointer[byte] // the start of the SDK's span
	typ    reflect.Type       // its pointer type, to make it a span again
	strong sdktrace.ReadWriteSpan
}

// sdkPackage is the package of the SDK's span types.
var sdkPackage = reflect.TypeFor[sdktrace.Link]().PkgPath()

// ownStart is where s starts if it is one of the SDK's own spans (a
// pointer to what the SDK allocated), else nil.
func ownStart(s sdktrace.ReadWriteSpan) *byte {
	v := reflect.ValueOf(s)
	if t := v.Type(); t.Kind() != reflect.Pointer || t.Elem().PkgPath() != sdkPackage ||
		t.Elem().Size() == 0 || v.IsNil() {
		return nil
	}
	return (*byte)(v.UnsafePointer())
}

// hold holds s: weakly if it is one of the SDK's own spans, which starts
// at start (ownStart), as it is if start is nil.
func hold(s sdktrace.ReadWriteSpan, start *byte) heldSpan {
	if start == nil {
		return heldSpan{strong: s}
	}
	return heldSpan{weak: weak.Make(start), typ: reflect.TypeOf(s)}
}

// get returns the span, or nil once it has been collected.
func (h *heldSpan) get() sdktrace.ReadWriteSpan {
	if h.typ == nil {
		return h.strong
	}
	start := h.weak.Value()
	if start == nil {
		return nil
	}
	return reflect.NewAt(h.typ.Elem(), unsafe.Pointer(start)).Interface().(sdktrace.ReadWriteSpan)
}

// collected is what endCollected needs of an SDK span collected without
// its end: none of it refers to the span.
type collected struct {
	p   *SpanProcessor
	o   *openSpan
	key spanKey
}

// endCollected runs once an SDK span is collected (runtime.AddCleanup)
// unless OnEnd stopped it: the span was let go of without its end, so its
// spanguard span is ended now, marked spanguard.unended as the tracer's
// stop marks the spans still open, with what was passed on by then (the
// SDK's span, gone, cannot say what it had since), and its slot freed.
//
// It runs on the span's name (anchorName): the SDK's End hands OnEnd a
// snapshot, which holds the name, and lets go of the span itself before,
// so the span may be collected before OnEnd comes (while an earlier
// processor's OnEnd runs, say), its name not. A span renamed since its
// start holds that name no more: this, finding the span alive, waits on
// the span itself from then, as it does for a span with an empty name.
// It and OnEnd agree on who ends the span by its entry in open: the first
// to take it ends the span, the other does nothing. On the span itself
// this may run before OnEnd comes: nothing tells then whether an End is
// under way. This takes the entry and leaves a tombstone in its place
// (the last tombstonesKept), by which OnEnd knows the span was ended here,
// and counts in Failures the end it cannot pass on. OnEnd, finding no
// entry, recorded the span again, as one started before the processor
// was registered: it arrived twice, once marked unended (a grace of
// 250 ms before this ran only made that rarer:
// TestASpanCollectedBeforeItsOnEndArrivesOnce holds OnEnd past it). For a
// span refused at its start the tombstone is all there is to do: OnEnd
// does not begin it again. When OnEnd took the entry first, this does nothing (it went on,
// and ended the span marked unended if it locked it before OnEnd's end).
func endCollected(c collected) {
	p, o := c.p, c.o
	tombstone := endedWhenCollected
	if o == refusedAtStart {
		tombstone = refusedThenCollected
	}
	if o != refusedAtStart {
		if v, _ := p.open.Load(c.key); v != o {
			return // OnEnd took it: it ends the span
		}
		if sdk := o.sdk.get(); sdk != nil {
			// Its name was anchored (anchorName) and the span renamed
			// since (SetName): the span lives on. Watched by its own
			// collection from now on, which a renamed span's End can
			// outrun.
			o.mu.Lock()
			o.collected = runtime.AddCleanup(ownStart(sdk), endCollected, c)
			o.mu.Unlock()
			return
		}
	}
	if !p.open.CompareAndSwap(c.key, o, tombstone) {
		return // OnEnd took it: it ends the span
	}
	p.tombstones.add(p, c.key, tombstone)
	if o == refusedAtStart {
		return
	}
	o.mu.Lock() // against passOpen
	defer o.mu.Unlock()
	o.ended = true
	err := o.span.SetAttributes(spanguard.Bool("spanguard.unended", true))
	if errors.Is(err, spanguard.ErrShutDown) {
		return // the tracer's stop exported it, marked unended
	}
	p.failed(err)
	p.failed(o.span.End())
}

// Tombstones, in the open spans, of spans their cleanup took
// (endCollected): one begun in spanguard, ended then, and one refused at
// its start.
var (
	endedWhenCollected   = &openSpan{ended: true}
	refusedThenCollected = &openSpan{ended: true}
)

// tombstonesKept is how many tombstones a processor keeps, the last
// cleanups': a program that lets its spans go without their end (nothing
// else takes a tombstone) holds no more than these. An OnEnd whose span's
// tombstone went before it came, this many spans collected while it was
// on its way, records its span again.
const tombstonesKept = 1024

// tombstones are a processor's tombstones, oldest first from next once
// tombstonesKept are kept.
type tombstones struct {
	mu   sync.Mutex
	kept []tombstoneAt
	next int
}

type tombstoneAt struct {
	key       spanKey
	tombstone *openSpan
}

// add records the tombstone just left at key in p.open, and removes the
// oldest, unless an OnEnd took it, once tombstonesKept are kept.
func (t *tombstones) add(p *SpanProcessor, key spanKey, tombstone *openSpan) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.kept) < tombstonesKept {
		t.kept = append(t.kept, tombstoneAt{key, tombstone})
		return
	}
	oldest := t.kept[t.next]
	p.open.CompareAndDelete(oldest.key, oldest.tombstone)
	t.kept[t.next] = tombstoneAt{key, tombstone}
	t.next = (t.next + 1) % tombstonesKept
}

// catchUp brings spanguard's copy of a list to what the SDK holds now:
// the last `kept` of the `given` it was given (past its limit it evicts
// the oldest, including some spanguard may hold, passed on at the start
// or at a stop). It returns how many of spanguard's oldest to drop
// (Span.DropOldest, which counts them: passed, taken, evicted since; no
// more, or it would drop in the stead of a refused one one the SDK kept),
// how many more to count dropped (evicted before they could be passed),
// and the first of the SDK's kept to send (those not passed). Then
// spanguard holds the SDK's own, in order, less those it refused, and each
// one given is held or counted dropped once, as the SDK's own exporter
// sends the span.
func (q *passed) catchUp(kept, given int) (evicted, uncounted, send int) {
	dropped := given - kept
	gone := max(0, min(q.to, dropped)-q.from)
	evicted = gone
	var refused []int
	for _, n := range q.refused {
		if n < dropped {
			evicted-- // evicted, and never held
		} else {
			refused = append(refused, n)
		}
	}
	uncounted = dropped - q.counted - gone
	send = max(q.to, dropped) - dropped
	*q = passed{from: dropped, to: given, counted: dropped, refused: refused, uncounted: q.uncounted}
	return evicted, uncounted, send
}

// took records what became of the one numbered n, passed on with the
// answer err: a refusal (any error) is remembered, and one spanguard did
// not count is left for the bridge to count (settle).
func (q *passed) took(n int, err error) {
	if err == nil {
		return
	}
	q.refused = append(q.refused, n)
	if !errors.Is(err, spanguard.ErrLimitReached) {
		q.uncounted++
	}
}

// settle returns how many refused ones spanguard did not count since the
// last settle, for the bridge to count now.
func (q *passed) settle() int {
	n := q.uncounted
	q.uncounted = 0
	return n
}

var _ sdktrace.SpanProcessor = (*SpanProcessor)(nil)

// New returns a processor recording into tracer. Shutdown shuts tracer down.
func New(tracer *spanguard.Tracer) *SpanProcessor {
	p := &SpanProcessor{tracer: tracer}
	tracer.OnStop(p.passOpen)
	return p
}

// Failures counts spans, or parts of spans, that spanguard refused, and
// the ends of spans (renamed since their start, or with an empty name)
// whose SDK span was collected while its End ran and that their cleanup
// ended first, marked spanguard.unended (the SDK hands
// OnEnd a copy of the span, and lets go of the span itself before).
func (p *SpanProcessor) Failures() uint64 { return p.failures.Load() }

func (p *SpanProcessor) failed(err error) {
	if err != nil {
		p.failures.Add(1)
	}
}

// attributes converts OpenTelemetry attributes, slices of one scalar type
// to arrays, maps, mixed or nested slices and empty values to complex
// values (spanguard.Any), as the SDK's OTLP exporter sends them, as deep
// as the SDK kept them (its WithAttributeValueDepthLimit, 64 by default;
// with none, cut past spanguard's highest, 128, counted in the tracer's
// Stats().ValuesTruncated). One spanguard cannot carry (more than a million
// values) is left out, counted in Failures.
func (p *SpanProcessor) attributes(kvs []attribute.KeyValue) []spanguard.Attribute {
	out := make([]spanguard.Attribute, 0, len(kvs))
	for _, kv := range kvs {
		k := string(kv.Key)
		switch kv.Value.Type() {
		case attribute.BOOL:
			out = append(out, spanguard.Bool(k, kv.Value.AsBool()))
		case attribute.INT64:
			out = append(out, spanguard.Int64(k, kv.Value.AsInt64()))
		case attribute.FLOAT64:
			out = append(out, spanguard.Float64(k, kv.Value.AsFloat64()))
		case attribute.STRING:
			out = append(out, spanguard.String(k, kv.Value.AsString()))
		case attribute.BOOLSLICE:
			out = append(out, spanguard.Bools(k, kv.Value.AsBoolSlice()))
		case attribute.INT64SLICE:
			out = append(out, spanguard.Int64s(k, kv.Value.AsInt64Slice()))
		case attribute.FLOAT64SLICE:
			out = append(out, spanguard.Float64s(k, kv.Value.AsFloat64Slice()))
		case attribute.STRINGSLICE:
			out = append(out, spanguard.Strings(k, kv.Value.AsStringSlice()))
		case attribute.BYTESLICE: // OTLP bytes_value, as the SDK's exporter sends it
			out = append(out, spanguard.Bytes(k, kv.Value.AsByteSlice()))
		case attribute.SLICE:
			if a, ok := slice(k, kv.Value); ok {
				out = append(out, a)
				break
			}
			fallthrough
		default: // a map, a mixed or nested slice, the empty value: a complex value
			a, err := spanguard.Any(k, plain(kv.Value))
			if err != nil {
				p.failed(err)
				continue
			}
			out = append(out, a)
		}
	}
	return out
}

// plain is v as the Go values spanguard.Any takes: a map as map[string]any
// (a key given twice: its last value), a slice as []any, EMPTY as nil.
func plain(v attribute.Value) any {
	switch v.Type() {
	case attribute.EMPTY:
		return nil
	case attribute.SLICE:
		elems := v.AsSlice()
		out := make([]any, len(elems))
		for i, e := range elems {
			out[i] = plain(e)
		}
		return out
	case attribute.MAP:
		kvs := v.AsMap()
		out := make(map[string]any, len(kvs))
		for _, kv := range kvs {
			out[string(kv.Key)] = plain(kv.Value)
		}
		return out
	case attribute.BYTESLICE:
		return v.AsByteSlice()
	}
	return v.AsInterface()
}

// slice converts an attribute.Slice whose elements are all of one scalar
// type to an array of that type: the OTLP array the SDK's exporter sends
// for it. false for others (elements of mixed types or nested), which
// spanguard's arrays cannot hold: those are complex values.
func slice(k string, v attribute.Value) (spanguard.Attribute, bool) {
	elems := v.AsSlice()
	if len(elems) == 0 {
		return spanguard.Strings(k, nil), true
	}
	typ := elems[0].Type()
	for _, e := range elems[1:] {
		if e.Type() != typ {
			return spanguard.Attribute{}, false
		}
	}
	switch typ {
	case attribute.BOOL:
		return spanguard.Bools(k, each(elems, attribute.Value.AsBool)), true
	case attribute.INT64:
		return spanguard.Int64s(k, each(elems, attribute.Value.AsInt64)), true
	case attribute.FLOAT64:
		return spanguard.Float64s(k, each(elems, attribute.Value.AsFloat64)), true
	case attribute.STRING:
		return spanguard.Strings(k, each(elems, attribute.Value.AsString)), true
	}
	return spanguard.Attribute{}, false
}

func each[T any](elems []attribute.Value, as func(attribute.Value) T) []T {
	out := make([]T, len(elems))
	for i, e := range elems {
		out[i] = as(e)
	}
	return out
}

// later are the attributes of end that start did not have as they are.
func later(start, end []attribute.KeyValue) []attribute.KeyValue {
	if len(start) == 0 {
		return end
	}
	before := make(map[attribute.Key]attribute.Value, len(start))
	for _, kv := range start {
		before[kv.Key] = kv.Value
	}
	var out []attribute.KeyValue
	for _, kv := range end {
		if v, ok := before[kv.Key]; !ok || v != kv.Value {
			out = append(out, kv)
		}
	}
	return out
}

// droppedCount is an event's or link's DroppedAttributeCount (an int) as
// spanguard takes it: negative is 0, past uint32 the most it holds.
func droppedCount(n int) uint32 {
	if n <= 0 {
		return 0
	}
	if uint64(n) > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(n)
}

// addLinks passes the links with their ids, tracestate and IsRemote; a
// link whose context is invalid is passed too when it has attributes or
// a tracestate (the SDK keeps such links, as OpenTelemetry's spec asks).
// The first is numbered first in q, which records those refused (took).
func (p *SpanProcessor) addLinks(s spanguard.Span, q *passed, first int, links []sdktrace.Link) {
	for i, l := range links {
		sc := l.SpanContext
		origin := spanguard.LinkLocal
		if sc.IsRemote() {
			origin = spanguard.LinkRemote
		}
		// The SDK's drops past AttributePerLinkCountLimit, which its own
		// OTLP exporter sends in the link's dropped count.
		err := s.AddLinkIDsWithDropped(sc.TraceID(), sc.SpanID(), byte(sc.TraceFlags()), sc.TraceState().String(),
			origin, droppedCount(l.DroppedAttributeCount), p.attributes(l.Attributes)...)
		p.failed(err)
		q.took(first+i, err)
	}
}

// OnStart begins the span in spanguard.
func (p *SpanProcessor) OnStart(_ context.Context, s sdktrace.ReadWriteSpan) {
	sc := s.SpanContext()
	key := spanKey{sc.TraceID(), sc.SpanID()}
	o, _ := p.begin(s) // refused: counted
	start := ownStart(s)
	if o == nil {
		// Counted: OnEnd must not begin it again (begun at its end, it
		// would be counted refused and arrive too). The entry goes with
		// the span if it is let go of without its end.
		p.open.Store(key, refusedAtStart)
		if start != nil {
			runtime.AddCleanup(start, endCollected, collected{p, refusedAtStart, key})
		}
		return
	}
	o.sdk = hold(s, start)
	if start != nil {
		c := collected{p, o, key}
		if name := anchorName(s); name != nil {
			o.collected = runtime.AddCleanup(name, endCollected, c)
		} else {
			o.collected = runtime.AddCleanup(start, endCollected, c)
		}
	}
	p.open.Store(key, o)
}

// anchorName gives s (one of the SDK's own spans, starting its End
// after OnStart) its own name in an allocation of the bridge's and returns
// where that starts, nil for an empty name. The SDK's End hands the
// processors a snapshot and lets go of the span before, so the span may
// be collected before the bridge's OnEnd, and a cleanup on it could not
// tell a span let go of from one whose End is under way: it ended the
// span marked unended, without what its end added (the prompt set since
// its start, its events). The snapshot holds the span's name, this very
// allocation (a string is copied by reference), so a cleanup on it runs
// only once the span and every snapshot of it are gone: after OnEnd, or
// for a span let go of without its end. 16 bytes at least: a cleanup on
// a smaller allocation (the tiny allocator's) may never run.
func anchorName(s sdktrace.ReadWriteSpan) *byte {
	name := s.Name()
	if name == "" {
		return nil
	}
	buf := make([]byte, max(len(name), 16))
	copy(buf, name)
	s.SetName(unsafe.String(&buf[0], len(name)))
	return &buf[0]
}

// refusedAtStart stands in the open spans for a span spanguard refused at
// its start (counted then).
var refusedAtStart = &openSpan{ended: true}

// begin begins s in spanguard with what it holds now (the attributes and
// links given at its start, for OnStart), or returns spanguard's refusal,
// counted.
func (p *SpanProcessor) begin(s sdktrace.ReadOnlySpan) (*openSpan, error) {
	// The provider's resource, once (a pointer compare a span): spans
	// arrive under its service.name and attributes, as with its exporter.
	if r := s.Resource(); r != nil && p.resource.Load() != r {
		p.resource.Store(r)
		p.noteResource(r)
		p.failed(p.tracer.SetResource(p.attributes(r.Attributes())...))
		p.warnIfSentTwice(s)
	}
	scope := s.InstrumentationScope()
	if scope.Attributes.Len() > 0 {
		// A tracer's scope attributes (WithInstrumentationAttributes),
		// once a scope: a map lookup a span of such a tracer.
		if _, seen := p.scopes.LoadOrStore(scope, struct{}{}); !seen {
			p.failed(p.tracer.SetScopeAttributes(scope.Name, scope.Version, scope.SchemaURL,
				p.attributes(scope.Attributes.ToSlice())...))
		}
	}
	sc, parent, atStart := s.SpanContext(), s.Parent(), s.Attributes()
	f := spanguard.ForeignSpan{
		Name:           s.Name(),
		Kind:           uint32(s.SpanKind()), // numbered as in OTLP
		TraceID:        sc.TraceID(),
		SpanID:         sc.SpanID(),
		TraceFlags:     byte(sc.TraceFlags()),
		TraceState:     sc.TraceState().String(),
		Start:          s.StartTime(),
		ScopeName:      scope.Name,
		ScopeVersion:   scope.Version,
		ScopeSchemaURL: scope.SchemaURL,
		Attributes:     p.attributes(atStart),
		// The SDK's span limits applied (its user's); the tracer's own
		// would cut what it kept (128 of the 1000 attributes allowed).
		LimitedByCaller: true,
	}
	if parent.IsValid() {
		f.ParentSpanID, f.ParentIsRemote = parent.SpanID(), parent.IsRemote()
	}
	span, err := p.tracer.StartForeign(&f)
	if err != nil {
		p.failed(err)
		return nil, err
	}
	// The links given at the start: the SDK's last ones past its limit.
	links, dropped := s.Links(), s.DroppedLinks()
	// A copy: OpenTelemetry Go before v1.47.0 returns the span's own
	// array from Attributes() and later writes into it (SetAttributes
	// past the count limit, the dedup at its next read), so the slice
	// kept as what was passed changed with the span, showed a value set
	// again as already passed, and it never was (passLater).
	o := &openSpan{span: span, name: s.Name(), attributes: slices.Clone(atStart),
		links: passed{from: dropped, to: dropped + len(links)}}
	p.addLinks(span, &o.links, dropped, links)
	// What the SDK dropped of what Start was given (attributes and links
	// past its limits), counted now: a span killed open (SIGKILL with the
	// flight recorder, SIGTERM with the watchdog alone, when no Go runs)
	// arrives as it was at its start, and carried 0 dropped, the count
	// being added only when the rest was passed (passLater, which counts
	// what the SDK drops after this). Not counted if spanguard refused
	// the count (counted in Failures): passLater tries again.
	if da := s.DroppedAttributes(); da > 0 || dropped > 0 {
		err := span.AddDroppedCounts(droppedCount(da), 0, droppedCount(dropped))
		p.failed(err)
		if err == nil {
			o.droppedAttributes, o.links.counted = da, dropped
		}
	}
	return o, nil
}

// resourceOf holds, for each spanguard tracer (weakly: a tracer let go
// of takes its entry with it), the resource last passed on to it by any
// processor or exporter of this package (noteResource).
var resourceOf sync.Map // weak.Pointer[spanguard.Tracer] -> *resource.Resource

// noteResource records r as the tracer's resource and reports, once a
// processor (or exporter), through OpenTelemetry's error handler, when it
// differs from the one passed on before: a spanguard tracer sends one
// resource with every batch, the last one passed on, so the spans of
// providers with different resources that share it (one exporter given
// to two providers, say) arrive under one of them, where the SDK's own
// exporter sends each span under its provider's. That happened in
// silence, one service's spans filed under another's service.name; the
// fix is a tracer a provider.
func (p *SpanProcessor) noteResource(r *resource.Resource) {
	if p.tracer == nil {
		return // it records nothing (every call answers closed); AddCleanup would panic
	}
	key := weak.Make(p.tracer)
	previous, loaded := resourceOf.Swap(key, r)
	if !loaded {
		runtime.AddCleanup(p.tracer, func(k weak.Pointer[spanguard.Tracer]) { resourceOf.Delete(k) }, key)
		return
	}
	before := previous.(*resource.Resource)
	if before.Equal(r) || !p.warnedResources.CompareAndSwap(false, true) {
		return
	}
	name := func(r *resource.Resource) string {
		v, _ := r.Set().Value("service.name")
		return v.Emit()
	}
	otel.Handle(fmt.Errorf("otelbridge: spans of TracerProviders with different resources (service.name %q, "+
		"then %q) go to one spanguard tracer, which sends the last resource passed on with every batch: some "+
		"spans arrive under the other provider's; give each provider its own spanguard.Tracer (and its own "+
		"otelbridge processor or exporter)", name(before), name(r)))
}

// passOpen passes on what the spans still open have had set since their
// start (attributes, name, events, links, status), before the tracer stops
// and exports them marked unended: the SDK tells a processor nothing
// between OnStart and OnEnd.
func (p *SpanProcessor) passOpen() {
	p.open.Range(func(_, v any) bool {
		o := v.(*openSpan)
		o.mu.Lock()
		if !o.ended {
			// Once collected, it has nothing more to pass on: its
			// cleanup ends it, or the stop exports it marked unended.
			if s := o.sdk.get(); s != nil {
				p.passLater(o, s, false)
			}
		}
		o.mu.Unlock()
		return true
	})
}

// passLater passes on what s has beyond what o says was passed, and
// records it as passed: spanguard's span then holds what the SDK's does,
// and its dropped counts are the SDK's. asSet: a call on a span of the
// processor's TracerProvider, which passes its links and events only
// while the SDK keeps them all (past its limit each new one evicts one
// passed, whose room spanguard frees only with the span: a long span's
// events held the payload pool many times over); the stop and the end
// catch up. Under o.mu.
func (p *SpanProcessor) passLater(o *openSpan, s sdktrace.ReadOnlySpan, asSet bool) {
	now := s.Attributes()
	if attrs := later(o.attributes, now); len(attrs) > 0 {
		p.failed(o.span.SetAttributes(p.attributes(attrs)...))
	}
	if !o.ended { // a copy, as in begin: the span goes on, and may write into now
		now = slices.Clone(now)
	}
	o.attributes = now
	if name := s.Name(); name != o.name { // renamed with SetName
		p.failed(o.span.UpdateName(name))
		o.name = name
	}
	// Links and events: the SDK's, its last ones past its limit, which
	// may have evicted some passed on at the start or at a stop (left in
	// spanguard, they would arrive beside those the SDK kept and be
	// counted dropped as well). Those are dropped from spanguard first,
	// then those the SDK kept that were not passed are sent (catchUp).
	// The room of those dropped is freed with the span; as the SDK tells
	// a processor nothing between OnStart and OnEnd, the passes are the
	// start, a stop and the end (and, asSet, those while the SDK kept
	// every one), so that is at most the SDK's limit twice.
	passLinks, passEvents := !asSet || s.DroppedLinks() == 0, !asSet || s.DroppedEvents() == 0
	var links []sdktrace.Link
	var events []sdktrace.Event
	var evictedLinks, uncountedLinks, sendLinks, evictedEvents, uncountedEvents, sendEvents int
	if passLinks {
		links = s.Links()
		evictedLinks, uncountedLinks, sendLinks = o.links.catchUp(len(links), len(links)+s.DroppedLinks())
	}
	if passEvents {
		events = s.Events()
		evictedEvents, uncountedEvents, sendEvents = o.events.catchUp(len(events), len(events)+s.DroppedEvents())
	}
	if evictedEvents+evictedLinks > 0 {
		p.failed(o.span.DropOldest(uint32(evictedEvents), uint32(evictedLinks)))
	}
	// What else the SDK's own limits left out, and those spanguard
	// refused without counting them, counted once: at a stop the span is
	// exported with what it had then.
	if passLinks {
		p.addLinks(o.span, &o.links, s.DroppedLinks()+sendLinks, links[sendLinks:])
		uncountedLinks += o.links.settle()
	}
	if passEvents {
		for i, e := range events[sendEvents:] {
			err := o.span.AddEventWithDropped(e.Name, e.Time, droppedCount(e.DroppedAttributeCount),
				p.attributes(e.Attributes)...)
			p.failed(err)
			o.events.took(s.DroppedEvents()+sendEvents+i, err)
		}
		uncountedEvents += o.events.settle()
	}
	uncountedAttributes := s.DroppedAttributes() - o.droppedAttributes
	o.droppedAttributes = s.DroppedAttributes()
	if uncountedAttributes+uncountedEvents+uncountedLinks > 0 {
		p.failed(o.span.AddDroppedCounts(uint32(uncountedAttributes), uint32(uncountedEvents),
			uint32(uncountedLinks)))
	}
	if st := s.Status(); st.Code != o.status {
		switch st.Code {
		case codes.Error:
			p.failed(o.span.SetStatus(spanguard.StatusError, st.Description))
		case codes.Ok:
			p.failed(o.span.SetStatus(spanguard.StatusOK, ""))
		}
		o.status = st.Code
	}
}

// OnEnd adds what the end knows and ends the span at the SDK's end time.
func (p *SpanProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	sc := s.SpanContext()
	v, _ := p.open.LoadAndDelete(spanKey{sc.TraceID(), sc.SpanID()})
	o, ok := v.(*openSpan)
	switch o {
	case refusedAtStart, refusedThenCollected:
		return
	case endedWhenCollected:
		// Collected while its End ran, and ended by its cleanup first,
		// marked unended: what the end would have added is lost.
		p.failures.Add(1)
		return
	}
	if !ok {
		// Started before this processor was registered
		// (TracerProvider.RegisterSpanProcessor): the SDK's own processors
		// export it at its end, so it is recorded now, with what it holds.
		p.recordEnded(s) // refused: counted
		return
	}
	o.mu.Lock()
	o.collected.Stop() // ended: nothing for endCollected to do
	o.mu.Unlock()
	p.end(o, s)
}

// recordEnded records s, a span that ended without the bridge seeing its
// start, whole: begun with what it holds now, then ended as OnEnd ends a
// span, so it arrives as the SDK's own exporter sends it. Used by OnEnd
// for a span started before the processor was registered, and by
// SpanExporter for every span. The error is spanguard's refusal of the
// span (counted); nil once spanguard holds it.
func (p *SpanProcessor) recordEnded(s sdktrace.ReadOnlySpan) error {
	o, err := p.begin(s)
	if err != nil {
		return err
	}
	return p.end(o, s)
}

// end passes on what s has beyond what o says was passed and ends o's
// span at s's end time, returning the end's answer (counted).
func (p *SpanProcessor) end(o *openSpan, s sdktrace.ReadOnlySpan) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ended = true
	p.passLater(o, s, false)
	err := o.span.EndAt(s.EndTime())
	p.failed(err)
	return err
}

// timeout is what is left of ctx's deadline, or def.
func timeout(ctx context.Context, def time.Duration) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return def
}

// within runs call (a flush or a shutdown, given ctx's time left) and
// returns its answer, or ctx.Err() as soon as ctx is done, as the SDK's
// processors do (the call goes on in the background: a context cancelled
// by a caller that gives up must not hold it for 30 s).
func within(ctx context.Context, call func(time.Duration) (bool, error)) error {
	answer := make(chan error, 1)
	go func() {
		done, err := call(timeout(ctx, 30*time.Second))
		if err == nil && !done {
			err = context.DeadlineExceeded
		}
		answer <- err
	}()
	select {
	case err := <-answer:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ForceFlush waits until every span ended so far is exported, within ctx.
// After Shutdown it does nothing: a processor ignores calls after shutdown.
func (p *SpanProcessor) ForceFlush(ctx context.Context) error {
	err := within(ctx, p.tracer.Flush)
	if errors.Is(err, spanguard.ErrShutDown) {
		return nil
	}
	return err
}

// Shutdown flushes, exports spans still open (marked unended) and stops the
// tracer, within ctx.
func (p *SpanProcessor) Shutdown(ctx context.Context) error {
	return within(ctx, p.tracer.Shutdown)
}
