//! Shutdown ends and exports every span still open, marked unended, however
//! far into the slab they lie: the scan for them stops at the slots ever
//! used (the populated frontier), and must not stop short of any.

use std::time::Duration;

use spanguard::config::TracerConfig;
use spanguard::tracer::{Parent, Tracer};

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
    assert_eq!(stats.spans_exported, 1_100, "{stats:?}");
}
