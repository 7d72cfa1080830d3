package otelbridge_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
	"github.com/spanguard/spanguard/bindings/go/internal/childtest"
	"github.com/spanguard/spanguard/bindings/go/internal/otlpreceiver"
	"github.com/spanguard/spanguard/bindings/go/otelbridge"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// promptText is n bytes of numbered words from seed: the same text in the
// child and in the test, where a cut, moved or repeated piece shows.
func promptText(seed string, n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		b.WriteString(seed + strconv.Itoa(i) + " ")
	}
	return b.String()[:n]
}

var (
	openPrompt     = promptText("prompt", 50_000)
	openCompletion = promptText("completion", 50_000)
)

// setOpenChild is the child of
// TestWhatIsSetOnAnOpenSpanArrivesWhenItsProcessIsKilled: a span of the
// bridge's provider given a 50 KB prompt, an event with a 50 KB
// completion and a new name after its start, then "ready" and its ids,
// open until the test kills the process. "kill": the flight recorder on
// (the test sends SIGKILL); "term": the library's watchdog alone;
// "flush": FlushOnSignals.
func setOpenChild(mode string) {
	tr, err := spanguard.NewTracer(spanguard.Config{Endpoint: os.Getenv("SPANGUARD_SET_OPEN_CHILD_ENDPOINT"),
		SpoolDir: os.Getenv("SPANGUARD_SET_OPEN_CHILD_SPOOL"), FlightRecorder: mode == "kill"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if mode == "flush" {
		tr.FlushOnSignals(context.Background(), 5*time.Second)
	}
	bridge := otelbridge.New(tr)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(bridge))
	_, span := bridge.TracerProvider(tp).Tracer("set-open").Start(context.Background(), "llm.request",
		trace.WithAttributes(attribute.String("gen_ai.request.model", "gpt-4o")))
	span.SetAttributes(attribute.String("gen_ai.prompt", openPrompt))
	span.AddEvent("gen_ai.content.completion", trace.WithAttributes(attribute.String("gen_ai.completion", openCompletion)))
	span.SetName("llm.chat")
	fmt.Println("ready", span.SpanContext().TraceID(), span.SpanContext().SpanID())
	time.Sleep(60 * time.Second)
	runtime.KeepAlive(span) // open, not let go of, when the process is stopped
	os.Exit(3)
}

// A span of the bridge's TracerProvider open when its process is killed
// arrives with the 50 KB prompt, the event with its 50 KB completion and
// the new name set after its start: SIGKILL with the flight recorder (the
// next start on its spool sends it), SIGTERM with the library's watchdog
// alone (the same), SIGTERM with FlushOnSignals (sent at once). The SDK
// tells a processor nothing between a span's start and its end, and the
// first two arrived with only the model they were started with.
func TestWhatIsSetOnAnOpenSpanArrivesWhenItsProcessIsKilled(t *testing.T) {
	for _, mode := range []string{"kill", "term", "flush"} {
		t.Run(mode, func(t *testing.T) {
			rx := otlpreceiver.Start(t)
			spool := filepath.Join(t.TempDir(), "spool")
			cmd, _, first := childtest.Start(t, func(first string) bool { return strings.HasPrefix(first, "ready ") },
				"SPANGUARD_SET_OPEN_CHILD="+mode, "SPANGUARD_SET_OPEN_CHILD_ENDPOINT="+rx.URL,
				"SPANGUARD_SET_OPEN_CHILD_SPOOL="+spool)
			ids := strings.Fields(first)[1:]
			sig := syscall.SIGTERM
			if mode == "kill" {
				sig = syscall.SIGKILL
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			if status, _ := err.(*exec.ExitError); status == nil || status.Sys().(syscall.WaitStatus).Signal() != sig {
				t.Fatalf("the child should end by its %v: %v", sig, err)
			}
			if mode != "flush" {
				// The next start on the spool sends what the dead process left.
				tr, err := spanguard.NewTracer(spanguard.Config{Endpoint: rx.URL, SpoolDir: spool,
					FlightRecorder: mode == "kill"})
				if err != nil {
					t.Fatal(err)
				}
				if ok, err := tr.Shutdown(10 * time.Second); !ok || err != nil {
					t.Fatal(ok, err)
				}
			}
			got := rx.WaitFor(t, 1)
			if len(got) != 1 {
				t.Fatalf("%d spans arrived", len(got))
			}
			s := got[0]
			if s.TraceID != ids[0] || s.SpanID != ids[1] || s.Attributes["gen_ai.request.model"] != "gpt-4o" {
				t.Fatalf("arrived %s/%s %q, the child's open span is %v", s.TraceID, s.SpanID, s.Name, ids)
			}
			if g, w := fingerprint(s.Attributes["gen_ai.prompt"]), fingerprint(openPrompt); g != w {
				t.Errorf("gen_ai.prompt: %s arrived, %s set", g, w)
			}
			if len(s.Events) != 1 || s.Events[0].Name != "gen_ai.content.completion" {
				t.Errorf("%d events arrived, want the completion", len(s.Events))
			} else if g, w := fingerprint(s.Events[0].Attributes["gen_ai.completion"]), fingerprint(openCompletion); g != w {
				t.Errorf("gen_ai.completion: %s arrived, %s set", g, w)
			}
			if s.Name != "llm.chat" {
				t.Errorf("arrived named %q, renamed llm.chat", s.Name)
			}
		})
	}
}

// The bridge's TracerProvider's spans are the SDK's: a child started from
// the wrapped span's context has it as parent (and the SDK counts it), the
// context and the span name the wrapper as theirs, a call after the end
// is the SDK's alone, and the spans arrive as the SDK kept them, each
// attribute, event, link and status once though passed on as it was set.
func TestTheBridgesTracerProviderWrapsTheSDKsSpans(t *testing.T) {
	rx := otlpreceiver.Start(t)
	bridge := otelbridge.New(newTracer(t, rx.URL))
	memory := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(memory), sdktrace.WithSpanProcessor(bridge))
	provider := bridge.TracerProvider(tp)
	tracer := provider.Tracer("wrapped")
	ctx, parent := tracer.Start(context.Background(), "agent.run", trace.WithAttributes(attribute.Int("turn", 1)))
	if trace.SpanFromContext(ctx) != parent || parent.TracerProvider() != provider {
		t.Fatal("the context or the span does not name the wrapper")
	}
	_, child := tracer.Start(ctx, "llm.chat")
	child.SetAttributes(attribute.String("gen_ai.prompt", "hello"), attribute.Int("turn", 2))
	child.SetAttributes(attribute.Int("turn", 3)) // the later value wins, once
	child.AddLink(trace.Link{SpanContext: parent.SpanContext(), Attributes: []attribute.KeyValue{attribute.Bool("l", true)}})
	child.RecordError(errors.New("rate limited"))
	child.SetStatus(codes.Error, "rate limited")
	child.SetName("chat gpt-4o")
	child.End()
	child.SetAttributes(attribute.String("after", "end")) // ignored by the SDK: nothing to pass
	parent.AddEvent("done")
	parent.SetStatus(codes.Ok, "")
	parent.End()
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := memory.GetSpans()
	if len(got) != 2 || got[0].Parent.SpanID() != got[1].SpanContext.SpanID() || got[1].ChildSpanCount != 1 {
		t.Fatalf("the SDK kept %d spans: the child's parent %v, the parent's children %d", len(got),
			got[0].Parent.SpanID(), got[1].ChildSpanCount)
	}
	rx.WaitFor(t, 2)
	arrivedAsTheSDKKeptThem(t, got, rx, bridge)
	if f := bridge.Failures(); f != 0 {
		t.Fatalf("%d failures", f)
	}
}

// A long span of the bridge's TracerProvider, 2,000 events of 2 KB, holds
// no more of the payload pool (1 MiB here) than the SDK's 128 events
// twice: past the SDK's limit each event passed as set evicted the oldest
// passed, whose room spanguard frees only with the span, and the pool ran
// out (events refused, counted in Failures). It ends with the SDK's last
// 128, the rest counted dropped, as without the wrapper.
func TestALongWrappedSpansEventsStayWithinThePool(t *testing.T) {
	rx := otlpreceiver.Start(t)
	tr := newTracerWith(t, rx.URL, spanguard.Config{PayloadPoolMiB: 1, FullPolicy: spanguard.FullPolicyDrop})
	bridge := otelbridge.New(tr)
	memory := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(memory), sdktrace.WithSpanProcessor(bridge))
	_, span := bridge.TracerProvider(tp).Tracer("long").Start(context.Background(), "agent.loop")
	for i := range 2000 {
		span.AddEvent("step", trace.WithAttributes(attribute.String("text", promptText(strconv.Itoa(i)+"-", 2000))))
	}
	span.End()
	got := flushedAlone(t, tp, rx)
	if len(got[0].Events) != 128 || got[0].DroppedEvents != 2000-128 {
		t.Fatalf("%d events and %d dropped arrived (%d failures); want 128 and 1872", len(got[0].Events),
			got[0].DroppedEvents, bridge.Failures())
	}
	arrivedAsTheSDKKeptThem(t, memory.GetSpans(), rx, bridge)
	if f := bridge.Failures(); f != 0 {
		t.Fatalf("%d failures: the pool ran out", f)
	}
}

// flushedAlone flushes tp and returns what rx got, failing unless that is
// one span.
func flushedAlone(t *testing.T, tp *sdktrace.TracerProvider, rx *otlpreceiver.Receiver) []otlpreceiver.Span {
	t.Helper()
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := rx.WaitFor(t, 1)
	if len(got) != 1 {
		t.Fatalf("%d spans arrived", len(got))
	}
	return got
}
