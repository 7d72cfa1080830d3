//! A server's answer body (an OTLP partial success), in both formats: any
//! bytes, never a panic. And a count of rejected spans written in any of
//! the forms OTLP/JSON allows (a number, a decimal string, a fraction, an
//! exponent, a sign) is read as the count it is, as its protobuf varint
//! is: the input's bytes, as decimal digits, are the count. The server's
//! message, whatever bytes it holds, comes out as it may be shown (stderr,
//! the error callback): nothing in it drives a terminal, breaks the line
//! or hides, and it is bounded. And any text written as a JSON string,
//! each character in the form an input byte chooses (as itself, a short
//! escape, `\uXXXX` in either case, a surrogate pair), is read back as
//! exactly that text, shown.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanguard::export::partial_success::parse;
use spanguard::export::transport::BodyFormat;
use spanguard::span::printable::{is_shown_as_is, printable_cut};
use std::fmt::Write as _;

/// The most of a server's message kept, in characters (the parser's
/// `MESSAGE_MAX_CHARS`).
const MESSAGE_MAX_CHARS: usize = 200;

/// The most a message shows: 200 characters, each written as at most 9
/// (`\u{e0041}`), and the count of the bytes left out.
const MOST_MESSAGE_CHARS: usize =
    MESSAGE_MAX_CHARS * 9 + "... (18446744073709551615 more bytes)".len();

/// A varint, as protobuf writes it.
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// `text` as a JSON string's contents, each character written in the
/// form `how` chooses for it: as itself (a quote and a backslash
/// escaped), its short escape where it has one, or `\u` escapes (a
/// surrogate pair past the BMP), in lower or upper case hex.
fn json_escaped(text: &str, how: &[u8]) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        let form = how.get(i).copied().unwrap_or(0);
        let short = match c {
            '"' => Some('"'),
            '\\' => Some('\\'),
            '/' => Some('/'),
            '\u{8}' => Some('b'),
            '\u{c}' => Some('f'),
            '\n' => Some('n'),
            '\r' => Some('r'),
            '\t' => Some('t'),
            _ => None,
        };
        match (form % 3, short) {
            (0, None) => out.push(c),
            (0 | 1, Some(s)) => {
                out.push('\\');
                out.push(s);
            }
            _ => {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    let _ = match form & 4 {
                        0 => write!(out, "\\u{unit:04x}"),
                        _ => write!(out, "\\u{unit:04X}"),
                    };
                }
            }
        }
    }
    out
}

/// The JSON answer with `count` as its rejectedSpans, read.
fn rejected_in_json(count: &str) -> u64 {
    let body = format!(r#"{{"partialSuccess":{{"rejectedSpans":{count},"errorMessage":"x"}}}}"#);
    parse(body.as_bytes(), BodyFormat::Json).rejected_spans
}

fuzz_target!(|data: &[u8]| {
    for format in [BodyFormat::Protobuf, BodyFormat::Json] {
        let message = parse(data, format).message;
        assert!(is_shown_as_is(&message), "{message:?}");
        assert!(
            message.chars().count() <= MOST_MESSAGE_CHARS,
            "{} characters",
            message.chars().count()
        );
    }
    // A message of the input's bytes, in a protobuf partial success.
    let mut partial = vec![0x08, 0x01, 0x12];
    varint(&mut partial, data.len() as u64);
    partial.extend_from_slice(data);
    let mut body = vec![0x0a];
    varint(&mut body, partial.len() as u64);
    body.extend_from_slice(&partial);
    let read = parse(&body, BodyFormat::Protobuf);
    assert_eq!(read.rejected_spans, 1);
    assert!(is_shown_as_is(&read.message), "{:?}", read.message);
    assert!(read.message.chars().count() <= MOST_MESSAGE_CHARS);
    // Plain text short enough is shown whole, as it is.
    let text = String::from_utf8_lossy(data);
    if text.chars().count() <= MESSAGE_MAX_CHARS && is_shown_as_is(&text) {
        assert_eq!(read.message, text);
    }

    // The input's text as a JSON message, each character in a form the
    // input's bytes choose: read back as that text exactly, shown as a
    // protobuf message of the same text is.
    let written = json_escaped(&text, data);
    let body = format!(r#"{{"partialSuccess":{{"rejectedSpans":1,"errorMessage":"{written}"}}}}"#);
    let read = parse(body.as_bytes(), BodyFormat::Json);
    assert_eq!(read.rejected_spans, 1);
    assert_eq!(
        read.message,
        printable_cut(text.as_bytes(), MESSAGE_MAX_CHARS),
        "{written}"
    );

    if data.is_empty() || data.len() > 48 {
        return;
    }
    let digits: String = data.iter().map(|b| char::from(b'0' + b % 10)).collect();
    // The count, saturated as a protobuf varint's reading is.
    let n: u64 = digits
        .trim_start_matches('0')
        .parse::<u128>()
        .map_or(u64::MAX, |n| n.min(u64::MAX as u128) as u64);
    let n = if digits.trim_start_matches('0').is_empty() {
        0
    } else {
        n
    };
    // ExportTracePartialSuccess { rejected_spans: n } in field 1.
    let mut partial = vec![0x08];
    varint(&mut partial, n);
    let mut body = vec![0x0a, partial.len() as u8];
    body.extend_from_slice(&partial);
    assert_eq!(parse(&body, BodyFormat::Protobuf).rejected_spans, n);
    for same in [
        digits.clone(),
        format!("\"{digits}\""),
        format!("{digits}e0"),
        format!("{digits}E+0"),
        format!("{digits}.000"),
        format!("{digits}0e-1"),
        format!("0.{digits}e{}", digits.len()),
    ] {
        assert_eq!(rejected_in_json(&same), n, "{same}");
    }
    // A fraction rounds up: a rejected span is never counted delivered.
    let up = if n == 0 { 1 } else { n.saturating_add(1) };
    assert_eq!(rejected_in_json(&format!("{digits}.5")), up);
    assert_eq!(rejected_in_json(&format!("{digits}5e-1")), up);
    assert_eq!(
        rejected_in_json(&format!("{digits}e1")),
        n.saturating_mul(10)
    );
    // Negative: every span, as its ten-byte varint reads; "-0" is 0.
    let negative = if n == 0 { 0 } else { u64::MAX };
    assert_eq!(rejected_in_json(&format!("-{digits}")), negative);
});
