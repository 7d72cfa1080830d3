//! OTLP protobuf encoding, by hand, straight from span records into one
//! reused buffer. Field numbers are those of opentelemetry-proto
//! (collector/trace/v1, trace/v1, common/v1, resource/v1); an independent
//! decoder (PyPI's opentelemetry-proto) checks them in tests/python.
//!
//! Nested messages are written body first: `open` leaves the tag, `close`
//! inserts the body's length before it (moving the body by a byte or two),
//! so no size pre-pass and no per-span allocation are needed.

use crate::span::record::*;

use super::resource::{AttrValue, ResourceInfo};

const WIRE_VARINT: u32 = 0;
const WIRE_FIXED64: u32 = 1;
const WIRE_LEN: u32 = 2;
const WIRE_FIXED32: u32 = 5;

/// OTLP SpanFlags: the W3C flags in the low byte, then whether the parent's
/// remoteness is known, and whether it is remote.
pub(crate) const FLAGS_HAS_IS_REMOTE: u32 = 0x100;
pub(crate) const FLAGS_IS_REMOTE: u32 = 0x200;

/// The protobuf writer primitives.
pub struct ProtoWriter<'a> {
    pub out: &'a mut Vec<u8>,
}

impl ProtoWriter<'_> {
    #[inline]
    pub fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    #[inline]
    fn tag(&mut self, field: u32, wire: u32) {
        self.varint((field << 3 | wire) as u64);
    }

    #[inline]
    pub fn uint(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.tag(field, WIRE_VARINT);
            self.varint(v);
        }
    }

    /// An int64 (two's complement as a 64-bit varint), written even when 0
    /// because inside AnyValue's oneof a zero is a value.
    #[inline]
    pub fn int64_always(&mut self, field: u32, v: i64) {
        self.tag(field, WIRE_VARINT);
        self.varint(v as u64);
    }

    #[inline]
    pub fn fixed64(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.tag(field, WIRE_FIXED64);
            self.out.extend_from_slice(&v.to_le_bytes());
        }
    }

    #[inline]
    pub fn fixed32(&mut self, field: u32, v: u32) {
        if v != 0 {
            self.tag(field, WIRE_FIXED32);
            self.out.extend_from_slice(&v.to_le_bytes());
        }
    }

    #[inline]
    pub fn bytes(&mut self, field: u32, b: &[u8]) {
        if !b.is_empty() {
            self.bytes_always(field, b);
        }
    }

    /// Written even when empty (a oneof member or a required-looking field).
    #[inline]
    pub fn bytes_always(&mut self, field: u32, b: &[u8]) {
        self.tag(field, WIRE_LEN);
        self.varint(b.len() as u64);
        self.out.extend_from_slice(b);
    }

    /// Starts a nested message; returns where its body starts.
    #[inline]
    pub fn open(&mut self, field: u32) -> usize {
        self.tag(field, WIRE_LEN);
        self.out.len()
    }

    /// Ends a nested message: puts its length in front of its body.
    #[inline]
    pub fn close(&mut self, start: usize) {
        let len = self.out.len() - start;
        let mut tmp = [0u8; 10];
        let mut n = 0;
        let mut v = len as u64;
        while v >= 0x80 {
            tmp[n] = v as u8 | 0x80;
            v >>= 7;
            n += 1;
        }
        tmp[n] = v as u8;
        n += 1;
        let old_len = self.out.len();
        self.out.resize(old_len + n, 0);
        self.out.copy_within(start..old_len, start + n);
        self.out[start..start + n].copy_from_slice(&tmp[..n]);
    }
}

#[derive(Default)]
pub struct OtlpProtoEncoder;

impl OtlpProtoEncoder {
    pub fn new() -> OtlpProtoEncoder {
        OtlpProtoEncoder
    }

    /// Replaces `out` with one ExportTraceServiceRequest holding `spans`.
    pub fn encode(&mut self, resource: &ResourceInfo, spans: &[&SpanRecord], out: &mut Vec<u8>) {
        out.clear();
        let mut w = ProtoWriter { out };
        let resource_spans = w.open(1); // ExportTraceServiceRequest.resource_spans
        {
            let res = w.open(1); // ResourceSpans.resource
            for (k, v) in &resource.attributes {
                let kv = w.open(1); // Resource.attributes
                w.bytes_always(1, k.as_bytes());
                let any = w.open(2);
                match v {
                    AttrValue::Str(s) => w.bytes_always(1, s.as_bytes()),
                    AttrValue::Bool(b) => w.int64_always(2, *b as i64),
                    AttrValue::Int(i) => w.int64_always(3, *i),
                    AttrValue::Double(d) => {
                        w.tag(4, WIRE_FIXED64);
                        w.out.extend_from_slice(&d.to_bits().to_le_bytes());
                    }
                }
                w.close(any);
                w.close(kv);
            }
            w.close(res);
            let scope_spans = w.open(2); // ResourceSpans.scope_spans
            let scope = w.open(1); // ScopeSpans.scope
            w.bytes(1, resource.scope_name.as_bytes());
            w.bytes(2, resource.scope_version.as_bytes());
            w.close(scope);
            for span in spans {
                let s = w.open(2); // ScopeSpans.spans
                write_span(&mut w, span);
                w.close(s);
            }
            w.close(scope_spans);
        }
        w.close(resource_spans);
    }
}

