//! Finding and reading what `show` and `tail` look at: sink files (OTLP/JSON
//! lines), spool files (a header and a request body), crash dumps and
//! flight files (raw records), all through the library's own readers. A
//! file that cannot be read is reported and skipped; nothing is locked,
//! moved or deleted.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use spanguard::buffer::files::open_found_to_look;
use spanguard::export::dump_view::{DumpView, read_dump_opened};
use spanguard::export::otlp_decode::{DecodedSpan, decode_body, decode_json};
use spanguard::export::spool::read_spool_file;

use super::locks::Locks;

/// What kind of file spans came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The local sink: delivered, one OTLP/JSON request a line.
    Sink,
    /// A spooled batch waiting to be sent.
    Spool,
    /// A crash dump of a process that died of a signal.
    CrashDump,
    /// A flight-recorder file (SIGKILL-proof slots).
    Flight,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Sink => "sink",
            Kind::Spool => "spool batch",
            Kind::CrashDump => "crash dump",
            Kind::Flight => "flight file",
        }
    }

    /// The kind a file's name says, for files found in a directory.
    pub fn of_name(name: &str) -> Option<Kind> {
        if name.starts_with('.') {
            return None; // a writer's temporary file
        }
        if name.ends_with(".jsonl") {
            Some(Kind::Sink)
        } else if name.ends_with(".sgspool") || name.ends_with(".sgspool-pending") {
            Some(Kind::Spool)
        } else if name.ends_with(".sgdump") || name.ends_with(".sgdump-pending") {
            Some(Kind::CrashDump)
        } else if name.ends_with(".sgflight") {
            Some(Kind::Flight)
        } else {
            None
        }
    }

    /// The kind of a file named on the command line: its name, else its
    /// first bytes, else OTLP/JSON lines.
    fn of_file(path: &Path) -> Kind {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        if let Some(k) = Kind::of_name(name.trim_start_matches('.')) {
            return k;
        }
        let mut magic = [0u8; 8];
        let n = open_regular(path)
            .and_then(|mut f| f.read(&mut magic))
            .unwrap_or(0);
        match &magic[..n] {
            m if spanguard::export::spool::is_magic(m) => Kind::Spool,
            m if m.starts_with(b"SGDUMP") => Kind::CrashDump,
            m if m.starts_with(b"SGFLITE") => Kind::Flight,
            _ => Kind::Sink,
        }
    }
}

/// Where spans were read from.
#[derive(Clone, Debug)]
pub struct Origin {
    pub kind: Kind,
    pub path: PathBuf,
    /// A live process holds the file (a flight file being written): its
    /// open spans are open, not interrupted.
    pub live_pid: Option<u32>,
}

/// Everything read from the inputs.
#[derive(Default)]
pub struct Loaded {
    pub origins: Vec<Origin>,
    /// Each span with the index of its origin.
    pub spans: Vec<(DecodedSpan, usize)>,
    /// Files or lines that could not be read, one sentence each.
    pub problems: Vec<String>,
}

/// Spool files bigger than this are not read (nor any over the spool's
/// cap, 64 MiB by default: `settings::spool_cap`); of a sink file, which
/// grows for as long as its process runs, only its last this many bytes
/// are: its newest spans. Crash dumps and flight files have a bound of
/// their own, from the settings that size them (`settings::dump_cap`).
const MAX_FILE_BYTES: u64 = 2 << 30;
/// The longest sink line read: the longest the library lets the sink write
/// (1 MiB by default, `sink_max_line_bytes`).
const MAX_LINE_BYTES: usize = spanguard::config::MAX_SINK_LINE_BYTES;

