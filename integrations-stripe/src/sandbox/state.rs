//! The sandbox's data: objects, idempotency records, counters, events to deliver and the
//! (bounded) delivery log. Faults and the request log are the testkit server's.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{Value, json};

use super::retained::Retained;
use super::{Counters, DeliveryRecord, IntentCounters};

/// Payment intent statuses the sandbox moves through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntentStatus {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresCapture,
    Succeeded,
    Canceled,
}

impl IntentStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            IntentStatus::RequiresPaymentMethod => "requires_payment_method",
            IntentStatus::RequiresConfirmation => "requires_confirmation",
            IntentStatus::RequiresCapture => "requires_capture",
            IntentStatus::Succeeded => "succeeded",
            IntentStatus::Canceled => "canceled",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Intent {
    pub(crate) id: String,
    pub(crate) amount: i64,
    pub(crate) amount_capturable: i64,
    pub(crate) amount_received: i64,
    pub(crate) currency: String,
    pub(crate) status: IntentStatus,
    pub(crate) manual_capture: bool,
    pub(crate) client_secret: String,
    pub(crate) created: i64,
    pub(crate) customer: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) receipt_email: Option<String>,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) payment_method: Option<String>,
    pub(crate) payment_method_types: Vec<String>,
    pub(crate) last_payment_error: Option<Value>,
    pub(crate) latest_charge: Option<String>,
    pub(crate) canceled_at: Option<i64>,
    pub(crate) cancellation_reason: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct ChargeRec {
    pub(crate) id: String,
    pub(crate) amount: i64,
    pub(crate) amount_captured: i64,
    pub(crate) amount_refunded: i64,
    pub(crate) captured: bool,
    pub(crate) currency: String,
    pub(crate) created: i64,
    pub(crate) customer: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) payment_intent: String,
    pub(crate) payment_method: String,
    pub(crate) succeeded: bool,
    pub(crate) failure: Option<Decline>,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) refunds: Vec<String>,
}

impl ChargeRec {
    /// Released (never captured) remainder of a partial capture.
    pub(crate) fn released(&self) -> i64 {
        if self.captured {
            self.amount - self.amount_captured
        } else {
            0
        }
    }
    /// Captured and not yet refunded.
    pub(crate) fn refundable(&self) -> i64 {
        let refunded = (self.amount_refunded - self.released()).max(0);
        (self.amount_captured - refunded).max(0)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct RefundRec {
    pub(crate) id: String,
    pub(crate) amount: i64,
    pub(crate) charge: String,
    pub(crate) payment_intent: String,
    pub(crate) payment_method: String,
    pub(crate) currency: String,
    pub(crate) created: i64,
    pub(crate) reason: Option<String>,
    pub(crate) metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub(crate) struct CustomerRec {
    pub(crate) id: String,
    pub(crate) created: i64,
    pub(crate) email: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) phone: Option<String>,
    pub(crate) metadata: BTreeMap<String, String>,
}

/// How a test card declines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decline {
    pub(crate) code: &'static str,
    pub(crate) decline_code: &'static str,
    pub(crate) message: &'static str,
}

/// What the first request with an idempotency key got, replayed for the same key.
#[derive(Debug, Clone)]
pub(crate) struct StoredResponse {
    pub(crate) fingerprint: String,
    pub(crate) status: u16,
    pub(crate) body: Bytes,
    pub(crate) request_id: String,
}

/// An event waiting to be delivered.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) id: String,
    pub(crate) event_type: String,
    pub(crate) payload: Bytes,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    /// The latest `object_retention` payment intents, charges, refunds and customers, each
    /// kind on its own; [`Counters`] count every one. A forgotten object answers Stripe's
    /// `resource_missing` 404, as one that never existed.
    pub(crate) intents: Retained<Intent>,
    pub(crate) charges: Retained<ChargeRec>,
    pub(crate) refunds: Retained<RefundRec>,
    pub(crate) customers: Retained<CustomerRec>,
    /// The ids of the latest `event_retention` events, oldest first (Stripe itself keeps
    /// events 30 days); `counters.events` counts them all.
    pub(crate) event_ids: VecDeque<String>,
    /// The kept events, by id.
    pub(crate) events: HashMap<String, Value>,
    pub(crate) event_retention: usize,
    /// Stored first responses by (API key, idempotency key): the latest
    /// `idempotency_retention` keys (Stripe itself keeps them 24 hours).
    pub(crate) idempotency: HashMap<(String, String), StoredResponse>,
    /// The keys of `idempotency`, oldest first.
    pub(crate) idempotency_order: VecDeque<(String, String)>,
    pub(crate) idempotency_retention: usize,
    pub(crate) counters: Counters,
    pub(crate) per_intent: HashMap<String, IntentCounters>,
    pub(crate) outbox: Vec<Outgoing>,
    pub(crate) webhook_urls: Vec<String>,
    /// The latest `retention` deliveries; `counters.webhook_deliveries` counts them all.
    pub(crate) deliveries: VecDeque<DeliveryRecord>,
    pub(crate) retention: usize,
    pub(crate) api_version: String,
    /// The request being processed, for events' `request` field.
    pub(crate) current_request: Option<(String, Option<String>)>,
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `prefix` + `_` + 24 random base-62 characters, like Stripe's ids.
pub(crate) fn new_id(prefix: &str) -> String {
    random_token(prefix, 24)
}

pub(crate) fn random_token(prefix: &str, len: usize) -> String {
    let mut s = String::with_capacity(prefix.len() + 1 + len);
    s.push_str(prefix);
    s.push('_');
    for _ in 0..len {
        s.push(char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]));
    }
    s
}

