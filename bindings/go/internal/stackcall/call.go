//go:build amd64

// Package stackcall calls a C function of the form void fn(void *arg)
// through a trampoline that runs it on the calling thread's own C stack,
// without the cgo runtime's entry and exit (see ../../hotcall.c for when
// that is safe).
package stackcall

import "unsafe"

// Call runs tramp(fn, arg) with the C calling convention and returns what
// it returns. tramp must switch to a C stack before doing any work: this
// runs on the goroutine's stack with no room to spare.
//
//go:noescape
func Call(tramp, fn, arg unsafe.Pointer) int32
