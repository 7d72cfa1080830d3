//! LLM-sized values arrive whole in the default sink (no endpoint, the
//! default `sink_max_line_bytes`, 1 MiB): a 2 MB completion, a value of
//! quotes and control characters (6 bytes each in JSON) and a non-ASCII
//! one, each on a span whose JSON line is over the line limit. They were
//! cut to fit 1 MiB, counted but with no mark on the span, and `spanguard
//! show --span` printed the cut value as if whole. Judged by Python's
//! json module (an independent decoder) reading the sink's lines, and by
//! what `spanguard show --span` prints.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use spanguard::config::TracerConfig;
use spanguard::tracer::{AttrInput, Parent, Tracer};

mod support;

/// `n` bytes of text that never repeats at a short period, so that a cut
/// cannot pass for the whole.
fn completion(n: usize) -> String {
    (0..n)
        .map(|i| (b'a' + ((i * 7 + i / 4093) % 26) as u8) as char)
        .collect()
}

/// `n` characters of quotes, backslashes and control characters, which
/// JSON writes as 2 to 6 bytes each.
fn escape_heavy(n: usize) -> String {
    let alphabet = ['"', '\u{1}', '\\', '\n', '\u{1f}', '\t', '\u{7}', 'x'];
    (0..n)
        .map(|i| alphabet[(i * 5 + i / 1021) % alphabet.len()])
        .collect()
}

/// `n` characters of text in other scripts (2 to 4 bytes each in UTF-8).
fn non_ascii(n: usize) -> String {
    let alphabet = ['日', '本', 'é', '🙂', 'ß', 'Ж', '語', '\u{301}'];
    (0..n)
        .map(|i| alphabet[(i * 3 + i / 997) % alphabet.len()])
        .collect()
}

/// Ends a span named `name` with these string attributes.
fn end_span(tracer: &Tracer, name: &str, attributes: &[(&str, &str)]) {
    let (s, _) = tracer
        .begin(name.as_bytes(), Parent::None, 3)
        .expect("begin");
    for (k, v) in attributes {
        tracer
            .set_attribute(s, k.as_bytes(), AttrInput::Str(v.as_bytes()))
            .expect("set");
    }
    tracer.end(s, 0).expect("end");
}

