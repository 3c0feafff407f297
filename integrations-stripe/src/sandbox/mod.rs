//! A local, in-process Stripe (feature `sandbox`) that the real [`StripeClient`] runs against
//! unchanged.
//!
//! | speaks | details |
//! |---|---|
//! | auth | `Authorization: Bearer sk_test_…` required; Stripe's 401 body otherwise |
//! | payment intents | create, retrieve, update, confirm, capture (full or partial), cancel, list; `requires_payment_method` → `requires_confirmation` → `succeeded`, or `requires_capture` with manual capture |
//! | test cards | `pm_card_visa` (and other brands) succeed; `pm_card_chargeDeclined`, `…InsufficientFunds`, `…ExpiredCard`, `…IncorrectCvc`, `…ProcessingError`, `…LostCard`, `…StolenCard`, `…Fraudulent` decline with Stripe's 402 body and leave `last_payment_error` |
//! | refunds | full or partial, Stripe's over-refund refusal, `charge.refunded` and `refund.created` events, list by payment intent |
//! | customers, charges, events | create/retrieve customers, retrieve charges, retrieve and list events (the latest [`event_retention`](SandboxBuilder::event_retention); [`Counters::events`] counts all) |
//! | idempotency | same key and parameters → the stored first response, with `Idempotent-Replayed: true`; same key, other parameters → 400 `idempotency_error` |
//! | webhooks | every event signed with the sandbox's `whsec_…` secret and delivered to callbacks ([`Sandbox::on_webhook`]) and URLs ([`Sandbox::add_webhook_endpoint`]) |
//! | faults | the testkit's [`Fault`]: 500 and 503 (`api_error`), 429 (`rate_limit`, with `Retry-After` when given), a hang past the client timeout (then the connection closes), or process and drop the connection; [`Sandbox::fail_next`] for the next requests, [`Sandbox::inject`] for a [`FaultRule`] (`.after(k).times(n).on("payment_intents.confirm")`) |
//! | request log | [`Sandbox::requests`]: the last [`request_retention`](SandboxBuilder::request_retention) requests; [`Counters::requests`] counts all of them |
//! | counters | payment intents created, charges and captures per intent ([`Sandbox::intent_counters`]) |
//! | webhook backlog | at most [`webhook_backlog`](SandboxBuilder::webhook_backlog) URL deliveries wait for a slot; past it, `POST` requests wait for room before they are processed (back-pressure from a slow receiver instead of a queue that grows with the run) |
//! | retention | the latest [`object_retention`](SandboxBuilder::object_retention) intents, charges, refunds and customers (a forgotten one answers `resource_missing`), events, idempotency keys, requests and deliveries: memory bounded by the retention, not by the orders; [`Counters`] exact |
//!
//! ```
//! use integrations_core::{Currency, IdempotencyKey, Money};
//! use integrations_core::provider::{CreatePayment, PaymentProvider, PaymentStatus};
//! use integrations_stripe::sandbox::Sandbox;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> integrations_core::Result<()> {
//! let sandbox = Sandbox::start().await.expect("bind a loopback port");
//! let payments = sandbox.client_builder().build()?; // StripePayments
//! let key = IdempotencyKey::derive("order-42", "payment")?;
//! let req = CreatePayment::new(Money::from_minor(5998, Currency::USD))
//!     .payment_method("pm_card_visa")
//!     .confirm(true);
//! let payment = payments.create_payment(&req, &key).await?;
//! assert_eq!(payment.status, PaymentStatus::Succeeded);
//! assert_eq!(sandbox.intent_counters(&payment.id).unwrap().successful_charges, 1);
//! # Ok(()) }
//! ```

mod delivery;
mod intents;
mod objects;
mod params;
mod render;
mod retained;
mod server;
mod state;

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use integrations_core::Result;
use integrations_core::webhook::WebhookSecret;
use integrations_testkit::sandbox::{DEFAULT_RETENTION, SandboxServer, ServerOptions};
use serde_json::Value;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::client::StripeClient;
use crate::config::{DEFAULT_API_VERSION, StripeBuilder};
use state::{Outgoing, State};

/// The key the sandbox hands out; any `sk_test_…` key is accepted.
pub const SANDBOX_SECRET_KEY: &str = "sk_test_sandbox_51Integrations";

pub use integrations_testkit::sandbox::{Fault, FaultRule};

/// How long a [`Fault::Hang`] holds a request unless told otherwise.
pub const DEFAULT_HANG: Duration = integrations_testkit::sandbox::DEFAULT_HANG;

