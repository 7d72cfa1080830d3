//! The C structs: configuration, statistics, attributes. Structs that may
//! grow start with `struct_size`, so a caller built against an older header
//! keeps working: spanguard reads or writes only the fields it was told of.

use std::ffi::c_char;

/// A span: a plain value, copied freely, never freed. `SPANGUARD_SPAN_NONE`
/// (0) is "no span": as a parent it starts a new trace.
pub type spanguard_span = u64;

/// No span.
pub const SPANGUARD_SPAN_NONE: spanguard_span = 0;

/// Span kinds, numbered as in OTLP.
pub const SPANGUARD_KIND_UNSPECIFIED: u32 = 0;
pub const SPANGUARD_KIND_INTERNAL: u32 = 1;
pub const SPANGUARD_KIND_SERVER: u32 = 2;
pub const SPANGUARD_KIND_CLIENT: u32 = 3;
pub const SPANGUARD_KIND_PRODUCER: u32 = 4;
pub const SPANGUARD_KIND_CONSUMER: u32 = 5;

/// Status codes, numbered as in OTLP.
pub const SPANGUARD_STATUS_UNSET: u32 = 0;
pub const SPANGUARD_STATUS_OK: u32 = 1;
pub const SPANGUARD_STATUS_ERROR: u32 = 2;

/// `spanguard_attribute.type`: what the attribute's value is, and which
/// of its members carry it.
pub const SPANGUARD_VALUE_STRING: u32 = 1;
pub const SPANGUARD_VALUE_INT: u32 = 2;
pub const SPANGUARD_VALUE_DOUBLE: u32 = 3;
pub const SPANGUARD_VALUE_BOOL: u32 = 4;
/// A byte string: `string_value` points at the bytes (any bytes, not
/// UTF-8 checked), `string_len` is their count. OTLP `bytes_value`.
pub const SPANGUARD_VALUE_BYTES: u32 = 5;
/// An array of strings: `string_value` points at `string_len`
/// `spanguard_string`s (cast it: `(const char *)strings`).
pub const SPANGUARD_VALUE_STRING_ARRAY: u32 = 6;
/// An array of int64: `string_value` points at `string_len` `int64_t`s.
pub const SPANGUARD_VALUE_INT_ARRAY: u32 = 7;
/// An array of doubles: `string_value` points at `string_len` `double`s.
pub const SPANGUARD_VALUE_DOUBLE_ARRAY: u32 = 8;
/// An array of bools: `string_value` points at `string_len` `bool`s.
pub const SPANGUARD_VALUE_BOOL_ARRAY: u32 = 9;
/// A complex value (OpenTelemetry's `AnyValue`: a map, an array of
/// values of any kinds, nested; the empty value): `string_value` points at
/// an OTLP `AnyValue` message encoded as protobuf, `string_len` is its
/// byte count (0: the empty value). See `spanguard_span_set_anyvalue`.
pub const SPANGUARD_VALUE_ANY: u32 = 10;

/// `spanguard_config.protocol`.
pub const SPANGUARD_PROTOCOL_HTTP_PROTOBUF: u32 = 0;
pub const SPANGUARD_PROTOCOL_HTTP_JSON: u32 = 1;

/// `spanguard_config.compression`.
pub const SPANGUARD_COMPRESSION_NONE: u32 = 0;
pub const SPANGUARD_COMPRESSION_GZIP: u32 = 1;

/// `spanguard_config.sampler`: which spans are recorded and exported, as
/// OpenTelemetry's `OTEL_TRACES_SAMPLER` names them. The parent-based ones
/// follow the parent's sampled flag (local or remote) and ask the root
/// sampler only for root spans. An unsampled span still has ids and
/// propagates its context (trace flags 00); recording calls on it return
/// `SPANGUARD_RESULT_NON_RECORDING` and it is never exported.
pub const SPANGUARD_SAMPLER_PARENTBASED_ALWAYS_ON: u32 = 0;
pub const SPANGUARD_SAMPLER_ALWAYS_ON: u32 = 1;
pub const SPANGUARD_SAMPLER_ALWAYS_OFF: u32 = 2;
/// Samples a share `sampler_ratio` of traces, decided by the trace id.
pub const SPANGUARD_SAMPLER_TRACEIDRATIO: u32 = 3;
pub const SPANGUARD_SAMPLER_PARENTBASED_ALWAYS_OFF: u32 = 4;
pub const SPANGUARD_SAMPLER_PARENTBASED_TRACEIDRATIO: u32 = 5;

