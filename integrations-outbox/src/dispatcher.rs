//! [`Dispatcher`]: the worker loop that claims jobs and hands them to their handlers.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::ops::AddAssign;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::builder::DispatcherBuilder;
use super::completions::Completions;
use super::handler::{JobHandler, ShutdownSignal};
use super::metrics::{Ended, OutboxMetrics};
use super::store::{LEASE_LOST, OutboxStore};
use super::types::{
    ClaimedJob, FailOutcome, Job, JobId, LeaseOnRecord, LeaseToken, NewJob, RecordOutcome,
};
use integrations_core::Clock;
use integrations_core::ErrorRecord;
use integrations_core::resilience::Backoff;
use integrations_core::{Error, ErrorKind, Result};

/// What a run of the dispatcher did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunStats {
    /// Jobs claimed.
    pub claimed: u64,
    /// Delivered and marked done.
    pub succeeded: u64,
    /// Failed and put back for a later attempt.
    pub retried: u64,
    /// Failed permanently or out of attempts: now in the dead-letter queue.
    pub dead_lettered: u64,
    /// Finished after the lease had passed to another worker (the store refused the result).
    pub lease_lost: u64,
    /// The store failed while claiming or recording a result, even after the local retries of
    /// the mark (the lease will expire and the job will be claimed again).
    pub store_errors: u64,
    /// Claims of a job this dispatcher was still running (its lease had expired): not run a
    /// second time; the running delivery records its result under the newer lease.
    pub already_in_flight: u64,
}

impl AddAssign for RunStats {
    fn add_assign(&mut self, o: RunStats) {
        self.claimed += o.claimed;
        self.succeeded += o.succeeded;
        self.retried += o.retried;
        self.dead_lettered += o.dead_lettered;
        self.lease_lost += o.lease_lost;
        self.store_errors += o.store_errors;
        self.already_in_flight += o.already_in_flight;
    }
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Succeeded,
    Retried,
    DeadLettered,
    LeaseLost,
    StoreError,
}

impl RunStats {
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Succeeded => self.succeeded += 1,
            Outcome::Retried => self.retried += 1,
            Outcome::DeadLettered => self.dead_lettered += 1,
            Outcome::LeaseLost => self.lease_lost += 1,
            Outcome::StoreError => self.store_errors += 1,
        }
    }

    fn joined(&mut self, joined: std::result::Result<Outcome, tokio::task::JoinError>) {
        match joined {
            Ok(outcome) => self.count(outcome),
            Err(e) => {
                // Handler panics are caught inside the task; this is a cancelled task.
                tracing::error!(error = %e, "outbox delivery task did not finish");
                self.store_errors += 1;
            }
        }
    }
}

pub(super) struct Inner {
    pub(super) store: Arc<dyn OutboxStore>,
    pub(super) handlers: HashMap<String, Arc<dyn JobHandler>>,
    /// The kinds of `handlers`, sorted: what this dispatcher claims.
    pub(super) kinds: Vec<String>,
    pub(super) worker_id: String,
    pub(super) concurrency: usize,
    pub(super) lease: Duration,
    pub(super) handler_timeout: Duration,
    pub(super) poll_interval: Duration,
    pub(super) backoff: Backoff,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) wake: Arc<tokio::sync::Notify>,
    pub(super) max_retry_after: Duration,
    /// Jobs being delivered by this dispatcher, with the newest lease it holds on each.
    pub(super) in_flight: Mutex<HashMap<JobId, LeaseToken>>,
    pub(super) metrics: Arc<OutboxMetrics>,
    /// How often [`Dispatcher::run`] refreshes the metrics' [`OutboxBacklog`](crate::OutboxBacklog).
    pub(super) counts_interval: Option<Duration>,
    /// Deliveries that finish together complete in one commit.
    pub(super) completions: Completions,
    /// `concurrency` slots: each delivery of [`Dispatcher::run`] and of
    /// [`Dispatcher::record_event`] holds one while it runs.
    pub(super) slots: Arc<Semaphore>,
    /// How many `slots` there are.
    pub(super) slot_count: u32,
    /// `run` is draining: [`Dispatcher::record_event`] takes no more jobs.
    pub(super) stopping: AtomicBool,
    /// What the deliveries handed over by [`Dispatcher::record_event`] did, until `run` ends
    /// and counts them.
    pub(super) handed: Mutex<RunStats>,
    /// Jobs of its kinds that [`Dispatcher::record_event`] recorded pending (no free slot) since
    /// `run` last looked: `run` then claims only that many, rather than holding every free slot
    /// during the claim (which would leave the next records without one, and so on).
    pub(super) left_pending: AtomicUsize,
}