/// How many webhook deliveries to URLs run at a time unless
/// [`SandboxBuilder::webhook_concurrency`] says otherwise.
pub const DEFAULT_WEBHOOK_CONCURRENCY: usize = 8;

/// How many URL deliveries may wait for a free delivery slot before the API calls that make
/// events wait for room, unless [`SandboxBuilder::webhook_backlog`] says otherwise.
pub const DEFAULT_WEBHOOK_BACKLOG: usize = 10_000;

/// The longest a `POST` waits for room in a full webhook backlog before it is processed anyway.
pub const WEBHOOK_BACKLOG_MAX_WAIT: Duration = Duration::from_secs(5);

/// Largest request body read; larger ones get `413` (as before the move onto the testkit).
const BODY_LIMIT: usize = 1024 * 1024;

/// Totals since the sandbox started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Authenticated and unauthenticated requests received (exact, also when
    /// [`Sandbox::requests`] keeps only the latest).
    pub requests: u64,
    /// Payment intents created.
    pub payment_intents_created: u64,
    /// Charge attempts (one per confirmation), declined ones included.
    pub charges: u64,
    /// Charges that succeeded (authorised).
    pub successful_charges: u64,
    /// Captures (automatic on confirmation, or manual).
    pub captures: u64,
    /// Refunds made.
    pub refunds: u64,
    /// Responses replayed for a reused idempotency key.
    pub idempotent_replays: u64,
    /// Webhook deliveries that succeeded.
    pub webhooks_delivered: u64,
    /// Webhook deliveries finished, delivered or given up (exact, also when
    /// [`Sandbox::deliveries`] keeps only the latest).
    pub webhook_deliveries: u64,
    /// Events created (exact, also when [`Sandbox::events`] keeps only the latest).
    pub events: u64,
    /// Customers created.
    pub customers: u64,
}

/// What happened to one payment intent: a payment made twice shows here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IntentCounters {
    /// Confirmations processed.
    pub confirmations: u64,
    /// Charge attempts.
    pub charges: u64,
    /// Successful charges.
    pub successful_charges: u64,
    /// Captures.
    pub captures: u64,
    /// Refunds.
    pub refunds: u64,
}

/// One request as the sandbox saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestRecord {
    /// `GET`, `POST`.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    /// Status answered (or, after [`Fault::DropAfterAccept`], that would have been; `0` after
    /// [`Fault::Hang`], which answers nothing).
    pub status: u16,
    /// Whether the response was an idempotent replay.
    pub replayed: bool,
    /// The fault injected into this request.
    pub fault: Option<Fault>,
}

/// One delivery of an event to a callback or URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryRecord {
    /// `evt_…`.
    pub event_id: String,
    /// Event type.
    pub event_type: String,
    /// The URL, or `"callback"`.
    pub target: String,
    /// Attempts made.
    pub attempts: u32,
    /// Last HTTP status received (URLs only).
    pub status: Option<u16>,
    /// Whether it was accepted (2xx).
    pub delivered: bool,
}

/// A signed event as handed to a callback: exactly the bytes and header an HTTP endpoint gets.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebhookDelivery {
    /// `evt_…`.
    pub event_id: String,
    /// Event type (`payment_intent.succeeded`).
    pub event_type: String,
    /// The raw JSON body.
    pub payload: bytes::Bytes,
    /// The `Stripe-Signature` header value.
    pub signature: String,
}

type Callback = Arc<dyn Fn(WebhookDelivery) + Send + Sync>;

