/* A fork that landed while another thread was registering one of
 * spanguard's once-per-process hooks (the fork handlers, the exit flush;
 * the crash handlers' install) gave a child that kept the registration
 * "running" for good, by a thread it does not have: the child's first
 * tracer then waited for it forever (a worker made by multiprocessing,
 * gunicorn or Celery prefork while the parent's first tracer was being
 * made on another thread never recorded anything, and never ended).
 *
 * The window is one libc call wide; the test holds it open: this program
 * defines the libc function the registration calls (__register_atfork,
 * __cxa_atexit, sigaction: a definition in the executable takes the
 * library's calls) and stops the library's call there until the other
 * thread has forked. A library that keeps the fork out of the
 * registration (the fork waits for it) is let through after 3 s: the
 * test passes either way the fork comes out, never by timing.
 *
 * Each case runs in a fresh process (`case_process`) whose first tracer
 * is made on a second thread; the first thread forks in the window. The
 * forked child makes its own tracer, records a span and checks that the
 * hook works there: it forks a grandchild that records a span (the fork
 * handlers work, each once per fork: a child forked while the hook was
 * registered during its fork's prepare handlers has them, and registers
 * them again; each prepare handler took the same lock, the second waited
 * for the first forever), and it ends with exit(3) without a shutdown
 * (the exit flush delivers its span, and waits for nothing of the
 * parent's). SIGALRM ends a child that hangs. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "host_handler.h"
#include "sink_count.h"

enum hook { FORK_HOOK = 1, EXIT_HOOK, CRASH_INSTALL, FORK_HOOK_IN_PREPARE };

static atomic_int gate;
static int in_window[2], forked[2], in_prepare[2], registered[2];
static const char *sink;

/* Whether `fn` is the library's (not libc's, nor this program's). */
static int in_library(void (*fn)(void)) {
    void *addr;
    memcpy(&addr, &fn, sizeof addr); /* ISO C has no cast for it */
    Dl_info info;
    return addr && dladdr(addr, &info) && info.dli_fname && strstr(info.dli_fname, "libspanguard");
}

/* The gate: tells `in_window`, then waits for the fork (3 s at most). */
static void hold_window(enum hook hook) {
    if (!atomic_compare_exchange_strong(&gate, &(int){(int)hook}, 0)) return;
    char byte = 'w';
    if (write(in_window[1], &byte, 1) != 1) _exit(20);
    struct pollfd done = {.fd = forked[0], .events = POLLIN};
    (void)poll(&done, 1, 3000);
}

/* The library's registrations of fork handlers so far. */
static atomic_int library_atforks;

int __register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void), void *dso) {
    static int (*real)(void (*)(void), void (*)(void), void (*)(void), void *);
    if (!real) *(void **)&real = dlsym(RTLD_NEXT, "__register_atfork");
    if (in_library(child)) atomic_fetch_add(&library_atforks, 1);
    if (in_library(child)) hold_window(FORK_HOOK);
    if (!in_library(child) || !atomic_compare_exchange_strong(&gate, &(int){FORK_HOOK_IN_PREPARE}, 0))
        return real(prepare, parent, child, dso);
    /* Registered while the fork runs its prepare handlers (this program's
     * `hold_prepare`): glibc runs none of the new ones in that fork, and
     * its child has them all the same. */
    char byte = 'w';
    if (write(in_window[1], &byte, 1) != 1) _exit(20);
    struct pollfd preparing = {.fd = in_prepare[0], .events = POLLIN};
    (void)poll(&preparing, 1, 3000);
    int rc = real(prepare, parent, child, dso);
    if (write(registered[1], &byte, 1) != 1) _exit(20);
    struct pollfd done = {.fd = forked[0], .events = POLLIN};
    (void)poll(&done, 1, 3000);
    return rc;
}

static atomic_int prepare_armed;

static void hold_prepare(void) {
    if (!atomic_exchange(&prepare_armed, 0)) return;
    char byte = 'p';
    if (write(in_prepare[1], &byte, 1) != 1) _exit(22);
    struct pollfd done = {.fd = registered[0], .events = POLLIN};
    (void)poll(&done, 1, 3000);
}

int __cxa_atexit(void (*fn)(void *), void *arg, void *dso) {
    static int (*real)(void (*)(void *), void *, void *);
    if (!real) *(void **)&real = dlsym(RTLD_NEXT, "__cxa_atexit");
    if (in_library((void (*)(void))fn)) hold_window(EXIT_HOOK);
    return real(fn, arg, dso);
}

int sigaction(int signum, const struct sigaction *act, struct sigaction *oldact) {
    if (act && signum == SIGSEGV) hold_window(CRASH_INSTALL);
    return libc_sigaction()(signum, act, oldact);
}

