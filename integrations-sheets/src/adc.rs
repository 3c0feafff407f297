//! Application default credentials: the metadata server, and choosing a source in the order
//! Google's auth libraries use (google-auth-library-python's `google.auth.default`, and the
//! Go, Java and Node libraries alike):
//!
//! 1. `GOOGLE_APPLICATION_CREDENTIALS`: a credentials file (here also its JSON inline), a
//!    `service_account` key or an `authorized_user` credential by its `type`;
//! 2. gcloud's well-known file, `application_default_credentials.json` in `$CLOUDSDK_CONFIG`,
//!    else `~/.config/gcloud` (`%APPDATA%\gcloud` on Windows), written by
//!    `gcloud auth application-default login`;
//! 3. the metadata server (GCE, GKE Workload Identity, Cloud Run, Cloud Functions), at
//!    `GCE_METADATA_HOST` if set, else `metadata.google.internal`.
//!
//! Unlike Google's libraries, the metadata server is not probed while choosing (no network in a
//! builder): it is chosen last, and when it does not answer the error says that none of the three
//! sources was found.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use integrations_core::http::{self, HttpResponse};
use integrations_core::{Error, ErrorKind, Result};

use crate::client::parse_error;
use crate::config::ENV_CREDENTIALS;
use crate::credentials::ServiceAccountKey;
use crate::token::{
    AuthorizedUserTokens, FetchedToken, ServiceAccountTokens, TokenProvider, TokenRequest,
    TokenResponse,
};

/// Overrides the metadata server's host (`host` or `host:port`), as in Google's libraries.
pub const ENV_METADATA_HOST: &str = "GCE_METADATA_HOST";
/// The metadata server's host on Google Cloud.
pub const DEFAULT_METADATA_HOST: &str = "metadata.google.internal";
/// The file gcloud writes for application default credentials.
const WELL_KNOWN_FILE: &str = "application_default_credentials.json";

/// Tokens of the service account attached to the workload, from the metadata server:
/// `GET http://<host>/computeMetadata/v1/instance/service-accounts/<account>/token?scopes=<a,b>`
/// with `Metadata-Flavor: Google`. An answer without `Metadata-Flavor: Google` is refused (it did
/// not come from a metadata server).
///
/// The metadata server speaks plain HTTP on a link-local address inside the VM or node; it is the
/// one non-loopback `http` endpoint this crate calls without `with_allow_http`.
#[derive(Clone)]
pub struct MetadataServerTokens {
    host: String,
    account: String,
    /// Said when it does not answer: which sources were looked for before it.
    not_found: Option<String>,
}

impl MetadataServerTokens {
    /// `GCE_METADATA_HOST` if set, else [`DEFAULT_METADATA_HOST`]; the `default` account.
    pub fn new() -> Self {
        Self::with_host(metadata_host(&|k| std::env::var(k).ok()))
    }
    /// At `host` (`host` or `host:port`: `127.0.0.1:8080` for a local stand-in).
    pub fn with_host(host: impl Into<String>) -> Self {
        MetadataServerTokens {
            host: host.into(),
            account: "default".to_owned(),
            not_found: None,
        }
    }
    /// Tokens of `account` (an email attached to the instance) instead of `default`.
    #[must_use]
    pub fn with_account(mut self, account: impl Into<String>) -> Self {
        self.account = account.into();
        self
    }
    /// The host asked.
    pub fn host(&self) -> &str {
        &self.host
    }
    fn url(&self) -> String {
        format!(
            "http://{}/computeMetadata/v1/instance/service-accounts/{}/token",
            self.host, self.account
        )
    }
}

impl Default for MetadataServerTokens {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MetadataServerTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetadataServerTokens")
            .field("host", &self.host)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TokenProvider for MetadataServerTokens {
    async fn fetch_token(&self, req: &TokenRequest<'_>) -> Result<FetchedToken> {
        let url = self.url();
        let scopes = req.scope.split_whitespace().collect::<Vec<_>>().join(",");
        let sent = http::send_via(
            req.http,
            req.policy,
            "metadata.token",
            |_| {
                req.http
                    .get(&url)
                    .header("Metadata-Flavor", "Google")
                    .query(&[("scopes", scopes.as_str())])
            },
            parse_error,
        )
        .await;
        let resp: HttpResponse = match sent {
            Ok(r) => r,
            Err(e) if matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout) => {
                let why = self.not_found.as_deref().unwrap_or("");
                return Err(Error::unavailable(format!(
                    "the metadata server at {} did not answer{why}",
                    self.host
                ))
                .with_provider(crate::PROVIDER)
                .with_source(e));
            }
            Err(e) => return Err(e),
        };
        if resp
            .headers
            .get("metadata-flavor")
            .is_none_or(|v| v != "Google")
        {
            return Err(Error::provider(format!(
                "{} answered without `Metadata-Flavor: Google`: not a metadata server",
                self.host
            ))
            .with_provider(crate::PROVIDER));
        }
        resp.json::<TokenResponse>()?
            .into_token("the metadata server")
    }
}

/// `GCE_METADATA_HOST`, else [`DEFAULT_METADATA_HOST`].
pub(crate) fn metadata_host(lookup: &dyn Fn(&str) -> Option<String>) -> String {
    lookup(ENV_METADATA_HOST)
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_METADATA_HOST.to_owned())
}

