//! Once its output buffer has grown, encoding a batch allocates nothing, in
//! either format: proved with a counting global allocator, not a timing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use spanguard::export::otlp_json::OtlpJsonEncoder;
use spanguard::export::otlp_proto::OtlpProtoEncoder;
use spanguard::export::resource::ResourceInfo;
use spanguard::span::limits::MAX_VALUE_BYTES;
use spanguard::span::record::{
    EventRecord, LinkRecord, MARK_INTERRUPTED, MARK_PARENT_REMOTE, OWNER_EVENT_BASE,
    OWNER_LINK_BASE, OWNER_SPAN, STATUS_ERROR, SpanRecord, ValueKind,
};

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same layout contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations_on_this_thread() -> u64 {
    ALLOCATIONS.with(|c| c.get())
}

/// A span using every part of the record, so every encoder path runs.
fn rich_span(n: u8) -> Box<SpanRecord> {
    // SAFETY: SpanRecord is plain data for which all-zero bytes are a valid
    // (empty) value.
    let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
    r.trace_id = [n; 16];
    r.span_id = [n.wrapping_add(1); 8];
    r.parent_span_id = [7; 8];
    r.marks = MARK_PARENT_REMOTE | MARK_INTERRUPTED;
    r.signal = 6;
    r.kind = n % 6;
    r.start_unix_ns = 1_700_000_000_000_000_000;
    r.end_unix_ns = 1_700_000_000_000_000_999;
    r.status_code = STATUS_ERROR;
    r.name = r.store_text("span \"name\"\n€".as_bytes(), 256).0;
    r.status_message = r.store_text(b"boom", MAX_VALUE_BYTES).0;
    r.tracestate = r.store_text(b"a=b", 256).0;
    r.push_attribute(OWNER_SPAN, b"s", ValueKind::String, 0, &[b'x'; 200]);
    r.push_attribute(OWNER_SPAN, b"i", ValueKind::Int, -5i64 as u64, b"");
    r.push_attribute(OWNER_SPAN, b"d", ValueKind::Double, 1e300f64.to_bits(), b"");
    r.push_attribute(
        OWNER_SPAN,
        b"nan",
        ValueKind::Double,
        f64::NAN.to_bits(),
        b"",
    );
    r.push_attribute(OWNER_SPAN, b"b", ValueKind::Bool, 1, b"");
    let event_name = r.store_text(b"event", 256).0;
    r.events[0] = EventRecord {
        name: event_name,
        _reserved: 0,
        time_unix_ns: 1,
    };
    r.event_count = 1;
    r.push_attribute(OWNER_EVENT_BASE, b"e", ValueKind::Int, 1, b"");
    r.links[0] = LinkRecord {
        trace_id: [3; 16],
        span_id: [4; 8],
        tracestate: r.tracestate,
        trace_flags: 1,
        _reserved: [0; 3],
    };
    r.link_count = 1;
    r.push_attribute(OWNER_LINK_BASE, b"l", ValueKind::String, 0, b"v");
    r.dropped_events = 2;
    r
}

#[test]
fn encoding_a_batch_allocates_nothing_once_the_buffer_has_grown() {
    let resource = ResourceInfo::new("alloc-test", &[]);
    let records: Vec<Box<SpanRecord>> = (0..256).map(|n| rich_span(n as u8)).collect();
    let batch: Vec<&SpanRecord> = records.iter().map(|r| &**r).collect();
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
    assert!(proto_len > 256 * 300, "the batch was encoded");
    assert!(allocations_on_this_thread() > before_warm_up);

    let before = allocations_on_this_thread();
    for _ in 0..10 {
        proto.encode(&resource, &batch, &mut out);
        json.encode(&resource, &batch, &mut out);
        proto.encode(&resource, &batch[..17], &mut out);
    }
    assert_eq!(allocations_on_this_thread() - before, 0);
}
