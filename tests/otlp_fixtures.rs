//! Writes OTLP fixtures for an independent judge: for each case, the batch as
//! our protobuf (`<case>.pb`) and JSON (`<case>.json`) encoders write it, and
//! `<case>.expected.json`, a plain description built from this file's own
//! input values (never read back through our encoders). The judge,
//! tests/python/test_otlp_decode.py, decodes both with opentelemetry-proto
//! and compares every field with the description.
//!
//! Output goes to $SPANGUARD_FIXTURE_DIR (relative paths are taken from the
//! crate root, where cargo runs tests), default `target/otlp-fixtures`;
//! `cases.txt` lists the cases written.

use std::fmt::Write as _;
use std::path::PathBuf;

use spanguard::buffer::payload_pool::PayloadPool;
use spanguard::export::otlp_json::OtlpJsonEncoder;
use spanguard::export::otlp_proto::OtlpProtoEncoder;
use spanguard::export::resource::{AttrValue, ResourceInfo, ScopeAttributes};
use spanguard::span::limits::{
    INLINE_ATTRIBUTES, MAX_KEY_BYTES, MAX_NAME_BYTES, MAX_SCOPE_BYTES, MAX_TRACESTATE_BYTES,
    SpanLimits,
};
use spanguard::span::record::{
    LinkContext, MARK_INTERRUPTED, MARK_PARENT_REMOTE, MARK_UNENDED, RawStr, STATUS_ERROR,
    STATUS_OK, STATUS_UNSET, SpanRecord, SpanView, TextRef, ValueInput,
};

// ---- What a case puts in ----

#[derive(Clone, Debug)]
enum Val {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    Bytes(Vec<u8>),
    StrArray(Vec<String>),
    IntArray(Vec<i64>),
    DoubleArray(Vec<f64>),
    BoolArray(Vec<bool>),
}

#[derive(Clone, Debug)]
struct Attr {
    key: String,
    value: Val,
}

fn s(key: &str, v: &str) -> Attr {
    Attr {
        key: key.into(),
        value: Val::Str(v.into()),
    }
}
fn i(key: &str, v: i64) -> Attr {
    Attr {
        key: key.into(),
        value: Val::Int(v),
    }
}
fn d(key: &str, v: f64) -> Attr {
    Attr {
        key: key.into(),
        value: Val::Double(v),
    }
}
fn b(key: &str, v: bool) -> Attr {
    Attr {
        key: key.into(),
        value: Val::Bool(v),
    }
}

fn a(key: &str, value: Val) -> Attr {
    Attr {
        key: key.into(),
        value,
    }
}

#[derive(Clone, Debug, Default)]
struct Event {
    name: String,
    time: u64,
    attrs: Vec<Attr>,
    /// Attributes given past the event attribute limit (dropped, counted
    /// on the event).
    over_limit: Vec<Attr>,
}

#[derive(Clone, Debug, Default)]
struct Link {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    tracestate: String,
    flags: u8,
    /// Whether the linked context was remote, if the caller knew.
    remote: Option<bool>,
    attrs: Vec<Attr>,
    over_limit: Vec<Attr>,
}

#[derive(Clone, Debug, Default)]
struct Span {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    /// All zero for a root span.
    parent: [u8; 8],
    trace_flags: u8,
    remote_parent: bool,
    tracestate: String,
    name: String,
    /// The name as the record keeps it, for a name longer than
    /// MAX_NAME_BYTES; None means it must be kept whole.
    name_kept: Option<String>,
    kind: u8,
    start: u64,
    end: u64,
    attrs: Vec<Attr>,
    /// Span attributes pushed after the shared table is full; the record
    /// drops and counts each.
    overflow_attrs: usize,
    events: Vec<Event>,
    dropped_events: u16,
    links: Vec<Link>,
    dropped_links: u16,
    status_code: u8,
    status_message: String,
    unended: bool,
    /// The signal, when the span was interrupted.
    interrupted: Option<i32>,
    /// The instrumentation scope (name, version); None: spanguard's own,
    /// which the request takes from the resource.
    scope: Option<(String, String)>,
}

struct Case {
    name: &'static str,
    resource: ResourceInfo,
    spans: Vec<Span>,
    limits: SpanLimits,
}

fn trace_id(n: u8) -> [u8; 16] {
    // Bytes above 0x7f and leading zeros make hex and base64 slips visible.
    let mut id = [0u8; 16];
    for (k, byte) in id.iter_mut().enumerate() {
        *byte = (k as u8).wrapping_mul(37).wrapping_add(n) ^ 0x80;
    }
    id[0] = 0;
    id
}

fn span_id(n: u8) -> [u8; 8] {
    [0x0f, 0xf0, n, 0x00, 0xa5, 0x5a, 0xff, n.wrapping_add(1)]
}

const T0: u64 = 1_700_000_000_123_456_789;

