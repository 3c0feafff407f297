//! Webhook intake: Stripe's signed event → verified → recorded once, with its jobs, in the outbox.
//!
//! The endpoint answers `2xx` only after the event and its jobs are committed (or the event was
//! recorded before), `400` for a delivery that does not verify, and `500` when the store fails,
//! so that Stripe delivers again. Dedup is the outbox's own: the event id is recorded in the same
//! transaction as the jobs, so a redelivery — before or after a crash — writes nothing.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use futures_util::StreamExt;
use integrations_core::{Error, ErrorKind, Money, Result, SignatureFailure};
use integrations_outbox::{Dispatcher, DispatcherWaker, OutboxStore, RecordOutcome};
use integrations_stripe::StripeClient;
use integrations_stripe::api::ListEvents;
use integrations_stripe::types::Event;
use integrations_stripe::webhook::{SIGNATURE_HEADER, StripeWebhookVerifier};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::by_order::ByOrder;
use super::jobs::{OrderEventKind, order_event};
use super::orders::{OrderBook, OrderRecord};
use super::paged::Fixed;

/// The path the webhook endpoint serves.
pub const WEBHOOK_PATH: &str = "/webhooks/stripe";

/// Event types the flow acts on; every other type is acknowledged and ignored.
pub const HANDLED_TYPES: [&str; 3] = [
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "refund.created",
];

/// What the intake saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IntakeStats {
    /// Deliveries received (signed or fetched).
    pub received: u64,
    /// Deliveries refused: signature, timestamp or body did not verify.
    pub rejected: u64,
    /// Events recorded with their jobs (first delivery).
    pub recorded: u64,
    /// Jobs recorded with them.
    pub jobs_recorded: u64,
    /// Jobs of every event known to be in the outbox: recorded here, or found recorded already
    /// (by an earlier process of a resumed run, or an earlier delivery). Counted once per event.
    pub jobs_known: u64,
    /// Redeliveries of an event already recorded: acknowledged, nothing written.
    pub duplicates: u64,
    /// Verified events of a type the flow does not act on.
    pub ignored: u64,
    /// Handled events about an order this run does not know (another run's, another app's), or
    /// whose object could not be read.
    pub foreign: u64,
    /// Store failures (answered 500, so the sender retries).
    pub store_errors: u64,
    /// Recorded events per type.
    pub by_type: BTreeMap<String, u64>,
    /// The events known to be in the outbox (as for `jobs_known`), per order and type.
    #[serde(skip)]
    pub events: KnownEvents,
}

impl IntakeStats {
    /// Distinct events known to be in the outbox.
    pub fn events_known(&self) -> u64 {
        self.events.total()
    }

    /// Notes that `event_id` (of `event_type`, about `order_id`, with `jobs` jobs) is in the
    /// outbox; once per event.
    pub fn know(&mut self, order_id: &str, event_type: &str, event_id: &str, jobs: usize) {
        if self.events.know(order_id, event_type, event_id) {
            self.jobs_known += jobs as u64;
        }
    }
}

/// The distinct ids of the events known to be in the outbox, per order and type.
///
/// A good run has one event of each handled type an order at most, so the first id of each is
/// kept by the order's number ([`ByOrder`], whose pages past the latest are in a file: 99 bytes
/// an order there, none in memory); only an id longer than [`ID_BYTES`], a second, different id
/// for the same order and type (a failure the invariants report) or an event of another type is
/// kept in a map, in full. A map of `(order, type) → ids` was ~270 bytes an order, the ids in
/// one string ~37.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownEvents {
    first: ByOrder<FirstIds>,
    more: BTreeMap<(String, String), Vec<String>>,
    total: u64,
}

/// The longest id kept by the order's number (Stripe's are `evt_` and 24 characters).
const ID_BYTES: usize = 32;

/// The first id of each handled type (the first `len` bytes of its slot; 0: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct FirstIds {
    ids: [[u8; ID_BYTES]; 3],
    len: [u8; 3],
}

