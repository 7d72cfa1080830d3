package otelbridge_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/spanguard/spanguard/bindings/go/internal/otlpreceiver"
	"github.com/spanguard/spanguard/bindings/go/otelbridge"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// An attribute given at the start and set again before the end arrives
// with its later value. OpenTelemetry Go before v1.47.0 (v1.45.0, which
// the bridge's go.mod asked for until it asked for v1.46.0 for v1.45.0's
// data race) hands a processor the span's own backing
// array from Attributes() and later writes into it: SetAttributes past the
// count limit overwrites a key in place, and the dedup at the end moves a
// key's last value into its first slot. The bridge kept that slice as
// "what was passed at the start", so it saw the new value there too, found
// nothing changed and passed nothing: the span arrived with the start's
// value ("pending" where the SDK's exporter sent "done"). v1.47.0 copies
// on write, which hid it. Every count of attributes at the start from 1 to
// 20: whether the array has room past them is up to Go's size classes.
func TestAnAttributeSetAgainArrivesWithItsLaterValue(t *testing.T) {
	for _, limit := range []int{128, 4} {
		t.Run(fmt.Sprintf("count limit %d", limit), func(t *testing.T) {
			rx := otlpreceiver.Start(t)
			bridge := otelbridge.New(newTracer(t, rx.URL))
			memory := tracetest.NewInMemoryExporter()
			limits := sdktrace.NewSpanLimits()
			limits.AttributeCountLimit = limit
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(memory), sdktrace.WithSpanProcessor(bridge),
				sdktrace.WithRawSpanLimits(limits))
			tracer := tp.Tracer("agent")
			for n := 1; n <= 20; n++ {
				attrs := []attribute.KeyValue{attribute.String("llm.status", "pending")}
				for i := 1; i < n; i++ {
					attrs = append(attrs, attribute.Int(fmt.Sprintf("a%d", i), i))
				}
				_, span := tracer.Start(context.Background(), fmt.Sprintf("step %d", n),
					trace.WithAttributes(attrs...))
				span.SetAttributes(attribute.String("llm.status", "done"))
				span.End()
			}
			sdk := memory.GetSpans()
			for _, s := range sdk {
				for _, kv := range s.Attributes {
					if kv.Key == "llm.status" && kv.Value.AsString() != "done" {
						t.Fatalf("the SDK kept llm.status=%q on %s", kv.Value.AsString(), s.Name)
					}
				}
			}
			arrivedAsTheSDKKeptThem(t, sdk, rx, bridge)
			tp.Shutdown(context.Background())
		})
	}
}
