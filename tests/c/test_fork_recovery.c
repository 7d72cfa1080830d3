/* A forked child must not keep its dead parent's spans from recovery, and
 * recovery must come back for files it could not lock.
 *
 * Two processes record spans with the flight recorder on and are killed
 * with SIGKILL (nothing of theirs runs):
 * - the first has forked a child that lives on (it does not exec) and that
 *   inherited the parent's locked flight file: a tracer started now must
 *   recover the parent's spans while that child still lives;
 * - the second's flight file is locked by this test (standing in for any
 *   live holder) while the tracer starts, and released afterwards: the
 *   tracer must come back for it (here: at its shutdown at the latest).
 * Every span arrives exactly once, the open ones marked interrupted, and
 * the spool directory ends empty. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "idle_tracer.h"
#include "sink_count.h"

#define SPANS 20

static char sink[512], spool[512];

/* Nothing is exported before the kill. */
static spanguard_tracer *start_tracer(int flight) {
    spanguard_config cfg = idle_tracer_config("fork-recovery", sink, spool, flight);
    return tracer_or_exit(&cfg);
}

/* Runs in a process that is about to be killed: SPANS ended spans named
 * "<tag>-<i>" and one open span "<tag>-open"; with `hold` >= 0 it first
 * forks a child that lives until `hold` reaches end of file. */
static void record_then_wait(const char *tag, int ready, int hold) {
    spanguard_tracer *t = start_tracer(1);
    record_ended_and_open(t, tag, SPANS);
    if (hold >= 0 && fork() == 0) {
        /* A worker that does not exec and outlives its parent. It says it
         * runs (its fork handlers are done) before the parent is killed. */
        char byte;
        if (write(ready, "c", 1) != 1) _exit(3);
        close(ready);
        while (read(hold, &byte, 1) > 0) {
        }
        _exit(0);
    }
    if (write(ready, "r", 1) != 1) _exit(3);
    for (;;) pause();
}

/* The path of the flight file of process `pid` in the spool, into `path`;
 * 0 when there is none. */
static int flight_file_of(pid_t pid, char *path, size_t size) {
    char mark[32];
    snprintf(mark, sizeof mark, "-%010d-", (int)pid);
    DIR *d = opendir(spool);
    if (!d) return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d)))
        if (strstr(e->d_name, mark) && strstr(e->d_name, ".sgflight")) {
            snprintf(path, size, "%s/%s", spool, e->d_name);
            found = 1;
        }
    closedir(d);
    return found;
}

/* Whether the flight file of process `pid` is still in the spool. */
static int flight_file_left(pid_t pid) {
    char path[1024];
    return flight_file_of(pid, path, sizeof path);
}

/* Forks a recording process, waits until it has recorded, kills it. The
 * write end of `hold` stays with this process only. With `recovered` > 0,
 * that process's flight file is gone before the kill: a tracer started
 * now (this process's, or the orphaned child's) recovers it, and a
 * recovery the kill cut short would send again what it had sent
 * (recovery is at least once), where this test counts each span once. */
static pid_t record_and_kill(const char *tag, int hold, int hold_write, pid_t recovered) {
    int ready[2];
    if (pipe(ready) != 0) exit(2);
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        if (hold_write >= 0) close(hold_write);
        record_then_wait(tag, ready[1], hold);
    }
    close(ready[1]);
    /* "r" from the process, and "c" from its child if it has one: read to
     * the end (every writer has written and closed, or is paused). */
    char bytes[2];
    CHECK(read(ready[0], bytes, 1) == 1);
    if (hold >= 0) CHECK(read(ready[0], bytes + 1, 1) == 1);
    close(ready[0]);
    for (int waited = 0; recovered > 0 && flight_file_left(recovered) && waited < 10000; waited += 5) usleep(5000);
    kill(pid, SIGKILL);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status));
    return pid;
}

/* How many of the tag's spans are in the sink: each ended span must be
 * there once, the open one once and marked interrupted. */
static int arrived(const char *tag) {
    int n = 0;
    for (int i = 0; i < SPANS; i++) {
        char needle[80];
        snprintf(needle, sizeof needle, "\"name\":\"%s-%d\"", tag, i);
        long c = count_in_dir(sink, needle);
        if (c > 1) fprintf(stderr, "%s-%d arrived %ld times\n", tag, i, c);
        n += c == 1;
    }
    char needle[80];
    snprintf(needle, sizeof needle, "\"name\":\"%s-open\"", tag);
    n += count_in_dir(sink, needle) == 1;
    return n;
}

/* Opens and locks the flight file of process `pid`; -1 if none. */
static int lock_flight_file_of(pid_t pid) {
    char path[1024];
    if (!flight_file_of(pid, path, sizeof path)) return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "build/fork-recovery-spans";
    snprintf(sink, sizeof sink, "%s", dir);
    snprintf(spool, sizeof spool, "%s-spool", dir);

    /* The orphaned child becomes ours to wait for. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) return 2;
    /* The first dies leaving a child that holds what it inherited. */
    int hold[2];
    if (pipe(hold) != 0) return 2;
    pid_t first = record_and_kill("orphaned", hold[0], hold[1], 0);
    close(hold[0]);
    /* The second's file is locked here while the tracer starts. The first's
     * spans are recovered at the latest by the second's own tracer (their
     * child still lives, its lock let go): what this test asks of a tracer
     * started now. The second is killed once that is done. */
    pid_t second = record_and_kill("locked", -1, hold[1], first);
    int held = lock_flight_file_of(second);
    CHECK(held >= 0);

    spanguard_tracer *t = start_tracer(0);
    CHECK(spanguard_flush(t, 10000) == SPANGUARD_RESULT_OK);
    /* Recovered at start although the dead parent's child still lives. */
    CHECK(arrived("orphaned") == SPANS + 1);
    CHECK(arrived("locked") == 0);

    close(held); /* the holder goes away: the file is recoverable now */
    close(hold[1]); /* and the orphaned child exits */
    int status;
    CHECK(wait(&status) > 0 && WIFEXITED(status));
    CHECK(spanguard_shutdown(t, 10000) == SPANGUARD_RESULT_OK);
    spanguard_tracer_free(t);

    CHECK(arrived("orphaned") == SPANS + 1);
    CHECK(arrived("locked") == SPANS + 1);
    CHECK(count_in_dir(sink, "\"spanguard.interrupted\"") == 2);
    /* The dead processes' files, the child's (it exited without a
     * shutdown) and this tracer's are all gone. */
    CHECK(files_in_dir(spool, "") == 0);
    return check_summary();
}
