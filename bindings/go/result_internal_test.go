package spanguard

import (
	"reflect"
	"testing"
)

// The Go copy of spanguard_result_is_ok must agree with the library for
// every code, including ones it does not know.
func TestResultIsOKMatchesTheLibrary(t *testing.T) {
	for code := uint32(0); code < 256; code++ {
		if resultIsOKInGo(code) != resultIsOKInC(code) {
			t.Errorf("code %d: Go says %v, the library %v", code, resultIsOKInGo(code), resultIsOKInC(code))
		}
	}
}

// Stats has a field for every counter the library keeps: a Go program
// could not read those it lacked (spans lost replaying the spool, values
// whose UTF-8 was replaced, what limits dropped, exporter panics), where
// Python and Node can.
func TestStatsHasEveryCounter(t *testing.T) {
	if n, want := reflect.TypeOf(Stats{}).NumField(), countersInC(); n != want {
		t.Fatalf("Stats has %d fields, spanguard_counters %d counters", n, want)
	}
}
