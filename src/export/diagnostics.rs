//! What spanguard tells a person on stderr (OTEL_LOG_LEVEL): the first
//! export failure of a streak with its reason, the switch to the spool and
//! back, spans recovered from dead processes, spans dropped and why, where
//! the local sink writes. Only the exporter thread (or the command line)
//! writes here, never a signal handler or a recording call; repeated news
//! is rate-limited (what was held back is told when the streak ends and at
//! the stop, so the numbers add up), and no line holds a credential
//! (messages come from the transport's redacted text). News a program
//! needs and has no other event for (a backend's warning, a setting
//! ignored, spans not recorded, values cut or waiting for the payload
//! pool, a spool file's miscounted header, spans recovered from a dead
//! process) goes to the error callback
//! too, with the line's message, whatever OTEL_LOG_LEVEL says (`Teller`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::LogLevel;
use crate::pipeline::{ExportEvent, Pipeline};

/// `write_to_stderr` when fd 2 takes a line without waiting (a poll with
/// no timeout says it is writable), else nothing: for a line written by a
/// call that must return in time (a shutdown leaving a stuck exporter),
/// when a stderr pipe nobody reads may be what holds things up.
pub(crate) fn write_to_stderr_if_room(bytes: &[u8]) {
    let mut fd = libc::pollfd {
        fd: 2,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: poll on one pollfd we own, without waiting.
    let ready = unsafe { libc::poll(&mut fd, 1, 0) };
    if ready == 1 && fd.revents & libc::POLLOUT != 0 {
        write_to_stderr(bytes);
    }
}

/// The line a tracer disabled by OTEL_SDK_DISABLED=true writes when it is
/// made (warn and more): it records and sends nothing, which a variable
/// inherited from a shell, a CI template or an `.env` file did in silence,
/// the program's own "spans are in ..." line then naming no place.
pub fn disabled_line(level: LogLevel) -> Option<&'static str> {
    (level != LogLevel::None && LogLevel::Warn <= level).then_some(
        "spanguard: warn: OTEL_SDK_DISABLED=true: this tracer records and sends nothing (its \
         spans only pass an incoming context on); unset the variable to record\n",
    )
}

/// A count as a person reads it: "1 span", "2 spans", "0 spans". Every
/// line that says how many spans (lost, spooled, delivered, rejected,
/// replayed) formats the count through it; "1 spans lost" read as a
/// template no one had finished.
#[derive(Clone, Copy)]
pub struct Count<'a> {
    pub n: u64,
    pub one: &'a str,
    pub many: &'a str,
}

/// `n` spans: "1 span", "3 spans".
pub fn spans(n: u64) -> Count<'static> {
    Count {
        n,
        one: "span",
        many: "spans",
    }
}

/// `n` of a noun whose plural is `many`: `count(n, "file", "files")`.
pub fn count<'a>(n: u64, one: &'a str, many: &'a str) -> Count<'a> {
    Count { n, one, many }
}

impl std::fmt::Display for Count<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let noun = if self.n == 1 { self.one } else { self.many };
        write!(f, "{} {noun}", self.n)
    }
}

/// The name of signal `signal` as a person knows it ("SIGTERM"), or "a
/// signal" for one without a common name: for the lines that say how a
/// process or a span ended.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// The least time between two lines about the same ongoing trouble.
const REPEAT_EVERY: Duration = Duration::from_secs(60);

/// Writes `bytes` to file descriptor 2 with write(2) itself, never through
/// `std::io::stderr()`: that handle is a process-wide lock, held for the
/// whole write by the writing thread, and a write to a full pipe (a
/// supervisor that reads its workers' stderr slowly) blocks with it held.
/// A fork meanwhile gave the child that lock, held by a thread the child
/// does not have: the child's exporter hung at its first line for good,
/// and its flushes and shutdown with it (its spans neither sent, spooled
/// nor counted). A short write is finished and EINTR retried; any other
/// failure drops the line (there is nowhere left to say it).
pub(crate) fn write_to_stderr(bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: write(2) from a live buffer of `rest.len()` bytes.
        let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
        if n > 0 {
            rest = &rest[n as usize..];
        } else if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
        {
            continue;
        } else {
            return;
        }
    }
}

/// Where lines go: stderr, or a test's list.
enum Sink {
    Stderr,
    Memory(Vec<String>),
}

/// Who is told, besides stderr, of the news a program needs (the error
/// callback): whatever OTEL_LOG_LEVEL says, as the other events are, so
/// that a program that logs them itself, or a container whose stderr is
/// thrown away, still has them; rate-limited as the stderr lines are.
enum Teller {
    /// The command line: it has no callback.
    Nobody,
    /// An exporter's pipeline and its error callback.
    Callback(Arc<Pipeline>),
    /// A test's list.
    Memory(Vec<(ExportEvent, String)>),
}

/// The `spanguard replay` command that sends `dir` to `target`, a traces
/// URL: given with --endpoint where it ends in /v1/traces (which replay
/// takes as it is); any other path would have /v1/traces added there, so
/// it goes in OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, used as it is.
fn replay_command(target: &str, dir: &str) -> String {
    if target.trim_end_matches('/').ends_with("/v1/traces") {
        format!("spanguard replay --endpoint {target} {dir}")
    } else {
        format!("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT={target} spanguard replay {dir}")
    }
}

/// The `spanguard replay` command for what a process writing to the local
/// sink spooled: that process had no endpoint to name, so the command
/// names the option that takes one. `spanguard replay DIR` alone, run in
/// a shell without an endpoint variable (as such a shell is: the process
/// wrote to the local sink for having none), exited 2 "no endpoint".
fn replay_to_be_pointed(dir: &str) -> String {
    format!("spanguard replay --endpoint URL {dir}")
}

/// What became of `what` (spans) a server refused for who sent them or
/// where (401, 403, 404...: `reason`, the server's status and words with
/// the fix hint), kept in the spool `dir`: the exporter's words and
/// `spanguard replay`'s alike, so that a person who met the one knows the
/// other. Then how to send them: `refused_kept_sent_by`.
pub fn refused_and_kept(what: impl std::fmt::Display, dir: &str, reason: &str) -> String {
    format!("{what} refused and kept in the spool ({dir}) for a corrected setting: {reason}")
}

/// The command that sends spans kept in `dir` for a corrected setting
/// (`refused_and_kept`), once the setting is fixed.
pub fn refused_kept_sent_by(dir: &str) -> String {
    format!("`{} --headers KEY=VALUE`", replay_to_be_pointed(dir))
}

/// Where values emptied past `depth` levels of nesting were cut, as the
/// record a process leaves says it.
fn emptied_place(depth: usize) -> String {
    format!(
        "past {depth} levels of nesting (arrays and maps there emptied), as the server refused \
         them that deep (SPANGUARD_ATTRIBUTE_VALUE_DEPTH_LIMIT={depth} empties them before sending)"
    )
}

/// Values spans cut as they were recorded (`SpanRecord::values_cut_by`),
/// summed, by the limit that cut them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CutWhenRecorded {
    /// At the value length limit.
    pub length_limit: u64,
    /// Where the payload pool ran out.
    pub pool: u64,
    /// Past the value depth limit.
    pub depth_limit: u64,
    /// At a fixed limit: a name's or key's, a tracestate's, a scope's.
    pub fixed: u64,
}

/// Where values cut as they were recorded were cut, and what keeps them
/// whole (the words after "N values cut"), as README's settings name
/// them: `value_len` the value length limit in characters, `pool_mib`
/// the payload pool's size, `depth` the value depth limit.
fn cut_when_recorded_places(value_len: usize, pool_mib: u32, depth: usize) -> [String; 4] {
    [
        format!(
            "when recorded, at the attribute value length limit ({value_len} characters; \
             OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT or OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT raises \
             it, value_length_limit in the config; unset, there is none)"
        ),
        format!(
            "when recorded, where the payload pool ({pool_mib} MiB) was used up \
             (SPANGUARD_PAYLOAD_POOL_MIB raises it, payload_pool_mib in the config)"
        ),
        format!(
            "when recorded, past the value depth limit ({depth}; arrays and maps nested deeper \
             emptied; SPANGUARD_ATTRIBUTE_VALUE_DEPTH_LIMIT raises it, up to 128, \
             value_depth_limit in the config)"
        ),
        "when recorded, at a fixed limit: a name or key over 1024 bytes, a tracestate over \
         512, an instrumentation scope's name or version over 256 (no setting raises them)"
            .to_string(),
    ]
}

pub struct Diagnostics {
    level: LogLevel,
    sink: Sink,
    streak: Option<Streak>,
    /// Each cause of loss said so far, in full once: its later losses are
    /// counted and told by number alone (a 404 said once with its fix,
    /// not once a batch).
    losses: SaidOnce,
    /// Each warning a backend gave with spans it accepted (an OTLP partial
    /// success rejecting none), said so, as losses are.
    warnings: SaidOnce,
    /// Each refusal of the sender (401, 403, 404...) whose spans were
    /// kept for a sender set up otherwise, said so, as losses are.
    refusals: SaidOnce,
    buffer_full: Limiter,
    pool_used_up: Limiter,
    pool_waits: Limiter,
    /// The pool's size, as last told of waits (for `stopped`).
    pool_waits_mib: u32,
    values_cut: Limiter,
    /// The limit of the last cut held back, for the same line.
    last_cut_limit: String,
    /// Values emptied past a depth (`values_emptied`), and that depth.
    values_emptied: Limiter,
    emptied_depth: usize,
    miscounted: Limiter,
    /// The last spool file whose header miscounted, held back.
    last_miscounted: String,
    /// Whether this exporter sends what it spools once the target takes
    /// spans again: not when the target is the local sink.
    spool_read_back: bool,
    teller: Teller,
    /// News of the exporter's start (ignored settings, spans recovered
    /// from dead processes), said on stderr at once but kept for the
    /// callback, which the program sets only after the tracer (and this
    /// thread) exists: told it once it is set. At most
    /// `HELD_FOR_CALLBACK_MAX`.
    held_for_callback: Vec<(ExportEvent, String)>,
    /// Why this exporter's own spans first went to the spool (the failed
    /// export's first reason), for the record a process leaves
    /// (`export::outcome`); empty while none did.
    spooled_because: String,
    /// This exporter's own spans kept for a corrected setting (refused
    /// for their sender: 401, 404...), part of those it spooled: the
    /// record says them apart, as a process set up as this one never
    /// sends them (`spanguard why` said it would).
    refused_own: u64,
    /// Where values were cut, said once each with every value cut there
    /// (`ValuesCut`), for the record a process leaves: "nothing lost" of
    /// a run whose prompts arrived cut to the sink's line limit left its
    /// user with values they never got.
    cuts: ValuesCut,
    /// How the program raises its span slots, in its binding's words
    /// (`for_runtime`).
    raise_slots: &'static str,
    /// A sink line over `sink_max_line_bytes` was said (`long_sink_line`).
    long_sink_line_said: bool,
}

