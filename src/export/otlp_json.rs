//! OTLP/JSON encoding per the OTLP spec (which differs from plain proto3
//! JSON): trace and span ids as lower-case hex, enums as integers, 64-bit
//! integers as decimal strings, lowerCamelCase keys. Written straight from
//! span records into one reused buffer; this is also the local sink's line
//! format (the Collector file exporter's).

use std::io::Write;

use crate::span::ids::write_hex;
use crate::span::record::*;

use super::otlp_proto::{FLAGS_HAS_IS_REMOTE, span_flags};
use super::resource::{AttrValue, ResourceInfo};

#[derive(Default)]
pub struct OtlpJsonEncoder;

impl OtlpJsonEncoder {
    pub fn new() -> OtlpJsonEncoder {
        OtlpJsonEncoder
    }

    /// Replaces `out` with one ExportTraceServiceRequest holding `spans`.
    pub fn encode(&mut self, resource: &ResourceInfo, spans: &[&SpanRecord], out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(b"{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
        for (i, (k, v)) in resource.attributes.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"key\":");
            string(out, k);
            out.extend_from_slice(b",\"value\":");
            match v {
                AttrValue::Str(s) => {
                    out.extend_from_slice(b"{\"stringValue\":");
                    string(out, s);
                    out.push(b'}');
                }
                AttrValue::Int(n) => int_value(out, *n),
                AttrValue::Double(d) => double_value(out, *d),
                AttrValue::Bool(b) => bool_value(out, *b),
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"]},\"scopeSpans\":[{\"scope\":{\"name\":");
        string(out, &resource.scope_name);
        out.extend_from_slice(b",\"version\":");
        string(out, &resource.scope_version);
        out.extend_from_slice(b"},\"spans\":[");
        for (i, span) in spans.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_span(out, span);
        }
        out.extend_from_slice(b"]}]}]}");
    }
}

/// A JSON string with the escapes RFC 8259 requires.
pub fn string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn hex(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let at = out.len();
    out.resize(at + bytes.len() * 2, 0);
    write_hex(bytes, &mut out[at..]);
    out.push(b'"');
}

/// 64-bit integers are strings in OTLP/JSON.
fn u64_string(out: &mut Vec<u8>, v: u64) {
    let _ = write!(out, "\"{v}\"");
}

fn int_value(out: &mut Vec<u8>, v: i64) {
    let _ = write!(out, "{{\"intValue\":\"{v}\"}}");
}

fn bool_value(out: &mut Vec<u8>, v: bool) {
    out.extend_from_slice(if v {
        b"{\"boolValue\":true}"
    } else {
        b"{\"boolValue\":false}"
    });
}

/// Doubles are JSON numbers; the non-finite ones are the strings proto3
/// JSON uses. `{:?}` prints the shortest text that reads back to the same
/// double, in a form JSON accepts ("0.5", "1e300", "-0.0").
fn double_value(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(b"{\"doubleValue\":");
    if v.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 {
            b"\"Infinity\""
        } else {
            b"\"-Infinity\""
        });
    } else {
        let _ = write!(out, "{v:?}");
    }
    out.push(b'}');
}

fn attribute(out: &mut Vec<u8>, r: &SpanRecord, a: &AttributeRecord) {
    out.extend_from_slice(b"{\"key\":");
    string(out, r.text(a.key));
    out.extend_from_slice(b",\"value\":");
    match ValueKind::from_u8(a.value_kind) {
        Some(ValueKind::String) => {
            out.extend_from_slice(b"{\"stringValue\":");
            string(out, r.text(a.text_value()));
            out.push(b'}');
        }
        Some(ValueKind::Int) => int_value(out, a.value as i64),
        Some(ValueKind::Double) => double_value(out, f64::from_bits(a.value)),
        Some(ValueKind::Bool) => bool_value(out, a.value != 0),
        None => out.extend_from_slice(b"{}"),
    }
    out.push(b'}');
}

/// A comma-separated attribute list for one owner; returns how many.
fn attributes(out: &mut Vec<u8>, r: &SpanRecord, owner: u8) -> usize {
    let mut n = 0;
    for a in r.attributes_of(owner) {
        if n > 0 {
            out.push(b',');
        }
        attribute(out, r, a);
        n += 1;
    }
    n
}

