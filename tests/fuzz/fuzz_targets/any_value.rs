//! Complex attribute values (`span::any_value`: OTLP `AnyValue` messages,
//! `spanguard_span_set_anyvalue`, `SPANGUARD_VALUE_ANY`): any bytes to the
//! checker, against the independent reference reader (`any_ref`).
//!
//! The input: a byte of mode (which limits; whether to nest the rest in
//! arrays, up to 100,000 levels, so that deep values come without a seed
//! of that size), then the message. Checked:
//! - the checker (`AnyValueRef::check`, and `AnyValueCopy::of` as the C
//!   ABI calls it) accepts exactly what the reference accepts, never
//!   panicking nor overflowing the stack however deep the message nests;
//! - for an accepted value, what the limits do: `limited_by` says whether
//!   the tree changes, and `limited` writes a well-formed message that the
//!   reference reads as its own tree with each string cut to the length
//!   limit's characters, each bytes value to its bytes, each array or map
//!   deeper than the depth limit (or past the highest) the empty value;
//! - stored in a span (`SpanRecord::set_attribute`): TRUNCATED exactly
//!   when the limits change it, the stored bytes that tree (or the empty
//!   value, TRUNCATED, when the pool cannot hold it whole), well formed as
//!   a value read back from disk must be;
//! - exported: the OTLP protobuf request (`decode_proto`) and the OTLP/JSON
//!   one (`decode_json`) both hold that tree (doubles to the bit; NaN in
//!   JSON any NaN).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanguard::buffer::payload_pool::PayloadPool;
use spanguard::export::otlp_decode::{Value, decode_json, decode_proto};
use spanguard::export::otlp_json::OtlpJsonEncoder;
use spanguard::export::otlp_proto::OtlpProtoEncoder;
use spanguard::export::resource::ResourceInfo;
use spanguard::span::any_value::{AnyValueCopy, AnyValueRef, MAX_DEPTH_LIMIT, is_well_formed};
use spanguard::span::limits::SpanLimits;
use spanguard::span::record::{SpanRecord, SpanView, Value as Stored, ValueInput};

mod any_ref;
mod input;
use any_ref::Node;
use input::Input;

/// Levels of arrays around the message, a mode's bits 5-7 pick (0: none).
const NESTS: [usize; 8] = [0, 63, 64, 65, 127, 128, 129, 100_000];
/// The value length limit, bits 0-2 (`u32::MAX`: none).
const LENGTHS: [u32; 8] = [u32::MAX, 0, 1, 2, 3, 8, 64, u32::MAX];
/// The depth limit, bits 3-4 and the next byte.
fn depth_limit(bits: u8, next: u8) -> u32 {
    match bits {
        0 => 64,
        1 => MAX_DEPTH_LIMIT,
        2 => 1 + next as u32 % 4,
        _ => next as u32 % (MAX_DEPTH_LIMIT + 1),
    }
}

/// The reference's tree (no `Node::Past` left) as the OTLP decoder's.
fn to_value(node: &Node) -> Value {
    match node {
        Node::Str(s) => Value::Str(s.clone()),
        Node::Bool(b) => Value::Bool(*b),
        Node::Int(i) => Value::Int(*i),
        Node::Double(d) => Value::Double(f64::from_bits(*d)),
        Node::Bytes(b) => Value::Bytes(b.clone()),
        Node::Array(items) => Value::Array(items.iter().map(to_value).collect()),
        Node::Map(m) => Value::Map(m.iter().map(|(k, v)| (k.clone(), to_value(v))).collect()),
        Node::Empty | Node::Past => Value::Empty,
    }
}

