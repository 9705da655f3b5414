//! Several invocations for the same account at once: the conditional writes
//! make them take turns, so no state update is lost and a burst split across
//! them raises exactly one alert.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rolewatch::config::Config;
use rolewatch_lambda::aws::{S3Source, SnsSink};
use rolewatch_lambda::ports::AccountStateStore;
use rolewatch_lambda::Handler;

use crate::contended::ContendedState;
use crate::harness::{
    cloudtrail_gz, denied_assume_role, granted_assume_role, log_key, other_call, s3_event, Fixture, ACCOUNT,
    STATE_BUCKET, TRAIL_BUCKET,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs moto_server and cargo-lambda: run `make test`, which installs and runs them"
)]
async fn concurrent_invocations_lose_no_update_and_raise_a_split_burst_once() {
    let fx = Fixture::new().await;
    let prefix = "rolewatch/state/";
    let conflicts = Arc::new(AtomicUsize::new(0));
    let handler =
        Arc::new(fx.handler_with(prefix, |repo| {
            ContendedState::new(repo, Duration::from_millis(300), Arc::clone(&conflicts))
        }));
    let threshold = Config::default().repeated_failures.threshold as usize;

    // A burst of exactly `threshold` AccessDenied calls within two minutes,
    // one per object, plus objects of other traffic for the same account.
    let mut keys = Vec::new();
    let mut burst_ids = BTreeSet::new();
    for i in 0..threshold {
        let id = format!("burst-{i}");
        let time = format!("2026-10-05T10:{:02}:{:02}Z", 1 + i / 3, (i % 3) * 20);
        let key = log_key("05", &format!("20261005T10{:02}Z_burst{i:011}", 5 + i));
        fx.put(
            TRAIL_BUCKET,
            &key,
            cloudtrail_gz(&[other_call(&format!("o-{i}"), &time), denied_assume_role(&id, &time, "legacy-build")]),
        )
        .await;
        burst_ids.insert(id);
        keys.push(key);
    }
    for i in 0..3 {
        let key = log_key("05", &format!("20261005T11{:02}Z_other{i:011}", i * 5));
        let time = format!("2026-10-05T11:{:02}:00Z", i * 5);
        let records = [other_call(&format!("x-{i}"), &time), granted_assume_role(&format!("g-{i}"), &time, "deployer")];
        fx.put(TRAIL_BUCKET, &key, cloudtrail_gz(&records)).await;
        keys.push(key);
    }

    invoke_each_at_once(&handler, &keys).await;
    assert!(conflicts.load(Ordering::SeqCst) > 0, "the invocations never raced; the test proves nothing");

    let delivered = fx.drain().await;
    assert_eq!(delivered.len(), 1, "exactly one alert for the burst: {delivered:?}");
    let alert = &delivered[0].alert;
    assert_eq!(alert["detector"], "repeated_failures");
    assert_eq!(alert["principal"], format!("arn:aws:iam::{ACCOUNT}:user/legacy-build"));
    assert_eq!(alert["event_count"], threshold);
    let ids: BTreeSet<String> =
        alert["event_ids"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned)).collect();
    assert_eq!(ids, burst_ids, "the alert carries every event of the burst");

    // No update lost: every invocation's object is recorded.
    let state = fx.state(prefix).await.expect("state saved");
    let recorded: BTreeSet<String> = state.processed_inputs().into_iter().collect();
    let want: BTreeSet<String> = keys.iter().map(|k| format!("s3://{TRAIL_BUCKET}/{k}")).collect();
    assert_eq!(recorded, want);

    // And all of them re-delivered together raise nothing.
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let again = handler.handle(s3_event(&refs)).await.expect("re-delivery");
    assert_eq!(again["already_processed"], keys.len(), "{again}");
    assert!(fx.drain().await.is_empty());
}

/// The lease: invocations for one account take turns, so a burst larger than
/// the threshold, split across invocations that all start at once, still
/// pages once. Without it two invocations can each complete the burst from
/// the same starting state and both publish before one loses the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs moto_server and cargo-lambda: run `make test`, which installs and runs them"
)]
async fn with_the_lease_a_burst_larger_than_the_threshold_split_across_invocations_pages_once() {
    let fx = Fixture::new().await;
    let prefix = "rolewatch/state/";
    let handler = Arc::new(
        fx.handler_with(prefix, |repo| ContendedState::new(repo, Duration::ZERO, Arc::default()).with_lease()),
    );
    let threshold = Config::default().repeated_failures.threshold as usize;

    // Twice the threshold of failures within two minutes, two per object.
    let mut keys = Vec::new();
    for i in 0..threshold {
        let time = |n: usize| format!("2026-10-05T10:{:02}:{:02}Z", 1 + n / 6, (n % 6) * 10);
        let records = [
            denied_assume_role(&format!("burst-{i}-a"), &time(2 * i), "legacy-build"),
            denied_assume_role(&format!("burst-{i}-b"), &time(2 * i + 1), "legacy-build"),
        ];
        let key = log_key("05", &format!("20261005T10{:02}Z_lease{i:011}", 5 + i));
        fx.put(TRAIL_BUCKET, &key, cloudtrail_gz(&records)).await;
        keys.push(key);
    }
    invoke_each_at_once(&handler, &keys).await;
    let delivered = fx.drain().await;
    assert_eq!(delivered.len(), 1, "one page for the burst: {delivered:?}");
    assert_eq!(delivered[0].alert["detector"], "repeated_failures");
    let state = fx.state(prefix).await.expect("state saved");
    assert_eq!(state.processed_inputs().len(), keys.len(), "no update lost");
    // The lease is left free for the next invocation.
    let lease = fx.s3.get_object().bucket(STATE_BUCKET).key(format!("{prefix}{ACCOUNT}.lease")).send().await;
    let body = match lease {
        Ok(out) => out.body.collect().await.map(|b| b.to_vec()).unwrap_or_default(),
        Err(e) => panic!("lease object missing: {e}"),
    };
    assert_eq!(body, br#"{"expires":0}"#.to_vec());
}

/// Every object in its own invocation, all started at once; each must succeed.
async fn invoke_each_at_once<R: AccountStateStore + 'static>(
    handler: &Arc<Handler<S3Source, R, SnsSink>>,
    keys: &[String],
) {
    let tasks: Vec<_> = keys
        .iter()
        .map(|key| {
            let handler = Arc::clone(handler);
            let event = s3_event(&[key]);
            tokio::spawn(async move { handler.handle(event).await })
        })
        .collect();
    for (task, key) in tasks.into_iter().zip(keys) {
        let result = task.await.expect("invocation task");
        assert!(result.is_ok(), "{key}: {:?}", result.err());
    }
}
