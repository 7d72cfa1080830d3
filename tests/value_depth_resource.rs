//! A resource attribute nested deeper than a receiver's protobuf decoder
//! takes (Python's upb stops at 100 messages: measured by
//! tests/python/value_depth_limit.py, a span attribute of 32 maps) is in
//! every request: each was refused whole, and splitting could find no
//! span to blame. A loopback backend that judges each request as such a
//! decoder does (its depth in messages, read by the OTLP schema written
//! here, not by spanguard's decoder) must now receive every span, the
//! resource's value emptied past 16 levels, counted once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spanguard::config::{Compression, ResourceValue, TracerConfig};
use spanguard::pipeline::ScopeGiven;
use spanguard::tracer::{AttrInput, Parent};

mod support;

/// An AnyValue: `depth` maps (`{"k": ...}`) one in the other around "x".
fn nested_maps(depth: u32) -> Vec<u8> {
    support::nested_value(true, depth)
}

/// The OTLP messages a request nests, by name.
#[derive(Clone, Copy, PartialEq, Debug)]
enum M {
    Request,
    ResourceSpans,
    Resource,
    ScopeSpans,
    Scope,
    Span,
    Event,
    Link,
    KeyValue,
    AnyValue,
    List,
}

/// The message field `number` of `m` holds, if any.
fn child(m: M, number: u64) -> Option<M> {
    Some(match (m, number) {
        (M::Request, 1) => M::ResourceSpans,
        (M::ResourceSpans, 1) => M::Resource,
        (M::ResourceSpans, 2) => M::ScopeSpans,
        (M::ScopeSpans, 1) => M::Scope,
        (M::ScopeSpans, 2) => M::Span,
        (M::Span, 11) => M::Event,
        (M::Span, 13) => M::Link,
        (M::Resource, 1)
        | (M::Scope, 3)
        | (M::Span, 9)
        | (M::Event, 3)
        | (M::Link, 4)
        | (M::List, 1) => M::KeyValue,
        (M::KeyValue, 2) => M::AnyValue,
        (M::AnyValue, 5 | 6) => M::List,
        _ => return None,
    })
}

fn varint(buf: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = buf[*pos];
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            break;
        }
    }
    v
}

/// How many messages deep `buf` (a message `m` at depth `depth`) goes,
/// as a decoder with a recursion limit counts; `maps` gets how many maps
/// deep each resource or scope attribute's value goes.
fn message_depth(buf: &[u8], m: M, depth: usize, maps: &mut Vec<usize>) -> usize {
    let mut deepest = depth;
    let mut pos = 0;
    while pos < buf.len() {
        let key = varint(buf, &mut pos);
        let (number, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                varint(buf, &mut pos);
            }
            1 => pos += 8,
            5 => pos += 4,
            2 => {
                let len = varint(buf, &mut pos) as usize;
                let inner = &buf[pos..pos + len];
                pos += len;
                if let Some(c) = child(m, number) {
                    let d = message_depth(inner, c, depth + 1, maps);
                    if matches!(m, M::Resource | M::Scope) {
                        // A resource or scope attribute: KeyValue at
                        // depth + 1, its value one more, three messages a
                        // map.
                        maps.push((d - (depth + 2)) / 3);
                    }
                    deepest = deepest.max(d);
                }
            }
            _ => panic!("wire type {wire}"),
        }
    }
    deepest
}

#[test]
fn a_resource_value_nested_past_a_decoders_limit_no_longer_costs_every_span() {
    deep_shared_values("value-depth-resource", true, false);
}

/// The same for a value of an instrumentation scope's attributes (the
/// scope of spans that name none, spanguard's own).
#[test]
fn a_scope_value_nested_past_a_decoders_limit_no_longer_costs_every_span() {
    deep_shared_values("value-depth-scope", false, true);
}

#[test]
fn a_resource_and_a_scope_value_nested_too_deep_are_each_counted_once() {
    deep_shared_values("value-depth-both", true, true);
}

/// Spans of a resource (`in_resource`) or scope (`in_scope`) holding a
/// value 32 maps deep, sent in 3 batches to a backend refusing what its
/// decoder cannot read: every span arrives, the value cut to 16 maps,
/// counted once, and after the first batch each costs one request.
fn deep_shared_values(name: &str, in_resource: bool, in_scope: bool) {
    // upb's limit, as value_depth_limit.py measured it: 100 messages.
    const DECODER_LIMIT: usize = 100;
    let taken: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let keep = Arc::clone(&taken);
    let requests = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&requests);
    let (url, closed) = support::backend(move |body| {
        count.fetch_add(1, Ordering::Relaxed);
        let mut maps = Vec::new();
        if message_depth(body, M::Request, 1, &mut maps) > DECODER_LIMIT {
            return 400;
        }
        keep.lock().unwrap().push(body.to_vec());
        200
    });
    let (tracer, dir) = support::tracer_to(
        name,
        &url,
        TracerConfig {
            compression: Compression::None,
            schedule_delay: Duration::from_secs(600),
            ..TracerConfig::default()
        },
    );
    // 32 maps: kept whole by the default depth limit (64), refused by the
    // decoder (as a span attribute's is).
    let labels = || ("labels".to_string(), ResourceValue::Any(nested_maps(32)));
    let team = ("team".to_string(), ResourceValue::Str("a".to_string()));
    if in_resource {
        tracer
            .set_resource(vec![labels(), team.clone()])
            .expect("resource");
    }
    if in_scope {
        tracer
            .set_scope_attributes(ScopeGiven {
                name: String::new(),
                version: String::new(),
                schema_url: String::new(),
                attributes: vec![labels(), team],
            })
            .expect("scope");
    }
    let deep = u64::from(in_resource) + u64::from(in_scope);
    let mut sent = 0u64;
    let mut before = 0;
    for batch in [10u64, 1, 7] {
        for i in 0..batch {
            let (s, _) = tracer.begin(b"llm.chat", Parent::None, 3).expect("begin");
            tracer
                .set_attribute(s, b"i", AttrInput::Int(i as i64))
                .expect("set");
            tracer.end(s, 0).expect("end");
        }
        sent += batch;
        assert!(
            tracer
                .flush(Duration::from_secs(30))
                .expect("flush")
                .is_done()
        );
        let stats = tracer.stats();
        assert_eq!(
            (stats.spans_exported, stats.dropped_export_failed),
            (sent, 0),
            "after {sent} spans: every span delivered, none lost"
        );
        assert_eq!(
            stats.values_truncated, deep,
            "each deep value counted once, not once a request"
        );
        // The first batch found the value (refused whole, as two halves,
        // then each half cut): the requests after it carry it cut.
        let now = requests.load(Ordering::Relaxed);
        if sent > 10 {
            assert_eq!(now - before, 1, "after {sent} spans: one request a batch");
        }
        before = now;
    }
    let bodies = taken.lock().unwrap().clone();
    assert!(!bodies.is_empty());
    for body in &bodies {
        let mut maps = Vec::new();
        let depth = message_depth(body, M::Request, 1, &mut maps);
        assert!(depth <= DECODER_LIMIT);
        // "labels" cut to 16 maps, the 17th level the empty value; the
        // others ("team", service.name, ...) hold no map.
        maps.retain(|&m| m > 0);
        assert_eq!(
            maps,
            vec![16; deep as usize],
            "each request's shared values"
        );
    }
    tracer.shutdown(Duration::from_secs(10)).ok();
    closed.store(true, Ordering::Release);
    std::fs::remove_dir_all(&dir).ok();
}