impl Fixed for FirstIds {
    const SIZE: usize = 3 * ID_BYTES + 3;
    fn put(&self, out: &mut [u8]) {
        for (id, out) in self.ids.iter().zip(out.chunks_exact_mut(ID_BYTES)) {
            out.copy_from_slice(id);
        }
        out[3 * ID_BYTES..].copy_from_slice(&self.len);
    }
    fn take(bytes: &[u8]) -> Self {
        let mut v = FirstIds::default();
        for (id, b) in v.ids.iter_mut().zip(bytes.chunks_exact(ID_BYTES)) {
            id.copy_from_slice(b);
        }
        v.len.copy_from_slice(&bytes[3 * ID_BYTES..]);
        v
    }
}

impl FirstIds {
    fn get(&self, slot: usize) -> Option<&str> {
        let len = usize::from(self.len[slot]);
        (len > 0)
            .then(|| std::str::from_utf8(&self.ids[slot][..len]).ok())
            .flatten()
    }
}

impl KnownEvents {
    fn slot(event_type: &str) -> Option<usize> {
        HANDLED_TYPES.iter().position(|t| *t == event_type)
    }

    /// Notes `event_id`; `true` if it was not known yet.
    pub fn know(&mut self, order_id: &str, event_type: &str, event_id: &str) -> bool {
        if let Some(slot) = Self::slot(event_type) {
            let marks = self.first.get(order_id);
            match marks.get(slot) {
                Some(first) if first == event_id => return false,
                Some(_) => {}
                None if !event_id.is_empty() && event_id.len() <= ID_BYTES => {
                    let m = self.first.entry(order_id);
                    m.ids[slot][..event_id.len()].copy_from_slice(event_id.as_bytes());
                    m.len[slot] = event_id.len() as u8;
                    self.total += 1;
                    return true;
                }
                None => {}
            }
        }
        let more = self
            .more
            .entry((order_id.to_owned(), event_type.to_owned()))
            .or_insert_with(|| Vec::with_capacity(1));
        if more.iter().any(|id| id == event_id) {
            return false;
        }
        more.push(event_id.to_owned());
        self.total += 1;
        true
    }

    /// How many distinct events of `event_type` about `order_id` are known.
    pub fn count(&self, order_id: &str, event_type: &str) -> usize {
        let first =
            Self::slot(event_type).is_some_and(|slot| self.first.get(order_id).get(slot).is_some());
        let more = self
            .more
            .get(&(order_id.to_owned(), event_type.to_owned()))
            .map_or(0, Vec::len);
        usize::from(first) + more
    }

    /// The first event of `event_type` known about `order_id`.
    pub fn first(&self, order_id: &str, event_type: &str) -> Option<String> {
        Self::slot(event_type)
            .and_then(|slot| self.first.get(order_id).get(slot).map(str::to_owned))
            .or_else(|| {
                self.more
                    .get(&(order_id.to_owned(), event_type.to_owned()))?
                    .first()
                    .cloned()
            })
    }

    /// Distinct events known.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// What happened to one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Recorded with `jobs` jobs.
    Recorded {
        /// Jobs recorded.
        jobs: usize,
    },
    /// Recorded before: nothing written.
    Duplicate,
    /// A type the flow does not act on, or an order it does not know.
    Ignored,
}

/// Verifies, routes and records payment events.
#[derive(Debug)]
pub struct Intake {
    outbox: Arc<dyn OutboxStore>,
    orders: Arc<OrderBook>,
    verifier: Option<StripeWebhookVerifier>,
    max_attempts: u32,
    stats: Mutex<IntakeStats>,
    waker: std::sync::OnceLock<DispatcherWaker>,
    recorder: std::sync::OnceLock<Dispatcher>,
}

impl Intake {
    /// An intake recording into `outbox`, looking orders up in `orders`; signed deliveries are
    /// checked with `verifier` (all refused without one).
    pub fn new(
        outbox: Arc<dyn OutboxStore>,
        orders: Arc<OrderBook>,
        verifier: Option<StripeWebhookVerifier>,
        max_attempts: u32,
    ) -> Self {
        Intake {
            outbox,
            orders,
            verifier,
            max_attempts,
            stats: Mutex::new(IntakeStats::default()),
            waker: std::sync::OnceLock::new(),
            recorder: std::sync::OnceLock::new(),
        }
    }

