//! rolewatch as an AWS Lambda: CloudTrail log objects from S3 in, alerts to
//! SNS, detector state in S3.
//!
//! ```text
//! trigger (S3 notification | EventBridge Object Created | SQS | CloudTrail SNS)
//!   -> triggers     object refs; digests, non-logs and s3:TestEvent skipped
//!   -> ObjectSource streamed GetObject -> rolewatch::ingest, 4,096 role assumptions at a time
//!   -> AccountStateStore   per account: a state object (conditional writes) naming a shared base
//!   -> Engine       rolewatch::engine, pure
//!   -> AlertSink    SNS PublishBatch; state saved only after delivery
//! ```
//!
//! [`handler::Handler`] holds the flow and is generic over the small
//! capability traits in [`ports`]; [`aws`] implements them on the AWS SDK,
//! and `main.rs` only wires them together once per cold start.

mod account;
pub mod aws;
pub mod handler;
pub mod metrics;
mod object_stream;
pub mod ports;
pub mod report;
pub mod settings;
pub mod triggers;

pub use handler::Handler;
pub use report::{InvocationError, InvocationSummary, SuppressedByRule};
pub use settings::Settings;

/// The handler as deployed: S3 objects, S3 state, SNS alerts.
pub type AwsHandler = Handler<aws::S3Source, aws::S3StateStore, aws::SnsSink>;

/// Builds the deployed handler from settings and an SDK configuration
/// (which honours `AWS_ENDPOINT_URL` and the other standard variables).
pub fn aws_handler(settings: &Settings, sdk_config: &aws_config::SdkConfig) -> AwsHandler {
    let s3_config = aws_sdk_s3::config::Builder::from(sdk_config).force_path_style(settings.force_path_style).build();
    let s3 = aws_sdk_s3::Client::from_conf(s3_config);
    let sns = aws_sdk_sns::Client::new(sdk_config);
    Handler::new(
        aws::S3Source::new(s3.clone()).with_expected_owner(settings.expected_bucket_owner.clone()),
        aws::S3StateStore::new(s3, &settings.state_bucket, &settings.state_prefix)
            .with_base_cache_bytes(settings.base_cache_bytes)
            .with_lease_wait(std::time::Duration::from_secs(settings.lease_wait_seconds)),
        aws::SnsSink::new(sns, &settings.topic_arn).with_chat_topic(settings.chat_topic_arn.clone()),
        settings.config.clone(),
    )
}

/// JSON logs, one object a line, fields at the top level so CloudWatch Logs
/// Insights can filter on them (`filter account = "111122223333"`).
/// `RUST_LOG` wins; else Lambda's `AWS_LAMBDA_LOG_LEVEL`; else `info`.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let level =
        std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_ascii_lowercase()).unwrap_or_else(|_| "info".to_owned());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{level},aws_config=warn,aws_smithy_runtime=warn,aws_smithy_runtime_api=warn,hyper=warn,rustls=warn"
        ))
    });
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_env_filter(filter)
        .init();
}
