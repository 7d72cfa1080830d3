//go:build amd64 && !spanguard_cgocall

package spanguard

/*
#cgo noescape spanguard_go_hotcall_slow
#cgo nocallback spanguard_go_hotcall_slow
#cgo noescape spanguard_go_begin
#cgo nocallback spanguard_go_begin
#cgo noescape spanguard_go_set_packed
#cgo nocallback spanguard_go_set_packed
#cgo noescape spanguard_go_end
#cgo nocallback spanguard_go_end
#include "hotcall.h"
*/
import "C"

import (
	"unsafe"

	"github.com/spanguard/spanguard/bindings/go/internal/stackcall"
)

// The hot calls on the thread's C stack (hotcall.c says why that is safe
// for these calls and no others). Build with -tags spanguard_cgocall for
// plain cgo calls instead.
var (
	hotTrampoline = unsafe.Pointer(C.spanguard_go_trampoline)
	hotTryBegin   = unsafe.Pointer(C.spanguard_go_try_begin)
	hotSetPacked  = unsafe.Pointer(C.spanguard_go_try_set_packed)
	hotEnd        = unsafe.Pointer(C.spanguard_go_try_end)
)

// hotcall runs fn(arg); through cgo the first time on a thread, which gives
// the thread its C stack. arg must not escape: it lives on this goroutine's
// stack, which cannot move while the goroutine runs C.
func hotcall(fn, arg unsafe.Pointer) {
	if stackcall.Call(hotTrampoline, fn, arg) != 0 {
		C.spanguard_go_hotcall_slow(fn, arg)
	}
}

// callBegin begins on the C stack unless the span would wait for a free
// slot; then through cgo, which lets the scheduler run other goroutines
// meanwhile.
func callBegin(a *C.spanguard_go_begin_args) {
	hotcall(hotTryBegin, unsafe.Pointer(a))
	if a.result == C.SPANGUARD_RESULT_WOULD_WAIT {
		C.spanguard_go_begin(unsafe.Pointer(a))
	}
}

// hotStackUse says how much of this thread's C stack its calls used at
// most, and its size (0, 0 before the thread's first hot call). For tests,
// from a goroutine locked to its thread.
func hotStackUse() (used, size uintptr) {
	var u, s C.size_t
	C.spanguard_go_stack_use(&u, &s)
	return uintptr(u), uintptr(s)
}

// callSetPacked sets on the C stack unless the values may wait for payload
// chunks (an LLM-sized prompt: under the wait policy it waits while the
// pool is used up) or another goroutine holds the span (its own setter
// waiting for chunks); then through cgo, as callBegin, so that the wait
// stalls neither the scheduler's P nor a garbage collection.
func callSetPacked(a *C.spanguard_go_span_args) {
	hotcall(hotSetPacked, unsafe.Pointer(a))
	if a.result == C.SPANGUARD_RESULT_WOULD_WAIT {
		C.spanguard_go_set_packed(unsafe.Pointer(a))
	}
}

// callEnd ends on the C stack unless another goroutine holds the span (a
// setter waiting for payload chunks holds it up to full_wait); then
// through cgo, which waits for it without holding the P.
func callEnd(a *C.spanguard_go_span_args) {
	hotcall(hotEnd, unsafe.Pointer(a))
	if a.result == C.SPANGUARD_RESULT_WOULD_WAIT {
		C.spanguard_go_end(unsafe.Pointer(a))
	}
}