/// `spanguard_span_options.flags`: the explicit parent span id names a
/// span in another process.
pub const SPANGUARD_SPAN_OPTION_PARENT_IS_REMOTE: u32 = 1;
/// `spanguard_span_options.flags`, with `trace_id`: the span comes from
/// another SDK that applied its own span limits (an OpenTelemetry bridge),
/// so the tracer's (`attribute_count_limit` and the others,
/// `value_length_limit`) do not apply to it: what the SDK kept is kept
/// whole, up to `SPANGUARD_MAX_COUNT_LIMIT` of each and the payload pool.
/// Pass what the SDK dropped with `spanguard_span_add_dropped_counts`.
pub const SPANGUARD_SPAN_OPTION_LIMITED_BY_CALLER: u32 = 2;
/// `spanguard_span_options.flags`: the begin must not block (a green
/// thread's, whose OS thread runs its hub): where every slot is taken and
/// the full policy is to wait, or its attributes would wait for payload
/// chunks, it returns `SPANGUARD_RESULT_WOULD_WAIT` at once, begins nothing
/// and counts nothing, as `spanguard_span_try_begin_packed` does. Where a
/// begin that may wait would not wait either (a wait was in vain and the
/// exporter has taken no span since), it drops and counts the span at
/// once as that begin does (`SPANGUARD_RESULT_BUFFER_FULL`).
pub const SPANGUARD_SPAN_OPTION_NO_WAIT: u32 = 4;
/// `spanguard_span_options.flags`: the caller has waited for a slot
/// already, for the tracer's `spanguard_tracer_full_wait_ms`, trying with
/// `SPANGUARD_SPAN_OPTION_NO_WAIT` and letting its other green threads run
/// between tries. Where every slot is still taken, the span is dropped and
/// counted (`dropped_buffer_full`, `SPANGUARD_RESULT_BUFFER_FULL`) as after
/// a wait that ran out, at once, and attribute values that find the
/// payload pool used up are cut, not waited for.
pub const SPANGUARD_SPAN_OPTION_WAITED: u32 = 8;

/// `spanguard_span_add_link_ids` `link_flags`: the linked span context
/// came from another process (OpenTelemetry's `SpanContext.isRemote`).
/// Neither this nor `SPANGUARD_LINK_LOCAL`: not known.
pub const SPANGUARD_LINK_REMOTE: u32 = 1;
/// `spanguard_span_add_link_ids` `link_flags`: the linked span context
/// was made in this process.
pub const SPANGUARD_LINK_LOCAL: u32 = 2;

/// `spanguard_config.full_policy`: what `spanguard_span_begin` does when
/// every span slot is taken.
pub const SPANGUARD_FULL_POLICY_WAIT: u32 = 0;
pub const SPANGUARD_FULL_POLICY_DROP: u32 = 1;

/// `spanguard_config.install_signal_handlers`: which of the library's
/// signal handlers a tracer installs (once per process; a later tracer
/// asking for more adds the rest).
/// NONE: none; the host flushes or shuts down from its own handlers.
pub const SPANGUARD_SIGNAL_HANDLERS_NONE: u32 = 0;
/// ALL (the default): the termination watchdog (SIGTERM, SIGINT, SIGHUP,
/// SIGQUIT: flush, dump what is left, then the host's disposition acts)
/// and the crash handlers (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT: dump
/// the spans, then the host's handler or the default action).
pub const SPANGUARD_SIGNAL_HANDLERS_ALL: u32 = 1;
/// TERMINATION: the termination watchdog alone, no crash handlers (nor the
/// alternate stacks they run on): for runtimes that use crash signals
/// themselves, as Go does SIGSEGV for nil dereferences a program may
/// recover from, where a crash handler would dump at each of them.
pub const SPANGUARD_SIGNAL_HANDLERS_TERMINATION: u32 = 2;

