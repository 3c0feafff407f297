//! The Sheets HTTP client ([`GoogleSheetsClient`]) and the crate's one [`parse_error`].

use std::sync::Arc;

use integrations_core::http::{self, HttpClient, HttpResponse};
use integrations_core::provider::Cell;
use integrations_core::{Error, ErrorKind, Policy, Result};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use crate::PROVIDER;
use crate::a1::A1Range;
use crate::auth::{AccessToken, TokenSource};
use crate::values::{
    AppendResponse, BatchGetWire, BatchUpdateResponse, UpdateResponse, ValueInputOption,
    ValueRange, ValueRangeWire, ValueRenderOption, rows_to_json,
};

/// Everything but RFC 3986 unreserved characters is escaped in a path segment (so `!`, `:`, `'`,
/// `/` and spaces in ranges and sheet names survive).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A Google Sheets `spreadsheets.values` client bound to one spreadsheet. Cheap to clone.
///
/// Reads go through the read policy and writes through the write policy (each with its own
/// per-minute rate limiter, as Google counts them separately). Every call carries a cached
/// service-account access token; a `401` refreshes the token once and repeats the call.
///
/// [`append`](GoogleSheetsClient::append) is not idempotent at Google, so it only retries failures
/// where the rows certainly did not land (429, refused connections, 503); the
/// [`GoogleSheetsSink`](crate::GoogleSheetsSink) adds key-checked retries on top.
#[derive(Clone)]
pub struct GoogleSheetsClient {
    inner: Arc<Inner>,
    value_input: ValueInputOption,
}

pub(crate) struct Inner {
    pub(crate) http: HttpClient,
    pub(crate) base_url: String,
    pub(crate) spreadsheet_id: String,
    pub(crate) tokens: TokenSource,
    pub(crate) write_policy: Policy,
    pub(crate) read_policy: Policy,
}

impl std::fmt::Debug for GoogleSheetsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleSheetsClient")
            .field("base_url", &self.inner.base_url)
            .field("spreadsheet_id", &self.inner.spreadsheet_id)
            .field("tokens", &self.inner.tokens)
            .field("value_input", &self.value_input)
            .finish_non_exhaustive()
    }
}

impl GoogleSheetsClient {
    pub(crate) fn from_parts(inner: Inner, value_input: ValueInputOption) -> Self {
        GoogleSheetsClient {
            inner: Arc::new(inner),
            value_input,
        }
    }

    /// The spreadsheet this client writes to.
    pub fn spreadsheet_id(&self) -> &str {
        &self.inner.spreadsheet_id
    }
    /// The account the client authenticates as, when its [`TokenProvider`](crate::token::TokenProvider)
    /// knows it without a request (a service account's email; `None` for the metadata server and
    /// user credentials).
    pub fn client_email(&self) -> Option<&str> {
        self.inner.tokens.principal()
    }
    /// How written strings are interpreted.
    pub fn value_input(&self) -> ValueInputOption {
        self.value_input
    }
    /// The same client, writing with `option`.
    #[must_use]
    pub fn with_value_input(&self, option: ValueInputOption) -> Self {
        GoogleSheetsClient {
            inner: Arc::clone(&self.inner),
            value_input: option,
        }
    }
    /// The policy writes run under.
    pub fn write_policy(&self) -> &Policy {
        &self.inner.write_policy
    }
    /// The policy reads run under.
    pub fn read_policy(&self) -> &Policy {
        &self.inner.read_policy
    }
    /// Tokens fetched so far (each one a request to the token endpoint or metadata server).
    pub fn token_exchanges(&self) -> u64 {
        self.inner.tokens.fetches()
    }

    fn values_url(&self, range: &A1Range, suffix: &str) -> String {
        format!(
            "{}v4/spreadsheets/{}/values/{}{suffix}",
            self.inner.base_url,
            utf8_percent_encode(&self.inner.spreadsheet_id, SEGMENT),
            utf8_percent_encode(&range.to_string(), SEGMENT),
        )
    }

