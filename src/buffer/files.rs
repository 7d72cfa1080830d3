//! Files in spanguard's own directories (the spool and the sink): how they
//! are made and how what is found there is opened.
//!
//! What sits in those directories is input from outside: another version,
//! a dead writer, another local user or a hostile one may have put anything
//! there. So:
//! - a directory is used only when it belongs to this user; one that other
//!   users may write to is made private first (it is ours), one that
//!   belongs to someone else is refused;
//! - files and directories are made 0600 and 0700 whatever the umask;
//! - nothing is opened through a symbolic link, and a file found there is
//!   opened only when it is a regular file of ours, without blocking (a
//!   FIFO would block `open` forever);
//! - every descriptor is close-on-exec, and the ones that hold a lock are
//!   known by number, so that a forked child can close them before it goes
//!   on (a lock inherited by a child would keep a dead parent's files from
//!   being recovered for as long as the child lives).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

/// Mode of every file spanguard makes.
pub(crate) const FILE_MODE: u32 = 0o600;
/// Mode of every directory spanguard makes.
pub(crate) const DIR_MODE: u32 = 0o700;
/// Appended to the name of a file that cannot be used, so that it is never
/// looked at again and stays for a person to inspect.
pub const SET_ASIDE_SUFFIX: &str = ".unreadable";

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() }
}

/// Makes `dir` (and missing parents, 0700) if needed and checks that it may
/// hold our files: a directory owned by this user that nobody else may
/// write to. One owned by another user is refused (PermissionDenied, with a
/// message that names it), as OpenSSH refuses such a `~/.ssh`, and so is a
/// shared one (sticky, like /tmp: others may write there by design, and
/// taking it private would break them). One of ours that group or others
/// may read or write is made 0700.
///
/// The way there counts too (`check_way_to`): every directory the path
/// passes through must be one that only this user or root can change, or
/// another user could rename a directory on the way and put their own in
/// its place after the check. Checked before anything is made (nothing is
/// made inside another user's directory) and again after.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    let complete = check_way_to(dir)?;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    if !complete {
        // What was made is ours; anything another user put on the way
        // meanwhile (in a sticky /tmp) is seen now.
        check_way_to(dir)?;
    }
    let c = c_path(dir)?;
    // The directory itself may be a symbolic link (a spool moved to
    // another disk): what counts is whose directory it leads to. The link
    // itself must be the user's own or root's, which `check_way_to` checks
    // with every link on the way: another user's link in a shared /tmp,
    // made first under the fallback state directory's name, would lead the
    // tracer into any directory of the user's (their home), which it would
    // then make 0700 and fill with spans. (The kernel's protected_symlinks
    // refuses such a link only where it is switched on.)
    // SAFETY: a NUL-terminated path; the fd is owned below.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    let handle = unsafe { File::from_raw_fd(fd) };
    let meta = handle.metadata()?;
    judge_directory(&meta)?;
    if meta.mode() & 0o077 != 0 {
        // Ours, but others could read our spans or plant files in it.
        // SAFETY: fchmod on our own open directory.
        if unsafe { libc::fchmod(handle.as_raw_fd(), DIR_MODE as libc::mode_t) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// What `ensure_private_dir` would refuse of `dir` (a `ForeignDirectory`),
/// judged without making or changing anything: for `spanguard check`, which
/// says what a tracer started here would do. A directory (or a part of the
/// way) that does not exist yet is no refusal: what a tracer makes is its
/// own.
pub fn judge_private_dir(dir: &Path) -> io::Result<()> {
    if !check_way_to(dir)? {
        return Ok(());
    }
    match std::fs::metadata(dir) {
        Ok(meta) => judge_directory(&meta),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Why this process cannot make files in `dir` (access(2) with its
/// effective ids), or, while `dir` is missing, in the nearest directory
/// above it that exists, where it would be made; None when it can. For
/// `spanguard check`: a spool no file can be made in loses every batch
/// the backend does not take, which the tracer says only then.
pub fn not_writable(dir: &Path) -> Option<io::Error> {
    let mut at = dir;
    while std::fs::symlink_metadata(at).is_err() {
        at = at.parent().filter(|p| !p.as_os_str().is_empty())?;
    }
    let c = c_path(at).ok()?;
    // SAFETY: a NUL-terminated path; faccessat only reads it.
    let rc = unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::W_OK | libc::X_OK,
            libc::AT_EACCESS,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Some(io::Error::new(e.kind(), format!("{}: {e}", at.display())));
    }
    // A full filesystem passes access(2), and a sink file is even made
    // there (empty): then every write fails. `check` said the sink of a
    // 1 MB tmpfs filled up was fine.
    let mut fs = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: a NUL-terminated path; statvfs writes the struct it is
    // given, and it is read only when the call succeeded.
    let fs = (unsafe { libc::statvfs(c.as_ptr(), fs.as_mut_ptr()) } == 0)
        .then(|| unsafe { fs.assume_init() })?;
    let blocks = Room {
        total: fs.f_blocks,
        available: fs.f_bavail,
        free: fs.f_bfree,
    };
    let files = Room {
        total: fs.f_files,
        available: fs.f_favail,
        free: fs.f_ffree,
    };
    no_room_left(effective_uid() == 0, blocks, files).map(|what| {
        io::Error::new(
            io::ErrorKind::StorageFull,
            format!("{}: its filesystem {what}", at.display()),
        )
    })
}

/// A filesystem's blocks or files as statvfs counts them: in all, free
/// to any user, free to root.
#[derive(Clone, Copy)]
struct Room {
    total: u64,
    available: u64,
    free: u64,
}

impl Room {
    /// None left for this user (root may use what is reserved for it, as
    /// ext4's 5%); a filesystem that counts none at all (procfs, btrfs's
    /// files, some FUSE ones) is not said to be full.
    fn used_up(self, root: bool) -> bool {
        self.total > 0
            && if root {
                self.free == 0
            } else {
                self.available == 0
            }
    }
}

/// What is used up on a filesystem with these blocks and files, for a
/// user that is root or not; None when a file of spans can be written
/// there.
fn no_room_left(root: bool, blocks: Room, files: Room) -> Option<&'static str> {
    if blocks.used_up(root) {
        Some("is full (no space left)")
    } else if files.used_up(root) {
        Some("has no file left to make (no inode free)")
    } else {
        None
    }
}

/// Refuses a directory (its metadata, links followed) that belongs to
/// another user, or is shared (sticky and writable by others).
fn judge_directory(meta: &std::fs::Metadata) -> io::Result<()> {
    let me = effective_uid();
    if meta.uid() != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            ForeignDirectory(format!(
                "it belongs to uid {}, not to this user (uid {me}): spanguard will not \
                 keep spans in a directory another user controls",
                meta.uid()
            )),
        ));
    }
    if meta.mode() & libc::S_ISVTX != 0 && meta.mode() & 0o022 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            ForeignDirectory(
                "it is a shared directory (sticky, others may write to it): spanguard \
                 keeps spans only in a directory of the user's own"
                    .to_string(),
            ),
        ));
    }
    Ok(())
}

/// Links followed on the way to a directory before giving up (the kernel's
/// own limit, ELOOP).
const MAX_LINKS: u32 = 40;

/// Checks the way to `dir` as OpenSSH's StrictModes checks the way to
/// `authorized_keys`: each directory the path passes through (its
/// ancestors, and those on the way to where a symbolic link leads) must
/// belong to this user or root and must not be writable by group or others
/// unless it is sticky (like /tmp, where nobody may rename or remove what
/// is not theirs), and each link on the way must be this user's or root's.
/// Otherwise the owner of that directory (or link) could swap what the
/// path leads to at any time, and spans would go where they choose. `dir`
/// itself is `ensure_private_dir`'s to judge. Ok(false) when a component
/// is missing (the rest is checked after it is made); a refusal is a
/// `ForeignDirectory` that names the directory or link.
fn check_way_to(dir: &Path) -> io::Result<bool> {
    use std::ffi::OsString;
    use std::path::Component;
    let me = effective_uid();
    let trusted = |uid: u32| uid == me || uid == 0;
    let absolute = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()?.join(dir)
    };
    // Components still to walk, the next one last.
    let mut pending: Vec<OsString> = Vec::new();
    let push_reversed = |pending: &mut Vec<OsString>, path: &Path| {
        for c in path.components().rev() {
            match c {
                Component::Normal(n) => pending.push(n.to_os_string()),
                Component::ParentDir => pending.push(OsString::from("..")),
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
    };
    push_reversed(&mut pending, &absolute);
    let mut here = PathBuf::from("/");
    let check_directory = |path: &Path, meta: &std::fs::Metadata| -> io::Result<()> {
        if !trusted(meta.uid()) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                ForeignDirectory(format!(
                    "the directory {} on the way to it belongs to uid {}, neither this user \
                    (uid {me}) nor root: that user could put a directory of their own in \
                    its place; spanguard keeps spans only where the whole way is the \
                    user's or root's",
                    path.display(),
                    meta.uid()
                )),
            ));
        }
        let others_write = meta.mode() & 0o002 != 0
            || meta.mode() & 0o020 != 0 && !private_group(meta.uid(), meta.gid());
        if others_write && meta.mode() & libc::S_ISVTX == 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                ForeignDirectory(format!(
                    "the directory {} on the way to it may be written by {} (mode {:o}, not \
                    sticky): another user could put a directory of their own in its place; \
                    spanguard keeps spans only where the whole way is the user's or root's",
                    path.display(),
                    if meta.mode() & 0o002 != 0 {
                        "anyone"
                    } else {
                        "its group"
                    },
                    meta.mode() & 0o7777
                )),
            ));
        }
        Ok(())
    };
    check_directory(&here, &std::fs::metadata(&here)?)?;
    let mut links = 0u32;
    while let Some(name) = pending.pop() {
        if name == ".." {
            here.pop();
            continue;
        }
        let next = here.join(&name);
        let meta = match std::fs::symlink_metadata(&next) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        if meta.file_type().is_symlink() {
            if !trusted(meta.uid()) {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    ForeignDirectory(format!(
                        "the way to it passes through {}, a symbolic link that belongs to uid \
                        {}, not to this user (uid {me}) or root: spanguard will not follow \
                        another user's link to a directory",
                        next.display(),
                        meta.uid()
                    )),
                ));
            }
            links += 1;
            if links > MAX_LINKS {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let target = std::fs::read_link(&next)?;
            if target.is_absolute() {
                here = PathBuf::from("/");
            }
            push_reversed(&mut pending, &target);
            continue;
        }
        if !meta.is_dir() {
            // Another user's FIFO or file where the way goes (made first
            // at the fallback state directory's name in /tmp): refused as
            // their directory would be. The tracer started, and lost
            // every span the backend did not take (no spool there).
            if !trusted(meta.uid()) {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    ForeignDirectory(format!(
                        "the way to it passes through {}, {} that belongs to uid {}, not to \
                        this user (uid {me}) or root: another user took the name of a \
                        directory of spanguard's",
                        next.display(),
                        not_a_file_mode(meta.mode()).unwrap_or("a file"),
                        meta.uid()
                    )),
                ));
            }
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        // The directory itself (the last component) is the caller's to
        // judge: ours, made private.
        if !pending.is_empty() {
            check_directory(&next, &meta)?;
        }
        here = next;
    }
    Ok(true)
}

