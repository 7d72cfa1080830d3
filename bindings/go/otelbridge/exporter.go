package otelbridge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	spanguard "github.com/spanguard/spanguard/bindings/go"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// SpanExporter records each span the SDK exports in spanguard, whole: a
// sdktrace.SpanExporter, for what takes only an exporter
// (sdktrace.WithBatcher, a framework's or vendor's setup that asks for
// one). Each span is recorded as SpanProcessor records one it never saw
// start (begun and ended at once), so it arrives as the SDK's own OTLP
// exporter sends it: ids, parent, flags, tracestate, times, name, kind,
// scope (and its attributes), attributes, events, links, status, dropped
// counts, under the provider's resource.
//
// An exporter sees a span only once it has ended and left the SDK's span
// processor: a span still open when the process is killed, one let go of
// without its end, and ended spans waiting in a BatchSpanProcessor's queue
// (up to its batch timeout, 5 s by default) are not spanguard's yet, and
// are lost with the process (on a signal spanguard's FlushOnSignals
// watches for, the global provider is flushed first: see NewExporter).
// SpanProcessor (New) records each span from
// its start: where a processor can be added, add it rather than the
// exporter (and not both: each span would arrive twice).
//
// Safe for concurrent use. It never panics into the SDK.
type SpanExporter struct {
	// The processor's path for a span it never saw start (recordEnded),
	// with its resource and scope passing and its failure count; its open
	// spans and stop hook are never used.
	bridge   *SpanProcessor
	shutDown atomic.Bool
}

var _ sdktrace.SpanExporter = (*SpanExporter)(nil)

// NewExporter returns an exporter recording into tracer. The tracer stays
// its owner's: Shutdown flushes it but leaves it running (it may record
// other spans); shut it down yourself (Tracer.Close, Shutdown,
// FlushOnSignals). Until the exporter's Shutdown, a signal that a
// tracer's FlushOnSignals takes first flushes the global OpenTelemetry
// provider (otel.SetTracerProvider's), within half of that call's timeout, so
// the spans its batcher holds reach the exporter before the tracer shuts
// down; a provider used directly, never the global one, is flushed too
// once given to FlushBeforeShutdown.
//
// The same flush runs when the tracer stops (Close, Shutdown), while this
// exporter is live, for up to stopFlushTimeout: a program whose way out is
// a deferred tracer.Close with no tp.Shutdown before it lost the spans
// ended within the batcher's timeout, counted nowhere.
func NewExporter(tracer *spanguard.Tracer) *SpanExporter {
	liveExporters.Add(1)
	flushAtSignal.Do(func() { spanguard.BeforeSignalShutdown(flushGlobalProvider) })
	e := &SpanExporter{bridge: &SpanProcessor{tracer: tracer}}
	e.bridge.exporter = e
	tracer.OnStop(e.flushBeforeStop)
	return e
}

// stopFlushTimeout bounds the providers' flush when the tracer stops: a
// provider whose ForceFlush waits on another exporter (a backend that does
// not answer) must not hold Close for long.
const stopFlushTimeout = 5 * time.Second

// flushBeforeStop hands what the providers' batchers hold to their
// exporters before the tracer stops (an OnStop hook), unless this exporter
// was shut down (tp.Shutdown ran: its batcher is empty). It returns after
// stopFlushTimeout at most; a flush still running then goes on.
func (e *SpanExporter) flushBeforeStop() {
	if e.shutDown.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopFlushTimeout)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		flushGlobalProvider(ctx)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

var (
	// Exporters made and not shut down: while there are any, a signal
	// FlushOnSignals watches for flushes the providers first.
	liveExporters atomic.Int64
	flushAtSignal sync.Once
	// The providers FlushBeforeShutdown was given, weakly.
	providersToFlush struct {
		sync.Mutex
		list []weak.Pointer[sdktrace.TracerProvider]
	}
)

// FlushBeforeShutdown has a signal that a tracer's FlushOnSignals takes
// flush tp with the global provider, while an exporter is live: tp's
// batcher hands the spans its queue holds to the exporter before the
// tracer shuts down. For a provider used directly, never set with
// otel.SetTracerProvider: the SDK never tells an exporter which provider
// holds it, and such a provider's queue was lost with the process.
//
//	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(otelbridge.NewExporter(tracer)))
//	otelbridge.FlushBeforeShutdown(tp)
//
// Held weakly (a provider let go of is not kept); given twice, flushed
// once. A nil tp is ignored.
func FlushBeforeShutdown(tp *sdktrace.TracerProvider) {
	if tp == nil {
		return
	}
	providersToFlush.Lock()
	defer providersToFlush.Unlock()
	kept := providersToFlush.list[:0]
	for _, w := range providersToFlush.list {
		if p := w.Value(); p == tp {
			return
		} else if p != nil {
			kept = append(kept, w)
		}
	}
	providersToFlush.list = append(kept, weak.Make(tp))
}