fn write_span(out: &mut Vec<u8>, r: &SpanRecord) {
    out.extend_from_slice(b"{\"traceId\":");
    hex(out, &r.trace_id);
    out.extend_from_slice(b",\"spanId\":");
    hex(out, &r.span_id);
    let tracestate = r.text(r.tracestate);
    if !tracestate.is_empty() {
        out.extend_from_slice(b",\"traceState\":");
        string(out, tracestate);
    }
    if !r.is_root() {
        out.extend_from_slice(b",\"parentSpanId\":");
        hex(out, &r.parent_span_id);
    }
    let _ = write!(out, ",\"flags\":{}", span_flags(r));
    out.extend_from_slice(b",\"name\":");
    string(out, r.text(r.name));
    let _ = write!(out, ",\"kind\":{}", r.kind);
    out.extend_from_slice(b",\"startTimeUnixNano\":");
    u64_string(out, r.start_unix_ns);
    out.extend_from_slice(b",\"endTimeUnixNano\":");
    u64_string(out, r.end_unix_ns);
    out.extend_from_slice(b",\"attributes\":[");
    let mut n = attributes(out, r, OWNER_SPAN);
    // spanguard's own marks, as extra attributes.
    let mut separate = |out: &mut Vec<u8>| {
        if n > 0 {
            out.push(b',');
        }
        n += 1;
    };
    if r.marks & MARK_UNENDED != 0 {
        separate(out);
        out.extend_from_slice(b"{\"key\":\"spanguard.unended\",\"value\":{\"boolValue\":true}}");
    }
    if r.marks & MARK_INTERRUPTED != 0 {
        separate(out);
        out.extend_from_slice(
            b"{\"key\":\"spanguard.interrupted\",\"value\":{\"boolValue\":true}}",
        );
        if r.signal != 0 {
            separate(out);
            out.extend_from_slice(b"{\"key\":\"spanguard.signal\",\"value\":");
            int_value(out, r.signal as i64);
            out.push(b'}');
        }
    }
    out.push(b']');
    if r.dropped_attributes != 0 {
        let _ = write!(out, ",\"droppedAttributesCount\":{}", r.dropped_attributes);
    }
    if !r.events().is_empty() {
        out.extend_from_slice(b",\"events\":[");
        for (i, e) in r.events().iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"timeUnixNano\":");
            u64_string(out, e.time_unix_ns);
            out.extend_from_slice(b",\"name\":");
            string(out, r.text(e.name));
            out.extend_from_slice(b",\"attributes\":[");
            attributes(out, r, OWNER_EVENT_BASE + i as u8);
            out.extend_from_slice(b"]}");
        }
        out.push(b']');
    }
    if r.dropped_events != 0 {
        let _ = write!(out, ",\"droppedEventsCount\":{}", r.dropped_events);
    }
    if !r.links().is_empty() {
        out.extend_from_slice(b",\"links\":[");
        for (i, l) in r.links().iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"traceId\":");
            hex(out, &l.trace_id);
            out.extend_from_slice(b",\"spanId\":");
            hex(out, &l.span_id);
            let ts = r.text(l.tracestate);
            if !ts.is_empty() {
                out.extend_from_slice(b",\"traceState\":");
                string(out, ts);
            }
            out.extend_from_slice(b",\"attributes\":[");
            attributes(out, r, OWNER_LINK_BASE + i as u8);
            let _ = write!(
                out,
                "],\"flags\":{}}}",
                l.trace_flags as u32 | FLAGS_HAS_IS_REMOTE
            );
        }
        out.push(b']');
    }
    if r.dropped_links != 0 {
        let _ = write!(out, ",\"droppedLinksCount\":{}", r.dropped_links);
    }
    out.extend_from_slice(b",\"status\":{");
    if r.status_code != STATUS_UNSET {
        let message = r.text(r.status_message);
        if !message.is_empty() {
            out.extend_from_slice(b"\"message\":");
            string(out, message);
            out.push(b',');
        }
        let _ = write!(out, "\"code\":{}", r.status_code);
    }
    out.extend_from_slice(b"}}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> String {
        let mut out = Vec::new();
        string(&mut out, text);
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn strings_are_escaped_as_json_requires() {
        assert_eq!(s("plain"), "\"plain\"");
        assert_eq!(s("q\"b\\"), "\"q\\\"b\\\\\"");
        assert_eq!(s("\n\t\u{1}\u{1f}é"), "\"\\n\\t\\u0001\\u001fé\"");
    }

    #[test]
    fn doubles_read_back_exactly_and_non_finite_are_strings() {
        for v in [0.5, -1e300, 1e-7, 123456789.125, -0.0] {
            let mut out = Vec::new();
            double_value(&mut out, v);
            let text = String::from_utf8(out).expect("utf8");
            let number = text
                .trim_start_matches("{\"doubleValue\":")
                .trim_end_matches('}');
            assert_eq!(
                number.parse::<f64>().expect("number").to_bits(),
                v.to_bits(),
                "{text}"
            );
        }
        let mut out = Vec::new();
        double_value(&mut out, f64::NAN);
        assert_eq!(out, b"{\"doubleValue\":\"NaN\"}");
    }
}
