//! Load: 220 CloudTrail objects across 20 accounts, processed against moto by
//! eight concurrent workers, each invoking the handler with S3 notifications
//! of four objects of different accounts, so invocations for the same
//! account overlap and their conditional state writes conflict. Every
//! expected alert arrives once, no state update is lost, and the run
//! reports its figures (stderr and `target/make-test/figures.txt`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::contended::ContendedState;
use crate::harness::{cloudtrail_gz, s3_event, Fixture, TRAIL_BUCKET};
use crate::synth::{
    account_key, account_of, denied, distinct, granted, long_session, oracle, other, recorded_inputs, report,
};

const ACCOUNTS: usize = 20;
const OBJECTS_PER_ACCOUNT: usize = 11;
const WORKERS: usize = 8;
const OBJECTS_PER_INVOCATION: usize = 4;
/// Lambda retries a failed asynchronous invocation twice.
const ATTEMPTS: usize = 3;

/// Per account: eleven objects of benign traffic; objects 1-5 each also
/// hold one AccessDenied of a burst of five (the threshold) within five
/// minutes, object 8 a long session.
fn corpus() -> (BTreeMap<String, Vec<u8>>, u64) {
    let mut objects = BTreeMap::new();
    let mut records = 0;
    for a in 0..ACCOUNTS {
        let account = format!("{:012}", 210_000_000_000u64 + a as u64 * 1_001);
        for j in 0..OBJECTS_PER_ACCOUNT {
            let t = |s: usize| format!("2026-10-05T10:{j:02}:{s:02}Z");
            let id = |what: &str| format!("{account}-{j}-{what}");
            let mut list: Vec<Value> = vec![
                other(&account, &id("o1"), &t(1)),
                granted(&account, &id("g1"), &t(5)),
                other(&account, &id("o2"), &t(9)),
                granted(&account, &id("g2"), &t(20)),
            ];
            if (1..=5).contains(&j) {
                list.push(denied(&account, &id("denied"), &t(30)));
            }
            if j == 8 {
                list.push(long_session(&account, &id("long"), &t(40)));
            }
            records += list.len() as u64;
            let name = format!("20261005T10{j:02}Z_Load{a:02}x{j:02}xxxxxx");
            objects.insert(account_key(&account, &name), cloudtrail_gz(&list));
        }
    }
    (objects, records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs moto_server and cargo-lambda: run `make test`, which installs and runs them"
)]
async fn two_hundred_objects_in_twenty_accounts_concurrently_raise_each_alert_once_and_lose_no_state() {
    load().await;
}

async fn load() {
    let fx = Fixture::new().await;
    let prefix = "load/state/";
    let (objects, records) = corpus();
    assert!(objects.len() >= 200);
    for (key, bytes) in &objects {
        fx.put(TRAIL_BUCKET, key, bytes.clone()).await;
    }
    let (expected, role_assumptions) = oracle(&objects);
    let accounts: Vec<String> = objects.keys().map(|k| account_of(k)).collect::<BTreeSet<_>>().into_iter().collect();
    assert_eq!(accounts.len(), ACCOUNTS);
    let detectors: BTreeMap<&str, usize> = expected.iter().fold(BTreeMap::new(), |mut m, s| {
        *m.entry(s.0.as_str()).or_default() += 1;
        m
    });
    assert_eq!(
        detectors,
        BTreeMap::from([("long_session", ACCOUNTS), ("repeated_failures", ACCOUNTS)]),
        "the corpus holds one burst and one long session per account"
    );

    // Invocations of four objects each, one object of each of four
    // accounts: the accounts go in groups of four, and a group's objects in
    // time order, so the invocations running at the same time (neighbours
    // in this order) share their accounts and race on their state.
    let mut order: Vec<&String> = objects.keys().collect();
    let group = |key: &str| accounts.iter().position(|a| *a == account_of(key)).unwrap_or(0) / OBJECTS_PER_INVOCATION;
    order.sort_by_key(|key| (group(key), key.rsplit('_').nth(1).map(str::to_owned), account_of(key)));
    let invocations: VecDeque<Vec<String>> =
        order.chunks(OBJECTS_PER_INVOCATION).map(|c| c.iter().map(|k| (*k).clone()).collect()).collect();
    let invocation_count = invocations.len();
    let queue = Arc::new(tokio::sync::Mutex::new(invocations));

    let conflicts = Arc::new(AtomicUsize::new(0));
    let handler = Arc::new(
        fx.handler_with(prefix, |repo| ContendedState::new(repo, Duration::from_millis(50), Arc::clone(&conflicts))),
    );
    let retried = Arc::new(AtomicUsize::new(0));

    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (queue, handler, retried) = (Arc::clone(&queue), Arc::clone(&handler), Arc::clone(&retried));
            tokio::spawn(async move {
                loop {
                    let Some(keys) = queue.lock().await.pop_front() else { return Ok(()) };
                    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                    let event = s3_event(&refs);
                    let mut attempt = 1;
                    loop {
                        match handler.handle(event.clone()).await {
                            Ok(_) => break,
                            Err(err) if attempt < ATTEMPTS => {
                                // Lambda's retry of a failed invocation
                                // (possible under contention).
                                retried.fetch_add(1, Ordering::SeqCst);
                                attempt += 1;
                                eprintln!("invocation failed, retrying: {err}");
                            }
                            Err(err) => return Err(format!("{keys:?}: {err}")),
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker task").expect("every invocation succeeds (with Lambda's retries)");
    }
    let wall = started.elapsed();
    let conflicts = conflicts.load(Ordering::SeqCst);
    let retried = retried.load(Ordering::SeqCst);
    assert!(conflicts > 0, "no two invocations ever raced on an account; the test proves nothing");

    // Every expected alert, exactly once by dedup_key. A retried invocation
    // may publish again what it published before failing (same dedup_key,
    // same events); only then are duplicates acceptable.
    let delivered = fx.drain().await;
    let (got, duplicates) = distinct(&delivered);
    let lost: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(&expected).collect();
    assert!(lost.is_empty() && extra.is_empty(), "alerts lost {lost:?}, unexpected {extra:?}");
    if retried == 0 {
        assert_eq!(duplicates, 0, "no invocation was retried, yet an alert arrived twice");
    }

    // No state update lost: every object is recorded in its account's state.
    let mut want: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for key in objects.keys() {
        want.entry(account_of(key)).or_default().insert(format!("s3://{TRAIL_BUCKET}/{key}"));
    }
    let mut missing = Vec::new();
    for (account, inputs) in &want {
        let recorded = recorded_inputs(&fx, prefix, account).await;
        missing.extend(inputs.difference(&recorded).cloned());
    }
    assert!(missing.is_empty(), "{} state updates lost: {missing:?}", missing.len());

    report(&format!(
        "load: {} objects, {ACCOUNTS} accounts, {records} records ({role_assumptions} role assumptions), \
         {invocation_count} invocations by {WORKERS} workers; {} alerts delivered ({} distinct, {duplicates} \
         duplicates), {conflicts} conflicts retried, {retried} invocations retried, wall time {:.2} s",
        objects.len(),
        delivered.len(),
        got.len(),
        wall.as_secs_f64()
    ));
}
