//! Whether a live process holds a file's lock, read from `/proc/locks`
//! rather than by trying the lock: a look must never make a tracer or a
//! replayer find the file busy and skip it.
//!
//! The table is read once for a whole listing (`Locks`), not once a file:
//! its size is the whole machine's locks, another user's too, and reading
//! it for each of a spool's 100,000 files took seconds and millions of
//! system calls (a local user holding many locks made `spool` and `show`
//! crawl). What is read is bounded (`MAX_TABLE_BYTES`); past it the
//! listing says the locks were not all read.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The most of `/proc/locks` read: some 300,000 locks, each kept in a few
/// dozen bytes. A table of millions of lines (a user holding a lock on
/// each of as many files) was read whole, for each file looked at.
pub const MAX_TABLE_BYTES: u64 = 16 << 20;

/// Device major, minor and inode, as `/proc/locks` writes them.
type FileKey = (u32, u32, u64);

/// One reading of the lock table, made when a first file is judged and
/// used for every file of a listing. Not thread-safe (`OnceCell`): one a
/// listing, on the thread that lists.
#[derive(Default)]
pub struct Locks {
    table: OnceCell<Table>,
}

#[derive(Debug, Default)]
struct Table {
    holders: HashMap<FileKey, u32>,
    /// Every line was read: false past `MAX_TABLE_BYTES`, where a file
    /// found held by nobody may be held all the same.
    complete: bool,
}

impl Locks {
    /// The pid of the live process holding a lock on `path`, if any: for a
    /// file not opened (a writer's temporary file). One that is read is
    /// judged by its descriptor (`holder_of`): by the time its name is
    /// looked up again, it may name another file.
    pub fn holder(&self, path: &Path) -> Option<u32> {
        self.holder_of(&std::fs::metadata(path).ok()?)
    }

    /// The pid of the live process holding a lock on the file `meta`
    /// describes (an open file's own: `File::metadata`, fstat), if any.
    pub fn holder_of(&self, meta: &std::fs::Metadata) -> Option<u32> {
        let key = (libc::major(meta.dev()), libc::minor(meta.dev()), meta.ino());
        let pid = *self.table().holders.get(&key)?;
        alive(pid).then_some(pid)
    }

    /// Why a file shown as held by nobody may be held all the same: the
    /// table was longer than what is read of it. None when it was read
    /// whole, or not read at all (no file was judged).
    pub fn not_all_read(&self) -> Option<String> {
        match self.table.get() {
            Some(t) if !t.complete => Some(format!(
                "locks not all read (/proc/locks over {} MiB): a file shown as held by no live process may be held",
                MAX_TABLE_BYTES >> 20
            )),
            _ => None,
        }
    }

    fn table(&self) -> &Table {
        self.table.get_or_init(|| {
            #[cfg(test)]
            tests::TABLE_READS.with(|n| n.set(n.get() + 1));
            // No /proc (a container without it): no holder known, as before.
            std::fs::File::open("/proc/locks")
                .map(|f| Table::read(f, MAX_TABLE_BYTES))
                .unwrap_or_else(|_| Table {
                    holders: HashMap::new(),
                    complete: true,
                })
        })
    }
}

impl Table {
    /// At most `most` bytes of a lock table. A line cut by the bound is
    /// not taken: `08:01:13` of `08:01:131090` names another inode.
    fn read(from: impl Read, most: u64) -> Table {
        let mut reader = BufReader::new(from.take(most));
        let mut table = Table {
            holders: HashMap::new(),
            complete: true,
        };
        let mut total = 0u64;
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(n) => total += n as u64,
                // A read error mid-table: what came before stands.
                Err(_) => {
                    table.complete = false;
                    break;
                }
            }
            if line.last() != Some(&b'\n') {
                break; // cut by the bound (or the table ended mid-line)
            }
            if let Some((key, pid)) = std::str::from_utf8(&line).ok().and_then(holder_line) {
                // The first holder listed, as the lookup by name took it.
                table.holders.entry(key).or_insert(pid);
            }
        }
        if total >= most {
            table.complete = false;
        }
        table
    }
}

