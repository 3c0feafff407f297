//! Stripe's `application/x-www-form-urlencoded` bodies, via `serde_qs`.
//!
//! Stripe nests with brackets and always indexes arrays: `metadata[order_id]=42`,
//! `payment_method_types[0]=card`, `expand[0]=latest_charge`. `serde_qs` in query-string mode
//! writes exactly that: brackets that structure the key stay literal, brackets *inside* a key or
//! value are percent-encoded (`metadata[a%5Bb%5D]=x`), spaces become `+`, and `&`, `=`, `+`, `%`,
//! `#` and every non-ASCII byte are percent-encoded.

use integrations_core::{Error, Result};
use serde::Serialize;

use crate::PROVIDER;

/// The one encoder configuration: indexed arrays, bracket nesting, query-string escaping.
///
/// Form encoding is switched off explicitly: `serde_qs` can be built to default to it (a Cargo
/// feature another crate in the graph could turn on), and it would escape the structural
/// brackets.
const CONFIG: serde_qs::Config = serde_qs::Config::new()
    .max_depth(5)
    .use_form_encoding(false)
    .array_format(serde_qs::ArrayFormat::Indexed);

/// Encodes `params` as a Stripe form body (or query string).
///
/// # Errors
/// [`Error::InvalidInput`] naming `params` if `serde_qs` refuses the value (nesting deeper than
/// five levels, a map key that is not a string).
pub(crate) fn encode<T: Serialize>(params: &T) -> Result<String> {
    CONFIG.serialize_string(params).map_err(|e| {
        Error::invalid_input("params", format!("cannot form-encode the request: {e}"))
            .with_provider(PROVIDER)
            .with_source(e)
    })
}

/// `true` for a serde `skip_serializing_if` on `bool` fields Stripe defaults to `false`.
pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

/// `skip_serializing_if` for borrowed slices (`expand`, `payment_method_types`).
pub(crate) fn empty_slice<T>(s: &&[T]) -> bool {
    s.is_empty()
}

/// `skip_serializing_if` for borrowed maps (`metadata`).
pub(crate) fn empty_map<K, V>(m: &&std::collections::BTreeMap<K, V>) -> bool {
    m.is_empty()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Serialize)]
    struct Params<'a> {
        amount: i64,
        currency: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<&'a str>,
        #[serde(skip_serializing_if = "is_false")]
        confirm: bool,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        payment_method_types: Vec<&'a str>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        metadata: BTreeMap<&'a str, &'a str>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        expand: Vec<&'a str>,
    }

    #[test]
    fn nested_maps_and_indexed_arrays() {
        let body = encode(&Params {
            amount: 5998,
            currency: "usd",
            description: Some("Order 42 & co"),
            confirm: true,
            payment_method_types: vec!["card", "link"],
            metadata: BTreeMap::from([("order_id", "42"), ("note", "a=b+c")]),
            expand: vec!["latest_charge"],
        })
        .unwrap();
        assert_eq!(
            body,
            "amount=5998&currency=usd&description=Order+42+%26+co&confirm=true\
             &payment_method_types[0]=card&payment_method_types[1]=link\
             &metadata[note]=a%3Db%2Bc&metadata[order_id]=42&expand[0]=latest_charge"
        );
    }

    #[test]
    fn skipped_fields_and_escaping() {
        let body = encode(&Params {
            amount: 1,
            currency: "eur",
            description: None,
            confirm: false,
            payment_method_types: vec![],
            metadata: BTreeMap::from([("k[x]", "é 100%"), ("empty", "")]),
            expand: vec![],
        })
        .unwrap();
        assert_eq!(
            body,
            "amount=1&currency=eur&metadata[empty]=&metadata[k%5Bx%5D]=%C3%A9+100%25"
        );
        // What a server decodes is what we meant.
        let decoded: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert!(decoded.contains(&("metadata[k[x]]".into(), "é 100%".into())));
    }

    #[test]
    fn unencodable_shapes_are_refused() {
        let deep = serde_json::json!({"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}});
        assert_eq!(encode(&deep).unwrap_err().field(), Some("params"));
    }
}
