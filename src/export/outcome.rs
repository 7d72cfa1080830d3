//! What a process's tracer did with its spans, kept on disk for after the
//! fact: a small text file a process (`<pid>-<n>-<instance>.sgoutcome`, n
//! the process's tracer, instance a random number of that tracer's) in its
//! spool directory's `outcomes/`, its counts and
//! the first message of each cause of loss. A process that ended, or was
//! killed, left only its stderr lines, often lost with its container: the
//! spool holds the spans waiting, crash dumps and flight files those of a
//! crash, but nothing said that a run's 40 spans were refused with a 404.
//! `spanguard why` reads these files.
//!
//! Written by the exporter thread alone (never a recording call or a
//! signal handler): at its start, when something changed at most once an
//! `EVERY` (so that a SIGKILL leaves the last one, at most that old), and
//! at its stop. A write after the first allocates nothing (the buffer and
//! paths are made once; the exporter's own steady state allocates
//! nothing). The directory is made private as the spool's is, the file is
//! written under a temporary name opened with O_EXCL and O_NOFOLLOW (0600)
//! and renamed over the last one (a link planted there is replaced, never
//! followed), and it is a few KiB at most. Old processes' files are pruned
//! at the first write: `MOST_KEPT` stay. Pruning gives way to a flush or a
//! shutdown (the next write goes on with it): the record is a diagnostic,
//! and 100,000 files planted there held a short process's spans past its
//! shutdown's deadline.
//!
//! A pid alone names no process: a container restarted on the same volume
//! runs its new process as the dead one's pid (1, or a small one again).
//! Named `<pid>-<n>` as before, the new process's first record replaced
//! the dead one's, and `spanguard why` lost what the run that was killed
//! did, in the crash loop where it is wanted most; reading a record's pid
//! as a live process, it said a run killed moments before was running.
//! So the name carries a random instance, and the file the process's
//! start (`start_ticks`, `boot_id`: `ProcessStart`), by which a reader
//! knows the very process that wrote it, and its PID namespace
//! (`pid_ns`): a reader on the host, where the container's pid 1 is
//! another pid, looks for it by its start (`spanguard why`). Older files
//! (`<pid>-<n>`, no start; no pid_ns) are read as before.
//!
//! What ended a process that died is known to what it left, not to its
//! record: a crash dump names its signal (SIGSEGV, or the SIGTERM the
//! termination watchdog flushed for), a SIGKILLed process's flight file
//! names none. So a record names the files its tracer leaves if its
//! process dies (`leaves`), and whoever recovers one (the next tracer
//! started alike, `spanguard replay`) notes in that record what it held
//! and the signal it names (`died`, `note_death`) before deleting it:
//! `spanguard why` then says "died of SIGSEGV". A stop for a termination
//! signal (a binding's handler's shutdown) names its signal too (`signal`
//! beside `state stopped`). A reader leaves alone the lines it does not
//! know, so a reader of a version before reads these records as it did,
//! and a record without them reads as before.

use std::collections::BinaryHeap;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::spool::HANDLED_BEFORE_GIVING_WAY;
use crate::buffer::files;
use crate::stats::StatsSnapshot;

/// What the name of an outcome file ends with.
pub const SUFFIX: &str = ".sgoutcome";
/// The first line of an outcome file: its format and version.
pub const MAGIC: &str = "spanguard-outcome 1";
/// How many processes' files are kept: older ones are removed.
pub const MOST_KEPT: usize = 64;
/// The most an outcome file holds; a reader reads no more.
pub const MOST_BYTES: usize = 8 << 10;
/// The most of a reason kept, in bytes (the server's words can be long).
const MOST_REASON_BYTES: usize = 600;
/// The most causes written; `Diagnostics` tells at most 8 apart, and one
/// more line sums the rest.
const MOST_CAUSES: usize = 9;
/// The least time between two writes while the process runs.
pub const EVERY: Duration = Duration::from_secs(5);
/// The most files a record names as left by its tracer (`leaves`): a
/// crash dump or a flight file, and room for one more.
const MOST_LEAVES: usize = 2;
/// The most `died` lines read: one a file left.
const MOST_DEATHS: usize = MOST_LEAVES;
/// The most a `died` line takes: four numbers.
const DIED_LINE_BYTES: usize = "died ".len() + 4 * 21;
/// The most places where values were cut a file says (`cut` lines): the
/// places `Diagnostics` keeps apart, and the rest summed.
const MOST_CUTS: usize = 11;
/// The most files set aside a record names (`aside` lines): the first.
const MOST_ASIDE: usize = 3;
/// The most of a place where values were cut kept, in bytes: the limit,
/// its size and the setting that raises it.
const MOST_CUT_BYTES: usize = 400;
/// The most warnings the backend accepted spans with a file says
/// (`warning` lines): as many as causes of loss.
const MOST_WARNINGS: usize = MOST_CAUSES;

/// The tracers this process made so far: a process with two (two
/// bindings, a tracer made again) keeps a file for each.
static TRACERS: AtomicU32 = AtomicU32::new(0);

/// The outcomes directory of the spool directory `spool`: where the user
/// chose to keep this service's files, which may be the one writable
/// volume of a container, a directory per service on a shared machine.
/// Under the default state directory, the records of a tracer told to
/// use another spool were written where its container could not keep
/// them, or mixed with another service's, and `spanguard why --dir` of
/// that spool found none. The spool directory is checked to be the user's
/// own at the tracer's start; this one is made private as it is.
pub fn dir_in(spool: &Path) -> PathBuf {
    spool.join("outcomes")
}

/// Whether the process was still running at the write, or had stopped its
/// tracer (shut down, exited).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Running,
    Stopped,
    /// Stopped by a shutdown for this termination signal (a binding's own
    /// handler caught it): the spans still open were marked interrupted
    /// by it.
    StoppedAt(i32),
    /// The watchdog flushed the tracer for this termination signal, which
    /// the process is about to die of (a process that lives on, a host's
    /// handler having returned, writes `Running` again).
    EndingOf(i32),
}

impl State {
    fn word(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Stopped | State::StoppedAt(_) => "stopped",
            State::EndingOf(_) => "ending",
        }
    }
}

/// The counts a file holds, from the tracer's own (`spanguard_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub ended: u64,
    pub exported: u64,
    pub spooled: u64,
    pub lost: u64,
    pub rejected: u64,
    pub buffer_full: u64,
    pub unsampled: u64,
    pub spool_overflow: u64,
    /// Of `ended`: still open when the tracer stopped, ended by it and
    /// sent marked spanguard.unended.
    pub unended: u64,
    /// Of `ended`: still open when a termination signal stopped the
    /// tracer, sent marked spanguard.interrupted.
    pub interrupted: u64,
    /// Values cut (`values_truncated`): their spans were sent, without
    /// all of what the program gave them. 0 in a file of a version before.
    pub truncated: u64,
    /// Attributes, events and links that did not fit their spans (their
    /// count limits, the payload pool; `attributes_dropped`,
    /// `events_dropped`, `links_dropped`): their spans were sent without
    /// them. 0 in a file of a version before.
    pub attributes_dropped: u64,
    pub events_dropped: u64,
    pub links_dropped: u64,
    /// Files set aside, unread (`files_set_aside`): renamed `*.unreadable`
    /// for a person, never sent. 0 in a file of a version before.
    pub set_aside: u64,
}

impl Counts {
    pub fn of(s: &StatsSnapshot) -> Counts {
        Counts {
            ended: s.spans_ended,
            exported: s.spans_exported,
            spooled: s.spooled_spans,
            lost: s.dropped_export_failed,
            rejected: s.dropped_rejected,
            buffer_full: s.dropped_buffer_full,
            unsampled: s.spans_unsampled,
            spool_overflow: s.dropped_spool_overflow,
            unended: s.spans_unended_at_shutdown,
            interrupted: s.spans_interrupted_at_shutdown,
            truncated: s.values_truncated,
            attributes_dropped: s.attributes_dropped,
            events_dropped: s.events_dropped,
            links_dropped: s.links_dropped,
            set_aside: s.files_set_aside,
        }
    }