fn span(n: u8, name: &str, kind: u8) -> Span {
    Span {
        trace_id: trace_id(n),
        span_id: span_id(n),
        trace_flags: 1,
        name: name.into(),
        kind,
        start: T0 + n as u64 * 1_000,
        end: T0 + n as u64 * 1_000 + 999,
        ..Span::default()
    }
}

fn default_resource() -> ResourceInfo {
    ResourceInfo::new(
        "fixture-service",
        &[
            ("deployment.environment".into(), "test".into()),
            ("host.ünïcode".into(), "\"q\" \\ \u{1F600}\n".into()),
        ],
    )
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();

    let mut root = span(1, "root operation", 1);
    root.attrs = vec![
        s("http.method", "GET"),
        i("http.status_code", 200),
        d("sample.ratio", 0.5),
        b("cache.hit", true),
    ];
    cases.push(Case {
        name: "root_span",
        limits: SpanLimits::default(),
        resource: default_resource(),
        spans: vec![root],
    });

    let mut server = span(2, "server with remote parent", 2);
    server.parent = [0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03];
    server.remote_parent = true;
    server.tracestate = "vendor=abc,other=x-y_z".into();
    let mut child = span(3, "local child", 3);
    child.trace_id = server.trace_id;
    child.parent = server.span_id;
    child.trace_flags = 0;
    let mut all_flags = span(4, "all trace flag bits", 1);
    all_flags.parent = server.span_id;
    all_flags.trace_flags = 0xff;
    all_flags.remote_parent = true;
    cases.push(Case {
        name: "parents",
        limits: SpanLimits::default(),
        resource: default_resource(),
        spans: vec![server, child, all_flags],
    });

    cases.push(Case {
        name: "all_kinds",
        limits: SpanLimits::default(),
        resource: default_resource(),
        spans: (0..6u8)
            .map(|k| span(10 + k, &format!("kind {k}"), k))
            .collect(),
    });

    let mut text = span(
        20,
        "naïve \u{1F680} 名前 \"quoted\" back\\slash \u{0}\u{7}",
        1,
    );
    text.tracestate = "k=v".into();
    text.attrs = vec![
        s(
            "control",
            "\u{0}\u{1}\u{8}\u{9}\u{a}\u{c}\u{d}\u{1b}\u{1f}\u{7f}",
        ),
        s("separators", "\u{2028}\u{2029}\u{feff}</script>"),
        s("empty", ""),
        s("ключ \u{1F511}", "значение"),
        s("quotes", "\"'\\/\\\""),
    ];
    text.events = vec![
        Event {
            name: String::new(),
            time: T0 + 5,
            attrs: vec![s("in event", "tab\there")],
            ..Event::default()
        },
        Event {
            name: "événement \u{1F389}".into(),
            time: 0,
            attrs: vec![],
            ..Event::default()
        },
    ];
    text.status_code = STATUS_ERROR;
    text.status_message = "failed:\n\t\"bad\" \u{1}".into();
    cases.push(Case {
        name: "strings",
        limits: SpanLimits::default(),
        resource: default_resource(),
        spans: vec![text],
    });

    let mut numbers = span(30, "numbers", 1);
    numbers.start = 1;
    numbers.end = u64::MAX;
    numbers.attrs = vec![
        i("zero", 0),
        i("one", 1),
        i("minus_one", -1),
        i("i127", 127),
        i("i128", 128),
        i("minus_129", -129),
        i("min", i64::MIN),
        i("max", i64::MAX),
        d("half", 0.5),
        d("huge_negative", -1e300),
        d("nan", f64::NAN),
        d("inf", f64::INFINITY),
        d("neg_inf", f64::NEG_INFINITY),
        d("dzero", 0.0),
        d("neg_zero", -0.0),
        d("subnormal", 5e-324),
        d("dmax", f64::MAX),
        d("small", 1e-7),
        d("plain", 123456.789),
        b("true", true),
        b("false", false),
    ];
    cases.push(Case {
        name: "numbers",
        limits: SpanLimits::default(),
        resource: default_resource(),
        spans: vec![numbers],
    });

    let mut rich = span(40, "events and links", 2);
    // More events and links than a slot once held (8 and 4).
    rich.events = (0..10u64)
        .map(|e| Event {
            name: format!("event {e}"),
            time: T0 + 100 + e,
            attrs: if e % 2 == 0 {
                vec![i("event.index", e as i64), s("event.kind", "even")]
            } else {
                vec![]
            },
            ..Event::default()
        })
        .collect();
    rich.links = (0..6u8)
        .map(|l| Link {
            // Link 4 has an invalid context (all-zero ids) and is kept for
            // its attributes and tracestate, as OpenTelemetry's SDK spec asks.
            trace_id: if l == 4 { [0; 16] } else { trace_id(100 + l) },
            span_id: if l == 4 { [0; 8] } else { span_id(100 + l) },
            tracestate: if l == 0 {
                String::new()
            } else {
                format!("congo=t{l},rojo=00f067aa0ba902b7")
            },
            flags: l % 2,
            remote: [None, Some(true), Some(false)][l as usize % 3],
            attrs: if l == 3 {
                vec![]
            } else {
                vec![
                    s("link.reason", "follows"),
                    d("link.weight", l as f64 / 4.0),
                ]
            },
            ..Link::default()
        })
        .collect();
    cases.push(Case {
        name: "events_and_links",
        limits: SpanLimits::default(),
        resource: default_resource(),
        spans: vec![rich],
    });

    let mut error = span(50, "status error", 3);
    error.status_code = STATUS_ERROR;
    error.status_message = "connection refused".into();
    let mut ok = span(51, "status ok", 3);
    ok.status_code = STATUS_OK;
    let mut unset_with_message = span(52, "status unset with message", 3);
    unset_with_message.status_code = STATUS_UNSET;
    unset_with_message.status_message = "just a note".into();
    cases.push(Case {
        name: "status",
        limits: SpanLimits::default(),
        resource: default_resource(),
        spans: vec![error, ok, unset_with_message],
    });

    let mut unended = span(60, "unended", 1);
    unended.unended = true;
    let mut segv = span(61, "interrupted by SIGSEGV", 1);
    segv.interrupted = Some(11);
    segv.attrs = vec![s("before", "crash")];
    let mut unknown_signal = span(62, "interrupted, signal unknown", 1);
    unknown_signal.interrupted = Some(0);
    let mut both = span(63, "unended and interrupted", 2);
    both.unended = true;
    both.interrupted = Some(9);
    cases.push(Case {
        name: "marks",
        limits: SpanLimits::default(),
        resource: default_resource(),
        spans: vec![unended, segv, unknown_signal, both],
    });

    let mut dropped = span(70, "dropped counts", 1);
    // Past the slot's table into the chunks, up to the default limit.
    dropped.attrs = (0..SpanLimits::default().attribute_count as i64)
        .map(|a| i(&format!("a{a}"), a))
        .collect();
    dropped.overflow_attrs = 5;
    dropped.dropped_events = 3;
    dropped.dropped_links = u16::MAX;
    cases.push(Case {
        name: "dropped_counts",
        limits: SpanLimits::default(),
        resource: default_resource(),
        spans: vec![dropped],
    });

    // Every limit filled exactly, with multi-byte characters at the ends
    // (the tracestate half its limit: all of it at once would not fit a
    // span's text).
    let mut long = span(80, &("€".repeat(85) + "x"), 1);
    long.tracestate = format!("a={}", "b".repeat(MAX_TRACESTATE_BYTES / 2 - 2));
    long.attrs = vec![s(&"k".repeat(MAX_KEY_BYTES), &("ü".repeat(511) + "zz"))];
    long.status_code = STATUS_ERROR;
    long.status_message = "m".repeat(300);
    let mut cut = span(81, &"é".repeat(MAX_NAME_BYTES / 2 + 20), 1);
    cut.name_kept = Some("é".repeat(MAX_NAME_BYTES / 2));
    cases.push(Case {
        name: "long_text",
        limits: SpanLimits::default(),
        resource: default_resource(),
        spans: vec![long, cut],
    });

    // Spans of three instrumentation scopes, interleaved: one ScopeSpans
    // each, in order of first appearance, spans in batch order.
    let scoped = |n: u8, scope: Option<(&str, &str)>| {
        let mut sp = span(n, &format!("scoped {n}"), 1);
        sp.scope = scope.map(|(a, b)| (a.to_string(), b.to_string()));
        sp
    };
    let openai = Some(("opentelemetry.instrumentation.openai_v2", "2.1b0"));
    let http = Some(("@opentelemetry/instrumentation-http", ""));
    cases.push(Case {
        name: "scopes",
        limits: SpanLimits::default(),
        resource: default_resource(),
        spans: vec![
            scoped(100, openai),
            scoped(101, http),
            scoped(102, openai),
            scoped(103, None),
            scoped(104, http),
            scoped(
                105,
                Some(("opentelemetry.instrumentation.openai_v2", "2.2")),
            ),
        ],
    });

    // The same with scope attributes (a bridged tracer's, set at run
    // time): on the scopes given some only, typed as given; a scope
    // differing only in its version has none.
    let mut with_scope_attributes = default_resource();
    with_scope_attributes.scopes = vec![
        ScopeAttributes {
            name: "opentelemetry.instrumentation.openai_v2".into(),
            version: "2.1b0".into(),
            schema_url: String::new(),
            attributes: vec![
                ("library.kind".into(), AttrValue::Str("llm ünï".into())),
                ("tier".into(), AttrValue::Int(-2)),
                ("sampled".into(), AttrValue::Bool(true)),
                ("weight".into(), AttrValue::Double(0.5)),
                (
                    "features".into(),
                    AttrValue::Array(vec![
                        AttrValue::Str("stream".into()),
                        AttrValue::Str("tools".into()),
                    ]),
                ),
            ],
        },
        ScopeAttributes {
            name: "spanguard".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            schema_url: String::new(),
            attributes: vec![("own".into(), AttrValue::Bool(false))],
        },
    ];
    cases.push(Case {
        name: "scope_attributes",
        limits: SpanLimits::default(),
        resource: with_scope_attributes,
        spans: vec![
            scoped(110, openai),
            scoped(111, http),
            scoped(112, None),
            scoped(
                113,
                Some(("opentelemetry.instrumentation.openai_v2", "2.2")),
            ),
        ],
    });

    cases.push(Case {
        name: "empty_batch",
        limits: SpanLimits::default(),
        resource: default_resource(),
        spans: vec![],
    });

    // Enough spans that the enclosing messages need 3-byte lengths.
    cases.push(Case {
        name: "big_batch",
        limits: SpanLimits::default(),
        resource: default_resource(),
        spans: (0..40u8)
            .map(|n| {
                let mut sp = span(n.wrapping_add(120), &format!("batch span {n}"), n % 6);
                sp.attrs = vec![s("payload", &"p".repeat(300)), i("n", n as i64)];
                sp
            })
            .collect(),
    });

    cases.push(Case {
        name: "typed_resource",
        limits: SpanLimits::default(),
        resource: ResourceInfo {
            attributes: vec![
                ("service.name".into(), AttrValue::Str("typed".into())),
                ("process.pid".into(), AttrValue::Int(-42)),
                ("host.load".into(), AttrValue::Double(-1e300)),
                ("host.nan".into(), AttrValue::Double(f64::NAN)),
                ("container".into(), AttrValue::Bool(false)),
                ("empty".into(), AttrValue::Str(String::new())),
                // Arrays, as the SDKs detect `process.command_args`.
                (
                    "process.command_args".into(),
                    AttrValue::Array(vec![
                        AttrValue::Str("node".into()),
                        AttrValue::Str("app ünï.js".into()),
                    ]),
                ),
                (
                    "ports".into(),
                    AttrValue::Array(vec![AttrValue::Int(80), AttrValue::Int(-443)]),
                ),
                (
                    "ratios".into(),
                    AttrValue::Array(vec![AttrValue::Double(0.5), AttrValue::Double(-2e10)]),
                ),
                (
                    "flags".into(),
                    AttrValue::Array(vec![AttrValue::Bool(true), AttrValue::Bool(false)]),
                ),
                ("none".into(), AttrValue::Array(vec![])),
            ],
            dropped_attributes: 0,
            scope_name: "custom.scope/ünï".into(),
            scope_version: String::new(),
            scopes: Vec::new(),
        },
        spans: vec![span(90, "under a typed resource", 4)],
    });

    // LLM-sized text: a 100,000-byte prompt whose multi-byte characters
    // cross chunk boundaries, a 20,000-byte completion, token counts set
    // after them, and 100 more attributes, every key kept; an event with
    // a large body too.
    let mut llm = span(100, "llm.chat", 3);
    let prompt: String = "prompt € ünïcode 😀 ".repeat(100_000 / 22 + 1)[..]
        .char_indices()
        .take_while(|(i, c)| i + c.len_utf8() <= 100_000)
        .map(|(_, c)| c)
        .collect();
    let completion = "c".repeat(20_000);
    llm.attrs = vec![
        s("gen_ai.prompt", &prompt),
        s("gen_ai.completion", &completion),
        i("gen_ai.usage.input_tokens", 812),
        i("gen_ai.usage.output_tokens", 96),
    ];
    llm.attrs
        .extend((0..100).map(|n| s(&format!("extra.{n}"), &format!("value {n}"))));
    llm.events = vec![Event {
        name: "gen_ai.content.prompt".into(),
        time: T0 + 7,
        attrs: vec![s("gen_ai.prompt", &prompt[..50_000]), i("index", 0)],
        ..Event::default()
    }];
    llm.status_code = STATUS_ERROR;
    llm.status_message = "x".repeat(5_000);
    cases.push(Case {
        name: "large_payloads",
        limits: SpanLimits::default(),
        resource: default_resource(),
        spans: vec![llm],
    });

    // Every value type OpenTelemetry has, on a span, an event and a link.
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let mut arrays = span(110, "arrays and bytes", 1);
    let typed = vec![
        a("bytes.small", Val::Bytes(vec![0, 1, 2, 0xfe, 0xff])),
        a("bytes.empty", Val::Bytes(vec![])),
        a("bytes.large", Val::Bytes(all_bytes.repeat(40))),
        a(
            "strings",
            Val::StrArray(vec!["stop".into(), String::new(), "naïve \"q\" 😀".into()]),
        ),
        a("ints", Val::IntArray(vec![0, -1, i64::MIN, i64::MAX, 812])),
        a(
            "doubles",
            Val::DoubleArray(vec![0.5, -0.0, f64::INFINITY, 1e300]),
        ),
        a("bools", Val::BoolArray(vec![true, false, true])),
        a("empty.ints", Val::IntArray(vec![])),
        a(
            "long.strings",
            Val::StrArray(vec!["s".repeat(3_000), "t".repeat(5_000)]),
        ),
    ];
    arrays.attrs = typed.clone();
    arrays.events = vec![Event {
        name: "with arrays".into(),
        time: T0 + 9,
        attrs: typed.clone(),
        ..Event::default()
    }];
    arrays.links = vec![Link {
        trace_id: trace_id(111),
        span_id: span_id(111),
        attrs: typed,
        ..Link::default()
    }];
    cases.push(Case {
        name: "arrays_and_bytes",
        limits: SpanLimits::default(),
        resource: default_resource(),
        spans: vec![arrays],
    });

    // An event's and a link's dropped attributes are counted on them, not
    // on the span.
    let mut limited = span(120, "item dropped counts", 1);
    limited.events = vec![Event {
        name: "many".into(),
        time: T0 + 1,
        attrs: vec![i("e0", 0), i("e1", 1)],
        over_limit: vec![i("e2", 2), i("e3", 3), i("e4", 4)],
    }];
    limited.links = vec![Link {
        trace_id: trace_id(121),
        span_id: span_id(121),
        attrs: vec![s("l0", "a"), s("l1", "b")],
        over_limit: vec![s("l2", "c")],
        ..Link::default()
    }];
    cases.push(Case {
        name: "item_dropped_counts",
        limits: SpanLimits {
            event_attribute_count: 2,
            link_attribute_count: 2,
            ..SpanLimits::default()
        },
        resource: default_resource(),
        spans: vec![limited],
    });

    cases
}

