package spanguard_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
	"github.com/spanguard/spanguard/bindings/go/internal/cfault"
	"github.com/spanguard/spanguard/bindings/go/internal/childtest"
)

// crashSpans is how many spans the crash-handler child ends before and
// (recovered) after its nil dereference.
const crashSpans = 5

// crashChild is the program TestCrashHandlersInGo runs in a child process
// (this test binary again, with SPANGUARD_CRASH_CHILD set): a tracer with
// the library's crash handlers on (Config.InstallSignalHandlers, or
// "panic-fromenv": NewTracerFromEnv with SPANGUARD_SIGNAL_HANDLERS=true) and a
// minute's schedule delay, so nothing is exported before the end. It ends
// crashSpans spans, leaves one open, then: "recovered" recovers from a
// nil dereference, ends crashSpans more and closes the tracer; "panic"
// dereferences nil unrecovered; "cfault" writes through NULL in C called
// through cgo; "quit" says "ready" and waits for a signal.
func crashChild(mode, dir string) {
	cfg := spanguard.Config{ServiceName: "crash",
		SinkDir: filepath.Join(dir, "sink"), SpoolDir: filepath.Join(dir, "spool"),
		ScheduleDelay: time.Minute, InstallSignalHandlers: true}
	newTracer := spanguard.NewTracer
	if mode == "panic-fromenv" {
		// SPANGUARD_SIGNAL_HANDLERS=true in its environment asks for them.
		cfg.InstallSignalHandlers = false
		newTracer = spanguard.NewTracerFromEnv
	}
	tr, err := newTracer(cfg)
	if err != nil {
		panic(err)
	}
	record := func(name string) {
		_, s, err := tr.Start(context.Background(), name)
		if err != nil {
			fmt.Println("refused:", name, err)
			return
		}
		if err := s.End(); err != nil {
			fmt.Println("refused end:", name, err)
		}
	}
	for i := range crashSpans {
		record(fmt.Sprintf("before-%d", i))
	}
	_, _, _ = tr.Start(context.Background(), "open")
	switch mode {
	case "recovered":
		recoverNilDereference()
		for i := range crashSpans {
			record(fmt.Sprintf("after-%d", i))
		}
		if err := tr.Close(); err != nil {
			fmt.Println("close:", err)
		}
		fmt.Println("done")
	case "panic", "panic-fromenv":
		var p *int
		nilTarget = *p
	case "cfault":
		cfault.WriteThroughNull()
	case "quit":
		fmt.Println("ready")
		time.Sleep(time.Hour)
	}
}

// Crash handlers on in Go (Config.InstallSignalHandlers). A nil
// dereference the program recovers from is no crash: Go's runtime, the
// program's own SIGSEGV handler, turns it into a panic by moving the
// program counter, and the tracer records on (every later span was
// refused, the spans before it dumped and sent twice, until crash51 let
// such a handler run first). A nil dereference left unrecovered ends the
// process: the spans ended before and the open one (marked interrupted)
// arrive from the crash dump at the next start. At Go's default
// traceback level (the child's GOTRACEBACK=single) Go's runtime ended it
// with exit_group(2), which no handler sees, and all of them were lost,
// uncounted: the binding now sets the level to "crash", and Go ends it
// by SIGABRT, which is dumped. (A fault in C code: TestCgoFaultDumpsTheOpenSpan.)
func TestCrashHandlersInGo(t *testing.T) {
	t.Run("recovered", func(t *testing.T) {
		dir := t.TempDir()
		out, err := crashChildCommand("recovered", dir).Output()
		if err != nil || strings.TrimSpace(string(out)) != "done" {
			t.Fatalf("the program did not go on past its recovered panic: %v %q", err, out)
		}
		if dumps := publishedDumps(t, filepath.Join(dir, "spool")); len(dumps) != 0 {
			t.Errorf("a recovered nil dereference left a crash dump: %v", dumps)
		}
		want := map[string]int{"open": 1}
		for i := range crashSpans {
			want[fmt.Sprintf("before-%d", i)] = 1
			want[fmt.Sprintf("after-%d", i)] = 1
		}
		got := map[string]int{}
		for _, s := range readSpans(t, filepath.Join(dir, "sink")) {
			got[s.Name]++
		}
		checkArrivals(t, want, got)
	})
	for _, mode := range []string{"panic", "panic-fromenv"} {
		t.Run(mode, func(t *testing.T) { _ = checkCrashDumped(t, mode) })
	}
}

