//! Typed Event Webhook events.
//!
//! SendGrid posts a JSON array of events. Every event carries `email`, `timestamp`, `event`,
//! `sg_event_id` (unique per event: the dedup key) and usually `sg_message_id`, which is the
//! `X-Message-Id` of the send followed by `.` and a per-recipient suffix. Custom arguments of the
//! send (`custom_args`) appear as top-level fields of each event.

use std::collections::BTreeMap;

use integrations_core::{Error, Result};
use serde_json::{Map, Value};

use crate::PROVIDER;

/// The kind of an event, without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EventType {
    /// Accepted and about to be delivered.
    Processed,
    /// Accepted by the receiving server.
    Delivered,
    /// Temporarily refused; SendGrid retries.
    Deferred,
    /// Permanently refused (or blocked).
    Bounce,
    /// Not sent (suppressed, invalid, …).
    Dropped,
    /// Opened.
    Open,
    /// A link was clicked.
    Click,
    /// Marked as spam.
    SpamReport,
    /// Unsubscribed from everything.
    Unsubscribe,
    /// Unsubscribed from one group.
    GroupUnsubscribe,
    /// Resubscribed to one group.
    GroupResubscribe,
    /// A kind this crate does not know.
    Unknown,
}

impl EventType {
    /// Every known kind.
    pub const KNOWN: [EventType; 11] = [
        EventType::Processed,
        EventType::Delivered,
        EventType::Deferred,
        EventType::Bounce,
        EventType::Dropped,
        EventType::Open,
        EventType::Click,
        EventType::SpamReport,
        EventType::Unsubscribe,
        EventType::GroupUnsubscribe,
        EventType::GroupResubscribe,
    ];

    /// The wire name (`"group_unsubscribe"`); `"unknown"` for [`EventType::Unknown`].
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::Processed => "processed",
            EventType::Delivered => "delivered",
            EventType::Deferred => "deferred",
            EventType::Bounce => "bounce",
            EventType::Dropped => "dropped",
            EventType::Open => "open",
            EventType::Click => "click",
            EventType::SpamReport => "spamreport",
            EventType::Unsubscribe => "unsubscribe",
            EventType::GroupUnsubscribe => "group_unsubscribe",
            EventType::GroupResubscribe => "group_resubscribe",
            EventType::Unknown => "unknown",
        }
    }

    /// The kind for a wire name; [`EventType::Unknown`] for anything else.
    pub fn from_wire(s: &str) -> EventType {
        EventType::KNOWN
            .into_iter()
            .find(|k| k.as_str() == s)
            .unwrap_or(EventType::Unknown)
    }
}

/// What happened, with the fields specific to that kind.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EventKind {
    /// `processed`.
    Processed,
    /// `delivered`.
    Delivered {
        /// The receiving server's answer (`250 OK`).
        response: Option<String>,
    },
    /// `deferred`.
    Deferred {
        /// The receiving server's answer.
        response: Option<String>,
        /// Delivery attempt number.
        attempt: Option<u32>,
    },
    /// `bounce`.
    Bounce {
        /// The receiving server's reason.
        reason: Option<String>,
        /// Enhanced status code (`5.1.1`).
        status: Option<String>,
        /// `bounce` or `blocked`.
        bounce_type: Option<String>,
        /// SendGrid's classification (`Invalid Address`, …).
        classification: Option<String>,
    },
    /// `dropped`.
    Dropped {
        /// Why (`Bounced Address`, `Unsubscribed Address`, …).
        reason: Option<String>,
    },
    /// `open`.
    Open {
        /// Client user agent.
        user_agent: Option<String>,
        /// Client IP.
        ip: Option<String>,
        /// `sg_machine_open`: the open came from a mail client's prefetch, not a person.
        machine_open: bool,
    },
    /// `click`.
    Click {
        /// The clicked URL.
        url: Option<String>,
        /// Client user agent.
        user_agent: Option<String>,
        /// Client IP.
        ip: Option<String>,
    },
    /// `spamreport`.
    SpamReport,
    /// `unsubscribe`.
    Unsubscribe,
    /// `group_unsubscribe`.
    GroupUnsubscribe {
        /// The group.
        asm_group_id: Option<i64>,
    },
    /// `group_resubscribe`.
    GroupResubscribe {
        /// The group.
        asm_group_id: Option<i64>,
    },
    /// A kind this crate does not know; its fields are in [`Event::raw`].
    Unknown {
        /// The wire name.
        event: String,
    },
}

