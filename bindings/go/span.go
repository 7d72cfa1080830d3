package spanguard

/*
#cgo noescape spanguard_span_ids
#cgo nocallback spanguard_span_ids
#include <stdlib.h>
#include "spanguard.h"
#include "hotcall.h"
*/
import "C"

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"time"
	"unsafe"
)

// Span is a started span: a small value, copied freely. End it exactly
// once (`defer span.End()`). The zero Span records nothing: its calls
// succeed and do nothing, so the Span a failed Start returns is safe to use.
type Span struct {
	t      *Tracer
	handle C.spanguard_span
	// The span's context from its begin, in every copy: once the span has
	// ended and been exported its handle names nothing, and this is what
	// still parents its children (OpenTelemetry: "it MUST still be
	// possible to use an ended span as parent") and gives its traceparent.
	// A value, not a pointer: a Span pointing at memory would move the
	// context Start returns to the heap.
	ids C.spanguard_span_context
}

// spanContext is the context carrying a span: its parent's, plus the span.
type spanContext struct {
	context.Context
	span Span
}

func (c *spanContext) Value(key any) any {
	if _, ok := key.(spanKey); ok {
		// A pointer into the context: converting the Span itself to `any`
		// would allocate.
		return &c.span
	}
	return c.Context.Value(key)
}

type spanKey struct{}

// SpanFromContext returns the span that Start put in ctx, or the zero Span.
func SpanFromContext(ctx context.Context) Span {
	if c, ok := ctx.(*spanContext); ok {
		return c.span
	}
	if ctx == nil {
		// As OpenTelemetry's SpanFromContext takes a nil context.
		return Span{}
	}
	if s, ok := ctx.Value(spanKey{}).(*Span); ok {
		return *s
	}
	return Span{}
}

// ContextWithSpan returns a context carrying s, for Start's children.
func ContextWithSpan(ctx context.Context, s Span) context.Context {
	return &spanContext{Context: ctx, span: s}
}

// Attribute is a typed key/value: a string, int64, float64 or bool
// (String, Int, Int64, Float64, Bool), a byte string (Bytes), or an array
// of strings, int64s, float64s or bools (Strings, Int64s, Float64s,
// Bools), OpenTelemetry's value types. An array or bytes Attribute refers
// to the caller's slice, which is read (copied) when the attribute is set.
type Attribute struct {
	Key  string
	kind uint32
	str  string
	num  int64          // an int, a bool (0/1), a float64's bits, or an array's length
	ptr  unsafe.Pointer // an array's or byte string's first element
}

func String(k, v string) Attribute { return Attribute{Key: k, kind: C.SPANGUARD_VALUE_STRING, str: v} }
func Int(k string, v int) Attribute {
	return Attribute{Key: k, kind: C.SPANGUARD_VALUE_INT, num: int64(v)}
}
func Int64(k string, v int64) Attribute {
	return Attribute{Key: k, kind: C.SPANGUARD_VALUE_INT, num: v}
}
func Float64(k string, v float64) Attribute {
	return Attribute{Key: k, kind: C.SPANGUARD_VALUE_DOUBLE, num: int64(math.Float64bits(v))}
}
func Bool(k string, v bool) Attribute {
	a := Attribute{Key: k, kind: C.SPANGUARD_VALUE_BOOL}
	if v {
		a.num = 1
	}
	return a
}

// Bytes is a byte string (OTLP bytes_value).
func Bytes(k string, v []byte) Attribute {
	return Attribute{Key: k, kind: C.SPANGUARD_VALUE_BYTES, num: int64(len(v)), ptr: unsafe.Pointer(unsafe.SliceData(v))}
}

// Strings is an array of strings.
func Strings(k string, v []string) Attribute {
	return Attribute{Key: k, kind: C.SPANGUARD_VALUE_STRING_ARRAY, num: int64(len(v)), ptr: unsafe.Pointer(unsafe.SliceData(v))}
}

// Int64s is an array of int64s.
func Int64s(k string, v []int64) Attribute {
	return Attribute{Key: k, kind: C.SPANGUARD_VALUE_INT_ARRAY, num: int64(len(v)), ptr: unsafe.Pointer(unsafe.SliceData(v))}
}

