//! One invocation, start to end: decode the trigger, group its objects by
//! account, bring each account up to date under its lease (`account.rs`,
//! streaming each object with `object_stream.rs`), and report
//! (`report.rs`).
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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use chrono::{DateTime, Utc};
use rolewatch::cloudtrail::{account_from_key, classify_key, InputKind, InputLimits};
use rolewatch::config::Config;
use rolewatch::ingest::CHUNK_EVENTS;
use serde_json::Value;
use tracing::{error, info, warn};

use crate::metrics::emf_lines;
use crate::ports::{AccountStateStore, AlertSink, Clock, ObjectSource, SystemClock};
use crate::report::{log_summary, AccountError, FailureCause, InvocationError, InvocationSummary, ObjectFailure};
use crate::triggers::{parse_invocation, Invocation, ObjectRef, TriggerKind};

/// The shard for log keys that name no account (not under `AWSLogs/`).
pub const UNKNOWN_ACCOUNT: &str = "unknown";

/// Kept back from the invocation's deadline: releasing the lease held (one
/// PUT), logging and answering. Lease waits and save retries end this long
/// before Lambda would stop the function.
pub const DEADLINE_RESERVE: Duration = Duration::from_secs(5);

/// The function: the engine's configuration and the three capabilities.
pub struct Handler<S, R, K> {
    pub(crate) source: S,
    pub(crate) store: R,
    pub(crate) sink: K,
    pub(crate) config: Config,
    pub(crate) limits: InputLimits,
    pub(crate) chunk_events: usize,
    pub(crate) clock: Arc<dyn Clock>,
    /// Where the invocation's metric lines go (stdout, for CloudWatch).
    pub(crate) metrics_out: Arc<MetricsOut>,
}

/// Takes each EMF line of an invocation.
pub type MetricsOut = dyn Fn(&str) + Send + Sync;

/// Each line on stdout, whole, as CloudWatch Logs expects an EMF document.
fn metrics_to_stdout(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // A closed stdout loses a metric, never the invocation.
    let _ = writeln!(out, "{line}");
}

/// A unit of failure reporting: the whole invocation, or one SQS message.
struct Unit {
    message_id: Option<String>,
    objects: Vec<ObjectRef>,
}

