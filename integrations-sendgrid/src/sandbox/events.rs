//! Signed Event Webhook batches for accepted messages.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::HeaderMap;
use integrations_core::clock::unix_seconds;
use integrations_core::{Error, Result};
use rand_core::RngCore;
use serde_json::{Map, Value, json};

use super::{AcceptedMessage, Shared};
use crate::webhook::{EventType, SignedWebhook};

/// A function receiving each batch, instead of an HTTP endpoint.
pub type WebhookCallback = Arc<dyn Fn(&WebhookDelivery) + Send + Sync>;

/// Where the sandbox sends event batches.
#[derive(Clone)]
#[non_exhaustive]
pub enum WebhookTarget {
    /// `POST` to this URL with the signature headers.
    Url(String),
    /// Call this function.
    Callback(WebhookCallback),
}

impl fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebhookTarget::Url(u) => f.debug_tuple("Url").field(u).finish(),
            WebhookTarget::Callback(_) => f.write_str("Callback(..)"),
        }
    }
}

/// One signed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebhookDelivery {
    /// The body exactly as signed and sent (events separated by `,\r\n`, ending in `\r\n`, as
    /// SendGrid sends them).
    pub body: Bytes,
    /// Signature and timestamp.
    pub signed: SignedWebhook,
    /// The URL's answer status, when sent to a URL and answered.
    pub status: Option<u16>,
}

impl WebhookDelivery {
    /// The headers the batch was (or would be) sent with.
    pub fn headers(&self) -> HeaderMap {
        self.signed.headers()
    }
}

fn random_id(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand_core::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// A fresh `X-Message-Id`: 22 characters of URL-safe base64, like SendGrid's.
pub(crate) fn message_id() -> String {
    random_id(16)
}

fn event_fields(kind: EventType) -> Option<Value> {
    Some(match kind {
        EventType::Processed | EventType::SpamReport | EventType::Unsubscribe => json!({}),
        EventType::Delivered => json!({"response": "250 2.0.0 OK", "tls": 1}),
        EventType::Deferred => json!({"response": "450 4.2.1 try again later", "attempt": "1"}),
        EventType::Bounce => json!({
            "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
            "status": "5.1.1", "type": "bounce", "bounce_classification": "Invalid Address"
        }),
        EventType::Dropped => json!({"reason": "Bounced Address", "status": "5.0.0"}),
        EventType::Open => {
            json!({"useragent": "Mozilla/5.0 (sandbox)", "ip": "127.0.0.1", "sg_machine_open": false})
        }
        EventType::Click => {
            json!({"url": "https://example.com/", "useragent": "Mozilla/5.0 (sandbox)", "ip": "127.0.0.1", "url_offset": {"index": 0, "type": "html"}})
        }
        EventType::GroupUnsubscribe | EventType::GroupResubscribe => json!({"asm_group_id": 1}),
        _ => return None,
    })
}

/// The events for `kinds` for every recipient of `msg`, in SendGrid's shape.
fn events_for(msg: &AcceptedMessage, kinds: &[EventType], now: i64) -> Vec<Value> {
    let mut out = Vec::new();
    let mail = &msg.mail;
    for (i, p) in mail.personalizations.iter().enumerate() {
        let mut args = mail.custom_args.clone();
        args.extend(p.custom_args.iter().map(|(k, v)| (k.clone(), v.clone())));
        for (j, r) in p.recipients().enumerate() {
            for &kind in kinds {
                let Some(Value::Object(extra)) = event_fields(kind) else {
                    continue;
                };
                let mut e = Map::new();
                for (k, v) in &args {
                    e.insert(k.clone(), Value::String(v.clone()));
                }
                e.insert("email".into(), json!(r.email));
                e.insert("timestamp".into(), json!(now));
                e.insert("event".into(), json!(kind.as_str()));
                e.insert("sg_event_id".into(), json!(random_id(24)));
                e.insert(
                    "sg_message_id".into(),
                    json!(format!("{}.sandbox-{i}-{j}-0.0", msg.message_id)),
                );
                e.insert(
                    "smtp-id".into(),
                    json!(format!("<{}@sandbox.sendgrid.invalid>", msg.message_id)),
                );
                if !mail.categories.is_empty() {
                    e.insert("category".into(), json!(mail.categories));
                }
                e.extend(extra);
                out.push(Value::Object(e));
            }
        }
    }
    out
}

/// Builds, signs, records and sends one batch.
pub(super) async fn deliver(
    shared: &Shared,
    messages: &[AcceptedMessage],
    kinds: &[EventType],
) -> Result<WebhookDelivery> {
    let now = unix_seconds(shared.clock.now());
    let events: Vec<String> = messages
        .iter()
        .flat_map(|m| events_for(m, kinds, now))
        .map(|e| e.to_string())
        .collect();
    let body = Bytes::from(format!("[{}]\r\n", events.join(",\r\n")));
    let signed = shared.signer.sign_for_test(now, &body);
    let mut delivery = WebhookDelivery {
        body,
        signed,
        status: None,
    };
    let target = shared.lock().webhook.clone();
    let outcome = match target {
        None => Ok(()),
        Some(WebhookTarget::Callback(f)) => {
            f(&delivery);
            Ok(())
        }
        Some(WebhookTarget::Url(url)) => {
            let sent = integrations_core::http::default_client()
                .post(&url)
                .headers(delivery.headers())
                .body(delivery.body.clone())
                .send()
                .await;
            match sent {
                Ok(resp) => {
                    delivery.status = Some(resp.status().as_u16());
                    Ok(())
                }
                Err(e) => Err(Error::unavailable("could not deliver the event batch")
                    .with_provider("sendgrid-sandbox")
                    .with_source(e.without_url())),
            }
        }
    };
    shared.lock().record_delivery(delivery.clone());
    outcome.map(|()| delivery)
}