/// The files a directory holds that `show` reads, oldest name first (sink
/// files, then spool files, dumps and flight files, each sorted).
pub fn files_in(dir: &Path) -> std::io::Result<Vec<(Kind, PathBuf)>> {
    let mut files: Vec<(Kind, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        // Judged lossily, as the library's spool and recovery judge names:
        // a sink file whose name is no UTF-8 (a pid namespace's odd
        // hostname, a copy) was skipped without a word.
        .filter_map(|e| Kind::of_name(&e.file_name().to_string_lossy()).map(|k| (k, e.path())))
        .collect();
    files.sort_by(|a, b| (a.0 as u8, &a.1).cmp(&(b.0 as u8, &b.1)));
    Ok(files)
}

/// Reads every input: directories (their sink, spool, dump and flight
/// files) and files. A path that does not exist is a problem.
pub fn load(inputs: &[PathBuf]) -> Loaded {
    let mut loaded = Loaded::default();
    // One reading of the lock table for every file read.
    let locks = Locks::default();
    for input in inputs {
        match std::fs::metadata(input) {
            Ok(m) if m.is_dir() => match files_in(input) {
                Ok(files) => {
                    for (kind, path) in files {
                        read_one(&mut loaded, kind, &path, Found::Listed, &locks);
                    }
                }
                Err(e) => loaded.problems.push(format!("{}: {e}", input.display())),
            },
            Ok(m) if m.is_file() => read_one(
                &mut loaded,
                Kind::of_file(input),
                input,
                Found::Named,
                &locks,
            ),
            // A pipe or a device could block a read forever.
            Ok(_) => loaded.problems.push(format!(
                "{}: not a regular file or directory",
                input.display()
            )),
            Err(e) => loaded.problems.push(format!("{}: {e}", input.display())),
        }
    }
    loaded.problems.extend(locks.not_all_read());
    loaded
}

/// How a file came to be read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Named on the command line: a link there is the person's own to
    /// follow.
    Named,
    /// In a directory's listing, which saw a regular file: whatever is at
    /// its name now is the directory owner's doing, and a link is not
    /// followed.
    Listed,
}

/// `locks`: the lock table as read for this listing (who holds a flight
/// file).
fn read_one(loaded: &mut Loaded, kind: Kind, path: &Path, found: Found, locks: &Locks) {
    read_one_within(loaded, kind, path, found, MAX_FILE_BYTES, locks);
}

/// `read_one`, reading at most `most` bytes of the file.
fn read_one_within(
    loaded: &mut Loaded,
    kind: Kind,
    path: &Path,
    found: Found,
    most: u64,
    locks: &Locks,
) {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > most && kind == Kind::Spool {
        loaded.problems.push(format!(
            "{}: {size} bytes, more than spanguard ever writes: not read",
            path.display()
        ));
        return;
    }
    let dump_cap = super::settings::dump_cap();
    if size > dump_cap && matches!(kind, Kind::CrashDump | Kind::Flight) {
        let why = super::settings::over_dump_cap(size);
        loaded.problems.push(format!("{}: {why}", path.display()));
        return;
    }
    if size == 0 && kind != Kind::Sink {
        // A crash file prepared by a live process, still empty; or left
        // by one that ended without a word: said, since its spans are not
        // coming (a newcomer who killed an agent with SIGKILL found
        // nothing of that run and nothing saying why).
        if let Some(why) = unwritten_crash_file(path, locks) {
            loaded.problems.push(format!("{}: {why}", path.display()));
        }
        return;
    }
    let origin = loaded.origins.len();
    let mut live_pid = None;
    let result = match kind {
        Kind::Sink => read_sink(path, found, origin, loaded, most),
        Kind::Spool => read_spool_file(path, super::settings::spool_cap())
            .map_err(|why| format!("not a whole spool file: {why}"))
            .and_then(|b| decode_body(&b.body, b.format, b.gzipped).map_err(|e| e.to_string()))
            .map(|spans| loaded.spans.extend(spans.into_iter().map(|s| (s, origin)))),
        Kind::CrashDump | Kind::Flight => {
            let (view, holder) = look_at_dump(path, dump_cap, locks);
            live_pid = holder;
            view.ok_or_else(|| "not a readable crash dump or flight file".to_string())
                .map(|view| {
                    loaded
                        .spans
                        .extend(view.spans.into_iter().map(|s| (s, origin)))
                })
        }
    };
    if let Err(why) = result {
        loaded.problems.push(format!("{}: {why}", path.display()));
    }
    // Only files that gave spans count as where spans came from.
    if loaded.spans.last().is_none_or(|(_, o)| *o != origin) {
        return;
    }
    loaded.origins.push(Origin {
        kind,
        path: path.to_path_buf(),
        live_pid,
    });
}