    /// The counts by their names in the file, in its order.
    fn named(&self) -> [(&'static str, u64); 15] {
        [
            ("ended", self.ended),
            ("exported", self.exported),
            ("spooled", self.spooled),
            ("lost", self.lost),
            ("rejected", self.rejected),
            ("buffer_full", self.buffer_full),
            ("unsampled", self.unsampled),
            ("spool_overflow", self.spool_overflow),
            ("unended", self.unended),
            ("interrupted", self.interrupted),
            ("truncated", self.truncated),
            ("attributes_dropped", self.attributes_dropped),
            ("events_dropped", self.events_dropped),
            ("links_dropped", self.links_dropped),
            ("files_set_aside", self.set_aside),
        ]
    }
}

/// The outcome file of one tracer of this process.
pub struct OutcomeFile {
    dir: PathBuf,
    path: CString,
    temp: CString,
    /// What the file will hold; made once with room for the most it can.
    text: Vec<u8>,
    service: String,
    target: String,
    /// This process's start, None if /proc could not say.
    start: Option<ProcessStart>,
    started_unix_s: u64,
    /// The directory was made (at the first write).
    ready: bool,
    /// Old processes' files were pruned (at the first write, or the next
    /// ones when it gave way).
    pruned: bool,
    /// A write failed in a way that would fail again (no directory, not
    /// ours): no more tries, nor their cost.
    given_up: bool,
    written_at: Option<Instant>,
    written: Counts,
    /// Why this tracer's own spans first went to the spool (one line,
    /// `MOST_REASON_BYTES`), empty while none did: "14 spans went to the
    /// spool" alone left the user of `spanguard why` asking why.
    spooled_because: String,
    /// How many of the spooled spans were refused to their sender (401,
    /// 404...) and kept for a corrected setting, which a process set up
    /// as this one never sends.
    refused: u64,
    /// The names (in the spool directory) of the files this tracer leaves
    /// if its process dies: its crash dump, its flight file.
    leaves: Vec<String>,
    /// Where values were cut, with the values cut there (`note_cuts`).
    cuts: Vec<(String, u64)>,
    /// What was said of the first files set aside (`note_set_aside`).
    aside: Vec<String>,
    /// The warnings the backend accepted spans with, with their spans
    /// (`note_warnings`).
    warnings: Vec<(String, u64)>,
    /// Another user's directory or link found at `dir` and set aside
    /// (`make_dir`), not yet taken by the owner to count and report
    /// (`take_set_aside`).
    set_aside: Option<files::SetAside>,
}

impl OutcomeFile {
    /// The file of this process's next tracer in `dir`, for spans of
    /// `service` sent to `target` (said as the diagnostics say it).
    pub fn new(dir: &Path, service: &str, target: &str) -> OutcomeFile {
        let n = TRACERS.fetch_add(1, Ordering::Relaxed);
        // The instance keeps this process's file apart from a dead one's
        // of the same pid (see the module's summary).
        let name = format!(
            "{}-{n}-{:016x}{SUFFIX}",
            std::process::id(),
            crate::span::ids::new_span_id_u64()
        );
        let c = |p: PathBuf| CString::new(p.as_os_str().as_bytes()).unwrap_or_default();
        OutcomeFile {
            dir: dir.to_path_buf(),
            path: c(dir.join(&name)),
            temp: c(dir.join(format!(".tmp-{name}"))),
            text: Vec::with_capacity(MOST_BYTES),
            service: one_line(service, MOST_REASON_BYTES),
            target: one_line(target, MOST_REASON_BYTES),
            start: ProcessStart::of_this_process(),
            started_unix_s: crate::span::clock::now_unix_ns() / 1_000_000_000,
            ready: false,
            pruned: false,
            given_up: false,
            written_at: None,
            written: Counts::default(),
            spooled_because: String::new(),
            refused: 0,
            leaves: Vec::new(),
            cuts: Vec::new(),
            aside: Vec::new(),
            warnings: Vec::new(),
            set_aside: None,
        }
    }

    /// Keeps what was said of files set aside (`SetAsideNews::messages`),
    /// the first `MOST_ASIDE`, for the records: `spanguard why` names
    /// them beside their count.
    pub fn note_set_aside(&mut self, message: &str) {
        if self.aside.len() < MOST_ASIDE {
            self.aside.push(one_line(message, MOST_REASON_BYTES));
        }
    }

