//! An exporter stuck for good inside one request, where no timeout of
//! curl's reaches (a forked child's first TLS connect waiting on the
//! random-number lock its parent held at the fork, a resolver that
//! blocks, a user's callback): the spans recorded after it got stuck are
//! noticed while the process lives. A flush past the request timeout and
//! its grace finds it stuck, and a stand-in exporter writes them to the
//! spool (counted spooled, the error callback hears why). The batch inside
//! the stuck request stays the stuck exporter's: a flush is not done while
//! it holds it (neither delivered nor on disk), and when its request
//! returns, it alone delivers it, once.
//! Before, every flush timed out, nothing was counted, and the spans
//! waited in the ring for a shutdown's crash dump.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spanguard::config::TracerConfig;
use spanguard::export::transport::{Accepted, BodyFormat, SendError, Transport};
use spanguard::pipeline::{ExportEvent, FlushOutcome};
use spanguard::tracer::{Parent, Tracer};

/// A tracer whose first request blocks until the test sends on (or drops)
/// the channel; what tells that the request began; the requests that
/// returned accepted; its directory. `slots`: its queue and open spans,
/// when not the default.
fn stuck_tracer(
    name: &str,
    slots: Option<u32>,
) -> (Tracer, Sender<()>, Receiver<()>, Arc<AtomicU64>, PathBuf) {
    stuck_tracer_with(name, slots, false)
}

/// `stuck_tracer`, with a crash dump (`crash_dump`: the signal handlers'
/// setting, which the C API's tracers have by default).
fn stuck_tracer_with(
    name: &str,
    slots: Option<u32>,
    crash_dump: bool,
) -> (Tracer, Sender<()>, Receiver<()>, Arc<AtomicU64>, PathBuf) {
    let dir = std::env::temp_dir().join(format!("sg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let defaults = TracerConfig::default();
    let config = TracerConfig {
        max_queue_size: slots.unwrap_or(defaults.max_queue_size),
        max_open_spans: slots.unwrap_or(defaults.max_open_spans),
        max_export_batch_size: slots.unwrap_or(defaults.max_export_batch_size),
        sink_dir: dir.join("spans"),
        spool_dir: dir.join("spool"),
        install_signal_handlers: crash_dump,
        install_crash_handlers: false,
        schedule_delay: Duration::from_millis(20),
        request_timeout: Duration::from_millis(100),
        export_timeout: Duration::from_millis(300),
        ..defaults
    };
    let (release, released) = channel();
    let (entered, enters) = channel();
    let accepted = Arc::new(AtomicU64::new(0));
    let transport = HeldFirst {
        release: Arc::new(Mutex::new(released)),
        entered,
        sends: 0,
        accepted: Arc::clone(&accepted),
    };
    let tracer = Tracer::with_transport(config, Box::new(transport)).expect("tracer");
    (tracer, release, enters, accepted, dir)
}

/// One span, taken by the exporter into the request that does not
/// return, then `after` more.
fn stuck_then_recording(tracer: &Tracer, enters: &Receiver<()>, after: u64) {
    let (s, _) = tracer.begin(b"first", Parent::None, 1).expect("begin");
    tracer.end(s, 0).expect("end");
    enters
        .recv_timeout(Duration::from_secs(30))
        .expect("the exporter's first request began");
    for _ in 0..after {
        let (s, _) = tracer.begin(b"after", Parent::None, 1).expect("begin");
        tracer.end(s, 0).expect("end");
    }
}

/// Its first request blocks until the test lets it go (the channel sends
/// or closes); the requests after it are accepted at once. Counts the
/// requests that returned accepted, and says when the first is in.
struct HeldFirst {
    release: Arc<Mutex<Receiver<()>>>,
    entered: Sender<()>,
    sends: u64,
    accepted: Arc<AtomicU64>,
}

impl Transport for HeldFirst {
    fn send(&mut self, _: &[u8], _: BodyFormat, _: bool) -> Result<Accepted, SendError> {
        self.sends += 1;
        if self.sends == 1 {
            let _ = self.entered.send(());
            let _ = self.release.lock().unwrap().recv();
        }
        self.accepted.fetch_add(1, Ordering::SeqCst);
        Ok(Accepted::default())
    }

    fn describe(&self) -> String {
        "held-first".to_string()
    }

    fn sender_fingerprint(&self) -> Option<u64> {
        Some(0x5eed)
    }
}

fn wait_for(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn spool_files(dir: &PathBuf) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".sgspool"))
                .collect()
        })
        .unwrap_or_default()
}

/// Shuts `tracer` down, every span dealt with.
fn shut_down_done(tracer: &Tracer) {
    let out = tracer.shutdown(Duration::from_secs(10)).expect("shutdown");
    assert!(out.is_done(), "{out:?}");
}

