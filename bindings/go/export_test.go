package spanguard

// SlotOf is the slot a span's handle names (tracer id << 56 | slot << 32 |
// generation), for tests that need a span's slot to go to another span.
func SlotOf(s Span) uint64 { return uint64(s.handle) >> 32 }
