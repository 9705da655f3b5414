//! The flow with in-memory capabilities: the orderings and failure paths
//! that are awkward to provoke against a server.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use rolewatch::alert::Alert;
use rolewatch::sample;
use rolewatch::state::State;
use serde_json::json;

use super::*;
use crate::ports::{LoadedState, ObjectReader, SaveOutcome, SinkError, SourceError, StateVersion, StoreError};

const ACCOUNT: &str = "111122223333";

fn key(name: &str) -> String {
    format!("AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/10/05/{ACCOUNT}_CloudTrail_us-east-1_{name}.json")
}

fn denied(id: &str, second: u32) -> Value {
    denied_by("guesser", id, second)
}

fn denied_by(user: &str, id: &str, second: u32) -> Value {
    sample::denied_assume_role(ACCOUNT, user, id, &format!("2026-10-05T10:00:{second:02}Z"))
}

fn granted(id: &str, second: u32) -> Value {
    sample::granted_assume_role(ACCOUNT, "deployer", id, &format!("2026-10-05T10:00:{second:02}Z"))
}

fn log(records: &[Value]) -> Vec<u8> {
    sample::log_json(records)
}

/// Five failures by `user` within 20 s: one repeated_failures alert.
fn burst_by(user: &str, prefix: &str) -> Vec<Value> {
    (0..5).map(|i| denied_by(user, &format!("{prefix}{i}"), i * 5)).collect()
}

fn burst_log(prefix: &str) -> Vec<u8> {
    log(&burst_by("guesser", prefix))
}

fn event(keys: &[&str]) -> Value {
    let records: Vec<Value> = keys
        .iter()
        .map(|k| {
            json!({"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "trail"}, "object": {"key": k}}})
        })
        .collect();
    json!({ "Records": records })
}

/// Objects in memory; `broken` ones fail part-way like a dropped
/// connection; from the `refused_from`-th open on, one cannot be opened.
#[derive(Default)]
struct Objects {
    objects: HashMap<String, Vec<u8>>,
    broken: HashSet<String>,
    refused_from: HashMap<String, u32>,
    opens: Mutex<HashMap<String, u32>>,
}

impl Objects {
    fn with(objects: &[(&str, Vec<u8>)]) -> Objects {
        let objects = objects.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        Objects { objects, ..Objects::default() }
    }

    fn opens(&self, key: &str) -> u32 {
        self.opens.lock().map(|o| o.get(key).copied().unwrap_or(0)).unwrap_or(0)
    }
}

/// A reader that returns some bytes and then an I/O error.
struct Dropped(Vec<u8>, bool);

impl tokio::io::AsyncRead for Dropped {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.1 {
            return std::task::Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection reset by peer",
            )));
        }
        let n = self.0.len().min(buf.remaining());
        buf.put_slice(&self.0[..n]);
        self.1 = true;
        std::task::Poll::Ready(Ok(()))
    }
}

impl ObjectSource for Objects {
    async fn open(&self, object: &ObjectRef) -> Result<ObjectReader, SourceError> {
        let opens = {
            let mut opens = self.opens.lock().map_err(|_| SourceError::Request("poisoned".into()))?;
            let count = opens.entry(object.key.clone()).or_default();
            *count += 1;
            *count
        };
        if self.refused_from.get(&object.key).is_some_and(|from| opens >= *from) {
            return Err(SourceError::Request("GetObject: 503 SlowDown".into()));
        }
        let bytes = self.objects.get(&object.key).cloned().ok_or(SourceError::NotFound)?;
        if self.broken.contains(&object.key) {
            let half = bytes[..bytes.len() / 2].to_vec();
            return Ok(Box::pin(Dropped(half, false)));
        }
        Ok(Box::pin(std::io::Cursor::new(bytes)))
    }
}

/// State in memory with versions; `conflicts` makes that many saves
/// lose, each after `conflict_pause`.
#[derive(Default)]
struct Memory {
    stored: Mutex<Option<(Vec<u8>, u64)>>,
    conflicts: Mutex<u32>,
    conflict_pause: Duration,
    saves: Mutex<u32>,
    quarantined: Mutex<u32>,
    /// Accounts whose lease another invocation holds, until when.
    held: HashMap<String, tokio::time::Instant>,
    /// Ignores when to give up on a lease, waiting on regardless.
    stubborn: bool,
    /// "acquire <account>" and "release <account>", in order, and when.
    leases: Mutex<Vec<(String, tokio::time::Instant)>>,
}

impl Memory {
    /// A store holding what `other` saved, as the next invocation finds it.
    fn after(other: &Memory) -> Memory {
        let stored = other.stored.lock().map(|s| s.clone()).unwrap_or_default();
        Memory { stored: Mutex::new(stored), ..Memory::default() }
    }

