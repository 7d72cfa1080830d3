//! `spanguard spool`: what waits in the spool directory to be sent: spool
//! files, crash dumps, flight files, files still being written or
//! prepared, and files set aside as unreadable, with counts, sizes, ages
//! and whether a live process holds each. Nothing is locked or changed.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use spanguard::buffer::files::not_a_file;
use spanguard::export::diagnostics::{self, count};
use spanguard::export::spool::{FileCount, count_opened_spool_file, open_to_look};

use super::args::Args;
use super::clock_text::age;
use super::locks::Locks;
use super::sources::{crash_file_maker, look_at_dump, unwritten_crash_file};

pub const HELP: &str = "\
usage: spanguard spool [DIR]

Lists what waits in the spool directory (DIR, default SPANGUARD_SPOOL_DIR) to be
sent: batches that could not be delivered (*.sgspool), crash dumps (*.sgdump) and
flight files (*.sgflight) of processes that died, with their spans, sizes and ages,
and which live process holds a file (a tracer writing it, or a replay sending it).
Files set aside as unreadable (*.corrupt, *.unreadable) are listed too; they are
never sent, they count against SPANGUARD_SPOOL_MAX_BYTES, and the oldest of them
are deleted first when a tracer needs room (the summary says how much of the cap
they take, and what a tracer deletes next when the spool is over it). So is what
is named like a spool file but is no regular file (a link, a FIFO, a directory):
never read, it is set aside by the next replay. A writer's temporary file whose
process died while writing it is listed as left behind: the next tracer start or
spanguard replay removes it. So is the empty crash file a tracer prepares (with
its signal handlers on) when its process is gone without writing it: it ended
without shutting its tracer down (SIGKILL, the OOM killer, an _exit), and the
spans it had not yet exported are lost. The next tracer start, or spanguard
replay, sends what waits.

Exit status: 0 when the directory could be read (or does not exist: nothing
waits), 1 when it could not, 2 on a usage or configuration error.
";

/// What a batch's note ends with when the sender it was refused to
/// (`spool::refused_by`) keeps away from it.
const REFUSED_NOTE: &str = "; refused to its sender, kept for a corrected endpoint or headers";

/// What a file's note ends with, before that sender's fingerprint, when
/// it holds spans for another sender than this environment's tracers
/// send through (`spool::destination_of`): they leave it for theirs.
const OTHER_SENDER_NOTE: &str = "; waits for the sender that wrote it, not this environment's:";

/// What the names in `dir` say for the sender this environment's tracers
/// send through (`tracer::sender_fingerprint_of`): its mark under the
/// directory's key (`sender_key`, read, never made: this command only
/// looks), and its bare fingerprint, as earlier spanguards named files.
/// Empty when the settings are bad (said where the directories were read).
fn own_sender(dir: &Path) -> Vec<u64> {
    let mut config = spanguard::config::TracerConfig::default();
    if config.apply_process_env().is_err() {
        return Vec::new();
    }
    let Some(sender) = spanguard::tracer::sender_fingerprint_of(&config) else {
        return Vec::new();
    };
    let key = spanguard::export::sender_key::SenderKey::read_only(dir);
    std::iter::once(sender)
        .chain(key.map(|k| k.mark(sender)))
        .collect()
}

/// The sender the file named `name` waits for when it is not `own`'s and
/// not this file's refused sender's (a refused file waits for any other:
/// `spool::refused_by`).
fn for_another_sender(name: &str, own: &[u64]) -> Option<u64> {
    let path = Path::new(name);
    if spanguard::export::spool::refused_by(path).is_some() {
        return None;
    }
    spanguard::export::spool::destination_of(path).filter(|theirs| !own.contains(theirs))
}

/// What the spool's key file (`sender_key::KEY_FILE`) is, beside its name:
/// listed as "other", it read as something left behind to delete.
const KEY_NOTE: &str = "the key of the sender marks in these names, never sent: deleted, the \
                        files named under it wait for spanguard replay";

