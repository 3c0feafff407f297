//! Configuration: [`StripeBuilder`], from code or from the environment.
//!
//! | variable | required | meaning |
//! |---|---|---|
//! | `STRIPE_SECRET_KEY` | yes | `sk_test_…`, `sk_live_…`, `rk_test_…` or `rk_live_…` |
//! | `STRIPE_API_BASE` | no | base URL (default `https://api.stripe.com`; plain `http` only for loopback) |
//! | `STRIPE_API_VERSION` | no | pinned `Stripe-Version` (default [`DEFAULT_API_VERSION`]) |
//! | `STRIPE_ACCOUNT` | no | `acct_…` sent as `Stripe-Account` (Connect) |

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use integrations_core::metrics::MetricsRegistry;
use integrations_core::resilience::{
    Backoff, CircuitBreakerConfig, PolicyBuilder, RateLimiter, RetryPolicy,
};
use integrations_core::{Error, Policy, Result};

use crate::PROVIDER;
use crate::client::StripeClient;
use crate::payments::StripePayments;

/// Stripe's API.
pub const DEFAULT_BASE_URL: &str = "https://api.stripe.com";
/// The `Stripe-Version` every request pins unless told otherwise; the response types of this
/// crate are written against it.
pub const DEFAULT_API_VERSION: &str = "2025-03-31.basil";

/// Environment variable of the secret key.
pub const ENV_SECRET_KEY: &str = "STRIPE_SECRET_KEY";
/// Environment variable of the base URL.
pub const ENV_BASE_URL: &str = "STRIPE_API_BASE";
/// Environment variable of the API version.
pub const ENV_API_VERSION: &str = "STRIPE_API_VERSION";
/// Environment variable of the connected account.
pub const ENV_ACCOUNT: &str = "STRIPE_ACCOUNT";

/// Test or live mode, as the key says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `sk_test_…` / `rk_test_…`: no money moves.
    Test,
    /// `sk_live_…` / `rk_live_…`.
    Live,
}

impl Mode {
    /// Stripe's published per-second request limit for the mode: 25 in test mode, 100 live.
    pub const fn published_rate_limit(self) -> u32 {
        match self {
            Mode::Test => 25,
            Mode::Live => 100,
        }
    }
}

/// The policy a client gets unless given one: Stripe's published rate limit for the key's mode,
/// the official SDKs' retry behaviour (2 retries, backoff ceilings 0.5 s, 1 s, … capped at 5 s,
/// with full jitter; `Retry-After` honoured up to 10 s), the default circuit breaker, and the
/// SDKs' 80 s per-attempt timeout. Records into the global
/// [`MetricsRegistry`]; see [`default_policy_builder`] to change that or any setting.
pub fn default_policy(mode: Mode) -> Policy {
    default_policy_builder(mode).build()
}

/// [`default_policy`]'s settings, as a builder to adjust before building: the metrics registry
/// (`.metrics(&registry)`), a shorter attempt timeout, another breaker.
///
/// ```
/// use integrations_core::metrics::MetricsRegistry;
/// use integrations_stripe::{Mode, default_policy_builder};
///
/// let registry = MetricsRegistry::new();
/// let policy = default_policy_builder(Mode::Test).metrics(&registry).build();
/// assert_eq!(policy.rate_limiter().unwrap().quota().burst_size().get(), 25);
/// ```
pub fn default_policy_builder(mode: Mode) -> PolicyBuilder {
    let rps = NonZeroU32::new(mode.published_rate_limit()).unwrap_or(NonZeroU32::MIN);
    Policy::builder(PROVIDER)
        .rate_limiter(RateLimiter::per_second(rps))
        .circuit_breaker(CircuitBreakerConfig::DEFAULT)
        .retry(
            RetryPolicy::new(
                2,
                Backoff::new(Duration::from_millis(500), Duration::from_secs(5), 2.0),
            )
            .with_max_retry_after(Duration::from_secs(10)),
        )
        .attempt_timeout(Duration::from_secs(80))
}

/// Builds [`StripePayments`], the core `PaymentProvider`; `.client()` on it is the raw
/// [`StripeClient`].
///
/// ```
/// use integrations_stripe::{Mode, StripeBuilder};
///
/// let payments = StripeBuilder::new().with_secret_key("sk_test_4eC39HqLyjWDarjtT1zdp7dc").build()?;
/// assert_eq!(payments.client().mode(), Mode::Test);
///
/// let err = StripeBuilder::new().with_secret_key("pk_test_123").build().unwrap_err();
/// assert_eq!(err.field(), Some("STRIPE_SECRET_KEY"));
/// assert!(!err.to_string().contains("pk_test_123"));
/// # Ok::<(), integrations_core::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct StripeBuilder {
    secret_key: Option<String>,
    api_base: Option<String>,
    api_version: Option<String>,
    account: Option<String>,
    policy: Option<Policy>,
    metrics: Option<MetricsRegistry>,
    http: Option<integrations_core::http::HttpClient>,
    timeout: Option<Duration>,
    allow_http: bool,
}