    /// The saved state, read as `load` reads it (whatever its encoding).
    fn state(&self) -> State {
        let stored = self.stored.lock().ok().and_then(|s| s.clone());
        match stored.map(|(bytes, v)| LoadedState::from_bytes(bytes, StateVersion(v.to_string()))) {
            Some(LoadedState::Found { state, .. }) => *state,
            _ => State::default(),
        }
    }
}

impl AccountStateStore for Memory {
    async fn load(&self, _: &str) -> Result<LoadedState, StoreError> {
        let stored = self.stored.lock().map_err(|_| poisoned())?.clone();
        match stored {
            None => Ok(LoadedState::Missing),
            Some((bytes, v)) => Ok(LoadedState::from_bytes(bytes, StateVersion(v.to_string()))),
        }
    }

    async fn save(&self, _: &str, state: &State, expected: Option<&StateVersion>) -> Result<SaveOutcome, StoreError> {
        let lost = {
            let mut conflicts = self.conflicts.lock().map_err(|_| poisoned())?;
            let lost = *conflicts > 0;
            *conflicts = conflicts.saturating_sub(1);
            lost
        };
        if lost {
            tokio::time::sleep(self.conflict_pause).await;
            return Ok(SaveOutcome::Conflict);
        }
        let mut stored = self.stored.lock().map_err(|_| poisoned())?;
        let current = stored.as_ref().map(|(_, v)| v.to_string());
        if current.as_deref() != expected.map(|v| v.0.as_str()) {
            return Ok(SaveOutcome::Conflict);
        }
        let next = stored.as_ref().map_or(1, |(_, v)| v + 1);
        *stored = Some((state.to_bytes(), next));
        *self.saves.lock().map_err(|_| poisoned())? += 1;
        Ok(SaveOutcome::Saved(StateVersion(next.to_string())))
    }

