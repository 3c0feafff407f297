//! The fair durable baseline's bookkeeping, written by hand: what raw must add to survive a
//! crash with no side effect lost — one durable insert per event (the event and its four job
//! rows, one commit), one update per delivered job. No leases, no retries, no dead letters.
//!
//! SQLite: WAL, the event's commit fsynced (`synchronous = FULL`), the updates with `NORMAL`
//! (as `SqliteOutbox` does: a power cut can only undo the latest, which re-runs those jobs).
//! Postgres: each statement its own commit, fsynced (the server's default).

use std::sync::{Arc, Mutex, PoisonError};

use integrations_outbox::PostgresOptions;
use integrations_outbox::postgres::sqlx::{self, PgPool};
use integrations_outbox::postgres::testing::TestDatabase;
use rusqlite::{Connection, params};

use crate::raw::RawResult;

/// Which database the baseline writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Db {
    Sqlite,
    Postgres,
}

pub(crate) enum Ledger {
    Sqlite {
        conn: Arc<Mutex<Connection>>,
        _dir: tempfile::TempDir,
    },
    Postgres {
        pool: PgPool,
        db: Option<Box<TestDatabase>>,
    },
}

const SCHEMA: &str =
    "CREATE TABLE events (event_id TEXT PRIMARY KEY, recorded_at INTEGER NOT NULL);
    CREATE TABLE jobs (id INTEGER PRIMARY KEY, event_id TEXT NOT NULL, kind TEXT NOT NULL,
        done INTEGER NOT NULL DEFAULT 0);";

const PG_SCHEMA: &str =
    "CREATE TABLE events (event_id text PRIMARY KEY, recorded_at bigint NOT NULL);
    CREATE TABLE jobs (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, event_id text NOT NULL,
        kind text NOT NULL, done boolean NOT NULL DEFAULT false);";

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(0)
}

/// The pool both Postgres sides use, so that neither has more connections (server processes)
/// than the other: enough for `concurrency` orders each recording while their jobs are claimed
/// and completed. No ping before each call unless `ORDER_FLOW_PG_PING=1` (the ping is a second
/// round trip per statement, on both sides alike).
pub(crate) fn pg_options(db: &TestDatabase, concurrency: usize) -> PostgresOptions {
    db.options()
        .clone()
        .max_connections(u32::try_from(2 * concurrency + 4).unwrap_or(64))
        .test_before_acquire(std::env::var_os("ORDER_FLOW_PG_PING").is_some_and(|v| v == "1"))
}

impl Ledger {
    pub(crate) async fn open(db: Db, concurrency: usize) -> RawResult<Ledger> {
        match db {
            Db::Sqlite => {
                let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                let conn =
                    Connection::open(dir.path().join("raw.db")).map_err(|e| e.to_string())?;
                conn.execute_batch("PRAGMA journal_mode = WAL;")
                    .map_err(|e| e.to_string())?;
                conn.execute_batch(SCHEMA).map_err(|e| e.to_string())?;
                Ok(Ledger::Sqlite {
                    conn: Arc::new(Mutex::new(conn)),
                    _dir: dir,
                })
            }
            Db::Postgres => {
                let db = TestDatabase::create("bench_raw")
                    .await
                    .ok_or("no Postgres test server (.ci/postgres.sh start)")?;
                let pool = pg_options(&db, concurrency)
                    .connect()
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::raw_sql(PG_SCHEMA)
                    .execute(&pool)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Ledger::Postgres {
                    pool,
                    db: Some(Box::new(db)),
                })
            }
        }
    }

    /// The event and its jobs in one durable commit; `None` if the event was recorded before.
    pub(crate) async fn record(
        &self,
        event_id: &str,
        kinds: &[&str],
    ) -> RawResult<Option<Vec<i64>>> {
        match self {
            Ledger::Sqlite { conn, .. } => {
                let conn = conn.clone();
                let event_id = event_id.to_owned();
                let kinds: Vec<String> = kinds.iter().map(|k| (*k).to_owned()).collect();
                tokio::task::spawn_blocking(move || {
                    let mut c = conn.lock().unwrap_or_else(PoisonError::into_inner);
                    c.execute_batch("PRAGMA synchronous = FULL")
                        .map_err(|e| e.to_string())?;
                    let tx = c.transaction().map_err(|e| e.to_string())?;
                    let n = tx
                        .execute(
                            "INSERT INTO events VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                            params![event_id, now()],
                        )
                        .map_err(|e| e.to_string())?;
                    if n == 0 {
                        return Ok(None);
                    }
                    let mut ids = Vec::with_capacity(kinds.len());
                    for k in &kinds {
                        tx.execute(
                            "INSERT INTO jobs (event_id, kind) VALUES (?1, ?2)",
                            params![event_id, k],
                        )
                        .map_err(|e| e.to_string())?;
                        ids.push(tx.last_insert_rowid());
                    }
                    tx.commit().map_err(|e| e.to_string())?;
                    Ok(Some(ids))
                })
                .await
                .map_err(|e| e.to_string())?
            }
            Ledger::Postgres { pool, .. } => {
                let row: (i64, Option<Vec<i64>>) = sqlx::query_as(
                    "WITH ev AS (
                        INSERT INTO events VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING event_id
                    ), ins AS (
                        INSERT INTO jobs (event_id, kind)
                        SELECT ev.event_id, k FROM ev CROSS JOIN unnest($3::text[]) AS k
                        RETURNING id
                    )
                    SELECT (SELECT count(*) FROM ev), (SELECT array_agg(id) FROM ins)",
                )
                .bind(event_id)
                .bind(now())
                .bind(kinds)
                .fetch_one(pool)
                .await
                .map_err(|e| e.to_string())?;
                Ok((row.0 == 1).then(|| row.1.unwrap_or_default()))
            }
        }
    }

    /// Marks a job delivered.
    pub(crate) async fn done(&self, id: i64) -> RawResult<()> {
        match self {
            Ledger::Sqlite { conn, .. } => {
                let conn = conn.clone();
                tokio::task::spawn_blocking(move || {
                    let c = conn.lock().unwrap_or_else(PoisonError::into_inner);
                    c.execute_batch("PRAGMA synchronous = NORMAL")
                        .map_err(|e| e.to_string())?;
                    c.execute("UPDATE jobs SET done = 1 WHERE id = ?1", [id])
                        .map_err(|e| e.to_string())?;
                    Ok(())
                })
                .await
                .map_err(|e| e.to_string())?
            }
            Ledger::Postgres { pool, .. } => {
                sqlx::query("UPDATE jobs SET done = true WHERE id = $1")
                    .bind(id)
                    .execute(pool)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(())
            }
        }
    }

    /// Drops the database the Postgres baseline made.
    pub(crate) async fn close(self) {
        if let Ledger::Postgres { pool, db } = self {
            pool.close().await;
            if let Some(db) = db {
                let _ = db.drop_database().await;
            }
        }
    }
}
