//! A value cut to make its span fit is counted in `values_truncated` once,
//! however many cuts it took: the counter counts values cut, not cuts.
//! Judged by what a loopback backend took.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spanguard::config::{Compression, TracerConfig};
use spanguard::export::otlp_decode::decode_body;
use spanguard::export::transport::BodyFormat;
use spanguard::tracer::{AttrInput, Parent, Tracer};

mod support;

/// A prompt of `n` bytes that never repeats at a short period, so a cut
/// shows as a prefix.
fn prompt(n: usize) -> String {
    (0..n)
        .map(|i| (b'a' + ((i * 7 + i / 4093) % 26) as u8) as char)
        .collect()
}

/// A backend that answers 413 to bodies over `limit` bytes and 200 to the
/// rest, which it keeps.
fn size_limited_backend(limit: usize) -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let (url, taken, _) = counting_size_limited_backend(limit);
    (url, taken)
}

/// `size_limited_backend`, answering 503 (taking nothing) while the flag
/// returned is set, as it is at first: the backend down, then up at the
/// same URL, where the spool's files wait for a sender set up alike.
fn size_limited_backend_down_at_first(limit: usize) -> (String, Taken, Arc<AtomicBool>) {
    let taken: Taken = Arc::default();
    let down = Arc::new(AtomicBool::new(true));
    let (keep, is_down) = (Arc::clone(&taken), Arc::clone(&down));
    let (url, _) = support::backend(move |body| {
        if is_down.load(Ordering::Acquire) {
            return 503;
        }
        if body.len() > limit {
            return 413;
        }
        keep.lock().unwrap().push(body.to_vec());
        200
    });
    (url, taken, down)
}

/// The request bodies a backend took.
type Taken = Arc<Mutex<Vec<Vec<u8>>>>;

/// `size_limited_backend`, and how many requests it refused.
fn counting_size_limited_backend(limit: usize) -> (String, Taken, Arc<Mutex<u32>>) {
    let taken: Taken = Arc::default();
    let refused = Arc::new(Mutex::new(0));
    let (keep, count) = (Arc::clone(&taken), Arc::clone(&refused));
    let (url, _) = support::backend(move |body| {
        if body.len() > limit {
            *count.lock().unwrap() += 1;
            return 413;
        }
        keep.lock().unwrap().push(body.to_vec());
        200
    });
    (url, taken, refused)
}

/// Ends one span with `text` in `gen_ai.prompt` and a small attribute.
fn end_span_with(tracer: &Tracer, text: &str) {
    let (s, _) = tracer.begin(b"llm.chat", Parent::None, 3).expect("begin");
    tracer
        .set_attribute(s, b"gen_ai.prompt", AttrInput::Str(text.as_bytes()))
        .expect("prompt");
    tracer
        .set_attribute(s, b"gen_ai.usage.input_tokens", AttrInput::Int(42))
        .expect("tokens");
    tracer.end(s, 0).expect("end");
}

/// Flushes, the spans delivered or spooled within 30 s.
fn flushed(tracer: &Tracer) {
    support::flush_done(tracer, Duration::from_secs(30));
}

/// The prompts of the spans in these request bodies, and how many spans
/// each body held.
fn prompts_taken(taken: &[Vec<u8>]) -> (Vec<String>, Vec<usize>) {
    let mut prompts = Vec::new();
    let mut spans_a_request = Vec::new();
    for body in taken {
        let spans = decode_body(body, BodyFormat::Protobuf, false).expect("decodes");
        spans_a_request.push(spans.len());
        prompts.extend(spans.iter().filter_map(|s| {
            s.attribute("gen_ai.prompt")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        }));
    }
    (prompts, spans_a_request)
}