    async fn acquire_lease(&self, account: &str, give_up_at: Option<tokio::time::Instant>) -> Result<(), StoreError> {
        loop {
            let now = tokio::time::Instant::now();
            if self.held.get(account).is_none_or(|until| now >= *until) {
                self.leases.lock().map_err(|_| poisoned())?.push((format!("acquire {account}"), now));
                return Ok(());
            }
            if !self.stubborn && give_up_at.is_some_and(|at| now >= at) {
                return Err(StoreError::new("lease", account, "held by another invocation"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn release_lease(&self, account: &str) -> Result<(), StoreError> {
        let now = tokio::time::Instant::now();
        self.leases.lock().map_err(|_| poisoned())?.push((format!("release {account}"), now));
        Ok(())
    }

    async fn quarantine(&self, account: &str, _: &[u8]) -> Result<String, StoreError> {
        *self.quarantined.lock().map_err(|_| poisoned())? += 1;
        Ok(format!("memory://quarantine/{account}"))
    }

    fn location(&self, account: &str) -> String {
        format!("memory://{account}")
    }
}

fn poisoned() -> StoreError {
    StoreError::new("lock", "memory", "poisoned")
}

#[derive(Default)]
struct Sink {
    published: Mutex<Vec<Alert>>,
    down: bool,
}

impl AlertSink for Sink {
    async fn publish(&self, alerts: &[Alert]) -> Result<(), SinkError> {
        if self.down {
            return Err(SinkError::Request("dispatch failure: connection refused".into()));
        }
        self.published.lock().map_err(|_| SinkError::Request("poisoned".into()))?.extend_from_slice(alerts);
        Ok(())
    }
}

fn handler(objects: Objects, repo: Memory, sink: Sink) -> Handler<Objects, Memory, Sink> {
    Handler::new(objects, repo, sink, Config::default())
}

fn published(h: &Handler<Objects, Memory, Sink>) -> Vec<String> {
    h.sink.published.lock().map(|p| p.iter().map(|a| a.detector.clone()).collect()).unwrap_or_default()
}

fn alerts(h: &Handler<Objects, Memory, Sink>) -> Vec<Alert> {
    h.sink.published.lock().map(|p| p.clone()).unwrap_or_default()
}

fn inputs(repo: &Memory) -> Vec<String> {
    repo.state().processed_inputs()
}

#[tokio::test]
async fn publishing_failure_fails_the_invocation_and_saves_nothing() {
    let k = key("20261005T1005Z_a");
    let objects = Objects { objects: HashMap::from([(k.clone(), burst_log("e"))]), ..Objects::default() };
    let h = handler(objects, Memory::default(), Sink { down: true, ..Sink::default() });
    let err = h.handle(event(&[&k])).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains(&format!("s3://trail/{k}")) && err.contains("alerts not published"), "{err}");
    assert!(h.store.stored.lock().map(|s| s.is_none()).unwrap_or(false), "state must not be saved");
}

#[tokio::test]
async fn after_conflicts_alerts_already_published_are_not_published_again() {
    let k = key("20261005T1005Z_a");
    let objects = Objects { objects: HashMap::from([(k.clone(), burst_log("e"))]), ..Objects::default() };
    let repo = Memory { conflicts: Mutex::new(3), ..Memory::default() };
    let h = handler(objects, repo, Sink::default());
    let summary = h.handle(event(&[&k])).await.map_err(|e| e.to_string());
    assert_eq!(summary.as_ref().map(|s| s["alerts"].clone()), Ok(json!(1)), "{summary:?}");
    assert_eq!(published(&h), ["repeated_failures"], "one alert, despite four applications");
}

#[tokio::test]
async fn endless_conflicts_give_up_with_an_error_naming_the_account() {
    let k = key("20261005T1005Z_a");
    let objects = Objects { objects: HashMap::from([(k.clone(), burst_log("e"))]), ..Objects::default() };
    let repo = Memory { conflicts: Mutex::new(u32::MAX), ..Memory::default() };
    let h = handler(objects, repo, Sink::default());
    let err = h.handle(event(&[&k])).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains(ACCOUNT) && err.contains("conditional writes lost"), "{err}");
    assert_eq!(published(&h), ["repeated_failures"], "published once, not once per attempt");
}

#[tokio::test]
async fn a_dropped_connection_is_retried_not_reported_as_unreadable() {
    let (good, broken) = (key("20261005T1005Z_a"), key("20261005T1010Z_b"));
    let objects = Objects {
        objects: HashMap::from([(good.clone(), burst_log("e")), (broken.clone(), burst_log("f"))]),
        broken: HashSet::from([broken.clone()]),
        ..Objects::default()
    };
    let h = handler(objects, Memory::default(), Sink::default());
    let err = h.handle(event(&[&good, &broken])).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains(&format!("s3://trail/{broken}: cannot be fetched")), "{err}");
    assert!(err.contains("connection reset"), "{err}");
    assert_eq!(published(&h), ["repeated_failures"], "no unreadable_input alert for a network fault");
    let stored = h.store.stored.lock().ok().and_then(|s| s.clone()).map(|(b, _)| b).unwrap_or_default();
    let state = State::from_bytes(stored.clone()).map_err(|e| e.to_string());
    let inputs: Vec<String> = state.map(|s| s.processed_inputs()).unwrap_or_default();
    assert_eq!(inputs, [format!("s3://trail/{good}")], "the broken object stays unprocessed for the retry");
}

#[tokio::test]
async fn a_vanished_object_is_reported_unreadable() {
    let gone = key("20261005T1005Z_gone");
    let h = handler(Objects::default(), Memory::default(), Sink::default());
    let err = h.handle(event(&[&gone])).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains(&format!("s3://trail/{gone}: cannot be read")), "{err}");
    assert_eq!(published(&h), ["unreadable_input"]);
}

/// State bytes sealed with a valid checksum, as a newer release writes them.
fn sealed_state(text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    let digest = format!("{:016x}", twox_hash::XxHash3_64::oneshot_with_seed(0, &bytes));
    bytes.extend_from_slice(format!("{{\"principals\":0,\"xxh3\":\"{digest}\"}}\n").as_bytes());
    bytes
}

#[tokio::test]
async fn after_a_rollback_a_newer_state_fails_the_invocation_and_is_left_untouched() {
    let k = key("20261005T1005Z_a");
    let newer = [
        (sealed_state("{\"format\":4,\"watermark\":1}\n"), "format 4"),
        // A section a newer release added without a new format (a new detector's history).
        (sealed_state("{\"format\":3}\n#session_velocity\n\"arn:aws:iam::1:user/a\"\t9\t[]\n"), "#session_velocity"),
    ];
    for (bytes, found) in newer {
        let objects = Objects::with(&[(&k, burst_log("e"))]);
        let repo = Memory::default();
        if let Ok(mut stored) = repo.stored.lock() {
            *stored = Some((bytes.clone(), 7));
        }
        let h = handler(objects, repo, Sink::default());
        let err = h.handle(event(&[&k])).await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(&format!("memory://{ACCOUNT}")) && err.contains(found), "{err}");
        assert!(err.contains(&format!("formats 1 to {}", rolewatch::state::STATE_FORMAT)), "{err}");
        assert_eq!(h.store.stored.lock().ok().and_then(|s| s.clone()), Some((bytes, 7)), "never overwritten");
        assert_eq!(h.store.quarantined.lock().map(|q| *q).ok(), Some(0), "never moved aside");
        assert!(published(&h).is_empty(), "no state_reset alert, no detection from empty state");
    }
}