    /// Wakes `dispatcher` whenever an event's jobs are recorded, so they are delivered at once
    /// rather than at the dispatcher's next poll. Only the first call takes effect.
    pub fn set_waker(&self, waker: DispatcherWaker) {
        let _ = self.waker.set(waker);
    }

    /// Records each event through `dispatcher` ([`Dispatcher::record_event`]) instead of the
    /// store: the jobs of its kinds are written already leased to it, in the event's own
    /// transaction, and handed to its handlers in memory, with no claim (a commit, and on
    /// Postgres a `NOTIFY`) per event; jobs of other kinds are recorded pending as before, for
    /// the dispatchers [`set_waker`](Intake::set_waker) wakes. It must record into the same
    /// outbox as this intake. Only the first call takes effect.
    pub fn set_recorder(&self, dispatcher: Dispatcher) {
        let _ = self.recorder.set(dispatcher);
    }

    fn stats_mut(&self) -> MutexGuard<'_, IntakeStats> {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The counters so far: a copy of every event id known, so once for a report, not in a
    /// loop (see [`Intake::jobs_known`], [`Intake::events_known`], [`Intake::duplicates`]).
    pub fn stats(&self) -> IntakeStats {
        self.stats_mut().clone()
    }

    /// [`IntakeStats::jobs_known`], without copying the rest.
    pub fn jobs_known(&self) -> u64 {
        self.stats_mut().jobs_known
    }

    /// [`IntakeStats::events_known`], without copying the event ids.
    pub fn events_known(&self) -> u64 {
        self.stats_mut().events_known()
    }

    /// [`IntakeStats::duplicates`].
    pub fn duplicates(&self) -> u64 {
        self.stats_mut().duplicates
    }

    /// The first event id known of `event_type` about `order_id`.
    pub fn first_event_of(&self, order_id: &str, event_type: &str) -> Option<String> {
        self.stats_mut().events.first(order_id, event_type)
    }

    /// Handles a signed delivery: verifies the raw bytes, then routes the event and records it
    /// once with its jobs.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] for a delivery that does not verify; the store's errors.
    pub async fn handle_signed(&self, body: &[u8], signature: Option<&str>) -> Result<Outcome> {
        self.stats_mut().received += 1;
        let verified = match (&self.verifier, signature) {
            (Some(verifier), Some(header)) => verifier.verify(body, header),
            (None, _) => Err(Error::invalid_signature(SignatureFailure::InvalidKey(
                "no webhook signing secret configured (STRIPE_WEBHOOK_SECRET)".to_owned(),
            ))),
            (_, None) => Err(Error::invalid_signature(SignatureFailure::MalformedHeader(
                format!("no {SIGNATURE_HEADER} header"),
            ))),
        };
        match verified {
            Ok(event) => self.accept(&event).await,
            Err(e) => {
                self.stats_mut().rejected += 1;
                tracing::warn!(error = %e, "stripe webhook refused");
                Err(e)
            }
        }
    }

    /// Handles an event fetched over Stripe's authenticated API (no signature to check).
    ///
    /// # Errors
    /// The store's errors.
    pub async fn handle_fetched(&self, event: &Event) -> Result<Outcome> {
        self.stats_mut().received += 1;
        self.accept(event).await
    }

