//! OTLP/protobuf encoding of a batch: one `ExportTraceServiceRequest` with one
//! `ResourceSpans` and one `ScopeSpans`. The writer is hand-made so the crate
//! carries no codegen and so a batch encodes straight into the caller's
//! buffer: a nested message reserves room for its length, writes its body,
//! then backpatches the length and slides the body down. After the first
//! batch has grown `out`, encoding allocates nothing.

use super::append::append;
use super::otlp_fields::{
    KeyValue, OtlpValue, SpanBudget, Str, for_each_of_span_attributes_small_first, from_span,
    has_mark_attributes, has_status, in_tracer_scope, link_flags, mark_attributes,
    scope_attributes, scope_leaders, scope_members, scope_of, span_flags,
};
use super::resource::ResourceInfo;
use crate::span::record::{Element, SmallValue, SpanView};
use crate::span::short_copy::copy_short;

/// Field numbers from opentelemetry-proto: collector/trace/v1/trace_service.proto,
/// trace/v1/trace.proto, common/v1/common.proto, resource/v1/resource.proto.
pub(crate) mod field {
    pub(crate) const REQUEST_RESOURCE_SPANS: u32 = 1;

    pub(crate) const RESOURCE_SPANS_RESOURCE: u32 = 1;
    pub(crate) const RESOURCE_SPANS_SCOPE_SPANS: u32 = 2;
    pub(crate) const RESOURCE_ATTRIBUTES: u32 = 1;
    pub(crate) const RESOURCE_DROPPED_ATTRIBUTES: u32 = 2;

    pub(crate) const SCOPE_SPANS_SCOPE: u32 = 1;
    pub(crate) const SCOPE_SPANS_SPANS: u32 = 2;
    pub(crate) const SCOPE_SPANS_SCHEMA_URL: u32 = 3;
    pub(crate) const SCOPE_NAME: u32 = 1;
    pub(crate) const SCOPE_VERSION: u32 = 2;
    pub(crate) const SCOPE_ATTRIBUTES: u32 = 3;

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
    pub(crate) const ANY_ARRAY: u32 = 5;
    pub(crate) const ANY_BYTES: u32 = 7;

    pub(crate) const ARRAY_VALUES: u32 = 1;

    pub(crate) const EVENT_DROPPED_ATTRIBUTES: u32 = 4;
    pub(crate) const LINK_DROPPED_ATTRIBUTES: u32 = 5;
}

const WIRE_VARINT: u32 = 0;
const WIRE_FIXED64: u32 = 1;
const WIRE_LEN: u32 = 2;
const WIRE_FIXED32: u32 = 5;

/// The longest varint (a u64).
const MAX_VARINT: usize = 10;

/// Encodes span batches as OTLP/protobuf. It holds no buffers of its own:
/// everything is written straight into `out`, whose capacity the caller keeps
/// from batch to batch.
#[derive(Debug)]
pub struct OtlpProtoEncoder {
    budget: SpanBudget,
    /// Bytes reserved for the length of the two messages that hold a
    /// whole request (ResourceSpans, ScopeSpans): what the last request's
    /// length took. A fixed 4 (enough for 256 MiB) moved both bodies of
    /// every request a byte down: 56 KB each for 512 small spans, 14% of
    /// the encoder's instructions. Requests are much alike from batch to
    /// batch, so the last one's is nearly always right.
    whole_reserved: usize,
}

impl Default for OtlpProtoEncoder {
    fn default() -> Self {
        OtlpProtoEncoder {
            budget: SpanBudget::default(),
            // Under 2 MiB, as every request under the default 1 MB
            // request limit is.
            whole_reserved: 3,
        }
    }
}

impl OtlpProtoEncoder {
    pub fn new() -> Self {
        OtlpProtoEncoder::default()
    }

    /// The most bytes one encoded span may take (the request size limit,
    /// less the request's own framing, is the caller's to work out): a
    /// span over it has its largest string and bytes values cut, on a
    /// character boundary, until it fits. None: no limit.
    pub fn set_span_budget(&mut self, bytes: Option<usize>) {
        self.budget.bytes = bytes;
    }

    /// Values cut to fit the span budget since the last call (to count as
    /// truncated).
    pub fn take_cut_values(&mut self) -> u64 {
        std::mem::take(&mut self.budget.cut_values)
    }

    /// Replaces the contents of `out` with one `ExportTraceServiceRequest`
    /// holding `spans`. Allocates only when `out` must grow.
    pub fn encode(&mut self, resource: &ResourceInfo, spans: &[SpanView], out: &mut Vec<u8>) {
        out.clear();
        let whole = self.whole_reserved;
        let resource_spans = begin_message_reserving(out, field::REQUEST_RESOURCE_SPANS, whole);

        let res = begin_message_reserving(out, field::RESOURCE_SPANS_RESOURCE, MEDIUM);
        for (key, value) in &resource.attributes {
            put_key_value(
                out,
                field::RESOURCE_ATTRIBUTES,
                &(Str::Plain(key), OtlpValue::from_resource(value)),
                usize::MAX,
            );
        }
        put_varint_field(
            out,
            field::RESOURCE_DROPPED_ATTRIBUTES,
            resource.dropped_attributes as u64,
        );
        end_message(out, res);

        let one = in_tracer_scope(spans);
        for leader in scope_leaders(spans, one) {
            let first = &spans[leader];
            let scope_spans =
                begin_message_reserving(out, field::RESOURCE_SPANS_SCOPE_SPANS, whole);
            let scope = begin_message(out, field::SCOPE_SPANS_SCOPE);
            let named = scope_of(resource, first);
            put_str(out, field::SCOPE_NAME, &named.0, usize::MAX);
            put_str(out, field::SCOPE_VERSION, &named.1, usize::MAX);
            for (key, value) in scope_attributes(resource, &named) {
                put_key_value(
                    out,
                    field::SCOPE_ATTRIBUTES,
                    &(Str::Plain(key), OtlpValue::from_resource(value)),
                    usize::MAX,
                );
            }
            end_message(out, scope);
            let schema_url = named.2;
            for span in scope_members(spans, leader, one) {
                self.budget.put(out, span, put_span);
            }
            put_str(out, field::SCOPE_SPANS_SCHEMA_URL, &schema_url, usize::MAX);
            end_message(out, scope_spans);
        }

        end_message(out, resource_spans);
        // Learned only from requests with spans: `RequestEncoder` encodes a
        // request of none before each part (to measure the resource's
        // framing), and learning its one byte made the part that follows
        // move both of its whole bodies (hundreds of KB each) to make room
        // for their lengths: 54 instructions a span on the exporter.
        if !spans.is_empty() {
            self.whole_reserved = varint_len(out.len() as u64);
        }
    }
}

/// One span; string and bytes values are cut to `cap` bytes (the byte
/// budget's last resort, see `fit_span`). Inlined into `encode`'s loop
/// over the spans (`fit_span` calls an out-of-line copy): as a call, each
/// span paid its entry and exit, six registers saved and restored, and
/// the view's fields spilled to the stack again, about 30 instructions
/// on the exporter (callgrind).
#[inline(always)]
fn put_span(out: &mut Vec<u8>, s: &SpanView, cap: usize) {
    let r = s.record;
    // Room for PRE_RESERVED_ATTRIBUTES attributes at their longest small
    // size, reserved with the head (a constant: counted from the span's
    // attributes, the count's multiply took what it saved): a span with
    // no more attributes than that (nearly every span) then writes each
    // small one with no capacity check of its own.
    // Counted from the walk that writes them, not read again from the
    // record: the room below is written unchecked.
    let records = s.attribute_records();
    let attributes = records.most();
    const ROOM: usize = PRE_RESERVED_ATTRIBUTES * SMALL_KEY_VALUE_MAX;
    let span = match put_small_span_head(out, s, ROOM) {
        Some(span) => span,
        None => {
            let span = begin_message_reserving(out, field::SCOPE_SPANS_SPANS, MEDIUM);
            put_span_head(out, s);
            out.reserve(ROOM);
            span
        }
    };
    // Two loops, not a chain: a chained iterator's step did not inline and
    // cost an eighth of encoding a small span.
    let dropped = if attributes <= PRE_RESERVED_ATTRIBUTES {
        for_each_of_span_attributes_small_first(
            s,
            records,
            out,
            #[inline(always)]
            |out, key, value| {
                put_small_key_value_bytes::<true>(out, field::SPAN_ATTRIBUTES, key, value, cap)
            },
            |out, kv| {
                put_key_value(out, field::SPAN_ATTRIBUTES, &kv, cap);
                // The room the small attributes after it count on.
                out.reserve(ROOM);
            },
        )
    } else {
        for_each_of_span_attributes_small_first(
            s,
            records,
            out,
            #[inline(always)]
            |out, key, value| {
                put_small_key_value_bytes::<false>(out, field::SPAN_ATTRIBUTES, key, value, cap)
            },
            |out, kv| put_key_value(out, field::SPAN_ATTRIBUTES, &kv, cap),
        )
    };
    if has_mark_attributes(s) {
        for kv in mark_attributes(s) {
            put_key_value(out, field::SPAN_ATTRIBUTES, &kv, cap);
        }
    }
    put_varint_field(out, field::SPAN_DROPPED_ATTRIBUTES, dropped as u64);
    // What follows writes nothing for a span with no event, link or status
    // that wrote no rest (its drop counts and status message are there):
    // nearly every span, which paid 25 instructions on the exporter to
    // find that out field by field (callgrind).
    if !r.wrote_rest() && r.event_count == 0 && r.link_count == 0 && r.status_code == 0 {
        end_message(out, span);
        return;
    }
    // Chosen only here: chosen at the top (its line or the clear one), the
    // choice was kept on the stack across the attributes, 4 instructions
    // a span for a value nearly every span never uses.
    let rest = r.rest();

    for e in s.events() {
        let event = begin_message_reserving(out, field::SPAN_EVENTS, MEDIUM);
        put_fixed64(out, field::EVENT_TIME, e.entry.time_unix_ns);
        put_str(out, field::EVENT_NAME, &Str::Span(e.name()), usize::MAX);
        for kv in from_span(e.attributes()) {
            put_key_value(out, field::EVENT_ATTRIBUTES, &kv, cap);
        }
        put_varint_field(
            out,
            field::EVENT_DROPPED_ATTRIBUTES,
            e.entry.dropped_attributes as u64,
        );
        end_message(out, event);
    }
    put_varint_field(out, field::SPAN_DROPPED_EVENTS, rest.dropped_events as u64);

    for l in s.links() {
        let link = begin_message_reserving(out, field::SPAN_LINKS, MEDIUM);
        put_bytes(out, field::LINK_TRACE_ID, &l.entry.trace_id);
        put_bytes(out, field::LINK_SPAN_ID, &l.entry.span_id);
        put_str(
            out,
            field::LINK_TRACE_STATE,
            &Str::Span(l.tracestate()),
            usize::MAX,
        );
        for kv in from_span(l.attributes()) {
            put_key_value(out, field::LINK_ATTRIBUTES, &kv, cap);
        }
        put_varint_field(
            out,
            field::LINK_DROPPED_ATTRIBUTES,
            l.entry.dropped_attributes as u64,
        );
        put_fixed32(out, field::LINK_FLAGS, link_flags(&l.entry));
        end_message(out, link);
    }
    put_varint_field(out, field::SPAN_DROPPED_LINKS, rest.dropped_links as u64);

    if has_status(s) {
        let status = begin_message(out, field::SPAN_STATUS);
        put_str(
            out,
            field::STATUS_MESSAGE,
            &Str::Span(s.text(rest.status_message)),
            cap,
        );
        put_varint_field(out, field::STATUS_CODE, r.status_code as u64);
        end_message(out, status);
    }
    end_message(out, span);
}