/// What refuses a sender its spans, as `spool` and `why` say it: a
/// permanent redirect (301, 308) refuses the URL as a 404 does
/// (`http::classify`).
pub const REFUSALS: &str = "401, 403, 404, a permanent redirect (301, 308)...: a key missing or \
                            wrong, a URL without /v1/traces or moved for good";

/// What a file in the spool is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Entry {
    Batch,
    CrashBatch,
    CrashDump,
    Flight,
    /// A crash file prepared ahead of time by a live tracer, still empty.
    Prepared,
    /// A prepared crash file whose process is gone without writing it (a
    /// SIGKILL, an exit that skipped the tracer's shutdown): the next
    /// tracer start or replay deletes it.
    LeftEmpty,
    /// A writer's temporary file.
    Writing,
    /// A writer's temporary file its writer left when it died (or more
    /// than `LEFT_AFTER` ago, unlocked): the next tracer start or replay
    /// removes it.
    LeftBehind,
    SetAside,
    /// Named like one of the above, but a link, a FIFO, a directory...
    NotAFile,
    Other,
}

impl Entry {
    fn of(name: &str, size: u64) -> Entry {
        if name.starts_with(".tmp-") || spanguard::buffer::files::making_file_of(name).is_some() {
            Entry::Writing
        } else if name.starts_with('.')
            && (name.ends_with(".corrupt") || name.ends_with(".unreadable"))
        {
            // A hidden file set aside (one being made that held bytes).
            Entry::SetAside
        } else if name.starts_with('.') {
            // A tracer start and a replay read no other hidden name (a
            // copy someone made, an editor's backup): never sent, so
            // nothing of ours, whatever it ends with.
            Entry::Other
        } else if name.ends_with(".corrupt") || name.ends_with(".unreadable") {
            Entry::SetAside
        } else if name.ends_with(".sgspool") {
            Entry::Batch
        } else if name.ends_with("-pending") && size == 0 {
            Entry::Prepared
        } else if name.ends_with(".sgspool-pending") {
            Entry::CrashBatch
        } else if name.ends_with(".sgdump") || name.ends_with(".sgdump-pending") {
            Entry::CrashDump
        } else if name.ends_with(".sgflight") {
            Entry::Flight
        } else {
            Entry::Other
        }
    }

    fn label(self) -> &'static str {
        match self {
            Entry::Batch => "batch",
            Entry::CrashBatch => "crash batch",
            Entry::CrashDump => "crash dump",
            Entry::Flight => "flight file",
            Entry::Prepared => "prepared",
            Entry::LeftEmpty => "left empty",
            Entry::Writing => "being written",
            Entry::LeftBehind => "left behind",
            Entry::SetAside => "set aside",
            Entry::NotAFile => "not a file",
            Entry::Other => "other",
        }
    }
}

/// A size in B, KiB, MiB or GiB.
fn size_text(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.1} MiB", n as f64 / 1_048_576.0),
        _ => format!("{:.1} GiB", n as f64 / 1_073_741_824.0),
    }
}

/// How long a tracer start or a replay lets an unlocked temporary file of
/// a writer whose pid is still in use be (the library's
/// `MAKING_FILE_MAX_AGE` and the spool's `TEMP_FILE_MAX_AGE`: no write
/// takes that long; the pid may be another process's since).
const LEFT_AFTER_NS: u64 = 600 * 1_000_000_000;

/// The pid of the process writing a temporary file the next tracer start
/// or replay removes once that process is gone, from the file's name:
/// `files::create_locked`'s `.NAME.PID-N.tmp` for a crash dump, flight
/// file or crash batch (`recovery::remove_dead_makers_files`), the spool
/// writer's `.tmp-TIME-PID-TAG.sgspool` (`remove_dead_temp_files`). None
/// for another name: nothing removes it.
fn writer_of(name: &str) -> Option<u32> {
    if let Some((made_for, pid)) = spanguard::buffer::files::making_file_of(name) {
        return [
            ".sgdump",
            ".sgdump-pending",
            ".sgspool-pending",
            ".sgflight",
        ]
        .iter()
        .any(|s| made_for.ends_with(s))
        .then_some(pid);
    }
    let stem = name.strip_prefix(".tmp-")?.strip_suffix(".sgspool")?;
    stem.split('-').nth(1)?.parse().ok()
}

