//! The [`OutboxStore`] contract shared by every backend.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::types::{
    ClaimedJob, DeadLetter, FailOutcome, JobId, JobRecord, LeaseOnRecord, LeaseToken, NewJob,
    OutboxBacklog, OutboxCounts, PurgeOutcome, RecordOutcome,
};
use integrations_core::ErrorRecord;
use integrations_core::{Error, IdempotencyKey, Result};

/// Code carried by the [`Error::Conflict`] a store returns when the lease presented is no longer
/// the job's current one (it expired and another worker claimed the job, or the job finished).
pub const LEASE_LOST: &str = "lease_lost";

/// A durable outbox: event dedup records, the jobs they cause, leases, and the dead-letter queue.
///
/// # Contract
/// Every implementation (SQLite, in-memory, DynamoDB, …) keeps these rules, checked by the shared
/// behaviour suite (`outbox::behaviour`, feature `testing`):
///
/// * [`record_event`](OutboxStore::record_event) writes the event's dedup record and all its jobs
///   atomically; a second call with the same event id writes nothing and reports
///   [`RecordOutcome::Duplicate`].
/// * [`claim`](OutboxStore::claim) hands a job to at most one worker at a time. Claimable are
///   pending jobs whose retry time has come and leased jobs whose lease has expired. Each claim
///   counts an attempt and issues a fresh [`LeaseToken`]; an expired job that has already used
///   all its attempts is dead-lettered instead of claimed (a job that keeps killing its worker
///   does not loop forever).
/// * [`complete`](OutboxStore::complete) and [`fail`](OutboxStore::fail) succeed only with the
///   job's current token (fencing), otherwise [`Error::Conflict`] with code [`LEASE_LOST`]. A
///   lease that expired but was not yet claimed again still counts as held.
/// * [`fail`](OutboxStore::fail) with `retry_at: None` (permanent failure), or once the job has
///   made `max_attempts` attempts, moves the job to the dead-letter queue with the error.
/// * [`replay`](OutboxStore::replay) moves a dead letter back to pending, claimable now, with its
///   attempts reset.
/// * A store that says so ([`claims_by_kind`](OutboxStore::claims_by_kind)) also claims by kind
///   ([`claim_kinds`](OutboxStore::claim_kinds)): the same rules, over the jobs of the kinds
///   named only; jobs of every other kind are not read, leased, counted an attempt or
///   dead-lettered by it. A dispatcher claims only the kinds it has handlers for, so a
///   quota-bound kind on its own dispatcher (a "lane") does not hold up the others.
/// * [`record_event_leased`](OutboxStore::record_event_leased) records like `record_event` and,
///   in the same transaction, leases some of the new jobs exactly as a `claim_kinds` made at that
///   moment would (an attempt counted, a fresh token, `leased_by` set); a store that does not
///   (the default) leases none and reports so.
///
/// Time is the store's clock (injectable, so tests can move it).
#[async_trait]
pub trait OutboxStore: Send + Sync + fmt::Debug {
    /// Records `event_id` and its `jobs` in one transaction, unless the event was recorded before.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty or non-printable event id or kind, `max_attempts` of
    /// 0, or two jobs with the same idempotency key (nothing is written); store failures
    /// ([`Error::Unavailable`] when the store is busy or unreachable).
    async fn record_event(&self, event_id: &str, jobs: Vec<NewJob>) -> Result<RecordOutcome>;

