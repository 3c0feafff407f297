//! [`SqliteSagaLog`]: saga progress in a SQLite file (feature `sqlite`).

use std::fmt;
use std::path::Path;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::log::{SagaLog, saga_not_found, version_conflict};
use super::types::{SagaState, SagaStatus};
use crate::{Access, Db, SqliteOptions, corrupt, sql_error, to_millis};
use integrations_core::{Error, Result};

const MIGRATIONS: &[&str] = &["
    CREATE TABLE saga_instances (
        saga_id TEXT PRIMARY KEY NOT NULL,
        definition TEXT NOT NULL,
        status TEXT NOT NULL,
        version INTEGER NOT NULL,
        state TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX saga_instances_status ON saga_instances (definition, status, updated_at);
"];

/// A [`SagaLog`] in a SQLite file, with the same settings as
/// [`SqliteOutbox`](crate::SqliteOutbox) (WAL, `synchronous = FULL` by default). It may
/// share the outbox's file: each keeps its own tables and schema version.
///
/// ```
/// use std::sync::Arc;
/// use integrations_outbox::saga::{SagaLog, SagaStatus, SqliteSagaLog};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let log = SqliteSagaLog::open(dir.path().join("app.db")).await?;
/// assert!(log.list("checkout", SagaStatus::Running, 10).await?.is_empty());
/// # Ok::<(), integrations_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct SqliteSagaLog {
    db: Db,
}

impl fmt::Debug for SqliteSagaLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteSagaLog")
            .field("path", &self.db.path())
            .finish_non_exhaustive()
    }
}

impl SqliteSagaLog {
    /// Opens (or creates) the log in the file at `path` with the default [`SqliteOptions`].
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the file cannot be opened; [`Error::Configuration`] if WAL mode
    /// is refused or the file holds a newer schema.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        SqliteSagaLog::open_with(path, SqliteOptions::default()).await
    }

    /// Opens (or creates) the log in the file at `path` with `options`.
    ///
    /// # Errors
    /// As for [`SqliteSagaLog::open`].
    pub async fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self> {
        let db = Db::open(path.as_ref(), &options, "saga", MIGRATIONS).await?;
        Ok(SqliteSagaLog { db })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        self.db.path()
    }
}

fn encode(state: &SagaState) -> Result<String> {
    serde_json::to_string(state)
        .map_err(|e| Error::invalid_input("saga_state", format!("not serialisable: {e}")))
}

#[async_trait]
impl SagaLog for SqliteSagaLog {
    async fn create(&self, state: &SagaState) -> Result<bool> {
        let json = encode(state)?;
        let s = state.clone();
        self.db
            .call(Access::DurableWrite, move |conn| {
                let n = conn
                    .execute(
                        "INSERT INTO saga_instances
                            (saga_id, definition, status, version, state, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (saga_id) DO NOTHING",
                        params![
                            s.saga_id,
                            s.definition,
                            s.status.as_str(),
                            s.version,
                            json,
                            to_millis(s.created_at),
                            to_millis(s.updated_at)
                        ],
                    )
                    .map_err(sql_error)?;
                Ok(n == 1)
            })
            .await
    }

    async fn update(&self, state: &SagaState) -> Result<()> {
        let json = encode(state)?;
        let s = state.clone();
        self.db
            .call(Access::DurableWrite, move |tx| {
                let stored: u64 = tx
                    .query_row(
                        "SELECT version FROM saga_instances WHERE saga_id = ?1",
                        [&s.saga_id],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(sql_error)?
                    .ok_or_else(|| saga_not_found(&s.saga_id))?;
                if stored.checked_add(1) != Some(s.version) {
                    return Err(version_conflict(&s.saga_id, stored, s.version));
                }
                tx.execute(
                    "UPDATE saga_instances SET status = ?2, version = ?3, state = ?4, updated_at = ?5
                     WHERE saga_id = ?1",
                    params![
                        s.saga_id,
                        s.status.as_str(),
                        s.version,
                        json,
                        to_millis(s.updated_at)
                    ],
                )
                .map_err(sql_error)?;
                Ok(())
            })
            .await
    }

    async fn load(&self, saga_id: &str) -> Result<Option<SagaState>> {
        let id = saga_id.to_owned();
        let json: Option<String> = self
            .db
            .call(Access::Read, move |conn| {
                conn.query_row(
                    "SELECT state FROM saga_instances WHERE saga_id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_error)
            })
            .await?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| corrupt("saga state", e)))
            .transpose()
    }

    async fn list(
        &self,
        definition: &str,
        status: SagaStatus,
        limit: usize,
    ) -> Result<Vec<String>> {
        let definition = definition.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .call(Access::Read, move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT saga_id FROM saga_instances WHERE definition = ?1 AND status = ?2
                         ORDER BY updated_at, saga_id LIMIT ?3",
                    )
                    .map_err(sql_error)?;
                let rows = stmt
                    .query_map(params![definition, status.as_str(), limit], |r| r.get(0))
                    .map_err(sql_error)?;
                rows.collect::<rusqlite::Result<Vec<String>>>()
                    .map_err(sql_error)
            })
            .await
    }
}
