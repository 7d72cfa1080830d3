//! Another local user's files planted in a user's spool directory before
//! its first run, while the directory was still group-writable (README,
//! "Files and permissions": one of the user's own that group or others
//! may write is made 0700 at the tracer's start; what others left there is
//! set aside). Two fixed names were not set aside, and what the attacker
//! put there stayed in force after the directory was made private:
//! - `.sender-key`: every later process of the user named its spool files
//!   with a key of its own (the planted one is not the user's), so no
//!   process set up alike sent them, only `spanguard replay` by hand;
//! - `outcomes/`, a directory of the attacker's: no record was ever
//!   written, `spanguard why` said no process had left one, and the
//!   attacker (holding the directory open) kept writing there.
//!
//! The attacker is a child forked and given another uid; planting as
//! another user needs root: skipped otherwise.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use spanguard::export::outcome::{self, Counts, OutcomeFile, State};
use spanguard::export::sender_key::{KEY_FILE, SenderKey};

const ATTACKER_UID: u32 = 4253;

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// What the attacker makes, in order.
enum Plant {
    Dir(PathBuf),
    File(PathBuf, Vec<u8>),
    Link(PathBuf, PathBuf),
    Fifo(PathBuf),
}

/// Makes `plants` as another user: a child forked, given the attacker's
/// uid and gid, that makes each and exits; the parent waits for it.
fn plant_as_attacker(plants: &[Plant]) {
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).expect("path");
    // Everything the child uses is made before the fork: it only calls
    // async-signal-safe functions.
    let made: Vec<(u8, CString, CString, Vec<u8>)> = plants
        .iter()
        .map(|p| match p {
            Plant::Dir(d) => (0, c(d), CString::default(), Vec::new()),
            Plant::File(f, bytes) => (1, c(f), CString::default(), bytes.clone()),
            Plant::Link(at, to) => (2, c(at), c(to), Vec::new()),
            Plant::Fifo(at) => (3, c(at), CString::default(), Vec::new()),
        })
        .collect();
    // SAFETY: the child calls only async-signal-safe functions and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        // SAFETY: the child's own calls; it exits with their result.
        unsafe {
            let mut ok = libc::setgroups(0, std::ptr::null()) == 0
                && libc::setresgid(ATTACKER_UID, ATTACKER_UID, ATTACKER_UID) == 0
                && libc::setresuid(ATTACKER_UID, ATTACKER_UID, ATTACKER_UID) == 0;
            libc::umask(0);
            for (kind, path, to, bytes) in &made {
                ok &= match kind {
                    0 => libc::mkdir(path.as_ptr(), 0o777) == 0,
                    1 => {
                        let fd = libc::open(
                            path.as_ptr(),
                            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                            0o600,
                        );
                        fd >= 0
                            && libc::write(fd, bytes.as_ptr().cast(), bytes.len())
                                == bytes.len() as isize
                            && libc::close(fd) == 0
                    }
                    2 => libc::symlink(to.as_ptr(), path.as_ptr()) == 0,
                    _ => libc::mkfifo(path.as_ptr(), 0o666) == 0,
                };
            }
            libc::_exit(if ok { 0 } else { 1 });
        }
    }
    let mut status = 0;
    // SAFETY: our child's pid and a status to fill.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the attacker could not plant its files"
    );
}

/// A spool directory of ours that anyone may write for now (the group
/// share made before the first run).
fn open_spool(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sg-planted-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    dir
}

/// The attacker's `.sender-key` (a key of theirs, or a link to a file of
/// ours) is set aside and the spool's key is made anew, the user's own:
/// two processes set up alike mark their files alike again, so each
/// sends what the last one spooled. It was refused at every look, each
/// process marking with a key of its own for good.
#[test]
fn another_users_sender_key_is_set_aside_and_a_key_of_ours_made() {
    if !is_root() {
        return;
    }
    for (case, plant) in [
        ("key", None),
        ("link", Some(PathBuf::from("/etc/hostname"))),
    ] {
        let spool = open_spool(case);
        let key = spool.join(KEY_FILE);
        plant_as_attacker(&[match plant {
            None => Plant::File(key.clone(), vec![7; 16]),
            Some(to) => Plant::Link(key.clone(), to),
        }]);
        spanguard::buffer::files::ensure_private_dir(&spool).expect("our spool");
        let first = SenderKey::of_dir(&spool);
        let second = SenderKey::of_dir(&spool);
        assert!(first.is_ok(), "{case}: {first:?}");
        assert_eq!(
            first.ok(),
            second.ok(),
            "{case}: the same key for a process alike"
        );
        let meta = std::fs::symlink_metadata(&key).expect("the key");
        assert!(meta.file_type().is_file(), "{case}");
        assert_eq!(meta.uid(), 0, "{case}: the key is ours");
        assert_eq!(meta.mode() & 0o777, 0o600, "{case}");
        let aside = spool.join(format!("{KEY_FILE}.unreadable"));
        let aside = std::fs::symlink_metadata(&aside).expect("the planted key set aside");
        assert_eq!(aside.uid(), ATTACKER_UID, "{case}");
        std::fs::remove_dir_all(&spool).ok();
    }
}

