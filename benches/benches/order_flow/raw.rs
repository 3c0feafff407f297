//! Raw: the same requests, by hand, in sequence, with a bare `reqwest::Client`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use integrations_core::{Error, Result};
use integrations_sheets::credentials::{GOOGLE_TOKEN_URI, SPREADSHEETS_SCOPE};
use integrations_stripe::DEFAULT_API_VERSION;
use integrations_stripe::sandbox::SANDBOX_SECRET_KEY;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::durable::{Db, Ledger};
use crate::model::{
    CARD, Deliveries, EMAIL, FROM, METRICS, NOTIFY, Order, Phases, SHEET, SHEETS_APPEND, SUCCEEDED,
    Sandboxes,
};

/// What raw reads of a payment intent.
#[derive(Deserialize)]
struct RawIntent {
    id: String,
    status: String,
}

/// What raw reads of the `payment_intent.succeeded` event.
#[derive(Deserialize)]
struct RawEvent {
    id: String,
    #[serde(rename = "type")]
    type_: String,
    created: i64,
    data: RawEventData,
}
#[derive(Deserialize)]
struct RawEventData {
    object: RawEventIntent,
}
#[derive(Deserialize)]
struct RawEventIntent {
    id: String,
    amount_received: i64,
    currency: String,
    metadata: HashMap<String, String>,
}

/// What raw keeps in memory in place of the outbox, the notifier and the counters.
#[derive(Default)]
struct RawBook {
    events: HashSet<String>,
    /// Dedup id → (message id, body), as a FIFO topic would keep them.
    notifications: HashMap<String, (String, String)>,
    paid_minor: i64,
}

/// Raw: a bare `reqwest::Client`, hand-written bodies, no policy, no outbox.
pub(crate) struct Raw {
    http: reqwest::Client,
    stripe_base: String,
    sendgrid_url: String,
    sendgrid_auth: String,
    sheets_append_url: String,
    sheets_auth: String,
    webhook_secret: Vec<u8>,
    deliveries: Arc<Deliveries>,
    book: Mutex<RawBook>,
    /// The durable baseline's bookkeeping (`None`: raw, in memory).
    ledger: Option<Ledger>,
}

