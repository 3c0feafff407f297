//! [`OrderBook`]: the shop's order store, a SQLite file in the run's directory.
//!
//! The orders were kept in memory (journaled to a file of JSON lines in a state directory) until
//! the scale bench found them to be the largest thing a long run kept: ~850 bytes an order with
//! their strings, growing with the run whatever the retention (`docs/scaling.md`). A shop keeps
//! its orders in a database, and so does the example now: `shop.db`, beside the outbox's file,
//! read back one order at a time. What the process holds for them is SQLite's page cache
//! (2 MiB by default), not the orders.
//!
//! rusqlite directly, not the outbox's store: the order book is the example's own table, with
//! statements of its own, and the outbox's connection is not the shop's to write to. The
//! journal's guarantees hold: a change is committed before it is acted on (WAL, `synchronous =
//! NORMAL`: a change survives the process being killed, not a power cut), and a run resumed
//! from its state directory finds its orders, payments, refunds and refund target again.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use integrations_core::{Error, Result};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Order, OrderRecord, OrderState};

/// The tables. `orders_by_number` serves [`OrderBook::last`]: ids are `ord_<run>_<n>`, so the
/// highest order number is the longest id, then the greatest.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    payment_id TEXT,
    refunded_minor INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS orders_by_number ON orders (length(id), id);
CREATE TABLE IF NOT EXISTS payments (
    payment_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refunds (
    order_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    minor INTEGER NOT NULL,
    PRIMARY KEY (order_id, number)
);
CREATE TABLE IF NOT EXISTS refund_target (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    order_id TEXT NOT NULL
);
";

/// How long a write waits for another connection's to the same file (the business counters',
/// [`OrderMetrics`](crate::order_flow::ledger::OrderMetrics)) before it fails.
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The columns of an [`OrderRecord`], in [`record`]'s order.
const RECORD: &str = "SELECT id, body, state, payment_id, refunded_minor FROM orders";

/// Orders read one at a time: the store's, or a list of them (tests).
pub trait Records: fmt::Debug {
    /// Calls `f` with every order, in the order of their ids.
    ///
    /// # Errors
    /// A read error of the store (`f` has seen the orders before it).
    fn each(&self, f: &mut dyn FnMut(&OrderRecord)) -> Result<()>;
}

impl Records for Vec<OrderRecord> {
    fn each(&self, f: &mut dyn FnMut(&OrderRecord)) -> Result<()> {
        self.iter().for_each(f);
        Ok(())
    }
}

/// The shop's order store: a SQLite file ([`OrderBook::open`]; a run's is `shop.db` in its
/// directory, so that a run resumed after a crash finds its orders, their payments and their
/// states again), or a database in memory for tests ([`OrderBook::new`]). Each change is
/// committed before the call returns.
pub struct OrderBook {
    conn: Mutex<Connection>,
    path: Option<PathBuf>,
}

impl fmt::Debug for OrderBook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrderBook")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Records for OrderBook {
    fn each(&self, f: &mut dyn FnMut(&OrderRecord)) -> Result<()> {
        self.for_each(f)
    }
}

/// A store error, naming the store and what it was doing.
fn db(what: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
    move |e| {
        Error::unavailable(format!("order store: {what}: {e}"))
            .or_provider("order-store")
            .with_source(e)
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| {
        Error::invalid_input("order", format!("cannot be stored as JSON: {e}")).with_source(e)
    })
}

/// A row of [`RECORD`] as an [`OrderRecord`]; a row that is not one is a conversion error.
fn record(row: &Row<'_>) -> rusqlite::Result<OrderRecord> {
    let parse = |i: usize, text: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, text.into())
    };
    let body: String = row.get(1)?;
    let state: String = row.get(2)?;
    Ok(OrderRecord {
        order: serde_json::from_str::<Order>(&body)
            .map_err(|e| parse(1, format!("not an order: {e}")))?,
        state: serde_json::from_str::<OrderState>(&state)
            .map_err(|e| parse(2, format!("not an order state: {e}")))?,
        payment_id: row.get(3)?,
        refunded_minor: row.get(4)?,
    })
}

