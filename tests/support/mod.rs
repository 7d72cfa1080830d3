//! What several Rust integration tests share.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use spanguard::config::TracerConfig;
use spanguard::tracer::{Parent, Tracer};

/// A tracer that discards what it exports, with its files in a directory
/// of its own (returned, for the test to remove) and no signal handlers,
/// whose exporter wakes by itself only every `schedule_delay`.
#[allow(dead_code)] // each test binary uses some of these
pub fn discarding_tracer(name: &str, schedule_delay: Duration) -> (Tracer, PathBuf) {
    discarding_tracer_with(
        name,
        TracerConfig {
            schedule_delay,
            max_export_batch_size: 512,
            ..TracerConfig::default()
        },
    )
}

/// `config` with a discarding endpoint, its files in a directory of its
/// own (returned, for the test to remove) and no signal handlers.
#[allow(dead_code)]
pub fn discarding_tracer_with(name: &str, config: TracerConfig) -> (Tracer, PathBuf) {
    tracer_to(name, "discard:", config)
}

/// `config` sending to `endpoint`, its files in a directory of its own
/// (returned, for the test to remove) and no signal handlers.
#[allow(dead_code)]
pub fn tracer_to(name: &str, endpoint: &str, config: TracerConfig) -> (Tracer, PathBuf) {
    tracer_in(
        name,
        TracerConfig {
            endpoint: Some(endpoint.to_string()),
            ..config
        },
    )
}

/// `config` (its endpoint as it says: none writes to the file sink, whose
/// file `Tracer::sink_path` names), its files in a directory of its own
/// (returned, for the test to remove) and no signal handlers.
#[allow(dead_code)]
pub fn tracer_in(name: &str, config: TracerConfig) -> (Tracer, PathBuf) {
    let dir = std::env::temp_dir().join(format!("sg-{name}-{}", std::process::id()));
    let tracer = Tracer::new(TracerConfig {
        sink_dir: dir.join("spans"),
        spool_dir: dir.join("spool"),
        install_signal_handlers: false,
        ..config
    })
    .expect("tracer");
    (tracer, dir)
}

/// OTLP/JSON, not compressed, in batches of 3 sent every 20 ms, with room
/// for every retry of a batch (a 10 s request timeout, 60 s to export): a
/// test's server meets each batch, and each of its answers is reached.
#[allow(dead_code)]
pub fn json_in_threes() -> TracerConfig {
    TracerConfig {
        protocol: spanguard::config::Protocol::HttpJson,
        compression: spanguard::config::Compression::None,
        schedule_delay: Duration::from_millis(20),
        max_export_batch_size: 3,
        request_timeout: Duration::from_secs(10),
        export_timeout: Duration::from_secs(60),
        ..TracerConfig::default()
    }
}

/// An OTLP/HTTP backend on loopback that takes `delay` to answer each
/// request (200, empty body) and hands every request body to `on_body`
/// first. Returns its URL and a flag that, once set, makes it stop taking
/// connections.
#[allow(dead_code)]
pub fn slow_backend(
    delay: Duration,
    on_body: impl Fn(&[u8]) + Send + Sync + 'static,
) -> (String, Arc<AtomicBool>) {
    backend(move |body| {
        on_body(body);
        thread::sleep(delay);
        200
    })
}

/// An OTLP/HTTP backend on loopback that answers each request with the
/// status `answer` gives for its body (empty body). Returns its URL and a
/// flag that, once set, makes it stop taking connections.
#[allow(dead_code)]
pub fn backend(answer: impl Fn(&[u8]) -> u16 + Send + Sync + 'static) -> (String, Arc<AtomicBool>) {
    let (base, closed) = http_server(move |request| {
        let status = answer(&request.body);
        let reason = match status {
            200 => "OK",
            413 => "Content Too Large",
            _ => "Status",
        };
        format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    });
    (format!("{base}/v1/traces"), closed)
}

