//! Answers a hostile or odd server gives that the other suites do not: a
//! partial success in a body compressed with `deflate` (a zlib stream or a
//! bare one) or under a list of codings (`gzip, identity`), a deflate bomb,
//! and a JSON partial success written with the proto field names
//! (`partial_success`, `rejected_spans`). Each over a real loopback socket
//! through curl, then through a whole tracer: the spans a server rejects
//! are counted rejected, never delivered.

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use spanguard::config::TlsFiles;
use spanguard::export::http::HttpTransport;
use spanguard::export::otlp_decode::decode_body;
use spanguard::export::transport::{Accepted, BodyFormat, SendError, Transport};

mod support;

/// A server that reads each request and answers it with `answer`, then
/// closes the connection. Returns its URL.
fn answering(answer: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().expect("clone"));
            if support::read_request(&mut reader).is_some() {
                let _ = conn.write_all(&answer);
            }
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
    });
    url
}

/// One request in `format` (an empty one: the answer is what is tested).
fn send(url: &str, format: BodyFormat) -> Result<Accepted, SendError> {
    let mut t = HttpTransport::new(
        url,
        &[],
        &TlsFiles::default(),
        Duration::from_secs(30),
        Arc::new(AtomicU64::new(0)),
    );
    let body: &[u8] = match format {
        BodyFormat::Json => br#"{"resourceSpans":[]}"#,
        BodyFormat::Protobuf => b"",
    };
    t.send(body, format, false)
}

fn with_body(head: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("{head}Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// `data` compressed as HTTP's `deflate` says (a zlib stream), or as a
/// bare deflate stream when `bare` (what some servers send for it).
fn deflated(data: &[u8], bare: bool, level: flate2::Compression) -> Vec<u8> {
    if bare {
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), level);
        z.write_all(data).expect("in memory");
        z.finish().expect("in memory")
    } else {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), level);
        z.write_all(data).expect("in memory");
        z.finish().expect("in memory")
    }
}

fn gzipped(data: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(data).expect("in memory");
    z.finish().expect("in memory")
}

/// An ExportTraceServiceResponse in protobuf: `partial_success {
/// rejected_spans, error_message }`.
fn partial_success(rejected: u8, message: &str) -> Vec<u8> {
    assert!(rejected < 0x80 && message.len() < 0x80);
    let mut inner = vec![0x08, rejected, 0x12, message.len() as u8];
    inner.extend_from_slice(message.as_bytes());
    support::len_field(0x0a, &inner)
}

fn rejected(count: u64, message: &str) -> Result<Accepted, SendError> {
    Ok(Accepted {
        rejected_spans: count,
        message: message.to_string(),
    })
}

#[test]
fn a_partial_success_in_a_deflated_answer_is_read() {
    // A proxy may compress an answer though no Accept-Encoding asked for
    // it, with deflate as with gzip: its compressed bytes read as no OTLP
    // answer, and the spans it rejected were counted delivered.
    let partial = partial_success(3, "3 spans too old");
    for bare in [false, true] {
        for encoding in ["deflate", "DEFLATE", "deflate, identity"] {
            let answer = with_body(
                &format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n\
                     Content-Encoding: {encoding}\r\n"
                ),
                &deflated(&partial, bare, flate2::Compression::best()),
            );
            assert_eq!(
                send(&answering(answer), BodyFormat::Protobuf),
                rejected(3, "3 spans too old"),
                "{encoding}, bare: {bare}"
            );
        }
    }
    // gzip named among identities is gzip.
    for encoding in ["gzip, identity", "identity,gzip"] {
        let answer = with_body(
            &format!("HTTP/1.1 200 OK\r\nContent-Encoding: {encoding}\r\n"),
            &gzipped(&partial),
        );
        assert_eq!(
            send(&answering(answer), BodyFormat::Protobuf),
            rejected(3, "3 spans too old"),
            "{encoding}"
        );
    }
    // Said to be deflated and not: taken, nothing known rejected, and
    // said so (its bytes are no message), as a body cut short is.
    let answer = with_body(
        "HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\n",
        b"this is no deflate",
    );
    let got = send(&answering(answer), BodyFormat::Json);
    assert!(
        got.as_ref().is_ok_and(|a| a.rejected_spans == 0
            && a.message
                .contains("compressed as deflate, damaged, which is not read")),
        "{got:?}"
    );
}

