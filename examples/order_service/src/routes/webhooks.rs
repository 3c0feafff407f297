//! `POST /webhooks/stripe`, `/webhooks/sendgrid`, `/webhooks/sns`: verified on the raw body by
//! extractors, deduplicated by the outbox's event record, 200 only once the effect is durable.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::Response;
use integrations_aws::axum::VerifiedSnsMessage;
use integrations_aws::sns::{SnsMessageType, SnsMessageVerifier};
use integrations_core::webhook::WebhookRejection;
use integrations_core::{Error, Result};
use integrations_outbox::NewJob;
use integrations_sendgrid::axum::SendGridEvents;
use integrations_sendgrid::webhook::EventWebhookVerifier;
use integrations_stripe::axum::StripeEvent;
use integrations_stripe::types::Event;
use serde_json::json;

use crate::ORDER_ID_METADATA;
use crate::api::{ApiError, ok};
use crate::effects::paid_jobs;
use crate::orders::OrderStatus;
use crate::state::{AppState, SnsWebhook};

/// The state of `/webhooks/sendgrid`: the app and the verifier its extractor needs.
#[derive(Clone)]
pub(crate) struct SendGridRoute {
    pub(crate) app: AppState,
    pub(crate) verifier: Arc<EventWebhookVerifier>,
}

impl FromRef<SendGridRoute> for Arc<EventWebhookVerifier> {
    fn from_ref(s: &SendGridRoute) -> Self {
        Arc::clone(&s.verifier)
    }
}

/// The state of `/webhooks/sns`.
#[derive(Clone)]
pub(crate) struct SnsRoute {
    pub(crate) app: AppState,
    pub(crate) sns: SnsWebhook,
}

impl FromRef<SnsRoute> for Arc<SnsMessageVerifier> {
    fn from_ref(s: &SnsRoute) -> Self {
        Arc::clone(&s.sns.verifier)
    }
}

/// What a payment event does to our order: the order, the status it moves to (unless settled),
/// and the jobs it causes. `None` for an event that is not about an order of ours.
struct PaymentChange {
    order_id: String,
    from: OrderStatus,
    status: OrderStatus,
    jobs: Vec<NewJob>,
}

/// Decides what a payment event does (reads only; the change is applied with the event's
/// record in one transaction by [`stripe`]).
///
/// An event whose type changes no order (`payment_intent.created`, …) is `None` before the order
/// is read: the service creates the intent and then records it on the order, so under load its
/// `created` event often arrives in between, and that is no cause for a warning. An event that
/// does change an order but arrives while the order has no payment recorded yet is a
/// [`Error::conflict`] (409): nothing is recorded, so Stripe redelivers it and a later delivery
/// applies it, instead of the event being taken and lost.
async fn payment_change(app: &AppState, event: &Event) -> Result<Option<PaymentChange>> {
    let Some(pi) = event.payment_intent() else {
        return Ok(None);
    };
    let status = match event.event_type() {
        "payment_intent.succeeded" => OrderStatus::Paid,
        "payment_intent.payment_failed" => OrderStatus::PaymentFailed,
        "payment_intent.processing" => OrderStatus::Processing,
        "payment_intent.requires_action" => OrderStatus::RequiresAction,
        "payment_intent.amount_capturable_updated" => OrderStatus::Authorized,
        "payment_intent.canceled" => OrderStatus::Canceled,
        _ => return Ok(None),
    };
    let Some(order_id) = pi.metadata.get(ORDER_ID_METADATA) else {
        tracing::debug!(event = %event.id, "payment intent without an order: not ours");
        return Ok(None);
    };
    let Some(order) = app.inner.orders.get(order_id).await? else {
        tracing::warn!(event = %event.id, order = %order_id, "event for an unknown order");
        return Ok(None);
    };
    match order.payment_id.as_deref() {
        None => {
            return Err(Error::conflict(format!(
                "order {} has no payment recorded yet; event {} is for {}: redeliver it",
                order.id, event.id, pi.id
            )));
        }
        Some(own) if own != pi.id => {
            tracing::warn!(event = %event.id, order = %order.id, "event for a payment the order does not own");
            return Ok(None);
        }
        Some(_) => {}
    }
    if status == OrderStatus::Paid && pi.amount_received != order.details.total {
        tracing::error!(
            event = %event.id, order = %order.id,
            received = %pi.amount_received, total = %order.details.total,
            "payment succeeded for another amount than the order's: not marked paid"
        );
        return Ok(None);
    }
    let jobs = if status == OrderStatus::Paid {
        paid_jobs(&order.id)
    } else {
        Vec::new()
    };
    Ok(Some(PaymentChange {
        order_id: order.id,
        from: order.status,
        status,
        jobs,
    }))
}