/// The span's fields before its attributes: ids, tracestate, parent,
/// flags, name, kind and times (out of line: rare next to
/// `put_small_span_head`).
#[inline(never)]
fn put_span_head(out: &mut Vec<u8>, s: &SpanView) {
    let r = s.record;
    put_bytes(out, field::SPAN_TRACE_ID, &r.trace_id);
    put_bytes(out, field::SPAN_SPAN_ID, &r.span_id);
    put_str(
        out,
        field::SPAN_TRACE_STATE,
        &Str::Span(s.text(r.rest().tracestate)),
        usize::MAX,
    );
    if !r.is_root() {
        put_bytes(out, field::SPAN_PARENT_SPAN_ID, &r.parent_span_id);
    }
    put_fixed32(out, field::SPAN_FLAGS, span_flags(s));
    put_str(out, field::SPAN_NAME, &Str::Span(s.name()), usize::MAX);
    put_varint_field(out, field::SPAN_KIND, r.kind as u64);
    put_fixed64(out, field::SPAN_START_TIME, r.start_unix_ns);
    put_fixed64(out, field::SPAN_END_TIME, r.end_unix_ns);
}

/// The span's tag and room for its length, then `put_span_head`, after
/// one reservation, for a span whose name lies whole in its record's
/// arena and that has no tracestate (nearly every span): each field
/// through its own capacity check and length update was a fifth of
/// `put_span`'s instructions on a small span (callgrind), and the span's
/// own tag and length room were two more reservations. The same bytes as
/// `begin_message_reserving(.., MEDIUM)` and `put_span_head`; None,
/// writing nothing, for any other span.
///
/// `room` more bytes are reserved with it, for what follows the head.
#[inline(always)]
fn put_small_span_head(out: &mut Vec<u8>, s: &SpanView, room: usize) -> Option<Mark> {
    let r = s.record;
    // The rest is read only when written (nearly never): `rest()`'s choice
    // of line, then the read, cost 5 instructions a span.
    if r.wrote_rest() && r.rest().tracestate.len != 0 {
        return None;
    }
    let name = s.name().in_arena()?;
    // The span's tag (field 2 of ScopeSpans: one byte) and MEDIUM bytes
    // of room for its length.
    const SPAN: usize = 1 + MEDIUM;
    // Every tag below is one byte but the flags' (field 16: two), every
    // length one byte but the name's (a varint).
    const IDS: usize = (2 + 16) + (2 + 8) + (2 + 8);
    const SCALARS: usize = (2 + 4) + (1 + MAX_VARINT) + 2 * (1 + 8);
    out.reserve(SPAN + IDS + SCALARS + 1 + MAX_VARINT + name.len() + room);
    let flags = span_flags(s);
    let span = Mark {
        at: out.len() + 1,
        reserved: MEDIUM,
    };
    // SAFETY: the reservation above covers every field written below at
    // its longest; set_len then covers only bytes written.
    unsafe {
        let mut w = Writer::at_end(out);
        w.bytes(&[(field::SCOPE_SPANS_SPANS << 3 | WIRE_LEN) as u8, 0, 0]);
        w.bytes(&[(field::SPAN_TRACE_ID << 3 | WIRE_LEN) as u8, 16]);
        w.bytes(&r.trace_id);
        w.bytes(&[(field::SPAN_SPAN_ID << 3 | WIRE_LEN) as u8, 8]);
        w.bytes(&r.span_id);
        if !r.is_root() {
            w.bytes(&[(field::SPAN_PARENT_SPAN_ID << 3 | WIRE_LEN) as u8, 8]);
            w.bytes(&r.parent_span_id);
        }
        if flags != 0 {
            // The tag of field 16 as a varint: 0x85 0x01.
            const FLAGS_TAG: u32 = field::SPAN_FLAGS << 3 | WIRE_FIXED32;
            w.bytes(&[FLAGS_TAG as u8 | 0x80, (FLAGS_TAG >> 7) as u8]);
            w.bytes(&flags.to_le_bytes());
        }
        if !name.is_empty() {
            w.bytes(&[(field::SPAN_NAME << 3 | WIRE_LEN) as u8]);
            w.varint(name.len() as u64);
            w.bytes(name);
        }
        if r.kind != 0 {
            w.bytes(&[(field::SPAN_KIND << 3 | WIRE_VARINT) as u8]);
            w.varint(r.kind as u64);
        }
        for (number, time) in [
            (field::SPAN_START_TIME, r.start_unix_ns),
            (field::SPAN_END_TIME, r.end_unix_ns),
        ] {
            if time != 0 {
                w.bytes(&[(number << 3 | WIRE_FIXED64) as u8]);
                w.bytes(&time.to_le_bytes());
            }
        }
        w.finish(out);
    }
    Some(span)
}

/// A `KeyValue`. Its `AnyValue` is always written, even for 0, false or "":
/// the value is a oneof, so being present is what says which type it has.
#[inline(always)]
fn put_key_value(out: &mut Vec<u8>, field_number: u32, kv: &KeyValue<'_>, cap: usize) {
    if !put_small_key_value(out, field_number, &kv.0, &kv.1, cap) {
        put_any_key_value(out, field_number, kv, cap);
    }
}

/// `put_key_value` for any key and value (out of line: rare next to
/// `put_small_key_value`).
#[inline(never)]
fn put_any_key_value(
    out: &mut Vec<u8>,
    field_number: u32,
    (key, value): &KeyValue<'_>,
    cap: usize,
) {
    let (kv_room, any_room) = match value {
        OtlpValue::Str(s) => length_rooms(key, s.cut_len(cap)),
        OtlpValue::Bytes(b) => length_rooms(key, b.len().min(cap)),
        OtlpValue::AnyValue(b) => length_rooms(key, b.len()),
        OtlpValue::Encoded(b) => length_rooms(key, b.len()),
        _ => (SMALL, SMALL),
    };
    let kv = begin_message_reserving(out, field_number, kv_room);
    put_str(out, field::KEY_VALUE_KEY, key, usize::MAX);
    let any = begin_message_reserving(out, field::KEY_VALUE_VALUE, any_room);
    put_any_value(out, value, cap);
    end_message(out, any);
    end_message(out, kv);
}

/// A key-value whose whole encoding is under 128 bytes (nearly every
/// attribute: a short key and a scalar or short string), written with one
/// reservation: both lengths are known before writing and take one byte
/// each, so there is no room to reserve and fill in afterwards. The same
/// bytes as the general path below, which each field's capacity check and
/// each message's length fix-up made about a sixth of the exporter's
/// instructions a small span (callgrind). False, writing nothing, for
/// anything else.
#[inline(always)]
fn put_small_key_value(
    out: &mut Vec<u8>,
    field_number: u32,
    key: &Str<'_>,
    value: &OtlpValue<'_>,
    cap: usize,
) -> bool {
    let Some(key) = key.contiguous() else {
        return false;
    };
    let value = match value {
        OtlpValue::Str(v) => match v.contiguous() {
            Some(t) => SmallValue::Str(t),
            None => return false,
        },
        OtlpValue::Bool(b) => SmallValue::Bool(*b),
        OtlpValue::Int(i) => SmallValue::Int(*i),
        OtlpValue::Double(d) => SmallValue::Double(*d),
        _ => return false,
    };
    put_small_key_value_bytes::<false>(out, field_number, key, value, cap)
}

/// The most bytes `put_small_key_value_bytes` writes: a tag, a one-byte
/// length and a body under 128 bytes.
const SMALL_KEY_VALUE_MAX: usize = 2 + 0x7f;

/// A span with at most this many attributes has room for all of them at
/// `SMALL_KEY_VALUE_MAX` reserved with its head (`put_span`): about 1 KB.
const PRE_RESERVED_ATTRIBUTES: usize = 8;

