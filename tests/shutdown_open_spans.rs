//! Shutdown ends and exports every span still open, marked unended, however
//! far into the slab they lie: the scan for them stops at the slots ever
//! used (the populated frontier), and must not stop short of any.

mod support;

use std::time::Duration;

use spanguard::config::TracerConfig;
use spanguard::tracer::{Parent, SpanError, Tracer};

#[test]
fn spans_open_across_many_populated_ranges_are_all_ended_at_shutdown() {
    let config = TracerConfig {
        endpoint: Some("discard:".to_string()),
        install_signal_handlers: false,
        max_open_spans: 1 << 12,
        ..TracerConfig::default()
    };
    let tracer = Tracer::new(config).expect("tracer");
    // Slots are populated 64 at a time: 1,000 open spans cross 15 ranges.
    // A few ended spans between them leave the open ones scattered.
    let mut open = 0u64;
    for i in 0..1_100 {
        let (s, _) = tracer.begin(b"open", Parent::None, 1).expect("begin");
        if i % 11 == 10 {
            tracer.end(s, 0).expect("end");
        } else {
            open += 1;
        }
    }
    assert_eq!(open, 1_000);
    let _ = tracer.shutdown(Duration::from_secs(30));
    let stats = tracer.stats();
    assert_eq!(stats.spans_unended_at_shutdown, open, "{stats:?}");
    assert_eq!(stats.spans_interrupted_at_shutdown, 0, "{stats:?}");
    assert_eq!(stats.spans_exported, 1_100, "{stats:?}");
}

/// A shutdown for a signal (a binding's own SIGTERM handler: Node's
/// installProcessHooks, Go's FlushOnSignals) marks the spans still open
/// interrupted by that signal, as the watchdog's dump marks them, and
/// does not count them as unended: marked unended, a span open at
/// `docker stop` read as one the program forgot to end.
#[test]
fn a_shutdown_for_a_signal_marks_open_spans_interrupted_by_it() {
    let (tracer, dir) = support::tracer_in("shutdown-for-signal", TracerConfig::default());
    let (ended, _) = tracer.begin(b"ended", Parent::None, 1).expect("begin");
    tracer.end(ended, 0).expect("end");
    let _open = tracer
        .begin(b"open-at-sigterm", Parent::None, 1)
        .expect("begin");
    assert_eq!(
        tracer.shutdown_for_signal(Duration::from_secs(30), 0),
        Err(SpanError::InvalidArgument),
        "no signal has the number 0"
    );
    assert_eq!(
        tracer.shutdown_for_signal(Duration::from_secs(30), libc::SIGRTMAX() + 1),
        Err(SpanError::InvalidArgument)
    );
    tracer
        .shutdown_for_signal(Duration::from_secs(30), libc::SIGTERM)
        .expect("shutdown");
    let stats = tracer.stats();
    assert_eq!(stats.spans_unended_at_shutdown, 0, "{stats:?}");
    // Counted apart: a program that reads its counters after a SIGTERM
    // saw them in spans_exported alone, like spans it had ended itself.
    assert_eq!(stats.spans_interrupted_at_shutdown, 1, "{stats:?}");
    assert_eq!(stats.spans_ended, 2, "{stats:?}");
    assert_eq!(stats.spans_exported, 2, "{stats:?}");
    let sink = tracer.sink_path().expect("a file sink");
    let lines = std::fs::read_to_string(sink).expect("sink");
    let open: Vec<&str> = lines
        .lines()
        .flat_map(|l| l.split("{\"traceId\"").skip(1))
        .filter(|s| s.contains("\"name\":\"open-at-sigterm\""))
        .collect();
    assert_eq!(open.len(), 1, "{lines}");
    assert!(
        open[0].contains("{\"key\":\"spanguard.interrupted\",\"value\":{\"boolValue\":true}}"),
        "{lines}"
    );
    assert!(
        open[0].contains("{\"key\":\"spanguard.signal\",\"value\":{\"intValue\":\"15\"}}"),
        "{lines}"
    );
    assert!(!lines.contains("spanguard.unended"), "{lines}");
    assert_eq!(
        tracer.shutdown_for_signal(Duration::from_secs(1), libc::SIGTERM),
        Err(SpanError::ShutDown)
    );
    // The tracer's last record (what `spanguard why` reads) names the
    // signal it stopped for: it said "stopped its tracer at a termination
    // signal ... still open at the signal", which one untold.
    let (text, record) = support::the_outcome_record(&dir.join("spool"));
    assert!(record.stopped, "{text}");
    assert_eq!(record.ending_of_signal, libc::SIGTERM, "{text}");
    assert_eq!(record.counts.interrupted, 1, "{text}");
    let _ = std::fs::remove_dir_all(dir);
}
