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

use super::spool::{self, SUFFIX};

const DUMP: &str = ".sgdump";
const DUMP_PENDING: &str = ".sgdump-pending";
const SPOOL_PENDING: &str = ".sgspool-pending";
const FLIGHT: &str = ".sgflight";

/// Files in `dir` that a dead process may have left, oldest first.
pub fn leftover_files(dir: &Path, own: &[&Path]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                // Lossily, as the spool's batches are listed.
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default();
                !name.starts_with('.')
                    && [DUMP, DUMP_PENDING, SPOOL_PENDING, FLIGHT]
                        .iter()
                        .any(|s| name.ends_with(s))
            })
            .filter(|p| !own.contains(&p.as_path()))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
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

/// Locks one leftover file and looks at what it holds.
pub fn claim(path: &Path, spool_max_bytes: u64) -> Claim {
    let file = match files::open_found(path, false) {
        Ok(f) => f,
        Err(Refusal::Foreign(why)) => return Claim::Foreign(why),
        Err(Refusal::Gone) | Err(Refusal::Failed(_)) => return Claim::Skip,
    };
    // A second descriptor of the same open file (so, the same lock) to
    // read with, itself known to the fork handler.
    let reader = match file.try_clone() {
        Ok(f) => f,
        Err(_) => return Claim::Skip,
    };
    let (lock, locked) = LockedFile::lock(file);
    if !locked {
        return Claim::Busy;
    }
    let (reader, _) = LockedFile::lock(reader);
    let Ok(meta) = lock.file().metadata() else {
        return Claim::Skip;
    };
    if std::os::unix::fs::MetadataExt::nlink(&meta) == 0 {
        return Claim::Skip; // recovered and deleted by another process meanwhile
    }
    // Lossily, as `leftover_files` listed it.
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let content =
        if name.ends_with(SPOOL_PENDING) {
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
    })
}

/// What one look at the spool directory recovered.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Each dump or flight file read, with the spans sent (or kept in the
    /// spool) from it.
    pub files: Vec<(PathBuf, u64)>,
    /// An unpublished in-flight batch was moved into the spool: replay it.
    pub spool_batches: bool,
}

/// Sends what dead processes left in `dir` (dumps and flight files, a batch
/// of `batch` spans at a time, through `delivery`, which spools what it
/// cannot send), moves whole unpublished batches into the spool, deletes
/// what held nothing and sets aside what cannot be read (noted in the
/// spool for its owner to report). Files a live process holds are left for
/// a later look. Lengths are bounded by the spool's read limit. The exporter and
/// `spanguard replay` both recover through this.
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
    spool.remove_dead_temp_files();
    for path in leftover_files(dir, own) {
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
                let read_whole = loop {
                    match reader.next_records(batch) {
                        Ok(records) if records.is_empty() => break true,
                        Ok(records) => {
                            let part = crate::buffer::dump::Recovered { header, records };
                            spans += part
                                .records
                                .iter()
                                .filter(|(r, _)| super::delivery::is_recording(r))
                                .count() as u64;
                            delivery.deliver_recovered(&part, encoder, host);
                        }
                        Err(e) => {
                            // What was read is sent; the rest stays on disk
                            // for a person, never sent twice.
                            spool.put_aside(&path, &format!("reading failed: {e:?}"));
                            break false;
                        }
                    }
                };
                done.files.push((path.clone(), spans));
                // Deleted while still locked, so no one else sends it.
                if read_whole {
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
        assert_eq!(leftover_files(&dir, &[]), planted);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
