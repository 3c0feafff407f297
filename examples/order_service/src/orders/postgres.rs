//! The orders in Postgres: the outbox's database and pool, so that an order change and the
//! events and jobs it owes are written in one transaction
//! ([`PostgresOutbox::record_event_in`]). Plain `sqlx` queries (no macros, no compile-time
//! database), like the outbox's own store.
//!
//! Concurrency across instances: what SQLite gets from `BEGIN IMMEDIATE` (one writer at a time)
//! comes here from row locks. A refund locks its order row (`FOR UPDATE`) before it reads the
//! intents, so two instances cannot both pass the remaining-amount check or draw one number; a
//! client key is claimed by the unique index (`ON CONFLICT DO NOTHING`); a payment event's
//! record takes the event id's unique-index entry, so a second instance applying the same event
//! waits for the first and finds it recorded.

use std::fmt;

use integrations_core::provider::RefundReason;
use integrations_core::{Error, Money, Result};
use integrations_outbox::postgres::sqlx::{
    self, PgConnection, PgExecutor, PgPool, Row, postgres::PgRow,
};
use integrations_outbox::{NewJob, OutboxStore, PostgresOutbox, RecordOutcome};

use super::model::{NewOrder, Order, OrderStatus};
use super::row::{COLS, RawOrder, items_json, shipping_json};
use super::store::{
    ClientKey, Inserted, Page, PaymentApplied, RefundIntent, RefundStart, STORE, after_refund,
    check_refund, corrupt, existing_for_key, new_order_id, next_refund_number, not_found, now_ms,
    page, reason_str, stored_intent, unsettled,
};
use crate::schema;

/// Key of the advisory lock held while migrating the order tables ("orderssv").
const MIGRATION_LOCK: i64 = 0x6f72_6465_7273_7376;

/// Migrations of the Postgres tables, in order (never edit a shipped one: append). `CREATE
/// TABLE` without `IF NOT EXISTS`: a database that already has another `orders` table is refused
/// by name rather than written into.
const MIGRATIONS: &[&str] = &["
    CREATE TABLE orders (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id text NOT NULL UNIQUE,
        client_key text UNIQUE,
        fingerprint text,
        customer_id text,
        customer_email text NOT NULL,
        customer_name text NOT NULL,
        currency text NOT NULL,
        total_minor bigint NOT NULL,
        items text NOT NULL,
        shipping text,
        status text NOT NULL,
        payment_id text,
        refunded_minor bigint NOT NULL DEFAULT 0,
        refund_count bigint NOT NULL DEFAULT 0,
        email_status text,
        email_status_at bigint,
        created_at bigint NOT NULL,
        updated_at bigint NOT NULL
    );
    CREATE INDEX orders_payment ON orders (payment_id);
    CREATE INDEX orders_status ON orders (status);
    CREATE TABLE order_refund_intents (
        order_id text NOT NULL REFERENCES orders (id),
        number bigint NOT NULL,
        amount_minor bigint NOT NULL,
        reason text,
        status text NOT NULL CHECK (status IN ('pending', 'done', 'abandoned')),
        refund_id text,
        created_at bigint NOT NULL,
        updated_at bigint NOT NULL,
        PRIMARY KEY (order_id, number)
    );
    CREATE UNIQUE INDEX order_refund_intents_one_pending
        ON order_refund_intents (order_id) WHERE status = 'pending';
"];

#[derive(Clone)]
pub(super) struct PgOrders {
    outbox: PostgresOutbox,
}

impl fmt::Debug for PgOrders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The outbox's Debug shows user@host:port/database, never the password.
        f.debug_tuple("PgOrders").field(&self.outbox).finish()
    }
}

/// Maps a sqlx error: lost connections, pool exhaustion, serialisation failures, deadlocks and
/// server shutdown are retryable ([`Error::Unavailable`]), unique violations are conflicts.
fn db_error(e: sqlx::Error) -> Error {
    let err = match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let msg = format!("order store: {}", db.message());
            let mapped = match (code.get(..2).unwrap_or(""), code.as_str()) {
                ("08" | "53" | "57", _) | (_, "40001" | "40P01" | "55P03") => {
                    Error::unavailable(msg)
                }
                ("23", _) => Error::conflict(msg),
                _ => Error::provider(msg),
            };
            mapped.with_code(code)
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Error::unavailable(format!("order store: {e}")),
        _ => Error::provider(format!("order store: {e}")),
    };
    err.with_provider(STORE).with_source(e)
}

