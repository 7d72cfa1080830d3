//! An endpoint that answers every request with a permanent redirect (a
//! load balancer's 308 from http to https in front of a collector, an
//! endpoint moved): the redirect is not followed, so the backend it leads
//! to never sees a request nor the API key sent with it; the spans are
//! kept in the spool for a sender set up with the URL it leads to, and
//! the sender redirected sends each of them once only, not again at every
//! retry and replay as for a backend that is down. A run set up with the
//! new URL delivers each of them once.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
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
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let answer = Arc::new(answer);
    thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (seen, answer) = (Arc::clone(&seen), Arc::clone(&answer));
            thread::spawn(move || serve(conn, &seen, &answer));
        }
    });
    url
}

fn serve(conn: TcpStream, seen: &Mutex<Seen>, answer: &str) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut writer = conn;
    loop {
        let mut length = 0usize;
        let mut keys = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
            if k.eq_ignore_ascii_case("x-api-key") {
                keys.push(v.trim().to_string());
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let names = decode_body(&body, BodyFormat::Protobuf, false)
            .expect("an OTLP request")
            .into_iter()
            .map(|s| s.name);
        let mut s = seen.lock().unwrap();
        s.spans.extend(names);
        s.keys.extend(keys);
        drop(s);
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
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
    let names: Vec<String> = (0..spans).map(|i| format!("{prefix}-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    support::end_spans(&tracer, &names);
    let _ = tracer.flush(Duration::from_secs(20));
    // Time for retries and replays: a redirect taken for an outage sent
    // its batch again within it.
    thread::sleep(Duration::from_secs(3));
    let _ = tracer.flush(Duration::from_secs(20));
    let _ = tracer.shutdown(Duration::from_secs(20));
    let stats = tracer.stats();
    support::assert_first_trips_counted(&stats, prefix);
    stats
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
    let expected: Vec<String> =
        support::sorted_once_each(&(0..20).map(|i| format!("first-{i}")).collect::<Vec<_>>());
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
    all.extend((0..3).map(|i| format!("fixed-{i}")));
    all.sort();
    assert_eq!(
        support::sorted_once_each(&backend_seen.lock().unwrap().spans),
        all
    );
    assert!(support::spool_files(&dir.join("spool")).is_empty());
    std::fs::remove_dir_all(&dir).ok();
}
