//! The one place that decides a tracer's settings: defaults, then what the
//! caller passed, then (for `from_env`) the standard OTEL_* variables and our
//! own SPANGUARD_* ones.

use std::path::PathBuf;
use std::time::Duration;

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

/// What `begin` does when every span slot is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FullPolicy {
    /// Give up at once; the span is counted as dropped.
    Drop,
    /// Wake the exporter and wait up to `full_wait` for a slot, then drop
    /// and count.
    Wait,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TracerConfig {
    pub service_name: String,
    pub resource_attributes: Vec<(String, String)>,
    /// The full URL spans are POSTed to; None sends them to `sink_dir`.
    pub endpoint: Option<String>,
    pub headers: Vec<(String, String)>,
    pub protocol: Protocol,
    pub compression: Compression,
    /// Time allowed for one HTTP request.
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
    pub flight_recorder: bool,
    /// How long the signal watchdog may flush before the process dies.
    pub signal_flush_timeout: Duration,
    /// The most CPU the exporter thread may use, in percent of one core,
    /// while the queue is less than half full (a fuller queue lifts the cap:
    /// throttling must never cost a span).
    pub exporter_max_cpu_percent: u32,
    /// Which spans are recorded and exported (OTEL_TRACES_SAMPLER).
    pub sampler: crate::span::sampler::Sampler,
}

/// Where spanguard keeps its state by default: `$XDG_STATE_HOME/spanguard`,
/// else `~/.local/state/spanguard`, else (no HOME, as in some containers
/// and services) `$TMPDIR/spanguard-<uid>`. A shared temporary directory
/// lets another user make that directory first: a tracer refuses to start
/// when it (or any spool or sink directory) belongs to someone else, and
/// makes it private when it is ours (`buffer::files::ensure_private_dir`).
pub fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("spanguard");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(h).join(".local/state/spanguard");
    }
    std::env::temp_dir().join(format!("spanguard-{}", current_uid()))
}

fn current_uid() -> u32 {
    // SAFETY: getuid cannot fail and has no preconditions.
    unsafe { libc::getuid() }
}

impl Default for TracerConfig {
    fn default() -> Self {
        let state = default_state_dir();
        TracerConfig {
            service_name: "unknown_service".to_string(),
            resource_attributes: Vec::new(),
            endpoint: None,
            headers: Vec::new(),
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
            flight_recorder: false,
            signal_flush_timeout: Duration::from_secs(3),
            exporter_max_cpu_percent: 50,
            sampler: crate::span::sampler::Sampler::default(),
        }
    }
}

/// A setting that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: String,
    pub reason: String,
}

impl TracerConfig {
    /// The number of span slots to preallocate.
    pub fn slot_count(&self) -> u32 {
        self.max_queue_size.saturating_add(self.max_open_spans)
    }

    /// The largest batch that can ever wait in the queue: the batch size,
    /// capped at the queue size as the OTel batch processor specifies. The
    /// exporter's wake-up threshold never exceeds it, or a batch could
    /// never fill.
    pub fn batch_ceiling(&self) -> u32 {
        self.max_export_batch_size.min(self.max_queue_size)
    }

