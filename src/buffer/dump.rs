//! Span records on disk, for the crash dump and the flight recorder: a fixed
//! header that says whose spans they are, then raw `SpanRecord` slots exactly
//! as they sit in memory. Writing is a plain `write(2)` (async-signal-safe);
//! reading checks everything, because the writer may have died mid-way.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::Ordering;

use crate::buffer::slab::{
    STATE_ENDED, STATE_EXPORTING, STATE_OPEN, STATE_WRITING, SpanSlab, header_state,
};
use crate::span::record::{MARK_INTERRUPTED, SpanRecord};

pub(crate) const MAGIC_CRASH_DUMP: [u8; 8] = *b"SGDUMP02";
pub(crate) const MAGIC_FLIGHT: [u8; 8] = *b"SGFLITE2";
pub(crate) const RESOURCE_TEXT_BYTES: usize = 1024;
pub(crate) const SERVICE_NAME_BYTES: usize = 256;

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
            service_name: [0; SERVICE_NAME_BYTES],
            resource_text: [0; RESOURCE_TEXT_BYTES],
        };
        let name = &service_name.as_bytes()[..service_name.len().min(SERVICE_NAME_BYTES)];
        h.service_name[..name.len()].copy_from_slice(name);
        h.service_name_len = name.len() as u32;
        // Whole entries, in the order given (the most telling first), as
        // many as fit: a long one (an executable's path) that does not fit
        // is left out rather than cut or taking the rest with it.
        let mut text = String::new();
        for (k, v) in resource {
            let entry = format!("{}={}", percent_encode(k), percent_encode(v));
            let sep = usize::from(!text.is_empty());
            if text.len() + sep + entry.len() <= RESOURCE_TEXT_BYTES {
                if sep == 1 {
                    text.push(',');
                }
                text.push_str(&entry);
            }
        }
        h.resource_text[..text.len()].copy_from_slice(text.as_bytes());
        h.resource_text_len = text.len() as u32;
        h
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

    pub fn service_name(&self) -> String {
        let n = (self.service_name_len as usize).min(SERVICE_NAME_BYTES);
        String::from_utf8_lossy(&self.service_name[..n]).into_owned()
    }

    pub fn resource_attributes(&self) -> Vec<(String, String)> {
        let n = (self.resource_text_len as usize).min(RESOURCE_TEXT_BYTES);
        crate::config::parse_key_values(&String::from_utf8_lossy(&self.resource_text[..n]))
            .unwrap_or_default()
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b',' | b'=' | b'%' => format!("%{b:02X}"),
            _ => (b as char).to_string(),
        })
        .collect::<String>()
}

/// A file made ahead of time, empty and locked under a pending name, so
/// that a signal handler can fill it with write(2) and publish it with
/// rename(2): nothing that allocates, locks or formats. The lock is held
/// while the process lives, so recovery leaves a live owner's file alone.
pub struct PreparedFile {
    fd: OwnedFd,
    pending: CString,
    done: CString,
}

impl PreparedFile {
    /// Creates `pending` (which must not exist) to be renamed to `done`.
    pub fn create(pending: &Path, done: &Path) -> std::io::Result<PreparedFile> {
        let to_c = |p: &Path| {
            CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in spool path")
            })
        };
        let (pending_c, done_c) = (to_c(pending)?, to_c(done)?);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(pending)?;
        // SAFETY: flock on our own fd; held until the fd is closed.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        Ok(PreparedFile {
            fd: file.into(),
            pending: pending_c,
            done: done_c,
        })
    }

    /// Async-signal-safe: writes all of `bytes` (retrying on EINTR), or
    /// stops at the first error.
    pub fn write_all(&self, mut bytes: &[u8]) {
        let fd = self.fd.as_raw_fd();
        while !bytes.is_empty() {
            // SAFETY: write from a valid slice to our own fd.
            let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
            if n <= 0 {
                // SAFETY: reading this thread's errno.
                if n < 0 && unsafe { *libc::__errno_location() } == libc::EINTR {
                    continue;
                }
                return;
            }
            bytes = &bytes[n as usize..];
        }
    }

    /// Async-signal-safe: makes what was written durable and gives the
    /// file its final name.
    pub fn publish(&self) {
        // SAFETY: fsync and rename of our own fd and NUL-terminated paths;
        // both are async-signal-safe.
        unsafe {
            libc::fsync(self.fd.as_raw_fd());
            libc::rename(self.pending.as_ptr(), self.done.as_ptr());
        }
    }

    /// Deletes the (unused) file at a clean shutdown.
    pub fn remove(&self) {
        // SAFETY: a NUL-terminated path we own.
        unsafe { libc::unlink(self.pending.as_ptr()) };
    }
}

