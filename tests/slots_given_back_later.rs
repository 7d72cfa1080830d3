//! The exporter holds the slots it gives back a while before they go on
//! the free stack (`buffer::aging`), so that a recording thread does not
//! take the slots the exporter touched last; and a thread that needs them
//! still gets them.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use spanguard::config::TracerConfig;
use spanguard::tracer::{Parent, Tracer};

const KIND_INTERNAL: u8 = 1;

/// A slab of 16,384 + 1,024 slots: large enough to hold 1,088 (a
/// sixteenth); batches of 512. A begin that finds no slot free waits up to
/// 30 s for the exporter to give the held ones back: with the default
/// 200 ms, a loaded machine that gave the exporter no core meanwhile
/// failed the begin, though the slots came back.
fn large_tracer(name: &str) -> (Tracer, std::path::PathBuf) {
    support::discarding_tracer_with(
        name,
        TracerConfig {
            max_queue_size: 16384,
            max_open_spans: 1024,
            max_export_batch_size: 512,
            full_wait: Duration::from_secs(30),
            ..TracerConfig::default()
        },
    )
}

/// Begins and ends `n` spans; their slots.
fn spans(t: &Tracer, n: usize) -> HashSet<u32> {
    (0..n)
        .map(|_| {
            let (s, _) = t.begin(b"s", Parent::None, KIND_INTERNAL).expect("begin");
            t.end(s, 0).expect("end");
            s.slot
        })
        .collect()
}

/// Waits (no flush: a flush gives every held slot back) until the
/// exporter has sent `n` spans.
fn wait_exported(t: &Tracer, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while t.stats().spans_exported < n {
        assert!(
            Instant::now() < deadline,
            "the exporter sent {:?}",
            t.stats()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_thread_does_not_take_the_slots_just_given_back() {
    let (t, dir) = large_tracer("aging-reuse");
    let first = spans(&t, 512);
    wait_exported(&t, 512);
    // The batch's slots are held: the next spans take others. (Given back
    // at once, they were on top of the stack, and every refill after the
    // thread's cache ran out took them: an overlap of 480 or more.)
    let second = spans(&t, 512);
    let reused = first.intersection(&second).count();
    assert_eq!(
        reused, 0,
        "{reused} of the slots just given back taken again"
    );
    // A flush gives them back: after it, the thread takes slots it used.
    t.flush(Duration::from_secs(10)).expect("flush");
    let third = spans(&t, 512);
    assert!(
        third
            .iter()
            .any(|s| first.contains(s) || second.contains(s)),
        "after a flush the held slots are free again"
    );
    t.shutdown(Duration::from_secs(10)).expect("shutdown");
    let stats = t.stats();
    assert_eq!(stats.spans_exported, 1536);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_thread_out_of_slots_gets_the_held_ones() {
    let (t, dir) = large_tracer("aging-room");
    spans(&t, 1024);
    wait_exported(&t, 1024);
    // Every slot of the slab open at once: the last 1,024 are the held
    // ones, which the exporter gives back when the waiting thread wakes it.
    let capacity = 16384 + 1024;
    let open: Vec<_> = (0..capacity)
        .map(|i| {
            t.begin(b"open", Parent::None, KIND_INTERNAL)
                .unwrap_or_else(|e| panic!("span {i} of {capacity}: {e:?}"))
                .0
        })
        .collect();
    assert_eq!(t.stats().dropped_buffer_full, 0);
    for s in open {
        t.end(s, 0).expect("end");
    }
    t.shutdown(Duration::from_secs(30)).expect("shutdown");
    let stats = t.stats();
    assert_eq!(stats.spans_exported, 1024 + capacity as u64);
    assert_eq!(stats.dropped_buffer_full, 0);
    let _ = std::fs::remove_dir_all(dir);
}
