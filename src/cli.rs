//! The command line's definition: parsed by `main`, and the source of the
//! generated shell completions and man page.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "rolewatch", version, about = "Watches AWS STS role assumptions in CloudTrail logs")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the detectors over CloudTrail logs: files, folders, S3 prefixes or stdin.
    Replay(ReplayArgs),
    /// Validate a configuration file and print the settings in effect.
    CheckConfig {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print a shell completion script on stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout.
    Man,
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// TOML configuration (defaults apply to anything it leaves out)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Load detector state from FILE before the run and save it after
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Alert output on stdout: text for people, json for one alert per line,
    /// chat for one AWS chat custom notification per line
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// The run summary on stderr: a table for people, or one JSON object
    #[arg(long, value_enum, default_value_t = SummaryFormat::Text)]
    pub summary_format: SummaryFormat,
    /// Only logs dated (in their file or object name, UTC) on or after this day
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub since: Option<NaiveDate>,
    /// Only logs dated (in their file or object name, UTC) on or before this day
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub until: Option<NaiveDate>,
    /// S3 objects fetched at once
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    /// No progress on stderr (errors and the summary are still printed)
    #[arg(long, short)]
    pub quiet: bool,
    /// Log files, folders (walked recursively in path order), s3://bucket/prefix, or - for stdin
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Chat,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SummaryFormat {
    Text,
    Json,
}
