//! `spanguard tail`: follows the local sink as spans arrive, one line a
//! span (or a waterfall per trace once its root span is in). The sink's
//! files are polled, new ones included; Ctrl-C (or SIGTERM) ends it with
//! status 0.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use spanguard::export::otlp_decode::{DecodedSpan, decode_json};

use super::args::Args;
use super::clock_text::{duration, utc};
use super::sources::{Kind, Loaded, Origin};
use super::terminal::{Style, clean, fit_padded, genai_words, render_trace, status_words};
use super::traces::{assemble, ending, hex, service_of};

pub const HELP: &str = "\
usage: spanguard tail [DIR] [options]

Follows the local sink (DIR, default SPANGUARD_SINK_DIR) as spans arrive and prints
each one on a line: when it ended (UTC), service, trace id, name, duration, span id
(what `spanguard show --span ID` takes), status. The sink writes a span when it
ends: lines come as the spans arrive, those that arrive together in the order they
ended, so the time column is when each ended (a span that arrives late, as a
process's last batch, may show a time before the line above it). New sink files
are picked up as processes start. Ctrl-C ends it.
Long values (a status message, an event's attributes) are cut to the width,
ending in …, and with --trees a run of events of one name is one line (×N);
`spanguard show --full` shows them whole from the same files.

options:
  --trees            instead, a waterfall per trace once its root span arrived
  --from-start       first show what the sink holds already, in the order the
                     spans ended (as a tail running then would have shown them):
                     each file is read in its own order, a piece at a time, and
                     the files' spans merged by when they ended
  --interval MS      how often to look for new spans (default 200)
  --color WHEN       auto (default), always or never

Exit status: 0 when stopped by Ctrl-C or SIGTERM, 2 on a usage or
configuration error.
";

/// Set by SIGINT and SIGTERM.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    // Relaxed: the loop only needs to see it eventually; nothing else is
    // published with it.
    STOP.store(true, Ordering::Relaxed);
}

/// The most read from one file per poll, so one huge write cannot stall
/// the others.
const MOST_PER_POLL: u64 = 16 << 20;
/// A line longer than this is skipped: longer than the library lets the
/// sink write (1 MiB by default, `sink_max_line_bytes`).
const MAX_LINE_BYTES: usize = spanguard::config::MAX_SINK_LINE_BYTES;
/// Spans held for `--trees` while their root has not arrived.
const MAX_HELD_SPANS: usize = 100_000;
/// The span ids kept to tell a new one's digits by: the latest this many.
const MAX_SEEN_IDS: usize = 1 << 20;
/// How much of one sink file `--from-start` reads at a time (a line
/// longer than this, up to `MAX_LINE_BYTES`, is read whole): the past is
/// printed as it is read, never held whole (a sink of many GB was
/// decoded into memory before its first line was printed).
const PAST_PIECE: usize = 256 << 10;
/// How much `--from-start` reads ahead of what it printed, all files
/// together: each file's piece is its share of this (one line at least,
/// which the merge by end time needs of each). A piece per file alone
/// held 256 KiB of each of a sink's thousands of files (one a process),
/// decoded, before the first line was printed.
const PAST_BUDGET: usize = 16 << 20;
/// Printed lines gathered before they are written out.
const OUT_CHUNK: usize = 64 << 10;

/// The span ids `tail` has seen, and how many hex digits of each it
/// prints: `show`'s rule (at least 8, one more than the most two ids
/// start alike), over the spans seen so far. Never fewer than before: a
/// later line does not print an id shorter than an earlier one that two
/// spans now share.
struct SeenIds {
    sorted: BTreeSet<[u8; 8]>,
    order: VecDeque<[u8; 8]>,
    digits: usize,
}

impl SeenIds {
    fn new() -> SeenIds {
        SeenIds {
            sorted: BTreeSet::new(),
            order: VecDeque::new(),
            digits: 8,
        }
    }

    fn add(&mut self, id: [u8; 8]) {
        if !self.sorted.insert(id) {
            return;
        }
        // Hex digits two ids start alike with: a half byte each.
        let alike = |other: &[u8; 8]| {
            (u64::from_be_bytes(id) ^ u64::from_be_bytes(*other)).leading_zeros() as usize / 4
        };
        let before = self.sorted.range(..id).next_back().map(alike);
        let after = self.sorted.range(id..).nth(1).map(alike);
        let most = before.max(after).unwrap_or(0);
        self.digits = self.digits.max((most + 1).clamp(8, 16));
        self.order.push_back(id);
        if self.order.len() > MAX_SEEN_IDS
            && let Some(old) = self.order.pop_front()
        {
            self.sorted.remove(&old);
        }
    }
}

/// Where reading a sink file stopped.
struct Follow {
    inode: u64,
    offset: u64,
    /// The start of a line whose end has not been written yet.
    partial: Vec<u8>,
    /// Where `partial` starts in the file.
    line_start: u64,
}

pub fn run(args: &[String]) -> ExitCode {
    let a = match Args::parse(
        args,
        &["--trees", "--from-start", "--help", "-h"],
        &["--interval", "--color"],
    ) {
        Ok(a) => a,
        Err(e) => return usage(&e),
    };
    if a.flag("--help") || a.positional.iter().any(|p| p == "-h") {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    let interval = match a.value("--interval").map(str::parse::<u64>) {
        None => Duration::from_millis(200),
        Some(Ok(ms)) if ms > 0 => Duration::from_millis(ms),
        Some(_) => return usage("--interval takes milliseconds"),
    };
    let style = match Style::detect(a.value("--color"), false, false) {
        Ok(s) => s,
        Err(e) => return usage(&e),
    };
    // With an endpoint set, a tracer sends its spans there and the default
    // sink stays empty: `tail` waited on it without a word, where `show`
    // says why it has nothing.
    let mut endpoint_set = false;
    let dir = match a.positional.as_slice() {
        [] => match super::settings::from_env() {
            Ok(config) => {
                endpoint_set = config.endpoint.is_some();
                config.sink_dir
            }
            Err(code) => return code,
        },
        [d] => PathBuf::from(d),
        _ => return usage("one directory at most"),
    };
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_stop_signal as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_stop_signal as *const () as libc::sighandler_t,
        );
    }
    let mut tailer = Tailer {
        dir,
        files: HashMap::new(),
        style,
        trees: a.flag("--trees"),
        held: Vec::new(),
        origins: Vec::new(),
        refused: HashMap::new(),
        ids: SeenIds::new(),
        past_budget: PAST_BUDGET,
    };
    // A newcomer's `tail build/demo-spans` after the demo printed nothing
    // (it shows spans as they arrive), and a misspelt directory was
    // followed without a word: the first line says both.
    let from_start = a.flag("--from-start");
    let shown = super::terminal::clean(&tailer.dir.display().to_string());
    let first_line = if !tailer.dir.is_dir() {
        format!(
            "spanguard: following {shown}, which does not exist yet: a program traced with \
             spanguard makes it when it writes its first spans there (Ctrl-C stops)"
        )
    } else if from_start {
        format!("spanguard: following {shown} (Ctrl-C stops)")
    } else {
        format!(
            "spanguard: following {shown}: spans from now on (--from-start first shows those \
             already there; Ctrl-C stops)"
        )
    };
    // The column heads under the first line, above every span line.
    let trees = tailer.trees;
    let say_first_lines = || {
        eprintln!("{first_line}");
        if endpoint_set {
            eprintln!("{}", super::settings::ENDPOINT_NOTE);
        }
        if !trees {
            eprintln!("{}", column_heads());
        }
    };
    if from_start {
        // The past is printed under them.
        say_first_lines();
        tailer.start(true);
    } else {
        // Said once the files' ends are taken, "from now on" is from the
        // line: said before, a span written just after it (by a script
        // that waits for the line, a test) was taken for the past.
        tailer.start(false);
        say_first_lines();
    }
    while !STOP.load(Ordering::Relaxed) {
        tailer.poll();
        let mut slept = Duration::ZERO;
        while slept < interval && !STOP.load(Ordering::Relaxed) {
            let step = (interval - slept).min(Duration::from_millis(50));
            std::thread::sleep(step);
            slept += step;
        }
    }
    tailer.poll();
    ExitCode::SUCCESS
}

