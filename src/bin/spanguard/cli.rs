//! The `spanguard` command itself: its subcommands (one module each, beside
//! this file) and the dispatch between them. Two programs run it: the
//! `spanguard` binary (`main.rs`) and the Python extension module
//! (bindings/python/src/lib.rs mounts this file), so that `pip install`
//! brings the same command, output and exit statuses without a second
//! binary. Each passes the version of the library it carries.

use std::process::ExitCode;

mod args;
mod chat;
mod check;
mod clock_text;
mod html;
mod liveness;
mod locks;
mod page_file;
mod replay;
mod settings;
mod show;
mod sources;
mod spool_status;
mod tail;
mod terminal;
mod traces;
mod why;

const HELP: &str = "\
spanguard: look at the spans spanguard recorded, and send what is waiting

usage: spanguard COMMAND [ARGS]

commands:
  show [DIR|FILE...]         draw each trace as a waterfall: the local sink, the spool,
                             crash dumps and flight files (nothing is sent or changed)
  show --html OUT [DIR|FILE...]
                             the same as one self-contained HTML page
  tail [DIR]                 follow the local sink as spans arrive (Ctrl-C stops)
  spool [DIR]                what is waiting to be sent: counts, sizes, ages, locks
  replay [DIR] [--endpoint URL]
                             send what the spool holds (spool files, crash dumps,
                             flight files of dead processes) to an OTLP endpoint
  check [--endpoint URL]     what a tracer started here does with its spans: the
                             settings from OTEL_*/SPANGUARD_* variables, those ignored
                             and why, and the backend's answer to one empty request
  why                        what the last processes did with their spans, after the
                             fact: delivered, spooled, lost and why (a killed one too)

  spanguard COMMAND --help   a command's options
  spanguard --version

Without a DIR, the commands use the directories the library writes to, from the
same variables: SPANGUARD_SINK_DIR (default $XDG_STATE_HOME/spanguard/spans,
XDG_STATE_HOME defaulting to ~/.local/state) and SPANGUARD_SPOOL_DIR (default
$XDG_STATE_HOME/spanguard/spool).

Exit status: 0 done, 1 nothing to show or the job could not be done, 2 a usage
or configuration error.
";

/// Runs the command line `args` (without the program name) as this
/// process, and returns its exit status.
/// What the command says of argument `n` (from 1) that is not UTF-8, shown
/// with its bad bytes replaced: it takes names and paths as UTF-8 only.
pub fn not_utf8(n: usize, shown: &str) -> String {
    format!(
        "spanguard: argument {n} is not valid UTF-8 ({shown:?}); the command takes UTF-8 \
         arguments only (rename such a file, or name its directory)"
    )
}

/// `err`, a write that failed with EFBIG (os error 27), said with the
/// file size limit that stopped it, when there is one.
pub fn too_large(err: &str) -> String {
    match spanguard::buffer::files::file_size_limit() {
        Some(limit) => format!(
            "{err}: past this process's file size limit (RLIMIT_FSIZE, `ulimit -f`: {limit} \
             bytes); what is past it was not written (raise the limit, or write elsewhere)"
        ),
        None => err.to_string(),
    }
}

pub fn run(args: &[String], version: &str) -> ExitCode {
    // Output piped into `head` that stops reading ends us quietly, as it
    // does any command-line tool, rather than as a panic. (Python, for
    // one, starts with SIGPIPE ignored.)
    // SAFETY: restores the default disposition; no handler runs.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // A write past the file size limit (RLIMIT_FSIZE: `ulimit -f`,
    // systemd's LimitFSIZE=) killed us with SIGXFSZ, the page or listing
    // cut and nothing said: ignored, such a write fails (EFBIG), said as
    // `too_large` says it, with a failure status. Spool files are only
    // read, moved or written whole beside the old (a failed write leaves
    // the spans where they were).
    // SAFETY: sets the disposition to ignore; no handler runs.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // print! panics when stdout fails: past the limit, said so.
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or("");
        if let Some(err) = message.strip_prefix("failed printing to stdout: ")
            && err.contains("os error 27")
        {
            eprintln!("spanguard: writing the output: {}", too_large(err));
            std::process::exit(1);
        }
        default_hook(info);
    }));
    match args.first().map(String::as_str) {
        Some("-h" | "--help" | "help") => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        Some("-V" | "--version" | "version") => {
            println!("spanguard {version}");
            ExitCode::SUCCESS
        }
        Some("show") => show::run(&args[1..]),
        Some("tail") => tail::run(&args[1..]),
        Some("spool") => spool_status::run(&args[1..]),
        Some("replay") => replay::run(&args[1..]),
        Some("check") => check::run(&args[1..]),
        Some("why") => why::run(&args[1..]),
        Some(other) => {
            let commands = ["show", "tail", "spool", "replay", "check", "why"];
            match args::closest(other, commands.into_iter()).or_else(|| meant_by(other)) {
                Some(c) => eprintln!(
                    "spanguard: unknown command {other:?}, did you mean {c}? (spanguard --help lists them)"
                ),
                None => {
                    eprintln!("spanguard: unknown command {other:?} (spanguard --help lists them)")
                }
            }
            ExitCode::from(2)
        }
        None => {
            eprint!("{HELP}");
            ExitCode::from(2)
        }
    }
}

/// Our command for the word another tool uses for what it does (`view`,
/// `ls`, `send`...): no slip of ours, so `args::closest` finds none.
fn meant_by(word: &str) -> Option<&'static str> {
    const WORDS: [(&str, &[&str]); 6] = [
        (
            "show",
            &[
                "view", "ls", "list", "open", "cat", "print", "dump", "display", "traces", "spans",
                "html",
            ],
        ),
        ("tail", &["follow", "watch", "live", "stream"]),
        (
            "replay",
            &[
                "send", "resend", "push", "upload", "flush", "retry", "export",
            ],
        ),
        ("spool", &["status", "queue", "pending", "waiting"]),
        (
            "check",
            &["doctor", "config", "settings", "ping", "env", "test"],
        ),
        (
            "why",
            &[
                "explain", "lost", "diagnose", "missing", "outcome", "outcomes",
            ],
        ),
    ];
    let word = word.to_ascii_lowercase();
    WORDS
        .iter()
        .find(|(_, words)| words.contains(&word.as_str()))
        .map(|(command, _)| *command)
}
