//! Progress on stderr while a replay works: a bar (indicatif) when stderr
//! is a terminal, a plain line every so often when it is not (logs, CI),
//! nothing with `--quiet`. Never on stdout, which holds only alerts.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Seconds between plain progress lines when stderr is not a terminal.
pub const INTERVAL_VAR: &str = "ROLEWATCH_PROGRESS_INTERVAL_SECONDS";
const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

enum Mode {
    Bar(ProgressBar),
    Lines { interval: Duration, last: Instant },
    Off,
}

pub struct Progress {
    mode: Mode,
    total_inputs: u64,
    total_bytes: u64,
    inputs: u64,
    bytes: u64,
    started: Instant,
}

impl Progress {
    /// `interval` is `ROLEWATCH_PROGRESS_INTERVAL_SECONDS`, if set.
    pub fn new(quiet: bool, interval: Option<&str>, total_inputs: u64, total_bytes: u64) -> Result<Progress, String> {
        let interval = match interval {
            None => DEFAULT_INTERVAL,
            Some(v) => Duration::from_secs(
                v.parse().map_err(|_| format!("{INTERVAL_VAR}={v}: expected a whole number of seconds"))?,
            ),
        };
        let mode = if quiet {
            Mode::Off
        } else if std::io::stderr().is_terminal() {
            Mode::Bar(bar(total_inputs, total_bytes))
        } else {
            Mode::Lines { interval, last: Instant::now() }
        };
        Ok(Progress { mode, total_inputs, total_bytes, inputs: 0, bytes: 0, started: Instant::now() })
    }

    /// One more input done, of `bytes` bytes.
    pub fn advance(&mut self, bytes: u64) {
        self.inputs += 1;
        self.bytes += bytes;
        let message = self.message();
        match &mut self.mode {
            Mode::Bar(bar) => {
                bar.set_position(if self.total_bytes > 0 { self.bytes } else { self.inputs });
                bar.set_message(format!("{}/{} inputs", self.inputs, self.total_inputs));
            }
            Mode::Lines { interval, last } => {
                if last.elapsed() >= *interval {
                    *last = Instant::now();
                    eprintln!("rolewatch: progress: {message}");
                }
            }
            Mode::Off => {}
        }
    }

    fn message(&self) -> String {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        let rate = self.bytes as f64 / elapsed;
        let mut text = format!(
            "{}/{} inputs, {}/{}, {}/s",
            self.inputs,
            self.total_inputs,
            HumanBytes(self.bytes),
            HumanBytes(self.total_bytes),
            HumanBytes(rate as u64)
        );
        if rate > 0.0 && self.total_bytes > self.bytes {
            let left = Duration::from_secs_f64((self.total_bytes - self.bytes) as f64 / rate);
            text.push_str(&format!(", about {} left", HumanDuration(left)));
        }
        text
    }

    /// Runs `write` (stdout or stderr output) with the bar out of the way.
    pub fn suspend<R>(&self, write: impl FnOnce() -> R) -> R {
        match &self.mode {
            Mode::Bar(bar) => bar.suspend(write),
            _ => write(),
        }
    }

    /// Clears the bar: the summary follows on clean lines.
    pub fn finish(&self) {
        if let Mode::Bar(bar) = &self.mode {
            bar.finish_and_clear();
        }
    }
}

fn bar(total_inputs: u64, total_bytes: u64) -> ProgressBar {
    let (length, template) = if total_bytes > 0 {
        (total_bytes, "{spinner} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}")
    } else {
        (total_inputs, "{spinner} {wide_bar} {pos}/{len} inputs {per_sec} eta {eta}")
    };
    let style = ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr()).with_style(style)
}
