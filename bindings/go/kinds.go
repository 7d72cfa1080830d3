//go:build cgo

package spanguard

import (
	"fmt"
	"math"
	"reflect"
	"strings"
)

// What WithKind and SetStatus take, the one rule of every binding:
// spanguard's own constants (KindServer, StatusError: OTLP's numbers), their
// names in any case ("server", "error"), or OpenTelemetry's own
// trace.SpanKind and codes.Code, so that code written against otel-go, or
// moved from the Python or Node binding, passes what it has. codes.Code is
// numbered unlike OTLP (Error 1, Ok 2): converted to uint32 by hand it set
// the opposite status, so it is recognised by its type and mapped. Both are
// recognised by their package path, without importing OpenTelemetry.
// Anything else is the caller's mistake: Start or SetStatus returns an
// *Error with Code INVALID_ARGUMENT, as for a number out of range.

// Kind is a span kind, numbered as in OTLP: the Kind constants. WithSpanKind
// takes one, so that the compiler checks what WithKind checks when the
// span starts. The constants stay untyped (they were before Kind was), so
// that code that keeps one in a uint32 (ForeignSpan.Kind) goes on
// compiling.
type Kind uint32

// StatusCode is a span status code, numbered as in OTLP: StatusUnset,
// StatusOK, StatusError. Span.SetStatusCode takes one: OpenTelemetry's
// codes.Code (numbered otherwise: codes.Error is 1, OTLP's OK) does not
// compile there, where SetStatus maps it when the program runs.
type StatusCode uint32

// String is the kind's name ("server"), as fmt prints it; Kind(n) for a
// number that names none.
func (k Kind) String() string { return kindRule.name(uint32(k), "Kind") }

// String is the status code's name ("error"), as fmt prints it;
// StatusCode(n) for a number that names none.
func (c StatusCode) String() string { return statusRule.name(uint32(c), "StatusCode") }

const (
	otelSpanKindPackage = "go.opentelemetry.io/otel/trace"
	otelCodePackage     = "go.opentelemetry.io/otel/codes"
	// notAKind is what a kind that follows no form of the rule is passed
	// to the library as: out of range, refused there (INVALID_ARGUMENT).
	notAKind = math.MaxUint32
)

// argumentRule is what one kind of argument may be.
type argumentRule struct {
	max   uint32   // the highest constant
	names []string // by constant ("" for one without a name)
	otel  string   // OpenTelemetry's type, as "package path.Name"
	// fromOtel maps the OpenTelemetry type's values to OTLP's; nil when
	// they are OTLP's.
	fromOtel []uint32
	// own is this package's type for it (Kind, StatusCode), as
	// "package path.Name": numbered as OTLP, like a constant.
	own string
}

var (
	kindRule = argumentRule{
		max: KindConsumer,
		names: []string{KindInternal: "internal", KindServer: "server", KindClient: "client",
			KindProducer: "producer", KindConsumer: "consumer"},
		// trace.SpanKind is numbered as OTLP is (Unspecified 0 ... Consumer 5).
		otel: otelSpanKindPackage + ".SpanKind",
		own:  typeName(reflect.TypeFor[Kind]()),
	}
	statusRule = argumentRule{
		max:   StatusError,
		names: []string{StatusUnset: "unset", StatusOK: "ok", StatusError: "error"},
		otel:  otelCodePackage + ".Code",
		// codes.Code: Unset 0, Error 1, Ok 2.
		fromOtel: []uint32{0: StatusUnset, 1: StatusError, 2: StatusOK},
		own:      typeName(reflect.TypeFor[StatusCode]()),
	}
)

// kindOf is the OTLP kind that kind names, and false when it names none.
func kindOf(kind any) (uint32, bool) { return kindRule.of(kind) }

// statusOf is the OTLP status code that code names, and false when it names none.
func statusOf(code any) (uint32, bool) { return statusRule.of(code) }

func (r *argumentRule) of(v any) (uint32, bool) {
	// The common cases first, without reflection: a constant (an untyped
	// one is an int), a uint32 as WithKind and SetStatus took before.
	switch x := v.(type) {
	case int:
		return upTo(int64(x), r.max)
	case uint32:
		return upTo(int64(x), r.max)
	case string:
		return named(x, r.names)
	}
	n, typ, ok := integer(v)
	switch {
	case !ok:
		return 0, false
	case typ == "", typ == r.own, typ == r.otel && r.fromOtel == nil:
		return upTo(n, r.max)
	case typ == r.otel:
		if i, ok := upTo(n, uint32(len(r.fromOtel)-1)); ok {
			return r.fromOtel[i], true
		}
	}
	return 0, false
}

// integer is v's value when v is an integer, and its type's "path.Name"
// when the type is a named one ("" for a built-in such as int64).
func integer(v any) (int64, string, bool) {
	rv := reflect.ValueOf(v)
	var n int64
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n = rv.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u > math.MaxInt64 {
			u = math.MaxInt64 // out of range of any kind or status all the same
		}
		n = int64(u)
	default:
		return 0, "", false
	}
	return n, typeName(rv.Type()), true
}

// typeName is t as "package path.Name", "" for a built-in type.
func typeName(t reflect.Type) string {
	if t.PkgPath() == "" {
		return ""
	}
	return t.PkgPath() + "." + t.Name()
}

// name is the constant n's name, or typ(n) when it has none.
func (r *argumentRule) name(n uint32, typ string) string {
	if n < uint32(len(r.names)) && r.names[n] != "" {
		return r.names[n]
	}
	return fmt.Sprintf("%s(%d)", typ, n)
}

func upTo(n int64, max uint32) (uint32, bool) {
	if n < 0 || n > int64(max) {
		return 0, false
	}
	return uint32(n), true
}

func named(name string, names []string) (uint32, bool) {
	for i, n := range names {
		if n != "" && strings.EqualFold(n, name) {
			return uint32(i), true
		}
	}
	return 0, false
}
