//! Form parameters as Stripe reads them (`metadata[k]`, `expand[0]`) and Stripe-shaped errors.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// A status and a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Value,
}

impl Reply {
    pub(crate) fn ok(body: Value) -> Reply {
        Reply { status: 200, body }
    }
}

pub(crate) type Handled = Result<Reply, Reply>;

fn doc_url(code: &str) -> String {
    format!(
        "https://stripe.com/docs/error-codes/{}",
        code.replace('_', "-")
    )
}

/// An `invalid_request_error` (400 unless `status` says otherwise).
pub(crate) fn invalid(
    status: u16,
    message: impl Into<String>,
    param: Option<&str>,
    code: Option<&str>,
) -> Reply {
    let mut error = json!({ "type": "invalid_request_error", "message": message.into() });
    if let Some(p) = param {
        error["param"] = json!(p);
    }
    if let Some(c) = code {
        error["code"] = json!(c);
        error["doc_url"] = json!(doc_url(c));
    }
    Reply {
        status,
        body: json!({ "error": error }),
    }
}

/// `No such <kind>: '<id>'` — 404 for the path's own object, 400 for a parameter.
pub(crate) fn missing(kind: &str, id: &str, param: Option<&str>) -> Reply {
    let status = if param.is_some() { 400 } else { 404 };
    invalid(
        status,
        format!("No such {kind}: '{id}'"),
        Some(param.unwrap_or("id")),
        Some("resource_missing"),
    )
}

/// A card decline as Stripe returns it (402).
pub(crate) fn card_error(code: &str, decline_code: &str, message: &str, extra: Value) -> Reply {
    let mut error = json!({
        "type": "card_error",
        "code": code,
        "decline_code": decline_code,
        "message": message,
        "doc_url": doc_url(code),
    });
    if let (Some(e), Value::Object(x)) = (error.as_object_mut(), extra) {
        e.extend(x);
    }
    Reply {
        status: 402,
        body: json!({ "error": error }),
    }
}

