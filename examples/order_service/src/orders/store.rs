//! [`OrderStore`]: the orders in SQLite (embedded default, the outbox's file) or in Postgres
//! (the outbox's database), and the decisions both backends share.
//!
//! Each backend is one module holding only its SQL (`orders/sqlite.rs`, `orders/postgres.rs`);
//! what an answer means — whether a refund is allowed, the status a refund leaves, which
//! statuses a payment event may still move, what a reused client key is — is decided here, once. Both backends record an event and its jobs **in the same
//! transaction** as the order change that owes them ([`OrderStore::apply_payment_event`]),
//! through the outbox's `record_event_in` on the connection the order store writes with.

use std::fmt;

use integrations_core::provider::RefundReason;
use integrations_core::{Error, IdempotencyKey, Money, Result};
use integrations_outbox::{NewJob, PostgresOutbox, RecordOutcome, SqliteOutbox};

use super::model::{NewOrder, Order, OrderStatus};
use super::postgres::PgOrders;
use super::sqlite::SqliteOrders;

/// Provider name on store errors.
pub(super) const STORE: &str = "order-store";

/// A refund recorded before the provider is called: its amount, reason and number (which names
/// its idempotency key, `{order}/refund/{number}`), allocated in the transaction that records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundIntent {
    /// The order.
    pub order_id: String,
    /// The intent's number on the order (1, 2, …; never reused).
    pub number: u32,
    /// The amount to refund.
    pub amount: Money,
    /// Why (the provider's reason, as sent).
    pub reason: Option<RefundReason>,
}

impl RefundIntent {
    /// The provider idempotency key of this refund: the same for every attempt of it, in any
    /// service instance.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an order id that cannot be part of a key.
    pub fn key(&self) -> Result<IdempotencyKey> {
        IdempotencyKey::derive(&self.order_id, "refund")?.child(&self.number.to_string())
    }
}

/// What [`OrderStore::begin_refund`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundStart {
    /// A new intent, recorded as pending: call the provider, then
    /// [`OrderStore::finish_refund`].
    New(RefundIntent),
    /// An earlier intent is still pending (its request failed after, or while, calling the
    /// provider; or another instance is calling it now): reconcile it first.
    Pending(RefundIntent),
}

/// A client's `Idempotency-Key` for an order request and the fingerprint of the request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey {
    /// The key as sent.
    pub key: String,
    /// SHA-256 (hex) of the request body.
    pub fingerprint: String,
}

/// What [`OrderStore::insert`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// A new order.
    Created(Order),
    /// The client's key was used before with the same request: the order made then.
    Existing(Order),
}

impl Inserted {
    /// The order, new or existing.
    pub fn into_order(self) -> Order {
        match self {
            Inserted::Created(o) | Inserted::Existing(o) => o,
        }
    }
}

/// One page of [`OrderStore::list`], newest first.
#[derive(Debug, Clone)]
pub struct Page {
    /// The orders.
    pub orders: Vec<Order>,
    /// Pass to the next call for the following page; `None` on the last page.
    pub next: Option<i64>,
}

/// What [`OrderStore::apply_payment_event`] did, committed as one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentApplied {
    /// The order as it now is.
    pub order: Order,
    /// The event's record: `Duplicate` when it was recorded before (then the order was left
    /// as it was and no job was recorded).
    pub outcome: RecordOutcome,
}

/// The orders: in SQLite ([`OrderStore::sqlite`]) or Postgres ([`OrderStore::postgres`]), each
/// next to the outbox whose transactions it shares. Cheap to clone.
#[derive(Clone)]
pub struct OrderStore {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(SqliteOrders),
    Postgres(PgOrders),
}

impl fmt::Debug for OrderStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.backend {
            Backend::Sqlite(s) => f
                .debug_struct("OrderStore")
                .field("sqlite", &s.path())
                .finish_non_exhaustive(),
            Backend::Postgres(p) => f
                .debug_struct("OrderStore")
                .field("postgres", p)
                .finish_non_exhaustive(),
        }
    }
}

