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

/// The local sink and spool directories.
pub fn default_dirs() -> Result<(PathBuf, PathBuf), ExitCode> {
    let c = from_env()?;
    Ok((c.sink_dir, c.spool_dir))
}
