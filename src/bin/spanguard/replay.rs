//! `spanguard replay`: sends what the spool directory holds — spool files,
//! and the spans dead processes left in crash dumps and flight files —
//! through the library's own delivery path (the exporter's retries,
//! Retry-After, splitting on 413, accounting), so a rule that holds for the
//! exporter holds here. A file is deleted only after a real answer from a
//! server; anything else keeps it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use spanguard::buffer::files::SetAside;
use spanguard::config::{Compression, LogLevel, Protocol, TracerConfig};
use spanguard::export::delivery::{Delivery, DeliveryHost, Outcome, ProbeCount};
use spanguard::export::diagnostics::{self, Diagnostics, SetAsideNews, count};
use spanguard::export::http::HttpTransport;
use spanguard::export::recovery;
use spanguard::export::request_encoder::RequestEncoder;
use spanguard::export::spool::{SpoolDir, count_spool_file};
use spanguard::export::transport::{Accepted, BodyFormat, SendError, Silence, Transport};

use super::args::Args;
use super::settings;

pub const USAGE: &str = "\
usage: spanguard replay [DIR] [--endpoint URL] [--headers name=value,...] [--timeout-ms N]
                        [--sender MARK]

Sends every batch waiting in the spool directory DIR (default: SPANGUARD_SPOOL_DIR,
else $XDG_STATE_HOME/spanguard/spool), oldest first, and the spans that dead
processes left there in crash dumps and flight files, to the OTLP/HTTP endpoint.
Each file is deleted once the backend answered for it; a connection error, a
DNS failure, a busy backend or a refusal of the sender or the URL (401, 403, 404,
405, 407: set --headers or --endpoint and run it again) keeps it. Safe to run
while tracers use the spool.

A tracer sends only the files a sender set up like its own wrote (the same
endpoint, headers and TLS files, or the same sink directory: spanguard spool
names each file's), and leaves the rest for theirs; spanguard replay sends
every file, whichever sender wrote it, to the endpoint it is given. What it
writes to DIR again (spans from a crash dump that failed for now) is named
for that endpoint and headers: a tracer set up so sends it, or the next replay.
With --sender, it sends only the files named for that sender (MARK, the 16 hex
digits spanguard spool shows for them): a tracer's whose API key was rotated
since it wrote them, say, to the endpoint and headers of today.

  --endpoint URL      http:// or https:// base URL (/v1/traces is appended) or full
                      traces URL; default OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else
                      OTEL_EXPORTER_OTLP_ENDPOINT
  --headers k=v,...   request headers; default OTEL_EXPORTER_OTLP_(TRACES_)HEADERS
  --timeout-ms N      one request's timeout; default OTEL_EXPORTER_OTLP_TIMEOUT or 10000
  --sender MARK       only the files named for the sender MARK (spanguard spool says it)
TLS settings come from OTEL_EXPORTER_OTLP_CERTIFICATE, ..._CLIENT_CERTIFICATE and
..._CLIENT_KEY (and their _TRACES_ forms); retries from OTEL_BSP_EXPORT_TIMEOUT;
messages on stderr from OTEL_LOG_LEVEL.

Requests of several spans stay within SPANGUARD_MAX_REQUEST_BYTES; a span alone
over it goes whole in a request of its own, up to 64 MiB or half
SPANGUARD_SPOOL_MAX_BYTES. Spans over that, or refused with 413, are sent with
their largest string and bytes values cut to fit; how many values were cut is
printed, and said on stderr.

A file that cannot be read (torn, not a spool file, a link or FIFO in its
place, too large) is set aside, renamed *.unreadable and never sent: the
first 5 are named on stderr, the rest counted by directory and cause.

The summary line counts the probes sent too: after a file failed for now (502,
503, 504, no answer) an empty request asks whether the backend is up; taken,
the file is the problem and the pass goes on; failed, the pass stops there.
After a failure with the server's Retry-After the probe waits for the time it
asked (the retry budget at most), then a second pass goes.

A server that refuses the sender or the URL (401, 403, 404, 405, 407, 431, a
permanent redirect) is said on stderr with its words, as the library says it:
those spans stay in DIR for a corrected --headers or --endpoint.

Exit status, one meaning each; when a run has several outcomes, the first that
applies of 4, 3, 1:
  0  every span was delivered (values cut included)
  1  spans stay in DIR for a backend away (no answer, 429, 5xx): run it again
     later, as it is
  2  a usage error, or a DIR that another user owns (run it as that user)
  3  the server refused the sender or the URL and its spans stay in DIR: run as
     it is, it is refused again; fix --headers, --endpoint or the TLS files
  4  spans were lost for good (the server refused them for what they hold, or
     rejected them): counted above, and no run brings them back
A loss is said once, by the run that met it, and so goes first; what stays in
DIR is said again by the next run, whose status is then 3, 1 or 0 for it. A
script that runs it again on 1 stops at a refusal (3) and at a loss (4).";

/// What the command was asked to do.
struct Options {
    dir: PathBuf,
    url: String,
    config: TracerConfig,
    /// Only the files named for this sender (`SpoolDir::take_only_for`).
    sender: Option<u64>,
}

/// The options over `config` (the library's settings from the environment).
fn parse(args: &[String], mut config: TracerConfig) -> Result<Options, String> {
    let args = Args::parse(
        args,
        &[],
        &["--endpoint", "--headers", "--timeout-ms", "--sender"],
    )?;
    if args.positional.len() > 1 {
        return Err(format!("unexpected argument {}", args.positional[1]));
    }
    let url = match args.value("--endpoint") {
        Some(endpoint) => settings::traces_url(endpoint),
        None => config
            .endpoint
            .clone()
            .ok_or("no endpoint: pass --endpoint URL or set OTEL_EXPORTER_OTLP_ENDPOINT")?,
    };
    // A typo must not cost a spool file.
    settings::check_http_url(&url)?;
    if let Some(h) = args.value("--headers") {
        config.headers = settings::headers_option(h)?;
    }
    if let Some(t) = args.value("--timeout-ms") {
        let ms: u64 = t.parse().map_err(|_| "--timeout-ms takes milliseconds")?;
        config.request_timeout = Duration::from_millis(ms.max(1));
    }
    // As a name writes it (`spool::destination_tag`): a mark read
    // otherwise would take no file, and the run would say it sent all.
    let sender = match args.value("--sender") {
        Some(m) if m.len() == 16 && m.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some(u64::from_str_radix(m, 16).map_err(|e| e.to_string())?)
        }
        Some(m) => {
            return Err(format!(
                "--sender takes the 16 hex digits spanguard spool shows, not {m}"
            ));
        }
        None => None,
    };
    Ok(Options {
        sender,
        dir: args
            .positional
            .first()
            .map(PathBuf::from)
            .unwrap_or_else(|| config.spool_dir.clone()),
        url,
        config,
    })
}

