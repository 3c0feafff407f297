//! Where access tokens come from: the [`TokenProvider`] trait and the providers built in.
//!
//! | provider | source |
//! |---|---|
//! | [`ServiceAccountTokens`] | a service-account key: an RS256 JWT assertion exchanged at the token endpoint |
//! | [`AuthorizedUserTokens`] | `authorized_user` application-default credentials (`gcloud auth application-default login`): the refresh-token grant |
//! | [`MetadataServerTokens`] | the metadata server of GCE, GKE (Workload Identity), Cloud Run and Cloud Functions |
//! | [`default_token_provider`] | the first of these that Google's own auth libraries would pick |
//!
//! A provider only fetches; the Sheets client caches the token, refreshes it before expiry with
//! one request shared by concurrent callers, and fetches a new one after a `401`.
//!
//! These are written here rather than taken from `gcp_auth` or `google-cloud-auth`: each would
//! bring its own HTTP stack and token cache next to core's policy (retries, timeouts, metrics)
//! and the single-flight cache this crate already has, for three small wire exchanges.

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use integrations_core::http::{self, HttpClient, HttpResponse};
use integrations_core::{Error, Policy, Result};
use serde::Deserialize;

use crate::client::parse_error;
use crate::credentials::{GOOGLE_TOKEN_URI, ServiceAccountKey};

pub use crate::adc::{MetadataServerTokens, default_token_provider};

/// What a [`TokenProvider`] is asked for, and what it fetches with: the builder's HTTP client and
/// token-endpoint policy (retries, timeout, metrics).
#[derive(Debug)]
#[non_exhaustive]
pub struct TokenRequest<'a> {
    /// OAuth scopes, space-separated.
    pub scope: &'a str,
    /// The HTTP client.
    pub http: &'a HttpClient,
    /// The token-endpoint policy.
    pub policy: &'a Policy,
}

impl<'a> TokenRequest<'a> {
    /// A request for `scope` sent with `http` under `policy`.
    pub fn new(scope: &'a str, http: &'a HttpClient, policy: &'a Policy) -> Self {
        TokenRequest {
            scope,
            http,
            policy,
        }
    }
}

/// A bearer token and how long it lives. `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct FetchedToken {
    access_token: String,
    expires_in: Option<Duration>,
}

impl FetchedToken {
    /// `access_token`, valid for `expires_in` (`None`: an hour, Google's lifetime).
    pub fn new(access_token: impl Into<String>, expires_in: Option<Duration>) -> Self {
        FetchedToken {
            access_token: access_token.into(),
            expires_in,
        }
    }
    /// The bearer token.
    pub fn access_token(&self) -> &str {
        &self.access_token
    }
    /// How long it lives, as the issuer said.
    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_in
    }
}

impl fmt::Debug for FetchedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchedToken")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Fetches OAuth 2.0 access tokens for Google APIs (the counterpart of `integrations-aws`'s
/// `CredentialsProvider`). Called only when the client's cached token is missing, expiring within
/// the refresh margin, or refused with `401`.
///
/// ```
/// use integrations_sheets::token::{FetchedToken, TokenProvider, TokenRequest};
///
/// #[derive(Debug)]
/// struct FromVault;
///
/// #[async_trait::async_trait]
/// impl TokenProvider for FromVault {
///     async fn fetch_token(&self, _req: &TokenRequest<'_>) -> integrations_core::Result<FetchedToken> {
///         Ok(FetchedToken::new("ya29.from-vault", None))
///     }
/// }
/// ```
#[async_trait]
pub trait TokenProvider: Send + Sync + fmt::Debug {
    /// A new access token for `req.scope`.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] when the credentials are refused, [`Error::Configuration`] when
    /// they are unusable, transport and policy errors.
    async fn fetch_token(&self, req: &TokenRequest<'_>) -> Result<FetchedToken>;

    /// The account the tokens act as, when known without a request (a service account's email).
    fn principal(&self) -> Option<&str> {
        None
    }
}

#[async_trait]
impl<P: TokenProvider + ?Sized> TokenProvider for std::sync::Arc<P> {
    async fn fetch_token(&self, req: &TokenRequest<'_>) -> Result<FetchedToken> {
        (**self).fetch_token(req).await
    }
    fn principal(&self) -> Option<&str> {
        (**self).principal()
    }
}

/// An OAuth token endpoint's answer (RFC 6749 §5.1).
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

impl TokenResponse {
    pub(crate) fn into_token(self, source: &str) -> Result<FetchedToken> {
        if self.access_token.is_empty() {
            return Err(
                Error::provider(format!("{source} returned an empty access token"))
                    .with_provider(crate::PROVIDER),
            );
        }
        Ok(FetchedToken::new(
            self.access_token,
            self.expires_in.map(Duration::from_secs),
        ))
    }
}

/// POSTs `form` to `url` under the request's policy and reads the token response.
async fn token_grant(
    req: &TokenRequest<'_>,
    url: &str,
    form: &[(&str, &str)],
) -> Result<FetchedToken> {
    let resp: HttpResponse = http::send_via(
        req.http,
        req.policy,
        "oauth.token",
        |_| req.http.post(url).form(form),
        parse_error,
    )
    .await?;
    resp.json::<TokenResponse>()?
        .into_token("the token endpoint")
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A service-account key's tokens: an RS256 assertion (audience: the key's `token_uri`) exchanged
/// with the JWT-bearer grant at the token URL (default: the key's `token_uri`).
#[derive(Debug, Clone)]
pub struct ServiceAccountTokens {
    key: ServiceAccountKey,
    token_url: String,
}

impl ServiceAccountTokens {
    /// Exchanging at the key's `token_uri`.
    pub fn new(key: ServiceAccountKey) -> Self {
        let token_url = key.token_uri().to_owned();
        ServiceAccountTokens { key, token_url }
    }
    /// Exchanging at `url` (an emulator, the sandbox); the assertion's audience stays the key's
    /// `token_uri`, as Google requires.
    #[must_use]
    pub fn with_token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = url.into();
        self
    }
    /// The key.
    pub fn key(&self) -> &ServiceAccountKey {
        &self.key
    }
    /// Where assertions are exchanged.
    pub fn token_url(&self) -> &str {
        &self.token_url
    }
}

