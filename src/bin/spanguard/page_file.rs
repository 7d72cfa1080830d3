//! Writing `show --html OUT`'s page where the user asked, without handing
//! its spans (prompts and completions: private data) to another user.
//!
//! OUT is often in a shared directory (`/tmp/trace.html`), where another
//! user may have put something under that name first: a file of theirs
//! that anyone may write (they read the page after us), a FIFO of theirs
//! (they read what we write into it), or a link of theirs to a file of
//! ours (we would overwrite it). The kernel refuses these only where
//! `fs.protected_regular`, `protected_fifos` and `protected_symlinks` are
//! on, and containers often have them off. So whatever OUT is or leads to
//! must be this user's or root's; a new file is made 0600 whatever the
//! umask, and a page file of ours that others may read (as earlier
//! versions made it, 0644) is made 0600 before the page goes in.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Mode of a page file made here.
const PAGE_MODE: u32 = 0o600;

fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() }
}

/// Writes `page` to `out` (see the module's comment). A refusal is a
/// PermissionDenied that says whose the file or link is.
pub fn write(out: &Path, page: &[u8]) -> io::Result<()> {
    let me = effective_uid();
    let trusted = |uid: u32| uid == me || uid == 0;
    let refuse = |what: String| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{what}, neither this user's (uid {me}) nor root's: the spans written there \
                 would be theirs to read; refusing it (choose another file)"
            ),
        ))
    };
    let link = match std::fs::symlink_metadata(out) {
        Ok(m) if m.file_type().is_symlink() => {
            if !trusted(m.uid()) {
                return refuse(format!("a symbolic link of uid {}", m.uid()));
            }
            true
        }
        _ => false,
    };
    // What the name leads to now, if anything: judged before opening,
    // since opening another user's FIFO would wait for them to read it.
    let before = match std::fs::metadata(out) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if let Some(m) = &before
        && !trusted(m.uid())
    {
        return refuse(format!("it belongs to uid {}", m.uid()));
    }
    let mut options = OpenOptions::new();
    options.write(true).mode(PAGE_MODE);
    match before {
        // Made by us, or failing if someone else made it meanwhile.
        None if !link => options.create_new(true),
        // A link of ours to a file yet to be made: made where it leads
        // (O_EXCL would refuse the link itself).
        None => options.create(true).truncate(true),
        Some(_) => options.truncate(true),
    };
    let mut file = options.open(out)?;
    let now = file.metadata()?;
    if !trusted(now.uid()) {
        return refuse(format!("it belongs to uid {}", now.uid()));
    }
    if let Some(before) = &before
        && (now.dev(), now.ino()) != (before.dev(), before.ino())
    {
        return Err(io::Error::other(
            "it was replaced while being opened: not written (run it again)",
        ));
    }
    make_private(&file, &now)?;
    file.write_all(page)
}

/// A regular file of ours that group or others may read or write is made
/// 0600 (a device or a pipe is the user's choice of where the page goes).
fn make_private(file: &File, meta: &Metadata) -> io::Result<()> {
    if meta.file_type().is_file() && meta.uid() == effective_uid() && meta.mode() & 0o077 != 0 {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(PAGE_MODE))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    /// A uid nobody on this machine has.
    const THEIR_UID: u32 = 4242;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sg-page-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn a_page_is_private_whatever_the_umask() {
        let dir = temp_dir("umask");
        let fresh = dir.join("trace.html");
        let old = dir.join("old.html");
        std::fs::write(&old, b"an earlier page").expect("write");
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        // SAFETY: umask only changes this process's creation mask.
        let mask = unsafe { libc::umask(0) };
        let written = write(&fresh, b"<p>prompt</p>");
        // SAFETY: as above.
        unsafe { libc::umask(mask) };
        written.expect("write");
        assert_eq!(std::fs::read(&fresh).expect("read"), b"<p>prompt</p>");
        assert_eq!(mode(&fresh), 0o600);
        write(&old, b"<p>again</p>").expect("write");
        assert_eq!(std::fs::read(&old).expect("read"), b"<p>again</p>");
        assert_eq!(mode(&old), 0o600, "an earlier page readable by all");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// What another user may have put at the name first, in a shared
    /// directory: giving a file or a link away needs root.
    #[test]
    fn another_users_file_fifo_or_link_is_refused_and_left_alone() {
        if effective_uid() != 0 {
            return;
        }
        let dir = temp_dir("theirs");
        let theirs = dir.join("theirs.html");
        std::fs::write(&theirs, b"").expect("write");
        std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        std::os::unix::fs::chown(&theirs, Some(THEIR_UID), Some(THEIR_UID)).expect("chown");
        let fifo = dir.join("fifo.html");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
        std::os::unix::fs::chown(&fifo, Some(THEIR_UID), Some(THEIR_UID)).expect("chown");
        let ours = dir.join("ours.txt");
        std::fs::write(&ours, b"keep").expect("write");
        let link = dir.join("link.html");
        std::os::unix::fs::symlink(&ours, &link).expect("symlink");
        std::os::unix::fs::lchown(&link, Some(THEIR_UID), Some(THEIR_UID)).expect("lchown");
        for out in [&theirs, &link, &fifo] {
            // A FIFO would block here, before the fix, until they read it.
            let e = write(out, b"<p>prompt</p>").expect_err("theirs");
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
            assert!(e.to_string().contains(&THEIR_UID.to_string()), "{e}");
        }
        assert_eq!(std::fs::read(&theirs).expect("read"), b"");
        assert_eq!(std::fs::read(&ours).expect("read"), b"keep");
        // Our own link (or root's) is followed, as the user meant, to a
        // file there or one to make.
        std::os::unix::fs::lchown(&link, Some(0), Some(0)).expect("lchown");
        write(&link, b"<p>prompt</p>").expect("our link");
        assert_eq!(std::fs::read(&ours).expect("read"), b"<p>prompt</p>");
        let dangling = dir.join("dangling.html");
        std::os::unix::fs::symlink(dir.join("new.html"), &dangling).expect("symlink");
        write(&dangling, b"<p>prompt</p>").expect("our dangling link");
        assert_eq!(mode(&dir.join("new.html")), 0o600);
        std::fs::remove_dir_all(&dir).ok();
    }
}
