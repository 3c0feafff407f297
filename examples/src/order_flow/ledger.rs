//! What the job handlers delivered, and the shop's own business metrics.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, PoisonError};

use integrations_core::Result;
use serde::{Deserialize, Serialize};

use super::journal::Journal;

/// The effects delivered for one order, as the handlers saw them succeed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Delivered {
    /// `(template, provider that served it)` per email sent.
    pub emails: Vec<(String, String)>,
    /// Analytics rows appended (or found already present).
    pub rows_appended: u32,
    /// Analytics rows updated.
    pub rows_updated: u32,
    /// Notifications published (or deduplicated by the notifier), by event.
    pub notifications: BTreeMap<String, u32>,
}

impl Delivered {
    /// Emails of `template` sent.
    pub fn emails_of(&self, template: &str) -> usize {
        self.emails.iter().filter(|(t, _)| t == template).count()
    }
}

/// One delivery, as journaled.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Delivery {
    Email {
        order_id: String,
        template: String,
        provider: String,
    },
    RowAppended {
        order_id: String,
    },
    RowUpdated {
        order_id: String,
    },
    Notified {
        order_id: String,
        event: String,
    },
}

impl Delivery {
    /// Whether `kept` keeps this kind of delivery per order.
    fn kept_by(&self, kept: StandIns) -> bool {
        match self {
            Delivery::Email { .. } => kept.emails,
            Delivery::RowAppended { .. } | Delivery::RowUpdated { .. } => kept.rows,
            Delivery::Notified { .. } => kept.notifications,
        }
    }

    fn apply(self, orders: &mut BTreeMap<String, Delivered>) {
        match self {
            Delivery::Email {
                order_id,
                template,
                provider,
            } => orders
                .entry(order_id)
                .or_default()
                .emails
                .push((template, provider)),
            Delivery::RowAppended { order_id } => {
                orders.entry(order_id).or_default().rows_appended += 1;
            }
            Delivery::RowUpdated { order_id } => {
                orders.entry(order_id).or_default().rows_updated += 1;
            }
            Delivery::Notified { order_id, event } => {
                *orders
                    .entry(order_id)
                    .or_default()
                    .notifications
                    .entry(event)
                    .or_default() += 1;
            }
        }
    }
}

/// Which kinds of delivery the [`Ledger`] must keep per order: those whose provider cannot be
/// asked at the end of the run (a real email provider, the real sheet, SNS), for which the
/// handlers' records stand in as evidence. Where the provider is asked (the sandboxes, the
/// notifications file), keeping them too would only hold a second copy of every order's
/// effects in memory for the whole run (~0.8 KB an order, the largest part of what the main
/// job's harness grew by).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandIns {
    /// Emails sent.
    pub emails: bool,
    /// Analytics rows appended and updated.
    pub rows: bool,
    /// Notifications published.
    pub notifications: bool,
}

impl StandIns {
    /// Every kind.
    pub const ALL: StandIns = StandIns {
        emails: true,
        rows: true,
        notifications: true,
    };
}

/// Per-order record of delivered effects; the evidence used when a provider (a real one) cannot
/// be asked what it received. In memory ([`Ledger::new`]) or journaled ([`Ledger::open`]), so a
/// resumed run's report still sees what earlier processes delivered. It keeps in memory only
/// the kinds it must stand in for ([`Ledger::standing_in_for`]); the journal has every delivery.
///
/// It is written after the provider accepted, so it can miss a delivery (a crash in between)
/// or hold one twice (a crash after it and before the outbox marked the job done): evidence,
/// not the source of truth. A journal write that fails is logged, never turned into a failed
/// delivery (which would be retried, and sent twice).
#[derive(Debug)]
pub struct Ledger {
    orders: Mutex<BTreeMap<String, Delivered>>,
    journal: Option<Journal<Delivery>>,
    kept: StandIns,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            orders: Mutex::default(),
            journal: None,
            kept: StandIns::ALL,
        }
    }
}

impl Ledger {
    /// An empty ledger, in memory, keeping every kind.
    pub fn new() -> Self {
        Ledger::default()
    }

    /// The same ledger keeping per order only the kinds `kept` says, from now on and of what
    /// it holds already (a journaled ledger read back is trimmed to them).
    #[must_use]
    pub fn standing_in_for(mut self, kept: StandIns) -> Self {
        self.kept = kept;
        let orders = self
            .orders
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for d in orders.values_mut() {
            if !kept.emails {
                d.emails = Vec::new();
            }
            if !kept.rows {
                (d.rows_appended, d.rows_updated) = (0, 0);
            }
            if !kept.notifications {
                d.notifications = BTreeMap::new();
            }
        }
        orders.retain(|_, d| *d != Delivered::default());
        self
    }