/// Whether a decoded value is `want`: doubles to the bit, or with
/// `any_nan` any NaN for a NaN (OTLP/JSON writes every NaN as "NaN").
fn same(got: &Value, want: &Value, any_nan: bool) -> bool {
    match (got, want) {
        (Value::Double(a), Value::Double(b)) => {
            a.to_bits() == b.to_bits() || (any_nan && a.is_nan() && b.is_nan())
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y, any_nan))
        }
        (Value::Map(a), Value::Map(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|((ka, va), (kb, vb))| ka == kb && same(va, vb, any_nan))
        }
        _ => got == want,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mode = input.byte();
    let next = input.byte();
    let len_limit = LENGTHS[(mode & 7) as usize];
    let depth = depth_limit((mode >> 3) & 3, next);
    let nest = NESTS[(mode >> 5) as usize];
    let message = any_ref::nest(nest, input.bytes(data.len()));

    let want = any_ref::read(&message);
    let got = AnyValueRef::check(&message);
    assert_eq!(
        want.is_some(),
        got.is_ok(),
        "checker and reference disagree: reference {want:?}"
    );
    let copy = AnyValueCopy::of(&message);
    assert_eq!(
        copy.is_ok(),
        got.is_ok(),
        "AnyValueCopy::of and check disagree"
    );
    let (Some(full), Ok(v)) = (want, got) else {
        return;
    };

    let limits = SpanLimits {
        attribute_value_length: len_limit,
        attribute_value_depth: depth,
        ..SpanLimits::default()
    };
    let (len, depth) = (limits.value_len(), limits.value_depth());
    let expect = any_ref::limited(&full, len, depth, 1);
    let (longest, deepest) = any_ref::longest_and_deepest(&full, 1);
    assert_eq!(v.cut_by(len), longest > len, "cut_by({len})");
    assert_eq!(
        v.deeper_than(depth),
        deepest > depth,
        "deeper_than({depth})"
    );
    let changed = expect != full;
    assert_eq!(
        v.limited_by(len, depth),
        changed,
        "limited_by({len}, {depth})"
    );
    let cut = v.limited(len, depth);
    assert!(is_well_formed(&cut), "limited() wrote a malformed value");
    assert_eq!(
        any_ref::read(&cut).as_ref(),
        Some(&expect),
        "limited({len}, {depth})"
    );

    // Stored in a span, read back, exported in both encodings.
    let pool = PayloadPool::with_mib(2).expect("pool");
    // SAFETY: all-zero bytes are an empty record.
    let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
    r.trace_id = [1; 16];
    r.span_id = [2; 8];
    r.start_unix_ns = 1_700_000_000_000_000_000;
    r.end_unix_ns = r.start_unix_ns + 1;
    if next & 0x80 != 0 {
        // Set before under the same key: the value replaces it.
        let small = any_ref::encode(&Node::Str("x".repeat(next as usize)));
        let small = AnyValueRef::check(&small).expect("well formed");
        let _ = r.set_attribute(b"v", &ValueInput::AnyValue(small), &limits, &pool);
    }
    let value = copy.expect("accepted");
    let outcome = r
        .set_attribute(b"v", &ValueInput::AnyValue(value.value()), &limits, &pool)
        .expect("one attribute, a fresh pool: stored");
    let view = SpanView::new(&r, &pool);
    let stored: Vec<u8> = view
        .attributes()
        .find_map(|(k, v)| match v {
            Stored::AnyValue(b) if k.to_string_lossy() == "v" => Some(b.contiguous().into_owned()),
            _ => None,
        })
        .expect("the attribute is there, a complex value");
    let expect = if stored.is_empty() && expect != Node::Empty {
        // Too big for the pool whole: the empty value, said.
        assert!(outcome.truncated, "a value left empty but not TRUNCATED");
        Node::Empty
    } else {
        assert_eq!(outcome.truncated, changed, "TRUNCATED when the limits cut");
        if !changed {
            // The limits change nothing: stored as given, byte for byte.
            assert_eq!(stored, message, "a value within the limits changed");
        }
        expect
    };
    assert!(is_well_formed(&stored), "stored a malformed value");
    assert_eq!(
        any_ref::read(&stored).as_ref(),
        Some(&expect),
        "stored value"
    );

    let resource = ResourceInfo::new("fuzz", &[]);
    let (mut proto, mut json) = (Vec::new(), Vec::new());
    OtlpProtoEncoder::new().encode(&resource, &[view], &mut proto);
    OtlpJsonEncoder::new().encode(&resource, &[view], &mut json);
    let want = to_value(&expect);
    for (format, decoded, any_nan) in [
        ("protobuf", decode_proto(&proto), false),
        ("JSON", decode_json(&json), true),
    ] {
        let spans = decoded.unwrap_or_else(|e| panic!("our {format} does not decode: {e:?}"));
        assert_eq!(spans.len(), 1);
        let got = spans[0]
            .attribute("v")
            .unwrap_or_else(|| panic!("{format}: the attribute is missing"));
        assert!(
            same(got, &want, any_nan),
            "{format}: exported {got:?}, want {want:?}"
        );
    }
});
