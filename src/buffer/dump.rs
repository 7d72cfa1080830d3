//! Span records on disk, for the crash dump and the flight recorder: a fixed
//! header that says whose spans they are, then raw `SpanRecord` slots exactly
//! as they sit in memory, with their payload chunks. Writing is a plain
//! `write(2)` (async-signal-safe); reading checks everything against the
//! file's real size, because the writer may have died mid-way.
//!
//! - Crash dump (`SGDUMP03`): the header, then for each live slot its
//!   record followed by its `chunk_count` chunks, in the span's order.
//! - Flight recorder (`SGFLITE3`): the header, the slots (from the next
//!   64-byte boundary), then the payload pool from `pool_offset` (sparse:
//!   a chunk never written takes no disk). A slot's chunks are found
//!   through its chunk map, as in memory. In the padding between the
//!   header and the first slot, when its exporter last ran
//!   (`FLIGHT_ALIVE_AT`): a SIGKILL leaves no other word of when the
//!   process died, and the file's modification time is only when a
//!   clean page of it was first written, seconds or minutes before.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::buffer::files::{self, LockedFile};
use crate::buffer::payload_pool::PayloadPool;
use crate::buffer::slab::{
    STATE_ENDED, STATE_EXPORTING, STATE_FREE, STATE_OPEN, STATE_WRITING, SpanSlab,
    header_generation, header_state, pack_header,
};
use crate::span::limits::CHUNK_BYTES;
use crate::span::record::{
    CHUNK_COUNT_AT, ChunkStore, MARK_HAS_REST, MARK_INTERRUPTED, OverflowSource, OwnedOverflow,
    SpanRecord, StoreSource,
};

pub(crate) const MAGIC_CRASH_DUMP: [u8; 8] = *b"SGDUMP03";
pub(crate) const MAGIC_FLIGHT: [u8; 8] = *b"SGFLITE3";
/// Where a flight file keeps the last time its process was known alive
/// (Unix nanoseconds, native order; 0 when never written): 8 bytes of the
/// padding after the header, before the first slot's 64-byte boundary,
/// which a reader of a version before skips. The exporter writes it each
/// time it wakes (`note_alive`); recovery ends the spans found open at
/// the later of it and the file's modification time.
pub(crate) const FLIGHT_ALIVE_AT: usize = std::mem::size_of::<DumpHeader>();
const _: () = assert!(
    FLIGHT_ALIVE_AT.is_multiple_of(8)
        && FLIGHT_ALIVE_AT + 8 <= std::mem::size_of::<DumpHeader>().next_multiple_of(64)
);

/// Notes in the flight file that `slab` lives in (its mapping starts with
/// the file's header) that the process is alive now. Nothing for a slab
/// with no header before its slots (no flight recorder). A clock read and
/// one store to the mapping: no syscall, no allocation.
pub fn note_alive(slab: &SpanSlab) {
    if slab.header_room() < FLIGHT_ALIVE_AT + 8 {
        return;
    }
    let now_unix_ns = crate::span::clock::now_unix_ns();
    // SAFETY: the mapping starts with `header_room` bytes before the
    // slots, FLIGHT_ALIVE_AT + 8 within them and no slot's; the mapping
    // is page-aligned and the offset a multiple of 8, so the AtomicU64 is
    // aligned; the mapping lives as long as `slab`.
    let at = unsafe {
        &*slab
            .mapping_start()
            .add(FLIGHT_ALIVE_AT)
            .cast::<AtomicU64>()
    };
    // Relaxed: read only after the process is dead, from the file.
    at.store(now_unix_ns, Ordering::Relaxed);
}

/// The last time the flight file `file` (of `size` bytes) says its process
/// was known alive, 0 when it says none.
fn alive_at(file: &File, size: u64) -> u64 {
    let mut bytes = [0u8; 8];
    if size < (FLIGHT_ALIVE_AT + 8) as u64
        || file
            .read_exact_at(&mut bytes, FLIGHT_ALIVE_AT as u64)
            .is_err()
    {
        return 0;
    }
    u64::from_ne_bytes(bytes)
}

/// This build's magic for a crash dump or, with `flight`, a flight file
/// (for tools and fuzzers outside the crate).
pub fn magic_of(flight: bool) -> [u8; 8] {
    if flight {
        MAGIC_FLIGHT
    } else {
        MAGIC_CRASH_DUMP
    }
}
pub(crate) const RESOURCE_TEXT_BYTES: usize = 1024;
pub(crate) const SERVICE_NAME_BYTES: usize = 256;
/// A service name this long or longer fills the header's field: it may
/// have been cut there (a cut falls on a character boundary, up to three
/// bytes short of the field's end). Such a name is also written whole in
/// the resource text (`DumpHeader::set_resource`).
const SERVICE_NAME_FILLS: usize = SERVICE_NAME_BYTES - 3;
const SERVICE_NAME_KEY: &str = "service.name";

#[repr(C)]
#[derive(Clone, Copy)]
pub struct DumpHeader {
    pub magic: [u8; 8],
    pub record_size: u32,
    /// Crash dump: records that follow (0 when written before the count was
    /// known; then the file length says). Flight recorder: slots.
    pub record_count: u32,
    pub pid: u32,
    /// The signal that ended the process, 0 if unknown (SIGKILL leaves 0).
    pub signal: i32,
    pub service_name_len: u32,
    pub resource_text_len: u32,
    /// `CHUNK_BYTES` of the writer.
    pub chunk_size: u32,
    /// Flight recorder: chunks in the pool region, and where it starts.
    pub pool_chunks: u32,
    pub pool_offset: u64,
    pub service_name: [u8; SERVICE_NAME_BYTES],
    /// OTEL_RESOURCE_ATTRIBUTES syntax.
    pub resource_text: [u8; RESOURCE_TEXT_BYTES],
}

impl DumpHeader {
    pub fn new(
        magic: [u8; 8],
        record_count: u32,
        service_name: &str,
        resource: &[(String, String)],
    ) -> DumpHeader {
        let mut h = DumpHeader {
            magic,
            record_size: std::mem::size_of::<SpanRecord>() as u32,
            record_count,
            pid: std::process::id(),
            signal: 0,
            service_name_len: 0,
            resource_text_len: 0,
            chunk_size: CHUNK_BYTES as u32,
            pool_chunks: 0,
            pool_offset: 0,
            service_name: [0; SERVICE_NAME_BYTES],
            resource_text: [0; RESOURCE_TEXT_BYTES],
        };
        h.set_resource(service_name, resource);
        h
    }

    /// Sets the service name and the resource text. Whole entries, in the
    /// order given (the most telling first), as many as fit: a long one
    /// (an executable's path) that does not fit is left out rather than cut
    /// or taking the rest with it.
    ///
    /// A service name longer than its field (256 bytes) is cut there, on a
    /// character boundary, and also written whole as the first entry of the
    /// resource text (`service.name=...`) when it fits there (1 KiB): a
    /// reader of this version takes the whole name from it (`service_name`);
    /// an older one keeps the field's, since a dump's service name wins over
    /// a `service.name` in its resource, so the format stays as it was. A
    /// `service.name` among `resource` is left out: the field's wins anyway.
    pub fn set_resource(&mut self, service_name: &str, resource: &[(String, String)]) {
        let mut end = service_name.len().min(SERVICE_NAME_BYTES);
        while !service_name.is_char_boundary(end) {
            end -= 1;
        }
        let name = &service_name.as_bytes()[..end];
        self.service_name = [0; SERVICE_NAME_BYTES];
        self.service_name[..name.len()].copy_from_slice(name);
        self.service_name_len = name.len() as u32;
        let whole =
            (service_name.len() >= SERVICE_NAME_FILLS).then_some((SERVICE_NAME_KEY, service_name));
        let others = resource
            .iter()
            .filter(|(k, _)| k != SERVICE_NAME_KEY)
            .map(|(k, v)| (k.as_str(), v.as_str()));
        let mut text = String::new();
        for (k, v) in whole.into_iter().chain(others) {
            let entry = format!("{}={}", percent_encode(k), percent_encode(v));
            let sep = usize::from(!text.is_empty());
            if text.len() + sep + entry.len() <= RESOURCE_TEXT_BYTES {
                if sep == 1 {
                    text.push(',');
                }
                text.push_str(&entry);
            }
        }
        self.resource_text = [0; RESOURCE_TEXT_BYTES];
        self.resource_text[..text.len()].copy_from_slice(text.as_bytes());
        self.resource_text_len = text.len() as u32;
    }