    /// The ledger journaled in the file at `path`, with what was recorded there before.
    ///
    /// # Errors
    /// As [`Journal::open`].
    pub fn open(path: impl Into<std::path::PathBuf>) -> Result<Self> {
        let (journal, entries) = Journal::<Delivery>::open(path)?;
        let mut orders = BTreeMap::new();
        for d in entries {
            d.apply(&mut orders);
        }
        Ok(Ledger {
            orders: Mutex::new(orders),
            journal: Some(journal),
            kept: StandIns::ALL,
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Delivered>> {
        self.orders.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, d: Delivery) {
        let mut orders = self.lock();
        if let Some(j) = &self.journal
            && let Err(e) = j.append(&d)
        {
            tracing::error!(error = %e, delivery = ?d, "the ledger could not journal a delivery");
        }
        if d.kept_by(self.kept) {
            d.apply(&mut orders);
        }
    }

    /// An email of `template` for `order_id` was accepted by `provider`.
    pub fn email_sent(&self, order_id: &str, template: &str, provider: &str) {
        self.record(Delivery::Email {
            order_id: order_id.to_owned(),
            template: template.to_owned(),
            provider: provider.to_owned(),
        });
    }

    /// The order's analytics row was appended.
    pub fn row_appended(&self, order_id: &str) {
        self.record(Delivery::RowAppended {
            order_id: order_id.to_owned(),
        });
    }

    /// The order's analytics row was updated.
    pub fn row_updated(&self, order_id: &str) {
        self.record(Delivery::RowUpdated {
            order_id: order_id.to_owned(),
        });
    }

    /// A notification about `event` of the order was published.
    pub fn notified(&self, order_id: &str, event: &str) {
        self.record(Delivery::Notified {
            order_id: order_id.to_owned(),
            event: event.to_owned(),
        });
    }

    /// What was delivered for `order_id`, of the kinds this ledger keeps.
    pub fn get(&self, order_id: &str) -> Delivered {
        self.lock().get(order_id).cloned().unwrap_or_default()
    }

    /// Emails sent per provider (none counted unless the ledger keeps emails).
    pub fn emails_by_provider(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for d in self.lock().values() {
            for (_, provider) in &d.emails {
                *out.entry(provider.clone()).or_default() += 1;
            }
        }
        out
    }
}

/// Business counters fed by the outbox's `metrics` jobs, exactly once per job: a job delivered
/// twice (its lease expired mid-delivery, or its process died before marking it done) is
/// recognised by its idempotency key. The counted keys are a table of the shop's SQLite database
/// (`counted_jobs`, beside the orders, [`OrderMetrics::open`]), not a set in memory that grew
/// with the run; the counters are kept in memory and carry on, after a restart, from the table.
/// [`OrderMetrics::new`] keeps the table in a database in memory, for tests.
pub struct OrderMetrics {
    // One lock for both: a snapshot never sees a key counted in the table and not yet in the
    // counters.
    inner: Mutex<Counters>,
}

struct Counters {
    values: BusinessMetrics,
    conn: rusqlite::Connection,
}

impl std::fmt::Debug for OrderMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderMetrics")
            .field("values", &self.lock().values)
            .finish_non_exhaustive()
    }
}

impl Default for OrderMetrics {
    fn default() -> Self {
        OrderMetrics::new()
    }
}

const COUNTED: &str = "CREATE TABLE IF NOT EXISTS counted_jobs (
    key TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount_minor INTEGER NOT NULL
)";

fn db(what: &'static str) -> impl FnOnce(rusqlite::Error) -> integrations_core::Error {
    move |e| {
        integrations_core::Error::unavailable(format!("business counters: {what}: {e}"))
            .or_provider("order-store")
            .with_source(e)
    }
}

/// A snapshot of [`OrderMetrics`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BusinessMetrics {
    /// Orders paid.
    pub orders_paid: u64,
    /// Payments declined.
    pub payments_failed: u64,
    /// Refunds issued.
    pub refunds: u64,
    /// Revenue in minor units, by currency code.
    pub revenue_minor: BTreeMap<String, i64>,
    /// Refunded amounts in minor units, by currency code.
    pub refunded_minor: BTreeMap<String, i64>,
    /// Jobs seen a second time and not counted again.
    pub duplicates_ignored: u64,
}

/// What a `metrics` job records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusinessEvent {
    /// An order was paid.
    Paid,
    /// A payment was declined.
    Failed,
    /// A refund was issued.
    Refunded,
}

impl BusinessEvent {
    fn as_str(self) -> &'static str {
        match self {
            BusinessEvent::Paid => "paid",
            BusinessEvent::Failed => "failed",
            BusinessEvent::Refunded => "refunded",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            BusinessEvent::Paid,
            BusinessEvent::Failed,
            BusinessEvent::Refunded,
        ]
        .into_iter()
        .find(|e| e.as_str() == s)
    }
}

