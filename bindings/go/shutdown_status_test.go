package spanguard_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
)

// A FlushResult printed says what it is: fmt.Println(tr.ShutdownStatus(...))
// printed "1 <nil>", a number a reader had to look up.
func TestAFlushResultPrintsItsName(t *testing.T) {
	for result, want := range map[spanguard.FlushResult]string{
		spanguard.Delivered: "Delivered", spanguard.Spooled: "Spooled", spanguard.TimedOut: "TimedOut",
		spanguard.FlushResult(7): "FlushResult(7)",
	} {
		if got := fmt.Sprint(result); got != want {
			t.Errorf("%d printed %q, want %q", int(result), got, want)
		}
	}
}

// A program under otelbridge shuts the tracer down twice: tp.Shutdown
// through the bridge, then the README's tr.Shutdown. The second call said
// Delivered, its spans in the spool with the backend down (the first had
// said Spooled): it now says what the first found.
func TestASecondShutdownSaysWhatTheFirstFound(t *testing.T) {
	tr, err := spanguard.NewTracer(spanguard.Config{
		ServiceName: "go-second-shutdown", Endpoint: refusingEndpoint(t), SpoolDir: t.TempDir(),
		ExportTimeout: 200 * time.Millisecond, NoSignalWatchdog: true, LogLevel: "none",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	_, s, _ := tr.Start(context.Background(), "kept")
	s.End()
	if status, err := tr.ShutdownStatus(10 * time.Second); status != spanguard.Spooled || err != nil {
		t.Fatalf("first shutdown: %v %v", status, err)
	}
	if status, err := tr.ShutdownStatus(10 * time.Second); status != spanguard.Spooled || err != nil {
		t.Fatalf("second shutdown: %v %v, want Spooled as the first", status, err)
	}
	if done, err := tr.Shutdown(10 * time.Second); !done || err != nil {
		t.Fatalf("third shutdown: %v %v", done, err)
	}
}

// refusingEndpoint is a traces URL on loopback where nothing listens:
// every connection is refused.
func refusingEndpoint(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	return "http://" + closed + "/v1/traces"
}
