//! Every sample event in events/ against moto: the alerts the engine raises
//! for the objects it names arrive in the subscribed queue, once.

use serde_json::json;

use crate::harness::{sample_event, Fixture, ACCOUNT, TRAIL_BUCKET};
use crate::oracle::{assert_delivered, expected_run};

const DIR: &str = "AWSLogs/o-exampleorg/111122223333/CloudTrail/us-east-1";
pub const BURST: &str = "AWSLogs/o-exampleorg/111122223333/CloudTrail/us-east-1/2026/10/05/111122223333_CloudTrail_us-east-1_20261005T1005Z_3rs7ij0bK8c6H5ql.json.gz";
pub const BOB_LONG: &str = "AWSLogs/o-exampleorg/111122223333/CloudTrail/us-east-1/2026/10/05/111122223333_CloudTrail_us-east-1_20261005T0950Z_PGj316IeklmRvqEm.json.gz";
pub const BATCH_FIRST: &str = "AWSLogs/o-exampleorg/111122223333/CloudTrail/us-east-1/2026/09/24/111122223333_CloudTrail_us-east-1_20260924T0105Z_rUhEd3X4S8guQkIN.json.gz";
pub const QUIET: &str = "AWSLogs/o-exampleorg/111122223333/CloudTrail/us-east-1/2026/10/05/111122223333_CloudTrail_us-east-1_20261005T0945Z_TR5mS7B0QrJBZK0r.json.gz";
pub const QUIET_1000: &str = "AWSLogs/o-exampleorg/111122223333/CloudTrail/us-east-1/2026/10/05/111122223333_CloudTrail_us-east-1_20261005T1000Z_YwLhJu2agALxBYqV.json.gz";

/// (detector, principal) of what arrived, sorted.
fn detections(delivered: &[crate::harness::Delivered]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = delivered
        .iter()
        .map(|d| (d.detector().to_owned(), d.alert["principal"].as_str().unwrap_or_default().to_owned()))
        .collect();
    out.sort();
    out
}

fn user(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:user/{name}")
}

struct Case {
    event: &'static str,
    /// Objects the event names (uploaded first).
    objects: &'static [&'static str],
    /// What a person would see paged.
    detections: Vec<(&'static str, String)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs moto_server and cargo-lambda: run `make test`, which installs and runs them"
)]
async fn every_sample_event_delivers_the_engines_alerts() {
    let fx = Fixture::new().await;
    fx.upload_samples(&[BURST, BOB_LONG, BATCH_FIRST, QUIET, QUIET_1000]).await;
    assert!(BURST.starts_with(DIR));

    let cases = [
        Case {
            event: "s3-notification.json",
            objects: &[BURST],
            detections: vec![("role_enumeration", user("legacy-build"))],
        },
        Case {
            event: "eventbridge-object-created.json",
            objects: &[BOB_LONG],
            detections: vec![("long_session", user("bob"))],
        },
        Case {
            event: "sqs-s3-notification.json",
            objects: &[BATCH_FIRST, QUIET],
            detections: vec![("long_session", user("batch-scheduler"))],
        },
        Case {
            event: "sns-cloudtrail-notification.json",
            objects: &[QUIET, BOB_LONG, QUIET_1000, BURST],
            detections: vec![("long_session", user("bob")), ("role_enumeration", user("legacy-build"))],
        },
        Case { event: "s3-test-event.json", objects: &[], detections: vec![] },
    ];

    for case in cases {
        // A state prefix per case: each starts from empty state.
        let prefix = format!("samples/{}/", case.event.trim_end_matches(".json"));
        let handler = fx.handler(&prefix);
        let event = sample_event(case.event);
        let response = handler.handle(event.clone()).await.unwrap_or_else(|e| panic!("{}: {e}", case.event));

        let delivered = fx.drain().await;
        let want: Vec<(String, String)> = case.detections.iter().map(|(d, p)| ((*d).to_owned(), p.clone())).collect();
        assert_eq!(detections(&delivered), want, "{}: what was paged", case.event);
        let (alerts, want_inputs) = expected_run(case.objects);
        assert_delivered(&delivered, &alerts);

        let state = fx.state(&prefix).await;
        let inputs: Vec<String> = state.map(|s| s.processed_inputs()).unwrap_or_default();
        assert_eq!(inputs, want_inputs, "{}: inputs recorded in state", case.event);
        assert!(
            case.objects
                .iter()
                .all(|k| want_inputs.contains(&format!("s3://{TRAIL_BUCKET}/{k}")) || k.contains("/2026/09/")),
            "{}: every recent object is recorded",
            case.event
        );

        if case.event.starts_with("sqs") {
            assert_eq!(response, json!({"batchItemFailures": []}), "{}", case.event);
        } else {
            assert_eq!(response["objects"], case.objects.len(), "{}: {response}", case.event);
            assert_eq!(response["processed"], case.objects.len(), "{}: {response}", case.event);
            assert_eq!(response["alerts"], case.detections.len(), "{}: {response}", case.event);
        }
        if case.event == "s3-test-event.json" {
            assert_eq!(response["test_events"], 1, "{response}");
        }

        // Re-delivery (S3 notifications are at least once) raises nothing.
        let again = handler.handle(event).await.unwrap_or_else(|e| panic!("{} again: {e}", case.event));
        assert!(fx.drain().await.is_empty(), "{}: re-delivery raised alerts again", case.event);
        if !case.event.starts_with("sqs") {
            assert_eq!(again["already_processed"], case.objects.len(), "{}: {again}", case.event);
            assert_eq!(again["processed"], 0, "{}: {again}", case.event);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs moto_server and cargo-lambda: run `make test`, which installs and runs them"
)]
async fn digests_and_non_logs_are_acknowledged_without_reading() {
    let fx = Fixture::new().await;
    // Neither object exists: reading them would fail the invocation.
    let digest = "AWSLogs/o-exampleorg/111122223333/CloudTrail-Digest/us-east-1/2026/10/05/111122223333_CloudTrail-Digest_us-east-1_org-trail_us-east-1_20261005T210000Z.json.gz";
    let other = "AWSLogs/o-exampleorg/111122223333/CloudTrail/us-east-1/2026/10/05/notes.txt";
    let response = fx.handler("skip/").handle(crate::harness::s3_event(&[digest, other])).await.expect("skips succeed");
    assert_eq!(response["skipped_digests"], 1, "{response}");
    assert_eq!(response["skipped_not_logs"], 1, "{response}");
    assert_eq!(response["objects"], 0, "{response}");
    assert!(fx.drain().await.is_empty());
    assert!(fx.list(crate::harness::STATE_BUCKET, "skip/").await.is_empty(), "no state written");
}
