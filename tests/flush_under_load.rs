//! A flush answers for the spans ended before it, not for an empty queue:
//! while other threads keep ending spans faster than the backend takes
//! them, the queue is never empty, and a flush that waited for that would
//! only ever time out (and the signal watchdog, which flushes before it
//! dumps, would run out of time with a batch still in flight).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use spanguard::config::{FullPolicy, TracerConfig};
use spanguard::pipeline::FlushOutcome;
use spanguard::tracer::{Parent, Tracer};

/// A backend that takes 20 ms per request: 16-span batches then leave at
/// most 800 spans a second, far below what one thread can end.
fn slow_backend() -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let closed = Arc::new(AtomicBool::new(false));
    let stop = Arc::clone(&closed);
    thread::spawn(move || {
        for conn in listener.incoming() {
            if stop.load(Ordering::Acquire) {
                return;
            }
            if let Ok(conn) = conn {
                thread::spawn(move || serve(conn));
            }
        }
    });
    (url, closed)
}

fn serve(conn: TcpStream) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut writer = conn;
    loop {
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
        let answer =
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn flush_returns_once_earlier_spans_are_sent_though_more_keep_coming() {
    let dir = std::env::temp_dir().join(format!("sg-flush-load-{}", std::process::id()));
    let (url, backend_closed) = slow_backend();
    let config = TracerConfig {
        endpoint: Some(url),
        sink_dir: dir.join("spans"),
        spool_dir: dir.join("spool"),
        install_signal_handlers: false,
        max_export_batch_size: 16,
        max_queue_size: 256,
        max_open_spans: 64,
        full_policy: FullPolicy::Drop,
        export_timeout: Duration::from_secs(30),
        request_timeout: Duration::from_secs(10),
        ..TracerConfig::default()
    };
    let tracer = Arc::new(Tracer::new(config).expect("tracer"));
    let running = Arc::new(AtomicBool::new(true));
    let producer = {
        let (tracer, running) = (Arc::clone(&tracer), Arc::clone(&running));
        thread::spawn(move || {
            while running.load(Ordering::Relaxed) {
                if let Ok((s, _)) = tracer.begin(b"busy", Parent::None, 1) {
                    let _ = tracer.end(s, 0);
                }
            }
        })
    };
    // Let the queue fill: from here on it stays non-empty.
    while tracer.stats().queue_depth < 128 {
        thread::yield_now();
    }
    let ended_before = tracer.stats().spans_ended;
    let flushed = tracer.flush(Duration::from_secs(60)).expect("flush");
    let stats = tracer.stats();
    running.store(false, Ordering::Relaxed);
    producer.join().unwrap();
    assert_eq!(
        flushed,
        FlushOutcome::Delivered,
        "flush timed out with the queue never empty"
    );
    assert!(
        stats.spans_exported >= ended_before,
        "flush returned before the spans ended earlier were exported: {stats:?}"
    );
    assert!(
        stats.queue_depth > 0,
        "the test did not keep the queue busy, so it proves nothing: {stats:?}"
    );
    let _ = tracer.shutdown(Duration::from_secs(30));
    backend_closed.store(true, Ordering::Release);
    std::fs::remove_dir_all(&dir).ok();
}
