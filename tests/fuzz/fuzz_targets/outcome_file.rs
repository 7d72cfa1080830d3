//! Outcome records (src/export/outcome.rs) as `spanguard why` reads them:
//! the state directory is shared, and another local user can plant or
//! replace files there. The input is read once as a record's text (the
//! parser alone), then as a directory of up to 8 entries: records, text,
//! a file sparse past 4 GiB, another user's file, a symbolic link, a FIFO,
//! a directory, each under a record's name or another. `spanguard why`
//! (the command itself, mounted as the Python extension mounts it) reads
//! it without a panic, a hang or a read past `MOST_BYTES` a file, and
//! exits 0 (records shown) or 1 (none). What it prints is judged by the
//! CLI tests, not here: stdout goes to /dev/null.
#![no_main]

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use spanguard::export::outcome::{MAGIC, SUFFIX, parse};

mod input;
use input::Input;

#[allow(dead_code)]
#[path = "../../../src/bin/spanguard/cli.rs"]
mod cli;

/// The most causes a record read back holds (the writer's `MOST_CAUSES`).
const MOST_CAUSES: usize = 9;

/// This process's directory, made anew for each input.
fn fresh_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sg-fuzz-why-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the fuzz directory");
    dir
}

/// The name of entry `i`: a record's, a hidden one's (a writer's
/// temporary file), another file's, or one with a line break and an
/// escape (said on the terminal by `why`).
fn name_of(i: usize, how: u8) -> String {
    match how % 5 {
        0 | 1 => format!("{}-0{SUFFIX}", 1000 + i),
        2 => format!(".tmp-{i}{SUFFIX}"),
        3 => format!("{i}.txt"),
        _ => format!("\x1b[31m{i}\n{SUFFIX}"),
    }
}

/// Makes entry `path` of the kind `kind` with `text` in it.
fn plant(path: &Path, kind: u8, text: &[u8], earlier: Option<&Path>) {
    let write = |bytes: &[u8]| std::fs::write(path, bytes).expect("write");
    match kind % 9 {
        // A record of this build with the input's lines after its own.
        0 | 1 => write(&[format!("{MAGIC}\npid 7\nstate running\n").as_bytes(), text].concat()),
        // The input's bytes alone.
        2 => write(text),
        // Sparse past 4 GiB: a read of the whole would take it all.
        3 => {
            write(text);
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .expect("open");
            f.set_len((1 << 32) + 7).expect("sparse");
        }
        // Another user's (as root; a fuzzer run by anyone else keeps
        // its own file).
        4 => {
            write(text);
            let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("no NUL");
            // SAFETY: a NUL-terminated path.
            unsafe { libc::chown(c.as_ptr(), 4242, 4242) };
        }
        // A link to the file before, or to what never ends.
        5 => {
            let to = earlier.unwrap_or(Path::new("/dev/zero"));
            std::os::unix::fs::symlink(to, path).expect("symlink");
        }
        // A FIFO nobody writes to: opened, it must not be waited on.
        6 => {
            let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("no NUL");
            // SAFETY: a NUL-terminated path.
            unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
        }
        // A directory under the name.
        7 => std::fs::create_dir(path).expect("dir"),
        // A record's text that stops midway (a reader cut short).
        _ => {
            let whole = [format!("{MAGIC}\npid 9\nstate stopped\n").as_bytes(), text].concat();
            write(&whole[..whole.len() / 2]);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    static QUIET: Once = Once::new();
    QUIET.call_once(|| {
        let null = std::ffi::CString::new("/dev/null").expect("no NUL");
        // SAFETY: a NUL-terminated path; fd 1 is replaced, never closed
        // from under a writer (this target is the only one).
        unsafe {
            let fd = libc::open(null.as_ptr(), libc::O_WRONLY);
            if fd >= 0 {
                libc::dup2(fd, 1);
                libc::close(fd);
            }
        }
    });
    // The parser alone.
    if let Some(o) = parse(&String::from_utf8_lossy(data)) {
        assert!(o.pid != 0);
        assert!(o.causes.len() <= MOST_CAUSES, "{} causes", o.causes.len());
    }
    // A directory of the input's entries, read by `spanguard why`.
    let mut input = Input(data);
    let dir = fresh_dir();
    let mut earlier: Option<PathBuf> = None;
    for i in 0..input.byte() as usize % 9 {
        let (how, kind) = (input.byte(), input.byte());
        let len = u16::from_le_bytes([input.byte(), input.byte()]) as usize % 12_000;
        let text = input.bytes(len);
        let path = dir.join(name_of(i, how));
        plant(&path, kind, text, earlier.as_deref());
        earlier = Some(path);
    }
    let last = (input.byte() % 4 + 1).to_string();
    let args: Vec<String> = vec![
        "why".into(),
        dir.display().to_string(),
        "--last".into(),
        last,
    ];
    let status = cli::run(&args, "fuzz");
    assert!(
        status == ExitCode::SUCCESS || status == ExitCode::from(1),
        "{status:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
});