impl OrderBook {
    /// An empty store in memory (SQLite's `:memory:`), for tests.
    ///
    /// # Panics
    /// If SQLite cannot make a database in memory.
    pub fn new() -> Self {
        let conn = Connection::open_in_memory().expect("SQLite opens a database in memory");
        conn.execute_batch(SCHEMA)
            .expect("the order store's schema applies to an empty database");
        OrderBook {
            conn: Mutex::new(conn),
            path: None,
        }
    }

    /// The store in the file at `path` (a run's is `shop.db`), with every order recorded there
    /// before.
    ///
    /// # Errors
    /// [`Error::Unavailable`] naming the file if it cannot be opened as a SQLite database, is
    /// not on a disk that can hold SQLite's write-ahead log, or its schema cannot be made.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let opened = |e: rusqlite::Error| {
            Error::unavailable(format!("order store {}: {e}", path.display()))
                .or_provider("order-store")
                .with_source(e)
        };
        let conn = Connection::open(&path).map_err(opened)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(opened)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::unavailable(format!(
                "order store {}: SQLite refused WAL mode (journal_mode is {mode})",
                path.display()
            ))
            .or_provider("order-store"));
        }
        // The business counters write the same file on a connection of their own: a write that
        // finds the other's in progress waits for it rather than failing with `SQLITE_BUSY`.
        // rusqlite's default is the same 5 s; set here because the two connections rely on it.
        conn.busy_timeout(BUSY_TIMEOUT).map_err(opened)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(opened)?;
        conn.execute_batch(SCHEMA).map_err(opened)?;
        Ok(OrderBook {
            conn: Mutex::new(conn),
            path: Some(path),
        })
    }

    /// The file, unless the store is in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores a new order in [`OrderState::Created`]; an order already stored is left as it is.
    ///
    /// # Errors
    /// The store's write error (nothing changed).
    pub fn insert(&self, order: Order) -> Result<()> {
        let (body, state) = (json(&order)?, json(&OrderState::Created)?);
        self.lock()
            .prepare_cached("INSERT OR IGNORE INTO orders (id, body, state) VALUES (?1, ?2, ?3)")
            .and_then(|mut s| s.execute(params![order.id, body, state]))
            .map_err(db("insert an order"))?;
        Ok(())
    }

    /// Links `order_id` to its payment intent and marks it pending.
    ///
    /// # Errors
    /// The store's write error (nothing changed).
    pub fn payment_created(&self, order_id: &str, payment_id: &str) -> Result<()> {
        let pending = json(&OrderState::PaymentPending)?;
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(db("link a payment"))?;
        tx.prepare_cached("UPDATE orders SET payment_id = ?2, state = ?3 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![order_id, payment_id, pending]))
            .and_then(|_| {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO payments (payment_id, order_id) VALUES (?1, ?2)",
                )?
                .execute(params![payment_id, order_id])
            })
            .map_err(db("link a payment"))?;
        tx.commit().map_err(db("link a payment"))
    }

    /// Sets an order's state.
    ///
    /// # Errors
    /// The store's write error (nothing changed).
    pub fn set_state(&self, order_id: &str, state: OrderState) -> Result<()> {
        let state = json(&state)?;
        self.lock()
            .prepare_cached("UPDATE orders SET state = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![order_id, state]))
            .map_err(db("set an order's state"))?;
        Ok(())
    }

    /// Records the order's refund number `number`, of `minor` units, once: recording the same
    /// refund again changes nothing.
    ///
    /// # Errors
    /// The store's write error (nothing changed).
    pub fn refunded(&self, order_id: &str, number: u32, minor: i64) -> Result<()> {
        let refunded = json(&OrderState::PartiallyRefunded)?;
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(db("record a refund"))?;
        let new = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO refunds (order_id, number, minor) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![order_id, number, minor]))
            .map_err(db("record a refund"))?;
        if new == 1 {
            tx.prepare_cached(
                "UPDATE orders SET refunded_minor = refunded_minor + ?2, state = ?3 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![order_id, minor, refunded]))
            .map_err(db("record a refund"))?;
        }
        tx.commit().map_err(db("record a refund"))
    }

    /// The order chosen for the run's refund: the one recorded before, else `candidate`, which
    /// is recorded (so a resumed run refunds the same order, whatever became of the others).
    ///
    /// # Errors
    /// The store's write or read error.
    pub fn refund_target(&self, candidate: Option<String>) -> Result<Option<String>> {
        let conn = self.lock();
        if let Some(order_id) = candidate {
            conn.execute(
                "INSERT OR IGNORE INTO refund_target (one, order_id) VALUES (1, ?1)",
                [order_id],
            )
            .map_err(db("record the refund's order"))?;
        }
        conn.query_row("SELECT order_id FROM refund_target", [], |r| r.get(0))
            .optional()
            .map_err(db("read the refund's order"))
    }

    /// One order.
    ///
    /// # Errors
    /// The store's read error.
    pub fn get(&self, order_id: &str) -> Result<Option<OrderRecord>> {
        self.lock()
            .prepare_cached(&format!("{RECORD} WHERE id = ?1"))
            .and_then(|mut s| s.query_row([order_id], record).optional())
            .map_err(db("read an order"))
    }

    /// Whether the store has `order_id` (without reading its record, as [`get`](Self::get)
    /// does).
    ///
    /// # Errors
    /// The store's read error.
    pub fn contains(&self, order_id: &str) -> Result<bool> {
        self.lock()
            .prepare_cached("SELECT 1 FROM orders WHERE id = ?1")
            .and_then(|mut s| s.exists([order_id]))
            .map_err(db("look an order up"))
    }

    /// The order paid by payment intent `payment_id`.
    ///
    /// # Errors
    /// The store's read error.
    pub fn by_payment(&self, payment_id: &str) -> Result<Option<OrderRecord>> {
        self.lock()
            .prepare_cached(&format!(
                "{RECORD} WHERE id = (SELECT order_id FROM payments WHERE payment_id = ?1)"
            ))
            .and_then(|mut s| s.query_row([payment_id], record).optional())
            .map_err(db("read an order by its payment"))
    }

    /// How many orders have a payment intent and a checkout that did not fail: those whose
    /// payment event is owed. Counted by SQLite (a scan of the table, without decoding the
    /// orders): the run asks once, when checkout and the refund are over.
    ///
    /// # Errors
    /// The store's read error.
    pub fn paying(&self) -> Result<u64> {
        // A failed state is stored as `{"Failed":"why"}` (serde's external tagging; tested):
        // derived from the state, not a column every write must keep in step with it.
        self.lock()
            .prepare_cached(
                "SELECT count(*) FROM orders \
                 WHERE payment_id IS NOT NULL AND state NOT LIKE '{\"Failed\":%'",
            )
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(db("count the orders with a payment"))
    }

    /// The last order `f` holds for: the highest order number. Ids are `ord_<run>_<n>`, `n` of
    /// four digits at least, so they compare by length first; by text alone `ord_r_9999` comes
    /// after `ord_r_29999` (the refund of a 30,000-order run then went to order 9,999, whose
    /// intent the Stripe sandbox had forgotten by the end).
    ///
    /// # Errors
    /// The store's read error.
    pub fn last(&self, f: impl Fn(&OrderRecord) -> bool) -> Result<Option<OrderRecord>> {
        let mut found = None;
        self.scan("ORDER BY length(id) DESC, id DESC", &mut |r| {
            if f(&r) {
                found = Some(r);
            }
            found.is_none()
        })?;
        Ok(found)
    }

    /// Runs `f` over every order, by id, one at a time (nothing but the order at hand is in
    /// memory). `f` must not call the store: it runs under its lock.
    ///
    /// # Errors
    /// The store's read error (`f` has seen the orders before it).
    pub fn for_each(&self, f: &mut dyn FnMut(&OrderRecord)) -> Result<()> {
        self.scan("ORDER BY id", &mut |r| {
            f(&r);
            true
        })
    }

    /// Reads the orders in the order of `order_by`, one at a time, while `f` returns `true`.
    fn scan(&self, order_by: &str, f: &mut dyn FnMut(OrderRecord) -> bool) -> Result<()> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(&format!("{RECORD} {order_by}"))
            .map_err(db("read the orders"))?;
        let mut rows = stmt.query([]).map_err(db("read the orders"))?;
        while let Some(row) = rows.next().map_err(db("read the orders"))? {
            if !f(record(row).map_err(db("read the orders"))?) {
                break;
            }
        }
        Ok(())
    }

    /// Runs `f` over every order's id, in order, without reading the orders. `f` must not call
    /// the store.
    ///
    /// # Errors
    /// The store's read error.
    pub fn for_each_id(&self, f: &mut dyn FnMut(&str)) -> Result<()> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT id FROM orders ORDER BY id")
            .map_err(db("read the order ids"))?;
        let mut rows = stmt.query([]).map_err(db("read the order ids"))?;
        while let Some(row) = rows.next().map_err(db("read the order ids"))? {
            f(row
                .get_ref(0)
                .and_then(|v| Ok(v.as_str()?))
                .map_err(db("read the order ids"))?);
        }
        Ok(())
    }
}

