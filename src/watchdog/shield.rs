//! The library's own threads (the exporter, the watchdog, the exit hook's
//! and the watchdog's helpers) take no asynchronous signal: they are left
//! to the application's threads.

use nix::sys::signal::{SigSet, Signal};

pub const TERMINATION_SIGNALS: [Signal; 4] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// The signals a thread causes itself, by a fault or a call (abort,
/// a breakpoint, a system call seccomp refuses): blocked, the kernel kills
/// the process at once, with no crash dump. Every other signal is
/// asynchronous.
const SYNCHRONOUS_SIGNALS: [Signal; 7] = [
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGILL,
    Signal::SIGFPE,
    Signal::SIGABRT,
    Signal::SIGTRAP,
    Signal::SIGSYS,
];

/// Every asynchronous signal, as a set for thread masks (glibc keeps the
/// ones it uses itself, for thread cancellation and setuid, open).
pub(super) fn asynchronous_signals() -> SigSet {
    let mut set = SigSet::all();
    for synchronous in SYNCHRONOUS_SIGNALS {
        set.remove(synchronous);
    }
    set
}

/// Starts one of the library's own threads (the exporter, the watchdog)
/// with every asynchronous signal blocked, inherited from a mask set
/// around the spawn so that there is no moment when the thread takes one.
/// A signal sent to the process goes to a thread that does not block it:
/// ours took SIGTERM whenever the application's threads blocked it, as
/// billiard (Celery's pool) blocks it while a worker reports its exit, and
/// killed the worker there (holding the pool's result lock, so the next
/// worker hung), or ran our handler when the application had chosen to
/// hold the signal. The other signals alike: an application's SIGUSR1,
/// SIGCHLD or SIGALRM handler ran on our exporter, inside its HTTP client
/// or holding the library's locks, and one that records a span (from a
/// SIGCHLD handler, say) could wait for a lock that very thread held. The
/// application's own threads alone take them now. The watchdog unblocks
/// a signal it raises on itself for as long as it does
/// (`signals::raise_here`).
pub fn spawn_shielded<F, T>(
    builder: std::thread::Builder,
    body: F,
) -> std::io::Result<std::thread::JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    with_async_signals_blocked(|| builder.spawn(body))
}

/// `spawn_shielded` for a thread of `scope` (the exit hook's and the
/// watchdog's threads, one per tracer: `all_at_once`).
pub fn spawn_scoped_shielded<'scope, F, T>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    builder: std::thread::Builder,
    body: F,
) -> std::io::Result<std::thread::ScopedJoinHandle<'scope, T>>
where
    F: FnOnce() -> T + Send + 'scope,
    T: Send + 'scope,
{
    with_async_signals_blocked(|| builder.spawn_scoped(scope, body))
}

/// Runs `spawn` with this thread's mask set to every asynchronous signal,
/// so that the thread it starts inherits that mask; the mask is put back.
/// Set, not added to: the synchronous signals stay open on our threads
/// whatever this thread blocks (a crash there gets its dump). Public for
/// a binding's thread that belongs with ours (Python's reader of the
/// error callback's news, started by the interpreter).
pub fn with_async_signals_blocked<R>(spawn: impl FnOnce() -> R) -> R {
    use nix::sys::signal::SigmaskHow;
    let before = asynchronous_signals()
        .thread_swap_mask(SigmaskHow::SIG_SETMASK)
        .ok();
    let spawned = spawn();
    if let Some(before) = before {
        let _ = before.thread_set_mask();
    }
    spawned
}
