/* The library's own threads (the exporter, the signal watchdog) leave the
 * termination signals to the application's threads: a process that blocks
 * SIGTERM in its threads while it does something it must not be stopped
 * in (billiard, Celery's pool, blocks it while a worker reports its exit)
 * keeps it pending. Ours took it instead: with the default disposition
 * the process died there; with spanguard's handlers on, the watchdog
 * flushed and re-raised, and the process died as well. Each case runs in
 * a forked child that reports through its exit status: killed by SIGTERM
 * is the defect. No sleeps. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "host_handler.h"
#include "sink_count.h"

#define S(str) (str), strlen(str)

static char sink[500], spool[512];

static spanguard_tracer *new_tracer(int handlers) {
    struct spanguard_config cfg;
    CHECK_RC(spanguard_config_init(&cfg, sizeof cfg), SPANGUARD_RESULT_OK);
    cfg.sink_dir = sink;
    cfg.spool_dir = spool;
    cfg.install_signal_handlers = handlers;
    spanguard_tracer *t = NULL;
    CHECK_RC(spanguard_tracer_new(&cfg, &t), SPANGUARD_RESULT_OK);
    return t;
}

/* In a child: a tracer (its threads started with this thread's mask, SIGTERM
 * unblocked), a span, then SIGTERM blocked here and sent to the process. It
 * must stay pending: no thread of the application takes it. The span ends
 * after that, and the tracer shuts down and delivers it. */
static void blocked_sigterm_stays_pending(int handlers, const char *name) {
    spanguard_tracer *t = new_tracer(handlers);
    if (!t) _exit(1);
    spanguard_span s = SPANGUARD_SPAN_NONE;
    CHECK_RC(spanguard_span_begin(t, name, strlen(name), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_OK);
    sigset_t pending;
    CHECK(mask_signal(SIG_BLOCK, SIGTERM) == 0);
    CHECK(kill(getpid(), SIGTERM) == 0);
    /* A process-directed signal goes to some thread that does not block it
     * at once, or stays pending for the process: a flush makes the exporter
     * run, so a thread of ours that would take it has had its chance. */
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    CHECK(sigpending(&pending) == 0);
    CHECK(sigismember(&pending, SIGTERM) == 1);
    CHECK_RC(spanguard_shutdown(t, 10000), SPANGUARD_RESULT_OK);
    spanguard_tracer_free(t);
    /* Exits with SIGTERM still blocked and pending: not delivered. */
    _exit(failures ? 1 : 0);
}

static void run(int handlers, const char *name) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) blocked_sigterm_stays_pending(handlers, name);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    if (WIFSIGNALED(status))
        fprintf(stderr, "%s: the child was killed by signal %d: a library thread took it\n", name,
                WTERMSIG(status));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char needle[128];
    snprintf(needle, sizeof needle, "\"name\":\"%s\"", name);
    CHECK(count_in_dir(sink, needle) == 1);
}

int main(int argc, char **argv) {
    snprintf(sink, sizeof sink, "%s", argc > 1 ? argv[1] : "build/test_signal_mask_threads-spans");
    snprintf(spool, sizeof spool, "%s-spool", sink);
    run(0, "handlers off");
    run(1, "handlers on");
    return check_summary();
}
