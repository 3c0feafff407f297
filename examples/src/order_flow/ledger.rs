//! What the job handlers delivered, and the shop's own business metrics.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;

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

/// Per-order record of delivered effects; the evidence used when a provider (a real one) cannot
/// be asked what it received.
#[derive(Debug, Default)]
pub struct Ledger {
    orders: Mutex<BTreeMap<String, Delivered>>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Ledger::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Delivered>> {
        self.orders.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An email of `template` for `order_id` was accepted by `provider`.
    pub fn email_sent(&self, order_id: &str, template: &str, provider: &str) {
        self.lock()
            .entry(order_id.to_owned())
            .or_default()
            .emails
            .push((template.to_owned(), provider.to_owned()));
    }

    /// The order's analytics row was appended.
    pub fn row_appended(&self, order_id: &str) {
        self.lock()
            .entry(order_id.to_owned())
            .or_default()
            .rows_appended += 1;
    }

    /// The order's analytics row was updated.
    pub fn row_updated(&self, order_id: &str) {
        self.lock()
            .entry(order_id.to_owned())
            .or_default()
            .rows_updated += 1;
    }

    /// A notification about `event` of the order was published.
    pub fn notified(&self, order_id: &str, event: &str) {
        *self
            .lock()
            .entry(order_id.to_owned())
            .or_default()
            .notifications
            .entry(event.to_owned())
            .or_default() += 1;
    }

    /// What was delivered for `order_id`.
    pub fn get(&self, order_id: &str) -> Delivered {
        self.lock().get(order_id).cloned().unwrap_or_default()
    }

    /// Emails sent per provider.
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
/// twice (its lease expired mid-delivery) is recognised by its idempotency key.
#[derive(Debug, Default)]
pub struct OrderMetrics {
    inner: Mutex<MetricsState>,
}

#[derive(Debug, Default)]
struct MetricsState {
    seen: HashSet<String>,
    values: BusinessMetrics,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusinessEvent {
    /// An order was paid.
    Paid,
    /// A payment was declined.
    Failed,
    /// A refund was issued.
    Refunded,
}

impl OrderMetrics {
    /// Zeroed counters.
    pub fn new() -> Self {
        OrderMetrics::default()
    }

    /// Records `event` for `amount_minor` of `currency`, once per `key`. Returns `false` for a key
    /// seen before.
    pub fn record(
        &self,
        key: &str,
        event: BusinessEvent,
        currency: &str,
        amount_minor: i64,
    ) -> bool {
        let mut st = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if !st.seen.insert(key.to_owned()) {
            st.values.duplicates_ignored += 1;
            return false;
        }
        let v = &mut st.values;
        match event {
            BusinessEvent::Paid => {
                v.orders_paid += 1;
                *v.revenue_minor.entry(currency.to_owned()).or_default() += amount_minor;
            }
            BusinessEvent::Failed => v.payments_failed += 1,
            BusinessEvent::Refunded => {
                v.refunds += 1;
                *v.refunded_minor.entry(currency.to_owned()).or_default() += amount_minor;
            }
        }
        true
    }

    /// The counters now.
    pub fn snapshot(&self) -> BusinessMetrics {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values
            .clone()
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
        assert!(m.record("evt_1/metrics", BusinessEvent::Paid, "USD", 5998));
        assert!(!m.record("evt_1/metrics", BusinessEvent::Paid, "USD", 5998));
        assert!(m.record("evt_2/metrics", BusinessEvent::Refunded, "USD", 1000));
        assert!(m.record("evt_3/metrics", BusinessEvent::Failed, "USD", 100));
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
}
