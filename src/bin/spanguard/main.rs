//! `spanguard`: the command-line companion of the library. The command
//! lives in `cli.rs` and the modules beside it, which the Python extension
//! module compiles in too; this file only hands it the command line.

use std::process::ExitCode;

// Mounted by path, as the Python extension mounts it: a file loaded so
// finds its submodules beside it (src/bin/spanguard/show.rs, ...), the
// same directory for both.
#[path = "cli.rs"]
mod cli;

fn main() -> ExitCode {
    // std::env::args panics on an argument that is not UTF-8 (a file name
    // in another encoding, bytes pasted in): said, with the exit status of
    // a bad argument, as `python -m spanguard` says it.
    let mut args = Vec::new();
    for (i, arg) in std::env::args_os().skip(1).enumerate() {
        match arg.into_string() {
            Ok(a) => args.push(a),
            Err(raw) => {
                eprintln!("{}", cli::not_utf8(i + 1, &raw.to_string_lossy()));
                return ExitCode::from(2);
            }
        }
    }
    cli::run(&args, env!("CARGO_PKG_VERSION"))
}