fn usage(message: &str) -> ExitCode {
    eprintln!("spanguard tail: {message} (spanguard tail --help)");
    ExitCode::from(2)
}

struct Tailer {
    dir: PathBuf,
    files: HashMap<PathBuf, Follow>,
    style: Style,
    trees: bool,
    /// `--trees`: spans whose trace's root has not arrived.
    held: Vec<(DecodedSpan, usize)>,
    origins: Vec<Origin>,
    /// Why each file that could not be opened was not, as last said: said
    /// once, not at every poll.
    refused: HashMap<PathBuf, String>,
    /// Each line shows its span's id, as `show` does after each bar: one
    /// LLM call seen in the tail could not be opened whole with
    /// `show --span ID`.
    ids: SeenIds,
    /// `PAST_BUDGET` (less in tests).
    past_budget: usize,
}

impl Tailer {
    fn sink_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .map(|e| e.path())
                    // Judged lossily, as `show` judges them: a sink file
                    // whose name is no UTF-8 was never followed.
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| Kind::of_name(&n.to_string_lossy()))
                            == Some(Kind::Sink)
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Files there now are followed from their end, or (`from_start`)
    /// their past is printed first, then followed.
    fn start(&mut self, from_start: bool) {
        let mut pasts = Vec::new();
        let files = self.sink_files();
        let piece = self.past_piece(files.len());
        for path in files {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let offset = if from_start { 0 } else { meta.len() };
            if from_start {
                pasts.push(PastFile {
                    origin: self.origin_of(&path),
                    path: path.clone(),
                    inode: meta.ino(),
                    offset: 0,
                    end: meta.len(),
                    piece,
                    spans: VecDeque::new(),
                });
            }
            self.files.insert(
                path,
                Follow {
                    inode: meta.ino(),
                    offset,
                    partial: Vec::new(),
                    line_start: offset,
                },
            );
        }
        if from_start {
            self.print_past(pasts);
        }
    }

    /// Prints the past of the files `pasts` (each to the length it had at
    /// the start) in the order the spans ended, then follows each from
    /// where its past ended. Printed file by file, in the order of their
    /// names, three processes' spans came out as 13:19:04, 13:19:17,
    /// 13:18:40: the order they ended in is the one a tail running then
    /// would have shown them in (the sink writes a span when it ends), so
    /// the past reads as the live lines after it do. Each file is in that
    /// order already, so the files are merged a piece of each at a time:
    /// the whole past was decoded into memory first, gigabytes for a big
    /// sink, before a line was printed.
    fn print_past(&mut self, mut pasts: Vec<PastFile>) {
        // The file whose next span ended first; on a tie the file first
        // by name (as the files' order was kept before).
        let mut next: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
        for (i, past) in pasts.iter_mut().enumerate() {
            if let Some(end) = self.read_past(past) {
                next.push(Reverse((end, i)));
            }
        }
        let mut out = String::new();
        while let Some(Reverse((_, i))) = next.pop() {
            let past = &mut pasts[i];
            let Some(span) = past.spans.pop_front() else {
                continue;
            };
            let origin = past.origin;
            if let Some(end) = past
                .spans
                .front()
                .map(ended)
                .or_else(|| self.read_past(past))
            {
                next.push(Reverse((end, i)));
            }
            self.ids.add(span.span_id);
            self.show(span, origin, &mut out);
            if out.len() >= OUT_CHUNK {
                write_out(&mut out);
            }
        }
        write_out(&mut out);
        for past in pasts {
            // Polled from there: lines written since the start, and a
            // last line not yet whole then.
            if let Some(follow) = self.files.get_mut(&past.path)
                && follow.inode == past.inode
            {
                follow.offset = past.offset;
                follow.line_start = past.offset;
                follow.partial.clear();
            }
        }
    }

    /// How much of each of `files` sink files `--from-start` reads at a
    /// time: its share of the budget, `PAST_PIECE` at most, and 1 byte
    /// (one whole line) at least.
    fn past_piece(&self, files: usize) -> usize {
        (self.past_budget / files.max(1)).clamp(1, PAST_PIECE)
    }

    /// Reads the next piece of `past` (whole lines, to its length at the
    /// start), its spans in the order they ended; the end time of its
    /// first span, None when it has no more.
    fn read_past(&mut self, past: &mut PastFile) -> Option<u64> {
        while past.spans.is_empty() && past.offset < past.end {
            // Listed as a regular file: a link there now is not followed.
            let file = match super::sources::open_listed(&past.path) {
                Ok(file) => file,
                Err(e) => {
                    self.say_refused(&past.path, e);
                    past.offset = past.end;
                    break;
                }
            };
            // Replaced since the start: the poll reads the new one.
            if file.metadata().map(|m| m.ino()).ok() != Some(past.inode) {
                past.offset = past.end;
                break;
            }
            let lines = match read_lines(file, past.offset, past.end, past.piece) {
                Ok(lines) => lines,
                Err(_) => {
                    past.offset = past.end;
                    break;
                }
            };
            if lines.taken == 0 {
                // A last line not yet whole: left to the polls.
                break;
            }
            past.offset += lines.taken;
            if lines.skipped > 0 {
                eprintln!(
                    "spanguard: {}: {}",
                    clean(&past.path.display().to_string()),
                    skipped_words(lines.skipped)
                );
            }
            let mut spans = Vec::new();
            for line in lines.text.split(|&b| b == b'\n') {
                decode_line(&past.path, line, &mut spans);
            }
            // Stable: spans that ended at one time keep the file's order.
            spans.sort_by_key(ended);
            past.spans.extend(spans);
        }
        past.spans.front().map(ended)
    }

    /// The index of `path` among the origins, added when new.
    fn origin_of(&mut self, path: &Path) -> usize {
        match self.origins.iter().position(|o| o.path == path) {
            Some(i) => i,
            None => {
                self.origins.push(Origin {
                    kind: Kind::Sink,
                    path: path.to_path_buf(),
                    live_pid: None,
                });
                self.origins.len() - 1
            }
        }
    }

    fn poll(&mut self) {
        let arrived = self.read_all();
        self.print(arrived);
    }

    /// What every file had appended, with each span's origin.
    fn read_all(&mut self) -> Vec<(usize, DecodedSpan)> {
        let mut arrived = Vec::new();
        for path in self.sink_files() {
            let new_spans = self.read_new(&path);
            if new_spans.is_empty() {
                continue;
            }
            let origin = self.origin_of(&path);
            for span in new_spans {
                self.ids.add(span.span_id);
                arrived.push((origin, span));
            }
        }
        arrived
    }

    /// Prints spans read together in the order they ended, not file by
    /// file: every file is read before any line is printed, so spans
    /// that arrived together are told apart by the digits printed for
    /// each, and two processes' spans of one poll interleave as they
    /// ended.
    fn print(&mut self, mut arrived: Vec<(usize, DecodedSpan)>) {
        // Stable: spans that ended at one time keep their files' order.
        arrived.sort_by_key(|(_, s)| ended(s));
        let mut out = String::new();
        for (origin, span) in arrived {
            self.show(span, origin, &mut out);
        }
        write_out(&mut out);
    }

    /// A span's line (or, `--trees`, its trace once its root is in)
    /// added to `out`, its id's digits as many as the ids seen ask.
    fn show(&mut self, span: DecodedSpan, origin: usize, out: &mut String) {
        self.style.ids = self.ids.digits;
        if self.trees {
            self.hold(span, origin, out);
        } else {
            out.push_str(&span_line(&span, &self.style));
            out.push('\n');
        }
    }

    /// Says why `path` was not read, unless that was said last time: a
    /// file refused (a hard link to a third user's file, a link or a FIFO
    /// in a sink file's place) used to be skipped without a word, and its
    /// spans were missing with nothing to show why. One that went away
    /// since the listing is not worth a word.
    fn say_refused(&mut self, path: &Path, e: std::io::Error) {
        if e.kind() == std::io::ErrorKind::NotFound {
            return;
        }
        let why = e.to_string();
        if self.refused.get(path) != Some(&why) {
            eprintln!(
                "spanguard: {}",
                clean(&format!("{}: {why}", path.display()))
            );
            self.refused.insert(path.to_path_buf(), why);
        }
    }

    /// The spans in what was appended to `path` since the last look.
    fn read_new(&mut self, path: &Path) -> Vec<DecodedSpan> {
        // Listed as a regular file: a link there now is not followed.
        let mut file = match super::sources::open_listed(path) {
            Ok(file) => file,
            Err(e) => {
                self.say_refused(path, e);
                return Vec::new();
            }
        };
        self.refused.remove(path);
        let Ok(meta) = file.metadata() else {
            return Vec::new();
        };
        let follow = self.files.entry(path.to_path_buf()).or_insert(Follow {
            inode: meta.ino(),
            offset: 0,
            partial: Vec::new(),
            line_start: 0,
        });
        // Replaced or truncated: read it again from its start.
        if follow.inode != meta.ino() || meta.len() < follow.line_start {
            *follow = Follow {
                inode: meta.ino(),
                offset: 0,
                partial: Vec::new(),
                line_start: 0,
            };
        }
        // A line not yet whole is read again from its start whenever the
        // file changed: the sink takes back a line a full disk cut short
        // (`FileSink::append`) and writes the next one in its place, which
        // was read as the cut line's start followed by the new line's
        // rest (neither shown, "a line that is not OTLP/JSON"); and, when
        // the tail looked while the line was taken back, the whole file
        // was shown again as if it had been replaced. (Not a line of more
        // than half what a poll reads: that one would never be read past.)
        if !follow.partial.is_empty()
            && (follow.partial.len() as u64) < MOST_PER_POLL / 2
            && meta.len() != follow.offset
        {
            follow.offset = follow.line_start;
            follow.partial.clear();
        }
        if meta.len() == follow.offset {
            return Vec::new();
        }
        let mut chunk = Vec::new();
        let read = file
            .seek(SeekFrom::Start(follow.offset))
            .and_then(|_| file.take(MOST_PER_POLL).read_to_end(&mut chunk));
        let Ok(n) = read else {
            return Vec::new();
        };
        follow.offset += n as u64;
        follow.partial.extend_from_slice(&chunk);
        let mut spans = Vec::new();
        let mut start = 0;
        while let Some(end) = follow.partial[start..].iter().position(|&b| b == b'\n') {
            decode_line(path, &follow.partial[start..start + end], &mut spans);
            start += end + 1;
        }
        follow.partial.drain(..start);
        follow.line_start = follow.offset - follow.partial.len() as u64;
        if follow.partial.len() > MAX_LINE_BYTES {
            eprintln!(
                "spanguard: {}: {}",
                clean(&path.display().to_string()),
                skipped_words(1)
            );
            follow.partial.clear();
        }
        spans
    }

    /// `--trees`: keeps a span until its trace's root is in, then draws
    /// the trace.
    fn hold(&mut self, span: DecodedSpan, origin: usize, out: &mut String) {
        let root_of = span.is_root().then_some(span.trace_id);
        self.held.push((span, origin));
        if self.held.len() > MAX_HELD_SPANS {
            self.held.drain(..self.held.len() - MAX_HELD_SPANS);
        }
        let Some(trace_id) = root_of else {
            return;
        };
        let (done, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(s, _)| s.trace_id == trace_id);
        self.held = rest;
        let (traces, origins, _) = assemble(Loaded {
            origins: self.origins.clone(),
            spans: done,
            problems: Vec::new(),
        });
        for t in &traces {
            // Cut values end in an ellipsis; the help names show --full.
            render_trace(t, &origins, &self.style, out);
            out.push('\n');
        }
    }
}

