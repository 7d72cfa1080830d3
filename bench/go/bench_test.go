// spanguard's Go binding vs go.opentelemetry.io/otel/sdk/trace (batch
// processor, discarding exporter), benchmarked with testing.B in one run:
// go test -bench . -benchmem -count 5
//
// Sampled as bench/c/hot_path.c samples the C ABI, with its busy regime's
// settings: each tracer is made and warmed up (two samples, flushed)
// outside the timing, then timed in samples of 50,000 spans with a flush
// between them, outside it too. Without that, a 200,000-span run paid for
// its tracer's set-up (a fresh 6 MiB of slots faulted in as the first
// spans took them) and, with the default 2,048 slots and half a core for
// the exporter, for waits on a full buffer: not what a span costs.
package bench

import (
	"context"
	"os"
	"testing"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// TestMain records spans for half a second before any benchmark, as
// bench/c/hot_path.c does: spans read the TSC only once the exporter has
// taken two clock samples 200 ms apart (until then, clock_gettime twice a
// span), as in any process that has run that long. Each benchmark's tracer
// lives for less than that, so without it the first rows (begin+end
// comes first) measured the clock before its anchor: begin+end, 9 runs
// of each build alternating, 124-177 ns without this warm-up, 105-149
// with it.
func TestMain(m *testing.M) {
	tr, err := spanguard.NewTracer(spanguard.Config{Endpoint: "discard:"})
	if err == nil {
		for t0 := time.Now(); time.Since(t0) < 500*time.Millisecond; {
			for i := 0; i < 1000; i++ {
				_, s, _ := tr.Start(context.Background(), "warm-up")
				s.End()
			}
			tr.Flush(time.Second)
		}
		tr.Close()
	}
	os.Exit(m.Run())
}

// sample is how many spans run between two flushes.
const sample = 50_000

// spanguardTracer is bench_tracer(busy) of bench/c/common.h: room for
// 65,536 ended spans (the SDK's queue below is as large), and an exporter
// that may use a whole core. The second result flushes.
func spanguardTracer(b *testing.B) (*spanguard.Tracer, func()) {
	tr, err := spanguard.NewTracer(spanguard.Config{Endpoint: "discard:", MaxQueueSize: 1 << 16, MaxOpenSpans: 1 << 12, ExporterMaxCPUPercent: 100})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tr.Close() })
	return tr, func() { tr.Flush(30 * time.Second) }
}

func otelTracer(b *testing.B) (trace.Tracer, func()) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}, sdktrace.WithMaxQueueSize(1<<16)))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp.Tracer("bench"), func() { _ = tp.ForceFlush(context.Background()) }
}

// measure times b.N spans of spans(i0, n), which records spans i0 to
// i0+n-1, after two warm-up samples, flushing after each sample outside
// the timing.
func measure(b *testing.B, flush func(), spans func(i0, n int)) {
	for w := 0; w < 2; w++ {
		spans(0, sample)
		flush()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(sample, b.N-done)
		spans(done, n)
		done += n
		b.StopTimer()
		flush()
		b.StartTimer()
	}
}

func BenchmarkSpanguard_BeginEnd(b *testing.B) {
	tr, flush := spanguardTracer(b)
	ctx := context.Background()
	measure(b, flush, func(_, n int) {
		for i := 0; i < n; i++ {
			_, s, _ := tr.Start(ctx, "op")
			s.End()
		}
	})
}

func BenchmarkOtel_BeginEnd(b *testing.B) {
	tr, flush := otelTracer(b)
	ctx := context.Background()
	measure(b, flush, func(_, n int) {
		for i := 0; i < n; i++ {
			_, s := tr.Start(ctx, "op")
			s.End()
		}
	})
}

func BenchmarkSpanguard_Attrs3(b *testing.B) {
	tr, flush := spanguardTracer(b)
	ctx := context.Background()
	measure(b, flush, func(i0, n int) {
		for i := i0; i < i0+n; i++ {
			_, s, _ := tr.Start(ctx, "op")
			s.SetAttributes(spanguard.Int("gen_ai.usage.input_tokens", i), spanguard.String("gen_ai.request.model", "gpt-4o"), spanguard.Bool("stream", true))
			s.End()
		}
	})
}

func BenchmarkOtel_Attrs3(b *testing.B) {
	tr, flush := otelTracer(b)
	ctx := context.Background()
	measure(b, flush, func(i0, n int) {
		for i := i0; i < i0+n; i++ {
			_, s := tr.Start(ctx, "op")
			s.SetAttributes(attribute.Int("gen_ai.usage.input_tokens", i), attribute.String("gen_ai.request.model", "gpt-4o"), attribute.Bool("stream", true))
			s.End()
		}
	})
}

func BenchmarkSpanguard_StartAttrs3(b *testing.B) {
	tr, flush := spanguardTracer(b)
	ctx := context.Background()
	measure(b, flush, func(i0, n int) {
		for i := i0; i < i0+n; i++ {
			_, s, _ := tr.Start(ctx, "op", spanguard.WithAttributes(spanguard.Int("gen_ai.usage.input_tokens", i), spanguard.String("gen_ai.request.model", "gpt-4o"), spanguard.Bool("stream", true)))
			s.End()
		}
	})
}

func BenchmarkOtel_StartAttrs3(b *testing.B) {
	tr, flush := otelTracer(b)
	ctx := context.Background()
	measure(b, flush, func(i0, n int) {
		for i := i0; i < i0+n; i++ {
			_, s := tr.Start(ctx, "op", trace.WithAttributes(attribute.Int("gen_ai.usage.input_tokens", i), attribute.String("gen_ai.request.model", "gpt-4o"), attribute.Bool("stream", true)))
			s.End()
		}
	})
}

func BenchmarkSpanguard_Nested(b *testing.B) {
	tr, flush := spanguardTracer(b)
	ctx := context.Background()
	measure(b, flush, func(_, n int) {
		for i := 0; i < n; i++ {
			c, p, _ := tr.Start(ctx, "op")
			_, s, _ := tr.Start(c, "child")
			s.End()
			p.End()
		}
	})
}

func BenchmarkOtel_Nested(b *testing.B) {
	tr, flush := otelTracer(b)
	ctx := context.Background()
	measure(b, flush, func(_, n int) {
		for i := 0; i < n; i++ {
			c, p := tr.Start(ctx, "op")
			_, s := tr.Start(c, "child")
			s.End()
			p.End()
		}
	})
}

// The parallel cases warm up as measure does; RunParallel leaves no room
// for flushes between samples.
func BenchmarkSpanguard_Parallel(b *testing.B) {
	tr, flush := spanguardTracer(b)
	ctx := context.Background()
	span := func() {
		_, s, _ := tr.Start(ctx, "op")
		s.SetAttributes(spanguard.Int("n", 1), spanguard.String("m", "gpt-4o"), spanguard.Bool("stream", true))
		s.End()
	}
	parallel(b, flush, span)
}

func BenchmarkOtel_Parallel(b *testing.B) {
	tr, flush := otelTracer(b)
	ctx := context.Background()
	span := func() {
		_, s := tr.Start(ctx, "op")
		s.SetAttributes(attribute.Int("n", 1), attribute.String("m", "gpt-4o"), attribute.Bool("stream", true))
		s.End()
	}
	parallel(b, flush, span)
}

func parallel(b *testing.B, flush func(), span func()) {
	for w := 0; w < 2; w++ {
		for i := 0; i < sample; i++ {
			span()
		}
		flush()
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			span()
		}
	})
}