/// Fixed limits of one span, in bytes. Longer names, keys and tracestates
/// are cut on a UTF-8 boundary (`SPANGUARD_RESULT_TRUNCATED`, counted in
/// `values_truncated`). Values have no fixed limit: they are bounded by
/// `value_length_limit` (OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT; none by
/// default) and by the payload pool, and cut and counted the same way.
/// (`SPANGUARD_MAX_VALUE_BYTES` and `SPANGUARD_MAX_SPAN_TEXT_BYTES`, the
/// 1 KiB and 2 KiB caps of earlier versions, are retired.)
pub const SPANGUARD_MAX_NAME_BYTES: u32 = 1024;
/// Longest attribute key kept, in bytes: a longer one is cut on a character
/// boundary, the call returns `SPANGUARD_RESULT_TRUNCATED` and the cut is
/// counted in `values_truncated` (two keys alike in their first 1 KiB are
/// one key).
pub const SPANGUARD_MAX_KEY_BYTES: u32 = 1024;
/// Longest instrumentation scope name or version kept, in bytes
/// (`spanguard_span_options`): a longer one is cut on a character boundary
/// and counted in `values_truncated`.
pub const SPANGUARD_MAX_SCOPE_BYTES: u32 = 256;
/// The most instrumentation scopes that have attributes at once
/// (`spanguard_tracer_set_scope_attributes`).
pub const SPANGUARD_MAX_SCOPES_WITH_ATTRIBUTES: u32 = 256;
/// The most attributes one call takes in a `spanguard_attribute` array
/// (more: `SPANGUARD_RESULT_LIMIT_REACHED` and nothing is done), but for
/// an event's or a link's and a resource's or scope's, which take any
/// number. Also the
/// default of every count limit below; a span holds as many attributes,
/// events and links as its limits allow (`spanguard_config`), no longer a
/// fixed number.
pub const SPANGUARD_MAX_ATTRIBUTES: u32 = 128;
/// OpenTelemetry's default count limit: attributes per span, events per
/// span, links per span, attributes per event and per link.
pub const SPANGUARD_DEFAULT_COUNT_LIMIT: u32 = 128;
/// The largest count limit a config may set.
pub const SPANGUARD_MAX_COUNT_LIMIT: u32 = 32767;
/// Events per span by default (`event_count_limit`).
pub const SPANGUARD_MAX_EVENTS: u32 = 128;
/// Links per span by default (`link_count_limit`).
pub const SPANGUARD_MAX_LINKS: u32 = 128;
/// `value_length_limit`: no limit on a value's length but the pool.
pub const SPANGUARD_NO_LENGTH_LIMIT: u32 = 0xFFFF_FFFF;
/// `value_depth_limit` when none is set: OpenTelemetry's default.
pub const SPANGUARD_DEFAULT_DEPTH_LIMIT: u32 = 64;
/// The highest `value_depth_limit`: arrays and maps deeper than this are
/// never read, and replaced by the empty value, whatever the limit.
pub const SPANGUARD_MAX_DEPTH_LIMIT: u32 = 128;
/// The payload pool's default size in MiB (`payload_pool_mib`).
pub const SPANGUARD_DEFAULT_PAYLOAD_POOL_MIB: u32 = 256;
/// Bytes `spanguard_span_traceparent` writes, with the terminating NUL.
pub const SPANGUARD_TRACEPARENT_SIZE: u32 = 56;
/// The longest tracestate a span keeps, in bytes (the 512 characters W3C
/// Trace Context asks for); `spanguard_span_tracestate` needs one more for
/// the NUL. A longer one is cut by whole list members.
pub const SPANGUARD_MAX_TRACESTATE_BYTES: u32 = 512;

