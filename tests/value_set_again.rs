//! A value set again and again on one open span, as a streaming agent sets
//! its completion each time tokens arrive, takes the room of its largest
//! version, not of all of them: a 600 KB completion set in 4 KB steps
//! (45 MB if every version kept its chunks) arrives whole from a 1 MiB
//! pool, and the pool is whole again once the span is exported; two values
//! set again in turn as they grow take room in proportion to their final
//! size, and so do a span's name and status message set again as they
//! grow. Judged by what the file sink wrote.

mod support;

use std::time::Duration;

use spanguard::config::TracerConfig;
use spanguard::span::limits::CHUNK_BYTES;
use spanguard::tracer::{AttrInput, Parent, SpanRef, Tracer};

/// The completion's final length and the step it grows by.
const FINAL: usize = 600_000;
const STEP: usize = 4_000;

/// A tracer writing to its file sink, with lines long enough for the
/// whole values and a payload pool of `pool_mib`; its directory.
fn sink_tracer(name: &str, pool_mib: u32) -> (Tracer, std::path::PathBuf) {
    support::tracer_in(
        name,
        TracerConfig {
            schedule_delay: Duration::from_millis(20),
            sink_max_line_bytes: 64 << 20,
            payload_pool_mib: pool_mib,
            ..TracerConfig::default()
        },
    )
}

/// The completion as it stands after `n` bytes: a text that never repeats
/// at a chunk's period, so a chunk put in the wrong place shows.
fn completion(n: usize) -> String {
    (0..n)
        .map(|i| (b'a' + ((i * 7 + i / 4093) % 26) as u8) as char)
        .collect()
}

/// The string value of `key` in the sink's `text`, if any.
fn string_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let needle = format!("{{\"key\":\"{key}\",\"value\":{{\"stringValue\":\"");
    let at = text.find(&needle)? + needle.len();
    let end = text[at..].find('"')?;
    Some(&text[at..at + end])
}

/// Ends `s`, flushes until every span ended is exported, and checks that
/// no value was cut on the way.
fn end_and_flush(tracer: &Tracer, s: SpanRef) {
    tracer.end(s, 0).expect("end");
    support::flush_done(tracer, Duration::from_secs(30));
    assert_eq!(tracer.stats().values_truncated, 0);
}

#[test]
fn a_value_set_as_it_grows_arrives_whole_and_gives_its_room_back() {
    let (tracer, dir) = sink_tracer("set-again", 1);
    let text = completion(FINAL);

    let (s, _) = tracer.begin(b"llm.chat", Parent::None, 3).expect("begin");
    let mut n = STEP;
    while n <= FINAL {
        let notice = tracer
            .set_attribute(
                s,
                b"gen_ai.completion",
                AttrInput::Str(&text.as_bytes()[..n]),
            )
            .expect("set");
        assert!(!notice.truncated, "cut at {n} bytes");
        // The token count after it, as a streaming agent sets it: a
        // scalar, which takes no room after the completion.
        tracer
            .set_attribute(
                s,
                b"gen_ai.usage.output_tokens",
                AttrInput::Int(n as i64 / 4),
            )
            .expect("tokens");
        n += STEP;
    }
    end_and_flush(&tracer, s);

    // Every chunk is back: a value that needs the whole pool (255 chunks
    // and the index chunk that lists those past the first 16) is stored
    // whole by the next span.
    let whole_pool = 255 * CHUNK_BYTES;
    let big = completion(whole_pool);
    let (s, _) = tracer.begin(b"llm.chat", Parent::None, 3).expect("begin");
    let notice = tracer
        .set_attribute(s, b"gen_ai.prompt", AttrInput::Str(big.as_bytes()))
        .expect("set");
    assert!(!notice.truncated, "the pool did not get its chunks back");
    end_and_flush(&tracer, s);
    assert_eq!(tracer.stats().spans_exported, 2);

    let sink = std::fs::read_to_string(tracer.sink_path().expect("file sink")).expect("sink");
    let got = string_value(&sink, "gen_ai.completion").expect("the completion's key");
    assert_eq!(got.len(), FINAL, "the completion arrived cut");
    assert!(got == text, "the completion arrived changed");
    assert!(sink.contains(&format!(
        "{{\"key\":\"gen_ai.usage.output_tokens\",\"value\":{{\"intValue\":\"{}\"}}}}",
        FINAL / 4
    )));
    let prompt = string_value(&sink, "gen_ai.prompt").expect("the prompt's key");
    assert!(
        prompt == big,
        "the whole-pool prompt arrived cut or changed"
    );
    drop(tracer);
    std::fs::remove_dir_all(&dir).ok();
}

