//! A gateway that holds one request until the client gives up (a proxy
//! hanging on one huge LLM request, then a 504 or nothing) while it passes
//! the others: the batch holding that request's span is spooled, and each
//! replay of its file costs a whole request timeout on the exporter
//! thread. Under steady traffic the file is split as one a gateway answers
//! 504 is (its other spans delivered, the marked one counted lost in
//! `dropped_replay_failed`), and every other span arrives once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spanguard::config::{Compression, TracerConfig};
use spanguard::export::otlp_decode::decode_body;
use spanguard::export::transport::BodyFormat;

mod support;

#[test]
fn a_spool_file_a_gateway_holds_until_the_timeout_is_split_under_traffic() {
    // Holds any request with a span named "hang" far past the client's
    // timeout (the answer then goes nowhere); takes the others.
    let taken: Arc<Mutex<Vec<String>>> = Arc::default();
    let hung = Arc::new(AtomicU64::new(0));
    let (keep, held) = (Arc::clone(&taken), Arc::clone(&hung));
    let (url, closed) = support::backend(move |body| {
        let names: Vec<String> = decode_body(body, BodyFormat::Protobuf, false)
            .expect("decodes")
            .into_iter()
            .map(|s| s.name)
            .collect();
        if names.iter().any(|n| n == "hang") {
            held.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_secs(3));
            return 504;
        }
        keep.lock().unwrap().extend(names);
        200
    });
    let (tracer, dir) = support::tracer_to(
        "hung-request",
        &url,
        TracerConfig {
            compression: Compression::None,
            // Lowered from 10 s and 30 s: the same steps, in less time.
            request_timeout: Duration::from_millis(250),
            export_timeout: Duration::from_millis(600),
            schedule_delay: Duration::from_millis(20),
            max_export_batch_size: 64,
            max_queue_size: 1024,
            ..TracerConfig::default()
        },
    );
    // The batch that hangs: sent, it times out, and is spooled.
    support::end_spans(&tracer, &["llm.chat", "hang", "llm.chat"]);
    support::flush_done(&tracer, Duration::from_secs(60));
    let spooled = tracer.stats().spooled_spans;
    assert_eq!(spooled, 3, "{:?}", tracer.stats());
    // Steady traffic until the file is split (or a minute, for a machine
    // that is very slow: a failure then says what happened).
    let started = Instant::now();
    let mut ended = 0u64;
    while tracer.stats().dropped_replay_failed == 0 && started.elapsed() < Duration::from_secs(60) {
        support::end_spans(&tracer, &["llm.chat"; 5]);
        ended += 5;
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();
    let held = hung.load(Ordering::Relaxed);
    let at_split = tracer.stats();
    // What was spooled meanwhile goes at the next replays (a flush does
    // not wait for the spool): a few wake-ups.
    support::flush_done(&tracer, Duration::from_secs(10));
    let waiting = Instant::now();
    while (taken.lock().unwrap().len() as u64) < 2 + ended
        && waiting.elapsed() < Duration::from_secs(30)
    {
        support::end_spans(&tracer, &["llm.chat"]);
        ended += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    support::flush_done(&tracer, Duration::from_secs(10));
    let stats = tracer.stats();
    eprintln!(
        "split after {took:?}: {held} requests held, {} spans ended meanwhile, \
         {} of them spooled, {} sent live; then {stats:?}",
        at_split.spans_ended - 3,
        at_split.spooled_spans - 3,
        at_split.spans_exported,
    );
    assert_eq!(stats.dropped_replay_failed, 1, "{stats:?}");
    // Every other span arrived, once: the two beside the hung one
    // (replayed) and all the traffic (live, or spooled and replayed).
    let names = taken.lock().unwrap().clone();
    assert_eq!(names.len() as u64, 2 + ended, "{stats:?}");
    assert!(names.iter().all(|n| n == "llm.chat"));
    assert_eq!(stats.dropped_buffer_full, 0, "{stats:?}");
    let left = support::spool_files(&dir.join("spool"));
    assert!(left.is_empty(), "{left:?} {stats:?}");
    closed.store(true, Ordering::Release);
    tracer.shutdown(Duration::from_secs(5)).ok();
    std::fs::remove_dir_all(&dir).ok();
}
