//! The rule of a PID namespace's init (a container's PID 1): which
//! signals can end it. Below both handlers (the watchdog's, the crash
//! handler's) and the C ABI's export, which all ask it.

/// Whether a signal this process raises again (or another process sends)
/// can end it,
/// `program_handles_it` saying whether the program has a handler of its
/// own for it (asked only of a PID 1) or leaves it at the default action.
/// Not for a PID namespace's init (a container's PID 1) at the default:
/// the kernel drops a signal that init does not handle, from outside the
/// namespace (`docker stop`) or from itself (pid_namespaces(7)), so a
/// re-raise does nothing and the process lives on, as it would have
/// without us. The one statement of that rule: the watchdog asks it, and
/// bindings that re-raise a signal themselves (Node's process hooks,
/// whose "program's own" is a JS listener) ask it through
/// `spanguard_raised_signal_can_end_process`; the crash handler asks it
/// of a crash signal that is no fault (another process's, or one the
/// program raised on itself). Async-signal-safe.
pub fn raised_signal_can_end_process(program_handles_it: impl FnOnce() -> bool) -> bool {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    pid != 1 || program_handles_it()
}
