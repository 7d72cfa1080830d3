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
        support::flush_done(&tracer, Duration::from_secs(30));
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

/// A backend refusing what upb's 100 messages cannot read, keeping the
/// bodies it takes and counting requests; a tracer sending to it.
#[allow(clippy::type_complexity)]
fn to_a_nesting_limited_backend(
    name: &str,
) -> (
    spanguard::tracer::Tracer,
    std::path::PathBuf,
    Arc<Mutex<Vec<Vec<u8>>>>,
    Arc<AtomicU64>,
    Arc<std::sync::atomic::AtomicBool>,
) {
    let taken: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let keep = Arc::clone(&taken);
    let requests = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&requests);
    let (url, closed) = support::backend(move |body| {
        count.fetch_add(1, Ordering::Relaxed);
        if message_depth(body, M::Request, 1, &mut Vec::new()) > 100 {
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
    (tracer, dir, taken, requests, closed)
}

/// Ends `n` spans of the scope `scope` (name, version, schema URL; empty:
/// spanguard's own) and flushes them.
fn spans_of(tracer: &spanguard::tracer::Tracer, n: u64, scope: (&str, &str, &str)) {
    use spanguard::tracer::BeginOptions;
    for i in 0..n {
        let opts = BeginOptions {
            scope_name: scope.0.as_bytes(),
            scope_version: scope.1.as_bytes(),
            scope_schema_url: scope.2.as_bytes(),
            ..BeginOptions::new(b"llm.chat", 3, Parent::None)
        };
        let (s, _) = tracer.begin_ex(&opts).expect("begin");
        tracer
            .set_attribute(s, b"i", AttrInput::Int(i as i64))
            .expect("set");
        tracer.end(s, 0).expect("end");
    }
    support::flush_done(tracer, Duration::from_secs(30));
}

/// How many maps deep each resource and scope value of `body` goes, those
/// holding one.
fn shared_maps(body: &[u8]) -> Vec<usize> {
    let mut maps = Vec::new();
    message_depth(body, M::Request, 1, &mut maps);
    maps.retain(|&m| m > 0);
    maps
}

#[test]
fn a_resource_set_anew_after_the_up_front_cut_is_cut_where_deep_and_counted_once() {
    // The resource's value 32 maps deep was found by the first batch's
    // refusals and cut up front from then on. Set anew (a bridged SDK's
    // provider, `set_resource`), the exporter forgot the cut: a new value
    // 40 deep went uncut, refused again and found again by 2 requests for
    // a span (5 a batch). Now a resource set anew is cut as the one it
    // replaces, where it is that deep (counted then, once: scopes given
    // anew beside it count it no more), and left whole where it is not (a
    // value 10 maps deep arrives 10 deep).
    let (tracer, dir, taken, requests, closed) =
        to_a_nesting_limited_backend("value-depth-resource-set-anew");
    let resource = |levels: u32| {
        vec![
            (
                "labels".to_string(),
                ResourceValue::Any(nested_maps(levels)),
            ),
            ("team".to_string(), ResourceValue::Str("a".to_string())),
        ]
    };
    tracer.set_resource(resource(32)).expect("resource");
    spans_of(&tracer, 10, ("", "", ""));
    assert_eq!(tracer.stats().values_truncated, 1);
    let mut sent = 10;
    // (maps deep, how many values counted cut in all, maps deep as taken)
    let steps = [(40, 2, 16), (40, 2, 16), (10, 2, 10), (33, 3, 16)];
    for (step, (levels, counted, arrived)) in steps.into_iter().enumerate() {
        if step == 1 {
            // Scopes given anew: the resource built again, the same.
            tracer
                .set_scope_attributes(ScopeGiven {
                    name: "agent".to_string(),
                    version: "1".to_string(),
                    schema_url: String::new(),
                    attributes: vec![("s".to_string(), ResourceValue::Str("t".to_string()))],
                })
                .expect("scope");
        } else {
            tracer.set_resource(resource(levels)).expect("resource");
        }
        let before = requests.load(Ordering::Relaxed);
        spans_of(&tracer, 1, ("", "", ""));
        sent += 1;
        let stats = tracer.stats();
        let what = format!("step {step}: {levels} maps");
        assert_eq!(
            (stats.spans_exported, stats.dropped_export_failed),
            (sent, 0),
            "{what}"
        );
        assert_eq!(stats.values_truncated, counted, "{what}");
        assert_eq!(
            requests.load(Ordering::Relaxed) - before,
            1,
            "{what}: one request"
        );
        let last = taken.lock().unwrap().last().cloned().expect("a body");
        assert_eq!(shared_maps(&last), vec![arrived], "{what}");
    }
    tracer.shutdown(Duration::from_secs(10)).ok();
    closed.store(true, Ordering::Release);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn two_scopes_one_schema_url_apart_are_cut_and_counted_each_on_their_own() {
    // Two scopes of one name and version, one schema URL apart (two
    // tracers of an SDK), each with a value 32 maps deep. The first
    // one's spans found its value and the exporter cut "the scope named
    // so" up front: the second one's too, never counted (values_truncated
    // 1 for two values cut). A scope is its name, version and schema URL:
    // the second is found by its own spans and counted then.
    let (tracer, dir, taken, _requests, closed) =
        to_a_nesting_limited_backend("value-depth-scopes-by-url");
    for url in ["https://a/1", "https://a/2"] {
        tracer
            .set_scope_attributes(ScopeGiven {
                name: "agent".to_string(),
                version: "1".to_string(),
                schema_url: url.to_string(),
                attributes: vec![("labels".to_string(), ResourceValue::Any(nested_maps(32)))],
            })
            .expect("scope");
    }
    spans_of(&tracer, 4, ("agent", "1", "https://a/1"));
    assert_eq!(
        tracer.stats().values_truncated,
        1,
        "the first scope's value"
    );
    spans_of(&tracer, 4, ("agent", "1", "https://a/2"));
    let stats = tracer.stats();
    assert_eq!((stats.spans_exported, stats.dropped_export_failed), (8, 0));
    assert_eq!(stats.values_truncated, 2, "each scope's value, once");
    let last = taken.lock().unwrap().last().cloned().expect("a body");
    assert_eq!(shared_maps(&last), vec![16]);
    tracer.shutdown(Duration::from_secs(10)).ok();
    closed.store(true, Ordering::Release);
    std::fs::remove_dir_all(&dir).ok();
}

const CHILD: &str = "SPANGUARD_TEST_UP_FRONT_CHILD";

#[test]
fn a_resource_cut_up_front_is_said_as_cut_before_sending_not_as_refused() {
    // A resource value 32 maps deep, refused by the server and taken cut:
    // "the server refused every request for it". Then a resource set anew
    // with a value 40 deep, cut up front (the server never sees it): it
    // was said with the same line, "the server refused every request for
    // it", which the server never did. Now it says it was cut before
    // sending. Run in a copy of this test binary, whose stderr is read.
    if std::env::var_os(CHILD).is_some() {
        let (tracer, dir, _taken, _requests, closed) =
            to_a_nesting_limited_backend("value-depth-up-front-said");
        let resource = |levels: u32| {
            vec![(
                "labels".to_string(),
                ResourceValue::Any(nested_maps(levels)),
            )]
        };
        tracer.set_resource(resource(32)).expect("resource");
        spans_of(&tracer, 2, ("", "", ""));
        tracer.set_resource(resource(40)).expect("resource");
        spans_of(&tracer, 1, ("", "", ""));
        let stats = tracer.stats();
        assert_eq!((stats.spans_exported, stats.values_truncated), (3, 2));
        tracer.shutdown(Duration::from_secs(10)).ok();
        closed.store(true, Ordering::Release);
        std::fs::remove_dir_all(&dir).ok();
        return;
    }
    let mut run = std::process::Command::new(std::env::current_exe().expect("this test binary"));
    run.args([
        "--exact",
        "a_resource_cut_up_front_is_said_as_cut_before_sending_not_as_refused",
        "--test-threads=1",
    ]);
    run.env(CHILD, "1").env_remove("OTEL_LOG_LEVEL");
    let out = run.output().expect("the copy starts");
    let text = String::from_utf8_lossy(&out.stdout);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{text}{said}"
    );
    let lines: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("nested deeper"))
        .collect();
    assert_eq!(lines.len(), 2, "{said}");
    assert!(
        lines[0].contains(
            "hold 1 value nested deeper than 16 levels: the server refused every request for it"
        ),
        "{said}"
    );
    assert!(
        lines[1].contains(
            "set anew, hold 1 value nested deeper than 16 levels: it is emptied past level 16 \
             before sending, as the server refused every request for a value that deep in the \
             ones they replace (it never saw it;"
        ),
        "{said}"
    );
}

#[test]
fn a_resource_value_set_back_after_another_is_counted_once() {
    // Resource values A (33 maps) and B (40) set in turn, as a bridged
    // SDK's providers may: A refused and taken cut (counted), B cut up
    // front (counted), then A set again was counted again (only the
    // resource just before was compared): values_truncated 3, then 4 at
    // B again, for two values. values_truncated counts values cut: each
    // distinct value once (the last 256 remembered).
    let (tracer, dir, taken, requests, closed) =
        to_a_nesting_limited_backend("value-depth-resource-set-back");
    let resource = |levels: u32| {
        vec![(
            "labels".to_string(),
            ResourceValue::Any(nested_maps(levels)),
        )]
    };
    tracer.set_resource(resource(33)).expect("resource");
    spans_of(&tracer, 2, ("", "", ""));
    assert_eq!(
        tracer.stats().values_truncated,
        1,
        "A, refused and taken cut"
    );
    let mut sent = 2;
    // (maps deep, values counted cut in all)
    let steps = [(40, 2), (33, 2), (40, 2), (33, 2), (35, 3), (40, 3)];
    for (step, (levels, counted)) in steps.into_iter().enumerate() {
        tracer.set_resource(resource(levels)).expect("resource");
        let before = requests.load(Ordering::Relaxed);
        spans_of(&tracer, 1, ("", "", ""));
        sent += 1;
        let stats = tracer.stats();
        let what = format!("step {step}: {levels} maps");
        assert_eq!(
            (stats.spans_exported, stats.dropped_export_failed),
            (sent, 0),
            "{what}"
        );
        assert_eq!(stats.values_truncated, counted, "{what}");
        assert_eq!(
            requests.load(Ordering::Relaxed) - before,
            1,
            "{what}: one request, cut up front"
        );
        let last = taken.lock().unwrap().last().cloned().expect("a body");
        assert_eq!(shared_maps(&last), vec![16], "{what}");
    }
    tracer.shutdown(Duration::from_secs(10)).ok();
    closed.store(true, Ordering::Release);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_span_value_the_encoder_cut_and_the_server_refused_for_its_depth_is_counted_once() {
    // One attribute value, a map of a 20 KB prompt and a map 40 deep, on a
    // span alone over the size limit of a request of one span (here half
    // the spool's cap): the exporter's encoder cut the prompt (counted),
    // the server refused the request for the depth, and the depth rescue
    // emptied the same value past 16 levels (counted again):
    // values_truncated 2 for one value. Now 1: the request says where the
    // encoder cut.
    use spanguard::span::any_value::AnyValueRef;
    use support::len_field;
    let (url, closed) = support::backend(move |body| {
        if message_depth(body, M::Request, 1, &mut Vec::new()) > 100 {
            return 400;
        }
        200
    });
    let (tracer, dir) = support::tracer_to(
        "value-depth-encoder-cut",
        &url,
        TracerConfig {
            compression: Compression::None,
            schedule_delay: Duration::from_secs(600),
            max_request_bytes: 4096,
            spool_max_bytes: 16 << 10,
            ..TracerConfig::default()
        },
    );
    let member = |key: &str, value: &[u8]| {
        let kv = [len_field(0x0a, key.as_bytes()), len_field(0x12, value)].concat();
        len_field(0x0a, &kv)
    };
    let prompt = len_field(0x0a, &[b'p'; 20_000]);
    let value = len_field(
        0x32,
        &[member("prompt", &prompt), member("deep", &nested_maps(40))].concat(),
    );
    let (s, _) = tracer.begin(b"llm.chat", Parent::None, 3).expect("begin");
    let any = AnyValueRef::check(&value).expect("a well-formed AnyValue");
    tracer
        .set_attribute(s, b"messages", AttrInput::AnyValue(any))
        .expect("set");
    tracer.end(s, 0).expect("end");
    support::flush_done(&tracer, Duration::from_secs(30));
    let stats = tracer.stats();
    assert_eq!(
        (
            stats.spans_exported,
            stats.dropped_export_failed,
            stats.values_truncated
        ),
        (1, 0, 1),
        "one value cut both ways, counted once"
    );
    tracer.shutdown(Duration::from_secs(10)).ok();
    closed.store(true, Ordering::Release);
    std::fs::remove_dir_all(&dir).ok();
}

/// A span whose one attribute value holds a 20 KB prompt and a map 40
/// deep, over the size limit of a request of one span: the encoder cuts
/// the prompt (counted). The backend is down at first (503): the request
/// is spooled, with the flight recorder as its journal file, or written
/// anew. Back up, it refuses requests past 100 nested messages: the
/// replay's depth rescue empties the same value past 16 levels. One value
/// cut, counted once: the spool file says where the encoder cut. The
/// prompt and the deep map in two values are two values cut, counted
/// each once.
fn a_spooled_value_cut_then_emptied_at_replay(flight_recorder: bool, one_value: bool) {
    use spanguard::span::any_value::AnyValueRef;
    use std::sync::atomic::AtomicBool;
    use support::len_field;
    let up = Arc::new(AtomicBool::new(false));
    let is_up = Arc::clone(&up);
    let (url, closed) = support::backend(move |body| {
        if !is_up.load(Ordering::Acquire) {
            return 503;
        }
        if message_depth(body, M::Request, 1, &mut Vec::new()) > 100 {
            return 400;
        }
        200
    });
    let (tracer, dir) = support::tracer_to(
        &format!("value-depth-spooled-cut-{flight_recorder}-{one_value}"),
        &url,
        TracerConfig {
            compression: Compression::None,
            // Lowered from 30 s: the live batch's retries end sooner.
            export_timeout: Duration::from_millis(600),
            schedule_delay: Duration::from_millis(20),
            max_request_bytes: 4096,
            spool_max_bytes: 16 << 10,
            flight_recorder,
            ..TracerConfig::default()
        },
    );
    let member = |key: &str, value: &[u8]| {
        let kv = [len_field(0x0a, key.as_bytes()), len_field(0x12, value)].concat();
        len_field(0x0a, &kv)
    };
    let prompt = len_field(0x0a, &[b'p'; 20_000]);
    let values = if one_value {
        vec![len_field(
            0x32,
            &[member("prompt", &prompt), member("deep", &nested_maps(40))].concat(),
        )]
    } else {
        vec![prompt, nested_maps(40)]
    };
    let (s, _) = tracer.begin(b"llm.chat", Parent::None, 3).expect("begin");
    for (i, value) in values.iter().enumerate() {
        let any = AnyValueRef::check(value).expect("a well-formed AnyValue");
        tracer
            .set_attribute(s, format!("v{i}").as_bytes(), AttrInput::AnyValue(any))
            .expect("set");
    }
    tracer.end(s, 0).expect("end");
    support::flush_done(&tracer, Duration::from_secs(60));
    let files = support::spool_files(&dir.join("spool"));
    assert_eq!(files.len(), 1, "{files:?}");
    let magic = std::fs::read(dir.join("spool").join(&files[0])).expect("read");
    assert_eq!(&magic[..8], b"SGSPOOL3", "names the place cut");
    let stats = tracer.stats();
    assert_eq!(
        (stats.spooled_spans, stats.values_truncated),
        (1, 1),
        "spooled, the prompt cut and counted: {stats:?}"
    );
    up.store(true, Ordering::Release);
    let started = std::time::Instant::now();
    while tracer.stats().replayed_spans == 0 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = tracer.stats();
    assert_eq!(
        (
            stats.replayed_spans,
            stats.dropped_replay_failed,
            stats.values_truncated
        ),
        (1, 0, if one_value { 1 } else { 2 }),
        "one value cut both ways, once at encoding and once at the replay, counted once; \
         two values each once ({one_value}): {stats:?}"
    );
    tracer.shutdown(Duration::from_secs(10)).ok();
    closed.store(true, Ordering::Release);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_spooled_span_value_the_encoder_cut_and_the_replay_emptied_is_counted_once() {
    a_spooled_value_cut_then_emptied_at_replay(false, true);
}

#[test]
fn a_journaled_span_value_the_encoder_cut_and_the_replay_emptied_is_counted_once() {
    a_spooled_value_cut_then_emptied_at_replay(true, true);
}

#[test]
fn a_spooled_value_the_encoder_cut_and_another_the_replay_emptied_count_two() {
    a_spooled_value_cut_then_emptied_at_replay(false, false);
}