/// `POST /webhooks/stripe`: verify → decide what the event does to its order → apply that change
/// and record the event with its jobs **in one transaction** of the order store (the outbox's
/// database; a redelivered event records and changes nothing) → 200. A store failure answers
/// 5xx with nothing written, so Stripe redelivers and the retry applies it.
pub(crate) async fn stripe(
    State(app): State<AppState>,
    event: std::result::Result<StripeEvent, WebhookRejection>,
) -> std::result::Result<Response, ApiError> {
    let StripeEvent(event) = event.map_err(|r| ApiError::new(r.status(), r.into_error()))?;
    let event_id = format!("stripe:{}", event.id);
    let (outcome, n) = match payment_change(&app, &event).await? {
        Some(change) => {
            let n = change.jobs.len();
            let applied = app
                .inner
                .orders
                .apply_payment_event(&change.order_id, change.status, &event_id, change.jobs)
                .await?;
            tracing::info!(event = %event.id, order = %change.order_id, from = %change.from,
                to = %applied.order.status, "payment event applied");
            (applied.outcome, n)
        }
        // Recorded by the order store, not the outbox directly: on SQLite it joins the other
        // webhook writes' group commit (one fsync for the events arriving together).
        None => (app.inner.orders.record_event(&event_id).await?, 0),
    };
    if !outcome.is_duplicate() {
        app.wake_dispatcher();
    }
    app.inner
        .stripe_events_taken
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(event = %event.id, kind = %event.type_, jobs = n, duplicate = outcome.is_duplicate(), "Stripe event");
    Ok(ok(
        StatusCode::OK,
        json!({ "received": true, "duplicate": outcome.is_duplicate() }),
    ))
}

/// `POST /webhooks/sendgrid`: records each email event's type on its order (by the event's own
/// timestamp, so out-of-order batches settle on the latest) and its `sg_event_id` in the outbox.
pub(crate) async fn sendgrid(
    State(route): State<SendGridRoute>,
    events: std::result::Result<SendGridEvents, WebhookRejection>,
) -> std::result::Result<Response, ApiError> {
    let SendGridEvents(events) = events.map_err(|r| ApiError::new(r.status(), r.into_error()))?;
    let app = &route.app;
    let (mut fresh, mut duplicates) = (0u32, 0u32);
    for e in &events {
        if let Some(order_id) = e.custom_arg(ORDER_ID_METADATA) {
            app.inner
                .orders
                .set_email_status(order_id, e.event_type().as_str(), e.timestamp)
                .await?;
        }
        let outcome = app
            .inner
            .outbox
            .record_event(&e.dedup_key(), Vec::new())
            .await?;
        if outcome.is_duplicate() {
            duplicates += 1;
        } else {
            fresh += 1;
        }
    }
    Ok(ok(
        StatusCode::OK,
        json!({ "received": fresh, "duplicates": duplicates }),
    ))
}

/// `POST /webhooks/sns`: messages of accepted topics only; notifications are recorded once by
/// `MessageId`; subscription confirmations are confirmed when a client is configured.
pub(crate) async fn sns(
    State(route): State<SnsRoute>,
    msg: std::result::Result<VerifiedSnsMessage, WebhookRejection>,
) -> std::result::Result<Response, ApiError> {
    let VerifiedSnsMessage(msg) = msg.map_err(|r| ApiError::new(r.status(), r.into_error()))?;
    if !route.sns.topics.contains(&msg.topic_arn) {
        return Err(Error::forbidden(format!("topic {} is not accepted", msg.topic_arn)).into());
    }
    match msg.kind {
        SnsMessageType::Notification => {
            let outcome = route
                .app
                .inner
                .outbox
                .record_event(&format!("sns:{}", msg.message_id), Vec::new())
                .await?;
            tracing::info!(id = %msg.message_id, topic = %msg.topic_arn, duplicate = outcome.is_duplicate(), "SNS notification");
            Ok(ok(
                StatusCode::OK,
                json!({ "received": true, "duplicate": outcome.is_duplicate() }),
            ))
        }
        SnsMessageType::SubscriptionConfirmation => {
            let Some(client) = &route.sns.confirm_with else {
                tracing::warn!(topic = %msg.topic_arn, "SNS subscription request not confirmed: no SNS client configured");
                return Err(Error::configuration(
                    "SNS_TOPIC_ARNS",
                    "no SNS client configured to confirm subscriptions",
                )
                .into());
            };
            let token = msg.token.as_deref().unwrap_or_default();
            let arn = client.confirm_subscription(&msg.topic_arn, token).await?;
            tracing::info!(topic = %msg.topic_arn, subscription = %arn, "SNS subscription confirmed");
            Ok(ok(StatusCode::OK, json!({ "confirmed": arn })))
        }
        _ => Ok(ok(StatusCode::OK, json!({ "received": true }))),
    }
}
