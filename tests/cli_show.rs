//! `spanguard show` as a person sees it, on golden output: fixed input
//! files with fixed times (sink lines from tests/cli/sample, plus a spool
//! batch and a crash dump written here with the library's own writers),
//! colours off. Hostile files beside them are reported, never fatal.
//!
//! SPANGUARD_UPDATE_GOLDEN=1 rewrites tests/cli/golden/ from the output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, UNIX_EPOCH};

use spanguard::buffer::dump::DumpHeader;
use spanguard::buffer::payload_pool::PayloadPool;
use spanguard::buffer::slab::{STATE_ENDED, STATE_OPEN};
use spanguard::export::otlp_proto::OtlpProtoEncoder;
use spanguard::export::resource::ResourceInfo;
use spanguard::export::spool::{SpoolDir, SpooledBatch};
use spanguard::export::transport::BodyFormat;
use spanguard::span::limits::SpanLimits;
use spanguard::span::record::{NoOverflow, STATUS_ERROR, SpanRecord, SpanView, ValueInput};

/// A pool of no chunks: these spans' text fits their slots.
fn no_pool() -> PayloadPool {
    PayloadPool::with_mib(0).expect("an empty pool")
}

/// Sets string and int attributes on a span in its slot.
fn set(r: &mut SpanRecord, attributes: &[(&[u8], ValueInput)]) {
    for (k, v) in attributes {
        r.set_attribute(k, v, &SpanLimits::default(), &no_pool())
            .expect("fits the slot");
    }
}

const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// 2026-11-30T09:00:00Z, the sample's start.
const T0: u64 = 1_796_029_200_000_000_000;
const MS: u64 = 1_000_000;

fn record(
    trace: u8,
    span: u8,
    parent: u8,
    name: &str,
    start_ms: u64,
    end_ms: u64,
) -> Box<SpanRecord> {
    // SAFETY: SpanRecord is plain data for which all-zero bytes are a valid
    // (empty) value.
    let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
    r.trace_id = [trace; 16];
    r.span_id = [span; 8];
    if parent != 0 {
        r.parent_span_id = [parent; 8];
    }
    r.trace_flags = 1;
    r.kind = if parent == 0 { 2 } else { 3 };
    r.start_unix_ns = T0 + start_ms * MS;
    r.end_unix_ns = T0 + end_ms * MS;
    r.name = r.store_text(name.as_bytes(), 256, &no_pool()).0;
    r
}

/// A spooled batch (gzipped protobuf, as a failed export leaves it): a
/// nightly evaluation run whose backend was down.
fn write_spool(dir: &Path) {
    let resource = ResourceInfo::new(
        "nightly-eval",
        &[("service.instance.id".into(), "e1".into())],
    );
    let mut root = record(0xd4, 0x40, 0, "eval.run", 60_000, 63_500);
    set(
        &mut root,
        &[(b"eval.suite", ValueInput::Str(b"refunds-v2"))],
    );
    let mut judge = record(0xd4, 0x41, 0x40, "llm.judge", 60_100, 61_900);
    set(
        &mut judge,
        &[
            (b"gen_ai.request.model", ValueInput::Str(b"gpt-4o-mini")),
            (b"gen_ai.usage.input_tokens", ValueInput::Int(3_200)),
            (b"gen_ai.usage.output_tokens", ValueInput::Int(150)),
        ],
    );
    let mut body = Vec::new();
    let views = [
        SpanView::new(&root, &NoOverflow),
        SpanView::new(&judge, &NoOverflow),
    ];
    OtlpProtoEncoder::new().encode(&resource, &views, &mut body);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &body).expect("gzip");
    let spool = SpoolDir::new(dir, 1 << 20);
    spool
        .write(&SpooledBatch {
            format: BodyFormat::Protobuf,
            gzipped: true,
            spans: 2,
            cut_counted: 0,
            cut_at: Vec::new(),
            body: gz.finish().expect("gzip"),
        })
        .expect("spool");
    // Named by the time it was written and its writer's pid: a fixed name
    // keeps the golden output fixed.
    let written = spool.list().pop().expect("spooled");
    std::fs::rename(
        written,
        dir.join("01796029260000000000-0000003141-000000.sgspool"),
    )
    .expect("rename");
}

/// A crash dump as the crash handler writes it (header, then raw slots,
/// each followed by its chunks: none here) of
/// a worker killed by SIGSEGV with one span ended and one still open.
fn write_dump(dir: &Path) {
    let header = {
        let mut h = DumpHeader::new(
            *b"SGDUMP03",
            3,
            "batch-worker",
            &[("service.instance.id".into(), "w7".into())],
        );
        h.signal = libc::SIGSEGV;
        h
    };
    let mut done = record(0xe5, 0x50, 0x51, "fetch.documents", 30_020, 30_400);
    done.header = AtomicU64::new(7 << 32 | STATE_ENDED as u64);
    let mut open = record(0xe5, 0x51, 0, "job.reindex", 30_000, 0);
    open.header = AtomicU64::new(7 << 32 | STATE_OPEN as u64);
    open.status_code = 0;
    let mut failed = record(0xe5, 0x52, 0x51, "embed.batch", 30_410, 30_900);
    failed.header = AtomicU64::new(7 << 32 | STATE_ENDED as u64);
    failed.status_code = STATUS_ERROR;
    failed.rest_mut().status_message = failed.store_text(b"CUDA out of memory", 1024, &no_pool()).0;
    let mut bytes = header.as_bytes().to_vec();
    for r in [&done, &open, &failed] {
        // SAFETY: a record is plain data; its bytes are what the crash
        // handler writes.
        bytes.extend_from_slice(unsafe {
            std::slice::from_raw_parts(
                (&**r as *const SpanRecord).cast::<u8>(),
                std::mem::size_of::<SpanRecord>(),
            )
        });
    }
    let path = dir.join("01796029230000000000-0000004242-1.sgdump");
    std::fs::write(&path, bytes).expect("dump");
    // The process died when the file was last written: its open span ends
    // then.
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(UNIX_EPOCH + Duration::from_nanos(T0 + 31_250 * MS)))
        .expect("mtime");
}

/// Files that are not what their names say.
fn write_hostile(dir: &Path) {
    std::fs::write(
        dir.join("junk.sgspool"),
        b"SGSPOOL1\x00\x01\xff\xff\xff\xff",
    )
    .expect("write");
    std::fs::write(dir.join("torn.sgdump"), [0x53u8; 700]).expect("write");
    std::fs::write(dir.join("garbage.jsonl"), b"{not json}\n\n{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"zz\"}]}]}]}\n").expect("write");
}

fn fixtures(test: &str) -> PathBuf {
    let root = scratch(test);
    let dir = root.join("fixtures");
    std::fs::create_dir_all(&dir).expect("dir");
    for entry in std::fs::read_dir(Path::new(REPO).join("tests/cli/sample")).expect("sample") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.join(path.file_name().expect("name"))).expect("copy");
    }
    write_spool(&dir);
    write_dump(&dir);
    write_hostile(&dir);
    root
}

/// A sink line: one span `llm.chat` of service `svc`, from T0 for 5 ms,
/// whose JSON goes on with `fields` (its attributes, events, status).
fn llm_chat_line(fields: &str) -> String {
    format!(
        concat!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc"}}}}]}},"#,
            r#""scopeSpans":[{{"scope":{{"name":"s"}},"spans":[{{"traceId":"0af7651916cd43dd8448eb211c80319c","#,
            r#""spanId":"b7ad6b7169203331","name":"llm.chat","kind":3,"startTimeUnixNano":"{}","endTimeUnixNano":"{}","#,
            r#"{}}}]}}]}}]}}"#
        ),
        T0,
        T0 + 5 * MS,
        fields
    )
}

