// The C++ wrapper against the real library.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <utility>

#include "spanguard.hpp"

static int checks = 0, failures = 0;
#define CHECK(cond)                                                                   \
    do {                                                                              \
        ++checks;                                                                     \
        if (!(cond)) {                                                                \
            ++failures;                                                               \
            std::cerr << __FILE__ << ":" << __LINE__ << ": check failed: " #cond "\n"; \
        }                                                                             \
    } while (0)

using namespace std::chrono_literals;

// How often `needle` occurs in the sink's files: export is judged by what
// arrived, not by the library's counters.
static long count_in_sink(const std::string &dir, const std::string &needle) {
    long n = 0;
    if (!std::filesystem::exists(dir)) return 0;
    for (const auto &entry : std::filesystem::directory_iterator(dir)) {
        if (entry.path().extension() != ".jsonl") continue;
        std::ifstream in(entry.path());
        std::stringstream text;
        text << in.rdbuf();
        const std::string s = text.str();
        for (size_t at = s.find(needle); at != std::string::npos; at = s.find(needle, at + needle.size())) ++n;
    }
    return n;
}

// A loopback port nothing listens on: connections to it are refused.
static int closed_port() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
    getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len);
    close(fd);
    return ntohs(addr.sin_port);
}

int main(int argc, char **argv) {
    const std::string dir = argc > 1 ? argv[1] : "build/cpp-test-spans";
    spanguard::Config cfg;
    cfg.service_name("cpp-test").sink_dir(dir + "/sink").spool_dir(dir + "/spool").install_signal_handlers(false);
    spanguard::Tracer tracer(cfg);

    std::string root_tp;
    {
        spanguard::Span session = tracer.start("agent.session", SPANGUARD_KIND_SERVER);
        root_tp = session.traceparent();
        spanguard::Span llm = session.child("llm.chat", SPANGUARD_KIND_CLIENT);
        CHECK(llm.set("gen_ai.request.model", "gpt-4o").ok());
        CHECK(llm.set("gen_ai.usage.input_tokens", int64_t{812}).ok());
        CHECK(llm.set("temperature", 0.2).ok());
        CHECK(llm.set("stream", true).ok());
        CHECK(llm.set("bad", std::string_view("a\xff", 2)).code() == SPANGUARD_RESULT_UTF8_REPLACED);
        spanguard::Span moved = std::move(llm);
        CHECK(!llm.recording());
        CHECK(moved.recording());
        CHECK(moved.error("rate limited").ok());
        {
            spanguard::Span grandchild = moved.child("tool.call");  // the tracer moved with the span
            CHECK(grandchild.recording());
        }
        CHECK(moved.end().ok());
        CHECK(moved.end().code() == SPANGUARD_RESULT_NON_RECORDING);  // ends once
    }  // session ends here
    CHECK(tracer.flush_status(10s) == spanguard::Flushed::delivered);
    const std::string sink = dir + "/sink";
    CHECK(count_in_sink(sink, "\"name\":\"agent.session\"") == 1);
    CHECK(count_in_sink(sink, "\"name\":\"llm.chat\"") == 1);
    CHECK(count_in_sink(sink, "\"name\":\"tool.call\"") == 1);
    // The sink path is the file those spans are in.
    const std::string sink_path = tracer.sink_path();
    CHECK(sink_path.rfind(dir + "/sink/cpp-test-", 0) == 0);
    std::ifstream sink_file(sink_path);
    std::string sink_text((std::istreambuf_iterator<char>(sink_file)), std::istreambuf_iterator<char>());
    CHECK(sink_text.find("\"agent.session\"") != std::string::npos);

    // An LLM-sized span through the wrapper: a 100,000-byte prompt, a
    // 20,000-byte completion, token counts after them, 100 more attributes,
    // arrays and bytes; every key and value arrives whole at the sink.
    std::string prompt(100000, ' '), completion(20000, ' ');
    for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<char>('a' + i % 26);
    for (size_t i = 0; i < completion.size(); ++i) completion[i] = static_cast<char>('A' + i % 26);
    {
        spanguard::Span llm = tracer.start("llm.large", SPANGUARD_KIND_CLIENT);
        CHECK(llm.set("gen_ai.prompt", prompt).code() == SPANGUARD_RESULT_OK);
        CHECK(llm.set("gen_ai.completion", completion).code() == SPANGUARD_RESULT_OK);
        CHECK(llm.set("gen_ai.usage.input_tokens", int64_t{25000}).ok());
        CHECK(llm.set("gen_ai.usage.output_tokens", int64_t{5000}).ok());
        for (int i = 0; i < 100; ++i)
            CHECK(llm.set("extra." + std::to_string(i), "value-" + std::to_string(i)).ok());
        CHECK(llm.set("gen_ai.response.finish_reasons", std::vector<std::string_view>{"stop", "length"}).ok());
        CHECK(llm.set("ints", std::vector<int64_t>{1, -2}).ok());
        CHECK(llm.set("doubles", std::vector<double>{0.5}).ok());
        CHECK(llm.set("bools", std::vector<bool>{true, false}).ok());
        CHECK(llm.set("raw", std::vector<uint8_t>{0x00, 0xff, 0x10, 0x80}).ok());
    }
    {
        spanguard::Span renamed = tracer.start("cpp.first.name");
        CHECK(renamed.update_name("cpp.renamed").ok());
    }
    CHECK(tracer.flush(10s));
    {
        // Everything the sink wrote, every file.
        std::ostringstream text;
        for (const auto &entry : std::filesystem::directory_iterator(dir + "/sink"))
            if (entry.path().extension() == ".jsonl") text << std::ifstream(entry.path()).rdbuf();
        const std::string all = text.str();
        auto count = [&](const std::string &needle) {
            size_t n = 0;
            for (size_t at = all.find(needle); at != std::string::npos; at = all.find(needle, at + needle.size())) ++n;
            return n;
        };
        CHECK(count("{\"value\":") == 0);
        CHECK(count("{\"key\":\"gen_ai.prompt\",\"value\":{\"stringValue\":\"" + prompt + "\"}}") == 1);
        CHECK(count("{\"key\":\"gen_ai.completion\",\"value\":{\"stringValue\":\"" + completion + "\"}}") == 1);
        CHECK(count("{\"key\":\"gen_ai.usage.input_tokens\",\"value\":{\"intValue\":\"25000\"}}") == 1);
        CHECK(count("{\"key\":\"gen_ai.usage.output_tokens\",\"value\":{\"intValue\":\"5000\"}}") == 1);
        for (int i = 0; i < 100; ++i)
            CHECK(count("{\"key\":\"extra." + std::to_string(i) + "\",\"value\":{\"stringValue\":\"value-" +
                        std::to_string(i) + "\"}}") == 1);
        CHECK(count("\"gen_ai.response.finish_reasons\",\"value\":{\"arrayValue\":{\"values\":[{\"stringValue\":"
                    "\"stop\"},{\"stringValue\":\"length\"}]}}") == 1);
        CHECK(count("\"bools\",\"value\":{\"arrayValue\":{\"values\":[{\"boolValue\":true},{\"boolValue\":false}]}}") == 1);
        CHECK(count("{\"key\":\"raw\",\"value\":{\"bytesValue\":\"AP8QgA==\"}}") == 1);
        CHECK(count("\"name\":\"cpp.renamed\"") == 1 && count("cpp.first.name") == 0);
    }

    spanguard::Span remote = tracer.start_remote("tool.remote", root_tp, SPANGUARD_KIND_SERVER, "vendor=a1, other=b2");
    CHECK(remote.traceparent().substr(0, 35) == root_tp.substr(0, 35));
    {
        spanguard::Span inner = remote.child("tool.inner");
        CHECK(inner.tracestate() == "vendor=a1,other=b2");  // inherited, normalised
    }
    (void)remote.end();
    CHECK(spanguard::Span().traceparent().empty());  // nothing to propagate

    {
        // A sampler that keeps nothing: spans still carry their context.
        spanguard::Config off;
        off.sink_dir(dir + "/sink-off").spool_dir(dir + "/spool").install_signal_handlers(false);
        off.sampler(SPANGUARD_SAMPLER_ALWAYS_OFF);
        spanguard::Tracer quiet(off);
        spanguard::Span s = quiet.start("dropped");
        CHECK(s.set("k", int64_t{1}).code() == SPANGUARD_RESULT_NON_RECORDING);
        CHECK(s.traceparent().substr(53) == "02");
        CHECK(s.end().ok());
        CHECK(quiet.shutdown(10s));
        CHECK(quiet.stats().spans_unsampled == 1);
        CHECK(quiet.stats().spans_exported == 0);
    }

    bool threw = false;
    try {
        (void)tracer.start_remote("bad", "00-zz");
    } catch (const spanguard::Error &e) {
        threw = e.code() == SPANGUARD_RESULT_INVALID_TRACEPARENT;
    }
    CHECK(threw);

    threw = false;
    try {
        spanguard::Config bad;
        bad.endpoint("ftp://nope");
        spanguard::Tracer t(bad);
    } catch (const spanguard::Error &e) {
        // The exception says which field and value were wrong.
        threw = e.code() == SPANGUARD_RESULT_INVALID_CONFIG &&
                std::string(e.what()).find("endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)=ftp://nope") !=
                    std::string::npos;
    }
    CHECK(threw);

    spanguard::Span open = tracer.start("still.open");
    CHECK(tracer.shutdown(10s));
    CHECK(count_in_sink(sink, "\"name\":\"still.open\"") == 1);
    CHECK(count_in_sink(sink, "\"spanguard.unended\"") == 1);
    CHECK(open.end().code() == SPANGUARD_RESULT_SHUT_DOWN);

    {
        // A backend that refuses connections: the spans are only spooled,
        // and flush says so (a success, not an exception).
        const std::string url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/v1/traces";
        spanguard::Config down;
        down.service_name("cpp-spool").endpoint(url).spool_dir(dir + "/down-spool").install_signal_handlers(false);
        down.export_timeout(200ms);
        spanguard::Tracer t(down);
        for (int i = 0; i < 3; i++) (void)t.start("kept").end();
        CHECK(t.flush_status(10s) == spanguard::Flushed::spooled);
        bool on_disk = false;
        for (const auto &e : std::filesystem::directory_iterator(dir + "/down-spool"))
            on_disk |= e.path().extension() == ".sgspool";
        CHECK(on_disk);
    }
    std::printf("%d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}