// Float64s is an array of float64s.
func Float64s(k string, v []float64) Attribute {
	return Attribute{Key: k, kind: C.SPANGUARD_VALUE_DOUBLE_ARRAY, num: int64(len(v)), ptr: unsafe.Pointer(unsafe.SliceData(v))}
}

// Bools is an array of bools.
func Bools(k string, v []bool) Attribute {
	return Attribute{Key: k, kind: C.SPANGUARD_VALUE_BOOL_ARRAY, num: int64(len(v)), ptr: unsafe.Pointer(unsafe.SliceData(v))}
}

// inline says whether the attribute's value fits the packed buffer
// (strings and scalars); bytes and arrays go through an attribute array.
func (a *Attribute) inline() bool { return a.kind <= C.SPANGUARD_VALUE_BOOL }

// strings is the slice a Strings Attribute refers to.
func (a *Attribute) strings() []string { return unsafe.Slice((*string)(a.ptr), a.num) }

// elementSize is the size of one element of an array or bytes value.
func (a *Attribute) elementSize() uintptr {
	switch a.kind {
	case C.SPANGUARD_VALUE_STRING_ARRAY:
		return unsafe.Sizeof(C.spanguard_string{})
	case C.SPANGUARD_VALUE_INT_ARRAY, C.SPANGUARD_VALUE_DOUBLE_ARRAY:
		return 8
	}
	return 1 // bytes, bools
}

// StartOption configures Start. Options are plain values, so passing them
// allocates nothing.
type StartOption struct {
	apply       uint8
	kind        uint32
	attrs       []Attribute
	traceparent string
}

const (
	optKind = iota + 1
	optAttributes
	optRemoteParent
	optRoot
)

// WithKind sets the span kind (KindInternal by default): KindServer and the
// other Kind constants, a name in any case ("server"), or OpenTelemetry's
// trace.SpanKind (trace.SpanKindServer). Anything else makes Start return
// an *Error with Code INVALID_ARGUMENT (see kinds.go).
func WithKind(kind any) StartOption {
	k, ok := kindOf(kind)
	if !ok {
		k = notAKind
	}
	return StartOption{apply: optKind, kind: k}
}

// WithSpanKind is WithKind for a Kind (KindServer, ...): typed, so that a
// value of another type (a string, OpenTelemetry's trace.SpanKind: give
// those to WithKind) does not compile. A number past KindConsumer makes
// Start return an *Error with Code INVALID_ARGUMENT.
func WithSpanKind(kind Kind) StartOption {
	k, ok := upTo(int64(kind), KindConsumer)
	if !ok {
		k = notAKind
	}
	return StartOption{apply: optKind, kind: k}
}

// WithAttributes sets attributes at start.
func WithAttributes(a ...Attribute) StartOption { return StartOption{apply: optAttributes, attrs: a} }

// WithRemoteParent continues the trace of a W3C traceparent from another
// process. A traceparent that is not valid W3C text is ignored, as
// OpenTelemetry's propagators ignore it: the span is a child of the span in
// ctx, or begins a new trace.
func WithRemoteParent(traceparent string) StartOption {
	return StartOption{apply: optRemoteParent, traceparent: traceparent}
}

// AsRoot starts a new trace even when ctx carries a span.
func AsRoot() StartOption { return StartOption{apply: optRoot} }

// Start begins a span, a child of the span in ctx (if any), and returns a
// context carrying it. Small enough to be inlined, so that the context is
// on the caller's stack, not the heap, when the caller drops it: a plain
// begin + end allocates nothing.
func (t *Tracer) Start(ctx context.Context, name string, opts ...StartOption) (context.Context, Span, error) {
	c := new(spanContext)
	s, err := t.begin(c, ctx, name, opts)
	return c, s, err
}

