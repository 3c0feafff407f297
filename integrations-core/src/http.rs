//! The shared HTTP client and the one helper every provider crate sends requests through.
//!
//! [`send`] runs a request under a [`Policy`] (rate limit → circuit breaker → retry → per-attempt
//! timeout), turns transport failures into [`Error`]s with the right retry and failover meaning,
//! and hands every non-2xx answer to the provider's own `parse_error`. [`send_via`] does the same
//! through an [`HttpClient`], which may carry a `reqwest-middleware` chain (feature
//! `reqwest-middleware`).
//!
//! ```no_run
//! use integrations_core::http::{self, HttpResponse};
//! use integrations_core::{Error, Policy};
//!
//! # async fn demo() -> integrations_core::Result<()> {
//! let client = http::default_client();
//! let policy = Policy::builder("example").build();
//! let resp = http::send(
//!     &policy,
//!     "get_thing",
//!     |_attempt| client.get("https://api.example.com/v1/things/1"),
//!     |resp: &HttpResponse| http::status_error(resp, "example", resp.text().into_owned()),
//! )
//! .await?;
//! let thing: serde_json::Value = resp.json()?;
//! # Ok(()) }
//! ```
//!
//! Nothing secret is logged: events carry the method, scheme, host and path of the URL (never the
//! query string, which some APIs use for keys) and never a header. Each attempt's span
//! ([`crate::telemetry`]) gets the method, host, port, path and response status.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
pub use http::{HeaderMap, StatusCode};

use crate::resilience::{Attempt, Policy};
use crate::{Error, Result, USER_AGENT};

mod client;
use client::ExecuteError;
pub use client::HttpClient;

