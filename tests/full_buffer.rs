//! A full buffer under each full policy, for a begin that may wait and
//! one that may not (`BeginOptions::may_wait`, what
//! `spanguard_span_try_begin_packed` asks): only a real drop is counted.

mod support;

use std::time::Duration;

use spanguard::config::{FullPolicy, TracerConfig};
use spanguard::tracer::{BeginOptions, Parent, SpanError, Tracer};

const KIND_INTERNAL: u8 = 1;

fn small_tracer(name: &str, full_policy: FullPolicy) -> (Tracer, std::path::PathBuf) {
    support::discarding_tracer_with(
        name,
        TracerConfig {
            max_queue_size: 16,
            max_open_spans: 16,
            full_policy,
            full_wait: Duration::from_millis(20),
            ..TracerConfig::default()
        },
    )
}

fn try_begin(t: &Tracer) -> Result<spanguard::tracer::SpanRef, SpanError> {
    let opts = BeginOptions {
        may_wait: false,
        ..BeginOptions::new(b"try", KIND_INTERNAL, Parent::None)
    };
    t.begin_ex(&opts).map(|(s, _)| s)
}

/// Begins spans that stay open until one is refused; returns them.
fn fill(t: &Tracer) -> (Vec<spanguard::tracer::SpanRef>, SpanError) {
    let mut open = Vec::new();
    loop {
        match try_begin(t) {
            Ok(s) => open.push(s),
            Err(e) => return (open, e),
        }
        assert!(open.len() <= 4096, "the buffer never filled");
    }
}

#[test]
fn a_begin_that_may_not_wait_is_refused_uncounted_where_the_policy_waits() {
    let (t, dir) = small_tracer("full-wait", FullPolicy::Wait);
    let (mut open, refused) = fill(&t);
    assert_eq!(refused, SpanError::WouldWait);
    assert!(!open.is_empty());
    assert_eq!(t.stats().dropped_buffer_full, 0, "a refusal is not a drop");
    // A begin that may wait waits its full_wait, then drops and counts.
    assert_eq!(
        t.begin(b"waits", Parent::None, KIND_INTERNAL).map(|_| ()),
        Err(SpanError::BufferFull)
    );
    assert_eq!(t.stats().dropped_buffer_full, 1);
    // Once the exporter frees a slot, the refused begin goes through.
    t.end(open.pop().expect("a span"), 0).expect("end");
    t.flush(Duration::from_secs(10)).expect("flush");
    let s = try_begin(&t).expect("a free slot");
    open.push(s);
    for s in open {
        t.end(s, 0).expect("end");
    }
    t.shutdown(Duration::from_secs(10)).expect("shutdown");
    let stats = t.stats();
    assert_eq!(stats.dropped_buffer_full, 1);
    assert_eq!(stats.spans_ended, stats.spans_exported);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn under_the_drop_policy_a_begin_that_may_not_wait_drops_as_any_other() {
    let (t, dir) = small_tracer("full-drop", FullPolicy::Drop);
    let (open, refused) = fill(&t);
    assert_eq!(refused, SpanError::BufferFull);
    assert_eq!(t.stats().dropped_buffer_full, 1);
    for s in open {
        t.end(s, 0).expect("end");
    }
    t.shutdown(Duration::from_secs(10)).expect("shutdown");
    let _ = std::fs::remove_dir_all(dir);
}
