//! Request validation: every refusal is an [`Error::InvalidInput`] naming the field
//! (`items[1].price`), which the API answers with a 400.
//!
//! Amounts are decimals in the currency's major unit, as JSON numbers (`29.99`, as the seed's API
//! documentation writes them) or strings (`"29.99"`), parsed exactly into [`Money`]. A JSON number
//! is a decimal literal: [`exact_amounts`] reads its text from the raw body (through
//! [`RawValue`]) before anything could turn it into a binary float, so no amount ever goes
//! through floating point. Refused, naming the field: more decimals than the currency has
//! (`29.999` USD), exponents (`2.999e1`), anything that is not a plain decimal, negative amounts.

use integrations_core::provider::RefundReason;
use integrations_core::provider::email::is_valid_address;
use integrations_core::{Currency, Error, Money, Result};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::orders::{LineItem, NewOrder, ShippingAddress};

/// Most lines an order may have.
pub const MAX_ITEMS: usize = 100;
/// Largest quantity of one line.
pub const MAX_QUANTITY: u64 = 10_000;
/// Longest free-text field (names, ids, address lines), in characters.
pub const MAX_TEXT: usize = 200;
/// Largest page of `GET /api/orders`.
pub const MAX_PAGE: usize = 100;
/// Page size when `limit` is not given.
pub const DEFAULT_PAGE: usize = 20;

/// Parses a request body as a JSON object.
///
/// # Errors
/// [`Error::InvalidInput`] naming `body`.
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Error::invalid_input("body", "must be a JSON object")),
        Err(e) => Err(Error::invalid_input(
            "body",
            format!("is not valid JSON: {e}"),
        )),
    }
}

/// Amount fields of the request bodies, as their literal JSON text.
#[derive(Deserialize)]
struct TopAmounts<'a> {
    #[serde(borrow, rename = "totalAmount")]
    total_amount: Option<&'a RawValue>,
    #[serde(borrow)]
    amount: Option<&'a RawValue>,
    #[serde(borrow)]
    items: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ItemAmounts<'a> {
    #[serde(borrow)]
    price: Option<&'a RawValue>,
}

/// Replaces every amount given as a JSON **number** in `map` (`totalAmount`, `amount`,
/// `items[i].price`) with the number's literal text from `raw`, the body `map` was parsed from,
/// so that [`Fields::opt_money`] parses the decimal exactly as written (`29.99`, never
/// 29.989999…). Strings and other values are left alone.
///
/// # Errors
/// [`Error::InvalidInput`] naming `body` when the raw text cannot be read the same way (a
/// duplicated amount key).
pub fn exact_amounts(raw: &[u8], map: &mut Map<String, Value>) -> Result<()> {
    let unreadable = |e: serde_json::Error| Error::invalid_input("body", format!("{e}"));
    let text = std::str::from_utf8(raw).map_err(|e| Error::invalid_input("body", e.to_string()))?;
    let top: TopAmounts<'_> = serde_json::from_str(text).map_err(unreadable)?;
    let literal = |v: &mut Value, r: Option<&RawValue>| {
        if let (Value::Number(_), Some(r)) = (&*v, r) {
            *v = Value::String(r.get().to_owned());
        }
    };
    if let Some(v) = map.get_mut("totalAmount") {
        literal(v, top.total_amount);
    }
    if let Some(v) = map.get_mut("amount") {
        literal(v, top.amount);
    }
    if let (Some(Value::Array(items)), Some(raw_items)) = (map.get_mut("items"), top.items) {
        let raw_items: Vec<&RawValue> =
            serde_json::from_str(raw_items.get()).map_err(unreadable)?;
        for (item, raw_item) in items.iter_mut().zip(raw_items) {
            if let Value::Object(item) = item {
                let r: ItemAmounts<'_> =
                    serde_json::from_str(raw_item.get()).map_err(unreadable)?;
                if let Some(v) = item.get_mut("price") {
                    literal(v, r.price);
                }
            }
        }
    }
    Ok(())
}

/// A JSON object being validated, with the path of its fields.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    prefix: &'a str,
}

impl<'a> Fields<'a> {
    /// The top-level object.
    pub fn new(map: &'a Map<String, Value>) -> Self {
        Fields { map, prefix: "" }
    }

    fn nested(map: &'a Map<String, Value>, prefix: &'a str) -> Self {
        Fields { map, prefix }
    }

