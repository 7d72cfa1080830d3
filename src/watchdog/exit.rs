//! Flush at normal process exit, without the application calling shutdown.

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use crate::pipeline::{LIFECYCLE_FROZEN, Pipeline};

static INSTALL: super::fork::ForkSafeOnce = super::fork::ForkSafeOnce::new();

/// The process the flush ran in (0: none yet): a child forked while its
/// parent registered it may have it registered twice (`ForkSafeOnce`); it
/// runs once. A pid, not a flag: a child forked while its parent's flush
/// ran flushes its own tracers at its own exit all the same.
static FLUSHED_IN: AtomicI32 = AtomicI32::new(0);

extern "C" fn flush_at_exit() {
    // SAFETY: getpid has no preconditions.
    let this_process = unsafe { libc::getpid() };
    if FLUSHED_IN.swap(this_process, Ordering::AcqRel) == this_process {
        return;
    }
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
            let _ = p.shutdown(
                left,
                super::crash::leave_stuck_exporter,
                crate::pipeline::OpenSpansEnd::Unended,
            );
        });
    });
}

/// A tracer's time to shut down at exit.
fn timeout_of(p: &Pipeline) -> Duration {
    p.config
        .signal_flush_timeout
        .max(Duration::from_millis(100))
}

/// Registers the exit flush once per process, a forked child included
/// (`ForkSafeOnce`: a child forked while another thread registered it
/// waited for that at its first tracer, forever).
pub fn ensure_exit_hook() {
    INSTALL.call_once(|| {
        // SAFETY: flush_at_exit is a plain extern "C" fn with no arguments.
        unsafe { libc::atexit(flush_at_exit) };
    });
}