/// Tracer settings. Fill it with `spanguard_config_init` (which sets
/// `struct_size` and every default), then change what you need. Strings are
/// NUL-terminated UTF-8 and copied; NULL means "the default". A zero number
/// also means "the default".
#[repr(C)]
#[derive(Clone, Copy)]
pub struct spanguard_config {
    /// `sizeof(spanguard_config)` as the caller knows it.
    pub struct_size: u32,
    /// `SPANGUARD_PROTOCOL_*`.
    pub protocol: u32,
    /// `SPANGUARD_COMPRESSION_*`.
    pub compression: u32,
    /// `SPANGUARD_FULL_POLICY_*`.
    pub full_policy: u32,
    /// service.name; default "unknown_service:" and the process's
    /// executable name (as OpenTelemetry's resource conventions say), also
    /// for an empty or blank name.
    pub service_name: *const c_char,
    /// Extra resource attributes as `key=value,key2=value2`
    /// (OTEL_RESOURCE_ATTRIBUTES syntax).
    pub resource_attributes: *const c_char,
    /// The full traces URL, e.g. `http://127.0.0.1:4318/v1/traces`. NULL:
    /// spans go to the local sink directory instead. `discard:` encodes and
    /// drops every batch (a null sink, for benchmarks).
    pub endpoint: *const c_char,
    /// Request headers as `name=value,name2=value2`
    /// (OTEL_EXPORTER_OTLP_HEADERS syntax), e.g. an API key.
    pub headers: *const c_char,
    /// The local sink directory; default `$XDG_STATE_HOME/spanguard/spans`
    /// (or `~/.local/state/spanguard/spans`).
    pub sink_dir: *const c_char,
    /// Where failed batches are spooled; default next to `sink_dir`.
    pub spool_dir: *const c_char,
    /// One HTTP request's timeout; default 10000.
    pub request_timeout_ms: u32,
    /// How often the exporter sends what has ended; default 5000.
    pub schedule_delay_ms: u32,
    /// Ended spans that may wait for export; default 2048.
    pub max_queue_size: u32,
    /// Spans per request; default 512.
    pub max_export_batch_size: u32,
    /// Time for one batch including retries; default 30000.
    pub export_timeout_ms: u32,
    /// Spans that may be open at once; default 2048. With `max_queue_size`,
    /// the slots a tracer has; each recording thread keeps a few free ones
    /// at hand (at most an eighth of them in all, README), which another
    /// thread's burst cannot take.
    pub max_open_spans: u32,
    /// With `SPANGUARD_FULL_POLICY_WAIT`, the longest `begin` waits for a
    /// slot; default 200. It waits only while the exporter can give one
    /// back: not when every slot holds an open span, nor after a wait in
    /// vain until the exporter has taken spans again.
    pub full_wait_ms: u32,
    /// `SPANGUARD_SIGNAL_HANDLERS_ALL` (1, default): the termination
    /// watchdog and the crash handlers; `_TERMINATION` (2): the watchdog
    /// only, no crash handlers (Go, whose runtime recovers from SIGSEGV);
    /// `_NONE` (0): leave signals to the host, which calls flush/shutdown
    /// from its hooks. Other values: `SPANGUARD_RESULT_INVALID_ARGUMENT`.
    pub install_signal_handlers: u32,
    /// 1: keep span slots in a memory-mapped file in `spool_dir` so spans
    /// survive SIGKILL. Default 0.
    pub flight_recorder: u32,
    /// The spool's size cap in MiB; default 64.
    pub spool_max_mib: u32,
    /// How long the watchdog may flush on a fatal signal; default 3000.
    pub signal_flush_timeout_ms: u32,
    /// The most CPU the exporter thread may use, in percent of one core
    /// (1..100), while the queue is less than half full; default 50.
    pub exporter_max_cpu_percent: u32,
    /// `SPANGUARD_SAMPLER_*`; default (0) parent-based always-on.
    pub sampler: u32,
    /// The share of traces the `*_TRACEIDRATIO` samplers keep, 0.0 to 1.0;
    /// `spanguard_config_init` sets 1.0. Ignored by the other samplers.
    pub sampler_ratio: f64,
    /// The payload pool's size in MiB: what spans hold past their slots
    /// (long prompts and completions, many attributes, events, links). Reserved at
    /// start and resident only as spans use it; when it is used up, values
    /// are cut and counted. Default `SPANGUARD_DEFAULT_PAYLOAD_POOL_MIB`
    /// (SPANGUARD_PAYLOAD_POOL_MIB).
    pub payload_pool_mib: u32,
    /// Longest attribute value kept (each element of an array): a
    /// string's length in characters, as
    /// OpenTelemetry counts it (any character as 1, an invalid UTF-8
    /// sequence as the one U+FFFD that replaces it), a bytes value's in
    /// bytes; default `SPANGUARD_NO_LENGTH_LIMIT`
    /// (OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT, OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT).
    pub value_length_limit: u32,
    /// Attributes per span; default 128 (OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT,
    /// OTEL_ATTRIBUTE_COUNT_LIMIT). At most `SPANGUARD_MAX_COUNT_LIMIT`, as
    /// are the other count limits.
    pub attribute_count_limit: u32,
    /// Events per span; default 128 (OTEL_SPAN_EVENT_COUNT_LIMIT).
    pub event_count_limit: u32,
    /// Links per span; default 128 (OTEL_SPAN_LINK_COUNT_LIMIT).
    pub link_count_limit: u32,
    /// Attributes per event; default 128 (OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT).
    pub event_attribute_count_limit: u32,
    /// Attributes per link; default 128 (OTEL_LINK_ATTRIBUTE_COUNT_LIMIT).
    pub link_attribute_count_limit: u32,
    /// PEM file of the CA certificates that verify the backend
    /// (OTEL_EXPORTER_OTLP_CERTIFICATE); NULL: the system's trust store.
    pub certificate: *const c_char,
    /// PEM files of the client certificate and its key, for mutual TLS
    /// (OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE, ..._CLIENT_KEY); both or
    /// neither.
    pub client_certificate: *const c_char,
    pub client_key: *const c_char,
    /// The largest request body of several spans, in bytes before
    /// compression (SPANGUARD_MAX_REQUEST_BYTES); bigger batches go as
    /// several requests, and a 413 answer splits a request again, or cuts
    /// the values of a span alone in it (`values_truncated`). A span alone
    /// over it goes whole in a request of its own, up to 64 MiB or half the
    /// spool's cap (cut to fit beyond), and for an hour after a 413 on such
    /// a span is cut up front to what the backend took. Default 1000000.
    pub max_request_bytes: u32,
    /// The longest line the local sink writes, newline included
    /// (SPANGUARD_SINK_MAX_LINE_BYTES); default 1048576, the OpenTelemetry
    /// Collector's otlpjsonfile receiver's limit; at most 67108864 (64 MiB,
    /// the longest line `spanguard show` and `tail` read).
    pub sink_max_line_bytes: u32,
    /// What spanguard writes to stderr (OTEL_LOG_LEVEL): "none", "error",
    /// "warn" (default), "info" or "debug".
    pub log_level: *const c_char,
    /// 1: populate every span slot's memory at start
    /// (SPANGUARD_PREFAULT_SLOTS), so that no span takes a page fault; the
    /// slots' whole size is then resident from the start. Default 0: a
    /// slot takes memory when first used.
    pub prefault_slots: u32,
    /// How deep a complex value (`spanguard_span_set_anyvalue`) may nest:
    /// the attribute's value is level 1, each array element or map value
    /// one more; an array or map deeper is replaced by the empty value
    /// (`SPANGUARD_RESULT_TRUNCATED`, counted in `values_truncated`), as
    /// OpenTelemetry's `attribute_value_depth_limit` says. Default
    /// `SPANGUARD_DEFAULT_DEPTH_LIMIT` (64); at most
    /// `SPANGUARD_MAX_DEPTH_LIMIT` (128), which bounds the stack every
    /// reader of a value uses; past it, `SPANGUARD_RESULT_INVALID_CONFIG`
    /// (SPANGUARD_ATTRIBUTE_VALUE_DEPTH_LIMIT: OpenTelemetry names no
    /// variable for it).
    pub value_depth_limit: u32,
    /// Environment variables (names, comma-separated) that the host
    /// program set as its own defaults rather than the user: with
    /// `from_env` they are read as unset. The Python package names
    /// OTEL_EXPORTER_OTLP_PROTOCOL when opentelemetry-distro (under
    /// `opentelemetry-instrument`) set it to grpc, its exporter's default:
    /// the warning that grpc is not supported is for a user who chose it.
    /// NULL or empty: every variable is read (but those the environment's
    /// `_SPANGUARD_DISTRO_SET`, written by the Python package for the
    /// processes it starts, names as the distro's: read as unset too).
    pub env_set_by_host: *const c_char,
}

