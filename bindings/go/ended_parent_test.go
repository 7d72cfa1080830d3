package spanguard_test

// An ended span stays usable as a parent, as the OpenTelemetry API asks
// ("It MUST still be possible to use an ended span as parent"), and its
// context stays the same for its whole life: after it was exported and its
// slot went to another span too. Who needs it: a goroutine that outlives
// the span of the request that started it.

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
)

// OTLP span flags: bit 8 says whether the parent is known to be remote,
// bit 9 that it is.
const (
	hasIsRemote = 0x100
	isRemote    = 0x200
)

// reuseSlots exports the ended spans and begins and ends others until the
// ended spans' slots went to new spans.
func reuseSlots(t *testing.T, tr *spanguard.Tracer, ended ...spanguard.Span) {
	t.Helper()
	waiting := map[uint64]bool{}
	for _, s := range ended {
		waiting[spanguard.SlotOf(s)] = true
	}
	for round := 0; round < 20 && len(waiting) > 0; round++ {
		if ok, err := tr.Flush(10 * time.Second); !ok || err != nil {
			t.Fatalf("flush: %v %v", ok, err)
		}
		for i := 0; i < 300; i++ {
			_, other, _ := tr.Start(context.Background(), "other")
			delete(waiting, spanguard.SlotOf(other))
			other.End()
		}
	}
	if len(waiting) > 0 {
		t.Fatal("the ended spans' slots were not reused")
	}
	if ok, err := tr.Flush(10 * time.Second); !ok || err != nil {
		t.Fatalf("flush: %v %v", ok, err)
	}
}

func spansByName(t *testing.T, tr *spanguard.Tracer, sink string) map[string]exported {
	t.Helper()
	if ok, err := tr.Flush(10 * time.Second); !ok || err != nil {
		t.Fatalf("flush: %v %v", ok, err)
	}
	byName := map[string]exported{}
	for _, s := range readSpans(t, sink) {
		byName[s.Name] = s
	}
	return byName
}

func assertChildOf(t *testing.T, child, parent exported) {
	t.Helper()
	if child.Name == "" {
		t.Fatalf("the child of %s did not arrive", parent.Name)
	}
	if child.TraceID != parent.TraceID || child.ParentSpanID != parent.SpanID {
		t.Fatalf("%s: trace %s parent %s, want trace %s parent %s", child.Name, child.TraceID,
			child.ParentSpanID, parent.TraceID, parent.SpanID)
	}
	if child.Flags&hasIsRemote == 0 || child.Flags&isRemote != 0 {
		t.Fatalf("%s: flags %#x, want a local parent (not remote)", child.Name, child.Flags)
	}
	if child.Flags&0xff != parent.Flags&0xff {
		t.Fatalf("%s: trace flags %#x, want the parent's %#x", child.Name, child.Flags&0xff, parent.Flags&0xff)
	}
}

func TestAnEndedAndExportedSpanKeepsItsContextAndStillParents(t *testing.T) {
	tr, sink := newTracer(t)
	ctx, request, err := tr.Start(context.Background(), "request", spanguard.WithKind(spanguard.KindServer))
	if err != nil {
		t.Fatal(err)
	}
	traceparent, err := request.Traceparent()
	if err != nil {
		t.Fatal(err)
	}
	// A goroutine the request started, which goes on after its span ended:
	// it begins its span from the request's context.
	parentGone, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		<-parentGone
		_, s, err := tr.Start(ctx, "goroutine-child", spanguard.WithAttributes(spanguard.String("tool.name", "search")))
		if err != nil {
			t.Error(err)
		}
		s.End()
	}()
	request.End()
	reuseSlots(t, tr, request)
	close(parentGone)
	<-done

	if got, err := request.Traceparent(); got != traceparent || err != nil {
		t.Fatalf("Traceparent after the end: %q %v, want %q", got, err, traceparent)
	}
	_, explicit, err := tr.Start(spanguard.ContextWithSpan(context.Background(), request), "explicit-child")
	if err != nil {
		t.Fatal(err)
	}
	explicit.End()
	// EndAt keeps the context too.
	_, timed, _ := tr.Start(context.Background(), "timed")
	timed.EndAt(time.Now())
	reuseSlots(t, tr, timed)
	_, underTimed, _ := tr.Start(spanguard.ContextWithSpan(context.Background(), timed), "under-timed")
	underTimed.End()

	spans := spansByName(t, tr, sink)
	parent := spans["request"]
	if !strings.HasPrefix(traceparent, "00-"+parent.TraceID+"-"+parent.SpanID+"-") {
		t.Fatalf("traceparent %s, exported %s %s", traceparent, parent.TraceID, parent.SpanID)
	}
	assertChildOf(t, spans["goroutine-child"], parent)
	assertChildOf(t, spans["explicit-child"], parent)
	assertChildOf(t, spans["under-timed"], spans["timed"])
	if len(spans["goroutine-child"].Attributes) != 1 {
		t.Fatalf("attributes %+v", spans["goroutine-child"].Attributes)
	}
}

