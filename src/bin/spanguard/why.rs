//! `spanguard why`: what the last processes' tracers did with their spans,
//! after the fact. Each tracer keeps a small record of its counts and the
//! first message of each cause of loss (`spanguard::export::outcome`):
//! a process that ended or was killed left only its stderr lines, often
//! lost with its container, and a backend short of spans had nothing
//! else to say why. The records are in the outcomes/ directory of the
//! tracer's spool directory (`outcome::dir_in`).

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use spanguard::export::diagnostics::signal_name;
use spanguard::export::outcome::{self, Counts, Death, Outcome};
use spanguard::export::transport::unread_coding_in;

use super::args::Args;
use super::clock_text;
use super::liveness::{Liveness, ProcessTable};
use super::terminal::clean;

pub const HELP: &str = "\
usage: spanguard why [--dir DIR] [--last N]

Says what the last processes traced with spanguard here did with their spans,
newest first: each tracer keeps a small record of its counts, the first
message of each cause of loss (the line it said on stderr, with what to
change) and where it cut values (a sink line's or a request's size, the
value length limit or the payload pool as they were recorded...: their spans
were sent without all the program gave them), written at its start,
every few seconds while something changes and at its stop. A process killed
(SIGKILL, out of memory) leaves its last record: it is said to have ended
without stopping its tracer, with what was not accounted for then.

The records are kept beside the spans a tracer spools: in the outcomes/
directory of its spool directory. A container's process, its spool a volume
read on the host, is found by its start whatever its pid here (its record says
pid 1); read from another container, which cannot see it, whether it runs is
said to be unknown there.

  --dir DIR  the spool directory the tracers used (SPANGUARD_SPOOL_DIR, or the
             spool_dir of their config), or its outcomes/ directory; default
             SPANGUARD_SPOOL_DIR, else $XDG_STATE_HOME/spanguard/spool
             (XDG_STATE_HOME defaulting to ~/.local/state). DIR alone, without
             --dir, is the same.
  --last N   the N newest processes (default 20)

Exit status: 0 records shown, 1 none found, 2 a usage error.
";

/// What `--last` is when not given.
const DEFAULT_LAST: usize = 20;

pub fn run(args: &[String]) -> ExitCode {
    let a = match Args::parse(args, &["--help", "-h"], &["--last", "--dir"]) {
        Ok(a) => a,
        Err(e) => return usage(&e),
    };
    if a.flag("--help") || a.flag("-h") {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    let last = match a.value("--last").map(str::parse::<usize>) {
        None => DEFAULT_LAST,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => return usage("--last takes a number of processes, 1 or more"),
    };
    let (spool, whence) = match (a.value("--dir"), a.positional.as_slice()) {
        (Some(d), []) => (PathBuf::from(d), "the spool directory given"),
        (None, [d]) => (PathBuf::from(d), "the spool directory given"),
        (None, []) => match super::settings::from_env() {
            Ok(config) if std::env::var_os("SPANGUARD_SPOOL_DIR").is_some() => (
                config.spool_dir,
                "the spool directory SPANGUARD_SPOOL_DIR names",
            ),
            Ok(config) => (
                config.spool_dir,
                "the default spool directory (SPANGUARD_SPOOL_DIR is not set)",
            ),
            Err(exit) => return exit,
        },
        _ => return usage("one directory at most"),
    };
    // The spool directory's outcomes/, or that directory itself given.
    let records = outcome::dir_in(&spool);
    let mut found = Found::default();
    let mut shown_dir = clean(&records.display().to_string());
    for (dir, is_records) in [(&records, true), (&spool, false)] {
        match read_newest(dir, last) {
            Ok(these) => {
                if !is_records && these.total > 0 && found.total == 0 {
                    shown_dir = clean(&dir.display().to_string());
                }
                found.join(these, last);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                eprintln!(
                    "spanguard why: {}: {}",
                    clean(&dir.display().to_string()),
                    clean(&e.to_string())
                );
                return ExitCode::from(1);
            }
        }
    }
    if found.total == 0 {
        // Where it looked, and where else records may be: a tracer keeps
        // them in the spool directory it was given, which this command
        // learns only from its own environment or --dir.
        println!(
            "spanguard why: no process has left a record in {shown_dir}, the outcomes/ \
             directory of {whence}, {}: a tracer writes one there when it starts. One given \
             another spool directory (SPANGUARD_SPOOL_DIR, or spool_dir in its config) \
             keeps its records in that one's: spanguard why --dir DIR",
            clean(&spool.display().to_string())
        );
        return ExitCode::from(1);
    }
    let total = found.total;
    let whose = match total.min(last) {
        1 => "process traced here did with its spans".to_string(),
        n => format!("{n} processes traced here did with their spans"),
    };
    println!("spanguard why: what the last {whose}, newest first ({shown_dir})");
    let now_s = now_unix_s();
    let mut processes = ProcessTable::default();
    // The files dead processes left that their records say the fate of,
    // as the setup each record names (not this environment's).
    let mut said = Vec::new();
    for o in &found.newest {
        println!();
        let death = death_of(o, &spool);
        let liveness = processes.liveness(o);
        if death.is_some() && o.deaths.is_empty() && !o.stopped && liveness == Liveness::Ended {
            said.extend(o.leaves.iter().map(String::as_str));
        }
        // Killed without a word, its record is up to `outcome::EVERY` old:
        // the spans its sink file holds say what it wrote since.
        let in_sink = (!o.stopped && o.ending_of_signal == 0 && liveness == Liveness::Ended)
            .then(|| in_sink(o))
            .flatten();
        print!(
            "{}",
            describe(
                o,
                now_s,
                &liveness,
                death.as_ref(),
                in_sink.as_ref(),
                &spool
            )
        );
    }
    if total > last {
        println!(
            "\n({} older records not shown: spanguard why --last {total})",
            total - last
        );
    }
    // Spooled, but not for the next process set up alike: it was refused
    // them (a key missing, a URL without its path) and never sends them.
    let kept = super::spool_status::kept_for_others(&spool, &said);
    let refused = kept.refused;
    if refused > 0 {
        let dir = clean(&spool.display().to_string());
        println!(
            "\n{} in {dir} were refused to their sender ({}) and are kept for a corrected \
             setting: a process with the same endpoint and headers never sends them; one with \
             the key or the URL fixed does, or spanguard replay --endpoint URL --headers \
             KEY=VALUE {dir}",
            spanguard::export::diagnostics::spans(refused),
            super::spool_status::REFUSALS
        );
    }
    // Spooled or left by a dead process for another sender (another
    // endpoint or key, a local sink): no process set up as this
    // environment is sends them.
    let (others, senders) = (kept.for_other_senders, kept.other_senders);
    if others > 0 {
        let dir = clean(&spool.display().to_string());
        println!(
            "\n{} in {dir} wait for {} than this environment's tracers send to (another \
             endpoint, headers or TLS files, or sink directory: spanguard spool {dir} names \
             each file's, and the command that sends each sender's with this environment's \
             endpoint and headers, an API key rotated since, say: spanguard replay {dir} \
             --sender MARK): only a process set up like the one that wrote them sends them",
            spanguard::export::diagnostics::spans(others),
            if senders == 1 {
                "another sender".to_string()
            } else {
                format!("{senders} other senders")
            }
        );
    }
    ExitCode::SUCCESS
}

fn usage(message: &str) -> ExitCode {
    eprintln!("spanguard why: {message} (spanguard why --help)");
    ExitCode::from(2)
}

fn now_unix_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Files skipped that are said by name; the rest are counted by reason
/// in one line. The directory is shared: 100,000 files planted there
/// were 100,000 lines.
const SKIPPED_BY_NAME: usize = 5;

/// What a read of the records' directory kept.
#[derive(Default)]
struct Found {
    /// The newest records, newest first: at most the `last` asked for.
    newest: Vec<Outcome>,
    /// The records found in all.
    total: usize,
}

impl Found {
    /// Adds what another directory's read found, keeping the `last`
    /// newest.
    fn join(&mut self, other: Found, last: usize) {
        self.total += other.total;
        self.newest.extend(other.newest);
        self.newest.sort_by_key(newest_first);
        self.newest.truncate(last);
    }
}

/// The order records are shown in: newest first.
fn newest_first(o: &Outcome) -> std::cmp::Reverse<(u64, u64, u32)> {
    std::cmp::Reverse((o.updated_unix_s, o.started_unix_s, o.pid))
}

/// Files skipped: the first `SKIPPED_BY_NAME` said by name (on stderr),
/// the rest counted by reason and summed up by `said_all`.
#[derive(Default)]
struct Skipped {
    named: usize,
    unnamed: std::collections::BTreeMap<String, usize>,
}

impl Skipped {
    fn skip(&mut self, path: &Path, why: &str) {
        if self.named < SKIPPED_BY_NAME {
            self.named += 1;
            eprintln!(
                "spanguard why: {}: {why}, skipped",
                clean(&path.display().to_string())
            );
        } else {
            *self.unnamed.entry(why.to_string()).or_default() += 1;
        }
    }

    /// One line for the files not said by name, if any.
    fn said_all(self, dir: &Path) {
        let n: usize = self.unnamed.values().sum();
        if n == 0 {
            return;
        }
        let reasons: Vec<String> = self
            .unnamed
            .iter()
            .map(|(why, k)| format!("{k} {why}"))
            .collect();
        eprintln!(
            "spanguard why: {n} more files skipped in {}: {}",
            clean(&dir.display().to_string()),
            reasons.join(", ")
        );
    }
}

/// The newest `last` records in `dir`, and how many there are: each
/// regular file of the reader's named `*.sgoutcome`, opened as a
/// listing's file is (no link followed, no FIFO waited on), read up to
/// `outcome::MOST_BYTES`. A file that is no record is said and skipped.
/// Only the newest are kept while reading: a directory of 100,000
/// records held them all, up to 8 KiB each.
fn read_newest(dir: &Path, last: usize) -> std::io::Result<Found> {
    let mut found = Found::default();
    let mut skipped = Skipped::default();
    let keep = |newest: &mut Vec<Outcome>| {
        newest.sort_by_key(newest_first);
        newest.truncate(last);
    };
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !name.ends_with(outcome::SUFFIX) {
            continue;
        }
        match read_record(&e.path()) {
            Ok(o) => {
                found.total += 1;
                found.newest.push(o);
                if found.newest.len() >= last.saturating_mul(2).max(64) {
                    keep(&mut found.newest);
                }
            }
            Err(why) => skipped.skip(&e.path(), &why),
        }
    }
    keep(&mut found.newest);
    skipped.said_all(dir);
    Ok(found)
}