impl BusinessMetrics {
    fn count(&mut self, event: BusinessEvent, currency: &str, amount_minor: i64) {
        match event {
            BusinessEvent::Paid => {
                self.orders_paid += 1;
                *self.revenue_minor.entry(currency.to_owned()).or_default() += amount_minor;
            }
            BusinessEvent::Failed => self.payments_failed += 1,
            BusinessEvent::Refunded => {
                self.refunds += 1;
                *self.refunded_minor.entry(currency.to_owned()).or_default() += amount_minor;
            }
        }
    }
}

impl OrderMetrics {
    /// Zeroed counters, their counted keys in a database in memory (tests).
    ///
    /// # Panics
    /// If SQLite cannot make a database in memory.
    pub fn new() -> Self {
        let conn =
            rusqlite::Connection::open_in_memory().expect("SQLite opens a database in memory");
        conn.execute_batch(COUNTED)
            .expect("the counters' table applies to an empty database");
        OrderMetrics {
            inner: Mutex::new(Counters {
                values: BusinessMetrics::default(),
                conn,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Counters> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The counters whose counted keys are in the SQLite database at `path` (the shop's, its
    /// orders' file: the [`OrderBook`](super::orders::OrderBook) opens it first, in WAL mode),
    /// carrying on from what was counted there.
    ///
    /// # Errors
    /// [`Error::Unavailable`](integrations_core::Error::Unavailable) if the database cannot be
    /// opened or read, or holds an event it does not know.
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let conn = rusqlite::Connection::open(path).map_err(db("open the database"))?;
        // The order book writes the same file on its own connection.
        conn.busy_timeout(super::orders::BUSY_TIMEOUT)
            .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
            .and_then(|()| conn.execute_batch(COUNTED))
            .map_err(db("make the table"))?;
        let mut values = BusinessMetrics::default();
        {
            let mut stmt = conn
                .prepare("SELECT event, currency, amount_minor FROM counted_jobs")
                .map_err(db("read the counted jobs"))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?))
                })
                .map_err(db("read the counted jobs"))?;
            for row in rows {
                let (event, currency, amount) = row.map_err(db("read the counted jobs"))?;
                let event = BusinessEvent::parse(&event).ok_or_else(|| {
                    integrations_core::Error::unavailable(format!(
                        "business counters: {}: a counted job of an unknown event {event:?}",
                        path.display()
                    ))
                })?;
                values.count(event, &currency, amount);
            }
        }
        Ok(OrderMetrics {
            inner: Mutex::new(Counters { values, conn }),
        })
    }

    /// Records `event` for `amount_minor` of `currency`, once per `key`. Returns `false` for a key
    /// seen before.
    ///
    /// # Errors
    /// The database's write error: nothing was counted, and the job is retried.
    pub fn record(
        &self,
        key: &str,
        event: BusinessEvent,
        currency: &str,
        amount_minor: i64,
    ) -> Result<bool> {
        let mut c = self.lock();
        let inserted = c
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO counted_jobs (key, event, currency, amount_minor) \
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| {
                s.execute(rusqlite::params![
                    key,
                    event.as_str(),
                    currency,
                    amount_minor
                ])
            })
            .map_err(db("record a counted job"))?;
        if inserted == 0 {
            c.values.duplicates_ignored += 1;
            return Ok(false);
        }
        c.values.count(event, currency, amount_minor);
        Ok(true)
    }

    /// The counters now.
    pub fn snapshot(&self) -> BusinessMetrics {
        self.lock().values.clone()
    }
}

