//! What an invocation reports: its summary, its errors and why each object
//! failed, and the log lines that CloudWatch Logs Insights queries rely on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rolewatch::alert::Alert;
use rolewatch::cloudtrail::ReadError;
use serde::Serialize;
use thiserror::Error;
use tracing::{error, info, warn};

use crate::object_stream::{Outcome, Streamed};
use crate::ports::{SinkError, SourceError, StoreError};
use crate::triggers::{ObjectRef, TriggerError};

/// What an invocation did; returned to the caller for non-SQS triggers and
/// logged for all.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct InvocationSummary {
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
    /// Alerts `[[suppress]]` rules (`ROLEWATCH_SUPPRESS`) held back, not published.
    pub suppressed: u64,
    /// Per rule, in the order written, when there are rules.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suppressed_by_rule: Vec<SuppressedByRule>,
    pub skipped_digests: usize,
    pub skipped_not_logs: usize,
    pub test_events: usize,
    pub ignored_events: usize,
    /// Objects that failed (unreadable, not fetched, or their account failed).
    pub failed: usize,
    /// The alerts published, by detector (for the metrics).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub alerts_by_detector: BTreeMap<String, DetectorAlerts>,
}

/// One detector's alerts in an invocation.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct DetectorAlerts {
    pub alerts: usize,
    /// The longest time from an alert's last event to its publication.
    pub max_lag_seconds: i64,
}

impl InvocationSummary {
    /// Counts alerts just published at `at`.
    pub(crate) fn count_published(&mut self, alerts: &[Alert], at: DateTime<Utc>) {
        self.alerts += alerts.len();
        for alert in alerts {
            let entry = self.alerts_by_detector.entry(alert.detector.clone()).or_default();
            entry.alerts += 1;
            // An alert's time that does not parse is its own problem, not a lag.
            let lag = DateTime::parse_from_rfc3339(&alert.last_event_time)
                .map(|event| (at - event.with_timezone(&Utc)).num_seconds().max(0))
                .unwrap_or(0);
            entry.max_lag_seconds = entry.max_lag_seconds.max(lag);
        }
    }
}

/// What one `[[suppress]]` rule held back in an invocation.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct SuppressedByRule {
    /// Numbered from 1, as configuration errors number rules.
    pub rule: usize,
    pub reason: String,
    pub alerts: u64,
}

impl InvocationSummary {
    /// Adds an account's per-rule counts (`counts[i]` for rule `i + 1`).
    pub(crate) fn add_suppressed(&mut self, rules: &[rolewatch::suppress::SuppressRule], counts: &[u64]) {
        if self.suppressed_by_rule.len() < rules.len() {
            self.suppressed_by_rule = rules
                .iter()
                .enumerate()
                .map(|(i, rule)| SuppressedByRule {
                    rule: i + 1,
                    reason: rolewatch::alert::clean_text(&rule.reason, 200),
                    alerts: 0,
                })
                .collect();
        }
        for (entry, n) in self.suppressed_by_rule.iter_mut().zip(counts) {
            entry.alerts += n;
            self.suppressed += n;
        }
    }
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
    Unreadable(#[source] Arc<ObjectProblem>),
    /// The object could not be fetched (permissions, network): nothing was
    /// applied; a retry may succeed.
    #[error("cannot be fetched: {0}")]
    Fetch(#[source] Arc<FetchError>),
    /// The object's account could not be brought up to date.
    #[error("account {account}: {error}")]
    Account { account: String, error: Arc<AccountError> },
}

#[derive(Debug, Error)]
pub enum AccountError {
    #[error("alerts not published, state not advanced: {0}")]
    Publish(#[source] SinkError),
    #[error("{0}")]
    State(#[source] StoreError),
    /// A rollback: the state is a newer release's and is left untouched.
    #[error("{location}: {reason}; deploy that release again (or a later one) to resume this account")]
    NewerState { location: String, reason: String },
    /// Stopped in time to release the lease and report: retried later.
    #[error("the invocation's deadline came {during}; its objects are left for the retry")]
    Deadline { during: &'static str },
    #[error("state kept changing under us ({attempts} conditional writes lost); giving up for this invocation")]
    Contention { attempts: u32 },
}

fn join(failures: &[ObjectFailure]) -> String {
    failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// Why an object's content cannot be read: permanent, so an
/// `unreadable_input` alert is raised and a retry would not help.
#[derive(Debug, Error)]
pub enum ObjectProblem {
    #[error("the object does not exist (deleted before it was read?)")]
    Missing,
    #[error(transparent)]
    Content(ReadError),
}

/// Why an object could not be fetched: possibly transient, so the object
/// is reported failed for Lambda (or SQS) to retry, and no alert is raised.
#[derive(Debug, Error)]
pub enum FetchError {
    #[error(transparent)]
    Open(SourceError),
    #[error("reading the object failed: {0}")]
    Stream(#[source] std::io::Error),
    #[error("reader task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// Logs how reading an object went and counts it in the summary; called
/// the first time the object is read in an invocation only.
pub(crate) fn log_read(
    object: &ObjectRef,
    account: &str,
    streamed: &Streamed,
    elapsed: Duration,
    summary: &mut InvocationSummary,
) {
    let duration_ms = elapsed.as_millis() as u64;
    let (bucket, key) = (&object.bucket, &object.key);
    match streamed {
        Streamed::Applied { outcome: Outcome::Read(input) | Outcome::Unreadable { partial: input, .. }, .. } => {
            summary.records += input.records;
            summary.role_assumptions += input.role_assumptions;
            summary.bad_records += input.bad_record_count;
            if let Streamed::Applied { outcome: Outcome::Unreadable { problem, .. }, .. } = streamed {
                error!(%bucket, %key, %account, records = input.records,
                    role_assumptions = input.role_assumptions, duration_ms, error = %problem,
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

pub(crate) fn log_summary(summary: &InvocationSummary, started: Instant, failed_messages: Option<usize>) {
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
                suppressed = s.suppressed,
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
    // One line per rule that held something back, for Logs Insights.
    for rule in s.suppressed_by_rule.iter().filter(|r| r.alerts > 0) {
        info!(rule = rule.rule, reason = %rule.reason, suppressed = rule.alerts, "alerts suppressed by a [[suppress]] rule");
    }
    if s.failed > 0 || failed_messages.unwrap_or(0) > 0 {
        finished!(warn, failed_messages, "invocation finished with failures");
    } else {
        finished!(info, "invocation finished");
    }
}
