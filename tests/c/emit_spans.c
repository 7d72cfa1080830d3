/* Emits a known set of spans through the C ABI to an OTLP endpoint and
 * writes a JSON manifest of exactly what it emitted, so a receiver's view
 * can be compared field by field (the Collector interop test and the
 * loopback HTTP tests use it).
 *
 * emit_spans --endpoint URL --protocol http/protobuf|http/json
 *            --compression none|gzip --run-id ID --manifest PATH
 *            [--count N] [--header name=value,...]
 * Delivery tests add: --spool-dir DIR, --export-timeout-ms N,
 * --request-timeout-ms N, --batch N, --shutdown-timeout-ms N, --from-env
 * (apply OTEL_* and SPANGUARD_* variables on top), --stats-json PATH (every
 * counter after shutdown) and --allow-loss (exit 0 even when not every span
 * was exported). --large N gives every Nth span an LLM-sized payload: a
 * 100,000-byte prompt, a 20,000-byte completion, token counts set after
 * them and 100 more attributes. Every fourth span has array and bytes
 * values. Error-callback events go to stderr as JSON lines, with
 * whether they ran on the exporter thread (not the emitting one).
 * Hostile-receiver tests add: --prompt-bytes N / --completion-bytes N
 * (gen_ai.prompt and gen_ai.completion attributes of that many bytes on
 * every span), --flush-timeout-ms N with --resume-file PATH and --then-count
 * N (emit, flush, write the stats to PATH.phase1.json, wait until PATH
 * exists, emit N more, then shut down: the exporter must work after a
 * fault ends; --phase-flush 0 leaves the flush out), and --endpoint sink
 * with --sink-dir DIR (the local sink). */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spanguard.h"

#define S(str) (str), strlen(str)

static const char *arg(int argc, char **argv, const char *name, const char *def) {
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return def;
}

static pthread_t main_thread;

static void on_event(spanguard_event event, const char *message, size_t len, void *user_data) {
    (void)user_data;
    fprintf(stderr, "{\"event\": %u, \"on_main_thread\": %s, \"message_len\": %zu, \"message\": \"", (unsigned)event,
            pthread_equal(pthread_self(), main_thread) ? "true" : "false", len);
    for (const char *c = message; *c; c++)
        if (*c != '"' && *c != '\\' && (unsigned char)*c >= 0x20) fputc(*c, stderr);
    fprintf(stderr, "\"}\n");
}

static void die(const char *what, spanguard_result rc) {
    fprintf(stderr, "emit_spans: %s: %s\n", what, spanguard_strerror(rc));
    exit(2);
}

/* JSON string with the escapes the manifest needs. */
static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static unsigned long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000ull + (unsigned long long)ts.tv_nsec / 1000000ull;
}

/* This process's peak resident memory in KiB (VmHWM), -1 if unknown. Not
 * getrusage's ru_maxrss, nor wait4's: a child started with vfork, as
 * Python's subprocess does, is charged its parent's peak at exec, so a
 * test that had read a large file measured that instead of the tracer. */
static long peak_rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1) break;
    fclose(f);
    return kib;
}