/// Default time to establish a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default overall limit on one request at the client level (the policy's per-attempt timeout is
/// usually shorter).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time an idle pooled connection is kept.
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Whether `url`'s host is a loopback host: `localhost`, `127.0.0.0/8` or `[::1]`.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The one rule for every configured base or token URL: `https`, or plain `http` only to a
/// loopback host ([`is_loopback`]: where a sandbox or an emulator runs) unless `allow_http` is
/// set explicitly (each builder's `with_allow_http(true)`: an emulator on another host, a
/// TLS-terminating sidecar). The URL must have a host and carry no credentials, query or
/// fragment.
///
/// # Errors
/// [`Error::Configuration`] naming `setting`. The message never echoes the URL's user info.
pub fn check_base_url(
    setting: impl Into<Cow<'static, str>>,
    raw: &str,
    allow_http: bool,
) -> Result<url::Url> {
    let setting = setting.into();
    let bad = |m: &str| Error::configuration(setting.clone(), m.to_owned());
    let url = url::Url::parse(raw.trim())
        .map_err(|e| bad(&format!("is not an absolute URL: {e}")).with_source(e))?;
    if url.host().is_none() || url.host_str() == Some("") {
        return Err(bad("has no host"));
    }
    match url.scheme() {
        "https" => {}
        "http" if allow_http || is_loopback(&url) => {}
        "http" => {
            return Err(bad(
                "must use https (plain http is only allowed for loopback hosts, where a sandbox runs, or after with_allow_http(true))",
            ));
        }
        other => return Err(bad(&format!("unsupported scheme `{other}`"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    Ok(url)
}

/// Builds the pooled, rustls-only `reqwest::Client` the provider crates share.
#[derive(Debug, Clone)]
pub struct HttpClientBuilder {
    connect_timeout: Duration,
    request_timeout: Option<Duration>,
    pool_idle_timeout: Duration,
    pool_max_idle_per_host: usize,
    user_agent: String,
}

impl Default for HttpClientBuilder {
    fn default() -> Self {
        HttpClientBuilder::new()
    }
}

impl HttpClientBuilder {
    /// Defaults: connect 5 s, request 60 s, idle 90 s, 32 idle connections per host, user agent
    /// `integrations/<version>`.
    pub fn new() -> Self {
        HttpClientBuilder {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: Some(DEFAULT_REQUEST_TIMEOUT),
            pool_idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
            pool_max_idle_per_host: 32,
            user_agent: USER_AGENT.to_owned(),
        }
    }
    /// Connect timeout.
    #[must_use]
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }
    /// Whole-request timeout at the client level (`None` for none; the policy still applies its own).
    #[must_use]
    pub fn request_timeout(mut self, d: Option<Duration>) -> Self {
        self.request_timeout = d;
        self
    }
    /// Idle connection lifetime.
    #[must_use]
    pub fn pool_idle_timeout(mut self, d: Duration) -> Self {
        self.pool_idle_timeout = d;
        self
    }
    /// Idle connections kept per host.
    #[must_use]
    pub fn pool_max_idle_per_host(mut self, n: usize) -> Self {
        self.pool_max_idle_per_host = n;
        self
    }
    /// Appends a product token to the user agent (`integrations/0.1.0 my-service/2.3`).
    #[must_use]
    pub fn user_agent_suffix(mut self, suffix: &str) -> Self {
        self.user_agent = format!("{USER_AGENT} {suffix}");
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming `http_client` if the TLS backend cannot start.
    pub fn build(self) -> Result<reqwest::Client> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(self.connect_timeout)
            .pool_idle_timeout(self.pool_idle_timeout)
            .pool_max_idle_per_host(self.pool_max_idle_per_host)
            .user_agent(self.user_agent)
            // Providers' APIs do not redirect; following one would resend the credential headers
            // (`Authorization`, SigV4) to wherever the `Location` points. A 3xx is handed to the
            // provider's `parse_error` like any other non-2xx answer.
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true);
        if let Some(t) = self.request_timeout {
            b = b.timeout(t);
        }
        b.build().map_err(|e| {
            Error::configuration("http_client", "could not build the HTTP client").with_source(e)
        })
    }
}

/// The default clients of the runtimes alive now.
type Clients = std::sync::Mutex<std::collections::HashMap<tokio::runtime::Id, reqwest::Client>>;

fn clients()
-> std::sync::MutexGuard<'static, std::collections::HashMap<tokio::runtime::Id, reqwest::Client>> {
    static CLIENTS: OnceLock<Clients> = OnceLock::new();
    CLIENTS
        .get_or_init(Clients::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The client with the default settings for the calling Tokio runtime: share it so connections
/// are pooled.
///
/// A `reqwest::Client`'s pooled connections are driven by tasks on the runtime that opened them,
/// and die with that runtime; a client shared by several runtimes (a `static`, or one client used
/// by many `#[tokio::test]`s) sooner or later hands a request to a dead connection and fails with
/// "runtime dropped the dispatch task". So the default client is one per runtime: every call
/// inside the same runtime returns a clone of the same client, a call in another runtime gets
/// another, and a call outside any runtime gets a fresh client that is not shared. A runtime's
/// client is forgotten when the runtime shuts down. Build providers inside the runtime that will
/// run them.
pub fn default_client() -> reqwest::Client {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return build_default_client();
    };
    let id = handle.id();
    if let Some(client) = clients().get(&id) {
        return client.clone();
    }
    let client = build_default_client();
    {
        let mut clients = clients();
        if let Some(raced) = clients.get(&id) {
            return raced.clone();
        }
        clients.insert(id, client.clone());
    }
    // A runtime drops its tasks when it shuts down, and this one's guard with them.
    let forget = ForgetOnShutdown(id);
    drop(handle.spawn(async move {
        let _forget = forget;
        std::future::pending::<()>().await;
    }));
    client
}

/// Removes a runtime's default client when dropped.
struct ForgetOnShutdown(tokio::runtime::Id);

impl Drop for ForgetOnShutdown {
    fn drop(&mut self) {
        clients().remove(&self.0);
    }
}

fn build_default_client() -> reqwest::Client {
    HttpClientBuilder::new()
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// A fully read response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl HttpResponse {
    /// A header's value, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The body as text (lossy).
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// Decodes the body as JSON.
    ///
    /// # Errors
    /// [`Error::Provider`] when the body is not the expected JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::provider(format!(
                "could not decode the {} response body",
                self.status
            ))
            .with_status(self.status.as_u16())
            .with_source(e)
        })
    }
}

