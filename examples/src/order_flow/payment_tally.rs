//! The payments of every order as the Stripe sandbox announced them, tallied as each event is
//! handed over ([`Sandbox::on_webhook`]): the sandbox keeps only its latest objects
//! (`object_retention`), so an audit that read every intent back at the end would miss the
//! early orders of a long run. 24 bytes an order (kept by the order's number, [`ByOrder`]),
//! instead of the intent and charge objects (~1.5 KB an order) kept until the end.
//!
//! [`Sandbox::on_webhook`]: integrations_stripe::sandbox::Sandbox::on_webhook

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Deserialize;

use super::by_order::ByOrder;
use super::paged::Fixed;

/// What the events said about one order's payments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderPayments {
    /// `payment_intent.created` events.
    pub intents: u32,
    /// `charge.succeeded` events.
    pub successful_charges: u32,
    /// Whether one intent had a second successful charge in a row (a second charge on an
    /// intent after one on another intent of the same order is not told apart; that order has
    /// several intents, which fails the same invariant).
    pub an_intent_charged_twice: bool,
    /// A hash of the intent of the latest successful charge (an id is 27 bytes; the hash is
    /// what is needed to tell a second charge on the same intent from one on another).
    last_charged: u64,
}

impl Fixed for OrderPayments {
    const SIZE: usize = 17;
    fn put(&self, out: &mut [u8]) {
        self.intents.put(&mut out[..4]);
        self.successful_charges.put(&mut out[4..8]);
        self.an_intent_charged_twice.put(&mut out[8..9]);
        self.last_charged.put(&mut out[9..]);
    }
    fn take(bytes: &[u8]) -> Self {
        OrderPayments {
            intents: u32::take(&bytes[..4]),
            successful_charges: u32::take(&bytes[4..8]),
            an_intent_charged_twice: bool::take(&bytes[8..9]),
            last_charged: u64::take(&bytes[9..]),
        }
    }
}

/// The tally, by order (the intent's `metadata[order_id]`).
#[derive(Debug, Default)]
pub struct PaymentTally {
    inner: Mutex<Tally>,
}

#[derive(Debug, Default)]
struct Tally {
    by_order: ByOrder<OrderPayments>,
    /// Intents seen charged twice (empty in a good run: only problems are kept by id).
    charged_twice: Vec<String>,
    /// Events of the two kinds counted that named no order.
    without_order: u64,
}

/// The fields of an event the tally reads; the rest of the payload is skipped unparsed.
#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    object: Object,
}

#[derive(Deserialize)]
struct Object {
    id: String,
    #[serde(default)]
    payment_intent: Option<String>,
    #[serde(default)]
    metadata: Metadata,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(default)]
    order_id: Option<String>,
}

