//! The directories the subcommands default to, from the same OTEL_* and
//! SPANGUARD_* variables the library reads (a bad one is ignored and
//! reported as the library would).

use std::path::PathBuf;
use std::process::ExitCode;

use spanguard::config::{TracerConfig, check_headers, parse_key_values_checked};

/// The library's settings from this process's environment, or the exit a
/// subcommand takes after saying what is wrong.
pub fn from_env() -> Result<TracerConfig, ExitCode> {
    let mut config = TracerConfig::default();
    match config.apply_process_env() {
        Ok(()) => {
            // Ignored as the library ignores them, and said as it says them.
            for ignored in &config.ignored_env {
                eprintln!("spanguard: warn: {}", ignored.as_ignored());
            }
            Ok(config)
        }
        Err(e) => {
            eprintln!("spanguard: {e}");
            Err(ExitCode::from(2))
        }
    }
}

/// The spool's cap as tracers in this environment have it
/// (SPANGUARD_SPOOL_MAX_BYTES, or the default): no spool file they write
/// or read is larger (`spool::read_limit`), so none larger is read here.
/// A bad setting was said where the directories were read, or is the
/// library's to say: the default then, as the library falls back.
pub fn spool_cap() -> u64 {
    static CAP: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *CAP.get_or_init(|| {
        let mut config = TracerConfig::default();
        match config.apply_process_env() {
            Ok(()) => config.spool_max_bytes,
            Err(_) => TracerConfig::default().spool_max_bytes,
        }
    })
}

/// The largest crash dump or flight file tracers in this environment
/// write (`dump::largest_file` of their slots and payload pool:
/// OTEL_BSP_MAX_QUEUE_SIZE, SPANGUARD_MAX_OPEN_SPANS,
/// SPANGUARD_PAYLOAD_POOL_MIB), and never less than with the defaults: a
/// file named like one and larger is not read. One of 1.5 GiB was read
/// whole into memory by `show` and `spool`.
pub fn dump_cap() -> u64 {
    use spanguard::buffer::dump::largest_file;
    use spanguard::buffer::payload_pool::chunks_for_mib;
    static CAP: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *CAP.get_or_init(|| {
        let of =
            |c: &TracerConfig| largest_file(c.slot_count(), chunks_for_mib(c.payload_pool_mib));
        let default = of(&TracerConfig::default());
        let mut config = TracerConfig::default();
        match config.apply_process_env() {
            Ok(()) => of(&config).max(default),
            Err(_) => default,
        }
    })
}

/// What is said of a crash dump or flight file over `dump_cap`, which is
/// not read.
pub fn over_dump_cap(size: u64) -> String {
    format!(
        "{size} bytes, more than a crash dump or flight file of this environment's tracers can \
         be ({} bytes, from OTEL_BSP_MAX_QUEUE_SIZE, SPANGUARD_MAX_OPEN_SPANS and \
         SPANGUARD_PAYLOAD_POOL_MIB): not read",
        dump_cap()
    )
}

/// Said when the default directories hold nothing and an endpoint is set
/// (and by `tail`, following the default sink, at its start).
/// The URL is not printed: it may carry credentials.
pub const ENDPOINT_NOTE: &str = "spanguard: an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or \
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): spans go there, not to the local sink, and the spool holds \
only those it has not taken yet; look at them in that backend";

/// The local sink and spool directories.
pub fn default_dirs() -> Result<(PathBuf, PathBuf), ExitCode> {
    let c = from_env()?;
    Ok((c.sink_dir, c.spool_dir))
}

/// The traces URL of an `--endpoint URL` argument: one ending in
/// /v1/traces is used as it is, any other is a base URL that /v1/traces is
/// added to (as OTEL_EXPORTER_OTLP_ENDPOINT is).
pub fn traces_url(endpoint: &str) -> String {
    if endpoint.trim_end_matches('/').ends_with("/v1/traces") {
        endpoint.to_string()
    } else {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    }
}

/// Only what curl would send over HTTP: never file:// (curl would read a
/// local file) nor a typo. Said without the URL's password.
pub fn check_http_url(url: &str) -> Result<(), String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(format!(
            "the endpoint must be an http:// or https:// URL, not {}",
            spanguard::export::redact::redact_url(url)
        ))
    }
}

/// The request headers of a `--headers` argument, in the format of
/// OTEL_EXPORTER_OTLP_HEADERS (`name=value,...`, a space as %20), checked
/// as the library checks that variable's; the error names `--headers`.
pub fn headers_option(text: &str) -> Result<Vec<(String, String)>, String> {
    let headers = parse_key_values_checked(text)
        .map_err(|e| format!("--headers must be name=value,... ({e})"))?;
    check_headers(&headers).map_err(|reason| format!("--headers: {reason}"))?;
    Ok(headers)
}
