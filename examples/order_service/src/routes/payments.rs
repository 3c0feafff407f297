//! `POST /api/payments/confirm` and `POST /api/payments/refund`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use integrations_core::provider::{Payment, PaymentStatus, RefundRequest};
use integrations_core::{Error, ErrorKind, IdempotencyKey};
use serde_json::json;

use super::JsonBody;
use crate::ORDER_ID_METADATA;
use crate::api::{ApiError, ok};
use crate::orders::{Order, OrderStatus, check_refund};
use crate::state::AppState;
use crate::validate;

async fn order(app: &AppState, id: &str) -> Result<Order, ApiError> {
    Ok(app
        .inner
        .orders
        .get(id)
        .await?
        .ok_or_else(|| Error::not_found(format!("no order {id}")))?)
}

fn foreign_intent(intent: &str, order: &str) -> ApiError {
    ApiError::from(
        Error::invalid_input(
            "paymentIntentId",
            format!("payment intent {intent} does not belong to order {order}"),
        )
        .with_code("payment_intent_mismatch"),
    )
}

fn payment_json(p: &Payment) -> serde_json::Value {
    json!({
        "id": p.id,
        "status": p.status,
        "amount": p.amount.to_decimal_string(),
        "amountReceived": p.amount_received.to_decimal_string(),
        "amountRefunded": p.amount_refunded.to_decimal_string(),
        "currency": p.amount.currency().lowercase(),
        "lastFailure": p.last_failure.as_ref().map(|f| json!({
            "code": f.code, "declineCode": f.decline_code, "message": f.message,
        })),
    })
}

/// `POST /api/payments/confirm {orderId, paymentIntentId, paymentMethod?}`.
///
/// The intent must be the one the service created for the order (checked against the order and
/// against the intent's own `order_id` metadata) and for the order's amount; anything else is
/// refused before any call that could move money. An intent still waiting for confirmation is
/// confirmed (with `paymentMethod` when given); the order's status follows the payment's.
pub(crate) async fn confirm(
    State(app): State<AppState>,
    JsonBody { map, .. }: JsonBody,
) -> Result<Response, ApiError> {
    let req = validate::confirm_request(&map)?;
    let order = order(&app, &req.order_id).await?;
    if order.payment_id.as_deref() != Some(req.payment_intent_id.as_str()) {
        tracing::warn!(order = %order.id, "confirm with a payment intent of another order refused");
        return Err(foreign_intent(&req.payment_intent_id, &order.id));
    }
    let payments = &app.inner.payments;
    let mut payment = payments.retrieve_payment(&req.payment_intent_id).await?;
    if payment.metadata.get(ORDER_ID_METADATA) != Some(&order.id) {
        return Err(foreign_intent(&req.payment_intent_id, &order.id));
    }
    if payment.amount != order.details.total {
        return Err(Error::conflict(format!(
            "payment {} is for {}, the order for {}",
            payment.id, payment.amount, order.details.total
        ))
        .with_code("amount_mismatch")
        .into());
    }
    let needs_confirmation = matches!(
        payment.status,
        PaymentStatus::RequiresPaymentMethod | PaymentStatus::RequiresConfirmation
    );
    if needs_confirmation {
        if payment.status == PaymentStatus::RequiresPaymentMethod && req.payment_method.is_none() {
            return Err(Error::invalid_input(
                "paymentMethod",
                "is required: the payment has no payment method yet",
            )
            .into());
        }
        // One key per payment method: retrying with the same card replays the first answer,
        // another card is a new attempt.
        let key = IdempotencyKey::derive(&order.id, "confirm")?
            .child(req.payment_method.as_deref().unwrap_or("attached"))?;
        payment = match payments
            .confirm_payment(&payment.id, req.payment_method.as_deref(), &key)
            .await
        {
            Ok(p) => p,
            Err(e) if e.kind() == ErrorKind::Declined => {
                app.inner
                    .orders
                    .update_payment_status(&order.id, OrderStatus::PaymentFailed)
                    .await?;
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
    }
    let status = OrderStatus::from_payment(payment.status, payment.last_failure.is_some());
    let order = app
        .inner
        .orders
        .update_payment_status(&order.id, status)
        .await?;
    Ok(ok(
        StatusCode::OK,
        json!({ "order": order.to_json(), "payment": payment_json(&payment) }),
    ))
}

/// `POST /api/payments/refund {orderId, amount?, reason?}`: a full or partial refund of a paid
/// order, never more than what is left (checked here, under a per-order lock, and again by the
/// provider against what it captured).
pub(crate) async fn refund(
    State(app): State<AppState>,
    JsonBody { map, .. }: JsonBody,
) -> Result<Response, ApiError> {
    let req = validate::refund_request(&map)?;
    let lock = app.refund_lock(&req.order_id);
    let _guard = lock.lock().await;
    let order = order(&app, &req.order_id).await?;
    let amount = req
        .amount_in(order.currency())?
        .unwrap_or_else(|| order.refundable());
    check_refund(&order, amount)?;
    let payment_id = order
        .payment_id
        .clone()
        .ok_or_else(|| Error::conflict(format!("order {} has no payment", order.id)))?;
    let n = order.refund_count.saturating_add(1);
    let key = IdempotencyKey::derive(&order.id, "refund")?.child(&n.to_string())?;
    let mut refund_req =
        RefundRequest::partial(payment_id, amount).metadata(ORDER_ID_METADATA, order.id.clone());
    if let Some(reason) = req.reason {
        refund_req = refund_req.reason(reason);
    }
    let refund = app.inner.payments.refund(&refund_req, &key).await?;
    let order = app
        .inner
        .orders
        .record_refund(&order.id, refund.amount)
        .await?;
    tracing::info!(order = %order.id, refund = %refund.id, amount = %refund.amount, "refunded");
    Ok(ok(
        StatusCode::OK,
        json!({
            "refund": {
                "id": refund.id,
                "amount": refund.amount.to_decimal_string(),
                "currency": refund.amount.currency().lowercase(),
                "status": refund.status,
            },
            "order": order.to_json(),
            "remaining": order.refundable().to_decimal_string(),
        }),
    ))
}
