//! A program run under a file size limit (`ulimit -f`, systemd's
//! `LimitFSIZE=`, a sandbox's or a CI runner's RLIMIT_FSIZE) that turns
//! the flight recorder on: the tracer sized its flight file (its slots,
//! then a sparse payload pool of 256 MiB by default) on the program's own
//! thread, past the limit, and the kernel killed the whole program with
//! SIGXFSZ at `Tracer::new`. The tracer now starts without its flight
//! recorder there, says why on stderr, and every span is delivered.
//!
//! A crash dump written past the limit (by a crash handler on the thread
//! that crashed, by a shutdown on the program's thread) killed the program
//! the same way, mid-dump: it now stops at the limit, its records past it
//! torn (counted lost when it is recovered).
//!
//! The limit is the process's: each test body runs in a copy of this test
//! binary started under it (`in_a_child`).

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use spanguard::config::TracerConfig;
use spanguard::export::transport::{Accepted, BodyFormat, SendError, Transport};
use spanguard::tracer::{Parent, Tracer};

const UNDER_LIMIT: &str = "SPANGUARD_TEST_UNDER_FSIZE_LIMIT";

/// The limit the copy runs under: far below a flight file's length, far
/// above what else the test writes.
const LIMIT_BYTES: u64 = 16 << 20;

struct TakesAll;

impl Transport for TakesAll {
    fn send(&mut self, _: &[u8], _: BodyFormat, _: bool) -> Result<Accepted, SendError> {
        Ok(Accepted {
            rejected_spans: 0,
            message: String::new(),
        })
    }

    fn describe(&self) -> String {
        "takes all".to_string()
    }
}

/// Runs `test` alone in a copy of this binary under the file size limit,
/// SIGXFSZ as a program has it; asserts it ran and passed, and gives its
/// stderr.
fn in_a_child(test: &str) -> String {
    let mut run = Command::new(std::env::current_exe().expect("this test binary"));
    run.args(["--exact", test, "--test-threads=1", "--nocapture"])
        .env(UNDER_LIMIT, "1");
    // SAFETY: setrlimit and signal are async-signal-safe and change only
    // the child.
    unsafe {
        run.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: LIMIT_BYTES,
                rlim_max: LIMIT_BYTES,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // As a program has it unless it says otherwise: the signal
            // kills.
            libc::signal(libc::SIGXFSZ, libc::SIG_DFL);
            Ok(())
        });
    }
    let out = run.output().expect("the copy under the limit");
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the program under a {LIMIT_BYTES}-byte file size limit ended {:?}: {text}{err}",
        out.status
    );
    assert!(text.contains("1 passed"), "it did not run: {text}{err}");
    err.into_owned()
}

#[test]
fn a_flight_recorder_over_the_file_size_limit_does_not_kill_the_program() {
    if std::env::var_os(UNDER_LIMIT).is_none() {
        let err =
            in_a_child("a_flight_recorder_over_the_file_size_limit_does_not_kill_the_program");
        assert!(
            err.contains("flight recorder off") && err.contains("RLIMIT_FSIZE"),
            "the reason is said: {err}"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("sg-fsize-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let tracer = Tracer::with_transport(
        TracerConfig {
            spool_dir: dir.join("spool"),
            sink_dir: dir.join("spans"),
            install_signal_handlers: false,
            flight_recorder: true,
            ..TracerConfig::default()
        },
        Box::new(TakesAll),
    )
    .expect("tracer");
    for _ in 0..10 {
        let (span, _) = tracer.begin(b"op", Parent::None, 1).expect("begin");
        tracer.end(span, 0).expect("end");
    }
    let _ = tracer.flush(Duration::from_secs(10));
    tracer.shutdown(Duration::from_secs(10)).expect("shutdown");
    assert_eq!(tracer.stats().spans_exported, 10);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A crash dump longer than the limit is written up to it, and the
/// program lives on to its end (its crash handler re-raises the signal it
/// caught, or the shutdown returns).
#[test]
fn a_crash_dump_over_the_file_size_limit_stops_at_it() {
    if std::env::var_os(UNDER_LIMIT).is_none() {
        in_a_child("a_crash_dump_over_the_file_size_limit_stops_at_it");
        return;
    }
    let dir = std::env::temp_dir().join(format!("sg-fsize-dump-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    spanguard::buffer::files::ensure_private_dir(&dir).expect("dir");
    let pending = dir.join("x.sgdump-pending");
    let dump = spanguard::buffer::dump::PreparedFile::create(&pending, &dir.join("x.sgdump"))
        .expect("made");
    let record = vec![0x5a_u8; 1 << 20];
    for _ in 0..(LIMIT_BYTES >> 20) + 4 {
        dump.write_all(&record);
    }
    // And at an offset past it, as the batch file's header is written.
    dump.write_all_at(&record, LIMIT_BYTES + (1 << 20));
    let len = std::fs::metadata(&pending).expect("the dump").len();
    assert_eq!(len, LIMIT_BYTES, "written up to the limit");
    let _ = std::fs::remove_dir_all(&dir);
}
