//! A first run against a backend that refuses the sender (401: the API
//! key missing) or the URL (404: the path missing) loses none of its
//! spans once the setting is fixed: they are kept in the spool for a
//! sender set up otherwise. The sender refused never sends them again, in
//! this process or in a next one set up alike (OTLP forbids retrying a
//! refused request); one with the key set or the URL fixed delivers each
//! of them once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use spanguard::config::{Compression, TracerConfig};
use spanguard::export::otlp_decode::decode_body;
use spanguard::export::transport::BodyFormat;

mod support;

/// What the backend was sent: each request's answer and its spans' names.
#[derive(Default)]
struct Seen {
    refused: Vec<String>,
    taken: Vec<String>,
}

/// An OTLP/HTTP backend on loopback that takes requests to /v1/traces
/// carrying `x-api-key: right`, answers 404 to any other path and 401 to
/// a request without the key. Returns its base URL (no path).
fn strict_backend(seen: Arc<Mutex<Seen>>) -> String {
    let (base, _) = support::http_server(move |request| {
        let names: Vec<String> = decode_body(&request.body, BodyFormat::Protobuf, false)
            .expect("an OTLP request")
            .into_iter()
            .map(|s| s.name)
            .collect();
        let keyed = request.header_values("x-api-key").any(|v| v == "right");
        let status = match (request.path(), keyed) {
            ("/v1/traces", true) => 200,
            ("/v1/traces", false) => 401,
            _ => 404,
        };
        let mut s = seen.lock().unwrap();
        match status {
            200 => s.taken.extend(names),
            _ => s.refused.extend(names),
        }
        drop(s);
        format!(
            "HTTP/1.1 {status} Status\r\nContent-Type: application/x-protobuf\r\n\
             Content-Length: 0\r\n\r\n"
        )
        .into_bytes()
    });
    base
}

/// One run of a process: a tracer to `endpoint` with `headers`, sharing
/// the spool of `name`'s directory, that ends spans named `prefix-0...`,
/// flushes and shuts down. Returns its stats.
fn run(
    name: &str,
    endpoint: &str,
    headers: &[(&str, &str)],
    prefix: &str,
    spans: usize,
) -> spanguard::stats::StatsSnapshot {
    let config = TracerConfig {
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        compression: Compression::None,
        schedule_delay: Duration::from_millis(50),
        ..TracerConfig::default()
    };
    support::run_once(name, endpoint, config, prefix, spans)
}

/// The spool files of `name`'s directory that name the sender refused.
fn refused_files(dir: &std::path::Path) -> usize {
    support::spool_files(&dir.join("spool"))
        .iter()
        .filter(|f| f.to_string_lossy().contains("-refusedby"))
        .count()
}

#[test]
fn spans_refused_for_a_missing_key_arrive_once_the_key_is_set() {
    let name = "refused-401";
    let dir = std::env::temp_dir().join(format!("sg-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let url = format!("{}/v1/traces", strict_backend(Arc::clone(&seen)));

    // The first run, without its key: every span refused (401), kept.
    let first = run(name, &url, &[], "first", 20);
    assert_eq!(first.spooled_spans, 20, "{first:?}");
    assert_eq!(first.dropped_export_failed, 0, "{first:?}");
    assert_eq!(
        support::sorted_once_each(&seen.lock().unwrap().refused),
        support::numbered("first", 20)
    );
    assert!(refused_files(&dir) > 0, "kept in files naming the sender");

    // A second run set up alike: it sends its own spans (refused, kept
    // too) and none of the first run's again.
    let again = run(name, &url, &[], "again", 5);
    assert_eq!(again.spooled_spans, 5, "{again:?}");
    assert_eq!(again.replayed_spans, 0, "{again:?}");
    let refused = seen.lock().unwrap().refused.clone();
    let mut both = support::numbered("first", 20);
    both.extend(support::numbered("again", 5));
    both.sort();
    assert_eq!(
        support::sorted_once_each(&refused),
        both,
        "the refused sender sent a span again"
    );
    assert!(seen.lock().unwrap().taken.is_empty());

    // The key set: the run delivers its own spans and every kept one,
    // once each.
    let fixed = run(name, &url, &[("x-api-key", "right")], "fixed", 3);
    assert_eq!(fixed.spans_exported, 3, "{fixed:?}");
    assert_eq!(fixed.replayed_spans, 25, "{fixed:?}");
    let mut all = both;
    all.extend(support::numbered("fixed", 3));
    all.sort();
    assert_eq!(support::sorted_once_each(&seen.lock().unwrap().taken), all);
    assert!(support::spool_files(&dir.join("spool")).is_empty());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn spans_sent_to_a_url_without_its_path_arrive_once_the_url_is_fixed() {
    let name = "refused-404";
    let dir = std::env::temp_dir().join(format!("sg-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let base = strict_backend(Arc::clone(&seen));
    let key = [("x-api-key", "right")];

    // The base URL alone (no /v1/traces): 404, kept.
    let first = run(name, &format!("{base}/"), &key, "first", 10);
    assert_eq!(first.spooled_spans, 10, "{first:?}");
    assert_eq!(first.dropped_export_failed, 0, "{first:?}");
    assert!(refused_files(&dir) > 0);

    // The same URL again: nothing of the first run sent again.
    let again = run(name, &format!("{base}/"), &key, "again", 0);
    assert_eq!(again.replayed_spans, 0, "{again:?}");
    assert_eq!(
        support::sorted_once_each(&seen.lock().unwrap().refused),
        support::numbered("first", 10)
    );

    // The URL fixed: every kept span arrives, once.
    let fixed = run(name, &format!("{base}/v1/traces"), &key, "fixed", 1);
    assert_eq!(fixed.replayed_spans, 10, "{fixed:?}");
    let mut all = support::numbered("first", 10);
    all.extend(support::numbered("fixed", 1));
    all.sort();
    assert_eq!(support::sorted_once_each(&seen.lock().unwrap().taken), all);
    assert!(support::spool_files(&dir.join("spool")).is_empty());
    std::fs::remove_dir_all(&dir).ok();
}
