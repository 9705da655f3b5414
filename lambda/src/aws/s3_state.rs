//! Detector state in S3, one object per account at `{prefix}{account}.json`,
//! written with conditional requests: `If-Match` the ETag that was read, or
//! `If-None-Match: *` when there was none. A `412 PreconditionFailed` (or
//! `409 ConditionalRequestConflict`) is a [`SaveOutcome::Conflict`]: another
//! invocation got there first.

use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::operation::put_object::PutObjectError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use rolewatch::state::State;

use crate::ports::{LoadedState, SaveOutcome, StateError, StateRepo, StateVersion};

/// The default `ROLEWATCH_STATE_PREFIX`.
pub const DEFAULT_STATE_PREFIX: &str = "rolewatch/state/";
/// A lease lasts longer than the function's timeout (300 s), so it never
/// runs out under a live invocation, and a crashed one's frees itself.
const LEASE_SECONDS: i64 = 330;
/// How long an invocation waits for another to finish with the account
/// before it fails (and Lambda retries it later).
const LEASE_WAIT: Duration = Duration::from_secs(240);

#[derive(Debug, Clone)]
pub struct S3StateRepo {
    client: Client,
    bucket: String,
    prefix: String,
}

impl S3StateRepo {
    pub fn new(client: Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self { client, bucket: bucket.into(), prefix: prefix.into() }
    }

    /// The state object's key for an account.
    pub fn key(&self, account: &str) -> String {
        format!("{}{account}.json", self.prefix)
    }

    /// The account's lease object, beside its state.
    pub fn lease_key(&self, account: &str) -> String {
        format!("{}{account}.lease", self.prefix)
    }

    /// Takes the lease if it is free: creates it, or replaces an expired
    /// (or released) one by its ETag. `Ok(false)`: someone else holds it.
    async fn try_lease(&self, key: &str) -> Result<bool, StateError> {
        let now = epoch_seconds();
        let body = ByteStream::from(format!("{{\"expires\":{}}}", now + LEASE_SECONDS).into_bytes());
        let put = self.client.put_object().bucket(&self.bucket).key(key).content_type("application/json").body(body);
        let put = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Err(err) if matches!(err.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => put.if_none_match("*"),
            Err(err) => return Err(self.error("lease", key, super::describe(&err))),
            Ok(output) => {
                let etag = output.e_tag().unwrap_or_default().to_owned();
                let raw = output.body.collect().await.map_err(|e| self.error("lease", key, super::describe(&e)))?;
                // An unreadable lease counts as expired rather than blocking forever.
                let expires = serde_json::from_slice::<serde_json::Value>(&raw.to_vec())
                    .ok()
                    .and_then(|v| v.get("expires").and_then(serde_json::Value::as_i64))
                    .unwrap_or(0);
                if expires > now {
                    return Ok(false);
                }
                put.if_match(etag)
            }
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(err) if is_conflict(&err) || is_missing(&err) => Ok(false),
            Err(err) => Err(self.error("lease", key, super::describe(&err))),
        }
    }

    fn error(&self, operation: &'static str, key: &str, reason: String) -> StateError {
        StateError { operation, location: format!("s3://{}/{key}", self.bucket), reason }
    }
}

impl StateRepo for S3StateRepo {
    async fn load(&self, account: &str) -> Result<LoadedState, StateError> {
        let key = self.key(account);
        let output = match self.client.get_object().bucket(&self.bucket).key(&key).send().await {
            Ok(output) => output,
            Err(err) if matches!(err.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => {
                return Ok(LoadedState::Missing)
            }
            Err(err) => return Err(self.error("load", &key, super::describe(&err))),
        };
        let version = StateVersion(output.e_tag().unwrap_or_default().to_owned());
        let raw = output.body.collect().await.map_err(|err| self.error("load", &key, super::describe(&err)))?.to_vec();
        Ok(LoadedState::from_bytes(raw, version))
    }

    async fn save(
        &self,
        account: &str,
        state: &State,
        expected: Option<&StateVersion>,
    ) -> Result<SaveOutcome, StateError> {
        let key = self.key(account);
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/json")
            .body(ByteStream::from(state.to_bytes()));
        let request = match expected {
            Some(version) => request.if_match(&version.0),
            None => request.if_none_match("*"),
        };
        match request.send().await {
            Ok(output) => Ok(SaveOutcome::Saved(StateVersion(output.e_tag().unwrap_or_default().to_owned()))),
            Err(err) if is_conflict(&err) => Ok(SaveOutcome::Conflict),
            // `If-Match` on an object deleted since it was read: load again.
            Err(err) if expected.is_some() && is_missing(&err) => Ok(SaveOutcome::Conflict),
            Err(err) => Err(self.error("save", &key, super::describe(&err))),
        }
    }

    async fn acquire_lease(&self, account: &str) -> Result<(), StateError> {
        let key = self.lease_key(account);
        let started = Instant::now();
        let mut attempt: u64 = 0;
        while !self.try_lease(&key).await? {
            if started.elapsed() > LEASE_WAIT {
                return Err(self.error(
                    "lease",
                    &key,
                    "another invocation has held this account's lease for too long; Lambda will retry".to_owned(),
                ));
            }
            attempt += 1;
            // 25 ms growing to 800 ms, spread so waiters do not move in step.
            let base = 25u64 << attempt.min(5);
            let spread =
                u64::from(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().subsec_nanos());
            tokio::time::sleep(Duration::from_millis(base + spread % base)).await;
        }
        Ok(())
    }

    /// Writes the lease back as expired: free for the next invocation, and
    /// no DeleteObject permission needed.
    async fn release_lease(&self, account: &str) -> Result<(), StateError> {
        let key = self.lease_key(account);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/json")
            .body(ByteStream::from_static(b"{\"expires\":0}"))
            .send()
            .await
            .map(|_| ())
            .map_err(|err| self.error("lease", &key, super::describe(&err)))
    }

    async fn quarantine(&self, account: &str, raw: &[u8]) -> Result<String, StateError> {
        let stamp = chrono::DateTime::<chrono::Utc>::from(SystemTime::now()).format("%Y%m%dT%H%M%S%.3fZ").to_string();
        let key = format!("{}quarantine/{account}-{stamp}.json", self.prefix);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(ByteStream::from(raw.to_vec()))
            .send()
            .await
            .map_err(|err| self.error("quarantine", &key, super::describe(&err)))?;
        Ok(format!("s3://{}/{key}", self.bucket))
    }

    fn location(&self, account: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(account))
    }
}

fn epoch_seconds() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// `412 PreconditionFailed` arrives as an unmodelled error (the SDK puts it
/// in `PutObjectError::Unhandled`); `409 ConditionalRequestConflict` when two
/// conditional writes race. Checked by code and by HTTP status.
fn is_conflict(err: &SdkError<PutObjectError, HttpResponse>) -> bool {
    let code = err.code();
    let status = err.raw_response().map(|response| response.status().as_u16());
    matches!(code, Some("PreconditionFailed" | "ConditionalRequestConflict")) || matches!(status, Some(409 | 412))
}

fn is_missing(err: &SdkError<PutObjectError, HttpResponse>) -> bool {
    err.code() == Some("NoSuchKey") || err.raw_response().map(|r| r.status().as_u16()) == Some(404)
}
