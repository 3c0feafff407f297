//! [`InMemoryOutbox`]: the outbox contract in process memory, for tests and examples.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::store::{
    OutboxStore, check_claim, check_claim_kinds, job_not_found, lease_expired_error, lease_lost,
    prepare_jobs,
};
use super::trace::resolve_traceparent;
use super::types::{
    ClaimedJob, DeadLetter, FailOutcome, Job, JobId, JobRecord, JobState, LeaseOnRecord,
    LeaseToken, NewJob, OutboxCounts, PurgeOutcome, RecordOutcome,
};
use integrations_core::ErrorRecord;
use integrations_core::{Clock, SystemClock};
use integrations_core::{Error, Result};

struct Entry {
    job: Job,
    state: JobState,
    available_at: SystemTime,
    lease: Option<(LeaseToken, String, SystemTime)>,
    last_error: Option<ErrorRecord>,
    updated_at: SystemTime,
}

impl Entry {
    fn record(&self) -> JobRecord {
        JobRecord {
            job: self.job.clone(),
            state: self.state,
            available_at: self.available_at,
            leased_by: self.lease.as_ref().map(|l| l.1.clone()),
            lease_expires_at: self.lease.as_ref().map(|l| l.2),
            last_error: self.last_error.clone(),
            updated_at: self.updated_at,
        }
    }

    fn claimable(&self, now: SystemTime) -> bool {
        match self.state {
            JobState::Pending => self.available_at <= now,
            JobState::Leased => self.lease.as_ref().is_some_and(|l| l.2 <= now),
            JobState::Done | JobState::Dead => false,
        }
    }

    fn check_lease(&self, id: &JobId, token: &LeaseToken) -> Result<()> {
        match (&self.state, &self.lease) {
            (JobState::Leased, Some((current, _, _))) if current == token => Ok(()),
            _ => Err(lease_lost(id)),
        }
    }
}

#[derive(Default)]
struct State {
    next_id: u64,
    events: HashMap<String, SystemTime>,
    jobs: BTreeMap<u64, Entry>,
}

/// An [`OutboxStore`] in memory: same semantics as the SQLite store, nothing survives the
/// process. For tests, examples and single-process tools that accept losing pending jobs.
///
/// Claims scan all jobs (O(n)); use `SqliteOutbox` (feature `sqlite`) for real workloads.
///
/// ```
/// use std::time::Duration;
/// use integrations_outbox::{InMemoryOutbox, NewJob, OutboxStore, RecordOutcome};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let outbox = InMemoryOutbox::new();
/// let jobs = vec![NewJob::new("email.confirmation", serde_json::json!({ "order": "42" }))];
/// assert!(!outbox.record_event("evt_1", jobs.clone()).await?.is_duplicate());
/// assert_eq!(outbox.record_event("evt_1", jobs).await?, RecordOutcome::Duplicate);
///
/// let claimed = outbox.claim("worker-1", 10, Duration::from_secs(30)).await?;
/// assert_eq!(claimed.len(), 1);
/// assert_eq!(claimed[0].job.idempotency_key.as_str(), "evt_1/email.confirmation");
/// outbox.complete(&claimed[0].job.id, &claimed[0].lease).await?;
/// # Ok::<(), integrations_core::Error>(())
/// # }).unwrap();
/// ```
pub struct InMemoryOutbox {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl InMemoryOutbox {
    /// An empty outbox on the system clock.
    pub fn new() -> Self {
        InMemoryOutbox {
            clock: Arc::new(SystemClock),
            state: Mutex::new(State::default()),
        }
    }

