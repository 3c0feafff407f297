//! Stripe's protocol on the testkit's server runner: operation names, authentication,
//! idempotency, routing and Stripe's error bodies for injected faults.
//!
//! The accept loop, body limit, connection-level faults (hang, drop after processing) and the
//! request log are [`SandboxServer`](integrations_testkit::sandbox::SandboxServer)'s. Every
//! request is processed under one lock, so an idempotency key is checked, executed and stored
//! atomically.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, Method};
use integrations_testkit::sandbox::{Fault, SandboxRequest, SandboxResponse, SandboxService};
use serde_json::json;

use super::params::{Handled, Params, Reply, invalid};
use super::state::{State, StoredResponse, random_token};
use super::{Shared, delivery, intents, objects};

/// Stripe's protocol, served by the testkit's `SandboxServer`.
#[derive(Debug)]
pub(crate) struct StripeService {
    pub(crate) shared: Arc<Shared>,
}

/// An endpoint the sandbox serves; its [`name`](Endpoint::name) is the operation faults target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    IntentCreate,
    IntentList,
    IntentRetrieve,
    IntentUpdate,
    IntentConfirm,
    IntentCapture,
    IntentCancel,
    RefundCreate,
    RefundList,
    RefundRetrieve,
    CustomerCreate,
    CustomerRetrieve,
    ChargeRetrieve,
    EventList,
    EventRetrieve,
}

impl Endpoint {
    /// The endpoint and the object id in its path, if it has one.
    fn parse<'a>(method: &Method, path: &'a str) -> Option<(Endpoint, &'a str)> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        Some(match (method.as_str(), segments.as_slice()) {
            ("POST", ["v1", "payment_intents"]) => (Endpoint::IntentCreate, ""),
            ("GET", ["v1", "payment_intents"]) => (Endpoint::IntentList, ""),
            ("GET", ["v1", "payment_intents", id]) => (Endpoint::IntentRetrieve, id),
            ("POST", ["v1", "payment_intents", id]) => (Endpoint::IntentUpdate, id),
            ("POST", ["v1", "payment_intents", id, "confirm"]) => (Endpoint::IntentConfirm, id),
            ("POST", ["v1", "payment_intents", id, "capture"]) => (Endpoint::IntentCapture, id),
            ("POST", ["v1", "payment_intents", id, "cancel"]) => (Endpoint::IntentCancel, id),
            ("POST", ["v1", "refunds"]) => (Endpoint::RefundCreate, ""),
            ("GET", ["v1", "refunds"]) => (Endpoint::RefundList, ""),
            ("GET", ["v1", "refunds", id]) => (Endpoint::RefundRetrieve, id),
            ("POST", ["v1", "customers"]) => (Endpoint::CustomerCreate, ""),
            ("GET", ["v1", "customers", id]) => (Endpoint::CustomerRetrieve, id),
            ("GET", ["v1", "charges", id]) => (Endpoint::ChargeRetrieve, id),
            ("GET", ["v1", "events"]) => (Endpoint::EventList, ""),
            ("GET", ["v1", "events", id]) => (Endpoint::EventRetrieve, id),
            _ => return None,
        })
    }

    /// `resource.action`, as in Stripe's API reference (`payment_intents.confirm`).
    fn name(self) -> &'static str {
        match self {
            Endpoint::IntentCreate => "payment_intents.create",
            Endpoint::IntentList => "payment_intents.list",
            Endpoint::IntentRetrieve => "payment_intents.retrieve",
            Endpoint::IntentUpdate => "payment_intents.update",
            Endpoint::IntentConfirm => "payment_intents.confirm",
            Endpoint::IntentCapture => "payment_intents.capture",
            Endpoint::IntentCancel => "payment_intents.cancel",
            Endpoint::RefundCreate => "refunds.create",
            Endpoint::RefundList => "refunds.list",
            Endpoint::RefundRetrieve => "refunds.retrieve",
            Endpoint::CustomerCreate => "customers.create",
            Endpoint::CustomerRetrieve => "customers.retrieve",
            Endpoint::ChargeRetrieve => "charges.retrieve",
            Endpoint::EventList => "events.list",
            Endpoint::EventRetrieve => "events.retrieve",
        }
    }
}

fn to_bytes(v: &serde_json::Value) -> Bytes {
    Bytes::from(serde_json::to_vec_pretty(v).unwrap_or_default())
}

