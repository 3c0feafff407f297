//! `POST /api/orders`, `GET /api/orders/{id}`, `GET /api/orders`.

use std::collections::HashMap;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use integrations_core::provider::{CreatePayment, Payment};
use integrations_core::{Error, IdempotencyKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::JsonBody;
use crate::ORDER_ID_METADATA;
use crate::api::{ApiError, ok};
use crate::orders::{ClientKey, Inserted, Order, OrderStatus};
use crate::state::AppState;
use crate::validate;

/// The request header that makes `POST /api/orders` safe to retry.
pub(crate) const IDEMPOTENCY_HEADER: &str = "idempotency-key";

fn client_key(headers: &HeaderMap, raw_body: &[u8]) -> Result<Option<ClientKey>, ApiError> {
    let Some(v) = headers.get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let key = v
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            Error::invalid_input(
                "Idempotency-Key",
                "must be 1 to 255 printable ASCII characters",
            )
        })?;
    let fingerprint = Sha256::digest(raw_body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Some(ClientKey {
        key: key.to_owned(),
        fingerprint,
    }))
}

/// Creates the order's payment (once: the key is derived from the order, so a retry after a
/// crash or a lost answer reuses it and the provider replays instead of charging twice).
async fn ensure_payment(app: &AppState, order: Order) -> Result<(Order, Payment), ApiError> {
    let payments = &app.inner.payments;
    if let Some(id) = &order.payment_id {
        let payment = payments.retrieve_payment(id).await?;
        return Ok((order, payment));
    }
    let key = IdempotencyKey::derive(&order.id, "payment")?;
    let d = &order.details;
    let req = CreatePayment::new(d.total)
        .description(format!("Order {}", order.id))
        .receipt_email(d.customer_email.clone())
        .metadata(ORDER_ID_METADATA, order.id.clone());
    let req = match &d.customer_id {
        Some(c) => req.metadata("customer_id", c.clone()),
        None => req,
    };
    let payment = payments.create_payment(&req, &key).await?;
    let status = OrderStatus::from_payment(payment.status, payment.last_failure.is_some());
    let order = app
        .inner
        .orders
        .attach_payment(&order.id, &payment.id, status)
        .await?;
    Ok((order, payment))
}

/// `POST /api/orders`: validates, stores the order, creates its payment, answers 201 with the
/// order and the payment's client secret (200 and `Idempotent-Replayed: true` when an
/// `Idempotency-Key` repeats an earlier request).
pub(crate) async fn create(
    State(app): State<AppState>,
    headers: HeaderMap,
    JsonBody { map, raw }: JsonBody,
) -> Result<Response, ApiError> {
    let new = validate::new_order(&map)?;
    let key = client_key(&headers, &raw)?;
    let inserted = app.inner.orders.insert(new, key).await?;
    let replayed = matches!(inserted, Inserted::Existing(_));
    let order = inserted.into_order();
    tracing::info!(order = %order.id, replayed, "order accepted");
    let (order, payment) = ensure_payment(&app, order).await?;
    let data = json!({
        "order": order.to_json(),
        "clientSecret": payment.client_secret,
    });
    if replayed {
        let mut resp = ok(StatusCode::OK, data);
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        Ok(resp)
    } else {
        Ok(ok(StatusCode::CREATED, data))
    }
}

/// `GET /api/orders/{id}`.
pub(crate) async fn get(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|e| Error::invalid_input("id", e.body_text()))?;
    let order = app
        .inner
        .orders
        .get(&id)
        .await?
        .ok_or_else(|| Error::not_found(format!("no order {id}")))?;
    Ok(ok(StatusCode::OK, json!({ "order": order.to_json() })))
}

/// `GET /api/orders?limit=20&cursor=…`: newest first; `nextCursor` is `null` on the last page.
/// The seed's `lastKey` is accepted as another name for `cursor`.
pub(crate) async fn list(
    State(app): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| Error::invalid_input("query", e.body_text()))?;
    let limit = validate::page_limit(q.get("limit").map(String::as_str))?;
    let cursor = q
        .get("cursor")
        .or_else(|| q.get("lastKey"))
        .map(|c| validate::decode_cursor(c))
        .transpose()?;
    let page = app.inner.orders.list(limit, cursor).await?;
    let orders: Vec<Value> = page.orders.iter().map(Order::to_json).collect();
    Ok(ok(
        StatusCode::OK,
        json!({
            "count": orders.len(),
            "orders": orders,
            "nextCursor": page.next.map(validate::encode_cursor),
        }),
    ))
}
