//! The order flow's fan-out: the outbox job kinds each payment event fans out to, and the payload
//! every one of those jobs carries ([`OrderEvent`]).
//!
//! The handlers that deliver the jobs live with the programs that run them (the example's
//! `order_flow`, the benches): they differ in where they record deliveries, not in what a job is.

use integrations_core::{Error, Money, Result, Row};
use integrations_outbox::{Job, NewJob};
use serde::{Deserialize, Serialize};

use crate::emails::OrderEmail;
use crate::order::LineItem;

/// Job kind: the customer email (through the email failover).
pub const EMAIL: &str = "email";
/// Job kind: append the order's analytics row.
pub const SHEETS_APPEND: &str = "sheets.append";
/// Job kind: update the order's analytics row.
pub const SHEETS_UPDATE: &str = "sheets.update";
/// Job kind: publish a notification.
pub const NOTIFY: &str = "notify";
/// Job kind: count the event in the business metrics.
pub const METRICS: &str = "metrics";

/// The sheet every order's analytics row goes to.
pub const SHEET: &str = "Orders";

/// What happened to an order, as a verified webhook told it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderEventKind {
    /// `payment_intent.succeeded`.
    Paid,
    /// `payment_intent.payment_failed`.
    PaymentFailed,
    /// `refund.created`.
    Refunded,
}

impl OrderEventKind {
    /// The email template the event sends.
    pub fn template(self) -> &'static str {
        match self {
            OrderEventKind::Paid => "order_confirmation",
            OrderEventKind::PaymentFailed => "payment_failed",
            OrderEventKind::Refunded => "refund_issued",
        }
    }

    /// The job kinds the event fans out to.
    pub fn job_kinds(self) -> &'static [&'static str] {
        match self {
            OrderEventKind::Paid => &[EMAIL, SHEETS_APPEND, NOTIFY, METRICS],
            OrderEventKind::PaymentFailed => &[EMAIL, NOTIFY, METRICS],
            OrderEventKind::Refunded => &[EMAIL, SHEETS_UPDATE, NOTIFY, METRICS],
        }
    }
}

/// The payload of every job of one event: what the handlers need, so that delivery never reads
/// the order store (which may have moved on by then).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEvent {
    /// What happened.
    pub kind: OrderEventKind,
    /// The Stripe event id.
    pub event_id: String,
    /// The order.
    pub order_id: String,
    /// Customer's name.
    pub customer_name: String,
    /// Customer's address.
    pub customer_email: String,
    /// The order's lines.
    pub items: Vec<LineItem>,
    /// The order total.
    pub total: Money,
    /// The amount the event is about (paid, attempted or refunded).
    pub amount: Money,
    /// The payment intent.
    pub payment_id: String,
    /// Decline or refund reason.
    pub reason: Option<String>,
    /// When the event happened (unix seconds).
    pub occurred_at: i64,
}

impl OrderEvent {
    /// The jobs to record with the event, one per kind it fans out to.
    ///
    /// # Errors
    /// If the payload cannot be encoded (not expected).
    pub fn jobs(&self, max_attempts: u32) -> Result<Vec<NewJob>> {
        let payload = serde_json::to_value(self)
            .map_err(|e| Error::provider(format!("cannot encode a job payload: {e}")))?;
        Ok(self
            .kind
            .job_kinds()
            .iter()
            .map(|kind| NewJob::new(*kind, payload.clone()).with_max_attempts(max_attempts))
            .collect())
    }

    /// Decodes a job's payload.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `payload` (not retryable: the job goes to the dead-letter
    /// queue, where it can be inspected).
    pub fn of(job: &Job) -> Result<Self> {
        OrderEvent::deserialize(&job.payload)
            .map_err(|e| Error::invalid_input("payload", format!("job {}: {e}", job.id)))
    }

    /// The customer email this event sends.
    pub fn email(&self) -> OrderEmail {
        let customer_name = self.customer_name.clone();
        let order_id = self.order_id.clone();
        match self.kind {
            OrderEventKind::Paid => OrderEmail::OrderConfirmation {
                customer_name,
                order_id,
                items: self.items.clone(),
                total: self.total,
            },
            OrderEventKind::PaymentFailed => OrderEmail::PaymentFailed {
                customer_name,
                order_id,
                amount: self.amount,
                reason: self.reason.clone(),
            },
            OrderEventKind::Refunded => OrderEmail::RefundIssued {
                customer_name,
                order_id,
                amount: self.amount,
                reason: self.reason.clone(),
            },
        }
    }
}

/// The analytics row of an order: key (column A) is the order id, then status, total, currency,
/// number of lines, payment id, refunded so far and the event time.
pub fn analytics_row(ev: &OrderEvent, status: &str, refunded: Money) -> Row {
    Row::new(ev.order_id.clone())
        .cell(status)
        .cell(ev.total.to_decimal_string())
        .cell(ev.total.currency().code())
        .cell(ev.items.len() as i64)
        .cell(ev.payment_id.clone())
        .cell(refunded.to_decimal_string())
        .cell(ev.occurred_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use integrations_core::{Currency, IdempotencyKey};
    use integrations_outbox::JobId;

    fn event(kind: OrderEventKind) -> OrderEvent {
        let usd = |m| Money::from_minor(m, Currency::USD);
        OrderEvent {
            kind,
            event_id: "evt_1".into(),
            order_id: "ord_t_0001".into(),
            customer_name: "Jane Doe".into(),
            customer_email: "jane@example.com".into(),
            items: vec![LineItem::new("shoes", "Trail shoes", 2, usd(8999))],
            total: usd(17998),
            amount: usd(17998),
            payment_id: "pi_1".into(),
            reason: None,
            occurred_at: 1_700_000_000,
        }
    }

    fn job(ev: &OrderEvent, kind: &str) -> Job {
        let new = ev
            .jobs(3)
            .unwrap()
            .into_iter()
            .find(|j| j.kind == kind)
            .unwrap();
        Job {
            id: JobId::new("1"),
            event_id: ev.event_id.clone(),
            kind: kind.into(),
            idempotency_key: IdempotencyKey::derive(&ev.event_id, kind).unwrap(),
            payload: new.payload,
            attempt: 1,
            max_attempts: 3,
            created_at: std::time::UNIX_EPOCH,
            traceparent: None,
        }
    }

    #[test]
    fn events_fan_out_to_their_kinds() {
        let kinds = |k| {
            event(k)
                .jobs(5)
                .unwrap()
                .into_iter()
                .map(|j| j.kind)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            kinds(OrderEventKind::Paid),
            [EMAIL, SHEETS_APPEND, NOTIFY, METRICS]
        );
        assert_eq!(
            kinds(OrderEventKind::PaymentFailed),
            [EMAIL, NOTIFY, METRICS]
        );
        assert_eq!(
            kinds(OrderEventKind::Refunded),
            [EMAIL, SHEETS_UPDATE, NOTIFY, METRICS]
        );
        let ev = event(OrderEventKind::Paid);
        assert_eq!(OrderEvent::of(&job(&ev, EMAIL)).unwrap(), ev);
    }

    #[test]
    fn each_event_sends_its_template() {
        for kind in [
            OrderEventKind::Paid,
            OrderEventKind::PaymentFailed,
            OrderEventKind::Refunded,
        ] {
            assert_eq!(event(kind).email().template().name(), kind.template());
        }
        let row = analytics_row(
            &event(OrderEventKind::Paid),
            "paid",
            Money::zero(Currency::USD),
        );
        assert_eq!(row.key(), "ord_t_0001");
    }
}
