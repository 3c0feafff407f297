//! The side effects of a paid order, delivered from the outbox: confirmation email, analytics
//! row, notification.
//!
//! The Stripe webhook handler records these jobs with the event ([`paid_jobs`]); a core
//! [`Dispatcher`](integrations_outbox::Dispatcher) claims them and runs the handlers
//! [`Effects::register`] installs. Each handler reloads the order (the payload carries only its
//! id), performs one provider call under that provider's policy, and passes the job's
//! deterministic idempotency key where the provider takes one (the Sheets row key, the SNS FIFO
//! deduplication id).

use std::fmt;
use std::sync::Arc;

use integrations_core::provider::{EmailMessage, Mailbox, Notification, Row};
use integrations_core::{EmailProvider, Error, Notifier, Policy, Result, SheetsSink};
use integrations_outbox::{DispatcherBuilder, Job, NewJob, handler_fn};
use serde_json::json;

use crate::html::escape;
use crate::orders::{Order, OrderStore, rfc3339};

/// Job kind: the order confirmation email.
pub const EMAIL_CONFIRMATION: &str = "email.confirmation";
/// Job kind: the analytics row.
pub const SHEETS_ROW: &str = "sheets.row";
/// Job kind: the "order paid" notification.
pub const NOTIFY_PAID: &str = "notify.paid";
/// Analytics-row deliveries in flight at once on their own dispatcher: each waits for the
/// sink's next append, so this many rows can go in one append (the sink's default batch limit).
pub const ROWS_CONCURRENCY: usize = integrations_sheets::BatchConfig::DEFAULT.max_rows;
/// The sheet analytics rows go to.
pub const DEFAULT_SHEET: &str = "Orders";

/// The jobs a paid order causes.
pub fn paid_jobs(order_id: &str) -> Vec<NewJob> {
    [EMAIL_CONFIRMATION, SHEETS_ROW, NOTIFY_PAID]
        .into_iter()
        .map(|kind| NewJob::new(kind, json!({ "order_id": order_id })))
        .collect()
}

/// The providers the jobs are delivered through.
#[derive(Clone)]
pub struct Effects {
    orders: OrderStore,
    email: Arc<dyn EmailProvider>,
    from: Mailbox,
    sheets: Arc<dyn SheetsSink>,
    sheet: String,
    notifier: Arc<dyn Notifier>,
    email_policy: Option<Policy>,
}

impl fmt::Debug for Effects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Effects")
            .field("email", &self.email.name())
            .field("sheets", &self.sheets.name())
            .field("sheet", &self.sheet)
            .field("notifier", &self.notifier.name())
            .finish_non_exhaustive()
    }
}

impl Effects {
    /// Effects sending email from `from`, rows to the sheet [`DEFAULT_SHEET`].
    pub fn new(
        orders: OrderStore,
        email: Arc<dyn EmailProvider>,
        from: Mailbox,
        sheets: Arc<dyn SheetsSink>,
        notifier: Arc<dyn Notifier>,
    ) -> Self {
        Effects {
            orders,
            email,
            from,
            sheets,
            sheet: DEFAULT_SHEET.to_owned(),
            notifier,
            email_policy: None,
        }
    }

    /// Declares the policy the email provider's calls run under: the dispatcher then refuses to
    /// build when its handler timeout cannot cover that policy's worst case
    /// ([`DispatcherBuilder::handler_with_policy`]), instead of cutting a send off mid-request
    /// and sending it again.
    #[must_use]
    pub fn with_email_policy(mut self, policy: Policy) -> Self {
        self.email_policy = Some(policy);
        self
    }

    /// Appends rows to `sheet` instead.
    #[must_use]
    pub fn with_sheet(mut self, sheet: impl Into<String>) -> Self {
        self.sheet = sheet.into();
        self
    }

    /// Registers a handler for each job kind on `builder`: one dispatcher for every kind.
    pub fn register(self, builder: DispatcherBuilder) -> DispatcherBuilder {
        let me = Arc::new(self);
        let builder = Effects::register_rows(&me, builder);
        Effects::register_others(&me, builder)
    }

    /// Registers the analytics row on `rows` and every other kind on `others`: two dispatchers
    /// (lanes), so that rows waiting for the Sheets write quota (one append a second, carrying
    /// the rows of every job waiting on it) never hold up the emails and notifications. Give
    /// the rows lane a concurrency of the sink's batch limit ([`ROWS_CONCURRENCY`]).
    pub fn register_lanes(
        self,
        rows: DispatcherBuilder,
        others: DispatcherBuilder,
    ) -> (DispatcherBuilder, DispatcherBuilder) {
        let me = Arc::new(self);
        (
            Effects::register_rows(&me, rows),
            Effects::register_others(&me, others),
        )
    }