// begin begins a child of the span in ctx and makes c carry it. When
// it fails, c carries that parent instead, so the context Start returns
// parents children as ctx would have; the Span returned is then the zero one.
func (t *Tracer) begin(c *spanContext, ctx context.Context, name string, opts []StartOption) (Span, error) {
	if ctx == nil {
		// As OpenTelemetry's Tracer.Start takes a nil context: no parent.
		ctx = context.Background()
	}
	c.Context = ctx
	kind, root := uint32(KindInternal), false
	var attrs []Attribute
	var traceparent string
	for i := range opts {
		switch opts[i].apply {
		case optKind:
			kind = opts[i].kind
		case optAttributes:
			attrs = opts[i].attrs
		case optRemoteParent:
			traceparent = opts[i].traceparent
		case optRoot:
			root = true
		}
	}
	ptr, err := t.live()
	if err != nil {
		c.span = SpanFromContext(c.Context)
		return Span{}, err
	}
	span := Span{t: t}
	n, nl := cstr(name)
	var rc C.spanguard_result
	if traceparent != "" {
		tp, tl := cstr(traceparent)
		rc = C.spanguard_span_begin_remote(ptr, n, nl, tp, tl, C.uint32_t(kind), &span.handle)
		runtime.KeepAlive(traceparent)
		if rc == C.SPANGUARD_RESULT_INVALID_TRACEPARENT {
			// A bad header from outside (a client's, upper case, all-zero
			// ids, garbage) is ignored, as OpenTelemetry's propagators and
			// W3C Trace Context ignore it: the span begins as if none was
			// given, never lost to it.
			traceparent = ""
		}
	}
	if traceparent == "" {
		// Field by field: a composite literal was built aside and copied.
		var a C.spanguard_go_begin_args
		a.tracer, a.name, a.name_len, a.kind = ptr, n, nl, C.uint32_t(kind)
		a.parent = C.SPANGUARD_SPAN_NONE
		if !root {
			// Another tracer's span, or one exported already, parents by
			// the context it kept.
			p := SpanFromContext(c.Context)
			if p.t == t {
				a.parent = p.handle
			}
			a.parent_context = p.ids
		}
		if len(attrs) > 0 && len(attrs) <= maxAttributesPerCall && beginPacked(&a, attrs) {
			attrs = nil
		} else {
			callBegin(&a)
		}
		span.handle, span.ids, rc = a.out, a.out_context, a.result
	}
	runtime.KeepAlive(t)
	runtime.KeepAlive(name)
	if err := check(rc, "span_begin"); err != nil {
		c.span = SpanFromContext(c.Context)
		return Span{}, err
	}
	if traceparent != "" {
		span.keepIDs()
	}
	c.span = span
	if len(attrs) > 0 {
		return span, span.SetAttributes(attrs...)
	}
	return span, nil
}

// beginPacked begins a span with attrs packed into the begin call: one cgo
// crossing for the span and its attributes, not two (Start with
// WithAttributes, what instrumentations do). false (nothing begun) when an
// attribute does not pack. Apart from begin, so that a Start without
// attributes does not clear the buffer.
func beginPacked(a *C.spanguard_go_begin_args, attrs []Attribute) bool {
	var stack [packedStack]byte
	buf, packed := packAttributes(stack[:0], attrs)
	if !packed {
		return false
	}
	// A copy that points at the buffer: *a pointing at it would move the
	// buffer to the heap.
	b := *a
	b.packed, b.packed_len = (*C.uint8_t)(unsafe.Pointer(&buf[0])), C.size_t(len(buf))
	callBegin(&b)
	a.out, a.out_context, a.result = b.out, b.out_context, b.result
	return true
}

// keepIDs reads the span's context into s.ids (spans begun through cgo).
func (s *Span) keepIDs() {
	var flags C.uint8_t
	C.spanguard_span_ids(s.handle, &s.ids.trace_id[0], &s.ids.span_id[0], &flags)
	s.ids.trace_flags = flags
}

// packedStack is what SetAttributes packs on the stack; more goes to the heap.
const packedStack = 512

// maxAttributesPerCall is the most attributes one call takes
// (SPANGUARD_MAX_ATTRIBUTES); more go in as many calls as needed.
const maxAttributesPerCall = C.SPANGUARD_MAX_ATTRIBUTES

// packAttributes appends attrs to buf in the layout of
// spanguard_span_set_attributes_packed; false when one of them is bytes
// or an array, which that layout does not carry.
func packAttributes(buf []byte, attrs []Attribute) ([]byte, bool) {
	for i := range attrs {
		a := &attrs[i]
		if !a.inline() {
			return buf, false
		}
		buf = append(buf, byte(a.kind))
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(a.Key)))
		buf = append(buf, a.Key...)
		switch a.kind {
		case C.SPANGUARD_VALUE_STRING:
			buf = binary.LittleEndian.AppendUint32(buf, uint32(len(a.str)))
			buf = append(buf, a.str...)
		case C.SPANGUARD_VALUE_INT, C.SPANGUARD_VALUE_DOUBLE:
			buf = binary.LittleEndian.AppendUint64(buf, uint64(a.num))
		case C.SPANGUARD_VALUE_BOOL:
			buf = append(buf, byte(a.num))
		}
	}
	return buf, true
}