/// An HTTP/1.1 server on loopback, each connection served on a thread of
/// its own, that answers each request with the bytes `answer` gives for
/// it (a whole response: status line, headers, body). Returns its base
/// URL (`http://127.0.0.1:PORT`, no path) and a flag that, once set,
/// makes it stop taking connections.
#[allow(dead_code)]
pub fn http_server(
    answer: impl Fn(&Request) -> Vec<u8> + Send + Sync + 'static,
) -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let closed = Arc::new(AtomicBool::new(false));
    let stop = Arc::clone(&closed);
    let answer = Arc::new(answer);
    thread::spawn(move || {
        for conn in listener.incoming() {
            if stop.load(Ordering::Acquire) {
                return;
            }
            if let Ok(conn) = conn {
                let answer = Arc::clone(&answer);
                thread::spawn(move || serve(conn, &*answer));
            }
        }
    });
    (base, closed)
}

fn serve(conn: TcpStream, answer: &dyn Fn(&Request) -> Vec<u8>) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut writer = conn;
    while let Some(request) = read_request(&mut reader) {
        if writer.write_all(&answer(&request)).is_err() {
            return;
        }
    }
}

/// Makes the close of `conn` a reset (RST) rather than an orderly end:
/// SO_LINGER on, for no time.
#[allow(dead_code)]
pub fn set_linger_zero(conn: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid option on a socket we own.
    unsafe {
        use std::os::fd::AsRawFd;
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// An HTTP/1.1 request as a loopback server read it.
pub struct Request {
    /// The request line (`POST /v1/traces HTTP/1.1`), without its end.
    pub line: String,
    /// Each header's name and value (trimmed), in the order they came.
    pub headers: Vec<(String, String)>,
    /// The body, as long as its Content-Length said.
    pub body: Vec<u8>,
}

impl Request {
    /// The request target of its line (`/v1/traces`).
    #[allow(dead_code)]
    pub fn path(&self) -> &str {
        self.line.split(' ').nth(1).unwrap_or("")
    }

    /// The values of every header named `name` (in any case), in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The next HTTP/1.1 request on a connection: its line, its headers and
/// its body (by its last Content-Length); None once the connection ends
/// or fails.
pub fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut request = Request {
        line: line.trim_end().to_string(),
        headers: Vec::new(),
        body: Vec::new(),
    };
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            request.headers.push((k.to_string(), v.trim().to_string()));
        }
    }
    let length = request
        .header_values("content-length")
        .last()
        .map_or(0, |v| v.parse().unwrap_or(0));
    request.body = vec![0u8; length];
    reader.read_exact(&mut request.body).ok()?;
    Some(request)
}

/// A server on loopback that reads one request a connection and answers
/// it with the raw bytes `answer` gives for the request's number (0, 1,
/// ...) and body, whatever they are (no status line, headers that never
/// end, a body cut short), then closes the connection. Returns its URL.
#[allow(dead_code)]
pub fn raw_backend(answer: impl Fn(usize, &[u8]) -> Vec<u8> + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().expect("clone"));
            let mut writer = conn;
            if let Some(request) = read_request(&mut reader) {
                // The client may hang up mid-answer (10 MB of headers).
                let _ = writer.write_all(&answer(n, &request.body));
            }
            let _ = writer.shutdown(std::net::Shutdown::Both);
        }
    });
    url
}

/// A protobuf field of wire type 2 (length-delimited) with tag byte `tag`
/// holding `inner`: for tests that write OTLP values by hand.
#[allow(dead_code)] // each test binary uses some of these
pub fn len_field(tag: u8, inner: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let mut n = inner.len();
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(inner);
    out
}

/// An AnyValue (protobuf): `depth` maps (`{"k": ...}`) or arrays (`[...]`)
/// one in the other, the innermost holding the string "x".
#[allow(dead_code)] // each test binary uses some of these
pub fn nested_value(map: bool, depth: u32) -> Vec<u8> {
    let mut value = len_field(0x0a, b"x"); // string_value
    for _ in 0..depth {
        value = if map {
            // kvlist_value { values: [KeyValue { key: "k", value }] }
            let kv = [len_field(0x0a, b"k"), len_field(0x12, &value)].concat();
            len_field(0x32, &len_field(0x0a, &kv))
        } else {
            // array_value { values: [value] }
            len_field(0x2a, &len_field(0x0a, &value))
        };
    }
    value
}

/// Ends a root span of each of these names.
#[allow(dead_code)]
pub fn end_spans(tracer: &Tracer, names: &[&str]) {
    for name in names {
        let (s, _) = tracer
            .begin(name.as_bytes(), Parent::None, 3)
            .expect("begin");
        tracer.end(s, 0).expect("end");
    }
}

