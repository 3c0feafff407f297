//! A local SendGrid: an in-process HTTP server for `POST /v3/mail/send` that drives the real
//! client (feature `sandbox`).
//!
//! | behaviour | like SendGrid |
//! |---|---|
//! | auth | `Authorization: Bearer <key>`; 401 `authorization required` or `The provided authorization grant is invalid, expired, or revoked` |
//! | validation | the OpenAPI's rules and documented limits, every error collected, `{"errors":[{"message","field","help"}]}` with dotted fields |
//! | acceptance | 202, empty body, `X-Message-Id`; the message recorded for assertions; `mail_settings.sandbox_mode` → 200, not recorded |
//! | rate limit | optional per-minute limit: `X-RateLimit-Limit/Remaining/Reset` on every answer, 429 `too many requests` |
//! | size | bodies over 30 MB → 413 `content too large` |
//! | faults | [`Sandbox::fail_next`], [`Sandbox::inject`]: the testkit's [`Fault`]s — 500, 503, 429 (with `X-RateLimit-Reset` = now + the retry hint on the sandbox clock), a hang, or accept-then-drop the connection — in SendGrid's `{"errors":[{"message"}]}` shape |
//! | activity | `GET /v3/messages?query=unique_args['name']="value"`: the accepted messages sent with that custom arg, listed at once (SendGrid's feed lags) |
//! | events | signed Event Webhook batches for accepted messages, to a URL or a callback |
//! | records | [`Sandbox::requests`]: the last requests in full and exact totals; accepted messages and event batches kept up to a retention, counted exactly |
//!
//! The server is the testkit's [`SandboxServer`]; this module keeps only SendGrid's protocol
//! (its [`SandboxService`](integrations_testkit::sandbox::SandboxService) names `POST
//! /v3/mail/send` `"mail.send"`). Authentication is checked after faults, as a fault stands for
//! SendGrid failing before it looked at the request.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> integrations_core::Result<()> {
//! use integrations_core::provider::{EmailMessage, EmailProvider};
//! use integrations_sendgrid::sandbox::Sandbox;
//! use integrations_sendgrid::webhook::EventType;
//!
//! let sandbox = Sandbox::start().await.expect("bind");
//! let sendgrid = sandbox.email().build()?;
//! let msg = EmailMessage::builder("shop@example.com")
//!     .to("jane@example.com")
//!     .subject("Order 42")
//!     .text("Thanks!")
//!     .custom_arg("order_id", "42")
//!     .build();
//! let sent = sendgrid.send(&msg).await?;
//! assert_eq!(sandbox.messages()[0].message_id, sent.message_id);
//!
//! let delivery = sandbox.emit_events(&sent.message_id, &[EventType::Delivered]).await?;
//! let events = sandbox.webhook_verifier().construct_events(&delivery.headers(), &delivery.body)?;
//! assert_eq!(events[0].message_id(), Some(sent.message_id.as_str()));
//! assert_eq!(events[0].custom_arg("order_id"), Some("42"));
//! # Ok(()) }
//! ```

mod events;
mod rules;
mod server;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use integrations_core::clock::{Clock, SystemClock};
use integrations_testkit::sandbox::{DEFAULT_RETENTION, SandboxServer, ServerOptions};

pub use events::{WebhookCallback, WebhookDelivery, WebhookTarget};
pub use integrations_testkit::sandbox::{
    Fault, FaultRule, RecordedRequest, RequestLog, RequestTotals,
};

use crate::config::SendGridBuilder;
use crate::mail::MailSend;
use crate::validate::MAX_BODY_BYTES;
use crate::webhook::{EventType, EventWebhookSigner, EventWebhookVerifier};

/// The API key a sandbox accepts unless told otherwise.
pub const DEFAULT_API_KEY: &str = "SG.sandbox-api-key";
/// How long [`Fault::Hang`] holds a request by default.
pub const DEFAULT_HANG: Duration = Duration::from_secs(3600);

/// A message the sandbox accepted.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AcceptedMessage {
    /// The `X-Message-Id` it was given.
    pub message_id: String,
    /// The body, typed.
    pub mail: MailSend,
    /// The body as received.
    pub body: serde_json::Value,
    /// The `on-behalf-of` header, if any.
    pub on_behalf_of: Option<String>,
    /// When it was accepted (sandbox clock).
    pub received_at: SystemTime,
}

