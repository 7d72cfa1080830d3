// Package spancheck compares the spans an OTLP receiver got with the ones
// the OpenTelemetry SDK ended, field by field: the bridge's tests and
// those that need otelhttp or a newer otel (a module of their own,
// internal/newertest, so that neither is a requirement of the bridge's
// module) share it.
package spancheck

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/spanguard/spanguard/bindings/go/internal/otlpreceiver"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// Expected is OpenTelemetry attributes as the receiver reports what
// spanguard exported (JSON numbers as json.Number, slices as arrays, byte
// slices as {"bytes": hex}): what the SDK's own OTLP exporter sends.
func Expected(kvs []attribute.KeyValue) map[string]any {
	out := map[string]any{}
	for _, kv := range kvs {
		out[string(kv.Key)] = ExpectedValue(kv.Value)
	}
	return out
}

func ExpectedValue(v attribute.Value) any {
	number := func(v any) json.Number {
		if f, ok := v.(float64); ok {
			return json.Number(strconv.FormatFloat(f, 'f', -1, 64))
		}
		return json.Number(fmt.Sprint(v))
	}
	switch v.Type() {
	case attribute.BOOL:
		return v.AsBool()
	case attribute.INT64, attribute.FLOAT64:
		return number(v.AsInterface())
	case attribute.STRING:
		return v.AsString()
	case attribute.BOOLSLICE:
		return toAny(v.AsBoolSlice(), func(b bool) any { return b })
	case attribute.INT64SLICE:
		return toAny(v.AsInt64Slice(), func(i int64) any { return number(i) })
	case attribute.FLOAT64SLICE:
		return toAny(v.AsFloat64Slice(), func(f float64) any { return number(f) })
	case attribute.STRINGSLICE:
		return toAny(v.AsStringSlice(), func(s string) any { return s })
	case attribute.BYTESLICE:
		return map[string]any{"bytes": hex.EncodeToString(v.AsByteSlice())}
	case attribute.SLICE:
		return toAny(v.AsSlice(), ExpectedValue)
	case attribute.MAP:
		out := map[string]any{}
		for _, kv := range v.AsMap() {
			out[string(kv.Key)] = ExpectedValue(kv.Value)
		}
		return out
	}
	return nil // EMPTY
}

func toAny[T any](v []T, f func(T) any) []any {
	out := make([]any, 0, len(v))
	for _, e := range v {
		out = append(out, f(e))
	}
	return out
}

func Nanos(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) }

// AssertSameSpans: every span the SDK ended arrived once, with the same
// ids, parent, name, kind, times, scope, attributes, events, links, status.
func AssertSameSpans(t *testing.T, sdk tracetest.SpanStubs, arrived []otlpreceiver.Span) {
	t.Helper()
	byID := map[string]otlpreceiver.Span{}
	for _, s := range arrived {
		if _, twice := byID[s.SpanID]; twice {
			t.Errorf("span %s %s arrived twice", s.Name, s.SpanID)
		}
		byID[s.SpanID] = s
	}
	for _, o := range sdk {
		got, ok := byID[o.SpanContext.SpanID().String()]
		if !ok {
			t.Errorf("the SDK span %s did not arrive", o.Name)
			continue
		}
		check := func(what string, a, b any) {
			if fmt.Sprint(a) != fmt.Sprint(b) {
				t.Errorf("span %s: %s: arrived %v, the SDK had %v", o.Name, what, a, b)
			}
		}
		parent := ""
		if o.Parent.IsValid() {
			parent = o.Parent.SpanID().String()
		}
		check("trace id", got.TraceID, o.SpanContext.TraceID().String())
		check("parent", got.ParentSpanID, parent)
		check("name", got.Name, o.Name)
		check("kind", got.Kind, int(o.SpanKind))
		check("start", got.Start, Nanos(o.StartTime))
		check("end", got.End, Nanos(o.EndTime))
		check("scope", got.Scope+" "+got.ScopeVersion, o.InstrumentationScope.Name+" "+o.InstrumentationScope.Version)
		check("scope schema URL", got.ScopeSchemaURL, o.InstrumentationScope.SchemaURL)
		check("attributes", got.Attributes, Expected(o.Attributes))
		SameEventsAndLinks(check, o, got)
		wantCode, wantMsg := 0, ""
		switch o.Status.Code {
		case codes.Ok:
			wantCode = 1
		case codes.Error:
			wantCode, wantMsg = 2, o.Status.Description
		}
		check("status", fmt.Sprint(got.StatusCode, got.StatusMsg), fmt.Sprint(wantCode, wantMsg))
	}
	if len(arrived) != len(sdk) {
		t.Errorf("%d spans arrived, the SDK ended %d", len(arrived), len(sdk))
	}
}

// SameEventsAndLinks checks (with check) that what arrived holds the SDK
// span's events and links, in order, and its dropped counts.
func SameEventsAndLinks(check func(what string, a, b any), o tracetest.SpanStub, got otlpreceiver.Span) {
	var events, wantEvents []string
	for _, e := range got.Events {
		events = append(events, fmt.Sprintf("%s %s %v", e.Name, e.Time, e.Attributes))
	}
	for _, e := range o.Events {
		wantEvents = append(wantEvents, fmt.Sprintf("%s %s %v", e.Name, Nanos(e.Time), Expected(e.Attributes)))
	}
	check("events", events, wantEvents)
	var links, wantLinks []string
	for _, l := range got.Links {
		links = append(links, fmt.Sprintf("%s %s %q %v", l.TraceID, l.SpanID, l.TraceState, l.Attributes))
	}
	for _, l := range o.Links {
		wantLinks = append(wantLinks, fmt.Sprintf("%s %s %q %v", l.SpanContext.TraceID(), l.SpanContext.SpanID(),
			l.SpanContext.TraceState().String(), Expected(l.Attributes)))
	}
	check("links", links, wantLinks)
	check("dropped counts", fmt.Sprint(got.Dropped, got.DroppedEvents, got.DroppedLinks),
		fmt.Sprint(o.DroppedAttributes, o.DroppedEvents, o.DroppedLinks))
}

// ArrivedAsTheSDKKeptThem checks that the spans the receiver got are the
// SDK's own, field by field (AssertSameSpans), and that the bridge (a
// SpanProcessor or a SpanExporter) failed at nothing.
func ArrivedAsTheSDKKeptThem(t *testing.T, sdk tracetest.SpanStubs, rx *otlpreceiver.Receiver,
	bridge interface{ Failures() uint64 }) {
	t.Helper()
	AssertSameSpans(t, sdk, rx.WaitFor(t, len(sdk)))
	if n := bridge.Failures(); n != 0 {
		t.Fatalf("%d failures", n)
	}
}
