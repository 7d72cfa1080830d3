package spanguard_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
)

// pid1Child is the agent TestAContainersPID1 runs as PID 1 of a PID
// namespace of its own: a tracer whose spans leave only on a flush, one
// span ended ("before"), then "ready"; each "span NAME" line on stdin
// ends a span of that name, answered "ok". "notify" takes SIGTERM with
// signal.Notify and says "got SIGTERM" each time, as servers do; "plain",
// "interrupt" and "hangup" take no signal themselves.
func pid1Child(mode, dir string) {
	if os.Getpid() != 1 {
		panic(fmt.Sprintf("not PID 1: %d", os.Getpid()))
	}
	tr, err := spanguard.NewTracer(spanguard.Config{ServiceName: "pid1", SinkDir: filepath.Join(dir, "sink"),
		SpoolDir: filepath.Join(dir, "spool"), ScheduleDelay: time.Minute, FlightRecorder: true})
	if err != nil {
		panic(err)
	}
	record := func(name string) {
		_, s, _ := tr.Start(context.Background(), name)
		s.End()
	}
	if mode == "notify" {
		got := make(chan os.Signal, 1)
		signal.Notify(got, syscall.SIGTERM)
		go func() {
			for range got {
				fmt.Println("got SIGTERM")
			}
		}()
	}
	_, _, _ = tr.Start(context.Background(), "open")
	record("before")
	fmt.Println("ready")
	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		if name, ok := strings.CutPrefix(lines.Text(), "span "); ok {
			record(name)
		}
		fmt.Println("ok")
	}
}

// unsharePID1 says why `unshare --pid --fork` cannot run here, or "".
func unsharePID1() string {
	out, err := exec.Command("unshare", "--pid", "--fork", "sh", "-c", "test $$ = 1").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("no PID namespace here (unshare --pid --fork: %v %s)", err, strings.TrimSpace(string(out)))
	}
	return ""
}

// An agent that is a container's PID 1 (`unshare --pid --fork`), stopped
// as `docker stop` stops it: SIGTERM from outside its namespace, then
// SIGKILL. A namespace's init gets only the signals it handles
// (pid_namespaces(7)). Go's runtime handles SIGTERM: a program without
// signal.Notify dies of it (the runtime's re-raise at the default does
// nothing in PID 1, and it exits 2 instead), with its ended spans flushed
// and its open ones dumped for the next start; one with signal.Notify
// lives on, its handler told at each SIGTERM, each flushed. "interrupt"
// is Ctrl-C in `docker run -it`, "hangup" a terminal's hangup: SIGINT and
// SIGHUP to one without signal.Notify, which end it as SIGTERM does.
func TestAContainersPID1(t *testing.T) {
	if why := unsharePID1(); why != "" {
		t.Skip(why)
	}
	for _, mode := range []string{"plain", "interrupt", "hangup", "notify"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command("unshare", "--pid", "--fork", "--kill-child", os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "SPANGUARD_PID1_CHILD="+mode, "SPANGUARD_SIGNAL_DIR="+dir)
			cmd.Stderr = os.Stderr
			stdin, _ := cmd.StdinPipe()
			stdout, _ := cmd.StdoutPipe()
			if err := startAsContainerInit(cmd); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			lines := bufio.NewScanner(stdout)
			next := func() string {
				if lines.Scan() {
					return lines.Text()
				}
				return ""
			}
			if first := next(); first != "ready" {
				t.Fatalf("the agent said %q", first)
			}
			pid := childOf(t, cmd.Process.Pid)
			sink := filepath.Join(dir, "sink")
			stop := map[string]syscall.Signal{"interrupt": syscall.SIGINT, "hangup": syscall.SIGHUP}[mode]
			if stop == 0 {
				stop = syscall.SIGTERM
			}
			if err := syscall.Kill(pid, stop); err != nil {
				t.Fatal(err)
			}
			if !inSink(t, sink, "before") {
				t.Fatalf("%v flushed nothing", stop)
			}
			if mode != "notify" {
				err := cmd.Wait()
				status := cmd.ProcessState.ExitCode()
				if status != 2 {
					t.Fatalf("Go's runtime ends a PID 1 without signal.Notify with exit 2 at %v: %v", stop, err)
				}
				nextStart(t, dir)
				if got := spanNames(t, sink); strings.Join(got, " ") != "before open" {
					t.Fatalf("the ended span and the dumped open one, once each: %v", got)
				}
				return
			}
			if got := next(); got != "got SIGTERM" {
				t.Fatalf("the program's handler was not told: %q", got)
			}
			fmt.Fprintln(stdin, "span after")
			if got := next(); got != "ok" {
				t.Fatalf("the agent did not live on: %q", got)
			}
			if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if got := next(); got != "got SIGTERM" {
				t.Fatalf("the second SIGTERM did not reach the handler: %q", got)
			}
			if !inSink(t, sink, "after") {
				t.Fatal("the second SIGTERM flushed nothing")
			}
			// Recorded once the watchdog is done with the signal (a
			// span waits for that), then SIGKILL, as docker stop's.
			fmt.Fprintln(stdin, "span last")
			if got := next(); got != "ok" {
				t.Fatalf("the agent did not live on: %q", got)
			}
			dumps, _ := filepath.Glob(filepath.Join(dir, "spool", "*.sgdump"))
			if len(dumps) != 0 {
				t.Fatalf("a dump left after the process lived on: %v", dumps)
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
			_ = cmd.Wait()
			nextStart(t, dir)
			// The flight recorder's: the span ended since the flush, the
			// one still open.
			if got := spanNames(t, sink); strings.Join(got, " ") != "after before last open" {
				t.Fatalf("each span once: %v", got)
			}
		})
	}
}

// startAsContainerInit starts cmd with SIGHUP, SIGINT and SIGQUIT at the
// default action, as a container runtime starts its PID 1. A test run
// under nohup passed SIGHUP on ignored (the go command resets only SIGINT
// and SIGQUIT, which it handles), and Go's runtime leaves a SIGHUP or
// SIGINT ignored at start so: the hangup agent's SIGHUP did nothing. A
// child's exec resets only the signals this process handles, so they are
// handled for the moment of the start.
func startAsContainerInit(cmd *exec.Cmd) error {
	held := make(chan os.Signal, 1)
	signal.Notify(held, syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT)
	defer signal.Stop(held)
	return cmd.Start()
}

// nextStart starts a tracer on the agent's spool directory, flushes and
// closes it: what it recovered is in the sink.
func nextStart(t *testing.T, dir string) {
	t.Helper()
	tr, err := spanguard.NewTracer(spanguard.Config{ServiceName: "next", SinkDir: filepath.Join(dir, "sink"),
		SpoolDir: filepath.Join(dir, "spool")})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = tr.Flush(10 * time.Second)
	_ = tr.Close()
}

// childOf is unshare's one child, the agent: its pid here.
func childOf(t *testing.T, parent int) int {
	t.Helper()
	path := fmt.Sprintf("/proc/%d/task/%d/children", parent, parent)
	for range 1000 {
		raw, _ := os.ReadFile(path)
		if fields := strings.Fields(string(raw)); len(fields) > 0 {
			pid, _ := strconv.Atoi(fields[0])
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("unshare started no agent")
	return 0
}

func inSink(t *testing.T, sink, name string) bool {
	for range 1000 {
		for _, s := range readSpans(t, sink) {
			if s.Name == name {
				return true
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

func spanNames(t *testing.T, sink string) []string {
	var names []string
	for _, s := range readSpans(t, sink) {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return names
}
