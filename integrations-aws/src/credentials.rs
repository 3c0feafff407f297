//! AWS credentials: the [`CredentialsProvider`] trait and the providers built in.
//!
//! | provider | reads |
//! |---|---|
//! | [`Credentials`] (static) | itself |
//! | [`EnvironmentCredentials`] | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` |
//! | [`ProfileCredentials`] | the shared `credentials` and `config` files, profile `AWS_PROFILE` (else `default`) |
//! | [`DefaultCredentialsChain`] | the environment, then the profile files |
//!
//! Web identity tokens (`AWS_WEB_IDENTITY_TOKEN_FILE`, IRSA), `role_arn`/`source_profile` role
//! assumption, IAM Identity Center (SSO), `credential_process`, ECS / EKS Pod Identity container
//! credentials and EC2 instance metadata (IMDSv2) come from the AWS SDK's own chain, bridged by
//! `AwsConfigCredentials` behind the feature `aws-config` (heavy: STS, SSO, IMDS clients).
//! Without it, a profile that only configures one of these is reported as a
//! [`Error::Configuration`] naming the setting, and the chain's error names the web identity and
//! container variables it found but cannot use; never silently skipped.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use integrations_core::{Error, Result};

pub use crate::profile::ProfileCredentials;

/// An access key pair with an optional session token. `Debug` never shows the secret or the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    expires_at: Option<SystemTime>,
}

