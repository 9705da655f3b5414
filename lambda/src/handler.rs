//! One invocation, start to end.
//!
//! ```text
//! event -> triggers::parse_invocation -> object refs (skip digests, non-logs, s3:TestEvent)
//!   -> group by account (from the CloudTrail key), per account:
//!        load state (ETag) -> for each object not yet processed: stream it, applying its
//!           role assumptions to the engine in chunks as they arrive, then record it
//!        -> publish new alerts -> conditional save (If-Match / If-None-Match: *)
//!        -> on 412/409: load again, stream the objects again, publish only alerts not yet published
//! ```
//!
//! Memory does not grow with the role assumptions an object holds: no
//! object's events are kept, so a conflict opens the objects again.
//!
//! Nothing is lost: alerts are published before the state that records them
//! is saved, and a publishing failure fails the invocation without saving,
//! so Lambda's retry (and finally the dead-letter queue) still has the
//! object. Duplicates, if a retry re-raises, carry the same `dedup_key`.
//!
//! A failure is confined to what it concerns: an unreadable object fails
//! only its own SQS message (or, for other triggers, the invocation, after
//! every other object was processed), and raises an `unreadable_input`
//! alert; a corrupt state object is copied aside and replaced by an empty
//! state instead of failing every invocation for its account.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use rolewatch::alert::{dedup_key, Alert, Severity};
use rolewatch::cloudtrail::{
    account_from_key, classify_key, read_input_chunked, AssumeRoleEvent, EpochSeconds, InputEvents, InputKind,
    InputLimits,
};
use rolewatch::config::Config;
use rolewatch::engine::Engine;
use rolewatch::state::State;
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;
use tokio_util::io::SyncIoBridge;
use tracing::{debug, error, info, warn};

use crate::ports::{
    AlertSink, LoadedState, ObjectSource, SaveOutcome, SinkError, SourceError, StateError, StateRepo, StateVersion,
};
use crate::triggers::{parse_invocation, Invocation, ObjectRef, TriggerError, TriggerKind};

/// Conditional-write attempts per account before the invocation gives up
/// (and Lambda retries it later).
pub const MAX_STATE_ATTEMPTS: u32 = 10;

/// The shard for log keys that name no account (not under `AWSLogs/`).
pub const UNKNOWN_ACCOUNT: &str = "unknown";

/// Role assumptions applied to the engine at a time from one object, as
/// `rolewatch replay` does: bounds what an object's events take in memory
/// (about 1.3 KB each at peak) whatever the object holds. Detector state
/// carries across chunks as across objects: a burst split by a chunk end
/// raises the same alert, but one already raised when a chunk ends lists
/// only the events up to there (later ones fall in its cooldown).
pub const CHUNK_EVENTS: usize = 4_096;

/// The function: the engine's configuration and the three capabilities.
pub struct Handler<S, R, K> {
    source: S,
    repo: R,
    sink: K,
    config: Config,
    limits: InputLimits,
    chunk_events: usize,
}

/// What an invocation did; returned to the caller for non-SQS triggers and
/// logged for all.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub trigger: &'static str,
    /// Distinct log objects named by the event.
    pub objects: usize,
    /// Objects read and applied now.
    pub processed: usize,
    /// Objects whose state says they were processed before: nothing raised.
    pub already_processed: usize,
    pub records: u64,
    pub role_assumptions: u64,
    pub bad_records: u64,
    /// Alerts published by this invocation (detections and operational).
    pub alerts: usize,
    pub skipped_digests: usize,
    pub skipped_not_logs: usize,
    pub test_events: usize,
    pub ignored_events: usize,
    /// Objects that failed (unreadable, not fetched, or their account failed).
    pub failed: usize,
}

/// The invocation failed; Lambda will retry it (asynchronous invocations)
/// and finally hand it to the dead-letter queue / on-failure destination.
#[derive(Debug, Error)]
pub enum InvocationError {
    #[error("cannot understand the invocation event: {0}")]
    Trigger(#[from] TriggerError),
    #[error("{} of {objects} objects failed: {}", .failures.len(), join(.failures))]
    Objects { objects: usize, failures: Vec<ObjectFailure> },
}

impl InvocationError {
    fn error_type(&self) -> &'static str {
        match self {
            InvocationError::Trigger(_) => "UnrecognisedEvent",
            InvocationError::Objects { .. } => "ObjectsFailed",
        }
    }
}

impl From<InvocationError> for lambda_runtime::Diagnostic {
    fn from(err: InvocationError) -> Self {
        lambda_runtime::Diagnostic { error_type: err.error_type().to_owned(), error_message: err.to_string() }
    }
}

