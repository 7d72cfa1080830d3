// Package newertest holds the bridge's tests that need more than the
// otelbridge module requires: otelhttp, OpenTelemetry Go v1.47's
// attribute depth limit, and the OpenAI Go SDK (openai_test.go). In a
// module of their own: a requirement of the otelbridge module (even one
// only its tests import) is a requirement of every module that requires
// the bridge, and minimal version selection raised a user's otelhttp and
// otel to the versions these tests were written against (the bridge
// itself asks for otel v1.46.0).
package newertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
	"github.com/spanguard/spanguard/bindings/go/internal/otlpreceiver"
	"github.com/spanguard/spanguard/bindings/go/otelbridge"
	"github.com/spanguard/spanguard/bindings/go/otelbridge/internal/spancheck"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

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

func TestOtelhttpSpansArriveAsTheSDKMadeThem(t *testing.T) {
	rx := otlpreceiver.Start(t)
	bridge := otelbridge.New(newTracer(t, rx.URL))
	memory := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(memory), sdktrace.WithSpanProcessor(bridge))
	// No globals: the instrumentation gets the provider and propagator.
	opts := []otelhttp.Option{otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(propagation.TraceContext{})}
	server := httptest.NewServer(otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("content-type", "application/json")
		fmt.Fprintf(w, `{"ok":true,"q":%q}`, r.URL.Query().Get("q"))
	}), "tool.server", opts...))
	defer server.Close()
	client := &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport, opts...)}

	tracer := tp.Tracer("agent-scope", trace.WithInstrumentationVersion("1.2.3"),
		trace.WithSchemaURL("https://opentelemetry.io/schemas/1.28.0"))
	_, earlier := tracer.Start(context.Background(), "earlier.step")
	earlier.End()
	ctx, step := tracer.Start(context.Background(), "agent.step",
		trace.WithAttributes(attribute.Int("agent.step", 3), attribute.StringSlice("agent.tools", []string{"search", "calc"}),
			attribute.Float64("agent.temperature", 0.25)),
		trace.WithLinks(trace.Link{SpanContext: earlier.SpanContext(), Attributes: []attribute.KeyValue{attribute.String("link.why", "retry"),
			attribute.StringSlice("link.tags", []string{"a", "b"})}}))
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, server.URL+"/tool?q=lisbon", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"ok":true`) {
		t.Fatalf("the server answered %s", body)
	}
	step.AddEvent("tool.result", trace.WithAttributes(attribute.Int("result.count", 2), attribute.Bool("result.cached", false),
		attribute.Int64Slice("result.ids", []int64{7, 9})))
	step.SetAttributes(attribute.String("agent.answer", "Lisbon"), attribute.Float64Slice("agent.scores", []float64{0.5, 0.25}),
		attribute.BoolSlice("agent.flags", []bool{true, false}))
	step.SetName("agent.step lisbon") // instrumentations name a span once they know more
	step.SetStatus(codes.Error, "upstream timeout")
	step.End()
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}

	sdk := memory.GetSpans()
	kinds := map[trace.SpanKind]tracetest.SpanStub{}
	for _, s := range sdk {
		kinds[s.SpanKind] = s
	}
	if len(sdk) != 4 || kinds[trace.SpanKindServer].Parent.SpanID() != kinds[trace.SpanKindClient].SpanContext.SpanID() {
		t.Fatalf("the SDK spans are not what the test means to make: %d spans", len(sdk))
	}
	spancheck.ArrivedAsTheSDKKeptThem(t, sdk, rx, bridge)
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// An attribute.Slice or attribute.Map nested deeper than the SDK's depth
// limit (WithAttributeValueDepthLimit, 64 by default: the attribute's value
// is level 1) arrives cut there by the SDK, the empty value at the level
// past it; with no limit in the SDK, cut past spanguard's highest
// (SPANGUARD_MAX_DEPTH_LIMIT, 128), counted in ValuesTruncated. Past 32 the
// bridge left such a value out whole, counted in Failures: even one the
// SDK had cut at its default. Read from the OTLP/JSON the local sink
// writes: the receiver's protobuf decoder (upb) stops at 100 nested
// messages, under 64 levels.
func TestValuesNestedPastTheDepthLimitArriveCutThere(t *testing.T) {
	for _, c := range []struct{ sdkLimit, emptyAt, truncated int }{{0, 65, 0}, {100, 101, 0}, {-1, 129, 1}} {
		t.Run(fmt.Sprint(c.sdkLimit), func(t *testing.T) {
			dir := t.TempDir()
			tr := newTracerWith(t, "", spanguard.Config{SinkDir: dir})
			bridge := otelbridge.New(tr)
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(bridge),
				sdktrace.WithAttributeValueDepthLimit(c.sdkLimit))
			deep := attribute.StringValue("leaf")
			for i := 0; i < 200; i++ {
				if i%2 == 0 {
					deep = attribute.SliceValue(deep)
				} else {
					deep = attribute.MapValue(attribute.KeyValue{Key: "k", Value: deep})
				}
			}
			_, span := tp.Tracer("deep").Start(context.Background(), "deep",
				trace.WithAttributes(attribute.KeyValue{Key: "deep.200", Value: deep}))
			span.End()
			if err := tp.ForceFlush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if ok, err := tr.Flush(20 * time.Second); !ok || err != nil {
				t.Fatalf("flush: %v %v", ok, err)
			}
			// Counted once the span is exported.
			st, err := tr.Stats()
			if err != nil || st.ValuesTruncated != uint64(c.truncated) || bridge.Failures() != 0 {
				t.Fatalf("%v: %d values truncated, %d failures; want %d and 0", err, st.ValuesTruncated,
					bridge.Failures(), c.truncated)
			}
			tp.Shutdown(context.Background())
			tr.Close()
			files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
			if len(files) != 1 {
				t.Fatalf("sink files: %v", files)
			}
			text, _ := os.ReadFile(files[0])
			var req struct {
				ResourceSpans []struct {
					ScopeSpans []struct {
						Spans []struct {
							Attributes []struct {
								Key   string
								Value map[string]any
							}
						}
					}
				}
			}
			if err := json.Unmarshal(text, &req); err != nil {
				t.Fatal(err)
			}
			attrs := req.ResourceSpans[0].ScopeSpans[0].Spans[0].Attributes
			if len(attrs) != 1 || attrs[0].Key != "deep.200" {
				t.Fatalf("attributes: %+v", attrs)
			}
			// Down the one element or map value of each level to the empty value.
			v, level := attrs[0].Value, 1
			for len(v) != 0 {
				var inner []any
				if a, ok := v["arrayValue"].(map[string]any); ok {
					inner, _ = a["values"].([]any)
				} else if m, ok := v["kvlistValue"].(map[string]any); ok {
					if kvs, _ := m["values"].([]any); len(kvs) == 1 {
						inner = []any{kvs[0].(map[string]any)["value"]}
					}
				}
				if len(inner) != 1 {
					t.Fatalf("level %d: %v, want one array element or map value", level, v)
				}
				v, level = inner[0].(map[string]any), level+1
			}
			if level != c.emptyAt {
				t.Fatalf("the empty value at level %d, want %d", level, c.emptyAt)
			}
		})
	}
}
