//! Process-level hooks: the signal watchdog, the crash handler, the exit
//! flush.

pub mod crash;
pub mod exit;
pub mod signals;

pub use exit::ensure_exit_hook;

/// Installs the termination-signal watchdog and the crash handlers, once
/// per process.
pub fn ensure_installed() {
    signals::ensure_installed();
    crash::ensure_installed();
}

/// Registers `child` to run in the child after every fork, once per process.
pub fn ensure_fork_hook(child: unsafe extern "C" fn()) {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        // SAFETY: registers a plain function; no prepare or parent hook.
        unsafe { libc::pthread_atfork(None, None, Some(child)) };
    });
}