// ---- Putting it into a record ----

/// Stores text and checks the record kept it whole (or cut it as expected):
/// a fixture must describe exactly what went in.
fn store(
    r: &mut SpanRecord,
    pool: &PayloadPool,
    text: &str,
    limit: usize,
    may_cut: bool,
) -> TextRef {
    let (t, outcome) = r.store_text(text.as_bytes(), limit, pool);
    assert!(!outcome.replaced_utf8);
    assert!(may_cut || !outcome.truncated, "cut: {text:?}");
    t
}

/// The record's input for a value; `strs` holds a string array's elements.
fn input<'a>(v: &'a Val, strs: &'a mut Vec<RawStr<'a>>) -> ValueInput<'a> {
    match v {
        Val::Str(v) => ValueInput::Str(v.as_bytes()),
        Val::Int(v) => ValueInput::Int(*v),
        Val::Double(v) => ValueInput::Double(*v),
        Val::Bool(v) => ValueInput::Bool(*v),
        Val::Bytes(v) => ValueInput::Bytes(v),
        Val::StrArray(v) => {
            strs.extend(v.iter().map(|s| RawStr::new(s.as_bytes())));
            ValueInput::StrArray(strs)
        }
        Val::IntArray(v) => ValueInput::IntArray(v),
        Val::DoubleArray(v) => ValueInput::DoubleArray(v),
        // SAFETY: a bool is one byte, 0 or 1.
        Val::BoolArray(v) => ValueInput::BoolArray(unsafe {
            std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), v.len())
        }),
    }
}

