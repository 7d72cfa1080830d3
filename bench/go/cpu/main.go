// What a span costs the process in Go: CPU time of every thread (user +
// system, getrusage) per span, for spanguard's Go binding and for
// go.opentelemetry.io/otel/sdk/trace with its real OTLP/HTTP protobuf
// exporter (otlptracehttp), both sending to the same loopback sink, each
// run ending with every span delivered. Interleaved rounds, medians; one
// JSON line for bench/run.py.
//
// go run ./cpu SINK_URL [--quick]
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
	"github.com/spanguard/spanguard/bindings/go/otelbridge"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func cpuNs() int64 {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		panic(err)
	}
	return u.Utime.Nano() + u.Stime.Nano()
}

// minorFaults is the process's minor page faults so far.
func minorFaults() int64 {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		panic(err)
	}
	return u.Minflt
}

// residentBytes is the process's resident set now (/proc/self/statm).
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// received asks the sink how many spans it has counted.
func received(url string) int64 {
	base := url[:strings.Index(url[len("http://"):], "/")+len("http://")]
	resp, err := http.Get(base + "/count")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		panic(err)
	}
	return n
}

func measure(url string, chunks, chunk int, emit func(int), flush func()) (float64, int64) {
	// Threads, connections, buffers, and memory faulted in as it is first
	// used are one-time costs, not a span's: whole chunks until one takes
	// under one page fault and under a page of resident set per 1,000
	// spans (at least 2, at most 12), the rule bench/rust/src/cpu.rs
	// explains.
	for w := 1; ; w++ {
		f0, r0 := minorFaults(), residentBytes()
		emit(chunk)
		flush()
		grown := max(residentBytes()-r0, 0)
		quiet := (minorFaults()-f0)*1000 < int64(chunk) && grown*1000 < int64(chunk)*4096
		if (w >= 2 && quiet) || w >= 12 {
			break
		}
	}
	before := received(url)
	c0 := cpuNs()
	for i := 0; i < chunks; i++ {
		emit(chunk)
		flush()
	}
	c1 := cpuNs()
	return float64(c1-c0) / float64(chunks*chunk), received(url) - before
}

// spanguardTracer: a spanguard tracer sending to the sink, and the flush
// that ends a chunk; its slots populated at start (bench/rust/src/cpu.rs
// says why).
func spanguardTracer(url string) (*spanguard.Tracer, func()) {
	tr, err := spanguard.NewTracer(spanguard.Config{Endpoint: url, MaxQueueSize: 1 << 16, MaxOpenSpans: 1 << 12, PrefaultSlots: true})
	if err != nil {
		panic(err)
	}
	return tr, func() {
		if ok, err := tr.Flush(60 * time.Second); !ok || err != nil {
			panic(fmt.Sprint("flush: ", ok, err))
		}
	}
}

func spanguardRun(url string, chunks, chunk int) (float64, int64) {
	tr, flush := spanguardTracer(url)
	defer tr.Close()
	ctx := context.Background()
	return measure(url, chunks, chunk, func(n int) {
		for i := 0; i < n; i++ {
			_, s, _ := tr.Start(ctx, "op")
			s.SetAttributes(spanguard.Int("gen_ai.usage.input_tokens", i), spanguard.String("gen_ai.request.model", "gpt-4o"), spanguard.Bool("stream", true))
			s.End()
		}
	}, flush)
}

// otelSpans makes n begin+3 attrs+end spans through an OpenTelemetry
// tracer: the SDK's own pipeline or spanguard's bridge under it.
func otelSpans(ctx context.Context, tr trace.Tracer) func(int) {
	return func(n int) {
		for i := 0; i < n; i++ {
			_, s := tr.Start(ctx, "op")
			s.SetAttributes(attribute.Int("gen_ai.usage.input_tokens", i), attribute.String("gen_ai.request.model", "gpt-4o"), attribute.Bool("stream", true))
			s.End()
		}
	}
}

// bridgeRun: the Go SDK with spanguard's bridge (otelbridge) in place of
// its batcher and exporter, what a user already on OpenTelemetry runs.
func bridgeRun(url string, chunks, chunk int) (float64, int64) {
	st, flush := spanguardTracer(url)
	defer st.Close()
	ctx := context.Background()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(otelbridge.New(st)))
	defer tp.Shutdown(ctx)
	return measure(url, chunks, chunk, otelSpans(ctx, tp.Tracer("bench")), flush)
}

func otelRun(url string, chunks, chunk int) (float64, int64) {
	ctx := context.Background()
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(url))
	if err != nil {
		panic(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithMaxQueueSize(1<<16)))
	defer tp.Shutdown(ctx)
	return measure(url, chunks, chunk, otelSpans(ctx, tp.Tracer("bench")), func() {
		if err := tp.ForceFlush(ctx); err != nil {
			panic(err)
		}
	})
}

func median(v []float64) float64 {
	sort.Float64s(v)
	return v[len(v)/2]
}

func main() {
	url := os.Args[1]
	rounds, chunks, chunk := 5, 4, 50000
	if len(os.Args) > 2 && os.Args[2] == "--quick" {
		rounds, chunks, chunk = 3, 2, 20000
	}
	var sg, br, ot []float64
	var sgGot, brGot, otGot int64
	for r := 0; r < rounds; r++ {
		ns, got := spanguardRun(url, chunks, chunk)
		sg, sgGot = append(sg, ns), sgGot+got
		ns, got = bridgeRun(url, chunks, chunk)
		br, brGot = append(br, ns), brGot+got
		ns, got = otelRun(url, chunks, chunk)
		ot, otGot = append(ot, ns), otGot+got
	}
	row := func(who string, ns float64, got int64) {
		fmt.Printf("{\"lang\": \"Go\", \"case\": \"begin+3 attrs+end\", \"spanguard\": %q, \"spanguard_cpu_ns\": %.0f, \"spanguard_received\": %d, "+
			"\"peer\": \"go.opentelemetry.io/otel/sdk/trace + otlptracehttp\", \"peer_cpu_ns\": %.0f, \"peer_received\": %d, \"spans\": %d, \"rounds\": %d}\n",
			who, ns, got, median(ot), otGot, rounds*chunks*chunk, rounds)
	}
	row("Go binding (cgo)", median(sg), sgGot)
	row("go.opentelemetry.io/otel/sdk/trace + spanguard bridge (otelbridge)", median(br), brGot)
}