    /// Records like [`record_event`](OutboxStore::record_event) and, in the same transaction,
    /// leases to `to.worker_id` up to `to.max` of the new jobs whose kind is in `to.kinds` (the
    /// first such jobs, in the order given), returning them as a claim would: attempt 1, a fresh
    /// token, expiring `to.lease` from now. The dispatcher uses it
    /// ([`Dispatcher::record_event`](crate::Dispatcher::record_event)) to run the jobs it records
    /// itself without a claim (one commit less per event); the jobs are durable before any of
    /// them runs, and a lease that runs out (the worker died) is claimed by any worker as usual.
    ///
    /// A duplicate event, or `to.max` of 0, leases nothing. The default leases nothing either
    /// (it calls `record_event`), for stores that cannot write a job already leased: the jobs are
    /// then claimed as usual. [`leases_on_record`](OutboxStore::leases_on_record) says which.
    ///
    /// # Errors
    /// As for [`record_event`](OutboxStore::record_event) and
    /// [`claim_kinds`](OutboxStore::claim_kinds) (`worker_id`, `kinds` and `lease` are checked
    /// before anything is written, also by the default).
    async fn record_event_leased(
        &self,
        event_id: &str,
        jobs: Vec<NewJob>,
        to: LeaseOnRecord<'_>,
    ) -> Result<(RecordOutcome, Vec<ClaimedJob>)> {
        check_claim_kinds(to.worker_id, to.kinds, to.lease)?;
        Ok((self.record_event(event_id, jobs).await?, Vec::new()))
    }

    /// Whether [`record_event_leased`](OutboxStore::record_event_leased) leases jobs (`false`:
    /// the default, which records them pending). The SQLite, Postgres and in-memory stores do.
    fn leases_on_record(&self) -> bool {
        false
    }

    /// Claims up to `max` claimable jobs for `worker_id`, each under a lease of `lease`, oldest
    /// first. A claim never comes back with fewer than `max` while more are claimable; while a
    /// backlog keeps the claims full, a store may leave an older job (an expired lease, a job
    /// committed late) for a later claim within a bounded time (the Postgres store: a second).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a zero `lease` or an empty `worker_id`; store failures.
    async fn claim(&self, worker_id: &str, max: usize, lease: Duration) -> Result<Vec<ClaimedJob>>;

    /// Whether [`claim_kinds`](OutboxStore::claim_kinds) is implemented. The SQLite, Postgres and
    /// in-memory stores do; a store that does not is claimed from with
    /// [`claim`](OutboxStore::claim) by the [`Dispatcher`](crate::Dispatcher), as before.
    fn claims_by_kind(&self) -> bool {
        false
    }