/// Whether group `gid` is the user private group of `owner`: its primary
/// group, named as the user is (as useradd makes such a group), with no
/// other user named as a member. Debian and Ubuntu give each user such a
/// group and a umask of 002, so the directories a user makes (`~/.local`,
/// `~/.local/state`) are group-writable and yet only theirs; refusing
/// those refused spanguard's default directories on a stock desktop.
/// (Debian's OpenSSH allows them in StrictModes for the same reason.) A
/// group that others are members of is not private, and neither is one
/// named otherwise: a group lists no member whose primary group it is, so
/// "users" (gid 100, every user's primary group where a system gives them
/// that one) looked private to each of them, and another user of it could
/// rename a directory on the way and put their own in its place. A user
/// or group that cannot be looked up is not private either.
fn private_group(owner: u32, gid: u32) -> bool {
    let mut buf = vec![0u8; 4096];
    // SAFETY (both lookups and the reads after them): plain data, all-zero
    // is a valid value; a lookup that found its entry wrote it through
    // `found`, and the strings it points to live in `buf`, read before the
    // next lookup reuses it.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let found = looked_up(&mut buf, |buf, found: &mut *mut libc::passwd| unsafe {
        libc::getpwuid_r(owner, &mut pw, buf.as_mut_ptr().cast(), buf.len(), found)
    });
    if !found || pw.pw_gid != gid || pw.pw_name.is_null() {
        return false;
    }
    let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) }.to_owned();
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let found = looked_up(&mut buf, |buf, found: &mut *mut libc::group| unsafe {
        libc::getgrgid_r(gid, &mut gr, buf.as_mut_ptr().cast(), buf.len(), found)
    });
    if !found || gr.gr_name.is_null() {
        return false;
    }
    if unsafe { std::ffi::CStr::from_ptr(gr.gr_name) } != name.as_c_str() {
        return false;
    }
    if gr.gr_mem.is_null() {
        return true;
    }
    (0..)
        .map(|i| unsafe { *gr.gr_mem.add(i) })
        .take_while(|m| !m.is_null())
        .all(|m| unsafe { std::ffi::CStr::from_ptr(m) } == name.as_c_str())
}

/// Runs a `get*_r` lookup into `buf`, grown on ERANGE as those calls ask
/// (a large group needs more than the usual few kilobytes; at most a
/// mebibyte): whether it found its entry.
fn looked_up<T>(
    buf: &mut Vec<u8>,
    mut lookup: impl FnMut(&mut Vec<u8>, &mut *mut T) -> libc::c_int,
) -> bool {
    loop {
        let mut found: *mut T = std::ptr::null_mut();
        let rc = lookup(buf, &mut found);
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            let grown = buf.len() * 2;
            buf.resize(grown, 0);
            continue;
        }
        return rc == 0 && !found.is_null();
    }
}

/// The error inside `ensure_private_dir`'s refusal of a directory that
/// belongs to another user (as opposed to one that merely cannot be made).
#[derive(Debug)]
pub struct ForeignDirectory(pub String);

impl std::fmt::Display for ForeignDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ForeignDirectory {}

/// Whether `e` is `ensure_private_dir` refusing another user's directory.
pub fn is_foreign_directory(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<ForeignDirectory>().is_some())
}

fn open_raw(path: &Path, flags: libc::c_int) -> io::Result<File> {
    let c = c_path(path)?;
    // SAFETY: a NUL-terminated path; the mode is only used with O_CREAT.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            FILE_MODE as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// This process's file size limit (RLIMIT_FSIZE: `ulimit -f`, systemd's
/// `LimitFSIZE=`), None when there is none. Making a file longer
/// (`ftruncate`, `fallocate`, a write that starts at the limit) on a
/// thread where SIGXFSZ is not blocked kills the whole program, whose own
/// choice the limit is; the exporter's thread blocks the signal, and its
/// writes fail with EFBIG, counted as any write that fails.
/// Async-signal-safe (one system call).
pub fn file_size_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid resource and a struct to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit) } != 0 {
        return None;
    }
    (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// Err (`FileTooLarge`) when a file of `len` bytes is over this
/// process's `file_size_limit`: checked before a file is sized on the
/// program's thread (the flight recorder's, at `Tracer::new`).
pub fn within_file_size_limit(len: u64) -> io::Result<()> {
    match file_size_limit() {
        Some(limit) if len > limit => Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!(
                "a file of {len} bytes is over this process's file size limit (RLIMIT_FSIZE, \
                 `ulimit -f`: {limit} bytes), past which the kernel kills the program \
                 (SIGXFSZ)"
            ),
        )),
        _ => Ok(()),
    }
}

/// Creates `path`, which must not exist yet, 0600, for writing (and
/// reading, with `read`).
pub fn create_new(path: &Path, read: bool) -> io::Result<File> {
    let access = if read { libc::O_RDWR } else { libc::O_WRONLY };
    open_raw(path, access | libc::O_CREAT | libc::O_EXCL)
}

/// Creates `path` (which must not exist yet) 0600, for writing (and
/// reading, with `read`), locked by this process before anyone can find
/// it under that name.
///
/// Recovery takes a file found under a name like this one whose lock is
/// free for one a dead process left, and deletes it when it is empty. A
/// file made at `path` and then locked could be found in between by a
/// recovery beside us (a second program with the same spool directory
/// starting up, `spanguard replay`): it deleted our empty file, and what
/// we wrote to it later (a crash dump) was lost with its name. So the file
/// is made under a hidden temporary name beside `path` (recovery and the
/// CLI take no hidden name of this form), locked, and only then moved to
/// `path`, never over anything there (`AlreadyExists`, as `create_new`).
///
/// A lock not obtained means another open file of it holds one (someone
/// opened the fresh file first): that file is not ours to rely on, so its
/// temporary name is removed and another file made.
pub fn create_locked(path: &Path, read: bool) -> io::Result<LockedFile> {
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    for _ in 0..CREATE_LOCKED_TRIES {
        let mut hidden = std::ffi::OsString::from(".");
        hidden.push(name);
        hidden.push(format!(
            ".{}-{}{MAKING_SUFFIX}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        ));
        let temporary = path.with_file_name(hidden);
        let opened = BeforeOpen::now();
        let file = match create_new(&temporary, read) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            made => made?,
        };
        #[cfg(test)]
        run_after_create(&temporary);
        // Not locked: someone opened the fresh file first, or a fork came
        // between its making and its lock (a child holds it open).
        let (file, locked) = LockedFile::lock(file, opened);
        if !locked {
            let _ = std::fs::remove_file(&temporary);
            continue;
        }
        return match rename_new(&temporary, path) {
            Ok(()) => Ok(file),
            // Its temporary name was removed before we locked it: a
            // recovery beside us took it for a dead maker's
            // (`making_file_of`; a maker in another pid namespace, or one
            // stopped for long, looks dead). Another file is made.
            Err(e) if e.kind() == io::ErrorKind::NotFound && unlinked(file.file()) => continue,
            Err(e) => {
                let _ = std::fs::remove_file(&temporary);
                Err(e)
            }
        };
    }
    Err(io::Error::new(
        io::ErrorKind::WouldBlock,
        format!(
            "{}: every file made for it was locked by another process first",
            path.display()
        ),
    ))
}

/// How many files `create_locked` makes before it gives up.
const CREATE_LOCKED_TRIES: u32 = 8;

/// How the temporary name `create_locked` makes a file under ends.
const MAKING_SUFFIX: &str = ".tmp";

/// Whether the open `file` has no name left.
fn unlinked(file: &File) -> bool {
    file.metadata().is_ok_and(|m| m.nlink() == 0)
}

/// For a name `create_locked` makes a file under before it has its own
/// (`.<name>.<pid>-<n>.tmp`): the name it was being made for and the pid
/// of its maker. None for any other name (`name` must itself be no hidden
/// name, and `pid` and `n` numbers).
pub fn making_file_of(hidden: &str) -> Option<(&str, u32)> {
    let rest = hidden.strip_prefix('.')?.strip_suffix(MAKING_SUFFIX)?;
    let (name, maker) = rest.rsplit_once('.')?;
    let (pid, n) = maker.split_once('-')?;
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if name.is_empty() || name.starts_with('.') || !number(pid) || !number(n) {
        return None;
    }
    Some((name, pid.parse().ok()?))
}

/// Renames `from` to `to`, which must not exist (`AlreadyExists`): never
/// over anything there, nor through it (a link at `to` is a name taken).
pub(crate) fn rename_new(from: &Path, to: &Path) -> io::Result<()> {
    let (from_c, to_c) = (c_path(from)?, c_path(to)?);
    #[cfg(test)]
    let noreplace = !tests::without_rename_noreplace();
    #[cfg(not(test))]
    let noreplace = true;
    if noreplace {
        // SAFETY: NUL-terminated paths.
        let renamed = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                from_c.as_ptr(),
                libc::AT_FDCWD,
                to_c.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if renamed == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            // The file system (NFS, some FUSE ones) or a seccomp filter
            // does without it: look first, below.
            Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::EPERM) => {}
            _ => return Err(e),
        }
    }
    // A hard link takes `to` only while nothing is there (EEXIST
    // otherwise, in one step, NFS included), then the temporary name goes.
    // Looking first and then renaming, as this did, replaced what another
    // process made at `to` between the look and the rename: their file
    // lost its name, and a crash dump of theirs written to it later its
    // spans. Killed between the two, the temporary name is left beside
    // `to`, the same file: recovery removes that name (`making_file_of`).
    #[cfg(test)]
    tests::before_the_fallback(to);
    #[cfg(test)]
    let link = !tests::without_link();
    #[cfg(not(test))]
    let link = true;
    if link {
        // SAFETY: NUL-terminated paths; flags 0: `from` is not followed.
        let linked = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                from_c.as_ptr(),
                libc::AT_FDCWD,
                to_c.as_ptr(),
                0,
            )
        };
        if linked == 0 {
            let _ = std::fs::remove_file(from);
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EEXIST) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{}: exists", to.display()),
                ));
            }
            // No hard links here either (FAT, some FUSE ones): look first.
            Some(libc::EPERM | libc::EOPNOTSUPP | libc::ENOSYS | libc::EMLINK) => {}
            _ => return Err(e),
        }
    }
    // The last resort, on a file system with neither. Between this look
    // and the rename only this user or root can put something at `to`
    // (the directory is private, `ensure_private_dir`), and what they put
    // there loses its name; a rename follows no link.
    match std::fs::symlink_metadata(to) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{}: exists", to.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::rename(from, to),
        Err(e) => Err(e),
    }
}