struct Row {
    entry: Entry,
    /// A regular file of this user's the library's index counts against
    /// SPANGUARD_SPOOL_MAX_BYTES: a batch, or a file set aside.
    capped: bool,
    spans: Option<u64>,
    size: u64,
    age_ns: u64,
    holder: Option<u32>,
    name: String,
    note: String,
    /// Another name of an earlier row's file (a hard link): its bytes are
    /// that row's, on the disk and against the cap once.
    another_name: bool,
}

/// `spool_cap`: the cap this environment's tracers write with
/// (`settings::spool_cap`); `locks`: the lock table as read once for the
/// whole listing.
fn inspect(
    path: &Path,
    name: &str,
    meta: &std::fs::Metadata,
    now: std::time::SystemTime,
    spool_cap: u64,
    locks: &Locks,
) -> Row {
    let size = meta.len();
    let entry = Entry::of(name, size);
    let age_ns = meta
        .modified()
        .ok()
        .and_then(|m| now.duration_since(m).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    // A file that is read is judged by the descriptor it is read through
    // (who holds its lock: `look_at_dump`, `counted`); one that is not,
    // by its name.
    let mut holder = None;
    let mut note = String::new();
    let spans = match entry {
        // Counted in the body, as a replay counts them: the header's count
        // is a claim (an older build, a disk error, another user). Read
        // through a small buffer, never whole: a listing of a 3 GiB file
        // took 3 GiB of memory.
        Entry::Batch | Entry::CrashBatch => match counted(path, spool_cap, locks, &mut holder) {
            Ok(b) => {
                note = format!(
                    "{}{}{}",
                    match b.format {
                        spanguard::export::transport::BodyFormat::Protobuf => "protobuf",
                        spanguard::export::transport::BodyFormat::Json => "JSON",
                    },
                    if b.gzipped { ", gzip" } else { "" },
                    b.claimed.map_or(String::new(), |n| {
                        format!(", its header says {}", diagnostics::spans(u64::from(n)))
                    })
                );
                if spanguard::export::spool::refused_by(path).is_some() {
                    note.push_str(REFUSED_NOTE);
                }
                Some(b.spans as u64)
            }
            Err(why) => {
                note = format!("unreadable: {why}");
                None
            }
        },
        Entry::CrashDump | Entry::Flight if size > super::settings::dump_cap() => {
            holder = locks.holder(path);
            note = format!("unreadable: {}", super::settings::over_dump_cap(size));
            None
        }
        Entry::CrashDump | Entry::Flight => {
            let (view, held) = look_at_dump(path, super::settings::dump_cap(), locks);
            holder = held;
            match view {
                Some(view) => {
                    note = match (holder, view.signal) {
                        (Some(_), _) => format!("pid {}, running", view.pid),
                        (None, 0) => format!("pid {}, killed", view.pid),
                        (None, s) => format!("pid {} died of signal {s}", view.pid),
                    };
                    Some(view.spans.len() as u64)
                }
                None => {
                    note = "unreadable: not a dump this version reads".to_string();
                    None
                }
            }
        }
        _ => {
            holder = locks.holder(path);
            None
        }
    };
    // A file "being written" by a process that died while it wrote (a
    // SIGKILL, an OOM kill between making and naming a crash file): no
    // one writes it, and the next tracer start or replay removes it (one
    // holding bytes of a crash file is set aside instead).
    let mut entry = entry;
    // A prepared file no one holds, of a process that is gone: it ended
    // without a word, and what it had not exported went with it.
    if entry == Entry::Prepared && holder.is_none() {
        if let Some(why) = unwritten_crash_file(path, locks) {
            entry = Entry::LeftEmpty;
            note = why;
        } else if let Some(pid) = name
            .strip_suffix(".sgspool-pending")
            .and_then(crash_file_maker)
            .filter(|&pid| locks.not_all_read().is_none() && !super::locks::alive(pid))
        {
            entry = Entry::LeftEmpty;
            note = format!(
                "its process, pid {pid}, is gone: the next tracer start or spanguard replay deletes it"
            );
        }
    }
    if entry == Entry::Writing
        && holder.is_none()
        && let Some(pid) = writer_of(name)
    {
        let gone = !super::locks::alive(pid);
        if gone || age_ns > LEFT_AFTER_NS {
            entry = Entry::LeftBehind;
            let what = if spanguard::buffer::files::making_file_of(name).is_some() && size > 0 {
                "sets it aside"
            } else {
                "deletes it"
            };
            note = if gone {
                format!(
                    "its writer, pid {pid}, is gone: the next tracer start or spanguard replay {what}"
                )
            } else {
                format!(
                    "unlocked and older than any write: the next tracer start or spanguard replay {what}"
                )
            };
        }
    }
    let capped = {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid cannot fail.
        let ours = meta.uid() == unsafe { libc::geteuid() };
        ours && matches!(entry, Entry::Batch | Entry::SetAside)
    };
    Row {
        entry,
        capped,
        spans,
        size,
        age_ns,
        holder,
        name: name.to_string(),
        note,
        another_name: false,
    }
}

/// Marks each batch of `rows` (sorted by name) that is another name of an
/// earlier one's file (a hard link: `ln`, a restore by `cp -al`): a replay
/// sends the file once, under its first name, and deletes the others, so
/// its spans wait once. Counted under each name, they were said to wait
/// twice. `linked`: the device and inode of each file listed that has
/// more than one name, by its name (apart from the rows: a field in every
/// row cost a listing of 120,000 files 4 MB more).
fn other_names_of_one_batch(rows: &mut [Row], linked: &HashMap<String, (u64, u64)>) {
    if linked.is_empty() {
        return;
    }
    let mut first: HashMap<(u64, u64), String> = HashMap::new();
    for row in rows.iter_mut() {
        let Some(&id) = linked
            .get(&row.name)
            .filter(|_| row.entry == Entry::Batch && row.spans.is_some())
        else {
            continue;
        };
        match first.get(&id) {
            Some(name) => {
                row.spans = None;
                row.capped = false;
                row.another_name = true;
                row.note = format!(
                    "another name of {name}: a replay sends that batch once and deletes this name"
                );
            }
            None => {
                first.insert(id, row.name.clone());
            }
        }
    }
}

/// `count_spool_file` through one descriptor, which also says who holds
/// the file's lock (`*holder`; by name when it cannot be opened).
fn counted(
    path: &Path,
    spool_cap: u64,
    locks: &Locks,
    holder: &mut Option<u32>,
) -> Result<FileCount, String> {
    let file = open_to_look(path).inspect_err(|_| *holder = locks.holder(path))?;
    *holder = file.metadata().ok().and_then(|m| locks.holder_of(&m));
    count_opened_spool_file(&file, spool_cap)
}

/// A link, a FIFO, a directory... named like a file of the spool: never
/// read, and set aside by the next replay or tracer start, which say so
/// (`files::open_found`); listed here too, so that what `spool` shows is
/// what a replay then reports. None for one named like nothing of ours.
fn not_a_file_row(
    name: &str,
    what: &str,
    meta: &std::fs::Metadata,
    now: std::time::SystemTime,
) -> Option<Row> {
    // What a replay looks at: no hidden name but a writer's temporary
    // batch (`.tmp-*.sgspool`; `Entry::of` takes other hidden names for
    // nothing of ours).
    let (entry, note) = match Entry::of(name, 0) {
        Entry::Other => return None,
        Entry::Writing if !name.ends_with(".sgspool") => return None,
        Entry::SetAside => (Entry::SetAside, what.to_string()),
        _ => (
            Entry::NotAFile,
            format!("{what}: never read; a replay sets it aside"),
        ),
    };
    Some(Row {
        entry,
        spans: None,
        // A link's or a directory's own size holds no span.
        size: 0,
        age_ns: meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .map_or(0, |d| d.as_nanos() as u64),
        holder: None,
        name: name.to_string(),
        note,
        another_name: false,
        // A link or a FIFO set aside is never counted nor deleted.
        capped: false,
    })
}

/// What the spool directory `dir` holds: its entries by name, and the
/// summary line (files, bytes, spans waiting, held, unreadable). None
/// when it does not exist.
fn survey(dir: &Path) -> std::io::Result<Option<(Vec<Row>, String)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let now = std::time::SystemTime::now();
    let spool_cap = super::settings::spool_cap();
    // One reading of the lock table for every file of the listing.
    let locks = Locks::default();
    let mut linked = HashMap::new();
    let mut rows: Vec<Row> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let meta = std::fs::symlink_metadata(e.path()).ok()?;
            let name = e.file_name().to_string_lossy().into_owned();
            if meta.is_file() && meta.nlink() > 1 {
                linked.insert(name.clone(), (meta.dev(), meta.ino()));
            }
            match not_a_file(&meta) {
                None => Some(inspect(&e.path(), &name, &meta, now, spool_cap, &locks)),
                Some(what) => not_a_file_row(&name, what, &meta, now),
            }
        })
        .collect();
    rows.sort_by(|x, y| x.name.cmp(&y.name));
    other_names_of_one_batch(&mut rows, &linked);
    // Files written for another sender than this environment's tracers
    // send through (`spool::destination_of`): they never send them.
    let own = own_sender(dir);
    for r in rows.iter_mut() {
        if r.name == spanguard::export::sender_key::KEY_FILE {
            r.note = KEY_NOTE.to_string();
        }
        if let Some(theirs) = for_another_sender(&r.name, &own)
            && r.spans.is_some()
        {
            r.note
                .push_str(&format!("{OTHER_SENDER_NOTE} {theirs:016x}"));
        }
    }

    // What a tracer start or a replay would send: readable, and not held
    // by a live process (whose own exporter sends it).
    let waiting = |r: &&Row| r.spans.is_some() && r.holder.is_none();
    let spans_waiting: u64 = rows.iter().filter(waiting).filter_map(|r| r.spans).sum();
    let mut kinds = Vec::new();
    for entry in [
        Entry::Batch,
        Entry::CrashBatch,
        Entry::CrashDump,
        Entry::Flight,
    ] {
        let n = rows
            .iter()
            .filter(waiting)
            .filter(|r| r.entry == entry)
            .count();
        if n > 0 {
            let label = entry.label();
            kinds.push(match (n, label.ends_with('h')) {
                (1, _) => format!("1 {label}"),
                (_, true) => format!("{n} {label}es"),
                _ => format!("{n} {label}s"),
            });
        }
    }
    // The key of the names' sender marks is listed, not counted: no file
    // that waits, and "2 files" for one batch read as a second one.
    let is_key = |r: &&Row| r.name == spanguard::export::sender_key::KEY_FILE;
    let bytes: u64 = rows
        .iter()
        .filter(|r| !r.another_name && !is_key(r))
        .map(|r| r.size)
        .sum();
    let files = rows.iter().filter(|r| !is_key(r)).count();
    let unreadable = rows
        .iter()
        .filter(|r| {
            matches!(r.entry, Entry::SetAside | Entry::NotAFile)
                || (r.spans.is_none() && r.note.starts_with("unreadable"))
        })
        .count();
    let held = rows.iter().filter(|r| r.holder.is_some()).count();
    let mut summary = format!(
        "spool {}: {}, {}; {} to be sent",
        dir.display(),
        count(files as u64, "file", "files"),
        size_text(bytes),
        match spans_waiting {
            1 => "1 span waits".to_string(),
            n => format!("{n} spans wait"),
        }
    );
    if !kinds.is_empty() {
        summary.push_str(&format!(" ({})", kinds.join(", ")));
    }
    if held > 0 {
        summary.push_str(&match held {
            1 => "; 1 held by a live process".to_string(),
            n => format!("; {n} held by live processes"),
        });
    }
    if unreadable > 0 {
        summary.push_str(&format!("; {unreadable} unreadable (never sent)"));
    }
    let refused: u64 = rows
        .iter()
        .filter(|r| r.note.ends_with(REFUSED_NOTE))
        .filter_map(|r| r.spans)
        .sum();
    if refused > 0 {
        summary.push_str(&format!(
            "; {} refused to {} sender ({REFUSALS}), kept for a corrected setting: that sender \
             never sends {}, one with the key or the URL fixed does (or spanguard replay \
             --endpoint <url> --headers <k=v>)",
            diagnostics::spans(refused),
            if refused == 1 { "its" } else { "their" },
            if refused == 1 { "it" } else { "them" },
        ));
    }
    let others: Vec<&Row> = rows
        .iter()
        .filter(waiting)
        .filter(|r| r.note.contains(OTHER_SENDER_NOTE))
        .collect();
    if !others.is_empty() {
        let spans: u64 = others.iter().filter_map(|r| r.spans).sum();
        let mut senders: Vec<u64> = others
            .iter()
            .filter_map(|r| spanguard::export::spool::destination_of(Path::new(&r.name)))
            .collect();
        senders.sort_unstable();
        senders.dedup();
        // The command that sends each sender's, not "replay" alone: that
        // sends every file, another project's too, to this endpoint. With
        // this environment's endpoint and headers: the spans of a tracer
        // whose API key was rotated since (the same URL, a new key) wait
        // for a sender that never comes again.
        const COMMANDS_SAID: usize = 3;
        let dir_text = super::terminal::clean(&dir.display().to_string());
        let mut commands: Vec<String> = senders
            .iter()
            .take(COMMANDS_SAID)
            .map(|m| format!("spanguard replay {dir_text} --sender {m:016x}"))
            .collect();
        if senders.len() > COMMANDS_SAID {
            commands.push(format!(
                "{} more (each file's mark is in its note)",
                senders.len() - COMMANDS_SAID
            ));
        }
        summary.push_str(&format!(
            "; {} of them for {} than this environment's tracers send to (another endpoint, \
             headers or TLS files, or sink directory): only a tracer set up like the one that \
             wrote {} sends {}, or by hand, to this environment's endpoint and headers (an API \
             key rotated since, say): {}",
            diagnostics::spans(spans),
            match senders.len() {
                1 => "another sender".to_string(),
                n => format!("{n} other senders"),
            },
            if spans == 1 { "it" } else { "them" },
            if spans == 1 { "it" } else { "them" },
            commands.join(", "),
        ));
    }
    // What a tracer does when it spools next: it deletes files set aside
    // first, oldest first, then the oldest batches, until the spool is
    // within SPANGUARD_SPOOL_MAX_BYTES (`spool::evict_over_cap`).
    let aside: Vec<&Row> = rows
        .iter()
        .filter(|r| r.capped && r.entry == Entry::SetAside)
        .collect();
    let capped: u64 = rows.iter().filter(|r| r.capped).map(|r| r.size).sum();
    let aside_bytes: u64 = aside.iter().map(|r| r.size).sum();
    if capped > spool_cap {
        summary.push_str(&format!(
            "; over its {} cap (SPANGUARD_SPOOL_MAX_BYTES) by {}: the next batch a tracer \
             spools deletes {}",
            size_text(spool_cap),
            size_text(capped - spool_cap),
            if aside.is_empty() {
                "the oldest batches, their spans lost"
            } else if aside_bytes >= capped - spool_cap {
                "files set aside, oldest first"
            } else {
                "the files set aside, then the oldest batches, their spans lost"
            }
        ));
    } else if !aside.is_empty() {
        summary.push_str(&format!(
            "; {} set aside ({}) {} against its {} cap: a tracer that needs room deletes \
             {} first",
            count(aside.len() as u64, "file", "files"),
            size_text(aside_bytes),
            if aside.len() == 1 { "counts" } else { "count" },
            size_text(spool_cap),
            if aside.len() == 1 {
                "it"
            } else {
                "them, oldest"
            }
        ));
    }
    let left = rows.iter().filter(|r| r.entry == Entry::LeftBehind).count();
    if left > 0 {
        summary.push_str(&format!(
            "; {} by writers that died (the next tracer start or spanguard replay removes {})",
            match left {
                1 => "1 file left".to_string(),
                n => format!("{n} files left"),
            },
            if left == 1 { "it" } else { "them" }
        ));
    }
    let mut unshut: Vec<u32> = rows
        .iter()
        .filter(|r| r.entry == Entry::LeftEmpty && r.name.ends_with(".sgdump-pending"))
        .filter_map(|r| crash_file_maker(&r.name))
        .collect();
    unshut.sort_unstable();
    unshut.dedup();
    if !unshut.is_empty() {
        let pids: Vec<String> = unshut.iter().map(|p| p.to_string()).collect();
        summary.push_str(&format!(
            "; {} ended without shutting {} tracer down (pid {}: SIGKILL, the OOM killer?): \
             the spans not yet exported then are lost (SPANGUARD_FLIGHT_RECORDER=true keeps them)",
            count(unshut.len() as u64, "process", "processes"),
            if unshut.len() == 1 { "its" } else { "their" },
            pids.join(", ")
        ));
    }
    if let Some(why) = locks.not_all_read() {
        summary.push_str(&format!("; {why}"));
    }
    Ok(Some((rows, summary)))
}

