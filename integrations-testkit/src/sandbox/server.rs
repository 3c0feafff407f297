//! The server runner: accept loop, body limit, faults, recording.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::{Fault, Faults, RecordedRequest, RequestLog};

/// Largest request body a server reads unless told otherwise (10 MiB); larger ones get `413`.
pub const DEFAULT_BODY_LIMIT: usize = 10 * 1024 * 1024;

/// How long a [`Fault::Hang`] holds a request unless told otherwise.
pub const DEFAULT_HANG: Duration = Duration::from_secs(300);

/// A request as a [`SandboxService`] sees it: the whole body already read.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SandboxRequest {
    /// Method.
    pub method: Method,
    /// URI (path and query).
    pub uri: Uri,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl SandboxRequest {
    /// A request, for tests of a service without a server.
    pub fn new(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Self {
        SandboxRequest {
            method,
            uri,
            headers,
            body,
        }
    }

    /// The path.
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The query string, `""` when absent.
    pub fn query(&self) -> &str {
        self.uri.query().unwrap_or("")
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The path's segments between slashes (`/v1/refunds/re_1` → `["v1", "refunds", "re_1"]`).
    pub fn segments(&self) -> Vec<&str> {
        self.path().trim_matches('/').split('/').collect()
    }
}

/// A service's answer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SandboxResponse {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl SandboxResponse {
    /// An empty answer with `status`.
    pub fn new(status: u16) -> Self {
        SandboxResponse {
            status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    /// A JSON answer (`Content-Type: application/json`).
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self::new(status)
            .with_header(CONTENT_TYPE.as_str(), "application/json")
            .with_body(serde_json::to_vec(body).unwrap_or_default())
    }

    /// With this body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// With this header (replacing one of the same name). A name or value that is not valid
    /// HTTP is skipped.
    pub fn with_header(mut self, name: &str, value: impl AsRef<str>) -> Self {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value.as_ref()),
        ) {
            self.headers.insert(n, v);
        }
        self
    }

    /// With `Retry-After` in whole seconds (rounded up) when `retry_after` is set.
    pub fn with_retry_after(self, retry_after: Option<Duration>) -> Self {
        match retry_after {
            Some(d) => {
                let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
                self.with_header(RETRY_AFTER.as_str(), secs.to_string())
            }
            None => self,
        }
    }
}

/// A provider's protocol, served by a [`SandboxServer`].
#[async_trait]
pub trait SandboxService: Send + Sync + fmt::Debug + 'static {
    /// The operation a request is (for [`FaultRule::on`](super::FaultRule::on) and the log):
    /// by default `"{METHOD} {path}"`. Name operations when paths carry ids.
    fn operation(&self, req: &SandboxRequest) -> String {
        format!("{} {}", req.method, req.path())
    }

    /// Checks made before any fault applies (authentication, say): `Some` answers at once.
    fn precheck(&self, _req: &SandboxRequest) -> Option<SandboxResponse> {
        None
    }

    /// Answers a request.
    async fn handle(&self, req: SandboxRequest) -> SandboxResponse;

    /// The provider's answer to [`Fault::ServerError`], [`Fault::Unavailable`] or
    /// [`Fault::RateLimited`] (status from [`Fault::status`], the provider's error body and
    /// rate-limit headers). Never called for the faults that answer nothing.
    fn fault_response(&self, fault: Fault, req: &SandboxRequest) -> SandboxResponse;
}

/// How a [`SandboxServer`] runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerOptions {
    /// Largest body read; larger ones get `413` (default [`DEFAULT_BODY_LIMIT`]).
    pub body_limit: usize,
    /// How long [`Fault::Hang`] holds a request (default [`DEFAULT_HANG`]).
    pub hang: Duration,
    /// Requests kept in full by the log (default [`DEFAULT_RETENTION`](super::DEFAULT_RETENTION)).
    pub retention: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            body_limit: DEFAULT_BODY_LIMIT,
            hang: DEFAULT_HANG,
            retention: super::DEFAULT_RETENTION,
        }
    }
}