    /// Routes a verified event and records it with its jobs, once.
    async fn accept(&self, event: &Event) -> Result<Outcome> {
        let Some(r) = self.route(event)? else {
            return Ok(Outcome::Ignored);
        };
        let ev = order_event(
            r.kind,
            &event.id,
            &r.record,
            r.amount,
            &r.payment_id,
            r.reason,
            event.created,
        )?;
        let jobs = ev.jobs(self.max_attempts)?;
        let n = jobs.len();
        let recorded = match self.recorder.get() {
            Some(dispatcher) => dispatcher.record_event(&event.id, jobs).await,
            None => self.outbox.record_event(&event.id, jobs).await,
        };
        match recorded {
            Ok(RecordOutcome::Recorded { .. }) => {
                if let Some(w) = self.waker.get() {
                    w.wake();
                }
                let mut st = self.stats_mut();
                st.recorded += 1;
                st.jobs_recorded += n as u64;
                *st.by_type.entry(event.type_.clone()).or_default() += 1;
                st.know(&ev.order_id, &event.type_, &event.id, n);
                Ok(Outcome::Recorded { jobs: n })
            }
            Ok(RecordOutcome::Duplicate) => {
                let mut st = self.stats_mut();
                st.duplicates += 1;
                st.know(&ev.order_id, &event.type_, &event.id, n);
                drop(st);
                tracing::info!(event = %event.id, "webhook redelivery ignored: event already recorded");
                Ok(Outcome::Duplicate)
            }
            Err(e) => {
                self.stats_mut().store_errors += 1;
                Err(e)
            }
        }
    }

    /// Resolves a handled event to one of this run's orders; `None` (counted) for other types
    /// and for events about orders this run does not know.
    ///
    /// # Errors
    /// The order store's read error (counted with the store's failures): the event is not
    /// acknowledged, so that its sender delivers it again. Counted as not this run's, it would
    /// have been answered 200 and lost.
    fn route(&self, event: &Event) -> Result<Option<Routed>> {
        let known = |order_id: Option<&String>, payment_id: &str| -> Result<Option<OrderRecord>> {
            if let Some(id) = order_id
                && let Some(record) = self.orders.get(id)?
            {
                return Ok(Some(record));
            }
            self.orders.by_payment(payment_id)
        };
        let unreadable = |e: Error| {
            tracing::error!(event = %event.id, error = %e, "the order store cannot be read");
            self.stats_mut().store_errors += 1;
            e
        };
        let routed = match event.type_.as_str() {
            t @ ("payment_intent.succeeded" | "payment_intent.payment_failed") => {
                match event.payment_intent() {
                    None => None,
                    Some(pi) => known(pi.metadata.get("order_id"), &pi.id)
                        .map_err(unreadable)?
                        .map(|record| {
                            let (kind, amount, reason) = if t == "payment_intent.succeeded" {
                                (OrderEventKind::Paid, pi.amount_received, None)
                            } else {
                                let reason = pi.last_payment_error.as_ref().and_then(|e| {
                                    e.decline_code.clone().or_else(|| e.code.clone())
                                });
                                (OrderEventKind::PaymentFailed, pi.amount, reason)
                            };
                            Routed {
                                kind,
                                record,
                                amount,
                                payment_id: pi.id.clone(),
                                reason,
                            }
                        }),
                }
            }
            "refund.created" => match event.refund() {
                None => None,
                Some(refund) => {
                    let payment_id = refund.payment_intent.clone().unwrap_or_default();
                    known(refund.metadata.get("order_id"), &payment_id)
                        .map_err(unreadable)?
                        .map(|record| Routed {
                            kind: OrderEventKind::Refunded,
                            record,
                            amount: refund.amount,
                            payment_id,
                            reason: refund.reason.clone(),
                        })
                }
            },
            _ => {
                self.stats_mut().ignored += 1;
                return Ok(None);
            }
        };
        if routed.is_none() {
            self.stats_mut().foreign += 1;
        }
        Ok(routed)
    }
}

/// A handled event resolved to one of the run's orders.
struct Routed {
    kind: OrderEventKind,
    record: OrderRecord,
    amount: Money,
    payment_id: String,
    reason: Option<String>,
}

async fn webhook(
    State(intake): State<Arc<Intake>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    match intake.handle_signed(&body, signature).await {
        Ok(_) => (StatusCode::OK, "ok"),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::InvalidSignature | ErrorKind::InvalidInput
            ) =>
        {
            (StatusCode::BAD_REQUEST, "refused")
        }
        Err(e) => {
            tracing::warn!(error = %e, "webhook not recorded; answering 500 so it is redelivered");
            (StatusCode::INTERNAL_SERVER_ERROR, "try again")
        }
    }
}

