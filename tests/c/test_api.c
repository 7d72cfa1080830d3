/* The C ABI as a C program sees it: every call's result codes, bad input,
 * lifecycle, threads, and that every ended span is exported. Compiled with
 * -Wall -Wextra -Wpedantic -Werror against the checked-in header. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "loopback.h"
#include "sink_count.h"

#define S(str) (str), strlen(str)

static spanguard_tracer *make_tracer(const char *dir, unsigned max_queue) {
    spanguard_config cfg;
    CHECK_RC(spanguard_config_init(&cfg, sizeof cfg), SPANGUARD_RESULT_OK);
    cfg.service_name = "c-api-test";
    cfg.sink_dir = dir;
    cfg.schedule_delay_ms = 50;
    cfg.install_signal_handlers = 0;
    /* A begin that finds every slot in use waits for the exporter up to
     * 30 s, not the default 200 ms: test_threads_lose_nothing's 80,000
     * spans from 4 threads dropped one on a loaded machine (1 run in 6)
     * that left the exporter without a core for longer. */
    cfg.full_wait_ms = 30000;
    if (max_queue) {
        cfg.max_queue_size = max_queue;
        cfg.max_open_spans = max_queue;
    }
    spanguard_tracer *t = NULL;
    CHECK_RC(spanguard_tracer_new(&cfg, &t), SPANGUARD_RESULT_OK);
    CHECK(t != NULL);
    return t;
}

static void test_codes_and_version(void) {
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", SPANGUARD_VERSION_MAJOR, SPANGUARD_VERSION_MINOR,
             SPANGUARD_VERSION_PATCH);
    CHECK(strcmp(spanguard_version(), want) == 0);
    for (unsigned c = 0; c <= SPANGUARD_RESULT_INVALID_ANY_VALUE; c++) {
        const char *m = spanguard_strerror(c);
        CHECK(m != NULL && strlen(m) > 0 && strcmp(m, "unknown result code") != 0);
    }
    CHECK(strcmp(spanguard_strerror(9999), "unknown result code") == 0);
    CHECK(spanguard_result_is_ok(SPANGUARD_RESULT_TRUNCATED));
    CHECK(spanguard_result_is_ok(SPANGUARD_RESULT_SPOOLED)); /* a notice: done, safe on disk */
    CHECK(!spanguard_result_is_ok(SPANGUARD_RESULT_STALE_SPAN));
    CHECK(!spanguard_result_is_ok(SPANGUARD_RESULT_WOULD_WAIT)); /* nothing was begun */
    CHECK(!spanguard_result_is_ok(SPANGUARD_RESULT_EMPTY_KEY));  /* that attribute was not set */
    CHECK(!spanguard_result_is_ok(SPANGUARD_RESULT_INVALID_ANY_VALUE));
    CHECK(!spanguard_result_is_ok(9999)); /* an unknown number is no success */
}

static void test_bad_input(spanguard_tracer *t) {
    spanguard_span s = SPANGUARD_SPAN_NONE;
    CHECK_RC(spanguard_span_begin(NULL, S("x"), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_span_begin(t, S("x"), SPANGUARD_SPAN_NONE, 0, NULL), SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_span_begin(t, NULL, 3, SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_span_begin(t, S("x"), SPANGUARD_SPAN_NONE, 99, &s), SPANGUARD_RESULT_INVALID_ARGUMENT);
    CHECK(s == SPANGUARD_SPAN_NONE); /* outputs are written only on success */
    CHECK_RC(spanguard_span_begin_remote(t, S("x"), S("00-zz-00-01"), 0, &s), SPANGUARD_RESULT_INVALID_TRACEPARENT);
    CHECK_RC(spanguard_span_end(SPANGUARD_SPAN_NONE), SPANGUARD_RESULT_NON_RECORDING);
    CHECK_RC(spanguard_span_end(0x0100000500000007ull), SPANGUARD_RESULT_STALE_SPAN);
    CHECK_RC(spanguard_span_end(0x7700000000000001ull), SPANGUARD_RESULT_STALE_SPAN);
    CHECK_RC(spanguard_flush(NULL, 10), SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_tracer_new(NULL, NULL), SPANGUARD_RESULT_NULL_ARGUMENT);
    spanguard_config bad;
    memset(&bad, 0, sizeof bad);
    spanguard_tracer *none = NULL;
    CHECK_RC(spanguard_tracer_new(&bad, &none), SPANGUARD_RESULT_INVALID_ARGUMENT);
    CHECK_RC(spanguard_config_init(&bad, sizeof bad), SPANGUARD_RESULT_OK);
    bad.endpoint = "ftp://nope";
    CHECK_RC(spanguard_tracer_new(&bad, &none), SPANGUARD_RESULT_INVALID_CONFIG);
    bad.endpoint = NULL;
    bad.protocol = 7;
    CHECK_RC(spanguard_tracer_new(&bad, &none), SPANGUARD_RESULT_INVALID_ARGUMENT);
    CHECK(none == NULL);
    CHECK_RC(spanguard_config_init(&bad, sizeof bad), SPANGUARD_RESULT_OK);
    CHECK(bad.exporter_max_cpu_percent == 50);
    bad.exporter_max_cpu_percent = 101;
    CHECK_RC(spanguard_tracer_new(&bad, &none), SPANGUARD_RESULT_INVALID_CONFIG);
    CHECK(none == NULL);
    /* A caller built against the header before exporter_max_cpu_percent
     * existed: its struct ends before the field, which then takes the
     * default, whatever lies past the caller's struct. */
    bad.struct_size = (uint32_t)offsetof(spanguard_config, exporter_max_cpu_percent);
    bad.endpoint = "discard:";
    bad.install_signal_handlers = 0;
    CHECK_RC(spanguard_tracer_new(&bad, &none), SPANGUARD_RESULT_OK);
    CHECK(none != NULL);
    CHECK_RC(spanguard_shutdown(none, 1000), SPANGUARD_RESULT_OK);
    spanguard_tracer_free(none);
    none = NULL;
    spanguard_tracer_free(NULL);
}

static void test_one_span_of_everything(spanguard_tracer *t, const char *dir) {
    spanguard_span root, child, remote;
    CHECK_RC(spanguard_span_begin(t, S("agent.session"), SPANGUARD_SPAN_NONE, SPANGUARD_KIND_INTERNAL, &root),
             SPANGUARD_RESULT_OK);
    CHECK(root != SPANGUARD_SPAN_NONE);
    CHECK_RC(spanguard_span_begin(t, S("llm.call"), root, SPANGUARD_KIND_CLIENT, &child), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_string(child, S("gen_ai.request.model"), S("gpt-test")), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_int(child, S("gen_ai.usage.input_tokens"), -42), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_double(child, S("temperature"), 0.25), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_bool(child, S("stream"), true), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_string(child, S("bad.utf8"), "a\xff" "b", 3), SPANGUARD_RESULT_UTF8_REPLACED);
    /* No fixed value limit any more: 5 KB is kept whole. */
    static char big[5000];
    memset(big, 'v', sizeof big);
    CHECK_RC(spanguard_span_set_string(child, S("big"), big, sizeof big), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_string(child, NULL, 1, S("v")), SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_span_set_string(child, S("k"), NULL, 4), SPANGUARD_RESULT_NULL_ARGUMENT);

    spanguard_attribute attrs[2];
    memset(attrs, 0, sizeof attrs);
    attrs[0].key = "tool";
    attrs[0].key_len = 4;
    attrs[0].type_ = SPANGUARD_VALUE_STRING;
    attrs[0].string_value = "search";
    attrs[0].string_len = 6;
    attrs[1].key = "attempt";
    attrs[1].key_len = 7;
    attrs[1].type_ = SPANGUARD_VALUE_INT;
    attrs[1].int_value = 2;
    CHECK_RC(spanguard_span_add_event(child, S("retry"), 0, attrs, 2), SPANGUARD_RESULT_OK);
    attrs[1].type_ = 42;
    CHECK_RC(spanguard_span_add_event(child, S("bad"), 0, attrs, 2), SPANGUARD_RESULT_INVALID_ARGUMENT);
    CHECK_RC(spanguard_span_add_event(child, S("bad"), 0, NULL, 2), SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_span_set_status(child, SPANGUARD_STATUS_ERROR, S("rate limited")), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_status(child, 3, S("?")), SPANGUARD_RESULT_INVALID_ARGUMENT);

    char tp[SPANGUARD_TRACEPARENT_SIZE];
    CHECK_RC(spanguard_span_traceparent(root, tp, 10), SPANGUARD_RESULT_BUFFER_TOO_SMALL);
    CHECK_RC(spanguard_span_traceparent(root, tp, sizeof tp), SPANGUARD_RESULT_OK);
    CHECK(strlen(tp) == 55 && tp[0] == '0' && tp[1] == '0' && tp[2] == '-');
    CHECK_RC(spanguard_span_add_link(child, tp, strlen(tp), NULL, 0), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_begin_remote(t, S("tool.remote"), tp, strlen(tp), SPANGUARD_KIND_SERVER, &remote),
             SPANGUARD_RESULT_OK);
    char tp_remote[SPANGUARD_TRACEPARENT_SIZE];
    CHECK_RC(spanguard_span_traceparent(remote, tp_remote, sizeof tp_remote), SPANGUARD_RESULT_OK);
    CHECK(strncmp(tp, tp_remote, 35) == 0);   /* same trace id */
    CHECK(strncmp(tp + 36, tp_remote + 36, 16) != 0); /* its own span id */

    /* The same ids as bytes (what a binding keeps as a span ends). */
    uint8_t trace_id[16], span_id[8], flags = 0xee;
    CHECK_RC(spanguard_span_ids(root, trace_id, span_id, &flags), SPANGUARD_RESULT_OK);
    char hex[SPANGUARD_TRACEPARENT_SIZE];
    int at = snprintf(hex, sizeof hex, "00-");
    for (int i = 0; i < 16; i++) at += snprintf(hex + at, sizeof hex - (size_t)at, "%02x", trace_id[i]);
    at += snprintf(hex + at, sizeof hex - (size_t)at, "-");
    for (int i = 0; i < 8; i++) at += snprintf(hex + at, sizeof hex - (size_t)at, "%02x", span_id[i]);
    snprintf(hex + at, sizeof hex - (size_t)at, "-%02x", flags);
    CHECK(strcmp(hex, tp) == 0);
    CHECK_RC(spanguard_span_ids(root, NULL, span_id, &flags), SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_span_ids(SPANGUARD_SPAN_NONE, trace_id, span_id, &flags), SPANGUARD_RESULT_NON_RECORDING);

    /* Ended and its ids kept in one call: the ids spanguard_span_ids gave. */
    uint8_t kept_trace[16], kept_span[8], kept_flags = 0xee;
    bool kept = false;
    uint8_t remote_trace[16], remote_span[8], remote_flags;
    CHECK_RC(spanguard_span_ids(remote, remote_trace, remote_span, &remote_flags), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end_keeping_ids(remote, 0, NULL, kept_span, &kept_flags, &kept),
             SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_span_end_keeping_ids(remote, 0, kept_trace, kept_span, &kept_flags, &kept),
             SPANGUARD_RESULT_OK);
    CHECK(kept && memcmp(kept_trace, remote_trace, 16) == 0 && memcmp(kept_span, remote_span, 8) == 0 &&
          kept_flags == remote_flags);
    CHECK_ENDED(spanguard_span_end_keeping_ids(remote, 0, kept_trace, kept_span, &kept_flags, &kept));
    kept = true;
    CHECK_RC(spanguard_span_end_keeping_ids(SPANGUARD_SPAN_NONE, 0, kept_trace, kept_span, &kept_flags, &kept),
             SPANGUARD_RESULT_NON_RECORDING);
    CHECK(!kept);
    CHECK_RC(spanguard_span_end(child), SPANGUARD_RESULT_OK);
    CHECK_ENDED(spanguard_span_end(child));
    CHECK_ENDED(spanguard_span_set_int(child, S("late"), 1));
    CHECK_RC(spanguard_span_end(root), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    /* Exported: its handle names no span any more; keep the ids before. */
    CHECK_RC(spanguard_span_ids(root, trace_id, span_id, &flags), SPANGUARD_RESULT_STALE_SPAN);
    /* Exported: the slot was reused or freed, the handle is stale now. */
    CHECK_RC(spanguard_span_end(child), SPANGUARD_RESULT_STALE_SPAN);
    /* Judged by what arrived in the sink. */
    CHECK(count_in_dir(dir, "\"name\":\"agent.session\"") == 1);
    CHECK(count_in_dir(dir, "\"name\":\"llm.call\"") == 1);
    CHECK(count_in_dir(dir, "\"name\":\"tool.remote\"") == 1);
    spanguard_counters s = stats_of(t);
    CHECK(s.utf8_replaced == 1);
    CHECK(s.values_truncated == 0);
}

static spanguard_attribute attr_int(const char *key, int64_t value) {
    spanguard_attribute a;
    memset(&a, 0, sizeof a);
    a.key = key;
    a.key_len = strlen(key);
    a.type_ = SPANGUARD_VALUE_INT;
    a.int_value = value;
    return a;
}

static spanguard_attribute attr_string(const char *key, const char *value, size_t value_len) {
    spanguard_attribute a = attr_int(key, 0);
    a.type_ = SPANGUARD_VALUE_STRING;
    a.string_value = value;
    a.string_len = value_len;
    return a;
}

static spanguard_attribute attr_double(const char *key, double value) {
    spanguard_attribute a = attr_int(key, 0);
    a.type_ = SPANGUARD_VALUE_DOUBLE;
    a.double_value = value;
    return a;
}

static spanguard_attribute attr_bool(const char *key, bool value) {
    spanguard_attribute a = attr_int(key, 0);
    a.type_ = SPANGUARD_VALUE_BOOL;
    a.bool_value = value;
    return a;
}

/* SPANGUARD_MAX_ATTRIBUTES + 1 int attributes keyed "<prefix>.<i>". */
static spanguard_attribute *one_too_many(const char *prefix) {
    static spanguard_attribute many[SPANGUARD_MAX_ATTRIBUTES + 1];
    static char keys[SPANGUARD_MAX_ATTRIBUTES + 1][32];
    for (int i = 0; i <= SPANGUARD_MAX_ATTRIBUTES; i++) {
        snprintf(keys[i], sizeof keys[i], "%s.%d", prefix, i);
        many[i] = attr_int(keys[i], i);
    }
    return many;
}

/* Several attributes in one call: each arrives as if set on its own, bad
 * input is refused as for the single setters, and a full table is reported
 * and counted with what fitted kept. */
static void test_set_attributes(spanguard_tracer *t, const char *dir) {
    spanguard_counters before = stats_of(t);
    spanguard_span s;
    CHECK_RC(spanguard_span_begin(t, S("attrs.batch"), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_OK);
    spanguard_attribute attrs[4];
    attrs[0] = attr_string("batch.model", "gpt-batch", 9);
    attrs[1] = attr_int("batch.tokens", 1234);
    attrs[2] = attr_double("batch.temperature", 0.5);
    attrs[3] = attr_bool("batch.stream", true);
    CHECK_RC(spanguard_span_set_attributes(s, attrs, 4), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_attributes(s, attrs, 0), SPANGUARD_RESULT_OK);
    /* A key set again takes the new value. */
    attrs[0] = attr_int("batch.tokens", 99);
    attrs[1] = attr_string("batch.utf8", "a\xff" "b", 3);
    CHECK_RC(spanguard_span_set_attributes(s, attrs, 2), SPANGUARD_RESULT_UTF8_REPLACED);
    CHECK_RC(spanguard_span_set_attributes(s, NULL, 1), SPANGUARD_RESULT_NULL_ARGUMENT);
    attrs[0].key = NULL;
    CHECK_RC(spanguard_span_set_attributes(s, attrs, 1), SPANGUARD_RESULT_NULL_ARGUMENT);
    attrs[0] = attr_int("batch.bad", 1);
    attrs[0].type_ = 42;
    CHECK_RC(spanguard_span_set_attributes(s, attrs, 1), SPANGUARD_RESULT_INVALID_ARGUMENT);
    attrs[0].type_ = SPANGUARD_VALUE_INT;
    CHECK_RC(spanguard_span_set_attributes(SPANGUARD_SPAN_NONE, attrs, 1), SPANGUARD_RESULT_NON_RECORDING);
    /* A bad attribute anywhere in the array sets none of them: the array is
     * checked whole before the first is set. */
    spanguard_attribute partial[3];
    partial[0] = attr_int("batch.partial.first", 1);
    partial[1] = attr_string("batch.partial.second", "x", 1);
    partial[2] = attr_int("batch.partial.third", 3);
    partial[2].key = NULL;
    CHECK_RC(spanguard_span_set_attributes(s, partial, 3), SPANGUARD_RESULT_NULL_ARGUMENT);
    partial[2] = attr_int("batch.partial.third", 3);
    partial[2].type_ = 42;
    CHECK_RC(spanguard_span_set_attributes(s, partial, 3), SPANGUARD_RESULT_INVALID_ARGUMENT);
    spanguard_string with_null[2] = {{"ok", 2}, {NULL, 1}};
    partial[2].type_ = SPANGUARD_VALUE_STRING_ARRAY;
    partial[2].string_value = (const char *)with_null;
    partial[2].string_len = 2;
    CHECK_RC(spanguard_span_set_attributes(s, partial, 3), SPANGUARD_RESULT_NULL_ARGUMENT);
    spanguard_attribute *many = one_too_many("fill");
    /* More than one call takes: refused whole. */
    CHECK_RC(spanguard_span_set_attributes(s, many, SPANGUARD_MAX_ATTRIBUTES + 1), SPANGUARD_RESULT_LIMIT_REACHED);
    /* 5 keys are set; of 128 more, 123 fit the default limit of 128, 5 do not. */
    CHECK_RC(spanguard_span_set_attributes(s, many, SPANGUARD_MAX_ATTRIBUTES), SPANGUARD_RESULT_LIMIT_REACHED);
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    CHECK_ENDED(spanguard_span_set_attributes(s, attrs, 0));
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_attributes(s, attrs, 0), SPANGUARD_RESULT_STALE_SPAN);

    spanguard_counters after = stats_of(t);
    CHECK(after.attributes_dropped - before.attributes_dropped == 5);
    CHECK(after.utf8_replaced - before.utf8_replaced == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"batch.model\",\"value\":{\"stringValue\":\"gpt-batch\"}}") == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"batch.tokens\",\"value\":{\"intValue\":\"99\"}}") == 1);
    CHECK(count_in_dir(dir, "\"batch.tokens\"") == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"batch.temperature\",\"value\":{\"doubleValue\":0.5}}") == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"batch.stream\",\"value\":{\"boolValue\":true}}") == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"batch.utf8\",\"value\":{\"stringValue\":\"a\xef\xbf\xbd" "b\"}}") == 1);
    CHECK(count_in_dir(dir, "\"fill.122\"") == 1);
    CHECK(count_in_dir(dir, "\"fill.123\"") == 0);
    CHECK(count_in_dir(dir, "batch.partial") == 0);
}

