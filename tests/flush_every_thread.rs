//! A flush answers for the spans every thread ended before it. Each
//! recording thread ends spans into a queue of its own (`buffer::slab`) and
//! the exporter takes from the queues in turn, so no order holds across
//! them: a flush that counted the spans queued when it was asked and
//! answered once that many were sent would answer with some of them still
//! waiting in a longer queue, while it took later spans from a shorter one.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use spanguard::config::{Compression, FullPolicy, TracerConfig};
use spanguard::pipeline::FlushOutcome;
use spanguard::tracer::{Parent, Tracer};

mod support;

/// Ends one span named `name`, retrying while the buffer is full.
fn end_one(tracer: &Tracer, name: &str) {
    loop {
        if let Ok((s, _)) = tracer.begin(name.as_bytes(), Parent::None, 1) {
            tracer.end(s, 0).expect("end");
            return;
        }
        thread::yield_now();
    }
}

/// The marker span names a backend received.
type Received = Arc<Mutex<HashSet<String>>>;

/// A backend that takes 5 ms a request (so that the queues stay deep while
/// the producers run) and notes every `marker-` name in the bodies: span
/// names are plain bytes in an uncompressed protobuf body, and a marker's
/// ends with a dot (the byte after it is the next field's tag).
fn slow_backend() -> (String, Received) {
    let received: Received = Arc::default();
    let seen = Arc::clone(&received);
    let (url, _) = support::slow_backend(Duration::from_millis(5), move |body| {
        let mut seen = seen.lock().unwrap();
        for (at, _) in body
            .windows(7)
            .enumerate()
            .filter(|(_, w)| *w == b"marker-")
        {
            let name: Vec<u8> = body[at..]
                .iter()
                .take_while(|b| **b != b'.')
                .copied()
                .collect();
            seen.insert(String::from_utf8_lossy(&name).into_owned() + ".");
        }
    });
    (url, received)
}

#[test]
fn a_flush_waits_for_the_spans_of_every_thread_not_for_a_count() {
    const PRODUCERS: u32 = 3;
    const ROUNDS: u32 = 5;
    let dir = std::env::temp_dir().join(format!("sg-flush-every-{}", std::process::id()));
    let (url, received) = slow_backend();
    // Batches of 64 every 5 ms at most: far slower than the producers, so
    // the queues are full, and deeper on some threads than on others.
    let tracer = Arc::new(
        Tracer::new(TracerConfig {
            endpoint: Some(url),
            sink_dir: dir.join("spans"),
            spool_dir: dir.join("spool"),
            install_signal_handlers: false,
            compression: Compression::None,
            max_export_batch_size: 64,
            max_queue_size: 2048,
            full_policy: FullPolicy::Drop,
            export_timeout: Duration::from_secs(30),
            ..TracerConfig::default()
        })
        .expect("tracer"),
    );
    let running = Arc::new(AtomicBool::new(true));
    // The round each producer is asked to mark, and the one it marked.
    let asked = Arc::new(AtomicU32::new(0));
    let marked: Arc<Vec<AtomicU32>> = Arc::new((0..PRODUCERS).map(|_| AtomicU32::new(0)).collect());
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (tracer, running, asked, marked) = (
                Arc::clone(&tracer),
                Arc::clone(&running),
                Arc::clone(&asked),
                Arc::clone(&marked),
            );
            thread::spawn(move || {
                while running.load(Ordering::Relaxed) {
                    // Unequal rates, so that the queues differ in length;
                    // a span that finds the buffer full is dropped.
                    for _ in 0..=p {
                        if let Ok((s, _)) = tracer.begin(b"busy", Parent::None, 1) {
                            let _ = tracer.end(s, 0);
                        }
                    }
                    let round = asked.load(Ordering::Acquire);
                    if round != marked[p as usize].load(Ordering::Relaxed) {
                        end_one(&tracer, &format!("marker-{p}-{round}."));
                        marked[p as usize].store(round, Ordering::Release);
                    }
                }
            })
        })
        .collect();
    for round in 1..=ROUNDS {
        thread::sleep(Duration::from_millis(30));
        asked.store(round, Ordering::Release);
        for m in marked.iter() {
            while m.load(Ordering::Acquire) != round {
                thread::yield_now();
            }
        }
        // This thread's own span, in a queue of its own.
        end_one(&tracer, &format!("marker-main-{round}."));
        let queued = tracer.stats().queue_depth;
        let outcome = tracer.flush(Duration::from_secs(60)).expect("flush");
        assert_eq!(outcome, FlushOutcome::Delivered, "round {round}");
        let seen = received.lock().unwrap().clone();
        let missing: Vec<String> = (0..PRODUCERS)
            .map(|p| format!("marker-{p}-{round}."))
            .chain([format!("marker-main-{round}.")])
            .filter(|name| !seen.contains(name))
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: the flush returned before these spans, ended before it, were written \
             ({queued} spans were queued when it was asked): {missing:?}"
        );
    }
    running.store(false, Ordering::Relaxed);
    for p in producers {
        p.join().expect("producer");
    }
    tracer.shutdown(Duration::from_secs(30)).expect("shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}
