//! How an order is laid out in its row (the same in SQLite and Postgres): the columns read, the
//! JSON of its lines and address, and the decoding of a row back into an [`Order`].

use integrations_core::{Currency, Money, Result};
use serde_json::{Value, json};

use super::model::{LineItem, NewOrder, Order, OrderStatus, ShippingAddress};
use super::store::corrupt;

pub(super) const COLS: &str = "seq, id, customer_id, customer_email, customer_name, currency, total_minor, \
    items, shipping, status, payment_id, refunded_minor, refund_count, email_status, created_at, \
    updated_at";

pub(super) fn items_json(items: &[LineItem]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|i| json!({"id": i.sku, "name": i.name, "quantity": i.quantity, "unit_minor": i.unit_price.minor()}))
            .collect(),
    )
}

pub(super) fn shipping_json(s: &ShippingAddress) -> Value {
    json!({"street": s.street, "city": s.city, "state": s.state, "zip_code": s.zip_code, "country": s.country})
}

/// An order row as stored, before its currency, status, lines and address are parsed: what
/// each backend reads, so the decoding below is written once.
#[derive(Debug)]
pub(super) struct RawOrder {
    pub(super) seq: i64,
    pub(super) id: String,
    pub(super) customer_id: Option<String>,
    pub(super) customer_email: String,
    pub(super) customer_name: String,
    pub(super) currency: String,
    pub(super) total_minor: i64,
    pub(super) items: String,
    pub(super) shipping: Option<String>,
    pub(super) status: String,
    pub(super) payment_id: Option<String>,
    pub(super) refunded_minor: i64,
    pub(super) refund_count: i64,
    pub(super) email_status: Option<String>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
}

impl RawOrder {
    /// The row's cursor (`seq`) and the order.
    ///
    /// # Errors
    /// [`Error::Provider`](integrations_core::Error) naming the unreadable column.
    pub(super) fn into_order(self) -> Result<(i64, Order)> {
        let currency = Currency::from_code(&self.currency).map_err(|_| corrupt("currency"))?;
        let status = OrderStatus::parse(&self.status).ok_or_else(|| corrupt("status"))?;
        let items = parse_items(&self.items, currency).ok_or_else(|| corrupt("items"))?;
        let shipping = match self.shipping {
            Some(s) => Some(parse_shipping(&s).ok_or_else(|| corrupt("shipping"))?),
            None => None,
        };
        Ok((
            self.seq,
            Order {
                id: self.id,
                details: NewOrder {
                    customer_id: self.customer_id,
                    customer_email: self.customer_email,
                    customer_name: self.customer_name,
                    items,
                    total: Money::from_minor(self.total_minor, currency),
                    shipping,
                },
                status,
                payment_id: self.payment_id,
                refunded: Money::from_minor(self.refunded_minor, currency),
                refund_count: u32::try_from(self.refund_count).unwrap_or(u32::MAX),
                email_status: self.email_status,
                created_at: self.created_at,
                updated_at: self.updated_at,
            },
        ))
    }
}

fn parse_items(raw: &str, currency: Currency) -> Option<Vec<LineItem>> {
    let v: Value = serde_json::from_str(raw).ok()?;
    v.as_array()?
        .iter()
        .map(|i| {
            Some(LineItem::new(
                i.get("id")?.as_str()?,
                i.get("name")?.as_str()?,
                u32::try_from(i.get("quantity")?.as_u64()?).ok()?,
                Money::from_minor(i.get("unit_minor")?.as_i64()?, currency),
            ))
        })
        .collect()
}

fn parse_shipping(raw: &str) -> Option<ShippingAddress> {
    let v: Value = serde_json::from_str(raw).ok()?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(ShippingAddress {
        street: s("street")?,
        city: s("city")?,
        state: s("state"),
        zip_code: s("zip_code")?,
        country: s("country")?,
    })
}
