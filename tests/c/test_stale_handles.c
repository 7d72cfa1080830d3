/* A span handle outlives its tracer in a careless program: it must never
 * reach a span of a tracer made later. Many tracers are made and freed one
 * after another (more than the 255 tracer numbers), each leaving a handle
 * to a span it began; then one more tracer begins a span, and every old
 * handle must be stale for it: no attribute set, nothing ended. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "spanguard.h"
#include "check.h"
#include "sink_count.h"

#define S(str) (str), strlen(str)
#define ROUNDS 300

static const char *sink;

static spanguard_tracer *small_tracer(void) {
    spanguard_config cfg;
    (void)spanguard_config_init(&cfg, sizeof cfg);
    cfg.service_name = "stale-handles";
    cfg.sink_dir = sink;
    cfg.install_signal_handlers = 0;
    cfg.max_queue_size = 4;
    cfg.max_open_spans = 4;
    spanguard_tracer *t = NULL;
    return spanguard_tracer_new(&cfg, &t) == SPANGUARD_RESULT_OK ? t : NULL;
}

int main(int argc, char **argv) {
    sink = argc > 1 ? argv[1] : "build/stale-handles-spans";
    static spanguard_span old[ROUNDS];
    for (int i = 0; i < ROUNDS; i++) {
        spanguard_tracer *t = small_tracer();
        CHECK(t != NULL);
        if (!t) return 1;
        CHECK(spanguard_span_begin(t, S("old"), SPANGUARD_SPAN_NONE, 0, &old[i]) == SPANGUARD_RESULT_OK);
        spanguard_tracer_free(t); /* exports the open span as unended */
    }
    spanguard_tracer *live = small_tracer();
    spanguard_span current;
    CHECK(spanguard_span_begin(live, S("current"), SPANGUARD_SPAN_NONE, 0, &current) == SPANGUARD_RESULT_OK);
    int aliased = 0;
    for (int i = 0; i < ROUNDS; i++) {
        aliased += old[i] == current;
        CHECK(spanguard_span_set_int(old[i], S("written.through.stale.handle"), i) == SPANGUARD_RESULT_STALE_SPAN);
        CHECK(spanguard_span_end(old[i]) == SPANGUARD_RESULT_STALE_SPAN);
    }
    CHECK(aliased == 0);
    /* The live span is still open and untouched. */
    CHECK(spanguard_span_end(current) == SPANGUARD_RESULT_OK);
    CHECK(spanguard_shutdown(live, 10000) == SPANGUARD_RESULT_OK);
    spanguard_tracer_free(live);
    CHECK(count_in_dir(sink, "\"name\":\"current\"") == 1);
    CHECK(count_in_dir(sink, "written.through.stale.handle") == 0);
    CHECK(count_in_dir(sink, "\"name\":\"old\"") == ROUNDS);
    return check_summary();
}