/// One verified event.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Event {
    /// `sg_event_id`: unique per event, the dedup key.
    pub event_id: String,
    /// `sg_message_id`: the send's `X-Message-Id`, `.`, and a per-recipient suffix.
    pub sg_message_id: Option<String>,
    /// Recipient.
    pub email: String,
    /// Unix time of the event.
    pub timestamp: i64,
    /// Categories of the send.
    pub categories: Vec<String>,
    /// What happened.
    pub kind: EventKind,
    /// Every field as received, custom arguments included.
    pub raw: Map<String, Value>,
}

/// The `X-Message-Id` of the send an `sg_message_id` belongs to: the part before the first `.`.
///
/// ```
/// use integrations_sendgrid::webhook::message_id_of;
/// assert_eq!(
///     message_id_of("LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0"),
///     "LRzXl_NHStOGhQ4kofSm_A"
/// );
/// assert_eq!(message_id_of("no-suffix"), "no-suffix");
/// ```
pub fn message_id_of(sg_message_id: &str) -> &str {
    sg_message_id
        .split_once('.')
        .map_or(sg_message_id, |(id, _)| id)
}

/// Fields SendGrid itself sets on events; every other string field is a custom argument.
const STANDARD_FIELDS: &[&str] = &[
    "email",
    "timestamp",
    "event",
    "sg_event_id",
    "sg_message_id",
    "smtp-id",
    "category",
    "response",
    "attempt",
    "reason",
    "status",
    "type",
    "bounce_classification",
    "useragent",
    "ip",
    "url",
    "url_offset",
    "sg_machine_open",
    "asm_group_id",
    "tls",
    "cert_err",
    "send_at",
    "marketing_campaign_id",
    "marketing_campaign_name",
    "sg_template_id",
    "sg_template_name",
    "pool",
];

impl Event {
    /// The key to deduplicate redeliveries by: `sendgrid:<sg_event_id>`. It is namespaced by
    /// provider (Stripe's are `stripe:<id>`, Standard Webhooks' `standard-webhooks:<id>`), so
    /// one dedup store shared by several senders cannot be poisoned by an id another sender
    /// chose.
    pub fn dedup_key(&self) -> String {
        format!("sendgrid:{}", self.event_id)
    }

    /// The kind, without data.
    pub fn event_type(&self) -> EventType {
        match &self.kind {
            EventKind::Processed => EventType::Processed,
            EventKind::Delivered { .. } => EventType::Delivered,
            EventKind::Deferred { .. } => EventType::Deferred,
            EventKind::Bounce { .. } => EventType::Bounce,
            EventKind::Dropped { .. } => EventType::Dropped,
            EventKind::Open { .. } => EventType::Open,
            EventKind::Click { .. } => EventType::Click,
            EventKind::SpamReport => EventType::SpamReport,
            EventKind::Unsubscribe => EventType::Unsubscribe,
            EventKind::GroupUnsubscribe { .. } => EventType::GroupUnsubscribe,
            EventKind::GroupResubscribe { .. } => EventType::GroupResubscribe,
            EventKind::Unknown { .. } => EventType::Unknown,
        }
    }

    /// The `X-Message-Id` of the send this event belongs to (see [`message_id_of`]).
    pub fn message_id(&self) -> Option<&str> {
        self.sg_message_id.as_deref().map(message_id_of)
    }

    /// A custom argument of the send (`custom_arg("order_id")`).
    pub fn custom_arg(&self, key: &str) -> Option<&str> {
        self.raw.get(key).and_then(Value::as_str)
    }