// SetAttributes sets typed attributes (a key set again gets the new value),
// in one call into the library per 128 attributes. Every attribute that
// fits is set; an error says some did not.
func (s Span) SetAttributes(attrs ...Attribute) error {
	if len(attrs) == 0 {
		return nil
	}
	var earlier error
	for len(attrs) > maxAttributesPerCall {
		earlier = errors.Join(earlier, s.setAttributes(attrs[:maxAttributesPerCall]))
		attrs = attrs[maxAttributesPerCall:]
	}
	err := s.setAttributes(attrs)
	if earlier == nil {
		return err
	}
	return errors.Join(earlier, err)
}

// setAttributes sets at most maxAttributesPerCall attributes in one call:
// packed into a flat buffer (strings and scalars, the common case: no
// allocation), else copied into C memory as an attribute array.
func (s Span) setAttributes(attrs []Attribute) error {
	var stack [packedStack]byte
	buf, packed := packAttributes(stack[:0], attrs)
	if packed {
		a := C.spanguard_go_span_args{span: s.handle, packed: (*C.uint8_t)(unsafe.Pointer(&buf[0])), packed_len: C.size_t(len(buf))}
		callSetPacked(&a)
		runtime.KeepAlive(s.t) // see Tracer
		return check(a.result, "set_attributes")
	}
	arr, block := cAttributes(attrs)
	defer C.free(block)
	rc := C.spanguard_span_set_attributes(s.handle, arr, C.size_t(len(attrs)))
	runtime.KeepAlive(s.t)
	return check(rc, "set_attributes")
}

// cAttributes copies attrs into C memory (a spanguard_attribute array, its
// text and the elements of its arrays, in one block), for calls that take
// the array: cgo lets no Go pointer sit in memory passed to C. C.free
// the block (NULL for none) after the call.
func cAttributes(attrs []Attribute) (arr *C.spanguard_attribute, block unsafe.Pointer) {
	if len(attrs) == 0 {
		return nil, nil
	}
	size := unsafe.Sizeof(C.spanguard_attribute{})
	// The block: the attribute array, then each value's data, 8-aligned.
	total := size * uintptr(len(attrs))
	for i := range attrs {
		a := &attrs[i]
		total += uintptr(len(a.Key)) + uintptr(len(a.str))
		if !a.inline() {
			total = alignUp(total, 8) + a.elementSize()*uintptr(a.num)
			if a.kind == C.SPANGUARD_VALUE_STRING_ARRAY {
				for _, e := range a.strings() {
					total += uintptr(len(e))
				}
			}
		}
	}
	block = C.malloc(C.size_t(total) + 1)
	items := unsafe.Slice((*C.spanguard_attribute)(block), len(attrs))
	mem := unsafe.Slice((*byte)(block), total+1)
	at := size * uintptr(len(attrs))
	place := func(b []byte) unsafe.Pointer {
		p := unsafe.Pointer(&mem[at])
		at += uintptr(copy(mem[at:], b))
		return p
	}
	placeText := func(s string) (*C.char, C.size_t) {
		p := (*C.char)(unsafe.Pointer(&mem[at]))
		at += uintptr(copy(mem[at:], s))
		return p, C.size_t(len(s))
	}
	for i := range attrs {
		a, c := &attrs[i], &items[i]
		*c = C.spanguard_attribute{}
		c.key, c.key_len = placeText(a.Key)
		c.type_ = C.uint32_t(a.kind)
		switch a.kind {
		case C.SPANGUARD_VALUE_STRING:
			c.string_value, c.string_len = placeText(a.str)
		case C.SPANGUARD_VALUE_INT:
			c.int_value = C.int64_t(a.num)
		case C.SPANGUARD_VALUE_DOUBLE:
			c.double_value = C.double(math.Float64frombits(uint64(a.num)))
		case C.SPANGUARD_VALUE_BOOL:
			c.bool_value = a.num != 0
		default:
			// Bytes and arrays: the elements (plain data: bytes, int64s,
			// float64 bits, one-byte bools), or for strings their
			// spanguard_strings and then their text.
			at = alignUp(at, 8)
			c.string_len = C.size_t(a.num)
			if a.kind != C.SPANGUARD_VALUE_STRING_ARRAY {
				c.string_value = (*C.char)(place(unsafe.Slice((*byte)(a.ptr), a.elementSize()*uintptr(a.num))))
				continue
			}
			strs := unsafe.Slice((*C.spanguard_string)(unsafe.Pointer(&mem[at])), a.num)
			c.string_value = (*C.char)(unsafe.Pointer(&mem[at]))
			at += a.elementSize() * uintptr(a.num)
			for j, e := range a.strings() {
				strs[j].ptr, strs[j].len = placeText(e)
			}
		}
	}
	return &items[0], block
}