fn read_row(r: &PgRow) -> Result<RawOrder> {
    let raw = || -> sqlx::Result<RawOrder> {
        Ok(RawOrder {
            seq: r.try_get(0)?,
            id: r.try_get(1)?,
            customer_id: r.try_get(2)?,
            customer_email: r.try_get(3)?,
            customer_name: r.try_get(4)?,
            currency: r.try_get(5)?,
            total_minor: r.try_get(6)?,
            items: r.try_get(7)?,
            shipping: r.try_get(8)?,
            status: r.try_get(9)?,
            payment_id: r.try_get(10)?,
            refunded_minor: r.try_get(11)?,
            refund_count: r.try_get(12)?,
            email_status: r.try_get(13)?,
            created_at: r.try_get(14)?,
            updated_at: r.try_get(15)?,
        })
    };
    raw().map_err(|_| corrupt("order row"))
}

/// Brings the order tables behind `pool` to this build's version, once, under an advisory lock
/// (instances starting together migrate once); refuses a database migrated by a newer build.
/// [`OrderStore::postgres`](super::OrderStore::postgres) runs it; run it yourself to migrate at
/// deploy time.
///
/// # Errors
/// [`Error::Configuration`] naming `schema` for a newer schema; [`Error::Unavailable`] when the
/// server cannot be reached; [`Error::Provider`] when a migration fails (another `orders` table).
pub async fn migrate(pool: &PgPool) -> Result<()> {
    schema::migrate_pg(pool, schema::ORDERS, MIGRATION_LOCK, MIGRATIONS, db_error).await
}

impl PgOrders {
    pub(super) async fn open(outbox: PostgresOutbox) -> Result<Self> {
        migrate(outbox.pool()).await?;
        Ok(PgOrders { outbox })
    }

    fn pool(&self) -> &PgPool {
        self.outbox.pool()
    }

