//! The capability traits of [`crate::ports`] on the AWS SDK: S3 objects,
//! S3 state with conditional writes, SNS alerts.

mod s3_source;
mod s3_state;
mod sns_sink;

pub use s3_source::S3Source;
pub use s3_state::{S3StateStore, DEFAULT_BASE_CACHE_BYTES, DEFAULT_LEASE_WAIT, DEFAULT_STATE_PREFIX};
pub use sns_sink::{sns_entries, SnsSink};