    /// All custom arguments: string fields that SendGrid does not set itself.
    pub fn custom_args(&self) -> BTreeMap<&str, &str> {
        self.raw
            .iter()
            .filter(|(k, _)| !STANDARD_FIELDS.contains(&k.as_str()))
            .filter_map(|(k, v)| v.as_str().map(|s| (k.as_str(), s)))
            .collect()
    }

    fn from_object(i: usize, raw: Map<String, Value>) -> Result<Event> {
        let missing = |f: &str| {
            Error::invalid_input(format!("[{i}].{f}"), "missing or not of the expected type")
                .with_provider(PROVIDER)
        };
        let s = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_owned);
        let event = s("event").ok_or_else(|| missing("event"))?;
        let event_id = s("sg_event_id").ok_or_else(|| missing("sg_event_id"))?;
        let email = s("email").ok_or_else(|| missing("email"))?;
        let timestamp = raw
            .get("timestamp")
            .and_then(Value::as_i64)
            .ok_or_else(|| missing("timestamp"))?;
        let categories = match raw.get("category") {
            Some(Value::String(c)) => vec![c.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let int = |k: &str| match raw.get(k) {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(v)) => v.parse().ok(),
            _ => None,
        };
        let kind = match EventType::from_wire(&event) {
            EventType::Processed => EventKind::Processed,
            EventType::Delivered => EventKind::Delivered {
                response: s("response"),
            },
            EventType::Deferred => EventKind::Deferred {
                response: s("response"),
                attempt: int("attempt").and_then(|a| u32::try_from(a).ok()),
            },
            EventType::Bounce => EventKind::Bounce {
                reason: s("reason"),
                status: s("status"),
                bounce_type: s("type"),
                classification: s("bounce_classification"),
            },
            EventType::Dropped => EventKind::Dropped {
                reason: s("reason"),
            },
            EventType::Open => EventKind::Open {
                user_agent: s("useragent"),
                ip: s("ip"),
                machine_open: matches!(raw.get("sg_machine_open"), Some(Value::Bool(true))),
            },
            EventType::Click => EventKind::Click {
                url: s("url"),
                user_agent: s("useragent"),
                ip: s("ip"),
            },
            EventType::SpamReport => EventKind::SpamReport,
            EventType::Unsubscribe => EventKind::Unsubscribe,
            EventType::GroupUnsubscribe => EventKind::GroupUnsubscribe {
                asm_group_id: int("asm_group_id"),
            },
            EventType::GroupResubscribe => EventKind::GroupResubscribe {
                asm_group_id: int("asm_group_id"),
            },
            EventType::Unknown => EventKind::Unknown { event },
        };
        Ok(Event {
            event_id,
            sg_message_id: s("sg_message_id"),
            email,
            timestamp,
            categories,
            kind,
            raw,
        })
    }
}