    /// Copies this header's service name and resource text over those of
    /// the header at `dst` (a flight file's, in its shared mapping), which
    /// a SIGKILL may leave half written at any store: the lengths go to 0
    /// first and are written last, so a reader finds the old resource, none
    /// (the recovering tracer's fallback), or the new one, never a mix.
    ///
    /// # Safety
    /// `dst` is valid for writes of a `DumpHeader`, and no other thread
    /// writes its resource meanwhile.
    pub unsafe fn write_resource_into(&self, dst: *mut DumpHeader) {
        use std::ptr::addr_of_mut;
        use std::sync::atomic::{Ordering, fence};
        // SAFETY: in bounds of *dst by the caller's contract; volatile, so
        // that the stores are made, and in this order, to memory a dead
        // process leaves behind.
        unsafe {
            addr_of_mut!((*dst).service_name_len).write_volatile(0);
            addr_of_mut!((*dst).resource_text_len).write_volatile(0);
            fence(Ordering::SeqCst);
            addr_of_mut!((*dst).service_name).write_volatile(self.service_name);
            addr_of_mut!((*dst).resource_text).write_volatile(self.resource_text);
            fence(Ordering::SeqCst);
            addr_of_mut!((*dst).resource_text_len).write_volatile(self.resource_text_len);
            addr_of_mut!((*dst).service_name_len).write_volatile(self.service_name_len);
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: DumpHeader is repr(C) plain data with no padding holes
        // that matter for a byte copy.
        unsafe {
            std::slice::from_raw_parts(
                (self as *const DumpHeader).cast(),
                std::mem::size_of::<DumpHeader>(),
            )
        }
    }

    /// The service name, whole (see `set_resource`).
    pub fn service_name(&self) -> String {
        self.service_name_whole().0
    }

    /// The service name, and whether it is known to be whole: false when
    /// it fills the header's field and the resource text does not hold it
    /// whole (longer than the text's room, or written by a version that
    /// cut it at the field and kept nothing more: then it may be whole).
    pub fn service_name_whole(&self) -> (String, bool) {
        let n = (self.service_name_len as usize).min(SERVICE_NAME_BYTES);
        let field = String::from_utf8_lossy(&self.service_name[..n]).into_owned();
        if n < SERVICE_NAME_FILLS {
            return (field, true);
        }
        match self
            .resource_attributes()
            .into_iter()
            .find(|(k, _)| k == SERVICE_NAME_KEY)
        {
            Some((_, whole)) if whole.starts_with(&field) => (whole, true),
            _ => (field, false),
        }
    }

    pub fn resource_attributes(&self) -> Vec<(String, String)> {
        let n = (self.resource_text_len as usize).min(RESOURCE_TEXT_BYTES);
        crate::config::parse_key_values(&String::from_utf8_lossy(&self.resource_text[..n]))
            .unwrap_or_default()
    }
}

/// `s` with the three bytes the key=value text gives a meaning escaped,
/// and the blanks at either end (`char::is_whitespace`, each byte of
/// theirs): the reader trims each key and value
/// (`config::parse_key_values`), so " padded " came back "padded" and a
/// key of blanks alone as an empty key, which refused the whole text.
/// Every other character as it is (a byte at a time, each byte of a
/// character not ASCII would come back as a character of its own).
fn percent_encode(s: &str) -> String {
    let start = s.len() - s.trim_start().len();
    let end = start + s.trim().len();
    let mut out = String::with_capacity(s.len());
    for (at, c) in s.char_indices() {
        if matches!(c, ',' | '=' | '%') || !(start..end).contains(&at) {
            for byte in c.encode_utf8(&mut [0; 4]).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A file made ahead of time, empty and locked under a pending name, so
/// that a signal handler can fill it with write(2) and publish it with
/// rename(2): nothing that allocates, locks or formats. The lock is held
/// while the process lives, so recovery leaves a live owner's file alone.
pub struct PreparedFile {
    file: LockedFile,
    pending: CString,
    done: CString,
    /// Renamed to `done` by `publish`, not yet taken back.
    published: AtomicBool,
    /// Its name unlinked by `discard` (still open and locked), not yet
    /// made again.
    discarded: AtomicBool,
}

impl PreparedFile {
    /// Creates `pending` (which must not exist) to be renamed to `done`,
    /// locked before the name shows it (`files::create_locked`): a
    /// recovery beside us never finds it unlocked, empty, and deletes it.
    pub fn create(pending: &Path, done: &Path) -> std::io::Result<PreparedFile> {
        let to_c = |p: &Path| {
            CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in spool path")
            })
        };
        let (pending_c, done_c) = (to_c(pending)?, to_c(done)?);
        // Held until the process ends or the file is removed at shutdown.
        let file = files::create_locked(pending, false)?;
        Ok(PreparedFile {
            file,
            pending: pending_c,
            done: done_c,
            published: AtomicBool::new(false),
            discarded: AtomicBool::new(false),
        })
    }

    /// The name it is published under.
    pub fn done_path(&self) -> &Path {
        use std::os::unix::ffi::OsStrExt;
        Path::new(std::ffi::OsStr::from_bytes(self.done.as_bytes()))
    }

    /// Async-signal-safe: writes all of `bytes` (retrying on EINTR), or
    /// stops at the first error.
    pub fn write_all(&self, bytes: &[u8]) {
        self.write_fully(bytes, None);
    }

    /// `write_all` at `offset` (pwrite: the file's position stays at its
    /// end, where the next `write_all` goes).
    pub fn write_all_at(&self, bytes: &[u8], offset: u64) {
        self.write_fully(bytes, Some(offset));
    }

    fn write_fully(&self, mut bytes: &[u8], mut offset: Option<u64>) {
        let fd = self.file.as_raw_fd();
        // Cut to end at the file size limit (`files::file_size_limit`): a
        // write that starts there kills the program (SIGXFSZ) on the
        // thread that dumps (the one that crashed, a shutdown's caller),
        // mid-dump. What is past it is left out, its records torn (counted
        // lost when the dump is recovered).
        if let Some(limit) = files::file_size_limit() {
            let at = offset.unwrap_or_else(|| {
                // SAFETY: lseek on our own fd only reports its position.
                let at = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
                u64::try_from(at).unwrap_or(0)
            });
            let room = limit.saturating_sub(at);
            bytes = &bytes[..bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX))];
        }
        while !bytes.is_empty() {
            let (ptr, len) = (bytes.as_ptr().cast(), bytes.len());
            // SAFETY: write or pwrite from a valid slice to our own fd.
            let n = unsafe {
                match offset {
                    None => libc::write(fd, ptr, len),
                    Some(at) => libc::pwrite(fd, ptr, len, at as libc::off_t),
                }
            };
            if n <= 0 {
                // SAFETY: reading this thread's errno.
                if n < 0 && unsafe { *libc::__errno_location() } == libc::EINTR {
                    continue;
                }
                return;
            }
            bytes = &bytes[n as usize..];
            if let Some(at) = offset.as_mut() {
                *at += n as u64;
            }
        }
    }

    /// Async-signal-safe: makes what was written durable and gives the
    /// file its final name.
    pub fn publish(&self) {
        // SAFETY: fsync and rename of our own fd and NUL-terminated paths;
        // both are async-signal-safe.
        unsafe {
            libc::fsync(self.file.as_raw_fd());
            if self.discarded.load(Ordering::Acquire) {
                // Unlinked and not made again (`make_again` failed): the
                // pending name is not ours, whatever sits there now (a
                // link, another's file). Renaming it would publish that
                // under our dump's name, for recovery to read or set
                // aside, our spans in the unlinked file all the same.
                return;
            }
            if libc::rename(self.pending.as_ptr(), self.done.as_ptr()) == 0 {
                self.published.store(true, Ordering::Release);
            }
        }
    }

    /// Async-signal-safe: for a dump that had nothing to keep, empties the
    /// file and unlinks its pending name, so that a process the signal
    /// ends leaves nothing behind (it left a header-only dump and an empty
    /// batch file, two files a SIGTERM, for the next start to open, lock,
    /// read and delete). The file stays open and locked: `unpublish` makes
    /// it again if the process lives on.
    pub fn discard(&self) {
        let fd = self.file.as_raw_fd();
        // SAFETY: our own fd and a NUL-terminated path; ftruncate, lseek
        // and unlink are async-signal-safe.
        unsafe {
            libc::ftruncate(fd, 0);
            libc::lseek(fd, 0, libc::SEEK_SET);
            if libc::unlink(self.pending.as_ptr()) == 0 {
                self.discarded.store(true, Ordering::Release);
            }
        }
    }

    /// Makes a discarded file again, empty and locked under its pending
    /// name, in the place of the unlinked one (the same descriptor number,
    /// which the handlers read without a lock). Not async-signal-safe.
    ///
    /// Whatever sat at the name meanwhile is not ours (ours was unlinked):
    /// a link, a file someone put there. It is set aside unopened, as the
    /// spool sets aside what it cannot use, and the file made in its place
    /// (never through it nor over it: `create_locked`), locked before the
    /// name shows it, as `create` makes it. Left there, it kept the file
    /// from being made again, and the next dump renamed it, not our spans,
    /// to the dump's name.
    fn make_again(&self) -> std::io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let path = Path::new(std::ffi::OsStr::from_bytes(self.pending.as_bytes()));
        let fresh = match files::create_locked(path, false) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                files::set_aside(path)?;
                files::create_locked(path, false)
            }
            created => created,
        }?;
        // SAFETY: both fds are open and ours; dup3 closes the unlinked
        // file's (its lock goes with it) and points the number at the
        // fresh file, whose lock stays with it when `fresh` closes its own.
        // Close-on-exec as the number was, in the same call (dup2 clears
        // the flag, and a fcntl after it leaves a moment where another
        // thread's exec passes the descriptor on): a program the host
        // starts later would share the file's lock, and keep a dump of
        // this process from recovery after it died, for as long as it
        // lives.
        let moved =
            unsafe { libc::dup3(fresh.as_raw_fd(), self.file.as_raw_fd(), libc::O_CLOEXEC) };
        if moved < 0 {
            let e = std::io::Error::last_os_error();
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        self.discarded.store(false, Ordering::Release);
        Ok(())
    }

    /// Takes a published file back, emptied and under its pending name,
    /// ready for another dump: for a process that was to die of a signal
    /// but lives on (the host's handler returned), whose spans stay in its
    /// slots and will be sent by its own exporter. The file stayed locked
    /// throughout, so no other process took it meanwhile. A discarded one
    /// is made again (an error leaves the process without it: a later
    /// dump's rename then fails, as with a spool directory removed).
    pub fn unpublish(&self) {
        if self.discarded.load(Ordering::Acquire) {
            let _ = self.make_again();
            return;
        }
        if !self.published.swap(false, Ordering::AcqRel) {
            return;
        }
        let fd = self.file.as_raw_fd();
        // SAFETY: our own fd and NUL-terminated paths.
        unsafe {
            libc::ftruncate(fd, 0);
            libc::lseek(fd, 0, libc::SEEK_SET);
            libc::rename(self.done.as_ptr(), self.pending.as_ptr());
        }
    }

    /// Deletes the (unused) file at a clean shutdown.
    pub fn remove(&self) {
        if self.discarded.load(Ordering::Acquire) {
            return; // unlinked already: the name may be another's now
        }
        // SAFETY: a NUL-terminated path we own.
        unsafe { libc::unlink(self.pending.as_ptr()) };
    }
}

/// A tracer's crash files, made at start: `slots` receives the header and
/// every live slot, `batch` the encoded batch in flight (whose slots are
/// free already) in whatever form its writer gives it.
pub struct CrashFile {
    pub slots: PreparedFile,
    /// The file for the batch in flight, made by the exporter thread
    /// before it sends anything (`prepare_batch`), not by the tracer's
    /// creator: creating a file took 90 us of `spanguard_tracer_new` on
    /// ext4 in a VM, and there is no batch in flight before the exporter
    /// runs. Read with `get` (an atomic load) in the signal handler.
    batch: OnceLock<PreparedFile>,
    /// Its pending and published names.
    batch_names: (PathBuf, PathBuf),
    header: HeaderCell,
    /// The thread writing a dump (`begin_dump`), its kernel id; 0 when
    /// none.
    writer: std::sync::atomic::AtomicI32,
    /// A dump was written (its files published, or discarded when it had
    /// nothing to keep) and not taken back (`unpublish`).
    dumped: AtomicBool,
    /// A crash handler ends the process with this dump (`hold_for_crash`):
    /// no thaw takes it back.
    held_for_crash: AtomicBool,
}

