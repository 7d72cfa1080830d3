/* An application that installs its own SIGTERM handler after the tracer
 * (Python's signal.signal in a program that made its tracer first, a
 * worker framework's graceful stop), then forks: the child must keep that
 * handler. The fork handler put back, in every child, the dispositions
 * spanguard had replaced (SIG_DFL), over the application's: SIGTERM
 * killed the child at once, its handler never run. And a handler that
 * ends by calling the one it replaced (spanguard's) had it write to no
 * watchdog in the child: the SIGTERM was swallowed and the child lived on.
 *
 * Now such a child keeps the application's handler, and spanguard's, when
 * called, flushes and ends the process as the signal would. Children
 * report through their exit status; an alarm turns a hang into SIGALRM. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"

static struct sigaction replaced;
static volatile sig_atomic_t handled;
static int chain;

static void app_handler(int signal) {
    handled = 1;
    if (chain && replaced.sa_handler != SIG_DFL && replaced.sa_handler != SIG_IGN) replaced.sa_handler(signal);
}

/* Forks a child that sends itself SIGTERM and waits a while; its status. */
static int child_status(void) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(10);
        raise(SIGTERM);
        /* The application's handler ran (and did not end it): done. A
         * chained one ends the process from the watchdog thread. */
        if (!chain) _exit(handled ? 0 : 3);
        for (;;) pause();
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    return status;
}

int main(int argc, char **argv) {
    alarm(60); /* a hang is a failure, not a stuck test */
    const char *scratch = argc > 1 ? argv[1] : "build/test_fork_host_handler-spans";
    spanguard_tracer *t = tracer_with_handlers(scratch);

    struct sigaction app;
    memset(&app, 0, sizeof app);
    app.sa_handler = app_handler;
    sigemptyset(&app.sa_mask);
    CHECK(sigaction(SIGTERM, &app, &replaced) == 0);

    /* Its own handler, which ends nothing. */
    int status = child_status();
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        fprintf(stderr, "child: status %#x (signal %d), the application's handler not run\n", status,
                WIFSIGNALED(status) ? WTERMSIG(status) : 0);

    /* Its handler calls spanguard's: the child ends of SIGTERM. */
    chain = 1;
    status = child_status();
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM))
        fprintf(stderr, "chained child: status %#x (signal %d)\n", status, WIFSIGNALED(status) ? WTERMSIG(status) : 0);

    CHECK(sigaction(SIGTERM, &replaced, NULL) == 0);
    CHECK(spanguard_result_is_ok(spanguard_shutdown(t, 5000)));
    spanguard_tracer_free(t);
    return check_summary();
}
