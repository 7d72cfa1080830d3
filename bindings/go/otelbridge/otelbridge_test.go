package otelbridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
	"github.com/spanguard/spanguard/bindings/go/internal/childtest"
	"github.com/spanguard/spanguard/bindings/go/internal/otlpreceiver"
	"github.com/spanguard/spanguard/bindings/go/otelbridge"
	"github.com/spanguard/spanguard/bindings/go/otelbridge/internal/spancheck"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// The comparisons live in internal/spancheck (shared with internal/newertest).
var (
	expected                = spancheck.Expected
	nanos                   = spancheck.Nanos
	assertSameSpans         = spancheck.AssertSameSpans
	sameEventsAndLinks      = spancheck.SameEventsAndLinks
	arrivedAsTheSDKKeptThem = spancheck.ArrivedAsTheSDKKeptThem
)

// neverAnswering starts a backend that takes requests and never answers
// them: its URL, and what lets its handlers go and stops it (deferred by
// the test, so that it runs before the tracer's cleanup closes it).
func neverAnswering() (string, func()) {
	hang := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	return backend.URL, func() {
		close(hang)
		backend.Close()
	}
}

func newTracer(t *testing.T, endpoint string) *spanguard.Tracer {
	return newTracerWith(t, endpoint, spanguard.Config{})
}

// newTracerWith is newTracer with cfg's limits.
func newTracerWith(t *testing.T, endpoint string, cfg spanguard.Config) *spanguard.Tracer {
	cfg.ServiceName, cfg.Endpoint = "otel-go-test", endpoint
	cfg.SpoolDir, cfg.ScheduleDelay = filepath.Join(t.TempDir(), "spool"), 50*time.Millisecond
	tr, err := spanguard.NewTracer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// Byte slices arrive as OTLP bytes and slices of one scalar type as
// arrays, as the SDK's own exporter sends them (they arrived as text: a
// byte slice as its base64, a slice as JSON), at the start, later, on
// events and on links.
func TestByteSlicesAndSlicesArriveAsTheSDKsExporterSendsThem(t *testing.T) {
	rx := otlpreceiver.Start(t)
	bridge := otelbridge.New(newTracer(t, rx.URL))
	memory := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(memory), sdktrace.WithSpanProcessor(bridge))
	values := []attribute.KeyValue{
		attribute.ByteSlice("image.png", []byte{0x89, 'P', 'N', 'G', 0, 0xff}),
		attribute.ByteSlice("empty.bytes", []byte{}),
		attribute.Slice("messages", attribute.StringValue("hi"), attribute.StringValue("")),
		attribute.Slice("token.ids", attribute.Int64Value(7), attribute.Int64Value(-1)),
		attribute.Slice("scores", attribute.Float64Value(0.5), attribute.Float64Value(-2.25)),
		attribute.Slice("flags", attribute.BoolValue(true), attribute.BoolValue(false)),
		attribute.Slice("none"),
	}
	_, earlier := tp.Tracer("values").Start(context.Background(), "earlier")
	earlier.End()
	_, span := tp.Tracer("values").Start(context.Background(), "typed.values", trace.WithAttributes(values...),
		trace.WithLinks(trace.Link{SpanContext: earlier.SpanContext(), Attributes: values}))
	span.AddEvent("values", trace.WithAttributes(values...))
	span.SetAttributes(attribute.ByteSlice("later.bytes", []byte("\x00later")))
	span.End()
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	sdk := memory.GetSpans()
	arrivedAsTheSDKKeptThem(t, sdk, rx, bridge)
	tp.Shutdown(context.Background())
}

// Maps, slices of mixed or nested values and empty values (OpenTelemetry
// Go's complex attribute values) arrive as kvlistValue, arrayValue and the
// empty value, as the SDK's own OTLP exporter sends them: they arrived as
// their text (Emit), at the start, later, on events and on links.
func TestMapsAndMixedSlicesArriveAsComplexValues(t *testing.T) {
	rx := otlpreceiver.Start(t)
	bridge := otelbridge.New(newTracer(t, rx.URL))
	memory := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(memory), sdktrace.WithSpanProcessor(bridge))
	values := []attribute.KeyValue{
		attribute.Map("gen_ai.tool.arguments", attribute.String("city", "Paris"), attribute.Int("days", 3),
			attribute.Slice("tags", attribute.StringValue("a"), attribute.Int64Value(1)),
			attribute.KeyValue{Key: "none", Value: attribute.Value{}}),
		attribute.Slice("llm.input_messages",
			attribute.MapValue(attribute.String("role", "user"), attribute.String("content", "hi")),
			attribute.MapValue(attribute.String("role", "assistant"), attribute.ByteSlice("raw", []byte{0, 0xff}))),
		attribute.Slice("mixed", attribute.Int64Value(1), attribute.StringValue("two"), attribute.Value{}),
		attribute.Slice("nested", attribute.SliceValue(attribute.BoolValue(true))),
		{Key: "empty", Value: attribute.Value{}},
	}
	_, earlier := tp.Tracer("values").Start(context.Background(), "earlier")
	earlier.End()
	_, span := tp.Tracer("values").Start(context.Background(), "complex.values", trace.WithAttributes(values...),
		trace.WithLinks(trace.Link{SpanContext: earlier.SpanContext(), Attributes: values}))
	span.AddEvent("values", trace.WithAttributes(values...))
	span.SetAttributes(attribute.Map("later.map", attribute.Float64("score", 0.5)))
	span.End()
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	arrivedAsTheSDKKeptThem(t, memory.GetSpans(), rx, bridge)
	tp.Shutdown(context.Background())
}