/* Appends one packed attribute (see spanguard_span_set_attributes_packed). */
static size_t pack(uint8_t *buf, size_t at, uint8_t type, const char *key, const void *value, size_t value_len) {
    uint32_t kl = (uint32_t)strlen(key), vl = (uint32_t)value_len;
    buf[at++] = type;
    for (int i = 0; i < 4; i++) buf[at++] = (uint8_t)(kl >> (8 * i));
    memcpy(buf + at, key, kl);
    at += kl;
    if (type == SPANGUARD_VALUE_STRING)
        for (int i = 0; i < 4; i++) buf[at++] = (uint8_t)(vl >> (8 * i));
    memcpy(buf + at, value, value_len);
    return at + value_len;
}

static void test_set_attributes_packed(spanguard_tracer *t, const char *dir) {
    spanguard_span s;
    CHECK_RC(spanguard_span_begin(t, S("attrs.packed"), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_OK);
    uint8_t buf[256];
    int64_t tokens = 4321; /* this test runs on little-endian machines, as the format is */
    double temperature = 0.75;
    uint8_t yes = 1;
    size_t n = pack(buf, 0, SPANGUARD_VALUE_STRING, "packed.model", "gpt-packed", 10);
    n = pack(buf, n, SPANGUARD_VALUE_INT, "packed.tokens", &tokens, 8);
    n = pack(buf, n, SPANGUARD_VALUE_DOUBLE, "packed.temperature", &temperature, 8);
    n = pack(buf, n, SPANGUARD_VALUE_BOOL, "packed.stream", &yes, 1);
    CHECK_RC(spanguard_span_set_attributes_packed(s, buf, n), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_attributes_packed(s, NULL, 0), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_attributes_packed(s, NULL, 1), SPANGUARD_RESULT_NULL_ARGUMENT);
    /* Cut anywhere, the buffer sets nothing, not even its whole first attributes. */
    uint8_t bad[64];
    size_t m = pack(bad, 0, SPANGUARD_VALUE_INT, "packed.partial", &tokens, 8);
    m = pack(bad, m, SPANGUARD_VALUE_STRING, "packed.cut", "0123456789", 10);
    CHECK_RC(spanguard_span_set_attributes_packed(s, bad, m - 1), SPANGUARD_RESULT_INVALID_ARGUMENT);
    bad[0] = 42;
    CHECK_RC(spanguard_span_set_attributes_packed(s, bad, m), SPANGUARD_RESULT_INVALID_ARGUMENT);
    CHECK_RC(spanguard_span_set_attributes_packed(SPANGUARD_SPAN_NONE, buf, n), SPANGUARD_RESULT_NON_RECORDING);
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    CHECK_ENDED(spanguard_span_set_attributes_packed(s, buf, n));
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    CHECK(count_in_dir(dir, "{\"key\":\"packed.model\",\"value\":{\"stringValue\":\"gpt-packed\"}}") == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"packed.tokens\",\"value\":{\"intValue\":\"4321\"}}") == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"packed.temperature\",\"value\":{\"doubleValue\":0.75}}") == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"packed.stream\",\"value\":{\"boolValue\":true}}") == 1);
    CHECK(count_in_dir(dir, "\"packed.partial\"") == 0);
}

static void test_begin_packed(spanguard_tracer *t, const char *dir) {
    spanguard_counters before = stats_of(t);
    uint8_t buf[256];
    int64_t tokens = 99;
    uint8_t no = 0;
    size_t n = pack(buf, 0, SPANGUARD_VALUE_STRING, "bp.model", "gpt-bp", 6);
    n = pack(buf, n, SPANGUARD_VALUE_INT, "bp.tokens", &tokens, 8);
    n = pack(buf, n, SPANGUARD_VALUE_BOOL, "bp.stream", &no, 1);
    spanguard_span root, child, plain;
    CHECK_RC(spanguard_span_begin_packed(t, S("bp.root"), SPANGUARD_SPAN_NONE, 2, buf, n, &root), SPANGUARD_RESULT_OK);
    /* A child of it, with a notice from a value; and none at all. */
    size_t u = pack(buf + n, 0, SPANGUARD_VALUE_STRING, "bp.utf8", "x\xff", 2);
    CHECK_RC(spanguard_span_begin_packed(t, S("bp.child"), root, 0, buf + n, u, &child), SPANGUARD_RESULT_UTF8_REPLACED);
    CHECK_RC(spanguard_span_begin_packed(t, S("bp.none"), SPANGUARD_SPAN_NONE, 0, NULL, 0, &plain), SPANGUARD_RESULT_OK);
    /* Bad input begins nothing and leaves *out alone. */
    spanguard_span untouched = 12345;
    CHECK_RC(spanguard_span_begin_packed(t, S("x"), SPANGUARD_SPAN_NONE, 0, NULL, 1, &untouched),
             SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_span_begin_packed(t, S("x"), SPANGUARD_SPAN_NONE, 0, buf, n - 1, &untouched),
             SPANGUARD_RESULT_INVALID_ARGUMENT);
    CHECK_RC(spanguard_span_begin_packed(NULL, S("x"), SPANGUARD_SPAN_NONE, 0, buf, n, &untouched),
             SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_span_begin_packed(t, S("x"), SPANGUARD_SPAN_NONE, 0, buf, n, NULL), SPANGUARD_RESULT_NULL_ARGUMENT);
    /* SPANGUARD_MAX_ATTRIBUTES + 1 attributes: too many for one call. */
    static uint8_t many[(SPANGUARD_MAX_ATTRIBUTES + 1) * 16];
    size_t m = 0;
    for (int i = 0; i <= SPANGUARD_MAX_ATTRIBUTES; i++) m = pack(many, m, SPANGUARD_VALUE_BOOL, "bp.many", &no, 1);
    CHECK_RC(spanguard_span_begin_packed(t, S("x"), SPANGUARD_SPAN_NONE, 0, many, m, &untouched),
             SPANGUARD_RESULT_LIMIT_REACHED);
    CHECK(untouched == 12345);
    CHECK(stats_of(t).spans_begun == before.spans_begun + 3);
    CHECK_RC(spanguard_span_end(child), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(plain), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(root), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    CHECK(count_in_dir(dir, "{\"key\":\"bp.model\",\"value\":{\"stringValue\":\"gpt-bp\"}}") == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"bp.tokens\",\"value\":{\"intValue\":\"99\"}}") == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"bp.stream\",\"value\":{\"boolValue\":false}}") == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"bp.utf8\",\"value\":{\"stringValue\":\"x\xef\xbf\xbd\"}}") == 1);
    CHECK(count_in_dir(dir, "\"bp.many\"") == 0);
    CHECK(count_in_dir(dir, "\"name\":\"bp.") == 3);
}

