package spanguard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
	"github.com/spanguard/spanguard/bindings/go/internal/childtest"
)

type exported struct {
	TraceID, SpanID, ParentSpanID, Name string
	StartTimeUnixNano, EndTimeUnixNano  string
	Kind                                int
	Flags                               int
	TraceState                          string
	Attributes                          []struct {
		Key   string
		Value map[string]any
	}
	Status struct {
		Code    int
		Message string
	}
	Events []struct {
		Name       string
		Attributes []struct {
			Key   string
			Value map[string]any
		}
	}
}

func readSpans(t *testing.T, dir string) []exported {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	var spans []exported
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			var req struct {
				ResourceSpans []struct {
					ScopeSpans []struct{ Spans []exported }
				}
			}
			if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
				t.Fatalf("a sink line is not OTLP/JSON: %v", err)
			}
			for _, rs := range req.ResourceSpans {
				for _, ss := range rs.ScopeSpans {
					spans = append(spans, ss.Spans...)
				}
			}
		}
		fh.Close()
	}
	return spans
}

func newTracer(t *testing.T) (*spanguard.Tracer, string) {
	t.Helper()
	dir := t.TempDir()
	tr, err := spanguard.NewTracer(spanguard.Config{
		ServiceName: "go-test", SinkDir: filepath.Join(dir, "sink"), SpoolDir: filepath.Join(dir, "spool"),
		ScheduleDelay: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, filepath.Join(dir, "sink")
}

func TestContextCarriesTheParent(t *testing.T) {
	tr, sink := newTracer(t)
	ctx, session, err := tr.Start(context.Background(), "agent.session", spanguard.WithKind(spanguard.KindServer))
	if err != nil {
		t.Fatal(err)
	}
	_, llm, err := tr.Start(ctx, "llm.chat", spanguard.WithKind(spanguard.KindClient),
		spanguard.WithAttributes(spanguard.String("gen_ai.request.model", "gpt-4o"),
			spanguard.Int("gen_ai.usage.input_tokens", 812), spanguard.Bool("stream", true),
			spanguard.Float64("temperature", 0.25)))
	if err != nil {
		t.Fatal(err)
	}
	if err := llm.RecordError(errors.New("rate limited"), spanguard.Int("retry", 2)); err != nil {
		t.Fatal(err)
	}
	if err := llm.End(); err != nil {
		t.Fatal(err)
	}
	if err := llm.End(); !errors.Is(err, spanguard.ErrAlreadyEnded) && !errors.Is(err, spanguard.ErrStaleSpan) {
		t.Fatalf("second End: %v", err)
	}
	session.End()
	if ok, err := tr.Flush(10 * time.Second); !ok || err != nil {
		t.Fatalf("flush: %v %v", ok, err)
	}
	spans := readSpans(t, sink)
	path, err := tr.SinkPath()
	if err != nil || filepath.Dir(path) != sink {
		t.Fatalf("SinkPath %q %v, want a file in %s", path, err, sink)
	}
	if data, err := os.ReadFile(path); err != nil || !strings.Contains(string(data), `"llm.chat"`) {
		t.Fatalf("the spans are not in the sink path %s: %v", path, err)
	}
	byName := map[string]exported{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	root, child := byName["agent.session"], byName["llm.chat"]
	if root.ParentSpanID != "" || child.ParentSpanID != root.SpanID || child.TraceID != root.TraceID {
		t.Fatalf("parent relation wrong: %+v / %+v", root, child)
	}
	if child.Status.Code != spanguard.StatusError || child.Status.Message != "rate limited" {
		t.Fatalf("status %+v", child.Status)
	}
	// The exception event as the Go SDK's RecordError makes it, and the
	// caller's attributes.
	if len(child.Events) != 1 || child.Events[0].Name != "exception" {
		t.Fatalf("events %+v", child.Events)
	}
	exc := map[string]map[string]any{}
	for _, a := range child.Events[0].Attributes {
		exc[a.Key] = a.Value
	}
	if exc["exception.type"]["stringValue"] != "*errors.errorString" ||
		exc["exception.message"]["stringValue"] != "rate limited" || exc["retry"]["intValue"] != "2" {
		t.Fatalf("exception event %v", exc)
	}
	got := map[string]map[string]any{}
	for _, a := range child.Attributes {
		got[a.Key] = a.Value
	}
	if got["gen_ai.usage.input_tokens"]["intValue"] != "812" || got["stream"]["boolValue"] != true ||
		got["temperature"]["doubleValue"] != 0.25 || got["gen_ai.request.model"]["stringValue"] != "gpt-4o" {
		t.Fatalf("attributes %v", got)
	}
}

func TestTraceparentContinuesTheTrace(t *testing.T) {
	tr, _ := newTracer(t)
	_, client, _ := tr.Start(context.Background(), "client")
	tp, err := client.Traceparent()
	if err != nil || len(tp) != 55 {
		t.Fatalf("traceparent %q %v", tp, err)
	}
	_, server, err := tr.Start(context.Background(), "server", spanguard.WithRemoteParent(tp))
	if err != nil {
		t.Fatal(err)
	}
	stp, _ := server.Traceparent()
	if stp[3:35] != tp[3:35] {
		t.Fatalf("trace id changed: %s vs %s", stp, tp)
	}
	server.End()
	client.End()
}

// A traceparent from outside that is not valid W3C text (a client's upper
// case, all-zero ids, garbage) is ignored, as OpenTelemetry's propagators
// ignore it: the span is recorded, a child of the span in ctx or the root
// of a new trace, and its children are its own.
func TestAnInvalidTraceparentIsIgnoredNotTheSpan(t *testing.T) {
	tr, sink := newTracer(t)
	ctx, parent, _ := tr.Start(context.Background(), "parent")
	headers := []string{
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"00-nothex",
	}
	for i, header := range headers {
		for _, under := range []context.Context{context.Background(), ctx} {
			req, server, err := tr.Start(under, fmt.Sprintf("server-%d", i), spanguard.WithRemoteParent(header))
			if err != nil || server == (spanguard.Span{}) {
				t.Fatalf("%q: %v", header, err)
			}
			_, child, _ := tr.Start(req, fmt.Sprintf("child-%d", i))
			child.End()
			server.End()
		}
	}
	parent.End()
	tr.Flush(10 * time.Second)
	spans := readSpans(t, sink)
	if len(spans) != 1+2*2*len(headers) {
		t.Fatalf("%d spans, want %d", len(spans), 1+2*2*len(headers))
	}
	var root exported
	servers := map[string][]exported{}
	for _, s := range spans {
		if s.Name == "parent" {
			root = s
		}
	}
	for _, s := range spans {
		if strings.HasPrefix(s.Name, "server-") {
			servers[s.Name] = append(servers[s.Name], s)
		}
	}
	for name, pair := range servers {
		var underParent, alone int
		for _, s := range pair {
			switch {
			case s.ParentSpanID == root.SpanID && s.TraceID == root.TraceID:
				underParent++
			case s.ParentSpanID == "" && s.TraceID != root.TraceID:
				alone++
			}
			for _, c := range spans {
				if c.ParentSpanID == s.SpanID && (c.TraceID != s.TraceID || !strings.HasPrefix(c.Name, "child-")) {
					t.Fatalf("%s's child %+v", name, c)
				}
			}
		}
		if underParent != 1 || alone != 1 {
			t.Fatalf("%s: %+v", name, pair)
		}
	}
}

func TestGoroutinesLoseNothing(t *testing.T) {
	tr, sink := newTracer(t)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				ctx, s, err := tr.Start(context.Background(), "work", spanguard.WithAttributes(spanguard.Int("g", g), spanguard.Int("i", i)))
				if err != nil {
					t.Error(err)
					return
				}
				_, c, _ := tr.Start(ctx, "child")
				c.End()
				s.End()
			}
		}()
	}
	wg.Wait()
	if status, err := tr.FlushStatus(20 * time.Second); status != spanguard.Delivered || err != nil {
		t.Fatalf("flush: %v %v", status, err)
	}
	// Judged by what arrived: each (g, i) once, each with its child.
	work, parents := map[string]int{}, map[string]int{}
	ids := map[string]string{}
	for _, s := range readSpans(t, sink) {
		switch s.Name {
		case "work":
			var key string
			for _, a := range s.Attributes {
				key += a.Key + "=" + a.Value["intValue"].(string) + " "
			}
			work[key]++
			ids[s.SpanID] = key
		case "child":
			parents[s.ParentSpanID]++
		}
	}
	if len(work) != 8*500 {
		t.Fatalf("%d distinct work spans arrived, want %d", len(work), 8*500)
	}
	for key, n := range work {
		if n != 1 {
			t.Fatalf("work span %s arrived %d times", key, n)
		}
	}
	for id := range ids {
		if parents[id] != 1 {
			t.Fatalf("work span %s has %d children, want 1", ids[id], parents[id])
		}
	}
}

