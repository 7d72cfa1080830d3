//go:build !cgo

package spanguard

// The binding calls libspanguard through cgo. Built without it
// (CGO_ENABLED=0, or no C compiler, which turns cgo off by default) Go
// said only "build constraints exclude all Go files": this undefined name
// is the error instead, and says what to do.
var _ = spanguard_needs_cgo__build_with_CGO_ENABLED_1_and_a_C_compiler
