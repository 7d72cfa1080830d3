package otelbridge_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
	"github.com/spanguard/spanguard/bindings/go/otelbridge"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// receiver is the loopback OTLP receiver (tests/receiver/otlp_receiver.py,
// which decodes with opentelemetry-proto) and the spans it accepted.
type receiver struct {
	url    string
	record string
}

type arrivedSpan struct {
	TraceID      string         `json:"trace_id"`
	SpanID       string         `json:"span_id"`
	ParentSpanID string         `json:"parent_span_id"`
	Name         string         `json:"name"`
	Kind         int            `json:"kind"`
	Start        json.Number    `json:"start"`
	End          json.Number    `json:"end"`
	StatusCode   int            `json:"status_code"`
	StatusMsg    string         `json:"status_message"`
	Attributes   map[string]any `json:"attributes"`
	Scope        string         `json:"scope"`
	ScopeVersion string         `json:"scope_version"`
	Events       []struct {
		Name       string         `json:"name"`
		Time       json.Number    `json:"time"`
		Attributes map[string]any `json:"attributes"`
	} `json:"events"`
	Links []struct {
		TraceID    string         `json:"trace_id"`
		SpanID     string         `json:"span_id"`
		Attributes map[string]any `json:"attributes"`
	} `json:"links"`
}

