//! What several Rust integration tests share.

use std::path::PathBuf;
use std::time::Duration;

use spanguard::config::TracerConfig;
use spanguard::tracer::Tracer;

/// A tracer that discards what it exports, with its files in a directory
/// of its own (returned, for the test to remove) and no signal handlers,
/// whose exporter wakes by itself only every `schedule_delay`.
#[allow(dead_code)] // each test binary uses some of these
pub fn discarding_tracer(name: &str, schedule_delay: Duration) -> (Tracer, PathBuf) {
    discarding_tracer_with(
        name,
        TracerConfig {
            schedule_delay,
            max_export_batch_size: 512,
            ..TracerConfig::default()
        },
    )
}

/// `config` with a discarding endpoint, its files in a directory of its
/// own (returned, for the test to remove) and no signal handlers.
#[allow(dead_code)]
pub fn discarding_tracer_with(name: &str, config: TracerConfig) -> (Tracer, PathBuf) {
    let dir = std::env::temp_dir().join(format!("sg-{name}-{}", std::process::id()));
    let tracer = Tracer::new(TracerConfig {
        endpoint: Some("discard:".to_string()),
        sink_dir: dir.join("spans"),
        spool_dir: dir.join("spool"),
        install_signal_handlers: false,
        ..config
    })
    .expect("tracer");
    (tracer, dir)
}