impl<S, R, K> Handler<S, R, K>
where
    S: ObjectSource,
    R: AccountStateStore,
    K: AlertSink,
{
    pub fn new(source: S, store: R, sink: K, config: Config) -> Self {
        let limits = config.input.limits();
        Self {
            source,
            store,
            sink,
            config,
            limits,
            chunk_events: CHUNK_EVENTS,
            clock: Arc::new(SystemClock),
            metrics_out: Arc::new(metrics_to_stdout),
        }
    }

    /// Hands the metric lines to `out` instead of stdout.
    pub fn with_metrics_out(mut self, out: Arc<MetricsOut>) -> Self {
        self.metrics_out = out;
        self
    }

    fn emit_metrics(&self, summary: &InvocationSummary) {
        for line in emf_lines(summary, self.clock.now()) {
            (self.metrics_out)(&line);
        }
    }

    /// Reads the time of day from `clock` instead of the system's.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Applies role assumptions `events` at a time instead of
    /// [`CHUNK_EVENTS`] (tests use small chunks to cross their boundaries).
    pub fn with_chunk_events(mut self, events: usize) -> Self {
        self.chunk_events = events.max(1);
        self
    }

    /// Handles one invocation's raw event. SQS batches always answer
    /// `{"batchItemFailures": [...]}` naming only the failed messages;
    /// other triggers answer a [`InvocationSummary`] or fail as a whole.
    pub async fn handle(&self, event: Value) -> Result<Value, InvocationError> {
        self.handle_until(event, None).await
    }

    /// [`Handler::handle`] within the invocation's deadline (Lambda's
    /// `Context::deadline`): lease waits and save retries stop
    /// [`DEADLINE_RESERVE`] before it, the lease held is released, and the
    /// accounts not brought up to date by then are reported failed, so
    /// their objects are retried instead of being cut off mid-way.
    pub async fn handle_until(&self, event: Value, deadline: Option<DateTime<Utc>>) -> Result<Value, InvocationError> {
        let started = Instant::now();
        let now = self.clock.now();
        let stop_at = match deadline {
            Some(deadline) if deadline > now => {
                let left = (deadline - now).to_std().unwrap_or_default();
                Some(tokio::time::Instant::now() + left.saturating_sub(DEADLINE_RESERVE))
            }
            // Lambda never starts an invocation past its deadline: this is no
            // time of day (`cargo lambda watch` sends the timeout, 600000 ms).
            Some(deadline) => {
                warn!(deadline = %deadline.to_rfc3339(), "the invocation's deadline has passed before it started; \
                    running without one (Lambda's own timeout still applies)");
                None
            }
            None => None,
        };
        let invocation = match parse_invocation(&event) {
            Ok(invocation) => invocation,
            Err(err) => {
                error!(error = %err, "cannot understand the invocation event");
                self.emit_metrics(&InvocationSummary { trigger: "unrecognised", ..InvocationSummary::default() });
                return Err(err.into());
            }
        };
        match invocation {
            Invocation::Single { kind, delivery } => {
                let mut summary = InvocationSummary {
                    trigger: kind.as_str(),
                    test_events: delivery.test_events,
                    ignored_events: delivery.ignored_events,
                    ..InvocationSummary::default()
                };
                let units = vec![Unit { message_id: None, objects: delivery.objects }];
                let (failures, _) = self.process(&units, &mut summary, stop_at).await;
                log_summary(&summary, started, None);
                self.emit_metrics(&summary);
                if failures.is_empty() {
                    Ok(serde_json::to_value(&summary).unwrap_or(Value::Null))
                } else {
                    Err(InvocationError::Objects { objects: summary.objects, failures })
                }
            }
            Invocation::SqsBatch { messages } => {
                let mut summary =
                    InvocationSummary { trigger: TriggerKind::Sqs.as_str(), ..InvocationSummary::default() };
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
                let (_, failed_units) = self.process(&units, &mut summary, stop_at).await;
                failed_ids
                    .extend(failed_units.into_iter().filter_map(|i| units.get(i).and_then(|u| u.message_id.clone())));
                log_summary(&summary, started, Some(failed_ids.len()));
                self.emit_metrics(&summary);
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

    /// The accounts whose logs rolewatch reads: those with state, and those
    /// of this invocation's objects. Each account's engine is told of them,
    /// so that a role owner's copy of a call one of them made is not counted
    /// beside the caller's copy (see `Engine::note_accounts_read`). Without
    /// the listing, detection goes on; such a call may then page twice.
    async fn accounts_read(
        &self,
        accounts: &BTreeMap<String, Vec<ObjectRef>>,
        stop_at: Option<tokio::time::Instant>,
    ) -> Vec<String> {
        let mut read = match within(stop_at, self.store.accounts()).await {
            Some(Ok(listed)) => listed,
            Some(Err(e)) => {
                warn!(error = %e, "the accounts with state could not be listed; a cross-account call may be counted twice");
                Vec::new()
            }
            None => Vec::new(),
        };
        read.extend(accounts.keys().filter(|a| a.as_str() != UNKNOWN_ACCOUNT).cloned());
        read.sort_unstable();
        read.dedup();
        read
    }

    /// Processes every object of every unit; returns the failures and the
    /// indexes of the units that hold a failed object.
    async fn process(
        &self,
        units: &[Unit],
        summary: &mut InvocationSummary,
        stop_at: Option<tokio::time::Instant>,
    ) -> (Vec<ObjectFailure>, BTreeSet<usize>) {
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

        let read_accounts = self.accounts_read(&accounts, stop_at).await;

        let mut failures: Vec<ObjectFailure> = Vec::new();
        for (account, objects) in &accounts {
            let started = Instant::now();
            let mut object_failures = BTreeMap::new();
            let deadline = |during| Err((AccountError::Deadline { during }, 0));
            let outcome = if stop_at.is_some_and(|stop_at| tokio::time::Instant::now() >= stop_at) {
                deadline("before this account was started")
            } else {
                // The store gives up by `stop_at` itself; the grace only bounds a store that does not.
                let lease = within(stop_at.map(|s| s + LEASE_GRACE), self.store.acquire_lease(account, stop_at));
                match lease.await {
                    Some(Ok(())) => {
                        let work = self.process_account(
                            account,
                            objects,
                            &read_accounts,
                            summary,
                            &mut object_failures,
                            stop_at,
                        );
                        let outcome =
                            within(stop_at, work).await.unwrap_or_else(|| deadline("while it was brought up to date"));
                        if let Err(e) = self.store.release_lease(account).await {
                            // The lease runs out by itself; the next invocation waits a little longer.
                            warn!(account = %account, error = %e, "lease not released");
                        }
                        outcome
                    }
                    Some(Err(e)) => Err((AccountError::State(e), 0)),
                    None => deadline("while waiting for this account's lease"),
                }
            };
            match outcome {
                Ok(report) => {
                    summary.processed += report.processed;
                    summary.already_processed += report.already_processed;
                    summary.add_suppressed(&self.config.suppress, &report.suppressed);
                    info!(
                        account = %account,
                        objects = objects.len(),
                        processed = report.processed,
                        already_processed = report.already_processed,
                        alerts = report.alerts,
                        suppressed = report.suppressed.iter().sum::<u64>(),
                        attempts = report.attempts,
                        duration_ms = started.elapsed().as_millis() as u64,
                        "account brought up to date"
                    );
                }
                Err((error, alerts)) => {
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
}

/// How long past the deadline a store's lease wait may run before it is
/// cut off (a store that ignores `give_up_at`); within the reserve.
const LEASE_GRACE: Duration = Duration::from_secs(1);

/// `work`'s output, or `None` once `stop_at` has come.
async fn within<F: std::future::Future>(stop_at: Option<tokio::time::Instant>, work: F) -> Option<F::Output> {
    match stop_at {
        Some(stop_at) => tokio::time::timeout_at(stop_at, work).await.ok(),
        None => Some(work.await),
    }
}

#[cfg(test)]
mod tests;