impl Default for OrderBook {
    fn default() -> Self {
        OrderBook::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(book: &OrderBook) -> Vec<String> {
        let mut ids = Vec::new();
        book.for_each_id(&mut |id| ids.push(id.to_owned())).unwrap();
        ids
    }

    #[test]
    fn the_last_order_is_the_highest_number_not_the_last_text() {
        let book = OrderBook::new();
        for n in [7, 9_999, 10_000, 29_999, 30_000] {
            book.insert(Order::sample("r", n, None)).unwrap();
        }
        for n in [9_999, 29_999] {
            book.set_state(&format!("ord_r_{n}"), OrderState::Paid)
                .unwrap();
        }
        let paid = book.last(|r| r.state.is_paid()).unwrap().unwrap();
        assert_eq!(paid.order.id, "ord_r_29999");
        let last = book.last(|_| true).unwrap().unwrap();
        assert_eq!(last.order.id, "ord_r_30000");
        assert!(book.last(|r| r.refunded_minor > 0).unwrap().is_none());
        // By id, as text, for every reader.
        assert_eq!(
            ids(&book),
            [
                "ord_r_0007",
                "ord_r_10000",
                "ord_r_29999",
                "ord_r_30000",
                "ord_r_9999"
            ]
        );
    }

    #[test]
    fn book_tracks_state_and_payment_links() {
        let book = OrderBook::new();
        let o = Order::sample("r", 1, None);
        book.insert(o.clone()).unwrap();
        assert_eq!(book.get(&o.id).unwrap().unwrap().state, OrderState::Created);
        book.payment_created(&o.id, "pi_1").unwrap();
        let pending = book.by_payment("pi_1").unwrap().unwrap();
        assert_eq!(
            (pending.order, pending.state, pending.payment_id.as_deref()),
            (o.clone(), OrderState::PaymentPending, Some("pi_1"))
        );
        assert!(book.by_payment("pi_2").unwrap().is_none());
        book.set_state(&o.id, OrderState::Paid).unwrap();
        book.insert(o.clone()).unwrap();
        let r = book.get(&o.id).unwrap().unwrap();
        assert_eq!(r.state, OrderState::Paid, "kept");
        book.refunded(&o.id, 1, 100).unwrap();
        book.refunded(&o.id, 1, 100).unwrap();
        let r = book.get(&o.id).unwrap().unwrap();
        assert_eq!(r.state, OrderState::PartiallyRefunded);
        assert!(r.state.is_paid() && r.state.is_final());
        assert_eq!(r.refunded_minor, 100, "a refund recorded twice counts once");
        book.refunded(&o.id, 2, 50).unwrap();
        assert_eq!(book.get(&o.id).unwrap().unwrap().refunded_minor, 150);
        assert_eq!(ids(&book).len(), 1);
        assert_eq!(book.paying().unwrap(), 1);
        book.set_state(&o.id, OrderState::Failed("timeout".into()))
            .unwrap();
        assert_eq!(book.paying().unwrap(), 0, "a failed checkout owes no event");
        book.set_state(&o.id, OrderState::PartiallyRefunded)
            .unwrap();
        assert_eq!(book.paying().unwrap(), 1);
        // A failed checkout tried again (a resumed run) links its payment anew: owed again.
        book.set_state(&o.id, OrderState::Failed("timeout".into()))
            .unwrap();
        book.payment_created(&o.id, "pi_1").unwrap();
        assert_eq!(book.paying().unwrap(), 1);
        assert!(book.contains(&o.id).unwrap() && !book.contains("ord_r_0002").unwrap());
        assert!(book.get("ord_r_0002").unwrap().is_none());
        assert_eq!(book.refund_target(None).unwrap(), None);
        assert_eq!(
            book.refund_target(Some("a".into())).unwrap().as_deref(),
            Some("a")
        );
        assert_eq!(
            book.refund_target(Some("b".into())).unwrap().as_deref(),
            Some("a")
        );
    }

    #[test]
    fn every_kind_of_state_comes_back_as_it_was_stored() {
        let book = OrderBook::new();
        let states = [
            OrderState::Created,
            OrderState::PaymentPending,
            OrderState::Paid,
            OrderState::PartiallyRefunded,
            OrderState::Declined("insufficient_funds".into()),
            OrderState::Failed("stripe unavailable: 503 \"quoted\"\n".into()),
        ];
        for (n, state) in states.iter().enumerate() {
            let o = Order::sample("s", n, None);
            book.insert(o.clone()).unwrap();
            book.set_state(&o.id, state.clone()).unwrap();
        }
        let mut seen = Vec::new();
        book.for_each(&mut |r| {
            assert_eq!(r.order, Order::sample("s", seen.len(), None));
            seen.push(r.state.clone());
        })
        .unwrap();
        assert_eq!(seen, states);
    }

    #[test]
    fn a_stored_book_comes_back_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders.db");
        let (a, b) = (Order::sample("r", 1, None), Order::sample("r", 2, None));
        {
            let book = OrderBook::open(&path).unwrap();
            book.insert(a.clone()).unwrap();
            book.payment_created(&a.id, "pi_a").unwrap();
            book.set_state(&a.id, OrderState::Paid).unwrap();
            book.refunded(&a.id, 1, 250).unwrap();
            book.refund_target(Some(a.id.clone())).unwrap();
            book.insert(b.clone()).unwrap();
            book.set_state(&b.id, OrderState::Failed("unavailable".into()))
                .unwrap();
        }
        let book = OrderBook::open(&path).unwrap();
        assert_eq!(book.path(), Some(path.as_path()));
        let ra = book.get(&a.id).unwrap().unwrap();
        assert_eq!(ra.order, a);
        assert_eq!(ra.state, OrderState::PartiallyRefunded);
        assert_eq!(
            (ra.payment_id.as_deref(), ra.refunded_minor),
            (Some("pi_a"), 250)
        );
        assert_eq!(book.by_payment("pi_a").unwrap().unwrap().order.id, a.id);
        assert!(!book.get(&b.id).unwrap().unwrap().state.is_final());
        assert_eq!(book.refund_target(None).unwrap(), Some(a.id.clone()));
        book.refunded(&a.id, 1, 250).unwrap();
        assert_eq!(book.get(&a.id).unwrap().unwrap().refunded_minor, 250);
        assert_eq!(ids(&book), [a.id.clone(), b.id.clone()]);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders.db");
        std::fs::write(&path, b"{\"op\":\"order\"}\n".repeat(64)).unwrap();
        let e = OrderBook::open(&path).unwrap_err();
        assert!(e.to_string().contains("orders.db"), "{e}");
    }

    #[test]
    fn a_row_that_is_not_an_order_is_an_error_not_a_skipped_order() {
        let book = OrderBook::new();
        book.insert(Order::sample("r", 1, None)).unwrap();
        book.lock()
            .execute("UPDATE orders SET state = 'not json'", [])
            .unwrap();
        let e = book.for_each(&mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("not an order state"), "{e}");
        assert!(book.get("ord_r_0001").is_err());
    }
}
