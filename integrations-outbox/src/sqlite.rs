//! [`SqliteOutbox`]: the embedded default store, one SQLite file (feature `sqlite`).

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::db::{Access, Db, SqliteOptions, corrupt, sql_error};
use super::store::{
    OutboxStore, check_claim, check_claim_kinds, job_not_found, lease_expired_error, lease_lost,
};
use super::types::{
    ClaimedJob, DeadLetter, FailOutcome, Job, JobId, JobRecord, JobState, LeaseOnRecord,
    LeaseToken, NewJob, OutboxBacklog, OutboxCounts, PurgeOutcome, RecordOutcome, from_millis,
    to_millis,
};
use integrations_core::ErrorRecord;
use integrations_core::{Clock, SystemClock};
use integrations_core::{Error, IdempotencyKey, Result};

mod record;
use record::Prepared;

const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE outbox_events (
        event_id TEXT PRIMARY KEY NOT NULL,
        recorded_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE outbox_jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'leased', 'done', 'dead')),
        attempts INTEGER NOT NULL,
        max_attempts INTEGER NOT NULL,
        available_at INTEGER NOT NULL,
        lease_token TEXT,
        leased_by TEXT,
        lease_expires_at INTEGER,
        last_error TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (event_id, idempotency_key)
    );
    CREATE INDEX outbox_jobs_pending ON outbox_jobs (available_at, id) WHERE state = 'pending';
    CREATE INDEX outbox_jobs_leased ON outbox_jobs (lease_expires_at, id) WHERE state = 'leased';
    CREATE INDEX outbox_jobs_dead ON outbox_jobs (id) WHERE state = 'dead';
    CREATE INDEX outbox_jobs_done ON outbox_jobs (updated_at) WHERE state = 'done';
",
    "
    -- Whether the last error may have left an effect (1), certainly did not (0), or was recorded
    -- before this column existed (NULL: guessed from the error's kind on read).
    ALTER TABLE outbox_jobs ADD COLUMN may_have_acted INTEGER;
",
    "
    -- The W3C traceparent of the span that recorded the job (NULL: none, or recorded before
    -- this column existed).
    ALTER TABLE outbox_jobs ADD COLUMN traceparent TEXT;
",
    "
    -- Claims by kind (`claim_kinds`): each kind's due jobs in order, without reading other kinds.
    CREATE INDEX outbox_jobs_pending_kind ON outbox_jobs (kind, available_at, id)
        WHERE state = 'pending';
    CREATE INDEX outbox_jobs_leased_kind ON outbox_jobs (kind, lease_expires_at, id)
        WHERE state = 'leased';
",
    "
    -- Leased rows are the jobs in flight, few at any time: the per-kind index serves the claims
    -- of any kind too, and each record and completion writes one index page less.
    DROP INDEX outbox_jobs_leased;
",
];

const COLS: &str = "id, event_id, kind, idempotency_key, payload, state, attempts, max_attempts, \
    available_at, lease_token, leased_by, lease_expires_at, last_error, may_have_acted, created_at, \
    updated_at, traceparent";