// crashChildCommand is the crash-handler child in mode, with dir its own.
func crashChildCommand(mode, dir string) *exec.Cmd {
	return childtest.Command("SPANGUARD_CRASH_CHILD="+mode, "SPANGUARD_SIGNAL_DIR="+dir,
		"GOTRACEBACK=single", "SPANGUARD_SIGNAL_HANDLERS=true")
}

// checkCrashDumped runs the crash-handler child in mode, which ends the
// process: it must die by Go's SIGABRT, and after a tracer set up alike
// starts, the spans it ended and the open one, marked interrupted, must
// have arrived once each.
// What Go's runtime printed on its way out (its stderr) is returned.
func checkCrashDumped(t *testing.T, mode string) string {
	t.Helper()
	dir := t.TempDir()
	cmd := crashChildCommand(mode, dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGABRT {
		t.Errorf("the child did not end by Go's SIGABRT at its crash: %v %q", err, out)
	}
	left := spoolFiles(t, filepath.Join(dir, "spool"))
	nextStart(t, dir)
	want := map[string]int{"open": 1}
	for i := range crashSpans {
		want[fmt.Sprintf("before-%d", i)] = 1
	}
	got := map[string]int{}
	for _, s := range readSpans(t, filepath.Join(dir, "sink")) {
		got[s.Name]++
		if s.Name == "open" && !hasTrue(s, "spanguard.interrupted") {
			t.Errorf("the open span is not marked interrupted: %+v", s)
		}
	}
	if got["open"] != 1 {
		t.Logf("the crashed child left in its spool: %v", left)
	}
	checkArrivals(t, want, got)
	return stderr.String()
}

// hasTrue says whether the span has the attribute key set to true.
func hasTrue(s exported, key string) bool {
	for _, a := range s.Attributes {
		if a.Key == key && a.Value["boolValue"] == true {
			return true
		}
	}
	return false
}

// cgoFaultRuns is how many children TestCgoFaultDumpsTheOpenSpan crashes.
const cgoFaultRuns = 8

// A fault in C code called through cgo, crash handlers on, run
// cgoFaultRuns times side by side: every time, the 5 spans ended before
// and the open one, marked interrupted, arrive (the ended ones at the
// termination watchdog's flush, the open one from the crash dump at the
// next start). Go's runtime ends such a process in steps: its handler
// relays SIGQUIT to its threads (the watchdog flushes and dumps at it),
// then the crashing thread and each thread the SIGQUIT reached raise
// SIGABRT, two of them often at once, 10 s on. The crash handler on the
// first wrote the dump; the second found a dump under way, left it to
// the first and handed its SIGABRT to Go's runtime, which put the
// default back and raised it: the process died before the dump was
// written (the watchdog's, made at the SIGQUIT, was taken back when Go's
// handler did not return within its second), the file left empty as
// .sgdump-pending, and the open span was lost, uncounted: in 4 of 24
// runs. Now the second waits for the first's dump to be written.
func TestCgoFaultDumpsTheOpenSpan(t *testing.T) {
	for run := range cgoFaultRuns {
		t.Run(fmt.Sprint(run), func(t *testing.T) {
			t.Parallel()
			_ = checkCrashDumped(t, "cfault")
		})
	}
}

// spoolFiles is what the spool directory holds, each file with its size.
func spoolFiles(t *testing.T, spool string) []string {
	t.Helper()
	entries, err := os.ReadDir(spool)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			files = append(files, fmt.Sprintf("%s (%d bytes)", e.Name(), info.Size()))
		}
	}
	return files
}

// cgoRelayRuns is how many children TestCgoFaultRelaysQuitAsGoDoes crashes.
const cgoRelayRuns = 4

// goSignal is what Go's runtime prints for each signal it dies of or
// relays: the signal, then the thread (its M) it arrived on and its
// si_code (0: SI_USER, the relay's kill; SI_TKILL, -6, printed unsigned:
// a tgkill, spanguard's watchdog handing the signal on).
var goSignal = regexp.MustCompile(`(?m)^(SIG[A-Z]+): [^\n]*\nPC=0x[0-9a-f]+ m=([0-9]+) sigcode=([0-9]+)`)