/// The record in the file at `path`, or why it is none of ours.
fn read_record(path: &Path) -> Result<Outcome, String> {
    let file = super::sources::open_listed(path).map_err(|e| clean(&e.to_string()))?;
    let meta = file.metadata().map_err(|e| clean(&e.to_string()))?;
    // Another user's file in a directory they could write: not read as
    // this user's processes'.
    // SAFETY: geteuid cannot fail and has no preconditions.
    if meta.uid() != unsafe { libc::geteuid() } {
        return Err("another user's file".to_string());
    }
    let mut text = Vec::new();
    if file
        .take(outcome::MOST_BYTES as u64 + 1)
        .read_to_end(&mut text)
        .is_err()
        || text.len() > outcome::MOST_BYTES
    {
        return Err("not a record of spanguard's (too long)".to_string());
    }
    outcome::parse(&String::from_utf8_lossy(&text))
        .ok_or_else(|| "not a record of spanguard's".to_string())
}

/// What ended process `o`, as what its tracer left says (`outcome::Death`):
/// the note its recoverer wrote in its record, or, not recovered yet, its
/// crash dump or flight file itself in the spool directory `spool` (or in
/// the parent of `spool` given as the outcomes/ directory). None when its
/// record names no such file (a version before) or none is there.
fn death_of(o: &Outcome, spool: &Path) -> Option<Death> {
    if let Some(death) = o.deaths.first() {
        return Some(*death);
    }
    let dirs = [Some(spool), spool.parent()];
    o.leaves
        .iter()
        // A name, never a path: the record is anyone's text.
        .filter(|name| !name.contains('/') && !name.starts_with('.'))
        .flat_map(|name| dirs.iter().flatten().map(move |dir| dir.join(name)))
        .find_map(|path| left_by(&path, o.pid))
}

/// What the crash dump or flight file at `path` holds, if process `pid`
/// wrote it: read without claiming, locking or changing it, as `show`
/// reads one.
fn left_by(path: &Path, pid: u32) -> Option<Death> {
    let (by, death) = spanguard::export::dump_view::death_in(path, super::settings::dump_cap())?;
    (by == pid).then_some(death)
}

/// What a tracer leaves if its process dies, as its record names it.
fn what_it_leaves(o: &Outcome) -> &'static str {
    let all = |suffix: &str| o.leaves.iter().all(|l| l.ends_with(suffix));
    if all(".sgflight") {
        "its flight file"
    } else if all(".sgdump") {
        "its crash dump"
    } else {
        "its crash dump or flight file"
    }
}

