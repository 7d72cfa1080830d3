package spanguard_test

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
)

// drainChild is the program TestDrainAfterSigterm and TestDrainAtOnce run
// in a child process (this test binary again, with SPANGUARD_DRAIN_CHILD
// set): a server that handles SIGTERM itself (signal.NotifyContext) and
// drains: a request span open at the signal gets its answer and ends, a
// span begun in the drain ends, the tracer closes, exit 0. "flush" and
// "flush-at-once" also call FlushOnSignals, as the README's examples once
// taught every program to. The "-at-once" modes drain the moment the
// signal reaches the program and send to the test's receiver
// (SPANGUARD_DRAIN_ENDPOINT), so the watchdog's flush and the shutdown's
// take as long as a backend's answer.
func drainChild(mode, dir string) {
	tr, err := spanguard.NewTracer(spanguard.Config{ServiceName: "drain",
		Endpoint: os.Getenv("SPANGUARD_DRAIN_ENDPOINT"),
		SinkDir:  filepath.Join(dir, "sink"), SpoolDir: filepath.Join(dir, "spool")})
	if err != nil {
		panic(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if mode == "flush" || mode == "flush-at-once" {
		tr.FlushOnSignals(context.Background(), 5*time.Second)
	}
	_, request, err := tr.Start(context.Background(), "request",
		spanguard.WithAttributes(spanguard.String("round", os.Getenv("SPANGUARD_DRAIN_ROUND"))))
	if err != nil {
		panic(err)
	}
	fmt.Println("ready")
	if strings.HasSuffix(mode, "-at-once") {
		// A busy server: it sees the signal as soon as Go's runtime has it.
		for ctx.Err() == nil {
		}
		// The drain starts as the signal wakes it, while the watchdog may
		// still hold the tracer (and races FlushOnSignals' shutdown): it
		// says what each call answered.
		_, flushErr := tr.Flush(0)
		// The answer takes a moment, different each round: the drain's
		// calls land before, during and after that shutdown.
		delay, _ := strconv.Atoi(os.Getenv("SPANGUARD_DRAIN_DELAY_US"))
		time.Sleep(time.Duration(delay) * time.Microsecond)
		setErr := request.SetAttributes(spanguard.String("answer", "sent in the drain"))
		endErr := request.End()
		fmt.Println("flush:", flushErr)
		fmt.Println("set:", setErr, "end:", endErr)
		_ = tr.Close()
		os.Exit(0)
	}
	<-ctx.Done()
	if mode == "flush" {
		// FlushOnSignals' shutdown runs on its own goroutine at the signal,
		// done long before a real drain's requests answer: wait for it
		// (the request it exported interrupted in the sink), a minute at
		// most. (5 s, a loaded machine could outlast: the drain then ended
		// the request first and the test blamed FlushOnSignals.)
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
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

// runDrainChild runs drainChild in mode, stops it with SIGTERM once it is
// ready, and returns its directory and what it printed after "ready".
func runDrainChild(t *testing.T, mode string, env ...string) (dir string, rest []string) {
	t.Helper()
	dir = t.TempDir()
	cmd, lines, _ := childtest.Start(t, childtest.Ready,
		append([]string{"SPANGUARD_DRAIN_CHILD=" + mode, "SPANGUARD_SIGNAL_DIR=" + dir}, env...)...)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for lines.Scan() {
		rest = append(rest, lines.Text())
	}
	if err := cmd.Wait(); err != nil || len(rest) == 0 {
		t.Fatalf("the child did not finish: %v %q", err, rest)
	}
	return dir, rest
}

// A program with its own signal.NotifyContext needs no FlushOnSignals: the
// watchdog (on by default) flushes at the signal and leaves the tracer
// recording, so the drain's first flush works, the request open at SIGTERM
// ends whole in the drain and the drain's own span arrives. With
// FlushOnSignals as well, its shutdown at the signal races the drain
// (README's Go section and FlushOnSignals' doc say what may happen
// before it ran); once it ran, the request arrives marked interrupted by
// SIGTERM with what it held at the signal, and the drain's span is refused
// (ErrShutDown). This holds the docs to both.
func TestDrainAfterSigterm(t *testing.T) {
	for _, mode := range []string{"notify", "flush"} {
		t.Run(mode, func(t *testing.T) {
			dir, rest := runDrainChild(t, mode)
			if rest[len(rest)-1] != "graceful exit" {
				t.Fatalf("the graceful shutdown did not finish: %q", rest)
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
				// Cut by FlushOnSignals' shutdown, for SIGTERM: marked so.
				if !keys["spanguard.interrupted"] || keys["spanguard.unended"] || keys["answer"] {
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

// A drain that starts the moment the signal reaches the program (a busy
// server), its first call a Flush(0). "notify-at-once": NotifyContext
// alone; the flush answers no error (a flush that lands while the
// watchdog still holds the tracer answered ErrShutDown, though the
// tracer recorded again a moment later), the request ends whole in the
// drain. "flush-at-once": FlushOnSignals beside it, whose shutdown the
// drain's SetAttributes and End race (a newcomer saw requests arrive
// ended without the drain's attribute, nothing said): whichever wins, the
// request arrives once, with what the drain set on it (ended in the
// drain, or after the shutdown exported it: End answers nil then), or
// marked unended with the drain told (SetAttributes refused). Rounds:
// SPANGUARD_DRAIN_ROUNDS (default 6) a mode, the drain's calls a little
// later each round.
func TestDrainAtOnce(t *testing.T) {
	rounds := 6
	if n, err := strconv.Atoi(os.Getenv("SPANGUARD_DRAIN_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	rx := otlpreceiver.Start(t)
	for _, mode := range []string{"notify-at-once", "flush-at-once"} {
		t.Run(mode, func(t *testing.T) {
			outcomes := map[string]int{}
			for round := range rounds {
				id := mode + strconv.Itoa(round)
				_, rest := runDrainChild(t, mode, "SPANGUARD_DRAIN_ENDPOINT="+rx.URL, "SPANGUARD_DRAIN_ROUND="+id,
					"SPANGUARD_DRAIN_DELAY_US="+strconv.Itoa(round%6*500))
				// The child shut its tracer down: what arrived is all there is.
				var requests []otlpreceiver.Span
				for _, s := range rx.Spans(t) {
					if s.Name == "request" && s.Attributes["round"] == id {
						requests = append(requests, s)
					}
				}
				if len(requests) != 1 || len(rest) != 2 {
					t.Fatalf("round %d: the request arrived %d times; the child said %q", round, len(requests), rest)
				}
				attrs := requests[0].Attributes
				answered := attrs["answer"] == "sent in the drain"
				// Ended by a shutdown: FlushOnSignals' (for SIGTERM) or, when
				// the drain's Close came first, that one (unended).
				unended := attrs["spanguard.unended"] == true || attrs["spanguard.interrupted"] == true
				flush, calls := rest[0], rest[1]
				told := calls != "set: <nil> end: <nil>"
				switch {
				case mode == "notify-at-once":
					if flush != "flush: <nil>" || told || !answered || unended {
						t.Errorf("round %d: the drain's calls answered %q, the request arrived with %v",
							round, rest, attrs)
					}
					outcomes[flush]++
				case answered && !unended && !told:
					outcomes["whole"]++
				case answered && unended:
					outcomes["whole, ended after the stop"]++
				case unended && told:
					outcomes["unended, told"]++
				default:
					t.Errorf("round %d: the request arrived with %v; the drain's calls answered %q",
						round, attrs, rest)
				}
				if testing.Verbose() {
					t.Log(mode, rest)
				}
			}
			t.Logf("%d rounds: %v", rounds, outcomes)
		})
	}
}
