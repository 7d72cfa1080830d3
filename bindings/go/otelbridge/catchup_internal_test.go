package otelbridge

import (
	"fmt"
	"testing"
)

// Against a model of the SDK's list (it holds the last `limit` of those
// given, the others dropped) and of spanguard's (DropOldest drops its
// oldest and counts them): wherever the passes fall (the start, where
// OnStart sends the SDK's links without counting; a stop; the end), each
// leaves spanguard holding the SDK's own, in order, with the SDK's
// dropped count. The end-to-end tests reach one stop or the end only.
func TestCatchUpLeavesTheSDKsOwnWhereverThePassesFall(t *testing.T) {
	for limit := range 6 {
		for given := range 11 {
			// Each subset of the points 1..given-1 as the passes between
			// the start (after `start` given) and the end.
			for start := range given + 1 {
				for mask := 0; mask < 1<<given; mask++ {
					if err := passes(limit, start, given, mask); err != nil {
						t.Fatalf("limit %d, %d at the start, %d given, passes %b: %v", limit, start, given, mask, err)
					}
				}
			}
		}
	}
}

// passes runs the model: OnStart after start given, a pass after each n
// given whose bit is set in mask (n > start), and the end after given
// (OnEnd passes too when nothing came after the start).
func passes(limit, start, given, mask int) error {
	sdk := func(n int) (kept []int, dropped int) {
		for i := max(0, n-limit); i < n; i++ {
			kept = append(kept, i)
		}
		return kept, n - len(kept)
	}
	kept, dropped := sdk(start)
	held, counted := append([]int(nil), kept...), 0
	q := passed{from: dropped, to: start}
	for n := start; n <= given; n++ {
		if n < given && (n == start || mask&(1<<n) == 0) {
			continue
		}
		kept, dropped = sdk(n)
		evicted, uncounted, send := q.catchUp(len(kept), n)
		if evicted > len(held) || uncounted < 0 || send < 0 || send > len(kept) {
			return fmt.Errorf("after %d: drop %d of %d held, count %d, send from %d of %d", n, evicted, len(held),
				uncounted, send, len(kept))
		}
		held = append(held[evicted:], kept[send:]...)
		counted += evicted + uncounted
		if fmt.Sprint(held) != fmt.Sprint(kept) || counted != dropped {
			return fmt.Errorf("after %d: spanguard holds %v, %d dropped; the SDK %v, %d dropped", n, held, counted,
				kept, dropped)
		}
	}
	return nil
}
