//! The detectors: one file each, with its own state. Each reads only event
//! time, so files that arrive late or out of order land where they belong.

pub mod external_id_missing;
pub mod long_session;
pub mod mfa_missing;
pub mod organization;
pub mod outside_organization;
pub mod repeated_failures;
pub mod role_enumeration;
pub mod source_ip;

use crate::cloudtrail::EpochSeconds;

/// Every detector's name, as alerts and `[[suppress]]` rules give it.
pub const DETECTORS: [&str; 7] = [
    repeated_failures::DETECTOR,
    source_ip::DETECTOR,
    long_session::DETECTOR,
    role_enumeration::DETECTOR,
    external_id_missing::DETECTOR,
    mfa_missing::DETECTOR,
    outside_organization::DETECTOR,
];

/// How far behind the newest event of the whole state history is kept,
/// beyond each detector's own span. Files arrive late (CloudTrail within
/// minutes, retries within hours), a replay walks one account's month before
/// the next, and a second replay of the same files must meet the same
/// history so it raises nothing new.
pub const LATE_HISTORY_SECONDS: i64 = 35 * 86_400;

/// Kept for long because it is small: alert times (so a replay of old
/// files, once their processed-input record is gone, is still recognised)
/// and when lasting principals were first seen.
pub const LONG_MEMORY_SECONDS: i64 = 400 * 86_400;

pub(crate) fn secs(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX / 4)
}

/// `|a - b| <= span`, without overflow.
pub(crate) fn within(a: EpochSeconds, b: EpochSeconds, span: i64) -> bool {
    a.abs_diff(b) <= span.unsigned_abs()
}

/// The last path segment of an ARN, for one-line titles.
pub(crate) fn short_name(arn: &str) -> &str {
    arn.rsplit(['/', ':']).find(|s| !s.is_empty()).unwrap_or(arn)
}

/// Roles only AWS services can assume (`role/aws-service-role/...`), and
/// calls AWS makes itself (`AWS Internal`): no outside party is let in.
pub(crate) fn is_aws_own(event: &crate::cloudtrail::AssumeRoleEvent) -> bool {
    event.role_arn.as_deref().is_some_and(|r| r.contains(":role/aws-service-role/"))
        || event.source == crate::cloudtrail::SourceAddress::AwsInternal
}

/// Event builders shared by the detector tests.
#[cfg(test)]
pub(crate) mod tests {
    use crate::cloudtrail::{AssumeRoleEvent, SourceAddress};

    pub fn success(principal: &str, id: &str, time: i64) -> AssumeRoleEvent {
        AssumeRoleEvent {
            event_id: id.to_owned(),
            event_time: time,
            event_name: "AssumeRole".to_owned(),
            principal: principal.to_owned(),
            identity_type: "IAMUser".to_owned(),
            caller_account: crate::cloudtrail::account_of_arn(principal).map(str::to_owned),
            session_issuer_arn: None,
            shared_event_id: None,
            serial_number_given: false,
            role_arn: Some("arn:aws:iam::111122223333:role/app".to_owned()),
            denied_role_arn: None,
            role_session_name: Some("s".to_owned()),
            source: SourceAddress::Ip("192.0.2.10".parse().unwrap()),
            user_agent: None,
            duration_seconds: None,
            external_id_given: false,
            mfa_authenticated: None,
            error_code: None,
            account_id: "111122223333".to_owned(),
            recipient_account_id: Some("111122223333".to_owned()),
            aws_region: Some("us-east-1".to_owned()),
        }
    }

    pub fn failure(principal: &str, id: &str, time: i64) -> AssumeRoleEvent {
        AssumeRoleEvent { error_code: Some("AccessDenied".to_owned()), ..success(principal, id, time) }
    }

    pub fn from_ip(principal: &str, id: &str, time: i64, ip: &str) -> AssumeRoleEvent {
        AssumeRoleEvent { source: SourceAddress::parse(Some(ip)), ..success(principal, id, time) }
    }

    pub fn long(role: &str, id: &str, time: i64, duration: u64) -> AssumeRoleEvent {
        AssumeRoleEvent {
            role_arn: Some(format!("arn:aws:iam::111122223333:role/{role}")),
            duration_seconds: Some(duration),
            ..success("arn:aws:iam::111122223333:user/alice", id, time)
        }
    }
}