/// How a program raises its span slots, in the words of the binding that
/// runs in `runtime` (the `process.runtime.name` it reported): a Go
/// program has no max_queue_size, a Node one no max_open_spans. The C
/// ABI's field names, and the environment's, for the others.
fn raise_slots(runtime: Option<&str>) -> &'static str {
    match runtime {
        Some("go" | "gccgo" | "tinygo") => {
            "raise Config.MaxQueueSize or Config.MaxOpenSpans (SPANGUARD_MAX_OPEN_SPANS)"
        }
        Some("nodejs") => "raise maxQueueSize or maxOpenSpans (SPANGUARD_MAX_OPEN_SPANS)",
        Some("cpython" | "pypy") => {
            "raise max_queue_size or max_open_spans (SPANGUARD_MAX_OPEN_SPANS)"
        }
        _ => "raise max_queue_size or SPANGUARD_MAX_OPEN_SPANS",
    }
}

/// Where values were cut (the words after "N values cut"), each with the
/// values cut there: at most `ValuesCut::MOST` places, the rest summed.
#[derive(Default)]
struct ValuesCut {
    places: Vec<(String, u64)>,
    elsewhere: u64,
}

impl ValuesCut {
    /// Places kept apart: a request's or line's size, the spool's cap, a
    /// server's nesting limit, a recovered span's size, the four limits
    /// values are cut at as they are recorded, and two more.
    const MOST: usize = 10;

    fn add(&mut self, values: u64, place: &str) {
        if values == 0 {
            return;
        }
        if let Some(p) = self.places.iter_mut().find(|(at, _)| at == place) {
            p.1 = p.1.saturating_add(values);
        } else if self.places.len() < Self::MOST {
            self.places.push((place.to_string(), values));
        } else {
            self.elsewhere = self.elsewhere.saturating_add(values);
        }
    }
}

/// The most messages kept for a callback not set yet: a program that
/// never sets one, in a directory where dead workers' files keep coming,
/// holds no more than this (each is said on stderr all the same).
const HELD_FOR_CALLBACK_MAX: usize = 64;

/// A run of failed attempts, from the first failure to the next success.
struct Streak {
    started: Instant,
    failures: u64,
    /// Failures not yet told, and when the last line was written.
    untold: u64,
    told_at: Instant,
    spooling_told: bool,
    /// Where the failing attempts went (as said, without a password):
    /// named in the replay command said at the stop.
    target: String,
    /// The first failure's reason, the one the streak's line gave: the
    /// cause (a gRPC port, a refused connection) where a later attempt's
    /// says only how it ended (the deadline of a flush).
    first_reason: String,
}

/// How many causes of loss (and how many backend warnings) are told
/// apart; what comes after shares one rate limit (a bound on lines and
/// memory).
const MAX_LOSS_CAUSES: usize = 8;

/// One reason spans were lost for, or one warning a backend accepted them
/// with, said in full when first met.
struct LossCause {
    reason: String,
    limiter: Limiter,
    /// Every span lost for it so far.
    spans: u64,
}

/// Texts (causes of loss, backend warnings) each said in full when first
/// met, their later spans counted under them and told by number alone,
/// at most once a `REPEAT_EVERY`; past `MAX_LOSS_CAUSES` texts (ones that
/// vary with every batch would otherwise each be new) the rest share one
/// rate limit, told the old way with the last text.
#[derive(Default)]
struct SaidOnce {
    causes: Vec<LossCause>,
    /// Spans past `MAX_LOSS_CAUSES` texts, one rate limit for all.
    other: Limiter,
    /// The text of the last of `other` held back: told with their number
    /// when a streak ends or the exporter stops.
    last_held: String,
    /// Every span of `other`, and the last of their texts (kept past the
    /// telling, for `Diagnostics::loss_causes`).
    other_spans: u64,
    other_text: String,
}

/// What a `SaidOnce` held back: each cause's label and spans, then the
/// spans past `MAX_LOSS_CAUSES` texts with the last of their texts.
struct Untold {
    each: Vec<(String, u64)>,
    rest: Option<(u64, String)>,
}

/// Which `SaidOnce` of `Diagnostics` a line tells of.
#[derive(Clone, Copy)]
enum Said {
    Losses,
    Warnings,
    Refusals,
}

/// What `SaidOnce::note` found due to be said.
enum Due {
    /// The text in full, with this many spans.
    InFull(u64),
    /// This many more spans of the cause at this index, said above.
    More(usize, u64),
    /// Nothing now: held back by the rate limit.
    Held,
}

impl SaidOnce {
    /// Each text met so far with its spans, then those past
    /// `MAX_LOSS_CAUSES` texts with the last of them.
    fn texts(&self) -> impl Iterator<Item = (&str, u64)> {
        self.causes
            .iter()
            .map(|c| (c.reason.as_str(), c.spans))
            .chain((self.other_spans > 0).then_some((self.other_text.as_str(), self.other_spans)))
    }

    fn note(&mut self, now: Instant, n: u64, text: &str) -> Due {
        if let Some(i) = self.causes.iter().position(|c| alike(&c.reason, text)) {
            self.causes[i].spans += n;
            return match self.causes[i].limiter.due(now, n) {
                Some(total) => Due::More(i, total),
                None => Due::Held,
            };
        }
        if self.causes.len() < MAX_LOSS_CAUSES {
            let mut limiter = Limiter::default();
            let total = limiter.due(now, n).unwrap_or(n);
            self.causes.push(LossCause {
                reason: text.to_string(),
                limiter,
                spans: n,
            });
            return Due::InFull(total);
        }
        self.other_spans += n;
        self.other_text.clear();
        self.other_text.push_str(text);
        match self.other.due(now, n) {
            Some(total) => Due::InFull(total),
            None => {
                self.last_held.clear();
                self.last_held.push_str(text);
                Due::Held
            }
        }
    }

    /// What a repeat line calls the cause at `i`.
    fn label(&self, i: usize) -> String {
        cause_label(&self.causes[i].reason).to_string()
    }

    /// What the rate limits held back, told now (so not again): each
    /// cause's label and spans, then the rest's spans with the last text.
    fn untold(&mut self) -> Untold {
        let mut each = Vec::new();
        for i in 0..self.causes.len() {
            let untold = self.causes[i].limiter.untold();
            if untold > 0 {
                each.push((self.label(i), untold));
            }
        }
        let untold = self.other.untold();
        let rest = (untold > 0).then(|| (untold, std::mem::take(&mut self.last_held)));
        Untold { each, rest }
    }
}

/// Whether two texts are one cause: the same label (`cause_label`: "HTTP
/// 413" is not "HTTP 400"), and alike but for the numbers after it. A
/// request refused for its size, split to its spans and each cut, names
/// each span's smallest refused size: a server answering 413 to
/// everything made each lost span a cause of its own, each a line of
/// stderr and of `spanguard why`, and the causes after the first
/// `MAX_LOSS_CAUSES` had no line of their own. The first text is kept
/// (its figures are true of the spans counted with it too: any size
/// refused is over the limit).
fn alike(a: &str, b: &str) -> bool {
    fn masked(text: &str) -> impl Iterator<Item = char> + '_ {
        let mut last_digit = false;
        text.chars().filter_map(move |c| {
            let digit = c.is_ascii_digit();
            let keep = !(digit && last_digit);
            last_digit = digit;
            keep.then_some(if digit { '0' } else { c })
        })
    }
    a == b || (cause_label(a) == cause_label(b) && masked(a).eq(masked(b)))
}

/// What a repeat line calls a cause said above: its reason up to the first
/// `: `, `; ` or ` (`, which leaves out the server's text, the target and
/// the fix hint ("HTTP 404", "connection refused").
fn cause_label(reason: &str) -> &str {
    let end = [": ", "; ", " ("]
        .iter()
        .filter_map(|sep| reason.find(sep))
        .min()
        .unwrap_or(reason.len());
    let mut end = end.min(80);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// Files set aside said one by one (`SetAsideNews`): the first ones met.
pub const SET_ASIDE_SAID_IN_FULL: u64 = 5;

/// How many (directory, cause) groups a summary of files set aside tells
/// apart; the rest it counts together (a bound on its length and memory).
const SET_ASIDE_GROUPS_NAMED: usize = 8;

/// What the exporter tells of files set aside (each message a line on
/// stderr and one call of the error callback): the first
/// `SET_ASIDE_SAID_IN_FULL` by name with their reason in full, then the
/// rest summed up by directory and cause, at most once a `REPEAT_EVERY`,
/// what was held back told at the stop (`untold`). One line and one
/// callback a file was 100,000 of each for a spool directory of 100,000
/// torn or planted files; one summary a report would still be one a
/// replay pass, and a pass under load gives way every few files.
#[derive(Default)]
pub struct SetAsideNews {
    said_in_full: u64,
    limiter: Limiter,
    /// Files not said by name and not told yet, by (directory, cause).
    held: std::collections::BTreeMap<(String, String), u64>,
    /// Those past `SET_ASIDE_GROUPS_NAMED` groups.
    held_other: u64,
}

impl SetAsideNews {
    /// The messages due now for `files` (path, reason) just set aside.
    pub fn messages<'a>(
        &mut self,
        now: Instant,
        files: impl IntoIterator<Item = (&'a std::path::Path, &'a str)>,
    ) -> Vec<String> {
        let mut messages = Vec::new();
        let mut rest = 0u64;
        for (path, reason) in files {
            if self.said_in_full < SET_ASIDE_SAID_IN_FULL {
                self.said_in_full += 1;
                messages.push(format!("{} set aside, unread: {reason}", path.display()));
                continue;
            }
            rest += 1;
            let dir = path
                .parent()
                .map(|d| d.display().to_string())
                .unwrap_or_default();
            let key = (dir, cause_label(reason).to_string());
            if let Some(n) = self.held.get_mut(&key) {
                *n += 1;
            } else if self.held.len() < SET_ASIDE_GROUPS_NAMED {
                self.held.insert(key, 1);
            } else {
                self.held_other += 1;
            }
        }
        if rest > 0 && self.limiter.due(now, rest).is_some() {
            messages.extend(self.summary());
        }
        messages
    }

    /// What was held back, told now (at the stop), so not again.
    pub fn untold(&mut self) -> Option<String> {
        self.limiter.untold();
        self.summary()
    }

    fn summary(&mut self) -> Option<String> {
        let held = std::mem::take(&mut self.held);
        let other = std::mem::take(&mut self.held_other);
        let total = held.values().sum::<u64>() + other;
        if total == 0 {
            return None;
        }
        let mut named: Vec<String> = held
            .into_iter()
            .map(|((dir, cause), n)| format!("{n} in {dir} ({cause})"))
            .collect();
        if other > 0 {
            named.push(format!("{other} for other causes"));
        }
        Some(format!(
            "{} set aside, unread: {}",
            count(total, "more file", "more files"),
            named.join(", ")
        ))
    }
}

