//! The orders, the sandboxes and the webhook deliveries both sides share.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use integrations_core::{Currency, Error, Money, Result};
use integrations_stripe::sandbox::WebhookDelivery;
use serde::Deserialize;

/// A Stripe test card that succeeds.
pub(crate) const CARD: &str = "pm_card_visa";
/// The shop's sender address and name.
pub(crate) const FROM: (&str, &str) = ("orders@example.com", "Trailhead Shop");
/// The shop's order line: both sides carry the same lines.
pub(crate) use integrations_shop::LineItem as Item;
/// Job kinds and the sheet, as the shop names them.
pub(crate) use integrations_shop::jobs::{EMAIL, METRICS, NOTIFY, SHEET, SHEETS_APPEND};
/// The payment's webhook event, the one the flow acts on.
pub(crate) const SUCCEEDED: &str = "payment_intent.succeeded";
/// Longest an order may take before the run calls it lost (a correctness guard, not a goal).
pub(crate) const ORDER_DEADLINE: Duration = Duration::from_secs(30);

/// One order: two lines, paid with a test card that succeeds.
#[derive(Debug, Clone)]
pub(crate) struct Order {
    pub(crate) id: String,
    pub(crate) customer_name: String,
    pub(crate) customer_email: String,
    pub(crate) items: Vec<Item>,
}

static NEXT_ORDER: AtomicU64 = AtomicU64::new(1);

impl Order {
    /// A fresh order; `side` is one letter so that both sides' ids have the same length.
    pub(crate) fn next(side: char) -> Order {
        let n = NEXT_ORDER.fetch_add(1, Ordering::Relaxed);
        Order {
            id: format!("ord_{side}_{n:07}"),
            customer_name: "Jane Doe".to_owned(),
            customer_email: format!("jane.{n}@example.com"),
            items: vec![
                Item::new(
                    "trail-shoes",
                    "Trail shoes",
                    2,
                    Money::from_minor(4999, Currency::USD),
                ),
                Item::new(
                    "wool-socks",
                    "Wool socks",
                    1,
                    Money::from_minor(999, Currency::USD),
                ),
            ],
        }
    }

    pub(crate) fn total_minor(&self) -> i64 {
        self.items
            .iter()
            .map(|i| i64::from(i.quantity) * i.unit_price.minor())
            .sum()
    }
}

/// The signed `payment_intent.succeeded` deliveries, by payment intent, as the Stripe sandbox
/// hands them to its callback (synchronously, before the confirm call's response is sent).
#[derive(Debug, Default)]
pub(crate) struct Deliveries(Mutex<HashMap<String, WebhookDelivery>>);

/// The only part of an event the callback reads: `data.object.id`.
#[derive(Deserialize)]
struct EventHead {
    data: EventHeadData,
}
#[derive(Deserialize)]
struct EventHeadData {
    object: IdOnly,
}
#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

impl Deliveries {
    /// Keeps a `payment_intent.succeeded` delivery for its payment intent; ignores the rest.
    pub(crate) fn offer(&self, d: WebhookDelivery) {
        if d.event_type != SUCCEEDED {
            return;
        }
        if let Ok(head) = serde_json::from_slice::<EventHead>(&d.payload) {
            self.lock().insert(head.data.object.id, d);
        }
    }

    /// The delivery for `payment_intent`, once.
    pub(crate) fn take(&self, payment_intent: &str) -> Option<WebhookDelivery> {
        self.lock().remove(payment_intent)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, WebhookDelivery>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The three sandboxes, on loopback ports of the bench's runtime.
pub(crate) struct Sandboxes {
    pub(crate) stripe: integrations_stripe::sandbox::Sandbox,
    pub(crate) sendgrid: integrations_sendgrid::sandbox::Sandbox,
    pub(crate) sheets: integrations_sheets::sandbox::Sandbox,
    pub(crate) deliveries: Arc<Deliveries>,
}

impl Sandboxes {
    pub(crate) async fn start() -> Result<Sandboxes> {
        let io = |e: std::io::Error| Error::unavailable(format!("cannot start a sandbox: {e}"));
        let stripe = integrations_stripe::sandbox::Sandbox::start()
            .await
            .map_err(io)?;
        let deliveries = Arc::new(Deliveries::default());
        let d = deliveries.clone();
        stripe.on_webhook(move |delivery| d.offer(delivery));
        let sendgrid = integrations_sendgrid::sandbox::Sandbox::start()
            .await
            .map_err(io)?;
        // Google's 60 writes a minute would make this a measurement of the quota.
        let sheets = integrations_sheets::sandbox::Sandbox::builder()
            .write_requests_per_minute(1_000_000)
            .read_requests_per_minute(1_000_000)
            .start()
            .await?;
        sheets.add_sheet(sheets.spreadsheet_id(), SHEET);
        Ok(Sandboxes {
            stripe,
            sendgrid,
            sheets,
            deliveries,
        })
    }

    /// Forgets the rows and the mails (outside timing): the Sheets sandbox's append scans the
    /// sheet, so a sheet that grew through a long run would slow later rounds.
    pub(crate) fn reset(&self) {
        self.sheets
            .create_spreadsheet(self.sheets.spreadsheet_id(), &[SHEET]);
        self.sendgrid.reset();
    }
}

/// Where one order's time went.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Phases {
    /// Create and confirm the payment intent (two Stripe round trips).
    pub(crate) checkout: Duration,
    /// Verify the signed event and record it once (ours: with its jobs, in the outbox).
    pub(crate) record: Duration,
    /// The four side effects, from the record until the last is delivered.
    pub(crate) fanout: Duration,
}