/// The file and the pid of one line of a `/proc/locks` table. A line reads
/// `1: FLOCK  ADVISORY  WRITE 1234 08:01:131090 0 EOF`; blocked waiters
/// (`->`) hold nothing, nor does a line whose pid is not one (an OFD lock's
/// `-1`).
fn holder_line(line: &str) -> Option<(FileKey, u32)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.get(1) == Some(&"->") {
        return None;
    }
    let at = fields.iter().position(|f| f.matches(':').count() == 2)?;
    let mut parts = fields[at].split(':');
    let major = u32::from_str_radix(parts.next()?, 16).ok()?;
    let minor = u32::from_str_radix(parts.next()?, 16).ok()?;
    let ino = parts.next()?.parse().ok()?;
    let pid = fields.get(at.checked_sub(1)?)?.parse().ok()?;
    Some(((major, minor, ino), pid))
}

pub fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    // SAFETY: reading this thread's errno.
    r == 0 || unsafe { *libc::__errno_location() } == libc::EPERM
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// Readings of `/proc/locks` made on this thread: a test runs on a
        /// thread of its own, so others' readings do not count.
        pub static TABLE_READS: Cell<usize> = const { Cell::new(0) };
    }

    /// How many times this thread has read `/proc/locks`.
    pub fn table_reads() -> usize {
        TABLE_READS.with(Cell::get)
    }

    const TABLE: &str = "1: FLOCK  ADVISORY  WRITE 4321 08:01:777 0 EOF\n\
                         1: -> FLOCK  ADVISORY  WRITE 99 fd:00:555 0 EOF\n\
                         2: POSIX  ADVISORY  READ 1234 fd:00:555 0 EOF\n\
                         3: OFDLCK ADVISORY  WRITE -1 fd:00:556 0 EOF\n\
                         4: POSIX  ADVISORY  WRITE 42 103:02:131090 0 EOF\n";

    #[test]
    fn the_holder_is_found_by_device_and_inode() {
        let table = Table::read(TABLE.as_bytes(), MAX_TABLE_BYTES);
        assert!(table.complete);
        assert_eq!(table.holders.get(&(0xfd, 0, 555)), Some(&1234));
        assert_eq!(table.holders.get(&(8, 1, 777)), Some(&4321));
        assert_eq!(table.holders.get(&(0x103, 2, 131090)), Some(&42));
        assert_eq!(table.holders.get(&(0xfd, 0, 556)), None);
        assert_eq!(table.holders.len(), 3);
    }

    /// A table longer than what is read: the lines before the bound are
    /// taken, the one it cuts is not (`103:02:13` would name inode 13),
    /// and the table says it is not whole, which the listing says.
    #[test]
    fn a_table_past_the_bound_is_read_up_to_it_and_said_so() {
        let cut = TABLE.find("131090").expect("line") + 2;
        let table = Table::read(TABLE.as_bytes(), cut as u64);
        assert!(!table.complete);
        assert_eq!(table.holders.get(&(0x103, 2, 13)), None);
        assert_eq!(table.holders.get(&(0xfd, 0, 555)), Some(&1234));
        assert_eq!(table.holders.len(), 2);

        let locks = Locks::default();
        assert_eq!(locks.not_all_read(), None, "nothing read yet");
        locks.table.set(table).expect("unset");
        let said = locks.not_all_read().expect("said");
        assert!(said.starts_with("locks not all read"), "{said}");

        // One of millions of lines: no more than the bound is read.
        let big = TABLE.repeat(1 << 16);
        let table = Table::read(big.as_bytes(), 4096);
        assert!(!table.complete);
        assert!(Table::read(big.as_bytes(), big.len() as u64 + 1).complete);
    }

    #[test]
    fn a_lock_this_process_holds_is_seen() {
        let path = std::env::temp_dir().join(format!("sg-locks-{}", std::process::id()));
        let f = std::fs::File::create(&path).expect("create");
        assert_eq!(Locks::default().holder(&path), None);
        // SAFETY: flock on our own fd.
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) };
        // A new listing, a new reading of the table.
        assert_eq!(Locks::default().holder(&path), Some(std::process::id()));
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
        let locks = Locks::default();
        assert_eq!(locks.holder_of(&meta), Some(std::process::id()));
        assert_eq!(locks.holder(&path), None, "the name leads to the new file");
        drop(writer);
        std::fs::remove_dir_all(&dir).ok();
    }
}
