//! `spanguard check`: what a tracer started in this environment would do
//! with its spans, said before any agent runs: the settings the library
//! takes from the OTEL_* and SPANGUARD_* variables (read by the library's
//! own `TracerConfig::apply_env`, its warnings word for word), and, with
//! an OTLP endpoint, the backend's answer to one empty export request sent
//! through the library's own transport (curl, the same headers, TLS and
//! proxy variables, compression), told in the transport's own words.

use std::cell::RefCell;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use spanguard::config::{
    Compression, DISTRO_SET_VARIABLE, FullPolicy, LogLevel, Protocol, TracerConfig,
};
use spanguard::export::gzip::GzipWriter;
use spanguard::export::http::{
    HttpTransport, Refusal, no_proxy_covering, proxy_variable_set, refusal_reason,
};
use spanguard::export::redact::redact_url;
use spanguard::export::transport::{BodyFormat, SendError, Transport};

use super::args::Args;
use super::settings;

pub const HELP: &str = "\
usage: spanguard check [--endpoint URL] [--headers name=value,...]

Says what a tracer started in this environment would do with its spans, from
the same OTEL_* and SPANGUARD_* variables the library reads: where spans go
(the local sink directory, or the OTLP/HTTP traces URL), the format,
compression, header names (never their values), timeouts, what waits in the
spool, the flight recorder, the sampler and every setting not at its default.
Each variable the library would ignore is named with the reason it gives, and
so is each OTEL_* or SPANGUARD_* variable it does not read at all.

With an OTLP endpoint, one empty export request (no spans: an OTLP receiver
answers it 200) is sent through the library's own transport, with the same
headers, TLS files, proxy variables and compression, and the answer is said:
\"OK: URL answered 200 in 12 ms\", or what went wrong (nothing listening, a 404
for a wrong path, a 401 for missing or wrong credentials, a gRPC port, a proxy,
TLS) and what to change. Nothing else is sent; without an endpoint nothing is.
An OK says the backend answers, not that it takes spans: with spans waiting in
the spool, a note beside it says so and that spanguard replay sends them and
says what each request of spans gets.

  --endpoint URL   check this http:// or https:// URL instead of the
                   environment's (/v1/traces is added to a base URL)
  --headers k=v,...
                   send these request headers (an API key) instead of those of
                   OTEL_EXPORTER_OTLP_(TRACES_)HEADERS, in the same format:
                   name=value pairs, a comma between, a space as %20

Exit status: 0 when every variable is usable and the backend (if any) accepted
the request, 1 when the backend refused it or could not be reached (or the
local sink directory cannot be written), 2 on a usage error, a spool or sink
directory a tracer refuses to start with (another user's, or on a way another
user may change), a variable the library ignores for its value, or a misspelt
name of one that says where spans go (an endpoint, the headers, the sink or
spool directory, OTEL_SDK_DISABLED: the spans then go elsewhere). Those come
first: they may be why the backend refused. Another misspelt name is a warning
only.
";

/// The variables whose misspelling sends the spans elsewhere (or nowhere,
/// or unauthenticated): a check that passed with one of them misspelt let
/// a CI step pass while the agent's spans went to the local sink.
fn decides_where_spans_go(meant: &str) -> bool {
    meant.ends_with("_ENDPOINT")
        || meant.ends_with("_HEADERS")
        || matches!(
            meant,
            "SPANGUARD_SINK_DIR" | "SPANGUARD_SPOOL_DIR" | "OTEL_SDK_DISABLED"
        )
}