/// Scheme, host, port and path of `url`, never its query or credentials: safe to log.
pub fn redact_url(url: &url::Url) -> String {
    let mut s = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(p) = url.port() {
        s.push_str(&format!(":{p}"));
    }
    s.push_str(url.path());
    if url.query().is_some() {
        s.push_str("?[redacted]");
    }
    s
}

/// Turns a transport failure into an [`Error`]: connect failures are [`Error::Unavailable`] marked
/// not processed (the request never left), timeouts are [`Error::Timeout`], anything after the
/// request was sent is [`Error::Unavailable`] that may have been processed. The URL is stripped
/// from the source so no query-string secret reaches a log.
pub fn transport_error(provider: &str, err: reqwest::Error) -> Error {
    let e = if err.is_connect() {
        Error::unavailable("could not connect").not_processed()
    } else if err.is_timeout() {
        Error::timeout("the request timed out")
    } else if err.is_builder() {
        Error::configuration("base_url", "the request could not be built")
    } else {
        Error::unavailable("the connection failed after the request was sent")
    };
    e.with_provider(provider.to_owned())
        .with_source(err.without_url())
}

/// Parses `Retry-After` as delay-seconds or an HTTP date.
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The generic status → kind mapping, for providers whose error bodies carry nothing better, and
/// as the fallback of a provider's own `parse_error`.
///
/// 400/422 invalid input (field `request`), 401 unauthenticated, 403 forbidden, 404 not found,
/// 408 timeout, 409 conflict, 413 invalid input (field `body`), 429 rate limited (with
/// `Retry-After`), 503 unavailable and not processed, other 5xx unavailable, anything else a
/// provider error.
pub fn status_error(resp: &HttpResponse, provider: &'static str, message: String) -> Error {
    let code = resp.status.as_u16();
    let e = match code {
        400 | 422 => Error::invalid_input("request", message),
        401 => Error::unauthenticated(message),
        403 => Error::forbidden(message),
        404 => Error::not_found(message),
        408 => Error::timeout(message),
        409 => Error::conflict(message),
        413 => Error::invalid_input("body", format!("payload too large: {message}")),
        429 => Error::rate_limited(parse_retry_after(&resp.headers), message).not_processed(),
        503 => Error::unavailable(message).not_processed(),
        500..=599 => Error::unavailable(message),
        _ => Error::provider(message),
    };
    e.with_provider(provider).with_status(code)
}

/// Runs one HTTP exchange under `policy`: `build` makes the request for each attempt (so it can
/// set per-attempt headers, and must reuse one idempotency key across attempts), 2xx answers are
/// returned, everything else goes through `parse_error`.
///
/// # Errors
/// Whatever `parse_error` makes of a non-2xx answer, transport errors (see [`transport_error`]),
/// and the policy's own ([`Error::RateLimited`], [`Error::CircuitOpen`], [`Error::Timeout`],
/// [`Error::BulkheadFull`]).
pub async fn send<B, P>(
    policy: &Policy,
    operation: &'static str,
    build: B,
    parse_error: P,
) -> Result<HttpResponse>
where
    B: Fn(&Attempt) -> reqwest::RequestBuilder + Send + Sync,
    P: Fn(&HttpResponse) -> Error + Send + Sync,
{
    exchange(None, policy, operation, build, parse_error).await
}

/// Like [`send`], executing each attempt's request with `client`: through its middleware chain
/// when it has one (feature `reqwest-middleware`), else exactly as [`send`]. Build the requests
/// with [`HttpClient::request`].
///
/// # Errors
/// As [`send`]; a middleware's own failure is a retryable [`Error::Unavailable`] (the request
/// may or may not have left), carrying the middleware's error as its source.
pub async fn send_via<B, P>(
    client: &HttpClient,
    policy: &Policy,
    operation: &'static str,
    build: B,
    parse_error: P,
) -> Result<HttpResponse>
where
    B: Fn(&Attempt) -> reqwest::RequestBuilder + Send + Sync,
    P: Fn(&HttpResponse) -> Error + Send + Sync,
{
    exchange(Some(client), policy, operation, build, parse_error).await
}

