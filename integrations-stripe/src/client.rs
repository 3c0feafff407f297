//! The HTTP client and the one [`parse_error`].
//!
//! Every request goes through [`integrations_core::http::send`] under the client's
//! [`Policy`] (rate limit → circuit breaker → retry → per-attempt timeout) and carries:
//!
//! * `Authorization: Bearer <key>` (a header marked sensitive, never logged or printed),
//! * `Stripe-Version: <pinned version>` and, for Connect, `Stripe-Account`,
//! * for every `POST`, the caller's `Idempotency-Key`, **the same on every attempt**, so a retry
//!   after a lost response is replayed by Stripe instead of charging twice.
//!
//! Endpoints without a typed call (Checkout Sessions, SetupIntents, Subscriptions, …) go through
//! [`StripeClient::request`] / [`StripeClient::request_json`]: the same policy, headers,
//! idempotency rules and [`parse_error`], with [`RequestOptions`] for the key and a per-request
//! `Stripe-Account`. [`StripeClient::for_account`] gives the typed calls a per-request
//! `Stripe-Account` too.

use std::fmt;
use std::sync::Arc;

use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method};
use integrations_core::http::{
    HttpClient, HttpResponse, parse_retry_after, send_via, status_error,
};
use integrations_core::resilience::Attempt;
use integrations_core::{Error, IdempotencyKey, Policy, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::PROVIDER;
use crate::config::{Mode, StripeBuilder};
use crate::types::{ApiError, ErrorBody};

/// A Stripe API client. Cheap to clone (one `Arc`); share it.
///
/// The operations live in [`crate::api`]: payment intents, refunds, customers, events and
/// auto-paginating lists. `Debug` shows the base URL, mode and version, never the key.
#[derive(Clone)]
pub struct StripeClient {
    inner: Arc<Inner>,
    /// Sent as `Stripe-Account`; per handle, so [`StripeClient::for_account`] is a cheap clone.
    account: Option<Arc<str>>,
}

struct Inner {
    http: HttpClient,
    policy: Policy,
    base: String,
    auth: HeaderValue,
    mode: Mode,
    version: String,
}

impl fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &*self.inner;
        f.debug_struct("StripeClient")
            .field("base", &i.base)
            .field("mode", &i.mode)
            .field("api_version", &i.version)
            .field("account", &self.account)
            .field("policy", &i.policy)
            .finish_non_exhaustive()
    }
}

impl StripeClient {
    /// A [`StripeBuilder`].
    pub fn builder() -> StripeBuilder {
        StripeBuilder::new()
    }