func alignUp(n, to uintptr) uintptr { return (n + to - 1) &^ (to - 1) }

// unixNanos is t in Unix nanoseconds; the zero Time is 0 ("now").
func unixNanos(t time.Time) C.uint64_t {
	if t.IsZero() || t.UnixNano() < 0 {
		return 0
	}
	return C.uint64_t(t.UnixNano())
}

// AddEvent records an event now, with attributes.
func (s Span) AddEvent(name string, attrs ...Attribute) error {
	return s.AddEventAt(name, time.Time{}, attrs...)
}

// AddEventAt records an event at `at` (the zero Time: now), with attributes.
func (s Span) AddEventAt(name string, at time.Time, attrs ...Attribute) error {
	return s.AddEventWithDropped(name, at, 0, attrs...)
}

// AddEventWithDropped is AddEventAt for an event another SDK already
// dropped droppedAttributes attributes of (the OpenTelemetry bridge: its
// AttributePerEventCountLimit): the export's dropped count on the event is
// that plus what spanguard's own limit drops, as the SDK's exporter sends.
func (s Span) AddEventWithDropped(name string, at time.Time, droppedAttributes uint32, attrs ...Attribute) error {
	arr, block := cAttributes(attrs)
	defer C.free(block)
	n, nl := cstr(name)
	rc := C.spanguard_span_add_event_with_dropped(s.handle, n, nl, unixNanos(at), arr, C.size_t(len(attrs)),
		C.uint32_t(droppedAttributes))
	runtime.KeepAlive(s.t)
	runtime.KeepAlive(name)
	return check(rc, "add_event")
}

// AddLink links the span to another span, given as a W3C traceparent.
func (s Span) AddLink(traceparent string, attrs ...Attribute) error {
	return s.AddLinkWithTracestate(traceparent, "", attrs...)
}

// AddLinkWithTracestate links the span to another span, given as a W3C
// traceparent and the linked span's tracestate.
func (s Span) AddLinkWithTracestate(traceparent, tracestate string, attrs ...Attribute) error {
	arr, block := cAttributes(attrs)
	defer C.free(block)
	tp, tl := cstr(traceparent)
	ts, sl := cstr(tracestate)
	rc := C.spanguard_span_add_link_with_tracestate(s.handle, tp, tl, ts, sl, arr, C.size_t(len(attrs)))
	runtime.KeepAlive(s.t)
	runtime.KeepAlive(traceparent)
	runtime.KeepAlive(tracestate)
	return check(rc, "add_link")
}

// LinkOrigin says whether a linked span context came from another
// process (OpenTelemetry's SpanContext.IsRemote), for AddLinkIDs.
type LinkOrigin uint32

const (
	// LinkOriginUnknown: not known (what AddLink records).
	LinkOriginUnknown LinkOrigin = 0
	// LinkRemote: the linked context came from another process.
	LinkRemote LinkOrigin = C.SPANGUARD_LINK_REMOTE
	// LinkLocal: the linked context was made in this process.
	LinkLocal LinkOrigin = C.SPANGUARD_LINK_LOCAL
)

// AddLinkIDs links the span to another span given by its ids, W3C trace
// flags and tracestate, and whether its context was remote, which the
// export carries in the link's flags. A link whose ids are all zero (an
// invalid context) is kept when it has attributes or a tracestate, and
// refused (ErrInvalidTraceparent) without either.
func (s Span) AddLinkIDs(traceID [16]byte, spanID [8]byte, traceFlags byte, tracestate string,
	origin LinkOrigin, attrs ...Attribute) error {
	return s.AddLinkIDsWithDropped(traceID, spanID, traceFlags, tracestate, origin, 0, attrs...)
}