/// [`send_via`], or with no client [`send`]: each request on its builder's own client.
async fn exchange<B, P>(
    client: Option<&HttpClient>,
    policy: &Policy,
    operation: &'static str,
    build: B,
    parse_error: P,
) -> Result<HttpResponse>
where
    B: Fn(&Attempt) -> reqwest::RequestBuilder + Send + Sync,
    P: Fn(&HttpResponse) -> Error + Send + Sync,
{
    let provider = policy.provider();
    let build = &build;
    let parse_error = &parse_error;
    policy
        .call(operation, move |attempt: Attempt| async move {
            one_exchange(
                client,
                provider,
                operation,
                attempt.number,
                build(&attempt),
                parse_error,
            )
            .await
        })
        .await
}

/// One HTTP exchange **outside any policy**, through `client` (its middleware included): for a
/// caller that runs its attempts under a policy of its own — a batching sink whose one call
/// covers many callers' rows, say — and still wants the transport mapping, redaction, telemetry
/// fields and error parsing of [`send_via`]. `attempt` is the caller's attempt number, for the
/// logs.
///
/// # Errors
/// As [`send_via`], without the policy's own errors.
pub async fn send_once<P>(
    client: &HttpClient,
    provider: &str,
    operation: &'static str,
    attempt: u32,
    request: reqwest::RequestBuilder,
    parse_error: P,
) -> Result<HttpResponse>
where
    P: Fn(&HttpResponse) -> Error,
{
    one_exchange(
        Some(client),
        provider,
        operation,
        attempt,
        request,
        &parse_error,
    )
    .await
}

