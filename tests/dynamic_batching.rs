//! Dynamic batching, end to end: a thin stream of spans is exported without
//! waiting for the schedule delay or a full batch. (How the threshold
//! follows the load is unit-tested in `export::batch_sizer`.)

use std::time::{Duration, Instant};

use spanguard::tracer::Parent;

mod support;

#[test]
fn a_thin_stream_goes_out_before_the_schedule_delay() {
    // With a fixed threshold, 40 spans would wait the full minute: they
    // are far from a batch of 512 and nobody flushes.
    let (tracer, dir) = support::discarding_tracer("dynbatch", Duration::from_secs(60));
    // Let the exporter finish starting and go to sleep first, so that only
    // a nudge from an end can wake it before the delay.
    std::thread::sleep(Duration::from_millis(200));
    // 48 spans, not 40: an end looks at the queue only when its slot's
    // number plus generation is a multiple of 16 (the generation starts at
    // random), and the first threshold is 32 spans. Ends 32 to 48 cover
    // all sixteen residues, so one of them sees a batch ready whatever the
    // generation; with 40, seven generations in sixteen left no end to look
    // after the 32nd, and the spans waited the whole delay whenever the
    // exporter was already asleep before the 32nd span ended.
    for _ in 0..48 {
        let (s, _) = tracer.begin(b"thin", Parent::None, 1).expect("begin");
        tracer.end(s, 0).expect("end");
    }
    // Half the schedule delay: a generous bound for exporting 32 spans to a
    // null sink, and still proof that the delay did not send them.
    let deadline = Instant::now() + Duration::from_secs(30);
    while tracer.stats().spans_exported < 32 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = tracer.stats();
    assert!(
        stats.spans_exported >= 32,
        "a thin stream waited for the schedule delay: {stats:?}"
    );
    let _ = tracer.shutdown(Duration::from_secs(10));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn spans_short_of_a_batch_wait_the_schedule_delay_through_the_looks_for_leftovers() {
    // The exporter wakes every 3 s to look for what dead worker processes
    // left (dumps, flight files); those wakes once also sent whatever was
    // waiting, so a minute's schedule delay sent a few spans every 3 s.
    let (tracer, dir) = support::discarding_tracer("lookwake", Duration::from_secs(60));
    for _ in 0..5 {
        let (s, _) = tracer.begin(b"few", Parent::None, 1).expect("begin");
        tracer.end(s, 0).expect("end");
    }
    // Past the first look (3 s after the exporter started).
    std::thread::sleep(Duration::from_millis(3600));
    assert_eq!(tracer.stats().spans_exported, 0, "sent before the delay");
    assert!(tracer.flush(Duration::from_secs(10)).is_ok());
    assert_eq!(tracer.stats().spans_exported, 5);
    let _ = tracer.shutdown(Duration::from_secs(10));
    std::fs::remove_dir_all(&dir).ok();
}
