//! How stored maps forget: by event time, behind a horizon, never by the
//! clock. Detectors say what their entries hold ([`Timed`], [`Expiring`]);
//! [`HorizonPruning`] decides when a [`LazyMap`] is swept.

use serde::{Deserialize, Serialize};

use super::{EpochSeconds, LazyMap};

/// How often, in event time, stored entries nobody used are decoded to
/// find what to forget. In between, only the entries in use are touched,
/// so an invocation does not pay for everything the account's state holds.
pub const SWEEP_INTERVAL_SECONDS: i64 = 86_400;

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
/// the state format): an entry is pruned when decoded, decoded ones after
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
