//! Flush at normal process exit, without the application calling shutdown.

use std::sync::Once;
use std::time::Duration;

static INSTALL: Once = Once::new();

extern "C" fn flush_at_exit() {
    // atexit runs on the exiting thread while the exporter threads still
    // run, so flushing cannot deadlock; a panic must not escape into libc.
    let _ = std::panic::catch_unwind(|| {
        crate::registry::for_each(|p| {
            let _ = p.shutdown(
                p.config
                    .signal_flush_timeout
                    .max(Duration::from_millis(100)),
                super::crash::leave_stuck_exporter,
            );
        });
    });
}

/// Registers the exit flush once per process.
pub fn ensure_exit_hook() {
    INSTALL.call_once(|| {
        // SAFETY: flush_at_exit is a plain extern "C" fn with no arguments.
        unsafe { libc::atexit(flush_at_exit) };
    });
}