static spanguard_tracer *first;

static void *make_first_tracer(void *arg) {
    (void)arg;
    first = tracer_with_handlers(sink);
    return NULL;
}

/* The forked child: a tracer of its own, a span, a grandchild that
 * records one with it, then exit without a shutdown. Exits 3 when all
 * went well (the exit flush runs then), 5 when a check failed. */
static void forked_child(const char *name) {
    alarm(10);
    failures = 0;
    spanguard_tracer *t = tracer_with_handlers(sink);
    if (!t) _exit(5);
    char span[64];
    snprintf(span, sizeof span, "%s-child", name);
    record_span(t, span);
    pid_t pid = fork();
    if (pid == 0) {
        failures = 0;
        snprintf(span, sizeof span, "%s-grandchild", name);
        record_span(t, span);
        CHECK(spanguard_result_is_ok(spanguard_shutdown(t, 10000)));
        _exit(failures ? 5 : 0);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "%s: the grandchild ended with status %#x\n", name, status);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* Without a shutdown: the exit flush's, which shuts down what the
     * child has (a tracer the parent was making at the fork is the
     * parent's: it waited for that one's exporter, which the child does
     * not have, and said so). */
    exit(failures ? 5 : 3);
}

/* A process whose first tracer is made on a second thread, held at
 * `hook`'s registration while this thread forks. Exits 0 when the forked
 * child exited 3, 7 when its exit waited for a tracer of this process's,
 * 10 + its status when it exited otherwise, 9 when a
 * signal ended it (SIGALRM: it hung). */
static void case_process(enum hook hook, const char *name) {
    if (pipe(in_window) != 0 || pipe(forked) != 0 || pipe(in_prepare) != 0 || pipe(registered) != 0)
        _exit(2);
    if (hook == FORK_HOOK_IN_PREPARE && pthread_atfork(hold_prepare, NULL, NULL) != 0) _exit(2);
    atomic_store(&gate, hook);
    pthread_t t;
    if (pthread_create(&t, NULL, make_first_tracer, NULL) != 0) _exit(2);
    char byte;
    if (read(in_window[0], &byte, 1) != 1) _exit(2);
    atomic_store(&prepare_armed, hook == FORK_HOOK_IN_PREPARE);
    int said[2];
    if (pipe(said) != 0) _exit(2);
    pid_t pid = fork();
    if (pid == 0) {
        if (dup2(said[1], STDERR_FILENO) < 0) _exit(2);
        forked_child(name);
    }
    close(said[1]);
    if (write(forked[1], &byte, 1) != 1) _exit(2);
    pthread_join(t, NULL);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) _exit(8);
    static char text[1 << 16];
    ssize_t n, len = 0;
    while (len < (ssize_t)sizeof text - 1 && (n = read(said[0], text + len, sizeof text - 1 - len)) > 0) len += n;
    text[len] = 0;
    fputs(text, stderr);
    if (first) (void)spanguard_shutdown(first, 10000);
    if (strstr(text, "did not stop")) {
        fprintf(stderr, "%s: the child's exit waited for a tracer of its parent's\n", name);
        _exit(7);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 3) _exit(0);
    if (WIFSIGNALED(status)) fprintf(stderr, "%s: the child died of signal %d\n", name, WTERMSIG(status));
    _exit(WIFEXITED(status) ? 10 + WEXITSTATUS(status) : 9);
}

static void fork_during(enum hook hook, const char *name) {
    pid_t pid = fork();
    if (pid == 0) case_process(hook, name);
    check_exited_0(pid, name, "case");
    const char *whose[] = {"child", "grandchild"};
    for (int i = 0; i < 2; i++) {
        char span[96];
        snprintf(span, sizeof span, "%s-%s", name, whose[i]);
        check_arrived_once(sink, span);
    }
}

int main(int argc, char **argv) {
    alarm(90); /* a hang is a failure, not a stuck test */
    sink = argc > 1 ? argv[1] : "build/test_fork_during_hooks-spans";
    /* The library registers its fork handlers as it loads (a constructor,
     * before this main), once: a first tracer registers none, so no fork
     * lands in that window. The two cases of it run against a library
     * that registers them at its first tracer, as it did. */
    int at_load = atomic_load(&library_atforks);
    CHECK(at_load == 1);
    if (at_load == 0) fork_during(FORK_HOOK, "at-fork-hook");
    fork_during(EXIT_HOOK, "at-exit-hook");
    fork_during(CRASH_INSTALL, "at-crash-install");
    if (at_load == 0) fork_during(FORK_HOOK_IN_PREPARE, "at-fork-hook-in-prepare");
    return check_summary();
}