/// Where gcloud keeps application default credentials (whether or not the file exists).
pub(crate) fn well_known_file(lookup: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let var = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
    let dir = if let Some(d) = var("CLOUDSDK_CONFIG") {
        PathBuf::from(d)
    } else if cfg!(windows) {
        PathBuf::from(var("APPDATA")?).join("gcloud")
    } else {
        PathBuf::from(var("HOME")?).join(".config").join("gcloud")
    };
    Some(dir.join(WELL_KNOWN_FILE))
}

/// A credentials file's contents, by its `type`.
#[derive(Debug)]
pub(crate) enum CredentialsFile {
    ServiceAccount(ServiceAccountKey),
    AuthorizedUser(AuthorizedUserTokens),
}

#[derive(serde::Deserialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: Option<String>,
}

impl CredentialsFile {
    /// Parses by `type`; `setting` names the source in errors.
    pub(crate) fn from_json(json: &str, setting: Cow<'static, str>) -> Result<Self> {
        let kind: TypeOnly = serde_json::from_str(json).map_err(|e| {
            Error::configuration(setting.clone(), "is not a JSON credentials file").with_source(e)
        })?;
        match kind.kind.as_deref() {
            Some("authorized_user") => {
                AuthorizedUserTokens::from_json(json, setting).map(CredentialsFile::AuthorizedUser)
            }
            Some(other) if other != "service_account" => Err(Error::configuration(
                setting,
                format!(
                    "credentials of type `{other}` are not supported (`service_account` and \
                     `authorized_user` are; implement TokenProvider for others)"
                ),
            )),
            _ => ServiceAccountKey::from_json(json, setting).map(CredentialsFile::ServiceAccount),
        }
    }

    pub(crate) fn from_file(path: &Path, setting: Cow<'static, str>) -> Result<Self> {
        let json = std::fs::read_to_string(path).map_err(|e| {
            Error::configuration(
                setting.clone(),
                format!("cannot read the key file `{}`", path.display()),
            )
            .with_source(e)
        })?;
        Self::from_json(&json, setting)
    }

    /// The provider, exchanging at `token_url` when given.
    pub(crate) fn into_provider(self, token_url: Option<&str>) -> Arc<dyn TokenProvider> {
        match (self, token_url) {
            (CredentialsFile::ServiceAccount(k), None) => Arc::new(ServiceAccountTokens::new(k)),
            (CredentialsFile::ServiceAccount(k), Some(u)) => {
                Arc::new(ServiceAccountTokens::new(k).with_token_url(u))
            }
            (CredentialsFile::AuthorizedUser(t), None) => Arc::new(t),
            (CredentialsFile::AuthorizedUser(t), Some(u)) => Arc::new(t.with_token_url(u)),
        }
    }

    /// The token endpoint it will use with `token_url` given or not.
    pub(crate) fn token_url<'a>(&'a self, token_url: Option<&'a str>) -> &'a str {
        token_url.unwrap_or(match self {
            CredentialsFile::ServiceAccount(k) => k.token_uri(),
            CredentialsFile::AuthorizedUser(t) => t.token_url(),
        })
    }
}

/// The well-known file if it exists, else the metadata server (step 2 and 3 of the order).
pub(crate) fn after_env(well_known: Option<&Path>, metadata_host: &str) -> Result<Either> {
    if let Some(path) = well_known.filter(|p| p.is_file()) {
        let setting = Cow::Owned(path.display().to_string());
        return CredentialsFile::from_file(path, setting).map(Either::File);
    }
    let mut m = MetadataServerTokens::with_host(metadata_host);
    m.not_found = Some(format!(
        " (no Google credentials found: {ENV_CREDENTIALS} is not set, {}, and this is not \
         GCE, GKE or Cloud Run)",
        match well_known {
            Some(p) => format!("no gcloud credentials at `{}`", p.display()),
            None => "no home directory for gcloud's credentials".to_owned(),
        }
    ));
    Ok(Either::Metadata(m))
}

/// A file's credentials, the metadata server, or a provider given to the builder.
#[derive(Debug)]
pub(crate) enum Either {
    File(CredentialsFile),
    Metadata(MetadataServerTokens),
    Provider(Arc<dyn TokenProvider>),
}

/// The provider Google's libraries would choose from the process environment (see the module
/// docs for the order). Reads files, makes no request.
///
/// # Errors
/// [`Error::Configuration`] naming `GOOGLE_APPLICATION_CREDENTIALS` (or the well-known file's
/// path) when the file it names cannot be read or parsed, or is of an unsupported `type`.
pub fn default_token_provider() -> Result<Arc<dyn TokenProvider>> {
    let lookup = |k: &str| std::env::var(k).ok();
    if let Some(v) = lookup(ENV_CREDENTIALS).filter(|v| !v.trim().is_empty()) {
        let setting = Cow::Borrowed(ENV_CREDENTIALS);
        let file = if v.trim_start().starts_with('{') {
            CredentialsFile::from_json(&v, setting)?
        } else {
            CredentialsFile::from_file(Path::new(&v), setting)?
        };
        return Ok(file.into_provider(None));
    }
    Ok(
        match after_env(well_known_file(&lookup).as_deref(), &metadata_host(&lookup))? {
            Either::File(f) => f.into_provider(None),
            Either::Metadata(m) => Arc::new(m),
            Either::Provider(p) => p,
        },
    )
}
