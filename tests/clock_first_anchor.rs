//! A tracer whose exporter has nothing to do still gets spans off the
//! system clock: the exporter wakes when the clock's first (provisional)
//! anchor is due and again when its refinement is, only to sample it
//! (`span::clock::anchor_due_in`). Its own test binary, so no other
//! tracer's exporter anchors the clock first.

use std::time::{Duration, Instant};

use spanguard::span::clock::anchor_due_in;
use spanguard::tracer::Parent;

mod support;

#[test]
fn an_idle_exporter_still_anchors_the_clock() {
    if anchor_due_in().is_none() {
        // No anchor is ever due: the TSC is not the kernel's clocksource
        // here (or not x86-64), and spans read clock_gettime by design.
        eprintln!("the TSC is not used on this machine: nothing to check");
        return;
    }
    // Nothing wakes the exporter for a minute: no batch fills, nobody
    // flushes.
    let (tracer, dir) = support::discarding_tracer("anchor", Duration::from_secs(60));
    let (s, _) = tracer.begin(b"one", Parent::None, 1).expect("begin");
    tracer.end(s, 0).expect("end");
    // A provisional anchor after 10 ms, refined 200 ms after the first
    // sample; allow for a slow machine, far less than the schedule delay.
    let deadline = Instant::now() + Duration::from_secs(20);
    while anchor_due_in().is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(anchor_due_in(), None, "no anchor while the exporter slept");
    assert_eq!(
        tracer.stats().spans_exported,
        0,
        "the wake-up for the clock exported the span early"
    );
    let _ = tracer.shutdown(Duration::from_secs(10));
    std::fs::remove_dir_all(&dir).ok();
}
