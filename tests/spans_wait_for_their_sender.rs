//! Every tracer of a user shares one state directory (the spool's
//! default), and what a dead process left there (its flight file after a
//! SIGKILL, its crash dump, its spool files) was sent by whichever tracer
//! started next, to its own destination: agent A's prompts and
//! completions, meant for backend X with A's key, arrived at agent B's
//! backend Y, or with B's key at X, or in a test's local sink, and X
//! never got them. Now only a sender set up like the one that wrote them
//! (same endpoint, headers and TLS files; same sink directory) sends
//! them; the others leave them on disk, whole, where `spanguard spool`
//! lists them and `spanguard replay` sends them by hand.
//!
//! One test in this binary: it forks, and a child of a process running
//! other tests' threads would inherit their locks.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spanguard::config::{Compression, LogLevel, TracerConfig};
use spanguard::export::otlp_decode::decode_body;
use spanguard::export::transport::BodyFormat;
use spanguard::tracer::{Parent, Tracer};

mod support;

/// A backend on loopback that notes the name of each span it takes, and
/// answers 503 (taking none) while `down` is set.
struct Backend {
    url: String,
    taken: Arc<Mutex<Vec<String>>>,
    down: Arc<AtomicBool>,
}

impl Backend {
    fn start() -> Backend {
        let taken: Arc<Mutex<Vec<String>>> = Arc::default();
        let down = Arc::new(AtomicBool::new(false));
        let (seen, is_down) = (Arc::clone(&taken), Arc::clone(&down));
        let (url, _) = support::backend(move |body| {
            if is_down.load(Ordering::Acquire) {
                return 503;
            }
            let names = decode_body(body, BodyFormat::Protobuf, false).expect("OTLP");
            seen.lock()
                .unwrap()
                .extend(names.into_iter().map(|s| s.name));
            200
        });
        Backend { url, taken, down }
    }

    /// The names taken so far whose name starts with `prefix`, sorted,
    /// checking that none came twice.
    fn taken(&self, prefix: &str) -> Vec<String> {
        let names: Vec<String> = (self.taken.lock().unwrap())
            .iter()
            .filter(|n| n.starts_with(prefix))
            .cloned()
            .collect();
        support::sorted_once_each(&names)
    }
}

/// A's settings: `endpoint` with A's key, the spool (and sink) in `dir`.
fn config(dir: &Path, endpoint: Option<&str>, key: &str) -> TracerConfig {
    TracerConfig {
        endpoint: endpoint.map(str::to_string),
        headers: vec![("x-api-key".to_string(), key.to_string())],
        sink_dir: dir.join("spans"),
        spool_dir: dir.join("spool"),
        install_signal_handlers: false,
        compression: Compression::None,
        log_level: LogLevel::None,
        schedule_delay: Duration::from_millis(50),
        export_timeout: Duration::from_millis(500),
        ..TracerConfig::default()
    }
}

/// In a forked child: a tracer made through the C API, as a program
/// whose crash handler dumps its spans makes it (the Rust `Tracer`
/// installs no handler), to `endpoint` with A's key over the spool of
/// `dir`, that ends `names` and leaves one span open. False when a call
/// failed.
fn c_child_records(dir: &Path, endpoint: &str, names: &[&str]) -> bool {
    use spanguard::ffi::span::{spanguard_span_begin, spanguard_span_end};
    use spanguard::ffi::tracer::{spanguard_config_init, spanguard_tracer_new};
    use spanguard::ffi::types::{SPANGUARD_SPAN_NONE, spanguard_config};
    use std::ffi::CString;
    let path = |p: PathBuf| CString::new(p.into_os_string().into_encoded_bytes()).expect("no NUL");
    let (sink, spool) = (path(dir.join("spans")), path(dir.join("spool")));
    let endpoint = CString::new(endpoint).expect("no NUL");
    // SAFETY: config_init fills the zeroed struct; the strings outlive
    // the calls, which copy them; spans of a live tracer.
    unsafe {
        let mut cfg: spanguard_config = std::mem::zeroed();
        let size = std::mem::size_of::<spanguard_config>();
        if spanguard_config_init(&mut cfg, size) as u32 != 0 {
            return false;
        }
        cfg.endpoint = endpoint.as_ptr();
        cfg.headers = c"x-api-key=a".as_ptr();
        cfg.sink_dir = sink.as_ptr();
        cfg.spool_dir = spool.as_ptr();
        cfg.schedule_delay_ms = 60_000;
        cfg.install_signal_handlers = 1;
        cfg.log_level = c"none".as_ptr();
        let mut t = std::ptr::null_mut();
        if spanguard_tracer_new(&cfg, &mut t) as u32 != 0 {
            return false;
        }
        for name in names.iter().chain(&["a-open"]) {
            let mut s = SPANGUARD_SPAN_NONE;
            let (ptr, len) = (name.as_ptr().cast(), name.len());
            if spanguard_span_begin(t, ptr, len, SPANGUARD_SPAN_NONE, 0, &mut s) as u32 != 0 {
                return false;
            }
            if *name != "a-open" && spanguard_span_end(s) as u32 != 0 {
                return false;
            }
        }
    }
    true
}