// smallTracer is a tracer of 32 slots (16 queued, 16 open) that discards
// its spans.
func smallTracer(t *testing.T) *spanguard.Tracer {
	t.Helper()
	dir := t.TempDir()
	tr, err := spanguard.NewTracer(spanguard.Config{Endpoint: "discard:", SinkDir: filepath.Join(dir, "sink"),
		SpoolDir: filepath.Join(dir, "spool"), MaxQueueSize: 16, MaxOpenSpans: 16})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// A full buffer under the default policy (wait): Start finds no free slot
// without waiting, waits for one through cgo (which lets other goroutines
// run), and when none frees in time the span is dropped and counted once.
func TestAFullBufferIsWaitedForAndCountedOnce(t *testing.T) {
	tr := smallTracer(t)
	defer tr.Close()
	var open []spanguard.Span
	for {
		_, s, err := tr.Start(context.Background(), "held")
		if err != nil {
			if !errors.Is(err, spanguard.ErrBufferFull) {
				t.Fatalf("Start on a full buffer: %v", err)
			}
			break
		}
		open = append(open, s)
		if len(open) > 4096 {
			t.Fatal("the buffer never filled")
		}
	}
	if st, _ := tr.Stats(); st.DroppedBufferFull != 1 {
		t.Fatalf("%d spans counted dropped, want 1", st.DroppedBufferFull)
	}
	for _, s := range open {
		s.End()
	}
	if ok, err := tr.Flush(10 * time.Second); !ok || err != nil {
		t.Fatalf("flush: %v %v", ok, err)
	}
	_, s, err := tr.Start(context.Background(), "after")
	if err != nil {
		t.Fatalf("Start once slots are free: %v", err)
	}
	s.End()
}

// residentBytes is this process's resident set (/proc/self/statm), for
// the child of a test (it panics on an error).
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		panic(err)
	}
	var size, resident int64
	if _, err := fmt.Sscan(string(b), &size, &resident); err != nil {
		panic(err)
	}
	return resident * int64(os.Getpagesize())
}