// AddLinkIDsWithDropped is AddLinkIDs for a link another SDK already
// dropped droppedAttributes attributes of, as AddEventWithDropped is for an
// event.
func (s Span) AddLinkIDsWithDropped(traceID [16]byte, spanID [8]byte, traceFlags byte, tracestate string,
	origin LinkOrigin, droppedAttributes uint32, attrs ...Attribute) error {
	arr, block := cAttributes(attrs)
	defer C.free(block)
	ts, sl := cstr(tracestate)
	rc := C.spanguard_span_add_link_ids_with_dropped(s.handle, (*C.uint8_t)(unsafe.Pointer(&traceID[0])),
		(*C.uint8_t)(unsafe.Pointer(&spanID[0])), C.uint8_t(traceFlags), ts, sl, C.uint32_t(origin),
		arr, C.size_t(len(attrs)), C.uint32_t(droppedAttributes))
	runtime.KeepAlive(s.t)
	runtime.KeepAlive(tracestate)
	return check(rc, "add_link_ids")
}

// AddDroppedCounts adds to the span's dropped counts what another SDK
// dropped before the span reached spanguard (the OpenTelemetry bridge).
func (s Span) AddDroppedCounts(attributes, events, links uint32) error {
	rc := C.spanguard_span_add_dropped_counts(s.handle, C.uint32_t(attributes), C.uint32_t(events),
		C.uint32_t(links))
	runtime.KeepAlive(s.t)
	return check(rc, "add_dropped_counts")
}

// DropOldest drops the span's `events` oldest events and `links` oldest
// links (all it holds when it holds fewer) and counts them in its dropped
// counts, as an OpenTelemetry SDK evicts its oldest past its span limits:
// for a bridge (package otelbridge) that passed on events or links its
// SDK evicted since, so that the span ends with the SDK's last ones.
// Their room in the payload pool is freed with the span.
func (s Span) DropOldest(events, links uint32) error {
	rc := C.spanguard_span_drop_oldest(s.handle, C.uint32_t(events), C.uint32_t(links))
	runtime.KeepAlive(s.t)
	return check(rc, "drop_oldest")
}

// SetStatus sets StatusOK, StatusError (with a message) or StatusUnset, a
// name of one in any case ("error"), or OpenTelemetry's codes.Code
// (codes.Error). Anything else returns an *Error with Code
// INVALID_ARGUMENT, nothing set (see kinds.go).
func (s Span) SetStatus(code any, message string) error {
	c, ok := statusOf(code)
	if !ok {
		return check(C.SPANGUARD_RESULT_INVALID_ARGUMENT, "set_status")
	}
	return s.setStatus(c, message)
}

// SetStatusCode is SetStatus for a StatusCode (StatusOK, StatusError with
// a message, StatusUnset): typed, so that OpenTelemetry's codes.Code,
// numbered otherwise (give it to SetStatus, which maps it), does not
// compile. A number past StatusError returns an *Error with Code
// INVALID_ARGUMENT, nothing set.
func (s Span) SetStatusCode(code StatusCode, message string) error {
	c, ok := upTo(int64(code), StatusError)
	if !ok {
		return check(C.SPANGUARD_RESULT_INVALID_ARGUMENT, "set_status")
	}
	return s.setStatus(c, message)
}

func (s Span) setStatus(c uint32, message string) error {
	m, ml := cstr(message)
	rc := C.spanguard_span_set_status(s.handle, C.uint32_t(c), m, ml)
	runtime.KeepAlive(s.t)
	runtime.KeepAlive(message)
	return check(rc, "set_status")
}

// RecordError adds an exception event, as the OpenTelemetry Go SDK's
// RecordError does (exception.type and exception.message, then attrs),
// and, unlike it, sets the status to error: a span that recorded an error
// failed.
func (s Span) RecordError(err error, attrs ...Attribute) error {
	if err == nil {
		return nil
	}
	all := append([]Attribute{
		String("exception.type", errorType(err)),
		String("exception.message", err.Error()),
	}, attrs...)
	return errors.Join(
		s.AddEvent("exception", all...),
		s.SetStatus(StatusError, err.Error()))
}

