//! Against S3 on moto: after a rollback, state a newer release wrote (in
//! the state object or in the base it names) is left exactly as it is and
//! the invocation fails; and an invocation whose deadline comes while
//! another holds the account's lease gives up in time, leaving that lease.

use std::time::{Duration, SystemTime};

use crate::harness::{s3_event, Fixture, ACCOUNT, STATE_BUCKET, TRAIL_BUCKET};
use crate::samples::BURST;

const PREFIX: &str = "rolewatch/state/";

/// Bytes closed with rolewatch's checksum line, as a release writes them.
fn sealed(text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    let digest = format!("{:016x}", twox_hash::XxHash3_64::oneshot_with_seed(0, &bytes));
    bytes.extend_from_slice(format!("{{\"principals\":0,\"xxh3\":\"{digest}\"}}\n").as_bytes());
    bytes
}

/// Every object under the state prefix with its bytes.
async fn everything(fx: &Fixture) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for key in fx.list(STATE_BUCKET, PREFIX).await {
        if !key.ends_with(".lease") {
            let bytes = fx.get(STATE_BUCKET, &key).await.map(|(b, _)| b).unwrap_or_default();
            out.push((key, bytes));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs moto_server and cargo-lambda: run `make test`, which installs and runs them"
)]
async fn after_a_rollback_a_newer_state_or_base_fails_the_invocation_and_is_left_untouched() {
    let fx = Fixture::new().await;
    fx.upload_samples(&[BURST]).await;
    let state_key = format!("{PREFIX}{ACCOUNT}.json");
    let digest = "0123456789abcdef";
    let cases = [
        ("format 4", vec![(state_key.clone(), sealed("{\"format\":4,\"watermark\":1}\n"))]),
        (
            "base format 4",
            vec![
                (state_key.clone(), sealed(&format!("{{\"base\":\"{digest}\",\"format\":3}}\n"))),
                (format!("{PREFIX}{ACCOUNT}.base-{digest}"), sealed("{\"rolewatch_state_base\":4}\n")),
            ],
        ),
    ];
    for (found, objects) in cases {
        for (key, bytes) in &objects {
            fx.put(STATE_BUCKET, key, bytes.clone()).await;
        }
        let before = everything(&fx).await;
        let err = fx.handler(PREFIX).handle(s3_event(&[BURST])).await.expect_err("the invocation fails, to be retried");
        let err = err.to_string();
        let location = format!("s3://{STATE_BUCKET}/{state_key}");
        assert!(err.contains(&location) && err.contains(found) && err.contains("newer rolewatch"), "{err}");
        assert_eq!(everything(&fx).await, before, "{found}: nothing overwritten, moved aside or deleted");
        assert!(fx.list(STATE_BUCKET, &format!("{PREFIX}quarantine/")).await.is_empty());
        assert!(fx.drain().await.is_empty(), "{found}: no state_reset, no detection from empty state");
        let lease = fx.get(STATE_BUCKET, &format!("{PREFIX}{ACCOUNT}.lease")).await.map(|(b, _)| b);
        assert_eq!(lease, Some(br#"{"expires":0}"#.to_vec()), "the lease is given back");
        for (key, _) in &objects {
            fx.s3.delete_object().bucket(STATE_BUCKET).key(key).send().await.expect("clean up");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs moto_server and cargo-lambda: run `make test`, which installs and runs them"
)]
async fn a_deadline_during_a_lease_wait_on_s3_gives_up_before_the_lease_wait_and_leaves_the_lease() {
    let fx = Fixture::new().await;
    fx.upload_samples(&[BURST]).await;
    // Another invocation holds the lease for its full term (LeaseWaitSeconds is 60).
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let lease_key = format!("{PREFIX}{ACCOUNT}.lease");
    let held = format!("{{\"expires\":{}}}", now + 300).into_bytes();
    fx.put(STATE_BUCKET, &lease_key, held.clone()).await;
    // Half a second of the invocation left after the reserve.
    let deadline = chrono::DateTime::<chrono::Utc>::from(
        SystemTime::now() + rolewatch_lambda::handler::DEADLINE_RESERVE + Duration::from_millis(500),
    );
    let err = fx.handler(PREFIX).handle_until(s3_event(&[BURST]), Some(deadline)).await.expect_err("not processed");
    let err = err.to_string();
    assert!(err.contains(&format!("s3://{TRAIL_BUCKET}/{BURST}")), "the object is reported failed: {err}");
    assert!(err.contains("deadline came while another invocation held"), "the deadline, not the 60 s wait: {err}");
    assert_eq!(fx.get(STATE_BUCKET, &lease_key).await.map(|(b, _)| b), Some(held), "the other's lease stays");
    assert!(fx.drain().await.is_empty());
    assert!(fx.state(PREFIX).await.is_none(), "nothing saved");
}
