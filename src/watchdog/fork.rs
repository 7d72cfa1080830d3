//! fork(2) without exec: what a child must do before it records anything.

use std::cell::Cell;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::Duration;

/// Whether the fork handlers are registered in this process.
static HOOK: ForkSafeOnce = ForkSafeOnce::new();

/// A one-time install that a fork cannot leave running for good: a `Once`
/// a fork caught running stayed so in the child, whose first tracer then
/// waited for it forever (a worker forked while the parent's first tracer
/// was being made on another thread). Holds `NOT_DONE`, `DONE`, or the pid
/// of the process a thread of which is running the install: a child that
/// finds another process's pid there was forked before the install was
/// over, and runs it itself. So the install must do no harm run twice in
/// one process (the fork may have come between its work and the `DONE`).
pub(crate) struct ForkSafeOnce(AtomicI32);
const NOT_DONE: i32 = 0;
const DONE: i32 = -1;

impl ForkSafeOnce {
    pub(crate) const fn new() -> Self {
        ForkSafeOnce(AtomicI32::new(NOT_DONE))
    }

    /// Runs `install` unless it ran in this process (or in the one it was
    /// forked from, to the end); waits for another thread running it.
    pub(crate) fn call_once(&self, install: impl FnOnce()) {
        // SAFETY: getpid has no preconditions.
        let this_process = unsafe { libc::getpid() };
        loop {
            match self.0.load(Ordering::Acquire) {
                DONE => return,
                // Another thread of this process is at it: a few microseconds.
                running if running == this_process => std::thread::sleep(Duration::from_micros(50)),
                seen => {
                    if self
                        .0
                        .compare_exchange(seen, this_process, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        install();
                        self.0.store(DONE, Ordering::Release);
                        return;
                    }
                }
            }
        }
    }

    /// Marks it done: in a forked child that knows the install went through.
    pub(crate) fn mark_done(&self) {
        self.0.store(DONE, Ordering::Release);
    }
}

/// What `child` runs (`ensure_fork_hook`'s argument).
static CHILD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Whether this thread is forking: between the prepare handler and the
    /// parent's or the child's. The handlers may be registered twice (a
    /// registration during another fork's prepare handlers, which glibc
    /// does not run in that fork's child, reaches the child all the same,
    /// which may register them again): each runs once per fork all the
    /// same. Twice, the second prepare waited for the lock the first took.
    static FORKING: Cell<bool> = const { Cell::new(false) };
}

/// Registers `child` to run in the child after every fork, once per process,
/// with the fork kept out of the signal handlers' install (prepare and
/// parent: `signals::hold_across_fork`; `child` lets go of it through
/// `reset_process_state_in_child`).
pub fn ensure_fork_hook(child: unsafe extern "C" fn()) {
    HOOK.call_once(|| {
        CHILD.store(child as usize, Ordering::Release);
        // SAFETY: registers plain functions.
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(run_child)) };
    });
}

unsafe extern "C" fn prepare() {
    if FORKING.try_with(|f| f.replace(true)).unwrap_or(true) {
        return;
    }
    let _ = std::panic::catch_unwind(super::signals::hold_across_fork);
}

unsafe extern "C" fn parent() {
    if FORKING.try_with(|f| f.replace(false)).unwrap_or(false) {
        let _ = std::panic::catch_unwind(super::signals::release_after_fork_in_parent);
    }
}

unsafe extern "C" fn run_child() {
    if !FORKING.try_with(|f| f.replace(false)).unwrap_or(false) {
        return;
    }
    let child = CHILD.load(Ordering::Acquire);
    if child != 0 {
        // SAFETY: `child` is the `unsafe extern "C" fn()` stored by
        // `ensure_fork_hook` before registering this handler.
        unsafe {
            let child: unsafe extern "C" fn() = std::mem::transmute(child);
            child();
        }
    }
}

/// In a forked child, which has one thread (the one that forked), before
/// its tracers are let go of: lets go of the parent's locks, so a parent
/// that dies first leaves files the next tracer can recover whatever the
/// child does; gives the child its own ids and clock, and takes the
/// parent's signal watchdog out of its way. The child's own watchdog
/// starts with its first tracer (`signals::restart_after_fork`): a child
/// that execs or exits without one starts no thread.
pub fn reset_process_state_in_child() {
    // Run by the fork handlers: this child has them, whatever the fork
    // caught their registration at (glibc keeps a registration and a fork
    // apart: a child forked before it has none, and registers them).
    HOOK.mark_done();
    crate::buffer::files::close_held_locks_in_child();
    crate::span::ids::reseed_after_fork();
    crate::span::clock::after_fork_in_child();
    super::signals::detach_after_fork();
}
