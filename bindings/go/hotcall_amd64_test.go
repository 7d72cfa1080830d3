//go:build amd64 && !spanguard_cgocall

package spanguard

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The hot calls run on a C stack of their own per thread (hotcall.c): the
// deepest of them (an LLM-sized span begun with its attributes, more set
// later past the count limit, a child, on a new tracer) must leave it most
// of its room.
func TestHotCallsUseLittleOfTheirStack(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	dir := t.TempDir()
	tr, err := NewTracer(Config{Endpoint: "discard:", SinkDir: filepath.Join(dir, "sink"), SpoolDir: filepath.Join(dir, "spool")})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	prompt := strings.Repeat("a prompt of many kilobytes ", 4000)
	var many []Attribute
	for i := 0; i < maxAttributesPerCall; i++ {
		many = append(many, Int(strings.Repeat("k", i+1), i))
	}
	ctx, s, err := tr.Start(context.Background(), "llm.chat", WithAttributes(String("gen_ai.prompt", prompt), Bool("stream", true)))
	if err != nil {
		t.Fatal(err)
	}
	_ = s.SetAttributes(many...) // two past the count limit: dropped, counted
	_, c, _ := tr.Start(ctx, "child")
	c.End()
	s.End()
	used, size := hotStackUse()
	if size == 0 {
		t.Fatal("this thread made hot calls but has no C stack")
	}
	t.Logf("hot calls used %d of %d bytes of their stack", used, size)
	if used == 0 || used > size/4 {
		t.Fatalf("hot calls used %d of %d bytes of their stack", used, size)
	}
}

// Many goroutines on few threads, with the collector running and
// goroutines preempted throughout: every span begun is ended and exported,
// whichever thread each call ran on.
func TestHotCallsUnderGCAndPreemption(t *testing.T) {
	dir := t.TempDir()
	tr, err := NewTracer(Config{Endpoint: "discard:", SinkDir: filepath.Join(dir, "sink"), SpoolDir: filepath.Join(dir, "spool"),
		MaxQueueSize: 1 << 14})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	stop := make(chan struct{})
	collected := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				collected <- n
				return
			default:
				runtime.GC()
				n++
			}
		}
	}()
	const goroutines, spans = 16, 2000
	done := make(chan []byte, goroutines)
	for g := 0; g < goroutines; g++ {
		go func() {
			var garbage []byte
			for i := 0; i < spans; i++ {
				ctx, s, err := tr.Start(context.Background(), "work", WithAttributes(Int("i", i)))
				if err != nil {
					t.Error(err)
					break
				}
				garbage = make([]byte, 64+i%512) // keeps the collector busy
				_, c, _ := tr.Start(ctx, "child")
				if err := c.SetAttributes(String("m", "gpt-4o"), Bool("stream", true)); err != nil {
					t.Error(err)
				}
				c.End()
				s.End()
			}
			done <- garbage
		}()
	}
	for g := 0; g < goroutines; g++ {
		<-done
	}
	close(stop)
	t.Logf("%d collections meanwhile", <-collected)
	if ok, err := tr.Flush(30 * time.Second); !ok || err != nil {
		t.Fatalf("flush: %v %v", ok, err)
	}
	st, err := tr.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := uint64(goroutines * spans * 2)
	if st.SpansBegun != want || st.SpansEnded != want || st.SpansExported != want {
		t.Fatalf("begun %d, ended %d, exported %d; want %d each", st.SpansBegun, st.SpansEnded, st.SpansExported, want)
	}
}