fn write_attribute(w: &mut ProtoWriter, field: u32, r: &SpanRecord, a: &AttributeRecord) {
    let kv = w.open(field);
    w.bytes_always(1, r.text(a.key).as_bytes());
    let any = w.open(2);
    match ValueKind::from_u8(a.value_kind) {
        Some(ValueKind::String) => w.bytes_always(1, r.text(a.text_value()).as_bytes()),
        Some(ValueKind::Bool) => w.int64_always(2, (a.value != 0) as i64),
        Some(ValueKind::Int) => w.int64_always(3, a.value as i64),
        Some(ValueKind::Double) => {
            w.tag(4, WIRE_FIXED64);
            w.out.extend_from_slice(&a.value.to_le_bytes());
        }
        None => {}
    }
    w.close(any);
    w.close(kv);
}

fn write_bool_attribute(w: &mut ProtoWriter, field: u32, key: &str, value: bool) {
    let kv = w.open(field);
    w.bytes_always(1, key.as_bytes());
    let any = w.open(2);
    w.int64_always(2, value as i64);
    w.close(any);
    w.close(kv);
}

fn write_int_attribute(w: &mut ProtoWriter, field: u32, key: &str, value: i64) {
    let kv = w.open(field);
    w.bytes_always(1, key.as_bytes());
    let any = w.open(2);
    w.int64_always(3, value);
    w.close(any);
    w.close(kv);
}

/// The OTLP flags field of a span.
pub fn span_flags(r: &SpanRecord) -> u32 {
    let mut flags = r.trace_flags as u32 | FLAGS_HAS_IS_REMOTE;
    if r.marks & MARK_PARENT_REMOTE != 0 {
        flags |= FLAGS_IS_REMOTE;
    }
    flags
}

fn write_span(w: &mut ProtoWriter, r: &SpanRecord) {
    w.bytes_always(1, &r.trace_id);
    w.bytes_always(2, &r.span_id);
    w.bytes(3, r.text(r.tracestate).as_bytes());
    if !r.is_root() {
        w.bytes(4, &r.parent_span_id);
    }
    w.bytes(5, r.text(r.name).as_bytes());
    w.uint(6, r.kind as u64);
    w.fixed64(7, r.start_unix_ns);
    w.fixed64(8, r.end_unix_ns);
    for a in r.attributes_of(OWNER_SPAN) {
        write_attribute(w, 9, r, a);
    }
    if r.marks & MARK_UNENDED != 0 {
        write_bool_attribute(w, 9, "spanguard.unended", true);
    }
    if r.marks & MARK_INTERRUPTED != 0 {
        write_bool_attribute(w, 9, "spanguard.interrupted", true);
        if r.signal != 0 {
            write_int_attribute(w, 9, "spanguard.signal", r.signal as i64);
        }
    }
    w.uint(10, r.dropped_attributes as u64);
    for (i, e) in r.events().iter().enumerate() {
        let ev = w.open(11);
        w.fixed64(1, e.time_unix_ns);
        w.bytes(2, r.text(e.name).as_bytes());
        for a in r.attributes_of(OWNER_EVENT_BASE + i as u8) {
            write_attribute(w, 3, r, a);
        }
        w.close(ev);
    }
    w.uint(12, r.dropped_events as u64);
    for (i, l) in r.links().iter().enumerate() {
        let link = w.open(13);
        w.bytes_always(1, &l.trace_id);
        w.bytes_always(2, &l.span_id);
        w.bytes(3, r.text(l.tracestate).as_bytes());
        for a in r.attributes_of(OWNER_LINK_BASE + i as u8) {
            write_attribute(w, 4, r, a);
        }
        w.fixed32(6, l.trace_flags as u32 | FLAGS_HAS_IS_REMOTE);
        w.close(link);
    }
    w.uint(14, r.dropped_links as u64);
    if r.status_code != STATUS_UNSET {
        let st = w.open(15);
        w.bytes(2, r.text(r.status_message).as_bytes());
        w.uint(3, r.status_code as u64);
        w.close(st);
    }
    w.fixed32(16, span_flags(r));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_at_their_boundaries() {
        for (v, want) in [
            (0u64, vec![0u8]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (300, vec![0xac, 0x02]),
            (
                u64::MAX,
                vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ] {
            let mut out = Vec::new();
            ProtoWriter { out: &mut out }.varint(v);
            assert_eq!(out, want, "{v}");
        }
    }

    #[test]
    fn nested_lengths_are_inserted_for_short_and_long_bodies() {
        for body_len in [0usize, 1, 127, 128, 20_000] {
            let mut out = Vec::new();
            let mut w = ProtoWriter { out: &mut out };
            let start = w.open(2);
            w.out.extend(std::iter::repeat_n(7u8, body_len));
            w.close(start);
            let mut want = vec![0x12u8];
            ProtoWriter { out: &mut want }.varint(body_len as u64);
            want.extend(std::iter::repeat_n(7u8, body_len));
            assert_eq!(out, want, "{body_len}");
        }
    }
}
