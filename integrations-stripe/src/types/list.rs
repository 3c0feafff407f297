//! Stripe's list envelope.

use serde::Deserialize;

/// One page of a Stripe list: `{"object":"list","data":[…],"has_more":…,"url":…}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct List<T> {
    /// The page's objects, newest first.
    pub data: Vec<T>,
    /// Whether another page follows (`starting_after` the last id).
    #[serde(default)]
    pub has_more: bool,
    /// The list's URL path.
    #[serde(default)]
    pub url: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Customer;

    #[test]
    fn reads_a_page() {
        let l: List<Customer> = serde_json::from_str(
            r#"{"object":"list","data":[{"id":"cus_1"},{"id":"cus_2"}],"has_more":true,"url":"/v1/customers"}"#,
        )
        .unwrap();
        assert_eq!(l.data.len(), 2);
        assert!(l.has_more);
    }
}
