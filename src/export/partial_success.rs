//! Reads an ExportTraceServiceResponse's `partial_success`: how many spans
//! the backend rejected although it answered 2xx.

use super::transport::{Accepted, BodyFormat};

pub fn parse(body: &[u8], format: BodyFormat) -> Accepted {
    match format {
        BodyFormat::Protobuf => parse_proto(body),
        BodyFormat::Json => parse_json(body),
    }
    .unwrap_or_default()
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Walks `buf` calling `f(field, wire_type, varint, bytes)` for each field;
/// None on malformed input.
fn walk<'a>(buf: &'a [u8], mut f: impl FnMut(u64, u64, u64, &'a [u8])) -> Option<()> {
    let mut pos = 0;
    while pos < buf.len() {
        let key = read_varint(buf, &mut pos)?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                let v = read_varint(buf, &mut pos)?;
                f(field, wire, v, &[]);
            }
            1 => pos = pos.checked_add(8).filter(|&p| p <= buf.len())?,
            2 => {
                let len = read_varint(buf, &mut pos)? as usize;
                let end = pos.checked_add(len).filter(|&e| e <= buf.len())?;
                f(field, wire, 0, &buf[pos..end]);
                pos = end;
            }
            5 => pos = pos.checked_add(4).filter(|&p| p <= buf.len())?,
            _ => return None,
        }
    }
    Some(())
}

fn parse_proto(body: &[u8]) -> Option<Accepted> {
    let mut partial: Option<&[u8]> = None;
    walk(body, |field, wire, _, bytes| {
        if field == 1 && wire == 2 {
            partial = Some(bytes);
        }
    })?;
    let mut out = Accepted::default();
    if let Some(p) = partial {
        walk(p, |field, wire, v, bytes| match (field, wire) {
            (1, 0) => out.rejected_spans = v,
            (2, 2) => out.message = String::from_utf8_lossy(bytes).into_owned(),
            _ => {}
        })?;
    }
    Some(out)
}

/// Enough JSON to find `partialSuccess.rejectedSpans` (a number or a decimal
/// string, as OTLP/JSON allows) and `errorMessage`.
fn parse_json(body: &[u8]) -> Option<Accepted> {
    let text = std::str::from_utf8(body).ok()?;
    let section = &text[text.find("\"partialSuccess\"")?..];
    let mut out = Accepted::default();
    if let Some(at) = section.find("\"rejectedSpans\"") {
        let rest = section[at + "\"rejectedSpans\"".len()..].trim_start();
        let rest = rest.strip_prefix(':')?.trim_start().trim_start_matches('"');
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        out.rejected_spans = digits.parse().unwrap_or(0);
    }
    if let Some(at) = section.find("\"errorMessage\"") {
        let rest = section[at + "\"errorMessage\"".len()..].trim_start();
        let rest = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?;
        let mut msg = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => {
                    if let Some(n) = chars.next() {
                        msg.push(n);
                    }
                }
                c => msg.push(c),
            }
        }
        out.message = msg;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_partial_success_is_read() {
        // partial_success { rejected_spans: 3, error_message: "quota" }
        let body = [
            0x0a, 0x09, 0x08, 0x03, 0x12, 0x05, b'q', b'u', b'o', b't', b'a',
        ];
        let a = parse(&body, BodyFormat::Protobuf);
        assert_eq!(a.rejected_spans, 3);
        assert_eq!(a.message, "quota");
        assert_eq!(parse(&[], BodyFormat::Protobuf), Accepted::default());
        assert_eq!(
            parse(&[0x0a, 0x50], BodyFormat::Protobuf),
            Accepted::default()
        );
    }

    #[test]
    fn json_partial_success_is_read() {
        let a = parse(
            br#"{"partialSuccess":{"rejectedSpans":"2","errorMessage":"bad \"span\""}}"#,
            BodyFormat::Json,
        );
        assert_eq!(a.rejected_spans, 2);
        assert_eq!(a.message, "bad \"span\"");
        assert_eq!(parse(b"{}", BodyFormat::Json).rejected_spans, 0);
    }
}