    pub(super) async fn insert(
        &self,
        new: NewOrder,
        client_key: Option<ClientKey>,
    ) -> Result<Inserted> {
        let row = sqlx::query(&format!(
            "INSERT INTO orders (id, client_key, fingerprint, customer_id, customer_email,
                customer_name, currency, total_minor, items, shipping, status, created_at,
                updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)
             ON CONFLICT (client_key) DO NOTHING RETURNING {COLS}"
        ))
        .bind(new_order_id())
        .bind(client_key.as_ref().map(|c| c.key.as_str()))
        .bind(client_key.as_ref().map(|c| c.fingerprint.as_str()))
        .bind(&new.customer_id)
        .bind(&new.customer_email)
        .bind(&new.customer_name)
        .bind(new.total.currency().code())
        .bind(new.total.minor())
        .bind(items_json(&new.items).to_string())
        .bind(new.shipping.as_ref().map(|s| shipping_json(s).to_string()))
        .bind(OrderStatus::Pending.as_str())
        .bind(now_ms())
        .fetch_optional(self.pool())
        .await
        .map_err(db_error)?;
        if let Some(row) = row {
            return Ok(Inserted::Created(read_row(&row)?.into_order()?.1));
        }
        // Only a client key conflicts: the order made with it before.
        let ck = client_key.ok_or_else(|| corrupt("order insert"))?;
        let row = sqlx::query(&format!(
            "SELECT fingerprint, {COLS} FROM orders WHERE client_key = $1"
        ))
        .bind(&ck.key)
        .fetch_one(self.pool())
        .await
        .map_err(db_error)?;
        let fingerprint: Option<String> = row.try_get(0).map_err(|_| corrupt("fingerprint"))?;
        existing_for_key(&ck, fingerprint.as_deref())?;
        let order = get(
            self.pool(),
            &row.try_get::<String, _>("id").map_err(db_error)?,
        )
        .await?;
        Ok(Inserted::Existing(
            order.ok_or_else(|| corrupt("order row"))?,
        ))
    }

    pub(super) async fn get(&self, id: &str) -> Result<Option<Order>> {
        get(self.pool(), id).await
    }

    pub(super) async fn list(&self, limit: usize, before: Option<i64>) -> Result<Page> {
        let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM orders WHERE ($1::bigint IS NULL OR seq < $1)
             ORDER BY seq DESC LIMIT $2"
        ))
        .bind(before)
        .bind(fetch)
        .fetch_all(self.pool())
        .await
        .map_err(db_error)?;
        let out = rows
            .iter()
            .map(|r| read_row(r)?.into_order())
            .collect::<Result<Vec<_>>>()?;
        Ok(page(out, limit))
    }

    pub(super) async fn attach_payment(
        &self,
        id: &str,
        payment_id: &str,
        status: OrderStatus,
    ) -> Result<Order> {
        let changed = sqlx::query(
            "UPDATE orders SET payment_id = $2, status = $3, updated_at = $4
             WHERE id = $1 AND (payment_id IS NULL OR payment_id = $2)",
        )
        .bind(id)
        .bind(payment_id)
        .bind(status.as_str())
        .bind(now_ms())
        .execute(self.pool())
        .await
        .map_err(db_error)?
        .rows_affected();
        let order = self.get(id).await?.ok_or_else(|| not_found(id))?;
        if changed == 0 {
            return Err(Error::conflict(format!(
                "order {id} already has another payment"
            )));
        }
        Ok(order)
    }

    pub(super) async fn update_payment_status(
        &self,
        id: &str,
        status: OrderStatus,
    ) -> Result<Order> {
        set_status(self.pool(), id, status).await?;
        self.get(id).await?.ok_or_else(|| not_found(id))
    }

    pub(super) async fn record_event(&self, event_id: &str) -> Result<RecordOutcome> {
        self.outbox.record_event(event_id, Vec::new()).await
    }

    pub(super) async fn apply_payment_event(
        &self,
        id: &str,
        status: OrderStatus,
        event_id: &str,
        jobs: Vec<NewJob>,
    ) -> Result<PaymentApplied> {
        let mut tx = self.pool().begin().await.map_err(db_error)?;
        // Announced after the commit, not notified inside it: notifying transactions commit one
        // at a time, each with its own flush, and every webhook is one (`service_load` on
        // Postgres: `docs/scaling.md`).
        let outcome = self
            .outbox
            .record_event_in_unannounced(&mut tx, event_id, jobs)
            .await?;
        if !outcome.is_duplicate() {
            set_status(&mut *tx, id, status).await?;
        }
        let order = get(&mut *tx, id).await?.ok_or_else(|| not_found(id))?;
        tx.commit().await.map_err(db_error)?;
        if !outcome.is_duplicate() {
            self.outbox.announce();
        }
        Ok(PaymentApplied { order, outcome })
    }

    pub(super) async fn begin_refund(
        &self,
        id: &str,
        amount: Option<Money>,
        reason: Option<RefundReason>,
    ) -> Result<RefundStart> {
        let mut tx = self.pool().begin().await.map_err(db_error)?;
        let order = lock(&mut tx, id).await?;
        if let Some(pending) = pending_intent(&mut tx, &order).await? {
            return Ok(RefundStart::Pending(pending));
        }
        let amount = amount.unwrap_or_else(|| order.refundable());
        check_refund(&order, amount)?;
        // Under the order's row lock: two instances cannot draw the same number.
        let last: i64 = sqlx::query_scalar(
            "SELECT GREATEST(COALESCE((SELECT MAX(number) FROM order_refund_intents
                                       WHERE order_id = $1), 0), refund_count)
             FROM orders WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        let number = next_refund_number(last)?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO order_refund_intents (order_id, number, amount_minor, reason, status,
                created_at, updated_at) VALUES ($1, $2, $3, $4, 'pending', $5, $5)",
        )
        .bind(id)
        .bind(i64::from(number))
        .bind(amount.minor())
        .bind(reason.map(reason_str))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(RefundStart::New(RefundIntent {
            order_id: id.to_owned(),
            number,
            amount,
            reason,
        }))
    }

    pub(super) async fn finish_refund(
        &self,
        intent: &RefundIntent,
        refund_id: Option<&str>,
    ) -> Result<Order> {
        let id = &intent.order_id;
        let mut tx = self.pool().begin().await.map_err(db_error)?;
        // The order first, as begin_refund locks it: no lock-order deadlock between the two.
        let order = lock(&mut tx, id).await?;
        let changed = sqlx::query(
            "UPDATE order_refund_intents SET status = 'done', refund_id = $3, updated_at = $4
             WHERE order_id = $1 AND number = $2 AND status = 'pending'",
        )
        .bind(id)
        .bind(i64::from(intent.number))
        .bind(refund_id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        if changed == 0 {
            return Ok(order);
        }
        let (refunded, status) = after_refund(&order, intent.amount);
        sqlx::query(
            "UPDATE orders SET refunded_minor = $2, refund_count = refund_count + 1,
                status = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(refunded)
        .bind(status.as_str())
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let order = get(&mut *tx, id).await?.ok_or_else(|| not_found(id))?;
        tx.commit().await.map_err(db_error)?;
        Ok(order)
    }

    pub(super) async fn abandon_refund(&self, intent: &RefundIntent) -> Result<()> {
        sqlx::query(
            "UPDATE order_refund_intents SET status = 'abandoned', updated_at = $3
             WHERE order_id = $1 AND number = $2 AND status = 'pending'",
        )
        .bind(&intent.order_id)
        .bind(i64::from(intent.number))
        .bind(now_ms())
        .execute(self.pool())
        .await
        .map_err(db_error)?;
        Ok(())
    }

    pub(super) async fn set_email_status(
        &self,
        id: &str,
        status: &str,
        at_unix: i64,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE orders SET email_status = $2, email_status_at = $3, updated_at = $4
             WHERE id = $1 AND (email_status_at IS NULL OR email_status_at <= $3)",
        )
        .bind(id)
        .bind(status)
        .bind(at_unix)
        .bind(now_ms())
        .execute(self.pool())
        .await
        .map_err(db_error)?
        .rows_affected();
        Ok(n > 0)
    }

    pub(super) async fn status_counts(&self) -> Result<Vec<(String, i64)>> {
        sqlx::query_as("SELECT status, count(*) FROM orders GROUP BY status")
            .fetch_all(self.pool())
            .await
            .map_err(db_error)
    }
}