/// The replay's transport, which notes whether its last request got no
/// answer in its time (`Silence::TimedOut`, the transport's own kind, not
/// its words), and whether the server refused who sent it or where
/// (`SendError::Misdirected`), for the tally to read when that attempt's
/// failure and its spans' fate are recorded: the delivery records
/// `AttemptFailed` and `Kept` right after the send that failed. Every
/// method goes to the inner transport.
struct Heard<T: Transport> {
    inner: T,
    flags: HeardFlags,
}

/// What `Heard` noted of the last request sent.
#[derive(Clone, Default)]
struct HeardFlags {
    /// It got no answer in its time.
    timed_out: Arc<AtomicBool>,
    /// The server refused who sent it or where.
    refused: Arc<AtomicBool>,
}

impl<T: Transport> Transport for Heard<T> {
    fn send(
        &mut self,
        body: &[u8],
        format: BodyFormat,
        gzipped: bool,
    ) -> Result<Accepted, SendError> {
        let sent = self.inner.send(body, format, gzipped);
        self.flags
            .timed_out
            .store(self.inner.silence() == Silence::TimedOut, Ordering::Relaxed);
        self.flags.refused.store(
            matches!(sent, Err(SendError::Misdirected { .. })),
            Ordering::Relaxed,
        );
        sent
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn take_set_aside(&mut self) -> Vec<SetAside> {
        self.inner.take_set_aside()
    }

    fn silence(&self) -> Silence {
        self.inner.silence()
    }

    fn limit_next(&mut self, limit: Duration) {
        self.inner.limit_next(limit)
    }

    /// The endpoint's and headers' own: what the replay writes to the
    /// spool again (a dead process's spans that failed for now, part of a
    /// split file) names it, for a tracer set up as this replay (or the
    /// next replay) to send. Not passed on, those files named no sender
    /// and any tracer took them, wherever it sends.
    fn sender_fingerprint(&self) -> Option<u64> {
        self.inner.sender_fingerprint()
    }

    fn refusal_fingerprint(&self) -> Option<u64> {
        self.inner.refusal_fingerprint()
    }

    fn delivers(&self) -> bool {
        self.inner.delivers()
    }
}

/// Tallies outcomes for the summary and says on stderr what went wrong.
struct Tally {
    diagnostics: Diagnostics,
    target: String,
    requests: u64,
    delivered: u64,
    refused: u64,
    kept: u64,
    /// String and bytes values cut to make spans fit a limit.
    cut: u64,
    /// Of them, how many each limit cut (an `Outcome::Cut`'s text: this
    /// process's size limit, a 413, or what a dead process's file held),
    /// in the order first met.
    cut_by: Vec<(String, u64)>,
    /// Values whose arrays and maps nested too deep for the backend's
    /// decoder were emptied (`Outcome::Emptied`).
    emptied: u64,
    /// The depth past which they were emptied.
    emptied_depth: usize,
    /// Requests of spans that got no answer in the request timeout.
    timed_out: u64,
    /// Whether the last request sent got none (`Heard`).
    last_timed_out: Arc<AtomicBool>,
    /// Spans kept because the server refused who sent them or where (401,
    /// 403, 404, a permanent redirect...): nothing but a corrected
    /// setting sends them (counted in `kept` too).
    refused_kept: u64,
    /// The first such refusal, as the server said it, with its fix hint.
    refusal: Option<String>,
    /// Whether the last request sent was refused so (`Heard`).
    last_refused: Arc<AtomicBool>,
}

impl Tally {
    /// Nothing counted yet; `heard`, the flags `Heard` sets.
    fn new(diagnostics: Diagnostics, target: String, heard: &HeardFlags) -> Tally {
        Tally {
            refused_kept: 0,
            refusal: None,
            last_refused: Arc::clone(&heard.refused),
            last_timed_out: Arc::clone(&heard.timed_out),
            diagnostics,
            target,
            requests: 0,
            delivered: 0,
            refused: 0,
            kept: 0,
            cut: 0,
            cut_by: Vec::new(),
            emptied: 0,
            emptied_depth: 0,
            timed_out: 0,
        }
    }
}

impl DeliveryHost for Tally {
    /// Nothing else to do here: the server's wait is waited out.
    fn wait(&mut self, wait: Duration) -> bool {
        std::thread::sleep(wait);
        true
    }