/// Forks a child with `config` that ends `names` and leaves one span
/// open (exporting nothing: a minute's schedule delay), then dies by
/// `signal`: SIGKILL from this process once it says it is ready, or a
/// signal it raises itself (its crash handler dumps first).
fn child_records_and_dies(config: TracerConfig, names: &[&str], signal: i32) {
    let mut ready = [0i32; 2];
    // SAFETY: pipe writes two descriptors into the array.
    assert_eq!(unsafe { libc::pipe(ready.as_mut_ptr()) }, 0);
    // SAFETY: this test is the binary's only one; the child uses the
    // library from its single thread and leaves by a signal or _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        // Kept alive until the child dies.
        let mut _tracer = None;
        if config.install_signal_handlers {
            let endpoint = config.endpoint.as_deref().unwrap_or_default();
            let dir = config
                .spool_dir
                .parent()
                .expect("the spool in its directory");
            if !c_child_records(dir, endpoint, names) {
                unsafe { libc::_exit(3) };
            }
        } else {
            let tracer = Tracer::new(TracerConfig {
                schedule_delay: Duration::from_secs(60),
                ..config
            })
            .unwrap_or_else(|_| unsafe { libc::_exit(3) });
            for name in names {
                let (s, _) = tracer
                    .begin(name.as_bytes(), Parent::None, 1)
                    .unwrap_or_else(|_| unsafe { libc::_exit(3) });
                let _ = tracer.end(s, 0);
            }
            let _open = tracer.begin(b"a-open", Parent::None, 1);
            _tracer = Some((tracer, _open));
        }
        // SAFETY: a byte to the parent, then dying as told.
        unsafe {
            libc::write(ready[1], b"r".as_ptr().cast(), 1);
            if signal != libc::SIGKILL {
                libc::raise(signal);
            }
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
        if signal == libc::SIGKILL {
            libc::kill(pid, libc::SIGKILL);
        }
        libc::close(ready[0]);
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFSIGNALED(status), "status {status}");
    assert_eq!(libc::WTERMSIG(status), signal);
}

/// A process's run over the spool in `config`: it ends spans named
/// `prefix-0..n`, flushes and shuts down. Returns its stats.
fn run(config: TracerConfig, prefix: &str, n: usize) -> spanguard::stats::StatsSnapshot {
    let tracer = Tracer::new(config).expect("tracer");
    support::end_numbered(&tracer, prefix, n);
    support::flush_and_shut_down(&tracer, prefix)
}

/// What a dead process left in the spool directory: its files whose name
/// ends with one of `kinds`.
fn left(dir: &Path, kinds: &[&str]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("spool"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| kinds.iter().any(|k| p.to_string_lossy().ends_with(k)));
    files.sort();
    files
}

/// The span names the local sink wrote in `dir`.
fn sunk(dir: &Path) -> String {
    let mut text = String::new();
    for file in std::fs::read_dir(dir.join("spans")).into_iter().flatten() {
        text.push_str(&std::fs::read_to_string(file.expect("entry").path()).unwrap_or_default());
    }
    text
}