/// The pid of the process that prepared a crash file, from its name
/// (`<time>-<pid>-<tag>.sgdump-pending`: `watchdog::crash::create_crash_file`).
pub fn crash_file_maker(name: &str) -> Option<u32> {
    name.split('-').nth(1)?.parse().ok()
}

/// Why the empty slot dump `path` (`.sgdump-pending`) will never hold
/// spans, or None while it may: no live process holds its lock and the
/// process that prepared it is gone, so that process ended without its
/// tracer shutting down or a signal handler writing the dump. A tracer
/// prepares one whenever its signal handlers are on; a normal exit, a
/// SIGTERM or a crash removes it or fills it. Said once a process: of
/// its two empty files, the `.sgspool-pending` one names no death of its
/// own. The next tracer start or replay deletes both.
pub fn unwritten_crash_file(path: &Path, locks: &Locks) -> Option<String> {
    let name = path.file_name()?.to_string_lossy();
    let stem = name.strip_suffix(".sgdump-pending")?;
    let pid = crash_file_maker(stem)?;
    if locks.holder(path).is_some() || locks.not_all_read().is_some() || super::locks::alive(pid) {
        return None;
    }
    Some(format!(
        "pid {pid} ended without shutting its tracer down or writing this crash dump \
         (SIGKILL, the OOM killer, an exit that skipped the shutdown such as _exit?): \
         the spans it had not yet exported are lost; the flight recorder \
         (SPANGUARD_FLIGHT_RECORDER=true) keeps them through a kill. The next tracer \
         start or spanguard replay deletes this empty file"
    ))
}

