//! `spanguard`: the command-line companion of the library. Each subcommand
//! lives in a module of its own under `src/bin/spanguard/`; this file only
//! dispatches.

use std::process::ExitCode;

mod replay;

const USAGE: &str = "usage: spanguard replay [DIR] [--endpoint URL] ... (spanguard replay --help)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("replay") => replay::run(&args[1..]),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::FAILURE
        }
    }
}
