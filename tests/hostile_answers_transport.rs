//! What the HTTP transport makes of answers meant to hurt it, each over a
//! real loopback socket through curl: a gzip bomb around a partial success,
//! a gzip bomb of nothing, answers that trickle a byte at a time (headers,
//! body), a server that never reads the request, HTTP/1.0 without a
//! length, headers curl refuses (two Content-Lengths, a NUL), a 101,
//! redirects to another port, a file and another scheme, answers cut in
//! their headers, a chunked 200 whose trailers look like a status line,
//! and a flood of interim answers. Each ends in the outcome OTLP asks for (a 2xx is the answer, with its
//! partial success; no answer or a broken one is tried again, never taken
//! as a final refusal; a redirect is followed nowhere), within the request
//! timeout, with the transport's memory bounded by what it keeps of a body.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use spanguard::config::TlsFiles;
use spanguard::export::http::HttpTransport;
use spanguard::export::transport::{Accepted, BodyFormat, SendError, Silence, Transport};

mod support;

/// A server that reads each request (when `read`) and plays `answer` on
/// the connection, then closes it. Returns its URL and a flag set once a
/// connection came.
fn server(
    read: bool,
    answer: impl Fn(&mut TcpStream) + Send + Sync + 'static,
) -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let came = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&came);
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            seen.store(true, Ordering::Release);
            if read {
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                if support::read_request(&mut reader).is_none() {
                    continue;
                }
            }
            answer(&mut conn);
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
    });
    (url, came)
}

/// A server that answers every request with `bytes`.
fn answering(bytes: Vec<u8>) -> String {
    server(true, move |conn| {
        let _ = conn.write_all(&bytes);
    })
    .0
}

fn transport(url: &str, timeout: Duration) -> HttpTransport {
    HttpTransport::new(
        url,
        &[],
        &TlsFiles::default(),
        timeout,
        Arc::new(AtomicU64::new(0)),
    )
}

/// One request of OTLP/JSON (an empty one: the answer is what is tested).
fn send(url: &str, timeout: Duration) -> (Result<Accepted, SendError>, Silence) {
    let mut t = transport(url, timeout);
    let outcome = t.send(br#"{"resourceSpans":[]}"#, BodyFormat::Json, false);
    (outcome, t.silence())
}

/// `data` gzipped as tightly as deflate goes (about 1000 to 1).
fn gzip(data: &[u8]) -> Vec<u8> {
    gzip_at(data, flate2::Compression::best())
}

/// `gzip` at `level`: `fast()` where the bomb need not be small (the
/// encoder, a debug build in `make test`, takes a third of a minute for
/// 200 MB at `best()`).
fn gzip_at(data: &[u8], level: flate2::Compression) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), level);
    gz.write_all(data).expect("in memory");
    gz.finish().expect("in memory")
}