/// At most one line per `REPEAT_EVERY`, adding up what it held back.
#[derive(Default)]
struct Limiter {
    told_at: Option<Instant>,
    held_back: u64,
}

impl Limiter {
    /// Some(total held back, this `n` included) when a line is due.
    fn due(&mut self, now: Instant, n: u64) -> Option<u64> {
        self.held_back += n;
        if self
            .told_at
            .is_some_and(|t| now.saturating_duration_since(t) < REPEAT_EVERY)
        {
            return None;
        }
        self.told_at = Some(now);
        Some(std::mem::take(&mut self.held_back))
    }

    /// What was held back and not told yet (told now, so not again).
    fn untold(&mut self) -> u64 {
        std::mem::take(&mut self.held_back)
    }
}

impl Diagnostics {
    pub fn new(level: LogLevel) -> Diagnostics {
        Diagnostics {
            level,
            sink: Sink::Stderr,
            streak: None,
            losses: SaidOnce::default(),
            warnings: SaidOnce::default(),
            refusals: SaidOnce::default(),
            buffer_full: Limiter::default(),
            pool_used_up: Limiter::default(),
            pool_waits: Limiter::default(),
            pool_waits_mib: 0,
            values_cut: Limiter::default(),
            last_cut_limit: String::new(),
            values_emptied: Limiter::default(),
            emptied_depth: 0,
            miscounted: Limiter::default(),
            last_miscounted: String::new(),
            spool_read_back: true,
            teller: Teller::Nobody,
            held_for_callback: Vec::new(),
            spooled_because: String::new(),
            refused_own: 0,
            cuts: ValuesCut::default(),
            raise_slots: raise_slots(None),
            long_sink_line_said: false,
        }
    }

    /// Names the settings of the binding that runs in `runtime` (its
    /// `process.runtime.name`) where a line says what to raise.
    pub fn for_runtime(mut self, runtime: Option<&str>) -> Diagnostics {
        self.raise_slots = raise_slots(runtime);
        self
    }

    /// Tells `pipeline`'s error callback, besides stderr, of the news a
    /// program needs (`ExportEvent::BackendWarning` and after).
    pub fn telling(mut self, pipeline: Arc<Pipeline>) -> Diagnostics {
        self.teller = Teller::Callback(pipeline);
        self
    }

    /// The target is the local sink, whose exporter never reads the spool
    /// back: what it spools waits for `spanguard replay`.
    pub fn spool_not_read_back(mut self) -> Diagnostics {
        self.spool_read_back = false;
        self
    }

    /// Keeps lines, and what the callback would be told, in memory
    /// instead (tests).
    pub fn in_memory(level: LogLevel) -> Diagnostics {
        Diagnostics {
            sink: Sink::Memory(Vec::new()),
            teller: Teller::Memory(Vec::new()),
            ..Diagnostics::new(level)
        }
    }

    /// What an `in_memory` one told the callback.
    pub fn events(&self) -> &[(ExportEvent, String)] {
        match &self.teller {
            Teller::Memory(events) => events,
            _ => &[],
        }
    }

    pub fn lines(&self) -> &[String] {
        match &self.sink {
            Sink::Memory(lines) => lines,
            Sink::Stderr => &[],
        }
    }

    pub fn enabled(&self, level: LogLevel) -> bool {
        level != LogLevel::None && level <= self.level
    }

    fn emit(&mut self, level: LogLevel, message: &str) {
        if !self.enabled(level) {
            return;
        }
        let line = format!(
            "spanguard: {}: {}",
            level.name(),
            crate::span::printable::printable(message)
        );
        match &mut self.sink {
            // One write per line, so lines of threads and processes sharing
            // stderr do not interleave mid-line.
            Sink::Stderr => write_to_stderr(format!("{line}\n").as_bytes()),
            Sink::Memory(lines) => lines.push(line),
        }
    }

    /// A line at `level` on stderr, and `event` with the same message to
    /// the callback (whatever the level).
    fn emit_and_tell(&mut self, event: ExportEvent, level: LogLevel, message: &str) {
        self.emit(level, message);
        self.tell(event, message);
    }

    fn tell(&mut self, event: ExportEvent, message: &str) {
        self.tell_held();
        match &mut self.teller {
            Teller::Nobody => {}
            Teller::Callback(p) => p.report(event, message),
            Teller::Memory(events) => events.push((event, message.to_string())),
        }
    }

    /// A setting ignored (a variable's value or name): said on stderr now,
    /// and to the callback once one is set (`tell_held`).
    pub fn setting_ignored(&mut self, message: &str) {
        self.emit(LogLevel::Warn, message);
        self.tell_when_set(ExportEvent::SettingIgnored, message);
    }

    /// `event` for the callback now when one is set, else kept for the
    /// first one set (`tell_held`): news of the exporter's start.
    fn tell_when_set(&mut self, event: ExportEvent, message: &str) {
        if self.held_for_callback.len() < HELD_FOR_CALLBACK_MAX {
            self.held_for_callback.push((event, message.to_string()));
        }
        self.tell_held();
    }

    /// Tells the callback, once one is set, what was kept for it. The
    /// exporter asks at each pass and at its stop.
    pub fn tell_held(&mut self) {
        if self.held_for_callback.is_empty() {
            return;
        }
        match &mut self.teller {
            Teller::Nobody => self.held_for_callback.clear(),
            Teller::Callback(p) => {
                if p.callback.is_set() {
                    for (event, message) in std::mem::take(&mut self.held_for_callback) {
                        p.report(event, &message);
                    }
                }
            }
            Teller::Memory(events) => events.append(&mut self.held_for_callback),
        }
    }

    /// An attempt to send to `target` got no acceptable answer.
    pub fn attempt_failed(&mut self, target: &str, reason: &str) {
        let now = Instant::now();
        match &mut self.streak {
            None => {
                self.streak = Some(Streak {
                    started: now,
                    failures: 1,
                    untold: 0,
                    told_at: now,
                    spooling_told: false,
                    target: target.to_string(),
                    first_reason: reason.to_string(),
                });
                self.emit(
                    LogLevel::Warn,
                    &format!("export to {target} failed: {reason}"),
                );
            }
            Some(s) => {
                s.failures += 1;
                s.untold += 1;
                if now.saturating_duration_since(s.told_at) >= REPEAT_EVERY {
                    let untold = std::mem::take(&mut s.untold);
                    s.told_at = now;
                    self.emit(
                        LogLevel::Warn,
                        &format!(
                            "export to {target} still failing: {} more failed {}; the last: {reason}",
                            untold,
                            if untold == 1 { "attempt" } else { "attempts" }
                        ),
                    );
                }
            }
        }
    }

    /// A request was accepted: ends a failure streak.
    pub fn delivered(&mut self, target: &str) {
        if let Some(s) = self.streak.take() {
            // The streak's first loss was told with its number; the rest
            // were held back, and "7 spans lost" for a streak that lost 40
            // would mislead.
            self.tell_untold(Said::Losses);
            self.emit(
                LogLevel::Warn,
                &format!(
                    "export to {target}: delivering again after {} over {} s",
                    count(s.failures, "failed attempt", "failed attempts"),
                    s.started.elapsed().as_secs()
                ),
            );
        } else if self.enabled(LogLevel::Debug) {
            // Asked first: every accepted request comes here, and the
            // message would be formatted (allocated) for nothing.
            self.emit(
                LogLevel::Debug,
                &format!("a request was accepted by {target}"),
            );
        }
    }

    /// Spans went to the spool instead of the backend (`recovered`: spans
    /// recovered from a dead process, not this one's): a line at the
    /// first of a streak, and `ExportEvent::BatchSpooled` to the callback
    /// each time.
    pub fn spooled(&mut self, n: u64, recovered: bool, dir: &str, reason: &str) {
        let what = match recovered {
            false => count(n, "span", "spans"),
            true => count(n, "recovered span", "recovered spans"),
        };
        // The last attempt's reason alone ("abandoned at the deadline of
        // the flush") hid the cause the stderr line gave from a program
        // that logs only events: said with it, unless it says it already.
        let cause = match &self.streak {
            Some(s) if !reason.starts_with(s.first_reason.as_str()) => {
                format!(", after export to {} failed: {}", s.target, s.first_reason)
            }
            _ => String::new(),
        };
        self.tell(
            ExportEvent::BatchSpooled,
            &format!("{what} spooled to {dir} ({reason}){cause}"),
        );
        if !recovered && self.spooled_because.is_empty() {
            self.spooled_because = match &self.streak {
                Some(s) => format!("export to {} failed: {}", s.target, s.first_reason),
                None => reason.to_string(),
            };
        }
        let first_of_streak = match &mut self.streak {
            Some(s) if !s.spooling_told => {
                s.spooling_told = true;
                true
            }
            _ => false,
        };
        if first_of_streak && !self.spool_read_back {
            // "Until the backend answers" was untrue here: the sink took
            // spans again and those spooled stayed, unsaid.
            self.emit(
                LogLevel::Warn,
                &format!(
                    "keeping spans in the spool ({dir}), which a process writing to the local sink does not read back: `{}` sends them to the OTLP/HTTP endpoint at URL",
                    replay_to_be_pointed(dir)
                ),
            );
        } else if first_of_streak {
            self.emit(
                LogLevel::Warn,
                &format!("keeping spans in the spool ({dir}) until the backend answers"),
            );
        } else {
            self.emit(
                LogLevel::Debug,
                &format!("{} spooled to {dir} ({reason})", spans(n)),
            );
        }
    }

    /// Spans are lost for good. The first loss of each cause is said with
    /// its reason (and the fix hint the reason carries); later ones of the
    /// same cause by number alone, at most once a `REPEAT_EVERY`, the rest
    /// when a failure streak ends and at the stop.
    pub fn lost(&mut self, n: u64, reason: &str) {
        match self.losses.note(Instant::now(), n, reason) {
            Due::InFull(total) => {
                self.emit(LogLevel::Error, &format!("{} lost: {reason}", spans(total)))
            }
            Due::More(i, total) => self.tell_more(Said::Losses, &self.losses.label(i), total),
            Due::Held => {}
        }
    }