#[async_trait]
impl TokenProvider for ServiceAccountTokens {
    async fn fetch_token(&self, req: &TokenRequest<'_>) -> Result<FetchedToken> {
        let assertion = self
            .key
            .assertion(req.scope, self.key.token_uri(), SystemTime::now())?;
        token_grant(
            req,
            &self.token_url,
            &[("grant_type", JWT_BEARER), ("assertion", &assertion)],
        )
        .await
    }
    fn principal(&self) -> Option<&str> {
        Some(self.key.client_email())
    }
}

/// `authorized_user` credentials (what `gcloud auth application-default login` writes): a client
/// id and secret and a refresh token, exchanged with the refresh-token grant.
///
/// As in Google's libraries, no `scope` is sent: the token carries the scopes granted at login,
/// so log in with the Sheets scope
/// (`gcloud auth application-default login --scopes=https://www.googleapis.com/auth/spreadsheets,https://www.googleapis.com/auth/cloud-platform`).
/// `Debug` never shows the client secret or the refresh token.
#[derive(Clone)]
pub struct AuthorizedUserTokens {
    client_id: String,
    client_secret: String,
    refresh_token: String,
    token_url: String,
}

#[derive(Deserialize)]
struct AuthorizedUserFile {
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    token_uri: Option<String>,
}

impl AuthorizedUserTokens {
    /// From the three values, exchanging at [`GOOGLE_TOKEN_URI`].
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        refresh_token: impl Into<String>,
    ) -> Self {
        AuthorizedUserTokens {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            refresh_token: refresh_token.into(),
            token_url: GOOGLE_TOKEN_URI.to_owned(),
        }
    }
    /// Parses an `authorized_user` JSON file; `setting` names where it came from in errors.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming `setting`: not JSON, or `client_id`, `client_secret` or
    /// `refresh_token` missing (the message names the field, never a value).
    pub fn from_json(
        json: &str,
        setting: impl Into<std::borrow::Cow<'static, str>>,
    ) -> Result<Self> {
        let setting = setting.into();
        let bad = |msg: String| Error::configuration(setting.clone(), msg);
        let file: AuthorizedUserFile = serde_json::from_str(json)
            .map_err(|e| bad("is not a JSON authorized_user credential".into()).with_source(e))?;
        let required = |v: Option<String>, field: &str| {
            v.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
                bad(format!(
                    "`{field}` is missing from the authorized_user credential"
                ))
            })
        };
        let mut t = AuthorizedUserTokens::new(
            required(file.client_id, "client_id")?,
            required(file.client_secret, "client_secret")?,
            required(file.refresh_token, "refresh_token")?,
        );
        if let Some(uri) = file.token_uri.filter(|s| !s.is_empty()) {
            t.token_url = uri;
        }
        Ok(t)
    }
    /// Exchanging at `url` instead (tests, emulators).
    #[must_use]
    pub fn with_token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = url.into();
        self
    }
    /// The OAuth client id (not a secret).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
    /// Where the refresh token is exchanged.
    pub fn token_url(&self) -> &str {
        &self.token_url
    }
}

impl fmt::Debug for AuthorizedUserTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizedUserTokens")
            .field("client_id", &self.client_id)
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TokenProvider for AuthorizedUserTokens {
    async fn fetch_token(&self, req: &TokenRequest<'_>) -> Result<FetchedToken> {
        token_grant(
            req,
            &self.token_url,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &self.client_id),
                ("client_secret", &self.client_secret),
                ("refresh_token", &self.refresh_token),
            ],
        )
        .await
    }
}