/// When a file was last written (`meta` of the file read, fstat): a dead
/// process's open spans ended then.
pub fn modified_ns_of(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A crash dump or flight file, opened once (`files::open_found_to_look`)
/// and judged by that descriptor: its spans (None when it cannot be read),
/// the open ones ended at its modification time, and the live process
/// that holds its lock. Both were looked up by name, apart from the read,
/// and a name may lead to another file by then (the directory's owner
/// renamed one over it, a tracer replaced its flight file): spans of one
/// file were ended at another's time and noted as held by its writer.
/// Not opened: no spans, and its holder by name, the only way left.
/// `locks`: the lock table as read once for the whole listing.
pub fn look_at_dump(path: &Path, max_bytes: u64, locks: &Locks) -> (Option<DumpView>, Option<u32>) {
    let Ok(file) = open_found_to_look(path) else {
        return (None, locks.holder(path));
    };
    let Ok(meta) = file.metadata() else {
        return (None, None);
    };
    let holder = locks.holder_of(&meta);
    (
        read_dump_opened(file, modified_ns_of(&meta), max_bytes),
        holder,
    )
}

/// Opens a file to read, without waiting, and only if it is a regular
/// file. The directory it is in may be another user's (root looking at a
/// user's sink): between the listing that saw a regular file and the open,
/// its owner can put a FIFO in its place, and opening a FIFO waits for a
/// writer for as long as there is none, Ctrl-C or not (the open is
/// restarted after the handler). A regular file ignores O_NONBLOCK.
pub fn open_regular(path: &Path) -> std::io::Result<File> {
    open_regular_with(path, 0)
}

/// `open_regular` for a file a directory's listing saw: never through a
/// symbolic link. The directory's owner (another user, when root or
/// someone else looks at their sink) can swap a link in for the file
/// after the listing, to another user's sink file, whose spans were then
/// shown as this directory's, or to any file the reader may read.
///
/// Nor through a hard link to a third user's file: anyone who can write
/// the directory can give any file they can name another name in it (the
/// kernel's fs.protected_hardlinks, where set, stops them only at files
/// they cannot both read and write), and that user's spans were shown as
/// the directory's. A file with more than one name is read when it is the
/// reader's own, or the directory owner's in a directory that only its
/// owner can write (they made the link to their own file); refused,
/// it is named with its owner, and naming it on the command line reads it.
///
/// The file is opened in the directory opened first (`openat`), and judged
/// by that directory's owner: the directory was looked up by name after
/// the file was opened by its path, and whoever may rename a directory on
/// the way could put another in its place between the two.
pub fn open_listed(path: &Path) -> std::io::Result<File> {
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    let (parent, name) = match (path.parent(), path.file_name()) {
        (Some(d), Some(n)) if !d.as_os_str().is_empty() => (d, n),
        (_, Some(n)) => (Path::new("."), n),
        (_, None) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a file name",
            ));
        }
    };
    // O_PATH: a directory the reader may pass through but not list is
    // opened all the same, as a path through it always was.
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(parent)?;
    let name = std::ffi::CString::new(name.as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in a name"))?;
    // SAFETY: a directory fd we hold and a NUL-terminated name; no O_CREAT.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::ELOOP) => std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a symbolic link in a file's place: not followed",
            ),
            _ => e,
        });
    }
    // SAFETY: a fresh fd we own.
    let file = unsafe { File::from_raw_fd(fd) };
    // The open file's own metadata: what is read, not what is at the
    // name by now.
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.nlink() > 1 && !safe_to_read_as_listed(&meta, &dir.metadata()?) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "another name (a hard link) for a file of user {}, who may not be who put it \
                 there: not read (name the file itself to read it)",
                meta.uid()
            ),
        ));
    }
    Ok(file)
}

/// Whether a file with several names, found in the directory `dir`
/// describes, is one that nobody but its owner can have linked in there,
/// or the reader's.
fn safe_to_read_as_listed(meta: &std::fs::Metadata, dir: &std::fs::Metadata) -> bool {
    // SAFETY: geteuid cannot fail and has no preconditions.
    if meta.uid() == unsafe { libc::geteuid() } {
        return true;
    }
    dir.uid() == meta.uid() && dir.mode() & 0o022 == 0
}

