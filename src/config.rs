//! The one place that decides a tracer's settings: defaults, then what the
//! caller passed, then (for `from_env`) the standard OTEL_* variables and our
//! own SPANGUARD_* ones.

use std::path::PathBuf;
use std::time::Duration;

use crate::span::printable::{left_out, printable_head};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    HttpProtobuf,
    HttpJson,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
}

/// What spanguard writes to stderr (OTEL_LOG_LEVEL): each level includes
/// the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    None,
    Error,
    Warn,
    Info,
    Debug,
}

impl LogLevel {
    /// The OTEL_LOG_LEVEL words; `None` for anything else.
    pub fn parse(text: &str) -> Option<LogLevel> {
        match text.trim().to_ascii_lowercase().as_str() {
            "none" | "off" => Some(LogLevel::None),
            "error" => Some(LogLevel::Error),
            "warn" | "warning" => Some(LogLevel::Warn),
            "info" => Some(LogLevel::Info),
            "debug" | "trace" | "all" => Some(LogLevel::Debug),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LogLevel::None => "none",
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

/// PEM files for TLS (OTEL_EXPORTER_OTLP_CERTIFICATE and the client pair);
/// None: the system's trust store, no client certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificates that verify the server.
    pub certificate: Option<PathBuf>,
    /// The client's certificate and its private key, for mutual TLS.
    pub client_certificate: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// The default largest request body, before compression: 1,000,000 bytes
/// is what the strictest common OTLP backend takes (New Relic: 10^6 bytes),
/// a quarter of gRPC's default 4 MiB message limit and a twentieth of the
/// Collector's default `max_request_body_size` (20 MiB).
pub(crate) const DEFAULT_MAX_REQUEST_BYTES: usize = 1_000_000;

/// The default longest line of the local sink, newline included: the
/// Collector's `otlpjsonfile` receiver splits longer lines (its default
/// `max_log_size`, 1 MiB) and drops both halves.
pub(crate) const DEFAULT_SINK_MAX_LINE_BYTES: usize = 1 << 20;
/// The longest sink line `sink_max_line_bytes` may allow: what `spanguard
/// show` and `tail` read (a longer line, and every span of its batch, they
/// skip), and the most a span alone is sent whole to a backend.
pub const MAX_SINK_LINE_BYTES: usize = 64 << 20;

/// What `begin` does when every span slot is taken, and what a setter
/// does when the payload pool is used up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FullPolicy {
    /// Give up at once; the span is counted as dropped, the value cut.
    Drop,
    /// Wake the exporter and wait up to `full_wait` for a slot (a chunk),
    /// while ended spans still hold some for the exporter to give back;
    /// then drop the span (cut the value) and count.
    Wait,
}

/// A resource attribute's value given at run time (a bridged SDK
/// provider's resource: `Tracer::set_resource`), typed as given.
#[derive(Clone, Debug, PartialEq)]
pub enum ResourceValue {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// Elements of one scalar type (never an array): what OpenTelemetry's
    /// SDKs detect as lists, `process.command_args` for one.
    Array(Vec<ResourceValue>),
    /// A complex value: an encoded OTLP `AnyValue` message (a map, a mixed
    /// or nested list), as span attributes take (`span::any_value`).
    /// `Tracer::set_resource` and `set_scope_attributes` refuse a message
    /// that is not well formed and cut one deeper than the tracer's value
    /// depth limit, as for span attributes.
    Any(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct TracerConfig {
    pub service_name: String,
    pub resource_attributes: Vec<(String, String)>,
    /// The full URL spans are POSTed to; None sends them to `sink_dir`.
    pub endpoint: Option<String>,
    pub headers: Vec<(String, String)>,
    pub tls: TlsFiles,
    /// The largest request body sent, before compression: bigger batches
    /// are split.
    pub max_request_bytes: usize,
    /// The longest line the local sink writes, newline included.
    pub sink_max_line_bytes: usize,
    /// What spanguard writes to stderr.
    pub log_level: LogLevel,
    pub protocol: Protocol,
    pub compression: Compression,
    /// Time allowed for one HTTP request; at least a millisecond.
    pub request_timeout: Duration,
    pub schedule_delay: Duration,
    /// Ended spans that may wait for export.
    pub max_queue_size: u32,
    pub max_export_batch_size: u32,
    /// Time allowed for one batch including its retries.
    pub export_timeout: Duration,
    /// Spans that may be open at once (beyond the queue).
    pub max_open_spans: u32,
    pub full_policy: FullPolicy,
    pub full_wait: Duration,
    pub disabled: bool,
    /// The embedded default sink's directory.
    pub sink_dir: PathBuf,
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    pub install_signal_handlers: bool,
    /// With `install_signal_handlers`, the crash handlers too (SIGSEGV,
    /// SIGBUS, SIGILL, SIGFPE, SIGABRT) and the alternate signal stacks
    /// they run on; off, the termination watchdog alone
    /// (`SPANGUARD_SIGNAL_HANDLERS=termination`, the Go binding's default:
    /// Go's runtime turns nil dereferences into panics a program may
    /// recover from, through SIGSEGV, and a crash handler over its own
    /// dumped the spans at each of them).
    pub install_crash_handlers: bool,
    pub flight_recorder: bool,
    /// Populate every span slot at start (SPANGUARD_PREFAULT_SLOTS): no
    /// span takes a page fault, for the slab's whole size resident from
    /// the start. Off by default: slots take memory as first used.
    pub prefault_slots: bool,
    /// How long the signal watchdog may flush before the process dies.
    pub signal_flush_timeout: Duration,
    /// The most CPU the exporter thread may use, in percent of one core,
    /// while the queue is less than half full (a fuller queue lifts the cap:
    /// throttling must never cost a span).
    pub exporter_max_cpu_percent: u32,
    /// The payload pool's size in MiB: what spans hold past their slots
    /// (long values, many attributes, events, links). Reserved at start,
    /// resident only as spans use it.
    pub payload_pool_mib: u32,
    /// OpenTelemetry's span limits (OTEL_*_LIMIT).
    pub limits: crate::span::limits::SpanLimits,
    /// Which spans are recorded and exported (OTEL_TRACES_SAMPLER).
    pub sampler: crate::span::sampler::Sampler,
    /// What the tracer found out about itself at start (a new
    /// service.instance.id, process.pid, host.name...): filled by
    /// `Tracer::new` afresh each time (so a forked child gets its own),
    /// never by callers. `resource_attributes` override it key by key.
    pub detected_resource: Vec<(String, String)>,
    /// Environment variables `apply_env` left out because their values
    /// were wrong, each with its reason: told on stderr as warnings when
    /// the tracer starts, and in `spanguard_tracer_new_with_error`'s
    /// message.
    pub ignored_env: Vec<ConfigError>,
    /// Variables set in the process's environment that spanguard does not
    /// read, whose names are one slip (a letter left out, added, changed,
    /// two swapped, or the case) from one it read: (the name set, the name
    /// read). `apply_process_env` fills it; told on stderr when the tracer
    /// starts, and by `spanguard check`: OTEL_EXPORTER_OTLP_ENDPONT sent
    /// every span to the local sink without a word.
    pub misspelt_env: Vec<(String, String)>,
    /// Variables the host program set as its own defaults, not the user
    /// (the config struct's `env_set_by_host`): `apply_process_env` reads
    /// them as unset.
    pub env_set_by_host: Vec<String>,
    /// Variables `_SPANGUARD_DISTRO_SET` named as opentelemetry-distro's
    /// (`distro_set`), each with the distro's value it still held:
    /// `apply_process_env` fills it and reads them as unset, as it reads
    /// `env_set_by_host`; `spanguard check` lists them.
    pub env_set_by_distro: Vec<(&'static str, &'static str)>,
}

/// Where spanguard keeps its state by default: `$XDG_STATE_HOME/spanguard`
/// (an absolute XDG_STATE_HOME), else `~/.local/state/spanguard` (an
/// absolute HOME), else (no HOME, as in some containers and services)
/// `$TMPDIR/spanguard-<uid>` (`/tmp` for a relative TMPDIR). A relative
/// path would be the working directory's, a different one at each start.
/// A shared temporary directory
/// lets another user make that directory first: a tracer refuses to start
/// when it (or any spool or sink directory) belongs to someone else, and
/// makes it private when it is ours (`buffer::files::ensure_private_dir`).
pub fn default_state_dir() -> PathBuf {
    state_dir_from(env_var_os("XDG_STATE_HOME"), env_var_os("HOME"), || {
        // std::env::temp_dir's TMPDIR, read through `env_var_os`.
        let temp = env_var_os("TMPDIR").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
        temp_dir_from(temp).join(format!("spanguard-{}", current_uid()))
    })
}

pub use crate::span::environment::{after_fork_in_child, var_os as env_var_os};

/// std's stack for a thread it is given no size for, on Unix.
const STD_THREAD_STACK: usize = 2 * 1024 * 1024;

/// The builder for one of the library's threads, named `name`, with the
/// stack std would give it (RUST_MIN_STACK, else 2 MiB) set explicitly.
/// Given no size, std reads RUST_MIN_STACK at a process's first such spawn,
/// through `std::env::var`, under its environment lock: in a forked child
/// whose parent had a thread in `std::env::set_var` at the fork (and had
/// not spawned such a thread before), that lock is held for good by a
/// thread the child does not have, and the child's first tracer waited
/// forever to start its exporter. Read here as `env_var_os` reads.
pub fn thread_builder(name: &str) -> std::thread::Builder {
    let stack = env_var_os("RUST_MIN_STACK")
        .and_then(|v| v.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or(STD_THREAD_STACK);
    std::thread::Builder::new()
        .name(name.to_string())
        .stack_size(stack)
}

/// `env_var_os` as `std::env::var` answers.
pub fn env_var(name: &str) -> Result<String, std::env::VarError> {
    match env_var_os(name) {
        None => Err(std::env::VarError::NotPresent),
        Some(v) => v.into_string().map_err(std::env::VarError::NotUnicode),
    }
}

/// `default_state_dir` from the values of XDG_STATE_HOME and HOME. A
/// relative XDG_STATE_HOME is ignored, as the XDG Base Directory
/// specification says it must be: it would put the spans under whatever
/// directory the process happens to start in (a shared one, another
/// user's), and a tracer started elsewhere, or `spanguard show`, would not
/// find them.
fn state_dir_from(
    xdg_state_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
    temp: impl FnOnce() -> PathBuf,
) -> PathBuf {
    if let Some(d) = xdg_state_home
        .map(PathBuf::from)
        .filter(|d| d.is_absolute())
    {
        return d.join("spanguard");
    }
    // A relative HOME as well: it would be the working directory's.
    if let Some(h) = home.map(PathBuf::from).filter(|d| d.is_absolute()) {
        return h.join(".local/state/spanguard");
    }
    temp()
}

/// The temporary directory `temp` (TMPDIR's, or /tmp) when it is
/// absolute, else /tmp.
fn temp_dir_from(temp: PathBuf) -> PathBuf {
    if temp.is_absolute() {
        temp
    } else {
        PathBuf::from("/tmp")
    }
}

fn current_uid() -> u32 {
    // SAFETY: getuid cannot fail and has no preconditions.
    unsafe { libc::getuid() }
}

/// The service name when none is given: "unknown_service:" and the
/// process's executable name (`/proc/self/comm`, the Name of
/// /proc/<pid>/status), as OpenTelemetry's resource conventions say an SDK
/// MUST fall back to ("unknown_service:bash"), so that the processes of a
/// host that set none are told apart; "unknown_service" when there is no
/// name to read.
fn default_service_name() -> String {
    match std::fs::read_to_string("/proc/self/comm") {
        Ok(name) if !name.trim().is_empty() => format!("{UNKNOWN_SERVICE}:{}", name.trim()),
        _ => UNKNOWN_SERVICE.to_string(),
    }
}

/// What every default service name starts with: a name that does says no
/// service was given.
const UNKNOWN_SERVICE: &str = "unknown_service";

impl Default for TracerConfig {
    fn default() -> Self {
        let state = default_state_dir();
        TracerConfig {
            service_name: default_service_name(),
            resource_attributes: Vec::new(),
            endpoint: None,
            headers: Vec::new(),
            tls: TlsFiles::default(),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            sink_max_line_bytes: DEFAULT_SINK_MAX_LINE_BYTES,
            log_level: LogLevel::Warn,
            protocol: Protocol::HttpProtobuf,
            compression: Compression::None,
            request_timeout: Duration::from_secs(10),
            schedule_delay: Duration::from_millis(5000),
            max_queue_size: 2048,
            max_export_batch_size: 512,
            export_timeout: Duration::from_secs(30),
            max_open_spans: 2048,
            full_policy: FullPolicy::Wait,
            full_wait: Duration::from_millis(200),
            disabled: false,
            sink_dir: state.join("spans"),
            spool_dir: state.join("spool"),
            spool_max_bytes: 64 << 20,
            install_signal_handlers: true,
            install_crash_handlers: true,
            flight_recorder: false,
            prefault_slots: false,
            signal_flush_timeout: Duration::from_secs(3),
            exporter_max_cpu_percent: 50,
            payload_pool_mib: DEFAULT_PAYLOAD_POOL_MIB,
            limits: crate::span::limits::SpanLimits::default(),
            sampler: crate::span::sampler::Sampler::default(),
            detected_resource: Vec::new(),
            ignored_env: Vec::new(),
            misspelt_env: Vec::new(),
            env_set_by_host: Vec::new(),
            env_set_by_distro: Vec::new(),
        }
    }
}

/// The payload pool's default size: 256 MiB holds 2,600 spans with a 100
/// KB prompt at once, or 30,000 with 8 KB, and costs nothing until used
/// (its free stack's 256 KiB aside). 64 MiB cut prompts in a Python agent
/// server with 400 LLM calls of 200 KB in flight.
pub const DEFAULT_PAYLOAD_POOL_MIB: u32 = 256;
/// The largest payload pool: chunk numbers must fit 32 bits.
pub const MAX_PAYLOAD_POOL_MIB: u32 = 1 << 20;

/// A setting that could not be read.
/// A setting that could not be read: which variable or config field, the
/// value it had, and what is wrong with it. `Display` gives the sentence a
/// user sees, e.g. `OTEL_EXPORTER_OTLP_PROTOCOL=grpc: not http/protobuf or
/// http/json (...)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// An environment variable (`OTEL_BSP_MAX_QUEUE_SIZE`) or a config field
    /// (`max_queue_size`, named with its variable where it has one).
    pub variable: String,
    /// The value as given, for the message; None when there is none to show
    /// or it may hold a secret (headers).
    pub value: Option<String>,
    pub reason: String,
}

impl ConfigError {
    /// The sentence for a variable `apply_env` ignored, as the exporter's
    /// warning, the command line and `spanguard_tracer_new_with_error` say it.
    pub fn as_ignored(&self) -> String {
        format!("{self}; ignored")
    }

    /// An error about `variable`, showing `value` unless it may be a secret.
    pub fn new(variable: &str, value: Option<&str>, reason: &str) -> ConfigError {
        ConfigError {
            variable: variable.to_string(),
            value: value.map(|v| shown_value(variable, v)),
            reason: reason.to_string(),
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={}: {}", self.variable, v, self.reason),
            None => write!(f, "{}: {}", self.variable, self.reason),
        }
    }
}

/// How a bad value appears in a message: header values never (they hold API
/// keys), a URL without its user:password, escaped as every message of
/// spanguard's is (`span::printable`: a control character, a bidi control,
/// an invisible character), and at most 200 characters, then how many
/// bytes were left out.
fn shown_value(variable: &str, value: &str) -> String {
    const MOST: usize = 200;
    if variable.to_ascii_lowercase().contains("headers") {
        return "(not shown: it may hold a secret)".to_string();
    }
    let mut v = value.trim().to_string();
    let authority = match v.find("://") {
        Some(scheme_end) => Some(scheme_end + 3),
        // An endpoint whose scheme was left out or mistyped
        // (`user:pass@host:4318`, `http:/user:pass@host`) carries its
        // password all the same: it was shown as it is.
        None if variable.to_ascii_lowercase().contains("endpoint") => v
            .find('@')
            .map(|at| v[..at].rfind('/').map_or(0, |slash| slash + 1)),
        None => None,
    };
    if let Some(start) = authority {
        let rest = &v[start..];
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            v = format!("{}***@{}", &v[..start], &rest[at + 1..]);
        }
    }
    let (shown, left) = printable_head(v.as_bytes(), MOST);
    let mut shown = if shown.is_empty() || shown.contains(' ') {
        format!("\"{shown}\"")
    } else {
        shown
    };
    if left > 0 {
        shown.push_str(&left_out(left));
    }
    shown
}

/// The environment variable that sets a config field, for messages about a
/// field that either may have set.
fn variable_of(field: &str) -> Option<&'static str> {
    Some(match field {
        "request_timeout" => "OTEL_EXPORTER_OTLP_TIMEOUT",
        "max_queue_size" => "OTEL_BSP_MAX_QUEUE_SIZE",
        "max_export_batch_size" => "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        "max_open_spans" => "SPANGUARD_MAX_OPEN_SPANS",
        "exporter_max_cpu_percent" => "SPANGUARD_EXPORTER_MAX_CPU_PERCENT",
        "payload_pool_mib" => "SPANGUARD_PAYLOAD_POOL_MIB",
        "attribute_count_limit" => "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
        "event_count_limit" => "OTEL_SPAN_EVENT_COUNT_LIMIT",
        "link_count_limit" => "OTEL_SPAN_LINK_COUNT_LIMIT",
        "event_attribute_count_limit" => "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
        "link_attribute_count_limit" => "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
        "endpoint" => "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "headers" => "OTEL_EXPORTER_OTLP_HEADERS",
        "resource_attributes" => "OTEL_RESOURCE_ATTRIBUTES",
        "certificate" => "OTEL_EXPORTER_OTLP_CERTIFICATE",
        "client_certificate" => "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        "client_key" => "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        "max_request_bytes" => "SPANGUARD_MAX_REQUEST_BYTES",
        "sink_max_line_bytes" => "SPANGUARD_SINK_MAX_LINE_BYTES",
        "log_level" => "OTEL_LOG_LEVEL",
        _ => return None,
    })
}

impl TracerConfig {
    /// The number of span slots to preallocate.
    pub fn slot_count(&self) -> u32 {
        self.max_queue_size.saturating_add(self.max_open_spans)
    }

    /// Every resource attribute but service.name, in order: the detected
    /// ones, each replaced in place by a configured one with its key, then
    /// the other configured ones (a key given twice: the last wins).
    pub fn resource(&self) -> Vec<(String, String)> {
        let mut out = self.detected_resource.clone();
        for (k, v) in &self.resource_attributes {
            match out.iter_mut().find(|(existing, _)| existing == k) {
                Some(slot) => slot.1 = v.clone(),
                None => out.push((k.clone(), v.clone())),
            }
        }
        out
    }

    /// The largest batch that can ever wait in the queue: the batch size,
    /// capped at the queue size as the OTel batch processor specifies. The
    /// exporter's wake-up threshold never exceeds it, or a batch could
    /// never fill.
    pub fn batch_ceiling(&self) -> u32 {
        self.max_export_batch_size.min(self.max_queue_size)
    }

    /// Checks ranges that would make the tracer unusable. Errors name the
    /// config field and, where one sets it, its environment variable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &str, value: &str, reason: &str| {
            let variable = match variable_of(field) {
                Some(var) => format!("{field} ({var})"),
                None => field.to_string(),
            };
            Err(ConfigError::new(&variable, Some(value), reason))
        };
        if self.max_queue_size == 0 {
            return bad("max_queue_size", "0", "must be at least 1");
        }
        if self.max_export_batch_size == 0 {
            return bad("max_export_batch_size", "0", "must be at least 1");
        }
        if self.request_timeout.is_zero() {
            // curl's "never": see apply_env.
            return bad(
                "request_timeout",
                "0",
                "must be at least 1 ms (0 would let a request that is never answered hang the exporter)",
            );
        }
        if !(1..=100).contains(&self.exporter_max_cpu_percent) {
            return bad(
                "exporter_max_cpu_percent",
                &self.exporter_max_cpu_percent.to_string(),
                "must be between 1 and 100",
            );
        }
        if self.slot_count() >= crate::span::limits::MAX_SLOTS {
            return bad(
                "max_queue_size",
                &self.max_queue_size.to_string(),
                &format!(
                    "the queue plus max_open_spans (SPANGUARD_MAX_OPEN_SPANS={}) must stay below {}",
                    self.max_open_spans,
                    crate::span::limits::MAX_SLOTS
                ),
            );
        }
        if self.payload_pool_mib > MAX_PAYLOAD_POOL_MIB {
            return bad(
                "payload_pool_mib",
                &self.payload_pool_mib.to_string(),
                "must be at most 1048576 (1 TiB)",
            );
        }
        let l = &self.limits;
        for (name, v) in [
            ("attribute_count_limit", l.attribute_count),
            ("event_count_limit", l.event_count),
            ("link_count_limit", l.link_count),
            ("event_attribute_count_limit", l.event_attribute_count),
            ("link_attribute_count_limit", l.link_attribute_count),
        ] {
            if v > crate::span::limits::MAX_COUNT_LIMIT {
                return bad(name, &v.to_string(), "must be at most 32767");
            }
        }
        let depth = l.attribute_value_depth;
        if !(1..=crate::span::any_value::MAX_DEPTH_LIMIT).contains(&depth) {
            return bad(
                "value_depth_limit",
                &depth.to_string(),
                "must be 1 to 128 (SPANGUARD_MAX_DEPTH_LIMIT)",
            );
        }
        if let Some(e) = &self.endpoint
            && !is_endpoint_url(e)
        {
            return bad("endpoint", e, ENDPOINT_RULE);
        }
        if let Err(reason) = check_headers(&self.headers) {
            // The value is never shown: it may hold an API key.
            return bad("headers", "", &reason);
        }
        for (field, path) in [
            ("certificate", &self.tls.certificate),
            ("client_certificate", &self.tls.client_certificate),
            ("client_key", &self.tls.client_key),
        ] {
            if let Some(p) = path
                && !p.is_file()
            {
                return bad(field, &p.display().to_string(), "not a readable file");
            }
        }
        if self.tls.client_certificate.is_some() != self.tls.client_key.is_some() {
            let given = if self.tls.client_certificate.is_some() {
                "a certificate without client_key"
            } else {
                "a client_key without a certificate"
            };
            return bad(
                "client_certificate",
                given,
                "a client certificate and its key go together",
            );
        }
        // Room for a request's envelope and at least one small span.
        if self.max_request_bytes < MIN_REQUEST_BYTES {
            return bad(
                "max_request_bytes",
                &self.max_request_bytes.to_string(),
                "must be at least 4096",
            );
        }
        if self.sink_max_line_bytes < MIN_REQUEST_BYTES {
            return bad(
                "sink_max_line_bytes",
                &self.sink_max_line_bytes.to_string(),
                "must be at least 4096",
            );
        }
        if self.sink_max_line_bytes > MAX_SINK_LINE_BYTES {
            return bad(
                "sink_max_line_bytes",
                &self.sink_max_line_bytes.to_string(),
                &format!(
                    "must be at most {MAX_SINK_LINE_BYTES} (64 MiB, the longest line spanguard show and tail read)"
                ),
            );
        }
        Ok(())
    }

