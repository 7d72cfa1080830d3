package spanguard

/*
#include <stddef.h>
#include <stdint.h>
*/
import "C"

import (
	"context"
	"log/slog"
	"runtime/cgo"
	"strconv"
)

// Event is what the library tells a Config.EventLogger of (spanguard_event).
// New events are added after the last; one this binding does not know is
// logged all the same, named by its number.
type Event uint32

// The events of spanguard.h (SPANGUARD_EVENT_*).
const (
	EventBatchFailed      Event = 1  // a batch failed for good; its spans are lost
	EventBatchSpooled     Event = 2  // a batch was written to the spool after its retries ran out
	EventSpoolOverflow    Event = 3  // the spool's cap deleted older batches; their spans are lost
	EventBatchReplayed    Event = 4  // a spooled batch was delivered and deleted
	EventSpansRejected    Event = 5  // the backend accepted a batch but rejected some of its spans
	EventExporterPanicked Event = 6  // the exporter caught an internal error; it goes on
	EventFileSetAside     Event = 7  // a file in the spool directory could not be used
	EventBackendWarning   Event = 8  // the backend accepted every span with a warning
	EventSettingIgnored   Event = 9  // a variable's value or name was ignored
	EventBufferFull       Event = 10 // spans were not recorded: every span slot was taken
	EventValuesCut        Event = 11 // values or resource attributes were cut to fit a limit
	EventValuesWaited     Event = 12 // values waited for the payload pool: recording calls stalled
	EventFileMiscounted   Event = 13 // a spool file's header miscounted its spans
	EventSpansRecovered   Event = 14 // spans of a dead process were recovered from its file
)

var eventNames = map[Event]string{
	EventBatchFailed: "BATCH_FAILED", EventBatchSpooled: "BATCH_SPOOLED",
	EventSpoolOverflow: "SPOOL_OVERFLOW", EventBatchReplayed: "BATCH_REPLAYED",
	EventSpansRejected: "SPANS_REJECTED", EventExporterPanicked: "EXPORTER_PANICKED",
	EventFileSetAside: "FILE_SET_ASIDE", EventBackendWarning: "BACKEND_WARNING",
	EventSettingIgnored: "SETTING_IGNORED", EventBufferFull: "BUFFER_FULL",
	EventValuesCut: "VALUES_CUT", EventValuesWaited: "VALUES_WAITED",
	EventFileMiscounted: "FILE_MISCOUNTED", EventSpansRecovered: "SPANS_RECOVERED",
}

// String is the event's name in spanguard.h without SPANGUARD_EVENT_
// ("BACKEND_WARNING"); EVENT_<n> for one of a newer library.
func (e Event) String() string {
	if name, ok := eventNames[e]; ok {
		return name
	}
	return "EVENT_" + strconv.FormatUint(uint64(e), 10)
}

// level is the slog level an event is logged at: spans lost at error (as
// the library's stderr says them), a spooled batch delivered and spans
// recovered from a dead process at info (good news), the rest at warn.
func (e Event) level() slog.Level {
	switch e {
	case EventBatchFailed, EventSpoolOverflow, EventSpansRejected, EventExporterPanicked:
		return slog.LevelError
	case EventBatchReplayed, EventSpansRecovered:
		return slog.LevelInfo
	}
	return slog.LevelWarn
}

// logEvent is what a Config.EventLogger is told of event e.
func logEvent(logger *slog.Logger, e Event, message string) {
	logger.LogAttrs(context.Background(), e.level(), "spanguard: "+message,
		slog.String("spanguard.event", e.String()), slog.Int("spanguard.event_code", int(e)))
}

//export spanguardGoEvent
func spanguardGoEvent(event C.uint32_t, message *C.char, n C.size_t, handle C.uintptr_t) {
	logger, ok := cgo.Handle(handle).Value().(*slog.Logger)
	if !ok {
		return
	}
	logEvent(logger, Event(event), C.GoStringN(message, C.int(n)))
}
