//! `spanguard replay`, unchanged (moved here from `src/bin/spanguard.rs`
//! so that each subcommand has a module of its own):
//!
//! spanguard replay DIR --endpoint URL [--headers k=v,...] [--timeout-ms N]
//!     Sends every batch spooled in DIR to URL (a full traces URL, or a base
//!     URL to which /v1/traces is appended), oldest first, deleting each one
//!     the backend accepted. Safe to run while tracers use the same spool.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use spanguard::config::parse_key_values;
use spanguard::export::http::HttpTransport;
use spanguard::export::spool::{ReplayVerdict, SpoolDir};
use spanguard::export::transport::{SendError, Transport};

pub const USAGE: &str =
    "usage: spanguard replay DIR --endpoint URL [--headers k=v,...] [--timeout-ms N]";

fn option(args: &[String], name: &str) -> Option<String> {
    args.windows(2).find(|w| w[0] == name).map(|w| w[1].clone())
}

fn replay(args: &[String]) -> Result<String, String> {
    let dir = args.first().filter(|a| !a.starts_with("--")).ok_or(USAGE)?;
    let endpoint = option(args, "--endpoint").ok_or(USAGE)?;
    let url = if endpoint.trim_end_matches('/').ends_with("/v1/traces") {
        endpoint
    } else {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    };
    let headers = match option(args, "--headers") {
        Some(h) => parse_key_values(&h).ok_or("--headers must be name=value,...")?,
        None => Vec::new(),
    };
    let timeout_ms: u64 = option(args, "--timeout-ms")
        .map(|t| t.parse().map_err(|_| "--timeout-ms takes milliseconds"))
        .transpose()?
        .unwrap_or(10_000);
    let spool = SpoolDir::new(&PathBuf::from(dir), u64::MAX);
    let waiting = spool.list().len();
    let mut transport = HttpTransport::new(&url, &headers, Duration::from_millis(timeout_ms));
    let mut failure = None;
    let mut discarded = 0u64;
    let (batches, spans) =
        spool.replay(
            |batch| match transport.send(&batch.body, batch.format, batch.gzipped) {
                Ok(_) => ReplayVerdict::Delivered,
                Err(SendError::Permanent { reason }) => {
                    discarded += batch.spans as u64;
                    eprintln!(
                        "spanguard: a batch of {} spans was refused for good: {reason}",
                        batch.spans
                    );
                    ReplayVerdict::Discard
                }
                Err(SendError::Transient { reason, .. }) => {
                    failure = Some(reason);
                    ReplayVerdict::Stop
                }
            },
        );
    let summary = format!(
        "replayed {batches} of {waiting} batches ({spans} spans) to {url}; {discarded} spans refused; {} files left",
        spool.list().len()
    );
    match failure {
        Some(reason) => Err(format!("{summary}\nstopped: {reason}")),
        None => Ok(summary),
    }
}

/// Runs `spanguard replay` with the arguments after the subcommand.
pub fn run(args: &[String]) -> ExitCode {
    match replay(args) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("spanguard: {message}");
            ExitCode::FAILURE
        }
    }
}
