//! The key that makes a file's sender mark (`spool::destination_tag`,
//! the refusal mark) say nothing about the sender's secrets.
//!
//! A sender's fingerprint (`Transport::sender_fingerprint`) is an
//! unkeyed hash of its URL, headers with their values and TLS paths: in a
//! file's name, anyone who saw the name (a listing pasted into an issue,
//! a support bundle of file names, a backup) could try API keys against
//! it offline until one matched. The AWS CLI names its credential caches
//! by a hash of what is not secret (the role, the start URL); a spool
//! file's name must tell a sender set up with another key from this one
//! without being opened, so the whole fingerprint goes in, through a
//! keyed PRF (SipHash-2-4) whose key is random, per spool directory, in
//! a 0600 file there (`KEY_FILE`): without it a name tells nothing.
//!
//! The key is made once, atomically (a temporary file linked to its name:
//! the link fails if another process made it first, and then that one's
//! is read), and never replaced. When it cannot be read or made (not a
//! regular file, the wrong length, no permission), the process marks with
//! a key of its own, never written, the same for the rest of its life
//! (the key file is not tried again), and says so once (`take_untold`):
//! what it leaves waits for `spanguard replay` (which takes every file),
//! as files named under a key since deleted or changed do. Files an earlier spanguard named with the bare
//! fingerprint are still taken by a sender with that fingerprint
//! (`SpoolDir::takes`): leftovers of the last run are not stranded by the
//! upgrade.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use crate::buffer::files::SetAside;

/// The key's file in the spool directory: hidden, so that no replay,
/// recovery or listing takes it for a batch.
pub const KEY_FILE: &str = ".sender-key";
/// SipHash's key length.
const KEY_LEN: usize = 16;

/// A spool directory's key for sender marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderKey([u8; KEY_LEN]);

impl SenderKey {
    /// The key of `dir` (an existing directory): read, or made if there is
    /// none yet. Err when neither works: the caller then marks with an
    /// `unshared` key (see the module's comment).
    pub fn of_dir(dir: &Path) -> io::Result<SenderKey> {
        set_aside_if_foreign(dir);
        match read(dir)? {
            Some(key) => Ok(key),
            None => make(dir),
        }
    }

    /// `of_dir`'s key, or a key of this process's own, never written,
    /// when it has none that can be read or made: the same one for every
    /// later call on `dir`, which tries the key file no more (`UNUSABLE`),
    /// and said once (`take_untold`). Takes no lock (see `UNUSABLE`).
    pub fn of_dir_or_unshared(dir: &Path) -> SenderKey {
        if let Some(known) = first_unusable(dir) {
            return known.key;
        }
        match SenderKey::of_dir(dir) {
            Ok(key) => key,
            Err(e) => {
                UNUSABLE.push(Unusable {
                    dir: dir.to_path_buf(),
                    key: SenderKey::unshared(),
                    news: unusable_news(dir, &e),
                    told: AtomicBool::new(false),
                });
                UNTOLD.store(true, Ordering::Release);
                // Another thread's, when it failed on `dir` too and came
                // first: every look marks with that one.
                first_unusable(dir).map_or_else(SenderKey::unshared, |u| u.key)
            }
        }
    }

    /// The key of `dir` if it has one that can be read: for `spanguard
    /// spool`, which only looks (none made).
    pub fn read_only(dir: &Path) -> Option<SenderKey> {
        read(dir).ok().flatten()
    }

    /// What a file's name says for the sender with fingerprint `sender`.
    pub fn mark(&self, sender: u64) -> u64 {
        siphash24(&self.0, &sender.to_le_bytes())
    }

    /// A key no other process has: what it marks waits for `spanguard
    /// replay`.
    pub fn unshared() -> SenderKey {
        let mut key = [0u8; KEY_LEN];
        fill_random(&mut key);
        SenderKey(key)
    }
}

/// A directory whose key could not be read or made, in this process: an
/// entry of `UNUSABLE`, never changed once pushed but for `told`, never
/// freed.
struct Unusable {
    dir: PathBuf,
    /// The key this process marks with there instead (`unshared`).
    key: SenderKey,
    /// What to tell of it (`take_untold`), once: `told` says whether it was.
    news: String,
    told: AtomicBool,
}

