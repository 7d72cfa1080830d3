//! OTLP/protobuf encoding of a batch: one `ExportTraceServiceRequest` with one
//! `ResourceSpans` and one `ScopeSpans`. The writer is hand-made so the crate
//! carries no codegen and so a batch encodes straight into the caller's
//! buffer: a nested message reserves room for its length, writes its body,
//! then backpatches the length and slides the body down. After the first
//! batch has grown `out`, encoding allocates nothing.

use super::otlp_fields::{
    OtlpValue, attributes_of, dropped_attributes, has_status, mark_attributes, same_scope,
    scope_leaders, scope_of, span_flags,
};
use super::resource::ResourceInfo;
use crate::span::record::{OWNER_EVENT_BASE, OWNER_LINK_BASE, OWNER_SPAN, SpanRecord};

/// Field numbers from opentelemetry-proto: collector/trace/v1/trace_service.proto,
/// trace/v1/trace.proto, common/v1/common.proto, resource/v1/resource.proto.
pub(crate) mod field {
    pub(crate) const REQUEST_RESOURCE_SPANS: u32 = 1;

    pub(crate) const RESOURCE_SPANS_RESOURCE: u32 = 1;
    pub(crate) const RESOURCE_SPANS_SCOPE_SPANS: u32 = 2;
    pub(crate) const RESOURCE_ATTRIBUTES: u32 = 1;

    pub(crate) const SCOPE_SPANS_SCOPE: u32 = 1;
    pub(crate) const SCOPE_SPANS_SPANS: u32 = 2;
    pub(crate) const SCOPE_NAME: u32 = 1;
    pub(crate) const SCOPE_VERSION: u32 = 2;

    pub(crate) const SPAN_TRACE_ID: u32 = 1;
    pub(crate) const SPAN_SPAN_ID: u32 = 2;
    pub(crate) const SPAN_TRACE_STATE: u32 = 3;
    pub(crate) const SPAN_PARENT_SPAN_ID: u32 = 4;
    pub(crate) const SPAN_NAME: u32 = 5;
    pub(crate) const SPAN_KIND: u32 = 6;
    pub(crate) const SPAN_START_TIME: u32 = 7;
    pub(crate) const SPAN_END_TIME: u32 = 8;
    pub(crate) const SPAN_ATTRIBUTES: u32 = 9;
    pub(crate) const SPAN_DROPPED_ATTRIBUTES: u32 = 10;
    pub(crate) const SPAN_EVENTS: u32 = 11;
    pub(crate) const SPAN_DROPPED_EVENTS: u32 = 12;
    pub(crate) const SPAN_LINKS: u32 = 13;
    pub(crate) const SPAN_DROPPED_LINKS: u32 = 14;
    pub(crate) const SPAN_STATUS: u32 = 15;
    pub(crate) const SPAN_FLAGS: u32 = 16;

    pub(crate) const EVENT_TIME: u32 = 1;
    pub(crate) const EVENT_NAME: u32 = 2;
    pub(crate) const EVENT_ATTRIBUTES: u32 = 3;

    pub(crate) const LINK_TRACE_ID: u32 = 1;
    pub(crate) const LINK_SPAN_ID: u32 = 2;
    pub(crate) const LINK_TRACE_STATE: u32 = 3;
    pub(crate) const LINK_ATTRIBUTES: u32 = 4;
    pub(crate) const LINK_FLAGS: u32 = 6;

    pub(crate) const STATUS_MESSAGE: u32 = 2;
    pub(crate) const STATUS_CODE: u32 = 3;

    pub(crate) const KEY_VALUE_KEY: u32 = 1;
    pub(crate) const KEY_VALUE_VALUE: u32 = 2;

    pub(crate) const ANY_STRING: u32 = 1;
    pub(crate) const ANY_BOOL: u32 = 2;
    pub(crate) const ANY_INT: u32 = 3;
    pub(crate) const ANY_DOUBLE: u32 = 4;
}

const WIRE_VARINT: u32 = 0;
const WIRE_FIXED64: u32 = 1;
const WIRE_LEN: u32 = 2;
const WIRE_FIXED32: u32 = 5;

