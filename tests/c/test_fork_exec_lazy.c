/* A forked child that execs at once (Node's child_process forks for every
 * command an agent runs) or leaves without using the tracer makes no
 * tracer: it starts no thread and leaves no file in the sink or spool
 * directory (where a tracer made in the fork handler left its
 * .sgdump-pending / .sgspool-pending and flight files, a thread, and a
 * 256 MiB mapping in every such child). Each child reports the threads it
 * has (/proc/self/task) through a pipe just before it execs or exits.
 * Then a chain of forks, none of which uses the tracer, ends in a
 * grandchild many times removed whose span arrives: numbers of tracers
 * are not used up by forks. A child whose threads all begin their first
 * span at once makes one tracer, which sends them all; a child with no
 * tracer yet dies of SIGTERM as it would without spanguard. */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "sink_count.h"

#define S(str) (str), strlen(str)
#define CHILDREN 6
/* Deeper than there are tracer numbers (255). */
#define CHAIN 260

static char sink[512], spool[512];

/* Where the test is, said by the alarm: a hang fails the test, and says
 * which part hung, rather than holding up the suite (a run under load 20
 * took 230 s, the forks' chain most of it). */
static volatile sig_atomic_t stage;
static const char *const stages[] = {"before the children", "the children", "the chain of forks",
                                     "the racing child", "the SIGTERM child", "the end"};

static void on_alarm(int signal) {
    (void)signal;
    char line[96];
    int n = snprintf(line, sizeof line, "alarm: the test hung in %s\n", stages[stage]);
    if (n > 0 && write(2, line, (size_t)n) < 0) {
    }
    _exit(70);
}

/* The names in `dir`, one a line, sorted; "" when it cannot be read. */
static void listing(const char *dir, char *out, size_t cap) {
    out[0] = '\0';
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, "..")) {
            strncat(out, names[i]->d_name, cap - strlen(out) - 1);
            strncat(out, "\n", cap - strlen(out) - 1);
        }
        free(names[i]);
    }
    free(names);
}