#[tokio::test]
async fn after_a_rollback_an_sqs_message_for_an_account_with_newer_state_is_reported_failed() {
    let (mine, other) = (key("20261005T1005Z_a"), format!("AWSLogs/{ACCOUNT}/Config/us-east-1/2026/10/5/x.json.gz"));
    let objects = Objects::with(&[(&mine, burst_log("e"))]);
    let repo = Memory::default();
    if let Ok(mut stored) = repo.stored.lock() {
        *stored = Some((sealed_state("{\"format\":4}\n"), 1));
    }
    let h = handler(objects, repo, Sink::default());
    let body = |k: &str| event(&[k]).to_string();
    let batch = json!({"Records": [
        {"messageId": "m1", "eventSource": "aws:sqs", "body": body(&mine)},
        {"messageId": "m2", "eventSource": "aws:sqs", "body": body(&other)},
    ]});
    let response = h.handle(batch).await.map_err(|e| e.to_string());
    let failed = response.map(|r| r["batchItemFailures"].clone());
    assert_eq!(failed, Ok(json!([{"itemIdentifier": "m1"}])), "retried, then dead-lettered: not dropped");
}

#[tokio::test]
async fn the_same_key_raised_again_after_its_cooldown_is_published_again() {
    // Two bursts by the same principal two hours apart, in one invocation.
    let (a, b) = (key("20261005T1005Z_a"), key("20261005T1205Z_b"));
    let later: Vec<Value> = (0..5)
        .map(|i| {
            let mut r = denied(&format!("late{i}"), i * 5);
            r["eventTime"] = json!(format!("2026-10-05T12:00:{:02}Z", i * 5));
            r
        })
        .collect();
    let objects = Objects {
        objects: HashMap::from([
            (a.clone(), burst_log("e")),
            (b.clone(), json!({ "Records": later }).to_string().into_bytes()),
        ]),
        ..Objects::default()
    };
    let h = handler(objects, Memory::default(), Sink::default());
    assert!(h.handle(event(&[&a, &b])).await.is_ok());
    assert_eq!(published(&h), ["repeated_failures", "repeated_failures"]);
}

#[tokio::test]
async fn an_unreadable_object_pages_once_however_often_it_is_retried() {
    let gone = key("20261005T1005Z_gone");
    let h = handler(Objects::default(), Memory::default(), Sink::default());
    for _ in 0..3 {
        assert!(h.handle(event(&[&gone])).await.is_err(), "each retry still fails, so the DLQ gets it");
    }
    assert_eq!(published(&h), ["unreadable_input"]);
}

#[tokio::test]
async fn a_corrupt_state_is_replaced_and_reported() {
    let k = key("20261005T1005Z_a");
    let objects = Objects { objects: HashMap::from([(k.clone(), burst_log("e"))]), ..Objects::default() };
    let repo = Memory::default();
    if let Ok(mut stored) = repo.stored.lock() {
        *stored = Some((b"{\"format\": 1, \"inputs\": [".to_vec(), 1));
    }
    let h = handler(objects, repo, Sink::default());
    let summary = h.handle(event(&[&k])).await.map_err(|e| e.to_string());
    assert!(summary.is_ok(), "{summary:?}");
    let mut detectors = published(&h);
    detectors.sort();
    assert_eq!(detectors, ["repeated_failures", "state_reset"]);
}

#[tokio::test]
async fn after_a_conflict_objects_are_streamed_again_and_counted_and_published_once() {
    let k = key("20261005T1005Z_a");
    let objects = Objects::with(&[(&k, burst_log("e"))]);
    let repo = Memory { conflicts: Mutex::new(1), ..Memory::default() };
    let h = handler(objects, repo, Sink::default());
    let summary = h.handle(event(&[&k])).await.map_err(|e| e.to_string());
    assert_eq!(h.source.opens(&k), 2, "no object's events are kept: the second attempt reads it again");
    assert_eq!(published(&h), ["repeated_failures"], "published by the first attempt only");
    let counts = summary.map(|s| (s["processed"].clone(), s["records"].clone(), s["role_assumptions"].clone()));
    assert_eq!(counts, Ok((json!(1), json!(5), json!(5))), "counted once, not once per attempt");
    assert_eq!(inputs(&h.store), [format!("s3://trail/{k}")]);
}

#[tokio::test]
async fn a_burst_across_chunk_boundaries_raises_the_same_alert_as_the_whole_object() {
    // Ten role assumptions, failures and successes alternating: in chunks
    // of three, the fifth failure (the threshold) arrives in the fourth.
    let k = key("20261005T1005Z_a");
    let records: Vec<Value> =
        (0..5u32).flat_map(|i| [granted(&format!("g{i}"), i * 5), denied(&format!("d{i}"), i * 5 + 1)]).collect();
    let run = |chunk_events: usize| {
        let objects = Objects::with(&[(&k, log(&records))]);
        // One clock for both runs: the summaries carry the alerts' lag.
        handler(objects, Memory::default(), Sink::default())
            .with_chunk_events(chunk_events)
            .with_clock(Arc::new(FixedClock))
    };
    let (whole, chunked) = (run(CHUNK_EVENTS), run(3));
    let whole_summary = whole.handle(event(&[&k])).await.map_err(|e| e.to_string());
    let chunked_summary = chunked.handle(event(&[&k])).await.map_err(|e| e.to_string());
    assert_eq!(chunked_summary, whole_summary);
    assert_eq!(chunked_summary.map(|s| s["role_assumptions"].clone()), Ok(json!(10)), "every chunk counted");
    let got = alerts(&chunked);
    assert_eq!(got, alerts(&whole), "the same alerts, field for field");
    let burst: Vec<(&str, u64)> = got.iter().map(|a| (a.detector.as_str(), a.event_count)).collect();
    assert_eq!(burst, [("repeated_failures", 5)], "failures of earlier chunks count towards the burst");
    assert_eq!(inputs(&chunked.store), [format!("s3://trail/{k}")], "recorded once all chunks were applied");
}