/// The durable [`OutboxStore`] in one SQLite file: WAL journal, `synchronous = FULL` by default
/// (see [`SqliteOptions`] for the trade-off), a busy timeout, schema migrated on open.
///
/// rusqlite is synchronous, so calls run on tokio's blocking pool over one connection; calls that
/// queue up while a commit is under way share the next transaction and commit (group commit),
/// each in its own savepoint, so a failing call is rolled back alone. Writes take the write lock up front (`BEGIN IMMEDIATE`), so several processes
/// may share the file and still never claim one job twice.
///
/// Only what must outlive a power cut is fsynced under `synchronous = FULL`: recording an event
/// (after which a webhook answers `200`) and replaying a dead letter. Claims, completions and
/// failures are committed with `NORMAL`: they survive a process kill, and a power cut can only
/// undo the latest of them, which delivers those jobs again (at least once, never lost); the next
/// durable commit makes them durable too.
///
/// ```
/// use std::time::Duration;
/// use integrations_outbox::{NewJob, OutboxStore, SqliteOutbox};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("outbox.db");
/// let outbox = SqliteOutbox::open(&path).await?;
/// outbox.record_event("evt_1", vec![NewJob::new("notify", serde_json::json!({}))]).await?;
/// drop(outbox);
///
/// let outbox = SqliteOutbox::open(&path).await?; // survives a restart
/// let claimed = outbox.claim("w1", 10, Duration::from_secs(30)).await?;
/// assert_eq!(claimed[0].job.kind, "notify");
/// # Ok::<(), integrations_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct SqliteOutbox {
    db: Db,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for SqliteOutbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteOutbox")
            .field("path", &self.db.path())
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl SqliteOutbox {
    /// Opens (or creates) the outbox in the file at `path` with the default [`SqliteOptions`].
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the file cannot be opened; [`Error::Configuration`] if WAL mode
    /// is refused or the file holds a newer schema.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        SqliteOutbox::open_with(path, SqliteOptions::default()).await
    }

    /// Opens (or creates) the outbox in the file at `path` with `options`.
    ///
    /// # Errors
    /// As for [`SqliteOutbox::open`].
    pub async fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self> {
        let db = Db::open(path.as_ref(), &options, "outbox", MIGRATIONS).await?;
        Ok(SqliteOutbox {
            db,
            clock: Arc::new(SystemClock),
        })
    }

    /// Uses `clock` for retry times and leases.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The file.
    pub fn path(&self) -> &Path {
        self.db.path()
    }

    /// Jobs pending and leased: what is left to deliver (the first two figures of
    /// [`OutboxStore::backlog`], which reads only the unfinished jobs).
    ///
    /// # Errors
    /// Store failures.
    pub async fn unfinished(&self) -> Result<(u64, u64)> {
        let b = self.backlog().await?;
        Ok((b.pending, b.leased))
    }

    /// Records `event_id` and its `jobs` **inside the caller's own SQLite transaction** `tx`, on
    /// a connection of its own to this outbox's file (the service's orders in the same file):
    /// they commit with the caller's writes or roll back with them. Otherwise as
    /// [`OutboxStore::record_event`]; a duplicate event id writes nothing. Synchronous, like
    /// every rusqlite call: run it where the caller runs its transaction (a blocking thread).
    ///
    /// The commit is the caller's: make its connection's `synchronous` at least what this store
    /// uses for recorded events (`FULL` by default) if a power cut must not undo it. Nothing wakes
    /// a dispatcher (SQLite has no notifications): wake it after the commit.
    ///
    /// # Errors
    /// As for [`OutboxStore::record_event`] (input errors before any SQL runs);
    /// [`Error::Provider`] naming the table when `tx` is on a file this outbox has not migrated.
    pub fn record_event_in(
        &self,
        tx: &rusqlite::Transaction<'_>,
        event_id: &str,
        jobs: Vec<NewJob>,
    ) -> Result<RecordOutcome> {
        Prepared::new(event_id, jobs, self.now())?.insert(tx)
    }

    fn now(&self) -> i64 {
        to_millis(self.clock.now())
    }
}

fn db_id(id: &JobId) -> Option<i64> {
    id.as_str().parse().ok()
}

struct Loaded {
    record: JobRecord,
    token: Option<LeaseToken>,
}

/// A job row as stored, before its key, payload, state and error are parsed.
struct RawJob {
    id: i64,
    event_id: String,
    kind: String,
    key: String,
    payload: String,
    state: String,
    attempts: u32,
    max_attempts: u32,
    available_at: i64,
    token: Option<String>,
    leased_by: Option<String>,
    lease_expires_at: Option<i64>,
    last_error: Option<String>,
    may_have_acted: Option<bool>,
    created_at: i64,
    updated_at: i64,
    traceparent: Option<String>,
}

fn raw(r: &Row<'_>) -> rusqlite::Result<RawJob> {
    Ok(RawJob {
        id: r.get("id")?,
        event_id: r.get("event_id")?,
        kind: r.get("kind")?,
        key: r.get("idempotency_key")?,
        payload: r.get("payload")?,
        state: r.get("state")?,
        attempts: r.get("attempts")?,
        max_attempts: r.get("max_attempts")?,
        available_at: r.get("available_at")?,
        token: r.get("lease_token")?,
        leased_by: r.get("leased_by")?,
        lease_expires_at: r.get("lease_expires_at")?,
        last_error: r.get("last_error")?,
        may_have_acted: r.get("may_have_acted")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
        traceparent: r.get("traceparent")?,
    })
}

