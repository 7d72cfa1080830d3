// spanguard's Go binding vs go.opentelemetry.io/otel/sdk/trace (batch
// processor, discarding exporter), benchmarked with testing.B in one run:
// go test -bench . -benchmem -count 5
package bench

import (
	"context"
	"testing"

	spanguard "github.com/spanguard/spanguard/bindings/go"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

func spanguardTracer(b *testing.B) *spanguard.Tracer {
	tr, err := spanguard.NewTracer(spanguard.Config{Endpoint: "discard:"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tr.Close() })
	return tr
}

func otelTracer(b *testing.B) trace.Tracer {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}, sdktrace.WithMaxQueueSize(1<<16)))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp.Tracer("bench")
}

func BenchmarkSpanguard_BeginEnd(b *testing.B) {
	tr, ctx := spanguardTracer(b), context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_, s, _ := tr.Start(ctx, "op")
		s.End()
	}
}

func BenchmarkOtel_BeginEnd(b *testing.B) {
	tr, ctx := otelTracer(b), context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_, s := tr.Start(ctx, "op")
		s.End()
	}
}

func BenchmarkSpanguard_Attrs3(b *testing.B) {
	tr, ctx := spanguardTracer(b), context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_, s, _ := tr.Start(ctx, "op")
		s.SetAttributes(spanguard.Int("gen_ai.usage.input_tokens", i), spanguard.String("gen_ai.request.model", "gpt-4o"), spanguard.Bool("stream", true))
		s.End()
	}
}

func BenchmarkOtel_Attrs3(b *testing.B) {
	tr, ctx := otelTracer(b), context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_, s := tr.Start(ctx, "op")
		s.SetAttributes(attribute.Int("gen_ai.usage.input_tokens", i), attribute.String("gen_ai.request.model", "gpt-4o"), attribute.Bool("stream", true))
		s.End()
	}
}

func BenchmarkSpanguard_StartAttrs3(b *testing.B) {
	tr, ctx := spanguardTracer(b), context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_, s, _ := tr.Start(ctx, "op", spanguard.WithAttributes(spanguard.Int("gen_ai.usage.input_tokens", i), spanguard.String("gen_ai.request.model", "gpt-4o"), spanguard.Bool("stream", true)))
		s.End()
	}
}

func BenchmarkOtel_StartAttrs3(b *testing.B) {
	tr, ctx := otelTracer(b), context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_, s := tr.Start(ctx, "op", trace.WithAttributes(attribute.Int("gen_ai.usage.input_tokens", i), attribute.String("gen_ai.request.model", "gpt-4o"), attribute.Bool("stream", true)))
		s.End()
	}
}

func BenchmarkSpanguard_Nested(b *testing.B) {
	tr, ctx := spanguardTracer(b), context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c, p, _ := tr.Start(ctx, "op")
		_, s, _ := tr.Start(c, "child")
		s.End()
		p.End()
	}
}

func BenchmarkOtel_Nested(b *testing.B) {
	tr, ctx := otelTracer(b), context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c, p := tr.Start(ctx, "op")
		_, s := tr.Start(c, "child")
		s.End()
		p.End()
	}
}

func BenchmarkSpanguard_Parallel(b *testing.B) {
	tr, ctx := spanguardTracer(b), context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, s, _ := tr.Start(ctx, "op")
			s.SetAttributes(spanguard.Int("n", 1), spanguard.String("m", "gpt-4o"), spanguard.Bool("stream", true))
			s.End()
		}
	})
}

func BenchmarkOtel_Parallel(b *testing.B) {
	tr, ctx := otelTracer(b), context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, s := tr.Start(ctx, "op")
			s.SetAttributes(attribute.Int("n", 1), attribute.String("m", "gpt-4o"), attribute.Bool("stream", true))
			s.End()
		}
	})
}
