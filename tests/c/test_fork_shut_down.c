/* A tracer shut down before a fork stays shut down in the child: its
 * calls answer SPANGUARD_RESULT_SHUT_DOWN as they do in the parent, and
 * nothing the child tries to record is exported (the fork handler made
 * every tracer anew, so a shut-down one came back to life in the child).
 * And a child that shuts a tracer down before using it (a worker's exit
 * hook) answers SHUT_DOWN from then on and leaves no file behind. The
 * children report through their exit status; no sleeps. */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "sink_count.h"

#define S(str) (str), strlen(str)

static char sink[512], spool[512];

static spanguard_tracer *new_tracer(void) {
    struct spanguard_config cfg;
    CHECK_RC(spanguard_config_init(&cfg, sizeof cfg), SPANGUARD_RESULT_OK);
    cfg.sink_dir = sink;
    cfg.spool_dir = spool;
    cfg.install_signal_handlers = 0;
    spanguard_tracer *t = NULL;
    CHECK_RC(spanguard_tracer_new(&cfg, &t), SPANGUARD_RESULT_OK);
    return t;
}

/* Runs `child` in a forked child; its checks' failures are its status. */
static void in_child(void (*child)(spanguard_tracer *), spanguard_tracer *t) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        child(t);
        _exit(failures ? 1 : 0);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void calls_answer_shut_down(spanguard_tracer *t) {
    spanguard_span s = SPANGUARD_SPAN_NONE;
    CHECK_RC(spanguard_span_begin(t, S("revived in the child"), SPANGUARD_SPAN_NONE, 0, &s),
             SPANGUARD_RESULT_SHUT_DOWN);
    spanguard_span_end(s);
    CHECK_RC(spanguard_flush(t, 1000), SPANGUARD_RESULT_SHUT_DOWN);
    spanguard_attribute attr = {.key = "k", .key_len = 1, .type_ = SPANGUARD_VALUE_INT, .int_value = 1};
    CHECK_RC(spanguard_tracer_set_resource(t, &attr, 1), SPANGUARD_RESULT_SHUT_DOWN);
    CHECK_RC(spanguard_shutdown(t, 1000), SPANGUARD_RESULT_SHUT_DOWN);
    CHECK_RC(spanguard_tracer_close(t), SPANGUARD_RESULT_SHUT_DOWN);
}

/* The same in a child, and in a child of that child. */
static void and_in_grandchild(spanguard_tracer *t) {
    calls_answer_shut_down(t);
    in_child(calls_answer_shut_down, t);
}

static int files_before;

static void shuts_down_unused(spanguard_tracer *t) {
    CHECK_RC(spanguard_shutdown(t, 1000), SPANGUARD_RESULT_OK);
    spanguard_span s = SPANGUARD_SPAN_NONE;
    CHECK_RC(spanguard_span_begin(t, S("after the child's shutdown"), SPANGUARD_SPAN_NONE, 0, &s),
             SPANGUARD_RESULT_SHUT_DOWN);
    CHECK_RC(spanguard_shutdown(t, 1000), SPANGUARD_RESULT_SHUT_DOWN);
    CHECK(files_ending(spool, "") == files_before);
    /* A grandchild of this child: shut down too. */
    in_child(calls_answer_shut_down, t);
}

int main(int argc, char **argv) {
    const char *scratch = argc > 1 ? argv[1] : "build/test_fork_shut_down-spans";
    snprintf(sink, sizeof sink, "%s/spans", scratch);
    snprintf(spool, sizeof spool, "%s/spool", scratch);

    spanguard_tracer *t = new_tracer();
    if (!t) return check_summary();
    spanguard_span s;
    CHECK_RC(spanguard_span_begin(t, S("before the shutdown"), SPANGUARD_SPAN_NONE, 0, &s),
             SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_shutdown(t, 10000), SPANGUARD_RESULT_OK);
    /* As the parent answers... */
    calls_answer_shut_down(t);
    /* ...the child, and a child of the child. */
    in_child(and_in_grandchild, t);

    /* A running tracer a child shuts down before using it. */
    spanguard_tracer *running = new_tracer();
    if (running) {
        files_before = files_ending(spool, "");
        in_child(shuts_down_unused, running);
        CHECK_RC(spanguard_span_begin(running, S("parent goes on"), SPANGUARD_SPAN_NONE, 0, &s),
                 SPANGUARD_RESULT_OK);
        CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
        CHECK_RC(spanguard_shutdown(running, 10000), SPANGUARD_RESULT_OK);
        spanguard_tracer_free(running);
    }
    spanguard_tracer_free(t);

    CHECK(count_in_dir(sink, "\"name\":\"before the shutdown\"") == 1);
    CHECK(count_in_dir(sink, "\"name\":\"parent goes on\"") == 1);
    CHECK(count_in_dir(sink, "\"name\":\"revived in the child\"") == 0);
    CHECK(count_in_dir(sink, "\"name\":\"after the child's shutdown\"") == 0);
    return check_summary();
}
