//! [`GoogleSheetsBuilder`]: credentials, spreadsheet, endpoints, policies, batching.

use std::borrow::Cow;
use std::fmt;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use integrations_core::http::HttpClient;
use integrations_core::metrics::MetricsRegistry;
use integrations_core::resilience::{Backoff, PolicyBuilder, RateLimiter, RetryPolicy};
use integrations_core::{Error, Policy, Result};

use crate::PROVIDER;
use crate::adc::{CredentialsFile, Either, after_env, metadata_host, well_known_file};
use crate::auth::TokenSource;
use crate::client::{GoogleSheetsClient, Inner};
use crate::credentials::{SPREADSHEETS_SCOPE, ServiceAccountKey};
use crate::sink::{BatchConfig, GoogleSheetsSink};
use crate::token::TokenProvider;
use crate::values::ValueInputOption;

/// Path to (or, if it starts with `{`, the JSON of) a `service_account` key or an
/// `authorized_user` credential.
pub const ENV_CREDENTIALS: &str = "GOOGLE_APPLICATION_CREDENTIALS";
/// The spreadsheet id (from its URL: `/spreadsheets/d/<id>/edit`).
pub const ENV_SPREADSHEET_ID: &str = "GOOGLE_SHEETS_SPREADSHEET_ID";
/// Optional API base URL (emulators, the sandbox).
pub const ENV_BASE_URL: &str = "GOOGLE_SHEETS_BASE_URL";
/// Optional token endpoint URL.
pub const ENV_TOKEN_URL: &str = "GOOGLE_OAUTH_TOKEN_URL";
/// Google Sheets API base URL.
pub const DEFAULT_BASE_URL: &str = "https://sheets.googleapis.com/";
/// Google's published per-user write (and read) quota: 60 requests a minute.
pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 60;
/// How long before expiry the access token is refreshed.
pub const DEFAULT_REFRESH_BEFORE: Duration = Duration::from_secs(300);

