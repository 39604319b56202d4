//! The `brain` command (see `brain --help`).

use clap::Parser;

fn main() -> std::process::ExitCode {
    match brain::cli::run(brain::cli::Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
