/* A process lives on after SIGTERM (its host handler returns: the
 * watchdog's dump had nothing to keep, its crash files are made again at
 * the thaw), starts a long-lived program (posix_spawn: no fork handler
 * runs past exec), records, then dies: of SIGABRT (the crash handler
 * dumps its spans into the files made again) or of SIGKILL (nothing of it
 * runs; the files stay, empty, and its spans go with it: no flight
 * recorder here). A tracer started afterwards, while those programs still
 * run, must take what the dead processes left: the aborted one's spans
 * delivered once each, and no file of either left in the spool.
 *
 * The files made again at the thaw were inherited by the program when
 * they were not close-on-exec (dup2 cleared the flag): the program shared
 * their lock, recovery took them for a live process's, and the spans
 * waited for as long as the program lived. The unit test beside dup3
 * checks the lock; this one the chain a user sees.
 *
 * An alarm turns a hang into SIGALRM. */
#define _GNU_SOURCE
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "host_handler.h"
#include "sink_count.h"

extern char **environ;

static volatile sig_atomic_t handled;

static void returns(int signal) {
    (void)signal;
    handled = 1;
}

/* In the child: lives through SIGTERM, starts `sleep 30`, tells the test
 * its pid through `report`, records `<tag>-ended` and opens `<tag>-open`,
 * and dies of `death`. */
static void live_spawn_then_die(const char *scratch, const char *tag, int death, int report) {
    alarm(20);
    if (set_handler(SIGTERM, returns, 0) != 0) _exit(3);
    spanguard_tracer *t = tracer_flushed_only(scratch, tag);
    if (!t || failures) _exit(4);
    kill(getpid(), SIGTERM);
    while (!handled) pause();
    char *argv[] = {"sleep", "30", NULL};
    pid_t program;
    if (posix_spawnp(&program, "sleep", NULL, NULL, argv, environ) != 0) _exit(5);
    char name[64];
    snprintf(name, sizeof name, "%s-ended", tag);
    record_span(t, name);
    snprintf(name, sizeof name, "%s-open", tag);
    spanguard_span open = SPANGUARD_SPAN_NONE;
    CHECK_RC(spanguard_span_begin(t, name, strlen(name), SPANGUARD_SPAN_NONE, 0, &open), SPANGUARD_RESULT_OK);
    if (failures) _exit(6);
    if (write(report, &program, sizeof program) != (ssize_t)sizeof program) _exit(7);
    if (death == SIGKILL) kill(getpid(), SIGKILL);
    abort();
}

/* Runs one child to its death; the program it started (still running). */
static pid_t child_dies(const char *scratch, const char *tag, int death) {
    int report[2];
    if (pipe(report) != 0) exit(2);
    pid_t pid = fork();
    if (pid == 0) {
        close(report[0]);
        live_spawn_then_die(scratch, tag, death, report[1]);
    }
    close(report[1]);
    pid_t program = -1;
    CHECK(read(report[0], &program, sizeof program) == (ssize_t)sizeof program);
    close(report[0]);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == death);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != death)
        fprintf(stderr, "%s: the child ended with status %#x\n", tag, status);
    return program;
}

int main(int argc, char **argv) {
    alarm(60);
    const char *scratch = argc > 1 ? argv[1] : "build/test_host_handler_spawn_then_die-spans";
    char spool[512];
    snprintf(spool, sizeof spool, "%s-spool", scratch);

    int deaths[] = {SIGABRT, SIGKILL};
    const char *tags[] = {"aborted", "killed"};
    pid_t programs[2];
    for (int i = 0; i < 2; i++) programs[i] = child_dies(scratch, tags[i], deaths[i]);
    for (int i = 0; i < 2; i++) CHECK(programs[i] > 0 && kill(programs[i], 0) == 0);

    spanguard_tracer *t = tracer_with_handlers(scratch);
    record_span(t, "recoverer");
    CHECK(spanguard_result_is_ok(spanguard_shutdown(t, 10000)));
    spanguard_tracer_free(t);
    /* The programs still run: what recovery took, it took beside them. */
    for (int i = 0; i < 2; i++) CHECK(kill(programs[i], 0) == 0);

    check_arrived_once(scratch, "aborted-ended");
    check_arrived_once(scratch, "aborted-open");
    check_arrived_once(scratch, "recoverer");
    CHECK(files_ending(spool, ".sgdump") + files_ending(spool, ".sgdump-pending") +
              files_ending(spool, ".sgspool-pending") ==
          0);

    for (int i = 0; i < 2; i++) {
        if (programs[i] > 0) kill(programs[i], SIGKILL);
    }
    return check_summary();
}