/// The webhook endpoint, served on `127.0.0.1:<port>` until dropped.
#[derive(Debug)]
pub struct WebhookServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl WebhookServer {
    /// Serves [`WEBHOOK_PATH`] for `intake` on a loopback port.
    ///
    /// # Errors
    /// [`Error::Unavailable`] if no port can be bound.
    pub async fn start(intake: Arc<Intake>) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| Error::unavailable(format!("cannot bind the webhook endpoint: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::unavailable(format!("webhook endpoint address: {e}")))?;
        let app = Router::new()
            .route(WEBHOOK_PATH, post(webhook))
            .with_state(intake);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "webhook endpoint stopped");
            }
        });
        Ok(WebhookServer { addr, task })
    }

    /// The endpoint's URL.
    pub fn url(&self) -> String {
        format!("http://{}{WEBHOOK_PATH}", self.addr)
    }
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// With the real Stripe, which cannot reach a local endpoint: polls `GET /v1/events` for the
/// handled types every `every`, newest first down to `since` (unix seconds), and hands each new
/// event to the intake, until `stop` turns `true`.
pub async fn poll_stripe_events(
    client: StripeClient,
    intake: Arc<Intake>,
    since: i64,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut seen = HashSet::new();
    loop {
        for t in HANDLED_TYPES {
            let mut events = client.events_stream(ListEvents::of_type(t));
            while let Some(next) = events.next().await {
                match next {
                    Ok(event) if event.created < since => break,
                    Ok(event) => {
                        if seen.contains(&event.id) {
                            continue;
                        }
                        match intake.handle_fetched(&event).await {
                            Ok(_) => {
                                seen.insert(event.id.clone());
                            }
                            Err(e) => tracing::warn!(error = %e, "fetched event not recorded"),
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "listing stripe events failed");
                        break;
                    }
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order_flow::checkout::checkout;
    use crate::order_flow::orders::{Order, OrderState};
    use integrations_core::clock::unix_seconds;
    use integrations_core::webhook::WebhookSecret;
    use integrations_outbox::InMemoryOutbox;
    use integrations_stripe::StripePayments;
    use integrations_stripe::sandbox::Sandbox;
    use integrations_stripe::webhook::sign_for_test;
    use std::time::SystemTime;

    /// A paid order in the sandbox, and the raw bodies of its events by type.
    async fn paid_order() -> (Sandbox, Arc<OrderBook>, BTreeMap<String, Vec<u8>>) {
        let sandbox = Sandbox::start().await.unwrap();
        let payments = StripePayments::new(sandbox.client().unwrap());
        let book = Arc::new(OrderBook::new());
        let state = checkout(&payments, &book, Order::sample("t", 1, None)).await;
        assert_eq!(state, OrderState::Paid);
        let bodies = sandbox
            .events()
            .into_iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap().to_owned(),
                    serde_json::to_vec(&e).unwrap(),
                )
            })
            .collect();
        (sandbox, book, bodies)
    }

    fn intake(sandbox: &Sandbox, book: Arc<OrderBook>) -> (Arc<InMemoryOutbox>, Arc<Intake>) {
        let outbox = Arc::new(InMemoryOutbox::new());
        let verifier = StripeWebhookVerifier::new(sandbox.webhook_secret());
        let intake = Intake::new(outbox.clone(), book, Some(verifier), 5);
        (outbox, Arc::new(intake))
    }

    /// A read error of the order store while routing is an error (answered 500, delivered
    /// again), not an event acknowledged as another run's and lost.
    #[tokio::test]
    async fn a_store_read_error_is_not_an_acknowledged_foreign_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shop.db");
        let sandbox = Sandbox::start().await.unwrap();
        let payments = StripePayments::new(sandbox.client().unwrap());
        let book = Arc::new(OrderBook::open(&path).unwrap());
        let state = checkout(&payments, &book, Order::sample("t", 1, None)).await;
        assert_eq!(state, OrderState::Paid);
        let succeeded = sandbox
            .events()
            .into_iter()
            .find(|e| e["type"] == "payment_intent.succeeded")
            .unwrap();
        let body = serde_json::to_vec(&succeeded).unwrap();
        // The order made unreadable: stands for any read error (I/O, a corrupt row).
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute("UPDATE orders SET state = 'x'", [])
            .unwrap();
        let (outbox, intake) = intake(&sandbox, book);
        let now = unix_seconds(SystemTime::now());
        let sig = sign_for_test(&body, &sandbox.webhook_secret(), now);
        let e = intake.handle_signed(&body, Some(&sig)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        let stats = intake.stats();
        assert_eq!((stats.foreign, stats.store_errors), (0, 1));
        assert_eq!(outbox.counts().await.unwrap().events, 0);
    }

    #[tokio::test]
    async fn records_once_and_refuses_what_does_not_verify() {
        let (sandbox, book, bodies) = paid_order().await;
        let (outbox, intake) = intake(&sandbox, book);
        let now = unix_seconds(SystemTime::now());
        let body = &bodies["payment_intent.succeeded"];
        let sig = sign_for_test(body, &sandbox.webhook_secret(), now);

        let first = intake.handle_signed(body, Some(&sig)).await.unwrap();
        assert_eq!(first, Outcome::Recorded { jobs: 4 });
        let again = intake.handle_signed(body, Some(&sig)).await.unwrap();
        assert_eq!(again, Outcome::Duplicate);
        assert_eq!(outbox.counts().await.unwrap().pending, 4);

        let forged = sign_for_test(body, &WebhookSecret::new("whsec_someone_else"), now);
        let mut tampered = body.clone();
        tampered.extend_from_slice(b" ");
        let stale = sign_for_test(body, &sandbox.webhook_secret(), now - 3600);
        for (body, sig) in [
            (body.as_slice(), Some(forged.as_str())),
            (&tampered, Some(sig.as_str())),
            (body, Some(stale.as_str())),
            (body, None),
        ] {
            let e = intake.handle_signed(body, sig).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidSignature, "{e}");
        }

        let other = &bodies["payment_intent.created"];
        let sig = sign_for_test(other, &sandbox.webhook_secret(), now);
        assert_eq!(
            intake.handle_signed(other, Some(&sig)).await.unwrap(),
            Outcome::Ignored
        );

        let s = intake.stats();
        assert_eq!((s.received, s.recorded, s.duplicates), (7, 1, 1));
        assert_eq!((s.rejected, s.ignored, s.foreign), (4, 1, 0));
        assert_eq!((s.jobs_recorded, s.jobs_known, s.events_known()), (4, 4, 1));
        assert_eq!(s.by_type["payment_intent.succeeded"], 1);
        assert_eq!(
            outbox.counts().await.unwrap().pending,
            4,
            "nothing more recorded"
        );
    }

    #[tokio::test]
    async fn an_event_recorded_by_an_earlier_process_is_known_not_recorded_again() {
        let (sandbox, book, bodies) = paid_order().await;
        let (outbox, first) = intake(&sandbox, book.clone());
        let body = &bodies["payment_intent.succeeded"];
        let now = unix_seconds(SystemTime::now());
        let sig = sign_for_test(body, &sandbox.webhook_secret(), now);
        first.handle_signed(body, Some(&sig)).await.unwrap();
        // A restarted process: same outbox, fresh counters.
        let verifier = StripeWebhookVerifier::new(sandbox.webhook_secret());
        let second = Intake::new(outbox.clone(), book, Some(verifier), 5);
        assert_eq!(
            second.handle_signed(body, Some(&sig)).await.unwrap(),
            Outcome::Duplicate
        );
        let s = second.stats();
        assert_eq!((s.recorded, s.jobs_recorded, s.duplicates), (0, 0, 1));
        assert_eq!((s.events_known(), s.jobs_known), (1, 4));
        assert_eq!(outbox.counts().await.unwrap().pending, 4);
    }

    #[tokio::test]
    async fn events_of_unknown_orders_are_acknowledged_not_recorded() {
        let (sandbox, _, bodies) = paid_order().await;
        let (outbox, intake) = intake(&sandbox, Arc::new(OrderBook::new()));
        let body = &bodies["payment_intent.succeeded"];
        let sig = sign_for_test(
            body,
            &sandbox.webhook_secret(),
            unix_seconds(SystemTime::now()),
        );
        assert_eq!(
            intake.handle_signed(body, Some(&sig)).await.unwrap(),
            Outcome::Ignored
        );
        assert_eq!(intake.stats().foreign, 1);
        assert_eq!(outbox.counts().await.unwrap().events, 0);
    }

    #[tokio::test]
    async fn the_endpoint_answers_by_outcome() {
        let (sandbox, book, bodies) = paid_order().await;
        let (_, intake) = intake(&sandbox, book);
        let server = WebhookServer::start(intake.clone()).await.unwrap();
        let http = integrations_core::http::default_client();
        let body = bodies["payment_intent.succeeded"].clone();
        let post = |sig: String| {
            http.post(server.url())
                .header(SIGNATURE_HEADER, sig)
                .body(body.clone())
                .send()
        };
        let now = unix_seconds(SystemTime::now());
        let good = sign_for_test(&body, &sandbox.webhook_secret(), now);
        assert_eq!(post(good.clone()).await.unwrap().status().as_u16(), 200);
        assert_eq!(
            post(good).await.unwrap().status().as_u16(),
            200,
            "a duplicate is acknowledged"
        );
        let bad = sign_for_test(&body, &WebhookSecret::new("whsec_wrong"), now);
        assert_eq!(post(bad).await.unwrap().status().as_u16(), 400);
        assert_eq!(intake.stats().recorded, 1);
    }

    #[test]
    fn known_events_count_distinct_ids_per_order_and_type() {
        let mut k = KnownEvents::default();
        let (paid, refund) = ("payment_intent.succeeded", "refund.created");
        assert!(k.know("ord_r_0001", paid, "evt_a"));
        assert!(!k.know("ord_r_0001", paid, "evt_a"), "the same id again");
        assert!(k.know("ord_r_0001", refund, "evt_b"));
        assert!(k.know("ord_r_0002", paid, "evt_c"));
        assert_eq!(k.count("ord_r_0001", paid), 1);
        assert_eq!(k.first("ord_r_0001", paid).as_deref(), Some("evt_a"));
        assert_eq!(k.first("ord_r_0001", refund).as_deref(), Some("evt_b"));
        assert_eq!(k.first("ord_r_0002", paid).as_deref(), Some("evt_c"));
        assert_eq!(k.first("ord_r_0002", refund), None);
        // A second event of one type for one order: counted, and only once however often seen.
        assert!(k.know("ord_r_0001", paid, "evt_d"));
        assert!(!k.know("ord_r_0001", paid, "evt_d"));
        assert!(!k.know("ord_r_0001", paid, "evt_a"));
        assert_eq!(k.count("ord_r_0001", paid), 2);
        assert_eq!(k.first("ord_r_0001", paid).as_deref(), Some("evt_a"));
        // A type the flow does not name, and an id too long for the compact form.
        assert!(k.know("ord_r_0003", "charge.refunded", "evt_e"));
        let long = "evt_".repeat(100);
        assert!(k.know("ord_r_0003", paid, &long));
        assert!(!k.know("ord_r_0003", paid, &long));
        assert_eq!(k.first("ord_r_0003", paid), Some(long.clone()));
        assert_eq!(k.count("ord_r_0003", "charge.refunded"), 1);
        assert_eq!(k.total(), 6);
        // An id as long as a slot holds is kept by the order's number, and read back whole.
        let longest = format!("evt_{}", "x".repeat(ID_BYTES - 4));
        assert!(k.know("ord_r_0004", refund, &longest));
        assert!(!k.know("ord_r_0004", refund, &longest));
        assert_eq!(k.first("ord_r_0004", refund), Some(longest));
        assert!(k.more.keys().all(|(o, _)| o != "ord_r_0004"));

        let mut stats = IntakeStats::default();
        stats.know("ord_r_0001", paid, "evt_a", 4);
        stats.know("ord_r_0001", paid, "evt_a", 4);
        assert_eq!((stats.jobs_known, stats.events_known()), (4, 1));
    }
}
