//! The HTTP handlers.

pub(crate) mod orders;
pub(crate) mod payments;
pub(crate) mod webhooks;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use integrations_core::Error;
use serde_json::{Map, Value};

use crate::api::ApiError;
use crate::validate;

/// A JSON object body, refused with a 400 naming `body` when it is not one, and its raw bytes.
/// Amounts written as JSON numbers are carried as their literal text
/// ([`validate::exact_amounts`]).
pub(crate) struct JsonBody {
    pub(crate) map: Map<String, Value>,
    pub(crate) raw: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let raw = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), Error::invalid_input("body", e.body_text())))?;
        let mut map = validate::json_object(&raw)?;
        validate::exact_amounts(&raw, &mut map)?;
        Ok(JsonBody { map, raw })
    }
}
