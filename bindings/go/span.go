package spanguard

/*
#include <stdlib.h>
#include "spanguard.h"
*/
import "C"

import (
	"context"
	"errors"
	"runtime"
	"unsafe"
)

// Span is a started span. End it exactly once; `defer span.End()`.
type Span struct {
	t      *Tracer
	handle C.spanguard_span
	// The context Start returns, kept inside the span so that Start makes
	// one allocation, not two.
	ctx spanContext
}

// spanContext is the context carrying a span: its parent's, plus the span.
type spanContext struct {
	context.Context
	span *Span
}

func (c *spanContext) Value(key any) any {
	if _, ok := key.(spanKey); ok {
		return c.span
	}
	return c.Context.Value(key)
}

type spanKey struct{}

// SpanFromContext returns the span that Start put in ctx, or nil.
func SpanFromContext(ctx context.Context) *Span {
	s, _ := ctx.Value(spanKey{}).(*Span)
	return s
}

// Attribute is a typed key/value.
type Attribute struct {
	Key   string
	kind  uint32
	str   string
	num   int64
	float float64
}

func String(k, v string) Attribute { return Attribute{Key: k, kind: C.SPANGUARD_VALUE_STRING, str: v} }
func Int(k string, v int) Attribute {
	return Attribute{Key: k, kind: C.SPANGUARD_VALUE_INT, num: int64(v)}
}
func Int64(k string, v int64) Attribute {
	return Attribute{Key: k, kind: C.SPANGUARD_VALUE_INT, num: v}
}
func Float64(k string, v float64) Attribute {
	return Attribute{Key: k, kind: C.SPANGUARD_VALUE_DOUBLE, float: v}
}
func Bool(k string, v bool) Attribute {
	a := Attribute{Key: k, kind: C.SPANGUARD_VALUE_BOOL}
	if v {
		a.num = 1
	}
	return a
}

// StartOption configures Start.
type StartOption func(*startConfig)

type startConfig struct {
	kind        uint32
	attrs       []Attribute
	traceparent string
	root        bool
}

// WithKind sets the span kind (KindInternal by default).
func WithKind(kind uint32) StartOption { return func(c *startConfig) { c.kind = kind } }

// WithAttributes sets attributes at start.
func WithAttributes(a ...Attribute) StartOption {
	return func(c *startConfig) { c.attrs = append(c.attrs, a...) }
}

// WithRemoteParent continues the trace of a W3C traceparent from another process.
func WithRemoteParent(traceparent string) StartOption {
	return func(c *startConfig) { c.traceparent = traceparent }
}

// AsRoot starts a new trace even when ctx carries a span.
func AsRoot() StartOption { return func(c *startConfig) { c.root = true } }

// Start begins a span, a child of the span in ctx (if any), and returns a
// context carrying it.
func (t *Tracer) Start(ctx context.Context, name string, opts ...StartOption) (context.Context, *Span, error) {
	cfg := startConfig{kind: KindInternal}
	if len(opts) > 0 {
		// Options are opaque functions, so what they get escapes: only a
		// call that has options pays for a heap copy.
		c := &startConfig{kind: KindInternal}
		for _, o := range opts {
			o(c)
		}
		cfg = *c
	}
	// Not t.live(): its unlock closure is an allocation per span.
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.ptr == nil {
		return ctx, nil, &Error{Code: C.SPANGUARD_RESULT_SHUT_DOWN, Op: "tracer closed"}
	}
	// The one allocation: the span, which holds its handle (written by C
	// through a pointer to that field, which cgo allows: the field holds
	// no Go pointer) and the context returned.
	span := &Span{t: t}
	n, nl := cstr(name)
	var rc C.spanguard_result
	if cfg.traceparent != "" {
		tp, tl := cstr(cfg.traceparent)
		rc = C.spanguard_span_begin_remote(t.ptr, n, nl, tp, tl, C.uint32_t(cfg.kind), &span.handle)
		runtime.KeepAlive(cfg.traceparent)
	} else {
		parent := C.spanguard_span(C.SPANGUARD_SPAN_NONE)
		if s := SpanFromContext(ctx); s != nil && !cfg.root && s.t == t {
			parent = s.handle
		}
		rc = C.spanguard_span_begin(t.ptr, n, nl, parent, C.uint32_t(cfg.kind), &span.handle)
	}
	runtime.KeepAlive(name)
	if err := check(rc, "span_begin"); err != nil {
		return ctx, nil, err
	}
	span.ctx = spanContext{Context: ctx, span: span}
	if len(cfg.attrs) > 0 {
		if err := span.SetAttributes(cfg.attrs...); err != nil {
			return &span.ctx, span, err
		}
	}
	return &span.ctx, span, nil
}