    pub(crate) fn from_parts(
        http: HttpClient,
        policy: Policy,
        base: String,
        key: &str,
        mode: Mode,
        version: String,
        account: Option<String>,
    ) -> Result<Self> {
        // The key was validated as `[A-Za-z0-9_]`, so this cannot fail; map it anyway.
        let mut auth = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
            Error::configuration(crate::config::ENV_SECRET_KEY, "is not a valid header value")
                .with_provider(PROVIDER)
        })?;
        auth.set_sensitive(true);
        Ok(StripeClient {
            inner: Arc::new(Inner {
                http,
                policy,
                base,
                auth,
                mode,
                version,
            }),
            account: account.map(Arc::from),
        })
    }

    /// Test or live mode, from the key.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// The pinned `Stripe-Version`.
    pub fn api_version(&self) -> &str {
        &self.inner.version
    }

    /// The connected account sent as `Stripe-Account`, if any.
    pub fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    /// This client acting as the connected account `account` (Connect platforms): every call
    /// made through the returned handle, typed or [`request`](Self::request), sends
    /// `Stripe-Account: {account}` instead of the client's own. A cheap clone sharing the
    /// connection pool, policy, rate limiter and breaker.
    ///
    /// ```no_run
    /// # async fn demo(client: integrations_stripe::StripeClient) -> integrations_core::Result<()> {
    /// let customer = client.for_account("acct_1Connected")?.retrieve_customer("cus_1").await?;
    /// # let _ = customer; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `stripe_account` when `account` is not `acct_…`.
    pub fn for_account(&self, account: &str) -> Result<StripeClient> {
        check_account(account)?;
        Ok(StripeClient {
            inner: Arc::clone(&self.inner),
            account: Some(Arc::from(account)),
        })
    }

    /// The resilience policy every call runs under (its metrics, breaker state, …).
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// `GET {base}{path}?{query}`, decoded as `T`.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        path: &str,
        query: &str,
    ) -> Result<T> {
        self.execute(operation, Method::GET, path, query, None, Extra::default())
            .await
    }

    /// `POST {base}{path}` with a form `body` and the caller's idempotency key.
    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        path: &str,
        body: String,
        key: &IdempotencyKey,
    ) -> Result<T> {
        let extra = Extra {
            key: Some(key),
            account: None,
        };
        self.execute(operation, Method::POST, path, "", Some(body), extra)
            .await
    }

    /// Any Stripe API call, decoded as `T`: for the endpoints without a typed call (Checkout
    /// Sessions, SetupIntents, Subscriptions, …), under the same policy as the typed calls.
    ///
    /// * `method`: `GET`, `POST` or `DELETE`.
    /// * `path`: a relative API path, `/v1/…` (letters, digits, `_`, `-`, `.`, `/`; no scheme,
    ///   host, query, `..` or empty segment). Put ids in it only after checking them.
    /// * `params`: form-encoded the way the typed calls are (`metadata[k]=v`, indexed arrays,
    ///   `expand[0]=…`): the body of a `POST`, the query string of a `GET`/`DELETE`. Anything
    ///   [`Serialize`] that is a map: a struct, a `BTreeMap`, a `serde_json::json!({…})` object;
    ///   `&()` for none.
    /// * `options`: a `POST` needs [`RequestOptions::idempotency_key`], sent as
    ///   `Idempotency-Key` on every attempt, so a retry is replayed by Stripe, never executed
    ///   twice; `GET`/`DELETE` send none (Stripe ignores it there). An optional
    ///   [`RequestOptions::stripe_account`] overrides the client's `Stripe-Account`.
    ///
    /// Errors are mapped by [`parse_error`], as for every typed call.
    ///
    /// ```no_run
    /// use integrations_core::IdempotencyKey;
    /// use integrations_stripe::client::RequestOptions;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct SetupIntent { id: String, status: String }
    ///
    /// # async fn demo(client: integrations_stripe::StripeClient) -> integrations_core::Result<()> {
    /// let seti: SetupIntent = client
    ///     .request(http::Method::GET, "/v1/setup_intents/seti_1", &(), RequestOptions::new())
    ///     .await?;
    /// # let _ = (seti.id, seti.status); Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Before any request, [`Error::InvalidInput`] naming `path` (not a relative `/v1/` path),
    /// `method` (not `GET`/`POST`/`DELETE`), `idempotency_key` (a `POST` without one),
    /// `stripe_account` (not `acct_…`) or `params` (not a map, or not form-encodable). Then every error of
    /// [`parse_error`], and [`Error::Provider`] when the response is not a `T`.
    pub async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        params: &impl Serialize,
        options: RequestOptions,
    ) -> Result<T> {
        check_api_path(path)?;
        if let Some(account) = &options.stripe_account {
            check_account(account)?;
        }
        let encoded = encode_params(params)?;
        let account = options.stripe_account.as_deref();
        if method == Method::POST {
            let key = options.idempotency_key.as_ref().ok_or_else(|| {
                Error::invalid_input(
                    "idempotency_key",
                    "a POST needs an idempotency key (RequestOptions::idempotency_key), derived \
                     from the business operation so a retry is replayed, not executed twice",
                )
                .with_provider(PROVIDER)
            })?;
            let extra = Extra {
                key: Some(key),
                account,
            };
            self.execute("request", method, path, "", Some(encoded), extra)
                .await
        } else if method == Method::GET || method == Method::DELETE {
            let extra = Extra { key: None, account };
            self.execute("request", method, path, &encoded, None, extra)
                .await
        } else {
            Err(Error::invalid_input(
                "method",
                format!("`{method}` is not a Stripe API method (GET, POST, DELETE)"),
            )
            .with_provider(PROVIDER))
        }
    }

    /// [`request`](Self::request), decoded as a [`serde_json::Value`].
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub async fn request_json(
        &self,
        method: Method,
        path: &str,
        params: &impl Serialize,
        options: RequestOptions,
    ) -> Result<serde_json::Value> {
        self.request(method, path, params, options).await
    }

    async fn execute<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        query: &str,
        body: Option<String>,
        extra: Extra<'_>,
    ) -> Result<T> {
        let i = &*self.inner;
        let key = extra.key;
        // A per-request account overrides the handle's.
        let account = extra.account.or(self.account.as_deref());
        let url = if query.is_empty() {
            format!("{}{path}", i.base)
        } else {
            format!("{}{path}?{query}", i.base)
        };
        let body = body.map(bytes::Bytes::from);
        let build = |_attempt: &Attempt| {
            let mut rb = i
                .http
                .request(method.clone(), &url)
                .header(AUTHORIZATION, i.auth.clone())
                .header("Stripe-Version", i.version.as_str());
            if let Some(account) = account {
                rb = rb.header("Stripe-Account", account);
            }
            if let Some(key) = key {
                // One key for every attempt: this is what makes the retry safe.
                rb = rb.header("Idempotency-Key", key.as_str());
            }
            if let Some(body) = &body {
                rb = rb
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body.clone());
            }
            rb
        };
        let resp = send_via(&i.http, &i.policy, operation, build, parse_error)
            .await
            .map_err(|e| e.or_provider(PROVIDER))?;
        decode(&resp, operation)
    }
}