    fn register_rows(me: &Arc<Self>, builder: DispatcherBuilder) -> DispatcherBuilder {
        let me = Arc::clone(me);
        builder.handler(
            SHEETS_ROW,
            handler_fn(move |job| {
                let me = Arc::clone(&me);
                async move { me.append_row(&job).await }
            }),
        )
    }

    fn register_others(me: &Arc<Self>, builder: DispatcherBuilder) -> DispatcherBuilder {
        let (a, c) = (Arc::clone(me), Arc::clone(me));
        let email = handler_fn(move |job| {
            let me = Arc::clone(&a);
            async move { me.send_confirmation(&job).await }
        });
        let builder = match &me.email_policy {
            Some(policy) => builder.handler_with_policy(EMAIL_CONFIRMATION, email, policy),
            None => builder.handler(EMAIL_CONFIRMATION, email),
        };
        builder.handler(
            NOTIFY_PAID,
            handler_fn(move |job| {
                let me = Arc::clone(&c);
                async move { me.notify_paid(&job).await }
            }),
        )
    }

    async fn order_of(&self, job: &Job) -> Result<Order> {
        let id = job.payload["order_id"]
            .as_str()
            .ok_or_else(|| Error::invalid_input("order_id", "missing from the job payload"))?;
        self.orders
            .get(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("no order {id}")).with_retry_hint(false))
    }

    async fn send_confirmation(&self, job: &Job) -> Result<()> {
        let order = self.order_of(job).await?;
        let msg = confirmation_email(&order, self.from.clone());
        let sent = self.email.send(&msg).await?;
        tracing::info!(order = %order.id, provider = %sent.provider, "confirmation email sent");
        Ok(())
    }

    async fn append_row(&self, job: &Job) -> Result<()> {
        let order = self.order_of(job).await?;
        let d = &order.details;
        let row = Row::new(job.idempotency_key.as_str())
            .cell(order.id.as_str())
            .cell(rfc3339(order.created_at))
            .cell(d.customer_id.clone().unwrap_or_default())
            .cell(i64::try_from(d.items.len()).unwrap_or(i64::MAX))
            .cell(d.total.to_decimal_string())
            .cell(d.total.currency().code())
            .cell("paid");
        self.sheets.append_rows(&self.sheet, vec![row]).await?;
        // A buffering sink holds rows until flushed; the job is done only once it is durable.
        self.sheets.flush().await
    }

    async fn notify_paid(&self, job: &Job) -> Result<()> {
        let order = self.order_of(job).await?;
        let n = Notification::new(format!("Order {} paid: {}", order.id, order.details.total))
            .subject("Order paid")
            .attribute("event", "order.paid")
            .attribute("order_id", order.id.as_str())
            .dedup_id(job.idempotency_key.as_str())
            .group_id(order.id.as_str());
        self.notifier.publish(&n).await.map(drop)
    }
}

/// The confirmation email of `order`: text and HTML (every customer-supplied value escaped),
/// with the order id as a custom argument so the provider's event webhook can be matched back.
pub fn confirmation_email(order: &Order, from: Mailbox) -> EmailMessage {
    let d = &order.details;
    let mut text = format!(
        "Hello {},\n\nthank you for your order {}.\n\n",
        d.customer_name, order.id
    );
    let mut rows = String::new();
    for item in &d.items {
        let line = item.line_total().unwrap_or(item.unit_price);
        text.push_str(&format!(
            "  {} × {}  {}\n",
            item.quantity,
            item.name,
            line.to_decimal_string()
        ));
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td style=\"text-align:right\">{}</td></tr>",
            item.quantity,
            escape(&item.name),
            line.to_decimal_string()
        ));
    }
    text.push_str(&format!("\nTotal: {}\n", d.total));
    let html = format!(
        "<p>Hello {},</p><p>thank you for your order <strong>{}</strong>.</p>\
         <table>{rows}</table><p>Total: <strong>{}</strong></p>",
        escape(&d.customer_name),
        escape(&order.id),
        escape(&d.total.to_string()),
    );
    EmailMessage::builder(from)
        .to(Mailbox::named(
            d.customer_email.as_str(),
            d.customer_name.as_str(),
        ))
        .subject(format!("Order {} confirmed", order.id))
        .text(text)
        .html(html)
        .category("order-confirmation")
        .custom_arg(crate::ORDER_ID_METADATA, order.id.as_str())
        .build()
}