// SetAttributes sets typed attributes (a key set again gets the new value).
func (s *Span) SetAttributes(attrs ...Attribute) error {
	var errs []error
	for _, a := range attrs {
		k, kl := cstr(a.Key)
		var rc C.spanguard_result
		switch a.kind {
		case C.SPANGUARD_VALUE_STRING:
			v, vl := cstr(a.str)
			rc = C.spanguard_span_set_string(s.handle, k, kl, v, vl)
		case C.SPANGUARD_VALUE_INT:
			rc = C.spanguard_span_set_int(s.handle, k, kl, C.int64_t(a.num))
		case C.SPANGUARD_VALUE_DOUBLE:
			rc = C.spanguard_span_set_double(s.handle, k, kl, C.double(a.float))
		case C.SPANGUARD_VALUE_BOOL:
			rc = C.spanguard_span_set_bool(s.handle, k, kl, a.num != 0)
		}
		runtime.KeepAlive(a)
		// The message with the key is built only for an error: built
		// eagerly it was an allocation per attribute.
		if !resultIsOK(rc) {
			errs = append(errs, check(rc, "set_attribute "+a.Key))
		}
	}
	return errors.Join(errs...)
}

// AddEvent records an event now, with attributes.
func (s *Span) AddEvent(name string, attrs ...Attribute) error {
	// Built in C memory: a C array holding Go pointers would break cgo's rules.
	arr := (*[1 << 16]C.spanguard_attribute)(C.calloc(C.size_t(len(attrs)+1), C.size_t(unsafe.Sizeof(C.spanguard_attribute{}))))
	defer C.free(unsafe.Pointer(arr))
	var keep []*C.char
	defer func() {
		for _, p := range keep {
			C.free(unsafe.Pointer(p))
		}
	}()
	for i, a := range attrs {
		c := &arr[i]
		k := C.CString(a.Key)
		keep = append(keep, k)
		c.key, c.key_len, c.type_ = k, C.size_t(len(a.Key)), C.uint32_t(a.kind)
		switch a.kind {
		case C.SPANGUARD_VALUE_STRING:
			v := C.CString(a.str)
			keep = append(keep, v)
			c.string_value, c.string_len = v, C.size_t(len(a.str))
		case C.SPANGUARD_VALUE_INT:
			c.int_value = C.int64_t(a.num)
		case C.SPANGUARD_VALUE_DOUBLE:
			c.double_value = C.double(a.float)
		case C.SPANGUARD_VALUE_BOOL:
			c.bool_value = a.num != 0
		}
	}
	n, nl := cstr(name)
	rc := C.spanguard_span_add_event(s.handle, n, nl, 0, &arr[0], C.size_t(len(attrs)))
	runtime.KeepAlive(name)
	return check(rc, "add_event")
}

// SetStatus sets StatusOK, StatusError (with a message) or StatusUnset.
func (s *Span) SetStatus(code uint32, message string) error {
	m, ml := cstr(message)
	rc := C.spanguard_span_set_status(s.handle, C.uint32_t(code), m, ml)
	runtime.KeepAlive(message)
	return check(rc, "set_status")
}

// RecordError adds an exception event and sets the status to error.
func (s *Span) RecordError(err error) error {
	if err == nil {
		return nil
	}
	return errors.Join(
		s.AddEvent("exception", String("exception.message", err.Error())),
		s.SetStatus(StatusError, err.Error()))
}

// Traceparent is the W3C traceparent to pass to another process.
func (s *Span) Traceparent() (string, error) {
	var buf [C.SPANGUARD_TRACEPARENT_SIZE]C.char
	if err := check(C.spanguard_span_traceparent(s.handle, &buf[0], C.size_t(len(buf))), "traceparent"); err != nil {
		return "", err
	}
	return C.GoString(&buf[0]), nil
}

// End ends the span. Ending twice returns ErrAlreadyEnded (or ErrStaleSpan).
func (s *Span) End() error {
	if s == nil {
		return nil
	}
	rc := C.spanguard_span_end(s.handle)
	if rc == C.SPANGUARD_RESULT_SHUT_DOWN {
		return nil // shutdown already exported it, marked unended
	}
	return check(rc, "span_end")
}
