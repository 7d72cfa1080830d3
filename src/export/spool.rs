//! The disk spool: batches that could not be delivered wait here, one file
//! per batch, until a later export (or `spanguard replay`) sends them.
//!
//! A file is `SGSPOOL1` + format (1 byte: 0 protobuf, 1 JSON) + gzipped
//! (1 byte) + span count (u32 LE) + body length (u64 LE) + the request body
//! exactly as it would be sent. Files are written crash-consistently (temp
//! name, fsync, rename, fsync of the directory) and named so that sorting
//! by name is oldest first across processes. A replayer holds an exclusive
//! flock on a file from before sending until after deleting it, so two
//! processes sharing the spool never send one batch twice.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::transport::BodyFormat;

const MAGIC: &[u8; 8] = b"SGSPOOL1";
pub(crate) const HEADER_LEN: usize = 8 + 1 + 1 + 4 + 8;
pub(crate) const SUFFIX: &str = ".sgspool";

/// A spool file name: the time first, so names sort oldest first across
/// processes, then the pid and a tag that makes it unique.
pub fn spool_file_name(tag: &str) -> String {
    format!(
        "{:020}-{:010}-{tag}{SUFFIX}",
        crate::span::clock::now_unix_ns(),
        std::process::id()
    )
}

/// The fixed header in front of a spooled body.
pub fn encode_header(
    format: BodyFormat,
    gzipped: bool,
    spans: u32,
    body_len: usize,
) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(MAGIC);
    header[8] = match format {
        BodyFormat::Protobuf => 0,
        BodyFormat::Json => 1,
    };
    header[9] = gzipped as u8;
    header[10..14].copy_from_slice(&spans.to_le_bytes());
    header[14..22].copy_from_slice(&(body_len as u64).to_le_bytes());
    header
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// One spooled batch, read back.
#[derive(Debug, PartialEq, Eq)]
pub struct SpooledBatch {
    pub format: BodyFormat,
    pub gzipped: bool,
    pub spans: u32,
    pub body: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct SpoolDir {
    dir: PathBuf,
    max_bytes: u64,
}

/// What making room cost.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Eviction {
    pub files: u64,
    pub spans: u64,
}

