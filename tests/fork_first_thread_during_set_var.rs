//! A child forked while another thread of its parent was in Rust's
//! `std::env::set_var`, in a process whose std had spawned no thread of
//! default size yet, starts its first tracer. std reads RUST_MIN_STACK at
//! its first spawn of such a thread (through `std::env::var`, under its
//! environment lock, which set_var holds across glibc's setenv and which
//! no fork handler resets): the child's exporter thread waited forever for
//! a lock held by a thread the child does not have. A process of the kind:
//! a Rust program that starts its first tracer in a worker it forks.
//!
//! The parent makes no tracer and registers nothing: the library's fork
//! handler, which makes a child read its environment without std's lock,
//! is registered as the library loads (it was at the first tracer: a
//! child of a parent that had made none still read through the lock).
//!
//! Its own main (`harness = false`): libtest spawns each test's thread
//! through std, which would read RUST_MIN_STACK before the fork. Here the
//! setter's thread is given its stack size, so std reads nothing. The
//! children are forked one at a time; the first that does not deliver its
//! span within 20 s is killed and ends the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use spanguard::config::TracerConfig;
use spanguard::tracer::{Parent, Tracer};

const FORKS: usize = 100;

/// In the child: a tracer writing to the file sink in `dir`, one span,
/// shut down. 0 when the span was delivered.
fn child(dir: &std::path::Path) -> i32 {
    let Ok(tracer) = Tracer::new(TracerConfig {
        sink_dir: dir.join("spans"),
        spool_dir: dir.join("spool"),
        install_signal_handlers: false,
        ..TracerConfig::default()
    }) else {
        return 2;
    };
    let Ok((span, _)) = tracer.begin(b"in-child", Parent::None, 3) else {
        return 3;
    };
    if tracer.end(span, 0).is_err() {
        return 4;
    }
    let _ = tracer.shutdown(Duration::from_secs(20));
    if tracer.stats().spans_exported == 1 {
        0
    } else {
        5
    }
}

/// Whether `pid` exited with 0 within `secs`; killed (and reaped) if not.
fn exited_ok_within(pid: libc::pid_t, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let mut status = 0;
        // SAFETY: our own child; status is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
        }
        if Instant::now() >= deadline {
            // SAFETY: our own child, not yet reaped.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn main() {
    let base = std::env::temp_dir().join(format!("sg-fork-first-thread-{}", std::process::id()));
    let stop = Arc::new(AtomicBool::new(false));
    let setter = {
        let stop = Arc::clone(&stop);
        // A size of its own: std reads no RUST_MIN_STACK for this spawn.
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let mut turn = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    turn += 1;
                    // SAFETY: the main thread reads the environment only in
                    // forked children (whose own set_var cannot run).
                    unsafe { std::env::set_var("SPANGUARD_TEST_SET_VAR_TURN", turn.to_string()) };
                }
            })
            .expect("setter thread")
    };
    let mut delivered = 0;
    for i in 0..FORKS {
        let dir = base.join(i.to_string());
        // SAFETY: the child runs `child` and _exits; it calls nothing that
        // the parent's setter may hold but what the test is about.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let code = child(&dir);
            // SAFETY: ends the child without the parent's exit hooks.
            unsafe { libc::_exit(code) };
        }
        assert!(pid > 0, "fork");
        if !exited_ok_within(pid, 20) {
            break;
        }
        delivered += 1;
    }
    stop.store(true, Ordering::Relaxed);
    setter.join().expect("setter");
    let _ = std::fs::remove_dir_all(&base);
    println!("children forked during set_var that delivered their span: {delivered} of {FORKS}");
    assert_eq!(
        delivered, FORKS,
        "a child forked during set_var did not deliver its span (children that did before it)"
    );
}
