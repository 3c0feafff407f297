//! The order model: status with its allowed transitions, lines, the stored order.

use std::collections::BTreeMap;
use std::fmt;

use integrations_core::Money;

use super::now_millis;

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
pub struct OrderItem {
    /// Product id.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// Price of one.
    pub unit_price: Money,
}

/// An order as stored (attribute names are the field names).
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
    pub items: Vec<OrderItem>,
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
    pub fn with_item(mut self, sku: impl Into<String>, quantity: u32, unit_price: Money) -> Self {
        self.items.push(OrderItem {
            sku: sku.into(),
            quantity,
            unit_price,
        });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamodb::{from_item, to_item};
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
            .with_item("sku", 2, Money::from_minor(1250, Currency::EUR))
            .with_created_at_ms(1_700_000_000_000);
        let item = to_item(&o).unwrap();
        assert_eq!(item["status"], json!({"S": "pending"}));
        assert_eq!(item["created_at_ms"], json!({"N": "1700000000000"}));
        assert_eq!(item["total"]["M"]["minor"], json!({"N": "2500"}));
        assert_eq!(from_item::<Order>(&item).unwrap(), o);
    }
}