    /// Claims like [`claim`](OutboxStore::claim), but only jobs whose kind is one of `kinds`:
    /// up to `max` of them, oldest first across those kinds. Jobs of other kinds stay as they
    /// are, however old (an exhausted expired lease of another kind is not dead-lettered by
    /// this call either). A kind named twice counts once.
    ///
    /// Implementations read only the due jobs of those kinds that they take, in index order
    /// (one index scan per kind, stopping at `max`), so the cost does not grow with a backlog
    /// of other kinds.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `kinds` for an empty list or an empty kind, and as for
    /// [`claim`](OutboxStore::claim); [`Error::Configuration`] naming `kinds` from a store that
    /// does not claim by kind (the default implementation).
    async fn claim_kinds(
        &self,
        worker_id: &str,
        kinds: &[&str],
        max: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedJob>> {
        let _ = (worker_id, kinds, max, lease);
        Err(Error::configuration(
            "kinds",
            format!("{self:?} does not claim jobs by kind; use `claim`"),
        ))
    }

    /// Marks a leased job delivered.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown job; [`Error::Conflict`] with code [`LEASE_LOST`] when
    /// `lease` is not the job's current lease; store failures.
    async fn complete(&self, job_id: &JobId, lease: &LeaseToken) -> Result<()>;

    /// Marks several leased jobs delivered, each exactly as [`complete`](OutboxStore::complete)
    /// would (the same fencing and errors): one result per job, in the order given. The
    /// dispatcher calls it with the completions that arrive while the previous ones commit, so a
    /// store that can commit them together (one statement, one durable commit) saves a commit
    /// per job. The default completes them concurrently, one call each.
    async fn complete_many(&self, done: &[(JobId, LeaseToken)]) -> Vec<Result<()>> {
        futures_util::future::join_all(done.iter().map(|(id, lease)| self.complete(id, lease)))
            .await
    }

    /// Records a failed attempt: the job becomes pending again from `retry_at`, or is
    /// dead-lettered when `retry_at` is `None` or its attempts are used up.
    ///
    /// # Errors
    /// As for [`OutboxStore::complete`].
    async fn fail(
        &self,
        job_id: &JobId,
        lease: &LeaseToken,
        error: ErrorRecord,
        retry_at: Option<SystemTime>,
    ) -> Result<FailOutcome>;

    /// The job and its state, or `None` if unknown (or purged).
    ///
    /// # Errors
    /// Store failures.
    async fn job(&self, job_id: &JobId) -> Result<Option<JobRecord>>;

    /// Up to `limit` dead letters, oldest job first.
    ///
    /// # Errors
    /// Store failures.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>>;

    /// Moves a dead letter back to pending with its attempts reset.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown job; [`Error::Conflict`] if it is not dead-lettered;
    /// store failures.
    async fn replay(&self, job_id: &JobId) -> Result<()>;

    /// Jobs per state and the number of recorded events.
    ///
    /// Counting the done jobs and the event records reads every one the store holds, so this
    /// costs more the longer the store runs between [`purge`](OutboxStore::purge)s. Anything
    /// that asks often — gauges, a dashboard, a loop waiting for the outbox to drain — should
    /// read [`backlog`](OutboxStore::backlog).
    ///
    /// # Errors
    /// Store failures.
    async fn counts(&self) -> Result<OutboxCounts>;

    /// What is left to do: pending (and the oldest one's due time), leased and dead-lettered
    /// jobs, read from those jobs alone, so the cost follows the backlog and not the store's
    /// size (the SQL stores count their partial indexes of each state; DynamoDB its status
    /// index's entries of those states).
    ///
    /// The default calls [`counts`](OutboxStore::counts): a store that can count the unfinished
    /// jobs on their own should say so here.
    ///
    /// # Errors
    /// Store failures.
    async fn backlog(&self) -> Result<OutboxBacklog> {
        Ok(self.counts().await?.into())
    }

    /// Removes done jobs last updated before `older_than`, then event records made before it
    /// that have no jobs left.
    ///
    /// An event whose record is purged is no longer deduplicated: pick `older_than` beyond the
    /// longest redelivery window of your webhook senders (Stripe retries for up to 3 days).
    ///
    /// # Errors
    /// Store failures.
    async fn purge(&self, older_than: SystemTime) -> Result<PurgeOutcome>;

    /// The dead letter `job_id`, or `None` if the job is unknown or not dead-lettered.
    ///
    /// # Errors
    /// Store failures.
    async fn dead_letter(&self, job_id: &JobId) -> Result<Option<DeadLetter>> {
        Ok(self.job(job_id).await?.and_then(DeadLetter::from_record))
    }
}

#[async_trait]
impl<S: OutboxStore + ?Sized> OutboxStore for Arc<S> {
    async fn record_event(&self, event_id: &str, jobs: Vec<NewJob>) -> Result<RecordOutcome> {
        (**self).record_event(event_id, jobs).await
    }
    async fn claim(&self, worker_id: &str, max: usize, lease: Duration) -> Result<Vec<ClaimedJob>> {
        (**self).claim(worker_id, max, lease).await
    }
    async fn record_event_leased(
        &self,
        event_id: &str,
        jobs: Vec<NewJob>,
        to: LeaseOnRecord<'_>,
    ) -> Result<(RecordOutcome, Vec<ClaimedJob>)> {
        (**self).record_event_leased(event_id, jobs, to).await
    }
    fn leases_on_record(&self) -> bool {
        (**self).leases_on_record()
    }
    fn claims_by_kind(&self) -> bool {
        (**self).claims_by_kind()
    }
    async fn claim_kinds(
        &self,
        worker_id: &str,
        kinds: &[&str],
        max: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedJob>> {
        (**self).claim_kinds(worker_id, kinds, max, lease).await
    }
    async fn complete(&self, job_id: &JobId, lease: &LeaseToken) -> Result<()> {
        (**self).complete(job_id, lease).await
    }
    async fn complete_many(&self, done: &[(JobId, LeaseToken)]) -> Vec<Result<()>> {
        (**self).complete_many(done).await
    }
    async fn fail(
        &self,
        job_id: &JobId,
        lease: &LeaseToken,
        error: ErrorRecord,
        retry_at: Option<SystemTime>,
    ) -> Result<FailOutcome> {
        (**self).fail(job_id, lease, error, retry_at).await
    }
    async fn job(&self, job_id: &JobId) -> Result<Option<JobRecord>> {
        (**self).job(job_id).await
    }
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        (**self).dead_letters(limit).await
    }
    async fn replay(&self, job_id: &JobId) -> Result<()> {
        (**self).replay(job_id).await
    }
    async fn counts(&self) -> Result<OutboxCounts> {
        (**self).counts().await
    }
    async fn backlog(&self) -> Result<OutboxBacklog> {
        (**self).backlog().await
    }
    async fn purge(&self, older_than: SystemTime) -> Result<PurgeOutcome> {
        (**self).purge(older_than).await
    }
    async fn dead_letter(&self, job_id: &JobId) -> Result<Option<DeadLetter>> {
        (**self).dead_letter(job_id).await
    }
}

/// Validates the jobs of one event and derives their idempotency keys, for store implementations.
///
/// # Errors
/// [`Error::InvalidInput`] naming `event_id`, `kind`, `max_attempts` or `jobs` (two jobs with
/// one key: give one of them [`NewJob::with_key_suffix`]).
pub fn prepare_jobs(event_id: &str, jobs: &[NewJob]) -> Result<Vec<IdempotencyKey>> {
    if event_id.is_empty() {
        return Err(Error::invalid_input("event_id", "must not be empty"));
    }
    // Validates the event id even when there are no jobs.
    IdempotencyKey::derive(event_id, "event")?;
    let mut seen = HashSet::with_capacity(jobs.len());
    let mut keys = Vec::with_capacity(jobs.len());
    for job in jobs {
        if job.max_attempts == 0 {
            return Err(Error::invalid_input("max_attempts", "must be at least 1"));
        }
        let key = job.idempotency_key(event_id)?;
        if !seen.insert(key.clone()) {
            return Err(Error::invalid_input(
                "jobs",
                format!("two jobs share the idempotency key `{key}`; give one a key suffix"),
            ));
        }
        keys.push(key);
    }
    Ok(keys)
}

/// Checks `claim`'s arguments, for store implementations.
///
/// # Errors
/// [`Error::InvalidInput`] naming `worker_id` or `lease`.
pub fn check_claim(worker_id: &str, lease: Duration) -> Result<()> {
    if worker_id.is_empty() {
        return Err(Error::invalid_input("worker_id", "must not be empty"));
    }
    if lease < MIN_LEASE {
        return Err(Error::invalid_input(
            "lease",
            "must be at least 1 ms (leases are kept in milliseconds)",
        ));
    }
    Ok(())
}

/// Checks `claim_kinds`' arguments, for store implementations; returns the kinds sorted, each
/// once.
///
/// # Errors
/// [`Error::InvalidInput`] naming `kinds` (empty list, or an empty kind), `worker_id` or `lease`.
pub fn check_claim_kinds<'a>(
    worker_id: &str,
    kinds: &[&'a str],
    lease: Duration,
) -> Result<Vec<&'a str>> {
    check_claim(worker_id, lease)?;
    if kinds.is_empty() {
        return Err(Error::invalid_input(
            "kinds",
            "name at least one kind (`claim` takes jobs of any kind)",
        ));
    }
    if kinds.iter().any(|k| k.is_empty()) {
        return Err(Error::invalid_input("kinds", "a kind must not be empty"));
    }
    let mut kinds = kinds.to_vec();
    kinds.sort_unstable();
    kinds.dedup();
    Ok(kinds)
}

