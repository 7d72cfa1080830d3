package otelbridge_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
	"github.com/spanguard/spanguard/bindings/go/internal/otlpreceiver"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Code written against otel-go passes its own trace.SpanKind and codes.Code
// to spanguard's Start and SetStatus as they are. codes.Code is numbered
// unlike OTLP (Error 1, Ok 2): converted by hand, uint32(codes.Error) set
// status OK; and neither type compiled without the conversion.
func TestOpenTelemetrysSpanKindAndCodeMeanWhatTheySay(t *testing.T) {
	rx := otlpreceiver.Start(t)
	tr := newTracer(t, rx.URL)
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		kind   trace.SpanKind
		status codes.Code
	}{
		{"server.error", trace.SpanKindServer, codes.Error},
		{"client.ok", trace.SpanKindClient, codes.Ok},
		{"consumer.unset", trace.SpanKindConsumer, codes.Unset},
		{"internal.error", trace.SpanKindInternal, codes.Error},
	} {
		_, span, err := tr.Start(ctx, c.name, spanguard.WithKind(c.kind))
		if err != nil {
			t.Fatalf("%s: Start: %v", c.name, err)
		}
		if err := span.SetStatus(c.status, "why"); err != nil {
			t.Fatalf("%s: SetStatus: %v", c.name, err)
		}
		span.End()
	}
	var e *spanguard.Error
	_, span, _ := tr.Start(ctx, "odd")
	if err := span.SetStatus(codes.Code(3), ""); !errors.As(err, &e) || e.Code != 2 {
		t.Fatalf("SetStatus(codes.Code(3)): %v, want INVALID_ARGUMENT", err)
	}
	if _, _, err := tr.Start(ctx, "never", spanguard.WithKind(trace.SpanKind(6))); !errors.As(err, &e) || e.Code != 2 {
		t.Fatalf("WithKind(trace.SpanKind(6)): %v, want INVALID_ARGUMENT", err)
	}
	span.End()
	if ok, err := tr.Flush(10 * time.Second); !ok || err != nil {
		t.Fatalf("flush: %v %v", ok, err)
	}
	got := map[string][2]int{}
	for _, s := range rx.WaitFor(t, 5) {
		got[s.Name] = [2]int{s.Kind, s.StatusCode}
	}
	want := map[string][2]int{ // OTLP's numbers: SERVER 2, CLIENT 3, CONSUMER 5; OK 1, ERROR 2
		"server.error": {2, 2}, "client.ok": {3, 1}, "consumer.unset": {5, 0}, "internal.error": {1, 2}, "odd": {1, 0},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("kind and status code by span: %v, want %v", got, want)
	}
}
