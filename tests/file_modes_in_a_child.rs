//! Two tests that need a process of their own: what a file's mode does
//! under umask 0, and under a user who is not root. Each runs its body in a
//! copy of this test binary started that way. They live here, not beside
//! the library's unit tests, because starting a child forks the test
//! process: a file another test held locked at that moment stayed locked
//! in the child until its exec, and that test's replay found it "locked by
//! a live replayer" (a_torn_file_is_set_aside_not_sent and its neighbours
//! failed about one run in three). Nothing here holds a file locked.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use spanguard::buffer::files::{create_new, ensure_private_dir, open_append};
use spanguard::export::spool::{ReplayVerdict, SpoolDir, SpooledBatch};
use spanguard::export::transport::BodyFormat;

const UMASK_ZERO: &str = "SPANGUARD_TEST_UMASK_ZERO";

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sg-child-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    d
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).expect("stat").permissions().mode() & 0o777
}

/// Runs `test` alone in a copy of this binary set up by `command`; asserts
/// it ran and passed. False when the copy could not be started.
fn in_a_child(test: &str, command: impl FnOnce(&mut std::process::Command)) -> bool {
    let mut run = std::process::Command::new(std::env::current_exe().expect("this test binary"));
    run.args(["--exact", test, "--test-threads=1", "--nocapture"]);
    command(&mut run);
    let Ok(out) = run.output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}{err}");
    assert!(text.contains("1 passed"), "{test} did not run: {text}{err}");
    true
}

/// The umask is the whole process's: set in a process running other tests,
/// it made the directories they make 0777, which they then refuse.
#[test]
fn files_and_directories_are_private_whatever_the_umask() {
    if std::env::var_os(UMASK_ZERO).is_none() {
        let ran = in_a_child(
            "files_and_directories_are_private_whatever_the_umask",
            |run| {
                run.env(UMASK_ZERO, "1");
                // SAFETY: umask is async-signal-safe and changes only the child.
                unsafe {
                    run.pre_exec(|| {
                        libc::umask(0);
                        Ok(())
                    });
                }
            },
        );
        assert!(ran, "run under umask 0");
        return;
    }
    // SAFETY: reads the mask by setting it back at once.
    assert_eq!(unsafe { libc::umask(0) }, 0, "started under umask 0");
    let dir = temp_dir("modes");
    let nested = dir.join("a/b");
    ensure_private_dir(&nested).expect("dir");
    let file = nested.join("f");
    drop(create_new(&file, false).expect("create"));
    let sink = nested.join("sink");
    drop(open_append(&sink).expect("append"));
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&nested), 0o700);
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&sink), 0o600);
    fs::remove_dir_all(&dir).ok();
}

/// Runs `body` as a user who is not root, whom a file's mode can stop:
/// here when this process is not root, else in a copy of this test binary
/// running only `test` as nobody (uid 65534). Skipped when nobody may run
/// this binary.
fn as_a_user_not_root(test: &str, body: impl FnOnce()) {
    // SAFETY: geteuid cannot fail and has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        body();
        return;
    }
    // False: nobody may not run it (a private build directory).
    in_a_child(test, |run| {
        run.env("TMPDIR", "/tmp").uid(65534).gid(65534);
    });
}

/// A batch of `spans` empty spans (a replay counts them in the body).
fn batch(spans: u32) -> SpooledBatch {
    use spanguard::span::proto_reader::write_len_field;
    let mut scope = Vec::new();
    for _ in 0..spans {
        write_len_field(&mut scope, 2, &[]);
    }
    let mut resource = Vec::new();
    write_len_field(&mut resource, 2, &scope);
    let mut body = Vec::new();
    write_len_field(&mut body, 1, &resource);
    SpooledBatch {
        format: BodyFormat::Protobuf,
        gzipped: false,
        spans,
        cut_counted: 0,
        cut_at: Vec::new(),
        body,
    }
}

/// A batch of ours that this user may not read (chmod 000): every
/// replay skipped it as if opening it might work next time, so its
/// spans were neither sent nor counted, at every start, and nothing
/// said so. It is set aside, told with why, and the rest is sent.
#[test]
fn an_unreadable_batch_of_ours_is_set_aside_and_told() {
    as_a_user_not_root("an_unreadable_batch_of_ours_is_set_aside_and_told", || {
        let dir = temp_dir("mode-000");
        let spool = SpoolDir::new(&dir, 1 << 20);
        spool.write(&batch(1)).expect("write");
        spool.write(&batch(2)).expect("write");
        let locked = spool.list()[0].clone();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).expect("chmod");
        let mut seen = Vec::new();
        spool.replay(|b| {
            seen.push(b.spans);
            ReplayVerdict::Delivered
        });
        assert_eq!(seen, vec![2]);
        let aside = spool.take_set_aside();
        assert_eq!(aside.len(), 1, "not set aside");
        assert!(
            aside[0].reason.contains("may not open"),
            "{}",
            aside[0].reason
        );
        assert!(spool.list().is_empty());
        assert!(
            fs::symlink_metadata(&aside[0].path).is_ok(),
            "kept to look at"
        );
        fs::remove_dir_all(&dir).ok();
    });
}