/// What a test runs after `create_locked` made a file (`set_after_create`).
#[cfg(test)]
type AfterCreate = Box<dyn FnMut(&Path)>;

#[cfg(test)]
thread_local! {
    /// Run by `create_locked` on this thread once it has made a file, with
    /// the name it made it under: where another process would find it.
    static AFTER_CREATE: std::cell::RefCell<Option<AfterCreate>> =
        const { std::cell::RefCell::new(None) };
}

/// Sets (or, with `None`, clears) what `create_locked` runs on this thread
/// right after it made a file.
#[cfg(test)]
pub(crate) fn set_after_create(hook: Option<AfterCreate>) {
    AFTER_CREATE.with(|h| *h.borrow_mut() = hook);
}

#[cfg(test)]
fn run_after_create(path: &Path) {
    // Taken out while it runs: it may make files itself.
    if let Some(mut hook) = AFTER_CREATE.with(|h| h.borrow_mut().take()) {
        hook(path);
        AFTER_CREATE.with(|h| {
            let mut slot = h.borrow_mut();
            if slot.is_none() {
                *slot = Some(hook);
            }
        });
    }
}

/// What a test runs in `LockedFile::lock`, before the file is made known
/// to the fork handler (`set_before_registering`).
#[cfg(test)]
type BeforeRegistering = Box<dyn FnOnce()>;

#[cfg(test)]
thread_local! {
    /// Run once by `LockedFile::lock` on this thread, between the file's
    /// open and its registration: where another thread of ours may fork.
    static BEFORE_REGISTERING: std::cell::RefCell<Option<BeforeRegistering>> =
        const { std::cell::RefCell::new(None) };
}

/// Sets what the next `LockedFile::lock` on this thread runs before it
/// makes its file known to the fork handler.
#[cfg(test)]
pub(crate) fn set_before_registering(hook: BeforeRegistering) {
    BEFORE_REGISTERING.with(|h| *h.borrow_mut() = Some(hook));
}

/// Forks, with the fork handlers a tracer registers, a child that runs
/// them and then waits to be killed (`end_waiting_child`): a worker of a
/// prefork server, alive while its parent goes on.
#[cfg(test)]
pub(crate) fn fork_a_waiting_child() -> libc::pid_t {
    crate::ffi::tracer::register_fork_handlers();
    // The child runs the fork handlers, then only pauses.
    let pid = crate::forking_tests::fork();
    if pid == 0 {
        loop {
            // SAFETY: waits for a signal (the parent's SIGKILL).
            unsafe { libc::pause() };
        }
    }
    assert!(pid > 0, "fork");
    pid
}

/// Kills and reaps a child of `fork_a_waiting_child`.
#[cfg(test)]
pub(crate) fn end_waiting_child(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, &mut status, 0);
    }
}

/// Gives `file` disk blocks for `[offset, offset + len)` now
/// (`posix_fallocate`), so that writing them through a shared mapping
/// cannot fail later: a page of a sparse file that the disk has no room
/// for is a SIGBUS at the store that first writes it, which would kill the
/// program; a reservation that fails here is an error to handle instead.
pub fn reserve(file: &File, offset: u64, len: u64) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    loop {
        // SAFETY: an fd we own; the call changes no byte of the file.
        let err = unsafe {
            libc::posix_fallocate(file.as_raw_fd(), offset as libc::off_t, len as libc::off_t)
        };
        match err {
            0 => return Ok(()),
            libc::EINTR => continue,
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

/// Opens `path` for appending, creating it 0600 if needed. An existing
/// path must be a regular file of ours with no other name (never a link,
/// a FIFO, another user's file or a hard link to a file elsewhere: the
/// sink would write spans wherever it leads). Readable
/// too: the sink looks at the last byte to know whether a line was left
/// half written.
pub fn open_append(path: &Path) -> io::Result<File> {
    let file = open_raw(
        path,
        libc::O_RDWR | libc::O_APPEND | libc::O_CREAT | libc::O_NONBLOCK,
    )
    .map_err(|e| explain_open_error(path, e))?;
    let meta = file.metadata()?;
    check_ours_alone(&meta).map_err(|why| refused(path, why))?;
    if meta.mode() & 0o077 != 0 {
        // Ours, from a version that made files 0644: private from now on.
        // SAFETY: fchmod on our own open file.
        unsafe { libc::fchmod(file.as_raw_fd(), FILE_MODE as libc::mode_t) };
    }
    Ok(file)
}

/// A file that could not be used, renamed out of the way (by the spool,
/// crash recovery or the local sink), for the exporter to count and tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetAside {
    /// Its new name.
    pub path: PathBuf,
    pub reason: String,
}

/// Sets aside (`set_aside`) what sits at `path` in a directory of ours
/// when it is not a file we made (a link, a FIFO, a device, another
/// user's file), without opening or following it: a file name of ours
/// that something else took must not keep us from writing there for good.
/// Its new name and why it was moved, when something was.
pub fn set_aside_if_foreign(path: &Path) -> io::Result<Option<SetAside>> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let Err(why) = check_ours_alone(&meta) else {
        return Ok(None);
    };
    Ok(Some(SetAside {
        path: set_aside(path)?,
        reason: why,
    }))
}

/// Why a file found in a directory of ours was not opened.
#[derive(Debug)]
pub enum Refusal {
    /// It is gone (another process took it meanwhile).
    Gone,
    /// It is not a file we made: a link, a FIFO, a socket, a device, a
    /// directory, or another user's; or it is one of ours that this user
    /// may not open (its mode or an access rule denies it), which no retry
    /// would read either. Set it aside; never read it.
    Foreign(String),
    /// Opening failed for a reason that may pass (no descriptors left, ...).
    Failed(io::Error),
}

/// Opens a file found in a directory of ours, for reading (and writing,
/// with `write`): only a regular file owned by this user, never through a
/// link, and without blocking.
pub fn open_found(path: &Path, write: bool) -> Result<File, Refusal> {
    let me = effective_uid();
    open_found_of(libc::AT_FDCWD, path, write, [me, me])
}

/// Opens a file found in a spool directory to look at it only (`spanguard
/// show` and `spanguard spool`, which lock, move and delete nothing), as
/// `open_found` opens it, except that a file of the directory's owner is
/// read too, not only one of this process's user: a person looking at
/// another user's spool (root, or someone the owner let read it) sees what
/// that user's tracers will send, where every batch used to read as
/// "unreadable (never sent)"; a file of yet another user, which those
/// tracers set aside unread, is refused here too.
///
/// The directory is opened first and the file opened in it (`openat`), so
/// the owner judged is that of the directory the file is found in: its
/// owner was read by name and the file opened by its whole path, and
/// between the two anyone who may rename a directory on the way could put
/// another directory in its place, with other files and another owner.
/// The directory itself may be a symbolic link (a spool moved to another
/// disk, as `ensure_private_dir` allows): what counts is the directory
/// opened, whatever led there.
pub fn open_found_to_look(path: &Path) -> Result<File, Refusal> {
    let (dir, name) = match (path.parent(), path.file_name()) {
        (Some(d), Some(n)) if !d.as_os_str().is_empty() => (d, n),
        (_, Some(n)) => (Path::new("."), n),
        (_, None) => return Err(Refusal::Foreign("not a file name".to_string())),
    };
    let c = c_path(dir).map_err(Refusal::Failed)?;
    // SAFETY: a NUL-terminated path; the fd is owned below. O_DIRECTORY:
    // anything else (a FIFO) is refused before it is opened. O_PATH: a
    // directory this user may pass through but not list (0711) is opened
    // all the same, as a path through it always was.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(Refusal::Failed(io::Error::last_os_error()));
    }
    // SAFETY: a fresh fd we own.
    let dir = unsafe { File::from_raw_fd(fd) };
    let owner = dir.metadata().map_err(Refusal::Failed)?.uid();
    #[cfg(test)]
    tests::between_the_directory_and_its_file();
    open_found_of(
        dir.as_raw_fd(),
        Path::new(name),
        false,
        [effective_uid(), owner],
    )
}

