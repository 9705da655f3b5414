//! `role_enumeration`: one principal's failed assumptions name at least
//! `distinct_roles` distinct roles within `window_seconds`: someone
//! guessing which roles exist or trust it. Roles the principal, or any
//! session of the same role, was granted within `memory_seconds` before the
//! failure was read are not guesses: a pipeline whose trust broke fails on
//! roles it used yesterday.

use serde::{Deserialize, Serialize};

use super::{secs, short_name, LATE_HISTORY_SECONDS};
use crate::alert::{dedup_key, Alert, NewAlert, Severity};
use crate::cloudtrail::{AssumeRoleEvent, EpochSeconds};
use crate::config::RoleEnumerationConfig;
use crate::storage::{HorizonPruning, LazyMap, Timed};

pub const DETECTOR: &str = "role_enumeration";
/// Guesses kept per principal; a storm beyond this keeps the newest.
const MAX_GUESSES_PER_PRINCIPAL: usize = 1024;
/// Roles remembered per grantee; the most recently granted are kept.
const MAX_GRANTED_ROLES: usize = 256;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleEnumerationState {
    /// Failed assumptions of roles not granted, per principal, sorted.
    /// Saved on lines of their own (see [`crate::state`]).
    #[serde(default, skip_serializing)]
    pub guesses: LazyMap<Vec<Guess>>,
    #[serde(default)]
    pub guesses_pruning: HorizonPruning,
    /// Roles granted, per principal and per session issuer (the role a
    /// session belongs to), with the newest grant time. Saved on lines of
    /// their own.
    #[serde(default, skip_serializing)]
    pub grants: LazyMap<Vec<RoleGrant>>,
    #[serde(default)]
    pub grants_pruning: HorizonPruning,
}

/// A failed assumption of a role not granted: `[time, event id, role]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Guess(pub EpochSeconds, pub String, pub String);

impl Timed for Guess {
    fn time(&self) -> EpochSeconds {
        self.0
    }
}

/// A role granted and when it was last granted: `[role, time]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleGrant(pub String, pub EpochSeconds);

impl Timed for RoleGrant {
    fn time(&self) -> EpochSeconds {
        self.1
    }
}

/// The guesses of one burst.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enumeration {
    pub first: EpochSeconds,
    pub last: EpochSeconds,
    pub event_ids: Vec<String>,
    /// Distinct roles guessed, in order of first guess.
    pub roles: Vec<String>,
}

impl RoleEnumerationState {
    /// Learns a grant, or records a guess and returns the burst it completes.
    pub fn observe(&mut self, config: &RoleEnumerationConfig, event: &AssumeRoleEvent) -> Option<Enumeration> {
        // An AWS service failing on roles is misconfiguration, not guessing
        // (repeated_failures still counts it), and services' grants would
        // fill the state for nothing.
        if event.identity_type == "AWSService" {
            return None;
        }
        let t = event.event_time;
        if event.succeeded() {
            self.learn_grant(event);
            return None;
        }
        let role = event.role_arn.as_deref().or(event.denied_role_arn.as_deref())?;
        let memory = secs(config.memory_seconds);
        // A stored grant the last prune would have dropped is not counted.
        let since = self.grants_pruning.horizon.map_or(t - memory, |h| h.max(t - memory));
        let granted =
            |key: &str| self.grants.get(key).is_some_and(|grants| grants.iter().any(|g| g.0 == role && g.1 >= since));
        if granted(&event.principal) || event.session_issuer_arn.as_deref().is_some_and(granted) {
            return None;
        }
        let list = self.guesses_pruning.entry(&mut self.guesses, &event.principal);
        let guess = Guess(t, event.event_id.clone(), role.to_owned());
        match list.binary_search(&guess) {
            Ok(_) => return None, // the same event again
            Err(at) => list.insert(at, guess),
        }
        if list.len() > MAX_GUESSES_PER_PRINCIPAL {
            list.remove(0);
        }
        densest(list, t, secs(config.window_seconds)).filter(|burst| burst.roles.len() as u64 >= config.distinct_roles)
    }

    /// Remembers a granted role under the caller and, for a session, under
    /// the role it is a session of: build systems name every run's session anew.
    fn learn_grant(&mut self, event: &AssumeRoleEvent) {
        // A role owner's copy names no session; failures are never logged there.
        if event.identity_type == "AWSAccount" {
            return;
        }
        let Some(role) = event.role_arn.as_deref() else { return };
        let grantee = event.session_issuer_arn.as_deref().unwrap_or(&event.principal);
        let grants = self.grants_pruning.entry(&mut self.grants, grantee);
        match grants.iter_mut().find(|g| g.0 == role) {
            Some(grant) => grant.1 = grant.1.max(event.event_time),
            None => {
                grants.push(RoleGrant(role.to_owned(), event.event_time));
                if grants.len() > MAX_GRANTED_ROLES {
                    if let Some(oldest) = grants.iter().enumerate().min_by_key(|(_, g)| g.1).map(|(i, _)| i) {
                        grants.swap_remove(oldest);
                    }
                }
            }
        }
    }

    pub fn prune(&mut self, config: &RoleEnumerationConfig, watermark: EpochSeconds) {
        let guesses = watermark - secs(config.window_seconds) - LATE_HISTORY_SECONDS;
        self.guesses_pruning.prune(&mut self.guesses, guesses);
        let grants = watermark - secs(config.memory_seconds) - LATE_HISTORY_SECONDS;
        self.grants_pruning.prune(&mut self.grants, grants);
    }
}

