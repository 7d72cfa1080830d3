package otelbridge_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
	"github.com/spanguard/spanguard/bindings/go/internal/otlpreceiver"
	"github.com/spanguard/spanguard/bindings/go/otelbridge"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// agentSpans makes, under tp, what an agent's instrumentation makes: a
// session under a remote parent with a tracestate, an LLM call with a
// prompt of LLM size, typed attributes, events and links past the SDK's
// limits (lastFourLimits), a new name and an error, a tool call with
// its scope's version, schema URL and attributes.
func agentSpans(tp *sdktrace.TracerProvider) {
	ts, _ := trace.ParseTraceState("vendor=abc,other=1")
	remote := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0x0e, 1}, SpanID: trace.SpanID{0x0e, 2},
		TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), remote)
	agent := tp.Tracer("my.agent", trace.WithInstrumentationVersion("1.0.0"))
	ctx, session := agent.Start(ctx, "agent.session", trace.WithSpanKind(trace.SpanKindServer))
	_, llm := agent.Start(ctx, "llm", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("gen_ai.request.model", "gpt-4o"),
			attribute.String("gen_ai.prompt", strings.Repeat("a long prompt. ", 20000))),
		trace.WithLinks(numberedLink(1), numberedLink(2)))
	for i := range 6 {
		llm.AddEvent(fmt.Sprint("gen_ai.content.chunk ", i), trace.WithAttributes(attribute.Int("i", i)))
		llm.AddLink(numberedLink(10 + i))
	}
	llm.SetAttributes(attribute.Int("gen_ai.usage.input_tokens", 812), attribute.Float64("temperature", 0.25),
		attribute.StringSlice("gen_ai.response.finish_reasons", []string{"stop"}),
		attribute.ByteSlice("audio", []byte{0, 1, 0xff}))
	llm.SetName("llm.chat")
	llm.SetStatus(codes.Error, "rate limited")
	llm.End()
	tools := tp.Tracer("agent.tools", trace.WithInstrumentationVersion("2.1"),
		trace.WithSchemaURL("https://opentelemetry.io/schemas/1.26.0"),
		trace.WithInstrumentationAttributes(attribute.String("library.kind", "tool")))
	_, tool := tools.Start(ctx, "tool.call", trace.WithAttributes(attribute.Bool("cached", false)))
	tool.SetStatus(codes.Ok, "")
	tool.End()
	session.End()
}

// The spans a provider hands the exporter arrive as the SDK made them
// (the same SDK spans an in-memory exporter got, field by field), with
// their tracestate, scope attributes and the provider's resource, through
// the SDK's simple (WithSyncer) and batch (WithBatcher) processors.
func TestExportedSpansArriveAsTheSDKMadeThem(t *testing.T) {
	for name, with := range map[string]func(sdktrace.SpanExporter) sdktrace.TracerProviderOption{
		"WithSyncer":  func(e sdktrace.SpanExporter) sdktrace.TracerProviderOption { return sdktrace.WithSyncer(e) },
		"WithBatcher": func(e sdktrace.SpanExporter) sdktrace.TracerProviderOption { return sdktrace.WithBatcher(e) },
	} {
		t.Run(name, func(t *testing.T) {
			rx := otlpreceiver.Start(t)
			exporter := otelbridge.NewExporter(newTracer(t, rx.URL))
			memory := tracetest.NewInMemoryExporter()
			res := resource.NewSchemaless(attribute.String("service.name", "checkout-agent"),
				attribute.String("deployment.environment.name", "prod"))
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(memory), with(exporter), lastFourLimits,
				sdktrace.WithResource(res))
			agentSpans(tp)
			if err := tp.ForceFlush(context.Background()); err != nil {
				t.Fatal(err)
			}
			sdk := memory.GetSpans()
			if len(sdk) != 3 || sdk[0].DroppedEvents != 2 || sdk[0].DroppedLinks != 4 {
				t.Fatalf("the SDK did not keep what the test means it to: %+v", sdk)
			}
			arrivedAsTheSDKKeptThem(t, sdk, rx, exporter)
			arrived := map[string]otlpreceiver.Span{}
			for _, s := range rx.Spans(t) {
				arrived[s.SpanID] = s
			}
			for _, o := range sdk {
				got := arrived[o.SpanContext.SpanID().String()]
				if got.TraceState != o.SpanContext.TraceState().String() || got.TraceState == "" {
					t.Errorf("%s: tracestate %q, the SDK had %q", o.Name, got.TraceState, o.SpanContext.TraceState())
				}
				if got.Resource["service.name"] != "checkout-agent" || got.Resource["deployment.environment.name"] != "prod" {
					t.Errorf("%s: resource %v", o.Name, got.Resource)
				}
				if want := o.InstrumentationScope.Attributes.Len(); len(got.ScopeAttrs) != want ||
					(want > 0 && got.ScopeAttrs["library.kind"] != "tool") {
					t.Errorf("%s: scope attributes %v", o.Name, got.ScopeAttrs)
				}
			}
			if err := tp.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// stub is an ended span with the given trace flags, for ExportSpans.
func stub(name string, id byte, flags trace.TraceFlags) tracetest.SpanStub {
	start := time.Now().Add(-time.Second)
	return tracetest.SpanStub{Name: name, StartTime: start, EndTime: start.Add(time.Millisecond),
		SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0x0f, id},
			SpanID: trace.SpanID{0x0f, id}, TraceFlags: flags})}
}

