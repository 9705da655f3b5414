//! The `rolewatch` command line: thin; the work is in the library and the
//! modules below.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod generate;
mod input;
mod output;
mod progress;
mod replay;
mod run;
mod summary;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { run::EXIT_USAGE } else { 0 });
        }
    };
    match run::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("rolewatch: {err:#}");
            ExitCode::from(run::EXIT_USAGE)
        }
    }
}
