//! The Customer object.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::StripeObject;

/// A Stripe Customer. A deleted customer reads with `deleted: true` and little else.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Customer {
    /// `cus_…`.
    pub id: String,
    /// Creation time, unix seconds.
    #[serde(default)]
    pub created: i64,
    /// Email.
    #[serde(default)]
    pub email: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Phone.
    #[serde(default)]
    pub phone: Option<String>,
    /// Live or test mode.
    #[serde(default)]
    pub livemode: bool,
    /// Metadata.
    #[serde(default, deserialize_with = "super::metadata")]
    pub metadata: BTreeMap<String, String>,
    /// Whether the customer was deleted.
    #[serde(default)]
    pub deleted: bool,
}

impl StripeObject for Customer {
    fn id(&self) -> &str {
        &self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_live_and_deleted_customers() {
        let c: Customer = serde_json::from_str(
            r#"{"id":"cus_1","object":"customer","email":"jenny@example.com","name":"Jenny",
                "metadata":{"crm":"7"},"created":1,"livemode":false,"address":null}"#,
        )
        .unwrap();
        assert_eq!(c.email.as_deref(), Some("jenny@example.com"));
        assert!(!c.deleted);
        let d: Customer =
            serde_json::from_str(r#"{"id":"cus_2","object":"customer","deleted":true}"#).unwrap();
        assert!(d.deleted);
    }
}