static int threads_of_this_process(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

#define RACERS 8
static pthread_barrier_t start_line;

static void *racer(void *arg) {
    spanguard_tracer *t = arg;
    static _Atomic int next;
    int me = next++;
    char name[64];
    snprintf(name, sizeof name, "first use %d", me);
    pthread_barrier_wait(&start_line);
    spanguard_span s;
    CHECK_RC(spanguard_span_begin(t, S(name), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    return NULL;
}

/* A child whose threads all use the tracer first at once. */
static void racing_first_uses(spanguard_tracer *t) {
    pthread_t threads[RACERS];
    pthread_barrier_init(&start_line, NULL, RACERS);
    for (int i = 0; i < RACERS; i++) CHECK(pthread_create(&threads[i], NULL, racer, t) == 0);
    for (int i = 0; i < RACERS; i++) pthread_join(threads[i], NULL);
    struct spanguard_counters c = {.struct_size = sizeof c};
    CHECK_RC(spanguard_stats(t, &c), SPANGUARD_RESULT_OK);
    CHECK(c.spans_begun == RACERS && c.spans_ended == RACERS);
    CHECK_RC(spanguard_shutdown(t, 10000), SPANGUARD_RESULT_OK);
    _exit(failures ? 1 : 0);
}

/* Forks the next link of the chain and waits for it; the last one begins
 * and ends a span and shuts down. The exit status says whether every
 * link did its part. */
static int chain(spanguard_tracer *t, int depth) {
    if (depth == CHAIN) {
        spanguard_span s;
        if (spanguard_span_begin(t, S("end of the chain"), SPANGUARD_SPAN_NONE, 0, &s) !=
            SPANGUARD_RESULT_OK)
            return 1;
        if (spanguard_span_end(s) != SPANGUARD_RESULT_OK) return 2;
        return spanguard_shutdown(t, 10000) == SPANGUARD_RESULT_OK ? 0 : 3;
    }
    pid_t pid = fork();
    if (pid < 0) return 4;
    if (pid == 0) _exit(chain(t, depth + 1));
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return 5;
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "  link %d of the chain (pid %d) died of signal %d\n", depth + 1, (int)pid,
                WTERMSIG(status));
        return 6;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 5;
}

int main(int argc, char **argv) {
    signal(SIGALRM, on_alarm);
    alarm(600); /* not inherited by the forks: each one is waited for here */
    const char *scratch = argc > 1 ? argv[1] : "build/test_fork_exec_lazy-spans";
    snprintf(sink, sizeof sink, "%s/spans", scratch);
    snprintf(spool, sizeof spool, "%s/spool", scratch);
    struct spanguard_config cfg;
    CHECK_RC(spanguard_config_init(&cfg, sizeof cfg), SPANGUARD_RESULT_OK);
    cfg.sink_dir = sink;
    cfg.spool_dir = spool;
    cfg.install_signal_handlers = 1;
    cfg.flight_recorder = 1;
    spanguard_tracer *tracer = NULL;
    CHECK_RC(spanguard_tracer_new(&cfg, &tracer), SPANGUARD_RESULT_OK);
    if (!tracer) return check_summary();

    /* The parent's tracer in use, its sink file there. */
    spanguard_span span;
    CHECK_RC(spanguard_span_begin(tracer, S("in the parent"), SPANGUARD_SPAN_NONE, 0, &span),
             SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(span), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_flush(tracer, 10000), SPANGUARD_RESULT_OK);

    static char sink_before[8192], spool_before[8192], sink_after[8192], spool_after[8192];
    listing(sink, sink_before, sizeof sink_before);
    listing(spool, spool_before, sizeof spool_before);
    CHECK(strlen(sink_before) > 0);

    stage = 1;
    for (int i = 0; i < CHILDREN; i++) {
        int fds[2];
        CHECK(pipe(fds) == 0);
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            int threads = threads_of_this_process();
            if (write(fds[1], &threads, sizeof threads) != sizeof threads) _exit(3);
            close(fds[1]);
            /* Half exec at once, half leave without using the tracer. */
            if (i % 2 == 0) execl("/bin/true", "true", (char *)NULL);
            _exit(0);
        }
        close(fds[1]);
        int threads = -1;
        CHECK(read(fds[0], &threads, sizeof threads) == sizeof threads);
        close(fds[0]);
        CHECK(threads == 1);
        if (threads != 1) fprintf(stderr, "  child %d had %d threads\n", i, threads);
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }

    listing(sink, sink_after, sizeof sink_after);
    listing(spool, spool_after, sizeof spool_after);
    CHECK(strcmp(sink_before, sink_after) == 0);
    CHECK(strcmp(spool_before, spool_after) == 0);
    if (strcmp(spool_before, spool_after))
        fprintf(stderr, "  spool before:\n%s  spool after:\n%s", spool_before, spool_after);
    if (strcmp(sink_before, sink_after))
        fprintf(stderr, "  sink before:\n%s  sink after:\n%s", sink_before, sink_after);

    /* A grandchild CHAIN forks removed records, and its span arrives. */
    stage = 2;
    int chained = chain(tracer, 0);
    CHECK(chained == 0);
    if (chained) fprintf(stderr, "  the chain of forks failed: %d\n", chained);

    /* One tracer for first uses at once, every span sent. */
    stage = 3;
    pid_t racing = fork();
    if (racing == 0) racing_first_uses(tracer);
    int status = 0;
    CHECK(waitpid(racing, &status, 0) == racing);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    /* SIGTERM ends a child with no tracer yet, as if spanguard were not
     * there (no handler of ours left to swallow it). */
    stage = 4;
    int ready[2];
    CHECK(pipe(ready) == 0);
    pid_t waiting = fork();
    if (waiting == 0) {
        close(ready[0]);
        char byte = 1;
        if (write(ready[1], &byte, 1) != 1) _exit(3);
        for (;;) pause();
    }
    close(ready[1]);
    char byte = 0;
    CHECK(read(ready[0], &byte, 1) == 1);
    close(ready[0]);
    CHECK(kill(waiting, SIGTERM) == 0);
    CHECK(waitpid(waiting, &status, 0) == waiting);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);

    stage = 5;
    /* The parent's tracer goes on. */
    CHECK_RC(spanguard_span_begin(tracer, S("after the forks"), SPANGUARD_SPAN_NONE, 0, &span),
             SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(span), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_shutdown(tracer, 10000), SPANGUARD_RESULT_OK);
    spanguard_tracer_free(tracer);
    CHECK(count_in_dir(sink, "\"name\":\"end of the chain\"") == 1);
    CHECK(count_in_dir(sink, "\"name\":\"after the forks\"") == 1);
    for (int i = 0; i < RACERS; i++) {
        char needle[64];
        snprintf(needle, sizeof needle, "\"name\":\"first use %d\"", i);
        CHECK(count_in_dir(sink, needle) == 1);
    }
    return check_summary();
}
