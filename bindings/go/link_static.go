//go:build spanguard_static

package spanguard

// -tags spanguard_static: libspanguard.a linked into the program, through
// spanguard-static.pc (which names the archive by its path, so the linker
// cannot take the .so beside it), for one binary to copy alone into a
// container image or onto another host. At run time it needs what the
// library calls from the system, loaded as shared libraries: glibc,
// libssl and libcrypto 3, zlib (static_test.go checks it runs with no
// libspanguard anywhere).

/*
#cgo pkg-config: spanguard-static
*/
import "C"
