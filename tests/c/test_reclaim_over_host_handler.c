/* spanguard_reclaim_signal_from_default never stands over a handler the
 * host installed after its runtime set the default (Node: a new SIGTERM
 * listener after the last one went), not even for an instant: it looked
 * by swapping its own handler in and putting the host's back, and a
 * SIGTERM that came in between went to the library's handler, which
 * re-raised it with the default: the process died of a signal the host's
 * handler was there to take. This program's own sigaction stands in front
 * of libc's, counts every change that displaces the host's handler during
 * the reclaim and sends SIGTERM right there, to a thread that does not
 * block it. In a child (it may die of it), which also starts the watchdog
 * there: exit 0, the host's handler ran once and the child lives. A
 * second child: a reclaim while the host's handler runs (below). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"

static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);
static volatile sig_atomic_t watching;
static volatile sig_atomic_t displaced;
static volatile sig_atomic_t host_calls;

static void on_host_term(int sig) {
    (void)sig;
    host_calls++;
}

/* Every sigaction of the process, the library's included, comes here. */
int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    int rc = real_sigaction(sig, act, old);
    if (watching && sig == SIGTERM && act != NULL && act->sa_handler != on_host_term) {
        displaced++;
        /* A signal in the window, while the host's handler is away. */
        kill(getpid(), SIGTERM);
        struct timespec settle = {0, 300 * 1000 * 1000};
        nanosleep(&settle, NULL);
    }
    return rc;
}

/* A thread that takes a process-directed SIGTERM: the reclaiming thread
 * blocks it while it holds the library's lock. */
static void *take_signals(void *arg) {
    (void)arg;
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &term, NULL);
    for (;;) pause();
    return NULL;
}

static void (*handler_of(int sig))(int) {
    struct sigaction now;
    real_sigaction(sig, NULL, &now);
    return now.sa_handler;
}

/* A tracer with the termination watchdog, its spans in `dir` (and the
 * spool beside it). */
static spanguard_tracer *start_watched(const char *dir) {
    char sink[512], spool[512];
    snprintf(sink, sizeof sink, "%s", dir);
    snprintf(spool, sizeof spool, "%s-spool", dir);
    spanguard_config cfg;
    CHECK_RC(spanguard_config_init(&cfg, sizeof cfg), SPANGUARD_RESULT_OK);
    cfg.sink_dir = sink;
    cfg.spool_dir = spool;
    cfg.install_signal_handlers = SPANGUARD_SIGNAL_HANDLERS_TERMINATION;
    spanguard_tracer *t = NULL;
    CHECK_RC(spanguard_tracer_new(&cfg, &t), SPANGUARD_RESULT_OK);
    return t;
}

static int child(const char *dir) {
    spanguard_tracer *t = start_watched(dir);
    void (*ours)(int) = handler_of(SIGTERM);
    CHECK(ours != SIG_DFL && ours != on_host_term);

    pthread_t taker;
    CHECK(pthread_create(&taker, NULL, take_signals, NULL) == 0);
    /* The runtime sets the default over ours, and the host's handler goes
     * in before the reclaim runs. */
    signal(SIGTERM, SIG_DFL);
    signal(SIGTERM, on_host_term);
    watching = 1;
    CHECK(!spanguard_reclaim_signal_from_default(SIGTERM));
    watching = 0;
    CHECK(displaced == 0);
    CHECK(handler_of(SIGTERM) == on_host_term);

    /* A SIGTERM now is the host's, and the process lives on. */
    int before = host_calls;
    kill(getpid(), SIGTERM);
    for (int i = 0; i < 500 && host_calls == before; i++) usleep(10000);
    CHECK(host_calls == before + 1);
    usleep(300000);

    /* Over the default alone, it still puts ours back. */
    signal(SIGTERM, SIG_DFL);
    CHECK(spanguard_reclaim_signal_from_default(SIGTERM));
    CHECK(handler_of(SIGTERM) == ours);
    signal(SIGTERM, on_host_term);
    CHECK_RC(spanguard_shutdown(t, 10000), SPANGUARD_RESULT_OK);
    spanguard_tracer_free(t);
    return failures == 0 ? 0 : 1;
}

/* The second part: a host handler the watchdog hands SIGTERM on to sets
 * the default while it runs (to stop handling it) and returns, and
 * another thread's reclaim puts the library's handler over that default
 * meanwhile. Once the handler returned, the watchdog took the library's
 * own handler for the host's new one: the next SIGTERM was handed on to
 * it, came back to the watchdog, and so on, forever; the process never
 * died of it. It must: exit by SIGTERM (SIGALRM: it did not). */
static volatile sig_atomic_t reset_done, reclaimed;

static void on_host_term_resetting(int sig) {
    (void)sig;
    signal(SIGTERM, SIG_DFL);
    reset_done = 1;
    for (int i = 0; i < 2000 && !reclaimed; i++) {
        struct timespec tick = {0, 1000 * 1000};
        nanosleep(&tick, NULL);
    }
    host_calls++;
}

static void *reclaim_when_reset(void *arg) {
    (void)arg;
    while (!reset_done) usleep(1000);
    if (spanguard_reclaim_signal_from_default(SIGTERM)) reclaimed = 1;
    return NULL;
}

static int child_reclaimed_during_delivery(const char *dir) {
    failures = 0; /* the parent's, before the fork, are not this child's */
    alarm(20);
    signal(SIGTERM, on_host_term_resetting);
    /* The first child's sink and spool: its tracer shut down. */
    spanguard_tracer *t = start_watched(dir);
    (void)t; /* the process dies of SIGTERM with it */
    pthread_t reclaimer;
    CHECK(pthread_create(&reclaimer, NULL, reclaim_when_reset, NULL) == 0);
    raise(SIGTERM);
    for (int i = 0; i < 1000 && host_calls == 0; i++) usleep(10000);
    pthread_join(reclaimer, NULL);
    CHECK(host_calls == 1);
    CHECK(reclaimed);
    if (failures > 0) return 1;
    usleep(500000); /* the watchdog thaws and takes its handler back */
    raise(SIGTERM);
    for (;;) pause();
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "build/test_reclaim_over_host_handler-spans";
    /* POSIX's way to take a function from dlsym under -Wpedantic. */
    *(void **)&real_sigaction = dlsym(RTLD_NEXT, "sigaction");
    CHECK(real_sigaction != NULL);
    if (real_sigaction == NULL) return check_summary();
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) _exit(child(dir));
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    if (WIFSIGNALED(status)) fprintf(stderr, "the child died of signal %d\n", WTERMSIG(status));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    fflush(NULL);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) _exit(child_reclaimed_during_delivery(dir));
    CHECK(waitpid(pid, &status, 0) == pid);
    if (!WIFSIGNALED(status)) fprintf(stderr, "the second child exited %d\n", WEXITSTATUS(status));
    else if (WTERMSIG(status) != SIGTERM) fprintf(stderr, "the second child died of signal %d\n", WTERMSIG(status));
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
    return check_summary();
}
