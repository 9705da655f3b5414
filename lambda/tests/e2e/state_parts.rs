//! An account that knows thousands of principals: its state is saved in two
//! parts, a base and the changes since, so an invocation reads and writes
//! kilobytes; the base is still what detections are judged against.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{
    cloudtrail_gz, granted_assume_role, log_key, s3_event, Fixture, ACCOUNT, STATE_BUCKET, TRAIL_BUCKET,
};

const PREFIX: &str = "rolewatch/state/";
const PRINCIPALS: usize = 3_000;

fn from(record: Value, ip: &str) -> Value {
    let mut record = record;
    record["sourceIPAddress"] = Value::from(ip);
    record
}

/// `count` users named `<name>0000`, `<name>0001`, ... each assuming a role once at `time`.
fn crowd(name: &str, count: usize, time: &str) -> Vec<Value> {
    (0..count).map(|i| granted_assume_role(&format!("{name}-{i}"), time, &format!("{name}{i:04}"))).collect()
}

async fn deliver(fx: &Fixture, day: &str, name: &str, records: &[Value]) {
    let key = log_key(day, name);
    fx.put(TRAIL_BUCKET, &key, cloudtrail_gz(records)).await;
    fx.handler(PREFIX).handle(s3_event(&[&key])).await.expect("invocation succeeds");
}

async fn bases(fx: &Fixture) -> Vec<String> {
    fx.list(STATE_BUCKET, &format!("{PREFIX}{ACCOUNT}.base-")).await
}

