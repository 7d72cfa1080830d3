//! The `spanguard` command under a file size limit (RLIMIT_FSIZE: `ulimit
//! -f`, systemd's `LimitFSIZE=`): a write past it killed the command with
//! SIGXFSZ (exit 153 in a shell), its page or listing cut and nothing
//! said. Each run here sets the limit in the child, with SIGXFSZ at its
//! default as a shell leaves it.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The limit: less than any page or listing of the span below.
const LIMIT: u64 = 200;

const LINE: &str = concat!(
    r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},"#,
    r#""scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c","#,
    r#""spanId":"b7ad6b7169203331","name":"llm.chat","kind":3,"startTimeUnixNano":"1700000000000000000","#,
    r#""endTimeUnixNano":"1700000000005000000"}]}]}]}"#
);

fn scratch(test: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("sg-cli-fsize-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("dir");
    std::fs::write(root.join("svc-1.jsonl"), format!("{LINE}\n")).expect("sink");
    root
}

/// Runs `spanguard args` in `root` under the limit, stdout to `stdout`.
fn limited(root: &PathBuf, args: &[&str], stdout: Stdio) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_spanguard"));
    c.current_dir(root).args(args).env("NO_COLOR", "1");
    // SAFETY: async-signal-safe calls only, between fork and exec.
    unsafe {
        c.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: LIMIT,
                rlim_max: libc::RLIM_INFINITY,
            };
            libc::signal(libc::SIGXFSZ, libc::SIG_DFL);
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c.stdout(stdout).stderr(Stdio::piped());
    c.output().expect("run spanguard")
}

/// Not killed; a failure status and a line that names the limit.
fn says_the_limit(out: &Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), None, "{what}: killed: {err}");
    assert_eq!(out.status.code(), Some(1), "{what}: {err}");
    assert!(err.contains("file size limit"), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
}

/// `show --html OUT` past the limit: said, exit 1, not killed.
#[test]
fn a_page_written_past_the_file_size_limit_is_a_clear_failure() {
    let root = scratch("page");
    let out = limited(
        &root,
        &["show", "--html", "page.html", "svc-1.jsonl"],
        Stdio::piped(),
    );
    says_the_limit(&out, "show --html");
    let _ = std::fs::remove_dir_all(&root);
}

/// `show > FILE` past the limit (the listing to a file): the same.
#[test]
fn a_listing_written_to_a_file_past_the_file_size_limit_is_a_clear_failure() {
    let root = scratch("listing");
    let file = std::fs::File::create(root.join("listing.txt")).expect("listing");
    let out = limited(&root, &["show", "svc-1.jsonl"], Stdio::from(file));
    says_the_limit(&out, "show > listing.txt");
    let _ = std::fs::remove_dir_all(&root);
}
