//! Requests holding one span with a map or an array nested 1 to 65 deep,
//! as a loopback backend receives them from a tracer with the default
//! `value_depth_limit` (64): kept to 64 levels, the 65th replaced. The
//! bodies are written to target/value-depth (SPANGUARD_DEPTH_DIR sets
//! where), for `tests/python/value_depth_limit.py` to find the depth at
//! which a protobuf decoder with a nesting limit (Python's upb: 100
//! messages) refuses the request.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spanguard::config::{Compression, TracerConfig};
use spanguard::span::any_value::AnyValueRef;
use spanguard::tracer::{AttrInput, Parent};

mod support;
use support::nested_value as nested;

fn out_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    match std::env::var_os("SPANGUARD_DEPTH_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target").join("value-depth"),
    }
}

#[test]
fn nested_values_arrive_to_the_default_depth_limit() {
    let taken: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let keep = Arc::clone(&taken);
    let (url, closed) = support::backend(move |body| {
        keep.lock().unwrap().push(body.to_vec());
        200
    });
    let (tracer, dir) = support::tracer_to(
        "value-depth",
        &url,
        TracerConfig {
            compression: Compression::None,
            schedule_delay: Duration::from_secs(600),
            ..TracerConfig::default()
        },
    );
    let out = out_dir();
    std::fs::create_dir_all(&out).expect("out dir");
    for map in [true, false] {
        let kind = if map { "map" } else { "array" };
        for depth in 1..=65u32 {
            let value = nested(map, depth);
            let (s, _) = tracer.begin(b"nested", Parent::None, 3).expect("begin");
            let any = AnyValueRef::check(&value).expect("a well-formed AnyValue");
            tracer
                .set_attribute(s, b"deep", AttrInput::AnyValue(any))
                .expect("set");
            tracer.end(s, 0).expect("end");
            let before = tracer.stats().values_truncated;
            support::flush_done(&tracer, Duration::from_secs(30));
            let body = taken.lock().unwrap().pop().expect("one request");
            let cut = tracer.stats().values_truncated - before;
            assert_eq!(cut, u64::from(depth > 64), "{kind} {depth}");
            std::fs::write(out.join(format!("{kind}-{depth}.pb")), body).expect("write");
        }
    }
    tracer.shutdown(Duration::from_secs(10)).ok();
    closed.store(true, std::sync::atomic::Ordering::Release);
    std::fs::remove_dir_all(&dir).ok();
}
