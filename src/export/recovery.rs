//! Finds what dead processes left in the spool directory — crash dumps,
//! flight-recorder files, prepared files never used — and says what each
//! holds. A file whose lock is held belongs to a live process and is left
//! alone (and tried again later); a file being recovered is locked by its
//! recoverer, so two processes never send it twice. Each file is opened
//! as outside input (`buffer::files`): a FIFO, a link, another user's file
//! or one this build cannot read is set aside, never read or deleted.

use std::path::{Path, PathBuf};

use crate::buffer::dump::{DumpError, DumpReader};
use crate::buffer::files::{self, LockedFile, Refusal};
use crate::span::record::MARK_INTERRUPTED;

use super::spool::{self, SUFFIX};

const SPOOL_PENDING: &str = ".sgspool-pending";

/// Files among a directory's `names` (`spool::dir_names`) that a dead
/// process may have left, oldest first.
pub fn leftover_files(names: &[PathBuf], own: &[&Path]) -> Vec<PathBuf> {
    let mut files = spool::names_where(names, spool::is_leftover_name);
    files.retain(|p| !own.contains(&p.as_path()));
    files
}

/// A file `files::create_locked` was making, unlocked and older than this,
/// was left by a maker that died, even when a live process has its pid (a
/// pid reused since, or a maker in another pid namespace sharing the
/// directory, whose pids mean other processes here). A live maker holds
/// such a file for the moments between making, locking and naming it;
/// one stopped in between for longer finds its file gone and makes
/// another (`create_locked`). The spool's rule for its writers' files.
const MAKING_FILE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// Removes what makers of crash dump and flight files that died left
/// among a directory's `names` (`spool::dir_names`) under the hidden names they make them under before naming them
/// (`files::making_file_of`): a process SIGKILLed in those moments left
/// one for good, and a fleet of workers killed at start-up filled the
/// directory with them. Only an unlocked regular file of ours, whose
/// maker is no live process here or which is older than any making takes
/// (`MAKING_FILE_MAX_AGE`); it is locked while it is removed, so a maker
/// that had only just made it fails to lock it and makes another. Such a
/// file holds no spans: its maker writes through it only once it has its
/// name. One that holds bytes all the same is not ours to read or
/// delete: set aside. Links, FIFOs and other users' files are left as
/// they are, unopened.
///
/// Gives way (returns true, the rest left for the next look) when
/// `give_way` says something else needs the thread, asked before each
/// such file past the first `spool::HANDLED_BEFORE_GIVING_WAY`, as
/// `SpoolDir::remove_dead_temp_files` does: 100,000 planted ones held a
/// flush until they were all looked at.
pub fn remove_dead_makers_files(
    names: &[PathBuf],
    spool: &spool::SpoolDir,
    give_way: impl Fn() -> bool,
) -> bool {
    use std::os::unix::fs::MetadataExt;
    let dead = |pid: u32, meta: &std::fs::Metadata| {
        let age = meta
            .modified()
            .ok()
            .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
            .unwrap_or_default();
        !spool::process_exists(pid as i32) || age > MAKING_FILE_MAX_AGE
    };
    let mut looked = 0;
    for path in names {
        let Some((made_for, pid)) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(files::making_file_of)
        else {
            continue;
        };
        if !spool::LEFTOVER_SUFFIXES
            .iter()
            .any(|s| made_for.ends_with(s))
        {
            continue;
        }
        if looked >= spool::HANDLED_BEFORE_GIVING_WAY && give_way() {
            return true;
        }
        looked += 1;
        // Looked at before it is opened and locked: a live maker's file
        // is not touched (a lock of ours would make it make another).
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_file() && dead(pid, &meta) => {}
            _ => continue,
        }
        let opened = files::BeforeOpen::now();
        let Ok(file) = files::open_found(path, false) else {
            continue;
        };
        let (file, locked) = LockedFile::lock(file, opened);
        if !locked || !spool::still_named(&file, path) {
            continue;
        }
        let Ok(meta) = file.file().metadata() else {
            continue;
        };
        if !dead(pid, &meta) {
            continue;
        }
        // A file with a name beside this one is its maker's, named (one
        // without RENAME_NOREPLACE killed between its link and its
        // unlink): only this name goes, recovery takes it by its own.
        if meta.len() > 0 && meta.nlink() == 1 {
            spool.put_aside(
                path,
                "a file being made for a crash dump or flight file that holds bytes its maker \
                 never writes there",
            );
            continue;
        }
        let _ = std::fs::remove_file(path);
    }
    false
}

/// A span by its ids.
type SpanIds = ([u8; 16], [u8; 8]);

fn is_flight_file(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(".sgflight"))
}

/// The spans of the journals (`spool::journal_of`) among `names` written
/// for the flight file at `flight`. The flight recorder publishes a
/// request's journal before it frees the request's slots
/// (`Exporter::export_taken`): a SIGKILL between the two leaves the batch
/// in both, the slots EXPORTING. The journal names its flight file by the
/// id in that file's name, not by the pid alone: a process of the same pid
/// since (pids wrap; a container restarts with the same small pid) wrote
/// spool files too, and its newer one was taken for the journal. A
/// replay does not send the journal while its flight file is there
/// (`SpoolDir::waits_for_its_flight_file`), so it is still here to say so
/// however many recoverers start at once. Empty when there is none or it
/// cannot be read (the flight file's copy is then sent: at least once).
fn journaled_spans(
    names: &[PathBuf],
    flight: &Path,
    cap: u64,
) -> std::collections::HashSet<SpanIds> {
    let Some(id) = spool::flight_id_of(flight) else {
        return Default::default();
    };
    let mut journals: Vec<&PathBuf> = names
        .iter()
        .filter(|p| {
            spool::journal_of(p) == Some(id)
                && p.file_name()
                    .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
        })
        .collect();
    if journals.is_empty() {
        journals = older_journals(names, flight);
    }
    let mut spans = std::collections::HashSet::new();
    for journal in journals {
        let Ok(batch) = spool::read_spool_file(journal, cap) else {
            continue;
        };
        if let Ok(decoded) =
            super::otlp_decode::decode_body(&batch.body, batch.format, batch.gzipped)
        {
            spans.extend(decoded.iter().map(|s| (s.trace_id, s.span_id)));
        }
    }
    spans
}

/// The spool files among `names` that may be the journal of the flight
/// file at `flight` written by a spanguard before journals named their
/// flight file (`spool::may_be_older_journal_of`): that one named it as
/// any spool file of its process, and a flight file it left, its process
/// SIGKILLed between publishing a request's journal and freeing its
/// slots, was recovered after an upgrade with those slots sent again
/// beside the journal. Those of a later process of the same pid are among
/// them, and so are the process's batches kept for later: harmless, their
/// spans are none of the slots still in export (a span is in one request
/// at a time, and a kept batch's slots were freed when its journal was
/// published). Read only for a flight file with slots in export and no
/// journal named for it, each within the spool's read limit.
fn older_journals<'a>(names: &'a [PathBuf], flight: &Path) -> Vec<&'a PathBuf> {
    let Some(flight) = flight.file_name().map(|n| n.to_string_lossy()) else {
        return Vec::new();
    };
    names
        .iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| spool::may_be_older_journal_of(n, &flight))
        })
        .collect()
}

/// Whether a flight file's record is a span in export that `journaled`
/// (`journaled_spans`) holds.
fn in_journal(
    r: &crate::span::record::SpanRecord,
    journaled: &std::collections::HashSet<SpanIds>,
) -> bool {
    in_export(r) && journaled.contains(&(r.trace_id, r.span_id))
}

/// Whether a flight file's record was a span in export when its process
/// died (EXPORTING).
fn in_export(r: &crate::span::record::SpanRecord) -> bool {
    let state =
        crate::buffer::slab::header_state(r.header.load(std::sync::atomic::Ordering::Relaxed));
    state == crate::buffer::slab::STATE_EXPORTING
}

/// What a claimed leftover holds.
pub enum Leftover {
    /// Spans to send, read a batch at a time.
    Spans(Box<DumpReader>),
    /// A batch in flight that a dying process wrote whole but did not get
    /// to rename: it belongs in the spool, under this name.
    SpoolBatch(PathBuf),
    /// Nothing (a prepared file its process never needed).
    Nothing,
    /// Not something this build can read: set it aside.
    Unreadable(String),
}

/// A leftover file, locked for recovery. Dropping it unlocks it.
pub struct Claimed {
    pub path: PathBuf,
    _lock: LockedFile,
    pub content: Leftover,
    /// Last: no other part of this process opens it until its descriptors
    /// are closed (`files::OpenHere`).
    _here: files::OpenHere,
}

