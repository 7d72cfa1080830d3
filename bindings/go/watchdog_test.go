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

	spanguard "github.com/spanguard/spanguard/bindings/go"
	"github.com/spanguard/spanguard/bindings/go/internal/childtest"
)

// watchdogSpans is how many spans the watchdog child ends before SIGTERM.
const watchdogSpans = 20

// nilTarget is read through a nil pointer by the "nilderef" child: a
// package variable, so the compiler keeps the read (and its nil check).
var nilTarget int

// recoverNilDereference reads through a nil pointer and recovers from the
// panic Go's runtime makes of the SIGSEGV, as a Go program may.
func recoverNilDereference() {
	recovered := func() (r any) {
		defer func() { r = recover() }()
		var p *int
		nilTarget = *p
		return nil
	}()
	if recovered == nil {
		panic("the nil dereference did not panic")
	}
}

// watchdogChild is the program TestWatchdogByDefault runs in a child
// process (this test binary again, with SPANGUARD_WATCHDOG_CHILD set): a
// tracer made from the zero Config (its directories aside), with no
// FlushOnSignals, that ends watchdogSpans spans, says "ready" and waits
// for SIGTERM under the default 5 s schedule delay, so none was exported
// before it. "default" leaves SIGTERM to Go's runtime; "notify" handles it
// (signal.NotifyContext), records a last span in its drain and closes the
// tracer; "nilderef" first recovers from a nil dereference, as a Go
// program may, and ends its spans after it.
func watchdogChild(mode, dir string) {
	tr, err := spanguard.NewTracer(spanguard.Config{
		SinkDir: filepath.Join(dir, "sink"), SpoolDir: filepath.Join(dir, "spool")})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if mode == "notify" {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGTERM)
		defer stop()
	}
	if mode == "nilderef" {
		recoverNilDereference()
	}
	for i := range watchdogSpans {
		_, s, err := tr.Start(context.Background(), fmt.Sprintf("%s-%d", mode, i))
		if err != nil {
			panic(err)
		}
		if err := s.End(); err != nil {
			panic(err)
		}
	}
	fmt.Println("ready")
	<-ctx.Done()
	_, drain, err := tr.Start(context.Background(), "drain")
	if err != nil {
		fmt.Println("drain span refused:", err)
	} else {
		drain.End()
	}
	if err := tr.Close(); err != nil {
		fmt.Println("close:", err)
	}
	fmt.Println("graceful exit")
	os.Exit(0)
}

// publishedDumps lists the crash dumps (.sgdump) in a spool directory:
// what the crash handler writes when it runs.
func publishedDumps(t *testing.T, spool string) []string {
	t.Helper()
	dumps, err := filepath.Glob(filepath.Join(spool, "*.sgdump"))
	if err != nil {
		t.Fatal(err)
	}
	return dumps
}

// A Go service with the zero Config and no FlushOnSignals, stopped with
// SIGTERM (docker stop, a Kubernetes rollout): its ended spans were lost,
// up to 5 s of them, silently (exit 143, no sink file), because the
// binding turned every library handler off to keep the crash handlers off
// Go's SIGSEGV. Now the termination watchdog flushes them, and the signal
// still does what it did: Go's default kills the process with SIGTERM; a
// program's own signal.NotifyContext gets it and drains, its last span
// recorded, and exits 0. A nil dereference the program recovers from
// writes no crash dump and leaves the tracer recording.
func TestWatchdogByDefault(t *testing.T) {
	for _, mode := range []string{"default", "notify", "nilderef"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			cmd, lines, _ := childtest.Start(t, childtest.Ready,
				"SPANGUARD_WATCHDOG_CHILD="+mode, "SPANGUARD_SIGNAL_DIR="+dir)
			if dumps := publishedDumps(t, filepath.Join(dir, "spool")); len(dumps) != 0 {
				t.Errorf("a recovered nil dereference wrote a crash dump: %v", dumps)
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			var rest []string
			for lines.Scan() {
				rest = append(rest, lines.Text())
			}
			err := cmd.Wait()
			want := map[string]int{}
			for i := range watchdogSpans {
				want[fmt.Sprintf("%s-%d", mode, i)] = 1
			}
			if mode == "notify" {
				if err != nil || strings.Join(rest, "\n") != "graceful exit" {
					t.Fatalf("the graceful shutdown did not finish: %v %q", err, rest)
				}
				want["drain"] = 1
			} else {
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
					t.Fatalf("the child did not die of SIGTERM: %v %q", err, rest)
				}
			}
			got := map[string]int{}
			for _, s := range readSpans(t, filepath.Join(dir, "sink")) {
				got[s.Name]++
			}
			checkArrivals(t, want, got)
		})
	}
}

// checkArrivals fails the test for each span that did not arrive as many
// times as want says (by name), and for each that arrived unwanted.
func checkArrivals(t *testing.T, want, got map[string]int) {
	t.Helper()
	for name, n := range want {
		if got[name] != n {
			t.Errorf("span %s arrived %d times, want %d", name, got[name], n)
		}
	}
	for name, n := range got {
		if want[name] == 0 {
			t.Errorf("unexpected span %s (%d times)", name, n)
		}
	}
}