// A span the SDK started before the bridge was registered on its provider
// (RegisterSpanProcessor) arrives, whole, as it does through the SDK's own
// processors registered with it: it was lost, uncounted. One spanguard
// refused at its start is counted once, not begun again at its end.
func TestASpanStartedBeforeTheBridgeWasRegisteredArrives(t *testing.T) {
	rx := otlpreceiver.Start(t)
	bridge := otelbridge.New(newTracer(t, rx.URL))
	memory := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(lastFourLimits)
	_, earlier := tp.Tracer("late").Start(context.Background(), "earlier")
	_, span := tp.Tracer("late", trace.WithInstrumentationVersion("2")).Start(context.Background(), "agent.run",
		trace.WithAttributes(attribute.String("gen_ai.prompt", "hello")),
		trace.WithLinks(trace.Link{SpanContext: earlier.SpanContext(), Attributes: []attribute.KeyValue{attribute.Int("n", 1)}}))
	tp.RegisterSpanProcessor(bridge)
	tp.RegisterSpanProcessor(sdktrace.NewSimpleSpanProcessor(memory))
	for i := range 6 {
		span.AddEvent(fmt.Sprint("step ", i))
	}
	span.SetAttributes(attribute.String("gen_ai.completion", "hi"))
	span.SetName("agent.run done")
	span.SetStatus(codes.Error, "tool failed")
	span.End()
	earlier.End()
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	sdk := memory.GetSpans()
	if len(sdk) != 2 || sdk[0].DroppedEvents != 2 {
		t.Fatalf("the SDK did not keep what the test means it to: %+v", sdk)
	}
	arrivedAsTheSDKKeptThem(t, sdk, rx, bridge)
	tp.Shutdown(context.Background())

	closed := newTracer(t, rx.URL)
	closed.Close()
	refusing := otelbridge.New(closed)
	tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(refusing))
	for i := range 2 {
		before := refusing.Failures() // the first span's includes the refused resource
		_, span = tp.Tracer("late").Start(context.Background(), "refused")
		span.End()
		if n := refusing.Failures() - before; n != 1 && i > 0 {
			t.Fatalf("a span refused at its start: %d failures, want 1", n)
		}
	}
}

// With the SDK's per-event and per-link attribute limits raised past 128
// (what one spanguard call took), an event and a link arrive with all the
// attributes the SDK kept: they were refused whole and counted nowhere.
func TestAnEventAndALinkWithMoreThan128AttributesArriveWhole(t *testing.T) {
	rx := otlpreceiver.Start(t)
	bridge := otelbridge.New(newTracer(t, rx.URL))
	memory := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(memory), sdktrace.WithSpanProcessor(bridge),
		sdktrace.WithRawSpanLimits(sdktrace.SpanLimits{AttributeValueLengthLimit: -1, AttributeCountLimit: -1,
			EventCountLimit: -1, LinkCountLimit: -1, AttributePerEventCountLimit: 300, AttributePerLinkCountLimit: 300}))
	var many []attribute.KeyValue
	for i := range 200 {
		many = append(many, attribute.Int(fmt.Sprint("tool.arg.", i), i))
	}
	_, earlier := tp.Tracer("many").Start(context.Background(), "earlier")
	earlier.End()
	_, span := tp.Tracer("many").Start(context.Background(), "many.attributes",
		trace.WithLinks(trace.Link{SpanContext: earlier.SpanContext(), Attributes: many}))
	span.AddEvent("tool.call", trace.WithAttributes(many...))
	span.End()
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	sdk := memory.GetSpans()
	arrivedAsTheSDKKeptThem(t, sdk, rx, bridge)
	tp.Shutdown(context.Background())
}

// The bridge passes on what the SDK's span limits dropped (the span's
// dropped attribute, event and link counts) and each link's tracestate.
func TestWhatTheSDKLimitsDroppedIsCountedAndLinksKeepTheirTracestate(t *testing.T) {
	rx := otlpreceiver.Start(t)
	bridge := otelbridge.New(newTracer(t, rx.URL))
	memory := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(memory), sdktrace.WithSpanProcessor(bridge),
		sdktrace.WithRawSpanLimits(sdktrace.SpanLimits{AttributeValueLengthLimit: -1, AttributeCountLimit: 2,
			EventCountLimit: 1, LinkCountLimit: 1, AttributePerEventCountLimit: -1, AttributePerLinkCountLimit: -1}))
	state, err := trace.ParseTraceState("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
	if err != nil {
		t.Fatal(err)
	}
	linked := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0x0a, 0xf7}, SpanID: trace.SpanID{0xb7},
		TraceFlags: trace.FlagsSampled, TraceState: state, Remote: true})
	_, span := tp.Tracer("limited").Start(context.Background(), "over.the.limits",
		trace.WithAttributes(attribute.Int("a", 1), attribute.Int("b", 2), attribute.Int("c", 3)),
		trace.WithLinks(trace.Link{SpanContext: linked, Attributes: []attribute.KeyValue{attribute.String("why", "batch")}},
			trace.Link{SpanContext: linked}))
	span.AddEvent("e1")
	span.AddEvent("e2")
	span.End()
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	sdk := memory.GetSpans()
	if len(sdk) != 1 || sdk[0].DroppedAttributes != 1 || sdk[0].DroppedEvents != 1 || sdk[0].DroppedLinks != 1 {
		t.Fatalf("the SDK did not drop what the test means it to: %+v", sdk)
	}
	arrived := rx.WaitFor(t, 1)
	if len(arrived) == 1 && (len(arrived[0].Links) != 1 || arrived[0].Links[0].TraceState != state.String()) {
		t.Errorf("links %+v, want one with tracestate %s", arrived[0].Links, state)
	}
	assertSameSpans(t, sdk, arrived)
	if n := bridge.Failures(); n != 0 {
		t.Fatalf("%d failures", n)
	}
	tp.Shutdown(context.Background())
}

