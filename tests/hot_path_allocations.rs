//! The hot path allocates nothing once a thread is warm: proved with a
//! counting global allocator, not with a timing.

use std::time::Duration;

use spanguard::config::TracerConfig;
use spanguard::span::record::LinkContext;
use spanguard::tracer::{AttrInput, Parent, Tracer};

#[path = "support/noting_allocator.rs"]
mod noting_allocator;

use noting_allocator::{NotingAllocator, allocations_on_this_thread, count_on_this_thread};

#[global_allocator]
static GLOBAL: NotingAllocator = NotingAllocator {
    note: count_on_this_thread,
};

#[test]
fn begin_attributes_end_allocate_nothing_on_a_warm_thread() {
    let dir = std::env::temp_dir().join(format!("sg-alloc-{}", std::process::id()));
    let config = TracerConfig {
        sink_dir: dir.join("spans"),
        spool_dir: dir.join("spool"),
        install_signal_handlers: false,
        schedule_delay: Duration::from_millis(20),
        ..TracerConfig::default()
    };
    let tracer = Tracer::new(config).expect("tracer");
    let record = |i: i64| {
        let (root, _) = tracer.begin(b"root", Parent::None, 1).expect("begin");
        let (child, _) = tracer
            .begin(b"llm.call", Parent::Local(root), 3)
            .expect("begin");
        tracer
            .set_attribute(child, b"gen_ai.request.model", AttrInput::Str(b"gpt-4o"))
            .expect("attr");
        tracer
            .set_attribute(child, b"tokens", AttrInput::Int(i))
            .expect("attr");
        tracer
            .set_attribute(child, b"ok", AttrInput::Bool(true))
            .expect("attr");
        tracer
            .add_event(
                child,
                b"retry",
                0,
                &[(b"attempt".as_slice(), AttrInput::Int(2))],
            )
            .expect("event");
        let linked = LinkContext {
            trace_id: [0x0a; 16],
            span_id: [0xb7; 8],
            trace_flags: 1,
            remote: Some(true),
        };
        tracer
            .add_link(
                child,
                linked,
                b"congo=t61rcWkgMzE",
                &[(b"why".as_slice(), AttrInput::Str(b"retry of"))],
            )
            .expect("link");
        tracer.end(child, 0).expect("end");
        tracer.end(root, 0).expect("end");
    };
    // An LLM-sized span: its prompt, an event body and arrays go to the
    // payload pool, which allocates nothing either.
    let prompt = vec![b'p'; 100_000];
    let body = vec![b'b'; 20_000];
    let ints = [1i64, 2, 3];
    let large = |i: i64| {
        let (s, _) = tracer.begin(b"llm.chat", Parent::None, 3).expect("begin");
        tracer
            .set_attribute(s, b"gen_ai.prompt", AttrInput::Str(&prompt))
            .expect("prompt");
        tracer
            .set_attribute(s, b"gen_ai.usage.input_tokens", AttrInput::Int(i))
            .expect("tokens");
        tracer
            .set_attribute(s, b"ints", AttrInput::IntArray(&ints))
            .expect("ints");
        tracer
            .add_event(
                s,
                b"gen_ai.content.completion",
                0,
                &[(b"body".as_slice(), AttrInput::Str(&body))],
            )
            .expect("event");
        tracer.end(s, 0).expect("end");
    };
    record(0); // warm-up: this thread's id generator seeds itself
    large(0);
    let before = allocations_on_this_thread();
    for i in 0..20_000 {
        record(i);
        if i % 20 == 0 {
            large(i);
            // Let the exporter give the chunks back now and then, so the
            // pool does not run out (cutting would allocate nothing
            // either, but this test wants whole values).
            if i % 400 == 0 {
                assert!(
                    tracer
                        .flush(Duration::from_secs(30))
                        .expect("flush")
                        .is_done()
                );
            }
        }
    }
    let after = allocations_on_this_thread();
    assert!(
        tracer
            .flush(Duration::from_secs(30))
            .expect("flush")
            .is_done()
    );
    assert_eq!(after - before, 0, "the hot path allocated");
    let stats = tracer.stats();
    assert_eq!(stats.spans_exported, 2 * 20_001 + 1_001);
    assert_eq!(stats.values_truncated, 0);
    assert_eq!(stats.dropped_buffer_full, 0);
    drop(tracer);
    std::fs::remove_dir_all(&dir).ok();
}