/// One object that failed, and why.
#[derive(Debug, Clone, Error)]
#[error("{object}: {cause}")]
pub struct ObjectFailure {
    pub object: ObjectRef,
    pub cause: FailureCause,
}

#[derive(Debug, Clone, Error)]
pub enum FailureCause {
    /// The object's content is not a readable CloudTrail log (corrupt,
    /// truncated, too large, gone). An `unreadable_input` alert was raised.
    #[error("cannot be read: {0}")]
    Unreadable(String),
    /// The object could not be fetched (permissions, network): nothing was
    /// applied; a retry may succeed.
    #[error("cannot be fetched: {0}")]
    Fetch(String),
    /// The object's account could not be brought up to date.
    #[error("account {account}: {error}")]
    Account { account: String, error: Arc<AccountError> },
}

#[derive(Debug, Error)]
pub enum AccountError {
    #[error("alerts not published, state not advanced: {0}")]
    Publish(#[source] SinkError),
    #[error("{0}")]
    State(#[source] StateError),
    #[error("state kept changing under us ({attempts} conditional writes lost); giving up for this invocation")]
    Contention { attempts: u32 },
}

fn join(failures: &[ObjectFailure]) -> String {
    failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// A unit of failure reporting: the whole invocation, or one SQS message.
struct Unit {
    message_id: Option<String>,
    objects: Vec<ObjectRef>,
}

/// How streaming one object through the engine went.
enum Streamed {
    /// The engine comes back, with the alerts the object's events raised.
    Applied { engine: Box<Engine>, outcome: Outcome, alerts: Vec<Alert> },
    /// The attempt is void: chunks of the object were applied when its byte
    /// stream broke (the content may be fine), or the reader task died with
    /// the engine. Nothing of this attempt may be saved or published.
    Void(String),
}

enum Outcome {
    /// Read to its end: every event applied and the object recorded.
    Read(InputEvents),
    /// Permanent: the content cannot be read. What was read before the
    /// failure (`partial`) was applied, and the object not recorded.
    Unreadable { reason: String, partial: InputEvents },
    /// Possibly transient: nothing of the object reached the engine.
    Fetch(String),
}

/// An object's role assumptions applied in chunks on the reader's thread.
struct Chunks {
    engine: Engine,
    alerts: Vec<Alert>,
    newest: Option<EpochSeconds>,
    applied: bool,
}

impl Chunks {
    fn apply(&mut self, chunk: Vec<AssumeRoleEvent>) {
        self.applied = true;
        self.newest = self.newest.max(chunk.iter().map(|e| e.event_time).max());
        self.alerts.extend(self.engine.apply_unrecorded(&chunk));
    }
}

/// An object applied in an attempt, logged once that attempt's state is saved.
struct Processed<'o> {
    object: &'o ObjectRef,
    records: u64,
    role_assumptions: u64,
    alerts: usize,
}

#[derive(Default)]
struct AccountReport {
    processed: usize,
    already_processed: usize,
    alerts: usize,
    attempts: u32,
}

impl<S, R, K> Handler<S, R, K>
where
    S: ObjectSource,
    R: StateRepo,
    K: AlertSink,
{
    pub fn new(source: S, repo: R, sink: K, config: Config) -> Self {
        let limits = config.input.limits();
        Self { source, repo, sink, config, limits, chunk_events: CHUNK_EVENTS }
    }

    /// Applies role assumptions `events` at a time instead of
    /// [`CHUNK_EVENTS`] (tests use small chunks to cross their boundaries).
    pub fn with_chunk_events(mut self, events: usize) -> Self {
        self.chunk_events = events.max(1);
        self
    }

    /// Handles one invocation's raw event. SQS batches always answer
    /// `{"batchItemFailures": [...]}` naming only the failed messages;
    /// other triggers answer a [`Summary`] or fail as a whole.
    pub async fn handle(&self, event: Value) -> Result<Value, InvocationError> {
        let started = Instant::now();
        let invocation = match parse_invocation(&event) {
            Ok(invocation) => invocation,
            Err(err) => {
                error!(error = %err, "cannot understand the invocation event");
                return Err(err.into());
            }
        };
        match invocation {
            Invocation::Single { kind, delivery } => {
                let mut summary = Summary {
                    trigger: kind.as_str(),
                    test_events: delivery.test_events,
                    ignored_events: delivery.ignored_events,
                    ..Summary::default()
                };
                let units = vec![Unit { message_id: None, objects: delivery.objects }];
                let (failures, _) = self.process(&units, &mut summary).await;
                log_summary(&summary, started, None);
                if failures.is_empty() {
                    Ok(serde_json::to_value(&summary).unwrap_or(Value::Null))
                } else {
                    Err(InvocationError::Objects { objects: summary.objects, failures })
                }
            }
            Invocation::SqsBatch { messages } => {
                let mut summary = Summary { trigger: TriggerKind::Sqs.as_str(), ..Summary::default() };
                let mut failed_ids: Vec<String> = Vec::new();
                let mut units = Vec::new();
                for message in messages {
                    match message.delivery {
                        Ok(delivery) => {
                            summary.test_events += delivery.test_events;
                            summary.ignored_events += delivery.ignored_events;
                            units.push(Unit { message_id: Some(message.message_id), objects: delivery.objects });
                        }
                        Err(err) => {
                            error!(message_id = %message.message_id, error = %err,
                                "SQS message is not a delivery we understand; reporting it failed");
                            failed_ids.push(message.message_id);
                        }
                    }
                }
                let (_, failed_units) = self.process(&units, &mut summary).await;
                failed_ids
                    .extend(failed_units.into_iter().filter_map(|i| units.get(i).and_then(|u| u.message_id.clone())));
                log_summary(&summary, started, Some(failed_ids.len()));
                let response = SqsBatchResponse {
                    batch_item_failures: failed_ids
                        .into_iter()
                        .map(|item_identifier| BatchItemFailure { item_identifier })
                        .collect(),
                };
                Ok(serde_json::to_value(&response).unwrap_or(Value::Null))
            }
        }
    }

    /// Processes every object of every unit; returns the failures and the
    /// indexes of the units that hold a failed object.
    async fn process(&self, units: &[Unit], summary: &mut Summary) -> (Vec<ObjectFailure>, BTreeSet<usize>) {
        // Distinct log objects, each with the units that name it, grouped
        // by account; within an account in key order (time order).
        let mut holders: BTreeMap<ObjectRef, Vec<usize>> = BTreeMap::new();
        for (index, unit) in units.iter().enumerate() {
            for object in &unit.objects {
                match classify_key(&object.key) {
                    InputKind::LogFile => holders.entry(object.clone()).or_default().push(index),
                    InputKind::Digest => summary.skipped_digests += 1,
                    InputKind::NotALog => summary.skipped_not_logs += 1,
                }
            }
        }
        summary.objects = holders.len();
        let mut accounts: BTreeMap<String, Vec<ObjectRef>> = BTreeMap::new();
        for object in holders.keys() {
            let account = account_from_key(&object.key).unwrap_or_else(|| UNKNOWN_ACCOUNT.to_owned());
            accounts.entry(account).or_default().push(object.clone());
        }

        let mut failures: Vec<ObjectFailure> = Vec::new();
        for (account, objects) in &accounts {
            let started = Instant::now();
            let mut object_failures = BTreeMap::new();
            let outcome = match self.repo.acquire_lease(account).await {
                Ok(()) => {
                    let outcome = self.process_account(account, objects, summary, &mut object_failures).await;
                    if let Err(e) = self.repo.release_lease(account).await {
                        // The lease runs out by itself; the next invocation waits a little longer.
                        warn!(account = %account, error = %e, "lease not released");
                    }
                    outcome
                }
                Err(e) => Err((AccountError::State(e), 0)),
            };
            match outcome {
                Ok(report) => {
                    summary.processed += report.processed;
                    summary.already_processed += report.already_processed;
                    summary.alerts += report.alerts;
                    info!(
                        account = %account,
                        objects = objects.len(),
                        processed = report.processed,
                        already_processed = report.already_processed,
                        alerts = report.alerts,
                        attempts = report.attempts,
                        duration_ms = started.elapsed().as_millis() as u64,
                        "account brought up to date"
                    );
                }
                Err((error, alerts)) => {
                    summary.alerts += alerts;
                    error!(
                        account = %account,
                        objects = objects.len(),
                        alerts,
                        error = %error,
                        duration_ms = started.elapsed().as_millis() as u64,
                        "account not brought up to date; its objects are reported failed"
                    );
                    let error = Arc::new(error);
                    for object in objects {
                        object_failures.entry(object.clone()).or_insert_with(|| FailureCause::Account {
                            account: account.clone(),
                            error: Arc::clone(&error),
                        });
                    }
                }
            }
            failures.extend(object_failures.into_iter().map(|(object, cause)| ObjectFailure { object, cause }));
        }

        summary.failed = failures.len();
        let failed_units =
            failures.iter().flat_map(|f| holders.get(&f.object).into_iter().flatten().copied()).collect();
        (failures, failed_units)
    }

    /// Loads the account's state, streams every object not yet processed
    /// through the engine, publishes what that raised and saves, re-trying
    /// on write conflicts. On failure also returns how many alerts were
    /// published before it.
    async fn process_account(
        &self,
        account: &str,
        objects: &[ObjectRef],
        summary: &mut Summary,
        failures: &mut BTreeMap<ObjectRef, FailureCause>,
    ) -> Result<AccountReport, (AccountError, usize)> {
        // An alert's identity within the invocation: its key and when its
        // incident started. The key alone is not enough: the engine raises
        // the same key again once the cooldown has passed.
        let identity = |a: &Alert| format!("{}|{}", a.dedup_key, a.first_event_time);
        let mut published: HashSet<String> = HashSet::new();
        let fail = |e: AccountError, published: &HashSet<String>| (e, published.len());
        let account_id = (account != UNKNOWN_ACCOUNT).then_some(account);
        // Operational alerts carry this time in every attempt: it is part of
        // their identity, so a later attempt does not publish them again.
        let detected_at = now();
        // Objects that could not be fetched are reported failed and not
        // opened again in this invocation (Lambda's retry does): each voids
        // at most one attempt.
        let mut unfetched: BTreeMap<ObjectRef, String> = BTreeMap::new();
        // Objects already counted in the summary and logged as read, so one
        // streamed again after a conflict is not counted twice.
        let mut counted: HashSet<ObjectRef> = HashSet::new();
        // A corrupt state copied aside, by version: loading it again after a
        // void attempt neither copies it twice nor reports a second reset.
        let mut quarantined: Option<(StateVersion, String)> = None;
        let (mut attempt, mut writes_lost) = (0u32, 0u32);

        'attempts: loop {
            attempt += 1;
            // Each attempt streams the objects again, so it decides afresh how each went.
            failures.clear();
            let loaded = match self.repo.load(account).await {
                Ok(loaded) => loaded,
                Err(e) => return Err(fail(AccountError::State(e), &published)),
            };
            let mut changed = false;
            let mut pending: Vec<Alert> = Vec::new();
            let (state, version) = match loaded {
                LoadedState::Missing => (State::default(), None),
                LoadedState::Found { state, version } => (*state, Some(version)),
                LoadedState::Corrupt { version, raw, reason } => {
                    let location = self.repo.location(account);
                    let moved_to = match &quarantined {
                        Some((copied, moved_to)) if *copied == version => moved_to.clone(),
                        _ => {
                            error!(account = %account, state = %location, reason = %reason,
                                "detector state is corrupt; copying it aside and starting from empty state");
                            let moved_to = match self.repo.quarantine(account, &raw).await {
                                Ok(moved_to) => moved_to,
                                Err(e) => return Err(fail(AccountError::State(e), &published)),
                            };
                            quarantined = Some((version.clone(), moved_to.clone()));
                            moved_to
                        }
                    };
                    pending.push(state_reset_alert(account, &location, &moved_to, &reason, detected_at));
                    changed = true;
                    (State::default(), Some(version))
                }
            };

            let mut engine = Engine::new(&self.config, state);
            let mut report = AccountReport { attempts: attempt, ..AccountReport::default() };
            let mut processed: Vec<Processed<'_>> = Vec::new();
            for object in objects {
                if let Some(reason) = unfetched.get(object) {
                    failures.insert(object.clone(), FailureCause::Fetch(reason.clone()));
                    continue;
                }
                let input_id = object.uri();
                if engine.is_processed(&input_id) {
                    report.already_processed += 1;
                    continue;
                }
                let started = Instant::now();
                let streamed = self.stream(object, &input_id, engine).await;
                if counted.insert(object.clone()) {
                    log_read(object, account, &streamed, started.elapsed(), summary);
                } else {
                    debug!(bucket = %object.bucket, key = %object.key, %account, attempt, "object streamed again");
                }
                let (back, outcome, alerts) = match streamed {
                    Streamed::Applied { engine, outcome, alerts } => (engine, outcome, alerts),
                    Streamed::Void(reason) => {
                        // Chunks of an object that may well be fine are in this
                        // engine. Saving them unrecorded, as for an unreadable
                        // object, would publish their alerts now and have the
                        // retry (which reads the object from its start) apply them
                        // again, leaning on every detector and the cooldown to take
                        // a repeated event as once. Instead nothing of this attempt
                        // is published or saved, and the others are applied again
                        // without this object: the saved state is as if it had not
                        // been named, so the retry processes it like a first
                        // delivery and raises its alerts once. The cost, reading the
                        // others again, arises only when a stream breaks after its
                        // first chunk.
                        warn!(bucket = %object.bucket, key = %object.key, %account, attempt, error = %reason,
                            "object broke off after part of it was applied; applying the others again without it");
                        unfetched.insert(object.clone(), reason);
                        continue 'attempts;
                    }
                };
                engine = *back;
                match outcome {
                    Outcome::Read(read) => {
                        report.processed += 1;
                        changed = true;
                        processed.push(Processed {
                            object,
                            records: read.records,
                            role_assumptions: read.role_assumptions,
                            alerts: alerts.len(),
                        });
                        pending.extend(alerts);
                    }
                    Outcome::Unreadable { reason, .. } => {
                        // What could be read still counts (it was applied), but
                        // the object is not recorded: a repaired copy is read in full.
                        changed = true;
                        pending.extend(alerts);
                        // Once per object and reason while state remembers it, not
                        // once per retry or redelivery.
                        pending.extend(engine.raise_once(Alert::unreadable_input(
                            &input_id,
                            account_id,
                            &reason,
                            detected_at,
                        )));
                        failures.insert(object.clone(), FailureCause::Unreadable(reason));
                    }
                    Outcome::Fetch(reason) => {
                        unfetched.insert(object.clone(), reason.clone());
                        failures.insert(object.clone(), FailureCause::Fetch(reason));
                    }
                }
            }
            let state = engine.into_state();

            // Publish before saving: a crash or failure in between re-raises
            // on retry (same dedup_key) instead of losing the alert.
            let mut fresh: Vec<Alert> = Vec::new();
            for alert in pending {
                if !published.contains(&identity(&alert))
                    && !fresh.iter().any(|a: &Alert| identity(a) == identity(&alert))
                {
                    fresh.push(alert);
                }
            }
            if !fresh.is_empty() {
                if let Err(e) = self.sink.publish(&fresh).await {
                    return Err(fail(AccountError::Publish(e), &published));
                }
                for alert in &fresh {
                    info!(account = %account, detector = %alert.detector, severity = alert.severity.as_str(),
                        dedup_key = %alert.dedup_key, "alert published");
                }
                published.extend(fresh.iter().map(identity));
            }
            report.alerts = published.len();

            if !changed {
                return Ok(report);
            }
            match self.repo.save(account, &state, version.as_ref()).await {
                Ok(SaveOutcome::Saved(_)) => {
                    // One line per object with what it raised, for Logs
                    // Insights; only for the attempt whose state was saved.
                    for p in &processed {
                        info!(bucket = %p.object.bucket, key = %p.object.key, %account, records = p.records,
                            role_assumptions = p.role_assumptions, alerts = p.alerts, attempt, "object processed");
                    }
                    return Ok(report);
                }
                Ok(SaveOutcome::Conflict) => {
                    writes_lost += 1;
                    if writes_lost >= MAX_STATE_ATTEMPTS {
                        return Err((AccountError::Contention { attempts: writes_lost }, published.len()));
                    }
                    warn!(account = %account, attempt,
                        "state was changed by a concurrent invocation; loading it again and streaming the objects again");
                    tokio::time::sleep(backoff(writes_lost)).await;
                }
                Err(e) => return Err(fail(AccountError::State(e), &published)),
            }
        }
    }

    /// Streams one object through `engine` on a blocking thread: the body is
    /// decompressed and walked as it arrives and its role assumptions are
    /// applied in chunks, so memory stays flat however many it holds. The
    /// object is recorded as processed only once all of it was applied.
    async fn stream(&self, object: &ObjectRef, input_id: &str, engine: Engine) -> Streamed {
        let reader = match self.source.open(object).await {
            Ok(reader) => reader,
            Err(SourceError::NotFound) => {
                let reason = "the object does not exist (deleted before it was read?)".to_owned();
                let outcome = Outcome::Unreadable { reason, partial: InputEvents::default() };
                return Streamed::Applied { engine: Box::new(engine), outcome, alerts: Vec::new() };
            }
            Err(SourceError::Other(reason)) => {
                let outcome = Outcome::Fetch(reason);
                return Streamed::Applied { engine: Box::new(engine), outcome, alerts: Vec::new() };
            }
        };
        let (limits, chunk_events, input_id) = (self.limits, self.chunk_events, input_id.to_owned());
        let bridge = SyncIoBridge::new(reader);
        let joined = tokio::task::spawn_blocking(move || {
            let mut tracked = TransportTracker { inner: bridge, error: None };
            let mut chunks = Chunks { engine, alerts: Vec::new(), newest: None, applied: false };
            let result = read_input_chunked(&mut tracked, &limits, chunk_events, &mut |chunk| chunks.apply(chunk));
            let outcome = match (result, tracked.error) {
                // The body stream broke: the content may be fine. The events
                // of the last, incomplete chunk are not applied.
                (Err(_), Some(transport)) if chunks.applied => return Streamed::Void(transport),
                (Err(_), Some(transport)) => Outcome::Fetch(transport),
                (Err(failure), None) => {
                    let mut partial = failure.partial;
                    chunks.apply(std::mem::take(&mut partial.events));
                    Outcome::Unreadable { reason: failure.error.to_string(), partial }
                }
                (Ok(mut read), _) => {
                    chunks.apply(std::mem::take(&mut read.events));
                    chunks.engine.record_input(&input_id, chunks.newest);
                    Outcome::Read(read)
                }
            };
            Streamed::Applied { engine: Box::new(chunks.engine), outcome, alerts: chunks.alerts }
        })
        .await;
        // The engine went down with the task: only a fresh attempt can go on.
        joined.unwrap_or_else(|e| Streamed::Void(format!("reader task failed: {e}")))
    }
}

/// Logs how reading an object went and counts it in the summary; called
/// the first time the object is read in an invocation only.
fn log_read(object: &ObjectRef, account: &str, streamed: &Streamed, elapsed: Duration, summary: &mut Summary) {
    let duration_ms = elapsed.as_millis() as u64;
    let (bucket, key) = (&object.bucket, &object.key);
    match streamed {
        Streamed::Applied { outcome: Outcome::Read(input) | Outcome::Unreadable { partial: input, .. }, .. } => {
            summary.records += input.records;
            summary.role_assumptions += input.role_assumptions;
            summary.bad_records += input.bad_record_count;
            if let Streamed::Applied { outcome: Outcome::Unreadable { reason, .. }, .. } = streamed {
                error!(%bucket, %key, %account, records = input.records,
                    role_assumptions = input.role_assumptions, duration_ms, error = %reason,
                    "object cannot be read; what was read before the failure is applied");
            } else {
                info!(%bucket, %key, %account, records = input.records,
                    role_assumptions = input.role_assumptions, bad_records = input.bad_record_count,
                    duration_ms, "object read");
            }
            for problem in input.bad_records.iter().take(5) {
                warn!(%bucket, %key, %account, error = %problem, "record skipped");
            }
        }
        Streamed::Applied { outcome: Outcome::Fetch(reason), .. } | Streamed::Void(reason) => {
            error!(%bucket, %key, %account, duration_ms, error = %reason,
                "object cannot be fetched; it will be retried");
        }
    }
}

/// Remembers the first error of the underlying byte stream, to tell a
/// broken connection (retry) from a broken object (alert).
struct TransportTracker<R> {
    inner: R,
    error: Option<String>,
}

impl<R: Read> Read for TransportTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if self.error.is_none() {
                self.error = Some(format!("reading the object failed: {e}"));
            }
        })
    }
}