pub(crate) struct Config {
    pub(crate) webhook_secret: WebhookSecret,
    pub(crate) webhook_secret_text: String,
    pub(crate) api_version: String,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

pub(crate) struct Shared {
    state: Mutex<State>,
    pub(crate) config: Config,
    callbacks: Mutex<Vec<Callback>>,
    pub(crate) jobs: mpsc::UnboundedSender<delivery::Job>,
    pub(crate) pending: AtomicUsize,
    pub(crate) idle: Notify,
    /// URL deliveries queued and not yet given a delivery slot.
    pub(crate) queued: AtomicUsize,
    /// Notified whenever a queued delivery gets its slot.
    pub(crate) room: Notify,
    pub(crate) backlog: usize,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
    fn callbacks(&self) -> Vec<Callback> {
        self.callbacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Configures a [`Sandbox`].
#[derive(Debug, Clone)]
pub struct SandboxBuilder {
    webhook_secret: Option<String>,
    hang: Duration,
    api_version: String,
    retention: usize,
    event_retention: usize,
    idempotency_retention: usize,
    object_retention: usize,
    webhook_concurrency: usize,
    webhook_backlog: usize,
}

impl SandboxBuilder {
    /// The webhook signing secret (default: a random `whsec_…`).
    #[must_use]
    pub fn webhook_secret(mut self, secret: impl Into<String>) -> Self {
        self.webhook_secret = Some(secret.into());
        self
    }

    /// How long [`Fault::Hang`] holds a request (default [`DEFAULT_HANG`]).
    #[must_use]
    pub fn hang_duration(mut self, hang: Duration) -> Self {
        self.hang = hang;
        self
    }

    /// How many requests [`Sandbox::requests`] and deliveries [`Sandbox::deliveries`] keep,
    /// the latest ones (default the testkit's `DEFAULT_RETENTION`, 10 000); [`Counters`] count
    /// every one.
    #[must_use]
    pub fn request_retention(mut self, n: usize) -> Self {
        self.retention = n;
        self
    }

    /// How many events [`Sandbox::events`], `GET /v1/events`, `GET /v1/events/{id}` and
    /// [`Sandbox::resend_event`] know, the latest ones (default 10 000; Stripe itself keeps
    /// events 30 days); [`Counters::events`] counts every one. Every event is delivered
    /// whatever the retention.
    #[must_use]
    pub fn event_retention(mut self, n: usize) -> Self {
        self.event_retention = n;
        self
    }

    /// How many idempotency keys keep their first response for replay, the latest ones
    /// (default 10 000; Stripe itself keeps them 24 hours). A key forgotten is a new request.
    #[must_use]
    pub fn idempotency_retention(mut self, n: usize) -> Self {
        self.idempotency_retention = n;
        self
    }

    /// How many payment intents, charges, refunds and customers the sandbox keeps, the latest
    /// of each kind (default the testkit's `DEFAULT_RETENTION`, 10 000, at least 1; Stripe
    /// itself keeps them for ever). A retrieve, update, confirm, capture, cancel or refund of a
    /// forgotten object answers Stripe's `resource_missing` 404 (400 when it is named by a
    /// parameter), as one that never existed; lists page over the kept ones;
    /// [`Sandbox::intent_counters`] is `None` for a forgotten intent. [`Counters`] count every
    /// object. This is what bounds the sandbox's memory in a long load test: about 2 KB an
    /// order for an intent and its charge (measured with massif in docs/scaling.md).
    #[must_use]
    pub fn object_retention(mut self, n: usize) -> Self {
        self.object_retention = n.max(1);
        self
    }

    /// How many webhook deliveries to URLs run at a time (default
    /// [`DEFAULT_WEBHOOK_CONCURRENCY`], at least 1). Stripe delivers concurrently and does not
    /// promise order; 1 delivers strictly in order, as slowly as the receiver answers.
    #[must_use]
    pub fn webhook_concurrency(mut self, n: usize) -> Self {
        self.webhook_concurrency = n.max(1);
        self
    }

    /// How many URL deliveries may wait for a delivery slot (default
    /// [`DEFAULT_WEBHOOK_BACKLOG`], 10,000, about 20 MB of signed payloads at ~2 KB each; at least 1). Past it,
    /// each `POST` request (the only ones that make events) waits before it is processed until a
    /// queued delivery has started, so a receiver slower than the client slows the client down
    /// instead of the queue growing with the run (the main job's scale run had ~23 MB of payloads
    /// alive at 4,000 orders, and it grew on). Real Stripe queues on its own side and never slows
    /// the API: a backlog deep enough for a burst keeps that timing in short tests, and a long
    /// load test then measures what the receiver sustains. The wait is capped at [`WEBHOOK_BACKLOG_MAX_WAIT`]: a webhook receiver that itself
    /// calls the sandbox while every delivery slot is taken cannot deadlock it, it is only slowed.
    /// `GET`s never wait; [`Sandbox::resend_event`] queues regardless.
    #[must_use]
    pub fn webhook_backlog(mut self, n: usize) -> Self {
        self.webhook_backlog = n.max(1);
        self
    }

    /// The API version events are rendered with (default [`DEFAULT_API_VERSION`]).
    #[must_use]
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = version.into();
        self
    }

    /// Binds `127.0.0.1:0` and starts serving on the current Tokio runtime.
    ///
    /// # Errors
    /// The I/O error if no loopback port can be bound.
    pub async fn start(self) -> std::io::Result<Sandbox> {
        let secret_text = self
            .webhook_secret
            .unwrap_or_else(|| state::random_token("whsec", 32));
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            state: Mutex::new(
                State {
                    api_version: self.api_version.clone(),
                    retention: self.retention,
                    event_retention: self.event_retention,
                    idempotency_retention: self.idempotency_retention,
                    ..State::default()
                }
                .with_object_retention(self.object_retention),
            ),
            config: Config {
                webhook_secret: WebhookSecret::new(secret_text.clone()),
                webhook_secret_text: secret_text,
                api_version: self.api_version,
            },
            callbacks: Mutex::new(Vec::new()),
            jobs: tx,
            pending: AtomicUsize::new(0),
            idle: Notify::new(),
            queued: AtomicUsize::new(0),
            room: Notify::new(),
            backlog: self.webhook_backlog,
        });
        let options = ServerOptions::default()
            .body_limit(BODY_LIMIT)
            .hang(self.hang)
            .retention(self.retention);
        let server = SandboxServer::start(
            Arc::new(server::StripeService {
                shared: shared.clone(),
            }),
            options,
        )
        .await?;
        let deliverer = tokio::spawn(delivery::run(
            shared.clone(),
            rx,
            integrations_core::http::default_client(),
            self.webhook_concurrency,
        ));
        Ok(Sandbox {
            shared,
            server,
            deliverer,
        })
    }
}

