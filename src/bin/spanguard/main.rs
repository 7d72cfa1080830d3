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
    let args: Vec<String> = std::env::args().skip(1).collect();
    cli::run(&args, env!("CARGO_PKG_VERSION"))
}