/// An operational alert: the account's state was unreadable and was reset.
fn state_reset_alert(
    account: &str,
    location: &str,
    moved_to: &str,
    reason: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Alert {
    let at = at.timestamp();
    Alert::new(
        "state_reset",
        Severity::Medium,
        "rolewatch detector state was corrupt and has been reset",
        &format!(
            "The detector state {location} could not be read ({reason}). It was copied to {moved_to} \
             and detection for account {account} restarted from empty state: source-IP baselines and \
             habitual session lengths are relearned, so expect some quiet or noisy days. \
             Inspect the copy to find out what wrote it."
        ),
        dedup_key("state_reset", &[location, moved_to]),
        account,
        "rolewatch",
        None,
        None,
        "",
        at,
        at,
    )
    .with_detail("state", location)
    .with_detail("quarantined_to", moved_to)
    .with_detail("reason", reason)
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::<chrono::Utc>::from(SystemTime::now())
}

/// Exponential backoff with jitter, so racing invocations spread out.
fn backoff(attempt: u32) -> Duration {
    let base = 20u64 << attempt.min(5);
    let nanos =
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| u64::from(d.subsec_nanos())).unwrap_or(0);
    Duration::from_millis(base / 2 + nanos % base.max(1))
}

fn log_summary(summary: &Summary, started: Instant, failed_messages: Option<usize>) {
    let duration_ms = started.elapsed().as_millis() as u64;
    let s = summary;
    // One field list for both levels: a failed invocation warns, others inform.
    macro_rules! finished {
        ($level:ident, $($rest:tt)*) => {
            $level!(
                trigger = s.trigger,
                objects = s.objects,
                processed = s.processed,
                already_processed = s.already_processed,
                records = s.records,
                role_assumptions = s.role_assumptions,
                bad_records = s.bad_records,
                alerts = s.alerts,
                skipped_digests = s.skipped_digests,
                skipped_not_logs = s.skipped_not_logs,
                test_events = s.test_events,
                ignored_events = s.ignored_events,
                failed = s.failed,
                duration_ms,
                $($rest)*
            )
        };
    }
    if s.failed > 0 || failed_messages.unwrap_or(0) > 0 {
        finished!(warn, failed_messages, "invocation finished with failures");
    } else {
        finished!(info, "invocation finished");
    }
}