/// Python's json module reads every line of the sink files in `sink` and
/// compares each span's string attributes with the files in `expected`
/// (named `<span name>.<key>`): one line for each, "whole NAME KEY" or
/// "cut NAME KEY GOT of WANT", and "span NAME ID" for each span, "line N"
/// for each line's length.
const JUDGE: &str = r#"
import json, pathlib, sys
sink, expected = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for f in sorted(sink.glob("*.jsonl")):
    for line in f.read_bytes().splitlines(keepends=True):
        print("line", len(line))
        for rs in json.loads(line)["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    name = span["name"]
                    print("span", name, span["spanId"])
                    for a in span.get("attributes", []):
                        want = expected / f"{name}.{a['key']}"
                        if not want.exists():
                            continue
                        want = want.read_text(encoding="utf-8")
                        got = a["value"].get("stringValue", "")
                        verdict = "whole" if got == want else f"cut {len(got)} of {len(want)}"
                        print(verdict.split()[0], name, a["key"], *verdict.split()[1:])
"#;

/// What `command` printed on stdout; it must succeed.
fn stdout_of(command: &mut Command) -> String {
    let out = command.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn judged(sink: &Path, expected: &Path) -> String {
    stdout_of(
        Command::new("python3")
            .args(["-c", JUDGE])
            .arg(sink)
            .arg(expected),
    )
}

/// What `spanguard show --span ID` prints of the sink in `sink`.
fn shown(sink: &Path, span_id: &str) -> String {
    stdout_of(
        Command::new(env!("CARGO_BIN_EXE_spanguard"))
            .args(["show", "--color", "never", "--span", span_id])
            .arg(sink),
    )
}

#[test]
fn llm_sized_values_arrive_whole_in_the_default_sink_and_in_show() {
    let (tracer, dir) = support::tracer_in(
        "sink-whole",
        TracerConfig {
            endpoint: None,
            schedule_delay: Duration::from_millis(20),
            ..TracerConfig::default()
        },
    );
    assert_eq!(
        TracerConfig::default().sink_max_line_bytes,
        1 << 20,
        "the default line limit this test is about"
    );
    let (answer, quotes, script) = (
        completion(2_000_000),
        escape_heavy(250_000),
        non_ascii(300_000),
    );
    // A 2 MB completion beside a non-ASCII prompt; a tool's output of
    // 250,000 characters that JSON writes in about 1.3 MB; small spans
    // around them, which still go in batches.
    let spans: [(&str, &[(&str, &str)]); 4] = [
        ("before", &[("k", "v")]),
        (
            "llm.chat",
            &[("gen_ai.completion", &answer), ("gen_ai.prompt", &script)],
        ),
        ("tool.call", &[("tool.output", &quotes)]),
        ("after", &[("k", "v")]),
    ];
    let expected = dir.join("expected");
    std::fs::create_dir_all(&expected).expect("mkdir");
    for (name, attributes) in spans {
        end_span(&tracer, name, attributes);
        for (k, v) in attributes {
            std::fs::write(expected.join(format!("{name}.{k}")), v).expect("write");
        }
    }
    support::flush_done(&tracer, Duration::from_secs(60));
    let stats = tracer.stats();
    tracer.shutdown(Duration::from_secs(10)).ok();
    assert_eq!((stats.spans_exported, stats.values_truncated), (4, 0));

    let sink = dir.join("spans");
    let verdicts = judged(&sink, &expected);
    let mut whole: Vec<&str> = verdicts
        .lines()
        .filter(|l| l.starts_with("whole ") || l.starts_with("cut "))
        .collect();
    whole.sort();
    assert_eq!(
        whole,
        [
            "whole after k",
            "whole before k",
            "whole llm.chat gen_ai.completion",
            "whole llm.chat gen_ai.prompt",
            "whole tool.call tool.output",
        ],
        "{verdicts:.2000}"
    );
    let id_of = |name: &str| {
        verdicts
            .lines()
            .find_map(|l| l.strip_prefix(&format!("span {name} ")))
            .expect("the span is in the sink")
            .to_string()
    };
    let page = shown(&sink, &id_of("llm.chat"));
    assert!(!page.contains("cut"), "{page:.2000}");
    assert!(page.contains(&answer), "the completion whole: {page:.2000}");
    assert!(page.contains(&script), "the prompt whole: {page:.2000}");
    let page = shown(&sink, &id_of("tool.call"));
    assert!(!page.contains("cut"), "{page:.2000}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A batch the sink could not write (its directory unusable) waits in the
/// spool, the long span whole; `spanguard replay` sends it to a backend
/// with every value whole.
#[test]
fn a_long_span_the_sink_spooled_is_replayed_whole() {
    let dir = std::env::temp_dir().join(format!("sg-sink-replay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    // A file where the sink's directory's parent should be: every write fails.
    std::fs::write(dir.join("not-a-dir"), b"").expect("write");
    let tracer = Tracer::new(TracerConfig {
        endpoint: None,
        sink_dir: dir.join("not-a-dir").join("spans"),
        spool_dir: dir.join("spool"),
        install_signal_handlers: false,
        schedule_delay: Duration::from_millis(20),
        export_timeout: Duration::from_millis(200),
        ..TracerConfig::default()
    })
    .expect("tracer");
    let (answer, script) = (completion(2_000_000), non_ascii(300_000));
    end_span(
        &tracer,
        "llm.chat",
        &[("gen_ai.completion", &answer), ("gen_ai.prompt", &script)],
    );
    support::flush_done(&tracer, Duration::from_secs(60));
    let stats = tracer.stats();
    tracer.shutdown(Duration::from_secs(10)).ok();
    assert_eq!(
        (stats.spooled_spans, stats.values_truncated),
        (1, 0),
        "{stats:?}"
    );

    let taken: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>> = Default::default();
    let keep = std::sync::Arc::clone(&taken);
    let (url, _) = support::backend(move |body| {
        keep.lock().unwrap().push(body.to_vec());
        200
    });
    stdout_of(
        Command::new(env!("CARGO_BIN_EXE_spanguard"))
            .args(["replay", "--endpoint", &url])
            .arg(dir.join("spool"))
            .env_remove("OTEL_EXPORTER_OTLP_HEADERS")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_HEADERS"),
    );
    let taken = taken.lock().unwrap();
    let bodies: Vec<String> = taken
        .iter()
        .map(|b| String::from_utf8(b.clone()).expect("OTLP/JSON"))
        .collect();
    assert_eq!(bodies.len(), 1, "one request");
    assert!(bodies[0].contains(&answer), "the completion whole");
    assert!(bodies[0].contains(&script), "the prompt whole");
    std::fs::remove_dir_all(&dir).ok();
}
