package spanguard_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
	"github.com/spanguard/spanguard/bindings/go/internal/childtest"
)

// exitSpans is how many spans the exit child ends before it leaves.
const exitSpans = 10

// exitChild is the program TestGoExitRunsNoExitHook runs in a child
// process (SPANGUARD_EXIT_CHILD set): a tracer closed by a deferred Close,
// as the README's examples close theirs, that ends exitSpans spans and
// leaves one open, none exported yet (a schedule delay of a minute: what
// a program has ended within the default 5 s), then leaves. "return"
// returns from the function holding the deferred Close, as a main that
// returns does; "exit" and "flight" call os.Exit(1), as log.Fatal does,
// which skips it; "flight" has the flight recorder on.
func exitChild(mode, dir string) {
	func() {
		tr, err := spanguard.NewTracer(spanguard.Config{ServiceName: "exit",
			SinkDir: filepath.Join(dir, "sink"), SpoolDir: filepath.Join(dir, "spool"),
			ScheduleDelay: time.Minute, FlightRecorder: mode == "flight"})
		if err != nil {
			panic(err)
		}
		defer tr.Close()
		for i := range exitSpans {
			_, s, err := tr.Start(context.Background(), fmt.Sprintf("ended-%d", i))
			if err != nil {
				panic(err)
			}
			if err := s.End(); err != nil {
				panic(err)
			}
		}
		if _, _, err := tr.Start(context.Background(), "open"); err != nil {
			panic(err)
		}
		if mode != "return" {
			os.Exit(1) // log.Fatal's way out: the deferred Close never runs
		}
	}()
	os.Exit(0)
}

// A Go program leaves without running the library's exit hook (Go's
// runtime ends the process with the exit_group system call, not C's
// exit): the Termination safety table's "normal exit: every span" holds
// for a Go program only through its own Close or Shutdown, and the README
// said nothing of it to a Go author, whose log.Fatal after a request lost
// that request's spans, counted nowhere. What the Go README now says,
// each way out: a main that returns runs its deferred Close (every span,
// the open one marked unended); os.Exit (log.Fatal) loses the spans not
// yet exported, for good (a next tracer on the same directories finds
// none of them); with the flight recorder on, that next tracer sends the
// ended ones and the open one, marked interrupted.
func TestGoExitRunsNoExitHook(t *testing.T) {
	ended := make([]string, 0, exitSpans)
	for i := range exitSpans {
		ended = append(ended, fmt.Sprintf("ended-%d", i))
	}
	for _, tc := range []struct {
		mode string
		exit int      // the child's exit status
		want []string // the spans in the sink, after a next tracer's start
	}{
		{"return", 0, append(slices.Clone(ended), "open")},
		{"exit", 1, nil},
		{"flight", 1, append(slices.Clone(ended), "open")},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			dir := t.TempDir()
			cmd := childtest.Command("SPANGUARD_EXIT_CHILD="+tc.mode, "SPANGUARD_EXIT_DIR="+dir)
			cmd.Stderr = os.Stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if status := 0; errors.As(err, &exit) {
				status = exit.ExitCode()
				if status != tc.exit {
					t.Fatalf("the child exited %d, want %d", status, tc.exit)
				}
			} else if err != nil || tc.exit != 0 {
				t.Fatalf("the child: %v, want exit %d", err, tc.exit)
			}
			// The next process on the same directories: it sends what a
			// dead one left there (spool, flight files) at its start.
			next, err := spanguard.NewTracer(spanguard.Config{ServiceName: "next",
				SinkDir: filepath.Join(dir, "sink"), SpoolDir: filepath.Join(dir, "spool")})
			if err != nil {
				t.Fatal(err)
			}
			if err := next.Close(); err != nil {
				t.Fatal(err)
			}
			var got []string
			marks := map[string]bool{}
			for _, s := range readSpans(t, filepath.Join(dir, "sink")) {
				got = append(got, s.Name)
				for _, a := range s.Attributes {
					if s.Name == "open" && a.Value["boolValue"] == true {
						marks[a.Key] = true
					}
				}
			}
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("the sink holds %q, want %q", got, want)
			}
			if mark := map[string]string{"return": "spanguard.unended",
				"flight": "spanguard.interrupted"}[tc.mode]; mark != "" && !marks[mark] {
				t.Errorf("the open span is not marked %s: %v", mark, marks)
			}
		})
	}
}