/// A sink file's past that `--from-start` prints, read a piece at a
/// time up to the length the file had at the start (`Tailer::read_past`).
struct PastFile {
    path: PathBuf,
    origin: usize,
    inode: u64,
    /// Where the next piece starts: past the whole lines read.
    offset: u64,
    /// The file's length at the start; later lines are the polls'.
    end: u64,
    /// How much is read at a time (`Tailer::past_piece`).
    piece: usize,
    /// The spans of the piece read, not printed yet, in the order they ended.
    spans: VecDeque<DecodedSpan>,
}

/// When a span ended (its start, for an end before it).
fn ended(span: &DecodedSpan) -> u64 {
    span.end_unix_ns.max(span.start_unix_ns)
}

/// Writes what `out` holds to stdout, and empties it.
fn write_out(out: &mut String) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
    out.clear();
}

/// What is said of lines skipped for their length.
fn skipped_words(n: usize) -> String {
    match n {
        1 => "a line longer than 64 MiB: skipped".to_string(),
        n => format!("{n} lines longer than 64 MiB: skipped"),
    }
}

/// Adds the spans of one sink line to `spans`; a line that is no OTLP/JSON
/// is said, with its file.
fn decode_line(path: &Path, line: &[u8], spans: &mut Vec<DecodedSpan>) {
    let line = line.trim_ascii();
    if line.is_empty() {
        return;
    }
    match decode_json(line) {
        Ok(s) => spans.extend(s),
        Err(e) => eprintln!(
            "spanguard: {}: a line that is not OTLP/JSON: {}",
            clean(&path.display().to_string()),
            clean(&e.to_string())
        ),
    }
}

