//! The orders of a run: generated deterministically, kept in the order store (in memory, or
//! journaled to the run's state directory).
//!
//! Lines and amounts are the shop's ([`LineItem`], core `Money`). The run's [`Order`] is not the
//! shop's stored [`integrations_shop::Order`]: it is a checkout request (contact, test card) whose
//! progress is an [`OrderState`] of the checkout (declines and failures carry their reason), so it
//! keeps its own shape here.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use integrations_core::{Currency, IdempotencyKey, Money, Result};
use serde::{Deserialize, Serialize};

use super::journal::Journal;

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

/// One change to the order store, as journaled.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Change {
    Order {
        order: Order,
    },
    Payment {
        order_id: String,
        payment_id: String,
    },
    State {
        order_id: String,
        state: OrderState,
    },
    Refund {
        order_id: String,
        number: u32,
        minor: i64,
    },
    RefundTarget {
        order_id: String,
    },
}

#[derive(Debug, Default)]
struct Book {
    orders: BTreeMap<String, OrderRecord>,
    by_payment: HashMap<String, String>,
    refunds: HashSet<(String, u32)>,
    refund_target: Option<String>,
}

impl Book {
    /// Whether `change` would change anything (a repeat of a recorded refund or target does not).
    fn changes(&self, change: &Change) -> bool {
        match change {
            Change::Order { order } => !self.orders.contains_key(&order.id),
            Change::Refund {
                order_id, number, ..
            } => !self.refunds.contains(&(order_id.clone(), *number)),
            Change::RefundTarget { .. } => self.refund_target.is_none(),
            Change::Payment { .. } | Change::State { .. } => true,
        }
    }

    fn apply(&mut self, change: Change) {
        match change {
            Change::Order { order } => {
                let record = OrderRecord {
                    order,
                    state: OrderState::Created,
                    payment_id: None,
                    refunded_minor: 0,
                };
                self.orders.entry(record.order.id.clone()).or_insert(record);
            }
            Change::Payment {
                order_id,
                payment_id,
            } => {
                if let Some(r) = self.orders.get_mut(&order_id) {
                    r.payment_id = Some(payment_id.clone());
                    r.state = OrderState::PaymentPending;
                }
                self.by_payment.insert(payment_id, order_id);
            }
            Change::State { order_id, state } => {
                if let Some(r) = self.orders.get_mut(&order_id) {
                    r.state = state;
                }
            }
            Change::Refund {
                order_id,
                number,
                minor,
            } => {
                if self.refunds.insert((order_id.clone(), number))
                    && let Some(r) = self.orders.get_mut(&order_id)
                {
                    r.refunded_minor += minor;
                    r.state = OrderState::PartiallyRefunded;
                }
            }
            Change::RefundTarget { order_id } => {
                self.refund_target.get_or_insert(order_id);
            }
        }
    }
}

/// The shop's order store: in memory ([`OrderBook::new`]), or journaled to a file
/// ([`OrderBook::open`]) so that a run resumed after a crash finds its orders, their payments
/// and their states again. Each change is journaled before it takes effect in memory.
#[derive(Debug, Default)]
pub struct OrderBook {
    inner: Mutex<Book>,
    journal: Option<Journal<Change>>,
}

impl OrderBook {
    /// An empty store, in memory.
    pub fn new() -> Self {
        OrderBook::default()
    }