// errorType names err's type as the Go SDK's exception.type does: the
// package path and name ("net.OpError"), or the type's text for an
// unnamed one ("*errors.errorString").
func errorType(err error) string {
	t := reflect.TypeOf(err)
	if t.PkgPath() == "" && t.Name() == "" {
		return t.String()
	}
	return t.PkgPath() + "." + t.Name()
}

// UpdateName renames the span (OpenTelemetry's SetName): it is exported
// with the last name it was given.
func (s Span) UpdateName(name string) error {
	n, nl := cstr(name)
	rc := C.spanguard_span_update_name(s.handle, n, nl)
	runtime.KeepAlive(s.t)
	runtime.KeepAlive(name)
	return check(rc, "update_name")
}

// Traceparent is the W3C traceparent to pass to another process; an ended
// span's too, as long as its Span value lives.
func (s Span) Traceparent() (string, error) {
	if s.ids.trace_id != ([16]C.uint8_t{}) {
		return formatTraceparent(&s.ids), nil
	}
	var buf [C.SPANGUARD_TRACEPARENT_SIZE]C.char
	rc := C.spanguard_span_traceparent(s.handle, &buf[0], C.size_t(len(buf)))
	runtime.KeepAlive(s.t)
	if err := check(rc, "traceparent"); err != nil {
		return "", err
	}
	return C.GoString(&buf[0]), nil
}

// End ends the span. Ending twice returns ErrAlreadyEnded (or ErrStaleSpan).
func (s Span) End() error {
	a := C.spanguard_go_span_args{span: s.handle}
	callEnd(&a)
	runtime.KeepAlive(s.t) // see Tracer
	return endResult(a.result)
}

// EndAt ends the span at `at` (not before its start).
func (s Span) EndAt(at time.Time) error {
	rc := C.spanguard_span_end_at(s.handle, unixNanos(at))
	runtime.KeepAlive(s.t)
	return endResult(rc)
}

// formatTraceparent is the W3C traceparent of a context: version 00,
// lower-case hex.
func formatTraceparent(c *C.spanguard_span_context) string {
	const digits = "0123456789abcdef"
	var b [55]byte
	at := copy(b[:], "00-")
	for _, v := range c.trace_id {
		b[at], b[at+1] = digits[v>>4], digits[v&15]
		at += 2
	}
	b[at] = '-'
	at++
	for _, v := range c.span_id {
		b[at], b[at+1] = digits[v>>4], digits[v&15]
		at += 2
	}
	b[at] = '-'
	b[at+1], b[at+2] = digits[c.trace_flags>>4], digits[c.trace_flags&15]
	return string(b[:])
}

func endResult(rc C.spanguard_result) error {
	if rc == C.SPANGUARD_RESULT_SHUT_DOWN {
		return nil // shutdown already exported it, marked unended
	}
	return check(rc, "span_end")
}

// ForeignSpan is a span whose ids, parent, start and scope another SDK
// chose: what the OpenTelemetry bridge (package otelbridge) passes to
// StartForeign.
type ForeignSpan struct {
	Name           string
	Kind           uint32 // KindInternal, ...
	TraceID        [16]byte
	SpanID         [8]byte
	ParentSpanID   [8]byte // all zero: a root span
	ParentIsRemote bool
	TraceFlags     byte   // W3C flags: bit 0 sampled
	TraceState     string // W3C tracestate text
	Start          time.Time
	ScopeName      string // the instrumentation scope (an OpenTelemetry tracer's name)
	ScopeVersion   string
	ScopeSchemaURL string // the scope's schema URL (an OpenTelemetry tracer's)
	Attributes     []Attribute

	// LimitedByCaller: the other SDK applied its span limits already (the
	// bridge sets it), so the tracer's count and value length limits do
	// not apply to this span: what the SDK kept is kept whole (up to
	// 32767 attributes, events or links).
	LimitedByCaller bool
}

// invalidForeignIDs says what about f's ids spanguard refuses (an all-zero
// trace or span id: an invalid span context), or "" when they are valid
// (then the kind was out of range).
func invalidForeignIDs(f *ForeignSpan) string {
	switch {
	case f.TraceID == [16]byte{}:
		return fmt.Sprintf("the span %q has an all-zero trace id (an invalid span context, never exported)", f.Name)
	case f.SpanID == [8]byte{}:
		return fmt.Sprintf("the span %q has an all-zero span id (an invalid span context, never exported)", f.Name)
	case f.Kind > KindConsumer:
		return fmt.Sprintf("the span %q has kind %d (0 to %d)", f.Name, f.Kind, KindConsumer)
	}
	return ""
}

