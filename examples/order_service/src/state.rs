//! [`AppState`]: what every handler shares.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::extract::FromRef;
use integrations_aws::sns::{SnsClient, SnsMessageVerifier};
use integrations_core::PaymentProvider;
use integrations_core::metrics::MetricsRegistry;
use integrations_outbox::OutboxStore;
use integrations_sendgrid::webhook::EventWebhookVerifier;
use integrations_stripe::webhook::StripeWebhookVerifier;
use serde::Serialize;

use crate::auth::{ApiKeys, Authenticator};
use crate::history::MetricsHistory;
use crate::jwt::JwtVerifier;
use crate::orders::OrderStore;

/// How an integration is provided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationMode {
    /// The real service, with credentials from the environment.
    Live,
    /// The provider crate's in-process sandbox.
    Sandbox,
    /// In-process, no provider at all (the local notifier).
    Local,
}

impl IntegrationMode {
    /// `"live"`, `"sandbox"` or `"local"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            IntegrationMode::Live => "live",
            IntegrationMode::Sandbox => "sandbox",
            IntegrationMode::Local => "local",
        }
    }
}

/// One configured integration, as `/integrations` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntegrationInfo {
    /// The name its policy records metrics under (`"stripe"`, `"google-sheets"`).
    pub name: String,
    /// What it does for the service (`"payments"`).
    pub role: String,
    /// Live, sandbox or local.
    pub mode: IntegrationMode,
}

impl IntegrationInfo {
    /// An integration `name` playing `role`.
    pub fn new(name: impl Into<String>, role: impl Into<String>, mode: IntegrationMode) -> Self {
        IntegrationInfo {
            name: name.into(),
            role: role.into(),
            mode,
        }
    }
}

/// Inbound SNS: the verifier, the topics whose messages are accepted, and optionally a client to
/// confirm subscriptions to them.
#[derive(Debug, Clone)]
pub struct SnsWebhook {
    /// Shared, so its certificate cache serves every request.
    pub verifier: Arc<SnsMessageVerifier>,
    /// Accepted topic ARNs; messages of any other topic are refused with 403.
    pub topics: BTreeSet<String>,
    /// Confirms subscription requests of accepted topics, when set.
    pub confirm_with: Option<SnsClient>,
}

impl SnsWebhook {
    /// Accepts messages of `topics`, verified by `verifier`.
    pub fn new(verifier: SnsMessageVerifier, topics: impl IntoIterator<Item = String>) -> Self {
        SnsWebhook {
            verifier: Arc::new(verifier),
            topics: topics.into_iter().collect(),
            confirm_with: None,
        }
    }

    /// Confirms subscriptions to the accepted topics with `client`.
    #[must_use]
    pub fn confirm_with(mut self, client: SnsClient) -> Self {
        self.confirm_with = Some(client);
        self
    }
}

impl FromRef<SnsWebhook> for Arc<SnsMessageVerifier> {
    fn from_ref(s: &SnsWebhook) -> Self {
        Arc::clone(&s.verifier)
    }
}

/// The dashboard's routers (the dashboard itself, with its sampler, belongs to the server).
#[derive(Clone)]
pub(crate) struct DashboardRoutes {
    pub(crate) full: axum::Router,
    pub(crate) read_only: axum::Router,
}

pub(crate) struct Inner {
    pub(crate) orders: OrderStore,
    pub(crate) payments: Arc<dyn PaymentProvider>,
    pub(crate) outbox: Arc<dyn OutboxStore>,
    /// Reads the outbox's counts for the monitoring snapshot: the backlog every refresh, the
    /// done jobs and event records once a minute.
    pub(crate) outbox_counter: integrations_outbox::OutboxCounter,
    pub(crate) metrics: MetricsRegistry,
    /// The dispatcher's delivery metrics (one per service, so tests in one process stay apart).
    pub(crate) outbox_metrics: Arc<integrations_outbox::OutboxMetrics>,
    pub(crate) api_keys: ApiKeys,
    pub(crate) jwt: Option<JwtVerifier>,
    pub(crate) history: Option<MetricsHistory>,
    pub(crate) dashboard: Option<DashboardRoutes>,
    pub(crate) stripe: Arc<StripeWebhookVerifier>,
    pub(crate) sendgrid: Option<EventWebhookVerifier>,
    pub(crate) sns: Option<SnsWebhook>,
    pub(crate) integrations: Vec<IntegrationInfo>,
    /// Stripe events the webhook took (answered 2xx: recorded, or known already).
    pub(crate) stripe_events_taken: AtomicU64,
    /// Stripe events the Stripe sandbox made, when the service runs on it.
    pub(crate) stripe_sandbox_events: Option<Arc<AtomicU64>>,
    refund_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub(crate) started: Instant,
    dispatcher_waker: std::sync::OnceLock<integrations_outbox::DispatcherWaker>,
    store_snapshot: RwLock<Arc<crate::monitoring::StoreSnapshot>>,
}

