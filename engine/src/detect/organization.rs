//! Inside and outside the organisation, and one call counted once.
//!
//! An account is *inside* when `[organization] account_ids` names it or
//! rolewatch has read a record logged in it (`recipientAccountId`): an
//! organisation trail delivers every member's logs. The *start* is the
//! event time of the first record ever read; with `account_ids` empty the
//! account-based detectors stay quiet for `discovery_seconds` from it.
//!
//! CloudTrail writes a successful cross-account call into both accounts'
//! logs under one `sharedEventID`. The role owner's copy (`AWSAccount`)
//! is skipped when the caller's account's logs are read (the caller's copy
//! names the caller and its session); any other copy is used once, and a
//! later copy of a `sharedEventID` used within [`SHARED_EVENT_SECONDS`] is
//! skipped, whichever file or order it comes in.

use serde::{Deserialize, Serialize};

use super::{secs, within, LATE_HISTORY_SECONDS, LONG_MEMORY_SECONDS};
use crate::cloudtrail::{account_of_arn, AssumeRoleEvent, EpochSeconds};
use crate::config::OrganizationConfig;
use crate::storage::{Expiring, HorizonPruning, LazyMap, SWEEP_INTERVAL_SECONDS};

/// A later copy of a call is skipped when its `sharedEventID` was used
/// this close in event time (both copies carry the same event time).
pub const SHARED_EVENT_SECONDS: i64 = 7 * 86_400;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationState {
    /// Event time of the first record ever read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<EpochSeconds>,
    /// Accounts whose logs were read, with the newest event time read in
    /// each (to a day). Saved on lines of their own (see [`crate::state`]).
    #[serde(default, skip_serializing)]
    pub accounts: LazyMap<EpochSeconds>,
    #[serde(default)]
    pub accounts_pruning: HorizonPruning,
    /// `sharedEventID`s of cross-account calls used, with their event
    /// time and which copy was used. Saved on lines of their own.
    #[serde(default, skip_serializing)]
    pub shared_events: LazyMap<UsedCall>,
    #[serde(default)]
    pub shared_pruning: HorizonPruning,
}

/// A cross-account call counted: `[event time, whether the role owner's copy was used]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsedCall(pub EpochSeconds, pub bool);

impl Expiring for UsedCall {
    fn keep_from(&mut self, horizon: EpochSeconds) -> bool {
        self.0 >= horizon
    }

    fn due(&self) -> EpochSeconds {
        self.0.saturating_add(1)
    }
}

/// Which detectors a copy of a call goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Every detector: the first copy used.
    Everywhere,
    /// None: the call was counted from another copy.
    Nowhere,
    /// The caller's copy of a call counted from the role owner's copy
    /// (read first, before the caller's account's logs): only what the
    /// owner's copy cannot show, the caller's session, is judged on it.
    CallerSessionOnly,
}

/// What the detectors ask about the organisation.
pub struct Organization<'a> {
    config: &'a OrganizationConfig,
    state: &'a OrganizationState,
}

impl Organization<'_> {
    /// Whether `account` belongs to the organisation.
    pub fn is_inside(&self, account: &str) -> bool {
        self.config.account_ids.iter().any(|a| a == account)
            || self.state.accounts_pruning.contains(&self.state.accounts, account)
    }

    /// Still learning which accounts are the organisation's at `t`: quiet
    /// for the account-based detectors.
    pub fn discovering(&self, t: EpochSeconds) -> bool {
        self.config.account_ids.is_empty()
            && self.state.start.is_none_or(|start| t < start.saturating_add(secs(self.config.discovery_seconds)))
    }

    /// Whether `t` is within `span` seconds of the start (or before it).
    pub fn within_start(&self, t: EpochSeconds, span: u64) -> bool {
        self.state.start.is_none_or(|start| t < start.saturating_add(secs(span)))
    }
}

impl OrganizationState {
    pub fn view<'a>(&'a self, config: &'a OrganizationConfig) -> Organization<'a> {
        Organization { config, state: self }
    }

    /// Notes the accounts a batch of records was logged in, and the start,
    /// before any of them is judged: in one file holding both copies of a
    /// call, the caller's copy is then used whatever the order.
    pub fn note_read(&mut self, events: &[AssumeRoleEvent]) {
        if self.start.is_none() {
            self.start = events.iter().map(|e| e.event_time).min();
        }
        for event in events {
            if let Some(account) = event.recipient_account_id.as_deref() {
                // Rewritten at most daily: a busy account's line stays unchanged between saves.
                self.note_accounts(&[account], event.event_time);
            }
        }
    }

    /// Notes accounts whose logs are read by another engine (the Lambda
    /// keeps one state per account), as of `at`.
    pub fn note_accounts(&mut self, accounts: &[&str], at: EpochSeconds) {
        for account in accounts {
            let known = self.accounts.get(account).map(|seen| *seen);
            if known.is_none_or(|seen| at - seen >= SWEEP_INTERVAL_SECONDS || !self.accounts_pruning.keeps(&seen)) {
                let seen = self.accounts_pruning.entry(&mut self.accounts, account);
                *seen = (*seen).max(at);
            }
        }
    }

    /// Which detectors count this copy of a call: none for a role owner's
    /// copy whose caller's logs are read, nor for a copy of a call already
    /// counted, except that a caller's copy after the owner's still shows
    /// its session to the detectors that judge only that. Records the call
    /// when it is counted.
    pub fn counts(&mut self, event: &AssumeRoleEvent) -> Counted {
        let owners_copy = event.identity_type == "AWSAccount";
        if owners_copy {
            if let Some(caller) = event.caller_account.as_deref() {
                let elsewhere = event.recipient_account_id.as_deref() != Some(caller);
                if elsewhere && self.accounts_pruning.contains(&self.accounts, caller) {
                    return Counted::Nowhere;
                }
            }
        }
        let Some(shared) = event.shared_event_id.as_deref() else {
            return Counted::Everywhere;
        };
        // Only calls that cross accounts have a twin; same-account calls
        // (most of them AWS services) would fill the state for nothing.
        let role_account = event.role_arn.as_deref().and_then(account_of_arn);
        let crosses =
            owners_copy || matches!((event.caller_account.as_deref(), role_account), (Some(c), Some(r)) if c != r);
        if !crosses {
            return Counted::Everywhere;
        }
        let used = self.shared_events.get(shared).map(|used| *used);
        if let Some(used) = used
            .filter(|used| self.shared_pruning.keeps(used) && within(used.0, event.event_time, SHARED_EVENT_SECONDS))
        {
            if used.1 && !owners_copy {
                // Marked, so a third copy (a replay) is not judged again.
                self.shared_events.insert(shared, UsedCall(used.0, false));
                return Counted::CallerSessionOnly;
            }
            return Counted::Nowhere;
        }
        self.shared_events.insert(shared, UsedCall(event.event_time, owners_copy));
        Counted::Everywhere
    }

    pub fn prune(&mut self, watermark: EpochSeconds) {
        self.accounts_pruning.prune(&mut self.accounts, watermark - LONG_MEMORY_SECONDS);
        self.shared_pruning.prune(&mut self.shared_events, watermark - SHARED_EVENT_SECONDS - LATE_HISTORY_SECONDS);
    }
}
