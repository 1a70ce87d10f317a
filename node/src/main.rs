//! `suyuan`: the command-line front of suyuan-node. Everything it prints is printed in `cli/`
//! and here: a failure as one line on stderr, with status 1 (clap's own, for flags, is 2).
#![forbid(unsafe_code)] // the workspace denies it; only protocol/src/lanes8 may allow it

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("suyuan: {e:#}");
            ExitCode::FAILURE
        }
    }
}