impl fmt::Debug for StripeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeBuilder")
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "[redacted]"),
            )
            .field("api_base", &self.api_base)
            .field("api_version", &self.api_version)
            .field("account", &self.account)
            .field("policy", &self.policy.as_ref().map(Policy::provider))
            .field("custom_http_client", &self.http.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl StripeBuilder {
    /// An empty builder: set at least the secret key.
    pub fn new() -> Self {
        StripeBuilder::default()
    }

    /// A builder filled from `STRIPE_SECRET_KEY`, `STRIPE_API_BASE`, `STRIPE_API_VERSION` and
    /// `STRIPE_ACCOUNT`. Missing or malformed values are reported by [`build`](Self::build).
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        StripeBuilder {
            secret_key: lookup(ENV_SECRET_KEY),
            api_base: lookup(ENV_BASE_URL).filter(|s| !s.is_empty()),
            api_version: lookup(ENV_API_VERSION).filter(|s| !s.is_empty()),
            account: lookup(ENV_ACCOUNT).filter(|s| !s.is_empty()),
            policy: None,
            metrics: None,
            http: None,
            timeout: None,
            allow_http: false,
        }
    }

    /// The secret (`sk_…`) or restricted (`rk_…`) key.
    #[must_use]
    pub fn with_secret_key(mut self, key: impl Into<String>) -> Self {
        self.secret_key = Some(key.into());
        self
    }

    /// The base URL (a sandbox, a proxy). Plain `http` is accepted for loopback hosts only.
    #[must_use]
    pub fn with_base_url(mut self, base: impl Into<String>) -> Self {
        self.api_base = Some(base.into());
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

    /// The `Stripe-Version` to pin (`2025-03-31.basil`).
    #[must_use]
    pub fn with_api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = Some(version.into());
        self
    }

    /// A connected account (`acct_…`) to act as, sent as `Stripe-Account`.
    #[must_use]
    pub fn with_account(mut self, account: impl Into<String>) -> Self {
        self.account = Some(account.into());
        self
    }

    /// The resilience policy, instead of [`default_policy`] for the key's mode.
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

    /// The per-attempt timeout of the default policy (Stripe's own SDKs use 80 s). A policy
    /// given with [`with_policy`](Self::with_policy) keeps its own.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The client to send with, instead of [`integrations_core::http::default_client`]: a
    /// `reqwest::Client`, or with feature `reqwest-middleware` a
    /// `reqwest_middleware::ClientWithMiddleware` (its middleware sees every attempt).
    #[must_use]
    pub fn with_http_client(
        mut self,
        client: impl Into<integrations_core::http::HttpClient>,
    ) -> Self {
        self.http = Some(client.into());
        self
    }

    /// Validates the settings and builds the provider: [`StripePayments`], the core
    /// [`PaymentProvider`](integrations_core::PaymentProvider); its
    /// [`client()`](StripePayments::client) makes the calls the trait does not cover.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming the setting: `STRIPE_SECRET_KEY` missing, empty, not a
    /// secret or restricted key, or with characters a key never has (the key itself is never
    /// echoed); `STRIPE_API_BASE` not an absolute `https` URL (or `http` to a loopback host), or
    /// with a query or fragment; `STRIPE_API_VERSION` not `YYYY-MM-DD[.name]`; `STRIPE_ACCOUNT`
    /// not `acct_…`.
    pub fn build(self) -> Result<StripePayments> {
        self.build_client().map(StripePayments::new)
    }

    fn build_client(self) -> Result<StripeClient> {
        let key = self.secret_key.ok_or_else(|| {
            config_error(
                ENV_SECRET_KEY,
                "missing: set STRIPE_SECRET_KEY or call with_secret_key",
            )
        })?;
        let mode = key_mode(&key)?;
        let base = validate_base(
            self.api_base.as_deref().unwrap_or(DEFAULT_BASE_URL),
            self.allow_http,
        )?;
        let version = self
            .api_version
            .unwrap_or_else(|| DEFAULT_API_VERSION.to_owned());
        validate_version(&version)?;
        if let Some(account) = &self.account {
            validate_account(account)?;
        }
        let policy = self.policy.unwrap_or_else(|| {
            let mut builder = default_policy_builder(mode);
            if let Some(registry) = &self.metrics {
                builder = builder.metrics(registry);
            }
            if let Some(timeout) = self.timeout {
                builder = builder.attempt_timeout(timeout);
            }
            builder.build()
        });
        let http = self
            .http
            .unwrap_or_else(|| integrations_core::http::default_client().into());
        StripeClient::from_parts(http, policy, base, &key, mode, version, self.account)
    }
}

