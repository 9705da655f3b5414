//! Where replay inputs come from (files, folders, S3, stdin), which are
//! passed over and why, and the forms their content may take.

pub mod forms;
pub mod layout;
pub mod local;
pub mod pipeline;
pub mod s3;

use std::collections::BTreeMap;
use std::path::PathBuf;

use rolewatch::cloudtrail::{classify_key, service_folder, InputKind};

use layout::DateWindow;

/// Why an input was passed over without being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// `*CloudTrail-Digest*`: integrity digests, not events.
    Digest,
    /// Under `AWSLogs/<account>/` but another service's folder (Config...).
    NotCloudTrail,
    /// A name that is not `.json` / `.json.gz`.
    NotALog,
    /// Dated outside `--since` / `--until`.
    OutsideDates,
    /// Read before (same content), as the state file remembers.
    AlreadyProcessed,
    /// A folder of another service under `AWSLogs/<account>/`, not listed
    /// at all: its keys are not counted one by one.
    FolderNotListed,
}

impl SkipReason {
    pub fn label(self) -> &'static str {
        match self {
            SkipReason::Digest => "digest",
            SkipReason::NotCloudTrail => "not CloudTrail",
            SkipReason::NotALog => "not a log name",
            SkipReason::OutsideDates => "outside dates",
            SkipReason::AlreadyProcessed => "already processed",
            SkipReason::FolderNotListed => "folders not listed",
        }
    }
}

/// Skipped inputs counted by reason.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Skips(pub BTreeMap<SkipReason, u64>);

impl Skips {
    pub fn add(&mut self, reason: SkipReason, n: u64) {
        if n > 0 {
            *self.0.entry(reason).or_default() += n;
        }
    }

    pub fn merge(&mut self, other: &Skips) {
        for (reason, n) in &other.0 {
            self.add(*reason, *n);
        }
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    pub fn get(&self, reason: SkipReason) -> u64 {
        self.0.get(&reason).copied().unwrap_or(0)
    }
}

/// Whether a file path or object key is passed over, and why: the
/// engine's own key classification (as the Lambda applies it), then the
/// dates.
pub fn skip_reason(key: &str, window: &DateWindow) -> Option<SkipReason> {
    match classify_key(key) {
        InputKind::Digest => Some(SkipReason::Digest),
        InputKind::NotALog if service_folder(key).is_some_and(|s| s != "CloudTrail") => Some(SkipReason::NotCloudTrail),
        InputKind::NotALog if is_export_name(key) => window.excludes(key).then_some(SkipReason::OutsideDates),
        InputKind::NotALog => Some(SkipReason::NotALog),
        InputKind::LogFile if window.excludes(key) => Some(SkipReason::OutsideDates),
        InputKind::LogFile => None,
    }
}

/// JSON Lines exports are named `.jsonl` or `.ndjson` (gzip or not); the
/// engine's classification, shared with the Lambda, knows only `.json`.
fn is_export_name(key: &str) -> bool {
    let lower = key.rsplit('/').next().unwrap_or(key).to_ascii_lowercase();
    [".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz"].iter().any(|ext| lower.ends_with(ext))
}

/// One input to read, in the order they are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned {
    File { path: PathBuf, size: u64 },
    Stdin,
    S3 { bucket: String, key: String, size: u64 },
}

impl Planned {
    pub fn size(&self) -> u64 {
        match self {
            Planned::File { size, .. } | Planned::S3 { size, .. } => *size,
            Planned::Stdin => 0,
        }
    }

    /// How messages name it.
    pub fn name(&self) -> String {
        match self {
            Planned::File { path, .. } => path.display().to_string(),
            Planned::Stdin => "<stdin>".to_owned(),
            Planned::S3 { bucket, key, .. } => format!("s3://{bucket}/{key}"),
        }
    }
}

/// A planned input, ready to read: local ones are opened where they are
/// read, S3 objects arrive fetched.
#[derive(Debug)]
pub enum Fetched {
    File(PathBuf),
    Stdin,
    Object { name: String, bytes: Vec<u8> },
    Failed { name: String, error: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_skipped_by_the_lambda_s_rule_then_by_date() {
        let window = DateWindow { since: chrono::NaiveDate::from_ymd_opt(2026, 10, 5), until: None };
        let log = "AWSLogs/o-abc123/111122223333/CloudTrail/us-east-1/2026/10/05/x.json.gz";
        assert_eq!(skip_reason(log, &window), None);
        assert_eq!(skip_reason(&log.replace("/05/", "/04/"), &window), Some(SkipReason::OutsideDates));
        assert_eq!(
            skip_reason("AWSLogs/111122223333/Config/us-east-1/2026/10/5/ConfigSnapshot/x.json.gz", &window),
            Some(SkipReason::NotCloudTrail)
        );
        assert_eq!(
            skip_reason("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/x_CloudTrail-Digest_y.json.gz", &window),
            Some(SkipReason::Digest)
        );
        assert_eq!(skip_reason("exports/README.md", &window), Some(SkipReason::NotALog));
        assert_eq!(skip_reason("exports/athena.JSONL.gz", &window), None, "JSON Lines exports are read");
    }
}
