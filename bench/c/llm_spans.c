/* LLM-sized spans from C: begin, a prompt and a completion (text that
 * reads like words), two token counts, end; the median ns a span over 9
 * samples, the exporter encoding on the other core as it does by default
 * (discarding what it encodes). Prints one JSON row per kind of text, as
 * bench/c/hot_path.c does (case, regime, spanguard_ns, exported_share),
 * so that `make bench-compare BASE=<commit> COMPARE_ARGS=--llm` compares
 * two libraries with bench/compare.py. For the instructions a span's text
 * costs, run it under
 * `valgrind --tool=callgrind --toggle-collect=spanguard_span_set_string`.
 *
 * llm_spans [--quick | SPANS_PER_SAMPLE [PROMPT_BYTES [COMPLETION_BYTES [ascii|unicode|dashed|all [idle]]]]]
 * (defaults 20000 (--quick: 2000), 8192, 2048, every kind: ASCII text,
 * the first LLM-sized row of `make bench`; `unicode` text, the same
 * words with a curly apostrophe and a dash, as model output often has
 * (valid UTF-8, a non-ASCII character every 40 bytes or so; the byte
 * counts are cut back to a character boundary by `text`); and `dashed`,
 * the ASCII text with one dash (U+2014) halfway through each value, as
 * English model output often has one somewhere). `idle` keeps the exporter
 * idle during each sample (regime (a): a 10-minute schedule, a batch the
 * size of the queue; the spans are exported by the flush after the
 * timing), so that what the recording path costs alone is seen; with it,
 * SPANS_PER_SAMPLE sets how much memory the sample's chunks cover (20000
 * spans of 10 KB: 240 MiB, past any cache; 1000: 12 MiB). */
#include "common.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { SAMPLES = 9 };

/* About `*n` bytes of text cycling through `words`, cut back to a
 * character boundary (`*n` is set to the length). */
static char *text(long *n, const char *words) {
    char *t = malloc(*n ? (size_t)*n : 1);
    size_t k = strlen(words);
    if (!t) {
        exit(1);
    }
    for (long i = 0; i < *n; i++) {
        t[i] = words[(size_t)i % k];
    }
    while (*n > 0 && ((unsigned char)words[(size_t)*n % k] & 0xc0) == 0x80) {
        (*n)--; /* the next byte continues a character: end before it */
    }
    return t;
}

/* Spans exported so far. */
static uint64_t exported(spanguard_tracer *t) {
    struct spanguard_counters st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    spanguard_stats(t, &st);
    return st.spans_exported;
}

enum kind { ASCII, UNICODE, DASHED, KINDS };
static const char *const kind_names[KINDS] = {"ascii", "unicode", "dashed"};

/* Puts a dash (3 bytes of UTF-8) over the ASCII bytes halfway through. */
static void dash_halfway(char *t, long n) {
    if (n >= 3) {
        memcpy(t + n / 2 - 1, "\u2014", 3);
    }
}

/* One kind of text: prints its JSON row. */
static void run(long n, long prompt_len, long completion_len, enum kind kind, int idle) {
    char *prompt = text(&prompt_len, kind == UNICODE ? "the user\u2019s question \u2014 the weather in Lisbon "
                                                     : "the user asks about the weather in Lisbon ");
    char *completion = text(&completion_len, kind == UNICODE ? "It\u2019ll be sunny \u2014 21 degrees tomorrow. "
                                                             : "It will be sunny and 21 degrees tomorrow. ");
    if (kind == DASHED) {
        dash_halfway(prompt, prompt_len);
        dash_halfway(completion, completion_len);
    }
    spanguard_config cfg;
    spanguard_config_init(&cfg, sizeof cfg);
    cfg.endpoint = "discard:";
    cfg.install_signal_handlers = 0;
    cfg.max_queue_size = 1 << 16;
    cfg.max_open_spans = 1 << 12;
    /* Room for every span in flight: no sample cuts a value. */
    cfg.payload_pool_mib = 1024;
    if (idle) {
        cfg.schedule_delay_ms = 600000;
        cfg.max_export_batch_size = 1 << 16;
    }
    spanguard_tracer *t;
    if (spanguard_tracer_new(&cfg, &t) != SPANGUARD_RESULT_OK) {
        fprintf(stderr, "spanguard_tracer_new failed\n");
        exit(1);
    }
    double ns[SAMPLES], share[SAMPLES];
    for (int r = -1; r < SAMPLES; r++) { /* r = -1: warm-up */
        uint64_t e0 = exported(t);
        double t0 = bench_now_ns();
        for (long i = 0; i < n; i++) {
            spanguard_span s;
            spanguard_span_begin(t, "llm.chat", 8, SPANGUARD_SPAN_NONE, SPANGUARD_KIND_CLIENT, &s);
            spanguard_span_set_string(s, "gen_ai.prompt", 13, prompt, (size_t)prompt_len);
            if (completion_len > 0) {
                spanguard_span_set_string(s, "gen_ai.completion", 17, completion, (size_t)completion_len);
            }
            spanguard_span_set_int(s, "gen_ai.usage.input_tokens", 25, i);
            spanguard_span_set_int(s, "gen_ai.usage.output_tokens", 26, 96);
            spanguard_span_end(s);
        }
        if (r >= 0) {
            ns[r] = (bench_now_ns() - t0) / n;
            share[r] = (double)(exported(t) - e0) / n;
        }
        spanguard_flush(t, 60000);
    }
    struct spanguard_counters st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    spanguard_stats(t, &st);
    printf("{\"case\": \"%ld B prompt+%ld B completion, %s\", \"regime\": \"%s\", "
           "\"spanguard_ns\": %.1f, \"exported_share\": %.3f, \"values_cut\": %llu}\n",
           prompt_len, completion_len, kind_names[kind], idle ? "exporter idle" : "default settings",
           bench_median(ns, SAMPLES),
           bench_median(share, SAMPLES), (unsigned long long)st.values_truncated);
    spanguard_tracer_free(t);
    free(prompt);
    free(completion);
}

int main(int argc, char **argv) {
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    long n = quick ? 2000 : argc > 1 ? atol(argv[1]) : 20000;
    long prompt_len = argc > 2 ? atol(argv[2]) : 8192;
    long completion_len = argc > 3 ? atol(argv[3]) : 2048;
    int only = -1; /* every kind */
    int all = argc > 4 && strcmp(argv[4], "all") == 0;
    int idle = argc > 5 && strcmp(argv[5], "idle") == 0;
    for (int k = 0; argc > 4 && k < KINDS; k++) {
        if (strcmp(argv[4], kind_names[k]) == 0) {
            only = k;
        }
    }
    if (n < 1 || n > 10000000 || prompt_len < 0 || prompt_len > (1 << 24) || completion_len < 0 ||
        completion_len > (1 << 24) || (argc > 4 && only < 0 && !all) || (argc > 5 && !idle)) {
        fprintf(stderr, "usage: llm_spans [--quick | SPANS 1-10000000 [PROMPT_BYTES [COMPLETION_BYTES "
                        "[ascii|unicode|dashed|all [idle]]]]]\n");
        return 2;
    }
    for (int k = 0; k < KINDS; k++) {
        if (only < 0 || only == k) {
            run(n, prompt_len, completion_len, (enum kind)k, idle);
        }
    }
    return 0;
}
