/* fork: the child gets a working tracer, handles from before the fork are
 * stale in it, and no span is exported by both processes. Both write to one
 * sink directory (one file per process); the parent then counts every span
 * name across all files. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanguard.h"
#include "sink_count.h"

#define S(str) (str), strlen(str)
#define CHECK(cond)                                                              \
    do {                                                                         \
        checks++;                                                                \
        if (!(cond)) {                                                           \
            failures++;                                                          \
            fprintf(stderr, "%s:%d (pid %d): check failed: %s\n", __FILE__, __LINE__, \
                    (int)getpid(), #cond);                                      \
        }                                                                        \
    } while (0)

static int checks, failures;

static void emit(spanguard_tracer *t, const char *name, int n) {
    for (int i = 0; i < n; i++) {
        spanguard_span s;
        CHECK(spanguard_span_begin(t, S(name), SPANGUARD_SPAN_NONE, 0, &s) == SPANGUARD_RESULT_OK);
        CHECK(spanguard_span_end(s) == SPANGUARD_RESULT_OK);
    }
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "build/fork-test-spans";
    spanguard_config cfg;
    (void)spanguard_config_init(&cfg, sizeof cfg);
    cfg.service_name = "fork-test";
    cfg.sink_dir = dir;
    cfg.schedule_delay_ms = 5000; /* nothing exported before the fork */
    cfg.install_signal_handlers = 1;
    spanguard_tracer *t;
    if (spanguard_tracer_new(&cfg, &t) != SPANGUARD_RESULT_OK) return 2;
    emit(t, "before-fork", 50); /* buffered, not yet exported */
    spanguard_span open_in_parent;
    CHECK(spanguard_span_begin(t, S("open-at-fork"), SPANGUARD_SPAN_NONE, 0, &open_in_parent) ==
          SPANGUARD_RESULT_OK);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        CHECK(spanguard_span_end(open_in_parent) == SPANGUARD_RESULT_STALE_SPAN);
        emit(t, "in-child", 30);
        CHECK(spanguard_flush(t, 10000) == SPANGUARD_RESULT_OK);
        /* What arrived is counted in the sink by the parent below. */
        CHECK(spanguard_shutdown(t, 10000) == SPANGUARD_RESULT_OK);
        spanguard_tracer_free(t);
        printf("child: %d passed, %d failed\n", checks - failures, failures);
        fflush(stdout);
        _exit(failures ? 1 : 0);
    }
    emit(t, "after-fork", 20);
    CHECK(spanguard_span_end(open_in_parent) == SPANGUARD_RESULT_OK);
    CHECK(spanguard_shutdown(t, 10000) == SPANGUARD_RESULT_OK);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(count_in_dir(dir, "\"name\":\"before-fork\"") == 50);
    CHECK(count_in_dir(dir, "\"name\":\"open-at-fork\"") == 1);
    CHECK(count_in_dir(dir, "\"name\":\"after-fork\"") == 20);
    CHECK(count_in_dir(dir, "\"name\":\"in-child\"") == 30);
    spanguard_tracer_free(t);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}