#[test]
fn a_long_prompt_arrives_whole_where_the_backend_takes_it() {
    // A 1.5 MB prompt under the default max_request_bytes (1,000,000), to
    // a backend that takes 20 MiB (the Collector's OTLP/HTTP default): it
    // arrived cut to 1 MB, counted in values_truncated.
    let (url, taken) = size_limited_backend(20 << 20);
    let (tracer, dir) = support::tracer_to(
        "whole-prompt",
        &url,
        TracerConfig {
            compression: Compression::None,
            schedule_delay: Duration::from_millis(20),
            ..TracerConfig::default()
        },
    );
    let text = prompt(1_500_000);
    end_span_with(&tracer, &text);
    end_span_with(&tracer, "short");
    flushed(&tracer);
    let stats = tracer.stats();
    assert_eq!((stats.spans_exported, stats.values_truncated), (2, 0));
    let (prompts, _) = prompts_taken(&taken.lock().unwrap());
    assert!(prompts.contains(&text), "whole");
    assert!(prompts.contains(&"short".to_string()));
    tracer.shutdown(Duration::from_secs(5)).ok();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_backend_that_refused_a_long_prompt_gets_the_next_cut_up_front() {
    // A backend that answers 413 over 1,000,000 bytes: the first long
    // span is refused and sent again cut; the second is cut to
    // max_request_bytes before it is sent, not refused first.
    let (url, taken, refused) = counting_size_limited_backend(1_000_000);
    let (tracer, dir) = support::tracer_to(
        "whole-prompt-strict",
        &url,
        TracerConfig {
            compression: Compression::None,
            schedule_delay: Duration::from_millis(20),
            ..TracerConfig::default()
        },
    );
    let text = prompt(1_500_000);
    for _ in 0..2 {
        end_span_with(&tracer, &text);
        flushed(&tracer);
    }
    let stats = tracer.stats();
    assert_eq!((stats.spans_exported, stats.values_truncated), (2, 2));
    assert_eq!(*refused.lock().unwrap(), 1, "one 413, for the first");
    let (prompts, _) = prompts_taken(&taken.lock().unwrap());
    assert_eq!(prompts.len(), 2);
    assert!(prompts.iter().all(|p| text.starts_with(p.as_str())));
    assert!(prompts[1].len() > 900_000, "{} bytes", prompts[1].len());
    tracer.shutdown(Duration::from_secs(5)).ok();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_value_cut_by_the_encoder_and_again_after_a_413_is_counted_once() {
    // A 300 KB prompt under max_request_bytes 100 KB and a spool cap of
    // 200 KB (a span alone goes whole up to half the cap, here no more
    // than max_request_bytes): the encoder cuts it to fit the request (one
    // value cut). The backend takes at most 40 KB:
    // its 413 on the span alone cuts the prompt again. One value was cut,
    // counted twice.
    let (url, taken) = size_limited_backend(40_000);
    let (tracer, dir) = support::tracer_to(
        "cut-counted-once",
        &url,
        TracerConfig {
            compression: Compression::None,
            max_request_bytes: 100_000,
            spool_max_bytes: 200_000,
            schedule_delay: Duration::from_millis(20),
            ..TracerConfig::default()
        },
    );
    let text = prompt(300_000);
    end_span_with(&tracer, &text);
    flushed(&tracer);
    let stats = tracer.stats();
    assert_eq!(stats.spans_exported, 1);
    let taken = taken.lock().unwrap();
    assert_eq!(taken.len(), 1);
    let spans = decode_body(&taken[0], BodyFormat::Protobuf, false).expect("decodes");
    let got = spans[0]
        .attribute("gen_ai.prompt")
        .and_then(|v| v.as_str())
        .expect("the prompt, cut");
    assert!(
        got.len() < 40_000 && got.len() > 10_000,
        "{} bytes",
        got.len()
    );
    assert!(text.starts_with(got), "the prompt's beginning");
    assert_eq!(stats.values_truncated, 1, "one value cut, counted once");
    tracer.shutdown(Duration::from_secs(5)).ok();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_value_cut_then_spooled_and_cut_again_on_replay_is_counted_once() {
    // A 300 KB prompt under max_request_bytes 100 KB and a spool cap of
    // 200 KB (no room for it whole: see above): the encoder cuts it
    // (counted by the tracer that cut it), and the backend is down: the
    // request is spooled. A tracer that finds the backend up, taking at
    // most 40 KB, replays it: its 413 cuts the prompt again, and that
    // tracer counted the value cut as well, since the spool file did not
    // say it was counted. With the flight recorder, the spool file is the
    // journal written before the request was sent.
    for flight_recorder in [false, true] {
        let what = format!("flight_recorder={flight_recorder}");
        let name = format!("cut-spooled-replayed-{flight_recorder}");
        let (url, taken, down) = size_limited_backend_down_at_first(40_000);
        let config = TracerConfig {
            compression: Compression::None,
            max_request_bytes: 100_000,
            spool_max_bytes: 200_000,
            flight_recorder,
            schedule_delay: Duration::from_millis(20),
            export_timeout: Duration::from_millis(200),
            ..TracerConfig::default()
        };
        let (tracer, dir) = support::tracer_to(&name, &url, config.clone());
        let text = prompt(300_000);
        end_span_with(&tracer, &text);
        tracer.shutdown(Duration::from_secs(5)).ok();
        let stats = tracer.stats();
        assert_eq!(stats.spooled_spans, 1, "{what}");
        assert_eq!(stats.values_truncated, 1, "{what}: cut to fit the request");
        drop(tracer);

        down.store(false, Ordering::Release);
        let (tracer, _) = support::tracer_to(&name, &url, config);
        tracer.shutdown(Duration::from_secs(10)).ok();
        let stats = tracer.stats();
        assert_eq!(stats.replayed_spans, 1, "{what}");
        let taken = taken.lock().unwrap();
        let spans: Vec<_> = taken
            .iter()
            .flat_map(|b| decode_body(b, BodyFormat::Protobuf, false).expect("decodes"))
            .collect();
        assert_eq!(spans.len(), 1, "{what}");
        let got = spans[0]
            .attribute("gen_ai.prompt")
            .and_then(|v| v.as_str())
            .expect("the prompt, cut");
        assert!(text.starts_with(got), "{what}: the prompt's beginning");
        assert!(
            got.len() < 40_000,
            "{what}: cut again ({} bytes)",
            got.len()
        );
        assert_eq!(
            stats.values_truncated, 0,
            "{what}: counted by the tracer that cut it, not again"
        );
        drop(tracer);
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[test]
fn a_span_alone_over_the_spool_cap_is_spooled_with_its_values_cut() {
    // The backend down, a spool cap of 64 KiB, a span with a 300 KB prompt:
    // the span was lost ("batch larger than the spool cap"). Its values are
    // cut to fit, as after a 413, counted once, and it is spooled; a tracer
    // that finds the backend up replays it.
    let (url, taken, down) = size_limited_backend_down_at_first(usize::MAX);
    let config = TracerConfig {
        compression: Compression::None,
        spool_max_bytes: 64 << 10,
        schedule_delay: Duration::from_millis(20),
        export_timeout: Duration::from_millis(200),
        ..TracerConfig::default()
    };
    let (tracer, dir) = support::tracer_to("spool-cap-cut", &url, config.clone());
    let text = prompt(300_000);
    end_span_with(&tracer, &text);
    tracer.shutdown(Duration::from_secs(5)).ok();
    let stats = tracer.stats();
    assert_eq!(
        (stats.spooled_spans, stats.dropped_export_failed),
        (1, 0),
        "spooled, not lost"
    );
    assert_eq!(stats.values_truncated, 1, "the prompt, cut once");
    drop(tracer);

    down.store(false, Ordering::Release);
    let (tracer, _) = support::tracer_to("spool-cap-cut", &url, config);
    tracer.shutdown(Duration::from_secs(10)).ok();
    assert_eq!(tracer.stats().replayed_spans, 1);
    let taken = taken.lock().unwrap();
    let spans: Vec<_> = taken
        .iter()
        .flat_map(|b| decode_body(b, BodyFormat::Protobuf, false).expect("decodes"))
        .collect();
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(span.name, "llm.chat");
    assert_eq!(
        span.attribute("gen_ai.usage.input_tokens")
            .and_then(|v| v.as_i64()),
        Some(42),
        "small attributes whole"
    );
    let got = span
        .attribute("gen_ai.prompt")
        .and_then(|v| v.as_str())
        .expect("the prompt, cut");
    assert!(text.starts_with(got), "the prompt's beginning");
    assert!(
        got.len() > 16_000 && got.len() <= 32 << 10,
        "cut to half the cap ({} bytes)",
        got.len()
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_span_over_the_spool_cap_even_with_its_values_cut_is_lost_and_says_why() {
    let down = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}/v1/traces", down.local_addr().unwrap());
    drop(down);
    let (tracer, dir) = support::tracer_to(
        "spool-cap-lost",
        &dead,
        TracerConfig {
            compression: Compression::None,
            spool_max_bytes: 40,
            schedule_delay: Duration::from_millis(20),
            export_timeout: Duration::from_millis(200),
            ..TracerConfig::default()
        },
    );
    let said: Arc<Mutex<Vec<String>>> = Arc::default();
    let told = Arc::clone(&said);
    tracer.set_callback(Some(Box::new(move |_, message: &str| {
        told.lock().unwrap().push(message.to_string())
    })));
    end_span_with(&tracer, &prompt(300_000));
    tracer.shutdown(Duration::from_secs(5)).ok();
    let stats = tracer.stats();
    assert_eq!((stats.spooled_spans, stats.dropped_export_failed), (0, 1));
    assert_eq!(
        stats.values_truncated, 0,
        "a lost span's values are not counted cut"
    );
    let said = said.lock().unwrap();
    assert!(
        said.iter()
            .any(|m| m.contains("larger than the spool's cap")),
        "{said:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Values cut as they were recorded are kept in the tracer's record (what
/// `spanguard why` reads) by the limit that cut them, with the setting
/// that raises it: two prompts cut at the value length limit, a resource
/// value nested past the depth limit as it was set, a name over its fixed
/// limit. The record counted them (`truncated`) without a place, and why
/// could only list every limit that cuts values when recorded.
#[test]
fn values_cut_as_recorded_are_recorded_by_the_limit_that_cut_them() {
    use spanguard::config::ResourceValue;
    let dir = std::env::temp_dir().join(format!("sg-cut-places-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = TracerConfig {
        service_name: "cut-places".into(),
        sink_dir: dir.join("spans"),
        spool_dir: dir.join("spool"),
        install_signal_handlers: false,
        ..TracerConfig::default()
    };
    config.limits.attribute_value_length = 100;
    config.limits.attribute_value_depth = 1;
    let tracer = Tracer::new(config).expect("tracer");
    // An array holding an (empty) array: level 2, past a depth limit of 1.
    let nested = vec![0x2a, 0x04, 0x0a, 0x02, 0x2a, 0x00];
    tracer
        .set_resource(vec![("labels".into(), ResourceValue::Any(nested))])
        .expect("running");
    let text = prompt(5_000);
    for name in [&b"llm"[..], &[b'n'; 2_000][..]] {
        let (s, _) = tracer.begin(name, Parent::None, 1).expect("begin");
        tracer
            .set_attribute(s, b"gen_ai.prompt", AttrInput::Str(text.as_bytes()))
            .expect("set");
        tracer.end(s, 0).expect("end");
    }
    tracer.shutdown(Duration::from_secs(30)).expect("shutdown");
    assert_eq!(tracer.stats().values_truncated, 4);

    let (record_text, record) = support::the_outcome_record(&dir.join("spool"));
    assert_eq!(record.counts.truncated, 4, "{record_text}");
    let mut cuts = record.cuts.clone();
    cuts.sort();
    let said = |n: u64, starts: &str, names: &[&str]| {
        cuts.iter().any(|(values, place)| {
            *values == n && place.starts_with(starts) && names.iter().all(|s| place.contains(s))
        })
    };
    assert_eq!(cuts.len(), 3, "{record_text}");
    assert!(
        said(
            2,
            "when recorded, at the attribute value length limit (100 characters;",
            &[
                "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
                "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"
            ]
        ),
        "{record_text}"
    );
    assert!(
        said(
            1,
            "when recorded, past the value depth limit (1; arrays and maps nested deeper",
            &["SPANGUARD_ATTRIBUTE_VALUE_DEPTH_LIMIT"]
        ),
        "{record_text}"
    );
    assert!(
        said(
            1,
            "when recorded, at a fixed limit: a name or key over 1024 bytes",
            &[]
        ),
        "{record_text}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
