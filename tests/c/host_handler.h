/* The stage the host-signal-handler tests set around a signal: the host's
 * own handler (the application's, which spanguard's watchdog flushes
 * before and then delivers to), which of the process's threads takes the
 * signal, and who sends it. What spanguard does between the signal and
 * that handler is what each test checks; where the kernel sends a signal
 * meant for the process is what decides which of spanguard's paths runs. */
#ifndef SPANGUARD_TEST_HOST_HANDLER_H
#define SPANGUARD_TEST_HOST_HANDLER_H

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "proc.h"
#include "sink_count.h"

/* Sets `signal`'s disposition to `handler` (SIG_DFL too) with `flags` and
 * an empty sa_mask; sigaction's result. The host's handler as a program
 * installs it: before the tracer, which then replaces it and delivers to
 * it, or from inside a handler that dies of its own signal. */
static inline int set_handler(int signal, void (*handler)(int), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    return sigaction(signal, &sa, NULL);
}

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);

/* libc's sigaction (looked up once; NULL when it cannot be found), for a
 * test that defines sigaction(2) itself (a definition in the executable
 * takes the library's calls) to stop the library's install of its
 * handlers at a chosen signal, and passes every call on to this one. */
static inline sigaction_fn libc_sigaction(void) {
    static sigaction_fn real;
    if (!real) *(void **)&real = dlsym(RTLD_NEXT, "sigaction");
    return real;
}

/* Blocks or unblocks (`how`, as pthread_sigmask's) `signal` on this
 * thread; pthread_sigmask's result. The kernel gives a signal sent to the
 * process to a thread that does not block it, and the library's threads
 * start with the mask of the thread that made the tracer: a test blocks
 * the signal here to send it to the one thread it picked. */
static inline int mask_signal(int how, int signal) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signal);
    return pthread_sigmask(how, &set, NULL);
}

/* Starts `fn` on a thread that blocks `signal` (and `also`, unless 0) from
 * its start, as a program's other threads block the termination signals,
 * and leaves this thread's mask as it was: the signal comes to this
 * thread, the other one records meanwhile. pthread_create's result. */
static inline int start_thread_blocking(pthread_t *thread, void *(*fn)(void *), int signal, int also) {
    sigset_t blocked, was;
    sigemptyset(&blocked);
    sigaddset(&blocked, signal);
    if (also) sigaddset(&blocked, also);
    pthread_sigmask(SIG_BLOCK, &blocked, &was);
    int rc = pthread_create(thread, NULL, fn, NULL);
    pthread_sigmask(SIG_SETMASK, &was, NULL);
    return rc;
}

/* A thread's body: blocks every signal, waits 100 ms and sends the signal
 * `arg` (a long) to the process. The kernel picks a thread that does not
 * block it: the main thread, by then waiting in pause() for its handler,
 * which is how a signal reaches a program that is not expecting it. */
static inline void *send_signal_later(void *arg) {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    usleep(100 * 1000);
    kill(getpid(), (int)(long)arg);
    return NULL;
}

/* The receiver thread's id, once it has started (0 before). */
static volatile sig_atomic_t receiver_tid;

/* A receiver's body for the signal `arg` (a long), the only thread that
 * takes it: waits for it (spanguard's handler runs here and wakes it)
 * with it unblocked only inside sigsuspend, waits until the watchdog's
 * redelivery of it is pending here, and exits with it pending: a pool's
 * worker gone before the watchdog delivers the host's handler on it,
 * which spanguard must see. The thread starts with the signal blocked
 * (its creator's mask); sigsuspend unblocks it and blocks it again as one
 * step. Unblocked, then pause(), then blocked, the redelivery could come
 * in between (spanguard's handler still running, or this thread not yet
 * back from pause() on a loaded machine): the host's handler ran here,
 * nothing was left to become pending, and the loop below waited for good
 * (a hang, 1 run in 8 at load 7). */
static inline void *receive_then_exit_pending(void *arg) {
    int signal = (int)(long)arg;
    sigset_t during;
    pthread_sigmask(SIG_BLOCK, NULL, &during);
    sigdelset(&during, signal);
    mask_signal(SIG_BLOCK, signal);
    receiver_tid = gettid();
    sigsuspend(&during);
    for (;;) {
        sigset_t pending;
        if (sigpending(&pending) == 0 && sigismember(&pending, signal)) break;
        usleep(1000);
    }
    return NULL;
}

/* A receiver's body for the signal `arg` (a long), the only thread that
 * takes it: waits for signals for good (a host handler that ends its
 * thread ends it; else pthread_cancel). */
static inline void *receive_forever(void *arg) {
    receiver_tid = gettid();
    mask_signal(SIG_UNBLOCK, (int)(long)arg);
    for (;;) pause();
    return NULL;
}

/* Set by a test when the receiver of `receive_then_hold` may let go of the
 * signal it holds; set by the receiver once it has. */
static volatile sig_atomic_t hold_released, hold_let_go;

/* A receiver's body for the signal `arg` (a long), the only thread that
 * takes it (with SIGINT, its barrier: see test_host_handler_receiver_holds):
 * starts with both blocked (its creator's mask), takes the signal inside
 * sigsuspend only (spanguard's handler runs here; sigsuspend blocks it
 * again as it returns, as one step), holds it blocked until
 * `hold_released`, then takes both for good (a host handler that ends its
 * thread ends it; else pthread_cancel). */