/// The last `retention` items in order, and how many there were in all.
#[derive(Debug)]
pub(crate) struct Retained<T> {
    retention: usize,
    pub(crate) items: VecDeque<T>,
    total: u64,
}

impl<T> Retained<T> {
    fn new(retention: usize) -> Self {
        Retained {
            retention,
            items: VecDeque::new(),
            total: 0,
        }
    }

    /// Adds `item`; returns the one it pushed out, if any.
    fn push(&mut self, item: T) -> Option<T> {
        self.total += 1;
        if self.retention == 0 {
            return Some(item);
        }
        let evicted = if self.items.len() >= self.retention {
            self.items.pop_front()
        } else {
            None
        };
        self.items.push_back(item);
        evicted
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    fn clear(&mut self) {
        self.items.clear();
        self.total = 0;
    }
}

pub(crate) struct State {
    /// Accepted message ids, oldest first; the messages themselves in `by_id`.
    pub(crate) messages: Retained<String>,
    pub(crate) by_id: HashMap<String, AcceptedMessage>,
    pub(crate) rate_limit: Option<u32>,
    /// (minute index, requests counted in it).
    pub(crate) window: (i64, u32),
    pub(crate) webhook: Option<WebhookTarget>,
    pub(crate) auto_events: Vec<EventType>,
    pub(crate) deliveries: Retained<WebhookDelivery>,
    /// Called with each accepted message ([`Sandbox::on_accept`]).
    observers: Vec<AcceptObserver>,
}

/// A function told of each accepted message.
type AcceptObserver = Arc<dyn Fn(&AcceptedMessage) + Send + Sync>;

impl State {
    /// Records an accepted message, forgetting the oldest beyond the retention.
    pub(crate) fn accept(&mut self, msg: AcceptedMessage) {
        for observe in &self.observers {
            observe(&msg);
        }
        let id = msg.message_id.clone();
        self.by_id.insert(id.clone(), msg);
        if let Some(old) = self.messages.push(id) {
            self.by_id.remove(&old);
        }
    }

    pub(crate) fn record_delivery(&mut self, delivery: WebhookDelivery) {
        self.deliveries.push(delivery);
    }
}

/// The sandbox's protocol state, served by the testkit's [`SandboxServer`] (the
/// [`SandboxService`](integrations_testkit::sandbox::SandboxService) impl is in `server.rs`).
pub(crate) struct Shared {
    pub(crate) api_key: String,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) signer: EventWebhookSigner,
    pub(crate) state: Mutex<State>,
    /// Itself, for event batches sent in the background.
    pub(crate) this: Weak<Shared>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Configures a [`Sandbox`] before it starts.
#[derive(Debug, Clone)]
pub struct SandboxBuilder {
    api_key: String,
    rate_limit: Option<u32>,
    clock: Arc<dyn Clock>,
    hang: Duration,
    signer: Option<EventWebhookSigner>,
    request_retention: usize,
    message_retention: usize,
}

impl Default for SandboxBuilder {
    fn default() -> Self {
        SandboxBuilder {
            api_key: DEFAULT_API_KEY.to_owned(),
            rate_limit: None,
            clock: Arc::new(SystemClock),
            hang: DEFAULT_HANG,
            signer: None,
            request_retention: DEFAULT_RETENTION,
            message_retention: DEFAULT_RETENTION,
        }
    }
}

impl SandboxBuilder {
    /// The API key to accept (default [`DEFAULT_API_KEY`]).
    #[must_use]
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = key.into();
        self
    }
    /// Accept at most `n` requests per clock minute (fixed windows on minute boundaries).
    #[must_use]
    pub fn rate_limit_per_minute(mut self, n: u32) -> Self {
        self.rate_limit = Some(n);
        self
    }
    /// The clock for rate-limit windows, `send_at` checks and event timestamps.
    #[must_use]
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }
    /// How long [`Fault::Hang`] holds a request (the server's
    /// [`ServerOptions::hang`](integrations_testkit::sandbox::ServerOptions)), default
    /// [`DEFAULT_HANG`].
    #[must_use]
    pub fn hang_for(mut self, d: Duration) -> Self {
        self.hang = d;
        self
    }
    /// How many requests [`Sandbox::requests`] keeps in full (default 10 000); its totals count
    /// every request.
    #[must_use]
    pub fn request_retention(mut self, n: usize) -> Self {
        self.request_retention = n;
        self
    }
    /// How many accepted messages and event batches are kept (default 10 000 each); the oldest
    /// are forgotten first, [`Sandbox::accepted_count`] and [`Sandbox::delivery_count`] stay
    /// exact.
    #[must_use]
    pub fn message_retention(mut self, n: usize) -> Self {
        self.message_retention = n;
        self
    }
    /// The key event batches are signed with (default: a fresh one).
    #[must_use]
    pub fn webhook_signer(mut self, signer: EventWebhookSigner) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Binds `127.0.0.1:0` and starts serving on the current tokio runtime.
    ///
    /// # Errors
    /// If the socket cannot be bound.
    pub async fn start(self) -> io::Result<Sandbox> {
        let signer = self.signer.unwrap_or_else(EventWebhookSigner::generate);
        let state = State {
            messages: Retained::new(self.message_retention),
            by_id: HashMap::new(),
            rate_limit: self.rate_limit,
            window: (i64::MIN, 0),
            webhook: None,
            auto_events: Vec::new(),
            deliveries: Retained::new(self.message_retention),
            observers: Vec::new(),
        };
        let shared = Arc::new_cyclic(|this| Shared {
            api_key: self.api_key,
            clock: self.clock,
            signer,
            state: Mutex::new(state),
            this: this.clone(),
        });
        let options = ServerOptions::default()
            // Bodies over SendGrid's 30 MB get its own 413 from the service; far larger ones
            // are refused unread.
            .body_limit(MAX_BODY_BYTES * 2)
            .hang(self.hang)
            .retention(self.request_retention);
        let server = SandboxServer::start(shared.clone(), options).await?;
        Ok(Sandbox { server, shared })
    }
}