/// The directories whose key this process could not read or make, the
/// latest first. Tried once a process: a failure was not kept, and each
/// name looked at (a spool's `takes` for every file listed, every batch
/// written) opened or tried to make the key file again, and marked with a
/// new random key, so a process did not take the files it had itself
/// written. Few entries (one a spool directory), and never on the
/// recording path.
///
/// A `PushOnly` list, not a Mutex: the Mutex was held across the key
/// file's read (or its making, fsync included), which the exporter does
/// at its first look at its spool's names, and a fork meanwhile (a worker
/// forked right after the first tracer) gave the child that lock held for
/// good by a thread it does not have: its first tracer, which names its
/// crash dump with the mark, waited forever. Two threads that fail on one
/// directory at once both push; the first pushed is the one every look
/// takes (`first_unusable`) and the one said.
static UNUSABLE: PushOnly<Unusable> = PushOnly::new();
/// Key files set aside (another user's, a link), each counted and told
/// once, by whoever takes it first (`take_set_aside`). A `PushOnly` list
/// as `UNUSABLE` is, for the same reason: a child forked while another
/// thread pushed would find a Mutex held for good at its exporter's first
/// look.
static SET_ASIDE: PushOnly<KeySetAside> = PushOnly::new();

/// A key file set aside, in the spool directory `dir`.
struct KeySetAside {
    dir: PathBuf,
    aside: SetAside,
    taken: AtomicBool,
}

/// A list only ever pushed onto, its entries leaked (few: one a spool
/// directory at most), read and pushed with no lock, so that a fork at any
/// moment leaves the child a whole list and nothing held.
struct PushOnly<T: 'static> {
    latest: AtomicPtr<Pushed<T>>,
}

struct Pushed<T: 'static> {
    item: T,
    /// The entry pushed before this one.
    earlier: Option<&'static Pushed<T>>,
}

impl<T: Sync> PushOnly<T> {
    const fn new() -> PushOnly<T> {
        PushOnly {
            latest: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// Its entries, the latest first.
    fn entries(&self) -> impl Iterator<Item = &'static T> {
        // This Acquire pairs with the Release of `push`'s
        // compare-exchange: the entry is whole before it is seen.
        // SAFETY: a non-null head is a leaked `Pushed` (`push`), never
        // freed nor written again (its item only through its atomics).
        let latest = unsafe { self.latest.load(Ordering::Acquire).as_ref() };
        std::iter::successors(latest, |p| p.earlier).map(|p| &p.item)
    }

    /// Pushes `item`, for the rest of the process's life.
    fn push(&self, item: T) {
        let node = Box::into_raw(Box::new(Pushed {
            item,
            earlier: None,
        }));
        let mut latest = self.latest.load(Ordering::Acquire);
        loop {
            // SAFETY: `node` is ours alone until the exchange below
            // publishes it; `latest` is null or a leaked entry.
            unsafe { (*node).earlier = latest.as_ref() };
            // This Release pairs with the Acquire of `entries`.
            match self.latest.compare_exchange_weak(
                latest,
                node,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(now) => latest = now,
            }
        }
    }
}

/// Sets aside `dir`'s key file when it is not a regular file of this
/// user's (another user's key, a link, a FIFO, a directory), so that a key
/// of ours is made in its place. `dir` is ours (checked by the caller,
/// `ensure_private_dir`): a key planted while it was open to others (a
/// group-shared directory before the tracer made it private) was refused
/// at every look, for good, and every process marked its files with a key
/// of its own, so that none set up alike sent what the last one spooled.
/// Only the owner and the kind count: a key of ours with a wrong mode or
/// length stays as it was, said by `read` (the user's to look at).
fn set_aside_if_foreign(dir: &Path) {
    let path = dir.join(KEY_FILE);
    let Ok(meta) = std::fs::symlink_metadata(&path) else {
        return;
    };
    if crate::buffer::files::is_ours(&meta) {
        return;
    }
    let Ok(new) = crate::buffer::files::set_aside(&path) else {
        return;
    };
    let reason = format!(
        "the spool's sender key {} was not this user's ({}): a key of this user's was \
         made in its place",
        path.display(),
        crate::buffer::files::not_a_file(&meta)
            .map_or_else(|| format!("owned by uid {}", meta.uid()), str::to_string),
    );
    SET_ASIDE.push(KeySetAside {
        dir: dir.to_path_buf(),
        aside: SetAside { path: new, reason },
        taken: AtomicBool::new(false),
    });
}

/// The key files of the spool directory `dir` set aside and not taken
/// yet, oldest first: for the exporter (or `spanguard replay`) to count in
/// `files_set_aside` and tell as it does every file set aside, once a
/// process. They were said as a warning alone, and counted nowhere.
/// Walks no list when none was set aside (one atomic load).
pub fn take_set_aside(dir: &Path) -> Vec<SetAside> {
    let mut taken: Vec<SetAside> = SET_ASIDE
        .entries()
        .filter(|k| k.dir == dir && !k.taken.swap(true, Ordering::AcqRel))
        .map(|k| k.aside.clone())
        .collect();
    taken.reverse();
    taken
}

/// Whether an entry of `UNUSABLE` has news not yet taken: `take_untold`
/// is called at every exporter wake-up, and walks no list when none.
/// This Release (set after the entry is pushed) pairs with the Acquire
/// swap in `take_untold`.
static UNTOLD: AtomicBool = AtomicBool::new(false);

/// The first entry pushed for `dir`, if any: the one every look takes.
fn first_unusable(dir: &Path) -> Option<&'static Unusable> {
    UNUSABLE.entries().filter(|u| u.dir == dir).last()
}