/// The attacker's `outcomes/` (their directory, or their link to one) is
/// set aside and the user's records are written in a directory of the
/// user's own: no record was written at all, and `spanguard why` said no
/// process had left one.
#[test]
fn another_users_outcomes_directory_is_set_aside_and_records_written() {
    if !is_root() {
        return;
    }
    for case in ["dir", "link"] {
        let spool = open_spool(&format!("outcomes-{case}"));
        let records = outcome::dir_in(&spool);
        let theirs = spool.with_extension("theirs");
        let _ = std::fs::remove_dir_all(&theirs);
        let forged = format!("{}\npid 1\nstate stopped\nlost 999\n", outcome::MAGIC);
        let at = if case == "dir" {
            records.clone()
        } else {
            theirs.clone()
        };
        let mut plants = vec![
            Plant::Dir(at.clone()),
            Plant::File(
                at.join(format!("1-0-aaaa{}", outcome::SUFFIX)),
                forged.into_bytes(),
            ),
        ];
        if case == "link" {
            // Their own directory beside ours, in /tmp, and their link to it.
            plants.push(Plant::Link(records.clone(), theirs.clone()));
        }
        plant_as_attacker(&plants);
        spanguard::buffer::files::ensure_private_dir(&spool).expect("our spool");
        let mut f = OutcomeFile::new(&records, "svc", "t");
        let written = f.write(
            State::Stopped,
            &Counts::default(),
            std::iter::empty(),
            || false,
        );
        assert!(written.is_ok(), "{case}: {written:?}");
        let meta = std::fs::symlink_metadata(&records).expect("outcomes");
        assert!(meta.is_dir(), "{case}");
        assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o700), "{case}");
        let record = std::fs::metadata(f.path()).expect("our record");
        assert_eq!(record.uid(), 0, "{case}");
        assert!(f.path().starts_with(&records), "{case}");
        let aside = spool.join("outcomes.unreadable");
        let aside = std::fs::symlink_metadata(&aside).expect("theirs set aside");
        assert_eq!(aside.uid(), ATTACKER_UID, "{case}");
        std::fs::remove_dir_all(&spool).ok();
        std::fs::remove_dir_all(&theirs).ok();
    }
}

/// Takes every request.
struct TakesAll;

impl spanguard::export::transport::Transport for TakesAll {
    fn send(
        &mut self,
        _: &[u8],
        _: spanguard::export::transport::BodyFormat,
        _: bool,
    ) -> Result<spanguard::export::transport::Accepted, spanguard::export::transport::SendError>
    {
        Ok(spanguard::export::transport::Accepted {
            rejected_spans: 0,
            message: String::new(),
        })
    }

    fn describe(&self) -> String {
        "takes all".to_string()
    }

    // A sender set up as any: its files are named with the spool's key
    // (`.sender-key`), which is read (or made) at the exporter's start.
    fn sender_fingerprint(&self) -> Option<u64> {
        Some(0x5e11_de12)
    }
}

/// A tracer on `spool`, taking every request, whose callback's calls
/// are kept in the list returned: runs one span, flushes and shuts down.
/// With its `flight_recorder`, it reads the spool's key at its start, to
/// name its flight file (as a tracer with its signal handlers does, to
/// name its crash dump).
fn run_one_span(
    spool: &Path,
    flight_recorder: bool,
) -> (
    spanguard::stats::StatsSnapshot,
    Vec<(spanguard::pipeline::ExportEvent, String)>,
) {
    use spanguard::config::TracerConfig;
    use spanguard::tracer::{Parent, Tracer};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    let tracer = Tracer::with_transport(
        TracerConfig {
            spool_dir: spool.to_path_buf(),
            sink_dir: spool.join("spans"),
            install_signal_handlers: false,
            flight_recorder,
            ..TracerConfig::default()
        },
        Box::new(TakesAll),
    )
    .expect("tracer");
    let told: Arc<Mutex<Vec<_>>> = Arc::default();
    let seen = Arc::clone(&told);
    tracer.set_callback(Some(Box::new(move |event, message: &str| {
        seen.lock().unwrap().push((event, message.to_string()));
    })));
    let (span, _) = tracer.begin(b"op", Parent::None, 1).expect("begin");
    tracer.end(span, 0).expect("end");
    let _ = tracer.flush(Duration::from_secs(10));
    tracer.shutdown(Duration::from_secs(10)).expect("shutdown");
    let stats = tracer.stats();
    let told = std::mem::take(&mut *told.lock().unwrap());
    (stats, told)
}