    /// Checks ranges that would make the tracer unusable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |v: &str, r: &str| {
            Err(ConfigError {
                variable: v.to_string(),
                reason: r.to_string(),
            })
        };
        if self.max_queue_size == 0 {
            return bad("max_queue_size", "must be at least 1");
        }
        if self.max_export_batch_size == 0 {
            return bad("max_export_batch_size", "must be at least 1");
        }
        if !(1..=100).contains(&self.exporter_max_cpu_percent) {
            return bad("exporter_max_cpu_percent", "must be between 1 and 100");
        }
        if self.slot_count() >= crate::span::limits::MAX_SLOTS {
            return bad(
                "max_queue_size",
                "queue plus open spans must stay below 2^24",
            );
        }
        if let Some(e) = &self.endpoint
            && !(e.starts_with("http://") || e.starts_with("https://") || e == "discard:")
        {
            return bad(
                "endpoint",
                "must start with http:// or https://, or be discard:",
            );
        }
        Ok(())
    }

    /// Applies the environment on top of `self`, as `lookup` reports it (so
    /// tests need not touch the process environment).
    pub fn apply_env(
        &mut self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let err = |name: &str, reason: &str| ConfigError {
            variable: name.to_string(),
            reason: reason.to_string(),
        };
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
        let count = |name: &str| -> Result<Option<u32>, ConfigError> {
            match get(name) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<u32>()
                    .map(Some)
                    .map_err(|_| err(name, "not a whole number")),
            }
        };
        let boolean = |name: &str| -> Result<Option<bool>, ConfigError> {
            match get(name).map(|v| v.trim().to_ascii_lowercase()) {
                None => Ok(None),
                Some(v) if v == "true" || v == "1" => Ok(Some(true)),
                Some(v) if v == "false" || v == "0" => Ok(Some(false)),
                Some(_) => Err(err(name, "not true or false")),
            }
        };

        if let Some(v) = boolean("OTEL_SDK_DISABLED")? {
            self.disabled = v;
        }
        if let Some(name) = get("OTEL_TRACES_SAMPLER") {
            let arg = get("OTEL_TRACES_SAMPLER_ARG");
            self.sampler = crate::span::sampler::Sampler::from_names(&name, arg.as_deref())
                .map_err(|reason| err("OTEL_TRACES_SAMPLER", &reason))?;
        }
        if let Some(attrs) = get("OTEL_RESOURCE_ATTRIBUTES") {
            let parsed = parse_key_values(&attrs)
                .ok_or_else(|| err("OTEL_RESOURCE_ATTRIBUTES", "not key=value,..."))?;
            for (k, v) in parsed {
                if k == "service.name" {
                    self.service_name = v;
                } else {
                    self.resource_attributes
                        .retain(|(existing, _)| *existing != k);
                    self.resource_attributes.push((k, v));
                }
            }
        }
        // OTEL_SERVICE_NAME wins over service.name in the resource attributes.
        if let Some(name) = get("OTEL_SERVICE_NAME") {
            self.service_name = name.trim().to_string();
        }
        if let Some(url) = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            self.endpoint = Some(url.trim().to_string());
        } else if let Some(base) = get("OTEL_EXPORTER_OTLP_ENDPOINT") {
            // The generic endpoint is a base URL: the signal's path is appended.
            let base = base.trim().trim_end_matches('/');
            self.endpoint = Some(format!("{base}/v1/traces"));
        }
        if let Some(h) =
            get("OTEL_EXPORTER_OTLP_TRACES_HEADERS").or_else(|| get("OTEL_EXPORTER_OTLP_HEADERS"))
        {
            self.headers = parse_key_values(&h)
                .ok_or_else(|| err("OTEL_EXPORTER_OTLP_HEADERS", "not key=value,..."))?;
        }
        if let Some(c) = get("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION")
            .or_else(|| get("OTEL_EXPORTER_OTLP_COMPRESSION"))
        {
            self.compression = match c.trim() {
                "gzip" => Compression::Gzip,
                "none" => Compression::None,
                _ => return Err(err("OTEL_EXPORTER_OTLP_COMPRESSION", "not gzip or none")),
            };
        }
        if let Some(p) =
            get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| get("OTEL_EXPORTER_OTLP_PROTOCOL"))
        {
            self.protocol = match p.trim() {
                "http/protobuf" => Protocol::HttpProtobuf,
                "http/json" => Protocol::HttpJson,
                _ => {
                    return Err(err(
                        "OTEL_EXPORTER_OTLP_PROTOCOL",
                        "spanguard speaks http/protobuf and http/json",
                    ));
                }
            };
        }
        if let Some(t) =
            millis("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")?.or(millis("OTEL_EXPORTER_OTLP_TIMEOUT")?)
        {
            self.request_timeout = t;
        }
        if let Some(t) = millis("OTEL_BSP_SCHEDULE_DELAY")? {
            self.schedule_delay = t;
        }
        if let Some(n) = count("OTEL_BSP_MAX_QUEUE_SIZE")? {
            self.max_queue_size = n;
        }
        if let Some(n) = count("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")? {
            self.max_export_batch_size = n;
        }
        if let Some(t) = millis("OTEL_BSP_EXPORT_TIMEOUT")? {
            self.export_timeout = t;
        }
        if let Some(d) = get("SPANGUARD_SINK_DIR") {
            self.sink_dir = PathBuf::from(d);
        }
        if let Some(d) = get("SPANGUARD_SPOOL_DIR") {
            self.spool_dir = PathBuf::from(d);
        }
        if let Some(n) = get("SPANGUARD_SPOOL_MAX_BYTES") {
            self.spool_max_bytes = n
                .trim()
                .parse()
                .map_err(|_| err("SPANGUARD_SPOOL_MAX_BYTES", "not a whole number"))?;
        }
        if let Some(n) = count("SPANGUARD_MAX_OPEN_SPANS")? {
            self.max_open_spans = n;
        }
        if let Some(p) = get("SPANGUARD_FULL_POLICY") {
            self.full_policy = match p.trim() {
                "drop" => FullPolicy::Drop,
                "wait" => FullPolicy::Wait,
                _ => return Err(err("SPANGUARD_FULL_POLICY", "not drop or wait")),
            };
        }
        if let Some(t) = millis("SPANGUARD_FULL_WAIT_MS")? {
            self.full_wait = t;
        }
        if let Some(v) = boolean("SPANGUARD_SIGNAL_HANDLERS")? {
            self.install_signal_handlers = v;
        }
        if let Some(v) = boolean("SPANGUARD_FLIGHT_RECORDER")? {
            self.flight_recorder = v;
        }
        if let Some(n) = count("SPANGUARD_EXPORTER_MAX_CPU_PERCENT")? {
            if !(1..=100).contains(&n) {
                return Err(err(
                    "SPANGUARD_EXPORTER_MAX_CPU_PERCENT",
                    "not between 1 and 100",
                ));
            }
            self.exporter_max_cpu_percent = n;
        }
        if let Some(t) = millis("SPANGUARD_SIGNAL_FLUSH_TIMEOUT_MS")? {
            self.signal_flush_timeout = t;
        }
        self.validate()
    }
}

