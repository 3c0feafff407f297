//! [`SendGridBuilder`]: API key, region or base URL, HTTP client, policy, clock and templates.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use integrations_core::clock::{Clock, SystemClock};
use integrations_core::metrics::MetricsRegistry;
use integrations_core::resilience::{
    Backoff, CircuitBreakerConfig, Policy, PolicyBuilder, RetryPolicy,
};
use integrations_core::{Error, Result};

use crate::PROVIDER;
use crate::client::SendGridClient;
use crate::email::SendGridEmail;
use crate::template::TemplateRegistry;

/// Environment variable holding the API key (required).
pub const ENV_API_KEY: &str = "SENDGRID_API_KEY";
/// Environment variable overriding the API base URL (sandboxes, proxies).
pub const ENV_BASE_URL: &str = "SENDGRID_API_BASE";
/// Environment variable choosing the region: `global` (default) or `eu`.
pub const ENV_REGION: &str = "SENDGRID_REGION";
/// Base URL for global users and subusers.
pub const GLOBAL_BASE_URL: &str = "https://api.sendgrid.com";
/// Base URL for EU regional subusers.
pub const EU_BASE_URL: &str = "https://api.eu.sendgrid.com";

/// Which SendGrid API host to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Region {
    /// `api.sendgrid.com`.
    #[default]
    Global,
    /// `api.eu.sendgrid.com`, for EU regional subusers (their keys do not work on the global host).
    Eu,
}

impl Region {
    /// The region's base URL.
    pub const fn base_url(self) -> &'static str {
        match self {
            Region::Global => GLOBAL_BASE_URL,
            Region::Eu => EU_BASE_URL,
        }
    }

    /// `global` (or `us`) and `eu`, case-insensitive.
    pub fn parse(s: &str) -> Option<Region> {
        match s.trim().to_ascii_lowercase().as_str() {
            "global" | "us" => Some(Region::Global),
            "eu" => Some(Region::Eu),
            _ => None,
        }
    }
}

/// The default policy for SendGrid: 2 retries with full-jitter backoff from 500 ms up to 10 s,
/// a `Retry-After` (from `X-RateLimit-Reset`) of up to 60 s waited out, the default circuit
/// breaker, and 30 s per attempt. No client-side rate limiter: SendGrid publishes no fixed Mail
/// Send rate, and answers 429 with `X-RateLimit-Reset`, which the retry honours.
///
/// Mail Send has no idempotency key: a retry after a timeout may deliver twice. Use
/// [`RetryPolicy::none`] in a custom policy if a duplicate is worse than a lost message.
///
/// Records into the global [`MetricsRegistry`]; see [`default_policy_builder`] to change that or
/// any setting.
pub fn default_policy() -> Policy {
    default_policy_builder().build()
}

/// [`default_policy`]'s settings, as a builder to adjust before building (`.metrics(&registry)`,
/// `.retry(RetryPolicy::none())`, …).
pub fn default_policy_builder() -> PolicyBuilder {
    Policy::builder(PROVIDER)
        .retry(
            RetryPolicy::new(
                2,
                Backoff::new(Duration::from_millis(500), Duration::from_secs(10), 2.0),
            )
            .with_max_retry_after(Duration::from_secs(60)),
        )
        .circuit_breaker(CircuitBreakerConfig::DEFAULT)
        .attempt_timeout(Duration::from_secs(30))
}

/// Builds a [`SendGridEmail`].
///
/// ```
/// use integrations_sendgrid::{Region, SendGridBuilder};
///
/// let email = SendGridBuilder::new()
///     .with_api_key("SG.example")
///     .with_region(Region::Eu)
///     .build()?;
/// assert_eq!(email.client().base_url(), "https://api.eu.sendgrid.com");
/// // The key never shows in Debug.
/// assert!(!format!("{email:?}").contains("SG.example"));
///
/// let err = SendGridBuilder::new().build().unwrap_err();
/// assert_eq!(err.field(), Some("SENDGRID_API_KEY"));
/// # Ok::<(), integrations_core::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct SendGridBuilder {
    api_key: Option<String>,
    base_url: Option<String>,
    region: Option<String>,
    on_behalf_of: Option<String>,
    http: Option<integrations_core::http::HttpClient>,
    policy: Option<Policy>,
    metrics: Option<MetricsRegistry>,
    clock: Option<Arc<dyn Clock>>,
    templates: Option<TemplateRegistry>,
    timeout: Option<Duration>,
    allow_http: bool,
}