/// The longest varint (a u64): reserving this much means any body length fits
/// in the gap, so backpatching only ever slides the body down.
const MAX_VARINT: usize = 10;

/// Encodes span batches as OTLP/protobuf. It holds no buffers of its own:
/// everything is written straight into `out`, whose capacity the caller keeps
/// from batch to batch.
#[derive(Debug, Default)]
pub struct OtlpProtoEncoder {
    _private: (),
}

impl OtlpProtoEncoder {
    pub fn new() -> Self {
        OtlpProtoEncoder { _private: () }
    }

    /// Replaces the contents of `out` with one `ExportTraceServiceRequest`
    /// holding `spans`. Allocates only when `out` must grow.
    pub fn encode(&mut self, resource: &ResourceInfo, spans: &[&SpanRecord], out: &mut Vec<u8>) {
        out.clear();
        let resource_spans = begin_message(out, field::REQUEST_RESOURCE_SPANS);

        let res = begin_message(out, field::RESOURCE_SPANS_RESOURCE);
        for (key, value) in &resource.attributes {
            put_key_value(
                out,
                field::RESOURCE_ATTRIBUTES,
                key,
                OtlpValue::from_resource(value),
            );
        }
        end_message(out, res);

        for leader in scope_leaders(spans) {
            let first = spans[leader];
            let scope_spans = begin_message(out, field::RESOURCE_SPANS_SCOPE_SPANS);
            let scope = begin_message(out, field::SCOPE_SPANS_SCOPE);
            let (name, version) = scope_of(resource, first);
            put_string(out, field::SCOPE_NAME, name);
            put_string(out, field::SCOPE_VERSION, version);
            end_message(out, scope);
            for span in spans[leader..].iter().filter(|s| same_scope(s, first)) {
                put_span(out, span);
            }
            end_message(out, scope_spans);
        }

        end_message(out, resource_spans);
    }
}

fn put_span(out: &mut Vec<u8>, s: &SpanRecord) {
    let span = begin_message(out, field::SCOPE_SPANS_SPANS);
    put_bytes(out, field::SPAN_TRACE_ID, &s.trace_id);
    put_bytes(out, field::SPAN_SPAN_ID, &s.span_id);
    put_string(out, field::SPAN_TRACE_STATE, s.text(s.tracestate));
    if !s.is_root() {
        put_bytes(out, field::SPAN_PARENT_SPAN_ID, &s.parent_span_id);
    }
    put_fixed32(out, field::SPAN_FLAGS, span_flags(s));
    put_string(out, field::SPAN_NAME, s.text(s.name));
    put_varint_field(out, field::SPAN_KIND, s.kind as u64);
    put_fixed64(out, field::SPAN_START_TIME, s.start_unix_ns);
    put_fixed64(out, field::SPAN_END_TIME, s.end_unix_ns);
    for (key, value) in attributes_of(s, OWNER_SPAN).chain(mark_attributes(s)) {
        put_key_value(out, field::SPAN_ATTRIBUTES, key, value);
    }
    put_varint_field(
        out,
        field::SPAN_DROPPED_ATTRIBUTES,
        dropped_attributes(s, OWNER_SPAN) as u64,
    );

    for (i, e) in s.events().iter().enumerate() {
        let event = begin_message(out, field::SPAN_EVENTS);
        put_fixed64(out, field::EVENT_TIME, e.time_unix_ns);
        put_string(out, field::EVENT_NAME, s.text(e.name));
        // events() holds at most MAX_EVENTS, so the owner stays below the links'.
        let owner = OWNER_EVENT_BASE + i as u8;
        for (key, value) in attributes_of(s, owner) {
            put_key_value(out, field::EVENT_ATTRIBUTES, key, value);
        }
        end_message(out, event);
    }
    put_varint_field(out, field::SPAN_DROPPED_EVENTS, s.dropped_events as u64);

    for (i, l) in s.links().iter().enumerate() {
        let link = begin_message(out, field::SPAN_LINKS);
        put_bytes(out, field::LINK_TRACE_ID, &l.trace_id);
        put_bytes(out, field::LINK_SPAN_ID, &l.span_id);
        put_string(out, field::LINK_TRACE_STATE, s.text(l.tracestate));
        let owner = OWNER_LINK_BASE + i as u8;
        for (key, value) in attributes_of(s, owner) {
            put_key_value(out, field::LINK_ATTRIBUTES, key, value);
        }
        // Whether a linked context was remote is not recorded, so only the
        // W3C bits are sent and HAS_IS_REMOTE stays clear.
        put_fixed32(out, field::LINK_FLAGS, l.trace_flags as u32);
        end_message(out, link);
    }
    put_varint_field(out, field::SPAN_DROPPED_LINKS, s.dropped_links as u64);

    if has_status(s) {
        let status = begin_message(out, field::SPAN_STATUS);
        put_string(out, field::STATUS_MESSAGE, s.text(s.status_message));
        put_varint_field(out, field::STATUS_CODE, s.status_code as u64);
        end_message(out, status);
    }
    end_message(out, span);
}