    fn record(&mut self, outcome: Outcome<'_>) {
        match outcome {
            Outcome::Delivered { spans, .. } => {
                self.requests += 1;
                self.delivered += spans;
                self.diagnostics.delivered(&self.target);
            }
            Outcome::Rejected { spans, message, .. } => {
                self.refused += spans;
                self.diagnostics
                    .lost(spans, &format!("the backend rejected them: {message}"));
            }
            Outcome::Warned { spans, message, .. } => {
                self.diagnostics.accepted_with_warning(spans, message)
            }
            Outcome::Lost { spans, reason, .. } => {
                self.refused += spans;
                self.diagnostics.lost(spans, reason);
            }
            Outcome::Kept {
                spans,
                reason,
                for_other_sender,
                ..
            } => {
                self.kept += spans;
                // A dead process's spans refused so are kept for another
                // sender (`for_other_sender`, the reason the server's); a
                // spool file is left where it is, its refusal said with
                // the attempt.
                if for_other_sender || self.last_refused.load(Ordering::Relaxed) {
                    self.refused_kept += spans;
                    self.refusal.get_or_insert_with(|| reason.to_string());
                }
            }
            Outcome::Cut { values, limit, .. } => {
                self.cut += values;
                match self.cut_by.iter_mut().find(|(l, _)| l == limit) {
                    Some((_, n)) => *n += values,
                    None => self.cut_by.push((limit.to_string(), values)),
                }
            }
            Outcome::Emptied {
                values,
                shared,
                depth,
                ..
            } => {
                self.emptied += values + shared;
                self.emptied_depth = depth;
            }
            Outcome::ResourceCut { attributes, limit } => {
                self.diagnostics.resource_cut(attributes, limit)
            }
            Outcome::AttemptFailed { reason } if self.last_refused.load(Ordering::Relaxed) => {
                // Said once at the end, with what became of the spans and
                // how to send them (`run`, before the summary): said here, it
                // read as a failure to try again, and the summary's "0
                // spans refused" beside it as nothing refused.
                self.refusal.get_or_insert_with(|| reason.to_string());
            }
            Outcome::AttemptFailed { reason } => {
                // The request that failed is the last sent. Read from the
                // transport's kind of silence, not from its words ("timed
                // out", `HttpTransport::explain`'s): a change of wording
                // there silently stopped the replay saying a backend that
                // hangs on spans.
                if self.last_timed_out.load(Ordering::Relaxed) {
                    self.timed_out += 1;
                }
                self.diagnostics.attempt_failed(&self.target, reason)
            }
            Outcome::Evicted { .. } | Outcome::Retrying { .. } | Outcome::SpoolSize { .. } => {}
        }
    }
}

/// The summary's word on the probes (empty requests, no spans: counted in
/// no other figure) the replay sent after a file failed for now, to learn
/// whether the backend was up: "0 probes sent", or "2 probes sent (1
/// taken, 1 failed)". Each is a request the backend saw, and a failed one
/// is why the pass stopped with files left.
fn probes_sent(probes: ProbeCount) -> String {
    let sent = count(probes.sent, "probe sent", "probes sent").to_string();
    if probes.sent == 0 {
        return sent;
    }
    format!(
        "{sent} ({} taken, {} failed)",
        probes.taken,
        probes.sent.saturating_sub(probes.taken)
    )
}

pub fn run(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let config = match settings::from_env() {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let options = match parse(args, config) {
        Ok(o) => o,
        Err(message) => {
            eprintln!("spanguard replay: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = &options.config;
    let transport = HttpTransport::new(
        &options.url,
        &config.headers,
        &config.tls,
        config.request_timeout,
        Default::default(),
    );
    // No cap: replaying must never delete what it was asked to send, nor
    // set aside a batch that a tracer wrote under a larger cap than this
    // shell's SPANGUARD_SPOOL_MAX_BYTES (renamed unreadable, no tracer or
    // replay would take it again): it reads what any spool reads, 4 GiB at
    // most. `spool` and `show`, which only look, read no more than this
    // environment's tracers write.
    let mut spool = SpoolDir::new(&options.dir, u64::MAX);
    // Every file, whichever sender wrote it (`SpoolDir::takes`): a
    // tracer leaves another sender's spans where they are, and this is
    // how a person sends them, to the endpoint they name.
    spool.take_every_destination();
    // Or only one sender's, when the person named it.
    if let Some(mark) = options.sender {
        spool.take_only_for(mark);
    }
    // Another user's spool (root draining it, say) is theirs to replay:
    // read from here, every file of theirs would be set aside for good.
    if let Err(e) = spool.check_ours() {
        eprintln!(
            "spanguard replay: {}: {e} (run spanguard replay as the user who owns it)",
            super::terminal::clean(&options.dir.display().to_string())
        );
        return ExitCode::from(2);
    }
    let heard = HeardFlags::default();
    let mut delivery = Delivery::new(
        Box::new(Heard {
            inner: transport,
            flags: heard.clone(),
        }),
        spool,
        config.export_timeout,
        config.max_request_bytes,
    );
    // As the exporter sends them: a span alone over the limit goes whole.
    delivery.send_lone_spans_whole();
    let format = match config.protocol {
        Protocol::HttpProtobuf => BodyFormat::Protobuf,
        Protocol::HttpJson => BodyFormat::Json,
    };
    let mut encoder = RequestEncoder::new(
        format,
        config.compression == Compression::Gzip,
        config.max_request_bytes,
        config.max_export_batch_size as usize,
    );
    let mut tally = Tally::new(
        Diagnostics::new(if config.log_level == LogLevel::None {
            LogLevel::None
        } else {
            config.log_level.max(LogLevel::Warn)
        }),
        delivery.target(),
        &heard,
    );
    // The exporter's recovery: what dead processes left, then the spool
    // (which then also holds whatever of those could not be sent).
    // A live process's files are left to it.
    recovery::recover_dir(
        &options.dir,
        &[],
        config.max_export_batch_size as usize,
        &mut delivery,
        &mut encoder,
        &mut tally,
    );
    // One pass: a file kept (the backend stopped answering) ends it, unless
    // others went before it (then it is set back and the pass goes on).
    delivery.replay_spool(&mut tally);
    // A file failed with the server's Retry-After: no probe goes before
    // the time it asked, and the probe after it judges the file (counted
    // set back, split at the fifth). The exporter's next replay sends that
    // probe; a run of this command has no next replay, and each run sent
    // the file again, set it back uncounted and stopped: a file a gateway
    // always answers 503 with Retry-After was never split, its good spans
    // never delivered. So it waits, as its retries waited for the server
    // (the wait is clamped as a retry's: the retry budget at most), and
    // replays once more, as the exporter would.
    if let Some(after) = delivery.judged_after() {
        std::thread::sleep(after.saturating_duration_since(std::time::Instant::now()));
        delivery.replay_spool(&mut tally);
    }
    // Losses held back by the rate limit: stderr's numbers add up.
    tally.diagnostics.stopped(None);
    // Files that could not be read were renamed, never sent: the first few
    // by name, the rest counted by directory and cause, as the exporter
    // says them (`SetAsideNews`). A line a file was 100,000 lines for a
    // spool directory of 100,000 torn or planted files.
    let mut set_aside = delivery.spool().take_set_aside();
    set_aside.extend(spanguard::export::sender_key::take_set_aside(
        delivery.spool().dir(),
    ));
    let mut news = SetAsideNews::default();
    let files = set_aside
        .iter()
        .map(|f| (f.path.as_path(), f.reason.as_str()));
    let told = news.messages(Instant::now(), files);
    for message in told.into_iter().chain(news.untold()) {
        // The names are whoever made the files': no line or escape of theirs.
        eprintln!("spanguard replay: {}", super::terminal::clean(&message));
    }
    // Counted as their bodies hold them: say which headers said otherwise,
    // the first few by name and the rest in one line, for the same reason.
    let miscounted = delivery.spool().take_miscounted();
    const SAID_BY_NAME: usize = diagnostics::SET_ASIDE_SAID_IN_FULL as usize;
    for file in miscounted.iter().take(SAID_BY_NAME) {
        eprintln!(
            "spanguard replay: {} said {} and holds {}: counted as it holds them",
            super::terminal::clean(&file.path.display().to_string()),
            diagnostics::spans(u64::from(file.claimed)),
            file.counted
        );
    }
    if let Some(more) = miscounted
        .len()
        .checked_sub(SAID_BY_NAME)
        .filter(|n| *n > 0)
    {
        eprintln!(
            "spanguard replay: {} said other counts of spans than they hold: counted as \
             they hold them",
            count(more as u64, "more file", "more files")
        );
    }
    // The spool's key unusable (another user's, readable by others): what
    // this run wrote again is named under a key of its own.
    for message in spanguard::export::sender_key::take_untold() {
        eprintln!("spanguard replay: {}", super::terminal::clean(&message));
    }
    // Spans delivered with values cut are delivered (the exit status is
    // about spans), but what was cut is gone: said on stderr, as the
    // library counts it in values_truncated.
    for line in cut_lines(&tally.cut_by, delivery.lone_span_limit()) {
        eprintln!("spanguard replay: {}", super::terminal::clean(&line));
    }
    if tally.emptied > 0 {
        eprintln!(
            "spanguard replay: {} nested deeper than {} levels emptied past \
             that level (the backend refused their spans for them, a decoder's nesting \
             limit)",
            count(tally.emptied, "value", "values"),
            tally.emptied_depth
        );
    }
    // A request of spans got no answer in its time, and an empty request
    // (a probe) was then taken: the backend answers, and hung on spans (a
    // gateway or proxy that drops a body over its limit instead of
    // answering 413, one that buffers large bodies, a backend stuck on
    // decoding). The summary's "1 probe sent (1 taken, 0 failed)" beside
    // files kept read as a backend that was down and is back; the
    // exporter of a live process in that state gives its flushes a probe's
    // time (`Delivery::spans_hang`), so its spans go to the spool and stay.
    if tally.timed_out > 0 && delivery.probes().taken > 0 {
        eprintln!(
            "spanguard replay: {} got no answer in {} ms (the request timeout), and an \
             empty request after that was answered: {} answers, and hangs on requests of \
             spans. A gateway or proxy before it that drops a large body instead of \
             answering 413, or the backend stuck on such a request: its logs, or a \
             smaller SPANGUARD_MAX_REQUEST_BYTES (now {}), may tell",
            count(tally.timed_out, "request of spans", "requests of spans"),
            config.request_timeout.as_millis(),
            tally.target,
            config.max_request_bytes
        );
    }
    // With --sender, only that sender's: the others were never its to send.
    let left: Vec<PathBuf> = delivery
        .spool()
        .list()
        .into_iter()
        .filter(|path| delivery.spool().takes(path))
        .collect();
    // Every span the files left hold, not only those of the request that
    // found the backend away (the pass ends there): "7 spans kept" of 40
    // read as 33 gone.
    // Counted in their bodies, as a replay counts them: a header is a claim.
    let waiting: u64 = left
        .iter()
        .filter_map(|path| count_spool_file(path, u64::MAX).ok())
        .map(|counted| counted.spans as u64)
        .sum();
    // Refused for who sent them or where: said once, as the exporter says
    // it, with where they wait and what sends them. Only "export to URL
    // failed: HTTP 401" was said, as a failure to try again, beside a
    // summary of "0 spans refused". The pass stops at the first file
    // refused so (the next would be refused alike): the others, unsent,
    // are said too, or "7 spans refused" read as the 13 others fine.
    let kept = waiting.max(tally.kept);
    if let Some(refusal) = &tally.refusal {
        let dir = options.dir.display().to_string();
        let unsent = match kept.saturating_sub(tally.refused_kept) {
            0 => String::new(),
            n => format!(
                "; {} there not sent, as the server would refuse them alike",
                count(n, "other span waits", "other spans wait")
            ),
        };
        eprintln!(
            "spanguard replay: {}{unsent}; once it is fixed, {} sends them",
            super::terminal::clean(&diagnostics::refused_and_kept(
                diagnostics::spans(tally.refused_kept),
                &dir,
                refusal
            )),
            super::terminal::clean(&diagnostics::refused_kept_sent_by(&dir))
        );
    }
    // Refused for good (lost) is "refused"; refused to this sender and
    // kept is said beside the kept.
    let refused_kept = match tally.refused_kept {
        0 => String::new(),
        n => format!(" ({n} refused to this sender or URL)"),
    };
    println!(
        "replayed {} ({}) to {}; {} refused; {} kept{refused_kept}; {} cut; {}; {} left in {}",
        count(tally.requests, "request", "requests"),
        diagnostics::spans(tally.delivered),
        tally.target,
        diagnostics::spans(tally.refused),
        diagnostics::spans(kept),
        count(tally.cut + tally.emptied, "value", "values"),
        probes_sent(delivery.probes()),
        count(left.len() as u64, "file", "files"),
        options.dir.display()
    );
    ExitCode::from(exit_status(&tally, left.is_empty()))
}

/// The exit status, one meaning each (USAGE): 0 every span delivered; 1
/// spans kept for a backend away (run it again later, as it is); 3 the
/// server refused this sender or URL, its spans kept (as it is, it is
/// refused again: a setting to fix); 4 spans lost for good. A run with
/// several says the first of 4, 3, 1: a loss only this run can say (the
/// spans are gone, the next run does not meet them), while what is kept
/// is said again by the next run. A refusal exited 1 as a backend down
/// did (a script that runs the replay until it succeeds ran for ever with
/// a key missing); then 3 stood for any run with a refusal, and spans
/// lost beside it went unsaid by the status, as a loss beside a backend
/// away was said 1, "try again".
fn exit_status(tally: &Tally, nothing_left: bool) -> u8 {
    if tally.refused > 0 {
        4
    } else if tally.refused_kept > 0 {
        3
    } else if tally.kept > 0 || !nothing_left {
        1
    } else {
        0
    }
}

/// What `spanguard replay` says of the values cut, a line a cause in
/// the words `spanguard why` uses (`diagnostics::cut_place`): a value
/// cut short by a dying writer, or at the 64 MiB a recovered span keeps,
/// was said as "cut to fit the size limit", which sent its reader to
/// raise a limit that cut nothing. `lone_span_limit`: the bytes of a
/// request of one span here, said with the cuts to this process's size
/// limit.
fn cut_lines(cut_by: &[(String, u64)], lone_span_limit: usize) -> Vec<String> {
    cut_by
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(limit, n)| {
            let mut line = format!(
                "{} cut {}",
                count(*n, "value", "values"),
                diagnostics::cut_place(limit)
            );
            if limit.contains("this process's size limit") {
                line.push_str(&format!(
                    " ({lone_span_limit} bytes a request of one span: 64 MiB or half \
                     SPANGUARD_SPOOL_MAX_BYTES, or the backend's)"
                ));
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transport whose every request fails with `reason`, what it
    /// heard then `then`.
    struct Failing {
        reason: &'static str,
        then: Silence,
        last: Silence,
    }

    impl Transport for Failing {
        fn send(&mut self, _: &[u8], _: BodyFormat, _: bool) -> Result<Accepted, SendError> {
            self.last = self.then;
            Err(SendError::Transient {
                reason: self.reason.to_string(),
                retry_after: None,
            })
        }

        fn describe(&self) -> String {
            "http://test".to_string()
        }

        fn silence(&self) -> Silence {
            self.last
        }

        fn sender_fingerprint(&self) -> Option<u64> {
            Some(0xc)
        }
    }

    /// What became of some spans in a run, as the delivery records it.
    #[derive(Clone, Copy, Debug)]
    enum Fate {
        Delivered,
        /// Kept for a backend away (a 503, no answer).
        KeptForLater,
        /// A spool file the server refused for its sender or URL: the
        /// attempt refused (`Heard`), then the spans kept.
        RefusedAndKept,
        /// Spans recovered from a dead process's file refused so: kept
        /// for another sender.
        RecoveredRefusedAndKept,
        /// Refused for what they hold (a 400).
        Lost,
        /// Dropped in a partial success.
        Rejected,
    }

    /// The exit status of a run whose spans met `fates`, with no file
    /// left in DIR when `nothing_left`.
    fn status_after(fates: &[Fate], nothing_left: bool) -> u8 {
        use spanguard::export::delivery::Origin;
        let flags = HeardFlags::default();
        let mut tally = tally(&flags);
        for fate in fates {
            flags.refused.store(false, Ordering::Relaxed);
            let (origin, spans, reason) = (Origin::SpoolFile, 5, "why");
            match fate {
                Fate::Delivered => tally.record(Outcome::Delivered {
                    origin,
                    spans,
                    bytes: 100,
                }),
                Fate::KeptForLater | Fate::RefusedAndKept | Fate::RecoveredRefusedAndKept => {
                    let refused = matches!(fate, Fate::RefusedAndKept);
                    flags.refused.store(refused, Ordering::Relaxed);
                    if !matches!(fate, Fate::RecoveredRefusedAndKept) {
                        tally.record(Outcome::AttemptFailed { reason });
                    }
                    tally.record(Outcome::Kept {
                        origin,
                        spans,
                        reason,
                        written: matches!(fate, Fate::RecoveredRefusedAndKept),
                        for_other_sender: matches!(fate, Fate::RecoveredRefusedAndKept),
                    });
                }
                Fate::Lost => tally.record(Outcome::Lost {
                    origin,
                    spans,
                    reason,
                }),
                Fate::Rejected => tally.record(Outcome::Rejected {
                    origin,
                    spans,
                    message: reason,
                }),
            }
        }
        exit_status(&tally, nothing_left)
    }

    /// Each status means one thing (USAGE), and a run with several
    /// outcomes says the first of 4, 3, 1. A loss beside a refusal exited
    /// 3, "fix a setting and run again", and the spans gone for good went
    /// unsaid by the status; beside a backend away it exited 1, "run it
    /// again", which gives them back no more. A refusal beside a backend
    /// away is 3, not 1: a script that runs the replay again on 1 would
    /// be refused at each run.
    #[test]
    fn the_exit_status_says_the_first_of_a_loss_a_refusal_a_backend_away() {
        use Fate::*;
        let cases: &[(&[Fate], bool, u8)] = &[
            (&[], true, 0),
            (&[Delivered], true, 0),
            (&[Delivered, KeptForLater], false, 1),
            // Files the pass stopped before, nothing of them tried.
            (&[Delivered], false, 1),
            (&[RefusedAndKept], false, 3),
            (&[RecoveredRefusedAndKept], true, 3),
            (&[KeptForLater, RefusedAndKept], false, 3),
            (&[RefusedAndKept, KeptForLater], false, 3),
            (&[Lost], true, 4),
            (&[Rejected, Delivered], true, 4),
            (&[Lost, KeptForLater], false, 4),
            (&[Lost, RefusedAndKept], false, 4),
            (&[RecoveredRefusedAndKept, Rejected], false, 4),
            (&[Delivered, KeptForLater, Lost, RefusedAndKept], false, 4),
        ];
        for &(fates, nothing_left, status) in cases {
            assert_eq!(
                status_after(fates, nothing_left),
                status,
                "{fates:?}, nothing left: {nothing_left}"
            );
        }
    }

    fn tally(heard: &HeardFlags) -> Tally {
        Tally::new(
            Diagnostics::new(LogLevel::None),
            "http://test".to_string(),
            heard,
        )
    }

    /// Each recovery cut is said by its own cause, in `why`'s words:
    /// values a dying writer tore, or cut at the 64 MiB a recovered span
    /// keeps, were all said as "cut to fit the size limit", sending the
    /// reader to raise a limit that cut nothing. The size limit's own cuts
    /// keep their figure.
    #[test]
    fn each_recovery_cut_is_said_by_its_own_cause() {
        use spanguard::export::delivery::Origin;
        use spanguard::export::recovery::{CHUNKS_OVER_LIMIT, TORN_CHUNKS};
        let flags = HeardFlags::default();
        let mut tally = tally(&flags);
        let size = "one request of this process's size limit (a recovered span)";
        for (values, limit) in [
            (2, TORN_CHUNKS),
            (1, CHUNKS_OVER_LIMIT),
            (3, size),
            (1, TORN_CHUNKS),
        ] {
            tally.record(Outcome::Cut {
                origin: Origin::Recovered,
                values,
                limit,
            });
        }
        assert_eq!(tally.cut, 7);
        let lines = cut_lines(&tally.cut_by, 1000);
        assert_eq!(
            lines,
            [
                format!("3 values cut {}", diagnostics::cut_place(TORN_CHUNKS)),
                format!("1 value cut {}", diagnostics::cut_place(CHUNKS_OVER_LIMIT)),
                format!(
                    "3 values cut {} (1000 bytes a request of one span: 64 MiB or half \
                     SPANGUARD_SPOOL_MAX_BYTES, or the backend's)",
                    diagnostics::cut_place(size)
                ),
            ]
        );
        assert!(
            lines[..2].iter().all(|l| !l.contains("size limit")),
            "{lines:?}"
        );
    }

    /// How many requests of spans the tally counts unanswered in their
    /// time after one attempt through `Heard` over `inner` failed.
    fn counted_timed_out(inner: Failing) -> u64 {
        let flags = HeardFlags::default();
        let mut heard = Heard {
            inner,
            flags: flags.clone(),
        };
        let mut tally = tally(&flags);
        let reason = heard
            .send(b"spans", BodyFormat::Protobuf, false)
            .expect_err("fails")
            .reason()
            .to_string();
        tally.record(Outcome::AttemptFailed { reason: &reason });
        tally.timed_out
    }

    #[test]
    fn a_request_is_counted_unanswered_by_its_silence_not_its_words() {
        // Counted by the words "timed out" (HttpTransport::explain's), a
        // timeout said otherwise was missed and the replay did not say the
        // backend hangs on spans; a failure that merely began with those
        // words was counted one.
        let heard = |reason, then| {
            counted_timed_out(Failing {
                reason,
                then,
                last: Silence::Answered,
            })
        };
        assert_eq!(heard("no answer in 500 ms", Silence::TimedOut), 1);
        assert_eq!(heard("timed out", Silence::TimedOut), 1);
        assert_eq!(heard("timed out on the way", Silence::NoServer), 0);
        assert_eq!(heard("timed out at the deadline", Silence::Deadline), 0);
        assert_eq!(heard("connection refused", Silence::NoServer), 0);
    }

    /// What a replay writes to the spool again (a recovered crash dump's
    /// spans, a part of a split file, that failed for now) names the
    /// sender the replay used (`Transport::sender_fingerprint` through
    /// `Heard`): unmarked, any tracer took it, whatever its endpoint, as
    /// a file of an older spanguard's.
    #[test]
    fn what_a_replay_spools_again_names_the_sender_it_used() {
        let dir = std::env::temp_dir().join(format!("sg-replay-marks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut spool = SpoolDir::new(&dir, u64::MAX);
        spool.take_every_destination();
        let delivery = Delivery::new(
            Box::new(Heard {
                inner: Failing {
                    reason: "connection refused",
                    then: Silence::NoServer,
                    last: Silence::Answered,
                },
                flags: HeardFlags::default(),
            }),
            spool,
            Duration::from_secs(1),
            1 << 20,
        );
        let body = b"spans".to_vec();
        let batch = spanguard::export::spool::SpooledBatch {
            format: BodyFormat::Protobuf,
            gzipped: false,
            spans: 1,
            cut_counted: 0,
            cut_at: Vec::new(),
            body,
        };
        delivery.spool().write(&batch).expect("write");
        let written = delivery.spool().list();
        assert_eq!(written.len(), 1, "{written:?}");
        assert_eq!(
            spanguard::export::spool::destination_of(&written[0]),
            delivery.spool().sender_mark(),
            "{written:?}"
        );
        // Its mark under the directory's key, never the bare fingerprint.
        assert!(delivery.spool().sender_mark().is_some_and(|m| m != 0xc));
        // And it still sends every file, those refused to that sender
        // too: its user named where they go (the server's side may have
        // been fixed since), as before it had a fingerprint.
        let mut refused_here = SpoolDir::new(&dir, u64::MAX);
        refused_here.set_sender(Some(0xc));
        refused_here
            .write_refused(&batch, Some(0xc))
            .expect("write");
        let listed = delivery.spool().list();
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert!(
            listed.iter().all(|f| delivery.spool().takes(f)),
            "{listed:?}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