// The tracer's slots are resident once NewTracer returns with PrefaultSlots.
// Measured in a child of its own: in this process, other tests' tracers
// and the Go runtime give memory back while it is measured (a clean clone's
// make test saw 16 MiB of the 30 grow, under load).
func TestPrefaultSlotsMakesTheSlotsResidentAtStart(t *testing.T) {
	cmd := childtest.Command("SPANGUARD_PREFAULT_CHILD=" + t.TempDir())
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the child: %v (%q)", err, out)
	}
	var grown int64
	if _, err := fmt.Sscanf(string(out), "grown %d", &grown); err != nil {
		t.Fatalf("the child said %q: %v", out, err)
	}
	if grown < 25<<20 {
		t.Fatalf("resident set grew %d bytes", grown)
	}
}

// prefaultChild makes a tracer of 8,192 + 2,048 slots of 3 KiB (about
// 30 MiB) with PrefaultSlots and prints how much its resident set grew.
func prefaultChild(dir string) {
	before := residentBytes()
	tr, err := spanguard.NewTracer(spanguard.Config{Endpoint: "discard:", SinkDir: filepath.Join(dir, "sink"),
		SpoolDir: filepath.Join(dir, "spool"), MaxQueueSize: 8192, PrefaultSlots: true})
	if err != nil {
		fmt.Println("NewTracer:", err)
		os.Exit(1)
	}
	grown := residentBytes() - before
	_, s, _ := tr.Start(context.Background(), "after")
	s.End()
	if ok, err := tr.Flush(10 * time.Second); !ok || err != nil {
		fmt.Println("flush:", ok, err)
		os.Exit(1)
	}
	tr.Close()
	fmt.Printf("grown %d\n", grown)
}

