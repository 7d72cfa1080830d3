//! An event's and a link's attributes another SDK dropped (an OpenTelemetry
//! bridge passes its counts with `spanguard_span_add_event_with_dropped` and
//! `spanguard_span_add_link_ids_with_dropped`, through these tracer calls)
//! arrive in the OTLP export's dropped counts of that event and link,
//! summed with what spanguard's own limits dropped, in protobuf and JSON.
//! Judged by what a loopback backend took.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use spanguard::config::{Compression, Protocol, TracerConfig};
use spanguard::export::otlp_decode::{DecodedSpan, decode_body};
use spanguard::export::transport::BodyFormat;
use spanguard::span::limits::SpanLimits;
use spanguard::span::record::LinkContext;
use spanguard::tracer::{AttrInput, Parent, Tracer};

mod support;

/// Attributes as the tracer's calls take them.
type Attrs<'a> = [(&'a [u8], AttrInput<'a>)];

/// Events and links keep `KEPT` attributes here.
const KEPT: u32 = 2;

/// One span with four events and four links: with and without attributes
/// over spanguard's limit, with and without the SDK's own drops (one large
/// enough to saturate).
fn send_span(tracer: &Tracer) {
    let (s, _) = tracer.begin(b"bridged", Parent::None, 1).expect("begin");
    let four: Vec<(&[u8], AttrInput)> = vec![
        (b"a", AttrInput::Int(1)),
        (b"b", AttrInput::Int(2)),
        (b"c", AttrInput::Int(3)),
        (b"d", AttrInput::Int(4)),
    ];
    let one = &four[..1];
    // (attributes given, dropped before spanguard)
    let cases: [(&Attrs, u32); 4] = [(one, 0), (one, 5), (&four, 7), (&four, u32::MAX)];
    for (i, (attrs, before)) in cases.iter().enumerate() {
        let name = format!("event.{i}");
        // Over the limit the call says truncated: not a failure here.
        let _ = tracer.add_event_with_dropped(s, name.as_bytes(), 0, attrs, *before);
        let to = LinkContext {
            trace_id: [7; 16],
            span_id: [i as u8 + 1; 8],
            trace_flags: 1,
            remote: Some(true),
        };
        let _ = tracer.add_link_with_dropped(s, to, b"", attrs, *before);
    }
    tracer.end(s, 0).expect("end");
    support::flush_done(tracer, Duration::from_secs(30));
}

fn check(span: &DecodedSpan, format: &str) {
    // Given one: none dropped by spanguard; given four: two more.
    let want = [0, 5, 7 + 2, u16::MAX as u32];
    let events: Vec<u32> = span.events.iter().map(|e| e.dropped_attributes).collect();
    let links: Vec<u32> = span.links.iter().map(|l| l.dropped_attributes).collect();
    assert_eq!(events, want, "{format}: events' dropped counts");
    assert_eq!(links, want, "{format}: links' dropped counts");
    assert_eq!(span.dropped_attributes, 0, "{format}: not the span's own");
}

#[test]
fn the_sdks_event_and_link_drops_arrive_summed_with_spanguards() {
    for (protocol, format) in [
        (Protocol::HttpProtobuf, BodyFormat::Protobuf),
        (Protocol::HttpJson, BodyFormat::Json),
    ] {
        let taken: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let keep = Arc::clone(&taken);
        let (url, closed) = support::backend(move |body| {
            keep.lock().unwrap().push(body.to_vec());
            200
        });
        let (tracer, dir) = support::tracer_to(
            &format!("bridged-item-drops-{protocol:?}"),
            &url,
            TracerConfig {
                protocol,
                compression: Compression::None,
                schedule_delay: Duration::from_millis(20),
                limits: SpanLimits {
                    event_attribute_count: KEPT,
                    link_attribute_count: KEPT,
                    ..SpanLimits::default()
                },
                ..TracerConfig::default()
            },
        );
        send_span(&tracer);
        let spans: Vec<DecodedSpan> = taken
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| decode_body(b, format, false).expect("decodes"))
            .collect();
        let [span] = &spans[..] else {
            panic!("{protocol:?}: one span, got {}", spans.len())
        };
        check(span, &format!("{protocol:?}"));
        tracer.shutdown(Duration::from_secs(30)).expect("shutdown");
        closed.store(true, std::sync::atomic::Ordering::Release);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
