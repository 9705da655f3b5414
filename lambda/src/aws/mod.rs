//! The capability traits of [`crate::ports`] on the AWS SDK: S3 objects,
//! S3 state with conditional writes, SNS alerts.

mod s3_source;
mod s3_state;
mod sns_sink;

pub use s3_source::S3Source;
pub use s3_state::{S3StateRepo, DEFAULT_BASE_CACHE_BYTES, DEFAULT_STATE_PREFIX};
pub use sns_sink::{sns_entries, SnsSink};

/// An SDK error with its whole cause chain (the SDK's own `Display` says only
/// "service error").
pub(crate) fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    aws_sdk_s3::error::DisplayErrorContext(err).to_string()
}