#[derive(Clone)]
enum Credentials {
    Json(String, Cow<'static, str>),
    File(PathBuf, Cow<'static, str>),
    Key(ServiceAccountKey),
    Provider(Arc<dyn TokenProvider>),
    /// No `GOOGLE_APPLICATION_CREDENTIALS`: gcloud's well-known file, else the metadata server.
    Adc {
        well_known: Option<PathBuf>,
        metadata_host: String,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Json(_, from) => write!(f, "Json(from {from})"),
            Credentials::File(p, _) => write!(f, "File({})", p.display()),
            Credentials::Key(k) => write!(f, "Key({})", k.client_email()),
            Credentials::Provider(p) => write!(f, "Provider({p:?})"),
            Credentials::Adc {
                well_known,
                metadata_host,
            } => write!(
                f,
                "Adc(well_known: {:?}, metadata_host: {metadata_host})",
                well_known.as_ref().map(|p| p.display().to_string())
            ),
        }
    }
}

/// Builds a [`GoogleSheetsClient`] or a [`GoogleSheetsSink`].
///
/// ```no_run
/// # async fn demo() -> integrations_core::Result<()> {
/// use integrations_sheets::GoogleSheetsBuilder;
///
/// // GOOGLE_APPLICATION_CREDENTIALS=/secrets/sa.json GOOGLE_SHEETS_SPREADSHEET_ID=1AbC…
/// let sink = GoogleSheetsBuilder::from_env().build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use = "call `build()` or `build()`"]
pub struct GoogleSheetsBuilder {
    credentials: Option<Credentials>,
    spreadsheet_id: Option<String>,
    base_url: String,
    token_url: Option<String>,
    scope: String,
    http: Option<HttpClient>,
    write_policy: Option<Policy>,
    read_policy: Option<Policy>,
    token_policy: Option<Policy>,
    metrics: Option<MetricsRegistry>,
    writes_per_minute: NonZeroU32,
    reads_per_minute: NonZeroU32,
    refresh_before: Duration,
    value_input: ValueInputOption,
    batch: BatchConfig,
    allow_http: bool,
}

impl fmt::Debug for GoogleSheetsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleSheetsBuilder")
            .field("credentials", &self.credentials)
            .field("spreadsheet_id", &self.spreadsheet_id)
            .field("base_url", &self.base_url)
            .field("token_url", &self.token_url)
            .field("scope", &self.scope)
            .field("writes_per_minute", &self.writes_per_minute)
            .field("reads_per_minute", &self.reads_per_minute)
            .field("value_input", &self.value_input)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl Default for GoogleSheetsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds a default policy, in `registry` if the builder was given one.
fn finish(registry: &Option<MetricsRegistry>, builder: PolicyBuilder) -> Policy {
    match registry {
        Some(registry) => builder.metrics(registry),
        None => builder,
    }
    .build()
}

fn per_minute(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl GoogleSheetsBuilder {
    /// An empty builder: Google's endpoints, the spreadsheets scope, 60 writes and 60 reads a
    /// minute, `RAW` input, [`BatchConfig::DEFAULT`]. Credentials and spreadsheet id are required.
    pub fn new() -> Self {
        GoogleSheetsBuilder {
            credentials: None,
            spreadsheet_id: None,
            base_url: DEFAULT_BASE_URL.to_owned(),
            token_url: None,
            scope: SPREADSHEETS_SCOPE.to_owned(),
            http: None,
            write_policy: None,
            read_policy: None,
            token_policy: None,
            metrics: None,
            writes_per_minute: per_minute(DEFAULT_REQUESTS_PER_MINUTE),
            reads_per_minute: per_minute(DEFAULT_REQUESTS_PER_MINUTE),
            refresh_before: DEFAULT_REFRESH_BEFORE,
            value_input: ValueInputOption::Raw,
            allow_http: false,
            batch: BatchConfig::DEFAULT,
        }
    }

    /// Reads [`ENV_SPREADSHEET_ID`], optionally [`ENV_BASE_URL`] and [`ENV_TOKEN_URL`], and takes
    /// credentials in the order of Google's auth libraries: [`ENV_CREDENTIALS`] (a file path, or
    /// the JSON itself: `service_account` or `authorized_user`), else gcloud's well-known file
    /// (`$CLOUDSDK_CONFIG` or `~/.config/gcloud`, `application_default_credentials.json`), else
    /// the metadata server (`GCE_METADATA_HOST` or `metadata.google.internal`). Files are read by
    /// [`build`](Self::build), which reports whatever is missing; the metadata server is first
    /// asked for a token at the first call.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup` (tests pass a map
    /// instead of changing the process environment, which other threads may be reading).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut b = Self::new();
        if let Some(v) = var(ENV_CREDENTIALS) {
            b.credentials = Some(if v.trim_start().starts_with('{') {
                Credentials::Json(v, Cow::Borrowed(ENV_CREDENTIALS))
            } else {
                Credentials::File(PathBuf::from(v), Cow::Borrowed(ENV_CREDENTIALS))
            });
        } else {
            let lookup: &dyn Fn(&str) -> Option<String> = &lookup;
            b.credentials = Some(Credentials::Adc {
                well_known: well_known_file(lookup),
                metadata_host: metadata_host(lookup),
            });
        }
        b.spreadsheet_id = var(ENV_SPREADSHEET_ID);
        if let Some(v) = var(ENV_BASE_URL) {
            b = b.with_base_url(v);
        }
        b.token_url = var(ENV_TOKEN_URL);
        b
    }

    /// The service-account key's JSON.
    pub fn with_credentials_json(mut self, json: impl Into<String>) -> Self {
        self.credentials = Some(Credentials::Json(
            json.into(),
            Cow::Borrowed("credentials_json"),
        ));
        self
    }
    /// The path of the service-account key file.
    pub fn with_credentials_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.credentials = Some(Credentials::File(
            path.into(),
            Cow::Borrowed("credentials_file"),
        ));
        self
    }
    /// An already parsed key.
    pub fn with_service_account_key(mut self, key: ServiceAccountKey) -> Self {
        self.credentials = Some(Credentials::Key(key));
        self
    }
    /// Any [`TokenProvider`] ([`MetadataServerTokens`](crate::MetadataServerTokens),
    /// [`AuthorizedUserTokens`](crate::AuthorizedUserTokens), your own). The token URL setting
    /// does not apply to it.
    pub fn with_token_provider(mut self, provider: impl TokenProvider + 'static) -> Self {
        self.credentials = Some(Credentials::Provider(Arc::new(provider)));
        self
    }
    /// The spreadsheet to write to.
    pub fn with_spreadsheet_id(mut self, id: impl Into<String>) -> Self {
        self.spreadsheet_id = Some(id.into());
        self
    }
    /// Allows plain `http` to hosts other than loopback (a proxy or emulator in another
    /// container). Without it the base and token URLs (the token URL defaults to the key file's `token_uri`) must be `https`, or `http` to `localhost`, `127.0.0.0/8` or
    /// `[::1]` (core's [`check_base_url`](integrations_core::http::check_base_url)), so the
    /// credentials never cross a network in clear text by mistake.
    pub fn with_allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// The API base URL (default [`DEFAULT_BASE_URL`]).
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        let mut url = url.into();
        if !url.ends_with('/') {
            url.push('/');
        }
        self.base_url = url;
        self
    }
    /// The token endpoint (default: the key's `token_uri`). The assertion's audience stays the
    /// key's `token_uri`, as Google requires.
    pub fn with_token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = Some(url.into());
        self
    }
    /// OAuth scopes, space-separated (default [`SPREADSHEETS_SCOPE`]).
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }
    /// The HTTP client for the API and the token endpoint (default: core's shared rustls
    /// client): a `reqwest::Client`, or with feature `reqwest-middleware` a
    /// `reqwest_middleware::ClientWithMiddleware` (its middleware sees every attempt, token
    /// fetches included).
    pub fn with_http_client(mut self, client: impl Into<HttpClient>) -> Self {
        self.http = Some(client.into());
        self
    }
    /// Write quota for the default write policy (default 60 a minute per user; a project-wide
    /// 300 applies across users).
    pub fn with_writes_per_minute(mut self, n: u32) -> Self {
        self.writes_per_minute = per_minute(n);
        self
    }
    /// Read quota for the default read policy (default 60 a minute per user).
    pub fn with_reads_per_minute(mut self, n: u32) -> Self {
        self.reads_per_minute = per_minute(n);
        self
    }
    /// Replaces the default write policy (see [`GoogleSheetsBuilder::default_write_policy`]).
    pub fn with_write_policy(mut self, policy: Policy) -> Self {
        self.write_policy = Some(policy);
        self
    }
    /// Replaces the default read policy.
    pub fn with_read_policy(mut self, policy: Policy) -> Self {
        self.read_policy = Some(policy);
        self
    }
    /// Replaces the default token-endpoint policy.
    pub fn with_token_policy(mut self, policy: Policy) -> Self {
        self.token_policy = Some(policy);
        self
    }
    /// How long before expiry the access token is refreshed (default 5 min; at most half the
    /// token's lifetime is used).
    pub fn with_refresh_before(mut self, d: Duration) -> Self {
        self.refresh_before = d;
        self
    }
    /// How written strings are interpreted (default `RAW`).
    pub fn with_value_input(mut self, option: ValueInputOption) -> Self {
        self.value_input = option;
        self
    }
    /// The sink's batching (default [`BatchConfig::DEFAULT`]).
    pub fn with_batch(mut self, batch: BatchConfig) -> Self {
        self.batch = batch;
        self
    }

    /// The registry the default policies record into, instead of the global one (your service's
    /// registry, for its `/metrics`). Policies given with `with_*_policy` keep their own.
    pub fn with_metrics(mut self, registry: &MetricsRegistry) -> Self {
        self.metrics = Some(registry.clone());
        self
    }

    /// The default write policy: at most `per_minute` writes in any minute (evenly spaced: a
    /// permit every `60 s / per_minute`, so Google's per-minute windows are never exceeded), a
    /// permit waited for up to a minute, 5 retries with backoff 1 s … 32 s (Google's advice for
    /// 429), 30 s per attempt, circuit breaker. Records into the global registry; see
    /// [`default_write_policy_builder`](Self::default_write_policy_builder).
    pub fn default_write_policy(per_minute: NonZeroU32) -> Policy {
        Self::default_write_policy_builder(per_minute).build()
    }
    /// [`default_write_policy`](Self::default_write_policy)'s settings as a builder, to adjust
    /// before building (`.metrics(&registry)`, another attempt timeout, …).
    pub fn default_write_policy_builder(per_minute: NonZeroU32) -> PolicyBuilder {
        Policy::builder(PROVIDER)
            .rate_limiter(
                RateLimiter::per_minute(per_minute)
                    .with_burst(NonZeroU32::MIN)
                    .with_max_wait(Duration::from_secs(60)),
            )
            .retry(RetryPolicy::new(
                5,
                Backoff::new(Duration::from_secs(1), Duration::from_secs(32), 2.0),
            ))
            .attempt_timeout(Duration::from_secs(30))
    }
    /// The default read policy: as the write policy, on its own limiter (Google counts reads
    /// separately).
    pub fn default_read_policy(per_minute: NonZeroU32) -> Policy {
        Self::default_write_policy(per_minute)
    }
    /// The default token-endpoint policy: 3 retries with core's default backoff, 30 s per
    /// attempt, no rate limit.
    pub fn default_token_policy() -> Policy {
        Self::default_token_policy_builder().build()
    }
    /// [`default_token_policy`](Self::default_token_policy)'s settings as a builder.
    pub fn default_token_policy_builder() -> PolicyBuilder {
        Policy::builder(PROVIDER)
            .retry(RetryPolicy::DEFAULT)
            .attempt_timeout(Duration::from_secs(30))
    }

    fn check_url(setting: &'static str, url: &str, allow_http: bool) -> Result<()> {
        integrations_core::http::check_base_url(setting, url, allow_http)
            .map(drop)
            .map_err(|e| e.with_provider(PROVIDER))
    }

    /// Builds only the raw values-API client, without the sink and its flush task: for reads,
    /// updates and appends the [`SheetsSink`](integrations_core::SheetsSink) trait does not cover.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming what is missing or malformed: the credentials
    /// ([`ENV_CREDENTIALS`], `credentials_json`, `credentials_file`, the well-known file's path:
    /// absent, unreadable, of an unsupported `type`, a field missing, bad PEM), the spreadsheet id ([`ENV_SPREADSHEET_ID`]), `base_url`,
    /// `token_url`, `scope`, or `http_client`.
    pub fn build_client(self) -> Result<GoogleSheetsClient> {
        let file = match self.credentials {
            None => {
                return Err(Error::configuration(
                    ENV_CREDENTIALS,
                    "no credentials: set GOOGLE_APPLICATION_CREDENTIALS to a key file's path, use with_credentials_json / with_credentials_file / with_token_provider, or GoogleSheetsBuilder::from_env for application default credentials",
                ));
            }
            Some(Credentials::Json(json, from)) => {
                Either::File(CredentialsFile::from_json(&json, from)?)
            }
            Some(Credentials::File(path, from)) => {
                Either::File(CredentialsFile::from_file(&path, from)?)
            }
            Some(Credentials::Key(key)) => Either::File(CredentialsFile::ServiceAccount(key)),
            Some(Credentials::Adc {
                well_known,
                metadata_host,
            }) => after_env(well_known.as_deref(), &metadata_host)?,
            Some(Credentials::Provider(p)) => Either::Provider(p),
        };
        let spreadsheet_id = self
            .spreadsheet_id
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                Error::configuration(ENV_SPREADSHEET_ID, "no spreadsheet id: set GOOGLE_SHEETS_SPREADSHEET_ID or use with_spreadsheet_id")
            })?;
        Self::check_url("base_url", &self.base_url, self.allow_http)?;
        let provider: Arc<dyn TokenProvider> = match file {
            Either::File(f) => {
                let override_url = self.token_url.as_deref();
                Self::check_url("token_url", f.token_url(override_url), self.allow_http)?;
                f.into_provider(override_url)
            }
            Either::Metadata(m) => Arc::new(m),
            Either::Provider(p) => p,
        };
        if self.scope.trim().is_empty() {
            return Err(Error::configuration("scope", "no OAuth scope"));
        }
        let token_policy = match self.token_policy {
            Some(p) => p,
            None => finish(&self.metrics, Self::default_token_policy_builder()),
        };
        let write_policy = match self.write_policy {
            Some(p) => p,
            None => finish(
                &self.metrics,
                Self::default_write_policy_builder(self.writes_per_minute),
            ),
        };
        let read_policy = match self.read_policy {
            Some(p) => p,
            None => finish(
                &self.metrics,
                Self::default_write_policy_builder(self.reads_per_minute),
            ),
        };
        let http = self
            .http
            .unwrap_or_else(|| integrations_core::http::default_client().into());
        let tokens = TokenSource::new(
            provider,
            self.scope,
            http.clone(),
            token_policy,
            self.refresh_before,
        );
        Ok(GoogleSheetsClient::from_parts(
            Inner {
                http,
                base_url: self.base_url,
                spreadsheet_id,
                tokens,
                write_policy,
                read_policy,
            },
            self.value_input,
        ))
    }

    /// Builds the client and a [`GoogleSheetsSink`] over it (its flusher runs on the current
    /// tokio runtime).
    ///
    /// # Errors
    /// As [`build_client`](Self::build_client); [`Error::Configuration`] naming `runtime` outside a tokio
    /// runtime.
    pub fn build(self) -> Result<GoogleSheetsSink> {
        let batch = self.batch;
        GoogleSheetsSink::new(self.build_client()?, batch)
    }
}