    /// The full name of `key` (`items[0].price`).
    pub fn name(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    fn invalid(&self, key: &str, msg: impl Into<String>) -> Error {
        Error::invalid_input(self.name(key), msg)
    }

    /// An optional string of 1 to `max` characters (null counts as absent).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field.
    pub fn opt_str(&self, key: &str, max: usize) -> Result<Option<&'a str>> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                let s = s.trim();
                if s.is_empty() {
                    Err(self.invalid(key, "must not be empty"))
                } else if s.chars().count() > max {
                    Err(self.invalid(key, format!("must be at most {max} characters")))
                } else if s.chars().any(char::is_control) {
                    Err(self.invalid(key, "must not contain control characters"))
                } else {
                    Ok(Some(s))
                }
            }
            Some(_) => Err(self.invalid(key, "must be a string")),
        }
    }

    /// A required string of 1 to `max` characters.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field.
    pub fn str(&self, key: &str, max: usize) -> Result<&'a str> {
        self.opt_str(key, max)?
            .ok_or_else(|| self.invalid(key, "is required"))
    }

    /// An optional amount: a non-negative decimal in `currency`, exact to its minor unit, as a
    /// string, or as a number whose literal text [`exact_amounts`] put in place of the parsed
    /// number.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field.
    pub fn opt_money(&self, key: &str, currency: Currency) -> Result<Option<Money>> {
        let money = match self.map.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) => Money::parse(s.trim(), currency)
                .map_err(|e| self.invalid(key, format!("{e}: write a decimal such as 29.99")))?,
            // Only reached when the body did not go through `exact_amounts`: never guess from
            // the float.
            Some(Value::Number(_)) => {
                return Err(self.invalid(key, "could not be read exactly from the request"));
            }
            Some(_) => return Err(self.invalid(key, "must be a decimal such as 29.99")),
        };
        if money.minor() < 0 {
            return Err(self.invalid(key, "must not be negative"));
        }
        Ok(Some(money))
    }

    /// A required amount, as [`Fields::opt_money`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field.
    pub fn money(&self, key: &str, currency: Currency) -> Result<Money> {
        self.opt_money(key, currency)?
            .ok_or_else(|| self.invalid(key, "is required"))
    }
}

/// Validates a `POST /api/orders` body.
///
/// Refuses, naming the field: missing or malformed customer fields, an unknown currency, no
/// items or more than [`MAX_ITEMS`], a quantity outside 1..=[`MAX_QUANTITY`], a price that is not
/// an exact non-negative decimal, a zero total, and a `totalAmount` that differs from the
/// sum of the lines (code `amount_mismatch`).
///
/// # Errors
/// [`Error::InvalidInput`] naming the field.
pub fn new_order(body: &Map<String, Value>) -> Result<NewOrder> {
    let f = Fields::new(body);
    let customer_id = f.opt_str("customerId", MAX_TEXT)?.map(str::to_owned);
    let customer_email = f.str("customerEmail", 254)?;
    if !is_valid_address(customer_email) {
        return Err(Error::invalid_input(
            "customerEmail",
            "is not an email address",
        ));
    }
    let customer_name = f.str("customerName", MAX_TEXT)?.to_owned();
    let currency = Currency::from_code(f.str("currency", 3)?)
        .map_err(|e| Error::invalid_input("currency", e.to_string()))?;
    let items = match body.get("items") {
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(Error::invalid_input("items", "must not be empty"));
        }
        Some(Value::Array(a)) if a.len() > MAX_ITEMS => {
            return Err(Error::invalid_input(
                "items",
                format!("at most {MAX_ITEMS} lines"),
            ));
        }
        Some(Value::Array(a)) => a,
        None | Some(Value::Null) => return Err(Error::invalid_input("items", "is required")),
        Some(_) => return Err(Error::invalid_input("items", "must be an array")),
    };
    let mut lines = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let prefix = format!("items[{i}]");
        let Value::Object(map) = item else {
            return Err(Error::invalid_input(prefix, "must be an object"));
        };
        lines.push(line_item(Fields::nested(map, &prefix), currency)?);
    }
    let mut sum = Money::zero(currency);
    for (i, line) in lines.iter().enumerate() {
        let overflow = || Error::invalid_input(format!("items[{i}]"), "the amount overflows");
        let line_total = line.line_total().map_err(|_| overflow())?;
        sum = sum.checked_add(line_total).map_err(|_| overflow())?;
    }
    let total = f.money("totalAmount", currency)?;
    if total != sum {
        return Err(Error::invalid_input(
            "totalAmount",
            format!(
                "is {} but the items add up to {}",
                total.to_decimal_string(),
                sum.to_decimal_string()
            ),
        )
        .with_code("amount_mismatch"));
    }
    if !total.is_positive() {
        return Err(Error::invalid_input("totalAmount", "must be above zero"));
    }
    let shipping = match body.get("shippingAddress") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(shipping(Fields::nested(map, "shippingAddress"))?),
        Some(_) => {
            return Err(Error::invalid_input("shippingAddress", "must be an object"));
        }
    };
    Ok(NewOrder {
        customer_id,
        customer_email: customer_email.to_owned(),
        customer_name,
        items: lines,
        total,
        shipping,
    })
}

