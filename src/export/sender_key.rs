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
//! a key of its own, never written: what it leaves waits for `spanguard
//! replay` (which takes every file), as files named under a key since
//! deleted or changed do. Files an earlier spanguard named with the bare
//! fingerprint are still taken by a sender with that fingerprint
//! (`SpoolDir::takes`): leftovers of the last run are not stranded by the
//! upgrade.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

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
        match read(dir)? {
            Some(key) => Ok(key),
            None => make(dir),
        }
    }

    /// `of_dir`'s key, or a key of this process's own, never written,
    /// when it has none that can be read or made.
    pub fn of_dir_or_unshared(dir: &Path) -> SenderKey {
        SenderKey::of_dir(dir).unwrap_or_else(|_| SenderKey::unshared())
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

/// The key in `dir`'s key file; None when there is none.
fn read(dir: &Path) -> io::Result<Option<SenderKey>> {
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
    if !meta.is_file()
        || meta.len() != KEY_LEN as u64
        || meta.uid() != me
        || meta.mode() & 0o077 != 0
    {
        return Err(io::Error::other("not a private key file of ours"));
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
        assert_ne!(SenderKey::of_dir_or_unshared(&dir), a, "each its own");
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

    use std::os::unix::fs::PermissionsExt;
}
