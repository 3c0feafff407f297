//! The orders in SQLite: the outbox's file, a connection of their own (behind a mutex, used on
//! tokio's blocking pool), WAL journal so it shares the file with the outbox's connection.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use integrations_core::provider::RefundReason;
use integrations_core::{Error, Money, Result};
use integrations_outbox::rusqlite::{
    self, Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params,
};
use integrations_outbox::{NewJob, RecordOutcome, SqliteOutbox};

use super::group::{self, Group, Write, Written};

use super::model::{NewOrder, Order, OrderStatus};
use super::row::{COLS, RawOrder, items_json, shipping_json};
use super::store::{
    ClientKey, Inserted, Page, PaymentApplied, RefundIntent, RefundStart, STORE, after_refund,
    check_refund, corrupt, existing_for_key, new_order_id, next_refund_number, not_found, now_ms,
    page, reason_str, stored_intent, unsettled,
};
use crate::schema;

/// Migrations of the SQLite tables, in order (never edit a shipped one: append). The first
/// creates them only if missing: files from before the version table have them already.
const MIGRATIONS: &[&str] = &["
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
"];

#[derive(Clone)]
pub(super) struct SqliteOrders {
    conn: Arc<Mutex<Connection>>,
    outbox: SqliteOutbox,
    /// The webhook writes waiting for the next group commit ([`super::group`]).
    group: Arc<Group>,
}

pub(super) fn db_error(e: rusqlite::Error) -> Error {
    let msg = e.to_string();
    let err = match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            Error::unavailable(format!("order store busy: {msg}"))
        }
        _ => Error::provider(format!("order store: {msg}")),
    };
    err.with_provider(STORE).with_source(e)
}

fn read_row(r: &Row<'_>) -> rusqlite::Result<RawOrder> {
    Ok(RawOrder {
        seq: r.get(0)?,
        id: r.get(1)?,
        customer_id: r.get(2)?,
        customer_email: r.get(3)?,
        customer_name: r.get(4)?,
        currency: r.get(5)?,
        total_minor: r.get(6)?,
        items: r.get(7)?,
        shipping: r.get(8)?,
        status: r.get(9)?,
        payment_id: r.get(10)?,
        refunded_minor: r.get(11)?,
        refund_count: r.get(12)?,
        email_status: r.get(13)?,
        created_at: r.get(14)?,
        updated_at: r.get(15)?,
    })
}

pub(super) fn begin(conn: &mut Connection) -> Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)
}

