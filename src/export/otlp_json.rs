//! OTLP/JSON encoding of a batch, as the OTLP specification defines it on top
//! of proto3 JSON: trace and span ids are lowercase hex (not base64), enums
//! are integers, 64-bit integers are decimal strings, keys are lowerCamelCase
//! and default values are left out. Written straight into the caller's
//! buffer with no serde, so after the first batch it allocates nothing.

use std::io::Write;

use super::otlp_fields::{
    OtlpValue, attributes_of, dropped_attributes, has_status, mark_attributes, same_scope,
    scope_leaders, scope_of, span_flags,
};
use super::resource::ResourceInfo;
use crate::span::ids::write_hex;
use crate::span::record::{OWNER_EVENT_BASE, OWNER_LINK_BASE, OWNER_SPAN, SpanRecord};

/// Encodes span batches as OTLP/JSON. It holds no buffers of its own:
/// everything is written straight into `out`, whose capacity the caller keeps
/// from batch to batch.
#[derive(Debug, Default)]
pub struct OtlpJsonEncoder {
    _private: (),
}

impl OtlpJsonEncoder {
    pub fn new() -> Self {
        OtlpJsonEncoder { _private: () }
    }

    /// Replaces the contents of `out` with one `ExportTraceServiceRequest` in
    /// OTLP/JSON holding `spans`, with no trailing newline. Allocates only
    /// when `out` must grow.
    pub fn encode(&mut self, resource: &ResourceInfo, spans: &[&SpanRecord], out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(b"{\"resourceSpans\":[{\"resource\":{");
        let mut attrs = List::new("attributes");
        let mut first = true;
        for (key, value) in &resource.attributes {
            attrs.item(out, &mut first);
            put_key_value(out, key, OtlpValue::from_resource(value));
        }
        attrs.close(out);
        out.push(b'}');
        // Empty, the list is a default value: left out, as proto3 JSON does.
        if !spans.is_empty() {
            out.extend_from_slice(b",\"scopeSpans\":[");
            for (n, leader) in scope_leaders(spans).enumerate() {
                let lead = spans[leader];
                if n > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"scope\":{");
                let (name, version) = scope_of(resource, lead);
                let mut first = true;
                if !name.is_empty() {
                    key(out, &mut first, "name");
                    put_string(out, name);
                }
                if !version.is_empty() {
                    key(out, &mut first, "version");
                    put_string(out, version);
                }
                out.extend_from_slice(b"},\"spans\":[");
                for (i, span) in spans[leader..]
                    .iter()
                    .filter(|s| same_scope(s, lead))
                    .enumerate()
                {
                    if i > 0 {
                        out.push(b',');
                    }
                    put_span(out, span);
                }
                out.extend_from_slice(b"]}");
            }
            out.push(b']');
        }
        out.extend_from_slice(b"}]}");
    }
}