// The attributes the SDK dropped on an event or a link (its
// AttributePerEventCountLimit, AttributePerLinkCountLimit) arrive in that
// event's or link's dropped count, as the SDK's own OTLP exporter sends
// them; they arrived as 0.
func TestTheAttributesTheSDKDroppedOnAnEventOrLinkAreCountedOnIt(t *testing.T) {
	rx := otlpreceiver.Start(t)
	bridge := otelbridge.New(newTracer(t, rx.URL))
	memory := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(memory), sdktrace.WithSpanProcessor(bridge),
		sdktrace.WithRawSpanLimits(sdktrace.SpanLimits{AttributeValueLengthLimit: -1, AttributeCountLimit: -1,
			EventCountLimit: -1, LinkCountLimit: -1, AttributePerEventCountLimit: 1, AttributePerLinkCountLimit: 2}))
	linked := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0x0a, 0xf7}, SpanID: trace.SpanID{0xb7},
		TraceFlags: trace.FlagsSampled, Remote: true})
	_, span := tp.Tracer("limited").Start(context.Background(), "over.item.limits",
		trace.WithLinks(trace.Link{SpanContext: linked, Attributes: []attribute.KeyValue{attribute.Int("a", 1),
			attribute.Int("b", 2), attribute.Int("c", 3), attribute.Int("d", 4), attribute.Int("e", 5)}}))
	span.AddEvent("three", trace.WithAttributes(attribute.Int("x", 1), attribute.Int("y", 2), attribute.Int("z", 3)))
	span.AddEvent("one", trace.WithAttributes(attribute.Int("x", 1)))
	span.End()
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	sdk := memory.GetSpans()
	if len(sdk) != 1 {
		t.Fatalf("the SDK ended %d spans, want 1", len(sdk))
	}
	var sdkEvents, sdkLinks []int
	for _, e := range sdk[0].Events {
		sdkEvents = append(sdkEvents, e.DroppedAttributeCount)
	}
	for _, l := range sdk[0].Links {
		sdkLinks = append(sdkLinks, l.DroppedAttributeCount)
	}
	if fmt.Sprint(sdkEvents, sdkLinks) != "[2 0] [3]" {
		t.Fatalf("the SDK did not drop what the test means it to: events %v, links %v", sdkEvents, sdkLinks)
	}
	arrived := rx.WaitFor(t, 1)
	if len(arrived) != 1 {
		t.Fatalf("%d spans arrived, want 1", len(arrived))
	}
	var events, links []int
	for _, e := range arrived[0].Events {
		events = append(events, e.Dropped)
	}
	for _, l := range arrived[0].Links {
		links = append(links, l.Dropped)
	}
	if fmt.Sprint(events, links) != fmt.Sprint(sdkEvents, sdkLinks) {
		t.Errorf("dropped counts arrived: events %v, links %v; the SDK had events %v, links %v",
			events, links, sdkEvents, sdkLinks)
	}
	assertSameSpans(t, sdk, arrived)
	if n := bridge.Failures(); n != 0 {
		t.Fatalf("%d failures", n)
	}
	tp.Shutdown(context.Background())
}

// A link keeps whether its context was remote, in the link's OTLP flags as
// the SDK's own exporter sends them (0x100 HAS_IS_REMOTE, 0x200 IS_REMOTE,
// over the W3C bits), and a link with an invalid context (zero ids) that
// the SDK kept for its attributes arrives too.
func TestLinksKeepIsRemoteAndInvalidContextsWithAttributes(t *testing.T) {
	rx := otlpreceiver.Start(t)
	bridge := otelbridge.New(newTracer(t, rx.URL))
	memory := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(memory), sdktrace.WithSpanProcessor(bridge))
	remote := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0x0a, 1}, SpanID: trace.SpanID{0xb7, 1},
		TraceFlags: trace.FlagsSampled, Remote: true})
	local := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0x0a, 2}, SpanID: trace.SpanID{0xb7, 2},
		TraceFlags: trace.FlagsSampled})
	_, span := tp.Tracer("links").Start(context.Background(), "linked", trace.WithLinks(
		trace.Link{SpanContext: remote}, trace.Link{SpanContext: local}))
	// Added later: the one with attributes is kept, the bare one is not
	// (by the SDK, nor by spanguard).
	span.AddLink(trace.Link{Attributes: []attribute.KeyValue{attribute.String("link.why", "context lost")}})
	span.AddLink(trace.Link{})
	span.End()
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	sdk := memory.GetSpans()
	if len(sdk) != 1 || len(sdk[0].Links) != 3 {
		t.Fatalf("the SDK did not keep the links the test means it to: %+v", sdk)
	}
	arrived := rx.WaitFor(t, 1)
	flags := map[string]string{}
	for _, l := range arrived[0].Links {
		flags[l.TraceID+" "+l.SpanID] = fmt.Sprintf("%#x", l.Flags)
	}
	want := map[string]string{
		remote.TraceID().String() + " " + remote.SpanID().String(): "0x301",
		local.TraceID().String() + " " + local.SpanID().String():   "0x101",
		trace.TraceID{}.String() + " " + trace.SpanID{}.String():   "0x100",
	}
	if fmt.Sprint(flags) != fmt.Sprint(want) {
		t.Errorf("links arrived with flags %v, want %v", flags, want)
	}
	assertSameSpans(t, sdk, arrived)
	if n := bridge.Failures(); n != 0 {
		t.Fatalf("%d failures", n)
	}
	tp.Shutdown(context.Background())
}

// Links added after the start under the SDK's link limit, which evicts
// the oldest: the span ends with the ones the SDK kept, the evicted one
// counted dropped once (the bridge took them by their positions after the
// start's, keeping an evicted one and losing a kept one; then it kept the
// one passed at the start that the SDK evicted, and counted it dropped too).
func TestLinksAddedLaterArriveWhenTheLimitEvictedOlderOnes(t *testing.T) {
	rx := otlpreceiver.Start(t)
	bridge := otelbridge.New(newTracer(t, rx.URL))
	memory := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(memory), sdktrace.WithSpanProcessor(bridge),
		sdktrace.WithRawSpanLimits(sdktrace.SpanLimits{AttributeValueLengthLimit: -1, AttributeCountLimit: -1,
			EventCountLimit: -1, LinkCountLimit: 2, AttributePerEventCountLimit: -1, AttributePerLinkCountLimit: -1}))
	_, span := tp.Tracer("links").Start(context.Background(), "batch", trace.WithLinks(numberedLink(1)))
	span.AddLink(numberedLink(2))
	span.AddLink(numberedLink(3))
	span.End()
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	sdk := memory.GetSpans()
	if len(sdk) != 1 || len(sdk[0].Links) != 2 || sdk[0].DroppedLinks != 1 {
		t.Fatalf("the SDK did not evict what the test means it to: %+v", sdk)
	}
	assertSameSpans(t, sdk, rx.WaitFor(t, 1))
	if n := bridge.Failures(); n != 0 {
		t.Fatalf("%d failures", n)
	}
	tp.Shutdown(context.Background())
}

// numberedLink is a link to a span numbered i, with i as an attribute.
func numberedLink(i int) trace.Link {
	return trace.Link{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x0a, byte(i)}, SpanID: trace.SpanID{byte(i)}, TraceFlags: trace.FlagsSampled}),
		Attributes: []attribute.KeyValue{attribute.Int("n", i)}}
}

