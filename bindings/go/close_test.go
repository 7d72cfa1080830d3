package spanguard_test

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
)

// Spans begun, written and ended on other goroutines while the tracer is
// closed: no call touches freed memory (Close shuts down; the memory goes
// when the Tracer is garbage), every call after the close says
// ErrShutDown (End: nil, the span was exported unended), never
// ErrStaleSpan, and every span a Start returned arrives.
func TestSpanCallsRacingCloseLoseNothing(t *testing.T) {
	for round := 0; round < 20; round++ {
		sink := filepath.Join(t.TempDir(), "sink")
		tr, err := spanguard.NewTracer(spanguard.Config{SinkDir: sink, ScheduleDelay: 5 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		var begun atomic.Int64
		var wg sync.WaitGroup
		closed := make(chan struct{})
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var open []spanguard.Span
				for i := 0; ; i++ {
					_, s, err := tr.Start(context.Background(), "racing")
					if errors.Is(err, spanguard.ErrShutDown) {
						break
					}
					if err != nil {
						t.Errorf("Start: %v", err)
						return
					}
					begun.Add(1)
					open = append(open, s)
					if err := s.SetAttributes(spanguard.Int("i", i)); err != nil &&
						!errors.Is(err, spanguard.ErrShutDown) {
						t.Errorf("SetAttributes: %v", err)
					}
					if len(open) > 8 {
						if err := open[0].End(); err != nil {
							t.Errorf("End: %v", err)
						}
						open = open[1:]
					}
					if i > 2000 {
						time.Sleep(100 * time.Microsecond) // fewer spans to read back, still racing
					}
				}
				<-closed
				// Spans still held after Close: their calls are refused
				// cleanly; the spans themselves were exported unended.
				for _, s := range open {
					if err := s.SetAttributes(spanguard.Bool("late", true)); !errors.Is(err, spanguard.ErrShutDown) {
						t.Errorf("SetAttributes after Close: %v", err)
					}
					if err := s.End(); err != nil {
						t.Errorf("End after Close: %v", err)
					}
				}
			}()
		}
		time.Sleep(time.Duration(1+round%5) * time.Millisecond)
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		close(closed)
		wg.Wait()
		if got := len(readSpans(t, sink)); int64(got) != begun.Load() {
			t.Fatalf("round %d: %d spans begun, %d arrived", round, begun.Load(), got)
		}
	}
}

// A program that makes and closes tracers one after another never runs
// out of the library's 255 tracer numbers, though each closed tracer
// holds its number until it is collected.
func TestManyTracersClosedInARow(t *testing.T) {
	for i := 0; i < 600; i++ {
		tr, err := spanguard.NewTracer(spanguard.Config{Endpoint: "discard:", MaxQueueSize: 64})
		if err != nil {
			t.Fatalf("tracer %d: %v", i, err)
		}
		_, s, err := tr.Start(context.Background(), "one")
		if err != nil {
			t.Fatal(err)
		}
		s.End()
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Stats(); !errors.Is(err, spanguard.ErrShutDown) {
			t.Fatalf("Stats after Close: %v", err)
		}
	}
}

// A tracer never closed is shut down and freed once it is garbage (the
// finalizer, a backstop): its ended span, which its exporter would not
// send for a minute, arrives.
func TestATracerNeverClosedIsShutDownWhenCollected(t *testing.T) {
	sink := filepath.Join(t.TempDir(), "sink")
	func() {
		tr, err := spanguard.NewTracer(spanguard.Config{SinkDir: sink, ScheduleDelay: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		_, s, _ := tr.Start(context.Background(), "left.behind")
		s.End()
	}()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
		if spans := readSpans(t, sink); len(spans) == 1 && spans[0].Name == "left.behind" {
			return
		}
	}
	t.Fatalf("the span of a tracer left to the collector never arrived: %+v", readSpans(t, sink))
}

// A flush after Shutdown said true (all delivered) beside ErrShutDown, and
// after Close false: a caller that looked at the bool alone was told a
// flush happened that never ran. Both now say false with ErrShutDown,
// and Shutdown and Close stay no-ops the second time.
func TestFlushAfterShutdownOrCloseSaysFalse(t *testing.T) {
	tr, err := spanguard.NewTracer(spanguard.Config{SinkDir: filepath.Join(t.TempDir(), "sink")})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := tr.Shutdown(10 * time.Second); !ok || err != nil {
		t.Fatalf("Shutdown: %v %v", ok, err)
	}
	if ok, err := tr.Flush(time.Second); ok || !errors.Is(err, spanguard.ErrShutDown) {
		t.Fatalf("Flush after Shutdown: %v %v, want false ErrShutDown", ok, err)
	}
	if ok, err := tr.Shutdown(time.Second); !ok || err != nil {
		t.Fatalf("second Shutdown: %v %v", ok, err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if ok, err := tr.Flush(time.Second); ok || !errors.Is(err, spanguard.ErrShutDown) {
		t.Fatalf("Flush after Close: %v %v, want false ErrShutDown", ok, err)
	}
}
