/* spanguard_reclaim_signal_from_default, for each input: it puts the
 * library's termination handler back over a SIG_DFL the host set (true),
 * and does nothing (false, the disposition as it was) for a signal number
 * that is not SIGTERM, SIGINT, SIGHUP or SIGQUIT, before any tracer with
 * handlers exists, over the library's own handler or the host's, and in a
 * forked child before its first tracer use. Put back, a SIGTERM flushes
 * and then ends the process as SIG_DFL would. Once every tracer has shut
 * down, the library's watchdog has stood down and the host's
 * dispositions are back: nothing to put back (false), and a SIGTERM ends
 * the process by SIG_DFL itself. Its own process: it installs handlers
 * and dies of SIGTERM (in children). */
#define _GNU_SOURCE
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "sink_count.h"

static char sink[512], spool[512];

static void on_host_term(int sig) {
    (void)sig;
}

static spanguard_tracer *start(uint32_t handlers) {
    spanguard_config cfg;
    CHECK_RC(spanguard_config_init(&cfg, sizeof cfg), SPANGUARD_RESULT_OK);
    cfg.sink_dir = sink;
    cfg.spool_dir = spool;
    cfg.install_signal_handlers = handlers;
    cfg.schedule_delay_ms = 60000; /* only a flush exports */
    spanguard_tracer *t = NULL;
    CHECK_RC(spanguard_tracer_new(&cfg, &t), SPANGUARD_RESULT_OK);
    return t;
}

static void (*handler_of(int sig))(int) {
    struct sigaction now;
    sigaction(sig, NULL, &now);
    return now.sa_handler;
}

/* How a child ended: its exit code, or 128 + the signal that ended it. */
static int ended(pid_t child) {
    int status = 0;
    if (waitpid(child, &status, 0) != child) return -1;
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* In a child: SIG_DFL over the library's handler (`ours`), put back
 * (with `ours` NULL: no tracer is live, nothing is put back and SIG_DFL
 * stays), then SIGTERM, which must end the child (exit 1: a check of its
 * own failed first; 2: the signal did not end it). */
static void reclaim_then_die_of_sigterm(void (*ours)(int), int failed_before) {
    signal(SIGTERM, SIG_DFL);
    CHECK(spanguard_reclaim_signal_from_default(SIGTERM) == (ours != NULL));
    CHECK(handler_of(SIGTERM) == (ours ? ours : SIG_DFL));
    if (failures > failed_before) _exit(1);
    raise(SIGTERM);
    for (int i = 0; i < 1000; i++) usleep(10000);
    _exit(2);
}

/* Numbers that are none of the four: each false, the disposition kept. */
static void check_not_handled_numbers(void) {
    const int numbers[] = {0, -1, -SIGTERM, SIGKILL, SIGSTOP, SIGUSR1, SIGSEGV, SIGCHLD, 65, 1 << 20, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        CHECK(!spanguard_reclaim_signal_from_default(numbers[i]));
    }
    CHECK(handler_of(SIGUSR1) == SIG_DFL);
    CHECK(handler_of(SIGCHLD) == SIG_DFL);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "build/test_reclaim_signal_from_default-spans";
    snprintf(sink, sizeof sink, "%s", dir);
    snprintf(spool, sizeof spool, "%s-spool", dir);

    /* No tracer yet: no handler to put back. */
    CHECK(!spanguard_reclaim_signal_from_default(SIGTERM));
    CHECK(handler_of(SIGTERM) == SIG_DFL);
    check_not_handled_numbers();

    /* A tracer without handlers: still none. */
    spanguard_tracer *none = start(SPANGUARD_SIGNAL_HANDLERS_NONE);
    CHECK(!spanguard_reclaim_signal_from_default(SIGTERM));
    CHECK(handler_of(SIGTERM) == SIG_DFL);

    spanguard_tracer *t = start(SPANGUARD_SIGNAL_HANDLERS_TERMINATION);
    void (*ours)(int) = handler_of(SIGTERM);
    CHECK(ours != SIG_DFL && ours != SIG_IGN);
    check_not_handled_numbers();

    /* Ours there already, or the host's own: false, left as it is. */
    CHECK(!spanguard_reclaim_signal_from_default(SIGTERM));
    CHECK(handler_of(SIGTERM) == ours);
    signal(SIGTERM, on_host_term);
    CHECK(!spanguard_reclaim_signal_from_default(SIGTERM));
    CHECK(handler_of(SIGTERM) == on_host_term);

    /* SIG_DFL over ours: put back, once. Each of the four. */
    const int four[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT};
    for (size_t i = 0; i < 4; i++) {
        signal(four[i], SIG_DFL);
        CHECK(spanguard_reclaim_signal_from_default(four[i]));
        CHECK(handler_of(four[i]) == ours);
        CHECK(!spanguard_reclaim_signal_from_default(four[i]));
    }

    /* A forked child: the fork put SIG_DFL back and its watchdog off until
     * its first tracer use; nothing to put back till then (ours with nobody
     * reading would swallow the signal). Then a SIGTERM over a SIG_DFL put
     * back flushes the child's span and ends it as SIG_DFL does. */
    int failed_before = failures; /* a child fails only of its own checks */
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        CHECK(handler_of(SIGTERM) == SIG_DFL);
        CHECK(!spanguard_reclaim_signal_from_default(SIGTERM));
        CHECK(handler_of(SIGTERM) == SIG_DFL);
        record_span(t, "child.before.sigterm");
        CHECK(handler_of(SIGTERM) == ours);
        reclaim_then_die_of_sigterm(ours, failed_before);
    }
    CHECK(ended(child) == 128 + SIGTERM);
    CHECK(count_in_dir(sink, "\"child.before.sigterm\"") == 1);

    /* Every tracer shut down: the watchdog stood down with the last one
     * (a tracer without handlers counts), the host's SIG_DFL is back and
     * nothing is put back over it; a SIGTERM then ends the process by
     * SIG_DFL (in a child, which dies of it). */
    CHECK_RC(spanguard_shutdown(t, 10000), SPANGUARD_RESULT_OK);
    spanguard_tracer_free(t);
    CHECK(handler_of(SIGTERM) == ours);
    CHECK_RC(spanguard_shutdown(none, 10000), SPANGUARD_RESULT_OK);
    spanguard_tracer_free(none);
    CHECK(handler_of(SIGTERM) == SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    CHECK(!spanguard_reclaim_signal_from_default(SIGTERM));
    CHECK(handler_of(SIGTERM) == SIG_DFL);
    failed_before = failures;
    child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        /* A tracer made in the child starts its watchdog (ours again),
         * which stands down with its shutdown. */
        spanguard_tracer *late = start(SPANGUARD_SIGNAL_HANDLERS_TERMINATION);
        CHECK(handler_of(SIGTERM) == ours);
        CHECK_RC(spanguard_shutdown(late, 10000), SPANGUARD_RESULT_OK);
        spanguard_tracer_free(late);
        reclaim_then_die_of_sigterm(NULL, failed_before);
    }
    CHECK(ended(child) == 128 + SIGTERM);
    return check_summary();
}