/// Runs `f` with the record inputs of `attrs`.
fn with_inputs<T>(attrs: &[Attr], f: impl FnOnce(&[(&[u8], ValueInput)]) -> T) -> T {
    let mut strs: Vec<Vec<RawStr>> = attrs.iter().map(|_| Vec::new()).collect();
    let items: Vec<(&[u8], ValueInput)> = attrs
        .iter()
        .zip(strs.iter_mut())
        .map(|(a, strs)| (a.key.as_bytes(), input(&a.value, strs)))
        .collect();
    f(&items)
}

fn build(sp: &Span, limits: &SpanLimits, pool: &PayloadPool) -> Box<SpanRecord> {
    // SAFETY: SpanRecord is plain data for which all-zero bytes are a valid
    // (empty) value.
    let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
    r.trace_id = sp.trace_id;
    r.span_id = sp.span_id;
    r.parent_span_id = sp.parent;
    r.trace_flags = sp.trace_flags;
    r.kind = sp.kind;
    r.status_code = sp.status_code;
    r.start_unix_ns = sp.start;
    r.end_unix_ns = sp.end;
    if sp.remote_parent {
        r.marks |= MARK_PARENT_REMOTE;
    }
    if sp.unended {
        r.marks |= MARK_UNENDED;
    }
    if let Some(signal) = sp.interrupted {
        r.marks |= MARK_INTERRUPTED;
        r.signal = signal as i16;
    }
    if let Some((name, version)) = &sp.scope {
        r.rest_mut().scope_name = store(&mut r, pool, name, MAX_SCOPE_BYTES, false);
        r.rest_mut().scope_version = store(&mut r, pool, version, MAX_SCOPE_BYTES, false);
    }
    r.name = store(
        &mut r,
        pool,
        &sp.name,
        MAX_NAME_BYTES,
        sp.name_kept.is_some(),
    );
    // Written only when there is one, as the tracer does: most fixtures
    // then leave the record's rest line unmarked.
    if !sp.tracestate.is_empty() {
        r.rest_mut().tracestate = store(&mut r, pool, &sp.tracestate, MAX_TRACESTATE_BYTES, false);
    }
    if !sp.status_message.is_empty() {
        r.rest_mut().status_message = store(&mut r, pool, &sp.status_message, usize::MAX, false);
    }
    for a in &sp.attrs {
        with_inputs(std::slice::from_ref(a), |items| {
            let outcome = r
                .set_attribute(items[0].0, &items[0].1, limits, pool)
                .expect("fixture attributes fit");
            assert!(
                !outcome.truncated && !outcome.replaced_utf8,
                "cut: {}",
                a.key
            );
        });
    }
    for e in &sp.events {
        let all: Vec<Attr> = e.attrs.iter().chain(&e.over_limit).cloned().collect();
        with_inputs(&all, |items| {
            let (outcome, dropped) = r
                .add_event(e.name.as_bytes(), e.time, items, limits, pool)
                .expect("event fits");
            assert!(!outcome.truncated, "cut: {}", e.name);
            assert_eq!(dropped, !e.over_limit.is_empty());
        });
    }
    for l in &sp.links {
        let all: Vec<Attr> = l.attrs.iter().chain(&l.over_limit).cloned().collect();
        with_inputs(&all, |items| {
            let (outcome, dropped) = r
                .add_link(
                    LinkContext {
                        trace_id: l.trace_id,
                        span_id: l.span_id,
                        trace_flags: l.flags,
                        remote: l.remote,
                    },
                    l.tracestate.as_bytes(),
                    items,
                    limits,
                    pool,
                )
                .expect("link fits");
            assert!(!outcome.truncated);
            assert_eq!(dropped, !l.over_limit.is_empty());
        });
    }
    for n in 0..sp.overflow_attrs {
        let key = format!("overflow{n}");
        let kept = r.set_attribute(key.as_bytes(), &ValueInput::Int(0), limits, pool);
        assert!(kept.is_err(), "the limit should be reached");
    }
    if sp.attrs.len() > INLINE_ATTRIBUTES {
        assert!(
            r.rest().chunk_count > 0,
            "attributes past the table went to chunks"
        );
    }
    if sp.dropped_events != 0 || sp.dropped_links != 0 {
        r.rest_mut().dropped_events = sp.dropped_events;
        r.rest_mut().dropped_links = sp.dropped_links;
    }
    r
}