func TestFlushTellsDeliveredFromSpooled(t *testing.T) {
	spool := t.TempDir()
	tr, err := spanguard.NewTracer(spanguard.Config{
		ServiceName: "go-spool", Endpoint: refusingEndpoint(t), SpoolDir: spool,
		ExportTimeout: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for i := 0; i < 3; i++ {
		_, s, _ := tr.Start(context.Background(), "kept")
		s.End()
	}
	if status, err := tr.FlushStatus(10 * time.Second); status != spanguard.Spooled || err != nil {
		t.Fatalf("flush: %v %v", status, err)
	}
	if files, _ := filepath.Glob(filepath.Join(spool, "*.sgspool")); len(files) == 0 {
		t.Fatal("the spans are not on disk")
	}
}

// The plain case allocates nothing in Go: begin + end, and begin + three
// attributes + end, with the context Start returns dropped.
func TestPlainSpansAllocateNothing(t *testing.T) {
	tr, _ := newTracer(t)
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() {
		_, s, _ := tr.Start(ctx, "op")
		s.End()
	}); n != 0 {
		t.Errorf("begin + end: %v allocations per span, want 0", n)
	}
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		_, s, _ := tr.Start(ctx, "op", spanguard.WithKind(spanguard.KindClient))
		s.SetAttributes(spanguard.Int("gen_ai.usage.input_tokens", i), spanguard.String("gen_ai.request.model", "gpt-4o"),
			spanguard.Bool("stream", true))
		s.End()
		i++
	}); n != 0 {
		t.Errorf("begin + 3 attributes + end: %v allocations per span, want 0", n)
	}
	reasons, ids := []string{"stop"}, []int64{1, 2}
	if n := testing.AllocsPerRun(1000, func() {
		_, s, _ := tr.Start(ctx, "op")
		s.SetAttributes(spanguard.Strings("reasons", reasons), spanguard.Int64s("ids", ids), spanguard.Int("i", i))
		s.End()
	}); n != 0 {
		t.Errorf("begin + 2 arrays + 1 attribute + end: %v allocations per span, want 0", n)
	}
}

func TestFailedStartKeepsTheParentInTheContext(t *testing.T) {
	tr, sink := newTracer(t)
	ctx, parent, _ := tr.Start(context.Background(), "parent")
	bad, none, err := tr.Start(ctx, "bad", spanguard.WithKind(99))
	var e *spanguard.Error
	if !errors.As(err, &e) || e.Code != 2 { // SPANGUARD_RESULT_INVALID_ARGUMENT: no such kind
		t.Fatalf("got %v", err)
	}
	if err := none.End(); err != nil {
		t.Fatalf("the zero Span records nothing and fails nothing: %v", err)
	}
	_, child, _ := tr.Start(bad, "child")
	child.End()
	parent.End()
	tr.Flush(10 * time.Second)
	byName := map[string]exported{}
	for _, s := range readSpans(t, sink) {
		byName[s.Name] = s
	}
	if byName["child"].ParentSpanID != byName["parent"].SpanID {
		t.Fatalf("child's parent %q, want %q", byName["child"].ParentSpanID, byName["parent"].SpanID)
	}
}

// A status that is none of StatusUnset, StatusOK and StatusError is the
// caller's mistake, answered as the Python binding raises ValueError and
// the Node one throws (INVALID_ARGUMENT): nothing set, and the span is
// recorded all the same.
func TestWrongStatusIsAnErrorAndTheSpanIsKept(t *testing.T) {
	tr, sink := newTracer(t)
	_, span, err := tr.Start(context.Background(), "odd.status")
	if err != nil {
		t.Fatal(err)
	}
	var e *spanguard.Error
	if err := span.SetStatus(7, "seven"); !errors.As(err, &e) || e.Code != 2 {
		t.Fatalf("SetStatus(7): %v, want INVALID_ARGUMENT", err)
	}
	if err := span.End(); err != nil {
		t.Fatal(err)
	}
	got, ok := spansByName(t, tr, sink)["odd.status"]
	if !ok || got.Status.Code != 0 || got.Status.Message != "" {
		t.Fatalf("the span arrives, its status unset: %v %+v", ok, got.Status)
	}
}

