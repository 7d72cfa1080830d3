package newertest

import (
	"context"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
	"github.com/spanguard/spanguard/bindings/go/internal/otlpreceiver"
	"github.com/spanguard/spanguard/bindings/go/otelbridge"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Keeping the SDK's own OTLP exporter beside the bridge (both read
// OTEL_EXPORTER_OTLP_ENDPOINT) sends every span to the backend twice: a
// newcomer's receiver got 4 spans for 2, with no word said. The bridge
// says it once, through OpenTelemetry's error handler, at the provider's
// first span, as the Python and Node bridges do; an SDK exporter sending
// to another backend, none at all, or spanguard writing to its local
// sink, is not warned of. Here, not in the otelbridge module: the test
// needs otlptracehttp, which a user of the bridge must not inherit.

// sentTwiceWarnings are the warnings of a span sent twice that run gives
// rise to (otel.Handle's), the global error handler put back after it.
func sentTwiceWarnings(t *testing.T, run func()) []string {
	t.Helper()
	var mu sync.Mutex
	var warnings []string
	previous := otel.GetErrorHandler()
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		if strings.Contains(err.Error(), "arrives there twice") {
			mu.Lock()
			warnings = append(warnings, err.Error())
			mu.Unlock()
		}
	}))
	defer otel.SetErrorHandler(previous)
	run()
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(warnings)
}

// tracerTo is a tracer sending to endpoint, or writing to a local sink
// for "". A short export timeout: some send to ports nobody serves.
func tracerTo(t *testing.T, endpoint string) *spanguard.Tracer {
	cfg := spanguard.Config{ExportTimeout: 2 * time.Second}
	if endpoint == "" {
		cfg.SinkDir = filepath.Join(t.TempDir(), "sink")
	}
	return newTracerWith(t, endpoint, cfg)
}

// otlpHTTP is the SDK's OTLP/HTTP exporter to endpoint (a URL).
func otlpHTTP(t *testing.T, endpoint string) sdktrace.SpanExporter {
	e, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(endpoint))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// otlpGRPC is the SDK's OTLP/gRPC exporter to target (host:port), which