/// Whole lines read from a file (`read_lines`).
struct Lines {
    /// The lines, their newlines between them (the last one's left off).
    text: Vec<u8>,
    /// The bytes they took in the file, lines skipped included.
    taken: u64,
    /// Lines skipped for being longer than `MAX_LINE_BYTES`.
    skipped: usize,
}

/// The whole lines of `file` from `offset`, up to `end`: a piece of
/// `piece` bytes and, when no line ends in it, as much more as the line
/// takes. A line longer than `MAX_LINE_BYTES` is skipped, never held
/// (read through in pieces). A last line with no newline before `end` is
/// left out (`taken` 0 when that is all there is).
fn read_lines(file: std::fs::File, offset: u64, end: u64, piece: usize) -> std::io::Result<Lines> {
    let mut reader = std::io::BufReader::with_capacity(piece.clamp(8 << 10, PAST_PIECE), file);
    reader.seek(SeekFrom::Start(offset))?;
    let mut reader = reader.take(end.saturating_sub(offset));
    let mut text = Vec::new();
    let mut taken = 0u64;
    let mut skipped = 0;
    loop {
        let before = text.len();
        let n = reader
            .by_ref()
            .take((MAX_LINE_BYTES + 1) as u64)
            .read_until(b'\n', &mut text)?;
        if n == 0 {
            break;
        }
        if text.last() != Some(&b'\n') {
            if n > MAX_LINE_BYTES {
                // Longer than any sink line: read through to its end.
                text.truncate(before);
                let mut rest = 0u64;
                let mut sink = Vec::new();
                loop {
                    sink.clear();
                    let m = reader
                        .by_ref()
                        .take(PAST_PIECE as u64)
                        .read_until(b'\n', &mut sink)?;
                    rest += m as u64;
                    if m == 0 || sink.last() == Some(&b'\n') {
                        break;
                    }
                }
                if sink.last() != Some(&b'\n') {
                    // Not ended before `end`: the polls see the rest.
                    break;
                }
                taken += (n as u64) + rest;
                skipped += 1;
                if text.len() >= piece {
                    break;
                }
                continue;
            }
            // Not whole yet: left to the polls.
            text.truncate(before);
            break;
        }
        taken += n as u64;
        if text.len() >= piece {
            break;
        }
    }
    Ok(Lines {
        text,
        taken,
        skipped,
    })
}