/// The per-call headers of [`StripeClient::execute`].
#[derive(Default)]
struct Extra<'a> {
    /// `Idempotency-Key` (every `POST`).
    key: Option<&'a IdempotencyKey>,
    /// `Stripe-Account` overriding the handle's.
    account: Option<&'a str>,
}

/// Options of one [`StripeClient::request`]: the idempotency key and a per-request
/// `Stripe-Account`.
///
/// ```
/// use integrations_core::IdempotencyKey;
/// use integrations_stripe::client::RequestOptions;
///
/// let options = RequestOptions::new()
///     .idempotency_key(IdempotencyKey::derive("order-42", "checkout")?)
///     .stripe_account("acct_1Connected");
/// assert_eq!(options.account(), Some("acct_1Connected"));
/// # Ok::<(), integrations_core::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestOptions {
    idempotency_key: Option<IdempotencyKey>,
    stripe_account: Option<String>,
}

impl RequestOptions {
    /// No key, the client's account.
    pub fn new() -> Self {
        Self::default()
    }

    /// The `Idempotency-Key` of a `POST` (required there; not sent on `GET`/`DELETE`). Derive
    /// it from the business operation ([`IdempotencyKey::derive`]), never from the clock.
    #[must_use]
    pub fn idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    /// The connected account (`acct_…`) this request acts as, overriding the client's
    /// `Stripe-Account`.
    #[must_use]
    pub fn stripe_account(mut self, account: impl Into<String>) -> Self {
        self.stripe_account = Some(account.into());
        self
    }

    /// The idempotency key, if set.
    pub fn key(&self) -> Option<&IdempotencyKey> {
        self.idempotency_key.as_ref()
    }

    /// The per-request account, if set.
    pub fn account(&self) -> Option<&str> {
        self.stripe_account.as_deref()
    }
}

/// A relative Stripe API path: `/v1/` then segments of `[A-Za-z0-9_.-]`, none empty, `.` or
/// `..`. No scheme, host, query, fragment, percent-escape or backslash can get through.
fn check_api_path(path: &str) -> Result<()> {
    let ok = path.strip_prefix("/v1/").is_some_and(|rest| {
        !rest.is_empty()
            && rest.split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            })
    });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(
            "path",
            format!(
                "`{path}` is not a relative Stripe API path (`/v1/…`: letters, digits, `_`, `-`, \
                 `.`, no `..`, scheme, host or query; pass parameters as `params`)"
            ),
        )
        .with_provider(PROVIDER))
    }
}

/// `params` as a form body or query: a map (struct, map, JSON object), or `()`/`None` for none.
/// Anything else (a sequence, a scalar) would be encoded as `0[0]=…` nonsense, so it is refused.
fn encode_params(params: &impl Serialize) -> Result<String> {
    let shape = serde_json::to_value(params).map_err(|e| {
        Error::invalid_input("params", format!("cannot serialise the parameters: {e}"))
            .with_provider(PROVIDER)
            .with_source(e)
    })?;
    match shape {
        serde_json::Value::Null => Ok(String::new()),
        serde_json::Value::Object(m) if m.is_empty() => Ok(String::new()),
        serde_json::Value::Object(_) => crate::form::encode(params),
        other => Err(Error::invalid_input(
            "params",
            format!("parameters must be a map (a struct, a map or a JSON object), not `{other}`"),
        )
        .with_provider(PROVIDER)),
    }
}

