//! The HTTP client for `POST /v3/mail/send` and the one [`parse_error`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use integrations_core::clock::{Clock, unix_seconds};
use integrations_core::http::{self, HttpResponse};
use integrations_core::resilience::Policy;
use integrations_core::{Error, Result};
use serde::Deserialize;

use crate::PROVIDER;
use crate::mail::MailSend;
use crate::validate::{check_body_size, validate_mail};

/// Path of the Mail Send endpoint.
pub const MAIL_SEND_PATH: &str = "/v3/mail/send";
/// Response header carrying the id of an accepted message.
pub const MESSAGE_ID_HEADER: &str = "X-Message-Id";
/// Path of the Email Activity feed's message filter.
pub const MESSAGES_PATH: &str = "/v3/messages";
/// Rate-limit header: requests allowed per period.
pub const RATE_LIMIT_LIMIT_HEADER: &str = "X-RateLimit-Limit";
/// Rate-limit header: requests left in this period.
pub const RATE_LIMIT_REMAINING_HEADER: &str = "X-RateLimit-Remaining";
/// Rate-limit header: unix time the period resets.
pub const RATE_LIMIT_RESET_HEADER: &str = "X-RateLimit-Reset";

/// SendGrid's error body: `{"errors":[{"message","field","help"}],"id"}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ErrorBody {
    /// The errors, in SendGrid's order.
    #[serde(default)]
    pub errors: Vec<ErrorItem>,
    /// An error id, when SendGrid gives one.
    #[serde(default)]
    pub id: Option<String>,
}

/// One entry of [`ErrorBody::errors`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ErrorItem {
    /// What is wrong.
    #[serde(default)]
    pub message: String,
    /// The field, in SendGrid's dotted form (`personalizations.0.to.0.email`); SendGrid sometimes
    /// sends `null` or the string `"null"`.
    #[serde(default)]
    pub field: Option<String>,
    /// A link or text about the error (a string, or an object in some answers).
    #[serde(default)]
    pub help: Option<serde_json::Value>,
}

impl ErrorItem {
    fn real_field(&self) -> Option<&str> {
        self.field
            .as_deref()
            .filter(|f| !f.is_empty() && *f != "null")
    }
}

/// Seconds until `X-RateLimit-Reset` (unix seconds), from `now`; zero if already past.
fn reset_after(resp: &HttpResponse, now: SystemTime) -> Option<Duration> {
    let reset: i64 = resp.header(RATE_LIMIT_RESET_HEADER)?.trim().parse().ok()?;
    let secs = reset.saturating_sub(unix_seconds(now)).max(0);
    Some(Duration::from_secs(secs.unsigned_abs()))
}