/// Everything the handlers share: stores, the payment provider, the outbox, metrics, keys and
/// webhook verifiers. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("AppState")
            .field("orders", &i.orders)
            .field("payments", &i.payments.name())
            .field("outbox", &i.outbox)
            .field("api_keys", &i.api_keys)
            .field("jwt", &i.jwt)
            .field("integrations", &i.integrations)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Lets the webhook routes wake `dispatcher` when they record new jobs, so side effects start
    /// at once instead of at the dispatcher's next poll. Only the first call takes effect.
    pub fn set_dispatcher_waker(&self, waker: integrations_outbox::DispatcherWaker) {
        let _ = self.inner.dispatcher_waker.set(waker);
    }

    pub(crate) fn wake_dispatcher(&self) {
        if let Some(w) = self.inner.dispatcher_waker.get() {
            w.wake();
        }
    }

    /// A builder with the parts every service needs.
    pub fn builder(
        orders: OrderStore,
        payments: Arc<dyn PaymentProvider>,
        outbox: Arc<dyn OutboxStore>,
        api_keys: ApiKeys,
        stripe_webhook: StripeWebhookVerifier,
    ) -> AppStateBuilder {
        AppStateBuilder {
            orders,
            payments,
            outbox,
            api_keys,
            jwt: None,
            history: None,
            dashboard: None,
            stripe: stripe_webhook,
            metrics: MetricsRegistry::global().clone(),
            sendgrid: None,
            sns: None,
            integrations: Vec::new(),
            stripe_sandbox_events: None,
            outbox_totals_every: integrations_outbox::DEFAULT_TOTALS_EVERY,
        }
    }

    /// The order store.
    pub fn orders(&self) -> &OrderStore {
        &self.inner.orders
    }

    /// The outbox.
    pub fn outbox(&self) -> &Arc<dyn OutboxStore> {
        &self.inner.outbox
    }

    /// The metrics shown on `/metrics`, `/integrations` and the dashboard.
    pub fn metrics(&self) -> &MetricsRegistry {
        &self.inner.metrics
    }

    /// The outbox dispatcher's delivery metrics, shown on `/metrics`.
    pub fn outbox_metrics(&self) -> &Arc<integrations_outbox::OutboxMetrics> {
        &self.inner.outbox_metrics
    }

    /// The accepted API keys.
    pub fn api_keys(&self) -> &ApiKeys {
        &self.inner.api_keys
    }

    /// What the API routes accept: the API keys and the JWT verifier, if any.
    pub fn authenticator(&self) -> Authenticator {
        Authenticator::new(self.inner.api_keys.clone(), self.inner.jwt.clone())
    }

    /// The stored metrics series, if configured.
    pub fn metrics_history(&self) -> Option<&MetricsHistory> {
        self.inner.history.as_ref()
    }

    /// The stores' figures the monitoring views show, as last read by
    /// [`monitoring::refresh`](crate::monitoring::refresh).
    pub fn store_snapshot(&self) -> Arc<crate::monitoring::StoreSnapshot> {
        Arc::clone(
            &self
                .inner
                .store_snapshot
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    pub(crate) fn set_store_snapshot(&self, s: crate::monitoring::StoreSnapshot) {
        *self
            .inner
            .store_snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(s);
    }

    /// The configured integrations.
    pub fn integrations(&self) -> &[IntegrationInfo] {
        &self.inner.integrations
    }

    /// The lock serialising refunds of order `id` (so two concurrent refunds cannot both pass
    /// the remaining-amount check).
    pub(crate) fn refund_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .inner
            .refund_locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Drop the locks nobody holds or waits for any more.
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        Arc::clone(locks.entry(id.to_owned()).or_default())
    }
}

impl FromRef<AppState> for Arc<StripeWebhookVerifier> {
    fn from_ref(s: &AppState) -> Self {
        Arc::clone(&s.inner.stripe)
    }
}

impl FromRef<AppState> for ApiKeys {
    fn from_ref(s: &AppState) -> Self {
        s.inner.api_keys.clone()
    }
}

