/* The thread a termination signal arrived on blocks it again (a thread
 * that masks signals around its own work, or one stuck in a long call
 * with them blocked) and keeps it blocked past the watchdog's wait for
 * the host's handler (HOST_HANDLER_WAIT, 1 s). The watchdog, done
 * flushing, re-sent the signal to that thread and waited; when the wait
 * ran out it gave up and put its own handler back: the host's handler
 * had not run, and did not as long as the thread held the signal (never,
 * if it never let go); when the thread let go, the pending copy came to
 * spanguard's handler, which flushed, froze and dumped all over again
 * before the host's handler ran, late. Now the host's handler runs by the
 * time the watchdog is done with the signal, once, on a stand-in thread
 * of spanguard's: the copy still pending on the thread is dropped, not
 * run again.
 *
 * The receiver (receive_then_hold) takes SIGTERM, blocks it at once, and
 * unblocks it only when this test says so: after the watchdog has put its
 * own handler back, which the test sees in SIGTERM's disposition
 * (spanguard's, then the one it delivers through, then spanguard's
 * again). SIGINT after that is a barrier: the watchdog takes one signal
 * at a time, so once the host's SIGINT handler has run, a round for the
 * copy the receiver held has been through too. Three host handlers, each
 * in a child of its own that reports through its exit status:
 * - a plain one;
 * - one that ends its thread (pthread_exit, a pool's "stop this worker"):
 *   it ends the stand-in, not the watchdog (on the watchdog's own thread
 *   its pthread_exit aborted the process), and the next SIGTERM is acted
 *   on, on the receiver, whose thread it ends;
 * - a one-shot one (SA_RESETHAND): it runs once, and the next SIGTERM
 *   ends the process as the default does.
 * Conditions with deadlines, no sleeps; an alarm turns a hang into a
 * failure. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "host_handler.h"
#include "proc.h"
#include "sink_count.h"

static volatile sig_atomic_t term_runs;  /* how often the host's SIGTERM handler ran */
static volatile sig_atomic_t int_runs;   /* and its SIGINT handler */
static volatile sig_atomic_t end_thread; /* whether the SIGTERM handler ends its thread */

static void on_term(int signal) {
    (void)signal;
    term_runs++;
    if (end_thread) pthread_exit(NULL);
}

static void on_int(int signal) {
    (void)signal;
    int_runs++;
}

static void on_alarm(int signal) {
    (void)signal;
    char line[160];
    int n = snprintf(line, sizeof line, "alarm: hung; the host's SIGTERM handler ran %d times, SIGINT's %d\n",
                     (int)term_runs, (int)int_runs);
    if (n > 0 && write(2, line, (size_t)n) < 0) {
    }
    _exit(70);
}

/* In the child: the host's handlers (SIGTERM's with `flags`), a tracer in
 * `dir`, SIGTERM through the receiver, which holds it past the watchdog's
 * wait. Checks that the host's handler had run once by the time the
 * watchdog was done, and once still after the receiver let go of its copy
 * (SIGINT as the barrier). The receiver's thread. */
static pthread_t held_sigterm(spanguard_tracer **t, const char *dir, int flags) {
    CHECK(set_handler(SIGTERM, on_term, flags) == 0);
    CHECK(set_handler(SIGINT, on_int, 0) == 0);
    /* This thread, and the library's threads made from it, block both:
     * the kernel gives them to the receiver. */
    CHECK(mask_signal(SIG_BLOCK, SIGTERM) == 0);
    CHECK(mask_signal(SIG_BLOCK, SIGINT) == 0);
    *t = tracer_with_handlers(dir);
    struct sigaction installed;
    CHECK(sigaction(SIGTERM, NULL, &installed) == 0);
    void (*ours)(int) = installed.sa_handler;
    CHECK(ours != on_term);
    record_span(*t, "before-the-signal");

    pthread_t r;
    CHECK(pthread_create(&r, NULL, receive_then_hold, (void *)(long)SIGTERM) == 0);
    while (!receiver_tid) usleep(1000);
    /* Pending for the process until the receiver's sigsuspend takes it. */
    CHECK(kill(getpid(), SIGTERM) == 0);

    /* The watchdog delivers (its disposition in place of spanguard's), or
     * has delivered already when this thread was slow to look... */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (disposition_is(SIGTERM, ours) && !term_runs && seconds_since(&t0) < 20) usleep(1000);
    CHECK(!disposition_is(SIGTERM, ours) || term_runs);
    /* ...recorded meanwhile, this span waits for the thaw after it... */
    record_span(*t, "while-held");
    /* ...and is done: spanguard's handler is back. */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!disposition_is(SIGTERM, ours) && seconds_since(&t0) < 20) usleep(1000);
    CHECK(disposition_is(SIGTERM, ours));
    /* The host's handler has run, though the receiver still holds the
     * signal. It had not, and would not until the receiver let go. */
    CHECK(term_runs == 1);
    if (term_runs != 1)
        fprintf(stderr, "the watchdog was done with SIGTERM and the host's handler had run %d times\n",
                (int)term_runs);

    /* The receiver lets go of the copy it held. */
    hold_released = 1;
    CHECK(wait_for_count(&hold_let_go, 1, 20));
    /* The barrier: spanguard's handler, the watchdog and the host's
     * handler for SIGINT, after whatever the held copy set off. */
    CHECK(kill(getpid(), SIGINT) == 0);
    CHECK(wait_for_count(&int_runs, 1, 20));
    CHECK(term_runs == 1);
    if (term_runs != 1) fprintf(stderr, "the host's SIGTERM handler ran %d times in all\n", (int)term_runs);
    return r;
}