/// This thread's kernel id. Async-signal-safe.
fn this_thread() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// The crash dump's header, written by a tracer whose resource changes at
/// run time (`set_resource`) and read by the crash handler, which may
/// interrupt that write on its own thread or run beside it on another: a
/// sequence lock, as a signal handler may take no lock. The writer makes
/// the sequence odd, writes, makes it even; the reader copies and keeps
/// the copy only when the sequence was the same even number before and
/// after.
struct HeaderCell {
    sequence: std::sync::atomic::AtomicU32,
    header: std::cell::UnsafeCell<DumpHeader>,
}

// SAFETY: writes are serialized by `CrashFile::set_resource`'s caller and
// published through `sequence`; readers copy and check it (`read`).
unsafe impl Sync for HeaderCell {}

impl HeaderCell {
    /// Async-signal-safe. A handler that interrupted the write on the
    /// writer's own thread would wait for it forever: after a few tries
    /// it takes the header with no resource text (the lengths clamped to
    /// 0), which recovery reads as the recovering tracer's fallback.
    fn read(&self) -> DumpHeader {
        for _ in 0..1000 {
            let before = self.sequence.load(Ordering::Acquire);
            // SAFETY: a plain-data copy; a copy torn by a writer is thrown
            // away below.
            let copy = unsafe { self.header.get().read_volatile() };
            std::sync::atomic::fence(Ordering::Acquire);
            if before.is_multiple_of(2) && self.sequence.load(Ordering::Relaxed) == before {
                return copy;
            }
            std::hint::spin_loop();
        }
        // SAFETY: as above.
        let mut copy = unsafe { self.header.get().read_volatile() };
        copy.service_name_len = 0;
        copy.resource_text_len = 0;
        copy
    }
}

impl CrashFile {
    /// The crash dump's name once published (`.sgdump`).
    pub fn dump_path(&self) -> &Path {
        self.slots.done_path()
    }

    /// `slots` made now; the batch file at `batch_pending` (published as
    /// `batch_done`) when `prepare_batch` is called.
    pub fn new(
        slots: PreparedFile,
        batch_pending: PathBuf,
        batch_done: PathBuf,
        header: DumpHeader,
    ) -> CrashFile {
        CrashFile {
            slots,
            batch: OnceLock::new(),
            batch_names: (batch_pending, batch_done),
            header: HeaderCell {
                sequence: Default::default(),
                header: std::cell::UnsafeCell::new(header),
            },
            writer: std::sync::atomic::AtomicI32::new(0),
            dumped: AtomicBool::new(false),
            held_for_crash: AtomicBool::new(false),
        }
    }

    /// Async-signal-safe: claims the files for one dump, which `end_dump`
    /// lets go. False, and nothing to write, while another dump of them is
    /// being written (on another thread, or on this one when that dump
    /// itself crashed: the two would interleave) or when one is on disk
    /// already (`is_on_disk`): a dump is written past the end of the files,
    /// so a second one made them two dumps in one, the batch file torn
    /// (set aside unread, its spans lost) and the slot dump's header
    /// counting the second dump's records over the first's.
    pub fn begin_dump(&self) -> bool {
        if self.is_on_disk()
            || self
                .writer
                .compare_exchange(0, this_thread(), Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return false;
        }
        // A dump that ended between the look above and the claim.
        if self.is_on_disk() {
            self.end_dump();
            return false;
        }
        true
    }

    /// Async-signal-safe: lets go of the claim `begin_dump` took.
    pub fn end_dump(&self) {
        self.writer.store(0, Ordering::Release);
    }

    /// Async-signal-safe: waits, until `until_ns` (`clock::monotonic_ns`)
    /// at most, for a dump another thread is writing to end: a crash
    /// beside it (the watchdog's, a shutdown's) skipped it as done and the
    /// process died with it half written, its other spans and the batch
    /// in flight never written. A dump on this very thread (one that
    /// crashed) is not waited for: it will not end.
    pub fn await_dump_elsewhere(&self, until_ns: u64) {
        let me = this_thread();
        loop {
            let writer = self.writer.load(Ordering::Acquire);
            if writer == 0 || writer == me || crate::span::clock::monotonic_ns() >= until_ns {
                return;
            }
            let pause = libc::timespec {
                tv_sec: 0,
                tv_nsec: 100_000,
            };
            // SAFETY: nanosleep is async-signal-safe.
            unsafe { libc::nanosleep(&pause, std::ptr::null_mut()) };
        }
    }

    /// Async-signal-safe: for a crash handler that ends the process with
    /// this dump, the one on disk or the one it is about to write: no
    /// thaw takes it back from now on (`unpublish`), until
    /// `release_from_crash` (the process lived through the signal). A
    /// take-back (or a dump) under way on another thread is waited for,
    /// until `until_ns` at most, so that what `is_on_disk` says next stays
    /// true. The termination watchdog's thaw, after the host's handler it
    /// delivered a signal to did not return within its second (Go's, for
    /// the SIGQUIT its runtime relays as it crashes), took back a dump the
    /// crash handler had found on disk and relied on: the process died with
    /// it emptied.
    pub fn hold_for_crash(&self, until_ns: u64) {
        self.held_for_crash.store(true, Ordering::SeqCst);
        // This store before the look at the claim below, as `unpublish`
        // claims before it looks at this flag: one of the two sees the
        // other.
        std::sync::atomic::fence(Ordering::SeqCst);
        self.await_dump_elsewhere(until_ns);
    }

    /// Lets a thaw take the dump back again (`hold_for_crash`).
    pub fn release_from_crash(&self) {
        self.held_for_crash.store(false, Ordering::SeqCst);
    }

    /// Async-signal-safe: a dump was written and not taken back
    /// (`unpublish`): its files are on disk, or it held nothing and left
    /// none. Either way it holds all there is to hold.
    pub fn is_on_disk(&self) -> bool {
        self.dumped.load(Ordering::Acquire)
    }

    /// Sets the resource the dump will carry (`DumpHeader::set_resource`).
    /// Callers serialize their calls (one writer at a time).
    pub fn set_resource(&self, service_name: &str, resource: &[(String, String)]) {
        let cell = &self.header;
        let mut next = cell.read();
        next.set_resource(service_name, resource);
        cell.sequence.fetch_add(1, Ordering::AcqRel);
        // SAFETY: the only writer (the caller's contract); readers see the
        // odd sequence and retry.
        unsafe { cell.header.get().write_volatile(next) };
        cell.sequence.fetch_add(1, Ordering::Release);
    }

    /// Makes the batch file, once; the exporter calls it before its first
    /// request. Without it (the spool directory refused it) a crash dumps
    /// the slots only: the spans of a batch in flight are still in them.
    pub fn prepare_batch(&self) -> std::io::Result<()> {
        if self.batch.get().is_none() {
            let file = PreparedFile::create(&self.batch_names.0, &self.batch_names.1)?;
            let _ = self.batch.set(file);
        }
        Ok(())
    }

    /// Async-signal-safe: the batch file, once made.
    pub fn batch(&self) -> Option<&PreparedFile> {
        self.batch.get()
    }

    /// Async-signal-safe: writes the header and every live slot of `slab`
    /// with its chunks from `pool`, then publishes the file, or discards it
    /// when no slot was live (`PreparedFile::discard`): a header with no
    /// span is nothing for anyone to recover. Returns the spans written.
    ///
    /// One pass, the count written into the header last: threads the
    /// signal did not stop may still begin a span during the dump (one
    /// that passed the running check before the freeze), so a count taken
    /// in a first pass could be short of the records a second pass wrote,
    /// and the reader, trusting it, left the last of them unread. Until the
    /// count is written the header says 0, which a reader takes as "read
    /// to the file's end" (the writer may die in the middle).
    pub fn dump_slots(&self, slab: &SpanSlab, pool: &PayloadPool, signal: libc::c_int) -> u32 {
        let mut header = self.header.read();
        header.signal = signal;
        header.record_count = 0;
        self.slots.write_all(header.as_bytes());
        let used = slab.used_slots();
        let mut written = 0u32;
        for i in 0..used {
            let r = slab.slot(i);
            if slot_is_live(r) {
                written += 1;
                // SAFETY: the slot is plain memory of the live mapping.
                let bytes = unsafe {
                    std::slice::from_raw_parts(
                        (r as *const SpanRecord).cast::<u8>(),
                        std::mem::size_of_val(r),
                    )
                };
                // The count the chunks below match: read once, as the slot
                // may still be written by a thread the signal did not stop.
                let chunks = r.stored_chunk_count();
                self.slots.write_all(&bytes[..CHUNK_COUNT_AT]);
                self.slots.write_all(&chunks.to_ne_bytes());
                self.slots.write_all(&bytes[CHUNK_COUNT_AT + 4..]);
                let src = StoreSource(pool);
                for ordinal in 0..chunks {
                    match src.chunk(r, ordinal) {
                        Some(chunk) => self.slots.write_all(chunk),
                        None => self.slots.write_all(&[0u8; CHUNK_BYTES]),
                    }
                }
            }
        }
        if written == 0 {
            self.slots.discard();
        } else {
            header.record_count = written;
            self.slots.write_all_at(header.as_bytes(), 0);
            self.slots.publish();
        }
        self.dumped.store(true, Ordering::Release);
        written
    }

    /// Async-signal-safe: discards the batch file when a dump published
    /// nothing in it (no batch in flight), so that the process leaves no
    /// empty file behind.
    pub fn discard_unwritten_batch(&self) {
        if let Some(batch) = self.batch.get()
            && !batch.published.load(Ordering::Acquire)
        {
            batch.discard();
        }
    }

    /// Removes both (empty) files at a clean shutdown.
    pub fn remove(&self) {
        self.slots.remove();
        if let Some(batch) = self.batch.get() {
            batch.remove();
        }
    }

    /// Takes back both files after a dump the process survived (see
    /// `PreparedFile::unpublish`), made again if they were discarded, and
    /// answers true; false, and nothing changes, when a crash handler
    /// holds the dump (`hold_for_crash`) or another thread is writing one.
    /// Claimed as a dump is (`begin_dump`) meanwhile: a crash handler that
    /// comes to hold it waits for the take-back to end, then finds no
    /// dump on disk and writes one.
    pub fn unpublish(&self) -> bool {
        if self
            .writer
            .compare_exchange(0, this_thread(), Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return false;
        }
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.held_for_crash.load(Ordering::SeqCst) {
            self.end_dump();
            return false;
        }
        self.slots.unpublish();
        if let Some(batch) = self.batch.get() {
            batch.unpublish();
        }
        self.dumped.store(false, Ordering::Release);
        self.end_dump();
        true
    }
}