// ---- Describing what should come out ----

/// A JSON string written independently of the encoder under test: every
/// non-ASCII character is a \u escape (surrogate pairs above U+FFFF).
fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

fn json_hex(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out.push('"');
}

/// `{"key":..,"type":..,"value":..}`; doubles carry their bits as hex in
/// `"bits"` so NaN and -0.0 compare exactly.
fn json_attr(out: &mut String, key: &str, value: &Val) {
    out.push_str("{\"key\":");
    json_string(out, key);
    match value {
        Val::Str(v) => {
            out.push_str(",\"type\":\"string\",\"value\":");
            json_string(out, v);
        }
        Val::Int(v) => {
            let _ = write!(out, ",\"type\":\"int\",\"value\":{v}");
        }
        Val::Double(v) => {
            let _ = write!(
                out,
                ",\"type\":\"double\",\"bits\":\"{:016x}\"",
                v.to_bits()
            );
        }
        Val::Bool(v) => {
            let _ = write!(out, ",\"type\":\"bool\",\"value\":{v}");
        }
        Val::Bytes(v) => {
            out.push_str(",\"type\":\"bytes\",\"hex\":");
            json_hex(out, v);
        }
        Val::StrArray(v) => array(out, v.iter().map(|s| Val::Str(s.clone()))),
        Val::IntArray(v) => array(out, v.iter().map(|&x| Val::Int(x))),
        Val::DoubleArray(v) => array(out, v.iter().map(|&x| Val::Double(x))),
        Val::BoolArray(v) => array(out, v.iter().map(|&x| Val::Bool(x))),
    }
    out.push('}');
}