// connects at its first export.
func otlpGRPC(t *testing.T, target string) sdktrace.SpanExporter {
	e, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(target), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestTheSDKsOwnOTLPExporterToSpanguardsBackendIsWarnedOnce(t *testing.T) {
	rx := otlpreceiver.Start(t)
	u, err := url.Parse(rx.URL)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	// Spans are started, not ended: the SDK's exporter sends nothing to
	// the hosts named, and spanguard's stop exports them, marked unended,
	// to the receiver (or, to the ports nobody serves, to its spool).
	for _, c := range []struct {
		name      string
		spanguard string // its endpoint: the receiver's unless set
		kind      string // the exporter the warning names: otlptracehttp unless set
		sdk       func(t *testing.T) sdktrace.TracerProviderOption
		warned    int
	}{
		{name: "the same URL, batched", warned: 1, sdk: func(t *testing.T) sdktrace.TracerProviderOption {
			return sdktrace.WithBatcher(otlpHTTP(t, rx.URL))
		}},
		{name: "the same URL, synced", warned: 1, sdk: func(t *testing.T) sdktrace.TracerProviderOption {
			return sdktrace.WithSyncer(otlpHTTP(t, rx.URL))
		}},
		{name: "the same backend as localhost", warned: 1, sdk: func(t *testing.T) sdktrace.TracerProviderOption {
			return sdktrace.WithBatcher(otlpHTTP(t, "http://localhost:"+strconv.Itoa(port)+"/v1/traces"))
		}},
		{name: "the same backend over grpc", warned: 1, kind: "otlptracegrpc",
			sdk: func(t *testing.T) sdktrace.TracerProviderOption {
				return sdktrace.WithBatcher(otlpGRPC(t, "localhost:"+strconv.Itoa(port)))
			}},
		// One Collector: the SDK's grpc exporter on 4317, spanguard's
		// OTLP/HTTP on 4318.
		{name: "grpc on 4317 beside 4318", spanguard: "http://127.0.0.1:4318/v1/traces", warned: 1,
			kind: "otlptracegrpc", sdk: func(t *testing.T) sdktrace.TracerProviderOption {
				return sdktrace.WithBatcher(otlpGRPC(t, "127.0.0.1:4317"))
			}},
		{name: "http on 4317 beside 4318", spanguard: "http://localhost:4318/v1/traces", warned: 1,
			sdk: func(t *testing.T) sdktrace.TracerProviderOption {
				return sdktrace.WithBatcher(otlpHTTP(t, "http://127.0.0.1:4317"))
			}},
		{name: "grpc on 4317 beside 9999", spanguard: "http://127.0.0.1:9999/v1/traces", warned: 0,
			sdk: func(t *testing.T) sdktrace.TracerProviderOption {
				return sdktrace.WithBatcher(otlpGRPC(t, "127.0.0.1:4317"))
			}},
		{name: "another host, on purpose", warned: 0, sdk: func(t *testing.T) sdktrace.TracerProviderOption {
			return sdktrace.WithBatcher(otlpHTTP(t, "http://collector-b.internal:"+strconv.Itoa(port)+"/v1/traces"))
		}},
		{name: "another port of the host", warned: 0, sdk: func(t *testing.T) sdktrace.TracerProviderOption {
			return sdktrace.WithBatcher(otlpHTTP(t, "http://127.0.0.1:"+strconv.Itoa(port+1)+"/v1/traces"))
		}},
		{name: "no SDK exporter", warned: 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := tracerTo(t, cmpOr(c.spanguard, rx.URL))
			opts := []sdktrace.TracerProviderOption{sdktrace.WithSpanProcessor(otelbridge.New(tr))}
			if c.sdk != nil {
				opts = append(opts, c.sdk(t))
			}
			tp := sdktrace.NewTracerProvider(opts...)
			warnings := sentTwiceWarnings(t, func() {
				for _, name := range []string{"a", "b", "c"} {
					tp.Tracer("t").Start(context.Background(), name)
				}
			})
			if len(warnings) != c.warned {
				t.Fatalf("%d warnings, want %d: %q", len(warnings), c.warned, warnings)
			}
			if c.warned == 1 && !strings.Contains(warnings[0], "("+cmpOr(c.kind, "otlptracehttp")+")") {
				t.Fatalf("the warning names no exporter: %s", warnings[0])
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestALocalSinkBesideTheSDKsOTLPExporterIsNotWarnedOf(t *testing.T) {
	rx := otlpreceiver.Start(t)
	tr := tracerTo(t, "")
	if endpoint, err := tr.Endpoint(); endpoint != "" || err != nil {
		t.Fatalf("a local sink's Endpoint() = %q, %v", endpoint, err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(otelbridge.New(tr)),
		sdktrace.WithBatcher(otlpHTTP(t, rx.URL)))
	defer tp.Shutdown(context.Background())
	warnings := sentTwiceWarnings(t, func() { tp.Tracer("t").Start(context.Background(), "a") })
	if len(warnings) != 0 {
		t.Fatalf("warned of a local sink: %q", warnings)
	}
}

// The exporter sees snapshots the batcher makes, which lead to no
// provider: the provider holding it is found among those the bridge knows
// (the global one, here). What the warning is about, shown: the receiver
// gets each span twice.
func TestSpanExporterBesideTheSDKsOTLPExporterToOneReceiverGetsEachSpanTwiceAndItIsSaidOnce(t *testing.T) {
	rx := otlpreceiver.Start(t)
	tr := tracerTo(t, rx.URL)
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(otelbridge.NewExporter(tr)),
		sdktrace.WithBatcher(otlpHTTP(t, rx.URL)))
	previous := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	defer otel.SetTracerProvider(previous)
	warnings := sentTwiceWarnings(t, func() {
		for _, name := range []string{"one", "two"} {
			_, span := tp.Tracer("t").Start(context.Background(), name)
			span.End()
		}
		if err := tp.ForceFlush(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	if len(warnings) != 1 {
		t.Fatalf("%d warnings, want 1: %q", len(warnings), warnings)
	}
	if ok, err := tr.Flush(10 * time.Second); !ok || err != nil {
		t.Fatalf("flush: %v %v", ok, err)
	}
	var names []string
	for _, s := range rx.WaitFor(t, 4) {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"one", "one", "two", "two"}) {
		t.Fatalf("the receiver got %q, want each span twice (what the warning is about)", names)
	}
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
