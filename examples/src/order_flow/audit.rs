//! After the run: what the providers themselves received, and the invariants checked against it.
//!
//! Sandboxes are asked directly (Stripe's per-intent counters, the messages each SendGrid
//! sandbox accepted, the rows of the sheet, the lines of the notifications file). A real provider
//! that cannot be asked — SendGrid and SES keep no queryable outbox, and reading a whole real
//! sheet back is beyond an example — is judged from the job handlers' own records (the ledger),
//! and the report says so.

use std::collections::BTreeMap;

use futures_util::StreamExt;
use integrations_core::Result;
use integrations_stripe::api::ListPaymentIntents;
use serde_json::Value;

use super::by_order::ByOrder;
use super::jobs::{OrderEventKind, SHEET};
use super::ledger::Ledger;
use super::notifier::JsonlNotifier;
use super::orders::OrderBook;
use super::paged::Fixed;
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
    /// Successful charges per order (sandbox only: `None` when the provider cannot say).
    pub charges_by_order: Option<ByOrder<u32>>,
    /// Responses replayed for a reused idempotency key (sandbox only).
    pub idempotent_replays: Option<u64>,
    /// Refunds made (sandbox only).
    pub refunds: Option<u64>,
}

/// Counts of one order's emails or notifications by template (`order_confirmation`,
/// `payment_failed`, `refund_issued`, and any other name together): four bytes an order,
/// where a map of names was the largest part of the evidence a long run built at its end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByTemplate([u8; 4]);

/// The names [`ByTemplate`] counts apart; any other counts in the last slot.
const TEMPLATES: [&str; 3] = ["order_confirmation", "payment_failed", "refund_issued"];

impl ByTemplate {
    fn slot(name: &str) -> usize {
        TEMPLATES
            .iter()
            .position(|t| *t == name)
            .unwrap_or(TEMPLATES.len())
    }

    /// The count of `name` (0 when absent).
    pub fn get(&self, name: &str) -> usize {
        usize::from(self.0[Self::slot(name)])
    }

    /// Sets the count of `name` (at most 255: a count that high is a failure either way).
    pub fn set(&mut self, name: &str, n: usize) {
        self.0[Self::slot(name)] = u8::try_from(n).unwrap_or(u8::MAX);
    }

    /// Adds one to the count of `name`.
    pub fn add_one(&mut self, name: &str) {
        let slot = &mut self.0[Self::slot(name)];
        *slot = slot.saturating_add(1);
    }

    /// Every `(name, count)` counted, `other` for the names not told apart.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, usize)> + '_ {
        TEMPLATES
            .iter()
            .copied()
            .chain(["other"])
            .zip(self.0)
            .filter(|(_, n)| *n > 0)
            .map(|(t, n)| (t, usize::from(n)))
    }

    /// Counts beyond the first of each name.
    pub fn beyond_first(&self) -> u64 {
        self.0.iter().map(|n| u64::from(n.saturating_sub(1))).sum()
    }
}

impl Fixed for ByTemplate {
    const SIZE: usize = 4;
    fn put(&self, out: &mut [u8]) {
        self.0.put(out);
    }
    fn take(bytes: &[u8]) -> Self {
        ByTemplate(<[u8; 4]>::take(bytes))
    }
}

/// The status column of an order's analytics row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RowStatus {
    /// No row.
    #[default]
    None,
    /// `paid`.
    Paid,
    /// `partially_refunded`.
    PartiallyRefunded,
    /// Anything else.
    Other,
}

impl RowStatus {
    /// The status written in a row's cell.
    pub fn parse(cell: &str) -> RowStatus {
        match cell {
            "paid" => RowStatus::Paid,
            "partially_refunded" => RowStatus::PartiallyRefunded,
            _ => RowStatus::Other,
        }
    }
}

/// An order's analytics row as read back: its status, and how many rows the sheet has for it
/// (counted only where the sheet itself is read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SheetRow {
    /// The status of its last row.
    pub status: RowStatus,
    /// Rows found in the sheet.
    pub count: u8,
}

impl Fixed for SheetRow {
    const SIZE: usize = 2;
    fn put(&self, out: &mut [u8]) {
        out[0] = match self.status {
            RowStatus::None => 0,
            RowStatus::Paid => 1,
            RowStatus::PartiallyRefunded => 2,
            RowStatus::Other => 3,
        };
        out[1] = self.count;
    }
    fn take(bytes: &[u8]) -> Self {
        let status = match bytes[0] {
            0 => RowStatus::None,
            1 => RowStatus::Paid,
            2 => RowStatus::PartiallyRefunded,
            _ => RowStatus::Other,
        };
        SheetRow {
            status,
            count: bytes[1],
        }
    }
}

