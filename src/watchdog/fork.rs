//! fork(2) without exec: what a child must do before it records anything.

use std::sync::Once;

static INSTALL: Once = Once::new();

/// Registers `child` to run in the child after every fork, once per process.
pub fn ensure_fork_hook(child: unsafe extern "C" fn()) {
    INSTALL.call_once(|| {
        // SAFETY: registers a plain function; no prepare or parent hook.
        unsafe { libc::pthread_atfork(None, None, Some(child)) };
    });
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
