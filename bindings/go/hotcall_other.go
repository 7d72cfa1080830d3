//go:build !amd64 || spanguard_cgocall

package spanguard

/*
#cgo noescape spanguard_go_begin
#cgo nocallback spanguard_go_begin
#cgo noescape spanguard_go_set_packed
#cgo nocallback spanguard_go_set_packed
#cgo noescape spanguard_go_end
#cgo nocallback spanguard_go_end
#include "hotcall.h"
*/
import "C"

import "unsafe"

// Plain cgo calls, where the C-stack trampoline does not exist (not amd64)
// or is not wanted (-tags spanguard_cgocall).

func callBegin(a *C.spanguard_go_begin_args) { C.spanguard_go_begin(unsafe.Pointer(a)) }

func callSetPacked(a *C.spanguard_go_span_args) { C.spanguard_go_set_packed(unsafe.Pointer(a)) }

func callEnd(a *C.spanguard_go_span_args) { C.spanguard_go_end(unsafe.Pointer(a)) }
