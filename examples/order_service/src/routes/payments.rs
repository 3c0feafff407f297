//! `POST /api/payments/confirm` and `POST /api/payments/refund`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use integrations_core::provider::{Payment, PaymentStatus, Refund, RefundRequest};
use integrations_core::{Error, ErrorKind, IdempotencyKey};
use serde_json::json;

use super::JsonBody;
use crate::ORDER_ID_METADATA;
use crate::api::{ApiError, ok};
use crate::orders::{Order, OrderStatus, RefundIntent, RefundStart, check_refund};
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
///
/// The refund is recorded as a pending intent (amount, reason, number → idempotency key) before
/// the provider is called and marked done after, so a refund the provider made is never lost
/// when the record fails, and no second refund starts while one is pending — across instances
/// on one database too. A request that finds a pending intent reconciles it first: when the
/// provider lists a refund made with the intent's key, it is marked done without a call (with
/// that refund's id); otherwise it is sent again with its own key and parameters (the provider
/// answers a repeat with the first refund). A provider that cannot list refunds is reconciled
/// from the payment's refunded amount instead (see `reconcile`). The request then answers with that earlier refund (`"reconciled": true`):
/// `200` when it asked for the same amount (the retry of the request that failed), else `409`
/// `earlier_refund_completed` — nothing more was refunded; ask again for more.
pub(crate) async fn refund(
    State(app): State<AppState>,
    JsonBody { map, .. }: JsonBody,
) -> Result<Response, ApiError> {
    let req = validate::refund_request(&map)?;
    let lock = app.refund_lock(&req.order_id);
    let _guard = lock.lock().await;
    let order = order(&app, &req.order_id).await?;
    let asked = req.amount_in(order.currency())?;
    let amount = asked.unwrap_or_else(|| order.refundable());
    check_refund(&order, amount)?;
    let payment_id = order
        .payment_id
        .clone()
        .ok_or_else(|| Error::conflict(format!("order {} has no payment", order.id)))?;
    let orders = &app.inner.orders;
    match orders.begin_refund(&order.id, asked, req.reason).await? {
        RefundStart::New(intent) => {
            let refund = send_refund(&app, &payment_id, &intent).await?;
            let order = orders.finish_refund(&intent, Some(&refund.id)).await?;
            tracing::info!(order = %order.id, refund = %refund.id, amount = %refund.amount, "refunded");
            Ok(refund_response(
                StatusCode::OK,
                refund_json(&refund),
                &order,
                false,
            ))
        }
        RefundStart::Pending(intent) => {
            let refund = reconcile(&app, &order, &payment_id, &intent).await?;
            let id = refund.get("id").and_then(serde_json::Value::as_str);
            let order = orders.finish_refund(&intent, id).await?;
            tracing::warn!(order = %order.id, number = intent.number, amount = %intent.amount,
                "pending refund reconciled");
            if amount == intent.amount {
                return Ok(refund_response(StatusCode::OK, refund, &order, true));
            }
            Err(Error::conflict(format!(
                "an earlier refund of {} on order {} was pending and is now completed; \
                 nothing more was refunded",
                intent.amount, order.id
            ))
            .with_code("earlier_refund_completed")
            .into())
        }
    }
}

fn refund_json(refund: &Refund) -> serde_json::Value {
    json!({
        "id": refund.id,
        "amount": refund.amount.to_decimal_string(),
        "currency": refund.amount.currency().lowercase(),
        "status": refund.status,
    })
}

fn refund_response(
    status: StatusCode,
    refund: serde_json::Value,
    order: &Order,
    reconciled: bool,
) -> Response {
    ok(
        status,
        json!({
            "refund": refund,
            "order": order.to_json(),
            "remaining": order.refundable().to_decimal_string(),
            "reconciled": reconciled,
        }),
    )
}

/// Calls the provider for `intent` with its own key; an intent the provider refused without
/// acting is abandoned, so that it does not block the next refund.
async fn send_refund(
    app: &AppState,
    payment_id: &str,
    intent: &RefundIntent,
) -> integrations_core::Result<Refund> {
    let key = intent.key()?;
    let mut req = RefundRequest::partial(payment_id, intent.amount)
        .metadata(ORDER_ID_METADATA, intent.order_id.clone());
    if let Some(reason) = intent.reason {
        req = req.reason(reason);
    }
    match app.inner.payments.refund(&req, &key).await {
        Ok(r) => Ok(r),
        Err(e) if !e.may_have_acted() => {
            app.inner.orders.abandon_refund(intent).await?;
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// Settles a pending intent with the provider. A provider that lists refunds
/// ([`PaymentCapabilities::list_refunds`](integrations_core::provider::PaymentCapabilities)) is
/// asked for the refund made with the intent's key: found → that refund, without a call; not
/// found → the intent is sent again with its own key and parameters. Refunds made outside the
/// service (a dashboard, no key) are never taken for it. Only a provider that cannot list falls
/// back to the payment's refunded amount: when it covers what is recorded plus this intent, the
/// intent's amount is taken as refunded (with no refund id); else the intent is sent again,
/// which the provider answers with the refund it made for that key, or makes it now.
async fn reconcile(
    app: &AppState,
    order: &Order,
    payment_id: &str,
    intent: &RefundIntent,
) -> integrations_core::Result<serde_json::Value> {
    let payments = &app.inner.payments;
    if payments.capabilities().list_refunds {
        let key = intent.key()?;
        let refunds = payments.list_refunds(payment_id).await?;
        if let Some(made) = refunds.iter().find(|r| r.made_with(&key)) {
            return Ok(refund_json(made));
        }
    } else {
        let payment = payments.retrieve_payment(payment_id).await?;
        let recorded = order.refunded.minor();
        if payment.amount_refunded.minor() >= recorded.saturating_add(intent.amount.minor()) {
            return Ok(json!({
                "id": null,
                "amount": intent.amount.to_decimal_string(),
                "currency": intent.amount.currency().lowercase(),
                "status": "reconciled",
            }));
        }
    }
    let refund = send_refund(app, payment_id, intent).await?;
    Ok(refund_json(&refund))
}
