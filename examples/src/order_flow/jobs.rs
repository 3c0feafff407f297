//! The outbox side of the flow: the handlers that deliver what each payment event fans out to.
//!
//! The job kinds and their payload ([`OrderEvent`]) are the shop's
//! ([`integrations_shop::jobs`]), shared with the benches.

use std::sync::Arc;

use async_trait::async_trait;
use integrations_core::provider::{EmailProvider, Mailbox, UpdateOutcome};
use integrations_core::{Error, Money, Notification, Notifier, Result, SheetsSink};
use integrations_outbox::{Job, JobHandler};
use integrations_sendgrid::SendGridClient;
use integrations_sendgrid::template::TemplateRegistry;
pub use integrations_shop::jobs::{
    EMAIL, METRICS, NOTIFY, OrderEvent, OrderEventKind, SHEET, SHEETS_APPEND, SHEETS_UPDATE,
    analytics_row,
};

use super::ledger::{BusinessEvent, Ledger, OrderMetrics};
use super::orders::OrderRecord;

/// The event about `record`: the payload of every job the event fans out to.
///
/// # Errors
/// [`Error::InvalidInput`] if the order total overflows.
pub fn order_event(
    kind: OrderEventKind,
    event_id: &str,
    record: &OrderRecord,
    amount: Money,
    payment_id: &str,
    reason: Option<String>,
    occurred_at: i64,
) -> Result<OrderEvent> {
    let order = &record.order;
    Ok(OrderEvent {
        kind,
        event_id: event_id.to_owned(),
        order_id: order.id.clone(),
        customer_name: order.customer_name.clone(),
        customer_email: order.customer_email.clone(),
        items: order.items.clone(),
        total: order.total()?,
        amount,
        payment_id: payment_id.to_owned(),
        reason,
        occurred_at,
    })
}

/// The custom arg every email carries: its job's idempotency key (`{event_id}/email`), which
/// names the logical send for [`EmailJob`]'s lookup.
pub const JOB_KEY_ARG: &str = "job_key";

/// Sends the customer email through the email provider (the failover).
///
/// Neither SendGrid nor SES takes an idempotency key, so an attempt killed after the provider
/// accepted the email but before the outbox marked the job done would send it again. The
/// outbox's claim records the attempt (`attempt` + 1) before the send; a job on its second or
/// later attempt — one whose earlier attempt may have been sending — first asks each SendGrid
/// provider's Email Activity feed for a message carrying its [`JOB_KEY_ARG`], and if one was
/// accepted records the delivery instead of sending again. The feed lags (and SES cannot be
/// asked at all), so this narrows the duplicate window, it does not close it; a failed lookup
/// sends (an email twice rather than none).
#[derive(Debug)]
pub struct EmailJob {
    /// The provider (SendGrid → backup).
    pub email: Arc<dyn EmailProvider>,
    /// The order flow's templates.
    pub templates: Arc<TemplateRegistry>,
    /// Sender.
    pub from: Mailbox,
    /// Where deliveries are recorded.
    pub ledger: Arc<Ledger>,
    /// The SendGrid clients (label, client) asked whether an interrupted send was accepted.
    pub lookups: Vec<(String, SendGridClient)>,
}

impl EmailJob {
    /// The label of the provider that already accepted this job's email, if a lookup finds one.
    async fn already_sent(&self, job: &Job) -> Option<String> {
        for (label, client) in &self.lookups {
            match client
                .messages_with_custom_arg(JOB_KEY_ARG, job.idempotency_key.as_str(), 1)
                .await
            {
                Ok(found) if !found.is_empty() => return Some(label.clone()),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(job = %job.id, provider = %label, error = %e,
                        "email lookup failed; sending");
                }
            }
        }
        None
    }
}

#[async_trait]
impl JobHandler for EmailJob {
    async fn handle(&self, job: &Job) -> Result<()> {
        let ev = OrderEvent::of(job)?;
        if job.attempt > 1 {
            if let Some(provider) = self.already_sent(job).await {
                tracing::info!(job = %job.id, provider = %provider,
                    "email of an interrupted attempt was accepted: not sent again");
                self.ledger
                    .email_sent(&ev.order_id, ev.kind.template(), &provider);
                return Ok(());
            }
        }
        let message = ev
            .email()
            .message(
                &self.templates,
                self.from.clone(),
                Mailbox::named(ev.customer_email.clone(), ev.customer_name.clone()),
                self.email.capabilities(),
            )?
            .custom_arg("event_id", ev.event_id.clone())
            .custom_arg(JOB_KEY_ARG, job.idempotency_key.as_str())
            .build();
        let sent = self.email.send(&message).await?;
        self.ledger
            .email_sent(&ev.order_id, ev.kind.template(), &sent.provider);
        Ok(())
    }
}

