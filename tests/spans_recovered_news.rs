//! Spans a dead process left in its flight file (or crash dump) are sent by
//! the next tracer over the same spool directory: the program is told so
//! (`ExportEvent::SpansRecovered`, counted in `recovered_spans`), with how
//! many, of which process and how it ended. Said at info on stderr alone,
//! a program never knew its predecessor had died with spans in flight.
//! The first look is at the exporter's start, before the program can set
//! its callback: the news waits for it.
//!
//! One test in this binary: it forks, and a child of a process running
//! other tests' threads would inherit their locks.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spanguard::config::{LogLevel, TracerConfig};
use spanguard::pipeline::ExportEvent;
use spanguard::tracer::{Parent, Tracer};

const ENDED: usize = 3;

fn config(dir: &Path) -> TracerConfig {
    TracerConfig {
        sink_dir: dir.join("spans"),
        spool_dir: dir.join("spool"),
        install_signal_handlers: false,
        log_level: LogLevel::None,
        ..TracerConfig::default()
    }
}

/// Forks a child that records `ENDED` ended spans and one open span in
/// its flight recorder (nothing exported: a minute's schedule delay) and
/// is SIGKILLed. Returns its pid. (How a signal that ended a process is
/// said, from a crash dump's header, `export::diagnostics` tests, and
/// tests/c/test_recovered_resource.c with a real crash.)
fn child_records_and_is_killed(dir: &Path) -> i32 {
    let mut ready = [0i32; 2];
    // SAFETY: pipe writes two descriptors into the array.
    assert_eq!(unsafe { libc::pipe(ready.as_mut_ptr()) }, 0);
    // SAFETY: this test is the binary's only one; the child uses the
    // library from its single thread and leaves by a signal or _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        let tracer = Tracer::new(TracerConfig {
            flight_recorder: true,
            schedule_delay: Duration::from_secs(60),
            ..config(dir)
        })
        .unwrap_or_else(|_| unsafe { libc::_exit(3) });
        for _ in 0..ENDED {
            let (s, _) = tracer
                .begin(b"ended", Parent::None, 1)
                .unwrap_or_else(|_| unsafe { libc::_exit(3) });
            let _ = tracer.end(s, 0);
        }
        let _open = tracer.begin(b"open", Parent::None, 1);
        // SAFETY: a byte to the parent, then waiting for its SIGKILL.
        unsafe {
            libc::write(ready[1], b"r".as_ptr().cast(), 1);
            loop {
                libc::pause();
            }
        }
    }
    // SAFETY: the parent's ends of the pipe.
    unsafe {
        libc::close(ready[1]);
        let mut byte = 0u8;
        assert_eq!(libc::read(ready[0], (&mut byte as *mut u8).cast(), 1), 1);
        libc::kill(pid, libc::SIGKILL);
        libc::close(ready[0]);
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFSIGNALED(status), "status {status}");
    assert_eq!(libc::WTERMSIG(status), libc::SIGKILL);
    pid
}

/// The files the child left for the next process.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("spool"))
        .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".sgflight"))
        .collect()
}

/// A tracer over `dir`'s spool with a callback set after it started (as
/// every program sets one): what it was told of recovered spans, and its
/// `recovered_spans`.
fn recover(dir: &Path) -> (Vec<String>, u64) {
    let tracer = Tracer::new(config(dir)).expect("tracer");
    // Its exporter's first look (at its start) is done by the flush.
    let told: Arc<Mutex<Vec<(ExportEvent, String)>>> = Arc::default();
    let seen = Arc::clone(&told);
    tracer.set_callback(Some(Box::new(move |event, message: &str| {
        seen.lock().unwrap().push((event, message.to_string()));
    })));
    tracer.flush(Duration::from_secs(10)).expect("flush");
    // Held news is told at the exporter's next pass.
    let deadline = Instant::now() + Duration::from_secs(10);
    let recovered = || -> Vec<String> {
        told.lock()
            .unwrap()
            .iter()
            .filter(|(e, _)| *e == ExportEvent::SpansRecovered)
            .map(|(_, m)| m.clone())
            .collect()
    };
    while recovered().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    tracer.shutdown(Duration::from_secs(10)).expect("shutdown");
    (recovered(), tracer.stats().recovered_spans)
}

#[test]
fn spans_recovered_from_a_dead_process_are_told_to_the_callback() {
    let base = std::env::temp_dir().join(format!("sg-recovered-news-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    // Killed: its flight file says no signal.
    let killed = base.join("killed");
    let pid = child_records_and_is_killed(&killed);
    let files = leftovers(&killed);
    assert_eq!(files.len(), 1, "{files:?}");
    let (told, counted) = recover(&killed);
    assert_eq!(
        told,
        [format!(
            "{} spans of process {pid} (ended with no signal recorded: killed by SIGKILL or the \
             OOM killer, or its shutdown left the exporter stuck) recovered from {}",
            ENDED + 1,
            files[0].display()
        )]
    );
    assert_eq!(counted, ENDED as u64 + 1);
    let _ = std::fs::remove_dir_all(&base);
}