#[cfg(test)]
mod tests {
    //! The flow with in-memory capabilities: the orderings and failure paths
    //! that are awkward to provoke against a server.

    use std::collections::HashMap;
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;
    use crate::ports::{ObjectReader, StateVersion};

    const ACCOUNT: &str = "111122223333";

    fn key(name: &str) -> String {
        format!("AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/10/05/{ACCOUNT}_CloudTrail_us-east-1_{name}.json")
    }

    fn denied(id: &str, second: u32) -> Value {
        denied_by("guesser", id, second)
    }

    fn denied_by(user: &str, id: &str, second: u32) -> Value {
        json!({"eventVersion": "1.08", "eventSource": "sts.amazonaws.com", "eventName": "AssumeRole",
            "eventTime": format!("2026-10-05T10:00:{second:02}Z"), "eventID": id, "awsRegion": "us-east-1",
            "sourceIPAddress": "198.18.9.20", "errorCode": "AccessDenied", "requestParameters": null,
            "recipientAccountId": ACCOUNT,
            "userIdentity": {"type": "IAMUser", "arn": format!("arn:aws:iam::{ACCOUNT}:user/{user}"), "accountId": ACCOUNT}})
    }

    fn granted(id: &str, second: u32) -> Value {
        let mut record = denied_by("deployer", id, second);
        record["errorCode"] = Value::Null;
        record["sourceIPAddress"] = json!("192.0.2.44");
        record["requestParameters"] =
            json!({"roleArn": format!("arn:aws:iam::{ACCOUNT}:role/deploy"), "roleSessionName": "deployer"});
        record
    }

