//! Outcome records (src/export/outcome.rs) as `spanguard why` reads them:
//! the state directory is shared, and another local user can plant or
//! replace files there. The input is read once as a record's text (the
//! parser alone), then as a directory of up to 8 entries: records, text,
//! a file sparse past 4 GiB, another user's file, a symbolic link, a FIFO,
//! a directory, each under a record's name or another. `spanguard why`
//! (the command itself, mounted as the Python extension mounts it) reads
//! it without a panic, a hang or a read past `MOST_BYTES` a file, and
//! exits 0 (records shown) or 1 (none), and what it prints is bounded
//! (each record's text escaped at most) and shown as it is (nothing that
//! drives a terminal or breaks a line comes through). Then a record is
//! written by the writer itself (`OutcomeFile`) with the rest of the input
//! as its service, target, causes and why its spans went to the spool
//! (hostile text: NUL, line breaks, escapes, bytes that are no UTF-8, far
//! past what is kept), in any state, one ending of any signal: it stays
//! within `MOST_BYTES`, reads back as written (the reason the first
//! given, one line, cut at a character), and `why` says the reason, and
//! the signal of a copy whose process is gone.
#![no_main]

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use libfuzzer_sys::fuzz_target;
use spanguard::export::diagnostics::signal_name;
use spanguard::export::outcome::{Counts, MAGIC, MOST_BYTES, OutcomeFile, SUFFIX, State, parse};
use spanguard::span::printable::{is_shown_as_is, printable};

mod input;
use input::Input;

#[allow(dead_code)]
#[path = "../../../src/bin/spanguard/cli.rs"]
mod cli;

/// The most causes a record read back holds (the writer's `MOST_CAUSES`).
const MOST_CAUSES: usize = 9;
/// The most of a reason a record keeps, in bytes (the writer's
/// `MOST_REASON_BYTES`).
const MOST_REASON_BYTES: usize = 600;
/// A pid no process has (past Linux's largest, 2^22): a record's copy
/// under it is of a process that ended.
const GONE_PID: u32 = (1 << 22) + 1;
/// The most `why` prints of `last` records: each record's text escaped
/// (at most 4 bytes a byte: `\x00`) with the words around it.
fn most_said(last: usize) -> usize {
    4_096 + last * (4 * MOST_BYTES + 4_096)
}

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
    let last = input.byte() as usize % 4 + 1;
    let (status, said) = why(&dir, last);
    assert!(
        status == ExitCode::SUCCESS || status == ExitCode::from(1),
        "{status:?}"
    );
    check_said(&said, last);
    written_and_said(&mut input);
    let _ = std::fs::remove_dir_all(&dir);
});

/// Where `why`'s stdout goes, to be read back.
fn said_path() -> PathBuf {
    std::env::temp_dir().join(format!("sg-fuzz-why-said-{}", std::process::id()))
}

/// Runs `spanguard why DIR --last N`: its exit status and what it printed.
fn why(dir: &Path, last: usize) -> (ExitCode, String) {
    use std::io::Write;
    let said = said_path();
    let c = std::ffi::CString::new(said.as_os_str().as_bytes()).expect("no NUL");
    // SAFETY: a NUL-terminated path; fd 1 is replaced, never closed from
    // under a writer (this target is the only one).
    unsafe {
        let fd = libc::open(
            c.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
            0o600,
        );
        assert!(fd >= 0, "the file stdout goes to");
        libc::dup2(fd, 1);
        libc::close(fd);
    }
    let args: Vec<String> = vec![
        "why".into(),
        dir.display().to_string(),
        "--last".into(),
        last.to_string(),
    ];
    let status = cli::run(&args, "fuzz");
    std::io::stdout().flush().expect("flushed");
    let bytes = std::fs::read(&said).expect("what why said");
    let _ = std::fs::remove_file(&said);
    (status, String::from_utf8(bytes).expect("why prints UTF-8"))
}

/// What `why` printed of at most `last` records: bounded, and each line
/// shown as it is.
fn check_said(said: &str, last: usize) {
    assert!(
        said.len() <= most_said(last),
        "{} bytes said of {last} records",
        said.len()
    );
    for line in said.lines() {
        assert!(is_shown_as_is(line), "{line:?}");
    }
}

