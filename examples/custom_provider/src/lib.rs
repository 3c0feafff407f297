//! # An integration author's walk-through: an [ntfy](https://ntfy.sh) `Notifier`
//!
//! This crate is the worked example of `docs/adding-a-provider.md`. It adds a provider the family
//! does not ship — ntfy's JSON publish API — in the same shape as the real provider crates:
//!
//! | step | here |
//! |---|---|
//! | one `PROVIDER` name | [`PROVIDER`] |
//! | a builder with `from_env()` and a fallible `build()` naming what is wrong | [`NtfyBuilder`] |
//! | a hand-written `Debug` that never shows the token | [`NtfyNotifier`] |
//! | a default policy from the provider's published limits | [`default_policy`] |
//! | every call through `integrations_core::http::send_via` | [`NtfyNotifier::publish`](integrations_core::Notifier::publish) |
//! | one `parse_error` from the wire to core's `Error` | [`parse_error`] |
//! | wiremock contract tests and core's behaviour suite | `tests/ntfy.rs` |
//!
//! ntfy has no idempotency key: a publish retried after ntfy accepted it but before its answer
//! arrived is shown twice. That is why [`parse_error`] lets the policy retry only what certainly
//! did not publish, plus 5xx (a duplicate push notification is the lesser evil than a lost one).

#![warn(missing_docs)]

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use async_trait::async_trait;
use integrations_core::http::{self, HttpResponse};
use integrations_core::provider::{Notification, Notifier, Published};
use integrations_core::resilience::{Backoff, CircuitBreakerConfig, RateLimiter, RetryPolicy};
use integrations_core::{Error, Policy, Result};
use url::Url;

/// The provider's name, in errors, metrics and receipts.
pub const PROVIDER: &str = "ntfy";

/// ntfy.sh's public server.
pub const DEFAULT_BASE_URL: &str = "https://ntfy.sh";

/// The policy ntfy.sh's published visitor limits call for: a burst of 60 requests, refilled one
/// every 5 seconds; two retries with jittered backoff; a breaker; 10 s per attempt.
pub fn default_policy() -> Policy {
    let per_minute = NonZeroU32::new(12).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(60).unwrap_or(NonZeroU32::MIN);
    Policy::builder(PROVIDER)
        .rate_limiter(
            RateLimiter::per_minute(per_minute)
                .with_burst(burst)
                .with_max_wait(Duration::from_secs(5)),
        )
        .circuit_breaker(CircuitBreakerConfig::default())
        .retry(RetryPolicy::new(
            2,
            Backoff::new(Duration::from_millis(250), Duration::from_secs(4), 2.0),
        ))
        .attempt_timeout(Duration::from_secs(10))
        .build()
}

/// Builds an [`NtfyNotifier`].
#[derive(Default)]
pub struct NtfyBuilder {
    base_url: Option<String>,
    topic: Option<String>,
    token: Option<String>,
    client: Option<http::HttpClient>,
    policy: Option<Policy>,
}

impl fmt::Debug for NtfyBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NtfyBuilder")
            .field("base_url", &self.base_url)
            .field("topic", &self.topic)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

