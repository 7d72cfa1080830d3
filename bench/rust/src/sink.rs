//! A loopback OTLP/HTTP sink for the CPU-per-span rows: accepts every
//! request as fast as it can (keep-alive, Content-Length or chunked,
//! `Expect: 100-continue`), answers 200 with an empty
//! ExportTraceServiceResponse, and counts the spans in each protobuf body
//! (walking the three nested messages, decoding nothing else), so that a
//! row can say every span arrived. `GET /count` answers the count so far.
//!
//! Run by bench/run.py as `spanguard-bench --sink`: it prints its traces
//! URL on one line and serves until its standard input closes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub fn serve_until_stdin_closes() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/v1/traces", listener.local_addr().expect("addr"));
    println!("{url}");
    std::io::stdout().flush().expect("stdout");
    let spans = Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let spans = spans.clone();
            std::thread::spawn(move || {
                let _ = conn.set_nodelay(true);
                let _ = serve(conn, &spans);
            });
        }
    });
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
}

/// Spans received so far by the sink at `url` (its `GET /count`).
pub fn received(url: &str) -> u64 {
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("host:port");
    let mut conn = TcpStream::connect(addr).expect("connect to the sink");
    conn.write_all(b"GET /count HTTP/1.1\r\nHost: sink\r\nConnection: close\r\n\r\n")
        .expect("ask the sink");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("the sink answers");
    answer
        .rsplit("\r\n\r\n")
        .next()
        .and_then(|b| b.trim().parse().ok())
        .expect("a count")
}

fn serve(conn: TcpStream, spans: &AtomicU64) -> std::io::Result<()> {
    let mut reader = BufReader::with_capacity(1 << 20, conn.try_clone()?);
    let mut writer = conn;
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let is_count = line.starts_with("GET /count");
        let (mut length, mut chunked, mut expect) = (0usize, false, false);
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                match k.as_str() {
                    "content-length" => length = v.parse().unwrap_or(0),
                    "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                    "expect" => expect = v.eq_ignore_ascii_case("100-continue"),
                    _ => {}
                }
            }
        }
        if expect {
            writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        body.clear();
        if chunked {
            loop {
                line.clear();
                reader.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                    .unwrap_or(0);
                let at = body.len();
                body.resize(at + size + 2, 0);
                reader.read_exact(&mut body[at..])?;
                body.truncate(at + size);
                if size == 0 {
                    // Trailers, if any, end with an empty line; the CRLF
                    // after the last chunk was read above.
                    break;
                }
            }
        } else {
            body.resize(length, 0);
            reader.read_exact(&mut body)?;
        }
        if is_count {
            let count = spans.load(Ordering::Relaxed).to_string();
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{count}",
                count.len()
            );
            // Asked with Connection: close (see `received`).
            return writer.write_all(answer.as_bytes());
        }
        spans.fetch_add(count_spans(&body), Ordering::Relaxed);
        writer.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n",
        )?;
    }
}

/// Spans in an ExportTraceServiceRequest: field 1 (ResourceSpans) holds
/// field 2 (ScopeSpans), which holds field 2 (Span).
fn count_spans(request: &[u8]) -> u64 {
    let mut spans = 0;
    for resource in fields(request, 1) {
        for scope in fields(resource, 2) {
            spans += fields(scope, 2).count() as u64;
        }
    }
    spans
}

/// The length-delimited fields numbered `number` of one message.
fn fields(mut message: &[u8], number: u64) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        while !message.is_empty() {
            let key = varint(&mut message)?;
            let value: &[u8] = match key & 7 {
                0 => {
                    varint(&mut message)?;
                    &[]
                }
                1 => take(&mut message, 8)?,
                2 => {
                    let n = varint(&mut message)? as usize;
                    take(&mut message, n)?
                }
                5 => take(&mut message, 4)?,
                _ => return None,
            };
            if key >> 3 == number && key & 7 == 2 {
                return Some(value);
            }
        }
        None
    })
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if bytes.len() < n {
        return None;
    }
    let (head, tail) = bytes.split_at(n);
    *bytes = tail;
    Some(head)
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            return Some(value);
        }
    }
    None
}
