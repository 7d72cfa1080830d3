package spanguard_test

import (
	"bufio"
	"context"
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
)

// drainChild is the program TestDrainAfterSigterm runs in a child process
// (this test binary again, with SPANGUARD_DRAIN_CHILD set): a server that
// handles SIGTERM itself (signal.NotifyContext) and drains: a request span
// open at the signal gets its answer and ends, a span begun in the drain
// ends, the tracer closes, exit 0. "flush" also calls FlushOnSignals, as
// the README's examples once taught every program to.
func drainChild(mode, dir string) {
	tr, err := spanguard.NewTracer(spanguard.Config{ServiceName: "drain",
		SinkDir: filepath.Join(dir, "sink"), SpoolDir: filepath.Join(dir, "spool")})
	if err != nil {
		panic(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if mode == "flush" {
		tr.FlushOnSignals(context.Background(), 5*time.Second)
	}
	_, request, err := tr.Start(context.Background(), "request")
	if err != nil {
		panic(err)
	}
	fmt.Println("ready")
	<-ctx.Done()
	if mode == "flush" {
		// FlushOnSignals' shutdown runs on its own goroutine at the signal,
		// done long before a real drain's requests answer: wait for it
		// (the request it exported unended in the sink), 5 s at most.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			files, _ := filepath.Glob(filepath.Join(dir, "sink", "*.jsonl"))
			if len(files) > 0 {
				if b, _ := os.ReadFile(files[0]); strings.Contains(string(b), `"request"`) {
					break
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	} else if _, err := tr.Flush(time.Second); err != nil {
		// A drain's first flush, right as the signal wakes it.
		fmt.Println("drain flush:", err)
	}
	_ = request.SetAttributes(spanguard.String("answer", "sent in the drain"))
	_ = request.End()
	if _, drain, err := tr.Start(context.Background(), "drain"); err != nil {
		fmt.Println("drain span refused:", err)
	} else {
		_ = drain.End()
	}
	_ = tr.Close()
	fmt.Println("graceful exit")
	os.Exit(0)
}

// A program with its own signal.NotifyContext needs no FlushOnSignals: the
// watchdog (on by default) flushes at the signal and leaves the tracer
// recording, so the drain's first flush works, the request open at SIGTERM
// ends whole in the drain and the drain's own span arrives. With
// FlushOnSignals as well, its shutdown at the signal races the drain
// (README's Go section and FlushOnSignals' doc say what may happen
// before it ran); once it ran, the request arrives marked unended with
// what it held at the signal, and the drain's span is refused
// (ErrShutDown). This holds the docs to both.
func TestDrainAfterSigterm(t *testing.T) {
	for _, mode := range []string{"notify", "flush"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "SPANGUARD_DRAIN_CHILD="+mode, "SPANGUARD_SIGNAL_DIR="+dir)
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := bufio.NewScanner(out)
			if !lines.Scan() || lines.Text() != "ready" {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("the child did not start: %q", lines.Text())
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			var rest []string
			for lines.Scan() {
				rest = append(rest, lines.Text())
			}
			if err := cmd.Wait(); err != nil || rest[len(rest)-1] != "graceful exit" {
				t.Fatalf("the graceful shutdown did not finish: %v %q", err, rest)
			}
			count := map[string]int{}
			byName := map[string]exported{}
			for _, s := range readSpans(t, filepath.Join(dir, "sink")) {
				count[s.Name]++
				byName[s.Name] = s
			}
			if count["request"] != 1 {
				t.Fatalf("the request span arrived %d times: %v", count["request"], count)
			}
			keys := map[string]bool{}
			for _, a := range byName["request"].Attributes {
				keys[a.Key] = true
			}
			refused := strings.Contains(strings.Join(rest, "\n"), "drain span refused")
			switch mode {
			case "notify":
				if keys["spanguard.unended"] || !keys["answer"] {
					t.Errorf("the request ended in the drain arrived without its end: %+v", byName["request"])
				}
				if count["drain"] != 1 || strings.Join(rest, "\n") != "graceful exit" {
					t.Errorf("the drain's flush failed or its span did not arrive once: %v %q", count, rest)
				}
			case "flush":
				if !keys["spanguard.unended"] || keys["answer"] {
					t.Errorf("FlushOnSignals beside NotifyContext no longer cuts the request at the signal "+
						"(update README's Go section and FlushOnSignals' doc): %+v", byName["request"])
				}
				if count["drain"] != 0 || !refused {
					t.Errorf("FlushOnSignals beside NotifyContext no longer refuses the drain's span "+
						"(update README's Go section and FlushOnSignals' doc): %v %q", count, rest)
				}
			}
		})
	}
}
