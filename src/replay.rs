//! `rolewatch replay`: the engine over files on disk. Folders are walked
//! in lexicographic path order (CloudTrail names sort by time); a file that
//! cannot be read is reported and counted, and the others go on.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rolewatch::alert::Alert;
use rolewatch::cloudtrail::{classify_key, InputKind, InputLimits, ReadError, RecordError, ScanBuffer};
use rolewatch::engine::Engine;
use rolewatch::ingest::{ingest, IngestOutcome, CHUNK_EVENTS};

/// Bad records printed per file before the rest are only counted.
const MAX_RECORD_PROBLEMS_SHOWN: usize = 10;

/// What a replay did, for the closing line on stderr.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ReplaySummary {
    pub files: u64,
    pub records: u64,
    pub role_assumptions: u64,
    pub alerts: u64,
    /// Digests and non-log files passed over, and inputs already processed.
    pub skipped: u64,
    pub already_processed: u64,
    /// Inputs that could not be read to their end.
    pub failed: u64,
    pub bad_records: u64,
    pub roaming_principals: usize,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl ReplaySummary {
    pub fn line(&self) -> String {
        let seconds = self.elapsed.as_secs_f64().max(1e-9);
        let mb = self.bytes as f64 / 1e6;
        format!(
            "files: {}, records: {}, role assumptions: {}, alerts: {}, skipped: {} ({} already processed), failed: {}, bad records: {}, \
             roaming principals: {}, throughput: {:.1} MB/s ({:.1} MB in {:.3} s, {:.0} records/s)",
            self.files,
            self.records,
            self.role_assumptions,
            self.alerts,
            self.skipped,
            self.already_processed,
            self.failed,
            self.bad_records,
            self.roaming_principals,
            mb / seconds,
            mb,
            seconds,
            self.records as f64 / seconds,
        )
    }
}

/// Something to tell the person running the replay, on stderr.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("{path}: {error}")]
    Input { path: PathBuf, error: InputError },
    #[error("{path}: {error}")]
    Record { path: PathBuf, error: RecordError },
    #[error("{path}: {more} more bad records not shown")]
    MoreRecords { path: PathBuf, more: u64 },
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
}

/// Finds the log files under `paths`, in order: folders recursively in
/// lexicographic order, explicit files as given. Returns the files, the
/// count of skipped entries, and the paths that could not be listed.
pub fn collect_inputs(paths: &[PathBuf]) -> (Vec<PathBuf>, u64, Vec<Problem>) {
    let mut files = Vec::new();
    let mut skipped = 0;
    let mut problems = Vec::new();
    for path in paths {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => walk(path, &mut files, &mut skipped, &mut problems),
            // Named files follow the same rule as walked ones: digests and
            // non-log names are skipped and counted.
            Ok(_) if classify_key(&path.to_string_lossy()) == InputKind::LogFile => files.push(path.clone()),
            Ok(_) => skipped += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                problems.push(Problem::Input { path: path.clone(), error: InputError::Missing })
            }
            Err(e) => problems.push(Problem::Input { path: path.clone(), error: InputError::Open(e) }),
        }
    }
    (files, skipped, problems)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, skipped: &mut u64, problems: &mut Vec<Problem>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            problems.push(Problem::Input { path: dir.to_path_buf(), error: InputError::Open(e) });
            return;
        }
    };
    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    children.sort();
    for child in children {
        if child.is_dir() {
            walk(&child, files, skipped, problems);
        } else if classify_key(&child.to_string_lossy()) == InputKind::LogFile {
            files.push(child);
        } else {
            *skipped += 1;
        }
    }
}

/// The identity of a file's content, so the same file replayed again
/// (under any name) is recognised.
pub fn file_input_id(path: &Path) -> io::Result<String> {
    let mut hasher = twox_hash::XxHash3_128::new();
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.write(&buf[..n]);
    }
    Ok(format!("file:xxh3-128:{:032x}", hasher.finish_128()))
}

/// Replays `files` through `engine`, handing each alert to `on_alert` and
/// each problem to `on_problem` as they happen.
pub fn replay_files(
    engine: &mut Engine,
    files: &[PathBuf],
    limits: &InputLimits,
    mut on_alert: impl FnMut(&Alert),
    mut on_problem: impl FnMut(Problem),
) -> ReplaySummary {
    let started = Instant::now();
    let mut summary = ReplaySummary::default();
    let mut buffer = ScanBuffer::with_inflate_thread();
    for path in files {
        summary.files += 1;
        let fail = |error: InputError| Problem::Input { path: path.clone(), error };
        let opened = file_input_id(path).and_then(|id| Ok((id, File::open(path)?)));
        let (id, file) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                summary.failed += 1;
                on_problem(fail(InputError::Open(e)));
                continue;
            }
        };
        if engine.is_processed(&id) {
            summary.skipped += 1;
            summary.already_processed += 1;
            continue;
        }
        summary.bytes += file.metadata().map(|m| m.len()).unwrap_or(0);
        let ingested = ingest(engine, &id, file, limits, CHUNK_EVENTS, &mut buffer);
        let read = ingested.outcome.events();
        summary.records += read.records;
        summary.role_assumptions += read.role_assumptions;
        summary.bad_records += read.bad_record_count;
        for error in read.bad_records.iter().take(MAX_RECORD_PROBLEMS_SHOWN) {
            on_problem(Problem::Record { path: path.clone(), error: error.clone() });
        }
        let shown = read.bad_records.len().min(MAX_RECORD_PROBLEMS_SHOWN) as u64;
        if read.bad_record_count > shown {
            on_problem(Problem::MoreRecords { path: path.clone(), more: read.bad_record_count - shown });
        }
        // What was read before a failure still counts, but the file is not
        // marked processed: a repaired copy is read in full.
        match ingested.outcome {
            IngestOutcome::Read(_) => {}
            IngestOutcome::Unreadable { error, .. } => {
                summary.failed += 1;
                on_problem(fail(InputError::Content(error)));
            }
            IngestOutcome::SourceFailed { error, .. } => {
                summary.failed += 1;
                on_problem(fail(InputError::Source(error)));
            }
        }
        summary.alerts += ingested.alerts.len() as u64;
        ingested.alerts.iter().for_each(&mut on_alert);
    }
    summary.roaming_principals = engine.roaming_principals();
    summary.elapsed = started.elapsed();
    summary
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_file_is_known_by_the_xxh3_digest_earlier_releases_remembered() {
        // Computed with the xxhash-rust crate of earlier releases: a different
        // value would replay every file their saved state remembers.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json.gz");
        std::fs::write(&path, [7u8; 300]).unwrap();
        assert_eq!(super::file_input_id(&path).unwrap(), "file:xxh3-128:eba573674fae8b2d8aec4a5414dad453");
    }
}