/// Appends (on payment) or updates (on refund) the order's analytics row.
#[derive(Debug, Clone)]
pub struct SheetsJob {
    /// The sink (batched appends under the quota).
    pub sink: Arc<dyn SheetsSink>,
    /// Where deliveries are recorded.
    pub ledger: Arc<Ledger>,
}

#[async_trait]
impl JobHandler for SheetsJob {
    async fn handle(&self, job: &Job) -> Result<()> {
        let ev = OrderEvent::of(job)?;
        match ev.kind {
            OrderEventKind::Refunded => {
                // The jobs of different events run in any order: if the paid event's append has
                // not run yet, the row is appended here (by key: whichever job comes first
                // appends it, the other finds it there). The update then finds the row among
                // those the sink appended, instead of reading the whole key column for a key
                // that is not there yet and trying again later.
                let paid = analytics_row(&ev, "paid", Money::zero(ev.total.currency()));
                if self.sink.append_rows(SHEET, vec![paid]).await?.appended > 0 {
                    self.ledger.row_appended(&ev.order_id);
                }
                let row = analytics_row(&ev, "partially_refunded", ev.amount);
                match self.sink.update_row(SHEET, row).await? {
                    UpdateOutcome::Updated { .. } => self.ledger.row_updated(&ev.order_id),
                    // Deleted since (by a person): try again later, after the append above.
                    _ => {
                        return Err(Error::unavailable(format!(
                            "the row of {} is not in the sheet yet",
                            ev.order_id
                        ))
                        .with_retry_hint(true));
                    }
                }
            }
            OrderEventKind::Paid | OrderEventKind::PaymentFailed => {
                // `append_rows` returns once the batch carrying the row is at Google (or the
                // row's key was already there): the effect is durable before the job is marked.
                self.sink
                    .append_rows(
                        SHEET,
                        vec![analytics_row(&ev, "paid", Money::zero(ev.total.currency()))],
                    )
                    .await?;
                self.ledger.row_appended(&ev.order_id);
            }
        }
        Ok(())
    }
}

/// Publishes a notification; the job's key is the dedup id (SNS FIFO, the JSONL notifier).
#[derive(Debug)]
pub struct NotifyJob {
    /// The notifier.
    pub notifier: Arc<dyn Notifier>,
    /// Where deliveries are recorded.
    pub ledger: Arc<Ledger>,
}

#[async_trait]
impl JobHandler for NotifyJob {
    async fn handle(&self, job: &Job) -> Result<()> {
        let ev = OrderEvent::of(job)?;
        let amount = ev.amount;
        let (subject, body) = match ev.kind {
            OrderEventKind::Paid => (
                "Order paid",
                format!("Order {} paid: {amount}", ev.order_id),
            ),
            OrderEventKind::PaymentFailed => (
                "Payment failed",
                format!(
                    "Payment for order {} failed ({}): {amount}",
                    ev.order_id,
                    ev.reason.as_deref().unwrap_or("declined")
                ),
            ),
            OrderEventKind::Refunded => (
                "Refund issued",
                format!("Order {} refunded {amount}", ev.order_id),
            ),
        };
        let n = Notification::new(body)
            .subject(subject)
            .attribute("order_id", ev.order_id.clone())
            .attribute("event", ev.kind.template())
            .dedup_id(job.idempotency_key.as_str())
            .group_id(ev.order_id.clone());
        self.notifier.publish(&n).await?;
        self.ledger.notified(&ev.order_id, ev.kind.template());
        Ok(())
    }
}

/// Counts the event in the business metrics, once per job key.
#[derive(Debug)]
pub struct MetricsJob {
    /// The counters.
    pub metrics: Arc<OrderMetrics>,
}