    /// The backend accepted `n` spans, all of them, with a warning
    /// `message` (an OTLP partial success rejecting none: the spec's way
    /// for a server to say "accepted, but sampled"). Said at warn level in
    /// full the first time, later spans with the same warning by number
    /// alone, at most once a `REPEAT_EVERY`, the rest at the stop. It was
    /// dropped in silence: nothing lost, and nothing said either.
    pub fn accepted_with_warning(&mut self, n: u64, message: &str) {
        match self.warnings.note(Instant::now(), n, message) {
            Due::InFull(total) => self.emit_and_tell(
                ExportEvent::BackendWarning,
                LogLevel::Warn,
                &format!(
                    "the backend accepted {} with a warning: {message}",
                    spans(total)
                ),
            ),
            Due::More(i, total) => self.tell_more(Said::Warnings, &self.warnings.label(i), total),
            Due::Held => {}
        }
    }

    /// `n` spans the backend refused for who sent them or where (401, 403,
    /// 404...: `reason`) were kept in the spool `dir` for a sender set up
    /// otherwise. Said at warn level in full the first time, with how to
    /// send them, later ones by number alone, as losses are: nothing is
    /// lost, but nothing arrives either until the setting is fixed.
    /// What to fix is the reason's own hint (a 404's names the endpoint
    /// variables, a 401's the headers): the line said "fix the key or the
    /// URL" after it too, the key to a 404 and the URL to a 401.
    pub fn kept_for_other_sender(&mut self, n: u64, recovered: bool, dir: &str, reason: &str) {
        let what = match recovered {
            false => count(n, "span", "spans"),
            true => count(n, "recovered span", "recovered spans"),
        };
        if !recovered {
            self.refused_own = self.refused_own.saturating_add(n);
            // `spanguard why` gave the reason of a backend that was down,
            // and none for a refusal, the one a user must act on.
            if self.spooled_because.is_empty() {
                self.spooled_because = format!("refused to their sender: {reason}");
            }
        }
        // The reason alone says nothing of the spool (a 401, a 404): what
        // became of the spans is said as the line says it.
        self.tell(
            ExportEvent::BatchSpooled,
            &refused_and_kept(what, dir, reason),
        );
        match self.refusals.note(Instant::now(), n, reason) {
            Due::InFull(total) => self.emit(
                LogLevel::Warn,
                &format!(
                    "{}; a process set up as this one never sends them: once the setting is \
                     fixed the next run sends them, or {} does",
                    refused_and_kept(spans(total), dir, reason),
                    refused_kept_sent_by(dir)
                ),
            ),
            Due::More(i, total) => self.tell_more(Said::Refusals, &self.refusals.label(i), total),
            Due::Held => {}
        }
    }

    /// Why this exporter's own spans first went to the spool, if any did:
    /// the failed export's first reason, with the fix hint it carries.
    pub fn spooled_because(&self) -> Option<&str> {
        (!self.spooled_because.is_empty()).then_some(self.spooled_because.as_str())
    }

    /// How many of this exporter's own spans were kept for a corrected
    /// setting (`kept_for_other_sender`), for the record a process leaves.
    pub fn refused_own(&self) -> u64 {
        self.refused_own
    }

    /// Each cause of loss met so far, its first message (the reason in
    /// full, with the fix hint it carries) and every span lost for it;
    /// past `MAX_LOSS_CAUSES` causes, the rest's total with the last of
    /// their reasons. For the record a process leaves (`export::outcome`).
    pub fn loss_causes(&self) -> impl Iterator<Item = (&str, u64)> {
        self.losses.texts()
    }

    /// Each warning the backend accepted spans with (`accepted_with_warning`:
    /// its own, or an answer that could not be read), its first message
    /// and every span accepted with it; past `MAX_LOSS_CAUSES` warnings,
    /// the rest's total with the last of them. For the record a process
    /// leaves: said on stderr alone, a run's "all delivered, but the
    /// answers could not be read" was gone with its terminal.
    pub fn warnings(&self) -> impl Iterator<Item = (&str, u64)> {
        self.warnings.texts()
    }

    /// Where values were cut, with the values cut there (the words follow
    /// "N values cut"), and the values cut at places past the most kept
    /// apart: for the record a process leaves (`export::outcome`). Values
    /// cut as they were recorded are in `values_truncated` alone.
    pub fn values_cut_places(&self) -> impl Iterator<Item = (&str, u64)> {
        let c = &self.cuts;
        c.places
            .iter()
            .map(|(at, n)| (at.as_str(), *n))
            .chain((c.elsewhere > 0).then_some((
                "at other limits (their lines on stderr say which)",
                c.elsewhere,
            )))
    }

    /// A `SaidOnce`'s `n` more spans for the text said above as `label`.
    fn tell_more(&mut self, said: Said, label: &str, n: u64) {
        let more = count(n, "more span", "more spans");
        match said {
            Said::Losses => self.emit(
                LogLevel::Error,
                &format!("{more} lost: {label} (as said above)"),
            ),
            Said::Warnings => self.emit_and_tell(
                ExportEvent::BackendWarning,
                LogLevel::Warn,
                &format!("the backend accepted {more} with a warning: {label} (as said above)"),
            ),
            Said::Refusals => self.emit(
                LogLevel::Warn,
                &format!(
                    "{more} refused and kept for a corrected setting: {label} (as said above)"
                ),
            ),
        }
    }

    /// What a `SaidOnce`'s rate limits held back, told now.
    fn tell_untold(&mut self, said: Said) {
        let Untold { each, rest } = match said {
            Said::Losses => self.losses.untold(),
            Said::Warnings => self.warnings.untold(),
            Said::Refusals => self.refusals.untold(),
        };
        for (label, n) in each {
            self.tell_more(said, &label, n);
        }
        let Some((n, last)) = rest else { return };
        let more = count(n, "more span", "more spans");
        match said {
            Said::Losses => self.emit(LogLevel::Error, &format!("{more} lost; the last: {last}")),
            Said::Warnings => self.emit_and_tell(
                ExportEvent::BackendWarning,
                LogLevel::Warn,
                &format!("the backend accepted {more} with other warnings; the last: {last}"),
            ),
            Said::Refusals => self.emit(
                LogLevel::Warn,
                &format!("{more} refused and kept for a corrected setting; the last: {last}"),
            ),
        }
    }

    /// `newly` more spans found every slot taken and were not recorded.
    pub fn buffer_full(&mut self, newly: u64) {
        if let Some(total) = self.buffer_full.due(Instant::now(), newly) {
            self.tell_buffer_full(total);
        }
    }

    fn tell_buffer_full(&mut self, total: u64) {
        self.emit_and_tell(
            ExportEvent::BufferFull,
            LogLevel::Warn,
            &format!(
                "{} dropped: every span slot was taken ({}, or see SPANGUARD_FULL_POLICY)",
                spans(total),
                self.raise_slots
            ),
        );
    }

    /// `newly` values found the payload pool (`mib` MiB) used up and
    /// waited for chunks (counted in `payload_waits`): whole in the end or
    /// not, each stalled its caller (a setter, a begin) up to
    /// `full_wait_ms`, with no other sign of it.
    pub fn pool_waited(&mut self, newly: u64, mib: u32) {
        self.pool_waits_mib = mib;
        if let Some(total) = self.pool_waits.due(Instant::now(), newly) {
            self.tell_pool_waited(total);
        }
    }

    fn tell_pool_waited(&mut self, total: u64) {
        let mib = self.pool_waits_mib;
        self.emit_and_tell(
            ExportEvent::ValuesWaited,
            LogLevel::Warn,
            &format!(
                "values waited for the payload pool ({mib} MiB) {total} time{}: each stalled its caller up to full_wait_ms for chunks to come back (payload_waits counts the waits, payload_waits_cut the values cut all the same); raise payload_pool_mib or SPANGUARD_PAYLOAD_POOL_MIB",
                if total == 1 { "" } else { "s" }
            ),
        );
    }

    /// Values spans cut as they were recorded (`cut`), kept apart by the
    /// limit that cut them with the setting that raises it, for the record
    /// a process leaves: a prompt cut at the value length limit was said
    /// there only among every limit that cuts values when recorded, and
    /// its user could not tell which setting to raise. (Said on stderr as
    /// they were before: the pool's warning, the program's own limits.)
    /// `limits` are the tracer's, `pool_mib` its payload pool's size.
    pub fn values_cut_when_recorded(
        &mut self,
        cut: &CutWhenRecorded,
        limits: &crate::span::limits::SpanLimits,
        pool_mib: u32,
    ) {
        if *cut == CutWhenRecorded::default() {
            return;
        }
        let places = cut_when_recorded_places(limits.value_len(), pool_mib, limits.value_depth());
        let counts = [cut.length_limit, cut.pool, cut.depth_limit, cut.fixed];
        for (values, place) in counts.into_iter().zip(&places) {
            self.cuts.add(values, place);
        }
    }

    /// A value found the payload pool (`mib` MiB) used up and was cut.
    pub fn pool_used_up(&mut self, mib: u32) {
        if self.pool_used_up.due(Instant::now(), 1).is_some() {
            self.emit_and_tell(
                ExportEvent::ValuesCut,
                LogLevel::Warn,
                &format!(
                    "the payload pool ({mib} MiB) was used up: long values were cut (values_truncated counts them); it must hold the text of every open and queued span (raise payload_pool_mib or SPANGUARD_PAYLOAD_POOL_MIB)"
                ),
            );
        }
    }

    /// `newly` values were cut to make their spans fit `limit` (which
    /// says what to raise to keep them whole): counted in
    /// `values_truncated`, and said, since a prompt cut in silence looks
    /// like the model's own.
    pub fn values_cut(&mut self, newly: u64, limit: &str) {
        if newly == 0 {
            return;
        }
        self.cuts.add(newly, &cut_place(limit));
        match self.values_cut.due(Instant::now(), newly) {
            Some(total) => self.tell_values_cut(total, limit),
            None => {
                self.last_cut_limit.clear();
                self.last_cut_limit.push_str(limit);
            }
        }
    }

    fn tell_values_cut(&mut self, total: u64, limit: &str) {
        self.emit_and_tell(
            ExportEvent::ValuesCut,
            LogLevel::Warn,
            &format!(
                "{} cut to fit {} into {limit} (values_truncated counts {})",
                count(total, "long value was", "long values were"),
                if total == 1 {
                    "its span"
                } else {
                    "their spans"
                },
                if total == 1 { "it" } else { "them" }
            ),
        );
    }

    /// `newly` attribute values of spans had their arrays and maps nested
    /// deeper than `depth` levels emptied, for a server that refused the
    /// spans for them: said apart from values cut to a size (a reader of
    /// "long values were cut" looks for a length problem), at most once a
    /// minute.
    pub fn values_emptied(&mut self, newly: u64, depth: usize) {
        if newly == 0 {
            return;
        }
        self.cuts.add(newly, &emptied_place(depth));
        self.emptied_depth = depth;
        if let Some(total) = self.values_emptied.due(Instant::now(), newly) {
            self.tell_values_emptied(total, depth);
        }
    }

