/* Instructions a span costs on the recording path, counted by callgrind
 * (bench/compare.sh --instructions runs it): a tracer whose exporter sleeps
 * (regime (a)), 20,000 spans to warm up, then 40,000 spans of one case,
 * begin + 3 attributes + end, with the attributes set by three set_* calls
 * ("calls") or by one spanguard_attribute array ("array"). Callgrind counts
 * only inside spanguard_span_* (--toggle-collect), so what it reports,
 * divided by the spans, is the recording path's instructions a span.
 *
 * span_instructions calls|array */
#include <spanguard.h>

#include <stdio.h>
#include <string.h>

enum { WARM = 20000, SPANS = 40000 };

__attribute__((noinline)) static void spans(spanguard_tracer *t, long n, int array) {
    for (long i = 0; i < n; i++) {
        spanguard_span s;
        spanguard_span_begin(t, "op", 2, SPANGUARD_SPAN_NONE, SPANGUARD_KIND_SERVER, &s);
        if (array) {
            spanguard_attribute a[3];
            memset(a, 0, sizeof a);
            a[0].key = "gen_ai.usage.input_tokens";
            a[0].key_len = 25;
            a[0].type_ = SPANGUARD_VALUE_INT;
            a[0].int_value = i;
            a[1].key = "gen_ai.request.model";
            a[1].key_len = 20;
            a[1].type_ = SPANGUARD_VALUE_STRING;
            a[1].string_value = "gpt-4o";
            a[1].string_len = 6;
            a[2].key = "stream";
            a[2].key_len = 6;
            a[2].type_ = SPANGUARD_VALUE_BOOL;
            a[2].bool_value = true;
            spanguard_span_set_attributes(s, a, 3);
        } else {
            spanguard_span_set_int(s, "gen_ai.usage.input_tokens", 25, i);
            spanguard_span_set_string(s, "gen_ai.request.model", 20, "gpt-4o", 6);
            spanguard_span_set_bool(s, "stream", 6, true);
        }
        spanguard_span_end(s);
    }
}

int main(int argc, char **argv) {
    int array = argc > 1 && strcmp(argv[1], "array") == 0;
    spanguard_config cfg;
    spanguard_config_init(&cfg, sizeof cfg);
    cfg.endpoint = "discard:";
    cfg.install_signal_handlers = 0;
    cfg.max_queue_size = 1 << 16;
    cfg.max_open_spans = 1 << 12;
    cfg.max_export_batch_size = cfg.max_queue_size;
    cfg.schedule_delay_ms = 60000;
    spanguard_tracer *t;
    if (spanguard_tracer_new(&cfg, &t) != SPANGUARD_RESULT_OK) {
        fprintf(stderr, "spanguard_tracer_new failed\n");
        return 1;
    }
    spans(t, WARM, array);
    spanguard_flush(t, 30000);
    spans(t, SPANS, array);
    spanguard_tracer_free(t);
    printf("%d\n", WARM + SPANS);
    return 0;
}