/// Builds an [`AppState`]; see [`AppState::builder`].
pub struct AppStateBuilder {
    orders: OrderStore,
    payments: Arc<dyn PaymentProvider>,
    outbox: Arc<dyn OutboxStore>,
    api_keys: ApiKeys,
    jwt: Option<JwtVerifier>,
    history: Option<MetricsHistory>,
    dashboard: Option<DashboardRoutes>,
    stripe: StripeWebhookVerifier,
    metrics: MetricsRegistry,
    sendgrid: Option<EventWebhookVerifier>,
    sns: Option<SnsWebhook>,
    integrations: Vec<IntegrationInfo>,
    stripe_sandbox_events: Option<Arc<AtomicU64>>,
    outbox_totals_every: Duration,
}

impl fmt::Debug for AppStateBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppStateBuilder")
            .field("integrations", &self.integrations)
            .finish_non_exhaustive()
    }
}

impl AppStateBuilder {
    /// The registry whose metrics the service shows (default: the global one, which every
    /// provider's default policy records into).
    #[must_use]
    pub fn metrics(mut self, registry: MetricsRegistry) -> Self {
        self.metrics = registry;
        self
    }

    /// Also accepts the JWT bearer tokens `verifier` accepts.
    #[must_use]
    pub fn jwt(mut self, verifier: JwtVerifier) -> Self {
        self.jwt = Some(verifier);
        self
    }

    /// How often the monitoring snapshot counts the outbox's done jobs and event records
    /// (default [`DEFAULT_TOTALS_EVERY`](integrations_outbox::DEFAULT_TOTALS_EVERY), a minute);
    /// its backlog is read at every refresh. A full count reads every done job and event
    /// record the retention keeps.
    #[must_use]
    pub fn outbox_totals_every(mut self, every: Duration) -> Self {
        self.outbox_totals_every = every;
        self
    }

    /// Answers `GET /api/monitoring/metrics` from `history` (without one that route answers 503).
    #[must_use]
    pub fn metrics_history(mut self, history: MetricsHistory) -> Self {
        self.history = Some(history);
        self
    }

    /// Serves `dashboard` under `/dashboard` (the API key or a JWT in front; replay included)
    /// and, read-only, on the monitoring listener. Without one `/dashboard` answers 404.
    #[must_use]
    pub fn dashboard(mut self, dashboard: &integrations_dashboard::Dashboard) -> Self {
        self.dashboard = Some(DashboardRoutes {
            full: dashboard.router(),
            read_only: dashboard.read_only_router(),
        });
        self
    }

    /// Accepts SendGrid's Signed Event Webhook on `/webhooks/sendgrid`.
    #[must_use]
    pub fn sendgrid_webhook(mut self, verifier: EventWebhookVerifier) -> Self {
        self.sendgrid = Some(verifier);
        self
    }

    /// Accepts SNS messages on `/webhooks/sns`.
    #[must_use]
    pub fn sns_webhook(mut self, sns: SnsWebhook) -> Self {
        self.sns = Some(sns);
        self
    }

    /// Lists an integration in `/integrations` (and creates its metrics, so it shows before
    /// its first call).
    #[must_use]
    pub fn integration(mut self, info: IntegrationInfo) -> Self {
        self.integrations.push(info);
        self
    }

    /// Shows `made`, the count of Stripe events the Stripe sandbox made, next to the events the
    /// webhook took (`GET /metrics`): when the two are equal every event has been taken. The
    /// service counts on the sandbox's [`on_webhook`](integrations_stripe::sandbox::Sandbox::on_webhook).
    #[must_use]
    pub fn stripe_sandbox_events(mut self, made: Arc<AtomicU64>) -> Self {
        self.stripe_sandbox_events = Some(made);
        self
    }

    /// The state.
    pub fn build(self) -> AppState {
        for i in &self.integrations {
            self.metrics.integration(&i.name);
        }
        AppState {
            inner: Arc::new(Inner {
                orders: self.orders,
                payments: self.payments,
                outbox_counter: integrations_outbox::OutboxCounter::new(Arc::clone(&self.outbox))
                    .totals_every(self.outbox_totals_every),
                outbox: self.outbox,
                metrics: self.metrics,
                outbox_metrics: Arc::new(integrations_outbox::OutboxMetrics::new()),
                api_keys: self.api_keys,
                jwt: self.jwt,
                history: self.history,
                dashboard: self.dashboard,
                stripe: Arc::new(self.stripe),
                sendgrid: self.sendgrid,
                sns: self.sns,
                integrations: self.integrations,
                stripe_events_taken: AtomicU64::new(0),
                stripe_sandbox_events: self.stripe_sandbox_events,
                refund_locks: Mutex::new(HashMap::new()),
                started: Instant::now(),
                dispatcher_waker: std::sync::OnceLock::new(),
                store_snapshot: RwLock::default(),
            }),
        }
    }
}
