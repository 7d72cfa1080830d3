//! The watchdog thread's self-pipe, as signal handlers see it: the
//! termination handler writes a signal's number there, the crash handler
//! its requests. Below both handlers, which the watchdog's loop
//! (signals.rs) reads for.

use std::sync::atomic::{AtomicI32, Ordering};

/// The write end of the self-pipe (-1: no watchdog in this process), made
/// before the watchdog thread starts and set by signals.rs alone.
pub(super) static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);
/// The process that made `PIPE_WRITE` (0: none), set after it: a watchdog
/// thread of this process reads it, or will once it runs (a forked
/// child's, started with its first tracer, may not have run yet when a
/// crash signal comes).
pub(super) static PIPE_HOME: AtomicI32 = AtomicI32::new(0);

/// Hands the watchdog thread one byte (a signal's number, or a crash
/// handler's request: `crash::THAW_REQUEST`), read once it runs: the
/// pipe is made before the thread starts. False when this process has no
/// watchdog. Async-signal-safe: one write(2), which never blocks.
pub(super) fn ask_watchdog(byte: u8) -> bool {
    let fd = PIPE_WRITE.load(Ordering::Acquire);
    // SAFETY: one byte from a local, written to our own pipe.
    fd >= 0 && unsafe { libc::write(fd, std::ptr::addr_of!(byte).cast(), 1) } == 1
}

/// Whether this process's watchdog thread reads `PIPE_WRITE`, or will
/// once it runs. Async-signal-safe.
pub(super) fn pipe_is_this_process() -> bool {
    // SAFETY: getpid has no preconditions.
    let here = unsafe { libc::getpid() };
    PIPE_HOME.load(Ordering::Acquire) == here && PIPE_WRITE.load(Ordering::Acquire) >= 0
}
