//! How an order is laid out in its SQLite row: the columns read, the JSON of its lines and
//! address, and the decoding of a row back into an [`Order`].

use integrations_core::{Currency, Money, Result};
use rusqlite::Row;
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

pub(super) type RawRow = Result<(i64, Order)>;

pub(super) fn read_row(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    let currency: String = r.get(5)?;
    let items: String = r.get(7)?;
    let shipping: Option<String> = r.get(8)?;
    let status: String = r.get(9)?;
    let seq: i64 = r.get(0)?;
    let id: String = r.get(1)?;
    let customer_id: Option<String> = r.get(2)?;
    let customer_email: String = r.get(3)?;
    let customer_name: String = r.get(4)?;
    let total_minor: i64 = r.get(6)?;
    let payment_id: Option<String> = r.get(10)?;
    let refunded_minor: i64 = r.get(11)?;
    let refund_count: i64 = r.get(12)?;
    let email_status: Option<String> = r.get(13)?;
    let created_at: i64 = r.get(14)?;
    let updated_at: i64 = r.get(15)?;
    Ok((|| {
        let currency = Currency::from_code(&currency).map_err(|_| corrupt("currency"))?;
        let status = OrderStatus::parse(&status).ok_or_else(|| corrupt("status"))?;
        let items = parse_items(&items, currency).ok_or_else(|| corrupt("items"))?;
        let shipping = match shipping {
            Some(s) => Some(parse_shipping(&s).ok_or_else(|| corrupt("shipping"))?),
            None => None,
        };
        Ok((
            seq,
            Order {
                id,
                details: NewOrder {
                    customer_id,
                    customer_email,
                    customer_name,
                    items,
                    total: Money::from_minor(total_minor, currency),
                    shipping,
                },
                status,
                payment_id,
                refunded: Money::from_minor(refunded_minor, currency),
                refund_count: u32::try_from(refund_count).unwrap_or(u32::MAX),
                email_status,
                created_at,
                updated_at,
            },
        ))
    })())
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