/// A running sandbox. Dropping it stops the server and aborts open connections.
pub struct Sandbox {
    shared: Arc<Shared>,
    server: SandboxServer,
    deliverer: JoinHandle<()>,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("addr", &self.addr())
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.server.shutdown();
        self.deliverer.abort();
    }
}

impl Sandbox {
    /// Starts a sandbox with the defaults.
    ///
    /// # Errors
    /// As [`SandboxBuilder::start`].
    pub async fn start() -> std::io::Result<Sandbox> {
        Sandbox::builder().start().await
    }

    /// A [`SandboxBuilder`].
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder {
            webhook_secret: None,
            hang: DEFAULT_HANG,
            api_version: DEFAULT_API_VERSION.to_owned(),
            retention: DEFAULT_RETENTION,
            event_retention: DEFAULT_RETENTION,
            idempotency_retention: DEFAULT_RETENTION,
            object_retention: DEFAULT_RETENTION,
            webhook_concurrency: DEFAULT_WEBHOOK_CONCURRENCY,
            webhook_backlog: DEFAULT_WEBHOOK_BACKLOG,
        }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:<port>`, for [`StripeBuilder::with_base_url`].
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// A test key the sandbox accepts.
    pub fn secret_key(&self) -> &'static str {
        SANDBOX_SECRET_KEY
    }

    /// A builder pointed at the sandbox with [`Sandbox::secret_key`]; add a policy or client.
    pub fn client_builder(&self) -> StripeBuilder {
        StripeBuilder::new()
            .with_secret_key(SANDBOX_SECRET_KEY)
            .with_base_url(self.base_url())
    }

    /// A client with the default policy, pointed at the sandbox.
    ///
    /// # Errors
    /// As [`StripeBuilder::build`] (not expected: the settings are valid).
    pub fn client(&self) -> Result<StripeClient> {
        self.client_builder().build().map(|p| p.client().clone())
    }

    /// The secret every delivery is signed with.
    pub fn webhook_secret(&self) -> WebhookSecret {
        self.shared.config.webhook_secret.clone()
    }

    /// The same secret as text (`whsec_…`), e.g. for `STRIPE_WEBHOOK_SECRET`.
    pub fn webhook_secret_text(&self) -> &str {
        &self.shared.config.webhook_secret_text
    }

    /// Applies `fault` to each of the next `n` authenticated requests, whatever the endpoint.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        self.server.faults().fail_next(n, fault);
    }

    /// Adds a fault rule: `n` authenticated requests get the fault, after `k` went through,
    /// optionally only those of one operation. Rules apply in the order they were added.
    ///
    /// Operations are named `resource.action` as in Stripe's API reference, without ids:
    /// `payment_intents.create`, `.list`, `.retrieve`, `.update`, `.confirm`, `.capture`,
    /// `.cancel`; `refunds.create`, `.list`, `.retrieve`; `customers.create`, `.retrieve`;
    /// `charges.retrieve`; `events.list`, `.retrieve`. A path the sandbox does not serve is
    /// named `"{METHOD} {path}"`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// use integrations_stripe::sandbox::{Fault, FaultRule, Sandbox};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let sandbox = Sandbox::start().await.unwrap();
    /// // The second confirmation is rate limited twice; nothing else is touched.
    /// sandbox.inject(
    ///     FaultRule::new(Fault::rate_limited(Duration::from_secs(1)))
    ///         .after(1)
    ///         .times(2)
    ///         .on("payment_intents.confirm"),
    /// );
    /// assert_eq!(sandbox.pending_faults(), 2);
    /// # }
    /// ```
    pub fn inject(&self, rule: FaultRule) {
        self.server.faults().add(rule);
    }

