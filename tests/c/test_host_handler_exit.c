/* A host handler that ends the process with exit() (a C program's SIGTERM
 * handler that runs its atexit cleanup; Python's sys.exit from a handler
 * ends the same way). spanguard's watchdog, done flushing, delivers the
 * host's handler and waits for it to return before it thaws the tracers;
 * exit() never returns, and spanguard's exit hook, on that very thread,
 * waited for the thaw: the process took a whole second (the watchdog's
 * wait for the handler) longer to stop. Now the exit hook tells the
 * watchdog the handler is done with the signal, and the process ends at
 * once, each span delivered once.
 *
 * The child records a span, sends itself SIGTERM and waits; its handler
 * calls exit(0). The bound is generous (the flush goes to a local file):
 * 600 ms catches the full second the wait took. An alarm turns a hang
 * into SIGALRM. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "host_handler.h"
#include "proc.h"
#include "sink_count.h"

static void exits(int signal) {
    (void)signal;
    exit(0);
}

int main(int argc, char **argv) {
    alarm(30); /* a hang is a failure, not a stuck test */
    const char *scratch = argc > 1 ? argv[1] : "build/test_host_handler_exit-spans";
    int ready[2];
    CHECK(pipe(ready) == 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        if (set_handler(SIGTERM, exits, 0) != 0) _exit(2);
        spanguard_tracer *t = tracer_with_handlers(scratch);
        record_span(t, "before-exit");
        if (failures) _exit(3);
        if (write(ready[1], "r", 1) != 1) _exit(4);
        kill(getpid(), SIGTERM); /* to this thread: the only one that takes it */
        for (;;) pause();
    }
    close(ready[1]);
    char byte;
    CHECK(read(ready[0], &byte, 1) == 1);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    double took = seconds_since(&t0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(took < 0.6);
    if (took >= 0.6) fprintf(stderr, "the child took %.3f s to exit from its handler\n", took);
    CHECK(count_in_dir(scratch, "before-exit") == 1);
    return check_summary();
}
