//! Google's protocol as two [`SandboxService`]s, each served by its own testkit
//! [`SandboxServer`](integrations_testkit::sandbox::SandboxServer) — as Google serves the token
//! endpoint (`oauth2.googleapis.com`) and the Sheets API on different hosts, so that a fault
//! planned for values requests never hits a token request:
//!
//! * [`ValuesService`]: `spreadsheets.values`; [`precheck`](SandboxService::precheck) routes and
//!   authenticates (before faults, as Google does), [`handle`](SandboxService::handle) applies
//!   the per-minute quota and carries the request out, faults answer in Google's
//!   `{"error":{"code","message","status"}}` shape.
//! * [`TokenService`]: `POST /token`, faults in OAuth's `{"error","error_description"}` shape.
//!
//! The accept loop, body limit, fault plan, hang and drop and the request log are the testkit's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use integrations_testkit::sandbox::{Fault, SandboxRequest, SandboxResponse, SandboxService};
use serde_json::{Value, json};

use super::Endpoint;
use super::state::{QuotaKind, State};
use super::{token, values};

/// The response header carrying the rows a served values request read or wrote: it marks the
/// request as served in the request log and gives [`RecordedRequest::rows`](super::RecordedRequest).
pub(crate) const ROWS_HEADER: &str = "x-sandbox-rows";

/// An answer from a handler.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    body: Body,
    headers: Vec<(&'static str, String)>,
    pub(crate) rows: usize,
}

/// A reply's JSON body.
#[derive(Debug)]
enum Body {
    Json(Value),
    Bytes(Vec<u8>),
}

impl Reply {
    pub(crate) fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            body: Body::Json(body),
            headers: Vec::new(),
            rows: 0,
        }
    }
    /// A JSON answer serialized from `body` at once, without a `Value` tree in between.
    pub(crate) fn serialized(status: u16, body: &impl serde::Serialize) -> Self {
        Reply {
            status,
            body: Body::Bytes(serde_json::to_vec(body).unwrap_or_default()),
            headers: Vec::new(),
            rows: 0,
        }
    }
    /// Google's API error shape `{"error":{"code","message","status"}}`.
    pub(crate) fn google(code: u16, status: &str, message: impl Into<String>) -> Self {
        Reply::json(
            code,
            json!({"error": {"code": code, "message": message.into(), "status": status}}),
        )
    }
    pub(crate) fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
    pub(crate) fn with_rows(mut self, rows: usize) -> Self {
        self.rows = rows;
        self
    }

    pub(crate) fn into_response(self) -> SandboxResponse {
        let mut resp = SandboxResponse::new(self.status)
            .with_header("content-type", "application/json; charset=UTF-8")
            .with_body(match self.body {
                Body::Json(v) => serde_json::to_vec(&v).unwrap_or_default(),
                Body::Bytes(b) => b,
            });
        for (name, value) in self.headers {
            resp = resp.with_header(name, value);
        }
        resp
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn not_found() -> SandboxResponse {
    Reply::google(404, "NOT_FOUND", "Requested entity was not found.").into_response()
}

/// The `spreadsheets.values` endpoints.
#[derive(Debug)]
pub(crate) struct ValuesService {
    pub(crate) state: Arc<Mutex<State>>,
}

#[async_trait]
impl SandboxService for ValuesService {
    fn operation(&self, req: &SandboxRequest) -> String {
        match values::route(&req.method, req.path()) {
            Some(route) => route.endpoint.name().to_owned(),
            None => format!("{} {}", req.method, req.path()),
        }
    }

    fn precheck(&self, req: &SandboxRequest) -> Option<SandboxResponse> {
        let Some(route) = values::route(&req.method, req.path()) else {
            return Some(not_found());
        };
        let bearer = req
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "));
        values::authenticate(&mut lock(&self.state), &route, bearer)
            .err()
            .map(Reply::into_response)
    }

    async fn handle(&self, req: SandboxRequest) -> SandboxResponse {
        let Some(route) = values::route(&req.method, req.path()) else {
            return not_found();
        };
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(req.query().as_bytes())
            .into_owned()
            .collect();
        // `ranges` is repeated (`values.batchGet`); every other parameter is single.
        let ranges: Vec<String> = pairs
            .iter()
            .filter(|(k, _)| k == "ranges")
            .map(|(_, v)| v.clone())
            .collect();
        let query: HashMap<String, String> = pairs.into_iter().collect();
        let bearer = req
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "));
        let mut state = lock(&self.state);
        match values::handle(&mut state, &route, &query, &ranges, bearer, &req.body) {
            Ok(reply) => {
                let rows = reply.rows.to_string();
                reply.with_header(ROWS_HEADER, &rows).into_response()
            }
            Err(refused) => refused.into_response(),
        }
    }

    fn fault_response(&self, fault: Fault, req: &SandboxRequest) -> SandboxResponse {
        match fault {
            Fault::RateLimited { retry_after } => {
                let kind = match values::route(&req.method, req.path()) {
                    Some(r) if r.endpoint.is_read() => QuotaKind::Read,
                    _ => QuotaKind::Write,
                };
                let body = lock(&self.state).quota_error_body(kind);
                Reply::json(429, body)
                    .into_response()
                    .with_retry_after(retry_after)
            }
            Fault::Unavailable => {
                Reply::google(503, "UNAVAILABLE", "The service is currently unavailable.")
                    .into_response()
            }
            _ => Reply::google(500, "INTERNAL", "Internal error encountered.").into_response(),
        }
    }
}

/// The OAuth token endpoint, `POST /token`.
#[derive(Debug)]
pub(crate) struct TokenService {
    pub(crate) state: Arc<Mutex<State>>,
}

#[async_trait]
impl SandboxService for TokenService {
    fn operation(&self, req: &SandboxRequest) -> String {
        if req.path() == "/token" {
            Endpoint::Token.name().to_owned()
        } else {
            format!("{} {}", req.method, req.path())
        }
    }

    fn precheck(&self, req: &SandboxRequest) -> Option<SandboxResponse> {
        if req.path() != "/token" {
            return Some(not_found());
        }
        (req.method != http::Method::POST)
            .then(|| Reply::google(405, "METHOD_NOT_ALLOWED", "Use POST.").into_response())
    }

    async fn handle(&self, req: SandboxRequest) -> SandboxResponse {
        token::exchange(&mut lock(&self.state), &req.body).into_response()
    }

    fn fault_response(&self, fault: Fault, _req: &SandboxRequest) -> SandboxResponse {
        let (status, error, description) = match fault {
            Fault::RateLimited { .. } => (429, "rate_limit_exceeded", "Rate Limit Exceeded"),
            Fault::Unavailable => (503, "temporarily_unavailable", "Service Unavailable"),
            _ => (500, "internal_failure", "Backend Error"),
        };
        let retry_after = match fault {
            Fault::RateLimited { retry_after } => retry_after,
            _ => None,
        };
        Reply::json(
            status,
            json!({"error": error, "error_description": description}),
        )
        .into_response()
        .with_retry_after(retry_after)
    }
}