/// The lines that say what became of the spans a dead process left
/// (`death`): sent by a later process (its record says so), or waiting in
/// the spool; those still open marked interrupted.
fn left_lines(o: &Outcome, d: &Death, spool: &Path) -> String {
    let mut out = String::new();
    let recovered = !o.deaths.is_empty();
    if d.spans > 0 {
        let what = what_it_leaves(o);
        out.push_str(&if recovered {
            format!(
                "  {} it left in {what} were sent by a later process or spanguard replay \
                 (spooled if they could not be)\n",
                spans(d.spans)
            )
        } else if let Some(sink) = sink_of(o) {
            // No endpoint: the next run alike puts them in its sink, and
            // spanguard replay, which sends to an endpoint, is not that.
            let (sink, spool) = (clean(&sink), clean(&spool.display().to_string()));
            let sender = o
                .leaves
                .iter()
                .find_map(|l| spanguard::export::spool::destination_of(Path::new(l)))
                .map_or(String::new(), |mark| format!(" --sender {mark:016x}"));
            format!(
                "  {} it left in {what} wait in the spool {spool} for the next run of a program \
                 set up as this one (no endpoint: the local sink in {sink}, this spool \
                 directory), which recovers them into that sink at its start; to a backend now \
                 instead: spanguard replay --endpoint URL{sender} {spool}\n",
                spans(d.spans),
            )
        } else {
            format!(
                "  {} it left in {what} wait in the spool: a process set up as this one sends \
                 them at its next run, or spanguard replay does\n",
                spans(d.spans)
            )
        });
    }
    if d.open > 0 {
        let were = if d.open == 1 { "was" } else { "were" };
        let when = if d.signal != 0 {
            format!("at {}", signal_name(d.signal))
        } else {
            "when it died".to_string()
        };
        let sent = if recovered { "sent" } else { "to be sent" };
        out.push_str(&format!(
            "  {} of them {were} still open {when}: {sent} marked spanguard.interrupted\n",
            d.open
        ));
    }
    out
}

/// The local sink's directory a record's spans went to (its target
/// `file:DIR/NAME.jsonl`), None when they went to an endpoint.
fn sink_of(o: &Outcome) -> Option<String> {
    let file = Path::new(o.target.strip_prefix("file:")?);
    Some(file.parent()?.display().to_string())
}

/// The spans a process wrote to its local sink file, as read back.
struct InSink {
    /// The file, as said.
    file: String,
    spans: u64,
}

/// The spans of process `o` in the local sink file its record names
/// (target `file:PATH`): those of its resource's `process.pid` begun
/// from its start on (a process before it with the same pid, a
/// container's restart, appends to the same file). None when its spans
/// went to an endpoint, or the file cannot be read. Lines are read one at
/// a time, each up to the sink's longest, an unreadable one skipped: the
/// file is read as `show` reads it, without locking or changing it.
fn in_sink(o: &Outcome) -> Option<InSink> {
    use std::io::BufRead;
    let path = Path::new(o.target.strip_prefix("file:")?);
    let file = super::sources::open_listed(path).ok()?;
    let size = file.metadata().ok()?.len();
    // What was there when looked at: a writer of the same name (a later
    // process with this pid) is not followed.
    let mut reader = std::io::BufReader::new(file.take(size));
    let most = spanguard::config::MAX_SINK_LINE_BYTES;
    let from_ns = o.started_unix_s.saturating_mul(1_000_000_000);
    let ours = |s: &spanguard::export::otlp_decode::DecodedSpan| {
        s.start_unix_ns >= from_ns
            && s.resource_attribute("process.pid")
                == Some(&spanguard::export::otlp_decode::Value::Int(i64::from(
                    o.pid,
                )))
    };
    let mut spans = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .by_ref()
            .take(most as u64 + 1)
            .read_until(b'\n', &mut line)
            .ok()?;
        if n == 0 {
            break;
        }
        if line.len() > most && line.last() != Some(&b'\n') {
            super::sources::skip_line(&mut reader).ok()?;
            continue;
        }
        if let Ok(decoded) = spanguard::export::otlp_decode::decode_json(line.trim_ascii()) {
            spans += decoded.iter().filter(|s| ours(s)).count() as u64;
        }
    }
    Some(InSink {
        file: clean(&path.display().to_string()),
        spans,
    })
}

/// `n` spans, "1 span".
fn spans(n: u64) -> String {
    spanguard::export::diagnostics::spans(n).to_string()
}

