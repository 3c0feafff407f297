//! Ours' outbox job handlers, as the example's order flow has them, on the shop's job payload
//! ([`OrderEvent`]) and order emails.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use integrations_core::provider::{EmailProvider, Mailbox, Published};
use integrations_core::{Money, Notification, Notifier, Policy, Result, SheetsSink};
use integrations_outbox::{Job, JobHandler};
use integrations_sendgrid::SendGridEmail;
use integrations_sendgrid::template::TemplateRegistry;
use integrations_sheets::GoogleSheetsSink;
use serde_json::Value;
use tokio::sync::oneshot;

use integrations_shop::jobs::{OrderEvent, analytics_row};

use crate::model::{FROM, SHEET};

/// Orders waiting for their jobs: jobs still to deliver, and whom to tell when none are left.
type Waiting = HashMap<String, (usize, oneshot::Sender<()>)>;

/// Waits for each order's jobs: an order is done when its four handlers have returned `Ok`.
#[derive(Debug, Default)]
pub(crate) struct Tracker(Mutex<Waiting>);

impl Tracker {
    pub(crate) fn expect(&self, order_id: &str, jobs: usize) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(order_id.to_owned(), (jobs, tx));
        rx
    }

    pub(crate) fn done(&self, order_id: &str) {
        let mut waiting = self.lock();
        let Some((left, _)) = waiting.get_mut(order_id) else {
            return; // a redelivery after the order was done
        };
        *left = left.saturating_sub(1);
        if *left == 0 {
            if let Some((_, tx)) = waiting.remove(order_id) {
                let _ = tx.send(());
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A handler that reports each successful delivery to the tracker.
pub(crate) struct Tracked {
    pub(crate) inner: Arc<dyn JobHandler>,
    pub(crate) tracker: Arc<Tracker>,
}

#[async_trait]
impl JobHandler for Tracked {
    async fn handle(&self, job: &Job) -> Result<()> {
        self.inner.handle(job).await?;
        if let Some(order) = job.payload.get("order_id").and_then(Value::as_str) {
            self.tracker.done(order);
        }
        Ok(())
    }
}

/// The confirmation email: the shop's template rendered locally, sent through SendGrid.
pub(crate) struct EmailJob {
    pub(crate) email: SendGridEmail,
    pub(crate) templates: TemplateRegistry,
}

#[async_trait]
impl JobHandler for EmailJob {
    async fn handle(&self, job: &Job) -> Result<()> {
        let ev = OrderEvent::of(job)?;
        let message = ev
            .email()
            .message(
                &self.templates,
                Mailbox::named(FROM.0, FROM.1),
                Mailbox::named(ev.customer_email.clone(), ev.customer_name.clone()),
                self.email.capabilities(),
            )?
            .custom_arg("event_id", ev.event_id.clone())
            .build();
        self.email.send(&message).await.map(drop)
    }
}

/// The analytics row, through the batching sink.
pub(crate) struct SheetsJob {
    pub(crate) sink: GoogleSheetsSink,
}

#[async_trait]
impl JobHandler for SheetsJob {
    async fn handle(&self, job: &Job) -> Result<()> {
        let ev = OrderEvent::of(job)?;
        self.sink
            .append_rows(
                SHEET,
                vec![analytics_row(&ev, "paid", Money::zero(ev.total.currency()))],
            )
            .await
            .map(drop)
    }
}

/// An in-memory stand-in for an SNS FIFO topic (the example writes a JSONL file instead): a
/// repeated dedup id publishes nothing and returns the first receipt. Calls run under a policy.
#[derive(Debug)]
pub(crate) struct MemoryNotifier {
    pub(crate) policy: Policy,
    pub(crate) seen: Mutex<HashMap<String, String>>,
}

#[async_trait]
impl Notifier for MemoryNotifier {
    fn name(&self) -> &str {
        "notifier-memory"
    }

    async fn publish(&self, n: &Notification) -> Result<Published> {
        self.policy
            .call("publish", |_| async {
                n.validate()?;
                let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
                let next = format!("mem-{}", seen.len() + 1);
                let id = match &n.dedup_id {
                    Some(d) => seen.entry(d.clone()).or_insert(next).clone(),
                    None => next,
                };
                Ok(Published::new("notifier-memory", id))
            })
            .await
    }
}

/// The "order paid" notification; the job's key is the dedup id.
pub(crate) struct NotifyJob {
    pub(crate) notifier: MemoryNotifier,
}

#[async_trait]
impl JobHandler for NotifyJob {
    async fn handle(&self, job: &Job) -> Result<()> {
        let ev = OrderEvent::of(job)?;
        let n = Notification::new(format!("Order {} paid: {}", ev.order_id, ev.total))
            .subject("Order paid")
            .attribute("order_id", ev.order_id.clone())
            .attribute("event", "order_confirmation")
            .dedup_id(job.idempotency_key.as_str())
            .group_id(ev.order_id.clone());
        self.notifier.publish(&n).await.map(drop)
    }
}

/// Business counters, once per job key.
#[derive(Default)]
pub(crate) struct MetricsJob {
    pub(crate) seen: Mutex<HashSet<String>>,
    pub(crate) paid_minor: AtomicU64,
}

#[async_trait]
impl JobHandler for MetricsJob {
    async fn handle(&self, job: &Job) -> Result<()> {
        let ev = OrderEvent::of(job)?;
        let first = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(job.idempotency_key.as_str().to_owned());
        if first {
            self.paid_minor
                .fetch_add(ev.total.minor().unsigned_abs(), Ordering::Relaxed);
        }
        Ok(())
    }
}