func startReceiver(t *testing.T) *receiver {
	t.Helper()
	python := os.Getenv("SPANGUARD_TEST_PYTHON")
	if python == "" {
		python = "../../../.venv/bin/python"
	}
	dir := t.TempDir()
	r := &receiver{record: filepath.Join(dir, "record.jsonl")}
	portFile := filepath.Join(dir, "port")
	cmd := exec.Command(python, "../../../tests/receiver/otlp_receiver.py", "--port", "0",
		"--port-file", portFile, "--record", r.record)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("the receiver (%s): %v", python, err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	for i := 0; ; i++ {
		if b, err := os.ReadFile(portFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
			r.url = "http://127.0.0.1:" + strings.TrimSpace(string(b)) + "/v1/traces"
			return r
		}
		if i > 300 {
			t.Fatal("the receiver did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *receiver) spans(t *testing.T) []arrivedSpan {
	f, err := os.Open(r.record)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []arrivedSpan
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		var line struct {
			Rejected any           `json:"rejected"`
			Refused  any           `json:"refused"`
			Spans    []arrivedSpan `json:"spans"`
		}
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		if err := dec.Decode(&line); err != nil {
			t.Fatalf("a record line: %v", err)
		}
		if line.Rejected == nil && line.Refused == nil {
			out = append(out, line.Spans...)
		}
	}
	return out
}

func (r *receiver) waitFor(t *testing.T, n int) []arrivedSpan {
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := r.spans(t)
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// expected is an OpenTelemetry attribute value as the receiver reports
// what spanguard exported (JSON numbers as json.Number; slices as JSON text).
func expected(kvs []attribute.KeyValue) map[string]any {
	out := map[string]any{}
	for _, kv := range kvs {
		switch kv.Value.Type() {
		case attribute.BOOL:
			out[string(kv.Key)] = kv.Value.AsBool()
		case attribute.INT64:
			out[string(kv.Key)] = json.Number(strconv.FormatInt(kv.Value.AsInt64(), 10))
		case attribute.FLOAT64:
			out[string(kv.Key)] = json.Number(strconv.FormatFloat(kv.Value.AsFloat64(), 'f', -1, 64))
		case attribute.STRING:
			out[string(kv.Key)] = kv.Value.AsString()
		default:
			text, _ := json.Marshal(kv.Value.AsInterface())
			out[string(kv.Key)] = string(text)
		}
	}
	return out
}

func nanos(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) }

// assertSameSpans: every span the SDK ended arrived once, with the same
// ids, parent, name, kind, times, scope, attributes, events, links, status.
func assertSameSpans(t *testing.T, sdk tracetest.SpanStubs, arrived []arrivedSpan) {
	t.Helper()
	byID := map[string]arrivedSpan{}
	for _, s := range arrived {
		if _, twice := byID[s.SpanID]; twice {
			t.Errorf("span %s %s arrived twice", s.Name, s.SpanID)
		}
		byID[s.SpanID] = s
	}
	for _, o := range sdk {
		got, ok := byID[o.SpanContext.SpanID().String()]
		if !ok {
			t.Errorf("the SDK span %s did not arrive", o.Name)
			continue
		}
		check := func(what string, a, b any) {
			if fmt.Sprint(a) != fmt.Sprint(b) {
				t.Errorf("span %s: %s: arrived %v, the SDK had %v", o.Name, what, a, b)
			}
		}
		parent := ""
		if o.Parent.IsValid() {
			parent = o.Parent.SpanID().String()
		}
		check("trace id", got.TraceID, o.SpanContext.TraceID().String())
		check("parent", got.ParentSpanID, parent)
		check("name", got.Name, o.Name)
		check("kind", got.Kind, int(o.SpanKind))
		check("start", got.Start, nanos(o.StartTime))
		check("end", got.End, nanos(o.EndTime))
		check("scope", got.Scope+" "+got.ScopeVersion, o.InstrumentationScope.Name+" "+o.InstrumentationScope.Version)
		check("attributes", got.Attributes, expected(o.Attributes))
		var events, wantEvents []string
		for _, e := range got.Events {
			events = append(events, fmt.Sprintf("%s %s %v", e.Name, e.Time, e.Attributes))
		}
		for _, e := range o.Events {
			wantEvents = append(wantEvents, fmt.Sprintf("%s %s %v", e.Name, nanos(e.Time), expected(e.Attributes)))
		}
		check("events", events, wantEvents)
		var links, wantLinks []string
		for _, l := range got.Links {
			links = append(links, fmt.Sprintf("%s %s %v", l.TraceID, l.SpanID, l.Attributes))
		}
		for _, l := range o.Links {
			wantLinks = append(wantLinks, fmt.Sprintf("%s %s %v", l.SpanContext.TraceID(), l.SpanContext.SpanID(), expected(l.Attributes)))
		}
		check("links", links, wantLinks)
		wantCode, wantMsg := 0, ""
		switch o.Status.Code {
		case codes.Ok:
			wantCode = 1
		case codes.Error:
			wantCode, wantMsg = 2, o.Status.Description
		}
		check("status", fmt.Sprint(got.StatusCode, got.StatusMsg), fmt.Sprint(wantCode, wantMsg))
	}
	if len(arrived) != len(sdk) {
		t.Errorf("%d spans arrived, the SDK ended %d", len(arrived), len(sdk))
	}
}

func newTracer(t *testing.T, endpoint string) *spanguard.Tracer {
	tr, err := spanguard.NewTracer(spanguard.Config{ServiceName: "otel-go-test", Endpoint: endpoint,
		SpoolDir: filepath.Join(t.TempDir(), "spool"), ScheduleDelay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func TestOtelhttpSpansArriveAsTheSDKMadeThem(t *testing.T) {
	rx := startReceiver(t)
	bridge := otelbridge.New(newTracer(t, rx.url))
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

	tracer := tp.Tracer("agent-scope", trace.WithInstrumentationVersion("1.2.3"))
	_, earlier := tracer.Start(context.Background(), "earlier.step")
	earlier.End()
	ctx, step := tracer.Start(context.Background(), "agent.step",
		trace.WithAttributes(attribute.Int("agent.step", 3), attribute.StringSlice("agent.tools", []string{"search", "calc"}),
			attribute.Float64("agent.temperature", 0.25)),
		trace.WithLinks(trace.Link{SpanContext: earlier.SpanContext(), Attributes: []attribute.KeyValue{attribute.String("link.why", "retry")}}))
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
	step.AddEvent("tool.result", trace.WithAttributes(attribute.Int("result.count", 2), attribute.Bool("result.cached", false)))
	step.SetAttributes(attribute.String("agent.answer", "Lisbon"))
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
	assertSameSpans(t, sdk, rx.waitFor(t, len(sdk)))
	if n := bridge.Failures(); n != 0 {
		t.Fatalf("%d failures", n)
	}
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// The child of TestAnOpenSpanArrivesWhenTheProcessIsStopped: a span open
// when SIGTERM arrives.
func TestMain(m *testing.M) {
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
		fmt.Println(span.SpanContext().TraceID(), span.SpanContext().SpanID())
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
		time.Sleep(30 * time.Second)
		os.Exit(3)
	}
	os.Exit(m.Run())
}

func TestAnOpenSpanArrivesWhenTheProcessIsStopped(t *testing.T) {
	rx := startReceiver(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SPANGUARD_BRIDGE_CHILD_ENDPOINT="+rx.url,
		"SPANGUARD_BRIDGE_CHILD_SPOOL="+filepath.Join(t.TempDir(), "spool"))
	out, err := cmd.Output()
	status, _ := err.(*exec.ExitError)
	if status == nil || status.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Fatalf("the child should end by its SIGTERM: %v", err)
	}
	ids := strings.Fields(string(out))
	got := rx.waitFor(t, 1)
	if len(got) != 1 || len(ids) != 2 {
		t.Fatalf("%d spans arrived; the child said %q", len(got), out)
	}
	s := got[0]
	if s.TraceID != ids[0] || s.SpanID != ids[1] || s.Name != "llm.call" || s.Scope != "killed-scope" ||
		s.Attributes["gen_ai.request.model"] != "gpt-4o" || s.Attributes["spanguard.unended"] != true {
		t.Fatalf("arrived %+v, the child had %v", s, ids)
	}
}
