//! Process-level hooks: the signal watchdog, the crash handler, the exit
//! flush.

pub mod all_at_once;
pub mod crash;
pub mod exit;
pub mod fork;
pub mod shield;
pub mod signals;

pub use exit::ensure_exit_hook;
pub use fork::ensure_fork_hook;

/// Installs the termination-signal watchdog and the crash handlers, once
/// per process, out of a fork's way (`signals::hold_across_fork`).
pub fn ensure_installed() {
    signals::ensure_installed(crash::ensure_installed);
}