impl State {
    pub(crate) fn intent_counters(&mut self, id: &str) -> &mut IntentCounters {
        self.per_intent.entry(id.to_owned()).or_default()
    }

    /// Empty object stores that keep the latest `retention` objects of each kind.
    pub(crate) fn with_object_retention(mut self, retention: usize) -> Self {
        self.intents = Retained::new(retention);
        self.charges = Retained::new(retention);
        self.refunds = Retained::new(retention);
        self.customers = Retained::new(retention);
        self
    }

    /// Stores a new payment intent and starts its counters, forgetting the oldest intents (and
    /// their counters) beyond the retention.
    pub(crate) fn store_intent(&mut self, pi: Intent) {
        let id = pi.id.clone();
        for old in self.intents.insert(id.clone(), pi) {
            self.per_intent.remove(&old);
        }
        self.counters.payment_intents_created += 1;
        self.intent_counters(&id);
    }

    /// Records an event about `object` and queues it for delivery.
    pub(crate) fn emit(&mut self, event_type: &str, object: Value) {
        let id = new_id("evt");
        let (request_id, idempotency_key) = match &self.current_request {
            Some((r, k)) => (Some(r.clone()), k.clone()),
            None => (None, None),
        };
        let event = json!({
            "id": id,
            "object": "event",
            "api_version": self.api_version,
            "created": now(),
            "data": { "object": object },
            "livemode": false,
            "pending_webhooks": self.webhook_urls.len(),
            "request": { "id": request_id, "idempotency_key": idempotency_key },
            "type": event_type,
        });
        // Stripe delivers pretty-printed JSON; a handler that re-serialises it breaks the
        // signature, as it would in production.
        let payload = serde_json::to_vec_pretty(&event).unwrap_or_default();
        self.counters.events += 1;
        if self.event_retention > 0 {
            while self.event_ids.len() >= self.event_retention {
                if let Some(old) = self.event_ids.pop_front() {
                    self.events.remove(&old);
                }
            }
            self.event_ids.push_back(id.clone());
            self.events.insert(id.clone(), event);
        }
        self.outbox.push(Outgoing {
            id,
            event_type: event_type.to_owned(),
            payload: Bytes::from(payload),
        });
    }

    /// A kept event, by id.
    pub(crate) fn event(&self, id: &str) -> Option<&Value> {
        self.events.get(id)
    }

    /// The kept events, oldest first.
    pub(crate) fn events_in_order(&self) -> impl DoubleEndedIterator<Item = &Value> {
        self.event_ids.iter().filter_map(|id| self.events.get(id))
    }

    /// Stores the first response to an idempotency key, forgetting the oldest key beyond the
    /// retention.
    pub(crate) fn store_idempotent(&mut self, scope: (String, String), response: StoredResponse) {
        if self.idempotency_retention == 0 {
            return;
        }
        if self.idempotency.insert(scope.clone(), response).is_none() {
            while self.idempotency_order.len() >= self.idempotency_retention {
                if let Some(old) = self.idempotency_order.pop_front() {
                    self.idempotency.remove(&old);
                }
            }
            self.idempotency_order.push_back(scope);
        }
    }

