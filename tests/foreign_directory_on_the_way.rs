//! A spool or sink directory configured under a directory that another
//! user controls (SPANGUARD_SPOOL_DIR=/tmp/shared/x/spool with /tmp/shared
//! theirs): that user could rename x and put a directory of their own in
//! its place, so the tracer refuses to start, with a configuration error
//! that names the setting and the directory on the way, and writes nothing
//! there. Giving a directory away needs root: skipped otherwise.

use spanguard::config::TracerConfig;
use spanguard::tracer::{Tracer, TracerError};

const THEIR_UID: u32 = 4242;

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn a_spool_or_sink_under_another_users_directory_is_refused() {
    if !is_root() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("sg-foreign-way-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let shared = dir.join("shared");
    std::fs::create_dir_all(&shared).expect("mkdir");
    std::os::unix::fs::chown(&shared, Some(THEIR_UID), Some(THEIR_UID)).expect("chown");
    let safe = dir.join("safe");
    let cases = [
        (
            "SPANGUARD_SPOOL_DIR",
            shared.join("x/spool"),
            safe.join("spans"),
        ),
        (
            "SPANGUARD_SINK_DIR",
            safe.join("spool"),
            shared.join("x/spans"),
        ),
    ];
    for (setting, spool_dir, sink_dir) in cases {
        let made = Tracer::new(TracerConfig {
            spool_dir,
            sink_dir,
            install_signal_handlers: false,
            ..TracerConfig::default()
        });
        let e = match made {
            Err(TracerError::Config(e)) => e.to_string(),
            Err(TracerError::Io(e)) => panic!("{setting}: not a configuration error: {e}"),
            Ok(_) => panic!("{setting}: a tracer started under another user's directory"),
        };
        assert!(e.contains(setting), "{e}");
        assert!(e.contains(&*shared.to_string_lossy()), "{e}");
        assert!(e.contains(&THEIR_UID.to_string()), "{e}");
        assert!(
            std::fs::read_dir(&shared).expect("ls").next().is_none(),
            "{setting}: something was made in another user's directory"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The default directories' parents as a Debian or Ubuntu user has them: a
/// umask of 002 makes `~/.local` and `~/.local/state` writable by the
/// user's group, which is the user's alone (a user private group). The
/// tracer starts there; the same directories writable by a group others
/// share (a made-up one, given by root) are refused.
#[test]
fn the_default_directories_under_a_users_group_writable_local_start() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: getegid cannot fail and has no preconditions.
    let primary = unsafe { libc::getegid() };
    let dir = std::env::temp_dir().join(format!("sg-private-group-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let local = dir.join("home/.local");
    let state = local.join("state");
    std::fs::create_dir_all(&state).expect("mkdir");
    let make = || {
        Tracer::new(TracerConfig {
            spool_dir: state.join("spanguard/spool"),
            sink_dir: state.join("spanguard/spans"),
            install_signal_handlers: false,
            ..TracerConfig::default()
        })
    };
    let groups = if is_root() {
        vec![primary, THEIR_UID]
    } else {
        vec![primary]
    };
    for gid in groups {
        for d in [&local, &state] {
            std::os::unix::fs::chown(d, None, Some(gid)).expect("chgrp");
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o775)).expect("chmod");
        }
        match (gid == primary, make()) {
            (true, Ok(t)) => drop(t),
            (true, Err(e)) => panic!("refused under the user's own group-writable ~/.local: {e:?}"),
            (false, Err(TracerError::Config(e))) => {
                assert!(e.to_string().contains(&*local.to_string_lossy()), "{e}");
            }
            (false, Err(e)) => panic!("not a configuration error: {e:?}"),
            (false, Ok(_)) => panic!("a group others share may write on the way"),
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