/// Attempts at recording a job's result (`complete`/`fail`) before giving up on a transient
/// store failure (SQLite busy, a throttled table).
pub const MARK_ATTEMPTS: u32 = 4;

/// Backoff between those attempts: 50 ms doubling, at most 1 s, full jitter (under 2 s in all,
/// well inside a lease).
pub const MARK_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(50), Duration::from_secs(1), 2.0);

/// Wakes an idle [`Dispatcher::run`] loop at once instead of at its next poll: call
/// [`DispatcherWaker::wake`] right after [`OutboxStore::record_event`] so the new jobs are
/// delivered without waiting out `poll_interval`. Cheap to clone; a wake while the loop is busy is
/// kept and consumed at its next idle moment, so none is lost. One waker can wake several
/// dispatchers (the lanes of one outbox): [`DispatcherWaker::join`].
#[derive(Clone)]
pub struct DispatcherWaker(Arc<[Arc<tokio::sync::Notify>]>);

impl DispatcherWaker {
    /// Wakes the dispatcher (each of them, for a joined waker).
    pub fn wake(&self) {
        for notify in self.0.iter() {
            notify.notify_one();
        }
    }

    /// One waker that wakes every dispatcher `wakers` wake: give it to whatever records jobs
    /// (or to `PostgresOutbox::wake_on_notify`) when each kind has its own dispatcher.
    pub fn join(wakers: impl IntoIterator<Item = DispatcherWaker>) -> DispatcherWaker {
        DispatcherWaker(
            wakers
                .into_iter()
                .flat_map(|w| w.0.iter().cloned().collect::<Vec<_>>())
                .collect(),
        )
    }
}

impl fmt::Debug for DispatcherWaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DispatcherWaker")
            .field("dispatchers", &self.0.len())
            .finish()
    }
}

