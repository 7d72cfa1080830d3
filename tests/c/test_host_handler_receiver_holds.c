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
 *   ends the process as the default does;
 * - one that hands off to a worker it forks (a gunicorn-style graceful
 *   handoff) that sets PR_SET_PDEATHSIG, bound to the thread that forked
 *   it: the worker must outlive the handler and answer when asked. The
 *   stand-in ended as the handler returned, and the kernel killed the
 *   worker with it (SIGKILL); the stand-in lives on now;
 * - the plain one, then the program's own threads all end (main calls
 *   pthread_exit): the process must still exit, its spans flushed, with
 *   the stand-in left waiting among spanguard's threads;
 * - the plain one, then a fork, and the child's own held SIGTERM: the
 *   child has no stand-in (it was not forked on one) and must not wait
 *   for one it thinks it has: its handler runs once.
 * Conditions with deadlines, no sleeps; an alarm turns a hang into a
 * failure. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <poll.h>
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

static volatile sig_atomic_t term_runs;  /* how often the host's SIGTERM handler ran */
static volatile sig_atomic_t int_runs;   /* and its SIGINT handler */
static volatile sig_atomic_t end_thread; /* whether the SIGTERM handler ends its thread */
static volatile sig_atomic_t hand_off;   /* whether it forks a worker */
#define WORKERS 2                          /* one per round of a case */
static volatile sig_atomic_t workers;    /* the handler forked so many */
static volatile pid_t worker[WORKERS];   /* pids (-2: it never said it was ready) */
static int ask[WORKERS][2];              /* the test asks a worker... */
static int answer[WORKERS][2];           /* ...which answers: it lives */

/* Forks the next worker a graceful handoff starts: it dies with the
 * thread that forked it (PR_SET_PDEATHSIG), and answers one question.
 * The handler returns once the worker has set that (it says so first):
 * a worker that set it after its thread ended would live whatever the
 * thread did. Async-signal-safe: fork, prctl, getppid, read, write,
 * close. */
static void start_worker(void) {
    int n = workers;
    if (n >= WORKERS) return;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(126);
        close(ask[n][1]);
        close(answer[n][0]);
        if (write(answer[n][1], "r", 1) != 1) _exit(125);
        char c;
        if (read(ask[n][0], &c, 1) != 1) _exit(124);
        _exit(write(answer[n][1], "y", 1) == 1 ? 0 : 123);
    }
    worker[n] = pid;
    workers = n + 1;
    close(ask[n][0]);
    close(answer[n][1]);
    char ready;
    if (pid > 0 && read(answer[n][0], &ready, 1) != 1) worker[n] = -2;
}