/// The effects delivered, per order, as the receiving side saw them. Kept by the order's
/// number ([`ByOrder`]): a few bytes an order, so that judging a run of 100,000 orders does not
/// build maps of every order's effects at its end.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// Where the emails were counted.
    pub email_source: &'static str,
    /// Emails per order, by template.
    pub emails: ByOrder<ByTemplate>,
    /// Where the rows were counted.
    pub rows_source: &'static str,
    /// The analytics row per order.
    pub rows: ByOrder<SheetRow>,
    /// Where the notifications were counted.
    pub notifications_source: &'static str,
    /// Notifications per order, by event (`order_confirmation`, …).
    pub notifications: ByOrder<ByTemplate>,
    /// Whether the emails were counted by the email providers themselves (sandboxes).
    pub emails_at_provider: bool,
    /// Whether the rows were counted in the sheet itself.
    pub rows_at_provider: bool,
    /// Whether the notifications were counted where they were published (the local file).
    pub notifications_at_provider: bool,
}

impl Evidence {
    /// Emails of `template` for `order_id`.
    pub fn emails_of(&self, order_id: &str, template: &str) -> usize {
        self.emails.get(order_id).get(template)
    }

    /// Emails beyond the first of each template for each order.
    pub fn duplicate_emails(&self) -> u64 {
        self.emails.values().map(|t| t.beyond_first()).sum()
    }

    /// Notifications about `event` for `order_id`.
    pub fn notifications_of(&self, order_id: &str, event: OrderEventKind) -> usize {
        self.notifications.get(order_id).get(event.template())
    }

    /// The status of `order_id`'s analytics row ([`RowStatus::None`] without one).
    pub fn row_status(&self, order_id: &str) -> RowStatus {
        self.rows.get(order_id).status
    }

    /// Whether `order_id` has an analytics row.
    pub fn has_row(&self, order_id: &str) -> bool {
        self.row_status(order_id) != RowStatus::None
    }

    /// Notes one email of `template` for `order_id`.
    pub fn add_email(&mut self, order_id: &str, template: &str) {
        self.emails.entry(order_id).add_one(template);
    }

    /// Notes one notification about `event` for `order_id`.
    pub fn add_notification(&mut self, order_id: &str, event: &str) {
        self.notifications.entry(order_id).add_one(event);
    }

    /// Notes a row of `order_id` with status `cell`; `counted` when read in the sheet itself.
    pub fn add_row(&mut self, order_id: &str, cell: &str, counted: bool) {
        let row = self.rows.entry(order_id);
        row.status = RowStatus::parse(cell);
        if counted {
            row.count = row.count.saturating_add(1);
        }
    }
}

/// Asks Stripe (the sandbox's counters, or the real API's list of intents) about the payments.
///
/// # Errors
/// The API's errors (real Stripe).
pub async fn payments(services: &Services, book: &OrderBook, since: i64) -> Result<PaymentAudit> {
    let mut audit = PaymentAudit::default();
    let mut intents = 0u64;
    let mut several = Vec::new();
    if let Some(sandbox) = &services.stripe_sandbox {
        // Tallied as the sandbox announced them: it keeps only its latest objects.
        audit.source = "Stripe sandbox events, tallied as delivered".into();
        let mut max = 0;
        let mut charges_by_order = ByOrder::new();
        // The first read error of the order store, returned after the tally's lock is let go.
        let mut unread = None;
        services.payment_tally.for_each(|order, p| {
            match book.contains(order) {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    unread.get_or_insert(e);
                    return;
                }
            }
            let charges = u64::from(p.successful_charges);
            // With one intent, its charges are the order's; with several (a failure of its
            // own) at least one, or two when one intent was seen charged twice.
            let on_one = match (p.intents, p.an_intent_charged_twice) {
                (_, true) => charges.max(2),
                (0 | 1, false) => charges,
                (_, false) => charges.min(1),
            };
            max = max.max(on_one);
            *charges_by_order.entry(order) = p.successful_charges;
            intents += u64::from(p.intents);
            if p.intents > 1 {
                several.push(order.to_owned());
            }
        });
        if let Some(e) = unread {
            return Err(e);
        }
        audit.charges_by_order = Some(charges_by_order);
        audit.intents_charged_twice = services.payment_tally.charged_twice();
        let c = sandbox.counters();
        audit.max_charges_per_intent = Some(max);
        audit.idempotent_replays = Some(c.idempotent_replays);
        audit.refunds = Some(c.refunds);
    } else {
        audit.source = "Stripe API: GET /v1/payment_intents (charges per intent not listed)".into();
        let mut per_order: BTreeMap<String, u64> = BTreeMap::new();
        let mut listed = services
            .stripe_client
            .payment_intents_stream(ListPaymentIntents::default());
        while let Some(pi) = listed.next().await {
            let pi = pi?;
            if pi.created < since {
                break;
            }
            if let Some(order) = pi.metadata.get("order_id")
                && book.contains(order)?
            {
                *per_order.entry(order.clone()).or_default() += 1;
            }
        }
        intents = per_order.values().sum();
        several = per_order
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(k, _)| k)
            .collect();
    }
    several.sort();
    audit.intents = intents;
    audit.orders_with_several_intents = several;
    Ok(audit)
}