/// `acct_` then letters and digits.
fn check_account(account: &str) -> Result<()> {
    match account.strip_prefix("acct_") {
        Some(rest) if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()) => Ok(()),
        _ => Err(Error::invalid_input(
            "stripe_account",
            format!("`{account}` is not a connected account id (acct_…)"),
        )
        .with_provider(PROVIDER)),
    }
}

fn decode<T: DeserializeOwned>(resp: &HttpResponse, operation: &'static str) -> Result<T> {
    serde_json::from_slice(&resp.body).map_err(|e| {
        let mut err = Error::provider(format!("unexpected {operation} response: {e}"))
            .with_provider(PROVIDER)
            .with_operation(operation)
            .with_status(resp.status.as_u16());
        if let Some(id) = resp.header("request-id") {
            err = err.with_request_id(id);
        }
        err.with_source(e)
    })
}

/// Maps a non-2xx Stripe response to an [`Error`]: the one place Stripe's errors get a meaning.
///
/// | Stripe says | error | retried |
/// |---|---|---|
/// | `card_error` (402) | [`Error::Declined`] with `code` and `decline_code` | no |
/// | `idempotency_error`, 400 (key reused with other parameters) | [`Error::Conflict`] | no |
/// | 409 (a concurrent request holds the key or object) | [`Error::Conflict`] | yes |
/// | 401 / `authentication_error` | [`Error::Unauthenticated`] | no |
/// | 403 / `permission_error` | [`Error::Forbidden`] | no |
/// | 404 | [`Error::NotFound`] | no |
/// | 429 / `rate_limit_error` | [`Error::RateLimited`] with `Retry-After` | yes |
/// | 5xx / `api_error` | [`Error::Unavailable`] | yes |
/// | over-refund (`amount_too_large`, `charge_already_refunded`, "Refund amount … is greater than unrefunded amount") | [`Error::InvalidInput`] naming `amount` | no |
/// | other 400 `invalid_request_error` | [`Error::InvalidInput`] naming Stripe's `param` (or `request`) | no |
///
/// `Stripe-Should-Retry: true|false` overrides the retry column. Every error carries the
/// provider, HTTP status, Stripe's `code` and the `Request-Id`. Connection errors are mapped by
/// core (retryable).
pub fn parse_error(resp: &HttpResponse) -> Error {
    let status = resp.status.as_u16();
    let api = serde_json::from_slice::<ErrorBody>(&resp.body)
        .ok()
        .map(|b| b.error);
    let mut err = match &api {
        Some(api) => from_api_error(status, api, resp),
        None => {
            let text = resp.text();
            let snippet: String = text.chars().take(200).collect();
            status_error(resp, PROVIDER, format!("HTTP {status}: {snippet}"))
        }
    };
    err = err.with_provider(PROVIDER).with_status(status);
    if let Some(code) = api.as_ref().and_then(|a| a.code.as_deref()) {
        err = err.with_code(code);
    }
    if let Some(id) = resp.header("request-id") {
        err = err.with_request_id(id);
    }
    if let Some(hint) = resp.header("stripe-should-retry") {
        match hint.trim() {
            "true" => err = err.with_retry_hint(true),
            "false" => err = err.with_retry_hint(false),
            _ => {}
        }
    }
    err
}