// lastFourLimits: the SDK keeps a span's last 4 events and last 4 links.
var lastFourLimits = sdktrace.WithRawSpanLimits(sdktrace.SpanLimits{AttributeValueLengthLimit: -1,
	AttributeCountLimit: -1, EventCountLimit: 4, LinkCountLimit: 4, AttributePerEventCountLimit: -1,
	AttributePerLinkCountLimit: -1})

// tenOfEach starts a span with the first atStart of 10 links, adds the
// others and 10 events, under tp's limits, and returns it open.
func tenOfEach(tp *sdktrace.TracerProvider, name string, atStart int) trace.Span {
	var links []trace.Link
	for i := range 10 {
		links = append(links, numberedLink(i+1))
	}
	_, span := tp.Tracer("limits").Start(context.Background(), name, trace.WithLinks(links[:atStart]...))
	for i, l := range links[atStart:] {
		span.AddLink(l)
		span.AddEvent(fmt.Sprintf("e%d", i), trace.WithAttributes(attribute.Int("i", i)))
	}
	for i := 10 - atStart; i < 10; i++ {
		span.AddEvent(fmt.Sprintf("e%d", i), trace.WithAttributes(attribute.Int("i", i)))
	}
	return span
}

// Past the SDK's limits of 4 events and 4 links, a span of 10 of each
// (links given at the start, added later, or both) ends with the SDK's
// last 4 of each, in order, the 6 others counted dropped, as the SDK's own
// exporter sends it; the tracer's own limits (2 here) are not applied on
// top. With 3 links at the start and 7 added, the bridge ended the span
// holding the 3 it passed at the start, which the SDK evicted, and the 4
// it kept, and counted 6 dropped: 13 for 10.
func TestPastTheSDKsLimitsASpanEndsWithItsLastEventsAndLinks(t *testing.T) {
	for _, own := range []uint32{0, 2} {
		t.Run(fmt.Sprintf("tracer limits %d", own), func(t *testing.T) {
			rx := otlpreceiver.Start(t)
			bridge := otelbridge.New(newTracerWith(t, rx.URL, spanguard.Config{EventCountLimit: own, LinkCountLimit: own}))
			memory := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(memory), sdktrace.WithSpanProcessor(bridge),
				lastFourLimits)
			for _, atStart := range []int{10, 0, 3, 6} {
				tenOfEach(tp, fmt.Sprintf("links.at.start.%d", atStart), atStart).End()
			}
			if err := tp.ForceFlush(context.Background()); err != nil {
				t.Fatal(err)
			}
			sdk := memory.GetSpans()
			for _, s := range sdk {
				if len(s.Events) != 4 || s.DroppedEvents != 6 || len(s.Links) != 4 || s.DroppedLinks != 6 {
					t.Fatalf("the SDK did not keep what the test means it to: %+v", s)
				}
			}
			arrivedAsTheSDKKeptThem(t, sdk, rx, bridge)
			tp.Shutdown(context.Background())
		})
	}
}

// A span still open when the tracer stops, past the SDK's limits: it
// arrives (unended) with what the SDK held then, its last 4 events and
// links, the others counted dropped, and the attribute the SDK refused
// counted too (it arrived with the 3 links passed at the start, which the
// SDK had evicted, beside the 4 it kept, and no dropped counts at all).
func TestASpanOpenAtTheStopArrivesWithTheSDKsLastEventsAndLinks(t *testing.T) {
	rx := otlpreceiver.Start(t)
	tr := newTracer(t, rx.URL)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(otelbridge.New(tr)),
		sdktrace.WithRawSpanLimits(sdktrace.SpanLimits{AttributeValueLengthLimit: -1, AttributeCountLimit: 1,
			EventCountLimit: 4, LinkCountLimit: 4, AttributePerEventCountLimit: -1, AttributePerLinkCountLimit: -1}))
	span := tenOfEach(tp, "open.at.stop", 3)
	span.SetAttributes(attribute.String("kept", "k"), attribute.String("refused", "r"))
	if ok, err := tr.Shutdown(10 * time.Second); !ok || err != nil {
		t.Fatal(ok, err)
	}
	arrived := rx.WaitFor(t, 1)
	sdk := tracetest.SpanStubFromReadOnlySpan(span.(sdktrace.ReadOnlySpan))
	if len(sdk.Links) != 4 || sdk.DroppedLinks != 6 || len(sdk.Events) != 4 || sdk.DroppedEvents != 6 ||
		sdk.DroppedAttributes != 1 {
		t.Fatalf("the SDK did not keep what the test means it to: %+v", sdk)
	}
	if len(arrived) != 1 || arrived[0].Attributes["spanguard.unended"] != true || arrived[0].Attributes["kept"] != "k" {
		t.Fatalf("arrived %+v, want the open span marked unended", arrived)
	}
	sameEventsAndLinks(func(what string, a, b any) {
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("%s: arrived %v, the SDK had %v", what, a, b)
		}
	}, sdk, arrived[0])
	span.End()
	tp.Shutdown(context.Background())
}

// manySpan ends a span of 200 attributes (100 at its start, 100 later, as
// an LLM instrumentation flattens a long conversation), 150 events and 150
// links, made by tp, and returns what the SDK exported and what arrived.
func manySpan(t *testing.T, rx *otlpreceiver.Receiver, memory *tracetest.InMemoryExporter,
	tp *sdktrace.TracerProvider) (tracetest.SpanStubs, []otlpreceiver.Span) {
	t.Helper()
	var atStart, later []attribute.KeyValue
	for i := range 200 {
		kv := attribute.String(fmt.Sprintf("gen_ai.prompt.%d.content", i), fmt.Sprintf("message %d", i))
		if i < 100 {
			atStart = append(atStart, kv)
		} else {
			later = append(later, kv)
		}
	}
	var links []trace.Link
	for i := range 150 {
		links = append(links, trace.Link{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{0x0a, 0xf7}, SpanID: trace.SpanID{byte(i + 1)}, TraceFlags: trace.FlagsSampled}),
			Attributes: []attribute.KeyValue{attribute.Int("n", i)}})
	}
	_, span := tp.Tracer("limits").Start(context.Background(), "llm.chat", trace.WithAttributes(atStart...),
		trace.WithLinks(links...))
	span.SetAttributes(later...)
	for i := range 150 {
		span.AddEvent(fmt.Sprintf("chunk.%d", i), trace.WithAttributes(attribute.Int("i", i)))
	}
	span.End()
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return memory.GetSpans(), rx.WaitFor(t, 1)
}