/// Claims jobs from an [`OutboxStore`] and dispatches each to the [`JobHandler`] registered for
/// its kind, at most `concurrency` at a time.
///
/// A delivered job is completed; a retryable failure goes back with full-jitter backoff (at least
/// the provider's `Retry-After`); a permanent failure, or the last allowed attempt, goes to the
/// dead-letter queue. A handler that runs past `handler_timeout` (kept below the lease, so a live
/// worker never loses its lease) fails with a retryable timeout; a panicking handler dead-letters
/// its job.
///
/// **It claims only the kinds it has handlers for** ([`OutboxStore::claim_kinds`]), so that
/// * a quota-bound kind (a Sheets row waiting for the per-minute write quota) can run on a
///   dispatcher of its own, with its own concurrency — a *lane* — and never holds up the other
///   kinds' deliveries on another dispatcher over the same store;
/// * in a rolling deploy, a worker of the old build never claims a kind only the new build knows
///   (it would spend the job's attempts, or dead-letter it, for want of a handler).
///
/// A job of a kind no running dispatcher handles stays pending, visible in
/// [`OutboxStore::backlog`] (pending, and the oldest pending age grows): alert on that age. From a
/// store that cannot claim by kind ([`OutboxStore::claims_by_kind`] is `false`) the dispatcher
/// claims any kind, as before, and retries a job it has no handler for (a retryable
/// [`Error::Configuration`] naming `handlers`), so that a worker that knows the kind gets to it.
///
/// **Timeouts must nest.** A handler that calls a provider under a [`Policy`] needs
/// `handler_timeout ≥ policy.worst_case()` ([`Policy::worst_case`]: attempts × attempt timeout +
/// backoff and `Retry-After` waits, capped by the policy's deadline), or the policy's deadline set
/// from the handler timeout: otherwise the dispatcher cuts a send off mid-request — perhaps after
/// the provider acted — and runs it again. Register such handlers with
/// [`DispatcherBuilder::handler_with_policy`], which refuses to build when they do not fit.
///
/// Deliveries that finish while a completion is being committed are completed together in the
/// next commit ([`OutboxStore::complete_many`]), each still fenced by its own lease.
/// Recording a result is retried locally ([`MARK_ATTEMPTS`], [`MARK_BACKOFF`]) when the store
/// fails transiently, so a busy database does not leave a delivered job leased until its lease
/// expires and delivered again. A job is never run twice at once by one dispatcher: a claim of a
/// job still in flight here (its lease expired) is not run again, and the delivery in flight
/// records its result under the newer lease. A provider's `Retry-After` is honoured up to
/// `max_retry_after` (default [`DEFAULT_MAX_RETRY_AFTER`](super::DEFAULT_MAX_RETRY_AFTER)).
///
/// [`Policy`]: integrations_core::Policy
/// [`Policy::worst_case`]: integrations_core::Policy::worst_case
///
/// ```
/// use std::sync::Arc;
/// use integrations_outbox::{Dispatcher, InMemoryOutbox, NewJob, OutboxStore, handler_fn};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let outbox = Arc::new(InMemoryOutbox::new());
/// outbox.record_event("evt_1", vec![NewJob::new("notify", serde_json::json!({}))]).await?;
///
/// let dispatcher = Dispatcher::builder(outbox.clone())
///     .handler("notify", handler_fn(|_job| async { Ok(()) }))
///     .concurrency(4)
///     .build()?;
/// let stats = dispatcher.run_until_idle().await?;
/// assert_eq!(stats.succeeded, 1);
/// # Ok::<(), integrations_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Dispatcher {
    pub(super) inner: Arc<Inner>,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: BTreeSet<&str> = self.inner.handlers.keys().map(String::as_str).collect();
        f.debug_struct("Dispatcher")
            .field("worker_id", &self.inner.worker_id)
            .field("kinds", &kinds)
            .field("concurrency", &self.inner.concurrency)
            .field("lease", &self.inner.lease)
            .field("handler_timeout", &self.inner.handler_timeout)
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// A builder over `store`.
    pub fn builder(store: Arc<dyn OutboxStore>) -> DispatcherBuilder {
        DispatcherBuilder::new(store)
    }

    /// This worker's id, recorded on its leases.
    pub fn worker_id(&self) -> &str {
        &self.inner.worker_id
    }

    /// Claims one batch (up to `concurrency` jobs), delivers it, and returns what happened.
    ///
    /// # Errors
    /// The store's error if the claim fails.
    pub async fn run_once(&self) -> Result<RunStats> {
        let jobs = self.claim(self.inner.concurrency).await?;
        let mut stats = RunStats {
            claimed: jobs.len() as u64,
            ..RunStats::default()
        };
        let mut tasks = JoinSet::new();
        for job in jobs {
            if self.inner.start(&job) {
                tasks.spawn(process(Arc::clone(&self.inner), job));
            } else {
                stats.already_in_flight += 1;
            }
        }
        while let Some(joined) = tasks.join_next().await {
            stats.joined(joined);
        }
        Ok(stats)
    }

    /// Runs batches until a claim finds nothing claimable now (jobs waiting for a later retry
    /// time are left), for examples, tests and one-shot tools.
    ///
    /// # Errors
    /// The store's error if a claim fails.
    pub async fn run_until_idle(&self) -> Result<RunStats> {
        let mut total = RunStats::default();
        loop {
            let stats = self.run_once().await?;
            if stats.claimed == 0 {
                return Ok(total);
            }
            total += stats;
        }
    }

    /// A handle that wakes [`Dispatcher::run`] when new jobs are recorded.
    pub fn waker(&self) -> DispatcherWaker {
        DispatcherWaker(Arc::new([Arc::clone(&self.inner.wake)]))
    }

    /// The job kinds this dispatcher has handlers for, sorted: the kinds it claims.
    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.inner.kinds.iter().map(String::as_str)
    }

    /// Records `event_id` and its `jobs` in the store and runs the jobs this dispatcher has
    /// handlers (and free slots) for itself, without claiming them: they are written already
    /// leased to this worker, in the recording's own transaction
    /// ([`OutboxStore::record_event_leased`]), and handed to their handlers in memory. That saves
    /// a claim (a commit, and on Postgres a `NOTIFY` and a wake-up) per event.
    ///
    /// Nothing is weakened: every job is durable before any handler runs; a handed-over job is
    /// leased, fenced and completed exactly like a claimed one (its attempt is counted); if this
    /// process dies, its leases run out and any dispatcher claims the jobs. Jobs left pending (no
    /// free slot, a store that cannot lease on record) wake this dispatcher's
    /// [`run`](Dispatcher::run) loop, which claims them; on Postgres the listening dispatchers
    /// are notified too. Jobs of kinds this dispatcher has no handler for are recorded pending
    /// and do not wake it: wake the dispatchers of those kinds (lanes) in this process yourself.
    ///
    /// The handed-over deliveries share this dispatcher's `concurrency` with `run` (they hold
    /// its slots) and are counted in the [`RunStats`] that `run` returns; once `run` is draining
    /// none is taken (the jobs are recorded pending). They run on the current tokio runtime,
    /// with or without `run`. A slot is held until its job's completion commits, so size
    /// `concurrency` for the jobs being delivered *and* those being completed: the order-flow
    /// bench gives four slots per job in flight; with two, about a third of the jobs found no
    /// free slot and took the claim path.
    ///
    /// # Errors
    /// As for [`OutboxStore::record_event`]; nothing is handed over then.
    pub async fn record_event(&self, event_id: &str, jobs: Vec<NewJob>) -> Result<RecordOutcome> {
        let inner = &self.inner;
        let mut slots = Vec::new();
        let kinds_handled = jobs
            .iter()
            .filter(|j| inner.handlers.contains_key(&j.kind))
            .count();
        if inner.store.leases_on_record() && !inner.stopping.load(Ordering::Acquire) {
            while slots.len() < kinds_handled {
                match Arc::clone(&inner.slots).try_acquire_owned() {
                    Ok(slot) => slots.push(slot),
                    Err(_) => break,
                }
            }
        }
        let (outcome, leased) = if slots.is_empty() {
            (inner.store.record_event(event_id, jobs).await?, Vec::new())
        } else {
            let kinds: Vec<&str> = inner.kinds.iter().map(String::as_str).collect();
            let to = LeaseOnRecord::new(&inner.worker_id, &kinds, slots.len(), inner.lease);
            inner.store.record_event_leased(event_id, jobs, to).await?
        };
        let handed = leased.len();
        let ours = match &outcome {
            RecordOutcome::Recorded { .. } => kinds_handled,
            RecordOutcome::Duplicate => 0,
        };
        for (job, slot) in leased.into_iter().zip(slots) {
            if inner.start(&job) {
                let inner = Arc::clone(inner);
                tokio::spawn(async move {
                    let outcome = process(Arc::clone(&inner), job).await;
                    let mut handed = inner.handed.lock().unwrap_or_else(PoisonError::into_inner);
                    handed.claimed += 1;
                    handed.count(outcome);
                    drop(handed);
                    drop(slot); // only now, so a draining `run` that holds every slot has counted it
                });
            }
        }
        if ours > handed {
            inner
                .left_pending
                .fetch_add(ours - handed, Ordering::AcqRel);
            inner.wake.notify_one();
        }
        Ok(outcome)
    }

    /// Runs until `shutdown` fires: keeps up to `concurrency` deliveries in flight (those
    /// [`record_event`](Dispatcher::record_event) handed over included), polls every
    /// `poll_interval` when there is nothing to claim (or sooner, when a [`DispatcherWaker`]
    /// says new jobs were recorded), and on shutdown stops claiming and waits for the deliveries
    /// in flight (each bounded by `handler_timeout`), the handed-over ones included.
    ///
    /// Store failures are logged, counted and retried at the next poll; they never end the loop.
    pub async fn run(&self, mut shutdown: ShutdownSignal) -> RunStats {
        let inner = &self.inner;
        inner.stopping.store(false, Ordering::Release);
        let mut stats = RunStats::default();
        let mut tasks: JoinSet<Outcome> = JoinSet::new();
        let mut counted: Option<tokio::time::Instant> = None;
        // The last claim took all it asked for: more may be due, so ask for every free slot.
        let mut claimed_full = false;
        while !shutdown.is_triggered() {
            if let Some(every) = inner.counts_interval {
                if counted.is_none_or(|t| t.elapsed() >= every) {
                    counted = Some(tokio::time::Instant::now());
                    if let Err(e) = inner.metrics.refresh(&*inner.store).await {
                        tracing::warn!(worker = %inner.worker_id, error = %e, "outbox backlog failed");
                    }
                }
            }
            while let Some(Some(joined)) = tasks.join_next().now_or_never() {
                stats.joined(joined);
            }
            // Free slots for this claim (deliveries handed over by `record_event` hold some too).
            // Woken for jobs `record_event` left pending, only as many as it left: every slot
            // held during the claim is one the records made meanwhile cannot have.
            let left = inner.left_pending.swap(0, Ordering::AcqRel);
            let hinted = left > 0 && !claimed_full;
            let want = if hinted { left } else { inner.concurrency };
            let mut slots: Vec<OwnedSemaphorePermit> = Vec::new();
            while slots.len() < want {
                match Arc::clone(&inner.slots).try_acquire_owned() {
                    Ok(slot) => slots.push(slot),
                    Err(_) => break,
                }
            }
            let full = slots.is_empty();
            let mut idle = false;
            claimed_full = false;
            if !full {
                match self.claim(slots.len()).await {
                    Ok(jobs) => {
                        // Fewer than asked: nothing else is due now (no second, empty claim).
                        idle = jobs.len() < slots.len();
                        // A claim of what `record_event` left got it all; a full claim may
                        // have left more due.
                        claimed_full = !idle && !hinted;
                        idle |= hinted;
                        stats.claimed += jobs.len() as u64;
                        for job in jobs {
                            if !inner.start(&job) {
                                stats.already_in_flight += 1;
                                continue;
                            }
                            let slot = slots.pop();
                            let inner = Arc::clone(inner);
                            tasks.spawn(async move {
                                let outcome = process(inner, job).await;
                                drop(slot);
                                outcome
                            });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(worker = %inner.worker_id, error = %e, "outbox claim failed");
                        inner.metrics.record_store_error();
                        stats.store_errors += 1;
                        idle = true;
                    }
                }
            }
            drop(slots);
            if idle || full {
                tokio::select! {
                    Some(joined) = tasks.join_next(), if !tasks.is_empty() => stats.joined(joined),
                    () = tokio::time::sleep(inner.poll_interval), if idle => {}
                    () = inner.wake.notified(), if idle => {}
                    Ok(_slot) = inner.slots.acquire(), if full => {}
                    () = shutdown.wait() => {}
                }
            }
        }
        inner.stopping.store(true, Ordering::Release);
        tracing::info!(worker = %inner.worker_id, in_flight = tasks.len(), "outbox dispatcher draining");
        while let Some(joined) = tasks.join_next().await {
            stats.joined(joined);
        }
        // The deliveries handed over by `record_event`: every slot free means none is left.
        if let Ok(all) = inner.slots.acquire_many(inner.slot_count).await {
            drop(all);
        }
        stats += std::mem::take(&mut *inner.handed.lock().unwrap_or_else(PoisonError::into_inner));
        stats
    }

    /// Claims up to `max` jobs of the kinds this dispatcher handles, or of any kind from a store
    /// that cannot claim by kind.
    async fn claim(&self, max: usize) -> Result<Vec<ClaimedJob>> {
        let inner = &self.inner;
        if inner.store.claims_by_kind() {
            let kinds: Vec<&str> = inner.kinds.iter().map(String::as_str).collect();
            inner
                .store
                .claim_kinds(&inner.worker_id, &kinds, max, inner.lease)
                .await
        } else {
            inner.store.claim(&inner.worker_id, max, inner.lease).await
        }
    }
}

