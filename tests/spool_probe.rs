//! An agent that spooled one batch a gateway in front of the backend never
//! takes (it answers 503 to any request holding the span "poison", and
//! takes the others), and then has nothing more to send: no live batch
//! ever says the backend is up. After each failure of that file a replay
//! sends an empty request (the probe): the backend takes it, so the file
//! is the problem, and the fifth replay splits it: its other spans
//! delivered, the marked one counted in `dropped_replay_failed`. Each probe
//! is a request the server sees (one a replay), never counted as spans
//! delivered. Over loopback HTTP (curl), in protobuf and in JSON.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spanguard::config::{Compression, Protocol, TracerConfig};
use spanguard::export::otlp_decode::decode_body;
use spanguard::export::transport::BodyFormat;

mod support;

fn a_lone_poison_file_with_no_traffic_is_split(protocol: Protocol, format: BodyFormat) {
    let taken: Arc<Mutex<Vec<String>>> = Arc::default();
    let (requests, probes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (keep, seen, probed) = (
        Arc::clone(&taken),
        Arc::clone(&requests),
        Arc::clone(&probes),
    );
    let (url, closed) = support::backend(move |body| {
        seen.fetch_add(1, Ordering::Relaxed);
        let names: Vec<String> = decode_body(body, format, false)
            .expect("decodes")
            .into_iter()
            .map(|s| s.name)
            .collect();
        if names.is_empty() {
            probed.fetch_add(1, Ordering::Relaxed);
        }
        if names.iter().any(|n| n == "poison") {
            return 503;
        }
        keep.lock().unwrap().extend(names);
        200
    });
    let (tracer, dir) = support::tracer_to(
        &format!("probe-{format:?}"),
        &url,
        TracerConfig {
            protocol,
            compression: Compression::None,
            // Lowered from 30 s: the live batch's retries end sooner.
            export_timeout: Duration::from_millis(600),
            schedule_delay: Duration::from_millis(20),
            ..TracerConfig::default()
        },
    );
    // The one batch: refused for its retries, and spooled.
    support::end_spans(&tracer, &["llm.chat", "poison", "llm.chat"]);
    support::flush_done(&tracer, Duration::from_secs(60));
    assert_eq!(tracer.stats().spooled_spans, 3, "{:?}", tracer.stats());
    let at_spool = requests.load(Ordering::Relaxed);
    // Then nothing: the replays (one a probe interval, a second) go on
    // their own. Five set-backs take some 5 s; a minute for a slow machine.
    let started = Instant::now();
    while tracer.stats().dropped_replay_failed == 0 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = tracer.stats();
    eprintln!(
        "{format:?}: split after {:?}, {} requests after the spooling ({} probes); {stats:?}",
        started.elapsed(),
        requests.load(Ordering::Relaxed) - at_spool,
        probes.load(Ordering::Relaxed),
    );
    assert_eq!(stats.dropped_replay_failed, 1, "{stats:?}");
    // One probe a replay the file failed at whole (the fifth splits it:
    // its halves are no probe), none for the live batch.
    assert_eq!(probes.load(Ordering::Relaxed), 5, "{stats:?}");
    // The two others arrived, once, and were counted so; the probes not.
    assert_eq!(*taken.lock().unwrap(), ["llm.chat", "llm.chat"]);
    assert_eq!(stats.replayed_spans, 2, "{stats:?}");
    assert_eq!(stats.spans_exported, 0, "{stats:?}");
    let left = support::spool_files(&dir.join("spool"));
    assert!(left.is_empty(), "{left:?} {stats:?}");
    closed.store(true, Ordering::Release);
    tracer.shutdown(Duration::from_secs(5)).ok();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_lone_poison_file_with_no_traffic_is_split_protobuf() {
    a_lone_poison_file_with_no_traffic_is_split(Protocol::HttpProtobuf, BodyFormat::Protobuf);
}

#[test]
fn a_lone_poison_file_with_no_traffic_is_split_json() {
    a_lone_poison_file_with_no_traffic_is_split(Protocol::HttpJson, BodyFormat::Json);
}

/// The same file to a gateway answering it 503 with `Retry-After: 1`
/// (and 200 to everything else, the probe too): no probe went against a
/// Retry-After, so the file was never counted set back and sat until the
/// cap evicted it. The wait honoured, the next replay probes first; the
/// probe taken counts the set-back, and the fifth splits the file. Over
/// loopback HTTP (curl reads the Retry-After header).
#[test]
fn a_lone_poison_file_behind_retry_after_is_split() {
    let taken: Arc<Mutex<Vec<String>>> = Arc::default();
    let probes = Arc::new(AtomicU64::new(0));
    let (keep, probed) = (Arc::clone(&taken), Arc::clone(&probes));
    let url = support::raw_backend(move |_, body| {
        let names: Vec<String> = decode_body(body, BodyFormat::Protobuf, false)
            .expect("decodes")
            .into_iter()
            .map(|s| s.name)
            .collect();
        if names.is_empty() {
            probed.fetch_add(1, Ordering::Relaxed);
        }
        if names.iter().any(|n| n == "poison") {
            return b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
                     Content-Length: 0\r\nConnection: close\r\n\r\n"
                .to_vec();
        }
        keep.lock().unwrap().extend(names);
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n\
          Content-Length: 0\r\nConnection: close\r\n\r\n"
            .to_vec()
    });
    let (tracer, dir) = support::tracer_to(
        "probe-retry-after",
        &url,
        TracerConfig {
            protocol: Protocol::HttpProtobuf,
            compression: Compression::None,
            export_timeout: Duration::from_millis(600),
            schedule_delay: Duration::from_millis(20),
            ..TracerConfig::default()
        },
    );
    support::end_spans(&tracer, &["llm.chat", "poison", "llm.chat"]);
    support::flush_done(&tracer, Duration::from_secs(60));
    assert_eq!(tracer.stats().spooled_spans, 3, "{:?}", tracer.stats());
    // Five waits of a second and a probe each; a minute for a slow machine.
    let started = Instant::now();
    while tracer.stats().dropped_replay_failed == 0 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = tracer.stats();
    let left = support::spool_files(&dir.join("spool"));
    assert_eq!(stats.dropped_replay_failed, 1, "{left:?} {stats:?}");
    assert_eq!(probes.load(Ordering::Relaxed), 5, "{stats:?}");
    assert_eq!(*taken.lock().unwrap(), ["llm.chat", "llm.chat"]);
    assert_eq!(stats.replayed_spans, 2, "{stats:?}");
    assert!(left.is_empty(), "{left:?} {stats:?}");
    tracer.shutdown(Duration::from_secs(5)).ok();
    std::fs::remove_dir_all(&dir).ok();
}

/// A replay's probe that got no answer, then a stop: the exporter's
/// stop replays the spool at once, one probe given 1 s, rather than
/// sleeping to the probe moment. Here the file was answered (503) and the
/// probe after it hung, so only the probe says the backend went silent;
/// the shutdown's 3 s leave no room for that sleep and a request timeout
/// (10 s) after it, which the stop asks before it sleeps: had it not
/// known the probe unanswered, it left the file for the next process.
/// The backend back at the stop, the file is delivered by it.
#[test]
fn a_stop_after_a_probe_with_no_answer_replays_at_once() {
    let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probes = Arc::new(AtomicU64::new(0));
    let (is_up, probed) = (Arc::clone(&up), Arc::clone(&probes));
    let (url, closed) = support::backend(move |body| {
        if is_up.load(Ordering::Acquire) {
            return 200;
        }
        if decode_body(body, BodyFormat::Protobuf, false)
            .expect("decodes")
            .is_empty()
        {
            probed.fetch_add(1, Ordering::Release);
            // Taken, never answered (the client gives up first).
            std::thread::sleep(Duration::from_secs(20));
            return 200;
        }
        503
    });
    let (tracer, dir) = support::tracer_to(
        "probe-silent-stop",
        &url,
        TracerConfig {
            protocol: Protocol::HttpProtobuf,
            compression: Compression::None,
            export_timeout: Duration::from_millis(300),
            schedule_delay: Duration::from_millis(20),
            ..TracerConfig::default()
        },
    );
    support::end_spans(&tracer, &["llm.chat"; 2]);
    support::flush_done(&tracer, Duration::from_secs(60));
    assert_eq!(tracer.stats().spooled_spans, 2, "{:?}", tracer.stats());
    // The replay a probe interval later: the file (503), then the probe.
    let started = Instant::now();
    while probes.load(Ordering::Acquire) == 0 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(probes.load(Ordering::Acquire), 1, "{:?}", tracer.stats());
    up.store(true, Ordering::Release);
    tracer.shutdown(Duration::from_secs(3)).ok();
    let stats = tracer.stats();
    assert_eq!(stats.replayed_spans, 2, "{stats:?}");
    assert!(
        support::spool_files(&dir.join("spool")).is_empty(),
        "{stats:?}"
    );
    closed.store(true, Ordering::Release);
    std::fs::remove_dir_all(&dir).ok();
}