fn config_error(setting: &'static str, message: impl Into<String>) -> Error {
    Error::configuration(setting, message).with_provider(PROVIDER)
}

/// The mode of a secret or restricted key, or why it is not one. Never echoes the key.
pub(crate) fn key_mode(key: &str) -> Result<Mode> {
    const PREFIXES: [(&str, Mode); 4] = [
        ("sk_test_", Mode::Test),
        ("sk_live_", Mode::Live),
        ("rk_test_", Mode::Test),
        ("rk_live_", Mode::Live),
    ];
    if key.is_empty() {
        return Err(config_error(ENV_SECRET_KEY, "is empty"));
    }
    let Some((rest, mode)) = PREFIXES
        .iter()
        .find_map(|(p, m)| key.strip_prefix(p).map(|rest| (rest, *m)))
    else {
        let hint = if key.starts_with("pk_") {
            "is a publishable key; server calls need a secret (sk_…) or restricted (rk_…) key"
        } else if key.starts_with("whsec_") {
            "is a webhook signing secret, not an API key"
        } else {
            "is not a Stripe secret key (expected sk_test_…, sk_live_…, rk_test_… or rk_live_…)"
        };
        return Err(config_error(ENV_SECRET_KEY, hint));
    };
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(config_error(
            ENV_SECRET_KEY,
            "is malformed: after the prefix a key has only letters, digits and underscores \
             (check for quotes, spaces or a trailing newline)",
        ));
    }
    Ok(mode)
}

fn validate_base(base: &str, allow_http: bool) -> Result<String> {
    let url = integrations_core::http::check_base_url(ENV_BASE_URL, base, allow_http)
        .map_err(|e| e.with_provider(PROVIDER))?;
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn validate_version(v: &str) -> Result<()> {
    let (date, name) = match v.split_once('.') {
        Some((d, n)) => (d, Some(n)),
        None => (v, None),
    };
    let date_ok = date.len() == 10
        && date.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    let name_ok = name.is_none_or(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_lowercase()));
    if date_ok && name_ok {
        Ok(())
    } else {
        Err(config_error(
            ENV_API_VERSION,
            format!("`{v}` is not a Stripe API version (YYYY-MM-DD or YYYY-MM-DD.name)"),
        ))
    }
}

