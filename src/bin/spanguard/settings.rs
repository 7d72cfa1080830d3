//! The directories the subcommands default to, from the same OTEL_* and
//! SPANGUARD_* variables the library reads (a bad one is ignored and
//! reported as the library would).

use std::path::PathBuf;
use std::process::ExitCode;

use spanguard::config::TracerConfig;

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

/// The local sink and spool directories.
pub fn default_dirs() -> Result<(PathBuf, PathBuf), ExitCode> {
    let c = from_env()?;
    Ok((c.sink_dir, c.spool_dir))
}
