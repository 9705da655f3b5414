//! Detector state kept between runs and invocations, and where it is kept.
//!
//! State is bounded: every detector prunes by event time and caps its
//! per-key history, and processed inputs are remembered for a few days of
//! event time (redelivery happens within hours; cooldowns and event-id
//! dedup cover what is older).
//!
//! Saved state (format 3) is lines of text:
//!
//! ```text
//! {"format":3,"watermark":…,"entries":{…},…}          everything small, one JSON document
//! "arn:aws:sts::…:assumed-role/…"\t<due>\t[…]         one line per known principal, sorted
//! #repeated_failures                                 then, each after a line naming it,
//! "arn:aws:iam::…:user/…"\t<due>\t[{"t":…,"id":…}]    failures per principal, sorted,
//! #long_session
//! "arn:aws:iam::…:role/…"\t<due>\t[[…],…]             long grants per role, sorted,
//! #accounts_read, #shared_events, #role_enumeration,   the organisation, calls counted, guesses,
//! #role_grants, #outside_pairs                         grants and outside pairs (detect/),
//! #inputs
//! "s3://…"\t<due>\t<time>                             and processed inputs, sorted
//! {"principals":N,"xxh3":"…"}                         count and checksum of all that precedes
//! ```
//!
//! Principals are most of an account's state and an invocation touches few of
//! them, so their lines are decoded only when used and copied as they are on
//! save (see `lazy_map`). Failure and grant histories and processed
//! inputs are kept the same way: an invocation decodes the few it touches.
//! Formats 1 (one JSON document) and 2 (histories and inputs in the first
//! line) are still read.
//!
//! Saved in two parts ([`State::to_parts`], for the Lambda), the principals
//! and sections live in a [`StateBase`] of the same shape, rewritten rarely
//! and shared by many saves; the state itself then carries `"base":"<its
//! checksum>"` and each section's entry count in its first line and, on its
//! lines, only what changed since that base (a `null` marks an entry
//! forgotten since). An invocation then reads and writes the changes, not
//! everything the account's state holds.

mod base;
mod format;
mod store;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use base::{SavedState, StateBase};
pub use format::STATE_FORMAT;
use format::{Section, SectionEntries};
pub use store::{FileStateStore, StateStore};

use crate::cloudtrail::EpochSeconds;
use crate::detect::long_session::LongSessionState;
use crate::detect::organization::OrganizationState;
use crate::detect::outside_organization::OutsideOrganizationState;
use crate::detect::repeated_failures::FailureState;
use crate::detect::role_enumeration::RoleEnumerationState;
use crate::detect::source_ip::SourceIpState;
use crate::storage::{HorizonPruning, LazyMap};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub format: u32,
    /// Newest event time seen; pruning is measured from it, never the clock.
    #[serde(default)]
    pub watermark: Option<EpochSeconds>,
    /// Processed inputs (file digests, `s3://bucket/key`) and the newest
    /// event time each held. Saved on lines of their own; read from here
    /// only in state of formats 1 and 2.
    #[serde(default, skip_serializing)]
    pub inputs: LazyMap<EpochSeconds>,
    #[serde(default)]
    pub inputs_pruning: HorizonPruning,
    /// Event times at which each dedup key raised an alert.
    #[serde(default)]
    pub raised: BTreeMap<String, Vec<EpochSeconds>>,
    #[serde(default)]
    pub repeated_failures: FailureState,
    #[serde(default)]
    pub unexpected_source_ip: SourceIpState,
    #[serde(default)]
    pub long_session: LongSessionState,
    /// The organisation's accounts read, the start, and calls counted.
    #[serde(default)]
    pub organization: OrganizationState,
    #[serde(default)]
    pub role_enumeration: RoleEnumerationState,
    #[serde(default)]
    pub outside_organization: OutsideOrganizationState,
    /// Checksum of the base a saved state's principals build on; read, then
    /// held by the principals themselves.
    #[serde(default, skip_serializing)]
    base: Option<String>,
    /// How many entries each section holds, base and changes together;
    /// read, then held by the maps themselves.
    #[serde(default, skip_serializing)]
    entries: Option<SectionEntries>,
}

impl Default for State {
    fn default() -> Self {
        State {
            format: STATE_FORMAT,
            watermark: None,
            inputs: LazyMap::default(),
            inputs_pruning: HorizonPruning::default(),
            raised: BTreeMap::new(),
            repeated_failures: FailureState::default(),
            unexpected_source_ip: SourceIpState::default(),
            long_session: LongSessionState::default(),
            organization: OrganizationState::default(),
            role_enumeration: RoleEnumerationState::default(),
            outside_organization: OutsideOrganizationState::default(),
            base: None,
            entries: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write state file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("state {origin} is not valid rolewatch state: {reason}")]
    Corrupt { origin: String, reason: String },
    /// Written by a newer rolewatch: a format, a section or a field this
    /// release does not know, under a checksum that holds. Never to be
    /// replaced or set aside: a rollback must not wipe what the newer
    /// release learned (see docs/state-format.md).
    #[error("state {origin} was written by a newer rolewatch ({found}); this release reads state formats 1 to {STATE_FORMAT} and leaves it as it is")]
    Newer { origin: String, found: String },
}

impl StateError {
    /// The state is intact but newer than this release: fail, never reset.
    pub fn is_newer(&self) -> bool {
        matches!(self, StateError::Newer { .. })
    }
}

impl State {
    /// The maps saved as named sections after the principals' lines, in
    /// saved order: a history per key that a detector keeps goes here (and
    /// in [`State::sections_mut`]), and the format needs nothing else to
    /// save it, load it, count it and refuse a section it does not know.
    pub(crate) fn sections(&self) -> [(&'static str, &dyn Section); 8] {
        [
            ("repeated_failures", &self.repeated_failures.by_principal),
            ("long_session", &self.long_session.by_role),
            ("accounts_read", &self.organization.accounts),
            ("shared_events", &self.organization.shared_events),
            ("role_enumeration", &self.role_enumeration.guesses),
            ("role_grants", &self.role_enumeration.grants),
            ("outside_pairs", &self.outside_organization.pairs),
            ("inputs", &self.inputs),
        ]
    }

    /// [`State::sections`], to load them.
    fn sections_mut(&mut self) -> [(&'static str, &mut dyn Section); 8] {
        [
            ("repeated_failures", &mut self.repeated_failures.by_principal),
            ("long_session", &mut self.long_session.by_role),
            ("accounts_read", &mut self.organization.accounts),
            ("shared_events", &mut self.organization.shared_events),
            ("role_enumeration", &mut self.role_enumeration.guesses),
            ("role_grants", &mut self.role_enumeration.grants),
            ("outside_pairs", &mut self.outside_organization.pairs),
            ("inputs", &mut self.inputs),
        ]
    }

    /// The inputs remembered as processed, in order.
    pub fn processed_inputs(&self) -> Vec<String> {
        let remembered = |(key, newest): (String, EpochSeconds)| self.inputs_pruning.keeps(&newest).then_some(key);
        self.inputs.entries().into_iter().filter_map(remembered).collect()
    }
}