#[test]
fn a_deflate_bomb_is_inflated_no_further_than_the_64_kib_a_body_is_kept() {
    // 2 rejected, then 200 MB of blanks, about 200 KB deflated: cut where
    // the transport stops keeping a body (64 KiB) and inflated no further
    // than a body is kept.
    let mut text = br#"{"partialSuccess":{"rejectedSpans":2,"errorMessage":"bomb"}}"#.to_vec();
    text.resize(200 << 20, b' ');
    for bare in [false, true] {
        let bomb = deflated(&text, bare, flate2::Compression::fast());
        assert!(bomb.len() > 64 << 10, "{}", bomb.len());
        let answer = with_body(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: deflate\r\n",
            &bomb,
        );
        assert_eq!(
            send(&answering(answer), BodyFormat::Json),
            rejected(2, "bomb"),
            "bare: {bare}"
        );
    }
}

#[test]
fn a_json_partial_success_under_the_proto_field_names_is_read() {
    // Protobuf's JSON readers take a field under its proto name as under
    // its lowerCamelCase one; a server that writes them as declared
    // (`preserving_proto_field_name`) had its rejections counted
    // delivered, in a JSON request as in a protobuf one.
    for body in [
        &br#"{"partial_success":{"rejected_spans":"4","error_message":"too old"}}"#[..],
        br#"{"partial_success":{"rejectedSpans":4,"error_message":"too old"}}"#,
        br#"{"partialSuccess":{"rejected_spans":4,"errorMessage":"too old"}}"#,
    ] {
        for format in [BodyFormat::Json, BodyFormat::Protobuf] {
            let answer = with_body(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n",
                body,
            );
            assert_eq!(
                send(&answering(answer), format),
                rejected(4, "too old"),
                "{}, {format:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}

/// A tracer sending OTLP/JSON to `url` in batches of 3; ends `spans`,
/// flushes, shuts down and returns its stats.
fn run(name: &str, url: &str, spans: usize) -> spanguard::stats::StatsSnapshot {
    let (tracer, dir) = support::tracer_to(name, url, support::json_in_threes());
    support::end_numbered(&tracer, name, spans);
    let stats = support::flush_and_shut_down(&tracer, name);
    let _ = std::fs::remove_dir_all(dir);
    assert_eq!(stats.spans_ended, spans as u64);
    stats
}

/// The spans in an OTLP/JSON request body.
fn spans_in(body: &[u8]) -> u64 {
    decode_body(body, BodyFormat::Json, false)
        .expect("a request of OTLP/JSON")
        .len() as u64
}

#[test]
fn spans_rejected_in_a_deflated_or_proto_named_answer_are_counted_rejected() {
    // Every answer rejects every span of its request (a count past any
    // batch): in turn deflated, and in JSON under the proto field names.
    let sent = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&sent);
    let url = support::raw_backend(move |n, body| {
        counted.fetch_add(spans_in(body), Ordering::Relaxed);
        let json = br#"{"partial_success":{"rejected_spans":"100","error_message":"all"}}"#;
        if n % 2 == 0 {
            with_body(
                "HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\n",
                &deflated(json, false, flate2::Compression::best()),
            )
        } else {
            with_body("HTTP/1.1 200 OK\r\n", json)
        }
    });
    let stats = run("walk-rejected", &url, 12);
    assert_eq!(sent.load(Ordering::Relaxed), 12);
    assert_eq!(stats.dropped_rejected, 12, "{stats:?}");
    assert_eq!(stats.spans_exported, 0, "{stats:?}");
}

// Second walk (hostile57): what hostile55 did not try.

/// A server that reads each request, keeps the values of its
/// Accept-Encoding headers, and answers it with `answer` (keeping the
/// connection open). Returns its URL and the values so far.
type Kept = Arc<std::sync::Mutex<Vec<String>>>;
fn keeping_accept_encoding(answer: Vec<u8>) -> (String, Kept) {
    let values = Kept::default();
    let kept = Arc::clone(&values);
    let (base, _) = support::http_server(move |request| {
        kept.lock()
            .expect("not poisoned")
            .extend(request.header_values("accept-encoding").map(str::to_string));
        answer.clone()
    });
    (format!("{base}/v1/traces"), values)
}

#[test]
fn spanguard_asks_for_answers_in_no_coding() {
    // No Accept-Encoding lets a server or proxy pick any coding (RFC 9110
    // 12.5.3), br and zstd too, which spanguard does not read: it asks
    // for `identity`.
    let (url, asked) = keeping_accept_encoding(with_body("HTTP/1.1 200 OK\r\n", b""));
    assert_eq!(send(&url, BodyFormat::Protobuf), Ok(Accepted::default()));
    assert_eq!(*asked.lock().expect("not poisoned"), ["identity"]);
}

#[test]
fn a_users_accept_encoding_is_sent_alone_in_place_of_spanguards() {
    // OTEL_EXPORTER_OTLP_HEADERS="Accept-Encoding=gzip" went beside
    // spanguard's own `identity`: two fields a server may merge ("identity,
    // gzip") or read either of. The user's is the request's: gzip and
    // deflate are read, any other coding is taken with a warning.
    let (url, asked) = keeping_accept_encoding(with_body("HTTP/1.1 200 OK\r\n", b""));
    for name in ["Accept-Encoding", "accept-encoding"] {
        let mut t = HttpTransport::new(
            &url,
            &[(name.to_string(), "gzip".to_string())],
            &TlsFiles::default(),
            Duration::from_secs(30),
            Arc::new(AtomicU64::new(0)),
        );
        assert_eq!(
            t.send(b"", BodyFormat::Protobuf, false),
            Ok(Accepted::default())
        );
    }
    assert_eq!(*asked.lock().expect("not poisoned"), ["gzip", "gzip"]);
}

#[test]
fn a_2xx_answer_in_a_coding_not_read_is_delivered_with_a_warning_that_says_so() {
    // A proxy that compresses whatever was asked: a partial success in it
    // cannot be read. The status is the server's verdict (taken), but
    // what its body says is not known: said, never counted as "nothing
    // rejected" in silence.
    for (encoding, named) in [
        ("br", "br"),
        ("zstd", "zstd"),
        ("ZSTD", "ZSTD"),
        ("compress", "compress"),
        ("gzip, br", "gzip, br"),
        ("x-snappy-framed", "x-snappy-framed"),
    ] {
        let answer = with_body(
            &format!("HTTP/1.1 200 OK\r\nContent-Encoding: {encoding}\r\n"),
            b"\x1b\x03\x00\x80\x01\x02compressed",
        );
        let got = send(&answering(answer), BodyFormat::Protobuf);
        let Ok(Accepted {
            rejected_spans: 0,
            message,
        }) = &got
        else {
            panic!("{encoding}: {got:?}");
        };
        assert!(
            message.contains(&format!("compressed as {named}"))
                && message.contains("not read")
                && message.contains("counted delivered"),
            "{encoding}: {message}"
        );
    }
    // identity, gzip and deflate are read as before: no such warning.
    for encoding in ["identity", "", "gzip", "deflate"] {
        let answer = with_body(
            &format!("HTTP/1.1 200 OK\r\nContent-Encoding: {encoding}\r\n"),
            b"",
        );
        assert_eq!(
            send(&answering(answer), BodyFormat::Protobuf),
            Ok(Accepted::default()),
            "{encoding:?}"
        );
    }
}

#[test]
fn a_trailer_field_is_not_taken_for_a_header() {
    // RFC 9110 6.5.1: a trailer is not merged into the headers unless its
    // field's definition allows it; Retry-After's and Content-Encoding's
    // do not. A 503 whose chunked body ended with `Retry-After: 86400`
    // was read as "wait a day".
    let chunked = |head: &str, body: &[u8], trailers: &str| {
        let mut out = format!("{head}Transfer-Encoding: chunked\r\n\r\n").into_bytes();
        if !body.is_empty() {
            out.extend(format!("{:x}\r\n", body.len()).as_bytes());
            out.extend_from_slice(body);
            out.extend(b"\r\n");
        }
        out.extend(format!("0\r\n{trailers}\r\n").as_bytes());
        out
    };
    // A header's Retry-After stands whatever the trailers say.
    for (head, wait) in [
        ("HTTP/1.1 503 Busy\r\nTrailer: Retry-After\r\n", None),
        ("HTTP/1.1 503 Busy\r\nRetry-After: 2\r\n", Some(2)),
    ] {
        let reason = match wait {
            None => "HTTP 503".to_string(),
            Some(s) => format!("HTTP 503 (the server asks to wait {s} s: Retry-After)"),
        };
        let answer = chunked(head, b"", "Retry-After: 86400\r\n");
        assert_eq!(
            send(&answering(answer), BodyFormat::Protobuf),
            Err(SendError::Transient {
                reason,
                retry_after: wait.map(Duration::from_secs)
            }),
            "{head}"
        );
    }
    // A plain partial success with a trailer naming a coding: read as
    // it came.
    let answer = chunked(
        "HTTP/1.1 200 OK\r\n",
        &partial_success(3, "three"),
        "Content-Encoding: br\r\n",
    );
    assert_eq!(
        send(&answering(answer), BodyFormat::Protobuf),
        rejected(3, "three")
    );
}

#[test]
fn a_protobuf_partial_success_sent_in_parts_is_read_merged() {
    // Protobuf merges a message field that comes more than once: a
    // partial_success with the count, then one with the message, is one
    // partial success rejecting 3 to every protobuf reader. Only the last
    // part was read: nothing rejected, the 3 counted delivered.
    let mut answer = support::len_field(0x0a, &[0x08, 0x03]);
    answer.extend(support::len_field(
        0x0a,
        &[0x12, 0x04, b'o', b'l', b'd', b'!'],
    ));
    assert_eq!(
        send(
            &answering(with_body("HTTP/1.1 200 OK\r\n", &answer)),
            BodyFormat::Protobuf
        ),
        rejected(3, "old!")
    );
}

#[test]
fn a_json_partial_success_is_read_where_it_is_and_a_repeated_key_never_counts_rejected_spans_delivered()
 {
    for (body, want) in [
        // A key twice: protobuf's JSON readers refuse the answer, a plain
        // JSON reader keeps the last: the larger count is taken, so that
        // no span the server may have rejected counts delivered.
        (
            &br#"{"partialSuccess":{"rejectedSpans":0},"partialSuccess":{"rejectedSpans":3}}"#[..],
            rejected(3, ""),
        ),
        (
            br#"{"partialSuccess":{"rejectedSpans":3,"rejected_spans":0}}"#,
            rejected(3, ""),
        ),
        // A count outside the partial success is none of its: a warning
        // alone, nothing rejected (5 delivered spans were counted lost).
        (
            br#"{"partialSuccess":{"errorMessage":"sampled"},"other":{"rejectedSpans":5}}"#,
            rejected(0, "sampled"),
        ),
        (
            br#"{"partialSuccess":{"errorMessage":"x","detail":{"rejectedSpans":5}}}"#,
            rejected(0, "x"),
        ),
        // The key's name as a string value, or inside a message, is no key.
        (
            br#"{"note":"partialSuccess","partialSuccess":{"errorMessage":"\"rejectedSpans\": 9","rejectedSpans":2}}"#,
            rejected(2, "\"rejectedSpans\": 9"),
        ),
        // Nested 60,000 deep within the 64 KiB kept: read without recursion.
        (
            &[&b"{\"partialSuccess\":{\"rejectedSpans\":1},\"x\":"[..], &[b'['; 60_000]].concat()[..],
            rejected(1, ""),
        ),
    ] {
        let answer = with_body("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n", body);
        assert_eq!(
            send(&answering(answer), BodyFormat::Json),
            want,
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(120)])
        );
    }
}

#[test]
fn a_server_answering_413_to_everything_is_one_cause_of_loss() {
    // Each request split to lone spans, each cut to its smallest and
    // refused: every lost span's reason named its own smallest refused
    // size, so each was a cause of its own, `spanguard why` said a line
    // for each (8, then the rest summed under the last text), and a
    // cause of another kind met after them had no line of its own.
    let url =
        support::raw_backend(|_, _| with_body("HTTP/1.1 413 Content Too Large\r\n", b"too big!"));
    let (tracer, dir) = support::tracer_to("walk-413", &url, support::json_in_threes());
    let names: Vec<String> = (0..12).map(|i| format!("s{}", "x".repeat(i * 7))).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    support::end_spans(&tracer, &names);
    let stats = support::flush_and_shut_down(&tracer, "walk-413");
    let (text, record) = support::the_outcome_record(&dir.join("spool"));
    let _ = std::fs::remove_dir_all(dir);
    assert_eq!(stats.dropped_export_failed, 12, "{stats:?}");
    assert_eq!(record.causes.len(), 1, "{text}");
    assert_eq!(record.causes[0].0, 12, "{text}");
    assert!(
        record.causes[0].1.starts_with("HTTP 413: too big!"),
        "{text}"
    );
}

#[test]
fn a_compressed_answer_cut_short_is_delivered_with_a_warning_that_says_so() {
    // A gzip or deflate body that does not inflate whole was read as it
    // came: its bytes parse as no partial success, so spans the server
    // rejected in it were counted delivered with nothing said. It is
    // taken as its status says, with the warning a coding not read gets.
    let message = "3 spans were too old to keep";
    let whole = partial_success(3, message).repeat(8);
    for (encoding, compressed, named) in [
        ("gzip", gzipped(&whole), "gzip, cut short"),
        (
            "deflate",
            deflated(&whole, false, flate2::Compression::best()),
            "deflate, cut short",
        ),
        (
            "deflate",
            deflated(&whole, true, flate2::Compression::best()),
            "deflate, cut short",
        ),
    ] {
        let head = format!("HTTP/1.1 200 OK\r\nContent-Encoding: {encoding}\r\n");
        // Whole, it is read: 3 rejected (the repeats merged).
        let got = send(
            &answering(with_body(&head, &compressed)),
            BodyFormat::Protobuf,
        );
        assert_eq!(got.map(|a| a.rejected_spans), Ok(3), "{named}");
        let cut = &compressed[..compressed.len() / 2];
        let got = send(&answering(with_body(&head, cut)), BodyFormat::Protobuf);
        let Ok(Accepted {
            rejected_spans: 0,
            message,
        }) = &got
        else {
            panic!("{named}: {got:?}");
        };
        assert!(
            message.contains(&format!("compressed as {named}, which is not read"))
                && message.contains("counted delivered"),
            "{message}"
        );
    }
}