impl SqliteOrders {
    pub(super) async fn open(outbox: SqliteOutbox) -> Result<Self> {
        let path = outbox.path().to_path_buf();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection> {
            let mut conn = Connection::open(&path).map_err(db_error)?;
            conn.busy_timeout(Duration::from_secs(5))
                .map_err(db_error)?;
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(db_error)?;
            // This connection commits recorded events too: as durable as the outbox's own.
            conn.pragma_update(None, "synchronous", "FULL")
                .map_err(db_error)?;
            schema::migrate_sqlite(&mut conn, schema::ORDERS, MIGRATIONS, db_error)?;
            Ok(conn)
        })
        .await
        .map_err(|e| Error::provider(format!("order store open did not finish: {e}")))??;
        Ok(SqliteOrders {
            conn: Arc::new(Mutex::new(conn)),
            outbox,
            group: Arc::default(),
        })
    }

    pub(super) fn path(&self) -> &Path {
        self.outbox.path()
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

    pub(super) async fn insert(
        &self,
        new: NewOrder,
        client_key: Option<ClientKey>,
    ) -> Result<Inserted> {
        self.call(move |conn| {
            let tx = begin(conn)?;
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
                    existing_for_key(ck, fingerprint.as_deref())?;
                    let order = get(&tx, &id)?.ok_or_else(|| corrupt("order row"))?;
                    return Ok(Inserted::Existing(order));
                }
            }
            let id = new_order_id();
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
                    now_ms(),
                ],
            )
            .map_err(db_error)?;
            let order = get(&tx, &id)?.ok_or_else(|| corrupt("order row"))?;
            tx.commit().map_err(db_error)?;
            Ok(Inserted::Created(order))
        })
        .await
    }

    pub(super) async fn get(&self, id: &str) -> Result<Option<Order>> {
        let id = id.to_owned();
        self.call(move |conn| get(conn, &id)).await
    }

    pub(super) async fn list(&self, limit: usize, before: Option<i64>) -> Result<Page> {
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
                out.push(row.map_err(db_error)?.into_order()?);
            }
            Ok(page(out, limit))
        })
        .await
    }

    pub(super) async fn attach_payment(
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

    pub(super) async fn update_payment_status(
        &self,
        id: &str,
        status: OrderStatus,
    ) -> Result<Order> {
        let id = id.to_owned();
        self.call(move |conn| {
            set_status(conn, &id, status)?;
            get(conn, &id)?.ok_or_else(|| not_found(&id))
        })
        .await
    }

    /// The payment event's change to order `id` and the event with its jobs, in one
    /// transaction — shared with the other webhook writes waiting at the same moment (a group
    /// commit, [`super::group`]).
    pub(super) async fn apply_payment_event(
        &self,
        id: &str,
        status: OrderStatus,
        event_id: &str,
        jobs: Vec<NewJob>,
    ) -> Result<PaymentApplied> {
        let write = Write::Payment {
            id: id.to_owned(),
            status,
            event_id: event_id.to_owned(),
            jobs,
        };
        match self.grouped(write).await? {
            Written::Payment(applied) => Ok(*applied),
            Written::Event(_) => unreachable!("a payment write answers as one"),
        }
    }

    /// Records `event_id` with no job and no order change (an event the service acknowledges
    /// and does not act on), so a redelivery is known; in the webhook writes' group commit.
    pub(super) async fn record_event(&self, event_id: &str) -> Result<RecordOutcome> {
        let write = Write::Event {
            event_id: event_id.to_owned(),
        };
        match self.grouped(write).await? {
            Written::Event(outcome) => Ok(outcome),
            Written::Payment(_) => unreachable!("an event write answers as one"),
        }
    }

    /// Group commits of webhook writes so far.
    pub(super) fn write_groups(&self) -> u64 {
        self.group.groups()
    }

    async fn grouped(&self, write: Write) -> Result<Written> {
        let (conn, outbox) = (Arc::clone(&self.conn), self.outbox.clone());
        group::submit(&self.group, write, move |batch| {
            let (conn, outbox) = (Arc::clone(&conn), outbox.clone());
            tokio::task::spawn_blocking(move || {
                let mut guard = conn.lock().unwrap_or_else(PoisonError::into_inner);
                group::commit_group(&mut guard, &outbox, batch);
            })
        })
        .await
    }

    pub(super) async fn begin_refund(
        &self,
        id: &str,
        amount: Option<Money>,
        reason: Option<RefundReason>,
    ) -> Result<RefundStart> {
        let id = id.to_owned();
        self.call(move |conn| {
            let tx = begin(conn)?;
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
            let number = next_refund_number(last)?;
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

    pub(super) async fn finish_refund(
        &self,
        intent: &RefundIntent,
        refund_id: Option<&str>,
    ) -> Result<Order> {
        let (intent, refund_id) = (intent.clone(), refund_id.map(str::to_owned));
        self.call(move |conn| {
            let tx = begin(conn)?;
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
            let (refunded, status) = after_refund(&order, intent.amount);
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

    pub(super) async fn abandon_refund(&self, intent: &RefundIntent) -> Result<()> {
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

    pub(super) async fn set_email_status(
        &self,
        id: &str,
        status: &str,
        at_unix: i64,
    ) -> Result<bool> {
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

    pub(super) async fn status_counts(&self) -> Result<Vec<(String, i64)>> {
        self.call(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT status, COUNT(*) FROM orders GROUP BY status")
                .map_err(db_error)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(db_error)?;
            rows.collect::<rusqlite::Result<_>>().map_err(db_error)
        })
        .await
    }
}

/// Moves an unsettled order to `status` (see [`unsettled`]).
pub(super) fn set_status(conn: &Connection, id: &str, status: OrderStatus) -> Result<()> {
    conn.execute(
        &format!(
            "UPDATE orders SET status = ?2, updated_at = ?3
             WHERE id = ?1 AND status <> ?2 AND status IN ('{}')",
            unsettled().join("','")
        ),
        params![id, status.as_str(), now_ms()],
    )
    .map_err(db_error)?;
    Ok(())
}

fn pending_intent(conn: &Connection, order: &Order) -> Result<Option<RefundIntent>> {
    conn.query_row(
        "SELECT number, amount_minor, reason FROM refund_intents
         WHERE order_id = ?1 AND status = 'pending'",
        [&order.id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .optional()
    .map_err(db_error)?
    .map(|row| stored_intent(order, row))
    .transpose()
}

pub(super) fn get(conn: &Connection, id: &str) -> Result<Option<Order>> {
    conn.query_row(
        &format!("SELECT {COLS} FROM orders WHERE id = ?1"),
        [id],
        read_row,
    )
    .optional()
    .map_err(db_error)?
    .map(|raw| raw.into_order().map(|(_, order)| order))
    .transpose()
}