/// `put_small_key_value` of a key's and a value's bytes (a span's
/// attribute read straight from its record: `SpanView::small_attribute`).
/// With `RESERVED`, the caller has reserved `SMALL_KEY_VALUE_MAX` bytes
/// past `out`'s end (`put_span`): no capacity check here; a reservation
/// check was 5 to 7 instructions an attribute on the exporter.
#[inline(always)]
fn put_small_key_value_bytes<const RESERVED: bool>(
    out: &mut Vec<u8>,
    field_number: u32,
    key: &[u8],
    value: SmallValue<'_>,
    cap: usize,
) -> bool {
    // The key's length is not checked on its own: a key-value body under
    // SHORT_BODY (checked below, with no overflow: every value's part is
    // at most 2 + 127 bytes) has a key under it too. Its own check was 2
    // instructions an attribute on the exporter.
    const SHORT_BODY: usize = 0x80;
    /// What follows the AnyValue's one tag.
    enum Payload<'a> {
        /// A length (one byte here) and the bytes.
        Text(&'a [u8]),
        Varint(u64),
        Fixed64(u64),
    }
    // The AnyValue's body: its one field's tag, then its payload.
    let (any_tag, payload, any_len) = match value {
        SmallValue::Str(t) if t.len() <= cap && t.len() < SHORT_BODY => (
            field::ANY_STRING << 3 | WIRE_LEN,
            Payload::Text(t),
            2 + t.len(),
        ),
        SmallValue::Str(_) => return false,
        SmallValue::Bool(b) => (
            field::ANY_BOOL << 3 | WIRE_VARINT,
            Payload::Varint(b as u64),
            2,
        ),
        SmallValue::Int(i) => (
            field::ANY_INT << 3 | WIRE_VARINT,
            Payload::Varint(i as u64),
            1 + varint_len(i as u64),
        ),
        SmallValue::Double(d) => (
            field::ANY_DOUBLE << 3 | WIRE_FIXED64,
            Payload::Fixed64(d.to_bits()),
            9,
        ),
    };
    // An empty key is left out, as `put_str` does.
    let key_part = if key.is_empty() { 0 } else { 2 + key.len() };
    let kv_len = key_part + 2 + any_len;
    if kv_len >= SHORT_BODY || field_number >= 16 {
        return false;
    }
    if RESERVED {
        // Checked in every test build, release ones too: the writes below
        // rely on it.
        #[cfg(test)]
        assert!(
            out.capacity() - out.len() >= SMALL_KEY_VALUE_MAX,
            "put_span reserved too little for its small attributes"
        );
    } else {
        out.reserve(2 + kv_len);
    }
    // SAFETY: 2 + kv_len bytes reserved just above (or, with RESERVED, by
    // the caller: 2 + kv_len is at most SMALL_KEY_VALUE_MAX), and exactly that many
    // written below (every length was counted above: one-byte tags, as
    // every field number here is under 16, and one-byte lengths, as every
    // body is under 128 bytes); set_len then covers only bytes written.
    unsafe {
        let mut w = Writer::at_end(out);
        w.bytes(&[(field_number << 3 | WIRE_LEN) as u8, kv_len as u8]);
        if !key.is_empty() {
            w.bytes(&[
                (field::KEY_VALUE_KEY << 3 | WIRE_LEN) as u8,
                key.len() as u8,
            ]);
            w.bytes(key);
        }
        w.bytes(&[
            (field::KEY_VALUE_VALUE << 3 | WIRE_LEN) as u8,
            any_len as u8,
            any_tag as u8,
        ]);
        match payload {
            Payload::Text(t) => {
                w.bytes(&[t.len() as u8]);
                w.bytes(t);
            }
            Payload::Fixed64(v) => w.bytes(&v.to_le_bytes()),
            Payload::Varint(v) => w.varint(v),
        }
        debug_assert_eq!(w.at, 2 + kv_len);
        w.finish(out);
    }
    true
}

/// Writes into room already reserved past a Vec's length, with no
/// capacity check or length update a field (the small-span and
/// small-key-value paths); `finish` sets the length once.
struct Writer {
    base: *mut u8,
    start: usize,
    at: usize,
}

impl Writer {
    /// A writer at `out`'s end.
    #[inline(always)]
    fn at_end(out: &mut Vec<u8>) -> Writer {
        let start = out.len();
        // SAFETY: `start` is within the allocation (one past the last
        // element at most).
        let base = unsafe { out.as_mut_ptr().add(start) };
        Writer { base, start, at: 0 }
    }

    /// Copies `b` (inline when short: a key or value through memcpy was a
    /// call a field, four a small span in callgrind).
    ///
    /// # Safety
    /// The room reserved must cover `b.len()` more bytes.
    #[inline(always)]
    unsafe fn bytes(&mut self, b: &[u8]) {
        // SAFETY: the caller's reservation; `b` is borrowed from elsewhere
        // than the Vec's spare room, so they do not overlap.
        unsafe { copy_short(self.base.add(self.at), b) };
        self.at += b.len();
    }

    /// # Safety
    /// The room reserved must cover `varint_len(v)` more bytes.
    #[inline(always)]
    unsafe fn varint(&mut self, v: u64) {
        // SAFETY: the caller's reservation.
        self.at += unsafe { write_varint(self.base.add(self.at), v) };
    }

    /// Sets `out`'s length past what was written.
    ///
    /// # Safety
    /// `out` must be the Vec the writer was made for, unchanged since, and
    /// its reservation must have covered every byte written.
    #[inline(always)]
    unsafe fn finish(self, out: &mut Vec<u8>) {
        // SAFETY: the caller's promise: these bytes were reserved and written.
        unsafe { out.set_len(self.start + self.at) };
    }
}

/// The bytes a `KeyValue`'s and its `AnyValue`'s lengths take when the
/// value is a string or bytes of `value_len`: known before writing, so a
/// long value (a prompt) is never moved to make room for them. Short
/// values take the small guess.
#[inline(always)]
fn length_rooms(key: &Str<'_>, value_len: usize) -> (usize, usize) {
    if value_len < 0x60 {
        return (SMALL, SMALL);
    }
    // The value's tag (one byte: field 1 or 7), its length, its bytes.
    let any_len = 1 + varint_len(value_len as u64) + value_len;
    let key_len = key.len();
    let key_part = if key_len > 0 {
        1 + varint_len(key_len as u64) + key_len
    } else {
        0
    };
    let kv_len = key_part + 1 + varint_len(any_len as u64) + any_len;
    (varint_len(kv_len as u64), varint_len(any_len as u64))
}

/// How many bytes `v` takes as a varint.
#[inline(always)]
fn varint_len(v: u64) -> usize {
    // 7 bits a byte, 0 takes one: for `bits` significant bits,
    // (bits * 9 + 64) / 64 is bits.div_ceil(7) for every bits of 1 to
    // 64 (the test checks each), with a shift where div_ceil's division
    // by 7 compiled to two multiplies and a fix-up: 11 instructions an
    // int attribute on the exporter, now 6 (callgrind).
    let bits = 64 - (v | 1).leading_zeros() as usize;
    (bits * 9 + 64) >> 6
}

/// The body of an `AnyValue`.
#[inline(always)]
fn put_any_value(out: &mut Vec<u8>, value: &OtlpValue<'_>, cap: usize) {
    match *value {
        OtlpValue::Str(s) => {
            put_tag_and_varint(out, field::ANY_STRING, WIRE_LEN, s.cut_len(cap) as u64);
            s.for_each_piece(cap, |p| append(out, p));
        }
        OtlpValue::Bool(b) => {
            put_tag_and_varint(out, field::ANY_BOOL, WIRE_VARINT, b as u64);
        }
        OtlpValue::Int(i) => {
            // int64 is the two's-complement bits as a varint (10 bytes when
            // negative), not zigzag.
            put_tag_and_varint(out, field::ANY_INT, WIRE_VARINT, i as u64);
        }
        OtlpValue::Double(d) => {
            put_tag(out, field::ANY_DOUBLE, WIRE_FIXED64);
            out.extend_from_slice(&d.to_bits().to_le_bytes());
        }
        OtlpValue::Bytes(b) => {
            let len = b.len().min(cap);
            put_tag_and_varint(out, field::ANY_BYTES, WIRE_LEN, len as u64);
            let mut left = len;
            b.for_each_piece(|p| {
                let n = p.len().min(left);
                append(out, &p[..n]);
                left -= n;
            });
        }
        OtlpValue::Array(a) => put_array(out, a, cap),
        OtlpValue::List(elements) => put_list(out, elements, cap),
        // The message is the AnyValue's body, unchanged: checked when it
        // was set (or read back from disk).
        OtlpValue::AnyValue(b) => b.for_each_piece(|p| append(out, p)),
        OtlpValue::Encoded(b) => append(out, b),
    }
}

/// A resource's or scope's `ArrayValue` (out of line, as `put_array`).
#[inline(never)]
fn put_list(out: &mut Vec<u8>, elements: &[crate::export::resource::AttrValue], cap: usize) {
    let array = begin_message_reserving(out, field::ANY_ARRAY, MEDIUM);
    for e in elements {
        let item = begin_message(out, field::ARRAY_VALUES);
        put_any_value(out, &OtlpValue::from_resource(e), cap);
        end_message(out, item);
    }
    end_message(out, array);
}

/// An `ArrayValue` (out of line: `put_any_value` is inlined, and arrays
/// recurse into it).
#[inline(never)]
fn put_array(out: &mut Vec<u8>, a: crate::span::record::ArrayRef<'_>, cap: usize) {
    let array = begin_message_reserving(out, field::ANY_ARRAY, MEDIUM);
    for e in a.elements() {
        let item = begin_message(out, field::ARRAY_VALUES);
        let v = match e {
            Element::Str(t) => OtlpValue::Str(Str::Span(t)),
            Element::Int(i) => OtlpValue::Int(i),
            Element::Double(d) => OtlpValue::Double(d),
            Element::Bool(b) => OtlpValue::Bool(b),
        };
        put_any_value(out, &v, cap);
        end_message(out, item);
    }
    end_message(out, array);
}

/// A string field, left out when empty, cut to `cap` bytes.
#[inline(always)]
fn put_str(out: &mut Vec<u8>, field_number: u32, s: &Str<'_>, cap: usize) {
    // Nearly every name, key and value: whole and in one piece, written at
    // once. Piece by piece, through the cut and the piece callbacks, cost
    // 82 instructions a string (callgrind, `spanguard-bench --encode`).
    if let Some(b) = s.contiguous().filter(|b| b.len() <= cap) {
        if !b.is_empty() {
            put_tag_and_varint(out, field_number, WIRE_LEN, b.len() as u64);
            append(out, b);
        }
        return;
    }
    let len = s.cut_len(cap);
    if len > 0 {
        put_tag_and_varint(out, field_number, WIRE_LEN, len as u64);
        s.for_each_piece(cap, |p| append(out, p));
    }
}

#[inline(always)]
fn put_varint(out: &mut Vec<u8>, v: u64) {
    out.reserve(MAX_VARINT);
    // SAFETY: reserved just above.
    unsafe { push_varint(out, v) }
}

/// A field's tag and a varint after it (its value, or its length), with
/// one reservation: a capacity check for each was a tenth of encoding's
/// instructions (callgrind, `spanguard-bench --encode small`).
#[inline(always)]
fn put_tag_and_varint(out: &mut Vec<u8>, field_number: u32, wire_type: u32, v: u64) {
    out.reserve(2 * MAX_VARINT);
    // SAFETY: reserved just above, MAX_VARINT for each.
    unsafe {
        push_varint(out, (field_number << 3 | wire_type) as u64);
        push_varint(out, v);
    }
}

/// Appends the varint `v`.
///
/// # Safety
/// `out` must have room for MAX_VARINT more bytes (a varint takes at most
/// that many).
#[inline(always)]
unsafe fn push_varint(out: &mut Vec<u8>, v: u64) {
    let at = out.len();
    // SAFETY: the caller's reservation covers MAX_VARINT bytes past `at`;
    // set_len covers only bytes written.
    unsafe {
        let n = write_varint(out.as_mut_ptr().add(at), v);
        out.set_len(at + n);
    }
}

