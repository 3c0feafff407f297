//! [`DispatcherBuilder`]: configures and validates a [`Dispatcher`].

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::completions::Completions;
use super::dispatcher::{Dispatcher, Inner};
use super::handler::JobHandler;
use super::metrics::OutboxMetrics;
use super::store::OutboxStore;
use integrations_core::Policy;
use integrations_core::resilience::Backoff;
use integrations_core::{Clock, SystemClock};
use integrations_core::{Error, Result};

/// Builds a [`Dispatcher`]; see [`Dispatcher::builder`].
///
/// Defaults: `concurrency` 8, `lease` 60 s, `handler_timeout` three quarters of the lease,
/// `poll_interval` 1 s, backoff 1 s doubling up to 5 min (full jitter), `max_retry_after`
/// [`DEFAULT_MAX_RETRY_AFTER`], a random worker id.
///
/// The handler timeout must cover the worst case of the policy a handler calls under
/// ([`Policy::worst_case`]); register such handlers with
/// [`handler_with_policy`](DispatcherBuilder::handler_with_policy) to have `build` check it.
pub struct DispatcherBuilder {
    store: Arc<dyn OutboxStore>,
    handlers: HashMap<String, Arc<dyn JobHandler>>,
    worker_id: Option<String>,
    concurrency: usize,
    lease: Duration,
    handler_timeout: Option<Duration>,
    poll_interval: Duration,
    backoff: Backoff,
    clock: Arc<dyn Clock>,
    max_retry_after: Duration,
    /// Kind → the worst case of the policy its handler declared (`None`: unbounded).
    policies: HashMap<String, Option<Duration>>,
    metrics: Option<Arc<OutboxMetrics>>,
    counts_interval: Option<Duration>,
}

/// Default cap on a provider's `Retry-After` honoured by the dispatcher (1 h): a longer one
/// waits this long (a huge value would park the job for good).
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