impl RawJob {
    fn parse(self) -> Result<Loaded> {
        let key = IdempotencyKey::new(self.key).map_err(|e| corrupt("idempotency key", e))?;
        let payload = serde_json::from_str(&self.payload).map_err(|e| corrupt("payload", e))?;
        let state = JobState::parse(&self.state)
            .ok_or_else(|| corrupt("job state", format!("unknown state `{}`", self.state)))?;
        let last_error = self
            .last_error
            .map(|s| serde_json::from_str::<ErrorRecord>(&s))
            .transpose()
            .map_err(|e| corrupt("last error", e))?
            .map(|mut e| {
                e.may_have_acted = e.may_have_acted.or(self.may_have_acted);
                e
            });
        Ok(Loaded {
            record: JobRecord {
                job: Job {
                    id: JobId::new(self.id.to_string()),
                    event_id: self.event_id,
                    kind: self.kind,
                    payload,
                    idempotency_key: key,
                    attempt: self.attempts,
                    max_attempts: self.max_attempts,
                    created_at: from_millis(self.created_at),
                    traceparent: self.traceparent,
                },
                state,
                available_at: from_millis(self.available_at),
                leased_by: self.leased_by,
                lease_expires_at: self.lease_expires_at.map(from_millis),
                last_error,
                updated_at: from_millis(self.updated_at),
            },
            token: self.token.map(LeaseToken::new),
        })
    }
}

fn load_one(conn: &Connection, id: i64) -> Result<Option<Loaded>> {
    conn.prepare_cached(&format!("SELECT {COLS} FROM outbox_jobs WHERE id = ?1"))
        .map_err(sql_error)?
        .query_row([id], raw)
        .optional()
        .map_err(sql_error)?
        .map(RawJob::parse)
        .transpose()
}

