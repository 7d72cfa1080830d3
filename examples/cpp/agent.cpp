// A sample AI agent traced through the C++ wrapper (spans end by scope).
#include <cstdio>
#include <stdexcept>

#include "spanguard.hpp"

using namespace std::chrono_literals;

static void tool_call(const spanguard::Span &step, const char *tool, bool fail) {
    spanguard::Span span = step.child("tool.call");
    (void)span.set("tool.name", tool);
    (void)span.set("tool.arguments", "{\"q\":\"flights to Lisbon\"}");
    if (fail) {
        (void)span.event("exception");
        (void)span.error("upstream timeout after 30s");
        return;
    }
    spanguard::Span http = span.child("http.get", SPANGUARD_KIND_CLIENT);
    (void)http.set("http.response.status_code", 200);
}

int main() {
    spanguard::Config cfg;
    cfg.service_name("cpp-demo-agent");
    spanguard::Tracer tracer = spanguard::Tracer::from_env(cfg);
    {
        spanguard::Span session = tracer.start("agent.session", SPANGUARD_KIND_SERVER);
        for (int step = 0; step < 3; ++step) {
            spanguard::Span s = session.child("agent.step");
            (void)s.set("agent.step", step);
            spanguard::Span llm = s.child("llm.chat", SPANGUARD_KIND_CLIENT);
            (void)llm.set("gen_ai.request.model", "gpt-4o-mini");
            (void)llm.set("gen_ai.usage.input_tokens", 400 + step);
            (void)llm.set("gen_ai.usage.output_tokens", 60 + step);
            (void)llm.end();
            tool_call(s, "search", step == 1);
        }
    }
    tracer.shutdown(5s);
    spanguard_counters c = tracer.stats();
    std::printf("cpp-demo-agent: exported %llu spans\n", static_cast<unsigned long long>(c.spans_exported));
    return 0;
}