    /// Applies the environment on top of `self`, as `lookup` reports it (so
    /// tests need not touch the process environment).
    ///
    /// A variable whose value is wrong is left out, as if unset, and noted
    /// in `ignored_env` (named, with its value and what is wrong): the
    /// OpenTelemetry SDK rules say an invalid or unknown value is warned
    /// about and ignored, never fatal, so that a process configured for the
    /// official SDKs (OTEL_EXPORTER_OTLP_PROTOCOL=grpc, a sampler we lack)
    /// still starts and still records. Only what the caller's own struct
    /// got wrong is an error.
    pub fn apply_env(
        &mut self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        // The caller's settings, checked first: their errors are theirs.
        self.validate()?;
        let given = self.clone();
        let mut ignored: Vec<ConfigError> = Vec::new();
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        // The value is looked up again for the message, so every error says
        // what it was without each caller passing it.
        let err =
            |name: &str, reason: &str| ConfigError::new(name, lookup(name).as_deref(), reason);
        let millis = |name: &str| -> Result<Option<Duration>, ConfigError> {
            match get(name) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map(|ms| Some(Duration::from_millis(ms)))
                    .map_err(|_| err(name, "not a whole number of milliseconds")),
            }
        };
        let count = |name: &str, least: u32, most: u32| -> Result<Option<u32>, ConfigError> {
            match get(name) {
                None => Ok(None),
                Some(v) => match v.trim().parse::<u32>() {
                    Ok(n) if n < least => Err(err(name, &format!("must be at least {least}"))),
                    Ok(n) if n > most => Err(err(name, &format!("must be at most {most}"))),
                    Ok(n) => Ok(Some(n)),
                    Err(_) => Err(err(name, "not a whole number")),
                },
            }
        };
        // Our own switches: true/false or 1/0.
        let switch = |name: &str| -> Result<Option<bool>, ConfigError> {
            match get(name).map(|v| v.trim().to_ascii_lowercase()) {
                None => Ok(None),
                Some(v) if v == "true" || v == "1" => Ok(Some(true)),
                Some(v) if v == "false" || v == "0" => Ok(Some(false)),
                Some(_) => Err(err(name, "not true or false")),
            }
        };
        let directory = |name: &str| -> Result<Option<PathBuf>, ConfigError> {
            match get(name) {
                None => Ok(None),
                Some(d) => {
                    let path = PathBuf::from(d);
                    if path.exists() && !path.is_dir() {
                        return Err(err(name, "exists and is not a directory"));
                    }
                    Ok(Some(path))
                }
            }
        };
        // A checked value, or None with the error noted.
        fn kept<T>(ignored: &mut Vec<ConfigError>, r: Result<Option<T>, ConfigError>) -> Option<T> {
            r.unwrap_or_else(|e| {
                ignored.push(e);
                None
            })
        }
        // The traces form wins over the generic one; one that is wrong is
        // noted and, as if unset, leaves the generic one to apply. `take`
        // gets the variable's name and value.
        fn traces_or_generic<T>(
            [traces, generic]: [&'static str; 2],
            get: &dyn Fn(&str) -> Option<String>,
            ignored: &mut Vec<ConfigError>,
            take: &dyn Fn(&'static str, &str) -> Result<T, ConfigError>,
        ) -> Option<(&'static str, T)> {
            for name in [traces, generic] {
                if let Some(v) = get(name) {
                    match take(name, &v) {
                        Ok(t) => return Some((name, t)),
                        Err(e) => ignored.push(e),
                    }
                }
            }
            None
        }

        // An OpenTelemetry boolean: only "true" (any case) is true; anything
        // else is false, and a value other than "false" is warned about.
        if let Some(v) = get("OTEL_SDK_DISABLED") {
            let v = v.trim().to_ascii_lowercase();
            self.disabled = v == "true";
            if v != "true" && v != "false" {
                ignored.push(err(
                    "OTEL_SDK_DISABLED",
                    "not true or false (taken as false: only true disables)",
                ));
            }
        }
        // Not said of a tracer that records nothing anyway.
        if let Some(v) = get("OTEL_TRACES_EXPORTER")
            && let Some(reason) = traces_exporter_note(&v)
            && !self.disabled
        {
            ignored.push(err("OTEL_TRACES_EXPORTER", reason));
        }
        if let Some(name) = get("OTEL_TRACES_SAMPLER") {
            let arg = get("OTEL_TRACES_SAMPLER_ARG");
            use crate::span::sampler::Sampler;
            match Sampler::from_names(&name, arg.as_deref()) {
                Ok(s) => self.sampler = s,
                // A bad argument: the sampler as if the argument were unset.
                Err(reason) if reason.starts_with("OTEL_TRACES_SAMPLER_ARG") => {
                    ignored.push(sampler_error(&reason));
                    if let Ok(s) = Sampler::from_names(&name, None) {
                        self.sampler = s;
                    }
                }
                Err(reason) => ignored.push(sampler_error(&reason)),
            }
        }
        // Resource values given in code win over the environment's (the
        // resource SDK merges the environment's as the secondary resource).
        // A default name (unknown_service...) is taken as not given; that
        // test reads no file, where comparing with default_service_name()
        // would read /proc/self/comm a second time.
        let service_name_given = !self.service_name.starts_with(UNKNOWN_SERVICE)
            || self
                .resource_attributes
                .iter()
                .any(|(k, _)| k == "service.name");
        // process.runtime.* comes from the bindings (the runtime they run
        // in), detected like host.name, not chosen by the user.
        let given_in_code = |key: &str| {
            !key.starts_with("process.runtime.")
                && given.resource_attributes.iter().any(|(g, _)| g == key)
        };
        if let Some(attrs) = get("OTEL_RESOURCE_ATTRIBUTES") {
            match parse_resource_attributes(&attrs) {
                Ok(parsed) => {
                    for (k, v) in parsed {
                        if k == "service.name" {
                            if !service_name_given {
                                self.service_name = v;
                            }
                        } else if !given_in_code(&k) {
                            self.resource_attributes
                                .retain(|(existing, _)| *existing != k);
                            self.resource_attributes.push((k, v));
                        }
                    }
                }
                // The whole value is discarded, as the resource SDK says.
                Err(reason) => ignored.push(err("OTEL_RESOURCE_ATTRIBUTES", &reason)),
            }
        }
        // OTEL_SERVICE_NAME wins over service.name in the resource attributes.
        if let Some(name) = get("OTEL_SERVICE_NAME")
            && !service_name_given
        {
            self.service_name = name.trim().to_string();
        }
        let endpoint = traces_or_generic(
            [
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ],
            &get,
            &mut ignored,
            &|name, url| {
                let url = url.trim();
                if name == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" {
                    return if is_endpoint_url(url) {
                        Ok(url.to_string())
                    } else {
                        Err(err(name, ENDPOINT_RULE))
                    };
                }
                // The generic endpoint is a base URL: the signal's path is
                // appended.
                let base = url.trim_end_matches('/');
                if base != "discard:" && is_endpoint_url(base) {
                    Ok(format!("{base}/v1/traces"))
                } else {
                    Err(err(
                        name,
                        "not a URL starting with http:// or https://, without spaces or control characters",
                    ))
                }
            },
        );
        if let Some((_, url)) = endpoint {
            self.endpoint = Some(url);
        }
        let headers = traces_or_generic(
            [
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                "OTEL_EXPORTER_OTLP_HEADERS",
            ],
            &get,
            &mut ignored,
            &|name, h| {
                let (headers, wrong) = headers_from_env(h);
                if headers.is_empty() && !wrong.is_empty() {
                    return Err(err(name, &format!("{} (no entry left)", wrong.join("; "))));
                }
                Ok((headers, wrong))
            },
        );
        if let Some((name, (headers, wrong))) = headers {
            for reason in wrong {
                ignored.push(err(
                    name,
                    // as_ignored adds "; ignored", which then reads as
                    // said of this entry alone.
                    &format!("the other entries apply; {reason}"),
                ));
            }
            self.headers = headers;
        }
        // The variables that named the client pair's halves.
        let mut pair_names: [Option<&str>; 2] = [None, None];
        for (traces, generic, slot) in [
            (
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                &mut self.tls.certificate,
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                &mut self.tls.client_certificate,
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
                "OTEL_EXPORTER_OTLP_CLIENT_KEY",
                &mut self.tls.client_key,
            ),
        ] {
            let file = traces_or_generic([traces, generic], &get, &mut ignored, &|name, path| {
                let path = PathBuf::from(path.trim());
                if path.is_file() {
                    Ok(path)
                } else {
                    Err(err(name, "not a readable file"))
                }
            });
            if let Some((name, path)) = file {
                *slot = Some(path);
                if generic.ends_with("CLIENT_CERTIFICATE") {
                    pair_names[0] = Some(name);
                } else if generic.ends_with("CLIENT_KEY") {
                    pair_names[1] = Some(name);
                }
            }
        }
        // A client certificate and its key go together: half a pair from
        // the environment is left out with its half.
        if self.tls.client_certificate.is_some() != self.tls.client_key.is_some() {
            let reason = if self.tls.client_certificate.is_some() {
                "a client certificate without its key (OTEL_EXPORTER_OTLP_CLIENT_KEY)"
            } else {
                "a client key without its certificate (OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE)"
            };
            // The environment set one half at least (the struct was valid).
            let name = pair_names[0]
                .or(pair_names[1])
                .unwrap_or("OTEL_EXPORTER_OTLP_CLIENT_KEY");
            ignored.push(err(name, reason));
            self.tls.client_certificate = given.tls.client_certificate.clone();
            self.tls.client_key = given.tls.client_key.clone();
        }
        if let Some(level) = get("OTEL_LOG_LEVEL") {
            match LogLevel::parse(&level) {
                Some(l) => self.log_level = l,
                None => ignored.push(err(
                    "OTEL_LOG_LEVEL",
                    "not one of none, error, warn, info, debug",
                )),
            }
        }
        let sink_range = format!("not a whole number of bytes from 4096 to {MAX_SINK_LINE_BYTES}");
        for (name, slot, most, reason) in [
            (
                "SPANGUARD_MAX_REQUEST_BYTES",
                &mut self.max_request_bytes,
                usize::MAX,
                "not a whole number of bytes, at least 4096",
            ),
            (
                "SPANGUARD_SINK_MAX_LINE_BYTES",
                &mut self.sink_max_line_bytes,
                MAX_SINK_LINE_BYTES,
                sink_range.as_str(),
            ),
        ] {
            if let Some(n) = get(name) {
                match n
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| (MIN_REQUEST_BYTES..=most).contains(&n))
                {
                    Some(n) => *slot = n,
                    None => ignored.push(err(name, reason)),
                }
            }
        }
        let compression = traces_or_generic(
            [
                "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
                "OTEL_EXPORTER_OTLP_COMPRESSION",
            ],
            &get,
            &mut ignored,
            // Enum values in any case (the SDK configuration spec).
            &|name, c| match c.trim().to_ascii_lowercase().as_str() {
                "gzip" => Ok(Compression::Gzip),
                "none" => Ok(Compression::None),
                _ => Err(err(name, "not gzip or none")),
            },
        );
        if let Some((_, c)) = compression {
            self.compression = c;
        }
        // What is sent instead of gRPC, and whether the endpoint is the
        // gRPC port: a user who set grpc with port 4317 expected gRPC, and
        // spanguard's HTTP requests to a gRPC server fail.
        let sent = match self.protocol {
            Protocol::HttpProtobuf => "http/protobuf",
            Protocol::HttpJson => "http/json",
        };
        let grpc_port = self.endpoint.as_deref().and_then(url_port) == Some(4317);
        let protocol = traces_or_generic(
            [
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ],
            &get,
            &mut ignored,
            &|name, p| match p.trim().to_ascii_lowercase().as_str() {
                "http/protobuf" => Ok(Protocol::HttpProtobuf),
                "http/json" => Ok(Protocol::HttpJson),
                "grpc" => Err(err(
                    name,
                    &format!(
                        "not http/protobuf or http/json (grpc is not supported: spanguard \
                         sends OTLP over HTTP, {sent}; a Collector takes both on port 4318{})",
                        if grpc_port {
                            ", and its gRPC port 4317, the endpoint's, answers no HTTP: \
                             set the endpoint's port to 4318"
                        } else {
                            ""
                        }
                    ),
                )),
                _ => Err(err(name, "not http/protobuf or http/json")),
            },
        );
        if let Some((_, p)) = protocol {
            self.protocol = p;
        }
        // A request timeout of 0 is curl's "never": one request to a
        // backend that accepts the connection and never answers would hold
        // the exporter for good (nothing spooled, every later span dropped
        // once the slots fill). The struct's 0 means the default; here it
        // is a value to ignore.
        let request_millis = |name: &str| match millis(name) {
            Ok(Some(t)) if t.is_zero() => Err(err(
                name,
                "must be at least 1 (0 would let a request that is never answered hang the exporter)",
            )),
            other => other,
        };
        let traces_timeout = kept(
            &mut ignored,
            request_millis("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"),
        );
        let timeout = kept(&mut ignored, request_millis("OTEL_EXPORTER_OTLP_TIMEOUT"));
        if let Some(t) = traces_timeout.or(timeout) {
            self.request_timeout = t;
        }
        if let Some(t) = kept(&mut ignored, millis("OTEL_BSP_SCHEDULE_DELAY")) {
            self.schedule_delay = t;
        }
        let below_slots = crate::span::limits::MAX_SLOTS - 1;
        if let Some(n) = kept(
            &mut ignored,
            count("OTEL_BSP_MAX_QUEUE_SIZE", 1, below_slots),
        ) {
            self.max_queue_size = n;
        }
        if let Some(n) = kept(
            &mut ignored,
            count("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 1, u32::MAX),
        ) {
            self.max_export_batch_size = n;
        }
        if let Some(t) = kept(&mut ignored, millis("OTEL_BSP_EXPORT_TIMEOUT")) {
            self.export_timeout = t;
        }
        if let Some(d) = kept(&mut ignored, directory("SPANGUARD_SINK_DIR")) {
            self.sink_dir = d;
        }
        if let Some(d) = kept(&mut ignored, directory("SPANGUARD_SPOOL_DIR")) {
            self.spool_dir = d;
        }
        if let Some(n) = get("SPANGUARD_SPOOL_MAX_BYTES") {
            match n.trim().parse() {
                Ok(n) => self.spool_max_bytes = n,
                Err(_) => ignored.push(err(
                    "SPANGUARD_SPOOL_MAX_BYTES",
                    "not a whole number of bytes (this variable is in bytes, no unit; \
                     the config struct's spool_max_mib is in MiB)",
                )),
            }
        }
        let open_spans = kept(
            &mut ignored,
            count("SPANGUARD_MAX_OPEN_SPANS", 0, below_slots),
        );
        if let Some(n) = open_spans {
            self.max_open_spans = n;
        }
        // Each is below the limit alone; together they must be too.
        if self.slot_count() >= crate::span::limits::MAX_SLOTS {
            let name = if open_spans.is_some() {
                "SPANGUARD_MAX_OPEN_SPANS"
            } else {
                "OTEL_BSP_MAX_QUEUE_SIZE"
            };
            ignored.push(err(
                name,
                &format!(
                    "with max_queue_size {} and max_open_spans {} it makes {} span slots, not below {}",
                    self.max_queue_size,
                    self.max_open_spans,
                    u64::from(self.max_queue_size) + u64::from(self.max_open_spans),
                    crate::span::limits::MAX_SLOTS
                ),
            ));
            self.max_queue_size = given.max_queue_size;
            self.max_open_spans = given.max_open_spans;
        }
        if let Some(p) = get("SPANGUARD_FULL_POLICY") {
            match p.trim() {
                "drop" => self.full_policy = FullPolicy::Drop,
                "wait" => self.full_policy = FullPolicy::Wait,
                _ => ignored.push(err("SPANGUARD_FULL_POLICY", "not drop or wait")),
            }
        }
        if let Some(t) = kept(&mut ignored, millis("SPANGUARD_FULL_WAIT_MS")) {
            self.full_wait = t;
        }
        // true, false, or termination: the watchdog without the crash
        // handlers.
        let name = "SPANGUARD_SIGNAL_HANDLERS";
        let handlers = match get(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(None),
            Some(v) if v == "true" || v == "1" => Ok(Some((true, true))),
            Some(v) if v == "termination" || v == "2" => Ok(Some((true, false))),
            Some(v) if v == "false" || v == "0" => Ok(Some((false, false))),
            Some(_) => Err(err(name, "not true, false or termination")),
        };
        if let Some((signals, crash)) = kept(&mut ignored, handlers) {
            self.install_signal_handlers = signals;
            self.install_crash_handlers = crash;
        }
        if let Some(v) = kept(&mut ignored, switch("SPANGUARD_FLIGHT_RECORDER")) {
            self.flight_recorder = v;
        }
        if let Some(v) = kept(&mut ignored, switch("SPANGUARD_PREFAULT_SLOTS")) {
            self.prefault_slots = v;
        }
        if let Some(n) = kept(
            &mut ignored,
            count("SPANGUARD_EXPORTER_MAX_CPU_PERCENT", 1, 100),
        ) {
            self.exporter_max_cpu_percent = n;
        }
        if let Some(t) = kept(&mut ignored, millis("SPANGUARD_SIGNAL_FLUSH_TIMEOUT_MS")) {
            self.signal_flush_timeout = t;
        }
        if let Some(n) = kept(
            &mut ignored,
            count("SPANGUARD_PAYLOAD_POOL_MIB", 0, MAX_PAYLOAD_POOL_MIB),
        ) {
            self.payload_pool_mib = n;
        }
        // The span-specific variable wins over the general one (SDK spec).
        let most = crate::span::limits::MAX_COUNT_LIMIT;
        let mut limit = |span: &str, general: &str, most: u32| {
            let specific = kept(&mut ignored, count(span, 0, most));
            let general = kept(&mut ignored, count(general, 0, most));
            specific.or(general)
        };
        if let Some(n) = limit(
            "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
            "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
            u32::MAX,
        ) {
            self.limits.attribute_value_length = n;
        }
        if let Some(n) = limit(
            "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
            "OTEL_ATTRIBUTE_COUNT_LIMIT",
            most,
        ) {
            self.limits.attribute_count = n;
        }
        // OpenTelemetry names no variable for it (only the declarative
        // configuration's attribute_value_depth_limit): spanguard's own.
        if let Some(n) = kept(
            &mut ignored,
            count(
                "SPANGUARD_ATTRIBUTE_VALUE_DEPTH_LIMIT",
                1,
                crate::span::any_value::MAX_DEPTH_LIMIT,
            ),
        ) {
            self.limits.attribute_value_depth = n;
        }
        for (name, slot) in [
            ("OTEL_SPAN_EVENT_COUNT_LIMIT", &mut self.limits.event_count),
            ("OTEL_SPAN_LINK_COUNT_LIMIT", &mut self.limits.link_count),
            (
                "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
                &mut self.limits.event_attribute_count,
            ),
            (
                "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
                &mut self.limits.link_attribute_count,
            ),
        ] {
            if let Some(n) = kept(&mut ignored, count(name, 0, most)) {
                *slot = n;
            }
        }
        // Read by the clock itself, process-wide (any other value leaves the
        // TSC in use); checked here so that a typo is reported.
        if let Some(c) = get("SPANGUARD_CLOCK")
            && c.trim() != "system"
        {
            ignored.push(err(
                "SPANGUARD_CLOCK",
                "not system (the only value; unset, the TSC is used where the kernel's clocksource is)",
            ));
        }
        // Every variable was checked alone and the pairs together, so this
        // holds; should a rule be added to `validate` and not here, the
        // environment is left out whole rather than the tracer not made.
        if let Err(e) = self.validate() {
            *self = given;
            ignored.push(ConfigError {
                reason: format!("{} (with it every variable of the environment)", e.reason),
                ..e
            });
        }
        self.ignored_env.extend(ignored);
        Ok(())
    }

