//! Complex values past what spanguard reads (`SPANGUARD_MAX_DEPTH_LIMIT`,
//! 128 levels) given through the C ABI: a value 10,000 levels deep and one
//! 100,000 elements wide, set by `spanguard_span_set_anyvalue` on a thread
//! whose stack is 256 KiB (a walk that recursed one frame a level would
//! overflow it long before level 10,000). No crash: the call answers its
//! documented code (TRUNCATED for the deep one, whose arrays past the
//! limit are replaced by the empty value), what is exported is cut at the
//! limit, and each value cut is counted in `values_truncated`.

mod support;
use support::len_field;

use std::ffi::CString;

use spanguard::export::otlp_decode::{Value, decode_json};
use spanguard::ffi::result::spanguard_result;
use spanguard::ffi::span::{spanguard_span_begin, spanguard_span_end, spanguard_span_set_anyvalue};
use spanguard::ffi::tracer::{
    spanguard_config_init, spanguard_flush, spanguard_stats, spanguard_tracer,
    spanguard_tracer_free, spanguard_tracer_new,
};
use spanguard::ffi::types::{spanguard_config, spanguard_counters, spanguard_span};

/// An `AnyValue`: `levels` arrays one in the other around the int 1.
fn nested_arrays(levels: usize) -> Vec<u8> {
    let mut value = vec![0x18, 1];
    for _ in 0..levels {
        value = len_field(0x2a, &len_field(0x0a, &value));
    }
    value
}

/// An `AnyValue`: one array of `n` ints.
fn wide_array(n: usize) -> Vec<u8> {
    let element = len_field(0x0a, &[0x18, 1]);
    len_field(0x2a, &element.repeat(n))
}

/// How many arrays deep `v` goes, and whether the innermost holds the
/// empty value (the cut) rather than the int 1.
fn depth(v: &Value) -> (usize, bool) {
    let mut v = v;
    let mut levels = 0;
    while let Value::Array(items) = v {
        assert_eq!(items.len(), 1, "one element a level");
        levels += 1;
        v = &items[0];
    }
    (levels, *v == Value::Empty)
}

/// A tracer writing to a sink directory under `dir`, with
/// `value_depth_limit` (0: the default, 64).
fn tracer(dir: &std::path::Path, value_depth_limit: u32) -> *mut spanguard_tracer {
    let sink = CString::new(dir.join("spans").to_str().unwrap()).unwrap();
    let spool = CString::new(dir.join("spool").to_str().unwrap()).unwrap();
    // SAFETY: all-zero is a valid starting point; init fills every field.
    let mut cfg: spanguard_config = unsafe { std::mem::zeroed() };
    // SAFETY: cfg is a spanguard_config of that size.
    let rc = unsafe { spanguard_config_init(&mut cfg, std::mem::size_of::<spanguard_config>()) };
    assert_eq!(rc, spanguard_result::Ok);
    cfg.sink_dir = sink.as_ptr();
    cfg.spool_dir = spool.as_ptr();
    cfg.install_signal_handlers = 0;
    cfg.payload_pool_mib = 64;
    cfg.sink_max_line_bytes = 16 << 20;
    if value_depth_limit > 0 {
        cfg.value_depth_limit = value_depth_limit;
    }
    let mut t = std::ptr::null_mut();
    // SAFETY: cfg and the strings it points at live through the call (the
    // tracer copies them).
    let rc = unsafe { spanguard_tracer_new(&cfg, &mut t) };
    assert_eq!(rc, spanguard_result::Ok);
    t
}

/// The spans the tracer's sink holds, decoded.
fn sunk(dir: &std::path::Path) -> Vec<spanguard::export::otlp_decode::DecodedSpan> {
    let mut spans = Vec::new();
    for entry in std::fs::read_dir(dir.join("spans")).expect("sink dir") {
        let text = std::fs::read(entry.unwrap().path()).unwrap();
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            spans.extend(decode_json(line).expect("OTLP/JSON"));
        }
    }
    spans
}

#[derive(Clone, Copy)]
struct Tracer(*mut spanguard_tracer);
// SAFETY: a spanguard_tracer is thread-safe (its header says so).
unsafe impl Send for Tracer {}

#[test]
fn values_past_the_checkers_limit_are_cut_at_it_on_a_small_stack() {
    let deep = nested_arrays(10_000);
    let wide = wide_array(100_000);
    for (limit, kept) in [(0u32, 64usize), (128, 128)] {
        let dir =
            std::env::temp_dir().join(format!("sg-ffi-past-limit-{limit}-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        let t = Tracer(tracer(&dir, limit));
        let (deep_c, wide_c) = (deep.clone(), wide.clone());
        // The caller's thread, with a small stack, makes every call that
        // reads the values.
        let codes = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || {
                let t = t;
                let mut s: spanguard_span = 0;
                let set = |s, key: &str, v: &[u8]| {
                    // SAFETY: key and v are valid for their lengths.
                    unsafe {
                        spanguard_span_set_anyvalue(
                            s,
                            key.as_ptr().cast(),
                            key.len(),
                            v.as_ptr(),
                            v.len(),
                        )
                    }
                };
                // SAFETY: a live tracer, a valid name and out pointer.
                let rc = unsafe {
                    spanguard_span_begin(t.0, c"deep.and.wide".as_ptr(), 13, 0, 0, &mut s)
                };
                assert_eq!(rc, spanguard_result::Ok);
                let codes = (set(s, "deep", &deep_c), set(s, "wide", &wide_c));
                assert_eq!(spanguard_span_end(s), spanguard_result::Ok);
                codes
            })
            .expect("thread")
            .join()
            .expect("no crash, no stack overflow on 256 KiB");
        assert_eq!(
            codes,
            (spanguard_result::Truncated, spanguard_result::Ok),
            "limit {limit}: the deep value cut, the wide one kept"
        );
        assert_eq!(spanguard_flush(t.0, 30_000), spanguard_result::Ok);
        // SAFETY: all-zero counters with their size set, as the header asks.
        let mut stats: spanguard_counters = unsafe { std::mem::zeroed() };
        stats.struct_size = std::mem::size_of::<spanguard_counters>() as u32;
        // SAFETY: a live tracer and a counters struct of that size.
        assert_eq!(
            unsafe { spanguard_stats(t.0, &mut stats) },
            spanguard_result::Ok
        );
        assert_eq!(
            stats.values_truncated, 1,
            "limit {limit}: the deep value once"
        );
        let spans = sunk(&dir);
        assert_eq!(spans.len(), 1, "limit {limit}");
        let value = |key: &str| {
            let found = spans[0].attributes.iter().find(|(k, _)| k == key);
            found
                .unwrap_or_else(|| panic!("{key}: {:?}", spans[0].name))
                .1
                .clone()
        };
        assert_eq!(
            depth(&value("deep")),
            (kept, true),
            "limit {limit}: arrays kept to the limit, the empty value past it"
        );
        let Value::Array(items) = value("wide") else {
            panic!("wide: not an array");
        };
        assert_eq!(items.len(), 100_000, "limit {limit}: every element");
        assert!(items.iter().all(|v| *v == Value::Int(1)));
        // SAFETY: made above, freed once, no call on it after.
        unsafe { spanguard_tracer_free(t.0) };
        std::fs::remove_dir_all(&dir).ok();
    }
}