/// Whether a slot holds a span worth saving: open, being written, ended, or
/// in export (delivery unconfirmed).
#[inline]
pub fn slot_is_live(record: &SpanRecord) -> bool {
    matches!(
        header_state(record.header.load(Ordering::Acquire)),
        STATE_OPEN | STATE_WRITING | STATE_ENDED | STATE_EXPORTING
    )
}

/// Where a flight file's pool starts: at the first chunk past its header
/// and slots (`slab_len` bytes, `SpanSlab::mapping_len`).
pub fn flight_pool_offset(slab_len: usize) -> u64 {
    (slab_len as u64).next_multiple_of(CHUNK_BYTES as u64)
}

/// The largest crash dump or flight file a tracer of `slots` span slots
/// and a payload pool of `pool_chunks` chunks writes: a flight file is its
/// header, its slots, then its pool (`tracer::make_slab`), and a crash
/// dump its header, then live slots each with its chunks, which are the
/// pool's. A file named like one and larger is no file of such a tracer,
/// and reading it whole for a person to look at (`read_file`) could hold
/// as much memory as it claims.
pub fn largest_file(slots: u32, pool_chunks: u32) -> u64 {
    let slab_len = SpanSlab::mapping_len_for(slots, std::mem::size_of::<DumpHeader>());
    flight_pool_offset(slab_len) + pool_chunks as u64 * CHUNK_BYTES as u64
}

/// Why a dump or flight file was not read.
#[derive(Debug)]
pub enum DumpError {
    /// Empty: a process that died before it had anything to dump (its
    /// prepared file was never written). Nothing to keep.
    Empty,
    /// Not a dump this build can read (another version's, torn in its
    /// header, lengths that cannot be): set it aside, never delete it.
    Unreadable(String),
    /// Reading failed for a reason that may pass.
    Io(std::io::Error),
}

/// A recovered span: its record, and its chunks copied out in order.
pub type RecoveredSpan = (Box<SpanRecord>, OwnedOverflow);

/// The most chunk bytes one batch of `next_records` copies out (one span
/// that alone holds more is still read, cut at `MAX_SPAN_OVERFLOW_BYTES`).
const BATCH_OVERFLOW_BYTES: usize = 64 << 20;
/// The most chunk bytes kept for one recovered span: a record read from
/// disk may claim any count.
pub(crate) const MAX_SPAN_OVERFLOW_BYTES: usize = 64 << 20;

// `DumpReader::mark_sent` writes a record's state word where it lies in
// the file: 8-byte aligned, as the header, records and chunks before it
// are all multiples of 8 bytes long.
const _: () = assert!(
    std::mem::size_of::<DumpHeader>().is_multiple_of(8)
        && std::mem::size_of::<SpanRecord>().is_multiple_of(8)
        && CHUNK_BYTES.is_multiple_of(8)
        && std::mem::offset_of!(SpanRecord, header).is_multiple_of(8)
);

/// How a recovered span's chunks were cut (`DumpReader::next_records`):
/// each is one value cut, counted by the recoverer, for a reason of its
/// own.
#[derive(Clone, Copy, Debug, Default)]
struct ChunksCut {
    /// The file did not hold them all: its writer died as it wrote them.
    torn: bool,
    /// They were all there, past `MAX_SPAN_OVERFLOW_BYTES`: only that much
    /// was kept.
    over_limit: bool,
}

/// A crash dump or flight file, its header checked, read a batch of spans
/// at a time: memory stays bounded by one batch whatever the file holds,
/// and nothing past what its header allows is read (the header's claims,
/// the file's real size and the most a header can describe bound every
/// read). Records' sizes come from the header, which must match this
/// build's.
pub struct DumpReader<F: Borrow<File> = LockedFile> {
    file: F,
    header: DumpHeader,
    record_size: u64,
    /// The file's size when opened: nothing past it is read.
    size: u64,
    /// The next record's offset, and the end of the last one that may be
    /// read.
    offset: u64,
    end: u64,
    /// Records a crash dump's header says it holds, still to read.
    records_left: u32,
    died_at_ns: u64,
    /// The spans the last `next_records` gave: each record's offset and
    /// its state word as read, for `mark_sent`.
    last_batch: Vec<(u64, u64)>,
    /// The file's modification time when opened (what recovery takes as
    /// its writer's death), which `mark_sent` puts back.
    modified: libc::timespec,
    /// Spans given with fewer chunks than their record names since the
    /// last `take_chunks_cut`: the file ends inside them.
    chunks_cut: u64,
    /// Spans given with their chunks cut at `MAX_SPAN_OVERFLOW_BYTES`
    /// since the last `take_chunks_over_limit`: their records name more.
    chunks_over_limit: u64,
}

impl<F: Borrow<File>> DumpReader<F> {
    /// Reads and checks the header of `file` (opened by the caller, and
    /// locked when it is to be recovered). Open spans are recovered as
    /// ended at `died_at_ns`.
    pub fn open(file: F, died_at_ns: u64) -> Result<DumpReader<F>, DumpError> {
        let meta = file.borrow().metadata().map_err(DumpError::Io)?;
        let size = meta.len();
        let modified = libc::timespec {
            tv_sec: std::os::unix::fs::MetadataExt::mtime(&meta) as libc::time_t,
            tv_nsec: std::os::unix::fs::MetadataExt::mtime_nsec(&meta) as _,
        };
        if size == 0 {
            return Err(DumpError::Empty);
        }
        let hsize = std::mem::size_of::<DumpHeader>();
        let mut bytes = [0u8; std::mem::size_of::<DumpHeader>()];
        if size < hsize as u64 {
            return Err(DumpError::Unreadable(format!(
                "{size} bytes, shorter than a dump header"
            )));
        }
        file.borrow()
            .read_exact_at(&mut bytes, 0)
            .map_err(DumpError::Io)?;
        // SAFETY: DumpHeader is plain data; any bytes are a value of it; read
        // unaligned from the buffer.
        let header: DumpHeader = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        if header.magic != MAGIC_CRASH_DUMP && header.magic != MAGIC_FLIGHT {
            let magic = String::from_utf8_lossy(&header.magic).into_owned();
            let why = if magic.starts_with("SGDUMP") || magic.starts_with("SGFLITE") {
                format!("written by another version of spanguard (magic {magic:?})")
            } else {
                "not a spanguard dump (no magic)".to_string()
            };
            return Err(DumpError::Unreadable(why));
        }
        let record_size = std::mem::size_of::<SpanRecord>();
        if header.record_size as usize != record_size || header.chunk_size as usize != CHUNK_BYTES {
            return Err(DumpError::Unreadable(format!(
                "records of {} bytes and chunks of {} where this build's have {record_size} \
                 and {CHUNK_BYTES}",
                header.record_size, header.chunk_size
            )));
        }
        // No tracer has more slots than span handles can name.
        if header.record_count > crate::span::limits::MAX_SLOTS {
            return Err(DumpError::Unreadable(format!(
                "its header claims {} records",
                header.record_count
            )));
        }
        // The flight recorder aligns its records to 64 bytes after the
        // header. A crash dump's count is 0 when its writer died before it
        // was known: then the file's length says, up to the most slots.
        let flight = header.magic == MAGIC_FLIGHT;
        // Alive later than its modification time says: its open spans end
        // then. Never later than now (the file is outside input).
        let died_at_ns = if flight {
            let alive = alive_at(file.borrow(), size).min(crate::span::clock::now_unix_ns());
            died_at_ns.max(alive)
        } else {
            died_at_ns
        };
        let (start, end) = if flight {
            let start = hsize.next_multiple_of(64) as u64;
            (
                start,
                start + header.record_count as u64 * record_size as u64,
            )
        } else {
            // A crash dump's records carry their chunks: the file's size
            // bounds them.
            (hsize as u64, size)
        };
        let records_left = if flight || header.record_count == 0 {
            crate::span::limits::MAX_SLOTS
        } else {
            header.record_count
        };
        Ok(DumpReader {
            file,
            header,
            record_size: record_size as u64,
            size,
            offset: start,
            end: end.min(size),
            records_left,
            died_at_ns,
            last_batch: Vec::new(),
            modified,
            chunks_cut: 0,
            chunks_over_limit: 0,
        })
    }

    pub fn header(&self) -> &DumpHeader {
        &self.header
    }

    /// When its process died, as the caller said: its open spans end then.
    pub fn died_at_ns(&self) -> u64 {
        self.died_at_ns
    }

    /// Records of a crash dump that its writer did not get whole on disk,
    /// so no span of theirs is read: once `next_records` gave an empty
    /// batch (the end), those its header counts and the file does not
    /// hold (a write that failed, a disk full), or, in one whose writer
    /// died before it knew the count (a `.sgdump-pending`, its count 0),
    /// the bytes of one record begun after the last whole one. Each was a
    /// live slot (`dump_slots` writes no other), so a span, in no other
    /// file: the batch in flight, which the dump's other file holds, has
    /// its slots freed. A slot still being begun, its ids not yet written
    /// (`recovered`), is read whole and is no span yet: not counted. A
    /// flight file's slots are no records written one after another (a
    /// short one holds free slots as much as spans): 0.
    pub fn torn_records(&self) -> u64 {
        if self.header.magic != MAGIC_CRASH_DUMP {
            return 0;
        }
        if self.header.record_count > 0 {
            return u64::from(self.records_left);
        }
        u64::from(self.end > self.offset)
    }

    /// Spans given since the last call with fewer chunks than their
    /// records name (a crash dump whose writer died while it wrote their
    /// chunks; a flight file's chunk past its end): their values in the
    /// chunks missing are cut or left out (`SpanView::from_disk`).
    pub fn take_chunks_cut(&mut self) -> u64 {
        std::mem::take(&mut self.chunks_cut)
    }

    /// Spans given since the last call with only the first
    /// `MAX_SPAN_OVERFLOW_BYTES` of the chunks their records name (and the
    /// file holds): their values in the chunks past it are cut or left
    /// out. They were sent so with nothing counted.
    pub fn take_chunks_over_limit(&mut self) -> u64 {
        std::mem::take(&mut self.chunks_over_limit)
    }

