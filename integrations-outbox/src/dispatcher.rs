//! [`Dispatcher`]: the worker loop that claims jobs and hands them to their handlers.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::ops::AddAssign;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::builder::DispatcherBuilder;
use super::handler::{JobHandler, ShutdownSignal};
use super::store::{LEASE_LOST, OutboxStore};
use super::types::{ClaimedJob, FailOutcome, Job};
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
    /// The store failed while claiming or recording a result (the lease will expire and the job
    /// will be claimed again).
    pub store_errors: u64,
}

impl AddAssign for RunStats {
    fn add_assign(&mut self, o: RunStats) {
        self.claimed += o.claimed;
        self.succeeded += o.succeeded;
        self.retried += o.retried;
        self.dead_lettered += o.dead_lettered;
        self.lease_lost += o.lease_lost;
        self.store_errors += o.store_errors;
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
    pub(super) worker_id: String,
    pub(super) concurrency: usize,
    pub(super) lease: Duration,
    pub(super) handler_timeout: Duration,
    pub(super) poll_interval: Duration,
    pub(super) backoff: Backoff,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) wake: Arc<tokio::sync::Notify>,
}

/// Wakes an idle [`Dispatcher::run`] loop at once instead of at its next poll: call
/// [`DispatcherWaker::wake`] right after [`OutboxStore::record_event`] so the new jobs are
/// delivered without waiting out `poll_interval`. Cheap to clone; a wake while the loop is busy is
/// kept and consumed at its next idle moment, so none is lost.
#[derive(Clone)]
pub struct DispatcherWaker(Arc<tokio::sync::Notify>);

impl DispatcherWaker {
    /// Wakes the dispatcher.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

impl fmt::Debug for DispatcherWaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DispatcherWaker").finish_non_exhaustive()
    }
}

/// Claims jobs from an [`OutboxStore`] and dispatches each to the [`JobHandler`] registered for
/// its kind, at most `concurrency` at a time.
///
/// A delivered job is completed; a retryable failure goes back with full-jitter backoff (at least
/// the provider's `Retry-After`); a permanent failure, or the last allowed attempt, goes to the
/// dead-letter queue. A handler that runs past `handler_timeout` (kept below the lease, so a live
/// worker never loses its lease) fails with a retryable timeout; a panicking handler dead-letters
/// its job. A job of a kind no handler is registered for is retried, so that during a rolling
/// deploy workers that know the kind get to it.
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
            tasks.spawn(process(Arc::clone(&self.inner), job));
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
        DispatcherWaker(Arc::clone(&self.inner.wake))
    }

    /// Runs until `shutdown` fires: keeps up to `concurrency` deliveries in flight, polls every
    /// `poll_interval` when there is nothing to claim (or sooner, when a [`DispatcherWaker`]
    /// says new jobs were recorded), and on shutdown stops claiming and waits for the deliveries
    /// in flight (each bounded by `handler_timeout`).
    ///
    /// Store failures are logged, counted and retried at the next poll; they never end the loop.
    pub async fn run(&self, mut shutdown: ShutdownSignal) -> RunStats {
        let inner = &self.inner;
        let mut stats = RunStats::default();
        let mut tasks: JoinSet<Outcome> = JoinSet::new();
        while !shutdown.is_triggered() {
            while let Some(Some(joined)) = tasks.join_next().now_or_never() {
                stats.joined(joined);
            }
            let free = inner.concurrency.saturating_sub(tasks.len());
            let mut idle = false;
            if free > 0 {
                match self.claim(free).await {
                    Ok(jobs) => {
                        idle = jobs.is_empty();
                        stats.claimed += jobs.len() as u64;
                        for job in jobs {
                            tasks.spawn(process(Arc::clone(inner), job));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(worker = %inner.worker_id, error = %e, "outbox claim failed");
                        stats.store_errors += 1;
                        idle = true;
                    }
                }
            }
            if idle || tasks.len() >= inner.concurrency {
                tokio::select! {
                    Some(joined) = tasks.join_next(), if !tasks.is_empty() => stats.joined(joined),
                    () = tokio::time::sleep(inner.poll_interval), if idle => {}
                    () = inner.wake.notified(), if idle => {}
                    () = shutdown.wait() => {}
                }
            }
        }
        tracing::info!(worker = %inner.worker_id, in_flight = tasks.len(), "outbox dispatcher draining");
        while let Some(joined) = tasks.join_next().await {
            stats.joined(joined);
        }
        stats
    }

    async fn claim(&self, max: usize) -> Result<Vec<ClaimedJob>> {
        let inner = &self.inner;
        inner.store.claim(&inner.worker_id, max, inner.lease).await
    }
}

async fn process(inner: Arc<Inner>, claimed: ClaimedJob) -> Outcome {
    let ClaimedJob { job, lease, .. } = claimed;
    let span = tracing::info_span!(
        "outbox_job",
        job_id = %job.id,
        kind = %job.kind,
        attempt = job.attempt,
        worker = %inner.worker_id
    );
    async {
        match inner.deliver(&job).await {
            Ok(()) => match inner.store.complete(&job.id, &lease).await {
                Ok(()) => {
                    tracing::debug!("outbox job delivered");
                    Outcome::Succeeded
                }
                Err(e) => store_failure("complete", &e),
            },
            Err(err) => {
                let retry_at = retry_later(&err).then(|| {
                    let backoff = inner.backoff.delay(job.attempt.saturating_sub(1));
                    let wait = backoff.max(err.retry_after().unwrap_or_default());
                    let now = inner.clock.now();
                    now.checked_add(wait).unwrap_or(now)
                });
                let record = ErrorRecord::from(&err);
                match inner.store.fail(&job.id, &lease, record, retry_at).await {
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
    .await
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
