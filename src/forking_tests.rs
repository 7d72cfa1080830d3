//! Unit tests that fork: each runs alone, in a process of its own.
//!
//! libtest runs this crate's unit tests on many threads of one process. A
//! fork there copies only the thread that calls it, while other tests go
//! on: a lock another test's thread held at that moment (a Mutex, the
//! registry's, the signal install's) stays held in the child, whose fork
//! handler may then wait for it; the child shares every descriptor the
//! other tests have open, so a file lock they let go of stays held for as
//! long as the child lives; and the fork, counted by our prepare handler,
//! makes a file lock another test takes meanwhile come back busy
//! (`files::BeforeOpen`). Each of those failed other tests now and then
//! (more often on a loaded machine, where the moments between a fork and
//! the child's handlers are long).
//!
//! So a test that forks starts with `run_alone`, which runs its body in a
//! copy of the test binary that runs that test and no other; `fork`
//! refuses to fork anywhere else, and so does the fork handlers' prepare
//! (`refuse_fork_beside_other_tests`) in a process that has them: a test
//! added later that forks beside the others fails at its first run, where
//! a gate that every other test had to remember to take would let it pass
//! until a run where the timing went wrong.
//!
//! A program spawned from that process shares those descriptors too, from
//! its start until its exec closes them: a moment, but one that a loaded
//! machine stretched enough for a test's replay to find its own file busy.
//! Programs are started from a thread whose descriptor table is its own
//! and holds none of the tests' files (`with_no_test_files`): the copies
//! `run_alone` starts, and any other a test starts beside the others.

use std::sync::atomic::{AtomicBool, Ordering};

/// Names the one test a copy of the test binary was started to run.
const ALONE_VAR: &str = "SPANGUARD_UNIT_TEST_ALONE";

/// Set in a copy of the test binary that runs one test alone, before that
/// test's body: read by the prepare handler, where the environment's lock
/// may not be taken.
static ALONE: AtomicBool = AtomicBool::new(false);

/// Whether the calling test should run its body here: true in a process
/// that runs this test alone. Elsewhere, runs this test binary again for
/// this test alone (`--exact`, one thread), checks that it ran and passed
/// there, and returns false. `module` is the test's `module_path!()`,
/// `test` its function's name; a name that is not the test's own runs no
/// test, which fails here.
pub(crate) fn run_alone(module: &str, test: &str) -> bool {
    // libtest names a test by its path without the crate's name.
    let path = module.split_once("::").map_or("", |(_, rest)| rest);
    let name = if path.is_empty() {
        test.to_string()
    } else {
        format!("{path}::{test}")
    };
    if std::env::var_os(ALONE_VAR).is_some_and(|v| v == name.as_str()) {
        ALONE.store(true, Ordering::SeqCst);
        return true;
    }
    // Spawned, not forked (no `pre_exec`): std uses posix_spawn, which
    // runs no fork handler and copies no thread.
    let out = with_no_test_files(|| {
        std::process::Command::new(std::env::current_exe().expect("this test binary"))
            .args(["--exact", &name, "--test-threads=1"])
            .env(ALONE_VAR, &name)
            .output()
    })
    .expect("run the test alone");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{name}, run alone in a process of its own: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// Runs `start` (which starts a program) on a thread of its own whose
/// descriptor table is its own, with nothing past stdin, stdout and
/// stderr: a program it starts holds none of the other tests' files, not
/// even between its start and its exec. close_range's UNSHARE copies only
/// the descriptors below the range, so no moment of the copy holds them
/// either. Where the call is refused (a kernel before 5.9) the program
/// shares them until its exec, as any spawn does.
pub(crate) fn with_no_test_files<T: Send>(start: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: closes descriptors of this thread's own copy of the
            // table only (CLOSE_RANGE_UNSHARE); the other threads' are
            // left as they are.
            unsafe {
                libc::syscall(
                    libc::SYS_close_range,
                    3u32,
                    u32::MAX,
                    libc::CLOSE_RANGE_UNSHARE,
                )
            };
            start()
        })
        .join()
        .expect("the thread that starts the program")
    })
}

