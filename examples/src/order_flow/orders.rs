//! The orders of a run: generated deterministically, kept in the order store ([`OrderBook`], a
//! SQLite file in the run's directory).
//!
//! Lines and amounts are the shop's ([`LineItem`], core `Money`). The run's [`Order`] is not the
//! shop's stored [`integrations_shop::Order`]: it is a checkout request (contact, test card) whose
//! progress is an [`OrderState`] of the checkout (declines and failures carry their reason), so it
//! keeps its own shape here.

use std::fmt;

use integrations_core::{Currency, IdempotencyKey, Money, Result};
use serde::{Deserialize, Serialize};

mod book;
pub use book::{BUSY_TIMEOUT, OrderBook, Records};

/// Stripe's test payment method that succeeds.
pub const CARD_OK: &str = "pm_card_visa";
/// Declined with `card_declined` / `generic_decline`.
pub const CARD_DECLINED: &str = "pm_card_chargeDeclined";
/// Declined with `card_declined` / `insufficient_funds`.
pub const CARD_INSUFFICIENT_FUNDS: &str = "pm_card_chargeDeclinedInsufficientFunds";
/// Declined with `expired_card`.
pub const CARD_EXPIRED: &str = "pm_card_chargeDeclinedExpiredCard";

const PRODUCTS: [(&str, &str, i64); 6] = [
    ("trail-shoes", "Trail running shoes", 8_999),
    ("merino-socks-3", "Merino socks (3 pack)", 2_450),
    ("bottle-750", "Water bottle 750 ml", 1_299),
    ("headlamp", "Headlamp", 3_995),
    ("rain-shell", "Rain shell", 12_900),
    ("gel-12", "Energy gel (12)", 1_800),
];

const NAMES: [&str; 8] = [
    "Jane Doe",
    "Amara Okafor",
    "Lukas Meyer",
    "Sofia García",
    "Kenji Watanabe",
    "Chloé Martin",
    "O'Brien & Sons <Ltd>",
    "Priya Nair",
];

pub use integrations_shop::LineItem;

/// An order as the shop accepted it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// `ord_<run>_<n>`: unique per run, so real providers' idempotency windows never collide
    /// across runs.
    pub id: String,
    /// Customer's name as given (escaped by the email templates).
    pub customer_name: String,
    /// Customer's address.
    pub customer_email: String,
    /// Lines.
    pub items: Vec<LineItem>,
    /// Currency of every amount.
    pub currency: Currency,
    /// The Stripe test payment method the customer pays with.
    pub card: String,
}

impl fmt::Debug for Order {
    // Name and address are personal data: not printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Order")
            .field("id", &self.id)
            .field("items", &self.items.len())
            .field("currency", &self.currency)
            .field("card", &self.card)
            .finish_non_exhaustive()
    }
}

impl Order {
    /// Order number `n` of run `run`: a few lines of products, and every 40 orders one of each
    /// declining test card (positions 7, 19 and 31), so a batch has a few declines of each kind.
    pub fn sample(run: &str, n: usize, recipient: Option<&str>) -> Order {
        // A small deterministic mix (LCG on the order number), not randomness: runs compare.
        let mut seed = (n as u64)
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let mut next = |m: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % m
        };
        let lines = 1 + next(3) as usize;
        let items = (0..lines)
            .map(|_| {
                let (sku, name, price) = PRODUCTS[next(PRODUCTS.len() as u64) as usize];
                LineItem::new(
                    sku,
                    name,
                    1 + next(3) as u32,
                    Money::from_minor(price, Currency::USD),
                )
            })
            .collect();
        let card = match n % 40 {
            7 => CARD_DECLINED,
            19 => CARD_INSUFFICIENT_FUNDS,
            31 => CARD_EXPIRED,
            _ => CARD_OK,
        };
        let id = format!("ord_{run}_{n:04}");
        let customer_email = match recipient {
            Some(addr) => addr.to_owned(),
            None => format!("customer{n:04}@example.com"),
        };
        Order {
            customer_name: NAMES[n % NAMES.len()].to_owned(),
            customer_email,
            items,
            currency: Currency::USD,
            card: card.to_owned(),
            id,
        }
    }

    /// The order total.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](integrations_core::Error::InvalidInput) naming `items` if the total overflows.
    pub fn total(&self) -> Result<Money> {
        integrations_shop::total_of(&self.items, self.currency)
    }

    /// The key of creating this order's payment: the same on every retry and after a restart.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](integrations_core::Error::InvalidInput) if the order id is not printable ASCII.
    pub fn payment_key(&self) -> Result<IdempotencyKey> {
        IdempotencyKey::derive(&self.id, "payment")
    }

    /// The key of confirming this order's payment.
    ///
    /// # Errors
    /// As [`Order::payment_key`].
    pub fn confirm_key(&self) -> Result<IdempotencyKey> {
        self.payment_key()?.child("confirm")
    }

    /// The key of this order's refund number `n` (`ord_…/refund/1`).
    ///
    /// # Errors
    /// As [`Order::payment_key`].
    pub fn refund_key(&self, n: u32) -> Result<IdempotencyKey> {
        IdempotencyKey::derive(&self.id, "refund")?.child(&n.to_string())
    }
}

