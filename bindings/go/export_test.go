package spanguard

import "log/slog"

// SlotOf is the slot a span's handle names (tracer id << 56 | slot << 32 |
// generation), for tests that need a span's slot to go to another span.
func SlotOf(s Span) uint64 { return uint64(s.handle) >> 32 }

// LogEvent is what a Config.EventLogger is told of event number e, for a
// test of a number no library has yet.
var LogEvent = func(l *slog.Logger, e uint32, message string) { logEvent(l, Event(e), message) }