// A fault in C code called through cgo, crash handlers on: Go's runtime
// relays SIGQUIT to the process, each thread's handler sending the next,
// and its faulting thread ends the process once every other thread has
// had one. Each SIGQUIT must reach a thread other than the faulting one,
// once, as Go's relay sent it (sigcode 0). spanguard's crash handler
// called Go's without the signals Go's handler blocks: the first relay
// came back to the faulting thread, inside its own crash (Go printed
// "SIGQUIT: quit" for it, its m=0 a second time), whose handler then
// waited out Go's 10 s for the others; and the watchdog took that relay,
// flushed and handed it on from its own thread (sigcode SI_TKILL then;
// SI_QUEUE since the copy carries a tag) a second later.
// Go ends the process only after that timeout when its faulting thread
// waits on its own relay. Every run, the spans still arrive from the dump
// (checkCrashDumped).
func TestCgoFaultRelaysQuitAsGoDoes(t *testing.T) {
	for run := range cgoRelayRuns {
		t.Run(fmt.Sprint(run), func(t *testing.T) {
			t.Parallel()
			printed := checkCrashDumped(t, "cfault")
			signals := goSignal.FindAllStringSubmatch(printed, -1)
			if len(signals) < 2 || signals[0][1] != "SIGSEGV" {
				t.Fatalf("Go printed no fault and relay (%d signals):\n%s", len(signals), printed)
			}
			faulting := signals[0][2]
			seen := map[string]int{}
			for _, s := range signals[1:] {
				signal, m, code := s[1], s[2], s[3]
				seen[m]++
				switch {
				case signal != "SIGQUIT":
					t.Errorf("m=%s: %s after the fault, not Go's relayed SIGQUIT", m, signal)
				case m == faulting:
					t.Errorf("the relayed SIGQUIT came back to the faulting thread (m=%s) inside its crash", m)
				case code != "0":
					t.Errorf("m=%s: SIGQUIT with sigcode %s, not Go's relay (0): handed on by the watchdog", m, code)
				case seen[m] > 1:
					t.Errorf("m=%s had SIGQUIT %d times", m, seen[m])
				}
			}
		})
	}
}

// SIGQUIT from another process to a healthy Go program, crash handlers
// on: the watchdog still takes it (no crash under way) and flushes the
// spans ended before, dumps the open one and hands the signal on to Go's
// handler by its tagged copy (sigcode SI_QUEUE, printed unsigned), which prints
// every goroutine and ends the process by SIGABRT at the "crash" level;
// the next start of a tracer set up alike sends the open span, marked
// interrupted. The relays Go sends itself then reach its other threads.
func TestQuitToAHealthyGoProgramIsFlushedFirst(t *testing.T) {
	dir := t.TempDir()
	cmd := crashChildCommand("quit", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if first, _ := bufio.NewReader(out).ReadString('\n'); first != "ready\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("the child did not start: %q %s", first, stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGABRT {
		t.Errorf("the child did not end by Go's SIGABRT after its SIGQUIT: %v", err)
	}
	signals := goSignal.FindAllStringSubmatch(stderr.String(), -1)
	// The watchdog re-sends a tagged copy (rt_tgsigqueueinfo, so the
	// trampoline knows it): SI_QUEUE, -1, as Go prints it.
	const siQueue = "18446744073709551615"
	if len(signals) == 0 || signals[0][1] != "SIGQUIT" || signals[0][3] != siQueue {
		t.Errorf("the SIGQUIT did not reach Go's handler from the watchdog (sigcode SI_QUEUE): %q", signals)
	}
	flushed := map[string]int{}
	for _, s := range readSpans(t, filepath.Join(dir, "sink")) {
		flushed[s.Name]++
	}
	want := map[string]int{}
	for i := range crashSpans {
		want[fmt.Sprintf("before-%d", i)] = 1
	}
	checkArrivals(t, want, flushed)
	nextStart(t, dir)
	want["open"] = 1
	got := map[string]int{}
	for _, s := range readSpans(t, filepath.Join(dir, "sink")) {
		got[s.Name]++
	}
	checkArrivals(t, want, got)
}
