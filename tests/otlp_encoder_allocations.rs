//! Once its output buffer has grown, encoding a batch allocates nothing, in
//! either format: proved with a counting global allocator, not a timing.

use spanguard::buffer::payload_pool::PayloadPool;
use spanguard::export::otlp_json::OtlpJsonEncoder;
use spanguard::export::otlp_proto::OtlpProtoEncoder;
use spanguard::export::resource::ResourceInfo;
use spanguard::span::limits::SpanLimits;
use spanguard::span::record::{
    LinkContext, MARK_INTERRUPTED, MARK_PARENT_REMOTE, RawStr, STATUS_ERROR, SpanRecord, SpanView,
    ValueInput,
};

#[path = "support/noting_allocator.rs"]
mod noting_allocator;

use noting_allocator::{NotingAllocator, allocations_on_this_thread, count_on_this_thread};

#[global_allocator]
static GLOBAL: NotingAllocator = NotingAllocator {
    note: count_on_this_thread,
};

/// A span using every part of the record, so every encoder path runs:
/// text in the slot and across chunks, every value type, events, links.
fn rich_span(n: u8, pool: &PayloadPool) -> Box<SpanRecord> {
    // SAFETY: SpanRecord is plain data for which all-zero bytes are a valid
    // (empty) value.
    let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
    let limits = SpanLimits::default();
    r.trace_id = [n; 16];
    r.span_id = [n.wrapping_add(1); 8];
    r.parent_span_id = [7; 8];
    r.marks = MARK_PARENT_REMOTE | MARK_INTERRUPTED;
    r.signal = 6;
    r.kind = n % 6;
    r.start_unix_ns = 1_700_000_000_000_000_000;
    r.end_unix_ns = 1_700_000_000_000_000_999;
    r.status_code = STATUS_ERROR;
    r.name = r.store_text("span \"name\"\n€".as_bytes(), 256, pool).0;
    r.rest_mut().status_message = r.store_text(b"boom", usize::MAX, pool).0;
    r.rest_mut().tracestate = r.store_text(b"a=b", 256, pool).0;
    let big = vec![b'p'; 9_000];
    let strs = [RawStr::new(b"a"), RawStr::new(b"bc")];
    let attrs: Vec<(&[u8], ValueInput)> = vec![
        (b"s", ValueInput::Str(&[b'x'; 200])),
        (b"prompt", ValueInput::Str(&big)),
        (b"i", ValueInput::Int(-5)),
        (b"d", ValueInput::Double(1e300)),
        (b"nan", ValueInput::Double(f64::NAN)),
        (b"b", ValueInput::Bool(true)),
        (b"bytes", ValueInput::Bytes(&[0, 1, 2, 3, 255])),
        (b"strs", ValueInput::StrArray(&strs)),
        (b"ints", ValueInput::IntArray(&[1, -2])),
        (b"doubles", ValueInput::DoubleArray(&[0.5])),
        (b"bools", ValueInput::BoolArray(&[1, 0])),
    ];
    for (k, v) in &attrs {
        r.set_attribute(k, v, &limits, pool).expect("fits");
    }
    r.add_event(b"event", 1, &[(b"e", ValueInput::Int(1))], &limits, pool)
        .expect("event");
    r.add_link(
        LinkContext {
            trace_id: [3; 16],
            span_id: [4; 8],
            trace_flags: 1,
            remote: Some(true),
        },
        b"a=b",
        &[(b"l", ValueInput::Str(b"v"))],
        &limits,
        pool,
    )
    .expect("link");
    r.rest_mut().dropped_events = 2;
    r
}

#[test]
fn encoding_a_batch_allocates_nothing_once_the_buffer_has_grown() {
    let resource = ResourceInfo::new("alloc-test", &[]);
    let pool = PayloadPool::with_mib(16).expect("pool");
    let records: Vec<Box<SpanRecord>> = (0..256).map(|n| rich_span(n as u8, &pool)).collect();
    let batch: Vec<SpanView> = records.iter().map(|r| SpanView::new(r, &pool)).collect();
    let mut proto = OtlpProtoEncoder::new();
    let mut json = OtlpJsonEncoder::new();
    let mut out = Vec::new();

    // Warm-up: `out` grows to the largest batch it will hold. That counts,
    // which also shows the counter sees this thread's allocations.
    let before_warm_up = allocations_on_this_thread();
    proto.encode(&resource, &batch, &mut out);
    json.encode(&resource, &batch, &mut out);
    let proto_len = {
        proto.encode(&resource, &batch, &mut out);
        out.len()
    };
    assert!(proto_len > 256 * 9_000, "the batch was encoded");
    assert!(allocations_on_this_thread() > before_warm_up);

    let before = allocations_on_this_thread();
    for _ in 0..10 {
        proto.encode(&resource, &batch, &mut out);
        json.encode(&resource, &batch, &mut out);
        proto.encode(&resource, &batch[..17], &mut out);
    }
    assert_eq!(allocations_on_this_thread() - before, 0);
}
