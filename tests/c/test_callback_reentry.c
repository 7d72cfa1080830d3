/* The error callback may replace itself: a one-shot logger removes itself
 * from inside its first call. That must neither deadlock the exporter nor
 * call the removed callback again. The backend is unreachable, so every
 * batch is spooled and reported. */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"

#define S(str) (str), strlen(str)

static spanguard_tracer *tracer;
static atomic_int one_shot_calls, counted_calls;
static atomic_int replace_result = -1;

static void counting(spanguard_event event, const char *message, size_t len, void *user_data) {
    (void)event, (void)message, (void)len, (void)user_data;
    atomic_fetch_add(&counted_calls, 1);
}

static void one_shot(spanguard_event event, const char *message, size_t len, void *user_data) {
    (void)event, (void)message, (void)len, (void)user_data;
    if (atomic_fetch_add(&one_shot_calls, 1) == 0)
        atomic_store(&replace_result, (int)spanguard_set_error_callback(tracer, counting, NULL));
}

static void emit(int n) {
    for (int i = 0; i < n; i++) {
        spanguard_span s;
        if (spanguard_span_begin(tracer, S("op"), SPANGUARD_SPAN_NONE, 0, &s) == SPANGUARD_RESULT_OK)
            (void)spanguard_span_end(s);
    }
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "build/callback-reentry-spans";
    char spool[512];
    snprintf(spool, sizeof spool, "%s-spool", dir);
    spanguard_config cfg;
    (void)spanguard_config_init(&cfg, sizeof cfg);
    cfg.service_name = "callback-reentry";
    cfg.endpoint = "http://127.0.0.1:1/v1/traces"; /* nothing listens: refused */
    cfg.spool_dir = spool;
    cfg.export_timeout_ms = 50;
    cfg.request_timeout_ms = 200;
    cfg.install_signal_handlers = 0;
    if (spanguard_tracer_new(&cfg, &tracer) != SPANGUARD_RESULT_OK) return 2;
    CHECK(spanguard_set_error_callback(tracer, one_shot, NULL) == SPANGUARD_RESULT_OK);
    emit(5);
    /* Nothing listens: the spans are spooled, and the flush says so. */
    spanguard_result flushed = spanguard_flush(tracer, 10000);
    CHECK(spanguard_result_is_ok(flushed));
    if (flushed == SPANGUARD_RESULT_TIMEOUT) {
        /* The exporter is stuck in the callback: a shutdown would wait for
         * it forever. */
        fprintf(stderr, "the exporter deadlocked in the callback\n");
        _exit(1);
    }
    emit(5);
    CHECK(spanguard_result_is_ok(spanguard_flush(tracer, 10000)));
    CHECK(atomic_load(&one_shot_calls) == 1);
    CHECK(atomic_load(&replace_result) == SPANGUARD_RESULT_OK);
    CHECK(atomic_load(&counted_calls) >= 1); /* the replacement took over */
    CHECK(spanguard_result_is_ok(spanguard_shutdown(tracer, 10000)));
    spanguard_tracer_free(tracer);
    return check_summary();
}
