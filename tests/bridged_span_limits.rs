//! A span another SDK already limited (an OpenTelemetry bridge's, begun
//! with `limited_by_caller`) is not cut again at the tracer's limits: the
//! SDK's are the ones its user set. The tracer's own spans still are.
//! Judged by what the file sink wrote.

use std::time::Duration;

use spanguard::config::TracerConfig;
use spanguard::span::limits::SpanLimits;
use spanguard::tracer::{AttrInput, BeginOptions, ExplicitIds, Parent, Tracer};

const ATTRIBUTES: usize = 200;
const EVENTS: usize = 150;
const LINKS: usize = 140;

fn span_with_many(tracer: &Tracer, parent: Parent) {
    let (s, _) = tracer
        .begin_ex(&BeginOptions::new(b"many", 1, parent))
        .expect("begin");
    let keys: Vec<String> = (0..ATTRIBUTES).map(|i| format!("attr.{i}")).collect();
    let attrs: Vec<(&[u8], AttrInput)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_bytes(), AttrInput::Int(i as i64)))
        .collect();
    // Over the limit the call reports it (the rest counted): not a failure here.
    let _ = tracer.set_attributes(s, &attrs);
    for i in 0..EVENTS {
        let _ = tracer.add_event(s, format!("event.{i}").as_bytes(), 0, &[]);
    }
    for i in 0..LINKS {
        let mut span_id = [0u8; 8];
        span_id[..4].copy_from_slice(&(i as u32 + 1).to_be_bytes());
        let to = spanguard::span::record::LinkContext {
            trace_id: [7; 16],
            span_id,
            trace_flags: 1,
            remote: Some(true),
        };
        let _ = tracer.add_link(s, to, b"", &[(b"link.to", AttrInput::Int(i as i64))]);
    }
    tracer.end(s, 0).expect("end");
    // A line of the sink each.
    tracer.flush(Duration::from_secs(30)).expect("flush");
}

#[test]
fn a_span_the_sdk_limited_is_kept_whole_and_the_tracers_own_are_cut() {
    let dir = std::env::temp_dir().join(format!("sg-bridged-limits-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let tracer = Tracer::new(TracerConfig {
        sink_dir: dir.join("spans"),
        spool_dir: dir.join("spool"),
        install_signal_handlers: false,
        limits: SpanLimits::default(),
        ..TracerConfig::default()
    })
    .expect("tracer");
    span_with_many(
        &tracer,
        Parent::Explicit(ExplicitIds {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent_span_id: [0; 8],
            trace_flags: 1,
            parent_is_remote: false,
            limited_by_caller: true,
        }),
    );
    span_with_many(&tracer, Parent::None);
    let text = std::fs::read_to_string(tracer.sink_path().expect("file sink")).expect("sink");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    let count = |line: &str, what: &str| line.matches(what).count();
    let bridged = lines
        .iter()
        .find(|l| l.contains("\"spanId\":\"0202020202020202\""))
        .expect("the bridged span");
    let own = lines
        .iter()
        .find(|l| !l.contains("\"spanId\":\"0202020202020202\""))
        .expect("the tracer's own span");
    assert_eq!(count(bridged, "\"key\":\"attr."), ATTRIBUTES);
    assert_eq!(count(bridged, "\"name\":\"event."), EVENTS);
    assert_eq!(count(bridged, "\"key\":\"link.to\""), LINKS);
    assert_eq!(count(bridged, "\"dropped"), 0);
    assert_eq!(count(own, "\"key\":\"attr."), 128);
    assert_eq!(count(own, "\"name\":\"event."), 128);
    assert_eq!(count(own, "\"key\":\"link.to\""), 128);
    assert!(own.contains("\"droppedAttributesCount\":72"));
    assert!(own.contains("\"droppedEventsCount\":22"));
    assert!(own.contains("\"droppedLinksCount\":12"));
    tracer.shutdown(Duration::from_secs(30)).expect("shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}
