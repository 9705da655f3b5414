//! Synthetic CloudTrail objects for several accounts, the engine's own
//! verdict on them (the oracle), and how the fault-matrix and load tests
//! compare what reached the queue and report their figures.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;

use rolewatch::cloudtrail::read_input;
use rolewatch::config::Config;
use rolewatch::engine::{Applied, Engine};
use rolewatch::state::State;
use serde_json::{json, Value};

use crate::harness::{denied_assume_role, granted_assume_role, other_call, workspace, Delivered, ACCOUNT, REGION};
use crate::harness::{Fixture, TRAIL_BUCKET};

/// What identifies a delivered alert for these tests: detector, dedup_key
/// and the (sorted) event ids it carries.
pub type Signature = (String, String, Vec<String>);

/// A CloudTrail key of `account` for a synthetic object.
pub fn account_key(account: &str, name: &str) -> String {
    format!(
        "AWSLogs/o-exampleorg/{account}/CloudTrail/{REGION}/2026/10/05/{account}_CloudTrail_{REGION}_{name}.json.gz"
    )
}

/// A harness record (written for the sample account) moved to `account`.
pub fn retarget(record: Value, account: &str) -> Value {
    serde_json::from_str(&record.to_string().replace(ACCOUNT, account)).expect("record stays JSON")
}

pub fn denied(account: &str, id: &str, time: &str) -> Value {
    retarget(denied_assume_role(id, time, "guesser"), account)
}

pub fn granted(account: &str, id: &str, time: &str) -> Value {
    retarget(granted_assume_role(id, time, "deployer"), account)
}

pub fn other(account: &str, id: &str, time: &str) -> Value {
    retarget(other_call(id, time), account)
}

/// A granted 12-hour session of a role that never had one before.
pub fn long_session(account: &str, id: &str, time: &str) -> Value {
    let mut record = granted_assume_role(id, time, "night-owl");
    record["requestParameters"] = json!({"roleArn": format!("arn:aws:iam::{ACCOUNT}:role/break-glass"),
        "roleSessionName": "night-owl", "durationSeconds": 43200});
    record["responseElements"] = json!({"assumedRoleUser":
        {"arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/break-glass/night-owl")}});
    retarget(record, account)
}

/// The account of a synthetic key.
pub fn account_of(key: &str) -> String {
    rolewatch::cloudtrail::account_from_key(key).expect("synthetic keys name an account")
}

/// What a fresh state raises for these objects, each account's objects
/// applied in key order, as signatures; and the count of role assumptions.
pub fn oracle(objects: &BTreeMap<String, Vec<u8>>) -> (BTreeSet<Signature>, u64) {
    let config = Config::default();
    let mut engines: BTreeMap<String, Engine> = BTreeMap::new();
    let mut expected = BTreeSet::new();
    let mut role_assumptions = 0;
    for (key, bytes) in objects {
        let engine = engines.entry(account_of(key)).or_insert_with(|| Engine::new(&config, State::default()));
        let input = read_input(&bytes[..], &config.input.limits()).expect("synthetic objects are readable");
        role_assumptions += input.events.len() as u64;
        if let Applied::Processed { alerts } = engine.apply(&format!("s3://{TRAIL_BUCKET}/{key}"), &input.events) {
            for alert in alerts {
                let mut ids = alert.event_ids.clone();
                ids.sort();
                expected.insert((alert.detector.clone(), alert.dedup_key.clone(), ids));
            }
        }
    }
    (expected, role_assumptions)
}

pub fn signature(delivered: &Delivered) -> Signature {
    let mut ids: Vec<String> = delivered.alert["event_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    ids.sort();
    (delivered.detector().to_owned(), delivered.dedup_key().to_owned(), ids)
}

/// The distinct alerts delivered and how many deliveries were duplicates.
/// Fails if two deliveries share a dedup_key but differ in detector or
/// events: a duplicate must be the same alert again, nothing else.
pub fn distinct(delivered: &[Delivered]) -> (BTreeSet<Signature>, usize) {
    let mut by_key: BTreeMap<String, Signature> = BTreeMap::new();
    for d in delivered {
        let sig = signature(d);
        if let Some(seen) = by_key.get(&sig.1) {
            assert_eq!(seen, &sig, "two different alerts share dedup_key {}", sig.1);
        }
        by_key.insert(sig.1.clone(), sig);
    }
    let duplicates = delivered.len() - by_key.len();
    (by_key.into_values().collect(), duplicates)
}

/// The input ids recorded in an account's saved state.
pub async fn recorded_inputs(fx: &Fixture, prefix: &str, account: &str) -> BTreeSet<String> {
    fx.state_of(prefix, account).await.map(|state| state.processed_inputs().into_iter().collect()).unwrap_or_default()
}

/// The target directory (`CARGO_TARGET_DIR` or the workspace's `target/`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace().join("target"))
}

/// Reports figures where a person running `make test` sees them: cargo
/// shows a passing test's output only with `--nocapture`, so they go to
/// stderr (visible with `--nocapture`) and are appended to
/// `target/make-test/figures.txt`, which `make test` prints at the end.
pub fn report(text: &str) {
    eprintln!("{text}");
    let dir = target_dir().join("make-test");
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("figures.txt"))?;
        writeln!(file, "{text}")
    });
    if let Err(e) = written {
        eprintln!("cannot write {}: {e}", dir.join("figures.txt").display());
    }
}
