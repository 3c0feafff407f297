//! The run's outbox store: SQLite in the state directory (the embedded default), or Postgres
//! when `DATABASE_URL` is set ([`FlowConfig::database`](super::config::FlowConfig::database)).
//!
//! Written by hand over the two stores rather than as `Arc<dyn OutboxStore>` because the run
//! also asks what is left to deliver ([`FlowOutbox::unfinished`]), which each store answers on
//! its own indexes and the trait does not carry.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use integrations_core::{Error, ErrorRecord, Result};
use integrations_outbox::{
    ClaimedJob, DeadLetter, FailOutcome, JobId, JobRecord, LeaseOnRecord, LeaseToken, NewJob,
    OutboxBacklog, OutboxCounts, OutboxStore, PostgresOptions, PostgresOutbox, PurgeOutcome,
    RecordOutcome, SqliteOutbox,
};

use super::providers::OUTBOX_FILE;

/// The outbox of a run.
#[derive(Debug, Clone)]
pub enum FlowOutbox {
    /// `outbox.db` in the run's directory.
    Sqlite(Arc<SqliteOutbox>),
    /// The database of `DATABASE_URL`.
    Postgres(Arc<PostgresOutbox>),
}

impl FlowOutbox {
    /// Opens Postgres with `database` if given, else SQLite in `dir`. A Postgres database that
    /// already holds another run's outbox is refused on a run's first start: the report checks
    /// the whole outbox against this run's orders.
    ///
    /// # Errors
    /// Store failures; [`Error::Configuration`] naming `DATABASE_URL` for a database in use.
    pub async fn open(
        database: Option<&PostgresOptions>,
        dir: &Path,
        first_start: bool,
    ) -> Result<Self> {
        match database {
            None => Ok(FlowOutbox::Sqlite(Arc::new(
                SqliteOutbox::open(dir.join(OUTBOX_FILE)).await?,
            ))),
            Some(options) => {
                let outbox = PostgresOutbox::connect_with(options).await?;
                if first_start && outbox.counts().await?.events > 0 {
                    return Err(Error::configuration(
                        "DATABASE_URL",
                        format!(
                            "{} already holds an outbox (another run's): give each run an empty \
                             database",
                            options.describe()
                        ),
                    ));
                }
                Ok(FlowOutbox::Postgres(Arc::new(outbox)))
            }
        }
    }

    /// Where it is, for the report (never a password).
    pub fn describe(database: Option<&PostgresOptions>, dir: &Path) -> String {
        match database {
            None => format!("SqliteOutbox → {}", dir.join(OUTBOX_FILE).display()),
            Some(options) => format!("PostgresOutbox → {}", options.describe()),
        }
    }

    /// Jobs pending and leased.
    ///
    /// # Errors
    /// Store failures.
    pub async fn unfinished(&self) -> Result<(u64, u64)> {
        let b = self.store().backlog().await?;
        Ok((b.pending, b.leased))
    }

    fn store(&self) -> &dyn OutboxStore {
        match self {
            FlowOutbox::Sqlite(s) => s.as_ref(),
            FlowOutbox::Postgres(s) => s.as_ref(),
        }
    }
}

#[async_trait]
impl OutboxStore for FlowOutbox {
    async fn record_event(&self, event_id: &str, jobs: Vec<NewJob>) -> Result<RecordOutcome> {
        self.store().record_event(event_id, jobs).await
    }
    async fn record_event_leased(
        &self,
        event_id: &str,
        jobs: Vec<NewJob>,
        to: LeaseOnRecord<'_>,
    ) -> Result<(RecordOutcome, Vec<ClaimedJob>)> {
        // Forwarded, so that a dispatcher's handover leases on record here too.
        self.store().record_event_leased(event_id, jobs, to).await
    }
    fn leases_on_record(&self) -> bool {
        self.store().leases_on_record()
    }
    async fn claim(&self, worker_id: &str, max: usize, lease: Duration) -> Result<Vec<ClaimedJob>> {
        self.store().claim(worker_id, max, lease).await
    }
    fn claims_by_kind(&self) -> bool {
        self.store().claims_by_kind()
    }
    async fn claim_kinds(
        &self,
        worker_id: &str,
        kinds: &[&str],
        max: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedJob>> {
        self.store().claim_kinds(worker_id, kinds, max, lease).await
    }
    async fn complete(&self, job_id: &JobId, lease: &LeaseToken) -> Result<()> {
        self.store().complete(job_id, lease).await
    }
    async fn complete_many(&self, done: &[(JobId, LeaseToken)]) -> Vec<Result<()>> {
        // Forwarded, so that on Postgres a batch stays one statement (one commit).
        self.store().complete_many(done).await
    }
    async fn fail(
        &self,
        job_id: &JobId,
        lease: &LeaseToken,
        error: ErrorRecord,
        retry_at: Option<SystemTime>,
    ) -> Result<FailOutcome> {
        self.store().fail(job_id, lease, error, retry_at).await
    }
    async fn job(&self, job_id: &JobId) -> Result<Option<JobRecord>> {
        self.store().job(job_id).await
    }
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        self.store().dead_letters(limit).await
    }
    async fn replay(&self, job_id: &JobId) -> Result<()> {
        self.store().replay(job_id).await
    }
    async fn counts(&self) -> Result<OutboxCounts> {
        self.store().counts().await
    }
    async fn backlog(&self) -> Result<OutboxBacklog> {
        self.store().backlog().await
    }
    async fn purge(&self, older_than: SystemTime) -> Result<PurgeOutcome> {
        self.store().purge(older_than).await
    }
    async fn dead_letter(&self, job_id: &JobId) -> Result<Option<DeadLetter>> {
        self.store().dead_letter(job_id).await
    }
}
