//! A 2xx answer's body as the transport reads it (`http::outcome_of_answer`):
//! its `Content-Encoding` (one coding or a list of them, on one header
//! line or several, in any case, with `identity` among them), its
//! compression (gzip, zlib or bare deflate, or none) and its partial
//! success in either format, the JSON one among members a server may add
//! (other keys, strings that read as the partial success's key names,
//! objects of their own holding those names) and under either field
//! naming, the protobuf one split in instances as protobuf merges them.
//!
//! Checked: never a panic; when the codings the answer names (the header
//! lines combined into one list, as RFC 9110 says they are) leave one
//! compression that is the body's, or none for a plain body, the partial
//! success reads as the server wrote it: the rejected count its
//! `partialSuccess` holds (0 when it has none, whatever the other members
//! hold), and its message as it is shown. Any other header value (any
//! bytes) is read without a panic and its message stays shown as it is.
#![no_main]

mod input;

use input::Input;
use libfuzzer_sys::fuzz_target;
use spanguard::export::http::outcome_of_answer;
use spanguard::export::transport::BodyFormat;
use spanguard::span::printable::{is_shown_as_is, printable_cut};
use std::io::Write as _;

/// The most of a server's message kept, in characters (the parser's
/// `MESSAGE_MAX_CHARS`).
const MESSAGE_MAX_CHARS: usize = 200;

/// A varint, as protobuf writes it.
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited protobuf field.
fn len_field(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    varint(out, number << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// `text` as a JSON string's contents.
fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The compressions a body may come in.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Compression {
    None,
    Gzip,
    Zlib,
    RawDeflate,
}

fn compress(body: &[u8], how: Compression, level: u32) -> Vec<u8> {
    let level = flate2::Compression::new(level % 10);
    match how {
        Compression::None => body.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
            e.write_all(body).unwrap();
            e.finish().unwrap()
        }
        Compression::Zlib => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), level);
            e.write_all(body).unwrap();
            e.finish().unwrap()
        }
        Compression::RawDeflate => {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), level);
            e.write_all(body).unwrap();
            e.finish().unwrap()
        }
    }
}

/// A coding's name in the case `case` picks.
fn cased(name: &str, case: u8) -> String {
    match case % 3 {
        0 => name.to_string(),
        1 => name.to_ascii_uppercase(),
        _ => name
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect(),
    }
}

/// The JSON body: a `partialSuccess` (under either naming) holding the
/// count (as a number or a decimal string) and the message when asked,
/// among members the input picks, before and after it, and inside it.
fn json_body(input: &mut Input, count: Option<u64>, message: Option<&str>) -> String {
    let snake = input.byte() % 2 == 1;
    let (ps, rs, em) = if snake {
        ("partial_success", "rejected_spans", "error_message")
    } else {
        ("partialSuccess", "rejectedSpans", "errorMessage")
    };
    // Names a member may have or hold as its value, under both namings.
    const NAMES: [&str; 6] = [
        "partialSuccess",
        "partial_success",
        "rejectedSpans",
        "rejected_spans",
        "errorMessage",
        "error_message",
    ];
    let distractor = |input: &mut Input| -> String {
        let name = NAMES[input.byte() as usize % NAMES.len()];
        match input.byte() % 5 {
            // A string that is a key's name.
            0 => format!("\"note\":{}", json_string(name)),
            // An object of its own holding the key.
            1 => format!("\"details\":{{\"{name}\":{}}}", input.byte()),
            // A string holding the key as the text of a member.
            2 => format!("\"note\":{}", json_string(&format!("\"{name}\":9"))),
            // An array of strings that are keys' names.
            3 => format!("\"notes\":[{},{}]", json_string(name), json_string(":7")),
            _ => "\"x\":null".to_string(),
        }
    };
    let mut inner: Vec<String> = Vec::new();
    if let Some(n) = count {
        inner.push(match input.byte() % 2 {
            0 => format!("\"{rs}\":{n}"),
            _ => format!("\"{rs}\":\"{n}\""),
        });
    }
    if let Some(m) = message {
        inner.push(format!("\"{em}\":{}", json_string(m)));
    }
    if input.byte() % 2 == 1 {
        inner.reverse();
    }
    for _ in 0..input.byte() % 3 {
        let d = distractor(input);
        let at = input.byte() as usize % (inner.len() + 1);
        inner.insert(at, d);
    }
    let mut outer = vec![format!("\"{ps}\":{{{}}}", inner.join(","))];
    for _ in 0..input.byte() % 3 {
        let d = distractor(input);
        let at = input.byte() as usize % (outer.len() + 1);
        outer.insert(at, d);
    }
    let space = if input.byte() % 2 == 1 { " " } else { "" };
    format!("{{{}}}", outer.join(&format!(",{space}")))
}