/// What one record says, as lines; `death` what ended its process, as
/// what its tracer left says (`death_of`).
fn describe(
    o: &Outcome,
    now_s: u64,
    liveness: &Liveness,
    death: Option<&Death>,
    in_sink: Option<&InSink>,
    spool: &Path,
) -> String {
    // A record's numbers are a file's text: whatever they are, they are
    // said, never overflowed.
    let at = |s: u64| clock_text::utc(s.saturating_mul(1_000_000_000));
    let ago = |s: u64| clock_text::age(now_s.saturating_sub(s).saturating_mul(1_000_000_000));
    let mut out = String::new();
    // A pid of another PID namespace (a container's, read on the host)
    // is said with the one it has here.
    let pid = match liveness {
        Liveness::Running {
            pid_here: Some(here),
        } => format!("pid {} (pid {here} here)", o.pid),
        _ => format!("pid {}", o.pid),
    };
    let who = if o.service.is_empty() {
        pid
    } else {
        format!("{pid} {}", clean(&o.service))
    };
    // The spans its sink file holds were delivered, and ended, whatever
    // its last record counted: written after it, they are in no record.
    let in_sink = in_sink.filter(|s| s.spans > o.counts.exported);
    let counts = match in_sink {
        Some(s) => {
            let c = o.counts;
            let exported = s.spans;
            let settled = [exported, c.spooled, c.lost, c.rejected, c.unsampled]
                .into_iter()
                .fold(0u64, u64::saturating_add);
            Counts {
                exported,
                ended: c.ended.max(settled),
                ..c
            }
        }
        None => o.counts,
    };
    let c = &counts;
    // Ended of the termination signal its tracer was flushed for (docker
    // stop's SIGTERM, Ctrl-C): not killed, and nothing to do differently.
    let dead = !o.stopped && *liveness == Liveness::Ended;
    let ended_of_signal = dead && o.ending_of_signal != 0;
    let death = death.filter(|_| dead);
    // Died of a signal that what it left names (a crash dump's SIGSEGV),
    // not one its watchdog flushed for.
    let crashed = death.filter(|d| d.signal != 0 && !ended_of_signal);
    // Nothing it left names a signal, and its record says what it would
    // have left (a record of a version before does not).
    let without_a_word = dead && !ended_of_signal && crashed.is_none() && !o.leaves.is_empty();
    // Its spans not sent at its last record were lost, unless what it
    // left held them.
    let killed = dead && !ended_of_signal && death.is_none();
    let how = if o.stopped {
        format!(
            "ran {} to {} ({} ago), stopped its tracer{}",
            at(o.started_unix_s),
            at(o.updated_unix_s),
            ago(o.updated_unix_s),
            // Stopped for a signal a binding's handler caught (the record
            // names it); a record of a version before names none, but
            // spans marked interrupted are only ever ended by a stop at a
            // termination signal (FlushOnSignals, a handler's shutdown).
            if o.ending_of_signal != 0 {
                format!(
                    " at {} ({})",
                    signal_name(o.ending_of_signal),
                    o.ending_of_signal
                )
            } else if c.interrupted > 0 {
                " at a termination signal".to_string()
            } else {
                String::new()
            }
        )
    } else if let Liveness::Running { .. } = liveness {
        format!(
            "running since {}, as of {} ({} ago)",
            at(o.started_unix_s),
            at(o.updated_unix_s),
            ago(o.updated_unix_s)
        )
    } else if ended_of_signal {
        format!(
            "ran {} to {} ({} ago), ended by {} ({}): its tracer dealt with what had ended \
             first, and spans still open then, if any, went to a crash dump in the spool (a \
             process set up as this one sends them at its next run, or spanguard replay does)",
            at(o.started_unix_s),
            at(o.updated_unix_s),
            ago(o.updated_unix_s),
            signal_name(o.ending_of_signal),
            o.ending_of_signal
        )
    } else if let Some(d) = crashed {
        format!(
            "started {}, died of {} ({}) at {} ({} ago) without stopping its tracer: what it \
             held then was kept in the spool (its last record is from {})",
            at(o.started_unix_s),
            signal_name(d.signal),
            d.signal,
            at(d.at_unix_s),
            ago(d.at_unix_s),
            at(o.updated_unix_s)
        )
    } else if *liveness == Liveness::CannotTell {
        format!(
            "started {}, its last record is from {} ({} ago); whether it runs still cannot be \
             told from here: it ran in another PID namespace (a container's) none of whose \
             processes is visible here (spanguard why on the host, or inside its container, \
             can tell)",
            at(o.started_unix_s),
            at(o.updated_unix_s),
            ago(o.updated_unix_s)
        )
    } else if without_a_word {
        format!(
            "started {}, died without a word (SIGKILL, the out-of-memory killer or power loss: \
             nothing it left names a signal): its last record is from {} ({} ago)",
            at(o.started_unix_s),
            at(o.updated_unix_s),
            ago(o.updated_unix_s)
        )
    } else {
        format!(
            "started {}, ended without stopping its tracer (killed, or it crashed): its last \
             record is from {} ({} ago)",
            at(o.started_unix_s),
            at(o.updated_unix_s),
            ago(o.updated_unix_s)
        )
    };
    out.push_str(&format!("{who}: {how}\n"));
    if !o.target.is_empty() {
        out.push_str(&format!("  spans went to {}\n", clean(&o.target)));
    }
    let settled = [c.exported, c.spooled, c.lost, c.rejected, c.unsampled]
        .into_iter()
        .fold(0u64, u64::saturating_add);
    out.push_str(&format!(
        "  {}{} ended: {} delivered, {} to the spool, {} lost{}\n",
        // More may have ended after the last span it wrote.
        if in_sink.is_some() { "at least " } else { "" },
        spans(c.ended),
        c.exported,
        c.spooled,
        c.lost.saturating_add(c.rejected),
        if c.unsampled > 0 {
            format!(", {} left out by the sampler", c.unsampled)
        } else {
            String::new()
        }
    ));
    if let Some(s) = in_sink {
        out.push_str(&format!(
            "  {} of it are in its sink file {}: {} written after its last record, which \
             counted {} delivered\n",
            spans(s.spans),
            s.file,
            s.spans - o.counts.exported,
            o.counts.exported
        ));
    }
    // Those still open at the stop count among the ended (and delivered):
    // said apart, or a service cut mid-request read as one that finished.
    let at_the_signal = if o.stopped && o.ending_of_signal != 0 {
        format!("at {}", signal_name(o.ending_of_signal))
    } else {
        "at the signal".to_string()
    };
    for (n, when, mark) in [
        (
            c.interrupted,
            at_the_signal.as_str(),
            "spanguard.interrupted, with what was set on them by then",
        ),
        (c.unended, "when the tracer stopped", "spanguard.unended"),
    ] {
        if n > 0 {
            let were = if n == 1 { "was" } else { "were" };
            out.push_str(&format!(
                "  {n} of them {were} still open {when}: sent marked {mark}\n"
            ));
        }
    }
    if let Some(d) = death {
        out.push_str(&left_lines(o, d, spool));
    }
    // Of the ended, those an exporter stuck in a request still held at the
    // stop (the stand-in's record counts them nowhere else).
    let mut held_nowhere = 0;
    if let Some((n, file)) = o.held_at_stop.as_ref().filter(|(n, _)| *n > 0) {
        let went = if file.is_empty() {
            held_nowhere = *n;
            "kept nowhere (no crash dump: signal handlers off): delivered or spooled if that \
             request returned before the process ended, lost otherwise"
                .to_string()
        } else {
            format!(
                "written to the crash dump {} in the spool: a process set up as this one sends \
                 them at its next run, or spanguard replay does (twice, should that request \
                 still go through)",
                clean(file)
            )
        };
        out.push_str(&format!(
            "  {} the exporter still held in the request it was stuck in when the tracer \
             stopped {} {went}\n",
            spans(*n),
            if *n == 1 { "was" } else { "were" },
        ));
    }
    let mut told = 0u64;
    for (n, reason) in &o.causes {
        out.push_str(&format!("  {} lost: {}\n", spans(*n), clean(reason)));
        told = told.saturating_add(*n);
    }
    if c.lost > told {
        out.push_str(&format!(
            "  {} lost for a reason not recorded (an internal error: its stderr line, or the \
             exporter_panics count, says)\n",
            spans(c.lost - told)
        ));
    }
    out.push_str(&warning_lines(o, c));
    // Refused spans wait for a setting fixed, not for the next run alike.
    let refused = o.spooled_refused.min(c.spooled);
    // What else became of spans, each with what it means or what sends them.
    for (n, words) in [
        (
            c.rejected,
            "rejected by the backend in partial successes (its message went to stderr)",
        ),
        (
            c.buffer_full,
            "never recorded: every span slot was taken (raise max_queue_size or \
             SPANGUARD_MAX_OPEN_SPANS, or see SPANGUARD_FULL_POLICY)",
        ),
        (
            c.spool_overflow,
            "of spool files deleted for the spool's size cap (SPANGUARD_SPOOL_MAX_BYTES)",
        ),
        (
            c.spooled - refused,
            "went to the spool: a process set up as this one sends them at its next run, or \
             spanguard replay does (spanguard spool lists what waits)",
        ),
        (
            refused,
            "were refused to their sender, kept in the spool for a corrected setting: a process \
             set up as this one never sends them, one with the key or the URL fixed does",
        ),
    ] {
        if n > 0 {
            out.push_str(&format!("  {} {words}\n", spans(n)));
        }
    }
    out.push_str(&cut_lines(o));
    out.push_str(&dropped_line(c));
    out.push_str(&set_aside_lines(o));
    if c.spooled > 0 && !o.spooled_because.is_empty() {
        out.push_str(&format!(
            "  why they went to the spool: {}\n",
            clean(&o.spooled_because)
        ));
    }
    if killed {
        let unsettled = c.ended.saturating_sub(settled);
        let lost_with_it = if in_sink.is_some() {
            "spans ended after the last one written to its sink file were lost with the \
             process unless a crash dump or flight file holds them"
                .to_string()
        } else {
            format!(
                "spans ended after that record, and the {} ended and not yet sent then, were \
                 lost with the process unless a crash dump or flight file holds them",
                spans(unsettled)
            )
        };
        out.push_str(&format!(
            "  what to do: {lost_with_it} \
             (spanguard spool lists them, spanguard replay sends them); stop it with SIGTERM \
             where spanguard's watchdog takes it (SPANGUARD_SIGNAL_HANDLERS not false; in \
             Node.js only after tracer.installProcessHooks(), as Node owns its signals: a \
             SIGTERM without them ends the process as a kill does), or have it call \
             shutdown, so that its tracer sends what it holds\n"
        ));
    } else if [
        c.lost,
        c.rejected,
        c.buffer_full,
        c.spool_overflow,
        held_nowhere,
    ]
    .iter()
    .all(|&n| n == 0)
        && unread_answers(o) == 0
    {
        // Values cut, and attributes, events or links dropped, are data
        // the user did not get: not "nothing lost".
        let dropped = [c.attributes_dropped, c.events_dropped, c.links_dropped]
            .iter()
            .any(|&n| n > 0);
        out.push_str(match (c.truncated > 0, dropped) {
            (false, false) => "  nothing lost\n",
            (true, false) => "  no span lost, but values were cut (above)\n",
            (false, true) => "  no span lost, but attributes, events or links were dropped (above)\n",
            (true, true) => {
                "  no span lost, but values were cut and attributes, events or links dropped (above)\n"
            }
        });
    }
    out
}