/// The window of length `window` holding `at` whose guesses name the most
/// distinct roles (inclusive at both ends).
fn densest(list: &[Guess], at: EpochSeconds, window: i64) -> Option<Enumeration> {
    let lo = list.partition_point(|g| g.0 < at - window);
    let hi = list.partition_point(|g| g.0 <= at + window);
    let slice = &list[lo..hi];
    let mut best: Option<Enumeration> = None;
    for (i, start) in slice.iter().enumerate() {
        if start.0 > at {
            break;
        }
        if start.0 + window < at {
            continue;
        }
        let inside: Vec<&Guess> = slice[i..].iter().take_while(|g| g.0 <= start.0 + window).collect();
        let mut roles: Vec<String> = Vec::new();
        for g in &inside {
            if !roles.contains(&g.2) {
                roles.push(g.2.clone());
            }
        }
        if best.as_ref().is_none_or(|b| roles.len() > b.roles.len()) {
            best = Some(Enumeration {
                first: start.0,
                last: inside.last().map_or(start.0, |g| g.0),
                event_ids: inside.iter().map(|g| g.1.clone()).collect(),
                roles,
            });
        }
    }
    best
}

pub fn alert(config: &RoleEnumerationConfig, event: &AssumeRoleEvent, burst: &Enumeration) -> Alert {
    let who = short_name(&event.principal);
    let shown: Vec<&str> = burst.roles.iter().take(5).map(String::as_str).collect();
    let mut alert = Alert::new(NewAlert {
        detector: DETECTOR,
        severity: Severity::Critical,
        title: &format!("{who} tried to assume {} roles it was never granted", burst.roles.len()),
        summary: &format!(
            "{principal} failed to assume {count} distinct roles within {window} s ({shown}{more}), none of them granted to it \
             or to its role's sessions within the last {memory_days} days. This is how someone with stolen credentials \
             looks for roles that exist or trust them. First check whether {principal}'s credentials are in use from \
             {ip}: if the owner did not make these calls, deactivate its keys or revoke its sessions.",
            principal = event.principal,
            count = burst.roles.len(),
            window = config.window_seconds,
            shown = shown.join(", "),
            more = if burst.roles.len() > shown.len() { ", ..." } else { "" },
            memory_days = config.memory_seconds / 86_400,
            ip = event.source.as_text().unwrap_or_else(|| "an unrecorded address".to_owned()),
        ),
        dedup_key: dedup_key(DETECTOR, &[&event.principal]),
        account_id: &event.account_id,
        principal: &event.principal,
        caller_account: event.caller_account.as_deref(),
        role_arn: event.role_arn.as_deref(),
        source_ip: event.source.as_text().as_deref(),
        event_name: &event.event_name,
        first_event_time: burst.first,
        last_event_time: burst.last,
    })
    .with_detail("distinct_roles", config.distinct_roles)
    .with_detail("window_seconds", config.window_seconds)
    .with_detail("roles", burst.roles.iter().take(50).map(|r| crate::alert::clean_text(r, 2048)).collect::<Vec<_>>());
    if let Some(agent) = &event.user_agent {
        alert = alert.with_detail("user_agent", agent.as_str());
    }
    for id in &burst.event_ids {
        alert.add_event(id);
    }
    alert
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::tests::failure;

    fn guess(id: &str, t: i64, role: &str) -> AssumeRoleEvent {
        AssumeRoleEvent {
            role_arn: Some(format!("arn:aws:iam::222222222222:role/{role}")),
            ..failure("mallory", id, t)
        }
    }

    #[test]
    fn distinct_roles_within_the_window_make_a_burst_and_repeats_do_not() {
        let c = RoleEnumerationConfig { distinct_roles: 3, ..RoleEnumerationConfig::default() };
        let mut s = RoleEnumerationState::default();
        assert_eq!(s.observe(&c, &guess("1", 0, "a")), None);
        assert_eq!(s.observe(&c, &guess("2", 10, "a")), None, "the same role twice is one guess");
        assert_eq!(s.observe(&c, &guess("3", 20, "b")), None);
        let burst = s.observe(&c, &guess("4", 600, "c")).expect("a, b and c within 600 s");
        assert_eq!(burst.roles.len(), 3);
        assert_eq!(burst.event_ids, ["1", "2", "3", "4"]);
        let mut s = RoleEnumerationState::default();
        s.observe(&c, &guess("1", 0, "a"));
        s.observe(&c, &guess("2", 300, "b"));
        assert_eq!(s.observe(&c, &guess("3", 601, "c")), None, "a is 601 s before c");
        assert!(s.observe(&c, &guess("4", 200, "d")).is_some(), "a late guess lands in its window");
    }

    #[test]
    fn a_role_granted_to_a_session_of_the_same_role_is_not_a_guess() {
        let c = RoleEnumerationConfig { distinct_roles: 1, ..RoleEnumerationConfig::default() };
        let mut s = RoleEnumerationState::default();
        let issuer = Some("arn:aws:iam::111122223333:role/ci".to_owned());
        let mut granted = guess("ok", 0, "deploy");
        (granted.error_code, granted.principal, granted.session_issuer_arn) = (None, "run-1".into(), issuer.clone());
        s.observe(&c, &granted);
        let mut again = guess("no", 100, "deploy");
        (again.principal, again.session_issuer_arn) = ("run-2".into(), issuer);
        assert_eq!(s.observe(&c, &again), None);
        assert!(s.observe(&c, &guess("other", 100, "deploy")).is_some(), "another principal's grant does not count");
    }
}
