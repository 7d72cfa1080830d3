//! OTLP/JSON encoding of a batch, as the OTLP specification defines it on top
//! of proto3 JSON: trace and span ids are lowercase hex (not base64), enums
//! are integers, 64-bit integers are decimal strings, keys are lowerCamelCase
//! and default values are left out. Written straight into the caller's
//! buffer with no serde, so after the first batch it allocates nothing.

use std::io::Write;

use super::append::append;
use super::json_escape::put_escaped;
use super::otlp_fields::{
    KeyValue, OtlpValue, SpanBudget, Str, for_each_span_attribute, from_span, has_mark_attributes,
    has_status, in_tracer_scope, link_flags, mark_attributes, scope_attributes, scope_leaders,
    scope_members, scope_of, span_flags,
};
use super::resource::ResourceInfo;
use crate::span::ids::write_hex;
use crate::span::record::{Element, SpanView};

/// Encodes span batches as OTLP/JSON. It holds no buffers of its own:
/// everything is written straight into `out`, whose capacity the caller keeps
/// from batch to batch.
#[derive(Debug, Default)]
pub struct OtlpJsonEncoder {
    budget: SpanBudget,
}

impl OtlpJsonEncoder {
    pub fn new() -> Self {
        OtlpJsonEncoder::default()
    }

    /// The most bytes one encoded span may take: a span over it has its
    /// largest string and bytes values cut until it fits (see
    /// `OtlpProtoEncoder::set_span_budget`). None: no limit.
    pub fn set_span_budget(&mut self, bytes: Option<usize>) {
        self.budget.bytes = bytes;
    }

    /// Values cut to fit the span budget since the last call.
    pub fn take_cut_values(&mut self) -> u64 {
        std::mem::take(&mut self.budget.cut_values)
    }

    /// Replaces the contents of `out` with one `ExportTraceServiceRequest` in
    /// OTLP/JSON holding `spans`, with no trailing newline. Allocates only
    /// when `out` must grow.
    pub fn encode(&mut self, resource: &ResourceInfo, spans: &[SpanView], out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(b"{\"resourceSpans\":[{\"resource\":{");
        let mut attrs = List::new("attributes");
        let mut first = true;
        for (key, value) in &resource.attributes {
            attrs.item(out, &mut first);
            put_key_value(
                out,
                (Str::Plain(key), OtlpValue::from_resource(value)),
                usize::MAX,
            );
        }
        attrs.close(out);
        put_count(
            out,
            &mut first,
            "droppedAttributesCount",
            resource.dropped_attributes,
        );
        out.push(b'}');
        // Empty, the list is a default value: left out, as proto3 JSON does.
        if !spans.is_empty() {
            out.extend_from_slice(b",\"scopeSpans\":[");
            let one = in_tracer_scope(spans);
            for (n, leader) in scope_leaders(spans, one).enumerate() {
                let lead = &spans[leader];
                if n > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"scope\":{");
                let (name, version, schema_url) = scope_of(resource, lead);
                let mut first = true;
                if !name.is_empty() {
                    key(out, &mut first, "name");
                    put_str(out, name, usize::MAX);
                }
                if !version.is_empty() {
                    key(out, &mut first, "version");
                    put_str(out, version, usize::MAX);
                }
                let given = scope_attributes(resource, &(name, version, schema_url));
                if !given.is_empty() {
                    key(out, &mut first, "attributes");
                    out.push(b'[');
                    for (i, (k, v)) in given.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        put_key_value(
                            out,
                            (Str::Plain(k), OtlpValue::from_resource(v)),
                            usize::MAX,
                        );
                    }
                    out.push(b']');
                }
                out.extend_from_slice(b"},\"spans\":[");
                for (i, span) in scope_members(spans, leader, one).enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    self.budget.put(out, span, put_span);
                }
                out.push(b']');
                if !schema_url.is_empty() {
                    out.extend_from_slice(b",\"schemaUrl\":");
                    put_str(out, schema_url, usize::MAX);
                }
                out.push(b'}');
            }
            out.push(b']');
        }
        out.extend_from_slice(b"}]}");
    }
}