/// The column heads of `span_line`'s lines, said once on stderr (the
/// lines on stdout stay data, one a span): the time is when each span
/// ended, the order the lines come in.
fn column_heads() -> String {
    format!(
        "{:<13}  {:<16}  {:<8}  {:<30} {:>9}  span id, status",
        "ended (UTC)", "service", "trace", "name", "duration"
    )
}

/// One span on one line.
fn span_line(span: &DecodedSpan, style: &Style) -> String {
    let end = ended(span);
    // When it ended: the lines come in that order (the start, shown
    // before, went backwards down the screen, a long span's line under a
    // short one's that started after it).
    let when = utc(end);
    let time = when.split(' ').nth(1).unwrap_or(&when);
    let (status, color) = status_words(span, ending(span, false));
    let genai = genai_words(span);
    // Children are indented a step: without the rest of the trace, that
    // is all of the tree a line can show.
    let name = format!(
        "{}{}",
        if span.is_root() { "" } else { "  " },
        clean(&span.name)
    );
    // The span's id after its duration, where `show` puts it after the
    // bar: a column of its own, dim, before the words that vary.
    let id = hex(&span.span_id);
    let id = &id[..style.ids.clamp(8, 16)];
    let mut line = format!(
        "{time}  {}  {}  {} {:>9}  {}",
        fit_padded(&clean(service_of(span)), 16),
        &hex(&span.trace_id)[..8],
        fit_padded(&name, 30),
        duration(end - span.start_unix_ns),
        match style.color {
            true => format!("\x1b[2m{id}\x1b[0m"),
            false => id.to_string(),
        }
    );
    if !status.is_empty() {
        line.push_str("  ");
        line.push_str(&match color {
            Some(c) if style.color => format!("\x1b[{c}m{status}\x1b[0m"),
            _ => status,
        });
    }
    if !genai.is_empty() {
        line.push_str("  ");
        line.push_str(&genai);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tailer of `dir` that has read nothing yet, printing plain text.
    fn plain_tailer(dir: PathBuf) -> Tailer {
        Tailer {
            dir,
            files: HashMap::new(),
            style: Style {
                color: false,
                width: 80,
                attributes: false,
                whole: false,
                span: None,
                ids: 0,
            },
            trees: false,
            held: Vec::new(),
            origins: Vec::new(),
            refused: HashMap::new(),
            ids: SeenIds::new(),
            past_budget: PAST_BUDGET,
        }
    }

    /// `tail` polls another user's sink (root following a user's agent):
    /// a FIFO they swap in for a sink file after the listing is skipped at
    /// once. Opening it used to wait for a writer for good, and Ctrl-C
    /// could not stop that wait.
    #[test]
    fn a_fifo_swapped_in_for_a_sink_file_is_skipped_without_waiting() {
        let (dir, fifo) = super::super::sources::fifo_as_sink_file("tail");
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        let tail_dir = dir.clone();
        std::thread::spawn(move || {
            let mut tailer = plain_tailer(tail_dir);
            let _ = tx.send(tailer.read_new(&path).len());
        });
        let spans = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("tail waited for a writer to the FIFO");
        assert_eq!(spans, 0);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// `--from-start` reads the past a piece at a time: a last line not
    /// yet whole is left to the polls, a line that is no JSON is handed on
    /// (and said by `decode_line`), and a line longer than any sink writes
    /// is read through and skipped, never held whole.
    #[test]
    fn the_past_is_read_in_whole_lines_and_an_overlong_one_is_skipped() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("sg-tail-past-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("svc-1.jsonl");
        let mut file = std::fs::File::create(&path).expect("create");
        file.write_all(b"first\n{not json\n").expect("write");
        let overlong_at = file.metadata().expect("stat").len();
        let piece = vec![b'x'; 1 << 20];
        for _ in 0..=MAX_LINE_BYTES >> 20 {
            file.write_all(&piece).expect("write");
        }
        file.write_all(b"\nafter\npartial").expect("write");
        drop(file);
        let end = std::fs::metadata(&path).expect("stat").len();
        let open = || std::fs::File::open(&path).expect("open");
        let partial_at = end - b"partial".len() as u64;
        let lines = read_lines(open(), 0, end, PAST_PIECE).expect("read");
        assert_eq!(lines.text, b"first\n{not json\nafter\n");
        assert_eq!((lines.taken, lines.skipped), (partial_at, 1));
        // From the overlong line: skipped, then "after"; the partial last
        // line left.
        let lines = read_lines(open(), overlong_at, end, PAST_PIECE).expect("read");
        assert_eq!(lines.text, b"after\n");
        assert_eq!(lines.skipped, 1);
        assert_eq!(lines.taken, partial_at - overlong_at);
        let lines = read_lines(open(), partial_at, end, PAST_PIECE).expect("read");
        assert_eq!((lines.text.len(), lines.taken), (0, 0));
        // An overlong line not ended before the end: left to the polls.
        let lines = read_lines(
            open(),
            overlong_at,
            end - b"\nafter\npartial".len() as u64,
            PAST_PIECE,
        )
        .expect("read");
        assert_eq!((lines.text.len(), lines.taken, lines.skipped), (0, 0, 0));
        std::fs::remove_dir_all(&dir).ok();
    }

    /// `--from-start` over a sink of many files (one a process) reads
    /// ahead of what it printed within one budget for all of them: a
    /// piece per file alone held 256 KiB of each, thousands of files'
    /// worth decoded before the first line was printed. Each file still
    /// gives one whole line at least, and every span still comes out.
    #[test]
    fn the_past_read_ahead_is_bounded_over_all_files_not_per_file() {
        let dir = std::env::temp_dir().join(format!("sg-tail-budget-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let line = |file: usize, n: usize| {
            format!(
                concat!(
                    r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"0af7651916cd43dd8448eb211c80319c","#,
                    r#""spanId":"{:08x}{:08x}","name":"s","startTimeUnixNano":"{}","endTimeUnixNano":"{}"}}]}}]}}]}}"#,
                    "\n"
                ),
                file,
                n,
                n,
                n + 1
            )
        };
        let (files, lines_each) = (40, 40);
        let mut longest = 0;
        for f in 0..files {
            let text: String = (0..lines_each).map(|n| line(f, n)).collect();
            longest = longest.max(line(f, lines_each).len());
            std::fs::write(dir.join(format!("svc-{f}.jsonl")), text).expect("write");
        }
        let mut tailer = plain_tailer(dir.clone());
        tailer.past_budget = 16 << 10;
        let paths = tailer.sink_files();
        assert_eq!(paths.len(), files);
        let piece = tailer.past_piece(paths.len());
        let mut pasts: Vec<PastFile> = paths
            .into_iter()
            .map(|path| {
                let meta = std::fs::metadata(&path).expect("stat");
                PastFile {
                    origin: tailer.origin_of(&path),
                    path,
                    inode: meta.ino(),
                    offset: 0,
                    end: meta.len(),
                    piece,
                    spans: VecDeque::new(),
                }
            })
            .collect();
        for past in &mut pasts {
            assert!(tailer.read_past(past).is_some());
        }
        // What print_past holds before its first line: the bytes read.
        let read_ahead: u64 = pasts.iter().map(|p| p.offset).sum();
        let bound = (tailer.past_budget + files * longest) as u64;
        assert!(
            read_ahead <= bound,
            "read {read_ahead} bytes ahead over {files} files, more than {bound}"
        );
        let mut spans = 0;
        for past in &mut pasts {
            while past.spans.pop_front().is_some() {
                spans += 1;
                if past.spans.is_empty() {
                    tailer.read_past(past);
                }
            }
        }
        assert_eq!(spans, files * lines_each);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A link to another sink file (another user's) swapped in for one of
    /// the followed directory's files after the listing: not followed, its
    /// spans used to be printed as that directory's.
    #[test]
    fn a_link_swapped_in_for_a_sink_file_is_not_followed() {
        let (dir, link) = super::super::sources::link_as_sink_file("tail");
        let mut tailer = plain_tailer(dir.clone());
        assert_eq!(tailer.read_new(&link).len(), 0);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The sink takes back a line that a full disk cut short and writes
    /// the next one in its place (`FileSink::append`). A tail that read
    /// the cut line's start read the new line from where the cut one
    /// ended: neither was shown ("a line that is not OTLP/JSON"), the new
    /// line's spans were missing; and one that looked while the line was
    /// taken back showed the whole file again.
    #[test]
    fn a_line_taken_back_and_written_again_is_read_whole_once() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("sg-tail-taken-back-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let line = |name: &str| {
            format!(
                concat!(
                    r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"0af7651916cd43dd8448eb211c80319c","#,
                    r#""spanId":"b7ad6b7169203331","name":"{}","startTimeUnixNano":"1","endTimeUnixNano":"2"}}]}}]}}]}}"#,
                    "\n"
                ),
                name
            )
        };
        let path = dir.join("svc-1.jsonl");
        std::fs::write(&path, line("first")).expect("write");
        let start = std::fs::metadata(&path).expect("stat").len();
        let mut tailer = plain_tailer(dir.clone());
        let names = |spans: Vec<DecodedSpan>| -> Vec<String> {
            spans.into_iter().map(|s| s.name).collect()
        };
        assert_eq!(names(tailer.read_new(&path)), ["first"]);
        let append = |bytes: &[u8]| {
            std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .expect("open")
                .write_all(bytes)
                .expect("append")
        };
        let truncate = || {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .expect("open")
                .set_len(start)
                .expect("take back")
        };
        // Cut short, seen by the tail, taken back; a longer line in its place.
        // Cut past where the two lines differ (their start is the same).
        let cut = line("cut short");
        let cut = &cut.as_bytes()[..cut.len() - 20];
        append(cut);
        assert!(tailer.read_new(&path).is_empty());
        truncate();
        append(line("written in its place, longer").as_bytes());
        assert_eq!(
            names(tailer.read_new(&path)),
            ["written in its place, longer"]
        );
        // Seen while taken back: nothing shown again.
        let start = std::fs::metadata(&path).expect("stat").len();
        append(cut);
        assert!(tailer.read_new(&path).is_empty());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open")
            .set_len(start)
            .expect("take back");
        assert!(tailer.read_new(&path).is_empty());
        append(line("next").as_bytes());
        assert_eq!(names(tailer.read_new(&path)), ["next"]);
        std::fs::remove_dir_all(&dir).ok();
    }
}