async fn process(inner: Arc<Inner>, claimed: ClaimedJob) -> Outcome {
    let ClaimedJob { job, .. } = claimed;
    let span = tracing::info_span!(
        "outbox_job",
        job_id = %job.id,
        kind = %job.kind,
        attempt = job.attempt,
        worker = %inner.worker_id,
        otel.kind = "consumer"
    );
    super::trace::link(&span, job.traceparent.as_deref());
    let outcome = async {
        match inner.deliver(&job).await {
            Ok(()) => match inner
                .mark(&job.id, "complete", |lease| {
                    let (inner, id) = (&inner, job.id.clone());
                    async move { inner.completions.complete(&*inner.store, id, lease).await }
                })
                .await
            {
                Ok(()) => {
                    tracing::debug!("outbox job delivered");
                    Outcome::Succeeded
                }
                Err(e) => store_failure("complete", &e),
            },
            Err(err) => {
                let retry_at = retry_later(&err).then(|| {
                    let backoff = inner.backoff.delay(job.attempt.saturating_sub(1));
                    let wait = retry_wait(backoff, err.retry_after(), inner.max_retry_after);
                    let now = inner.clock.now();
                    // A wait past the clock's range (only with a huge cap) waits the backoff.
                    now.checked_add(wait)
                        .or_else(|| now.checked_add(backoff))
                        .unwrap_or(now)
                });
                let record = ErrorRecord::from(&err);
                match inner
                    .mark(&job.id, "fail", |lease| {
                        let (store, id, record) = (&inner.store, &job.id, record.clone());
                        async move { store.fail(id, &lease, record, retry_at).await }
                    })
                    .await
                {
                    Ok(FailOutcome::Retrying { .. }) => {
                        tracing::info!(error = %err, "outbox job failed, will retry");
                        Outcome::Retried
                    }
                    Ok(FailOutcome::DeadLettered { attempts }) => {
                        tracing::error!(error = %err, attempts, "outbox job dead-lettered");
                        Outcome::DeadLettered
                    }
                    Err(e) => store_failure("fail", &e),
                }
            }
        }
    }
    .instrument(span)
    .await;
    inner.finish(&job.id);
    let ended = match outcome {
        Outcome::Succeeded => Ended::Delivered {
            latency: inner
                .clock
                .now()
                .duration_since(job.created_at)
                .unwrap_or(Duration::ZERO),
        },
        Outcome::Retried => Ended::Retried,
        Outcome::DeadLettered => Ended::DeadLettered,
        Outcome::LeaseLost => Ended::LeaseLost,
        Outcome::StoreError => Ended::StoreError,
    };
    inner.metrics.record(&job.kind, ended);
    outcome
}

