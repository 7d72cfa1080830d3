package otelbridge

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TracerProvider returns tp (a provider this processor is registered on)
// with its spans passing on to spanguard what is set on them as it is
// set: attributes, events, links, a new name, the status, errors
// recorded. The SDK tells a processor nothing between a span's start and
// its end, so a span of tp itself killed open (SIGKILL with the flight
// recorder, SIGTERM with the library's watchdog alone, when no Go runs)
// arrived with only what it was started with: an LLM prompt set after its
// start was lost. Plug it where tp would go:
//
//	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(bridge))
//	otel.SetTracerProvider(bridge.TracerProvider(tp))
//
// or pass it to an instrumentation that takes a provider. Spans of tp
// itself (a library given tp, not this) are recorded as before, whole at
// their end. The spans this provider's tracers start are tp's own,
// wrapped: trace.SpanFromContext gives the wrapper, ids and context
// propagation are tp's, and a span of another provider or one spanguard
// refused at its start is given back as it is. Keep tp for its Shutdown
// and ForceFlush. What spanguard refuses of what is set is counted in
// Failures, as at the end. Events and links are passed as they come only
// while the SDK keeps them all (its limit): past it the rest wait for the
// end or the tracer's stop (passLater).
func (p *SpanProcessor) TracerProvider(tp trace.TracerProvider) trace.TracerProvider {
	return &tracerProvider{TracerProvider: tp, p: p}
}

type tracerProvider struct {
	trace.TracerProvider
	p *SpanProcessor
}

func (tp *tracerProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return &tracer{Tracer: tp.TracerProvider.Tracer(name, opts...), provider: tp}
}

type tracer struct {
	trace.Tracer
	provider *tracerProvider
}

// Start starts the span with tp's tracer and wraps it if the processor
// began it in spanguard.
func (t *tracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	parent, wrapped := trace.SpanFromContext(ctx).(*span)
	if wrapped {
		// The SDK's own span as the parent: the SDK counts a child of
		// its own spans only (ChildSpanCount).
		ctx = trace.ContextWithSpan(ctx, parent.Span)
	}
	ctx, s := t.Tracer.Start(ctx, name, opts...)
	rs, ok := s.(sdktrace.ReadOnlySpan)
	if !ok {
		return ctx, s // not the SDK's: a no-op provider's, say
	}
	sc := s.SpanContext()
	v, _ := t.provider.p.open.Load(spanKey{sc.TraceID(), sc.SpanID()})
	o, _ := v.(*openSpan)
	if o == nil || o == refusedAtStart {
		return ctx, s // another processor's provider, or refused at its start
	}
	w := &span{Span: s, sdk: rs, o: o, provider: t.provider}
	return trace.ContextWithSpan(ctx, w), w
}

// span is an SDK span that passes on to spanguard what is set on it.
type span struct {
	trace.Span
	sdk      sdktrace.ReadOnlySpan
	o        *openSpan
	provider *tracerProvider
}

// pass passes on what the SDK's span holds now beyond what was passed.
func (s *span) pass() {
	o := s.o
	o.mu.Lock()
	if !o.ended { // OnEnd passed the rest, or its cleanup ended it
		s.provider.p.passLater(o, s.sdk, true)
	}
	o.mu.Unlock()
}

func (s *span) SetAttributes(kv ...attribute.KeyValue) {
	s.Span.SetAttributes(kv...)
	s.pass()
}

func (s *span) AddEvent(name string, opts ...trace.EventOption) {
	s.Span.AddEvent(name, opts...)
	s.pass()
}

func (s *span) AddLink(link trace.Link) {
	s.Span.AddLink(link)
	s.pass()
}

func (s *span) RecordError(err error, opts ...trace.EventOption) {
	s.Span.RecordError(err, opts...)
	s.pass()
}

func (s *span) SetName(name string) {
	s.Span.SetName(name)
	s.pass()
}

func (s *span) SetStatus(code codes.Code, description string) {
	s.Span.SetStatus(code, description)
	s.pass()
}

func (s *span) TracerProvider() trace.TracerProvider { return s.provider }
