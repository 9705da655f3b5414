//! The detectors: one file each, with its own state. Each reads only event
//! time, so files that arrive late or out of order land where they belong.

pub mod long_session;
pub mod repeated_failures;
pub mod source_ip;

use serde::{Deserialize, Serialize};

use crate::cloudtrail::EpochSeconds;
use crate::state::LazyMap;

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

/// How often, in event time, stored entries nobody used are decoded to
/// find what to forget. In between, only the entries in use are touched,
/// so an invocation does not pay for everything the account's state holds.
pub(crate) const SWEEP_INTERVAL_SECONDS: i64 = 86_400;

/// Something kept in a per-key history until it falls behind a horizon.
pub trait Timed {
    fn time(&self) -> EpochSeconds;
}

/// What a [`HorizonPruning`] map holds: forgotten piece by piece as its
/// times fall behind a horizon.
pub trait Expiring: Serialize + serde::de::DeserializeOwned + Clone {
    /// Forgets what is older than `horizon`; false when nothing is left.
    fn keep_from(&mut self, horizon: EpochSeconds) -> bool;
    /// The first horizon at which [`Expiring::keep_from`] changes it.
    fn due(&self) -> EpochSeconds;
}

impl<T: Timed + Serialize + serde::de::DeserializeOwned + Clone> Expiring for Vec<T> {
    fn keep_from(&mut self, horizon: EpochSeconds) -> bool {
        self.retain(|entry| entry.time() >= horizon);
        !self.is_empty()
    }

    fn due(&self) -> EpochSeconds {
        self.iter().map(Timed::time).min().map_or(EpochSeconds::MAX, |oldest| oldest.saturating_add(1))
    }
}

/// A processed input's newest event time.
impl Expiring for EpochSeconds {
    fn keep_from(&mut self, horizon: EpochSeconds) -> bool {
        *self >= horizon
    }

    fn due(&self) -> EpochSeconds {
        self.saturating_add(1)
    }
}

/// Pruning by event time of maps saved on lines of their own (failures
/// per principal, long grants per role, processed inputs; see
/// [`crate::state`]): an entry is pruned when decoded, decoded ones after
/// every input, and the stored rest in a daily sweep. Every entry in use
/// is then what pruning all of them after every input would have left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HorizonPruning {
    /// Horizon of the last prune: nothing older is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizon: Option<EpochSeconds>,
    /// Horizon of the last sweep over every stored entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swept_at: Option<EpochSeconds>,
}

impl HorizonPruning {
    /// The entry for `key`, pruned to the last horizon if it was stored.
    pub fn entry<'m, V: Expiring + Default>(&self, map: &'m mut LazyMap<V>, key: &str) -> &'m mut V {
        let horizon = self.horizon;
        map.get_or_insert_decoded(key, |value| horizon.is_none_or(|h| value.keep_from(h)), V::default)
    }

    /// Whether `key` has an entry that the last prune kept.
    pub fn contains<V: Expiring>(&self, map: &LazyMap<V>, key: &str) -> bool {
        map.get(key).is_some_and(|value| self.keeps(&*value))
    }

    /// Whether the last prune kept `value`: a stored entry may not have
    /// been swept yet.
    pub fn keeps<V: Expiring>(&self, value: &V) -> bool {
        self.horizon.is_none_or(|h| value.clone().keep_from(h))
    }

    /// Forgets what is older than `horizon`.
    pub fn prune<V: Expiring>(&mut self, map: &mut LazyMap<V>, horizon: EpochSeconds) {
        if self.swept_at.is_none_or(|at| horizon - at >= SWEEP_INTERVAL_SECONDS) {
            // Due times are horizons (see `Expiring::due`), so the sweep is given one.
            map.sweep(horizon, |value| value.keep_from(horizon));
            self.swept_at = Some(horizon);
        } else {
            map.retain_loaded(|_, value| value.keep_from(horizon));
        }
        self.horizon = Some(horizon);
    }
}

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