    /// `apply_env` with this process's environment. A variable whose value
    /// is not UTF-8 is ignored like any invalid value (it cannot be what
    /// was meant). What `env_set_by_host` names, and what
    /// `_SPANGUARD_DISTRO_SET` names as opentelemetry-distro's
    /// (`distro_set`, kept in `env_set_by_distro`), is read as unset.
    pub fn apply_process_env(&mut self) -> Result<(), ConfigError> {
        let not_unicode = std::cell::RefCell::new(Vec::new());
        let asked = std::cell::RefCell::new(Vec::new());
        // A Node tool, a Go helper or a C program an instrumented Python
        // agent started inherits the distro's grpc with the wheel's marker:
        // read here, every binding and the CLI take it as the wheel does,
        // and none warns of a setting nobody made.
        self.env_set_by_distro = distro_set(|n| env_var(n).ok());
        let set_by_host = self.env_set_by_host.clone();
        let set_by_distro = self.env_set_by_distro.clone();
        let result = self.apply_env(&|name| {
            asked.borrow_mut().push(name.to_string());
            if set_by_host.iter().any(|n| n == name)
                || set_by_distro.iter().any(|(n, _)| *n == name)
            {
                return None;
            }
            match env_var(name) {
                Ok(v) => Some(v),
                Err(std::env::VarError::NotPresent) => None,
                Err(std::env::VarError::NotUnicode(_)) => {
                    let mut seen = not_unicode.borrow_mut();
                    if !seen.iter().any(|e: &ConfigError| e.variable == name) {
                        seen.push(ConfigError::new(name, None, "not valid UTF-8"));
                    }
                    None
                }
            }
        });
        self.ignored_env.extend(not_unicode.into_inner());
        let set = crate::span::environment::names()
            .into_iter()
            .map(|n| n.to_string_lossy().into_owned());
        self.misspelt_env = misspelt_variables(set, &asked.into_inner());
        result
    }
}