/// The summary line of `spool` for `dir`, or what keeps it from being
/// read: what `spanguard check` says of the spool.
pub fn summary(dir: &Path) -> String {
    match survey(dir) {
        Ok(Some((_, summary))) => summary,
        Ok(None) => format!("spool {}: does not exist, so nothing waits", dir.display()),
        Err(e) => format!("spool {}: cannot be read: {e}", dir.display()),
    }
}

/// The spans in `dir` a tracer start or a replay would send (readable
/// files no live process holds), or None when it cannot be read.
pub fn spans_waiting(dir: &Path) -> Option<u64> {
    let (rows, _) = survey(dir).ok()??;
    Some(
        rows.iter()
            .filter(|r| r.holder.is_none())
            .filter_map(|r| r.spans)
            .sum(),
    )
}

/// What `dir` keeps that the next process set up as this environment
/// does not send, as `spanguard why` says it.
pub struct KeptForOthers {
    /// Spans its senders were refused (`REFUSALS`) and
    /// kept for a corrected setting (`spool::refused_by`).
    pub refused: u64,
    /// Spans spooled or left by a dead process for another sender
    /// (`spool::destination_of`), and how many senders those are.
    pub for_other_senders: u64,
    pub other_senders: usize,
}

/// `KeptForOthers` of `dir` (all zero when it cannot be read). Only the
/// files whose names carry a refusal or another sender's mark are
/// opened, and only those are held: a directory another user filled with
/// 120,000 files cost `spanguard why` two listings of every one of them
/// (rows, sorted) and 32 MB. A batch under two names counts once. The
/// files named in `said` (a dead process's crash dump or flight file,
/// whose fate `why` says under its record, as the setup the record names)
/// are not counted for another sender.
pub fn kept_for_others(dir: &Path, said: &[&str]) -> KeptForOthers {
    let mut kept = KeptForOthers {
        refused: 0,
        for_other_senders: 0,
        other_senders: 0,
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return kept;
    };
    let own = own_sender(dir);
    let now = std::time::SystemTime::now();
    let spool_cap = super::settings::spool_cap();
    let locks = Locks::default();
    let mut seen = std::collections::HashSet::new();
    let mut senders = Vec::new();
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let refused = spanguard::export::spool::refused_by(Path::new(&name)).is_some();
        let theirs = for_another_sender(&name, &own).filter(|_| !said.contains(&name.as_str()));
        if !refused && theirs.is_none() {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if not_a_file(&meta).is_some() || !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        let row = inspect(&e.path(), &name, &meta, now, spool_cap, &locks);
        let Some(spans) = row.spans else {
            continue;
        };
        if refused && row.note.ends_with(REFUSED_NOTE) {
            kept.refused += spans;
        } else if let Some(theirs) = theirs
            && row.holder.is_none()
        {
            kept.for_other_senders += spans;
            senders.push(theirs);
        }
    }
    senders.sort_unstable();
    senders.dedup();
    kept.other_senders = senders.len();
    kept
}