    fn tell_values_emptied(&mut self, total: u64, depth: usize) {
        let (were, spans, them) = if total == 1 {
            ("was", "its span", "it")
        } else {
            ("were", "their spans", "them")
        };
        let text = format!(
            "{} nested deeper than {depth} levels {were} emptied past level {depth} (arrays and maps \
             there replaced by the empty value): the server refused {spans} for {them}, as a \
             decoder with a nesting limit does, and took {spans} so (values_truncated counts \
             {them}; SPANGUARD_ATTRIBUTE_VALUE_DEPTH_LIMIT={depth} empties them before sending)",
            count(total, "value", "values"),
        );
        self.emit_and_tell(ExportEvent::ValuesCut, LogLevel::Warn, &text);
    }

    /// `values` attribute values of the resource or an instrumentation
    /// scope, which every request carries, had their arrays and maps nested
    /// deeper than `depth` levels emptied for a server that refused every
    /// request for them. Said each time, which is once a resource or scope
    /// (`Delivery` counts each once).
    pub fn shared_values_emptied(&mut self, values: u64, depth: usize) {
        if values == 0 {
            return;
        }
        self.cuts.add(values, &emptied_place(depth));
        self.emit_and_tell(
            ExportEvent::ValuesCut,
            LogLevel::Warn,
            &format!(
                "the resource's or an instrumentation scope's attributes hold {} nested deeper \
                 than {depth} levels: the server refused every request for {}, as a decoder \
                 with a nesting limit does; {} emptied past level {depth} in every request from \
                 now on (values_truncated counts {} once; SPANGUARD_ATTRIBUTE_VALUE_DEPTH_LIMIT=\
                 {depth} empties them when set)",
                count(values, "value", "values"),
                if values == 1 { "it" } else { "them" },
                if values == 1 { "it is" } else { "they are" },
                if values == 1 { "it" } else { "them" },
            ),
        );
    }

    /// `values` attribute values of a resource or instrumentation scope
    /// set anew had their arrays and maps nested deeper than `depth`
    /// levels emptied before they were ever sent: the server refused
    /// every request for a value that deep in the one they replace
    /// (`shared_values_emptied`), not for these. Said each time, which is
    /// once a resource or scope set.
    pub fn shared_values_cut_up_front(&mut self, values: u64, depth: usize) {
        if values == 0 {
            return;
        }
        self.cuts.add(values, &emptied_place(depth));
        let (it, it_is) = if values == 1 {
            ("it", "it is")
        } else {
            ("them", "they are")
        };
        self.emit_and_tell(
            ExportEvent::ValuesCut,
            LogLevel::Warn,
            &format!(
                "the resource's or an instrumentation scope's attributes, set anew, hold {} \
                 nested deeper than {depth} levels: {it_is} emptied past level {depth} before \
                 sending, as the server refused every request for a value that deep in the \
                 ones they replace (it never saw {it}; values_truncated counts {it} once; \
                 SPANGUARD_ATTRIBUTE_VALUE_DEPTH_LIMIT={depth} empties them when set)",
                count(values, "value", "values"),
            ),
        );
    }

    /// A resource over half of `limit` (which says what raises it) is sent
    /// without `attributes` of its attributes. Said each time, which is
    /// once a resource: the encoder fits a resource once.
    pub fn resource_cut(&mut self, attributes: u64, limit: &str) {
        self.emit_and_tell(
            ExportEvent::ValuesCut,
            LogLevel::Warn,
            &format!(
                "the resource (service.name and resource attributes) took over half of {limit}: its spans are sent with service.name and the resource attributes that fit, {attributes} left out (dropped_attributes_count in each request; counted in attributes_dropped)"
            ),
        );
    }

    /// A spool file's header said `claimed` spans where its body holds
    /// `counted`: the body's count is the one counted. Said once a minute
    /// at most (a directory of such files is one trouble), adding up the
    /// files held back.
    pub fn spool_miscounted(&mut self, path: &str, claimed: u32, counted: u32) {
        let file = format!("{path} said {} and holds {counted}", spans(claimed.into()));
        match self.miscounted.due(Instant::now(), 1) {
            Some(files) => self.tell_miscounted(files, &file),
            None => self.last_miscounted = file,
        }
    }

    fn tell_miscounted(&mut self, files: u64, last: &str) {
        let what = if files == 1 {
            "a spool file's header miscounted its spans".to_string()
        } else {
            format!("{files} spool files' headers miscounted their spans")
        };
        self.emit_and_tell(
            ExportEvent::FileMiscounted,
            LogLevel::Warn,
            &format!(
                "{what} (the last: {last}; an older spanguard, a disk error, or someone else \
                 wrote it): counted as its body holds them"
            ),
        );
    }

    /// The exporter stops: what the rate limits held back is told now (a
    /// process that stops within a minute of its first loss would
    /// otherwise leave only the first batch's number on stderr), and,
    /// while the backend still fails, where the spans it could not send
    /// wait: `spool_left`, the spool directory when it holds some. The
    /// callback, set by now or never, is told what was kept for it.
    pub fn stopped(&mut self, spool_left: Option<&str>) {
        self.tell_held();
        self.tell_untold(Said::Losses);
        self.tell_untold(Said::Warnings);
        self.tell_untold(Said::Refusals);
        let full = self.buffer_full.untold();
        if full > 0 {
            self.tell_buffer_full(full);
        }
        let waited = self.pool_waits.untold();
        if waited > 0 {
            self.tell_pool_waited(waited);
        }
        let cut = self.values_cut.untold();
        if cut > 0 {
            let limit = std::mem::take(&mut self.last_cut_limit);
            self.tell_values_cut(cut, &limit);
        }
        let emptied = self.values_emptied.untold();
        if emptied > 0 {
            self.tell_values_emptied(emptied, self.emptied_depth);
        }
        let miscounted = self.miscounted.untold();
        if miscounted > 0 {
            let last = std::mem::take(&mut self.last_miscounted);
            self.tell_miscounted(miscounted, &last);
        }
        if let (false, Some(dir)) = (self.spool_read_back, spool_left) {
            self.emit(
                LogLevel::Warn,
                &format!(
                    "stopping with spans the local sink could not take in the spool ({dir}): `{}` sends them to the OTLP/HTTP endpoint at URL",
                    replay_to_be_pointed(dir)
                ),
            );
        } else if let (Some(streak), Some(dir)) = (&self.streak, spool_left) {
            // `spanguard replay DIR` alone, run in a shell without the
            // endpoint variable the program had, exited 2 "no endpoint":
            // the command names the endpoint the tracer was sending to.
            let replay = replay_command(&streak.target, dir);
            // Not "the next process that uses it": only one set up as
            // this one takes them (`SpoolDir::takes`); another project's
            // agent, a test's sink or a benchmark leaves them there.
            let sent_next_run =
                "a process set up as this one (the same endpoint, headers and TLS files) sends";
            // `spool_left` is what this sender takes, never its own
            // refused spans: beside them (a 401 run in a spool holding
            // another sender's refused batch) "sends them at its next
            // run" read as said of the spans the line above had just
            // said such a process never sends. Each kind said apart.
            let message = match self.refused_own {
                0 => format!(
                    "stopping with spans waiting in the spool ({dir}): {sent_next_run} them at its next run, or `{replay}` does"
                ),
                refused => {
                    let (wait, them) = if refused == 1 {
                        ("waits", "it")
                    } else {
                        ("wait", "them")
                    };
                    format!(
                        "stopping with spans waiting in the spool ({dir}): the {} refused to this process {wait} for a corrected setting (a process set up as this one never sends {them}, as said above); the others, not refused to it, {sent_next_run} at its next run, or `{replay}` does",
                        spans(refused)
                    )
                }
            };
            self.emit(LogLevel::Warn, &message);
        }
    }

    /// `n` spans that process `pid` left in `from` (a crash dump or flight
    /// file) when it died were recovered: sent, or kept in the spool.
    /// `signal` is the one that ended it as its file says, 0 when none is
    /// known. Said at info on stderr (good news), and to the callback,
    /// which the program had no other word of them from.
    pub fn recovered(&mut self, n: u64, pid: u32, signal: i32, from: &str) {
        let ended = match signal {
            s if s > 0 => format!("ended by signal {s}, {}", signal_name(s)),
            _ => "ended with no signal recorded: killed by SIGKILL or the OOM killer, or its \
                  shutdown left the exporter stuck"
                .to_string(),
        };
        let message = format!(
            "{} of process {pid} ({ended}) recovered from {from}",
            spans(n)
        );
        self.emit(LogLevel::Info, &message);
        // The first look is at the exporter's start, before the program
        // can have set a callback (the tracer must exist first): kept for
        // it, or a restarted worker was never told of its predecessor's.
        self.tell_when_set(ExportEvent::SpansRecovered, &message);
    }

    /// Files in the spool directory (or the sink's) could not be used:
    /// renamed, unread; `message` is one of `SetAsideNews::messages`. Told
    /// to the callback (`FileSetAside`) as it is said, or kept for the
    /// first one set: the first looks (recovery's, the outcome records'
    /// directory made) are at the exporter's start, before the program
    /// can have set one, and what they set aside was never told.
    pub fn set_aside(&mut self, message: &str) {
        self.emit(LogLevel::Warn, message);
        self.tell_when_set(ExportEvent::FileSetAside, message);
    }

    /// A span alone over `sink_max_line_bytes` is written whole on a sink
    /// line of `bytes`: fine for `spanguard show` and replay, but a
    /// Collector's otlpjsonfile receiver splits a line over its
    /// `max_log_size` and drops it. Said once a tracer, at the first.
    pub fn long_sink_line(&mut self, bytes: usize, limit: usize) {
        if std::mem::replace(&mut self.long_sink_line_said, true) {
            return;
        }
        self.warn(&format!(
            "a span longer than a local sink line ({limit} bytes, SPANGUARD_SINK_MAX_LINE_BYTES) \
             was written whole, on a line of {bytes} bytes (said once a tracer): a Collector's otlpjsonfile \
             receiver reading the sink drops a line over its max_log_size (1 MiB by default): \
             set its max_log_size to 64MiB to read every span whole"
        ));
    }

    pub fn warn(&mut self, message: &str) {
        self.emit(LogLevel::Warn, message);
    }

    pub fn info(&mut self, message: &str) {
        self.emit(LogLevel::Info, message);
    }

    pub fn error(&mut self, message: &str) {
        self.emit(LogLevel::Error, message);
    }
}

