// Package otelbridge records the spans of an OpenTelemetry Go SDK
// TracerProvider in spanguard: a sdktrace.SpanProcessor that begins each
// span in spanguard when the SDK starts it, with the SDK's trace and span
// ids, parent, flags, tracestate, start time, kind, instrumentation scope,
// attributes (slices as arrays) and links (with their tracestate and
// whether their context was remote), and
// adds at its end the later attributes, a new name (SetName), links,
// events, status, the counts of what the SDK's span limits dropped and the
// SDK's end time. The provider's span limits are the ones that apply: the
// tracer's own are not applied on top (they still apply to spans started
// with the tracer directly). A process stopped in the middle of
// a call still exports the open span (flush it from your signal handling:
// spanguard.Tracer.FlushOnSignals).
//
// Register it on a provider you make; it never sets a global one:
//
//	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(otelbridge.New(tracer)))
//
// Like the SDK's own processors it never fails the application: spans (or
// parts of them) spanguard refuses are counted in Failures.
package otelbridge

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
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
}

type spanKey struct {
	trace trace.TraceID
	span  trace.SpanID
}

type openSpan struct {
	span       spanguard.Span
	name       string               // the name at start
	attributes []attribute.KeyValue // the attributes at start
	links      int                  // links added at start: kept and dropped by the SDK's limit
}

var _ sdktrace.SpanProcessor = (*SpanProcessor)(nil)

// New returns a processor recording into tracer. Shutdown shuts tracer down.
func New(tracer *spanguard.Tracer) *SpanProcessor { return &SpanProcessor{tracer: tracer} }

// Failures counts spans, or parts of spans, that spanguard refused.
func (p *SpanProcessor) Failures() uint64 { return p.failures.Load() }

func (p *SpanProcessor) failed(err error) {
	if err != nil {
		p.failures.Add(1)
	}
}

// attributes converts OpenTelemetry attributes, slices to arrays.
func attributes(kvs []attribute.KeyValue) []spanguard.Attribute {
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
		default: // a type newer than this bridge: its text, as the SDK's Emit gives it
			out = append(out, spanguard.String(k, kv.Value.Emit()))
		}
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

// addLinks passes the links with their ids, tracestate and IsRemote; a
// link whose context is invalid is passed too when it has attributes or
// a tracestate (the SDK keeps such links, as OpenTelemetry's spec asks).
func (p *SpanProcessor) addLinks(s spanguard.Span, links []sdktrace.Link) {
	for _, l := range links {
		sc := l.SpanContext
		origin := spanguard.LinkLocal
		if sc.IsRemote() {
			origin = spanguard.LinkRemote
		}
		p.failed(s.AddLinkIDs(sc.TraceID(), sc.SpanID(), byte(sc.TraceFlags()), sc.TraceState().String(),
			origin, attributes(l.Attributes)...))
	}
}

// OnStart begins the span in spanguard.
func (p *SpanProcessor) OnStart(_ context.Context, s sdktrace.ReadWriteSpan) {
	// The provider's resource, once (a pointer compare a span): spans
	// arrive under its service.name and attributes, as with its exporter.
	if r := s.Resource(); r != nil && p.resource.Load() != r {
		p.resource.Store(r)
		p.failed(p.tracer.SetResource(attributes(r.Attributes())...))
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
		ScopeName:      s.InstrumentationScope().Name,
		ScopeVersion:   s.InstrumentationScope().Version,
		ScopeSchemaURL: s.InstrumentationScope().SchemaURL,
		Attributes:     attributes(atStart),
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
		return
	}
	links := s.Links()
	p.addLinks(span, links)
	p.open.Store(spanKey{sc.TraceID(), sc.SpanID()},
		openSpan{span: span, name: s.Name(), attributes: atStart, links: len(links) + s.DroppedLinks()})
}

// OnEnd adds what the end knows and ends the span at the SDK's end time.
func (p *SpanProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	sc := s.SpanContext()
	v, ok := p.open.LoadAndDelete(spanKey{sc.TraceID(), sc.SpanID()})
	if !ok {
		return
	}
	o := v.(openSpan)
	// What was set after the start, in one call per 128 attributes.
	if attrs := later(o.attributes, s.Attributes()); len(attrs) > 0 {
		p.failed(o.span.SetAttributes(attributes(attrs)...))
	}
	if name := s.Name(); name != o.name { // renamed with SetName
		p.failed(o.span.UpdateName(name))
	}
	// The links added since the start are the last ones: the SDK's limit
	// evicts the oldest, so they are not at the positions after the
	// start's (which kept an evicted link and lost the one it kept).
	links := s.Links()
	if added := len(links) + s.DroppedLinks() - o.links; added > 0 {
		p.addLinks(o.span, links[len(links)-min(added, len(links)):])
	}
	// What the SDK's own limits left out (an event's or link's own count
	// is not carried).
	if a, e, l := s.DroppedAttributes(), s.DroppedEvents(), s.DroppedLinks(); a+e+l > 0 {
		p.failed(o.span.AddDroppedCounts(uint32(a), uint32(e), uint32(l)))
	}
	for _, e := range s.Events() {
		p.failed(o.span.AddEventAt(e.Name, e.Time, attributes(e.Attributes)...))
	}
	switch st := s.Status(); st.Code {
	case codes.Error:
		p.failed(o.span.SetStatus(spanguard.StatusError, st.Description))
	case codes.Ok:
		p.failed(o.span.SetStatus(spanguard.StatusOK, ""))
	}
	p.failed(o.span.EndAt(s.EndTime()))
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
