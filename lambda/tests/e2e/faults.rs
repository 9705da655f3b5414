//! Faults: SNS unreachable, a corrupt object among good ones, a corrupt
//! state object.

use serde_json::json;

use rolewatch_lambda::aws::{S3Source, S3StateStore, SnsSink};
use rolewatch_lambda::Handler;

use crate::harness::{
    free_port, log_key, s3_event, sample_event, sdk_config, Fixture, ACCOUNT, STATE_BUCKET, TRAIL_BUCKET,
};
use crate::oracle::{assert_delivered, expected_alerts};
use crate::samples::{BOB_LONG, BURST, QUIET};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs moto_server and cargo-lambda: run `make test`, which installs and runs them"
)]
async fn sns_unreachable_fails_the_invocation_without_advancing_state_and_the_retry_delivers() {
    let fx = Fixture::new().await;
    let prefix = "rolewatch/state/";
    fx.upload_samples(&[QUIET, BURST]).await;
    // An earlier, quiet delivery: the account has state already.
    fx.handler(prefix).handle(s3_event(&[QUIET])).await.expect("quiet object");
    let state_key = format!("{prefix}{ACCOUNT}.json");
    let before = fx.get(STATE_BUCKET, &state_key).await.expect("state exists");

    // SNS points at a port nobody listens on.
    let dead_sns = aws_sdk_sns::Client::new(&sdk_config(&format!("http://127.0.0.1:{}", free_port())).await);
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&fx.sdk).force_path_style(true).build());
    let broken = Handler::new(
        S3Source::new(s3.clone()),
        S3StateStore::new(s3, STATE_BUCKET, prefix),
        SnsSink::new(dead_sns, &fx.topic_arn),
        fx.settings(prefix).config,
    );
    let event = sample_event("s3-notification.json");
    let err = broken.handle(event.clone()).await.expect_err("publishing failed, so must the invocation");
    let message = err.to_string();
    assert!(message.contains(&format!("s3://{TRAIL_BUCKET}/{BURST}")), "{message}");
    assert!(message.contains("alerts not published"), "{message}");
    let after = fx.get(STATE_BUCKET, &state_key).await.expect("state still exists");
    assert_eq!(after, before, "state must not advance past undelivered alerts");
    assert!(fx.drain().await.is_empty());

    // Lambda retries the same event with SNS back: the alert is delivered.
    let response = fx.handler(prefix).handle(event).await.expect("retry succeeds");
    assert_eq!(response["alerts"], 1, "{response}");
    let delivered = fx.drain().await;
    assert_delivered(&delivered, &expected_alerts(&[BURST]));
    assert_eq!(delivered[0].detector(), "role_enumeration");
    let state = fx.state(prefix).await.expect("state");
    assert!(state.inputs.contains_key(&format!("s3://{TRAIL_BUCKET}/{BURST}")));
}

