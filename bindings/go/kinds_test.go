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
