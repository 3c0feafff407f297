//! After the run: what the providers themselves received, and the invariants checked against it.
//!
//! Sandboxes are asked directly (Stripe's per-intent counters, the messages each SendGrid
//! sandbox accepted, the rows of the sheet, the lines of the notifications file). A real provider
//! that cannot be asked — SendGrid and SES keep no queryable outbox, and reading a whole real
//! sheet back is beyond an example — is judged from the job handlers' own records (the ledger),
//! and the report says so.

use std::collections::{BTreeMap, HashMap};

use futures_util::StreamExt;
use integrations_core::Result;
use integrations_stripe::api::ListPaymentIntents;
use serde_json::Value;

use super::jobs::{OrderEventKind, SHEET};
use super::ledger::Ledger;
use super::notifier::JsonlNotifier;
use super::orders::OrderBook;
use super::providers::Services;

/// What the payment provider says about the run's payments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaymentAudit {
    /// Where the numbers come from.
    pub source: String,
    /// Payment intents created for this run's orders.
    pub intents: u64,
    /// Orders with more than one payment intent (should be none).
    pub orders_with_several_intents: Vec<String>,
    /// Intents charged successfully more than once (should be none); empty when unknown.
    pub intents_charged_twice: Vec<String>,
    /// Most successful charges on one intent (`None` when the provider cannot say).
    pub max_charges_per_intent: Option<u64>,
    /// Successful charges per order id (sandbox only).
    pub charges_by_order: BTreeMap<String, u64>,
    /// Responses replayed for a reused idempotency key (sandbox only).
    pub idempotent_replays: Option<u64>,
    /// Refunds made (sandbox only).
    pub refunds: Option<u64>,
}

/// The effects delivered, per order, as the receiving side saw them.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// Where the emails were counted.
    pub email_source: &'static str,
    /// `(template, provider)` per email per order.
    pub emails: HashMap<String, Vec<(String, String)>>,
    /// Where the rows were counted.
    pub rows_source: &'static str,
    /// The row's status column per order.
    pub rows: HashMap<String, String>,
    /// Rows per order (counted in the sheet; empty when the sheet cannot be read).
    pub row_counts: HashMap<String, usize>,
    /// Where the notifications were counted.
    pub notifications_source: &'static str,
    /// Notifications per order, by event (`order_confirmation`, …).
    pub notifications: HashMap<String, Counts>,
    /// Whether the emails were counted by the email providers themselves (sandboxes).
    pub emails_at_provider: bool,
    /// Whether the rows were counted in the sheet itself.
    pub rows_at_provider: bool,
    /// Whether the notifications were counted where they were published (the local file).
    pub notifications_at_provider: bool,
}

/// Counts by name, for the one to three notification events of an order: a `Vec` of pairs,
/// because a `BTreeMap`'s first node (~400 bytes) for each order's one or two entries was the
/// largest part of the evidence a long run builds at its end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts(Vec<(String, usize)>);

impl Counts {
    /// The count of `name` (0 when absent).
    pub fn get(&self, name: &str) -> usize {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or(0, |(_, n)| *n)
    }

    /// Sets the count of `name`.
    pub fn set(&mut self, name: &str, n: usize) {
        match self.0.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = n,
            None => self.0.push((name.to_owned(), n)),
        }
    }

    /// Adds one to the count of `name`.
    pub fn add_one(&mut self, name: &str) {
        let n = self.get(name);
        self.set(name, n + 1);
    }

    /// Every `(name, count)`, in the order first counted.
    pub fn iter(&self) -> impl Iterator<Item = (&str, usize)> {
        self.0.iter().map(|(k, n)| (k.as_str(), *n))
    }
}

impl FromIterator<(String, usize)> for Counts {
    fn from_iter<I: IntoIterator<Item = (String, usize)>>(iter: I) -> Self {
        let mut counts = Counts::default();
        for (name, n) in iter {
            counts.set(&name, counts.get(&name) + n);
        }
        counts
    }
}

impl Evidence {
    /// Emails of `template` for `order_id`.
    pub fn emails_of(&self, order_id: &str, template: &str) -> usize {
        self.emails
            .get(order_id)
            .map_or(0, |v| v.iter().filter(|(t, _)| t == template).count())
    }

