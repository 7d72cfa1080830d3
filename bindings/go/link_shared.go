//go:build !spanguard_static

package spanguard

// The default link: libspanguard.so, found through spanguard.pc, whose rpath
// names the install prefix's lib directory. A binary copied where that
// directory is not stops at "error while loading shared libraries";
// -tags spanguard_static (link_static.go) links the library in instead.

/*
#cgo pkg-config: spanguard
*/
import "C"