impl Credentials {
    /// Long-lived credentials (an IAM user's access key).
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
            expires_at: None,
        }
    }
    /// Adds the session token of temporary credentials (sent as `X-Amz-Security-Token`).
    #[must_use]
    pub fn with_session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }
    /// Sets when temporary credentials expire; providers refresh before then.
    #[must_use]
    pub fn with_expiry(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }
    /// The access key id (`AKIA…`/`ASIA…`): an identifier, not a secret.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }
    /// The secret access key.
    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }
    /// The session token, for temporary credentials.
    pub fn session_token(&self) -> Option<&str> {
        self.session_token.as_deref()
    }
    /// When these credentials expire, if they do.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }
    /// Whether they have expired at `now`.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    pub(crate) fn to_identity(&self) -> aws_smithy_runtime_api::client::identity::Identity {
        aws_credential_types::Credentials::new(
            self.access_key_id.clone(),
            self.secret_access_key.clone(),
            self.session_token.clone(),
            self.expires_at,
            "integrations-aws",
        )
        .into()
    }

    pub(crate) fn check(self, setting: &'static str) -> Result<Self> {
        if self.access_key_id.is_empty() || self.secret_access_key.is_empty() {
            return Err(Error::configuration(
                setting,
                "access key id and secret access key must both be set and non-empty",
            ));
        }
        Ok(self)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Supplies [`Credentials`] for signing. Called once per request (before its first attempt), so
/// an implementation that fetches temporary credentials must cache them and refresh before
/// [`Credentials::expires_at`].
///
/// ```
/// use integrations_aws::{Credentials, CredentialsProvider};
/// use integrations_core::Result;
///
/// #[derive(Debug)]
/// struct FromVault;
///
/// #[async_trait::async_trait]
/// impl CredentialsProvider for FromVault {
///     async fn credentials(&self) -> Result<Credentials> {
///         Ok(Credentials::new("AKIDEXAMPLE", "secret-from-vault"))
///     }
/// }
/// ```
#[async_trait]
pub trait CredentialsProvider: Send + Sync + fmt::Debug {
    /// Current credentials.
    ///
    /// # Errors
    /// [`Error::Configuration`] when none can be found, or whatever fetching them failed with.
    async fn credentials(&self) -> Result<Credentials>;
}

#[async_trait]
impl CredentialsProvider for Credentials {
    async fn credentials(&self) -> Result<Credentials> {
        Ok(self.clone())
    }
}

#[async_trait]
impl<P: CredentialsProvider + ?Sized> CredentialsProvider for Arc<P> {
    async fn credentials(&self) -> Result<Credentials> {
        (**self).credentials().await
    }
}

pub(crate) type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

pub(crate) fn process_env() -> EnvLookup {
    Arc::new(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

/// Reads `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` on every call.
#[derive(Clone)]
pub struct EnvironmentCredentials {
    env: EnvLookup,
}

impl EnvironmentCredentials {
    /// From the process environment.
    pub fn new() -> Self {
        EnvironmentCredentials { env: process_env() }
    }
    pub(crate) fn with_lookup(env: EnvLookup) -> Self {
        EnvironmentCredentials { env }
    }
    fn load(&self) -> Option<Result<Credentials>> {
        let id = (self.env)("AWS_ACCESS_KEY_ID")?;
        let Some(secret) = (self.env)("AWS_SECRET_ACCESS_KEY") else {
            return Some(Err(Error::configuration(
                "AWS_SECRET_ACCESS_KEY",
                "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not",
            )));
        };
        let mut c = Credentials::new(id, secret);
        if let Some(t) = (self.env)("AWS_SESSION_TOKEN") {
            c = c.with_session_token(t);
        }
        Some(c.check("AWS_ACCESS_KEY_ID"))
    }
}

impl Default for EnvironmentCredentials {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for EnvironmentCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvironmentCredentials")
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl CredentialsProvider for EnvironmentCredentials {
    async fn credentials(&self) -> Result<Credentials> {
        self.load().unwrap_or_else(|| {
            Err(Error::configuration(
                "AWS_ACCESS_KEY_ID",
                "AWS_ACCESS_KEY_ID is not set",
            ))
        })
    }
}

/// Variables of credential sources this crate's own chain does not implement (web identity,
/// ECS/EKS Pod Identity container credentials): named in the chain's error when they are set, so
/// a service on such a role learns why it has no credentials instead of guessing.
pub(crate) const UNSUPPORTED_SOURCE_VARS: &[&str] = &[
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
];

/// The environment first, then the profile files; the first that has keys wins.
///
/// Web identity (IRSA), container (ECS, EKS Pod Identity) and instance-metadata (EC2) roles,
/// SSO and `credential_process` are not part of it: with the feature `aws-config`, use
/// `AwsConfigCredentials`, which runs the AWS SDK's own default chain. When no keys are found
/// and one of those sources' variables is set, the error names it.
pub struct DefaultCredentialsChain {
    env: EnvironmentCredentials,
    profile: ProfileCredentials,
    lookup: EnvLookup,
}

impl DefaultCredentialsChain {
    /// From the process environment.
    pub fn new() -> Self {
        Self::with_lookup(&process_env())
    }
    pub(crate) fn with_lookup(env: &EnvLookup) -> Self {
        DefaultCredentialsChain {
            env: EnvironmentCredentials::with_lookup(env.clone()),
            profile: ProfileCredentials::with_lookup(env),
            lookup: env.clone(),
        }
    }
}

impl fmt::Debug for DefaultCredentialsChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultCredentialsChain")
            .field("env", &self.env)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl Default for DefaultCredentialsChain {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl CredentialsProvider for DefaultCredentialsChain {
    async fn credentials(&self) -> Result<Credentials> {
        if let Some(c) = self.env.load() {
            return c;
        }
        self.profile.credentials().await.map_err(|e| {
            let found: Vec<&str> = UNSUPPORTED_SOURCE_VARS
                .iter()
                .copied()
                .filter(|v| (self.lookup)(v).is_some())
                .collect();
            let unusable = if found.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} set, but this chain reads keys only: enable the `aws-config` feature \
                     (AwsConfigCredentials, used by AwsBuilder::from_env) for web identity and \
                     container credentials",
                    found.join(", ")
                )
            };
            Error::configuration(
                "AWS_ACCESS_KEY_ID",
                format!(
                    "no AWS credentials in the environment, and the profile files: {e}{unusable}"
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    pub(crate) fn lookup(pairs: &[(&str, &str)]) -> EnvLookup {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Arc::new(move |k| m.get(k).cloned())
    }

    #[test]
    fn debug_never_shows_secret_or_token() {
        let c = Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/SECRET")
            .with_session_token("FwoGZXIvYXdzTOKEN");
        let d = format!("{c:?}");
        assert!(d.contains("AKIDEXAMPLE"), "{d}");
        assert!(!d.contains("SECRET") && !d.contains("TOKEN"), "{d}");
    }

    #[tokio::test]
    async fn environment_reads_all_three() {
        let env = lookup(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
            ("AWS_SESSION_TOKEN", "tok"),
        ]);
        let c = EnvironmentCredentials::with_lookup(env)
            .credentials()
            .await
            .unwrap();
        assert_eq!(c.access_key_id(), "AKID");
        assert_eq!(c.secret_access_key(), "s3cr3t");
        assert_eq!(c.session_token(), Some("tok"));
    }

    #[tokio::test]
    async fn environment_names_the_missing_secret() {
        let env = lookup(&[("AWS_ACCESS_KEY_ID", "AKID")]);
        let e = EnvironmentCredentials::with_lookup(env)
            .credentials()
            .await
            .unwrap_err();
        assert_eq!(e.field(), Some("AWS_SECRET_ACCESS_KEY"));
    }

    #[tokio::test]
    async fn chain_error_names_the_role_variables_it_cannot_use() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none");
        let missing = missing.to_str().unwrap();
        let base = [
            ("AWS_SHARED_CREDENTIALS_FILE", missing),
            ("AWS_CONFIG_FILE", missing),
        ];
        let e = DefaultCredentialsChain::with_lookup(&lookup(&base))
            .credentials()
            .await
            .unwrap_err();
        assert_eq!(e.field(), Some("AWS_ACCESS_KEY_ID"));
        assert!(!e.to_string().contains("aws-config"), "{e}");

        let mut env = base.to_vec();
        env.extend([
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/eks/token"),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/app"),
            (
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "/v2/credentials/x",
            ),
        ]);
        let e = DefaultCredentialsChain::with_lookup(&lookup(&env))
            .credentials()
            .await
            .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains(
                "AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI set"
            ),
            "{m}"
        );
        assert!(m.contains("`aws-config` feature"), "{m}");
        assert!(!m.contains("/var/run/secrets"), "values stay out: {m}");
    }

    #[tokio::test]
    async fn chain_falls_back_to_profile_files() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("credentials");
        let config = dir.path().join("config");
        std::fs::write(
            &creds,
            "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = d\n\n\
             [work]\naws_access_key_id=AKIDWORK\naws_secret_access_key=w\naws_session_token=t\n",
        )
        .unwrap();
        std::fs::write(&config, "[profile sso]\nsso_start_url = https://x\n").unwrap();
        let (c, f) = (creds.to_str().unwrap(), config.to_str().unwrap());
        let env = lookup(&[
            ("AWS_PROFILE", "work"),
            ("AWS_SHARED_CREDENTIALS_FILE", c),
            ("AWS_CONFIG_FILE", f),
        ]);
        let got = DefaultCredentialsChain::with_lookup(&env)
            .credentials()
            .await
            .unwrap();
        assert_eq!(got.access_key_id(), "AKIDWORK");
        assert_eq!(got.session_token(), Some("t"));

        let env = lookup(&[
            ("AWS_PROFILE", "sso"),
            ("AWS_SHARED_CREDENTIALS_FILE", c),
            ("AWS_CONFIG_FILE", f),
        ]);
        let e = ProfileCredentials::with_lookup(&env)
            .credentials()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("sso_start_url"), "{e}");
    }
}