impl SpoolDir {
    pub fn new(dir: &Path, max_bytes: u64) -> SpoolDir {
        SpoolDir {
            dir: dir.to_path_buf(),
            max_bytes,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Spool files, oldest first.
    pub fn list(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = match fs::read_dir(&self.dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.ends_with(SUFFIX))
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        files
    }

    /// Bytes the spool holds now.
    pub fn total_bytes(&self) -> u64 {
        self.list()
            .iter()
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Writes one batch, then deletes the oldest files while the spool is over
    /// its cap (never the file just written unless it alone is over the cap,
    /// in which case it is not kept). Returns what eviction cost.
    pub fn write(&self, batch: &SpooledBatch) -> io::Result<Eviction> {
        let (path, _unlocked) =
            self.write_file(batch.format, batch.gzipped, batch.spans, &batch.body, true)?;
        Ok(self.evict_over_cap(&path))
    }

    /// Writes a batch that is about to be sent (the flight recorder's
    /// journal): not fsynced, since it only has to survive the process, not
    /// the machine, and deleted by `forget` once the backend accepted it.
    /// The file is locked while the returned handle lives, so no replayer
    /// (in this process or another) sends it while it is in flight.
    pub fn write_journal(
        &self,
        format: BodyFormat,
        gzipped: bool,
        spans: u32,
        body: &[u8],
    ) -> io::Result<Journal> {
        let (path, file) = self.write_file(format, gzipped, spans, body, false)?;
        Ok(Journal { path, _lock: file })
    }

    /// Deletes a journal file whose batch was delivered.
    pub fn forget(&self, journal: Journal) {
        let _ = fs::remove_file(&journal.path);
    }

    /// Counts eviction for a file already in the spool (a journal file kept
    /// because its batch failed).
    pub fn keep(&self, path: &Path) -> Eviction {
        self.evict_over_cap(path)
    }

    /// Writes a spool file; the returned handle holds an exclusive lock on it.
    fn write_file(
        &self,
        format: BodyFormat,
        gzipped: bool,
        spans: u32,
        body: &[u8],
        sync: bool,
    ) -> io::Result<(PathBuf, File)> {
        let size = (HEADER_LEN + body.len()) as u64;
        if size > self.max_bytes {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "batch larger than the spool cap",
            ));
        }
        fs::create_dir_all(&self.dir)?;
        let name = spool_file_name(&format!(
            "{:06}",
            SEQUENCE.fetch_add(1, Ordering::Relaxed) % 1_000_000
        ));
        let tmp = self.dir.join(format!(".tmp-{name}"));
        let path = self.dir.join(&name);
        let header = encode_header(format, gzipped, spans, body.len());
        let result = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            // Locked before it gets its visible name.
            try_lock(&f);
            f.write_all(&header)?;
            f.write_all(body)?;
            if sync {
                f.sync_all()?;
            }
            fs::rename(&tmp, &path)?;
            if sync {
                File::open(&self.dir)?.sync_all()?;
            }
            Ok(f)
        })();
        match result {
            Ok(f) => Ok((path, f)),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    fn evict_over_cap(&self, keep: &Path) -> Eviction {
        let mut eviction = Eviction::default();
        let files = self.list();
        let mut total: u64 = files
            .iter()
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        for path in files {
            if total <= self.max_bytes {
                break;
            }
            if path == keep {
                continue;
            }
            let Ok(file) = File::open(&path) else {
                continue;
            };
            // A file another process is replaying right now is not ours to drop.
            if !try_lock(&file) {
                continue;
            }
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let spans = read_header(&file)
                .map(|(_, _, spans, _)| spans)
                .unwrap_or(0);
            if fs::remove_file(&path).is_ok() {
                total = total.saturating_sub(len);
                eviction.files += 1;
                eviction.spans += spans as u64;
            }
        }
        eviction
    }

    /// Sends every spool file, oldest first, through `send`, deleting each one
    /// `send` accepted. Stops at the first failure (the backend is still
    /// unwell; the order is kept). Files locked by another process are
    /// skipped. Returns the batches and spans replayed.
    pub fn replay(&self, mut send: impl FnMut(&SpooledBatch) -> ReplayVerdict) -> (u64, u64) {
        let (mut batches, mut spans) = (0, 0);
        for path in self.list() {
            let Ok(file) = OpenOptions::new().read(true).open(&path) else {
                continue; // replayed and deleted by another process meanwhile
            };
            if !try_lock(&file) {
                continue;
            }
            // Deleted by another replayer between our open and our lock.
            if file.metadata().map(|m| m_nlink(&m) == 0).unwrap_or(true) {
                continue;
            }
            let batch = match read_batch(file.try_clone().ok()) {
                Some(b) => b,
                None => {
                    // A torn or foreign file: set aside, never resent blindly.
                    let _ = fs::rename(&path, path.with_extension("corrupt"));
                    continue;
                }
            };
            match send(&batch) {
                ReplayVerdict::Delivered => {
                    let _ = fs::remove_file(&path);
                    batches += 1;
                    spans += batch.spans as u64;
                }
                ReplayVerdict::Discard => {
                    let _ = fs::remove_file(&path);
                }
                ReplayVerdict::Stop => break,
            }
            drop(file); // releases the lock after the delete
        }
        (batches, spans)
    }
}

/// A journaled batch in flight: its file, locked until this is dropped.
pub struct Journal {
    pub path: PathBuf,
    _lock: File,
}

/// What a replay's send decided about one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayVerdict {
    /// Accepted: delete the file.
    Delivered,
    /// Refused for good (e.g. HTTP 400): delete it, it can never be sent.
    Discard,
    /// Failed for now: keep it and stop replaying.
    Stop,
}

fn m_nlink(m: &fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::nlink(m)
}