    /// Up to `max` more spans worth sending, each with its chunks (torn and
    /// free slots are skipped); empty at the end. Holes of a sparse file are
    /// skipped without reading them (they hold only free slots).
    pub fn next_records(&mut self, max: usize) -> Result<Vec<RecoveredSpan>, DumpError> {
        let rsize = self.record_size;
        let mut spans = Vec::new();
        let mut overflow_bytes = 0usize;
        self.last_batch.clear();
        while spans.len() < max.max(1)
            && overflow_bytes < BATCH_OVERFLOW_BYTES
            && self.records_left > 0
            && self.offset + rsize <= self.end
        {
            self.skip_hole();
            if self.offset + rsize > self.end {
                break;
            }
            // SAFETY: SpanRecord is repr(C) plain data plus an AtomicU64, for
            // which any bit pattern is valid.
            let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
            // SAFETY: the record's own storage, viewed as bytes to fill.
            let bytes = unsafe {
                std::slice::from_raw_parts_mut(
                    (&mut *r as *mut SpanRecord).cast::<u8>(),
                    rsize as usize,
                )
            };
            match self.file.borrow().read_exact_at(bytes, self.offset) {
                Ok(()) => {}
                // Shorter than its size said a moment ago: what is left is torn.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    self.end = self.offset;
                    break;
                }
                Err(e) => return Err(DumpError::Io(e)),
            }
            let at = self.offset;
            self.offset += rsize;
            self.records_left -= 1;
            // Read every field: a file written before `MARK_HAS_REST`
            // existed has the rest line without the mark, and records from
            // disk are few.
            r.marks |= MARK_HAS_REST;
            let (overflow, cut) = if self.header.magic == MAGIC_FLIGHT {
                self.flight_chunks(&mut r)
            } else {
                self.inline_chunks(&mut r)?
            };
            if let Some(r) = self.recovered(r) {
                self.chunks_cut += u64::from(cut.torn);
                self.chunks_over_limit += u64::from(cut.over_limit);
                overflow_bytes += overflow.len();
                self.last_batch.push((at, r.header.load(Ordering::Relaxed)));
                spans.push((r, OwnedOverflow(overflow)));
            }
        }
        Ok(spans)
    }

    /// Marks the spans the last `next_records` gave as sent, in the file
    /// itself: each one's state word becomes free (its generation kept),
    /// as a slot whose span was exported is in memory, and every reader
    /// skips a free record (a recoverer after this one, `spanguard show`
    /// and `spool`, an older version's reader). Recovery calls it once the
    /// batch is delivered or kept in the spool, so a recoverer killed
    /// midway (SIGKILLed, its container restarted) leaves the file with
    /// only what it had not yet sent, where the next one sent the whole
    /// file again: every span sent twice. A kill between the delivery and
    /// this still sends that one batch twice.
    ///
    /// Each mark is one aligned 8-byte `pwrite` (a record's state word
    /// lies at its start, and records, chunks and the header are all
    /// multiples of 8 bytes long), which a SIGKILL does not cut in two;
    /// the page cache keeps it when the process dies. The file's
    /// modification time, which recovery takes as when its writer died
    /// (the end of its open spans), is put back after: a kill between the
    /// two leaves it at this recoverer's time, later than the death.
    /// Then the marks are put on the disk (`fdatasync`, one a batch):
    /// a machine that went down with them only in the page cache had the
    /// next recoverer send every batch of the file again. Recovery is
    /// rare and a batch is one delivery; the sync costs one call a batch,
    /// never one a span. (The restored time is metadata `fdatasync` need
    /// not write: after a crash it may read as this recoverer's.)
    ///
    /// An error (a file opened read-only) stops the marking; the batch
    /// was delivered all the same.
    pub fn mark_sent(&mut self) -> std::io::Result<()> {
        let file = self.file.borrow();
        let at_word = std::mem::offset_of!(SpanRecord, header) as u64;
        for &(at, word) in &self.last_batch {
            let sent = pack_header(header_generation(word), STATE_FREE);
            file.write_all_at(&sent.to_ne_bytes(), at + at_word)?;
        }
        self.last_batch.clear();
        let times = [
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            },
            self.modified,
        ];
        // SAFETY: our own fd and two timespecs.
        if unsafe { libc::futimens(file.as_raw_fd(), times.as_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: our own fd.
        if unsafe { libc::fdatasync(file.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// A crash dump's chunks, right after their record: as many as the
    /// file holds (the offset moves past all of them), as many as a span
    /// may keep; and how they were cut. When the file ended before the
    /// last of them, nothing follows: what is left (part of a chunk) was
    /// not read as a record, which its bytes are not.
    fn inline_chunks(&mut self, r: &mut SpanRecord) -> Result<(Vec<u8>, ChunksCut), DumpError> {
        let available = (self.end.saturating_sub(self.offset) / CHUNK_BYTES as u64) as usize;
        let named = r.rest().chunk_count as usize;
        let present = named.min(available);
        let kept = present.min(MAX_SPAN_OVERFLOW_BYTES / CHUNK_BYTES);
        let over_limit = kept < present;
        let mut copied = vec![0u8; kept * CHUNK_BYTES];
        let mut torn = present < named;
        match self.file.borrow().read_exact_at(&mut copied, self.offset) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                self.end = self.offset;
                torn |= !copied.is_empty();
                copied.clear();
            }
            Err(e) => return Err(DumpError::Io(e)),
        }
        self.offset += (present * CHUNK_BYTES) as u64;
        if torn {
            self.end = self.offset;
        }
        r.rest_mut().chunk_count = (copied.len() / CHUNK_BYTES) as u32;
        let over_limit = over_limit && !torn;
        Ok((copied, ChunksCut { torn, over_limit }))
    }

    /// A flight file's chunks, found through the record's chunk map in the
    /// pool region (bounded by the header and the file), read one at a time
    /// as the map asks for them; and how they were cut (one its record
    /// names not there to read: past the pool or the file's end).
    fn flight_chunks(&self, r: &mut SpanRecord) -> (Vec<u8>, ChunksCut) {
        let store = FileChunks {
            file: self.file.borrow(),
            pool_offset: self.header.pool_offset,
            pool_chunks: self.header.pool_chunks,
            size: self.size,
            read: RefCell::new(HashMap::new()),
        };
        let src = StoreSource(&store);
        let in_pool = r.rest().chunk_count.min(self.header.pool_chunks);
        let count = in_pool.min((MAX_SPAN_OVERFLOW_BYTES / CHUNK_BYTES) as u32);
        let mut copied = Vec::new();
        let mut kept = 0;
        for ordinal in 0..count {
            match src.chunk(r, ordinal) {
                Some(chunk) => copied.extend_from_slice(chunk),
                None => break,
            }
            kept += 1;
        }
        let torn = kept < count;
        r.rest_mut().chunk_count = kept;
        let over_limit = !torn && count < in_pool;
        (copied, ChunksCut { torn, over_limit })
    }

    /// Moves past whole records that lie in a hole of a sparse file: they
    /// are all zero, free slots without chunks.
    fn skip_hole(&mut self) {
        // SAFETY: lseek on our own fd; SEEK_DATA only reports an offset.
        let data = unsafe {
            libc::lseek(
                self.file.borrow().as_raw_fd(),
                self.offset as libc::off_t,
                libc::SEEK_DATA,
            )
        };
        if data < 0 {
            // ENXIO: no data from here to the end. (Other errors: a file
            // system without holes; read on.)
            // SAFETY: reading this thread's errno.
            if unsafe { *libc::__errno_location() } == libc::ENXIO {
                self.offset = self.end;
            }
            return;
        }
        let data = data as u64;
        if data > self.offset {
            let skipped = (data - self.offset) / self.record_size;
            self.offset += skipped * self.record_size;
        }
    }

    /// A record as it will be sent, or None when it holds no span.
    fn recovered(&self, mut r: Box<SpanRecord>) -> Option<Box<SpanRecord>> {
        let state = header_state(r.header.load(Ordering::Relaxed));
        if !matches!(
            state,
            STATE_OPEN | STATE_WRITING | STATE_ENDED | STATE_EXPORTING
        ) {
            return None;
        }
        if r.span_id == [0; 8] || r.trace_id == [0; 16] {
            return None; // torn: begin had not filled it in
        }
        sanitize(&mut r);
        if matches!(state, STATE_OPEN | STATE_WRITING) {
            r.marks |= MARK_INTERRUPTED;
            // A number no signal has (the file is outside input) reads as
            // none.
            r.signal = i16::try_from(self.header.signal).unwrap_or(0);
            r.end_unix_ns = self.died_at_ns.max(r.start_unix_ns);
        }
        Some(r)
    }
}

/// A flight file's pool region as a store the chunk map resolves through:
/// each chunk read from the file when first asked for (reading only; never
/// past the pool the header names or the file's end).
struct FileChunks<'a> {
    file: &'a File,
    pool_offset: u64,
    pool_chunks: u32,
    size: u64,
    /// Chunks read so far; boxed, so their addresses stay put.
    read: RefCell<HashMap<u32, Box<[u8; CHUNK_BYTES]>>>,
}

impl ChunkStore for FileChunks<'_> {
    fn take_chunk(&self) -> Option<u32> {
        None
    }

    fn chunk_ptr(&self, index: u32) -> Option<std::ptr::NonNull<u8>> {
        if index >= self.pool_chunks {
            return None;
        }
        let at = self
            .pool_offset
            .checked_add(index as u64 * CHUNK_BYTES as u64)?;
        if at.checked_add(CHUNK_BYTES as u64)? > self.size {
            return None;
        }
        let mut read = self.read.borrow_mut();
        let chunk = match read.entry(index) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let mut chunk = Box::new([0u8; CHUNK_BYTES]);
                self.file.read_exact_at(&mut chunk[..], at).ok()?;
                e.insert(chunk)
            }
        };
        // Read only: ChunkStore's pointer is mutable for the writer's sake.
        // The box is never dropped or moved while the store lives.
        std::ptr::NonNull::new(chunk.as_mut_ptr())
    }
}

/// The spans a dump or flight file holds, ready to encode: ended ones as
/// they were; open ones ended at `died_at_ns` and marked interrupted. Each
/// comes with its chunks, copied out in order.
pub struct Recovered {
    pub header: DumpHeader,
    pub records: Vec<RecoveredSpan>,
}

