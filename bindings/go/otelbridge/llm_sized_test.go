package otelbridge_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"testing"

	spanguard "github.com/spanguard/spanguard/bindings/go"
	"github.com/spanguard/spanguard/bindings/go/internal/otlpreceiver"
	"github.com/spanguard/spanguard/bindings/go/otelbridge"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// llmText is random base64 of n bytes (as an image in a message is): a
// cut, moved or repeated piece cannot pass for the original.
func llmText(t *testing.T, n int) string {
	raw := make([]byte, n*3/4+3)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(raw)[:n]
}

// fingerprint is a value's length and digest: a failure names the size
// that arrived instead of printing megabytes.
func fingerprint(v any) string {
	s, ok := v.(string)
	if !ok {
		return fmt.Sprintf("not a string: %T", v)
	}
	return fmt.Sprintf("%d bytes, sha256 %x", len(s), sha256.Sum256([]byte(s)))
}

// An LLM-sized span (a 4 MB input.value, a 1 MB message, 200 events of
// 20 KB) from the SDK, with the default settings, arrives byte for byte at
// the loopback receiver over OTLP/protobuf with gzip and over OTLP/JSON,
// and through the bridge's TracerProvider, which passes each on as it is set;
// only what the SDK's default event count limit (128) drops is missing,
// counted as the SDK counts it.
func TestAnLLMSizedSpanArrivesWhole(t *testing.T) {
	const mb = 1_000_000
	context4, message := llmText(t, 4*mb), llmText(t, mb)
	events := make([]string, 200)
	for i := range events {
		events[i] = llmText(t, 20_000)
	}
	for _, c := range []struct{ json, wrapped bool }{{false, false}, {true, false}, {false, true}} {
		json := c.json
		t.Run(fmt.Sprintf("json=%v,wrapped=%v", json, c.wrapped), func(t *testing.T) {
			rx := otlpreceiver.Start(t)
			tr := newTracerWith(t, rx.URL, spanguard.Config{ProtocolJSON: json, Gzip: !json})
			bridge := otelbridge.New(tr)
			memory := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(memory), sdktrace.WithSpanProcessor(bridge))
			provider := trace.TracerProvider(tp)
			if c.wrapped {
				// Passed on as set: past the SDK's 128 events, each
				// new one evicts the oldest passed on.
				provider = bridge.TracerProvider(tp)
			}
			_, span := provider.Tracer("openllmetry").Start(context.Background(), "llm.chat")
			span.SetAttributes(attribute.String("input.value", context4),
				attribute.String("llm.input_messages.0.message.content", message))
			for i, e := range events {
				span.AddEvent("gen_ai.content.prompt", trace.WithAttributes(attribute.String("gen_ai.prompt", e), attribute.Int("i", i)))
			}
			span.End()
			got := flushedAlone(t, tp, rx)
			for key, want := range map[string]string{"input.value": context4, "llm.input_messages.0.message.content": message} {
				if g, w := fingerprint(got[0].Attributes[key]), fingerprint(want); g != w {
					t.Errorf("%s: %s arrived, %s sent", key, g, w)
				}
			}
			if len(got[0].Events) != 128 || got[0].DroppedEvents != 72 {
				t.Errorf("%d events and %d dropped arrived: the SDK keeps 128", len(got[0].Events), got[0].DroppedEvents)
			}
			for _, e := range got[0].Events {
				i := fmt.Sprint(e.Attributes["i"])
				var n int
				fmt.Sscan(i, &n)
				if g, w := fingerprint(e.Attributes["gen_ai.prompt"]), fingerprint(events[n]); g != w {
					t.Errorf("event %d: %s arrived, %s sent", n, g, w)
				}
			}
			if !t.Failed() {
				arrivedAsTheSDKKeptThem(t, memory.GetSpans(), rx, bridge)
			}
			if st, _ := tr.Stats(); st.ValuesTruncated != 0 || st.DroppedExportFailed != 0 {
				t.Errorf("%d values cut, %d spans lost", st.ValuesTruncated, st.DroppedExportFailed)
			}
			if err := tp.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}
