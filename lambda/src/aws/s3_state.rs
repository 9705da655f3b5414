//! Detector state in S3, one object per account at `{prefix}{account}.json`,
//! written with conditional requests: `If-Match` the ETag that was read, or
//! `If-None-Match: *` when there was none. A `412 PreconditionFailed` (or
//! `409 ConditionalRequestConflict`) is a [`SaveOutcome::Conflict`]: another
//! invocation got there first.
//!
//! An account that knows many principals keeps most of them in a base
//! object, `{prefix}{account}.base-{checksum}` (see `rolewatch::state`): the
//! state object names it and holds only the changes since, so an invocation
//! moves kilobytes, not every principal. A base never changes once written,
//! so bases are kept in memory between invocations, up to a byte budget.
//! A new base is written before the state object that names it; the one it
//! replaces is deleted once that state object is saved, and so are bases
//! older than an hour that no state names (a save that lost a conflict, or
//! died between its two writes, leaves one behind).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::operation::put_object::PutObjectError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use rolewatch::state::{State, StateBase};
use rolewatch::storage::{BaseSpare, SharedBytes};

use crate::ports::{AccountStateStore, BoxError, LoadedState, SaveOutcome, StateVersion, StoreError};

/// The default `ROLEWATCH_STATE_PREFIX`.
pub const DEFAULT_STATE_PREFIX: &str = "rolewatch/state/";
/// A lease lasts longer than the function's timeout (300 s), so it never
/// runs out under a live invocation, and a crashed one's frees itself.
const LEASE_SECONDS: i64 = 330;
/// How long an invocation waits for another to finish with the account
/// before it fails (and Lambda retries it later), unless
/// `ROLEWATCH_LEASE_WAIT_SECONDS` says otherwise: well inside the function's
/// timeout, so a busy minute fails one account, not the invocation.
pub const DEFAULT_LEASE_WAIT: Duration = Duration::from_secs(60);
/// Bases kept in memory when the function's memory size is not known.
pub const DEFAULT_BASE_CACHE_BYTES: usize = 40 << 20;
/// A base no state names is deleted once it is this old: by then the
/// invocation that wrote it has finished or died (the function's timeout
/// and the lease are a few minutes), so it will never be named.
const ORPHAN_BASE_AGE: Duration = Duration::from_secs(3_600);
/// Times the state object is read again when the base it names is gone
/// (replaced by a concurrent save) before the state counts as corrupt.
const MAX_BASE_RETRIES: usize = 3;

#[derive(Debug, Clone)]
pub struct S3StateStore {
    client: Client,
    bucket: String,
    prefix: String,
    bases: Arc<Mutex<BaseCache>>,
    /// The base each account's state named when last loaded or saved: the
    /// one to delete once a save replaces it.
    named_bases: Arc<Mutex<HashMap<String, Option<String>>>>,
    orphan_base_age: Duration,
    lease_wait: Duration,
    /// The memory of the last base dropped, for the next base this process
    /// reads or writes (see `rolewatch::storage::BaseSpare`).
    spare: BaseSpare,
    /// The accounts with state, as last listed, and when: see
    /// [`ACCOUNTS_LISTING_TTL`].
    accounts: Arc<Mutex<Option<AccountsListing>>>,
}

/// The accounts with state, and when they were listed.
type AccountsListing = (Instant, Vec<String>);

/// How long a warm function reuses its listing of the accounts with state.
/// Accounts join rarely, and a listing per invocation of a busy organisation
/// trail would cost more than the function; a new account is noticed this
/// much later, in the meantime at worst paging twice for a call it made into
/// another account (both copies counted).
const ACCOUNTS_LISTING_TTL: Duration = Duration::from_secs(900);

/// Why the base a state names cannot be used.
enum BaseProblem {
    /// Missing, damaged or not the one named: the state counts as corrupt.
    Unreadable(String),
    /// Written by a newer release: the state is left alone.
    Newer(String),
}