/// Maps a non-2xx Mail Send answer to an [`Error`], `now` being the time `X-RateLimit-Reset` is
/// measured from.
///
/// | status | error |
/// |---|---|
/// | 400 | [`Error::InvalidInput`] naming SendGrid's `field` of the first error that has one (else `request`); every error's message joined |
/// | 401 | [`Error::Unauthenticated`], not processed |
/// | 403 | [`Error::Forbidden`] (e.g. unverified sender identity), not processed |
/// | 404 | [`Error::NotFound`] |
/// | 413 | [`Error::InvalidInput`] naming `body` |
/// | 429 | [`Error::RateLimited`], `retry_after` = `X-RateLimit-Reset` − now (else `Retry-After`), not processed |
/// | 503 | [`Error::Unavailable`], not processed |
/// | other 5xx | [`Error::Unavailable`] (SendGrid may have acted) |
/// | anything else | core's generic mapping |
///
/// Every error carries the provider name, the status and SendGrid's error `id` as request id.
pub fn parse_error(resp: &HttpResponse, now: SystemTime) -> Error {
    let status = resp.status.as_u16();
    let body: ErrorBody = serde_json::from_slice(&resp.body).unwrap_or_default();
    let message = if body.errors.is_empty() {
        let text = resp.text();
        let text = text.trim();
        if text.is_empty() {
            format!("HTTP {status}")
        } else {
            text.chars().take(500).collect()
        }
    } else {
        body.errors
            .iter()
            .map(|e| match e.real_field() {
                Some(f) => format!("{f}: {}", e.message),
                None => e.message.clone(),
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let field = body.errors.iter().find_map(ErrorItem::real_field);
    let err = match status {
        400 => Error::invalid_input(field.unwrap_or("request").to_owned(), message),
        401 => Error::unauthenticated(message).not_processed(),
        403 => Error::forbidden(message).not_processed(),
        404 => Error::not_found(message),
        413 => Error::invalid_input("body", format!("payload too large: {message}")),
        429 => {
            let after = reset_after(resp, now).or_else(|| http::parse_retry_after(&resp.headers));
            Error::rate_limited(after, message).not_processed()
        }
        503 => Error::unavailable(message).not_processed(),
        500..=599 => Error::unavailable(message),
        _ => http::status_error(resp, PROVIDER, message),
    };
    let err = err.with_provider(PROVIDER).with_status(status);
    match body.id {
        Some(id) if !id.is_empty() => err.with_request_id(id),
        _ => err,
    }
}

struct Inner {
    api_key: String,
    base_url: String,
    on_behalf_of: Option<String>,
    http: http::HttpClient,
    policy: Policy,
    clock: Arc<dyn Clock>,
}

/// The Mail Send client. Cheap to clone.
#[derive(Clone)]
pub struct SendGridClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for SendGridClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendGridClient")
            .field("base_url", &self.inner.base_url)
            .field("on_behalf_of", &self.inner.on_behalf_of)
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

impl SendGridClient {
    pub(crate) fn new(
        api_key: String,
        base_url: String,
        on_behalf_of: Option<String>,
        http: http::HttpClient,
        policy: Policy,
        clock: Arc<dyn Clock>,
    ) -> Self {
        SendGridClient {
            inner: Arc::new(Inner {
                api_key,
                base_url,
                on_behalf_of,
                http,
                policy,
                clock,
            }),
        }
    }

    /// The API base URL (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// The resilience policy every call runs under.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// The clock for the `send_at` window and `X-RateLimit-Reset`.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Checks `mail` against SendGrid's rules ([`validate_mail`]) and its size, then sends it
    /// under the policy, returning the `X-Message-Id`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] before any request for a message SendGrid would refuse; otherwise
    /// what [`parse_error`] makes of the answer, transport errors, the policy's own errors, and
    /// [`Error::Provider`] if a 2xx answer has no `X-Message-Id`.
    pub async fn send_mail(&self, mail: &MailSend) -> Result<String> {
        let inner = &*self.inner;
        validate_mail(mail, inner.clock.now())?;
        let body = Bytes::from(mail.to_json().map_err(|e| {
            Error::provider("could not encode the request")
                .with_provider(PROVIDER)
                .with_source(e)
        })?);
        check_body_size(body.len())?;
        let url = format!("{}{MAIL_SEND_PATH}", inner.base_url);
        let resp = http::send_via(
            &inner.http,
            &inner.policy,
            "mail_send",
            |_attempt| {
                let mut req = inner
                    .http
                    .post(&url)
                    .bearer_auth(&inner.api_key)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
                if let Some(sub) = &inner.on_behalf_of {
                    req = req.header("on-behalf-of", sub);
                }
                req
            },
            |resp| parse_error(resp, inner.clock.now()),
        )
        .await?;
        match resp.header(MESSAGE_ID_HEADER).map(str::trim) {
            Some(id) if !id.is_empty() => Ok(id.to_owned()),
            _ => Err(Error::provider(format!(
                "SendGrid answered {} without an {MESSAGE_ID_HEADER} header",
                resp.status
            ))
            .with_provider(PROVIDER)
            .with_status(resp.status.as_u16())),
        }
    }

    /// Messages of the Email Activity feed sent with the custom arg `name` = `value` (up to
    /// `limit`, 1–1000): `GET /v3/messages?limit=…&query=unique_args['name']="value"`.
    ///
    /// This is how a sender without idempotency keys finds out whether an attempt whose answer
    /// it never saw was accepted: send every message with a custom arg naming the logical send
    /// (a job key), and look it up before sending again. The feed needs SendGrid's Email
    /// Activity add-on and an API key with Email Activity access, and it lags: a message
    /// accepted seconds ago may not be listed yet, so an empty answer narrows the duplicate
    /// window without closing it.
    ///
    /// # Errors
    /// As [`custom_arg_query`]; [`Error::InvalidInput`] for a `limit` outside 1–1000; what
    /// [`parse_error`] makes of a non-2xx answer; [`Error::Provider`] for a body that is not
    /// the feed's JSON.
    pub async fn messages_with_custom_arg(
        &self,
        name: &str,
        value: &str,
        limit: u32,
    ) -> Result<Vec<ActivityMessage>> {
        if !(1..=1000).contains(&limit) {
            return Err(Error::invalid_input("limit", "must be between 1 and 1000"));
        }
        let inner = &*self.inner;
        let query = custom_arg_query(name, value)?;
        let mut url = url::Url::parse(&format!("{}{MESSAGES_PATH}", inner.base_url))
            .map_err(|e| Error::invalid_input("base_url", e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("limit", &limit.to_string())
            .append_pair("query", &query);
        let resp = http::send_via(
            &inner.http,
            &inner.policy,
            "messages_filter",
            |_attempt| {
                let mut req = inner.http.get(url.clone()).bearer_auth(&inner.api_key);
                if let Some(sub) = &inner.on_behalf_of {
                    req = req.header("on-behalf-of", sub);
                }
                req
            },
            |resp| parse_error(resp, inner.clock.now()),
        )
        .await?;
        let list: ActivityList = serde_json::from_slice(&resp.body).map_err(|e| {
            Error::provider("the Email Activity answer is not its JSON")
                .with_provider(PROVIDER)
                .with_source(e)
        })?;
        Ok(list.messages)
    }
}

/// One message of the Email Activity feed, as `GET /v3/messages` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[non_exhaustive]
pub struct ActivityMessage {
    /// SendGrid's message id (the `X-Message-Id` of the send, then a suffix per recipient).
    pub msg_id: String,
    /// Sender.
    #[serde(default)]
    pub from_email: String,
    /// Recipient.
    #[serde(default)]
    pub to_email: String,
    /// Subject.
    #[serde(default)]
    pub subject: String,
    /// `processed`, `delivered`, `not_delivered`.
    #[serde(default)]
    pub status: String,
    /// Time of the last event (RFC 3339), if any.
    #[serde(default)]
    pub last_event_time: Option<String>,
}

#[derive(Deserialize)]
struct ActivityList {
    #[serde(default)]
    messages: Vec<ActivityMessage>,
}

/// The Email Activity query for messages sent with the custom arg `name` = `value`:
/// `unique_args['name']="value"` (custom args are the feed's `unique_args`).
///
/// # Errors
/// [`Error::InvalidInput`] for an empty name, or a name or value with a quote or backslash (the
/// query language has no escape for them).
pub fn custom_arg_query(name: &str, value: &str) -> Result<String> {
    let bad = |s: &str| s.contains(['\'', '"', '\\']);
    if name.is_empty() || bad(name) {
        return Err(Error::invalid_input(
            "name",
            "must be non-empty, without quotes or backslashes",
        ));
    }
    if bad(value) {
        return Err(Error::invalid_input(
            "value",
            "must not contain quotes or backslashes",
        ));
    }
    Ok(format!("unique_args['{name}']=\"{value}\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::http::HeaderValue;
    use integrations_core::ErrorKind;
    use integrations_core::clock::from_unix_seconds;
    use integrations_core::http::{HeaderMap, StatusCode};

    fn resp(status: u16, headers: &[(&'static str, &str)], body: &str) -> HttpResponse {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        HttpResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: h,
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn field_errors_name_sendgrids_field() {
        let e = parse_error(
            &resp(
                400,
                &[],
                r#"{"errors":[{"message":"bad","field":null},{"message":"Does not contain a valid address.","field":"personalizations.0.to.0.email","help":"h"}],"id":"err-1"}"#,
            ),
            SystemTime::now(),
        );
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(e.field(), Some("personalizations.0.to.0.email"));
        assert_eq!(e.request_id(), Some("err-1"));
        assert_eq!(e.status(), Some(400));
        assert_eq!(e.provider_name(), Some(PROVIDER));
        assert!(
            e.message()
                .starts_with("bad; personalizations.0.to.0.email: Does not")
        );
    }

    #[test]
    fn rate_limit_uses_reset_epoch() {
        let now = from_unix_seconds(1_000);
        let e = parse_error(
            &resp(
                429,
                &[("x-ratelimit-reset", "1042")],
                r#"{"errors":[{"field":null,"message":"too many requests"}]}"#,
            ),
            now,
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(42)));
        assert!(e.is_failover_safe());
        let past = parse_error(&resp(429, &[("x-ratelimit-reset", "10")], ""), now);
        assert_eq!(past.retry_after(), Some(Duration::ZERO));
        let fallback = parse_error(&resp(429, &[("retry-after", "7")], ""), now);
        assert_eq!(fallback.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(parse_error(&resp(429, &[], ""), now).retry_after(), None);
    }

    #[test]
    fn statuses_map_by_meaning() {
        let now = SystemTime::now();
        let kind = |s: u16| parse_error(&resp(s, &[], "not json"), now);
        assert_eq!(kind(401).kind(), ErrorKind::Unauthenticated);
        assert_eq!(kind(403).kind(), ErrorKind::Forbidden);
        assert_eq!(kind(404).kind(), ErrorKind::NotFound);
        assert_eq!(kind(413).field(), Some("body"));
        assert_eq!(kind(500).kind(), ErrorKind::Unavailable);
        assert!(kind(500).is_retryable() && !kind(500).is_failover_safe());
        assert!(kind(503).is_failover_safe());
        assert_eq!(kind(400).field(), Some("request"));
        assert_eq!(kind(400).message(), "not json");
        assert_eq!(kind(405).kind(), ErrorKind::Provider);
        assert_eq!(parse_error(&resp(502, &[], ""), now).message(), "HTTP 502");
    }
}
