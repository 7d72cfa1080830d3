/* A process killed (SIGKILL) while it sets a value again must leave in its
 * flight file a value that was set, whole, or (only when the new value
 * does not begin with the old one) an empty one: never one half old and
 * half new, and never another span's value cut or changed.
 *
 * The child keeps a span with a 50 KB prompt open, and on another span
 * sets `gen_ai.completion` again and again, (v % 200 + 1) KB for version
 * v. Streaming trials (even): each version begins with the one before, as
 * a completion streamed in does, so the old value stays readable while
 * the new one is written. Rewriting trials (odd): version v is letters
 * shifted by v, so two versions share no prefix and a value torn between
 * two reads as letters that do not follow one shift. In half the trials
 * the value is the last thing its span stored, so each is written over
 * the one before; in the other half `llm.output_messages.0.message.content`
 * is set after it, the same way, as an instrumentation that sets both
 * does: each value then goes in the room it took to grow into when it
 * last moved, or moves. The parent kills the child at a random moment,
 * recovers its flight file and checks what arrived. */
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
#include "sink_count.h"

#define S(str) (str), strlen(str)
#define TRIALS 12
#define STEP 1000
#define VERSIONS 200
#define PROMPT_BYTES 50000

static char sink[512], spool[512];
static char text[VERSIONS * STEP + 26];

/* Nothing is exported before the kill. */
static spanguard_tracer *start_tracer(int flight) {
    spanguard_config cfg = idle_tracer_config("kill-set-again", sink, spool, flight);
    cfg.payload_pool_mib = 2;
    return tracer_or_exit(&cfg);
}

/* The child: never returns; says "r" on `ready` once it sets values
 * again. */
static void set_again_until_killed(int ready, int shifted, int in_turn) {
    spanguard_tracer *t = start_tracer(1);
    spanguard_span other, s;
    if (spanguard_span_begin(t, S("other"), SPANGUARD_SPAN_NONE, 0, &other) != SPANGUARD_RESULT_OK) _exit(3);
    (void)spanguard_span_set_string(other, S("gen_ai.prompt"), text, PROMPT_BYTES);
    if (spanguard_span_begin(t, S("stream"), SPANGUARD_SPAN_NONE, 0, &s) != SPANGUARD_RESULT_OK) _exit(3);
    for (long v = 0;; v++) {
        (void)spanguard_span_set_string(s, S("gen_ai.completion"), text + (shifted ? v % 26 : 0),
                                        (size_t)(v % VERSIONS + 1) * STEP);
        if (in_turn)
            (void)spanguard_span_set_string(s, S("llm.output_messages.0.message.content"),
                                            text + (shifted ? v % 26 : 0),
                                            (size_t)(v % VERSIONS + 1) * STEP);
        if (v == 10 && write(ready, "r", 1) != 1) _exit(3);
    }
}

/* The string value after `needle` in the sink, its length in `*len`. */
static const char *value_of(const char *needle, size_t *len) {
    const char *v = find_in_sink(sink, needle);
    if (v) *len = strcspn(v, "\"");
    return v;
}

static int torn = 0, empty = 0, whole = 0;

/* Checks the completion under `key`: one version whole, or (only when the
 * versions share no prefix) empty. */
static void check_version(int trial, const char *key, int shifted) {
    char needle[128];
    snprintf(needle, sizeof needle, "{\"key\":\"%s\",\"value\":{\"stringValue\":\"", key);
    size_t len = 0;
    const char *c = value_of(needle, &len);
    CHECK(c != NULL);
    if (!c) return;
    if (len == 0) {
        /* The value being set is lost; only when it shares no prefix. */
        CHECK(shifted);
        empty++;
        return;
    }
    /* One version whole: its length, and its letters from one shift. */
    int shift = c[0] - 'a';
    int ok = len % STEP == 0 && len <= VERSIONS * STEP && shift >= 0 && shift < 26 &&
             memcmp(c, text + shift, len) == 0;
    if (!ok) {
        torn++;
        fprintf(stderr, "trial %d: a %s of %zu bytes is no version set\n", trial, key, len);
    } else {
        whole++;
    }
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "build/kill-set-again-spans";
    for (size_t i = 0; i < sizeof text; i++) text[i] = (char)('a' + i % 26);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    for (int trial = 0; trial < TRIALS; trial++) {
        snprintf(sink, sizeof sink, "%s/%d", dir, trial);
        snprintf(spool, sizeof spool, "%s/%d-spool", dir, trial);
        int ready[2];
        if (pipe(ready) != 0) return 2;
        pid_t pid = fork();
        if (pid == 0) {
            close(ready[0]);
            set_again_until_killed(ready[1], trial % 2, trial / 2 % 2);
        }
        close(ready[1]);
        char byte;
        CHECK(read(ready[0], &byte, 1) == 1);
        close(ready[0]);
        usleep((useconds_t)(rand() % 20000));
        kill(pid, SIGKILL);
        int status;
        CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status));

        spanguard_tracer *t = start_tracer(0); /* recovers the flight file */
        CHECK(spanguard_shutdown(t, 10000) == SPANGUARD_RESULT_OK);
        spanguard_tracer_free(t);

        size_t len = 0;
        const char *p = value_of("{\"key\":\"gen_ai.prompt\",\"value\":{\"stringValue\":\"", &len);
        CHECK(p && len == PROMPT_BYTES && memcmp(p, text, PROMPT_BYTES) == 0);
        check_version(trial, "gen_ai.completion", trial % 2);
        if (trial / 2 % 2) check_version(trial, "llm.output_messages.0.message.content", trial % 2);
    }
    CHECK(torn == 0);
    CHECK(whole >= TRIALS / 2);
    printf("%d whole, %d empty (killed mid-update), %d torn; ", whole, empty, torn);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}
