//! A begin that waits for a free slot when a shutdown begins: ShutDown,
//! as a begin a moment later is told, not BufferFull (a span counted as
//! dropped for want of room, which the shutdown refused). `make stress`'s
//! begin_during_shutdown met BufferFull once: its threads filled every slot
//! with ended spans before the exporter (slow to start on a loaded
//! machine) took any, a begin waited, the shutdown began, and the
//! exporter gave its first slots back after the begin's 200 ms had run
//! out. Here the exporter is held in its first request until the begin
//! has answered, so no slot can come back: the wait ends only by the
//! shutdown (or, before the fix, by its deadline, as BufferFull).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use spanguard::config::{FullPolicy, TracerConfig};
use spanguard::tracer::{BeginOptions, Parent, SpanError};

const KIND_INTERNAL: u8 = 1;

#[test]
fn a_begin_waiting_for_a_slot_when_a_shutdown_begins_is_told_shut_down() {
    // Holds each request until `answer` is set: the exporter's first
    // request holds the exporter, which then takes no span and gives back
    // no slot.
    let answer = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU32::new(0));
    let (endpoint, closed) = {
        let (answer, requests) = (Arc::clone(&answer), Arc::clone(&requests));
        support::backend(move |_| {
            requests.fetch_add(1, Ordering::SeqCst);
            while !answer.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            200
        })
    };
    let (t, dir) = support::tracer_to(
        "begin-full-shutdown",
        &endpoint,
        TracerConfig {
            max_queue_size: 64,
            max_open_spans: 64,
            request_timeout: Duration::from_secs(60),
            full_policy: FullPolicy::Wait,
            // Long: the wait must not run out before the shutdown begins
            // (with the fix it ends then; before it, it ran out here).
            full_wait: Duration::from_secs(10),
            ..TracerConfig::default()
        },
    );
    // One span sent: the exporter is then held in its request.
    let (s, _) = t
        .begin(b"first", Parent::None, KIND_INTERNAL)
        .expect("begin");
    t.end(s, 0).expect("end");
    let _ = t.flush(Duration::ZERO);
    while requests.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Every slot taken by an ended span the held exporter does not take,
    // by begins that may not wait (a full slab answers WouldWait and marks
    // no wait in vain, so the begin below still waits).
    let mut filler = BeginOptions::new(b"filler", KIND_INTERNAL, Parent::None);
    filler.may_wait = false;
    let mut ended = 0u32;
    loop {
        match t.begin_ex(&filler) {
            Ok((s, _)) => {
                t.end(s, 0).expect("end");
                ended += 1;
                assert!(ended < 100_000, "the slab never filled");
            }
            Err(SpanError::WouldWait) => break,
            Err(e) => panic!("filling: {e:?}"),
        }
    }
    let t = Arc::new(t);
    let waiting = {
        let t = Arc::clone(&t);
        std::thread::spawn(move || t.begin(b"waiting", Parent::None, KIND_INTERNAL).map(|_| ()))
    };
    // Past its lifecycle check and waiting: now the shutdown begins.
    while t.begins_waiting_for_slot_for_test() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let stopper = {
        let t = Arc::clone(&t);
        std::thread::spawn(move || t.shutdown(Duration::from_secs(60)))
    };
    while !t.is_shut_down() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let r = waiting.join().expect("waiting thread");
    // Only now may slots come back: the exporter's request is answered,
    // and the shutdown exports every span.
    answer.store(true, Ordering::SeqCst);
    stopper.join().expect("shutdown thread").expect("shutdown");
    let s = t.stats();
    assert_eq!(r, Err(SpanError::ShutDown));
    assert_eq!(
        s.dropped_buffer_full, 0,
        "no span was dropped for want of room"
    );
    assert_eq!(
        s.spans_exported, s.spans_ended,
        "every span ended was exported"
    );
    closed.store(true, Ordering::Release);
    let _ = std::fs::remove_dir_all(dir);
}
