//! [`Server`]: the whole service on a socket — stores, providers (live or sandboxes), the outbox
//! dispatcher, the router — as `main` runs it and as end-to-end tests start it.

use crate::http_server::HttpLimits;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use integrations_core::metrics::MetricsRegistry;
use integrations_core::resilience::Backoff;
use integrations_core::{Error, Result};
use integrations_outbox::{
    Dispatcher, DispatcherWaker, OutboxStore, PostgresOutbox, RunStats, ShutdownTrigger,
    SqliteOutbox, WakeOnNotify, shutdown_channel,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::auth::ApiKeys;
use crate::effects::Effects;
use crate::history::MetricsHistory;
use crate::orders::OrderStore;
use crate::state::AppState;
use crate::wiring::Services;
use integrations_dashboard::Dashboard;

/// The SQLite file (orders, outbox, metrics history) inside the data directory.
pub const DB_FILE: &str = "order-service.db";

/// Postgres URL; set → everything the service keeps (orders and refund intents, the outbox's
/// jobs, dead letters and webhook records, the metrics history) lives in that database, shared
/// by every instance of the service, and no [`DB_FILE`] is opened.
pub const DATABASE_URL_ENV: &str = "DATABASE_URL";

/// Backoff between attempts of a failed outbox job: 1 s doubling to 5 min, full jitter.
pub const DEFAULT_DISPATCHER_BACKOFF: Backoff =
    Backoff::new(Duration::from_secs(1), Duration::from_secs(300), 2.0);

/// Reads a configuration variable by name.
pub type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// How to start a [`Server`].
pub struct ServerConfig {
    /// Where to listen (`127.0.0.1:0` picks a free port).
    pub addr: SocketAddr,
    /// Where the SQLite file lives; `None` uses a temporary directory removed on shutdown.
    pub data_dir: Option<PathBuf>,
    /// Accepted API keys.
    pub api_keys: ApiKeys,
    /// The registry shown by `/metrics` and the page.
    pub metrics: MetricsRegistry,
    /// Reads configuration variables (`std::env::var` in `main`; tests pass one returning
    /// `None` to run on sandboxes only).
    pub lookup: Lookup,
    /// The dispatcher's wait between polls of an idle outbox.
    pub poll_interval: Duration,
    /// The dispatcher's backoff between attempts of a failed job.
    pub dispatcher_backoff: Backoff,
    /// How often the dashboard samples the metrics (its charts and the stored history).
    pub metrics_interval: Duration,
    /// Header and request deadlines, the connection bound, the shutdown grace.
    pub http_limits: HttpLimits,
    /// A second listener serving the monitoring views and health without a key
    /// ([`crate::monitoring_app`]), for an internal address; `None`: none.
    pub monitoring_addr: Option<SocketAddr>,
    /// How often the monitoring views' store figures are re-read.
    pub monitoring_interval: Duration,
    /// How long done outbox jobs and recorded events are kept.
    pub retention: Duration,
    /// How often they are purged (also once at start).
    pub purge_interval: Duration,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("addr", &self.addr)
            .field("data_dir", &self.data_dir)
            .field("api_keys", &self.api_keys)
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// Loopback on a free port, a temporary data directory, sandboxes for every provider, the
    /// given keys, a fresh metrics registry.
    pub fn local(api_keys: ApiKeys) -> Self {
        ServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: None,
            api_keys,
            metrics: MetricsRegistry::new(),
            lookup: Box::new(|_| None),
            poll_interval: Duration::from_millis(200),
            dispatcher_backoff: DEFAULT_DISPATCHER_BACKOFF,
            metrics_interval: crate::history::SAMPLE_INTERVAL,
            http_limits: HttpLimits::default(),
            monitoring_addr: None,
            monitoring_interval: crate::monitoring::SNAPSHOT_INTERVAL,
            retention: crate::retention::DEFAULT_RETENTION,
            purge_interval: crate::retention::PURGE_INTERVAL,
        }
    }
}

