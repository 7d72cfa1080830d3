// spanguard.hpp: a header-only C++17 RAII wrapper over spanguard.h.
//
// Errors: constructors and calls whose failure leaves nothing usable
// (Tracer construction, begin) throw spanguard::Error; recording calls on a
// live span return a [[nodiscard]] Result you may check or drop, because a
// failed attribute never invalidates the span. Notices (truncated, UTF-8
// replaced, ...) count as success.
//
//   spanguard::Tracer tracer(spanguard::Config().service_name("agent"));
//   {
//       spanguard::Span session = tracer.start("agent.session", SPANGUARD_KIND_SERVER);
//       spanguard::Span llm = session.child("llm.chat", SPANGUARD_KIND_CLIENT);
//       (void)llm.set("gen_ai.usage.input_tokens", int64_t{812});
//   }   // spans end in their destructors, innermost first
//   tracer.shutdown(std::chrono::seconds(5));
#ifndef SPANGUARD_HPP
#define SPANGUARD_HPP

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "spanguard.h"

namespace spanguard {

/// A failed spanguard call: the result code and its description.
class Error : public std::runtime_error {
  public:
    Error(spanguard_result code, const std::string &what)
        : std::runtime_error(what + ": " + spanguard_strerror(code)), code_(code) {}
    /// With the library's own sentence, e.g. which variable was wrong.
    Error(spanguard_result code, const std::string &what, const std::string &detail)
        : std::runtime_error(what + ": " + spanguard_strerror(code) + ": " + detail), code_(code) {}
    spanguard_result code() const noexcept { return code_; }

  private:
    spanguard_result code_;
};

/// The outcome of a recording call.
class [[nodiscard]] Result {
  public:
    explicit Result(spanguard_result code) noexcept : code_(code) {}
    bool ok() const noexcept { return spanguard_result_is_ok(code_); }
    explicit operator bool() const noexcept { return ok(); }
    spanguard_result code() const noexcept { return code_; }
    const char *message() const noexcept { return spanguard_strerror(code_); }
    /// Throws when the call failed.
    void value(const char *what = "spanguard") const {
        if (!ok()) throw Error(code_, what);
    }

  private:
    spanguard_result code_;
};

/// Tracer settings; strings are copied when the tracer is made.
class Config {
  public:
    Config() { (void)spanguard_config_init(&cfg_, sizeof cfg_); }
    Config &service_name(std::string v) { return str(service_name_, std::move(v), cfg_.service_name); }
    Config &endpoint(std::string v) { return str(endpoint_, std::move(v), cfg_.endpoint); }
    Config &headers(std::string v) { return str(headers_, std::move(v), cfg_.headers); }
    Config &resource_attributes(std::string v) { return str(resource_, std::move(v), cfg_.resource_attributes); }
    Config &sink_dir(std::string v) { return str(sink_dir_, std::move(v), cfg_.sink_dir); }
    Config &spool_dir(std::string v) { return str(spool_dir_, std::move(v), cfg_.spool_dir); }
    Config &protocol(uint32_t p) { cfg_.protocol = p; return *this; }
    Config &compression(uint32_t c) { cfg_.compression = c; return *this; }
    Config &schedule_delay(std::chrono::milliseconds d) { cfg_.schedule_delay_ms = ms(d); return *this; }
    /// One batch's time, retries included (OTEL_BSP_EXPORT_TIMEOUT).
    Config &export_timeout(std::chrono::milliseconds d) { cfg_.export_timeout_ms = ms(d); return *this; }
    Config &install_signal_handlers(bool on) { cfg_.install_signal_handlers = on; return *this; }
    Config &flight_recorder(bool on) { cfg_.flight_recorder = on; return *this; }
    /// A `SPANGUARD_SAMPLER_*`, with the share of traces the ratio samplers keep.
    Config &sampler(uint32_t kind, double ratio = 1.0) {
        cfg_.sampler = kind;
        cfg_.sampler_ratio = ratio;
        return *this;
    }
    Config &payload_pool_mib(uint32_t mib) { cfg_.payload_pool_mib = mib; return *this; }
    Config &value_length_limit(uint32_t bytes) { cfg_.value_length_limit = bytes; return *this; }
    Config &attribute_count_limit(uint32_t n) { cfg_.attribute_count_limit = n; return *this; }
    Config &event_count_limit(uint32_t n) { cfg_.event_count_limit = n; return *this; }
    Config &link_count_limit(uint32_t n) { cfg_.link_count_limit = n; return *this; }
    /// The C struct, pointing into this object's strings.
    const spanguard_config *get() const noexcept { return &cfg_; }