// An unsampled span handed to the exporter (by a processor of one's own:
// the SDK's leave them out) is left out, as the SDK's processors leave it:
// not begun in spanguard at all (it took a slot, to be counted unsampled
// there and never sent).
func TestUnsampledSpansAreLeftOut(t *testing.T) {
	rx := otlpreceiver.Start(t)
	tr := newTracer(t, rx.URL)
	exporter := otelbridge.NewExporter(tr)
	spans := tracetest.SpanStubs{stub("unsampled", 1, 0), stub("sampled", 2, trace.FlagsSampled)}
	if err := exporter.ExportSpans(context.Background(), spans.Snapshots()); err != nil {
		t.Fatal(err)
	}
	if done, err := tr.Flush(10 * time.Second); !done || err != nil {
		t.Fatalf("flush: %v %v", done, err)
	}
	got := rx.WaitFor(t, 1)
	if len(got) != 1 || got[0].Name != "sampled" || exporter.Failures() != 0 {
		t.Fatalf("arrived %+v, %d failures; want the sampled span alone", got, exporter.Failures())
	}
	if stats, _ := tr.Stats(); stats.SpansBegun != 1 || stats.SpansUnsampled != 0 {
		t.Fatalf("spanguard began %d spans, %d unsampled; want the sampled one alone", stats.SpansBegun,
			stats.SpansUnsampled)
	}
}

// A backend that takes nothing and a tracer with room for few spans: of a
// batch of 1000 the spans spanguard had no room for make ExportSpans
// return an error saying so (ErrBufferFull), each counted once by the
// tracer and in Failures; the others are recorded.
func TestSpansSpanguardHasNoRoomForAreAnErrorAndCounted(t *testing.T) {
	backend, release := neverAnswering()
	defer release()
	tr := newTracerWith(t, backend+"/v1/traces", spanguard.Config{MaxOpenSpans: 64, MaxQueueSize: 64,
		ExportTimeout: time.Second})
	exporter := otelbridge.NewExporter(tr)
	var spans tracetest.SpanStubs
	for i := range 1000 {
		s := stub("many", 0, trace.FlagsSampled)
		s.SpanContext = s.SpanContext.WithSpanID(trace.SpanID{0x0f, byte(i >> 8), byte(i)})
		spans = append(spans, s)
	}
	err := exporter.ExportSpans(context.Background(), spans.Snapshots())
	stats, _ := tr.Stats()
	if !errors.Is(err, spanguard.ErrBufferFull) || stats.DroppedBufferFull == 0 || stats.DroppedBufferFull >= 1000 {
		t.Fatalf("ExportSpans: %v; %d refused for want of room", err, stats.DroppedBufferFull)
	}
	want := fmt.Sprintf("%d of 1000 spans not recorded", stats.DroppedBufferFull)
	if !strings.Contains(err.Error(), want) || exporter.Failures() != stats.DroppedBufferFull {
		t.Fatalf("ExportSpans: %v, %d failures; want %q, %d failures", err, exporter.Failures(), want,
			stats.DroppedBufferFull)
	}
}

// A nil span in a batch (a processor of one's own that builds batches) is
// an error, counted, and no panic into the SDK's goroutine; the others
// arrive.
func TestANilSpanIsAnErrorNotAPanic(t *testing.T) {
	rx := otlpreceiver.Start(t)
	exporter := otelbridge.NewExporter(newTracer(t, rx.URL))
	spans := tracetest.SpanStubs{stub("before", 1, trace.FlagsSampled), stub("after", 2, trace.FlagsSampled)}.Snapshots()
	err := exporter.ExportSpans(context.Background(), []sdktrace.ReadOnlySpan{spans[0], nil, spans[1]})
	if err == nil || !strings.Contains(err.Error(), "1 of 3 spans not recorded") || exporter.Failures() != 1 {
		t.Fatalf("ExportSpans: %v, %d failures", err, exporter.Failures())
	}
	if got := rx.WaitFor(t, 2); len(got) != 2 {
		t.Fatalf("%d spans arrived, want 2", len(got))
	}
}

