//! The commands: parse-free, so `main` stays a thin shell around `run`.

use std::process::ExitCode;

use anyhow::{anyhow, Context};
use rolewatch::alert::Alert;
use rolewatch::config::Config;
use rolewatch::engine::Engine;
use rolewatch::state::{FileStateStore, State, StateStore};

use crate::cli::{Cli, Command, ReplayArgs, SummaryFormat};
use crate::input::layout::DateWindow;
use crate::input::local::{list_path, Listing};
use crate::input::{pipeline, s3, Planned};
use crate::output::AlertWriter;
use crate::progress::{Progress, INTERVAL_VAR};
use crate::replay::{replay, InputError, Problem, Reporter};

/// Exit statuses from the contract.
pub const EXIT_INPUT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// `Err` is a usage or configuration problem (exit 2, nothing processed).
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::CheckConfig { config } => {
            let config = load_config(config.as_ref())?;
            let text = toml::to_string(&config).unwrap_or_default();
            println!("# configuration is valid; settings in effect:\n{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            crate::generate::completions(shell, &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            crate::generate::man(&mut std::io::stdout()).context("writing the man page")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay(args) => replay_command(args),
    }
}

fn load_config(path: Option<&std::path::PathBuf>) -> anyhow::Result<Config> {
    match path {
        Some(path) => {
            Config::from_file(path).map_err(|e| anyhow!("{e}\nhint: keys and defaults are in docs/configuration.md"))
        }
        None => Ok(Config::default()),
    }
}

fn replay_command(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(args.config.as_ref())?;
    let window = DateWindow { since: args.since, until: args.until };
    if let (Some(since), Some(until)) = (args.since, args.until) {
        if since > until {
            return Err(anyhow!("--since {since} is after --until {until}"));
        }
    }
    let interval = std::env::var(INTERVAL_VAR).ok();
    // Checked before anything is read: a usage error processes nothing.
    let mut sources = Vec::new();
    for arg in &args.paths {
        match s3::parse_url(arg) {
            Some(url) => sources.push(Source::S3(url.map_err(|e| anyhow!(e))?)),
            None if arg == "-" => sources.push(Source::Stdin),
            None => sources.push(Source::Local(arg.into())),
        }
    }
    if sources.iter().filter(|s| matches!(s, Source::Stdin)).count() > 1 {
        return Err(anyhow!("- (stdin) can be given once"));
    }
    let s3 = if sources.iter().any(|s| matches!(s, Source::S3(_))) {
        let path_style =
            s3::force_path_style(std::env::var(s3::FORCE_PATH_STYLE_VAR).ok().as_deref()).map_err(|e| anyhow!(e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the S3 client's runtime")?;
        let client = runtime.block_on(s3::client(path_style));
        Some((runtime, client))
    } else {
        None
    };
    // Without --state, what the detectors learn lasts for this run only.
    let mut store = args.state.as_ref().map(FileStateStore::new);
    let loaded = store.as_mut().map_or(Ok(State::default()), |store| store.load()).map_err(|e| {
        // A newer release's state is intact: starting afresh would lose what it learned.
        let hint = if e.is_newer() {
            "run the rolewatch release that wrote it (or a later one); keep the file"
        } else {
            "move the file aside to start with fresh state"
        };
        anyhow!("{e}\nhint: {hint}")
    })?;
    let mut engine = Engine::new(&config, loaded);

    let mut listing = Listing::default();
    for source in &sources {
        match source {
            Source::Local(path) => list_path(path, &window, &mut listing),
            Source::Stdin => listing.planned.push(Planned::Stdin),
            Source::S3(url) => {
                let Some((runtime, client)) = &s3 else { continue };
                match runtime.block_on(s3::list(client, url, &window)) {
                    Ok(objects) => {
                        listing.planned.extend(objects.planned);
                        listing.skips.merge(&objects.skips);
                    }
                    Err(error) => listing
                        .problems
                        .push(Problem::Input { name: url.to_string(), error: InputError::Remote(error) }),
                }
            }
        }
    }
    let total_bytes = listing.planned.iter().map(Planned::size).sum();
    let progress = Progress::new(args.quiet, interval.as_deref(), listing.planned.len() as u64, total_bytes)
        .map_err(|e| anyhow!(e))?;
    let mut reporter = Terminal { progress, alerts: AlertWriter::new(args.format) };
    let listing_failures = listing.problems.len() as u64;
    for problem in listing.problems {
        reporter.problem(problem);
    }
    let inputs = pipeline::in_order(listing.planned, s3, usize::from(args.jobs));
    let mut summary = replay(&mut engine, inputs, &config.input.limits(), &mut reporter);
    let Terminal { progress, alerts } = reporter;
    progress.finish();
    alerts.finish();
    summary.skips.merge(&listing.skips);
    summary.failed += listing_failures;
    if let Some(Err(err)) = store.as_mut().map(|store| store.save(engine.state())) {
        eprintln!("rolewatch: {err}");
        summary.failed += 1;
    }
    match args.summary_format {
        SummaryFormat::Text => summary.table().iter().for_each(|line| eprintln!("rolewatch: {line}")),
        SummaryFormat::Json => eprintln!("{}", summary.to_json()),
    }
    // The process ends now: freeing what the detectors learned, map by map,
    // would only add milliseconds to every replay.
    std::mem::forget(engine);
    Ok(if summary.failed > 0 { ExitCode::from(EXIT_INPUT_FAILED) } else { ExitCode::SUCCESS })
}

enum Source {
    Local(std::path::PathBuf),
    Stdin,
    S3(s3::S3Url),
}

/// Alerts to stdout, problems to stderr, with the progress bar out of their way.
struct Terminal {
    progress: Progress,
    alerts: AlertWriter,
}

impl Reporter for Terminal {
    fn alert(&mut self, alert: &Alert) {
        let alerts = &mut self.alerts;
        self.progress.suspend(|| alerts.write(alert));
    }

    fn problem(&mut self, problem: Problem) {
        self.progress.suspend(|| eprintln!("rolewatch: {problem}"));
    }

    fn input_done(&mut self, bytes: u64) {
        self.progress.advance(bytes);
    }
}
