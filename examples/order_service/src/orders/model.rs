//! Orders as the service keeps them, and their JSON form.
//!
//! The lines are the shop's ([`integrations_shop::LineItem`]: the product id is its `sku`, shown
//! as `id` in the API). The service's [`Order`] and [`OrderStatus`] are not the shop's: they
//! are the REST API's and SQLite store's shape (a sequence number, client keys, a shipping
//! address, and the payment-intent statuses the API reports: `requires_action`, `processing`,
//! `authorized`, `partially_refunded`, …), so they stay here, and the service converts at its
//! edge: `validate` builds the lines from the request JSON, `row` reads and writes them in SQLite.

use std::fmt;

use integrations_core::provider::PaymentStatus;
use integrations_core::{Currency, Money};
use serde_json::{Value, json};

pub use integrations_shop::LineItem;

/// Where the order ships.
#[derive(Clone, PartialEq, Eq)]
pub struct ShippingAddress {
    /// Street and number.
    pub street: String,
    /// City.
    pub city: String,
    /// State or region, if any.
    pub state: Option<String>,
    /// Postal code.
    pub zip_code: String,
    /// Country.
    pub country: String,
}

impl fmt::Debug for ShippingAddress {
    // Personal data: only the country is printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShippingAddress")
            .field("country", &self.country)
            .finish_non_exhaustive()
    }
}

/// A validated order request (see [`crate::validate::new_order`]).
#[derive(Clone, PartialEq, Eq)]
pub struct NewOrder {
    /// The shop's customer id, if any.
    pub customer_id: Option<String>,
    /// Where the confirmation goes.
    pub customer_email: String,
    /// The customer's name as given.
    pub customer_name: String,
    /// Lines (at least one).
    pub items: Vec<LineItem>,
    /// The total: equal to the sum of the lines.
    pub total: Money,
    /// Shipping address, if any.
    pub shipping: Option<ShippingAddress>,
}

impl fmt::Debug for NewOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewOrder")
            .field("customer_id", &self.customer_id)
            .field("items", &self.items)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OrderStatus {
    /// Accepted; payment not (yet) made.
    Pending,
    /// The payment needs the customer (3-D Secure).
    RequiresAction,
    /// The payment is being processed.
    Processing,
    /// Authorised, to be captured.
    Authorized,
    /// The last payment attempt failed; another may be made.
    PaymentFailed,
    /// Paid in full.
    Paid,
    /// Paid, part of it refunded.
    PartiallyRefunded,
    /// Paid and refunded in full.
    Refunded,
    /// The payment was canceled.
    Canceled,
}

impl OrderStatus {
    /// Every status.
    pub const ALL: [OrderStatus; 9] = [
        OrderStatus::Pending,
        OrderStatus::RequiresAction,
        OrderStatus::Processing,
        OrderStatus::Authorized,
        OrderStatus::PaymentFailed,
        OrderStatus::Paid,
        OrderStatus::PartiallyRefunded,
        OrderStatus::Refunded,
        OrderStatus::Canceled,
    ];

    /// Stable snake_case name, as stored and rendered.
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::RequiresAction => "requires_action",
            OrderStatus::Processing => "processing",
            OrderStatus::Authorized => "authorized",
            OrderStatus::PaymentFailed => "payment_failed",
            OrderStatus::Paid => "paid",
            OrderStatus::PartiallyRefunded => "partially_refunded",
            OrderStatus::Refunded => "refunded",
            OrderStatus::Canceled => "canceled",
        }
    }

    /// The status named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        OrderStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the payment has not been settled yet: such an order may still move to any
    /// payment state. Once paid (or canceled), only refunds move it.
    pub const fn is_unsettled(self) -> bool {
        matches!(
            self,
            OrderStatus::Pending
                | OrderStatus::RequiresAction
                | OrderStatus::Processing
                | OrderStatus::Authorized
                | OrderStatus::PaymentFailed
        )
    }

    /// Whether a refund may be made.
    pub const fn is_refundable(self) -> bool {
        matches!(self, OrderStatus::Paid | OrderStatus::PartiallyRefunded)
    }

    /// The order status a payment in `status` means; `failed` when the provider reported a
    /// failure of the last attempt.
    pub const fn from_payment(status: PaymentStatus, failed: bool) -> OrderStatus {
        match status {
            PaymentStatus::Succeeded => OrderStatus::Paid,
            PaymentStatus::RequiresCapture => OrderStatus::Authorized,
            PaymentStatus::Processing => OrderStatus::Processing,
            PaymentStatus::RequiresAction => OrderStatus::RequiresAction,
            PaymentStatus::Canceled => OrderStatus::Canceled,
            _ if failed => OrderStatus::PaymentFailed,
            _ => OrderStatus::Pending,
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored order.
#[derive(Clone, PartialEq, Eq)]
pub struct Order {
    /// `ord_` and 32 hex digits.
    pub id: String,
    /// The order as accepted.
    pub details: NewOrder,
    /// Status.
    pub status: OrderStatus,
    /// The payment (Stripe payment intent) id, once created.
    pub payment_id: Option<String>,
    /// Refunded so far.
    pub refunded: Money,
    /// Refunds made so far (numbers the refunds' idempotency keys).
    pub refund_count: u32,
    /// Latest email event reported for the confirmation (`delivered`, `bounce`, …).
    pub email_status: Option<String>,
    /// Creation time, unix milliseconds.
    pub created_at: i64,
    /// Last change, unix milliseconds.
    pub updated_at: i64,
}

impl fmt::Debug for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Order")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("total", &self.details.total)
            .field("payment_id", &self.payment_id)
            .field("refunded", &self.refunded)
            .finish_non_exhaustive()
    }
}