static void on_term(int signal) {
    (void)signal;
    term_runs++;
    if (hand_off) start_worker();
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

static void (*ours)(int); /* SIGTERM's disposition as spanguard installed it */

/* One round: SIGTERM through a new receiver, which holds it past the
 * watchdog's wait; `while_held` recorded as the watchdog delivers it.
 * Checks that the host's handler had run once by the time the watchdog
 * was done, and once still after the receiver let go of its copy (SIGINT
 * as the barrier). The receiver's thread. */
static pthread_t held_round(spanguard_tracer *t, const char *while_held) {
    term_runs = int_runs = 0;
    hold_released = hold_let_go = 0;
    receiver_tid = 0;
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
    record_span(t, while_held);
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

/* In the child: the host's handlers (SIGTERM's with `flags`), a tracer in
 * `dir`, and the first round (`held_round`). The receiver's thread. */
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
    ours = installed.sa_handler;
    CHECK(ours != on_term);
    record_span(*t, "before-the-signal");
    return held_round(*t, "while-held");
}

/* Ends the receiver `r` of a round (in pause(), the signals unblocked). */
static void end_receiver(pthread_t r) {
    CHECK(pthread_cancel(r) == 0);
    CHECK(pthread_join(r, NULL) == 0);
}

/* The end of a child whose process lives on: shut down, every span once
 * (flushed, neither lost nor sent twice), those of `also` too (quoted
 * names, NULL at the end; NULL: none), no dump left behind (the tracers
 * were thawed and took theirs back). Exits 3 on a failed check. */
static void finish_with(spanguard_tracer *t, const char *dir, const char *const *also) {
    record_span(t, "after");
    CHECK(spanguard_result_is_ok(spanguard_shutdown(t, 5000)));
    spanguard_tracer_free(t);
    CHECK(count_in_dir(dir, "\"before-the-signal\"") == 1);
    CHECK(count_in_dir(dir, "\"while-held\"") == 1);
    CHECK(count_in_dir(dir, "\"after\"") == 1);
    for (; also && *also; also++) {
        long n = count_in_dir(dir, *also);
        if (n != 1) fprintf(stderr, "%s arrived %ld times\n", *also, n);
        CHECK(n == 1);
    }
    char spool[600];
    snprintf(spool, sizeof spool, "%s-spool", dir);
    CHECK(files_ending(spool, ".sgdump") == 0);
    _exit(failures ? 3 : 0);
}

static void finish(spanguard_tracer *t, const char *dir) { finish_with(t, dir, NULL); }

static void plain(const char *dir) {
    spanguard_tracer *t = NULL;
    pthread_t r = held_sigterm(&t, dir, 0);
    end_receiver(r);
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

/* Whether worker `n` is alive: asked, it answers (killed, its end of the
 * pipe is closed: EOF) and then exits 0. */
static void check_worker_lives(int n) {
    CHECK(worker[n] > 0);
    if (worker[n] <= 0) fprintf(stderr, "worker %d: %d (-2: it never said it was ready)\n", n, (int)worker[n]);
    (void)!write(ask[n][1], "?", 1);
    struct pollfd in = {.fd = answer[n][0], .events = POLLIN};
    char said = 0;
    CHECK(poll(&in, 1, 20000) == 1 && read(answer[n][0], &said, 1) == 1 && said == 'y');
    int status = 0;
    CHECK(worker[n] > 0 && waitpid(worker[n], &status, 0) == worker[n]);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "worker %d answered %s and ended with status %#x (SIGKILL: %#x)\n", n,
                said ? "'y'" : "nothing", status, SIGKILL);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* The handler forks a worker bound to its thread, in two rounds: each
 * worker answers after the watchdog is done with its signal, and ends as
 * it chose to (exit 0), not killed with the stand-in the handler ran on.
 * The second round's handler runs on the same stand-in, not a new one
 * each time. */
static void worker_outlives_handler(const char *dir) {
    spanguard_tracer *t = NULL;
    for (int n = 0; n < WORKERS; n++) CHECK(pipe(ask[n]) == 0 && pipe(answer[n]) == 0);
    signal(SIGPIPE, SIG_IGN); /* asking a worker that is gone: EPIPE */
    hand_off = 1;
    end_receiver(held_sigterm(&t, dir, 0));
    CHECK(workers == 1);
    record_span(t, "before-the-second");
    end_receiver(held_round(t, "while-held-again"));
    CHECK(workers == 2);
    CHECK(threads_named("spanguard-stand") == 1);
    for (int n = 0; n < WORKERS; n++) check_worker_lives(n);
    static const char *const also[] = {"\"before-the-second\"", "\"while-held-again\"", NULL};
    finish_with(t, dir, also);
}

/* After the handler ran on the stand-in, the program's own threads all
 * end: main calls pthread_exit. What is left is spanguard's (the
 * exporter, the watchdog, the stand-in waiting for the next handler), so
 * the process exits 0 (`export::last_thread`), its spans flushed by the
 * exit hook; the parent checks. */
static void then_main_exits(const char *dir) {
    spanguard_tracer *t = NULL;
    pthread_t r = held_sigterm(&t, dir, 0);
    end_receiver(r);
    record_span(t, "after");
    if (failures) _exit(3);
    pthread_exit(NULL);
}

/* After the handler ran on the stand-in, the process forks; the child's
 * own SIGTERM, held as well, runs its handler once (on a stand-in of its
 * own: the parent's is not in the child). */
static void then_fork(const char *dir) {
    spanguard_tracer *t = NULL;
    pthread_t r = held_sigterm(&t, dir, 0);
    end_receiver(r);
    if (failures) _exit(3);
    char child_dir[700];
    snprintf(child_dir, sizeof child_dir, "%s-child", dir);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        spanguard_tracer *mine = NULL;
        end_receiver(held_sigterm(&mine, child_dir, 0));
        finish(mine, child_dir);
    }
    check_exited_0(pid, "then-fork", "child's child");
    finish(t, dir);
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
        failures = 0; /* this case's alone */
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
    in_child(worker_outlives_handler, scratch, "fork-handoff", 0);
    in_child(then_fork, scratch, "then-fork", 0);

    /* Its alarm cannot end a child whose own threads are gone (spanguard's
     * block SIGALRM): bounded here instead. */
    char dir[600];
    snprintf(dir, sizeof dir, "%s/then-main-exits", scratch);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        failures = 0;
        then_main_exits(dir);
    }
    int status = 0;
    int ended = wait_bounded(pid, &status, 30);
    if (!ended) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    if (!ended || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "then-main-exits: %s, status %#x\n", ended ? "ended" : "never ended (killed)", status);
    CHECK(ended && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(count_in_dir(dir, "\"before-the-signal\"") == 1);
    CHECK(count_in_dir(dir, "\"while-held\"") == 1);
    CHECK(count_in_dir(dir, "\"after\"") == 1);
    return check_summary();
}
