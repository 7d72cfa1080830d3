//! fork(2) without exec: what a child must do before it records anything.

use std::sync::Once;

static INSTALL: Once = Once::new();

/// Registers `child` to run in the child after every fork, once per process,
/// with the fork kept out of the signal handlers' install (prepare and
/// parent: `signals::hold_across_fork`; `child` lets go of it through
/// `reset_process_state_in_child`).
pub fn ensure_fork_hook(child: unsafe extern "C" fn()) {
    INSTALL.call_once(|| {
        // SAFETY: registers plain functions.
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    });
}

unsafe extern "C" fn prepare() {
    let _ = std::panic::catch_unwind(super::signals::hold_across_fork);
}

unsafe extern "C" fn parent() {
    let _ = std::panic::catch_unwind(super::signals::release_after_fork_in_parent);
}

/// In a forked child, which has one thread (the one that forked), before
/// its tracers are let go of: lets go of the parent's locks, so a parent
/// that dies first leaves files the next tracer can recover whatever the
/// child does; gives the child its own ids and clock, and takes the
/// parent's signal watchdog out of its way. The child's own watchdog
/// starts with its first tracer (`signals::restart_after_fork`): a child
/// that execs or exits without one starts no thread.
pub fn reset_process_state_in_child() {
    crate::buffer::files::close_held_locks_in_child();
    crate::span::ids::reseed_after_fork();
    crate::span::clock::after_fork_in_child();
    super::signals::detach_after_fork();
}