static void write_stats(const char *path, spanguard_tracer *t, spanguard_result rc, int not_begun,
                        int flush_rc, unsigned long long flush_ms, unsigned long long shutdown_ms) {
    spanguard_counters st = {0};
    st.struct_size = sizeof st;
    (void)spanguard_stats(t, &st);
    /* Written aside and renamed into place: the test polls for the file
     * and reads it as soon as it exists, and once read it empty, between
     * this open and the first write (a flaky "Expecting value"). */
    char aside[4200];
    snprintf(aside, sizeof aside, "%s.tmp", path);
    FILE *f = fopen(aside, "w");
    if (!f) {
        perror(aside);
        exit(2);
    }
#define FIELD(name) fprintf(f, "%s\"" #name "\": %llu", first ? "" : ", ", (unsigned long long)st.name), first = 0
    int first = 1;
    fputc('{', f);
    FIELD(spans_begun); FIELD(spans_ended); FIELD(spans_exported); FIELD(queue_depth); FIELD(spans_open);
    FIELD(dropped_buffer_full); FIELD(dropped_export_failed); FIELD(dropped_rejected);
    FIELD(dropped_spool_overflow); FIELD(spans_unended_at_shutdown); FIELD(batches_sent); FIELD(batches_failed);
    FIELD(bytes_sent); FIELD(retries); FIELD(spooled_batches); FIELD(spooled_spans); FIELD(replayed_batches);
    FIELD(replayed_spans); FIELD(spool_bytes); FIELD(recovered_spans); FIELD(dropped_replay_failed);
    FIELD(dropped_replay_rejected); FIELD(exporter_panics); FIELD(spans_unsampled); FIELD(files_set_aside);
    FIELD(values_truncated); FIELD(attributes_dropped); FIELD(payload_waits); FIELD(payload_waits_cut);
    FIELD(slot_waits); FIELD(slot_wait_ns);
    fprintf(f, ", \"shutdown_result\": %u, \"not_begun\": %d, \"flush_result\": %d, \"flush_ms\": %llu, "
               "\"shutdown_ms\": %llu, \"peak_rss_kib\": %ld}\n", (unsigned)rc, not_begun, flush_rc, flush_ms, shutdown_ms,
            peak_rss_kib());
#undef FIELD
    if (fclose(f) != 0 || rename(aside, path) != 0) {
        perror(path);
        exit(2);
    }
}

