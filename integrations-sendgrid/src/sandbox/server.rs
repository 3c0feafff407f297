//! The sandbox's HTTP server: axum routes served connection by connection with hyper, so a
//! response marked [`DropConnection`] can close the connection without an answer.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use integrations_core::clock::unix_seconds;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt as _;

use super::rules::{self, SgError, error_body};
use super::{AcceptedMessage, Fault, Shared, events};
use crate::client::{
    MAIL_SEND_PATH, MESSAGE_ID_HEADER, RATE_LIMIT_LIMIT_HEADER, RATE_LIMIT_REMAINING_HEADER,
    RATE_LIMIT_RESET_HEADER,
};
use crate::mail::MailSend;
use crate::validate::MAX_BODY_BYTES;

/// Marks a response whose connection is closed instead of answered.
#[derive(Debug, Clone, Copy)]
struct DropConnection;

#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the sandbox")
    }
}

impl std::error::Error for Dropped {}

/// Binds and spawns the accept loop; aborting the returned task stops every connection.
pub(super) async fn serve(shared: Arc<Shared>) -> io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let router = Router::new()
        .route(MAIL_SEND_PATH, post(mail_send))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES * 2))
        .with_state(shared);
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    match accepted {
                        Ok((stream, _)) => {
                            connections.spawn(serve_connection(stream, router.clone()));
                        }
                        // Out of descriptors or similar: back off instead of spinning.
                        Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                    }
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    });
    Ok((addr, task))
}

async fn serve_connection(stream: TcpStream, router: Router) {
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let router = router.clone();
        async move {
            let resp = match router.oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            if resp.extensions().get::<DropConnection>().is_some() {
                Err(Dropped)
            } else {
                Ok(resp)
            }
        }
    });
    // Errors here are the client going away or a deliberate drop: nothing to report.
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

fn json_error(status: StatusCode, errors: &[SgError], headers: HeaderMap) -> Response {
    let mut resp = (status, headers, error_body(errors)).into_response();
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn one(message: &str) -> Vec<SgError> {
    vec![SgError::new(message, None, None)]
}

async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, &one("not found"), HeaderMap::new())
}

fn rate_headers(limit: u32, remaining: u32, reset: i64) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(RATE_LIMIT_LIMIT_HEADER, HeaderValue::from(limit));
    h.insert(RATE_LIMIT_REMAINING_HEADER, HeaderValue::from(remaining));
    h.insert(RATE_LIMIT_RESET_HEADER, HeaderValue::from(reset));
    h
}

enum Admission {
    Fault(Fault),
    Go { drop_after: bool },
}

async fn mail_send(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let now = unix_seconds(shared.clock.now());
    let admission = {
        let mut s = shared.lock();
        s.requests += 1;
        match s.faults.pop_front() {
            Some(Fault::DropAfterAccept) => Admission::Go { drop_after: true },
            Some(f) => Admission::Fault(f),
            None => Admission::Go { drop_after: false },
        }
    };
    let drop_after = match admission {
        Admission::Fault(f) => return fault_response(&shared, f, now).await,
        Admission::Go { drop_after } => drop_after,
    };

    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match auth {
        None => {
            return json_error(
                StatusCode::UNAUTHORIZED,
                &one("authorization required"),
                HeaderMap::new(),
            );
        }
        Some(a) if a != format!("Bearer {}", shared.api_key) => {
            return json_error(
                StatusCode::UNAUTHORIZED,
                &one("The provided authorization grant is invalid, expired, or revoked"),
                HeaderMap::new(),
            );
        }
        Some(_) => {}
    }

    let rate = {
        let mut s = shared.lock();
        match s.rate_limit {
            None => None,
            Some(limit) => {
                let minute = now.div_euclid(60);
                if s.window.0 != minute {
                    s.window = (minute, 0);
                }
                let reset = (minute + 1) * 60;
                if s.window.1 >= limit {
                    return json_error(
                        StatusCode::TOO_MANY_REQUESTS,
                        &one("too many requests"),
                        rate_headers(limit, 0, reset),
                    );
                }
                s.window.1 += 1;
                Some(rate_headers(limit, limit - s.window.1, reset))
            }
        }
    };
    let rate = rate.unwrap_or_default();

    if body.len() > MAX_BODY_BYTES {
        return json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &one("content too large"),
            rate,
        );
    }
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return json_error(StatusCode::BAD_REQUEST, &one("Bad Request"), rate),
    };
    let errors = rules::validate(&value, now);
    if !errors.is_empty() {
        return json_error(StatusCode::BAD_REQUEST, &errors, rate);
    }
    let sandbox_mode = value
        .pointer("/mail_settings/sandbox_mode/enable")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    if sandbox_mode {
        return (StatusCode::OK, rate).into_response();
    }
    let mail: MailSend = match serde_json::from_value(value.clone()) {
        Ok(m) => m,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                &[SgError::new(e.to_string(), None, None)],
                rate,
            );
        }
    };
    let message_id = events::message_id();
    let accepted = AcceptedMessage {
        message_id: message_id.clone(),
        mail,
        body: value,
        on_behalf_of: headers
            .get("on-behalf-of")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        received_at: shared.clock.now(),
    };
    let auto = {
        let mut s = shared.lock();
        s.messages.push(accepted.clone());
        s.auto_events.clone()
    };
    if !auto.is_empty() {
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = events::deliver(&shared, &[accepted], &auto).await {
                tracing::warn!(error = %e, "sandbox event delivery failed");
            }
        });
    }
    let mut resp = (StatusCode::ACCEPTED, rate).into_response();
    if let Ok(v) = HeaderValue::from_str(&message_id) {
        resp.headers_mut().insert(MESSAGE_ID_HEADER, v);
    }
    if drop_after {
        resp.extensions_mut().insert(DropConnection);
    }
    resp
}

async fn fault_response(shared: &Shared, fault: Fault, now: i64) -> Response {
    match fault {
        Fault::ServerError => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &one("internal server error"),
            HeaderMap::new(),
        ),
        Fault::Unavailable => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &one("service unavailable"),
            HeaderMap::new(),
        ),
        Fault::RateLimited { retry_after } => {
            let limit = shared.lock().rate_limit.unwrap_or(600);
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            let reset = now.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX));
            json_error(
                StatusCode::TOO_MANY_REQUESTS,
                &one("too many requests"),
                rate_headers(limit, 0, reset),
            )
        }
        Fault::Hang | Fault::DropAfterAccept => {
            tokio::time::sleep(shared.hang).await;
            let mut resp = StatusCode::GATEWAY_TIMEOUT.into_response();
            resp.extensions_mut().insert(DropConnection);
            resp
        }
    }
}
