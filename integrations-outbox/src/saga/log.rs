//! [`SagaLog`]: where saga progress is recorded, and [`InMemorySagaLog`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use super::types::{SagaState, SagaStatus};
use integrations_core::{Error, Result};

/// Durable record of saga progress, so a crashed saga resumes or compensates on restart.
///
/// A log stores [`SagaState`] snapshots whole. [`SagaLog::update`] is a compare-and-set on
/// [`SagaState::version`]: it succeeds only if the stored version is exactly one less, so two
/// processes driving one saga cannot both write (the second gets [`Error::Conflict`]).
#[async_trait]
pub trait SagaLog: Send + Sync + fmt::Debug {
    /// Stores a new saga; returns `false` (writing nothing) if the id exists.
    ///
    /// # Errors
    /// Store failures.
    async fn create(&self, state: &SagaState) -> Result<bool>;

    /// Replaces the stored snapshot with `state`, if the stored version is `state.version - 1`.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown saga; [`Error::Conflict`] on a version mismatch; store
    /// failures.
    async fn update(&self, state: &SagaState) -> Result<()>;

    /// The saga's snapshot, if any.
    ///
    /// # Errors
    /// Store failures.
    async fn load(&self, saga_id: &str) -> Result<Option<SagaState>>;

    /// Ids of up to `limit` sagas of `definition` in `status`, least recently updated first.
    ///
    /// # Errors
    /// Store failures.
    async fn list(&self, definition: &str, status: SagaStatus, limit: usize)
    -> Result<Vec<String>>;
}

#[async_trait]
impl<L: SagaLog + ?Sized> SagaLog for Arc<L> {
    async fn create(&self, state: &SagaState) -> Result<bool> {
        (**self).create(state).await
    }
    async fn update(&self, state: &SagaState) -> Result<()> {
        (**self).update(state).await
    }
    async fn load(&self, saga_id: &str) -> Result<Option<SagaState>> {
        (**self).load(saga_id).await
    }
    async fn list(
        &self,
        definition: &str,
        status: SagaStatus,
        limit: usize,
    ) -> Result<Vec<String>> {
        (**self).list(definition, status, limit).await
    }
}

/// The error for a version mismatch, for log implementations.
pub fn version_conflict(saga_id: &str, stored: u64, offered: u64) -> Error {
    Error::conflict(format!(
        "saga {saga_id}: stored version {stored}, save offered {offered}; another runner is driving it"
    ))
    .with_code("saga_version_conflict")
}

/// The error for an unknown saga id.
pub fn saga_not_found(saga_id: &str) -> Error {
    Error::not_found(format!("no saga {saga_id} in the log"))
}

/// A [`SagaLog`] in memory, for tests and examples (nothing survives the process).
#[derive(Default)]
pub struct InMemorySagaLog {
    sagas: Mutex<HashMap<String, SagaState>>,
}

impl InMemorySagaLog {
    /// An empty log.
    pub fn new() -> Self {
        InMemorySagaLog::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, SagaState>> {
        self.sagas.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for InMemorySagaLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemorySagaLog")
            .field("sagas", &self.lock().len())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl SagaLog for InMemorySagaLog {
    async fn create(&self, state: &SagaState) -> Result<bool> {
        let mut sagas = self.lock();
        if sagas.contains_key(&state.saga_id) {
            return Ok(false);
        }
        sagas.insert(state.saga_id.clone(), state.clone());
        Ok(true)
    }

    async fn update(&self, state: &SagaState) -> Result<()> {
        let mut sagas = self.lock();
        let stored = sagas
            .get_mut(&state.saga_id)
            .ok_or_else(|| saga_not_found(&state.saga_id))?;
        if stored.version.checked_add(1) != Some(state.version) {
            return Err(version_conflict(
                &state.saga_id,
                stored.version,
                state.version,
            ));
        }
        *stored = state.clone();
        Ok(())
    }

    async fn load(&self, saga_id: &str) -> Result<Option<SagaState>> {
        Ok(self.lock().get(saga_id).cloned())
    }

    async fn list(
        &self,
        definition: &str,
        status: SagaStatus,
        limit: usize,
    ) -> Result<Vec<String>> {
        let sagas = self.lock();
        let mut found: Vec<&SagaState> = sagas
            .values()
            .filter(|s| s.definition == definition && s.status == status)
            .collect();
        found.sort_by(|a, b| (a.updated_at, &a.saga_id).cmp(&(b.updated_at, &b.saga_id)));
        Ok(found
            .into_iter()
            .take(limit)
            .map(|s| s.saga_id.clone())
            .collect())
    }
}