/// Where an order is, as the checkout saw it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OrderState {
    /// Stored, no payment yet.
    Created,
    /// A payment intent exists, not confirmed yet.
    PaymentPending,
    /// The card was charged.
    Paid,
    /// Paid, then refunded in part.
    PartiallyRefunded,
    /// The card was declined, with the decline code.
    Declined(String),
    /// The checkout could not finish (provider unavailable after retries, …).
    Failed(String),
}

impl OrderState {
    /// Whether checkout is over for good: paid (refunded or not) or declined. A `Failed` checkout
    /// is not: a resumed run tries it again, under the same idempotency keys.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            OrderState::Paid | OrderState::PartiallyRefunded | OrderState::Declined(_)
        )
    }

    /// Whether the card was charged (refunded in part or not).
    pub fn is_paid(&self) -> bool {
        matches!(self, OrderState::Paid | OrderState::PartiallyRefunded)
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrderState::Created => f.write_str("created"),
            OrderState::PaymentPending => f.write_str("payment pending"),
            OrderState::Paid => f.write_str("paid"),
            OrderState::PartiallyRefunded => f.write_str("partially refunded"),
            OrderState::Declined(code) => write!(f, "declined ({code})"),
            OrderState::Failed(why) => write!(f, "failed ({why})"),
        }
    }
}

/// An order and what happened to it.
#[derive(Debug, Clone)]
pub struct OrderRecord {
    /// The order.
    pub order: Order,
    /// Where it is.
    pub state: OrderState,
    /// The payment intent, once created.
    pub payment_id: Option<String>,
    /// Refunded so far, in minor units.
    pub refunded_minor: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_deterministic_with_a_few_declines() {
        let a = Order::sample("r1", 42, None);
        assert_eq!(a, Order::sample("r1", 42, None));
        assert_eq!(a.id, "ord_r1_0042");
        assert!(a.total().unwrap().is_positive());
        let cards: Vec<String> = (0..40).map(|n| Order::sample("r", n, None).card).collect();
        assert_eq!(cards.iter().filter(|c| *c == CARD_OK).count(), 37);
        for declining in [CARD_DECLINED, CARD_INSUFFICIENT_FUNDS, CARD_EXPIRED] {
            assert_eq!(cards.iter().filter(|c| *c == declining).count(), 1);
        }
        let to = Order::sample("r", 3, Some("inbox@example.org"));
        assert_eq!(to.customer_email, "inbox@example.org");
    }

    #[test]
    fn keys_derive_from_the_order() {
        let o = Order::sample("r", 1, None);
        assert_eq!(o.payment_key().unwrap().as_str(), "ord_r_0001/payment");
        assert_eq!(
            o.confirm_key().unwrap().as_str(),
            "ord_r_0001/payment/confirm"
        );
        assert_eq!(o.refund_key(1).unwrap().as_str(), "ord_r_0001/refund/1");
    }

    #[test]
    fn debug_hides_personal_data() {
        let o = Order::sample("r", 1, None);
        let s = format!("{o:?}");
        assert!(
            !s.contains(&o.customer_email) && !s.contains(&o.customer_name),
            "{s}"
        );
    }
}