/// Runs the same call on whichever backend the store has.
macro_rules! on_backend {
    ($self:ident, $s:ident => $call:expr) => {
        match &$self.backend {
            Backend::Sqlite($s) => $call,
            Backend::Postgres($s) => $call,
        }
    };
}

impl OrderStore {
    /// The orders in `outbox`'s SQLite file (its `orders` and `refund_intents` tables, created
    /// and migrated if needed), written on a connection of their own whose transactions also
    /// record the events of [`apply_payment_event`](Self::apply_payment_event).
    ///
    /// # Errors
    /// [`Error::Unavailable`] or [`Error::Provider`] if the file cannot be opened;
    /// [`Error::Configuration`] naming `schema` for a file migrated by a newer build.
    pub async fn sqlite(outbox: &SqliteOutbox) -> Result<Self> {
        Ok(OrderStore {
            backend: Backend::Sqlite(SqliteOrders::open(outbox.clone()).await?),
        })
    }

    /// The orders in `outbox`'s Postgres database (its pool; tables `orders` and
    /// `order_refund_intents`, migrated by [`migrate`](super::postgres::migrate)), whose
    /// transactions also record the events of [`apply_payment_event`](Self::apply_payment_event).
    ///
    /// # Errors
    /// As [`migrate`](super::postgres::migrate).
    pub async fn postgres(outbox: &PostgresOutbox) -> Result<Self> {
        Ok(OrderStore {
            backend: Backend::Postgres(PgOrders::open(outbox.clone()).await?),
        })
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match &self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Stores a new pending order, or — when `client_key` was used before with the same request —
    /// returns the order made then.
    ///
    /// # Errors
    /// [`Error::Conflict`] with code `idempotency_key_reused` when the key was used with another
    /// request; store failures.
    pub async fn insert(&self, new: NewOrder, client_key: Option<ClientKey>) -> Result<Inserted> {
        on_backend!(self, s => s.insert(new, client_key).await)
    }

    /// The order `id`, if any.
    ///
    /// # Errors
    /// Store failures.
    pub async fn get(&self, id: &str) -> Result<Option<Order>> {
        on_backend!(self, s => s.get(id).await)
    }

    /// Up to `limit` orders older than the cursor `before` (or the newest), newest first.
    ///
    /// # Errors
    /// Store failures.
    pub async fn list(&self, limit: usize, before: Option<i64>) -> Result<Page> {
        on_backend!(self, s => s.list(limit, before).await)
    }

    /// Records the payment made for the order and its status.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown order; [`Error::Conflict`] if another payment is
    /// already recorded; store failures.
    pub async fn attach_payment(
        &self,
        id: &str,
        payment_id: &str,
        status: OrderStatus,
    ) -> Result<Order> {
        on_backend!(self, s => s.attach_payment(id, payment_id, status).await)
    }

    /// Moves an order whose payment is not settled yet to `status` (a settled order — paid,
    /// refunded, canceled — is left as it is, so late or repeated events cannot undo a payment).
    /// Returns the order as it now is.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown order; store failures.
    pub async fn update_payment_status(&self, id: &str, status: OrderStatus) -> Result<Order> {
        on_backend!(self, s => s.update_payment_status(id, status).await)
    }

    /// A provider's payment event, applied in **one transaction**: records `event_id` with its
    /// `jobs` in the outbox and moves the order to `status` (as
    /// [`update_payment_status`](Self::update_payment_status)). Both commit or neither does, so a
    /// crash or a failed write can neither lose the jobs of a paid order nor send them for a
    /// change that was rolled back. The event is recorded first: a redelivered event is a
    /// duplicate and leaves the order as it is (a late repeat cannot move it back), and when two
    /// instances apply one event at once the second waits for the first and finds it recorded.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown order (nothing recorded); the outbox's input errors;
    /// store failures (nothing recorded: the provider's redelivery will apply it).
    pub async fn apply_payment_event(
        &self,
        id: &str,
        status: OrderStatus,
        event_id: &str,
        jobs: Vec<NewJob>,
    ) -> Result<PaymentApplied> {
        on_backend!(self, s => s.apply_payment_event(id, status, event_id, jobs).await)
    }

    /// Records `event_id` with no job and no order change (an event acknowledged and not acted
    /// on), so that a redelivery of it is known. On SQLite it joins the webhook writes' group
    /// commit; on Postgres it is the outbox's own `record_event`.
    ///
    /// # Errors
    /// Store failures.
    pub async fn record_event(&self, event_id: &str) -> Result<RecordOutcome> {
        match &self.backend {
            Backend::Sqlite(s) => s.record_event(event_id).await,
            Backend::Postgres(s) => s.record_event(event_id).await,
        }
    }

    /// How many group commits the webhook writes have made (SQLite; `None` on Postgres, where
    /// each write is its own transaction): with [`OrderStore::record_event`]'s and
    /// [`OrderStore::apply_payment_event`]'s counts, how much the grouping saves.
    pub fn webhook_write_groups(&self) -> Option<u64> {
        match &self.backend {
            Backend::Sqlite(s) => Some(s.write_groups()),
            Backend::Postgres(_) => None,
        }
    }

    /// Records a refund intent before the provider is called, in one transaction with the
    /// checks: `amount` (`None`: everything left) must be refundable now. When an earlier intent
    /// of the order is still pending, nothing is recorded and that intent is returned, so that no
    /// second refund starts before the first is known to have happened or not — across service
    /// instances on one database too.
    ///
    /// # Errors
    /// As [`check_refund`]; [`Error::NotFound`]; store failures.
    pub async fn begin_refund(
        &self,
        id: &str,
        amount: Option<Money>,
        reason: Option<RefundReason>,
    ) -> Result<RefundStart> {
        on_backend!(self, s => s.begin_refund(id, amount, reason).await)
    }

    /// Marks a pending intent done (the provider refunded it as `refund_id`, when known) and adds
    /// its amount to the order: `partially_refunded`, or `refunded` once nothing is left.
    /// Finishing an intent that is already done changes nothing (two instances may both see it
    /// through). Returns the order as it now is.
    ///
    /// # Errors
    /// [`Error::NotFound`]; store failures.
    pub async fn finish_refund(
        &self,
        intent: &RefundIntent,
        refund_id: Option<&str>,
    ) -> Result<Order> {
        on_backend!(self, s => s.finish_refund(intent, refund_id).await)
    }

    /// Marks a pending intent abandoned: the provider refused it without acting. Its number
    /// is not reused (its key may be remembered by the provider with these parameters).
    ///
    /// # Errors
    /// Store failures.
    pub async fn abandon_refund(&self, intent: &RefundIntent) -> Result<()> {
        on_backend!(self, s => s.abandon_refund(intent).await)
    }

    /// Records the latest email event of the order's confirmation, unless a later one (by the
    /// event's own timestamp) is already recorded. Returns whether it was recorded.
    ///
    /// # Errors
    /// Store failures.
    pub async fn set_email_status(&self, id: &str, status: &str, at_unix: i64) -> Result<bool> {
        on_backend!(self, s => s.set_email_status(id, status, at_unix).await)
    }

    /// The number of orders in each status (statuses without orders omitted).
    ///
    /// # Errors
    /// Store failures.
    pub async fn status_counts(&self) -> Result<Vec<(OrderStatus, u64)>> {
        let mut out = Vec::new();
        for (status, n) in on_backend!(self, s => s.status_counts().await)? {
            let status = OrderStatus::parse(&status).ok_or_else(|| corrupt("status"))?;
            out.push((status, u64::try_from(n).unwrap_or(0)));
        }
        out.sort();
        Ok(out)
    }
}

/// The first `limit` of `rows` (fetched one more than asked, newest first) and the cursor of the
/// next page, if there is one.
pub(super) fn page(mut rows: Vec<(i64, Order)>, limit: usize) -> Page {
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|(seq, _)| *seq)
    } else {
        None
    };
    Page {
        orders: rows.into_iter().map(|(_, o)| o).collect(),
        next,
    }
}