impl Order {
    /// The order's currency.
    pub fn currency(&self) -> Currency {
        self.details.total.currency()
    }

    /// What may still be refunded.
    pub fn refundable(&self) -> Money {
        self.details
            .total
            .checked_sub(self.refunded)
            .unwrap_or(Money::zero(self.currency()))
    }

    /// The order as the API renders it (amounts as exact decimal strings and minor units).
    pub fn to_json(&self) -> Value {
        let d = &self.details;
        let items: Vec<Value> = d
            .items
            .iter()
            .map(|i| {
                json!({
                    "id": i.sku,
                    "name": i.name,
                    "quantity": i.quantity,
                    "price": i.unit_price.to_decimal_string(),
                    "lineTotal": i.line_total().ok().map(|m| m.to_decimal_string()),
                })
            })
            .collect();
        let shipping = d.shipping.as_ref().map(|s| {
            json!({
                "street": s.street, "city": s.city, "state": s.state,
                "zipCode": s.zip_code, "country": s.country,
            })
        });
        json!({
            "id": self.id,
            "status": self.status.as_str(),
            "customerId": d.customer_id,
            "customerEmail": d.customer_email,
            "customerName": d.customer_name,
            "items": items,
            "currency": self.currency().lowercase(),
            "totalAmount": d.total.to_decimal_string(),
            "totalAmountMinor": d.total.minor(),
            "refundedAmount": self.refunded.to_decimal_string(),
            "paymentIntentId": self.payment_id,
            "emailStatus": self.email_status,
            "shippingAddress": shipping,
            "createdAt": rfc3339(self.created_at),
            "updatedAt": rfc3339(self.updated_at),
        })
    }
}

/// Unix milliseconds as RFC 3339 UTC with millisecond precision (`2025-11-29T10:30:00.000Z`).
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_764_412_200_000), "2025-11-29T10:30:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn statuses_round_trip_and_map_payments() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(OrderStatus::parse("shipped"), None);
        assert_eq!(
            OrderStatus::from_payment(PaymentStatus::Succeeded, false),
            OrderStatus::Paid
        );
        assert_eq!(
            OrderStatus::from_payment(PaymentStatus::RequiresPaymentMethod, true),
            OrderStatus::PaymentFailed
        );
        assert_eq!(
            OrderStatus::from_payment(PaymentStatus::RequiresPaymentMethod, false),
            OrderStatus::Pending
        );
        assert!(OrderStatus::PaymentFailed.is_unsettled());
        assert!(!OrderStatus::Paid.is_unsettled());
        assert!(OrderStatus::PartiallyRefunded.is_refundable());
    }

    #[test]
    fn debug_hides_personal_data() {
        let usd = |m| Money::from_minor(m, Currency::USD);
        let details = NewOrder {
            customer_id: Some("cust_1".into()),
            customer_email: "jane@example.com".into(),
            customer_name: "Jane Doe".into(),
            items: vec![LineItem::new("i1", "Shoes", 2, usd(100))],
            total: usd(200),
            shipping: Some(ShippingAddress {
                street: "1 Secret Lane".into(),
                city: "Springfield".into(),
                state: None,
                zip_code: "12345".into(),
                country: "US".into(),
            }),
        };
        let order = Order {
            id: "ord_1".into(),
            details: details.clone(),
            status: OrderStatus::Pending,
            payment_id: None,
            refunded: usd(0),
            refund_count: 0,
            email_status: None,
            created_at: 0,
            updated_at: 0,
        };
        for s in [format!("{order:?}"), format!("{details:?}")] {
            for secret in ["jane@example.com", "Jane Doe", "Secret Lane"] {
                assert!(!s.contains(secret), "{s}");
            }
        }
        assert_eq!(order.to_json()["totalAmount"], "2.00");
        assert_eq!(order.to_json()["items"][0]["lineTotal"], "2.00");
        assert_eq!(order.refundable(), usd(200));
    }
}