/// Where the Python package names, for the processes an instrumented
/// program starts (a subprocess, a multiprocessing worker, a Node tool, a
/// Go helper), the variables opentelemetry-distro set rather than the user:
/// `NAME=value,...`. The wheel writes it (it is the one that sees the distro
/// run: bindings/python/python/spanguard/__init__.py); `apply_process_env`
/// reads it. Not SPANGUARD_*: `spanguard check` would call it misspelt.
pub const DISTRO_SET_VARIABLE: &str = "_SPANGUARD_DISTRO_SET";

/// What opentelemetry-distro sets when unset (`OpenTelemetryDistro._configure`,
/// which `opentelemetry-instrument` runs before the exporters are made): the
/// protocol of its own OTLP exporter, not the user's choice. Only these
/// names, at these values, are ever taken as the distro's; the wheel reads
/// this table from its extension module (`_native.DISTRO_DEFAULTS`). (The
/// distro also sets OTEL_TRACES_EXPORTER, OTEL_METRICS_EXPORTER and
/// OTEL_LOGS_EXPORTER to otlp: spanguard reads only the first, and says
/// nothing of otlp.)
pub const DISTRO_DEFAULTS: &[(&str, &str)] = &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")];

/// The variables `DISTRO_SET_VARIABLE` (as `get` reads the environment)
/// names as the distro's, each with its value: a name of `DISTRO_DEFAULTS`
/// named there with its default, while the variable still holds that
/// value (a value set since, by the user or a parent, is theirs). An entry
/// is `NAME=value` split at the first '=', blanks around it dropped; the
/// last entry of a name counts (as the wheel's dict keeps it); anything
/// else is passed over.
pub fn distro_set(get: impl Fn(&str) -> Option<String>) -> Vec<(&'static str, &'static str)> {
    let Some(marked) = get(DISTRO_SET_VARIABLE) else {
        return Vec::new();
    };
    DISTRO_DEFAULTS
        .iter()
        .copied()
        .filter(|(name, default)| {
            marked
                .rsplit(',')
                .filter_map(|entry| entry.trim().split_once('='))
                .find(|(n, _)| n == name)
                .is_some_and(|(_, v)| v == *default)
                && get(name).as_deref() == Some(*default)
        })
        .collect()
}

/// Of the variable names `set`, those of ours or OpenTelemetry's
/// (OTEL_*, SPANGUARD_*, in any case) that are not in `asked` and are one
/// slip from a name in it, each with that name: (set, asked).
pub fn misspelt_variables(
    set: impl Iterator<Item = String>,
    asked: &[String],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for name in set {
        let upper = name.to_ascii_uppercase();
        if !(upper.starts_with("OTEL_") || upper.starts_with("SPANGUARD_"))
            || asked.contains(&name)
            || out.iter().any(|(n, _)| *n == name)
        {
            continue;
        }
        if let Some(meant) = asked
            .iter()
            .find(|a| **a == upper || one_slip_apart(name.as_bytes(), a.as_bytes()))
        {
            out.push((name, meant.clone()));
        }
    }
    out.sort();
    out
}

/// Whether `a` and `b` differ by one letter left out, added or changed,
/// or two neighbours swapped.
fn one_slip_apart(a: &[u8], b: &[u8]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let start = short.iter().zip(long).take_while(|(x, y)| x == y).count();
    match long.len() - short.len() {
        0 if start == short.len() => false,
        0 => {
            let rest = start + 1;
            short[rest..] == long[rest..]
                || (rest < short.len()
                    && short[start] == long[rest]
                    && short[rest] == long[start]
                    && short[rest + 1..] == long[rest + 1..])
        }
        1 => short[start..] == long[start + 1..],
        _ => false,
    }
}

/// What spanguard says of an `OTEL_TRACES_EXPORTER` value, None when
/// nothing: the variable picks the exporters an OpenTelemetry SDK sets up
/// by itself (a list, `otlp`, `console`, `none`, `spanguard` for the
/// Python bridge's), and a tracer made in code is none of those. It
/// records and exports as configured whatever the variable says, and
/// says so once where the value asks for something else: left unsaid,
/// `none` seemed to turn spanguard off and `console` to print spans.
/// `none` does not turn spanguard off as `OTEL_SDK_DISABLED` does: under
/// the bridges the SDK reads the variable itself, and `none` there is how
/// an application that adds spanguard's processor in code keeps the SDK
/// from setting up an OTLP exporter of its own (which fails without its
/// package installed).
fn traces_exporter_note(value: &str) -> Option<&'static str> {
    let names: Vec<String> = value
        .split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    if names.iter().any(|n| n == "otlp" || n == "spanguard") {
        return None;
    }
    let note = if names.iter().all(|n| n == "none") {
        "spanguard records and exports all the same (none only keeps an OpenTelemetry SDK from \
         setting up an exporter by itself; OTEL_SDK_DISABLED=true turns spanguard off)"
    } else if names.iter().any(|n| n == "console") {
        "spanguard prints no spans: it sends them to the endpoint or writes them to the local \
         sink, as configured (spanguard show draws them)"
    } else {
        "spanguard exports OTLP only: to the endpoint, or to the local sink, as configured"
    };
    Some(note)
}

/// The port of an http(s) URL: the one written, else its scheme's.
fn url_port(url: &str) -> Option<u16> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    // An IPv6 address is in brackets: its colons are not the port's.
    let after_host = host_port.rsplit_once(']').map_or(host_port, |(_, p)| p);
    match after_host.rsplit_once(':') {
        Some((_, port)) => port.parse().ok(),
        None if scheme.eq_ignore_ascii_case("https") => Some(443),
        None => Some(80),
    }
}

/// The sampler's own message (`VARIABLE=value: reason`) as a ConfigError
/// naming the variable it is about, the sampler or its argument.
fn sampler_error(message: &str) -> ConfigError {
    let (head, reason) = message.split_once(": ").unwrap_or(("", message));
    match head.split_once('=') {
        Some((variable, value)) => ConfigError {
            variable: variable.to_string(),
            value: Some(shown_value(variable, value)),
            reason: reason.to_string(),
        },
        None => ConfigError::new("OTEL_TRACES_SAMPLER", None, message),
    }
}

/// What an endpoint must look like.
const ENDPOINT_RULE: &str = "not a URL starting with http:// or https:// (or discard:), without spaces or control characters";

/// An endpoint spanguard can send to. No space or control character: a URL
/// has none (RFC 3986), and one with a line break would be printed as is in
/// messages (a forged `spanguard: error:` line on stderr) while no request
/// could ever use it, its spans spooled for good.
fn is_endpoint_url(e: &str) -> bool {
    (e.starts_with("http://") || e.starts_with("https://") || e == "discard:")
        && !e.bytes().any(|b| b <= b' ' || b == 0x7f)
}

/// The smallest request or sink line limit accepted.
pub(crate) const MIN_REQUEST_BYTES: usize = 4096;

/// Headers that describe the request body, which spanguard sets itself: a
/// user's value would replace curl's and misdescribe it. With
/// `content-length=0` a server read an empty request and answered 200, so
/// the batch's spans were counted as exported and never arrived (and the
/// body that followed was read as the connection's next request).
const OWN_HEADERS: [&str; 4] = [
    "content-length",
    "transfer-encoding",
    "content-encoding",
    "content-type",
];

/// Checks HTTP headers before they reach the wire: a name must be an HTTP
/// token and not one of `OWN_HEADERS`, and a value must hold no CR, LF or
/// NUL (which would end the header and start another: header injection)
/// nor other control bytes.
pub fn check_headers(headers: &[(String, String)]) -> Result<(), String> {
    for (name, value) in headers {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) {
            return Err(format!(
                "header name {name:?} is not a valid HTTP header name"
            ));
        }
        if OWN_HEADERS.iter().any(|own| name.eq_ignore_ascii_case(own)) {
            return Err(format!(
                "header {name} is spanguard's own (it describes the body it sends)"
            ));
        }
        if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            // The value may be a secret: say where, never what.
            return Err(format!(
                "the value of header {name} holds a control character (CR, LF, NUL...)"
            ));
        }
    }
    Ok(())
}