#[tokio::test]
async fn an_unreadable_object_larger_than_a_chunk_applies_what_was_read_and_fails() {
    // A burst, then the object is cut off inside the next record.
    let k = key("20261005T1005Z_cut");
    let mut bytes = log(&[burst_by("guesser", "e"), vec![granted("g", 40)]].concat());
    bytes.truncate(bytes.len() - 40);
    let h = handler(Objects::with(&[(&k, bytes)]), Memory::default(), Sink::default()).with_chunk_events(2);
    let err = h.handle(event(&[&k])).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains(&format!("s3://trail/{k}: cannot be read")), "{err}");
    assert_eq!(published(&h), ["repeated_failures", "unreadable_input"]);
    assert!(inputs(&h.store).is_empty(), "not recorded: a repaired copy is read in full");
}

#[tokio::test]
async fn a_connection_dropped_after_chunks_were_applied_leaves_no_trace_and_the_retry_raises_once() {
    let (a, b, c) = (key("20261005T1005Z_a"), key("20261005T1010Z_b"), key("20261005T1015Z_c"));
    let bytes = [(a.as_str(), log(&burst_by("alice", "a"))), (b.as_str(), log(&burst_by("bob", "b")))];
    let bytes = [bytes.as_slice(), &[(c.as_str(), log(&burst_by("carol", "c")))]].concat();
    // In chunks of two, b's first chunk is applied before its stream breaks half-way.
    let objects = Objects { broken: HashSet::from([b.clone()]), ..Objects::with(&bytes) };
    let h = handler(objects, Memory::default(), Sink::default()).with_chunk_events(2);
    let err = h.handle(event(&[&a, &b, &c])).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains(&format!("s3://trail/{b}: cannot be fetched")) && err.contains("connection reset"), "{err}");
    assert!(!err.contains(&a) && !err.contains(&c), "only the broken object fails: {err}");
    let principals = |alerts: Vec<Alert>| alerts.into_iter().map(|a| a.principal).collect::<Vec<_>>();
    let user = |name: &str| format!("arn:aws:iam::{ACCOUNT}:user/{name}");
    assert_eq!(principals(alerts(&h)), [user("alice"), user("carol")], "each once; nothing of bob's yet");
    let state = h.store.state();
    assert_eq!(state.processed_inputs(), [format!("s3://trail/{a}"), format!("s3://trail/{c}")]);
    assert!(!state.repeated_failures.by_principal.contains_key(&user("bob")), "b's applied chunk was not saved");

    // Lambda's retry, the connection fine this time.
    let retry = handler(Objects::with(&bytes), Memory::after(&h.store), Sink::default());
    assert!(retry.handle(event(&[&a, &b, &c])).await.is_ok());
    assert_eq!(principals(alerts(&retry)), [user("bob")], "b's burst raised once, by the retry");
    assert_eq!(inputs(&retry.store).len(), 3);
}

#[tokio::test]
async fn an_object_that_cannot_be_opened_again_after_a_conflict_fails_and_is_not_dropped() {
    let k = key("20261005T1005Z_a");
    let objects = Objects { refused_from: HashMap::from([(k.clone(), 2)]), ..Objects::with(&[(&k, burst_log("e"))]) };
    let repo = Memory { conflicts: Mutex::new(1), ..Memory::default() };
    let h = handler(objects, repo, Sink::default());
    let err = h.handle(event(&[&k])).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains(&format!("s3://trail/{k}: cannot be fetched")) && err.contains("503"), "{err}");
    assert_eq!(published(&h), ["repeated_failures"], "published by the first attempt");
    assert!(inputs(&h.store).is_empty(), "not recorded as processed");

    // Lambda's retry reads it: the alert again, same dedup_key (at least once).
    let retry = handler(Objects::with(&[(&k, burst_log("e"))]), Memory::after(&h.store), Sink::default());
    assert!(retry.handle(event(&[&k])).await.is_ok());
    let keys = |alerts: Vec<Alert>| alerts.into_iter().map(|a| a.dedup_key).collect::<Vec<_>>();
    assert_eq!(keys(alerts(&retry)), keys(alerts(&h)));
    assert_eq!(inputs(&retry.store), [format!("s3://trail/{k}")]);
}