impl Claimed {
    /// Deletes the file; call after its spans are delivered or spooled.
    pub fn finish(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What trying to claim a leftover found.
pub enum Claim {
    Claimed(Claimed),
    /// A live process holds it: try again later.
    Busy,
    /// Gone (recovered by another process meanwhile), or it could not be
    /// opened for a reason that may pass.
    Skip,
    /// Not a file we made (a FIFO, a link, another user's): set it aside.
    Foreign(String),
}

/// Locks one leftover file and looks at what it holds. A dump or flight
/// file is opened to write too, for its spans to be marked sent as they
/// go (`DumpReader::mark_sent`); one that cannot be opened so (this user
/// may only read it, a read-only mount) is read as before, unmarked.
///
/// A flight file is held with a claim on its owner byte too
/// (`files::try_claim_lock`), where its owner holds its record lock while
/// it lives: one whose flock is held all the same, by a child of its dead
/// owner that inherited it without running a fork handler
/// (`left_to_a_child`), is claimed through that lock alone.
pub fn claim(path: &Path, spool_max_bytes: u64) -> Claim {
    // Known as open here before it is opened: another recovery of this
    // process (another tracer's) that opened and closed it meanwhile let
    // go of our record lock with its close.
    let Ok(here_meta) = std::fs::symlink_metadata(path) else {
        return Claim::Skip;
    };
    let Some(here) = files::OpenHere::take(&here_meta) else {
        return Claim::Busy;
    };
    let before_open = files::BeforeOpen::now();
    let opened = match files::open_found(path, !is_spool_pending(path)) {
        Err(Refusal::Foreign(_) | Refusal::Failed(_)) if !is_spool_pending(path) => {
            files::open_found(path, false)
        }
        opened => opened,
    };
    let file = match opened {
        Ok(f) => f,
        Err(Refusal::Foreign(why)) => return Claim::Foreign(why),
        Err(Refusal::Gone) | Err(Refusal::Failed(_)) => return Claim::Skip,
    };
    // A second descriptor of the same open file (so, the same lock) to
    // read with, itself known to the fork handler before the lock is
    // taken: a fork between the two left it to the child, which then held
    // the lock.
    let reader = match file.try_clone() {
        Ok(f) => LockedFile::hold(f),
        Err(_) => return Claim::Skip,
    };
    let (lock, locked) = LockedFile::lock(file, before_open);
    let held = if locked {
        // Not while a recovery holds it through its claim alone (a file
        // system without record locks has none of those).
        !is_flight_file(path) || !matches!(files::try_claim_lock(lock.file()), Ok(false))
    } else {
        !before_open.forked_since() && left_to_a_child(path, reader.file())
    };
    if !held {
        return Claim::Busy;
    }
    // Recovered and deleted by another process meanwhile, or moved (set
    // aside for a person, a pending batch put in the spool), or another
    // file in its place since it was looked at: what the path names now
    // is no longer the file locked.
    if !spool::still_named(&lock, path) || !same_file(&lock, &here_meta) {
        return Claim::Skip;
    }
    let Ok(meta) = lock.file().metadata() else {
        return Claim::Skip;
    };
    // Lossily, as `leftover_files` listed it.
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let content =
        if is_spool_pending(path) {
            if meta.len() == 0 {
                Leftover::Nothing
            } else {
                match spool::read_batch(reader.file(), spool_max_bytes) {
                    Ok(_) => Leftover::SpoolBatch(path.with_file_name(format!(
                        "{}{SUFFIX}",
                        name.trim_end_matches(SPOOL_PENDING)
                    ))),
                    Err(spool::BatchError::Unreadable(why)) => Leftover::Unreadable(why),
                    Err(spool::BatchError::Io(_)) => return Claim::Skip,
                }
            }
        } else {
            let died_at = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos() as u64)
                .unwrap_or_else(crate::span::clock::now_unix_ns);
            match DumpReader::open(reader, died_at) {
                Ok(r) => Leftover::Spans(Box::new(r)),
                Err(DumpError::Empty) => Leftover::Nothing,
                Err(DumpError::Unreadable(why)) => Leftover::Unreadable(why),
                Err(DumpError::Io(_)) => return Claim::Skip,
            }
        };
    Claim::Claimed(Claimed {
        path: path.to_path_buf(),
        _lock: lock,
        content,
        _here: here,
    })
}

/// Whether the flight file at `path`, opened as `file`, whose flock another
/// open file holds, was left by an owner that died to a child holding it,
/// and is now claimed by this open file (`files::try_claim_lock`). A child
/// made by a raw `clone` or `fork` system call runs no fork handler to
/// close the descriptor it inherited: it held its dead parent's flight
/// file for as long as it lived (a daemon: for good). Its owner's record
/// lock, which no child has, is gone then, and no recoverer holds a claim.
///
/// A file named with `spool::record_lock_tag` (`OWNER_LOCKS_MARK`) is
/// judged by locks alone, which the kernel keeps whatever the PID
/// namespace of their holders: the flock held is the owner's open file's
/// (its `files::OPEN_FILE_BYTE` lock is held too, which only the owner
/// takes, and its children share), not another's (a recovery by an older
/// spanguard holds a flock of its own, without that lock). By the pid in
/// its name a dead owner in another PID namespace sharing the directory,
/// or whose pid was reused, looked alive, the pid naming another process
/// here (a container's pid 2 is its host's kthreadd), and the flock's
/// taker, which `/proc/locks` gives as a pid of this namespace, was not
/// the owner: its file was not recovered while the child lived. One named
/// by the spanguard before (`RECORD_LOCK_MARK`) is judged by the record
/// lock its owner held, and by the flock's taker, which must still be
/// the pid in its name (or out of sight): not by whether that pid lives.
///
/// The file's header must be there: the owner takes its locks before it
/// writes it, so one being made is left to its owner (read as nothing, it
/// was deleted).
fn left_to_a_child(path: &Path, file: &std::fs::File) -> bool {
    let header_written = || {
        let mut magic = [0u8; 8];
        std::os::unix::fs::FileExt::read_exact_at(file, &mut magic, 0).is_ok()
            && magic == crate::buffer::dump::MAGIC_FLIGHT
    };
    if spool::owner_locks_named(path) {
        return matches!(
            files::open_file_lock_held(file, files::OPEN_FILE_BYTE),
            Ok(true)
        ) && header_written()
            && matches!(files::try_claim_lock(file), Ok(true));
    }
    let Some(owner) = spool::record_locked_by(path) else {
        return false;
    };
    // A spanguard before (`RECORD_LOCK_MARK`): its owner held its record
    // lock on `files::OWNER_BYTE` while it lived, and the flock it took
    // (`files::flock_takers`: its pid, or 0 for a taker gone or out of
    // sight). No record lock there is a dead owner, whatever the pid in the
    // name names here: judged by a live process of that pid, as it was, a
    // dead owner's pid reused (a container restarted with the same small
    // pid, its predecessor's file on the volume) or naming another
    // process in another PID namespace kept the file from recovery for as
    // long as the child holding it lived. `try_claim_lock` takes the byte
    // only where no record lock (the owner's) nor another recovery's
    // claim is.
    let owners_flock =
        |takers: Vec<i32>| !takers.is_empty() && takers.iter().all(|&t| t == owner || t == 0);
    files::flock_takers(file).is_ok_and(owners_flock)
        && header_written()
        && matches!(files::try_claim_lock(file), Ok(true))
}

/// Whether `lock` is the file `meta` (looked at before it was opened) is.
fn same_file(lock: &LockedFile, meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    lock.file()
        .metadata()
        .is_ok_and(|m| (m.dev(), m.ino()) == (meta.dev(), meta.ino()))
}

/// A batch in flight left unpublished (not a dump or flight file).
fn is_spool_pending(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(SPOOL_PENDING))
}

/// One dump or flight file read: what a program is told of it.
#[derive(Debug)]
pub struct RecoveredFile {
    pub path: PathBuf,
    /// Spans sent (or kept in the spool) from it.
    pub spans: u64,
    /// The process that left it, as its header says.
    pub pid: u32,
    /// The signal that ended that process, 0 when its file names none.
    pub signal: i32,
}

/// Why spans of a dead process's crash dump are lost
/// (`DumpReader::torn_records`).
const TORN_RECORDS: &str = "torn in a dead process's crash dump: its writer died (or its disk \
                            filled) before their records were whole on disk, so nothing of \
                            them could be read";

/// Where values of spans recovered from a dead process's crash dump or
/// flight file were cut (`DumpReader::take_chunks_cut`), said after "to
/// fit their spans into".
pub const TORN_CHUNKS: &str = "what a dead process's crash dump or flight file held of them (its \
                           writer died while it wrote their payload chunks: the values in the \
                           chunks missing arrive cut or left out, one counted a span)";

/// Where values of spans recovered from a dead process's crash dump or
/// flight file were cut at the most one recovered span keeps
/// (`DumpReader::take_chunks_over_limit`), said after "to fit their spans
/// into".
pub const CHUNKS_OVER_LIMIT: &str = "the 64 MiB of values that a span recovered from a dead \
                                 process's crash dump or flight file keeps (its record named \
                                 more: the values in the chunks past it arrive cut or left \
                                 out, one counted a span)";

/// Tells `host` what a dead process's file held only in part: `cut`
/// spans sent with chunks missing (a value cut each), `lost` records torn
/// (`DumpReader::take_chunks_cut`, `torn_records`).
fn tell_torn(host: &mut dyn super::delivery::DeliveryHost, cut: u64, lost: u64) {
    use super::delivery::{Origin, Outcome};
    if cut > 0 {
        host.record(Outcome::Cut {
            origin: Origin::Recovered,
            values: cut,
            limit: TORN_CHUNKS,
        });
    }
    if lost > 0 {
        host.record(Outcome::Lost {
            origin: Origin::Recovered,
            spans: lost,
            reason: TORN_RECORDS,
        });
    }
}

/// What one look at the spool directory recovered.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Each dump or flight file read.
    pub files: Vec<RecoveredFile>,
    /// An unpublished in-flight batch was moved into the spool: replay it.
    pub spool_batches: bool,
    /// The look stopped for something else that needed the thread
    /// (`DeliveryHost::busy`): files are left for the next one.
    pub gave_way: bool,
}

