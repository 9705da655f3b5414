//! `repeated_failures`: at least `threshold` failed AssumeRole-family calls
//! by one principal within `window_seconds` of event time: role guessing,
//! or a stolen credential probing for what it can reach.

use serde::{Deserialize, Serialize};

use super::{secs, short_name, LATE_HISTORY_SECONDS};
use crate::alert::{dedup_key, Alert, NewAlert, Severity};
use crate::cloudtrail::{AssumeRoleEvent, EpochSeconds};
use crate::config::RepeatedFailuresConfig;
use crate::storage::LazyMap;
use crate::storage::{HorizonPruning, Timed};

pub const DETECTOR: &str = "repeated_failures";
/// Failures kept per principal; a storm beyond this keeps the newest.
const MAX_FAILURES_PER_PRINCIPAL: usize = 2048;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureState {
    /// Failures per principal, sorted by (time, event id). Saved on lines
    /// of their own (see [`crate::state`]); read from here only in state
    /// of formats 1 and 2.
    #[serde(default, skip_serializing)]
    pub by_principal: LazyMap<Vec<Failure>>,
    #[serde(default)]
    pub pruning: HorizonPruning,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Failure {
    #[serde(rename = "t")]
    pub time: EpochSeconds,
    #[serde(rename = "id")]
    pub event_id: String,
}

impl Timed for Failure {
    fn time(&self) -> EpochSeconds {
        self.time
    }
}

/// The densest window around a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Burst {
    pub first: EpochSeconds,
    pub last: EpochSeconds,
    pub event_ids: Vec<String>,
}

impl FailureState {
    /// Records a failed call; returns the burst it completes, if any.
    pub fn observe(&mut self, config: &RepeatedFailuresConfig, event: &AssumeRoleEvent) -> Option<Burst> {
        if event.succeeded() {
            return None;
        }
        let list = self.pruning.entry(&mut self.by_principal, &event.principal);
        let entry = Failure { time: event.event_time, event_id: event.event_id.clone() };
        match list.binary_search(&entry) {
            Ok(_) => return None, // the same event again (overlapping inputs)
            Err(at) => list.insert(at, entry),
        }
        if list.len() > MAX_FAILURES_PER_PRINCIPAL {
            list.remove(0);
        }
        densest_window(list, event.event_time, secs(config.window_seconds))
            .filter(|burst| burst.event_ids.len() as u64 >= config.threshold)
    }

    /// Drops failures no window can reach any more.
    pub fn prune(&mut self, config: &RepeatedFailuresConfig, watermark: EpochSeconds) {
        let horizon = watermark - secs(config.window_seconds) - LATE_HISTORY_SECONDS;
        self.pruning.prune(&mut self.by_principal, horizon);
    }
}

/// The window of length `window` holding `at` with the most failures
/// (inclusive at both ends: a failure exactly `window` seconds after the
/// first still counts).
fn densest_window(list: &[Failure], at: EpochSeconds, window: i64) -> Option<Burst> {
    let lo = list.partition_point(|f| f.time < at - window);
    let hi = list.partition_point(|f| f.time <= at + window);
    let slice = &list[lo..hi];
    let mut best: Option<(usize, usize)> = None;
    let mut j = 0;
    for i in 0..slice.len() {
        if slice[i].time > at {
            break;
        }
        j = j.max(i);
        while j < slice.len() && slice[j].time <= slice[i].time + window {
            j += 1;
        }
        // Only windows that contain `at` count: it starts at or before `at`
        // and, by construction of `j`, ends at or after it.
        if slice[i].time + window >= at && best.is_none_or(|(a, b)| j - i > b - a) {
            best = Some((i, j));
        }
    }
    let (a, b) = best?;
    let window = &slice[a..b];
    Some(Burst {
        first: window.first()?.time,
        last: window.last()?.time,
        event_ids: window.iter().map(|f| f.event_id.clone()).collect(),
    })
}

