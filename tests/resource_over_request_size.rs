//! A resource that leaves no room for a span under the request size limit
//! (max_request_bytes, SPANGUARD_MAX_REQUEST_BYTES): every span is lost,
//! and the reason must say that the resource is what does not fit and
//! which limit to raise, not blame spans that are small.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use spanguard::config::TracerConfig;
use spanguard::export::transport::{Accepted, BodyFormat, SendError, Transport};
use spanguard::pipeline::ExportEvent;
use spanguard::tracer::{Parent, Tracer};

/// Takes every request, counting them.
struct Counting(Arc<Mutex<usize>>);

impl Transport for Counting {
    fn send(&mut self, _: &[u8], _: BodyFormat, _: bool) -> Result<Accepted, SendError> {
        *self.0.lock().unwrap() += 1;
        Ok(Accepted::default())
    }

    fn describe(&self) -> String {
        "counting".to_string()
    }
}

#[test]
fn a_resource_over_the_request_size_is_named_as_the_reason() {
    let dir = std::env::temp_dir().join(format!("sg-big-resource-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = TracerConfig {
        max_request_bytes: 4096,
        resource_attributes: vec![("build.notes".into(), "n".repeat(5000))],
        sink_dir: dir.join("spans"),
        spool_dir: dir.join("spool"),
        install_signal_handlers: false,
        ..TracerConfig::default()
    };
    let sent = Arc::new(Mutex::new(0));
    let tracer =
        Tracer::with_transport(config, Box::new(Counting(Arc::clone(&sent)))).expect("tracer");
    let events: Arc<Mutex<Vec<(ExportEvent, String)>>> = Arc::default();
    let seen = Arc::clone(&events);
    tracer.set_callback(Some(Box::new(move |event, message: &str| {
        seen.lock().unwrap().push((event, message.to_string()));
    })));
    let (s, _) = tracer.begin(b"op", Parent::None, 1).expect("begin");
    tracer.end(s, 0).expect("end");
    let _ = tracer.flush(Duration::from_secs(10));
    let stats = tracer.stats();
    assert_eq!((stats.spans_exported, stats.dropped_export_failed), (0, 1));
    assert_eq!(*sent.lock().unwrap(), 0);
    let events = events.lock().unwrap();
    let failed: Vec<&String> = events
        .iter()
        .filter(|(e, _)| *e == ExportEvent::BatchFailed)
        .map(|(_, m)| m)
        .collect();
    assert_eq!(failed.len(), 1, "{events:?}");
    assert!(failed[0].contains("resource"), "{}", failed[0]);
    assert!(
        failed[0].contains("SPANGUARD_MAX_REQUEST_BYTES"),
        "{}",
        failed[0]
    );
    assert!(!failed[0].contains("a span alone"), "{}", failed[0]);
    drop(events);
    tracer.shutdown(Duration::from_secs(10)).expect("shutdown");
    std::fs::remove_dir_all(&dir).ok();
}