impl BusinessMetrics {
    /// The counters in the Prometheus text format, next to core's integration metrics.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            &mut out,
            "shop_orders_paid_total",
            "Orders paid.",
            self.orders_paid,
        );
        counter(
            &mut out,
            "shop_payments_failed_total",
            "Payments declined.",
            self.payments_failed,
        );
        counter(
            &mut out,
            "shop_refunds_total",
            "Refunds issued.",
            self.refunds,
        );
        for (name, help, map) in [
            (
                "shop_revenue_minor_total",
                "Revenue in minor units.",
                &self.revenue_minor,
            ),
            (
                "shop_refunded_minor_total",
                "Refunded, in minor units.",
                &self.refunded_minor,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (currency, v) in map {
                let _ = writeln!(out, "{name}{{currency=\"{currency}\"}} {v}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_count_each_job_once() {
        let m = OrderMetrics::new();
        assert!(
            m.record("evt_1/metrics", BusinessEvent::Paid, "USD", 5998)
                .unwrap()
        );
        assert!(
            !m.record("evt_1/metrics", BusinessEvent::Paid, "USD", 5998)
                .unwrap()
        );
        assert!(
            m.record("evt_2/metrics", BusinessEvent::Refunded, "USD", 1000)
                .unwrap()
        );
        assert!(
            m.record("evt_3/metrics", BusinessEvent::Failed, "USD", 100)
                .unwrap()
        );
        let s = m.snapshot();
        assert_eq!((s.orders_paid, s.refunds, s.payments_failed), (1, 1, 1));
        assert_eq!(s.revenue_minor["USD"], 5998);
        assert_eq!(s.duplicates_ignored, 1);
        let text = s.render_prometheus();
        assert!(text.contains("shop_orders_paid_total 1"), "{text}");
        assert!(
            text.contains("shop_revenue_minor_total{currency=\"USD\"} 5998"),
            "{text}"
        );
    }

    #[test]
    fn ledger_groups_by_order_and_provider() {
        let l = Ledger::new();
        l.email_sent("o1", "order_confirmation", "sendgrid");
        l.email_sent("o2", "order_confirmation", "sendgrid-backup");
        l.row_appended("o1");
        l.notified("o1", "order_confirmation");
        assert_eq!(l.get("o1").notifications["order_confirmation"], 1);
        assert_eq!(l.get("o1").emails_of("order_confirmation"), 1);
        assert_eq!(l.get("o1").rows_appended, 1);
        assert_eq!(l.get("missing"), Delivered::default());
        assert_eq!(l.emails_by_provider()["sendgrid-backup"], 1);
    }

    #[test]
    fn a_ledger_keeps_in_memory_only_what_it_stands_in_for_and_journals_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let rows_only = StandIns {
            emails: false,
            rows: true,
            notifications: false,
        };
        {
            let l = Ledger::open(&path).unwrap().standing_in_for(rows_only);
            l.email_sent("o1", "order_confirmation", "sendgrid");
            l.row_appended("o1");
            l.notified("o1", "order_confirmation");
            l.notified("o2", "order_confirmation");
            let o1 = l.get("o1");
            assert_eq!((o1.emails.len(), o1.rows_appended), (0, 1));
            assert!(o1.notifications.is_empty());
            // Nothing at all is kept for an order with only unkept deliveries.
            assert_eq!(l.lock().len(), 1);
        }
        // The journal has every delivery: read back keeping all, all are there; read back
        // trimmed, only the kept kinds are.
        let all = Ledger::open(&path).unwrap();
        assert_eq!(all.get("o1").emails_of("order_confirmation"), 1);
        assert_eq!(all.get("o2").notifications["order_confirmation"], 1);
        let trimmed = Ledger::open(&path).unwrap().standing_in_for(rows_only);
        assert_eq!(trimmed.get("o1").emails.len(), 0);
        assert_eq!(trimmed.get("o1").rows_appended, 1);
        assert_eq!(trimmed.get("o2"), Delivered::default());
        assert_eq!(trimmed.lock().len(), 1);
    }

    #[test]
    fn journaled_counters_and_ledger_carry_on_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (mp, lp) = (dir.path().join("shop.db"), dir.path().join("l.jsonl"));
        let order = crate::order_flow::orders::Order::sample("r", 1, None);
        {
            // As a run opens the shop's database: the order book first, on its own connection.
            let book = crate::order_flow::orders::OrderBook::open(&mp).unwrap();
            let m = OrderMetrics::open(&mp).unwrap();
            assert!(
                m.record("evt_1/metrics", BusinessEvent::Paid, "USD", 500)
                    .unwrap()
            );
            book.insert(order.clone()).unwrap();
            assert!(
                m.record("evt_3/metrics", BusinessEvent::Refunded, "EUR", 250)
                    .unwrap()
            );
            let l = Ledger::open(&lp).unwrap();
            l.email_sent("o1", "order_confirmation", "sendgrid");
            l.row_appended("o1");
            l.row_updated("o1");
            l.notified("o1", "order_confirmation");
        }
        let m = OrderMetrics::open(&mp).unwrap();
        assert!(
            !m.record("evt_1/metrics", BusinessEvent::Paid, "USD", 500)
                .unwrap()
        );
        assert!(
            m.record("evt_2/metrics", BusinessEvent::Paid, "USD", 700)
                .unwrap()
        );
        let s = m.snapshot();
        assert_eq!((s.orders_paid, s.revenue_minor["USD"]), (2, 1200));
        assert_eq!((s.refunds, s.refunded_minor["EUR"]), (1, 250));
        assert_eq!(s.duplicates_ignored, 1);
        let book = crate::order_flow::orders::OrderBook::open(&mp).unwrap();
        assert_eq!(book.get(&order.id).unwrap().unwrap().order, order);
        let l = Ledger::open(&lp).unwrap();
        let d = l.get("o1");
        assert_eq!((d.emails.len(), d.rows_appended, d.rows_updated), (1, 1, 1));
        assert_eq!(d.notifications["order_confirmation"], 1);
    }
}