/// Two values set again in turn as they grow, as an instrumentation that
/// sets both `gen_ai.completion` and `llm.output_messages.0.message.content`
/// (or a prompt and a completion) chunk by chunk: neither is the last thing
/// the span stored when its turn comes. Each version taking fresh room
/// would need 40 MB for two 200 KB values; they arrive whole from a 2 MiB
/// pool, five times their final size.
#[test]
fn two_values_set_in_turn_as_they_grow_arrive_whole() {
    const FINAL: usize = 200_000;
    const STEP: usize = 1_000;
    let (tracer, dir) = sink_tracer("set-in-turn", 2);
    let text = completion(FINAL + 1);
    let keys = ["gen_ai.completion", "llm.output_messages.0.message.content"];

    let (s, _) = tracer.begin(b"llm.chat", Parent::None, 3).expect("begin");
    for n in (STEP..=FINAL).step_by(STEP) {
        for (k, key) in keys.iter().enumerate() {
            let notice = tracer
                .set_attribute(
                    s,
                    key.as_bytes(),
                    AttrInput::Str(&text.as_bytes()[k..k + n]),
                )
                .expect("set");
            assert!(!notice.truncated, "{key} cut at {n} bytes");
        }
    }
    end_and_flush(&tracer, s);
    assert_eq!(tracer.stats().spans_exported, 1);

    let sink = std::fs::read_to_string(tracer.sink_path().expect("file sink")).expect("sink");
    for (k, key) in keys.iter().enumerate() {
        let got = string_value(&sink, key).expect("the key");
        assert_eq!(got.len(), FINAL, "{key} arrived cut");
        assert!(got == &text[k..k + FINAL], "{key} arrived changed");
    }
    drop(tracer);
    std::fs::remove_dir_all(&dir).ok();
}

/// A span's status description set as it streams in, and its name set as
/// an agent's step becomes known, in turn, each longer than before: each
/// moves past the other every time. Had every version taken fresh room
/// (16 MB for an 80 KB description in 200-byte steps), the 1 MiB pool
/// would run out, and a prompt set on another open span afterwards would
/// arrive cut; both spans arrive whole.
#[test]
fn a_name_and_a_status_message_set_as_they_grow_leave_the_pool_to_other_spans() {
    const STEPS: usize = 400;
    let (tracer, dir) = sink_tracer("name-status-again", 1);
    let text = completion(200 * STEPS + 3);
    let prompt = completion(600_000);

    let (other, _) = tracer.begin(b"llm.chat", Parent::None, 3).expect("begin");
    let (s, _) = tracer.begin(b"agent", Parent::None, 1).expect("begin");
    for i in 1..=STEPS {
        let name = &text.as_bytes()[3..3 + 2 * i];
        assert!(!tracer.update_name(s, name).expect("name").truncated);
        let message = &text.as_bytes()[..200 * i];
        let notice = tracer.set_status(s, 2, message).expect("status");
        assert!(!notice.truncated, "the message cut at step {i}");
    }
    let notice = tracer
        .set_attribute(other, b"gen_ai.prompt", AttrInput::Str(prompt.as_bytes()))
        .expect("set");
    assert!(!notice.truncated, "the other span's prompt was cut");
    tracer.end(other, 0).expect("end");
    end_and_flush(&tracer, s);
    assert_eq!(tracer.stats().spans_exported, 2);

    let sink = std::fs::read_to_string(tracer.sink_path().expect("file sink")).expect("sink");
    let got = string_value(&sink, "gen_ai.prompt").expect("the prompt's key");
    assert!(got == prompt, "the prompt arrived cut or changed");
    let name = &text[3..3 + 2 * STEPS];
    assert!(sink.contains(&format!("\"name\":\"{name}\"")), "the name");
    let message = &text[..200 * STEPS];
    assert!(
        sink.contains(&format!("\"message\":\"{message}\"")),
        "the message"
    );
    drop(tracer);
    std::fs::remove_dir_all(&dir).ok();
}