/// The settings that take a value (a count, a time) and what each is in
/// `config`: those not at their default are listed, by their variable.
/// The endpoint, headers, format, timeouts and the like have lines of
/// their own.
type Shown = fn(&TracerConfig) -> String;
const SETTINGS: &[(&str, Shown)] = &[
    ("OTEL_BSP_SCHEDULE_DELAY", |c| millis(c.schedule_delay)),
    ("OTEL_BSP_MAX_QUEUE_SIZE", |c| c.max_queue_size.to_string()),
    ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", |c| {
        c.max_export_batch_size.to_string()
    }),
    ("SPANGUARD_MAX_OPEN_SPANS", |c| c.max_open_spans.to_string()),
    ("SPANGUARD_FULL_POLICY", |c| match c.full_policy {
        FullPolicy::Drop => "drop".to_string(),
        FullPolicy::Wait => "wait".to_string(),
    }),
    ("SPANGUARD_FULL_WAIT_MS", |c| millis(c.full_wait)),
    ("SPANGUARD_MAX_REQUEST_BYTES", |c| {
        format!("{} bytes", c.max_request_bytes)
    }),
    ("SPANGUARD_SINK_MAX_LINE_BYTES", |c| {
        format!("{} bytes", c.sink_max_line_bytes)
    }),
    ("SPANGUARD_SPOOL_MAX_BYTES", |c| {
        format!("{} bytes", c.spool_max_bytes)
    }),
    ("SPANGUARD_PAYLOAD_POOL_MIB", |c| {
        format!("{} MiB", c.payload_pool_mib)
    }),
    ("SPANGUARD_SIGNAL_HANDLERS", |c| {
        match (c.install_signal_handlers, c.install_crash_handlers) {
            (false, _) => "false".to_string(),
            (true, false) => "termination".to_string(),
            (true, true) => "true".to_string(),
        }
    }),
    ("SPANGUARD_SIGNAL_FLUSH_TIMEOUT_MS", |c| {
        millis(c.signal_flush_timeout)
    }),
    ("SPANGUARD_PREFAULT_SLOTS", |c| c.prefault_slots.to_string()),
    ("SPANGUARD_EXPORTER_MAX_CPU_PERCENT", |c| {
        format!("{}%", c.exporter_max_cpu_percent)
    }),
    ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", |c| {
        match c.limits.attribute_value_length {
            u32::MAX => "no limit".to_string(),
            n => n.to_string(),
        }
    }),
    ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", |c| {
        c.limits.attribute_count.to_string()
    }),
    ("OTEL_SPAN_EVENT_COUNT_LIMIT", |c| {
        c.limits.event_count.to_string()
    }),
    ("OTEL_SPAN_LINK_COUNT_LIMIT", |c| {
        c.limits.link_count.to_string()
    }),
    ("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", |c| {
        c.limits.event_attribute_count.to_string()
    }),
    ("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", |c| {
        c.limits.link_attribute_count.to_string()
    }),
    ("SPANGUARD_ATTRIBUTE_VALUE_DEPTH_LIMIT", |c| {
        c.limits.attribute_value_depth.to_string()
    }),
];

/// Variables of ours read outside the configuration (by the component
/// they concern, process-wide; the caps of the Python and Node bridges'
/// log record processors, by the bindings): not news when set.
const READ_ELSEWHERE: &[&str] = &[
    "SPANGUARD_NO_BIAS",
    "SPANGUARD_LOG_RECORDS_MAX_HELD",
    "SPANGUARD_LOG_RECORDS_MAX_HELD_BYTES",
];

fn millis(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// The first of `names` that is set and that the library took (not
/// ignored for its value): the variable a setting came from.
fn taken_from<'a>(names: &[&'a str], config: &TracerConfig) -> Option<&'a str> {
    names.iter().copied().find(|name| {
        std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
            && !config.ignored_env.iter().any(|e| e.variable == *name)
    })
}

