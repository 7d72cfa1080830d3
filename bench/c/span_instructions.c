/* Instructions a span costs on the recording path, counted by callgrind
 * (bench/compare.sh --instructions runs it): a tracer whose exporter sleeps
 * (regime (a)), 20,000 spans to warm up, then 40,000 spans of one case,
 * begin + 3 attributes + end, with the attributes set by three set_* calls
 * ("calls"), by one spanguard_attribute array ("array"), or by the same
 * array given to spanguard_span_begin_with_attributes ("begin"); or
 * begin + end with no attribute ("plain"), or a child's begin + end
 * under a parent kept open ("child": the parent's context is read each
 * time), or an LLM call's span ("llm": begin, an 8 KB prompt and a 2 KB
 * completion of ASCII text, two token counts, end, as the first LLM-sized
 * row of `make bench` and bench/c/llm_spans.c make it; 2,000 spans to warm
 * up and 4,000 counted, flushed every 1,000 so that the payload pool never
 * runs out and cuts a value). Callgrind counts
 * only inside spanguard_span_* (--toggle-collect), so what it reports,
 * divided by the spans, is the recording path's instructions a span.
 *
 * A second argument "handlers" records with the crash and signal handlers
 * installed, as users' tracers do by default (install_signal_handlers = 1;
 * the other benchmarks turn them off): what the recording path does only
 * then (the crash handler's alternate stack for each recording thread)
 * shows in that count alone.
 *
 * A second argument "gzip" turns compression on (off by default, as the
 * OpenTelemetry spec says; users sending LLM prompts turn it on) and
 * prints to stderr the bytes the exporter sent, gzipped, and its batches.
 * The exporter's instructions are then the ones to count:
 * --toggle-collect='*Exporter::run*' (bench/compare.sh's "export-gzip").
 *
 * span_instructions calls|array|begin|plain|child|llm [handlers|gzip] */
#include "common.h"

#include <stdio.h>
#include <string.h>

enum { WARM = 20000, SPANS = 40000 };

enum span_case { CALLS, ARRAY, BEGIN, PLAIN, CHILD, LLM };

enum { LLM_WARM = 2000, LLM_SPANS = 4000, LLM_FLUSH_EVERY = 1000, PROMPT = 8192, COMPLETION = 2048 };

/* `n` bytes of ASCII text cycling through `words`. */
static char *ascii_text(size_t n, const char *words) {
    char *t = malloc(n);
    size_t k = strlen(words);
    if (!t) exit(1);
    for (size_t i = 0; i < n; i++) t[i] = words[i % k];
    return t;
}

/* `n` LLM-sized spans (the "llm" case), flushed every LLM_FLUSH_EVERY. */
__attribute__((noinline)) static void llm_spans(spanguard_tracer *t, long n) {
    static char *prompt, *completion;
    if (!prompt) {
        prompt = ascii_text(PROMPT, "the user asks about the weather in Lisbon ");
        completion = ascii_text(COMPLETION, "It will be sunny and 21 degrees tomorrow. ");
    }
    for (long i = 0; i < n; i++) {
        spanguard_span s;
        spanguard_span_begin(t, "llm.chat", 8, SPANGUARD_SPAN_NONE, SPANGUARD_KIND_CLIENT, &s);
        spanguard_span_set_string(s, "gen_ai.prompt", 13, prompt, PROMPT);
        spanguard_span_set_string(s, "gen_ai.completion", 17, completion, COMPLETION);
        spanguard_span_set_int(s, "gen_ai.usage.input_tokens", 25, i);
        spanguard_span_set_int(s, "gen_ai.usage.output_tokens", 26, 96);
        spanguard_span_end(s);
        if ((i + 1) % LLM_FLUSH_EVERY == 0) spanguard_flush(t, 30000);
    }
}

/* With "gzip": what the exporter sent, after a flush of every span. */
static void print_sent(spanguard_tracer *t) {
    spanguard_flush(t, 30000);
    spanguard_counters c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    spanguard_stats(t, &c);
    fprintf(stderr, "gzip: %llu bytes sent in %llu batches, %llu spans\n", (unsigned long long)c.bytes_sent,
            (unsigned long long)c.batches_sent, (unsigned long long)c.spans_exported);
}

__attribute__((noinline)) static void spans(spanguard_tracer *t, long n, enum span_case c) {
    spanguard_span parent = SPANGUARD_SPAN_NONE;
    if (c == CHILD) spanguard_span_begin(t, "parent", 6, SPANGUARD_SPAN_NONE, SPANGUARD_KIND_SERVER, &parent);
    for (long i = 0; i < n; i++) {
        spanguard_span s;
        if (c == CHILD) {
            spanguard_span_begin(t, "op", 2, parent, SPANGUARD_KIND_INTERNAL, &s);
            spanguard_span_end(s);
            continue;
        }
        if (c == BEGIN) {
            spanguard_attribute a[3];
            bench_attributes(a, i);
            spanguard_span_begin_with_attributes(t, "op", 2, SPANGUARD_SPAN_NONE, SPANGUARD_KIND_SERVER, a, 3,
                                                 &s);
            spanguard_span_end(s);
            continue;
        }
        spanguard_span_begin(t, "op", 2, SPANGUARD_SPAN_NONE, SPANGUARD_KIND_SERVER, &s);
        if (c == PLAIN) {
            /* begin + end only */
        } else if (c == ARRAY) {
            spanguard_attribute a[3];
            bench_attributes(a, i);
            spanguard_span_set_attributes(s, a, 3);
        } else {
            spanguard_span_set_int(s, "gen_ai.usage.input_tokens", 25, i);
            spanguard_span_set_string(s, "gen_ai.request.model", 20, "gpt-4o", 6);
            spanguard_span_set_bool(s, "stream", 6, true);
        }
        spanguard_span_end(s);
    }
    if (c == CHILD) spanguard_span_end(parent);
}

int main(int argc, char **argv) {
    enum span_case c = CALLS;
    if (argc > 1 && strcmp(argv[1], "array") == 0) {
        c = ARRAY;
    } else if (argc > 1 && strcmp(argv[1], "begin") == 0) {
        c = BEGIN;
    } else if (argc > 1 && strcmp(argv[1], "plain") == 0) {
        c = PLAIN;
    } else if (argc > 1 && strcmp(argv[1], "child") == 0) {
        c = CHILD;
    } else if (argc > 1 && strcmp(argv[1], "llm") == 0) {
        c = LLM;
    }
    spanguard_config cfg;
    spanguard_config_init(&cfg, sizeof cfg);
    bench_settings(&cfg, 1, 1 << 16);
    if (argc > 2 && strcmp(argv[2], "handlers") == 0) cfg.install_signal_handlers = 1;
    int gzip = argc > 2 && strcmp(argv[2], "gzip") == 0;
    if (gzip) cfg.compression = SPANGUARD_COMPRESSION_GZIP;
    spanguard_tracer *t;
    if (spanguard_tracer_new(&cfg, &t) != SPANGUARD_RESULT_OK) {
        fprintf(stderr, "spanguard_tracer_new failed\n");
        return 1;
    }
    if (c == LLM) {
        llm_spans(t, LLM_WARM);
        llm_spans(t, LLM_SPANS);
        if (gzip) print_sent(t);
        spanguard_tracer_free(t);
        printf("%d\n", LLM_WARM + LLM_SPANS);
        return 0;
    }
    spans(t, WARM, c);
    spanguard_flush(t, 30000);
    spans(t, SPANS, c);
    if (gzip) print_sent(t);
    spanguard_tracer_free(t);
    printf("%d\n", WARM + SPANS);
    return 0;
}