fn open_regular_with(path: &Path, flags: libc::c_int) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | flags)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// Reads the OTLP/JSON lines of a sink file as it was when opened: the
/// lines that began within its size then, the last of them read whole
/// (to its end, or the file's) even when a writer was in the middle of it.
/// A tracer writing to the file faster than it is read kept a read to the
/// end of the file going for as long as the tracer ran, and `show` (or
/// `show --html`) never finished; lines written since are `tail`'s.
///
/// Of a file over `most` bytes, only the lines that begin in its last
/// `most` bytes: the newest spans, said in `loaded.problems`.
fn read_sink(
    path: &Path,
    found: Found,
    origin: usize,
    loaded: &mut Loaded,
    most: u64,
) -> Result<(), String> {
    let mut file = match found {
        Found::Named => open_regular(path),
        Found::Listed => open_listed(path),
    }
    .map_err(|e| e.to_string())?;
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    // Where the next line begins.
    let mut at = size.saturating_sub(most);
    if at > 0 {
        use std::io::{Seek, SeekFrom};
        // From the byte before the window: a line that begins right at
        // its start is kept whole.
        file.seek(SeekFrom::Start(at - 1))
            .map_err(|e| e.to_string())?;
        loaded.problems.push(format!(
            "{}: {size} bytes; only its last {most} bytes read (its newest spans)",
            path.display()
        ));
    }
    let mut reader = BufReader::new(file);
    if at > 0 {
        at = at - 1 + skip_line(&mut reader).map_err(|e| e.to_string())?;
    }
    let mut line = Vec::new();
    for number in 1.. {
        if at >= size {
            break;
        }
        line.clear();
        let n = reader
            .by_ref()
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        at += n as u64;
        if line.len() > MAX_LINE_BYTES && line.last() != Some(&b'\n') {
            loaded.problems.push(format!(
                "{}:{number}: a line longer than 64 MiB: skipped",
                path.display()
            ));
            // No further than the size it had: a line that a writer is
            // still making longer is not followed.
            let mut within = reader.by_ref().take(size.saturating_sub(at));
            at += skip_line(&mut within).map_err(|e| e.to_string())?;
            continue;
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        match decode_json(text) {
            Ok(spans) => loaded.spans.extend(spans.into_iter().map(|s| (s, origin))),
            Err(e) => loaded.problems.push(format!(
                "{}:{number}: not an OTLP/JSON request: {e}",
                path.display()
            )),
        }
    }
    Ok(())
}

/// Reads past the rest of an over-long line without keeping it: the
/// bytes it read.
pub fn skip_line(reader: &mut impl BufRead) -> std::io::Result<u64> {
    let mut skipped = 0u64;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(skipped);
        }
        if let Some(at) = buf.iter().position(|&b| b == b'\n') {
            reader.consume(at + 1);
            return Ok(skipped + at as u64 + 1);
        }
        let n = buf.len();
        reader.consume(n);
        skipped += n as u64;
    }
}