/// `,"type":"array","values":[...]`, each element as an attribute with an
/// empty key.
fn array(out: &mut String, values: impl Iterator<Item = Val>) {
    out.push_str(",\"type\":\"array\",\"values\":[");
    for (n, v) in values.enumerate() {
        if n > 0 {
            out.push(',');
        }
        json_attr(out, "", &v);
    }
    out.push(']');
}

/// The elements of an array `f` reads.
fn each<T>(elements: &[AttrValue], f: impl Fn(&AttrValue) -> Option<T>) -> Vec<T> {
    elements.iter().filter_map(f).collect()
}

fn val_of(v: &AttrValue) -> Val {
    match v {
        AttrValue::Str(s) => Val::Str(s.clone()),
        AttrValue::Int(v) => Val::Int(*v),
        AttrValue::Double(v) => Val::Double(*v),
        AttrValue::Bool(v) => Val::Bool(*v),
        // Elements of one scalar type (an empty array encodes the same
        // whatever its type).
        AttrValue::Array(e) => match e.first() {
            Some(AttrValue::Int(_)) => Val::IntArray(each(e, |v| match v {
                AttrValue::Int(i) => Some(*i),
                _ => None,
            })),
            Some(AttrValue::Double(_)) => Val::DoubleArray(each(e, |v| match v {
                AttrValue::Double(d) => Some(*d),
                _ => None,
            })),
            Some(AttrValue::Bool(_)) => Val::BoolArray(each(e, |v| match v {
                AttrValue::Bool(b) => Some(*b),
                _ => None,
            })),
            _ => Val::StrArray(each(e, |v| match v {
                AttrValue::Str(s) => Some(s.clone()),
                _ => None,
            })),
        },
        AttrValue::Any(_) => unreachable!("no fixture's resource has a complex value"),
    }
}