// StartForeign begins a span with exactly the ids, parent, flags,
// tracestate, start time, scope and attributes f gives
// (spanguard_span_begin_ex), so that what the other SDK propagates names
// the span spanguard exports.
func (t *Tracer) StartForeign(f *ForeignSpan) (Span, error) {
	if f == nil {
		return Span{}, &Error{Code: C.SPANGUARD_RESULT_INVALID_ARGUMENT, Op: "start_foreign: nil span"}
	}
	first, rest := f.Attributes, []Attribute(nil)
	if len(first) > maxAttributesPerCall {
		first, rest = first[:maxAttributesPerCall], first[maxAttributesPerCall:]
	}
	attrs, attrBlock := cAttributes(first)
	defer C.free(attrBlock)
	// The options and their text in one C block: cgo lets no Go pointer
	// sit in memory passed to C.
	size := int(unsafe.Sizeof(C.spanguard_span_options{}))
	ids := len(f.TraceID) + len(f.SpanID) + len(f.ParentSpanID)
	text := len(f.Name) + len(f.TraceState) + len(f.ScopeName) + len(f.ScopeVersion) + len(f.ScopeSchemaURL)
	block := C.malloc(C.size_t(size + ids + text + 1))
	defer C.free(block)
	o := (*C.spanguard_span_options)(block)
	C.spanguard_span_options_init_sized(o, C.size_t(size))
	bytes := unsafe.Slice((*byte)(unsafe.Add(block, size)), ids+text+1)
	at := 0
	place := func(b []byte) *C.uint8_t {
		p := (*C.uint8_t)(unsafe.Pointer(&bytes[at]))
		at += copy(bytes[at:], b)
		return p
	}
	placeText := func(s string) (*C.char, C.size_t) {
		p := (*C.char)(unsafe.Pointer(&bytes[at]))
		at += copy(bytes[at:], s)
		return p, C.size_t(len(s))
	}
	o.kind = C.uint32_t(f.Kind)
	o.name, o.name_len = placeText(f.Name)
	o.trace_id = place(f.TraceID[:])
	o.span_id = place(f.SpanID[:])
	if f.ParentSpanID != [8]byte{} {
		o.parent_span_id = place(f.ParentSpanID[:])
		if f.ParentIsRemote {
			o.flags = C.SPANGUARD_SPAN_OPTION_PARENT_IS_REMOTE
		}
	}
	if f.LimitedByCaller {
		o.flags |= C.SPANGUARD_SPAN_OPTION_LIMITED_BY_CALLER
	}
	o.trace_flags = C.uint32_t(f.TraceFlags)
	if f.TraceState != "" {
		o.tracestate, o.tracestate_len = placeText(f.TraceState)
	}
	o.start_time_unix_ns = unixNanos(f.Start)
	if f.ScopeName != "" || f.ScopeVersion != "" {
		o.scope_name, o.scope_name_len = placeText(f.ScopeName)
		o.scope_version, o.scope_version_len = placeText(f.ScopeVersion)
	}
	if f.ScopeSchemaURL != "" {
		o.scope_schema_url, o.scope_schema_url_len = placeText(f.ScopeSchemaURL)
	}
	o.attributes, o.attribute_count = attrs, C.size_t(len(first))

	ptr, err := t.live()
	if err != nil {
		return Span{}, err
	}
	defer runtime.KeepAlive(t)
	span := Span{t: t}
	rc := C.spanguard_span_begin_ex(ptr, o, &span.handle)
	if err := check(rc, "span_begin_ex"); err != nil {
		if e, ok := err.(*Error); ok && rc == C.SPANGUARD_RESULT_INVALID_ARGUMENT {
			// "An argument was out of range" alone sent a bridge's user
			// looking at the kind: say which id the library refused.
			e.Message = invalidForeignIDs(f)
		}
		return Span{}, err
	}
	span.keepIDs()
	if len(rest) > 0 {
		return span, span.SetAttributes(rest...)
	}
	return span, nil
}
