//! [`Dashboard`] and its builder: the background sampler and the state the router reads.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use integrations_core::metrics::MetricsRegistry;
use integrations_core::{Error, Result};
use integrations_outbox::{DeadLetter, OutboxCounter, OutboxCounts, OutboxStore};
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;

use crate::history::History;
use crate::sampler::{Sample, Sampler, now_ms};

/// Default interval between samples.
pub const DEFAULT_SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// The shortest interval between samples (tests sample fast; a service every few seconds).
pub const MIN_SAMPLE_EVERY: Duration = Duration::from_millis(10);
/// Default history kept for the charts.
pub const DEFAULT_HISTORY: Duration = Duration::from_secs(3600);
/// Dead letters listed on the page (the oldest ones).
pub const DEAD_LETTERS_SHOWN: usize = 50;
/// Samples a [`Dashboard::subscribe`] receiver may fall behind before it loses the oldest.
pub const SUBSCRIBER_BACKLOG: usize = 64;

/// The stores' figures as of the last sample.
#[derive(Debug, Clone, Default)]
pub(crate) struct StoreView {
    pub(crate) counts: Option<OutboxCounts>,
    /// How old the done jobs and event records in `counts` were when read (they are counted
    /// only every `totals_every`).
    pub(crate) totals_age: Option<Duration>,
    pub(crate) dead_letters: Vec<DeadLetter>,
    /// The last read's failure (the figures are then the previous ones).
    pub(crate) error: Option<String>,
}

pub(crate) struct Shared {
    pub(crate) title: String,
    pub(crate) registry: MetricsRegistry,
    pub(crate) outbox: Option<Arc<dyn OutboxStore>>,
    /// Reads `outbox`'s counts: the backlog every sample, the totals now and then.
    counter: Option<OutboxCounter>,
    pub(crate) history: RwLock<History>,
    pub(crate) stores: RwLock<Arc<StoreView>>,
    pub(crate) step: Duration,
    pub(crate) window: Duration,
    /// Wakes the sampler early (after a replay, so the page shows it at once).
    pub(crate) wake: Notify,
    samples: broadcast::Sender<Arc<Sample>>,
}

impl Shared {
    pub(crate) fn samples(&self) -> Vec<Arc<Sample>> {
        self.history
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .samples()
    }