// A provider that allowed 1000 attributes got 128 of 200 (72 counted
// dropped): the bridge's tracer cut again at its own default.
func TestTheProvidersSpanLimitsApplyNotTheTracersOnTop(t *testing.T) {
	rx := otlpreceiver.Start(t)
	bridge := otelbridge.New(newTracer(t, rx.URL))
	memory := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(memory), sdktrace.WithSpanProcessor(bridge),
		sdktrace.WithRawSpanLimits(sdktrace.SpanLimits{AttributeValueLengthLimit: -1, AttributeCountLimit: 1000,
			EventCountLimit: 1000, LinkCountLimit: 1000, AttributePerEventCountLimit: 128, AttributePerLinkCountLimit: 128}))
	sdk, arrived := manySpan(t, rx, memory, tp)
	if len(arrived) != 1 {
		t.Fatalf("%d spans arrived", len(arrived))
	}
	got := arrived[0]
	if len(got.Attributes) != 200 || len(got.Events) != 150 || len(got.Links) != 150 ||
		got.Dropped+got.DroppedEvents+got.DroppedLinks != 0 {
		t.Errorf("arrived with %d attributes, %d events, %d links, dropped %d %d %d; want 200 150 150, none dropped",
			len(got.Attributes), len(got.Events), len(got.Links), got.Dropped, got.DroppedEvents, got.DroppedLinks)
	}
	assertSameSpans(t, sdk, arrived)
	if n := bridge.Failures(); n != 0 {
		t.Fatalf("%d failures", n)
	}
	tp.Shutdown(context.Background())
}

// Under the SDK's default limits what it dropped arrives counted once.
func TestWithTheSDKsDefaultLimitsWhatItDroppedIsCountedOnce(t *testing.T) {
	rx := otlpreceiver.Start(t)
	bridge := otelbridge.New(newTracer(t, rx.URL))
	memory := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(memory), sdktrace.WithSpanProcessor(bridge))
	sdk, arrived := manySpan(t, rx, memory, tp)
	if len(sdk) != 1 || sdk[0].DroppedAttributes != 72 || sdk[0].DroppedEvents != 22 || sdk[0].DroppedLinks != 22 {
		t.Fatalf("the SDK did not drop what the test means it to")
	}
	got := arrived[0]
	if len(got.Attributes) != 128 || got.Dropped != 72 || len(got.Events) != 128 || got.DroppedEvents != 22 ||
		len(got.Links) != 128 || got.DroppedLinks != 22 {
		t.Errorf("arrived with %d attributes, %d events, %d links, dropped %d %d %d; want 128 each, dropped 72 22 22",
			len(got.Attributes), len(got.Events), len(got.Links), got.Dropped, got.DroppedEvents, got.DroppedLinks)
	}
	assertSameSpans(t, sdk, arrived)
	if n := bridge.Failures(); n != 0 {
		t.Fatalf("%d failures", n)
	}
	tp.Shutdown(context.Background())
}

// The provider's resource is the spans' resource, as with its own
// exporter (the spans arrived as unknown_service with spanguard's).
func TestSpansCarryTheProvidersResource(t *testing.T) {
	rx := otlpreceiver.Start(t)
	bridge := otelbridge.New(newTracer(t, rx.URL))
	res := resource.NewSchemaless(attribute.String("service.name", "checkout-agent"),
		attribute.String("deployment.environment.name", "prod"), attribute.Int("replicas", 3))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(bridge), sdktrace.WithResource(res))
	_, span := tp.Tracer("res").Start(context.Background(), "op")
	span.End()
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := rx.WaitFor(t, 1)[0].Resource
	if got["service.name"] != "checkout-agent" || got["deployment.environment.name"] != "prod" ||
		fmt.Sprint(got["replicas"]) != "3" {
		t.Fatalf("resource %v", got)
	}
	if n := bridge.Failures(); n != 0 {
		t.Fatalf("%d failures", n)
	}
	tp.Shutdown(context.Background())
}

// A tracer's scope attributes (WithInstrumentationAttributes) arrive on
// its spans' InstrumentationScope, as with the SDK's own exporter; another
// tracer's spans have none (they arrived with none).
func TestSpansCarryTheirTracersScopeAttributes(t *testing.T) {
	rx := otlpreceiver.Start(t)
	bridge := otelbridge.New(newTracer(t, rx.URL))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(bridge))
	tagged := tp.Tracer("agent.lib", trace.WithInstrumentationVersion("1.2.0"),
		trace.WithInstrumentationAttributes(attribute.String("library.kind", "llm"), attribute.Int("tier", 2)))
	_, a := tagged.Start(context.Background(), "tagged")
	a.End()
	_, b := tp.Tracer("other.lib").Start(context.Background(), "plain")
	b.End()
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, got := range rx.WaitFor(t, 2) {
		switch got.Name {
		case "tagged":
			if got.Scope != "agent.lib" || got.ScopeVersion != "1.2.0" || got.ScopeAttrs["library.kind"] != "llm" ||
				fmt.Sprint(got.ScopeAttrs["tier"]) != "2" || len(got.ScopeAttrs) != 2 {
				t.Fatalf("tagged: scope %q %q %v", got.Scope, got.ScopeVersion, got.ScopeAttrs)
			}
		default:
			if len(got.ScopeAttrs) != 0 {
				t.Fatalf("plain: scope attributes %v", got.ScopeAttrs)
			}
		}
	}
	if n := bridge.Failures(); n != 0 {
		t.Fatalf("%d failures", n)
	}
	tp.Shutdown(context.Background())
}