/// The bearer key, which must be a test secret key.
fn authenticate(headers: &HeaderMap) -> Result<String, Reply> {
    let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Err(invalid(
            401,
            "You did not provide an API key. You need to provide your API key in the Authorization header, \
             using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication \
             for details, or we can help at https://support.stripe.com/.",
            None,
            None,
        ));
    };
    let key = value.strip_prefix("Bearer ").unwrap_or("").trim();
    if key.len() > "sk_test_".len()
        && key.starts_with("sk_test_")
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Ok(key.to_owned());
    }
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let head: String = key.chars().take(8).collect();
    Err(invalid(
        401,
        format!("Invalid API Key provided: {head}{}{tail}", "*".repeat(20)),
        None,
        None,
    ))
}

impl StripeService {
    /// A JSON answer with the headers Stripe puts on every response: `Request-Id`,
    /// `Stripe-Version` and the echoed `Idempotency-Key`.
    fn respond(
        &self,
        req: &SandboxRequest,
        status: u16,
        body: Bytes,
        request_id: &str,
    ) -> SandboxResponse {
        let version = req
            .header("stripe-version")
            .map_or_else(|| self.shared.config.api_version.clone(), str::to_owned);
        let mut resp = SandboxResponse::new(status)
            .with_header(CONTENT_TYPE.as_str(), "application/json")
            .with_header("request-id", request_id)
            .with_header("stripe-version", version)
            .with_body(body);
        if let Some(k) = req.header("idempotency-key") {
            resp = resp.with_header("idempotency-key", k);
        }
        resp
    }

    fn reply(&self, req: &SandboxRequest, reply: &Reply) -> SandboxResponse {
        let request_id = random_token("req", 14);
        self.respond(req, reply.status, to_bytes(&reply.body), &request_id)
    }
}

#[async_trait]
impl SandboxService for StripeService {
    fn operation(&self, req: &SandboxRequest) -> String {
        Endpoint::parse(&req.method, req.path()).map_or_else(
            || format!("{} {}", req.method, req.path()),
            |(e, _)| e.name().to_owned(),
        )
    }

    fn precheck(&self, req: &SandboxRequest) -> Option<SandboxResponse> {
        authenticate(&req.headers)
            .err()
            .map(|reply| self.reply(req, &reply))
    }

    async fn handle(&self, req: SandboxRequest) -> SandboxResponse {
        let key = match authenticate(&req.headers) {
            Ok(k) => k,
            Err(reply) => return self.reply(&req, &reply),
        };
        if req.method != Method::GET {
            delivery::wait_for_room(&self.shared).await;
        }
        let request_id = random_token("req", 14);
        let params = if req.method == Method::GET {
            Params::parse(req.query().as_bytes())
        } else {
            Params::parse(&req.body)
        };
        let idem = req.header("idempotency-key");
        let (status, bytes, replayed, outbox, used_request_id) = {
            let mut st = self.shared.lock();
            let out = process(
                &mut st,
                &req.method,
                req.path(),
                &params,
                &key,
                idem,
                &request_id,
            );
            let outbox = std::mem::take(&mut st.outbox);
            (out.0, out.1, out.2, outbox, out.3)
        };
        delivery::dispatch(&self.shared, outbox);
        let resp = self.respond(&req, status, bytes, &used_request_id);
        if replayed {
            resp.with_header("idempotent-replayed", "true")
        } else {
            resp
        }
    }

    fn fault_response(&self, fault: Fault, req: &SandboxRequest) -> SandboxResponse {
        let (reply, retry_after) = match fault {
            Fault::RateLimited { retry_after } => (
                invalid(
                    429,
                    "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
                    None,
                    Some("rate_limit"),
                ),
                retry_after,
            ),
            Fault::Unavailable => (
                Reply {
                    status: 503,
                    body: json!({ "error": { "type": "api_error", "message": "Stripe is temporarily unavailable (sandbox fault injection)." } }),
                },
                None,
            ),
            _ => (
                Reply {
                    status: 500,
                    body: json!({ "error": { "type": "api_error", "message": "An unknown error occurred (sandbox fault injection)." } }),
                },
                None,
            ),
        };
        self.reply(req, &reply).with_retry_after(retry_after)
    }
}

