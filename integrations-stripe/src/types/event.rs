//! The Event object: what webhooks deliver and `GET /v1/events/{id}` returns.

use std::sync::OnceLock;

use integrations_core::{Error, Result};
use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_json::value::RawValue;

use crate::PROVIDER;

use super::{Charge, PaymentIntent, Refund, StripeObject};

/// A Stripe Event.
///
/// `data.object` is typed for payment intents, charges and refunds; any other object (a
/// customer, an invoice, a type added next year) is kept as raw JSON in
/// [`EventObject::Other`], never an error.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Event {
    /// `evt_…`: the key for deduplicating redeliveries.
    pub id: String,
    /// Event type (`payment_intent.succeeded`, `charge.refunded`, …).
    #[serde(rename = "type")]
    pub type_: String,
    /// Creation time, unix seconds.
    pub created: i64,
    /// Live or test mode.
    #[serde(default)]
    pub livemode: bool,
    /// API version `data.object` is rendered in (`None` for some Connect events).
    #[serde(default)]
    pub api_version: Option<String>,
    /// The object and, for `*.updated`, the previous values of changed fields.
    pub data: EventData,
    /// The API request that caused the event, if any.
    #[serde(default)]
    pub request: Option<EventRequest>,
    /// Webhook endpoints still to be delivered to.
    #[serde(default)]
    pub pending_webhooks: i64,
    /// Connected account, for Connect events.
    #[serde(default)]
    pub account: Option<String>,
}

impl StripeObject for Event {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Event {
    /// The object the event is about, parsed on first use (see [`EventData::object`]).
    ///
    /// # Errors
    /// As [`EventData::object`].
    pub fn object(&self) -> Result<&EventObject> {
        self.data.object()
    }

    /// The event type (`payment_intent.succeeded`).
    pub fn event_type(&self) -> &str {
        &self.type_
    }

    /// The payment intent, for `payment_intent.*` events.
    pub fn payment_intent(&self) -> Option<&PaymentIntent> {
        match self.data.object().ok()? {
            EventObject::PaymentIntent(p) => Some(p),
            _ => None,
        }
    }

    /// The charge, for `charge.*` events.
    pub fn charge(&self) -> Option<&Charge> {
        match self.data.object().ok()? {
            EventObject::Charge(c) => Some(c),
            _ => None,
        }
    }

    /// The refund, for `refund.*` events.
    pub fn refund(&self) -> Option<&Refund> {
        match self.data.object().ok()? {
            EventObject::Refund(r) => Some(r),
            _ => None,
        }
    }
}

/// The `data` of an event.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct EventData {
    /// The object the event is about, as it was when the event happened, as sent: parsed only
    /// when asked for ([`EventData::object`]), so verifying a webhook never pays for it and an
    /// object newer than this crate's types (an unknown enum value, a currency missing from
    /// core's table) does not fail the delivery.
    #[serde(rename = "object")]
    raw_object: Box<RawValue>,
    /// For `*.updated` events, the changed fields' previous values, as sent.
    #[serde(default, rename = "previous_attributes")]
    raw_previous_attributes: Option<Box<RawValue>>,
    #[serde(skip)]
    parsed: OnceLock<std::result::Result<EventObject, String>>,
}

impl PartialEq for EventData {
    fn eq(&self, other: &Self) -> bool {
        self.raw_object.get() == other.raw_object.get()
            && self.raw_previous_attributes.as_ref().map(|r| r.get())
                == other.raw_previous_attributes.as_ref().map(|r| r.get())
    }
}