int main(int argc, char **argv) {
    const char *endpoint = arg(argc, argv, "--endpoint", NULL);
    const char *protocol = arg(argc, argv, "--protocol", "http/protobuf");
    const char *compression = arg(argc, argv, "--compression", "none");
    const char *run_id = arg(argc, argv, "--run-id", "run");
    const char *manifest = arg(argc, argv, "--manifest", NULL);
    const char *headers = arg(argc, argv, "--header", NULL);
    int count = atoi(arg(argc, argv, "--count", "24"));
    const char *spool_dir = arg(argc, argv, "--spool-dir", NULL);
    const char *stats_json = arg(argc, argv, "--stats-json", NULL);
    const char *resume_file = arg(argc, argv, "--resume-file", NULL);
    const char *sink_dir = arg(argc, argv, "--sink-dir", NULL);
    int then_count = atoi(arg(argc, argv, "--then-count", "0"));
    unsigned flush_timeout_ms = (unsigned)atoi(arg(argc, argv, "--flush-timeout-ms", "20000"));
    int phase_flush = atoi(arg(argc, argv, "--phase-flush", "1"));
    size_t fixed_prompt_bytes = (size_t)atoi(arg(argc, argv, "--prompt-bytes", "0"));
    size_t fixed_completion_bytes = (size_t)atoi(arg(argc, argv, "--completion-bytes", "0"));
    char *fixed_prompt = calloc(fixed_prompt_bytes + 1, 1), *fixed_completion = calloc(fixed_completion_bytes + 1, 1);
    for (size_t k = 0; k < fixed_prompt_bytes; k++) fixed_prompt[k] = (char)('a' + k % 26);
    for (size_t k = 0; k < fixed_completion_bytes; k++) fixed_completion[k] = (char)('A' + k % 26);
    int large_every = atoi(arg(argc, argv, "--large", "0"));
    static char prompt[100000 + 26], completion[20000 + 26];
    for (size_t k = 0; k < sizeof prompt; k++) prompt[k] = (char)('a' + k % 26);
    for (size_t k = 0; k < sizeof completion; k++) completion[k] = (char)('A' + k % 26);
    int from_env = 0, allow_loss = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--from-env") == 0) from_env = 1;
        if (strcmp(argv[i], "--allow-loss") == 0) allow_loss = 1;
    }
    main_thread = pthread_self();
    if (!endpoint || !manifest || count <= 0) {
        fprintf(stderr, "usage: emit_spans --endpoint URL --manifest PATH [--protocol P] [--compression C] "
                        "[--run-id ID] [--count N] [--header k=v]\n");
        return 2;
    }
    char endpoint_url[512], resource[256];
    snprintf(endpoint_url, sizeof endpoint_url, "%s%s", endpoint,
             strstr(endpoint, "/v1/traces") ? "" : "/v1/traces");
    int to_sink = strcmp(endpoint, "sink") == 0;
    snprintf(resource, sizeof resource, "spanguard.run_id=%s,deployment.environment=interop", run_id);

    spanguard_config cfg;
    (void)spanguard_config_init(&cfg, sizeof cfg);
    cfg.service_name = "spanguard-emitter";
    cfg.endpoint = to_sink ? NULL : endpoint_url;
    cfg.sink_dir = sink_dir;
    cfg.resource_attributes = resource;
    cfg.headers = headers;
    cfg.protocol = strcmp(protocol, "http/json") == 0 ? SPANGUARD_PROTOCOL_HTTP_JSON : SPANGUARD_PROTOCOL_HTTP_PROTOBUF;
    cfg.compression = strcmp(compression, "gzip") == 0 ? SPANGUARD_COMPRESSION_GZIP : SPANGUARD_COMPRESSION_NONE;
    cfg.schedule_delay_ms = 100;
    cfg.max_export_batch_size = (uint32_t)atoi(arg(argc, argv, "--batch", "7")); /* several requests per run */
    cfg.install_signal_handlers = 0;
    cfg.spool_dir = spool_dir;
    cfg.export_timeout_ms = (uint32_t)atoi(arg(argc, argv, "--export-timeout-ms", "0"));
    cfg.request_timeout_ms = (uint32_t)atoi(arg(argc, argv, "--request-timeout-ms", "0"));
    unsigned shutdown_ms = (unsigned)atoi(arg(argc, argv, "--shutdown-timeout-ms", "20000"));
    spanguard_tracer *t;
    char why[SPANGUARD_ERROR_MESSAGE_SIZE];
    spanguard_result rc = spanguard_tracer_new_with_error(&cfg, from_env, &t, why, sizeof why, NULL);
    if (rc != SPANGUARD_RESULT_OK) {
        fprintf(stderr, "emit_spans: tracer_new: %s: %s\n", spanguard_strerror(rc), why);
        exit(2);
    }
    if ((rc = spanguard_set_error_callback(t, on_event, NULL)) != SPANGUARD_RESULT_OK) die("set_error_callback", rc);

    FILE *m = fopen(manifest, "w");
    if (!m) {
        perror(manifest);
        return 2;
    }
    fprintf(m, "{\"run_id\": ");
    json_str(m, run_id);
    fprintf(m, ", \"service_name\": \"spanguard-emitter\", \"spans\": [\n");

    const unsigned long long base = 1700000000000000000ull;
    int not_begun = 0, written = 0;
    spanguard_span root = SPANGUARD_SPAN_NONE;
    unsigned long long root_end = 0;
    char root_tp[SPANGUARD_TRACEPARENT_SIZE] = "";
    char prev_tp[SPANGUARD_TRACEPARENT_SIZE] = "";
    int flush_rc = -1;
    unsigned long long flush_ms = 0;
    for (int i = 0; i < count + then_count; i++) {
        if (i == count && then_count > 0) {
            /* Phase one is over: flush, say how it went, wait for the test. */
            if (root != SPANGUARD_SPAN_NONE && (rc = spanguard_span_end_at(root, root_end)) != SPANGUARD_RESULT_OK)
                die("end root", rc);
            root = SPANGUARD_SPAN_NONE;
            unsigned long long t0 = now_ms();
            if (phase_flush) flush_rc = (int)spanguard_flush(t, flush_timeout_ms);
            flush_ms = now_ms() - t0;
            fflush(m);
            if (resume_file) {
                char phase[1024];
                snprintf(phase, sizeof phase, "%s.phase1.json", resume_file);
                write_stats(phase, t, SPANGUARD_RESULT_OK, not_begun, flush_rc, flush_ms, 0);
                for (int w = 0; w < 6000; w++) {
                    FILE *r = fopen(resume_file, "r");
                    if (r) {
                        fclose(r);
                        break;
                    }
                    struct timespec pause = {0, 20 * 1000 * 1000};
                    nanosleep(&pause, NULL);
                }
            }
        }
        int is_child = (i % 3) != 0 && root != SPANGUARD_SPAN_NONE;
        char name[64];
        snprintf(name, sizeof name, "op-%d %s", i, i % 5 == 0 ? "\xc3\xa9t\xc3\xa9 \"q\"" : "plain");
        unsigned kind = (unsigned)(i % 6);
        spanguard_span s;
        rc = spanguard_span_begin(t, S(name), is_child ? root : SPANGUARD_SPAN_NONE, kind, &s);
        if (rc == SPANGUARD_RESULT_BUFFER_FULL && allow_loss) {
            not_begun++; /* counted by the library too; not in the manifest */
            continue;
        }
        if (rc != SPANGUARD_RESULT_OK) die("begin", rc);
        unsigned long long start = base + (unsigned long long)i * 1000000ull, end = start + 12345 + i;
        (void)spanguard_span_set_start_time(s, start);
        char tp[SPANGUARD_TRACEPARENT_SIZE];
        if ((rc = spanguard_span_traceparent(s, tp, sizeof tp)) != SPANGUARD_RESULT_OK) die("traceparent", rc);

        char str_value[64];
        snprintf(str_value, sizeof str_value, "value-%d", i);
        long long int_value = (i % 2 ? -1 : 1) * (long long)i * 1000000007ll;
        double dbl_value = i + 0.5;
        if (spanguard_span_set_string(s, S("str"), S(str_value)) != SPANGUARD_RESULT_OK ||
            spanguard_span_set_int(s, S("int"), int_value) != SPANGUARD_RESULT_OK ||
            spanguard_span_set_double(s, S("double"), dbl_value) != SPANGUARD_RESULT_OK ||
            spanguard_span_set_bool(s, S("bool"), i % 2 == 0) != SPANGUARD_RESULT_OK)
            die("set attribute", SPANGUARD_RESULT_INVALID_ARGUMENT);
        if (fixed_prompt_bytes) {
            /* A prompt cut (a pool used up) is a loss --allow-loss accepts. */
            spanguard_result prc = spanguard_span_set_string(s, S("gen_ai.prompt"), fixed_prompt, fixed_prompt_bytes);
            if (prc != SPANGUARD_RESULT_OK && !(allow_loss && prc == SPANGUARD_RESULT_TRUNCATED)) die("set prompt", prc);
        }
        if (fixed_completion_bytes &&
            spanguard_span_set_string(s, S("gen_ai.completion"), fixed_completion, fixed_completion_bytes) != SPANGUARD_RESULT_OK)
            die("set completion", SPANGUARD_RESULT_INVALID_ARGUMENT);
        int large = large_every > 0 && i % large_every == 0, typed_arrays = i % 4 == 3;
        /* The text starts at letter i % 26, so each span's differs. */
        const char *p_text = prompt + i % 26, *c_text = completion + i % 26;
        if (large) {
            if (spanguard_span_set_string(s, S("gen_ai.prompt"), p_text, 100000) != SPANGUARD_RESULT_OK ||
                spanguard_span_set_string(s, S("gen_ai.completion"), c_text, 20000) != SPANGUARD_RESULT_OK ||
                spanguard_span_set_int(s, S("gen_ai.usage.input_tokens"), 25000 + i) != SPANGUARD_RESULT_OK ||
                spanguard_span_set_int(s, S("gen_ai.usage.output_tokens"), 5000 + i) != SPANGUARD_RESULT_OK)
                die("set large attribute", SPANGUARD_RESULT_INVALID_ARGUMENT);
            for (int k = 0; k < 100; k++) {
                char key[32], value[32];
                snprintf(key, sizeof key, "extra.%d", k);
                snprintf(value, sizeof value, "v%d-%d", i, k);
                if (spanguard_span_set_string(s, S(key), S(value)) != SPANGUARD_RESULT_OK)
                    die("set extra attribute", SPANGUARD_RESULT_INVALID_ARGUMENT);
            }
        }
        spanguard_string arr_str[2] = {{"stop", 4}, {"\xc3\xa9t\xc3\xa9", 5}};
        int64_t arr_int[2] = {i, -(int64_t)i * 1000000007ll};
        double arr_dbl[2] = {i + 0.25, -0.5};
        bool arr_bool[2] = {true, i % 2 == 0};
        uint8_t raw[3] = {0x00, 0xff, (uint8_t)i};
        if (typed_arrays &&
            (spanguard_span_set_string_array(s, S("arr.str"), arr_str, 2) != SPANGUARD_RESULT_OK ||
             spanguard_span_set_int_array(s, S("arr.int"), arr_int, 2) != SPANGUARD_RESULT_OK ||
             spanguard_span_set_double_array(s, S("arr.double"), arr_dbl, 2) != SPANGUARD_RESULT_OK ||
             spanguard_span_set_bool_array(s, S("arr.bool"), arr_bool, 2) != SPANGUARD_RESULT_OK ||
             spanguard_span_set_bytes(s, S("bytes"), raw, 3) != SPANGUARD_RESULT_OK))
            die("set array attribute", SPANGUARD_RESULT_INVALID_ARGUMENT);
        int has_event = i % 4 == 1, has_link = i % 4 == 2 && prev_tp[0], is_error = i % 7 == 3;
        spanguard_attribute ea[1] = {{0}};
        ea[0].key = "event.seq";
        ea[0].key_len = 9;
        ea[0].type_ = SPANGUARD_VALUE_INT;
        ea[0].int_value = i;
        if (has_event && spanguard_span_add_event(s, S("checkpoint"), start + 100, ea, 1) != SPANGUARD_RESULT_OK)
            die("add_event", SPANGUARD_RESULT_INVALID_ARGUMENT);
        spanguard_attribute la[1] = {{0}};
        la[0].key = "link.kind";
        la[0].key_len = 9;
        la[0].type_ = SPANGUARD_VALUE_STRING;
        la[0].string_value = "previous";
        la[0].string_len = 8;
        char link_tp[SPANGUARD_TRACEPARENT_SIZE];
        memcpy(link_tp, prev_tp, sizeof link_tp);
        if (has_link && spanguard_span_add_link(s, S(link_tp), la, 1) != SPANGUARD_RESULT_OK)
            die("add_link", SPANGUARD_RESULT_INVALID_ARGUMENT);
        if (is_error && spanguard_span_set_status(s, SPANGUARD_STATUS_ERROR, S("failed \"on purpose\"")) != SPANGUARD_RESULT_OK)
            die("set_status", SPANGUARD_RESULT_INVALID_ARGUMENT);
        /* A root stays open until the next root begins, so its children
         * always find it live. */
        if (!is_child) {
            if (root != SPANGUARD_SPAN_NONE && (rc = spanguard_span_end_at(root, root_end)) != SPANGUARD_RESULT_OK)
                die("end root", rc);
            root_end = end;
        } else if ((rc = spanguard_span_end_at(s, end)) != SPANGUARD_RESULT_OK) {
            die("end", rc);
        }

        /* traceparent: 00-<trace 32>-<span 16>-<flags> */
        char trace_id[33], span_id[17], parent_id[17] = "";
        memcpy(trace_id, tp + 3, 32);
        trace_id[32] = 0;
        memcpy(span_id, tp + 36, 16);
        span_id[16] = 0;
        if (is_child) {
            memcpy(parent_id, root_tp + 36, 16);
            parent_id[16] = 0;
        }
        fprintf(m, "%s  {\"trace_id\": \"%s\", \"span_id\": \"%s\", \"parent_span_id\": \"%s\", \"name\": ",
                written++ ? ",\n" : "", trace_id, span_id, parent_id);
        json_str(m, name);
        fprintf(m, ", \"kind\": %u, \"start_time_unix_nano\": %llu, \"end_time_unix_nano\": %llu, ", kind, start, end);
        fprintf(m, "\"status\": {\"code\": %d, \"message\": %s}, ", is_error ? 2 : 0,
                is_error ? "\"failed \\\"on purpose\\\"\"" : "\"\"");
        fprintf(m, "\"attributes\": {\"str\": {\"type\": \"string\", \"value\": \"%s\"}, "
                   "\"int\": {\"type\": \"int\", \"value\": %lld}, \"double\": {\"type\": \"double\", \"value\": %.17g}, "
                   "\"bool\": {\"type\": \"bool\", \"value\": %s}",
                str_value, int_value, dbl_value, i % 2 == 0 ? "true" : "false");
        if (fixed_prompt_bytes) fprintf(m, ", \"gen_ai.prompt\": {\"type\": \"string\", \"value\": \"%s\"}", fixed_prompt);
        if (fixed_completion_bytes)
            fprintf(m, ", \"gen_ai.completion\": {\"type\": \"string\", \"value\": \"%s\"}", fixed_completion);
        if (large) {
            fprintf(m, ", \"gen_ai.prompt\": {\"type\": \"string\", \"value\": \"%.100000s\"}", p_text);
            fprintf(m, ", \"gen_ai.completion\": {\"type\": \"string\", \"value\": \"%.20000s\"}", c_text);
            fprintf(m, ", \"gen_ai.usage.input_tokens\": {\"type\": \"int\", \"value\": %d}", 25000 + i);
            fprintf(m, ", \"gen_ai.usage.output_tokens\": {\"type\": \"int\", \"value\": %d}", 5000 + i);
            for (int k = 0; k < 100; k++)
                fprintf(m, ", \"extra.%d\": {\"type\": \"string\", \"value\": \"v%d-%d\"}", k, i, k);
        }
        if (typed_arrays) {
            fprintf(m, ", \"arr.str\": {\"type\": \"array\", \"value\": [{\"type\": \"string\", \"value\": \"stop\"}, "
                       "{\"type\": \"string\", \"value\": \"\xc3\xa9t\xc3\xa9\"}]}");
            fprintf(m, ", \"arr.int\": {\"type\": \"array\", \"value\": [{\"type\": \"int\", \"value\": %lld}, "
                       "{\"type\": \"int\", \"value\": %lld}]}", (long long)arr_int[0], (long long)arr_int[1]);
            fprintf(m, ", \"arr.double\": {\"type\": \"array\", \"value\": [{\"type\": \"double\", \"value\": %.17g}, "
                       "{\"type\": \"double\", \"value\": -0.5}]}", arr_dbl[0]);
            fprintf(m, ", \"arr.bool\": {\"type\": \"array\", \"value\": [{\"type\": \"bool\", \"value\": true}, "
                       "{\"type\": \"bool\", \"value\": %s}]}", arr_bool[1] ? "true" : "false");
            fprintf(m, ", \"bytes\": {\"type\": \"bytes\", \"value\": \"00ff%02x\"}", raw[2]);
        }
        fprintf(m, "}, ");
        fprintf(m, "\"events\": [");
        if (has_event)
            fprintf(m, "{\"name\": \"checkpoint\", \"time_unix_nano\": %llu, \"attributes\": "
                       "{\"event.seq\": {\"type\": \"int\", \"value\": %d}}}", start + 100, i);
        fprintf(m, "], \"links\": [");
        if (has_link) {
            char lt[33], ls[17];
            memcpy(lt, link_tp + 3, 32);
            lt[32] = 0;
            memcpy(ls, link_tp + 36, 16);
            ls[16] = 0;
            fprintf(m, "{\"trace_id\": \"%s\", \"span_id\": \"%s\", \"attributes\": "
                       "{\"link.kind\": {\"type\": \"string\", \"value\": \"previous\"}}}", lt, ls);
        }
        fprintf(m, "]}");
        memcpy(prev_tp, tp, sizeof tp);
        if (!is_child) {
            root = s;
            memcpy(root_tp, tp, sizeof tp);
        }
    }
    if (root != SPANGUARD_SPAN_NONE && (rc = spanguard_span_end_at(root, root_end)) != SPANGUARD_RESULT_OK)
        die("end root", rc);
    fprintf(m, "\n]}\n");
    fclose(m);

    unsigned long long t0 = now_ms();
    rc = spanguard_shutdown(t, shutdown_ms);
    unsigned long long shutdown_took = now_ms() - t0;
    spanguard_counters st = {0};
    st.struct_size = sizeof st;
    (void)spanguard_stats(t, &st);
    fprintf(stderr, "emit_spans: %s %s: exported %llu of %d, batches %llu, failed %llu, retries %llu\n", protocol,
            compression, (unsigned long long)st.spans_exported, count + then_count, (unsigned long long)st.batches_sent,
            (unsigned long long)st.batches_failed, (unsigned long long)st.retries);
    if (stats_json) write_stats(stats_json, t, rc, not_begun, flush_rc, flush_ms, shutdown_took);
    spanguard_tracer_free(t);
    free(fixed_prompt);
    free(fixed_completion);
    if (allow_loss) return 0;
    return rc == SPANGUARD_RESULT_OK && st.spans_exported == (unsigned long long)(count + then_count) ? 0 : 1;
}
