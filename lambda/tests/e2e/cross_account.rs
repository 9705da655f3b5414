//! One call logged in two accounts pages once, though the Lambda keeps each
//! account's state apart: the accounts with state are listed, so the role
//! owner's copy of a call from one of them is known to be redundant.

use rolewatch::sample;
use serde_json::{json, Value};

use crate::harness::{cloudtrail_gz, s3_event, Fixture, TRAIL_BUCKET};
use crate::synth::account_key;

const CALLER: &str = "111122223333";
const OWNER: &str = "444455556666";

/// An engineer of `CALLER` takes a 12-hour session of `OWNER`'s admin role
/// (a long_session finding on its own): the caller's copy and the role
/// owner's copy, as CloudTrail writes them into the two accounts' logs.
fn both_copies() -> (Value, Value) {
    let mut caller = sample::granted_assume_role(CALLER, "engineer", "caller-copy-1", "2026-10-05T10:00:00Z");
    caller["requestParameters"] = json!({"roleArn": format!("arn:aws:iam::{OWNER}:role/admin"),
        "roleSessionName": "engineer", "durationSeconds": 43200});
    caller["sharedEventID"] = json!("5a1d8a64-0000-4000-8000-000000000001");
    let mut owner = caller.clone();
    owner["eventID"] = json!("owner-copy-1");
    owner["recipientAccountId"] = json!(OWNER);
    owner["userIdentity"] = json!({"type": "AWSAccount", "principalId": "AIDAEXAMPLEUSERID0001", "accountId": CALLER});
    (caller, owner)
}

fn detectors(delivered: &[crate::harness::Delivered]) -> Vec<String> {
    delivered.iter().map(|d| d.detector().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs moto_server and cargo-lambda: run `make test`, which installs and runs them"
)]
async fn both_copies_in_one_delivery_page_once() {
    let fx = Fixture::new().await;
    let (caller, owner) = both_copies();
    let (caller_key, owner_key) =
        (account_key(CALLER, "20261005T1005Z_caller"), account_key(OWNER, "20261005T1005Z_owner"));
    fx.put(TRAIL_BUCKET, &caller_key, cloudtrail_gz(&[caller])).await;
    fx.put(TRAIL_BUCKET, &owner_key, cloudtrail_gz(&[owner])).await;
    let response =
        fx.handler("rolewatch/state/").handle(s3_event(&[&owner_key, &caller_key])).await.expect("processed");
    assert_eq!(response["processed"], 2, "{response}");
    let delivered = fx.drain().await;
    assert_eq!(detectors(&delivered), ["long_session"], "one call, one page");
    assert_eq!(delivered[0].alert["principal"], format!("arn:aws:iam::{CALLER}:user/engineer"), "the caller's copy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs moto_server and cargo-lambda: run `make test`, which installs and runs them"
)]
async fn the_owners_copy_delivered_first_is_skipped_when_the_callers_account_has_state() {
    let fx = Fixture::new().await;
    let prefix = "rolewatch/state/";
    // The caller's account has been read before: it has state.
    let earlier = account_key(CALLER, "20261005T0955Z_earlier");
    let quiet = sample::other_call(CALLER, "earlier-1", "2026-10-05T09:55:00Z");
    fx.put(TRAIL_BUCKET, &earlier, cloudtrail_gz(&[quiet])).await;
    fx.handler(prefix).handle(s3_event(&[&earlier])).await.expect("earlier delivery");

    let (caller, owner) = both_copies();
    let (caller_key, owner_key) =
        (account_key(CALLER, "20261005T1010Z_caller"), account_key(OWNER, "20261005T1005Z_owner"));
    fx.put(TRAIL_BUCKET, &owner_key, cloudtrail_gz(&[owner])).await;
    fx.put(TRAIL_BUCKET, &caller_key, cloudtrail_gz(&[caller])).await;
    // Separate invocations, each a new function instance, the owner's first.
    fx.handler(prefix).handle(s3_event(&[&owner_key])).await.expect("owner's delivery");
    assert_eq!(detectors(&fx.drain().await), Vec::<String>::new(), "the owner's copy is redundant");
    fx.handler(prefix).handle(s3_event(&[&caller_key])).await.expect("caller's delivery");
    assert_eq!(detectors(&fx.drain().await), ["long_session"], "the caller's copy pages");
}