    /// Runs a request under `policy` with a bearer token; a 401 refreshes the token and repeats
    /// the call once.
    async fn send<B>(
        &self,
        policy: &Policy,
        operation: &'static str,
        build: B,
    ) -> Result<HttpResponse>
    where
        B: Fn(&str) -> reqwest::RequestBuilder + Send + Sync,
    {
        let token = self.inner.tokens.token().await?;
        let first = http::send_via(
            &self.inner.http,
            policy,
            operation,
            |_| build(token.secret()),
            parse_error,
        )
        .await;
        match first {
            Err(e) if e.status() == Some(401) => {
                tracing::debug!(
                    provider = PROVIDER,
                    operation,
                    "401: refreshing the access token and repeating once"
                );
                self.inner.tokens.invalidate(&token);
                let token = self.inner.tokens.token().await?;
                http::send_via(
                    &self.inner.http,
                    policy,
                    operation,
                    |_| build(token.secret()),
                    parse_error,
                )
                .await
            }
            other => other,
        }
    }

    /// Reads `range` as displayed (`FORMATTED_VALUE`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (field `range`) for a range Google cannot parse or an unknown sheet,
    /// [`Error::NotFound`] for an unknown spreadsheet, auth and transport errors, and the read
    /// policy's own.
    pub async fn get(&self, range: &A1Range) -> Result<ValueRange> {
        self.get_with(range, ValueRenderOption::FormattedValue)
            .await
    }

    /// Reads `range`, rendered per `render`.
    ///
    /// # Errors
    /// As [`GoogleSheetsClient::get`].
    pub async fn get_with(&self, range: &A1Range, render: ValueRenderOption) -> Result<ValueRange> {
        let url = self.values_url(range, "");
        let resp = self
            .send(&self.inner.read_policy, "values.get", |token| {
                self.inner.http.get(&url).bearer_auth(token).query(&[
                    ("majorDimension", "ROWS"),
                    ("valueRenderOption", render.as_str()),
                ])
            })
            .await?;
        Ok(resp.json::<ValueRangeWire>()?.into())
    }

    /// Reads several ranges in one request (`values.batchGet`, displayed values): one read
    /// against the quota, the answers in the order of `ranges`. The ranges travel in the query
    /// string, so keep a request to a few hundred of them (the
    /// [`GoogleSheetsSink`](crate::GoogleSheetsSink) asks for at most
    /// [`BATCH_GET_RANGES`](Self::BATCH_GET_RANGES) at once).
    ///
    /// # Errors
    /// As [`GoogleSheetsClient::get`]; one bad range fails the whole request.
    pub async fn batch_get(&self, ranges: &[A1Range]) -> Result<Vec<ValueRange>> {
        let url = format!(
            "{}v4/spreadsheets/{}/values:batchGet",
            self.inner.base_url,
            utf8_percent_encode(&self.inner.spreadsheet_id, SEGMENT)
        );
        let mut query: Vec<(&str, String)> = Vec::with_capacity(ranges.len() + 2);
        query.extend(ranges.iter().map(|r| ("ranges", r.to_string())));
        query.push(("majorDimension", "ROWS".to_owned()));
        query.push((
            "valueRenderOption",
            ValueRenderOption::FormattedValue.as_str().to_owned(),
        ));
        let resp = self
            .send(&self.inner.read_policy, "values.batchGet", |token| {
                self.inner.http.get(&url).bearer_auth(token).query(&query)
            })
            .await?;
        let body: BatchGetWire = resp.json()?;
        Ok(body
            .value_ranges
            .into_iter()
            .map(ValueRange::from)
            .collect())
    }

    /// The most ranges the sink puts in one [`batch_get`](Self::batch_get).
    pub const BATCH_GET_RANGES: usize = 100;