/* The end of a child whose process lives on: shut down, every span once
 * (flushed, neither lost nor sent twice), no dump left behind (the
 * tracers were thawed and took theirs back). Exits 3 on a failed check. */
static void finish(spanguard_tracer *t, const char *dir) {
    record_span(t, "after");
    CHECK(spanguard_result_is_ok(spanguard_shutdown(t, 5000)));
    spanguard_tracer_free(t);
    CHECK(count_in_dir(dir, "\"before-the-signal\"") == 1);
    CHECK(count_in_dir(dir, "\"while-held\"") == 1);
    CHECK(count_in_dir(dir, "\"after\"") == 1);
    char spool[600];
    snprintf(spool, sizeof spool, "%s-spool", dir);
    CHECK(files_ending(spool, ".sgdump") == 0);
    _exit(failures ? 3 : 0);
}

static void plain(const char *dir) {
    spanguard_tracer *t = NULL;
    pthread_t r = held_sigterm(&t, dir, 0);
    CHECK(pthread_cancel(r) == 0);
    CHECK(pthread_join(r, NULL) == 0);
    finish(t, dir);
}

/* The handler ends its thread: the stand-in's, then the receiver's. */
static void ends_its_thread(const char *dir) {
    spanguard_tracer *t = NULL;
    end_thread = 1;
    pthread_t r = held_sigterm(&t, dir, 0);
    /* The watchdog lives on: the next SIGTERM is acted on, on the
     * receiver. */
    record_span(t, "before-the-second");
    CHECK(kill(getpid(), SIGTERM) == 0);
    CHECK(wait_for_count(&term_runs, 2, 20));
    CHECK(pthread_join(r, NULL) == 0);
    CHECK(term_runs == 2);
    CHECK(count_in_dir(dir, "\"before-the-second\"") == 1);
    finish(t, dir);
}

/* A one-shot handler: it runs once; the next SIGTERM ends the process,
 * flushed first. */
static void one_shot(const char *dir) {
    spanguard_tracer *t = NULL;
    (void)held_sigterm(&t, dir, SA_RESETHAND);
    record_span(t, "before-the-second");
    if (failures) _exit(3);
    CHECK(kill(getpid(), SIGTERM) == 0);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (seconds_since(&t0) < 20) usleep(1000);
    fprintf(stderr, "the second SIGTERM did not end the process; the handler ran %d times\n", (int)term_runs);
    _exit(4);
}

/* Runs `body` in a child with the sink `<scratch>/<name>`; checks it
 * exited 0, or died of SIGTERM with its spans flushed when `dies`. */
static void in_child(void (*body)(const char *), const char *scratch, const char *name, int dies) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/%s", scratch, name);
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        signal(SIGALRM, on_alarm);
        alarm(60);
        body(dir);
        _exit(6);
    }
    if (!dies) {
        check_exited_0(pid, name, "child");
        return;
    }
    check_died_of_sigterm(pid, name);
    CHECK(count_in_dir(dir, "\"before-the-signal\"") == 1);
    CHECK(count_in_dir(dir, "\"while-held\"") == 1);
    CHECK(count_in_dir(dir, "\"before-the-second\"") == 1);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *scratch = argc > 1 ? argv[1] : "build/test_host_handler_receiver_holds-spans";
    in_child(plain, scratch, "plain", 0);
    in_child(ends_its_thread, scratch, "pthread-exit", 0);
    in_child(one_shot, scratch, "one-shot", 1);
    return check_summary();
}
