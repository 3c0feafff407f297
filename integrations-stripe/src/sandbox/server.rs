//! The HTTP side: accept loop, authentication, fault injection, idempotency, routing.
//!
//! Served with hyper directly (not through a framework router) because two faults need the
//! connection itself: `DropAfterAccept` processes the request and then closes the connection
//! without a response (the service returns an error, which makes hyper abort the connection),
//! and `Hang` holds the request past any client timeout. Every request is processed under one
//! lock, so an idempotency key is checked, executed and stored atomically.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::params::{Handled, Params, Reply, invalid};
use super::state::{State, StoredResponse, random_token};
use super::{Fault, RequestRecord, Shared, delivery, intents, objects};

/// Largest request body accepted.
const MAX_BODY: usize = 1024 * 1024;

/// Returned by the service to make hyper drop the connection without a response.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sandbox fault: connection dropped after the request was processed")
    }
}

impl std::error::Error for DropConnection {}

/// Accepts connections until the task is aborted (which aborts every connection with it).
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "stripe sandbox: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| handle(shared.clone(), req));
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "stripe sandbox: connection ended");
            }
        });
        while connections.try_join_next().is_some() {}
    }
}

fn respond(status: u16, body: Bytes, headers: &[(&'static str, String)]) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(*name, v);
        }
    }
    resp
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

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, DropConnection> {
    let (parts, body) = req.into_parts();
    let request_id = random_token("req", 14);
    let version = parts
        .headers
        .get("stripe-version")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| shared.config.api_version.clone(), str::to_owned);
    let idem = parts
        .headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut record = RequestRecord {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        idempotency_key: idem.clone(),
        status: 0,
        replayed: false,
        fault: None,
    };
    let mut headers = vec![
        ("request-id", request_id.clone()),
        ("stripe-version", version),
    ];
    if let Some(k) = &idem {
        headers.push(("idempotency-key", k.clone()));
    }
    let finish = |shared: &Shared, record: RequestRecord| {
        let mut st = shared.lock();
        st.counters.requests += 1;
        st.requests.push(record);
    };

    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let reply = invalid(413, "Request body too large.", None, None);
            record.status = reply.status;
            finish(&shared, record);
            return Ok(respond(reply.status, to_bytes(&reply.body), &headers));
        }
    };
    let key = match authenticate(&parts.headers) {
        Ok(k) => k,
        Err(reply) => {
            record.status = reply.status;
            finish(&shared, record);
            return Ok(respond(reply.status, to_bytes(&reply.body), &headers));
        }
    };

    let fault = shared.lock().faults.pop_front();
    record.fault = fault;
    match fault {
        Some(Fault::ServerError) => {
            let body = json!({ "error": { "type": "api_error", "message": "An unknown error occurred (sandbox fault injection)." } });
            record.status = 500;
            finish(&shared, record);
            return Ok(respond(500, to_bytes(&body), &headers));
        }
        Some(Fault::RateLimited { retry_after }) => {
            let body = invalid(
                429,
                "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
                None,
                Some("rate_limit"),
            );
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            headers.push((RETRY_AFTER.as_str(), secs.to_string()));
            record.status = 429;
            finish(&shared, record);
            return Ok(respond(429, to_bytes(&body.body), &headers));
        }
        Some(Fault::Hang) => {
            // Held past the client's timeout and never processed.
            tokio::time::sleep(shared.config.hang).await;
            let body = json!({ "error": { "type": "api_error", "message": "The request was held by the sandbox and not processed." } });
            record.status = 500;
            finish(&shared, record);
            return Ok(respond(500, to_bytes(&body), &headers));
        }
        Some(Fault::DropAfterAccept) | None => {}
    }

    let query = parts.uri.query().unwrap_or("").as_bytes();
    let params = if parts.method == Method::GET {
        Params::parse(query)
    } else {
        Params::parse(&body)
    };
    let (status, bytes, replayed, outbox, used_request_id) = {
        let mut st = shared.lock();
        let out = process(
            &mut st,
            &parts.method,
            parts.uri.path(),
            &params,
            &key,
            idem.as_deref(),
            &request_id,
        );
        let outbox = std::mem::take(&mut st.outbox);
        (out.0, out.1, out.2, outbox, out.3)
    };
    delivery::dispatch(&shared, outbox);
    if replayed {
        headers.push(("idempotent-replayed", "true".to_owned()));
        headers[0].1 = used_request_id;
    }
    record.status = status;
    record.replayed = replayed;
    finish(&shared, record);
    if fault == Some(Fault::DropAfterAccept) {
        return Err(DropConnection);
    }
    Ok(respond(status, bytes, &headers))
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
            st.idempotency.insert(
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
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["v1", "payment_intents"]) => intents::create(st, p),
        ("GET", ["v1", "payment_intents"]) => intents::list(st, p),
        ("GET", ["v1", "payment_intents", id]) => intents::retrieve(st, id, p),
        ("POST", ["v1", "payment_intents", id]) => intents::update(st, id, p),
        ("POST", ["v1", "payment_intents", id, "confirm"]) => intents::confirm(st, id, p),
        ("POST", ["v1", "payment_intents", id, "capture"]) => intents::capture(st, id, p),
        ("POST", ["v1", "payment_intents", id, "cancel"]) => intents::cancel(st, id, p),
        ("POST", ["v1", "refunds"]) => objects::create_refund(st, p),
        ("GET", ["v1", "refunds"]) => objects::list_refunds(st, p),
        ("GET", ["v1", "refunds", id]) => objects::retrieve_refund(st, id, p),
        ("POST", ["v1", "customers"]) => objects::create_customer(st, p),
        ("GET", ["v1", "customers", id]) => objects::retrieve_customer(st, id, p),
        ("GET", ["v1", "charges", id]) => objects::retrieve_charge(st, id, p),
        ("GET", ["v1", "events"]) => objects::list_events(st, p),
        ("GET", ["v1", "events", id]) => objects::retrieve_event(st, id, p),
        _ => Err(invalid(
            404,
            format!(
                "Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/."
            ),
            None,
            None,
        )),
    }
}