fn try_lock(file: &File) -> bool {
    // SAFETY: flock on a valid fd; the lock dies with the fd.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

fn read_header(mut file: &File) -> Option<(BodyFormat, bool, u32, u64)> {
    let mut header = [0u8; HEADER_LEN];
    file.read_exact(&mut header).ok()?;
    if &header[..8] != MAGIC {
        return None;
    }
    let format = match header[8] {
        0 => BodyFormat::Protobuf,
        1 => BodyFormat::Json,
        _ => return None,
    };
    let spans = u32::from_le_bytes(header[10..14].try_into().ok()?);
    let len = u64::from_le_bytes(header[14..22].try_into().ok()?);
    Some((format, header[9] != 0, spans, len))
}

/// Reads one spool file as it is, without locking, renaming or deleting it
/// (`spanguard show` looks and changes nothing). None when it is not a
/// whole spool file.
pub fn read_spool_file(path: &Path) -> Option<SpooledBatch> {
    read_batch(File::open(path).ok())
}

fn read_batch(file: Option<File>) -> Option<SpooledBatch> {
    let file = file?;
    let (format, gzipped, spans, len) = read_header(&file)?;
    let actual = file.metadata().ok()?.len();
    if actual != HEADER_LEN as u64 + len {
        return None;
    }
    let mut body = Vec::with_capacity(len as usize);
    (&file).read_to_end(&mut body).ok()?;
    Some(SpooledBatch {
        format,
        gzipped,
        spans,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sg-spool-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn batch(spans: u32, size: usize) -> SpooledBatch {
        SpooledBatch {
            format: BodyFormat::Protobuf,
            gzipped: true,
            spans,
            body: vec![spans as u8; size],
        }
    }

    #[test]
    fn batches_round_trip_in_order_and_are_deleted_when_delivered() {
        let dir = temp_dir("order");
        let spool = SpoolDir::new(&dir, 1 << 20);
        for i in 1..=3 {
            spool.write(&batch(i, 10)).expect("write");
        }
        let mut seen = Vec::new();
        let (batches, spans) = spool.replay(|b| {
            seen.push(b.spans);
            ReplayVerdict::Delivered
        });
        assert_eq!(seen, vec![1, 2, 3]);
        assert_eq!((batches, spans), (3, 6));
        assert!(spool.list().is_empty());
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_failed_replay_keeps_the_file_and_the_order() {
        let dir = temp_dir("stop");
        let spool = SpoolDir::new(&dir, 1 << 20);
        spool.write(&batch(1, 10)).expect("write");
        spool.write(&batch(2, 10)).expect("write");
        assert_eq!(spool.replay(|_| ReplayVerdict::Stop), (0, 0));
        assert_eq!(spool.list().len(), 2);
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_cap_evicts_oldest_and_counts_their_spans() {
        let dir = temp_dir("cap");
        let spool = SpoolDir::new(&dir, 3 * (HEADER_LEN as u64 + 100));
        let mut lost = Eviction::default();
        for i in 1..=5 {
            let e = spool.write(&batch(i, 100)).expect("write");
            lost.files += e.files;
            lost.spans += e.spans;
        }
        assert_eq!(
            lost,
            Eviction {
                files: 2,
                spans: 1 + 2
            }
        );
        let mut left = Vec::new();
        spool.replay(|b| {
            left.push(b.spans);
            ReplayVerdict::Delivered
        });
        assert_eq!(left, vec![3, 4, 5]);
        assert!(spool.write(&batch(9, 1000)).is_err());
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_locked_file_is_left_to_its_replayer() {
        let dir = temp_dir("lock");
        let spool = SpoolDir::new(&dir, 1 << 20);
        spool.write(&batch(1, 10)).expect("write");
        let held = File::open(&spool.list()[0]).expect("open");
        assert!(try_lock(&held));
        assert_eq!(spool.replay(|_| ReplayVerdict::Delivered), (0, 0));
        drop(held);
        assert_eq!(spool.replay(|_| ReplayVerdict::Delivered), (1, 1));
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_torn_file_is_set_aside_not_sent() {
        let dir = temp_dir("torn");
        let spool = SpoolDir::new(&dir, 1 << 20);
        spool.write(&batch(1, 10)).expect("write");
        let path = spool.list()[0].clone();
        let bytes = fs::read(&path).expect("read");
        fs::write(&path, &bytes[..bytes.len() - 3]).expect("truncate");
        assert_eq!(spool.replay(|_| ReplayVerdict::Delivered), (0, 0));
        assert!(path.with_extension("corrupt").exists());
        fs::remove_dir_all(&dir).ok();
    }
}