/// fork(2), from a test that `run_alone` runs alone; refused (a panic)
/// anywhere else.
pub(crate) fn fork() -> libc::pid_t {
    assert!(
        ALONE.load(Ordering::SeqCst),
        "a unit test forks beside the others: start it with forking_tests::run_alone"
    );
    // SAFETY: no other test runs in this process; what the child does is
    // the caller's to keep async-signal-safe.
    unsafe { libc::fork() }
}

/// Whether `pid`, a child a test forked, ended with status 0 within
/// `seconds`; one still running then is killed (a hang is a failure).
pub(crate) fn exited_ok_within(pid: libc::pid_t, seconds: u64) -> bool {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    let mut status = 0;
    while std::time::Instant::now() < until {
        // SAFETY: waits for our own child, without blocking.
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
            return libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // SAFETY: our own child, stuck.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, &mut status, 0);
    }
    false
}

/// Called by the fork handlers' prepare, in a unit test's process: a fork
/// in a process where other tests run aborts it, with the reason written
/// to the real stderr (libtest's capture would lose it with the process).
pub(crate) fn refuse_fork_beside_other_tests() {
    if ALONE.load(Ordering::SeqCst) {
        return;
    }
    let why = b"spanguard unit tests: a test forked beside the others (its child may inherit \
                their locks and file locks); start it with forking_tests::run_alone\n";
    // SAFETY: writes our own bytes to fd 2, then ends the process.
    unsafe {
        libc::write(2, why.as_ptr().cast(), why.len());
        libc::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body runs in a copy of the test binary started by the one that
    /// runs the others, where no other test runs: libtest's thread and
    /// this test's, no more.
    #[test]
    fn a_test_run_alone_runs_its_body_in_a_process_of_its_own() {
        if !run_alone(
            module_path!(),
            "a_test_run_alone_runs_its_body_in_a_process_of_its_own",
        ) {
            return;
        }
        // SAFETY: getppid has no preconditions.
        let parent = unsafe { libc::getppid() };
        let parent_exe = std::fs::read_link(format!("/proc/{parent}/exe")).expect("parent's exe");
        assert_eq!(
            parent_exe,
            std::env::current_exe().expect("exe"),
            "started by the tests"
        );
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        let threads: usize = status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("Threads:");
        assert!(threads <= 2, "{threads} threads");
    }

    /// A program started through `with_no_test_files` holds none of the
    /// descriptors this process has open. One spawned plainly holds them
    /// until its exec, too short to look at: a descriptor of ours kept
    /// open across exec (no FD_CLOEXEC) shows what it got.
    #[test]
    fn a_program_started_with_no_test_files_holds_none_of_ours() {
        use std::os::unix::fs::MetadataExt;
        let path = std::env::temp_dir().join(format!("sg-no-test-files-{}", std::process::id()));
        let ours = std::fs::File::create(&path).expect("a file of ours");
        let made = ours.metadata().expect("meta");
        // SAFETY: a descriptor we own, its flags only.
        unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&ours), libc::F_SETFD, 0) };
        let mut child = with_no_test_files(|| {
            std::process::Command::new("sleep")
                .arg("3600")
                .stdin(std::process::Stdio::null())
                .spawn()
        })
        .expect("start a program");
        let held = std::fs::read_dir(format!("/proc/{}/fd", child.id()))
            .expect("its descriptors")
            .filter_map(|e| e.ok())
            .filter(|e| {
                std::fs::metadata(e.path())
                    .is_ok_and(|m| m.dev() == made.dev() && m.ino() == made.ino())
            })
            .count();
        let _ = child.kill();
        let _ = child.wait();
        drop(ours);
        let _ = std::fs::remove_file(&path);
        assert_eq!(held, 0);
    }

    /// A name that is not the test's own runs no test: a failure, not a
    /// test that passes without running.
    #[test]
    #[should_panic(expected = "run alone in a process of its own")]
    fn a_test_run_alone_under_another_name_fails() {
        run_alone(module_path!(), "no_such_test");
    }

    #[test]
    #[should_panic(expected = "forks beside the others")]
    fn a_fork_beside_other_tests_is_refused() {
        let pid = fork();
        if pid == 0 {
            // SAFETY: a child that was not to be: ends at once.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
}