impl ServerOptions {
    /// With this body limit.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// With this hang time.
    pub fn hang(mut self, hang: Duration) -> Self {
        self.hang = hang;
        self
    }

    /// Keeping this many requests in full.
    pub fn retention(mut self, requests: usize) -> Self {
        self.retention = requests;
        self
    }
}

/// A running sandbox server on `127.0.0.1`; dropping it stops it and every connection.
pub struct SandboxServer {
    addr: SocketAddr,
    faults: Arc<Faults>,
    log: Arc<RequestLog>,
    task: JoinHandle<()>,
}

impl fmt::Debug for SandboxServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxServer")
            .field("addr", &self.addr)
            .field("pending_faults", &self.faults.pending())
            .field("requests", &self.log.count())
            .finish()
    }
}

impl Drop for SandboxServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Returned to hyper to close a connection without an answer.
#[derive(Debug)]
struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sandbox fault: connection closed without an answer")
    }
}

impl std::error::Error for DropConnection {}

struct Shared<S> {
    service: Arc<S>,
    faults: Arc<Faults>,
    log: Arc<RequestLog>,
    options: ServerOptions,
}

impl SandboxServer {
    /// Binds a free loopback port and serves `service` until dropped.
    ///
    /// # Errors
    /// Binding the port failed.
    pub async fn start<S: SandboxService>(
        service: Arc<S>,
        options: ServerOptions,
    ) -> io::Result<SandboxServer> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let faults = Arc::new(Faults::new());
        let log = Arc::new(RequestLog::with_retention(options.retention));
        let shared = Arc::new(Shared {
            service,
            faults: faults.clone(),
            log: log.clone(),
            options,
        });
        let task = tokio::spawn(accept_loop(listener, shared));
        Ok(SandboxServer {
            addr,
            faults,
            log,
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The pending faults; add with [`Faults::fail_next`] or [`Faults::add`].
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The request log.
    pub fn requests(&self) -> &RequestLog {
        &self.log
    }

    /// Stops accepting and closes every connection.
    pub fn shutdown(&self) {
        self.task.abort();
    }
}

async fn accept_loop<S: SandboxService>(listener: TcpListener, shared: Arc<Shared<S>>) {
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "sandbox: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| serve(shared.clone(), req));
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "sandbox: connection ended");
            }
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn serve<S: SandboxService>(
    shared: Arc<Shared<S>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, DropConnection> {
    let (parts, body) = req.into_parts();
    let body = Limited::new(body, shared.options.body_limit)
        .collect()
        .await
        .map(|b| b.to_bytes());
    let request = SandboxRequest::new(parts.method, parts.uri, parts.headers, Bytes::new());
    let (request, too_large) = match body {
        Ok(body) => (SandboxRequest { body, ..request }, false),
        Err(_) => (request, true),
    };
    let operation = shared.service.operation(&request);
    let mut record = RecordedRequest {
        at: SystemTime::now(),
        method: request.method.clone(),
        path: request.path().to_owned(),
        query: request.uri.query().map(str::to_owned),
        operation,
        headers: request.headers.clone(),
        status: 0,
        response_headers: HeaderMap::new(),
        fault: None,
    };
    RecordedRequest::strip_secrets(&mut record.headers);
    let finish = |mut record: RecordedRequest, resp: SandboxResponse| {
        record.status = resp.status;
        record.response_headers = resp.headers.clone();
        shared.log.record(record);
        into_hyper(resp)
    };

    if too_large {
        let resp = SandboxResponse::json(
            413,
            &serde_json::json!({ "error": { "message": "request body too large" } }),
        );
        return Ok(finish(record, resp));
    }
    if let Some(resp) = shared.service.precheck(&request) {
        return Ok(finish(record, resp));
    }
    let fault = shared.faults.take(&record.operation);
    record.fault = fault;
    match fault {
        Some(Fault::Hang) => {
            shared.log.record(record);
            tokio::time::sleep(shared.options.hang).await;
            Err(DropConnection)
        }
        Some(Fault::DropAfterAccept) => {
            let resp = shared.service.handle(request).await;
            record.status = resp.status;
            record.response_headers = resp.headers;
            shared.log.record(record);
            Err(DropConnection)
        }
        Some(f) => {
            let resp = shared.service.fault_response(f, &request);
            Ok(finish(record, resp))
        }
        None => {
            let resp = shared.service.handle(request).await;
            Ok(finish(record, resp))
        }
    }
}

fn into_hyper(resp: SandboxResponse) -> Response<Full<Bytes>> {
    let mut out = Response::new(Full::new(resp.body));
    *out.status_mut() =
        StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    *out.headers_mut() = resp.headers;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default)]
    struct Counter {
        handled: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl SandboxService for Counter {
        fn operation(&self, req: &SandboxRequest) -> String {
            req.segments().first().copied().unwrap_or("").to_owned()
        }
        fn precheck(&self, req: &SandboxRequest) -> Option<SandboxResponse> {
            (req.header("authorization") != Some("Bearer ok")).then(|| SandboxResponse::new(401))
        }
        async fn handle(&self, req: SandboxRequest) -> SandboxResponse {
            let n = self
                .handled
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            SandboxResponse::new(200).with_body(format!("{n}:{}", req.body.len()))
        }
        fn fault_response(&self, fault: Fault, _req: &SandboxRequest) -> SandboxResponse {
            let retry = match fault {
                Fault::RateLimited { retry_after } => retry_after,
                _ => None,
            };
            SandboxResponse::json(
                fault.status(),
                &serde_json::json!({ "fault": fault.name() }),
            )
            .with_retry_after(retry)
        }
    }

