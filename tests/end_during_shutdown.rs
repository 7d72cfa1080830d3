//! An end caught between its two halves while the tracer shuts down: its
//! slot already says ENDED (the shutdown's scan passes it by, as ended)
//! but is not in an ended queue yet, as when the ending thread is
//! preempted there. Before the fix the exporter stopped once the queues
//! looked empty, and the span, queued a moment later, was counted ended
//! and never exported (`begin_during_shutdown.rs` caught it about one run
//! in ten under load). Now a stopping exporter waits for such slots.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use spanguard::config::TracerConfig;
use spanguard::tracer::Parent;

const KIND_INTERNAL: u8 = 1;

/// Ends a span up to its queue (on the thread that began it, under its
/// bias, or on another, under its lock), shuts down on a thread of its
/// own, and queues the span only once the shutdown has returned or has had
/// a second to: before the fix it returned first, every time.
fn an_end_paused_before_its_queue_is_exported(name: &str, on_another_thread: bool) {
    let (t, dir) = support::discarding_tracer_with(name, TracerConfig::default());
    let t = Arc::new(t);
    let (s, _) = t
        .begin(b"paused", Parent::None, KIND_INTERNAL)
        .expect("begin");
    let ended = if on_another_thread {
        let t = Arc::clone(&t);
        std::thread::spawn(move || t.end_unqueued_for_test(s))
            .join()
            .expect("thread")
    } else {
        t.end_unqueued_for_test(s)
    }
    .expect("end");
    let shutdown = {
        let t = Arc::clone(&t);
        std::thread::spawn(move || t.shutdown(Duration::from_secs(20)))
    };
    let waited = Instant::now();
    while !shutdown.is_finished() && waited.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(5));
    }
    t.queue_ended_for_test(ended);
    shutdown.join().expect("thread").expect("shutdown");
    let stats = t.stats();
    assert_eq!(
        (stats.spans_ended, stats.spans_exported, stats.queue_depth),
        (1, 1, 0),
        "the span ended during the shutdown was not exported"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_end_paused_under_its_bias_is_exported() {
    an_end_paused_before_its_queue_is_exported("end-paused-biased", false);
}

#[test]
fn an_end_paused_under_its_lock_is_exported() {
    an_end_paused_before_its_queue_is_exported("end-paused-locked", true);
}
