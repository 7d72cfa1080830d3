/* LD_PRELOAD guard for the crash path: once a thread calls
 * malloc_guard_arm(), any malloc/calloc/realloc/free on that thread writes
 * "malloc in crash path" to stderr. The kill child arms it right before it
 * crashes, so the crash handler (which runs on the crashing thread) is
 * checked to make no allocation. */
#define _GNU_SOURCE
#include <stddef.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static __thread int armed;

void malloc_guard_arm(void) { armed = 1; }

static void flag(void) {
    static const char msg[] = "malloc in crash path\n";
    if (armed) (void)!write(2, msg, sizeof msg - 1);
}

void *malloc(size_t n) { flag(); return __libc_malloc(n); }
void *calloc(size_t n, size_t m) { flag(); return __libc_calloc(n, m); }
void *realloc(void *p, size_t n) { flag(); return __libc_realloc(p, n); }
void free(void *p) { if (p) flag(); __libc_free(p); }