    /// Emails beyond the first of each template for each order.
    pub fn duplicate_emails(&self) -> u64 {
        let mut extra = 0;
        for emails in self.emails.values() {
            let mut per_template: BTreeMap<&str, u64> = BTreeMap::new();
            for (template, _) in emails {
                *per_template.entry(template.as_str()).or_default() += 1;
            }
            extra += per_template.values().map(|n| n - 1).sum::<u64>();
        }
        extra
    }

    /// Notifications about `event` for `order_id`.
    pub fn notifications_of(&self, order_id: &str, event: OrderEventKind) -> usize {
        self.notifications
            .get(order_id)
            .map_or(0, |m| m.get(event.template()))
    }
}

/// Asks Stripe (the sandbox's counters, or the real API's list of intents) about the payments.
///
/// # Errors
/// The API's errors (real Stripe).
pub async fn payments(services: &Services, book: &OrderBook, since: i64) -> Result<PaymentAudit> {
    let mut audit = PaymentAudit::default();
    let ours = |v: Option<&str>| v.and_then(|id| book.get(id)).map(|r| r.order.id);
    let mut per_order: BTreeMap<String, u64> = BTreeMap::new();
    if let Some(sandbox) = &services.stripe_sandbox {
        // Tallied as the sandbox announced them: it keeps only its latest objects.
        audit.source = "Stripe sandbox events, tallied as delivered".into();
        let mut max = 0;
        services.payment_tally.for_each(|order, p| {
            let Some(order) = ours(Some(order)) else {
                return;
            };
            let charges = u64::from(p.successful_charges);
            // With one intent, its charges are the order's; with several (a failure of its
            // own) at least one, or two when one intent was seen charged twice.
            let on_one = match (p.intents, p.an_intent_charged_twice) {
                (_, true) => charges.max(2),
                (0 | 1, false) => charges,
                (_, false) => charges.min(1),
            };
            max = max.max(on_one);
            audit.charges_by_order.insert(order.clone(), charges);
            per_order.insert(order, u64::from(p.intents));
        });
        audit.intents_charged_twice = services.payment_tally.charged_twice();
        let c = sandbox.counters();
        audit.max_charges_per_intent = Some(max);
        audit.idempotent_replays = Some(c.idempotent_replays);
        audit.refunds = Some(c.refunds);
    } else {
        audit.source = "Stripe API: GET /v1/payment_intents (charges per intent not listed)".into();
        let mut intents = services
            .stripe_client
            .payment_intents_stream(ListPaymentIntents::default());
        while let Some(pi) = intents.next().await {
            let pi = pi?;
            if pi.created < since {
                break;
            }
            if let Some(order) = ours(pi.metadata.get("order_id").map(String::as_str)) {
                *per_order.entry(order).or_default() += 1;
            }
        }
    }
    audit.intents = per_order.values().sum();
    audit.orders_with_several_intents = per_order
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(k, _)| k)
        .collect();
    Ok(audit)
}

/// The emails the SendGrid sandboxes accepted, tallied as each is accepted: `(template,
/// provider)` per order. A sandbox keeps only its latest messages (its `message_retention`);
/// the tally keeps what the invariants need of every one, a few dozen bytes an email.
#[derive(Debug, Default)]
pub struct EmailTally {
    by_order: std::sync::Mutex<HashMap<String, Vec<(String, String)>>>,
}

impl EmailTally {
    /// Tallies every message `sandbox` accepts from now on, as served by `provider`.
    pub fn watch(
        self: &std::sync::Arc<Self>,
        sandbox: &integrations_sendgrid::sandbox::Sandbox,
        provider: &str,
    ) {
        let (tally, provider) = (self.clone(), provider.to_owned());
        sandbox.on_accept(move |m| tally.record(&m.body, &provider));
    }

    /// Tallies one accepted message's body (its `order_id` custom argument and first category,
    /// the template); others are left out.
    pub fn record(&self, body: &Value, provider: &str) {
        let (Some(order), Some(template)) =
            (custom_arg(body, "order_id"), body["categories"][0].as_str())
        else {
            return;
        };
        self.by_order
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(order.to_owned())
            // Almost always one email an order: `or_default` + `push` would reserve four
            // (~190 bytes an order, most of the tally).
            .or_insert_with(|| Vec::with_capacity(1))
            .push((template.to_owned(), provider.to_owned()));
    }

