package otelbridge_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
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
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// drainChild is the program TestADrainAtOnceLosesNothingSilently runs in
// a child process (this test binary again, SPANGUARD_DRAIN_BRIDGE_CHILD
// naming the receiver): a service with otelbridge under its
// TracerProvider, the watchdog on (the default), FlushOnSignals AND its own
// signal.NotifyContext, whose drain starts the moment the signal reaches
// it: the request open at SIGTERM gets its answer and ends, the provider
// and the tracer shut down. It prints how many parts of spans the bridge
// counted refused (Failures): how the program is told.
func drainChild(url string) {
	tr, err := spanguard.NewTracer(spanguard.Config{ServiceName: "drain", Endpoint: url,
		SpoolDir: os.Getenv("SPANGUARD_DRAIN_BRIDGE_SPOOL")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	bridge := otelbridge.New(tr)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(bridge))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	tr.FlushOnSignals(context.Background(), 5*time.Second)
	_, request := tp.Tracer("drain").Start(context.Background(), "request")
	fmt.Println("ready", request.SpanContext().TraceID())
	// A busy server: it sees the signal as soon as Go's runtime has it.
	for ctx.Err() == nil {
	}
	// The answer takes a moment, different each round: the drain's calls
	// land before, during and after FlushOnSignals' shutdown.
	delay, _ := strconv.Atoi(os.Getenv("SPANGUARD_DRAIN_DELAY_US"))
	time.Sleep(time.Duration(delay) * time.Microsecond)
	request.SetAttributes(attribute.String("answer", "sent in the drain"))
	request.End()
	_ = tp.Shutdown(context.Background())
	_ = tr.Close()
	fmt.Println("failures", bridge.Failures())
	os.Exit(0)
}

// A service with the bridge that calls FlushOnSignals beside its own
// NotifyContext (which the README advises against, but a program may well
// do) and drains at once: FlushOnSignals' shutdown races the drain's
// SetAttributes and End. Whichever wins, the request arrives once, with
// what the drain set on it (ended in the drain, or after the shutdown
// exported it), or cut by a shutdown (marked interrupted by SIGTERM, or
// unended when the drain's own came first) with the bridge's Failures counting the
// refused part. A newcomer saw it arrive ended without the drain's
// attribute, nothing said. Rounds: SPANGUARD_DRAIN_ROUNDS (default 6),
// the drain's calls a little later each round.
func TestADrainAtOnceLosesNothingSilently(t *testing.T) {
	rounds := 6
	if n, err := strconv.Atoi(os.Getenv("SPANGUARD_DRAIN_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	rx := otlpreceiver.Start(t)
	outcomes := map[string]int{}
	for round := range rounds {
		cmd, lines, first := childtest.Start(t, func(first string) bool { return strings.HasPrefix(first, "ready ") },
			"SPANGUARD_DRAIN_BRIDGE_CHILD="+rx.URL,
			"SPANGUARD_DRAIN_BRIDGE_SPOOL="+filepath.Join(t.TempDir(), "spool"),
			"SPANGUARD_DRAIN_DELAY_US="+strconv.Itoa(round%6*500))
		traceID := strings.TrimPrefix(first, "ready ")
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		var rest []string
		for lines.Scan() {
			rest = append(rest, lines.Text())
		}
		if err := cmd.Wait(); err != nil || len(rest) != 1 || !strings.HasPrefix(rest[0], "failures ") {
			t.Fatalf("round %d: the drain did not finish: %v %q", round, err, rest)
		}
		failures, _ := strconv.Atoi(strings.TrimPrefix(rest[0], "failures "))
		// The child shut its tracer down: what arrived is all there is.
		var requests []otlpreceiver.Span
		for _, s := range rx.Spans(t) {
			if s.TraceID == traceID {
				requests = append(requests, s)
			}
		}
		if len(requests) != 1 || requests[0].Name != "request" {
			t.Fatalf("round %d: the request arrived %d times: %+v", round, len(requests), requests)
		}
		attrs := requests[0].Attributes
		// Ended by a shutdown: FlushOnSignals' (for SIGTERM, interrupted)
		// or, when the drain's came first, the program's own (unended).
		unended := attrs["spanguard.unended"] == true || attrs["spanguard.interrupted"] == true
		switch {
		case attrs["answer"] == "sent in the drain" && !unended:
			outcomes["whole"]++
		case unended && failures > 0:
			outcomes["unended, counted"]++
		case attrs["answer"] == "sent in the drain":
			outcomes["whole, end after the stop"]++
		default:
			t.Errorf("round %d: the request arrived with %v, the bridge counted %d failures: "+
				"the drain's attribute lost and nothing said", round, attrs, failures)
		}
	}
	t.Logf("%d rounds: %v", rounds, outcomes)
}