/// A fresh order id: `ord_` and 128 random bits in hex.
pub fn new_order_id() -> String {
    format!("ord_{}", crate::random_hex::<16>())
}

/// Whether `amount` may be refunded on `order` now.
///
/// # Errors
/// [`Error::Conflict`] (code `order_not_refundable`) for an order that is not paid;
/// [`Error::InvalidInput`] naming `amount` for a non-positive amount, another currency, or more
/// than is left (code `amount_too_large`).
pub fn check_refund(order: &Order, amount: Money) -> Result<()> {
    if !order.status.is_refundable() {
        return Err(Error::conflict(format!(
            "order {} is {}: only paid orders can be refunded",
            order.id, order.status
        ))
        .with_code("order_not_refundable"));
    }
    if amount.currency() != order.currency() {
        return Err(Error::invalid_input(
            "amount",
            format!("the order is in {}", order.currency()),
        ));
    }
    if !amount.is_positive() {
        return Err(Error::invalid_input("amount", "must be positive"));
    }
    let left = order.refundable();
    if amount.minor() > left.minor() {
        return Err(Error::invalid_input(
            "amount",
            format!(
                "{} exceeds the {} still refundable on order {}",
                amount.to_decimal_string(),
                left.to_decimal_string(),
                order.id
            ),
        )
        .with_code("amount_too_large"));
    }
    Ok(())
}