    /// The tally so far, moved out (the tally is left empty): taken once, by the end-of-run
    /// audit, without a second copy of every order's emails at the run's memory peak.
    pub fn take(&self) -> HashMap<String, Vec<(String, String)>> {
        std::mem::take(
            &mut *self
                .by_order
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

fn custom_arg<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    body["custom_args"][name]
        .as_str()
        .or_else(|| body["personalizations"][0]["custom_args"][name].as_str())
}

/// Rows of the sheet read back at a time.
const ROWS_PAGE: usize = 10_000;

/// Collects what the email providers, the sheet and the notifier received.
///
/// # Errors
/// If the notifications file cannot be read back.
pub async fn evidence(services: &Services, ledger: &Ledger, book: &OrderBook) -> Result<Evidence> {
    let mut ev = Evidence::default();
    // Copied only where a real provider cannot be asked and the ledger must stand in.
    let ids = || book.ids();
    let stand_ins = services.stand_ins();
    if !stand_ins.emails {
        // Tallied as the sandboxes accepted them: they keep only their latest messages.
        ev.email_source = "messages accepted by the SendGrid sandboxes";
        ev.emails_at_provider = true;
        ev.emails = services.email_tally.take();
    } else {
        ev.email_source = "job handlers' records (a real email provider cannot be asked)";
        for id in ids() {
            let emails = ledger.get(&id).emails;
            ev.emails.insert(id, emails);
        }
    }
    if let Some(sandbox) = services.sheets_sandbox.as_ref().filter(|_| !stand_ins.rows) {
        ev.rows_source = "rows of the Sheets sandbox";
        ev.rows_at_provider = true;
        // A page at a time: a copy of the whole sheet beside the maps built from it was most of
        // what the end of a long run added to its peak.
        let mut first = 0;
        while let Some(page) = sandbox
            .rows_page(sandbox.spreadsheet_id(), SHEET, first, ROWS_PAGE)
            .filter(|p| !p.is_empty())
        {
            first += page.len();
            for row in page {
                let mut cells = row.into_iter();
                if let (Some(key), Some(status)) = (cells.next(), cells.next()) {
                    if book.contains(&key) {
                        *ev.row_counts.entry(key.clone()).or_default() += 1;
                    }
                    ev.rows.insert(key, status);
                }
            }
        }
    } else {
        ev.rows_source = "job handlers' records (the real sheet is not read back)";
        for id in ids() {
            let d = ledger.get(&id);
            if d.rows_updated > 0 {
                ev.rows.insert(id, "partially_refunded".into());
            } else if d.rows_appended > 0 {
                ev.rows.insert(id, "paid".into());
            }
        }
    }
    if let Some(path) = services
        .notifications_file
        .as_ref()
        .filter(|_| !stand_ins.notifications)
    {
        ev.notifications_source = "lines of notifications.jsonl";
        ev.notifications_at_provider = true;
        // Streamed: the file has a line per notification of the run.
        JsonlNotifier::for_each_line(path, |line| {
            if let (Some(order), Some(event)) = (
                line.attributes.get("order_id"),
                line.attributes.get("event"),
            ) {
                ev.notifications
                    .entry(order.clone())
                    .or_default()
                    .add_one(event);
            }
        })?;
    } else {
        ev.notifications_source = "job handlers' records (SNS is not read back)";
        for id in ids() {
            let by_event = ledger.get(&id).notifications;
            ev.notifications.insert(
                id,
                by_event.into_iter().map(|(k, v)| (k, v as usize)).collect(),
            );
        }
    }
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_set_and_merge_by_name() {
        let mut c = Counts::default();
        assert_eq!(c.get("order_confirmation"), 0);
        c.add_one("order_confirmation");
        c.add_one("refund_issued");
        c.add_one("order_confirmation");
        assert_eq!(c.get("order_confirmation"), 2);
        c.set("refund_issued", 5);
        let all: Vec<(&str, usize)> = c.iter().collect();
        assert_eq!(all, [("order_confirmation", 2), ("refund_issued", 5)]);
        let merged: Counts = [
            ("a".to_owned(), 1),
            ("b".to_owned(), 2),
            ("a".to_owned(), 3),
        ]
        .into_iter()
        .collect();
        assert_eq!((merged.get("a"), merged.get("b")), (4, 2));
        assert_eq!(merged.iter().count(), 2);
    }
}