type flusher interface{ ForceFlush(context.Context) error }

// flushGlobalProvider hands the spans the providers' batchers hold to
// their exporters, when an exporter is live: the global one
// (otel.SetTracerProvider), then those given to FlushBeforeShutdown, each
// once and each on its own (one that panics or never returns costs the
// others nothing). FlushOnSignals bounds it by ctx.
func flushGlobalProvider(ctx context.Context) {
	if liveExporters.Load() <= 0 {
		return
	}
	var providers []flusher
	if p, ok := otel.GetTracerProvider().(flusher); ok {
		providers = append(providers, p)
	}
	providersToFlush.Lock()
	for _, w := range providersToFlush.list {
		if p := w.Value(); p != nil && !slices.Contains(providers, flusher(p)) {
			providers = append(providers, p)
		}
	}
	providersToFlush.Unlock()
	var wg sync.WaitGroup
	for _, p := range providers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { _ = recover() }() // a provider's panic must not end the process before its signal
			_ = p.ForceFlush(ctx)
		}()
	}
	wg.Wait()
}

// Failures counts spans, or parts of spans, the exporter was given and
// spanguard does not hold: refused by spanguard (no room for the span, its
// payload pool used up for one of its events, say), or not recorded
// because ExportSpans's context was done or the exporter shut down.
func (e *SpanExporter) Failures() uint64 { return e.bridge.Failures() }

// ExportSpans records the sampled spans of spans (unsampled ones are left
// out, as the SDK's processors leave them) and returns nil once spanguard
// holds every one: its tracer exports them from there, retrying and
// spooling. A span spanguard has no room for (ErrBufferFull, say; counted
// by the tracer and in Failures) makes it return an error matching that
// refusal with errors.Is, after recording the others. Once ctx is done it
// stops and returns an error matching ctx's (the spans left are counted in
// Failures); after Shutdown, an error matching spanguard.ErrShutDown.
func (e *SpanExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if e.shutDown.Load() {
		e.bridge.failures.Add(uint64(len(spans)))
		return fmt.Errorf("otelbridge: ExportSpans after Shutdown, %d spans not recorded: %w", len(spans),
			spanguard.ErrShutDown)
	}
	var refused int
	var refusal error
	for i, s := range spans {
		if err := ctx.Err(); err != nil {
			left := len(spans) - i
			e.bridge.failures.Add(uint64(left))
			return fmt.Errorf("otelbridge: %d of %d spans not recorded: %w", left+refused, len(spans), err)
		}
		if err := e.record(s); err != nil {
			refused++
			refusal = cmp.Or(refusal, err)
		}
	}
	if refused > 0 {
		return fmt.Errorf("otelbridge: %d of %d spans not recorded: %w", refused, len(spans), refusal)
	}
	return nil
}

// record records one span, unless it is unsampled. A panic (a nil span in
// the batch, a wrapper span whose methods panic) is its error, counted:
// it must not unwind into the SDK's batch processor, whose goroutine it
// would end with the process.
func (e *SpanExporter) record(s sdktrace.ReadOnlySpan) (err error) {
	defer func() {
		if r := recover(); r != nil {
			e.bridge.failures.Add(1)
			err = fmt.Errorf("otelbridge: recording a span panicked: %v", r)
		}
	}()
	if !s.SpanContext().IsSampled() {
		return nil
	}
	return e.bridge.recordEnded(s)
}

// Shutdown makes later ExportSpans calls fail and flushes the tracer,
// within ctx: the spans exported so far are delivered, or spooled, when
// it returns nil (as after the SDK's own exporter's Shutdown; with no
// deadline in ctx it waits at most 30 s). It returns ctx's error as soon
// as ctx is done. It leaves the tracer running (NewExporter); a second
// call does nothing.
func (e *SpanExporter) Shutdown(ctx context.Context) error {
	if !e.shutDown.CompareAndSwap(false, true) {
		return nil
	}
	liveExporters.Add(-1)
	err := within(ctx, e.bridge.tracer.Flush)
	if errors.Is(err, spanguard.ErrShutDown) {
		return nil // its owner shut it down: its stop exported every span
	}
	return err
}