func TestShutdownAndCloseTwice(t *testing.T) {
	tr, sink := newTracer(t)
	_, open, _ := tr.Start(context.Background(), "still.open")
	if ok, err := tr.Shutdown(10 * time.Second); !ok || err != nil {
		t.Fatal(ok, err)
	}
	var unended []exported
	for _, s := range readSpans(t, sink) {
		for _, a := range s.Attributes {
			if s.Name == "still.open" && a.Key == "spanguard.unended" && a.Value["boolValue"] == true {
				unended = append(unended, s)
			}
		}
	}
	if len(unended) != 1 {
		t.Fatalf("the open span did not arrive marked unended: %+v", readSpans(t, sink))
	}
	if err := open.End(); err != nil {
		t.Fatalf("End after shutdown: %v", err)
	}
	if _, _, err := tr.Start(context.Background(), "late"); !errors.Is(err, spanguard.ErrShutDown) {
		t.Fatalf("Start after shutdown: %v", err)
	}
	// As every other call: no resource is set that no batch would carry.
	if err := tr.SetResource(spanguard.String("service.name", "late")); !errors.Is(err, spanguard.ErrShutDown) {
		t.Fatalf("SetResource after shutdown: %v", err)
	}
	tr.Close()
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tr.Start(context.Background(), "closed"); !errors.Is(err, spanguard.ErrShutDown) {
		t.Fatalf("Start after Close: %v", err)
	}
}

// resourceHas records one span with a tracer of cfg (its sink: a
// directory of its own), after set if not nil, and checks that the sink's
// line holds each of want.
func resourceHas(t *testing.T, cfg spanguard.Config, set func(*spanguard.Tracer) error, want ...string) {
	t.Helper()
	dir := t.TempDir()
	cfg.SinkDir = dir
	tr, err := spanguard.NewTracer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if set != nil {
		if err := set(tr); err != nil {
			t.Fatal(err)
		}
	}
	_, span, _ := tr.Start(context.Background(), "one")
	span.End()
	tr.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if len(files) != 1 {
		t.Fatalf("sink files: %v", files)
	}
	text, _ := os.ReadFile(files[0])
	for _, w := range want {
		if !strings.Contains(string(text), w) {
			t.Errorf("the resource lacks %s:\n%s", w, text)
		}
	}
}

func TestTheResourceNamesTheGoRuntime(t *testing.T) {
	resourceHas(t, spanguard.Config{ResourceAttributes: "team=search"}, nil,
		`{"key":"process.runtime.name","value":{"stringValue":"go"}}`,
		`{"key":"process.runtime.version","value":{"stringValue":"`+strings.TrimPrefix(runtime.Version(), "go")+`"}}`,
		`{"key":"team","value":{"stringValue":"search"}}`)
}

// A resource's slices (the SDK's process detector gives
// process.command_args as one) were left out by the library, counted
// nowhere; they arrive as OTLP arrays.
func TestResourceSlicesArriveAsArrays(t *testing.T) {
	resourceHas(t, spanguard.Config{}, func(tr *spanguard.Tracer) error {
		return tr.SetResource(spanguard.Strings("process.command_args", []string{"/srv/agent", "-v"}),
			spanguard.Int64s("ports", []int64{80, 443}))
	},
		`{"key":"process.command_args","value":{"arrayValue":{"values":[{"stringValue":"/srv/agent"},{"stringValue":"-v"}]}}}`,
		`{"key":"ports","value":{"arrayValue":{"values":[{"intValue":"80"},{"intValue":"443"}]}}}`)
}

// Past 128 attributes (one call's worth) the binding cut a resource,
// silently: a provider's detectors together can give more.
func TestAResourceOfManyAttributesArrivesWhole(t *testing.T) {
	attrs := make([]spanguard.Attribute, 300)
	want := make([]string, 300)
	for i := range attrs {
		attrs[i] = spanguard.Int64(fmt.Sprint("detected.", i), int64(i))
		want[i] = fmt.Sprintf(`{"key":"detected.%d","value":{"intValue":"%d"}}`, i, i)
	}
	resourceHas(t, spanguard.Config{}, func(tr *spanguard.Tracer) error { return tr.SetResource(attrs...) }, want...)
}

