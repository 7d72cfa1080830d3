//! A batch the exporter takes whose spans are mostly plain is still read
//! for what only a few of them hold: the exporter notes, as it marks each
//! span EXPORTING, whether any of the batch is sampled out or lost
//! something, and looks span by span only then. Here the plain spans come
//! first and the one of each kind last, in one batch: a sampled-out span
//! is given back unsent and counted, and the attributes, events and links
//! a span dropped (counted in its rest, or in an event's entry with no
//! rest written: a batch of its own) reach the tracer's counters.

use std::time::Duration;

use spanguard::span::traceparent::RemoteParent;
use spanguard::tracer::{Parent, Tracer};

mod support;

/// A tracer whose exporter sleeps until the flush: every span ended before
/// it is in the one batch the flush takes (512 at most).
fn one_batch_tracer(name: &str) -> (Tracer, std::path::PathBuf) {
    support::discarding_tracer(name, Duration::from_secs(600))
}

fn plain_spans(tracer: &Tracer, n: usize) {
    for _ in 0..n {
        let (s, _) = tracer.begin(b"plain", Parent::None, 1).expect("begin");
        tracer.end(s, 0).expect("end");
    }
}

#[test]
fn a_sampled_out_span_after_plain_ones_is_given_back_unsent() {
    let (tracer, dir) = one_batch_tracer("batch-unsampled");
    plain_spans(&tracer, 100);
    // A child of a remote parent that was not sampled: the default sampler
    // follows its parent, so the span records nothing and is not sent.
    let parent = RemoteParent {
        trace_id: [7; 16],
        span_id: [9; 8],
        trace_flags: 0,
    };
    let (s, _) = tracer
        .begin(b"unsampled", Parent::Remote(parent), 1)
        .expect("begin");
    tracer.end(s, 0).expect("end");
    tracer.flush(Duration::from_secs(30)).expect("flush");
    let stats = tracer.stats();
    assert_eq!(
        (stats.spans_exported, stats.spans_unsampled),
        (100, 1),
        "the sampled-out span was sent, or not counted"
    );
    let _ = tracer.shutdown(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn losses_of_a_span_after_plain_ones_are_counted() {
    let (tracer, dir) = one_batch_tracer("batch-losses");
    plain_spans(&tracer, 100);
    // Drop counts in the span's rest.
    let (s, _) = tracer.begin(b"dropped", Parent::None, 1).expect("begin");
    tracer.add_dropped(s, 2, 3, 4).expect("add_dropped");
    tracer.end(s, 0).expect("end");
    tracer.flush(Duration::from_secs(30)).expect("flush");
    let stats = tracer.stats();
    assert_eq!(
        (
            stats.attributes_dropped,
            stats.events_dropped,
            stats.links_dropped
        ),
        (2, 3, 4),
        "the drop counts in a span's rest were not counted"
    );
    // A batch of its own: an event that dropped attributes, counted in the
    // event's entry, its span's rest unwritten.
    plain_spans(&tracer, 100);
    let (s, _) = tracer.begin(b"event", Parent::None, 1).expect("begin");
    tracer
        .add_event_with_dropped(s, b"e", 0, &[], 5)
        .expect("add_event");
    tracer.end(s, 0).expect("end");
    tracer.flush(Duration::from_secs(30)).expect("flush");
    let stats = tracer.stats();
    assert_eq!(stats.spans_exported, 202);
    assert_eq!(
        stats.attributes_dropped,
        2 + 5,
        "the attributes an event dropped were not counted"
    );
    let _ = tracer.shutdown(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(dir);
}