#[tokio::test]
async fn an_unreadable_object_pages_once_when_a_conflict_makes_the_attempts_a_second_apart() {
    let k = key("20261005T1005Z_cut");
    let mut bytes = burst_log("e");
    bytes.truncate(bytes.len() / 2);
    let repo = Memory { conflicts: Mutex::new(1), conflict_pause: Duration::from_millis(1100), ..Memory::default() };
    let h = handler(Objects::with(&[(&k, bytes)]), repo, Sink::default());
    assert!(h.handle(event(&[&k])).await.is_err());
    assert_eq!(published(&h), ["unreadable_input"]);
}

/// A clock that stands still at 2026-10-05T10:30:00Z.
struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from(std::time::UNIX_EPOCH + Duration::from_secs(1_791_196_200))
    }
}

fn key_in(account: &str, name: &str) -> String {
    format!("AWSLogs/{account}/CloudTrail/us-east-1/2026/10/05/{account}_CloudTrail_us-east-1_{name}.json")
}

fn sqs(keys: &[&str]) -> Value {
    let records: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| json!({"messageId": format!("m{}", i + 1), "eventSource": "aws:sqs", "body": event(&[k]).to_string()}))
        .collect();
    json!({ "Records": records })
}

fn lease_log(repo: &Memory) -> Vec<String> {
    repo.leases.lock().map(|l| l.iter().map(|(what, _)| what.clone()).collect()).unwrap_or_default()
}

const DEADLINE: Duration = Duration::from_secs(60);

/// The deadline `DEADLINE` after the fixed clock's time, and the moment of
/// paused time it stands for.
fn deadline() -> (Option<DateTime<Utc>>, tokio::time::Instant) {
    (
        Some(FixedClock.now() + chrono::Duration::seconds(DEADLINE.as_secs() as i64)),
        tokio::time::Instant::now() + DEADLINE,
    )
}

#[tokio::test(start_paused = true)]
async fn a_deadline_during_a_lease_wait_stops_in_time_and_reports_the_accounts_left_failed() {
    let (a, b, c) = ("111122223333", "222233334444", "333344445555");
    let keys = [key_in(a, "20261005T1005Z_a"), key_in(b, "20261005T1005Z_b"), key_in(c, "20261005T1005Z_c")];
    let objects = Objects::with(&[(&keys[0], burst_log("a")), (&keys[1], burst_log("b")), (&keys[2], burst_log("c"))]);
    // Another invocation holds b's lease for ten minutes, past this one's deadline.
    let repo = Memory {
        held: HashMap::from([(b.to_owned(), tokio::time::Instant::now() + Duration::from_secs(600))]),
        ..Memory::default()
    };
    let h = handler(objects, repo, Sink::default()).with_clock(Arc::new(FixedClock));
    let (deadline, killed_at) = deadline();
    let response = h.handle_until(sqs(&[&keys[0], &keys[1], &keys[2]]), deadline).await.map_err(|e| e.to_string());
    let failed = response.map(|r| r["batchItemFailures"].clone());
    assert_eq!(failed, Ok(json!([{"itemIdentifier": "m2"}, {"itemIdentifier": "m3"}])), "b and c are retried");
    assert_eq!(published(&h), ["repeated_failures"], "a was brought up to date");
    assert_eq!(lease_log(&h.store), [format!("acquire {a}"), format!("release {a}")]);
    let finished = tokio::time::Instant::now();
    assert!(finished + DEADLINE_RESERVE <= killed_at + Duration::from_millis(200), "stopped with the reserve left");
    assert!(finished + DEADLINE_RESERVE + Duration::from_secs(1) >= killed_at, "and not long before it");
}

#[tokio::test(start_paused = true)]
async fn a_lease_wait_that_ignores_the_deadline_is_cut_off_before_lambda_would_kill_it() {
    let k = key("20261005T1005Z_a");
    let repo = Memory {
        held: HashMap::from([(ACCOUNT.to_owned(), tokio::time::Instant::now() + Duration::from_secs(600))]),
        stubborn: true,
        ..Memory::default()
    };
    let h = handler(Objects::with(&[(&k, burst_log("e"))]), repo, Sink::default()).with_clock(Arc::new(FixedClock));
    let (deadline, killed_at) = deadline();
    let err = h.handle_until(event(&[&k]), deadline).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains(&format!("s3://trail/{k}")) && err.contains("deadline came while waiting"), "{err}");
    assert!(tokio::time::Instant::now() < killed_at, "answered before the deadline");
    assert!(lease_log(&h.store).is_empty(), "no lease taken, none to release");
}