func TestBadConfigIsAnError(t *testing.T) {
	_, err := spanguard.NewTracer(spanguard.Config{Endpoint: "ftp://nope"})
	if !errors.Is(err, spanguard.ErrInvalidConfig) {
		t.Fatalf("got %v", err)
	}
	// The error says which field and value were wrong.
	if !strings.Contains(err.Error(), "endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)=ftp://nope") {
		t.Fatalf("the error does not name the field and value: %v", err)
	}
	// A wrong environment variable is ignored (and warned about on
	// stderr), as the OpenTelemetry SDKs ignore one: the tracer is made.
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	fromEnv, err := spanguard.NewTracerFromEnv(spanguard.Config{Endpoint: "discard:"})
	if err != nil {
		t.Fatalf("a wrong environment variable failed the tracer: %v", err)
	}
	if err := fromEnv.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	_, err = spanguard.NewTracer(spanguard.Config{Endpoint: "discard:", ExporterMaxCPUPercent: 101})
	if !errors.Is(err, spanguard.ErrInvalidConfig) {
		t.Fatalf("CPU cap 101: got %v", err)
	}
	tr, err := spanguard.NewTracer(spanguard.Config{
		Endpoint: "discard:", ExporterMaxCPUPercent: 25, MaxQueueSize: 64, MaxExportBatchSize: 16,
		RequestTimeout: time.Second, SignalFlushTimeout: time.Second,
	})
	if err != nil {
		t.Fatalf("valid settings refused: %v", err)
	}
	tr.Close()
}

func BenchmarkStartEnd(b *testing.B) {
	tr, _ := spanguard.NewTracer(spanguard.Config{SinkDir: b.TempDir()})
	defer tr.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_, s, _ := tr.Start(ctx, "op")
		s.End()
	}
}

func BenchmarkStartAttrs3End(b *testing.B) {
	tr, _ := spanguard.NewTracer(spanguard.Config{SinkDir: b.TempDir()})
	defer tr.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_, s, _ := tr.Start(ctx, "op")
		s.SetAttributes(spanguard.Int("a", i), spanguard.String("b", "xyz"), spanguard.Bool("c", true))
		s.End()
	}
}

// Arrays and bytes: copied into C memory and set in one call with the
// rest (spanguard_span_set_attributes), no Go allocation.
func BenchmarkStartArraysEnd(b *testing.B) {
	tr, _ := spanguard.NewTracer(spanguard.Config{SinkDir: b.TempDir()})
	defer tr.Close()
	ctx := context.Background()
	reasons, ids, raw := []string{"stop", "length"}, []int64{1, 2, 3, 4}, []byte("0123456789abcdef")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_, s, _ := tr.Start(ctx, "op")
		s.SetAttributes(spanguard.Strings("a", reasons), spanguard.Int64s("b", ids), spanguard.Bytes("c", raw))
		s.End()
	}
}

