/* Trace context through the C ABI: spans begun with explicit ids and an
 * instrumentation scope (what bridges from OpenTelemetry SDKs use), the
 * sampler's rules, W3C traceparent and tracestate in and out, and a
 * disabled tracer that still passes the incoming context on. What was
 * exported is judged by what the file sink wrote. Compiled with -Wall
 * -Wextra -Wpedantic -Werror against the checked-in header. */
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spanguard.h"
#include "check.h"
#include "sink_count.h"

#define S(str) (str), strlen(str)

static char dir_base[512];

/* A tracer writing to its own sink directory `<base>/<name>`. */
static spanguard_tracer *make_tracer(const char *name, uint32_t sampler, double ratio, char *dir, size_t dir_len) {
    snprintf(dir, dir_len, "%s/%s", dir_base, name);
    spanguard_config cfg;
    CHECK_RC(spanguard_config_init(&cfg, sizeof cfg), SPANGUARD_RESULT_OK);
    cfg.service_name = "c-context-test";
    cfg.sink_dir = dir;
    cfg.spool_dir = dir_base;
    cfg.schedule_delay_ms = 50;
    cfg.install_signal_handlers = 0;
    /* A loaded machine's exporter may fall behind a tight loop: wait for a
     * slot rather than drop (these tests count spans, not time). */
    cfg.full_wait_ms = 30000;
    cfg.sampler = sampler;
    cfg.sampler_ratio = ratio;
    spanguard_tracer *t = NULL;
    CHECK_RC(spanguard_tracer_new(&cfg, &t), SPANGUARD_RESULT_OK);
    return t;
}

static const uint8_t TRACE[16] = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                                  0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
static const uint8_t ROOT_ID[8] = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};
static const uint8_t CHILD_ID[8] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};

/* A bridge's spans: the ids, parent, times, scope and attributes the SDK
 * gave them arrive as given, grouped by scope. */
