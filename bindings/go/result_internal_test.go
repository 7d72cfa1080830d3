package spanguard

import "testing"

// The Go copy of spanguard_result_is_ok must agree with the library for
// every code, including ones it does not know.
func TestResultIsOKMatchesTheLibrary(t *testing.T) {
	for code := uint32(0); code < 256; code++ {
		if resultIsOKInGo(code) != resultIsOKInC(code) {
			t.Errorf("code %d: Go says %v, the library %v", code, resultIsOKInGo(code), resultIsOKInC(code))
		}
	}
}