fn json_attrs<'a>(out: &mut String, attrs: impl Iterator<Item = (&'a str, &'a Val)>) {
    out.push('[');
    for (n, (key, value)) in attrs.enumerate() {
        if n > 0 {
            out.push(',');
        }
        json_attr(out, key, value);
    }
    out.push(']');
}

/// The contract for marks: spanguard adds these after the span's own.
fn mark_attrs(sp: &Span) -> Vec<Attr> {
    let mut extra = Vec::new();
    if sp.unended {
        extra.push(b("spanguard.unended", true));
    }
    if let Some(signal) = sp.interrupted {
        extra.push(b("spanguard.interrupted", true));
        if signal != 0 {
            extra.push(i("spanguard.signal", signal as i64));
        }
    }
    extra
}

fn expected_span(out: &mut String, sp: &Span) {
    out.push_str("{\"trace_id\":");
    json_hex(out, &sp.trace_id);
    out.push_str(",\"span_id\":");
    json_hex(out, &sp.span_id);
    out.push_str(",\"parent_span_id\":");
    if sp.parent == [0; 8] {
        out.push_str("\"\"");
    } else {
        json_hex(out, &sp.parent);
    }
    out.push_str(",\"trace_state\":");
    json_string(out, &sp.tracestate);
    // W3C flags, HAS_IS_REMOTE always, IS_REMOTE for a remote parent.
    let flags = sp.trace_flags as u32 | 0x100 | if sp.remote_parent { 0x200 } else { 0 };
    let _ = write!(out, ",\"flags\":{flags},\"name\":");
    json_string(out, sp.name_kept.as_deref().unwrap_or(&sp.name));
    let _ = write!(
        out,
        ",\"kind\":{},\"start_time_unix_nano\":{},\"end_time_unix_nano\":{},\"attributes\":",
        sp.kind, sp.start, sp.end
    );
    let marks = mark_attrs(sp);
    json_attrs(
        out,
        sp.attrs
            .iter()
            .chain(&marks)
            .map(|a| (a.key.as_str(), &a.value)),
    );
    let _ = write!(
        out,
        ",\"dropped_attributes_count\":{},\"events\":[",
        sp.overflow_attrs
    );
    for (n, e) in sp.events.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        let _ = write!(out, "{{\"time_unix_nano\":{},\"name\":", e.time);
        json_string(out, &e.name);
        out.push_str(",\"attributes\":");
        json_attrs(out, e.attrs.iter().map(|a| (a.key.as_str(), &a.value)));
        let _ = write!(
            out,
            ",\"dropped_attributes_count\":{}}}",
            e.over_limit.len()
        );
    }
    let _ = write!(
        out,
        "],\"dropped_events_count\":{},\"links\":[",
        sp.dropped_events
    );
    for (n, l) in sp.links.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str("{\"trace_id\":");
        json_hex(out, &l.trace_id);
        out.push_str(",\"span_id\":");
        json_hex(out, &l.span_id);
        out.push_str(",\"trace_state\":");
        json_string(out, &l.tracestate);
        // W3C flags; HAS_IS_REMOTE when known, IS_REMOTE for a remote one.
        let flags = l.flags as u32
            | match l.remote {
                None => 0,
                Some(false) => 0x100,
                Some(true) => 0x300,
            };
        let _ = write!(out, ",\"flags\":{flags},\"attributes\":");
        json_attrs(out, l.attrs.iter().map(|a| (a.key.as_str(), &a.value)));
        let _ = write!(
            out,
            ",\"dropped_attributes_count\":{}}}",
            l.over_limit.len()
        );
    }
    let _ = write!(
        out,
        "],\"dropped_links_count\":{},\"status\":{{\"code\":{},\"message\":",
        sp.dropped_links, sp.status_code
    );
    json_string(out, &sp.status_message);
    out.push_str("}}");
}