fn hash(id: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

impl PaymentTally {
    fn lock(&self) -> MutexGuard<'_, Tally> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tallies every event `sandbox` makes from now on.
    pub fn watch(self: &Arc<Self>, sandbox: &integrations_stripe::sandbox::Sandbox) {
        let tally = self.clone();
        sandbox.on_webhook(move |d| {
            if matches!(
                d.event_type.as_str(),
                "payment_intent.created" | "charge.succeeded"
            ) {
                tally.record(&d.payload);
            }
        });
    }

    /// Tallies one event payload: `payment_intent.created` counts an intent of its order,
    /// `charge.succeeded` a successful charge; other types and unreadable payloads are left
    /// out. Each event must be handed over once (the sandbox's callbacks are: only a resend,
    /// which the run makes of a `payment_intent.succeeded`, repeats one).
    pub fn record(&self, payload: &[u8]) {
        let Ok(event) = serde_json::from_slice::<Event>(payload) else {
            return;
        };
        let object = event.data.object;
        let mut t = self.lock();
        let Some(order) = object.metadata.order_id else {
            if matches!(
                event.kind.as_str(),
                "payment_intent.created" | "charge.succeeded"
            ) {
                t.without_order += 1;
            }
            return;
        };
        match event.kind.as_str() {
            "payment_intent.created" => {
                t.by_order.entry(&order).intents += 1;
            }
            "charge.succeeded" => {
                let intent = object.payment_intent.unwrap_or(object.id);
                let h = hash(&intent);
                let p = t.by_order.entry(&order);
                p.successful_charges += 1;
                let twice = p.successful_charges > 1 && p.last_charged == h;
                p.last_charged = h;
                if twice {
                    p.an_intent_charged_twice = true;
                    t.charged_twice.push(intent);
                }
            }
            _ => {}
        }
    }

    /// The tally of `order_id` (zeros if no event named it).
    pub fn of(&self, order_id: &str) -> OrderPayments {
        self.lock().by_order.get(order_id)
    }

    /// Calls `f` with each order's tally, in no particular order, under the tally's lock.
    pub fn for_each(&self, mut f: impl FnMut(&str, OrderPayments)) {
        for (order, p) in self.lock().by_order.iter() {
            f(&order, p);
        }
    }

    /// The intents seen with a second successful charge.
    pub fn charged_twice(&self) -> Vec<String> {
        self.lock().charged_twice.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, object: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec_pretty(&json!({ "type": kind, "data": { "object": object } })).unwrap()
    }

    fn created(pi: &str, order: &str) -> Vec<u8> {
        event(
            "payment_intent.created",
            json!({ "id": pi, "metadata": { "order_id": order } }),
        )
    }

    fn charged(ch: &str, pi: &str, order: &str) -> Vec<u8> {
        event(
            "charge.succeeded",
            json!({ "id": ch, "payment_intent": pi, "metadata": { "order_id": order } }),
        )
    }

    #[test]
    fn counts_intents_and_charges_per_order() {
        let t = PaymentTally::default();
        t.record(&created("pi_1", "o1"));
        t.record(&charged("ch_1", "pi_1", "o1"));
        t.record(&created("pi_2", "o2"));
        t.record(&event(
            "charge.failed",
            json!({ "id": "ch_2", "payment_intent": "pi_2",
            "metadata": { "order_id": "o2" } }),
        ));
        t.record(b"not json");
        let (o1, o2) = (t.of("o1"), t.of("o2"));
        assert_eq!((o1.intents, o1.successful_charges), (1, 1));
        assert_eq!((o2.intents, o2.successful_charges), (1, 0));
        assert!(!o1.an_intent_charged_twice);
        assert_eq!(t.of("o3"), OrderPayments::default());
        assert!(t.charged_twice().is_empty());
    }

    #[test]
    fn a_second_charge_on_one_intent_is_caught_and_named() {
        let t = PaymentTally::default();
        t.record(&created("pi_1", "o1"));
        t.record(&charged("ch_1", "pi_1", "o1"));
        t.record(&charged("ch_2", "pi_1", "o1"));
        assert!(t.of("o1").an_intent_charged_twice);
        assert_eq!(t.charged_twice(), ["pi_1"]);
        // Two intents of one order, each charged once: several intents, no intent twice.
        t.record(&created("pi_a", "o2"));
        t.record(&created("pi_b", "o2"));
        t.record(&charged("ch_a", "pi_a", "o2"));
        t.record(&charged("ch_b", "pi_b", "o2"));
        let o2 = t.of("o2");
        assert_eq!((o2.intents, o2.successful_charges), (2, 2));
        assert!(!o2.an_intent_charged_twice);
    }

    #[tokio::test]
    async fn every_order_is_tallied_past_the_sandboxs_object_retention() {
        use integrations_core::{Currency, IdempotencyKey, Money};
        use integrations_stripe::api::CreatePaymentIntent;
        use integrations_stripe::sandbox::Sandbox;

        let sandbox = Sandbox::builder()
            .object_retention(2)
            .start()
            .await
            .unwrap();
        let tally = Arc::new(PaymentTally::default());
        tally.watch(&sandbox);
        let client = sandbox.client().unwrap();
        for n in 0..5 {
            let order = format!("ord_t_{n}");
            let params = CreatePaymentIntent::new(Money::from_minor(1000, Currency::USD))
                .payment_method("pm_card_visa")
                .confirm(true)
                .metadata("order_id", order.clone());
            let key = IdempotencyKey::derive(&order, "payment").unwrap();
            client.create_payment_intent(&params, &key).await.unwrap();
        }
        let mut kept = 0;
        sandbox.for_each_intent(|_, _, _| kept += 1);
        assert_eq!(kept, 2, "the sandbox forgot the oldest intents");
        let mut tallied = Vec::new();
        tally
            .for_each(|order, p| tallied.push((order.to_owned(), p.intents, p.successful_charges)));
        tallied.sort();
        let want: Vec<_> = (0..5).map(|n| (format!("ord_t_{n}"), 1, 1)).collect();
        assert_eq!(tallied, want);
    }
}