/// Parses a batch (the JSON array SendGrid posts). Verify the signature first
/// ([`EventWebhookVerifier::verify`](super::EventWebhookVerifier::verify)); this only parses.
///
/// # Errors
/// [`Error::InvalidInput`] naming `body` if it is not a JSON array of objects, or `[i].field`
/// for an event missing `event`, `sg_event_id`, `email` or `timestamp`.
pub fn parse_events(body: &[u8]) -> Result<Vec<Event>> {
    let items: Vec<Value> = serde_json::from_slice(body).map_err(|e| {
        Error::invalid_input("body", "not a JSON array of events")
            .with_provider(PROVIDER)
            .with_source(e)
    })?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Object(m) => Event::from_object(i, m),
            _ => Err(
                Error::invalid_input(format!("[{i}]"), "not an event object")
                    .with_provider(PROVIDER),
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_with_its_fields() {
        let body = br#"[
          {"email":"a@example.com","timestamp":1,"event":"processed","sg_event_id":"e1","sg_message_id":"MID.f-1.0","category":"orders","order_id":"42"},
          {"email":"a@example.com","timestamp":2,"event":"delivered","sg_event_id":"e2","response":"250 OK","category":["a","b"]},
          {"email":"a@example.com","timestamp":3,"event":"deferred","sg_event_id":"e3","response":"400 try later","attempt":"5"},
          {"email":"a@example.com","timestamp":4,"event":"bounce","sg_event_id":"e4","reason":"550 no such user","status":"5.1.1","type":"blocked","bounce_classification":"Invalid Address"},
          {"email":"a@example.com","timestamp":5,"event":"dropped","sg_event_id":"e5","reason":"Bounced Address"},
          {"email":"a@example.com","timestamp":6,"event":"open","sg_event_id":"e6","useragent":"UA","ip":"1.2.3.4","sg_machine_open":true},
          {"email":"a@example.com","timestamp":7,"event":"click","sg_event_id":"e7","url":"https://example.com/x","useragent":"UA","ip":"1.2.3.4"},
          {"email":"a@example.com","timestamp":8,"event":"spamreport","sg_event_id":"e8"},
          {"email":"a@example.com","timestamp":9,"event":"unsubscribe","sg_event_id":"e9"},
          {"email":"a@example.com","timestamp":10,"event":"group_unsubscribe","sg_event_id":"e10","asm_group_id":77},
          {"email":"a@example.com","timestamp":11,"event":"group_resubscribe","sg_event_id":"e11","asm_group_id":"78"},
          {"email":"a@example.com","timestamp":12,"event":"account_status_change","sg_event_id":"e12","type":"compliance_suspend"}
        ]"#;
        let ev = parse_events(body).unwrap();
        let types: Vec<_> = ev.iter().map(Event::event_type).collect();
        let mut expected = EventType::KNOWN.to_vec();
        expected.push(EventType::Unknown);
        assert_eq!(types, expected);
        assert_eq!(ev[0].dedup_key(), "sendgrid:e1");
        assert_eq!(ev[0].message_id(), Some("MID"));
        assert_eq!(ev[0].custom_arg("order_id"), Some("42"));
        assert_eq!(ev[0].custom_args(), BTreeMap::from([("order_id", "42")]));
        assert_eq!(ev[0].categories, ["orders"]);
        assert_eq!(ev[1].categories, ["a", "b"]);
        assert_eq!(
            ev[2].kind,
            EventKind::Deferred {
                response: Some("400 try later".into()),
                attempt: Some(5)
            }
        );
        assert!(
            matches!(&ev[3].kind, EventKind::Bounce { bounce_type: Some(t), .. } if t == "blocked")
        );
        assert!(matches!(
            ev[5].kind,
            EventKind::Open {
                machine_open: true,
                ..
            }
        ));
        assert_eq!(
            ev[9].kind,
            EventKind::GroupUnsubscribe {
                asm_group_id: Some(77)
            }
        );
        assert_eq!(
            ev[10].kind,
            EventKind::GroupResubscribe {
                asm_group_id: Some(78)
            }
        );
        assert_eq!(
            ev[11].kind,
            EventKind::Unknown {
                event: "account_status_change".into()
            }
        );
        assert_eq!(ev[11].raw["type"], "compliance_suspend");
    }

    #[test]
    fn malformed_batches_name_what_is_wrong() {
        assert_eq!(parse_events(b"{}").unwrap_err().field(), Some("body"));
        assert_eq!(parse_events(b"[1]").unwrap_err().field(), Some("[0]"));
        let e = parse_events(br#"[{"email":"a@b.co","timestamp":1,"event":"open"}]"#).unwrap_err();
        assert_eq!(e.field(), Some("[0].sg_event_id"));
        assert!(parse_events(b"[]").unwrap().is_empty());
    }

    #[test]
    fn wire_names_round_trip() {
        for k in EventType::KNOWN {
            assert_eq!(EventType::from_wire(k.as_str()), k);
        }
        assert_eq!(EventType::from_wire("nope"), EventType::Unknown);
    }
}
