//! A flush answers for the spans ended before it, not for an empty queue:
//! while other threads keep ending spans faster than the backend takes
//! them, the queue is never empty, and a flush that waited for that would
//! only ever time out (and the signal watchdog, which flushes before it
//! dumps, would run out of time with a batch still in flight).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use spanguard::config::{FullPolicy, TracerConfig};
use spanguard::pipeline::FlushOutcome;
use spanguard::tracer::{Parent, Tracer};

mod support;

/// A backend that takes 20 ms per request: 16-span batches then leave at
/// most 800 spans a second, far below what one thread can end.
fn slow_backend() -> (String, Arc<AtomicBool>) {
    support::slow_backend(Duration::from_millis(20), |_| {})
}

#[test]
fn flush_returns_once_earlier_spans_are_sent_though_more_keep_coming() {
    let dir = std::env::temp_dir().join(format!("sg-flush-load-{}", std::process::id()));
    let (url, backend_closed) = slow_backend();
    let config = TracerConfig {
        endpoint: Some(url),
        sink_dir: dir.join("spans"),
        spool_dir: dir.join("spool"),
        install_signal_handlers: false,
        max_export_batch_size: 16,
        max_queue_size: 256,
        max_open_spans: 64,
        full_policy: FullPolicy::Drop,
        export_timeout: Duration::from_secs(30),
        request_timeout: Duration::from_secs(10),
        ..TracerConfig::default()
    };
    let tracer = Arc::new(Tracer::new(config).expect("tracer"));
    let running = Arc::new(AtomicBool::new(true));
    let producer = {
        let (tracer, running) = (Arc::clone(&tracer), Arc::clone(&running));
        thread::spawn(move || {
            while running.load(Ordering::Relaxed) {
                if let Ok((s, _)) = tracer.begin(b"busy", Parent::None, 1) {
                    let _ = tracer.end(s, 0);
                }
            }
        })
    };
    // Let the queue fill: from here on it stays non-empty.
    while tracer.stats().queue_depth < 128 {
        thread::yield_now();
    }
    let ended_before = tracer.stats().spans_ended;
    let flushed = tracer.flush(Duration::from_secs(60)).expect("flush");
    let stats = tracer.stats();
    running.store(false, Ordering::Relaxed);
    producer.join().unwrap();
    assert_eq!(
        flushed,
        FlushOutcome::Delivered,
        "flush timed out with the queue never empty"
    );
    assert!(
        stats.spans_exported >= ended_before,
        "flush returned before the spans ended earlier were exported: {stats:?}"
    );
    assert!(
        stats.queue_depth > 0,
        "the test did not keep the queue busy, so it proves nothing: {stats:?}"
    );
    let _ = tracer.shutdown(Duration::from_secs(30));
    backend_closed.store(true, Ordering::Release);
    std::fs::remove_dir_all(&dir).ok();
}