/// A tracer's crash files, made at start: `slots` receives the header and
/// every live slot, `batch` the encoded batch in flight (whose slots are
/// free already) in whatever form its writer gives it.
pub struct CrashFile {
    pub slots: PreparedFile,
    pub batch: PreparedFile,
    header: DumpHeader,
}

impl CrashFile {
    pub fn new(slots: PreparedFile, batch: PreparedFile, header: DumpHeader) -> CrashFile {
        CrashFile {
            slots,
            batch,
            header,
        }
    }

    /// Async-signal-safe: writes the header and every live slot of `slab`,
    /// then publishes the file.
    pub fn dump_slots(&self, slab: &SpanSlab, signal: libc::c_int) {
        let mut header = self.header;
        header.signal = signal;
        header.record_count = (0..slab.capacity())
            .filter(|&i| slot_is_live(slab.slot(i)))
            .count() as u32;
        self.slots.write_all(header.as_bytes());
        for i in 0..slab.capacity() {
            let r = slab.slot(i);
            if slot_is_live(r) {
                // SAFETY: the slot is plain memory of the live mapping.
                let bytes = unsafe {
                    std::slice::from_raw_parts(
                        (r as *const SpanRecord).cast::<u8>(),
                        std::mem::size_of_val(r),
                    )
                };
                self.slots.write_all(bytes);
            }
        }
        self.slots.publish();
    }

    /// Removes both (empty) files at a clean shutdown.
    pub fn remove(&self) {
        self.slots.remove();
        self.batch.remove();
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

/// The spans a dump or flight file holds, ready to encode: ended ones as
/// they were; open ones ended at `died_at_ns` and marked interrupted.
pub struct Recovered {
    pub header: DumpHeader,
    pub records: Vec<Box<SpanRecord>>,
}

/// Reads a crash dump or flight file. None if it is not one of ours or its
/// header is torn. Torn records are skipped.
pub fn read_file(path: &Path, died_at_ns: u64) -> Option<Recovered> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    let hsize = std::mem::size_of::<DumpHeader>();
    if bytes.len() < hsize {
        return None;
    }
    // SAFETY: DumpHeader is plain data; any bytes are a value of it; read
    // unaligned from the buffer.
    let header: DumpHeader = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    if header.magic != MAGIC_CRASH_DUMP && header.magic != MAGIC_FLIGHT {
        return None;
    }
    let rsize = std::mem::size_of::<SpanRecord>();
    if header.record_size as usize != rsize {
        return None;
    }
    // The flight recorder aligns its records to 64 bytes after the header.
    let start = if header.magic == MAGIC_FLIGHT {
        hsize.next_multiple_of(64)
    } else {
        hsize
    };
    let mut records = Vec::new();
    let mut offset = start;
    while offset + rsize <= bytes.len() {
        // SAFETY: SpanRecord is repr(C) plain data plus an AtomicU64, for
        // which any bit pattern is valid; zeroed then overwritten bytewise.
        let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
        // SAFETY: copies rsize bytes into the record's own storage.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr().add(offset),
                (&mut *r as *mut SpanRecord).cast::<u8>(),
                rsize,
            )
        };
        offset += rsize;
        let state = header_state(r.header.load(Ordering::Relaxed));
        if !matches!(
            state,
            STATE_OPEN | STATE_WRITING | STATE_ENDED | STATE_EXPORTING
        ) {
            continue;
        }
        if r.span_id == [0; 8] || r.trace_id == [0; 16] {
            continue; // torn: begin had not filled it in
        }
        sanitize(&mut r);
        if matches!(state, STATE_OPEN | STATE_WRITING) {
            r.marks |= MARK_INTERRUPTED;
            r.signal = header.signal;
            r.end_unix_ns = died_at_ns.max(r.start_unix_ns);
        }
        records.push(r);
    }
    Some(Recovered { header, records })
}

/// Clamps counts and text references of a record read from disk so that an
/// encoder can trust them.
fn sanitize(r: &mut SpanRecord) {
    use crate::span::limits::*;
    r.attribute_count = r.attribute_count.min(MAX_ATTRIBUTES as u16);
    r.event_count = r.event_count.min(MAX_EVENTS as u16);
    r.link_count = r.link_count.min(MAX_LINKS as u16);
    r.arena_used = r.arena_used.min(ARENA_BYTES as u16);
    r.kind = r.kind.min(5);
    r.status_code = r.status_code.min(2);
    // `SpanRecord::text` already bounds every TextRef by the arena.
}