/// The headers of an OTEL_EXPORTER_OTLP_(TRACES_)HEADERS value, each entry
/// judged alone: one that is not name=value or fails `check_headers` is
/// left out, with why (never its value: it may be a secret), and the
/// others kept, as the Python and Go SDKs do. Ignoring the whole variable
/// for one stray entry lost the API key beside it, and every export.
fn headers_from_env(text: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut headers = Vec::new();
    let mut wrong = Vec::new();
    for (n, entry) in text.split(',').enumerate() {
        match parse_key_values_checked(entry) {
            Ok(one) if one.is_empty() => {} // an empty entry, as between ",,"
            Ok(one) => match check_headers(&one) {
                Ok(()) => headers.extend(one),
                Err(reason) => wrong.push(format!("entry {}: {reason}", n + 1)),
            },
            // "Authorization: Bearer x", as an HTTP header is written (and
            // as curl -H takes it): said as such, with the form to use, as
            // the bare "not name=value" left the user looking for an '='.
            Err(_) if !entry.contains('=') && entry.contains(':') => wrong.push(format!(
                "entry {} is written name: value, as an HTTP header; this variable takes \
                 name=value, a space as %20 (Authorization=Bearer%20<key>)",
                n + 1
            )),
            Err(_) => wrong.push(format!(
                "entry {} is not name=value (no '=' or an empty name)",
                n + 1
            )),
        }
    }
    (headers, wrong)
}

/// Parses the W3C-baggage-like `k=v,k2=v2` list the OTEL_* variables use;
/// values (and keys) are percent-decoded, a '%' that starts no escape kept
/// as it is. None when an entry has no '='.
pub fn parse_key_values(text: &str) -> Option<Vec<(String, String)>> {
    parse_key_values_checked(text).ok()
}

/// `parse_key_values`, saying which entry is wrong. For headers: a '%' that
/// starts no escape is kept as it is (an API key may hold one).
pub fn parse_key_values_checked(text: &str) -> Result<Vec<(String, String)>, String> {
    parse_entries(text, Escapes::Lenient)
}

/// OTEL_RESOURCE_ATTRIBUTES (and the config's text of the same syntax):
/// `parse_key_values_checked`, but a '%' not followed by two hex digits
/// (`%zz`, a lone `%`) is an error too, as the resource SDK spec says
/// ("in case of any error, e.g. failure during the decoding process, the
/// entire environment variable value SHOULD be discarded"): it was kept
/// as it was, so a value whose `,` or `=` was half encoded went out as
/// something the user never wrote, with nothing said. A later key wins
/// over an earlier one (nothing in the spec says otherwise; the SDKs do).
pub fn parse_resource_attributes(text: &str) -> Result<Vec<(String, String)>, String> {
    parse_entries(text, Escapes::Strict)
}

#[derive(Clone, Copy, PartialEq)]
enum Escapes {
    Lenient,
    Strict,
}

fn parse_entries(text: &str, escapes: Escapes) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (n, entry) in text.split(',').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        let wrong = |what: &str| format!("entry {} ({}) {what}", n + 1, shown_entry(entry));
        let Some((k, v)) = entry.split_once('=') else {
            return Err(wrong("is not key=value"));
        };
        let decode = |s: &str| {
            match escapes {
            Escapes::Lenient => Ok(percent_decode(s)),
            Escapes::Strict => percent_decode_strict(s).ok_or_else(|| {
                wrong("has a '%' that is not followed by two hex digits (a '%' itself is written %25)")
            }),
        }
        };
        let k = decode(k.trim())?;
        if k.is_empty() {
            return Err(wrong("has an empty key"));
        }
        out.push((k, decode(v.trim())?));
    }
    Ok(out)
}