fn validate_account(a: &str) -> Result<()> {
    match a.strip_prefix("acct_") {
        Some(rest) if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()) => Ok(()),
        _ => Err(config_error(
            ENV_ACCOUNT,
            format!("`{a}` is not an account id (acct_…)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const KEY: &str = "sk_test_4eC39HqLyjWDarjtT1zdp7dc";

    fn env(vars: &[(&str, &str)]) -> StripeBuilder {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        StripeBuilder::from_lookup(move |n| map.get(n).cloned())
    }

    #[test]
    fn keys_and_modes() {
        assert_eq!(key_mode(KEY).unwrap(), Mode::Test);
        assert_eq!(key_mode("sk_live_abc123").unwrap(), Mode::Live);
        assert_eq!(key_mode("rk_test_abc").unwrap(), Mode::Test);
        assert_eq!(key_mode("rk_live_abc").unwrap(), Mode::Live);
        for (bad, says) in [
            ("", "empty"),
            ("pk_test_abc", "publishable"),
            ("whsec_abc", "webhook signing secret"),
            ("sk_abc", "not a Stripe secret key"),
            ("sk_test_", "malformed"),
            ("sk_test_abc\n", "malformed"),
            ("\"sk_test_abc\"", "not a Stripe secret key"),
            ("sk_test_ab c", "malformed"),
        ] {
            let e = key_mode(bad).unwrap_err();
            assert_eq!(e.field(), Some(ENV_SECRET_KEY), "{bad:?}");
            assert!(e.to_string().contains(says), "{bad:?}: {e}");
            if bad.len() > 4 {
                assert!(!e.to_string().contains(bad.trim()), "{e}");
            }
        }
    }

    #[test]
    fn from_env_reads_every_variable() {
        let c = env(&[
            (ENV_SECRET_KEY, "sk_live_xyz"),
            (ENV_BASE_URL, "http://127.0.0.1:12111/"),
            (ENV_API_VERSION, "2024-06-20"),
            (ENV_ACCOUNT, "acct_1032D82eZvKYlo2C"),
        ])
        .build()
        .unwrap();
        let c = c.client();
        assert_eq!(c.mode(), Mode::Live);
        assert_eq!(c.base_url(), "http://127.0.0.1:12111");
        assert_eq!(c.api_version(), "2024-06-20");
        assert_eq!(c.account(), Some("acct_1032D82eZvKYlo2C"));
        let d = env(&[(ENV_SECRET_KEY, KEY)]).build().unwrap();
        let d = d.client();
        assert_eq!(d.base_url(), DEFAULT_BASE_URL);
        assert_eq!(d.api_version(), DEFAULT_API_VERSION);
        assert_eq!(d.account(), None);
    }

    #[test]
    fn plain_http_to_another_host_needs_the_opt_in() {
        let b = || StripeBuilder::new().with_secret_key(KEY);
        let e = b()
            .with_base_url("http://stripe-proxy.internal:8080")
            .build()
            .unwrap_err();
        assert_eq!(e.field(), Some(ENV_BASE_URL));
        let p = b()
            .with_base_url("http://stripe-proxy.internal:8080/")
            .with_allow_http(true)
            .build()
            .unwrap();
        assert_eq!(p.client().base_url(), "http://stripe-proxy.internal:8080");
        for ok in [
            "http://localhost:12111",
            "http://[::1]:1",
            "http://127.8.0.1",
        ] {
            b().with_base_url(ok).build().unwrap();
        }
    }

    #[test]
    fn build_names_what_is_missing_or_malformed() {
        let e = env(&[]).build().unwrap_err();
        assert_eq!(e.field(), Some(ENV_SECRET_KEY));
        assert!(e.to_string().contains("missing"), "{e}");
        let e = env(&[(ENV_SECRET_KEY, "")]).build().unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        for (var, value) in [
            (ENV_BASE_URL, "api.stripe.com"),
            (ENV_BASE_URL, "http://api.stripe.com"),
            (ENV_BASE_URL, "ftp://127.0.0.1"),
            (ENV_BASE_URL, "https://api.stripe.com/?x=1"),
            (ENV_BASE_URL, "https://user:pw@api.stripe.com"),
            (ENV_API_VERSION, "2024-6-20"),
            (ENV_API_VERSION, "2025-03-31.Basil"),
            (ENV_API_VERSION, "latest"),
            (ENV_ACCOUNT, "cus_123"),
            (ENV_ACCOUNT, "acct_"),
        ] {
            let e = env(&[(ENV_SECRET_KEY, KEY), (var, value)])
                .build()
                .unwrap_err();
            assert_eq!(e.field(), Some(var), "{var}={value}: {e}");
        }
        assert!(
            env(&[(ENV_SECRET_KEY, KEY), (ENV_BASE_URL, "http://localhost:1")])
                .build()
                .is_ok()
        );
        assert!(
            env(&[(ENV_SECRET_KEY, KEY), (ENV_BASE_URL, "http://[::1]:1")])
                .build()
                .is_ok()
        );
        assert!(
            env(&[(ENV_SECRET_KEY, KEY), (ENV_API_VERSION, "2025-03-31.basil")])
                .build()
                .is_ok()
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let b = StripeBuilder::new()
            .with_secret_key(KEY)
            .with_account("acct_1");
        let s = format!("{b:?}");
        assert!(!s.contains("4eC39HqLyjWDarjtT1zdp7dc"), "{s}");
        assert!(s.contains("[redacted]") && s.contains("acct_1"), "{s}");
        let c = b.with_account("acct_2").build().unwrap();
        let s = format!("{c:?}");
        assert!(!s.contains("4eC39HqLyjWDarjtT1zdp7dc"), "{s}");
        assert!(s.contains("Test"), "{s}");
    }

    #[test]
    fn default_policies_follow_published_limits() {
        assert_eq!(Mode::Test.published_rate_limit(), 25);
        assert_eq!(Mode::Live.published_rate_limit(), 100);
        let p = default_policy(Mode::Live);
        assert_eq!(p.provider(), PROVIDER);
        assert_eq!(p.retry_policy().max_retries(), 2);
        assert_eq!(
            p.retry_policy().backoff().initial,
            Duration::from_millis(500)
        );
        assert_eq!(p.retry_policy().backoff().max, Duration::from_secs(5));
        assert_eq!(p.attempt_timeout(), Some(Duration::from_secs(80)));
        let q = p.rate_limiter().unwrap().quota();
        assert_eq!(q.burst_size().get(), 100);
        let q = default_policy(Mode::Test).rate_limiter().unwrap().quota();
        assert_eq!(q.burst_size().get(), 25);
    }

    #[test]
    fn with_metrics_puts_the_default_policy_in_that_registry() {
        let registry = MetricsRegistry::new();
        let c = StripeBuilder::new()
            .with_secret_key(KEY)
            .with_metrics(&registry)
            .build()
            .unwrap();
        assert!(std::sync::Arc::ptr_eq(
            c.client().policy().metrics(),
            &registry.integration(PROVIDER)
        ));
        let c = StripeBuilder::new().with_secret_key(KEY).build().unwrap();
        assert!(std::sync::Arc::ptr_eq(
            c.client().policy().metrics(),
            &MetricsRegistry::global().integration(PROVIDER)
        ));
    }
}
