package otelbridge

import (
	"fmt"
	"testing"

	spanguard "github.com/spanguard/spanguard/bindings/go"
)

// Against a model of the SDK's list (it holds the last `limit` of those
// given, the others dropped) and of spanguard's (DropOldest drops its
// oldest and counts them; it refuses some of those passed, counting them
// itself or leaving them to the bridge): wherever the passes fall (the
// start, where OnStart sends the SDK's links and counts those it dropped; a stop; the
// end), each leaves spanguard holding the SDK's own, in order, less those
// it refused, each one given held or counted dropped once, and never asks
// DropOldest for more than spanguard holds. The end-to-end tests reach one
// stop or the end only.
func TestCatchUpLeavesTheSDKsOwnWhereverThePassesFall(t *testing.T) {
	refusals := map[string]func(n int) bool{
		"none":        func(int) bool { return false },
		"every third": func(n int) bool { return n%3 == 1 },
		"the first 2": func(n int) bool { return n < 2 },
		"from 4":      func(n int) bool { return n >= 4 },
	}
	for name, refuse := range refusals {
		for limit := range 6 {
			for given := range 11 {
				// Each subset of the points 1..given-1 as the passes between
				// the start (after `start` given) and the end.
				for start := range given + 1 {
					for mask := 0; mask < 1<<given; mask++ {
						if err := passes(limit, start, given, mask, refuse); err != nil {
							t.Fatalf("refusing %s, limit %d, %d at the start, %d given, passes %b: %v", name, limit,
								start, given, mask, err)
						}
					}
				}
			}
		}
	}
}

// passes runs the model: OnStart after start given, a pass after each n
// given whose bit is set in mask (n > start), and the end after given
// (OnEnd passes too when nothing came after the start). Spanguard refuses
// those numbered n for which refuse(n): the even ones counted by it
// (ErrLimitReached), the odd ones not (ErrInvalidTraceparent).
func passes(limit, start, given, mask int, refuse func(n int) bool) error {
	sdk := func(n int) (kept []int, dropped int) {
		for i := max(0, n-limit); i < n; i++ {
			kept = append(kept, i)
		}
		return kept, n - len(kept)
	}
	var held []int
	counted := 0
	q := passed{}
	send := func(kept []int) {
		for _, n := range kept {
			switch {
			case !refuse(n):
				held = append(held, n)
			case n%2 == 0:
				q.took(n, spanguard.ErrLimitReached)
				counted++
			default:
				q.took(n, spanguard.ErrInvalidTraceparent)
			}
		}
	}
	kept, dropped := sdk(start)
	// begin counts what the SDK dropped of what Start was given.
	q = passed{from: dropped, to: start, counted: dropped}
	counted = dropped
	send(kept)
	for n := start; n <= given; n++ {
		if n < given && (n == start || mask&(1<<n) == 0) {
			continue
		}
		kept, dropped = sdk(n)
		evicted, uncounted, first := q.catchUp(len(kept), n)
		if evicted < 0 || evicted > len(held) || uncounted < 0 || first < 0 || first > len(kept) {
			return fmt.Errorf("after %d: drop %d of %d held, count %d, send from %d of %d", n, evicted, len(held),
				uncounted, first, len(kept))
		}
		held = held[evicted:]
		counted += evicted + uncounted
		send(kept[first:])
		counted += q.settle()
		var want []int
		for _, k := range kept {
			if !refuse(k) {
				want = append(want, k)
			}
		}
		if fmt.Sprint(held) != fmt.Sprint(want) || counted != n-len(want) {
			return fmt.Errorf("after %d: spanguard holds %v, %d dropped; the SDK %v, %d dropped", n, held, counted,
				kept, dropped)
		}
	}
	return nil
}