    /// Keeps `cuts` (where values were cut, with the values cut there:
    /// `Diagnostics::values_cut_places`) for the next record. Allocates
    /// only when a place is new: values are cut in a few places.
    pub fn note_cuts<'a>(&mut self, cuts: impl Iterator<Item = (&'a str, u64)>) {
        keep_counted(&mut self.cuts, cuts.take(MOST_CUTS), MOST_CUT_BYTES);
    }

    /// Keeps `warnings` (each warning the backend accepted spans with, and
    /// their spans: `Diagnostics::warnings`) for the next record, as
    /// `note_cuts` keeps its places: said on stderr alone, an answer that
    /// could not be read ("any spans it rejected there are counted
    /// delivered") was gone with the terminal, and `spanguard why` said
    /// "nothing lost".
    pub fn note_warnings<'a>(&mut self, warnings: impl Iterator<Item = (&'a str, u64)>) {
        keep_counted(
            &mut self.warnings,
            warnings.take(MOST_WARNINGS),
            MOST_REASON_BYTES,
        );
    }

    /// Names `path` (in the spool directory) as a file this tracer leaves
    /// if its process dies, written with the next record: its recoverer
    /// finds this record by it (`note_death`).
    pub fn note_leaves(&mut self, path: &Path) {
        if let Some(name) = path.file_name()
            && self.leaves.len() < MOST_LEAVES
        {
            self.leaves
                .push(one_line(&name.to_string_lossy(), MOST_REASON_BYTES));
        }
    }

    /// Keeps `reason` as why the spans first went to the spool, written
    /// with the next record; the first reason given stays (later ones
    /// are the same streak's, or say less), so this allocates once.
    pub fn note_spooled_because(&mut self, reason: &str) {
        if self.spooled_because.is_empty() {
            self.spooled_because = one_line(reason, MOST_REASON_BYTES);
        }
    }

    /// Keeps `n` as how many of the spooled spans were refused to their
    /// sender, written with the next record.
    pub fn note_refused(&mut self, n: u64) {
        self.refused = n;
    }

    /// What sat at the records' directory's name and was set aside as
    /// another user's (`make_dir`), once: for the owner to count with the
    /// other files set aside (`files_set_aside`) and report
    /// (`FileSetAside`), as the spool's are.
    pub fn take_set_aside(&mut self) -> Option<files::SetAside> {
        self.set_aside.take()
    }

    /// Whether `take_set_aside` has something to give.
    pub fn has_set_aside(&self) -> bool {
        self.set_aside.is_some()
    }

    /// This record written at `path` (another of this process's, in the
    /// same directory), from the time `started_unix_s`: a stand-in
    /// exporter's, which carries on the stuck one's record (`export::stand_in`).
    /// Left beside it, the stuck one's last record (running) read as a
    /// process killed.
    pub fn carrying_on(mut self, path: &Path, started_unix_s: u64) -> OutcomeFile {
        if let Some(name) = path.file_name() {
            let c = |p: PathBuf| CString::new(p.as_os_str().as_bytes()).unwrap_or_default();
            self.path = c(self.dir.join(name));
            self.temp = c(self.dir.join(format!(".tmp-{}", name.to_string_lossy())));
            self.started_unix_s = started_unix_s;
        }
        self
    }

    /// When the tracer writing it started (seconds since the epoch).
    pub fn started_unix_s(&self) -> u64 {
        self.started_unix_s
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        Path::new(std::ffi::OsStr::from_bytes(self.path.as_bytes()))
    }

    /// Whether the last write is an `EVERY` old (or none was made) and
    /// writing has not been given up: asked before the counts are read,
    /// which costs the exporter loads of lines the recording threads write.
    pub fn time_due(&self, now: Instant) -> bool {
        !self.given_up
            && self
                .written_at
                .is_none_or(|t| now.saturating_duration_since(t) >= EVERY)
    }

    /// Whether a write is due while running: something changed since the
    /// last, and that was an `EVERY` ago.
    pub fn due(&self, counts: &Counts, now: Instant) -> bool {
        self.time_due(now) && *counts != self.written
    }

    /// Writes the file anew: `state`, `counts`, and each cause of loss
    /// as (its first message, its spans). Errors are the caller's to
    /// ignore (nothing else may be lost for a record that could not be
    /// kept). Old files are pruned first until `give_way` says something
    /// else needs the thread (asked past the first
    /// `spool::HANDLED_BEFORE_GIVING_WAY` files).
    pub fn write<'a>(
        &mut self,
        state: State,
        counts: &Counts,
        causes: impl Iterator<Item = (&'a str, u64)>,
        give_way: impl FnMut() -> bool,
    ) -> io::Result<()> {
        if self.given_up {
            return Ok(());
        }
        if !self.ready {
            match make_dir(&self.dir) {
                Ok(aside) => self.set_aside = aside,
                Err(e) => {
                    self.given_up = true;
                    return Err(e);
                }
            }
            self.ready = true;
        }
        if !self.pruned {
            self.pruned = prune(&self.dir, MOST_KEPT - 1, self.path(), give_way);
        }
        self.written_at = Some(Instant::now());
        self.written = *counts;
        let updated = crate::span::clock::now_unix_ns() / 1_000_000_000;
        self.text.clear();
        render(
            &mut self.text,
            &Header {
                service: &self.service,
                target: &self.target,
                start: self.start.as_ref(),
                started_unix_s: self.started_unix_s,
                updated_unix_s: updated,
                state,
                spooled_because: &self.spooled_because,
                refused: self.refused,
                leaves: &self.leaves,
                cuts: &self.cuts,
                aside: &self.aside,
                warnings: &self.warnings,
            },
            counts,
            causes,
        );
        self.replace_file()
    }

    /// Writes `text` under the temporary name, then renames it over the
    /// file: a reader sees the last whole record or the one before, never
    /// half of one. No allocation (the paths are made).
    fn replace_file(&self) -> io::Result<()> {
        // A temporary file a write cut short left (a kill in between):
        // ours, in our private directory; unlink takes a link itself.
        // SAFETY: a NUL-terminated path we own.
        unsafe { libc::unlink(self.temp.as_ptr()) };
        // SAFETY: as above; the flags make a new regular file or fail,
        // never following a link.
        let fd = unsafe {
            libc::open(
                self.temp.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and is owned by nothing else.
        let mut file = unsafe { File::from_raw_fd(fd) };
        let written = file.write_all(&self.text);
        drop(file);
        // SAFETY: NUL-terminated paths we own.
        if written.is_err() || unsafe { libc::rename(self.temp.as_ptr(), self.path.as_ptr()) } != 0
        {
            let e = written.err().unwrap_or_else(io::Error::last_os_error);
            // SAFETY: as above.
            unsafe { libc::unlink(self.temp.as_ptr()) };
            return Err(e);
        }
        Ok(())
    }
}

/// Makes the records' directory `dir` private as the spool's is. Another
/// user's directory or link at its name, in a spool of ours (planted while
/// the spool was open to others, before the tracer made it private), is
/// set aside (`<dir>.unreadable`, unread) and a directory of ours made:
/// refused, it kept every record of the user's from being written for
/// good, `spanguard why` saying no process had left one, and its owner
/// could still write in it through a descriptor held open. Nothing is
/// moved unless the spool itself is ours. What was set aside, if anything:
/// counted and reported by the caller, as every file set aside is.
fn make_dir(dir: &Path) -> io::Result<Option<files::SetAside>> {
    // ENOTDIR: no directory at the name (the spool is one, made just
    // before): a file, a FIFO or a link to one, of anyone's.
    let refused = match files::ensure_private_dir(dir) {
        Err(e) if files::is_foreign_directory(&e) || e.raw_os_error() == Some(libc::ENOTDIR) => e,
        done => return done.map(|()| None),
    };
    let not_a_directory = refused.raw_os_error() == Some(libc::ENOTDIR);
    let spool = dir
        .parent()
        .ok_or_else(|| io::Error::other(refused.to_string()))?;
    files::ensure_private_dir(spool)?;
    let meta = std::fs::symlink_metadata(dir)?;
    // SAFETY: geteuid cannot fail and has no preconditions.
    let me = unsafe { libc::geteuid() };
    // Ours or root's (a link of theirs leading to a directory refused):
    // the user's to look at, left as it is. No directory at all, ours
    // too, is set aside: left, no record was ever written, said nowhere.
    if (meta.uid() == me || meta.uid() == 0) && !not_a_directory {
        return Err(refused);
    }
    let path = files::set_aside(dir)?;
    files::ensure_private_dir(dir)?;
    let what = if meta.file_type().is_symlink() {
        "a link"
    } else {
        files::not_a_file(&meta).unwrap_or("a regular file")
    };
    Ok(Some(files::SetAside {
        path,
        reason: format!(
            "{what} of uid {} where this user's outcome records (spanguard why) go: \
             a private directory made in its place",
            meta.uid()
        ),
    }))
}

/// The first lines of a file: who, where to, since when, and whether the
/// tracer had stopped.
struct Header<'a> {
    service: &'a str,
    target: &'a str,
    start: Option<&'a ProcessStart>,
    started_unix_s: u64,
    updated_unix_s: u64,
    state: State,
    spooled_because: &'a str,
    refused: u64,
    leaves: &'a [String],
    cuts: &'a [(String, u64)],
    aside: &'a [String],
    warnings: &'a [(String, u64)],
}

/// Keeps `texts` (a text and its count, in their order) in `kept`, each
/// text one line of at most `most_bytes`: a count updated where its text
/// is kept, a text allocated only when it is new (texts change rarely).
fn keep_counted<'a>(
    kept: &mut Vec<(String, u64)>,
    texts: impl Iterator<Item = (&'a str, u64)>,
    most_bytes: usize,
) {
    for (i, (text, n)) in texts.enumerate() {
        match kept.get_mut(i) {
            Some(k) if text.starts_with(k.0.as_str()) => k.1 = n,
            _ => {
                kept.truncate(i);
                kept.push((one_line(text, most_bytes), n));
            }
        }
    }
}

/// Which process this is beyond its pid: its start in clock ticks after
/// the machine's boot (/proc/PID/stat's 22nd field, the same seen from
/// any pid namespace) and that boot (/proc/sys/kernel/random/boot_id). A
/// later process given the same pid (a restarted container's PID 1)
/// started later; one after a reboot, in another boot. And the PID
/// namespace its pid is counted in: a container's PID 1 is some other
/// pid on the host, where pid 1 is the host's init (a reader outside
/// took that for the record's process).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessStart {
    pub ticks: u64,
    /// Empty when the kernel does not say.
    pub boot_id: String,
    /// The PID namespace's inode (/proc/PID/ns/pid), None when the kernel
    /// does not say (or a record from before it was written).
    pub pid_ns: Option<u64>,
}

impl ProcessStart {
    /// This process's, None when /proc cannot say.
    pub fn of_this_process() -> Option<ProcessStart> {
        Some(ProcessStart {
            ticks: start_ticks_of("self")?,
            boot_id: boot_id(),
            pid_ns: pid_namespace_of("self"),
        })
    }