// A backend that never answers: ForceFlush and Shutdown return as soon as
// their context is done (they waited 30 s and 11 s with a cancelled one),
// and ForceFlush after Shutdown does nothing, as a processor should.
func TestFlushAndShutdownReturnWhenTheirContextIsDone(t *testing.T) {
	backend, release := neverAnswering()
	defer release()
	bridge := otelbridge.New(newTracer(t, backend+"/v1/traces"))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(bridge))
	_, span := tp.Tracer("stuck").Start(context.Background(), "waits")
	span.End()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	started := time.Now()
	if err := bridge.ForceFlush(ctx); err != context.Canceled {
		t.Fatalf("ForceFlush: %v, want context.Canceled", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := bridge.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Shutdown: %v, want context.DeadlineExceeded", err)
	}
	// Both ended with their contexts, not after the 30 s fallback (a
	// bound far from any timing: this is not a speed check).
	if elapsed := time.Since(started); elapsed > 20*time.Second {
		t.Fatalf("hung: %v, its context of 200 ms ignored for the 30 s fallback", elapsed)
	}
	// Once the shutdown is done, a flush is ignored.
	for bridge.ForceFlush(context.Background()) != nil {
		time.Sleep(50 * time.Millisecond)
	}
}

// The child of TestAnOpenSpanArrivesWhenTheProcessIsStopped: a span open
// when SIGTERM arrives.
func TestMain(m *testing.M) {
	if url := os.Getenv("SPANGUARD_EXPORTER_CHILD_ENDPOINT"); url != "" {
		exporterChild(url) // signal_exporter_test.go
	}
	if mode := os.Getenv("SPANGUARD_SET_OPEN_CHILD"); mode != "" {
		setOpenChild(mode) // set_open_test.go
	}
	if url := os.Getenv("SPANGUARD_DRAIN_BRIDGE_CHILD"); url != "" {
		drainChild(url) // drain_test.go
	}
	if url := os.Getenv("SPANGUARD_BRIDGE_CHILD_ENDPOINT"); url != "" {
		tr, err := spanguard.NewTracer(spanguard.Config{Endpoint: url, SpoolDir: os.Getenv("SPANGUARD_BRIDGE_CHILD_SPOOL")})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		tr.FlushOnSignals(context.Background(), 5*time.Second)
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(otelbridge.New(tr)))
		_, span := tp.Tracer("killed-scope").Start(context.Background(), "llm.call",
			trace.WithAttributes(attribute.String("gen_ai.request.model", "gpt-4o")))
		// Set while the span is open: the SDK tells a processor nothing of it.
		span.SetAttributes(attribute.String("gen_ai.prompt", "what is the weather?"))
		span.AddEvent("gen_ai.content.prompt", trace.WithAttributes(attribute.Int("n", 1)))
		span.SetName("llm.chat")
		fmt.Println(span.SpanContext().TraceID(), span.SpanContext().SpanID())
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
		time.Sleep(30 * time.Second)
		runtime.KeepAlive(span) // open, not let go of, when the process is stopped
		os.Exit(3)
	}
	if url := os.Getenv("SPANGUARD_KILLED_OPEN_CHILD_ENDPOINT"); url != "" {
		killedOpenChild(url)
	}
	if url := os.Getenv("SPANGUARD_WATCHDOG_CHILD_ENDPOINT"); url != "" {
		// No FlushOnSignals, no signal handling of its own: the zero
		// Config's watchdog alone.
		tr, err := spanguard.NewTracer(spanguard.Config{Endpoint: url, SpoolDir: os.Getenv("SPANGUARD_WATCHDOG_CHILD_SPOOL")})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(otelbridge.New(tr)))
		_, span := tp.Tracer("stopped-scope").Start(context.Background(), "tool.call")
		span.End()
		fmt.Println(span.SpanContext().TraceID(), span.SpanContext().SpanID())
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
		time.Sleep(30 * time.Second)
		os.Exit(3)
	}
	os.Exit(m.Run())
}

// outputOfAChildItsSIGTERMEnds runs the test binary as a child with env
// (a child that sends itself SIGTERM once it has printed its span's ids)
// and returns what it printed, failing unless that signal ended it.
func outputOfAChildItsSIGTERMEnds(t *testing.T, env ...string) []byte {
	t.Helper()
	out, err := childtest.Command(env...).Output()
	status, _ := err.(*exec.ExitError)
	if status == nil || status.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Fatalf("the child should end by its SIGTERM: %v", err)
	}
	return out
}

// A service with the bridge and the zero Config, stopped with SIGTERM
// without FlushOnSignals: its ended span arrives (the library's watchdog,
// on by default in Go now, flushed it) and the process still dies of the
// signal. The binding turned the watchdog off, and the span, waiting for
// the 5 s schedule delay, was lost.
func TestAnEndedSpanArrivesWhenTheProcessIsStoppedWithoutFlushOnSignals(t *testing.T) {
	rx := otlpreceiver.Start(t)
	out := outputOfAChildItsSIGTERMEnds(t, "SPANGUARD_WATCHDOG_CHILD_ENDPOINT="+rx.URL,
		"SPANGUARD_WATCHDOG_CHILD_SPOOL="+filepath.Join(t.TempDir(), "spool"))
	ids := strings.Fields(string(out))
	got := rx.Spans(t) // the child is gone: what arrived is all there is
	if len(got) != 1 || len(ids) != 2 {
		t.Fatalf("%d spans arrived; the child said %q", len(got), out)
	}
	if s := got[0]; s.TraceID != ids[0] || s.SpanID != ids[1] || s.Name != "tool.call" || s.Scope != "stopped-scope" {
		t.Fatalf("arrived %+v, the child had %v", s, ids)
	}
}

// An open span arrives with what was set on it after its start (passed on
// at the tracer's stop, OnStop), and its new name, marked interrupted by
// the SIGTERM that stopped the process (FlushOnSignals), as the watchdog
// marks the spans it dumps.
func TestAnOpenSpanArrivesWhenTheProcessIsStopped(t *testing.T) {
	rx := otlpreceiver.Start(t)
	out := outputOfAChildItsSIGTERMEnds(t, "SPANGUARD_BRIDGE_CHILD_ENDPOINT="+rx.URL,
		"SPANGUARD_BRIDGE_CHILD_SPOOL="+filepath.Join(t.TempDir(), "spool"))
	ids := strings.Fields(string(out))
	got := rx.WaitFor(t, 1)
	if len(got) != 1 || len(ids) != 2 {
		t.Fatalf("%d spans arrived; the child said %q", len(got), out)
	}
	s := got[0]
	if s.TraceID != ids[0] || s.SpanID != ids[1] || s.Name != "llm.chat" || s.Scope != "killed-scope" ||
		s.Attributes["gen_ai.request.model"] != "gpt-4o" || s.Attributes["spanguard.interrupted"] != true ||
		s.Attributes["spanguard.signal"] != json.Number("15") || s.Attributes["spanguard.unended"] != nil ||
		s.Attributes["gen_ai.prompt"] != "what is the weather?" {
		t.Fatalf("arrived %+v, the child had %v", s, ids)
	}
	if len(s.Events) != 1 || s.Events[0].Name != "gen_ai.content.prompt" {
		t.Fatalf("events %+v: the one added while open should arrive", s.Events)
	}
}