fn from_api_error(status: u16, api: &ApiError, resp: &HttpResponse) -> Error {
    let message = api
        .message
        .clone()
        .unwrap_or_else(|| format!("Stripe {} (HTTP {status})", api.type_));
    match (api.type_.as_str(), status) {
        ("card_error", _) | (_, 402) => {
            // Name the intent: after a decline on `confirm=true` creation it is the caller's
            // only handle on the payment intent that now exists.
            let message = match &api.payment_intent {
                Some(pi) if !message.contains(pi.as_str()) => {
                    format!("{message} (payment_intent {pi})")
                }
                _ => message,
            };
            Error::declined(api.code.clone(), api.decline_code.clone(), message)
        }
        // A concurrent request with the same key: it will finish, then the retry is replayed.
        ("idempotency_error", 409) => Error::conflict(message).with_retry_hint(true),
        // The key was used with other parameters: retrying cannot help.
        ("idempotency_error", _) => Error::conflict(message).with_retry_hint(false),
        ("authentication_error", _) | (_, 401) => Error::unauthenticated(message),
        ("permission_error", _) | (_, 403) => Error::forbidden(message),
        (_, 404) => Error::not_found(message),
        ("rate_limit_error", _) | (_, 429) => {
            Error::rate_limited(parse_retry_after(&resp.headers), message).not_processed()
        }
        (_, 409) => Error::conflict(message).with_retry_hint(true),
        ("api_error", _) | (_, 500..=599) => Error::unavailable(message),
        ("invalid_request_error", _) | (_, 400) if is_over_refund(api) => {
            let e = Error::invalid_input("amount", message);
            // Same error as the local pre-check (`check_refund`), whichever caught it.
            if api.code.is_none() {
                e.with_code("amount_too_large")
            } else {
                e
            }
        }
        ("invalid_request_error", _) | (_, 400) => {
            let field = api.param.clone().unwrap_or_else(|| "request".to_owned());
            Error::invalid_input(field, message)
        }
        _ => status_error(resp, PROVIDER, message),
    }
}

fn is_over_refund(api: &ApiError) -> bool {
    matches!(
        api.code.as_deref(),
        Some("amount_too_large" | "charge_already_refunded")
    ) || api
        .message
        .as_deref()
        .is_some_and(|m| m.contains("greater than unrefunded amount"))
}