#[tokio::test(start_paused = true)]
async fn a_deadline_during_save_retries_releases_the_lease_and_fails_the_invocation() {
    let k = key("20261005T1005Z_a");
    // Every save loses, each after six seconds: ten of them outlast the deadline.
    let repo = Memory { conflicts: Mutex::new(u32::MAX), conflict_pause: Duration::from_secs(6), ..Memory::default() };
    let h = handler(Objects::with(&[(&k, burst_log("e"))]), repo, Sink::default()).with_clock(Arc::new(FixedClock));
    let (deadline, killed_at) = deadline();
    let err = h.handle_until(event(&[&k]), deadline).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        err.contains(&format!("s3://trail/{k}")) && err.contains(ACCOUNT) && err.contains("deadline came"),
        "{err}"
    );
    assert!(!err.contains("conditional writes lost"), "the deadline, not the attempt limit, ended it: {err}");
    assert_eq!(lease_log(&h.store), [format!("acquire {ACCOUNT}"), format!("release {ACCOUNT}")]);
    let released = h.store.leases.lock().ok().and_then(|l| l.last().map(|(_, at)| *at));
    assert!(released.is_some_and(|at| at + DEADLINE_RESERVE <= killed_at), "released with the reserve left");
    assert_eq!(published(&h), ["repeated_failures"], "what was published stays published (same dedup_key on retry)");
    assert!(h.store.stored.lock().map(|s| s.is_none()).unwrap_or(false), "nothing saved");
}

/// Checks one EMF document against the specification: `_aws` holds a
/// millisecond `Timestamp` and metric directives; every dimension named is
/// a string member of the root and every metric a number member. Returns
/// the document's dimension values and metrics (name, unit, value).
/// An EMF document read back: its dimensions (name, value) and metrics (name, unit, value).
type EmfDocument = (Vec<(String, String)>, Vec<(String, String, f64)>);
/// A metric's unit and value.
type Measured = Option<(String, f64)>;

fn emf_document(line: &str) -> EmfDocument {
    assert!(!line.contains('\n'), "one document a line: {line}");
    let doc: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(doc["_aws"]["Timestamp"], json!(1_791_196_200_000i64), "the clock's time in ms: {line}");
    let directives = doc["_aws"]["CloudWatchMetrics"].as_array().cloned().unwrap_or_default();
    assert_eq!(directives.len(), 1, "{line}");
    let directive = &directives[0];
    assert_eq!(directive["Namespace"], "rolewatch");
    let mut dimensions = Vec::new();
    for set in directive["Dimensions"].as_array().into_iter().flatten() {
        for name in set.as_array().into_iter().flatten().filter_map(Value::as_str) {
            let value = doc[name].as_str().unwrap_or_else(|| panic!("dimension {name} is no string member: {line}"));
            dimensions.push((name.to_owned(), value.to_owned()));
        }
    }
    let metrics = directive["Metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let name = m["Name"].as_str().unwrap_or_default().to_owned();
            let value = doc[&name].as_f64().unwrap_or_else(|| panic!("metric {name} has no number: {line}"));
            (name, m["Unit"].as_str().unwrap_or_default().to_owned(), value)
        })
        .collect();
    (dimensions, metrics)
}