/// The refunded total and status of `order` once a refund of `amount` is added.
pub(super) fn after_refund(order: &Order, amount: Money) -> (i64, OrderStatus) {
    let refunded = order.refunded.minor() + amount.minor();
    let status = if refunded >= order.details.total.minor() {
        OrderStatus::Refunded
    } else {
        OrderStatus::PartiallyRefunded
    };
    (refunded, status)
}

/// The statuses a payment event may still move an order out of (the unsettled ones).
pub(super) fn unsettled() -> Vec<&'static str> {
    OrderStatus::ALL
        .iter()
        .filter(|s| s.is_unsettled())
        .map(|s| s.as_str())
        .collect()
}

/// The number of the next refund intent, after `last` (the highest intent number, or the
/// refunds recorded before intents existed).
pub(super) fn next_refund_number(last: i64) -> Result<u32> {
    u32::try_from(last + 1).map_err(|_| corrupt("refund number"))
}

/// What a client key found: the earlier order when the request is the same, else the error.
pub(super) fn existing_for_key(ck: &ClientKey, fingerprint: Option<&str>) -> Result<()> {
    if fingerprint != Some(ck.fingerprint.as_str()) {
        return Err(
            Error::conflict("this Idempotency-Key was used with a different request")
                .with_code("idempotency_key_reused"),
        );
    }
    Ok(())
}

/// The intent stored as `(number, amount_minor, reason)` on `order`.
pub(super) fn stored_intent(
    order: &Order,
    (number, minor, reason): (i64, i64, Option<String>),
) -> Result<RefundIntent> {
    Ok(RefundIntent {
        order_id: order.id.clone(),
        number: u32::try_from(number).map_err(|_| corrupt("refund number"))?,
        amount: Money::from_minor(minor, order.currency()),
        reason: reason
            .map(|r| serde_json::from_value(serde_json::Value::String(r)))
            .transpose()
            .map_err(|_| corrupt("refund reason"))?,
    })
}

/// A refund reason as stored (its wire name).
pub(super) fn reason_str(r: RefundReason) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub(super) fn not_found(id: &str) -> Error {
    Error::not_found(format!("no order {id}"))
}

pub(super) fn corrupt(what: &str) -> Error {
    Error::provider(format!("order store: corrupt {what}")).with_provider(STORE)
}

/// Milliseconds since 1970 now.
pub(super) fn now_ms() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