/* Lower-case hex of n bytes, NUL-terminated, into out (2n + 1 bytes). */
static void hex_of(const uint8_t *b, size_t n, char *out) {
    for (size_t i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* A parent given by its handle and by the context it kept from its begin:
 * its child while it lives, and still after its export (its handle stale),
 * where the handle alone begins a new trace. */
/* spanguard_tracer_set_resource's bad input: an error code, nothing set
 * (what it sets is checked by tests/resource_set_at_run_time.rs and the
 * bridges' tests). An empty set changes nothing. */
static void test_set_resource_input(spanguard_tracer *t) {
    spanguard_attribute a[SPANGUARD_MAX_ATTRIBUTES + 1];
    memset(a, 0, sizeof a);
    CHECK_RC(spanguard_tracer_set_resource(NULL, a, 1), SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_tracer_set_resource(t, NULL, 1), SPANGUARD_RESULT_NULL_ARGUMENT);
    /* Any number (these have no keys: skipped). */
    CHECK_RC(spanguard_tracer_set_resource(t, a, SPANGUARD_MAX_ATTRIBUTES + 1), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_tracer_set_resource(t, NULL, 0), SPANGUARD_RESULT_OK);
    /* Keys with no bytes, unknown types and NULL text are skipped. */
    a[0].type_ = 99;
    a[1].key = "k";
    a[1].key_len = 1;
    a[1].type_ = SPANGUARD_VALUE_STRING;
    a[1].string_len = 3; /* NULL text of 3 bytes */
    CHECK_RC(spanguard_tracer_set_resource(t, a, 2), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_tracer_set_resource(t, NULL, 0), SPANGUARD_RESULT_OK);
}

static void test_begin_keeping_ids(spanguard_tracer *t, const char *dir) {
    spanguard_span parent, live_child, late_child, lost, other;
    spanguard_span_context pctx, ctx, zero;
    memset(&zero, 0, sizeof zero);
    CHECK_RC(spanguard_span_begin_packed_keeping_ids(t, S("kept.parent"), SPANGUARD_SPAN_NONE, NULL, 0, NULL, 0,
                                                     true, &parent, &pctx),
             SPANGUARD_RESULT_OK);
    /* The context written is the span's own. */
    uint8_t trace_id[16], span_id[8], flags;
    CHECK_RC(spanguard_span_ids(parent, trace_id, span_id, &flags), SPANGUARD_RESULT_OK);
    CHECK(memcmp(pctx.trace_id, trace_id, 16) == 0 && memcmp(pctx.span_id, span_id, 8) == 0 &&
          pctx.trace_flags == flags && (flags & 1));
    uint8_t buf[64];
    int64_t n_attr = 5;
    size_t n = pack(buf, 0, SPANGUARD_VALUE_INT, "kept.n", &n_attr, 8);
    CHECK_RC(spanguard_span_begin_packed_keeping_ids(t, S("kept.live"), parent, &pctx, 0, buf, n, false,
                                                     &live_child, &ctx),
             SPANGUARD_RESULT_OK);
    CHECK(memcmp(ctx.trace_id, pctx.trace_id, 16) == 0 && memcmp(ctx.span_id, pctx.span_id, 8) != 0);
    CHECK_RC(spanguard_span_end(live_child), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(parent), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    /* Exported: the handle is stale, the kept context still parents. */
    CHECK_RC(spanguard_span_ids(parent, trace_id, span_id, &flags), SPANGUARD_RESULT_STALE_SPAN);
    CHECK_RC(spanguard_span_begin_packed_keeping_ids(t, S("kept.late"), parent, &pctx, 0, buf, n, true,
                                                     &late_child, &ctx),
             SPANGUARD_RESULT_OK);
    CHECK(memcmp(ctx.trace_id, pctx.trace_id, 16) == 0);
    /* Without it: a new trace, as spanguard_span_begin does. */
    CHECK_RC(spanguard_span_begin_packed_keeping_ids(t, S("kept.lost"), parent, NULL, 0, NULL, 0, true, &lost, &ctx),
             SPANGUARD_RESULT_PARENT_STALE);
    CHECK(memcmp(ctx.trace_id, pctx.trace_id, 16) != 0);
    spanguard_span lost2;
    CHECK_RC(spanguard_span_begin_packed_keeping_ids(t, S("kept.lost"), parent, &zero, 0, NULL, 0, true, &lost2, NULL),
             SPANGUARD_RESULT_PARENT_STALE);
    /* Another tracer's handle: its kept context, or a stale handle. */
    CHECK_RC(spanguard_span_begin_packed_keeping_ids(t, S("kept.other"), 0x7700000000000001ull, &pctx, 0, NULL, 0,
                                                     true, &other, &ctx),
             SPANGUARD_RESULT_OK);
    CHECK(memcmp(ctx.trace_id, pctx.trace_id, 16) == 0);
    spanguard_span untouched = 12345;
    CHECK_RC(spanguard_span_begin_packed_keeping_ids(t, S("x"), 0x7700000000000001ull, NULL, 0, NULL, 0, true,
                                                     &untouched, &ctx),
             SPANGUARD_RESULT_STALE_SPAN);
    /* Bad input begins nothing, leaves *out alone and zeroes the context. */
    CHECK_RC(spanguard_span_begin_packed_keeping_ids(NULL, S("x"), SPANGUARD_SPAN_NONE, &pctx, 0, NULL, 0, true,
                                                     &untouched, &ctx),
             SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK(memcmp(&ctx, &zero, sizeof ctx) == 0);
    CHECK_RC(spanguard_span_begin_packed_keeping_ids(t, S("x"), SPANGUARD_SPAN_NONE, &pctx, 0, buf, n - 1, true,
                                                     &untouched, &ctx),
             SPANGUARD_RESULT_INVALID_ARGUMENT);
    CHECK_RC(spanguard_span_begin_packed_keeping_ids(t, S("x"), SPANGUARD_SPAN_NONE, &pctx, 9, NULL, 0, true,
                                                     &untouched, &ctx),
             SPANGUARD_RESULT_INVALID_ARGUMENT);
    CHECK(untouched == 12345 && memcmp(&ctx, &zero, sizeof ctx) == 0);
    /* An unsampled parent's kept flags: its children are not sampled. */
    spanguard_span_context unsampled = pctx, uctx;
    unsampled.trace_flags = 0;
    spanguard_span quiet;
    CHECK_RC(spanguard_span_begin_packed_keeping_ids(t, S("kept.quiet"), SPANGUARD_SPAN_NONE, &unsampled, 0, NULL, 0,
                                                     true, &quiet, &uctx),
             SPANGUARD_RESULT_NON_RECORDING);
    CHECK(memcmp(uctx.trace_id, pctx.trace_id, 16) == 0 && uctx.trace_flags == 0);
    CHECK_RC(spanguard_span_end(quiet), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(late_child), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(lost), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(lost2), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(other), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    /* In the sink: both children name the parent, in its trace. */
    char trace_hex[33], span_hex[17], needle[128];
    hex_of(pctx.trace_id, 16, trace_hex);
    hex_of(pctx.span_id, 8, span_hex);
    snprintf(needle, sizeof needle, "\"parentSpanId\":\"%s\"", span_hex);
    CHECK(count_in_dir(dir, needle) == 3); /* live, late, other */
    snprintf(needle, sizeof needle, "\"traceId\":\"%s\"", trace_hex);
    CHECK(count_in_dir(dir, needle) == 4); /* parent, live, late, other */
    CHECK(count_in_dir(dir, "\"name\":\"kept.lost\"") == 2);
    CHECK(count_in_dir(dir, "\"name\":\"kept.quiet\"") == 0);
    CHECK(count_in_dir(dir, "{\"key\":\"kept.n\",\"value\":{\"intValue\":\"5\"}}") == 2);
}

static void test_begin_with_attributes(spanguard_tracer *t, const char *dir) {
    spanguard_counters before = stats_of(t);
    spanguard_attribute attrs[4];
    attrs[0] = attr_string("start.model", "gpt-start", 9);
    attrs[1] = attr_int("start.tokens", 7);
    attrs[2] = attr_double("start.temperature", 0.25);
    attrs[3] = attr_int("start.tokens", 8); /* the same key again: last wins */
    spanguard_span root, child, plain;
    CHECK_RC(spanguard_span_begin_with_attributes(t, S("start.root"), SPANGUARD_SPAN_NONE, 1, attrs, 4, &root),
             SPANGUARD_RESULT_OK);
    /* A child, with a notice from an attribute value, and one with none. */
    attrs[0] = attr_string("start.utf8", "x\xff", 2);
    CHECK_RC(spanguard_span_begin_with_attributes(t, S("start.child"), root, 0, attrs, 1, &child),
             SPANGUARD_RESULT_UTF8_REPLACED);
    CHECK_RC(spanguard_span_begin_with_attributes(t, S("start.none"), SPANGUARD_SPAN_NONE, 0, NULL, 0, &plain),
             SPANGUARD_RESULT_OK);
    /* Attributes added later join those from the start. */
    CHECK_RC(spanguard_span_set_bool(root, S("start.later"), true), SPANGUARD_RESULT_OK);

    /* Bad input begins nothing and leaves *out alone. */
    spanguard_span untouched = 12345;
    CHECK_RC(spanguard_span_begin_with_attributes(t, S("x"), SPANGUARD_SPAN_NONE, 0, NULL, 1, &untouched),
             SPANGUARD_RESULT_NULL_ARGUMENT);
    attrs[0].key = NULL;
    CHECK_RC(spanguard_span_begin_with_attributes(t, S("x"), SPANGUARD_SPAN_NONE, 0, attrs, 1, &untouched),
             SPANGUARD_RESULT_NULL_ARGUMENT);
    attrs[0] = attr_int("start.bad", 1);
    attrs[0].type_ = 42;
    CHECK_RC(spanguard_span_begin_with_attributes(t, S("x"), SPANGUARD_SPAN_NONE, 0, attrs, 1, &untouched),
             SPANGUARD_RESULT_INVALID_ARGUMENT);
    spanguard_attribute *many = one_too_many("start");
    CHECK_RC(spanguard_span_begin_with_attributes(t, S("x"), SPANGUARD_SPAN_NONE, 0, many,
                                                  SPANGUARD_MAX_ATTRIBUTES + 1, &untouched),
             SPANGUARD_RESULT_LIMIT_REACHED);
    CHECK_RC(spanguard_span_begin_with_attributes(t, S("x"), SPANGUARD_SPAN_NONE, 9, many, 1, &untouched),
             SPANGUARD_RESULT_INVALID_ARGUMENT);
    CHECK_RC(spanguard_span_begin_with_attributes(NULL, S("x"), SPANGUARD_SPAN_NONE, 0, many, 1, &untouched),
             SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_span_begin_with_attributes(t, NULL, 1, SPANGUARD_SPAN_NONE, 0, many, 1, &untouched),
             SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK(untouched == 12345);
    spanguard_counters mid = stats_of(t);
    CHECK(mid.spans_begun - before.spans_begun == 3);
    /* A table's worth from the start fits whole. */
    spanguard_span full;
    CHECK_RC(spanguard_span_begin_with_attributes(t, S("start.full"), SPANGUARD_SPAN_NONE, 0, many,
                                                  SPANGUARD_MAX_ATTRIBUTES, &full),
             SPANGUARD_RESULT_OK);

    CHECK_RC(spanguard_span_end(plain), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(child), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(root), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(full), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);

    spanguard_counters after = stats_of(t);
    CHECK(after.spans_begun - before.spans_begun == 4);
    CHECK(after.attributes_dropped == before.attributes_dropped);
    CHECK(after.utf8_replaced - before.utf8_replaced == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"start.model\",\"value\":{\"stringValue\":\"gpt-start\"}}") == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"start.tokens\",\"value\":{\"intValue\":\"8\"}}") == 1);
    CHECK(count_in_dir(dir, "\"start.tokens\"") == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"start.temperature\",\"value\":{\"doubleValue\":0.25}}") == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"start.later\",\"value\":{\"boolValue\":true}}") == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"start.utf8\",\"value\":{\"stringValue\":\"x\xef\xbf\xbd\"}}") == 1);
    CHECK(count_in_dir(dir, "\"start.127\"") == 1);
    CHECK(count_in_dir(dir, "\"start.128\"") == 0);
    CHECK(count_in_dir(dir, "\"name\":\"x\"") == 0);
}

/* Every exported attribute has its key: once a span's slot is full, later
 * attributes go to the payload pool, never out without a key. (Before the
 * pool, the token count set after a long prompt and completion arrived as
 * {"value":{"intValue":"812"}}.) */
static void test_no_attribute_without_its_key(spanguard_tracer *t, const char *dir) {
    static char prompt[3000], completion[3000];
    memset(prompt, 'p', sizeof prompt);
    memset(completion, 'c', sizeof completion);
    spanguard_span s;
    CHECK_RC(spanguard_span_begin(t, S("keys.kept"), SPANGUARD_SPAN_NONE, SPANGUARD_KIND_CLIENT, &s), SPANGUARD_RESULT_OK);
    CHECK(spanguard_result_is_ok(spanguard_span_set_string(s, S("gen_ai.prompt"), prompt, sizeof prompt)));
    CHECK(spanguard_result_is_ok(spanguard_span_set_string(s, S("gen_ai.completion"), completion, sizeof completion)));
    CHECK_RC(spanguard_span_set_int(s, S("gen_ai.usage.input_tokens"), 812), SPANGUARD_RESULT_OK);
    spanguard_attribute ea[1];
    ea[0] = attr_int("keys.event.attr", 7);
    CHECK_RC(spanguard_span_add_event(s, S("keys.event"), 0, ea, 1), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_status(s, SPANGUARD_STATUS_ERROR, S("keys.status")), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    CHECK(count_in_dir(dir, "{\"value\":") == 0);
    CHECK(count_in_dir(dir, "{\"key\":\"gen_ai.usage.input_tokens\",\"value\":{\"intValue\":\"812\"}}") == 1);
    CHECK(count_in_dir(dir, "\"name\":\"keys.event\"") == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"keys.event.attr\",\"value\":{\"intValue\":\"7\"}}") == 1);
    CHECK(count_in_dir(dir, "\"message\":\"keys.status\"") == 1);
}

/* "<key>":{"stringValue":"<value>"}} as the sink writes it (no escapes in
 * the values used here). */
static long count_string_attr(const char *dir, const char *key, const char *value, size_t len) {
    size_t n = strlen(key) + len + 64;
    char *needle = malloc(n);
    if (!needle) return -1;
    int head = snprintf(needle, n, "{\"key\":\"%s\",\"value\":{\"stringValue\":\"", key);
    memcpy(needle + head, value, len);
    memcpy(needle + head + len, "\"}}", 4);
    long c = count_in_dir(dir, needle);
    free(needle);
    return c;
}

/* An LLM-sized span: a 100,000-byte prompt, a 20,000-byte completion,
 * token counts set after them and 100 more attributes arrive whole with
 * every key; an event carries a large body; arrays and bytes arrive typed;
 * a value length limit cuts and says so. */
static size_t nested_arrays(uint8_t *out, int levels);
static const char *nested_json(char *out, size_t cap, int arrays, const char *inner);

static void test_llm_sized_span(const char *dir) {
    spanguard_config cfg;
    CHECK_RC(spanguard_config_init(&cfg, sizeof cfg), SPANGUARD_RESULT_OK);
    CHECK(cfg.payload_pool_mib == SPANGUARD_DEFAULT_PAYLOAD_POOL_MIB);
    CHECK(cfg.value_length_limit == SPANGUARD_NO_LENGTH_LIMIT);
    CHECK(cfg.value_depth_limit == SPANGUARD_DEFAULT_DEPTH_LIMIT);
    CHECK(cfg.attribute_count_limit == SPANGUARD_DEFAULT_COUNT_LIMIT);
    cfg.service_name = "c-llm-test";
    cfg.sink_dir = dir;
    cfg.schedule_delay_ms = 50;
    cfg.install_signal_handlers = 0;
    spanguard_tracer *t = NULL;
    CHECK_RC(spanguard_tracer_new(&cfg, &t), SPANGUARD_RESULT_OK);
    if (!t) return;
    static char prompt[100000], completion[20000], body[50000];
    for (size_t i = 0; i < sizeof prompt; i++) prompt[i] = (char)('a' + i % 26);
    for (size_t i = 0; i < sizeof completion; i++) completion[i] = (char)('A' + i % 26);
    for (size_t i = 0; i < sizeof body; i++) body[i] = (char)('0' + i % 10);
    spanguard_span s;
    CHECK_RC(spanguard_span_begin(t, S("llm.chat"), SPANGUARD_SPAN_NONE, SPANGUARD_KIND_CLIENT, &s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_string(s, S("gen_ai.prompt"), prompt, sizeof prompt), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_string(s, S("gen_ai.completion"), completion, sizeof completion), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_int(s, S("gen_ai.usage.input_tokens"), 25000), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_int(s, S("gen_ai.usage.output_tokens"), 5000), SPANGUARD_RESULT_OK);
    for (int i = 0; i < 100; i++) {
        char key[32], value[32];
        snprintf(key, sizeof key, "extra.%d", i);
        snprintf(value, sizeof value, "value-%d", i);
        CHECK_RC(spanguard_span_set_string(s, S(key), S(value)), SPANGUARD_RESULT_OK);
    }
    spanguard_attribute ea[2];
    ea[0] = attr_string("gen_ai.event.content", body, sizeof body);
    ea[1] = attr_int("gen_ai.event.index", 3);
    CHECK_RC(spanguard_span_add_event(s, S("gen_ai.content.prompt"), 0, ea, 2), SPANGUARD_RESULT_OK);
    /* Arrays and bytes, by setter and in an attribute array. */
    spanguard_string reasons[2] = {{"stop", 4}, {"length", 6}};
    int64_t ints[3] = {1, -2, 9007199254740993LL};
    double doubles[2] = {0.5, -1.25};
    bool bools[3] = {true, false, true};
    uint8_t raw[4] = {0x00, 0xff, 0x10, 0x80};
    CHECK_RC(spanguard_span_set_string_array(s, S("gen_ai.response.finish_reasons"), reasons, 2), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_int_array(s, S("ints"), ints, 3), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_double_array(s, S("doubles"), doubles, 2), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_bool_array(s, S("bools"), bools, 3), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_bytes(s, S("raw"), raw, 4), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_bytes(s, S("raw.bad"), NULL, 4), SPANGUARD_RESULT_NULL_ARGUMENT);
    spanguard_string broken[1] = {{NULL, 3}};
    CHECK_RC(spanguard_span_set_string_array(s, S("broken"), broken, 1), SPANGUARD_RESULT_NULL_ARGUMENT);
    spanguard_attribute la[2];
    la[0] = attr_int("link.ints", 0);
    la[0].type_ = SPANGUARD_VALUE_INT_ARRAY;
    la[0].string_value = (const char *)ints;
    la[0].string_len = 3;
    la[1] = attr_string("link.bytes", (const char *)raw, 4);
    la[1].type_ = SPANGUARD_VALUE_BYTES;
    char tp[SPANGUARD_TRACEPARENT_SIZE];
    CHECK_RC(spanguard_span_traceparent(s, tp, sizeof tp), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_add_link(s, tp, strlen(tp), la, 2), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    spanguard_counters st = stats_of(t);
    CHECK(st.values_truncated == 0 && st.attributes_dropped == 0);
    CHECK_RC(spanguard_shutdown(t, 10000), SPANGUARD_RESULT_OK);
    spanguard_tracer_free(t);

    CHECK(count_in_dir(dir, "{\"value\":") == 0);
    CHECK(count_string_attr(dir, "gen_ai.prompt", prompt, sizeof prompt) == 1);
    CHECK(count_string_attr(dir, "gen_ai.completion", completion, sizeof completion) == 1);
    CHECK(count_string_attr(dir, "gen_ai.event.content", body, sizeof body) == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"gen_ai.usage.input_tokens\",\"value\":{\"intValue\":\"25000\"}}") == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"gen_ai.usage.output_tokens\",\"value\":{\"intValue\":\"5000\"}}") == 1);
    for (int i = 0; i < 100; i++) {
        char key[32], value[32];
        snprintf(key, sizeof key, "extra.%d", i);
        snprintf(value, sizeof value, "value-%d", i);
        CHECK(count_string_attr(dir, key, value, strlen(value)) == 1);
    }
    CHECK(count_in_dir(dir, "{\"key\":\"gen_ai.response.finish_reasons\",\"value\":{\"arrayValue\":{\"values\":"
                            "[{\"stringValue\":\"stop\"},{\"stringValue\":\"length\"}]}}}") == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"ints\",\"value\":{\"arrayValue\":{\"values\":[{\"intValue\":\"1\"},"
                            "{\"intValue\":\"-2\"},{\"intValue\":\"9007199254740993\"}]}}}") == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"doubles\",\"value\":{\"arrayValue\":{\"values\":[{\"doubleValue\":0.5},"
                            "{\"doubleValue\":-1.25}]}}}") == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"bools\",\"value\":{\"arrayValue\":{\"values\":[{\"boolValue\":true},"
                            "{\"boolValue\":false},{\"boolValue\":true}]}}}") == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"raw\",\"value\":{\"bytesValue\":\"AP8QgA==\"}}") == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"link.bytes\",\"value\":{\"bytesValue\":\"AP8QgA==\"}}") == 1);
    CHECK(count_in_dir(dir, "\"broken\"") == 0);

    /* A value length limit cuts, and says so. It counts characters, as
     * OpenTelemetry does: 16 keeps 16 of a Japanese completion's 3-byte
     * characters (48 bytes), and a completion of 16 whole. */
    char limited_dir[512];
    snprintf(limited_dir, sizeof limited_dir, "%s/limited", dir);
    cfg.sink_dir = limited_dir;
    cfg.value_length_limit = 16;
    /* A depth limit past the ceiling is refused; one of 2 is honoured. */
    cfg.value_depth_limit = SPANGUARD_MAX_DEPTH_LIMIT + 1;
    t = NULL;
    CHECK_RC(spanguard_tracer_new(&cfg, &t), SPANGUARD_RESULT_INVALID_CONFIG);
    cfg.value_depth_limit = 2;
    t = NULL;
    CHECK_RC(spanguard_tracer_new(&cfg, &t), SPANGUARD_RESULT_OK);
    if (!t) return;
    static const char japanese[] = "\u65e5\u672c\u8a9e\u306e\u56de\u7b54\u3067\u3059\u3002"
                                   "\u3053\u308c\u306f\u9577\u3044\u6587\u7ae0\u3067\u3059\u3002";
    CHECK(strlen(japanese) == 19 * 3);
    CHECK_RC(spanguard_span_begin(t, S("limited"), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_string(s, S("gen_ai.prompt"), prompt, sizeof prompt), SPANGUARD_RESULT_TRUNCATED);
    CHECK_RC(spanguard_span_set_string(s, S("gen_ai.completion"), japanese, strlen(japanese)),
             SPANGUARD_RESULT_TRUNCATED);
    CHECK_RC(spanguard_span_set_string(s, S("gen_ai.completion.short"), japanese, 16 * 3), SPANGUARD_RESULT_OK);
    /* Arrays 1, 2 and 3 deep around an int: the third, deeper than the
     * depth limit of 2, is replaced by the empty value. */
    uint8_t three[64];
    size_t three_len = nested_arrays(three, 4);
    CHECK_RC(spanguard_span_set_anyvalue(s, S("three.deep"), three, three_len), SPANGUARD_RESULT_TRUNCATED);
    uint8_t two[64];
    size_t two_len = nested_arrays(two, 3);
    CHECK_RC(spanguard_span_set_anyvalue(s, S("two.deep"), two, two_len), SPANGUARD_RESULT_OK);
    /* The limit is the attributes' only: a status message is kept whole. */
    CHECK_RC(spanguard_span_set_status(s, SPANGUARD_STATUS_ERROR, S("limited.status.message.longer.than.16")),
             SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_shutdown(t, 10000), SPANGUARD_RESULT_OK);
    st = stats_of(t);
    CHECK(st.values_truncated == 3);
    spanguard_tracer_free(t);
    char want[512], value[512];
    snprintf(want, sizeof want, "{\"key\":\"three.deep\",\"value\":%s}",
             nested_json(value, sizeof value, 2, "{}"));
    CHECK(count_in_dir(limited_dir, want) == 1);
    snprintf(want, sizeof want, "{\"key\":\"two.deep\",\"value\":%s}",
             nested_json(value, sizeof value, 2, "{\"intValue\":\"1\"}"));
    CHECK(count_in_dir(limited_dir, want) == 1);
    CHECK(count_string_attr(limited_dir, "gen_ai.prompt", prompt, 16) == 1);
    CHECK(count_string_attr(limited_dir, "gen_ai.completion", japanese, 16 * 3) == 1);
    CHECK(count_string_attr(limited_dir, "gen_ai.completion.short", japanese, 16 * 3) == 1);
    CHECK(count_in_dir(limited_dir, "\"message\":\"limited.status.message.longer.than.16\"") == 1);
}