/// The attacker's `outcomes/` set aside by a tracer's first record is
/// counted with the other files set aside (`files_set_aside`) and told to
/// the error callback (`FileSetAside`, event 7), as each of them is, to a
/// callback set once the tracer runs (the record is written at the
/// exporter's start, before the program can set one). It was neither:
/// moved unsaid, the program's count and callback said nothing was.
#[test]
fn another_users_outcomes_directory_set_aside_is_counted_and_told() {
    use spanguard::pipeline::ExportEvent;
    if !is_root() {
        return;
    }
    let spool = open_spool("outcomes-told");
    plant_as_attacker(&[Plant::Dir(outcome::dir_in(&spool))]);
    let (stats, told) = run_one_span(&spool, false);
    assert_eq!(stats.spans_exported, 1);
    assert_eq!(stats.files_set_aside, 1, "outcomes/ set aside, counted");
    let told: Vec<String> = told
        .into_iter()
        .filter(|(e, _)| *e == ExportEvent::FileSetAside)
        .map(|(_, m)| m)
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].contains("outcomes.unreadable") && told[0].contains(&ATTACKER_UID.to_string()),
        "{}",
        told[0]
    );
    let aside = std::fs::symlink_metadata(spool.join("outcomes.unreadable")).expect("set aside");
    assert_eq!(aside.uid(), ATTACKER_UID);
    std::fs::remove_dir_all(&spool).ok();
}

/// The attacker's `.sender-key` set aside by a tracer is counted with the
/// other files set aside (`files_set_aside`) and told to the error
/// callback (`FileSetAside`, event 7), as the `outcomes/` directory is: it
/// was said as a warning alone (event 0), and the program's count said no
/// file had been set aside.
#[test]
fn another_users_sender_key_set_aside_is_counted_and_told() {
    use spanguard::pipeline::ExportEvent;
    if !is_root() {
        return;
    }
    for case in ["key", "fifo"] {
        let spool = open_spool(&format!("key-told-{case}"));
        let key = spool.join(KEY_FILE);
        plant_as_attacker(&[if case == "key" {
            Plant::File(key.clone(), vec![7; 16])
        } else {
            Plant::Fifo(key.clone())
        }]);
        let (stats, told) = run_one_span(&spool, true);
        assert_eq!(stats.spans_exported, 1, "{case}");
        assert_eq!(
            stats.files_set_aside, 1,
            "{case}: the key set aside, counted"
        );
        let told: Vec<String> = told
            .into_iter()
            .filter(|(e, _)| *e == ExportEvent::FileSetAside)
            .map(|(_, m)| m)
            .collect();
        assert_eq!(told.len(), 1, "{case}: {told:?}");
        assert!(
            told[0].contains(".sender-key.unreadable") && told[0].contains("sender key"),
            "{case}: {}",
            told[0]
        );
        let aside = std::fs::symlink_metadata(spool.join(format!("{KEY_FILE}.unreadable")))
            .expect("set aside");
        assert_eq!(aside.uid(), ATTACKER_UID, "{case}");
        let ours = std::fs::symlink_metadata(&key).expect("a key of ours");
        assert_eq!((ours.uid(), ours.mode() & 0o777), (0, 0o600), "{case}");
        std::fs::remove_dir_all(&spool).ok();
    }
}

/// Another user's FIFO or file at the name of the state directory (the
/// fallback `$TMPDIR/spanguard-<uid>` in a shared /tmp, made first) is
/// refused at the tracer's start, as their directory there is, with a
/// configuration error that names it and its owner. The tracer started,
/// and every span the backend did not take was lost: the spool "could
/// not take it: Not a directory".
#[test]
fn another_users_fifo_or_file_where_the_spool_goes_is_refused() {
    use spanguard::config::TracerConfig;
    use spanguard::tracer::{Tracer, TracerError};
    if !is_root() {
        return;
    }
    for case in ["fifo", "file"] {
        let shared = open_spool(&format!("way-{case}"));
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777))
            .expect("sticky, as /tmp");
        let taken = shared.join("state");
        plant_as_attacker(&[if case == "fifo" {
            Plant::Fifo(taken.clone())
        } else {
            Plant::File(taken.clone(), b"theirs".to_vec())
        }]);
        let made = Tracer::new(TracerConfig {
            spool_dir: taken.join("spool"),
            sink_dir: shared.join("spans"),
            install_signal_handlers: false,
            ..TracerConfig::default()
        });
        let e = match made {
            Err(TracerError::Config(e)) => e.to_string(),
            Err(TracerError::Io(e)) => panic!("{case}: not a configuration error: {e}"),
            Ok(_) => panic!("{case}: a tracer started with its spool under their {case}"),
        };
        assert!(e.contains("SPANGUARD_SPOOL_DIR"), "{e}");
        assert!(e.contains(&ATTACKER_UID.to_string()), "{e}");
        std::fs::remove_dir_all(&shared).ok();
    }
}