/// A running sandbox; stops when dropped.
pub struct Sandbox {
    server: SandboxServer,
    shared: Arc<Shared>,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.shared.lock();
        f.debug_struct("Sandbox")
            .field("addr", &self.server.addr())
            .field("messages", &s.messages.len())
            .field("requests", &self.server.requests().count())
            .field("pending_faults", &self.server.faults().pending())
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// A sandbox with the defaults ([`SandboxBuilder`]).
    ///
    /// # Errors
    /// If the socket cannot be bound.
    pub async fn start() -> io::Result<Sandbox> {
        SandboxBuilder::default().start().await
    }

    /// Stops serving and waits until the port is closed (dropping the sandbox stops it too, but
    /// without waiting).
    pub async fn shutdown(self) {
        let addr = self.server.addr();
        self.server.shutdown();
        drop(self);
        // The accept loop closes the port once its aborted task is dropped: wait for that.
        for _ in 0..1000 {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                return;
            }
            tokio::task::yield_now().await;
        }
    }

    /// A builder.
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The API key it accepts.
    pub fn api_key(&self) -> &str {
        &self.shared.api_key
    }

    /// A [`SendGridBuilder`] pointed at this sandbox, with its key and clock.
    pub fn email(&self) -> SendGridBuilder {
        SendGridBuilder::new()
            .with_api_key(self.shared.api_key.clone())
            .with_base_url(self.base_url())
            .with_clock(self.shared.clock.clone())
    }

    /// Calls `observe` with every message accepted from now on, whatever the retention: what a
    /// long run needs of each message (a tally, say) without the sandbox keeping them all. It
    /// runs under the sandbox's lock, so it must be quick and must not call the sandbox.
    pub fn on_accept(&self, observe: impl Fn(&AcceptedMessage) + Send + Sync + 'static) {
        self.shared.lock().observers.push(Arc::new(observe));
    }

    /// The accepted messages kept ([`SandboxBuilder::message_retention`]), oldest first.
    pub fn messages(&self) -> Vec<AcceptedMessage> {
        let s = self.shared.lock();
        s.messages
            .items
            .iter()
            .filter_map(|id| s.by_id.get(id))
            .cloned()
            .collect()
    }

    /// The accepted message with this `X-Message-Id`, if still kept.
    pub fn message(&self, message_id: &str) -> Option<AcceptedMessage> {
        self.shared.lock().by_id.get(message_id).cloned()
    }

    /// Messages accepted since the start (or [`Sandbox::reset`]), including those no longer kept.
    pub fn accepted_count(&self) -> u64 {
        self.shared.lock().messages.total
    }

    /// Requests received on `/v3/mail/send`, whatever their outcome.
    pub fn request_count(&self) -> u64 {
        self.server
            .requests()
            .totals()
            .by_operation
            .get(server::MAIL_SEND)
            .copied()
            .unwrap_or(0)
    }

    /// Every request received (any path): the last ones in full, credentials removed, and exact
    /// totals. `POST /v3/mail/send` is operation `"mail.send"`.
    pub fn requests(&self) -> &RequestLog {
        self.server.requests()
    }

    /// Forgets messages, deliveries, pending faults, the request log and the rate-limit window.
    pub fn reset(&self) {
        let mut s = self.shared.lock();
        s.messages.clear();
        s.by_id.clear();
        s.deliveries.clear();
        s.window = (i64::MIN, 0);
        self.server.faults().clear();
        self.server.requests().reset();
    }

    /// Makes the next `n` mail sends fail with `fault`, after any faults already queued.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        self.inject(FaultRule::new(fault).times(n).on(server::MAIL_SEND));
    }

    /// Adds a fault rule (`.after(k).times(n)`; `.on("mail.send")` to leave other paths alone).
    pub fn inject(&self, rule: FaultRule) {
        self.server.faults().add(rule);
    }

    /// Sets or removes the per-minute limit.
    pub fn set_rate_limit(&self, per_minute: Option<u32>) {
        let mut s = self.shared.lock();
        s.rate_limit = per_minute;
        s.window = (i64::MIN, 0);
    }

    /// The verification key of event batches (base64 DER SPKI, as SendGrid shows it).
    pub fn webhook_public_key(&self) -> String {
        self.shared.signer.public_key_base64()
    }

    /// A verifier for event batches, on the sandbox's clock.
    pub fn webhook_verifier(&self) -> EventWebhookVerifier {
        self.shared
            .signer
            .verifier()
            .with_clock(self.shared.clock.clone())
    }

    /// Where event batches go; `None` only records them ([`Sandbox::deliveries`]).
    pub fn set_webhook_target(&self, target: Option<WebhookTarget>) {
        self.shared.lock().webhook = target;
    }

    /// Events to send automatically for each message accepted from now on (empty: none).
    pub fn set_auto_events(&self, kinds: &[EventType]) {
        self.shared.lock().auto_events = kinds.to_vec();
    }

    /// The event batches kept ([`SandboxBuilder::message_retention`]), oldest first.
    pub fn deliveries(&self) -> Vec<WebhookDelivery> {
        self.shared
            .lock()
            .deliveries
            .items
            .iter()
            .cloned()
            .collect()
    }

    /// Event batches sent since the start (or [`Sandbox::reset`]), including those no longer kept.
    pub fn delivery_count(&self) -> u64 {
        self.shared.lock().deliveries.total
    }

    /// Builds, signs and sends one batch with an event of each kind in `kinds` for every
    /// recipient of the accepted message `message_id`, carrying its categories and custom args.
    ///
    /// # Errors
    /// [`Error::NotFound`](integrations_core::Error::NotFound) for an unknown message id;
    /// [`Error::Unavailable`](integrations_core::Error::Unavailable) if the webhook URL could not
    /// be reached (the delivery is still recorded).
    pub async fn emit_events(
        &self,
        message_id: &str,
        kinds: &[EventType],
    ) -> integrations_core::Result<WebhookDelivery> {
        let msg = self.message(message_id).ok_or_else(|| {
            integrations_core::Error::not_found(format!("no accepted message {message_id}"))
                .with_provider("sendgrid-sandbox")
        })?;
        events::deliver(&self.shared, &[msg], kinds).await
    }

    /// One batch with `kinds` for every accepted message still kept.
    ///
    /// # Errors
    /// As [`Sandbox::emit_events`], for the URL.
    pub async fn emit_events_for_all(
        &self,
        kinds: &[EventType],
    ) -> integrations_core::Result<WebhookDelivery> {
        let all = self.messages();
        events::deliver(&self.shared, &all, kinds).await
    }
}