/* "The attribute key MUST be a non-null and non-empty string"
 * (OpenTelemetry): an empty key sets nothing, is counted as a dropped
 * attribute (the span's and the tracer's), and the other attributes of the
 * same call are set; an event's or a link's empty key is dropped too. */
static size_t put_varint(uint8_t *out, size_t v) {
    size_t i = 0;
    while (v >= 0x80) {
        out[i++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[i++] = (uint8_t)v;
    return i;
}

/* An encoded AnyValue of `levels` values: arrays of one element around an
 * int (levels 1 is the int). */
static size_t nested_arrays(uint8_t *out, int levels) {
    uint8_t inner[1024];
    size_t n = 0;
    out[n++] = 0x18; /* int_value */
    out[n++] = 1;
    for (int i = 1; i < levels; i++) {
        /* ArrayValue{values: [AnyValue]} as AnyValue.array_value (5). */
        size_t m = 0;
        inner[m++] = 0x0a;
        m += put_varint(inner + m, n);
        memcpy(inner + m, out, n);
        m += n;
        n = 0;
        out[n++] = 0x2a;
        n += put_varint(out + n, m);
        memcpy(out + n, inner, m);
        n += m;
    }
    return n;
}

/* The OTLP/JSON AnyValue object of `arrays` arrays of one element around
 * `inner` (an AnyValue object), in `out`. */
static const char *nested_json(char *out, size_t cap, int arrays, const char *inner) {
    static const char open[] = "{\"arrayValue\":{\"values\":[", close[] = "]}}";
    size_t n = 0;
    out[0] = 0;
    for (int i = 0; i < arrays && n + sizeof open < cap; i++) n += (size_t)snprintf(out + n, cap - n, "%s", open);
    if (n + strlen(inner) < cap) n += (size_t)snprintf(out + n, cap - n, "%s", inner);
    for (int i = 0; i < arrays && n + sizeof close < cap; i++) n += (size_t)snprintf(out + n, cap - n, "%s", close);
    return out;
}

/* Complex values (OpenTelemetry's AnyValue: a map, a mixed array, the empty
 * value, nested) set as encoded OTLP AnyValue messages arrive whole in the
 * sink, as OTLP/JSON; a malformed message is refused with its own code and
 * sets nothing. */
static void test_any_values(spanguard_tracer *t, const char *dir) {
    /* {"city": "Paris", "days": [1, 2.5, "x"], "ok": None}, a tool call's
     * arguments as an instrumentation sets them. */
    static const uint8_t tool_args[] = {
        0x32, 57,                                                   /* kvlist_value */
        0x0a, 15, 0x0a, 4, 'c', 'i', 't', 'y', 0x12, 7, 0x0a, 5, 'P', 'a', 'r', 'i', 's',
        0x0a, 30, 0x0a, 4, 'd', 'a', 'y', 's', 0x12, 22, 0x2a, 20, /* array_value */
        0x0a, 2, 0x18, 1,                                           /* 1 */
        0x0a, 9, 0x21, 0, 0, 0, 0, 0, 0, 0x04, 0x40,                /* 2.5 */
        0x0a, 3, 0x0a, 1, 'x',                                      /* "x" */
        0x0a, 6, 0x0a, 2, 'o', 'k', 0x12, 0,                        /* None */
    };
    static const uint8_t field_zero[] = {0x00, 0x01};
    static const uint8_t bad_utf8[] = {0x2a, 5, 0x0a, 3, 0x0a, 1, 0xff};
    static const uint8_t wrong_wire_type[] = {0x08, 1}; /* a string as a varint */
    /* OpenTelemetry's default depth limit, 64: arrays 64 deep (around an
     * int) are kept whole; 65 deep, the 65th is replaced by the empty
     * value (TRUNCATED), the rest kept. */
    uint8_t deepest[512], too_deep[512];
    size_t deepest_len = nested_arrays(deepest, 65), too_deep_len = nested_arrays(too_deep, 66);
    spanguard_span s;
    CHECK_RC(spanguard_span_begin(t, S("tool.call"), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_anyvalue(s, S("tool.args"), tool_args, sizeof tool_args), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_anyvalue(s, S("none"), NULL, 0), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_anyvalue(s, S("deepest"), deepest, deepest_len), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_anyvalue(s, NULL, 3, tool_args, sizeof tool_args), SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_span_set_anyvalue(s, S("any.bad.null"), NULL, 4), SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_span_set_anyvalue(s, S("any.bad.truncated"), tool_args, sizeof tool_args - 1),
             SPANGUARD_RESULT_INVALID_ANY_VALUE);
    CHECK_RC(spanguard_span_set_anyvalue(s, S("any.bad.field0"), field_zero, sizeof field_zero),
             SPANGUARD_RESULT_INVALID_ANY_VALUE);
    CHECK_RC(spanguard_span_set_anyvalue(s, S("any.bad.wire"), wrong_wire_type, sizeof wrong_wire_type),
             SPANGUARD_RESULT_INVALID_ANY_VALUE);
    CHECK_RC(spanguard_span_set_anyvalue(s, S("too.deep"), too_deep, too_deep_len), SPANGUARD_RESULT_TRUNCATED);
    CHECK_RC(spanguard_span_set_anyvalue(s, S("any.bad.utf8"), bad_utf8, sizeof bad_utf8),
             SPANGUARD_RESULT_INVALID_ANY_VALUE);
    /* In an attribute array: SPANGUARD_VALUE_ANY; a malformed one refuses
     * the whole array, as any bad attribute does. */
    spanguard_attribute a[2];
    a[0] = attr_string("array.args", (const char *)tool_args, sizeof tool_args);
    a[0].type_ = SPANGUARD_VALUE_ANY;
    a[1] = attr_string("array.bad", (const char *)field_zero, sizeof field_zero);
    a[1].type_ = SPANGUARD_VALUE_ANY;
    CHECK_RC(spanguard_span_set_attributes(s, a, 2), SPANGUARD_RESULT_INVALID_ANY_VALUE);
    CHECK_RC(spanguard_span_set_attributes(s, a, 1), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    const char *args_json = "\"value\":{\"kvlistValue\":{\"values\":["
                            "{\"key\":\"city\",\"value\":{\"stringValue\":\"Paris\"}},"
                            "{\"key\":\"days\",\"value\":{\"arrayValue\":{\"values\":["
                            "{\"intValue\":\"1\"},{\"doubleValue\":2.5},{\"stringValue\":\"x\"}]}}},"
                            "{\"key\":\"ok\",\"value\":{}}]}}}";
    char needle[512];
    snprintf(needle, sizeof needle, "{\"key\":\"tool.args\",%s", args_json);
    CHECK(count_in_dir(dir, needle) == 1);
    snprintf(needle, sizeof needle, "{\"key\":\"array.args\",%s", args_json);
    CHECK(count_in_dir(dir, needle) == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"none\",\"value\":{}}") == 1);
    static char deep_want[4096], deep_value[4096];
    snprintf(deep_want, sizeof deep_want, "{\"key\":\"deepest\",\"value\":%s}",
             nested_json(deep_value, sizeof deep_value, 64, "{\"intValue\":\"1\"}"));
    CHECK(count_in_dir(dir, deep_want) == 1);
    snprintf(deep_want, sizeof deep_want, "{\"key\":\"too.deep\",\"value\":%s}",
             nested_json(deep_value, sizeof deep_value, 64, "{}"));
    CHECK(count_in_dir(dir, deep_want) == 1);
    CHECK(count_in_dir(dir, "\"key\":\"any.bad.") == 0);
    CHECK(count_in_dir(dir, "\"key\":\"array.bad\"") == 0);
}

static void test_empty_keys(spanguard_tracer *t, const char *dir) {
    spanguard_counters before = stats_of(t);
    spanguard_span s;
    CHECK_RC(spanguard_span_begin(t, S("empty.keys"), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_int(s, "", 0, 1), SPANGUARD_RESULT_EMPTY_KEY);
    CHECK_RC(spanguard_span_set_string(s, "", 0, S("x")), SPANGUARD_RESULT_EMPTY_KEY);
    spanguard_attribute a[2];
    a[0] = attr_int("empty.keys.kept", 7);
    a[1] = attr_int("", 8);
    CHECK_RC(spanguard_span_set_attributes(s, a, 2), SPANGUARD_RESULT_EMPTY_KEY);
    /* An event's lost attribute is reported as for its limit. */
    CHECK_RC(spanguard_span_add_event(s, S("empty.keys.event"), 0, a, 2), SPANGUARD_RESULT_TRUNCATED);
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    spanguard_counters after = stats_of(t);
    CHECK(after.attributes_dropped - before.attributes_dropped == 4);
    CHECK(count_in_dir(dir, "\"key\":\"\"") == 0);
    CHECK(count_in_dir(dir, "{\"key\":\"empty.keys.kept\",\"value\":{\"intValue\":\"7\"}}") == 2);
    CHECK(count_in_dir(dir, "\"droppedAttributesCount\":3") == 1); /* the span's three */
    CHECK(count_in_dir(dir, "\"name\":\"empty.keys.event\"") == 1);
}

/* OpenTelemetry's status rules: "an attempt to set value Unset SHOULD be
 * ignored" (an ERROR survives a later reset), OK is final, and OK after
 * ERROR drops the message. */
static void test_status_rules(spanguard_tracer *t, const char *dir) {
    spanguard_span a, b, c;
    CHECK_RC(spanguard_span_begin(t, S("status.error.then.unset"), SPANGUARD_SPAN_NONE, 0, &a), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_status(a, SPANGUARD_STATUS_ERROR, S("status.boom")), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_status(a, SPANGUARD_STATUS_UNSET, S("")), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(a), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_begin(t, S("status.error.then.ok"), SPANGUARD_SPAN_NONE, 0, &b), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_status(b, SPANGUARD_STATUS_ERROR, S("status.gone")), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_status(b, SPANGUARD_STATUS_OK, S("")), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_status(b, SPANGUARD_STATUS_UNSET, S("")), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(b), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_begin(t, S("status.ok.then.error"), SPANGUARD_SPAN_NONE, 0, &c), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_status(c, SPANGUARD_STATUS_OK, S("")), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_status(c, SPANGUARD_STATUS_ERROR, S("status.late")), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(c), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    CHECK(count_in_dir(dir, "\"status\":{\"message\":\"status.boom\",\"code\":2}") == 1);
    CHECK(count_in_dir(dir, "status.gone") == 0);
    CHECK(count_in_dir(dir, "status.late") == 0);
    CHECK(count_in_dir(dir, "\"status\":{\"code\":1}") == 2);
}

/* A span renamed after it began (OpenTelemetry's updateName) is exported
 * with its last name only; a rename is cut like a name at begin. */
static void test_update_name(spanguard_tracer *t, const char *dir) {
    spanguard_span s, other;
    CHECK_RC(spanguard_span_begin(t, S("rename.first"), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_set_int(s, S("rename.kept"), 7), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_update_name(s, S("rename.second")), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_update_name(s, S("rename.final")), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_update_name(s, NULL, 3), SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_span_update_name(SPANGUARD_SPAN_NONE, S("x")), SPANGUARD_RESULT_NON_RECORDING);
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    CHECK_ENDED(spanguard_span_update_name(s, S("rename.too.late")));
    static char long_name[SPANGUARD_MAX_NAME_BYTES + 100];
    memset(long_name, 'n', sizeof long_name);
    memcpy(long_name, "rename.long.", 12);
    CHECK_RC(spanguard_span_begin(t, S("rename.short"), SPANGUARD_SPAN_NONE, 0, &other), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_update_name(other, long_name, sizeof long_name), SPANGUARD_RESULT_TRUNCATED);
    CHECK_RC(spanguard_span_end(other), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    CHECK(count_in_dir(dir, "\"name\":\"rename.final\"") == 1);
    CHECK(count_in_dir(dir, "rename.first") == 0);
    CHECK(count_in_dir(dir, "rename.second") == 0);
    CHECK(count_in_dir(dir, "rename.too.late") == 0);
    CHECK(count_in_dir(dir, "{\"key\":\"rename.kept\",\"value\":{\"intValue\":\"7\"}}") == 1);
    CHECK(count_in_dir(dir, "rename.short") == 0);
    char want[SPANGUARD_MAX_NAME_BYTES + 16];
    snprintf(want, sizeof want, "\"name\":\"%.*s\"", SPANGUARD_MAX_NAME_BYTES, long_name);
    CHECK(count_in_dir(dir, want) == 1);
}

/* What a bridge from another SDK passes besides the span: a link's
 * tracestate and the counts the SDK dropped, exported where OTLP puts them. */
static void test_link_tracestate_and_dropped_counts(spanguard_tracer *t, const char *dir) {
    spanguard_span s;
    CHECK_RC(spanguard_span_begin(t, S("bridged.extras"), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_OK);
    const char *tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    CHECK_RC(spanguard_span_add_link_with_tracestate(s, S(tp), S("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"), NULL, 0),
             SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_add_link_with_tracestate(s, S(tp), S("not a tracestate"), NULL, 0), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_add_link_with_tracestate(s, S(tp), NULL, 4, NULL, 0), SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_span_add_link_with_tracestate(s, S("00-bad"), S("a=b"), NULL, 0),
             SPANGUARD_RESULT_INVALID_TRACEPARENT);
    CHECK_RC(spanguard_span_add_dropped_counts(s, 3, 2, 1), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_add_dropped_counts(s, 1, 0, 0), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_add_dropped_counts(SPANGUARD_SPAN_NONE, 1, 1, 1), SPANGUARD_RESULT_NON_RECORDING);
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    CHECK_ENDED(spanguard_span_add_dropped_counts(s, 1, 1, 1));
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    CHECK(count_in_dir(dir, "\"spanId\":\"b7ad6b7169203331\",\"traceState\":\"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7\"") == 1);
    CHECK(count_in_dir(dir, "not a tracestate") == 0);
    CHECK(count_in_dir(dir, "\"droppedAttributesCount\":4") == 1);
    CHECK(count_in_dir(dir, "\"droppedEventsCount\":2") == 1);
    CHECK(count_in_dir(dir, "\"droppedLinksCount\":1") == 1);
}

/* Links given by their ids, as the bridges give them: whether the linked
 * context was remote arrives in the link's flags (0x100 HAS_IS_REMOTE,
 * 0x200 IS_REMOTE, over the W3C bits); a link with an invalid context is
 * kept when it has attributes or a tracestate; bad input gets its code. */
static void test_link_ids(spanguard_tracer *t, const char *dir) {
    static const uint8_t trace_id[16] = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                                         0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
    static const uint8_t remote_id[8] = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};
    static const uint8_t local_id[8] = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb8};
    static const uint8_t unknown_id[8] = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb9};
    static const uint8_t zero_trace[16] = {0};
    static const uint8_t zero_span[8] = {0};
    spanguard_span s;
    CHECK_RC(spanguard_span_begin(t, S("links.by.ids"), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_OK);
    spanguard_attribute why = attr_string("link.why", "zero ids kept", 13);
    CHECK_RC(spanguard_span_add_link_ids(s, trace_id, remote_id, 1, NULL, 0, SPANGUARD_LINK_REMOTE, NULL, 0),
             SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_add_link_ids(s, trace_id, local_id, 1, S("k=v"), SPANGUARD_LINK_LOCAL, NULL, 0),
             SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_add_link_ids(s, trace_id, unknown_id, 0, NULL, 0, 0, NULL, 0), SPANGUARD_RESULT_OK);
    /* An invalid context: kept with an attribute or a tracestate... */
    CHECK_RC(spanguard_span_add_link_ids(s, zero_trace, zero_span, 0, NULL, 0, SPANGUARD_LINK_REMOTE, &why, 1),
             SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_add_link_ids(s, zero_trace, remote_id, 0, S("only=state"), SPANGUARD_LINK_LOCAL, NULL, 0),
             SPANGUARD_RESULT_OK);
    /* ...refused with neither (an invalid tracestate is none). */
    CHECK_RC(spanguard_span_add_link_ids(s, zero_trace, zero_span, 1, NULL, 0, SPANGUARD_LINK_REMOTE, NULL, 0),
             SPANGUARD_RESULT_INVALID_TRACEPARENT);
    CHECK_RC(spanguard_span_add_link_ids(s, trace_id, zero_span, 1, S("not a tracestate"), 0, NULL, 0),
             SPANGUARD_RESULT_INVALID_TRACEPARENT);
    /* Bad input: a code, nothing recorded. */
    CHECK_RC(spanguard_span_add_link_ids(s, NULL, remote_id, 1, NULL, 0, 0, NULL, 0), SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_span_add_link_ids(s, trace_id, NULL, 1, NULL, 0, 0, NULL, 0), SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_span_add_link_ids(s, trace_id, remote_id, 1, NULL, 4, 0, NULL, 0),
             SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_span_add_link_ids(s, trace_id, remote_id, 1, NULL, 0, 0, NULL, 1),
             SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_span_add_link_ids(s, trace_id, remote_id, 1, NULL, 0,
                                         SPANGUARD_LINK_REMOTE | SPANGUARD_LINK_LOCAL, NULL, 0),
             SPANGUARD_RESULT_INVALID_ARGUMENT);
    CHECK_RC(spanguard_span_add_link_ids(s, trace_id, remote_id, 1, NULL, 0, 4, NULL, 0),
             SPANGUARD_RESULT_INVALID_ARGUMENT);
    spanguard_attribute bad_type = attr_int("k", 1);
    bad_type.type_ = 99;
    CHECK_RC(spanguard_span_add_link_ids(s, trace_id, remote_id, 1, NULL, 0, 0, &bad_type, 1),
             SPANGUARD_RESULT_INVALID_ARGUMENT);
    /* Bad UTF-8 in an attribute is replaced: the link is kept. */
    spanguard_attribute bad_utf8 = attr_string("link.text", "a\xff" "b", 3);
    CHECK_RC(spanguard_span_add_link_ids(s, trace_id, unknown_id, 1, NULL, 0, SPANGUARD_LINK_REMOTE, &bad_utf8, 1),
             SPANGUARD_RESULT_UTF8_REPLACED);
    CHECK_RC(spanguard_span_add_link_ids(SPANGUARD_SPAN_NONE, trace_id, remote_id, 1, NULL, 0, 0, NULL, 0),
             SPANGUARD_RESULT_NON_RECORDING);
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    CHECK_ENDED(spanguard_span_add_link_ids(s, trace_id, remote_id, 1, NULL, 0, 0, NULL, 0));
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    CHECK(count_in_dir(dir, "\"spanId\":\"00f067aa0ba902b7\",\"flags\":769}") == 1);
    CHECK(count_in_dir(dir, "\"spanId\":\"00f067aa0ba902b8\",\"traceState\":\"k=v\",\"flags\":257}") == 1);
    CHECK(count_in_dir(dir, "\"spanId\":\"00f067aa0ba902b9\"}") == 1); /* not known: no flags at all */
    CHECK(count_in_dir(dir, "{\"traceId\":\"00000000000000000000000000000000\",\"spanId\":\"0000000000000000\","
                            "\"attributes\":[{\"key\":\"link.why\",\"value\":{\"stringValue\":\"zero ids kept\"}}],"
                            "\"flags\":768}") == 1);
    CHECK(count_in_dir(dir, "\"spanId\":\"00f067aa0ba902b7\",\"traceState\":\"only=state\",\"flags\":256}") == 1);
    CHECK(count_in_dir(dir, "\"key\":\"link.text\",\"value\":{\"stringValue\":\"a\xef\xbf\xbd" "b\"}}],\"flags\":769}") == 1);
    CHECK(count_in_dir(dir, "not a tracestate") == 0);
}

/* What an OpenTelemetry bridge passes for an event's and a link's
 * attributes its SDK dropped: exported in that event's and link's
 * droppedAttributesCount, summed with what spanguard's own limit (128
 * here) drops, saturating at 65535; bad input gets its code. */
static void test_event_and_link_dropped_counts(spanguard_tracer *t, const char *dir) {
    static const uint8_t trace_id[16] = {0x5b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                                         0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x37};
    static const uint8_t span_id[8] = {0x10, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};
    enum { N = 131 };
    static char keys[N][16];
    spanguard_attribute attrs[N];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "k.%d", i);
        attrs[i] = attr_int(keys[i], i);
    }
    spanguard_span s;
    CHECK_RC(spanguard_span_begin(t, S("bridged.drops"), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_OK);
    /* 130 attributes: spanguard drops 2, the SDK had dropped 1005. */
    CHECK_RC(spanguard_span_add_event_with_dropped(s, S("ev.summed"), 0, attrs, 130, 1005),
             SPANGUARD_RESULT_TRUNCATED);
    /* Only the SDK's: not truncated by spanguard. */
    CHECK_RC(spanguard_span_add_event_with_dropped(s, S("ev.sdk"), 0, attrs, 1, 1017), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_add_event_with_dropped(s, S("ev.max"), 0, attrs, 1, UINT32_MAX), SPANGUARD_RESULT_OK);
    /* 131 attributes: spanguard drops 3, the SDK had dropped 2010. */
    CHECK_RC(spanguard_span_add_link_ids_with_dropped(s, trace_id, span_id, 1, NULL, 0, SPANGUARD_LINK_REMOTE, attrs,
                                                      N, 2010),
             SPANGUARD_RESULT_TRUNCATED);
    /* Bad input: a code, nothing recorded. */
    CHECK_RC(spanguard_span_add_event_with_dropped(s, NULL, 3, 0, NULL, 0, 1), SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_span_add_event_with_dropped(s, S("ev.bad"), 0, NULL, 1, 1), SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_span_add_link_ids_with_dropped(s, NULL, span_id, 1, NULL, 0, 0, NULL, 0, 1),
             SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_span_add_link_ids_with_dropped(s, trace_id, span_id, 1, NULL, 0, 4, NULL, 0, 1),
             SPANGUARD_RESULT_INVALID_ARGUMENT);
    CHECK_RC(spanguard_span_add_event_with_dropped(SPANGUARD_SPAN_NONE, S("ev.none"), 0, NULL, 0, 1),
             SPANGUARD_RESULT_NON_RECORDING);
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    CHECK_ENDED(spanguard_span_add_event_with_dropped(s, S("ev.late"), 0, NULL, 0, 1));
    CHECK_ENDED(spanguard_span_add_link_ids_with_dropped(s, trace_id, span_id, 1, NULL, 0, 0, NULL, 0, 1));
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    CHECK(count_in_dir(dir, "\"droppedAttributesCount\":1007}") == 1);
    CHECK(count_in_dir(dir, "\"name\":\"ev.sdk\",\"attributes\":[{\"key\":\"k.0\",\"value\":{\"intValue\":\"0\"}}],"
                            "\"droppedAttributesCount\":1017}") == 1);
    CHECK(count_in_dir(dir, "\"name\":\"ev.max\",\"attributes\":[{\"key\":\"k.0\",\"value\":{\"intValue\":\"0\"}}],"
                            "\"droppedAttributesCount\":65535}") == 1);
    CHECK(count_in_dir(dir, "\"droppedAttributesCount\":2013,\"flags\":769}") == 1);
    CHECK(count_in_dir(dir, "ev.bad") == 0);
}

/* Spans begun on one thread and ended on another go through this bounded
 * handoff, so at most HANDOFF_CAP of them are open at once. */
enum { HANDOFF_CAP = 256 };
static struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    spanguard_span items[HANDOFF_CAP];
    int head, len, producers_left;
} handoff = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0, 0};

static void handoff_push(spanguard_span s) {
    pthread_mutex_lock(&handoff.lock);
    while (handoff.len == HANDOFF_CAP) pthread_cond_wait(&handoff.changed, &handoff.lock);
    handoff.items[(handoff.head + handoff.len++) % HANDOFF_CAP] = s;
    pthread_cond_broadcast(&handoff.changed);
    pthread_mutex_unlock(&handoff.lock);
}

static void *end_handed_off(void *arg) {
    long *ended = arg;
    for (;;) {
        pthread_mutex_lock(&handoff.lock);
        while (handoff.len == 0 && handoff.producers_left > 0) pthread_cond_wait(&handoff.changed, &handoff.lock);
        if (handoff.len == 0) {
            pthread_mutex_unlock(&handoff.lock);
            return NULL;
        }
        spanguard_span s = handoff.items[handoff.head];
        handoff.head = (handoff.head + 1) % HANDOFF_CAP;
        handoff.len--;
        pthread_cond_broadcast(&handoff.changed);
        pthread_mutex_unlock(&handoff.lock);
        if (spanguard_span_end(s) == SPANGUARD_RESULT_OK) (*ended)++;
    }
}

struct worker {
    spanguard_tracer *t;
    int count;
    int failed;
};

static void *begin_many(void *arg) {
    struct worker *w = arg;
    for (int i = 0; i < w->count; i++) {
        spanguard_span s;
        if (spanguard_span_begin(w->t, S("work"), SPANGUARD_SPAN_NONE, 0, &s) != SPANGUARD_RESULT_OK) {
            w->failed++;
            continue;
        }
        if (spanguard_span_set_int(s, S("i"), i) != SPANGUARD_RESULT_OK) w->failed++;
        if (i % 2 == 0) {
            handoff_push(s); /* ended by the ender thread */
        } else if (spanguard_span_end(s) != SPANGUARD_RESULT_OK) {
            w->failed++;
        }
    }
    pthread_mutex_lock(&handoff.lock);
    handoff.producers_left--;
    pthread_cond_broadcast(&handoff.changed);
    pthread_mutex_unlock(&handoff.lock);
    return NULL;
}

static void test_threads_lose_nothing(spanguard_tracer *t, const char *dir) {
    enum { THREADS = 4, PER = 20000 };
    pthread_t th[THREADS], ender;
    struct worker w[THREADS];
    long ended_elsewhere = 0;
    handoff.producers_left = THREADS;
    pthread_create(&ender, NULL, end_handed_off, &ended_elsewhere);
    for (int i = 0; i < THREADS; i++) {
        w[i].t = t;
        w[i].count = PER;
        w[i].failed = 0;
        pthread_create(&th[i], NULL, begin_many, &w[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK(w[i].failed == 0);
    }
    pthread_join(ender, NULL);
    CHECK(ended_elsewhere == THREADS * PER / 2);
    CHECK_RC(spanguard_flush(t, 30000), SPANGUARD_RESULT_OK);
    /* Every span arrived in the sink, each once (their "i" values). */
    CHECK(count_in_dir(dir, "\"name\":\"work\"") == (long)THREADS * PER);
    CHECK(count_in_dir(dir, "{\"key\":\"i\",\"value\":{\"intValue\":\"19999\"}}") == THREADS);
    spanguard_counters s = stats_of(t);
    CHECK(s.dropped_buffer_full == 0);
    CHECK(s.queue_depth == 0);
    CHECK(s.spans_open == 0);
}

/* The sink path names the very file the spans arrive in. */
static void test_sink_path(spanguard_tracer *t, const char *dir) {
    size_t n = 0;
    CHECK_RC(spanguard_tracer_sink_path(t, NULL, 0, &n), SPANGUARD_RESULT_BUFFER_TOO_SMALL);
    CHECK(n > strlen(dir));
    char small[4];
    CHECK_RC(spanguard_tracer_sink_path(t, small, sizeof small, &n), SPANGUARD_RESULT_BUFFER_TOO_SMALL);
    CHECK_RC(spanguard_tracer_sink_path(t, NULL, 8, &n), SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_tracer_sink_path(t, small, sizeof small, NULL), SPANGUARD_RESULT_NULL_ARGUMENT);
    char path[1024];
    size_t m = 0;
    CHECK_RC(spanguard_tracer_sink_path(t, path, sizeof path, &m), SPANGUARD_RESULT_OK);
    CHECK(m == n && strlen(path) == m);
    CHECK(strncmp(path, dir, strlen(dir)) == 0);
    spanguard_span s;
    CHECK_RC(spanguard_span_begin(t, S("sink.path.probe"), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (f) {
        static char line[1 << 20];
        int found = 0;
        while (fgets(line, sizeof line, f)) found += strstr(line, "\"sink.path.probe\"") != NULL;
        CHECK(found == 1);
        fclose(f);
    }

    spanguard_config cfg;
    CHECK_RC(spanguard_config_init(&cfg, sizeof cfg), SPANGUARD_RESULT_OK);
    cfg.endpoint = "discard:";
    cfg.install_signal_handlers = 0;
    spanguard_tracer *remote = NULL;
    CHECK_RC(spanguard_tracer_new(&cfg, &remote), SPANGUARD_RESULT_OK);
    path[0] = 'x';
    CHECK_RC(spanguard_tracer_sink_path(remote, path, sizeof path, &m), SPANGUARD_RESULT_OK);
    CHECK(m == 0 && path[0] == 0);
    spanguard_tracer_free(remote);
}

static void test_shutdown_exports_open_spans(spanguard_tracer *t, const char *dir) {
    spanguard_span open;
    CHECK_RC(spanguard_span_begin(t, S("still.open"), SPANGUARD_SPAN_NONE, 0, &open), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_shutdown(t, 10000), SPANGUARD_RESULT_OK);
    CHECK(count_in_dir(dir, "\"name\":\"still.open\"") == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"spanguard.unended\",\"value\":{\"boolValue\":true}}") == 1);
    spanguard_span s2;
    CHECK_RC(spanguard_span_begin(t, S("late"), SPANGUARD_SPAN_NONE, 0, &s2), SPANGUARD_RESULT_SHUT_DOWN);
    CHECK_RC(spanguard_span_end(open), SPANGUARD_RESULT_SHUT_DOWN);
    static const uint8_t trace_id[16] = {1}, span_id[8] = {2};
    CHECK_RC(spanguard_span_add_link_ids(open, trace_id, span_id, 1, NULL, 0, SPANGUARD_LINK_REMOTE, NULL, 0),
             SPANGUARD_RESULT_SHUT_DOWN);
    CHECK_RC(spanguard_flush(t, 10), SPANGUARD_RESULT_SHUT_DOWN);
    /* Like every other call: a resource set now would name no batch. */
    spanguard_attribute r[1] = {{.key = "service.name", .key_len = 12, .type_ = SPANGUARD_VALUE_STRING,
                                 .string_value = "late", .string_len = 4}};
    CHECK_RC(spanguard_tracer_set_resource(t, r, 1), SPANGUARD_RESULT_SHUT_DOWN);
    CHECK_RC(spanguard_tracer_set_resource(t, NULL, 0), SPANGUARD_RESULT_SHUT_DOWN);
    CHECK_RC(spanguard_shutdown(t, 10), SPANGUARD_RESULT_SHUT_DOWN);
}

/* A shutdown for a signal a binding's own handler caught marks the spans
 * still open interrupted by it, as the library's own handler does, and
 * counts them ended, not unended; bad arguments change nothing. */
static void test_shutdown_for_signal(const char *dir) {
    char own[512];
    snprintf(own, sizeof own, "%s/for-signal", dir);
    spanguard_tracer *t = make_tracer(own, 0);
    spanguard_span open;
    CHECK_RC(spanguard_span_begin(t, S("open.at.sigterm"), SPANGUARD_SPAN_NONE, 0, &open), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_shutdown_for_signal(NULL, SIGTERM, 1000), SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_shutdown_for_signal(t, 0, 1000), SPANGUARD_RESULT_INVALID_ARGUMENT);
    CHECK_RC(spanguard_shutdown_for_signal(t, -SIGTERM, 1000), SPANGUARD_RESULT_INVALID_ARGUMENT);
    CHECK_RC(spanguard_shutdown_for_signal(t, SIGRTMAX + 1, 1000), SPANGUARD_RESULT_INVALID_ARGUMENT);
    CHECK_RC(spanguard_shutdown_for_signal(t, 1 << 20, 1000), SPANGUARD_RESULT_INVALID_ARGUMENT);
    /* Still running after those: the span is open and may be changed. */
    CHECK_RC(spanguard_span_set_int(open, S("n"), 1), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_shutdown_for_signal(t, SIGTERM, 10000), SPANGUARD_RESULT_OK);
    CHECK(count_in_dir(own, "\"name\":\"open.at.sigterm\"") == 1);
    CHECK(count_in_dir(own, "{\"key\":\"spanguard.interrupted\",\"value\":{\"boolValue\":true}}") == 1);
    CHECK(count_in_dir(own, "{\"key\":\"spanguard.signal\",\"value\":{\"intValue\":\"15\"}}") == 1);
    CHECK(count_in_dir(own, "spanguard.unended") == 0);
    spanguard_counters s = stats_of(t);
    CHECK(s.spans_ended == 1);
    CHECK(s.spans_unended_at_shutdown == 0);
    CHECK(s.spans_interrupted_at_shutdown == 1);
    CHECK(s.spans_exported == 1);
    CHECK(s.exporter_waits_ran_out == 0); /* it stopped in time */
    /* A caller built against the header before that counter: its smaller
     * struct is filled up to its size, nothing written past it. */
    spanguard_counters old;
    memset(&old, 0xAB, sizeof old);
    old.struct_size = (uint32_t)offsetof(spanguard_counters, spans_interrupted_at_shutdown);
    CHECK_RC(spanguard_stats(t, &old), SPANGUARD_RESULT_OK);
    CHECK(old.struct_size == offsetof(spanguard_counters, spans_interrupted_at_shutdown));
    CHECK(old.spans_ended == 1 && old.spans_exported == 1 && old.slot_wait_ns == s.slot_wait_ns);
    CHECK(old.spans_interrupted_at_shutdown == 0xABABABABABABABABull);
    CHECK_RC(spanguard_span_end(open), SPANGUARD_RESULT_SHUT_DOWN);
    CHECK_RC(spanguard_shutdown_for_signal(t, SIGTERM, 10), SPANGUARD_RESULT_SHUT_DOWN);
    CHECK_RC(spanguard_shutdown(t, 10), SPANGUARD_RESULT_SHUT_DOWN);
    spanguard_tracer_free(t);
}

/* spanguard_tracer_close shuts down as spanguard_tracer_free would and
 * keeps the memory: every later call on the tracer or its spans gets
 * SHUT_DOWN, not freed memory, until the free. */
static void test_close_keeps_the_tracer_until_free(const char *dir) {
    spanguard_tracer *t = make_tracer(dir, 0);
    spanguard_span done, open;
    CHECK_RC(spanguard_span_begin(t, S("closed.ended"), SPANGUARD_SPAN_NONE, 0, &done), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(done), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_begin(t, S("closed.open"), SPANGUARD_SPAN_NONE, 0, &open), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_tracer_close(t), SPANGUARD_RESULT_OK);
    CHECK(count_in_dir(dir, "\"name\":\"closed.ended\"") == 1);
    CHECK(count_in_dir(dir, "\"name\":\"closed.open\"") == 1);
    spanguard_span late;
    CHECK_RC(spanguard_span_begin(t, S("closed.late"), SPANGUARD_SPAN_NONE, 0, &late), SPANGUARD_RESULT_SHUT_DOWN);
    CHECK_RC(spanguard_span_set_int(open, S("n"), 1), SPANGUARD_RESULT_SHUT_DOWN);
    CHECK_RC(spanguard_span_end(open), SPANGUARD_RESULT_SHUT_DOWN);
    CHECK_RC(spanguard_tracer_close(t), SPANGUARD_RESULT_SHUT_DOWN);
    CHECK_RC(spanguard_shutdown(t, 10), SPANGUARD_RESULT_SHUT_DOWN);
    CHECK_RC(spanguard_tracer_set_resource(t, NULL, 0), SPANGUARD_RESULT_SHUT_DOWN);
    CHECK(stats_of(t).spans_exported == 2);
    CHECK_RC(spanguard_tracer_close(NULL), SPANGUARD_RESULT_NULL_ARGUMENT);
    spanguard_tracer_free(t);
}

/* With the backend down, flush is done as soon as the spans are safe in the
 * spool, and says so with a notice of its own (a success). */
static void test_flush_tells_delivered_from_spooled(const char *dir) {
    char url[64], spool[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/traces", closed_port());
    snprintf(spool, sizeof spool, "%s/down-spool", dir);
    spanguard_config cfg;
    CHECK_RC(spanguard_config_init(&cfg, sizeof cfg), SPANGUARD_RESULT_OK);
    cfg.endpoint = url;
    cfg.spool_dir = spool;
    cfg.export_timeout_ms = 200;
    cfg.install_signal_handlers = 0;
    cfg.log_level = "none";
    spanguard_tracer *t = NULL;
    CHECK_RC(spanguard_tracer_new(&cfg, &t), SPANGUARD_RESULT_OK);
    /* Nothing ended: done at once, not timed out (an OpenTelemetry SDK's
     * force_flush answers true with nothing to flush). */
    CHECK_RC(spanguard_flush(t, 0), SPANGUARD_RESULT_OK);
    for (int i = 0; i < 3; i++) {
        spanguard_span s;
        CHECK_RC(spanguard_span_begin(t, S("kept"), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_OK);
        CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    }
    spanguard_result rc = spanguard_flush(t, 10000);
    CHECK_RC(rc, SPANGUARD_RESULT_SPOOLED);
    CHECK(spanguard_result_is_ok(rc));
    long on_disk = 0;
    DIR *d = opendir(spool);
    for (struct dirent *e; d && (e = readdir(d));) on_disk += strstr(e->d_name, ".sgspool") != NULL;
    if (d) closedir(d);
    CHECK(on_disk > 0);
    spanguard_tracer_free(t);
}

/* A full buffer: spanguard_span_try_begin_packed never waits. Under the
 * wait policy it says WOULD_WAIT and counts nothing (the caller begins the
 * span again where it may wait); under the drop policy it drops and
 * counts, as spanguard_span_begin_packed does. */
static void test_try_begin_when_full(void) {
    for (uint32_t policy = SPANGUARD_FULL_POLICY_WAIT;; policy = SPANGUARD_FULL_POLICY_DROP) {
        spanguard_config cfg;
        CHECK_RC(spanguard_config_init(&cfg, sizeof cfg), SPANGUARD_RESULT_OK);
        cfg.endpoint = "discard:";
        cfg.install_signal_handlers = 0;
        cfg.log_level = "none";
        cfg.max_queue_size = 16;
        cfg.max_open_spans = 16;
        cfg.full_policy = policy;
        cfg.full_wait_ms = 20;
        spanguard_tracer *t = NULL;
        CHECK_RC(spanguard_tracer_new(&cfg, &t), SPANGUARD_RESULT_OK);
        spanguard_span open[4096];
        int n = 0;
        spanguard_result rc;
        while ((rc = spanguard_span_try_begin_packed(t, S("full"), SPANGUARD_SPAN_NONE, 0, NULL, 0, &open[n])) ==
               SPANGUARD_RESULT_OK) {
            CHECK(++n < 4096);
        }
        if (policy == SPANGUARD_FULL_POLICY_WAIT) {
            CHECK_RC(rc, SPANGUARD_RESULT_WOULD_WAIT);
            CHECK(stats_of(t).dropped_buffer_full == 0);
            /* The waiting begin waits full_wait_ms, then drops and counts. */
            spanguard_span dropped;
            CHECK_RC(spanguard_span_begin_packed(t, S("full"), SPANGUARD_SPAN_NONE, 0, NULL, 0, &dropped),
                     SPANGUARD_RESULT_BUFFER_FULL);
        } else {
            CHECK_RC(rc, SPANGUARD_RESULT_BUFFER_FULL);
        }
        CHECK(stats_of(t).dropped_buffer_full == 1);
        for (int i = 0; i < n; i++) CHECK_RC(spanguard_span_end(open[i]), SPANGUARD_RESULT_OK);
        CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
        spanguard_span again;
        CHECK_RC(spanguard_span_try_begin_packed(t, S("again"), SPANGUARD_SPAN_NONE, 0, NULL, 0, &again),
                 SPANGUARD_RESULT_OK);
        CHECK_RC(spanguard_span_end(again), SPANGUARD_RESULT_OK);
        spanguard_tracer_free(t);
        if (policy == SPANGUARD_FULL_POLICY_DROP) break;
    }
}

/* spanguard_tracer_count_slot_wait, for each input: a wait counts one in
 * slot_waits and its time in slot_wait_ns; 0 ns counts a wait; a total
 * that would pass UINT64_MAX stops there (it wrapped to a small figure);
 * NULL and a disabled tracer do nothing; a closed tracer still counts (as
 * a native wait the shutdown ended is); in a forked child, the parent's
 * tracer before the child's first call counts nothing and is not made by
 * it (it was: the child's first span found the wait counted). */
static void test_count_slot_wait(const char *dir) {
    char own[512];
    snprintf(own, sizeof own, "%s/slot-wait", dir);
    spanguard_tracer *t = make_tracer(own, 0);
    spanguard_tracer_count_slot_wait(NULL, 5);
    spanguard_counters before = stats_of(t);
    spanguard_tracer_count_slot_wait(t, 250000000u);
    spanguard_counters s = stats_of(t);
    CHECK(s.slot_waits == before.slot_waits + 1);
    CHECK(s.slot_wait_ns == before.slot_wait_ns + 250000000u);
    CHECK(s.spans_begun == before.spans_begun && s.dropped_buffer_full == before.dropped_buffer_full);
    spanguard_tracer_count_slot_wait(t, 0);
    CHECK(stats_of(t).slot_waits == before.slot_waits + 2);
    CHECK(stats_of(t).slot_wait_ns == before.slot_wait_ns + 250000000u);
    spanguard_tracer_count_slot_wait(t, UINT64_MAX);
    CHECK(stats_of(t).slot_wait_ns == UINT64_MAX);
    spanguard_tracer_count_slot_wait(t, UINT64_MAX);
    CHECK(stats_of(t).slot_waits == before.slot_waits + 4);
    CHECK(stats_of(t).slot_wait_ns == UINT64_MAX);

    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        spanguard_tracer_count_slot_wait(t, 7);
        CHECK(stats_of(t).slot_waits == 0); /* nothing made, nothing counted */
        spanguard_span span;
        CHECK_RC(spanguard_span_begin(t, S("slot.wait.child"), SPANGUARD_SPAN_NONE, 0, &span), SPANGUARD_RESULT_OK);
        CHECK_RC(spanguard_span_end(span), SPANGUARD_RESULT_OK);
        CHECK(stats_of(t).spans_begun == 1);
        CHECK(stats_of(t).slot_waits == 0 && stats_of(t).slot_wait_ns == 0);
        spanguard_tracer_count_slot_wait(t, 7); /* made now: counted */
        CHECK(stats_of(t).slot_waits == 1 && stats_of(t).slot_wait_ns == 7);
        CHECK_RC(spanguard_shutdown(t, 10000), SPANGUARD_RESULT_OK);
        _exit(failures ? 1 : 0);
    }
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    CHECK_RC(spanguard_tracer_close(t), SPANGUARD_RESULT_OK);
    spanguard_tracer_count_slot_wait(t, 3);
    CHECK(stats_of(t).slot_waits == before.slot_waits + 5);
    spanguard_tracer_free(t);

    setenv("OTEL_SDK_DISABLED", "true", 1);
    spanguard_tracer *off = NULL;
    CHECK_RC(spanguard_tracer_new_from_env(NULL, &off), SPANGUARD_RESULT_OK);
    spanguard_tracer_count_slot_wait(off, 5);
    CHECK(stats_of(off).slot_waits == 0 && stats_of(off).slot_wait_ns == 0);
    spanguard_tracer_free(off);
    unsetenv("OTEL_SDK_DISABLED");
}

/* spanguard_span_try_make_room, for each input: room in the slot or taken
 * from the pool is OK and stores nothing, counts nothing; a bound past
 * 64 KiB of room is INVALID_ARGUMENT (SIZE_MAX would hand one span the whole
 * pool); SPANGUARD_SPAN_NONE is NON_RECORDING, an ended span ALREADY_ENDED
 * (or STALE_SPAN once exported), a span of a freed tracer STALE_SPAN. */
static void test_try_make_room(const char *dir) {
    char own[512];
    snprintf(own, sizeof own, "%s/make-room", dir);
    spanguard_tracer *t = make_tracer(own, 0);
    spanguard_span span;
    CHECK_RC(spanguard_span_begin(t, S("make.room"), SPANGUARD_SPAN_NONE, 0, &span), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_try_make_room(span, 0, 0), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_try_make_room(span, 40, 1), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_try_make_room(span, 5000, 3), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_try_make_room(span, 20000, 1), SPANGUARD_RESULT_INVALID_ARGUMENT);
    CHECK_RC(spanguard_span_try_make_room(span, SIZE_MAX, SIZE_MAX), SPANGUARD_RESULT_INVALID_ARGUMENT);
    CHECK_RC(spanguard_span_set_string(span, S("gen_ai.system"), S("openai")), SPANGUARD_RESULT_OK);
    spanguard_counters s = stats_of(t);
    CHECK(s.attributes_dropped == 0 && s.values_truncated == 0 && s.payload_waits == 0);
    CHECK_RC(spanguard_span_end(span), SPANGUARD_RESULT_OK);
    /* Or STALE_SPAN, once the exporter has sent it and its slot went back. */
    spanguard_result ended = spanguard_span_try_make_room(span, 40, 1);
    CHECK(ended == SPANGUARD_RESULT_ALREADY_ENDED || ended == SPANGUARD_RESULT_STALE_SPAN);
    CHECK_RC(spanguard_span_try_make_room(SPANGUARD_SPAN_NONE, 40, 1), SPANGUARD_RESULT_NON_RECORDING);
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    spanguard_tracer_free(t);
    CHECK_RC(spanguard_span_try_make_room(span, 40, 1), SPANGUARD_RESULT_STALE_SPAN);
}

static void test_disabled(void) {
    setenv("OTEL_SDK_DISABLED", "true", 1);
    spanguard_tracer *t = NULL;
    CHECK_RC(spanguard_tracer_new_from_env(NULL, &t), SPANGUARD_RESULT_OK);
    spanguard_span s = 1;
    CHECK_RC(spanguard_span_begin(t, S("x"), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_NON_RECORDING);
    CHECK(s == SPANGUARD_SPAN_NONE);
    CHECK_RC(spanguard_span_set_int(s, S("k"), 1), SPANGUARD_RESULT_NON_RECORDING);
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_NON_RECORDING);
    CHECK_RC(spanguard_flush(t, 10), SPANGUARD_RESULT_OK);
    spanguard_tracer_free(t);
    /* A wrong value beside it is ignored, not fatal (test_config_errors.c
     * checks what a running tracer makes of one). */
    setenv("OTEL_BSP_SCHEDULE_DELAY", "soon", 1);
    t = NULL;
    CHECK_RC(spanguard_tracer_new_from_env(NULL, &t), SPANGUARD_RESULT_OK);
    CHECK(t != NULL);
    CHECK_RC(spanguard_span_begin(t, S("x"), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_NON_RECORDING);
    spanguard_tracer_free(t);
    unsetenv("OTEL_BSP_SCHEDULE_DELAY");
    unsetenv("OTEL_SDK_DISABLED");
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "build/c-test-spans";
    test_codes_and_version();
    spanguard_tracer *t = make_tracer(dir, 0);
    test_bad_input(t);
    test_one_span_of_everything(t, dir);
    test_set_attributes(t, dir);
    test_begin_with_attributes(t, dir);
    test_no_attribute_without_its_key(t, dir);
    test_set_attributes_packed(t, dir);
    test_begin_packed(t, dir);
    test_begin_keeping_ids(t, dir);
    test_set_resource_input(t);
    test_try_begin_when_full();
    test_update_name(t, dir);
    test_status_rules(t, dir);
    test_empty_keys(t, dir);
    test_any_values(t, dir);
    test_link_tracestate_and_dropped_counts(t, dir);
    test_link_ids(t, dir);
    test_event_and_link_dropped_counts(t, dir);
    test_threads_lose_nothing(t, dir);
    test_sink_path(t, dir);
    test_shutdown_exports_open_spans(t, dir);
    spanguard_tracer_free(t);
    test_close_keeps_the_tracer_until_free(dir);
    test_shutdown_for_signal(dir);
    test_flush_tells_delivered_from_spooled(dir);
    test_count_slot_wait(dir);
    test_try_make_room(dir);
    char llm_dir[512];
    snprintf(llm_dir, sizeof llm_dir, "%s-llm", dir);
    test_llm_sized_span(llm_dir);
    test_disabled();
    return check_summary();
}