/// A base's bytes as a request body without copying them: a base can be
/// tens of MB, and the function's memory is small.
struct BaseBody(SharedBytes);

impl AsRef<[u8]> for BaseBody {
    fn as_ref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

/// Bases in memory, least recently used first, within a byte budget.
#[derive(Debug, Default)]
struct BaseCache {
    budget_bytes: usize,
    entries: Vec<(String, StateBase)>,
}

impl BaseCache {
    fn get(&mut self, key: &str) -> Option<StateBase> {
        let at = self.entries.iter().position(|(k, _)| k == key)?;
        let entry = self.entries.remove(at);
        let base = entry.1.clone();
        self.entries.push(entry);
        Some(base)
    }

    fn put(&mut self, key: String, base: StateBase) {
        self.remove(&key);
        if base.as_bytes().len() > self.budget_bytes {
            return;
        }
        self.entries.push((key, base));
        while self.entries.iter().map(|(_, b)| b.as_bytes().len()).sum::<usize>() > self.budget_bytes {
            self.entries.remove(0);
        }
    }

    fn remove(&mut self, key: &str) {
        self.entries.retain(|(k, _)| k != key);
    }
}

impl S3StateStore {
    pub fn new(client: Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            prefix: prefix.into(),
            bases: Arc::new(Mutex::new(BaseCache { budget_bytes: DEFAULT_BASE_CACHE_BYTES, entries: Vec::new() })),
            named_bases: Arc::default(),
            orphan_base_age: ORPHAN_BASE_AGE,
            lease_wait: DEFAULT_LEASE_WAIT,
            spare: BaseSpare::default(),
            accounts: Arc::default(),
        }
    }

    /// How old a base nothing names must be before a new base's save
    /// deletes it (tests use zero).
    pub fn with_orphan_base_age(self, age: Duration) -> Self {
        Self { orphan_base_age: age, ..self }
    }

    /// How long to wait for an account's lease before giving up on it.
    pub fn with_lease_wait(self, wait: Duration) -> Self {
        Self { lease_wait: wait, ..self }
    }

    /// How many bytes of bases to keep in memory between invocations.
    pub fn with_base_cache_bytes(self, budget_bytes: usize) -> Self {
        if let Ok(mut cache) = self.bases.lock() {
            cache.budget_bytes = budget_bytes;
        }
        self
    }

    /// The object holding the base with this checksum.
    pub fn base_key(&self, account: &str, digest: &str) -> String {
        format!("{}{account}.base-{digest}", self.prefix)
    }