impl fmt::Debug for DispatcherBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: BTreeSet<&str> = self.handlers.keys().map(String::as_str).collect();
        f.debug_struct("DispatcherBuilder")
            .field("kinds", &kinds)
            .field("worker_id", &self.worker_id)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl DispatcherBuilder {
    /// A builder over `store` with the defaults.
    pub fn new(store: Arc<dyn OutboxStore>) -> Self {
        DispatcherBuilder {
            store,
            handlers: HashMap::new(),
            worker_id: None,
            concurrency: 8,
            lease: Duration::from_secs(60),
            handler_timeout: None,
            poll_interval: Duration::from_secs(1),
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(300), 2.0),
            clock: Arc::new(SystemClock),
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            policies: HashMap::new(),
            metrics: None,
            counts_interval: None,
        }
    }
    /// Records delivery counters and latency into `metrics` instead of
    /// [`OutboxMetrics::global`].
    #[must_use]
    pub fn metrics(mut self, metrics: Arc<OutboxMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
    /// Has [`Dispatcher::run`] read the store's [backlog](OutboxStore::backlog) every `interval`
    /// into the metrics' gauges (pending, leased, dead letters, oldest pending age). Off by
    /// default: it is a query on the store, costing what is unfinished, not the done jobs (on
    /// DynamoDB, paged `COUNT` queries of those states in the status index), so choose an
    /// interval the store can afford, e.g. 15 s, or call [`OutboxMetrics::refresh`] yourself.
    /// `build` refuses a zero interval.
    #[must_use]
    pub fn counts_interval(mut self, interval: Duration) -> Self {
        self.counts_interval = Some(interval);
        self
    }
    /// Registers the handler of `kind`, which calls its provider under `policy`: `build` fails
    /// unless the handler timeout covers [`Policy::worst_case`] (or set the policy's deadline
    /// from the handler timeout).
    #[must_use]
    pub fn handler_with_policy(
        mut self,
        kind: impl Into<String>,
        handler: impl JobHandler + 'static,
        policy: &Policy,
    ) -> Self {
        let kind = kind.into();
        self.policies.insert(kind.clone(), policy.worst_case());
        self.handlers.insert(kind, Arc::new(handler));
        self
    }
    /// Caps the provider's `Retry-After` honoured before retrying a job (default
    /// [`DEFAULT_MAX_RETRY_AFTER`]).
    #[must_use]
    pub fn max_retry_after(mut self, cap: Duration) -> Self {
        self.max_retry_after = cap;
        self
    }
    /// Registers the handler of `kind` (replacing an earlier one).
    #[must_use]
    pub fn handler(mut self, kind: impl Into<String>, handler: impl JobHandler + 'static) -> Self {
        self.handlers.insert(kind.into(), Arc::new(handler));
        self
    }
    /// Registers a shared handler of `kind`.
    #[must_use]
    pub fn shared_handler(mut self, kind: impl Into<String>, handler: Arc<dyn JobHandler>) -> Self {
        self.handlers.insert(kind.into(), handler);
        self
    }
    /// Sets the worker id recorded on leases (default `worker-<pid>-<random>`).
    #[must_use]
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }
    /// Sets the most deliveries in flight at once.
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }
    /// Sets the lease taken on each claimed job.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }
    /// Sets the time a handler gets before its attempt fails as a timeout (must be below the
    /// lease).
    #[must_use]
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.handler_timeout = Some(timeout);
        self
    }
    /// Sets the wait between claims when there was nothing to claim.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }
    /// Sets the backoff between attempts of one job (full jitter; attempt `n` waits up to
    /// `backoff.ceiling(n - 1)`, and at least the provider's `Retry-After`).
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }
    /// Sets the clock used for retry times (use the store's clock).
    #[must_use]
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Builds the dispatcher.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming `handlers` (none registered, or one for an empty kind),
    /// `concurrency` (0), `lease`
    /// (0), `counts_interval` (0) or `handler_timeout` (not below the lease, or below the worst case of a policy
    /// declared with [`handler_with_policy`](DispatcherBuilder::handler_with_policy)).
    pub fn build(self) -> Result<Dispatcher> {
        if self.handlers.is_empty() {
            return Err(Error::configuration(
                "handlers",
                "register at least one handler",
            ));
        }
        if self.handlers.contains_key("") {
            return Err(Error::configuration(
                "handlers",
                "a job kind must not be empty",
            ));
        }
        if self.concurrency == 0 {
            return Err(Error::configuration("concurrency", "must be at least 1"));
        }
        if self.counts_interval.is_some_and(|i| i.is_zero()) {
            return Err(Error::configuration(
                "counts_interval",
                "must be above zero",
            ));
        }
        if self.lease < super::store::MIN_LEASE {
            return Err(Error::configuration("lease", "must be at least 1 ms"));
        }
        let handler_timeout = self.handler_timeout.unwrap_or(self.lease * 3 / 4);
        if handler_timeout >= self.lease || handler_timeout.is_zero() {
            return Err(Error::configuration(
                "handler_timeout",
                format!("must be above zero and below the lease ({:?})", self.lease),
            ));
        }
        let mut declared: Vec<_> = self.policies.iter().collect();
        declared.sort();
        for (kind, worst) in declared {
            if worst.is_none_or(|w| w > handler_timeout) {
                let worst = worst.map_or_else(|| "unbounded".to_owned(), |w| format!("{w:?}"));
                return Err(Error::configuration(
                    "handler_timeout",
                    format!(
                        "the handler of `{kind}` calls under a policy whose worst case is {worst}, \
                         longer than the handler timeout ({handler_timeout:?}): raise the handler \
                         timeout (and the lease) or set the policy's deadline below it"
                    ),
                ));
            }
        }
        let mut kinds: Vec<String> = self.handlers.keys().cloned().collect();
        kinds.sort_unstable();
        let worker_id = self
            .worker_id
            .unwrap_or_else(|| format!("worker-{}-{:08x}", std::process::id(), fastrand::u32(..)));
        // Every delivery of `run` and of `Dispatcher::record_event` holds one slot (a permit).
        let slot_count = u32::try_from(self.concurrency).unwrap_or(u32::MAX);
        let slots = usize::try_from(slot_count)
            .unwrap_or(usize::MAX)
            .min(tokio::sync::Semaphore::MAX_PERMITS);
        Ok(Dispatcher {
            inner: Arc::new(Inner {
                store: self.store,
                handlers: self.handlers,
                kinds,
                worker_id,
                concurrency: self.concurrency,
                lease: self.lease,
                handler_timeout,
                poll_interval: self.poll_interval,
                backoff: self.backoff,
                clock: self.clock,
                wake: Arc::new(tokio::sync::Notify::new()),
                max_retry_after: self.max_retry_after,
                in_flight: std::sync::Mutex::default(),
                metrics: self.metrics.unwrap_or_else(OutboxMetrics::global),
                counts_interval: self.counts_interval,
                completions: Completions::default(),
                slots: Arc::new(tokio::sync::Semaphore::new(slots)),
                slot_count: u32::try_from(slots).unwrap_or(u32::MAX),
                stopping: std::sync::atomic::AtomicBool::new(false),
                handed: std::sync::Mutex::default(),
                left_pending: std::sync::atomic::AtomicUsize::new(0),
            }),
        })
    }
}