// killedOpenChild is the child of
// TestASpanKilledOpenCarriesWhatTheSDKDroppedOfWhatStartWasGiven: no
// FlushOnSignals (no Go runs at the signal, the watchdog alone), a span
// open when SIGTERM arrives, started with 130 attributes and 130 links,
// 2 of each past the SDK's limits of 128.
func killedOpenChild(url string) {
	tr, err := spanguard.NewTracer(spanguard.Config{Endpoint: url, SpoolDir: os.Getenv("SPANGUARD_KILLED_OPEN_CHILD_SPOOL")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(otelbridge.New(tr)))
	var attrs []attribute.KeyValue
	var links []trace.Link
	for i := range 130 {
		attrs = append(attrs, attribute.Int(fmt.Sprintf("k%d", i), i))
		links = append(links, numberedLink(i+1))
	}
	_, span := tp.Tracer("killed-open").Start(context.Background(), "agent.run", trace.WithAttributes(attrs...),
		trace.WithLinks(links...))
	fmt.Println(span.SpanContext().TraceID(), span.SpanContext().SpanID())
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	time.Sleep(30 * time.Second)
	runtime.KeepAlive(span) // open, not let go of, when the process is stopped
	os.Exit(3)
}

// A span open when the process is stopped by SIGTERM with the watchdog
// alone (no FlushOnSignals) is spooled as it was at its start, and a
// tracer started on that spool delivers it: with the SDK's last 128
// links and first 128 attributes, and the 2 of each it dropped counted.
// The bridge counted what the SDK dropped of what Start was given only
// when it passed the rest (a stop, the end), which a span killed open
// never reaches: it arrived with 0 dropped.
func TestASpanKilledOpenCarriesWhatTheSDKDroppedOfWhatStartWasGiven(t *testing.T) {
	rx := otlpreceiver.Start(t)
	spool := filepath.Join(t.TempDir(), "spool")
	out := outputOfAChildItsSIGTERMEnds(t, "SPANGUARD_KILLED_OPEN_CHILD_ENDPOINT="+rx.URL,
		"SPANGUARD_KILLED_OPEN_CHILD_SPOOL="+spool)
	ids := strings.Fields(string(out))
	tr, err := spanguard.NewTracer(spanguard.Config{Endpoint: rx.URL, SpoolDir: spool})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := tr.Shutdown(10 * time.Second); !ok || err != nil {
		t.Fatal(ok, err)
	}
	got := rx.WaitFor(t, 1)
	if len(got) != 1 || len(ids) != 2 {
		t.Fatalf("%d spans arrived; the child said %q", len(got), out)
	}
	s := got[0]
	if s.TraceID != ids[0] || s.SpanID != ids[1] || s.Attributes["spanguard.interrupted"] != true {
		t.Fatalf("arrived %+v, want the child's open span %v marked interrupted", s, ids)
	}
	given := 0
	for k := range s.Attributes {
		if !strings.HasPrefix(k, "spanguard.") {
			given++
		}
	}
	if given != 128 || s.Dropped != 2 || len(s.Links) != 128 || s.DroppedLinks != 2 {
		t.Fatalf("arrived with %d attributes, %d dropped, %d links, %d dropped; want 128 and 2 of each",
			given, s.Dropped, len(s.Links), s.DroppedLinks)
	}
}

// A link the SDK keeps and spanguard refuses: an invalid context whose one
// tracestate member (a key and a value of 256 bytes, 513 with its '=') is
// longer than any tracestate spanguard keeps, so that the link has nothing
// to record (ErrInvalidTraceparent: neither held nor counted). Given at the
// start between links spanguard took, and evicted later with the first of
// them, it made the bridge drop from spanguard as many as the SDK evicted:
// one the SDK kept went in its stead, and the refused one was not counted.
func TestALinkSpanguardRefusedCostsNoneTheSDKKept(t *testing.T) {
	rx := otlpreceiver.Start(t)
	bridge := otelbridge.New(newTracer(t, rx.URL))
	memory := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(memory), sdktrace.WithSpanProcessor(bridge),
		lastFourLimits)
	long, err := trace.TraceState{}.Insert("k"+strings.Repeat("a", 255), strings.Repeat("v", 256))
	if err != nil {
		t.Fatal(err)
	}
	refused := trace.Link{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceState: long})}
	_, span := tp.Tracer("links").Start(context.Background(), "refused.link",
		trace.WithLinks(numberedLink(1), refused, numberedLink(3), numberedLink(4)))
	span.AddLink(numberedLink(5))
	span.AddLink(numberedLink(6))
	span.End()
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	sdk := memory.GetSpans()
	if len(sdk) != 1 || len(sdk[0].Links) != 4 || sdk[0].DroppedLinks != 2 ||
		sdk[0].Links[0].SpanContext.SpanID() != numberedLink(3).SpanContext.SpanID() {
		t.Fatalf("the SDK did not keep what the test means it to: %+v", sdk)
	}
	assertSameSpans(t, sdk, rx.WaitFor(t, 1))
	tp.Shutdown(context.Background())
}