/// Where values were cut to make their spans fit `limit` (an
/// `Outcome::Cut`'s, which says what cut them and what keeps them whole),
/// as the record keeps it for `spanguard why` and `spanguard replay` says
/// it: "N values cut " and this.
pub fn cut_place(limit: &str) -> String {
    format!("to fit their spans into {limit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streak_is_told_once_and_its_end_once() {
        let mut d = Diagnostics::in_memory(LogLevel::Warn);
        for _ in 0..50 {
            d.attempt_failed("http://h/v1/traces", "connection refused");
            d.spooled(10, false, "/spool", "down");
        }
        d.delivered("http://h/v1/traces");
        d.delivered("http://h/v1/traces");
        assert_eq!(
            d.lines(),
            [
                "spanguard: warn: export to http://h/v1/traces failed: connection refused",
                "spanguard: warn: keeping spans in the spool (/spool) until the backend answers",
                "spanguard: warn: export to http://h/v1/traces: delivering again after 50 failed attempts over 0 s",
            ]
        );
    }

    /// A streak that lost 40 spans, 7 a batch, told "7 spans lost" and
    /// nothing more: the rest is told when it ends, and at the stop.
    #[test]
    fn the_replay_said_at_the_stop_names_the_endpoint_it_was_sending_to() {
        // `spanguard replay DIR` alone, in a shell without the program's
        // endpoint variable, exits 2 "no endpoint". A URL that ends in
        // /v1/traces goes to --endpoint (replay takes it as it is); any
        // other would have /v1/traces added there, so it goes in
        // OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, used as it is.
        for (target, replay) in [
            (
                "http://collector:4318/v1/traces",
                "`spanguard replay --endpoint http://collector:4318/v1/traces /spool`",
            ),
            (
                "https://***@api.example/otlp/traces",
                "`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=https://***@api.example/otlp/traces spanguard replay /spool`",
            ),
        ] {
            let mut d = Diagnostics::in_memory(LogLevel::Warn);
            d.attempt_failed(target, "connection refused");
            d.spooled(3, false, "/spool", "connection refused");
            d.stopped(Some("/spool"));
            let lines = d.lines();
            assert_eq!(
                lines.last().map(String::as_str),
                Some(
                    format!(
                        "spanguard: warn: stopping with spans waiting in the spool (/spool): a process set up as this one (the same endpoint, headers and TLS files) sends them at its next run, or {replay} does"
                    )
                    .as_str()
                ),
                "{lines:?}"
            );
        }
    }

    /// A 401 run in a spool that holds another sender's refused batch
    /// (an earlier run's 404): the stop said "a process set up as this
    /// one sends them at its next run", true of that batch (this sender
    /// takes it) but read as said of this run's spans, which the line
    /// above had just said such a process never sends. Each kind apart.
    #[test]
    fn the_stop_tells_this_runs_refused_spans_apart_from_the_others_waiting() {
        let refused = "HTTP 401: unauthorized (a key missing or wrong: OTEL_EXPORTER_OTLP_HEADERS)";
        for (n, kept) in [
            (
                13,
                "the 13 spans refused to this process wait for a corrected setting (a process set up as this one never sends them, as said above)",
            ),
            (
                1,
                "the 1 span refused to this process waits for a corrected setting (a process set up as this one never sends it, as said above)",
            ),
        ] {
            let mut d = Diagnostics::in_memory(LogLevel::Warn);
            d.attempt_failed("http://h/v1/traces", refused);
            d.kept_for_other_sender(n, false, "/spool", refused);
            d.stopped(Some("/spool"));
            let lines = d.lines();
            assert!(
                lines[lines.len() - 2].contains("a process set up as this one never sends them"),
                "{lines:?}"
            );
            assert_eq!(
                lines.last().map(String::as_str),
                Some(
                    format!(
                        "spanguard: warn: stopping with spans waiting in the spool (/spool): {kept}; the others, not refused to it, a process set up as this one (the same endpoint, headers and TLS files) sends at its next run, or `spanguard replay --endpoint http://h/v1/traces /spool` does"
                    )
                    .as_str()
                ),
                "{lines:?}"
            );
        }
    }

    #[test]
    fn losses_held_back_are_told_when_the_streak_ends_and_at_the_stop() {
        let mut d = Diagnostics::in_memory(LogLevel::Warn);
        let no_spool = "connection refused; the spool (/spool) could not take it: Not a directory";
        for _ in 0..3 {
            d.attempt_failed("http://h/v1/traces", "connection refused");
            d.lost(7, no_spool);
        }
        d.delivered("http://h/v1/traces");
        d.attempt_failed("http://h/v1/traces", "connection refused");
        d.spooled(7, false, "/spool", "connection refused");
        d.lost(5, "spool over its cap");
        d.lost(4, "spool over its cap");
        d.buffer_full(2);
        d.buffer_full(3);
        d.stopped(Some("/spool"));
        assert_eq!(
            d.lines(),
            [
                "spanguard: warn: export to http://h/v1/traces failed: connection refused",
                &format!("spanguard: error: 7 spans lost: {no_spool}"),
                "spanguard: error: 14 more spans lost: connection refused (as said above)",
                "spanguard: warn: export to http://h/v1/traces: delivering again after 3 failed attempts over 0 s",
                "spanguard: warn: export to http://h/v1/traces failed: connection refused",
                "spanguard: warn: keeping spans in the spool (/spool) until the backend answers",
                "spanguard: error: 5 spans lost: spool over its cap",
                "spanguard: warn: 2 spans dropped: every span slot was taken (raise max_queue_size or SPANGUARD_MAX_OPEN_SPANS, or see SPANGUARD_FULL_POLICY)",
                "spanguard: error: 4 more spans lost: spool over its cap (as said above)",
                "spanguard: warn: 3 spans dropped: every span slot was taken (raise max_queue_size or SPANGUARD_MAX_OPEN_SPANS, or see SPANGUARD_FULL_POLICY)",
                "spanguard: warn: stopping with spans waiting in the spool (/spool): a process set up as this one (the same endpoint, headers and TLS files) sends them at its next run, or `spanguard replay --endpoint http://h/v1/traces /spool` does",
            ]
        );
    }

    /// A URL where nothing takes traces (404) refuses every batch: stderr
    /// said the cause with its fix hint three times (the failed attempt,
    /// "13 spans lost", "1 more spans lost; the last" at the stop). Said
    /// once with its count and hint; the rest by number alone.
    #[test]
    fn a_final_refusal_is_said_once_with_its_hint_then_counted() {
        let refused = "HTTP 404: 404 page not found (nothing takes traces at this URL: \
                       OTEL_EXPORTER_OTLP_ENDPOINT is a base URL) (http://h/v1/traces)";
        let mut d = Diagnostics::in_memory(LogLevel::Warn);
        d.lost(13, refused);
        d.lost(13, refused);
        d.lost(1, refused);
        d.stopped(None);
        assert_eq!(
            d.lines(),
            [
                format!("spanguard: error: 13 spans lost: {refused}"),
                "spanguard: error: 14 more spans lost: HTTP 404 (as said above)".to_string(),
            ]
        );
    }

    /// A backend that accepts every span with a warning (an OTLP partial
    /// success rejecting none) has it said once, at warn level, the later
    /// spans summed under it; a second warning is said in full too; past
    /// the limit, the held-back rest is told at the stop with the last
    /// message. Nothing is said lost. It was all dropped in silence.
    #[test]
    fn a_backend_warning_is_said_once_then_counted() {
        let sampled = "spans older than 1h: accepted but sampled";
        let mut d = Diagnostics::in_memory(LogLevel::Warn);
        d.accepted_with_warning(10, sampled);
        d.accepted_with_warning(10, sampled);
        d.accepted_with_warning(3, "quota nearly used");
        d.accepted_with_warning(1, sampled);
        for n in 0..MAX_LOSS_CAUSES as u64 {
            d.accepted_with_warning(1, &format!("request {n} warned"));
        }
        d.accepted_with_warning(2, "request 99 warned");
        d.stopped(None);
        let mut expected = vec![
            format!("spanguard: warn: the backend accepted 10 spans with a warning: {sampled}"),
            "spanguard: warn: the backend accepted 3 spans with a warning: quota nearly used"
                .to_string(),
        ];
        for n in 0..MAX_LOSS_CAUSES as u64 - 2 {
            expected.push(format!(
                "spanguard: warn: the backend accepted 1 span with a warning: request {n} warned"
            ));
        }
        expected.extend([
            // The first past the limit is said (its own rate limit), the
            // next held back and told at the stop.
            format!(
                "spanguard: warn: the backend accepted 1 span with a warning: request {} warned",
                MAX_LOSS_CAUSES - 2
            ),
            "spanguard: warn: the backend accepted 11 more spans with a warning: spans older than \
             1h (as said above)"
                .to_string(),
            "spanguard: warn: the backend accepted 3 more spans with other warnings; the last: \
             request 99 warned"
                .to_string(),
        ]);
        assert_eq!(d.lines(), expected);
        assert_eq!(d.loss_causes().count(), 0, "a warning is no loss");
    }

    /// The lines of `d` that say something, without their "spanguard:
    /// warn: " prefix: what the callback is to be told.
    fn messages(d: &Diagnostics) -> Vec<String> {
        d.lines()
            .iter()
            .map(|l| l.trim_start_matches("spanguard: warn: ").to_string())
            .collect()
    }

    /// A backend's warning reaches the callback as it reaches stderr: the
    /// same messages, said in full once, then counted at most once a
    /// minute and at the stop. It was said on stderr alone, and a program
    /// that logs the callback's news never had it.
    #[test]
    fn a_backend_warning_is_told_to_the_callback_as_it_is_said() {
        let mut d = Diagnostics::in_memory(LogLevel::Warn);
        d.accepted_with_warning(10, "attributes over limit were truncated");
        d.accepted_with_warning(4, "attributes over limit were truncated");
        for n in 0..=MAX_LOSS_CAUSES as u64 {
            d.accepted_with_warning(1, &format!("request {n} warned"));
        }
        d.stopped(None);
        let told: Vec<String> = d
            .events()
            .iter()
            .map(|(e, m)| {
                assert_eq!(*e, ExportEvent::BackendWarning, "{m}");
                m.clone()
            })
            .collect();
        assert_eq!(told, messages(&d));
        assert_eq!(told.len(), MAX_LOSS_CAUSES + 3, "{told:?}");
    }

    /// What a program needs is told to the callback whatever the level
    /// (as the other events are): with OTEL_LOG_LEVEL=none, nothing on
    /// stderr, and every one of them to the callback.
    #[test]
    fn news_for_the_program_is_told_at_any_level() {
        let mut d = Diagnostics::in_memory(LogLevel::None);
        d.setting_ignored("OTEL_BSP_MAX_QUEUE_SIZE=lots: not a number; ignored");
        d.accepted_with_warning(2, "sampled");
        d.buffer_full(5);
        d.buffer_full(6);
        d.values_cut(3, "max_request_bytes (SPANGUARD_MAX_REQUEST_BYTES)");
        d.values_emptied(1, 4);
        d.shared_values_emptied(2, 4);
        d.shared_values_cut_up_front(1, 4);
        d.pool_used_up(8);
        d.resource_cut(7, "max_request_bytes");
        d.pool_waited(4, 8);
        d.pool_waited(2, 8);
        d.spool_miscounted("/s/a.sgspool", 0, 5);
        d.spool_miscounted("/s/b.sgspool", 9, 5);
        d.recovered(3, 4242, libc::SIGTERM, "/s/x.sgdump");
        d.recovered(2, 4243, libc::SIGSEGV, "/s/y.sgdump");
        d.stopped(None);
        assert!(d.lines().is_empty(), "{:?}", d.lines());
        let kinds: Vec<ExportEvent> = d.events().iter().map(|(e, _)| *e).collect();
        use ExportEvent::*;
        assert_eq!(
            kinds,
            [
                SettingIgnored,
                BackendWarning,
                BufferFull,
                ValuesCut,
                ValuesCut,
                ValuesCut,
                ValuesCut,
                ValuesCut,
                ValuesCut,
                ValuesWaited,
                FileMiscounted,
                // Each file, once: no rate limit (a dead process each).
                SpansRecovered,
                SpansRecovered,
                // The second buffer_full, pool wait and miscounted file,
                // held back by the minute's limit and told at the stop.
                BufferFull,
                ValuesWaited,
                FileMiscounted,
            ],
            "{:?}",
            d.events()
        );
        let told = |i: usize| d.events()[i].1.as_str();
        assert!(told(13).starts_with("6 spans dropped"), "{:?}", d.events());
        assert!(
            told(9).starts_with("values waited for the payload pool (8 MiB) 4 times"),
            "{:?}",
            d.events()
        );
        assert!(told(14).contains("(8 MiB) 2 times"), "{:?}", d.events());
        assert!(
            told(15).starts_with("a spool file's header miscounted its spans (the last: /s/b.sgspool said 9 spans and holds 5;"),
            "{:?}",
            d.events()
        );
        assert_eq!(
            told(11),
            "3 spans of process 4242 (ended by signal 15, SIGTERM) recovered from /s/x.sgdump"
        );
        assert_eq!(
            told(12),
            "2 spans of process 4243 (ended by signal 11, SIGSEGV) recovered from /s/y.sgdump"
        );
    }

    /// The stderr line and the callback's message are one text.
    #[test]
    fn the_callback_is_told_what_the_line_says() {
        let mut d = Diagnostics::in_memory(LogLevel::Warn);
        d.setting_ignored("OTEL_BSP_MAX_QUEUE_SIZE=lots: not a number; ignored");
        d.buffer_full(5);
        d.values_cut(3, "max_request_bytes (SPANGUARD_MAX_REQUEST_BYTES)");
        d.pool_used_up(8);
        d.resource_cut(7, "max_request_bytes");
        d.pool_waited(4, 8);
        d.spool_miscounted("/s/a.sgspool", 0, 5);
        let told: Vec<String> = d.events().iter().map(|(_, m)| m.clone()).collect();
        assert_eq!(told, messages(&d));
        // Spans recovered are good news: said at info, told all the same.
        let mut d = Diagnostics::in_memory(LogLevel::Info);
        d.recovered(3, 4242, 0, "/s/x.sgflight");
        let told: Vec<String> = d.events().iter().map(|(_, m)| m.clone()).collect();
        assert_eq!(
            told,
            [
                "3 spans of process 4242 (ended with no signal recorded: killed by SIGKILL or the OOM killer, or its shutdown left the exporter stuck) recovered from /s/x.sgflight"
            ]
        );
        assert_eq!(d.lines(), [format!("spanguard: info: {}", told[0])]);
    }

    /// Nothing is said of warnings below warn level.
    #[test]
    fn a_backend_warning_is_not_said_at_error_level() {
        let mut d = Diagnostics::in_memory(LogLevel::Error);
        d.accepted_with_warning(10, "sampled");
        d.stopped(None);
        assert!(d.lines().is_empty(), "{:?}", d.lines());
    }

    /// Each cause is said in full the first time, whatever came before it.
    #[test]
    fn different_causes_are_each_said() {
        let mut d = Diagnostics::in_memory(LogLevel::Warn);
        d.lost(7, "HTTP 401: no key (set the header)");
        d.lost(3, "HTTP 400: bad span (http://h)");
        d.lost(7, "HTTP 401: no key (set the header)");
        d.lost(2, "HTTP 400: bad span (http://h)");
        d.stopped(None);
        assert_eq!(
            d.lines(),
            [
                "spanguard: error: 7 spans lost: HTTP 401: no key (set the header)",
                "spanguard: error: 3 spans lost: HTTP 400: bad span (http://h)",
                "spanguard: error: 7 more spans lost: HTTP 401 (as said above)",
                "spanguard: error: 2 more spans lost: HTTP 400 (as said above)",
            ]
        );
    }

    /// Reasons that differ every time (a server's text with a request id)
    /// are not each a line: past `MAX_LOSS_CAUSES` they share one rate
    /// limit, and every span is still told by the stop.
    #[test]
    fn causes_past_the_limit_share_one_rate_limit() {
        let mut d = Diagnostics::in_memory(LogLevel::Warn);
        // Texts that differ in more than their numbers (`alike`): "aa",
        // "ab", ... "dv".
        let name = |i: u8| String::from_utf8(vec![b'a' + i / 26, b'a' + i % 26]).unwrap();
        for i in 0..100 {
            d.lost(1, &format!("HTTP 400: request {} refused", name(i)));
        }
        d.stopped(None);
        assert_eq!(d.lines().len(), MAX_LOSS_CAUSES + 2, "{:?}", d.lines());
        assert_eq!(
            d.lines().last().map(String::as_str),
            Some("spanguard: error: 91 more spans lost; the last: HTTP 400: request dv refused")
        );
        let told: u64 = d
            .lines()
            .iter()
            .map(|l| l["spanguard: error: ".len()..].split(' ').next().unwrap())
            .map(|n| n.parse::<u64>().unwrap())
            .sum();
        assert_eq!(told, 100);
    }

    /// Texts alike but for their numbers are one cause, said once with
    /// the first one's words and every span counted under it: a server
    /// answering 413 to everything named each lost span's own smallest
    /// refused size, a cause and a line each. A cause whose label differs
    /// ("HTTP 400", "HTTP 500") stays apart, as do other words.
    #[test]
    fn texts_alike_but_for_their_numbers_are_one_cause() {
        let mut d = Diagnostics::in_memory(LogLevel::Warn);
        let too_large = |n: u32| format!("HTTP 413: too big (the limit is under {n} bytes)");
        for n in [1102, 1109, 99_999, 7] {
            d.lost(1, &too_large(n));
        }
        d.lost(2, "HTTP 500: too big (the limit is under 7 bytes)");
        d.lost(3, "HTTP 413: too small (the limit is under 7 bytes)");
        d.stopped(None);
        let causes: Vec<(&str, u64)> = d.loss_causes().collect();
        let first = too_large(1102);
        assert_eq!(
            causes,
            [
                (first.as_str(), 4),
                ("HTTP 500: too big (the limit is under 7 bytes)", 2),
                ("HTTP 413: too small (the limit is under 7 bytes)", 3),
            ]
        );
        assert!(alike("x: a 1 b", "x: a 22 b"));
        assert!(!alike("x: a 1 b", "x: a 1b") && !alike("x: a1", "x: a1 "));
        // The label is all of a text without ": ", "; " or " (".
        assert!(!alike("connection 1 refused", "connection 2 refused"));
    }

    /// The local sink's exporter never reads the spool back: its lines
    /// say so, at the switch and at the stop, even after the sink took
    /// spans again.
    #[test]
    fn what_the_local_sink_spooled_is_said_to_wait_for_replay() {
        let mut d = Diagnostics::in_memory(LogLevel::Warn).spool_not_read_back();
        d.attempt_failed("file:/s/a.jsonl", "Not a directory");
        d.spooled(7, false, "/spool", "Not a directory");
        d.delivered("file:/s/a.jsonl");
        d.stopped(Some("/spool"));
        assert_eq!(
            d.lines(),
            [
                "spanguard: warn: export to file:/s/a.jsonl failed: Not a directory",
                "spanguard: warn: keeping spans in the spool (/spool), which a process writing to the local sink does not read back: `spanguard replay --endpoint URL /spool` sends them to the OTLP/HTTP endpoint at URL",
                "spanguard: warn: export to file:/s/a.jsonl: delivering again after 1 failed attempt over 0 s",
                "spanguard: warn: stopping with spans the local sink could not take in the spool (/spool): `spanguard replay --endpoint URL /spool` sends them to the OTLP/HTTP endpoint at URL",
            ]
        );
    }

    /// A batch spooled after its last attempt failed for another reason
    /// than the first (a gRPC port's answer, then the flush's deadline)
    /// tells the callback the cause the stderr line gave: the event said
    /// the deadline alone, and a program that logs only events never
    /// learnt it was sending to the wrong port.
    #[test]
    fn a_spooled_batch_tells_the_callback_the_cause_the_line_gave() {
        let mut d = Diagnostics::in_memory(LogLevel::Warn);
        let cause = "the server's answer is not HTTP (an OTLP/gRPC port answers so)";
        d.attempt_failed("http://h:4317/v1/traces", cause);
        d.attempt_failed("http://h:4317/v1/traces", "abandoned at the deadline");
        d.spooled(2, false, "/spool", "abandoned at the deadline; stopping");
        assert_eq!(
            d.lines()[0],
            format!("spanguard: warn: export to http://h:4317/v1/traces failed: {cause}")
        );
        let [(event, message)] = d.events() else {
            panic!("{:?}", d.events())
        };
        assert_eq!(*event, ExportEvent::BatchSpooled);
        assert_eq!(
            message,
            &format!(
                "2 spans spooled to /spool (abandoned at the deadline; stopping), after export to \
                 http://h:4317/v1/traces failed: {cause}"
            )
        );
        // The same cause is not said twice, nor a streak's once it ended.
        d.attempt_failed("http://h:4317/v1/traces", cause);
        d.spooled(1, true, "/spool", &format!("{cause}; stopping"));
        d.delivered("http://h:4317/v1/traces");
        d.attempt_failed("http://h:4317/v1/traces", "HTTP 503");
        d.spooled(3, false, "/spool", "HTTP 503");
        let told: Vec<&str> = d.events()[1..].iter().map(|(_, m)| m.as_str()).collect();
        assert_eq!(
            told,
            [
                format!("1 recovered span spooled to /spool ({cause}; stopping)").as_str(),
                "3 spans spooled to /spool (HTTP 503)",
            ]
        );
    }

    /// Values emptied past a depth are said as such, not as "long values
    /// were cut" (a reader looked for a length problem), apart from cuts
    /// to a size; a resource's said when met, the spans' once a minute
    /// and the rest at the stop.
    #[test]
    fn values_emptied_past_a_depth_are_said_as_nesting_not_length() {
        let mut d = Diagnostics::in_memory(LogLevel::Warn);
        d.values_emptied(1, 16);
        d.values_emptied(2, 16);
        d.values_cut(1, "max_request_bytes");
        d.shared_values_emptied(1, 16);
        d.shared_values_cut_up_front(2, 16);
        d.stopped(None);
        assert_eq!(
            d.lines(),
            [
                "spanguard: warn: 1 value nested deeper than 16 levels was emptied past level 16 (arrays and maps there replaced by the empty value): the server refused its span for it, as a decoder with a nesting limit does, and took its span so (values_truncated counts it; SPANGUARD_ATTRIBUTE_VALUE_DEPTH_LIMIT=16 empties them before sending)",
                "spanguard: warn: 1 long value was cut to fit its span into max_request_bytes (values_truncated counts it)",
                "spanguard: warn: the resource's or an instrumentation scope's attributes hold 1 value nested deeper than 16 levels: the server refused every request for it, as a decoder with a nesting limit does; it is emptied past level 16 in every request from now on (values_truncated counts it once; SPANGUARD_ATTRIBUTE_VALUE_DEPTH_LIMIT=16 empties them when set)",
                "spanguard: warn: the resource's or an instrumentation scope's attributes, set anew, hold 2 values nested deeper than 16 levels: they are emptied past level 16 before sending, as the server refused every request for a value that deep in the ones they replace (it never saw them; values_truncated counts them once; SPANGUARD_ATTRIBUTE_VALUE_DEPTH_LIMIT=16 empties them when set)",
                "spanguard: warn: 2 values nested deeper than 16 levels were emptied past level 16 (arrays and maps there replaced by the empty value): the server refused their spans for them, as a decoder with a nesting limit does, and took their spans so (values_truncated counts them; SPANGUARD_ATTRIBUTE_VALUE_DEPTH_LIMIT=16 empties them before sending)",
            ]
        );
    }

    #[test]
    fn losses_are_rate_limited_and_levels_filter() {
        let mut d = Diagnostics::in_memory(LogLevel::Error);
        d.lost(3, "HTTP 400");
        d.lost(4, "HTTP 400");
        d.buffer_full(9);
        d.recovered(5, 4242, libc::SIGTERM, "/spool");
        assert_eq!(d.lines(), ["spanguard: error: 3 spans lost: HTTP 400"]);
        let mut quiet = Diagnostics::in_memory(LogLevel::None);
        quiet.lost(1, "x");
        quiet.error("y");
        quiet.attempt_failed("t", "r");
        assert!(quiet.lines().is_empty());
    }

    /// Spool files whose headers miscounted: the first said, the rest of
    /// the minute held back and told, with the last, at the stop.
    #[test]
    fn miscounting_spool_files_are_said_once_a_minute() {
        let mut d = Diagnostics::in_memory(LogLevel::Warn);
        d.spool_miscounted("/s/a.sgspool", 0, 5);
        d.spool_miscounted("/s/b.sgspool", 9, 5);
        d.spool_miscounted("/s/c.sgspool", 4294967295, 5);
        assert_eq!(d.lines().len(), 1);
        d.stopped(None);
        assert_eq!(
            d.lines(),
            [
                "spanguard: warn: a spool file's header miscounted its spans (the last: /s/a.sgspool said 0 spans and holds 5; an older spanguard, a disk error, or someone else wrote it): counted as its body holds them",
                "spanguard: warn: 2 spool files' headers miscounted their spans (the last: /s/c.sgspool said 4294967295 spans and holds 5; an older spanguard, a disk error, or someone else wrote it): counted as its body holds them",
            ]
        );
    }

    /// One span is "1 span" in every line that counts spans ("1 spans
    /// lost" read as a template no one had finished), and one value, one
    /// attempt, one file the same.
    #[test]
    fn a_count_of_one_is_said_in_the_singular() {
        let mut d = Diagnostics::in_memory(LogLevel::Debug);
        d.attempt_failed("http://h/v1/traces", "connection refused");
        d.lost(1, "HTTP 400");
        d.spooled(1, false, "/spool", "down");
        d.spooled(1, false, "/spool", "down");
        d.lost(1, "HTTP 400");
        d.buffer_full(1);
        d.values_cut(1, "max_request_bytes");
        d.spool_miscounted("/s/a.sgspool", 1, 2);
        d.recovered(1, 4242, 0, "/flight");
        d.delivered("http://h/v1/traces");
        assert_eq!(
            d.lines(),
            [
                "spanguard: warn: export to http://h/v1/traces failed: connection refused",
                "spanguard: error: 1 span lost: HTTP 400",
                "spanguard: warn: keeping spans in the spool (/spool) until the backend answers",
                "spanguard: debug: 1 span spooled to /spool (down)",
                "spanguard: warn: 1 span dropped: every span slot was taken (raise max_queue_size or SPANGUARD_MAX_OPEN_SPANS, or see SPANGUARD_FULL_POLICY)",
                "spanguard: warn: 1 long value was cut to fit its span into max_request_bytes (values_truncated counts it)",
                "spanguard: warn: a spool file's header miscounted its spans (the last: /s/a.sgspool said 1 span and holds 2; an older spanguard, a disk error, or someone else wrote it): counted as its body holds them",
                "spanguard: info: 1 span of process 4242 (ended with no signal recorded: killed by SIGKILL or the OOM killer, or its shutdown left the exporter stuck) recovered from /flight",
                "spanguard: error: 1 more span lost: HTTP 400 (as said above)",
                "spanguard: warn: export to http://h/v1/traces: delivering again after 1 failed attempt over 0 s",
            ]
        );
        assert_eq!(
            [spans(0), spans(1), spans(2)].map(|c| c.to_string()),
            ["0 spans", "1 span", "2 spans"]
        );
    }

    /// A file name found in the spool directory is text from outside: a
    /// line break in it (or a line separator, for a log reader) must not
    /// start a line of ours, nor an escape sequence reach the terminal,
    /// nor a bidi override turn the rest of the line around.
    #[test]
    fn text_from_outside_cannot_forge_a_line_or_drive_the_terminal() {
        let mut d = Diagnostics::in_memory(LogLevel::Warn);
        let path = std::path::Path::new(
            "/spool/a\n\x1b[2Jspanguard: error: forged\u{9b}\u{2028}\u{202e}.sgspool",
        );
        for message in SetAsideNews::default().messages(Instant::now(), [(path, "bad header")]) {
            d.set_aside(&message);
        }
        assert_eq!(
            d.lines(),
            [
                "spanguard: warn: /spool/a\\n\\x1b[2Jspanguard: error: forged\\x9b\\u{2028}\\u{202e}.sgspool set aside, unread: bad header"
            ]
        );
    }

    /// 1,000 files set aside (a spool directory of torn or planted files)
    /// are said in 6 lines: 5 by name, then the rest by directory and
    /// cause; they were 1,000. Those set aside within the minute after are
    /// held back, and told at the stop in one line.
    #[test]
    fn many_files_set_aside_are_said_in_a_few_lines() {
        let paths: Vec<std::path::PathBuf> = (0..1000)
            .map(|i| std::path::PathBuf::from(format!("/spool/{i:04}.sgspool.unreadable")))
            .collect();
        let reasons = ["torn: 12 bytes of 60", "not a spool file (no magic)"];
        let files = |range: std::ops::Range<usize>| {
            paths[range.clone()]
                .iter()
                .zip(range)
                .map(|(p, i)| (p.as_path(), reasons[i % 2]))
        };
        let mut news = SetAsideNews::default();
        let now = Instant::now();
        let messages = news.messages(now, files(0..1000));
        assert_eq!(messages.len(), 6, "{messages:?}");
        assert_eq!(
            messages[0],
            "/spool/0000.sgspool.unreadable set aside, unread: torn: 12 bytes of 60"
        );
        assert_eq!(
            messages[5],
            "995 more files set aside, unread: 498 in /spool (not a spool file), \
             497 in /spool (torn)"
        );
        let mut d = Diagnostics::in_memory(LogLevel::Warn);
        for m in &messages {
            d.set_aside(m);
        }
        assert_eq!(d.lines().len(), 6);
        // Passes that gave way every 10 files, within the minute: held back.
        for start in (0..1000).step_by(10) {
            let later = now + Duration::from_secs(1);
            assert_eq!(
                news.messages(later, files(start..start + 10)),
                Vec::<String>::new()
            );
        }
        assert_eq!(
            news.untold().as_deref(),
            Some(
                "1000 more files set aside, unread: 500 in /spool (not a spool file), 500 in /spool (torn)"
            )
        );
        assert_eq!(news.untold(), None, "told once");
    }

    /// The groups a summary tells apart are bounded; the rest are counted.
    #[test]
    fn a_summary_of_files_set_aside_names_a_few_causes() {
        let paths: Vec<std::path::PathBuf> = (0..20)
            .map(|i| std::path::PathBuf::from(format!("/spool/{i}.unreadable")))
            .collect();
        let reasons: Vec<String> = (0..20).map(|i| format!("cause {i:02}")).collect();
        let mut news = SetAsideNews::default();
        let messages = news.messages(
            Instant::now(),
            paths
                .iter()
                .zip(&reasons)
                .map(|(p, r)| (p.as_path(), r.as_str())),
        );
        assert_eq!(messages.len(), 6, "{messages:?}");
        assert!(
            messages[5].starts_with("15 more files set aside, unread: 1 in /spool (cause 05), "),
            "{}",
            messages[5]
        );
        assert!(
            messages[5].ends_with(", 1 in /spool (cause 12), 7 for other causes"),
            "{}",
            messages[5]
        );
    }

    /// The dropped-spans line names the settings of the binding that runs
    /// (its process.runtime.name): a Go program was told to raise
    /// max_queue_size, which it has not.
    #[test]
    fn the_dropped_spans_line_names_the_bindings_settings() {
        for (runtime, raise) in [
            (
                Some("go"),
                "raise Config.MaxQueueSize or Config.MaxOpenSpans (SPANGUARD_MAX_OPEN_SPANS)",
            ),
            (
                Some("nodejs"),
                "raise maxQueueSize or maxOpenSpans (SPANGUARD_MAX_OPEN_SPANS)",
            ),
            (
                Some("cpython"),
                "raise max_queue_size or max_open_spans (SPANGUARD_MAX_OPEN_SPANS)",
            ),
            (None, "raise max_queue_size or SPANGUARD_MAX_OPEN_SPANS"),
        ] {
            let mut d = Diagnostics::in_memory(LogLevel::Warn).for_runtime(runtime);
            d.buffer_full(1);
            assert_eq!(
                d.lines(),
                [format!(
                    "spanguard: warn: 1 span dropped: every span slot was taken ({raise}, or see SPANGUARD_FULL_POLICY)"
                )],
                "{runtime:?}"
            );
        }
    }
}
