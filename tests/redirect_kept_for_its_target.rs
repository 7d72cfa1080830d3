//! An endpoint that answers every request with a permanent redirect (a
//! load balancer's 308 from http to https in front of a collector, an
//! endpoint moved): the redirect is not followed, so the backend it leads
//! to never sees a request nor the API key sent with it; the spans are
//! kept in the spool for a sender set up with the URL it leads to, and
//! the sender redirected sends each of them once only, not again at every
//! retry and replay as for a backend that is down. A run set up with the
//! new URL delivers each of them once.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use spanguard::config::{Compression, TracerConfig};
use spanguard::export::otlp_decode::decode_body;
use spanguard::export::transport::BodyFormat;

mod support;

/// What a server was sent: its requests' spans' names, and the values of
/// every `x-api-key` header that came with them.
#[derive(Default)]
struct Seen {
    spans: Vec<String>,
    keys: Vec<String>,
}

/// A loopback server that answers each request with `answer` (a status
/// line and headers, no body) and notes what came in `seen`. Returns its
/// URL.
fn server(answer: String, seen: Arc<Mutex<Seen>>) -> String {
    let (base, _) = support::http_server(move |request| {
        let names = decode_body(&request.body, BodyFormat::Protobuf, false)
            .expect("an OTLP request")
            .into_iter()
            .map(|s| s.name);
        let mut s = seen.lock().unwrap();
        s.spans.extend(names);
        s.keys
            .extend(request.header_values("x-api-key").map(str::to_string));
        answer.clone().into_bytes()
    });
    format!("{base}/v1/traces")
}

/// A run of a process sending to `endpoint` with an API key, sharing the
/// spool of `name`'s directory: ends spans named `prefix-0...`, flushes,
/// waits for the spool's replays to come round, and shuts down.
fn run(name: &str, endpoint: &str, prefix: &str, spans: usize) -> spanguard::stats::StatsSnapshot {
    let (tracer, _) = support::tracer_to(
        name,
        endpoint,
        TracerConfig {
            headers: vec![("x-api-key".to_string(), "sk-secret".to_string())],
            compression: Compression::None,
            schedule_delay: Duration::from_millis(50),
            ..TracerConfig::default()
        },
    );
    support::end_numbered(&tracer, prefix, spans);
    let _ = tracer.flush(Duration::from_secs(20));
    // Time for retries and replays: a redirect taken for an outage sent
    // its batch again within it.
    thread::sleep(Duration::from_secs(3));
    support::flush_and_shut_down(&tracer, prefix)
}

#[test]
fn spans_redirected_for_good_are_sent_once_and_kept_for_the_url_it_leads_to() {
    let name = "redirect-308";
    let dir = std::env::temp_dir().join(format!("sg-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let backend_seen = Arc::new(Mutex::new(Seen::default()));
    let backend = server(
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"
            .to_string(),
        Arc::clone(&backend_seen),
    );
    let redirect_seen = Arc::new(Mutex::new(Seen::default()));
    let redirect = server(
        format!(
            "HTTP/1.1 308 Permanent Redirect\r\nLocation: {backend}\r\nContent-Length: 0\r\n\r\n"
        ),
        Arc::clone(&redirect_seen),
    );

    let first = run(name, &redirect, "first", 20);
    assert_eq!(first.spooled_spans, 20, "{first:?}");
    assert_eq!(first.dropped_export_failed, 0, "{first:?}");
    let expected = support::numbered("first", 20);
    assert_eq!(
        support::sorted_once_each(&redirect_seen.lock().unwrap().spans),
        expected,
        "the redirected sender sent a span again"
    );
    let backend_now = backend_seen.lock().unwrap();
    assert!(backend_now.spans.is_empty(), "the redirect was followed");
    assert!(
        backend_now.keys.is_empty(),
        "the API key went where the redirect led"
    );
    drop(backend_now);
    assert!(
        support::spool_files(&dir.join("spool"))
            .iter()
            .all(|f| f.to_string_lossy().contains("-refusedby")),
        "kept in files naming the sender redirected"
    );

    // Set up with the URL the redirect leads to: every span kept arrives,
    // once.
    let fixed = run(name, &backend, "fixed", 3);
    assert_eq!(fixed.spans_exported, 3, "{fixed:?}");
    assert_eq!(fixed.replayed_spans, 20, "{fixed:?}");
    let mut all = expected;
    all.extend(support::numbered("fixed", 3));
    all.sort();
    assert_eq!(
        support::sorted_once_each(&backend_seen.lock().unwrap().spans),
        all
    );
    assert!(support::spool_files(&dir.join("spool")).is_empty());
    std::fs::remove_dir_all(&dir).ok();
}