// SDK spans let go of without their end (streams never read to their
// end), in rounds: each is ended once collected, marked spanguard.unended,
// with what it had at its start, and frees its slot for later spans. Held
// open by the bridge, the 3,000 took the tracer's 2,048 slots and every
// span after them was refused as buffer full.
func TestSpansLetGoOfWithoutTheirEndAreEndedWhenCollected(t *testing.T) {
	rx := otlpreceiver.Start(t)
	tr := newTracerWith(t, rx.URL, spanguard.Config{MaxOpenSpans: 1024, MaxQueueSize: 1024})
	bridge := otelbridge.New(tr)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(bridge))
	tracer := tp.Tracer("streams")
	const rounds, each = 3, 1000
	for r := range rounds {
		for i := r * each; i < (r+1)*each; i++ {
			tracer.Start(context.Background(), fmt.Sprintf("stream.%d", i), trace.WithAttributes(attribute.Int("i", i)))
		}
		collectedOpen(t, tr)
	}
	_, last := tracer.Start(context.Background(), "afterwards")
	last.End()
	stats, err := tr.Stats()
	if err != nil || stats.DroppedBufferFull != 0 {
		t.Fatalf("%d spans refused as buffer full (%v)", stats.DroppedBufferFull, err)
	}
	byName := map[string]otlpreceiver.Span{}
	for _, s := range rx.WaitFor(t, rounds*each+1) {
		byName[s.Name] = s
	}
	if s, ok := byName["afterwards"]; !ok || s.Attributes["spanguard.unended"] != nil {
		t.Errorf("the span ended afterwards: arrived %v, %+v", ok, s)
	}
	for i := range rounds * each {
		s := byName[fmt.Sprintf("stream.%d", i)]
		if s.Attributes["spanguard.unended"] != true || s.Attributes["i"] != json.Number(strconv.Itoa(i)) {
			t.Fatalf("stream.%d arrived as %+v, want it marked unended", i, s)
		}
	}
	if len(byName) != rounds*each+1 || bridge.Failures() != 0 {
		t.Fatalf("%d spans arrived, %d failures", len(byName), bridge.Failures())
	}
	tp.Shutdown(context.Background())
}

// Spans ended and spans let go of, on several goroutines, while garbage
// is collected, then the tracer stops, the spans kept open till then are
// let go of, and garbage is collected again: each arrives once (none
// ended by both its end and its cleanup, or by its cleanup and the stop),
// those let go of marked unended (by their cleanup or by the stop), the
// others not, but for one whose SDK span was collected while its End ran
// and that its cleanup ended first (marked unended, its end counted in
// Failures), and nothing else failed (a cleanup after the stop has nothing
// to end: the stop exported its span).
func TestSpansEndedAndLetGoOfWhileCollectingArriveOnce(t *testing.T) {
	rx := otlpreceiver.Start(t)
	tr := newTracer(t, rx.URL)
	bridge := otelbridge.New(tr)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(bridge))
	tracer := tp.Tracer("mixed")
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			default:
				runtime.GC()
			}
		}
	}()
	const workers, each = 4, 500
	var wg sync.WaitGroup
	keptOpen := make([][]trace.Span, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				_, span := tracer.Start(context.Background(), fmt.Sprintf("%d.%d", w, i))
				switch i % 4 {
				case 0, 2:
					span.End()
				case 1:
					keptOpen[w] = append(keptOpen[w], span)
				}
			}
		})
	}
	wg.Wait()
	if ok, err := tr.Shutdown(10 * time.Second); !ok || err != nil {
		t.Fatal(ok, err)
	}
	close(stop)
	<-stopped
	if len(keptOpen[0]) != each/4 {
		t.Fatalf("kept %d open", len(keptOpen[0]))
	}
	keptOpen = nil
	for range 3 { // their cleanups run soon after a collection
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	seen, endedByCleanup := map[string]int{}, 0
	for _, s := range rx.WaitFor(t, workers*each) {
		seen[s.Name]++
		var w, i int
		fmt.Sscanf(s.Name, "%d.%d", &w, &i)
		switch unended := s.Attributes["spanguard.unended"] == true; {
		case i%2 == 1 && !unended:
			t.Errorf("span %s, let go of, arrived not marked unended", s.Name)
		case i%2 == 0 && unended:
			endedByCleanup++
		}
	}
	for w := range workers {
		for i := range each {
			if n := seen[fmt.Sprintf("%d.%d", w, i)]; n != 1 {
				t.Errorf("span %d.%d arrived %d times", w, i, n)
			}
		}
	}
	if endedByCleanup > 0 {
		t.Logf("%d spans ended were collected while their End ran and ended by their cleanup first", endedByCleanup)
	}
	if n := bridge.Failures(); n != uint64(endedByCleanup) {
		t.Errorf("%d failures, %d spans ended arrived marked unended by their cleanup: want one for each", n,
			endedByCleanup)
	}
}

// collectedOpen collects garbage until tr has no span open, or says how
// many are still open after 5 s, then waits for the exporter to send those
// ended: their slots are free again then. The test's rounds went on
// without it, their cleanups ending them as soon as they were collected,
// and under load the exporter, two rounds behind, held the slots the third
// needed (1 of 40 runs: 296 spans refused as buffer full).
func collectedOpen(t *testing.T, tr *spanguard.Tracer) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		runtime.GC()
		stats, err := tr.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if stats.SpansOpen == 0 {
			if ok, err := tr.Flush(30 * time.Second); !ok || err != nil {
				t.Fatalf("the spans ended were not sent within 30 s: %v %v", ok, err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d spans still open, their SDK spans collected", stats.SpansOpen)
			return
		}
	}
}

// A span started and ended through the bridge, with an attribute at its
// start and one later: what the bridge costs an instrumented call, beside
// the SDK's own span.
func BenchmarkBridgedSpan(b *testing.B) { benchmarkBridgedSpan(b, false) }

// BenchmarkBridgedSpan through the bridge's TracerProvider, which passes
// the later attribute on as it is set.
func BenchmarkBridgedSpanWrapped(b *testing.B) { benchmarkBridgedSpan(b, true) }

func benchmarkBridgedSpan(b *testing.B, wrapped bool) {
	tr, err := spanguard.NewTracer(spanguard.Config{SinkDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	bridge := otelbridge.New(tr)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(bridge))
	defer tp.Shutdown(context.Background())
	provider := trace.TracerProvider(tp)
	if wrapped {
		provider = bridge.TracerProvider(tp)
	}
	tracer, ctx := provider.Tracer("bench"), context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, span := tracer.Start(ctx, "op", trace.WithAttributes(attribute.String("a", "x")))
		span.SetAttributes(attribute.Int("b", 1))
		span.End()
	}
}
