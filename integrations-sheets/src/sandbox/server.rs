//! The sandbox's HTTP/1 server: hyper directly, so that a response can be withheld and the
//! connection aborted after the request was carried out ([`Fault::DropAfterAccept`](super::Fault)).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use integrations_core::{Error, Result};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::state::State;
use super::{token, values};

/// Largest request body accepted (Google recommends at most 2 MB; it refuses far larger ones).
const BODY_LIMIT: usize = 10 * 1024 * 1024;

/// What to do with an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposition {
    Respond,
    Hang,
    Drop,
}

/// An answer from a handler.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    body: Value,
    headers: Vec<(&'static str, String)>,
    disposition: Disposition,
    pub(crate) rows: usize,
}

impl Reply {
    pub(crate) fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            body,
            headers: Vec::new(),
            disposition: Disposition::Respond,
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
    pub(crate) fn hang() -> Self {
        Reply {
            disposition: Disposition::Hang,
            ..Reply::google(503, "UNAVAILABLE", "The service is currently unavailable.")
        }
    }
    pub(crate) fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
    pub(crate) fn with_rows(mut self, rows: usize) -> Self {
        self.rows = rows;
        self
    }
    pub(crate) fn dropped(mut self) -> Self {
        self.disposition = Disposition::Drop;
        self
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let body = Bytes::from(serde_json::to_vec(&self.body).unwrap_or_default());
        let mut resp = Response::new(Full::new(body));
        *resp.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let h = resp.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=UTF-8"),
        );
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
        resp
    }
}

/// Returned by the service to make hyper abort the connection without answering.
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}
impl std::error::Error for DropConnection {}

/// The listening server; dropping it stops accepting and closes every connection.
#[derive(Debug)]
pub(crate) struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.accept.abort();
    }
}

impl Server {
    pub(crate) async fn bind(state: Arc<Mutex<State>>) -> Result<Server> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(|e| {
            Error::unavailable("the sandbox could not bind 127.0.0.1").with_source(e)
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::unavailable("the sandbox socket has no address").with_source(e))?;
        let (stop, stopped) = watch::channel(false);
        let accept = tokio::spawn(accept_loop(listener, state, stopped));
        Ok(Server { addr, stop, accept })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<Mutex<State>>,
    stopped: watch::Receiver<bool>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "sandbox accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(Arc::clone(&state), req));
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.header_read_timeout(None);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = stopped.wait_for(|s| *s) => {}
            }
        });
    }
}

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> std::result::Result<Response<Full<Bytes>>, DropConnection> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return Ok(Reply::google(
                413,
                "INVALID_ARGUMENT",
                "Request payload size exceeds the limit.",
            )
            .into_response());
        }
    };
    let reply = dispatch(&state, &parts, &body);
    match reply.disposition {
        Disposition::Respond => Ok(reply.into_response()),
        Disposition::Drop => Err(DropConnection),
        Disposition::Hang => {
            let hang_for = state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .config
                .hang_for;
            tokio::time::sleep(hang_for).await;
            Ok(reply.into_response())
        }
    }
}

fn dispatch(state: &Mutex<State>, parts: &http::request::Parts, body: &[u8]) -> Reply {
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    let path = parts.uri.path();
    if path == "/token" {
        if parts.method != http::Method::POST {
            return Reply::google(405, "METHOD_NOT_ALLOWED", "Use POST.");
        }
        if let Some(fault) = state.take_fault(super::Endpoint::Token) {
            return match fault {
                super::Fault::ServerError => Reply::json(
                    500,
                    json!({"error": "internal_failure", "error_description": "Backend Error"}),
                ),
                super::Fault::RateLimited { retry_after } => {
                    let r = Reply::json(
                        429,
                        json!({"error": "rate_limit_exceeded", "error_description": "Rate Limit Exceeded"}),
                    );
                    match retry_after {
                        Some(d) => r.with_header("retry-after", &d.as_secs().to_string()),
                        None => r,
                    }
                }
                super::Fault::Hang => Reply::hang(),
                super::Fault::DropAfterAccept => token::exchange(&mut state, body).dropped(),
            };
        }
        return token::exchange(&mut state, body);
    }
    let Some(route) = values::route(&parts.method, path) else {
        return Reply::google(404, "NOT_FOUND", "Requested entity was not found.");
    };
    let query: HashMap<String, String> = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let bearer = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    values::handle(&mut state, &route, &query, bearer, body)
}
