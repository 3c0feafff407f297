//! Checkout: store the order, create its payment intent, confirm the card; and refunds.

use integrations_core::provider::{
    CreatePayment, PaymentProvider, PaymentStatus, RefundReason, RefundRequest,
};
use integrations_core::{Error, ErrorKind, Money, Result};
use integrations_outbox::ErrorRecord;

use super::orders::{Order, OrderBook, OrderState};

/// Runs one order's checkout and returns where it ended.
///
/// The order is stored first; the payment intent is created with a key derived from the order
/// (`ord_…/payment`) and confirmed with the order's card under another (`ord_…/payment/confirm`),
/// so a retry — by the policy, or by a process restarted mid-checkout — is replayed by Stripe and
/// never charges twice. A decline ends in [`OrderState::Declined`] with the issuer's code; any
/// other failure (after the policy's retries, or the order store failing) in
/// [`OrderState::Failed`]. An order stored before (a resumed run) is not stored again: its
/// checkout runs again under the same keys.
pub async fn checkout(
    payments: &dyn PaymentProvider,
    book: &OrderBook,
    order: Order,
) -> OrderState {
    let id = order.id.clone();
    if let Err(e) = book.insert(order.clone()) {
        tracing::error!(order = %id, error = %e, "the order could not be stored");
        return OrderState::Failed(format!("order store: {}", e.kind()));
    }
    let state = match pay(payments, book, &order).await {
        Ok(state) => state,
        Err(e) if e.kind() == ErrorKind::Declined => {
            let record = ErrorRecord::from(&e);
            OrderState::Declined(
                record
                    .decline_code
                    .or(record.code)
                    .unwrap_or_else(|| "declined".to_owned()),
            )
        }
        Err(e) => {
            tracing::warn!(order = %id, error = %e, "checkout failed");
            OrderState::Failed(e.kind().to_string())
        }
    };
    if let Err(e) = book.set_state(&id, state.clone()) {
        // The store keeps the previous state, which the report shows as unfinished.
        tracing::error!(order = %id, %state, error = %e, "the order's state could not be stored");
    }
    state
}

async fn pay(
    payments: &dyn PaymentProvider,
    book: &OrderBook,
    order: &Order,
) -> Result<OrderState> {
    let total = order.total()?;
    let request = CreatePayment::new(total)
        .description(format!("Order {}", order.id))
        .metadata("order_id", order.id.clone());
    let payment = payments
        .create_payment(&request, &order.payment_key()?)
        .await?;
    book.payment_created(&order.id, &payment.id)?;
    let confirmed = payments
        .confirm_payment(&payment.id, Some(&order.card), &order.confirm_key()?)
        .await?;
    Ok(match confirmed.status {
        PaymentStatus::Succeeded => OrderState::Paid,
        other => OrderState::Failed(format!(
            "payment {} is {other:?} after confirmation",
            payment.id
        )),
    })
}

/// A refund made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundMade {
    /// The order.
    pub order_id: String,
    /// The refund id.
    pub refund_id: String,
    /// Amount refunded.
    pub amount: Money,
    /// The order total.
    pub total: Money,
}

/// Refunds a third of a paid order, once: the key is the order's first refund
/// (`ord_…/refund/1`), so calling this again — on an order already refunded, or after a crash
/// between the refund and its record — returns the same refund, and the store counts it once.
///
/// # Errors
/// [`Error::InvalidInput`] if the order is unknown or unpaid; the provider's errors; the order
/// store's.
pub async fn partial_refund(
    payments: &dyn PaymentProvider,
    book: &OrderBook,
    order_id: &str,
) -> Result<RefundMade> {
    let record = book
        .get(order_id)?
        .ok_or_else(|| Error::invalid_input("order_id", format!("no order {order_id}")))?;
    let payment_id = match (&record.state, &record.payment_id) {
        (OrderState::Paid | OrderState::PartiallyRefunded, Some(p)) => p.clone(),
        _ => {
            return Err(Error::invalid_input(
                "order_id",
                format!("order {order_id} is {}, not paid", record.state),
            ));
        }
    };
    let total = record.order.total()?;
    let amount = Money::from_minor(total.minor() / 3, total.currency());
    let request = RefundRequest::partial(payment_id, amount)
        .reason(RefundReason::RequestedByCustomer)
        .metadata("order_id", order_id);
    let refund = payments
        .refund(&request, &record.order.refund_key(1)?)
        .await?;
    book.refunded(order_id, 1, refund.amount.minor())?;
    Ok(RefundMade {
        order_id: order_id.to_owned(),
        refund_id: refund.id,
        amount: refund.amount,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order_flow::orders::{CARD_DECLINED, CARD_OK};
    use integrations_stripe::StripePayments;
    use integrations_stripe::sandbox::Sandbox;

    #[tokio::test]
    async fn pays_declines_and_refunds_against_the_sandbox() {
        let sandbox = Sandbox::start().await.unwrap();
        let payments = StripePayments::new(sandbox.client().unwrap());
        let book = OrderBook::new();

        let mut ok = Order::sample("t", 1, None);
        ok.card = CARD_OK.into();
        assert_eq!(
            checkout(&payments, &book, ok.clone()).await,
            OrderState::Paid
        );
        // The same order again: both calls are replayed, nothing is charged twice.
        assert_eq!(
            checkout(&payments, &book, ok.clone()).await,
            OrderState::Paid
        );
        let pi = book.get(&ok.id).unwrap().unwrap().payment_id.unwrap();
        assert_eq!(sandbox.intent_counters(&pi).unwrap().successful_charges, 1);
        assert_eq!(sandbox.counters().payment_intents_created, 1);

        let mut bad = Order::sample("t", 2, None);
        bad.card = CARD_DECLINED.into();
        let state = checkout(&payments, &book, bad).await;
        assert!(matches!(state, OrderState::Declined(_)), "{state:?}");

        let r = partial_refund(&payments, &book, &ok.id).await.unwrap();
        assert_eq!(r.amount.minor(), r.total.minor() / 3);
        // Again (a resumed run): Stripe replays the refund and the store counts it once.
        let again = partial_refund(&payments, &book, &ok.id).await.unwrap();
        assert_eq!(again, r);
        assert_eq!(sandbox.counters().refunds, 1);
        let refunded = book.get(&ok.id).unwrap().unwrap().refunded_minor;
        assert_eq!(refunded, r.amount.minor());
        let declined = book.last(|o| !o.state.is_paid()).unwrap().unwrap();
        let e = partial_refund(&payments, &book, &declined.order.id).await;
        assert!(e.is_err(), "an unpaid order is not refunded: {e:?}");
    }
}
