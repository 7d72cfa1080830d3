package otelbridge

import (
	"context"
	"slices"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// The SDK keeps its provider's processors and their exporters in
// unexported fields, which warnIfSentTwice reads (sent_twice.go), silent
// where one is gone. This pins the layout of the OpenTelemetry Go this
// runs with (make test-go: go.mod's oldest and go.newest-otel.mod's
// newest): a version that moves one fails here, rather than leaving the
// warning silent with no one knowing.
func TestTheSDKsProvidersAndProcessorsAreLaidOutAsWarnIfSentTwiceReadsThem(t *testing.T) {
	batched, synced := tracetest.NewInMemoryExporter(), tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(batched), sdktrace.WithSyncer(synced))
	defer tp.Shutdown(context.Background())
	got := exportersOf(tp)
	if len(got) != 2 || !slices.Contains(got, sdktrace.SpanExporter(batched)) ||
		!slices.Contains(got, sdktrace.SpanExporter(synced)) {
		t.Fatalf("the provider's exporters read as %v, want its batcher's and its syncer's", got)
	}
	// One registered later, as the provider reads its list.
	later := tracetest.NewInMemoryExporter()
	tp.RegisterSpanProcessor(sdktrace.NewBatchSpanProcessor(later))
	if got := exportersOf(tp); len(got) != 3 || !slices.Contains(got, sdktrace.SpanExporter(later)) {
		t.Fatalf("after RegisterSpanProcessor, the exporters read as %v", got)
	}

	_, span := tp.Tracer("t").Start(context.Background(), "s")
	defer span.End()
	if got := providerOf(span.(sdktrace.ReadOnlySpan)); got != tp {
		t.Fatalf("the span's provider reads as %p, want %p", got, tp)
	}
	// A snapshot (what a batcher hands its exporter) leads to no provider.
	if got := providerOf(tracetest.SpanStub{Name: "stub"}.Snapshot()); got != nil {
		t.Fatalf("a snapshot's provider reads as %p, want none", got)
	}

	// An exporter in a batcher sees snapshots: its provider is found among
	// those the bridge knows, the global one here.
	previous := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	defer otel.SetTracerProvider(previous)
	if got := providerHolding(later); got != tp {
		t.Fatalf("the global provider holding the exporter reads as %p, want %p", got, tp)
	}
	if got := providerHolding(tracetest.NewInMemoryExporter()); got != nil {
		t.Fatalf("an exporter no provider holds is found in %p", got)
	}
}

// The rule the Python and Node bridges follow (_same_backend, sameBackend).
func TestSameBackendIsOneHostOnOnePortOrACollectorsTwoOTLPPorts(t *testing.T) {
	for _, c := range []struct {
		ours, theirs string
		same         bool
	}{
		{"http://127.0.0.1:4318/v1/traces", "127.0.0.1:4318", true},
		{"http://localhost:4318/v1/traces", "http://[::1]:4318", true},
		{"http://127.0.0.1:4318/v1/traces", "127.0.0.1:4317", true}, // grpc beside http: one Collector
		{"http://collector:4317", "https://collector:4318/v1/traces", true},
		{"http://127.0.0.1:4318/v1/traces", "127.0.0.1:9999", false},
		{"http://127.0.0.1:4317/v1/traces", "127.0.0.1:9999", false},
		{"http://collector-a:4318/v1/traces", "collector-b:4318", false},
		{"https://collector", "collector:443", true},
	} {
		a, okA := backendOf(c.ours)
		b, okB := backendOf(c.theirs)
		if !okA || !okB || sameBackend(a, b) != c.same || sameBackend(b, a) != c.same {
			t.Errorf("%s beside %s: same %v, want %v (%v %v)", c.ours, c.theirs, !c.same, c.same, okA, okB)
		}
	}
	if _, ok := backendOf(""); ok {
		t.Error("no endpoint (a local sink) reads as a backend")
	}
}
