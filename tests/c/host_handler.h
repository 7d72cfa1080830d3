/* The stage the host-signal-handler tests set around a signal: the host's
 * own handler (the application's, which spanguard's watchdog flushes
 * before and then delivers to), which of the process's threads takes the
 * signal, and who sends it. What spanguard does between the signal and
 * that handler is what each test checks; where the kernel sends a signal
 * meant for the process is what decides which of spanguard's paths runs. */
#ifndef SPANGUARD_TEST_HOST_HANDLER_H
#define SPANGUARD_TEST_HOST_HANDLER_H

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

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

#endif
