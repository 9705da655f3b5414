//! `rolewatch replay`: the engine over inputs in their planned order. An
//! input that cannot be read is reported and counted, and the others go on.

use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::Path;
use std::time::Instant;

use rolewatch::alert::Alert;
use rolewatch::cloudtrail::{InputLimits, ReadError, RecordError, ScanBuffer};
use rolewatch::engine::Engine;
use rolewatch::ingest::{ingest, IngestOutcome, CHUNK_EVENTS};

use crate::input::forms::{self, Form, JsonLinesAsLog, UnknownForm};
use crate::input::{Fetched, SkipReason};
use crate::summary::ReplaySummary;

/// Bad records printed per input before the rest are only counted.
const MAX_RECORD_PROBLEMS_SHOWN: usize = 10;

/// Something to tell the person running the replay, on stderr.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("{name}: {error}")]
    Input { name: String, error: InputError },
    #[error("{name}: {error}")]
    Record { name: String, error: RecordError },
    #[error("{name}: {more} more bad records not shown")]
    MoreRecords { name: String, more: u64 },
}

impl Problem {
    pub fn input(path: &Path, error: InputError) -> Problem {
        Problem::Input { name: path.display().to_string(), error }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{0}")]
    Open(io::Error),
    #[error("{0}")]
    Content(ReadError),
    #[error("read failed: {0}")]
    Source(io::Error),
    #[error("no such file or folder")]
    Missing,
    #[error(transparent)]
    Form(UnknownForm),
    /// S3 listing or fetching, with the SDK's explanation.
    #[error("{0}")]
    Remote(String),
}

/// Where the alerts and problems of a replay go, as they happen.
pub trait Reporter {
    fn alert(&mut self, alert: &Alert);
    fn problem(&mut self, problem: Problem);
    /// One input done (read, skipped or failed), of `bytes` bytes.
    fn input_done(&mut self, bytes: u64);
}

/// An input's content, opened as often as needed (to identify it, to tell
/// its form, to read it).
enum Content<'a> {
    File(&'a Path),
    Memory(&'a [u8]),
}

impl Content<'_> {
    fn open(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        Ok(match self {
            Content::File(path) => Box::new(File::open(path)?),
            Content::Memory(bytes) => Box::new(Cursor::new(*bytes)),
        })
    }

    /// The identity of the content, so the same log replayed again (under
    /// any name, from disk or S3) is recognised.
    fn id(&self) -> io::Result<String> {
        let mut hasher = twox_hash::XxHash3_128::new();
        let mut source = self.open()?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = source.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.write(&buf[..n]);
        }
        Ok(format!("file:xxh3-128:{:032x}", hasher.finish_128()))
    }

    fn len(&self) -> u64 {
        match self {
            Content::File(path) => std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            Content::Memory(bytes) => bytes.len() as u64,
        }
    }
}

/// The account a CloudTrail log file's records are logged in, from its
/// key or path (`AWSLogs/[o-id/]<account>/CloudTrail/...`) or its file name
/// (`<account>_CloudTrail_<region>_...`).
fn logged_in(name: &str) -> Option<String> {
    rolewatch::cloudtrail::account_from_key(name).or_else(|| {
        let file = name.rsplit(['/', '\\']).next()?;
        let (account, rest) = file.split_once('_')?;
        let is_account = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        (is_account && rest.starts_with("CloudTrail_")).then(|| account.to_owned())
    })
}

/// Replays `inputs` through `engine`, in their order.
pub fn replay(
    engine: &mut Engine,
    inputs: impl Iterator<Item = Fetched>,
    limits: &InputLimits,
    reporter: &mut impl Reporter,
) -> ReplaySummary {
    let started = Instant::now();
    let mut run = Run { engine, limits, buffer: ScanBuffer::with_inflate_thread(), summary: ReplaySummary::default() };
    for fetched in inputs {
        let bytes = run.one(fetched, reporter);
        reporter.input_done(bytes);
    }
    let mut summary = run.summary;
    summary.roaming_principals = run.engine.roaming_principals();
    for (detector, held) in run.engine.cooldown_held() {
        summary.detectors.entry(detector.clone()).or_default().cooldown_held += held;
    }
    let suppressions = run.engine.suppressions();
    if suppressions.any_rules() {
        for counts in summary.detectors.values_mut() {
            counts.suppressed = Some(0);
        }
        for (detector, n) in suppressions.by_detector() {
            summary.detectors.entry(detector.clone()).or_default().suppressed = Some(*n);
        }
    }
    summary.suppressed = suppressions.total();
    summary.suppressed_by_rule =
        suppressions.counts().map(|(rule, n)| (rolewatch::alert::clean_text(&rule.reason, 200), n)).collect();
    summary.elapsed = started.elapsed();
    summary
}

struct Run<'e, 'l> {
    engine: &'e mut Engine,
    limits: &'l InputLimits,
    buffer: ScanBuffer,
    summary: ReplaySummary,
}