/// Parses the W3C-baggage-like `k=v,k2=v2` list the OTEL_* variables use;
/// values (and keys) are percent-decoded. None when an entry has no '='.
pub fn parse_key_values(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for entry in text.split(',') {
        if entry.trim().is_empty() {
            continue;
        }
        let (k, v) = entry.split_once('=')?;
        let k = percent_decode(k.trim());
        if k.is_empty() {
            return None;
        }
        out.push((k, percent_decode(v.trim())));
    }
    Some(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
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
    fn bad_values_name_their_variable() {
        for (k, v) in [
            ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_SDK_DISABLED", "maybe"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
        ] {
            let mut c = TracerConfig::default();
            let e = c.apply_env(&env(&[(k, v)])).expect_err(k);
            assert!(!e.variable.is_empty());
        }
    }

    #[test]
    fn disabled_is_read() {
        let mut c = TracerConfig::default();
        c.apply_env(&env(&[("OTEL_SDK_DISABLED", "TRUE")]))
            .expect("valid");
        assert!(c.disabled);
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
        let e = TracerConfig::default()
            .apply_env(&env(&[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "half"),
            ]))
            .unwrap_err();
        assert_eq!(e.variable, "OTEL_TRACES_SAMPLER");
        assert!(e.reason.contains("OTEL_TRACES_SAMPLER_ARG=half"), "{e:?}");
    }

    #[test]
    fn the_batch_ceiling_is_the_batch_size_capped_at_the_queue() {
        let mut c = TracerConfig::default();
        assert_eq!(c.batch_ceiling(), 512);
        c.max_queue_size = 100;
        assert_eq!(c.batch_ceiling(), 100);
    }
}