static inline void *receive_then_hold(void *arg) {
    int signal = (int)(long)arg;
    sigset_t during;
    pthread_sigmask(SIG_BLOCK, NULL, &during);
    sigdelset(&during, signal);
    receiver_tid = gettid();
    sigsuspend(&during);
    while (!hold_released) usleep(1000);
    mask_signal(SIG_UNBLOCK, signal);
    mask_signal(SIG_UNBLOCK, SIGINT);
    hold_let_go = 1;
    for (;;) pause();
    return NULL;
}

/* Whether `signal`'s disposition is `handler` now. */
static inline int disposition_is(int signal, void (*handler)(int)) {
    struct sigaction now;
    return sigaction(signal, NULL, &now) == 0 && now.sa_handler == handler;
}

/* Waits up to `seconds` for `*flag` to reach `want`; whether it did. */
static inline int wait_for_count(volatile sig_atomic_t *flag, int want, double seconds) {
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (*flag < want && seconds_since(&t0) < seconds) usleep(1000);
    return *flag >= want;
}

/* Starts `receiver` for `signal`, waits until it runs and 50 ms more (in
 * pause() by then, or soon: the signal waits for it), and sends `signal`
 * to the process, which this thread and the library's block: the
 * receiver takes it. The receiver's thread. */
static inline pthread_t signal_through_receiver(void *(*receiver)(void *), int signal) {
    pthread_t r;
    receiver_tid = 0;
    CHECK(pthread_create(&r, NULL, receiver, (void *)(long)signal) == 0);
    while (!receiver_tid) usleep(1000);
    usleep(50 * 1000);
    CHECK(kill(getpid(), signal) == 0);
    return r;
}

/* In a forked child: records `span` (exits 5 when that failed), then sends
 * itself SIGTERM and waits for it. The watchdog must flush the span and
 * the child die of the signal, whatever state the fork left it in;
 * SIGALRM after `alarm_s` when it does not (a hang fails, it does not hold
 * up the suite). */
static inline void record_then_die_of_sigterm(spanguard_tracer *t, const char *span, unsigned alarm_s) {
    failures = 0;
    record_span(t, span);
    if (failures) _exit(5);
    alarm(alarm_s);
    kill(getpid(), SIGTERM);
    for (;;) pause();
}

/* In a test's child that forked the grandchild `pid` (which runs
 * record_then_die_of_sigterm) and reports to the test through its exit
 * status: waits for the grandchild and exits 0 when it died of SIGTERM,
 * 5 when a check failed here, 8 when the wait failed, 10 + its status
 * when it exited, 9 when another signal ended it (said; SIGALRM: it
 * hung). */
static inline void exit_as_grandchild_died(pid_t pid) {
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) _exit(8);
    if (failures) _exit(5);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) _exit(0);
    if (WIFSIGNALED(status)) fprintf(stderr, "the grandchild died of signal %d\n", WTERMSIG(status));
    _exit(WIFEXITED(status) ? 10 + WEXITSTATUS(status) : 9);
}

/* waitpid with a bound: 1 and the status when `pid` ended in time, 0
 * when it did not (still running: the caller kills it). */
static inline int wait_bounded(pid_t pid, int *status, double seconds) {
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (seconds_since(&t0) < seconds) {
        if (waitpid(pid, status, WNOHANG) == pid) return 1;
        usleep(10 * 1000);
    }
    return 0;
}

/* Waits for the child `pid` and checks that it died of SIGTERM, saying how
 * it ended when not: the tests whose child must end as the signal ends a
 * program (its handler re-raised it, or spanguard's watchdog did). */
static inline void check_died_of_sigterm(pid_t pid, const char *who) {
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGTERM)
        fprintf(stderr, "%s ended with status %#x, not of SIGTERM\n", who, status);
}

/* Waits for the child `pid` and checks that it exited 0, saying how it
 * ended when not ("`name`: the `who` ended with status ...", no name when
 * NULL): the fork tests run a case in a child that reports through its
 * exit status. */
static inline void check_exited_0(pid_t pid, const char *name, const char *who) {
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "%s%sthe %s ended with status %#x\n", name ? name : "", name ? ": " : "", who, status);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* The next tracer start after a child that crashed or lived on, on the
 * same sink and spool (`sink`, `<sink>-spool`): it sends what the spool
 * holds (a dump, a batch), flushed, and shuts down. */
static inline void next_start_on(const char *sink) {
    spanguard_tracer *t = tracer_flushed_only(sink, "next");
    if (!t) return;
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_shutdown(t, 10000), SPANGUARD_RESULT_OK);
    spanguard_tracer_free(t);
}

/* Checks that the span `span` is in the sink `sink` once: neither lost
 * (the flush a child's watchdog owed it) nor twice (a child's flush of
 * what its parent had). Counted quoted, as the sink writes a name, so
 * that "x" is not found in "x-child". */
static inline void check_arrived_once(const char *sink, const char *span) {
    char quoted[128];
    snprintf(quoted, sizeof quoted, "\"%s\"", span);
    long n = count_in_dir(sink, quoted);
    if (n != 1) fprintf(stderr, "%s arrived %ld times\n", span, n);
    CHECK(n == 1);
}

/* The end of a child that lived through a signal its own handler took:
 * a span recorded after it and the span open across it end, everything
 * is flushed, and nothing was dumped into the spool beside `dir` (the
 * tracers thawed, the dump taken back or never written). Exits 3 on a
 * failed check, 0 otherwise. */
static inline void finish_after_living_through(spanguard_tracer *t, spanguard_span open, const char *dir) {
    record_span(t, "after");
    CHECK_RC(spanguard_span_end(open), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    char spool[600];
    snprintf(spool, sizeof spool, "%s-spool", dir);
    CHECK(files_ending(spool, ".sgdump") == 0);
    _exit(failures ? 3 : 0);
}

#endif