func TestAnEndedRemoteChildAndAnUnsampledSpanKeepTheirDecisionAndTrace(t *testing.T) {
	tr, sink := newTracer(t)
	ctx, server, _ := tr.Start(context.Background(), "server",
		spanguard.WithRemoteParent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))
	server.End()
	unsampledCtx, unsampled, _ := tr.Start(context.Background(), "unsampled",
		spanguard.WithRemoteParent("00-0af7651916cd43dd8448eb211c80319d-b7ad6b7169203331-00"))
	unsampledTraceparent, _ := unsampled.Traceparent()
	unsampled.End()
	reuseSlots(t, tr, server, unsampled)

	_, handler, _ := tr.Start(ctx, "handler")
	handler.End()
	_, late, _ := tr.Start(unsampledCtx, "late")
	lateTraceparent, _ := late.Traceparent()
	late.End()
	if got, _ := unsampled.Traceparent(); got != unsampledTraceparent {
		t.Fatalf("the unsampled span's traceparent after its end: %q, want %q", got, unsampledTraceparent)
	}
	spans := spansByName(t, tr, sink)
	if spans["server"].Flags&isRemote == 0 {
		t.Fatalf("server: flags %#x, want its own parent remote", spans["server"].Flags)
	}
	assertChildOf(t, spans["handler"], spans["server"])
	if _, ok := spans["late"]; ok {
		t.Fatal("the child of an unsampled span was exported")
	}
	if !strings.HasPrefix(lateTraceparent, "00-0af7651916cd43dd8448eb211c80319d-") || !strings.HasSuffix(lateTraceparent, "-00") ||
		lateTraceparent[36:52] == unsampledTraceparent[36:52] {
		t.Fatalf("the unsampled child's traceparent %q (its parent's %q)", lateTraceparent, unsampledTraceparent)
	}
}

func TestADisabledTracersEndedSpanStillPassesItsContextOn(t *testing.T) {
	// A disabled tracer records nothing and passes the incoming context on
	// (OpenTelemetry's API without an SDK); its contexts live in a ring of
	// 1024 that 2000 later remote begins come round.
	t.Setenv("OTEL_SDK_DISABLED", "true")
	tr, err := spanguard.NewTracerFromEnv(spanguard.Config{SinkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	incoming := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	ctx, server, _ := tr.Start(context.Background(), "server", spanguard.WithRemoteParent(incoming))
	server.End()
	for i := 0; i < 2000; i++ {
		_, other, _ := tr.Start(context.Background(), "other",
			spanguard.WithRemoteParent("00-11111111111111111111111111111111-2222222222222222-01"))
		other.End()
	}
	_, child, _ := tr.Start(ctx, "child")
	got, _ := server.Traceparent()
	gotChild, _ := child.Traceparent()
	if got != incoming || gotChild != incoming {
		t.Fatalf("traceparents %q and %q, want %q for both", got, gotChild, incoming)
	}
}

// Children begun from the parent's context on other goroutines while the
// parent ends (under -race in make test-go): each is the parent's child,
// whether it began from the handle or from what the end kept.
func TestChildrenBegunAsTheParentEndsAreAllItsChildren(t *testing.T) {
	tr, sink := newTracer(t)
	ctx, parent, _ := tr.Start(context.Background(), "parent")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				_, child, _ := tr.Start(ctx, "child")
				child.End()
			}
		}()
	}
	parent.End()
	wg.Wait()
	if ok, err := tr.Flush(10 * time.Second); !ok || err != nil {
		t.Fatalf("flush: %v %v", ok, err)
	}
	var parentSpan exported
	children := 0
	spans := readSpans(t, sink)
	for _, s := range spans {
		if s.Name == "parent" {
			parentSpan = s
		}
	}
	for _, s := range spans {
		if s.Name == "child" && s.TraceID == parentSpan.TraceID && s.ParentSpanID == parentSpan.SpanID {
			children++
		}
	}
	if children != 400 {
		t.Fatalf("%d of 400 children arrived under the parent", children)
	}
}
