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
 * calls exit(0). What is checked is a count, not a time: the watchdog's
 * waits for a host handler that ran out (`host_handler_waits_ran_out`),
 * read by the child's own atexit handler after spanguard's exit hook
 * (registered before the tracer, so it runs after that hook) and passed
 * to the parent. It was 1: the second waited out. An alarm turns a hang
 * into SIGALRM. */
#define _GNU_SOURCE
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
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
    hang_guard(30); /* a hang is a failure, not a stuck test */
    const char *scratch = argc > 1 ? argv[1] : "build/test_host_handler_exit-spans";
    int ready[2], report[2];
    CHECK(pipe(ready) == 0 && pipe(report) == 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        close(report[0]);
        if (counter_at_exit(report[1], offsetof(spanguard_counters, host_handler_waits_ran_out)) != 0) _exit(5);
        if (set_handler(SIGTERM, exits, 0) != 0) _exit(2);
        spanguard_tracer *t = tracer_with_handlers(scratch);
        counter_at_exit_of(t);
        record_span(t, "before-exit");
        if (failures) _exit(3);
        if (write(ready[1], "r", 1) != 1) _exit(4);
        kill(getpid(), SIGTERM); /* to this thread: the only one that takes it */
        for (;;) pause();
    }
    close(ready[1]);
    close(report[1]);
    char byte;
    CHECK(read(ready[0], &byte, 1) == 1);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    uint64_t waits = counter_from_exit(report[0]);
    if (waits != 0)
        fprintf(stderr, "the watchdog waited out its second for the exiting handler %llu times\n",
                (unsigned long long)waits);
    CHECK(waits == 0);
    CHECK(count_in_dir(scratch, "before-exit") == 1);
    return check_summary();
}