    async fn post(client: &reqwest::Client, url: &str, auth: &str) -> Result<(u16, String), ()> {
        let resp = client
            .post(url)
            .header("authorization", auth)
            .body("abc")
            .send()
            .await
            .map_err(|_| ())?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await.map_err(|_| ())?))
    }

    #[tokio::test]
    async fn faults_record_and_drop_as_documented() {
        let service = Arc::new(Counter::default());
        let server = SandboxServer::start(
            service.clone(),
            ServerOptions::default()
                .hang(Duration::from_millis(50))
                .retention(2),
        )
        .await
        .unwrap();
        let client = reqwest::Client::new();
        let url = format!("{}/pay", server.base_url());

        // Authentication answers before faults.
        server.faults().fail_next(1, Fault::ServerError);
        assert_eq!(post(&client, &url, "nope").await.unwrap().0, 401);
        assert_eq!(server.faults().pending(), 1);
        assert_eq!(post(&client, &url, "Bearer ok").await.unwrap().0, 500);

        server
            .faults()
            .fail_next(1, Fault::rate_limited(Duration::from_millis(1500)));
        assert_eq!(post(&client, &url, "Bearer ok").await.unwrap().0, 429);
        let last = server.requests().recent().pop().unwrap();
        assert_eq!(last.response_header("retry-after"), Some("2"));
        assert!(last.header("authorization").is_none(), "credentials kept");

        // Dropped after acting: handled once, no answer.
        server.faults().fail_next(1, Fault::DropAfterAccept);
        assert!(post(&client, &url, "Bearer ok").await.is_err());
        assert_eq!(service.handled.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Hang: no answer, not handled.
        server.faults().fail_next(1, Fault::Hang);
        assert!(post(&client, &url, "Bearer ok").await.is_err());
        assert_eq!(service.handled.load(std::sync::atomic::Ordering::SeqCst), 1);

        let (status, body) = post(&client, &url, "Bearer ok").await.unwrap();
        assert_eq!((status, body.as_str()), (200, "1:3"));

        let totals = server.requests().totals();
        assert_eq!(totals.requests, 6);
        assert_eq!(totals.faulted, 4);
        assert_eq!(totals.by_operation["pay"], 6);
        assert_eq!(server.requests().recent().len(), 2);
    }
}
