package spanguard_test

import (
	"bufio"
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

// ignoredSignalChild is the program TestFlushOnSignalsLeavesASignalIgnoredAtStartIgnored
// runs, started with SIGINT ignored: a tracer with FlushOnSignals (SIGTERM
// and SIGINT), a span ended, then "ready"; at each line on its stdin it
// records a span of that name and says what its end returned.
func ignoredSignalChild(dir string) {
	tr, err := spanguard.NewTracer(spanguard.Config{ServiceName: "ignored",
		SinkDir: filepath.Join(dir, "sink"), SpoolDir: filepath.Join(dir, "spool")})
	if err != nil {
		panic(err)
	}
	tr.FlushOnSignals(context.Background(), 5*time.Second)
	_, before, _ := tr.Start(context.Background(), "before")
	before.End()
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		_, span, err := tr.Start(context.Background(), in.Text())
		if err == nil {
			err = span.End()
		}
		fmt.Println(in.Text(), err)
	}
}

func TestMain(m *testing.M) {
	if mode := os.Getenv("SPANGUARD_SIGNAL_CHILD"); mode != "" {
		signalChild(mode, os.Getenv("SPANGUARD_SIGNAL_DIR"))
		return
	}
	if dir := os.Getenv("SPANGUARD_IGNORED_SIGNAL_CHILD"); dir != "" {
		ignoredSignalChild(dir)
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

// A program started with SIGINT ignored (`agent &` in a shell script, a
// container's entrypoint that starts it so, `trap "" INT`) lives through
// a SIGINT, and the library leaves signals the host ignores alone.
// FlushOnSignals caught it all the same (signal.Notify takes a signal
// ignored at start back from SIG_IGN): at a SIGINT it shut the tracer down
// and sent the signal again, which the restored SIG_IGN discarded, so the
// program went on with a tracer that refused every span from then on
// (ErrShutDown). Now a signal ignored when FlushOnSignals is called is
// left ignored: the SIGINT does nothing, the spans after it are recorded,
// and the SIGTERM after that is flushed on and kills the program.
func TestFlushOnSignalsLeavesASignalIgnoredAtStartIgnored(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("sh", "-c", `trap '' INT; exec "$0" -test.run='^$'`, os.Args[0])
	cmd.Env = append(os.Environ(), "SPANGUARD_IGNORED_SIGNAL_CHILD="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "ready" {
		t.Fatalf("the child did not start: %q", lines.Text())
	}
	// The disposition FlushOnSignals left: SIGINT (bit 1) still ignored.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var ignored uint64
	for _, line := range strings.Split(string(status), "\n") {
		if mask, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			_, _ = fmt.Sscanf(strings.TrimSpace(mask), "%x", &ignored)
		}
	}
	if ignored&(1<<(syscall.SIGINT-1)) == 0 {
		t.Errorf("SIGINT, ignored at the child's start, is no longer ignored once FlushOnSignals was called "+
			"(SigIgn %#x)", ignored)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	// What a SIGINT caught would do is done on another goroutine: ask
	// until it would have been, or the child says the tracer is shut down.
	var said string
	for i := 0; i < 20 && !strings.Contains(said, "shut down"); i++ {
		name := fmt.Sprintf("after-int-%d", i)
		if _, err := fmt.Fprintln(stdin, name); err != nil {
			t.Fatal(err)
		}
		if !lines.Scan() {
			t.Fatalf("the child stopped after the SIGINT: %v", lines.Err())
		}
		said = lines.Text()
		if said != name+" <nil>" {
			t.Errorf("after the SIGINT the child's span %s: %q", name, said)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for lines.Scan() {
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Fatalf("the child did not die of SIGTERM: %v", err)
	}
	names := map[string]bool{}
	for _, s := range readSpans(t, filepath.Join(dir, "sink")) {
		names[s.Name] = true
	}
	if !names["before"] || !names["after-int-0"] {
		t.Errorf("spans in the sink: %v, want before and after-int-0", names)
	}
}