/// How `spanguard_span_begin_ex` begins a span. Fill it with
/// `spanguard_span_options_init_sized(opts, sizeof *opts)` (which sets
/// `struct_size` and clears the rest; `spanguard_span_options_init` fills
/// the first version's fields only), then set what you need. Strings are pointer + length (UTF-8; not
/// NUL-terminated); NULL with length 0 is "none".
///
/// The parent is one of: a local span (`parent`), a remote one given as W3C
/// text (`traceparent`, with `tracestate`), or explicit ids (`trace_id`
/// non-NULL: bridges from OpenTelemetry SDKs, whose spans already have ids;
/// the span then has exactly `trace_id`, `span_id` and `parent_span_id`,
/// and its sampled flag in `trace_flags` is the sampling decision). Setting
/// more than one is `SPANGUARD_RESULT_INVALID_ARGUMENT`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct spanguard_span_options {
    /// `sizeof(spanguard_span_options)` as the caller knows it.
    pub struct_size: u32,
    /// `SPANGUARD_KIND_*`.
    pub kind: u32,
    pub name: *const c_char,
    pub name_len: usize,
    /// A local parent, or `SPANGUARD_SPAN_NONE`.
    pub parent: spanguard_span,
    /// A remote parent as a W3C traceparent, or NULL.
    pub traceparent: *const c_char,
    pub traceparent_len: usize,
    /// The remote (or explicit) parent's W3C tracestate: one header value,
    /// or several joined with `,`. Invalid: discarded, as the specification
    /// says; longer than `SPANGUARD_MAX_TRACESTATE_BYTES`: cut by whole
    /// members (`SPANGUARD_RESULT_TRUNCATED`). A local parent's tracestate
    /// is inherited instead.
    pub tracestate: *const c_char,
    pub tracestate_len: usize,
    /// Explicit ids: 16 bytes, not all zero; or NULL.
    pub trace_id: *const u8,
    /// With `trace_id`: 8 bytes, not all zero.
    pub span_id: *const u8,
    /// With `trace_id`: 8 bytes, or NULL for a root span.
    pub parent_span_id: *const u8,
    /// With `trace_id`: the W3C trace flags (bit 0 sampled, bit 1 random;
    /// other bits are cleared).
    pub trace_flags: u32,
    /// `SPANGUARD_SPAN_OPTION_*` bits.
    pub flags: u32,
    /// Unix epoch nanoseconds; 0: now.
    pub start_time_unix_ns: u64,
    /// The instrumentation scope (an OpenTelemetry tracer's name and
    /// version); empty: spanguard's own. Spans are exported grouped by it.
    pub scope_name: *const c_char,
    pub scope_name_len: usize,
    pub scope_version: *const c_char,
    pub scope_version_len: usize,
    /// Attributes at creation (see `spanguard_span_begin_with_attributes`).
    pub attributes: *const spanguard_attribute,
    pub attribute_count: usize,
    /// The instrumentation scope's schema URL (an OpenTelemetry tracer's
    /// `schema_url`, e.g. `https://opentelemetry.io/schemas/1.28.0`),
    /// exported as its `ScopeSpans.schema_url`; empty: none. Spans are
    /// grouped by scope name, version and schema URL. Added after the
    /// first version: read only when `struct_size` covers it (fill the
    /// struct with `spanguard_span_options_init_sized`).
    pub scope_schema_url: *const c_char,
    pub scope_schema_url_len: usize,
}

/// A span's context as a binding keeps it: its ids and W3C trace flags
/// (`spanguard_span_begin_packed_keeping_ids`). All zero: none.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct spanguard_span_context {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub trace_flags: u8,
}