fn with_body(head: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("{head}Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// Kept for another try: no answer, or one that is none.
fn kept(outcome: &Result<Accepted, SendError>) -> bool {
    matches!(outcome, Err(SendError::Transient { .. }))
}

#[test]
fn a_gzip_bomb_around_a_partial_success_is_read_as_far_as_a_body_is_kept() {
    // 2 rejected, then 200 MB of blanks: 200 KB of gzip or more, cut
    // where the transport stops keeping a body (64 KiB), and inflated no
    // further.
    let mut text = br#"{"partialSuccess":{"rejectedSpans":2,"errorMessage":"bomb"}}"#.to_vec();
    text.resize(200 << 20, b' ');
    let bomb = gzip_at(&text, flate2::Compression::fast());
    drop(text);
    assert!(bomb.len() > 64 << 10, "{}", bomb.len());
    let url = answering(with_body(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n",
        &bomb,
    ));
    let (outcome, _) = send(&url, Duration::from_secs(30));
    let accepted = outcome.expect("a 200 is the answer");
    assert_eq!(accepted.rejected_spans, 2);
    assert_eq!(accepted.message, "bomb");
}

/// A protobuf varint.
fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out
}

/// A length-delimited protobuf field.
fn field_len(number: u64, bytes: &[u8]) -> Vec<u8> {
    let mut out = varint(number << 3 | 2);
    out.extend(varint(bytes.len() as u64));
    out.extend_from_slice(bytes);
    out
}

/// An ExportTraceServiceResponse's field 1, partial_success.
fn partial_success(rejected: u64, message: &str) -> Vec<u8> {
    let mut inner = varint(1 << 3);
    inner.extend(varint(rejected));
    inner.extend(field_len(2, message.as_bytes()));
    field_len(1, &inner)
}

#[test]
fn a_gzip_bomb_is_inflated_no_further_than_the_64_kib_a_body_is_kept() {
    // The bomb test above reads the partial success at its start: it
    // would pass however far the bomb was inflated. Here the first 64 KiB
    // inflate to a whole answer (2 rejected, then an unknown field up to
    // 64 KiB exactly) and what comes after to a second partial_success
    // (9 rejected), which, read, would be the answer (the last of a
    // protobuf field wins), then 20 MB of an unknown field. Under 64 KiB
    // of gzip in all, so the transport keeps the whole body and only the
    // inflating cap stands between the answer and 9.
    const KEPT: usize = 64 << 10;
    let mut answer = partial_success(2, "inside the cap");
    let pad = KEPT - answer.len() - 4; // field 15's key, 1 byte; its length, 3
    answer.extend(field_len(15, &vec![0u8; pad]));
    assert_eq!(answer.len(), KEPT);
    answer.extend(partial_success(9, "past the cap"));
    answer.extend(field_len(15, &vec![0u8; 20 << 20]));
    // The whole of it, read, says 9: the rest would change the answer.
    let whole = spanguard::export::partial_success::parse(&answer, BodyFormat::Protobuf);
    assert_eq!(
        (whole.rejected_spans, whole.message.as_str()),
        (9, "past the cap")
    );
    let bomb = gzip(&answer);
    drop(answer);
    assert!(bomb.len() < KEPT, "{}", bomb.len());
    let url = answering(with_body(
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: gzip\r\n",
        &bomb,
    ));
    let (outcome, _) = send(&url, Duration::from_secs(30));
    let accepted = outcome.expect("a 200 is the answer");
    assert_eq!(
        (accepted.rejected_spans, accepted.message.as_str()),
        (2, "inside the cap")
    );
}

#[test]
fn a_gzip_bomb_of_nothing_under_the_kept_size_is_a_200_with_nothing_rejected() {
    // 50 MB of zeros in under 64 KiB of gzip: inflated to 64 KiB at most,
    // no partial success in it, so a delivery (not a rejection).
    let bomb = gzip(&vec![0u8; 50 << 20]);
    assert!(bomb.len() < 64 << 10, "{}", bomb.len());
    let url = answering(with_body(
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: gzip\r\n",
        &bomb,
    ));
    let (outcome, _) = send(&url, Duration::from_secs(30));
    assert_eq!(outcome.expect("a 200 is the answer").rejected_spans, 0);
}

#[test]
fn headers_that_trickle_past_the_request_timeout_are_no_answer() {
    // A byte of a status line every 100 ms, never a whole line: the
    // request times out, and its spans are kept.
    let (url, _) = server(true, |conn| {
        for b in b"HTTP/1.1 200 OK\r\nX-Slow: "
            .iter()
            .chain([b'a'; 1000].iter())
        {
            if conn.write_all(&[*b]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    });
    let (outcome, silence) = send(&url, Duration::from_secs(2));
    assert!(kept(&outcome), "{outcome:?}");
    assert_eq!(silence, Silence::TimedOut);
}

#[test]
fn a_200_whose_body_trickles_past_the_request_timeout_is_the_answer() {
    let (url, _) = server(true, |conn| {
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
        for _ in 0..1000 {
            if conn.write_all(b" ").is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    });
    let (outcome, _) = send(&url, Duration::from_secs(2));
    assert_eq!(outcome.expect("the 200 stands").rejected_spans, 0);
}

#[test]
fn a_server_that_never_reads_a_large_request_is_no_answer() {
    // Accepts, reads nothing of 5 MB, answers nothing: curl blocks on
    // sending until the request timeout.
    let (url, came) = server(false, |_| thread::sleep(Duration::from_secs(30)));
    let mut t = transport(&url, Duration::from_secs(2));
    let body = vec![b' '; 5 << 20];
    let outcome = t.send(&body, BodyFormat::Json, false);
    assert!(came.load(Ordering::Acquire));
    assert!(kept(&outcome), "{outcome:?}");
    assert_eq!(t.silence(), Silence::TimedOut);
}

#[test]
fn an_http_1_0_answer_without_a_length_is_read_to_its_close() {
    let url = answering(
        br#"HTTP/1.0 200 OK
Content-Type: application/json

{"partialSuccess":{"rejectedSpans":1}}"#
            .iter()
            .flat_map(|&b| {
                if b == b'\n' {
                    vec![b'\r', b'\n']
                } else {
                    vec![b]
                }
            })
            .collect(),
    );
    let (outcome, _) = send(&url, Duration::from_secs(5));
    assert_eq!(outcome.expect("a 200").rejected_spans, 1);
}

#[test]
fn headers_curl_refuses_are_no_final_refusal() {
    for answer in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello"[..],
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nX-Nul: a\0b\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n\0\0\x12\x04\0\0\0\0\0",
    ] {
        let url = answering(answer.to_vec());
        let (outcome, _) = send(&url, Duration::from_secs(5));
        // Delivered (curl read a 200 it could) or kept: never a refusal
        // that drops the spans for an answer curl could not read.
        assert!(
            outcome.is_ok() || kept(&outcome),
            "{:?}: {outcome:?}",
            String::from_utf8_lossy(answer)
        );
    }
}

#[test]
fn a_redirect_anywhere_is_not_followed_and_keeps_the_spans() {
    // To another port (another host, as curl would see it), to a file,
    // to another scheme: no redirect is followed, so nothing there is
    // sent the request and its API key. A permanent one (301, 308)
    // refuses the URL, a temporary one is tried again: the spans are
    // kept either way, never refused as data.
    let (elsewhere, went) = server(true, |conn| {
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    });
    for location in [
        elsewhere.as_str(),
        "file:///etc/passwd",
        "ftp://127.0.0.1/x",
    ] {
        for code in [301, 302, 303, 307, 308] {
            let url = answering(
                format!(
                    "HTTP/1.1 {code} Moved\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
                )
                .into_bytes(),
            );
            let mut t = HttpTransport::new(
                &url,
                &[("x-api-key".to_string(), "sk-secret".to_string())],
                &TlsFiles::default(),
                Duration::from_secs(5),
                Arc::new(AtomicU64::new(0)),
            );
            let outcome = t.send(br#"{"resourceSpans":[]}"#, BodyFormat::Json, false);
            let reason = match &outcome {
                Err(SendError::Misdirected { reason }) if matches!(code, 301 | 308) => reason,
                Err(SendError::Transient { reason, .. }) if !matches!(code, 301 | 308) => reason,
                _ => panic!("{code} to {location}: {outcome:?}"),
            };
            assert!(
                reason.contains(&format!("a redirect to {location}, not followed")),
                "{reason}"
            );
            assert_eq!(t.silence(), Silence::Answered);
        }
    }
    assert!(!went.load(Ordering::Acquire), "a redirect was followed");
}

#[test]
fn an_answer_cut_in_its_headers_is_no_answer_whatever_its_status() {
    // The status line whole, then the connection closed before the blank
    // line that ends the headers: curl 8 reports that status as if the
    // answer were whole. A 400 so cut lost its spans as a refusal, a 200
    // counted them delivered. Neither is an answer: kept, tried again.
    for answer in [
        &b"HTTP/1.1 200 OK\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Type: appl",
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n",
        b"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\nX: y",
    ] {
        let url = answering(answer.to_vec());
        let (outcome, silence) = send(&url, Duration::from_secs(5));
        assert!(
            kept(&outcome),
            "{:?}: {outcome:?}",
            String::from_utf8_lossy(answer)
        );
        assert_eq!(
            silence,
            Silence::Answered,
            "{:?}",
            String::from_utf8_lossy(answer)
        );
    }
    // Whole, they are the answers they say.
    let url = answering(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_vec());
    assert!(matches!(
        send(&url, Duration::from_secs(5)).0,
        Err(SendError::Permanent { .. })
    ));
    let url = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec());
    assert_eq!(
        send(&url, Duration::from_secs(5)).0,
        Ok(Accepted::default())
    );
}

#[test]
fn a_chunked_200s_trailers_are_not_read_as_another_answer() {
    // Trailers come to curl's header callback as header lines do: one
    // read as a status line (a broken one) would make the 200 "not HTTP",
    // and its batch, which the server had taken, sent again.
    for trailer in ["HTTP/1.1 20", "HTTP/1.1 503 Service Unavailable"] {
        let url = answering(
            format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n\
                 2\r\n{{}}\r\n0\r\n{trailer}\r\n\r\n"
            )
            .into_bytes(),
        );
        let (outcome, _) = send(&url, Duration::from_secs(5));
        assert_eq!(
            outcome.unwrap_or_else(|e| panic!("{trailer:?}: {e:?}")),
            Accepted::default()
        );
    }
}

#[test]
fn a_flood_of_interim_answers_is_bounded_and_never_a_refusal() {
    // 2.6 MB of "100 Continue" before a 200: curl counts the interim
    // answers' headers against its limit on an answer's headers, or reads
    // the 200: kept or delivered, never a refusal, never unbounded.
    let mut answer = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(100_000);
    answer.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    let url = answering(answer);
    let (outcome, _) = send(&url, Duration::from_secs(10));
    assert!(outcome.is_ok() || kept(&outcome), "{outcome:?}");
}
