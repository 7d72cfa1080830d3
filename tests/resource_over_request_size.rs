//! A resource over the request size limit (max_request_bytes,
//! SPANGUARD_MAX_REQUEST_BYTES): every span of it was lost, with "the
//! resource" as the reason. Its spans must arrive, under the service.name
//! and the resource attributes that fit, the rest counted in the request's
//! `Resource.dropped_attributes_count` and in `attributes_dropped`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use spanguard::config::TracerConfig;
use spanguard::export::otlp_decode::{DecodedSpan, decode_body};
use spanguard::export::transport::{Accepted, BodyFormat, SendError, Transport};
use spanguard::tracer::{Parent, Tracer};

/// Takes every request, keeping its spans.
struct Keeping(Arc<Mutex<Vec<DecodedSpan>>>);

impl Transport for Keeping {
    fn send(&mut self, body: &[u8], format: BodyFormat, gzip: bool) -> Result<Accepted, SendError> {
        let spans = decode_body(body, format, gzip).expect("a request spanguard made decodes");
        self.0.lock().unwrap().extend(spans);
        Ok(Accepted::default())
    }

    fn describe(&self) -> String {
        "keeping".to_string()
    }
}

#[test]
fn a_resource_over_the_request_size_is_sent_cut_not_lost() {
    let dir = std::env::temp_dir().join(format!("sg-big-resource-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // 300 attributes of 1 KiB under a 64 KiB limit.
    let config = TracerConfig {
        service_name: "agent".into(),
        max_request_bytes: 65536,
        resource_attributes: (0..300)
            .map(|i| (format!("big.{i}"), "v".repeat(1024)))
            .collect(),
        sink_dir: dir.join("spans"),
        spool_dir: dir.join("spool"),
        install_signal_handlers: false,
        ..TracerConfig::default()
    };
    let received = Arc::new(Mutex::new(Vec::new()));
    let tracer =
        Tracer::with_transport(config, Box::new(Keeping(Arc::clone(&received)))).expect("tracer");
    for _ in 0..10 {
        let (s, _) = tracer.begin(b"op", Parent::None, 1).expect("begin");
        tracer.end(s, 0).expect("end");
    }
    let _ = tracer.flush(Duration::from_secs(10));
    let stats = tracer.stats();
    assert_eq!((stats.spans_exported, stats.dropped_export_failed), (10, 0));
    let received = received.lock().unwrap();
    assert_eq!(received.len(), 10);
    let s = &received[0];
    assert_eq!(
        s.resource_attribute("service.name")
            .and_then(|v| v.as_str()),
        Some("agent")
    );
    assert!(s.resource_dropped_attributes > 0);
    // The small ones (service.instance.id, telemetry.sdk.*, process, host)
    // come first and are kept; of the 300 large ones, the first that fit.
    let kept: Vec<&str> = s
        .resource
        .iter()
        .filter(|(k, _)| k.starts_with("big."))
        .map(|(k, _)| k.as_str())
        .collect();
    let first: Vec<String> = (0..kept.len()).map(|i| format!("big.{i}")).collect();
    assert_eq!(kept, first);
    assert_eq!(kept.len() as u32 + s.resource_dropped_attributes, 300);
    assert!(
        received.iter().all(|r| r.resource == s.resource
            && r.resource_dropped_attributes == s.resource_dropped_attributes),
        "every request carries the same resource"
    );
    assert_eq!(
        stats.attributes_dropped, s.resource_dropped_attributes as u64,
        "counted once, not once a request"
    );
    drop(received);
    tracer.shutdown(Duration::from_secs(10)).expect("shutdown");
    std::fs::remove_dir_all(&dir).ok();
}
