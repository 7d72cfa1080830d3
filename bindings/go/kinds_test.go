package spanguard_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	spanguard "github.com/spanguard/spanguard/bindings/go"
)

// The one rule of every binding: a kind or a status is a constant, its name
// in any case, or (otelbridge's tests) OpenTelemetry's own. Names did not
// compile here before, as in no binding but Node's.
func TestAKindAndAStatusAreTakenAsConstantsOrNames(t *testing.T) {
	tr, sink := newTracer(t)
	ctx := context.Background()
	var asUint32 uint32 = spanguard.KindProducer
	for _, c := range []struct {
		name   string
		kind   any
		status any
	}{
		{"const", spanguard.KindServer, spanguard.StatusError},
		{"uint32", asUint32, uint32(spanguard.StatusOK)},
		{"int64", int64(spanguard.KindConsumer), int8(spanguard.StatusUnset)},
		{"name", "client", "error"},
		{"upper", "CONSUMER", "OK"},
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
	got := map[string][2]int{}
	for name, s := range spansByName(t, tr, sink) {
		got[name] = [2]int{s.Kind, s.Status.Code}
	}
	want := map[string][2]int{ // OTLP's numbers
		"const": {2, 2}, "uint32": {4, 1}, "int64": {5, 0}, "name": {3, 2}, "upper": {5, 1},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("kind and status code by span: %v, want %v", got, want)
	}
}

// Anything else is the caller's mistake, answered as for a number out of
// range: an *Error with Code INVALID_ARGUMENT, nothing begun or set.
func TestAKindOrStatusInNoFormOfTheRuleIsAnError(t *testing.T) {
	tr, _ := newTracer(t)
	ctx := context.Background()
	type myKind int
	invalid := func(err error) bool {
		var e *spanguard.Error
		return errors.As(err, &e) && e.Code == 2 // SPANGUARD_RESULT_INVALID_ARGUMENT
	}
	for _, kind := range []any{6, -1, uint64(1 << 63), "sideways", "unspecified", "", 1.5, nil, true,
		myKind(spanguard.KindServer), []int{2}} {
		if _, _, err := tr.Start(ctx, "never", spanguard.WithKind(kind)); !invalid(err) {
			t.Errorf("WithKind(%#v): %v, want INVALID_ARGUMENT", kind, err)
		}
	}
	_, span, _ := tr.Start(ctx, "odd")
	for _, status := range []any{3, -1, "broken", "errors", 1.5, nil, false, myKind(1)} {
		if err := span.SetStatus(status, ""); !invalid(err) {
			t.Errorf("SetStatus(%#v): %v, want INVALID_ARGUMENT", status, err)
		}
	}
	span.End()
	if st, _ := tr.Stats(); st.SpansBegun != 1 {
		t.Fatalf("%d spans begun, want 1 (odd)", st.SpansBegun)
	}
}

// The typed forms: WithSpanKind takes a Kind and SetStatusCode a
// StatusCode, as a constant converts to them, so that a string or
// OpenTelemetry's codes.Code (numbered otherwise) is a compile error
// there rather than an error when the span starts; a Kind or StatusCode
// given to WithKind or SetStatus is taken too, and one given for the
// other is refused. The untyped constants still go where a uint32 goes.
func TestAKindAndAStatusCodeCanBeTyped(t *testing.T) {
	tr, sink := newTracer(t)
	ctx := context.Background()
	var kind spanguard.Kind = spanguard.KindProducer
	var code spanguard.StatusCode = spanguard.StatusError
	var asUint32 uint32 = spanguard.KindClient // untyped still
	_ = asUint32
	_, typed, err := tr.Start(ctx, "typed", spanguard.WithSpanKind(spanguard.KindServer))
	if err != nil {
		t.Fatal(err)
	}
	if err := typed.SetStatusCode(code, "why"); err != nil {
		t.Fatal(err)
	}
	typed.End()
	_, viaAny, err := tr.Start(ctx, "via any", spanguard.WithKind(kind))
	if err != nil {
		t.Fatal(err)
	}
	if err := viaAny.SetStatus(spanguard.StatusCode(spanguard.StatusOK), ""); err != nil {
		t.Fatal(err)
	}
	invalid := func(err error) bool {
		var e *spanguard.Error
		return errors.As(err, &e) && e.Code == 2 // SPANGUARD_RESULT_INVALID_ARGUMENT
	}
	if err := viaAny.SetStatus(spanguard.Kind(1), ""); !invalid(err) {
		t.Errorf("SetStatus(a Kind): %v, want INVALID_ARGUMENT", err)
	}
	if err := viaAny.SetStatusCode(3, ""); !invalid(err) {
		t.Errorf("SetStatusCode(3): %v, want INVALID_ARGUMENT", err)
	}
	viaAny.End()
	if _, _, err := tr.Start(ctx, "never", spanguard.WithKind(spanguard.StatusCode(1))); !invalid(err) {
		t.Errorf("WithKind(a StatusCode): %v, want INVALID_ARGUMENT", err)
	}
	if _, _, err := tr.Start(ctx, "never", spanguard.WithSpanKind(6)); !invalid(err) {
		t.Errorf("WithSpanKind(6): %v, want INVALID_ARGUMENT", err)
	}
	got := map[string][2]int{}
	for name, s := range spansByName(t, tr, sink) {
		got[name] = [2]int{s.Kind, s.Status.Code}
	}
	want := map[string][2]int{"typed": {2, 2}, "via any": {4, 1}} // OTLP's numbers
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("kind and status code by span: %v, want %v", got, want)
	}
	if s := fmt.Sprint(kind, spanguard.Kind(9), code, spanguard.StatusCode(7)); s != "producer Kind(9) error StatusCode(7)" {
		t.Fatalf("printed as %q", s)
	}
}
