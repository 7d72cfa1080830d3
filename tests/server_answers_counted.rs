//! Whatever a server answers over a real socket, every span the tracer
//! ended is counted where it went (the identity `spanguard_stats`'s
//! header states), and shutdown comes back. The server answers, in turn:
//! no status line; a 200 whose chunked body never ends but closes; 10 MB
//! of headers; a 100 Continue, then a close; a 200 "gzip" of garbage;
//! redirects to file:///etc/passwd and to another port; a 204; a 200 with
//! a JSON partial success that rejects more spans than were sent.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use spanguard::export::otlp_decode::decode_body;
use spanguard::export::transport::BodyFormat;
use spanguard::tracer::Parent;

mod support;

/// The answers that take a request's spans (the status is the answer, what
/// comes of its body is read: a body cut short, garbage said to be gzip,
/// no body), and the one that rejects them all (a partial success).
const TAKE_CHUNKED: usize = 1;
const TAKE_GZIP_GARBAGE: usize = 4;
const TAKE_204: usize = 7;
const REJECT_ALL: usize = 8;

/// The nasty answers, `elsewhere` the URL a redirect points at.
fn answers(elsewhere: &str) -> Vec<Vec<u8>> {
    let mut headers = b"HTTP/1.1 200 OK\r\n".to_vec();
    while headers.len() < 10 << 20 {
        headers.extend_from_slice(b"X-Padding: ");
        headers.extend_from_slice(&[b'a'; 1000]);
        headers.extend_from_slice(b"\r\n");
    }
    headers.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    let partial =
        br#"{"partialSuccess":{"rejectedSpans":1000000,"errorMessage":"all of them, and more"}}"#;
    let mut partial_answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        partial.len()
    )
    .into_bytes();
    partial_answer.extend_from_slice(partial);
    vec![
        b"hello, this is no HTTP server\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n".to_vec(),
        headers,
        b"HTTP/1.1 100 Continue\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 16\r\n\r\nthis is no gzip!"
            .to_vec(),
        b"HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\nContent-Length: 0\r\n\r\n".to_vec(),
        format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: {elsewhere}\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes(),
        b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
        partial_answer,
    ]
}

#[test]
fn every_span_is_counted_whatever_the_server_answers() {
    // Where the 307 points: it must never be connected to.
    let elsewhere = TcpListener::bind("127.0.0.1:0").expect("bind");
    elsewhere.set_nonblocking(true).expect("nonblocking");
    let elsewhere_url = format!("http://{}/v1/traces", elsewhere.local_addr().unwrap());
    let answers = answers(&elsewhere_url);
    let count = answers.len();
    let served = Arc::new(AtomicUsize::new(0));
    // The spans of the requests given an answer that takes them (a 2xx
    // whose headers came whole), and of those given the partial success.
    let taken = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let (seen, took, refused) = (
        Arc::clone(&served),
        Arc::clone(&taken),
        Arc::clone(&rejected),
    );
    let url = support::raw_backend(move |n, body| {
        seen.fetch_add(1, Ordering::Relaxed);
        let spans = decode_body(body, BodyFormat::Json, false)
            .expect("a request of OTLP/JSON")
            .len() as u64;
        let which = n % answers.len();
        match which {
            TAKE_CHUNKED | TAKE_GZIP_GARBAGE | TAKE_204 => took.fetch_add(spans, Ordering::Relaxed),
            REJECT_ALL => refused.fetch_add(spans, Ordering::Relaxed),
            _ => 0,
        };
        answers[which].clone()
    });
    let (tracer, dir) = support::tracer_to("server-answers", &url, support::json_in_threes());
    // In a thread: a hang fails the test at the bound below, not the run.
    let (done, finished) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let mut ended = 0u64;
        for batch in 0..2 * count {
            for i in 0..3 {
                let name = format!("batch {batch} span {i}");
                let (s, _) = tracer
                    .begin(name.as_bytes(), Parent::None, 0)
                    .expect("begin");
                tracer.end(s, 0).expect("end");
                ended += 1;
            }
            let _ = tracer.flush(Duration::from_secs(60));
        }
        let _ = tracer.shutdown(Duration::from_secs(10));
        done.send((ended, tracer.stats())).unwrap();
    });
    let (ended, stats) = finished
        .recv_timeout(Duration::from_secs(600))
        .expect("flushes and shutdown came back");
    worker.join().unwrap();
    assert_eq!(stats.spans_ended, ended);
    // None over what was ended: a counter that went below 0 (a wrapped
    // subtraction) can still add up to the identity below.
    for (name, count) in [
        ("spans_exported", stats.spans_exported),
        ("spooled_spans", stats.spooled_spans),
        ("dropped_export_failed", stats.dropped_export_failed),
        ("dropped_rejected", stats.dropped_rejected),
    ] {
        assert!(count <= ended, "{name} is {count}, of {ended} spans ended");
    }
    support::assert_first_trips_counted(&stats, "server answers");
    assert_eq!(stats.queue_depth, 0);
    assert!(
        served.load(Ordering::Relaxed) >= count,
        "every answer was given at least once: {} requests",
        served.load(Ordering::Relaxed)
    );
    // Each span counted as its answer said: the partial success rejects
    // the spans of its request (no more, though it claims a million),
    // the other 2xx take theirs; the rest are tried again.
    assert!(rejected.load(Ordering::Relaxed) > 0);
    assert_eq!(stats.dropped_rejected, rejected.load(Ordering::Relaxed));
    assert_eq!(stats.spans_exported, taken.load(Ordering::Relaxed));
    assert!(
        elsewhere.accept().is_err(),
        "a redirect was followed to another port"
    );
    std::fs::remove_dir_all(&dir).ok();
}
