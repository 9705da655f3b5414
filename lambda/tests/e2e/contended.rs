//! The real S3 state store as concurrent invocations meet it in tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rolewatch::state::State;
use rolewatch_lambda::aws::S3StateStore;
use rolewatch_lambda::ports::{AccountStateStore, LoadedState, SaveOutcome, StateVersion, StoreError};

/// The real S3 state store, paused after each load so concurrent
/// invocations really do work from stale state, and counting the conflicts
/// they meet.
///
/// moto checks `If-Match` and then writes without a lock (its server is
/// threaded), so two PUTs racing on the same ETag can both succeed there,
/// which S3 never allows. Conditional PUTs are therefore sent one at a time
/// (`in_flight`), which gives moto S3's atomic compare-and-swap; loads still
/// overlap freely, so invocations still conflict. It takes no lease (the
/// trait's default) unless asked to, on purpose: most of these tests
/// exercise the conditional-write safety net that stands behind the lease.
/// With the lease, it is taken one invocation at a time for the same
/// reason: two invocations that read the released lease at once can both
/// take it on moto, never on S3.
pub struct ContendedState {
    inner: S3StateStore,
    load_pause: Duration,
    conflicts: Arc<AtomicUsize>,
    in_flight: tokio::sync::Mutex<()>,
    /// `Some` when the lease is taken; apart from `in_flight`, which the
    /// lease holder's save needs while others wait for the lease.
    leasing: Option<tokio::sync::Mutex<()>>,
}

impl ContendedState {
    pub fn new(inner: S3StateStore, load_pause: Duration, conflicts: Arc<AtomicUsize>) -> Self {
        ContendedState { inner, load_pause, conflicts, in_flight: tokio::sync::Mutex::new(()), leasing: None }
    }

    /// Invocations take the account's lease, as deployed.
    pub fn with_lease(self) -> Self {
        ContendedState { leasing: Some(tokio::sync::Mutex::new(())), ..self }
    }
}

impl AccountStateStore for ContendedState {
    async fn load(&self, account: &str) -> Result<LoadedState, StoreError> {
        let loaded = self.inner.load(account).await;
        tokio::time::sleep(self.load_pause).await;
        loaded
    }

    async fn save(
        &self,
        account: &str,
        state: &State,
        expected: Option<&StateVersion>,
    ) -> Result<SaveOutcome, StoreError> {
        let _one_at_a_time = self.in_flight.lock().await;
        let saved = self.inner.save(account, state, expected).await;
        if matches!(saved, Ok(SaveOutcome::Conflict)) {
            self.conflicts.fetch_add(1, Ordering::SeqCst);
        }
        saved
    }

    async fn acquire_lease(&self, account: &str, give_up_at: Option<tokio::time::Instant>) -> Result<(), StoreError> {
        match &self.leasing {
            Some(one_at_a_time) => {
                let _taking = one_at_a_time.lock().await;
                self.inner.acquire_lease(account, give_up_at).await
            }
            None => Ok(()),
        }
    }

    async fn release_lease(&self, account: &str) -> Result<(), StoreError> {
        match self.leasing {
            Some(_) => self.inner.release_lease(account).await,
            None => Ok(()),
        }
    }

    async fn quarantine(&self, account: &str, raw: &[u8]) -> Result<String, StoreError> {
        self.inner.quarantine(account, raw).await
    }

    fn location(&self, account: &str) -> String {
        self.inner.location(account)
    }
}
