//! The process environment is input from outside: any values of the
//! variables spanguard reads must give a valid configuration, each wrong
//! value ignored and named, never an error or a panic. As
//! `apply_process_env` reads it: the variables opentelemetry-distro set
//! (`_SPANGUARD_DISTRO_SET`) read as unset, and a variable set that is one
//! slip from one read named with it, never one spanguard reads itself.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use spanguard::config::{
    DISTRO_DEFAULTS, DISTRO_SET_VARIABLE, TracerConfig, distro_set, misspelt_variables,
};

/// Every variable `apply_env` reads; the input picks which ones are set.
const NAMES: &[&str] = &[
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_BSP_EXPORT_TIMEOUT",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "SPANGUARD_SINK_DIR",
    "SPANGUARD_SPOOL_DIR",
    "SPANGUARD_SPOOL_MAX_BYTES",
    "SPANGUARD_MAX_OPEN_SPANS",
    "SPANGUARD_FULL_POLICY",
    "SPANGUARD_FULL_WAIT_MS",
    "SPANGUARD_SIGNAL_HANDLERS",
    "SPANGUARD_FLIGHT_RECORDER",
    "SPANGUARD_PREFAULT_SLOTS",
    "SPANGUARD_EXPORTER_MAX_CPU_PERCENT",
    "SPANGUARD_SIGNAL_FLUSH_TIMEOUT_MS",
    "OTEL_LOG_LEVEL",
    "SPANGUARD_MAX_REQUEST_BYTES",
    "SPANGUARD_SINK_MAX_LINE_BYTES",
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_EVENT_COUNT_LIMIT",
    "OTEL_SPAN_LINK_COUNT_LIMIT",
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
    "SPANGUARD_PAYLOAD_POOL_MIB",
    "SPANGUARD_CLOCK",
    "OTEL_TRACES_EXPORTER",
    "SPANGUARD_ATTRIBUTE_VALUE_DEPTH_LIMIT",
    DISTRO_SET_VARIABLE,
];

fuzz_target!(|data: &[u8]| {
    // Lines of `index value`: the first byte picks the variable; or
    // `~name`, a variable of any name set (for the slips).
    let text = String::from_utf8_lossy(data);
    let others: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix('~')).collect();
    let vars: Vec<(&str, String)> = text
        .lines()
        .filter(|line| !line.starts_with('~'))
        .filter_map(|line| {
            let (first, rest) =
                line.split_at(line.char_indices().nth(1).map_or(line.len(), |(i, _)| i));
            let index = first.bytes().next()? as usize % NAMES.len();
            Some((NAMES[index], rest.to_string()))
        })
        .collect();
    let lookup = |name: &str| {
        vars.iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    };
    // The distro's own settings: only those named, at their defaults.
    let by_distro = distro_set(&lookup);
    for (name, default) in &by_distro {
        assert!(DISTRO_DEFAULTS.contains(&(*name, *default)));
        assert_eq!(lookup(name).as_deref(), Some(*default));
    }
    let asked = RefCell::new(Vec::new());
    let read = |name: &str| {
        asked.borrow_mut().push(name.to_string());
        if by_distro.iter().any(|(n, _)| *n == name) {
            None
        } else {
            lookup(name)
        }
    };
    // The environment alone never fails a tracer (wrong values are
    // ignored, as the SDKs ignore them), and what it leaves is valid.
    let mut config = TracerConfig::default();
    config
        .apply_env(&read)
        .expect("the environment alone is never fatal");
    let asked = asked.into_inner();
    let set = vars
        .iter()
        .map(|(n, _)| n.to_string())
        .chain(others.iter().map(|n| n.to_string()));
    for (slip, meant) in misspelt_variables(set, &asked) {
        assert!(!asked.contains(&slip), "{slip} was read");
        assert!(asked.contains(&meant), "{meant} was not read");
        assert!(
            !NAMES.contains(&slip.as_str()),
            "{slip}, a variable spanguard reads, called a slip of {meant}"
        );
    }
    config
        .validate()
        .expect("what the environment leaves is valid");
    for ignored in &config.ignored_env {
        assert!(
            NAMES.contains(&ignored.variable.as_str()),
            "an ignored setting names a variable read: {ignored}"
        );
    }
});
