//! Flush at normal process exit, without the application calling shutdown.

use std::sync::Once;
use std::time::{Duration, Instant};

use crate::pipeline::{LIFECYCLE_FROZEN, Pipeline};

static INSTALL: Once = Once::new();

extern "C" fn flush_at_exit() {
    // atexit runs on the exiting thread while the exporter threads still
    // run, so flushing cannot deadlock; a panic must not escape into libc.
    let _ = std::panic::catch_unwind(|| {
        // Every tracer at once, against one deadline: the longest of their
        // timeouts (the process waits that long for the slowest anyway; a
        // tracer with a shorter one uses the time to deliver rather than
        // dump). One after another, each with the whole timeout, N tracers
        // whose backend did not answer or whose exporter was stuck held
        // the exit for N times the timeout and the stuck exporter's grace,
        // past a container's SIGTERM grace: the last ones were never asked.
        super::signals::host_handler_exiting_here();
        let mut longest = Duration::ZERO;
        crate::registry::for_each(|p| longest = longest.max(timeout_of(p)));
        let deadline = crate::span::clock::instant_after(Instant::now(), longest);
        // SAFETY: gettid has no preconditions.
        let exiting = unsafe { libc::gettid() };
        super::all_at_once::for_each_at_once(|p| {
            // Frozen by this very thread: the signal watchdog's host
            // handler called exit. Its shutdown would return at once here
            // (the dump stays); on a thread of its own it would wait for a
            // thaw from this thread, which never comes.
            if p.lifecycle() == LIFECYCLE_FROZEN
                && p.frozen_by.load(std::sync::atomic::Ordering::Relaxed) == exiting
            {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = p.shutdown(left, super::crash::leave_stuck_exporter);
        });
    });
}

/// A tracer's time to shut down at exit.
fn timeout_of(p: &Pipeline) -> Duration {
    p.config
        .signal_flush_timeout
        .max(Duration::from_millis(100))
}

/// Registers the exit flush once per process.
pub fn ensure_exit_hook() {
    INSTALL.call_once(|| {
        // SAFETY: flush_at_exit is a plain extern "C" fn with no arguments.
        unsafe { libc::atexit(flush_at_exit) };
    });
}