/// Sends `request` (on `client` if given, else on its builder's own client) and reads the answer:
/// 2xx returned, anything else through `parse_error`, transport failures mapped.
async fn one_exchange<P>(
    client: Option<&HttpClient>,
    provider: &str,
    operation: &'static str,
    attempt: u32,
    request: reqwest::RequestBuilder,
    parse_error: &P,
) -> Result<HttpResponse>
where
    P: Fn(&HttpResponse) -> Error,
{
    let (builder, request) = request.build_split();
    let request = request.map_err(|e| transport_error(provider, e))?;
    crate::telemetry::record_http_request(request.method(), request.url());
    let method = request.method().clone();
    let url = redact_url(request.url());
    let started = Instant::now();
    let result = match client {
        Some(client) => client.execute(builder, request).await,
        None => builder
            .execute(request)
            .await
            .map_err(ExecuteError::Reqwest),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ExecuteError::Reqwest(e)) => {
            let e = e.without_url();
            tracing::debug!(provider, operation, attempt, %method, %url, error = %e, "http transport error");
            return Err(transport_error(provider, e));
        }
        Err(ExecuteError::Middleware(e)) => {
            tracing::debug!(provider, operation, attempt, %method, %url, "http middleware error");
            return Err(Error::unavailable("an HTTP middleware failed")
                .with_provider(provider.to_owned())
                .with_source(e));
        }
    };
    let status = resp.status();
    crate::telemetry::record_http_status(status.as_u16());
    let headers = resp.headers().clone();
    let body = resp
        .bytes()
        .await
        .map_err(|e| transport_error(provider, e))?;
    tracing::debug!(
        provider,
        operation,
        attempt,
        %method,
        %url,
        status = status.as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "http exchange"
    );
    let resp = HttpResponse {
        status,
        headers,
        body,
    };
    if status.is_success() {
        Ok(resp)
    } else {
        Err(parse_error(&resp).or_provider(provider.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runtime_keeps_one_default_client_until_it_shuts_down() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let id = rt.handle().id();
        rt.block_on(async {
            default_client();
            default_client();
        });
        assert!(clients().contains_key(&id));
        drop(rt);
        assert!(!clients().contains_key(&id), "forgotten with its runtime");
    }

    use http::HeaderValue;

    fn resp(status: u16, headers: &[(&'static str, &str)]) -> HttpResponse {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        HttpResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: h,
            body: Bytes::from_static(b"{}"),
        }
    }

    #[test]
    fn retry_after_seconds_and_date() {
        let r = resp(429, &[("retry-after", "7")]);
        assert_eq!(parse_retry_after(&r.headers), Some(Duration::from_secs(7)));
        let future = SystemTime::now() + Duration::from_secs(120);
        let r = resp(429, &[("retry-after", &httpdate::fmt_http_date(future))]);
        let d = parse_retry_after(&r.headers).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        let past = SystemTime::now() - Duration::from_secs(120);
        let r = resp(429, &[("retry-after", &httpdate::fmt_http_date(past))]);
        assert_eq!(parse_retry_after(&r.headers), Some(Duration::ZERO));
        let r = resp(429, &[("retry-after", "soon")]);
        assert_eq!(parse_retry_after(&r.headers), None);
    }

    #[test]
    fn generic_status_mapping() {
        use crate::ErrorKind::*;
        let cases = [
            (400, InvalidInput),
            (401, Unauthenticated),
            (403, Forbidden),
            (404, NotFound),
            (408, Timeout),
            (409, Conflict),
            (413, InvalidInput),
            (429, RateLimited),
            (500, Unavailable),
            (503, Unavailable),
            (302, Provider),
        ];
        for (status, kind) in cases {
            let e = status_error(&resp(status, &[]), "p", "m".into());
            assert_eq!(e.kind(), kind, "{status}");
            assert_eq!(e.status(), Some(status));
            assert_eq!(e.provider_name(), Some("p"));
        }
        let e = status_error(&resp(429, &[("retry-after", "3")]), "p", "m".into());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert!(e.is_failover_safe());
        assert!(status_error(&resp(503, &[]), "p", "m".into()).is_failover_safe());
        assert!(!status_error(&resp(500, &[]), "p", "m".into()).is_failover_safe());
    }

    #[test]
    fn urls_are_redacted() {
        let u = url::Url::parse("https://user:pw@api.example.com:8443/v1/x?key=SECRET").unwrap();
        let s = redact_url(&u);
        assert_eq!(s, "https://api.example.com:8443/v1/x?[redacted]");
        assert!(!s.contains("SECRET") && !s.contains("pw"));
    }

    #[test]
    fn json_decode_errors_are_provider_errors() {
        let mut r = resp(200, &[]);
        r.body = Bytes::from_static(b"not json");
        let e = r.json::<serde_json::Value>().unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Provider);
    }

    #[test]
    fn base_urls_are_https_or_http_to_loopback() {
        for ok in [
            "https://api.stripe.com",
            "https://api.example.com/v1/",
            "http://127.0.0.1:8080",
            "http://127.3.4.5",
            "http://localhost:4566",
            "http://LOCALHOST",
            "http://[::1]:9000",
        ] {
            assert!(check_base_url("S", ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "http://api.stripe.com",
            "http://10.0.0.1",
            "http://localhost.evil.com",
            "http://127.0.0.1.nip.io",
            "http://[::ffff:7f00:1]",
            "ftp://127.0.0.1",
            "https://user:pw@api.example.com",
            "https://api.example.com/?x=1",
            "https://api.example.com/#x",
            "not a url",
            "/relative",
            "",
        ] {
            let e = check_base_url("SETTING", bad, false).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Configuration, "{bad}");
            assert_eq!(e.field(), Some("SETTING"), "{bad}");
            assert!(!e.to_string().contains("pw"), "{e}");
        }
        // The explicit opt-in allows plain http elsewhere; nothing else changes.
        assert!(check_base_url("S", "http://emulator.internal:4566", true).is_ok());
        assert!(check_base_url("S", "ftp://emulator.internal", true).is_err());
        assert!(check_base_url("S", "http://u:p@emulator.internal", true).is_err());
    }
}