impl NtfyBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        NtfyBuilder::default()
    }

    /// Reads `NTFY_TOPIC`, `NTFY_BASE_URL` and `NTFY_TOKEN`.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        NtfyBuilder {
            base_url: var("NTFY_BASE_URL"),
            topic: var("NTFY_TOPIC"),
            token: var("NTFY_TOKEN"),
            ..NtfyBuilder::default()
        }
    }

    /// The server (default [`DEFAULT_BASE_URL`]).
    #[must_use]
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }
    /// The topic to publish to.
    #[must_use]
    pub fn with_topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }
    /// An access token (`tk_…`).
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
    /// Your own client (default: core's shared one): a `reqwest::Client`, or with core's feature
    /// `reqwest-middleware` a `reqwest_middleware::ClientWithMiddleware`.
    #[must_use]
    pub fn with_http_client(mut self, client: impl Into<http::HttpClient>) -> Self {
        self.client = Some(client.into());
        self
    }
    /// Your own policy (default: [`default_policy`]).
    #[must_use]
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Builds the notifier.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming `NTFY_TOPIC` when the topic is missing or not ntfy's
    /// `[A-Za-z0-9_-]{1,64}`, `NTFY_BASE_URL` when it is not an http(s) URL, `NTFY_TOKEN` when it
    /// is not printable ASCII.
    pub fn build(self) -> Result<NtfyNotifier> {
        let topic = self
            .topic
            .ok_or_else(|| Error::configuration("NTFY_TOPIC", "a topic is required"))?;
        let topic_ok = !topic.is_empty()
            && topic.len() <= 64
            && topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !topic_ok {
            return Err(Error::configuration(
                "NTFY_TOPIC",
                format!("`{topic}` is not 1-64 characters of letters, digits, `_` or `-`"),
            ));
        }
        let raw = self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let base = Url::parse(raw)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                Error::configuration("NTFY_BASE_URL", format!("`{raw}` is not an http(s) URL"))
            })?;
        if let Some(t) = &self.token {
            if !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(Error::configuration(
                    "NTFY_TOKEN",
                    "must be printable ASCII without spaces",
                ));
            }
        }
        Ok(NtfyNotifier {
            base,
            topic,
            token: self.token,
            client: self.client.unwrap_or_else(|| http::default_client().into()),
            policy: self.policy.unwrap_or_else(default_policy),
        })
    }
}

/// Publishes notifications to an ntfy topic.
pub struct NtfyNotifier {
    base: Url,
    topic: String,
    token: Option<String>,
    client: http::HttpClient,
    policy: Policy,
}

impl fmt::Debug for NtfyNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NtfyNotifier")
            .field("base", &self.base.as_str())
            .field("topic", &self.topic)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

/// ntfy's JSON publish body.
#[derive(serde::Serialize)]
struct PublishBody<'a> {
    topic: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
}

#[derive(serde::Deserialize)]
struct PublishAnswer {
    id: String,
}

/// ntfy's error body: `{"code":42901,"http":429,"error":"limit reached: too many requests"}`.
#[derive(serde::Deserialize)]
struct ErrorBody {
    code: Option<i64>,
    error: Option<String>,
}

/// The one mapping from an ntfy error answer to core's [`Error`]: the status decides the kind
/// (core's generic mapping), ntfy's numeric `code` and text are kept.
pub fn parse_error(resp: &HttpResponse) -> Error {
    let body: Option<ErrorBody> = serde_json::from_slice(&resp.body).ok();
    let message = body
        .as_ref()
        .and_then(|b| b.error.clone())
        .unwrap_or_else(|| format!("ntfy answered {}", resp.status));
    let mut e = http::status_error(resp, PROVIDER, message);
    if let Some(code) = body.and_then(|b| b.code) {
        e = e.with_code(code.to_string());
    }
    e
}

#[async_trait]
impl Notifier for NtfyNotifier {
    fn name(&self) -> &str {
        PROVIDER
    }

    async fn publish(&self, n: &Notification) -> Result<Published> {
        n.validate()?;
        // ntfy has no attributes; they travel as `key:value` tags, which ntfy shows and filters on.
        let tags = n
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        let body = PublishBody {
            topic: &self.topic,
            message: &n.body,
            title: n.subject.as_deref(),
            tags,
        };
        let resp = http::send_via(
            &self.client,
            &self.policy,
            "publish",
            |_| {
                let req = self.client.post(self.base.clone()).json(&body);
                match &self.token {
                    Some(t) => req.bearer_auth(t),
                    None => req,
                }
            },
            parse_error,
        )
        .await?;
        let answer: PublishAnswer = resp.json()?;
        Ok(Published::new(PROVIDER, answer.id))
    }
}