/// `open_found`, for a file that must belong to one of `owners`, at `path`
/// in the directory `at` (`libc::AT_FDCWD`: `path` as it is).
fn open_found_of(at: RawFd, path: &Path, write: bool, owners: [u32; 2]) -> Result<File, Refusal> {
    let c = c_path(path).map_err(Refusal::Failed)?;
    // Look before opening: opening a device can have effects of its own.
    let before = match lstat_at(at, &c) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Refusal::Gone),
        Err(e) => return Err(Refusal::Failed(e)),
    };
    check_kind_and_owner(before.st_mode, before.st_uid, owners).map_err(Refusal::Foreign)?;
    let access = if write { libc::O_RDWR } else { libc::O_RDONLY };
    let file = match open_at(at, &c, access | libc::O_NONBLOCK) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Refusal::Gone),
        Err(e) => {
            return Err(match e.raw_os_error() {
                Some(libc::ELOOP) | Some(libc::ENXIO) | Some(libc::EISDIR) => {
                    Refusal::Foreign("not a regular file".to_string())
                }
                // A file of ours chmod 000 (or denied by an ACL or a
                // security module): skipped as a passing failure, it was
                // skipped at every start for good, its spans neither sent
                // nor counted, and nothing said.
                Some(libc::EACCES) | Some(libc::EPERM) => {
                    Refusal::Foreign(format!("this user may not open it ({e})"))
                }
                _ => Refusal::Failed(e),
            });
        }
    };
    let after = file.metadata().map_err(Refusal::Failed)?;
    check_owned(&after, owners).map_err(Refusal::Foreign)?;
    if (after.dev(), after.ino()) != (before.st_dev, before.st_ino) {
        // Swapped between the look and the open: look again next time.
        return Err(Refusal::Gone);
    }
    Ok(file)
}

/// `lstat` of `name` in the directory `at` (`fstatat`, a link not followed).
fn lstat_at(at: RawFd, name: &CString) -> io::Result<libc::stat> {
    // SAFETY: plain data, all-zero is a valid value; fstatat writes it
    // whole on success, and a NUL-terminated name.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatat(at, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// `open_raw` of `name` in the directory `at` (`openat`), never through a
/// link, close-on-exec; nothing is created.
fn open_at(at: RawFd, name: &CString, flags: libc::c_int) -> io::Result<File> {
    // SAFETY: a NUL-terminated name; no O_CREAT, so no mode.
    let fd = unsafe {
        libc::openat(
            at,
            name.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// What `meta` (of `symlink_metadata`: a link is not followed) is when it
/// is not a regular file, in the words a set-aside file is reported with
/// ("a FIFO"); None for a regular file.
pub fn not_a_file(meta: &std::fs::Metadata) -> Option<&'static str> {
    not_a_file_mode(meta.mode())
}

/// `not_a_file` of a file whose `st_mode` is `mode`.
fn not_a_file_mode(mode: u32) -> Option<&'static str> {
    Some(match mode & libc::S_IFMT {
        libc::S_IFREG => return None,
        libc::S_IFLNK => "a symbolic link",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        libc::S_IFDIR => "a directory",
        _ => "a device",
    })
}

/// Whether `meta` (of `symlink_metadata`) is a regular file of this user's.
pub fn is_ours(meta: &std::fs::Metadata) -> bool {
    check_ours(meta).is_ok()
}

/// None when `meta` is a regular file owned by this user; else why not.
fn check_ours(meta: &std::fs::Metadata) -> Result<(), String> {
    let me = effective_uid();
    check_owned(meta, [me, me])
}

/// `check_ours`, and the file has no other name: what is appended to
/// under a name of ours must be no other file of the user's. A hard link
/// planted at the sink file's name while the directory was open to others
/// (to the user's ~/.bashrc, where fs.protected_hardlinks is off) passed
/// as a file of ours, and every batch was appended to that file.
fn check_ours_alone(meta: &std::fs::Metadata) -> Result<(), String> {
    check_ours(meta)?;
    match meta.nlink() {
        0 | 1 => Ok(()),
        n => Err(format!(
            "it has {n} names (hard links): another name of a file elsewhere"
        )),
    }
}

/// None when `meta` is a regular file owned by one of `owners` (the
/// first: this user); else why not.
fn check_owned(meta: &std::fs::Metadata, owners: [u32; 2]) -> Result<(), String> {
    check_kind_and_owner(meta.mode(), meta.uid(), owners)
}

/// `check_owned` of a file of mode `mode` (its type bits) and owner `uid`.
fn check_kind_and_owner(mode: u32, uid: u32, owners: [u32; 2]) -> Result<(), String> {
    if let Some(what) = not_a_file_mode(mode) {
        return Err(what.to_string());
    }
    if !owners.contains(&uid) {
        let whose = match owners {
            [me, owner] if me == owner => format!("{me}"),
            [me, owner] => format!("{me} or the directory's owner {owner}"),
        };
        return Err(format!("owned by uid {uid}, not {whose}"));
    }
    Ok(())
}

fn refused(path: &Path, why: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{}: {why}: refusing it", path.display()),
    )
}

fn explain_open_error(path: &Path, e: io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(libc::ELOOP) => refused(path, "a symbolic link".to_string()),
        Some(libc::ENXIO) => refused(path, "not a regular file".to_string()),
        _ => e,
    }
}

/// Renames a file that cannot be used to `<name>.unreadable` (never over
/// another such file), so that nothing reads it again and a person can
/// look at it. Returns the new path. The name keeps its bytes as they
/// are (not made UTF-8: a replacement character is three bytes for one)
/// and is cut to leave room for the suffix within `NAME_MAX`: a foreign
/// `*.sgspool` of 250 bytes was never set aside (the new name too long),
/// read and refused again at every replay, and said by none (fuzz target
/// spool_file).
pub fn set_aside(path: &Path) -> io::Result<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    const NAME_MAX: usize = 255;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?
        .as_bytes();
    for n in 0..100u32 {
        let tail = if n == 0 {
            SET_ASIDE_SUFFIX.to_string()
        } else {
            format!(".{n}{SET_ASIDE_SUFFIX}")
        };
        let mut new = name[..name.len().min(NAME_MAX - tail.len())].to_vec();
        new.extend_from_slice(tail.as_bytes());
        let target = path.with_file_name(std::ffi::OsString::from_vec(new));
        // In one step (`rename_new`): looking for a free name and then
        // renaming let another process setting aside a file of this name
        // at once (two names cut to the same bytes, or one made again)
        // take it between the two, and one rename replaced the other's
        // file set aside, a person's evidence gone.
        match rename_new(path, &target) {
            Ok(()) => return Ok(target),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "too many files set aside under this name",
    ))
}

/// Takes an exclusive lock without waiting. False when another open file
/// (another process, or another descriptor of ours) holds it.
pub fn try_lock(file: &File) -> bool {
    // SAFETY: flock on a valid fd; the lock lives as long as the open file.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Descriptors that hold a lock on a file of ours, by number, so that a
/// forked child closes them (`close_held_locks_in_child`). Lock-free: the
/// child runs it in a fork handler, where a lock held by another thread of
/// the parent would never be released.
static HELD_LOCKS: [AtomicI32; 1024] = [const { AtomicI32::new(-1) }; 1024];

fn register_held(fd: RawFd) {
    for slot in HELD_LOCKS.iter() {
        // AcqRel/Acquire: a child sees every number registered before fork.
        if slot
            .compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return;
        }
    }
    // Full (over a thousand locked files): a child would keep this one
    // locked until it exits; recovery retries it later.
}

fn unregister_held(fd: RawFd) {
    for slot in HELD_LOCKS.iter() {
        if slot
            .compare_exchange(fd, -1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return;
        }
    }
}

/// In a forked child, before anything else: closes every descriptor that
/// holds a lock for the parent. The parent's lock stays (it is the open
/// file's, and the parent keeps its own descriptor); the child just no
/// longer shares it, so the parent's files become recoverable when the
/// parent dies, whatever the child does. The structures that owned these
/// descriptors belong to the parent's tracers, which the child never runs
/// or drops.
pub fn close_held_locks_in_child() {
    for slot in HELD_LOCKS.iter() {
        let fd = slot.swap(-1, Ordering::AcqRel);
        if fd >= 0 {
            // SAFETY: the fd was registered by a LockedFile of the parent,
            // which is never dropped in the child.
            unsafe { libc::close(fd) };
        }
    }
    // Nor are the parent's files open here any more (`OpenHere`): the
    // child recovers its parent's flight file once the parent dies.
    for slot in OPEN_HERE.iter() {
        slot.store(0, Ordering::Release);
    }
}

/// Takes this process's record lock (fcntl `F_SETLK`, a write lock on the
/// first byte) on `file` without waiting. Ok(false) when another process
/// holds it; Err when the file's system keeps no record locks (or
/// another failure).
///
/// Unlike `try_lock`'s flock, which is the open file's and so shared by
/// every process that holds a descriptor of it, a record lock is this
/// process's alone: no child has it, however made (a raw `clone` or
/// `fork` system call, which runs no fork handler to close what the
/// child inherited, too), and it goes when this process dies. A flight
/// file's owner holds one beside its flock, so that a recovery can tell a
/// child holding a dead owner's flock from a live owner (see
/// `recovery::claim`). It also goes, though, as soon as this process
/// closes any descriptor of the file, however opened: a file held so is
/// never opened elsewhere in this process (`OpenHere`).
pub fn try_record_lock(file: &File) -> io::Result<bool> {
    set_byte_lock(file, libc::F_SETLK, OWNER_BYTE)
}