pub fn run(args: &[String]) -> ExitCode {
    let a = match Args::parse(args, &["--help", "-h"], &[]) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("spanguard spool: {e} (spanguard spool --help)");
            return ExitCode::from(2);
        }
    };
    if a.flag("--help") || a.positional.iter().any(|p| p == "-h") {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    let dir = match a.positional.as_slice() {
        [] => match super::settings::default_dirs() {
            Ok((_, spool)) => spool,
            Err(code) => return code,
        },
        [d] => PathBuf::from(d),
        _ => {
            eprintln!("spanguard spool: one directory at most");
            return ExitCode::from(2);
        }
    };
    let (rows, summary) = match survey(&dir) {
        Ok(Some(survey)) => survey,
        Ok(None) => {
            println!("spool {}: does not exist, so nothing waits", dir.display());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("spanguard spool: {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    println!("{summary}");
    if rows.is_empty() {
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<13} {:>7} {:>10} {:>8}  {:<16} FILE",
        "KIND", "SPANS", "SIZE", "AGE", "HELD BY"
    );
    for r in &rows {
        let held = match r.holder {
            Some(pid) => format!("pid {pid} (live)"),
            None => "-".to_string(),
        };
        let note = if r.note.is_empty() {
            String::new()
        } else {
            format!("  ({})", r.note)
        };
        println!(
            "{:<13} {:>7} {:>10} {:>8}  {:<16} {}{note}",
            r.entry.label(),
            r.spans.map_or("-".to_string(), |n| n.to_string()),
            size_text(r.size),
            age(r.age_ns),
            held,
            // Whoever made the file named it: no line or escape of its own.
            super::terminal::clean(&r.name)
        );
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a live process holds a file is read from the machine's
    /// whole lock table: read for each file, a listing cost files x locks,
    /// and another user holding many locks made `spool` crawl. A listing
    /// of many files of every kind reads it once.
    #[test]
    fn a_listing_reads_the_lock_table_once_not_once_a_file() {
        let dir = std::env::temp_dir().join(format!("sg-spool-locks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let n = 12;
        for i in 0..n {
            for ext in ["sgspool", "sgspool-pending", "sgdump", "sgflight", "other"] {
                std::fs::write(dir.join(format!("f{i}.{ext}")), b"not ours").expect("write");
            }
            std::fs::write(dir.join(format!(".tmp-{i}.sgspool")), b"half").expect("write");
        }
        let before = super::super::locks::tests::table_reads();
        let (rows, _) = survey(&dir).expect("read").expect("exists");
        let reads = super::super::locks::tests::table_reads() - before;
        assert_eq!(rows.len(), 6 * n);
        assert_eq!(
            reads,
            1,
            "the lock table read {reads} times for {} files",
            rows.len()
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