/// Decoded `application/x-www-form-urlencoded` pairs, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub(crate) fn parse(raw: &[u8]) -> Params {
        Params {
            pairs: url::form_urlencoded::parse(raw).into_owned().collect(),
        }
    }

    /// The canonical form of the request's parameters: same parameters, same fingerprint.
    pub(crate) fn fingerprint(&self) -> String {
        let mut sorted = self.pairs.clone();
        sorted.sort();
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(sorted)
            .finish()
    }

    /// The last value of a top-level key.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Refuses parameters whose top-level name is not in `allowed`.
    pub(crate) fn check_known(&self, allowed: &[&str]) -> Result<(), Reply> {
        for (k, _) in &self.pairs {
            let top = k.split('[').next().unwrap_or(k);
            if !allowed.contains(&top) {
                return Err(invalid(
                    400,
                    format!("Received unknown parameter: {top}"),
                    Some(top),
                    Some("parameter_unknown"),
                ));
            }
        }
        Ok(())
    }

    /// `prefix[k]=v` entries; `Err` for a malformed key or Stripe's metadata limits.
    pub(crate) fn map(&self, prefix: &str) -> Result<Option<BTreeMap<String, String>>, Reply> {
        let mut out = BTreeMap::new();
        let mut present = false;
        for (k, v) in &self.pairs {
            if k == prefix {
                // `metadata=` (empty) clears everything.
                if !v.is_empty() {
                    return Err(invalid(
                        400,
                        format!("Invalid object: {prefix}"),
                        Some(prefix),
                        Some("parameter_invalid_empty"),
                    ));
                }
                present = true;
                continue;
            }
            let Some(inner) = k
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('['))
                .and_then(|r| r.strip_suffix(']'))
            else {
                continue;
            };
            present = true;
            if inner.is_empty() || inner.len() > 40 || inner.contains(['[', ']']) {
                return Err(invalid(
                    400,
                    format!("Invalid {prefix} key: {inner:?} (1 to 40 characters, no brackets)"),
                    Some(prefix),
                    None,
                ));
            }
            if v.chars().count() > 500 {
                return Err(invalid(
                    400,
                    format!("{prefix} values can have up to 500 characters"),
                    Some(prefix),
                    None,
                ));
            }
            out.insert(inner.to_owned(), v.clone());
        }
        if out.len() > 50 {
            return Err(invalid(
                400,
                format!("{prefix} can have up to 50 keys"),
                Some(prefix),
                None,
            ));
        }
        Ok(present.then_some(out))
    }

    /// `prefix[0]=a&prefix[1]=b` (or `prefix[]=`) values, in index order.
    pub(crate) fn list(&self, prefix: &str) -> Result<Vec<String>, Reply> {
        let mut indexed: Vec<(usize, String)> = Vec::new();
        for (k, v) in &self.pairs {
            let Some(inner) = k
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('['))
                .and_then(|r| r.strip_suffix(']'))
            else {
                if k == prefix {
                    return Err(invalid(
                        400,
                        format!("Invalid array: {prefix} must be sent as {prefix}[0]"),
                        Some(prefix),
                        Some("parameter_invalid_array"),
                    ));
                }
                continue;
            };
            let index = if inner.is_empty() {
                indexed.len()
            } else {
                inner.parse::<usize>().map_err(|_| {
                    invalid(
                        400,
                        format!("Invalid array index in {k}"),
                        Some(prefix),
                        Some("parameter_invalid_array"),
                    )
                })?
            };
            indexed.push((index, v.clone()));
        }
        indexed.sort_by_key(|(i, _)| *i);
        Ok(indexed.into_iter().map(|(_, v)| v).collect())
    }

    /// A positive integer parameter.
    pub(crate) fn positive_int(&self, key: &str) -> Result<Option<i64>, Reply> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match v.parse::<i64>() {
            Ok(n) if (1..=99_999_999).contains(&n) => Ok(Some(n)),
            Ok(_) => Err(invalid(
                400,
                format!("Invalid {key}: must be an integer between 1 and 99999999"),
                Some(key),
                Some("parameter_invalid_integer"),
            )),
            Err(_) => Err(invalid(
                400,
                format!("Invalid integer: {v}"),
                Some(key),
                Some("parameter_invalid_integer"),
            )),
        }
    }

    /// A `true`/`false` parameter.
    pub(crate) fn boolean(&self, key: &str) -> Result<Option<bool>, Reply> {
        match self.get(key) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(invalid(
                400,
                format!("Invalid boolean: {v}"),
                Some(key),
                Some("parameter_invalid_boolean"),
            )),
        }
    }

    /// A parameter that must be one of `allowed`.
    pub(crate) fn one_of(&self, key: &str, allowed: &[&str]) -> Result<Option<String>, Reply> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if allowed.contains(&v) => Ok(Some(v.to_owned())),
            Some(v) => Err(invalid(
                400,
                format!(
                    "Invalid {key}: must be one of {}, got {v}",
                    allowed.join(", ")
                ),
                Some(key),
                Some("parameter_invalid_string"),
            )),
        }
    }

    /// A list page's `limit` (1–100, default 10).
    pub(crate) fn limit(&self) -> Result<usize, Reply> {
        match self.get("limit") {
            None => Ok(10),
            Some(v) => match v.parse::<usize>() {
                Ok(n @ 1..=100) => Ok(n),
                _ => Err(invalid(
                    400,
                    "Invalid limit: must be an integer between 1 and 100",
                    Some("limit"),
                    Some("parameter_invalid_integer"),
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stripes_nesting() {
        let p = Params::parse(b"amount=500&metadata[order_id]=42&metadata[note]=a+b&expand[1]=customer&expand[0]=latest_charge&confirm=true");
        assert_eq!(p.positive_int("amount").unwrap(), Some(500));
        assert_eq!(p.boolean("confirm").unwrap(), Some(true));
        let m = p.map("metadata").unwrap().unwrap();
        assert_eq!(m["order_id"], "42");
        assert_eq!(m["note"], "a b");
        assert_eq!(p.list("expand").unwrap(), vec!["latest_charge", "customer"]);
        assert!(
            p.check_known(&["amount", "metadata", "expand", "confirm"])
                .is_ok()
        );
        let e = p.check_known(&["amount"]).unwrap_err();
        assert_eq!(e.body["error"]["code"], "parameter_unknown");
    }

    #[test]
    fn fingerprint_ignores_order_only() {
        let a = Params::parse(b"amount=1&currency=usd");
        let b = Params::parse(b"currency=usd&amount=1");
        let c = Params::parse(b"currency=usd&amount=2");
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn refuses_bad_values() {
        let p = Params::parse(b"amount=-1&confirm=yes&expand=x&limit=0");
        assert_eq!(p.positive_int("amount").unwrap_err().status, 400);
        assert!(p.boolean("confirm").is_err());
        assert!(p.list("expand").is_err());
        assert!(p.limit().is_err());
        let p = Params::parse(b"metadata=");
        assert_eq!(p.map("metadata").unwrap(), Some(BTreeMap::new()));
        let long = format!("metadata[{}]=x", "k".repeat(41));
        assert!(Params::parse(long.as_bytes()).map("metadata").is_err());
        assert_eq!(missing("payment_intent", "pi_x", None).status, 404);
        assert_eq!(missing("customer", "cus_x", Some("customer")).status, 400);
    }
}