/// One span; string and bytes values are cut to `cap` bytes (the byte
/// budget's last resort).
fn put_span(out: &mut Vec<u8>, s: &SpanView, cap: usize) {
    let r = s.record;
    let rest = r.rest();
    out.push(b'{');
    let mut first = true;
    key(out, &mut first, "traceId");
    put_hex(out, &r.trace_id);
    key(out, &mut first, "spanId");
    put_hex(out, &r.span_id);
    let trace_state = Str::Span(s.text(rest.tracestate));
    if !trace_state.is_empty() {
        key(out, &mut first, "traceState");
        put_str(out, trace_state, usize::MAX);
    }
    if !r.is_root() {
        key(out, &mut first, "parentSpanId");
        put_hex(out, &r.parent_span_id);
    }
    key(out, &mut first, "flags");
    put_u64(out, span_flags(s) as u64);
    key(out, &mut first, "name");
    put_str(out, Str::Span(s.name()), usize::MAX);
    key(out, &mut first, "kind");
    put_u64(out, r.kind as u64);
    key(out, &mut first, "startTimeUnixNano");
    put_quoted_u64(out, r.start_unix_ns);
    key(out, &mut first, "endTimeUnixNano");
    put_quoted_u64(out, r.end_unix_ns);

    let mut attrs = List::new("attributes");
    // Two loops, not a chain: see otlp_proto's put_span.
    let dropped = for_each_span_attribute(s, |kv| {
        attrs.item(out, &mut first);
        put_key_value(out, kv, cap);
    });
    if has_mark_attributes(s) {
        for kv in mark_attributes(s) {
            attrs.item(out, &mut first);
            put_key_value(out, kv, cap);
        }
    }
    attrs.close(out);
    put_count(out, &mut first, "droppedAttributesCount", dropped);

    let mut events = List::new("events");
    for e in s.events() {
        events.item(out, &mut first);
        out.push(b'{');
        let mut first = true;
        if e.entry.time_unix_ns != 0 {
            key(out, &mut first, "timeUnixNano");
            put_quoted_u64(out, e.entry.time_unix_ns);
        }
        let name = Str::Span(e.name());
        if !name.is_empty() {
            key(out, &mut first, "name");
            put_str(out, name, usize::MAX);
        }
        let mut attrs = List::new("attributes");
        for kv in from_span(e.attributes()) {
            attrs.item(out, &mut first);
            put_key_value(out, kv, cap);
        }
        attrs.close(out);
        put_count(
            out,
            &mut first,
            "droppedAttributesCount",
            e.entry.dropped_attributes as u32,
        );
        out.push(b'}');
    }
    events.close(out);
    put_count(
        out,
        &mut first,
        "droppedEventsCount",
        rest.dropped_events as u32,
    );

    let mut links = List::new("links");
    for l in s.links() {
        links.item(out, &mut first);
        out.push(b'{');
        let mut first = true;
        key(out, &mut first, "traceId");
        put_hex(out, &l.entry.trace_id);
        key(out, &mut first, "spanId");
        put_hex(out, &l.entry.span_id);
        let trace_state = Str::Span(l.tracestate());
        if !trace_state.is_empty() {
            key(out, &mut first, "traceState");
            put_str(out, trace_state, usize::MAX);
        }
        let mut attrs = List::new("attributes");
        for kv in from_span(l.attributes()) {
            attrs.item(out, &mut first);
            put_key_value(out, kv, cap);
        }
        attrs.close(out);
        put_count(
            out,
            &mut first,
            "droppedAttributesCount",
            l.entry.dropped_attributes as u32,
        );
        put_count(out, &mut first, "flags", link_flags(&l.entry));
        out.push(b'}');
    }
    links.close(out);
    put_count(
        out,
        &mut first,
        "droppedLinksCount",
        rest.dropped_links as u32,
    );

    if has_status(s) {
        key(out, &mut first, "status");
        out.push(b'{');
        let mut first = true;
        let message = Str::Span(s.text(rest.status_message));
        if !message.is_empty() {
            key(out, &mut first, "message");
            put_str(out, message, cap);
        }
        put_count(out, &mut first, "code", r.status_code as u32);
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
    append(out, name.as_bytes());
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
#[inline(always)]
fn put_key_value(out: &mut Vec<u8>, (k, value): KeyValue<'_>, cap: usize) {
    out.push(b'{');
    let mut first = true;
    if !k.is_empty() {
        key(out, &mut first, "key");
        put_str(out, k, usize::MAX);
    }
    key(out, &mut first, "value");
    put_any_value(out, value, cap);
    out.push(b'}');
}

/// An `AnyValue` object.
#[inline(always)]
fn put_any_value(out: &mut Vec<u8>, value: OtlpValue<'_>, cap: usize) {
    match value {
        OtlpValue::Str(s) => {
            out.extend_from_slice(b"{\"stringValue\":");
            put_str(out, s, cap);
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
        OtlpValue::Bytes(b) => {
            // proto3 JSON: bytes are standard base64 with padding.
            out.extend_from_slice(b"{\"bytesValue\":\"");
            let mut b64 = Base64::default();
            let mut left = b.len().min(cap);
            b.for_each_piece(|p| {
                let n = p.len().min(left);
                b64.push(out, &p[..n]);
                left -= n;
            });
            b64.finish(out);
            out.push(b'"');
        }
        OtlpValue::Array(a) => put_array(out, a, cap),
        OtlpValue::List(elements) => put_list(out, elements, cap),
        OtlpValue::AnyValue(b) => {
            out.push(b'{');
            put_encoded_any_value(out, &b.contiguous());
        }
        OtlpValue::Encoded(b) => {
            out.push(b'{');
            put_encoded_any_value(out, b);
        }
    }
    out.push(b'}');
}

/// The members of the `AnyValue` object for an encoded `AnyValue` message
/// (well formed: checked when it was set, or read back from disk), as
/// OTLP/JSON writes the simple kinds: `kvlistValue` and `arrayValue`
/// objects, `bytesValue` in base64, `intValue` as a string. Nothing for
/// the empty value. Recurses once a level, and no deeper than any stored
/// value nests (`any_value::MAX_STORED_DEPTH`): an array or map past that,
/// which only a forged file could hold, is written as the empty value.
fn put_encoded_any_value(out: &mut Vec<u8>, buf: &[u8]) {
    put_encoded_any_value_at(out, buf, 1);
}

/// A well-formed encoded `AnyValue` as OTLP/JSON's `AnyValue` object: the
/// text a crash dump's or flight file's header keeps for a resource's
/// complex value (`resource::AttrValue::text`).
pub fn encoded_any_value_text(buf: &[u8]) -> String {
    let mut out = vec![b'{'];
    put_encoded_any_value(&mut out, buf);
    out.push(b'}');
    String::from_utf8_lossy(&out).into_owned()
}

/// `put_encoded_any_value` of a value at level `depth`.
fn put_encoded_any_value_at(out: &mut Vec<u8>, buf: &[u8], depth: usize) {
    use crate::span::any_value::{self as any, MAX_STORED_DEPTH, Wire};
    for (number, wire) in any::fields(buf).flatten() {
        match (number, wire) {
            (any::ANY_STRING, Wire::Len(s)) => {
                out.extend_from_slice(b"\"stringValue\":");
                put_str(out, Str::Arena(s), usize::MAX);
            }
            (any::ANY_BOOL, Wire::Varint(b)) => {
                out.extend_from_slice(b"\"boolValue\":");
                out.extend_from_slice(if b != 0 { b"true" } else { b"false" });
            }
            (any::ANY_INT, Wire::Varint(i)) => {
                out.extend_from_slice(b"\"intValue\":");
                put_quoted_i64(out, i as i64);
            }
            (any::ANY_DOUBLE, Wire::Fixed64(d)) => {
                out.extend_from_slice(b"\"doubleValue\":");
                put_double(out, f64::from_bits(d));
            }
            (any::ANY_BYTES, Wire::Len(b)) => {
                out.extend_from_slice(b"\"bytesValue\":\"");
                let mut b64 = Base64::default();
                b64.push(out, b);
                b64.finish(out);
                out.push(b'"');
            }
            (any::ANY_ARRAY | any::ANY_KVLIST, Wire::Len(_)) if depth >= MAX_STORED_DEPTH => {}
            (any::ANY_ARRAY | any::ANY_KVLIST, Wire::Len(list)) => {
                out.extend_from_slice(if number == any::ANY_ARRAY {
                    b"\"arrayValue\":{"
                } else {
                    b"\"kvlistValue\":{"
                });
                let mut first = true;
                let mut values = List::new("values");
                for (_, item) in any::fields(list).flatten() {
                    let Wire::Len(item) = item else { continue };
                    values.item(out, &mut first);
                    out.push(b'{');
                    if number == any::ANY_ARRAY {
                        put_encoded_any_value_at(out, item, depth + 1);
                    } else {
                        put_encoded_key_value(out, item, depth + 1);
                    }
                    out.push(b'}');
                }
                values.close(out);
                out.push(b'}');
            }
            _ => {}
        }
    }
}

/// The members of a `KeyValue` object for an encoded `KeyValue` (a map's
/// member), whose value is at level `depth`: its key, and its value
/// unless it has none.
fn put_encoded_key_value(out: &mut Vec<u8>, buf: &[u8], depth: usize) {
    use crate::span::any_value::{self as any, Wire};
    let (mut key, mut value) = (&[][..], None);
    for (number, wire) in any::fields(buf).flatten() {
        match (number, wire) {
            (any::KEY_VALUE_KEY, Wire::Len(k)) => key = k,
            (any::KEY_VALUE_VALUE, Wire::Len(v)) => value = Some(v),
            _ => {}
        }
    }
    out.extend_from_slice(b"\"key\":");
    put_str(out, Str::Arena(key), usize::MAX);
    if let Some(v) = value {
        out.extend_from_slice(b",\"value\":{");
        put_encoded_any_value_at(out, v, depth);
        out.push(b'}');
    }
}

/// A resource's or scope's `arrayValue` (out of line, as `put_array`).
#[inline(never)]
fn put_list(out: &mut Vec<u8>, elements: &[crate::export::resource::AttrValue], cap: usize) {
    out.extend_from_slice(b"{\"arrayValue\":{");
    let mut first = true;
    let mut values = List::new("values");
    for e in elements {
        values.item(out, &mut first);
        put_any_value(out, OtlpValue::from_resource(e), cap);
    }
    values.close(out);
    out.push(b'}');
}

/// An `arrayValue` (out of line: `put_any_value` is inlined, and arrays
/// recurse into it).
#[inline(never)]
fn put_array(out: &mut Vec<u8>, a: crate::span::record::ArrayRef<'_>, cap: usize) {
    out.extend_from_slice(b"{\"arrayValue\":{");
    let mut first = true;
    let mut values = List::new("values");
    for e in a.elements() {
        values.item(out, &mut first);
        let v = match e {
            Element::Str(t) => OtlpValue::Str(Str::Span(t)),
            Element::Int(i) => OtlpValue::Int(i),
            Element::Double(d) => OtlpValue::Double(d),
            Element::Bool(b) => OtlpValue::Bool(b),
        };
        put_any_value(out, v, cap);
    }
    values.close(out);
    out.push(b'}');
}

/// Base64 written as pieces arrive, carrying up to two bytes between them.
#[derive(Default)]
struct Base64 {
    carry: [u8; 2],
    carried: usize,
}

impl Base64 {
    const ALPHABET: &'static [u8; 64] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    fn group(out: &mut Vec<u8>, b: [u8; 3], n: usize) {
        let w = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        let a = Self::ALPHABET;
        out.push(a[(w >> 18) as usize & 63]);
        out.push(a[(w >> 12) as usize & 63]);
        out.push(if n > 1 {
            a[(w >> 6) as usize & 63]
        } else {
            b'='
        });
        out.push(if n > 2 { a[w as usize & 63] } else { b'=' });
    }

    fn push(&mut self, out: &mut Vec<u8>, mut p: &[u8]) {
        while self.carried > 0 && self.carried < 3 && !p.is_empty() {
            if self.carried == 2 {
                Self::group(out, [self.carry[0], self.carry[1], p[0]], 3);
                self.carried = 0;
            } else {
                self.carry[1] = p[0];
                self.carried = 2;
            }
            p = &p[1..];
        }
        let whole = p.len() / 3 * 3;
        for g in p[..whole].chunks_exact(3) {
            Self::group(out, [g[0], g[1], g[2]], 3);
        }
        for &b in &p[whole..] {
            self.carry[self.carried] = b;
            self.carried += 1;
        }
    }

    fn finish(self, out: &mut Vec<u8>) {
        match self.carried {
            1 => Self::group(out, [self.carry[0], 0, 0], 1),
            2 => Self::group(out, [self.carry[0], self.carry[1], 0], 2),
            _ => {}
        }
    }
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
#[cfg(test)]
fn put_string(out: &mut Vec<u8>, s: &str) {
    put_str(out, Str::Plain(s), usize::MAX);
}

/// `put_string` for text in pieces, cut to `cap` bytes. Escaping looks at
/// single ASCII bytes, so a piece may end inside a character.
#[inline(always)]
fn put_str(out: &mut Vec<u8>, s: Str<'_>, cap: usize) {
    out.push(b'"');
    s.for_each_piece(cap, |bytes| put_escaped(out, bytes));
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
    append(out, &digits[i..]);
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

    /// A stored complex value read back from a forged file (a flight
    /// recorder file, a dump) nested 100,000 deep is written no deeper
    /// than any stored value nests, the rest as the empty value: no
    /// recursion without end on the exporter's stack. As deep as stored
    /// values go, it is written whole.
    #[test]
    fn a_forged_value_nested_without_end_is_written_to_the_stored_depth_only() {
        use crate::span::any_value::tests::{deep_arrays, int};
        use crate::span::any_value::{MAX_DEPTH_LIMIT, MAX_STORED_DEPTH};
        let mut out = Vec::new();
        put_encoded_any_value(&mut out, &deep_arrays(100_000, &int(1)));
        let text = String::from_utf8(out).expect("UTF-8");
        assert_eq!(text.matches("arrayValue").count(), MAX_DEPTH_LIMIT as usize);
        assert!(!text.contains("intValue"));
        let mut out = Vec::new();
        put_encoded_any_value(&mut out, &deep_arrays(MAX_STORED_DEPTH - 1, &int(1)));
        let text = String::from_utf8(out).expect("UTF-8");
        assert_eq!(text.matches("arrayValue").count(), MAX_DEPTH_LIMIT as usize);
        assert!(text.contains("{\"intValue\":\"1\"}"));
    }

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
        put_key_value(
            &mut out,
            (Str::Plain(""), OtlpValue::Bool(false)),
            usize::MAX,
        );
        put_key_value(&mut out, (Str::Plain("n"), OtlpValue::Int(0)), usize::MAX);
        put_key_value(
            &mut out,
            (Str::Plain("s"), OtlpValue::Str(Str::Plain(""))),
            usize::MAX,
        );
        assert_eq!(
            String::from_utf8(out).expect("ASCII"),
            r#"{"value":{"boolValue":false}}{"key":"n","value":{"intValue":"0"}}{"key":"s","value":{"stringValue":""}}"#
        );
    }

    #[test]
    fn a_span_over_the_budget_is_cut_to_fit_and_stays_json() {
        use crate::buffer::payload_pool::PayloadPool;
        use crate::span::limits::SpanLimits;
        use crate::span::record::{SpanRecord, ValueInput};
        let pool = PayloadPool::with_mib(4).expect("pool");
        // SAFETY: all-zero bytes are an empty record.
        let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
        r.trace_id = [1; 16];
        r.span_id = [2; 8];
        let prompt = "\"q\" ü ".repeat(20_000);
        r.set_attribute(
            b"gen_ai.prompt",
            &ValueInput::Str(prompt.as_bytes()),
            &SpanLimits::default(),
            &pool,
        )
        .expect("set");
        let view = SpanView::new(&r, &pool);
        let resource = ResourceInfo::new("budget", &[]);
        let mut enc = OtlpJsonEncoder::new();
        enc.set_span_budget(Some(50_000));
        let mut out = Vec::new();
        enc.encode(&resource, &[view, view], &mut out);
        assert_eq!(enc.take_cut_values(), 2);
        let text = std::str::from_utf8(&out).expect("UTF-8: cut on a character boundary");
        assert!(text.len() < 2 * 50_000 + 600, "{}", text.len());
        let kept = text
            .split("{\"key\":\"gen_ai.prompt\",\"value\":{\"stringValue\":\"")
            .nth(1)
            .and_then(|rest| rest.split("\"}}").next())
            .expect("the prompt's value")
            .replace("\\\"", "\"");
        assert!(prompt.starts_with(&kept) && kept.len() > 10_000);
    }

    #[test]
    fn base64_across_pieces_matches_base64_of_the_whole() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for split in [0usize, 1, 2, 3, 4, 5, 500, 998, 999, 1000] {
            for n in [0usize, 1, 2, 3, 7, 1000] {
                let bytes = &data[..n];
                let (a, b) = bytes.split_at(split.min(n));
                let mut pieces = Vec::new();
                let mut b64 = Base64::default();
                b64.push(&mut pieces, a);
                b64.push(&mut pieces, b);
                b64.finish(&mut pieces);
                let mut whole = Vec::new();
                let mut one = Base64::default();
                one.push(&mut whole, bytes);
                one.finish(&mut whole);
                assert_eq!(pieces, whole, "{n} split at {split}");
                assert_eq!(whole.len(), n.div_ceil(3) * 4);
            }
        }
        let mut out = Vec::new();
        let mut b64 = Base64::default();
        b64.push(&mut out, b"spanguard");
        b64.push(&mut out, b"!");
        b64.finish(&mut out);
        assert_eq!(out, b"c3Bhbmd1YXJkIQ==");
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