/// Idempotency, then routing. Returns status, body, whether it was a replay, and the request
/// id of the response (the original one for a replay).
fn process(
    st: &mut State,
    method: &Method,
    path: &str,
    params: &Params,
    api_key: &str,
    idem: Option<&str>,
    request_id: &str,
) -> (u16, Bytes, bool, String) {
    let idem = idem.filter(|_| method == Method::POST);
    if let Some(k) = idem {
        if k.is_empty() || k.len() > 255 {
            let r = invalid(
                400,
                "Idempotency-Key must be 1 to 255 characters.",
                None,
                None,
            );
            return (r.status, to_bytes(&r.body), false, request_id.to_owned());
        }
    }
    let fingerprint = format!("{method} {path}\n{}", params.fingerprint());
    let scope = idem.map(|k| (api_key.to_owned(), k.to_owned()));
    if let Some(stored) = scope.as_ref().and_then(|s| st.idempotency.get(s)) {
        if stored.fingerprint == fingerprint {
            let out = (
                stored.status,
                stored.body.clone(),
                true,
                stored.request_id.clone(),
            );
            st.counters.idempotent_replays += 1;
            return out;
        }
        let r = invalid(
            400,
            format!(
                "Keys for idempotent requests can only be used with the same parameters they were first used with. \
                 Try using a key other than '{}' if you meant to execute a different request.",
                idem.unwrap_or_default()
            ),
            None,
            None,
        );
        let mut body = r.body;
        body["error"]["type"] = json!("idempotency_error");
        return (400, to_bytes(&body), false, request_id.to_owned());
    }
    st.current_request = Some((request_id.to_owned(), idem.map(str::to_owned)));
    let reply = route(st, method, path, params).unwrap_or_else(|e| e);
    st.current_request = None;
    let bytes = to_bytes(&reply.body);
    // Stripe saves a result once the endpoint ran: successes and declines, not validation errors.
    if let Some(scope) = scope {
        if (200..300).contains(&reply.status) || reply.status == 402 {
            st.store_idempotent(
                scope,
                StoredResponse {
                    fingerprint,
                    status: reply.status,
                    body: bytes.clone(),
                    request_id: request_id.to_owned(),
                },
            );
        }
    }
    (reply.status, bytes, false, request_id.to_owned())
}

fn route(st: &mut State, method: &Method, path: &str, p: &Params) -> Handled {
    let Some((endpoint, id)) = Endpoint::parse(method, path) else {
        return Err(invalid(
            404,
            format!(
                "Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/."
            ),
            None,
            None,
        ));
    };
    match endpoint {
        Endpoint::IntentCreate => intents::create(st, p),
        Endpoint::IntentList => intents::list(st, p),
        Endpoint::IntentRetrieve => intents::retrieve(st, id, p),
        Endpoint::IntentUpdate => intents::update(st, id, p),
        Endpoint::IntentConfirm => intents::confirm(st, id, p),
        Endpoint::IntentCapture => intents::capture(st, id, p),
        Endpoint::IntentCancel => intents::cancel(st, id, p),
        Endpoint::RefundCreate => objects::create_refund(st, p),
        Endpoint::RefundList => objects::list_refunds(st, p),
        Endpoint::RefundRetrieve => objects::retrieve_refund(st, id, p),
        Endpoint::CustomerCreate => objects::create_customer(st, p),
        Endpoint::CustomerRetrieve => objects::retrieve_customer(st, id, p),
        Endpoint::ChargeRetrieve => objects::retrieve_charge(st, id, p),
        Endpoint::EventList => objects::list_events(st, p),
        Endpoint::EventRetrieve => objects::retrieve_event(st, id, p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_without_ids() {
        fn op(m: Method, p: &str) -> Option<(&'static str, &str)> {
            Endpoint::parse(&m, p).map(|(e, id)| (e.name(), id))
        }
        assert_eq!(
            op(Method::POST, "/v1/payment_intents/pi_1/confirm"),
            Some(("payment_intents.confirm", "pi_1"))
        );
        assert_eq!(
            op(Method::POST, "/v1/payment_intents"),
            Some(("payment_intents.create", ""))
        );
        assert_eq!(
            op(Method::GET, "/v1/refunds/re_1"),
            Some(("refunds.retrieve", "re_1"))
        );
        assert_eq!(op(Method::DELETE, "/v1/customers/cus_1"), None);
    }
}
