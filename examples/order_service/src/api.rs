//! The response envelope of the seed's API and the mapping of core [`Error`]s to HTTP answers.
//!
//! Success: `{"success": true, "data": …}`. Failure:
//! `{"success": false, "error": {"type", "message", "field"?, "code"?, "declineCode"?, "provider"?, "requestId"?}}`.
//!
//! | error | from the caller or the service itself | from a provider (Stripe, …) |
//! |---|---|---|
//! | invalid input, invalid signature | 400 (413 for a body over the limit) | 400 |
//! | unauthenticated / forbidden | 401 / 403 | 502: our credentials, not the caller's |
//! | not found | 404 | 502 |
//! | conflict | 409 | 409 |
//! | declined | — | 402 |
//! | rate limited | 429 | 503 with `Retry-After` |
//! | unavailable, timeout, circuit open, bulkhead full | 503 | 503 with `Retry-After` when known |
//! | configuration, provider | 500 | 502 |

use std::fmt;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use integrations_core::{Error, ErrorKind, SignatureFailure};
use integrations_outbox::SQLITE;
use serde_json::{Value, json};

/// Provider name of the service's own stores: their errors are internal, not upstream.
const INTERNAL: [&str; 2] = [SQLITE, "order-store"];

/// A successful answer: `{"success": true, "data": data}` with `status`.
pub fn ok(status: StatusCode, data: Value) -> Response {
    (status, axum::Json(json!({ "success": true, "data": data }))).into_response()
}

/// An error answer.
pub struct ApiError {
    status: StatusCode,
    error: Error,
}

impl ApiError {
    /// `error` answered with `status` (instead of the status its kind maps to).
    pub fn new(status: axum::http::StatusCode, error: Error) -> Self {
        ApiError { status, error }
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error.
    pub fn error(&self) -> &Error {
        &self.error
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("status", &self.status)
            .field("error", &self.error)
            .finish()
    }
}

/// The status an error answers with (see the module table).
pub fn status_of(e: &Error) -> StatusCode {
    let upstream = e.provider_name().is_some_and(|p| !INTERNAL.contains(&p));
    match e.kind() {
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::InvalidSignature => match e {
            Error::InvalidSignature {
                reason: SignatureFailure::BodyTooLarge { .. },
                ..
            } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        },
        ErrorKind::Unauthenticated if !upstream => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden if !upstream => StatusCode::FORBIDDEN,
        ErrorKind::NotFound if !upstream => StatusCode::NOT_FOUND,
        ErrorKind::RateLimited if !upstream => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Declined => StatusCode::PAYMENT_REQUIRED,
        ErrorKind::RateLimited
        | ErrorKind::Unavailable
        | ErrorKind::Timeout
        | ErrorKind::CircuitOpen
        | ErrorKind::BulkheadFull => StatusCode::SERVICE_UNAVAILABLE,
        _ if upstream => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError {
            status: status_of(&error),
            error,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = &self.error;
        // A 5xx says what kind of failure and a reference, never the internal message (a SQLite
        // error, a file path): the details go to the log under the same reference.
        let reference = self.status.is_server_error().then(correlation_id);
        if let Some(reference) = &reference {
            tracing::error!(status = %self.status, reference = %reference, error = %e, "request failed");
        } else {
            tracing::debug!(status = %self.status, error = %e, "request refused");
        }
        let message = match &reference {
            Some(r) => format!("internal error; quote reference {r} when reporting it"),
            None => e.message().to_owned(),
        };
        let mut body = json!({ "type": e.kind().as_str(), "message": message });
        let mut put = |k: &str, v: Option<&str>| {
            if let Some(v) = v {
                body[k] = Value::from(v);
            }
        };
        put("correlationId", reference.as_deref());
        if e.kind() == ErrorKind::InvalidSignature {
            put("message", Some(&e.to_string()));
        }
        put(
            "field",
            e.field().filter(|_| e.kind() == ErrorKind::InvalidInput),
        );
        put("code", e.code());
        if let Error::Declined { decline_code, .. } = e {
            put("declineCode", decline_code.as_deref());
        }
        put("provider", e.provider_name());
        put("requestId", e.request_id());
        let mut response = (
            self.status,
            axum::Json(json!({ "success": false, "error": body })),
        )
            .into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE
            || self.status == StatusCode::TOO_MANY_REQUESTS
        {
            let secs = e.retry_after().map_or(1, |d| d.as_secs().max(1));
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// A reference for one failed request (`err_<16 hex>`), in its answer and its log line.
fn correlation_id() -> String {
    format!("err_{:016x}", fastrand::u64(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn server_errors_answer_a_reference_not_the_internal_message() {
        let e = Error::unavailable("database is locked: /var/lib/orders/orders.sqlite3");
        let resp = ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e).into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        let text = v.to_string();
        assert!(
            !text.contains("sqlite3") && !text.contains("locked"),
            "{text}"
        );
        let reference = v["error"]["correlationId"].as_str().unwrap();
        assert!(reference.starts_with("err_"), "{text}");
        assert!(v["error"]["message"].as_str().unwrap().contains(reference));

        // A 4xx still says what was wrong.
        let resp =
            ApiError::from(Error::invalid_input("totalAmount", "not a number")).into_response();
        let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["message"], "not a number");
        assert!(v["error"].get("correlationId").is_none());
    }

    #[test]
    fn own_and_upstream_errors_map_differently() {
        let cases = [
            (Error::invalid_input("items[0].price", "x"), 400),
            (Error::unauthenticated("no key"), 401),
            (
                Error::unauthenticated("bad sk").with_provider("stripe"),
                502,
            ),
            (Error::not_found("no order"), 404),
            (Error::not_found("no pi").with_provider("stripe"), 502),
            (
                Error::declined(Some("card_declined".into()), None, "no"),
                402,
            ),
            (Error::conflict("x"), 409),
            (Error::rate_limited(None, "x").with_provider("stripe"), 503),
            (Error::rate_limited(None, "x"), 429),
            (Error::timeout("x").with_provider("stripe"), 503),
            (Error::provider("x").with_provider("stripe"), 502),
            (Error::provider("disk").with_provider(SQLITE), 500),
            (Error::provider("disk").with_provider("order-store"), 500),
            (Error::invalid_signature(SignatureFailure::NoMatch), 400),
            (
                Error::invalid_signature(SignatureFailure::BodyTooLarge { size: 2, limit: 1 }),
                413,
            ),
        ];
        for (e, status) in cases {
            assert_eq!(status_of(&e).as_u16(), status, "{e}");
        }
    }

    #[tokio::test]
    async fn bodies_name_the_field_and_code() {
        let e = Error::invalid_input("totalAmount", "is 1.00 but the items add up to 2.00")
            .with_code("amount_mismatch");
        let resp = ApiError::from(e).into_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["success"], false);
        assert_eq!(v["error"]["field"], "totalAmount");
        assert_eq!(v["error"]["code"], "amount_mismatch");
        assert_eq!(v["error"]["type"], "invalid_input");

        let busy = ApiError::from(Error::unavailable("down").with_provider("stripe"));
        let resp = busy.into_response();
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
    }
}
