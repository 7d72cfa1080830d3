package spanguard_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
	"github.com/spanguard/spanguard/bindings/go/internal/otlpreceiver"
)

// A value that finds the payload pool used up waits for chunks (the wait
// policy, the default) and arrives whole once the exporter gives chunks
// back; meanwhile the program's other goroutines run, even on one P. The
// setter ran on the thread's C stack without cgo's hand-off (hotcall.c),
// so its wait held the only P: nothing else ran (not the goroutine that
// would have let the backend go, not a collection) until the wait gave
// up and cut the prompt. Now a value that may need chunks is set through
// cgo, where it may wait.
//
// The pool is held (heldPool) until the test lets the backend go, after the
// counting goroutine has counted `others` turns while the setter waits.
// heldPool makes a tracer whose payload pool (1 MiB, 256 chunks) is held
// by ended spans the exporter cannot take: it is stuck sending the first
// span to a backend that holds its request until release is called (at
// the test's end if not before). 16 chunks (64 KiB) are left.
func heldPool(t *testing.T, name string) (tr *spanguard.Tracer, rx *otlpreceiver.Receiver, release func()) {
	t.Helper()
	rx = otlpreceiver.Start(t)
	target, err := url.Parse(rx.URL)
	if err != nil {
		t.Fatal(err)
	}
	forward := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	gate, arrived := make(chan struct{}), make(chan struct{}, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-gate
		forward.ServeHTTP(w, r)
	}))
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(backend.Close)
	t.Cleanup(release)
	// The wait's bound well past what the test needs, so that only a wait
	// that stops the other goroutines ends in a cut.
	t.Setenv("SPANGUARD_FULL_WAIT_MS", "10000")
	tr, err = spanguard.NewTracerFromEnv(spanguard.Config{ServiceName: name,
		Endpoint: backend.URL + target.Path, SpoolDir: filepath.Join(t.TempDir(), "spool"),
		ScheduleDelay: 10 * time.Millisecond, PayloadPoolMiB: 1, NoSignalWatchdog: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	ctx := context.Background()
	_, first, _ := tr.Start(ctx, "first")
	first.End()
	select {
	case <-arrived: // the exporter is stuck in its request
	case <-time.After(20 * time.Second):
		t.Fatal("the exporter sent nothing")
	}
	// 10 spans of 24 chunks each: 16 chunks (64 KiB) left.
	filler := strings.Repeat("f", 24*4096-100)
	for i := 0; i < 10; i++ {
		_, s, _ := tr.Start(ctx, "filler", spanguard.WithAttributes(spanguard.String("filler", filler)))
		s.End()
	}
	return tr, rx, release
}

func TestASetterWaitingForChunksLetsOtherGoroutinesRun(t *testing.T) {
	const others = 1000
	tr, rx, release := heldPool(t, "go-pool-wait")
	ctx := context.Background()
	_, s, err := tr.Start(ctx, "llm.chat")
	if err != nil {
		t.Fatal(err)
	}
	prompt := strings.Repeat("a prompt of 100 KB ", 100_000/19)

	turns := turnsOnOneP(t)
	type outcome struct {
		err    error
		during int64
	}
	set := make(chan outcome, 1)
	go func() {
		before := turns.Load()
		err := s.SetAttributes(spanguard.String("gen_ai.prompt", prompt))
		set <- outcome{err, turns.Load() - before}
	}()
	// Once the setter waits: the other goroutines take `others` turns,
	// then the backend goes on and the exporter gives the chunks back.
	deadline := time.Now().Add(20 * time.Second)
	for waiting := false; ; {
		st, err := tr.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if !waiting && st.PayloadWaits > 0 {
			waiting = true
			from := turns.Load()
			for turns.Load()-from < others && time.Now().Before(deadline) {
				runtime.Gosched()
			}
			release()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the setter never waited")
		}
		runtime.Gosched()
	}
	got := <-set
	if got.err != nil {
		t.Errorf("set: %v", got.err)
	}
	if got.during < others {
		t.Errorf("other goroutines took %d turns while the setter waited, want %d or more", got.during, others)
	}
	s.End()
	if ok, err := tr.Flush(20 * time.Second); !ok || err != nil {
		t.Fatalf("flush: %v %v", ok, err)
	}
	st, err := tr.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.PayloadWaits == 0 || st.PayloadWaitsCut != 0 {
		t.Errorf("payload waits %d, cut %d; want some, none cut", st.PayloadWaits, st.PayloadWaitsCut)
	}
	for _, span := range rx.WaitFor(t, 12) {
		if span.Name == "llm.chat" {
			if p, _ := span.Attributes["gen_ai.prompt"].(string); p != prompt {
				t.Fatalf("the prompt arrived as %d bytes, want %d whole", len(p), len(prompt))
			}
			return
		}
	}
	t.Fatal("llm.chat did not arrive")
}

// A hot End or SetAttributes (on the thread's C stack, hotcall.c) on a span
// whose prompt another goroutine is setting, while that setter waits
// through cgo for payload chunks holding the span: the hot call spun for
// the span's lock holding the goroutine's P, so with GOMAXPROCS=1 nothing
// else ran (not the goroutine that lets the backend go, not a collection)
// until the setter's wait gave up and cut the prompt. Now the hot call
// hears WOULD_WAIT, having done nothing, and makes the call again through
// cgo, which waits for the span without holding the P.
func TestAHotCallOnASpanAWaitingSetterHoldsLetsOtherGoroutinesRun(t *testing.T) {
	const reply = "gpt-4o-2024-08-06"
	for _, c := range []struct {
		name string
		call func(spanguard.Span) error
	}{
		{"End", func(s spanguard.Span) error { return s.End() }},
		{"SetAttributes", func(s spanguard.Span) error {
			return s.SetAttributes(spanguard.String("gen_ai.response.model", reply))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			const others = 1000
			tr, rx, release := heldPool(t, "go-pool-held-span")
			_, s, err := tr.Start(context.Background(), "llm.chat")
			if err != nil {
				t.Fatal(err)
			}
			prompt := strings.Repeat("a prompt of 100 KB ", 100_000/19)

			turns := turnsOnOneP(t)
			set := make(chan error, 1)
			go func() { set <- s.SetAttributes(spanguard.String("gen_ai.prompt", prompt)) }()
			deadline := time.Now().Add(20 * time.Second)
			for {
				st, err := tr.Stats()
				if err != nil {
					t.Fatal(err)
				}
				if st.PayloadWaits > 0 {
					break // the setter waits, holding the span
				}
				if time.Now().After(deadline) {
					t.Fatal("the setter never waited")
				}
				runtime.Gosched()
			}
			type outcome struct {
				err    error
				during int64
			}
			called := make(chan outcome, 1)
			started := make(chan struct{})
			go func() {
				close(started)
				before := turns.Load()
				err := c.call(s)
				called <- outcome{err, turns.Load() - before}
			}()
			<-started
			// While the call waits for the span: `others` turns, then the
			// backend goes on, the setter gets its chunks and lets go.
			from := turns.Load()
			for turns.Load()-from < others && time.Now().Before(deadline) {
				runtime.Gosched()
			}
			release()
			got := <-called
			if got.err != nil {
				t.Errorf("%s: %v", c.name, got.err)
			}
			if got.during < others {
				t.Errorf("other goroutines took %d turns while %s waited for the span, want %d or more",
					got.during, c.name, others)
			}
			if err := <-set; err != nil {
				t.Errorf("set the prompt: %v", err)
			}
			if c.name == "SetAttributes" {
				if err := s.End(); err != nil {
					t.Fatalf("end: %v", err)
				}
			} else if err := s.End(); !errors.Is(err, spanguard.ErrAlreadyEnded) && !errors.Is(err, spanguard.ErrStaleSpan) {
				t.Errorf("end again: %v, want ErrAlreadyEnded or ErrStaleSpan (ended once)", err)
			}
			if ok, err := tr.Flush(20 * time.Second); !ok || err != nil {
				t.Fatalf("flush: %v %v", ok, err)
			}
			st, err := tr.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.PayloadWaitsCut != 0 || st.SpansEnded != 12 {
				t.Errorf("payload waits cut %d, spans ended %d; want none cut, 12 ended", st.PayloadWaitsCut, st.SpansEnded)
			}
			var chats int
			for _, span := range rx.WaitFor(t, 12) {
				if span.Name != "llm.chat" {
					continue
				}
				chats++
				if p, _ := span.Attributes["gen_ai.prompt"].(string); p != prompt {
					t.Errorf("the prompt arrived as %d bytes, want %d whole", len(p), len(prompt))
				}
				if m, _ := span.Attributes["gen_ai.response.model"].(string); c.name == "SetAttributes" && m != reply {
					t.Errorf("gen_ai.response.model arrived as %q, want %q", m, reply)
				}
			}
			if chats != 1 {
				t.Errorf("llm.chat arrived %d times, want once", chats)
			}
		})
	}
}

// turnsOnOneP runs the rest of the test on one P (GOMAXPROCS 1) beside a
// goroutine that counts its turns until the test ends: a call that held
// the P (spinning or waiting on the thread's own stack) leaves the count
// where it was.
func turnsOnOneP(t *testing.T) *atomic.Int64 {
	old := runtime.GOMAXPROCS(1)
	t.Cleanup(func() { runtime.GOMAXPROCS(old) })
	turns := new(atomic.Int64)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				turns.Add(1)
				runtime.Gosched()
			}
		}
	}()
	return turns
}