/// A running service.
pub struct Server {
    addr: SocketAddr,
    state: AppState,
    services: Services,
    dispatchers: Vec<Dispatcher>,
    stop_dispatcher: ShutdownTrigger,
    dispatcher_tasks: Vec<JoinHandle<RunStats>>,
    stop_http: Option<tokio::sync::oneshot::Sender<()>>,
    http_task: JoinHandle<std::io::Result<()>>,
    dashboard: Option<Dashboard>,
    stop_persist: Option<tokio::sync::oneshot::Sender<()>>,
    persist_task: JoinHandle<()>,
    monitoring_addr: Option<SocketAddr>,
    stop_monitoring_http: Option<tokio::sync::oneshot::Sender<()>>,
    monitoring_http_task: Option<JoinHandle<std::io::Result<()>>>,
    stop_housekeeping: tokio::sync::watch::Sender<bool>,
    housekeeping_tasks: Vec<JoinHandle<()>>,
    _temp_dir: Option<tempfile::TempDir>,
    /// Wakes the dispatcher on jobs recorded by any instance (Postgres only).
    _wake: Option<WakeOnNotify>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Opens the stores, wires the providers, binds, points the sandboxes' webhooks at itself,
    /// and starts serving and dispatching.
    ///
    /// # Errors
    /// The stores' or providers' configuration errors; [`Error::Unavailable`] if the address
    /// cannot be bound.
    pub async fn start(config: ServerConfig) -> Result<Server> {
        let (dir, temp_dir) = match config.data_dir {
            Some(d) => (d, None),
            None => {
                let t = tempfile::tempdir().map_err(|e| {
                    Error::unavailable(format!("no temporary directory: {e}")).with_source(e)
                })?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::configuration("ORDER_SERVICE_DATA_DIR", format!("{}: {e}", dir.display()))
        })?;
        // One database for everything the service keeps: Postgres when `DATABASE_URL` is set,
        // else the SQLite file. The orders live next to the outbox either way, so an order
        // change and the jobs it owes commit in one transaction.
        let (outbox, orders, history, postgres): (Arc<dyn OutboxStore>, _, _, _) =
            match (config.lookup)(DATABASE_URL_ENV) {
                Some(url) if !url.trim().is_empty() => {
                    let pg = PostgresOutbox::connect(url.trim()).await?;
                    let orders = OrderStore::postgres(&pg).await?;
                    let history = MetricsHistory::postgres(pg.pool().clone()).await?;
                    let pg = Arc::new(pg);
                    (Arc::clone(&pg) as _, orders, history, Some(pg))
                }
                _ => {
                    let db = dir.join(DB_FILE);
                    let sqlite = SqliteOutbox::open(&db).await?;
                    let orders = OrderStore::sqlite(&sqlite).await?;
                    let history = MetricsHistory::open(&db).await?;
                    (Arc::new(sqlite) as _, orders, history, None)
                }
            };

        let listener = TcpListener::bind(config.addr).await.map_err(|e| {
            Error::unavailable(format!("cannot listen on {}: {e}", config.addr)).with_source(e)
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::unavailable(format!("no local address: {e}")))?;
        let monitoring_listener = match config.monitoring_addr {
            Some(a) => Some(TcpListener::bind(a).await.map_err(|e| {
                Error::unavailable(format!("cannot listen on {a} (monitoring): {e}")).with_source(e)
            })?),
            None => None,
        };
        let monitoring_addr = match &monitoring_listener {
            Some(l) => Some(
                l.local_addr()
                    .map_err(|e| Error::unavailable(format!("no local address: {e}")))?,
            ),
            None => None,
        };

        let services = Services::from_lookup(&*config.lookup, &config.metrics).await?;
        services.connect_sandbox_webhooks(&format!("http://{addr}"));

        let mut builder = AppState::builder(
            orders.clone(),
            Arc::clone(&services.payments),
            Arc::clone(&outbox),
            config.api_keys,
            services.stripe_webhook.clone(),
        )
        .metrics(config.metrics.clone())
        .metrics_history(history.clone());
        // The dashboard samples every interval; its samples are its charts' last hour and,
        // stored, the history of `GET /api/monitoring/metrics`.
        let dashboard = Dashboard::builder()
            .metrics(&config.metrics)
            .outbox(Arc::clone(&outbox))
            .sample_every(config.metrics_interval)
            .history(crate::DASHBOARD_HISTORY.max(config.metrics_interval * 2))
            .title("Order service")
            .build()?;
        builder = builder.dashboard(&dashboard);
        let (stop_persist, persist_stop) = tokio::sync::oneshot::channel::<()>();
        let persist_task = tokio::spawn(crate::history::persist(
            history,
            dashboard.subscribe(),
            persist_stop,
        ));
        if let Some(jwt) = crate::jwt::JwtVerifier::from_lookup(&*config.lookup)? {
            builder = builder.jwt(jwt);
        }
        if let Some(v) = &services.sendgrid_webhook {
            builder = builder.sendgrid_webhook(v.clone());
        }
        if let Some(s) = &services.sns_webhook {
            builder = builder.sns_webhook(s.clone());
        }
        for i in &services.integrations {
            builder = builder.integration(i.clone());
        }
        if let Some(sandbox) = &services.stripe_sandbox {
            let made = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let count = Arc::clone(&made);
            // Before the API response that made the event: a client that has its answer knows
            // the count includes its events.
            sandbox.on_webhook(move |_| {
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            });
            builder = builder.stripe_sandbox_events(made);
        }
        let state = builder.build();

        let effects = Effects::new(
            orders,
            Arc::clone(&services.email),
            services.email_from.clone(),
            Arc::clone(&services.sheets),
            Arc::clone(&services.notifier),
        );
        // Each layer's budget from the one inside it: the email job's handler timeout covers
        // the email policy's worst case (attempts, backoff, Retry-After), the lease covers the
        // handler timeout. With live SendGrid's default policy that is 210 s, not the
        // dispatcher's default 45 s, which would cut a send off mid-request and send it again.
        let handler_timeout = handler_timeout_for(&services.email_policy)?;
        let effects = effects.with_email_policy(services.email_policy.clone());
        // Two lanes over the one outbox, each claiming only its own kinds: the analytics rows
        // (waiting on the Sheets write quota) apart from the emails and notifications.
        let lane = |worker: &str| {
            Dispatcher::builder(Arc::clone(&outbox))
                .worker_id(format!(
                    "{worker}-{}-{:08x}",
                    std::process::id(),
                    fastrand::u32(..)
                ))
                .handler_timeout(handler_timeout)
                .lease(handler_timeout * 4 / 3)
                .poll_interval(config.poll_interval)
                .backoff(config.dispatcher_backoff)
                .metrics(Arc::clone(state.outbox_metrics()))
        };
        let (rows, others) = effects.register_lanes(
            lane("rows").concurrency(crate::effects::ROWS_CONCURRENCY),
            lane("worker"),
        );
        let dispatchers = vec![rows.build()?, others.build()?];
        let waker = DispatcherWaker::join(dispatchers.iter().map(Dispatcher::waker));
        state.set_dispatcher_waker(waker.clone());
        let wake = postgres.map(|p| p.wake_on_notify(waker));
        let (stop_dispatcher, signal) = shutdown_channel();
        let dispatcher_tasks = dispatchers
            .iter()
            .map(|d| {
                let (d, signal) = (d.clone(), signal.clone());
                tokio::spawn(async move { d.run(signal).await })
            })
            .collect();

        // The monitoring views' figures: read once before serving, then every interval; and the
        // purge of finished outbox work, at once and then every interval.
        if let Err(e) = crate::monitoring::refresh(&state).await {
            tracing::warn!(error = %e, "monitoring snapshot refresh failed");
        }
        let (stop_housekeeping, housekeeping) = tokio::sync::watch::channel(false);
        let housekeeping_tasks = vec![
            tokio::spawn(crate::monitoring::refresh_every(
                state.clone(),
                config.monitoring_interval,
                housekeeping.clone(),
            )),
            tokio::spawn(crate::retention::purge_every(
                Arc::clone(&outbox),
                config.retention,
                config.purge_interval,
                housekeeping,
            )),
        ];

        let (stop_http, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = crate::app(state.clone());
        let limits = config.http_limits;
        let http_task = tokio::spawn(crate::http_server::serve(listener, router, limits, stopped));
        let (stop_monitoring_http, monitoring_http_task) = match monitoring_listener {
            Some(l) => {
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                let router = crate::monitoring_app(state.clone());
                let task = tokio::spawn(crate::http_server::serve(l, router, limits, stopped));
                (Some(stop), Some(task))
            }
            None => (None, None),
        };
        tracing::info!(%addr, ?monitoring_addr, data_dir = %dir.display(), "order service listening");
        Ok(Server {
            addr,
            state,
            services,
            dispatchers,
            stop_dispatcher,
            dispatcher_tasks,
            stop_http: Some(stop_http),
            http_task,
            dashboard: Some(dashboard),
            stop_persist: Some(stop_persist),
            persist_task,
            monitoring_addr,
            stop_monitoring_http,
            monitoring_http_task,
            stop_housekeeping,
            housekeeping_tasks,
            _temp_dir: temp_dir,
            _wake: wake,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The monitoring listener's address, when configured.
    pub fn monitoring_addr(&self) -> Option<SocketAddr> {
        self.monitoring_addr
    }

    /// `http://<monitoring addr>`, when a monitoring listener is configured.
    pub fn monitoring_url(&self) -> Option<String> {
        self.monitoring_addr.map(|a| format!("http://{a}"))
    }

    /// The shared state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The dashboard (its samples are what its charts draw).
    pub fn dashboard(&self) -> Option<&Dashboard> {
        self.dashboard.as_ref()
    }

    /// The providers and sandboxes.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The outbox dispatchers, one per lane: the analytics rows, then every other kind
    /// (already running; `run_until_idle` on each drains its kinds now).
    pub fn dispatchers(&self) -> &[Dispatcher] {
        &self.dispatchers
    }

    /// Stops accepting requests, finishes the ones in flight and the deliveries in flight.
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the HTTP server failed.
    pub async fn shutdown(mut self) -> Result<RunStats> {
        if let Some(stop) = self.stop_http.take() {
            let _ = stop.send(());
        }
        if let Some(stop) = self.stop_monitoring_http.take() {
            let _ = stop.send(());
        }
        let served = (&mut self.http_task).await;
        if let Some(t) = self.monitoring_http_task.as_mut() {
            let _ = t.await;
        }
        let _ = self.stop_housekeeping.send(true);
        for t in &mut self.housekeeping_tasks {
            let _ = t.await;
        }
        // The dashboard's last sample first, then the store drains what it was sent.
        if let Some(d) = self.dashboard.take() {
            d.shutdown().await;
        }
        if let Some(stop) = self.stop_persist.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.persist_task).await;
        self.stop_dispatcher.trigger();
        let mut stats = RunStats::default();
        for task in &mut self.dispatcher_tasks {
            stats += task.await.unwrap_or_default();
        }
        match served {
            Ok(Ok(())) => Ok(stats),
            Ok(Err(e)) => Err(Error::unavailable(format!("HTTP server failed: {e}"))),
            Err(e) => Err(Error::unavailable(format!("HTTP server task failed: {e}"))),
        }
    }
}

/// The shortest handler timeout the service uses (the dispatcher's default).
pub const MIN_HANDLER_TIMEOUT: Duration = Duration::from_secs(45);

/// A handler timeout that covers `policy`'s worst case with a margin, and at least
/// [`MIN_HANDLER_TIMEOUT`].
///
/// # Errors
/// [`Error::Configuration`] naming `email_policy` when the policy has no bound (no attempt
/// timeout and no deadline): no handler timeout can cover it.
pub fn handler_timeout_for(policy: &integrations_core::Policy) -> Result<Duration> {
    let worst = policy.worst_case().ok_or_else(|| {
        Error::configuration(
            "email_policy",
            "unbounded worst case: give the email policy an attempt timeout or a deadline",
        )
    })?;
    Ok(worst
        .saturating_add(Duration::from_secs(5))
        .max(MIN_HANDLER_TIMEOUT))
}

impl Drop for Server {
    fn drop(&mut self) {
        self.http_task.abort();
        self.persist_task.abort();
        if let Some(t) = &self.monitoring_http_task {
            t.abort();
        }
        for t in &self.housekeeping_tasks {
            t.abort();
        }
        self.stop_dispatcher.trigger();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handler_timeout_covers_live_sendgrids_default_policy() {
        let live = integrations_sendgrid::default_policy();
        let worst = live.worst_case().unwrap();
        let t = handler_timeout_for(&live).unwrap();
        assert!(t > worst, "{t:?} does not cover {worst:?}");
        assert!(
            t > MIN_HANDLER_TIMEOUT,
            "the default 45 s would cut SendGrid off"
        );
        // A policy bounded by a short deadline keeps the default.
        let quick = integrations_core::Policy::builder("x")
            .attempt_timeout(Duration::from_secs(1))
            .deadline(Duration::from_secs(2))
            .build();
        assert_eq!(handler_timeout_for(&quick).unwrap(), MIN_HANDLER_TIMEOUT);
    }
}