/// One string of a string array (`SPANGUARD_VALUE_STRING_ARRAY`): a
/// pointer and a length, UTF-8 (invalid bytes replaced).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct spanguard_string {
    pub ptr: *const c_char,
    pub len: usize,
}

/// One attribute, for calls that take several (events, links, attributes
/// at creation, `spanguard_span_set_attributes`). Set `key` and the
/// members that `type_` (`SPANGUARD_VALUE_*`) names: `string_value` and
/// `string_len` for a string; `int_value`, `double_value` or `bool_value`
/// for a scalar; and for bytes and arrays, `string_value` as a pointer to
/// the data (cast to `const char *`) and `string_len` as the number of
/// bytes or elements (see each `SPANGUARD_VALUE_*`; for
/// `SPANGUARD_VALUE_ANY`, the message's bytes). Its size and layout
/// are those of earlier versions: arrays of it from older callers work.
/// The data pointed at is copied during the call.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct spanguard_attribute {
    pub key: *const c_char,
    pub key_len: usize,
    pub type_: u32,
    pub bool_value: bool,
    pub int_value: i64,
    pub double_value: f64,
    pub string_value: *const c_char,
    pub string_len: usize,
}

/// Counters, filled by `spanguard_stats`. Set `struct_size` to
/// `sizeof(spanguard_counters)` before the call. While the tracer runs
/// they are read one after another, not as one snapshot: a span the
/// exporter takes between two reads can be missed for that call
/// (`spans_ended` one low, `spans_open` one high), never counted twice;
/// the identities below hold exactly once the tracer is shut down (or
/// `queue_depth` is 0 and nothing is in flight).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct spanguard_counters {
    pub struct_size: u32,
    pub _reserved: u32,
    /// Spans that got a slot.
    pub spans_begun: u64,
    /// Spans ended (by the application, or by shutdown).
    pub spans_ended: u64,
    /// Spans the backend or sink accepted on their first trip. Each span
    /// ended is counted once, where its first trip took it: spans_ended =
    /// spans_exported + spooled_spans + dropped_export_failed +
    /// dropped_rejected + spans_unsampled (once queue_depth is 0 and
    /// nothing is in flight).
    pub spans_exported: u64,
    /// Ended spans waiting for the exporter.
    pub queue_depth: u64,
    /// Spans begun and not ended.
    pub spans_open: u64,
    /// Spans never begun because every slot was taken (so not in
    /// `spans_ended`).
    pub dropped_buffer_full: u64,
    /// Spans lost on their first trip: refused for good by the backend
    /// (4xx other than 429, and 500), alone over the request size limit, the
    /// spool could not be written, or an internal error (`exporter_panics`).
    pub dropped_export_failed: u64,
    /// Spans the backend rejected in a partial success on their first trip.
    pub dropped_rejected: u64,
    /// Spans of spool files (this process's or another's) that the spool's
    /// cap deleted. Not in the identity above: they were counted in
    /// `spooled_spans` when they were written.
    pub dropped_spool_overflow: u64,
    /// Spans still open at shutdown, exported marked `spanguard.unended`.
    pub spans_unended_at_shutdown: u64,
    pub batches_sent: u64,
    pub batches_failed: u64,
    pub bytes_sent: u64,
    pub retries: u64,
    pub attributes_dropped: u64,
    pub events_dropped: u64,
    pub links_dropped: u64,
    pub values_truncated: u64,
    pub utf8_replaced: u64,
    /// Requests written to the spool on their first trip.
    pub spooled_batches: u64,
    /// Spans written to the spool on their first trip (backend down,
    /// retries spent, shutdown, or a full queue that could not wait).
    pub spooled_spans: u64,
    /// Requests from the spool directory delivered: spool files (this
    /// process's or another's) and spans of crash dumps and flight files.
    pub replayed_batches: u64,
    /// Spans in those requests the backend accepted.
    pub replayed_spans: u64,
    /// Bytes the spool directory holds now.
    pub spool_bytes: u64,
    /// Spans recovered from dead processes' crash dumps and flight files
    /// (then counted in the replay counters as they are delivered).
    pub recovered_spans: u64,
    /// Nanoseconds the exporter rested to stay within its CPU cap (the
    /// rests taken: a flush, the stop, a full queue or a begin waiting for
    /// a slot cuts one short).
    pub exporter_throttled_ns: u64,
    /// Spans the sampler left out (OTEL_TRACES_SAMPLER): they count in
    /// `spans_ended` and are never exported, by design.
    pub spans_unsampled: u64,
    /// Spans from the spool directory the backend refused for good when
    /// replayed (or that were too large to send).
    pub dropped_replay_failed: u64,
    /// Spans from the spool directory the backend rejected in a partial
    /// success when replayed.
    pub dropped_replay_rejected: u64,
    /// Panics the exporter thread caught (an internal bug); each is also
    /// reported as `SPANGUARD_EVENT_EXPORTER_PANICKED`, and the thread goes
    /// on exporting.
    pub exporter_panics: u64,
    /// Files in the spool directory that could not be used (a FIFO, a link,
    /// another user's file, another version's dump, a torn file), renamed
    /// to `<name>.unreadable` and left unread.
    pub files_set_aside: u64,
    /// Values that found the payload pool used up and waited for chunks
    /// (`SPANGUARD_FULL_POLICY=wait`, the default), whole or not in the end.
    pub payload_waits: u64,
    /// Of those, values cut all the same (counted in `values_truncated`):
    /// the wait ran out (`full_wait_ms`), every chunk was held by open
    /// spans, or the tracer shut down. Many: raise
    /// `SPANGUARD_PAYLOAD_POOL_MIB`.
    pub payload_waits_cut: u64,
    /// Begins that found every slot taken and waited for the exporter to
    /// give one back (`SPANGUARD_FULL_POLICY=wait`, the default), a slot in
    /// the end or not. Many: the application records faster than the
    /// exporter exports (a burst longer than `OTEL_BSP_MAX_QUEUE_SIZE` allows for).
    pub slot_waits: u64,
    /// Nanoseconds those begins waited, in all.
    pub slot_wait_ns: u64,
    /// Spans still open when `spanguard_shutdown_for_signal` stopped the
    /// tracer, ended by it and exported marked `spanguard.interrupted`
    /// (with `spanguard.signal`): counted where their first trip took them
    /// (`spans_exported`...) too, and not in `spans_unended_at_shutdown`.
    /// Spans a fatal signal leaves open go to the crash dump instead, and
    /// count in the `recovered_spans` of the process that sends them.
    pub spans_interrupted_at_shutdown: u64,
    /// Shutdowns (`spanguard_shutdown`, the exit hook's, a signal's) that
    /// waited their timeout and the stuck exporter's grace (1.5 s) for the
    /// exporter thread to stop, and left it running: it was stuck where
    /// nothing of spanguard's cuts it short (the error callback blocked).
    /// Its spans went to the crash dump. A shutdown on the exporter thread
    /// itself (the error callback called `exit()`) leaves it at once and
    /// is not counted.
    pub exporter_waits_ran_out: u64,
    /// Times the signal watchdog waited its whole second
    /// (`HOST_HANDLER_WAIT`) for a host's handler, the one spanguard's
    /// handler replaced and delivers the signal to after the flush, with
    /// the tracers frozen meanwhile: the handler neither returned nor
    /// ended its thread, nor was found done (its `exit()`, its
    /// `siglongjmp` back into the program). Process-wide: every tracer
    /// reports the same count.
    pub host_handler_waits_ran_out: u64,
}