/// Flushes (each timing out) until a stand-in has spooled `n` spans.
fn flush_until_spooled(tracer: &Tracer, n: u64) {
    wait_for(
        "the spans after it spooled",
        Duration::from_secs(30),
        || {
            let _ = tracer.flush(Duration::from_millis(200));
            tracer.stats().spooled_spans == n
        },
    );
}

/// The outcome records (`spanguard why`'s) in the tracer's spool.
fn outcome_records(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("spool/outcomes"))
        .expect("outcomes")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".sgoutcome"))
        .map(|e| std::fs::read_to_string(e.path()).expect("record"))
        .collect()
}

#[test]
fn spans_after_the_exporter_got_stuck_are_spooled_while_the_process_lives() {
    let (tracer, release, enters, accepted, dir) = stuck_tracer("stuck-exporter", None);
    let events: Arc<Mutex<Vec<(ExportEvent, String)>>> = Default::default();
    let heard = Arc::clone(&events);
    tracer.set_callback(Some(Box::new(move |event, text: &str| {
        heard.lock().unwrap().push((event, text.to_string()));
    })));
    // The program goes on recording after the exporter got stuck.
    const AFTER: u64 = 20;
    stuck_then_recording(&tracer, &enters, AFTER);

    // Flushes time out until the exporter has been inside that one
    // request longer than its timeout and grace; then the spans after it
    // are spooled by another thread. The flush still times out: the span
    // in the stuck request is neither delivered nor on disk.
    wait_for(
        "the spans after it spooled",
        Duration::from_secs(30),
        || {
            let out = tracer.flush(Duration::from_millis(200)).expect("flush");
            assert_eq!(out, FlushOutcome::TimedOut);
            tracer.stats().spooled_spans == AFTER
        },
    );
    let stats = tracer.stats();
    assert_eq!(stats.spooled_spans, AFTER, "{stats:?}");
    assert_eq!(stats.spans_exported, 0, "{stats:?}");
    assert!(
        !spool_files(&dir.join("spool")).is_empty(),
        "the spool holds them"
    );
    {
        let events = events.lock().unwrap();
        let told = events
            .iter()
            .find(|(e, _)| *e == ExportEvent::BatchSpooled)
            .unwrap_or_else(|| panic!("told of the spooled spans: {events:?}"));
        assert!(
            told.1.contains("stuck in a request"),
            "the reason names the stuck request: {}",
            told.1
        );
    }

    // More spans while it is still stuck go the same way.
    for _ in 0..5 {
        let (s, _) = tracer.begin(b"later", Parent::None, 1).expect("begin");
        tracer.end(s, 0).expect("end");
    }
    assert_eq!(
        tracer.flush(Duration::from_millis(500)),
        Ok(FlushOutcome::TimedOut)
    );
    assert_eq!(tracer.stats().spooled_spans, AFTER + 5);

    // The stuck request returns, accepted: its batch is delivered by the
    // exporter that held it, once, and spooled by no one; the flush waiting
    // for it is done then.
    let flushing = std::thread::scope(|scope| {
        let flush = scope.spawn(|| tracer.flush(Duration::from_secs(30)));
        release.send(()).unwrap();
        flush.join().expect("flush")
    });
    assert_eq!(flushing, Ok(FlushOutcome::Spooled));
    assert_eq!(tracer.stats().spans_exported, 1);
    let out = tracer.shutdown(Duration::from_secs(10)).expect("shutdown");
    assert!(out.is_done(), "{out:?}");
    let stats = tracer.stats();
    assert_eq!(stats.spans_exported, 1, "{stats:?}");
    assert_eq!(stats.spooled_spans, AFTER + 5, "{stats:?}");
    assert_eq!(stats.spans_ended, AFTER + 6, "{stats:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one request reached it");
    // `spanguard why` reads one record of this tracer (the stand-in
    // carried on the stuck exporter's), stopped, naming the cause.
    let records = outcome_records(&dir);
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(records[0].contains("\nstate stopped\n"), "{}", records[0]);
    assert!(records[0].contains("\nspooled 25\n"), "{}", records[0]);
    assert!(
        records[0].contains("\nspooled_because the exporter was stuck in a request"),
        "{}",
        records[0]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_shutdown_leaves_the_batch_of_a_request_that_never_returns_to_its_thread() {
    let (tracer, release, enters, accepted, dir) = stuck_tracer("stuck-to-the-end", None);
    stuck_then_recording(&tracer, &enters, 10);
    flush_until_spooled(&tracer, 10);
    // The stand-in stops and is joined; the stuck thread is left with the
    // span it holds, which the shutdown does not say dealt with.
    assert_eq!(
        tracer.shutdown(Duration::from_secs(5)),
        Ok(FlushOutcome::TimedOut)
    );
    let stats = tracer.stats();
    assert_eq!(stats.spooled_spans, 10, "{stats:?}");
    assert_eq!(stats.spans_exported, 0, "{stats:?}");
    // Let go at last, it delivers its batch itself, once.
    release.send(()).unwrap();
    wait_for("the held batch delivered", Duration::from_secs(30), || {
        tracer.stats().spans_exported == 1
    });
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert_eq!(tracer.stats().spooled_spans, 10);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A program that never flushes: the slots fill behind the stuck exporter,
/// and a begin that finds none free starts the stand-in, which frees them.
/// Every span ended is delivered or spooled; those that found no slot are
/// counted dropped.
#[test]
fn a_begin_out_of_slots_behind_a_stuck_exporter_starts_the_stand_in() {
    let (tracer, release, enters, _accepted, dir) = stuck_tracer("stuck-full", Some(32));
    stuck_then_recording(&tracer, &enters, 0);
    wait_for(
        "spans spooled with no flush asked",
        Duration::from_secs(30),
        || {
            if let Ok((s, _)) = tracer.begin(b"after", Parent::None, 1) {
                tracer.end(s, 0).expect("end");
            }
            std::thread::sleep(Duration::from_millis(1));
            tracer.stats().spooled_spans > 0
        },
    );
    drop(release);
    wait_for("the held batch delivered", Duration::from_secs(30), || {
        tracer.stats().spans_exported == 1
    });
    shut_down_done(&tracer);
    let stats = tracer.stats();
    assert_eq!(
        stats.spans_ended,
        stats.spans_exported + stats.spooled_spans,
        "{stats:?}"
    );
    assert!(
        stats.dropped_buffer_full > 0,
        "the slots were full: {stats:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A long-lived worker that records a few spans (fewer than the slots
/// hold) and then idles, never flushing: no call of its asks whether the
/// exporter is stuck. The watchdog thread, which wakes when an exporter's
/// request would be past its timeout and grace, does: the spans are
/// spooled and counted while the worker idles. Before, they sat in the
/// slots until the shutdown's crash dump, or for good under SIGKILL.
#[test]
fn an_idle_worker_s_spans_behind_a_stuck_exporter_are_spooled_with_no_call_of_its_own() {
    let (tracer, release, enters, accepted, dir) = stuck_tracer("stuck-idle", None);
    // As the C API does for each tracer: in the registry, then the
    // watchdog (the termination handlers alone; no crash handlers).
    let id = spanguard::registry::reserve().expect("a tracer number");
    spanguard::registry::publish(id, tracer.pipeline());
    spanguard::watchdog::ensure_installed(false);
    const AFTER: u64 = 10;
    stuck_then_recording(&tracer, &enters, AFTER);
    // The worker idles: the test only reads the counts. Generous: the
    // watchdog looks once the request is past its timeout and grace
    // (1.6 s here), 18 times that is allowed for a loaded machine.
    wait_for(
        "the idle worker's spans spooled",
        Duration::from_secs(30),
        || tracer.stats().spooled_spans == AFTER,
    );
    let stats = tracer.stats();
    assert_eq!(stats.spans_exported, 0, "{stats:?}");
    assert!(
        !spool_files(&dir.join("spool")).is_empty(),
        "the spool holds them"
    );
    // Let go, the stuck request delivers its own batch, once.
    release.send(()).unwrap();
    wait_for("the held batch delivered", Duration::from_secs(30), || {
        tracer.stats().spans_exported == 1
    });
    spanguard::registry::release(id);
    shut_down_done(&tracer);
    let stats = tracer.stats();
    assert_eq!(stats.spooled_spans, AFTER, "{stats:?}");
    assert_eq!(stats.spans_exported, 1, "{stats:?}");
    assert_eq!(stats.spans_ended, AFTER + 1, "{stats:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A shutdown that leaves the exporter stuck in its request (a stand-in
/// spooled the rest) writes the batch that exporter holds to the crash
/// dump, and the record says so: `spanguard why` counts it and says where
/// it went. Before, the record counted 10 spooled of 11 ended and said
/// nothing of the eleventh.
#[test]
fn the_batch_a_stuck_exporter_held_at_the_stop_is_counted_in_the_record_with_its_file() {
    let (tracer, release, enters, _accepted, dir) = stuck_tracer_with("stuck-dumped", None, true);
    stuck_then_recording(&tracer, &enters, 10);
    flush_until_spooled(&tracer, 10);
    assert_eq!(
        tracer.shutdown(Duration::from_secs(5)),
        Ok(FlushOutcome::TimedOut)
    );
    let spool = dir.join("spool");
    let records = outcome_records(&dir);
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(records[0].contains("\nended 11\n"), "{}", records[0]);
    assert!(records[0].contains("\nspooled 10\n"), "{}", records[0]);
    let held = records[0]
        .lines()
        .find_map(|l| l.strip_prefix("held_at_stop "))
        .unwrap_or_else(|| panic!("the held batch noted: {}", records[0]));
    let (spans, file) = held.split_once(' ').expect("a file named");
    assert_eq!(spans, "1");
    assert!(
        spool.join(file).is_file(),
        "{file} in {:?}",
        spool_files(&spool)
    );
    drop(release);
    let _ = std::fs::remove_dir_all(&dir);
}