    /// Uses `clock` for retry times and leases.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation below completes before unlocking, so a poisoned lock holds whole state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the event and its jobs, leasing those `to` picks (see
    /// [`OutboxStore::record_event_leased`]).
    fn record(
        &self,
        event_id: &str,
        jobs: Vec<NewJob>,
        to: Option<LeaseOnRecord<'_>>,
    ) -> Result<(RecordOutcome, Vec<ClaimedJob>)> {
        let keys = prepare_jobs(event_id, &jobs)?;
        let traceparents: Vec<_> = jobs.iter().map(resolve_traceparent).collect();
        let now = self.clock.now();
        let lease = match to {
            Some(to) => Some((
                to,
                now.checked_add(to.lease)
                    .ok_or_else(|| Error::invalid_input("lease", "too long"))?,
            )),
            None => None,
        };
        let picked = to.map_or_else(|| vec![false; jobs.len()], |to| to.pick(&jobs));
        let mut s = self.lock();
        if s.events.contains_key(event_id) {
            return Ok((RecordOutcome::Duplicate, Vec::new()));
        }
        s.events.insert(event_id.to_owned(), now);
        let mut job_ids = Vec::with_capacity(jobs.len());
        let mut leased = Vec::new();
        for (((new, key), traceparent), pick) in
            jobs.into_iter().zip(keys).zip(traceparents).zip(picked)
        {
            s.next_id += 1;
            let id = s.next_id;
            let mut job = Job {
                id: JobId::new(id.to_string()),
                event_id: event_id.to_owned(),
                kind: new.kind,
                payload: new.payload,
                idempotency_key: key,
                attempt: 0,
                max_attempts: new.max_attempts,
                created_at: now,
                traceparent,
            };
            job_ids.push(job.id.clone());
            let mut state = JobState::Pending;
            let mut held = None;
            if let (true, Some((to, expires))) = (pick, lease) {
                let token = LeaseToken::random();
                job.attempt = 1;
                state = JobState::Leased;
                held = Some((token.clone(), to.worker_id.to_owned(), expires));
                leased.push(ClaimedJob {
                    job: job.clone(),
                    lease: token,
                    lease_expires_at: expires,
                });
            }
            let entry = Entry {
                job,
                state,
                available_at: now,
                lease: held,
                last_error: None,
                updated_at: now,
            };
            s.jobs.insert(id, entry);
        }
        Ok((RecordOutcome::Recorded { job_ids }, leased))
    }

    /// Claims up to `max` claimable jobs whose kind passes `wanted`, oldest first.
    fn claim_where(
        &self,
        worker_id: &str,
        max: usize,
        lease: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<Vec<ClaimedJob>> {
        let now = self.clock.now();
        let expires = now
            .checked_add(lease)
            .ok_or_else(|| Error::invalid_input("lease", "too long"))?;
        let mut s = self.lock();
        let mut candidates: Vec<(SystemTime, u64)> = s
            .jobs
            .iter()
            .filter(|(_, e)| e.claimable(now) && wanted(&e.job.kind))
            .map(|(id, e)| (e.lease.as_ref().map_or(e.available_at, |l| l.2), *id))
            .collect();
        candidates.sort_unstable();
        let mut claimed = Vec::new();
        for (_, id) in candidates {
            if claimed.len() >= max {
                break;
            }
            let Some(e) = s.jobs.get_mut(&id) else {
                continue;
            };
            e.updated_at = now;
            if e.state == JobState::Leased && e.job.attempt >= e.job.max_attempts {
                e.state = JobState::Dead;
                e.lease = None;
                e.last_error = Some(lease_expired_error(e.job.attempt));
                tracing::warn!(
                    job_id = id,
                    "outbox job dead-lettered: lease expired with no attempts left"
                );
                continue;
            }
            let token = LeaseToken::random();
            e.state = JobState::Leased;
            e.job.attempt += 1;
            e.lease = Some((token.clone(), worker_id.to_owned(), expires));
            claimed.push(ClaimedJob {
                job: e.job.clone(),
                lease: token,
                lease_expires_at: expires,
            });
        }
        Ok(claimed)
    }
}

impl Default for InMemoryOutbox {
    fn default() -> Self {
        InMemoryOutbox::new()
    }
}

impl fmt::Debug for InMemoryOutbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("InMemoryOutbox")
            .field("events", &s.events.len())
            .field("jobs", &s.jobs.len())
            .finish_non_exhaustive()
    }
}

fn parse_id(id: &JobId) -> Option<u64> {
    id.as_str().parse().ok()
}

#[async_trait]
impl OutboxStore for InMemoryOutbox {
    async fn record_event(&self, event_id: &str, jobs: Vec<NewJob>) -> Result<RecordOutcome> {
        Ok(self.record(event_id, jobs, None)?.0)
    }

    async fn record_event_leased(
        &self,
        event_id: &str,
        jobs: Vec<NewJob>,
        to: LeaseOnRecord<'_>,
    ) -> Result<(RecordOutcome, Vec<ClaimedJob>)> {
        check_claim_kinds(to.worker_id, to.kinds, to.lease)?;
        self.record(event_id, jobs, Some(to))
    }

