/* A forked worker (a plain C program's fork, no exec) records spans with
 * its parent's tracer, then a signal ends it: it raises SIGTERM or
 * SIGSEGV itself, or its parent sends it SIGTERM (a supervisor's stop),
 * with and without the flight recorder. Every span it recorded must reach
 * the sink exactly once (ended ones delivered by its watchdog's flush or
 * sent from its dump by its parent's running tracer, the open one marked
 * interrupted), the child must die of that very signal, never hang (an
 * alarm turns a hang into SIGALRM; the parent also gives up after 30 s and
 * kills it), and the spool directory ends empty. (It did before this test
 * was written: the plain C program's fork is the usual user, and sound.) */
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
#include "idle_tracer.h"
#include "proc.h"
#include "sink_count.h"

#define S(str) (str), strlen(str)
#define ENDED 5

/* Nothing goes out before the signal. */
static spanguard_tracer *tracer(const char *sink, const char *spool, int flight) {
    spanguard_config cfg = idle_tracer_config("fork-child-signals", sink, spool, flight);
    return tracer_or_exit(&cfg);
}

/* Forks a child that records `tag`-0..ENDED-1 and `tag`-open with `t`,
 * then dies of `signal` (raised by itself, or sent by this parent with
 * `by_parent`). Returns what ended it: the signal, or -1 (a hang, killed;
 * or an exit). */
static int child_dies(spanguard_tracer *t, const char *tag, int signal, int by_parent) {
    int ready[2];
    CHECK(pipe(ready) == 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(20);
        close(ready[0]);
        int failed_before = failures; /* the parent's, copied */
        for (int i = 0; i < ENDED; i++) {
            char name[64];
            snprintf(name, sizeof name, "%s-%d", tag, i);
            record_span(t, name);
        }
        char open_name[64];
        snprintf(open_name, sizeof open_name, "%s-open", tag);
        spanguard_span open;
        CHECK_RC(spanguard_span_begin(t, S(open_name), SPANGUARD_SPAN_NONE, 0, &open), SPANGUARD_RESULT_OK);
        if (write(ready[1], failures > failed_before ? "f" : "r", 1) != 1) _exit(3);
        /* A termination signal's handler only wakes the watchdog, which
         * flushes, dumps and then lets the signal end the process: the
         * program goes on meanwhile, as it would at its work. */
        if (!by_parent) raise(signal);
        for (;;) pause();
    }
    close(ready[1]);
    char said = 0;
    CHECK(read(ready[0], &said, 1) == 1 && said == 'r');
    close(ready[0]);
    if (by_parent) kill(pid, signal);
    struct timespec since;
    clock_gettime(CLOCK_MONOTONIC, &since);
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) != pid) {
        if (seconds_since(&since) > 30) {
            fprintf(stderr, "%s: the child hung: killed\n", tag);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        struct timespec tick = {0, 10000000L};
        nanosleep(&tick, NULL);
    }
    if (WIFSIGNALED(status)) return WTERMSIG(status);
    fprintf(stderr, "%s: the child exited with %d\n", tag, WEXITSTATUS(status));
    return -1;
}

/* `tag`'s spans each in `sink` once, the open one among them, within 20 s
 * (the parent's running tracer looks for leftovers every few seconds). */
static int each_once_within(const char *sink, const char *tag) {
    char needle[96];
    struct timespec since;
    clock_gettime(CLOCK_MONOTONIC, &since);
    snprintf(needle, sizeof needle, "\"name\":\"%s-open\"", tag);
    while (count_in_dir(sink, needle) < 1 && seconds_since(&since) < 20) {
        struct timespec tick = {0, 20000000L};
        nanosleep(&tick, NULL);
    }
    int once = count_in_dir(sink, needle) == 1;
    if (!once) fprintf(stderr, "  %s arrived %ld times\n", needle, count_in_dir(sink, needle));
    for (int i = 0; i < ENDED; i++) {
        snprintf(needle, sizeof needle, "\"name\":\"%s-%d\"", tag, i);
        long c = count_in_dir(sink, needle);
        if (c != 1) fprintf(stderr, "  %s arrived %ld times\n", needle, c);
        once &= c == 1;
    }
    return once;
}

/* The cases, with and without the flight recorder, over `dir`. */
static void run_cases(const char *dir) {
    char spool[512];
    snprintf(spool, sizeof spool, "%s-spool", dir);
    static const struct {
        const char *tag;
        int signal, by_parent;
    } cases[] = {
        {"raised-term", SIGTERM, 0},
        {"raised-segv", SIGSEGV, 0},
        {"sent-term", SIGTERM, 1},
    };
    int interrupted = 0;
    for (int flight = 0; flight <= 1; flight++) {
        spanguard_tracer *t = tracer(dir, spool, flight);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            char tag[64];
            snprintf(tag, sizeof tag, "%s%s", flight ? "flight-" : "", cases[i].tag);
            int ended_by = child_dies(t, tag, cases[i].signal, cases[i].by_parent);
            if (ended_by != cases[i].signal) fprintf(stderr, "%s: ended by %d\n", tag, ended_by);
            CHECK(ended_by == cases[i].signal);
            CHECK(each_once_within(dir, tag));
            interrupted++;
        }
        CHECK_RC(spanguard_shutdown(t, 10000), SPANGUARD_RESULT_OK);
        spanguard_tracer_free(t);
    }
    CHECK(count_in_dir(dir, "\"spanguard.interrupted\"") == interrupted);
    CHECK(files_in_dir(spool, "") == 0);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "build/test_fork_child_signals-spans";
    run_cases(dir);
    return check_summary();
}