    /// The store journaled in the file at `path`, with every order recorded there before.
    ///
    /// # Errors
    /// As [`Journal::open`].
    pub fn open(path: impl Into<std::path::PathBuf>) -> Result<Self> {
        let (journal, changes) = Journal::open(path)?;
        let mut book = Book::default();
        for change in changes {
            book.apply(change);
        }
        Ok(OrderBook {
            inner: Mutex::new(book),
            journal: Some(journal),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Book> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Journals `change` (if it changes anything), then applies it.
    fn change(&self, change: Change) -> Result<()> {
        let mut book = self.lock();
        if !book.changes(&change) {
            return Ok(());
        }
        if let Some(j) = &self.journal {
            j.append(&change)?;
        }
        book.apply(change);
        Ok(())
    }

    /// Stores a new order in [`OrderState::Created`]; an order already stored is left as it is.
    ///
    /// # Errors
    /// The journal's write error (nothing changed).
    pub fn insert(&self, order: Order) -> Result<()> {
        self.change(Change::Order { order })
    }

    /// Links `order_id` to its payment intent and marks it pending.
    ///
    /// # Errors
    /// The journal's write error (nothing changed).
    pub fn payment_created(&self, order_id: &str, payment_id: &str) -> Result<()> {
        self.change(Change::Payment {
            order_id: order_id.to_owned(),
            payment_id: payment_id.to_owned(),
        })
    }

    /// Sets an order's state.
    ///
    /// # Errors
    /// The journal's write error (nothing changed).
    pub fn set_state(&self, order_id: &str, state: OrderState) -> Result<()> {
        self.change(Change::State {
            order_id: order_id.to_owned(),
            state,
        })
    }

    /// Records the order's refund number `number`, of `minor` units, once: recording the same
    /// refund again changes nothing.
    ///
    /// # Errors
    /// The journal's write error (nothing changed).
    pub fn refunded(&self, order_id: &str, number: u32, minor: i64) -> Result<()> {
        self.change(Change::Refund {
            order_id: order_id.to_owned(),
            number,
            minor,
        })
    }

    /// The order chosen for the run's refund: the one recorded before, else `candidate`, which
    /// is recorded (so a resumed run refunds the same order, whatever became of the others).
    ///
    /// # Errors
    /// The journal's write error.
    pub fn refund_target(&self, candidate: Option<String>) -> Result<Option<String>> {
        if let Some(order_id) = candidate {
            self.change(Change::RefundTarget { order_id })?;
        }
        Ok(self.lock().refund_target.clone())
    }

    /// One order.
    pub fn get(&self, order_id: &str) -> Option<OrderRecord> {
        self.lock().orders.get(order_id).cloned()
    }

    /// Whether the store has `order_id` (without copying its record, as [`get`](Self::get)
    /// does).
    pub fn contains(&self, order_id: &str) -> bool {
        self.lock().orders.contains_key(order_id)
    }

    /// The order paid by payment intent `payment_id`.
    pub fn by_payment(&self, payment_id: &str) -> Option<OrderRecord> {
        let book = self.lock();
        let id = book.by_payment.get(payment_id)?;
        book.orders.get(id).cloned()
    }

    /// How many orders `f` holds for, without copying them.
    pub fn count(&self, f: impl Fn(&OrderRecord) -> bool) -> usize {
        self.lock().orders.values().filter(|r| f(r)).count()
    }

    /// The last order `f` holds for: the highest order number. Ids are `ord_<run>_<n>`, `n` of
    /// four digits at least, so they compare by length first; the map's order is the text's,
    /// in which `ord_r_9999` comes after `ord_r_29999` (the refund of a 30,000-order run then
    /// went to order 9,999, whose intent the Stripe sandbox had forgotten by the end).
    pub fn last(&self, f: impl Fn(&OrderRecord) -> bool) -> Option<OrderRecord> {
        self.lock()
            .orders
            .values()
            .filter(|r| f(r))
            .max_by(|a, b| (a.order.id.len(), &a.order.id).cmp(&(b.order.id.len(), &b.order.id)))
            .cloned()
    }

    /// Every order, by id.
    pub fn all(&self) -> Vec<OrderRecord> {
        self.lock().orders.values().cloned().collect()
    }

    /// Every order's id, in order.
    pub fn ids(&self) -> Vec<String> {
        self.lock().orders.keys().cloned().collect()
    }

    /// Runs `f` over every order, borrowed under the store's lock (no copy of the orders; the
    /// store is not changed meanwhile).
    pub fn with_records<R>(&self, f: impl FnOnce(&[&OrderRecord]) -> R) -> R {
        let book = self.lock();
        let records: Vec<&OrderRecord> = book.orders.values().collect();
        f(&records)
    }
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

    #[test]
    fn the_last_order_is_the_highest_number_not_the_last_text() {
        let book = OrderBook::new();
        for n in [7, 9_999, 10_000, 29_999, 30_000] {
            book.insert(Order::sample("r", n, None)).unwrap();
        }
        for n in [9_999, 29_999] {
            book.set_state(&format!("ord_r_{n}"), OrderState::Paid)
                .unwrap();
        }
        let paid = book.last(|r| r.state.is_paid()).unwrap();
        assert_eq!(paid.order.id, "ord_r_29999");
        assert_eq!(book.last(|_| true).unwrap().order.id, "ord_r_30000");
        assert!(book.last(|r| r.refunded_minor > 0).is_none());
    }

    #[test]
    fn book_tracks_state_and_payment_links() {
        let book = OrderBook::new();
        let o = Order::sample("r", 1, None);
        book.insert(o.clone()).unwrap();
        book.payment_created(&o.id, "pi_1").unwrap();
        assert_eq!(book.by_payment("pi_1").unwrap().order.id, o.id);
        book.set_state(&o.id, OrderState::Paid).unwrap();
        book.insert(o.clone()).unwrap();
        assert_eq!(book.get(&o.id).unwrap().state, OrderState::Paid, "kept");
        book.refunded(&o.id, 1, 100).unwrap();
        book.refunded(&o.id, 1, 100).unwrap();
        let r = book.get(&o.id).unwrap();
        assert_eq!(r.state, OrderState::PartiallyRefunded);
        assert!(r.state.is_paid() && r.state.is_final());
        assert_eq!(r.refunded_minor, 100, "a refund recorded twice counts once");
        assert_eq!(book.all().len(), 1);
        assert_eq!(book.refund_target(None).unwrap(), None);
        assert_eq!(
            book.refund_target(Some("a".into())).unwrap().as_deref(),
            Some("a")
        );
        assert_eq!(
            book.refund_target(Some("b".into())).unwrap().as_deref(),
            Some("a")
        );
    }

    #[test]
    fn a_journaled_book_comes_back_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders.jsonl");
        let (a, b) = (Order::sample("r", 1, None), Order::sample("r", 2, None));
        {
            let book = OrderBook::open(&path).unwrap();
            book.insert(a.clone()).unwrap();
            book.payment_created(&a.id, "pi_a").unwrap();
            book.set_state(&a.id, OrderState::Paid).unwrap();
            book.refunded(&a.id, 1, 250).unwrap();
            book.refund_target(Some(a.id.clone())).unwrap();
            book.insert(b.clone()).unwrap();
            book.set_state(&b.id, OrderState::Failed("unavailable".into()))
                .unwrap();
        }
        let book = OrderBook::open(&path).unwrap();
        let ra = book.get(&a.id).unwrap();
        assert_eq!(ra.order, a);
        assert_eq!(ra.state, OrderState::PartiallyRefunded);
        assert_eq!(
            (ra.payment_id.as_deref(), ra.refunded_minor),
            (Some("pi_a"), 250)
        );
        assert_eq!(book.by_payment("pi_a").unwrap().order.id, a.id);
        assert!(!book.get(&b.id).unwrap().state.is_final());
        assert_eq!(book.refund_target(None).unwrap(), Some(a.id.clone()));
        book.refunded(&a.id, 1, 250).unwrap();
        assert_eq!(book.get(&a.id).unwrap().refunded_minor, 250);
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert_eq!(lines, 7, "repeats are not journaled");
    }
}