    /// The process with this pid here, None when there is none (or /proc
    /// cannot say).
    pub fn of_pid(pid: u32) -> Option<ProcessStart> {
        let pid = pid.to_string();
        Some(ProcessStart {
            ticks: start_ticks_of(&pid)?,
            boot_id: boot_id(),
            pid_ns: pid_namespace_of(&pid),
        })
    }
}

/// The inode of the PID namespace process `pid` ("self" for this one) is
/// in: the number in /proc/PID/ns/pid's `pid:[N]`, the same from any
/// namespace. None when there is no such process, or reading it is not
/// allowed (another user's process).
pub fn pid_namespace_of(pid: &str) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()?;
    link.to_str()?
        .strip_prefix("pid:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// When process `pid` ("self" for this one) started, in clock ticks after
/// boot (/proc/PID/stat's 22nd field); None when there is no such process.
pub fn start_ticks_of(pid: &str) -> Option<u64> {
    // Bytes, not text: the command's name is anyone's choice, and need
    // not be UTF-8 (an executable's name cut at 15 bytes within a
    // character, `prctl`), which `read_to_string` refused.
    start_ticks_in(&std::fs::read(format!("/proc/{pid}/stat")).ok()?)
}

/// The start ticks (the 22nd field) of a /proc/PID/stat line: counted
/// after the command's name, in parentheses, which may hold anything
/// (`)`, spaces, bytes that are no UTF-8).
pub fn start_ticks_in(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let field = stat[close + 1..]
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
        .nth(19)?;
    std::str::from_utf8(field).ok()?.parse().ok()
}

/// This boot's id, empty when the kernel does not say. One word: it is
/// a line's value in the file.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| id.trim().to_string())
        .ok()
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_default()
}

/// `text` as one line of at most `most` bytes: control characters (a
/// line break in a service name) as `?`.
fn one_line(text: &str, most: usize) -> String {
    let mut out = Vec::with_capacity(text.len().min(most));
    push_line(&mut out, text, most);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `text` to `out` as `one_line` says, allocating nothing when
/// `out` has the room.
fn push_line(out: &mut Vec<u8>, text: &str, most: usize) {
    let mut room = most;
    for c in text.chars() {
        let c = if c.is_control() { '?' } else { c };
        if c.len_utf8() > room {
            break;
        }
        room -= c.len_utf8();
        let mut bytes = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut bytes).as_bytes());
    }
}

/// The file's text: `key value` lines, the causes as `cause SPANS
/// REASON`. At most `MOST_BYTES`.
fn render<'a>(
    out: &mut Vec<u8>,
    h: &Header,
    counts: &Counts,
    causes: impl Iterator<Item = (&'a str, u64)>,
) {
    // Writes to a Vec cannot fail.
    let _ = writeln!(out, "{MAGIC}");
    let _ = writeln!(out, "pid {}", std::process::id());
    out.extend_from_slice(b"service ");
    push_line(out, h.service, MOST_REASON_BYTES);
    out.extend_from_slice(b"\ntarget ");
    push_line(out, h.target, MOST_REASON_BYTES);
    let _ = writeln!(out, "\nstarted {}", h.started_unix_s);
    if let Some(start) = h.start {
        let _ = writeln!(out, "start_ticks {}", start.ticks);
        if !start.boot_id.is_empty() {
            let _ = writeln!(out, "boot_id {}", start.boot_id);
        }
        if let Some(ns) = start.pid_ns {
            let _ = writeln!(out, "pid_ns {ns}");
        }
    }
    let _ = writeln!(out, "updated {}", h.updated_unix_s);
    let _ = writeln!(out, "state {}", h.state.word());
    if let State::EndingOf(signal) | State::StoppedAt(signal) = h.state {
        let _ = writeln!(out, "signal {signal}");
    }
    for name in h.leaves {
        let _ = writeln!(out, "leaves {name}");
    }
    for (name, n) in counts.named() {
        let _ = writeln!(out, "{name} {n}");
    }
    if h.refused > 0 {
        let _ = writeln!(out, "spooled_refused {}", h.refused);
    }
    if !h.spooled_because.is_empty() {
        out.extend_from_slice(b"spooled_because ");
        push_line(out, h.spooled_because, MOST_REASON_BYTES);
        out.push(b'\n');
    }
    for (reason, spans) in causes.take(MOST_CAUSES) {
        let _ = write!(out, "cause {spans} ");
        push_line(out, reason, MOST_REASON_BYTES);
        out.push(b'\n');
    }
    // Last, and only as they fit beside room for the `died` lines a
    // recoverer appends (`note_death`): causes of loss come first, then
    // the warnings spans were delivered with, then where values were cut.
    for (key, lines) in [("warning", h.warnings), ("cut", h.cuts)] {
        for (text, n) in lines {
            let line = key.len() + 1 + 20 + 1 + text.len() + 1;
            if out.len() + line + MOST_DEATHS * DIED_LINE_BYTES > MOST_BYTES {
                break;
            }
            let _ = writeln!(out, "{key} {n} {text}");
        }
    }
    for said in h.aside {
        let line = "aside ".len() + said.len() + 1;
        if out.len() + line + MOST_DEATHS * DIED_LINE_BYTES > MOST_BYTES {
            break;
        }
        let _ = writeln!(out, "aside {said}");
    }
}

/// Removes the oldest outcome files of `dir` (and temporary ones a kill
/// left) until the newest `keep` remain beside `own` (this tracer's,
/// left alone); false when it gave way first.
/// Directories are left alone; unlink removes a link itself, never what
/// it points to. One pass that holds the newest `keep` seen so far: a
/// file older than all of them is removed as it is met, so that giving
/// way (asked before each file past the first
/// `spool::HANDLED_BEFORE_GIVING_WAY`) leaves no file removed that the
/// whole pass would keep, and 100,000 files cost no list of them all.
fn prune(dir: &Path, keep: usize, own: &Path, mut give_way: impl FnMut() -> bool) -> bool {
    use std::cmp::Reverse;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return true;
    };
    // The newest kept so far, the oldest of them on top.
    let mut newest: BinaryHeap<Reverse<(i64, PathBuf)>> = BinaryHeap::with_capacity(keep + 1);
    for (looked, e) in entries.flatten().enumerate() {
        if looked >= HANDLED_BEFORE_GIVING_WAY && give_way() {
            return false;
        }
        let name = e.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if !name.ends_with(SUFFIX) || own.file_name() == Some(e.file_name().as_os_str()) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if meta.is_dir() {
            continue;
        }
        if name.starts_with('.') {
            // A temporary file an hour old: its writer was killed midway.
            let age = crate::span::clock::now_unix_ns() as i64 / 1_000_000_000 - meta.mtime();
            if age > 3600 {
                let _ = std::fs::remove_file(e.path());
            }
            continue;
        }
        newest.push(Reverse((meta.mtime(), e.path())));
        if newest.len() > keep
            && let Some(Reverse((_, oldest))) = newest.pop()
        {
            let _ = std::fs::remove_file(oldest);
        }
    }
    true
}

