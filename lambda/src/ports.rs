//! The capabilities the handler needs from the outside world, as small
//! traits: where objects come from, where detector state lives, where alerts
//! go. The AWS implementations are in [`crate::aws`]; tests can pass their
//! own.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rolewatch::alert::Alert;
use rolewatch::state::{State, StateBase};
use thiserror::Error;
use tokio::io::AsyncRead;
use tokio::time::Instant;

use crate::triggers::ObjectRef;

/// A byte stream of one object, read as it arrives.
pub type ObjectReader = Pin<Box<dyn AsyncRead + Send>>;

/// Opens objects for streaming reads.
pub trait ObjectSource: Send + Sync {
    fn open(&self, object: &ObjectRef) -> impl Future<Output = Result<ObjectReader, SourceError>> + Send;
}

/// Any error of a capability's implementation, kept with its causes.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error and every cause below it, on one line: SDK errors say little
/// more than "service error" at the top.
pub(crate) fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let more = inner.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = inner.source();
    }
    text
}

#[derive(Debug, Error)]
pub enum SourceError {
    /// The object does not exist (404: deleted before it was read?).
    /// Retrying will not help; it is reported like an unreadable object.
    #[error("object not found")]
    NotFound,
    /// Reading it was refused (403): the function's permissions, the
    /// bucket policy, the KMS key or the expected bucket owner, not the
    /// object. A retry helps once the setup is mended; no alert is raised.
    #[error("access denied (check the function's s3:GetObject and kms:Decrypt permissions and the bucket owner): {}", with_causes(.0.as_ref()))]
    AccessDenied(#[source] BoxError),
    /// Anything else (throttling, network): worth a retry.
    #[error("{}", with_causes(.0.as_ref()))]
    Request(#[source] BoxError),
}

/// An opaque version token of a stored state object (its ETag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateVersion(pub String);

/// What is stored for an account.
#[derive(Debug)]
pub enum LoadedState {
    /// Nothing yet: the first save must not overwrite anything.
    Missing,
    Found {
        state: Box<State>,
        version: StateVersion,
    },
    /// Intact, but written by a newer release (a rollback): never replaced
    /// or set aside, so the account fails until that release is back and
    /// nothing it learned is lost. `reason` names the formats.
    Newer {
        reason: String,
    },
    /// Present but not a state we can read (damaged). `raw` is kept so it
    /// can be copied aside before it is replaced.
    Corrupt {
        version: StateVersion,
        raw: Vec<u8>,
        reason: String,
    },
}

impl LoadedState {
    /// Reads stored state bytes. Damaged bytes are [`LoadedState::Corrupt`]:
    /// copied aside to quarantine and replaced, so the account keeps
    /// working instead of failing every invocation. A newer release's
    /// state is [`LoadedState::Newer`]: left alone.
    pub fn from_bytes(raw: Vec<u8>, version: StateVersion) -> LoadedState {
        LoadedState::read(raw, None, version)
    }

    /// Reads state saved in two parts, with the base it names.
    pub fn from_parts(raw: Vec<u8>, base: &StateBase, version: StateVersion) -> LoadedState {
        LoadedState::read(raw, Some(base), version)
    }

    fn read(raw: Vec<u8>, base: Option<&StateBase>, version: StateVersion) -> LoadedState {
        // Shared, not copied: a loaded state keeps reading its principals from these bytes.
        let raw = Arc::new(raw);
        let state = match base {
            Some(base) => State::from_parts(Arc::clone(&raw), base),
            None => State::from_bytes(Arc::clone(&raw)),
        };
        match state {
            Ok(state) => LoadedState::Found { state: Box::new(state), version },
            Err(err) if err.is_newer() => LoadedState::Newer { reason: err.to_string() },
            Err(err) => {
                let raw = Arc::try_unwrap(raw).unwrap_or_else(|shared| shared.to_vec());
                LoadedState::Corrupt { version, raw, reason: err.to_string() }
            }
        }
    }
}

/// The result of a conditional save.
#[derive(Debug, PartialEq, Eq)]
pub enum SaveOutcome {
    Saved(StateVersion),
    /// Someone else wrote the state since it was loaded: re-load and re-apply.
    Conflict,
}

/// Detector state, one object per account, saved conditionally.
pub trait AccountStateStore: Send + Sync {
    fn load(&self, account: &str) -> impl Future<Output = Result<LoadedState, StoreError>> + Send;

    /// Saves only if the stored object is still `expected` (`None`: only if
    /// there is none yet).
    fn save(
        &self,
        account: &str,
        state: &State,
        expected: Option<&StateVersion>,
    ) -> impl Future<Output = Result<SaveOutcome, StoreError>> + Send;

    /// Waits for the account's lease, so invocations for one account take
    /// turns and two of them never publish the same burst from the same
    /// starting state. Conditional writes stay the safety net behind it.
    /// Gives up (an error) by `give_up_at`, the invocation's deadline less
    /// what releasing and reporting need, without leaving a request in
    /// flight that could take the lease after all. The default takes no
    /// lease (stores with a single writer).
    fn acquire_lease(
        &self,
        account: &str,
        give_up_at: Option<Instant>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = (account, give_up_at);
        async { Ok(()) }
    }

    /// Gives the lease back; called on every path once the account is done.
    fn release_lease(&self, account: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = account;
        async { Ok(()) }
    }

    /// The accounts that have state in this store. Their logs are collected,
    /// so a role owner's copy of a call they made is redundant (the caller's
    /// copy is read), and they are inside the organisation. The default
    /// knows none: a store that keeps one account's state.
    fn accounts(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Copies unreadable state bytes aside; returns where they went.
    fn quarantine(&self, account: &str, raw: &[u8]) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Where an account's state lives, for messages (`s3://bucket/key`).
    fn location(&self, account: &str) -> String;
}

/// A state store's request failed; worth a retry.
#[derive(Debug, Error)]
#[error("{operation} {location}: {}", with_causes(.source.as_ref()))]
pub struct StoreError {
    pub operation: &'static str,
    pub location: String,
    #[source]
    pub source: BoxError,
}

impl StoreError {
    pub fn new(operation: &'static str, location: impl Into<String>, source: impl Into<BoxError>) -> StoreError {
        StoreError { operation, location: location.into(), source: source.into() }
    }
}

/// The time of day: what an alert raised by the function itself is stamped
/// with, how far an invocation's deadline is, and how late an alert is
/// published. Injected so tests pin it (waiting is measured on
/// [`tokio::time::Instant`], which tests pause).
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from(std::time::SystemTime::now())
    }
}

/// Where alerts go.
pub trait AlertSink: Send + Sync {
    /// Publishes every alert or fails: a partial success is an error too.
    fn publish(&self, alerts: &[Alert]) -> impl Future<Output = Result<(), SinkError>> + Send;
}

#[derive(Debug, Error)]
pub enum SinkError {
    #[error("publish request failed: {}", with_causes(.0.as_ref()))]
    Request(#[source] BoxError),
    #[error("{failed} of {total} messages rejected: {details}")]
    Rejected { failed: usize, total: usize, details: String },
    #[error("alert {dedup_key} cannot be sent: {reason}")]
    Invalid { dedup_key: String, reason: String },
}
