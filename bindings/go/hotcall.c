// The hot span calls on the calling thread's own C stack, without cgo's
// entry and exit: what most of a small span cost from Go (bench/go, built
// with and without -tags spanguard_cgocall; BENCHMARKS.md).
//
// cgo's entry and exit tell the Go scheduler that the goroutine may block
// in C, so that its processor can run other goroutines meanwhile. A begin
// that does not wait for a free slot (spanguard_span_try_begin_packed),
// setting packed attributes that need no payload chunk
// (spanguard_span_try_set_attributes_packed) and ending
// (spanguard_span_try_end) never block: no system call once the thread is
// warm, bounded work, and the span's own lock taken only if free. Another
// caller may hold a span long (a setter waiting for payload chunks, up to
// full_wait): the two try calls then answer WOULD_WAIT, having done
// nothing, rather than spin for it here.
// For such calls the hand-off is pure cost. The Go runtime sees one as a
// stretch of Go code that it cannot preempt (well under a microsecond): the
// collector and a preempting scheduler wait for it to return, as they wait
// for any Go code between two safe points. Anything that may wait (a begin
// that would wait for a free slot, values that may wait for payload chunks,
// a span another caller holds, flush, shutdown) goes through cgo.
//
// A goroutine's stack has no room for C, so each thread gets a C stack of
// its own the first time it calls (through cgo, which runs on the thread's
// system stack). Signals run on the alternate signal stack Go gives every
// thread, as with any cgo call. A fault in the library here is, to Go, a
// fault in Go code: a nil dereference becomes a panic a recover() could
// catch, where cgo's path always crashes (README says so).
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hotcall.h"

// The C stack's size: the library's calls use a few KiB; a panic caught at
// the boundary more. A guard page below it turns an overflow into a crash
// rather than a write into memory that is not ours. Reserved, not committed:
// a thread touches the pages its calls use.
#define SPANGUARD_GO_STACK_BYTES (256 * 1024)

// The top of this thread's C stack, or NULL before its first hot call.
// Initial-exec: the trampoline reads it with one instruction.
__thread char *spanguard_go_stack __attribute__((tls_model("initial-exec")));

static pthread_key_t stack_key;
static pthread_once_t stack_key_once = PTHREAD_ONCE_INIT;

static void stack_free(void *base) {
	munmap(base, SPANGUARD_GO_STACK_BYTES);
}

static void stack_key_create(void) {
	pthread_key_create(&stack_key, stack_free);
}

void spanguard_go_hotcall_slow(void *fn, void *arg) {
	if (spanguard_go_stack == NULL) {
		pthread_once(&stack_key_once, stack_key_create);
		char *base = mmap(NULL, SPANGUARD_GO_STACK_BYTES, PROT_READ | PROT_WRITE,
		                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
		// Without a stack this thread stays on cgo's path: slower, the same.
		if (base != MAP_FAILED) {
			if (mprotect(base, (size_t)getpagesize(), PROT_NONE) == 0 &&
			    pthread_setspecific(stack_key, base) == 0) {
				spanguard_go_stack = base + SPANGUARD_GO_STACK_BYTES;
			} else {
				munmap(base, SPANGUARD_GO_STACK_BYTES);
			}
		}
	}
	((void (*)(void *))fn)(arg);
}

void spanguard_go_stack_use(size_t *used, size_t *size) {
	*used = *size = 0;
	if (spanguard_go_stack == NULL) return;
	// The pages start as zeros: the lowest byte written is as deep as a call
	// went (a frame that wrote only zeros that deep would hide, which no
	// call frame does: its return address is below it).
	const char *top = spanguard_go_stack;
	const char *p = top - SPANGUARD_GO_STACK_BYTES + getpagesize();
	while (p < top && *p == 0) p++;
	*used = (size_t)(top - p);
	*size = SPANGUARD_GO_STACK_BYTES - (size_t)getpagesize();
}

static void begin(spanguard_go_begin_args *a, bool may_wait) {
	a->result = spanguard_span_begin_packed_keeping_ids(a->tracer, a->name, a->name_len, a->parent,
	                                                    &a->parent_context, a->kind, a->packed,
	                                                    a->packed_len, may_wait, &a->out, &a->out_context);
}

void spanguard_go_try_begin(void *args) { begin(args, false); }

void spanguard_go_begin(void *args) { begin(args, true); }

void spanguard_go_try_set_packed(void *args) {
	spanguard_go_span_args *a = args;
	a->result = spanguard_span_try_set_attributes_packed(a->span, a->packed, a->packed_len);
}

void spanguard_go_set_packed(void *args) {
	spanguard_go_span_args *a = args;
	a->result = spanguard_span_set_attributes_packed(a->span, a->packed, a->packed_len);
}

void spanguard_go_try_end(void *args) {
	spanguard_go_span_args *a = args;
	a->result = spanguard_span_try_end(a->span);
}

void spanguard_go_end(void *args) {
	spanguard_go_span_args *a = args;
	a->result = spanguard_span_end(a->span);
}