/// Writes the varint `v` at `d`; returns how many bytes it took.
///
/// # Safety
/// `d` must be valid for writing `varint_len(v)` bytes (MAX_VARINT at most).
#[inline(always)]
unsafe fn write_varint(d: *mut u8, mut v: u64) -> usize {
    let mut n = 0;
    // SAFETY: the caller's promise covers every byte written.
    unsafe {
        while v >= 0x80 {
            *d.add(n) = v as u8 | 0x80;
            v >>= 7;
            n += 1;
        }
        *d.add(n) = v as u8;
    }
    n + 1
}

fn put_tag(out: &mut Vec<u8>, field_number: u32, wire_type: u32) {
    put_varint(out, (field_number << 3 | wire_type) as u64);
}

/// A varint scalar field, left out when 0 as proto3 does.
fn put_varint_field(out: &mut Vec<u8>, field_number: u32, v: u64) {
    if v != 0 {
        put_tag_and_varint(out, field_number, WIRE_VARINT, v);
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
        put_tag_and_varint(out, field_number, WIRE_LEN, b.len() as u64);
        out.extend_from_slice(b);
    }
}

#[cfg(test)]
fn put_string(out: &mut Vec<u8>, field_number: u32, s: &str) {
    put_bytes(out, field_number, s.as_bytes());
}

/// Where a nested message's length goes: `at`, with `reserved` bytes kept
/// for it before the body.
#[derive(Clone, Copy, Debug)]
struct Mark {
    at: usize,
    reserved: usize,
}

/// Room for the length of a message nearly always under 128 bytes (a
/// key-value, a value, a scope, a status).
const SMALL: usize = 1;
/// Under 16 KiB: a span, an event, a link, the resource.
const MEDIUM: usize = 2;
// `put_small_span_head` writes MEDIUM zero bytes of room as a literal.
const _: () = assert!(MEDIUM == 2);

/// Starts a nested message: writes its tag and reserves `reserved` bytes
/// for its length. Returns the mark `end_message` needs.
///
/// A length is a varint, known only at the end. Reserving the most a
/// varint takes (10 bytes) and sliding the body down over the rest cost a
/// call to memmove for every message, seven a span with three attributes:
/// half the exporter's time in a profile of small spans. Reserving what
/// the message nearly always needs leaves nothing to move; a guess that is
/// off costs one move of that body.
#[inline(always)]
fn begin_message_reserving(out: &mut Vec<u8>, field_number: u32, reserved: usize) -> Mark {
    put_tag(out, field_number, WIRE_LEN);
    let at = out.len();
    out.resize(at + reserved, 0);
    Mark { at, reserved }
}

/// `begin_message_reserving` for a message nearly always under 128 bytes.
#[inline(always)]
fn begin_message(out: &mut Vec<u8>, field_number: u32) -> Mark {
    begin_message_reserving(out, field_number, SMALL)
}

/// Ends the message begun at `mark`: writes the body's length before it,
/// moving the body when the length needs more or fewer bytes than were
/// reserved.
#[inline(always)]
fn end_message(out: &mut Vec<u8>, mark: Mark) {
    let body_start = mark.at + mark.reserved;
    let body_len = out.len() - body_start;
    if mark.reserved == 1 && body_len < 0x80 {
        out[mark.at] = body_len as u8;
        return;
    }
    if mark.reserved == MEDIUM && (0x80..0x4000).contains(&body_len) {
        // Two bytes, as reserved (a span, event or link of 128 bytes to
        // 16 KiB: nearly every span), written with no bounds check: the
        // slice index checks and the loop were a tenth of the
        // instructions `put_span` spends past the attributes.
        // SAFETY: `begin_message_reserving` made the two bytes at
        // `mark.at` part of `out`, and `out` only grew past them since
        // (a nested message's move shortens `out` only down to its own
        // body, after these bytes): body_start <= out.len().
        unsafe {
            let at = out.as_mut_ptr().add(mark.at);
            *at = body_len as u8 | 0x80;
            *at.add(1) = (body_len >> 7) as u8;
        }
        return;
    }
    let n = varint_len(body_len as u64);
    if n != mark.reserved {
        move_body(out, mark, body_len, n);
    }
    // Byte by byte in place: a copy of a length-`n` slice was a call to
    // memcpy for two bytes, 2% of the exporter's CPU.
    let mut v = body_len as u64;
    for b in &mut out[mark.at..mark.at + n - 1] {
        *b = v as u8 | 0x80;
        v >>= 7;
    }
    out[mark.at + n - 1] = v as u8;
}

