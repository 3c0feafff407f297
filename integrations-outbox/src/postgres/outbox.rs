//! [`PostgresOutbox`]: the outbox in the service's Postgres database.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, Row, Transaction};

use super::listen::Announcer;
use super::record::record;
use super::rows::{BACKLOG, COUNTS, cols, db_id, from_millis, parse, small, to_millis};
use super::{NOTIFY_CHANNEL, PostgresOptions, corrupt, describe_pool, migrate, sql_error};
use crate::store::{
    OutboxStore, check_claim, check_claim_kinds, job_not_found, lease_expired_error, lease_lost,
};
use crate::types::{
    ClaimedJob, DeadLetter, FailOutcome, JobId, JobRecord, LeaseOnRecord, LeaseToken, NewJob,
    OutboxBacklog, OutboxCounts, PurgeOutcome, RecordOutcome,
};
use integrations_core::{Clock, ErrorRecord, SystemClock};
use integrations_core::{Error, Result};

mod claim;
use claim::{Scope, Shortcuts, claim_sql};

/// The durable [`OutboxStore`] in Postgres: the jobs commit with the caller's own writes
/// ([`record_event_in`](PostgresOutbox::record_event_in)), any number of dispatchers on any
/// number of machines claim from it (`FOR UPDATE SKIP LOCKED`, leases with fencing tokens), and
/// they wake on `LISTEN/NOTIFY` ([`wake_on_notify`](PostgresOutbox::wake_on_notify)) rather
/// than polling.
///
/// Every call outside a caller's transaction is one statement, so one round trip and (for
/// writes) one commit; [`record_event`](OutboxStore::record_event) then announces the new jobs
/// with a `NOTIFY` of its own, sent in the background after the commit (a notifying commit
/// holds a database-wide lock until it is flushed, which would queue every concurrent record
/// behind it). Postgres 13 or newer (`gen_random_uuid`).
///
/// A claim reads the due jobs in index order, so the backlog's size and the done jobs kept do
/// not set its cost; the index entries of the jobs claimed since the last vacuum do. While a
/// backlog keeps the claims full, a claim skips the expired leases and the jobs claimed before
/// it for up to a second, so an expired lease or a job committed late behind the backlog can
/// wait that second more; the one claim a second that reads everything, and every claim when
/// the dispatchers keep up, still step over those entries (see `docs/operations.md`,
/// "Postgres: what a claim steps over until a vacuum").
///
/// ```no_run
/// use integrations_outbox::{NewJob, OutboxStore, PostgresOutbox};
///
/// # async fn f() -> integrations_core::Result<()> {
/// let outbox = PostgresOutbox::connect(&std::env::var("DATABASE_URL").unwrap()).await?;
/// let mut tx = outbox.pool().begin().await.unwrap();
/// sqlx::query("INSERT INTO orders (id, total_minor) VALUES ($1, $2)")
///     .bind("42").bind(5998_i64)
///     .execute(&mut *tx).await.unwrap();
/// let jobs = vec![NewJob::new("email.confirmation", serde_json::json!({ "order_id": "42" }))];
/// outbox.record_event_in(&mut tx, "order-42/paid", jobs).await?;
/// tx.commit().await.unwrap(); // the order and its jobs, or neither
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresOutbox {
    pool: PgPool,
    clock: Arc<dyn Clock>,
    asynchronous_marks: bool,
    announcer: Arc<Announcer>,
    shortcuts: Arc<Shortcuts>,
}

/// Appended to a mark's `WHERE`: its commit does not wait for the WAL flush (an uncorrelated
/// sub-select, evaluated once before any row, so it is set before the statement commits).
const ASYNC_COMMIT: &str = "AND (SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL";

