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