/// What was not said yet of the key files this process could not use,
/// each with its path, what became of the files named there meanwhile,
/// and what to do; each said once a process, by whoever takes it (an
/// exporter, `spanguard replay`).
pub fn take_untold() -> Vec<String> {
    if !UNTOLD.swap(false, Ordering::Acquire) {
        return Vec::new();
    }
    let mut untold: Vec<String> = UNUSABLE
        .entries()
        .filter(|u| first_unusable(&u.dir).is_some_and(|first| std::ptr::eq(first, *u)))
        .filter(|u| !u.told.swap(true, Ordering::AcqRel))
        .map(|u| u.news.clone())
        .collect();
    untold.reverse(); // in the order they happened
    untold
}

/// The line for `dir`'s key file, which could not be read or made for
/// `error`.
fn unusable_news(dir: &Path, error: &io::Error) -> String {
    let path = dir.join(KEY_FILE);
    let dir = dir.display();
    let fix = match error.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            format!("let this user read and write {dir}")
        }
        _ => format!("remove {} (it is made anew, 0600)", path.display()),
    };
    format!(
        "the spool's sender key {} cannot be used ({error}): this process names its \
         spool files, crash dumps and flight files with a key of its own, so no other \
         process sends them, not even one set up alike; `spanguard replay {dir}` does. \
         To share the key again, {fix}",
        path.display()
    )
}

/// The key in `dir`'s key file; None when there is none.
fn read(dir: &Path) -> io::Result<Option<SenderKey>> {
    #[cfg(test)]
    tests::note_read(dir);
    #[cfg(test)]
    tests::stop_at_gate(dir);
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(dir.join(KEY_FILE))
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    // SAFETY: geteuid cannot fail and has no preconditions.
    let me = unsafe { libc::geteuid() };
    // Another user's key (planted in a shared directory) would let them
    // read every name: only our own, private one counts.
    // Which of these it is says what to do about it.
    let wrong = if !meta.is_file() {
        Some("not a regular file".to_string())
    } else if meta.uid() != me {
        Some(format!("owned by uid {}, not {me}", meta.uid()))
    } else if meta.mode() & 0o077 != 0 {
        Some(format!(
            "mode {:04o}: others may read it",
            meta.mode() & 0o7777
        ))
    } else if meta.len() != KEY_LEN as u64 {
        Some(format!("{} bytes, not {KEY_LEN}", meta.len()))
    } else {
        None
    };
    if let Some(wrong) = wrong {
        return Err(io::Error::other(wrong));
    }
    let mut key = [0u8; KEY_LEN];
    file.read_exact(&mut key)?;
    Ok(Some(SenderKey(key)))
}