fn expected(case: &Case) -> String {
    let mut out = String::new();
    out.push_str("{\"case\":");
    json_string(&mut out, case.name);
    out.push_str(",\"resource\":{\"attributes\":");
    let values: Vec<Val> = case
        .resource
        .attributes
        .iter()
        .map(|(_, v)| val_of(v))
        .collect();
    json_attrs(
        &mut out,
        case.resource
            .attributes
            .iter()
            .zip(&values)
            .map(|((k, _), v)| (k.as_str(), v)),
    );
    // One group per scope, in order of first appearance.
    let own = (
        case.resource.scope_name.clone(),
        case.resource.scope_version.clone(),
    );
    let scope_of = |sp: &Span| sp.scope.clone().unwrap_or_else(|| own.clone());
    let mut scopes: Vec<(String, String)> = Vec::new();
    for sp in &case.spans {
        if !scopes.contains(&scope_of(sp)) {
            scopes.push(scope_of(sp));
        }
    }
    out.push_str("},\"scope_spans\":[");
    for (g, scope) in scopes.iter().enumerate() {
        if g > 0 {
            out.push(',');
        }
        out.push_str("{\"scope\":{\"name\":");
        json_string(&mut out, &scope.0);
        out.push_str(",\"version\":");
        json_string(&mut out, &scope.1);
        let given = case
            .resource
            .scopes
            .iter()
            .find(|s| s.name == scope.0 && s.version == scope.1 && s.schema_url.is_empty());
        if let Some(given) = given {
            out.push_str(",\"attributes\":");
            let values: Vec<Val> = given.attributes.iter().map(|(_, v)| val_of(v)).collect();
            json_attrs(
                &mut out,
                given
                    .attributes
                    .iter()
                    .zip(&values)
                    .map(|((k, _), v)| (k.as_str(), v)),
            );
        }
        out.push_str("},\"spans\":[");
        for (n, sp) in case
            .spans
            .iter()
            .filter(|sp| scope_of(sp) == *scope)
            .enumerate()
        {
            if n > 0 {
                out.push(',');
            }
            expected_span(&mut out, sp);
        }
        out.push_str("]}");
    }
    out.push_str("]}\n");
    out
}

fn fixture_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    match std::env::var_os("SPANGUARD_FIXTURE_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target").join("otlp-fixtures"),
    }
}

#[test]
fn write_otlp_fixtures() {
    let dir = fixture_dir();
    std::fs::create_dir_all(&dir).expect("create fixture dir");
    // A list left by an earlier run must not vouch for this one's files.
    let _ = std::fs::remove_file(dir.join("cases.txt"));
    let mut proto = OtlpProtoEncoder::new();
    let mut json = OtlpJsonEncoder::new();
    let mut pb_out = Vec::new();
    let mut json_out = Vec::new();
    let mut names = String::new();
    let pool = PayloadPool::with_mib(16).expect("pool");
    for case in cases() {
        let records: Vec<Box<SpanRecord>> = case
            .spans
            .iter()
            .map(|sp| build(sp, &case.limits, &pool))
            .collect();
        let refs: Vec<SpanView> = records.iter().map(|r| SpanView::new(r, &pool)).collect();
        proto.encode(&case.resource, &refs, &mut pb_out);
        json.encode(&case.resource, &refs, &mut json_out);
        // Outcomes the judge cannot see: the request's one field is there,
        // and the JSON is a single line with no trailing newline.
        assert_eq!(pb_out.first(), Some(&0x0a), "{}", case.name);
        assert_eq!(json_out.last(), Some(&b'}'), "{}", case.name);
        std::fs::write(dir.join(format!("{}.pb", case.name)), &pb_out).expect("write .pb");
        std::fs::write(dir.join(format!("{}.json", case.name)), &json_out).expect("write .json");
        std::fs::write(
            dir.join(format!("{}.expected.json", case.name)),
            expected(&case),
        )
        .expect("write .expected.json");
        names.push_str(case.name);
        names.push('\n');
    }
    // Written last, so a run that failed half-way leaves no list to judge.
    std::fs::write(dir.join("cases.txt"), names).expect("write cases.txt");
}
