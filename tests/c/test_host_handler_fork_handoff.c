/* A host handler that forks, run on spanguard's watchdog thread: the
 * thread the signal arrived on blocked it and exited before the watchdog,
 * done flushing, delivered it there again (`deliver_to_host` then runs it
 * on its own thread). A pre-fork server's SIGHUP handler starting a worker
 * (which execs, or works and returns) is such a handler.
 *
 * The child was born on the watchdog's thread, with its signal mask: the
 * termination signals blocked. A worker that exec'd kept them blocked and
 * never died of SIGTERM. One that returned from the handler went on as the
 * parent's watchdog, reading the parent's self-pipe: it never ended, and
 * took the parent's signals for itself. Now the host's handler runs with
 * the mask it asked for (its sa_mask and the signal), as on a thread of
 * the application, and a child that returns from it ends that thread, as
 * the thread it stands in for ended.
 *
 * An alarm turns a hang into SIGALRM; the workers die with the test. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "host_handler.h"
#include "proc.h"
#include "sink_count.h"

static volatile sig_atomic_t ran;
static volatile pid_t worker = -1; /* the handler's child */
static volatile int exec_worker;   /* whether the child execs or returns */
static char child_scratch[512];

static void host_handler(int signal) {
    (void)signal;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* Dies with the test (SIGKILL when the thread that forked it, one
         * that lives as long as the process, is gone), exec'd or not: a
         * test ended by its alarm left its worker behind, a `sleep 30` or,
         * returned into the test's code, one that waited for good. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(126);
        if (exec_worker) {
            execl("/bin/sleep", "sleep", "30", (char *)NULL);
            _exit(127);
        }
        /* A worker with a tracer of its own, returning from the handler. */
        spanguard_tracer *t = tracer_with_handlers(child_scratch);
        record_span(t, "in-child");
        (void)spanguard_shutdown(t, 5000);
        return;
    }
    worker = pid;
    ran++;
}

/* Sends SIGHUP through a receiver that exits with the redelivery pending
 * (see test_host_handler_receiver_exits); waits for the handler. */
static void hup_through_exiting_receiver(void) {
    int before = ran;
    pthread_t r = signal_through_receiver(receive_then_exit_pending, SIGHUP);
    CHECK(pthread_join(r, NULL) == 0);
    while (ran == before) usleep(1000);
}

int main(int argc, char **argv) {
    alarm(60);
    const char *scratch = argc > 1 ? argv[1] : "build/test_host_handler_fork_handoff-spans";
    snprintf(child_scratch, sizeof child_scratch, "%s/child", scratch); /* cleared with it */

    CHECK(set_handler(SIGHUP, host_handler, 0) == 0);
    /* This thread, and the library's threads made from it, block SIGHUP:
     * the kernel gives it to the receiver. */
    CHECK(mask_signal(SIG_BLOCK, SIGHUP) == 0);

    spanguard_tracer *t = tracer_with_handlers(scratch);
    record_span(t, "before");

    /* A worker that execs: SIGTERM ends it. */
    exec_worker = 1;
    hup_through_exiting_receiver();
    usleep(200 * 1000); /* in sleep(1) by now */
    CHECK(kill(worker, SIGTERM) == 0);
    int status = 0;
    int ended = wait_bounded(worker, &status, 5);
    CHECK(ended && WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
    if (!ended) {
        fprintf(stderr, "the exec'd worker outlived SIGTERM\n");
        kill(worker, SIGKILL);
        waitpid(worker, &status, 0);
    }

    /* A worker that returns from the handler: records its span and ends. */
    exec_worker = 0;
    hup_through_exiting_receiver();
    ended = wait_bounded(worker, &status, 10);
    CHECK(ended && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!ended) {
        fprintf(stderr, "the returning worker never ended\n");
        kill(worker, SIGKILL);
        waitpid(worker, &status, 0);
    } else if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        fprintf(stderr, "the returning worker: status %#x\n", status);
    }
    CHECK(count_in_dir(child_scratch, "in-child") == 1);

    record_span(t, "after");
    CHECK(spanguard_result_is_ok(spanguard_shutdown(t, 5000)));
    spanguard_tracer_free(t);
    CHECK(count_in_dir(scratch, "before") == 1);
    CHECK(count_in_dir(scratch, "\"after\"") == 1); /* quoted: a path may hold "after" */
    return check_summary();
}
