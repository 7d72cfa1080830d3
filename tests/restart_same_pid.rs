//! A container restarted on the same volume (a crash loop, `docker
//! restart`, a pod restarted keeping its volume): the new process has the
//! dead one's pid, PID 1 of its namespace. Process A, PID 1, spools what
//! the backend refused, keeps more spans in its flight recorder and is
//! SIGKILLed; process B, PID 1 again with the same spool directory,
//! starts. Every span of A arrives, once, beside B's, and the outcomes
//! directory keeps A's record beside B's: named by pid alone, B's first
//! record replaced A's, and `spanguard why` could no longer say what the
//! killed run did. Each process is a copy of this test binary run by
//! `unshare --pid --fork` (we are root in the test container; without PID
//! namespaces the test says so and checks nothing).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spanguard::config::TracerConfig;
use spanguard::export::otlp_decode::decode_proto;
use spanguard::export::outcome;
use spanguard::tracer::Tracer;

mod support;

const ROLE: &str = "SPANGUARD_TEST_RESTART_ROLE";
const DIR: &str = "SPANGUARD_TEST_RESTART_DIR";
const URL: &str = "SPANGUARD_TEST_RESTART_URL";
const TEST: &str = "a_restarted_container_with_the_dead_ones_pid_sends_and_keeps_its_leftovers";

fn tracer(dir: &Path, url: &str) -> Tracer {
    Tracer::new(TracerConfig {
        endpoint: Some(url.to_string()),
        spool_dir: dir.join("spool"),
        sink_dir: dir.join("sink"),
        install_signal_handlers: false,
        flight_recorder: true,
        // Nothing is exported but by a flush: what is not flushed stays
        // in the flight file.
        schedule_delay: Duration::from_secs(3600),
        export_timeout: Duration::from_millis(300),
        ..TracerConfig::default()
    })
    .expect("tracer")
}

