//! [`OrderStore`]: orders in a SQLite table (the same file as the outbox is fine).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use integrations_core::provider::RefundReason;
use integrations_core::{Error, IdempotencyKey, Money, Result};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::model::{NewOrder, Order, OrderStatus};
use super::row::{COLS, items_json, read_row, shipping_json};

/// Provider name on store errors.
const STORE: &str = "order-store";

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS orders (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        client_key TEXT UNIQUE,
        fingerprint TEXT,
        customer_id TEXT,
        customer_email TEXT NOT NULL,
        customer_name TEXT NOT NULL,
        currency TEXT NOT NULL,
        total_minor INTEGER NOT NULL,
        items TEXT NOT NULL,
        shipping TEXT,
        status TEXT NOT NULL,
        payment_id TEXT,
        refunded_minor INTEGER NOT NULL DEFAULT 0,
        refund_count INTEGER NOT NULL DEFAULT 0,
        email_status TEXT,
        email_status_at INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS orders_payment ON orders (payment_id);
    CREATE TABLE IF NOT EXISTS refund_intents (
        order_id TEXT NOT NULL,
        number INTEGER NOT NULL,
        amount_minor INTEGER NOT NULL,
        reason TEXT,
        status TEXT NOT NULL,
        refund_id TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (order_id, number)
    );
    CREATE UNIQUE INDEX IF NOT EXISTS refund_intents_one_pending
        ON refund_intents (order_id) WHERE status = 'pending';
";

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

/// Orders in SQLite: one connection behind a mutex, every call on tokio's blocking pool, WAL
/// journal so it shares a file with the outbox's own connection.
#[derive(Clone)]
pub struct OrderStore {
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
}

impl fmt::Debug for OrderStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrderStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn db_error(e: rusqlite::Error) -> Error {
    let msg = e.to_string();
    let err = match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            Error::unavailable(format!("order store busy: {msg}"))
        }
        _ => Error::provider(format!("order store: {msg}")),
    };
    err.with_provider(STORE).with_source(e)
}