fn line_item(f: Fields<'_>, currency: Currency) -> Result<LineItem> {
    let id = f.str("id", MAX_TEXT)?.to_owned();
    let name = f.str("name", MAX_TEXT)?.to_owned();
    let quantity = match f.map.get("quantity") {
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|q| (1..=MAX_QUANTITY).contains(q))
            .and_then(|q| u32::try_from(q).ok())
            .ok_or_else(|| {
                f.invalid(
                    "quantity",
                    format!("must be a whole number from 1 to {MAX_QUANTITY}"),
                )
            })?,
        None | Some(Value::Null) => return Err(f.invalid("quantity", "is required")),
        Some(_) => return Err(f.invalid("quantity", "must be a number")),
    };
    let unit_price = f.money("price", currency)?;
    Ok(LineItem::new(id, name, quantity, unit_price))
}

fn shipping(f: Fields<'_>) -> Result<ShippingAddress> {
    Ok(ShippingAddress {
        street: f.str("street", MAX_TEXT)?.to_owned(),
        city: f.str("city", MAX_TEXT)?.to_owned(),
        state: f.opt_str("state", MAX_TEXT)?.map(str::to_owned),
        zip_code: f.str("zipCode", 20)?.to_owned(),
        country: f.str("country", 60)?.to_owned(),
    })
}

/// A validated `POST /api/payments/confirm` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmRequest {
    /// The order.
    pub order_id: String,
    /// The payment intent the client believes belongs to it.
    pub payment_intent_id: String,
    /// A payment method to confirm with (`pm_card_visa`), when the intent has none yet.
    pub payment_method: Option<String>,
}

/// Validates a confirm body.
///
/// # Errors
/// [`Error::InvalidInput`] naming `orderId`, `paymentIntentId` or `paymentMethod`.
pub fn confirm_request(body: &Map<String, Value>) -> Result<ConfirmRequest> {
    let f = Fields::new(body);
    Ok(ConfirmRequest {
        order_id: f.str("orderId", MAX_TEXT)?.to_owned(),
        payment_intent_id: f.str("paymentIntentId", 255)?.to_owned(),
        payment_method: f.opt_str("paymentMethod", 255)?.map(str::to_owned),
    })
}

/// A validated `POST /api/payments/refund` body; the amount is parsed once the order's
/// currency is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// The order.
    pub order_id: String,
    /// The raw amount field (a decimal string or number, see [`exact_amounts`]), `None` to refund everything left.
    pub amount: Option<Value>,
    /// Why.
    pub reason: Option<RefundReason>,
}

impl RefundRequest {
    /// The amount in `currency`, if one was given.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `amount`.
    pub fn amount_in(&self, currency: Currency) -> Result<Option<Money>> {
        let mut map = Map::new();
        if let Some(v) = &self.amount {
            map.insert("amount".to_owned(), v.clone());
        }
        Fields::new(&map).opt_money("amount", currency)
    }
}

/// Validates a refund body.
///
/// # Errors
/// [`Error::InvalidInput`] naming `orderId` or `reason`.
pub fn refund_request(body: &Map<String, Value>) -> Result<RefundRequest> {
    let f = Fields::new(body);
    let reason = match f.opt_str("reason", 40)? {
        None => None,
        Some("requested_by_customer") => Some(RefundReason::RequestedByCustomer),
        Some("duplicate") => Some(RefundReason::Duplicate),
        Some("fraudulent") => Some(RefundReason::Fraudulent),
        Some(_) => {
            return Err(Error::invalid_input(
                "reason",
                "must be requested_by_customer, duplicate or fraudulent",
            ));
        }
    };
    Ok(RefundRequest {
        order_id: f.str("orderId", MAX_TEXT)?.to_owned(),
        amount: body.get("amount").filter(|v| !v.is_null()).cloned(),
        reason,
    })
}

/// Validates `limit` of `GET /api/orders` (1..=[`MAX_PAGE`], default [`DEFAULT_PAGE`]).
///
/// # Errors
/// [`Error::InvalidInput`] naming `limit`.
pub fn page_limit(raw: Option<&str>) -> Result<usize> {
    match raw {
        None => Ok(DEFAULT_PAGE),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                Error::invalid_input(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_PAGE}"),
                )
            }),
    }
}

/// The opaque cursor of the page after the order with sequence number `seq`.
pub fn encode_cursor(seq: i64) -> String {
    format!("c{seq:x}")
}

/// Decodes a cursor from [`encode_cursor`].
///
/// # Errors
/// [`Error::InvalidInput`] naming `cursor`.
pub fn decode_cursor(raw: &str) -> Result<i64> {
    raw.strip_prefix('c')
        .filter(|h| !h.is_empty() && h.len() <= 16)
        .and_then(|h| i64::from_str_radix(h, 16).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::invalid_input("cursor", "is not a cursor this API returned"))
}