#[tokio::test]
async fn an_invocation_writes_its_metrics_as_emf_documents() {
    let (burst, cut) = (key("20261005T1005Z_a"), key("20261005T1010Z_cut"));
    let mut truncated = burst_log("x");
    truncated.truncate(30);
    let objects = Objects::with(&[(&burst, burst_log("e")), (&cut, truncated)]);
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let out = Arc::clone(&lines);
    let h = handler(objects, Memory::default(), Sink::default())
        .with_clock(Arc::new(FixedClock))
        .with_metrics_out(Arc::new(move |line: &str| out.lock().map(|mut l| l.push(line.to_owned())).unwrap_or(())));
    let digest = format!("AWSLogs/{ACCOUNT}/CloudTrail-Digest/us-east-1/2026/10/05/{ACCOUNT}_CloudTrail-Digest_us-east-1_t_us-east-1_20261005T1030Z.json.gz");
    let config = format!("AWSLogs/{ACCOUNT}/Config/us-east-1/2026/10/5/ConfigSnapshot/{ACCOUNT}_Config_us-east-1_ConfigSnapshot_20261005T103000Z_x.json.gz");
    let flow = format!("AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/2026/10/05/{ACCOUNT}_vpcflowlogs_us-east-1_fl-1_20261005T1030Z_h.log.gz");
    assert!(h.handle(event(&[&burst, &cut, &digest, &config, &flow])).await.is_err(), "the cut object fails");

    let lines = lines.lock().map(|l| l.clone()).unwrap_or_default();
    let docs: Vec<_> = lines.iter().map(|l| emf_document(l)).collect();
    let metric = |doc: &EmfDocument, name: &str| -> Measured {
        doc.1.iter().find(|(n, _, _)| n == name).map(|(_, unit, v)| (unit.clone(), *v))
    };
    let count = |v: f64| Some(("Count".to_owned(), v));
    // Totals first, with no dimension.
    let totals = &docs[0];
    assert!(totals.0.is_empty(), "{:?}", totals.0);
    assert_eq!(metric(totals, "FilesRead"), count(1.0), "the burst; the cut object was not read whole");
    assert_eq!(metric(totals, "Records"), count(5.0));
    assert_eq!(metric(totals, "RoleAssumptions"), count(5.0));
    assert_eq!(metric(totals, "Alerts"), count(2.0));
    assert_eq!(metric(totals, "SkippedObjects"), count(3.0));
    assert_eq!(metric(totals, "FailedObjects"), count(1.0));
    // The burst's last event was at 10:00:20, published at the clock's 10:30:00.
    assert_eq!(metric(totals, "AlertLagSeconds"), Some(("Seconds".to_owned(), 1_780.0)));
    // Then one document per detector that alerted, and per skip reason.
    let by = |dimension: &str| -> Vec<(String, Measured, Measured)> {
        docs.iter()
            .filter(|d| d.0.iter().any(|(n, _)| n == dimension))
            .map(|d| {
                let name = d.0[0].1.clone();
                let first = if dimension == "reason" { "SkippedObjects" } else { "Alerts" };
                (name, metric(d, first), metric(d, "AlertLagSeconds"))
            })
            .collect()
    };
    let seconds = |v: f64| Some(("Seconds".to_owned(), v));
    assert_eq!(
        by("detector"),
        [
            ("repeated_failures".to_owned(), count(1.0), seconds(1_780.0)),
            ("unreadable_input".to_owned(), count(1.0), seconds(0.0))
        ]
    );
    assert_eq!(
        by("reason"),
        [("cloudtrail_digest".to_owned(), count(1.0), None), ("not_a_cloudtrail_log".to_owned(), count(2.0), None)]
    );
    assert_eq!(docs.len(), 5, "{lines:#?}");
}

#[tokio::test(start_paused = true)]
async fn a_deadline_that_has_passed_before_the_start_is_no_time_of_day_and_is_ignored() {
    // `cargo lambda watch` sends its timeout (600000 ms) where Lambda sends the epoch time.
    let k = key("20261005T1005Z_a");
    let h = handler(Objects::with(&[(&k, burst_log("e"))]), Memory::default(), Sink::default())
        .with_clock(Arc::new(FixedClock));
    let not_a_time = DateTime::<Utc>::from(std::time::UNIX_EPOCH + Duration::from_millis(600_000));
    let summary = h.handle_until(event(&[&k]), Some(not_a_time)).await.map_err(|e| e.to_string());
    assert_eq!(summary.map(|s| s["processed"].clone()), Ok(json!(1)));
    assert_eq!(published(&h), ["repeated_failures"]);
}

#[tokio::test]
async fn suppressed_alerts_are_not_published_but_counted_per_rule_and_keep_their_cooldown() {
    let rules = r#"[{"reason": "load test", "principal": "arn:aws:iam::*:user/loadtest"}, {"reason": "unused", "detector": "mfa_missing"}]"#;
    let config = Config::from_env_lookup(|name| (name == "ROLEWATCH_SUPPRESS").then(|| rules.to_owned())).unwrap();
    let (a, b, c) = (key("20261005T1005Z_a"), key("20261005T1005Z_b"), key("20261005T1010Z_c"));
    let objects = Objects::with(&[
        (&a, log(&burst_by("loadtest", "l"))),
        (&b, log(&burst_by("guesser", "g"))),
        (&c, log(&burst_by("loadtest", "m"))),
    ]);
    let h = Handler::new(objects, Memory::default(), Sink::default(), config);
    let summary = h.handle(event(&[&a, &b])).await.map_err(|e| e.to_string()).unwrap();
    assert_eq!(published(&h), ["repeated_failures"]);
    assert_eq!(alerts(&h)[0].principal, format!("arn:aws:iam::{ACCOUNT}:user/guesser"));
    assert_eq!((summary["alerts"].clone(), summary["suppressed"].clone()), (json!(1), json!(1)));
    assert_eq!(
        summary["suppressed_by_rule"],
        json!([{"rule": 1, "reason": "load test", "alerts": 1}, {"rule": 2, "reason": "unused", "alerts": 0}])
    );
    // The next invocation, within the cooldown the suppressed alert started
    // (saved with the state): neither published nor counted again.
    let summary = h.handle(event(&[&c])).await.map_err(|e| e.to_string()).unwrap();
    assert_eq!((summary["alerts"].clone(), summary["suppressed"].clone()), (json!(0), json!(0)));
    assert_eq!(published(&h).len(), 1);
}