impl fmt::Debug for PostgresOutbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOutbox")
            .field("target", &describe_pool(&self.pool))
            .field("pool_size", &self.pool.size())
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl PostgresOutbox {
    /// Connects to the database at `url` (default [`PostgresOptions`]) and migrates it.
    ///
    /// # Errors
    /// [`Error::Configuration`] for a malformed URL or a database migrated by a newer build;
    /// [`Error::Unavailable`] when the server cannot be reached.
    pub async fn connect(url: &str) -> Result<Self> {
        PostgresOutbox::connect_with(&PostgresOptions::new(url)?).await
    }

    /// Connects with `options` and migrates the database.
    ///
    /// # Errors
    /// As for [`PostgresOutbox::connect`].
    pub async fn connect_with(options: &PostgresOptions) -> Result<Self> {
        PostgresOutbox::from_pool(options.connect().await?).await
    }

    /// Uses the service's own pool (so [`record_event_in`](PostgresOutbox::record_event_in)
    /// can join its transactions) and migrates the database.
    ///
    /// # Errors
    /// As for [`migrate`].
    pub async fn from_pool(pool: PgPool) -> Result<Self> {
        migrate(&pool).await?;
        Ok(PostgresOutbox {
            pool,
            clock: Arc::new(SystemClock),
            asynchronous_marks: false,
            announcer: Arc::new(Announcer::default()),
            shortcuts: Arc::new(Shortcuts::default()),
        })
    }

    /// Uses `clock` for retry times and leases.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Commits claims, completions and failures without waiting for their WAL flush
    /// (`synchronous_commit = off` for those statements only; recording an event and replaying a
    /// dead letter stay synchronous, so what a webhook was answered `200` for is never lost).
    ///
    /// This is the trade the SQLite store makes with `synchronous = NORMAL` for the same marks:
    /// each saves a disk flush (a claim + complete pair costs two otherwise), and a crash of the
    /// **database server** (not of a worker) can undo the last few hundred milliseconds of marks.
    /// An undone completion runs its job again (at least once, never lost); an undone claim can
    /// let a second worker start a job the first is still running, until the first finds its
    /// lease gone when it completes. Off by default.
    #[must_use]
    pub fn with_asynchronous_marks(mut self, on: bool) -> Self {
        self.asynchronous_marks = on;
        self
    }

    fn marks(&self) -> &'static str {
        if self.asynchronous_marks {
            ASYNC_COMMIT
        } else {
            ""
        }
    }

    /// The pool, to begin the transactions that [`record_event_in`](Self::record_event_in) joins.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn now(&self) -> i64 {
        to_millis(self.clock.now())
    }

    /// Records `event_id` and its `jobs` **inside the caller's transaction**: they commit with the
    /// caller's own writes, or roll back with them (then no job exists and no dispatcher is
    /// woken). Otherwise as [`OutboxStore::record_event`]; a duplicate event id writes nothing.
    ///
    /// A concurrent transaction recording the same event id makes this call wait until that
    /// one ends (Postgres's unique index), then answers `Duplicate` if it committed.
    ///
    /// The `NOTIFY` that wakes listening dispatchers is part of the caller's transaction, so it
    /// is sent only if the transaction commits. Postgres serialises the commits of notifying
    /// transactions (a database-wide lock held until the commit is flushed): many concurrent
    /// transactions that record events commit one after another rather than together;
    /// [`record_event_in_unannounced`](Self::record_event_in_unannounced) and
    /// [`announce`](Self::announce) after the commit let them commit together.
    ///
    /// # Errors
    /// As for [`OutboxStore::record_event`]. Input errors are found before anything is sent;
    /// a database error aborts the caller's transaction (Postgres's rule), so roll it back.
    pub async fn record_event_in(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        event_id: &str,
        jobs: Vec<NewJob>,
    ) -> Result<RecordOutcome> {
        Ok(
            record(tx, self.now(), event_id, &jobs, Some(NOTIFY_CHANNEL), None)
                .await?
                .0,
        )
    }

    /// As [`record_event_in`](Self::record_event_in), but without the `NOTIFY` inside the
    /// caller's transaction: call [`announce`](Self::announce) once the transaction has
    /// committed, so listening dispatchers wake for the new jobs.
    ///
    /// Use it where many transactions record events at once (a webhook endpoint under load).
    /// A notifying transaction holds a database-wide lock from just before its commit until the
    /// commit is flushed, so notifying commits go one at a time, each with its own flush
    /// (`pgbench`, 8 clients: ~290 commits/s, against ~1,300 without the `NOTIFY`). Without it
    /// the transactions commit together and share flushes. A job whose announcement is lost (the
    /// process stops between the commit and [`announce`](Self::announce)) is still claimed at
    /// the dispatchers' next poll.
    ///
    /// ```no_run
    /// use integrations_outbox::{NewJob, PostgresOutbox};
    ///
    /// # async fn f(outbox: PostgresOutbox) -> integrations_core::Result<()> {
    /// let mut tx = outbox.pool().begin().await.unwrap();
    /// let jobs = vec![NewJob::new("email.confirmation", serde_json::json!({ "order_id": "42" }))];
    /// let outcome = outbox.record_event_in_unannounced(&mut tx, "order-42/paid", jobs).await?;
    /// tx.commit().await.unwrap();
    /// if !outcome.is_duplicate() {
    ///     outbox.announce();
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`record_event_in`](Self::record_event_in).
    pub async fn record_event_in_unannounced(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        event_id: &str,
        jobs: Vec<NewJob>,
    ) -> Result<RecordOutcome> {
        Ok(record(tx, self.now(), event_id, &jobs, None, None).await?.0)
    }

    /// Wakes the dispatchers listening on this database ([`wake_on_notify`](Self::wake_on_notify))
    /// for jobs committed by [`record_event_in_unannounced`](Self::record_event_in_unannounced).
    /// Call it after the commit: a dispatcher woken before finds nothing and waits for its next
    /// poll. It returns at once: the `NOTIFY` is sent by a background task on the current tokio
    /// runtime, in a statement of its own that does not wait for its flush, and the
    /// announcements asked for while one is being sent share the next.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn announce(&self) {
        self.announcer.announce(&self.pool);
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

    async fn load(&self, id: i64) -> Result<Option<JobRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM integrations_outbox_jobs WHERE id = $1",
            cols("")
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(sql_error)?;
        Ok(row.as_ref().map(parse).transpose()?.map(|l| l.record))
    }

    /// The error for a lease-checked update that changed nothing: unknown job, or lease lost.
    async fn lease_refused(&self, job_id: &JobId, id: i64) -> Error {
        match self.load(id).await {
            Ok(Some(_)) => lease_lost(job_id),
            Ok(None) => job_not_found(job_id),
            Err(e) => e,
        }
    }

    /// [`claim_sql`] until `max` are claimed or none is left: of any kind, or of `kinds`.
    async fn claim_jobs(
        &self,
        worker_id: &str,
        kinds: Option<&[&str]>,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedJob>> {
        let now = self.now();
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let expires = now.saturating_add(lease_ms);
        let sql = claim_sql(self.marks(), kinds.is_some());
        let (mut scope, generation) = self.shortcuts.scope(kinds);
        let mut read_all = scope == Scope::ALL;
        let mut claimed: Vec<(i64, ClaimedJob)> = Vec::new();
        // Dead-lettering an exhausted expired job frees its place, so claim again until full.
        while claimed.len() < max {
            let want = i64::try_from(max - claimed.len()).unwrap_or(i64::MAX);
            let mut query = sqlx::query(&sql)
                .bind(now)
                .bind(want)
                .bind(worker_id)
                .bind(expires);
            if let Some(kinds) = kinds {
                query = query.bind(kinds);
            }
            query = query.bind(scope.leases).bind(scope.floor);
            let rows = match query.fetch_all(&self.pool).await {
                Ok(rows) => rows,
                // A later statement failed: the jobs the first leased are this worker's; hand
                // them over rather than leave them leased to no one until their leases run out.
                Err(e) if !claimed.is_empty() => {
                    tracing::warn!(
                        error = %sql_error(e),
                        claimed = claimed.len(),
                        "claim: a second statement failed; answering with the jobs already claimed"
                    );
                    break;
                }
                Err(e) => return Err(sql_error(e)),
            };
            let mut exhausted: Vec<i64> = Vec::new();
            for row in &rows {
                if let Some(ids) = row
                    .try_get::<Option<Vec<i64>>, _>("exhausted")
                    .map_err(|e| corrupt("claim", e))?
                {
                    exhausted = ids;
                }
                let due_at: Option<i64> = row.try_get("due_at").map_err(|e| corrupt("claim", e))?;
                let Some(due_at) = due_at else { continue };
                let loaded = parse(row)?;
                let token = loaded
                    .token
                    .ok_or_else(|| corrupt("lease token", "missing after a claim"))?;
                claimed.push((
                    due_at,
                    ClaimedJob {
                        job: loaded.record.job,
                        lease: token,
                        lease_expires_at: from_millis(expires),
                    },
                ));
            }
            if !exhausted.is_empty() {
                self.dead_letter_exhausted(&exhausted, now).await?;
            } else if claimed.len() < max && !read_all {
                // Short after a shortcut: read everything before answering short.
                scope = Scope::ALL;
                read_all = true;
            } else {
                break;
            }
        }
        let oldest = claimed.iter().map(|(at, _)| *at).min();
        self.shortcuts
            .claimed(kinds, generation, read_all, claimed.len() >= max, oldest);
        claimed.sort_by(|a, b| (a.0, &a.1.job.id).cmp(&(b.0, &b.1.job.id)));
        Ok(claimed.into_iter().map(|(_, c)| c).collect())
    }

    /// Dead-letters expired leases with no attempts left, re-checking under the row lock that
    /// no one claimed or finished them since.
    async fn dead_letter_exhausted(&self, ids: &[i64], now: i64) -> Result<()> {
        for &id in ids {
            let attempts: Option<i64> =
                sqlx::query_scalar("SELECT attempts FROM integrations_outbox_jobs WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(sql_error)?;
            let Some(attempts) = attempts else { continue };
            let error = lease_expired_error(small("attempts", attempts)?);
            let done = sqlx::query(
                "UPDATE integrations_outbox_jobs SET state = 'dead', lease_token = NULL,
                    leased_by = NULL, lease_expires_at = NULL, last_error = $2::jsonb,
                    may_have_acted = $3, updated_at = $4
                 WHERE id = $1 AND state = 'leased' AND lease_expires_at <= $4
                    AND attempts >= max_attempts AND attempts = $5",
            )
            .bind(id)
            .bind(error_json(&error)?)
            .bind(error.may_have_acted())
            .bind(now)
            .bind(attempts)
            .execute(&self.pool)
            .await
            .map_err(sql_error)?;
            if done.rows_affected() == 1 {
                tracing::warn!(
                    job_id = id,
                    "outbox job dead-lettered: lease expired with no attempts left"
                );
            }
        }
        Ok(())
    }
}

impl PostgresOutbox {
    /// Records in a commit of its own, then announces the jobs left pending (in the background,
    /// after the commit: see the type's docs).
    async fn record_own(
        &self,
        event_id: &str,
        jobs: &[NewJob],
        to: Option<LeaseOnRecord<'_>>,
    ) -> Result<(RecordOutcome, Vec<ClaimedJob>)> {
        let mut conn = self.pool.acquire().await.map_err(sql_error)?;
        let (outcome, leased) = record(&mut conn, self.now(), event_id, jobs, None, to).await?;
        drop(conn);
        if matches!(&outcome, RecordOutcome::Recorded { job_ids } if job_ids.len() > leased.len()) {
            self.announcer.announce(&self.pool);
        }
        Ok((outcome, leased))
    }
}

fn count(row: &PgRow, i: usize) -> Result<u64> {
    let n: i64 = row.try_get(i).map_err(|e| corrupt("count", e))?;
    u64::try_from(n).map_err(|e| corrupt("count", e))
}

fn error_json(e: &ErrorRecord) -> Result<String> {
    serde_json::to_string(e).map_err(|e| corrupt("error record", e))
}

#[async_trait]
impl OutboxStore for PostgresOutbox {
    async fn record_event(&self, event_id: &str, jobs: Vec<NewJob>) -> Result<RecordOutcome> {
        Ok(self.record_own(event_id, &jobs, None).await?.0)
    }

    /// The leased jobs are not announced: no other dispatcher could claim them. The `NOTIFY`
    /// goes out only when some job was left pending.
    async fn record_event_leased(
        &self,
        event_id: &str,
        jobs: Vec<NewJob>,
        to: LeaseOnRecord<'_>,
    ) -> Result<(RecordOutcome, Vec<ClaimedJob>)> {
        check_claim_kinds(to.worker_id, to.kinds, to.lease)?;
        self.record_own(event_id, &jobs, Some(to)).await
    }

    fn leases_on_record(&self) -> bool {
        true
    }

    async fn claim(&self, worker_id: &str, max: usize, lease: Duration) -> Result<Vec<ClaimedJob>> {
        check_claim(worker_id, lease)?;
        self.claim_jobs(worker_id, None, max, lease).await
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
        let kinds = check_claim_kinds(worker_id, kinds, lease)?;
        self.claim_jobs(worker_id, Some(&kinds), max, lease).await
    }

    async fn complete(&self, job_id: &JobId, lease: &LeaseToken) -> Result<()> {
        let id = db_id(job_id).ok_or_else(|| job_not_found(job_id))?;
        let done = sqlx::query(&format!(
            "UPDATE integrations_outbox_jobs SET state = 'done', lease_token = NULL,
                leased_by = NULL, lease_expires_at = NULL, updated_at = $3
             WHERE id = $1 AND state = 'leased' AND lease_token = $2 {}",
            self.marks()
        ))
        .bind(id)
        .bind(lease.as_str())
        .bind(self.now())
        .execute(&self.pool)
        .await
        .map_err(sql_error)?;
        if done.rows_affected() == 0 {
            return Err(self.lease_refused(job_id, id).await);
        }
        Ok(())
    }

    /// One statement (one commit) for the whole batch.
    async fn complete_many(&self, done: &[(JobId, LeaseToken)]) -> Vec<Result<()>> {
        let ids: Vec<Option<i64>> = done.iter().map(|(id, _)| db_id(id)).collect();
        let (sent_ids, tokens): (Vec<i64>, Vec<&str>) = ids
            .iter()
            .zip(done)
            .filter_map(|(id, (_, lease))| Some(((*id)?, lease.as_str())))
            .unzip();
        let updated = if sent_ids.is_empty() {
            Ok(Vec::new())
        } else {
            sqlx::query_as::<_, (i64, String)>(&format!(
                "UPDATE integrations_outbox_jobs j SET state = 'done', lease_token = NULL,
                    leased_by = NULL, lease_expires_at = NULL, updated_at = $3
                 FROM unnest($1::bigint[], $2::text[]) AS d(id, token)
                 WHERE j.id = d.id AND j.state = 'leased' AND j.lease_token = d.token {}
                 RETURNING j.id, d.token",
                self.marks()
            ))
            .bind(&sent_ids)
            .bind(&tokens)
            .bind(self.now())
            .fetch_all(&self.pool)
            .await
            .map_err(sql_error)
        };
        let updated: std::collections::HashSet<(i64, String)> = match updated {
            Ok(rows) => rows.into_iter().collect(),
            // The statement is atomic: none of them was completed. Each job gets the error's
            // kind and retry hint (what the dispatcher's retry of a mark looks at).
            Err(e) => {
                let copy = || {
                    Error::unavailable(format!("completing a batch of jobs failed: {e}"))
                        .with_provider(super::POSTGRES)
                        .with_retry_hint(e.is_retryable())
                };
                let mut out: Vec<Result<()>> = done.iter().skip(1).map(|_| Err(copy())).collect();
                out.insert(0, Err(e));
                return out;
            }
        };
        let mut out = Vec::with_capacity(done.len());
        for ((job_id, lease), id) in done.iter().zip(ids) {
            out.push(match id {
                None => Err(job_not_found(job_id)),
                Some(id) if updated.contains(&(id, lease.as_str().to_owned())) => Ok(()),
                Some(id) => Err(self.lease_refused(job_id, id).await),
            });
        }
        out
    }

    async fn fail(
        &self,
        job_id: &JobId,
        lease: &LeaseToken,
        error: ErrorRecord,
        retry_at: Option<SystemTime>,
    ) -> Result<FailOutcome> {
        let id = db_id(job_id).ok_or_else(|| job_not_found(job_id))?;
        let row = sqlx::query(&format!(
            "UPDATE integrations_outbox_jobs SET
                state = CASE WHEN $3::bigint IS NOT NULL AND attempts < max_attempts
                    THEN 'pending' ELSE 'dead' END,
                available_at = CASE WHEN $3::bigint IS NOT NULL AND attempts < max_attempts
                    THEN $3::bigint ELSE available_at END,
                lease_token = NULL, leased_by = NULL, lease_expires_at = NULL,
                last_error = $4::jsonb, may_have_acted = $5, updated_at = $6
             WHERE id = $1 AND state = 'leased' AND lease_token = $2 {}
             RETURNING state, attempts",
            self.marks()
        ))
        .bind(id)
        .bind(lease.as_str())
        .bind(retry_at.map(to_millis))
        .bind(error_json(&error)?)
        .bind(error.may_have_acted())
        .bind(self.now())
        .fetch_optional(&self.pool)
        .await
        .map_err(sql_error)?;
        let Some(row) = row else {
            return Err(self.lease_refused(job_id, id).await);
        };
        let state: String = row.try_get("state").map_err(|e| corrupt("job state", e))?;
        let attempts = small(
            "attempts",
            row.try_get("attempts")
                .map_err(|e| corrupt("attempts", e))?,
        )?;
        Ok(match (state.as_str(), retry_at) {
            ("pending", Some(retry_at)) => FailOutcome::Retrying { attempts, retry_at },
            _ => FailOutcome::DeadLettered { attempts },
        })
    }

    async fn job(&self, job_id: &JobId) -> Result<Option<JobRecord>> {
        match db_id(job_id) {
            Some(id) => self.load(id).await,
            None => Ok(None),
        }
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM integrations_outbox_jobs WHERE state = 'dead' ORDER BY id LIMIT $1",
            cols("")
        ))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(sql_error)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.extend(DeadLetter::from_record(parse(row)?.record));
        }
        Ok(out)
    }

    async fn replay(&self, job_id: &JobId) -> Result<()> {
        let id = db_id(job_id).ok_or_else(|| job_not_found(job_id))?;
        let row = sqlx::query(
            "WITH r AS (
                UPDATE integrations_outbox_jobs SET state = 'pending', attempts = 0,
                    available_at = $2, updated_at = $2
                WHERE id = $1 AND state = 'dead' RETURNING id
            )
            SELECT (SELECT count(*) FROM r) AS replayed,
                (SELECT count(*) FROM (SELECT pg_notify($3, '') FROM r) n) AS notified",
        )
        .bind(id)
        .bind(self.now())
        .bind(NOTIFY_CHANNEL)
        .fetch_one(&self.pool)
        .await
        .map_err(sql_error)?;
        if count(&row, 0)? == 1 {
            return Ok(());
        }
        match self.load(id).await? {
            None => Err(job_not_found(job_id)),
            Some(record) => Err(Error::conflict(format!(
                "job {job_id} is {}, only dead letters can be replayed",
                record.state.as_str()
            ))),
        }
    }

    async fn counts(&self) -> Result<OutboxCounts> {
        let row = sqlx::query(COUNTS)
            .fetch_one(&self.pool)
            .await
            .map_err(sql_error)?;
        Ok(OutboxCounts {
            pending: count(&row, 0)?,
            leased: count(&row, 1)?,
            done: count(&row, 2)?,
            dead: count(&row, 3)?,
            events: count(&row, 4)?,
            ..OutboxCounts::default()
        }
        .with_oldest_pending(
            row.try_get::<Option<i64>, _>(5)
                .map_err(|e| corrupt("oldest_pending", e))?
                .map(from_millis),
            self.clock.now(),
        ))
    }

    async fn backlog(&self) -> Result<OutboxBacklog> {
        let row = sqlx::query(BACKLOG)
            .fetch_one(&self.pool)
            .await
            .map_err(sql_error)?;
        Ok(OutboxBacklog {
            pending: count(&row, 0)?,
            leased: count(&row, 1)?,
            dead: count(&row, 2)?,
            ..OutboxBacklog::default()
        }
        .with_oldest_pending(
            row.try_get::<Option<i64>, _>(3)
                .map_err(|e| corrupt("oldest_pending", e))?
                .map(from_millis),
            self.clock.now(),
        ))
    }

    async fn purge(&self, older_than: SystemTime) -> Result<PurgeOutcome> {
        let row = sqlx::query(
            "WITH j AS (
                DELETE FROM integrations_outbox_jobs WHERE state = 'done' AND updated_at < $1
                RETURNING event_id
            ), e AS (
                DELETE FROM integrations_outbox_events ev WHERE recorded_at < $1
                    AND NOT EXISTS (SELECT 1 FROM integrations_outbox_jobs o
                        WHERE o.event_id = ev.event_id AND NOT (o.state = 'done' AND o.updated_at < $1))
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM j), (SELECT count(*) FROM e)",
        )
        .bind(to_millis(older_than))
        .fetch_one(&self.pool)
        .await
        .map_err(sql_error)?;
        Ok(PurgeOutcome {
            jobs: count(&row, 0)?,
            events: count(&row, 1)?,
        })
    }
}

#[cfg(all(test, feature = "testing"))]
mod plan_tests;