  private:
    static uint32_t ms(std::chrono::milliseconds d) { return static_cast<uint32_t>(d.count()); }
    Config &str(std::string &slot, std::string v, const char *&field) {
        slot = std::move(v);
        field = slot.c_str();
        return *this;
    }
    spanguard_config cfg_{};
    std::string service_name_, endpoint_, headers_, resource_, sink_dir_, spool_dir_;

  public:
    // Copying would leave the copy's pointers in this object's strings.
    Config(const Config &) = delete;
    Config &operator=(const Config &) = delete;
};

/// A span: move-only; ends in its destructor unless ended before.
class Span {
  public:
    Span() noexcept = default;
    explicit Span(spanguard_span handle) noexcept : handle_(handle) {}
    Span(Span &&other) noexcept
        : tracer_(other.tracer_), handle_(std::exchange(other.handle_, SPANGUARD_SPAN_NONE)) {}
    Span &operator=(Span &&other) noexcept {
        if (this != &other) {
            (void)end();
            tracer_ = other.tracer_;
            handle_ = std::exchange(other.handle_, SPANGUARD_SPAN_NONE);
        }
        return *this;
    }
    Span(const Span &) = delete;
    Span &operator=(const Span &) = delete;
    ~Span() { (void)end(); }

    spanguard_span handle() const noexcept { return handle_; }
    bool recording() const noexcept { return handle_ != SPANGUARD_SPAN_NONE; }

    Result set(std::string_view key, std::string_view value) {
        return Result(spanguard_span_set_string(handle_, key.data(), key.size(), value.data(), value.size()));
    }
    Result set(std::string_view key, const char *value) { return set(key, std::string_view(value)); }
    Result set(std::string_view key, int64_t value) {
        return Result(spanguard_span_set_int(handle_, key.data(), key.size(), value));
    }
    Result set(std::string_view key, int value) { return set(key, static_cast<int64_t>(value)); }
    Result set(std::string_view key, double value) {
        return Result(spanguard_span_set_double(handle_, key.data(), key.size(), value));
    }
    Result set(std::string_view key, bool value) {
        return Result(spanguard_span_set_bool(handle_, key.data(), key.size(), value));
    }
    /// A bytes value (OTLP bytes_value), copied as is.
    Result set_bytes(std::string_view key, const void *data, size_t len) {
        return Result(spanguard_span_set_bytes(handle_, key.data(), key.size(), static_cast<const uint8_t *>(data), len));
    }
    Result set(std::string_view key, const std::vector<uint8_t> &bytes) {
        return set_bytes(key, bytes.data(), bytes.size());
    }
    /// Arrays of strings, int64, doubles and bools.
    Result set(std::string_view key, const std::vector<std::string_view> &values) {
        std::vector<spanguard_string> items;
        items.reserve(values.size());
        for (std::string_view v : values) items.push_back(spanguard_string{v.data(), v.size()});
        return Result(spanguard_span_set_string_array(handle_, key.data(), key.size(), items.data(), items.size()));
    }
    Result set(std::string_view key, const std::vector<std::string> &values) {
        return set(key, std::vector<std::string_view>(values.begin(), values.end()));
    }
    Result set(std::string_view key, const std::vector<int64_t> &values) {
        return Result(spanguard_span_set_int_array(handle_, key.data(), key.size(), values.data(), values.size()));
    }
    Result set(std::string_view key, const std::vector<double> &values) {
        return Result(spanguard_span_set_double_array(handle_, key.data(), key.size(), values.data(), values.size()));
    }
    /// std::vector<bool> is packed bits, so the bools are copied out first.
    Result set(std::string_view key, const std::vector<bool> &values) {
        std::unique_ptr<bool[]> items(new bool[values.size() ? values.size() : 1]);
        for (size_t i = 0; i < values.size(); ++i) items[i] = values[i];
        return Result(spanguard_span_set_bool_array(handle_, key.data(), key.size(), items.get(), values.size()));
    }
    /// Renames the span (OpenTelemetry's updateName): it is exported with its last name.
    Result update_name(std::string_view name) {
        return Result(spanguard_span_update_name(handle_, name.data(), name.size()));
    }
    Result event(std::string_view name, const spanguard_attribute *attrs = nullptr, size_t n = 0) {
        return Result(spanguard_span_add_event(handle_, name.data(), name.size(), 0, attrs, n));
    }
    Result error(std::string_view message) {
        return Result(spanguard_span_set_status(handle_, SPANGUARD_STATUS_ERROR, message.data(), message.size()));
    }
    Result ok() { return Result(spanguard_span_set_status(handle_, SPANGUARD_STATUS_OK, nullptr, 0)); }