    /// Writes `rows` into `range` (`values.update`), starting at its top-left cell.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the rows do not fit a closed range or the range is bad; as
    /// [`GoogleSheetsClient::get`] otherwise (under the write policy).
    pub async fn update(&self, range: &A1Range, rows: &[Vec<Cell>]) -> Result<UpdateResponse> {
        let url = self.values_url(range, "");
        let body = json!({"range": range.to_string(), "majorDimension": "ROWS", "values": rows_to_json(rows)});
        let input = self.value_input.as_str();
        let resp = self
            .send(&self.inner.write_policy, "values.update", |token| {
                self.inner
                    .http
                    .put(&url)
                    .bearer_auth(token)
                    .query(&[("valueInputOption", input)])
                    .json(&body)
            })
            .await?;
        resp.json()
    }

    /// Writes several ranges in one request (`values.batchUpdate`): one write against the quota.
    ///
    /// # Errors
    /// As [`GoogleSheetsClient::update`]; Google applies all ranges or none.
    pub async fn batch_update(
        &self,
        data: &[(A1Range, Vec<Vec<Cell>>)],
    ) -> Result<BatchUpdateResponse> {
        let url = format!(
            "{}v4/spreadsheets/{}/values:batchUpdate",
            self.inner.base_url,
            utf8_percent_encode(&self.inner.spreadsheet_id, SEGMENT)
        );
        let body = json!({
            "valueInputOption": self.value_input.as_str(),
            "data": data.iter().map(|(range, rows)| json!({
                "range": range.to_string(), "majorDimension": "ROWS", "values": rows_to_json(rows),
            })).collect::<Vec<_>>(),
        });
        let resp = self
            .send(&self.inner.write_policy, "values.batchUpdate", |token| {
                self.inner.http.post(&url).bearer_auth(token).json(&body)
            })
            .await?;
        resp.json()
    }

    /// Appends `rows` after the table found in `range` (`values.append`, `INSERT_ROWS`).
    ///
    /// An append is not idempotent: after a timeout or a dropped connection the rows may or may
    /// not be there, so such failures are returned, not retried. Retried are only failures where
    /// Google certainly did not act (429, refused connections, 503, 401 after a token refresh).
    /// The [`GoogleSheetsSink`](crate::GoogleSheetsSink) checks the key column before re-appending.
    ///
    /// # Errors
    /// As [`GoogleSheetsClient::update`]; [`Error::Timeout`] / [`Error::Unavailable`] when the
    /// outcome is unknown.
    pub async fn append(&self, range: &A1Range, rows: &[Vec<Cell>]) -> Result<AppendResponse> {
        let values = rows_to_json(rows);
        self.inner
            .write_policy
            .call_classified(
                "values.append",
                |e| e.is_retryable() && !may_have_landed(e),
                |attempt| self.append_attempt(attempt.number, range, &values),
            )
            .await
    }

    /// One `values.append` exchange, outside any policy (the caller runs it under one), with the
    /// 401 refresh. `values` is the JSON `values` array.
    pub(crate) async fn append_attempt(
        &self,
        attempt: u32,
        range: &A1Range,
        values: &Value,
    ) -> Result<AppendResponse> {
        let url = self.values_url(range, ":append");
        let body = json!({"range": range.to_string(), "majorDimension": "ROWS", "values": values});
        let input = self.value_input.as_str();
        let request = |token: &AccessToken| {
            self.inner
                .http
                .post(&url)
                .bearer_auth(token.secret())
                .query(&[
                    ("valueInputOption", input),
                    ("insertDataOption", "INSERT_ROWS"),
                ])
                .json(&body)
        };
        let token = self.inner.tokens.token().await?;
        let resp = match self.exchange_once(attempt, request(&token)).await {
            Err(e) if e.status() == Some(401) => {
                self.inner.tokens.invalidate(&token);
                let token = self.inner.tokens.token().await?;
                self.exchange_once(attempt, request(&token)).await?
            }
            other => other?,
        };
        resp.json()
    }

    /// One `values.append` exchange through the builder's client (its middleware included),
    /// outside any policy: core's transport mapping and redaction, non-2xx by [`parse_error`].
    async fn exchange_once(
        &self,
        attempt: u32,
        req: reqwest::RequestBuilder,
    ) -> Result<HttpResponse> {
        http::send_once(
            &self.inner.http,
            PROVIDER,
            "values.append",
            attempt,
            req,
            parse_error,
        )
        .await
    }
}

