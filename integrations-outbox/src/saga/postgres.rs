//! [`PostgresSagaLog`]: saga progress in the service's Postgres database (feature `postgres`).

use std::fmt;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgPool;

use super::log::{SagaLog, saga_not_found, version_conflict};
use super::types::{SagaState, SagaStatus};
use crate::postgres::{PostgresOptions, corrupt, describe_pool, migrate, sql_error, to_millis};
use integrations_core::{Error, Result};

/// A [`SagaLog`] in Postgres (table `integrations_saga_instances`), so a service on Postgres
/// needs no second database. [`SagaLog::update`] is one conditional `UPDATE … WHERE version =
/// offered - 1`: of two runners saving the same step, one wins and the other gets the version
/// conflict.
///
/// ```no_run
/// use integrations_outbox::saga::{PostgresSagaLog, SagaLog, SagaStatus};
/// use integrations_outbox::PostgresOutbox;
///
/// # async fn f() -> integrations_core::Result<()> {
/// let outbox = PostgresOutbox::connect(&std::env::var("DATABASE_URL").unwrap()).await?;
/// let log = PostgresSagaLog::from_pool(outbox.pool().clone()).await?;
/// assert!(log.list("checkout", SagaStatus::Running, 10).await?.is_empty());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresSagaLog {
    pool: PgPool,
}

impl fmt::Debug for PostgresSagaLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSagaLog")
            .field("target", &describe_pool(&self.pool))
            .finish_non_exhaustive()
    }
}

impl PostgresSagaLog {
    /// Connects with `options` and migrates the database.
    ///
    /// # Errors
    /// As for [`migrate`]; [`Error::Unavailable`] when the server cannot be reached.
    pub async fn connect_with(options: &PostgresOptions) -> Result<Self> {
        PostgresSagaLog::from_pool(options.connect().await?).await
    }

    /// Uses an existing pool and migrates the database.
    ///
    /// # Errors
    /// As for [`migrate`].
    pub async fn from_pool(pool: PgPool) -> Result<Self> {
        migrate(&pool).await?;
        Ok(PostgresSagaLog { pool })
    }
}

fn encode(state: &SagaState) -> Result<String> {
    serde_json::to_string(state)
        .map_err(|e| Error::invalid_input("saga_state", format!("not serialisable: {e}")))
}

fn version(state: &SagaState) -> Result<i64> {
    i64::try_from(state.version)
        .map_err(|_| Error::invalid_input("version", "larger than Postgres's bigint"))
}

#[async_trait]
impl SagaLog for PostgresSagaLog {
    async fn create(&self, state: &SagaState) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO integrations_saga_instances
                (saga_id, definition, status, version, state, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7) ON CONFLICT (saga_id) DO NOTHING",
        )
        .bind(&state.saga_id)
        .bind(&state.definition)
        .bind(state.status.as_str())
        .bind(version(state)?)
        .bind(encode(state)?)
        .bind(to_millis(state.created_at))
        .bind(to_millis(state.updated_at))
        .execute(&self.pool)
        .await
        .map_err(sql_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn update(&self, state: &SagaState) -> Result<()> {
        let offered = version(state)?;
        let row = sqlx::query(
            "WITH u AS (
                UPDATE integrations_saga_instances SET status = $2, version = $3,
                    state = $4::jsonb, updated_at = $5
                WHERE saga_id = $1 AND version = $3 - 1 RETURNING 1
            )
            SELECT (SELECT count(*) FROM u) AS updated,
                (SELECT version FROM integrations_saga_instances WHERE saga_id = $1) AS stored",
        )
        .bind(&state.saga_id)
        .bind(state.status.as_str())
        .bind(offered)
        .bind(encode(state)?)
        .bind(to_millis(state.updated_at))
        .fetch_one(&self.pool)
        .await
        .map_err(sql_error)?;
        let updated: i64 = row.try_get("updated").map_err(|e| corrupt("saga", e))?;
        // `stored` is read in the statement's snapshot: the version before this update.
        let stored: Option<i64> = row.try_get("stored").map_err(|e| corrupt("saga", e))?;
        match (updated, stored) {
            (1, _) => Ok(()),
            (_, None) => Err(saga_not_found(&state.saga_id)),
            (_, Some(v)) => Err(version_conflict(
                &state.saga_id,
                u64::try_from(v).unwrap_or(0),
                state.version,
            )),
        }
    }

    async fn load(&self, saga_id: &str) -> Result<Option<SagaState>> {
        let json: Option<String> = sqlx::query_scalar(
            "SELECT state::text FROM integrations_saga_instances WHERE saga_id = $1",
        )
        .bind(saga_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(sql_error)?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| corrupt("saga state", e)))
            .transpose()
    }

    async fn list(
        &self,
        definition: &str,
        status: SagaStatus,
        limit: usize,
    ) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT saga_id FROM integrations_saga_instances WHERE definition = $1 AND status = $2
             ORDER BY updated_at, saga_id LIMIT $3",
        )
        .bind(definition)
        .bind(status.as_str())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(sql_error)
    }
}
