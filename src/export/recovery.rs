//! Finds what dead processes left in the spool directory — crash dumps and
//! flight-recorder files — and turns their spans into ordinary batches.
//! A file whose lock is held belongs to a live process and is left alone;
//! a file being recovered is locked by its recoverer, so two processes never
//! send it twice.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::buffer::dump::{Recovered, read_file};

/// Files in `dir` that a dead process left, oldest first.
pub fn leftover_files(dir: &Path, own: &[&Path]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                name.ends_with(".sgdump")
                    || name.ends_with(".sgdump-pending")
                    || name.ends_with(".sgspool-pending")
                    || name.ends_with(".sgflight")
            })
            .filter(|p| !own.contains(&p.as_path()))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

/// A leftover file, locked for recovery. Dropping it unlocks it.
pub struct Claimed {
    pub path: PathBuf,
    file: File,
    pub recovered: Option<Recovered>,
}

impl Claimed {
    /// Deletes the file; call after its spans are delivered or spooled.
    pub fn finish(self) {
        let _ = std::fs::remove_file(&self.path);
        drop(self.file);
    }
}

/// Locks and reads one leftover file. None when a live process holds it or it
/// is gone.
pub fn claim(path: &Path) -> Option<Claimed> {
    let file = File::open(path).ok()?;
    // SAFETY: flock on our own fd.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return None;
    }
    if std::os::unix::fs::MetadataExt::nlink(&file.metadata().ok()?) == 0 {
        return None; // recovered and deleted by another process meanwhile
    }
    let died_at = file
        .metadata()
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_else(crate::span::clock::now_unix_ns);
    let recovered = read_file(path, died_at);
    Some(Claimed {
        path: path.to_path_buf(),
        file,
        recovered,
    })
}
