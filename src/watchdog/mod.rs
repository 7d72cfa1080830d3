//! Process-level hooks: the signal watchdog, the crash handler, the exit
//! flush.

pub mod all_at_once;
pub mod crash;
pub mod exit;
pub mod fork;
mod handler_outcome;
pub mod namespace_init;
mod pipe;
pub mod shield;
pub mod signals;
pub mod stuck_exporter;

pub use exit::ensure_exit_hook;
pub use fork::ensure_fork_hook;

/// Installs the termination-signal watchdog, and with `crash` the crash
/// handlers, once per process each (the watchdog again after it stood
/// down with the last tracer's shutdown), out of a fork's way
/// (`signals::hold_across_fork`). Without `crash` (Go), crash signals stay
/// the host's: a tracer asking for them later adds them then.
pub fn ensure_installed(crash: bool) {
    signals::ensure_installed(|| {
        if crash {
            crash::ensure_installed();
        }
    });
}

/// Calls a signal handler taken from a `sigaction` (`sa_sigaction`, not
/// SIG_DFL or SIG_IGN) as the kernel would: with the siginfo and context
/// when it was installed with SA_SIGINFO, with the signal alone otherwise.
/// For the crash handler chaining to the host's, and the termination
/// watchdog's trampoline delivering the host's again. Async-signal-safe.
///
/// # Safety
/// `handler` must be a handler function of the kind `siginfo` says, and
/// `info`/`context` what the kernel gave the calling handler.
pub(crate) unsafe fn call_handler(
    handler: usize,
    siginfo: bool,
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: as the caller promises.
    unsafe {
        if siginfo {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(handler);
            f(signal, info, context);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(handler);
            f(signal);
        }
    }
}
