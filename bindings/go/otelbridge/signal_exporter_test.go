package otelbridge_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
	"github.com/spanguard/spanguard/bindings/go/internal/childtest"
	"github.com/spanguard/spanguard/bindings/go/internal/otlpreceiver"
	"github.com/spanguard/spanguard/bindings/go/otelbridge"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// How many spans the exporter child ends before it says it is ready.
const queuedSpans = 20

// The child of the FlushOnSignals exporter tests: NewExporter under the
// SDK's batcher, which holds the spans for 30 s, the global provider, the
// tracer's FlushOnSignals; it ends queuedSpans spans, says "ready" and
// waits for its SIGTERM. SPANGUARD_EXPORTER_CHILD_STUCK: the provider has
// a second processor whose ForceFlush never returns.
func exporterChild(url string) {
	tr, err := spanguard.NewTracer(spanguard.Config{Endpoint: url, SpoolDir: os.Getenv("SPANGUARD_EXPORTER_CHILD_SPOOL")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	tr.FlushOnSignals(context.Background(), 2*time.Second)
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithBatcher(otelbridge.NewExporter(tr), sdktrace.WithBatchTimeout(30*time.Second)),
	}
	if os.Getenv("SPANGUARD_EXPORTER_CHILD_STUCK") != "" {
		opts = append(opts, sdktrace.WithSpanProcessor(stuckProcessor{}))
		// This one's own spans were exported before the signal.
		if _, span, err := tr.Start(context.Background(), "own"); err == nil {
			span.End()
		}
	}
	if os.Getenv("SPANGUARD_EXPORTER_CHILD_PANIC") != "" {
		opts = append(opts, sdktrace.WithSpanProcessor(panickingProcessor{}))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	if os.Getenv("SPANGUARD_EXPORTER_CHILD_DIRECT") != "" {
		// Used directly, never the global provider: named to be flushed.
		otelbridge.FlushBeforeShutdown(tp)
	} else {
		otel.SetTracerProvider(tp)
	}
	for i := range queuedSpans {
		_, span := tp.Tracer("agent").Start(context.Background(), "queued."+strconv.Itoa(i))
		span.End()
	}
	fmt.Println("ready")
	time.Sleep(60 * time.Second)
	os.Exit(3)
}

// A span processor whose ForceFlush never returns: another exporter of
// the provider's that waits on a backend that never answers, say.
type stuckProcessor struct{}

func (stuckProcessor) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (stuckProcessor) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (stuckProcessor) Shutdown(context.Context) error                  { return nil }
func (stuckProcessor) ForceFlush(context.Context) error                { select {} }

// A span processor whose ForceFlush panics (after the batcher's, which
// the provider flushes first).
type panickingProcessor struct{ stuckProcessor }

func (panickingProcessor) ForceFlush(context.Context) error {
	panic("a processor's ForceFlush panicked")
}

// runExporterChild starts the child with extra environment, sends it
// SIGTERM once it is ready, and returns the names of the spans that
// arrived (sorted) and how long the child took from the signal.
func runExporterChild(t *testing.T, extra ...string) ([]string, time.Duration) {
	t.Helper()
	rx := otlpreceiver.Start(t)
	cmd, _, _ := childtest.Start(t, childtest.Ready,
		append([]string{"SPANGUARD_EXPORTER_CHILD_ENDPOINT=" + rx.URL,
			"SPANGUARD_EXPORTER_CHILD_SPOOL=" + filepath.Join(t.TempDir(), "spool")}, extra...)...)
	signalled := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	took := time.Since(signalled)
	status, _ := err.(*exec.ExitError)
	if status == nil || status.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Fatalf("the child should end by its SIGTERM: %v", err)
	}
	var names []string
	for _, s := range rx.Spans(t) {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return names, took
}

// SIGTERM with the exporter under the SDK's batcher: the spans its queue
// holds reach spanguard before FlushOnSignals shuts the tracer down (it
// shut down at once, and they were lost with the process), and the
// signal still ends the process.
func TestFlushOnSignalsHandsTheBatchersQueueToTheExporter(t *testing.T) {
	names, _ := runExporterChild(t)
	var want []string
	for i := range queuedSpans {
		want = append(want, "queued."+strconv.Itoa(i))
	}
	sort.Strings(want)
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("arrived %v, want %v", names, want)
	}
}

// A provider whose ForceFlush never returns holds the signal up for the
// FlushOnSignals timeout only: then the tracer shuts down (its own span
// arrives) and the signal ends the process.
func TestFlushOnSignalsBoundsAProviderFlushThatNeverReturns(t *testing.T) {
	names, took := runExporterChild(t, "SPANGUARD_EXPORTER_CHILD_STUCK=1")
	if len(names) == 0 || names[0] != "own" {
		t.Fatalf("arrived %v, want own first", names)
	}
	// A bound far from any timing (the child's timeout is 2 s): not a speed check.
	if took > 20*time.Second {
		t.Fatalf("hung: the child ended %v after its SIGTERM, its flush timeout 2 s", took)
	}
}

// The queue of a provider used directly (never otel.SetTracerProvider),
// named to FlushBeforeShutdown, reaches spanguard at the signal: only
// the global provider was flushed, and its queue was lost.
func TestFlushOnSignalsHandsTheQueueOfAProviderNamedToFlushBeforeShutdown(t *testing.T) {
	names, _ := runExporterChild(t, "SPANGUARD_EXPORTER_CHILD_DIRECT=1")
	var want []string
	for i := range queuedSpans {
		want = append(want, "queued."+strconv.Itoa(i))
	}
	sort.Strings(want)
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("arrived %v, want %v", names, want)
	}
}

// A provider's ForceFlush that panics at the signal: the process still
// ends by its signal, with the spans flushed before the panic delivered.
// The panic ended it there and then, exit status 2, the tracer never
// shut down.
func TestFlushOnSignalsOutlivesAProviderFlushThatPanics(t *testing.T) {
	names, _ := runExporterChild(t, "SPANGUARD_EXPORTER_CHILD_PANIC=1")
	var want []string
	for i := range queuedSpans {
		want = append(want, "queued."+strconv.Itoa(i))
	}
	sort.Strings(want)
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("arrived %v, want %v", names, want)
	}
}
