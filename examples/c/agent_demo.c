/* A sample AI agent run, traced with spanguard: a session span, LLM calls
 * with token counts, tool calls (one fails), nested children, an event, and
 * one span the agent forgets to end (shutdown exports it, marked unended).
 *
 * Configured from the environment: with no OTEL_EXPORTER_OTLP_ENDPOINT,
 * spans land in the local sink directory (SPANGUARD_SINK_DIR). */
#include <stdio.h>
#include <string.h>

#include "spanguard.h"

#define S(str) (str), strlen(str)

static spanguard_tracer *tracer;

static spanguard_span start(spanguard_span parent, const char *name, uint32_t kind) {
    spanguard_span s = SPANGUARD_SPAN_NONE;
    spanguard_result rc = spanguard_span_begin(tracer, S(name), parent, kind, &s);
    if (!spanguard_result_is_ok(rc)) fprintf(stderr, "begin %s: %s\n", name, spanguard_strerror(rc));
    return s;
}

static void llm_call(spanguard_span parent, const char *model, const char *prompt, int in_tokens,
                     int out_tokens) {
    spanguard_span s = start(parent, "llm.chat", SPANGUARD_KIND_CLIENT);
    (void)spanguard_span_set_string(s, S("gen_ai.system"), S("openai"));
    (void)spanguard_span_set_string(s, S("gen_ai.request.model"), S(model));
    (void)spanguard_span_set_string(s, S("gen_ai.prompt"), S(prompt));
    (void)spanguard_span_set_int(s, S("gen_ai.usage.input_tokens"), in_tokens);
    (void)spanguard_span_set_int(s, S("gen_ai.usage.output_tokens"), out_tokens);
    (void)spanguard_span_set_double(s, S("gen_ai.request.temperature"), 0.2);
    (void)spanguard_span_end(s);
}

static void tool_call(spanguard_span parent, const char *tool, const char *args, const char *error) {
    spanguard_span s = start(parent, "tool.call", SPANGUARD_KIND_INTERNAL);
    (void)spanguard_span_set_string(s, S("tool.name"), S(tool));
    (void)spanguard_span_set_string(s, S("tool.arguments"), S(args));
    if (error) {
        spanguard_attribute attrs[1] = {{0}};
        attrs[0].key = "exception.message";
        attrs[0].key_len = strlen(attrs[0].key);
        attrs[0].type_ = SPANGUARD_VALUE_STRING;
        attrs[0].string_value = error;
        attrs[0].string_len = strlen(error);
        (void)spanguard_span_add_event(s, S("exception"), 0, attrs, 1);
        (void)spanguard_span_set_status(s, SPANGUARD_STATUS_ERROR, S(error));
    } else {
        spanguard_span child = start(s, "http.get", SPANGUARD_KIND_CLIENT);
        (void)spanguard_span_set_string(child, S("url.full"), S("https://example.invalid/search"));
        (void)spanguard_span_set_int(child, S("http.response.status_code"), 200);
        (void)spanguard_span_end(child);
        (void)spanguard_span_set_status(s, SPANGUARD_STATUS_OK, NULL, 0);
    }
    (void)spanguard_span_end(s);
}

int main(void) {
    spanguard_config cfg;
    (void)spanguard_config_init(&cfg, sizeof cfg);
    cfg.service_name = "demo-agent";
    spanguard_result rc = spanguard_tracer_new_from_env(&cfg, &tracer);
    if (rc != SPANGUARD_RESULT_OK) {
        fprintf(stderr, "spanguard_tracer_new_from_env: %s\n", spanguard_strerror(rc));
        return 1;
    }
    spanguard_span session = start(SPANGUARD_SPAN_NONE, "agent.session", SPANGUARD_KIND_SERVER);
    (void)spanguard_span_set_string(session, S("session.id"), S("demo-0001"));
    (void)spanguard_span_set_string(session, S("user.goal"), S("find the cheapest flight to Lisbon"));

    for (int step = 0; step < 3; step++) {
        spanguard_span plan = start(session, "agent.step", SPANGUARD_KIND_INTERNAL);
        (void)spanguard_span_set_int(plan, S("agent.step"), step);
        llm_call(plan, "gpt-4o-mini", "Plan the next action", 420 + step * 37, 64 + step * 5);
        tool_call(plan, step == 1 ? "flight_search" : "web_search", "{\"q\":\"LIS flights\"}",
                  step == 1 ? "upstream timeout after 30s" : NULL);
        (void)spanguard_span_end(plan);
    }
    llm_call(session, "gpt-4o", "Summarise the answer for the user", 1800, 240);

    /* Forgotten: never ended. Shutdown exports it with spanguard.unended=true. */
    spanguard_span forgotten = start(session, "background.prefetch", SPANGUARD_KIND_INTERNAL);
    (void)forgotten;

    (void)spanguard_span_end(session);
    rc = spanguard_shutdown(tracer, 5000);
    spanguard_counters stats = {0};
    stats.struct_size = sizeof stats;
    (void)spanguard_stats(tracer, &stats);
    /* Every span lost, whatever lost it: "shutdown ok" alone, beside spans
     * dropped (a full disk under the sink and the spool), read as all well. */
    unsigned long long dropped = stats.dropped_buffer_full + stats.dropped_export_failed +
                                 stats.dropped_rejected + stats.dropped_spool_overflow;
    char lost[64] = "";
    if (dropped > 0) {
        snprintf(lost, sizeof lost, ", %llu span%s dropped", dropped, dropped == 1 ? "" : "s");
    }
    printf("demo-agent: shutdown %s%s; spans begun %llu, exported %llu, to the spool %llu, dropped %llu, "
           "unended at shutdown %llu\n",
           spanguard_strerror(rc), lost, (unsigned long long)stats.spans_begun,
           (unsigned long long)stats.spans_exported, (unsigned long long)stats.spooled_spans, dropped,
           (unsigned long long)stats.spans_unended_at_shutdown);
    spanguard_tracer_free(tracer);
    return rc == SPANGUARD_RESULT_OK ? 0 : 1;
}