    /// The base named `digest`: from memory, else from S3. `Ok(Err(why))`
    /// when it is missing, damaged or a newer release's.
    async fn base(&self, account: &str, digest: &str) -> Result<Result<StateBase, BaseProblem>, StoreError> {
        let key = self.base_key(account, digest);
        if let Some(base) = self.bases.lock().ok().and_then(|mut cache| cache.get(&key)) {
            return Ok(Ok(base));
        }
        let output = match self.client.get_object().bucket(&self.bucket).key(&key).send().await {
            Ok(output) => output,
            Err(err) if matches!(err.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => {
                return Ok(Err(BaseProblem::Unreadable(format!("its base s3://{}/{key} is missing", self.bucket))));
            }
            Err(err) => return Err(self.error("load", &key, err)),
        };
        let raw = output.body.collect().await.map_err(|err| self.error("load", &key, err))?.to_vec();
        match StateBase::from_bytes(raw, &self.spare) {
            Ok(base) if base.digest() == digest => {
                if let Ok(mut cache) = self.bases.lock() {
                    cache.put(key, base.clone());
                }
                Ok(Ok(base))
            }
            Ok(base) => Ok(Err(BaseProblem::Unreadable(format!(
                "its base s3://{}/{key} holds base {}",
                self.bucket,
                base.digest()
            )))),
            Err(err) if err.is_newer() => {
                Ok(Err(BaseProblem::Newer(format!("its base s3://{}/{key}: {err}", self.bucket))))
            }
            Err(err) => Ok(Err(BaseProblem::Unreadable(format!("its base s3://{}/{key}: {err}", self.bucket)))),
        }
    }

    /// Deletes a base no state names any more. A failure leaves an unused
    /// object behind, nothing worse: it is logged, not an error.
    async fn delete_base(&self, account: &str, digest: &str) {
        let key = self.base_key(account, digest);
        if let Ok(mut cache) = self.bases.lock() {
            cache.remove(&key);
        }
        if let Err(err) = self.client.delete_object().bucket(&self.bucket).key(&key).send().await {
            tracing::warn!(account, base = %key, error = %crate::ports::with_causes(&err),
                "a replaced state base could not be deleted; it is unused and can be removed");
        }
    }

    /// Deletes old bases no state names: left by a save that lost a
    /// conflict after writing its base, or by an invocation that died
    /// between the two writes. Best effort, like [`S3StateStore::delete_base`].
    async fn delete_orphan_bases(&self, account: &str, named: Option<&str>) {
        let prefix = self.base_key(account, "");
        let listed = match self.client.list_objects_v2().bucket(&self.bucket).prefix(&prefix).send().await {
            Ok(listed) => listed,
            Err(err) => {
                tracing::warn!(account, prefix = %prefix, error = %crate::ports::with_causes(&err),
                    "state bases could not be listed to remove unused ones");
                return;
            }
        };
        let cutoff = SystemTime::now().checked_sub(self.orphan_base_age).unwrap_or(SystemTime::UNIX_EPOCH);
        for object in listed.contents() {
            let Some(digest) = object.key().and_then(|k| k.strip_prefix(&prefix)) else { continue };
            let written = object.last_modified().and_then(|t| SystemTime::try_from(*t).ok());
            if Some(digest) != named && written.is_some_and(|at| at <= cutoff) {
                self.delete_base(account, digest).await;
            }
        }
    }

    fn remember_base(&self, account: &str, digest: Option<String>) {
        if let Ok(mut named) = self.named_bases.lock() {
            named.insert(account.to_owned(), digest);
        }
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
    async fn try_lease(&self, key: &str) -> Result<bool, StoreError> {
        let now = epoch_seconds();
        let body = ByteStream::from(format!("{{\"expires\":{}}}", now + LEASE_SECONDS).into_bytes());
        let put = self.client.put_object().bucket(&self.bucket).key(key).content_type("application/json").body(body);
        let put = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Err(err) if matches!(err.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => put.if_none_match("*"),
            Err(err) => return Err(self.error("lease", key, err)),
            Ok(output) => {
                let etag = output.e_tag().unwrap_or_default().to_owned();
                // No lease lasts longer than rolewatch grants one from when it
                // was written: a forged far-future lease cannot freeze detection.
                let granted_until = output.last_modified().map_or(now, |written| written.secs()) + LEASE_SECONDS;
                let raw = output.body.collect().await.map_err(|e| self.error("lease", key, e))?;
                // An unreadable lease counts as expired rather than blocking forever.
                let expires = serde_json::from_slice::<serde_json::Value>(&raw.to_vec())
                    .ok()
                    .and_then(|v| v.get("expires").and_then(serde_json::Value::as_i64))
                    .unwrap_or(0)
                    .min(granted_until);
                if expires > now {
                    return Ok(false);
                }
                put.if_match(etag)
            }
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(err) if is_conflict(&err) || is_missing(&err) => Ok(false),
            Err(err) => Err(self.error("lease", key, err)),
        }
    }

    fn error(&self, operation: &'static str, key: &str, source: impl Into<BoxError>) -> StoreError {
        StoreError::new(operation, format!("s3://{}/{key}", self.bucket), source)
    }
}

impl AccountStateStore for S3StateStore {
    async fn load(&self, account: &str) -> Result<LoadedState, StoreError> {
        let key = self.key(account);
        let mut read_before: Option<StateVersion> = None;
        for _ in 0..MAX_BASE_RETRIES {
            let output = match self.client.get_object().bucket(&self.bucket).key(&key).send().await {
                Ok(output) => output,
                Err(err) if matches!(err.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => {
                    self.remember_base(account, None);
                    return Ok(LoadedState::Missing);
                }
                Err(err) => return Err(self.error("load", &key, err)),
            };
            let version = StateVersion(output.e_tag().unwrap_or_default().to_owned());
            let raw = output.body.collect().await.map_err(|err| self.error("load", &key, err))?.to_vec();
            let Some(digest) = State::base_of(&raw) else {
                self.remember_base(account, None);
                return Ok(LoadedState::from_bytes(raw, version));
            };
            match self.base(account, &digest).await? {
                Ok(base) => {
                    let loaded = LoadedState::from_parts(raw, &base, version);
                    // A state set aside still names its base: never delete it then.
                    let named = matches!(loaded, LoadedState::Found { .. }).then_some(digest);
                    self.remember_base(account, named);
                    return Ok(loaded);
                }
                Err(BaseProblem::Newer(reason)) => {
                    self.remember_base(account, None);
                    return Ok(LoadedState::Newer { reason });
                }
                // A concurrent save may have replaced both since: read again,
                // unless the state object is the one already read.
                Err(BaseProblem::Unreadable(why)) if read_before.as_ref() != Some(&version) => {
                    tracing::warn!(account, state = %self.location(account), reason = %why,
                        "the state's base is unavailable; reading the state again");
                    read_before = Some(version);
                }
                Err(BaseProblem::Unreadable(why)) => {
                    self.remember_base(account, None);
                    return Ok(LoadedState::Corrupt { version, raw, reason: why });
                }
            }
        }
        Err(self.error("load", &key, "the state kept changing while its base was read; Lambda will retry".to_owned()))
    }

    async fn save(
        &self,
        account: &str,
        state: &State,
        expected: Option<&StateVersion>,
    ) -> Result<SaveOutcome, StoreError> {
        let key = self.key(account);
        let saved = state.to_parts(&self.spare);
        if let Some(base) = &saved.new_base {
            // Before the state object that names it. Written again by a retry,
            // it is the same object: a base is named by its content.
            let base_key = self.base_key(account, base.digest());
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&base_key)
                .content_type("text/plain")
                .body(ByteStream::from(bytes::Bytes::from_owner(BaseBody(base.shared_bytes()))))
                .send()
                .await
                .map_err(|err| self.error("save", &base_key, err))?;
            if let Ok(mut cache) = self.bases.lock() {
                cache.put(base_key, base.clone());
            }
        }
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("text/plain")
            .body(ByteStream::from(saved.state));
        let now_named = saved.base;
        let request = match expected {
            Some(version) => request.if_match(&version.0),
            None => request.if_none_match("*"),
        };
        let version = match request.send().await {
            Ok(output) => StateVersion(output.e_tag().unwrap_or_default().to_owned()),
            // A base written for a save that lost is left behind: the winner may
            // have written the very same one.
            Err(err) if is_conflict(&err) => return Ok(SaveOutcome::Conflict),
            // `If-Match` on an object deleted since it was read: load again.
            Err(err) if expected.is_some() && is_missing(&err) => return Ok(SaveOutcome::Conflict),
            Err(err) => return Err(self.error("save", &key, err)),
        };
        let replaced = self
            .named_bases
            .lock()
            .ok()
            .and_then(|mut named| named.insert(account.to_owned(), now_named.clone()).flatten())
            .filter(|old| Some(old) != now_named.as_ref());
        if let Some(old) = replaced {
            self.delete_base(account, &old).await;
        }
        if saved.new_base.is_some() {
            self.delete_orphan_bases(account, now_named.as_deref()).await;
        }
        Ok(SaveOutcome::Saved(version))
    }

    async fn acquire_lease(&self, account: &str, give_up_at: Option<tokio::time::Instant>) -> Result<(), StoreError> {
        let key = self.lease_key(account);
        let waited_enough = tokio::time::Instant::now() + self.lease_wait;
        // Whichever comes first: this store's patience or the invocation's deadline.
        let give_up_at = give_up_at.map_or(waited_enough, |deadline| deadline.min(waited_enough));
        let mut attempt: u64 = 0;
        while !self.try_lease(&key).await? {
            let now = tokio::time::Instant::now();
            if now >= give_up_at {
                let why = if give_up_at < waited_enough {
                    "the invocation's deadline came while another invocation held this account's lease; Lambda will retry"
                } else {
                    "another invocation has held this account's lease for too long; Lambda will retry"
                };
                return Err(self.error("lease", &key, why.to_owned()));
            }
            attempt += 1;
            // 25 ms growing to 800 ms, spread so waiters do not move in step;
            // never past the moment to give up, so no try runs late.
            let base = 25u64 << attempt.min(5);
            let spread =
                u64::from(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().subsec_nanos());
            let pause = Duration::from_millis(base + spread % base).min(give_up_at - now);
            tokio::time::sleep(pause).await;
        }
        Ok(())
    }

    /// Writes the lease back as expired: free for the next invocation, and
    /// no DeleteObject permission needed.
    async fn release_lease(&self, account: &str) -> Result<(), StoreError> {
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
            .map_err(|err| self.error("lease", &key, err))
    }

    /// Copies the state aside, and the base it names beside it when that
    /// can be read: the base itself is deleted in time once no state names it.
    async fn quarantine(&self, account: &str, raw: &[u8]) -> Result<String, StoreError> {
        let stamp = chrono::DateTime::<chrono::Utc>::from(SystemTime::now()).format("%Y%m%dT%H%M%S%.3fZ").to_string();
        let key = format!("{}quarantine/{account}-{stamp}.json", self.prefix);
        if let Some(digest) = State::base_of(raw) {
            if let Ok(base) = self.base(account, &digest).await? {
                let base_key = format!("{}quarantine/{account}-{stamp}.base-{digest}", self.prefix);
                self.client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(&base_key)
                    .body(ByteStream::from(bytes::Bytes::from_owner(BaseBody(base.shared_bytes()))))
                    .send()
                    .await
                    .map_err(|err| self.error("quarantine", &base_key, err))?;
            }
        }
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(ByteStream::from(raw.to_vec()))
            .send()
            .await
            .map_err(|err| self.error("quarantine", &key, err))?;
        Ok(format!("s3://{}/{key}", self.bucket))
    }

    fn location(&self, account: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(account))
    }

    /// The `{prefix}{account}.json` objects, listed at most once per
    /// [`ACCOUNTS_LISTING_TTL`] by a warm function.
    async fn accounts(&self) -> Result<Vec<String>, StoreError> {
        let cached = self.accounts.lock().ok().and_then(|cached| {
            cached.as_ref().filter(|(at, _)| at.elapsed() < ACCOUNTS_LISTING_TTL).map(|(_, accounts)| accounts.clone())
        });
        if let Some(accounts) = cached {
            return Ok(accounts);
        }
        let mut accounts = Vec::new();
        // The delimiter keeps quarantined copies (a folder below) out of the listing.
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&self.prefix)
            .delimiter("/")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| self.error("list", &self.prefix, err))?;
            for object in page.contents() {
                let account =
                    object.key().and_then(|k| k.strip_prefix(&self.prefix)).and_then(|k| k.strip_suffix(".json"));
                if let Some(account) = account.filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())) {
                    accounts.push(account.to_owned());
                }
            }
        }
        if let Ok(mut cached) = self.accounts.lock() {
            *cached = Some((Instant::now(), accounts.clone()));
        }
        Ok(accounts)
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