/// What the error callback reports (`spanguard_set_error_callback`). New
/// values are added as the library learns to tell more: a callback passes
/// one it does not know on (logs it with its message), never fails on it.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum spanguard_event {
    /// A batch failed for good; its spans are lost.
    BatchFailed = 1,
    /// A batch was written to the spool after its retries ran out.
    BatchSpooled = 2,
    /// The spool's cap removed older batches; their spans are lost.
    SpoolOverflow = 3,
    /// A spooled batch was delivered and deleted.
    BatchReplayed = 4,
    /// The backend accepted a batch but rejected some of its spans.
    SpansRejected = 5,
    /// The exporter thread caught an internal error (a panic); the spans it
    /// was working on are counted lost, and it goes on exporting.
    ExporterPanicked = 6,
    /// A file in the spool directory could not be used and was renamed to
    /// `<name>.unreadable`, unread (the message says which and why).
    FileSetAside = 7,
    /// The backend accepted every span of a request, with a warning (an
    /// OTLP partial success that rejects none and carries a message, such
    /// as "attributes over limit were truncated"): nothing is lost, and
    /// the message holds the backend's words. A warning is told in full
    /// the first time; later requests with the same one by their number of
    /// spans, at most once a minute, the rest at the stop.
    BackendWarning = 8,
    /// A setting was ignored: an OTEL_* or SPANGUARD_* variable whose value
    /// spanguard cannot use, or one of a name it does not read (a
    /// misspelling); the message names it and what applies instead. Told
    /// once a tracer, to the first callback set (the variables are read
    /// before one can be), at the exporter's next pass or its stop.
    SettingIgnored = 9,
    /// Spans were not recorded: every span slot was taken (counted in
    /// `dropped_buffer_full`). At most once a minute, with how many since
    /// it was last told; the rest at the stop.
    BufferFull = 10,
    /// What was sent holds less than what was recorded, cut to fit a
    /// limit: attribute values shortened or emptied (counted in
    /// `values_truncated`: a request's or line's size, a server's nesting
    /// depth, the payload pool's room) or resource attributes left out
    /// (counted in `attributes_dropped`). The message names the limit and
    /// what raises it. At most once a minute of each kind.
    ValuesCut = 11,
    /// Values (of a begin, an attribute, event, link or status message)
    /// found the payload pool used up and waited for chunks to come back
    /// (`SPANGUARD_FULL_POLICY=wait`, the default): each stalled its
    /// recording call up to `full_wait_ms` (counted in `payload_waits`;
    /// those cut all the same in `payload_waits_cut`, and told as
    /// `SPANGUARD_EVENT_VALUES_CUT`). Nothing is lost by the wait itself;
    /// the message says how many and what raises the pool. At most once a
    /// minute, with how many since it was last told; the rest at the stop.
    ValuesWaited = 12,
    /// A spool file's header said a number of spans its body does not
    /// hold (an older spanguard, a disk error, another writer): the file
    /// is used all the same, its spans counted as the body holds them.
    /// The message names the file and both numbers. At most once a minute,
    /// with how many files since; the rest at the stop.
    FileMiscounted = 13,
    /// Spans a dead process left in its crash dump or flight file were
    /// recovered and sent (or spooled) by this tracer (counted in
    /// `recovered_spans`). The message says how many, of which process,
    /// how it ended and the file: "3 spans of process 4242 (ended by signal
    /// 15, SIGTERM) recovered from /var/tmp/spanguard/x.sgdump". Once a
    /// file. What the tracer's first look finds, as it starts, is told to
    /// the first callback set (it cannot be set before the tracer exists).
    SpansRecovered = 14,
}

