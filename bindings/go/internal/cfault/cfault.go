// Package cfault faults in C code called through cgo, for the binding's
// tests of crash handlers in a Go program: a _test.go file may not import
// "C", and a fault in C is the crash a cgo program meets that no Go
// recover() can catch.
package cfault

/*
static void write_through_null(void) {
	volatile int *nowhere = (volatile int *)0;
	*nowhere = 1;
}
*/
import "C"

// WriteThroughNull writes through a NULL pointer in C: a SIGSEGV the
// kernel raises on the calling thread, inside a cgo call.
func WriteThroughNull() { C.write_through_null() }
