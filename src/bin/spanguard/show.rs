//! `spanguard show`: traces from the sink, the spool, crash dumps and
//! flight files, as waterfalls in the terminal or as one HTML page.

use std::path::PathBuf;
use std::process::ExitCode;

use spanguard::export::diagnostics::count;

use super::args::Args;
use super::clock_text::parse_moment;
use super::sources::load;
use super::terminal::{Style, render_trace};
use super::traces::{Filter, Node, SpanPick, Trace, assemble, describe_origins};

pub const HELP: &str = "\
usage: spanguard show [DIR|FILE...] [options]

Draws each trace as a waterfall: span names indented by parent, a time bar on the
trace's scale, start offset, duration, status (errors, spans interrupted by a
crash, spans ended at shutdown), events, and GenAI token counts summed per trace.

Reads sink files (*.jsonl, OTLP/JSON lines), spool files (*.sgspool), crash dumps
(*.sgdump) and flight files (*.sgflight), from the directories or files given, by
default the local sink and spool directories (SPANGUARD_SINK_DIR,
SPANGUARD_SPOOL_DIR). Nothing is sent, locked, moved or deleted.

options:
  --trace ID         traces whose id starts with ID
  --service NAME     traces with a span of service NAME
  --name TEXT        traces with a span whose name contains TEXT
  --since WHEN       traces that end at or after WHEN: a time (2026-11-30T12:00Z;
                     UTC unless a zone is given) or a duration ago (90s, 15m, 2h, 1d)
  --until WHEN       traces that start at or before WHEN
  --errors           traces with an error, an interrupted span, or a span the
                     program never ended (ended at shutdown)
  --last N           the N traces that ended last, of those the other options
                     keep (what the agent just did: --last 1)
  --attributes       every attribute under each span, each cut to the width (…)
  --full             every attribute, and every event and status message, whole,
                     a value's lines as lines (values are cut to the width, one
                     line each, otherwise, and a run of events
                     of one name is one line, ×N: a line says how many)
  --span ID          the trace holding the span whose id starts with ID, that
                     span with every attribute, event and status message whole
                     (one LLM call's prompt; each span's line shows its ID after
                     its bar); an ID that starts several spans' ids lists them
  --html OUT         write one self-contained HTML page to OUT (- for stdout); a new
                     file is readable by this user only, and OUT is refused when it
                     is (or links to) another user's file
  --color WHEN       auto (default: on a terminal, unless NO_COLOR is set),
                     always or never