/// Makes `dir`'s key file, or reads the one another process made first.
fn make(dir: &Path) -> io::Result<SenderKey> {
    let key = SenderKey::unshared();
    let temp = dir.join(format!(
        "{KEY_FILE}.{}-{:x}.tmp",
        std::process::id(),
        crate::span::ids::new_span_id_u64()
    ));
    let written = (|| {
        let mut file: File = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temp)?;
        file.write_all(&key.0)?;
        file.sync_all()?;
        // Whole before it has its name: a reader never sees it half made.
        std::fs::hard_link(&temp, dir.join(KEY_FILE))
    })();
    let _ = std::fs::remove_file(&temp);
    match written {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            read(dir)?.ok_or_else(|| io::Error::other("key file gone"))
        }
        Err(e) => Err(e),
    }
}

fn fill_random(bytes: &mut [u8]) {
    // SAFETY: the buffer is valid for its length.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        // No getrandom: the id generator (seeded from time, pid and stack).
        for chunk in bytes.chunks_mut(8) {
            let r = crate::span::ids::new_span_id_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

/// SipHash-2-4 (Aumasson and Bernstein, 2012): a PRF for short inputs,
/// keyed with 128 bits; std's hashers promise no stable output and take
/// no key of ours.
fn siphash24(key: &[u8; KEY_LEN], message: &[u8]) -> u64 {
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    let (k0, k1) = (word(&key[..8]), word(&key[8..]));
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let round = |v: &mut [u64; 4]| {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    };
    let compress = |v: &mut [u64; 4], m: u64| {
        v[3] ^= m;
        round(v);
        round(v);
        v[0] ^= m;
    };
    let mut chunks = message.chunks_exact(8);
    for chunk in &mut chunks {
        compress(&mut v, word(chunk));
    }
    let mut last = [0u8; 8];
    last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    last[7] = message.len() as u8;
    compress(&mut v, u64::from_le_bytes(last));
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sg-sender-key-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        crate::buffer::files::ensure_private_dir(&dir).expect("dir");
        dir
    }

    /// The paper's vectors (appendix A; key 00..0f, message 00..len-1):
    /// a PRF by hand is one only if it computes SipHash.
    #[test]
    fn siphash_gives_the_reference_outputs() {
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        let message: Vec<u8> = (0..64u8).collect();
        assert_eq!(siphash24(&key, &[]), 0x726f_db47_dd0e_0e31);
        assert_eq!(siphash24(&key, &message[..1]), 0x74f8_39c5_93dc_67fd);
        assert_eq!(siphash24(&key, &message[..8]), 0x93f5_f579_9a93_2462);
        assert_eq!(siphash24(&key, &message[..15]), 0xa129_ca61_49be_45e5);
        // And std's own (deprecated, so not used) SipHash-2-4 agrees at
        // every length through two blocks and a tail.
        #[allow(deprecated)]
        for len in 0..message.len() {
            use std::hash::Hasher;
            let mut std_sip = std::hash::SipHasher::new_with_keys(
                u64::from_le_bytes(key[..8].try_into().expect("8")),
                u64::from_le_bytes(key[8..].try_into().expect("8")),
            );
            std_sip.write(&message[..len]);
            assert_eq!(siphash24(&key, &message[..len]), std_sip.finish(), "{len}");
        }
    }

    /// Made once, private, and the same for every later look; another
    /// process's key (made first) is the one taken.
    #[test]
    fn a_directory_keeps_one_private_key() {
        let dir = scratch("once");
        assert_eq!(SenderKey::read_only(&dir), None, "none made by a look");
        let first = SenderKey::of_dir(&dir).expect("made");
        let meta = std::fs::metadata(dir.join(KEY_FILE)).expect("key file");
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(SenderKey::of_dir(&dir).expect("read"), first);
        assert_eq!(SenderKey::read_only(&dir), Some(first));
        assert_eq!(
            std::fs::read_dir(&dir).expect("list").count(),
            1,
            "no temporary file left"
        );
        // Another process's make that lost the race reads the winner's.
        assert_eq!(make(&dir).expect("read the first"), first);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A key file that is no private key of ours (readable by others, the
    /// wrong length) is not used, nor replaced: a process marks with a
    /// key of its own, which no later process has.
    #[test]
    fn a_key_file_that_is_not_ours_and_private_is_not_used() {
        let dir = scratch("bad");
        let path = dir.join(KEY_FILE);
        std::fs::write(&path, [7u8; KEY_LEN]).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(SenderKey::of_dir(&dir).is_err(), "a world-readable key");
        let a = SenderKey::of_dir_or_unshared(&dir);
        assert_ne!(a, SenderKey([7u8; KEY_LEN]));
        assert_ne!(SenderKey::unshared(), a, "each process its own");
        assert_eq!(SenderKey::read_only(&dir), None);
        std::fs::write(&path, [7u8; 3]).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(SenderKey::read_only(&dir), None, "3 bytes");
        assert_eq!(
            std::fs::read(&path).expect("read"),
            [7u8; 3],
            "left as it was"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The directories `read` looked in, one entry a look: tests run on
    /// threads of one process, so each counts its own directory's.
    static READS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    pub(super) fn note_read(dir: &Path) {
        READS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(dir.to_path_buf());
    }

    fn reads_of(dir: &Path) -> usize {
        let reads = READS.lock().unwrap_or_else(|p| p.into_inner());
        reads.iter().filter(|d| d.as_path() == dir).count()
    }

    /// What is still to be said of `dir`'s key (not taken by another
    /// test's `take_untold` meanwhile: only the entries' own news).
    fn untold_of(dir: &Path) -> Vec<String> {
        UNUSABLE
            .entries()
            .filter(|u| u.dir == dir)
            .map(|u| u.news.clone())
            .collect()
    }

    /// A key file that cannot be used is read once a process, whatever
    /// number of names is made or looked at, and every one gets the same
    /// key: each look read it again (a spool of 10,000 files listed read
    /// it 10,000 times) and marked with a new random key, so a process's
    /// own files were not its own a moment later. It is said once, with
    /// its path, why, and what to do.
    #[test]
    fn an_unusable_key_file_is_tried_once_and_said_once() {
        let dir = scratch("once-a-process");
        let path = dir.join(KEY_FILE);
        std::fs::write(&path, [7u8; KEY_LEN]).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let first = SenderKey::of_dir_or_unshared(&dir);
        for _ in 0..1000 {
            assert_eq!(SenderKey::of_dir_or_unshared(&dir), first);
        }
        assert_eq!(reads_of(&dir), 1, "the key file read once");
        let news = untold_of(&dir);
        assert_eq!(news.len(), 1, "{news:?}");
        let said = &news[0];
        for words in [
            path.display().to_string(),
            "mode 0644: others may read it".to_string(),
            format!("`spanguard replay {}` does", dir.display()),
            format!("remove {}", path.display()),
        ] {
            assert!(said.contains(&words), "{words:?} in {said}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Each way a key file is no private key of ours is said as it is:
    /// what to do about another user's file is not what to do about a
    /// short one.
    #[test]
    fn a_key_file_says_what_is_wrong_with_it() {
        let dir = scratch("what-is-wrong");
        let path = dir.join(KEY_FILE);
        let wrong = || SenderKey::of_dir(&dir).expect_err("unusable").to_string();
        std::fs::write(&path, [7u8; 3]).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(wrong(), "3 bytes, not 16");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        assert_eq!(wrong(), "mode 0640: others may read it");
        std::fs::remove_file(&path).expect("rm");
        // Not a file at all (a directory, a link, a FIFO, another user's
        // key): set aside unread, and a key made in its place.
        std::fs::create_dir(&path).expect("a directory in its place");
        assert!(SenderKey::of_dir(&dir).is_ok());
        assert!(std::fs::symlink_metadata(&path).expect("key").is_file());
        let aside = dir.join(format!("{KEY_FILE}.unreadable"));
        assert!(
            std::fs::symlink_metadata(&aside)
                .expect("set aside")
                .is_dir()
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The directory whose key `read` stops at (`stop_at_gate`), set by a
    /// test that runs alone in its process (`run_alone`); how many threads
    /// stopped there, and whether they may go on. Atomics: a thread
    /// stopped there holds nothing a forked child could wait for.
    static GATE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    static AT_GATE: AtomicUsize = AtomicUsize::new(0);
    static GATE_OPEN: AtomicBool = AtomicBool::new(false);

    /// In `read`, on its way to the key file: a look at `GATE`'s
    /// directory waits there until the test opens the gate.
    pub(super) fn stop_at_gate(dir: &Path) {
        if GATE.get().is_none_or(|gated| gated != dir) {
            return;
        }
        AT_GATE.fetch_add(1, Ordering::AcqRel);
        while !GATE_OPEN.load(Ordering::Acquire) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Waits (a minute at most) for `threads` threads at the gate.
    fn wait_at_gate_for(threads: usize) {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while AT_GATE.load(Ordering::Acquire) < threads && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(
            AT_GATE.load(Ordering::Acquire),
            threads,
            "threads at the key file"
        );
    }

    /// A fork while another thread reads a directory's key (the
    /// exporter's first look at its spool's names, as a program forks a
    /// worker right after its first tracer): the child looks up a key of
    /// its own. The failures' list was a Mutex held across that read, and
    /// the child had it held for good by a thread it does not have: its
    /// first tracer (`create_crash_file` names the dump with its mark)
    /// waited forever (test_host_handler_fork_in_lock's handler's child,
    /// 1 run in 500 on a loaded machine).
    #[test]
    fn a_child_forked_during_a_key_read_looks_up_keys() {
        if !crate::forking_tests::run_alone(
            module_path!(),
            "a_child_forked_during_a_key_read_looks_up_keys",
        ) {
            return;
        }
        let gated = scratch("gated");
        let other = scratch("forked-child");
        GATE.set(gated.clone()).expect("the gate's directory, once");
        let reader = {
            let gated = gated.clone();
            std::thread::spawn(move || SenderKey::of_dir_or_unshared(&gated))
        };
        wait_at_gate_for(1);
        let pid = crate::forking_tests::fork();
        if pid == 0 {
            // The child: one thread, this one. A key is read or made, and
            // a look at the same directory again gives the same.
            let key = SenderKey::of_dir_or_unshared(&other);
            let again = SenderKey::of_dir_or_unshared(&other);
            // SAFETY: ends the child without the parent's atexit handlers.
            unsafe { libc::_exit(if key == again { 0 } else { 1 }) };
        }
        assert!(pid > 0, "fork");
        let child_ok = crate::forking_tests::exited_ok_within(pid, 30);
        GATE_OPEN.store(true, Ordering::Release);
        let read = reader.join().expect("the reader");
        assert!(
            child_ok,
            "the forked child waited for a look it does not have"
        );
        assert_eq!(SenderKey::read_only(&gated), Some(read), "the reader's key");
        assert!(
            SenderKey::read_only(&other).is_some(),
            "the child made its key"
        );
        std::fs::remove_dir_all(&gated).ok();
        std::fs::remove_dir_all(&other).ok();
    }

    /// Two threads that find a directory's key file unusable at once
    /// (the list takes no lock: both read the file): both mark with one
    /// key, the first pushed, as every later look does, and it is said
    /// once.
    #[test]
    fn threads_failing_on_one_key_at_once_share_one_key_said_once() {
        if !crate::forking_tests::run_alone(
            module_path!(),
            "threads_failing_on_one_key_at_once_share_one_key_said_once",
        ) {
            return;
        }
        let dir = scratch("two-at-once");
        let path = dir.join(KEY_FILE);
        std::fs::write(&path, [7u8; KEY_LEN]).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        GATE.set(dir.clone()).expect("the gate's directory, once");
        let lookers: Vec<_> = (0..2)
            .map(|_| {
                let dir = dir.clone();
                std::thread::spawn(move || SenderKey::of_dir_or_unshared(&dir))
            })
            .collect();
        wait_at_gate_for(2);
        GATE_OPEN.store(true, Ordering::Release);
        let keys: Vec<SenderKey> = lookers
            .into_iter()
            .map(|t| t.join().expect("a looker"))
            .collect();
        assert_eq!(keys[0], keys[1], "one key for the directory");
        assert_eq!(SenderKey::of_dir_or_unshared(&dir), keys[0], "and later");
        assert_eq!(untold_of(&dir).len(), 2, "both failed");
        let said = take_untold();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains(&path.display().to_string()), "{said:?}");
        assert_eq!(take_untold(), Vec::<String>::new(), "said once");
        std::fs::remove_dir_all(&dir).ok();
    }

    use std::os::unix::fs::PermissionsExt;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;
}