#[async_trait]
impl JobHandler for MetricsJob {
    async fn handle(&self, job: &Job) -> Result<()> {
        let ev = OrderEvent::of(job)?;
        let event = match ev.kind {
            OrderEventKind::Paid => BusinessEvent::Paid,
            OrderEventKind::PaymentFailed => BusinessEvent::Failed,
            OrderEventKind::Refunded => BusinessEvent::Refunded,
        };
        self.metrics.record(
            job.idempotency_key.as_str(),
            event,
            ev.amount.currency().code(),
            ev.amount.minor(),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order_flow::orders::{Order, OrderState};
    use integrations_core::IdempotencyKey;
    use integrations_outbox::JobId;
    use integrations_testkit::{StubEmailProvider, StubNotifier, StubSheetsSink};

    fn event(kind: OrderEventKind) -> OrderEvent {
        let order = Order::sample("t", 1, None);
        let total = order.total().unwrap();
        let record = OrderRecord {
            order,
            state: OrderState::Paid,
            payment_id: Some("pi_1".into()),
            refunded_minor: 0,
        };
        order_event(kind, "evt_1", &record, total, "pi_1", None, 1_700_000_000).unwrap()
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

    /// The fan-out per event kind is the shop's (`integrations-shop`'s own test); here, that an
    /// event made from this example's order record survives the trip through a job.
    #[test]
    fn order_events_round_trip_through_their_jobs() {
        for kind in [
            OrderEventKind::Paid,
            OrderEventKind::PaymentFailed,
            OrderEventKind::Refunded,
        ] {
            let ev = event(kind);
            assert_eq!(OrderEvent::of(&job(&ev, EMAIL)).unwrap(), ev);
        }
    }

    /// An attempt whose send was accepted but whose job was never marked done (the process
    /// killed in between) comes back as attempt 2: it finds its email by the job key and does
    /// not send it again; a retried job whose email was never accepted sends it.
    #[tokio::test]
    async fn a_retried_email_job_whose_email_was_accepted_does_not_send_it_again() {
        let sandbox = integrations_sendgrid::sandbox::Sandbox::start()
            .await
            .unwrap();
        let sg = sandbox.email().build().unwrap();
        let ledger = Arc::new(Ledger::new());
        let h = EmailJob {
            lookups: vec![("sendgrid".to_owned(), sg.client().clone())],
            email: Arc::new(sg),
            templates: Arc::new(integrations_shop::order_templates()),
            from: Mailbox::named("orders@example.com", "Shop"),
            ledger: ledger.clone(),
        };
        let ev = event(OrderEventKind::Paid);
        let mut j = job(&ev, EMAIL);
        h.handle(&j).await.unwrap();
        assert_eq!(sandbox.messages().len(), 1);
        assert_eq!(
            sandbox.messages()[0].mail.custom_args[JOB_KEY_ARG],
            j.idempotency_key.as_str()
        );
        j.attempt = 2;
        h.handle(&j).await.unwrap();
        assert_eq!(sandbox.messages().len(), 1, "found, not sent again");

        let refund = event(OrderEventKind::Refunded);
        let mut j = job(&refund, EMAIL);
        j.idempotency_key = IdempotencyKey::derive("evt_2", EMAIL).unwrap();
        j.attempt = 2;
        h.handle(&j).await.unwrap();
        assert_eq!(sandbox.messages().len(), 2, "nothing accepted for it: sent");
    }

    #[tokio::test]
    async fn handlers_deliver_and_record() {
        let ledger = Arc::new(Ledger::new());
        let email = Arc::new(StubEmailProvider::new_ok());
        let h = EmailJob {
            email: email.clone(),
            templates: Arc::new(integrations_shop::order_templates()),
            from: Mailbox::named("orders@example.com", "Shop"),
            ledger: ledger.clone(),
            lookups: Vec::new(),
        };
        let ev = event(OrderEventKind::Paid);
        h.handle(&job(&ev, EMAIL)).await.unwrap();
        let sent = email.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].custom_args["order_id"], ev.order_id);
        assert_eq!(ledger.get(&ev.order_id).emails_of("order_confirmation"), 1);

        let sink = Arc::new(StubSheetsSink::new_ok());
        let sheets = SheetsJob {
            sink: sink.clone(),
            ledger: ledger.clone(),
        };
        // The refund's job before the paid one's: it appends the row, then updates it; the
        // paid job's append finds the row there and leaves it as the refund made it.
        let refund = event(OrderEventKind::Refunded);
        sheets.handle(&job(&refund, SHEETS_UPDATE)).await.unwrap();
        sheets.handle(&job(&ev, SHEETS_APPEND)).await.unwrap();
        let rows = sink.rows(SHEET);
        assert_eq!(rows.len(), 1, "one row per order");
        assert_eq!(rows[0].key(), ev.order_id);
        assert_eq!(rows[0].cells()[0], "partially_refunded".into());
        let d = ledger.get(&ev.order_id);
        assert_eq!((d.rows_appended, d.rows_updated), (2, 1));
        // In the usual order: the row is there, the refund's append is skipped.
        sheets.handle(&job(&refund, SHEETS_UPDATE)).await.unwrap();
        assert_eq!(sink.rows(SHEET).len(), 1);
        assert_eq!(ledger.get(&ev.order_id).rows_updated, 2);

        let notifier = Arc::new(StubNotifier::new_ok());
        let n = NotifyJob {
            notifier: notifier.clone(),
            ledger: ledger.clone(),
        };
        n.handle(&job(&ev, NOTIFY)).await.unwrap();
        let published = notifier.published();
        assert_eq!(published[0].dedup_id.as_deref(), Some("evt_1/notify"));

        let metrics = Arc::new(OrderMetrics::new());
        let m = MetricsJob {
            metrics: metrics.clone(),
        };
        m.handle(&job(&ev, METRICS)).await.unwrap();
        m.handle(&job(&ev, METRICS)).await.unwrap();
        assert_eq!(metrics.snapshot().orders_paid, 1);
    }
}
