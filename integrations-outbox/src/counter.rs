//! [`OutboxCounter`]: an outbox's counts for something that asks often (a dashboard, a
//! monitoring snapshot), at a cost that follows the backlog rather than the store's size.
//!
//! [`OutboxStore::counts`] counts every done job and every event record, which a store
//! accumulates until it purges them (the reference service keeps 7 days): asked every couple
//! of seconds it costs more each day the service runs. [`OutboxStore::backlog`] reads only the
//! unfinished jobs. The counter reads the backlog on every call and the full counts (the done
//! jobs and event records) at most once per [`totals_every`](OutboxCounter::totals_every).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use integrations_core::Result;
use tokio::time::Instant;

use super::store::OutboxStore;
use super::types::OutboxCounts;

/// How often an [`OutboxCounter`] counts the done jobs and event records by default.
pub const DEFAULT_TOTALS_EVERY: Duration = Duration::from_secs(60);

/// Reads a store's [`OutboxCounts`]: the backlog (pending, leased, dead, oldest pending) fresh
/// on every [`read`](Self::read), the done jobs and event records as of the last full count,
/// made at most once per [`totals_every`](Self::totals_every) (first on the first read).
///
/// ```
/// use std::sync::Arc;
/// use integrations_outbox::{InMemoryOutbox, NewJob, OutboxCounter, OutboxStore};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = Arc::new(InMemoryOutbox::new());
/// let counter = OutboxCounter::new(store.clone());
/// store.record_event("evt_1", vec![NewJob::new("email", serde_json::json!({}))]).await?;
/// assert_eq!(counter.read().await?.pending, 1);
/// # Ok::<(), integrations_core::Error>(())
/// # }).unwrap();
/// ```
pub struct OutboxCounter {
    store: Arc<dyn OutboxStore>,
    totals_every: Duration,
    last: Mutex<Option<(Instant, OutboxCounts)>>,
}

impl std::fmt::Debug for OutboxCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxCounter")
            .field("totals_every", &self.totals_every)
            .finish_non_exhaustive()
    }
}

impl OutboxCounter {
    /// A counter over `store`, counting the totals every [`DEFAULT_TOTALS_EVERY`].
    pub fn new(store: Arc<dyn OutboxStore>) -> Self {
        OutboxCounter {
            store,
            totals_every: DEFAULT_TOTALS_EVERY,
            last: Mutex::new(None),
        }
    }

    /// Counts the done jobs and event records at most once per `every` (`Duration::ZERO`: on
    /// every read, as [`OutboxStore::counts`] does).
    #[must_use]
    pub fn totals_every(mut self, every: Duration) -> Self {
        self.totals_every = every;
        self
    }

    /// The counts: the backlog as of now, the done jobs and event records as of the last full
    /// count (see [`totals_read_at`](Self::totals_read_at)).
    ///
    /// # Errors
    /// The store's failures; a failed full count is tried again on the next read.
    pub async fn read(&self) -> Result<OutboxCounts> {
        let last = *self.last.lock().unwrap_or_else(PoisonError::into_inner);
        match last {
            Some((at, totals)) if at.elapsed() < self.totals_every => {
                Ok(totals.with_backlog(self.store.backlog().await?))
            }
            _ => {
                let counts = self.store.counts().await?;
                *self.last.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some((Instant::now(), counts));
                Ok(counts)
            }
        }
    }

    /// When the done jobs and event records were last counted (`None`: not yet).
    pub fn totals_read_at(&self) -> Option<Instant> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map(|(at, _)| at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InMemoryOutbox, NewJob};
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// An in-memory store that counts how often each count is asked for.
    #[derive(Debug, Default)]
    struct Asked {
        inner: InMemoryOutbox,
        counts: AtomicU64,
        backlogs: AtomicU64,
    }

    // Only what the counter calls is real; the rest is never reached.
    #[async_trait]
    impl OutboxStore for Asked {
        async fn record_event(
            &self,
            event_id: &str,
            jobs: Vec<NewJob>,
        ) -> Result<crate::RecordOutcome> {
            self.inner.record_event(event_id, jobs).await
        }
        async fn claim(
            &self,
            w: &str,
            max: usize,
            lease: Duration,
        ) -> Result<Vec<crate::ClaimedJob>> {
            self.inner.claim(w, max, lease).await
        }
        async fn complete(&self, id: &crate::JobId, lease: &crate::LeaseToken) -> Result<()> {
            self.inner.complete(id, lease).await
        }
        async fn fail(
            &self,
            id: &crate::JobId,
            lease: &crate::LeaseToken,
            error: crate::ErrorRecord,
            retry_at: Option<std::time::SystemTime>,
        ) -> Result<crate::FailOutcome> {
            self.inner.fail(id, lease, error, retry_at).await
        }
        async fn job(&self, id: &crate::JobId) -> Result<Option<crate::JobRecord>> {
            self.inner.job(id).await
        }
        async fn dead_letters(&self, limit: usize) -> Result<Vec<crate::DeadLetter>> {
            self.inner.dead_letters(limit).await
        }
        async fn replay(&self, id: &crate::JobId) -> Result<()> {
            self.inner.replay(id).await
        }
        async fn counts(&self) -> Result<OutboxCounts> {
            self.counts.fetch_add(1, Ordering::Relaxed);
            self.inner.counts().await
        }
        async fn backlog(&self) -> Result<crate::OutboxBacklog> {
            self.backlogs.fetch_add(1, Ordering::Relaxed);
            self.inner.backlog().await
        }
        async fn purge(&self, older_than: std::time::SystemTime) -> Result<crate::PurgeOutcome> {
            self.inner.purge(older_than).await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn totals_are_counted_once_per_interval_and_the_backlog_on_every_read() {
        let store = Arc::new(Asked::default());
        let counter = OutboxCounter::new(store.clone()).totals_every(Duration::from_secs(60));
        let job = || vec![NewJob::new("email", serde_json::json!({}))];
        store.record_event("evt_1", job()).await.unwrap();
        let first = counter.read().await.unwrap();
        assert_eq!((first.pending, first.events), (1, 1));
        assert!(counter.totals_read_at().is_some());

        // Within the interval: the backlog is fresh, the totals are the first count's.
        store.record_event("evt_2", job()).await.unwrap();
        let claimed = store.claim("w", 1, Duration::from_secs(30)).await.unwrap();
        store
            .complete(&claimed[0].job.id, &claimed[0].lease)
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(30)).await;
        let c = counter.read().await.unwrap();
        assert_eq!((c.pending, c.leased), (1, 0), "the backlog as of now");
        assert_eq!(
            (c.done, c.events),
            (0, 1),
            "the totals as of the first count"
        );
        assert_eq!(store.counts.load(Ordering::Relaxed), 1);
        assert_eq!(store.backlogs.load(Ordering::Relaxed), 1);

        // Past it: counted in full again.
        tokio::time::advance(Duration::from_secs(31)).await;
        let c = counter.read().await.unwrap();
        assert_eq!((c.pending, c.done, c.events), (1, 1, 2));
        assert_eq!(store.counts.load(Ordering::Relaxed), 2);

        // A zero interval counts in full every time, as `counts` does.
        let every = OutboxCounter::new(store.clone()).totals_every(Duration::ZERO);
        for _ in 0..3 {
            every.read().await.unwrap();
        }
        assert_eq!(store.counts.load(Ordering::Relaxed), 5);
        assert_eq!(store.backlogs.load(Ordering::Relaxed), 1);
    }
}