    /// The W3C traceparent, to pass to another process; empty when there
    /// is none to pass (then send no header).
    std::string traceparent() const {
        char buf[SPANGUARD_TRACEPARENT_SIZE];
        Result r(spanguard_span_traceparent(handle_, buf, sizeof buf));
        r.value("spanguard_span_traceparent");
        return std::string(buf);
    }
    /// The W3C tracestate to send with the traceparent; empty when none.
    std::string tracestate() const {
        char buf[SPANGUARD_MAX_TRACESTATE_BYTES + 1];
        size_t n = 0;
        Result r(spanguard_span_tracestate(handle_, buf, sizeof buf, &n));
        r.value("spanguard_span_tracestate");
        return std::string(buf, n);
    }

    /// Ends the span now; later calls (and the destructor) do nothing.
    Result end() noexcept {
        if (!recording()) return Result(SPANGUARD_RESULT_NON_RECORDING);
        return Result(spanguard_span_end(std::exchange(handle_, SPANGUARD_SPAN_NONE)));
    }

    /// A child of this span, of the same tracer.
    Span child(std::string_view name, uint32_t kind = SPANGUARD_KIND_INTERNAL) const;

  private:
    friend class Tracer;
    spanguard_tracer *tracer_ = nullptr;
    spanguard_span handle_ = SPANGUARD_SPAN_NONE;
};

/// How a flush or shutdown ended: every span delivered (or refused for good,
/// which the counters and the error callback report); done but some spans
/// only written to the spool while the backend was down (safe on disk, sent
/// later); or out of time (the export goes on in the background).
enum class Flushed { delivered, spooled, timed_out };

/// A tracer: owns the C tracer, freed (after shutdown) in its destructor.
class Tracer {
  public:
    /// From `cfg` only (no environment variables).
    explicit Tracer(const Config &cfg) : Tracer(make(cfg.get(), false)) {}
    /// From the OTEL_* and SPANGUARD_* environment variables over `cfg`.
    static Tracer from_env(const Config &cfg = Config()) { return Tracer(make(cfg.get(), true)); }

