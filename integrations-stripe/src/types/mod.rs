//! Stripe objects as this crate reads them: payment intents, charges, refunds, customers, events,
//! lists and errors.
//!
//! Amounts are core [`Money`](integrations_core::Money), converted from Stripe's wire integers at
//! deserialisation ([`crate::currency`]), so an ISK amount of `500` on the wire reads as 5 ISK.
//! Fields Stripe may omit or null are `Option`s or default to empty, so a response from a newer
//! API version (more fields) or an expanded reference still parses.

mod charge;
mod customer;
mod error;
mod event;
mod list;
mod payment_intent;
mod refund;

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer};

pub use charge::{Charge, ChargeOutcome, ChargeStatus};
pub use customer::Customer;
pub use error::{ApiError, ErrorBody};
pub use event::{Event, EventData, EventObject, EventRequest};
pub use list::List;
pub use payment_intent::PaymentIntent;
pub use refund::Refund;

/// A Stripe object with an id, which is also the pagination cursor (`starting_after`).
pub trait StripeObject: DeserializeOwned + Send + 'static {
    /// The object's id (`pi_…`, `re_…`).
    fn id(&self) -> &str;
}

/// A reference Stripe either leaves as an id or, when asked with `expand[]`, inlines as the
/// object.
#[derive(Debug, Clone, PartialEq)]
pub enum Expandable<T> {
    /// Only the id (`"ch_…"`).
    Id(String),
    /// The expanded object.
    Object(Box<T>),
}

impl<T: StripeObject> Expandable<T> {
    /// The referenced id, expanded or not.
    pub fn id(&self) -> &str {
        match self {
            Expandable::Id(id) => id,
            Expandable::Object(o) => o.id(),
        }
    }

    /// The object, when expanded.
    pub fn as_object(&self) -> Option<&T> {
        match self {
            Expandable::Id(_) => None,
            Expandable::Object(o) => Some(o),
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Expandable<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Decide on the JSON type first so that an expanded object that fails to parse reports
        // its own error instead of serde's "did not match any variant".
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(id) => Ok(Expandable::Id(id)),
            v @ serde_json::Value::Object(_) => T::deserialize(v)
                .map(|o| Expandable::Object(Box::new(o)))
                .map_err(de::Error::custom),
            other => Err(de::Error::invalid_type(
                unexpected(&other),
                &"an id string or an expanded object",
            )),
        }
    }
}

/// An id that may arrive expanded: reads `"cus_1"` and `{"id":"cus_1",…}` alike, keeping the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdOf(pub(crate) String);

impl<'de> Deserialize<'de> for IdOf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V(PhantomData<IdOf>);
        impl<'de> de::Visitor<'de> for V {
            type Value = IdOf;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an id string or an object with an `id`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IdOf, E> {
                Ok(IdOf(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<IdOf, E> {
                Ok(IdOf(v))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<IdOf, A::Error> {
                let mut id = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "id" {
                        id = Some(map.next_value::<String>()?);
                    } else {
                        map.next_value::<de::IgnoredAny>()?;
                    }
                }
                id.map(IdOf).ok_or_else(|| de::Error::missing_field("id"))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// Reads `Option<IdOf>` as `Option<String>`.
pub(crate) fn id_of(v: Option<IdOf>) -> Option<String> {
    v.map(|i| i.0)
}

fn unexpected(v: &serde_json::Value) -> de::Unexpected<'_> {
    match v {
        serde_json::Value::Null => de::Unexpected::Unit,
        serde_json::Value::Bool(b) => de::Unexpected::Bool(*b),
        serde_json::Value::Number(_) => de::Unexpected::Other("a number"),
        serde_json::Value::String(s) => de::Unexpected::Str(s),
        serde_json::Value::Array(_) => de::Unexpected::Seq,
        serde_json::Value::Object(_) => de::Unexpected::Map,
    }
}

/// Stripe sends `null` for empty metadata in a few places (e.g. sources); read it as empty.
pub(crate) fn metadata<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, String>, D::Error> {
    Ok(Option::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expandable_reads_ids_and_objects() {
        let id: Expandable<Refund> = serde_json::from_str(r#""re_1""#).unwrap();
        assert_eq!(id.id(), "re_1");
        assert!(id.as_object().is_none());
        let obj: Expandable<Refund> = serde_json::from_str(
            r#"{"id":"re_2","object":"refund","amount":100,"currency":"usd","status":"succeeded","created":1}"#,
        )
        .unwrap();
        assert_eq!(obj.id(), "re_2");
        assert_eq!(obj.as_object().unwrap().amount.minor(), 100);
        let bad = serde_json::from_str::<Expandable<Refund>>(r#"{"id":"re_3"}"#).unwrap_err();
        assert!(bad.to_string().contains("missing field"), "{bad}");
        assert!(serde_json::from_str::<Expandable<Refund>>("12").is_err());
    }

    #[test]
    fn id_of_reads_both_shapes() {
        let a: IdOf = serde_json::from_str(r#""cus_1""#).unwrap();
        let b: IdOf =
            serde_json::from_str(r#"{"object":"customer","id":"cus_1","x":[1]}"#).unwrap();
        assert_eq!(a, b);
        assert!(serde_json::from_str::<IdOf>(r#"{"object":"customer"}"#).is_err());
    }
}
