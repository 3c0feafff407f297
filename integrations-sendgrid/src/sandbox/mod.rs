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
//! | faults | [`Sandbox::fail_next`]: 500, 503, 429, a hang, or accept-then-drop the connection |
//! | events | signed Event Webhook batches for accepted messages, to a URL or a callback |
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

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use integrations_core::clock::{Clock, SystemClock};
use tokio::task::JoinHandle;

pub use events::{WebhookCallback, WebhookDelivery, WebhookTarget};

use crate::config::SendGridBuilder;
use crate::mail::MailSend;
use crate::webhook::{EventType, EventWebhookSigner, EventWebhookVerifier};

/// The API key a sandbox accepts unless told otherwise.
pub const DEFAULT_API_KEY: &str = "SG.sandbox-api-key";
/// How long [`Fault::Hang`] holds a request by default.
pub const DEFAULT_HANG: Duration = Duration::from_secs(3600);

/// A failure to inject into the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// 500 `internal server error`; nothing recorded.
    ServerError,
    /// 503 `service unavailable`; nothing recorded.
    Unavailable,
    /// 429 `too many requests` with `X-RateLimit-Reset` = now + `retry_after`; nothing recorded.
    RateLimited {
        /// How far ahead the reset is.
        retry_after: Duration,
    },
    /// No answer for the sandbox's hang time (default an hour), then the connection is closed;
    /// nothing recorded. Use a short client timeout.
    Hang,
    /// The message is validated and recorded as accepted, then the connection is closed without
    /// an answer: the client cannot know it was sent.
    DropAfterAccept,
}

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

pub(crate) struct State {
    pub(crate) messages: Vec<AcceptedMessage>,
    pub(crate) faults: VecDeque<Fault>,
    pub(crate) requests: u64,
    pub(crate) rate_limit: Option<u32>,
    /// (minute index, requests counted in it).
    pub(crate) window: (i64, u32),
    pub(crate) webhook: Option<WebhookTarget>,
    pub(crate) auto_events: Vec<EventType>,
    pub(crate) deliveries: Vec<WebhookDelivery>,
}

pub(crate) struct Shared {
    pub(crate) api_key: String,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) hang: Duration,
    pub(crate) signer: EventWebhookSigner,
    pub(crate) state: Mutex<State>,
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
}

impl Default for SandboxBuilder {
    fn default() -> Self {
        SandboxBuilder {
            api_key: DEFAULT_API_KEY.to_owned(),
            rate_limit: None,
            clock: Arc::new(SystemClock),
            hang: DEFAULT_HANG,
            signer: None,
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
    /// How long [`Fault::Hang`] holds a request.
    #[must_use]
    pub fn hang_for(mut self, d: Duration) -> Self {
        self.hang = d;
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
        let shared = Arc::new(Shared {
            api_key: self.api_key,
            clock: self.clock,
            hang: self.hang,
            signer: self.signer.unwrap_or_else(EventWebhookSigner::generate),
            state: Mutex::new(State {
                messages: Vec::new(),
                faults: VecDeque::new(),
                requests: 0,
                rate_limit: self.rate_limit,
                window: (i64::MIN, 0),
                webhook: None,
                auto_events: Vec::new(),
                deliveries: Vec::new(),
            }),
        });
        let (addr, task) = server::serve(shared.clone()).await?;
        Ok(Sandbox { addr, shared, task })
    }
}

/// A running sandbox; stops when dropped.
pub struct Sandbox {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.shared.lock();
        f.debug_struct("Sandbox")
            .field("addr", &self.addr)
            .field("messages", &s.messages.len())
            .field("requests", &s.requests)
            .field("pending_faults", &s.faults.len())
            .finish_non_exhaustive()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.task.abort();
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
    pub async fn shutdown(mut self) {
        self.task.abort();
        // The accept loop only ends by being aborted; the error says so.
        let _ = (&mut self.task).await;
    }

    /// A builder.
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
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

    /// Every accepted message, oldest first.
    pub fn messages(&self) -> Vec<AcceptedMessage> {
        self.shared.lock().messages.clone()
    }

    /// The accepted message with this `X-Message-Id`.
    pub fn message(&self, message_id: &str) -> Option<AcceptedMessage> {
        self.shared
            .lock()
            .messages
            .iter()
            .find(|m| m.message_id == message_id)
            .cloned()
    }

    /// Requests received on `/v3/mail/send`, whatever their outcome.
    pub fn request_count(&self) -> u64 {
        self.shared.lock().requests
    }

    /// Forgets messages, deliveries, pending faults and counters.
    pub fn reset(&self) {
        let mut s = self.shared.lock();
        s.messages.clear();
        s.deliveries.clear();
        s.faults.clear();
        s.requests = 0;
        s.window = (i64::MIN, 0);
    }

    /// Makes the next `n` requests fail with `fault`, after any faults already queued.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        let mut s = self.shared.lock();
        s.faults.extend(std::iter::repeat_n(fault, n));
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

    /// Every event batch sent so far.
    pub fn deliveries(&self) -> Vec<WebhookDelivery> {
        self.shared.lock().deliveries.clone()
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

    /// One batch with `kinds` for every accepted message.
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
