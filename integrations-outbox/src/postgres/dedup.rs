//! [`PostgresDedupStore`]: webhook event dedup in the service's Postgres database.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgPool;

use super::rows::to_millis;
use super::{PostgresOptions, describe_pool, migrate, sql_error};
use integrations_core::webhook::{DedupOutcome, DedupStore, MAX_TTL};
use integrations_core::{Clock, Error, Result, SystemClock};

/// Every this many inserts, one also removes a batch of expired keys.
const SWEEP_EVERY: u64 = 64;
/// Expired keys removed per sweep.
const SWEEP_BATCH: usize = 256;

/// A [`DedupStore`] in Postgres (table `integrations_dedup`), shared by every instance of a
/// service, so a webhook redelivered to another machine is still a duplicate. The insert is one
/// `INSERT … ON CONFLICT DO UPDATE … WHERE expired`: of any number of concurrent inserts of a
/// key exactly one is [`DedupOutcome::New`], and an expired record is taken over in place.
///
/// Expired keys are deleted in small batches by every 64th insert (and by
/// [`purge_expired`](PostgresDedupStore::purge_expired)), so the table follows the live keys.
/// Times come from the store's [`Clock`] (milliseconds).
#[derive(Clone)]
pub struct PostgresDedupStore {
    pool: PgPool,
    clock: Arc<dyn Clock>,
    inserts: Arc<AtomicU64>,
}

impl fmt::Debug for PostgresDedupStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresDedupStore")
            .field("target", &describe_pool(&self.pool))
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl PostgresDedupStore {
    /// Longest key accepted, in bytes (event ids are far shorter).
    pub const MAX_KEY_BYTES: usize = 1024;

    /// Connects with `options` and migrates the database.
    ///
    /// # Errors
    /// As for [`migrate`]; [`Error::Unavailable`] when the server cannot be reached.
    pub async fn connect_with(options: &PostgresOptions) -> Result<Self> {
        PostgresDedupStore::from_pool(options.connect().await?).await
    }

    /// Uses an existing pool (the outbox's: `outbox.pool().clone()`) and migrates the database.
    ///
    /// # Errors
    /// As for [`migrate`].
    pub async fn from_pool(pool: PgPool) -> Result<Self> {
        migrate(&pool).await?;
        Ok(PostgresDedupStore {
            pool,
            clock: Arc::new(SystemClock),
            inserts: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Uses `clock` for expiry.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Deletes up to `limit` keys that have expired; returns how many.
    ///
    /// # Errors
    /// Store failures.
    pub async fn purge_expired(&self, limit: usize) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM integrations_dedup WHERE key IN (
                SELECT key FROM integrations_dedup WHERE expires_at <= $1
                ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(to_millis(self.clock.now()))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .map_err(sql_error)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl DedupStore for PostgresDedupStore {
    async fn insert_if_absent(&self, key: &str, ttl: Duration) -> Result<DedupOutcome> {
        if key.is_empty() || key.len() > Self::MAX_KEY_BYTES || key.contains('\0') {
            return Err(Error::invalid_input(
                "key",
                format!(
                    "must be 1 to {} bytes without NUL characters",
                    Self::MAX_KEY_BYTES
                ),
            ));
        }
        let now = to_millis(self.clock.now());
        let ttl_ms = i64::try_from(ttl.min(MAX_TTL).as_millis()).unwrap_or(i64::MAX);
        // Round up: a record is live for at least `ttl`.
        let ttl_ms = ttl_ms + i64::from(!ttl.subsec_nanos().is_multiple_of(1_000_000));
        let fresh: Option<i32> = sqlx::query_scalar(
            "INSERT INTO integrations_dedup (key, expires_at) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at
                WHERE integrations_dedup.expires_at <= $3
             RETURNING 1",
        )
        .bind(key)
        .bind(now.saturating_add(ttl_ms))
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(sql_error)?;
        if self.inserts.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            if let Err(e) = self.purge_expired(SWEEP_BATCH).await {
                tracing::warn!(error = %e, "could not sweep expired dedup keys");
            }
        }
        Ok(if fresh.is_some() {
            DedupOutcome::New
        } else {
            DedupOutcome::Duplicate
        })
    }

    async fn release(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM integrations_dedup WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(sql_error)?;
        Ok(())
    }
}