/// The spans delivered with an answer that could not be read (a coding
/// not read, a gzip body cut short): any it rejected are counted
/// delivered, so "nothing lost" is not known of them.
fn unread_answers(o: &Outcome) -> u64 {
    o.warnings
        .iter()
        .filter(|(_, w)| unread_coding_in(w).is_some())
        .fold(0u64, |all, (n, _)| all.saturating_add(*n))
}

/// The lines that say what the backend warned about as it took spans:
/// its answers that could not be read, with what they came as, and its
/// own warnings (OTLP partial successes rejecting none), with their words.
/// Said on stderr alone, they were gone with the terminal, and a run whose
/// answers came in br read as "nothing lost".
fn warning_lines(o: &Outcome, c: &Counts) -> String {
    let mut out = String::new();
    for (n, warning) in &o.warnings {
        match unread_coding_in(warning) {
            Some(coding) => out.push_str(&format!(
                "  {} delivered, but the server's answer for {n} of them was unreadable ({}): \
                 any it rejected are counted delivered\n",
                spans(c.exported),
                clean(coding)
            )),
            None => out.push_str(&format!(
                "  the backend accepted {n} of them with a warning: {}\n",
                clean(warning)
            )),
        }
    }
    out
}

/// Where values are cut as they are recorded, and what keeps them whole,
/// for the values a record counts but names no place for: a tracer of a
/// version before named none of these places.
const CUT_WHEN_RECORDED: &str = "as they were recorded, at a limit the record does not name \
     (a version before named none): at the attribute value length \
     limit (OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT or OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT; none by \
     default), at a payload pool used up (raise SPANGUARD_PAYLOAD_POOL_MIB), a name or key over \
     1 KiB, a scope name over 256 bytes, or a value nested deeper than \
     SPANGUARD_ATTRIBUTE_VALUE_DEPTH_LIMIT";

/// The lines that say how many values were cut (their spans sent without
/// all the program gave them), where, and what keeps them whole: those
/// the record names by place, and the rest as cut when recorded.
fn cut_lines(o: &Outcome) -> String {
    let all = o.counts.truncated;
    if all == 0 {
        return String::new();
    }
    let mut out = format!(
        "  {} cut: their spans were sent without all of what the program gave them \
         (values_truncated counts them)\n",
        values(all)
    );
    let mut told = 0u64;
    for (n, place) in &o.cuts {
        // The record is anyone's text: no more said than it counts.
        let n = (*n).min(all - told);
        if n == 0 {
            continue;
        }
        out.push_str(&format!("    {} cut {}\n", values(n), clean(place)));
        told += n;
    }
    if all > told {
        out.push_str(&format!(
            "    {} cut {CUT_WHEN_RECORDED}\n",
            values(all - told)
        ));
    }
    out
}

/// The lines that say how many files the tracer set aside, unread (what
/// they held is not sent), and the first of them as it said them; none
/// when none.
fn set_aside_lines(o: &Outcome) -> String {
    let n = o.counts.set_aside;
    if n == 0 {
        return String::new();
    }
    let mut out = format!(
        "  {} set aside, unread (files_set_aside counts them): renamed *.unreadable for a \
         person to look at, never sent (spanguard spool lists them)\n",
        if n == 1 {
            "1 file".to_string()
        } else {
            format!("{n} files")
        }
    );
    for said in &o.set_aside {
        out.push_str(&format!("    {}\n", clean(said)));
    }
    out
}