static void test_explicit_ids_and_scope(void) {
    char dir[600];
    spanguard_tracer *t = make_tracer("explicit", SPANGUARD_SAMPLER_PARENTBASED_ALWAYS_ON, 1.0, dir, sizeof dir);
    spanguard_span_options o;
    CHECK_RC(spanguard_span_options_init_sized(&o, sizeof o), SPANGUARD_RESULT_OK);
    CHECK(o.struct_size == sizeof o && o.trace_id == NULL && o.start_time_unix_ns == 0);
    o.name = "agent.run";
    o.name_len = strlen(o.name);
    o.kind = SPANGUARD_KIND_SERVER;
    o.trace_id = TRACE;
    o.span_id = ROOT_ID;
    o.trace_flags = 0x01;
    o.start_time_unix_ns = 1700000000000000000ull;
    o.scope_name = "opentelemetry.instrumentation.openai_v2";
    o.scope_name_len = strlen(o.scope_name);
    o.scope_version = "2.1b0";
    o.scope_version_len = strlen(o.scope_version);
    o.scope_schema_url = "https://opentelemetry.io/schemas/1.28.0";
    o.scope_schema_url_len = strlen(o.scope_schema_url);
    spanguard_attribute a;
    memset(&a, 0, sizeof a);
    a.key = "gen_ai.system";
    a.key_len = strlen(a.key);
    a.type_ = SPANGUARD_VALUE_STRING;
    a.string_value = "openai";
    a.string_len = 6;
    o.attributes = &a;
    o.attribute_count = 1;
    spanguard_span root, child, plain;
    CHECK_RC(spanguard_span_begin_ex(t, &o, &root), SPANGUARD_RESULT_OK);
    char tp[SPANGUARD_TRACEPARENT_SIZE];
    CHECK_RC(spanguard_span_traceparent(root, tp, sizeof tp), SPANGUARD_RESULT_OK);
    CHECK(strcmp(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") == 0);

    /* A child with a remote parent id, another scope. */
    o.span_id = CHILD_ID;
    o.parent_span_id = ROOT_ID;
    o.flags = SPANGUARD_SPAN_OPTION_PARENT_IS_REMOTE;
    o.name = "chat gpt-4o";
    o.name_len = strlen(o.name);
    o.kind = SPANGUARD_KIND_CLIENT;
    o.scope_name = "@opentelemetry/instrumentation-http";
    o.scope_name_len = strlen(o.scope_name);
    o.scope_version = NULL;
    o.scope_version_len = 0;
    o.scope_schema_url = NULL;
    o.scope_schema_url_len = 0;
    o.attributes = NULL;
    o.attribute_count = 0;
    CHECK_RC(spanguard_span_begin_ex(t, &o, &child), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_begin(t, S("spanguard.own"), SPANGUARD_SPAN_NONE, 0, &plain), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end_at(child, 1700000000500000000ull), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end_at(root, 1700000001000000000ull), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(plain), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_shutdown(t, 10000), SPANGUARD_RESULT_OK);

    CHECK(count_in_dir(dir, "\"traceId\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"spanId\":\"00f067aa0ba902b7\",\"flags\":257,\"name\":\"agent.run\",\"kind\":2,\"startTimeUnixNano\":\"1700000000000000000\",\"endTimeUnixNano\":\"1700000001000000000\"") == 1);
    CHECK(count_in_dir(dir, "\"spanId\":\"1122334455667788\",\"parentSpanId\":\"00f067aa0ba902b7\",\"flags\":769,\"name\":\"chat gpt-4o\",\"kind\":3,\"startTimeUnixNano\":\"1700000000000000000\",\"endTimeUnixNano\":\"1700000000500000000\"") == 1);
    CHECK(count_in_dir(dir, "{\"key\":\"gen_ai.system\",\"value\":{\"stringValue\":\"openai\"}}") == 1);
    /* One ScopeSpans per scope, each holding its own spans. */
    CHECK(count_in_dir(dir, "{\"scope\":{\"name\":\"opentelemetry.instrumentation.openai_v2\",\"version\":\"2.1b0\"},\"spans\":[{\"traceId\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"spanId\":\"00f067aa0ba902b7\"") == 1);
    CHECK(count_in_dir(dir, "{\"scope\":{\"name\":\"@opentelemetry/instrumentation-http\"},\"spans\":[{\"traceId\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"spanId\":\"1122334455667788\"") == 1);
    CHECK(count_in_dir(dir, "{\"scope\":{\"name\":\"spanguard\"") == 1);
    /* The scope's schema URL closes its ScopeSpans; the others have none. */
    CHECK(count_in_dir(dir, "}],\"schemaUrl\":\"https://opentelemetry.io/schemas/1.28.0\"}") == 1);
    CHECK(count_in_dir(dir, "schemaUrl") == 1);
    CHECK(count_in_dir(dir, "\"name\":\"spanguard.own\"") == 1);
    spanguard_tracer_free(t);
}

/* Everything wrong with options is refused before a span is begun. */
static void test_bad_options(void) {
    char dir[600];
    spanguard_tracer *t = make_tracer("bad", SPANGUARD_SAMPLER_PARENTBASED_ALWAYS_ON, 1.0, dir, sizeof dir);
    spanguard_span parent, untouched = 4242;
    CHECK_RC(spanguard_span_begin(t, S("p"), SPANGUARD_SPAN_NONE, 0, &parent), SPANGUARD_RESULT_OK);
    spanguard_counters before = stats_of(t);
    spanguard_span_options o;
    CHECK_RC(spanguard_span_options_init(NULL), SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_span_options_init_sized(NULL, sizeof o), SPANGUARD_RESULT_NULL_ARGUMENT);
    /* A program built before scope_schema_url: options_init writes the
     * first version's fields, nothing past them, and says so. */
    const size_t first = offsetof(spanguard_span_options, scope_schema_url);
    memset(&o, 0xab, sizeof o);
    CHECK_RC(spanguard_span_options_init(&o), SPANGUARD_RESULT_OK);
    CHECK(o.struct_size == first && o.attribute_count == 0 && o.attributes == NULL);
    for (size_t i = first; i < sizeof o; i++) CHECK(((const unsigned char *)&o)[i] == 0xab);
    CHECK_RC(spanguard_span_options_init_sized(&o, first - 1), SPANGUARD_RESULT_INVALID_ARGUMENT);
    CHECK_RC(spanguard_span_options_init_sized(&o, sizeof o + 64), SPANGUARD_RESULT_OK);
    CHECK(o.struct_size == sizeof o && o.scope_schema_url == NULL);
    CHECK_RC(spanguard_span_options_init(&o), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_begin_ex(NULL, &o, &untouched), SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_span_begin_ex(t, NULL, &untouched), SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_span_begin_ex(t, &o, NULL), SPANGUARD_RESULT_NULL_ARGUMENT);
    o.struct_size = 4;
    CHECK_RC(spanguard_span_begin_ex(t, &o, &untouched), SPANGUARD_RESULT_INVALID_ARGUMENT);
    o.struct_size = sizeof o;
    o.kind = 6;
    CHECK_RC(spanguard_span_begin_ex(t, &o, &untouched), SPANGUARD_RESULT_INVALID_ARGUMENT);
    o.kind = 0;
    o.name_len = 3; /* NULL name with a length */
    CHECK_RC(spanguard_span_begin_ex(t, &o, &untouched), SPANGUARD_RESULT_NULL_ARGUMENT);
    o.name_len = 0;
    /* Two parents at once. */
    o.parent = parent;
    o.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    o.traceparent_len = strlen(o.traceparent);
    CHECK_RC(spanguard_span_begin_ex(t, &o, &untouched), SPANGUARD_RESULT_INVALID_ARGUMENT);
    o.parent = SPANGUARD_SPAN_NONE;
    o.trace_id = TRACE;
    o.span_id = ROOT_ID;
    CHECK_RC(spanguard_span_begin_ex(t, &o, &untouched), SPANGUARD_RESULT_INVALID_ARGUMENT);
    o.traceparent = NULL;
    o.traceparent_len = 0;
    /* Explicit ids: a span id is required and no id may be all zero. */
    o.span_id = NULL;
    CHECK_RC(spanguard_span_begin_ex(t, &o, &untouched), SPANGUARD_RESULT_NULL_ARGUMENT);
    static const uint8_t zero[16] = {0};
    o.span_id = zero;
    CHECK_RC(spanguard_span_begin_ex(t, &o, &untouched), SPANGUARD_RESULT_INVALID_ARGUMENT);
    o.trace_id = zero;
    o.span_id = ROOT_ID;
    CHECK_RC(spanguard_span_begin_ex(t, &o, &untouched), SPANGUARD_RESULT_INVALID_ARGUMENT);
    o.trace_id = NULL;
    o.span_id = NULL;
    /* A bad traceparent, an uppercase one among them (the spec says such a
     * header is invalid). */
    const char *bad_tps[] = {"00-nothex-01", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                             "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
                             "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"};
    for (size_t i = 0; i < sizeof bad_tps / sizeof *bad_tps; i++) {
        o.traceparent = bad_tps[i];
        o.traceparent_len = strlen(bad_tps[i]);
        CHECK_RC(spanguard_span_begin_ex(t, &o, &untouched), SPANGUARD_RESULT_INVALID_TRACEPARENT);
    }
    CHECK(untouched == 4242);
    CHECK(stats_of(t).spans_begun == before.spans_begun);
    CHECK_RC(spanguard_span_end(parent), SPANGUARD_RESULT_OK);
    spanguard_tracer_free(t);
}

/* The sampler's rules: unsampled spans propagate flag 00, record nothing,
 * are never exported, and are counted as such. */
static void test_sampling_rules(void) {
    char dir[600];
    spanguard_tracer *t = make_tracer("sampling", SPANGUARD_SAMPLER_PARENTBASED_ALWAYS_ON, 1.0, dir, sizeof dir);
    char tp[SPANGUARD_TRACEPARENT_SIZE];
    /* A remote parent that did not sample: the child is not sampled. */
    spanguard_span unsampled, grandchild, sampled, root;
    CHECK_RC(spanguard_span_begin_remote(t, S("from.unsampled"),
                                         S("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"), 0,
                                         &unsampled),
             SPANGUARD_RESULT_NON_RECORDING);
    CHECK(unsampled != SPANGUARD_SPAN_NONE);
    CHECK_RC(spanguard_span_traceparent(unsampled, tp, sizeof tp), SPANGUARD_RESULT_OK);
    CHECK(strncmp(tp, "00-0af7651916cd43dd8448eb211c80319c-", 36) == 0);
    CHECK(strcmp(tp + 52, "-00") == 0);
    CHECK(strncmp(tp + 36, "b7ad6b7169203331", 16) != 0); /* its own span id */
    CHECK_RC(spanguard_span_set_int(unsampled, S("k"), 1), SPANGUARD_RESULT_NON_RECORDING);
    CHECK_RC(spanguard_span_set_status(unsampled, SPANGUARD_STATUS_ERROR, S("x")), SPANGUARD_RESULT_NON_RECORDING);
    CHECK_RC(spanguard_span_add_event(unsampled, S("e"), 0, NULL, 0), SPANGUARD_RESULT_NON_RECORDING);
    /* Its local child follows it. */
    CHECK_RC(spanguard_span_begin(t, S("grandchild"), unsampled, 0, &grandchild), SPANGUARD_RESULT_NON_RECORDING);
    CHECK_RC(spanguard_span_traceparent(grandchild, tp, sizeof tp), SPANGUARD_RESULT_OK);
    CHECK(strncmp(tp, "00-0af7651916cd43dd8448eb211c80319c-", 36) == 0 && strcmp(tp + 52, "-00") == 0);
    /* A sampled remote parent: sampled, and the random flag it had is kept. */
    CHECK_RC(spanguard_span_begin_remote(t, S("from.sampled"),
                                         S("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03"), 0, &sampled),
             SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_traceparent(sampled, tp, sizeof tp), SPANGUARD_RESULT_OK);
    CHECK(strcmp(tp + 52, "-03") == 0);
    /* Reserved flag bits that came in are not passed on. */
    spanguard_span reserved;
    CHECK_RC(spanguard_span_begin_remote(t, S("from.ff"),
                                         S("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-ff"), 0, &reserved),
             SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_traceparent(reserved, tp, sizeof tp), SPANGUARD_RESULT_OK);
    CHECK(strcmp(tp + 52, "-03") == 0);
    /* A root span of ours: sampled, with the random flag. */
    CHECK_RC(spanguard_span_begin(t, S("root"), SPANGUARD_SPAN_NONE, 0, &root), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_traceparent(root, tp, sizeof tp), SPANGUARD_RESULT_OK);
    CHECK(strcmp(tp + 52, "-03") == 0);
    CHECK_RC(spanguard_span_end(grandchild), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(unsampled), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(sampled), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(reserved), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(root), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    spanguard_counters c = stats_of(t);
    CHECK(c.spans_unsampled == 2);
    CHECK(c.spans_exported == 3);
    CHECK(c.spans_ended == 5 && c.spans_open == 0);
    CHECK(count_in_dir(dir, "\"name\":\"from.sampled\"") == 1);
    CHECK(count_in_dir(dir, "\"name\":\"from.ff\"") == 1);
    CHECK(count_in_dir(dir, "\"name\":\"root\"") == 1);
    CHECK(count_in_dir(dir, "\"name\":\"from.unsampled\"") == 0);
    CHECK(count_in_dir(dir, "\"name\":\"grandchild\"") == 0);
    CHECK(count_in_dir(dir, "\"spanId\"") == 3);
    spanguard_tracer_free(t);

    /* Not parent-based: always_off drops every span whatever its parent,
     * always_on keeps every span whatever its parent. */
    t = make_tracer("always_off", SPANGUARD_SAMPLER_ALWAYS_OFF, 1.0, dir, sizeof dir);
    spanguard_span s1, s2;
    CHECK_RC(spanguard_span_begin(t, S("off.root"), SPANGUARD_SPAN_NONE, 0, &s1), SPANGUARD_RESULT_NON_RECORDING);
    CHECK_RC(spanguard_span_traceparent(s1, tp, sizeof tp), SPANGUARD_RESULT_OK);
    CHECK(strcmp(tp + 52, "-02") == 0); /* random, not sampled */
    CHECK_RC(spanguard_span_begin_remote(t, S("off.child"), S("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                                         0, &s2),
             SPANGUARD_RESULT_NON_RECORDING);
    CHECK_RC(spanguard_span_end(s1), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(s2), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_shutdown(t, 10000), SPANGUARD_RESULT_OK);
    CHECK(stats_of(t).spans_unsampled == 2);
    CHECK(count_in_dir(dir, "\"spanId\"") <= 0);
    spanguard_tracer_free(t);

    t = make_tracer("always_on", SPANGUARD_SAMPLER_ALWAYS_ON, 1.0, dir, sizeof dir);
    CHECK_RC(spanguard_span_begin_remote(t, S("on.child"), S("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"),
                                         0, &s1),
             SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_traceparent(s1, tp, sizeof tp), SPANGUARD_RESULT_OK);
    CHECK(strcmp(tp + 52, "-01") == 0);
    CHECK_RC(spanguard_span_end(s1), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_shutdown(t, 10000), SPANGUARD_RESULT_OK);
    CHECK(count_in_dir(dir, "\"name\":\"on.child\"") == 1);
    spanguard_tracer_free(t);

    /* parentbased_always_off: roots are dropped, sampled parents followed. */
    t = make_tracer("pb_off", SPANGUARD_SAMPLER_PARENTBASED_ALWAYS_OFF, 1.0, dir, sizeof dir);
    CHECK_RC(spanguard_span_begin(t, S("pb.root"), SPANGUARD_SPAN_NONE, 0, &s1), SPANGUARD_RESULT_NON_RECORDING);
    CHECK_RC(spanguard_span_begin_remote(t, S("pb.child"), S("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                                         0, &s2),
             SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(s1), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(s2), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_shutdown(t, 10000), SPANGUARD_RESULT_OK);
    CHECK(count_in_dir(dir, "\"name\":\"pb.child\"") == 1 && count_in_dir(dir, "\"name\":\"pb.root\"") == 0);
    spanguard_tracer_free(t);

    /* A bad ratio or sampler is a configuration error. */
    spanguard_config cfg;
    CHECK_RC(spanguard_config_init(&cfg, sizeof cfg), SPANGUARD_RESULT_OK);
    CHECK(cfg.sampler == SPANGUARD_SAMPLER_PARENTBASED_ALWAYS_ON && cfg.sampler_ratio == 1.0);
    cfg.install_signal_handlers = 0;
    spanguard_tracer *none = NULL;
    cfg.sampler = SPANGUARD_SAMPLER_TRACEIDRATIO;
    cfg.sampler_ratio = 1.5;
    CHECK_RC(spanguard_tracer_new(&cfg, &none), SPANGUARD_RESULT_INVALID_CONFIG);
    cfg.sampler = 99;
    cfg.sampler_ratio = 0.5;
    CHECK_RC(spanguard_tracer_new(&cfg, &none), SPANGUARD_RESULT_INVALID_CONFIG);
    CHECK(none == NULL);
}

/* traceidratio keeps about its share of traces, and every span of a kept
 * trace (children follow their parent). */
static void test_ratio(void) {
    char dir[600];
    spanguard_tracer *t = make_tracer("ratio", SPANGUARD_SAMPLER_PARENTBASED_TRACEIDRATIO, 0.25, dir, sizeof dir);
    enum { N = 4000 };
    int kept = 0;
    for (int i = 0; i < N; i++) {
        spanguard_span root, child;
        spanguard_result rc = spanguard_span_begin(t, S("ratio.root"), SPANGUARD_SPAN_NONE, 0, &root);
        CHECK(rc == SPANGUARD_RESULT_OK || rc == SPANGUARD_RESULT_NON_RECORDING);
        kept += rc == SPANGUARD_RESULT_OK;
        CHECK_RC(spanguard_span_begin(t, S("ratio.child"), root, 0, &child), rc);
        CHECK_RC(spanguard_span_end(child), SPANGUARD_RESULT_OK);
        CHECK_RC(spanguard_span_end(root), SPANGUARD_RESULT_OK);
    }
    CHECK_RC(spanguard_shutdown(t, 10000), SPANGUARD_RESULT_OK);
    /* Within 5 standard deviations of N/4 (sigma = sqrt(N * 0.25 * 0.75)). */
    CHECK(kept > 1000 - 137 && kept < 1000 + 137);
    CHECK(count_in_dir(dir, "\"name\":\"ratio.root\"") == kept);
    CHECK(count_in_dir(dir, "\"name\":\"ratio.child\"") == kept);
    CHECK(stats_of(t).spans_unsampled == (uint64_t)(2 * (N - kept)));
    spanguard_tracer_free(t);
}

/* tracestate comes in with a remote parent (checked, normalised, cut by
 * whole members), stays on the span and its children, goes out again, and
 * is exported with the span. */
static void test_tracestate(void) {
    char dir[600];
    spanguard_tracer *t = make_tracer("tracestate", SPANGUARD_SAMPLER_PARENTBASED_ALWAYS_ON, 1.0, dir, sizeof dir);
    spanguard_span_options o;
    CHECK_RC(spanguard_span_options_init(&o), SPANGUARD_RESULT_OK);
    o.name = "server";
    o.name_len = 6;
    o.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    o.traceparent_len = strlen(o.traceparent);
    o.tracestate = "rojo=00f067aa0ba902b7 \t, congo=t61rcWkgMzE,,rojo=dup";
    o.tracestate_len = strlen(o.tracestate);
    spanguard_span server, child;
    CHECK_RC(spanguard_span_begin_ex(t, &o, &server), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_begin(t, S("child"), server, 0, &child), SPANGUARD_RESULT_OK);
    char ts[SPANGUARD_MAX_TRACESTATE_BYTES + 1];
    size_t n = 0;
    CHECK_RC(spanguard_span_tracestate(child, ts, sizeof ts, &n), SPANGUARD_RESULT_OK);
    CHECK(strcmp(ts, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE") == 0);
    CHECK(n == strlen("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
    char small[8];
    CHECK_RC(spanguard_span_tracestate(child, small, sizeof small, &n), SPANGUARD_RESULT_BUFFER_TOO_SMALL);
    CHECK(n == strlen("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
    CHECK_RC(spanguard_span_tracestate(child, NULL, 0, &n), SPANGUARD_RESULT_NULL_ARGUMENT);

    /* An invalid tracestate is discarded whole; the span still begins. */
    spanguard_span bad;
    o.tracestate = "foo=1,BAR=2";
    o.tracestate_len = strlen(o.tracestate);
    CHECK_RC(spanguard_span_begin_ex(t, &o, &bad), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_tracestate(bad, ts, sizeof ts, &n), SPANGUARD_RESULT_OK);
    CHECK(n == 0 && ts[0] == 0);

    /* Longer than the span keeps: whole members go, the long one first. */
    char big[2048];
    size_t at = 0;
    at += (size_t)snprintf(big + at, sizeof big - at, "long=");
    memset(big + at, 'x', 200);
    at += 200;
    for (int i = 0; i < 30; i++) at += (size_t)snprintf(big + at, sizeof big - at, ",k%02d=vvvvvvvvvvvvvvvvvvvv", i);
    o.tracestate = big;
    o.tracestate_len = at;
    spanguard_span cut;
    CHECK_RC(spanguard_span_begin_ex(t, &o, &cut), SPANGUARD_RESULT_TRUNCATED);
    CHECK_RC(spanguard_span_tracestate(cut, ts, sizeof ts, &n), SPANGUARD_RESULT_OK);
    CHECK(n <= SPANGUARD_MAX_TRACESTATE_BYTES && n > 400);
    CHECK(strncmp(ts, "k00=", 4) == 0 && strstr(ts, "long=") == NULL);
    CHECK(ts[n - 1] == 'v'); /* ends on a whole member */

    CHECK_RC(spanguard_span_end(cut), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(bad), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(child), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(server), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_shutdown(t, 10000), SPANGUARD_RESULT_OK);
    CHECK(count_in_dir(dir, "\"traceState\":\"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE\"") == 2);
    CHECK(count_in_dir(dir, "\"traceState\":\"k00=") == 1);
    CHECK(count_in_dir(dir, "\"traceState\"") == 3);
    spanguard_tracer_free(t);
}

/* A disabled tracer records nothing and still passes the incoming context
 * on unchanged; with nothing to propagate, the caller's buffer gets an
 * empty string, never garbage. */
static void test_disabled_passes_context_on(void) {
    setenv("OTEL_SDK_DISABLED", "true", 1);
    spanguard_tracer *t = NULL;
    CHECK_RC(spanguard_tracer_new_from_env(NULL, &t), SPANGUARD_RESULT_OK);
    unsetenv("OTEL_SDK_DISABLED");
    const char *in_tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    spanguard_span_options o;
    CHECK_RC(spanguard_span_options_init(&o), SPANGUARD_RESULT_OK);
    o.traceparent = in_tp;
    o.traceparent_len = strlen(in_tp);
    o.tracestate = "congo=t61rcWkgMzE";
    o.tracestate_len = strlen(o.tracestate);
    spanguard_span server = SPANGUARD_SPAN_NONE, child = SPANGUARD_SPAN_NONE, root = 99;
    CHECK_RC(spanguard_span_begin_ex(t, &o, &server), SPANGUARD_RESULT_NON_RECORDING);
    CHECK(server != SPANGUARD_SPAN_NONE);
    CHECK_RC(spanguard_span_begin(t, S("child"), server, 0, &child), SPANGUARD_RESULT_NON_RECORDING);
    char tp[SPANGUARD_TRACEPARENT_SIZE], ts[64];
    size_t n;
    CHECK_RC(spanguard_span_traceparent(child, tp, sizeof tp), SPANGUARD_RESULT_OK);
    CHECK(strcmp(tp, in_tp) == 0);
    CHECK_RC(spanguard_span_tracestate(child, ts, sizeof ts, &n), SPANGUARD_RESULT_OK);
    CHECK(strcmp(ts, "congo=t61rcWkgMzE") == 0);
    CHECK_RC(spanguard_span_set_int(child, S("k"), 1), SPANGUARD_RESULT_NON_RECORDING);
    CHECK_RC(spanguard_span_end(child), SPANGUARD_RESULT_NON_RECORDING);
    /* The plain remote call too. */
    spanguard_span remote;
    CHECK_RC(spanguard_span_begin_remote(t, S("r"), S(in_tp), 0, &remote), SPANGUARD_RESULT_NON_RECORDING);
    CHECK_RC(spanguard_span_traceparent(remote, tp, sizeof tp), SPANGUARD_RESULT_OK);
    CHECK(strcmp(tp, in_tp) == 0);
    /* A root span: nothing to propagate. */
    CHECK_RC(spanguard_span_begin(t, S("root"), SPANGUARD_SPAN_NONE, 0, &root), SPANGUARD_RESULT_NON_RECORDING);
    CHECK(root == SPANGUARD_SPAN_NONE);
    memset(tp, 'x', sizeof tp);
    CHECK_RC(spanguard_span_traceparent(root, tp, sizeof tp), SPANGUARD_RESULT_NON_RECORDING);
    CHECK(tp[0] == 0);
    memset(ts, 'x', sizeof ts);
    CHECK_RC(spanguard_span_tracestate(root, ts, sizeof ts, &n), SPANGUARD_RESULT_NON_RECORDING);
    CHECK(ts[0] == 0 && n == 0);
    spanguard_tracer_free(t);
}

/* A caller built against an older, smaller spanguard_config: init writes
 * only what it has. */
static void test_config_init_respects_the_callers_size(void) {
    unsigned char buf[sizeof(spanguard_config) + 16];
    memset(buf, 0xAB, sizeof buf);
    size_t old = offsetof(spanguard_config, sampler);
    CHECK_RC(spanguard_config_init((spanguard_config *)(void *)buf, old), SPANGUARD_RESULT_OK);
    uint32_t size;
    memcpy(&size, buf, sizeof size);
    CHECK(size == old);
    int untouched = 1;
    for (size_t i = old; i < sizeof buf; i++) untouched &= buf[i] == 0xAB;
    CHECK(untouched);
    CHECK_RC(spanguard_config_init((spanguard_config *)(void *)buf, 8), SPANGUARD_RESULT_INVALID_ARGUMENT);
    CHECK_RC(spanguard_config_init(NULL, sizeof(spanguard_config)), SPANGUARD_RESULT_NULL_ARGUMENT);
}

/* An OpenTelemetry tracer's scope attributes (what bridges pass with
 * spanguard_tracer_set_scope_attributes): on the InstrumentationScope of
 * that scope's spans only, replaced by a later call, gone after an empty
 * one; bad input gets its error code and sets nothing. */
static void test_scope_attributes(void) {
    char dir[600];
    spanguard_tracer *t = make_tracer("scope-attributes", SPANGUARD_SAMPLER_PARENTBASED_ALWAYS_ON, 1.0, dir, sizeof dir);
    spanguard_attribute a[2];
    memset(a, 0, sizeof a);
    a[0].key = "library.kind";
    a[0].key_len = strlen(a[0].key);
    a[0].type_ = SPANGUARD_VALUE_STRING;
    a[0].string_value = "llm";
    a[0].string_len = 3;
    a[1].key = "tier";
    a[1].key_len = 4;
    a[1].type_ = SPANGUARD_VALUE_INT;
    a[1].int_value = 2;
    const char *name = "openinference.instrumentation.openai", *version = "0.1.9";
    const char *url = "https://opentelemetry.io/schemas/1.28.0";
    CHECK_RC(spanguard_tracer_set_scope_attributes(NULL, S(name), S(version), S(url), a, 2),
             SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_tracer_set_scope_attributes(t, S(name), S(version), S(url), NULL, 2),
             SPANGUARD_RESULT_NULL_ARGUMENT);
    CHECK_RC(spanguard_tracer_set_scope_attributes(t, NULL, 4, S(version), S(url), a, 2),
             SPANGUARD_RESULT_NULL_ARGUMENT);
    /* Any number: more than one span call takes (these have no keys:
     * skipped, and the set made empty is no set at all). */
    static spanguard_attribute many[SPANGUARD_MAX_ATTRIBUTES + 1];
    CHECK_RC(spanguard_tracer_set_scope_attributes(t, S(name), S(version), S(url), many, SPANGUARD_MAX_ATTRIBUTES + 1),
             SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_tracer_set_scope_attributes(t, S(name), S(version), S(url), a, 2), SPANGUARD_RESULT_OK);
    /* A scope differing only in its version is another scope. */
    CHECK_RC(spanguard_tracer_set_scope_attributes(t, S(name), S("0.2.0"), S(url), a + 1, 1), SPANGUARD_RESULT_OK);

    spanguard_span_options o;
    CHECK_RC(spanguard_span_options_init_sized(&o, sizeof o), SPANGUARD_RESULT_OK);
    o.name = "chat";
    o.name_len = 4;
    o.kind = SPANGUARD_KIND_CLIENT;
    o.scope_name = name;
    o.scope_name_len = strlen(name);
    o.scope_version = version;
    o.scope_version_len = strlen(version);
    o.scope_schema_url = url;
    o.scope_schema_url_len = strlen(url);
    spanguard_span s, plain;
    CHECK_RC(spanguard_span_begin_ex(t, &o, &s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_begin(t, S("spanguard.own"), SPANGUARD_SPAN_NONE, 0, &plain), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(plain), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    CHECK(count_in_dir(dir, "{\"scope\":{\"name\":\"openinference.instrumentation.openai\",\"version\":\"0.1.9\","
                            "\"attributes\":[{\"key\":\"library.kind\",\"value\":{\"stringValue\":\"llm\"}},"
                            "{\"key\":\"tier\",\"value\":{\"intValue\":\"2\"}}]},\"spans\":[") == 1);
    /* spanguard's own scope has none. */
    CHECK(count_in_dir(dir, "\"attributes\":[{\"key\":\"library.kind\"") == 1);

    /* Replaced, then taken away. */
    CHECK_RC(spanguard_tracer_set_scope_attributes(t, S(name), S(version), S(url), a + 1, 1), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_begin_ex(t, &o, &s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    CHECK(count_in_dir(dir, "\"version\":\"0.1.9\",\"attributes\":[{\"key\":\"tier\",\"value\":{\"intValue\":\"2\"}}]},"
                            "\"spans\":[") == 1);
    CHECK_RC(spanguard_tracer_set_scope_attributes(t, S(name), S(version), S(url), NULL, 0), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_begin_ex(t, &o, &s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    CHECK(count_in_dir(dir, "{\"scope\":{\"name\":\"openinference.instrumentation.openai\",\"version\":\"0.1.9\"},"
                            "\"spans\":[") == 1);

    /* All empty: spanguard's own scope, which a span naming none is sent
     * under ("spanguard" and its version). Kept under the empty name, they
     * were never sent. */
    CHECK_RC(spanguard_tracer_set_scope_attributes(t, NULL, 0, NULL, 0, NULL, 0, a, 1), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_begin(t, "plain", 5, SPANGUARD_SPAN_NONE, SPANGUARD_KIND_INTERNAL, &s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    char own[200];
    snprintf(own, sizeof own,
             "{\"scope\":{\"name\":\"spanguard\",\"version\":\"%d.%d.%d\",\"attributes\":[{\"key\":\"library.kind\","
             "\"value\":{\"stringValue\":\"llm\"}}]},\"spans\":[",
             SPANGUARD_VERSION_MAJOR, SPANGUARD_VERSION_MINOR, SPANGUARD_VERSION_PATCH);
    CHECK(count_in_dir(dir, own) == 1);
    CHECK_RC(spanguard_tracer_set_scope_attributes(t, NULL, 0, NULL, 0, NULL, 0, NULL, 0), SPANGUARD_RESULT_OK);

    /* At most SPANGUARD_MAX_SCOPES_WITH_ATTRIBUTES scopes have attributes; a new one past that is refused,
     * one already there may still change. */
    char scope[32];
    int refused = 0;
    for (int i = 0; i < 300; i++) {
        snprintf(scope, sizeof scope, "scope-%d", i);
        spanguard_result rc = spanguard_tracer_set_scope_attributes(t, S(scope), NULL, 0, NULL, 0, a, 1);
        refused += rc == SPANGUARD_RESULT_LIMIT_REACHED;
        CHECK(rc == SPANGUARD_RESULT_OK || rc == SPANGUARD_RESULT_LIMIT_REACHED);
    }
    CHECK(refused == 300 - (SPANGUARD_MAX_SCOPES_WITH_ATTRIBUTES - 1));
    CHECK_RC(spanguard_tracer_set_scope_attributes(t, S("scope-0"), NULL, 0, NULL, 0, a + 1, 1), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_shutdown(t, 10000), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_tracer_set_scope_attributes(t, S("late"), NULL, 0, NULL, 0, a, 1), SPANGUARD_RESULT_SHUT_DOWN);
    spanguard_tracer_free(t);
}

int main(int argc, char **argv) {
    snprintf(dir_base, sizeof dir_base, "%s", argc > 1 ? argv[1] : "build/c-context-spans");
    test_explicit_ids_and_scope();
    test_scope_attributes();
    test_bad_options();
    test_sampling_rules();
    test_ratio();
    test_tracestate();
    test_disabled_passes_context_on();
    test_config_init_respects_the_callers_size();
    return check_summary();
}