/// A `KeyValue`. Its `AnyValue` is always written, even for 0, false or "":
/// the value is a oneof, so being present is what says which type it has.
fn put_key_value(out: &mut Vec<u8>, field_number: u32, key: &str, value: OtlpValue<'_>) {
    let kv = begin_message(out, field_number);
    put_string(out, field::KEY_VALUE_KEY, key);
    let any = begin_message(out, field::KEY_VALUE_VALUE);
    match value {
        OtlpValue::Str(s) => {
            put_tag(out, field::ANY_STRING, WIRE_LEN);
            put_varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        OtlpValue::Bool(b) => {
            put_tag(out, field::ANY_BOOL, WIRE_VARINT);
            put_varint(out, b as u64);
        }
        OtlpValue::Int(i) => {
            // int64 is the two's-complement bits as a varint (10 bytes when
            // negative), not zigzag.
            put_tag(out, field::ANY_INT, WIRE_VARINT);
            put_varint(out, i as u64);
        }
        OtlpValue::Double(d) => {
            put_tag(out, field::ANY_DOUBLE, WIRE_FIXED64);
            out.extend_from_slice(&d.to_bits().to_le_bytes());
        }
    }
    end_message(out, any);
    end_message(out, kv);
}

/// Writes `v` as a varint into `buf`; returns how many bytes it took.
fn encode_varint(mut v: u64, buf: &mut [u8; MAX_VARINT]) -> usize {
    let mut n = 0;
    while v >= 0x80 {
        buf[n] = v as u8 | 0x80;
        v >>= 7;
        n += 1;
    }
    buf[n] = v as u8;
    n + 1
}

fn put_varint(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; MAX_VARINT];
    let n = encode_varint(v, &mut buf);
    out.extend_from_slice(&buf[..n]);
}

fn put_tag(out: &mut Vec<u8>, field_number: u32, wire_type: u32) {
    put_varint(out, (field_number << 3 | wire_type) as u64);
}

/// A varint scalar field, left out when 0 as proto3 does.
fn put_varint_field(out: &mut Vec<u8>, field_number: u32, v: u64) {
    if v != 0 {
        put_tag(out, field_number, WIRE_VARINT);
        put_varint(out, v);
    }
}