/// The byte of a flight file that its owner process holds a record lock on
/// (`try_record_lock`) and that a recovery claims (`try_claim_lock`).
pub(crate) const OWNER_BYTE: i64 = 0;
/// The byte of a flight file that its owner's open file (the one holding
/// its flock) holds an open file description lock on
/// (`try_open_file_lock`), and that no recovery takes.
pub(crate) const OPEN_FILE_BYTE: i64 = 1;

/// Takes an open file description lock (fcntl `F_OFD_SETLK`, a write lock
/// on the byte `byte`) on `file` without waiting. Ok(false) when another
/// open file holds one there, or a process (this one too) a record lock;
/// Err when the kernel or the file's system keeps no such locks.
///
/// Like a flock, it is the open file's: shared by every process that holds
/// a descriptor of it (a child made by a raw `clone` too), let go of when
/// the last of them closes it or dies, whatever their PID namespace, and
/// never by the close of another descriptor of the file (a record lock
/// goes at any close in its process). Unlike a flock, another open file
/// can ask whether it is held without taking it (`open_file_lock_held`).
pub fn try_open_file_lock(file: &File, byte: i64) -> io::Result<bool> {
    set_byte_lock(file, libc::F_OFD_SETLK, byte)
}

/// Whether another open file holds an open file description lock on
/// `byte` of `file`, or any process (this one too) a record lock there
/// (fcntl `F_OFD_GETLK`): nothing is taken. Err when the kernel or the
/// file's system keeps no such locks.
pub fn open_file_lock_held(file: &File, byte: i64) -> io::Result<bool> {
    Ok(byte_lock_holder(file, byte)?.is_some())
}

/// Who holds a lock on `byte` of `file` that another open file's would
/// conflict with (fcntl `F_OFD_GETLK`: nothing is taken): None when none
/// does; Some(-1) for an open file description lock (a recovery's claim,
/// an owner's `OPEN_FILE_BYTE` lock); for a record lock, Some of its
/// process's pid as this PID namespace sees it (0 for one it cannot see).
/// A record lock goes when its process dies, whatever its namespace: one
/// held is a live process's. Err when the kernel or the file's system
/// keeps no such locks.
pub fn byte_lock_holder(file: &File, byte: i64) -> io::Result<Option<i32>> {
    let mut lock = byte_lock(byte);
    // SAFETY: fcntl on a valid fd with a valid flock struct, which it
    // writes back.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut lock) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((lock.l_type != libc::F_UNLCK as libc::c_short).then_some(lock.l_pid))
}

/// A recovery's claim on a flight file: an open file description lock on
/// its owner byte (`OWNER_BYTE`), which conflicts with the owner's record
/// lock there (in this process too: another tracer's file) and with every
/// other recovery's claim, whatever its process or namespace, and stays
/// while this open file does (a close of another descriptor of the file
/// in this process does not let go of it). Where the kernel has no such
/// locks, the record lock (`try_record_lock`), as before. Ok(false) when
/// the owner or another recovery holds it.
pub fn try_claim_lock(file: &File) -> io::Result<bool> {
    match try_open_file_lock(file, OWNER_BYTE) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => try_record_lock(file),
        claimed => claimed,
    }
}

/// A write lock on the byte `byte`, for `F_SETLK`, `F_OFD_SETLK` or
/// `F_OFD_GETLK` (which want `l_pid` 0).
fn byte_lock(byte: i64) -> libc::flock {
    // SAFETY: plain data, all-zero is a valid value.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = byte as libc::off_t;
    lock.l_len = 1;
    lock
}

/// `byte_lock` taken with `cmd` (`F_SETLK` or `F_OFD_SETLK`) without
/// waiting: Ok(false) when another holds a conflicting lock.
fn set_byte_lock(file: &File, cmd: libc::c_int, byte: i64) -> io::Result<bool> {
    let lock = byte_lock(byte);
    // SAFETY: fcntl on a valid fd with a valid flock struct.
    if unsafe { libc::fcntl(file.as_raw_fd(), cmd, &lock) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(e),
    }
}

/// The processes that took the flocks held on `file` (`/proc/locks`):
/// the one that called flock, not those that share its open file since
/// (a child that inherited it). 0 for a taker this process cannot see
/// (another pid namespace's, or one gone whose pid the kernel freed, as
/// it shows them outside the first namespace). Err when `/proc/locks`
/// cannot be read.
pub fn flock_takers(file: &File) -> io::Result<Vec<i32>> {
    let meta = file.metadata()?;
    // As the kernel prints them: major and minor in hex, the inode.
    let (major, minor) = (libc::major(meta.dev()), libc::minor(meta.dev()));
    let id = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let locks = std::fs::read_to_string("/proc/locks")?;
    Ok(locks
        .lines()
        .filter_map(|line| {
            // "<n>: FLOCK ADVISORY WRITE <pid> <dev:ino> <start> <end>";
            // a waiter's line has "->" before FLOCK.
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [_, "FLOCK", _, _, pid, at, ..] if *at == id => pid.parse().ok(),
                _ => None,
            }
        })
        .collect())
}

/// Files this process has open to hold or claim as a whole (`OpenHere`):
/// a key of their device and inode in the slot the key picks, 0 when
/// free. Lock-free, as `HELD_LOCKS`, for the fork handler.
static OPEN_HERE: [AtomicU64; 256] = [const { AtomicU64::new(0) }; 256];

/// A file of the spool directory this process has open to hold (its
/// flight file) or to claim (a recovery), known so until dropped: no
/// other part of this process opens it meanwhile (`OpenHere::take` says
/// no). Opened and closed by another part (another tracer's recovery, a
/// look at what dead processes' files use), a file's record lock
/// (`try_record_lock`) went with that close, and a second recovery of
/// this process took a file the first was recovering (a record lock
/// never stops its own process).
pub struct OpenHere {
    slot: usize,
}

impl OpenHere {
    /// Marks the file `meta` describes (of `symlink_metadata`, looked at
    /// before it is opened) as open here. None when it is already, or when
    /// another file open here has its slot (rare: that one is let be for
    /// now, tried again at a later look).
    pub fn take(meta: &std::fs::Metadata) -> Option<OpenHere> {
        // Never 0 (a free slot).
        let key = (meta.dev().rotate_left(32) ^ meta.ino()).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let slot = (key >> 56) as usize % OPEN_HERE.len();
        // AcqRel/Acquire: pairs with the Release of the drop that freed it.
        OPEN_HERE[slot]
            .compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            .then_some(OpenHere { slot })
    }
}

impl Drop for OpenHere {
    fn drop(&mut self) {
        OPEN_HERE[self.slot].store(0, Ordering::Release);
    }
}

/// How many forks this process began (`fork_coming`, the fork's prepare
/// handler), for `BeforeOpen`.
static FORKS: AtomicU64 = AtomicU64::new(0);

/// The fork's prepare handler, in the thread that forks, before the child
/// is made: a file another thread opened but has not yet made known
/// (`LockedFile::lock`) may be copied into the child.
pub fn fork_coming() {
    FORKS.fetch_add(1, Ordering::SeqCst);
}

/// When a file to be locked was opened, as forks go: taken just before the
/// open (`LockedFile::lock`).
///
/// A fork between a file's open and its registration in `HELD_LOCKS` gave
/// the child a descriptor its fork handler did not know, so did not close:
/// the same open file as ours, so the lock we took next was the child's
/// too, and stayed after we let go of it for as long as the child lived.
/// A spool file set back, a crash file's pending name, a flight file
/// stayed locked: no replay or recovery took it while a prefork server's
/// worker lived.
#[derive(Clone, Copy, Debug)]
pub struct BeforeOpen(u64);

impl BeforeOpen {
    pub fn now() -> BeforeOpen {
        BeforeOpen(FORKS.load(Ordering::SeqCst))
    }

    /// Whether a fork began since.
    pub fn forked_since(self) -> bool {
        FORKS.load(Ordering::SeqCst) != self.0
    }
}

/// A file this process holds a lock on (or means to): known to the fork
/// handler while it is open. Dropping it unlocks and closes it.
pub struct LockedFile {
    file: File,
}

impl LockedFile {
    /// Wraps `file`, opened after `opened` was taken, and takes its lock.
    /// The file is kept either way; `.1` says whether the lock was taken:
    /// false when another open file holds it, or when a fork began since
    /// `opened` (a child may hold this open file, unknown to its fork
    /// handler: a lock taken on it would be the child's too). Take that as
    /// "busy": drop it, and open the file again to lock it.
    pub fn lock(file: File, opened: BeforeOpen) -> (LockedFile, bool) {
        #[cfg(test)]
        tests::before_registering();
        register_held(file.as_raw_fd());
        // SeqCst, as the count's: the registration is seen by a child
        // forked after this look, or the fork is seen by it.
        std::sync::atomic::fence(Ordering::SeqCst);
        let locked = !opened.forked_since() && try_lock(&file);
        (LockedFile { file }, locked)
    }

    /// Wraps `file`, a second descriptor of a file locked through another
    /// (`try_clone`), known to the fork handler from now on: made before
    /// the other's `lock`, so that a fork cannot come between that lock
    /// and this descriptor's registration.
    pub fn hold(file: File) -> LockedFile {
        #[cfg(test)]
        tests::before_registering();
        register_held(file.as_raw_fd());
        LockedFile { file }
    }

    pub fn file(&self) -> &File {
        &self.file
    }
}

impl std::borrow::Borrow<File> for LockedFile {
    fn borrow(&self) -> &File {
        &self.file
    }
}

impl AsRawFd for LockedFile {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl Drop for LockedFile {
    fn drop(&mut self) {
        // Unregistered before the File closes the number, which may then be
        // reused by anything: the fork handler must never close that.
        unregister_held(self.file.as_raw_fd());
    }
}

#[cfg(test)]
mod tests {

