//! Crash dumps and flight files read for a person to look at (`spanguard
//! show`, `spanguard spool`), without claiming, locking or deleting them:
//! the spans they hold exactly as the exporter would send them, through
//! the library's own dump reader and OTLP encoder, then decoded.

use std::fs::File;
use std::path::Path;

use super::otlp_decode::{DecodedSpan, decode_proto};
use super::otlp_proto::OtlpProtoEncoder;
use super::resource::ResourceInfo;
use crate::buffer::dump::{Recovered, read_file, read_opened};
use crate::span::record::{MARK_INTERRUPTED, MARK_NON_RECORDING, SpanView};

/// What a dump or flight file holds.
pub struct DumpView {
    /// The pid of the process that wrote it.
    pub pid: u32,
    /// The signal it died of, 0 if unknown (SIGKILL leaves 0).
    pub signal: i32,
    /// Its spans; open ones ended at `died_at_ns` and marked
    /// `spanguard.interrupted`.
    pub spans: Vec<DecodedSpan>,
    /// Of `spans`: those marked interrupted (open when it died).
    pub open: u64,
}

/// Reads a crash dump or flight file. None when it is not one (or its
/// header is torn), or is over `max_bytes` (`dump::largest_file` of the
/// tracers that may have written it: callers say so first).
pub fn read_dump(path: &Path, died_at_ns: u64, max_bytes: u64) -> Option<DumpView> {
    view_of(read_file(path, died_at_ns, max_bytes)?)
}

/// `read_dump` of a file the caller opened (`files::open_found_to_look`)
/// and judges by its descriptor: its lock's holder and the modification
/// time it gives as `died_at_ns` read from the file read, not from its
/// name, which may name another file by then.
pub fn read_dump_opened(file: File, died_at_ns: u64, max_bytes: u64) -> Option<DumpView> {
    view_of(read_opened(file, died_at_ns, max_bytes)?)
}

/// What the crash dump or flight file at `path` tells of the death of the
/// process that wrote it (`outcome::Death`: the signal it names, its time,
/// its spans), with that process's pid; read as `read_dump_opened` reads
/// one (`files::open_found_to_look`), nothing claimed, locked or changed.
pub fn death_in(path: &Path, max_bytes: u64) -> Option<(u32, super::outcome::Death)> {
    let file = crate::buffer::files::open_found_to_look(path).ok()?;
    let died_at_ns = file
        .metadata()
        .ok()?
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos() as u64;
    let view = read_dump_opened(file, died_at_ns, max_bytes)?;
    let death = super::outcome::Death {
        signal: view.signal,
        at_unix_s: died_at_ns / 1_000_000_000,
        open: view.open,
        spans: view.spans.len() as u64,
    };
    Some((view.pid, death))
}

fn view_of(recovered: Recovered) -> Option<DumpView> {
    let header = &recovered.header;
    let resource = ResourceInfo::new(&header.service_name(), &header.resource_attributes());
    // Unsampled spans are never exported; a dump keeps them for their ids.
    let records: Vec<SpanView> = recovered
        .records
        .iter()
        .filter(|(r, _)| r.marks & MARK_NON_RECORDING == 0)
        .map(|(r, overflow)| SpanView::from_disk(r, overflow))
        .collect();
    let open = recovered
        .records
        .iter()
        .filter(|(r, _)| r.marks & (MARK_NON_RECORDING | MARK_INTERRUPTED) == MARK_INTERRUPTED)
        .count() as u64;
    let mut body = Vec::new();
    let mut spans = Vec::new();
    // A batch at a time, as the exporter encodes them.
    for chunk in records.chunks(512) {
        OtlpProtoEncoder::new().encode(&resource, chunk, &mut body);
        spans.extend(decode_proto(&body).ok()?);
    }
    Some(DumpView {
        pid: header.pid,
        signal: header.signal,
        spans,
        open,
    })
}