// A span with an all-zero trace or span id (an invalid span context) is
// refused with an error that says so: it said "an argument was out of
// range (code 2)", sending its user looking at the kind. The others arrive.
func TestASpanWithZeroIDsIsRefusedSayingWhy(t *testing.T) {
	rx := otlpreceiver.Start(t)
	exporter := otelbridge.NewExporter(newTracer(t, rx.URL))
	zeroTrace := stub("zero.trace", 1, trace.FlagsSampled)
	zeroTrace.SpanContext = zeroTrace.SpanContext.WithTraceID(trace.TraceID{})
	zeroSpan := stub("zero.span", 2, trace.FlagsSampled)
	zeroSpan.SpanContext = zeroSpan.SpanContext.WithSpanID(trace.SpanID{})
	for _, c := range []struct {
		span tracetest.SpanStub
		want string
	}{
		{zeroTrace, `the span "zero.trace" has an all-zero trace id`},
		{zeroSpan, `the span "zero.span" has an all-zero span id`},
	} {
		err := exporter.ExportSpans(context.Background(), tracetest.SpanStubs{c.span}.Snapshots())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ExportSpans: %v; want it to say %q", err, c.want)
		}
	}
	if err := exporter.ExportSpans(context.Background(),
		tracetest.SpanStubs{stub("valid", 3, trace.FlagsSampled)}.Snapshots()); err != nil {
		t.Fatal(err)
	}
	if got := rx.WaitFor(t, 1); len(got) != 1 || got[0].Name != "valid" {
		t.Fatalf("arrived %+v, want the valid span alone", got)
	}
}

// ExportSpans answers its context as the SDK's exporters do: done before
// or during the call, it stops with the context's error, the spans left
// counted. Shutdown flushes the tracer (the spans exported are at the
// backend when it returns), leaves it running for its owner, and makes
// later ExportSpans calls fail; a second Shutdown does nothing.
func TestExporterAnswersItsContextAndShutdown(t *testing.T) {
	rx := otlpreceiver.Start(t)
	tr := newTracerWith(t, rx.URL, spanguard.Config{ScheduleDelay: 5 * time.Second})
	exporter := otelbridge.NewExporter(tr)
	spans := tracetest.SpanStubs{stub("first", 1, trace.FlagsSampled), stub("second", 2, trace.FlagsSampled)}.Snapshots()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := exporter.ExportSpans(cancelled, spans); !errors.Is(err, context.Canceled) || exporter.Failures() != 2 {
		t.Fatalf("ExportSpans with a cancelled context: %v, %d failures", err, exporter.Failures())
	}
	if err := exporter.ExportSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	if err := exporter.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// No wait: flushed (the tracer's own schedule would send them in 5 s).
	if got := rx.Spans(t); len(got) != 2 {
		t.Fatalf("%d spans at the backend when Shutdown returned, want 2", len(got))
	}
	if err := exporter.ExportSpans(context.Background(), spans); !errors.Is(err, spanguard.ErrShutDown) {
		t.Fatalf("ExportSpans after Shutdown: %v", err)
	}
	if err := exporter.Shutdown(context.Background()); err != nil {
		t.Fatalf("a second Shutdown: %v", err)
	}
	_, own, err := tr.Start(context.Background(), "the owner's")
	if err != nil {
		t.Fatalf("the tracer was shut down with the exporter: %v", err)
	}
	own.End()
}

// A backend that never answers: Shutdown returns as soon as its context
// is done, with the context's error.
func TestExporterShutdownReturnsWhenItsContextIsDone(t *testing.T) {
	backend, release := neverAnswering()
	defer release()
	exporter := otelbridge.NewExporter(newTracer(t, backend+"/v1/traces"))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	_, span := tp.Tracer("stuck").Start(context.Background(), "waits")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	started := time.Now()
	if err := tp.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want context.DeadlineExceeded", err)
	}
	// Not after the 30 s fallback (a bound far from any timing: this is
	// not a speed check).
	if elapsed := time.Since(started); elapsed > 20*time.Second {
		t.Fatalf("hung: %v, its context of 200 ms ignored for the 30 s fallback", elapsed)
	}
}

