package spanguard_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
	"github.com/spanguard/spanguard/bindings/go/internal/childtest"
)

// signalChild is the program TestFlushOnSignals runs in a child process
// (this test binary again, with SPANGUARD_SIGNAL_CHILD set): a tracer with
// FlushOnSignals, one span ended and one left open; "graceful" also
// handles SIGTERM itself, as servers do, and exits 0 after its drain.
func signalChild(mode, dir string) {
	tr, err := spanguard.NewTracer(spanguard.Config{ServiceName: "signals",
		SinkDir: filepath.Join(dir, "sink"), SpoolDir: filepath.Join(dir, "spool")})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	var stop context.CancelFunc
	if mode == "graceful" {
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGTERM)
		defer stop()
	}
	tr.FlushOnSignals(context.Background(), 5*time.Second)
	_, ended, _ := tr.Start(context.Background(), "ended")
	ended.End()
	_, _, _ = tr.Start(context.Background(), "open")
	fmt.Println("ready")
	<-ctx.Done()
	tr.Close()
	fmt.Println("graceful exit")
	os.Exit(0)
}

func TestMain(m *testing.M) {
	if mode := os.Getenv("SPANGUARD_SIGNAL_CHILD"); mode != "" {
		signalChild(mode, os.Getenv("SPANGUARD_SIGNAL_DIR"))
		return
	}
	if mode := os.Getenv("SPANGUARD_WATCHDOG_CHILD"); mode != "" {
		watchdogChild(mode, os.Getenv("SPANGUARD_SIGNAL_DIR"))
		return
	}
	if mode := os.Getenv("SPANGUARD_CRASH_CHILD"); mode != "" {
		crashChild(mode, os.Getenv("SPANGUARD_SIGNAL_DIR"))
		return
	}
	if mode := os.Getenv("SPANGUARD_EXIT_CHILD"); mode != "" {
		exitChild(mode, os.Getenv("SPANGUARD_EXIT_DIR"))
		return
	}
	if mode := os.Getenv("SPANGUARD_DRAIN_CHILD"); mode != "" {
		drainChild(mode, os.Getenv("SPANGUARD_SIGNAL_DIR"))
		return
	}
	if mode := os.Getenv("SPANGUARD_PID1_CHILD"); mode != "" {
		pid1Child(mode, os.Getenv("SPANGUARD_SIGNAL_DIR"))
		return
	}
	if dir := os.Getenv("SPANGUARD_PREFAULT_CHILD"); dir != "" {
		prefaultChild(dir)
		return
	}
	if level := os.Getenv("SPANGUARD_LOG_LEVEL_CHILD"); level != "" {
		logLevelChild(level)
		return
	}
	os.Exit(m.Run())
}

// SIGTERM to a program with FlushOnSignals: its spans are exported (the
// open one marked interrupted by SIGTERM) and then it dies of the signal, as it would
// have; a program that handles SIGTERM itself goes on with its graceful
// shutdown and exits 0 (signal.Reset undid its handler and the signal sent
// again killed it, status 143).
func TestFlushOnSignals(t *testing.T) {
	for _, mode := range []string{"plain", "graceful"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			cmd, lines, _ := childtest.Start(t, childtest.Ready,
				"SPANGUARD_SIGNAL_CHILD="+mode, "SPANGUARD_SIGNAL_DIR="+dir)
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			var rest []string
			for lines.Scan() {
				rest = append(rest, lines.Text())
			}
			err := cmd.Wait()
			var exit *exec.ExitError
			switch mode {
			case "plain":
				if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
					t.Fatalf("the child did not die of SIGTERM: %v", err)
				}
			case "graceful":
				if err != nil || strings.Join(rest, "\n") != "graceful exit" {
					t.Fatalf("the graceful shutdown did not finish: %v %q", err, rest)
				}
			}
			// Once each: the library's watchdog (on by default) flushes
			// at the signal too, before FlushOnSignals gets it.
			byName := map[string]exported{}
			count := map[string]int{}
			for _, s := range readSpans(t, filepath.Join(dir, "sink")) {
				byName[s.Name] = s
				count[s.Name]++
			}
			if count["ended"] > 1 || count["open"] > 1 {
				t.Fatalf("spans arrived more than once: %v", count)
			}
			if _, ok := byName["ended"]; !ok {
				t.Fatalf("the ended span is missing: %+v", byName)
			}
			open, ok := byName["open"]
			if !ok {
				t.Fatalf("the open span is missing: %+v", byName)
			}
			attrs := map[string]any{}
			for _, a := range open.Attributes {
				for _, v := range a.Value {
					attrs[a.Key] = v
				}
			}
			// Stopped by SIGTERM, as the watchdog tells it of the spans it
			// dumps: not "unended", a span the program forgot to end.
			interrupted := attrs["spanguard.interrupted"] == true && attrs["spanguard.signal"] == "15" &&
				attrs["spanguard.unended"] == nil
			// The graceful program's own Close races FlushOnSignals'
			// shutdown: the first to shut down says how the span ended.
			closedFirst := mode == "graceful" && attrs["spanguard.unended"] == true &&
				attrs["spanguard.interrupted"] == nil
			if !interrupted && !closedFirst {
				t.Fatalf("the open span is not marked interrupted by SIGTERM: %+v", open)
			}
		})
	}
}