/// Moves an unsettled order to `status` (see [`unsettled`]).
async fn set_status<'e>(e: impl PgExecutor<'e>, id: &str, status: OrderStatus) -> Result<()> {
    sqlx::query(
        "UPDATE orders SET status = $2, updated_at = $3
         WHERE id = $1 AND status <> $2 AND status = ANY($4)",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(now_ms())
    .bind(unsettled())
    .execute(e)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// The order `id`, its row locked until `tx` ends.
async fn lock(tx: &mut PgConnection, id: &str) -> Result<Order> {
    let row = sqlx::query(&format!(
        "SELECT {COLS} FROM orders WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error)?
    .ok_or_else(|| not_found(id))?;
    Ok(read_row(&row)?.into_order()?.1)
}

async fn pending_intent(tx: &mut PgConnection, order: &Order) -> Result<Option<RefundIntent>> {
    let row: Option<(i64, i64, Option<String>)> = sqlx::query_as(
        "SELECT number, amount_minor, reason FROM order_refund_intents
         WHERE order_id = $1 AND status = 'pending'",
    )
    .bind(&order.id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error)?;
    row.map(|row| stored_intent(order, row)).transpose()
}

async fn get<'e>(e: impl PgExecutor<'e>, id: &str) -> Result<Option<Order>> {
    let row = sqlx::query(&format!("SELECT {COLS} FROM orders WHERE id = $1"))
        .bind(id)
        .fetch_optional(e)
        .await
        .map_err(db_error)?;
    row.map(|r| read_row(&r)?.into_order().map(|(_, o)| o))
        .transpose()
}