/// Checks an id before it becomes a path segment: Stripe ids are `[A-Za-z0-9_]`, so nothing else
/// can reach the URL path (no `/`, `..` or `?` smuggled in).
pub(crate) fn path_id<'a>(field: &'static str, id: &'a str) -> Result<&'a str> {
    if !id.is_empty()
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(id)
    } else {
        Err(Error::invalid_input(
            field,
            format!("`{id}` is not a Stripe id (letters, digits and `_` only)"),
        )
        .with_provider(PROVIDER))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use http::{HeaderMap, StatusCode};
    use integrations_core::ErrorKind;

    use super::*;

    fn resp(status: u16, headers: &[(&'static str, &str)], body: &str) -> HttpResponse {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        HttpResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: h,
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    #[test]
    fn status_and_type_mapping() {
        let cases: [(u16, &str, ErrorKind, bool); 12] = [
            (
                402,
                r#"{"error":{"type":"card_error","code":"card_declined"}}"#,
                ErrorKind::Declined,
                false,
            ),
            (
                400,
                r#"{"error":{"type":"idempotency_error"}}"#,
                ErrorKind::Conflict,
                false,
            ),
            (
                409,
                r#"{"error":{"type":"idempotency_error"}}"#,
                ErrorKind::Conflict,
                true,
            ),
            (
                409,
                r#"{"error":{"type":"invalid_request_error","code":"lock_timeout"}}"#,
                ErrorKind::Conflict,
                true,
            ),
            (
                401,
                r#"{"error":{"type":"invalid_request_error"}}"#,
                ErrorKind::Unauthenticated,
                false,
            ),
            (
                403,
                r#"{"error":{"type":"invalid_request_error"}}"#,
                ErrorKind::Forbidden,
                false,
            ),
            (
                404,
                r#"{"error":{"type":"invalid_request_error","code":"resource_missing"}}"#,
                ErrorKind::NotFound,
                false,
            ),
            (
                429,
                r#"{"error":{"type":"invalid_request_error","code":"rate_limit"}}"#,
                ErrorKind::RateLimited,
                true,
            ),
            (
                500,
                r#"{"error":{"type":"api_error"}}"#,
                ErrorKind::Unavailable,
                true,
            ),
            (
                503,
                "<html>bad gateway</html>",
                ErrorKind::Unavailable,
                true,
            ),
            (
                400,
                r#"{"error":{"type":"invalid_request_error","param":"currency"}}"#,
                ErrorKind::InvalidInput,
                false,
            ),
            (418, "teapot", ErrorKind::Provider, false),
        ];
        for (status, body, kind, retryable) in cases {
            let e = parse_error(&resp(status, &[("request-id", "req_1")], body));
            assert_eq!(e.kind(), kind, "{status} {body}");
            assert_eq!(e.is_retryable(), retryable, "{status} {body}");
            assert_eq!(e.status(), Some(status));
            assert_eq!(e.request_id(), Some("req_1"));
            assert_eq!(e.provider_name(), Some(PROVIDER));
        }
    }

    #[test]
    fn should_retry_header_overrides() {
        let body = r#"{"error":{"type":"api_error","message":"boom"}}"#;
        let e = parse_error(&resp(500, &[("stripe-should-retry", "false")], body));
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(!e.is_retryable());
        let body = r#"{"error":{"type":"invalid_request_error","message":"lock"}}"#;
        let e = parse_error(&resp(400, &[("stripe-should-retry", "true")], body));
        assert!(e.is_retryable());
        let e = parse_error(&resp(500, &[("stripe-should-retry", "maybe")], "{}"));
        assert!(e.is_retryable());
    }

    #[test]
    fn over_refund_names_amount() {
        for body in [
            r#"{"error":{"type":"invalid_request_error","param":"amount","message":"Refund amount ($60.00) is greater than unrefunded amount on charge ($50.00)"}}"#,
            r#"{"error":{"type":"invalid_request_error","code":"amount_too_large","message":"too much"}}"#,
            r#"{"error":{"type":"invalid_request_error","code":"charge_already_refunded","message":"Charge ch_1 has already been refunded."}}"#,
        ] {
            let e = parse_error(&resp(400, &[], body));
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{body}");
            assert_eq!(e.field(), Some("amount"), "{body}");
            assert!(e.code().is_some(), "{body}");
        }
    }

    #[test]
    fn rate_limit_keeps_retry_after() {
        let e = parse_error(&resp(
            429,
            &[("retry-after", "2")],
            r#"{"error":{"type":"invalid_request_error","code":"rate_limit"}}"#,
        ));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(e.code(), Some("rate_limit"));
        assert!(e.is_failover_safe());
    }

    #[test]
    fn raw_paths_and_accounts_are_checked() {
        for good in [
            "/v1/checkout/sessions",
            "/v1/setup_intents/seti_1/confirm",
            "/v1/billing_portal/sessions",
            "/v1/subscription_items/si_1.x-y",
        ] {
            assert!(check_api_path(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/v1/",
            "v1/customers",
            "/v2/customers",
            "https://evil.example/v1/customers",
            "//evil.example/v1/customers",
            "/v1/../admin",
            "/v1/customers/..",
            "/v1/./customers",
            "/v1//customers",
            "/v1/customers?expand[]=x",
            "/v1/customers#x",
            "/v1/customers/%2e%2e",
            "/v1/customers\\x",
            "/v1/cus tomers",
        ] {
            assert_eq!(
                check_api_path(bad).unwrap_err().field(),
                Some("path"),
                "{bad}"
            );
        }
        assert!(check_account("acct_1Abc").is_ok());
        for bad in ["", "acct_", "cus_1", "acct_1\r\nX: y"] {
            assert_eq!(
                check_account(bad).unwrap_err().field(),
                Some("stripe_account"),
                "{bad}"
            );
        }
        assert_eq!(encode_params(&()).unwrap(), "");
        assert_eq!(encode_params(&None::<u8>).unwrap(), "");
        assert_eq!(encode_params(&serde_json::json!({})).unwrap(), "");
        let map = std::collections::BTreeMap::from([("limit", "3")]);
        assert_eq!(encode_params(&map).unwrap(), "limit=3");
        for bad in [serde_json::json!([["limit", "3"]]), serde_json::json!(3)] {
            assert_eq!(encode_params(&bad).unwrap_err().field(), Some("params"));
        }
    }

    #[test]
    fn ids_are_checked_before_they_reach_a_path() {
        assert!(path_id("id", "pi_3MtwBwLkdIwHu7ix28a3tqPa").is_ok());
        for bad in ["", "pi_1/../customers", "pi_1?expand=x", "pi 1", "é"] {
            assert_eq!(path_id("id", bad).unwrap_err().field(), Some("id"), "{bad}");
        }
    }
}