/// The protobuf body: the partial success in up to three instances of
/// field 1, which protobuf merges (each field's last value stands), with
/// unknown fields among them.
fn proto_body(input: &mut Input, count: Option<u64>, message: Option<&str>) -> Vec<u8> {
    let parts = 1 + input.byte() % 3;
    let mut instances = vec![Vec::new(); parts as usize];
    if let Some(n) = count {
        let at = input.byte() % parts;
        let i = &mut instances[at as usize];
        varint(i, 1 << 3);
        varint(i, n);
    }
    if let Some(m) = message {
        let at = input.byte() % parts;
        len_field(&mut instances[at as usize], 2, m.as_bytes());
    }
    let mut body = Vec::new();
    for i in &instances {
        if input.byte() % 4 == 0 {
            // An unknown field of the response's.
            len_field(&mut body, 7, b"unknown");
        }
        len_field(&mut body, 1, i);
    }
    body
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mode = input.byte();
    let json = mode & 1 != 0;
    let count = (mode & 2 != 0).then(|| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&{
            let b = input.bytes(8);
            let mut a = [0u8; 8];
            a[..b.len()].copy_from_slice(b);
            a
        });
        // Mostly small counts, some past any batch.
        let n = u64::from_le_bytes(bytes);
        if mode & 0x80 != 0 { n } else { n % 1000 }
    });
    let message_len = input.byte() as usize % 64;
    let message =
        (mode & 4 != 0).then(|| String::from_utf8_lossy(input.bytes(message_len)).into_owned());
    let plain = if json {
        json_body(&mut input, count, message.as_deref()).into_bytes()
    } else {
        proto_body(&mut input, count, message.as_deref())
    };
    let how = match input.byte() % 4 {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Zlib,
        _ => Compression::RawDeflate,
    };
    let body = compress(&plain, how, input.byte() as u32);
    // The codings named: the body's own (gzip under either name) among
    // any `identity`s, spread over one or more header lines.
    let mut codings: Vec<String> = Vec::new();
    let own = match how {
        Compression::None => None,
        Compression::Gzip if input.byte() % 2 == 0 => Some("gzip"),
        Compression::Gzip => Some("x-gzip"),
        Compression::Zlib | Compression::RawDeflate => Some("deflate"),
    };
    let identities = input.byte() % 3;
    for _ in 0..identities {
        codings.push(cased("identity", input.byte()));
    }
    if let Some(own) = own {
        let at = input.byte() as usize % (codings.len() + 1);
        codings.insert(at, cased(own, input.byte()));
    }
    let lines = 1 + input.byte() as usize % 3;
    let mut header_lines: Vec<Vec<u8>> = vec![b"HTTP/1.1 200 OK\r\n".to_vec()];
    let raw_value = mode & 8 != 0;
    if raw_value {
        // Any bytes as the value: only never a panic, and a message shown.
        let len = input.byte() as usize % 32;
        let mut value = input.bytes(len).to_vec();
        value.retain(|&b| b != b'\r' && b != b'\n');
        let mut line = b"Content-Encoding: ".to_vec();
        line.extend_from_slice(&value);
        line.extend_from_slice(b"\r\n");
        header_lines.push(line);
    } else if !codings.is_empty() || input.byte() % 2 == 0 {
        // The list cut into `lines` header lines (an empty line's value
        // is no coding), each with any spaces around its commas.
        let per_line = codings.len().div_ceil(lines).max(1);
        let chunks: Vec<&[String]> = if codings.is_empty() {
            vec![&[]]
        } else {
            codings.chunks(per_line).collect()
        };
        for chunk in chunks {
            let sep = match input.byte() % 3 {
                0 => ",",
                1 => ", ",
                _ => " ,  ",
            };
            header_lines.push(format!("Content-Encoding: {}\r\n", chunk.join(sep)).into_bytes());
        }
    }
    header_lines.push(b"\r\n".to_vec());
    // The body in up to three chunks, as curl hands it over.
    let mut chunks: Vec<&[u8]> = Vec::new();
    let mut rest = &body[..];
    for _ in 0..input.byte() % 3 {
        let at = (input.byte() as usize * 7).min(rest.len());
        let (a, b) = rest.split_at(at);
        chunks.push(a);
        rest = b;
    }
    chunks.push(rest);
    let format = if (mode & 16 != 0) == json {
        BodyFormat::Json
    } else {
        BodyFormat::Protobuf
    };
    let line_refs: Vec<&[u8]> = header_lines.iter().map(|l| &l[..]).collect();
    let read = outcome_of_answer(&line_refs, &chunks, None, 200, format, 0)
        .unwrap_or_else(|e| panic!("a 200 answer refused: {e:?}"));
    assert!(is_shown_as_is(&read.message), "{:?}", read.message);
    if raw_value {
        return;
    }
    assert_eq!(
        read.rejected_spans,
        count.unwrap_or(0),
        "codings {codings:?} on {lines} lines, body {how:?}: {} ({plain:02x?})",
        String::from_utf8_lossy(&plain)
    );
    let shown = printable_cut(message.unwrap_or_default().as_bytes(), MESSAGE_MAX_CHARS);
    assert_eq!(read.message, shown, "{}", String::from_utf8_lossy(&plain));
});