impl EventData {
    /// The object, typed by its `object` field; parsed on the first call, then kept.
    ///
    /// # Errors
    /// [`Error::Provider`] when the object claims a known type (`payment_intent`, `charge`,
    /// `refund`) but does not parse as one — a typed field would lie otherwise. Unknown types
    /// are [`EventObject::Other`], never an error.
    pub fn object(&self) -> Result<&EventObject> {
        self.parsed
            .get_or_init(|| {
                serde_json::from_str::<EventObject>(self.raw_object.get())
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| {
                Error::provider(format!("event object does not parse: {e}")).with_provider(PROVIDER)
            })
    }

    /// The object's JSON as sent.
    pub fn raw_object(&self) -> &str {
        self.raw_object.get()
    }

    /// For `*.updated` events, the changed fields' previous values.
    pub fn previous_attributes(&self) -> Option<serde_json::Value> {
        self.raw_previous_attributes
            .as_ref()
            .and_then(|r| serde_json::from_str(r.get()).ok())
    }
}

/// An event's object, typed by its `object` field.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EventObject {
    /// `"object": "payment_intent"`.
    PaymentIntent(Box<PaymentIntent>),
    /// `"object": "charge"`.
    Charge(Box<Charge>),
    /// `"object": "refund"`.
    Refund(Box<Refund>),
    /// Anything else, untouched.
    Other(serde_json::Value),
}

impl EventObject {
    /// The object's `object` name (`"payment_intent"`, `"customer"`, …), if it has one.
    pub fn object_name(&self) -> Option<&str> {
        match self {
            EventObject::PaymentIntent(_) => Some("payment_intent"),
            EventObject::Charge(_) => Some("charge"),
            EventObject::Refund(_) => Some("refund"),
            EventObject::Other(v) => v.get("object").and_then(|o| o.as_str()),
        }
    }
}

impl<'de> Deserialize<'de> for EventObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        let kind = value
            .get("object")
            .and_then(|o| o.as_str())
            .unwrap_or("")
            .to_owned();
        // A known object that does not parse is an error (a typed field would lie otherwise);
        // an unknown one is kept as it came.
        let typed = match kind.as_str() {
            "payment_intent" => {
                PaymentIntent::deserialize(value).map(|p| EventObject::PaymentIntent(Box::new(p)))
            }
            "charge" => Charge::deserialize(value).map(|c| EventObject::Charge(Box::new(c))),
            "refund" => Refund::deserialize(value).map(|r| EventObject::Refund(Box::new(r))),
            _ => return Ok(EventObject::Other(value)),
        };
        typed.map_err(|e| de::Error::custom(format!("data.object ({kind}): {e}")))
    }
}

/// The API request behind an event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct EventRequest {
    /// `req_…`, or `None` for events Stripe caused itself.
    #[serde(default)]
    pub id: Option<String>,
    /// The request's `Idempotency-Key`.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use integrations_core::{Currency, Money};

    #[test]
    fn types_known_objects_and_keeps_others() {
        let pi = r#"{"id":"evt_1","object":"event","type":"payment_intent.succeeded","created":1,
            "livemode":false,"api_version":"2025-03-31.basil","pending_webhooks":1,
            "request":{"id":"req_1","idempotency_key":"order-1/payment"},
            "data":{"object":{"id":"pi_1","object":"payment_intent","amount":500,"currency":"usd","status":"succeeded"}}}"#;
        let e: Event = serde_json::from_str(pi).unwrap();
        assert_eq!(e.event_type(), "payment_intent.succeeded");
        assert_eq!(
            e.payment_intent().unwrap().amount,
            Money::from_minor(500, Currency::USD)
        );
        assert_eq!(
            e.request.unwrap().idempotency_key.as_deref(),
            Some("order-1/payment")
        );

        let plan = r#"{"id":"evt_2","object":"event","type":"plan.created","created":1,"api_version":null,
            "data":{"object":{"id":"price_1","object":"plan","amount":2000}}}"#;
        let e: Event = serde_json::from_str(plan).unwrap();
        assert_eq!(e.object().unwrap().object_name(), Some("plan"));
        assert!(matches!(e.object().unwrap(), EventObject::Other(_)));
        assert!(e.payment_intent().is_none());

        let broken = r#"{"id":"evt_3","type":"charge.refunded","created":1,
            "data":{"object":{"id":"ch_1","object":"charge"}}}"#;
        // The envelope parses (the delivery is not refused); the broken object is an error
        // when asked for, never a lying typed value.
        let e = serde_json::from_str::<Event>(broken).unwrap();
        let err = e.object().unwrap_err();
        assert!(err.to_string().contains("data.object (charge)"), "{err}");
        assert!(e.charge().is_none());
    }
}
