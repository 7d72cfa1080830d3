// The span calls Go makes most, each as a function of one pointer to its
// arguments and results: the shape a call on the thread's C stack takes
// (hotcall.c).
#ifndef SPANGUARD_GO_HOTCALL_H
#define SPANGUARD_GO_HOTCALL_H

#include <stddef.h>
#include <stdint.h>
#include "spanguard.h"

typedef struct spanguard_go_begin_args {
	const spanguard_tracer *tracer;
	const char *name;
	size_t name_len;
	spanguard_span parent;
	uint32_t kind;
	spanguard_result result;
	const uint8_t *packed; // NULL, with packed_len 0: no attributes
	size_t packed_len;
	spanguard_span out;
	// The parent's context, kept in its Span value from its begin (all
	// zero: none), and the new span's, for its Span value.
	spanguard_span_context parent_context;
	spanguard_span_context out_context;
} spanguard_go_begin_args;

typedef struct spanguard_go_span_args {
	spanguard_span span;
	const uint8_t *packed;
	size_t packed_len;
	spanguard_result result;
} spanguard_go_span_args;

// Begins without waiting: SPANGUARD_RESULT_WOULD_WAIT where the full
// policy would wait, for spanguard_go_begin to begin it through cgo.
void spanguard_go_try_begin(void *args);
void spanguard_go_begin(void *args);
// Sets without waiting: SPANGUARD_RESULT_WOULD_WAIT, nothing set, where
// the values may need payload chunks, or another caller holds the span,
// for spanguard_go_set_packed to set them through cgo, where they may
// wait for the chunks or the span.
void spanguard_go_try_set_packed(void *args);
void spanguard_go_set_packed(void *args);
// Ends without waiting: SPANGUARD_RESULT_WOULD_WAIT, the span still open,
// where another caller holds the span, for spanguard_go_end to end it
// through cgo, where it may wait for the span.
void spanguard_go_try_end(void *args);
void spanguard_go_end(void *args);

// Runs fn(arg) here, on the stack cgo gave this call, after giving the
// thread its own C stack for the calls that follow.
void spanguard_go_hotcall_slow(void *fn, void *arg);

// How many bytes of this thread's C stack its calls have used at most,
// and how large it is; 0 and 0 for a thread without one. For tests.
void spanguard_go_stack_use(size_t *used, size_t *size);

// The trampoline (hotcall_amd64.S): fn(arg) on the thread's C stack, 0;
// or 1, running nothing, when the thread has none yet.
int spanguard_go_trampoline(void *fn, void *arg);

#endif
