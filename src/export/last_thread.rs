//! A process whose own threads have all ended exits, as it would have
//! without ours.
//!
//! A process ends when its last thread does (glibc calls `exit(0)` then,
//! which runs the exit hooks). The thread that called fork is a child's
//! only thread: a fork from a thread other than the main one (a Python
//! `threading.Thread`, a pool's worker thread) gives a child whose Python
//! code ends by returning from that thread (`sys.exit()` there ends the
//! thread, not the process). With a tracer used in the child, spanguard's
//! exporter thread was still there, so the process never ended: a zombie
//! main thread and our threads, every signal of the application blocked
//! by them (`watchdog::shield`), SIGTERM included, so only SIGKILL ended it, and
//! its spans were never sent; its parent waited for it forever. A C
//! program whose `main` calls `pthread_exit` once its workers are started
//! did the same when they were done.
//!
//! Only an exporter looks: with no tracer live, no exporter runs, and the
//! signal watchdog, the thread of ours that was left, stands down with the
//! last tracer's shutdown (`watchdog::signals::stand_down_if_no_tracer_left`).

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

/// What spanguard's threads are named (`/proc/self/task/*/comm`): the
/// exporter, the signal watchdog, the exit hook's flushers, and threads
/// these start (curl's resolver), which inherit the name.
const OURS: &[u8] = b"spanguard-";

/// The process that decided to exit (0: none): one exit, whichever
/// exporter sees it first.
static EXITING_IN: AtomicI32 = AtomicI32::new(0);

/// When the last look was, in ms of CLOCK_MONOTONIC (0: never).
static LAST_LOOK_MS: AtomicU64 = AtomicU64::new(0);

/// The least time between two looks: an exporter woken often (idle
/// between small batches) reads /proc once a second at most.
const LOOK_EVERY_MS: u64 = 1000;

/// Called by an exporter thread when it wakes with nothing to do: when
/// every thread of the process left is one of spanguard's, exits the
/// process with status 0 from a thread of its own (`exit` runs the exit
/// hook, which flushes every tracer; called on an exporter, it would wait
/// for that very exporter), as the process would have exited had ours
/// not been there.
pub fn exit_if_only_ours_left() {
    let now = now_ms();
    let last = LAST_LOOK_MS.load(Ordering::Relaxed);
    if last != 0 && now.saturating_sub(last) < LOOK_EVERY_MS {
        return;
    }
    LAST_LOOK_MS.store(now.max(1), Ordering::Relaxed);
    if !only_ours_left() {
        return;
    }
    // SAFETY: getpid has no preconditions.
    let this_process = unsafe { libc::getpid() };
    if EXITING_IN.swap(this_process, Ordering::AcqRel) == this_process {
        return;
    }
    // Started from an exporter, it blocks the signals that one blocks.
    let exit = crate::config::thread_builder("spanguard-exit");
    // SAFETY: exit(0) is what the process's last thread would have called.
    let spawned = exit.spawn(|| unsafe { libc::exit(0) });
    if spawned.is_err() {
        EXITING_IN.store(0, Ordering::Release); // tried again at the next look
    }
}

/// Whether the main thread has ended (the process is a zombie but for
/// other threads) and every thread left is one of spanguard's.
fn only_ours_left() -> bool {
    if !main_thread_ended() {
        return false; // the common answer: one small read
    }
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return false;
    };
    // SAFETY: getpid has no preconditions.
    let main = unsafe { libc::getpid() }.to_string();
    for task in tasks.flatten() {
        if task.file_name().to_str() == Some(main.as_str()) {
            continue;
        }
        match std::fs::read(task.path().join("comm")) {
            Ok(comm) if comm.starts_with(OURS) => {}
            // Gone since the listing (a thread that ended): not in the way.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            _ => return false,
        }
    }
    true
}

/// Whether the main thread has ended: /proc/self/stat (the main thread's)
/// says zombie (`Z`) while other threads of the process run.
///
/// Read into a buffer on the stack: this runs on every idle wake of an
/// exporter (once a second at most), and `fs::read`'s vector was the
/// exporter's only allocation once warm, seen by
/// tests/exporter_allocations.rs whenever a loaded machine left the
/// exporter idle for a moment while it counted.
fn main_thread_ended() -> bool {
    use std::io::Read;
    let Ok(mut file) = std::fs::File::open("/proc/self/stat") else {
        return false;
    };
    // The line is a few hundred bytes: the state comes after the command
    // name, which is at most 64 bytes, near its start.
    let mut stat = [0u8; 1024];
    let mut len = 0;
    while len < stat.len() {
        match file.read(&mut stat[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    let stat = &stat[..len];
    // "pid (comm) S ...": the state follows the last ')' (a comm may hold one).
    let Some(close) = stat.iter().rposition(|&b| b == b')') else {
        return false;
    };
    stat.get(close + 2) == Some(&b'Z')
}

fn now_ms() -> u64 {
    crate::span::clock::monotonic_ns() / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_main_thread_is_not_ended() {
        // This test's thread is not the main one; the harness's main
        // thread runs (waiting for us).
        assert!(!main_thread_ended());
        assert!(!only_ours_left());
    }
}