    [[nodiscard]] Span start(std::string_view name, uint32_t kind = SPANGUARD_KIND_INTERNAL,
                             const Span *parent = nullptr) const {
        return begin(tracer_.get(), name, parent ? parent->handle() : SPANGUARD_SPAN_NONE, kind);
    }
    /// A span whose parent is in another process: the incoming
    /// `traceparent` and `tracestate` headers (the latter may be empty).
    [[nodiscard]] Span start_remote(std::string_view name, std::string_view traceparent,
                                    uint32_t kind = SPANGUARD_KIND_SERVER,
                                    std::string_view tracestate = {}) const {
        spanguard_span_options o;
        (void)spanguard_span_options_init(&o);
        o.name = name.data();
        o.name_len = name.size();
        o.kind = kind;
        o.traceparent = traceparent.data();
        o.traceparent_len = traceparent.size();
        o.tracestate = tracestate.data();
        o.tracestate_len = tracestate.size();
        return start(o);
    }
    /// A span begun as `opts` says (spanguard_span_begin_ex).
    [[nodiscard]] Span start(const spanguard_span_options &opts) const {
        spanguard_span out = SPANGUARD_SPAN_NONE;
        spanguard_result rc = spanguard_span_begin_ex(tracer_.get(), &opts, &out);
        if (!spanguard_result_is_ok(rc)) throw Error(rc, "spanguard_span_begin_ex");
        Span s(out);
        s.tracer_ = tracer_.get();
        return s;
    }
    /// True when everything ended before the call was delivered or spooled in time.
    bool flush(std::chrono::milliseconds timeout) const { return flush_status(timeout) != Flushed::timed_out; }
    /// Like flush, saying whether the spans were delivered or only spooled
    /// (safe on disk while the backend is down).
    Flushed flush_status(std::chrono::milliseconds timeout) const {
        return flushed(spanguard_flush(tracer_.get(), static_cast<uint32_t>(timeout.count())), "flush");
    }
    bool shutdown(std::chrono::milliseconds timeout) const { return shutdown_status(timeout) != Flushed::timed_out; }
    Flushed shutdown_status(std::chrono::milliseconds timeout) const {
        spanguard_result rc = spanguard_shutdown(tracer_.get(), static_cast<uint32_t>(timeout.count()));
        if (rc == SPANGUARD_RESULT_SHUT_DOWN) return Flushed::delivered;
        return flushed(rc, "shutdown");
    }
    spanguard_counters stats() const {
        spanguard_counters c{};
        c.struct_size = sizeof c;
        Result(spanguard_stats(tracer_.get(), &c)).value("spanguard_stats");
        return c;
    }
    /// The file the local sink appends to (empty with an endpoint): where the spans go.
    std::string sink_path() const {
        size_t n = 0;
        // Asks the length first (a path always needs at least the NUL).
        spanguard_result rc = spanguard_tracer_sink_path(tracer_.get(), nullptr, 0, &n);
        if (rc != SPANGUARD_RESULT_BUFFER_TOO_SMALL) throw Error(rc, "spanguard_tracer_sink_path");
        std::string path(n + 1, '\0');
        Result(spanguard_tracer_sink_path(tracer_.get(), path.data(), path.size(), &n)).value("spanguard_tracer_sink_path");
        path.resize(n);
        return path;
    }
    spanguard_tracer *get() const noexcept { return tracer_.get(); }

    static Span begin(spanguard_tracer *t, std::string_view name, spanguard_span parent, uint32_t kind) {
        spanguard_span out = SPANGUARD_SPAN_NONE;
        spanguard_result rc = spanguard_span_begin(t, name.data(), name.size(), parent, kind, &out);
        if (!spanguard_result_is_ok(rc)) throw Error(rc, "spanguard_span_begin");
        Span s(out);
        s.tracer_ = t;
        return s;
    }

  private:
    struct Free {
        void operator()(spanguard_tracer *t) const noexcept { spanguard_tracer_free(t); }
    };
    explicit Tracer(spanguard_tracer *t) : tracer_(t) {}
    static spanguard_tracer *make(const spanguard_config *cfg, bool env) {
        spanguard_tracer *t = nullptr;
        char message[SPANGUARD_ERROR_MESSAGE_SIZE];
        spanguard_result rc = spanguard_tracer_new_with_error(cfg, env, &t, message, sizeof message, nullptr);
        if (rc != SPANGUARD_RESULT_OK) throw Error(rc, "spanguard_tracer_new", message);
        return t;
    }
    static Flushed flushed(spanguard_result rc, const char *what) {
        if (rc == SPANGUARD_RESULT_TIMEOUT) return Flushed::timed_out;
        Result(rc).value(what);
        return rc == SPANGUARD_RESULT_SPOOLED ? Flushed::spooled : Flushed::delivered;
    }
    std::unique_ptr<spanguard_tracer, Free> tracer_;
};

inline Span Span::child(std::string_view name, uint32_t kind) const {
    return Tracer::begin(tracer_, name, handle_, kind);
}

}  // namespace spanguard

#endif  // SPANGUARD_HPP