/// A fixed64 field (times), left out when 0.
fn put_fixed64(out: &mut Vec<u8>, field_number: u32, v: u64) {
    if v != 0 {
        put_tag(out, field_number, WIRE_FIXED64);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// A fixed32 field (flags), left out when 0.
fn put_fixed32(out: &mut Vec<u8>, field_number: u32, v: u32) {
    if v != 0 {
        put_tag(out, field_number, WIRE_FIXED32);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// A bytes field, left out when empty.
fn put_bytes(out: &mut Vec<u8>, field_number: u32, b: &[u8]) {
    if !b.is_empty() {
        put_tag(out, field_number, WIRE_LEN);
        put_varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
}

fn put_string(out: &mut Vec<u8>, field_number: u32, s: &str) {
    put_bytes(out, field_number, s.as_bytes());
}

/// Starts a nested message: writes its tag and reserves room for its length.
/// Returns where the reservation begins, for `end_message`.
fn begin_message(out: &mut Vec<u8>, field_number: u32) -> usize {
    put_tag(out, field_number, WIRE_LEN);
    let mark = out.len();
    out.extend_from_slice(&[0; MAX_VARINT]);
    mark
}

/// Ends the message begun at `mark`: writes the body's length into the
/// reserved room and slides the body down over the unused part.
fn end_message(out: &mut Vec<u8>, mark: usize) {
    let body_start = mark + MAX_VARINT;
    let body_len = out.len() - body_start;
    let mut len = [0u8; MAX_VARINT];
    let n = encode_varint(body_len as u64, &mut len);
    out[mark..mark + n].copy_from_slice(&len[..n]);
    out.copy_within(body_start.., mark + n);
    out.truncate(mark + n + body_len);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        out
    }

    #[test]
    fn varints_at_their_boundaries() {
        assert_eq!(varint(0), [0x00]);
        assert_eq!(varint(1), [0x01]);
        assert_eq!(varint(127), [0x7f]);
        assert_eq!(varint(128), [0x80, 0x01]);
        assert_eq!(varint(300), [0xac, 0x02]);
        assert_eq!(varint(16_383), [0xff, 0x7f]);
        assert_eq!(varint(16_384), [0x80, 0x80, 0x01]);
        assert_eq!(varint(u32::MAX as u64), [0xff, 0xff, 0xff, 0xff, 0x0f]);
        let max = varint(u64::MAX);
        assert_eq!(max.len(), 10);
        assert_eq!(max[9], 0x01);
        assert!(max[..9].iter().all(|&b| b == 0xff));
    }

    #[test]
    fn negative_int64_is_ten_bytes_of_twos_complement() {
        assert_eq!(varint(-1i64 as u64), varint(u64::MAX));
        let min = varint(i64::MIN as u64);
        assert_eq!(
            min,
            [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]
        );
    }

    #[test]
    fn tags_combine_field_and_wire_type() {
        let mut out = Vec::new();
        put_tag(&mut out, 1, WIRE_LEN);
        put_tag(&mut out, 16, WIRE_FIXED32);
        assert_eq!(out, [0x0a, 0x85, 0x01]);
    }

    #[test]
    fn nested_lengths_are_backpatched_at_every_size() {
        for body_len in [0usize, 1, 127, 128, 16_383, 16_384, 70_000] {
            let mut out = vec![0xee];
            let m = begin_message(&mut out, 2);
            out.extend((0..body_len).map(|i| i as u8));
            end_message(&mut out, m);
            let mut want = vec![0xee, 0x12];
            want.extend(varint(body_len as u64));
            want.extend((0..body_len).map(|i| i as u8));
            assert_eq!(out, want, "body of {body_len}");
        }
    }

    #[test]
    fn messages_nest() {
        let mut out = Vec::new();
        let outer = begin_message(&mut out, 1);
        let inner = begin_message(&mut out, 2);
        put_string(&mut out, 1, "hi");
        end_message(&mut out, inner);
        put_varint_field(&mut out, 3, 0);
        put_varint_field(&mut out, 4, 5);
        end_message(&mut out, outer);
        assert_eq!(
            out,
            [0x0a, 0x08, 0x12, 0x04, 0x0a, 0x02, b'h', b'i', 0x20, 0x05]
        );
    }

    #[test]
    fn oneof_values_are_written_even_when_zero() {
        let mut out = Vec::new();
        put_key_value(&mut out, 9, "", OtlpValue::Int(0));
        // KeyValue{value: AnyValue{int_value: 0}}; the empty key is omitted.
        assert_eq!(out, [0x4a, 0x04, 0x12, 0x02, 0x18, 0x00]);
        out.clear();
        put_key_value(&mut out, 9, "k", OtlpValue::Double(0.5));
        assert_eq!(
            out,
            [
                0x4a, 0x0e, 0x0a, 0x01, b'k', 0x12, 0x09, 0x21, 0, 0, 0, 0, 0, 0, 0xe0, 0x3f
            ]
        );
    }
}
