package otelbridge

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"
	"time"
	"weak"

	spanguard "github.com/spanguard/spanguard/bindings/go"
	"github.com/spanguard/spanguard/bindings/go/internal/otlpreceiver"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// SDK spans let go of without their end, most of them refused at their
// start (every slot taken), more than the tombstones a processor keeps:
// once they are collected the bridge keeps no entry for any of them, those
// it began (ended then) nor those refused (which held nothing of
// spanguard's, but an entry each for good), but the last tombstones.
func TestNoEntryOutlivesASpanLetGoOfWithoutItsEnd(t *testing.T) {
	tr, err := spanguard.NewTracer(spanguard.Config{SinkDir: t.TempDir(), MaxOpenSpans: 64, MaxQueueSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	p := New(tr)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(p))
	for range 3 * tombstonesKept {
		tp.Tracer("refused").Start(context.Background(), "let.go")
	}
	if stats, _ := tr.Stats(); stats.DroppedBufferFull == 0 {
		t.Fatalf("no span was refused at its start: %+v", stats)
	}
	open, tombstones := -1, -1
	for deadline := time.Now().Add(5 * time.Second); open != 0 && time.Now().Before(deadline); {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
		open, tombstones = 0, 0
		p.open.Range(func(_, v any) bool {
			if v == endedWhenCollected || v == refusedThenCollected {
				tombstones++
			} else {
				open++
			}
			return true
		})
	}
	if open != 0 || tombstones != tombstonesKept {
		t.Fatalf("%d entries left for spans collected, and %d tombstones, want %d", open, tombstones, tombstonesKept)
	}
}

// holdingOnEnd is a processor whose OnEnd holds the SDK's End, there
// before the bridge's OnEnd, until release is closed: it says it has
// (reached) once it holds the first.
type holdingOnEnd struct {
	reached, release chan struct{}
}

func (h *holdingOnEnd) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (h *holdingOnEnd) OnEnd(sdktrace.ReadOnlySpan)                     { close(h.reached); <-h.release }
func (h *holdingOnEnd) ForceFlush(context.Context) error                { return nil }
func (h *holdingOnEnd) Shutdown(context.Context) error                  { return nil }

// endHeldPastItsCollection starts a span named name on tp (renamed to
// rename before its end, unless "") and ends it on a goroutine of its own
// whose End hold, registered before the bridge, holds until the SDK span
// is collected, then, for 50 collections more, until cleaned says its
// cleanup has run; then it lets go on to the bridge's OnEnd, and returns
// once the End has.
func endHeldPastItsCollection(t *testing.T, tp *sdktrace.TracerProvider, hold *holdingOnEnd,
	name, rename string, cleaned func(spanKey) bool) {
	t.Helper()
	type started struct {
		key     spanKey
		sdkSpan weak.Pointer[byte]
	}
	begun, ended := make(chan started, 1), make(chan struct{})
	go func() {
		defer close(ended)
		_, span := tp.Tracer("held").Start(context.Background(), name)
		sc := span.SpanContext()
		begun <- started{spanKey{sc.TraceID(), sc.SpanID()}, weak.Make(ownStart(span.(sdktrace.ReadWriteSpan)))}
		span.SetAttributes(attribute.String("later", "set"))
		if rename != "" {
			span.SetName(rename)
		}
		span.End() // the last use of the SDK span here
	}()
	s := <-begun
	<-hold.reached
	for deadline := time.Now().Add(10 * time.Second); s.sdkSpan.Value() != nil; {
		if time.Now().After(deadline) {
			close(hold.release)
			t.Fatal("while its End was held, the SDK span was not collected")
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	for range 50 {
		if cleaned(s.key) {
			break
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	close(hold.release)
	<-ended
}

// The SDK's End hands the processors a snapshot, so the SDK span itself
// may be collected before the bridge's OnEnd: held here (by a processor
// before it) past its collection. Its cleanup, on the span, ended it in
// spanguard marked unended, without the attribute set after its start,
// and counted its end in Failures: a span the program ended arrived cut
// (1 of the 20,000 LLM spans of 10,000 goroutines under load lost its
// prompt and events so). The cleanup is on the span's name, which the
// snapshot holds too (anchorName): it waits for the End, and the span
// arrives once, whole.
func TestASpanCollectedWhileItsEndRunsArrivesWhole(t *testing.T) {
	s, p := endHeldAndSent(t, "")
	if s.Name != "held.end" || s.Attributes["later"] != "set" || s.Attributes["spanguard.unended"] != nil {
		t.Errorf("arrived as %+v, want it whole, with what its end added", s)
	}
	if n := p.Failures(); n != 0 {
		t.Errorf("%d failures, want 0", n)
	}
}

// A span renamed since its start (SetName) no longer holds the name its
// cleanup waits on: that cleanup, finding the span alive, waits on the
// span itself, which its End can outrun. It arrives once all the same,
// marked unended as its cleanup ended it, and its end, which the cleanup
// could not wait for, is counted in Failures. OnEnd, finding no entry,
// recorded it again as a span started before the processor was
// registered: it arrived twice (a grace of 250 ms before the cleanup,
// ff6310c, only made it rarer).
func TestARenamedSpanCollectedBeforeItsOnEndArrivesOnce(t *testing.T) {
	s, p := endHeldAndSent(t, "held.renamed")
	if s.Name != "held.end" || s.Attributes["spanguard.unended"] != true {
		t.Errorf("arrived as %+v, want it marked unended by its cleanup", s)
	}
	if n := p.Failures(); n != 1 {
		t.Errorf("%d failures, want 1: the end the cleanup could not wait for", n)
	}
}

// endHeldAndSent ends a span "held.end" (renamed to rename before its end,
// unless "") through a bridge whose OnEnd is held past the SDK span's
// collection (endHeldPastItsCollection), shuts the tracer down and
// returns the span as the receiver got it, once, and the bridge.
func endHeldAndSent(t *testing.T, rename string) (otlpreceiver.Span, *SpanProcessor) {
	t.Helper()
	rx := otlpreceiver.Start(t)
	tr, err := spanguard.NewTracer(spanguard.Config{ServiceName: "held-end", Endpoint: rx.URL,
		SpoolDir: filepath.Join(t.TempDir(), "spool"), ScheduleDelay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	p := New(tr)
	hold := &holdingOnEnd{reached: make(chan struct{}), release: make(chan struct{})}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(hold), sdktrace.WithSpanProcessor(p))
	endHeldPastItsCollection(t, tp, hold, "held.end", rename, func(spanKey) bool {
		stats, err := tr.Stats()
		return err == nil && stats.SpansOpen == 0 // ended in spanguard by its cleanup
	})
	if ok, err := tr.Shutdown(10 * time.Second); !ok || err != nil {
		t.Fatal(ok, err)
	}
	arrived := rx.Spans(t)
	if len(arrived) != 1 {
		t.Fatalf("the span arrived %d times: %+v", len(arrived), arrived)
	}
	return arrived[0], p
}

// The same with a span spanguard refused at its start (counted then): its
// OnEnd, after its cleanup, leaves it. It began it again, refused and
// counted a second time (with slots free by then, it would have arrived).
func TestASpanRefusedAtItsStartAndCollectedBeforeItsOnEndIsCountedOnce(t *testing.T) {
	tr, err := spanguard.NewTracer(spanguard.Config{SinkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	tr.Close() // refuses every span
	p := New(tr)
	hold := &holdingOnEnd{reached: make(chan struct{}), release: make(chan struct{})}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(hold), sdktrace.WithSpanProcessor(p))
	var refused uint64
	endHeldPastItsCollection(t, tp, hold, "held.end", "", func(key spanKey) bool {
		refused = p.Failures() // its resource's and its own refusal
		v, _ := p.open.Load(key)
		return v != refusedAtStart
	})
	if n := p.Failures(); n != refused || n == 0 {
		t.Errorf("%d failures, want %d: counted at its start only", n, refused)
	}
}
