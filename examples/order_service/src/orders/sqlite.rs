//! The orders in SQLite: the outbox's file, a connection of their own (behind a mutex, used on
//! tokio's blocking pool), WAL journal so it shares the file with the outbox's connection.

use std::path::Path;
use std::sync::Arc;
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

/// One connection and the calls waiting for it, run back to back by one blocking thread (the
/// drainer), started when the first call arrives and ending when none waits. With a blocking
/// mutex instead, each waiting call held a thread of tokio's blocking pool: under load — the
/// Sheets lane's 1,000 jobs each reading its order — the service reached the pool's 512 threads,
/// all parked on that mutex, with the outbox's own calls queued behind them; an async mutex
/// instead left the connection idle while each next call got its thread (`docs/scaling.md`,
/// "The reference service under load"). The outbox's `SqliteOutbox` runs its calls the same way.
struct Worker {
    conn: std::sync::Mutex<Connection>,
    /// The calls waiting, and whether a drainer is running.
    queue: std::sync::Mutex<(std::collections::VecDeque<Call>, bool)>,
}

type Call = Box<dyn FnOnce(&mut Connection) + Send>;
type Shared = Arc<Worker>;

impl Worker {
    fn new(conn: Connection) -> Shared {
        Arc::new(Worker {
            conn: std::sync::Mutex::new(conn),
            queue: std::sync::Mutex::default(),
        })
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, (std::collections::VecDeque<Call>, bool)> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs the calls queued until none is left.
    fn drain(&self) {
        let mut conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            let call = {
                let mut q = self.queue();
                match q.0.pop_front() {
                    Some(call) => call,
                    None => {
                        q.1 = false;
                        return;
                    }
                }
            };
            call(&mut conn);
        }
    }
}

/// The drainer's task: if the runtime drops it unrun (shutting down), the calls waiting are
/// dropped — their callers get an error — and the next call starts a drainer.
struct Drainer {
    worker: Shared,
    ran: bool,
}

impl Drop for Drainer {
    fn drop(&mut self) {
        if !self.ran {
            let stranded = {
                let mut q = self.worker.queue();
                q.1 = false;
                std::mem::take(&mut q.0)
            };
            drop(stranded);
        }
    }
}

/// Runs `f` on `worker`'s connection, after the calls queued before it.
async fn on<T, F>(worker: &Shared, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let call: Call = Box::new(move |conn| {
        // A panic rolls back the call's transaction (dropped while unwinding) and fails it alone.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)))
            .unwrap_or_else(|_| {
                Err(
                    Error::provider("an order store call panicked; it was rolled back")
                        .with_provider(STORE),
                )
            });
        let _ = tx.send(result);
    });
    let start = {
        let mut q = worker.queue();
        q.0.push_back(call);
        !std::mem::replace(&mut q.1, true)
    };
    if start {
        let mut drainer = Drainer {
            worker: Arc::clone(worker),
            ran: false,
        };
        drop(tokio::task::spawn_blocking(move || {
            drainer.ran = true;
            drainer.worker.drain();
        }));
    }
    rx.await.map_err(|_| {
        Error::unavailable("the order store call was dropped before it ran (shutting down)")
            .with_provider(STORE)
    })?
}

#[derive(Clone)]
pub(super) struct SqliteOrders {
    /// Every write, and reads inside a write's transaction.
    conn: Shared,
    /// Reads on their own (`get`, `list`): in WAL mode they see the last commit and neither
    /// wait for a write nor hold one up.
    reader: Shared,
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
        let read_path = path.clone();
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
        // Opened after the writer has migrated the schema.
        let reader = tokio::task::spawn_blocking(move || -> Result<Connection> {
            let conn = Connection::open(&read_path).map_err(db_error)?;
            conn.busy_timeout(Duration::from_secs(5))
                .map_err(db_error)?;
            conn.pragma_update(None, "query_only", true)
                .map_err(db_error)?;
            Ok(conn)
        })
        .await
        .map_err(|e| Error::provider(format!("order store open did not finish: {e}")))??;
        Ok(SqliteOrders {
            conn: Worker::new(conn),
            reader: Worker::new(reader),
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
        on(&self.conn, f).await
    }

    /// A read on the reading connection.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        on(&self.reader, move |conn| f(conn)).await
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
        self.read(move |conn| get(conn, &id)).await
    }

    pub(super) async fn list(&self, limit: usize, before: Option<i64>) -> Result<Page> {
        self.read(move |conn| {
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
            async move {
                // An error here (a panic in the commit) has dropped the group's senders: their
                // callers get an error.
                let _ = on(&conn, move |conn| {
                    group::commit_group(conn, &outbox, batch);
                    Ok(())
                })
                .await;
            }
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

    /// On the reading connection: a scan of every order must not hold up the writes queued
    /// behind it.
    pub(super) async fn status_counts(&self) -> Result<Vec<(String, i64)>> {
        self.read(|conn| {
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

#[cfg(test)]
mod worker_tests {
    use std::collections::HashSet;

    use super::*;

    fn worker() -> Shared {
        Worker::new(Connection::open_in_memory().unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_waiting_calls_hold_no_thread_each() {
        let w = worker();
        // 1,000 calls at once: with a blocking mutex each would have taken a thread of the
        // blocking pool while it waited.
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..1000u32 {
            let w = Arc::clone(&w);
            calls.spawn(async move {
                let (n, thread) = on(&w, move |conn| {
                    let n: u32 = conn
                        .query_row("SELECT ?1 + 1", [i], |r| r.get(0))
                        .map_err(db_error)?;
                    Ok((n, std::thread::current().id()))
                })
                .await
                .unwrap();
                assert_eq!(n, i + 1);
                thread
            });
        }
        let mut threads = HashSet::new();
        while let Some(thread) = calls.join_next().await {
            threads.insert(thread.unwrap());
        }
        assert!(
            threads.len() <= 4,
            "the calls ran on {} threads",
            threads.len()
        );
    }

    #[tokio::test]
    async fn a_panicking_call_fails_alone() {
        let w = worker();
        let e = on(&w, |_| -> Result<()> { panic!("boom") })
            .await
            .unwrap_err();
        assert!(e.to_string().contains("panicked"), "{e}");
        let one: i64 = on(&w, |conn| {
            conn.query_row("SELECT 1", [], |r| r.get(0))
                .map_err(db_error)
        })
        .await
        .unwrap();
        assert_eq!(one, 1);
    }
}
