//! Whether a live process holds a file's lock, read from `/proc/locks`
//! rather than by trying the lock: a look must never make a tracer or a
//! replayer find the file busy and skip it.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The pid of the live process holding a lock on `path`, if any: for a
/// file not opened (a writer's temporary file). One that is read is
/// judged by its descriptor (`holder_of`): by the time its name is looked
/// up again, it may name another file.
pub fn holder(path: &Path) -> Option<u32> {
    holder_of(&std::fs::metadata(path).ok()?)
}

/// The pid of the live process holding a lock on the file `meta` describes
/// (an open file's own: `File::metadata`, fstat), if any.
pub fn holder_of(meta: &std::fs::Metadata) -> Option<u32> {
    let table = std::fs::read_to_string("/proc/locks").ok()?;
    holder_in(&table, meta.dev(), meta.ino()).filter(|&pid| alive(pid))
}

/// The pid in a `/proc/locks` table that holds a lock on the file with
/// device `dev` and inode `ino`. A line reads
/// `1: FLOCK  ADVISORY  WRITE 1234 08:01:131090 0 EOF`; blocked waiters
/// (`->`) hold nothing.
fn holder_in(table: &str, dev: u64, ino: u64) -> Option<u32> {
    let want = format!("{:02x}:{:02x}:{ino}", libc::major(dev), libc::minor(dev));
    table.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) == Some(&"->") {
            return None;
        }
        let at = fields.iter().position(|f| *f == want)?;
        fields.get(at.checked_sub(1)?)?.parse().ok()
    })
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    // SAFETY: reading this thread's errno.
    r == 0 || unsafe { *libc::__errno_location() } == libc::EPERM
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_found_by_device_and_inode() {
        let table = "1: FLOCK  ADVISORY  WRITE 4321 08:01:777 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 99 fd:00:555 0 EOF\n\
                     2: POSIX  ADVISORY  READ 1234 fd:00:555 0 EOF\n";
        let dev = libc::makedev(0xfd, 0);
        assert_eq!(holder_in(table, dev, 555), Some(1234));
        assert_eq!(holder_in(table, libc::makedev(8, 1), 777), Some(4321));
        assert_eq!(holder_in(table, dev, 556), None);
    }

    #[test]
    fn a_lock_this_process_holds_is_seen() {
        let path = std::env::temp_dir().join(format!("sg-locks-{}", std::process::id()));
        let f = std::fs::File::create(&path).expect("create");
        assert_eq!(holder(&path), None);
        // SAFETY: flock on our own fd.
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) };
        assert_eq!(holder(&path), Some(std::process::id()));
        drop(f);
        std::fs::remove_file(&path).ok();
    }

    /// A file read, then another renamed over its name (a tracer's new
    /// flight file, the directory owner's doing): the lock is the file
    /// read's, which its descriptor tells and its name no longer does.
    #[test]
    fn the_holder_of_a_file_read_is_judged_by_its_descriptor() {
        let dir = std::env::temp_dir().join(format!("sg-locks-renamed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("a.sgflight");
        let writer = std::fs::File::create(&path).expect("create");
        // SAFETY: flock on our own fd.
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&writer), libc::LOCK_EX) };
        let read = std::fs::File::open(&path).expect("open");
        std::fs::write(dir.join("new"), b"").expect("write");
        std::fs::rename(dir.join("new"), &path).expect("rename");
        let meta = read.metadata().expect("fstat");
        assert_eq!(holder_of(&meta), Some(std::process::id()));
        assert_eq!(holder(&path), None, "the name leads to the new file");
        drop(writer);
        std::fs::remove_dir_all(&dir).ok();
    }
}
