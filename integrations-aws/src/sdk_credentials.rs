//! [`AwsConfigCredentials`] (feature `aws-config`): the AWS SDK's own default credentials chain
//! behind this crate's [`CredentialsProvider`].
//!
//! The chain is `aws-config`'s, not a copy: environment keys, the shared profile files (with
//! `role_arn`/`source_profile`, IAM Identity Center (SSO) and `credential_process`), web identity
//! tokens (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`: EKS IRSA), container credentials
//! (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` / `_FULL_URI`: ECS, EKS Pod Identity) and EC2
//! instance metadata (IMDSv2), in that order. Re-implementing STS web identity, the SSO token
//! cache and IMDSv2's token dance would duplicate code AWS maintains and keeps current, so the
//! bridge only adds what `aws-config` leaves to the SDK's identity cache: caching until
//! [`DEFAULT_REFRESH_MARGIN`] before expiry, one refresh shared by concurrent callers, and the
//! mapping into [`Error`].
//!
//! `aws-config`'s default HTTPS client is built on `aws-lc-rs`; this one gets a rustls + `ring`
//! client instead (`aws-smithy-http-client`'s `rustls-ring`), so no second TLS stack and no C
//! build comes with the feature.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_config::default_provider::credentials::DefaultCredentialsChain as SdkChain;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use integrations_core::clock::{Clock, SystemClock};
use integrations_core::{Error, Result};
use tokio::sync::{Mutex, OnceCell};

use crate::credentials::{Credentials, CredentialsProvider};

/// Credentials are refreshed once they expire within this margin (5 minutes, as the AWS SDKs'
/// identity cache does by default): a request signed just before expiry still reaches AWS in time.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// The AWS SDK's default credentials chain (or any `aws-config` provider) as a
/// [`CredentialsProvider`], with expiry-aware caching.
///
/// ```no_run
/// # async fn run() -> integrations_core::Result<()> {
/// use integrations_aws::{AwsBuilder, AwsConfigCredentials};
///
/// // `AwsBuilder::from_env()` already uses it with this feature; with a builder of your own:
/// let config = AwsBuilder::new()
///     .with_region("eu-west-1")
///     .with_credentials(AwsConfigCredentials::new())
///     .build()?;
/// # Ok(()) }
/// ```
///
/// The chain is built on the first [`credentials`](CredentialsProvider::credentials) call (it reads
/// the environment, the profile files and the region then). Each result is kept until
/// `expires_at - refresh margin`; concurrent callers wait for one refresh instead of each asking
/// the source. When a refresh fails while the kept credentials have not expired yet, they are
/// returned (and the failure logged): a brief STS or IMDS outage does not stop signing.
/// `Debug` shows no key material.
pub struct AwsConfigCredentials {
    source: Source,
    cache: Mutex<Option<Credentials>>,
    margin: Duration,
    clock: Arc<dyn Clock>,
}

enum Source {
    /// `aws-config`'s default chain, built on first use.
    DefaultChain(OnceCell<SharedCredentialsProvider>),
    /// A provider the caller built.
    Provider(SharedCredentialsProvider),
}

impl AwsConfigCredentials {
    /// `aws-config`'s default chain, built on first use on a rustls + `ring` HTTP client.
    pub fn new() -> Self {
        Self::with_source(Source::DefaultChain(OnceCell::new()))
    }
    /// Any `aws-config` / `aws-credential-types` provider (a `WebIdentityTokenCredentialsProvider`,
    /// an `AssumeRoleProvider`, a chain of your own), cached the same way.
    pub fn from_provider(provider: impl ProvideCredentials + 'static) -> Self {
        Self::with_source(Source::Provider(SharedCredentialsProvider::new(provider)))
    }
    fn with_source(source: Source) -> Self {
        AwsConfigCredentials {
            source,
            cache: Mutex::new(None),
            margin: DEFAULT_REFRESH_MARGIN,
            clock: Arc::new(SystemClock),
        }
    }
    /// Refreshes credentials once they expire within `margin` (default
    /// [`DEFAULT_REFRESH_MARGIN`]).
    #[must_use]
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }
    /// Uses `clock` for "now" when deciding whether cached credentials are still fresh.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    async fn provider(&self) -> &SharedCredentialsProvider {
        match &self.source {
            Source::Provider(p) => p,
            Source::DefaultChain(cell) => {
                cell.get_or_init(|| async {
                    let http = aws_smithy_http_client::Builder::new()
                        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                        .build_https();
                    let conf = ProviderConfig::without_region()
                        .with_http_client(http)
                        .load_default_region()
                        .await;
                    let chain = SdkChain::builder().configure(conf).build().await;
                    SharedCredentialsProvider::new(chain)
                })
                .await
            }
        }
    }

    fn fresh(&self, c: &Credentials, now: SystemTime) -> bool {
        c.expires_at()
            .is_none_or(|at| at > now.checked_add(self.margin).unwrap_or(now))
    }
}

impl Default for AwsConfigCredentials {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for AwsConfigCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::DefaultChain(_) => "aws-config default chain",
            Source::Provider(_) => "aws-config provider",
        };
        f.debug_struct("AwsConfigCredentials")
            .field("source", &source)
            .field("refresh_margin", &self.margin)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl CredentialsProvider for AwsConfigCredentials {
    async fn credentials(&self) -> Result<Credentials> {
        // Held across the refresh: concurrent callers share its outcome.
        let mut cached = self.cache.lock().await;
        let now = self.clock.now();
        if let Some(c) = cached.as_ref().filter(|c| self.fresh(c, now)) {
            return Ok(c.clone());
        }
        let fetched = self.provider().await.provide_credentials().await;
        match fetched {
            Ok(c) => {
                let c = from_sdk(&c)?;
                *cached = Some(c.clone());
                Ok(c)
            }
            Err(e) => {
                let e = map_error(e);
                match cached.as_ref().filter(|c| !c.is_expired_at(now)) {
                    Some(c) => {
                        tracing::warn!(error = %e, "AWS credentials refresh failed; using the current ones until they expire");
                        Ok(c.clone())
                    }
                    None => Err(e),
                }
            }
        }
    }
}

fn from_sdk(c: &aws_credential_types::Credentials) -> Result<Credentials> {
    let mut out = Credentials::new(c.access_key_id(), c.secret_access_key());
    if let Some(t) = c.session_token() {
        out = out.with_session_token(t);
    }
    if let Some(at) = c.expiry() {
        out = out.with_expiry(at);
    }
    out.check("AWS_ACCESS_KEY_ID")
}

/// The error and its sources, `: `-joined (the SDK's errors put the reason in the sources).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

fn map_error(e: CredentialsError) -> Error {
    let text = chain(&e);
    match &e {
        CredentialsError::CredentialsNotLoaded(_) => Error::configuration(
            "AWS_ACCESS_KEY_ID",
            format!(
                "no AWS credentials from the AWS SDK's default chain (environment, profile files, \
                 web identity, container, instance metadata): {text}"
            ),
        ),
        CredentialsError::InvalidConfiguration(_) => Error::configuration(
            "AWS credentials",
            format!("invalid AWS credentials configuration: {text}"),
        ),
        CredentialsError::ProviderTimedOut(_) => {
            Error::timeout(format!("AWS credentials provider timed out: {text}"))
        }
        _ => Error::unavailable(format!("AWS credentials provider failed: {text}")),
    }
    .with_provider(crate::PROVIDER)
    .with_source(e)
}

#[cfg(test)]
#[path = "sdk_credentials_tests.rs"]
mod tests;