// A spanguard tracer sends one resource with every batch (the last one
// passed on): the spans of two providers with different resources that
// share it (one exporter given to both) arrive under one of them. That
// happened in silence; the Python bridge says so, and so must this one,
// through OpenTelemetry's error handler (otel.Handle), once an exporter
// or processor, naming both service names. Equal resources are not
// reported.
func TestProvidersWithDifferentResourcesOnOneTracerAreReported(t *testing.T) {
	var reported []string
	previous := otel.GetErrorHandler()
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		if strings.Contains(err.Error(), "different resources") {
			reported = append(reported, err.Error())
		}
	}))
	t.Cleanup(func() { otel.SetErrorHandler(previous) })
	rx := otlpreceiver.Start(t)
	tr := newTracer(t, rx.URL)
	exporter := otelbridge.NewExporter(tr)
	second := otelbridge.NewExporter(tr) // on the same tracer: it sees what the first passed on
	under := func(service string, id byte) tracetest.SpanStub {
		s := stub(service, id, trace.FlagsSampled)
		s.Resource = resource.NewSchemaless(attribute.String("service.name", service),
			attribute.String("deployment.environment.name", "prod"))
		return s
	}
	same := tracetest.SpanStubs{under("billing-agent", 1), under("billing-agent", 2)}
	if err := exporter.ExportSpans(context.Background(), same.Snapshots()); err != nil {
		t.Fatal(err)
	}
	if len(reported) != 0 {
		t.Fatalf("equal resources reported: %q", reported)
	}
	mixed := tracetest.SpanStubs{under("search-agent", 3), under("billing-agent", 4), under("search-agent", 5)}
	if err := exporter.ExportSpans(context.Background(), mixed.Snapshots()); err != nil {
		t.Fatal(err)
	}
	if err := second.ExportSpans(context.Background(), tracetest.SpanStubs{under("billing-agent", 6)}.Snapshots()); err != nil {
		t.Fatal(err)
	}
	if len(reported) != 2 || !strings.Contains(reported[0], `"billing-agent", then "search-agent"`) ||
		!strings.Contains(reported[1], `"search-agent", then "billing-agent"`) ||
		!strings.Contains(reported[0], "its own spanguard.Tracer") {
		t.Fatalf("reported %q; want once by each exporter, naming both", reported)
	}
	if n := exporter.Failures() + second.Failures(); n != 0 {
		t.Fatalf("%d failures", n)
	}
}

// A processor or exporter given no tracer records nothing (each call
// answers closed) and panics into nothing: noting the provider's resource
// for a nil tracer must not reach runtime.AddCleanup.
func TestANilTracerRecordsNothingAndPanicsNot(t *testing.T) {
	exporter := otelbridge.NewExporter(nil)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(otelbridge.New(nil)), sdktrace.WithSyncer(exporter))
	_, span := tp.Tracer("nil").Start(context.Background(), "nowhere")
	span.End()
	if !errors.Is(exporter.ExportSpans(context.Background(), tracetest.SpanStubs{stub("direct", 1, trace.FlagsSampled)}.Snapshots()),
		spanguard.ErrShutDown) {
		t.Fatal("ExportSpans to a nil tracer did not answer closed")
	}
}

// A program with the exporter under a batcher whose way out is a deferred
// tracer.Close, with no tp.Shutdown before it (the binding's examples
// close their tracer so): the spans the batcher still queued were lost,
// counted nowhere, up to its batch timeout of them. The tracer's stop now
// flushes the providers first, as a signal FlushOnSignals takes does: a
// provider given to FlushBeforeShutdown (or the global one) hands its
// queue to the exporter before the tracer shuts down.
func TestClosingTheTracerFlushesTheBatcherFirst(t *testing.T) {
	rx := otlpreceiver.Start(t)
	tr := newTracerWith(t, rx.URL, spanguard.Config{ScheduleDelay: time.Minute})
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(otelbridge.NewExporter(tr),
		sdktrace.WithBatchTimeout(time.Minute)))
	otelbridge.FlushBeforeShutdown(tp)
	for _, name := range []string{"first", "second", "third"} {
		_, s := tp.Tracer("t").Start(context.Background(), name)
		s.End()
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if got := rx.Spans(t); len(got) != 3 {
		t.Fatalf("%d spans at the backend once the tracer closed, want the 3 the batcher held", len(got))
	}
	// The provider's own shutdown afterwards: nothing left, nothing twice.
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := rx.Spans(t); len(got) != 3 {
		t.Fatalf("%d spans at the backend after tp.Shutdown, want 3", len(got))
	}
}