    /// Requests that will still get a fault, over every rule.
    pub fn pending_faults(&self) -> usize {
        self.server.faults().pending()
    }

    /// Delivers every later event to `url` (HTTP POST, signed, up to 3 attempts).
    pub fn add_webhook_endpoint(&self, url: impl Into<String>) {
        self.shared.lock().webhook_urls.push(url.into());
    }

    /// Hands every later event to `callback`, synchronously, before the API response that
    /// caused it is sent.
    pub fn on_webhook(&self, callback: impl Fn(WebhookDelivery) + Send + Sync + 'static) {
        self.shared
            .callbacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(callback));
    }

    /// Delivers an event again (as Stripe retries or a Dashboard resend would), freshly
    /// signed. Returns `false` if there is no such event.
    pub fn resend_event(&self, event_id: &str) -> bool {
        let out = {
            let st = self.shared.lock();
            st.event(event_id).map(|e| Outgoing {
                id: event_id.to_owned(),
                event_type: e
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                payload: bytes::Bytes::from(serde_json::to_vec_pretty(e).unwrap_or_default()),
            })
        };
        match out {
            Some(out) => {
                delivery::dispatch(&self.shared, vec![out]);
                true
            }
            None => false,
        }
    }

    /// Waits until every queued URL delivery has finished (delivered or given up).
    pub async fn flush_webhooks(&self) {
        loop {
            let idle = self.shared.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.shared.pending.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Totals so far.
    pub fn counters(&self) -> Counters {
        let mut counters = self.shared.lock().counters;
        counters.requests = self.server.requests().count();
        counters
    }

    /// What happened to one payment intent, `None` if it does not exist or is past the
    /// [`object_retention`](SandboxBuilder::object_retention).
    pub fn intent_counters(&self, payment_intent: &str) -> Option<IntentCounters> {
        self.shared.lock().per_intent.get(payment_intent).copied()
    }

    /// Calls `f` with each payment intent kept ([`SandboxBuilder::object_retention`]): its id,
    /// metadata and counters, oldest first, without rendering them. `f` runs under the
    /// sandbox's lock and must not call the sandbox. An audit of every intent of a run longer
    /// than the retention tallies the events as they are delivered ([`Sandbox::on_webhook`]).
    pub fn for_each_intent(
        &self,
        mut f: impl FnMut(&str, &std::collections::BTreeMap<String, String>, IntentCounters),
    ) {
        let st = self.shared.lock();
        for pi in st.intents.in_order() {
            let counters = st.per_intent.get(&pi.id).copied().unwrap_or_default();
            f(&pi.id, &pi.metadata, counters);
        }
    }

    /// Every payment intent kept ([`SandboxBuilder::object_retention`]), oldest first, as the
    /// API renders it.
    pub fn payment_intents(&self) -> Vec<Value> {
        let st = self.shared.lock();
        st.intents
            .in_order()
            .map(|pi| render::intent(&st, pi, &[]))
            .collect()
    }

    /// The events kept ([`SandboxBuilder::event_retention`]), oldest first.
    pub fn events(&self) -> Vec<Value> {
        self.shared.lock().events_in_order().cloned().collect()
    }

    /// The latest requests received (at most
    /// [`request_retention`](SandboxBuilder::request_retention)), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.server
            .requests()
            .recent()
            .into_iter()
            .map(|r| RequestRecord {
                method: r.method.to_string(),
                idempotency_key: r.header("idempotency-key").map(str::to_owned),
                replayed: r.response_header("idempotent-replayed") == Some("true"),
                status: r.status,
                fault: r.fault,
                path: r.path,
            })
            .collect()
    }

    /// The latest webhook deliveries (at most
    /// [`request_retention`](SandboxBuilder::request_retention)), oldest first.
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.shared.lock().deliveries.iter().cloned().collect()
    }
}