    /// A file whose name leaves no room for the suffix, or is no UTF-8, is
    /// set aside all the same, under its own bytes cut to fit.
    #[test]
    fn a_name_too_long_or_not_utf8_is_set_aside_cut_to_fit() {
        use std::os::unix::ffi::OsStrExt;
        let dir = std::env::temp_dir().join(format!("sg-set-aside-long-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let long = format!("{}.sgspool", "x".repeat(247));
        let mut odd = b"\xff\xfe-".to_vec();
        odd.extend_from_slice(&[b'y'; 240]);
        odd.extend_from_slice(b".sgspool");
        for name in [long.as_bytes(), &odd[..], long.as_bytes()] {
            let path = dir.join(std::ffi::OsStr::from_bytes(name));
            std::fs::write(&path, b"not a batch").unwrap();
            let to = set_aside(&path).expect("set aside");
            let to_name = to.file_name().unwrap().as_bytes();
            assert!(to_name.len() <= 255, "{} bytes", to_name.len());
            assert!(to_name.ends_with(SET_ASIDE_SUFFIX.as_bytes()));
            assert!(to_name.starts_with(&name[..200]), "its own bytes kept");
            assert!(!path.exists() && to.exists());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Two processes setting aside files of one name at once (two names
    /// cut to the same bytes to fit the suffix, or the same name made
    /// again) each keep theirs: looking for a free name and then renaming
    /// let the second rename replace the first's `.unreadable` file, a
    /// person's evidence gone.
    #[test]
    fn files_set_aside_at_once_under_one_name_are_both_kept() {
        let dir = temp_dir("set-aside-race");
        std::fs::create_dir_all(&dir).expect("dir");
        let prefix = "r".repeat(250);
        for round in 0..1500u32 {
            let sub = dir.join(format!("{round}"));
            std::fs::create_dir(&sub).expect("sub");
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
            let handles: Vec<_> = ["a", "b"]
                .into_iter()
                .map(|who| {
                    let path = sub.join(format!("{prefix}{who}"));
                    std::fs::write(&path, who).expect("file");
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        barrier.wait();
                        set_aside(&path).expect("set aside")
                    })
                })
                .collect();
            let mut kept: Vec<_> = handles
                .into_iter()
                .map(|h| std::fs::read_to_string(h.join().expect("thread")).unwrap_or_default())
                .collect();
            kept.sort();
            assert_eq!(
                kept,
                ["a", "b"],
                "round {round}: a file set aside was replaced"
            );
            assert_eq!(
                std::fs::read_dir(&sub).expect("list").count(),
                2,
                "round {round}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A full filesystem passes access(2): `spanguard check` said a sink on
    /// a 1 MB tmpfs filled up was fine, and every span written there failed.
    /// Root may use the blocks reserved for it (ext4's 5%), others may not.
    #[test]
    fn a_full_filesystem_has_no_room_left() {
        let room = |total, available, free| Room {
            total,
            available,
            free,
        };
        let plenty = room(100, 10, 10);
        let full = Some("is full (no space left)");
        assert_eq!(no_room_left(false, room(100, 0, 0), plenty), full);
        assert_eq!(no_room_left(false, room(100, 0, 50), plenty), full);
        assert_eq!(no_room_left(true, room(100, 0, 50), plenty), None);
        assert_eq!(no_room_left(true, room(100, 0, 0), plenty), full);
        assert_eq!(
            no_room_left(false, room(100, 5, 5), room(100, 0, 0)),
            Some("has no file left to make (no inode free)")
        );
        assert_eq!(no_room_left(false, room(100, 5, 5), plenty), None);
        // A filesystem that counts no blocks or files (btrfs counts no
        // files): not full for it.
        assert_eq!(no_room_left(false, room(0, 0, 0), room(0, 0, 0)), None);
        // A filesystem whose free space this test can read: not judged full.
        let dir = temp_dir("room");
        std::fs::create_dir_all(&dir).expect("a directory");
        assert!(not_writable(&dir).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sg-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    thread_local! {
        /// Run by `open_found_to_look` between reading the directory's
        /// owner and opening the file: where another user would swap it.
        static BETWEEN: std::cell::RefCell<Option<Box<dyn FnOnce()>>> =
            const { std::cell::RefCell::new(None) };
    }

    pub(super) fn before_registering() {
        if let Some(hook) = BEFORE_REGISTERING.with(|h| h.borrow_mut().take()) {
            hook();
        }
    }

    thread_local! {
        /// `rename_new` does as on a file system without RENAME_NOREPLACE.
        static WITHOUT_NOREPLACE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    pub(super) fn without_rename_noreplace() -> bool {
        WITHOUT_NOREPLACE.with(|w| w.get())
    }

    thread_local! {
        /// `rename_new` does as on a file system without hard links either.
        static WITHOUT_LINK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        /// Run by `rename_new` when it does without RENAME_NOREPLACE, with
        /// the name it moves the file to: where another process would make
        /// a file of its own meanwhile.
        static BEFORE_FALLBACK: std::cell::RefCell<Option<Race>> =
            const { std::cell::RefCell::new(None) };
    }

    /// What a test makes happen at a name as `rename_new` moves a file there.
    type Race = Box<dyn FnOnce(&Path)>;

    pub(super) fn without_link() -> bool {
        WITHOUT_LINK.with(|w| w.get())
    }

    pub(super) fn before_the_fallback(to: &Path) {
        if let Some(race) = BEFORE_FALLBACK.with(|b| b.borrow_mut().take()) {
            race(to);
        }
    }

    pub(super) fn between_the_directory_and_its_file() {
        if let Some(swap) = BETWEEN.with(|b| b.borrow_mut().take()) {
            swap();
        }
    }

    /// Another directory put in the spool's place after its owner was
    /// read (by whoever may rename a directory on the way): the file is
    /// still opened in the directory that was judged, and a name only the
    /// other holds is not found.
    #[test]
    fn a_directory_swapped_after_its_owner_was_read_is_not_looked_in() {
        let dir = temp_dir("swapped");
        let spool = dir.join("spool");
        let judged = dir.join("judged");
        let theirs = dir.join("theirs");
        std::fs::create_dir_all(&spool).expect("mkdir");
        std::fs::create_dir_all(&theirs).expect("mkdir");
        std::fs::write(spool.join("a.sgspool"), "judged").expect("write");
        std::fs::write(theirs.join("a.sgspool"), "swapped in").expect("write");
        std::fs::write(theirs.join("b.sgspool"), "only theirs").expect("write");
        let swap = {
            let (spool, judged, theirs) = (spool.clone(), judged.clone(), theirs.clone());
            move || {
                std::fs::rename(&spool, &judged).expect("rename");
                std::fs::rename(&theirs, &spool).expect("rename");
            }
        };
        let swap_back = {
            let (spool, judged, theirs) = (spool.clone(), judged.clone(), theirs.clone());
            move || {
                std::fs::rename(&spool, &theirs).expect("rename");
                std::fs::rename(&judged, &spool).expect("rename");
            }
        };
        BETWEEN.with(|b| *b.borrow_mut() = Some(Box::new(swap.clone())));
        let file = open_found_to_look(&spool.join("a.sgspool")).expect("opened");
        assert_eq!(io::read_to_string(file).expect("read"), "judged");
        swap_back();
        BETWEEN.with(|b| *b.borrow_mut() = Some(Box::new(swap)));
        assert!(matches!(
            open_found_to_look(&spool.join("b.sgspool")),
            Err(Refusal::Gone)
        ));
        swap_back();
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A spool reached through a symbolic link (moved to another disk, as
    /// `ensure_private_dir` allows) is looked at where it leads; a file
    /// there that is a link is not followed.
    #[test]
    fn a_spool_reached_through_a_link_is_looked_at_where_it_leads() {
        let dir = temp_dir("look-link");
        let real = dir.join("disk/spool");
        std::fs::create_dir_all(&real).expect("mkdir");
        std::fs::write(real.join("a.sgspool"), "batch").expect("write");
        let link = dir.join("spool");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let file = open_found_to_look(&link.join("a.sgspool")).expect("opened");
        assert_eq!(io::read_to_string(file).expect("read"), "batch");
        std::os::unix::fs::symlink(real.join("a.sgspool"), real.join("b.sgspool"))
            .expect("symlink");
        assert!(matches!(
            open_found_to_look(&link.join("b.sgspool")),
            Err(Refusal::Foreign(_))
        ));
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A file of the directory's owner is read, one of a third user's is
    /// not; judged on the directory opened.
    #[test]
    fn a_file_of_the_directory_owner_is_looked_at_and_no_other() {
        if effective_uid() != 0 {
            return; // only root can give files away
        }
        let dir = temp_dir("look-owner");
        let spool = dir.join("spool");
        std::fs::create_dir_all(&spool).expect("mkdir");
        std::fs::write(spool.join("a.sgspool"), "theirs").expect("write");
        std::fs::write(spool.join("b.sgspool"), "a third user's").expect("write");
        std::os::unix::fs::chown(&spool, Some(4242), Some(4242)).expect("chown");
        std::os::unix::fs::chown(spool.join("a.sgspool"), Some(4242), None).expect("chown");
        std::os::unix::fs::chown(spool.join("b.sgspool"), Some(4343), None).expect("chown");
        assert!(open_found_to_look(&spool.join("a.sgspool")).is_ok());
        match open_found_to_look(&spool.join("b.sgspool")) {
            Err(Refusal::Foreign(why)) => assert!(why.contains("4343"), "{why}"),
            other => panic!("{:?}", other.map(|_| ())),
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p)
            .expect("stat")
            .permissions()
            .mode()
            & 0o777
    }

    /// Set in the copy of the test binary that runs a test under umask 0.
    #[test]
    fn a_directory_of_ours_that_others_may_write_is_made_private() {
        let dir = temp_dir("wide");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        ensure_private_dir(&dir).expect("ours");
        assert_eq!(mode(&dir), 0o700);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn links_fifos_and_directories_are_refused_without_blocking() {
        let dir = temp_dir("found");
        ensure_private_dir(&dir).expect("dir");
        let fifo = dir.join("x.sgspool");
        let c = c_path(&fifo).expect("path");
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(open_found(&fifo, false), Err(Refusal::Foreign(_))));
        let link = dir.join("y.sgspool");
        std::os::unix::fs::symlink("/dev/zero", &link).expect("symlink");
        assert!(matches!(open_found(&link, false), Err(Refusal::Foreign(_))));
        assert!(open_append(&link).is_err());
        std::fs::create_dir(dir.join("z.sgspool")).expect("mkdir");
        assert!(matches!(
            open_found(&dir.join("z.sgspool"), false),
            Err(Refusal::Foreign(_))
        ));
        assert!(matches!(
            open_found(&dir.join("none"), false),
            Err(Refusal::Gone)
        ));
        let regular = dir.join("r.sgspool");
        std::fs::write(&regular, b"x").expect("write");
        assert!(open_found(&regular, false).is_ok());
        let aside = set_aside(&fifo).expect("set aside");
        assert!(aside.to_string_lossy().ends_with(".sgspool.unreadable"));
        // A second file of the same name never replaces the first.
        std::fs::write(&fifo, b"again").expect("write");
        let second = set_aside(&fifo).expect("set aside");
        assert_ne!(aside, second);
        assert!(std::fs::symlink_metadata(&aside).is_ok());
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A file `create_locked` made and found locked by someone else (another
    /// process that opened it first) is not used: the lock, ignored, was
    /// the other's, and once it let go nothing kept recovery from taking
    /// the file. The file returned is ours alone, locked, at the name;
    /// nothing else is left in the directory.
    #[test]
    fn a_made_file_another_locked_first_is_not_used() {
        let dir = temp_dir("locked-first");
        ensure_private_dir(&dir).expect("dir");
        let held = std::rc::Rc::new(std::cell::RefCell::new(Vec::<File>::new()));
        let h = std::rc::Rc::clone(&held);
        set_after_create(Some(Box::new(move |made| {
            if h.borrow().is_empty() {
                let other = File::open(made).expect("open");
                assert!(try_lock(&other), "the other's lock");
                h.borrow_mut().push(other);
            }
        })));
        let ours = create_locked(&dir.join("p-pending"), false);
        set_after_create(None);
        let ours = ours.expect("made");
        assert_eq!(held.borrow().len(), 1, "the other opened it");
        held.borrow_mut().clear();
        let look = File::open(dir.join("p-pending")).expect("at its name");
        assert!(!try_lock(&look), "not locked by us");
        let (a, b) = (
            ours.file().metadata().expect("m"),
            look.metadata().expect("m"),
        );
        assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()));
        let names: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("p-pending")]);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// `create_locked` takes no name already taken (a file, a link, with
    /// RENAME_NOREPLACE or without it): `AlreadyExists`, what sits there
    /// untouched and not followed, no temporary file left; a free name
    /// gets a locked file.
    #[test]
    fn a_locked_file_is_never_made_over_a_name_taken() {
        let dir = temp_dir("made-over");
        ensure_private_dir(&dir).expect("dir");
        let victim = dir.join("victim");
        std::fs::write(&victim, b"theirs").expect("victim");
        std::os::unix::fs::symlink(&victim, dir.join("link-pending")).expect("link");
        std::fs::write(dir.join("file-pending"), b"planted").expect("planted");
        // RENAME_NOREPLACE; a hard link; a look, then a rename.
        for (mode, (without, without_link)) in [(false, false), (true, false), (true, true)]
            .into_iter()
            .enumerate()
        {
            WITHOUT_NOREPLACE.with(|w| w.set(without));
            WITHOUT_LINK.with(|w| w.set(without_link));
            for name in ["link-pending", "file-pending"] {
                let made = create_locked(&dir.join(name), false).err();
                assert_eq!(
                    made.map(|e| e.kind()),
                    Some(io::ErrorKind::AlreadyExists),
                    "{name}, mode {mode}"
                );
            }
            let free = dir.join(format!("free-{mode}"));
            let ours = create_locked(&free, false).expect("made");
            let look = File::open(&free).expect("open");
            assert!(!try_lock(&look), "locked");
            assert!(ours.file().metadata().expect("m").len() == 0);
        }
        WITHOUT_NOREPLACE.with(|w| w.set(false));
        WITHOUT_LINK.with(|w| w.set(false));
        assert!(
            std::fs::symlink_metadata(dir.join("link-pending"))
                .expect("l")
                .is_symlink()
        );
        assert_eq!(
            std::fs::read(dir.join("file-pending")).expect("f"),
            b"planted"
        );
        assert_eq!(std::fs::read(&victim).expect("v"), b"theirs");
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "file-pending",
                "free-0",
                "free-1",
                "free-2",
                "link-pending",
                "victim"
            ]
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Where RENAME_NOREPLACE is refused, another process that makes a file
    /// at the name as ours is being moved there keeps it: `AlreadyExists`
    /// for us, their file at its name untouched, nothing of ours left
    /// beside it. (Looking, then renaming, replaced their file: its name
    /// was ours, their dump written into a file with no name.)
    #[test]
    fn without_noreplace_a_file_made_at_the_name_meanwhile_is_never_replaced() {
        let dir = temp_dir("fallback-race");
        ensure_private_dir(&dir).expect("dir");
        let name = dir.join("x.sgdump-pending");
        WITHOUT_NOREPLACE.with(|w| w.set(true));
        BEFORE_FALLBACK.with(|b| {
            *b.borrow_mut() = Some(Box::new(|to: &Path| {
                std::fs::write(to, b"theirs").expect("theirs");
            }))
        });
        let made = create_locked(&name, false).err().map(|e| e.kind());
        WITHOUT_NOREPLACE.with(|w| w.set(false));
        BEFORE_FALLBACK.with(|b| b.borrow_mut().take());
        assert_eq!(made, Some(io::ErrorKind::AlreadyExists));
        assert_eq!(std::fs::read(&name).expect("theirs"), b"theirs");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["x.sgdump-pending"]);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A recovery beside the maker that removed the file it had just made
    /// (its pid meaning no process there: another pid namespace) made
    /// `create_locked` fail with NotFound at its rename, and the process
    /// went on without its crash file: another file is made.
    #[test]
    fn a_made_file_removed_before_it_is_named_is_made_again() {
        let dir = temp_dir("made-removed");
        ensure_private_dir(&dir).expect("dir");
        let removed = std::rc::Rc::new(std::cell::Cell::new(0));
        let r = std::rc::Rc::clone(&removed);
        set_after_create(Some(Box::new(move |made: &Path| {
            if r.get() == 0 {
                std::fs::remove_file(made).expect("removed");
                r.set(1);
            }
        })));
        let ours = create_locked(&dir.join("p-pending"), false);
        set_after_create(None);
        let ours = ours.expect("made again");
        assert_eq!(removed.get(), 1);
        let look = File::open(dir.join("p-pending")).expect("at its name");
        assert!(!try_lock(&look), "locked");
        assert_eq!(
            (look.metadata().expect("m").ino()),
            ours.file().metadata().expect("m").ino()
        );
        let names: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["p-pending"]);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A worker forked by another thread of ours between the making of a
    /// crash or flight file and its lock (the watchdog remaking the crash
    /// files at a thaw): the child's copy of the open file was unknown to
    /// its fork handler, so the lock taken next was the child's too. Once
    /// we let go of the file (our exit leaves it to recovery) it stayed
    /// locked for as long as the child lived, and no recovery took it.
    /// Now the file at the name is ours alone, and nothing else is left.
    #[test]
    fn a_fork_between_a_made_file_and_its_lock_leaves_the_child_no_lock() {
        if !crate::forking_tests::run_alone(
            module_path!(),
            "a_fork_between_a_made_file_and_its_lock_leaves_the_child_no_lock",
        ) {
            return;
        }
        let dir = temp_dir("fork-between");
        ensure_private_dir(&dir).expect("dir");
        let child = std::rc::Rc::new(std::cell::Cell::new(0));
        let c = std::rc::Rc::clone(&child);
        set_before_registering(Box::new(move || c.set(fork_a_waiting_child())));
        let made = create_locked(&dir.join("p-pending"), false).expect("made");
        assert!(child.get() > 0, "forked between");
        drop(made);
        let look = File::open(dir.join("p-pending")).expect("at its name");
        let free = try_lock(&look);
        let names: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        end_waiting_child(child.get());
        assert!(free, "the child holds the lock we let go of");
        assert_eq!(names, ["p-pending"]);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The hidden names `create_locked` makes are known for what they are,
    /// and no other name is.
    #[test]
    fn a_making_name_is_known_and_no_other() {
        assert_eq!(
            making_file_of(".1-2-a.sgflight.345-6.tmp"),
            Some(("1-2-a.sgflight", 345))
        );
        for other in [
            "a.sgflight.345-6.tmp",
            "..a.sgflight.345-6.tmp",
            ".a.sgflight.345-.tmp",
            ".a.sgflight.-6.tmp",
            ".a.sgflight.34x-6.tmp",
            ".a.sgflight.345-6.tmp.unreadable",
            ".345-6.tmp",
            ".tmp-1-2-3.sgspool",
        ] {
            assert_eq!(making_file_of(other), None, "{other}");
        }
    }

    #[test]
    fn a_held_lock_is_known_until_its_file_closes() {
        let dir = temp_dir("held");
        ensure_private_dir(&dir).expect("dir");
        let opened = BeforeOpen::now();
        let (held, locked) =
            LockedFile::lock(create_new(&dir.join("l"), false).expect("c"), opened);
        assert!(locked);
        let fd = held.as_raw_fd();
        // (After the drop another test may reuse the number: not checked.)
        assert!(HELD_LOCKS.iter().any(|s| s.load(Ordering::Acquire) == fd));
        drop(held);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_shared_directory_is_refused_and_left_as_it_is() {
        let dir = temp_dir("sticky");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        let e = ensure_private_dir(&dir).expect_err("shared");
        assert!(is_foreign_directory(&e), "{e}");
        assert_eq!(
            std::fs::symlink_metadata(&dir)
                .expect("stat")
                .permissions()
                .mode()
                & 0o7777,
            0o1777
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn another_users_directory_is_refused() {
        if effective_uid() != 0 {
            return; // only root can give a directory away
        }
        let dir = temp_dir("theirs");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).expect("chown");
        let e = ensure_private_dir(&dir).expect_err("not ours");
        assert!(is_foreign_directory(&e));
        assert!(e.to_string().contains("65534"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn judging_a_directory_refuses_what_making_it_private_refuses_and_changes_nothing() {
        let dir = temp_dir("judged");
        // Missing: no refusal, and nothing made.
        let missing = dir.join("a/b");
        judge_private_dir(&missing).expect("what a tracer makes is its own");
        assert!(!dir.exists());
        // Ours and open to others: no refusal, and left as it is (making
        // it private is a tracer's doing, not a judge's).
        std::fs::create_dir_all(&dir).expect("mkdir");
        let open = dir.join("open");
        std::fs::create_dir(&open).expect("mkdir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        judge_private_dir(&open).expect("ours");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777;
        assert_eq!(mode(&open), 0o755);
        // Shared (sticky): refused as ensure_private_dir refuses it.
        let shared = dir.join("shared");
        std::fs::create_dir(&shared).expect("mkdir");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        let e = judge_private_dir(&shared).expect_err("shared");
        assert!(is_foreign_directory(&e), "{e}");
        // Under a directory anyone may write to (not sticky): refused.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let e = judge_private_dir(&open.join("spool")).expect_err("the way is open");
        assert!(is_foreign_directory(&e), "{e}");
        assert!(!open.join("spool").exists());
        if effective_uid() == 0 {
            let theirs = dir.join("theirs");
            std::fs::create_dir(&theirs).expect("mkdir");
            std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).expect("chown");
            let e = judge_private_dir(&theirs).expect_err("not ours");
            assert!(
                is_foreign_directory(&e) && e.to_string().contains("65534"),
                "{e}"
            );
            assert_eq!(
                ensure_private_dir(&theirs)
                    .expect_err("not ours")
                    .to_string(),
                e.to_string()
            );
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn another_users_link_to_a_directory_of_ours_is_not_followed() {
        if effective_uid() != 0 {
            return; // only root can give a link away
        }
        let dir = temp_dir("their-link");
        let ours = dir.join("home");
        std::fs::create_dir_all(&ours).expect("mkdir");
        std::fs::set_permissions(&ours, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let link = dir.join("spanguard-0");
        std::os::unix::fs::symlink(&ours, &link).expect("symlink");
        std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).expect("lchown");
        let e = ensure_private_dir(&link).expect_err("their link");
        assert!(is_foreign_directory(&e), "{e}");
        assert!(e.to_string().contains("65534"), "{e}");
        // The directory it leads to is left as it was.
        assert_eq!(mode(&ours), 0o755);
        // A link of the user's own is followed.
        std::os::unix::fs::lchown(&link, Some(0), Some(0)).expect("lchown");
        ensure_private_dir(&link).expect("our link");
        assert_eq!(mode(&ours), 0o700);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A directory of another uid (4242, nobody's) on the way to ours, as
    /// in SPANGUARD_SPOOL_DIR=/tmp/shared/x/spool with /tmp/shared theirs:
    /// they could rename x and put their own in its place.
    #[test]
    fn another_users_directory_on_the_way_is_refused() {
        if effective_uid() != 0 {
            return; // only root can give a directory away
        }
        let dir = temp_dir("their-ancestor");
        let shared = dir.join("shared");
        std::fs::create_dir_all(&shared).expect("mkdir");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::os::unix::fs::chown(&shared, Some(4242), Some(4242)).expect("chown");
        // Missing below theirs: refused, and nothing made in their directory.
        let spool = shared.join("x/spool");
        let e = ensure_private_dir(&spool).expect_err("their directory on the way");
        assert!(is_foreign_directory(&e), "{e}");
        assert!(e.to_string().contains("4242"), "{e}");
        assert!(e.to_string().contains(&*shared.to_string_lossy()), "{e}");
        assert!(std::fs::read_dir(&shared).expect("ls").next().is_none());
        // Already there (ours, private), under theirs: refused all the same.
        std::fs::create_dir_all(&spool).expect("mkdir");
        std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let e = ensure_private_dir(&spool).expect_err("their directory on the way");
        assert!(is_foreign_directory(&e), "{e}");
        // Given back to root: fine.
        std::os::unix::fs::chown(&shared, Some(0), Some(0)).expect("chown");
        ensure_private_dir(&spool).expect("the whole way is root's");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_directory_on_the_way_that_others_may_write_is_refused_unless_sticky() {
        let dir = temp_dir("wide-ancestor");
        let open = dir.join("open");
        std::fs::create_dir_all(&open).expect("mkdir");
        let spool = open.join("x/spool");
        // Writable by its group, when others are in that group (a group
        // of nobody's here: only root can give one away).
        let mut wide_modes = vec![0o777];
        if effective_uid() == 0 {
            std::os::unix::fs::chown(&open, None, Some(4242)).expect("chgrp");
            wide_modes.push(0o775);
        }
        for wide in wide_modes {
            std::fs::set_permissions(&open, std::fs::Permissions::from_mode(wide)).expect("chmod");
            let e = ensure_private_dir(&spool).expect_err("writable by others on the way");
            assert!(is_foreign_directory(&e), "{e}");
            assert!(e.to_string().contains(&*open.to_string_lossy()), "{e}");
            // Ours: judged, not changed (it is not spanguard's directory).
            assert_eq!(mode(&open), wide);
        }
        // Sticky, like /tmp: others cannot rename what is ours there.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        ensure_private_dir(&spool).expect("sticky on the way");
        assert_eq!(mode(&spool), 0o700);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A user's own group-writable directories, as a umask of 002 makes
    /// them on Debian and Ubuntu (`~/.local/state`, the default state
    /// directory's parent): their group is the user's private group.
    #[test]
    fn a_directory_on_the_way_writable_by_the_users_private_group_is_accepted() {
        // SAFETY: no arguments, no failure.
        let primary = unsafe { libc::getegid() };
        if !private_group(effective_uid(), primary) {
            return; // this user's group has other members here
        }
        let dir = temp_dir("private-group");
        let local = dir.join("local");
        std::fs::create_dir_all(&local).expect("mkdir");
        std::os::unix::fs::chown(&local, None, Some(primary)).expect("chgrp");
        std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o775)).expect("chmod");
        let state = local.join("state/spanguard");
        ensure_private_dir(&state).expect("the user's own group may write on the way");
        assert_eq!(mode(&local), 0o775, "judged, not changed");
        assert!(!private_group(effective_uid(), primary.wrapping_add(4242)));
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A primary group named otherwise than its user is not that user's
    /// alone, even with no member listed: others may have it as their
    /// primary group too ("users"). nobody's group, "nogroup" on Debian
    /// and Ubuntu, is such a group here; where it is named "nobody", the
    /// case does not arise.
    #[test]
    fn a_primary_group_named_otherwise_is_not_private() {
        // The group's name, and whether it names any member.
        let group = |gid: u32| {
            let mut buf = vec![0u8; 4096];
            // SAFETY: as in `private_group`.
            let mut gr: libc::group = unsafe { std::mem::zeroed() };
            let found = looked_up(&mut buf, |buf, found: &mut *mut libc::group| unsafe {
                libc::getgrgid_r(gid, &mut gr, buf.as_mut_ptr().cast(), buf.len(), found)
            });
            (found && !gr.gr_name.is_null()).then(|| {
                let name = unsafe { std::ffi::CStr::from_ptr(gr.gr_name) }.to_owned();
                let members = !gr.gr_mem.is_null() && !unsafe { *gr.gr_mem }.is_null();
                (name.into_bytes(), members)
            })
        };
        if group(65534) == Some((b"nogroup".to_vec(), false)) {
            assert!(!private_group(65534, 65534), "nobody's group nogroup");
        }
        // root's group "root", naming no member, is root's own: the name
        // is compared, not merely required to differ.
        if group(0) == Some((b"root".to_vec(), false)) {
            assert!(private_group(0, 0));
        }
    }

    #[test]
    fn the_way_through_a_link_is_checked_where_it_leads() {
        if effective_uid() != 0 {
            return; // only root can give a directory or a link away
        }
        let dir = temp_dir("link-on-the-way");
        let theirs = dir.join("theirs");
        std::fs::create_dir_all(theirs.join("x")).expect("mkdir");
        std::os::unix::fs::chown(&theirs, Some(4242), Some(4242)).expect("chown");
        // A link of ours that leads into their directory.
        let ours = dir.join("ours");
        std::os::unix::fs::symlink(theirs.join("x"), &ours).expect("symlink");
        let e = ensure_private_dir(&ours.join("spool")).expect_err("leads into theirs");
        assert!(is_foreign_directory(&e), "{e}");
        assert!(e.to_string().contains("4242"), "{e}");
        // Their link on the way, to a directory of ours.
        let safe = dir.join("safe");
        std::fs::create_dir_all(&safe).expect("mkdir");
        let link = dir.join("their-link");
        std::os::unix::fs::symlink(&safe, &link).expect("symlink");
        std::os::unix::fs::lchown(&link, Some(4242), Some(4242)).expect("lchown");
        let e = ensure_private_dir(&link.join("spool")).expect_err("their link");
        assert!(is_foreign_directory(&e), "{e}");
        assert!(!safe.join("spool").exists());
        // Our link to our directory: followed.
        std::os::unix::fs::lchown(&link, Some(0), Some(0)).expect("lchown");
        ensure_private_dir(&link.join("spool")).expect("our link");
        assert!(safe.join("spool").is_dir());
        std::fs::remove_dir_all(&dir).ok();
    }
}