/// Process A (PID 1): two spans refused (503) and spooled, three more in
/// the flight recorder; then it says so and waits for its SIGKILL.
fn process_a(dir: &Path, url: &str) {
    let t = tracer(dir, url);
    support::end_spans(&t, &["a-spooled-1", "a-spooled-2"]);
    let _ = t.flush(Duration::from_secs(5));
    support::end_spans(&t, &["a-flight-1", "a-flight-2", "a-flight-3"]);
    std::fs::write(dir.join("a-ready"), "").expect("ready");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Process B (PID 1 again): two spans of its own, flushed (which recovers
/// and replays what A left) and shut down.
fn process_b(dir: &Path, url: &str) {
    let t = tracer(dir, url);
    support::end_spans(&t, &["b-1", "b-2"]);
    let _ = t.flush(Duration::from_secs(10));
    let _ = t.shutdown(Duration::from_secs(10));
}

/// The unshare process of a PID 1 of ours, killed (and its PID 1 with it:
/// `--kill-child`) if the test ends before it does.
struct Unshare(std::process::Child);

impl Drop for Unshare {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs this test in a copy of this binary, PID 1 of a new PID namespace,
/// as `role`.
fn start_pid1(role: &str, dir: &Path, url: &str) -> Unshare {
    let child = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child"])
        .arg(std::env::current_exe().expect("this test binary"))
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(DIR, dir)
        .env(URL, url)
        .spawn()
        .expect("unshare");
    Unshare(child)
}

/// The pid (here) of the one child of the unshare process `unshare`.
fn pid1_of(unshare: u32) -> u32 {
    let path = format!("/proc/{unshare}/task/{unshare}/children");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let children = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(pid) = children.split_whitespace().next() {
            return pid.parse().expect("a pid");
        }
        assert!(Instant::now() < deadline, "unshare started no process");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn pid_namespaces_work() -> bool {
    Command::new("unshare")
        .args(["--pid", "--fork", "sh", "-c", "test $$ = 1"])
        .status()
        .is_ok_and(|s| s.success())
}

/// The outcome records of the spool directory in `dir`, each parsed.
fn outcome_records(dir: &Path) -> Vec<(PathBuf, outcome::Outcome)> {
    let Ok(entries) = std::fs::read_dir(outcome::dir_in(&dir.join("spool"))) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            !name.starts_with('.') && name.ends_with(outcome::SUFFIX)
        })
        .map(|e| {
            let text = std::fs::read_to_string(e.path()).expect("record");
            (e.path(), outcome::parse(&text).expect("a record"))
        })
        .collect()
}

#[test]
fn a_restarted_container_with_the_dead_ones_pid_sends_and_keeps_its_leftovers() {
    if let Some(role) = std::env::var_os(ROLE) {
        // SAFETY: getpid has no preconditions.
        assert_eq!(unsafe { libc::getpid() }, 1, "not PID 1 of a namespace");
        let dir = PathBuf::from(std::env::var_os(DIR).expect("dir"));
        let url = std::env::var(URL).expect("url");
        match role.to_str() {
            Some("a") => process_a(&dir, &url),
            Some("b") => process_b(&dir, &url),
            other => panic!("no role {other:?}"),
        }
        return;
    }
    if !pid_namespaces_work() {
        eprintln!("skipped: no PID namespace here (`unshare --pid --fork` fails)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("sg-restart-same-pid-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    // Refuses everything while A runs, takes everything after.
    let taking = Arc::new(AtomicBool::new(false));
    let received: Arc<Mutex<BTreeMap<String, u32>>> = Default::default();
    let (url, _closed) = {
        let (taking, received) = (Arc::clone(&taking), Arc::clone(&received));
        support::backend(move |body| {
            if !taking.load(Ordering::Acquire) {
                return 503;
            }
            let mut got = received.lock().unwrap();
            for span in decode_proto(body).expect("protobuf") {
                *got.entry(span.name).or_default() += 1;
            }
            200
        })
    };

    let mut a = start_pid1("a", &dir, &url);
    let deadline = Instant::now() + Duration::from_secs(60);
    // Ready, and its record written (the exporter's first act).
    while !dir.join("a-ready").exists() || outcome_records(&dir).is_empty() {
        assert!(Instant::now() < deadline, "process A never got ready");
        assert!(a.0.try_wait().expect("wait").is_none(), "process A ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    let a_pid = pid1_of(a.0.id());
    // SAFETY: kill has no memory preconditions; the pid is A's, a child
    // of our own child that has not been waited for.
    assert_eq!(unsafe { libc::kill(a_pid as i32, libc::SIGKILL) }, 0);
    let _ = a.0.wait();
    let a_records = outcome_records(&dir);
    assert_eq!(a_records.len(), 1, "A's record: {a_records:?}");
    assert_eq!(a_records[0].1.pid, 1);

    taking.store(true, Ordering::Release);
    let mut b = start_pid1("b", &dir, &url);
    assert!(b.0.wait().expect("wait").success(), "process B failed");

    let got = received.lock().unwrap().clone();
    let records = outcome_records(&dir);
    std::fs::remove_dir_all(&dir).ok();
    let expected: BTreeMap<String, u32> = [
        "a-spooled-1",
        "a-spooled-2",
        "a-flight-1",
        "a-flight-2",
        "a-flight-3",
        "b-1",
        "b-2",
    ]
    .into_iter()
    .map(|n| (n.to_string(), 1))
    .collect();
    assert_eq!(got, expected, "spans received, by name and times");
    // A's record is still there beside B's, both PID 1, untouched but
    // for what B, recovering A's flight file, noted of A's death (cli53's
    // `died` line): no signal (SIGKILL names none), its 3 spans.
    assert_eq!(records.len(), 2, "{records:?}");
    let a_record = records.iter().find(|(p, _)| *p == a_records[0].0);
    let a_now = &a_record.expect("A's record").1;
    assert_eq!(
        a_now
            .deaths
            .iter()
            .map(|d| (d.signal, d.open, d.spans))
            .collect::<Vec<_>>(),
        [(0, 0, 3)],
        "{records:?}"
    );
    let mut but_its_death = a_now.clone();
    but_its_death.deaths.clear();
    assert_eq!(but_its_death, a_records[0].1, "{records:?}");
    let b_record = records.iter().find(|(p, _)| *p != a_records[0].0);
    let b_record = &b_record.expect("B's record").1;
    assert!(b_record.stopped && b_record.pid == 1, "{b_record:?}");
    assert_eq!(b_record.counts.ended, 2, "{b_record:?}");
    // Each says which process it was: not the same one.
    assert!(a_records[0].1.start.is_some() && b_record.start.is_some());
    assert_ne!(a_records[0].1.start, b_record.start);
}
