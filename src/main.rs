//! The `rolewatch` command line: thin; the work is in the library.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

mod replay;

use clap::{Parser, Subcommand, ValueEnum};
use replay::{collect_inputs, replay_files, Problem};
use rolewatch::alert::Alert;
use rolewatch::config::Config;
use rolewatch::engine::Engine;
use rolewatch::state::{FileStateStore, MemoryStateStore, StateStore};

#[derive(Parser)]
#[command(name = "rolewatch", version, about = "Watches AWS STS role assumptions in CloudTrail logs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the detectors over CloudTrail log files (.json.gz or .json) or folders of them.
    Replay {
        /// TOML configuration (defaults apply to anything it leaves out)
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Load detector state from FILE before the run and save it after
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// Alert output on stdout: text for people, json for one alert per line
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Log files or folders (walked recursively in path order)
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Validate a configuration file and print the settings in effect.
    CheckConfig {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// Exit statuses from the contract.
const EXIT_INPUT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("rolewatch: {err:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    match path {
        Some(path) => Config::from_file(path)
            .map_err(|e| anyhow::anyhow!("{e}\nhint: keys and defaults are in docs/configuration.md")),
        None => Ok(Config::default()),
    }
}

/// `Err` is a usage or configuration problem (exit 2, nothing processed).
fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::CheckConfig { config } => {
            let config = load_config(config.as_ref())?;
            let text = toml::to_string(&config).unwrap_or_default();
            println!("# configuration is valid; settings in effect:\n{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay { config, state, format, paths } => {
            let config = load_config(config.as_ref())?;
            let mut store: Box<dyn StateStore> = match &state {
                Some(path) => Box::new(FileStateStore::new(path)),
                None => Box::new(MemoryStateStore::default()),
            };
            let loaded = store
                .load()
                .map_err(|e| anyhow::anyhow!("{e}\nhint: move the file aside to start with fresh state"))?;
            let mut engine = Engine::new(&config, loaded);
            let (files, skipped, problems) = collect_inputs(&paths);
            for problem in &problems {
                eprintln!("rolewatch: {problem}");
            }
            let stdout = io::stdout();
            let mut out = io::BufWriter::new(stdout.lock());
            let mut stdout_ok = true;
            let mut summary = replay_files(
                &mut engine,
                &files,
                &config.input.limits(),
                |alert| {
                    if stdout_ok {
                        let written = match format {
                            Format::Json => writeln!(out, "{}", alert.to_json()),
                            Format::Text => write_text(&mut out, alert),
                        };
                        // A closed pipe (`| head`) ends output, not the run: state is still saved.
                        stdout_ok = written.and_then(|()| out.flush()).is_ok();
                    }
                },
                |problem: Problem| eprintln!("rolewatch: {problem}"),
            );
            if matches!(format, Format::Text) && summary.alerts == 0 && stdout_ok {
                let _ = writeln!(out, "no alerts");
            }
            let _ = out.flush();
            summary.skipped += skipped;
            summary.failed += problems.len() as u64;
            if let Err(err) = store.save(engine.state()) {
                eprintln!("rolewatch: {err}");
                summary.failed += 1;
            }
            eprintln!("rolewatch: {}", summary.line());
            for line in summary.rule_lines() {
                eprintln!("rolewatch: {line}");
            }
            Ok(if summary.failed > 0 { ExitCode::from(EXIT_INPUT_FAILED) } else { ExitCode::SUCCESS })
        }
    }
}

/// Two lines an alert: what and when, then who, where and how many.
fn write_text(out: &mut impl Write, alert: &Alert) -> io::Result<()> {
    writeln!(
        out,
        "{:<8} {:<21} {}  {}  {}",
        alert.severity.as_str().to_uppercase(),
        alert.detector,
        alert.last_event_time,
        alert.account_id,
        alert.title
    )?;
    writeln!(
        out,
        "         principal={} role={} source={} events={} key={}",
        alert.principal,
        // AccessDenied records name the probed role only in their message.
        alert.role_arn.as_deref().or(alert.details.get("denied_role_arn").and_then(|v| v.as_str())).unwrap_or("-"),
        alert.source_ip.as_deref().unwrap_or("-"),
        alert.event_count,
        alert.dedup_key
    )
}