/// Raw's errors are plain text.
pub(crate) type RawResult<T> = std::result::Result<T, String>;

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Stripe's scheme by hand: `t=<unix>,v1=<hex>`, HMAC-SHA256 of `"{t}." + body`, constant-time
/// compare, 300 s tolerance.
fn raw_verify(secret: &[u8], body: &[u8], header: &str) -> RawResult<()> {
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = Some(v),
            Some(("v1", v)) => signatures.push(v),
            _ => {}
        }
    }
    let t = t.ok_or("no timestamp")?;
    let ts: i64 = t.parse().map_err(|_| "bad timestamp")?;
    if (unix_now() - ts).abs() > 300 {
        return Err("timestamp outside the tolerance".into());
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|e| e.to_string())?;
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    let ok = signatures
        .iter()
        .filter_map(|s| hex_decode(s))
        .any(|sig| mac.clone().verify_slice(&sig).is_ok());
    if ok {
        Ok(())
    } else {
        Err("no matching signature".into())
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn decimal(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

impl Raw {
    pub(crate) async fn start(
        sb: &Sandboxes,
        durable: Option<Db>,
        concurrency: usize,
    ) -> Result<Raw> {
        let ledger = match durable {
            Some(db) => Some(
                Ledger::open(db, concurrency)
                    .await
                    .map_err(Error::unavailable)?,
            ),
            None => None,
        };
        let http = reqwest::Client::new();
        // The access token, fetched once before timing (ours caches its token the same way).
        let key = sb.sheets.service_account().key()?;
        let assertion = key.assertion(SPREADSHEETS_SCOPE, GOOGLE_TOKEN_URI, SystemTime::now())?;
        let body = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
        );
        let token: Value = http
            .post(sb.sheets.token_url())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| Error::unavailable(format!("token: {e}")))?
            .json()
            .await
            .map_err(|e| Error::provider(format!("token: {e}")))?;
        let token = token["access_token"]
            .as_str()
            .ok_or_else(|| Error::provider("no access_token"))?;
        Ok(Raw {
            http,
            stripe_base: sb.stripe.base_url(),
            sendgrid_url: format!("{}/v3/mail/send", sb.sendgrid.base_url()),
            sendgrid_auth: format!("Bearer {}", sb.sendgrid.api_key()),
            sheets_append_url: format!(
                "{}v4/spreadsheets/{}/values/{SHEET}%21A1:append?valueInputOption=RAW&insertDataOption=INSERT_ROWS",
                sb.sheets.base_url(),
                sb.sheets.spreadsheet_id()
            ),
            sheets_auth: format!("Bearer {token}"),
            webhook_secret: sb.stripe.webhook_secret_text().as_bytes().to_vec(),
            deliveries: sb.deliveries.clone(),
            book: Mutex::new(RawBook::default()),
            ledger,
        })
    }

    async fn stripe(&self, path: &str, key: &str, form: String) -> RawResult<RawIntent> {
        let resp = self
            .http
            .post(format!("{}{path}", self.stripe_base))
            .header("authorization", format!("Bearer {SANDBOX_SECRET_KEY}"))
            .header("stripe-version", DEFAULT_API_VERSION)
            .header("idempotency-key", key)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("{path}: HTTP {}", resp.status()));
        }
        let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    }

    async fn post_json(&self, url: &str, auth: &str, body: &Value) -> RawResult<()> {
        let resp = self
            .http
            .post(url)
            .header("authorization", auth)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).map_err(|e| e.to_string())?)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let _ = resp.bytes().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("{url}: HTTP {status}"))
        }
    }

    pub(crate) async fn order(&self, order: &Order) -> RawResult<Phases> {
        let started = Instant::now();
        let id = &order.id;
        let total = order.total_minor();
        let form = format!(
            "amount={total}&currency=usd&payment_method_types[0]=card&capture_method=automatic\
             &description=Order+{id}&metadata[order_id]={id}&expand[0]=latest_charge"
        );
        let pi = self
            .stripe("/v1/payment_intents", &format!("{id}/payment"), form)
            .await?;
        let form = format!("payment_method={CARD}&expand[0]=latest_charge");
        let path = format!("/v1/payment_intents/{}/confirm", pi.id);
        let confirmed = self
            .stripe(&path, &format!("{id}/payment/confirm"), form)
            .await?;
        if confirmed.status != "succeeded" {
            return Err(format!("{} is {}", pi.id, confirmed.status));
        }
        let checkout = started.elapsed();
        let d = self
            .deliveries
            .take(&pi.id)
            .ok_or_else(|| format!("no {SUCCEEDED} for {}", pi.id))?;
        raw_verify(&self.webhook_secret, &d.payload, &d.signature)?;
        let ev: RawEvent = serde_json::from_slice(&d.payload).map_err(|e| e.to_string())?;
        let obj = &ev.data.object;
        if ev.type_ != SUCCEEDED || obj.metadata.get("order_id") != Some(id) {
            return Err(format!("unexpected event {}", ev.id));
        }
        // Durable: the event and its four jobs in one commit; else a set in memory.
        let jobs = match &self.ledger {
            Some(ledger) => ledger
                .record(&ev.id, &[EMAIL, SHEETS_APPEND, NOTIFY, METRICS])
                .await?
                .ok_or_else(|| format!("{} delivered twice", ev.id))?,
            None => {
                if !self.lock().events.insert(ev.id.clone()) {
                    return Err(format!("{} delivered twice", ev.id));
                }
                Vec::new()
            }
        };
        let jobs = &jobs;
        let done = |i: usize| async move {
            match (&self.ledger, jobs.get(i)) {
                (Some(ledger), Some(id)) => ledger.done(*id).await,
                _ => Ok(()),
            }
        };
        let recorded = started.elapsed();
        let paid = decimal(obj.amount_received);
        let currency = obj.currency.to_uppercase();
        self.post_json(
            &self.sendgrid_url,
            &self.sendgrid_auth,
            &self.mail(order, &ev, &currency),
        )
        .await?;
        done(0).await?;
        let row = json!({
            "range": format!("{SHEET}!A1"),
            "majorDimension": "ROWS",
            "values": [[id, "paid", paid, currency, order.items.len(), obj.id, "0.00", ev.created]],
        });
        self.post_json(&self.sheets_append_url, &self.sheets_auth, &row)
            .await?;
        done(1).await?;
        {
            let mut book = self.lock();
            let n = book.notifications.len() + 1;
            book.notifications
                .entry(format!("{}/{NOTIFY}", ev.id))
                .or_insert_with(|| {
                    (
                        format!("mem-{n}"),
                        format!("Order {id} paid: {paid} {currency}"),
                    )
                });
            book.paid_minor += obj.amount_received;
        }
        done(2).await?;
        done(3).await?;
        Ok(Phases {
            checkout,
            record: recorded - checkout,
            fanout: started.elapsed() - recorded,
        })
    }

    /// The confirmation mail as SendGrid's v3 JSON, rendered by hand.
    fn mail(&self, order: &Order, ev: &RawEvent, currency: &str) -> Value {
        let id = &order.id;
        let name = &order.customer_name;
        let money = |minor: i64| format!("{} {currency}", decimal(minor));
        let (mut text_lines, mut html_rows) = (String::new(), String::new());
        for i in &order.items {
            let line = i64::from(i.quantity) * i.unit_price.minor();
            text_lines.push_str(&format!(
                "- {} x {} at {}: {}\n",
                i.quantity,
                i.name,
                money(i.unit_price.minor()),
                money(line)
            ));
            html_rows.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                i.name,
                i.quantity,
                money(i.unit_price.minor()),
                money(line)
            ));
        }
        let total = money(ev.data.object.amount_received);
        json!({
            "personalizations": [{"to": [{"email": order.customer_email, "name": name}]}],
            "from": {"email": FROM.0, "name": FROM.1},
            "subject": format!("Order #{id} confirmed"),
            "content": [
                {"type": "text/plain", "value": format!(
                    "Hi {name},\n\nThank you for your order #{id}.\n\n{text_lines}\nTotal: {total}\n")},
                {"type": "text/html", "value": format!(
                    "<p>Hi {name},</p><p>Thank you for your order #{id}.</p><table><tr><th>Item</th>\
                     <th>Qty</th><th>Price</th><th>Subtotal</th></tr>{html_rows}</table>\
                     <p><strong>Total: {total}</strong></p>")},
            ],
            "categories": ["order_confirmation"],
            "custom_args": {"event_id": ev.id, "order_id": id},
        })
    }

    /// Closes the baseline's database.
    pub(crate) async fn close(self) {
        if let Some(l) = self.ledger {
            l.close().await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RawBook> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
