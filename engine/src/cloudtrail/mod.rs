//! CloudTrail input: object names, the streaming reader and event extraction.

mod event;
mod gzip;
mod inflate_thread;
mod reader;
mod time;
mod value_scan;

pub use event::{
    account_of_arn, classify_record, AssumeRoleEvent, Classified, EventError, SourceAddress, ASSUME_ROLE_FAMILY,
};
pub use reader::{
    read_input, read_input_chunked, InputEvents, InputLimits, ReadError, ReadFailure, RecordError, RecordProblem,
    ScanBuffer,
};
pub use time::{format_rfc3339, parse_event_time, EpochSeconds};

/// What an object or file name says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    LogFile,
    /// `*CloudTrail-Digest*`: integrity digests, not events.
    Digest,
    NotALog,
}

/// Classifies an S3 key or file path by name: digests are skipped, and only
/// `.json` / `.json.gz` files are logs. Under `AWSLogs/` (a log archive
/// bucket that AWS Config, VPC flow logs and CloudTrail Insights share),
/// only CloudTrail's own folder holds logs:
/// `AWSLogs/[o-org/]<account>/CloudTrail/<region>/...`.
pub fn classify_key(key: &str) -> InputKind {
    if key.contains("CloudTrail-Digest") {
        return InputKind::Digest;
    }
    if key.split('/').any(|part| part == "AWSLogs") && service_folder(key) != Some("CloudTrail") {
        return InputKind::NotALog;
    }
    let name = key.rsplit(['/', '\\']).next().unwrap_or(key);
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".json.gz") || lower.ends_with(".json") {
        InputKind::LogFile
    } else {
        InputKind::NotALog
    }
}

/// The folder after the account in an `AWSLogs/` key: `CloudTrail`,
/// `Config`, `CloudTrail-Insight`, `vpcflowlogs`... (`replay s3://` skips
/// the folders that are not `CloudTrail` without listing them).
pub fn service_folder(key: &str) -> Option<&str> {
    let mut parts = key.split('/').skip_while(|p| *p != "AWSLogs").skip(1);
    // The organisation id, when there is one, comes before the account.
    if parts.next()?.starts_with("o-") {
        parts.next()?;
    }
    parts.next()
}

/// The account a CloudTrail key belongs to:
/// `[prefix/]AWSLogs/[o-org/]<account>/CloudTrail/<region>/...`.
pub fn account_from_key(key: &str) -> Option<String> {
    let mut parts = key.split('/').skip_while(|p| *p != "AWSLogs").skip(1);
    let mut candidate = parts.next()?;
    if candidate.starts_with("o-") {
        candidate = parts.next()?;
    }
    (candidate.len() == 12 && candidate.bytes().all(|b| b.is_ascii_digit())).then(|| candidate.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_classified_by_name() {
        assert_eq!(classify_key("AWSLogs/111122223333/CloudTrail/us-east-1/2026/10/05/111122223333_CloudTrail_us-east-1_20261005T1005Z_abc.json.gz"), InputKind::LogFile);
        assert_eq!(
            classify_key(
                "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/10/05/x_CloudTrail-Digest_us-east-1_y.json.gz"
            ),
            InputKind::Digest
        );
        assert_eq!(classify_key("AWSLogs/111122223333/CloudTrail/README.txt"), InputKind::NotALog);
        assert_eq!(classify_key("export.JSON"), InputKind::LogFile);
    }

    #[test]
    fn only_cloudtrail_s_folder_of_a_shared_log_archive_holds_logs() {
        let logs = [
            "AWSLogs/111122223333/CloudTrail/us-east-1/2026/10/05/111122223333_CloudTrail_us-east-1_20261005T1005Z_a.json.gz",
            "trail/AWSLogs/o-abc123/111122223333/CloudTrail/eu-west-1/2026/10/05/x.json.gz",
        ];
        for key in logs {
            assert_eq!(classify_key(key), InputKind::LogFile, "{key}");
        }
        let others = [
            "AWSLogs/111122223333/Config/us-east-1/2026/10/5/ConfigSnapshot/111122223333_Config_us-east-1_ConfigSnapshot_x.json.gz",
            "AWSLogs/111122223333/Config/us-east-1/2026/10/5/ConfigHistory/111122223333_Config_us-east-1_ConfigHistory_x.json.gz",
            "AWSLogs/o-abc123/111122223333/CloudTrail-Insight/us-east-1/2026/10/05/111122223333_CloudTrail-Insight_us-east-1_x.json.gz",
            "AWSLogs/111122223333/vpcflowlogs/us-east-1/2026/10/05/111122223333_vpcflowlogs_us-east-1_fl-1_x.log.gz",
            "AWSLogs/111122223333/ConfigWritabilityCheckFile",
        ];
        for key in others {
            assert_eq!(classify_key(key), InputKind::NotALog, "{key}");
        }
    }

    #[test]
    fn account_comes_from_the_key_with_or_without_org() {
        assert_eq!(
            account_from_key("AWSLogs/o-abc123/111122223333/CloudTrail/us-east-1/x.json.gz").as_deref(),
            Some("111122223333")
        );
        assert_eq!(
            account_from_key("trail/AWSLogs/444455556666/CloudTrail/eu-west-1/x.json.gz").as_deref(),
            Some("444455556666")
        );
        assert_eq!(account_from_key("logs/x.json.gz"), None);
    }
}