    fn log(records: &[Value]) -> Vec<u8> {
        json!({ "Records": records }).to_string().into_bytes()
    }

    /// Five failures by `user` within 20 s: one repeated_failures alert.
    fn burst_by(user: &str, prefix: &str) -> Vec<Value> {
        (0..5).map(|i| denied_by(user, &format!("{prefix}{i}"), i * 5)).collect()
    }

    fn burst_log(prefix: &str) -> Vec<u8> {
        let records: Vec<Value> = (0..5).map(|i| denied(&format!("{prefix}{i}"), i * 5)).collect();
        json!({ "Records": records }).to_string().into_bytes()
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
                let mut opens = self.opens.lock().map_err(|_| SourceError::Other("poisoned".into()))?;
                let count = opens.entry(object.key.clone()).or_default();
                *count += 1;
                *count
            };
            if self.refused_from.get(&object.key).is_some_and(|from| opens >= *from) {
                return Err(SourceError::Other("GetObject: 503 SlowDown".into()));
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

    impl StateRepo for Memory {
        async fn load(&self, _: &str) -> Result<LoadedState, StateError> {
            let stored = self.stored.lock().map_err(|_| poisoned())?.clone();
            match stored {
                None => Ok(LoadedState::Missing),
                Some((bytes, v)) => Ok(LoadedState::from_bytes(bytes, StateVersion(v.to_string()))),
            }
        }

        async fn save(
            &self,
            _: &str,
            state: &State,
            expected: Option<&StateVersion>,
        ) -> Result<SaveOutcome, StateError> {
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

        async fn quarantine(&self, account: &str, _: &[u8]) -> Result<String, StateError> {
            Ok(format!("memory://quarantine/{account}"))
        }

        fn location(&self, account: &str) -> String {
            format!("memory://{account}")
        }
    }

    fn poisoned() -> StateError {
        StateError { operation: "lock", location: "memory".into(), reason: "poisoned".into() }
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
        assert!(h.repo.stored.lock().map(|s| s.is_none()).unwrap_or(false), "state must not be saved");
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
        let stored = h.repo.stored.lock().ok().and_then(|s| s.clone()).map(|(b, _)| b).unwrap_or_default();
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

    #[tokio::test]
    async fn a_state_of_another_format_is_set_aside_not_a_crash_loop() {
        let k = key("20261005T1005Z_a");
        let objects = Objects { objects: HashMap::from([(k.clone(), burst_log("e"))]), ..Objects::default() };
        let repo = Memory::default();
        if let Ok(mut stored) = repo.stored.lock() {
            *stored = Some((br#"{"format": 99}"#.to_vec(), 1));
        }
        let h = handler(objects, repo, Sink::default());
        assert!(h.handle(event(&[&k])).await.is_ok(), "the account keeps working");
        let mut got = published(&h);
        got.sort();
        assert_eq!(got, ["repeated_failures", "state_reset"]);
        let kept_aside = h
            .sink
            .published
            .lock()
            .map(|p| p.iter().any(|a| a.detector == "state_reset" && a.details.get("quarantined_to").is_some()));
        assert_eq!(kept_aside.ok(), Some(true), "the other version's state is kept aside and reported");
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
        assert_eq!(inputs(&h.repo), [format!("s3://trail/{k}")]);
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
            handler(objects, Memory::default(), Sink::default()).with_chunk_events(chunk_events)
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
        assert_eq!(inputs(&chunked.repo), [format!("s3://trail/{k}")], "recorded once all chunks were applied");
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
        assert!(inputs(&h.repo).is_empty(), "not recorded: a repaired copy is read in full");
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
        assert!(
            err.contains(&format!("s3://trail/{b}: cannot be fetched")) && err.contains("connection reset"),
            "{err}"
        );
        assert!(!err.contains(&a) && !err.contains(&c), "only the broken object fails: {err}");
        let principals = |alerts: Vec<Alert>| alerts.into_iter().map(|a| a.principal).collect::<Vec<_>>();
        let user = |name: &str| format!("arn:aws:iam::{ACCOUNT}:user/{name}");
        assert_eq!(principals(alerts(&h)), [user("alice"), user("carol")], "each once; nothing of bob's yet");
        let state = h.repo.state();
        assert_eq!(state.processed_inputs(), [format!("s3://trail/{a}"), format!("s3://trail/{c}")]);
        assert!(!state.repeated_failures.by_principal.contains_key(&user("bob")), "b's applied chunk was not saved");

        // Lambda's retry, the connection fine this time.
        let retry = handler(Objects::with(&bytes), Memory::after(&h.repo), Sink::default());
        assert!(retry.handle(event(&[&a, &b, &c])).await.is_ok());
        assert_eq!(principals(alerts(&retry)), [user("bob")], "b's burst raised once, by the retry");
        assert_eq!(inputs(&retry.repo).len(), 3);
    }

    #[tokio::test]
    async fn an_object_that_cannot_be_opened_again_after_a_conflict_fails_and_is_not_dropped() {
        let k = key("20261005T1005Z_a");
        let objects =
            Objects { refused_from: HashMap::from([(k.clone(), 2)]), ..Objects::with(&[(&k, burst_log("e"))]) };
        let repo = Memory { conflicts: Mutex::new(1), ..Memory::default() };
        let h = handler(objects, repo, Sink::default());
        let err = h.handle(event(&[&k])).await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(&format!("s3://trail/{k}: cannot be fetched")) && err.contains("503"), "{err}");
        assert_eq!(published(&h), ["repeated_failures"], "published by the first attempt");
        assert!(inputs(&h.repo).is_empty(), "not recorded as processed");

        // Lambda's retry reads it: the alert again, same dedup_key (at least once).
        let retry = handler(Objects::with(&[(&k, burst_log("e"))]), Memory::after(&h.repo), Sink::default());
        assert!(retry.handle(event(&[&k])).await.is_ok());
        let keys = |alerts: Vec<Alert>| alerts.into_iter().map(|a| a.dedup_key).collect::<Vec<_>>();
        assert_eq!(keys(alerts(&retry)), keys(alerts(&h)));
        assert_eq!(inputs(&retry.repo), [format!("s3://trail/{k}")]);
    }

    #[tokio::test]
    async fn an_unreadable_object_pages_once_when_a_conflict_makes_the_attempts_a_second_apart() {
        let k = key("20261005T1005Z_cut");
        let mut bytes = burst_log("e");
        bytes.truncate(bytes.len() / 2);
        let repo =
            Memory { conflicts: Mutex::new(1), conflict_pause: Duration::from_millis(1100), ..Memory::default() };
        let h = handler(Objects::with(&[(&k, bytes)]), repo, Sink::default());
        assert!(h.handle(event(&[&k])).await.is_err());
        assert_eq!(published(&h), ["unreadable_input"]);
    }
}