async fn state_object_bytes(fx: &Fixture) -> usize {
    fx.get(STATE_BUCKET, &format!("{PREFIX}{ACCOUNT}.json")).await.map_or(0, |(b, _)| b.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs moto_server and cargo-lambda: run `make test`, which installs and runs them"
)]
async fn a_large_account_moves_only_its_changes_and_still_judges_against_every_principal() {
    let fx = Fixture::new().await;
    // carol learns her office network on the 1st; 3,000 other users appear on the 9th.
    deliver(&fx, "01", "carol", &[granted_assume_role("c0", "2026-10-01T09:00:00Z", "carol")]).await;
    let users = crowd("user", PRINCIPALS, "2026-10-09T08:00:00Z");
    deliver(&fx, "09", "crowd", &users).await;
    let first_bases = bases(&fx).await;
    assert_eq!(first_bases.len(), 1, "the principals went into a base: {first_bases:?}");
    let small = state_object_bytes(&fx).await;
    assert!(small < 16 * 1024, "the state object names the base and holds no principal: {small} bytes");
    assert!(fx.drain().await.is_empty(), "learning raises nothing");

    // An hour later: carol, mature now, from a network she never used.
    deliver(
        &fx,
        "09",
        "carol-away",
        &[from(granted_assume_role("c1", "2026-10-09T09:00:00Z", "carol"), "203.0.113.50")],
    )
    .await;
    let alerts = fx.drain().await;
    let detectors: Vec<&str> = alerts.iter().map(|a| a.detector()).collect();
    assert_eq!(detectors, ["unexpected_source_ip"], "carol's baseline came from the base");
    assert_eq!(bases(&fx).await, first_bases, "a change of one principal does not rewrite the base");
    let after = state_object_bytes(&fx).await;
    assert!(after < small + 4 * 1024, "only carol's change was added: {small} -> {after} bytes");

    let state = fx.state(PREFIX).await.expect("state saved");
    assert_eq!(state.unexpected_source_ip.principals.len(), PRINCIPALS + 1);

    // 1,500 more newcomers are more change than the base takes on top of it:
    // a new base is written and the one it replaces deleted.
    let newcomers = crowd("newcomer", 1_500, "2026-10-09T10:00:00Z");
    deliver(&fx, "09", "newcomers", &newcomers).await;
    let now = bases(&fx).await;
    assert_eq!(now.len(), 1, "one base at a time: {now:?}");
    assert_ne!(now, first_bases, "a new base replaced the first");
    let state = fx.state(PREFIX).await.expect("state saved");
    assert_eq!(state.unexpected_source_ip.principals.len(), PRINCIPALS + 1 + 1_500, "nobody was lost on the way");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs moto_server and cargo-lambda: run `make test`, which installs and runs them"
)]
async fn a_damaged_state_object_is_set_aside_and_the_base_it_names_is_kept_with_it() {
    let fx = Fixture::new().await;
    let users = crowd("user", PRINCIPALS, "2026-10-09T08:00:00Z");
    deliver(&fx, "09", "crowd", &users).await;
    let base = bases(&fx).await;
    let key = format!("{PREFIX}{ACCOUNT}.json");
    let (mut bytes, _) = fx.get(STATE_BUCKET, &key).await.expect("state saved");
    let last = bytes.len() - 3;
    bytes[last] ^= 0x01;
    fx.put(STATE_BUCKET, &key, bytes).await;

    deliver(&fx, "09", "later", &[granted_assume_role("x1", "2026-10-09T09:00:00Z", "user0001")]).await;
    let detectors: Vec<String> = fx.drain().await.iter().map(|a| a.detector().to_owned()).collect();
    assert_eq!(detectors, ["state_reset"]);
    let quarantined = fx.list(STATE_BUCKET, &format!("{PREFIX}quarantine/")).await;
    assert_eq!(quarantined.len(), 2, "the state and, beside it, the base it names: {quarantined:?}");
    let digest = base[0].rsplit(".base-").next().unwrap_or_default();
    assert!(quarantined.iter().any(|k| k.ends_with(&format!(".base-{digest}"))), "{quarantined:?}");
    assert_eq!(bases(&fx).await, base, "the base is not deleted at once either");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs moto_server and cargo-lambda: run `make test`, which installs and runs them"
)]
async fn a_state_whose_base_is_gone_is_reported_and_set_aside_not_a_crash_loop() {
    let fx = Fixture::new().await;
    let users = crowd("user", PRINCIPALS, "2026-10-09T08:00:00Z");
    deliver(&fx, "09", "crowd", &users).await;
    let base = bases(&fx).await.pop().expect("a base was written");
    fx.s3.delete_object().bucket(STATE_BUCKET).key(&base).send().await.expect("delete the base");

    // A new handler, as a cold start: no base in memory either.
    deliver(&fx, "09", "later", &[granted_assume_role("x1", "2026-10-09T09:00:00Z", "user0001")]).await;
    let alerts = fx.drain().await;
    let detectors: Vec<&str> = alerts.iter().map(|a| a.detector()).collect();
    assert_eq!(detectors, ["state_reset"], "{alerts:?}");
    let quarantined = fx.list(STATE_BUCKET, &format!("{PREFIX}quarantine/")).await;
    assert_eq!(quarantined.len(), 1, "the unreadable state was copied aside: {quarantined:?}");
    assert!(fx.state(PREFIX).await.is_some(), "the account works again from fresh state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs moto_server and cargo-lambda: run `make test`, which installs and runs them"
)]
async fn a_base_no_state_names_is_removed_once_it_is_old_and_not_before() {
    let fx = Fixture::new().await;
    deliver(&fx, "09", "crowd", &crowd("user", PRINCIPALS, "2026-10-09T08:00:00Z")).await;
    // What a save that lost a conflict after writing its base leaves behind.
    let orphan = format!("{PREFIX}{ACCOUNT}.base-00000000deadbeef");
    fx.put(STATE_BUCKET, &orphan, b"left behind".to_vec()).await;

    deliver(&fx, "09", "newcomers", &crowd("newcomer", 1_500, "2026-10-09T10:00:00Z")).await;
    let now = bases(&fx).await;
    assert_eq!(now.len(), 2, "a new base, and the orphan: too young to be sure it is one: {now:?}");
    assert!(now.contains(&orphan));

    // The same, with the age limit at zero: the orphan is old enough.
    let handler = fx.handler_with(PREFIX, |repo| repo.with_orphan_base_age(Duration::ZERO));
    let key = log_key("09", "more");
    fx.put(TRAIL_BUCKET, &key, cloudtrail_gz(&crowd("late", 2_000, "2026-10-09T11:00:00Z"))).await;
    handler.handle(s3_event(&[&key])).await.expect("invocation succeeds");
    let now = bases(&fx).await;
    assert_eq!(now.len(), 1, "only the base the state names is left: {now:?}");
    assert!(!now.contains(&orphan));
    let state = fx.state(PREFIX).await.expect("state saved");
    assert_eq!(state.unexpected_source_ip.principals.len(), PRINCIPALS + 1_500 + 2_000);
}