/// Runs a cached statement that changes rows; returns how many.
pub(super) fn exec(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<usize> {
    conn.prepare_cached(sql)
        .map_err(sql_error)?
        .execute(params)
        .map_err(sql_error)
}

/// Loads a job for a lease-checked update, or the right error.
fn leased(tx: &Connection, job_id: &JobId, token: &LeaseToken) -> Result<(i64, JobRecord)> {
    let id = db_id(job_id).ok_or_else(|| job_not_found(job_id))?;
    let loaded = load_one(tx, id)?.ok_or_else(|| job_not_found(job_id))?;
    if loaded.record.state != JobState::Leased || loaded.token.as_ref() != Some(token) {
        return Err(lease_lost(job_id));
    }
    Ok((id, loaded.record))
}

fn error_json(e: &ErrorRecord) -> Result<String> {
    serde_json::to_string(e).map_err(|e| corrupt("error record", e))
}

/// Pending and leased jobs, counted on their partial indexes.
/// [`OutboxStore::backlog`]: each count on the partial index of its state, the oldest due time
/// the first entry of the pending index; no done job and no event record is read.
const BACKLOG: &str = "SELECT (SELECT count(*) FROM outbox_jobs WHERE state = 'pending'), \
     (SELECT count(*) FROM outbox_jobs WHERE state = 'leased'), \
     (SELECT count(*) FROM outbox_jobs WHERE state = 'dead'), \
     (SELECT min(available_at) FROM outbox_jobs WHERE state = 'pending')";

/// [`OutboxStore::counts`]: the backlog's figures, then the part that grows until a purge — the
/// done jobs (counted on their partial index: its entries, not the rows with their payloads)
/// and the event records.
const COUNTS: &str = "SELECT (SELECT count(*) FROM outbox_jobs WHERE state = 'pending'), \
     (SELECT count(*) FROM outbox_jobs WHERE state = 'leased'), \
     (SELECT count(*) FROM outbox_jobs WHERE state = 'dead'), \
     (SELECT min(available_at) FROM outbox_jobs WHERE state = 'pending'), \
     (SELECT count(*) FROM outbox_jobs WHERE state = 'done'), \
     (SELECT count(*) FROM outbox_events)";

/// Pending jobs that are due, oldest first (served by the `outbox_jobs_pending` index).
const PENDING_DUE: &str = "SELECT id, state, attempts, max_attempts, available_at FROM outbox_jobs
    WHERE state = 'pending' AND available_at <= ?1 ORDER BY available_at, id LIMIT ?2";
/// Leased jobs whose lease has run out, oldest first (read on `outbox_jobs_leased_kind`: only
/// the leased rows, the jobs in flight, are read and sorted).
const LEASE_EXPIRED: &str = "SELECT id, state, attempts, max_attempts, lease_expires_at
    FROM outbox_jobs WHERE state = 'leased' AND lease_expires_at <= ?1
    ORDER BY lease_expires_at, id LIMIT ?2";

/// [`PENDING_DUE`] of one kind (`?3`), served by `outbox_jobs_pending_kind`.
const PENDING_DUE_KIND: &str = "SELECT id, state, attempts, max_attempts, available_at
    FROM outbox_jobs WHERE state = 'pending' AND kind = ?3 AND available_at <= ?1
    ORDER BY available_at, id LIMIT ?2";
/// [`LEASE_EXPIRED`] of one kind (`?3`), served by `outbox_jobs_leased_kind`.
const LEASE_EXPIRED_KIND: &str = "SELECT id, state, attempts, max_attempts, lease_expires_at
    FROM outbox_jobs WHERE state = 'leased' AND kind = ?3 AND lease_expires_at <= ?1
    ORDER BY lease_expires_at, id LIMIT ?2";

/// A job a claim may take.
struct Due {
    id: i64,
    leased: bool,
    attempts: u32,
    max_attempts: u32,
    /// When it became due.
    at: i64,
}

/// Up to `want` jobs due at `now`, oldest first: of any kind, or of each of `kinds` (one
/// index-ordered scan per kind and state, each stopping at `want`, merged here).
fn due_jobs(tx: &Connection, kinds: Option<&[String]>, now: i64, want: i64) -> Result<Vec<Due>> {
    let mut ids = Vec::new();
    match kinds {
        None => {
            ids.extend(due(tx, PENDING_DUE, params![now, want])?);
            ids.extend(due(tx, LEASE_EXPIRED, params![now, want])?);
        }
        Some(kinds) => {
            for kind in kinds {
                ids.extend(due(tx, PENDING_DUE_KIND, params![now, want, kind])?);
                ids.extend(due(tx, LEASE_EXPIRED_KIND, params![now, want, kind])?);
            }
        }
    }
    ids.sort_unstable_by_key(|d| (d.at, d.id));
    ids.truncate(usize::try_from(want).unwrap_or(usize::MAX));
    Ok(ids)
}

fn due(tx: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Due>> {
    let mut stmt = tx.prepare_cached(sql).map_err(sql_error)?;
    let rows = stmt
        .query_map(params, |r| {
            Ok(Due {
                id: r.get(0)?,
                leased: r.get::<_, String>(1)? == "leased",
                attempts: r.get(2)?,
                max_attempts: r.get(3)?,
                at: r.get(4)?,
            })
        })
        .map_err(sql_error)?;
    rows.collect::<rusqlite::Result<_>>().map_err(sql_error)
}

fn claim_tx(
    tx: &Connection,
    worker: &str,
    kinds: Option<&[String]>,
    max: usize,
    lease: Duration,
    now: i64,
) -> Result<Vec<ClaimedJob>> {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let expires = now.saturating_add(lease_ms);
    let mut claimed = Vec::new();
    // Dead-lettering an exhausted expired job frees its place, so select again until full.
    while claimed.len() < max {
        let want = i64::try_from(max - claimed.len()).unwrap_or(i64::MAX);
        // Index-ordered scans that stop at `want` rows each, merged here: one `ORDER BY` over
        // their union would read and sort every due job on each claim.
        let ids = due_jobs(tx, kinds, now, want)?;
        if ids.is_empty() {
            break;
        }
        for Due {
            id,
            leased,
            attempts,
            max_attempts,
            ..
        } in ids
        {
            if leased && attempts >= max_attempts {
                exec(
                    tx,
                    "UPDATE outbox_jobs SET state = 'dead', lease_token = NULL, leased_by = NULL,
                        lease_expires_at = NULL, last_error = ?2, may_have_acted = ?4,
                        updated_at = ?3 WHERE id = ?1",
                    params![
                        id,
                        error_json(&lease_expired_error(attempts))?,
                        now,
                        lease_expired_error(attempts).may_have_acted()
                    ],
                )?;
                tracing::warn!(
                    job_id = id,
                    "outbox job dead-lettered: lease expired with no attempts left"
                );
                continue;
            }
            let token = LeaseToken::random();
            exec(
                tx,
                "UPDATE outbox_jobs SET state = 'leased', attempts = attempts + 1, lease_token = ?2,
                    leased_by = ?3, lease_expires_at = ?4, updated_at = ?5 WHERE id = ?1",
                params![id, token.as_str(), worker, expires, now],
            )?;
            let loaded =
                load_one(tx, id)?.ok_or_else(|| job_not_found(&JobId::new(id.to_string())))?;
            claimed.push(ClaimedJob {
                job: loaded.record.job,
                lease: token,
                lease_expires_at: from_millis(expires),
            });
        }
    }
    Ok(claimed)
}

#[async_trait]
impl OutboxStore for SqliteOutbox {
    async fn record_event(&self, event_id: &str, jobs: Vec<NewJob>) -> Result<RecordOutcome> {
        let prepared = Prepared::new(event_id, jobs, self.now())?;
        self.db
            .call(Access::DurableWrite, move |tx| prepared.insert(tx))
            .await
    }

    async fn record_event_leased(
        &self,
        event_id: &str,
        jobs: Vec<NewJob>,
        to: LeaseOnRecord<'_>,
    ) -> Result<(RecordOutcome, Vec<ClaimedJob>)> {
        check_claim_kinds(to.worker_id, to.kinds, to.lease)?;
        let prepared = Prepared::new(event_id, jobs, self.now())?.leased(to);
        self.db
            .call(Access::DurableWrite, move |tx| prepared.insert_leased(tx))
            .await
    }

    fn leases_on_record(&self) -> bool {
        true
    }

    async fn claim(&self, worker_id: &str, max: usize, lease: Duration) -> Result<Vec<ClaimedJob>> {
        check_claim(worker_id, lease)?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = self.now();
        let worker = worker_id.to_owned();
        self.db
            .call(Access::Write, move |tx| {
                claim_tx(tx, &worker, None, max, lease, now)
            })
            .await
    }

    fn claims_by_kind(&self) -> bool {
        true
    }

    async fn claim_kinds(
        &self,
        worker_id: &str,
        kinds: &[&str],
        max: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedJob>> {
        let kinds: Vec<String> = check_claim_kinds(worker_id, kinds, lease)?
            .into_iter()
            .map(str::to_owned)
            .collect();
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = self.now();
        let worker = worker_id.to_owned();
        self.db
            .call(Access::Write, move |tx| {
                claim_tx(tx, &worker, Some(&kinds), max, lease, now)
            })
            .await
    }

    async fn complete(&self, job_id: &JobId, lease: &LeaseToken) -> Result<()> {
        let (job_id, lease, now) = (job_id.clone(), lease.clone(), self.now());
        self.db
            .call(Access::Write, move |tx| {
                let (id, _) = leased(tx, &job_id, &lease)?;
                exec(
                    tx,
                    "UPDATE outbox_jobs SET state = 'done', lease_token = NULL, leased_by = NULL,
                        lease_expires_at = NULL, updated_at = ?2 WHERE id = ?1",
                    params![id, now],
                )?;
                Ok(())
            })
            .await
    }

    async fn fail(
        &self,
        job_id: &JobId,
        lease: &LeaseToken,
        error: ErrorRecord,
        retry_at: Option<SystemTime>,
    ) -> Result<FailOutcome> {
        let (job_id, lease, now) = (job_id.clone(), lease.clone(), self.now());
        let may_have_acted = error.may_have_acted();
        let error = error_json(&error)?;
        self.db
            .call(Access::Write, move |tx| {
                let (id, record) = leased(tx, &job_id, &lease)?;
                let attempts = record.job.attempt;
                let outcome = match retry_at {
                    Some(at) if attempts < record.job.max_attempts => FailOutcome::Retrying {
                        attempts,
                        retry_at: at,
                    },
                    _ => FailOutcome::DeadLettered { attempts },
                };
                let (state, available_at) = match outcome {
                    FailOutcome::Retrying { retry_at, .. } => ("pending", to_millis(retry_at)),
                    FailOutcome::DeadLettered { .. } => ("dead", to_millis(record.available_at)),
                };
                exec(
                    tx,
                    "UPDATE outbox_jobs SET state = ?2, available_at = ?3, lease_token = NULL,
                        leased_by = NULL, lease_expires_at = NULL, last_error = ?4, updated_at = ?5,
                        may_have_acted = ?6
                     WHERE id = ?1",
                    params![id, state, available_at, error, now, may_have_acted],
                )?;
                Ok(outcome)
            })
            .await
    }

    async fn job(&self, job_id: &JobId) -> Result<Option<JobRecord>> {
        let Some(id) = db_id(job_id) else {
            return Ok(None);
        };
        self.db
            .call(Access::Read, move |conn| {
                Ok(load_one(conn, id)?.map(|l| l.record))
            })
            .await
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .call(Access::Read, move |conn| {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {COLS} FROM outbox_jobs WHERE state = 'dead' ORDER BY id LIMIT ?1"
                    ))
                    .map_err(sql_error)?;
                let rows = stmt.query_map([limit], raw).map_err(sql_error)?;
                let mut out = Vec::new();
                for row in rows {
                    let loaded = row.map_err(sql_error)?.parse()?;
                    out.extend(DeadLetter::from_record(loaded.record));
                }
                Ok(out)
            })
            .await
    }

    async fn replay(&self, job_id: &JobId) -> Result<()> {
        let (job_id, now) = (job_id.clone(), self.now());
        self.db
            .call(Access::DurableWrite, move |tx| {
                let id = db_id(&job_id).ok_or_else(|| job_not_found(&job_id))?;
                let loaded = load_one(tx, id)?.ok_or_else(|| job_not_found(&job_id))?;
                if loaded.record.state != JobState::Dead {
                    return Err(Error::conflict(format!(
                        "job {job_id} is {}, only dead letters can be replayed",
                        loaded.record.state.as_str()
                    )));
                }
                exec(
                    tx,
                    "UPDATE outbox_jobs SET state = 'pending', attempts = 0, available_at = ?2,
                        updated_at = ?2 WHERE id = ?1",
                    params![id, now],
                )?;
                Ok(())
            })
            .await
    }

    async fn counts(&self) -> Result<OutboxCounts> {
        let now = self.now();
        self.db
            .call(Access::Read, move |conn| {
                // One statement, so one snapshot: every job is counted in one state.
                let (pending, leased, dead, oldest, done, events) = conn
                    .prepare_cached(COUNTS)
                    .map_err(sql_error)?
                    .query_row([], |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get::<_, Option<i64>>(3)?,
                            r.get(4)?,
                            r.get(5)?,
                        ))
                    })
                    .map_err(sql_error)?;
                Ok(OutboxCounts {
                    pending,
                    leased,
                    done,
                    dead,
                    events,
                    ..OutboxCounts::default()
                }
                .with_oldest_pending(oldest.map(from_millis), from_millis(now)))
            })
            .await
    }

    async fn backlog(&self) -> Result<OutboxBacklog> {
        let now = self.now();
        self.db
            .call(Access::Read, move |conn| {
                let (pending, leased, dead, oldest) = conn
                    .prepare_cached(BACKLOG)
                    .map_err(sql_error)?
                    .query_row([], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, Option<i64>>(3)?))
                    })
                    .map_err(sql_error)?;
                Ok(OutboxBacklog {
                    pending,
                    leased,
                    dead,
                    ..OutboxBacklog::default()
                }
                .with_oldest_pending(oldest.map(from_millis), from_millis(now)))
            })
            .await
    }

    async fn purge(&self, older_than: SystemTime) -> Result<PurgeOutcome> {
        let before = to_millis(older_than);
        self.db
            .call(Access::Write, move |tx| {
                let jobs = tx
                    .execute(
                        "DELETE FROM outbox_jobs WHERE state = 'done' AND updated_at < ?1",
                        [before],
                    )
                    .map_err(sql_error)?;
                let events = tx
                    .execute(
                        "DELETE FROM outbox_events WHERE recorded_at < ?1 AND NOT EXISTS
                            (SELECT 1 FROM outbox_jobs j WHERE j.event_id = outbox_events.event_id)",
                        [before],
                    )
                    .map_err(sql_error)?;
                Ok(PurgeOutcome {
                    jobs: jobs as u64,
                    events: events as u64,
                })
            })
            .await
    }
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;