    pub(crate) fn stores(&self) -> Arc<StoreView> {
        Arc::clone(&self.stores.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Builds a [`Dashboard`]; see [`Dashboard::builder`].
#[derive(Debug, Default)]
pub struct DashboardBuilder {
    registry: Option<MetricsRegistry>,
    outbox: Option<Arc<dyn OutboxStore>>,
    sample_every: Option<Duration>,
    totals_every: Option<Duration>,
    history: Option<Duration>,
    title: Option<String>,
}

impl DashboardBuilder {
    /// The registry whose integrations are shown (required).
    pub fn metrics(mut self, registry: &MetricsRegistry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// The outbox whose depth and dead letters are shown, and whose dead letters the replay
    /// route puts back. Without one the page has no outbox section and replay answers 404.
    pub fn outbox(mut self, store: impl OutboxStore + 'static) -> Self {
        self.outbox = Some(Arc::new(store));
        self
    }

    /// How often the registry and the outbox are sampled (default
    /// [`DEFAULT_SAMPLE_EVERY`]); the page refreshes at the same pace. The stores are read
    /// once per sample, never per request.
    pub fn sample_every(mut self, every: Duration) -> Self {
        self.sample_every = Some(every);
        self
    }

    /// How often the outbox's done jobs and event records are counted (default
    /// [`DEFAULT_TOTALS_EVERY`](integrations_outbox::DEFAULT_TOTALS_EVERY), a minute). Each
    /// sample reads the outbox's [backlog](OutboxStore::backlog) (pending, in delivery, dead
    /// letters), whose cost follows what is unfinished; counting every done job and event record
    /// costs what the store holds, so it is done only this often, and the "delivered" and
    /// "events recorded" figures are as of that count.
    pub fn totals_every(mut self, every: Duration) -> Self {
        self.totals_every = Some(every);
        self
    }

    /// How much history the charts keep and show (default [`DEFAULT_HISTORY`]).
    pub fn history(mut self, window: Duration) -> Self {
        self.history = Some(window);
        self
    }

    /// The page's title (default `Integrations`).
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Starts the sampler on the current tokio runtime and returns the dashboard.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming `metrics` when no registry was given, `runtime` outside a
    /// tokio runtime; [`Error::InvalidInput`] naming `sample_every` when it is under
    /// [`MIN_SAMPLE_EVERY`] or `history` when it is not longer than the interval or over 7 days.
    pub fn build(self) -> Result<Dashboard> {
        let registry = self.registry.ok_or_else(|| {
            Error::configuration(
                "metrics",
                "the dashboard needs a MetricsRegistry: call .metrics(&registry)",
            )
        })?;
        let step = self.sample_every.unwrap_or(DEFAULT_SAMPLE_EVERY);
        if step < MIN_SAMPLE_EVERY {
            return Err(Error::invalid_input(
                "sample_every",
                format!("{step:?} is under the minimum of {MIN_SAMPLE_EVERY:?}"),
            ));
        }
        let window = self.history.unwrap_or(DEFAULT_HISTORY);
        if window <= step || window > Duration::from_secs(7 * 24 * 3600) {
            return Err(Error::invalid_input(
                "history",
                format!(
                    "{window:?} must be longer than sample_every ({step:?}) and at most 7 days"
                ),
            ));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            Error::configuration(
                "runtime",
                format!("build the dashboard inside a tokio runtime: {e}"),
            )
        })?;
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let (samples, _) = broadcast::channel(SUBSCRIBER_BACKLOG);
        let shared = Arc::new(Shared {
            title: self.title.unwrap_or_else(|| "Integrations".to_owned()),
            registry: registry.clone(),
            outbox: self.outbox.clone(),
            counter: self.outbox.clone().map(|o| {
                OutboxCounter::new(o).totals_every(
                    self.totals_every
                        .unwrap_or(integrations_outbox::DEFAULT_TOTALS_EVERY),
                )
            }),
            history: RwLock::new(History::new(window_ms)),
            stores: RwLock::default(),
            step,
            window,
            wake: Notify::new(),
            samples,
        });
        let (stop, stopped) = watch::channel(false);
        let mut sampler = Sampler::new(registry, None);
        // The baseline, taken here so that every call after `build` is charted and the totals
        // from before are not charted as one spike.
        sampler.sample_metrics(now_ms(), None);
        let task = runtime.spawn(run(Arc::clone(&shared), sampler, stopped));
        Ok(Dashboard {
            shared,
            stop,
            task: Some(task),
        })
    }
}

/// The dashboard: a background sampler and the routers that show what it gathers.
///
/// Dropping it stops the sampler (routers already made keep serving the last figures);
/// [`shutdown`](Self::shutdown) stops it and waits for it.
pub struct Dashboard {
    pub(crate) shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dashboard")
            .field("title", &self.shared.title)
            .field("sample_every", &self.shared.step)
            .field("history", &self.shared.window)
            .field("outbox", &self.shared.outbox.is_some())
            .finish_non_exhaustive()
    }
}

impl Dashboard {
    /// A builder: `.metrics(&registry)` is required, the rest has defaults.
    pub fn builder() -> DashboardBuilder {
        DashboardBuilder::default()
    }

    /// Every sample from now on, as it is taken (for a service that persists its series; a
    /// receiver more than [`SUBSCRIBER_BACKLOG`] samples behind loses the oldest).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Sample>> {
        self.shared.samples.subscribe()
    }

    /// The samples held, oldest first.
    pub fn samples(&self) -> Vec<Arc<Sample>> {
        self.shared.samples()
    }

    /// Stops the sampler after one last sample (so that subscribers get every call up to now)
    /// and waits for it.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Reads the outbox's counts and dead letters; on failure keeps the previous figures, marked.
async fn read_stores(shared: &Shared) -> Option<OutboxCounts> {
    let (outbox, counter) = (shared.outbox.as_ref()?, shared.counter.as_ref()?);
    let read = async {
        let counts = counter.read().await?;
        let dead_letters = outbox.dead_letters(DEAD_LETTERS_SHOWN).await?;
        Ok::<_, Error>(StoreView {
            counts: Some(counts),
            totals_age: counter.totals_read_at().map(|at| at.elapsed()),
            dead_letters,
            error: None,
        })
    };
    let (view, counts) = match read.await {
        Ok(v) => {
            let counts = v.counts;
            (v, counts)
        }
        Err(e) => {
            tracing::warn!(error = %e, "dashboard: the outbox could not be read");
            let mut stale = (*shared.stores()).clone();
            stale.error = Some(e.to_string());
            (stale, None)
        }
    };
    *shared
        .stores
        .write()
        .unwrap_or_else(PoisonError::into_inner) = Arc::new(view);
    counts
}

/// Samples every `shared.step` until `stop` turns true (then samples once more) or its sender
/// is dropped; when woken, re-reads the stores without sampling.
async fn run(shared: Arc<Shared>, mut sampler: Sampler, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(shared.step);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: the stores' figures are there before the first page.
    ticker.tick().await;
    read_stores(&shared).await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = shared.wake.notified() => {
                // A woken read refreshes the figures but takes no sample: intervals stay even.
                read_stores(&shared).await;
                continue;
            }
            r = stop.changed() => {
                if r.is_err() {
                    return; // the dashboard was dropped
                }
                if *stop.borrow() {
                    sample(&shared, &mut sampler).await;
                    return;
                }
            }
        }
        sample(&shared, &mut sampler).await;
    }
}

async fn sample(shared: &Shared, sampler: &mut Sampler) {
    let counts = read_stores(shared).await;
    let sample = Arc::new(sampler.sample_metrics(now_ms(), counts));
    shared
        .history
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Arc::clone(&sample));
    let _ = shared.samples.send(sample);
}