/// Called on the exporter thread (never on a thread recording spans, never
/// in a signal handler) for each event. `message` is NUL-terminated and valid
/// only during the call. The callback must not call `spanguard_flush`,
/// `spanguard_shutdown` or `spanguard_tracer_free` on the same tracer (they
/// wait for the exporter thread that is running the callback); it may call
/// `spanguard_set_error_callback`, e.g. to remove itself. A callback that
/// blocks holds up the export; a shutdown then returns
/// `SPANGUARD_RESULT_TIMEOUT` after its timeout plus 1.5 s and leaves that
/// thread running (see `spanguard_shutdown`).
pub type spanguard_error_callback = Option<
    unsafe extern "C" fn(
        event: spanguard_event,
        message: *const c_char,
        message_len: usize,
        user_data: *mut std::ffi::c_void,
    ),
>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::limits;

    // The header needs literal numbers; these keep them equal to the real ones.
    #[test]
    fn documented_limits_are_the_real_ones() {
        assert_eq!(SPANGUARD_MAX_NAME_BYTES as usize, limits::MAX_NAME_BYTES);
        assert_eq!(SPANGUARD_MAX_KEY_BYTES as usize, limits::MAX_KEY_BYTES);
        assert_eq!(SPANGUARD_MAX_SCOPE_BYTES as usize, limits::MAX_SCOPE_BYTES);
        assert_eq!(
            SPANGUARD_MAX_SCOPES_WITH_ATTRIBUTES as usize,
            limits::MAX_SCOPES_WITH_ATTRIBUTES
        );
        assert_eq!(
            SPANGUARD_MAX_TRACESTATE_BYTES as usize,
            limits::MAX_TRACESTATE_BYTES
        );
        let d = limits::SpanLimits::default();
        assert_eq!(SPANGUARD_DEFAULT_COUNT_LIMIT, limits::DEFAULT_COUNT_LIMIT);
        assert_eq!(SPANGUARD_MAX_COUNT_LIMIT, limits::MAX_COUNT_LIMIT);
        assert_eq!(SPANGUARD_MAX_ATTRIBUTES, d.attribute_count);
        assert_eq!(SPANGUARD_MAX_EVENTS, d.event_count);
        assert_eq!(SPANGUARD_MAX_LINKS, d.link_count);
        assert_eq!(SPANGUARD_NO_LENGTH_LIMIT, d.attribute_value_length);
        assert_eq!(SPANGUARD_DEFAULT_DEPTH_LIMIT, d.attribute_value_depth);
        assert_eq!(
            SPANGUARD_MAX_DEPTH_LIMIT,
            crate::span::any_value::MAX_DEPTH_LIMIT
        );
        assert_eq!(
            SPANGUARD_DEFAULT_PAYLOAD_POOL_MIB,
            crate::config::DEFAULT_PAYLOAD_POOL_MIB
        );
        // A string array element is what the record reads.
        assert_eq!(
            std::mem::size_of::<spanguard_string>(),
            std::mem::size_of::<crate::span::record::RawStr>()
        );
        // The attribute struct keeps the size and layout callers built
        // arrays of before bytes and arrays existed.
        assert_eq!(std::mem::size_of::<spanguard_attribute>(), 56);
        assert_eq!(std::mem::offset_of!(spanguard_attribute, string_value), 40);
        assert_eq!(
            SPANGUARD_TRACEPARENT_SIZE as usize,
            crate::span::traceparent::TRACEPARENT_LEN + 1
        );
    }
}