/// Sends what dead processes left in `dir` (dumps and flight files, a batch
/// of `batch` spans at a time, through `delivery`, which spools what it
/// cannot send), of those its sender takes (`SpoolDir::takes`: their
/// names say they were written for it, or for no sender in particular), moves whole unpublished batches into the spool, deletes
/// what held nothing and sets aside what cannot be read (noted in the
/// spool for its owner to report). Files a live process holds are left for
/// a later look, and so are the files after the one before which `host`
/// needed the thread (`DeliveryHost::busy`, `Recovery::gave_way`). Lengths
/// are bounded by the spool's read limit. The exporter and `spanguard
/// replay` both recover through this.
///
/// Each batch of a file, once sent or spooled, is marked so in the file
/// (`DumpReader::mark_sent`): a recoverer killed midway leaves the next
/// one only the spans it had not sent (the batch it was delivering when
/// killed, if it was between the delivery and the mark, goes twice).
pub fn recover_dir(
    dir: &Path,
    own: &[&Path],
    batch: usize,
    delivery: &mut super::delivery::Delivery,
    encoder: &mut super::request_encoder::RequestEncoder,
    host: &mut dyn super::delivery::DeliveryHost,
) -> Recovery {
    let mut done = Recovery::default();
    let spool = delivery.spool().clone();
    let spool_max_bytes = spool.read_limit();
    // One read of the directory for all three (it was read once for each,
    // every 3 s: the same names moments apart, a second and a third time).
    let names = spool::dir_names(dir);
    // Each cleanup gives way on its own, and the leftovers after them
    // still get their first few recovered: a flush right after start sees
    // a dead process's dumps however many files were planted beside them.
    done.gave_way |= spool.remove_dead_temp_files(&names, || host.busy());
    done.gave_way |= remove_dead_makers_files(&names, &spool, || host.busy());
    // Not the leftovers of a process that sent elsewhere (another
    // endpoint or key, a local sink): they wait, unopened, for a sender
    // set up like it (`SpoolDir::takes`), as its spool files do.
    let leftovers = leftover_files(&names, own)
        .into_iter()
        .filter(|p| spool.takes(p));
    for (handled, path) in leftovers.enumerate() {
        // Asked before each file past the first `spool::HANDLED_BEFORE_GIVING_WAY`,
        // not only by a send: files that cannot be read are set aside
        // without one, and a look through 100,000 of them held a flush,
        // the shutdown's deadline and the filling queue until it was done.
        // The rest are found by the next look. The first few are always
        // recovered: a flush right after start (a short command-line
        // agent's) still sees the few dumps a dead process left, as it did
        // before the look gave way (tests/c/test_recovered_resource.c).
        if handled >= spool::HANDLED_BEFORE_GIVING_WAY && host.busy() {
            done.gave_way = true;
            break;
        }
        let claimed = match claim(&path, spool_max_bytes) {
            Claim::Claimed(c) => c,
            Claim::Busy | Claim::Skip => continue,
            Claim::Foreign(why) => {
                spool.put_aside(&path, &why);
                continue;
            }
        };
        match claimed.content {
            Leftover::Spans(mut reader) => {
                let header = *reader.header();
                // A flight file's batch whose journal was published moments
                // before a SIGKILL is in both: sent from the journal only.
                // Its journals are looked for once a span in export is
                // read (most flight files have none), in the directory as
                // it is now: the look's listing may be older than the
                // journal, published by the process before it died.
                let mut journaled: Option<std::collections::HashSet<SpanIds>> = None;
                if !header.service_name_whole().1 {
                    // The header had no room for the whole name: its spans
                    // arrive with it cut, counted and said as a value cut
                    // (once a file).
                    host.record(super::delivery::Outcome::Cut {
                        origin: super::delivery::Origin::Recovered,
                        values: 1,
                        limit: "the header of a dead process's crash dump or flight file (a \
                                service.name that fills its 256 bytes and does not fit whole \
                                in the 1 KiB of resource text beside them; its recovered spans \
                                carry the name cut)",
                    });
                }
                let mut spans = 0u64;
                // Of them, open when the process died.
                let mut open = 0u64;
                let mut marking = true;
                let read_whole = loop {
                    match reader.next_records(batch) {
                        Ok(records) if records.is_empty() => break true,
                        Ok(mut records) => {
                            if is_flight_file(&path) && records.iter().any(|(r, _)| in_export(r)) {
                                let journaled = journaled.get_or_insert_with(|| {
                                    journaled_spans(&spool::dir_names(dir), &path, spool_max_bytes)
                                });
                                records.retain(|(r, _)| !in_journal(r, journaled));
                            }
                            let part = crate::buffer::dump::Recovered { header, records };
                            for (r, _) in &part.records {
                                if super::delivery::is_recording(r) {
                                    spans += 1;
                                    open += u64::from(r.marks & MARK_INTERRUPTED != 0);
                                }
                            }
                            // What the callback is told of the batch waits
                            // for its marks: a callback that blocked (the
                            // recoverer then killed in it) left the batch
                            // spooled and unmarked, sent twice.
                            host.hold_told();
                            // Cut as the file holds them, whatever then
                            // becomes of them (as a cut at this process's
                            // size limit is counted).
                            tell_torn(host, reader.take_chunks_cut(), 0);
                            let over_limit = reader.take_chunks_over_limit();
                            if over_limit > 0 {
                                host.record(super::delivery::Outcome::Cut {
                                    origin: super::delivery::Origin::Recovered,
                                    values: over_limit,
                                    limit: CHUNKS_OVER_LIMIT,
                                });
                            }
                            delivery.deliver_recovered(&part, encoder, host);
                            // Sent or spooled: marked so, so that a
                            // recoverer killed from here on does not leave
                            // them for the next one to send again.
                            marking = marking && reader.mark_sent().is_ok();
                            host.let_told_out();
                        }
                        Err(e) => {
                            // What was read is sent; the rest stays on disk
                            // for a person, never sent twice.
                            spool.put_aside(&path, &format!("reading failed: {e:?}"));
                            break false;
                        }
                    }
                };
                done.files.push(RecoveredFile {
                    path: path.clone(),
                    spans,
                    pid: header.pid,
                    signal: header.signal,
                });
                // Deleted while still locked, so no one else sends it; what
                // it held and the signal it names are noted first in its
                // process's record, for `spanguard why`.
                if read_whole {
                    // Once, as the file goes: a recoverer killed before
                    // this counted none of them, and the next one reads
                    // the file to its end again.
                    tell_torn(host, 0, reader.torn_records());
                    let death = super::outcome::Death {
                        signal: header.signal,
                        at_unix_s: reader.died_at_ns() / 1_000_000_000,
                        open,
                        spans,
                    };
                    super::outcome::note_death(dir, &path, header.pid, &death);
                    let _ = std::fs::remove_file(&claimed.path);
                }
                drop(reader);
            }
            Leftover::SpoolBatch(ref name) => {
                done.spool_batches |= std::fs::rename(&claimed.path, name).is_ok();
            }
            Leftover::Nothing => claimed.finish(),
            Leftover::Unreadable(ref why) => spool.put_aside(&claimed.path, why),
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::dump::{DumpHeader, magic_of};
    use crate::buffer::slab::{STATE_ENDED, STATE_FREE, STATE_OPEN, pack_header};
    use crate::export::delivery::{Delivery, DeliveryHost, Outcome};
    use crate::export::otlp_decode::decode_proto;
    use crate::export::request_encoder::RequestEncoder;
    use crate::export::spool::{ReplayVerdict, SpoolDir};
    use crate::export::transport::{Accepted, BodyFormat, SendError, Transport};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    /// Spans received: (trace id, span id, end).
    type Received = Arc<Mutex<Vec<([u8; 16], [u8; 8], u64)>>>;

    /// Takes `left` requests, keeping their spans' (trace id, span id, end),
    /// then dies (panics) at the next: a recoverer SIGKILLed midway.
    struct DiesAfter {
        left: usize,
        got: Received,
    }

    impl Transport for DiesAfter {
        fn send(&mut self, body: &[u8], _: BodyFormat, _: bool) -> Result<Accepted, SendError> {
            if self.left == 0 {
                panic!("the recoverer is killed here");
            }
            self.left -= 1;
            let spans = decode_proto(body).expect("protobuf");
            let mut got = self.got.lock().unwrap();
            got.extend(spans.iter().map(|s| (s.trace_id, s.span_id, s.end_unix_ns)));
            Ok(Accepted::default())
        }
        fn describe(&self) -> String {
            "dies-after:".to_string()
        }
    }

    struct Quiet;
    impl DeliveryHost for Quiet {
        fn wait(&mut self, _: Duration) -> bool {
            false
        }
        fn record(&mut self, _: Outcome<'_>) {}
    }

    /// A record of trace `file`, span `n`, in `state`.
    fn record_bytes(file: u8, n: u8, state: u32) -> Vec<u8> {
        crate::span::record::record_bytes_for_test(file, n, pack_header(9, state))
    }

    /// A crash dump (trace 1) and a flight file (trace 2, with free slots
    /// between its spans), of 10 spans each, the last one open.
    fn plant(dir: &Path, died: SystemTime) -> [PathBuf; 2] {
        let state = |n: u8| if n == 10 { STATE_OPEN } else { STATE_ENDED };
        let mut dump = DumpHeader::new(magic_of(false), 10, "svc", &[])
            .as_bytes()
            .to_vec();
        for n in 1..=10 {
            dump.extend(record_bytes(1, n, state(n)));
        }
        let mut flight = DumpHeader::new(magic_of(true), 20, "svc", &[])
            .as_bytes()
            .to_vec();
        flight.resize(flight.len().next_multiple_of(64), 0);
        for n in 1..=10 {
            flight.extend(record_bytes(2, n, state(n)));
            flight.extend(record_bytes(0, 0, STATE_FREE));
        }
        let paths = [dir.join("a.sgdump"), dir.join("b.sgflight")];
        for (path, bytes) in paths.iter().zip([dump, flight]) {
            std::fs::write(path, bytes).expect("plant");
            let f = std::fs::File::options()
                .write(true)
                .open(path)
                .expect("open");
            f.set_modified(died).expect("mtime");
        }
        paths
    }

    /// A worker forked by another thread of ours while a recovery claims a
    /// file, after its lock and before the second descriptor it reads
    /// with was known to the fork handler: the child kept that descriptor,
    /// so the lock, and a file the recovery let go of unfinished (its
    /// spans not delivered) stayed locked, no recovery took it while the
    /// child lived. The next claim takes it.
    #[test]
    fn a_file_claimed_across_a_fork_is_claimed_again_while_the_child_lives() {
        if !crate::forking_tests::run_alone(
            module_path!(),
            "a_file_claimed_across_a_fork_is_claimed_again_while_the_child_lives",
        ) {
            return;
        }
        let dir = std::env::temp_dir().join(format!("sg-recovery-fork-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        files::ensure_private_dir(&dir).expect("dir");
        let path = dir.join("x.sgspool-pending");
        std::fs::write(&path, b"").expect("write");
        let child = std::rc::Rc::new(std::cell::Cell::new(0));
        let c = std::rc::Rc::clone(&child);
        // At the second descriptor made known: the lock's or the reader's.
        files::set_before_registering(Box::new(move || {
            files::set_before_registering(Box::new(move || c.set(files::fork_a_waiting_child())));
        }));
        let first = claim(&path, 1 << 20);
        assert!(child.get() > 0, "forked between");
        drop(first); // not finished: its spans were not delivered
        let again = claim(&path, 1 << 20);
        files::end_waiting_child(child.get());
        assert!(
            matches!(again, Claim::Claimed(_)),
            "the child holds the lock of a file we let go of"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Another recoverer set a crash dump aside (a part it could not read,
    /// kept for a person) between this one's open of it and its lock: the
    /// file, still linked under its new name, was claimed all the same
    /// (only a link count of 0 was refused), its spans read and sent from
    /// a file kept for no recoverer to read again. The claim holds only
    /// a file its path still names.
    #[test]
    fn a_leftover_moved_between_its_open_and_its_lock_is_not_claimed() {
        let dir = fresh_dir("moved");
        let died = UNIX_EPOCH + Duration::new(1_700_000_000, 0);
        let [dump, flight] = plant(&dir, died);
        std::fs::remove_file(&flight).expect("one file");
        // At the second descriptor made known (the lock's): the other
        // recoverer's set-aside, its lock let go.
        let moved = dump.clone();
        files::set_before_registering(Box::new(move || {
            files::set_before_registering(Box::new(move || {
                files::set_aside(&moved).expect("set aside");
            }));
        }));
        let got: Received = Arc::new(Mutex::new(Vec::new()));
        recover_beside(&dir, &got);
        assert!(!dump.exists(), "set aside");
        let got = got.lock().unwrap().clone();
        assert!(got.is_empty(), "a file set aside was sent: {got:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// What a recovery of `dir` (its flight file `flight` taken) and a
    /// replay after it send.
    fn recovered_then_replayed(dir: &Path, flight: &Path) -> Received {
        let got: Received = Arc::new(Mutex::new(Vec::new()));
        recover_beside(dir, &got);
        assert!(!flight.exists());
        replay_beside(dir, &got);
        got
    }

    /// An empty private directory of this test process, named for `test`.
    fn fresh_dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sg-recovery-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        files::ensure_private_dir(&dir).expect("dir");
        dir
    }

    /// A recoverer killed midway (a process recovering at start-up that is
    /// itself SIGKILLed, a container restarted in a loop) left the file
    /// whole, and the next one sent all of it again: a backend got the
    /// spans sent before the kill twice (duplicate traces, LLM token costs
    /// counted twice). Killed after every second request, recovery after
    /// recovery sends each span once, open spans ended when their process
    /// died (not when a recoverer wrote in its file), and a look at a file
    /// half recovered counts only the spans still to send.
    #[test]
    fn a_recovery_killed_midway_leaves_the_next_only_what_it_did_not_send() {
        let dir = std::env::temp_dir().join(format!("sg-recovery-killed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        files::ensure_private_dir(&dir).expect("dir");
        let died = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        let died_ns = 1_700_000_000_123_456_789u64;
        let [dump, flight] = plant(&dir, died);
        let got = Arc::new(Mutex::new(Vec::new()));
        let mut runs = 0;
        let mut waiting = Vec::new();
        // Batches of 3: each file is 4 requests, each run sends 2.
        while runs < 10 && (dump.exists() || flight.exists()) {
            runs += 1;
            let transport = DiesAfter {
                left: 2,
                got: Arc::clone(&got),
            };
            let mut delivery = delivery_to(&dir, transport);
            let mut encoder = RequestEncoder::new(BodyFormat::Protobuf, false, 1 << 20, 3);
            let killed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                recover_dir(&dir, &[], 3, &mut delivery, &mut encoder, &mut Quiet)
            }))
            .is_err();
            if killed {
                // What `spanguard show` and `spool` count still waiting.
                let left = [&dump, &flight]
                    .iter()
                    .filter_map(|p| crate::export::dump_view::read_dump(p, 0, u64::MAX))
                    .map(|v| v.spans.len())
                    .sum::<usize>();
                waiting.push(left);
                for path in [&dump, &flight].iter().filter(|p| p.exists()) {
                    let modified = std::fs::metadata(path).expect("meta").modified();
                    assert_eq!(modified.expect("mtime"), died, "{}", path.display());
                }
            }
        }
        let mut got = got.lock().unwrap().clone();
        got.sort();
        let sent = got.len();
        got.dedup_by_key(|(trace, span, _)| (*trace, *span));
        assert_eq!(sent, got.len(), "spans sent twice, in {runs} runs");
        let mut want: Vec<_> = (1..=2u8)
            .flat_map(|f| {
                (1..=10u8).map(move |n| ([f; 16], [n; 8], if n == 10 { died_ns } else { 20 }))
            })
            .collect();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(runs, 4);
        // After 6, 10 (the dump done and gone) and 16 of the 20 sent.
        assert_eq!(waiting, vec![14, 10, 4]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A host whose application callback never returns: the recoverer is
    /// killed in it (a panic here), at the first outcome it tells of
    /// unless told ones are held (`hold_told`), else as they are let out.
    #[derive(Default)]
    struct KilledTelling {
        holding: bool,
        held: usize,
    }

    impl DeliveryHost for KilledTelling {
        fn wait(&mut self, _: Duration) -> bool {
            false
        }
        fn record(&mut self, _: Outcome<'_>) {
            if !self.holding {
                panic!("the recoverer is killed in its callback");
            }
            self.held += 1;
        }
        fn hold_told(&mut self) {
            self.holding = true;
        }
        fn let_told_out(&mut self) {
            if self.held > 0 {
                panic!("the recoverer is killed in its callback");
            }
            self.holding = false;
        }
    }

    /// A recoverer whose callback blocked as it told of a dead process's
    /// batch (test_exit_many_stuck.c: a tracer stuck in its callback,
    /// then killed, had recovered another's dump at its start) told of it
    /// before marking it sent in the file: the next recoverer sent the
    /// batch again (or, spooled, it was in the spool and in the file).
    /// Told once marked, each span is sent once.
    #[test]
    fn a_recoverer_killed_in_its_callback_leaves_the_batch_marked_sent() {
        let dir = std::env::temp_dir().join(format!("sg-recovery-told-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        files::ensure_private_dir(&dir).expect("dir");
        let [dump, flight] = plant(&dir, UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let got: Received = Arc::new(Mutex::new(Vec::new()));
        let transport = DiesAfter {
            left: usize::MAX,
            got: Arc::clone(&got),
        };
        let mut delivery = delivery_to(&dir, transport);
        let mut encoder = RequestEncoder::new(BodyFormat::Protobuf, false, 1 << 20, 3);
        let killed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            recover_dir(
                &dir,
                &[],
                3,
                &mut delivery,
                &mut encoder,
                &mut KilledTelling::default(),
            )
        }))
        .is_err();
        assert!(killed, "killed in the callback");
        assert_eq!(got.lock().unwrap().len(), 3, "one batch sent before");
        drop(delivery);
        recover_beside(&dir, &got);
        let mut got = got.lock().unwrap().clone();
        let sent = got.len();
        got.sort();
        got.dedup_by_key(|(trace, span, _)| (*trace, *span));
        assert_eq!(sent, got.len(), "spans sent twice");
        assert_eq!(sent, 20);
        assert!(!dump.exists() && !flight.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Keeps each request's body as it was sent.
    struct KeepsBodies(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Transport for KeepsBodies {
        fn send(&mut self, body: &[u8], _: BodyFormat, _: bool) -> Result<Accepted, SendError> {
            self.0.lock().unwrap().push(body.to_vec());
            Ok(Accepted::default())
        }
        fn describe(&self) -> String {
            "keeps-bodies:".to_string()
        }
    }

    /// A flight file of spans 1..=10 of trace 2, each in `state(n)`.
    fn plant_flight(path: &Path, state: impl Fn(u8) -> u32) {
        let mut flight = DumpHeader::new(magic_of(true), 10, "svc", &[])
            .as_bytes()
            .to_vec();
        flight.resize(flight.len().next_multiple_of(64), 0);
        for n in 1..=10 {
            flight.extend(record_bytes(2, n, state(n)));
        }
        std::fs::write(path, flight).expect("plant");
    }

    /// SIGKILLed between publishing a request's journal and freeing its
    /// slots, the flight recorder left that batch twice: in the journal (a
    /// spool file, replayed) and as EXPORTING slots of its flight file
    /// (recovered). Both were sent. Now recovery sends only the flight
    /// file's spans that its journal (named for it) does not hold.
    #[test]
    fn a_batch_both_journaled_and_in_export_is_recovered_from_the_journal_only() {
        use crate::buffer::slab::STATE_EXPORTING;
        let dir =
            std::env::temp_dir().join(format!("sg-recovery-journaled-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        files::ensure_private_dir(&dir).expect("dir");
        // The request the journal holds: spans 1..=3, as the exporter
        // encoded them (here, as a recovery of them alone does).
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let journal_of = dir.join("of.sgflight");
        plant_flight(
            &journal_of,
            |n| if n <= 3 { STATE_ENDED } else { STATE_FREE },
        );
        let mut delivery = Delivery::new(
            Box::new(KeepsBodies(Arc::clone(&bodies))),
            SpoolDir::new(&dir, 1 << 20),
            Duration::from_secs(30),
            1 << 20,
        );
        let mut encoder = RequestEncoder::new(BodyFormat::Protobuf, false, 1 << 20, 16);
        recover_dir(&dir, &[], 16, &mut delivery, &mut encoder, &mut Quiet);
        let body = bodies.lock().unwrap().pop().expect("one request");
        assert!(!journal_of.exists());
        let journal = SpoolDir::new(&dir, 1 << 20)
            .write_journal(
                BodyFormat::Protobuf,
                false,
                (3, 0, &[]),
                &body,
                Some(FLIGHT_ID),
            )
            .expect("journal");
        let journal_path = journal.path.clone();
        drop(journal); // killed: its lock goes, its file stays
        // Its flight file: those three in export, seven more ended.
        let killed = format!(
            "{:020}-{:010}-{FLIGHT_ID:x}.sgflight",
            1_700_000_000_000_000_000u64,
            std::process::id()
        );
        plant_flight(&dir.join(killed), |n| {
            if n <= 3 { STATE_EXPORTING } else { STATE_ENDED }
        });
        let got: Received = Arc::new(Mutex::new(Vec::new()));
        recover_beside(&dir, &got);
        let mut sent: Vec<u8> = got.lock().unwrap().iter().map(|s| s.1[0]).collect();
        sent.sort();
        assert_eq!(
            sent,
            (4..=10).collect::<Vec<u8>>(),
            "the journal's spans sent from it alone"
        );
        assert!(
            journal_path.exists(),
            "the journal is left to the spool's replay"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The dead process's flight file id, pid and journal name of the
    /// journal tests: a flight file `<time>-<pid>-<id>.sgflight` whose
    /// spans 1..=3 of trace 2 are in export and 4..=10 ended, and the
    /// journal of those three, named for that flight file as the exporter
    /// names it (`spool::journal_tag`).
    const FLIGHT_ID: u64 = 0x00c0_ffee_1234_5678;

    fn plant_journaled_flight(dir: &Path) -> (PathBuf, PathBuf) {
        plant_journaled_flight_of(dir, std::process::id())
    }

    /// `plant_journaled_flight`, left by the process `pid`.
    fn plant_journaled_flight_of(dir: &Path, pid: u32) -> (PathBuf, PathBuf) {
        use crate::buffer::slab::STATE_EXPORTING;
        // The request the journal holds, as a recovery of spans 1..=3
        // encodes it.
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let of = dir.join("of.sgflight");
        plant_flight(&of, |n| if n <= 3 { STATE_ENDED } else { STATE_FREE });
        let mut delivery = Delivery::new(
            Box::new(KeepsBodies(Arc::clone(&bodies))),
            SpoolDir::new(dir, 1 << 20),
            Duration::from_secs(30),
            1 << 20,
        );
        let mut encoder = RequestEncoder::new(BodyFormat::Protobuf, false, 1 << 20, 16);
        recover_dir(dir, &[], 16, &mut delivery, &mut encoder, &mut Quiet);
        let body = bodies.lock().unwrap().pop().expect("one request");
        assert!(!of.exists());
        let flight = dir.join(format!(
            "{:020}-{pid:010}-{FLIGHT_ID:x}.sgflight",
            1_700_000_000_000_000_000u64
        ));
        plant_flight(
            &flight,
            |n| {
                if n <= 3 { STATE_EXPORTING } else { STATE_ENDED }
            },
        );
        let journal = dir.join(format!(
            "{:020}-{pid:010}-000001-journalof{FLIGHT_ID:016x}.sgspool",
            1_700_000_000_100_000_000u64
        ));
        write_spool_file(&journal, &body, 3);
        (flight, journal)
    }

    /// A spool file at `path` holding `body`, a request of `spans` spans.
    fn write_spool_file(path: &Path, body: &[u8], spans: u32) {
        let mut bytes = spool::encode_header(BodyFormat::Protobuf, false, spans, 0, body.len())
            .as_bytes()
            .to_vec();
        bytes.extend_from_slice(body);
        std::fs::write(path, bytes).expect("spool file");
    }

    /// What a spool replay of `dir` (`spanguard replay`, a tracer starting
    /// beside) sends, into `got`.
    fn replay_beside(dir: &Path, got: &Received) {
        SpoolDir::new(dir, 1 << 20).replay(|batch| {
            let spans = decode_proto(&batch.body).expect("protobuf");
            let mut got = got.lock().unwrap();
            got.extend(spans.iter().map(|s| (s.trace_id, s.span_id, s.end_unix_ns)));
            ReplayVerdict::Delivered
        });
    }

    /// Each of trace 2's ten spans, sent once, whatever the order.
    fn each_sent_once(got: &Received, also: usize) {
        let got = got.lock().unwrap().clone();
        let mut ids: Vec<_> = got.iter().map(|s| (s.0, s.1)).collect();
        ids.sort();
        let sent = ids.len();
        ids.dedup();
        assert_eq!(sent, ids.len(), "spans sent twice: {got:?}");
        let trace2: Vec<u8> = ids
            .iter()
            .filter(|s| s.0 == [2; 16])
            .map(|s| s.1[0])
            .collect();
        assert_eq!(trace2, (1..=10).collect::<Vec<u8>>());
        assert_eq!(sent, 10 + also);
    }

    /// Pids wrap, and a container restarts with the same small pid: a
    /// process of the dead one's pid wrote a spool file since. Recovery
    /// took the newest spool file of that pid for the dead process's
    /// journal, found none of the flight file's spans in export there,
    /// and sent them, while the real journal was replayed too: spans 1..=3
    /// twice. The journal is found by the flight file it was written for.
    #[test]
    fn a_journal_hidden_by_a_newer_spool_file_of_a_reused_pid_is_still_found() {
        let dir = fresh_dir("reused");
        // The new process's batch: one span of trace 3.
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let theirs = dir.join("theirs.sgdump");
        let mut dump = DumpHeader::new(magic_of(false), 1, "svc", &[])
            .as_bytes()
            .to_vec();
        dump.extend(record_bytes(3, 1, STATE_ENDED));
        std::fs::write(&theirs, dump).expect("plant");
        let mut delivery = Delivery::new(
            Box::new(KeepsBodies(Arc::clone(&bodies))),
            SpoolDir::new(&dir, 1 << 20),
            Duration::from_secs(30),
            1 << 20,
        );
        let mut encoder = RequestEncoder::new(BodyFormat::Protobuf, false, 1 << 20, 16);
        recover_dir(&dir, &[], 16, &mut delivery, &mut encoder, &mut Quiet);
        let body = bodies.lock().unwrap().pop().expect("their request");
        let (flight, _journal) = plant_journaled_flight(&dir);
        let newer = dir.join(format!(
            "{:020}-{:010}-000002.sgspool",
            1_700_000_000_200_000_000u64,
            std::process::id()
        ));
        write_spool_file(&newer, &body, 1);
        let got = recovered_then_replayed(&dir, &flight);
        each_sent_once(&got, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A process of a spanguard before journals named their flight file
    /// (`-journalof`), SIGKILLed between publishing a request's journal
    /// and freeing its slots, recovered by this one after an upgrade:
    /// recovery looked only for a journal named for the flight file, found
    /// none, and sent the slots in export, while the journal was replayed
    /// too: spans 1..=3 twice (the older recovery paired them by the pid).
    /// Such a journal is found among the process's spool files.
    #[test]
    fn a_journal_of_an_older_spanguard_beside_its_flight_file_is_sent_once() {
        let dir = fresh_dir("older");
        let (flight, journal) = plant_journaled_flight(&dir);
        let older = named_as_before(&journal, std::process::id());
        let got = recovered_then_replayed(&dir, &flight);
        assert!(!older.exists());
        each_sent_once(&got, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The pid of a process that ran and was reaped: no live process has
    /// it (unless reused since, which a test moments later does not see).
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("reaped");
        pid
    }

    /// The journal `journal` (`plant_journaled_flight`) named as a
    /// spanguard before journals named their flight file named it: as
    /// any spool file of its process.
    fn named_as_before(journal: &Path, pid: u32) -> PathBuf {
        let older = journal.with_file_name(format!(
            "{:020}-{pid:010}-000001.sgspool",
            1_700_000_000_100_000_000u64
        ));
        std::fs::rename(journal, &older).expect("named as before");
        older
    }

    /// Two recoverers on one spool (two agents starting at once, or
    /// `spanguard replay` beside a starting agent) and a dead process of a
    /// spanguard before journals named their flight file: one replayed
    /// the journal (and deleted it) before the other recovered the flight
    /// file, which then found no journal among the process's spool files
    /// and sent the slots in export again: spans 1..=3 twice. A marked
    /// journal waited for its flight file's recovery; an unmarked one that
    /// may be the journal of a dead process's flight file waits as well.
    #[test]
    fn a_journal_of_an_older_spanguard_replayed_before_its_flight_file_is_sent_once() {
        let dir = fresh_dir("older-first");
        let pid = dead_pid();
        let (flight, journal) = plant_journaled_flight_of(&dir, pid);
        let older = named_as_before(&journal, pid);
        replayed_first_then_recovered(&dir, &flight, &older);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A replay of `dir` before the recovery of its flight file `flight`
    /// and another after it send each span of the flight file and its
    /// journal `journal` once, and leave neither.
    fn replayed_first_then_recovered(dir: &Path, flight: &Path, journal: &Path) {
        let got: Received = Arc::new(Mutex::new(Vec::new()));
        replay_beside(dir, &got);
        recover_beside(dir, &got);
        assert!(!flight.exists());
        replay_beside(dir, &got);
        assert!(!journal.exists());
        each_sent_once(&got, 0);
    }

    /// A dead process of a spanguard before journals named their flight
    /// file, whose pid names a live process here (a container restarted
    /// on its volume runs as pid 1 again; pids reused; another PID
    /// namespace sharing the directory): judged by that pid, it looked
    /// alive, its journal was replayed at once as a live process's batch
    /// kept for later, and the recovery of its flight file after found no
    /// journal and sent the slots in export again: spans 1..=3 twice. The
    /// locks the owner of its flight file held (none left: a flock of
    /// nobody's; a record lock gone) say it is dead, and the journal waits.
    #[test]
    fn a_journal_of_an_older_spanguard_whose_pid_lives_here_is_sent_once() {
        for pid in [1, std::process::id()] {
            for record_locked in [false, true] {
                let dir = fresh_dir(&format!("older-live-{pid}-{record_locked}"));
                let (mut flight, journal) = plant_journaled_flight_of(&dir, pid);
                if record_locked {
                    let named = spool::named_as_record_locked(&flight_named_for(&dir, pid, true));
                    std::fs::rename(&flight, &named).expect("named as before");
                    flight = named;
                }
                let older = named_as_before(&journal, pid);
                replayed_first_then_recovered(&dir, &flight, &older);
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }

    /// What the older-journal wait must not hold: a live process's batch
    /// kept for later (unmarked, as every kept journal is) beside its
    /// flight file is replayed while it lives, by a replay of another
    /// process as by its own, not once it has ended.
    #[test]
    fn a_kept_batch_of_a_live_flight_recorder_is_replayed_while_it_lives() {
        let dir = fresh_dir("kept-live");
        let pid = std::process::id();
        let (flight, journal) = plant_journaled_flight_of(&dir, pid);
        let kept = named_as_before(&journal, pid);
        // Its owner lives: its flight file is locked.
        let (_held, locked) = files::LockedFile::lock(
            files::open_found(&flight, false).expect("open"),
            files::BeforeOpen::now(),
        );
        assert!(locked);
        let got: Received = Arc::new(Mutex::new(Vec::new()));
        replay_beside(&dir, &got);
        assert!(!kept.exists(), "a live process's kept batch waits");
        assert_eq!(got.lock().unwrap().len(), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A flight file of process `pid` in `dir`, its name saying that its
    /// owner holds its locks on it (`spool::record_lock_tag`) when
    /// `marked`, and its flock held by another open file, which is
    /// returned: with the owner's locks (`owners`: its open file's and its
    /// record lock, as this process holds its own flight file) or without
    /// them (another's flock: a recovery by an older spanguard).
    fn plant_held_flight(
        dir: &Path,
        pid: u32,
        marked: bool,
        owners: bool,
    ) -> (PathBuf, std::fs::File) {
        let path = flight_named_for(dir, pid, marked);
        plant_flight(&path, |_| STATE_ENDED);
        let holder = std::fs::File::options()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open");
        assert!(files::try_lock(&holder));
        if owners {
            assert!(matches!(
                files::try_open_file_lock(&holder, files::OPEN_FILE_BYTE),
                Ok(true)
            ));
            assert!(matches!(files::try_record_lock(&holder), Ok(true)));
        }
        (path, holder)
    }

    /// The name of a flight file of process `pid` in `dir`, saying that
    /// its owner holds a record lock on it when `marked`.
    fn flight_named_for(dir: &Path, pid: u32, marked: bool) -> PathBuf {
        let tag = if marked { spool::record_lock_tag() } else { "" };
        dir.join(format!(
            "{:020}-{pid:010}-{FLIGHT_ID:x}{tag}.sgflight",
            1_700_000_000_000_000_000u64
        ))
    }

    /// A live process holding the flock a dead one took: as a child made
    /// by a raw fork system call holds its SIGKILLed parent's. The flight
    /// file planted in `dir`, named for the dead taker (marked), and the
    /// holder's pid, for `end_orphan`.
    fn plant_flight_held_by_an_orphan(dir: &Path) -> (PathBuf, libc::pid_t) {
        let (path, holder, _) = plant_flight_held_by_a_child(dir, false);
        (path, holder)
    }

    /// `plant_flight_held_by_an_orphan`, its taker left alive when
    /// `taker_lives` (a live process of the pid in the name, which holds no
    /// record lock on the file: as one given a dead owner's pid since),
    /// returned last, for `end_orphan`.
    fn plant_flight_held_by_a_child(
        dir: &Path,
        taker_lives: bool,
    ) -> (PathBuf, libc::pid_t, libc::pid_t) {
        use std::os::unix::ffi::OsStrExt;
        let planted = dir.join("planted.sgflight");
        plant_flight(&planted, |_| STATE_ENDED);
        let c = std::ffi::CString::new(planted.as_os_str().as_bytes()).expect("path");
        let mut pipe = [0; 2];
        let raw_fork = || {
            // SAFETY: a fork without fork handlers; the child makes system
            // calls only, then exits (its own child only waits).
            unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0) }
        };
        // SAFETY: our pipe; in the child, system calls only.
        let taker = unsafe {
            assert_eq!(libc::pipe(pipe.as_mut_ptr()), 0);
            let taker = raw_fork() as libc::pid_t;
            if taker == 0 {
                // Nothing of the other tests' files kept open for as long
                // as the holder lives (they would stay locked): the file
                // at 101, the pipe at 100, the rest closed.
                libc::dup2(libc::open(c.as_ptr(), libc::O_RDWR), 101);
                libc::dup2(pipe[1], 100);
                libc::syscall(libc::SYS_close_range, 3u32, 99u32, 0u32);
                libc::syscall(libc::SYS_close_range, 102u32, u32::MAX, 0u32);
                libc::flock(101, libc::LOCK_EX);
                // The owner's open file's lock (`files::OPEN_FILE_BYTE`),
                // which its child shares, as the tracer takes it.
                let mut lock: libc::flock = std::mem::zeroed();
                lock.l_type = libc::F_WRLCK as libc::c_short;
                lock.l_start = files::OPEN_FILE_BYTE as libc::off_t;
                lock.l_len = 1;
                libc::fcntl(101, libc::F_OFD_SETLK, &lock);
                let holder = raw_fork();
                if holder == 0 {
                    loop {
                        libc::pause();
                    }
                }
                let holder = holder as libc::pid_t;
                libc::write(100, (&holder as *const libc::pid_t).cast(), 4);
                if taker_lives {
                    loop {
                        libc::pause();
                    }
                }
                libc::_exit(0);
            }
            taker
        };
        let mut holder: libc::pid_t = 0;
        // SAFETY: our pipe, a pid_t's 4 bytes; the taker is our child.
        unsafe {
            libc::close(pipe[1]);
            assert_eq!(
                libc::read(pipe[0], (&mut holder as *mut libc::pid_t).cast(), 4),
                4
            );
            libc::close(pipe[0]);
            if !taker_lives {
                libc::waitpid(taker, std::ptr::null_mut(), 0);
            }
        }
        let path = flight_named_for(dir, taker as u32, true);
        std::fs::rename(&planted, &path).expect("named for its taker");
        (path, holder, taker)
    }

    fn end_orphan(holder: libc::pid_t) {
        // SAFETY: a process this test made.
        unsafe { libc::kill(holder, libc::SIGKILL) };
    }

    /// A child made by a raw clone or fork system call runs no fork
    /// handler, so keeps the descriptor that holds its parent's flight
    /// file's flock: the parent SIGKILLed, its file looked held by a live
    /// owner for as long as the child lived, its spans never recovered
    /// (tests/c/test_raw_fork_recovery.c). The owner's record lock, which
    /// no child has, and its open file's lock, which the child shares,
    /// tell: a file so marked whose flock is its owner's open file's and
    /// whose owner holds no record lock is claimed; one of a live owner,
    /// one whose flock another took (an older spanguard's recovery), or
    /// one of an older spanguard (no mark: the flock alone says), is not.
    #[test]
    fn a_flight_file_held_only_by_a_child_of_its_dead_owner_is_claimed() {
        // Its raw forks copy every descriptor of this process: another
        // test's locked file, held in the copy until the child closes it.
        if !crate::forking_tests::run_alone(
            module_path!(),
            "a_flight_file_held_only_by_a_child_of_its_dead_owner_is_claimed",
        ) {
            return;
        }
        let dir = fresh_dir("held-by-child");
        let (dead, child) = plant_flight_held_by_an_orphan(&dir);
        let claimed = claim(&dead, 1 << 20);
        end_orphan(child);
        assert!(matches!(claimed, Claim::Claimed(_)));
        drop(claimed);
        std::fs::remove_file(&dead).expect("remove");
        let (live, _owner) = plant_held_flight(&dir, dead_pid(), true, true);
        assert!(
            matches!(claim(&live, 1 << 20), Claim::Busy),
            "its owner lives"
        );
        std::fs::remove_file(&live).expect("remove");
        // A flock another live process took (an older spanguard's
        // recovery, which takes no record lock): its own, not the owner's.
        let (taken, _recoverer) = plant_held_flight(&dir, dead_pid(), true, false);
        assert!(
            matches!(claim(&taken, 1 << 20), Claim::Busy),
            "another's flock"
        );
        std::fs::remove_file(&taken).expect("remove");
        let (older, child) = plant_flight_held_by_an_orphan(&dir);
        let unmarked = spool::without_record_lock_mark(&older);
        std::fs::rename(&older, &unmarked).expect("no mark");
        let claimed = claim(&unmarked, 1 << 20);
        end_orphan(child);
        assert!(matches!(claimed, Claim::Busy), "no mark");
        // Marked by the spanguard before: judged by its record lock.
        let (before, child) = plant_flight_held_by_an_orphan(&dir);
        let record_locked = spool::named_as_record_locked(&before);
        std::fs::rename(&before, &record_locked).expect("older mark");
        let claimed = claim(&record_locked, 1 << 20);
        end_orphan(child);
        assert!(matches!(claimed, Claim::Claimed(_)), "older mark");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A spool directory shared across PID namespaces (a container's
    /// volume read from its host or a sibling container), or a pid reused
    /// since: the dead owner's pid in its file's name is a live process
    /// here (pid 1, as every container's first process is; this process),
    /// and the flock's taker, as `/proc/locks` gives it here, is not that
    /// pid. Judged by them, the owner looked alive, or the flock another's,
    /// and its file held by its child was never recovered while the child
    /// lived (tests/c/test_pidns_recovery.c); by its locks, it is.
    #[test]
    fn a_flight_file_held_by_a_child_is_claimed_whatever_pid_its_name_gives() {
        // Its raw forks copy every descriptor of this process: another
        // test's locked file, held in the copy until the child closes it.
        if !crate::forking_tests::run_alone(
            module_path!(),
            "a_flight_file_held_by_a_child_is_claimed_whatever_pid_its_name_gives",
        ) {
            return;
        }
        let dir = fresh_dir("held-pid-alive");
        for pid in [1, std::process::id()] {
            let (planted, child) = plant_flight_held_by_an_orphan(&dir);
            let renamed = flight_named_for(&dir, pid, true);
            std::fs::rename(&planted, &renamed).expect("named for a live pid");
            let claimed = claim(&renamed, 1 << 20);
            end_orphan(child);
            assert!(matches!(claimed, Claim::Claimed(_)), "named for pid {pid}");
            drop(claimed);
            std::fs::remove_file(&renamed).expect("remove");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A flight file of the spanguard before (`-recordlocked`: its owner
    /// held a record lock beside its flock, no open file's lock) held by a
    /// child of its dead owner, its name giving a pid that lives here (a
    /// pid reused since; here, the flock's taker kept alive without the
    /// record lock): judged by that pid, its owner looked alive and the
    /// file was not recovered while the child lived. The record lock its
    /// owner held, gone with it, says.
    #[test]
    fn an_older_flight_file_held_by_a_child_is_claimed_while_its_pid_lives() {
        // Its raw forks copy every descriptor of this process: another
        // test's locked file, held in the copy until the child closes it.
        if !crate::forking_tests::run_alone(
            module_path!(),
            "an_older_flight_file_held_by_a_child_is_claimed_while_its_pid_lives",
        ) {
            return;
        }
        let dir = fresh_dir("older-held-pid-alive");
        let (planted, child, taker) = plant_flight_held_by_a_child(&dir, true);
        let renamed = spool::named_as_record_locked(&planted);
        std::fs::rename(&planted, &renamed).expect("named as before");
        let claimed = claim(&renamed, 1 << 20);
        end_orphan(child);
        end_orphan(taker);
        // SAFETY: our child, killed.
        unsafe { libc::waitpid(taker, std::ptr::null_mut(), 0) };
        assert!(
            matches!(claimed, Claim::Claimed(_)),
            "named for a live pid that holds no record lock"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A marked flight file whose header is not yet written (its owner
    /// takes the record lock before it writes it) is not claimed through
    /// the record lock: it would read as nothing, and be deleted.
    #[test]
    fn a_flight_file_held_by_a_child_is_not_claimed_before_its_header() {
        // Its raw forks copy every descriptor of this process: another
        // test's locked file, held in the copy until the child closes it.
        if !crate::forking_tests::run_alone(
            module_path!(),
            "a_flight_file_held_by_a_child_is_not_claimed_before_its_header",
        ) {
            return;
        }
        let dir = fresh_dir("held-unwritten");
        let (path, child) = plant_flight_held_by_an_orphan(&dir);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open")
            .set_len(0)
            .expect("emptied");
        let claimed = claim(&path, 1 << 20);
        end_orphan(child);
        assert!(matches!(claimed, Claim::Busy));
        assert!(path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Two recoveries in one process (two tracers' exporters) and a file
    /// held by a dead owner's child: a record lock never stops its own
    /// process, so both claimed it, and each sent its spans. One claims it
    /// at a time (`files::OpenHere`), the other finds it busy, without
    /// opening it (its close would let go of the first's record lock).
    #[test]
    fn one_recovery_of_a_process_claims_a_file_held_by_a_child_at_a_time() {
        // Its raw forks copy every descriptor of this process: another
        // test's locked file, held in the copy until the child closes it.
        if !crate::forking_tests::run_alone(
            module_path!(),
            "one_recovery_of_a_process_claims_a_file_held_by_a_child_at_a_time",
        ) {
            return;
        }
        let dir = fresh_dir("held-twice");
        let (path, child) = plant_flight_held_by_an_orphan(&dir);
        let first = claim(&path, 1 << 20);
        let second = claim(&path, 1 << 20);
        let first_claimed = matches!(first, Claim::Claimed(_));
        drop(first);
        let again = claim(&path, 1 << 20);
        end_orphan(child);
        assert!(first_claimed);
        assert!(matches!(second, Claim::Busy));
        assert!(matches!(again, Claim::Claimed(_)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A recovery beside a live process (another agent on the spool, a
    /// `spanguard replay`) listed the directory, then the process published
    /// a request's journal and was SIGKILLed before it freed the slots,
    /// and the recovery claimed its flight file: the journal was not in
    /// the listing, so the slots in export were sent, and the journal
    /// replayed after them: spans 1..=3 twice. The journals are looked for
    /// in the directory as it is once the flight file is claimed.
    #[test]
    fn a_journal_published_after_the_listing_is_still_found() {
        let dir = fresh_dir("listed");
        let (flight, journal) = plant_journaled_flight(&dir);
        let bytes = std::fs::read(&journal).expect("journal");
        std::fs::remove_file(&journal).expect("not yet published");
        // At the flight file's claim: after the listing.
        let published = journal.clone();
        files::set_before_registering(Box::new(move || {
            std::fs::write(&published, bytes).expect("published");
        }));
        assert!(!journal.exists());
        let got = recovered_then_replayed(&dir, &flight);
        each_sent_once(&got, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Two tracers starting at once on one spool directory, or `spanguard
    /// replay` while an agent starts: one replayed the dead process's
    /// journal (and deleted it) before the other recovered its flight
    /// file, which then found no journal to say that spans 1..=3 were
    /// sent from it, and sent them again. A journal whose flight file is
    /// still there waits for its recovery, then goes.
    #[test]
    fn a_journal_replayed_before_its_flight_file_is_recovered_is_sent_once() {
        let dir = fresh_dir("first");
        let (flight, journal) = plant_journaled_flight(&dir);
        replayed_first_then_recovered(&dir, &flight, &journal);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A delivery to `transport`, spooling in `dir`.
    fn delivery_to(dir: &Path, transport: DiesAfter) -> Delivery {
        Delivery::new(
            Box::new(transport),
            SpoolDir::new(dir, 1 << 20),
            Duration::from_secs(30),
            1 << 20,
        )
    }

    /// What one recovery of `dir` sends (the way a second program with the
    /// same spool directory recovers at its start, or `spanguard replay`),
    /// into `got`.
    fn recover_beside(dir: &Path, got: &Received) {
        recover_beside_telling(dir, got, &mut Quiet);
    }

    /// `recover_beside`, its outcomes told to `host`.
    fn recover_beside_telling(dir: &Path, got: &Received, host: &mut dyn DeliveryHost) {
        let transport = DiesAfter {
            left: usize::MAX,
            got: Arc::clone(got),
        };
        let mut delivery = delivery_to(dir, transport);
        let mut encoder = RequestEncoder::new(BodyFormat::Protobuf, false, 1 << 20, 16);
        recover_dir(dir, &[], 16, &mut delivery, &mut encoder, host);
    }

    /// `recover_beside` once the dump `x.sgdump` is free of locks (a second
    /// at most): another test's child, forked or spawned a moment before,
    /// holds our dropped crash file's descriptors until its fork handler
    /// (or its exec) closes them, and a recovery then finds it busy.
    fn recover_once_free(dir: &Path, got: &Received) {
        for _ in 0..100 {
            let free = std::fs::File::open(dir.join("x.sgdump"))
                .map(|f| {
                    let free = files::try_lock(&f);
                    drop(f);
                    free
                })
                .unwrap_or(true);
            if free {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        recover_beside(dir, got);
    }

    /// A crash file whose slots dump and batch file are named `x.*` in `dir`.
    fn crash_file_x(dir: &Path) -> crate::buffer::dump::CrashFile {
        use crate::buffer::dump::{CrashFile, PreparedFile};
        let slots = PreparedFile::create(&dir.join("x.sgdump-pending"), &dir.join("x.sgdump"))
            .expect("made");
        let crash = CrashFile::new(
            slots,
            dir.join("x.sgspool-pending"),
            dir.join("x.sgspool"),
            DumpHeader::new(magic_of(false), 0, "svc", &[]),
        );
        crash.prepare_batch().expect("batch file");
        crash
    }

    /// Dumps one open span of trace 7 through `crash`, as a SIGTERM does.
    fn dump_one_span(crash: &crate::buffer::dump::CrashFile) {
        use crate::buffer::payload_pool::{PayloadPool, PoolBacking};
        use crate::buffer::slab::{SlabBacking, SpanSlab};
        let slab = SpanSlab::new(4, SlabBacking::Anonymous, 0).expect("slab");
        let pool = PayloadPool::new(4, PoolBacking::Anonymous).expect("pool");
        crate::buffer::dump::tests::open_span_sevens(&slab);
        assert!(crash.begin_dump());
        assert_eq!(crash.dump_slots(&slab, &pool, libc::SIGTERM), 1);
        crash.end_dump();
    }

    /// The end of the crash-file tests: two files made (both pending
    /// names, held: `held` says when), a span dumped into `crash` and the
    /// file let go of; a recovery then sends that span alone, and the
    /// recovery that ran beside the making got nothing.
    fn recovered_whole(
        dir: &Path,
        crash: crate::buffer::dump::CrashFile,
        made: usize,
        beside: &Received,
        held: &str,
    ) {
        assert_eq!(made, 2, "files made");
        pending_names_held(dir).expect(held);
        dump_one_span(&crash);
        drop(crash);
        let got: Received = Arc::new(Mutex::new(Vec::new()));
        recover_once_free(dir, &got);
        let traces: Vec<_> = got.lock().unwrap().iter().map(|s| s.0).collect();
        assert_eq!(traces, vec![[7; 16]], "the dump's span");
        assert!(beside.lock().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Whether `dir` holds its crash file's two pending names, each locked
    /// (by the crash file: no other process takes it).
    fn pending_names_held(dir: &Path) -> Result<(), String> {
        for name in ["x.sgdump-pending", "x.sgspool-pending"] {
            let file = std::fs::File::open(dir.join(name)).map_err(|e| format!("{name}: {e}"))?;
            if files::try_lock(&file) {
                return Err(format!("{name} is not locked"));
            }
        }
        Ok(())
    }

    /// A crash file's pending files were made, then locked: a recovery
    /// beside it (a second program with the same spool directory starting
    /// up) that looked between the two found an empty, unlocked pending
    /// file, took it for one a dead process left, and deleted it. The
    /// tracer's descriptor then pointed at an unlinked file: a SIGTERM's
    /// dump went there, its rename found no name, and the spans were lost
    /// uncounted. Now a pending name only ever shows a locked file: the
    /// recovery run at that very moment takes nothing, and the dump is
    /// recovered whole.
    #[test]
    fn a_crash_file_being_made_is_never_taken_by_a_recovery_beside_it() {
        let dir = std::env::temp_dir().join(format!("sg-recovery-making-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        files::ensure_private_dir(&dir).expect("dir");
        let beside: Received = Arc::new(Mutex::new(Vec::new()));
        let (d, b) = (dir.clone(), Arc::clone(&beside));
        let made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let m = Arc::clone(&made);
        files::set_after_create(Some(Box::new(move |_| {
            m.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            recover_beside(&d, &b);
        })));
        let crash = crash_file_x(&dir);
        files::set_after_create(None);
        let made = made.load(std::sync::atomic::Ordering::Relaxed);
        recovered_whole(&dir, crash, made, &beside, "made and held");
    }

    /// A tracer's flight file, made the same way: made, then locked, a
    /// recovery beside it could find it empty and unlocked and delete it,
    /// and the tracer went on with its slots in memory ("flight recorder
    /// off"): a SIGKILL then lost every open span. Made locked under a
    /// hidden name, it is found only locked.
    #[test]
    fn a_flight_file_being_made_is_never_taken_by_a_recovery_beside_it() {
        let dir = std::env::temp_dir().join(format!("sg-recovery-flight-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        files::ensure_private_dir(&dir).expect("dir");
        let beside: Received = Arc::new(Mutex::new(Vec::new()));
        let made: Arc<Mutex<Vec<std::path::PathBuf>>> = Arc::new(Mutex::new(Vec::new()));
        let (d, b, m) = (dir.clone(), Arc::clone(&beside), Arc::clone(&made));
        files::set_after_create(Some(Box::new(move |path| {
            m.lock().unwrap().push(path.to_path_buf());
            recover_beside(&d, &b);
        })));
        let config = crate::config::TracerConfig {
            flight_recorder: true,
            spool_dir: dir.clone(),
            sink_dir: dir.join("sink"),
            ..Default::default()
        };
        let tracer = crate::tracer::Tracer::new(config);
        files::set_after_create(None);
        let tracer = tracer.expect("tracer");
        let flight_made = made
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.to_string_lossy().contains(".sgflight."))
            .count();
        assert_eq!(
            flight_made, 1,
            "the flight file made locked, under a hidden name"
        );
        let flights: Vec<_> = std::fs::read_dir(&dir)
            .expect("dir")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "sgflight"))
            .collect();
        assert_eq!(flights.len(), 1, "the flight file at its name: {flights:?}");
        let file = std::fs::File::open(&flights[0]).expect("open");
        assert!(!files::try_lock(&file), "the flight file is locked");
        assert!(beside.lock().unwrap().is_empty());
        let _ = tracer.shutdown(Duration::from_secs(5));
        drop(tracer);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The same at a thaw: a SIGTERM with nothing to keep unlinked the
    /// pending names, and a process that lives on makes them again
    /// (`make_again`), at every thaw. A recovery between the making and
    /// the lock took them, and the next dump's spans were lost.
    #[test]
    fn a_crash_file_made_again_at_a_thaw_is_never_taken_by_a_recovery_beside_it() {
        let dir = std::env::temp_dir().join(format!("sg-recovery-thaw-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        files::ensure_private_dir(&dir).expect("dir");
        let crash = crash_file_x(&dir);
        let empty_slab =
            crate::buffer::slab::SpanSlab::new(4, crate::buffer::slab::SlabBacking::Anonymous, 0)
                .expect("slab");
        let pool = crate::buffer::payload_pool::PayloadPool::new(
            4,
            crate::buffer::payload_pool::PoolBacking::Anonymous,
        )
        .expect("pool");
        assert!(crash.begin_dump());
        assert_eq!(crash.dump_slots(&empty_slab, &pool, libc::SIGTERM), 0);
        crash.discard_unwritten_batch();
        crash.end_dump();
        let beside: Received = Arc::new(Mutex::new(Vec::new()));
        let (d, b) = (dir.clone(), Arc::clone(&beside));
        let made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let m = Arc::clone(&made);
        files::set_after_create(Some(Box::new(move |_| {
            m.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            recover_beside(&d, &b);
        })));
        crash.unpublish();
        files::set_after_create(None);
        let made = made.load(std::sync::atomic::Ordering::Relaxed);
        recovered_whole(&dir, crash, made, &beside, "made again and held");
    }

    /// A process SIGKILLed between making a crash or flight file and naming
    /// it left it under its hidden name (`files::create_locked`) for good:
    /// nothing removed it, and workers killed at start-up filled the
    /// directory. A recovery removes those of makers that are dead (or
    /// older than any making: a pid reused), sets aside one holding bytes,
    /// and leaves a live maker's (its pid alive and the file young: between
    /// making and locking it; or locked: a maker in another pid namespace),
    /// a link, and names of any other form.
    #[test]
    fn a_dead_makers_hidden_file_is_removed_and_a_live_ones_left() {
        let dir =
            std::env::temp_dir().join(format!("sg-recovery-dead-makers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        files::ensure_private_dir(&dir).expect("dir");
        let dead = {
            let mut child = crate::forking_tests::with_no_test_files(|| {
                std::process::Command::new("true").spawn()
            })
            .expect("true");
            let pid = child.id();
            child.wait().expect("wait");
            pid
        };
        let me = std::process::id();
        let hidden = |name: &str, pid: u32, n: u32| format!(".{name}.{pid}-{n}.tmp");
        let long_ago = SystemTime::now() - Duration::from_secs(3600);
        let plant = |name: &str, bytes: &[u8], modified: Option<SystemTime>| {
            std::fs::write(dir.join(name), bytes).expect("plant");
            if let Some(t) = modified {
                std::fs::File::options()
                    .write(true)
                    .open(dir.join(name))
                    .expect("open")
                    .set_modified(t)
                    .expect("mtime");
            }
        };
        // Removed.
        plant(&hidden("a.sgdump-pending", dead, 0), b"", None);
        plant(&hidden("b.sgflight", dead, 1), b"", None);
        plant(&hidden("c.sgspool-pending", me, 2), b"", Some(long_ago));
        // Set aside.
        plant(&hidden("d.sgdump", dead, 3), b"bytes", None);
        // Left.
        let making = hidden("e.sgdump-pending", me, 4);
        plant(&making, b"", None);
        let locked = hidden("f.sgflight", dead, 5);
        plant(&locked, b"", Some(long_ago));
        let held = std::fs::File::open(dir.join(&locked)).expect("open");
        assert!(files::try_lock(&held));
        plant("victim", b"theirs", Some(long_ago));
        let link = hidden("g.sgdump", dead, 6);
        std::os::unix::fs::symlink(dir.join("victim"), dir.join(&link)).expect("link");
        let others = [
            format!(".h.sgdump.{dead}-x.tmp"),
            format!(".i.txt.{dead}-7.tmp"),
            format!("j.sgdump.{dead}-8.tmp"),
            format!("..k.sgdump.{dead}-9.tmp"),
        ];
        for name in &others {
            plant(name, b"", Some(long_ago));
        }
        let got: Received = Arc::new(Mutex::new(Vec::new()));
        recover_beside(&dir, &got);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut left = vec![
            format!("{}.unreadable", hidden("d.sgdump", dead, 3)),
            making,
            locked,
            link,
            "victim".to_string(),
        ];
        left.extend(others);
        left.sort();
        assert_eq!(names, left);
        assert_eq!(std::fs::read(dir.join("victim")).expect("v"), b"theirs");
        assert!(got.lock().unwrap().is_empty());
        drop(held);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A crash dump or flight file a dead process left for another sender
    /// (`spool::destination_of`) is never recovered here, and counts
    /// against the spool's cap as a batch does: the spool that needs room
    /// deletes it, oldest first, and counts the spans it held; one a live
    /// process holds counts for nothing and stays. (A test suite's killed
    /// workers, each with a loopback port of its own, filled the state
    /// directory with files no process would ever take.)
    #[test]
    fn a_dead_processs_file_left_for_another_sender_counts_against_the_cap() {
        let dir = std::env::temp_dir().join(format!("sg-left-for-another-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let theirs = spool::destination_tag(Some(0xa));
        let [dump, flight] = plant(&dir, SystemTime::now());
        let named = |from: &Path, n: u8, ext: &str| {
            let to = dir.join(format!("{n:020}-{:010}-{n}{theirs}.{ext}", 4_000_000));
            std::fs::rename(from, &to).expect("name");
            to
        };
        let (dump, flight) = (named(&dump, 1, "sgdump"), named(&flight, 2, "sgflight"));
        // The flight file's process lives: it holds its lock.
        let (held, locked) = LockedFile::lock(
            std::fs::File::open(&flight).expect("open"),
            files::BeforeOpen::now(),
        );
        assert!(locked);
        let body = crate::export::spool::tests::proto_body(1, 0);
        let batch = spool::SpooledBatch {
            format: BodyFormat::Protobuf,
            gzipped: false,
            spans: 1,
            cut_counted: 0,
            cut_at: Vec::new(),
            body: body.clone(),
        };
        let cap = (spool::HEADER_LEN + body.len()) as u64;
        let mut ours = SpoolDir::new(&dir, cap);
        ours.set_sender(Some(0xb));
        // A sender with no fingerprint (an embedder's own transport)
        // takes only files that name no sender.
        let got = Received::default();
        recover_beside(&dir, &got);
        assert!(got.lock().unwrap().is_empty(), "another sender's recovered");
        assert!(dump.exists() && flight.exists());
        let evicted = ours.write(&batch).expect("write");
        assert_eq!((evicted.files, evicted.spans), (1, 10), "the dead one's");
        assert!(!dump.exists() && flight.exists());
        drop(held);
        // Its process gone, the next look counts it too.
        let mut next = SpoolDir::new(&dir, cap);
        next.set_sender(Some(0xb));
        let evicted = next.write(&batch).expect("write");
        assert_eq!((evicted.files, evicted.spans), (2, 11), "{evicted:?}");
        assert!(!flight.exists());
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The exporter's look for what dead processes left, every 3 s, reads
    /// the directory once: it read it three times (writers' temporary
    /// files, makers' hidden files, leftovers), moments apart, each read a
    /// walk of a directory that may hold 100,000 names.
    #[test]
    fn a_look_for_leftovers_reads_the_directory_once() {
        let dir = std::env::temp_dir().join(format!("sg-recovery-reads-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        files::ensure_private_dir(&dir).expect("dir");
        let got: Received = Arc::new(Mutex::new(Vec::new()));
        let before = spool::tests::DIR_READS.with(|n| n.get());
        recover_beside(&dir, &got);
        let reads = spool::tests::DIR_READS.with(|n| n.get()) - before;
        assert_eq!(reads, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A crash dump under a name that is no UTF-8: `spanguard spool` counted
    /// its spans as waiting, while every recovery skipped it for good.
    #[test]
    fn a_leftover_whose_name_is_no_utf8_is_listed() {
        use std::os::unix::ffi::OsStrExt;
        let dir = std::env::temp_dir().join(format!("sg-recovery-utf8-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let mut planted = Vec::new();
        for name in [
            &b"crash-\xff.sgdump"[..],
            b"flight-\xfe.sgflight",
            b"a.sgdump",
        ] {
            let path = dir.join(std::ffi::OsStr::from_bytes(name));
            std::fs::write(&path, b"").expect("plant");
            planted.push(path);
        }
        planted.sort();
        assert_eq!(leftover_files(&spool::dir_names(&dir), &[]), planted);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Needed for something else (a flush, a shutdown's deadline) from its
    /// `free + 1`th look on.
    struct NeededAfter {
        looks: std::cell::Cell<u32>,
        free: u32,
    }
    impl DeliveryHost for NeededAfter {
        fn wait(&mut self, _: Duration) -> bool {
            false
        }
        fn busy(&self) -> bool {
            self.looks.set(self.looks.get() + 1);
            self.looks.get() > self.free
        }
        fn record(&mut self, _: Outcome<'_>) {}
    }

    /// Looks at a directory made anew, through a delivery that takes every
    /// request.
    struct Looks {
        dir: PathBuf,
        delivery: Delivery,
        encoder: RequestEncoder,
    }

    impl Looks {
        fn in_new_dir(name: &str) -> Looks {
            let dir =
                std::env::temp_dir().join(format!("sg-recovery-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            files::ensure_private_dir(&dir).expect("dir");
            let transport = DiesAfter {
                left: usize::MAX,
                got: Arc::new(Mutex::new(Vec::new())),
            };
            Looks {
                delivery: delivery_to(&dir, transport),
                encoder: RequestEncoder::new(BodyFormat::Protobuf, false, 1 << 20, 16),
                dir,
            }
        }

        /// A look by an exporter needed for something else from its
        /// `free + 1`th question on.
        fn look(&mut self, free: u32) -> Recovery {
            let mut host = NeededAfter {
                looks: std::cell::Cell::new(0),
                free,
            };
            let (delivery, encoder) = (&mut self.delivery, &mut self.encoder);
            recover_dir(&self.dir, &[], 16, delivery, encoder, &mut host)
        }
    }

    impl Drop for Looks {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Leftovers that cannot be read (dumps torn by a full disk, files
    /// planted under a dump's name) are set aside without a send, and a
    /// look through 100,000 of them held the exporter (a flush waiting, a
    /// shutdown's deadline, the filling queue) until it had set them all
    /// aside. It gives way between files, as a spool replay does, and the
    /// next look goes on with the rest.
    #[test]
    fn a_look_through_unreadable_leftovers_gives_way_between_them() {
        let mut looks = Looks::in_new_dir("give-way");
        // Past the files a look always takes, and 40 more.
        let planted = spool::HANDLED_BEFORE_GIVING_WAY + 40;
        for i in 0..planted {
            std::fs::write(looks.dir.join(format!("{i:03}.sgdump")), [0x5a; 512]).expect("plant");
        }
        let first_look = looks.look(10);
        let first = looks.delivery.spool().take_set_aside().len();
        assert!(
            first <= spool::HANDLED_BEFORE_GIVING_WAY + 10,
            "{first} set aside by a look needed after 10 past the first {}",
            spool::HANDLED_BEFORE_GIVING_WAY
        );
        assert!(
            first_look.gave_way,
            "gave way: files left for the next look"
        );
        let next_look = looks.look(u32::MAX);
        assert!(!next_look.gave_way);
        let rest = looks.delivery.spool().take_set_aside().len();
        assert_eq!(first + rest, planted, "each one set aside once");
    }

    /// Temporary files dead writers left (the spool writer's `.tmp-…`, a
    /// dump or flight maker's `.NAME.PID-N.tmp`), 100,000 planted in the
    /// directory, were each opened, locked and removed before a look
    /// asked whether a flush or the shutdown's deadline needed the thread:
    /// it gave way only in the leftovers after them. Each cleanup now
    /// gives way past its first few, and the next look goes on.
    #[test]
    fn a_look_through_dead_writers_temporary_files_gives_way_between_them() {
        let mut looks = Looks::in_new_dir("temp-give-way");
        // No process has this pid: each writer is dead.
        let dead = i32::MAX - 1;
        let planted = 1_000;
        for i in 0..planted {
            let spool_writers = format!(".tmp-{i:020}-{dead}-t{}", spool::SUFFIX);
            let makers = format!(".{i:04}.sgdump.{dead}-0.tmp");
            for name in [spool_writers, makers] {
                std::fs::write(looks.dir.join(name), b"").expect("plant");
            }
        }
        let left = |dir: &Path, prefix: &str| {
            std::fs::read_dir(dir)
                .expect("ls")
                .filter(|e| {
                    let name = e.as_ref().expect("entry").file_name();
                    name.to_string_lossy().starts_with(prefix)
                })
                .count()
        };
        let first = looks.look(10);
        // Each cleanup takes its first few, then at most the 10 looks
        // before the thread was needed.
        let most = spool::HANDLED_BEFORE_GIVING_WAY + 10;
        let temp_removed = planted - left(&looks.dir, ".tmp-");
        let makers_removed = planted - left(&looks.dir, ".0");
        assert!(
            temp_removed <= most,
            "{temp_removed} temporary files removed by a look needed after 10"
        );
        assert!(
            makers_removed <= most,
            "{makers_removed} makers' files removed by a look needed after 10"
        );
        assert!(first.gave_way, "files left for the next look");
        let next = looks.look(u32::MAX);
        assert!(!next.gave_way);
        let all_left = (left(&looks.dir, ".tmp-"), left(&looks.dir, ".0"));
        assert_eq!(all_left, (0, 0), "all removed in the end");
        assert!(looks.delivery.spool().take_set_aside().is_empty());
    }

    /// What a recovery told of the spans it could not send whole: spans
    /// lost, values cut, and the spans delivered.
    #[derive(Default)]
    struct Tally {
        lost: u64,
        cut: u64,
        delivered: u64,
        reasons: Vec<String>,
    }

    impl DeliveryHost for Tally {
        fn wait(&mut self, _: Duration) -> bool {
            false
        }
        fn record(&mut self, outcome: Outcome<'_>) {
            match outcome {
                Outcome::Lost { spans, reason, .. } => {
                    self.lost += spans;
                    self.reasons.push(reason.to_string());
                }
                Outcome::Cut { values, limit, .. } => {
                    self.cut += values;
                    self.reasons.push(limit.to_string());
                }
                Outcome::Delivered { spans, .. } => self.delivered += spans,
                _ => {}
            }
        }
    }

    /// A record of trace `file`, span `n`, ended, naming `chunks` chunks.
    fn record_with_chunks(file: u8, n: u8, chunks: u32) -> Vec<u8> {
        use crate::span::record::CHUNK_COUNT_AT;
        let mut bytes = record_bytes(file, n, STATE_ENDED);
        bytes[CHUNK_COUNT_AT..CHUNK_COUNT_AT + 4].copy_from_slice(&chunks.to_ne_bytes());
        bytes
    }

    /// A crash dump whose writer died (SIGKILLed during the crash handler,
    /// a second fault there, a disk full) holds its last record or its
    /// last span's chunks only in part. Recovery sent the whole records
    /// and said nothing of the rest: a record torn off at the end (a
    /// `.sgdump-pending`, whose count was never written) or missing from
    /// the count its header gives (a write that failed) was lost without
    /// a count, and a span whose chunks the file ended in was sent with
    /// fewer chunks, its values cut, without one. Each torn record is now a
    /// span lost at recovery and each such span one value cut, counted once
    /// when the file is read to its end; a slot still being begun (no ids
    /// yet), which `recovered` skips, is no span and counts nothing.
    #[test]
    fn torn_records_and_chunks_of_a_dead_process_dump_are_counted() {
        use crate::span::limits::CHUNK_BYTES;
        let dir = fresh_dir("torn");
        let rsize = std::mem::size_of::<crate::span::record::SpanRecord>();
        // Killed in the crash handler: three whole records, a slot being
        // begun (no ids), then half of a fourth span's record.
        let mut pending = DumpHeader::new(magic_of(false), 0, "svc", &[])
            .as_bytes()
            .to_vec();
        for n in 1..=3 {
            pending.extend(record_bytes(1, n, STATE_ENDED));
        }
        pending.extend(record_bytes(0, 0, STATE_OPEN));
        pending.extend(&record_bytes(1, 4, STATE_ENDED)[..rsize / 2]);
        // Published with its count (5), the disk full after its second.
        let mut short = DumpHeader::new(magic_of(false), 5, "svc", &[])
            .as_bytes()
            .to_vec();
        for n in 1..=2 {
            short.extend(record_bytes(2, n, STATE_ENDED));
        }
        // Killed while it wrote the chunks of its last span: two named,
        // one and a half written.
        let mut chunks = DumpHeader::new(magic_of(false), 0, "svc", &[])
            .as_bytes()
            .to_vec();
        chunks.extend(record_bytes(3, 1, STATE_ENDED));
        chunks.extend(record_with_chunks(3, 2, 2));
        chunks.extend(vec![0u8; CHUNK_BYTES + CHUNK_BYTES / 2]);
        let files = [
            dir.join("a.sgdump-pending"),
            dir.join("b.sgdump"),
            dir.join("c.sgdump-pending"),
        ];
        for (path, bytes) in files.iter().zip([pending, short, chunks]) {
            std::fs::write(path, bytes).expect("plant");
        }
        let got: Received = Arc::new(Mutex::new(Vec::new()));
        let mut tally = Tally::default();
        recover_beside_telling(&dir, &got, &mut tally);
        assert!(files.iter().all(|f| !f.exists()), "recovered and deleted");
        assert_eq!(got.lock().unwrap().len(), 7, "whole records sent");
        assert_eq!(tally.delivered, 7);
        // One torn off the pending dump, three missing from the published.
        assert_eq!(tally.lost, 1 + 3, "torn records: {:?}", tally.reasons);
        assert_eq!(tally.cut, 1, "a span sent with chunks cut");
        // A second look finds nothing more to count.
        recover_beside_telling(&dir, &got, &mut tally);
        assert_eq!((tally.lost, tally.cut), (4, 1));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A span of a dead process's crash dump whose record names more than
    /// the 64 MiB of chunks a recovered span keeps (a prompt larger than
    /// that, recorded under a payload pool of 256 MiB, the file holding
    /// all of it) was sent with the first 64 MiB alone, and nothing was
    /// counted or said: its values arrived cut with `values_truncated` at
    /// 0 and `spanguard why` saying nothing lost. It is now one value cut,
    /// said with the limit that cut it.
    #[test]
    fn a_recovered_span_cut_at_the_64_mib_a_span_keeps_is_counted() {
        use crate::buffer::dump::MAX_SPAN_OVERFLOW_BYTES;
        use crate::span::limits::CHUNK_BYTES;
        let dir = fresh_dir("over-limit");
        let kept = MAX_SPAN_OVERFLOW_BYTES / CHUNK_BYTES;
        let mut dump = DumpHeader::new(magic_of(false), 2, "svc", &[])
            .as_bytes()
            .to_vec();
        dump.extend(record_bytes(1, 1, STATE_ENDED));
        dump.extend(record_with_chunks(1, 2, kept as u32 + 1));
        let path = dir.join("a.sgdump");
        std::fs::write(&path, &dump).expect("plant");
        // The chunks, all of them on disk (a hole reads as zeros).
        let file = std::fs::File::options()
            .write(true)
            .open(&path)
            .expect("open");
        file.set_len((dump.len() + (kept + 1) * CHUNK_BYTES) as u64)
            .expect("grow");
        drop(file);
        let got: Received = Arc::new(Mutex::new(Vec::new()));
        let mut tally = Tally::default();
        recover_beside_telling(&dir, &got, &mut tally);
        assert!(!path.exists(), "recovered and deleted");
        assert_eq!(tally.delivered, 2);
        assert_eq!(tally.lost, 0);
        assert_eq!(tally.cut, 1, "one span cut at 64 MiB: {:?}", tally.reasons);
        assert!(
            tally.reasons.iter().any(|r| r.contains("64 MiB")),
            "{:?}",
            tally.reasons
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
