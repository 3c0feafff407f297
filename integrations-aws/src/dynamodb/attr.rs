//! Serde values ↔ DynamoDB attribute values (`{"S": …}`, `{"N": "…"}`, `{"M": …}`, …).
//!
//! Any `Serialize` struct becomes an item through `serde_json::Value`: strings are `S`, numbers
//! `N` (a decimal *string*: integers such as [`Money`](integrations_core::Money)'s minor units stay
//! exact, no `f64` is involved), booleans `BOOL`, null `NULL`, arrays `L`, objects `M`. Reading back
//! accepts the set types too (`SS`, `NS` → arrays) and `B`/`BS` (base64 text, as on the wire). A
//! number read back is an `i64`/`u64` when it is an integer that fits, else an `f64`.

use integrations_core::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value, json};

/// An item: attribute name → attribute value, in the wire's JSON form.
pub type Item = Map<String, Value>;

/// Converts a plain JSON value to its attribute value.
pub fn to_attribute_value(v: &Value) -> Value {
    match v {
        Value::Null => json!({ "NULL": true }),
        Value::Bool(b) => json!({ "BOOL": b }),
        Value::Number(n) => json!({ "N": n.to_string() }),
        Value::String(s) => json!({ "S": s }),
        Value::Array(a) => json!({ "L": a.iter().map(to_attribute_value).collect::<Vec<_>>() }),
        Value::Object(o) => Value::Object(
            [(
                "M".to_owned(),
                Value::Object(
                    o.iter()
                        .map(|(k, v)| (k.clone(), to_attribute_value(v)))
                        .collect(),
                ),
            )]
            .into_iter()
            .collect(),
        ),
    }
}

/// Converts an attribute value back to a plain JSON value.
///
/// # Errors
/// [`Error::Provider`] when `av` is not an attribute value (one key naming a known type).
pub fn from_attribute_value(av: &Value) -> Result<Value> {
    let bad = || Error::provider(format!("not a DynamoDB attribute value: {av}"));
    let obj = av.as_object().filter(|o| o.len() == 1).ok_or_else(bad)?;
    let (ty, v) = obj.iter().next().ok_or_else(bad)?;
    Ok(match (ty.as_str(), v) {
        ("NULL", _) => Value::Null,
        ("BOOL", Value::Bool(b)) => Value::Bool(*b),
        ("S" | "B", Value::String(s)) => Value::String(s.clone()),
        ("N", Value::String(n)) => parse_number(n)?,
        ("L", Value::Array(a)) => {
            Value::Array(a.iter().map(from_attribute_value).collect::<Result<_>>()?)
        }
        ("M", Value::Object(m)) => Value::Object(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), from_attribute_value(v)?)))
                .collect::<Result<_>>()?,
        ),
        ("SS" | "BS", Value::Array(a)) => Value::Array(a.clone()),
        ("NS", Value::Array(a)) => Value::Array(
            a.iter()
                .map(|n| n.as_str().ok_or_else(bad).and_then(parse_number))
                .collect::<Result<_>>()?,
        ),
        _ => return Err(bad()),
    })
}

fn parse_number(n: &str) -> Result<Value> {
    if let Ok(i) = n.parse::<i64>() {
        return Ok(Value::Number(i.into()));
    }
    if let Ok(u) = n.parse::<u64>() {
        return Ok(Value::Number(u.into()));
    }
    n.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
        .ok_or_else(|| Error::provider(format!("`{n}` is not a DynamoDB number")))
}

/// Serialises `value` (a struct or map) into an item.
///
/// # Errors
/// [`Error::InvalidInput`] (field `item`) when `value` does not serialise to a JSON object.
pub fn to_item<T: Serialize + ?Sized>(value: &T) -> Result<Item> {
    let v = serde_json::to_value(value)
        .map_err(|e| Error::invalid_input("item", "could not serialise the item").with_source(e))?;
    match v {
        Value::Object(o) => Ok(o
            .iter()
            .map(|(k, v)| (k.clone(), to_attribute_value(v)))
            .collect()),
        other => Err(Error::invalid_input(
            "item",
            format!("an item must serialise to an object, not {other}"),
        )),
    }
}

/// Deserialises an item into `T`.
///
/// # Errors
/// [`Error::Provider`] when the item is malformed or does not match `T`.
pub fn from_item<T: DeserializeOwned>(item: &Item) -> Result<T> {
    let plain: Map<String, Value> = item
        .iter()
        .map(|(k, v)| Ok((k.clone(), from_attribute_value(v)?)))
        .collect::<Result<_>>()?;
    serde_json::from_value(Value::Object(plain)).map_err(|e| {
        Error::provider("the stored item does not match the expected type").with_source(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use integrations_core::{Currency, Money};
    use std::collections::BTreeMap;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Line {
        sku: String,
        qty: u32,
        price: Money,
        gift: bool,
        note: Option<String>,
        tags: Vec<String>,
        extra: BTreeMap<String, i64>,
        weight: f64,
    }

    fn line() -> Line {
        Line {
            sku: "sku-1".into(),
            qty: 3,
            price: Money::from_minor(1999, Currency::USD),
            gift: true,
            note: None,
            tags: vec!["a".into(), "b".into()],
            extra: [("x".to_owned(), -7)].into_iter().collect(),
            weight: 0.25,
        }
    }

    #[test]
    fn struct_round_trips_with_numbers_as_strings() {
        let item = to_item(&line()).unwrap();
        assert_eq!(item["qty"], json!({"N": "3"}));
        assert_eq!(
            item["price"],
            json!({"M": {"minor": {"N": "1999"}, "currency": {"S": "USD"}}})
        );
        assert_eq!(item["gift"], json!({"BOOL": true}));
        assert_eq!(item["note"], json!({"NULL": true}));
        assert_eq!(item["tags"], json!({"L": [{"S": "a"}, {"S": "b"}]}));
        assert_eq!(item["weight"], json!({"N": "0.25"}));
        let back: Line = from_item(&item).unwrap();
        assert_eq!(back, line());
    }

    #[test]
    fn large_money_stays_exact() {
        let m = Money::from_minor(9_007_199_254_740_993, Currency::USD); // 2^53 + 1
        let item = to_item(&m).unwrap();
        assert_eq!(item["minor"], json!({"N": "9007199254740993"}));
        let back: Money = from_item(&item).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn reads_sets_and_rejects_garbage() {
        let v = from_attribute_value(&json!({"NS": ["1", "2.5"]})).unwrap();
        assert_eq!(v, json!([1, 2.5]));
        assert_eq!(
            from_attribute_value(&json!({"SS": ["a"]})).unwrap(),
            json!(["a"])
        );
        assert!(from_attribute_value(&json!({"N": "abc"})).is_err());
        assert!(from_attribute_value(&json!({"S": "a", "N": "1"})).is_err());
        assert!(from_attribute_value(&json!("plain")).is_err());
        assert!(to_item(&5).is_err());
    }
}
