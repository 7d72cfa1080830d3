//! The library's own threads (the exporter, the watchdog, the exit hook's
//! and the watchdog's helpers) take no termination signal: it is left to
//! the application's threads.

use nix::sys::signal::{SigSet, Signal};

pub const TERMINATION_SIGNALS: [Signal; 4] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// The termination signals as a set, for thread masks.
fn termination_set() -> SigSet {
    let mut set = SigSet::empty();
    for signal in TERMINATION_SIGNALS {
        set.add(signal);
    }
    set
}

/// Starts one of the library's own threads (the exporter, the watchdog)
/// with the termination signals blocked, inherited from a mask set around
/// the spawn so that there is no moment when the thread takes one. A
/// signal sent to the process goes to a thread that does not block it:
/// ours took SIGTERM whenever the application's threads blocked it, as
/// billiard (Celery's pool) blocks it while a worker reports its exit, and
/// killed the worker there (holding the pool's result lock, so the next
/// worker hung), or ran our handler when the application had chosen to
/// hold the signal. The application's own threads alone decide now.
pub fn spawn_shielded<F, T>(
    builder: std::thread::Builder,
    body: F,
) -> std::io::Result<std::thread::JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    with_termination_signals_blocked(|| builder.spawn(body))
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
    with_termination_signals_blocked(|| builder.spawn_scoped(scope, body))
}

/// Runs `spawn` with the termination signals blocked on this thread, so
/// that the thread it starts inherits them blocked; the mask is put back.
/// Over the mask this thread has outside the lock over the dispositions
/// (`mask_outside_blocked_signals`): a thread started under it
/// would have every signal blocked for good.
fn with_termination_signals_blocked<R>(spawn: impl FnOnce() -> R) -> R {
    use nix::sys::signal::SigmaskHow;
    let before = match mask_outside_blocked_signals() {
        Some(outside) => {
            let mut mask: libc::sigset_t = *outside.as_ref();
            // SAFETY: sigaddset and pthread_sigmask on sets of our own.
            unsafe {
                for signal in TERMINATION_SIGNALS {
                    libc::sigaddset(&mut mask, signal as libc::c_int);
                }
                let mut before: libc::sigset_t = std::mem::zeroed();
                (libc::pthread_sigmask(libc::SIG_SETMASK, &mask, &mut before) == 0)
                    .then(|| SigSet::from_sigset_t_unchecked(before))
            }
        }
        None => termination_set()
            .thread_swap_mask(SigmaskHow::SIG_BLOCK)
            .ok(),
    };
    let spawned = spawn();
    if let Some(before) = before {
        let _ = before.thread_set_mask();
    }
    spawned
}

thread_local! {
    /// This thread's signal mask from before the outermost
    /// `AsyncSignalsBlocked`, while one is in place: the mask a thread
    /// started meanwhile (the watchdog, started under `PREVIOUS`) inherits
    /// (`spawn_shielded`), rather than every signal blocked.
    pub(super) static MASK_OUTSIDE: std::cell::Cell<Option<SigSet>> = const { std::cell::Cell::new(None) };
}

/// This thread's signal mask but for a `signals::AsyncSignalsBlocked` in
/// place (set by it, here so that this module needs nothing of that one).
fn mask_outside_blocked_signals() -> Option<SigSet> {
    MASK_OUTSIDE.try_with(std::cell::Cell::get).ok().flatten()
}
