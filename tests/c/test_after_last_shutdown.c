/* Once a process's last tracer is shut down, spanguard leaves the process
 * as it found it: the termination signals' dispositions are the program's
 * own again, and no thread of ours keeps the process alive or swallows
 * its signals. On main, the signal watchdog stayed: a C program that shut
 * its tracer down and freed it, then ended `main` with pthread_exit, never
 * exited (only `spanguard-watch` was left, which blocks SIGTERM, so the
 * signal stayed pending and only SIGKILL ended it), and sigaction still
 * read back our handler. A tracer made again after that gets the watchdog
 * back, and it works. Each case runs in a forked child; every wait is a
 * hang guard (20 s) that says HUNG when it runs out, never a timing. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "proc.h"
#include "sink_count.h"

#define S(str) (str), strlen(str)
#define GUARD_MS 20000

static char sink[512], spool[512];

static spanguard_tracer *new_tracer(void) {
    struct spanguard_config cfg;
    spanguard_config_init(&cfg, sizeof cfg);
    cfg.sink_dir = sink;
    cfg.spool_dir = spool;
    cfg.install_signal_handlers = 1;
    cfg.schedule_delay_ms = 100;
    spanguard_tracer *t = NULL;
    if (spanguard_tracer_new(&cfg, &t) != SPANGUARD_RESULT_OK) _exit(3);
    return t;
}

/* In a child: whether SIGTERM's disposition is `want` (SIG_DFL, or the
 * program's handler). */
static int term_disposition_is(void (*want)(int)) {
    struct sigaction now;
    if (sigaction(SIGTERM, NULL, &now) != 0) return 0;
    return !(now.sa_flags & SA_SIGINFO) && now.sa_handler == want;
}

/* Waits for `child`, GUARD_MS at most; on running out says HUNG, kills it
 * and returns 0. */
static int wait_guarded(pid_t child, int *status, const char *what) {
    for (int i = 0; i < GUARD_MS / 10; i++) {
        pid_t done = waitpid(child, status, WNOHANG);
        if (done == child) return 1;
        usleep(10000);
    }
    fprintf(stderr, "HUNG: %s: the child did not end within %d s (killed)\n", what, GUARD_MS / 1000);
    kill(child, SIGKILL);
    waitpid(child, status, 0);
    return 0;
}

/* Reads the child's one-byte report from `fd`, GUARD_MS at most ('?' when
 * none came). */
static char read_report(int fd, const char *what) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char c = '?';
    if (poll(&p, 1, GUARD_MS) != 1 || read(fd, &c, 1) != 1) {
        fprintf(stderr, "HUNG: %s: no report from the child within %d s\n", what, GUARD_MS / 1000);
        return '?';
    }
    return c;
}

/* (a) Shut down and freed, then pthread_exit from main: the process ends,
 * with status 0, as it would have without spanguard. With `again`, a
 * second tracer made after the first's shutdown records one span first
 * (the watchdog came back), which arrives. */
static void main_thread_exit(int again) {
    const char *what = again ? "pthread_exit after a second tracer" : "pthread_exit after shutdown";
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        spanguard_tracer *t = new_tracer();
        spanguard_shutdown(t, 1000);
        spanguard_tracer_free(t);
        if (again) {
            t = new_tracer();
            spanguard_span s;
            if (spanguard_span_begin(t, S("again.exit"), SPANGUARD_SPAN_NONE, 0, &s) ==
                SPANGUARD_RESULT_OK)
                spanguard_span_end(s);
            spanguard_shutdown(t, 5000);
            spanguard_tracer_free(t);
        }
        pthread_exit(NULL);
    }
    CHECK(child > 0);
    int status = 0;
    CHECK(wait_guarded(child, &status, what));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (again) CHECK(count_in_dir(sink, "\"again.exit\"") == 1);
}

static volatile sig_atomic_t handled;
static void on_term(int signal) {
    (void)signal;
    handled++;
}

/* (b), (c) The last tracer shut down (and with `again`, a second one made
 * after it, which records a span): SIGTERM from outside. With the
 * default disposition the process dies of it; with the program's own
 * handler, that handler runs once and the program goes on (it exits with
 * 10 + the runs it saw; the second tracer's span arrives, once). Before the signal, the child reports whether
 * SIGTERM's disposition reads back as the program's own ('y'/'n'); with
 * `again` it is ours (the tracer is live), and the report is whether the
 * watchdog thread is there. */
static void sigterm_after_shutdown(int own_handler, int again) {
    char what[128];
    snprintf(what, sizeof what, "SIGTERM after shutdown (%s%s)",
             own_handler ? "the program's handler" : "default disposition",
             again ? ", a tracer made again" : "");
    const char *span_name = own_handler ? "again.term.own" : "again.term.default";
    int report[2];
    CHECK(pipe(report) == 0);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        close(report[0]);
        if (own_handler) {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = on_term;
            sigemptyset(&sa.sa_mask);
            sigaction(SIGTERM, &sa, NULL);
        }
        void (*own)(int) = own_handler ? on_term : SIG_DFL;
        spanguard_tracer *t = new_tracer();
        spanguard_shutdown(t, 1000);
        spanguard_tracer_free(t);
        char ok = term_disposition_is(own) ? 'y' : 'n';
        if (again) {
            t = new_tracer();
            spanguard_span s;
            if (spanguard_span_begin(t, S(span_name), SPANGUARD_SPAN_NONE, 0, &s) ==
                SPANGUARD_RESULT_OK)
                spanguard_span_end(s);
            /* The first watchdog ends just after it answers the stand-down,
             * and the new one names itself once it runs: one, in time. */
            int watchdogs = -1;
            for (int i = 0; i < GUARD_MS / 10 && (watchdogs = threads_named("spanguard-watch")) != 1; i++)
                usleep(10000);
            if (watchdogs != 1) fprintf(stderr, "HUNG: %d watchdog threads, not 1\n", watchdogs);
            ok = watchdogs == 1 && !term_disposition_is(own) ? 'y' : 'n';
        }
        if (write(report[1], &ok, 1) != 1) _exit(5);
        while (!handled) pause();
        exit(10 + handled); /* the exit hook flushes the second tracer */
    }
    close(report[1]);
    CHECK(child > 0);
    char ok = read_report(report[0], what);
    CHECK(ok == 'y');
    if (ok == 'n') fprintf(stderr, "%s: SIGTERM's disposition or the watchdog not as it should be\n", what);
    close(report[0]);
    kill(child, SIGTERM);
    int status = 0;
    CHECK(wait_guarded(child, &status, what));
    int as_without = own_handler ? WIFEXITED(status) && WEXITSTATUS(status) == 11
                                 : WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM;
    CHECK(as_without);
    if (!as_without) fprintf(stderr, "%s: status %#x\n", what, (unsigned)status);
    if (again) {
        char quoted[64];
        snprintf(quoted, sizeof quoted, "\"%s\"", span_name);
        CHECK(count_in_dir(sink, quoted) == 1);
    }
}

int main(int argc, char **argv) {
    const char *scratch = argc > 1 ? argv[1] : "build/test_after_last_shutdown-spans";
    snprintf(sink, sizeof sink, "%s/spans", scratch);
    snprintf(spool, sizeof spool, "%s/spool", scratch);
    main_thread_exit(0);
    sigterm_after_shutdown(0, 0);
    sigterm_after_shutdown(1, 0);
    main_thread_exit(1);
    sigterm_after_shutdown(0, 1);
    sigterm_after_shutdown(1, 1);
    return check_summary();
}