/// Reads a whole crash dump or flight file for a person to look at
/// (`spanguard show`), without locking, renaming or deleting it, opened
/// and bounded as recovery reads it (`files::open_found_to_look`: a file of
/// the directory's owner, who may be another user; `DumpReader`). None if
/// it is not theirs or cannot be read; torn records are skipped. None
/// also for a file over `max_bytes` (`largest_file` of the tracers that
/// may have written it), which is not read: its spans are all held here.
pub fn read_file(path: &Path, died_at_ns: u64, max_bytes: u64) -> Option<Recovered> {
    read_opened(files::open_found_to_look(path).ok()?, died_at_ns, max_bytes)
}

/// `read_file` of a file the caller opened (`files::open_found_to_look`),
/// who may then judge it by its descriptor (its lock's holder, its
/// modification time) rather than by a name that may lead elsewhere by
/// then.
pub fn read_opened(file: File, died_at_ns: u64, max_bytes: u64) -> Option<Recovered> {
    // Checked on the file opened: it may have grown since the caller
    // looked at its size.
    if file.metadata().ok()?.len() > max_bytes {
        return None;
    }
    let mut reader = DumpReader::open(file, died_at_ns).ok()?;
    let mut records = Vec::new();
    loop {
        let batch = reader.next_records(512).ok()?;
        if batch.is_empty() {
            break;
        }
        records.extend(batch);
    }
    Some(Recovered {
        header: *reader.header(),
        records,
    })
}