/// A `.json.gz` under a real CloudTrail key whose gzip stream breaks off.
fn corrupt_object() -> Vec<u8> {
    let good = crate::harness::sample_object(BURST);
    let mut bytes = good[..good.len() / 2].to_vec();
    bytes.extend_from_slice(b"\x00garbage where the rest of the deflate stream should be");
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs moto_server and cargo-lambda: run `make test`, which installs and runs them"
)]
async fn a_corrupt_object_fails_by_name_and_the_others_are_still_processed() {
    let fx = Fixture::new().await;
    let prefix = "rolewatch/state/";
    fx.upload_samples(&[BOB_LONG, BURST]).await;
    let bad = log_key("05", "20261005T0955Z_CorruptObject0001");
    fx.put(TRAIL_BUCKET, &bad, corrupt_object()).await;
    let bad_uri = format!("s3://{TRAIL_BUCKET}/{bad}");

    // CloudTrail's SNS notification naming all three.
    let message = json!({"s3Bucket": TRAIL_BUCKET, "s3ObjectKey": [BOB_LONG, bad, BURST]});
    let event = json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0",
        "Sns": {"Type": "Notification", "MessageId": "m1", "Message": message.to_string()}}]});
    let err = fx.handler(prefix).handle(event).await.expect_err("a corrupt object fails the invocation");
    let text = err.to_string();
    assert!(text.contains(&bad_uri), "the error names bucket and key: {text}");
    assert!(text.contains("gzip") || text.contains("truncated"), "and the reason: {text}");
    assert!(!text.contains(BOB_LONG) && !text.contains(BURST), "only the bad object failed: {text}");

    let delivered = fx.drain().await;
    let mut detectors: Vec<&str> = delivered.iter().map(|d| d.detector()).collect();
    detectors.sort_unstable();
    assert_eq!(detectors, ["long_session", "role_enumeration", "unreadable_input"]);
    let unreadable = delivered.iter().find(|d| d.detector() == "unreadable_input").expect("unreadable alert");
    assert_eq!(unreadable.alert["details"]["input"], bad_uri);
    assert_eq!(unreadable.alert["account_id"], ACCOUNT);
    assert_eq!(unreadable.attributes.get("severity").map(|(_, v)| v.as_str()), Some("low"));
    let good: Vec<_> = delivered.iter().filter(|d| d.detector() != "unreadable_input").cloned().collect();
    assert_delivered(&good, &expected_alerts(&[BOB_LONG, BURST]));

    let state = fx.state(prefix).await.expect("state saved for the good objects");
    assert!(state.inputs.contains_key(&format!("s3://{TRAIL_BUCKET}/{BOB_LONG}")));
    assert!(state.inputs.contains_key(&format!("s3://{TRAIL_BUCKET}/{BURST}")));
    assert!(!state.processed_inputs().contains(&bad_uri), "a broken object is not marked processed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs moto_server and cargo-lambda: run `make test`, which installs and runs them"
)]
async fn in_an_sqs_batch_only_the_message_with_the_corrupt_object_fails() {
    let fx = Fixture::new().await;
    fx.upload_samples(&[BOB_LONG, BURST]).await;
    let bad = log_key("05", "20261005T0955Z_CorruptObject0002");
    fx.put(TRAIL_BUCKET, &bad, corrupt_object()).await;
    let message =
        |id: &str, key: &str| json!({"messageId": id, "eventSource": "aws:sqs", "body": s3_event(&[key]).to_string()});
    let event = json!({"Records": [message("good-1", BOB_LONG), message("bad", &bad), message("good-2", BURST),
        {"messageId": "garbled", "eventSource": "aws:sqs", "body": "{\"not\": \"a delivery\"}"}]});
    let response = fx.handler("rolewatch/state/").handle(event).await.expect("SQS batches answer, not fail");
    let mut failed: Vec<&str> = response["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("no batchItemFailures in {response}"))
        .iter()
        .filter_map(|f| f["itemIdentifier"].as_str())
        .collect();
    failed.sort_unstable();
    assert_eq!(failed, ["bad", "garbled"], "only the failed messages are retried: {response}");
    let mut detectors: Vec<String> = fx.drain().await.iter().map(|d| d.detector().to_owned()).collect();
    detectors.sort_unstable();
    assert_eq!(detectors, ["long_session", "role_enumeration", "unreadable_input"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs moto_server and cargo-lambda: run `make test`, which installs and runs them"
)]
async fn a_corrupt_state_object_is_quarantined_reported_and_replaced() {
    let fx = Fixture::new().await;
    let prefix = "rolewatch/state/";
    fx.upload_samples(&[BURST]).await;
    let state_key = format!("{prefix}{ACCOUNT}.json");
    let garbage = b"{\"format\": 1, \"inputs\": [truncated".to_vec();
    fx.put(STATE_BUCKET, &state_key, garbage.clone()).await;

    let response = fx.handler(prefix).handle(sample_event("s3-notification.json")).await.expect("no crash loop");
    assert_eq!(response["processed"], 1, "{response}");

    let delivered = fx.drain().await;
    let mut detectors: Vec<&str> = delivered.iter().map(|d| d.detector()).collect();
    detectors.sort_unstable();
    assert_eq!(detectors, ["role_enumeration", "state_reset"]);
    let reset = delivered.iter().find(|d| d.detector() == "state_reset").expect("state_reset alert");
    assert_eq!(reset.alert["account_id"], ACCOUNT);
    assert_eq!(reset.attributes.get("severity").map(|(_, v)| v.as_str()), Some("medium"));

    let quarantined = fx.list(STATE_BUCKET, &format!("{prefix}quarantine/")).await;
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert!(quarantined[0].starts_with(&format!("{prefix}quarantine/{ACCOUNT}-")), "{quarantined:?}");
    assert_eq!(reset.alert["details"]["quarantined_to"], format!("s3://{STATE_BUCKET}/{}", quarantined[0]));
    let (copy, _) = fx.get(STATE_BUCKET, &quarantined[0]).await.expect("quarantined copy");
    assert_eq!(copy, garbage, "the corrupt bytes are kept as they were");

    let state = fx.state(prefix).await.expect("a valid state replaced the corrupt one");
    assert!(state.inputs.contains_key(&format!("s3://{TRAIL_BUCKET}/{BURST}")));
}