/// Moves a body so that `n` bytes of length fit before it.
#[cold]
#[inline(never)]
fn move_body(out: &mut Vec<u8>, mark: Mark, body_len: usize, n: usize) {
    let body_start = mark.at + mark.reserved;
    if n > mark.reserved {
        out.resize(out.len() + n - mark.reserved, 0);
    }
    out.copy_within(body_start..body_start + body_len, mark.at + n);
    out.truncate(mark.at + n + body_len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_key_value_is_the_same_bytes_as_the_general_path() {
        let text: Vec<u8> = (0..200).map(|i| b'a' + (i % 26) as u8).collect();
        let text = std::str::from_utf8(&text).unwrap();
        let mut values = vec![
            OtlpValue::Bool(false),
            OtlpValue::Bool(true),
            OtlpValue::Double(0.0),
            OtlpValue::Double(-1.5),
        ];
        for i in [0i64, 1, 127, 128, 300, -1, i64::MIN, i64::MAX] {
            values.push(OtlpValue::Int(i));
        }
        for n in [0usize, 1, 6, 60, 95, 96, 100, 120, 125, 126, 127, 128, 200] {
            values.push(OtlpValue::Str(Str::Plain(&text[..n])));
        }
        let mut fast_taken = 0;
        for field_number in [field::SPAN_ATTRIBUTES, field::EVENT_ATTRIBUTES, 16] {
            for key_len in [0usize, 1, 20, 100, 126, 127, 128] {
                let key = Str::Plain(&text[..key_len]);
                for (v, value) in values.iter().enumerate() {
                    for cap in [usize::MAX, 10] {
                        let (mut fast, mut general) = (vec![7u8], vec![7u8]);
                        if put_small_key_value(&mut fast, field_number, &key, value, cap) {
                            fast_taken += 1;
                            put_any_key_value(&mut general, field_number, &(key, *value), cap);
                            assert_eq!(
                                fast, general,
                                "field {field_number}, key {key_len}, value {v}, cap {cap}"
                            );
                        } else {
                            assert_eq!(fast, vec![7u8], "wrote though it declined");
                        }
                    }
                }
            }
        }
        assert!(
            fast_taken > 100,
            "the fast path was hardly taken: {fast_taken}"
        );
    }

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

    /// A resource's and a scope's complex value (`AttrValue::Any`) is
    /// the `KeyValue`'s `AnyValue` byte for byte, a short one and one whose
    /// length takes two bytes of varint (past the room reserved for the
    /// message). The OTLP/JSON side, and a scope's in a batch: the C ABI
    /// test in `ffi::tracer`.
    #[test]
    fn resource_and_scope_complex_values_are_written_as_given() {
        use crate::config::ResourceValue;
        use crate::export::resource::AttrValue;
        use crate::span::any_value::tests::{map, string};
        let long = "x".repeat(300);
        for message in [
            map(&[("app", string("checkout"))]),
            map(&[("l", string(&long))]),
        ] {
            let resource = ResourceInfo::new("svc", &[])
                .overridden(&[("labels".into(), ResourceValue::Any(message.clone()))]);
            let mut out = Vec::new();
            OtlpProtoEncoder::new().encode(&resource, &[], &mut out);
            // A scope's attribute, as the encoder writes one.
            put_key_value(
                &mut out,
                field::SCOPE_ATTRIBUTES,
                &(
                    Str::Plain("scoped"),
                    OtlpValue::from_resource(&AttrValue::Any(message.clone())),
                ),
                usize::MAX,
            );
            for key in ["labels", "scoped"] {
                let mut want = vec![0x0a, key.len() as u8];
                want.extend_from_slice(key.as_bytes());
                want.push(0x12);
                want.extend_from_slice(&varint(message.len() as u64));
                want.extend_from_slice(&message);
                let at = out.windows(want.len()).position(|w| w == want);
                assert!(at.is_some(), "{key}: {out:02x?}");
                // The KeyValue's own length is what follows it.
                let at = at.expect("found");
                let kv_len = varint(want.len() as u64);
                assert_eq!(out[at - kv_len.len()..at], kv_len[..], "{key}");
            }
        }
    }

    #[test]
    fn tags_combine_field_and_wire_type() {
        let mut out = Vec::new();
        put_tag(&mut out, 1, WIRE_LEN);
        put_tag(&mut out, 16, WIRE_FIXED32);
        assert_eq!(out, [0x0a, 0x85, 0x01]);
    }

    #[test]
    fn long_values_get_the_exact_room_for_their_lengths() {
        let long_key = "k".repeat(200);
        for key in ["", "gen_ai.prompt", long_key.as_str()] {
            for value_len in [0x60usize, 127, 128, 16_300, 16_383, 16_384, 100_000] {
                let value = "v".repeat(value_len);
                let (kv_room, any_room) = length_rooms(&Str::Plain(key), value_len);
                let mut out = Vec::new();
                put_key_value(
                    &mut out,
                    1,
                    &(Str::Plain(key), OtlpValue::Str(Str::Plain(&value))),
                    usize::MAX,
                );
                // tag, then the KeyValue's length: as many bytes as reserved.
                let kv_len = varint(out.len() as u64 - 1 - kv_room as u64);
                assert_eq!(kv_len.len(), kv_room, "{key:?} {value_len}");
                assert_eq!(out[1..1 + kv_room], kv_len[..]);
                // The AnyValue's length follows its tag, after the key.
                let key_part = if key.is_empty() {
                    0
                } else {
                    1 + varint(key.len() as u64).len() + key.len()
                };
                let any_at = 1 + kv_room + key_part + 1;
                let any_len = varint((1 + varint(value_len as u64).len() + value_len) as u64);
                assert_eq!(any_len.len(), any_room, "{key:?} {value_len}");
                assert_eq!(out[any_at..any_at + any_room], any_len[..]);
            }
        }
    }

    #[test]
    fn varint_lengths_match_the_encoding() {
        for v in [
            0u64,
            1,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            u32::MAX as u64,
            u64::MAX,
        ] {
            assert_eq!(varint_len(v), varint(v).len(), "{v}");
        }
        // Every bit width, at both ends: 2^(b-1) and 2^b - 1.
        for b in 1..=64u32 {
            for v in [1u64 << (b - 1), u64::MAX >> (64 - b)] {
                assert_eq!(varint_len(v), varint(v).len(), "{v}");
            }
        }
    }

    #[test]
    fn nested_lengths_are_backpatched_at_every_size() {
        let sizes = [
            0usize, 1, 127, 128, 16_383, 16_384, 70_000, 2_097_151, 2_097_152,
        ];
        for reserved in [SMALL, MEDIUM, 3, 4, MAX_VARINT] {
            for body_len in sizes {
                let mut out = vec![0xee];
                let m = begin_message_reserving(&mut out, 2, reserved);
                out.extend((0..body_len).map(|i| i as u8));
                end_message(&mut out, m);
                let mut want = vec![0xee, 0x12];
                want.extend(varint(body_len as u64));
                want.extend((0..body_len).map(|i| i as u8));
                assert!(out == want, "body of {body_len} with {reserved} reserved");
            }
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
    fn a_span_over_the_budget_has_its_largest_values_cut_until_it_fits() {
        use crate::buffer::payload_pool::PayloadPool;
        use crate::span::limits::SpanLimits;
        use crate::span::record::{SpanRecord, ValueInput};
        let pool = PayloadPool::with_mib(4).expect("pool");
        // SAFETY: all-zero bytes are an empty record.
        let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
        r.trace_id = [1; 16];
        r.span_id = [2; 8];
        let limits = SpanLimits::default();
        let prompt = "é".repeat(50_000);
        let completion = "c".repeat(20_000);
        for (k, v) in [
            (&b"gen_ai.prompt"[..], ValueInput::Str(prompt.as_bytes())),
            (b"gen_ai.completion", ValueInput::Str(completion.as_bytes())),
            (b"small", ValueInput::Str(b"kept whole")),
            (b"gen_ai.usage.input_tokens", ValueInput::Int(812)),
        ] {
            r.set_attribute(k, &v, &limits, &pool).expect("set");
        }
        let view = SpanView::new(&r, &pool);
        let resource = ResourceInfo::new("budget", &[]);
        let mut enc = OtlpProtoEncoder::new();
        let mut whole = Vec::new();
        enc.encode(&resource, &[view], &mut whole);
        assert!(whole.len() > 120_000);
        assert_eq!(enc.take_cut_values(), 0);
        enc.set_span_budget(Some(60_000));
        let mut cut = Vec::new();
        enc.encode(&resource, &[view], &mut cut);
        assert_eq!(enc.take_cut_values(), 1, "only the prompt had to be cut");
        // The request is the span plus a little framing.
        assert!(cut.len() <= 60_000 + 200, "{}", cut.len());
        assert!(cut.len() > 59_000, "cut no more than needed: {}", cut.len());
        let text = String::from_utf8_lossy(&cut);
        assert!(text.contains(&completion), "the smaller value stays whole");
        assert!(text.contains("kept whole"));
        assert!(text.contains("gen_ai.usage.input_tokens"));
        // KeyValue.value (0x12, length) holds AnyValue.string_value (0x0a,
        // length, bytes): valid UTF-8, a prefix of the prompt.
        let varint = |b: &[u8], at: &mut usize| {
            let (mut v, mut shift) = (0usize, 0);
            while b[*at] & 0x80 != 0 {
                v |= ((b[*at] & 0x7f) as usize) << shift;
                shift += 7;
                *at += 1;
            }
            v |= (b[*at] as usize) << shift;
            *at += 1;
            v
        };
        let key = b"gen_ai.prompt";
        let mut at = cut.windows(key.len()).position(|w| w == key).expect("key") + key.len();
        assert_eq!(cut[at], 0x12);
        at += 1;
        let _ = varint(&cut, &mut at);
        assert_eq!(cut[at], 0x0a);
        at += 1;
        let n = varint(&cut, &mut at);
        let kept = std::str::from_utf8(&cut[at..at + n]).expect("cut on a character boundary");
        assert!(prompt.starts_with(kept) && kept.len() < prompt.len());
        // A budget nothing fits: every value emptied, every key kept.
        enc.set_span_budget(Some(10));
        enc.encode(&resource, &[view], &mut cut);
        assert_eq!(enc.take_cut_values(), 3);
        assert!(String::from_utf8_lossy(&cut).contains("gen_ai.prompt"));
    }

    #[test]
    fn a_reused_encoder_writes_what_a_fresh_one_does_at_every_request_size() {
        use crate::buffer::payload_pool::PayloadPool;
        use crate::span::limits::SpanLimits;
        use crate::span::record::{SpanRecord, ValueInput};
        // Requests whose length takes 2, 3 and 4 bytes, in an order
        // where each follows one of another size: the room the encoder
        // keeps from the last request is wrong for every one of them.
        let pool = PayloadPool::with_mib(16).expect("pool");
        let limits = SpanLimits::default();
        let record = |value_len: usize| {
            // SAFETY: all-zero bytes are an empty record.
            let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
            r.trace_id = [1; 16];
            r.span_id = [2; 8];
            let value = "v".repeat(value_len);
            r.set_attribute(b"k", &ValueInput::Str(value.as_bytes()), &limits, &pool)
                .expect("set");
            r
        };
        let resource = ResourceInfo::new("sizes", &[]);
        let mut reused = OtlpProtoEncoder::new();
        for value_len in [
            0, 3_000_000, 20, 50_000, 0, 1_000, 3_000_000, 0, 300_000, 50_000,
        ] {
            let r = record(value_len);
            let view = SpanView::new(&r, &pool);
            let (mut got, mut want) = (Vec::new(), Vec::new());
            reused.encode(&resource, &[view], &mut got);
            OtlpProtoEncoder::new().encode(&resource, &[view], &mut want);
            assert!(got == want, "a request with a value of {value_len} bytes");
            assert!(got.len() > value_len);
        }
    }

    #[test]
    fn a_request_of_no_span_leaves_the_room_for_the_next_requests_lengths() {
        use crate::buffer::payload_pool::PayloadPool;
        use crate::span::limits::SpanLimits;
        use crate::span::record::{SpanRecord, ValueInput};
        // The request encoder measures a resource's framing (a request of
        // no span) before each part of a batch: what it learns from that
        // must not undo what the last part taught, or every part of a
        // large batch moves its two whole bodies to fit their lengths.
        let pool = PayloadPool::with_mib(16).expect("pool");
        let limits = SpanLimits::default();
        // SAFETY: all-zero bytes are an empty record.
        let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
        r.trace_id = [1; 16];
        r.span_id = [2; 8];
        let value = "v".repeat(300_000);
        r.set_attribute(b"k", &ValueInput::Str(value.as_bytes()), &limits, &pool)
            .expect("set");
        let view = SpanView::new(&r, &pool);
        let resource = ResourceInfo::new("framing", &[]);
        let mut enc = OtlpProtoEncoder::new();
        let mut out = Vec::new();
        enc.encode(&resource, &[view], &mut out);
        let learned = enc.whole_reserved;
        assert_eq!(learned, varint_len(out.len() as u64));
        enc.encode(&resource, &[], &mut out);
        assert_eq!(
            enc.whole_reserved, learned,
            "a request of no span taught it"
        );
        let (mut again, mut fresh) = (Vec::new(), Vec::new());
        enc.encode(&resource, &[view], &mut again);
        OtlpProtoEncoder::new().encode(&resource, &[view], &mut fresh);
        assert!(again == fresh, "not the bytes a fresh encoder writes");
    }

    #[test]
    fn a_span_without_rest_events_links_or_status_decodes_as_the_json_does() {
        use crate::buffer::payload_pool::PayloadPool;
        use crate::export::otlp_decode::{decode_json, decode_proto};
        use crate::export::otlp_json::OtlpJsonEncoder;
        use crate::span::limits::SpanLimits;
        use crate::span::record::{LinkContext, STATUS_ERROR, SpanRecord, ValueInput};
        // `put_span` ends early for a span with none of them: each shape
        // around that exit (a status code alone, which is not in the rest;
        // drop counts, which are) must still say what the span holds, as
        // the JSON encoder (a separate path) and the record say.
        let pool = PayloadPool::with_mib(1).expect("pool");
        let limits = SpanLimits::default();
        let make = |shape: usize| {
            // SAFETY: all-zero bytes are an empty record.
            let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
            r.trace_id = [1; 16];
            r.span_id = [2; 8];
            r.start_unix_ns = 10;
            r.end_unix_ns = 20;
            r.name = r.store_text(b"op", 256, &pool).0;
            r.set_attribute(b"k", &ValueInput::Int(7), &limits, &pool)
                .expect("set");
            match shape {
                0 => {}
                1 => r.status_code = STATUS_ERROR,
                2 => {
                    r.status_code = STATUS_ERROR;
                    r.rest_mut().status_message = r.store_text(b"boom", 64, &pool).0;
                }
                3 => {
                    r.add_event(b"e", 15, &[], &limits, &pool).expect("event");
                }
                4 => {
                    let to = LinkContext {
                        trace_id: [3; 16],
                        span_id: [4; 8],
                        trace_flags: 1,
                        remote: None,
                    };
                    r.add_link(to, b"", &[], &limits, &pool).expect("link");
                }
                _ => {
                    let rest = r.rest_mut();
                    (rest.dropped_events, rest.dropped_links) = (2, 3);
                    rest.dropped_attributes = 4;
                }
            }
            r
        };
        let records: Vec<Box<SpanRecord>> = (0..6).map(make).collect();
        let views: Vec<SpanView> = records.iter().map(|r| SpanView::new(r, &pool)).collect();
        let resource = ResourceInfo::new("exit", &[]);
        let (mut proto, mut json) = (Vec::new(), Vec::new());
        OtlpProtoEncoder::new().encode(&resource, &views, &mut proto);
        OtlpJsonEncoder::new().encode(&resource, &views, &mut json);
        let (from_proto, from_json) = (decode_proto(&proto).unwrap(), decode_json(&json).unwrap());
        assert_eq!(from_proto, from_json);
        let said: Vec<_> = from_proto
            .iter()
            .map(|s| {
                let status = (s.status_code, s.status_message.as_str());
                let counts = (
                    s.events.len(),
                    s.links.len(),
                    s.dropped_events,
                    s.dropped_links,
                );
                (status, counts, s.dropped_attributes)
            })
            .collect();
        let error = STATUS_ERROR as u32;
        assert_eq!(
            said,
            [
                ((0, ""), (0, 0, 0, 0), 0),
                ((error, ""), (0, 0, 0, 0), 0),
                ((error, "boom"), (0, 0, 0, 0), 0),
                ((0, ""), (1, 0, 0, 0), 0),
                ((0, ""), (0, 1, 0, 0), 0),
                ((0, ""), (0, 0, 2, 3), 4),
            ]
        );
    }

    #[test]
    fn complex_values_arrive_whole_in_protobuf_and_json() {
        use crate::buffer::payload_pool::PayloadPool;
        use crate::export::otlp_decode::{Value as V, decode_json, decode_proto};
        use crate::export::otlp_json::OtlpJsonEncoder;
        use crate::span::any_value::AnyValueRef;
        use crate::span::any_value::tests::{array, double, int, map, string};
        use crate::span::limits::SpanLimits;
        use crate::span::record::{SpanRecord, ValueInput};
        // OpenTelemetry's complex attribute values (a map, a mixed array,
        // the empty value, nested): the protobuf encoder sends the message
        // as it was set, the JSON encoder writes it as OTLP/JSON; both
        // read back as the same value, live and as read from disk, in the
        // arena and past it (a prompt-sized map).
        let pool = PayloadPool::with_mib(4).expect("pool");
        let mut limits = SpanLimits::default();
        let tool_args = map(&[
            ("city", string("Paris")),
            ("days", array(&[int(1), double(2.5), string("x")])),
            ("ok", Vec::new()),
            ("raw", {
                let mut b = Vec::new();
                crate::span::proto_reader::write_len_field(&mut b, 7, b"\x00\xff");
                b
            }),
        ]);
        let long = "é".repeat(5000);
        let messages = map(&[("content", string(&long)), ("role", string("user"))]);
        let want_args = V::Map(vec![
            ("city".into(), V::Str("Paris".into())),
            (
                "days".into(),
                V::Array(vec![V::Int(1), V::Double(2.5), V::Str("x".into())]),
            ),
            ("ok".into(), V::Empty),
            ("raw".into(), V::Bytes(vec![0, 0xff])),
        ]);
        let want_messages = |content: &str| {
            V::Map(vec![
                ("content".into(), V::Str(content.into())),
                ("role".into(), V::Str("user".into())),
            ])
        };
        let make = |limits: &SpanLimits| {
            // SAFETY: all-zero bytes are an empty record.
            let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
            r.trace_id = [1; 16];
            r.span_id = [2; 8];
            (r.start_unix_ns, r.end_unix_ns) = (10, 20);
            r.name = r.store_text(b"tool", usize::MAX, &pool).0;
            for (k, v) in [
                (&b"tool.args"[..], &tool_args[..]),
                (b"gen_ai.messages", &messages[..]),
                (b"none", &[][..]),
            ] {
                let v = ValueInput::AnyValue(AnyValueRef::check(v).expect("well formed"));
                r.set_attribute(k, &v, limits, &pool).expect("set");
            }
            r
        };
        let check = |r: &SpanRecord, content: &str| {
            for view in [SpanView::new(r, &pool), SpanView::from_disk(r, &pool)] {
                let (mut proto, mut json) = (Vec::new(), Vec::new());
                let resource = ResourceInfo::new("any", &[]);
                OtlpProtoEncoder::new().encode(&resource, &[view], &mut proto);
                OtlpJsonEncoder::new().encode(&resource, &[view], &mut json);
                let (p, j) = (decode_proto(&proto).unwrap(), decode_json(&json).unwrap());
                assert_eq!(p, j);
                assert_eq!(
                    p[0].attributes,
                    vec![
                        ("tool.args".to_string(), want_args.clone()),
                        ("gen_ai.messages".to_string(), want_messages(content)),
                        ("none".to_string(), V::Empty),
                    ]
                );
                assert_eq!(p[0].dropped_attributes, 0);
            }
        };
        let r = make(&limits);
        check(&r, &long);
        // The value length limit cuts each string inside, counted.
        limits.attribute_value_length = 100;
        let r = make(&limits);
        check(&r, &"é".repeat(100));
        assert_eq!(r.rest().truncated_values, 1);
        // Read back from disk torn (field 0 where the map began), the
        // value is not sent, and counted dropped.
        let mut r = make(&limits);
        let at = r.attributes[0].text_value().offset as usize;
        r.arena[at] = 0;
        let view = SpanView::from_disk(&r, &pool);
        assert_eq!(view.dropped_attributes(), 1);
        let resource = ResourceInfo::new("any", &[]);
        let (mut proto, mut json) = (Vec::new(), Vec::new());
        OtlpProtoEncoder::new().encode(&resource, &[view], &mut proto);
        OtlpJsonEncoder::new().encode(&resource, &[view], &mut json);
        for spans in [decode_proto(&proto).unwrap(), decode_json(&json).unwrap()] {
            assert_eq!(spans[0].attributes.len(), 2);
            assert_eq!(spans[0].dropped_attributes, 1);
        }
    }

    #[test]
    fn a_complex_value_the_pool_cannot_hold_whole_arrives_as_the_empty_value() {
        use crate::buffer::payload_pool::PayloadPool;
        use crate::export::otlp_decode::{Value as V, decode_json, decode_proto};
        use crate::export::otlp_json::OtlpJsonEncoder;
        use crate::span::any_value::AnyValueRef;
        use crate::span::any_value::tests::{map, string};
        use crate::span::limits::SpanLimits;
        use crate::span::record::{SpanRecord, ValueInput};
        // Cut where the pool ran out, as a string is, the message would be
        // broken (and break the request it travels in): it is the empty
        // value instead, counted and said.
        let pool = PayloadPool::with_mib(1).expect("pool");
        let huge = map(&[("content", string(&"x".repeat(2 << 20)))]);
        // SAFETY: all-zero bytes are an empty record.
        let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
        r.trace_id = [1; 16];
        r.span_id = [2; 8];
        (r.start_unix_ns, r.end_unix_ns) = (10, 20);
        let v = ValueInput::AnyValue(AnyValueRef::check(&huge).expect("well formed"));
        let outcome = r
            .set_attribute(b"messages", &v, &SpanLimits::default(), &pool)
            .expect("set");
        assert!(outcome.truncated);
        assert_eq!(r.rest().truncated_values, 1);
        let view = SpanView::new(&r, &pool);
        let resource = ResourceInfo::new("any", &[]);
        let (mut proto, mut json) = (Vec::new(), Vec::new());
        OtlpProtoEncoder::new().encode(&resource, &[view], &mut proto);
        OtlpJsonEncoder::new().encode(&resource, &[view], &mut json);
        for spans in [decode_proto(&proto).unwrap(), decode_json(&json).unwrap()] {
            assert_eq!(
                spans[0].attributes,
                vec![("messages".to_string(), V::Empty)]
            );
        }
    }

    #[test]
    fn the_deepest_complex_value_is_read_back_from_json() {
        use crate::buffer::payload_pool::PayloadPool;
        use crate::export::otlp_decode::{decode_json, decode_proto};
        use crate::export::otlp_json::OtlpJsonEncoder;
        use crate::span::any_value::tests::{int, map};
        use crate::span::any_value::{AnyValueRef, MAX_DEPTH_LIMIT, MAX_STORED_DEPTH};
        use crate::span::limits::SpanLimits;
        use crate::span::record::{SpanRecord, ValueInput};
        // Maps nested as deep as the highest depth limit keeps, on the
        // span and on an event (the deepest place in a request): the
        // OTLP/JSON line (the sink's, what `spanguard show` reads) parses,
        // and says what the protobuf says.
        let pool = PayloadPool::with_mib(1).expect("pool");
        let limits = SpanLimits {
            attribute_value_depth: MAX_DEPTH_LIMIT,
            ..SpanLimits::default()
        };
        let mut deep = int(1);
        for _ in 1..MAX_STORED_DEPTH {
            deep = map(&[("k", deep)]);
        }
        let v = ValueInput::AnyValue(AnyValueRef::check(&deep).expect("as deep as allowed"));
        // SAFETY: all-zero bytes are an empty record.
        let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
        r.trace_id = [1; 16];
        r.span_id = [2; 8];
        (r.start_unix_ns, r.end_unix_ns) = (10, 20);
        r.set_attribute(b"deep", &v, &limits, &pool).expect("set");
        r.add_event(b"e", 15, &[(&b"deep"[..], v)], &limits, &pool)
            .expect("event");
        let view = SpanView::new(&r, &pool);
        let resource = ResourceInfo::new("any", &[]);
        let (mut proto, mut json) = (Vec::new(), Vec::new());
        OtlpProtoEncoder::new().encode(&resource, &[view], &mut proto);
        OtlpJsonEncoder::new().encode(&resource, &[view], &mut json);
        let from_json = decode_json(&json).expect("the deepest value parses");
        assert_eq!(from_json, decode_proto(&proto).unwrap());
        assert_eq!(from_json[0].events[0].attributes.len(), 1);
        assert_eq!(r.rest().truncated_values, 0, "nothing replaced");
    }

    /// OpenTelemetry's `attribute_value_depth_limit`: the top value is
    /// level 1, each array element or map value one more, and an array or
    /// map deeper than the limit is replaced by the empty value, the rest
    /// kept (it was refused whole past 32). Decoded from the protobuf and
    /// from the JSON: at the default 64, arrays and maps 64 deep arrive
    /// whole; 65 deep, the 65th arrives empty, counted as truncated; a
    /// configured limit of 2 is honoured the same way.
    #[test]
    fn values_deeper_than_the_depth_limit_arrive_with_the_empty_value_in_their_place() {
        use crate::buffer::payload_pool::PayloadPool;
        use crate::export::otlp_decode::{Value, decode_json, decode_proto};
        use crate::export::otlp_json::OtlpJsonEncoder;
        use crate::span::any_value::AnyValueRef;
        use crate::span::any_value::tests::{array, int, map};
        use crate::span::limits::SpanLimits;
        use crate::span::record::{SpanRecord, ValueInput};
        // `levels` arrays and maps in turn, the innermost holding 7.
        let nested = |levels: usize| {
            let mut v = int(7);
            for i in 0..levels {
                v = if i % 2 == 0 {
                    array(&[v])
                } else {
                    map(&[("k", v)])
                };
            }
            v
        };
        // The decoded value `levels` deep, read down to where it ends.
        fn depth_of(mut v: &Value) -> (usize, &Value) {
            let mut levels = 0;
            loop {
                v = match v {
                    Value::Array(items) if items.len() == 1 => &items[0],
                    Value::Map(members) if members.len() == 1 => &members[0].1,
                    other => return (levels, other),
                };
                levels += 1;
            }
        }
        for (limit, levels, kept, replaced) in [
            (None, 64, 64, false),
            (None, 65, 64, true),
            (None, 200, 64, true),
            (Some(2), 2, 2, false),
            (Some(2), 3, 2, true),
        ] {
            let pool = PayloadPool::with_mib(1).expect("pool");
            let mut limits = SpanLimits::default();
            if let Some(l) = limit {
                limits.attribute_value_depth = l;
            }
            let bytes = nested(levels);
            let v = ValueInput::AnyValue(AnyValueRef::check(&bytes).expect("well formed"));
            // SAFETY: all-zero bytes are an empty record.
            let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
            r.trace_id = [1; 16];
            r.span_id = [2; 8];
            (r.start_unix_ns, r.end_unix_ns) = (10, 20);
            let outcome = r.set_attribute(b"deep", &v, &limits, &pool).expect("set");
            assert_eq!(outcome.truncated, replaced, "{limit:?} {levels}");
            let view = SpanView::new(&r, &pool);
            assert_eq!(r.rest().truncated_values, replaced as u16);
            let resource = ResourceInfo::new("any", &[]);
            let (mut proto, mut json) = (Vec::new(), Vec::new());
            OtlpProtoEncoder::new().encode(&resource, &[view], &mut proto);
            OtlpJsonEncoder::new().encode(&resource, &[view], &mut json);
            let from_proto = decode_proto(&proto).expect("decodes");
            assert_eq!(decode_json(&json).expect("parses"), from_proto);
            let (_, value) = &from_proto[0].attributes[0];
            let (depth, inner) = depth_of(value);
            assert_eq!(depth, kept, "{limit:?} {levels}");
            let want = if replaced {
                Value::Empty
            } else {
                Value::Int(7)
            };
            assert_eq!(inner, &want, "{limit:?} {levels}");
        }
    }

    #[test]
    fn spans_of_every_length_class_decode_as_the_json_does() {
        use crate::buffer::payload_pool::PayloadPool;
        use crate::export::otlp_decode::{decode_json, decode_proto};
        use crate::export::otlp_json::OtlpJsonEncoder;
        use crate::span::limits::SpanLimits;
        use crate::span::record::{SpanRecord, ValueInput};
        // A small span's tag and length room are written with its head
        // (`put_small_span_head`), and a length of two bytes with no
        // bounds check (`end_message`): spans whose bodies take one, two
        // and three bytes of length, around each boundary, with names in
        // the arena and past it (the general head), one request.
        let pool = PayloadPool::with_mib(4).expect("pool");
        let limits = SpanLimits::default();
        let text: String = (0..40_000)
            .map(|i| (b'a' + (i % 26) as u8) as char)
            .collect();
        let mut records = Vec::new();
        for name_len in [2usize, 3000] {
            for value_len in [
                0usize, 30, 60, 80, 100, 16_250, 16_300, 16_350, 16_400, 20_000,
            ] {
                // SAFETY: all-zero bytes are an empty record.
                let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
                r.trace_id = [1; 16];
                r.span_id = [2; 8];
                r.parent_span_id = [5; 8];
                r.kind = 2;
                (r.start_unix_ns, r.end_unix_ns) = (10, 20);
                r.name = r
                    .store_text(&text.as_bytes()[..name_len], usize::MAX, &pool)
                    .0;
                r.set_attribute(b"k", &ValueInput::Int(-7), &limits, &pool)
                    .expect("set");
                let value = ValueInput::Str(&text.as_bytes()[..value_len]);
                r.set_attribute(b"prompt", &value, &limits, &pool)
                    .expect("set");
                records.push(r);
            }
        }
        let views: Vec<SpanView> = records.iter().map(|r| SpanView::new(r, &pool)).collect();
        let resource = ResourceInfo::new("lengths", &[]);
        let (mut proto, mut json) = (Vec::new(), Vec::new());
        OtlpProtoEncoder::new().encode(&resource, &views, &mut proto);
        OtlpJsonEncoder::new().encode(&resource, &views, &mut json);
        let (from_proto, from_json) = (decode_proto(&proto).unwrap(), decode_json(&json).unwrap());
        assert_eq!(from_proto.len(), records.len());
        assert_eq!(from_proto, from_json);
        let lengths: Vec<(usize, usize)> = from_proto
            .iter()
            .map(|s| match &s.attributes[1].1 {
                crate::export::otlp_decode::Value::Str(v) => (s.name.len(), v.len()),
                other => panic!("not a string: {other:?}"),
            })
            .collect();
        let want: Vec<(usize, usize)> = [2usize, 3000]
            .iter()
            .flat_map(|&n| {
                [
                    0usize, 30, 60, 80, 100, 16_250, 16_300, 16_350, 16_400, 20_000,
                ]
                .map(|v| (n, v))
            })
            .collect();
        assert_eq!(lengths, want);
    }

    #[test]
    fn span_text_is_written_the_same_whole_in_the_arena_or_in_chunks() {
        use crate::buffer::payload_pool::PayloadPool;
        use crate::span::record::SpanRecord;
        let pool = PayloadPool::with_mib(4).expect("pool");
        // SAFETY: all-zero bytes are an empty record.
        let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
        let short = "gpt-4o ✓".as_bytes();
        let long = "é".repeat(30_000);
        let (in_arena, _) = r.store_text(short, usize::MAX, &pool);
        let (in_chunks, _) = r.store_text(long.as_bytes(), usize::MAX, &pool);
        let view = SpanView::new(&r, &pool);
        assert!(view.text(in_arena).in_arena().is_some());
        assert!(view.text(in_chunks).in_arena().is_none());
        assert!(matches!(Str::of_span(view.text(in_arena)), Str::Arena(_)));
        assert!(matches!(Str::of_span(view.text(in_chunks)), Str::Span(_)));
        for (t, bytes) in [(in_arena, short), (in_chunks, long.as_bytes())] {
            // Whole, then cut on a character boundary (one byte short of
            // the whole cuts a character), then cut to nothing; the same
            // whether the text comes as a Text or as `of_span` makes it.
            for cap in [usize::MAX, bytes.len(), bytes.len() - 1, 0] {
                for s in [Str::Span(view.text(t)), Str::of_span(view.text(t))] {
                    let kept = s.cut_len(cap);
                    assert!(kept <= cap.min(bytes.len()));
                    assert!(std::str::from_utf8(&bytes[..kept]).is_ok());
                    let mut got = Vec::new();
                    put_str(&mut got, 5, &s, cap);
                    let mut want = Vec::new();
                    if kept > 0 {
                        put_bytes(&mut want, 5, &bytes[..kept]);
                    }
                    assert!(got == want, "{} bytes, cap {cap}", bytes.len());
                }
            }
        }
    }

    #[test]
    fn a_small_span_head_is_the_same_bytes_as_the_general_path() {
        use crate::buffer::payload_pool::PayloadPool;
        use crate::span::record::{MARK_PARENT_REMOTE, SpanRecord};
        let pool = PayloadPool::with_mib(4).expect("pool");
        let text: String = (0..3000).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        let mut taken = 0;
        for name_len in [0usize, 1, 20, 32, 33, 127, 128, 200, 3000] {
            for (root, remote, flags, kind, times) in [
                (true, false, 0u8, 0u8, (0u64, 0u64)),
                (false, true, 1, 2, (1, u64::MAX)),
                (false, false, 0xff, 5, (1_700_000_000_000_000_000, 0)),
                (true, true, 1, 1, (0, 7)),
            ] {
                for tracestate in [&b""[..], b"vendor=x"] {
                    // SAFETY: all-zero bytes are an empty record.
                    let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
                    r.trace_id = [0xab; 16];
                    r.span_id = [0xcd; 8];
                    if !root {
                        r.parent_span_id = [0x12; 8];
                    }
                    if remote {
                        r.marks |= MARK_PARENT_REMOTE;
                    }
                    r.trace_flags = flags;
                    r.kind = kind;
                    (r.start_unix_ns, r.end_unix_ns) = times;
                    r.name = r
                        .store_text(&text.as_bytes()[..name_len], usize::MAX, &pool)
                        .0;
                    if !tracestate.is_empty() {
                        let t = r.store_text(tracestate, usize::MAX, &pool).0;
                        r.rest_mut().tracestate = t;
                    }
                    assert_eq!(r.is_root(), root);
                    let view = SpanView::new(&r, &pool);
                    let (mut fast, mut general) = (vec![7u8], vec![7u8]);
                    if let Some(mark) = put_small_span_head(&mut fast, &view, 0) {
                        taken += 1;
                        assert!(tracestate.is_empty());
                        let want =
                            begin_message_reserving(&mut general, field::SCOPE_SPANS_SPANS, MEDIUM);
                        put_span_head(&mut general, &view);
                        assert_eq!(fast, general, "name {name_len}, root {root}, kind {kind}");
                        assert_eq!((mark.at, mark.reserved), (want.at, want.reserved));
                        // And ended the same, whatever length that takes.
                        end_message(&mut fast, mark);
                        end_message(&mut general, want);
                        assert_eq!(fast, general, "name {name_len}, ended");
                    } else {
                        assert_eq!(fast, vec![7u8], "wrote though it declined");
                        assert!(!tracestate.is_empty() || view.name().in_arena().is_none());
                    }
                }
            }
        }
        // Every name but the one too long for the arena, without a tracestate.
        assert_eq!(taken, 8 * 4, "the fast path was taken {taken} times");
    }

    /// A span's attributes read straight from the record (the fast path)
    /// encode to the bytes the general path writes: the same span read as
    /// from disk takes the general path for every attribute.
    #[test]
    fn attributes_read_straight_from_the_record_are_the_same_bytes() {
        use crate::buffer::payload_pool::PayloadPool;
        use crate::span::limits::SpanLimits;
        use crate::span::record::{SpanRecord, ValueInput};
        let pool = PayloadPool::with_mib(4).expect("pool");
        let limits = SpanLimits::default();
        let long_key = "k".repeat(200);
        let long_value = "é".repeat(20_000);
        let medium = "m".repeat(127);
        let values: Vec<(&[u8], ValueInput)> = vec![
            (b"gen_ai.usage.input_tokens", ValueInput::Int(25)),
            (b"negative", ValueInput::Int(-1)),
            (b"gen_ai.request.model", ValueInput::Str(b"gpt-4o")),
            (b"empty", ValueInput::Str(b"")),
            (b"stream", ValueInput::Bool(true)),
            (b"off", ValueInput::Bool(false)),
            (b"temperature", ValueInput::Double(0.7)),
            (b"medium", ValueInput::Str(medium.as_bytes())),
            (long_key.as_bytes(), ValueInput::Int(1)),
            (b"prompt", ValueInput::Str(long_value.as_bytes())),
            (b"raw", ValueInput::Bytes(b"\x00\x01")),
            (b"ints", ValueInput::IntArray(&[1, 2, 3])),
        ];
        // SAFETY: all-zero bytes are an empty record.
        let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
        r.trace_id = [1; 16];
        r.span_id = [2; 8];
        r.name = r.store_text(b"op", usize::MAX, &pool).0;
        (r.start_unix_ns, r.end_unix_ns) = (10, 20);
        let mut limits_wide = limits;
        limits_wide.attribute_count = 64;
        for (k, v) in &values {
            r.set_attribute(k, v, &limits_wide, &pool).expect("set");
        }
        let live = SpanView::new(&r, &pool);
        let small = live
            .attribute_records()
            .filter(|a| live.small_attribute(a).is_some())
            .count();
        assert!(small >= 9, "only {small} attributes took the fast path");
        for cap in [usize::MAX, 100, 3] {
            let (mut fast, mut general) = (Vec::new(), Vec::new());
            put_span(&mut fast, &live, cap);
            put_span(&mut general, &SpanView::from_disk(&r, &pool), cap);
            assert!(fast == general, "cap {cap}");
        }
    }

    /// Spans of 1 to 10 attributes (around PRE_RESERVED_ATTRIBUTES, where
    /// `put_span` stops reserving room for every small attribute with the
    /// head; with and without a tracestate, which takes the general
    /// head's way), small ones (written unchecked into that room) with long ones
    /// (the general path, which may use it up) at every place among them,
    /// written after prefixes of 0 to 300 bytes into vectors with no spare
    /// room: the same bytes as the general path, and never a small
    /// attribute short of room (the check in `put_small_key_value_bytes`
    /// under test builds). Without the reservation after a general
    /// attribute, that check fails here.
    #[test]
    fn small_attributes_written_into_the_heads_room_are_the_same_bytes() {
        use crate::buffer::payload_pool::PayloadPool;
        use crate::span::limits::SpanLimits;
        use crate::span::record::{SpanRecord, ValueInput};
        let pool = PayloadPool::with_mib(8).expect("pool");
        let limits = SpanLimits::default();
        let long = "p".repeat(3000);
        let key = "gen_ai.request.model.with.a.long.key.name.of.some.length";
        let small = "s".repeat(60);
        let (mut spans, mut longs) = (0, 0);
        for (count, tracestate) in (1..=10usize).flat_map(|n| [(n, false), (n, true)]) {
            for long_at in (0..count).map(Some).chain([None]) {
                // SAFETY: all-zero bytes are an empty record.
                let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
                r.trace_id = [1; 16];
                r.span_id = [2; 8];
                r.name = r.store_text(b"op", usize::MAX, &pool).0;
                (r.start_unix_ns, r.end_unix_ns) = (10, 20);
                if tracestate {
                    // Its head goes the general way (`put_span_head`).
                    let t = r.store_text(b"vendor=1", usize::MAX, &pool).0;
                    r.rest_mut().tracestate = t;
                }
                for i in 0..count {
                    let k = format!("{key}{i}");
                    let v = if Some(i) == long_at || (long_at.is_some() && i == count - 1) {
                        ValueInput::Str(long.as_bytes())
                    } else {
                        ValueInput::Str(small.as_bytes())
                    };
                    r.set_attribute(k.as_bytes(), &v, &limits, &pool)
                        .expect("set");
                }
                let live = SpanView::new(&r, &pool);
                longs += live
                    .attribute_records()
                    .filter(|a| live.small_attribute(a).is_none())
                    .count();
                let mut general = Vec::new();
                put_span(&mut general, &SpanView::from_disk(&r, &pool), usize::MAX);
                for prefix in 0..300 {
                    let mut fast = Vec::with_capacity(prefix);
                    fast.resize(prefix, 9u8);
                    put_span(&mut fast, &live, usize::MAX);
                    assert!(
                        fast[..prefix].iter().all(|&b| b == 9) && fast[prefix..] == general[..],
                        "{count} attributes, long at {long_at:?}, after {prefix} bytes"
                    );
                }
                spans += 1;
            }
        }
        assert_eq!(spans, 130);
        assert!(longs > 50, "the general path was hardly taken: {longs}");
    }

    /// Every kind an attribute record holds, with keys and values around
    /// the lengths where a key-value's or a value's length stops fitting
    /// in one byte (127/128) or two (16383/16384), empty values,
    /// and complex values (an encoded AnyValue copied whole): written
    /// from the record (each kind's fast path, or its refusal) they are
    /// the bytes the general path writes for the same span read as from
    /// disk.
    #[test]
    fn each_attribute_kind_at_its_length_edges_is_the_same_bytes_from_the_record() {
        use crate::buffer::payload_pool::PayloadPool;
        use crate::export::otlp_decode::{decode_json, decode_proto};
        use crate::export::otlp_json::OtlpJsonEncoder;
        use crate::span::any_value::AnyValueRef;
        use crate::span::any_value::tests::{array, int, map, string};
        use crate::span::limits::SpanLimits;
        use crate::span::record::{SpanRecord, ValueInput};
        let pool = PayloadPool::with_mib(64).expect("pool");
        let limits = SpanLimits {
            attribute_count: 64,
            ..SpanLimits::default()
        };
        let text = "v".repeat(16_400);
        let keys = "k".repeat(130);
        let short_map = map(&[("a", string("b")), ("n", int(1))]);
        let long_map = map(&[("content", string(&text[..16_370]))]);
        let mixed = array(&[int(7), string("x")]);
        let (mut taken, mut records) = (0, Vec::new());
        for key_len in [
            1usize, 6, 100, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127, 128,
        ] {
            let key = &keys.as_bytes()[..key_len];
            let mut values = vec![
                ValueInput::Int(0),
                ValueInput::Int(-1),
                ValueInput::Int(127),
                ValueInput::Int(128),
                ValueInput::Int(i64::MAX),
                ValueInput::Double(0.0),
                ValueInput::Double(-2.5),
                ValueInput::Bool(false),
                ValueInput::Bool(true),
                ValueInput::AnyValue(AnyValueRef::check(&[]).expect("the empty value")),
                ValueInput::AnyValue(AnyValueRef::check(&short_map).expect("well formed")),
                ValueInput::AnyValue(AnyValueRef::check(&long_map).expect("well formed")),
                ValueInput::AnyValue(AnyValueRef::check(&mixed).expect("well formed")),
            ];
            for n in [0usize, 1, 2, 3, 4, 7, 8, 15, 16, 17, 32, 33] {
                values.push(ValueInput::Str(&text.as_bytes()[..n]));
            }
            // A string whose key-value body is 125 to 129 bytes, and
            // values around the two- and three-byte lengths.
            for n in (119usize..=124).map(|n| n.saturating_sub(key_len)) {
                values.push(ValueInput::Str(&text.as_bytes()[..n]));
            }
            for n in [
                125usize, 126, 127, 128, 16_370, 16_377, 16_378, 16_383, 16_384,
            ] {
                values.push(ValueInput::Str(&text.as_bytes()[..n]));
            }
            for (i, v) in values.iter().enumerate() {
                // SAFETY: all-zero bytes are an empty record.
                let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
                r.trace_id = [1; 16];
                r.span_id = [2; 8];
                r.name = r.store_text(b"op", usize::MAX, &pool).0;
                (r.start_unix_ns, r.end_unix_ns) = (10, 20);
                // Before and after it, a small attribute each.
                r.set_attribute(b"a", &ValueInput::Int(1), &limits, &pool)
                    .expect("set");
                r.set_attribute(key, v, &limits, &pool).expect("set");
                r.set_attribute(b"z", &ValueInput::Bool(true), &limits, &pool)
                    .expect("set");
                let live = SpanView::new(&r, &pool);
                taken += live
                    .attribute_records()
                    .filter(|a| live.small_attribute(a).is_some())
                    .count();
                for cap in [usize::MAX, 5] {
                    let (mut fast, mut general) = (vec![7u8], vec![7u8]);
                    put_span(&mut fast, &live, cap);
                    put_span(&mut general, &SpanView::from_disk(&r, &pool), cap);
                    assert!(fast == general, "key {key_len}, value {i}, cap {cap}");
                }
                records.push(r);
            }
        }
        assert!(taken > 1000, "the fast path was hardly taken: {taken}");
        // Both paths above share the key-value framing: the request they
        // make reads back as the JSON encoder's does.
        let views: Vec<SpanView> = records.iter().map(|r| SpanView::new(r, &pool)).collect();
        let resource = ResourceInfo::new("edges", &[]);
        let (mut proto, mut json) = (Vec::new(), Vec::new());
        OtlpProtoEncoder::new().encode(&resource, &views, &mut proto);
        OtlpJsonEncoder::new().encode(&resource, &views, &mut json);
        let from_proto = decode_proto(&proto).expect("the protobuf request reads back");
        assert_eq!(from_proto.len(), records.len());
        assert!(from_proto == decode_json(&json).expect("the JSON request reads back"));
    }

    #[test]
    fn oneof_values_are_written_even_when_zero() {
        let mut out = Vec::new();
        put_key_value(
            &mut out,
            9,
            &(Str::Plain(""), OtlpValue::Int(0)),
            usize::MAX,
        );
        // KeyValue{value: AnyValue{int_value: 0}}; the empty key is omitted.
        assert_eq!(out, [0x4a, 0x04, 0x12, 0x02, 0x18, 0x00]);
        out.clear();
        put_key_value(
            &mut out,
            9,
            &(Str::Plain("k"), OtlpValue::Double(0.5)),
            usize::MAX,
        );
        assert_eq!(
            out,
            [
                0x4a, 0x0e, 0x0a, 0x01, b'k', 0x12, 0x09, 0x21, 0, 0, 0, 0, 0, 0, 0xe0, 0x3f
            ]
        );
    }
}