/// An outcome file as read back (`spanguard why`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub pid: u32,
    pub service: String,
    pub target: String,
    pub started_unix_s: u64,
    /// Which process wrote it, beyond its pid; None in a file of a
    /// version before it was written (or when /proc could not say).
    pub start: Option<ProcessStart>,
    pub updated_unix_s: u64,
    /// Whether the tracer had stopped at the last write.
    pub stopped: bool,
    pub counts: Counts,
    /// (spans, the cause's first message).
    pub causes: Vec<(u64, String)>,
    /// Why its spans first went to the spool; empty when none did, or in
    /// a file of a version before it was written.
    pub spooled_because: String,
    /// How many of `counts.spooled` were refused to their sender and kept
    /// for a corrected setting; 0 in a file of a version before it was
    /// written.
    pub spooled_refused: u64,
    /// The termination signal its tracer was last flushed for, the process
    /// about to die of it (`State::EndingOf`), or, `stopped`, the one its
    /// tracer was stopped for (`State::StoppedAt`); 0 when none.
    pub ending_of_signal: i32,
    /// The names of the files its tracer leaves if its process dies (in
    /// its spool directory); none in a file of a version before.
    pub leaves: Vec<String>,
    /// What a recoverer found in those files, once one was recovered
    /// (`note_death`).
    pub deaths: Vec<Death>,
    /// (values, where they were cut: the words after "N values cut"), of
    /// `counts.truncated`; those cut as they were recorded are in none.
    /// None in a file of a version before.
    pub cuts: Vec<(u64, String)>,
    /// What was said of the first files set aside (`counts.set_aside`),
    /// by name; none in a file of a version before.
    pub set_aside: Vec<String>,
    /// The spans an exporter stuck in a request still held when its tracer
    /// stopped, and the file in the spool directory they were written to
    /// (empty: none, there was no crash dump), as its shutdown noted
    /// (`note_held_at_stop`); None when it held none.
    pub held_at_stop: Option<(u64, String)>,
    /// (spans, the warning the backend accepted them with: its own, or
    /// an answer that could not be read, `transport::unread_coding_in`),
    /// of `counts.exported`. None in a file of a version before.
    pub warnings: Vec<(u64, String)>,
}

/// What a dead process's crash dump or flight file held, as its recoverer
/// (or `spanguard why`, before one) read it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Death {
    /// The signal its header names; 0 when none (SIGKILL, power loss: a
    /// flight file that no handler marked).
    pub signal: i32,
    /// When it was last written (its modification time): when the
    /// process died, as recovery ends the open spans then.
    pub at_unix_s: u64,
    /// Of `spans`: still open then, sent marked spanguard.interrupted.
    pub open: u64,
    /// The spans it held, sent (or spooled) by its recoverer.
    pub spans: u64,
}

impl Death {
    /// Its line in a record: `died SIGNAL AT OPEN SPANS`.
    fn line(&self) -> String {
        format!(
            "died {} {} {} {}\n",
            self.signal, self.at_unix_s, self.open, self.spans
        )
    }

    fn parse(value: &str) -> Option<Death> {
        let mut fields = value.split(' ');
        let death = Death {
            signal: fields.next()?.parse().ok()?,
            at_unix_s: fields.next()?.parse().ok()?,
            open: fields.next()?.parse().ok()?,
            spans: fields.next()?.parse().ok()?,
        };
        Some(death)
    }
}

/// Notes `death` in the record of process `pid` whose tracer left the file
/// `left` (a crash dump or flight file just recovered from `spool`):
/// appended to it as a `died` line, the file written anew under a
/// temporary name and renamed over it, as its writer does. Its writer is
/// dead (a live process's files are never recovered). Nothing is done for
/// a record that names no such file (one of a version before, another
/// tracer's), says a death already (a recoverer killed before deleting
/// the file, and another since), is not this user's, or has no room left.
/// Whether a record was noted. For a recoverer, which goes on whatever
/// this finds: a record is a diagnostic.
pub fn note_death(spool: &Path, left: &Path, pid: u32, death: &Death) -> bool {
    let Some(name) = left.file_name().map(|n| n.to_string_lossy()) else {
        return false;
    };
    let dir = dir_in(spool);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return false;
    };
    let prefix = format!("{pid}-");
    for e in entries.flatten() {
        let file_name = e.file_name();
        let Some(record) = file_name.to_str() else {
            continue;
        };
        if !record.starts_with(&prefix) || !record.ends_with(SUFFIX) {
            continue;
        }
        let Some(text) = read_own_record(&e.path()) else {
            continue;
        };
        let Some(o) = parse(&text) else {
            continue;
        };
        if o.pid != pid || !o.deaths.is_empty() || !o.leaves.iter().any(|l| *l == name) {
            continue;
        }
        let mut amended = text;
        if !amended.ends_with('\n') {
            amended.push('\n');
        }
        amended.push_str(&death.line());
        if amended.len() > MOST_BYTES {
            return false;
        }
        let temp = dir.join(format!(".tmp-died-{}-{record}", std::process::id()));
        return replace_with(&temp, &e.path(), amended.as_bytes()).is_ok();
    }
    false
}

/// Notes in the record at `record` that the exporter a stand-in replaced
/// (`export::stand_in`) still held `spans` in its stuck request when its
/// tracer stopped, written to `kept_in` (the crash dump's file) or, None,
/// kept nowhere (no crash dump: signal handlers off). For the shutdown
/// that leaves that exporter stuck (`watchdog::crash`), after the
/// stand-in's last record (the stuck thread writes none): that record
/// counted them nowhere, and `spanguard why` said "nothing lost" of a
/// run whose held batch waited in the crash dump, or was gone with it.
/// Whether it was noted.
pub fn note_held_at_stop(record: &Path, spans: u64, kept_in: Option<&Path>) -> bool {
    let (Some(dir), Some(name)) = (record.parent(), record.file_name()) else {
        return false;
    };
    let Some(mut amended) = read_own_record(record).filter(|t| parse(t).is_some()) else {
        return false;
    };
    if !amended.ends_with('\n') {
        amended.push('\n');
    }
    let file = kept_in
        .and_then(|k| k.file_name())
        .map_or(String::new(), |n| {
            one_line(&n.to_string_lossy(), MOST_REASON_BYTES)
        });
    amended.push_str(format!("held_at_stop {spans} {file}").trim_end());
    amended.push('\n');
    if amended.len() > MOST_BYTES {
        return false;
    }
    let temp = dir.join(format!(
        ".tmp-held-{}-{}",
        std::process::id(),
        name.to_string_lossy()
    ));
    replace_with(&temp, record, amended.as_bytes()).is_ok()
}

/// The text of the record at `path` if it is a regular file of this user's
/// (never through a link, nor waiting on a FIFO) within `MOST_BYTES`.
fn read_own_record(path: &Path) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    // SAFETY: geteuid cannot fail and has no preconditions.
    if !meta.file_type().is_file() || meta.uid() != unsafe { libc::geteuid() } {
        return None;
    }
    let mut text = String::new();
    file.take(MOST_BYTES as u64 + 1)
        .read_to_string(&mut text)
        .ok()?;
    (text.len() <= MOST_BYTES).then_some(text)
}