/// Whether a failed write may nevertheless have been carried out: timeouts, connections lost after
/// sending, 5xx other than 503, and undecodable success answers.
pub(crate) fn may_have_landed(e: &Error) -> bool {
    !e.context().not_processed
        && matches!(
            e.kind(),
            ErrorKind::Timeout | ErrorKind::Unavailable | ErrorKind::Provider
        )
}

/// Maps a non-2xx answer of the Sheets API or of the OAuth token endpoint to an [`Error`].
///
/// * API errors `{"error":{"code","message","status","details"}}` by their `status`:
///   `INVALID_ARGUMENT`/`FAILED_PRECONDITION`/`OUT_OF_RANGE` → invalid input (field `range` for
///   "Unable to parse range"), `UNAUTHENTICATED` → unauthenticated, `PERMISSION_DENIED` →
///   forbidden, `NOT_FOUND` → not found, `ALREADY_EXISTS`/`ABORTED` → conflict (`ABORTED`
///   retryable), `RESOURCE_EXHAUSTED` → rate limited (with `Retry-After` when sent, not
///   processed), `UNAVAILABLE` → unavailable (not processed), `INTERNAL`/`UNKNOWN` → unavailable,
///   `DEADLINE_EXCEEDED` → timeout. The code is the `status`, or the `ErrorInfo` reason
///   (`RATE_LIMIT_EXCEEDED`) when there is one.
/// * OAuth errors `{"error":"invalid_grant","error_description"}`: `invalid_grant`,
///   `invalid_client`, `unauthorized_client`, `deleted_client` → unauthenticated, `invalid_scope`
///   → configuration (setting `scope`), `invalid_request`/`unsupported_grant_type` → invalid input.
/// * Anything else by HTTP status (core's `status_error`).
pub fn parse_error(resp: &HttpResponse) -> Error {
    let status = resp.status.as_u16();
    let body: Option<Value> = serde_json::from_slice(&resp.body).ok();
    let error = body.as_ref().and_then(|b| b.get("error"));
    let e = match error {
        Some(Value::Object(o)) => {
            let message = o
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let grpc = o.get("status").and_then(Value::as_str).unwrap_or("");
            let reason = o.get("details").and_then(Value::as_array).and_then(|d| {
                d.iter()
                    .find_map(|x| x.get("reason").and_then(Value::as_str))
            });
            let e = api_error(resp, grpc, message);
            match (reason, grpc) {
                (Some(r), _) => e.with_code(r),
                (None, "") => e,
                (None, g) => e.with_code(g),
            }
        }
        Some(Value::String(code)) => {
            let description = body
                .as_ref()
                .and_then(|b| b.get("error_description"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            oauth_error(resp, code, description).with_code(code.clone())
        }
        _ => {
            let text: String = resp.text().chars().take(200).collect();
            let message = if text.trim().is_empty() {
                resp.status.canonical_reason().unwrap_or("error").to_owned()
            } else {
                text
            };
            http::status_error(resp, PROVIDER, message)
        }
    };
    e.with_provider(PROVIDER).with_status(status)
}

fn api_error(resp: &HttpResponse, grpc: &str, message: String) -> Error {
    match grpc {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => {
            let field =
                if message.starts_with("Unable to parse range") || message.contains("range [") {
                    "range"
                } else if message.contains("valueInputOption") {
                    "valueInputOption"
                } else {
                    "request"
                };
            Error::invalid_input(field, message)
        }
        "UNAUTHENTICATED" => Error::unauthenticated(message),
        "PERMISSION_DENIED" => Error::forbidden(message),
        "NOT_FOUND" => Error::not_found(message),
        "ALREADY_EXISTS" => Error::conflict(message),
        "ABORTED" => Error::conflict(message).with_retry_hint(true),
        "RESOURCE_EXHAUSTED" => {
            Error::rate_limited(http::parse_retry_after(&resp.headers), message).not_processed()
        }
        "UNAVAILABLE" => Error::unavailable(message).not_processed(),
        "INTERNAL" | "UNKNOWN" | "DATA_LOSS" | "CANCELLED" => Error::unavailable(message),
        "DEADLINE_EXCEEDED" => Error::timeout(message),
        _ => http::status_error(resp, PROVIDER, message),
    }
}

fn oauth_error(resp: &HttpResponse, code: &str, description: String) -> Error {
    match code {
        "invalid_grant" | "invalid_client" | "unauthorized_client" | "deleted_client" => {
            Error::unauthenticated(description)
        }
        "access_denied" => Error::forbidden(description),
        "invalid_scope" => Error::configuration("scope", description),
        "invalid_request" | "unsupported_grant_type" => {
            Error::invalid_input("assertion", description)
        }
        _ => http::status_error(resp, PROVIDER, description),
    }
}

/// A copy of `e` (kind, message and context; not its source) for handing one failure to several
/// waiters.
pub(crate) fn replicate(e: &Error) -> Error {
    let msg = e.message().to_owned();
    let mut r = match e.kind() {
        ErrorKind::InvalidInput => {
            Error::invalid_input(e.field().unwrap_or("request").to_owned(), msg)
        }
        ErrorKind::Unauthenticated => Error::unauthenticated(msg),
        ErrorKind::Forbidden => Error::forbidden(msg),
        ErrorKind::NotFound => Error::not_found(msg),
        ErrorKind::Conflict => Error::conflict(msg),
        ErrorKind::RateLimited => Error::rate_limited(e.retry_after(), msg),
        ErrorKind::Unavailable => Error::unavailable(msg),
        ErrorKind::Timeout => Error::timeout(msg),
        ErrorKind::CircuitOpen => Error::circuit_open(msg),
        ErrorKind::BulkheadFull => Error::bulkhead_full(msg),
        ErrorKind::Configuration => {
            Error::configuration(e.field().unwrap_or("configuration").to_owned(), msg)
        }
        _ => Error::provider(format!("{e}")),
    };
    let (from, to) = (e.context(), r.context_mut());
    to.provider = from.provider.clone();
    to.operation = from.operation.clone();
    to.code = from.code.clone();
    to.request_id = from.request_id.clone();
    to.status = from.status;
    to.retry_hint = from.retry_hint;
    to.not_processed = from.not_processed;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use integrations_core::http::{HeaderMap, StatusCode};

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn replicas_keep_kind_and_context() {
        let e = Error::rate_limited(Some(std::time::Duration::from_secs(3)), "slow down")
            .with_provider(PROVIDER)
            .with_code("RATE_LIMIT_EXCEEDED")
            .with_status(429)
            .not_processed();
        let r = replicate(&e);
        assert_eq!(r.kind(), ErrorKind::RateLimited);
        assert_eq!(r.retry_after(), e.retry_after());
        assert_eq!(r.code(), Some("RATE_LIMIT_EXCEEDED"));
        assert_eq!(r.status(), Some(429));
        assert!(r.is_failover_safe());
        assert_eq!(r.to_string(), e.to_string());
        let c = replicate(&Error::configuration("scope", "bad"));
        assert_eq!(c.field(), Some("scope"));
    }

    #[test]
    fn unknown_bodies_fall_back_to_status() {
        let e = parse_error(&resp(502, "<html>Bad Gateway</html>"));
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.to_string().contains("Bad Gateway"));
        let e = parse_error(&resp(404, ""));
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.provider_name(), Some(PROVIDER));
    }

    #[test]
    fn ambiguity_of_failures() {
        assert!(may_have_landed(&Error::timeout("t")));
        assert!(may_have_landed(&Error::unavailable("500")));
        assert!(!may_have_landed(&Error::unavailable("503").not_processed()));
        assert!(!may_have_landed(
            &Error::rate_limited(None, "429").not_processed()
        ));
        assert!(!may_have_landed(&Error::invalid_input("range", "bad")));
    }
}