/// A fresh directory with a FIFO named as a sink file (`svc-1.jsonl`):
/// what another user can swap in for one between a listing and a read.
#[cfg(test)]
pub fn fifo_as_sink_file(test: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("sg-{test}-fifo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let fifo = dir.join("svc-1.jsonl");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    (dir, fifo)
}

/// A fresh directory with a symbolic link named as a sink file
/// (`svc-1.jsonl`) to a sink file elsewhere that holds spans (another
/// user's, say): what the owner of a directory can swap in for one of its
/// files between a listing and a read.
#[cfg(test)]
pub fn link_as_sink_file(test: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("sg-{test}-link-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let elsewhere =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli/sample/billing-api-7120.jsonl");
    let link = dir.join("svc-1.jsonl");
    std::os::unix::fs::symlink(elsewhere, &link).expect("symlink");
    (dir, link)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spanguard::export::spool::encode_header;
    use spanguard::export::transport::BodyFormat;

    #[test]
    fn a_spool_file_of_either_header_is_known_by_its_first_bytes() {
        // Named on the command line without its suffix: a batch with cut
        // values (its header says how many) was read as sink lines.
        let dir = std::env::temp_dir().join(format!("sg-sources-magic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        for cut_counted in [0, 2] {
            let path = dir.join(format!("batch-{cut_counted}"));
            let header = encode_header(BodyFormat::Json, false, 1, cut_counted, 2);
            std::fs::write(&path, [header.as_bytes(), b"{}"].concat()).expect("write");
            assert_eq!(Kind::of_file(&path), Kind::Spool, "{cut_counted} cut");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_sink_file_over_the_read_limit_shows_its_newest_spans() {
        // One file a process, appended to for as long as it runs: a day of
        // an agent's megabyte prompts is gigabytes, and `show` read none
        // of it ("more than spanguard ever writes: not read").
        let dir = std::env::temp_dir().join(format!("sg-sources-big-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let line = |name: &str| {
            format!(
                concat!(
                    r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"0af7651916cd43dd8448eb211c80319c","#,
                    r#""spanId":"b7ad6b716920333{}","name":"{}","startTimeUnixNano":"1","endTimeUnixNano":"2"}}]}}]}}]}}"#,
                    "\n"
                ),
                name.len() % 10,
                name
            )
        };
        let (old, newer, newest) = (line("oldest"), line("newer"), line("newest.x"));
        let path = dir.join("svc-1.jsonl");
        std::fs::write(&path, [old.as_str(), &newer, &newest].concat()).expect("write");
        // The window ends inside the oldest line: that one is not read.
        let most = (newer.len() + newest.len() + 10) as u64;
        let mut loaded = Loaded::default();
        read_one_within(
            &mut loaded,
            Kind::Sink,
            &path,
            Found::Listed,
            most,
            &Locks::default(),
        );
        let names: Vec<&str> = loaded.spans.iter().map(|(s, _)| s.name.as_str()).collect();
        assert_eq!(names, ["newer", "newest.x"]);
        assert_eq!(loaded.problems.len(), 1, "{:?}", loaded.problems);
        assert!(
            loaded.problems[0].contains(&format!("only its last {most} bytes read")),
            "{:?}",
            loaded.problems
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    /// What sits at a sink file's name when it is read may not be what the
    /// listing saw: in another user's directory, they can swap in a FIFO
    /// meanwhile. Read, it is a problem that names it, at once (a reader
    /// used to wait for a writer forever).
    #[test]
    fn a_fifo_in_a_sink_files_place_is_a_problem_not_a_wait() {
        let (dir, fifo) = fifo_as_sink_file("sources");
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || {
            let mut loaded = Loaded::default();
            read_one(
                &mut loaded,
                Kind::Sink,
                &path,
                Found::Listed,
                &Locks::default(),
            );
            let _ = tx.send(loaded.problems);
        });
        let problems = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("reading a FIFO waited for a writer");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("svc-1.jsonl"), "{problems:?}");
        assert!(problems[0].contains("not a regular file"), "{problems:?}");
        assert_eq!(Kind::of_file(&fifo), Kind::Sink);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The listing of a directory saw regular files; its owner (another
    /// user, root looking at their sink) can then put a link to someone
    /// else's sink file in one's place. Found in a directory, it is not
    /// followed: its spans were shown as that directory's.
    #[test]
    fn a_link_in_a_listed_sink_files_place_is_not_followed() {
        let (dir, link) = link_as_sink_file("sources");
        let mut loaded = Loaded::default();
        read_one(
            &mut loaded,
            Kind::Sink,
            &link,
            Found::Listed,
            &Locks::default(),
        );
        assert!(
            loaded.spans.is_empty(),
            "{} spans read through a link",
            loaded.spans.len()
        );
        assert_eq!(loaded.problems.len(), 1, "{:?}", loaded.problems);
        assert!(
            loaded.problems[0].contains("svc-1.jsonl"),
            "{:?}",
            loaded.problems
        );
        // Named on the command line, a link is the person's to follow.
        let mut loaded = Loaded::default();
        read_one(
            &mut loaded,
            Kind::Sink,
            &link,
            Found::Named,
            &Locks::default(),
        );
        assert!(!loaded.spans.is_empty(), "{:?}", loaded.problems);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// `show` over a directory of flight files and crash dumps: who holds
    /// each (a live tracer's flight file) comes from one reading of the
    /// lock table, not one a file (files x the machine's locks).
    #[test]
    fn show_reads_the_lock_table_once_for_a_listing() {
        let dir = std::env::temp_dir().join(format!("sg-sources-locks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let n = 10;
        for i in 0..n {
            std::fs::write(dir.join(format!("p{i}.sgflight")), b"SGFLITE not").expect("write");
            std::fs::write(dir.join(format!("p{i}.sgdump")), b"SGDUMP not").expect("write");
        }
        let before = super::super::locks::tests::table_reads();
        let loaded = load(std::slice::from_ref(&dir));
        let reads = super::super::locks::tests::table_reads() - before;
        assert_eq!(loaded.problems.len(), 2 * n, "{:?}", loaded.problems);
        assert_eq!(
            reads,
            1,
            "the lock table read {reads} times for {} files",
            2 * n
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