/// Writes `bytes` to a new file `temp` (O_EXCL, no link followed, 0600),
/// then renames it over `path`; `temp` is removed when that fails.
fn replace_with(temp: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(temp);
    let written = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(temp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| std::fs::rename(temp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(temp);
    }
    written
}

/// Reads an outcome file's text; None when it is not one (another
/// version's, torn, someone else's text).
pub fn parse(text: &str) -> Option<Outcome> {
    let mut lines = text.lines();
    if lines.next()? != MAGIC {
        return None;
    }
    let mut o = Outcome::default();
    let mut state = None;
    let (mut ticks, mut boot_id, mut pid_ns) = (None, String::new(), None);
    for line in lines {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        let number = || value.parse::<u64>().ok();
        match key {
            "pid" => o.pid = value.parse().ok()?,
            "service" => o.service = value.to_string(),
            "target" => o.target = value.to_string(),
            "started" => o.started_unix_s = number()?,
            "start_ticks" => ticks = Some(number()?),
            "boot_id" => boot_id = value.to_string(),
            "pid_ns" => pid_ns = Some(number()?),
            "updated" => o.updated_unix_s = number()?,
            "state" => state = Some(value == "stopped"),
            "ended" => o.counts.ended = number()?,
            "exported" => o.counts.exported = number()?,
            "spooled" => o.counts.spooled = number()?,
            "lost" => o.counts.lost = number()?,
            "rejected" => o.counts.rejected = number()?,
            "buffer_full" => o.counts.buffer_full = number()?,
            "unsampled" => o.counts.unsampled = number()?,
            "spool_overflow" => o.counts.spool_overflow = number()?,
            "unended" => o.counts.unended = number()?,
            "interrupted" => o.counts.interrupted = number()?,
            "truncated" => o.counts.truncated = number()?,
            "attributes_dropped" => o.counts.attributes_dropped = number()?,
            "events_dropped" => o.counts.events_dropped = number()?,
            "links_dropped" => o.counts.links_dropped = number()?,
            "files_set_aside" => o.counts.set_aside = number()?,
            "aside" if o.set_aside.len() < MOST_ASIDE => o.set_aside.push(value.to_string()),
            "spooled_because" => o.spooled_because = value.to_string(),
            "spooled_refused" => o.spooled_refused = number()?,
            "signal" => o.ending_of_signal = value.parse().ok()?,
            // No more kept than a writer writes (the file is anyone's).
            "leaves" if o.leaves.len() < MOST_LEAVES => o.leaves.push(value.to_string()),
            "died" if o.deaths.len() < MOST_DEATHS => o.deaths.push(Death::parse(value)?),
            "held_at_stop" => {
                let (spans, file) = value.split_once(' ').unwrap_or((value, ""));
                o.held_at_stop = Some((spans.parse().ok()?, file.to_string()));
            }
            "cut" if o.cuts.len() < MOST_CUTS => {
                let (values, place) = value.split_once(' ')?;
                o.cuts.push((values.parse().ok()?, place.to_string()));
            }
            "warning" if o.warnings.len() < MOST_WARNINGS => {
                let (spans, warning) = value.split_once(' ')?;
                o.warnings.push((spans.parse().ok()?, warning.to_string()));
            }
            "cause" => {
                let (spans, reason) = value.split_once(' ')?;
                let spans = spans.parse().ok()?;
                // The file is anyone's text: 8 KiB of short cause lines
                // were 900 causes, each a line of `why`'s. No more are
                // kept than a writer writes; the spans of the rest are
                // said as lost for a reason not recorded.
                if o.causes.len() < MOST_CAUSES {
                    o.causes.push((spans, reason.to_string()));
                }
            }
            // A later version's line: left alone.
            _ => {}
        }
    }
    o.stopped = state?;
    // A boot id alone says no start.
    o.start = ticks.map(|ticks| ProcessStart {
        ticks,
        boot_id,
        pid_ns,
    });
    (o.pid != 0).then_some(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sg-outcome-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// A file, not a directory, at the records' directory's name, of the
    /// user's own (a stale `touch`, a backup restored as a file, a FIFO):
    /// every record failed to be written, said nowhere, for as long as it
    /// sat there, and `spanguard why` said no process had left one. It is
    /// set aside as another user's is (counted and told by the exporter)
    /// and the directory made.
    #[test]
    fn a_file_of_ours_where_the_records_go_is_set_aside() {
        let spool = temp_dir("records-file");
        files::ensure_private_dir(&spool).expect("spool");
        let records = dir_in(&spool);
        std::fs::write(&records, "stale").expect("plant");
        let mut f = OutcomeFile::new(&records, "svc", "t");
        let written = f.write(
            State::Stopped,
            &Counts::default(),
            std::iter::empty(),
            || false,
        );
        assert!(written.is_ok(), "{written:?}");
        assert!(f.path().starts_with(&records) && f.path().is_file());
        let aside = f
            .take_set_aside()
            .expect("set aside, for the exporter to count");
        assert_eq!(std::fs::read_to_string(&aside.path).expect("kept"), "stale");
        assert!(aside.reason.contains("a regular file"), "{}", aside.reason);
        std::fs::remove_dir_all(&spool).ok();
    }

    /// The file says who, where to, the counts and each cause's first
    /// message with its spans, and reads back as written; a service name
    /// with a line break cannot forge a line.
    #[test]
    fn the_file_holds_the_counts_and_each_cause_and_reads_back() {
        let dir = temp_dir("content");
        let mut f = OutcomeFile::new(&dir, "checkout\nlost 0", "http://h:4318/v1/traces");
        let counts = Counts {
            ended: 40,
            exported: 27,
            lost: 13,
            unended: 2,
            interrupted: 5,
            truncated: 4,
            attributes_dropped: 6,
            events_dropped: 7,
            links_dropped: 8,
            set_aside: 5,
            ..Counts::default()
        };
        // Files set aside, the first few said by name (a name may hold a
        // line break: it forges no line).
        for i in 0..5 {
            f.note_set_aside(&format!(
                "/s/{i}\nlost 0.unreadable set aside, unread: torn"
            ));
        }
        let refused = "HTTP 404: 404 page not found (nothing takes traces at this URL: \
                       OTEL_EXPORTER_OTLP_ENDPOINT is a base URL) (http://h:4318/v1/traces)";
        // Values cut, and where: 3 to a size limit, 1 as recorded (in none).
        let sink = "to fit their spans into one line of the local sink (4096 bytes)";
        f.note_cuts([(sink, 2)].into_iter());
        f.note_cuts([(sink, 3)].into_iter());
        f.write(State::Stopped, &counts, [(refused, 13)].into_iter(), || {
            false
        })
        .expect("write");
        let text = std::fs::read_to_string(f.path()).expect("read");
        let o = parse(&text).expect("parse");
        assert_eq!(o.pid, std::process::id());
        assert_eq!(o.service, "checkout?lost 0");
        assert_eq!(o.target, "http://h:4318/v1/traces");
        assert!(o.stopped);
        assert_eq!(o.counts, counts);
        assert_eq!(o.causes, [(13, refused.to_string())]);
        assert_eq!(o.cuts, [(3, sink.to_string())]);
        let said: Vec<String> = (0..MOST_ASIDE)
            .map(|i| format!("/s/{i}?lost 0.unreadable set aside, unread: torn"))
            .collect();
        assert_eq!(o.set_aside, said);
        assert!(o.updated_unix_s >= o.started_unix_s && o.started_unix_s > 0);
        let meta = std::fs::metadata(f.path()).expect("stat");
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&dir).expect("dir").mode() & 0o777, 0o700);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Why the spans went to the spool (the first reason given, one line),
    /// how many of them were refused to their sender, and the signal a
    /// dying process was flushed for read back as written; a record of
    /// none says none.
    #[test]
    fn the_file_says_why_spans_were_spooled_and_the_signal_it_ends_of() {
        let dir = temp_dir("spooled-because");
        let mut f = OutcomeFile::new(&dir, "checkout", "http://h:4318/v1/traces");
        let counts = Counts {
            ended: 3,
            spooled: 3,
            ..Counts::default()
        };
        f.write(State::Running, &counts, std::iter::empty(), || false)
            .expect("write");
        let o = parse(&std::fs::read_to_string(f.path()).expect("read")).expect("parse");
        assert_eq!((o.spooled_because.as_str(), o.ending_of_signal), ("", 0));
        assert_eq!(o.spooled_refused, 0);
        f.note_refused(2);
        f.note_spooled_because("export to http://h:4318/v1/traces failed: refused\nsecond line");
        f.note_spooled_because("a later reason, not kept");
        f.write(State::EndingOf(15), &counts, std::iter::empty(), || false)
            .expect("write");
        let o = parse(&std::fs::read_to_string(f.path()).expect("read")).expect("parse");
        assert_eq!(
            o.spooled_because,
            "export to http://h:4318/v1/traces failed: refused?second line"
        );
        assert_eq!(o.ending_of_signal, 15);
        assert_eq!(o.spooled_refused, 2);
        assert!(!o.stopped);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The warnings the backend accepted spans with read back as written,
    /// their counts kept up to date, one line each; a record of a version
    /// before (no `warning` line) reads as none, and a reader of a version
    /// before leaves the line alone (an unknown key).
    #[test]
    fn the_file_says_the_warnings_spans_were_delivered_with() {
        let dir = temp_dir("warnings");
        let mut f = OutcomeFile::new(&dir, "svc", "t");
        write_running(&mut f);
        let o = parse(&text_of(&f)).expect("parse");
        assert!(o.warnings.is_empty());
        let unread = crate::export::transport::unread_answer("br", "not asked for");
        f.note_warnings([(unread.as_str(), 3)].into_iter());
        f.note_warnings([(unread.as_str(), 12), ("sampled\nfake 1", 2)].into_iter());
        write_running(&mut f);
        let text = text_of(&f);
        let o = parse(&text).expect("parse");
        assert_eq!(
            o.warnings,
            [(12, unread.clone()), (2, "sampled?fake 1".to_string())]
        );
        let before: String = text
            .lines()
            .filter(|l| !l.starts_with("warning "))
            .map(|l| format!("{l}\n"))
            .collect();
        let o_before = parse(&before).expect("parse");
        assert_eq!(
            o_before,
            Outcome {
                warnings: Vec::new(),
                ..o
            }
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A record names the files its tracer leaves; the recoverer of one
    /// notes in it what the file held and the signal it names, once, and
    /// only in the record that names that file: `why` said "killed, or it
    /// crashed" of a SIGSEGV whose dump named it, and once the dump was
    /// sent nothing named it at all. A stop for a signal names it too.
    #[test]
    fn a_recoverer_notes_the_signal_in_the_record_of_the_file_it_recovered() {
        let spool = temp_dir("death");
        let mut f = OutcomeFile::new(&dir_in(&spool), "svc", "t");
        f.note_leaves(&spool.join("100-7-ab.sgdump"));
        write_running(&mut f);
        let mut other = OutcomeFile::new(&dir_in(&spool), "svc", "t");
        other.note_leaves(&spool.join("100-7-cd.sgdump"));
        write_running(&mut other);
        let before = text_of(&f);
        assert!(before.contains("\nleaves 100-7-ab.sgdump\n"), "{before}");
        let death = Death {
            signal: libc::SIGSEGV,
            at_unix_s: 1_700_000_000,
            open: 2,
            spans: 40,
        };
        let pid = std::process::id();
        assert!(!note_death(
            &spool,
            Path::new("elsewhere.sgdump"),
            pid,
            &death
        ));
        assert!(!note_death(
            &spool,
            Path::new("100-7-ab.sgdump"),
            pid + 1,
            &death
        ));
        assert_eq!(text_of(&f), before);
        assert!(note_death(
            &spool,
            &spool.join("100-7-ab.sgdump"),
            pid,
            &death
        ));
        let o = parse(&text_of(&f)).expect("parse");
        assert_eq!(o.deaths, [death]);
        assert_eq!(o.leaves, ["100-7-ab.sgdump"]);
        assert!(
            text_of(&f).starts_with(&before),
            "appended, the rest as it was"
        );
        // The other tracer's record is not this file's.
        assert!(parse(&text_of(&other)).expect("parse").deaths.is_empty());
        // Once: a second recoverer (the first killed before the delete)
        // leaves the first note.
        let again = Death { spans: 0, ..death };
        assert!(!note_death(
            &spool,
            Path::new("100-7-ab.sgdump"),
            pid,
            &again
        ));
        assert_eq!(parse(&text_of(&f)).expect("parse").deaths, [death]);
        let meta = std::fs::metadata(f.path()).expect("stat");
        assert_eq!(meta.mode() & 0o777, 0o600);
        // A record of a version before: no leaves, nothing noted.
        let older = dir_in(&spool).join(format!("{pid}-9{SUFFIX}"));
        let older_text = format!("{MAGIC}\npid {pid}\nstate running\n");
        std::fs::write(&older, &older_text).expect("older");
        assert!(note_death(
            &spool,
            Path::new("100-7-cd.sgdump"),
            pid,
            &death
        ));
        assert_eq!(std::fs::read_to_string(&older).expect("read"), older_text);
        assert_eq!(parse(&text_of(&other)).expect("parse").deaths, [death]);
        // A stop for a signal names it beside `state stopped`.
        f.write(
            State::StoppedAt(libc::SIGTERM),
            &Counts::default(),
            std::iter::empty(),
            || false,
        )
        .expect("write");
        let o = parse(&text_of(&f)).expect("parse");
        assert!(o.stopped);
        assert_eq!(o.ending_of_signal, libc::SIGTERM);
        std::fs::remove_dir_all(&spool).ok();
    }

    /// Reasons that vary (a server's text with a request id) and long
    /// ones keep the file within `MOST_BYTES`.
    #[test]
    fn the_file_is_bounded_whatever_the_reasons() {
        let dir = temp_dir("bounded");
        let mut f = OutcomeFile::new(&dir, &"s".repeat(10_000), &"t".repeat(10_000));
        let long = "x".repeat(100_000);
        let causes: Vec<(&str, u64)> = (0..100).map(|i| (long.as_str(), i)).collect();
        f.note_cuts((0..100).map(|i| (long.as_str(), i)));
        f.write(
            State::Running,
            &Counts::default(),
            causes.into_iter(),
            || false,
        )
        .expect("write");
        let len = std::fs::metadata(f.path()).expect("stat").len() as usize;
        assert!(len <= MOST_BYTES, "{len} bytes");
        let o = parse(&std::fs::read_to_string(f.path()).expect("read")).expect("parse");
        assert_eq!(o.causes.len(), MOST_CAUSES);
        assert!(!o.stopped);
        // With room left for what a recoverer appends.
        assert!(
            len + MOST_DEATHS * DIED_LINE_BYTES <= MOST_BYTES,
            "{len} bytes"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A link planted where the file goes (another user's file, a victim
    /// of ours) is replaced, never written through; one at the temporary
    /// name too.
    #[test]
    fn a_link_in_the_files_place_is_replaced_not_followed() {
        let dir = temp_dir("link");
        let mut f = OutcomeFile::new(&dir, "svc", "t");
        write_running(&mut f);
        let victim = dir.with_extension("victim");
        std::fs::write(&victim, "untouched").expect("victim");
        std::fs::remove_file(f.path()).expect("rm");
        std::os::unix::fs::symlink(&victim, f.path()).expect("link");
        let temp = Path::new(std::ffi::OsStr::from_bytes(f.temp.as_bytes())).to_path_buf();
        std::os::unix::fs::symlink(&victim, &temp).expect("link");
        let counts = Counts {
            ended: 1,
            ..Counts::default()
        };
        f.write(State::Stopped, &counts, std::iter::empty(), || false)
            .expect("write");
        assert_eq!(
            std::fs::read_to_string(&victim).expect("victim"),
            "untouched"
        );
        let meta = std::fs::symlink_metadata(f.path()).expect("stat");
        assert!(meta.file_type().is_file());
        assert!(std::fs::symlink_metadata(&temp).is_err());
        std::fs::remove_dir_all(&dir).ok();
        std::fs::remove_file(&victim).ok();
    }

    /// Plants `n` records of old processes in `dir`, the i-th modified at
    /// 1,000,000 + i s, and returns their names, oldest first.
    fn plant_old_records(dir: &Path, n: usize) -> Vec<String> {
        std::fs::create_dir_all(dir).expect("dir");
        (0..n)
            .map(|i| {
                let name = format!("{}-0{SUFFIX}", 100_000 + i);
                let path = dir.join(&name);
                std::fs::write(&path, MAGIC).expect("write");
                let t = std::fs::FileTimes::new().set_modified(
                    std::time::UNIX_EPOCH + Duration::from_secs(1_000_000 + i as u64),
                );
                File::options()
                    .write(true)
                    .open(&path)
                    .expect("open")
                    .set_times(t)
                    .expect("times");
                name
            })
            .collect()
    }

    fn text_of(f: &OutcomeFile) -> String {
        std::fs::read_to_string(f.path()).expect("read")
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A record of a running tracer with nothing counted yet, written
    /// with nothing waiting (pruning never gives way).
    fn write_running(f: &mut OutcomeFile) {
        f.write(
            State::Running,
            &Counts::default(),
            std::iter::empty(),
            || false,
        )
        .expect("write");
    }

    /// Old processes' files are pruned at a tracer's first write: the
    /// newest `MOST_KEPT` stay, this one's among them.
    #[test]
    fn old_files_are_pruned_at_the_first_write() {
        let dir = temp_dir("prune");
        let planted = plant_old_records(&dir, MOST_KEPT + 10);
        let mut f = OutcomeFile::new(&dir, "svc", "t");
        write_running(&mut f);
        let left = names_in(&dir);
        assert_eq!(left.len(), MOST_KEPT, "{left:?}");
        assert!(f.path().exists());
        // The oldest went, the newest stayed.
        assert!(planted[..11].iter().all(|n| !left.contains(n)), "{left:?}");
        assert!(planted[11..].iter().all(|n| left.contains(n)), "{left:?}");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Pruning gives way to a flush or a shutdown waiting: the write looks
    /// at `HANDLED_BEFORE_GIVING_WAY` files, asks once, and writes its
    /// record without looking at the rest, having removed no file a whole
    /// pass keeps; the next write, with nothing waiting, finishes. With
    /// 100,000 files there a short process's spans missed its shutdown's
    /// deadline while all were listed and removed.
    #[test]
    fn pruning_gives_way_and_a_later_write_finishes_it() {
        let dir = temp_dir("prune-gives-way");
        let planted = plant_old_records(&dir, MOST_KEPT + 500);
        let mut f = OutcomeFile::new(&dir, "svc", "t");
        let mut asked = 0;
        let waiting = || {
            asked += 1;
            true
        };
        f.write(
            State::Running,
            &Counts::default(),
            std::iter::empty(),
            waiting,
        )
        .expect("write");
        assert_eq!(asked, 1, "asked whether to give way");
        assert!(f.path().exists(), "the record is written all the same");
        let left = names_in(&dir);
        let removed = planted.len() + 1 - left.len();
        assert!(
            removed <= HANDLED_BEFORE_GIVING_WAY - (MOST_KEPT - 1),
            "{removed} files removed while a flush waited"
        );
        // Whatever was removed is among the files a whole pass removes.
        let kept_by_a_whole_pass = &planted[planted.len() - (MOST_KEPT - 1)..];
        assert!(kept_by_a_whole_pass.iter().all(|n| left.contains(n)));
        write_running(&mut f);
        let left = names_in(&dir);
        assert_eq!(left.len(), MOST_KEPT, "{left:?}");
        assert!(kept_by_a_whole_pass.iter().all(|n| left.contains(n)));
        assert!(f.path().exists());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn text_that_is_no_outcome_file_is_refused() {
        assert_eq!(parse(""), None);
        assert_eq!(parse("spanguard-outcome 2\npid 1\nstate running\n"), None);
        assert_eq!(parse(&format!("{MAGIC}\npid x\nstate running\n")), None);
        assert_eq!(parse(&format!("{MAGIC}\npid 7\n")), None);
        assert!(parse(&format!("{MAGIC}\npid 7\nstate running\nlater 1\n")).is_some());
    }

    /// A file of the record's size filled with short cause lines (planted
    /// in the shared state directory) keeps no more causes than a writer
    /// writes: it was 900 of them, each a line of `spanguard why`.
    #[test]
    fn a_record_keeps_no_more_causes_than_a_writer_writes() {
        let mut text = format!("{MAGIC}\npid 7\nstate stopped\n");
        while text.len() < MOST_BYTES - 10 {
            text.push_str("cause 1 x\n");
        }
        let o = parse(&text).expect("a record");
        assert_eq!(o.causes.len(), MOST_CAUSES);
        assert_eq!(o.causes[0], (1, "x".to_string()));
    }

    /// A record says which process wrote it beyond its pid (its start and
    /// boot), and its name is its own: a later process given the same pid
    /// (a restarted container's PID 1) writes beside it, never over it.
    /// A record from before (no start) reads as before.
    #[test]
    fn a_record_says_which_process_wrote_it_and_is_named_apart() {
        let dir = temp_dir("start");
        let mut f = OutcomeFile::new(&dir, "svc", "t");
        write_running(&mut f);
        let o = parse(&std::fs::read_to_string(f.path()).expect("read")).expect("parse");
        let mine = ProcessStart::of_this_process().expect("/proc/self/stat");
        assert_eq!(o.start, Some(mine.clone()));
        assert!(!mine.boot_id.is_empty());
        // Its PID namespace too: a container's pid 1 is another pid on
        // the host, whose reader tells them apart by it.
        assert!(mine.pid_ns.is_some());
        assert!(text_of(&f).contains(&format!("\npid_ns {}\n", mine.pid_ns.unwrap())));
        assert_eq!(ProcessStart::of_pid(std::process::id()), Some(mine));
        let name = f.path().file_name().unwrap().to_string_lossy().into_owned();
        let fields: Vec<&str> = name.trim_end_matches(SUFFIX).split('-').collect();
        assert_eq!(fields.len(), 3, "{name}");
        assert_eq!(fields[0], std::process::id().to_string());
        let older = parse(&format!("{MAGIC}\npid 7\nstarted 5\nstate stopped\n")).expect("older");
        assert_eq!(older.start, None);
        let without_namespace = parse(&format!(
            "{MAGIC}\npid 7\nstart_ticks 9\nboot_id x\nstate stopped\n"
        ));
        assert_eq!(
            without_namespace.expect("a record").start.unwrap().pid_ns,
            None
        );
        let no_ticks = parse(&format!(
            "{MAGIC}\npid 7\nboot_id x\npid_ns 3\nstate stopped\n"
        ));
        assert_eq!(no_ticks.expect("a record").start, None);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A process's name is anyone's choice (its executable's, cut at 15
    /// bytes, which may split a character; `prctl`; /proc/PID/comm): one
    /// that is no UTF-8, or holds `)` and spaces, leaves its start read
    /// all the same. Before, /proc/PID/stat was read as UTF-8 and such a
    /// name made a running process none (`spanguard why`: "ended"), and
    /// its own records said no start.
    #[test]
    fn a_process_named_with_any_bytes_has_its_start_read() {
        use std::os::unix::ffi::OsStrExt;
        let dir = temp_dir("named");
        std::fs::create_dir_all(&dir).expect("dir");
        let sleep = ["/bin/sleep", "/usr/bin/sleep"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("sleep");
        let mine = start_ticks_of("self").expect("this process's start");
        // Run as a link of that name: the kernel names the process by it.
        let names: [&[u8]; 3] = [
            b"ab\xff\xfe) Z 1 2 3",
            "a\u{30a8}\u{30fc}\u{30b8}\u{30a7}\u{30f3}\u{30c8}".as_bytes(),
            b"x (y) ) ",
        ];
        for name in names {
            let link = dir.join(std::ffi::OsStr::from_bytes(name));
            std::os::unix::fs::symlink(sleep, &link).expect("link");
            let mut child = std::process::Command::new(&link)
                .arg("600")
                .spawn()
                .expect("run");
            let pid = child.id().to_string();
            // The parent goes on (vfork done) as the exec lets go of the
            // old memory, before the kernel names the process anew: its
            // comm is the parent thread's for a moment.
            let wanted = &name[..name.len().min(15)];
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            let comm = loop {
                let comm = std::fs::read(format!("/proc/{pid}/comm")).expect("comm");
                if comm.starts_with(wanted) || std::time::Instant::now() > deadline {
                    break comm;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            };
            let read = start_ticks_of(&pid);
            // Killed before any check: a `sleep 600` under a name of no
            // UTF-8 outliving a failed check failed every reader of /proc
            // that took names for text (the Python tests' session_members).
            child.kill().ok();
            child.wait().ok();
            let shown = String::from_utf8_lossy(&comm).into_owned();
            assert!(comm.starts_with(wanted), "{shown:?}");
            assert!(read.is_some_and(|t| t >= mine), "{read:?} named {shown:?}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