fn put_span(out: &mut Vec<u8>, s: &SpanRecord) {
    out.push(b'{');
    let mut first = true;
    key(out, &mut first, "traceId");
    put_hex(out, &s.trace_id);
    key(out, &mut first, "spanId");
    put_hex(out, &s.span_id);
    let trace_state = s.text(s.tracestate);
    if !trace_state.is_empty() {
        key(out, &mut first, "traceState");
        put_string(out, trace_state);
    }
    if !s.is_root() {
        key(out, &mut first, "parentSpanId");
        put_hex(out, &s.parent_span_id);
    }
    key(out, &mut first, "flags");
    put_u64(out, span_flags(s) as u64);
    key(out, &mut first, "name");
    put_string(out, s.text(s.name));
    key(out, &mut first, "kind");
    put_u64(out, s.kind as u64);
    key(out, &mut first, "startTimeUnixNano");
    put_quoted_u64(out, s.start_unix_ns);
    key(out, &mut first, "endTimeUnixNano");
    put_quoted_u64(out, s.end_unix_ns);

    let mut attrs = List::new("attributes");
    for (k, v) in attributes_of(s, OWNER_SPAN).chain(mark_attributes(s)) {
        attrs.item(out, &mut first);
        put_key_value(out, k, v);
    }
    attrs.close(out);
    put_count(
        out,
        &mut first,
        "droppedAttributesCount",
        dropped_attributes(s, OWNER_SPAN),
    );

    let mut events = List::new("events");
    for (i, e) in s.events().iter().enumerate() {
        events.item(out, &mut first);
        out.push(b'{');
        let mut first = true;
        if e.time_unix_ns != 0 {
            key(out, &mut first, "timeUnixNano");
            put_quoted_u64(out, e.time_unix_ns);
        }
        let name = s.text(e.name);
        if !name.is_empty() {
            key(out, &mut first, "name");
            put_string(out, name);
        }
        // events() holds at most MAX_EVENTS, so the owner stays below the links'.
        let owner = OWNER_EVENT_BASE + i as u8;
        let mut attrs = List::new("attributes");
        for (k, v) in attributes_of(s, owner) {
            attrs.item(out, &mut first);
            put_key_value(out, k, v);
        }
        attrs.close(out);
        put_count(
            out,
            &mut first,
            "droppedAttributesCount",
            dropped_attributes(s, owner),
        );
        out.push(b'}');
    }
    events.close(out);
    put_count(
        out,
        &mut first,
        "droppedEventsCount",
        s.dropped_events as u32,
    );

    let mut links = List::new("links");
    for (i, l) in s.links().iter().enumerate() {
        links.item(out, &mut first);
        out.push(b'{');
        let mut first = true;
        key(out, &mut first, "traceId");
        put_hex(out, &l.trace_id);
        key(out, &mut first, "spanId");
        put_hex(out, &l.span_id);
        let trace_state = s.text(l.tracestate);
        if !trace_state.is_empty() {
            key(out, &mut first, "traceState");
            put_string(out, trace_state);
        }
        let owner = OWNER_LINK_BASE + i as u8;
        let mut attrs = List::new("attributes");
        for (k, v) in attributes_of(s, owner) {
            attrs.item(out, &mut first);
            put_key_value(out, k, v);
        }
        attrs.close(out);
        put_count(
            out,
            &mut first,
            "droppedAttributesCount",
            dropped_attributes(s, owner),
        );
        // Whether a linked context was remote is not recorded, so only the
        // W3C bits are sent and HAS_IS_REMOTE stays clear.
        put_count(out, &mut first, "flags", l.trace_flags as u32);
        out.push(b'}');
    }
    links.close(out);
    put_count(out, &mut first, "droppedLinksCount", s.dropped_links as u32);

    if has_status(s) {
        key(out, &mut first, "status");
        out.push(b'{');
        let mut first = true;
        let message = s.text(s.status_message);
        if !message.is_empty() {
            key(out, &mut first, "message");
            put_string(out, message);
        }
        put_count(out, &mut first, "code", s.status_code as u32);
        out.push(b'}');
    }
    out.push(b'}');
}

/// A repeated field that is left out when empty: its key and `[` are written
/// only when the first item arrives.
struct List {
    name: &'static str,
    open: bool,
}

impl List {
    fn new(name: &'static str) -> List {
        List { name, open: false }
    }

    /// Call before writing each item; `first` belongs to the enclosing object.
    fn item(&mut self, out: &mut Vec<u8>, first: &mut bool) {
        if self.open {
            out.push(b',');
        } else {
            key(out, first, self.name);
            out.push(b'[');
            self.open = true;
        }
    }

    fn close(self, out: &mut Vec<u8>) {
        if self.open {
            out.push(b']');
        }
    }
}

/// Writes `"name":`, preceded by a comma unless it is the object's first key.
/// Names are our own ASCII constants, so they need no escaping.
fn key(out: &mut Vec<u8>, first: &mut bool, name: &str) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// A uint32 field (counts, flags, enums), left out when 0 as proto3 JSON does.
fn put_count(out: &mut Vec<u8>, first: &mut bool, name: &str, v: u32) {
    if v != 0 {
        key(out, first, name);
        put_u64(out, v as u64);
    }
}

/// A `KeyValue`. The value is always written, even for 0, false or "": it is
/// a oneof, so being present is what says which type it has.
fn put_key_value(out: &mut Vec<u8>, k: &str, value: OtlpValue<'_>) {
    out.push(b'{');
    let mut first = true;
    if !k.is_empty() {
        key(out, &mut first, "key");
        put_string(out, k);
    }
    key(out, &mut first, "value");
    match value {
        OtlpValue::Str(s) => {
            out.extend_from_slice(b"{\"stringValue\":");
            put_string(out, s);
        }
        OtlpValue::Bool(b) => {
            out.extend_from_slice(b"{\"boolValue\":");
            out.extend_from_slice(if b { b"true" } else { b"false" });
        }
        OtlpValue::Int(i) => {
            out.extend_from_slice(b"{\"intValue\":");
            put_quoted_i64(out, i);
        }
        OtlpValue::Double(d) => {
            out.extend_from_slice(b"{\"doubleValue\":");
            put_double(out, d);
        }
    }
    out.extend_from_slice(b"}}");
}

fn put_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut hex = [0u8; 32];
    let hex = &mut hex[..bytes.len() * 2];
    write_hex(bytes, hex);
    out.push(b'"');
    out.extend_from_slice(hex);
    out.push(b'"');
}

/// A JSON string. Quote, backslash and control characters are escaped (the
/// latter as `\u00XX`); everything else, including non-ASCII, is copied as
/// the UTF-8 it already is.
fn put_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut plain_from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[plain_from..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]),
        }
        plain_from = i + 1;
    }
    out.extend_from_slice(&bytes[plain_from..]);
    out.push(b'"');
}

fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// 64-bit integers are strings in OTLP/JSON, because JavaScript numbers
/// cannot hold them exactly.
fn put_quoted_u64(out: &mut Vec<u8>, v: u64) {
    out.push(b'"');
    put_u64(out, v);
    out.push(b'"');
}

fn put_quoted_i64(out: &mut Vec<u8>, v: i64) {
    out.push(b'"');
    if v < 0 {
        out.push(b'-');
    }
    put_u64(out, v.unsigned_abs());
    out.push(b'"');
}

/// A double as a JSON number, or as the strings proto3 JSON uses for the
/// values JSON numbers cannot express.
fn put_double(out: &mut Vec<u8>, d: f64) {
    if d.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if d == f64::INFINITY {
        out.extend_from_slice(b"\"Infinity\"");
    } else if d == f64::NEG_INFINITY {
        out.extend_from_slice(b"\"-Infinity\"");
    } else if d == 0.0 && d.is_sign_negative() {
        // "-0" reads back as the integer 0 in many parsers (Python's json
        // among them); the fraction keeps the sign.
        out.extend_from_slice(b"-0.0");
    } else {
        // Both forms print the shortest digits that read back to the same
        // bits; the exponent form keeps 1e300 from becoming 301 digits.
        let magnitude = d.abs();
        let result = if magnitude == 0.0 || (1e-5..1e16).contains(&magnitude) {
            write!(out, "{d}")
        } else {
            write!(out, "{d:e}")
        };
        result.expect("writing to a Vec cannot fail");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(s: &str) -> String {
        let mut out = Vec::new();
        put_string(&mut out, s);
        String::from_utf8(out).expect("escaping keeps UTF-8")
    }

    fn double(d: f64) -> String {
        let mut out = Vec::new();
        put_double(&mut out, d);
        String::from_utf8(out).expect("ASCII")
    }

    #[test]
    fn strings_escape_quotes_backslashes_and_control_characters() {
        assert_eq!(string(""), r#""""#);
        assert_eq!(string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(
            string("\u{0}\u{1}\n\t\u{1f}"),
            r#""\u0000\u0001\u000a\u0009\u001f""#
        );
        // DEL and non-ASCII are legal as they are.
        assert_eq!(string("\u{7f}é€😀"), "\"\u{7f}é€😀\"");
        assert_eq!(string("x\"\"y"), r#""x\"\"y""#);
    }

    #[test]
    fn doubles_are_numbers_except_where_json_has_none() {
        assert_eq!(double(0.5), "0.5");
        assert_eq!(double(-1e300), "-1e300");
        assert_eq!(double(0.0), "0");
        assert_eq!(double(-0.0), "-0.0");
        assert_eq!(double(1.0), "1");
        assert_eq!(double(5e-324), "5e-324");
        assert_eq!(double(f64::NAN), r#""NaN""#);
        assert_eq!(double(f64::INFINITY), r#""Infinity""#);
        assert_eq!(double(f64::NEG_INFINITY), r#""-Infinity""#);
        for d in [0.1, 1e16, 123456.789, f64::MAX, f64::MIN_POSITIVE] {
            assert_eq!(double(d).parse::<f64>().ok(), Some(d), "{d}");
        }
    }

    #[test]
    fn int64_values_are_decimal_strings() {
        let mut out = Vec::new();
        put_quoted_i64(&mut out, i64::MIN);
        put_quoted_i64(&mut out, 0);
        put_quoted_i64(&mut out, i64::MAX);
        put_quoted_u64(&mut out, u64::MAX);
        assert_eq!(
            out,
            br#""-9223372036854775808""0""9223372036854775807""18446744073709551615""#
        );
    }

    #[test]
    fn key_values_keep_zero_values_and_drop_empty_keys() {
        let mut out = Vec::new();
        put_key_value(&mut out, "", OtlpValue::Bool(false));
        put_key_value(&mut out, "n", OtlpValue::Int(0));
        put_key_value(&mut out, "s", OtlpValue::Str(""));
        assert_eq!(
            String::from_utf8(out).expect("ASCII"),
            r#"{"value":{"boolValue":false}}{"key":"n","value":{"intValue":"0"}}{"key":"s","value":{"stringValue":""}}"#
        );
    }

    #[test]
    fn empty_lists_are_left_out() {
        let mut out = Vec::new();
        out.push(b'{');
        let mut first = true;
        List::new("none").close(&mut out);
        let mut list = List::new("some");
        list.item(&mut out, &mut first);
        out.push(b'1');
        list.item(&mut out, &mut first);
        out.push(b'2');
        list.close(&mut out);
        out.push(b'}');
        assert_eq!(out, br#"{"some":[1,2]}"#);
    }
}