/// The line that says how many attributes, events and links did not fit
/// their spans, and what sets the room for them; none when none.
fn dropped_line(c: &Counts) -> String {
    let said: Vec<String> = [
        (c.attributes_dropped, "attribute"),
        (c.events_dropped, "event"),
        (c.links_dropped, "link"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}{}", if *n == 1 { "" } else { "s" }))
    .collect();
    if said.is_empty() {
        return String::new();
    }
    format!(
        "  {} dropped: their spans were sent without them (attributes_dropped, events_dropped, \
         links_dropped count them): past a span's count limit (OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT, \
         OTEL_SPAN_EVENT_COUNT_LIMIT, OTEL_SPAN_LINK_COUNT_LIMIT, OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT, \
         OTEL_LINK_ATTRIBUTE_COUNT_LIMIT; under an OpenTelemetry bridge, the SDK's span limits), \
         or a payload pool used up (SPANGUARD_PAYLOAD_POOL_MIB)\n",
        said.join(", ")
    )
}

/// `n` values, "1 value".
fn values(n: u64) -> String {
    if n == 1 {
        "1 value".to_string()
    } else {
        format!("{n} values")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spanguard::export::outcome::Counts;

    /// `super::describe` of a record in the spool directory /spool.
    fn describe(o: &Outcome, now_s: u64, l: &Liveness, d: Option<&Death>) -> String {
        super::describe(o, now_s, l, d, None, Path::new("/spool"))
    }

    /// A record of a process that hit a 404 says its count and the first
    /// message of the cause, fix hint and all; one killed says so and
    /// what was not accounted for at its last record.
    #[test]
    fn a_refused_process_and_a_killed_one_are_said_with_what_to_do() {
        let refused = "HTTP 404: 404 page not found (nothing takes traces at this URL: \
                       OTEL_EXPORTER_OTLP_ENDPOINT is a base URL) (http://h/v1/traces)";
        let o = Outcome {
            pid: 42,
            service: "checkout".to_string(),
            target: "http://h/v1/traces".to_string(),
            started_unix_s: 1_000,
            start: None,
            updated_unix_s: 1_006,
            stopped: true,
            counts: Counts {
                ended: 40,
                lost: 40,
                ..Counts::default()
            },
            causes: vec![(40, refused.to_string())],
            spooled_because: String::new(),
            spooled_refused: 0,
            ending_of_signal: 0,
            leaves: Vec::new(),
            deaths: Vec::new(),
            cuts: Vec::new(),
            set_aside: Vec::new(),
            held_at_stop: None,
            warnings: Vec::new(),
        };
        assert_eq!(
            describe(&o, 1_066, &Liveness::Ended, None),
            format!(
                "pid 42 checkout: ran 1970-01-01 00:16:40.000Z to 1970-01-01 00:16:46.000Z (1m 00s ago), stopped its tracer\n\
                 \x20 spans went to http://h/v1/traces\n\
                 \x20 40 spans ended: 0 delivered, 0 to the spool, 40 lost\n\
                 \x20 40 spans lost: {refused}\n"
            )
        );
        let killed = Outcome {
            stopped: false,
            counts: Counts {
                ended: 10,
                exported: 7,
                ..Counts::default()
            },
            causes: Vec::new(),
            ..o
        };
        let text = describe(&killed, 1_010, &Liveness::Ended, None);
        assert!(
            text.starts_with("pid 42 checkout: started 1970-01-01 00:16:40.000Z, ended without stopping its tracer (killed, or it crashed): its last record is from 1970-01-01 00:16:46.000Z (4s ago)\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "and the 3 spans ended and not yet sent then, were lost with the process"
            ),
            "{text}"
        );
        assert!(!text.contains("nothing lost"), "{text}");
        // A Node.js program SIGTERMed without its process hooks is said so
        // too (spanguard's watchdog never saw the signal): the advice says
        // what makes SIGTERM flush there, not only "stop it with SIGTERM",
        // which is what its user had done.
        assert!(
            text.contains("in Node.js only after tracer.installProcessHooks()"),
            "{text}"
        );
        // The same record, its tracer flushed for SIGTERM by the watchdog
        // as the process died of it: not killed, nothing to change.
        let termed = Outcome {
            ending_of_signal: libc::SIGTERM,
            ..killed.clone()
        };
        let text = describe(&termed, 1_010, &Liveness::Ended, None);
        assert!(
            text.starts_with("pid 42 checkout: ran 1970-01-01 00:16:40.000Z to 1970-01-01 00:16:46.000Z (4s ago), ended by SIGTERM (15): its tracer dealt with what had ended first"),
            "{text}"
        );
        assert!(!text.contains("what to do"), "{text}");
        // The same record of a process that runs still.
        let text = describe(&killed, 1_010, &Liveness::Running { pid_here: None }, None);
        assert!(text.contains("running since"), "{text}");
        assert!(text.ends_with("  nothing lost\n"), "{text}");
    }

    /// A Go service SIGTERMed mid-request with FlushOnSignals (or any
    /// shutdown at a signal): its tracer stopped, and the spans still open
    /// then went out marked interrupted. They count among those ended and
    /// delivered, so the record said "18 spans ended: 18 delivered" of a
    /// process whose 15 requests were cut; now it says so.
    #[test]
    fn spans_still_open_at_the_stop_are_said() {
        let o = Outcome {
            pid: 42,
            service: "chat".to_string(),
            started_unix_s: 1_000,
            updated_unix_s: 1_006,
            stopped: true,
            counts: Counts {
                ended: 18,
                exported: 18,
                interrupted: 15,
                ..Counts::default()
            },
            ..Outcome::default()
        };
        let text = describe(&o, 1_010, &Liveness::Ended, None);
        assert!(
            text.starts_with("pid 42 chat: ran 1970-01-01 00:16:40.000Z to 1970-01-01 00:16:46.000Z (4s ago), stopped its tracer at a termination signal\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "  18 spans ended: 18 delivered, 0 to the spool, 0 lost\n  \
                 15 of them were still open at the signal: sent marked spanguard.interrupted, \
                 with what was set on them by then\n"
            ),
            "{text}"
        );
        let closed = Outcome {
            counts: Counts {
                ended: 3,
                exported: 3,
                unended: 1,
                ..Counts::default()
            },
            ..o
        };
        let text = describe(&closed, 1_010, &Liveness::Ended, None);
        assert!(text.contains("stopped its tracer\n"), "{text}");
        assert!(
            text.contains(
                "  1 of them was still open when the tracer stopped: sent marked spanguard.unended\n"
            ),
            "{text}"
        );
    }

    /// The batch an exporter stuck in a request held when its tracer
    /// stopped (a stand-in spooled the rest) is said with where it went:
    /// the crash dump's file, or nowhere (no crash dump), which is not
    /// "nothing lost". Before, 10 spooled of 11 ended read as nothing lost.
    #[test]
    fn the_batch_a_stuck_exporter_held_at_the_stop_is_said_with_where_it_went() {
        let o = Outcome {
            pid: 42,
            service: "worker".to_string(),
            target: "http://h/v1/traces".to_string(),
            started_unix_s: 1_000,
            updated_unix_s: 1_006,
            stopped: true,
            counts: Counts {
                ended: 11,
                spooled: 10,
                ..Counts::default()
            },
            held_at_stop: Some((1, "00-42-1.sgspool".to_string())),
            ..Outcome::default()
        };
        let text = describe(&o, 1_010, &Liveness::Ended, None);
        assert!(
            text.contains(
                "  11 spans ended: 0 delivered, 10 to the spool, 0 lost\n  \
                 1 span the exporter still held in the request it was stuck in when the tracer \
                 stopped was written to the crash dump 00-42-1.sgspool in the spool"
            ),
            "{text}"
        );
        assert!(text.contains("  nothing lost\n"), "{text}");
        let nowhere = Outcome {
            held_at_stop: Some((3, String::new())),
            counts: Counts {
                ended: 13,
                spooled: 10,
                ..Counts::default()
            },
            ..o
        };
        let text = describe(&nowhere, 1_010, &Liveness::Ended, None);
        assert!(
            text.contains(
                "  3 spans the exporter still held in the request it was stuck in when the \
                 tracer stopped were kept nowhere (no crash dump: signal handlers off)"
            ),
            "{text}"
        );
        assert!(!text.contains("nothing lost"), "{text}");
    }

    /// What ended a dead process is said as what it left names it: a
    /// crash dump's SIGSEGV with its time, before and after a later
    /// process sent it; a flight file that names no signal, or no file at
    /// all of a record that says what its tracer leaves, as a death
    /// without a word; a record of a version before as it was. A stop for
    /// a termination signal names it, and the spans open at it.
    #[test]
    fn the_signal_a_process_died_of_is_said_as_what_it_left_names_it() {
        let o = Outcome {
            pid: 123,
            service: "agent".to_string(),
            started_unix_s: 1_000,
            updated_unix_s: 1_004,
            stopped: false,
            counts: Counts {
                ended: 10,
                exported: 7,
                ..Counts::default()
            },
            leaves: vec!["x-123-ab.sgdump".to_string()],
            ..Outcome::default()
        };
        let segv = Death {
            signal: libc::SIGSEGV,
            at_unix_s: 1_006,
            open: 2,
            spans: 5,
        };
        let text = describe(&o, 1_010, &Liveness::Ended, Some(&segv));
        assert!(
            text.starts_with("pid 123 agent: started 1970-01-01 00:16:40.000Z, died of SIGSEGV (11) at 1970-01-01 00:16:46.000Z (4s ago) without stopping its tracer: what it held then was kept in the spool (its last record is from 1970-01-01 00:16:44.000Z)\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "  5 spans it left in its crash dump wait in the spool: a process set up as this \
                 one sends them at its next run, or spanguard replay does\n  2 of them were \
                 still open at SIGSEGV: to be sent marked spanguard.interrupted\n"
            ),
            "{text}"
        );
        assert!(!text.contains("what to do"), "{text}");
        let recovered = Outcome {
            deaths: vec![segv],
            ..o.clone()
        };
        let text = describe(&recovered, 1_010, &Liveness::Ended, Some(&segv));
        assert!(
            text.contains(
                "  5 spans it left in its crash dump were sent by a later process or spanguard \
                 replay (spooled if they could not be)\n  2 of them were still open at SIGSEGV: \
                 sent marked spanguard.interrupted\n"
            ),
            "{text}"
        );
        // SIGKILL: no dump written, nothing names a signal.
        let text = describe(&o, 1_010, &Liveness::Ended, None);
        assert!(
            text.starts_with("pid 123 agent: started 1970-01-01 00:16:40.000Z, died without a word (SIGKILL, the out-of-memory killer or power loss: nothing it left names a signal): its last record is from 1970-01-01 00:16:44.000Z (6s ago)\n"),
            "{text}"
        );
        assert!(text.contains("what to do"), "{text}");
        // Its flight file kept its spans, and names no signal.
        let flight = Outcome {
            leaves: vec!["x-123-ab.sgflight".to_string()],
            ..o.clone()
        };
        let kill = Death { signal: 0, ..segv };
        let text = describe(&flight, 1_010, &Liveness::Ended, Some(&kill));
        assert!(text.contains("died without a word"), "{text}");
        assert!(
            text.contains("  2 of them were still open when it died: to be sent marked spanguard.interrupted\n"),
            "{text}"
        );
        assert!(!text.contains("were lost with the process"), "{text}");
        // A record of a version before: no file named, said as before.
        let older = Outcome {
            leaves: Vec::new(),
            ..o.clone()
        };
        let text = describe(&older, 1_010, &Liveness::Ended, None);
        assert!(
            text.contains("ended without stopping its tracer (killed, or it crashed)"),
            "{text}"
        );
        // What a process left is not said of one that runs still.
        let text = describe(
            &o,
            1_010,
            &Liveness::Running { pid_here: None },
            Some(&segv),
        );
        assert!(!text.contains("SIGSEGV"), "{text}");
        // Stopped by a binding's handler's shutdown for SIGTERM.
        let stopped = Outcome {
            stopped: true,
            ending_of_signal: libc::SIGTERM,
            counts: Counts {
                ended: 18,
                exported: 18,
                interrupted: 15,
                ..Counts::default()
            },
            ..o
        };
        let text = describe(&stopped, 1_010, &Liveness::Ended, None);
        assert!(
            text.starts_with("pid 123 agent: ran 1970-01-01 00:16:40.000Z to 1970-01-01 00:16:44.000Z (6s ago), stopped its tracer at SIGTERM (15)\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "  15 of them were still open at SIGTERM: sent marked spanguard.interrupted"
            ),
            "{text}"
        );
    }

    /// The record of pid 7, stopped, with 4 spans ended and delivered
    /// beside `counts`' other figures.
    fn stopped_with_4_delivered(counts: Counts) -> Outcome {
        Outcome {
            pid: 7,
            started_unix_s: 1_000,
            updated_unix_s: 1_006,
            stopped: true,
            counts: Counts {
                ended: 4,
                exported: 4,
                ..counts
            },
            ..Outcome::default()
        }
    }

    /// Files set aside (another user's `.sender-key` or `outcomes/`, a
    /// torn batch, a link planted under a spool file's name) are said
    /// with their count and the first by name: `why` said nothing of
    /// them, where the program's count and callback did.
    #[test]
    fn files_set_aside_are_counted_and_named() {
        let key = "/spool/.sender-key.unreadable set aside, unread: the spool's sender key \
                   /spool/.sender-key was not this user's (owned by uid 4253): a key of this \
                   user's was made in its place";
        let o = Outcome {
            set_aside: vec![key.to_string(), "/spool/x\x1b[2J.sgspool".to_string()],
            ..stopped_with_4_delivered(Counts {
                set_aside: 2,
                ..Counts::default()
            })
        };
        let text = describe(&o, 1_010, &Liveness::Ended, None);
        assert!(
            text.contains(&format!(
                "  2 files set aside, unread (files_set_aside counts them): renamed \
                 *.unreadable for a person to look at, never sent (spanguard spool lists \
                 them)\n    {key}\n"
            )),
            "{text}"
        );
        assert!(
            !text.contains('\x1b'),
            "no escape of the file's name: {text}"
        );
        let none = Outcome {
            counts: Counts {
                set_aside: 0,
                ..o.counts
            },
            set_aside: Vec::new(),
            ..o
        };
        let text = describe(&none, 1_010, &Liveness::Ended, None);
        assert!(!text.contains("set aside"), "{text}");
    }

    /// Values cut are said with where and what keeps them whole, never as
    /// "nothing lost": those the record names by place, the rest as cut
    /// when recorded; a record's places never say more than it counts.
    /// What the backend warned about as it took spans is said: an answer
    /// that could not be read as "delivered, but unreadable", not as
    /// "nothing lost"; its own warning in its words.
    #[test]
    fn warnings_the_backend_took_spans_with_are_said() {
        let unread = spanguard::export::transport::unread_answer("br", "not asked for");
        let o = Outcome {
            pid: 7,
            started_unix_s: 1_000,
            updated_unix_s: 1_006,
            stopped: true,
            counts: Counts {
                ended: 12,
                exported: 12,
                ..Counts::default()
            },
            warnings: vec![(9, unread), (3, "sampled\u{1b}[2J".to_string())],
            ..Outcome::default()
        };
        let text = describe(&o, 1_010, &Liveness::Ended, None);
        assert!(
            text.ends_with(
                "  12 spans ended: 12 delivered, 0 to the spool, 0 lost\n  12 spans delivered, \
                 but the server's answer for 9 of them was unreadable (br): any it rejected are \
                 counted delivered\n  the backend accepted 3 of them with a warning: sampled\\x1b[2J\n"
            ),
            "{text}"
        );
        // The backend's own warnings alone: nothing lost.
        let warned = Outcome {
            warnings: vec![(3, "sampled".to_string())],
            ..o
        };
        let text = describe(&warned, 1_010, &Liveness::Ended, None);
        assert!(
            text.ends_with("with a warning: sampled\n  nothing lost\n"),
            "{text}"
        );
    }

    #[test]
    fn values_cut_are_said_with_where_not_as_nothing_lost() {
        let sink = "to fit their spans into one line of the local sink (1048576 bytes; \
                    SPANGUARD_SINK_MAX_LINE_BYTES raises it)";
        let o = Outcome {
            cuts: vec![(3, sink.to_string())],
            ..stopped_with_4_delivered(Counts {
                truncated: 5,
                ..Counts::default()
            })
        };
        let text = describe(&o, 1_010, &Liveness::Ended, None);
        assert!(
            text.ends_with(&format!(
                "  5 values cut: their spans were sent without all of what the program gave them \
                 (values_truncated counts them)\n    3 values cut {sink}\n    2 values cut \
                 {CUT_WHEN_RECORDED}\n  no span lost, but values were cut (above)\n"
            )),
            "{text}"
        );
        let forged = Outcome {
            cuts: vec![(9, sink.to_string()), (9, "x".to_string())],
            ..o.clone()
        };
        let text = describe(&forged, 1_010, &Liveness::Ended, None);
        assert!(text.contains("    5 values cut to fit"), "{text}");
        assert!(
            !text.contains("cut x") && !text.contains("as they were recorded"),
            "{text}"
        );
        // None cut: as before.
        let whole = Outcome {
            counts: Counts {
                truncated: 0,
                ..o.counts
            },
            cuts: Vec::new(),
            ..o
        };
        let text = describe(&whole, 1_010, &Liveness::Ended, None);
        assert!(text.ends_with("0 lost\n  nothing lost\n"), "{text}");
        // Events a streamed answer recorded a chunk each, past the span's
        // limit, and a link: dropped, said with the limits, not "nothing lost".
        let dropped = Outcome {
            counts: Counts {
                events_dropped: 72,
                links_dropped: 1,
                ..whole.counts
            },
            ..whole
        };
        let text = describe(&dropped, 1_010, &Liveness::Ended, None);
        assert!(
            text.contains("\n  72 events, 1 link dropped: their spans were sent without them"),
            "{text}"
        );
        assert!(text.contains("OTEL_SPAN_EVENT_COUNT_LIMIT"), "{text}");
        assert!(
            text.ends_with(
                "  no span lost, but attributes, events or links were dropped (above)\n"
            ),
            "{text}"
        );
    }

    /// A record's numbers are anyone's text (the directory is shared):
    /// counts and causes that sum past 2^64 and times past year 2554 are
    /// said, where they overflowed (a panic in a debug build, wrapped
    /// sums in a release one).
    #[test]
    fn numbers_at_their_largest_are_said_not_overflowed() {
        let most = u64::MAX;
        let o = Outcome {
            pid: u32::MAX,
            started_unix_s: most,
            updated_unix_s: most,
            stopped: false,
            counts: Counts {
                ended: most,
                exported: most,
                lost: most,
                rejected: most,
                attributes_dropped: most,
                events_dropped: most,
                links_dropped: most,
                ..Counts::default()
            },
            causes: vec![(most, "a".to_string()), (most, "b".to_string())],
            ..Outcome::default()
        };
        let text = describe(&o, 0, &ProcessTable::default().liveness(&o), None);
        assert!(
            text.contains(&format!(
                "  {most} spans ended: {most} delivered, 0 to the spool, {most} lost\n"
            )),
            "{text}"
        );
        assert!(!text.contains("for a reason not recorded"), "{text}");
        assert!(text.contains("ended without stopping its tracer"), "{text}");
    }
}
