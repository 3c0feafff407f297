//! The order model: status with its allowed transitions, lines, the order.
//!
//! Every amount is a core [`Money`]: integer minor units with their currency, never floats.

use std::collections::BTreeMap;
use std::fmt;

use integrations_core::{Currency, Error, Money, Result};

/// Where an order is in its life.
///
/// ```text
/// pending ──► paid ──► fulfilled ──► refunded
///    │  ▲       └──────────────────► refunded
///    │  │
///    ├► payment_failed ──► cancelled
///    └──────────────────► cancelled
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OrderStatus {
    /// Accepted, not paid yet.
    Pending,
    /// A payment attempt failed; it may be retried.
    PaymentFailed,
    /// Paid.
    Paid,
    /// Shipped or delivered.
    Fulfilled,
    /// Cancelled before payment (terminal).
    Cancelled,
    /// Money returned (terminal).
    Refunded,
}

impl OrderStatus {
    /// The stored name (`"payment_failed"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::PaymentFailed => "payment_failed",
            OrderStatus::Paid => "paid",
            OrderStatus::Fulfilled => "fulfilled",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Refunded => "refunded",
        }
    }

    /// The statuses this one may move to.
    pub const fn allowed_next(self) -> &'static [OrderStatus] {
        use OrderStatus::*;
        match self {
            Pending => &[Paid, PaymentFailed, Cancelled],
            PaymentFailed => &[Paid, Cancelled],
            Paid => &[Fulfilled, Refunded],
            Fulfilled => &[Refunded],
            Cancelled | Refunded => &[],
        }
    }

    /// Whether `self → next` is allowed.
    pub fn can_transition_to(self, next: OrderStatus) -> bool {
        self.allowed_next().contains(&next)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LineItem {
    /// The shop's product id.
    pub sku: String,
    /// Product name, as the customer sees it (escaped by the HTML emails).
    pub name: String,
    /// How many (at least 1).
    pub quantity: u32,
    /// Price of one.
    pub unit_price: Money,
}

impl LineItem {
    /// A line of `quantity` × `sku` (`name`) at `unit_price` each.
    pub fn new(
        sku: impl Into<String>,
        name: impl Into<String>,
        quantity: u32,
        unit_price: Money,
    ) -> Self {
        LineItem {
            sku: sku.into(),
            name: name.into(),
            quantity,
            unit_price,
        }
    }

    /// `unit_price × quantity`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `quantity` on overflow.
    pub fn line_total(&self) -> Result<Money> {
        self.unit_price
            .checked_mul(i64::from(self.quantity))
            .map_err(|e| Error::invalid_input("quantity", e.to_string()))
    }
}

/// The sum of `items`, in `currency` (zero for no lines).
///
/// # Errors
/// [`Error::InvalidInput`] naming `items` on overflow or a line in another currency.
pub fn total_of(items: &[LineItem], currency: Currency) -> Result<Money> {
    let mut total = Money::zero(currency);
    for item in items {
        total = item
            .unit_price
            .checked_mul(i64::from(item.quantity))
            .and_then(|line| total.checked_add(line))
            .map_err(|e| Error::invalid_input("items", e.to_string()))?;
    }
    Ok(total)
}

/// An order of the shop (as stored in DynamoDB, attribute names are the field names).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Order {
    /// Partition key.
    pub order_id: String,
    /// Customer (partition key of the customer index).
    pub customer_id: String,
    /// Status.
    pub status: OrderStatus,
    /// Total.
    pub total: Money,
    /// Lines.
    #[serde(default)]
    pub items: Vec<LineItem>,
    /// Creation time, unix milliseconds (sort key of the customer index).
    pub created_at_ms: i64,
    /// Last change, unix milliseconds.
    pub updated_at_ms: i64,
    /// Free-form metadata (payment intent id, …).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl Order {
    /// A pending order created now.
    pub fn new(order_id: impl Into<String>, customer_id: impl Into<String>, total: Money) -> Self {
        let now = now_millis();
        Order {
            order_id: order_id.into(),
            customer_id: customer_id.into(),
            status: OrderStatus::Pending,
            total,
            items: Vec::new(),
            created_at_ms: now,
            updated_at_ms: now,
            metadata: BTreeMap::new(),
        }
    }
    /// Adds a line.
    #[must_use]
    pub fn with_item(mut self, item: LineItem) -> Self {
        self.items.push(item);
        self
    }
    /// Adds metadata.
    #[must_use]
    pub fn with_metadata(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.metadata.insert(k.into(), v.into());
        self
    }
    /// Sets the creation time (unix milliseconds).
    #[must_use]
    pub fn with_created_at_ms(mut self, ms: i64) -> Self {
        self.created_at_ms = ms;
        self.updated_at_ms = ms;
        self
    }
}

/// A page of a customer's orders, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OrderPage {
    /// The orders.
    pub orders: Vec<Order>,
    /// Pass to the next call for the following page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// Now, in unix milliseconds.
pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use integrations_aws::dynamodb::{from_item, to_item};
    use integrations_core::Currency;
    use serde_json::json;

    #[test]
    fn transitions() {
        use OrderStatus::*;
        assert!(Pending.can_transition_to(Paid));
        assert!(PaymentFailed.can_transition_to(Paid));
        assert!(Paid.can_transition_to(Refunded));
        assert!(!Paid.can_transition_to(Pending));
        assert!(!Pending.can_transition_to(Fulfilled));
        assert!(!Cancelled.can_transition_to(Paid));
        assert!(Refunded.allowed_next().is_empty());
        assert_eq!(
            serde_json::to_value(PaymentFailed).unwrap(),
            json!("payment_failed")
        );
    }

    #[test]
    fn order_item_shape() {
        let o = Order::new("o-1", "c-1", Money::from_minor(2500, Currency::EUR))
            .with_item(LineItem::new(
                "sku",
                "Socks",
                2,
                Money::from_minor(1250, Currency::EUR),
            ))
            .with_created_at_ms(1_700_000_000_000);
        let item = to_item(&o).unwrap();
        assert_eq!(item["status"], json!({"S": "pending"}));
        assert_eq!(item["created_at_ms"], json!({"N": "1700000000000"}));
        assert_eq!(item["total"]["M"]["minor"], json!({"N": "2500"}));
        assert_eq!(from_item::<Order>(&item).unwrap(), o);
    }

    #[test]
    fn totals_add_lines_and_name_overflow() {
        let usd = |m| Money::from_minor(m, Currency::USD);
        let items = [
            LineItem::new("a", "A", 2, usd(2999)),
            LineItem::new("b", "B", 1, usd(2)),
        ];
        assert_eq!(items[0].line_total().unwrap(), usd(5998));
        assert_eq!(total_of(&items, Currency::USD).unwrap(), usd(6000));
        assert_eq!(
            total_of(&[], Currency::EUR).unwrap(),
            Money::zero(Currency::EUR)
        );
        let big = [LineItem::new("x", "X", u32::MAX, usd(i64::MAX / 2))];
        assert_eq!(
            total_of(&big, Currency::USD).unwrap_err().field(),
            Some("items")
        );
        assert_eq!(big[0].line_total().unwrap_err().field(), Some("quantity"));
    }
}
