//! Generic storage below the detectors: sorted maps kept as encoded lines
//! until used ([`LazyMap`]), forgetting by event time ([`HorizonPruning`]),
//! and the shared buffers they live in.
//!
//! This layer names no detector and no state format: detectors build their
//! state from it, and `crate::state` (above the detectors) saves it. Nothing
//! here may import `crate::detect` or `crate::state`; `make test` checks it.

mod base_buffer;
mod expiring;
mod lazy_map;

pub use base_buffer::{BaseSpare, SharedBytes};
pub use expiring::{Expiring, HorizonPruning, Timed, SWEEP_INTERVAL_SECONDS};
pub use lazy_map::LazyMap;
pub(crate) use lazy_map::Lines;

/// Seconds since the Unix epoch, in event time.
pub type EpochSeconds = i64;