func TestStartForeignKeepsTheIDsAndTimes(t *testing.T) {
	tr, sink := newTracer(t)
	start := time.Unix(1_700_000_000, 123_456_789)
	f := &spanguard.ForeignSpan{
		Name: "bridged", Kind: spanguard.KindClient, TraceFlags: 1, Start: start,
		TraceID:      [16]byte{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:       [8]byte{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		ParentSpanID: [8]byte{0x53, 0x99, 0x5c, 0x3f, 0x42, 0xcd, 0x8a, 0xd8}, ParentIsRemote: true,
		ScopeName: "my-instrumentation", ScopeVersion: "1.2.3",
		Attributes: []spanguard.Attribute{spanguard.String("http.request.method", "GET")},
	}
	s, err := tr.StartForeign(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddEventAt("retry", start.Add(time.Millisecond), spanguard.Int("attempt", 2)); err != nil {
		t.Fatal(err)
	}
	if err := s.EndAt(start.Add(2 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	tr.Flush(10 * time.Second)
	spans := readSpans(t, sink)
	if len(spans) != 1 {
		t.Fatalf("%d spans arrived", len(spans))
	}
	got := spans[0]
	if got.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || got.SpanID != "00f067aa0ba902b7" || got.ParentSpanID != "53995c3f42cd8ad8" {
		t.Fatalf("ids %s %s %s", got.TraceID, got.SpanID, got.ParentSpanID)
	}
	if got.StartTimeUnixNano != "1700000000123456789" || got.EndTimeUnixNano != "1700000000125456789" {
		t.Fatalf("times %s %s", got.StartTimeUnixNano, got.EndTimeUnixNano)
	}
	if _, err := tr.StartForeign(&spanguard.ForeignSpan{Name: "no ids"}); !errors.Is(err, &spanguard.Error{Code: 2}) {
		t.Fatalf("zero ids: %v, want INVALID_ARGUMENT", err)
	}
}

// AddLinkIDs refuses what the C call refuses: a link with an invalid
// context and nothing else, both remote bits.
func TestAddLinkIDsRefusesABareInvalidContext(t *testing.T) {
	tr, _ := newTracer(t)
	_, s, err := tr.Start(context.Background(), "linked")
	if err != nil {
		t.Fatal(err)
	}
	defer s.End()
	id, span := [16]byte{1}, [8]byte{2}
	if err := s.AddLinkIDs(id, span, 1, "", spanguard.LinkRemote); err != nil {
		t.Fatalf("a remote link: %v", err)
	}
	if err := s.AddLinkIDs([16]byte{}, [8]byte{}, 0, "", spanguard.LinkLocal, spanguard.Int("n", 1)); err != nil {
		t.Fatalf("an invalid context with an attribute: %v", err)
	}
	if err := s.AddLinkIDs([16]byte{}, span, 0, "", spanguard.LinkLocal); !errors.Is(err, spanguard.ErrInvalidTraceparent) {
		t.Fatalf("an invalid context alone: %v, want ErrInvalidTraceparent", err)
	}
	if err := s.AddLinkIDs(id, span, 0, "", spanguard.LinkRemote|spanguard.LinkLocal); !errors.Is(err, &spanguard.Error{Code: 2}) {
		t.Fatalf("both remote bits: %v, want INVALID_ARGUMENT", err)
	}
}

// A nil context, a nil *Tracer and a nil *ForeignSpan fail no call with a
// panic: OpenTelemetry's Start and SpanFromContext take a nil context.
func TestNilInputsDoNotPanic(t *testing.T) {
	tr, sink := newTracer(t)
	var none context.Context
	if s := spanguard.SpanFromContext(none); s != (spanguard.Span{}) {
		t.Fatalf("a nil context holds %+v", s)
	}
	ctx, s, err := tr.Start(none, "from a nil context")
	if err != nil {
		t.Fatal(err)
	}
	_, child, _ := tr.Start(ctx, "child")
	child.End()
	s.End()
	var nobody *spanguard.Tracer
	if _, _, err := nobody.Start(context.Background(), "x"); !errors.Is(err, spanguard.ErrShutDown) {
		t.Fatalf("nil tracer: %v", err)
	}
	if err := nobody.Close(); err != nil {
		t.Fatalf("nil tracer's Close: %v", err)
	}
	if _, err := nobody.Stats(); !errors.Is(err, spanguard.ErrShutDown) {
		t.Fatalf("nil tracer's Stats: %v", err)
	}
	if _, err := tr.StartForeign(nil); err == nil {
		t.Fatal("StartForeign(nil) began a span")
	}
	tr.Flush(10 * time.Second)
	byName := map[string]exported{}
	for _, e := range readSpans(t, sink) {
		byName[e.Name] = e
	}
	if p := byName["from a nil context"]; p.SpanID == "" || p.ParentSpanID != "" || byName["child"].ParentSpanID != p.SpanID {
		t.Fatalf("%+v", byName)
	}
}

// A flush given a timeout already passed (time.Until a deadline gone by)
// does not wait, and one of more than 49 days waits for its spans: their
// milliseconds wrapped around uint32, the first to 49 days (stuck behind a
// backend that never answers), the second to what was left over (1 ms).
func TestFlushTimeoutsOutOfRangeAreNotWrapped(t *testing.T) {
	hang := make(chan struct{})
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-release:
		}
	}))
	defer backend.Close()
	defer close(hang)
	tr, err := spanguard.NewTracer(spanguard.Config{Endpoint: backend.URL + "/v1/traces",
		SpoolDir: filepath.Join(t.TempDir(), "spool"), ScheduleDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	_, span, _ := tr.Start(context.Background(), "waits")
	span.End()
	done := make(chan bool, 1)
	go func() { ok, _ := tr.Flush(-time.Second); done <- ok }()
	select {
	case ok := <-done:
		if ok {
			t.Fatal("a flush with no time left said its span was delivered")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a flush with no time left waited")
	}
	// 49.7 days and 1 ms: it wrapped to 1 ms, and timed out at once.
	go func() { ok, _ := tr.Flush(time.Duration(math.MaxUint32+1) * time.Millisecond); done <- ok }()
	time.Sleep(500 * time.Millisecond)
	close(release) // the backend answers now
	if ok := <-done; !ok {
		t.Fatal("a flush of more than 49 days timed out before its span was delivered")
	}
}

// A begin that finds every slot taken, ended spans among them, waits for
// the exporter to give one back, gets it, and is counted in SlotWaits and
// SlotWaitNs. 528 slots (512 queued, 16 open), 522 held open, 20 spans
// through the 6 left. The exporter would wait for a batch's worth of ended
// spans (at least 32: a sixteenth of the 512-span batch) or its schedule
// delay (a minute): only the waiting begin's wake has it take the 6. It
// ignored that wake once (with 32 slots, when its target had risen to 16):
// the begin waited out its full wait and dropped its span, 1 run in 15.
// The wait here is 30 s, so a drop is that, not a loaded machine.
func TestABeginWaitingForASlotIsCounted(t *testing.T) {
	// The wait's bound is set by its variable alone; the others are set
	// too, so that none left in the environment changes what is tested.
	for name, value := range map[string]string{"SPANGUARD_FULL_WAIT_MS": "30000",
		"SPANGUARD_FULL_POLICY": "wait", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "512",
		"OTEL_BSP_MAX_QUEUE_SIZE": "512", "SPANGUARD_MAX_OPEN_SPANS": "16",
		"OTEL_BSP_SCHEDULE_DELAY": "60000"} {
		t.Setenv(name, value)
	}
	// One OS thread for the whole test: with 528 slots each recording
	// thread keeps a cache of up to 32 free slots, and a goroutine moved
	// to another thread would leave the slots it needs in the first
	// thread's cache.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	dir := t.TempDir()
	tr, err := spanguard.NewTracerFromEnv(spanguard.Config{Endpoint: "discard:", SinkDir: filepath.Join(dir, "sink"),
		SpoolDir: filepath.Join(dir, "spool"), MaxQueueSize: 512, MaxOpenSpans: 16, ScheduleDelay: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var held []spanguard.Span
	for i := 0; i < 522; i++ {
		_, s, err := tr.Start(context.Background(), "held")
		if err != nil {
			t.Fatalf("held span %d: %v", i, err)
		}
		held = append(held, s)
	}
	if st, _ := tr.Stats(); st.SlotWaits != 0 || st.SlotWaitNs != 0 {
		t.Fatalf("slot waits %d (%d ns) before any wait", st.SlotWaits, st.SlotWaitNs)
	}
	for i := 0; i < 20; i++ {
		_, s, err := tr.Start(context.Background(), "through")
		if err != nil {
			st, _ := tr.Stats()
			t.Fatalf("span %d through: %v (slot waits %d, dropped %d)", i, err, st.SlotWaits, st.DroppedBufferFull)
		}
		s.End()
	}
	if st, _ := tr.Stats(); st.SlotWaits == 0 || st.SlotWaitNs == 0 || st.DroppedBufferFull != 0 {
		t.Fatalf("slot waits %d (%d ns), dropped %d; want waits, no drop",
			st.SlotWaits, st.SlotWaitNs, st.DroppedBufferFull)
	}
	for _, s := range held {
		s.End()
	}
}