/// The shortest lease a claim accepts: stores keep lease expiries in milliseconds, so a shorter
/// lease would expire the moment it was taken and the job could be claimed twice in one call.
pub const MIN_LEASE: Duration = Duration::from_millis(1);

/// The error for a lease that is no longer the job's current one.
pub fn lease_lost(job_id: &JobId) -> Error {
    Error::conflict(format!(
        "job {job_id}: the lease presented is no longer held (expired and claimed again, or the job already finished)"
    ))
    .with_code(LEASE_LOST)
}

/// The error for an unknown job id.
pub fn job_not_found(job_id: &JobId) -> Error {
    Error::not_found(format!("no job {job_id} in the outbox"))
}

/// The error recorded for a job whose last lease expired with no attempts left.
pub fn lease_expired_error(attempts: u32) -> ErrorRecord {
    ErrorRecord {
        kind: crate::ErrorKind::Timeout,
        message: format!(
            "lease expired after attempt {attempts} with no attempts left: the worker stopped or overran its lease"
        ),
        provider: None,
        code: Some("lease_expired".to_owned()),
        decline_code: None,
        request_id: None,
        status: None,
        retryable: false,
        // The worker may have called the provider before it stopped or overran.
        may_have_acted: Some(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn prepare_rejects_duplicates_and_zero_attempts() {
        let jobs = vec![NewJob::new("a", Value::Null), NewJob::new("a", Value::Null)];
        assert_eq!(prepare_jobs("e", &jobs).unwrap_err().field(), Some("jobs"));
        let jobs = vec![
            NewJob::new("a", Value::Null),
            NewJob::new("a", Value::Null).with_key_suffix("2"),
        ];
        let keys = prepare_jobs("e", &jobs).unwrap();
        assert_eq!(keys[1].as_str(), "e/a/2");
        let zero = vec![NewJob::new("a", Value::Null).with_max_attempts(0)];
        assert_eq!(
            prepare_jobs("e", &zero).unwrap_err().field(),
            Some("max_attempts")
        );
        assert!(prepare_jobs("bad\nid", &[]).is_err());
        assert!(prepare_jobs("", &[]).is_err());
    }

    #[test]
    fn lease_lost_is_a_coded_conflict() {
        let e = lease_lost(&JobId::new("7"));
        assert_eq!(e.kind(), crate::ErrorKind::Conflict);
        assert_eq!(e.code(), Some(LEASE_LOST));
        assert!(!e.is_retryable());
        assert!(check_claim("", Duration::from_secs(1)).is_err());
        assert!(check_claim("w", Duration::ZERO).is_err());
        let e = check_claim("w", Duration::from_micros(500)).unwrap_err();
        assert_eq!(e.field(), Some("lease"));
        assert!(check_claim("w", MIN_LEASE).is_ok());
    }

    #[test]
    fn kinds_are_checked_sorted_and_deduplicated() {
        let lease = Duration::from_secs(1);
        for bad in [&[][..], &["email", ""][..]] {
            let e = check_claim_kinds("w", bad, lease).unwrap_err();
            assert_eq!(
                (e.kind(), e.field()),
                (crate::ErrorKind::InvalidInput, Some("kinds"))
            );
        }
        assert_eq!(
            check_claim_kinds("", &["a"], lease).unwrap_err().field(),
            Some("worker_id")
        );
        assert_eq!(
            check_claim_kinds("w", &["b", "a", "b"], lease).unwrap(),
            ["a", "b"]
        );
    }

    #[test]
    fn store_is_object_safe() {
        fn _f(_: &dyn OutboxStore) {}
    }
}