/// A record the writer itself writes of the input's text, read back and
/// said by `why`, with a copy of it from a process that ended.
fn written_and_said(input: &mut Input) {
    let text = |input: &mut Input| {
        let len = u16::from_le_bytes([input.byte(), input.byte()]) as usize % 2_000;
        let bytes = input.bytes(len);
        // Far past what is kept (about 20 KB), now and then.
        let times = if input.byte() % 8 == 0 {
            20_000 / (len + 1) + 1
        } else {
            1
        };
        String::from_utf8_lossy(&bytes.repeat(times)).into_owned()
    };
    let signal = match input.byte() % 4 {
        0 => libc::SIGTERM,
        1 => libc::SIGINT,
        2 => i32::from_le_bytes([input.byte(), input.byte(), input.byte(), input.byte()]),
        _ => i32::from(input.byte()),
    };
    let state = match input.byte() % 3 {
        0 => State::Running,
        1 => State::Stopped,
        _ => State::EndingOf(signal),
    };
    let counts = Counts {
        ended: u64::from(input.byte()) * 3,
        exported: u64::from(input.byte()),
        spooled: 1 + u64::from(input.byte()),
        lost: u64::from(input.byte()),
        ..Counts::default()
    };
    let service = text(input);
    let target = text(input);
    let because = text(input);
    let causes: Vec<(String, u64)> = (0..input.byte() % 12)
        .map(|i| (text(input), u64::from(i)))
        .collect();
    let dir = fresh_dir();
    let mut f = OutcomeFile::new(&dir, &service, &target);
    f.note_spooled_because(&because);
    // The first reason stays.
    f.note_spooled_because("a later reason");
    f.write(
        state,
        &counts,
        causes.iter().map(|(r, n)| (r.as_str(), *n)),
        || false,
    )
    .expect("a record written");
    let written = std::fs::read_to_string(f.path()).expect("a record is UTF-8");
    assert!(written.len() <= MOST_BYTES, "{} bytes", written.len());
    let o = parse(&written).expect("a record of the writer's reads");
    assert_eq!(o.pid, std::process::id());
    assert_eq!(o.counts, counts);
    assert_eq!(o.stopped, state == State::Stopped);
    assert_eq!(o.causes.len(), causes.len().min(MOST_CAUSES));
    let ending = match state {
        State::EndingOf(s) => s,
        _ => 0,
    };
    assert_eq!(o.ending_of_signal, ending, "{written:?}");
    let kept = if because.is_empty() {
        "a later reason"
    } else {
        because.as_str()
    };
    check_one_line(&o.spooled_because, kept);
    check_one_line(&o.service, &service);
    check_one_line(&o.target, &target);
    // The same record of a process that is gone (its pid no one's).
    let gone = written.replacen(
        &format!("\npid {}\n", o.pid),
        &format!("\npid {GONE_PID}\n"),
        1,
    );
    std::fs::write(dir.join(format!("{GONE_PID}-0-1{SUFFIX}")), gone).expect("the copy");
    let (status, said) = why(&dir, 4);
    assert_eq!(status, ExitCode::SUCCESS, "{said}");
    check_said(&said, 4);
    // Said of both, each on a line of its own.
    let reason = format!(
        "  why they went to the spool: {}",
        printable(&o.spooled_because)
    );
    let lines = said.lines().filter(|&l| l == reason).count();
    assert_eq!(lines, 2, "{reason:?} in {said}");
    if ending != 0 {
        // Of the copy only: this process runs.
        let ended = format!(
            "), ended by {} ({ending}): its tracer dealt with what had ended first",
            signal_name(ending)
        );
        let gone_line = said
            .lines()
            .find(|l| l.starts_with(&format!("pid {GONE_PID}")))
            .expect("the copy is said");
        assert!(gone_line.contains(&ended), "{ended:?} in {said}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `kept` is `given` as one line of the record: its control characters
/// `?`, cut at a character to `MOST_REASON_BYTES` only when the next would
/// not fit.
fn check_one_line(kept: &str, given: &str) {
    let line: String = given
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    assert!(kept.len() <= MOST_REASON_BYTES, "{} bytes kept", kept.len());
    assert!(
        line.starts_with(kept),
        "{kept:?} is not the start of {line:?}"
    );
    if let Some(next) = line[kept.len()..].chars().next() {
        assert!(
            kept.len() + next.len_utf8() > MOST_REASON_BYTES,
            "{kept:?} cut short of {line:?}"
        );
    }
}
