//! `outside_organization`: a successful role assumption by a caller account
//! outside the organisation and not in `trusted_accounts`, for a (caller
//! account, role) pair not seen within `memory_seconds`. Pairs first seen
//! within `learning_period_seconds` of the start are learned quietly.

use serde::{Deserialize, Serialize};

use super::organization::Organization;
use super::{is_aws_own, secs, short_name, within, LATE_HISTORY_SECONDS};
use crate::alert::{dedup_key, Alert, NewAlert, Severity};
use crate::cloudtrail::{AssumeRoleEvent, EpochSeconds};
use crate::config::OutsideOrganizationConfig;
use crate::storage::{Expiring, HorizonPruning, LazyMap, SWEEP_INTERVAL_SECONDS};

pub const DETECTOR: &str = "outside_organization";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutsideOrganizationState {
    /// When each (caller account, role) pair was first and last seen.
    /// Saved on lines of their own (see [`crate::state`]).
    #[serde(default, skip_serializing)]
    pub pairs: LazyMap<PairSeen>,
    #[serde(default)]
    pub pruning: HorizonPruning,
}

/// `[first, last]` event times of a pair's uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairSeen(pub EpochSeconds, pub EpochSeconds);

impl Expiring for PairSeen {
    fn keep_from(&mut self, horizon: EpochSeconds) -> bool {
        self.1 >= horizon
    }

    fn due(&self) -> EpochSeconds {
        self.1.saturating_add(1)
    }
}

/// The pair's key: the caller account and the role.
fn pair_key(caller: &str, role: &str) -> String {
    format!("{caller} {role}")
}

impl OutsideOrganizationState {
    /// Learns an outside caller's use of a role; true when it is new.
    pub fn observe(
        &mut self,
        config: &OutsideOrganizationConfig,
        org: &Organization<'_>,
        event: &AssumeRoleEvent,
    ) -> bool {
        let (Some(caller), Some(role)) = (event.caller_account.as_deref(), event.role_arn.as_deref()) else {
            return false;
        };
        if !event.succeeded()
            || is_aws_own(event)
            || org.is_inside(caller)
            || config.trusted_accounts.iter().any(|a| a == caller)
        {
            return false;
        }
        let t = event.event_time;
        let memory = secs(config.memory_seconds);
        let key = pair_key(caller, role);
        let seen = self.pairs.get(&key).map(|s| *s).filter(|s| self.pruning.keeps(s));
        let known = seen.is_some_and(|s| within(s.0, t, memory) || within(s.1, t, memory) || (s.0 <= t && t <= s.1));
        // Rewritten when it moves by a day or more: a vendor's daily use does
        // not rewrite its line with every call.
        let moves = seen.is_none_or(|s| t < s.0 || t - s.1 >= SWEEP_INTERVAL_SECONDS);
        if moves {
            let updated = seen.map_or(PairSeen(t, t), |s| PairSeen(s.0.min(t), s.1.max(t)));
            self.pairs.insert(&key, updated);
        }
        let learning = org.within_start(t, config.learning_period_seconds) || org.discovering(t);
        !known && !learning
    }

    pub fn prune(&mut self, config: &OutsideOrganizationConfig, watermark: EpochSeconds) {
        let horizon = watermark - secs(config.memory_seconds) - LATE_HISTORY_SECONDS;
        self.pruning.prune(&mut self.pairs, horizon);
    }
}

pub fn alert(config: &OutsideOrganizationConfig, event: &AssumeRoleEvent) -> Alert {
    let role = event.role_arn.as_deref().unwrap_or_default();
    let caller = event.caller_account.as_deref().unwrap_or_default();
    let mut alert = Alert::new(NewAlert {
        detector: DETECTOR,
        severity: Severity::High,
        title: &format!("Account {caller}, outside the organisation, assumed {}", short_name(role)),
        summary: &format!(
            "{principal} in account {caller}, which is not one of the organisation's accounts nor in trusted_accounts, \
             assumed {role}; this account has not used this role within the last {days} days. A role that trusts an \
             outside account is a way in for whoever controls that account. First check whom account {caller} belongs \
             to and whether the role's trust policy should name it: if it is a known vendor, add it to \
             outside_organization.trusted_accounts; if not, remove it from the trust policy.",
            principal = event.principal,
            days = config.memory_seconds / 86_400,
        ),
        dedup_key: dedup_key(DETECTOR, &[caller, role]),
        account_id: &event.account_id,
        principal: &event.principal,
        caller_account: Some(caller),
        role_arn: Some(role),
        source_ip: event.source.as_text().as_deref(),
        event_name: &event.event_name,
        first_event_time: event.event_time,
        last_event_time: event.event_time,
    })
    .with_detail("memory_seconds", config.memory_seconds)
    .with_detail("external_id_given", event.external_id_given);
    if let Some(session) = &event.role_session_name {
        alert = alert.with_detail("role_session_name", session.as_str());
    }
    alert.add_event(&event.event_id);
    alert
}