Exit status: 0 when a trace was shown, 1 when none was (nothing there, nothing
matched, or --span's ID starts the ids of several spans: they are listed), 2 on
a usage or configuration error.
";

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

pub fn run(args: &[String]) -> ExitCode {
    let a = match Args::parse(
        args,
        &["--errors", "--attributes", "--full", "--help", "-h"],
        &[
            "--trace",
            "--service",
            "--name",
            "--since",
            "--until",
            "--html",
            "--color",
            "--last",
            "--span",
        ],
    ) {
        Ok(a) => a,
        Err(e) => return usage(&e),
    };
    if a.flag("--help") || a.positional.iter().any(|p| p == "-h") {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    let moment = |name: &str| -> Result<Option<u64>, String> {
        a.value(name)
            .map(|v| {
                parse_moment(v, now_ns()).ok_or_else(|| {
                    format!("{name} {v}: not a time (2026-11-30T12:00Z) or a duration (15m)")
                })
            })
            .transpose()
    };
    let span = match a.value("--span") {
        None => None,
        Some(v) => match SpanPick::parse(v) {
            Some(p) => Some(p),
            None => return usage(&format!("--span {v}: not a span id (1 to 16 hex digits)")),
        },
    };
    let filter = match (moment("--since"), moment("--until")) {
        (Ok(since_ns), Ok(until_ns)) => Filter {
            trace: a.value("--trace").map(str::to_string),
            service: a.value("--service").map(str::to_string),
            name: a.value("--name").map(str::to_string),
            since_ns,
            until_ns,
            errors: a.flag("--errors"),
            span,
        },
        (Err(e), _) | (_, Err(e)) => return usage(&e),
    };
    let last = match a.value("--last") {
        None => None,
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Some(n),
            _ => return usage(&format!("--last {v}: not a number of traces (1 or more)")),
        },
    };
    let style = match Style::detect(a.value("--color"), a.flag("--attributes"), a.flag("--full")) {
        Ok(s) => Style { span, ..s },
        Err(e) => return usage(&e),
    };

    // With an endpoint set, the library sends spans there and the local
    // sink stays empty: a user who looked here after pointing their agent
    // at a collector read only "no spans", and no reason.
    let mut endpoint_set = false;
    let mut defaults = None;
    let inputs: Vec<PathBuf> = if a.positional.is_empty() {
        let config = match super::settings::from_env() {
            Ok(c) => c,
            Err(code) => return code,
        };
        endpoint_set = config.endpoint.is_some();
        let (sink, spool) = (config.sink_dir, config.spool_dir);
        let present: Vec<PathBuf> = [sink.clone(), spool.clone()]
            .into_iter()
            .filter(|d| d.is_dir())
            .collect();
        if present.is_empty() {
            eprintln!(
                "spanguard: no spans yet: neither the local sink ({}) nor the spool ({}) exists",
                sink.display(),
                spool.display()
            );
            if endpoint_set {
                eprintln!("{}", super::settings::ENDPOINT_NOTE);
            }
            return ExitCode::FAILURE;
        }
        defaults = Some((sink, spool));
        present
    } else {
        a.positional.iter().map(PathBuf::from).collect()
    };

    let loaded = load(&inputs);
    // A problem names its file, whose name anyone who can write in the
    // directory chose: cleaned like any text from a span.
    for p in &loaded.problems {
        eprintln!("spanguard: {}", super::terminal::clean(p));
    }
    let read_anything = !loaded.origins.is_empty();
    let (traces, origins, duplicates) = assemble(loaded);
    let style = Style {
        ids: id_digits(&traces),
        ..style
    };
    let total = traces.len();
    // `--span ID` that starts several span ids (of the traces the other
    // options keep): each was drawn with its values whole, the one call
    // meant lost among them, and nothing said the ID was too short. As
    // git does for a short hash that names several objects: said, the
    // spans listed with their ids, nothing drawn.
    if let (Some(pick), Some(v)) = (filter.span, a.value("--span")) {
        let others = Filter {
            span: None,
            ..filter.clone()
        };
        let picked: Vec<&Node> = traces
            .iter()
            .filter(|t| others.keeps(t))
            .flat_map(|t| t.nodes.iter())
            .filter(|n| pick.picks(&n.span.span_id))
            .collect();
        if picked.len() > 1 {
            let v = super::terminal::clean(v);
            let mut ids: Vec<[u8; 8]> = picked.iter().map(|n| n.span.span_id).collect();
            ids.sort_unstable();
            ids.dedup();
            let twice = ids.len() < picked.len();
            // One span id in two traces (a program that makes its ids up,
            // a file copied into a test's): "2 span ids start with it;
            // give more of the id" was said of one id, which more digits
            // cannot tell apart; each is listed with its trace.
            if ids.len() == 1 {
                eprintln!(
                    "spanguard: --span {v}: span id {} is in {} traces; --trace ID picks one:",
                    super::traces::hex(&ids[0]),
                    picked.len()
                );
            } else {
                eprintln!(
                    "spanguard: --span {v} is ambiguous: {} span ids start with it; give more of \
                     the id:",
                    ids.len()
                );
            }
            for line in span_lines(picked, "give more digits to list fewer", twice) {
                eprintln!("  {line}");
            }
            if twice && ids.len() > 1 {
                eprintln!(
                    "spanguard: one span id is in more than one trace: --trace ID picks the trace"
                );
            }
            return ExitCode::FAILURE;
        }
    }
    // `--span ID` that names no span: a newcomer copies README's example
    // id; the spans the other options keep are listed with theirs, to
    // copy one (a narrow terminal's waterfall shows no ids).
    let other_spans = match filter.span {
        Some(_) if !traces.iter().any(|t| filter.keeps(t)) => {
            let others = Filter {
                span: None,
                ..filter.clone()
            };
            span_ids(traces.iter().filter(|t| others.keeps(t)))
        }
        _ => Vec::new(),
    };
    let mut shown: Vec<_> = traces.into_iter().filter(|t| filter.keeps(t)).collect();
    let matched = shown.len();
    if let Some(n) = last {
        shown = ended_last(shown, n);
    }
    let spans: usize = shown.iter().map(|t| t.nodes.len()).sum();

    let summary = {
        let last_of = if shown.len() < matched {
            format!(
                " (the {} that ended last of {matched} that matched)",
                shown.len()
            )
        } else {
            String::new()
        };
        let mut s = format!(
            "{} of {}{last_of}, {}, from {}",
            shown.len(),
            count(total as u64, "trace", "traces"),
            count(spans as u64, "span", "spans"),
            if read_anything {
                describe_origins(&origins)
            } else {
                "no file".to_string()
            }
        );
        if duplicates > 0 {
            s.push_str(&format!(
                "; {} found twice (delivered at least once) shown once",
                count(duplicates as u64, "span", "spans")
            ));
        }
        s
    };

    if let Some(out) = a.value("--html") {
        let page = super::html::page(&shown, &origins, &summary);
        let written = if out == "-" {
            use std::io::Write;
            std::io::stdout().write_all(page.as_bytes())
        } else {
            super::page_file::write(std::path::Path::new(out), page.as_bytes())
        };
        if let Err(e) = written {
            let e = match e.raw_os_error() {
                Some(libc::EFBIG) => super::too_large(&e.to_string()),
                _ => e.to_string(),
            };
            eprintln!("spanguard: writing {}: {e}", super::terminal::clean(out));
            return ExitCode::FAILURE;
        }
        if out != "-" {
            println!("wrote {out}: {summary}");
        }
    } else {
        let mut text = String::new();
        let mut cut = 0;
        let mut folded = 0;
        for t in &shown {
            let r = render_trace(t, &origins, &style, &mut text);
            cut += r.cut;
            folded += r.folded;
            text.push('\n');
        }
        print!("{text}");
        println!("{summary}");
        if folded > 0 {
            let events = super::terminal::plural(folded, "event");
            println!("{events} drawn as runs of one name (• name ×N): --full shows each");
        }
        if cut > 0 {
            // An ellipsis alone did not say that the value is whole in
            // the file, nor how to see it (a crash dump is not text).
            let values = super::terminal::plural(cut, "value");
            println!(
                "{values} cut to the width (…): --full shows them whole, --span ID one span's \
                 (its ID is under it)"
            );
        }
        // Hundreds of waterfalls scroll the one a person ran this for
        // (what the agent just did) out of sight; all are still drawn (a
        // pipe to grep or less wants every one), and the last line says
        // how to draw fewer.
        if last.is_none() && shown.len() > MANY_TRACES {
            println!(
                "{} traces drawn: --last {FEW_TRACES} draws the {FEW_TRACES} that ended last, \
                 --since 15m those of the last 15 minutes",
                shown.len()
            );
        }
    }
    if shown.is_empty() {
        if total == 0 {
            // Where it looked, and what writes there: "no spans found"
            // alone left a newcomer (whose `make demo` wrote elsewhere)
            // with nothing to try.
            match &defaults {
                Some((sink, spool)) => eprintln!(
                    "spanguard: no spans found in the local sink ({}) nor the spool ({})",
                    super::terminal::clean(&sink.display().to_string()),
                    super::terminal::clean(&spool.display().to_string())
                ),
                None => eprintln!("spanguard: no spans found in {}", looked_in(&inputs)),
            }
            if endpoint_set {
                eprintln!("{}", super::settings::ENDPOINT_NOTE);
            } else if defaults.is_some() {
                eprintln!("{NO_SPANS_NOTE}");
            }
        } else if let (Some(_), Some(v)) = (filter.span, a.value("--span")) {
            let v = super::terminal::clean(v);
            if other_spans.is_empty() {
                eprintln!(
                    "spanguard: no span id starts with {v}, and no trace matches the other options"
                );
            } else {
                eprintln!(
                    "spanguard: no span id starts with {v}; the spans here (--span takes the start of an id):"
                );
                for line in &other_spans {
                    eprintln!("  {line}");
                }
            }
        } else {
            eprintln!("spanguard: no trace matches");
        }
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Said when the default directories hold nothing and no endpoint is set.
const NO_SPANS_NOTE: &str = "spanguard: a program traced with spanguard writes its spans to that \
sink (SPANGUARD_SINK_DIR) as it runs, unless OTEL_EXPORTER_OTLP_ENDPOINT is set; to read spans \
written elsewhere: spanguard show DIR";

/// The most spans `--span` lists when its id names none.
const SPANS_LISTED: usize = 20;

/// The directories and files read, as the message that found nothing
/// says them.
fn looked_in(inputs: &[PathBuf]) -> String {
    inputs
        .iter()
        .map(|p| super::terminal::clean(&p.display().to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The fewest hex digits, at least 8, that start no two span ids alike
/// of all those read (not only the traces shown: another `--span` run
/// with other options must pick the same one span), as git shortens a
/// commit's hash. `--span` draws every span its digits start whole.
fn id_digits(traces: &[Trace]) -> usize {
    let mut ids: Vec<String> = traces
        .iter()
        .flat_map(|t| t.nodes.iter())
        .map(|n| super::traces::hex(&n.span.span_id))
        .collect();
    ids.sort_unstable();
    let shared =
        |a: &String, b: &String| a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let most_shared = ids
        .windows(2)
        .map(|w| shared(&w[0], &w[1]))
        .max()
        .unwrap_or(0);
    (most_shared + 1).clamp(8, 16)
}

/// Each span's id and name, GenAI calls (a model or tokens) first, at
/// most `SPANS_LISTED`, then how many more.
fn span_ids<'a>(traces: impl Iterator<Item = &'a Trace>) -> Vec<String> {
    span_lines(
        traces.flat_map(|t| t.nodes.iter()).collect(),
        "--name TEXT or --trace ID lists fewer",
        false,
    )
}

/// `spans`' ids and names, GenAI calls first, at most `SPANS_LISTED`,
/// then how many more and how to `list_fewer`; each with its trace's id
/// when `traces`.
fn span_lines(mut spans: Vec<&Node>, list_fewer: &str, traces: bool) -> Vec<String> {
    let rest = spans.len().saturating_sub(SPANS_LISTED);
    let words = |n: &Node| super::terminal::genai_words(&n.span);
    spans.sort_by_key(|n| words(n).is_empty());
    let mut lines: Vec<String> = spans
        .iter()
        .take(SPANS_LISTED)
        .map(|n| {
            let trace = match traces {
                true => format!("trace {}  ", super::traces::hex(&n.span.trace_id)),
                false => String::new(),
            };
            let line = format!(
                "{trace}{}  {}  {}",
                super::traces::hex(&n.span.span_id),
                super::terminal::clean(&n.span.name),
                words(n)
            );
            line.trim_end().to_string()
        })
        .collect();
    if rest > 0 {
        lines.push(format!("… and {rest} more ({list_fewer})"));
    }
    lines
}

/// More traces than a terminal shows at once: `show` then says how to
/// draw fewer.
const MANY_TRACES: usize = 20;
/// The `--last` that hint suggests.
const FEW_TRACES: usize = 5;

/// The `n` of `traces` that ended last (the later start, then the trace
/// id, between those that ended together), in the order they came.
fn ended_last(traces: Vec<Trace>, n: usize) -> Vec<Trace> {
    if traces.len() <= n {
        return traces;
    }
    let mut by_end: Vec<usize> = (0..traces.len()).collect();
    by_end.sort_by_key(|&i| (traces[i].end_ns, traces[i].start_ns, traces[i].trace_id));
    let mut keep = vec![false; traces.len()];
    for &i in &by_end[traces.len() - n..] {
        keep[i] = true;
    }
    traces
        .into_iter()
        .zip(keep)
        .filter_map(|(t, k)| k.then_some(t))
        .collect()
}

fn usage(message: &str) -> ExitCode {
    eprintln!("spanguard show: {message} (spanguard show --help)");
    ExitCode::from(2)
}