/// The emails the SendGrid sandboxes accepted, tallied as each is accepted: counts by template
/// per order. A sandbox keeps only its latest messages (its `message_retention`); the tally
/// keeps what the invariants need of every one, four bytes an order ([`ByTemplate`]).
#[derive(Debug, Default)]
pub struct EmailTally {
    by_order: std::sync::Mutex<ByOrder<ByTemplate>>,
}

impl EmailTally {
    /// Tallies every message `sandbox` accepts from now on.
    pub fn watch(self: &std::sync::Arc<Self>, sandbox: &integrations_sendgrid::sandbox::Sandbox) {
        let tally = self.clone();
        sandbox.on_accept(move |m| tally.record(&m.body));
    }

    /// Tallies one accepted message's body (its `order_id` custom argument and first category,
    /// the template); others are left out.
    pub fn record(&self, body: &Value) {
        let (Some(order), Some(template)) =
            (custom_arg(body, "order_id"), body["categories"][0].as_str())
        else {
            return;
        };
        self.by_order
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(order)
            .add_one(template);
    }

    /// The tally so far, moved out (the tally is left empty): taken once, by the end-of-run
    /// audit.
    pub fn take(&self) -> ByOrder<ByTemplate> {
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
    // Read only where a real provider cannot be asked and the ledger must stand in: the ids
    // one at a time, from the order store.
    let stand_ins = services.stand_ins();
    if !stand_ins.emails {
        // Tallied as the sandboxes accepted them: they keep only their latest messages.
        ev.email_source = "messages accepted by the SendGrid sandboxes";
        ev.emails_at_provider = true;
        ev.emails = services.email_tally.take();
    } else {
        ev.email_source = "job handlers' records (a real email provider cannot be asked)";
        book.for_each_id(&mut |id| {
            for (template, _) in ledger.get(id).emails {
                ev.add_email(id, &template);
            }
        })?;
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
                if let (Some(key), Some(status)) = (cells.next(), cells.next())
                    && book.contains(&key)?
                {
                    ev.add_row(&key, &status, true);
                }
            }
        }
    } else {
        ev.rows_source = "job handlers' records (the real sheet is not read back)";
        book.for_each_id(&mut |id| {
            let d = ledger.get(id);
            if d.rows_updated > 0 {
                ev.add_row(id, "partially_refunded", false);
            } else if d.rows_appended > 0 {
                ev.add_row(id, "paid", false);
            }
        })?;
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
                ev.add_notification(order, event);
            }
        })?;
    } else {
        ev.notifications_source = "job handlers' records (SNS is not read back)";
        book.for_each_id(&mut |id| {
            let by_event = ledger.get(id).notifications;
            let counts = ev.notifications.entry(id);
            for (event, n) in by_event {
                counts.set(&event, counts.get(&event) + n as usize);
            }
        })?;
    }
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_template_add_set_and_list() {
        let mut c = ByTemplate::default();
        assert_eq!(c.get("order_confirmation"), 0);
        c.add_one("order_confirmation");
        c.add_one("refund_issued");
        c.add_one("order_confirmation");
        c.add_one("a_new_template");
        assert_eq!(c.get("order_confirmation"), 2);
        assert_eq!(c.get("something_else"), 1, "other names count together");
        c.set("refund_issued", 5);
        let all: Vec<(&str, usize)> = c.iter().collect();
        assert_eq!(
            all,
            [
                ("order_confirmation", 2),
                ("refund_issued", 5),
                ("other", 1)
            ]
        );
        assert_eq!(c.beyond_first(), 1 + 4);
        c.set("payment_failed", 1_000);
        assert_eq!(c.get("payment_failed"), 255, "saturates");
    }

    #[test]
    fn the_templates_told_apart_are_the_order_events() {
        let kinds = [
            OrderEventKind::Paid,
            OrderEventKind::PaymentFailed,
            OrderEventKind::Refunded,
        ];
        assert_eq!(TEMPLATES, kinds.map(OrderEventKind::template));
    }

    #[test]
    fn evidence_of_an_order_reads_back() {
        let mut ev = Evidence::default();
        ev.add_email("ord_r_0001", "order_confirmation");
        ev.add_email("ord_r_0001", "order_confirmation");
        ev.add_row("ord_r_0001", "paid", true);
        ev.add_row("ord_r_0001", "partially_refunded", true);
        ev.add_notification("ord_r_0001", "refund_issued");
        assert_eq!(ev.emails_of("ord_r_0001", "order_confirmation"), 2);
        assert_eq!(ev.duplicate_emails(), 1);
        assert_eq!(ev.row_status("ord_r_0001"), RowStatus::PartiallyRefunded);
        assert_eq!(ev.rows.get("ord_r_0001").count, 2);
        assert!(!ev.has_row("ord_r_0002"));
        assert_eq!(
            ev.notifications_of("ord_r_0001", OrderEventKind::Refunded),
            1
        );
        assert_eq!(ev.notifications_of("ord_r_0001", OrderEventKind::Paid), 0);
    }
}
