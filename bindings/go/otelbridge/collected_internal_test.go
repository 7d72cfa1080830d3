package otelbridge

import (
	"context"
	"runtime"
	"testing"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// SDK spans let go of without their end, most of them refused at their
// start (every slot taken): once they are collected the bridge keeps no
// entry for any of them, those it began (ended then) nor those refused
// (which held nothing of spanguard's, but an entry each for good).
func TestNoEntryOutlivesASpanLetGoOfWithoutItsEnd(t *testing.T) {
	tr, err := spanguard.NewTracer(spanguard.Config{SinkDir: t.TempDir(), MaxOpenSpans: 64, MaxQueueSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	p := New(tr)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(p))
	for range 1000 {
		tp.Tracer("refused").Start(context.Background(), "let.go")
	}
	if stats, _ := tr.Stats(); stats.DroppedBufferFull == 0 {
		t.Fatalf("no span was refused at its start: %+v", stats)
	}
	entries := -1
	for deadline := time.Now().Add(5 * time.Second); entries != 0 && time.Now().Before(deadline); {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
		entries = 0
		p.open.Range(func(_, _ any) bool { entries++; return true })
	}
	if entries != 0 {
		t.Fatalf("%d entries left for spans collected", entries)
	}
}
