//! What the encoders write, read back by the independent decoder. Spans
//! with any keys and values (any bytes, invalid UTF-8 included, up to a few
//! hundred KB, arrays and bytes; the pool may run out) are encoded as OTLP
//! protobuf by one encoder reused from request to request and by a fresh
//! one, and as OTLP/JSON. The protobuf bodies must be the same bytes (the
//! reused encoder reserves each request's length room from the last one),
//! both formats must decode, to the same spans, each with every attribute
//! its record holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanguard::buffer::payload_pool::PayloadPool;
use spanguard::export::otlp_decode::{decode_json, decode_proto};
use spanguard::export::otlp_json::OtlpJsonEncoder;
use spanguard::export::otlp_proto::OtlpProtoEncoder;
use spanguard::export::resource::ResourceInfo;
use spanguard::span::limits::SpanLimits;
use spanguard::span::record::{RawStr, SpanRecord, SpanView, ValueInput};

mod input;
use input::Input;

/// This target's readings of the input, beside `input`'s bytes.
impl Input<'_> {
    /// Up to 63 bytes of the input, repeated up to 4,096 times.
    fn text(&mut self) -> Vec<u8> {
        let n = (self.byte() % 64) as usize;
        let base = self.bytes(n);
        let times = if self.byte() < 32 {
            1 + (self.byte() as usize) * 16
        } else {
            1
        };
        base.repeat(times)
    }
}

fn record(input: &mut Input, pool: &PayloadPool, limits: &SpanLimits, i: usize) -> Box<SpanRecord> {
    // SAFETY: all-zero bytes are an empty record.
    let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
    r.trace_id = [1; 16];
    r.span_id = (i as u64 + 1).to_be_bytes();
    r.start_unix_ns = 1_700_000_000_000_000_000;
    r.end_unix_ns = r.start_unix_ns + 1;
    let name = input.text();
    r.name = r.store_text(&name, 256, pool).0;
    for _ in 0..input.byte() % 12 {
        let key_len = (input.byte() % 24) as usize + 1;
        let key = input.bytes(key_len);
        let text = input.text();
        let words: Vec<i64> = text
            .chunks(8)
            .map(|c| c.iter().fold(0i64, |a, &b| a << 8 | b as i64))
            .collect();
        let strings: Vec<RawStr> = text.chunks(5).map(RawStr::new).collect();
        let value = match input.byte() % 7 {
            0 => ValueInput::Str(&text),
            1 => ValueInput::Int(words.first().copied().unwrap_or(0)),
            2 => ValueInput::Bool(text.len() % 2 == 1),
            3 => ValueInput::Bytes(&text),
            4 => ValueInput::IntArray(&words),
            5 => ValueInput::StrArray(&strings),
            _ => ValueInput::BoolArray(&text),
        };
        // Not stored (a limit, or the pool ran out): counted, and the
        // decoded span must show the count.
        let _ = r.set_attribute(key, &value, limits, pool);
    }
    r
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    // Small, so that large values can use it up.
    let pool = PayloadPool::with_mib(2).expect("pool");
    let limits = SpanLimits::default();
    let records: Vec<Box<SpanRecord>> = (0..1 + input.byte() as usize % 6)
        .map(|i| record(&mut input, &pool, &limits, i))
        .collect();
    let views: Vec<SpanView> = records.iter().map(|r| SpanView::new(r, &pool)).collect();
    let resource = ResourceInfo::new("fuzz", &[]);
    let mut reused = OtlpProtoEncoder::new();
    let split = input.byte() as usize % views.len();
    // Requests of different sizes, one after another, through one encoder.
    for part in [&views[..split], &views[..], &views[split..], &views[..1]] {
        if part.is_empty() {
            continue;
        }
        let (mut got, mut fresh, mut json) = (Vec::new(), Vec::new(), Vec::new());
        reused.encode(&resource, part, &mut got);
        OtlpProtoEncoder::new().encode(&resource, part, &mut fresh);
        assert!(got == fresh, "a reused encoder wrote other bytes");
        OtlpJsonEncoder::new().encode(&resource, part, &mut json);
        let from_proto = decode_proto(&got).expect("our protobuf decodes");
        let from_json = decode_json(&json).expect("our OTLP/JSON decodes");
        assert_eq!(from_proto.len(), part.len());
        assert!(from_proto == from_json, "the two formats disagree");
        for (decoded, view) in from_proto.iter().zip(part) {
            assert_eq!(
                decoded.attributes.len(),
                view.record.attribute_count as usize
            );
            assert_eq!(
                decoded.dropped_attributes,
                view.record.rest().dropped_attributes as u32
            );
        }
    }
});
