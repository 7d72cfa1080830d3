// The error callback of a tracer given a Config.EventLogger: the library
// calls it on its exporter thread; it hands the event to Go
// (spanguardGoEvent, events.go) with the logger's cgo.Handle, carried as
// the callback's user_data.
#include <stdint.h>

#include "spanguard.h"
#include "_cgo_export.h"

static void spanguard_go_on_event(spanguard_event event, const char *message, size_t len, void *user_data) {
    spanguardGoEvent((uint32_t)event, (char *)message, len, (uintptr_t)user_data);
}

spanguard_result spanguard_go_set_event_logger(spanguard_tracer *tracer, uintptr_t handle) {
    return spanguard_set_error_callback(tracer, spanguard_go_on_event, (void *)handle);
}