    /// Logs a finished delivery, keeping the latest `retention`.
    pub(crate) fn record_delivery(&mut self, delivery: DeliveryRecord) {
        self.counters.webhook_deliveries += 1;
        if delivery.delivered {
            self.counters.webhooks_delivered += 1;
        }
        if self.retention == 0 {
            return;
        }
        while self.deliveries.len() >= self.retention {
            self.deliveries.pop_front();
        }
        self.deliveries.push_back(delivery);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_keep_the_latest_and_count_all() {
        let mut s = State {
            retention: 2,
            ..State::default()
        };
        for i in 0..5 {
            s.record_delivery(DeliveryRecord {
                event_id: format!("evt_{i}"),
                event_type: "customer.created".into(),
                target: "callback".into(),
                attempts: 1,
                status: None,
                delivered: i % 2 == 0,
            });
        }
        let kept: Vec<_> = s.deliveries.iter().map(|d| d.event_id.as_str()).collect();
        assert_eq!(kept, ["evt_3", "evt_4"]);
        assert_eq!(s.counters.webhook_deliveries, 5);
        assert_eq!(s.counters.webhooks_delivered, 3);
    }

    #[test]
    fn events_and_idempotency_keys_keep_the_latest() {
        let mut s = State {
            event_retention: 2,
            idempotency_retention: 2,
            ..State::default()
        };
        for i in 0..5 {
            s.emit("customer.created", json!({ "id": format!("cus_{i}") }));
            let r = StoredResponse {
                fingerprint: String::new(),
                status: 200,
                body: Bytes::new(),
                request_id: format!("req_{i}"),
            };
            s.store_idempotent(("sk".into(), format!("k{i}")), r.clone());
            s.store_idempotent(("sk".into(), format!("k{i}")), r);
        }
        assert_eq!(s.counters.events, 5);
        assert_eq!((s.events.len(), s.event_ids.len()), (2, 2));
        let kept: Vec<_> = s
            .events_in_order()
            .map(|e| e["data"]["object"]["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kept, ["cus_3", "cus_4"]);
        assert!(
            s.event(&s.outbox[0].id).is_none(),
            "the oldest is forgotten"
        );
        assert_eq!(s.outbox.len(), 5, "every event is still delivered");
        let keys: Vec<_> = s
            .idempotency_order
            .iter()
            .map(|(_, k)| k.as_str())
            .collect();
        assert_eq!(keys, ["k3", "k4"]);
        assert_eq!(s.idempotency.len(), 2);
    }

    #[test]
    fn ids_look_like_stripes() {
        let id = new_id("pi");
        assert!(id.starts_with("pi_"));
        assert_eq!(id.len(), 27);
        assert!(id[3..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(new_id("pi"), new_id("pi"));
    }

    #[test]
    fn refundable_leaves_out_the_released_remainder() {
        let mut c = ChargeRec {
            id: "ch_1".into(),
            amount: 5000,
            amount_captured: 3000,
            amount_refunded: 2000,
            captured: true,
            currency: "usd".into(),
            created: 0,
            customer: None,
            description: None,
            payment_intent: "pi_1".into(),
            payment_method: "pm_card_visa".into(),
            succeeded: true,
            failure: None,
            metadata: BTreeMap::new(),
            refunds: vec![],
        };
        assert_eq!(c.refundable(), 3000);
        c.amount_refunded = 4500;
        assert_eq!(c.refundable(), 500);
        c.captured = false;
        c.amount_captured = 0;
        c.amount_refunded = 0;
        assert_eq!(c.refundable(), 0);
    }

    #[test]
    fn events_are_recorded_and_queued() {
        let mut s = State {
            api_version: "2025-03-31.basil".into(),
            event_retention: 10,
            current_request: Some(("req_1".into(), Some("k".into()))),
            ..State::default()
        };
        s.emit(
            "payment_intent.created",
            json!({"id": "pi_1", "object": "payment_intent"}),
        );
        assert_eq!(s.events.len(), 1);
        assert_eq!(s.counters.events, 1);
        let out = &s.outbox[0];
        let e: Value = serde_json::from_slice(&out.payload).unwrap();
        assert_eq!(e["request"]["idempotency_key"], "k");
        assert_eq!(e["type"], "payment_intent.created");
        assert_eq!(s.event(&out.id).unwrap()["id"], out.id.as_str());
        assert!(s.event("evt_missing").is_none());
        assert!(std::str::from_utf8(&out.payload).unwrap().contains("\n  "));
    }
}