/// The wait before a retry: the backoff, or the provider's `Retry-After` when longer, capped at
/// `cap` (a huge `Retry-After` would park the job for good).
fn retry_wait(backoff: Duration, retry_after: Option<Duration>, cap: Duration) -> Duration {
    backoff.max(retry_after.unwrap_or_default().min(cap))
}

/// Whether a failed job is tried again later rather than dead-lettered: every retryable error, and
/// the guards that refused without reaching the provider (an open circuit, a full bulkhead). Those
/// are final for one call under the policy — retrying them there would only spin — but for a
/// durable job they mean "not now": the job waits its backoff and the breaker is asked again.
fn retry_later(err: &Error) -> bool {
    err.is_retryable() || matches!(err.kind(), ErrorKind::CircuitOpen | ErrorKind::BulkheadFull)
}

fn store_failure(op: &str, e: &Error) -> Outcome {
    if e.code() == Some(LEASE_LOST) {
        tracing::warn!(error = %e, "outbox lease lost before {op}; another worker owns the job");
        Outcome::LeaseLost
    } else {
        tracing::warn!(error = %e, "outbox store failed to {op}; the lease will expire and the job be retried");
        Outcome::StoreError
    }
}

impl Inner {
    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, LeaseToken>> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a claimed job as in flight; `false` (keeping the newer lease for the delivery
    /// in flight) if it already is.
    fn start(&self, claimed: &ClaimedJob) -> bool {
        let mut in_flight = self.in_flight();
        if let Some(lease) = in_flight.get_mut(&claimed.job.id) {
            tracing::warn!(
                job_id = %claimed.job.id,
                worker = %self.worker_id,
                "claimed a job this worker is still delivering (its lease expired); not running it twice"
            );
            *lease = claimed.lease.clone();
            return false;
        }
        in_flight.insert(claimed.job.id.clone(), claimed.lease.clone());
        true
    }

    fn finish(&self, job_id: &JobId) {
        self.in_flight().remove(job_id);
    }

    fn lease_of(&self, job_id: &JobId) -> Option<LeaseToken> {
        self.in_flight().get(job_id).cloned()
    }

    /// Records a result (`op` is `complete` or `fail`) under the newest lease held on the job,
    /// retrying transient store failures up to [`MARK_ATTEMPTS`] times, and retrying at once if
    /// the lease was renewed by a claim meanwhile.
    async fn mark<T, F, Fut>(&self, job_id: &JobId, op: &str, mut f: F) -> Result<T>
    where
        F: FnMut(LeaseToken) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut failures = 0u32;
        loop {
            let Some(lease) = self.lease_of(job_id) else {
                return Err(Error::provider(format!(
                    "job {job_id} is not in flight here"
                )));
            };
            let err = match f(lease.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            failures += 1;
            if failures >= MARK_ATTEMPTS {
                return Err(err);
            }
            if err.code() == Some(LEASE_LOST) {
                if self.lease_of(job_id).is_some_and(|newer| newer != lease) {
                    continue; // this worker re-claimed the job meanwhile: use the new lease
                }
                return Err(err);
            }
            if !err.is_retryable() {
                return Err(err);
            }
            let delay = MARK_BACKOFF.delay(failures - 1);
            tracing::warn!(error = %err, ?delay, "outbox store failed to {op}; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    async fn deliver(&self, job: &Job) -> Result<()> {
        let Some(handler) = self.handlers.get(&job.kind) else {
            return Err(Error::configuration(
                "handlers",
                format!(
                    "worker {} has no handler for job kind `{}`",
                    self.worker_id, job.kind
                ),
            )
            .with_retry_hint(true));
        };
        let run = AssertUnwindSafe(handler.handle(job)).catch_unwind();
        match tokio::time::timeout(self.handler_timeout, run).await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic".to_owned());
                Err(
                    Error::provider(format!("handler for `{}` panicked: {msg}", job.kind))
                        .with_retry_hint(false),
                )
            }
            Err(_) => Err(Error::timeout(format!(
                "handler for `{}` ran past {:?}",
                job.kind, self.handler_timeout
            ))),
        }
    }
}
