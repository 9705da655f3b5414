//! One account brought up to date: its lease held by the caller, its state
//! loaded, every object not yet processed streamed through the engine, new
//! alerts published, and the state saved with a conditional write, all
//! again (publishing only what is new) when a concurrent save wins.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rolewatch::alert::{dedup_key, Alert, NewAlert, Severity};
use rolewatch::cloudtrail::ScanBuffer;
use rolewatch::engine::Engine;
use rolewatch::state::State;
use tracing::{debug, error, info, warn};

use crate::handler::{Handler, UNKNOWN_ACCOUNT};
use crate::object_stream::{stream_object, Outcome, Streamed};
use crate::ports::{AccountStateStore, AlertSink, LoadedState, ObjectSource, SaveOutcome, StateVersion};
use crate::report::{log_read, AccountError, FailureCause, FetchError, InvocationSummary};
use crate::triggers::ObjectRef;

/// Conditional-write attempts per account before the invocation gives up
/// (and Lambda retries it later).
pub const MAX_STATE_ATTEMPTS: u32 = 10;

/// An object applied in an attempt, logged once that attempt's state is saved.
struct Processed<'o> {
    object: &'o ObjectRef,
    records: u64,
    role_assumptions: u64,
    alerts: usize,
}

#[derive(Default)]
pub(crate) struct AccountReport {
    pub(crate) processed: usize,
    pub(crate) already_processed: usize,
    pub(crate) alerts: usize,
    pub(crate) attempts: u32,
    /// Alerts each `[[suppress]]` rule held back, in the order written.
    pub(crate) suppressed: Vec<u64>,
}

impl<S, R, K> Handler<S, R, K>
where
    S: ObjectSource,
    R: AccountStateStore,
    K: AlertSink,
{
    /// Loads the account's state, streams every object not yet processed
    /// through the engine, publishes what that raised and saves, re-trying
    /// on write conflicts. On failure also returns how many alerts were
    /// published before it.
    pub(crate) async fn process_account(
        &self,
        account: &str,
        objects: &[ObjectRef],
        read_accounts: &[String],
        summary: &mut InvocationSummary,
        failures: &mut BTreeMap<ObjectRef, FailureCause>,
        stop_at: Option<tokio::time::Instant>,
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
        let detected_at = self.clock.now();
        // Objects that could not be fetched are reported failed and not
        // opened again in this invocation (Lambda's retry does): each voids
        // at most one attempt.
        let mut unfetched: BTreeMap<ObjectRef, Arc<FetchError>> = BTreeMap::new();
        // The read buffer, handed from object to object.
        let mut buffer = ScanBuffer::default();
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
            let loaded = match self.store.load(account).await {
                Ok(loaded) => loaded,
                Err(e) => return Err(fail(AccountError::State(e), &published)),
            };
            let mut changed = false;
            let mut pending: Vec<Alert> = Vec::new();
            let (state, version) = match loaded {
                LoadedState::Missing => (State::default(), None),
                LoadedState::Found { state, version } => (*state, Some(version)),
                LoadedState::Newer { reason } => {
                    let location = self.store.location(account);
                    error!(account = %account, state = %location, reason = %reason,
                        "detector state was written by a newer rolewatch release; it is left untouched and this \
                         account's objects fail until that release is deployed again");
                    return Err(fail(AccountError::NewerState { location, reason }, &published));
                }
                LoadedState::Corrupt { version, raw, reason } => {
                    let location = self.store.location(account);
                    let moved_to = match &quarantined {
                        Some((copied, moved_to)) if *copied == version => moved_to.clone(),
                        _ => {
                            error!(account = %account, state = %location, reason = %reason,
                                "detector state is corrupt; copying it aside and starting from empty state");
                            let moved_to = match self.store.quarantine(account, &raw).await {
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
            let others: Vec<&str> = read_accounts.iter().map(String::as_str).filter(|a| *a != account).collect();
            engine.note_accounts_read(&others);
            let mut report = AccountReport { attempts: attempt, ..AccountReport::default() };
            let mut processed: Vec<Processed<'_>> = Vec::new();
            for object in objects {
                if let Some(reason) = unfetched.get(object) {
                    failures.insert(object.clone(), FailureCause::Fetch(Arc::clone(reason)));
                    continue;
                }
                let input_id = object.uri();
                if engine.is_processed(&input_id) {
                    report.already_processed += 1;
                    continue;
                }
                let started = Instant::now();
                let (streamed, back) = stream_object(
                    &self.source,
                    object,
                    &input_id,
                    engine,
                    self.limits,
                    self.chunk_events,
                    std::mem::take(&mut buffer),
                )
                .await;
                buffer = back;
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
                    Outcome::Unreadable { problem, .. } => {
                        // What could be read still counts (it was applied), but
                        // the object is not recorded: a repaired copy is read in full.
                        changed = true;
                        pending.extend(alerts);
                        // Once per object and reason while state remembers it, not
                        // once per retry or redelivery.
                        pending.extend(engine.raise_once(Alert::unreadable_input(
                            &input_id,
                            account_id,
                            &problem.to_string(),
                            detected_at,
                        )));
                        failures.insert(object.clone(), FailureCause::Unreadable(problem));
                    }
                    Outcome::Fetch(reason) => {
                        unfetched.insert(object.clone(), Arc::clone(&reason));
                        failures.insert(object.clone(), FailureCause::Fetch(reason));
                    }
                }
            }
            report.suppressed = engine.suppressions().counts().map(|(_, n)| n).collect();
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
                // Counted as published, so a deadline that cuts the account
                // off later still reports them.
                summary.count_published(&fresh, self.clock.now());
            }
            report.alerts = published.len();

            if !changed {
                return Ok(report);
            }
            match self.store.save(account, &state, version.as_ref()).await {
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
                    let pause = backoff(writes_lost);
                    if stop_at.is_some_and(|stop_at| tokio::time::Instant::now() + pause >= stop_at) {
                        return Err(fail(
                            AccountError::Deadline { during: "while retrying a conflicting save" },
                            &published,
                        ));
                    }
                    tokio::time::sleep(pause).await;
                }
                Err(e) => return Err(fail(AccountError::State(e), &published)),
            }
        }
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
    Alert::new(NewAlert {
        detector: "state_reset",
        severity: Severity::Medium,
        title: "rolewatch detector state was corrupt and has been reset",
        summary: &format!(
            "The detector state {location} could not be read ({reason}). It was copied to {moved_to} \
             and detection for account {account} restarted from empty state: source-IP baselines and \
             habitual session lengths are relearned, so expect some quiet or noisy days. \
             First inspect the copy to find out what wrote it."
        ),
        dedup_key: dedup_key("state_reset", &[location, moved_to]),
        account_id: account,
        principal: "rolewatch",
        caller_account: None,
        role_arn: None,
        source_ip: None,
        event_name: "",
        first_event_time: at,
        last_event_time: at,
    })
    .with_detail("state", location)
    .with_detail("quarantined_to", moved_to)
    .with_detail("reason", reason)
}

/// Exponential backoff with jitter, so racing invocations spread out.
fn backoff(attempt: u32) -> Duration {
    let base = 20u64 << attempt.min(5);
    let nanos =
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| u64::from(d.subsec_nanos())).unwrap_or(0);
    Duration::from_millis(base / 2 + nanos % base.max(1))
}