pub(super) fn corrupt(what: &str) -> Error {
    Error::provider(format!("order store: corrupt {what}")).with_provider(STORE)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A fresh order id: `ord_` and 128 random bits in hex.
pub fn new_order_id() -> String {
    format!("ord_{}", crate::random_hex::<16>())
}

impl OrderStore {
    /// Opens (creating if needed) the `orders` table in the SQLite file at `path`.
    ///
    /// # Errors
    /// [`Error::Unavailable`] or [`Error::Provider`] if the file cannot be opened or migrated.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection> {
            let conn = Connection::open(&p).map_err(db_error)?;
            conn.busy_timeout(Duration::from_secs(5))
                .map_err(db_error)?;
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(db_error)?;
            conn.execute_batch(SCHEMA).map_err(db_error)?;
            Ok(conn)
        })
        .await
        .map_err(|e| Error::provider(format!("order store open did not finish: {e}")))??;
        Ok(OrderStore {
            conn: Arc::new(Mutex::new(conn)),
            path: Arc::new(path),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        .map_err(|e| {
            Error::provider(format!("order store call did not finish: {e}")).with_provider(STORE)
        })?
    }

    /// Stores a new pending order, or — when `client_key` was used before with the same request —
    /// returns the order made then.
    ///
    /// # Errors
    /// [`Error::Conflict`] with code `idempotency_key_reused` when the key was used with another
    /// request; store failures.
    pub async fn insert(&self, new: NewOrder, client_key: Option<ClientKey>) -> Result<Inserted> {
        self.call(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_error)?;
            if let Some(ck) = &client_key {
                let seen: Option<(String, Option<String>)> = tx
                    .query_row(
                        "SELECT id, fingerprint FROM orders WHERE client_key = ?1",
                        [&ck.key],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(db_error)?;
                if let Some((id, fingerprint)) = seen {
                    if fingerprint.as_deref() != Some(ck.fingerprint.as_str()) {
                        return Err(Error::conflict(
                            "this Idempotency-Key was used with a different request",
                        )
                        .with_code("idempotency_key_reused"));
                    }
                    let order = get(&tx, &id)?.ok_or_else(|| corrupt("order row"))?;
                    return Ok(Inserted::Existing(order));
                }
            }
            let id = new_order_id();
            let now = now_ms();
            tx.execute(
                "INSERT INTO orders (id, client_key, fingerprint, customer_id, customer_email,
                    customer_name, currency, total_minor, items, shipping, status, created_at,
                    updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
                params![
                    id,
                    client_key.as_ref().map(|c| &c.key),
                    client_key.as_ref().map(|c| &c.fingerprint),
                    new.customer_id,
                    new.customer_email,
                    new.customer_name,
                    new.total.currency().code(),
                    new.total.minor(),
                    items_json(&new.items).to_string(),
                    new.shipping.as_ref().map(|s| shipping_json(s).to_string()),
                    OrderStatus::Pending.as_str(),
                    now,
                ],
            )
            .map_err(db_error)?;
            let order = get(&tx, &id)?.ok_or_else(|| corrupt("order row"))?;
            tx.commit().map_err(db_error)?;
            Ok(Inserted::Created(order))
        })
        .await
    }

    /// The order `id`, if any.
    ///
    /// # Errors
    /// Store failures.
    pub async fn get(&self, id: &str) -> Result<Option<Order>> {
        let id = id.to_owned();
        self.call(move |conn| get(conn, &id)).await
    }

    /// Up to `limit` orders older than the cursor `before` (or the newest), newest first.
    ///
    /// # Errors
    /// Store failures.
    pub async fn list(&self, limit: usize, before: Option<i64>) -> Result<Page> {
        self.call(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {COLS} FROM orders WHERE (?1 IS NULL OR seq < ?1)
                     ORDER BY seq DESC LIMIT ?2"
                ))
                .map_err(db_error)?;
            let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
            let rows = stmt
                .query_map(params![before, fetch], read_row)
                .map_err(db_error)?;
            let mut out = Vec::with_capacity(limit + 1);
            for row in rows {
                out.push(row.map_err(db_error)??);
            }
            let next = if out.len() > limit {
                out.truncate(limit);
                out.last().map(|(seq, _)| *seq)
            } else {
                None
            };
            Ok(Page {
                orders: out.into_iter().map(|(_, o)| o).collect(),
                next,
            })
        })
        .await
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
        let (id, payment_id) = (id.to_owned(), payment_id.to_owned());
        self.call(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE orders SET payment_id = ?2, status = ?3, updated_at = ?4
                     WHERE id = ?1 AND (payment_id IS NULL OR payment_id = ?2)",
                    params![id, payment_id, status.as_str(), now_ms()],
                )
                .map_err(db_error)?;
            let order = get(conn, &id)?.ok_or_else(|| not_found(&id))?;
            if changed == 0 {
                return Err(Error::conflict(format!(
                    "order {id} already has another payment"
                )));
            }
            Ok(order)
        })
        .await
    }

    /// Moves an order whose payment is not settled yet to `status` (a settled order — paid,
    /// refunded, canceled — is left as it is, so late or repeated events cannot undo a payment).
    /// Returns the order as it now is.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown order; store failures.
    pub async fn update_payment_status(&self, id: &str, status: OrderStatus) -> Result<Order> {
        let id = id.to_owned();
        self.call(move |conn| {
            let unsettled: Vec<&str> = OrderStatus::ALL
                .iter()
                .filter(|s| s.is_unsettled())
                .map(|s| s.as_str())
                .collect();
            conn.execute(
                &format!(
                    "UPDATE orders SET status = ?2, updated_at = ?3
                     WHERE id = ?1 AND status <> ?2 AND status IN ('{}')",
                    unsettled.join("','")
                ),
                params![id, status.as_str(), now_ms()],
            )
            .map_err(db_error)?;
            get(conn, &id)?.ok_or_else(|| not_found(&id))
        })
        .await
    }

    /// Adds a refund of `amount` to a paid order: `partially_refunded`, or `refunded` once
    /// nothing is left.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Conflict`] if the order is not paid;
    /// [`Error::InvalidInput`] naming `amount` when it exceeds what is refundable or is in
    /// another currency; store failures.
    pub async fn record_refund(&self, id: &str, amount: Money) -> Result<Order> {
        let id = id.to_owned();
        self.call(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_error)?;
            let order = get(&tx, &id)?.ok_or_else(|| not_found(&id))?;
            check_refund(&order, amount)?;
            let refunded = order.refunded.minor() + amount.minor();
            let status = if refunded >= order.details.total.minor() {
                OrderStatus::Refunded
            } else {
                OrderStatus::PartiallyRefunded
            };
            tx.execute(
                "UPDATE orders SET refunded_minor = ?2, refund_count = refund_count + 1,
                    status = ?3, updated_at = ?4 WHERE id = ?1",
                params![id, refunded, status.as_str(), now_ms()],
            )
            .map_err(db_error)?;
            let order = get(&tx, &id)?.ok_or_else(|| not_found(&id))?;
            tx.commit().map_err(db_error)?;
            Ok(order)
        })
        .await
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
        let id = id.to_owned();
        self.call(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_error)?;
            let order = get(&tx, &id)?.ok_or_else(|| not_found(&id))?;
            if let Some(pending) = pending_intent(&tx, &order)? {
                return Ok(RefundStart::Pending(pending));
            }
            let amount = amount.unwrap_or_else(|| order.refundable());
            check_refund(&order, amount)?;
            // Numbers follow the intents ever recorded (and refunds recorded before intents
            // existed), inside this transaction: two instances cannot draw the same one.
            let last: i64 = tx
                .query_row(
                    "SELECT MAX(COALESCE((SELECT MAX(number) FROM refund_intents
                                          WHERE order_id = ?1), 0), refund_count)
                     FROM orders WHERE id = ?1",
                    [&id],
                    |r| r.get(0),
                )
                .map_err(db_error)?;
            let number = u32::try_from(last + 1).map_err(|_| corrupt("refund number"))?;
            let now = now_ms();
            tx.execute(
                "INSERT INTO refund_intents (order_id, number, amount_minor, reason, status,
                    created_at, updated_at) VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5)",
                params![id, number, amount.minor(), reason.map(reason_str), now],
            )
            .map_err(db_error)?;
            tx.commit().map_err(db_error)?;
            Ok(RefundStart::New(RefundIntent {
                order_id: id,
                number,
                amount,
                reason,
            }))
        })
        .await
    }

    /// Marks a pending intent done (the provider refunded it as `refund_id`, when known) and adds its amount
    /// to the order: `partially_refunded`, or `refunded` once nothing is left. Finishing an
    /// intent that is already done changes nothing (two instances may both see it through).
    /// Returns the order as it now is.
    ///
    /// # Errors
    /// [`Error::NotFound`]; store failures.
    pub async fn finish_refund(
        &self,
        intent: &RefundIntent,
        refund_id: Option<&str>,
    ) -> Result<Order> {
        let (intent, refund_id) = (intent.clone(), refund_id.map(str::to_owned));
        self.call(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_error)?;
            let id = &intent.order_id;
            let changed = tx
                .execute(
                    "UPDATE refund_intents SET status = 'done', refund_id = ?3, updated_at = ?4
                     WHERE order_id = ?1 AND number = ?2 AND status = 'pending'",
                    params![id, intent.number, refund_id, now_ms()],
                )
                .map_err(db_error)?;
            let order = get(&tx, id)?.ok_or_else(|| not_found(id))?;
            if changed == 0 {
                return Ok(order);
            }
            let refunded = order.refunded.minor() + intent.amount.minor();
            let status = if refunded >= order.details.total.minor() {
                OrderStatus::Refunded
            } else {
                OrderStatus::PartiallyRefunded
            };
            tx.execute(
                "UPDATE orders SET refunded_minor = ?2, refund_count = refund_count + 1,
                    status = ?3, updated_at = ?4 WHERE id = ?1",
                params![id, refunded, status.as_str(), now_ms()],
            )
            .map_err(db_error)?;
            let order = get(&tx, id)?.ok_or_else(|| not_found(id))?;
            tx.commit().map_err(db_error)?;
            Ok(order)
        })
        .await
    }

    /// Marks a pending intent abandoned: the provider refused it without acting. Its number
    /// is not reused (its key may be remembered by the provider with these parameters).
    ///
    /// # Errors
    /// Store failures.
    pub async fn abandon_refund(&self, intent: &RefundIntent) -> Result<()> {
        let intent = intent.clone();
        self.call(move |conn| {
            conn.execute(
                "UPDATE refund_intents SET status = 'abandoned', updated_at = ?3
                 WHERE order_id = ?1 AND number = ?2 AND status = 'pending'",
                params![intent.order_id, intent.number, now_ms()],
            )
            .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    /// Records the latest email event of the order's confirmation, unless a later one (by the
    /// event's own timestamp) is already recorded. Returns whether it was recorded.
    ///
    /// # Errors
    /// Store failures.
    pub async fn set_email_status(&self, id: &str, status: &str, at_unix: i64) -> Result<bool> {
        let (id, status) = (id.to_owned(), status.to_owned());
        self.call(move |conn| {
            let n = conn
                .execute(
                    "UPDATE orders SET email_status = ?2, email_status_at = ?3, updated_at = ?4
                     WHERE id = ?1 AND (email_status_at IS NULL OR email_status_at <= ?3)",
                    params![id, status, at_unix, now_ms()],
                )
                .map_err(db_error)?;
            Ok(n > 0)
        })
        .await
    }

    /// The number of orders in each status (statuses without orders omitted).
    ///
    /// # Errors
    /// Store failures.
    pub async fn status_counts(&self) -> Result<Vec<(OrderStatus, u64)>> {
        self.call(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT status, COUNT(*) FROM orders GROUP BY status")
                .map_err(db_error)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(db_error)?;
            let mut out = Vec::new();
            for row in rows {
                let (status, n) = row.map_err(db_error)?;
                let status = OrderStatus::parse(&status).ok_or_else(|| corrupt("status"))?;
                out.push((status, u64::try_from(n).unwrap_or(0)));
            }
            out.sort();
            Ok(out)
        })
        .await
    }
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

fn not_found(id: &str) -> Error {
    Error::not_found(format!("no order {id}"))
}

fn reason_str(r: RefundReason) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn pending_intent(conn: &Connection, order: &Order) -> Result<Option<RefundIntent>> {
    let row: Option<(i64, i64, Option<String>)> = conn
        .query_row(
            "SELECT number, amount_minor, reason FROM refund_intents
             WHERE order_id = ?1 AND status = 'pending'",
            [&order.id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(db_error)?;
    row.map(|(number, minor, reason)| {
        Ok(RefundIntent {
            order_id: order.id.clone(),
            number: u32::try_from(number).map_err(|_| corrupt("refund number"))?,
            amount: Money::from_minor(minor, order.currency()),
            reason: reason
                .map(|r| serde_json::from_value(serde_json::Value::String(r)))
                .transpose()
                .map_err(|_| corrupt("refund reason"))?,
        })
    })
    .transpose()
}

fn get(conn: &Connection, id: &str) -> Result<Option<Order>> {
    conn.query_row(
        &format!("SELECT {COLS} FROM orders WHERE id = ?1"),
        [id],
        read_row,
    )
    .optional()
    .map_err(db_error)?
    .transpose()
    .map(|o| o.map(|(_, order)| order))
}