/// Clamps counts of a record read from disk so that an encoder can trust
/// them; text, tables and lists are read through bounds-checked views.
fn sanitize(r: &mut SpanRecord) {
    use crate::span::limits::*;
    r.attribute_count = r.attribute_count.min(MAX_COUNT_LIMIT as u16);
    r.event_count = r.event_count.min(MAX_COUNT_LIMIT as u16);
    r.link_count = r.link_count.min(MAX_COUNT_LIMIT as u16);
    r.arena_used = r.arena_used.min(ARENA_BYTES as u16);
    r.kind = r.kind.min(5);
    r.status_code = r.status_code.min(2);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::buffer::slab::SlabBacking;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("sg-dump-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        files::ensure_private_dir(&d).expect("dir");
        d
    }

    /// A crash file of service "svc" in `dir`: slots to `a`, the batch to `b`.
    fn crash_file_in(dir: &Path) -> CrashFile {
        let slots = PreparedFile::create(&dir.join("a-pending"), &dir.join("a")).expect("slots");
        CrashFile::new(
            slots,
            dir.join("b-pending"),
            dir.join("b"),
            DumpHeader::new(MAGIC_CRASH_DUMP, 0, "svc", &[]),
        )
    }

    fn open(path: &Path) -> Result<DumpReader, DumpError> {
        let opened = crate::buffer::files::BeforeOpen::now();
        let (file, _) = LockedFile::lock(std::fs::File::open(path).expect("open"), opened);
        DumpReader::open(file, 42)
    }

    fn header_bytes(magic: [u8; 8], count: u32) -> Vec<u8> {
        DumpHeader::new(magic, count, "svc", &[])
            .as_bytes()
            .to_vec()
    }

    /// Opens one span in `slab`, trace and span ids all 7s: what a dump
    /// test then dumps and looks for.
    pub(crate) fn open_span_sevens(slab: &SpanSlab) {
        let (i, g) = slab.take_free(|| {}).expect("slot");
        // SAFETY: take_free gave us the slot.
        let r = unsafe { slab.slot_mut(i) };
        r.reset();
        r.trace_id = [7; 16];
        r.span_id = [7; 8];
        slab.publish_open(i, g);
    }

    #[test]
    fn a_resource_set_later_replaces_the_headers_and_keeps_the_rest() {
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        let dir = temp_dir("set-resource");
        let crash = crash_file_in(&dir);
        crash.set_resource("checkout", &[kv("deployment.environment.name", "prod")]);
        let h = crash.header.read();
        assert_eq!(h.service_name(), "checkout");
        assert_eq!(
            h.resource_attributes(),
            vec![kv("deployment.environment.name", "prod")]
        );
        assert_eq!(h.magic, MAGIC_CRASH_DUMP);

        // In place, as in a flight file: a shorter resource leaves nothing
        // of the longer one it replaces; the other fields are untouched.
        let mut at = DumpHeader::new(
            MAGIC_FLIGHT,
            7,
            "a-long-service-name",
            &[kv("k", "v".repeat(100).as_str())],
        );
        let mut next = at;
        next.set_resource("s", &[kv("a", "b")]);
        // SAFETY: a header of our own, written by this thread only.
        unsafe { next.write_resource_into(&mut at) };
        assert_eq!(at.service_name(), "s");
        assert_eq!(at.resource_attributes(), vec![kv("a", "b")]);
        assert_eq!((at.magic, at.record_count), (MAGIC_FLIGHT, 7));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A service name over the field's 256 bytes was cut there, and its
    /// recovered spans arrived under the cut name with nothing said.
    #[test]
    fn a_long_service_name_is_kept_whole_and_an_older_reader_still_reads_the_header() {
        use crate::export::resource::{AttrValue, ResourceInfo};
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        // 600 bytes, a two-byte character across the field's end, and the
        // characters the resource text escapes.
        let long = format!("{}é{}", "a".repeat(255), "b,c=d%e".repeat(49));
        assert!(long.len() == 600 && !long.is_char_boundary(256));
        let resource = [
            kv("service.name", "other"),
            kv("deployment.environment.name", "prod"),
        ];
        let h = DumpHeader::new(MAGIC_FLIGHT, 1, &long, &resource);
        assert_eq!(h.service_name_whole(), (long.clone(), true));
        assert_eq!(h.service_name(), long);
        // What a reader of an older version reads: the field (cut on a
        // character boundary, valid UTF-8) and entries it can parse, among
        // which a service.name that its resource gives way to the field's.
        let field = &h.service_name[..h.service_name_len as usize];
        assert_eq!(std::str::from_utf8(field).expect("UTF-8"), &long[..255]);
        let older = ResourceInfo::new(&long[..255], &h.resource_attributes());
        assert_eq!(
            older.attributes[0],
            (
                "service.name".to_string(),
                AttrValue::Str(long[..255].to_string())
            )
        );
        assert!(
            h.resource_attributes()
                .contains(&kv("deployment.environment.name", "prod"))
        );
        // Longer than the resource text too: cut, and known to be.
        let huge = "s".repeat(3000);
        let h = DumpHeader::new(MAGIC_CRASH_DUMP, 0, &huge, &resource);
        assert_eq!(h.service_name_whole(), (huge[..256].to_string(), false));
        assert_eq!(
            h.resource_attributes(),
            vec![kv("deployment.environment.name", "prod")]
        );
        // A short name: as before, the field alone.
        let h = DumpHeader::new(MAGIC_CRASH_DUMP, 0, "svc", &resource);
        assert_eq!(h.service_name_whole(), ("svc".to_string(), true));
        assert_eq!(
            h.resource_attributes(),
            vec![kv("deployment.environment.name", "prod")]
        );
    }

    /// Blanks at either end of a resource key or value, or of a long
    /// service name, are kept: the reader trims each key and value as it
    /// trims OTEL_RESOURCE_ATTRIBUTES', so spans recovered from a dump
    /// arrived with " padded " as "padded", and a key of blanks alone (the
    /// APIs refuse only an empty one) was an empty key, which made the
    /// whole text unreadable: every attribute lost, the long service name
    /// with them. Found by the fuzz target dump_file.
    #[test]
    fn blanks_at_the_ends_of_the_resource_text_are_kept() {
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        let long = format!("{}\u{3000} ", "s".repeat(300));
        let resource = [
            kv("k", " padded "),
            kv(" ", "a key of a blank"),
            kv("tab", "\tx\n"),
            kv("inner", "a b"),
        ];
        let h = DumpHeader::new(MAGIC_CRASH_DUMP, 0, &long, &resource);
        assert_eq!(h.service_name_whole(), (long.clone(), true));
        let mut expected = vec![kv("service.name", &long)];
        expected.extend(resource.iter().cloned());
        assert_eq!(h.resource_attributes(), expected);
    }

    #[test]
    fn a_dump_reads_back_its_live_spans_in_batches_with_their_chunks() {
        use crate::buffer::payload_pool::{PayloadPool, PoolBacking};
        use crate::span::record::SpanView;
        let dir = temp_dir("roundtrip");
        let slab = SpanSlab::new(8, SlabBacking::Anonymous, 0).expect("slab");
        let pool = PayloadPool::new(16, PoolBacking::Anonymous).expect("pool");
        let long = vec![b'x'; 3 * CHUNK_BYTES];
        for n in 0..5u8 {
            let (i, g) = slab.take_free(|| {}).expect("slot");
            // SAFETY: take_free gave us the slot.
            let r = unsafe { slab.slot_mut(i) };
            r.reset();
            r.trace_id = [n + 1; 16];
            r.span_id = [n + 1; 8];
            r.start_unix_ns = 10;
            // One span's name runs past its arena into chunks of the pool.
            let name: &[u8] = if n == 1 { &long } else { b"short" };
            r.name = r.store_text(name, long.len(), &pool).0;
            if n < 3 {
                slab.publish_ended(i, g);
            } else {
                slab.publish_open(i, g);
            }
        }
        let crash = crash_file_in(&dir);
        crash.dump_slots(&slab, &pool, libc::SIGTERM);
        let mut reader = open(&dir.join("a")).expect("readable");
        assert_eq!(reader.header().service_name(), "svc");
        // The count written last, over the records of the one pass.
        assert_eq!(reader.header().record_count, 5);
        let first = reader.next_records(2).expect("read");
        let rest = reader.next_records(10).expect("read");
        assert!(reader.next_records(10).expect("read").is_empty());
        assert_eq!((first.len(), rest.len()), (2, 3));
        let all: Vec<_> = first.iter().chain(&rest).collect();
        let interrupted: Vec<_> = all
            .iter()
            .filter(|(r, _)| r.marks & MARK_INTERRUPTED != 0)
            .map(|(r, _)| (r.signal as i32, r.end_unix_ns))
            .collect();
        assert_eq!(interrupted, vec![(libc::SIGTERM, 42); 2]);
        let names: Vec<String> = all
            .iter()
            .map(|(r, chunks)| SpanView::from_disk(r, chunks).name().to_string_lossy())
            .collect();
        assert!(names.contains(&String::from_utf8(long.clone()).expect("ascii")));
        assert_eq!(names.iter().filter(|n| *n == "short").count(), 4);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A crash or a SIGKILL in the middle of `drop_oldest` (a bridge whose
    /// SDK evicted events): the dump made at any instant, between any two
    /// of its stores, reads back every event and link either in its list,
    /// in order, or counted dropped (one counted twice at most, until the
    /// next store), never neither.
    #[test]
    fn a_dump_between_any_two_stores_of_drop_oldest_loses_no_event_or_link() {
        use crate::buffer::payload_pool::{PayloadPool, PoolBacking};
        use crate::span::limits::SpanLimits;
        use crate::span::record::{ItemList, LinkContext, SpanView, UnlinkStore};
        let slab = SpanSlab::new(1, SlabBacking::Anonymous, 0).expect("slab");
        let pool = PayloadPool::new(16, PoolBacking::Anonymous).expect("pool");
        let (i, g) = slab.take_free(|| {}).expect("slot");
        // Names long enough that the later events live in the chunks.
        let event_name = |e: usize| format!("e{e}:{}", "x".repeat(1_000));
        let (events, links) = (4usize, 3usize);
        {
            // SAFETY: take_free gave us the slot.
            let r = unsafe { slab.slot_mut(i) };
            r.reset();
            r.trace_id = [1; 16];
            r.span_id = [1; 8];
            r.start_unix_ns = 10;
            let limits = SpanLimits::default();
            for e in 0..events {
                r.add_event(event_name(e).as_bytes(), 1, &[], &limits, &pool)
                    .expect("event");
            }
            for l in 0..links {
                let to = LinkContext {
                    trace_id: [2; 16],
                    span_id: [l as u8 + 1; 8],
                    trace_flags: 1,
                    remote: None,
                };
                r.add_link(to, b"", &[], &limits, &pool).expect("link");
            }
            assert!(r.rest().chunk_count > 0, "no event in the chunks");
        }
        slab.publish_open(i, g);

        let mut dumps = 0;
        // What a dump made now reads back: the events' names and the links'
        // first span id byte, and the two dropped counts.
        let mut read_back = || {
            dumps += 1;
            let dir = temp_dir(&format!("drop-oldest-{dumps}"));
            crash_file_in(&dir).dump_slots(&slab, &pool, libc::SIGKILL);
            let mut reader = open(&dir.join("a")).expect("readable");
            let mut spans = reader.next_records(10).expect("read");
            assert_eq!(spans.len(), 1);
            let (r, chunks) = spans.pop().expect("one span");
            let view = SpanView::from_disk(&r, &chunks);
            let names: Vec<String> = view.events().map(|e| e.name().to_string_lossy()).collect();
            let ids: Vec<u8> = view.links().map(|l| l.entry.span_id[0]).collect();
            std::fs::remove_dir_all(&dir).ok();
            (names, ids, r.rest().dropped_events, r.rest().dropped_links)
        };
        let check =
            |(names, ids, dropped_events, dropped_links): (Vec<String>, Vec<u8>, u16, u16),
             exact: bool| {
                let want_names: Vec<String> =
                    (events - names.len()..events).map(event_name).collect();
                assert_eq!(names, want_names, "not the last events, in order");
                let want_ids: Vec<u8> = (links - ids.len() + 1..=links).map(|l| l as u8).collect();
                assert_eq!(ids, want_ids, "not the last links, in order");
                let seen = (
                    names.len() + dropped_events as usize,
                    ids.len() + dropped_links as usize,
                );
                if exact {
                    assert_eq!(seen, (events, links), "present + dropped");
                } else {
                    let ok = |n: usize, total: usize| n == total || n == total + 1;
                    assert!(ok(seen.0, events) && ok(seen.1, links), "lost: {seen:?}");
                }
            };
        check(read_back(), true);
        // Every event (down to an empty list) and two of the links, one
        // store at a time, a dump after each.
        for (list, n) in [(ItemList::Events, events), (ItemList::Links, 2)] {
            for _ in 0..n {
                let next = slab
                    .slot(i)
                    .first_entry_next(list, &pool)
                    .expect("an entry");
                for step in UnlinkStore::IN_ORDER {
                    // SAFETY: the span is ours (open, written by this thread).
                    unsafe { slab.slot_mut(i) }.unlink_first_store(list, step, next);
                    check(read_back(), false);
                }
                check(read_back(), true);
            }
        }
        let (names, ids, dropped_events, dropped_links) = read_back();
        assert_eq!(
            (names.len(), ids, dropped_events, dropped_links),
            (0, vec![3], 4, 2)
        );
        let r = slab.slot(i);
        assert_eq!((r.events, r.event_count, r.link_count), ([0, 0], 0, 1));
    }

    #[test]
    fn the_batch_file_is_made_when_the_exporter_asks_and_removed_with_the_dump() {
        let dir = temp_dir("batch");
        let crash = crash_file_in(&dir);
        assert!(crash.batch().is_none() && !dir.join("b-pending").exists());
        crash.prepare_batch().expect("made");
        // Once: a second call keeps the file (and its lock) it made.
        crash.prepare_batch().expect("kept");
        assert!(crash.batch().is_some() && dir.join("b-pending").exists());
        crash.batch().expect("made").write_all(b"in flight");
        crash.batch().expect("made").publish();
        assert_eq!(
            std::fs::read(dir.join("b")).expect("published"),
            b"in flight"
        );
        crash.unpublish();
        assert!(dir.join("b-pending").exists() && !dir.join("b").exists());
        crash.remove();
        assert!(!dir.join("a-pending").exists() && !dir.join("b-pending").exists());
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A dump with no live span and no batch in flight (a SIGTERM after
    /// the last flush) published a header-only dump and left the empty
    /// batch file: two files a process, for every next start to open and
    /// delete. Now it leaves none, counts as done (no second dump), and a
    /// process that lives on gets both files back, locked, and a later
    /// dump with a span in them.
    #[test]
    fn a_dump_with_nothing_to_keep_leaves_no_file_and_a_thaw_makes_them_again() {
        use crate::buffer::payload_pool::{PayloadPool, PoolBacking};
        let dir = temp_dir("nothing-to-keep");
        let slab = SpanSlab::new(4, SlabBacking::Anonymous, 0).expect("slab");
        let pool = PayloadPool::new(4, PoolBacking::Anonymous).expect("pool");
        let crash = crash_file_in(&dir);
        crash.prepare_batch().expect("made");
        let names = |dir: &Path| {
            let mut n: Vec<String> = std::fs::read_dir(dir)
                .expect("dir")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            n.sort();
            n
        };
        assert_eq!(names(&dir), ["a-pending", "b-pending"]);
        assert!(crash.begin_dump());
        assert_eq!(crash.dump_slots(&slab, &pool, libc::SIGTERM), 0);
        crash.discard_unwritten_batch();
        crash.end_dump();
        assert!(names(&dir).is_empty(), "left {:?}", names(&dir));
        assert!(crash.is_on_disk() && !crash.begin_dump(), "dumped again");
        // The process lives on: both back, still locked against recovery.
        crash.unpublish();
        assert_eq!(names(&dir), ["a-pending", "b-pending"]);
        for name in ["a-pending", "b-pending"] {
            let other = std::fs::File::open(dir.join(name)).expect("open");
            assert!(!files::try_lock(&other), "{name} unlocked");
        }
        // The next dump has a span: published whole, the batch file empty.
        open_span_sevens(&slab);
        assert!(crash.begin_dump());
        assert_eq!(crash.dump_slots(&slab, &pool, libc::SIGTERM), 1);
        crash.discard_unwritten_batch();
        crash.end_dump();
        assert_eq!(names(&dir), ["a"]);
        let mut reader = open(&dir.join("a")).expect("readable");
        assert_eq!(reader.header().record_count, 1);
        assert_eq!(reader.next_records(10).expect("read").len(), 1);
        // Lives on again, then a clean shutdown: nothing left.
        crash.unpublish();
        crash.remove();
        assert!(names(&dir).is_empty(), "left {:?}", names(&dir));
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A dump with nothing to keep unlinks its files' names; a process that
    /// lives on makes them again under the same names. Something put at a
    /// name meanwhile (a link to another file, a file that is not ours)
    /// kept it from being made again, and the next dump, with a span,
    /// renamed that thing to the dump's name: our span stayed in the
    /// unlinked file (lost), and recovery got a link or a stranger's file
    /// as our dump. Now it is set aside unopened, the file made again in
    /// its place, never through it; the link's target is not touched.
    #[test]
    fn a_name_taken_while_the_dump_was_discarded_is_set_aside_not_published() {
        use crate::buffer::payload_pool::{PayloadPool, PoolBacking};
        let dir = temp_dir("taken-name");
        let victim_dir = temp_dir("taken-name-victim");
        let victim = victim_dir.join("victim");
        std::fs::write(&victim, b"not spanguard's").expect("victim");
        let slab = SpanSlab::new(4, SlabBacking::Anonymous, 0).expect("slab");
        let pool = PayloadPool::new(4, PoolBacking::Anonymous).expect("pool");
        let crash = crash_file_in(&dir);
        crash.prepare_batch().expect("made");
        assert!(crash.begin_dump());
        assert_eq!(crash.dump_slots(&slab, &pool, libc::SIGTERM), 0);
        crash.discard_unwritten_batch();
        crash.end_dump();
        // The names are free: a link to the victim at one, a file at the other.
        std::os::unix::fs::symlink(&victim, dir.join("a-pending")).expect("link");
        std::fs::write(dir.join("b-pending"), b"planted").expect("planted");
        crash.unpublish();
        for name in ["a-pending", "b-pending"] {
            let meta = std::fs::symlink_metadata(dir.join(name)).expect("made again");
            assert!(meta.is_file() && meta.len() == 0, "{name}: {meta:?}");
            let other = std::fs::File::open(dir.join(name)).expect("open");
            assert!(!files::try_lock(&other), "{name} unlocked");
            let aside = dir.join(format!("{name}{}", files::SET_ASIDE_SUFFIX));
            assert!(
                std::fs::symlink_metadata(&aside).is_ok(),
                "{name} not set aside"
            );
        }
        // A dump with a span goes into the file made again, under our name.
        open_span_sevens(&slab);
        assert!(crash.begin_dump());
        assert_eq!(crash.dump_slots(&slab, &pool, libc::SIGTERM), 1);
        crash.end_dump();
        let published = std::fs::symlink_metadata(dir.join("a")).expect("published");
        assert!(published.is_file(), "the dump's name is {published:?}");
        let mut reader = open(&dir.join("a")).expect("readable");
        assert_eq!(reader.next_records(10).expect("read").len(), 1);
        assert_eq!(std::fs::read(&victim).expect("victim"), b"not spanguard's");
        std::fs::remove_dir_all(&dir).ok();
        std::fs::remove_dir_all(&victim_dir).ok();
    }

    /// A file made again after a discarded dump (the process lived on)
    /// stays close-on-exec, as every descriptor of ours: a program the host
    /// starts afterwards (posix_spawn, fork and exec: no fork handler runs
    /// there past exec) must not get it, or it shares the file's lock and
    /// keeps the dump from being recovered after this process dies, for as
    /// long as that program lives. `dup2` gave the number a descriptor
    /// without the flag.
    ///
    /// Judged by the program's own descriptors (/proc/PID/fd), once it
    /// runs, then by the lock: the lock alone is also held, for a moment,
    /// by any child another test of this process forks meanwhile (between
    /// its fork and its exec, or a child that runs fork handlers and waits
    /// to be killed), and under load that moment failed the test once.
    #[test]
    fn a_file_made_again_is_not_inherited_by_a_program_started_later() {
        use std::os::unix::fs::MetadataExt;
        let dir = temp_dir("made-again-cloexec");
        let pending = dir.join("x-pending");
        let file = PreparedFile::create(&pending, &dir.join("x")).expect("made");
        file.discard();
        file.unpublish();
        assert!(pending.exists(), "not made again");
        let made = std::fs::metadata(&pending).expect("made again");
        // Looked at once the program has said a line: then its exec is
        // done, and what it holds now it holds for as long as it lives.
        // Spawn's return is too early: the kernel lets the parent of a
        // vfork (posix_spawn's) go on as the exec drops the old memory,
        // before it closes the close-on-exec descriptors, so a look right
        // after it could find ours there for a moment under load. (`exec`:
        // the shell becomes the sleep, one process to kill.)
        let mut child = std::process::Command::new("sh")
            .args(["-c", "echo started && exec sleep 3600"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start a program");
        let said = child.stdout.take().expect("its stdout");
        let fds = std::path::PathBuf::from(format!("/proc/{}/fd", child.id()));
        let _child = KilledOnDrop(child);
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(said), &mut line)
            .expect("the program's first line");
        assert_eq!(line, "started\n", "the program did not start");
        let held: Vec<_> = std::fs::read_dir(&fds)
            .expect("the program's descriptors")
            .filter_map(|e| e.ok())
            .filter(|e| {
                std::fs::metadata(e.path())
                    .is_ok_and(|m| m.dev() == made.dev() && m.ino() == made.ino())
            })
            .map(|e| e.file_name())
            .collect();
        assert!(
            held.is_empty(),
            "a program started after the thaw holds the dump file as descriptor {held:?}"
        );
        // This process lets the file go (as a tracer that died would): the
        // lock comes free once no other test's fork holds it for a moment.
        drop(file);
        let other = std::fs::File::open(&pending).expect("open");
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !files::try_lock(&other) {
            assert!(
                std::time::Instant::now() < until,
                "the dump's lock stayed held after this process let it go"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A child process killed when the test ends, pass or fail.
    struct KilledOnDrop(std::process::Child);

    impl Drop for KilledOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A file discarded and not made again (`make_again` failed) has no
    /// name of ours: a dump into it must not rename what sits at the name
    /// now.
    #[test]
    fn a_discarded_file_not_made_again_publishes_nothing_under_its_name() {
        let dir = temp_dir("discarded-publish");
        let file = PreparedFile::create(&dir.join("x-pending"), &dir.join("x")).expect("made");
        file.discard();
        std::os::unix::fs::symlink("/etc/hostname", dir.join("x-pending")).expect("link");
        file.write_all(b"spans");
        file.publish();
        assert!(
            std::fs::symlink_metadata(dir.join("x")).is_err(),
            "published what sat at the pending name"
        );
        assert!(std::fs::symlink_metadata(dir.join("x-pending")).is_ok());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn another_versions_dump_and_a_wrong_record_size_are_unreadable() {
        let dir = temp_dir("versions");
        let old = dir.join("old.sgdump");
        let mut bytes = header_bytes(*b"SGDUMP01", 1);
        bytes.extend(vec![7u8; 4096]);
        // (A header of the previous layout is shorter; the magic decides first.)
        std::fs::write(&old, &bytes).expect("write");
        match open(&old) {
            Err(DumpError::Unreadable(why)) => assert!(why.contains("another version"), "{why}"),
            _ => panic!("an SGDUMP01 file was taken for ours"),
        }
        let mut h = DumpHeader::new(MAGIC_CRASH_DUMP, 1, "svc", &[]);
        h.record_size += 8;
        let sized = dir.join("sized.sgdump");
        std::fs::write(&sized, h.as_bytes()).expect("write");
        assert!(matches!(open(&sized), Err(DumpError::Unreadable(_))));
        let empty = dir.join("empty.sgdump-pending");
        std::fs::write(&empty, b"").expect("write");
        assert!(matches!(open(&empty), Err(DumpError::Empty)));
        let short = dir.join("short.sgdump");
        std::fs::write(&short, MAGIC_CRASH_DUMP).expect("write");
        assert!(matches!(open(&short), Err(DumpError::Unreadable(_))));
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A gigabyte of sparse file behind a valid header whose count says
    /// "read to the end", and a header that claims millions of records
    /// over a short file: neither is read whole nor held in memory.
    #[test]
    fn reads_are_bounded_by_the_header_and_the_real_size() {
        let dir = temp_dir("bounded");
        let sparse = dir.join("sparse.sgdump");
        std::fs::write(&sparse, header_bytes(MAGIC_CRASH_DUMP, 0)).expect("write");
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&sparse)
            .expect("open");
        f.set_len(1 << 30).expect("sparse");
        drop(f);
        let mut reader = open(&sparse).expect("readable");
        assert!(reader.next_records(512).expect("read").is_empty());
        let lying = dir.join("lying.sgflight");
        let mut bytes = header_bytes(MAGIC_FLIGHT, crate::span::limits::MAX_SLOTS);
        bytes.resize(bytes.len() + 100, 0);
        std::fs::write(&lying, &bytes).expect("write");
        let mut reader = open(&lying).expect("readable");
        assert!(reader.next_records(512).expect("read").is_empty());
        let mut h = DumpHeader::new(MAGIC_FLIGHT, 0, "svc", &[]);
        h.record_count = u32::MAX;
        let absurd = dir.join("absurd.sgflight");
        std::fs::write(&absurd, h.as_bytes()).expect("write");
        assert!(matches!(open(&absurd), Err(DumpError::Unreadable(_))));
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A flight file's open spans end at the later of the time its
    /// process last noted it was alive and the time the caller gives (its
    /// modification time), never later than now; a crash dump's, which
    /// has no such note, at the caller's.
    #[test]
    fn a_flight_files_open_spans_end_when_it_was_last_known_alive() {
        let dir = temp_dir("alive-at");
        let now = crate::span::clock::now_unix_ns();
        let with_alive = |name: &str, magic, alive: u64| {
            let path = dir.join(name);
            let mut bytes = header_bytes(magic, 1);
            bytes.resize(FLIGHT_ALIVE_AT.next_multiple_of(64), 0);
            bytes[FLIGHT_ALIVE_AT..FLIGHT_ALIVE_AT + 8].copy_from_slice(&alive.to_ne_bytes());
            std::fs::write(&path, &bytes).expect("write");
            DumpReader::open(std::fs::File::open(&path).expect("open"), 1_000)
                .expect("readable")
                .died_at_ns()
        };
        assert_eq!(with_alive("later.sgflight", MAGIC_FLIGHT, 5_000), 5_000);
        assert_eq!(with_alive("earlier.sgflight", MAGIC_FLIGHT, 500), 1_000);
        assert_eq!(with_alive("never.sgflight", MAGIC_FLIGHT, 0), 1_000);
        let future = with_alive("future.sgflight", MAGIC_FLIGHT, u64::MAX);
        assert!(future >= now && future < u64::MAX, "{future}");
        assert_eq!(with_alive("dump.sgdump", MAGIC_CRASH_DUMP, 5_000), 1_000);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The note goes to the flight file's padding, read back as a reader
    /// finds it; a slab with no file header before its slots (no flight
    /// recorder) is left as it was, its first slot untouched.
    #[test]
    fn alive_is_noted_in_the_flight_files_padding_only() {
        use crate::buffer::slab::SlabBacking;
        let dir = temp_dir("note-alive");
        let path = dir.join("f.sgflight");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .expect("create");
        let prefix = std::mem::size_of::<DumpHeader>();
        let flight = SpanSlab::new(4, SlabBacking::File(file), prefix).expect("map");
        let before = crate::span::clock::now_unix_ns();
        note_alive(&flight);
        let read = std::fs::File::open(&path).expect("open");
        let size = read.metadata().expect("meta").len();
        let noted = alive_at(&read, size);
        assert!(
            noted >= before && noted <= crate::span::clock::now_unix_ns(),
            "{noted}"
        );
        let anonymous = SpanSlab::new(4, SlabBacking::Anonymous, 0).expect("map");
        open_span_sevens(&anonymous);
        note_alive(&anonymous);
        // SAFETY: the slab's mapping holds at least one whole slot.
        let first = unsafe { &*anonymous.mapping_start().cast::<SpanRecord>() };
        assert_eq!((first.trace_id, first.span_id), ([7; 16], [7; 8]));
        std::fs::remove_dir_all(&dir).ok();
    }

    /// `spanguard show` run by root on a user's spool: their dump is read
    /// (it was "not a readable crash dump" for being theirs, not root's).
    #[test]
    fn a_look_at_another_users_dump_reads_it() {
        // SAFETY: geteuid cannot fail and has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return; // only root can give files away
        }
        let dir = temp_dir("look-theirs");
        let dump = dir.join("theirs.sgdump");
        std::fs::write(&dump, header_bytes(MAGIC_CRASH_DUMP, 0)).expect("write");
        for p in [&dump, &dir] {
            std::os::unix::fs::chown(p, Some(4242), Some(4242)).expect("chown");
        }
        let read = read_file(&dump, 42, u64::MAX).expect("their dump, read");
        assert_eq!(read.header.service_name(), "svc");
        std::os::unix::fs::chown(&dump, Some(4343), None).expect("chown");
        assert!(
            read_file(&dump, 42, u64::MAX).is_none(),
            "a stranger's file in their spool"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