/// An entry as a message quotes it: escaped, and cut, as `shown_value`
/// cuts the whole value (an entry of a megabyte was quoted whole).
fn shown_entry(entry: &str) -> String {
    const MOST: usize = 60;
    let (shown, left) = printable_head(entry.trim().as_bytes(), MOST);
    match left {
        0 => format!("\"{shown}\""),
        left => format!("\"{shown}\"{}", left_out(left)),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let mut b = [0u8; 1];
            if crate::span::ids::parse_hex(&bytes[i + 1..i + 3], &mut b) {
                out.push(b[0]);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `percent_decode`, None when a '%' starts no escape. Bytes that decode to
/// no UTF-8 become U+FFFD, as W3C Baggage says of its values.
fn percent_decode_strict(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let mut b = [0u8; 1];
            let hex = bytes.get(i + 1..i + 3)?;
            if !crate::span::ids::parse_hex(hex, &mut b) {
                return None;
            }
            out.push(b[0]);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_variable_one_slip_from_one_read_is_named_with_it() {
        let asked: Vec<String> = [
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_BSP_SCHEDULE_DELAY",
        ]
        .map(String::from)
        .to_vec();
        let set = [
            "OTEL_EXPORTER_OTLP_ENDPONT",        // a letter left out
            "OTEL_EXPORTER_OTLP_TRACE_ENDPOINT", // the singular
            "OTEL_EXPORTER_OTLP_ENDPIONT",       // two swapped
            "OTEL_EXPORTER_OTLP_HEADER",
            "otel_exporter_otlp_endpoint", // the case
            "OTEL_EXPORTER_OTLP_ENDPOINT", // read: no slip
            "OTEL_BLRP_SCHEDULE_DELAY",    // another processor's: two apart
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "PATH",
        ]
        .map(String::from);
        assert_eq!(
            misspelt_variables(set.into_iter(), &asked),
            [
                ("OTEL_EXPORTER_OTLP_ENDPIONT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
                ("OTEL_EXPORTER_OTLP_ENDPONT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
                ("OTEL_EXPORTER_OTLP_HEADER", "OTEL_EXPORTER_OTLP_HEADERS"),
                (
                    "OTEL_EXPORTER_OTLP_TRACE_ENDPOINT",
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
                ),
                ("otel_exporter_otlp_endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }

    use super::*;

    /// XDG_STATE_HOME=state (relative, a slip in a unit file or a shell
    /// profile) put the spool and the sink under the process's working
    /// directory, wherever that was; the specification says to ignore it.
    #[test]
    fn a_relative_xdg_state_home_is_ignored() {
        let os = |s: &str| Some(std::ffi::OsString::from(s));
        let temp = || PathBuf::from("/tmp/spanguard-7");
        assert_eq!(
            state_dir_from(os("/x/state"), os("/home/u"), temp),
            PathBuf::from("/x/state/spanguard")
        );
        for relative in ["state", "./state", "../state", ""] {
            assert_eq!(
                state_dir_from(os(relative), os("/home/u"), temp),
                PathBuf::from("/home/u/.local/state/spanguard"),
                "XDG_STATE_HOME={relative:?}"
            );
            assert_eq!(state_dir_from(os(relative), None, temp), temp());
        }
        assert_eq!(state_dir_from(None, os(""), temp), temp());
    }

    /// HOME or TMPDIR relative (HOME=. in a unit file, TMPDIR=tmp in a
    /// script) put the spool under the working directory, as a relative
    /// XDG_STATE_HOME did: a start from another directory never found the
    /// spans spooled there, nor did `spanguard show` or `replay`.
    #[test]
    fn a_relative_home_or_tmpdir_is_ignored() {
        let os = |s: &str| Some(std::ffi::OsString::from(s));
        let temp = || PathBuf::from("/tmp/spanguard-7");
        for relative in [".", "u", "./u", "../u"] {
            assert_eq!(
                state_dir_from(None, os(relative), temp),
                temp(),
                "HOME={relative:?}"
            );
            assert_eq!(
                temp_dir_from(PathBuf::from(relative)),
                PathBuf::from("/tmp"),
                "TMPDIR={relative:?}"
            );
        }
        assert_eq!(
            temp_dir_from(PathBuf::from("/var/tmp")),
            PathBuf::from("/var/tmp")
        );
    }
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    /// Applies `pairs` to the defaults, which must succeed (the
    /// environment alone is never an error), and returns what was ignored;
    /// an ignored value must have changed nothing.
    fn ignored(pairs: &[(&str, &str)]) -> Vec<ConfigError> {
        let mut c = TracerConfig::default();
        c.apply_env(&env(pairs))
            .expect("the environment is never fatal");
        let ignored = std::mem::take(&mut c.ignored_env);
        assert_eq!(c, TracerConfig::default(), "{pairs:?} changed a setting");
        ignored
    }

    /// OTEL_RESOURCE_ATTRIBUTES as the resource SDK spec reads it: on any
    /// error, a failed percent-decoding too, the whole value is discarded
    /// (`ignored` checks nothing of it was applied) and said, its entry
    /// quoted short. `%zz` and a lone `%` were kept as they were, and the
    /// rest of the value applied.
    #[test]
    fn a_resource_attribute_that_fails_to_decode_discards_the_whole_variable() {
        for (value, entry) in [
            ("team=a,zone=%zz", "entry 2 (\"zone=%zz\")"),
            ("team=a,discount=50%", "entry 2 (\"discount=50%\")"),
            ("team=a,zone=eu%4", "entry 2 (\"zone=eu%4\")"),
            ("service.name=x,k%=v", "entry 2 (\"k%=v\")"),
            ("b=,=v", "entry 2 (\"=v\") has an empty key"),
            ("team=a,flag", "entry 2 (\"flag\") is not key=value"),
        ] {
            let ignored = ignored(&[("OTEL_RESOURCE_ATTRIBUTES", value)]);
            assert_eq!(ignored.len(), 1, "{value}: {ignored:?}");
            assert!(
                ignored[0].reason.starts_with(entry),
                "{value}: {}",
                ignored[0].reason
            );
        }
        // A megabyte entry in error is quoted in a line, not whole.
        let long = format!("big={}%", "x".repeat(1 << 20));
        let ignored = ignored(&[("OTEL_RESOURCE_ATTRIBUTES", long.as_str())]);
        assert!(
            ignored[0].to_string().len() < 500,
            "{}",
            ignored[0].to_string().len()
        );
        // Escapes that decode, a later key over an earlier one, CR/LF and
        // other control characters (given or decoded) kept as text (OTLP
        // carries them; what prints them escapes them), a megabyte value
        // whole (the request encoder fits a resource to the request limit).
        let big = "v".repeat(1 << 20);
        let value = format!("a=%25%2C%3D%41,dup=1,dup=2,ctl=x\r\ny\u{1b}%0A,big={big}, b = c ");
        let mut c = TracerConfig::default();
        c.apply_env(&env(&[("OTEL_RESOURCE_ATTRIBUTES", value.as_str())]))
            .expect("valid");
        assert!(c.ignored_env.is_empty(), "{:?}", c.ignored_env);
        let got = |k: &str| {
            let all: Vec<&String> = c
                .resource_attributes
                .iter()
                .filter(|(g, _)| g == k)
                .map(|(_, v)| v)
                .collect();
            assert_eq!(all.len(), 1, "{k}");
            all[0].clone()
        };
        assert_eq!(got("a"), "%,=A");
        assert_eq!(got("dup"), "2");
        assert_eq!(got("ctl"), "x\r\ny\u{1b}\n");
        assert_eq!(got("big"), big);
        assert_eq!(got("b"), "c");
        // Bytes that decode to no UTF-8: U+FFFD, as W3C Baggage says.
        assert_eq!(
            parse_resource_attributes("k=%FFok"),
            Ok(vec![("k".into(), "\u{fffd}ok".into())])
        );
        // Headers keep a '%' that starts no escape (an API key may hold one).
        assert_eq!(
            parse_key_values_checked("x-key=ab%zz%"),
            Ok(vec![("x-key".into(), "ab%zz%".into())])
        );
    }

    #[test]
    fn the_default_service_name_is_unknown_service_and_the_executable() {
        // The test binary's name as the kernel keeps it (at most 15 bytes).
        let comm = std::fs::read_to_string("/proc/self/comm").expect("comm");
        assert_eq!(
            TracerConfig::default().service_name,
            format!("unknown_service:{}", comm.trim())
        );
    }

    #[test]
    fn standard_variables_are_read() {
        let mut c = TracerConfig::default();
        c.apply_env(&env(&[
            ("OTEL_SERVICE_NAME", "agent"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=ignored,deployment.environment=prod%20eu",
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s3cr%3Dt,x-team=ai"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "4096"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "256"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "7000"),
        ]))
        .expect("valid");
        assert_eq!(c.service_name, "agent");
        assert_eq!(
            c.resource_attributes,
            vec![("deployment.environment".to_string(), "prod eu".to_string())]
        );
        assert_eq!(
            c.endpoint.as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        assert_eq!(
            c.headers[0],
            ("x-api-key".to_string(), "s3cr=t".to_string())
        );
        assert_eq!(c.compression, Compression::Gzip);
        assert_eq!(c.protocol, Protocol::HttpJson);
        assert_eq!(c.request_timeout, Duration::from_millis(2500));
        assert_eq!(c.schedule_delay, Duration::from_millis(100));
        assert_eq!(c.max_queue_size, 4096);
        assert_eq!(c.max_export_batch_size, 256);
        assert_eq!(c.export_timeout, Duration::from_millis(7000));
    }

    #[test]
    fn the_traces_endpoint_is_used_as_is_and_wins() {
        let mut c = TracerConfig::default();
        c.apply_env(&env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:9999/custom"),
        ]))
        .expect("valid");
        assert_eq!(c.endpoint.as_deref(), Some("http://b:9999/custom"));
    }

    #[test]
    fn a_wrong_traces_form_leaves_the_generic_one_to_apply() {
        // Ignored is as if unset: the generic variable then applies.
        let mut c = TracerConfig::default();
        c.apply_env(&env(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4318"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "broken"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=k"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "zstd"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ]))
        .expect("never fatal");
        assert_eq!(
            c.endpoint.as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        assert_eq!(c.headers, vec![("x-api-key".to_string(), "k".to_string())]);
        assert_eq!(c.protocol, Protocol::HttpJson);
        assert_eq!(c.compression, Compression::Gzip);
        let named: Vec<&str> = c.ignored_env.iter().map(|e| e.variable.as_str()).collect();
        assert_eq!(
            named,
            [
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            ]
        );
    }

    #[test]
    fn a_sink_line_longer_than_the_command_reads_is_refused() {
        // Set to keep a 70 MB span whole, the sink wrote a 70 MB line that
        // `spanguard show` and `tail` skip (64 MiB at most), and with it
        // every span of that batch: none of them could be seen.
        let mut c = TracerConfig {
            sink_max_line_bytes: MAX_SINK_LINE_BYTES,
            ..TracerConfig::default()
        };
        c.validate().expect("the longest line the command reads");
        c.sink_max_line_bytes = MAX_SINK_LINE_BYTES + 1;
        let e = c.validate().expect_err("longer than the command reads");
        assert!(e.to_string().contains("sink_max_line_bytes"), "{e}");
        assert!(e.to_string().contains("at most 67108864"), "{e}");
    }

    #[test]
    fn traces_exporter_values_spanguard_does_not_follow_are_said() {
        // Set for an SDK's own exporters, the variable changed nothing in
        // spanguard, in silence: `none` seemed to turn it off, `console`
        // to print spans. Said once, as an ignored variable; the tracer
        // records and exports as before (`ignored` checks nothing changed).
        let said = |value: &str| -> Vec<String> {
            ignored(&[("OTEL_TRACES_EXPORTER", value)])
                .iter()
                .map(ConfigError::as_ignored)
                .collect()
        };
        assert_eq!(
            said("none"),
            [
                "OTEL_TRACES_EXPORTER=none: spanguard records and exports all the same (none only \
              keeps an OpenTelemetry SDK from setting up an exporter by itself; \
              OTEL_SDK_DISABLED=true turns spanguard off); ignored"
            ]
        );
        assert_eq!(
            said(" Console "),
            [
                "OTEL_TRACES_EXPORTER=Console: spanguard prints no spans: it sends them to the \
              endpoint or writes them to the local sink, as configured (spanguard show draws \
              them); ignored"
            ]
        );
        assert_eq!(
            said("zipkin"),
            [
                "OTEL_TRACES_EXPORTER=zipkin: spanguard exports OTLP only: to the endpoint, or to \
              the local sink, as configured; ignored"
            ]
        );
        assert_eq!(
            said("console,zipkin")[0],
            said("console")[0].replace("=console", "=console,zipkin")
        );
        // OTLP (or the Python bridge's exporter) among them: nothing to say.
        for quiet in [
            "otlp",
            "OTLP",
            "spanguard",
            "console,otlp",
            "spanguard, console",
        ] {
            assert!(said(quiet).is_empty(), "{quiet}");
        }
        // A tracer that OTEL_SDK_DISABLED turns off says nothing of it.
        let mut c = TracerConfig::default();
        c.apply_env(&env(&[
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_SDK_DISABLED", "true"),
        ]))
        .expect("valid");
        assert!(
            c.disabled && c.ignored_env.is_empty(),
            "{:?}",
            c.ignored_env
        );
    }

    #[test]
    fn grpc_says_what_is_sent_instead_and_names_the_grpc_port() {
        // A user who set grpc with port 4317 expected gRPC: HTTP requests
        // to that port fail, and the line says which port takes them.
        let said = |pairs: &[(&str, &str)]| -> String {
            let mut c = TracerConfig::default();
            c.apply_env(&env(pairs)).expect("never fatal");
            c.ignored_env
                .iter()
                .find(|e| e.variable.ends_with("_PROTOCOL"))
                .expect("the protocol is said")
                .as_ignored()
        };
        assert_eq!(
            said(&[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ]),
            "OTEL_EXPORTER_OTLP_PROTOCOL=grpc: not http/protobuf or http/json (grpc is not \
             supported: spanguard sends OTLP over HTTP, http/protobuf; a Collector takes both on \
             port 4318, and its gRPC port 4317, the endpoint's, answers no HTTP: set the \
             endpoint's port to 4318); ignored"
        );
        for endpoint in [
            "http://[::1]:4317/v1/traces",
            "https://user:pw@collector:4317/",
        ] {
            let line = said(&[
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "GRPC"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint),
            ]);
            assert!(
                line.contains("the endpoint's port to 4318"),
                "{endpoint}: {line}"
            );
        }
        // Another port, or none set: the protocol sent, and no port named.
        for pairs in [
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ][..],
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector"),
            ][..],
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")][..],
        ] {
            let line = said(pairs);
            assert!(
                line.contains("sends OTLP over HTTP, http/protobuf;"),
                "{line}"
            );
            assert!(!line.contains("4317"), "{pairs:?}: {line}");
        }
        // The protocol a config struct chose is the one named.
        let mut c = TracerConfig {
            protocol: Protocol::HttpJson,
            ..TracerConfig::default()
        };
        c.apply_env(&env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]))
            .expect("never fatal");
        assert!(c.ignored_env[0].reason.contains("over HTTP, http/json;"));
        assert_eq!(url_port("http://h"), Some(80));
        assert_eq!(url_port("https://h/x:4317"), Some(443));
        assert_eq!(url_port("discard:"), None);
    }

    #[test]
    fn bad_values_name_their_variable_and_value() {
        let dir_as_file = std::env::temp_dir().join(format!("sg-cfg-file-{}", std::process::id()));
        std::fs::write(&dir_as_file, b"x").expect("write");
        let file = dir_as_file.to_str().expect("utf-8 temp dir").to_string();
        let cases: Vec<(&str, &str, String)> = vec![
            ("OTEL_SDK_DISABLED", "maybe", "OTEL_SDK_DISABLED=maybe: not true or false (taken as false".into()),
            ("OTEL_TRACES_SAMPLER", "sometimes", "OTEL_TRACES_SAMPLER=sometimes: not always_on".into()),
            ("OTEL_RESOURCE_ATTRIBUTES", "a=1,b", "OTEL_RESOURCE_ATTRIBUTES=a=1,b: entry 2 (\"b\") is not key=value".into()),
            ("OTEL_RESOURCE_ATTRIBUTES", "=1", "OTEL_RESOURCE_ATTRIBUTES==1: entry 1 (\"=1\") has an empty key".into()),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=collector:4318: not a URL starting with http:// or https://".into()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://x", "OTEL_EXPORTER_OTLP_ENDPOINT=ftp://x: not a URL starting with http://".into()),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", "OTEL_EXPORTER_OTLP_COMPRESSION=zstd: not gzip or none".into()),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "br", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION=br: not gzip or none".into()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc: not http/protobuf or http/json (grpc is not supported".into()),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/xml", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/xml: not http/protobuf or http/json".into()),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s", "OTEL_EXPORTER_OTLP_TIMEOUT=10s: not a whole number of milliseconds".into()),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "-1", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT=-1: not a whole number of milliseconds".into()),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "0", "OTEL_EXPORTER_OTLP_TIMEOUT=0: must be at least 1".into()),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT=0: must be at least 1".into()),
            ("OTEL_BSP_SCHEDULE_DELAY", "soon", "OTEL_BSP_SCHEDULE_DELAY=soon: not a whole number of milliseconds".into()),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0", "OTEL_BSP_MAX_QUEUE_SIZE=0: must be at least 1".into()),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "many", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=many: not a whole number".into()),
            ("OTEL_BSP_EXPORT_TIMEOUT", "1.5", "OTEL_BSP_EXPORT_TIMEOUT=1.5: not a whole number of milliseconds".into()),
            ("SPANGUARD_SINK_DIR", &file, format!("SPANGUARD_SINK_DIR={file}: exists and is not a directory")),
            ("SPANGUARD_SPOOL_DIR", &file, format!("SPANGUARD_SPOOL_DIR={file}: exists and is not a directory")),
            ("SPANGUARD_SPOOL_MAX_BYTES", "64MiB", "SPANGUARD_SPOOL_MAX_BYTES=64MiB: not a whole number of bytes (this variable is in bytes, no unit; the config struct's spool_max_mib is in MiB)".into()),
            ("SPANGUARD_MAX_OPEN_SPANS", "lots", "SPANGUARD_MAX_OPEN_SPANS=lots: not a whole number".into()),
            ("SPANGUARD_FULL_POLICY", "block", "SPANGUARD_FULL_POLICY=block: not drop or wait".into()),
            ("SPANGUARD_FULL_WAIT_MS", "x", "SPANGUARD_FULL_WAIT_MS=x: not a whole number of milliseconds".into()),
            ("SPANGUARD_SIGNAL_HANDLERS", "no", "SPANGUARD_SIGNAL_HANDLERS=no: not true, false or termination".into()),
            ("SPANGUARD_FLIGHT_RECORDER", "on", "SPANGUARD_FLIGHT_RECORDER=on: not true or false".into()),
            ("SPANGUARD_PREFAULT_SLOTS", "yes", "SPANGUARD_PREFAULT_SLOTS=yes: not true or false".into()),
            ("SPANGUARD_EXPORTER_MAX_CPU_PERCENT", "150", "SPANGUARD_EXPORTER_MAX_CPU_PERCENT=150: must be at most 100".into()),
            ("SPANGUARD_PAYLOAD_POOL_MIB", "2000000", "SPANGUARD_PAYLOAD_POOL_MIB=2000000: must be at most 1048576".into()),
            ("OTEL_SPAN_EVENT_COUNT_LIMIT", "40000", "OTEL_SPAN_EVENT_COUNT_LIMIT=40000: must be at most 32767".into()),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "16777216", "OTEL_BSP_MAX_QUEUE_SIZE=16777216: must be at most 16777215".into()),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/no/such/key.pem", "OTEL_EXPORTER_OTLP_CLIENT_KEY=/no/such/key.pem: not a readable file".into()),
            ("SPANGUARD_MAX_REQUEST_BYTES", "12", "SPANGUARD_MAX_REQUEST_BYTES=12: not a whole number of bytes, at least 4096".into()),
            // A line `spanguard show` and `tail` would skip, with every span in it.
            ("SPANGUARD_SINK_MAX_LINE_BYTES", "200000000", "SPANGUARD_SINK_MAX_LINE_BYTES=200000000: not a whole number of bytes from 4096 to 67108864".into()),
            ("OTEL_LOG_LEVEL", "loud", "OTEL_LOG_LEVEL=loud: not one of none".into()),
            ("SPANGUARD_EXPORTER_MAX_CPU_PERCENT", "0", "SPANGUARD_EXPORTER_MAX_CPU_PERCENT=0: must be at least 1".into()),
            ("SPANGUARD_SIGNAL_FLUSH_TIMEOUT_MS", "3s", "SPANGUARD_SIGNAL_FLUSH_TIMEOUT_MS=3s: not a whole number of milliseconds".into()),
            ("SPANGUARD_CLOCK", "tsc", "SPANGUARD_CLOCK=tsc: not system".into()),
        ];
        for (k, v, want) in cases {
            let ignored = ignored(&[(k, v)]);
            assert_eq!(ignored.len(), 1, "{k}: {ignored:?}");
            assert_eq!(ignored[0].variable, k);
            let message = ignored[0].to_string();
            assert!(
                message.starts_with(&want),
                "{k}: {message:?} does not start with {want:?}"
            );
        }
        std::fs::remove_file(&dir_as_file).ok();
    }

    /// `termination` asks for the watchdog without the crash handlers (the
    /// Go binding's default); true and false turn both on or off, also
    /// over a struct that asked for the watchdog alone.
    #[test]
    fn signal_handlers_termination_leaves_out_the_crash_handlers() {
        for (value, signals, crash) in [
            ("termination", true, false),
            ("2", true, false),
            ("true", true, true),
            ("1", true, true),
            ("false", false, false),
            ("0", false, false),
        ] {
            let mut c = TracerConfig {
                install_signal_handlers: !signals,
                install_crash_handlers: !crash,
                ..TracerConfig::default()
            };
            c.apply_env(&env(&[("SPANGUARD_SIGNAL_HANDLERS", value)]))
                .expect("never fatal");
            assert!(c.ignored_env.is_empty(), "{value}: {:?}", c.ignored_env);
            assert_eq!(
                (c.install_signal_handlers, c.install_crash_handlers),
                (signals, crash),
                "{value}"
            );
        }
    }

    #[test]
    fn header_values_are_never_shown_and_urls_lose_their_password() {
        for k in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ] {
            // The good entry applies now; the message is the bad one's.
            let mut c = TracerConfig::default();
            c.apply_env(&env(&[(k, "authorization=Bearer sk-secret,broken")]))
                .expect("never fatal");
            let message = c.ignored_env[0].to_string();
            assert!(message.starts_with(&format!("{k}=")), "{message}");
            assert!(!message.contains("sk-secret"), "{message}");
            assert!(!message.contains("broken"), "{message}");
        }
        let e = &ignored(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "htp://user:hunter2@collector:4318",
        )])[0];
        assert_eq!(
            e.to_string(),
            "OTEL_EXPORTER_OTLP_ENDPOINT=htp://***@collector:4318: not a URL starting with http:// or https://, without spaces or control characters"
        );
        // A scheme left out or mistyped keeps no password out of stderr
        // by itself: `user:hunter2@collector:4318` was shown as it is.
        for (value, shown) in [
            ("user:hunter2@collector:4318", "***@collector:4318"),
            (
                "user:hunter2@collector:4318/v1/traces",
                "***@collector:4318/v1/traces",
            ),
            (
                "http:/user:hunter2@collector:4318",
                "http:/***@collector:4318",
            ),
            ("http:user:hunter2@collector:4318", "***@collector:4318"),
        ] {
            for variable in [
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            ] {
                let e = &ignored(&[(variable, value)])[0];
                let text = e.to_string();
                assert!(!text.contains("hunter2"), "{text}");
                assert!(text.starts_with(&format!("{variable}={shown}: ")), "{text}");
            }
        }
        let c = TracerConfig {
            endpoint: Some("user:hunter2@collector:4318".into()),
            ..TracerConfig::default()
        };
        let text = c.validate().expect_err("no scheme").to_string();
        assert!(
            text.starts_with("endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)=***@collector:4318: "),
            "{text}"
        );
        // A value of another variable is shown whole, '@' and all.
        let e = &ignored(&[("OTEL_BSP_MAX_QUEUE_SIZE", "me@host")])[0];
        assert!(
            e.to_string()
                .starts_with("OTEL_BSP_MAX_QUEUE_SIZE=me@host: "),
            "{e}"
        );
    }

    #[test]
    fn struct_errors_name_the_field_and_its_variable() {
        let mut c = TracerConfig {
            exporter_max_cpu_percent: 0,
            ..TracerConfig::default()
        };
        assert_eq!(
            c.validate().expect_err("0%").to_string(),
            "exporter_max_cpu_percent (SPANGUARD_EXPORTER_MAX_CPU_PERCENT)=0: must be between 1 and 100"
        );
        c.exporter_max_cpu_percent = 50;
        c.endpoint = Some("localhost:4318".into());
        assert_eq!(
            c.validate().expect_err("no scheme").to_string(),
            "endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)=localhost:4318: not a URL starting with http:// or https:// (or discard:), without spaces or control characters"
        );
        c.endpoint = None;
        c.max_queue_size = 1 << 24;
        let message = c.validate().expect_err("too many slots").to_string();
        assert!(
            message.starts_with(
                "max_queue_size (OTEL_BSP_MAX_QUEUE_SIZE)=16777216: the queue plus max_open_spans"
            ),
            "{message}"
        );
        c.max_queue_size = 2048;
        c.request_timeout = Duration::ZERO;
        assert!(
            c.validate()
                .expect_err("no timeout")
                .to_string()
                .starts_with(
                    "request_timeout (OTEL_EXPORTER_OTLP_TIMEOUT)=0: must be at least 1 ms"
                )
        );
    }

    #[test]
    fn odd_values_are_shown_escaped_and_bounded() {
        let long = "x".repeat(500);
        let e = &ignored(&[("OTEL_BSP_SCHEDULE_DELAY", &long)])[0];
        assert!(e.to_string().len() < 300, "{e}");
        let e = &ignored(&[("OTEL_SDK_DISABLED", "yes\nplease")])[0];
        assert!(
            e.to_string()
                .starts_with("OTEL_SDK_DISABLED=yes\\nplease: not true or false"),
            "{e}"
        );
    }

    /// An ignored value is shown by the rule every message follows
    /// (`span::printable`), not by `char::escape_debug` beside it: that
    /// doubled a path's backslashes (`C:\\tmp`) and escaped quotes, so the
    /// value a user reads was not the one they set; it escaped the joiner
    /// of an emoji in a service name; and a cut value ended in `...` with
    /// no word of how much was left out. Invisible characters (a tag
    /// spelling text, a zero-width space) are shown, as everywhere.
    #[test]
    fn an_ignored_value_is_shown_as_every_message_shows_text() {
        let long = format!("{}{}", "\u{e9}".repeat(150), "x".repeat(100));
        let long_shown = format!(
            "{}{}... (50 more bytes)",
            "\u{e9}".repeat(150),
            "x".repeat(50)
        );
        for (value, shown) in [
            (r"C:\tmp\'x'", r"C:\tmp\'x'"),
            (r#"say "hi" now"#, r#""say "hi" now""#),
            ("\u{1f469}\u{200d}\u{1f4bb}", "\u{1f469}\u{200d}\u{1f4bb}"),
            ("5\u{200b}0\u{e0041}", r"5\u{200b}0\u{e0041}"),
            ("1\u{202e}0\x1b[2J", r"1\u{202e}0\x1b[2J"),
            (&long, &long_shown),
        ] {
            let e = &ignored(&[("OTEL_BSP_SCHEDULE_DELAY", value)])[0];
            assert_eq!(e.value.as_deref(), Some(shown), "{value:?}");
            assert!(
                e.to_string()
                    .starts_with(&format!("OTEL_BSP_SCHEDULE_DELAY={shown}: ")),
                "{e}"
            );
        }
        // An entry of a key=value list, the same way.
        let e = parse_resource_attributes("a=1,b\u{200b}\\x").expect_err("no '='");
        assert_eq!(e, r#"entry 2 ("b\u{200b}\x") is not key=value"#);
        let e = parse_resource_attributes(&"y".repeat(70)).expect_err("no '='");
        assert_eq!(
            e,
            format!(
                r#"entry 1 ("{}"... (10 more bytes)) is not key=value"#,
                "y".repeat(60)
            )
        );
    }

    #[test]
    fn headers_that_would_inject_another_header_are_refused() {
        for (var, value) in [
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "api-key=abc%0D%0AX-Injected: yes",
            ),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=abc%0Ax"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "api-key=a%00b"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "bad%20name=v"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x%0D%0AInjected=v"),
        ] {
            let e = &ignored(&[(var, value)])[0];
            assert_eq!(e.variable, var, "{value}");
            assert!(!e.reason.contains("abc"), "the value is not repeated");
        }
        let mut c = TracerConfig {
            headers: vec![("x-key".to_string(), "a\r\nb".to_string())],
            ..TracerConfig::default()
        };
        let e = c.validate().expect_err("CRLF");
        assert!(e.variable.starts_with("headers"), "{e}");
        assert!(!e.to_string().contains("a\\r\\nb"), "{e}");
        c.headers = vec![("x-key".to_string(), "tab\tok".to_string())];
        assert!(c.validate().is_ok());
    }

    /// One stray entry (a trailing word, a name with a space) made the whole
    /// variable ignored, the API key beside it too: every export was then
    /// refused (401) and spooled. The Python and Go SDKs leave out the bad
    /// entry, warned about, and keep the others; so does spanguard now.
    #[test]
    fn a_bad_header_entry_is_left_out_and_the_others_apply() {
        let mut c = TracerConfig::default();
        c.apply_env(&env(&[(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "authorization=Bearer%20s3cr3t,broken,bad%20name=v,content-length=0,x-team=ai,x-crlf=a%0Db",
        )]))
        .expect("never fatal");
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            c.headers,
            vec![kv("authorization", "Bearer s3cr3t"), kv("x-team", "ai")]
        );
        let said: Vec<String> = c.ignored_env.iter().map(|e| e.as_ignored()).collect();
        assert_eq!(said.len(), 4, "{said:#?}");
        for (s, entry) in said
            .iter()
            .zip(["entry 2", "entry 3", "entry 4", "entry 6"])
        {
            assert!(s.starts_with("OTEL_EXPORTER_OTLP_HEADERS"), "{s}");
            assert!(s.contains(entry), "{s} names {entry}");
            assert!(s.contains("the other entries apply; entry"), "{s}");
            assert!(!s.contains("s3cr3t") && !s.contains("a\\rb"), "{s}");
        }
        // With no good entry left the variable is ignored as a whole (the
        // generic form then applies to a traces form).
        let mut c = TracerConfig::default();
        c.apply_env(&env(&[
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "broken,also broken"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=k"),
        ]))
        .expect("never fatal");
        assert_eq!(c.headers, vec![kv("x-api-key", "k")]);
        assert_eq!(c.ignored_env.len(), 1, "{:?}", c.ignored_env);
    }

    /// "Authorization: Bearer x" (an HTTP header as written, curl -H's
    /// form) was said to be "not name=value (no '=' or an empty name)":
    /// the warning now says it is a header's own form and which to use,
    /// without showing the value.
    #[test]
    fn a_header_written_with_a_colon_is_said_so() {
        let said = ignored(&[("OTEL_EXPORTER_OTLP_HEADERS", "Authorization: Bearer s3cr3t")]);
        let s = said[0].to_string();
        assert!(
            s.contains("entry 1 is written name: value, as an HTTP header"),
            "{s}"
        );
        assert!(s.contains("Authorization=Bearer%20<key>"), "{s}");
        assert!(!s.contains("s3cr3t"), "{s}");
    }

    /// OTEL_TRACES_SAMPLER=ParentBased_TraceIdRatio or
    /// OTEL_EXPORTER_OTLP_COMPRESSION=GZIP was warned about and ignored
    /// (every span kept, sent uncompressed); the SDK configuration spec says
    /// enum values are read case-insensitively, as the Python and Go SDKs
    /// read them.
    #[test]
    fn enum_values_are_read_in_any_case() {
        use crate::span::sampler::Sampler;
        let mut c = TracerConfig::default();
        c.apply_env(&env(&[
            ("OTEL_TRACES_SAMPLER", " ParentBased_TraceIdRatio "),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "GZIP"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "HTTP/JSON"),
        ]))
        .expect("never fatal");
        assert!(c.ignored_env.is_empty(), "{:?}", c.ignored_env);
        assert_eq!(
            c.sampler,
            Sampler::from_names("parentbased_traceidratio", Some("0.25")).expect("valid")
        );
        assert_eq!(c.compression, Compression::Gzip);
        assert_eq!(c.protocol, Protocol::HttpJson);
        // What stays wrong in any case is still said with its own spelling.
        let e = &ignored(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "Zstd")])[0];
        assert!(
            e.to_string()
                .starts_with("OTEL_EXPORTER_OTLP_COMPRESSION=Zstd"),
            "{e}"
        );
        let e = &ignored(&[("OTEL_TRACES_SAMPLER", "Jaeger_Remote")])[0];
        assert!(
            e.to_string().contains("OTEL_TRACES_SAMPLER=Jaeger_Remote"),
            "{e}"
        );
    }

    /// A header that describes the body is spanguard's: `content-length=0`
    /// made a server read an empty request, answer 200, and the spans were
    /// counted as exported without arriving.
    #[test]
    fn headers_that_describe_the_body_are_refused() {
        for value in [
            "content-length=0",
            "Transfer-Encoding=chunked",
            "CONTENT-ENCODING=gzip",
            "content-type=text/plain",
        ] {
            let e = &ignored(&[("OTEL_EXPORTER_OTLP_HEADERS", value)])[0];
            assert!(e.reason.contains("spanguard's own"), "{value}: {e}");
        }
        let c = TracerConfig {
            headers: vec![("Content-Length".to_string(), "0".to_string())],
            ..TracerConfig::default()
        };
        assert!(c.validate().is_err());
        // Others pass.
        let mut c = TracerConfig::default();
        c.apply_env(&env(&[("OTEL_EXPORTER_OTLP_HEADERS", "host=h,x-key=k")]))
            .expect("env");
        assert!(c.ignored_env.is_empty(), "{:?}", c.ignored_env);
        assert_eq!(c.headers.len(), 2);
    }

    #[test]
    fn tls_files_and_limits_are_read_the_traces_form_winning() {
        let dir = std::env::temp_dir().join(format!("sg-config-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (ca, traces_ca) = (dir.join("ca.pem"), dir.join("traces-ca.pem"));
        for f in [&ca, &traces_ca] {
            std::fs::write(f, "pem").expect("write");
        }
        let mut c = TracerConfig::default();
        c.apply_env(&env(&[
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca.to_str().unwrap()),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                traces_ca.to_str().unwrap(),
            ),
            ("SPANGUARD_MAX_REQUEST_BYTES", "65536"),
            ("SPANGUARD_SINK_MAX_LINE_BYTES", "8192"),
            ("OTEL_LOG_LEVEL", "DEBUG"),
        ]))
        .expect("valid");
        assert_eq!(c.tls.certificate.as_deref(), Some(traces_ca.as_path()));
        assert_eq!(c.max_request_bytes, 65536);
        assert_eq!(c.sink_max_line_bytes, 8192);
        assert_eq!(c.log_level, LogLevel::Debug);
        // A client certificate without its key is half a setting: left out.
        let e = &ignored(&[(
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            ca.to_str().unwrap(),
        )])[0];
        assert_eq!(e.variable, "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn span_limits_are_read_and_the_span_specific_variable_wins() {
        let mut c = TracerConfig::default();
        assert_eq!(c.limits, crate::span::limits::SpanLimits::default());
        assert_eq!(c.limits.attribute_count, 128);
        assert_eq!(c.limits.attribute_value_length, u32::MAX);
        c.apply_env(&env(&[
            ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "100"),
            ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "200"),
            ("OTEL_ATTRIBUTE_COUNT_LIMIT", "10"),
            ("OTEL_SPAN_EVENT_COUNT_LIMIT", "3"),
            ("OTEL_SPAN_LINK_COUNT_LIMIT", "4"),
            ("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "5"),
            ("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "6"),
            ("SPANGUARD_PAYLOAD_POOL_MIB", "8"),
        ]))
        .expect("valid");
        let l = c.limits;
        assert_eq!(l.attribute_value_length, 200, "span-specific wins");
        assert_eq!(l.attribute_count, 10, "the general one applies alone");
        assert_eq!(
            (
                l.event_count,
                l.link_count,
                l.event_attribute_count,
                l.link_attribute_count
            ),
            (3, 4, 5, 6)
        );
        assert_eq!(c.payload_pool_mib, 8);
        let mut c = TracerConfig::default();
        c.apply_env(&env(&[
            ("OTEL_ATTRIBUTE_COUNT_LIMIT", "10"),
            ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "20"),
        ]))
        .expect("valid");
        assert_eq!(c.limits.attribute_count, 20);
        // The span-specific variable, when wrong, leaves the general one
        // to apply.
        let mut c = TracerConfig::default();
        c.apply_env(&env(&[
            ("OTEL_ATTRIBUTE_COUNT_LIMIT", "10"),
            ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "many"),
        ]))
        .expect("never fatal");
        assert_eq!(c.limits.attribute_count, 10);
        assert_eq!(c.ignored_env[0].variable, "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT");
        // The complex value depth limit: 64 by default (OpenTelemetry's),
        // spanguard's own variable (OpenTelemetry names none), 1 to 128;
        // out of range, ignored and said.
        assert_eq!(TracerConfig::default().limits.attribute_value_depth, 64);
        for (value, want, said) in [
            ("5", 5, false),
            ("128", 128, false),
            ("129", 64, true),
            ("0", 64, true),
        ] {
            let mut c = TracerConfig::default();
            c.apply_env(&env(&[("SPANGUARD_ATTRIBUTE_VALUE_DEPTH_LIMIT", value)]))
                .expect("never fatal");
            assert_eq!(c.limits.attribute_value_depth, want, "{value}");
            assert_eq!(!c.ignored_env.is_empty(), said, "{value}");
        }
        let mut c = TracerConfig::default();
        c.limits.attribute_value_depth = 129;
        assert!(c.validate().is_err(), "past the ceiling");
    }

    #[test]
    fn disabled_is_read() {
        let mut c = TracerConfig::default();
        c.apply_env(&env(&[("OTEL_SDK_DISABLED", "TRUE")]))
            .expect("valid");
        assert!(c.disabled);
        // Only "true" is true (the SDK rule for booleans): "1" is false,
        // and said to be.
        let mut c = TracerConfig {
            disabled: true,
            ..TracerConfig::default()
        };
        c.apply_env(&env(&[("OTEL_SDK_DISABLED", "1")]))
            .expect("never fatal");
        assert!(!c.disabled);
        assert_eq!(c.ignored_env[0].variable, "OTEL_SDK_DISABLED");
        let mut c = TracerConfig::default();
        c.apply_env(&env(&[("OTEL_SDK_DISABLED", "false")]))
            .expect("valid");
        assert!(!c.disabled && c.ignored_env.is_empty());
    }

    #[test]
    fn the_sampler_variables_are_read() {
        use crate::span::sampler::{RootSampler, Sampler};
        let mut c = TracerConfig::default();
        assert_eq!(c.sampler, Sampler::default());
        c.apply_env(&env(&[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.125"),
        ]))
        .expect("valid");
        assert_eq!(
            c.sampler,
            Sampler {
                root: RootSampler::TraceIdRatio(0.125),
                parent_based: true
            }
        );
        // A bad argument is ignored: the sampler as if it were unset
        // (traceidratio's ratio is then 1).
        let mut c = TracerConfig::default();
        c.apply_env(&env(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "half"),
        ]))
        .expect("never fatal");
        assert_eq!(
            c.sampler,
            Sampler {
                root: RootSampler::TraceIdRatio(1.0),
                parent_based: false
            }
        );
        assert_eq!(
            c.ignored_env[0].to_string(),
            "OTEL_TRACES_SAMPLER_ARG=half: not a probability between 0 and 1"
        );
        // A sampler spanguard lacks leaves the default.
        let e = &ignored(&[("OTEL_TRACES_SAMPLER", "jaeger_remote")])[0];
        assert_eq!(e.variable, "OTEL_TRACES_SAMPLER");
    }

    #[test]
    fn configured_resource_attributes_override_detected_ones_in_place() {
        let mut c = TracerConfig {
            detected_resource: vec![
                ("service.instance.id".into(), "detected".into()),
                ("host.name".into(), "box".into()),
            ],
            resource_attributes: vec![
                ("process.runtime.name".into(), "go".into()),
                ("team".into(), "a".into()),
            ],
            ..TracerConfig::default()
        };
        c.apply_env(&env(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.instance.id=mine,team=b,zone=eu,process.runtime.name=tinygo",
        )]))
        .expect("valid");
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            c.resource(),
            pairs(&[
                ("service.instance.id", "mine"),
                ("host.name", "box"),
                ("team", "a"),
                ("zone", "eu"),
                ("process.runtime.name", "tinygo"),
            ]),
            "the code's team wins over the environment's; a binding's runtime does not"
        );
    }

    #[test]
    fn a_service_name_given_in_code_wins_over_the_environment() {
        let env_pairs = [
            ("OTEL_SERVICE_NAME", "from-env"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"),
        ];
        let mut c = TracerConfig {
            service_name: "from-code".into(),
            ..TracerConfig::default()
        };
        c.apply_env(&env(&env_pairs)).expect("valid");
        assert_eq!(c.service_name, "from-code");
        // As a resource attribute given in code, too.
        let mut c = TracerConfig {
            resource_attributes: vec![("service.name".into(), "from-code".into())],
            ..TracerConfig::default()
        };
        c.apply_env(&env(&env_pairs)).expect("valid");
        assert_eq!(c.service_name, TracerConfig::default().service_name);
        // Not given: OTEL_SERVICE_NAME, then the attribute.
        let mut c = TracerConfig::default();
        c.apply_env(&env(&env_pairs)).expect("valid");
        assert_eq!(c.service_name, "from-env");
        let mut c = TracerConfig::default();
        c.apply_env(&env(&env_pairs[1..])).expect("valid");
        assert_eq!(c.service_name, "from-attrs");
    }

    #[test]
    fn the_struct_is_still_checked_and_its_errors_are_fatal() {
        let mut c = TracerConfig {
            exporter_max_cpu_percent: 0,
            ..TracerConfig::default()
        };
        let e = c
            .apply_env(&env(&[("SPANGUARD_EXPORTER_MAX_CPU_PERCENT", "50")]))
            .expect_err("the struct's own error");
        assert!(e.variable.starts_with("exporter_max_cpu_percent"), "{e}");
    }

    #[test]
    fn slot_counts_too_big_together_are_left_out_together() {
        let e = &ignored(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "9000000"),
            ("SPANGUARD_MAX_OPEN_SPANS", "9000000"),
        ])[0];
        assert_eq!(e.variable, "SPANGUARD_MAX_OPEN_SPANS", "{e}");
    }

    #[test]
    fn the_batch_ceiling_is_the_batch_size_capped_at_the_queue() {
        let mut c = TracerConfig::default();
        assert_eq!(c.batch_ceiling(), 512);
        c.max_queue_size = 100;
        assert_eq!(c.batch_ceiling(), 100);
    }

    /// `distro_set` of an environment holding `marker` in
    /// _SPANGUARD_DISTRO_SET (none: unset) and `protocol` in
    /// OTEL_EXPORTER_OTLP_PROTOCOL, with `more` beside.
    fn distro(
        marker: Option<&str>,
        protocol: Option<&str>,
        more: &[(&str, &str)],
    ) -> Vec<(&'static str, &'static str)> {
        let mut pairs: Vec<(&str, &str)> = more.to_vec();
        pairs.extend(marker.map(|m| (DISTRO_SET_VARIABLE, m)));
        pairs.extend(protocol.map(|p| ("OTEL_EXPORTER_OTLP_PROTOCOL", p)));
        distro_set(env(&pairs))
    }

    const GRPC: &[(&str, &str)] = &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")];

    #[test]
    fn the_distro_marker_names_a_default_only_while_it_holds() {
        let p = "OTEL_EXPORTER_OTLP_PROTOCOL";
        // Named with the distro's value, which the variable still holds,
        // among other entries, with blanks around it.
        assert_eq!(distro(Some(&format!("{p}=grpc")), Some("grpc"), &[]), GRPC);
        assert_eq!(
            distro(Some(&format!("A=1, {p}=grpc ,B=2")), Some("grpc"), &[]),
            GRPC
        );
        // No marker, or an empty one: the user's.
        assert_eq!(distro(None, Some("grpc"), &[]), []);
        assert_eq!(distro(Some(""), Some("grpc"), &[]), []);
        // The variable changed since (a value the user or a parent set),
        // or unset: nothing of the distro's left.
        assert_eq!(
            distro(Some(&format!("{p}=grpc")), Some("http/json"), &[]),
            []
        );
        assert_eq!(distro(Some(&format!("{p}=grpc")), None, &[]), []);
        // Named with another value than the distro's default: the distro
        // never sets that, whatever the variable holds.
        assert_eq!(
            distro(Some(&format!("{p}=http/json")), Some("http/json"), &[]),
            []
        );
        assert_eq!(distro(Some(&format!("{p}=GRPC")), Some("GRPC"), &[]), []);
        // A name not in the table is passed over, though it holds the
        // value named (OTEL_TRACES_EXPORTER=otlp is the distro's too, and
        // spanguard says nothing of otlp).
        assert_eq!(
            distro(
                Some("OTEL_TRACES_EXPORTER=otlp"),
                Some("grpc"),
                &[("OTEL_TRACES_EXPORTER", "otlp")]
            ),
            []
        );
        // Names are as written (the environment's are case-sensitive).
        assert_eq!(
            distro(Some("otel_exporter_otlp_protocol=grpc"), Some("grpc"), &[]),
            []
        );
    }

    #[test]
    fn a_distro_marker_of_garbage_names_nothing() {
        let p = "OTEL_EXPORTER_OTLP_PROTOCOL";
        for garbage in [
            ",",
            ",,,",
            "=",
            "==",
            "grpc",
            p,
            "=grpc",
            &format!("{p}grpc"),
            &format!("{p} grpc"),
            "\u{0}",
            "é=ü,\u{feff}",
        ] {
            assert_eq!(distro(Some(garbage), Some("grpc"), &[]), [], "{garbage:?}");
        }
        // Garbage beside a good entry leaves it good.
        assert_eq!(
            distro(Some(&format!(",=,x,{p}=grpc,=grpc,")), Some("grpc"), &[]),
            GRPC
        );
    }

    #[test]
    fn the_last_entry_of_a_name_in_the_distro_marker_counts() {
        let p = "OTEL_EXPORTER_OTLP_PROTOCOL";
        // As the wheel's dict keeps it.
        assert_eq!(
            distro(Some(&format!("{p}=grpc,{p}=http/json")), Some("grpc"), &[]),
            []
        );
        assert_eq!(
            distro(Some(&format!("{p}=http/json,{p}=grpc")), Some("grpc"), &[]),
            GRPC
        );
        assert_eq!(
            distro(Some(&format!("{p}=grpc,{p}=grpc")), Some("grpc"), &[]),
            GRPC
        );
    }

    #[test]
    fn an_equals_sign_in_a_distro_marker_value_is_part_of_the_value() {
        let p = "OTEL_EXPORTER_OTLP_PROTOCOL";
        // Split at the first '=': the value is "grpc=x", no default.
        assert_eq!(
            distro(Some(&format!("{p}=grpc=x")), Some("grpc=x"), &[]),
            []
        );
        assert_eq!(distro(Some(&format!("{p}=grpc=x")), Some("grpc"), &[]), []);
        assert_eq!(distro(Some(&format!("{p}==grpc")), Some("grpc"), &[]), []);
    }

    #[test]
    fn a_megabyte_distro_marker_is_read_whole() {
        let p = "OTEL_EXPORTER_OTLP_PROTOCOL";
        let long = "g".repeat(1 << 20);
        // A 1 MB value is no default; an entry after it still counts.
        assert_eq!(distro(Some(&format!("{p}={long}")), Some(&long), &[]), []);
        assert_eq!(
            distro(Some(&format!("{p}=grpc{long}")), Some("grpc"), &[]),
            []
        );
        assert_eq!(
            distro(Some(&format!("{p}={long},{p}=grpc")), Some("grpc"), &[]),
            GRPC
        );
        assert_eq!(
            distro(Some(&format!("{p}=grpc,X={long}")), Some("grpc"), &[]),
            GRPC
        );
        // As many entries: each passed over, the good one found.
        let many = "A=1,".repeat(1 << 18);
        assert_eq!(
            distro(Some(&format!("{many}{p}=grpc")), Some("grpc"), &[]),
            GRPC
        );
    }

    #[test]
    fn the_distro_defaults_are_names_the_environment_reading_asks_for() {
        // A name in the table that `apply_env` never reads could never be
        // read as unset: the table would say something of nothing.
        let asked = std::cell::RefCell::new(Vec::new());
        let _ = TracerConfig::default().apply_env(&|name| {
            asked.borrow_mut().push(name.to_string());
            None
        });
        for (name, _) in DISTRO_DEFAULTS {
            assert!(asked.borrow().iter().any(|a| a == name), "{name}");
        }
    }
}