pub fn alert(config: &RepeatedFailuresConfig, event: &AssumeRoleEvent, burst: &Burst) -> Alert {
    let who = short_name(&event.principal);
    let code = event.error_code.as_deref().unwrap_or("an error");
    let target =
        event.role_arn.as_deref().or(event.denied_role_arn.as_deref()).unwrap_or("a role CloudTrail did not record");
    let mut alert = Alert::new(NewAlert {
        detector: DETECTOR,
        severity: Severity::High,
        title: &format!("Repeated failed role assumptions by {who}"),
        summary: &format!(
            "{principal} had {name} calls fail at least {threshold} times within {window} s, starting with {code} on {target}; \
             event_count and event_ids hold every failure of the burst this alert covers. \
             Repeated failures are how role guessing and stolen credentials probing for access look; a misconfigured job looks the same. \
             First check the source IP and user agent: are they the owner's usual ones?",
            principal = event.principal,
            name = event.event_name,
            window = config.window_seconds,
            threshold = config.threshold,
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
    .with_detail("threshold", config.threshold)
    .with_detail("window_seconds", config.window_seconds)
    .with_detail("error_code", code);
    if let Some(denied) = &event.denied_role_arn {
        alert = alert.with_detail("denied_role_arn", denied.as_str());
    }
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

    fn config(threshold: u64, window_seconds: u64) -> RepeatedFailuresConfig {
        RepeatedFailuresConfig { threshold, window_seconds }
    }

    fn run(config: &RepeatedFailuresConfig, times: &[i64]) -> Vec<Option<usize>> {
        let mut state = FailureState::default();
        times
            .iter()
            .enumerate()
            .map(|(i, t)| state.observe(config, &failure("alice", &format!("e{i}"), *t)).map(|b| b.event_ids.len()))
            .collect()
    }

    #[test]
    fn exactly_at_threshold_fires() {
        let got = run(&config(3, 600), &[0, 100, 200]);
        assert_eq!(got, [None, None, Some(3)]);
    }

    #[test]
    fn the_window_is_inclusive_and_one_second_more_is_outside() {
        assert_eq!(run(&config(2, 600), &[0, 600]), [None, Some(2)]);
        assert_eq!(run(&config(2, 600), &[0, 601]), [None, None]);
    }

    #[test]
    fn out_of_order_failures_land_in_their_window() {
        // The middle failure arrives last, in a late file.
        assert_eq!(run(&config(3, 600), &[0, 500, 250]), [None, None, Some(3)]);
        // A late failure far outside the window does not complete it.
        assert_eq!(run(&config(3, 600), &[5000, 5500, 100]), [None, None, None]);
    }

    #[test]
    fn the_same_event_twice_counts_once() {
        let cfg = config(2, 600);
        let mut state = FailureState::default();
        assert!(state.observe(&cfg, &failure("alice", "same", 10)).is_none());
        assert!(state.observe(&cfg, &failure("alice", "same", 10)).is_none());
    }

    #[test]
    fn successes_and_other_principals_do_not_count() {
        let cfg = config(2, 600);
        let mut state = FailureState::default();
        assert!(state.observe(&cfg, &failure("alice", "a", 10)).is_none());
        assert!(state.observe(&cfg, &failure("bob", "b", 11)).is_none());
        let mut ok = failure("alice", "c", 12);
        ok.error_code = None;
        assert!(state.observe(&cfg, &ok).is_none());
    }

    #[test]
    fn pruning_keeps_late_arrival_reach() {
        let cfg = config(2, 600);
        let mut state = FailureState::default();
        state.observe(&cfg, &failure("alice", "a", 0));
        state.prune(&cfg, 600 + LATE_HISTORY_SECONDS);
        assert_eq!(state.by_principal.get("alice").map(|f| f.len()), Some(1));
        state.prune(&cfg, 601 + LATE_HISTORY_SECONDS);
        assert!(state.by_principal.is_empty());
    }
}