/// One dead process A's leftovers (`kinds`) against three successors:
/// B to another backend, B with another key to A's backend, B with a
/// local sink: each sends its own spans and none of A's, which stay
/// whole on disk; then C, set up as A, sends every one of A's once.
/// `a_names`: the spans A's leftovers hold.
fn only_a_sender_like_a_sends(
    dir: &Path,
    x: &Backend,
    kinds: &[&str],
    a_names: &[String],
    context: &str,
) {
    let waiting = left(dir, kinds);
    assert!(!waiting.is_empty(), "{context}: A left nothing");
    let bytes = |files: &[PathBuf]| -> Vec<Vec<u8>> {
        files
            .iter()
            .map(|f| std::fs::read(f).expect("read"))
            .collect()
    };
    let before = bytes(&waiting);

    let y = Backend::start();
    let b = run(config(dir, Some(&y.url), "a"), "b-other-backend", 4);
    assert_eq!(b.replayed_spans + b.recovered_spans, 0, "{context}: {b:?}");
    assert_eq!(
        y.taken(""),
        support::numbered("b-other-backend", 4),
        "{context}: backend Y got spans of A"
    );
    let b = run(config(dir, Some(&x.url), "b"), "b-other-key", 4);
    assert_eq!(b.replayed_spans + b.recovered_spans, 0, "{context}: {b:?}");
    assert!(
        x.taken("a-").is_empty(),
        "{context}: A's spans went to X with B's key"
    );
    let b = run(config(dir, None, "a"), "b-sink", 4);
    assert_eq!(b.replayed_spans + b.recovered_spans, 0, "{context}: {b:?}");
    let sink = sunk(dir);
    assert!(sink.contains("b-sink-3"), "{context}: {sink}");
    assert!(
        !sink.contains("\"a-"),
        "{context}: A's spans went to a local sink: {sink}"
    );
    assert_eq!(
        left(dir, kinds),
        waiting,
        "{context}: A's files moved or went"
    );
    assert_eq!(bytes(&waiting), before, "{context}: A's files changed");

    let c = run(config(dir, Some(&x.url), "a"), "c", 2);
    assert_eq!(
        x.taken("a-"),
        a_names,
        "{context}: C did not send A's spans"
    );
    assert_eq!(x.taken("c-"), support::numbered("c", 2), "{context}");
    assert!(left(dir, kinds).is_empty(), "{context}: A's files left");
    // Recovered spans are counted replayed too.
    assert_eq!(c.replayed_spans, a_names.len() as u64, "{context}: {c:?}");
}

#[test]
fn spans_a_dead_process_left_go_only_to_a_sender_set_up_like_it() {
    let base = std::env::temp_dir().join(format!("sg-their-sender-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let x = Backend::start();
    let mut a_names: Vec<String> = ["a-0", "a-1", "a-2", "a-open"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a_names.sort();

    // The flight recorder, SIGKILLed: its flight file.
    let dir = base.join("flight");
    child_records_and_dies(
        TracerConfig {
            flight_recorder: true,
            ..config(&dir, Some(&x.url), "a")
        },
        &["a-0", "a-1", "a-2"],
        libc::SIGKILL,
    );
    only_a_sender_like_a_sends(&dir, &x, &[".sgflight"], &a_names, "flight file");
    x.taken.lock().unwrap().clear();

    // The crash handler: its crash dump.
    let dir = base.join("crash");
    child_records_and_dies(
        TracerConfig {
            install_signal_handlers: true,
            ..config(&dir, Some(&x.url), "a")
        },
        &["a-0", "a-1", "a-2"],
        libc::SIGABRT,
    );
    only_a_sender_like_a_sends(&dir, &x, &[".sgdump"], &a_names, "crash dump");
    x.taken.lock().unwrap().clear();

    // The backend down while A ran: its spool files.
    let dir = base.join("spool");
    x.down.store(true, Ordering::Release);
    let a = run(config(&dir, Some(&x.url), "a"), "a", 5);
    assert_eq!(a.spooled_spans, 5, "{a:?}");
    x.down.store(false, Ordering::Release);
    only_a_sender_like_a_sends(
        &dir,
        &x,
        &[".sgspool"],
        &support::numbered("a", 5),
        "spool files",
    );

    std::fs::remove_dir_all(&base).ok();
}
