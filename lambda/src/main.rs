//! `rolewatch-lambda`: the Lambda entry point. Reads and validates its
//! environment once per cold start, builds the AWS clients once, and hands
//! every invocation to [`rolewatch_lambda::Handler`].

use aws_config::BehaviorVersion;
use lambda_runtime::{service_fn, LambdaEvent};
use rolewatch_lambda::{aws_handler, init_logging, Settings};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let settings = match Settings::check_variable_names(std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()))
        .and_then(|()| Settings::from_env_lookup(|name| std::env::var(name).ok()))
    {
        Ok(settings) => settings,
        Err(err) => {
            tracing::error!(error = %err, "invalid configuration; the function cannot start");
            return Err(err.to_string().into());
        }
    };
    let sdk_config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let handler = aws_handler(&settings, &sdk_config);
    tracing::info!(
        topic = %settings.topic_arn,
        state_bucket = %settings.state_bucket,
        state_prefix = %settings.state_prefix,
        "rolewatch-lambda ready"
    );
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // Milliseconds since the epoch; 0 when the runtime sent none.
        let deadline =
            (event.context.deadline > 0).then(|| chrono::DateTime::<chrono::Utc>::from(event.context.deadline()));
        handler.handle_until(event.payload, deadline).await
    }))
    .await
}