    fn leases_on_record(&self) -> bool {
        true
    }

    async fn claim(&self, worker_id: &str, max: usize, lease: Duration) -> Result<Vec<ClaimedJob>> {
        check_claim(worker_id, lease)?;
        self.claim_where(worker_id, max, lease, |_| true)
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
        self.claim_where(worker_id, max, lease, |kind| {
            kinds.binary_search(&kind).is_ok()
        })
    }

    async fn complete(&self, job_id: &JobId, lease: &LeaseToken) -> Result<()> {
        let now = self.clock.now();
        let mut s = self.lock();
        let e = parse_id(job_id)
            .and_then(|id| s.jobs.get_mut(&id))
            .ok_or_else(|| job_not_found(job_id))?;
        e.check_lease(job_id, lease)?;
        e.state = JobState::Done;
        e.lease = None;
        e.updated_at = now;
        Ok(())
    }

    async fn fail(
        &self,
        job_id: &JobId,
        lease: &LeaseToken,
        error: ErrorRecord,
        retry_at: Option<SystemTime>,
    ) -> Result<FailOutcome> {
        let now = self.clock.now();
        let mut s = self.lock();
        let e = parse_id(job_id)
            .and_then(|id| s.jobs.get_mut(&id))
            .ok_or_else(|| job_not_found(job_id))?;
        e.check_lease(job_id, lease)?;
        e.lease = None;
        e.updated_at = now;
        e.last_error = Some(error);
        let attempts = e.job.attempt;
        match retry_at {
            Some(at) if attempts < e.job.max_attempts => {
                e.state = JobState::Pending;
                e.available_at = at;
                Ok(FailOutcome::Retrying {
                    attempts,
                    retry_at: at,
                })
            }
            _ => {
                e.state = JobState::Dead;
                Ok(FailOutcome::DeadLettered { attempts })
            }
        }
    }

    async fn job(&self, job_id: &JobId) -> Result<Option<JobRecord>> {
        let s = self.lock();
        Ok(parse_id(job_id)
            .and_then(|id| s.jobs.get(&id))
            .map(Entry::record))
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let s = self.lock();
        Ok(s.jobs
            .values()
            .filter(|e| e.state == JobState::Dead)
            .take(limit)
            .filter_map(|e| DeadLetter::from_record(e.record()))
            .collect())
    }

    async fn replay(&self, job_id: &JobId) -> Result<()> {
        let now = self.clock.now();
        let mut s = self.lock();
        let e = parse_id(job_id)
            .and_then(|id| s.jobs.get_mut(&id))
            .ok_or_else(|| job_not_found(job_id))?;
        if e.state != JobState::Dead {
            return Err(Error::conflict(format!(
                "job {job_id} is {}, only dead letters can be replayed",
                e.state.as_str()
            )));
        }
        e.state = JobState::Pending;
        e.job.attempt = 0;
        e.available_at = now;
        e.updated_at = now;
        Ok(())
    }

    async fn counts(&self) -> Result<OutboxCounts> {
        let s = self.lock();
        let mut c = OutboxCounts {
            events: s.events.len() as u64,
            ..OutboxCounts::default()
        };
        let mut oldest: Option<SystemTime> = None;
        for e in s.jobs.values() {
            match e.state {
                JobState::Pending => {
                    c.pending += 1;
                    oldest = Some(oldest.map_or(e.available_at, |o| o.min(e.available_at)));
                }
                JobState::Leased => c.leased += 1,
                JobState::Done => c.done += 1,
                JobState::Dead => c.dead += 1,
            }
        }
        Ok(c.with_oldest_pending(oldest, self.clock.now()))
    }

    async fn purge(&self, older_than: SystemTime) -> Result<PurgeOutcome> {
        let mut s = self.lock();
        let before = s.jobs.len();
        s.jobs
            .retain(|_, e| !(e.state == JobState::Done && e.updated_at < older_than));
        let jobs = (before - s.jobs.len()) as u64;
        let with_jobs: std::collections::HashSet<String> =
            s.jobs.values().map(|e| e.job.event_id.clone()).collect();
        let before = s.events.len();
        s.events
            .retain(|id, at| *at >= older_than || with_jobs.contains(id));
        let events = (before - s.events.len()) as u64;
        Ok(PurgeOutcome { jobs, events })
    }
}