/// Flushes `tracer` (`within` at most) and checks the flush finished:
/// every span dealt with, delivered or spooled (`FlushOutcome::is_done`).
#[allow(dead_code)]
#[track_caller]
pub fn flush_done(tracer: &Tracer, within: Duration) {
    let outcome = tracer.flush(within).expect("flush");
    assert!(outcome.is_done(), "the flush did not finish: {outcome:?}");
}

/// `prefix-0` to `prefix-{n-1}`, sorted (as `sorted_once_each` gives
/// what a backend got): the names `end_numbered` gives spans.
#[allow(dead_code)]
pub fn numbered(prefix: &str, n: usize) -> Vec<String> {
    let mut names: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    names.sort();
    names
}

/// Ends root spans named `prefix-0` to `prefix-{n-1}`, in that order.
#[allow(dead_code)]
pub fn end_numbered(tracer: &Tracer, prefix: &str, n: usize) {
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    end_spans(tracer, &names);
}

/// The end of a process's run: flushes `tracer`, shuts it down (20 s at
/// most each) and returns its stats, whose first trips must add up
/// (`assert_first_trips_counted`; `context` names the case).
#[allow(dead_code)]
pub fn flush_and_shut_down(tracer: &Tracer, context: &str) -> spanguard::stats::StatsSnapshot {
    let _ = tracer.flush(Duration::from_secs(20));
    let _ = tracer.shutdown(Duration::from_secs(20));
    let stats = tracer.stats();
    assert_first_trips_counted(&stats, context);
    stats
}

/// The names of the spool files (`.sgspool`) in `dir`.
#[allow(dead_code)]
pub fn spool_files(dir: &Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(dir)
        .expect("spool dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".sgspool"))
        .map(|e| e.file_name())
        .collect()
}

/// The counters' identity for spans on their first trip: every span ended
/// is exported, spooled, lost to a failed export, rejected or left out
/// by the sampler, and nowhere else. `context` names the case.
#[allow(dead_code)]
pub fn assert_first_trips_counted(stats: &spanguard::stats::StatsSnapshot, context: &str) {
    assert_eq!(
        stats.spans_ended,
        stats.spans_exported
            + stats.spooled_spans
            + stats.dropped_export_failed
            + stats.dropped_rejected
            + stats.spans_unsampled,
        "{context}: every span ended is counted where its first trip took it: {stats:?}"
    );
}

/// `names`, sorted, checking that none came twice (a span a backend got
/// twice: a resend the test says must not happen).
#[allow(dead_code)]
#[track_caller]
pub fn sorted_once_each(names: &[String]) -> Vec<String> {
    let mut sorted = names.to_vec();
    sorted.sort();
    let mut unique = sorted.clone();
    unique.dedup();
    assert_eq!(sorted, unique, "a span came twice");
    sorted
}

/// One run of a process: a tracer to `endpoint` set up as `config`, its
/// files (the spool) in `name`'s directory, shared by every run of that
/// name, that ends spans named `prefix-0...`, flushes and shuts down.
/// Returns its stats, each span's first trip checked counted.
#[allow(dead_code)]
pub fn run_once(
    name: &str,
    endpoint: &str,
    config: TracerConfig,
    prefix: &str,
    spans: usize,
) -> spanguard::stats::StatsSnapshot {
    let (tracer, _) = tracer_to(name, endpoint, config);
    end_numbered(&tracer, prefix, spans);
    flush_and_shut_down(&tracer, prefix)
}

/// The one record a tracer left in `spool`'s outcomes/ directory (what
/// `spanguard why` reads): its text and what it says.
#[allow(dead_code)]
pub fn the_outcome_record(spool: &Path) -> (String, spanguard::export::outcome::Outcome) {
    let outcomes = spanguard::export::outcome::dir_in(spool);
    let records: Vec<_> = std::fs::read_dir(&outcomes)
        .expect("the outcomes directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "sgoutcome"))
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let text = std::fs::read_to_string(&records[0]).expect("the record");
    let record = spanguard::export::outcome::parse(&text).expect("a record");
    (text, record)
}