impl Run<'_, '_> {
    /// Reads one input; returns its size in bytes.
    fn one(&mut self, fetched: Fetched, reporter: &mut impl Reporter) -> u64 {
        self.summary.files += 1;
        let stdin;
        let (name, content) = match &fetched {
            Fetched::File(path) => (path.display().to_string(), Content::File(path)),
            Fetched::Object { name, bytes } => (name.clone(), Content::Memory(bytes)),
            Fetched::Stdin => {
                // Read whole: its identity is known before it is applied.
                let mut bytes = Vec::new();
                if let Err(e) = io::stdin().lock().read_to_end(&mut bytes) {
                    return self.fail(reporter, "<stdin>".to_owned(), InputError::Source(e), 0);
                }
                stdin = bytes;
                ("<stdin>".to_owned(), Content::Memory(&stdin))
            }
            Fetched::Failed { name, error } => {
                return self.fail(reporter, name.clone(), InputError::Remote(error.clone()), 0);
            }
        };
        let id = match content.id() {
            Ok(id) => id,
            Err(e) => return self.fail(reporter, name, InputError::Open(e), 0),
        };
        let size = content.len();
        if self.engine.is_processed(&id) {
            self.summary.skips.add(SkipReason::AlreadyProcessed, 1);
            return size;
        }
        let form = match forms::detect_opening(|| content.open()) {
            Ok(Ok(form)) => form,
            Ok(Err(unknown)) => return self.fail(reporter, name, InputError::Form(unknown), size),
            Err(e) => return self.fail(reporter, name, InputError::Open(e), size),
        };
        let source = match self.source(&content, form) {
            Ok(source) => source,
            Err(e) => return self.fail(reporter, name, InputError::Source(e), size),
        };
        self.summary.bytes += size;
        if let Some(account) = logged_in(&name) {
            // Its records were logged in this account: the account's logs are read.
            self.engine.note_accounts_read(&[&account]);
        }
        self.ingest(reporter, name, &id, source);
        size
    }

    /// The content as the engine's reader reads it: CloudTrail as it is,
    /// the other forms turned into it.
    fn source<'c>(&self, content: &'c Content<'_>, form: Form) -> io::Result<Box<dyn Read + Send + 'c>> {
        let raw = content.open()?;
        Ok(match form {
            Form::CloudTrail => raw,
            Form::LookupEvents => Box::new(Cursor::new(forms::lookup_events_as_log(
                forms::decompressed(raw)?,
                self.limits.max_decompressed_bytes,
            )?)),
            Form::JsonLines => Box::new(JsonLinesAsLog::new(forms::decompressed(raw)?, self.limits.max_record_bytes)),
        })
    }

    fn fail(&mut self, reporter: &mut impl Reporter, name: String, error: InputError, size: u64) -> u64 {
        self.summary.failed += 1;
        reporter.problem(Problem::Input { name, error });
        size
    }

    fn ingest(&mut self, reporter: &mut impl Reporter, name: String, id: &str, source: Box<dyn Read + Send + '_>) {
        let ingested = ingest(self.engine, id, source, self.limits, CHUNK_EVENTS, &mut self.buffer);
        let read = ingested.outcome.events();
        self.summary.records += read.records;
        self.summary.role_assumptions += read.role_assumptions;
        self.summary.bad_records += read.bad_record_count;
        for error in read.bad_records.iter().take(MAX_RECORD_PROBLEMS_SHOWN) {
            reporter.problem(Problem::Record { name: name.clone(), error: error.clone() });
        }
        let shown = read.bad_records.len().min(MAX_RECORD_PROBLEMS_SHOWN) as u64;
        if read.bad_record_count > shown {
            reporter.problem(Problem::MoreRecords { name: name.clone(), more: read.bad_record_count - shown });
        }
        // What was read before a failure still counts, but the input is not
        // marked processed: a repaired copy is read in full.
        match ingested.outcome {
            IngestOutcome::Read(_) => {}
            IngestOutcome::Unreadable { error, .. } => {
                self.summary.failed += 1;
                reporter.problem(Problem::Input { name, error: InputError::Content(error) });
            }
            IngestOutcome::SourceFailed { error, .. } => {
                self.summary.failed += 1;
                reporter.problem(Problem::Input { name, error: InputError::Source(error) });
            }
        }
        self.summary.alerts += ingested.alerts.len() as u64;
        for alert in &ingested.alerts {
            self.summary.detectors.entry(alert.detector.clone()).or_default().raised += 1;
            reporter.alert(alert);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_log_files_account_comes_from_its_key_path_or_name() {
        let key = "s3://trail/AWSLogs/o-abc/111122223333/CloudTrail/us-east-1/2026/10/05/x.json.gz";
        assert_eq!(super::logged_in(key).as_deref(), Some("111122223333"));
        let name = "/tmp/logs/444455556666_CloudTrail_us-east-1_20261005T1005Z_abc.json.gz";
        assert_eq!(super::logged_in(name).as_deref(), Some("444455556666"));
        assert_eq!(super::logged_in("export.json"), None);
        assert_eq!(super::logged_in("12345_CloudTrail_x.json"), None);
    }

    #[test]
    fn content_is_known_by_the_xxh3_digest_earlier_releases_remembered() {
        // Computed with the xxhash-rust crate of earlier releases: a different
        // value would replay every file their saved state remembers.
        let bytes = [7u8; 300];
        assert_eq!(super::Content::Memory(&bytes).id().unwrap(), "file:xxh3-128:eba573674fae8b2d8aec4a5414dad453");
    }
}