/// An empty directory of its own for `test`.
fn scratch(test: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("sg-cli-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("dir");
    root
}

/// A directory of its own for `test`, holding copies of the files `names`
/// of the repository's `folder`.
fn copies_of(test: &str, folder: &str, names: &[&str]) -> PathBuf {
    let root = scratch(test);
    for name in names {
        std::fs::copy(Path::new(REPO).join(folder).join(name), root.join(name)).expect("copy");
    }
    root
}

/// A directory of its own for `test`, holding one sink file of `line`.
fn sink_of(test: &str, line: String) -> PathBuf {
    let root = scratch(test);
    std::fs::write(root.join("svc-1.jsonl"), line + "\n").expect("write");
    root
}

fn show(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_spanguard"));
    c.current_dir(root).arg("show").args(args);
    c.env("COLUMNS", "100").env_remove("NO_COLOR");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run spanguard")
}

/// The page `show --html` wrote of `file` in `root`, having succeeded.
fn page_of(root: &Path, file: &str) -> String {
    let out = show(root, &["--html", "page.html", file], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::read_to_string(root.join("page.html")).expect("page")
}

/// What `show` with `args` printed without colour, having succeeded.
fn shown(root: &Path, args: &[&str]) -> String {
    let out = show(root, args, &[("NO_COLOR", "1")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("UTF-8 output")
}

/// Compares with a golden file; shows both on a difference.
fn golden(name: &str, got: &str) {
    let path = Path::new(REPO).join("tests/cli/golden").join(name);
    if std::env::var_os("SPANGUARD_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(&path, got).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        want == got,
        "output differs from {}\n--- want\n{want}\n--- got\n{got}",
        path.display()
    );
}

#[test]
fn show_draws_every_source_as_waterfalls() {
    let root = fixtures("show_draws_e");
    let out = show(&root, &["fixtures", "--color", "never"], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    golden("show.txt", &text(&out.stdout));
    // Each hostile file is named on stderr, and did not stop the rest.
    for name in [
        "junk.sgspool",
        "torn.sgdump",
        "garbage.jsonl:1",
        "garbage.jsonl:3",
    ] {
        assert!(stderr.contains(name), "{name} not reported: {stderr}");
    }
    // Piped output has no colour unless asked; NO_COLOR wins over auto.
    let plain = show(&root, &["fixtures"], &[]);
    assert_eq!(plain.stdout, out.stdout);
    let colored = show(&root, &["fixtures", "--color", "always"], &[]);
    assert!(text(&colored.stdout).contains("\x1b[1;31m"));
    let no_color = show(
        &root,
        &["fixtures", "--color", "auto"],
        &[("NO_COLOR", "1")],
    );
    assert!(!text(&no_color.stdout).contains('\x1b'));
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn filters_pick_traces() {
    let root = fixtures("filters_pick");
    let traces_in = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["fixtures", "--color", "never"];
        all.extend_from_slice(args);
        let out = show(&root, &all, &[]);
        text(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("trace "))
            .map(|l| l[..4].to_string())
            .collect()
    };
    assert_eq!(traces_in(&[]), ["4bf9", "5b8a", "0af7", "e5e5", "d4d4"]);
    assert_eq!(traces_in(&["--errors"]), ["4bf9", "5b8a", "0af7", "e5e5"]);
    assert_eq!(traces_in(&["--service", "billing-api"]), ["5b8a"]);
    assert_eq!(traces_in(&["--name", "embed"]), ["0af7", "e5e5"]);
    assert_eq!(traces_in(&["--trace", "4BF9"]), ["4bf9"]);
    assert_eq!(
        traces_in(&[
            "--since",
            "2026-11-30T09:00:10Z",
            "--until",
            "2026-11-30 09:00:40"
        ]),
        ["0af7", "e5e5"]
    );
    // A moment long ago, as a duration: everything is since then.
    assert_eq!(traces_in(&["--since", "36500d"]).len(), 5);
    let none = show(&root, &["fixtures", "--name", "no-such-span"], &[]);
    assert_eq!(none.status.code(), Some(1));
    assert!(text(&none.stderr).contains("no trace matches"));
    let bad = show(&root, &["fixtures", "--since", "yesterday"], &[]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("--since yesterday: not a time"));
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn attributes_and_errors_only_on_golden_output() {
    let root = fixtures("attributes_a");
    let out = show(
        &root,
        &[
            "fixtures",
            "--color",
            "never",
            "--errors",
            "--attributes",
            "--trace",
            "e5",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    golden("show-crash-dump-attributes.txt", &text(&out.stdout));
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn the_defaults_come_from_the_library_variables() {
    let root = fixtures("the_defaults");
    let run = |env: &[(&str, &str)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_spanguard"));
        c.current_dir(&root).args(["show", "--color", "never"]);
        for var in [
            "SPANGUARD_SINK_DIR",
            "SPANGUARD_SPOOL_DIR",
            "XDG_STATE_HOME",
        ] {
            c.env_remove(var);
        }
        c.env("HOME", &root);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("run")
    };
    let out = run(&[
        ("SPANGUARD_SINK_DIR", "fixtures"),
        ("SPANGUARD_SPOOL_DIR", "none"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("trace 4bf92f3577b34da6a3ce929d0e0e4736"));
    let empty = run(&[]);
    assert_eq!(empty.status.code(), Some(1));
    assert!(
        text(&empty.stderr).contains(".local/state/spanguard/spans"),
        "{}",
        text(&empty.stderr)
    );
    // A variable with a wrong value is ignored, as by the library, and said.
    let bad = run(&[
        ("SPANGUARD_SINK_DIR", "fixtures"),
        ("SPANGUARD_SPOOL_DIR", "none"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ]);
    assert_eq!(bad.status.code(), Some(0), "{}", text(&bad.stderr));
    assert!(text(&bad.stdout).contains("trace 4bf92f3577b34da6a3ce929d0e0e4736"));
    assert!(
        text(&bad.stderr)
            .contains("spanguard: warn: OTEL_EXPORTER_OTLP_PROTOCOL=grpc: not http/protobuf"),
        "{}",
        text(&bad.stderr)
    );
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn a_megabyte_status_message_is_cut_on_the_span_line() {
    // An exception's whole text as the status message: `show` printed it
    // on the span's one line (a 5 MB line in the LLM-sized data audit).
    let message = "boom ".repeat(200_000);
    let line = llm_chat_line(&format!(r#""status":{{"code":2,"message":"{}"}}"#, message));
    let root = sink_of("status", line);
    let out = show(&root, &["svc-1.jsonl"], &[]);
    let printed = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(printed.contains("ERROR boom boom"), "{printed}");
    let longest = printed
        .lines()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0);
    assert!(longest < 400, "a line of {longest} characters");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_deep_chain_of_spans_is_drawn_in_bounded_lines() {
    // An agent that nests each step in the one before (or a hostile file):
    // every level was drawn, so 100,000 nested spans made 15 GB of lines
    // (quadratic in the depth) and took 5 GB to place. Lines now stay
    // within the terminal's width whatever the depth, the deeper spans
    // saying their depth, and the page's indent stops growing.
    const DEPTH: u64 = 3000;
    let spans: Vec<String> = (0..DEPTH)
        .map(|i| {
            let parent = if i == 0 {
                String::new()
            } else {
                format!(r#""parentSpanId":"{i:016x}","#)
            };
            format!(
                concat!(
                    r#"{{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"{:016x}",{}"#,
                    r#""name":"step{}","kind":1,"startTimeUnixNano":"{}","endTimeUnixNano":"{}"}}"#
                ),
                i + 1,
                parent,
                i,
                T0 + i,
                T0 + 5 * MS
            )
        })
        .collect();
    let line = format!(
        concat!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc"}}}}]}},"#,
            r#""scopeSpans":[{{"scope":{{"name":"s"}},"spans":[{}]}}]}}]}}"#
        ),
        spans.join(",")
    );
    let root = sink_of("deep", line);
    let out = show(&root, &["svc-1.jsonl"], &[]);
    let printed = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let longest = printed
        .lines()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0);
    // COLUMNS is 100 (a span's line may take a cell or two more); drawn in
    // full, the deepest line took 9,000.
    assert!(longest <= 110, "a line of {longest} characters");
    let deepest = printed
        .lines()
        .find(|l| l.contains("step2999"))
        .expect("the deepest span drawn");
    assert!(deepest.contains("…2999 └─ step2999"), "{deepest}");
    // Near the top, the tree is drawn in full.
    assert!(printed.contains("\n  └─ step1 "), "{printed}");
    assert!(printed.contains("\n     └─ step2 "), "{printed}");

    let page = root.join("deep.html");
    let page_arg = page.to_str().expect("path");
    let out = show(&root, &["--html", page_arg, "svc-1.jsonl"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&page).expect("page");
    let widest = html
        .split("padding-left:")
        .skip(1)
        .filter_map(|rest| rest.split("px").next()?.parse::<u64>().ok())
        .max()
        .expect("indents");
    assert!(widest <= 8 + 16 * 32, "an indent of {widest}px");
    assert!(
        html.contains("data-depth=\"2999\""),
        "the depth kept as data"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_trace_of_many_services_names_the_first_ones() {
    // A file whose every span names a service of its own: the heading
    // listed them all (a line of half a megabyte for 50,000). It names
    // eight and counts the rest; --service still finds any of them.
    let resources: Vec<String> = (0..20u64)
        .map(|i| {
            format!(
                concat!(
                    r#"{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc{}"}}}}]}},"#,
                    r#""scopeSpans":[{{"scope":{{"name":"s"}},"spans":[{{"traceId":"0af7651916cd43dd8448eb211c80319c","#,
                    r#""spanId":"{:016x}","name":"op{}","kind":1,"startTimeUnixNano":"{}","endTimeUnixNano":"{}"}}]}}]}}"#
                ),
                i,
                i + 1,
                i,
                T0 + i,
                T0 + 5 * MS
            )
        })
        .collect();
    let line = format!(r#"{{"resourceSpans":[{}]}}"#, resources.join(","));
    let root = sink_of("services", line);
    for args in [&["svc-1.jsonl"][..], &["--service", "svc19", "svc-1.jsonl"]] {
        let out = show(&root, args, &[]);
        let printed = text(&out.stdout);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let heading = printed.lines().next().expect("a heading");
        assert!(
            heading.contains("  svc0, svc1, svc2, svc3, svc4, svc5, svc6, svc7 and 12 more  "),
            "{heading}"
        );
    }
    let page = root.join("services.html");
    let out = show(
        &root,
        &["--html", page.to_str().expect("path"), "svc-1.jsonl"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&page).expect("page");
    assert!(
        html.contains("svc6, svc7 and 12 more"),
        "the page's heading too"
    );
    assert!(!html.contains("svc7, svc8"), "no ninth service named");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn hostile_token_counts_and_bidi_controls_are_not_shown_as_they_are() {
    // Token counts at i64's ends wrapped the trace's sums (here to "-2 in,
    // 0 out"; a debug build panicked), and a right-to-left override in a
    // name turned the rest of its line around on a terminal.
    let span = |id: u64, name: &str, key: &str, count: &str| {
        format!(
            concat!(
                r#"{{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"{:016x}","name":"{}","kind":1,"#,
                r#""startTimeUnixNano":"{}","endTimeUnixNano":"{}","#,
                r#""attributes":[{{"key":"{}","value":{{"intValue":"{}"}}}}]}}"#
            ),
            id,
            name,
            T0,
            T0 + MS,
            key,
            count
        )
    };
    let spans = [
        span(
            1,
            "llm.a",
            "gen_ai.usage.input_tokens",
            "9223372036854775807",
        ),
        span(
            2,
            "llm.b",
            "gen_ai.usage.input_tokens",
            "9223372036854775807",
        ),
        span(
            3,
            "llm.c",
            "gen_ai.usage.input_tokens",
            "9223372036854775807",
        ),
        span(
            4,
            "llm.d",
            "gen_ai.usage.output_tokens",
            "-9223372036854775808",
        ),
        span(5, "llm.e", "gen_ai.usage.output_tokens", "40"),
        span(6, "tool\\u202e.evil", "x", "1"),
    ];
    let line = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
        spans.join(",")
    );
    let root = sink_of("odd", line);
    let out = show(&root, &["svc-1.jsonl"], &[]);
    let printed = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        printed.contains("tokens 9223372036854775807+? in, 40+? out"),
        "{printed}"
    );
    assert!(printed.contains("tool\\u{202e}.evil"), "{printed}");
    assert!(!printed.contains('\u{202e}'), "{printed}");
    let _ = std::fs::remove_dir_all(&root);
}

/// Whether `c` may only reach a terminal or a page escaped: a control
/// other than the line break (and the tab, on the page), a bidi control,
/// a line or paragraph separator. Written out here, not taken from the
/// library, so that the test judges its rule.
fn left_as_it_is(c: char, page: bool) -> bool {
    let kept = c == '\n' || page && c == '\t';
    (c.is_control() && !kept)
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

#[test]
fn every_control_in_any_part_of_a_span_is_shown_escaped_in_every_view() {
    // Text from outside in each part of a span (its name, status message,
    // attribute keys and values, an event's name and attributes, the
    // resource and scope): an erase, an OSC 52 clipboard write, a title, a
    // CR, a line break forging a line, bidi controls, C1 controls, NUL,
    // DEL, and the line and paragraph separators. A line separator went
    // to the terminal as it was (a log reader's line break), and the HTML
    // page held every control raw: `cat page.html` ran the sequences, and
    // an override turned the page's rows around.
    let h = r"A\u001b[2J\u001b]52;c;SGVsbG8=\u0007\u001b]0;t\u0007\rOVER\nspanguard: error: forged\u202e\u2066\u009b\u0085\u0000\u007f\u2028\u2029Z\t";
    let kv = |k: &str, v: &str| format!(r#"{{"key":"{k}","value":{{"stringValue":"{v}"}}}}"#);
    let line = format!(
        concat!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{},{}]}},"#,
            r#""scopeSpans":[{{"scope":{{"name":"{}","version":"{}"}},"spans":[{{"traceId":"0af7651916cd43dd8448eb211c80319c","#,
            r#""spanId":"b7ad6b7169203331","name":"{}","kind":3,"startTimeUnixNano":"{}","endTimeUnixNano":"{}","#,
            r#""attributes":[{},{},{}],"status":{{"code":2,"message":"{}"}},"#,
            r#""events":[{{"timeUnixNano":"{}","name":"{}","attributes":[{},{}]}}]}}]}}]}}]}}"#
        ),
        kv("service.name", h),
        kv(h, h),
        h,
        h,
        h,
        T0,
        T0 + 5 * MS,
        kv(h, h),
        kv("gen_ai.prompt.0.content", h),
        kv("exception.message", h),
        h,
        T0 + MS,
        h,
        kv(h, h),
        kv("exception.type", h),
    );
    let root = sink_of("controls", line);
    for args in [
        &["svc-1.jsonl"][..],
        &["--attributes", "svc-1.jsonl"],
        &["--full", "--attributes", "svc-1.jsonl"],
        &["--span", "b7ad", "svc-1.jsonl"],
    ] {
        let printed = shown(&root, args);
        let raw: Vec<char> = printed
            .chars()
            .filter(|&c| left_as_it_is(c, false))
            .collect();
        assert!(
            raw.is_empty(),
            "{args:?} printed {raw:?} as they are:\n{printed}"
        );
        assert!(
            printed.contains(
                r"spanguard: error: forged\u{202e}\u{2066}\x9b\x85\x00\x7f\u{2028}\u{2029}Z"
            ),
            "{args:?}:\n{printed}"
        );
        assert!(
            !printed.lines().any(|l| l.starts_with("spanguard:")),
            "{args:?}:\n{printed}"
        );
    }
    // Coloured, the only escape sequences are the colours' own.
    let out = show(&root, &["--attributes", "svc-1.jsonl"], &[]);
    let coloured = text(&out.stdout);
    let mut rest = coloured.as_str();
    while let Some(at) = rest.find('\x1b') {
        let sgr = rest[at + 1..]
            .strip_prefix('[')
            .map(|r| r.trim_start_matches(|c: char| c.is_ascii_digit() || c == ';'));
        assert!(
            sgr.is_some_and(|r| r.starts_with('m')),
            "a sequence that is no colour: {:?}",
            &rest[at..]
        );
        rest = &rest[at + 1..];
    }
    let page = page_of(&root, "svc-1.jsonl");
    let raw: Vec<char> = page.chars().filter(|&c| left_as_it_is(c, true)).collect();
    assert!(
        raw.is_empty(),
        "the page holds {} characters as they are: {:?}",
        raw.len(),
        &raw[..raw.len().min(12)]
    );
    assert!(
        page.contains(r"spanguard: error: forged\u{202e}\u{2066}\x9b\x85\x00\x7f\u{2028}\u{2029}Z")
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_count_no_call_said_is_unknown_in_the_traces_sum_not_0() {
    // With only input tokens recorded (every README example does), the
    // trace said `tokens 812 in, 0 out` under a span line that says
    // `812→? tokens`: unknown is not zero. A side that some calls did not
    // say was their sum as if they had said 0. An embedding makes no
    // output: its output it does not say is none, not unknown.
    let span = |id: u64, attrs: &[(&str, &str)]| {
        let attrs: Vec<String> = attrs
            .iter()
            .map(|(k, v)| format!(r#"{{"key":"{k}","value":{v}}}"#))
            .collect();
        format!(
            concat!(
                r#"{{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"{:016x}","name":"llm.{}","kind":3,"#,
                r#""startTimeUnixNano":"{}","endTimeUnixNano":"{}","attributes":[{}]}}"#
            ),
            id,
            id,
            T0,
            T0 + MS,
            attrs.join(",")
        )
    };
    let (input, output) = ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens");
    let n = |v: &str| format!(r#"{{"intValue":"{v}"}}"#);
    let embeddings = r#"{"stringValue":"embeddings"}"#.to_string();
    for (test, spans, fact) in [
        (
            "input-only",
            vec![span(1, &[(input, &n("812"))])],
            "812 in, ? out",
        ),
        (
            "output-partly",
            vec![
                span(1, &[(input, &n("700")), (output, &n("40"))]),
                span(2, &[(input, &n("112"))]),
            ],
            "812 in, 40+? out (1 of 2 calls said no output)",
        ),
        (
            "an-embedding",
            vec![
                span(1, &[(input, &n("700")), (output, &n("40"))]),
                span(
                    2,
                    &[(input, &n("14")), ("gen_ai.operation.name", &embeddings)],
                ),
            ],
            "714 in, 40 out",
        ),
    ] {
        let line = format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
            spans.join(",")
        );
        let root = sink_of(test, line);
        let printed = shown(&root, &["svc-1.jsonl"]);
        assert!(
            printed.contains(&format!("· tokens {fact}\n")),
            "{test}: {printed}"
        );
        assert!(!printed.contains(" 0 out"), "{test}: {printed}");
        let page = page_of(&root, "svc-1.jsonl");
        assert!(
            page.contains(&format!(">{fact} tokens</span>")),
            "{test}: the page says the same"
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}

#[test]
fn the_html_page_shows_a_long_value_in_part() {
    // Every value whole made a 120 MB page of two spans of 5 MB values
    // that took a browser a minute and a half to open (the LLM-sized data
    // audit); a value past 256 K characters shows its head and says how
    // much more the file holds.
    let prompt = "tell me more ".repeat(100_000);
    let line = llm_chat_line(&format!(
        r#""attributes":[{{"key":"gen_ai.prompt","value":{{"stringValue":"{}"}}}}]"#,
        prompt
    ));
    let root = sink_of("html", line);
    let page = page_of(&root, "svc-1.jsonl");
    assert!(page.contains(&prompt[..1000]));
    let more = prompt.len() - 256 * 1024;
    assert!(
        page.contains(&format!(
            "{more} more characters: <code>spanguard show --span b7ad6b7169203331</code> \
             shows the value whole"
        )),
        "the note"
    );
    assert!(page.len() < 600_000, "a page of {} bytes", page.len());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn openinference_spans_show_their_model_and_tokens() {
    // OpenInference (which the README's bridge section names) records the
    // model and token counts as llm.model_name and llm.token_count.*, not
    // gen_ai.*: its LLM spans showed neither, and the trace no token sum.
    let span = |id: &str, parent: &str, name: &str, attributes: &str| {
        format!(
            concat!(
                r#"{{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"{}",{}"name":"{}","kind":3,"#,
                r#""startTimeUnixNano":"{}","endTimeUnixNano":"{}","attributes":[{}]}}"#
            ),
            id,
            parent,
            name,
            T0,
            T0 + 5 * MS,
            attributes
        )
    };
    let s = |k: &str, v: &str| format!(r#"{{"key":"{k}","value":{{"stringValue":"{v}"}}}}"#);
    let i = |k: &str, v: i64| format!(r#"{{"key":"{k}","value":{{"intValue":"{v}"}}}}"#);
    let chat = span(
        "b7ad6b7169203332",
        r#""parentSpanId":"b7ad6b7169203331","#,
        "ChatCompletion",
        &[
            s("openinference.span.kind", "LLM"),
            s("llm.model_name", "gpt-4o"),
            i("llm.token_count.prompt", 37503),
            i("llm.token_count.completion", 30000),
            i("llm.token_count.total", 67503),
        ]
        .join(","),
    );
    let root_span = span("b7ad6b7169203331", "", "agent.session", "");
    let line = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{}]}},"scopeSpans":[{{"scope":{{"name":"openinference.instrumentation.openai"}},"spans":[{},{}]}}]}}]}}"#,
        s("service.name", "svc"),
        root_span,
        chat
    );
    let root = sink_of("openinference", line);
    let out = show(&root, &["svc-1.jsonl"], &[]);
    let printed = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(printed.contains("tokens 37503 in, 30000 out"), "{printed}");
    let chat_line = printed
        .lines()
        .find(|l| l.contains("ChatCompletion"))
        .expect("the LLM span's line");
    assert!(chat_line.contains("gpt-4o 37503→30000 tokens"), "{printed}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn values_cut_to_the_width_are_said_and_full_shows_them_whole() {
    // An LLM span in the terminal: `--attributes` cut the prompt, the
    // completion event and the exception's message to the screen's width
    // with nothing but an ellipsis, and no option showed them whole (the
    // HTML page stops at 256 K characters; a crash dump is not text).
    let prompt = format!("{}END-OF-PROMPT", "Résumé the 日本語 text, ".repeat(200));
    let completion = format!("{}END-OF-COMPLETION", "😀 sure ".repeat(300));
    let message = format!("{}END-OF-MESSAGE", "Traceback line\\n".repeat(100));
    let line = llm_chat_line(&format!(
        concat!(
            r#""attributes":[{{"key":"gen_ai.prompt.0.content","value":{{"stringValue":"{}"}}}}],"#,
            r#""events":[{{"name":"gen_ai.choice","timeUnixNano":"{}","#,
            r#""attributes":[{{"key":"message","value":{{"stringValue":"{}"}}}}]}}],"#,
            r#""status":{{"code":2,"message":"{}"}}"#
        ),
        prompt,
        T0 + 4 * MS,
        completion,
        message,
    ));
    let root = sink_of("full", line);

    let cut = show(&root, &["--attributes", "svc-1.jsonl"], &[]);
    assert!(cut.status.success(), "{}", text(&cut.stderr));
    let printed = text(&cut.stdout);
    assert!(
        printed.contains("gen_ai.prompt.0.content = Résumé"),
        "{printed}"
    );
    for end in ["END-OF-PROMPT", "END-OF-COMPLETION", "END-OF-MESSAGE"] {
        assert!(!printed.contains(end), "{end} on a line of the width");
    }
    assert!(
        printed.contains("3 values cut to the width (…): --full shows them whole"),
        "{printed}"
    );

    let full = show(&root, &["--full", "svc-1.jsonl"], &[]);
    assert!(full.status.success(), "{}", text(&full.stderr));
    let printed = text(&full.stdout);
    // Whole, an indexed prompt reads as a chat (no role recorded: `?`).
    assert!(
        printed.contains(&format!(
            "gen_ai.prompt.N.* = 1 message (by index):\n      ┊ [?] {prompt}\n"
        )),
        "the prompt whole: {printed}"
    );
    assert!(
        printed.contains(&format!("message={completion}\n")),
        "the event's completion whole"
    );
    // The message whole, its lines as lines (a traceback read as one
    // line of `\n`s), each after the `┊` gutter.
    let lines: Vec<&str> = printed
        .lines()
        .skip_while(|l| !l.contains("status message = Traceback line"))
        .collect();
    assert!(
        lines[0].ends_with("status message = Traceback line"),
        "{printed}"
    );
    assert_eq!(
        lines[1..]
            .iter()
            .take_while(|l| l.contains("┊ Traceback line"))
            .count(),
        99,
        "{printed}"
    );
    assert!(lines[100].ends_with("┊ END-OF-MESSAGE"), "{printed}");
    assert!(!printed.contains("cut to the width"), "{printed}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn the_html_page_shows_a_long_status_message_in_the_span_details() {
    // An exception's traceback as the status message: the page showed its
    // first 160 characters and an ellipsis, and nowhere the rest.
    let message = format!("{}END-OF-TRACEBACK", "File agent.py, line 12 ".repeat(100));
    let line = llm_chat_line(&format!(r#""status":{{"code":2,"message":"{}"}}"#, message));
    let root = sink_of("html-status", line);
    let page = page_of(&root, "svc-1.jsonl");
    assert!(
        page.contains(&format!("<th>status message</th><td>{message}</td>")),
        "the whole message in the details"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_run_of_events_of_one_name_is_one_line_and_full_shows_each() {
    // OpenLLMetry records a streamed completion as one event a chunk: a
    // 300-chunk stream printed 300 alike lines under its span, and the
    // slow call and the error after it were screens away.
    let event =
        |name: &str, ms: u64| format!(r#"{{"name":"{name}","timeUnixNano":"{}"}}"#, T0 + ms * MS);
    let mut events: Vec<String> = (0..300)
        .map(|k| event("gen_ai.content.completion.chunk", 10 + k))
        .collect();
    // Three of one name stay three lines: only a longer run is folded.
    events.extend((0..3).map(|k| event("retry", 400 + k)));
    let line = format!(
        concat!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc"}}}}]}},"#,
            r#""scopeSpans":[{{"scope":{{"name":"s"}},"spans":[{{"traceId":"0af7651916cd43dd8448eb211c80319c","#,
            r#""spanId":"b7ad6b7169203331","name":"openai.chat","kind":3,"startTimeUnixNano":"{}","#,
            r#""endTimeUnixNano":"{}","events":[{}]}},"#,
            r#"{{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203332","name":"after.stream","#,
            r#""kind":3,"startTimeUnixNano":"{}","endTimeUnixNano":"{}","status":{{"code":2,"message":"boom"}}}}]}}]}}]}}"#
        ),
        T0,
        T0 + 500 * MS,
        events.join(","),
        T0 + 500 * MS,
        T0 + 600 * MS
    );
    let root = sink_of("event-runs", line);

    let out = show(&root, &["svc-1.jsonl"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let chunk_lines: Vec<&str> = printed
        .lines()
        .filter(|l| l.contains("gen_ai.content.completion.chunk"))
        .collect();
    assert_eq!(chunk_lines.len(), 1, "one line for the run:\n{printed}");
    assert!(
        chunk_lines[0].contains("• gen_ai.content.completion.chunk ×300 +10.0 ms … +309 ms"),
        "{printed}"
    );
    assert_eq!(
        printed.lines().filter(|l| l.contains("• retry")).count(),
        3,
        "{printed}"
    );
    assert!(printed.contains("after.stream"), "{printed}");
    assert!(
        printed.contains("300 events drawn as runs of one name (• name ×N): --full shows each"),
        "{printed}"
    );

    let full = show(&root, &["--full", "svc-1.jsonl"], &[]);
    assert!(full.status.success(), "{}", text(&full.stderr));
    let printed = text(&full.stdout);
    assert_eq!(
        printed
            .lines()
            .filter(|l| l.contains("• gen_ai.content.completion.chunk +"))
            .count(),
        300,
        "{printed}"
    );
    assert!(!printed.contains("×300"), "{printed}");
    assert!(!printed.contains("runs of one name"), "{printed}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn with_an_endpoint_set_an_empty_sink_says_where_the_spans_went() {
    // An agent pointed at a collector (OTEL_EXPORTER_OTLP_ENDPOINT) writes
    // nothing to the local sink: `spanguard show` said "no spans yet" or
    // "no spans found" and nothing of why.
    let root = scratch("endpoint");
    let state = root.join("state");
    let run = |endpoint: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_spanguard"));
        c.current_dir(&root)
            .arg("show")
            .env("XDG_STATE_HOME", &state);
        for k in [
            "SPANGUARD_SINK_DIR",
            "SPANGUARD_SPOOL_DIR",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ] {
            c.env_remove(k);
        }
        if let Some(url) = endpoint {
            c.env("OTEL_EXPORTER_OTLP_ENDPOINT", url);
        }
        c.output().expect("run spanguard")
    };
    let said = "an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or \
                OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): spans go there";
    // No sink directory yet, then an empty one.
    for made in [false, true] {
        if made {
            std::fs::create_dir_all(state.join("spanguard/spans")).expect("sink dir");
        }
        let out = run(Some("http://user:secret@127.0.0.1:4318"));
        assert_eq!(out.status.code(), Some(1));
        let err = text(&out.stderr);
        assert!(err.contains(said), "{err}");
        assert!(!err.contains("secret"), "the URL is not printed: {err}");
        let out = run(None);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            !text(&out.stderr).contains("OTLP endpoint"),
            "{}",
            text(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn an_empty_default_sink_says_where_it_looked_and_what_writes_there() {
    // A newcomer ran `make demo` (spans in build/demo-spans) then README's
    // `spanguard show`: it said "no spans found", not where it had
    // looked nor how to read the demo's directory.
    let root = std::env::temp_dir().join(format!("sg-cli-looked-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (sink, spool) = (root.join("no-such-sink"), root.join("spool"));
    std::fs::create_dir_all(&spool).expect("spool dir");
    let mut c = Command::new(env!("CARGO_BIN_EXE_spanguard"));
    c.current_dir(&root)
        .arg("show")
        .env("SPANGUARD_SINK_DIR", &sink)
        .env("SPANGUARD_SPOOL_DIR", &spool);
    for k in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ] {
        c.env_remove(k);
    }
    let out = c.output().expect("run spanguard");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "spanguard: no spans found in the local sink ({}) nor the spool ({})",
            sink.display(),
            spool.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("to read spans written elsewhere: spanguard show DIR"),
        "{err}"
    );
    // A directory named on the command line is named back, alone.
    let empty = root.join("empty");
    std::fs::create_dir_all(&empty).expect("dir");
    let out = show(&root, &["empty"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("spanguard: no spans found in empty\n"),
        "{err}"
    );
    assert!(!err.contains("spanguard show DIR"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_span_id_that_names_no_span_lists_the_ids_to_pick_from() {
    // README's `spanguard show --span b7ad6b71` copied as written, on the
    // demo's spans: "no trace matches", and the waterfall shows no span
    // id to try instead. The spans are listed with their ids, the LLM
    // calls first, at most 20.
    let span = |id: String, name: &str, attrs: &str| {
        let parent = if name == "agent.session" {
            ""
        } else {
            r#""parentSpanId":"a0a0a0a0a0a0a0a0","#
        };
        format!(
            concat!(
                r#"{{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"{}",{}"#,
                r#""name":"{}","kind":1,"startTimeUnixNano":"{}","endTimeUnixNano":"{}","#,
                r#""attributes":[{}]}}"#
            ),
            id,
            parent,
            name,
            T0,
            T0 + MS,
            attrs
        )
    };
    let mut spans = vec![span("a0a0a0a0a0a0a0a0".into(), "agent.session", "")];
    for i in 0..23 {
        spans.push(span(format!("{:016x}", i + 1), "tool.call", ""));
    }
    spans.push(span(
        "c2c2c2c2c2c2c2c2".into(),
        "llm.chat",
        r#"{"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}}"#,
    ));
    let line = format!(
        concat!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc"}}}}]}},"#,
            r#""scopeSpans":[{{"scope":{{"name":"s"}},"spans":[{}]}}]}}]}}"#
        ),
        spans.join(",")
    );
    let root = sink_of("span-list", line);
    let out = show(&root, &["--span", "b7ad6b71", "svc-1.jsonl"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines[0],
        "spanguard: no span id starts with b7ad6b71; the spans here (--span takes the start of an id):",
        "{err}"
    );
    assert_eq!(lines[1], "  c2c2c2c2c2c2c2c2  llm.chat  gpt-4o", "{err}");
    assert_eq!(lines[2], "  a0a0a0a0a0a0a0a0  agent.session", "{err}");
    assert_eq!(lines.len(), 1 + 20 + 1, "{err}");
    assert_eq!(
        lines[21], "  … and 5 more (--name TEXT or --trace ID lists fewer)",
        "{err}"
    );
    // With another option that keeps nothing, no list.
    let out = show(
        &root,
        &["--span", "b7ad", "--name", "nothing", "svc-1.jsonl"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "spanguard: no span id starts with b7ad, and no trace matches the other options\n"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_slip_in_a_command_or_option_names_the_one_meant() {
    // `spanguard chek`, `show --erors`, `show -last 1` ("-last: No such
    // file or directory"): the message named the slip and nothing else.
    let root = scratch("slip");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_spanguard"))
            .current_dir(&root)
            .args(args)
            .output()
            .expect("run spanguard");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        text(&out.stderr)
    };
    assert_eq!(
        run(&["chek"]),
        "spanguard: unknown command \"chek\", did you mean check? (spanguard --help lists them)\n"
    );
    assert_eq!(
        run(&["show", "--erors"]),
        "spanguard show: unknown option --erors, did you mean --errors? (spanguard show --help)\n"
    );
    assert_eq!(
        run(&["show", "-last", "1"]),
        "spanguard show: unknown option -last: an option takes two dashes, --last (spanguard \
         show --help)\n"
    );
    assert!(
        run(&["check", "--endpont", "http://127.0.0.1:1"]).contains("did you mean --endpoint?")
    );
    assert!(run(&["tail", "--from-strat"]).contains("did you mean --from-start?"));
    // The word another tool uses for it (`view`, `ls`, `send`...): no
    // letters near any of ours, it was told only that it is unknown.
    for (word, meant) in [
        ("view", "show"),
        ("ls", "show"),
        ("follow", "tail"),
        ("send", "replay"),
        ("status", "spool"),
        ("doctor", "check"),
        ("explain", "why"),
    ] {
        assert_eq!(
            run(&[word]),
            format!(
                "spanguard: unknown command \"{word}\", did you mean {meant}? (spanguard --help \
                 lists them)\n"
            ),
            "{word}"
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn errors_finds_a_trace_whose_span_the_program_never_ended() {
    // The OpenAI instrumentations for Node leave the span of a call that
    // got a 500 open; spanguard ends it at shutdown, marked, with no error
    // status: --errors did not find that trace, the one a user looks for.
    let span = |trace: &str, id: &str, name: &str, unended: bool| {
        let attributes = if unended {
            r#","attributes":[{"key":"spanguard.unended","value":{"boolValue":true}}]"#
        } else {
            ""
        };
        format!(
            r#"{{"traceId":"{trace}","spanId":"{id}","name":"{name}","kind":3,"startTimeUnixNano":"{}","endTimeUnixNano":"{}"{attributes}}}"#,
            T0,
            T0 + 100 * MS
        )
    };
    let line = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc"}}}}]}},"scopeSpans":[{{"scope":{{"name":"s"}},"spans":[{},{}]}}]}}]}}"#,
        span(
            "0af7651916cd43dd8448eb211c80319c",
            "b7ad6b7169203331",
            "chat ok",
            false
        ),
        span(
            "1bf7651916cd43dd8448eb211c80319c",
            "c7ad6b7169203331",
            "chat broken",
            true
        ),
    );
    let root = sink_of("unended-errors", line);
    let out = show(&root, &["svc-1.jsonl", "--errors", "--color", "never"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let traces: Vec<&str> = printed
        .lines()
        .filter_map(|l| l.strip_prefix("trace "))
        .map(|l| &l[..4])
        .collect();
    assert_eq!(traces, ["1bf7"], "{printed}");
    assert!(
        printed.contains("1 never ended (ended at shutdown)"),
        "{printed}"
    );
    // Without --errors both are there.
    let all = text(&show(&root, &["svc-1.jsonl", "--color", "never"], &[]).stdout);
    assert_eq!(all.lines().filter(|l| l.starts_with("trace ")).count(), 2);
    let _ = std::fs::remove_dir_all(&root);
}

/// Runs `spanguard` with `args` in `root`, the defaults' environment (no
/// SPANGUARD_* or OTEL_* setting), and returns what it printed with its
/// peak resident memory in bytes: its own (wait4), not the largest of
/// every child this test binary ran.
// Reaped by wait4 below, for its resource usage, not by `Child::wait`.
#[allow(clippy::zombie_processes)]
fn run_measured(root: &Path, args: &[&str]) -> (Output, u64) {
    use std::io::Read;
    let mut c = Command::new(env!("CARGO_BIN_EXE_spanguard"));
    c.current_dir(root).args(args).env("COLUMNS", "100");
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("SPANGUARD_") || k.starts_with("OTEL_") {
            c.env_remove(k);
        }
    }
    let mut child = c
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run spanguard");
    let mut err_pipe = child.stderr.take().expect("stderr");
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        err_pipe.read_to_end(&mut b).map(|_| b)
    });
    let mut stdout = Vec::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_end(&mut stdout)
        .expect("read stdout");
    let stderr = err_reader.join().expect("reader").expect("read stderr");
    let mut status = 0;
    // SAFETY: plain data the kernel fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, reaped here (not by `child`).
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4");
    use std::os::unix::process::ExitStatusExt;
    let out = Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout,
        stderr,
    };
    (out, usage.ru_maxrss as u64 * 1024)
}

#[test]
fn a_dump_larger_than_any_tracer_writes_is_named_and_not_read() {
    // A file named like a crash dump (another user's, a crash in the
    // middle of something else), 1.5 GiB sparse, whose records each claim
    // 64 MiB of chunks that are holes: `show` and `spool` copied each
    // record's chunks out and held them all, 64 MiB a record, where no
    // tracer with these settings writes a dump of that size (its slots and
    // its 256 MiB pool). Now it is named and not read; the rest is shown.
    let root = fixtures("huge-dump");
    let dir = root.join("fixtures");
    let chunks: u32 = 64 << 20 >> 12;
    let path = dir.join("01796029230000000000-0000009999-1.sgdump");
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::create(&path).expect("create");
        let header = DumpHeader::new(*b"SGDUMP03", 0, "huge", &[]);
        file.write_all_at(header.as_bytes(), 0).expect("header");
        let record_bytes = std::mem::size_of::<SpanRecord>() as u64;
        let mut at = header.as_bytes().len() as u64;
        for i in 0..6u8 {
            let mut r = record(0xf0, 0x60 + i, 0, "hole", 1, 2);
            r.header = AtomicU64::new(7 << 32 | STATE_ENDED as u64);
            r.rest_mut().chunk_count = chunks;
            // SAFETY: a record is plain data; its bytes are what the crash
            // handler writes.
            let raw = unsafe {
                std::slice::from_raw_parts(
                    (&*r as *const SpanRecord).cast::<u8>(),
                    record_bytes as usize,
                )
            };
            file.write_all_at(raw, at).expect("record");
            at += record_bytes + chunks as u64 * 4096;
        }
        file.set_len(3 << 29).expect("sparse");
    }
    let bound = 160 << 20;

    let (out, rss) = run_measured(&root, &["show", "--color", "never", "fixtures"]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "0000009999-1.sgdump: 1610612736 bytes, more than a crash dump or flight file"
        ),
        "{stderr}"
    );
    assert!(rss < bound, "show held {rss} bytes");
    // The rest is read: the other dump's spans are there.
    assert!(
        text(&out.stdout).contains("job.reindex"),
        "{}",
        text(&out.stdout)
    );

    let (out, rss) = run_measured(&root, &["spool", "fixtures"]);
    let listed = text(&out.stdout);
    assert!(
        listed.contains("unreadable: 1610612736 bytes, more than a crash dump"),
        "{listed}"
    );
    assert!(rss < bound, "spool held {rss} bytes");
    assert!(path.exists());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn complex_values_show_an_empty_value_as_null_and_bytes_in_hex() {
    // A tool call's arguments with an empty member (Python's None) and a
    // bytes value, as a complex value: the empty one printed as nothing
    // (`ok: `, `flag = `), which reads as an empty string or a value lost.
    // Now `null`, as JSON writes it; bytes in hex after `0x`.
    let line = format!(
        concat!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc"}}}}]}},"#,
            r#""scopeSpans":[{{"scope":{{"name":"s"}},"spans":[{{"traceId":"0af7651916cd43dd8448eb211c80319c","#,
            r#""spanId":"b7ad6b7169203331","name":"tool.call","kind":1,"startTimeUnixNano":"{}","endTimeUnixNano":"{}","#,
            r#""attributes":[{{"key":"args","value":{{"kvlistValue":{{"values":["#,
            r#"{{"key":"ok","value":{{}}}},{{"key":"list","value":{{"arrayValue":{{"values":[{{"intValue":"1"}},{{}}]}}}}}},"#,
            r#"{{"key":"blob","value":{{"bytesValue":"AAEC/w=="}}}}]}}}}}},"#,
            r#"{{"key":"flag","value":{{}}}},{{"key":"raw","value":{{"bytesValue":"3q2+7w=="}}}}]}}]}}]}}]}}"#
        ),
        T0,
        T0 + 5 * MS,
    );
    let root = sink_of("anyvalue-show", line);
    let printed = shown(&root, &["--full", "svc-1.jsonl"]);
    assert!(
        printed.contains("args = {ok: null, list: [1, null], blob: 0x000102ff}"),
        "{printed}"
    );
    assert!(printed.contains("flag = null"), "{printed}");
    assert!(printed.contains("raw = 0xdeadbeef"), "{printed}");
    std::fs::remove_dir_all(&root).ok();
}

/// One sink line of traces `(first hex digit of the id, start s, end s,
/// error)`, one span each, times from T0.
fn sink_line(traces: &[(u8, u64, u64, bool)]) -> String {
    let spans: Vec<String> = traces
        .iter()
        .enumerate()
        .map(|(i, &(id, start_s, end_s, error))| {
            let status = if error {
                r#","status":{"code":2,"message":"boom"}"#
            } else {
                ""
            };
            format!(
                r#"{{"traceId":"{id:02x}{:030x}","spanId":"{:016x}","name":"agent.run","kind":2,"startTimeUnixNano":"{}","endTimeUnixNano":"{}"{status}}}"#,
                i + 1,
                i + 1,
                T0 + start_s * 1000 * MS,
                T0 + end_s * 1000 * MS
            )
        })
        .collect();
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc"}}}}]}},"scopeSpans":[{{"scope":{{"name":"s"}},"spans":[{}]}}]}}]}}"#,
        spans.join(",")
    )
}

/// The first two hex digits of each trace `show` drew, in order.
fn drawn(out: &Output) -> Vec<String> {
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("trace "))
        .map(|l| l[..2].to_string())
        .collect()
}

#[test]
fn last_draws_the_traces_that_ended_last_of_those_matched() {
    // A long agent session that started first and ended last, and three
    // short runs after it, two of them failed: "what just happened" is
    // the session and the last run, by their ends, not their starts.
    let root = sink_of(
        "last-n",
        sink_line(&[
            (0xaa, 0, 100, false),
            (0xbb, 10, 20, true),
            (0xcc, 30, 40, false),
            (0xdd, 50, 60, true),
        ]),
    );
    let run = |args: &[&str]| {
        let mut all = vec!["svc-1.jsonl", "--color", "never"];
        all.extend_from_slice(args);
        show(&root, &all, &[])
    };
    let two = run(&["--last", "2"]);
    assert!(two.status.success(), "{}", text(&two.stderr));
    // Drawn in the usual order (by start), the newest at the bottom.
    assert_eq!(drawn(&two), ["aa", "dd"]);
    assert!(
        text(&two.stdout).contains("2 of 4 traces (the 2 that ended last of 4 that matched)"),
        "{}",
        text(&two.stdout)
    );
    assert_eq!(drawn(&run(&["--last=1"])), ["aa"]);
    // With the other filters: the last N of what they kept.
    assert_eq!(drawn(&run(&["--errors", "--last", "1"])), ["dd"]);
    assert_eq!(drawn(&run(&["--last", "1", "--errors"])), ["dd"]);
    assert_eq!(drawn(&run(&["--errors", "--last", "5"])), ["bb", "dd"]);
    let until = "2026-11-30T09:00:35Z";
    assert_eq!(
        drawn(&run(&["--until", until, "--last", "2"])),
        ["aa", "cc"]
    );
    assert_eq!(
        drawn(&run(&["--since", "2026-11-30T09:00:30Z", "--last", "2"])),
        ["aa", "dd"]
    );
    // More than there are: all of them, and no note.
    let all = run(&["--last", "10"]);
    assert_eq!(drawn(&all), ["aa", "bb", "cc", "dd"]);
    assert!(!text(&all.stdout).contains("ended last"));
    for bad in ["0", "-1", "two", ""] {
        let out = run(&["--last", bad]);
        assert_eq!(out.status.code(), Some(2), "--last {bad:?}");
        assert!(
            text(&out.stderr).contains(&format!("--last {bad}: not a number of traces")),
            "{}",
            text(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn many_traces_end_with_how_to_draw_fewer() {
    // Hundreds of waterfalls scroll the newest out of sight: all are still
    // drawn, and the last line says how to draw fewer.
    let many: Vec<(u8, u64, u64, bool)> = (0..21)
        .map(|i| (i, i as u64, i as u64 + 1, false))
        .collect();
    let root = sink_of("many-traces", sink_line(&many));
    let out = show(&root, &["svc-1.jsonl", "--color", "never"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(drawn(&out).len(), 21);
    let printed = text(&out.stdout);
    assert_eq!(
        printed.lines().last(),
        Some(
            "21 traces drawn: --last 5 draws the 5 that ended last, --since 15m those of the last 15 minutes"
        ),
        "{printed}"
    );
    // Twenty, or fewer asked for: no such line.
    let twenty = sink_of("twenty-traces", sink_line(&many[..20]));
    let out = show(&twenty, &["svc-1.jsonl", "--color", "never"], &[]);
    assert!(!text(&out.stdout).contains("traces drawn"));
    let out = show(
        &root,
        &["svc-1.jsonl", "--color", "never", "--last", "21"],
        &[],
    );
    assert_eq!(drawn(&out).len(), 21);
    assert!(!text(&out.stdout).contains("traces drawn"));
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&twenty);
}

#[test]
fn a_count_of_one_is_said_in_the_singular() {
    // "1 of 1 traces, 1 spans" read as a template no one finished, on the
    // line a person reads to learn what was found.
    let one = sink_line(&[(7, 1, 2, false)]);
    let root = sink_of("singular", one.clone());
    let out = show(&root, &["svc-1.jsonl", "--color", "never"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert_eq!(
        printed.lines().last(),
        Some("1 of 1 trace, 1 span, from 1 sink file"),
        "{printed}"
    );
    // The same span in a second file: found twice, shown once.
    std::fs::write(root.join("svc-2.jsonl"), one + "\n").expect("write");
    let out = show(
        &root,
        &["svc-1.jsonl", "svc-2.jsonl", "--color", "never"],
        &[],
    );
    let printed = text(&out.stdout);
    assert_eq!(
        printed.lines().last(),
        Some(
            "1 of 1 trace, 1 span, from 2 sink files; 1 span found twice (delivered at \
             least once) shown once"
        ),
        "{printed}"
    );
    // The page: its title, the trace's head, a value one character over.
    let long = "x".repeat(256 * 1024 + 1);
    let line = llm_chat_line(&format!(
        r#""attributes":[{{"key":"gen_ai.prompt","value":{{"stringValue":"{}"}}}}]"#,
        long
    ));
    let page_root = sink_of("singular-html", line);
    let out = show(&page_root, &["--html", "page.html", "svc-1.jsonl"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "wrote page.html: 1 of 1 trace, 1 span, from 1 sink file\n"
    );
    let page = std::fs::read_to_string(page_root.join("page.html")).expect("page");
    assert!(
        page.contains("<title>spanguard · 1 trace</title>"),
        "the title"
    );
    assert!(
        page.contains("<span class=\"muted\">1 span</span>"),
        "the head"
    );
    assert!(
        page.contains("… 1 more character: <code>spanguard show --span b7ad6b7169203331</code>"),
        "the note"
    );
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&page_root);
}

#[test]
fn span_shows_one_calls_prompt_whole_and_a_cut_value_names_its_span() {
    // An agent's trace of LLM calls with 20 KB prompts: `--attributes`
    // cut each prompt with an ellipsis, and the one way to read a prompt
    // whole, `--full`, printed every call's (30 prompts, a megabyte of
    // terminal, to find one). `--span ID` draws one span whole, and a
    // span with a value cut says its ID under it.
    let call = |id: &str, parent: &str, tag: &str, ms: u64| {
        format!(
            concat!(
                r#"{{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"{}","parentSpanId":"{}","#,
                r#""name":"chat gpt-4o","kind":3,"startTimeUnixNano":"{}","endTimeUnixNano":"{}","#,
                r#""attributes":[{{"key":"gen_ai.prompt","value":{{"stringValue":"{}"}}}}]}}"#
            ),
            id,
            parent,
            T0 + ms * MS,
            T0 + (ms + 4) * MS,
            format!(
                "{tag} {}END-OF-{tag}",
                "plan the trip to Lisbon ".repeat(800)
            ),
        )
    };
    let line = format!(
        concat!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc"}}}}]}},"#,
            r#""scopeSpans":[{{"scope":{{"name":"s"}},"spans":[{},{},{}]}}]}}]}}"#
        ),
        r#"{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"a0a0a0a0a0a0a0a0","name":"invoke_agent","kind":1,"startTimeUnixNano":"1796029200000000000","endTimeUnixNano":"1796029200020000000"}"#,
        call("c1c1c1c1c1c1c1c1", "a0a0a0a0a0a0a0a0", "FIRST", 1),
        call("c2c2c2c2c2c2c2c2", "a0a0a0a0a0a0a0a0", "SECOND", 8),
    );
    let root = sink_of("span-pick", line);

    let cut = show(&root, &["--attributes", "svc-1.jsonl"], &[]);
    assert!(cut.status.success(), "{}", text(&cut.stderr));
    let printed = text(&cut.stdout);
    // Each call's ID under its cut prompt, and none under the root.
    let hints: Vec<&str> = printed
        .lines()
        .filter(|l| l.contains("(cut: spanguard show --span "))
        .collect();
    assert_eq!(hints.len(), 2, "{printed}");
    assert!(
        hints[0].ends_with("(cut: spanguard show --span c1c1c1c1c1c1c1c1 shows this span whole)"),
        "{printed}"
    );
    assert!(hints[1].contains("--span c2c2c2c2c2c2c2c2 "), "{printed}");
    assert!(
        printed.contains(
            "2 values cut to the width (…): --full shows them whole, --span ID one span's (its \
             ID is under it)"
        ),
        "{printed}"
    );

    // A prefix picks the second call: its prompt whole, the first's not
    // drawn at all (no --attributes), the trace's tree around them.
    let one = show(&root, &["--span", "C2C2", "svc-1.jsonl"], &[]);
    assert!(one.status.success(), "{}", text(&one.stderr));
    let printed = text(&one.stdout);
    assert!(
        printed.contains("END-OF-SECOND\n"),
        "the picked prompt whole"
    );
    assert!(
        !printed.contains("FIRST"),
        "another span's prompt: {printed}"
    );
    assert!(printed.contains("invoke_agent"), "{printed}");
    assert!(!printed.contains("cut"), "{printed}");
    // With --attributes, the others are cut as before.
    let both = show(
        &root,
        &["--span", "c2c2", "--attributes", "svc-1.jsonl"],
        &[],
    );
    let printed = text(&both.stdout);
    assert!(printed.contains("END-OF-SECOND\n") && !printed.contains("END-OF-FIRST"));
    assert!(printed.contains("1 value cut to the width"), "{printed}");

    // No span of that id: nothing matches; not hex: a usage error.
    let none = show(&root, &["--span", "dddd", "svc-1.jsonl"], &[]);
    assert_eq!(none.status.code(), Some(1), "{}", text(&none.stdout));
    let bad = show(&root, &["--span", "c2c2-", "svc-1.jsonl"], &[]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("--span c2c2-: not a span id (1 to 16 hex digits)"),
        "{}",
        text(&bad.stderr)
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_value_shown_whole_keeps_its_lines_and_escapes_the_rest() {
    // `--full` and `--span` printed a Python traceback in an exception
    // event, or a prompt's paragraphs, as one line of `\n`s: now each of
    // its lines is a line under the span, after a `┊` gutter. Other
    // control characters stay escaped (an escape sequence in a value
    // must not reach the terminal), and a cut view stays one line.
    let line = llm_chat_line(concat!(
        r#""attributes":[{"key":"gen_ai.prompt","value":{"stringValue":"You are a travel agent.\n\nFind a flight.\u001b[2J"}}],"#,
        r#""events":[{"name":"exception","timeUnixNano":"1796029200001000000","attributes":["#,
        r#"{"key":"exception.stacktrace","value":{"stringValue":"Traceback (most recent call last):\n  File \"agent.py\", line 88\nhttpx.ReadTimeout: timed out"}}]}],"#,
        r#""status":{"code":2,"message":"timed out"}"#
    ));
    let root = sink_of("whole-lines", line);
    for args in [
        &["--full", "svc-1.jsonl"][..],
        &["--span", "b7ad", "svc-1.jsonl"][..],
    ] {
        let printed = shown(&root, args);
        let lines: Vec<&str> = printed.lines().collect();
        let at = |start: &str| {
            lines
                .iter()
                .position(|l| l.contains(start))
                .unwrap_or_else(|| panic!("{start} in {printed}"))
        };
        let e = at("exception.stacktrace=Traceback (most recent call last):");
        assert!(lines[e].ends_with("(most recent call last):"), "{printed}");
        assert!(
            lines[e + 1].ends_with("┊   File \"agent.py\", line 88"),
            "{printed}"
        );
        assert!(
            lines[e + 2].ends_with("┊ httpx.ReadTimeout: timed out"),
            "{printed}"
        );
        let p = at("gen_ai.prompt = You are a travel agent.");
        assert!(
            lines[p].ends_with("gen_ai.prompt = You are a travel agent."),
            "{printed}"
        );
        assert!(lines[p + 1].ends_with("┊ "), "the blank line: {printed}");
        assert!(
            lines[p + 2].ends_with("┊ Find a flight.\\x1b[2J"),
            "{printed}"
        );
        assert!(!printed.contains('\x1b'), "an escape reached the terminal");
    }
    // Cut to the width, a value is one line, its newlines as `\n`.
    let cut = show(
        &root,
        &["--attributes", "svc-1.jsonl"],
        &[("NO_COLOR", "1")],
    );
    let printed = text(&cut.stdout);
    assert!(
        printed.contains("gen_ai.prompt = You are a travel agent.\\n\\nFind a flight."),
        "{printed}"
    );
    assert!(!printed.contains('┊'), "{printed}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn genai_messages_shown_whole_read_by_role_and_part() {
    // The GenAI conventions' gen_ai.input.messages / output.messages: a
    // prompt as a JSON array of messages. Shown whole (--span, --full) it
    // was one line of JSON, 20 KB of it with the prompt's paragraphs as
    // `\n`: now each message's role, each text part's lines as lines. A
    // tool call (its `arguments` an object, or the JSON string the model
    // wrote; Anthropic's `tool_use` block) is drawn as a call,
    // `name(key=value, …)`, on a line of its own, a tool_call_response (or
    // Anthropic's `tool_result`) as the result of the call of its id: each
    // was the part's JSON. Arguments cut by a length limit (not JSON) are
    // shown as they are. Not such an array: shown as it is.
    let input = concat!(
        r#"[{"role":"system","parts":[{"type":"text","content":"Be brief."}]},"#,
        r#"{"role":"user","parts":[{"type":"text","content":"Find a flight.\nTo Lisbon."}]},"#,
        r#"{"role":"assistant","parts":[{"type":"text","content":"Checking."},"#,
        r#"{"type":"tool_call","id":"c0","name":"calendar","arguments":"{\"day\": \"tue\", \"flex\": [1,2]}"}]},"#,
        r#"{"role":"tool","parts":[{"type":"tool_call_response","id":"c0","response":[{"type":"text","text":"free"}]}]},"#,
        r#"{"role":"tool","parts":[{"type":"tool_call_response","id":"zz","response":{"ok":true}}]},"#,
        r#"{"role":"assistant","parts":[{"type":"tool_use","id":"t1","name":"search","input":{"q":"x"}},"#,
        r#"{"type":"tool_call","name":"cut","arguments":"{\"to\": \"LI"}]},"#,
        r#"{"role":"user","parts":[{"type":"tool_result","tool_use_id":"t1","content":"3 hits"}]}]"#
    );
    let output = r#"[{"role":"assistant","parts":[{"type":"tool_call","id":"c1","name":"flight_search","arguments":{"to":"LIS"}}],"finish_reason":"tool_call"}]"#;
    let root = sink_of(
        "chat-messages",
        llm_span_of(&[
            ("gen_ai.input.messages", input),
            ("gen_ai.output.messages", output),
            ("gen_ai.system_instructions", "[not json"),
        ]),
    );
    for args in [
        &["--span", "b7ad", "svc-1.jsonl"][..],
        &["--full", "svc-1.jsonl"][..],
    ] {
        let printed = shown(&root, args);
        assert_eq!(
            chat_block(
                &printed,
                "gen_ai.input.messages = 7 messages (its JSON by role and part):"
            ),
            [
                "[system] Be brief.",
                "[user] Find a flight.",
                "To Lisbon.",
                "[assistant] Checking.",
                r#"tool call calendar(day="tue", flex=[1, 2]) (id c0)"#,
                "[tool] tool result calendar: free (id c0)",
                r#"[tool] tool result: {"ok": true} (id zz)"#,
                r#"[assistant] tool call search(q="x") (id t1)"#,
                r#"tool call cut({"to": "LI)"#,
                "[user] tool result search: 3 hits (id t1)",
            ],
            "{printed}"
        );
        assert_eq!(
            chat_block(
                &printed,
                "gen_ai.output.messages = 1 message (its JSON by role and part):"
            ),
            [r#"[assistant, finish_reason tool_call] tool call flight_search(to="LIS") (id c1)"#],
            "{printed}"
        );
        assert!(
            printed.contains("gen_ai.system_instructions = [not json\n"),
            "{printed}"
        );
    }
    // Cut to the width, the JSON as it is.
    let cut = show(
        &root,
        &["--attributes", "svc-1.jsonl"],
        &[("NO_COLOR", "1")],
    );
    let printed = text(&cut.stdout);
    assert!(
        printed.contains(r#"gen_ai.input.messages = [{"role":"system","parts":"#),
        "{printed}"
    );
    // The page's Chat table draws the calls the same.
    let page = page_of(&root, "svc-1.jsonl");
    assert!(
        page.contains(
            "[tool] tool result calendar: free (id c0)\n[tool] tool result: {&quot;ok&quot;: true} (id zz)"
        ),
        "{page}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// A sink line of one LLM span (id b7ad6b7169203331) with these
/// attributes, each `(key, value)` a string, or an int when it parses.
fn llm_span_of(attributes: &[(&str, &str)]) -> String {
    let attrs: Vec<String> = attributes
        .iter()
        .map(|(k, v)| match v.parse::<i64>() {
            Ok(n) => format!(r#"{{"key":"{k}","value":{{"intValue":"{n}"}}}}"#),
            Err(_) => format!(
                r#"{{"key":"{k}","value":{{"stringValue":{}}}}}"#,
                json_string(v)
            ),
        })
        .collect();
    llm_chat_line(&format!(r#""attributes":[{}]"#, attrs.join(",")))
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The lines from the one ending with `head` to the next that is not
/// under it (no `┊`), their rails cut off.
fn chat_block(printed: &str, head: &str) -> Vec<String> {
    let lines: Vec<&str> = printed.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.ends_with(head))
        .unwrap_or_else(|| panic!("no line ending with {head:?}:\n{printed}"));
    lines[at + 1..]
        .iter()
        .take_while(|l| l.contains('┊'))
        .map(|l| l.split_once("┊ ").map_or("", |(_, t)| t).to_string())
        .collect()
}

#[test]
fn openllmetry_indexed_prompt_and_completion_shown_whole_as_a_chat() {
    // OpenLLMetry (traceloop) records a chat as indexed flat attributes,
    // gen_ai.prompt.N.role / .content, gen_ai.completion.N.* with its
    // tool calls: shown whole, a dozen attribute lines in the file's order
    // (index 10 between 1 and 2), one message's role apart from its text.
    // Now one chat a family, messages by index.
    let mut attrs = vec![
        ("llm.request.type", "chat"),
        ("gen_ai.request.model", "gpt-4o"),
        ("gen_ai.prompt.0.role", "system"),
        ("gen_ai.prompt.0.content", "Be brief."),
        // Out of order in the file, as a map's iteration may write them.
        ("gen_ai.prompt.2.content", "Tuesday."),
        ("gen_ai.prompt.1.role", "user"),
        ("gen_ai.prompt.1.content", "Find a flight.\nTo Lisbon."),
        ("gen_ai.prompt.2.role", "user"),
        ("gen_ai.prompt.10.role", "tool"),
        ("gen_ai.prompt.10.tool_call_id", "call_0"),
        ("gen_ai.prompt.10.content", "no flights"),
        // Anthropic's message of parts, as OpenLLMetry writes it: JSON.
        (
            "gen_ai.prompt.3.content",
            r#"[{"type":"text","text":"And a hotel.\nNear the sea."},{"type":"image","source":{"url":"u"}}]"#,
        ),
        ("gen_ai.prompt.3.role", "user"),
        ("gen_ai.completion.0.role", "assistant"),
        ("gen_ai.completion.0.finish_reason", "tool_calls"),
        ("gen_ai.completion.0.content", "Searching."),
        ("gen_ai.completion.0.tool_calls.0.id", "call_1"),
        ("gen_ai.completion.0.tool_calls.0.name", "flight_search"),
        (
            "gen_ai.completion.0.tool_calls.0.arguments",
            r#"{"to":"LIS"}"#,
        ),
        ("gen_ai.completion.0.tool_calls.1.name", "hotel_search"),
        ("gen_ai.usage.prompt_tokens", "120"),
        ("gen_ai.usage.completion_tokens", "14"),
        ("llm.usage.total_tokens", "134"),
    ];
    let root = sink_of("openllmetry-chat", llm_span_of(&attrs));
    for args in [
        &["--span", "b7ad", "svc-1.jsonl"][..],
        &["--full", "svc-1.jsonl"][..],
    ] {
        let printed = shown(&root, args);
        assert_eq!(
            chat_block(&printed, "gen_ai.prompt.N.* = 5 messages (by index):"),
            [
                "[system] Be brief.",
                "[user] Find a flight.",
                "To Lisbon.",
                "[user] Tuesday.",
                "[user] And a hotel.",
                "Near the sea.",
                r#"{"type":"image","source":{"url":"u"}}"#,
                "[tool, tool_call_id call_0] no flights",
            ],
            "{printed}"
        );
        assert_eq!(
            chat_block(&printed, "gen_ai.completion.N.* = 1 message (by index):"),
            [
                "[assistant, finish_reason tool_calls] Searching.",
                r#"tool call flight_search(to="LIS") (id call_1)"#,
                "tool call hotel_search()",
            ],
            "{printed}"
        );
        // Each family once; the other attributes as they are.
        assert_eq!(printed.matches("gen_ai.prompt").count(), 1, "{printed}");
        assert!(!printed.contains("gen_ai.completion.0"), "{printed}");
        assert!(printed.contains("llm.request.type = chat\n"), "{printed}");
        assert!(
            printed.contains("llm.usage.total_tokens = 134\n"),
            "{printed}"
        );
        // Its token counts on the span's line and the trace's.
        assert!(printed.contains("gpt-4o 120→14 tokens"), "{printed}");
        assert!(printed.contains("tokens 120 in, 14 out"), "{printed}");
    }
    // Cut to the width, each attribute as it is.
    let cut = show(
        &root,
        &["--attributes", "svc-1.jsonl"],
        &[("NO_COLOR", "1")],
    );
    let printed = text(&cut.stdout);
    assert!(
        printed.contains("gen_ai.prompt.10.tool_call_id = call_0\n"),
        "{printed}"
    );
    assert!(!printed.contains("(by index)"), "{printed}");

    // Only the sum (OpenLLMetry's LangChain callback): said as such.
    attrs.retain(|(k, _)| !k.starts_with("gen_ai.usage."));
    let root_total = sink_of("openllmetry-total", llm_span_of(&attrs));
    let out = show(&root_total, &["svc-1.jsonl"], &[("NO_COLOR", "1")]);
    let printed = text(&out.stdout);
    let line = printed
        .lines()
        .find(|l| l.contains("llm.chat"))
        .expect("the span's line");
    assert!(line.ends_with("gpt-4o 134 tokens"), "{printed}");
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&root_total);
}

#[test]
fn openinference_indexed_messages_shown_whole_as_a_chat() {
    // OpenInference (Arize) records llm.input_messages.N.message.role /
    // .content, a message of parts as .message.contents.K.message_content.*
    // and tool calls as .message.tool_calls.K.tool_call.function.*: read
    // as one chat a family, an unknown field (an image) kept in its
    // message.
    let attrs = [
        ("openinference.span.kind", "LLM"),
        ("llm.model_name", "claude-sonnet"),
        ("llm.input_messages.0.message.role", "user"),
        (
            "llm.input_messages.0.message.contents.0.message_content.type",
            "text",
        ),
        (
            "llm.input_messages.0.message.contents.0.message_content.text",
            "What is on\nthis picture?",
        ),
        (
            "llm.input_messages.0.message.contents.1.message_content.type",
            "image",
        ),
        (
            "llm.input_messages.0.message.contents.1.message_content.image.image.url",
            "https://x/cat.png",
        ),
        ("llm.input_messages.1.message.role", "assistant"),
        (
            "llm.input_messages.1.message.tool_calls.0.tool_call.id",
            "toolu_1",
        ),
        (
            "llm.input_messages.1.message.tool_calls.0.tool_call.function.name",
            "describe",
        ),
        (
            "llm.input_messages.1.message.tool_calls.0.tool_call.function.arguments",
            r#"{"detail":"high"}"#,
        ),
        ("llm.output_messages.0.message.role", "assistant"),
        ("llm.output_messages.0.message.content", "A cat."),
        ("llm.token_count.prompt", "900"),
        ("llm.token_count.completion", "3"),
        ("input.mime_type", "application/json"),
    ];
    let root = sink_of("openinference-chat", llm_span_of(&attrs));
    let printed = shown(&root, &["--span", "b7ad", "svc-1.jsonl"]);
    assert_eq!(
        chat_block(
            &printed,
            "llm.input_messages.N.message.* = 2 messages (by index):"
        ),
        [
            "[user, contents.1.message_content.type image, \
             contents.1.message_content.image.image.url https://x/cat.png] What is on",
            "this picture?",
            r#"[assistant] tool call describe(detail="high") (id toolu_1)"#,
        ],
        "{printed}"
    );
    assert_eq!(
        chat_block(
            &printed,
            "llm.output_messages.N.message.* = 1 message (by index):"
        ),
        ["[assistant] A cat."],
        "{printed}"
    );
    assert!(!printed.contains("llm.input_messages.0"), "{printed}");
    assert!(
        printed.contains("input.mime_type = application/json\n"),
        "{printed}"
    );
    assert!(printed.contains("claude-sonnet 900→3 tokens"), "{printed}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn ai_sdk_spans_shown_whole_as_a_chat() {
    // The Vercel AI SDK (npm `ai`, its experimental_telemetry) writes a
    // call's prompt as JSON in ai.prompt ({system, messages}), each model
    // call's conversation so far in ai.prompt.messages (content parts:
    // text, file, tool-call, tool-result) and the tool calls it answered
    // in ai.response.toolCalls: shown whole, each was one line of JSON.
    // The file is what the SDK 6 ended (tests/cli/ai_sdk/make_spans.cjs).
    let root = copies_of("ai-sdk", "tests/cli/ai_sdk", &["ai-agent-4242.jsonl"]);
    for args in [
        &["--span", "a15d000000000004", "ai-agent-4242.jsonl"][..],
        &["--full", "ai-agent-4242.jsonl"][..],
    ] {
        let printed = shown(&root, args);
        assert_eq!(
            chat_block(
                &printed,
                "ai.prompt.messages = 4 messages (its JSON by role and part):"
            ),
            [
                "[system] You are a weather bot.",
                "[user] Weather in Lisbon?",
                r#"{"type":"file","mediaType":"image/png","data":"iVBORw=="}"#,
                "[assistant] Looking it up.",
                r#"tool call weather(city="Lisboa") (id call-1)"#,
                r#"[tool] tool result weather: {"city": "Lisboa", "sky": "sol", "celsius": 23} (id call-1)"#,
            ],
            "{printed}"
        );
        assert!(
            printed.contains("ai.response.text = Em Lisboa está sol,\n"),
            "{printed}"
        );
        // The trace's tokens: each model call's once (generateText's own
        // span says their sum again, in ai.usage.* alone).
        assert!(printed.contains("tokens 270 in, 32 out"), "{printed}");
    }
    let out = show(
        &root,
        &["--full", "ai-agent-4242.jsonl"],
        &[("NO_COLOR", "1")],
    );
    let printed = text(&out.stdout);
    assert_eq!(
        chat_block(
            &printed,
            "ai.prompt = 2 messages (its JSON by role and part):"
        ),
        [
            "[system] You are a weather bot.",
            "[user] Weather in Lisbon?",
            r#"{"type":"image","image":{"0":137,"1":80,"2":78,"3":71},"mediaType":"image/png"}"#,
        ],
        "{printed}"
    );
    assert_eq!(
        chat_block(&printed, "ai.response.toolCalls = 1 tool call (its JSON):"),
        [r#"tool call weather(city="Lisboa") (id call-1)"#],
        "{printed}"
    );
    // generateText's own span says its model and the sum of its calls.
    let line = printed
        .lines()
        .find(|l| l.contains("ai.generateText ") && !l.contains('='))
        .expect("the call's line");
    assert!(line.ends_with("mock-model-1 270→32 tokens"), "{printed}");
    // The page's Chat table has them too.
    let page = page_of(&root, "ai-agent-4242.jsonl");
    assert!(
        page.contains(
            "<th>ai.response.toolCalls</th><td>1 tool call (its JSON):\n\
             tool call weather(city=&quot;Lisboa&quot;) (id call-1)"
        ),
        "{page}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// The lines drawn under the event line that holds `head` (a step in
/// from its `•`), their rails and a later line's `┊` gutter cut off.
fn event_block(printed: &str, head: &str) -> Vec<String> {
    let lines: Vec<&str> = printed.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains(head))
        .unwrap_or_else(|| panic!("no line with {head:?}:\n{printed}"));
    let column = lines[at].chars().position(|c| c == '•').expect("an event");
    lines[at + 1..]
        .iter()
        .take_while(|l| l.chars().nth(column) == Some(' '))
        .map(|l| {
            let text: String = l.chars().skip(column + 2).collect();
            text.strip_prefix("  ┊ ").unwrap_or(&text).to_string()
        })
        .collect()
}

/// A directory of its own for `test` holding the files of
/// tests/cli/genai_events (tests/cli/genai_events/make_spans.py).
fn genai_events_root(test: &str) -> PathBuf {
    copies_of(
        test,
        "tests/cli/genai_events",
        &["openllmetry-events.jsonl", "openai-v2-event-only.jsonl"],
    )
}

#[test]
fn openllmetry_message_events_shown_whole_as_a_chat() {
    // OpenLLMetry with use_attributes=False sends each message as a Logs
    // API event (gen_ai.system.message, gen_ai.user.message,
    // gen_ai.assistant.message, gen_ai.tool.message, gen_ai.choice), which
    // spanguard's Python bridge puts on the span, the body as the event
    // attribute log.record.body. Shown whole, each was one line of
    // `log.record.body={content: …}`, a choice's tool calls as nested
    // maps: now each event's message under its line, as the other chats
    // read. The file is what OpenLLMetry 0.62.4 emitted for a turn with a
    // tool call (tests/cli/genai_events/make_spans.py).
    let root = genai_events_root("llm-events");
    let printed = shown(
        &root,
        &["--span", "9e0e000000000003", "openllmetry-events.jsonl"],
    );
    // The second call's span, the one shown whole.
    let printed = &printed[printed.find("9e0e000000000003").expect("span")..];
    let expected: [(&str, &[&str]); 5] = [
        (
            "• gen_ai.system.message +1.00 ms",
            // The escape sequence in the prompt is not sent as it is.
            &[r"[system] You are a weather agent.\x1b[2J Answer in one line."],
        ),
        (
            "• gen_ai.user.message +2.00 ms",
            &[
                "[user] What is the weather in Lisbon?",
                r"Answer with\tthe temperature.",
            ],
        ),
        (
            "• gen_ai.assistant.message +3.00 ms",
            &[r#"[assistant] tool call get_weather(city="Lisbon") (id call_weather_1)"#],
        ),
        (
            "• gen_ai.tool.message +4.00 ms",
            &["[tool] 18°C, clear sky"],
        ),
        (
            "• gen_ai.choice +5.00 ms",
            &["[assistant, finish_reason stop] echo: 18°C, clear sky"],
        ),
    ];
    for (head, lines) in expected {
        assert_eq!(event_block(printed, head), lines, "{printed}");
        let line = printed.lines().find(|l| l.contains(head)).expect("line");
        assert!(
            line.ends_with(&format!("{head}  gen_ai.provider.name=openai")),
            "{printed}"
        );
    }
    // The first call's choice: the tool call beside its empty message.
    let printed = shown(&root, &["--full", "openllmetry-events.jsonl"]);
    assert_eq!(
        event_block(&printed, "• gen_ai.choice +3.00 ms"),
        [
            r#"[assistant, finish_reason tool_calls] tool call get_weather(city="Lisbon") (id call_weather_1)"#
        ],
        "{printed}"
    );
    assert!(!printed.contains("log.record.body"), "{printed}");
    // Cut to the width, each event's line says its message first, as a
    // chat reads (`[user] What is…`, its newlines as `\n`), then its
    // other attributes: it was `log.record.body={content: What i…`, a
    // map's text cut in the question's first words.
    let printed = shown(&root, &["openllmetry-events.jsonl"]);
    for line in [
        r"• gen_ai.user.message +2.00 ms  [user] What is the weather in Lisbon?\nAnswer with\tthe temp…",
        r#"• gen_ai.assistant.message +3.00 ms  [assistant] tool call get_weather(city="Lisbon") (id ca…"#,
        "• gen_ai.tool.message +4.00 ms  [tool] 18°C, clear sky  gen_ai.provider.name=openai\n",
    ] {
        assert!(printed.contains(line), "{line}\n{printed}");
    }
    assert!(!printed.contains("log.record.body"), "{printed}");
    // The page's Chat table has them, named by their event.
    let page = page_of(&root, "openllmetry-events.jsonl");
    for row in [
        "<tr><th>gen_ai.user.message</th><td>[user] What is the weather in Lisbon?\nAnswer with\tthe temperature.</td></tr>",
        "<tr><th>gen_ai.assistant.message</th><td>[assistant] tool call get_weather(city=&quot;Lisbon&quot;) (id call_weather_1)</td></tr>",
        "<tr><th>gen_ai.choice</th><td>[assistant, finish_reason stop] echo: 18°C, clear sky</td></tr>",
    ] {
        assert!(page.contains(row), "{row}\n{page}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn openai_v2_details_event_messages_shown_whole_as_a_chat() {
    // opentelemetry-instrumentation-openai-v2 (util-genai) with
    // event_only puts the chat on a gen_ai.client.inference.operation
    // .details Logs API event, gen_ai.input.messages and
    // gen_ai.output.messages structured (arrays of maps, not JSON
    // strings). Shown whole, each was one line of nested brackets: now
    // by role and part under the event's line, as the JSON attributes
    // read. The file is what openai-v2 2.4b0 emitted
    // (tests/cli/genai_events/make_spans.py).
    let root = genai_events_root("v2-events");
    for args in [
        &["--span", "9e0e000000000003", "openai-v2-event-only.jsonl"][..],
        &["--full", "openai-v2-event-only.jsonl"][..],
    ] {
        let printed = shown(&root, args);
        assert_eq!(
            chat_block(
                &printed,
                "gen_ai.input.messages = 4 messages (by role and part):"
            ),
            [
                r"[system] You are a weather agent.\x1b[2J Answer in one line.",
                "[user] What is the weather in Lisbon?",
                r"Answer with\tthe temperature.",
                r#"[assistant] tool call get_weather(city="Lisbon") (id call_weather_1)"#,
                "[tool] tool result get_weather: 18°C, clear sky (id call_weather_1)",
            ],
            "{printed}"
        );
        // The second call's answer.
        let second = &printed[printed.find("[stop]").expect("second call")..];
        assert_eq!(
            chat_block(
                second,
                "gen_ai.output.messages = 1 message (by role and part):"
            ),
            ["[assistant, finish_reason stop] echo: 18°C, clear sky"],
            "{printed}"
        );
        let line = printed
            .lines()
            .find(|l| l.contains("• gen_ai.client.inference.operation.details +1.00 ms  gen_ai.operation.name=chat") && l.contains("[stop]"))
            .unwrap_or_else(|| panic!("{printed}"));
        assert!(!line.contains("gen_ai.input.messages"), "{printed}");
        assert!(
            line.ends_with("openai.response.system_fingerprint=fp_fake"),
            "{printed}"
        );
    }
    // Cut to the width, the event's line says its messages first, by
    // role and part (they were nested maps' text, at the line's end).
    let out = show(
        &root,
        &["openai-v2-event-only.jsonl"],
        &[("NO_COLOR", "1"), ("COLUMNS", "400")],
    );
    let printed = text(&out.stdout);
    assert!(
        printed.contains(
            r#"• gen_ai.client.inference.operation.details +1.00 ms  gen_ai.input.messages=[system] You are a weather agent.\x1b[2J Answer in one line.\n[user] What is"#
        ),
        "{printed}"
    );
    let page = page_of(&root, "openai-v2-event-only.jsonl");
    let row = "<tr><th>gen_ai.client.inference.operation.details gen_ai.output.messages</th>\
               <td>1 message (by role and part):\n[assistant, finish_reason stop] echo: 18°C, clear sky</td></tr>";
    assert!(page.contains(row), "{page}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn message_event_bodies_of_every_shape_read_as_a_message() {
    // What the conventions allow beyond the files above: a choice's
    // message that says its role and holds its content as parts (as
    // Anthropic's are), a content that is its parts' JSON, a tool's
    // message with the call's id, a picture's bytes in a structured part
    // said by its type and size, the instructions structured; a body that
    // is no message (a string) shown as it is; a details event's messages
    // as a JSON string read as the structured ones.
    let picture = "A".repeat(4000);
    let body = |fields: &str| {
        format!(r#"{{"key":"log.record.body","value":{{"kvlistValue":{{"values":[{fields}]}}}}}}"#)
    };
    let s = |v: &str| format!(r#"{{"stringValue":{}}}"#, json_string(v));
    let kv = |k: &str, v: &str| format!(r#"{{"key":"{k}","value":{v}}}"#);
    let map =
        |members: &[String]| format!(r#"{{"kvlistValue":{{"values":[{}]}}}}"#, members.join(","));
    let array =
        |items: &[String]| format!(r#"{{"arrayValue":{{"values":[{}]}}}}"#, items.join(","));
    let event = |name: &str, ms: u64, attributes: &[String]| {
        format!(
            r#"{{"timeUnixNano":"{}","name":"{name}","attributes":[{}]}}"#,
            T0 + ms * MS,
            attributes.join(",")
        )
    };
    let events = [
        event(
            "gen_ai.user.message",
            1,
            &[body(&kv(
                "content",
                &s(r#"[{"type":"text","text":"Read this."},{"type":"thinking","thinking":"Hm."}]"#),
            ))],
        ),
        event(
            "gen_ai.tool.message",
            2,
            &[body(
                &[kv("content", &s("sunny")), kv("id", &s("call_7"))].join(","),
            )],
        ),
        event(
            "gen_ai.choice",
            3,
            &[body(
                &[
                    kv("index", r#"{"intValue":"0"}"#),
                    kv("finish_reason", &s("end_turn")),
                    kv(
                        "message",
                        &map(&[
                            kv("role", &s("model")),
                            kv(
                                "content",
                                &array(&[
                                    map(&[kv("type", &s("text")), kv("text", &s("Two\nlines."))]),
                                    map(&[
                                        kv("type", &s("redacted_thinking")),
                                        kv("data", &s("x")),
                                    ]),
                                ]),
                            ),
                        ]),
                    ),
                ]
                .join(","),
            )],
        ),
        event(
            "gen_ai.client.inference.operation.details",
            4,
            &[
                kv(
                    "gen_ai.system_instructions",
                    &array(&[map(&[
                        kv("type", &s("text")),
                        kv("content", &s("Be brief.")),
                    ])]),
                ),
                kv(
                    "gen_ai.input.messages",
                    &array(&[map(&[
                        kv("role", &s("user")),
                        kv(
                            "parts",
                            &array(&[map(&[
                                kv("type", &s("blob")),
                                kv("mime_type", &s("image/png")),
                                kv("modality", &s("image")),
                                kv("content", &format!(r#"{{"bytesValue":"{picture}"}}"#)),
                            ])]),
                        ),
                    ])]),
                ),
                // The same conventions' messages as a JSON string.
                kv(
                    "gen_ai.output.messages",
                    &s(
                        r#"[{"role":"assistant","parts":[{"type":"text","content":"Hi."}],"finish_reason":"stop"}]"#,
                    ),
                ),
            ],
        ),
        event(
            "gen_ai.user.message",
            5,
            &[kv("log.record.body", &s("a string body"))],
        ),
    ];
    let line = llm_chat_line(&format!(r#""events":[{}]"#, events.join(",")));
    let root = sink_of("event-bodies", line);
    let printed = shown(&root, &["--full", "svc-1.jsonl"]);
    assert_eq!(
        event_block(&printed, "• gen_ai.user.message +1.00 ms"),
        ["[user] Read this.", "(reasoning) Hm."],
        "{printed}"
    );
    assert_eq!(
        event_block(&printed, "• gen_ai.tool.message +2.00 ms"),
        ["[tool, id call_7] sunny"],
        "{printed}"
    );
    assert_eq!(
        event_block(&printed, "• gen_ai.choice +3.00 ms"),
        [
            "[model, finish_reason end_turn] Two",
            "lines.",
            "(reasoning, redacted)"
        ],
        "{printed}"
    );
    assert_eq!(
        event_block(
            &printed,
            "• gen_ai.client.inference.operation.details +4.00 ms"
        ),
        [
            "gen_ai.system_instructions = 1 message (by role and part):",
            "Be brief.",
            "gen_ai.input.messages = 1 message (by role and part):",
            r#"[user] {"type":"blob","mime_type":"image/png","modality":"image","content":"[image/png, 2.9 KB]"}"#,
            "gen_ai.output.messages = 1 message (its JSON by role and part):",
            "[assistant, finish_reason stop] Hi.",
        ],
        "{printed}"
    );
    assert!(
        printed.contains("• gen_ai.user.message +5.00 ms  log.record.body=a string body\n"),
        "{printed}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn ai_sdk_reasoning_and_embeddings_counted_each_call_once() {
    // What AI SDK 6 ended for one agent turn
    // (tests/cli/ai_sdk/make_reasoning_spans.cjs): embedMany (its
    // ai.usage.tokens on the call and again on its one model call),
    // then a generateText to a model that reasons (48 of its 60 output
    // tokens; the conversation holds an earlier answer's reasoning and a
    // picture of 3 KB). The embedding's tokens were not counted at all,
    // the reasoning not said.
    let root = copies_of(
        "ai-reasoning",
        "tests/cli/ai_sdk",
        &["ai-reasoning-4343.jsonl"],
    );
    let printed = shown(&root, &["ai-reasoning-4343.jsonl"]);
    // 900 + the embedding's 14 in; reasoning is part of the 60 out.
    assert!(
        printed.contains("· tokens 914 in, 60 out (48 reasoning)\n"),
        "{printed}"
    );
    let line = |name: &str| {
        printed
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no {name}:\n{printed}"))
            .to_string()
    };
    assert!(
        line("ai.generateText.doGenerate")
            .ends_with("mock-reasoner-1 900→60 tokens (48 reasoning)"),
        "{printed}"
    );
    assert!(
        line("ai.embedMany.doEmbed").ends_with("mock-embed-1 14→? tokens"),
        "{printed}"
    );
    // The page says the same sum.
    let page = page_of(&root, "ai-reasoning-4343.jsonl");
    assert!(
        page.contains(">914 in, 60 out (48 reasoning) tokens</span>"),
        "{page}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_sum_alone_and_reasoning_counts_are_summed_per_trace() {
    // A call that says only its sum (OpenLLMetry's streamed and LangChain
    // calls: llm.usage.total_tokens) showed on its line and was in no
    // trace's sum: a trace of such calls said no tokens at all. A sum
    // that is not input plus output is said beside them; the reasoning
    // counts (OpenLLMetry's, OpenInference's from OpenAI's
    // completion_tokens_details) are said, part of the output.
    for (test, attrs, line, fact) in [
        (
            "sum-alone",
            &[
                ("gen_ai.request.model", "gpt-4o"),
                ("llm.usage.total_tokens", "500"),
            ][..],
            "gpt-4o 500 tokens",
            "· tokens 500 total\n",
        ),
        (
            "sum-beside",
            &[
                ("gen_ai.request.model", "gpt-4o"),
                ("gen_ai.usage.input_tokens", "100"),
                ("gen_ai.usage.output_tokens", "20"),
                ("gen_ai.usage.total_tokens", "130"),
            ][..],
            "gpt-4o 100→20 tokens",
            "· tokens 100 in, 20 out, 130 total\n",
        ),
        (
            "reasoning-openllmetry",
            &[
                ("gen_ai.request.model", "o3-mini"),
                ("gen_ai.usage.input_tokens", "40"),
                ("gen_ai.usage.output_tokens", "300"),
                ("gen_ai.usage.reasoning_tokens", "256"),
                ("gen_ai.usage.total_tokens", "340"),
            ][..],
            "o3-mini 40→300 tokens (256 reasoning)",
            "· tokens 40 in, 300 out (256 reasoning)\n",
        ),
        (
            "reasoning-openinference",
            &[
                ("llm.model_name", "o3-mini"),
                ("llm.token_count.prompt", "40"),
                ("llm.token_count.completion", "300"),
                ("llm.token_count.completion_details.reasoning", "256"),
                ("llm.token_count.total", "340"),
            ][..],
            "o3-mini 40→300 tokens (256 reasoning)",
            "· tokens 40 in, 300 out (256 reasoning)\n",
        ),
    ] {
        let root = sink_of(test, llm_span_of(attrs));
        let printed = shown(&root, &["svc-1.jsonl"]);
        assert!(printed.contains(line), "{test}: {printed}");
        assert!(printed.contains(fact), "{test}: {printed}");
        let _ = std::fs::remove_dir_all(&root);
    }
}

#[test]
fn reasoning_parts_read_as_reasoning() {
    // A reasoning model's thinking kept in the conversation: the AI SDK's
    // `{type: "reasoning", text}` part (what ai 6 ended,
    // make_reasoning_spans.cjs), the GenAI conventions' reasoning part,
    // Anthropic's thinking blocks as OpenLLMetry writes them. Printed as
    // JSON (or, for the SDK, its JSON on one line), the thinking read as
    // if it were the answer or was lost in a line of escapes.
    let root = copies_of(
        "reasoning-parts",
        "tests/cli/ai_sdk",
        &["ai-reasoning-4343.jsonl"],
    );
    let printed = shown(
        &root,
        &["--span", "a15e000000000005", "ai-reasoning-4343.jsonl"],
    );
    assert_eq!(
        chat_block(
            &printed,
            "ai.prompt.messages = 3 messages (its JSON by role and part):"
        ),
        [
            "[user] Hello",
            "[assistant] (reasoning) A greeting; answer it.",
            "Hi! Send me a chart.",
            "[user] What does this chart say?",
            r#"{"type":"file","mediaType":"image/png","data":"[image/png, 3.0 KB base64]"}"#,
        ],
        "{printed}"
    );
    let output = concat!(
        r#"[{"role":"assistant","parts":[{"type":"reasoning","content":"Two steps.\nFirst add."},"#,
        r#"{"type":"text","content":"It is 4."}],"finish_reason":"stop"}]"#
    );
    let thinking = concat!(
        r#"[{"type":"thinking","thinking":"Check the units.","signature":"c2ln"},"#,
        r#"{"type":"redacted_thinking","data":"ZW5j"},{"type":"text","text":"12 km."}]"#
    );
    let attrs = [
        ("gen_ai.output.messages", output),
        ("gen_ai.completion.0.role", "assistant"),
        ("gen_ai.completion.0.content", thinking),
    ];
    let root2 = sink_of("reasoning-semconv", llm_span_of(&attrs));
    let printed = shown(&root2, &["--span", "b7ad", "svc-1.jsonl"]);
    assert_eq!(
        chat_block(
            &printed,
            "gen_ai.output.messages = 1 message (its JSON by role and part):"
        ),
        [
            "[assistant, finish_reason stop] (reasoning) Two steps.",
            "First add. It is 4.",
        ],
        "{printed}"
    );
    assert_eq!(
        chat_block(&printed, "gen_ai.completion.N.* = 1 message (by index):"),
        [
            "[assistant] (reasoning) Check the units.",
            "(reasoning, redacted)",
            "12 km.",
        ],
        "{printed}"
    );
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&root2);
}

#[test]
fn a_picture_in_a_message_is_said_by_its_type_and_size() {
    // A user's 5 MB picture in a message (base64 in an AI SDK file part,
    // a data: URL in OpenAI's image_url, the GenAI conventions' blob,
    // Anthropic's base64 source, bytes the SDK wrote as an object of
    // indexes) printed whole under --full and on the page's Chat table:
    // 5 MB of base64 with the conversation lost around it. Said by its
    // media type and size; the text parts stay whole.
    let b64 = "iVBORw0KGgo".repeat(5 * 1024 * 1024 / 11);
    let url = format!("data:image/png;base64,{b64}");
    let words = format!("{} characters of text, none elided", "long ".repeat(400));
    let bytes: Vec<String> = (0..3000).map(|i| format!(r#""{i}":{}"#, i % 256)).collect();
    let sdk = format!(
        r#"[{{"role":"user","content":[{{"type":"text","text":"{words}"}},{{"type":"file","mediaType":"image/png","data":"{b64}"}},{{"type":"image","image":{{{}}},"mediaType":"image/jpeg"}}]}}]"#,
        bytes.join(",")
    );
    let semconv = format!(
        r#"[{{"role":"user","parts":[{{"type":"text","content":"What is it?"}},{{"type":"blob","modality":"image","mime_type":"image/webp","content":"{b64}"}}]}}]"#
    );
    let openai = format!(
        r#"[{{"type":"text","text":"And this?"}},{{"type":"image_url","image_url":{{"url":"data:image/gif;base64,{b64}"}}}},{{"type":"image","source":{{"type":"base64","media_type":"image/png","data":"{b64}"}}}}]"#
    );
    let attrs = [
        ("ai.prompt.messages", sdk.as_str()),
        ("gen_ai.input.messages", semconv.as_str()),
        ("gen_ai.prompt.0.role", "user"),
        ("gen_ai.prompt.0.content", openai.as_str()),
        ("llm.input_messages.0.message.role", "user"),
        (
            "llm.input_messages.0.message.contents.0.message_content.type",
            "text",
        ),
        (
            "llm.input_messages.0.message.contents.0.message_content.text",
            "Look",
        ),
        (
            "llm.input_messages.0.message.contents.1.message_content.type",
            "image",
        ),
        (
            "llm.input_messages.0.message.contents.1.message_content.image.image.url",
            &url,
        ),
        ("gen_ai.completion.0.role", "assistant"),
        ("gen_ai.completion.0.content", &url),
    ];
    let root = sink_of("picture-elided", llm_span_of(&attrs));
    let printed = shown(&root, &["--full", "svc-1.jsonl"]);
    // Nothing printed holds the picture.
    assert!(printed.len() < 64 * 1024, "{} bytes printed", printed.len());
    let size = "5.0 MB";
    // OpenInference's flat attributes: the image's URL, in the head.
    assert_eq!(
        chat_block(
            &printed,
            "llm.input_messages.N.message.* = 1 message (by index):"
        ),
        ["[user, contents.1.message_content.type image, \
             contents.1.message_content.image.image.url [image/png, 5.0 MB base64]] Look"],
        "{printed}"
    );
    assert_eq!(
        chat_block(
            &printed,
            "ai.prompt.messages = 1 message (its JSON by role and part):"
        ),
        [
            format!("[user] {words}"),
            format!(
                r#"{{"type":"file","mediaType":"image/png","data":"[image/png, {size} base64]"}}"#
            ),
            r#"{"type":"image","image":"[image/jpeg, 2.9 KB]","mediaType":"image/jpeg"}"#
                .to_string(),
        ],
        "{printed}"
    );
    assert_eq!(
        chat_block(
            &printed,
            "gen_ai.input.messages = 1 message (its JSON by role and part):"
        ),
        [format!(
            r#"[user] What is it? {{"type":"blob","modality":"image","mime_type":"image/webp","content":"[image/webp, {size} base64]"}}"#
        )],
        "{printed}"
    );
    assert_eq!(
        chat_block(&printed, "gen_ai.prompt.N.* = 1 message (by index):"),
        [
            "[user] And this?".to_string(),
            format!(r#"{{"type":"image_url","image_url":{{"url":"[image/gif, {size} base64]"}}}}"#),
            format!(
                r#"{{"type":"image","source":{{"type":"base64","media_type":"image/png","data":"[image/png, {size} base64]"}}}}"#
            ),
        ],
        "{printed}"
    );
    // A content that is a data: URL whole (a generated picture).
    assert_eq!(
        chat_block(&printed, "gen_ai.completion.N.* = 1 message (by index):"),
        ["[assistant] [image/png, 5.0 MB base64]"],
        "{printed}"
    );
    // The page's Chat table says the same.
    let page = page_of(&root, "svc-1.jsonl");
    let chat = &page[page.find("<h4>Chat</h4>").expect("a Chat table")..];
    let chat = &chat[..chat.find("</table>").expect("its end")];
    assert!(chat.contains("[image/png, 5.0 MB base64]"), "{chat}");
    assert!(chat.contains(&words), "{chat}");
    assert!(chat.len() < 64 * 1024, "{} bytes of Chat table", chat.len());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn ai_sdk_messages_keep_the_rules_for_hostile_and_cut_text() {
    // What the other chats do with a value that is not what it seems: a
    // control character or a bidi control escaped, a value cut by a
    // length limit (no longer JSON) shown as it is; AI SDK 4's names
    // (args, result, ai.usage.promptTokens) read too.
    let messages = concat!(
        r#"[{"role":"user","content":"Hi\u001b[2J\u202e there\nsecond line"},"#,
        r#"{"role":"assistant","content":[{"type":"tool-call","toolCallId":"c9","toolName":"lookup","args":{"q":"x"}}]},"#,
        r#"{"role":"tool","content":[{"type":"tool-result","toolCallId":"c9","toolName":"lookup","result":"found"}]}]"#
    );
    let attrs = [
        ("ai.model.id", "gpt-4o-mini"),
        ("ai.prompt.messages", messages),
        ("ai.prompt", r#"{"system":"Be brief.","prompt":"Find a fli"#),
        ("ai.response.toolCalls", "not json"),
        ("ai.usage.promptTokens", "40"),
        ("ai.usage.completionTokens", "5"),
    ];
    let root = sink_of("ai-sdk-hostile", llm_span_of(&attrs));
    let printed = shown(&root, &["--span", "b7ad", "svc-1.jsonl"]);
    assert_eq!(
        chat_block(
            &printed,
            "ai.prompt.messages = 3 messages (its JSON by role and part):"
        ),
        [
            r"[user] Hi\x1b[2J\u{202e} there",
            "second line",
            r#"[assistant] tool call lookup(q="x") (id c9)"#,
            "[tool] tool result lookup: found (id c9)",
        ],
        "{printed}"
    );
    assert!(!printed.contains('\x1b') && !printed.contains('\u{202e}'));
    assert!(
        printed.contains(r#"ai.prompt = {"system":"Be brief.","prompt":"Find a fli"#),
        "{printed}"
    );
    assert!(
        printed.contains("ai.response.toolCalls = not json\n"),
        "{printed}"
    );
    // A span with the AI SDK's counts alone, nothing under it: counted.
    assert!(printed.contains("gpt-4o-mini 40→5 tokens"), "{printed}");
    assert!(printed.contains("tokens 40 in, 5 out"), "{printed}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn an_exception_event_line_says_its_message_before_its_type() {
    // At 80 columns the exception's line was cut after its type, in the
    // message (`exception.type=openai.RateLimitError exception.message=Ra…`):
    // the words that say what went wrong were the ones cut.
    let line = llm_chat_line(concat!(
        r#""events":[{"timeUnixNano":"1796029200001000000","name":"exception","attributes":["#,
        r#"{"key":"exception.type","value":{"stringValue":"openai.RateLimitError"}},"#,
        r#"{"key":"exception.message","value":{"stringValue":"Rate limit reached for gpt-4o"}},"#,
        r#"{"key":"exception.stacktrace","value":{"stringValue":"Traceback (most recent call last)"}}]}]"#
    ));
    let root = sink_of("exception-message-first", line);
    let out = show(
        &root,
        &["svc-1.jsonl"],
        &[("NO_COLOR", "1"), ("COLUMNS", "80")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let event = printed
        .lines()
        .find(|l| l.contains("• exception"))
        .unwrap_or_else(|| panic!("{printed}"));
    assert!(
        event.contains("• exception +1.00 ms  exception.message=Rate limit reached for gpt-4o "),
        "{printed}"
    );
    assert!(!event.contains("RateLimitError"), "{printed}");
    // Whole, everything is still there, the type after the message.
    let full = text(&show(&root, &["--full", "svc-1.jsonl"], &[("NO_COLOR", "1")]).stdout);
    assert!(
        full.contains(
            "exception.message=Rate limit reached for gpt-4o exception.type=openai.RateLimitError \
             exception.stacktrace=Traceback"
        ),
        "{full}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn the_html_page_shows_a_spans_messages_as_a_chat() {
    // The page's span details listed gen_ai.prompt.0.role, .0.content,
    // .1.role ... one row each (and a JSON gen_ai.input.messages as one
    // line of JSON): now a "Chat" table reads them as `show --span` does,
    // message by message, the attributes still listed under it.
    let input = r#"[{"role":"user","parts":[{"type":"text","content":"Hi <b>there</b>"}]}]"#;
    let attrs = [
        ("gen_ai.prompt.0.role", "system"),
        ("gen_ai.prompt.0.content", "Be brief."),
        ("gen_ai.prompt.1.role", "user"),
        ("gen_ai.prompt.1.content", "Find a flight.\nTo <Lisbon>."),
        ("gen_ai.completion.0.role", "assistant"),
        ("gen_ai.completion.0.finish_reason", "stop"),
        ("gen_ai.completion.0.content", "TP 1353."),
        ("gen_ai.input.messages", input),
    ];
    let root = sink_of("html-chat", llm_span_of(&attrs));
    let page = page_of(&root, "svc-1.jsonl");
    let chat = page
        .split_once("<h4>Chat</h4>")
        .map(|(_, rest)| rest.split_once("</table>").map_or(rest, |(c, _)| c))
        .unwrap_or_else(|| panic!("no Chat table"));
    assert!(
        chat.contains(
            "<th>gen_ai.prompt.N.*</th><td>2 messages (by index):\n[system] Be brief.\n\
             [user] Find a flight.\nTo &lt;Lisbon&gt;.</td>"
        ),
        "{chat}"
    );
    assert!(
        chat.contains(
            "<th>gen_ai.completion.N.*</th><td>1 message (by index):\n\
             [assistant, finish_reason stop] TP 1353.</td>"
        ),
        "{chat}"
    );
    assert!(
        chat.contains(
            "<th>gen_ai.input.messages</th><td>1 message (its JSON by role and part):\n\
             [user] Hi &lt;b&gt;there&lt;/b&gt;</td>"
        ),
        "{chat}"
    );
    // The attributes as they are, under it.
    assert!(
        page.contains(
            "<th>gen_ai.prompt.1.content</th><td>Find a flight.\nTo &lt;Lisbon&gt;.</td>"
        ),
        "{page}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn each_spans_line_shows_the_id_that_span_takes() {
    // `--span ID` drew one span whole, but the waterfall showed no span's
    // id: README's `spanguard show --span b7ad6b71` could not be followed
    // from what `show` printed. Each span's line shows its id after its
    // bar, as few digits as pick it alone (8, more when two ids start
    // alike), and that id given to `--span` draws that span.
    let call = |id: &str, name: &str, tag: &str, ms: u64| {
        format!(
            concat!(
                r#"{{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"{}","parentSpanId":"5e3f0c2a9d8e7f61","#,
                r#""name":"{}","kind":3,"startTimeUnixNano":"{}","endTimeUnixNano":"{}","#,
                r#""attributes":[{{"key":"gen_ai.prompt","value":{{"stringValue":"{} {}END-OF-{}"}}}}]}}"#
            ),
            id,
            name,
            T0 + ms * MS,
            T0 + (ms + 4) * MS,
            tag,
            "plan the trip to Lisbon ".repeat(20),
            tag,
        )
    };
    let trace = |calls: [String; 2]| {
        format!(
            concat!(
                r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc"}}}}]}},"#,
                r#""scopeSpans":[{{"scope":{{"name":"s"}},"spans":[{},{},{}]}}]}}]}}"#
            ),
            r#"{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"5e3f0c2a9d8e7f61","name":"invoke_agent","kind":1,"startTimeUnixNano":"1796029200000000000","endTimeUnixNano":"1796029200020000000"}"#,
            calls[0],
            calls[1],
        )
    };
    // The id on `name`'s line: the first word after its bar.
    let id_on = |printed: &str, name: &str| -> String {
        let line = printed
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name}: {printed}"));
        let after_bar = line.rsplit("│ ").next().expect("a bar");
        after_bar
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string()
    };

    // Ids of random digits: 8 of them pick one span.
    let root = sink_of(
        "ids-shown",
        trace([
            call("0c41f7a29b3e5d18", "chat first", "FIRST", 1),
            call("b7ad6b7169203331", "chat second", "SECOND", 8),
        ]),
    );
    let printed = shown(&root, &["svc-1.jsonl"]);
    assert_eq!(id_on(&printed, "chat second"), "b7ad6b71", "{printed}");
    assert_eq!(id_on(&printed, "chat first"), "0c41f7a2", "{printed}");
    assert_eq!(id_on(&printed, "invoke_agent"), "5e3f0c2a", "{printed}");
    // The id ends within the width (COLUMNS is 100).
    for line in printed.lines().filter(|l| l.contains("│ ")) {
        let id_end = line.rfind("│ ").expect("bar") + "│ ".len() + 8;
        assert!(line[..id_end].chars().count() <= 100, "{line}");
    }
    let id = id_on(&printed, "chat second");
    let one = show(&root, &["--span", &id, "svc-1.jsonl"], &[("NO_COLOR", "1")]);
    assert!(one.status.success(), "{}", text(&one.stderr));
    let picked = text(&one.stdout);
    assert!(picked.contains("END-OF-SECOND\n"), "{picked}");
    assert!(!picked.contains("FIRST"), "{picked}");

    // A narrow terminal keeps the bar: no ids.
    let narrow = show(
        &root,
        &["svc-1.jsonl"],
        &[("NO_COLOR", "1"), ("COLUMNS", "60")],
    );
    let printed = text(&narrow.stdout);
    assert!(!printed.contains("b7ad6b71"), "{printed}");
    let _ = std::fs::remove_dir_all(&root);

    // Two ids that start alike: as many digits as tell them apart, so
    // that the printed id draws the one span, not both whole.
    let root = sink_of(
        "ids-alike",
        trace([
            call("b7ad6b71a0000001", "chat first", "FIRST", 1),
            call("b7ad6b71b0000002", "chat second", "SECOND", 8),
        ]),
    );
    let printed = text(&show(&root, &["svc-1.jsonl"], &[("NO_COLOR", "1")]).stdout);
    let id = id_on(&printed, "chat second");
    assert_eq!(id, "b7ad6b71b", "{printed}");
    let one = show(&root, &["--span", &id, "svc-1.jsonl"], &[("NO_COLOR", "1")]);
    let picked = text(&one.stdout);
    assert!(picked.contains("END-OF-SECOND\n"), "{picked}");
    assert!(!picked.contains("END-OF-FIRST"), "{picked}");
    let _ = std::fs::remove_dir_all(&root);
}

const FIRST_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const SECOND_TRACE: &str = "1b2c3d4e5f60718293a4b5c6d7e8f901";

/// Sink lines of agent turns, a trace each (root span 5e3f0c2a9d8e7f61,
/// `invoke_agent`), each with the LLM calls (trace, span id, name, model,
/// start in ms) of its trace, whose prompt is `PROMPT-OF-<name>`.
fn agent_turns(calls: &[(&str, &str, &str, &str, u64)]) -> String {
    let call = |&(trace, id, name, model, ms): &(&str, &str, &str, &str, u64)| {
        format!(
            concat!(
                r#"{{"traceId":"{}","spanId":"{}","parentSpanId":"5e3f0c2a9d8e7f61","#,
                r#""name":"{}","kind":3,"startTimeUnixNano":"{}","endTimeUnixNano":"{}","#,
                r#""attributes":[{{"key":"gen_ai.request.model","value":{{"stringValue":"{}"}}}},"#,
                r#"{{"key":"gen_ai.prompt","value":{{"stringValue":"PROMPT-OF-{}"}}}}]}}"#
            ),
            trace,
            id,
            name,
            T0 + ms * MS,
            T0 + (ms + 4) * MS,
            model,
            name,
        )
    };
    let mut traces: Vec<&str> = calls.iter().map(|c| c.0).collect();
    traces.dedup();
    traces
        .iter()
        .map(|trace| {
            let spans: Vec<String> = calls.iter().filter(|c| c.0 == *trace).map(call).collect();
            format!(
                concat!(
                    r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc"}}}}]}},"#,
                    r#""scopeSpans":[{{"scope":{{"name":"s"}},"spans":[{{"traceId":"{}","spanId":"5e3f0c2a9d8e7f61","#,
                    r#""name":"invoke_agent","kind":1,"startTimeUnixNano":"{}","endTimeUnixNano":"{}"}},{}]}}]}}]}}"#
                ),
                trace,
                T0,
                T0 + 20 * MS,
                spans.join(",")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn one_span_id_in_two_traces_is_said_so_with_each_trace() {
    // A span id that is in two traces (ids a program made up, a file
    // copied): `--span ID` said "2 span ids start with it; give more of
    // the id", of one id, which more digits cannot tell apart. It names
    // the id and its traces; --trace picks one.
    let root = sink_of(
        "span-twice",
        agent_turns(&[
            (FIRST_TRACE, "b7ad6b71a0000001", "plan", "gpt-4o", 1),
            (SECOND_TRACE, "b7ad6b71a0000001", "answer", "gpt-4o-mini", 8),
            (SECOND_TRACE, "b7c0ffee00000002", "check", "gpt-4o-mini", 12),
        ]),
    );
    let out = show(
        &root,
        &["--span", "b7ad", "svc-1.jsonl"],
        &[("NO_COLOR", "1")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "", "nothing drawn");
    let err = text(&out.stderr);
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [
            "spanguard: --span b7ad: span id b7ad6b71a0000001 is in 2 traces; --trace ID picks one:",
            "  trace 0af7651916cd43dd8448eb211c80319c  b7ad6b71a0000001  plan  gpt-4o",
            "  trace 1b2c3d4e5f60718293a4b5c6d7e8f901  b7ad6b71a0000001  answer  gpt-4o-mini",
        ],
        "{err}"
    );
    // Several ids, one of them twice: the ids counted once, each listed
    // with its trace.
    let out = show(
        &root,
        &["--span", "b7", "svc-1.jsonl"],
        &[("NO_COLOR", "1")],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [
            "spanguard: --span b7 is ambiguous: 2 span ids start with it; give more of the id:",
            "  trace 0af7651916cd43dd8448eb211c80319c  b7ad6b71a0000001  plan  gpt-4o",
            "  trace 1b2c3d4e5f60718293a4b5c6d7e8f901  b7ad6b71a0000001  answer  gpt-4o-mini",
            "  trace 1b2c3d4e5f60718293a4b5c6d7e8f901  b7c0ffee00000002  check  gpt-4o-mini",
            "spanguard: one span id is in more than one trace: --trace ID picks the trace",
        ],
        "{err}"
    );
    let out = show(
        &root,
        &["--span", "b7ad", "--trace", "1b2c", "svc-1.jsonl"],
        &[("NO_COLOR", "1")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let drawn = text(&out.stdout);
    assert!(drawn.contains("PROMPT-OF-answer"), "{drawn}");
    assert!(!drawn.contains("PROMPT-OF-plan"), "{drawn}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_span_id_that_starts_several_spans_ids_is_said_to_be_ambiguous() {
    // `--span b7` that starts the ids of two LLM calls drew both whole,
    // the one meant lost among them, and exited 0 as if it had picked
    // one. As git does for a short hash naming several objects: it is
    // said, the spans are listed with their ids, nothing is drawn.
    let line = agent_turns(&[
        (FIRST_TRACE, "b7ad6b71a0000001", "plan", "gpt-4o", 1),
        (SECOND_TRACE, "b7c0ffee00000002", "answer", "gpt-4o-mini", 8),
    ]);
    let root = sink_of("span-ambiguous", line);
    for args in [
        &["--span", "b7", "svc-1.jsonl"][..],
        &["--span", "B7", "--html", "page.html", "svc-1.jsonl"][..],
    ] {
        let out = show(&root, args, &[("NO_COLOR", "1")]);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(text(&out.stdout), "", "{args:?}: nothing drawn");
        let err = text(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines,
            [
                &format!(
                    "spanguard: --span {} is ambiguous: 2 span ids start with it; give more of the id:",
                    args[1]
                )[..],
                "  b7ad6b71a0000001  plan  gpt-4o",
                "  b7c0ffee00000002  answer  gpt-4o-mini",
            ],
            "{err}"
        );
    }
    assert!(!root.join("page.html").exists());
    // More digits, or another option that keeps one of them: that one.
    for args in [
        &["--span", "b7c", "svc-1.jsonl"][..],
        &["--span", "b7", "--trace", "1b2c", "svc-1.jsonl"][..],
    ] {
        let out = show(&root, args, &[("NO_COLOR", "1")]);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let drawn = text(&out.stdout);
        assert!(drawn.contains("PROMPT-OF-answer"), "{drawn}");
        assert!(!drawn.contains("PROMPT-OF-plan"), "{drawn}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// A span of `trace_line`: its id, its parent's (0: none), its name and
/// attributes.
type SpanOf<'a> = (u64, u64, &'a str, &'a [(&'a str, &'a str)]);

/// A sink line of one trace of service `svc`: `spans`, each 1 ms after
/// the one before it.
fn trace_line(spans: &[SpanOf]) -> String {
    let spans: Vec<String> = spans
        .iter()
        .enumerate()
        .map(|(k, (id, parent, name, attributes))| {
            let attrs: Vec<String> = attributes
                .iter()
                .map(|(key, v)| match v.parse::<i64>() {
                    Ok(n) => format!(r#"{{"key":"{key}","value":{{"intValue":"{n}"}}}}"#),
                    Err(_) => format!(
                        r#"{{"key":"{key}","value":{{"stringValue":{}}}}}"#,
                        json_string(v)
                    ),
                })
                .collect();
            let parent = if *parent == 0 {
                String::new()
            } else {
                format!(r#""parentSpanId":"{parent:016x}","#)
            };
            let start = T0 + k as u64 * MS;
            format!(
                concat!(
                    r#"{{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"{:016x}",{}"#,
                    r#""name":"{}","kind":1,"startTimeUnixNano":"{}","endTimeUnixNano":"{}","#,
                    r#""attributes":[{}]}}"#
                ),
                id,
                parent,
                name,
                start,
                start + 100 * MS,
                attrs.join(",")
            )
        })
        .collect();
    format!(
        concat!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc"}}}}]}},"#,
            r#""scopeSpans":[{{"scope":{{"name":"s"}},"spans":[{}]}}]}}]}}"#
        ),
        spans.join(",")
    )
}

#[test]
fn nested_instrumentations_count_each_llm_call_once() {
    // A span's counts count in its trace's sum only when no span under it
    // has a count (cli40 did so for the AI SDK's ai.usage.* alone). Before,
    // every GenAI or OpenInference count was added: a CrewAI agent's
    // running total over its LLM calls, each said again by the OpenAI
    // instrumentation under it, made three times the tokens spent; a
    // LangChain LLM span over OpenAI's span of the same call, twice.
    let gpt = |i: &'static str, o: &'static str| -> Vec<(&'static str, &'static str)> {
        vec![
            ("gen_ai.operation.name", "chat"),
            ("gen_ai.request.model", "gpt-4o"),
            ("gen_ai.usage.input_tokens", i),
            ("gen_ai.usage.output_tokens", o),
        ]
    };
    let oi = |kind: &'static str, i: &'static str, o: &'static str, t: &'static str| {
        vec![
            ("openinference.span.kind", kind),
            ("llm.model_name", "gpt-4o"),
            ("llm.token_count.prompt", i),
            ("llm.token_count.completion", o),
            ("llm.token_count.total", t),
        ]
    };
    let agent = [
        ("gen_ai.operation.name", "invoke_agent"),
        ("traceloop.span.kind", "agent"),
        ("gen_ai.usage.input_tokens", "500"),
        ("gen_ai.usage.output_tokens", "60"),
    ];
    let (llm1, llm2, call1, call2) = (
        gpt("200", "20"),
        gpt("300", "40"),
        gpt("200", "20"),
        gpt("300", "40"),
    );
    let (chat_model, completion) = (oi("LLM", "37", "5", "42"), oi("LLM", "37", "5", "42"));
    let (oi_agent, oi_llm) = (
        oi("AGENT", "1000", "100", "1100"),
        oi("LLM", "400", "40", "440"),
    );
    for (test, spans, line, fact, gap) in [
        (
            // OpenLLMetry's CrewAI: crewai.workflow > ROLE.agent (the
            // agent's running total) > MODEL.llm > the OpenAI
            // instrumentation's openai.chat, for two calls.
            "crewai",
            vec![
                (
                    1,
                    0,
                    "crewai.workflow",
                    &[("gen_ai.operation.name", "invoke_agent")][..],
                ),
                (2, 1, "Researcher.agent", &agent[..]),
                (3, 2, "gpt-4o.llm", &llm1[..]),
                (4, 3, "openai.chat", &call1[..]),
                (5, 2, "gpt-4o.llm", &llm2[..]),
                (6, 5, "openai.chat", &call2[..]),
            ],
            "Researcher.agent",
            "· tokens 500 in, 60 out\n",
            None,
        ),
        (
            // OpenInference's LangChain and OpenAI instrumentations on
            // together: a chain over ChatOpenAI over ChatCompletion, one
            // call said twice.
            "openinference-langchain",
            vec![
                (
                    1,
                    0,
                    "RunnableSequence",
                    &[("openinference.span.kind", "CHAIN")][..],
                ),
                (2, 1, "ChatOpenAI", &chat_model[..]),
                (3, 2, "ChatCompletion", &completion[..]),
            ],
            "ChatOpenAI",
            "· tokens 37 in, 5 out\n",
            None,
        ),
        (
            // An agent span whose LLM spans were all lost (sampled out, a
            // process killed): its own counts are the best known.
            "agent-alone",
            vec![(1, 0, "CodeAgent.run", &oi_agent[..])],
            "CodeAgent.run",
            "· tokens 1000 in, 100 out\n",
            None,
        ),
        (
            // Some of them kept: those kept count, not the agent's sum
            // again (which would count the kept ones twice), and the
            // trace says the agent's figure is more (a reader of a trace
            // with calls dropped would take 440 for all that was spent).
            "agent-some-kept",
            vec![
                (1, 0, "CodeAgent.run", &oi_agent[..]),
                (2, 1, "OpenAI.chat", &oi_llm[..]),
            ],
            "CodeAgent.run",
            "· tokens 400 in, 40 out",
            Some("CodeAgent.run says 1100; its calls here sum to 440: some lost?"),
        ),
    ] {
        let root = sink_of(test, trace_line(&spans));
        let printed = shown(&root, &["svc-1.jsonl"]);
        let said = match gap {
            Some(gap) => format!("{fact} ({gap})\n"),
            None => fact.to_string(),
        };
        assert!(printed.contains(&said), "{test}: {printed}");
        assert_eq!(
            printed.contains("some lost?"),
            gap.is_some(),
            "{test}: {printed}"
        );
        // Each span's line still says its own counts.
        let own = printed
            .lines()
            .find(|l| l.contains(line))
            .unwrap_or_else(|| panic!("{test}: no {line} line: {printed}"));
        assert!(own.contains(" tokens"), "{test}: {printed}");
        let path = root.join("page.html");
        let out = show(
            &root,
            &["--html", path.to_str().expect("path"), "svc-1.jsonl"],
            &[],
        );
        assert!(out.status.success(), "{test}: {}", text(&out.stderr));
        let page = std::fs::read_to_string(&path).expect("page");
        let words = fact.trim_start_matches("· tokens ").trim_end();
        assert!(
            page.contains(&format!(">{words} tokens</span>")),
            "{test}: {page}"
        );
        if let Some(gap) = gap {
            assert!(page.contains(&format!(">{gap}</span>")), "{test}: {page}");
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}

/// `v` as an OTLP/JSON AnyValue: what a structured attribute (a GenAI
/// event's body) is in a sink line.
fn any_value(v: &spanguard::export::json_value::JsonValue) -> String {
    use spanguard::export::json_value::JsonValue as J;
    match v {
        J::Null => "{}".to_string(),
        J::Bool(b) => format!(r#"{{"boolValue":{b}}}"#),
        J::Number(n) => format!(r#"{{"intValue":"{n}"}}"#),
        J::String(s) => format!(r#"{{"stringValue":{}}}"#, json_string(s)),
        J::Array(items) => {
            let items: Vec<String> = items.iter().map(any_value).collect();
            format!(r#"{{"arrayValue":{{"values":[{}]}}}}"#, items.join(","))
        }
        J::Object(members) => {
            let members: Vec<String> = members
                .iter()
                .map(|(k, v)| format!(r#"{{"key":{},"value":{}}}"#, json_string(k), any_value(v)))
                .collect();
            format!(r#"{{"kvlistValue":{{"values":[{}]}}}}"#, members.join(","))
        }
    }
}

/// A span of trace 0af7… in OTLP/JSON: `id` its span id's one byte
/// repeated, these string attributes, one event of `event` (its name, its
/// body as JSON) when given.
fn span_json(
    id: u8,
    name: &str,
    attributes: &[(&str, &str)],
    event: Option<(&str, &str)>,
) -> String {
    let attrs: Vec<String> = attributes
        .iter()
        .map(|(k, v)| {
            format!(
                r#"{{"key":"{k}","value":{{"stringValue":{}}}}}"#,
                json_string(v)
            )
        })
        .collect();
    let events = event.map_or(String::new(), |(name, body)| {
        let body = spanguard::export::json_value::JsonValue::parse(body.as_bytes()).expect("JSON");
        format!(
            r#","events":[{{"name":"{name}","timeUnixNano":"{}","attributes":[{{"key":"log.record.body","value":{}}}]}}]"#,
            T0 + u64::from(id) * MS,
            any_value(&body)
        )
    });
    format!(
        concat!(
            r#"{{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}","#,
            r#""parentSpanId":"0101010101010101","name":"{}","kind":3,"startTimeUnixNano":"{}","endTimeUnixNano":"{}","#,
            r#""attributes":[{}]{}}}"#
        ),
        id,
        id,
        id,
        id,
        id,
        id,
        id,
        id,
        name,
        T0 + u64::from(id) * MS,
        T0 + u64::from(id) * MS + MS,
        attrs.join(","),
        events
    )
}

#[test]
fn a_tool_result_is_named_by_its_call_elsewhere_in_the_trace() {
    // An agent's turn: the first LLM call's output asks for tools, the
    // next call's input holds their results. Each result says only the id
    // of the call it answers, and that call is in another span: the
    // results were drawn `tool result: 2 flights (id c1)`, `[tool,
    // tool_call_id call_9] 3 hotels`, no tool named. Each form `show`
    // reads, its call found across the trace by id and named.
    let root_span = r#"{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"0101010101010101","name":"agent.turn","startTimeUnixNano":"1796029200000000000","endTimeUnixNano":"1796029200010000000"}"#;
    let asks = span_json(
        2,
        "llm.plan",
        &[
            (
                "gen_ai.output.messages",
                r#"[{"role":"assistant","parts":[{"type":"tool_call","id":"c1","name":"flight_search","arguments":{"to":"LIS"}}]}]"#,
            ),
            ("gen_ai.completion.0.role", "assistant"),
            ("gen_ai.completion.0.tool_calls.0.id", "call_9"),
            ("gen_ai.completion.0.tool_calls.0.name", "hotel_search"),
            ("gen_ai.completion.1.role", "assistant"),
            (
                "gen_ai.completion.1.content",
                r#"[{"type":"tool_use","id":"tu1","name":"search","input":{}}]"#,
            ),
            (
                "ai.response.toolCalls",
                r#"[{"toolCallId":"ai1","toolName":"weather","input":"{}"}]"#,
            ),
        ],
        Some((
            "gen_ai.choice",
            r#"{"index":0,"message":{"role":"assistant","tool_calls":[{"id":"ev1","type":"function","function":{"name":"lookup","arguments":"{}"}}]}}"#,
        )),
    );
    let answers = span_json(
        3,
        "llm.answer",
        &[
            (
                "gen_ai.input.messages",
                r#"[{"role":"tool","parts":[{"type":"tool_call_response","id":"c1","response":"2 flights"}]},{"role":"tool","parts":[{"type":"tool_call_response","id":"nowhere","response":"?"}]}]"#,
            ),
            ("gen_ai.prompt.0.role", "tool"),
            ("gen_ai.prompt.0.tool_call_id", "call_9"),
            ("gen_ai.prompt.0.content", "3 hotels"),
            ("gen_ai.prompt.1.role", "user"),
            (
                "gen_ai.prompt.1.content",
                r#"[{"type":"tool_result","tool_use_id":"tu1","content":"9 hits"}]"#,
            ),
            (
                "ai.prompt.messages",
                r#"[{"role":"tool","content":[{"type":"tool-result","toolCallId":"ai1","output":{"type":"text","value":"sunny"}}]}]"#,
            ),
        ],
        Some(("gen_ai.tool.message", r#"{"content":"found","id":"ev1"}"#)),
    );
    let line = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc"}}}}]}},"scopeSpans":[{{"scope":{{"name":"s"}},"spans":[{root_span},{asks},{answers}]}}]}}]}}"#
    );
    let root = sink_of("tool-results-named", line);
    for args in [
        &["--span", "0303", "svc-1.jsonl"][..],
        &["--full", "svc-1.jsonl"][..],
    ] {
        let printed = shown(&root, args);
        let printed = &printed[printed.find("llm.answer").expect("the answers' span")..];
        assert_eq!(
            chat_block(
                printed,
                "gen_ai.input.messages = 2 messages (its JSON by role and part):"
            ),
            [
                "[tool] tool result flight_search: 2 flights (id c1)",
                // A call the trace does not hold: no name made up.
                "[tool] tool result: ? (id nowhere)",
            ],
            "{printed}"
        );
        assert_eq!(
            chat_block(printed, "gen_ai.prompt.N.* = 2 messages (by index):"),
            [
                "[tool, tool_call_id call_9, call hotel_search] 3 hotels",
                "[user] tool result search: 9 hits (id tu1)",
            ],
            "{printed}"
        );
        assert_eq!(
            chat_block(
                printed,
                "ai.prompt.messages = 1 message (its JSON by role and part):"
            ),
            ["[tool] tool result weather: sunny (id ai1)"],
            "{printed}"
        );
        assert_eq!(
            event_block(printed, "• gen_ai.tool.message"),
            ["[tool, id ev1, call lookup] found"],
            "{printed}"
        );
    }
    // The page's Chat table names them the same.
    let page = page_of(&root, "svc-1.jsonl");
    for said in [
        "[tool] tool result flight_search: 2 flights (id c1)",
        "[tool, tool_call_id call_9, call hotel_search] 3 hotels",
        "[tool, id ev1, call lookup] found",
    ] {
        assert!(page.contains(said), "{said}\n{page}");
    }
    let _ = std::fs::remove_dir_all(&root);
}