/// The OTEL_* and SPANGUARD_* variables set in this environment that the
/// library does not read, each with why. `asked` holds every name the
/// library's configuration looked up.
fn not_read(asked: &[String], misspelt: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    let mut names: Vec<(String, String)> = std::env::vars_os()
        .map(|(n, v)| {
            (
                n.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .filter(|(n, _)| {
            let upper = n.to_ascii_uppercase();
            upper.starts_with("OTEL_") || upper.starts_with("SPANGUARD_")
        })
        .collect();
    names.sort();
    for (name, value) in names {
        let shown = super::terminal::clean(&name);
        if asked.contains(&name) {
            // Read, and taken as unset when empty (the SDKs do the same).
            if value.trim().is_empty() {
                out.push(format!("{shown}: empty, so taken as unset"));
            }
            continue;
        }
        if READ_ELSEWHERE.contains(&name.as_str()) {
            continue;
        }
        let traces_form = name
            .strip_prefix("OTEL_EXPORTER_OTLP_")
            .map(|rest| format!("OTEL_EXPORTER_OTLP_TRACES_{rest}"));
        if let Some((_, meant)) = misspelt.iter().find(|(set, _)| *set == name) {
            out.push(format!(
                "{shown}: not a variable spanguard reads: {meant} was meant? (spelt so, it is \
                 ignored)"
            ));
            continue;
        }
        let reason = match traces_form {
            Some(t) if asked.contains(&t) => {
                format!("not used: {t} is set and is taken instead")
            }
            _ if name == "OTEL_TRACES_SAMPLER_ARG" => {
                "not used: it is read with OTEL_TRACES_SAMPLER, which is not set".to_string()
            }
            _ if name.starts_with("SPANGUARD_") => {
                "not a variable spanguard reads (misspelt? the README's configuration \
                 table lists them)"
                    .to_string()
            }
            _ if name.starts_with("OTEL_EXPORTER_OTLP_") => {
                "not read by spanguard (it sends traces over OTLP/HTTP; this option or \
                 signal is not one it has)"
                    .to_string()
            }
            _ => "not read by spanguard (another OpenTelemetry component may read it)".to_string(),
        };
        out.push(format!("{shown}: {reason}"));
    }
    out
}

/// HTTP_PROXY's value when it is set (not empty) for an http:// `url`
/// and curl takes no notice of it: it reads the lower-case http_proxy
/// alone for http://, and that is not set.
fn ignored_upper_http_proxy(
    url: &str,
    get: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Option<String> {
    let set = |n: &str| get(n).filter(|v| !v.is_empty());
    if !url.starts_with("http://") || set("http_proxy").is_some() {
        return None;
    }
    set("HTTP_PROXY").map(|v| v.to_string_lossy().into_owned())
}

/// How `check --endpoint URL` took the URL given, said after the URL
/// checked: a base URL has /v1/traces added (as
/// OTEL_EXPORTER_OTLP_ENDPOINT has, the OTLP rule), one ending in
/// /v1/traces is used as it is (as OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is).
fn taken_as(given: &str) -> String {
    if given.trim_end_matches('/').ends_with("/v1/traces") {
        String::new()
    } else {
        format!(
            " (--endpoint {}, a base URL, with /v1/traces added)",
            super::terminal::clean(&redact_url(given))
        )
    }
}

/// Where the request headers of the check came from: the `--headers`
/// flag, or the environment (OTEL_EXPORTER_OTLP_(TRACES_)HEADERS, which
/// the transport's own hints name).
#[derive(Clone, Copy, PartialEq, Eq)]
enum HeadersFrom {
    Flag,
    Environment,
}

/// A refusal's reason for `check --endpoint URL`, made from the refusal's
/// parts (the status, the server's words) and a hint worded for the
/// flags: the transport's hints are worded for the variables, which a
/// user who gave the flag never set (`--endpoint http://h:4318/v1/trace`
/// probed /v1/trace/v1/traces and was told of OTEL_EXPORTER_OTLP_ENDPOINT
/// against _TRACES_ENDPOINT; a 401 was told to set
/// OTEL_EXPORTER_OTLP_HEADERS, where `--headers` gives them to this
/// check). None for another refusal: the transport's words stand.
fn for_the_flag(
    refusal: &Refusal,
    given: &str,
    headers: &[(String, String)],
    from: HeadersFrom,
) -> Option<String> {
    let hint = match refusal.code {
        404 => path_hint_for_the_flag(given),
        401 | 403 => credentials_hint_for_the_flag(headers, from),
        _ => return None,
    };
    Some(refusal_reason(refusal.code, &refusal.answer, Some(&hint)))
}

/// What a 404 at `--endpoint given` says to change: the URL to give.
fn path_hint_for_the_flag(given: &str) -> String {
    let trimmed = given.trim_end_matches('/');
    let shown = super::terminal::clean(&redact_url(trimmed));
    if trimmed.ends_with("/v1/traces") {
        return format!(
            "nothing takes traces at this URL: --endpoint {shown} ends in /v1/traces, so it is \
             used as it is: check the host, the port (OTLP/HTTP's is 4318) and any path before \
             /v1/traces"
        );
    }
    let typo = ["/v1/trace", "/v1/span", "/v1/spans"]
        .into_iter()
        .find(|t| trimmed.ends_with(t));
    match typo {
        Some(t) => {
            let base = &shown[..shown.len() - t.len()];
            format!(
                "--endpoint takes a base URL and adds /v1/traces to it, so {shown} was \
                 taken as a base; the OTLP/HTTP traces path is /v1/traces: give \
                 --endpoint {base} or --endpoint {base}/v1/traces"
            )
        }
        None => format!(
            "nothing takes traces at this URL: --endpoint takes a base URL and adds \
             /v1/traces to it ({shown} was taken as one), or a whole URL ending in \
             /v1/traces, used as it is: give the collector's or backend's OTLP/HTTP URL"
        ),
    }
}

/// What a 401 or 403 at `--endpoint` says to change: the headers, given
/// to this check with `--headers` (names said, never values).
fn credentials_hint_for_the_flag(headers: &[(String, String)], from: HeadersFrom) -> String {
    const FORMAT: &str = "name=value,..., as OTEL_EXPORTER_OTLP_HEADERS takes them, a space as \
                          %20: --headers Authorization=Bearer%20<key>";
    if headers.is_empty() {
        return format!(
            "the backend wants credentials and none were sent: give the header it expects, \
             e.g. its API key, with --headers ({FORMAT})"
        );
    }
    let names: Vec<String> = headers
        .iter()
        .map(|(name, _)| super::terminal::clean(name))
        .collect();
    let source = match from {
        HeadersFrom::Flag => "--headers",
        HeadersFrom::Environment => "OTEL_EXPORTER_OTLP_HEADERS",
    };
    format!(
        "the backend refused the credentials sent (headers: {}, from {source}): check the key \
         and the header name the backend expects, and give them with --headers ({FORMAT})",
        names.join(", ")
    )
}

/// What to do about a failed check, where the transport's words do not
/// already say it: `transport_hint` is the hint its reason ends with
/// (`HttpTransport::last_hint`: a refusal's path or credentials, the gRPC
/// port, the proxy). Told apart by looking for `" ("` in the reason, a
/// server's own words in parentheses ("HTTP 503: down (maintenance)") or
/// curl's ("... (Couldn't connect to server)") read as a hint given, and
/// the user was told nothing to do.
fn what_to_do(
    error: &SendError,
    transport_hint: Option<&str>,
    config: &TracerConfig,
) -> Option<String> {
    let reason = error.reason();
    // Before the test for the transport's own hint below: curl's words
    // for an untrusted certificate end in OpenSSL's code ("unable to get
    // local issuer certificate (20)"), which read as a hint given, and
    // the user was told nothing of OTEL_EXPORTER_OTLP_CERTIFICATE.
    if reason.starts_with("TLS certificate verification failed") {
        return Some(match &config.tls.certificate {
            Some(ca) => format!(
                "the server's certificate is not signed by the CA in {} \
                 (OTEL_EXPORTER_OTLP_CERTIFICATE): set it to the CA certificate that signed \
                 the server's (a PEM file), or check that the endpoint's host is the name the \
                 certificate was issued for",
                ca.display()
            ),
            None => "the server's certificate is not trusted here: set \
                     OTEL_EXPORTER_OTLP_CERTIFICATE to the CA certificate that signed it (a PEM \
                     file)"
                .to_string(),
        });
    }
    if transport_hint.is_some() {
        return None;
    }
    let hint = if reason.starts_with("connection refused") {
        "nothing takes connections at that host and port: start the collector or backend, \
         or correct the endpoint (OTLP/HTTP's port is 4318)"
            .to_string()
    } else if reason.starts_with("DNS lookup failed") {
        "the host name does not resolve here: correct the endpoint's host".to_string()
    } else if reason.starts_with("timed out") {
        format!(
            "no answer within the request timeout ({} ms, OTEL_EXPORTER_OTLP_TIMEOUT): a \
             firewall dropping the connection, a wrong host or port, or a backend too slow",
            config.request_timeout.as_millis()
        )
    } else if reason.starts_with("TLS handshake failed") {
        "check the https:// endpoint's port, and the client certificate and key \
         (OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE, OTEL_EXPORTER_OTLP_CLIENT_KEY) if the server \
         asks for one"
            .to_string()
    } else {
        match error {
            SendError::Transient { .. } => {
                "the backend is busy or down for now: a tracer would retry, then keep its \
                 spans in the spool for a later start or spanguard replay"
                    .to_string()
            }
            _ => return None,
        }
    };
    Some(hint)
}

/// The empty ExportTraceServiceRequest in `format`: no resource spans,
/// which OTLP says a server SHOULD answer with success ("If the server
/// receives an empty request (a request that does not carry any telemetry
/// data) the server SHOULD respond with success", OTLP/HTTP Full Success).
/// Its protobuf encoding is no bytes at all.
fn empty_request(format: BodyFormat) -> &'static [u8] {
    match format {
        BodyFormat::Protobuf => b"",
        BodyFormat::Json => b"{}",
    }
}

/// Sends the empty request to `url` as a tracer of `config` would, and
/// says the answer. True when the backend accepted it.
fn probe(url: &str, given: Option<&str>, config: &TracerConfig, from: HeadersFrom) -> bool {
    let format = match config.protocol {
        Protocol::HttpProtobuf => BodyFormat::Protobuf,
        Protocol::HttpJson => BodyFormat::Json,
    };
    let gzipped = config.compression == Compression::Gzip;
    let mut body = empty_request(format).to_vec();
    if gzipped {
        let plain = std::mem::take(&mut body);
        GzipWriter::new().compress(&plain, &mut body);
    }
    let mut transport = HttpTransport::new(
        url,
        &config.headers,
        &config.tls,
        config.request_timeout,
        Default::default(),
    );
    let target = transport.describe();
    let started = Instant::now();
    let answer = transport.send(&body, format, gzipped);
    let took = started.elapsed().as_millis();
    match answer {
        Ok(accepted) => {
            let status = transport
                .last_status()
                .map_or("2xx".to_string(), |c| c.to_string());
            println!("OK: {target} answered {status} in {took} ms");
            if !accepted.message.is_empty() {
                println!("  the backend's message: {}", accepted.message);
            }
            true
        }
        Err(e) => {
            let flag_words = given
                .zip(transport.last_refusal())
                .and_then(|(given, r)| for_the_flag(r, given, &config.headers, from));
            // The library's words, with a server's and curl's in them:
            // escaped there, and here as every line of the command is.
            let reason = flag_words.unwrap_or_else(|| e.reason().to_string());
            println!(
                "FAILED: {target} after {took} ms: {}",
                super::terminal::clean(&reason)
            );
            if let Some(hint) = what_to_do(&e, transport.last_hint(), config) {
                println!("  what to do: {hint}");
            }
            false
        }
    }
}

pub fn run(args: &[String]) -> ExitCode {
    let a = match Args::parse(args, &["--help"], &["--endpoint", "--headers"]) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("spanguard check: {e} (spanguard check --help)");
            return ExitCode::from(2);
        }
    };
    if a.flag("--help") || a.positional.iter().any(|p| p == "-h") {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    if let Some(extra) = a.positional.first() {
        eprintln!("spanguard check: unexpected argument {extra} (spanguard check --help)");
        return ExitCode::from(2);
    }
    let probe_url = match a.value("--endpoint").map(settings::traces_url) {
        Some(url) => match settings::check_http_url(&url) {
            Ok(()) => Some(url),
            Err(e) => {
                eprintln!("spanguard check: --endpoint: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    // The settings as a tracer takes them (the process's environment,
    // variables that are not UTF-8 included).
    // Run in an instrumented Python process's environment (a subprocess
    // of it, a shell it started), the distro's grpc, named in
    // _SPANGUARD_DISTRO_SET, is read as unset by the library, as a tracer
    // there reads it (config.env_set_by_distro says which).
    let mut config = TracerConfig::default();
    if let Err(e) = config.apply_process_env() {
        eprintln!("spanguard check: {e}");
        return ExitCode::from(2);
    }
    let headers_from = match a.value("--headers").map(settings::headers_option) {
        None => HeadersFrom::Environment,
        Some(Ok(headers)) => {
            config.headers = headers;
            HeadersFrom::Flag
        }
        Some(Err(e)) => {
            eprintln!("spanguard check: {e} (spanguard check --help)");
            return ExitCode::from(2);
        }
    };
    // --headers go with the check's one request, and with no endpoint
    // there is none: taken and never used, a check run to try an API key
    // passed having sent it nowhere.
    let sends_a_request = probe_url.is_some()
        || config
            .endpoint
            .as_deref()
            .is_some_and(|u| u != spanguard::tracer::DISCARD_ENDPOINT);
    if matches!(headers_from, HeadersFrom::Flag) && !sends_a_request {
        eprintln!(
            "spanguard check: --headers go with the request sent to an endpoint, and none is \
             set here: add --endpoint URL (the backend's OTLP/HTTP URL) to send them there \
             (spanguard check --help)"
        );
        return ExitCode::from(2);
    }
    // Which variables the library reads: asked of a second reading, so
    // that no list of ours can fall behind the library's.
    let asked = RefCell::new(Vec::new());
    let _ = TracerConfig::default().apply_env(&|name| {
        asked.borrow_mut().push(name.to_string());
        std::env::var(name).ok()
    });
    let asked = asked.into_inner();
    let defaults = TracerConfig::default();

    println!("spanguard check: what a tracer started in this environment does with its spans");
    if config.disabled {
        println!("  disabled          OTEL_SDK_DISABLED=true: a tracer records and sends nothing");
    }
    let endpoint_ignored = config
        .ignored_env
        .iter()
        .any(|e| e.variable.ends_with("_ENDPOINT"));
    let endpoint_misspelt = config
        .misspelt_env
        .iter()
        .any(|(_, meant)| meant.ends_with("_ENDPOINT"));
    match config.endpoint.as_deref() {
        Some(spanguard::tracer::DISCARD_ENDPOINT) => {
            println!("  spans go to       nowhere: discard: throws every batch away")
        }
        Some(url) => {
            let from = match taken_from(
                &[
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                ],
                &config,
            ) {
                Some(v @ "OTEL_EXPORTER_OTLP_ENDPOINT") => format!("{v}, with /v1/traces added"),
                Some(v) => format!("{v}, used as it is"),
                None => "the configuration".to_string(),
            };
            println!(
                "  spans go to       OTLP/HTTP {} ({from})",
                super::terminal::clean(&redact_url(url))
            );
        }
        None => println!(
            "  spans go to       the local sink {} ({}; spanguard show reads it, \
             OTEL_EXPORTER_OTLP_ENDPOINT sends them to a backend)",
            config.sink_dir.display(),
            if endpoint_ignored {
                "no usable endpoint: see the variables ignored below"
            } else if endpoint_misspelt {
                "no endpoint is set: see the variables set but not used below"
            } else {
                "no endpoint is set"
            }
        ),
    }
    // `check --endpoint URL` with no endpoint in the environment said
    // "spans go to the local sink (no endpoint is set)", then "OK: URL
    // answered 200": a newcomer trying a collector before setting anything
    // read two answers to one question. The URL checked is named as such,
    // with what makes a tracer send there.
    if let Some(probe) = &probe_url
        && config.endpoint.as_deref() != Some(probe.as_str())
    {
        let probe = format!(
            "{}{}",
            super::terminal::clean(&redact_url(probe)),
            taken_as(a.value("--endpoint").unwrap_or_default())
        );
        match config.endpoint {
            None => println!(
                "  --endpoint        {probe} is checked below; a tracer started here writes to \
                 the local sink above until OTEL_EXPORTER_OTLP_ENDPOINT names a backend"
            ),
            Some(_) => println!(
                "  --endpoint        {probe} is checked below, not the endpoint above, where a \
                 tracer started here sends"
            ),
        }
    }
    if config.endpoint.is_none() {
        // The sink writes OTLP/JSON text whatever the protocol and
        // compression say (they are an endpoint's): "protobuf
        // (http/protobuf)" here sent a user looking for a binary file, or
        // for a decoder, in a directory of JSON lines.
        println!(
            "  format            OTLP/JSON, one request a line, appended to <service>-<pid>.jsonl \
             in the sink (OTEL_EXPORTER_OTLP_PROTOCOL is for an endpoint)"
        );
        println!(
            "  compression       none: the sink writes text (OTEL_EXPORTER_OTLP_COMPRESSION is \
             for an endpoint)"
        );
    } else {
        println!(
            "  format            {}",
            match config.protocol {
                Protocol::HttpProtobuf => "protobuf (http/protobuf)",
                Protocol::HttpJson => "JSON (http/json)",
            }
        );
        println!(
            "  compression       {}",
            match config.compression {
                Compression::Gzip => "gzip",
                Compression::None => "none",
            }
        );
    }
    let url = probe_url.or_else(|| {
        config
            .endpoint
            .clone()
            .filter(|u| u != spanguard::tracer::DISCARD_ENDPOINT)
    });
    // Headers, TLS files and the request timeout are an HTTP request's:
    // with spans going to the local sink (or discarded) and no --endpoint
    // to probe, "headers none" and "10000 ms a request" were said of a
    // sink that sends no request. Set all the same, they are named as
    // set but unused (a user who set an API key and no endpoint wants to
    // know the key goes nowhere).
    let unused = match config.endpoint {
        None => "set but unused: no endpoint",
        Some(_) => "set but unused: spans are discarded",
    };
    if url.is_some() && config.headers.is_empty() {
        println!("  headers           none");
    } else if !config.headers.is_empty() {
        // Names only: a value is an API key as often as not.
        let names: Vec<String> = config
            .headers
            .iter()
            .map(|(name, _)| super::terminal::clean(name))
            .collect();
        let from = match headers_from {
            HeadersFrom::Flag => Some("--headers"),
            HeadersFrom::Environment => taken_from(
                &[
                    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                    "OTEL_EXPORTER_OTLP_HEADERS",
                ],
                &config,
            ),
        };
        match (&url, from) {
            (Some(_), _) => println!(
                "  headers           {} (values not shown)",
                names.join(", ")
            ),
            (None, Some(v)) => println!(
                "  headers           {} (values not shown; {v}): {unused}",
                names.join(", ")
            ),
            (None, None) => println!(
                "  headers           {} (values not shown): {unused}",
                names.join(", ")
            ),
        }
    }
    for (what, file) in [
        ("TLS CA file", &config.tls.certificate),
        ("TLS client cert", &config.tls.client_certificate),
        ("TLS client key", &config.tls.client_key),
    ] {
        if let Some(path) = file {
            match url {
                Some(_) => println!("  {what:<17} {}", path.display()),
                None => println!("  {what:<17} {}: {unused}", path.display()),
            }
        }
    }
    // curl takes a proxy from the environment: whoever set it for a whole
    // shell may not know the spans go through it, nor that NO_PROXY goes
    // around it for this host (then both were shown, and whether the
    // proxy was used was left to guess).
    if let Some(url) = &url
        && let Some(var) = proxy_variable_set(url, |n| std::env::var_os(n))
    {
        let proxy = super::terminal::clean(&redact_url(
            &std::env::var_os(var).unwrap_or_default().to_string_lossy(),
        ));
        match no_proxy_covering(url, |n| std::env::var_os(n)) {
            Some((name, list)) => println!(
                "  proxy             none for this host: {name}={} covers it, so {var}={proxy} \
                 is not used",
                super::terminal::clean(&list)
            ),
            None => println!(
                "  proxy             {var}={proxy}, used for this host (no_proxy/NO_PROXY: {})",
                super::terminal::clean(
                    &["no_proxy", "NO_PROXY"]
                        .iter()
                        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
                        .unwrap_or_else(|| "not set".to_string())
                )
            ),
        }
    }
    // curl reads no HTTP_PROXY in upper case for an http:// URL (a CGI
    // script's environment carries the request's `Proxy:` header under
    // that name: "httpoxy"), only http_proxy: whoever set HTTP_PROXY, as
    // most tools accept it, expected the spans to go through it and they
    // went straight to the endpoint, with nothing said.
    if let Some(url) = &url
        && let Some(upper) = ignored_upper_http_proxy(url, |n| std::env::var_os(n))
    {
        let upper = super::terminal::clean(&redact_url(&upper));
        match proxy_variable_set(url, |n| std::env::var_os(n)) {
            None => println!(
                "  proxy             none: HTTP_PROXY={upper} is not used for an http:// \
                 endpoint (curl reads only http_proxy, in lower case, there): set http_proxy \
                 to send the spans through it"
            ),
            Some(_) => println!(
                "                    (HTTP_PROXY={upper} is not read for an http:// endpoint: \
                 curl reads only http_proxy, in lower case, there)"
            ),
        }
    }
    if url.is_some() {
        println!(
            "  timeout           {} a request, {} a batch with its retries",
            millis(config.request_timeout),
            millis(config.export_timeout)
        );
    } else {
        if config.endpoint.is_none() {
            // The sink's writes are retried (a full disk) as a request
            // is, for as long as a batch is given.
            println!(
                "  timeout           {} a batch with its retries (a write to the sink that \
             fails is tried again until then)",
                millis(config.export_timeout)
            );
        }
        if let Some(v) = taken_from(
            &[
                "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
                "OTEL_EXPORTER_OTLP_TIMEOUT",
            ],
            &config,
        ) {
            println!(
                "  request timeout   {} ({v}): {unused}",
                millis(config.request_timeout)
            );
        }
    }
    // The summary `spanguard spool` prints starts "spool DIR: ...": the
    // label says it already.
    let spool = super::spool_status::summary(Path::new(&config.spool_dir));
    println!(
        "  spool             {}",
        spool.strip_prefix("spool ").unwrap_or(&spool)
    );
    // Said at the end, with the verdict: a spool no file can be made in
    // loses every batch the backend does not take (the tracer says so
    // only then); a sink no file can be made in takes no span at all.
    // (A disabled tracer makes and writes nothing.)
    let spool_unwritable = (!config.disabled)
        .then(|| spanguard::buffer::files::not_writable(&config.spool_dir))
        .flatten();
    let sink_unwritable = (!config.disabled && config.endpoint.is_none())
        .then(|| spanguard::buffer::files::not_writable(&config.sink_dir))
        .flatten();
    println!(
        "  flight recorder   {}",
        if config.flight_recorder { "on" } else { "off" }
    );
    println!("  sampler           {}", config.sampler.describe());
    // Unset, each program is named after itself (`unknown_service:python`):
    // this command's own name would mislead.
    if config.service_name.starts_with("unknown_service") {
        println!(
            "  service.name      unknown_service:<the program's name> (none set: \
             OTEL_SERVICE_NAME sets it)"
        );
    } else {
        println!(
            "  service.name      {}",
            super::terminal::clean(&config.service_name)
        );
    }
    if config.log_level != LogLevel::Warn {
        println!("  log level         {}", config.log_level.name());
    }
    let changed: Vec<String> = SETTINGS
        .iter()
        .filter(|(_, shown)| shown(&config) != shown(&defaults))
        .map(|(name, shown)| format!("{name} = {} (default {})", shown(&config), shown(&defaults)))
        .collect();
    if !changed.is_empty() {
        println!("settings not at their defaults:");
        for line in &changed {
            println!("  {line}");
        }
    }
    if !config.env_set_by_distro.is_empty() {
        println!(
            "variables opentelemetry-distro set, not you ({DISTRO_SET_VARIABLE} says so; a \
             tracer takes them as unset):"
        );
        for (name, value) in &config.env_set_by_distro {
            println!(
                "  {}={}",
                super::terminal::clean(name),
                super::terminal::clean(value)
            );
        }
    }
    if !config.ignored_env.is_empty() {
        println!("variables ignored (a tracer says so on stderr, and starts without them):");
        for ignored in &config.ignored_env {
            println!("  {}", super::terminal::clean(&ignored.as_ignored()));
        }
    }
    let unread = not_read(&asked, &config.misspelt_env);
    if !unread.is_empty() {
        println!("variables set but not used:");
        for line in &unread {
            println!("  {line}");
        }
    }

    let reached = match url {
        Some(url) => {
            let reached = probe(&url, a.value("--endpoint"), &config, headers_from);
            // The empty request says the backend answers; not that it
            // takes spans. Spans waiting in the spool while it answers may
            // be what a backend that hangs on requests of spans left
            // (the exporter then spools a flush's batch after a probe's
            // time): a replay sends them and says what each request got.
            let waiting = super::spool_status::spans_waiting(Path::new(&config.spool_dir));
            if let Some(n) = waiting.filter(|n| reached && *n > 0) {
                println!(
                    "  note: {} in the spool, and this check sent none: a tracer's next start \
                     sends them, or `spanguard replay` now, which says what each request of \
                     spans gets (a backend that answers an empty request and hangs on spans \
                     is said so there)",
                    if n == 1 {
                        "1 span waits".to_string()
                    } else {
                        format!("{n} spans wait")
                    }
                );
            }
            reached
        }
        None => {
            println!("nothing sent: no OTLP endpoint to check");
            true
        }
    };
    // A misspelt variable of consequence fails the check: the spans do
    // not go where the environment seems to say.
    let misspelt_failing: Vec<&(String, String)> = config
        .misspelt_env
        .iter()
        .filter(|(_, meant)| decides_where_spans_go(meant))
        .collect();
    for (set, meant) in &misspelt_failing {
        println!(
            "FAILED: {} is set, but spanguard reads no variable of that name ({meant} was \
             meant?): a tracer goes on without it, so the spans do not go where it says",
            super::terminal::clean(set)
        );
    }
    for (set, meant) in config
        .misspelt_env
        .iter()
        .filter(|(_, meant)| !decides_where_spans_go(meant))
    {
        println!(
            "warning: {} is set, but spanguard reads no variable of that name ({meant} was \
             meant?): a tracer goes on with the default",
            super::terminal::clean(set)
        );
    }
    if let Some(e) = &spool_unwritable {
        println!(
            "warning: this user cannot make files in the spool directory ({}): a batch the \
             backend does not take is lost, not kept for later",
            super::terminal::clean(&e.to_string())
        );
    }
    if let Some(e) = &sink_unwritable {
        println!(
            "FAILED: this user cannot make files in the local sink directory ({}): no span is \
             written there (they wait in the spool, if it takes them)",
            super::terminal::clean(&e.to_string())
        );
    }
    // A directory another user made (or may change) under a name of ours:
    // every tracer started here refuses to start, whatever the backend.
    let refused = (!config.disabled)
        .then(|| spanguard::tracer::directory_refused(&config))
        .flatten();
    if let Some(e) = &refused {
        println!(
            "FAILED: a tracer started here refuses to start: {}",
            super::terminal::clean(&e.to_string())
        );
    }
    // A variable ignored comes first: it may be why the backend refused
    // (an API key in a header entry left out, say).
    if !config.ignored_env.is_empty() || !misspelt_failing.is_empty() || refused.is_some() {
        ExitCode::from(2)
    } else if !reached || sink_unwritable.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the transport gave a hint is asked of it, not read off
    /// `" ("` in the reason: curl's own words in parentheses ("DNS lookup
    /// failed (Could not resolve hostname)", with no detail of its own)
    /// read as a hint given, and the check said nothing to do.
    #[test]
    fn the_hint_is_given_unless_the_transport_gave_one() {
        let config = TracerConfig::default();
        let unresolved = SendError::Transient {
            reason: "DNS lookup failed (Could not resolve hostname)".to_string(),
            retry_after: None,
        };
        assert_eq!(
            what_to_do(&unresolved, None, &config).as_deref(),
            Some("the host name does not resolve here: correct the endpoint's host")
        );
        let via_proxy = SendError::Transient {
            reason: "DNS lookup failed: proxy (the request went through the proxy \
                     HTTPS_PROXY names: fix or unset it)"
                .to_string(),
            retry_after: None,
        };
        assert_eq!(
            what_to_do(
                &via_proxy,
                Some("the request went through the proxy HTTPS_PROXY names: fix or unset it"),
                &config
            ),
            None
        );
        // A busy backend whose wait is said in parentheses: still told.
        let busy = SendError::Transient {
            reason: "HTTP 503 (the server asks to wait 3 s: Retry-After)".to_string(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert!(
            what_to_do(&busy, None, &config).is_some_and(|h| h.starts_with("the backend is busy")),
        );
    }
}