impl fmt::Debug for SendGridBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendGridBuilder")
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("base_url", &self.base_url)
            .field("region", &self.region)
            .field("on_behalf_of", &self.on_behalf_of)
            .field("policy", &self.policy)
            .field("templates", &self.templates.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SendGridBuilder {
    /// An empty builder: global region, default client and policy, system clock.
    pub fn new() -> Self {
        SendGridBuilder::default()
    }

    /// A builder from the environment: `SENDGRID_API_KEY`, and optionally `SENDGRID_API_BASE` and
    /// `SENDGRID_REGION` (`global` or `eu`). Nothing is checked until [`SendGridBuilder::build`].
    pub fn from_env() -> Self {
        SendGridBuilder::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`SendGridBuilder::from_env`] reading variables through `lookup` (for tests and for
    /// configuration sources other than the process environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        SendGridBuilder {
            api_key: get(ENV_API_KEY),
            base_url: get(ENV_BASE_URL),
            region: get(ENV_REGION),
            ..SendGridBuilder::default()
        }
    }

    /// The API key (`SG.…`), sent as `Authorization: Bearer`.
    #[must_use]
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The region; ignored when a base URL is set.
    #[must_use]
    pub fn with_region(mut self, region: Region) -> Self {
        self.region = Some(
            match region {
                Region::Global => "global",
                Region::Eu => "eu",
            }
            .to_owned(),
        );
        self
    }

    /// Allows plain `http` to hosts other than loopback (a proxy or emulator in another
    /// container). Without it the base URL must be `https`, or `http` to `localhost`, `127.0.0.0/8` or
    /// `[::1]` (core's [`check_base_url`](integrations_core::http::check_base_url)), so the
    /// credentials never cross a network in clear text by mistake.
    #[must_use]
    pub fn with_allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// The API base URL (scheme and host, e.g. a sandbox's `http://127.0.0.1:PORT`).
    #[must_use]
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Sends as a subuser of the key's parent account (`on-behalf-of` header).
    #[must_use]
    pub fn with_on_behalf_of(mut self, subuser: impl Into<String>) -> Self {
        self.on_behalf_of = Some(subuser.into());
        self
    }

    /// The HTTP client (default: core's shared rustls client): a `reqwest::Client`, or with
    /// feature `reqwest-middleware` a `reqwest_middleware::ClientWithMiddleware` (its middleware
    /// sees every attempt).
    #[must_use]
    pub fn with_http_client(
        mut self,
        client: impl Into<integrations_core::http::HttpClient>,
    ) -> Self {
        self.http = Some(client.into());
        self
    }

    /// The resilience policy (default: [`default_policy`]).
    #[must_use]
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The registry the default policy records into, instead of the global one (your service's
    /// registry, for its `/metrics`). A policy given with [`with_policy`](Self::with_policy)
    /// keeps its own.
    #[must_use]
    pub fn with_metrics(mut self, registry: &MetricsRegistry) -> Self {
        self.metrics = Some(registry.clone());
        self
    }

    /// The clock used for the `send_at` window and `X-RateLimit-Reset` (default: system clock).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Templates whose hosted ids (`d-…`) are checked for their required variables before a send.
    #[must_use]
    pub fn with_templates(mut self, templates: TemplateRegistry) -> Self {
        self.templates = Some(templates);
        self
    }

    /// The per-attempt timeout of the default policy. A policy given with
    /// [`with_policy`](Self::with_policy) keeps its own.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Checks the settings and builds the provider.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming the setting: `SENDGRID_API_KEY` when missing or not a valid
    /// header value, `SENDGRID_REGION` when not `global`/`eu`, `SENDGRID_API_BASE` when not an
    /// `http(s)` URL without path or query, `on_behalf_of` when not a valid header value.
    pub fn build(self) -> Result<SendGridEmail> {
        let cfg = |setting: &'static str, msg: String| {
            Error::configuration(setting, msg).with_provider(PROVIDER)
        };
        let api_key = self
            .api_key
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                cfg(
                    ENV_API_KEY,
                    format!("missing: set {ENV_API_KEY} or call with_api_key"),
                )
            })?;
        if http::HeaderValue::from_str(&format!("Bearer {api_key}")).is_err() {
            return Err(cfg(
                ENV_API_KEY,
                "contains characters not allowed in an HTTP header".into(),
            ));
        }
        let region = match self.region.as_deref() {
            None => Region::Global,
            Some(r) => Region::parse(r)
                .ok_or_else(|| cfg(ENV_REGION, format!("`{r}` is not a region (global, eu)")))?,
        };
        let base_url = match self.base_url.as_deref() {
            None => region.base_url().to_owned(),
            Some(raw) => {
                integrations_core::http::check_base_url(ENV_BASE_URL, raw, self.allow_http)
                    .map_err(|e| e.with_provider(PROVIDER))?
                    .as_str()
                    .trim_end_matches('/')
                    .to_owned()
            }
        };
        if let Some(sub) = &self.on_behalf_of {
            if sub.is_empty() || http::HeaderValue::from_str(sub).is_err() {
                return Err(cfg(
                    "on_behalf_of",
                    "must be a non-empty, valid header value".into(),
                ));
            }
        }
        let client = SendGridClient::new(
            api_key,
            base_url,
            self.on_behalf_of,
            self.http
                .unwrap_or_else(|| integrations_core::http::default_client().into()),
            self.policy.unwrap_or_else(|| {
                let mut builder = default_policy_builder();
                if let Some(registry) = &self.metrics {
                    builder = builder.metrics(registry);
                }
                if let Some(timeout) = self.timeout {
                    builder = builder.attempt_timeout(timeout);
                }
                builder.build()
            }),
            self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
        );
        Ok(SendGridEmail::new(client, self.templates.map(Arc::new)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_worst_case_is_what_an_outer_timeout_must_allow() {
        // 3 attempts × 30 s + 2 retries waiting up to the 60 s Retry-After cap: an outbox
        // handler sending through the default policy needs a handler timeout of at least this
        // (the dispatcher's default is 45 s), or a deadline on the policy.
        assert_eq!(
            default_policy().worst_case(),
            Some(Duration::from_secs(210))
        );
        let bounded = default_policy_builder()
            .deadline(Duration::from_secs(40))
            .build();
        assert_eq!(bounded.worst_case(), Some(Duration::from_secs(40)));
    }

    #[test]
    fn with_metrics_puts_the_default_policy_in_that_registry() {
        let registry = MetricsRegistry::new();
        let email = SendGridBuilder::new()
            .with_api_key("SG.test-key")
            .with_metrics(&registry)
            .build()
            .unwrap();
        assert!(Arc::ptr_eq(
            email.client().policy().metrics(),
            &registry.integration(PROVIDER)
        ));
    }
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> SendGridBuilder {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        SendGridBuilder::from_lookup(move |k| map.get(k).cloned())
    }

    #[test]
    fn from_env_reads_key_base_and_region() {
        let e = env(&[(ENV_API_KEY, "SG.k")]).build().unwrap();
        assert_eq!(e.client().base_url(), GLOBAL_BASE_URL);
        let e = env(&[(ENV_API_KEY, "SG.k"), (ENV_REGION, "EU")])
            .build()
            .unwrap();
        assert_eq!(e.client().base_url(), EU_BASE_URL);
        let e = env(&[
            (ENV_API_KEY, "SG.k"),
            (ENV_REGION, "eu"),
            (ENV_BASE_URL, "http://127.0.0.1:9000/"),
        ])
        .build()
        .unwrap();
        assert_eq!(e.client().base_url(), "http://127.0.0.1:9000");
    }

    #[test]
    fn build_names_what_is_missing_or_malformed() {
        let field = |b: SendGridBuilder| b.build().unwrap_err().field().map(str::to_owned);
        assert_eq!(field(env(&[])).as_deref(), Some(ENV_API_KEY));
        assert_eq!(
            field(env(&[(ENV_API_KEY, "  ")])).as_deref(),
            Some(ENV_API_KEY)
        );
        assert_eq!(
            field(env(&[(ENV_API_KEY, "SG.k\nx")])).as_deref(),
            Some(ENV_API_KEY)
        );
        assert_eq!(
            field(env(&[(ENV_API_KEY, "SG.k"), (ENV_REGION, "mars")])).as_deref(),
            Some(ENV_REGION)
        );
        for bad in [
            "not a url",
            "ftp://x",
            "https://h/?k=v",
            "https://u:p@h",
            "http://api.sendgrid.com",
        ] {
            assert_eq!(
                field(env(&[(ENV_API_KEY, "SG.k"), (ENV_BASE_URL, bad)])).as_deref(),
                Some(ENV_BASE_URL),
                "{bad}"
            );
        }
        assert_eq!(
            field(
                SendGridBuilder::new()
                    .with_api_key("k")
                    .with_on_behalf_of("")
            )
            .as_deref(),
            Some("on_behalf_of")
        );
    }

    #[test]
    fn plain_http_needs_loopback_or_the_opt_in() {
        let b = || SendGridBuilder::new().with_api_key("SG.k");
        let e = b()
            .with_base_url("http://sendgrid-proxy.internal")
            .build()
            .unwrap_err();
        assert_eq!(e.field(), Some(ENV_BASE_URL));
        let e = b()
            .with_base_url("http://sendgrid-proxy.internal")
            .with_allow_http(true)
            .build()
            .unwrap();
        assert_eq!(e.client().base_url(), "http://sendgrid-proxy.internal");
        for ok in ["http://localhost:1", "http://[::1]:2", "http://127.0.0.9:3"] {
            b().with_base_url(ok).build().unwrap();
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let b = SendGridBuilder::new().with_api_key("SG.super-secret-key");
        assert!(!format!("{b:?}").contains("super-secret"));
        let e = b.build().unwrap();
        let dbg = format!("{e:?} {:?}", e.client());
        assert!(!dbg.contains("super-secret"), "{dbg}");
        assert!(dbg.contains("api.sendgrid.com"), "{dbg}");
    }
}
