/* A child made by a raw fork system call (syscall(SYS_clone), what a
 * runtime that forks without libc does: no pthread_atfork handler runs in
 * it) inherits the descriptor that holds its parent's flight file locked.
 * The parent's fork handler closes that descriptor in every child made by
 * fork(3); this one keeps it, and while it lived (a daemon: for good) the
 * parent, SIGKILLed, looked alive to every recovery, its spans never
 * sent.
 *
 * A process records spans with the flight recorder on, raw-forks a child
 * that lives on without exec, and is SIGKILLed. A tracer started now must
 * recover the dead process's spans while that child still lives: each
 * ended span once, the open one once and marked interrupted, and nothing
 * again at the shutdown after the child exits. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "idle_tracer.h"
#include "sink_count.h"

#define SPANS 20

static char sink[512], spool[512];

static spanguard_tracer *start_tracer(int flight) {
    spanguard_config cfg = idle_tracer_config("raw-fork-recovery", sink, spool, flight);
    return tracer_or_exit(&cfg);
}

/* The process to be killed: records, then raw-forks a child that says it
 * runs and lives until `hold` reaches end of file. */
static void record_then_wait(int ready, int hold) {
    spanguard_tracer *t = start_tracer(1);
    record_ended_and_open(t, "raw", SPANS);
    /* No libc fork: the kernel's, as a runtime without libc makes one
     * (flags first on every architecture; no new stack: a copy). */
    long child = syscall(SYS_clone, (long)SIGCHLD, 0L, 0L, 0L, 0L);
    if (child == 0) {
        char byte;
        if (write(ready, "c", 1) != 1) _exit(3);
        close(ready);
        while (read(hold, &byte, 1) > 0) {
        }
        _exit(0);
    }
    if (child < 0 || write(ready, "r", 1) != 1) _exit(3);
    for (;;) pause();
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "build/test_raw_fork_recovery-spans";
    snprintf(sink, sizeof sink, "%s", dir);
    snprintf(spool, sizeof spool, "%s-spool", dir);

    /* The orphaned child becomes ours to wait for. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) return 2;
    int hold[2], ready[2];
    if (pipe(hold) != 0 || pipe(ready) != 0) return 2;
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        close(hold[1]);
        record_then_wait(ready[1], hold[0]);
    }
    close(ready[1]);
    close(hold[0]);
    char bytes[2];
    CHECK(read(ready[0], bytes, 2) == 2 || read(ready[0], bytes + 1, 1) == 1);
    close(ready[0]);
    kill(pid, SIGKILL);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status));

    spanguard_tracer *t = start_tracer(0);
    CHECK(spanguard_flush(t, 10000) == SPANGUARD_RESULT_OK);
    /* Recovered at start although the raw-forked child still lives. */
    CHECK(ended_and_open_arrived_once(sink, "raw", SPANS) == SPANS + 1);

    close(hold[1]); /* the child exits */
    CHECK(wait(&status) > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(spanguard_shutdown(t, 10000) == SPANGUARD_RESULT_OK);
    spanguard_tracer_free(t);

    CHECK(ended_and_open_arrived_once(sink, "raw", SPANS) == SPANS + 1);
    CHECK(count_in_dir(sink, "\"spanguard.interrupted\"") == 1);
    CHECK(files_in_dir(spool, "") == 0);
    return check_summary();
}
