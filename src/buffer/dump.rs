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
//!   through its chunk map, as in memory.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::Ordering;

use crate::buffer::payload_pool::PayloadPool;
use crate::buffer::slab::{
    STATE_ENDED, STATE_EXPORTING, STATE_OPEN, STATE_WRITING, SpanSlab, header_state,
};
use crate::span::limits::CHUNK_BYTES;
use crate::span::record::{
    ChunkStore, MARK_INTERRUPTED, OverflowSource, OwnedOverflow, SpanRecord, StoreSource,
};

pub(crate) const MAGIC_CRASH_DUMP: [u8; 8] = *b"SGDUMP03";
pub(crate) const MAGIC_FLIGHT: [u8; 8] = *b"SGFLITE3";
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

    /// Async-signal-safe: writes the header and every live slot of `slab`
    /// with its chunks from `pool`, then publishes the file.
    pub fn dump_slots(&self, slab: &SpanSlab, pool: &PayloadPool, signal: libc::c_int) {
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
                // The count the chunks below match: read once, as the slot
                // may still be written by a thread the signal did not stop.
                // SAFETY: a plain u32 of the live mapping.
                let chunks = unsafe { std::ptr::read_volatile(&r.chunk_count) };
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
        self.slots.publish();
    }

    /// Removes both (empty) files at a clean shutdown.
    pub fn remove(&self) {
        self.slots.remove();
        self.batch.remove();
    }
}

const CHUNK_COUNT_AT: usize = std::mem::offset_of!(SpanRecord, chunk_count);

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
/// they were; open ones ended at `died_at_ns` and marked interrupted. Each
/// comes with its chunks, copied out in order.
pub struct Recovered {
    pub header: DumpHeader,
    pub records: Vec<(Box<SpanRecord>, OwnedOverflow)>,
}

/// The chunks of a flight file's pool region, as a store the chunk map
/// resolves through (reading only; bounded by the file).
struct FileChunks<'a> {
    pool: &'a [u8],
}

impl ChunkStore for FileChunks<'_> {
    fn take_chunk(&self) -> Option<u32> {
        None
    }

    fn chunk_ptr(&self, index: u32) -> Option<std::ptr::NonNull<u8>> {
        let start = (index as usize).checked_mul(CHUNK_BYTES)?;
        let chunk = self.pool.get(start..start.checked_add(CHUNK_BYTES)?)?;
        // Read only: ChunkStore's pointer is mutable for the writer's sake.
        std::ptr::NonNull::new(chunk.as_ptr() as *mut u8)
    }
}

/// Reads a crash dump or flight file. None if it is not one of ours or its
/// header is torn. Torn records are skipped; a record's chunks are bounded
/// by what the file holds.
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
    if header.record_size as usize != rsize || header.chunk_size as usize != CHUNK_BYTES {
        return None;
    }
    let flight = header.magic == MAGIC_FLIGHT;
    // The flight recorder aligns its records to 64 bytes after the header,
    // and its pool region follows them.
    let (start, records_end) = if flight {
        let start = hsize.next_multiple_of(64);
        let end = start
            .saturating_add((header.record_count as usize).saturating_mul(rsize))
            .min(bytes.len());
        (start, end)
    } else {
        (hsize, bytes.len())
    };
    let pool_region: &[u8] = if flight {
        let from = (header.pool_offset as usize).min(bytes.len());
        let len = (header.pool_chunks as usize).saturating_mul(CHUNK_BYTES);
        &bytes[from..from.saturating_add(len).min(bytes.len())]
    } else {
        &[]
    };
    let mut records = Vec::new();
    let mut offset = start;
    while offset + rsize <= records_end {
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
        let overflow = if flight {
            // Through the chunk map, bounded by the pool region.
            let store = FileChunks { pool: pool_region };
            let src = StoreSource(&store);
            let mut copied = Vec::new();
            let count = r.chunk_count.min(header.pool_chunks);
            let mut kept = 0;
            for ordinal in 0..count {
                match src.chunk(&r, ordinal) {
                    Some(chunk) => copied.extend_from_slice(chunk),
                    None => break,
                }
                kept += 1;
            }
            r.chunk_count = kept;
            copied
        } else {
            // Right after the record, as many as the file holds.
            let available = (bytes.len() - offset) / CHUNK_BYTES;
            let count = (r.chunk_count as usize).min(available);
            let copied = bytes[offset..offset + count * CHUNK_BYTES].to_vec();
            offset += (r.chunk_count as usize).min(available) * CHUNK_BYTES;
            r.chunk_count = count as u32;
            copied
        };
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
        records.push((r, OwnedOverflow(overflow)));
    }
    Some(Recovered { header, records })
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
