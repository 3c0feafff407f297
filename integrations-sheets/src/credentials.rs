//! Service-account keys and the RS256 JWT assertion Google exchanges for an access token.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use integrations_core::{Error, Result};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

/// Google's OAuth 2.0 token endpoint, also the `aud` of every assertion.
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Read and write access to spreadsheets.
pub const SPREADSHEETS_SCOPE: &str = "https://www.googleapis.com/auth/spreadsheets";
/// How long an assertion is valid (Google's maximum, one hour).
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);

/// The parts of a service-account JSON key (`"type": "service_account"`) that signing needs.
///
/// `Debug` shows the account and key id, never the private key.
#[derive(Clone)]
pub struct ServiceAccountKey {
    client_email: String,
    private_key_id: String,
    project_id: Option<String>,
    token_uri: String,
    key: EncodingKey,
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key_id: Option<String>,
    private_key: Option<String>,
    project_id: Option<String>,
    token_uri: Option<String>,
}

impl ServiceAccountKey {
    /// Parses a service-account JSON key. `setting` names where it came from (for example
    /// `"GOOGLE_APPLICATION_CREDENTIALS"`) in errors.
    ///
    /// The private key is checked by signing once, so a key Google would reject is reported here
    /// and not at the first request.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming `setting`, with a message naming the field: not JSON, not a
    /// service-account key (`type` other than `service_account`), `client_email`,
    /// `private_key_id` or `private_key` missing, or `private_key` not a PEM RSA private key.
    pub fn from_json(json: &str, setting: impl Into<Cow<'static, str>>) -> Result<Self> {
        let setting = setting.into();
        let bad = |msg: String| Error::configuration(setting.clone(), msg);
        let file: KeyFile = serde_json::from_str(json).map_err(|e| {
            // serde_json's message carries line and column only, never the input.
            bad("is not a JSON service-account key".to_owned()).with_source(e)
        })?;
        match file.kind.as_deref() {
            Some("service_account") => {}
            Some(other) => {
                return Err(bad(format!(
                    "is not a service-account key (`type` is `{other}`, expected `service_account`)"
                )));
            }
            None => {
                return Err(bad(
                    "is not a service-account key (no `type`, expected `service_account`)".into(),
                ));
            }
        }
        let required = |v: Option<String>, field: &str| {
            v.filter(|s| !s.trim().is_empty())
                .ok_or_else(|| bad(format!("`{field}` is missing from the service-account key")))
        };
        let client_email = required(file.client_email, "client_email")?;
        let private_key_id = required(file.private_key_id, "private_key_id")?;
        let pem = required(file.private_key, "private_key")?;
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| {
            bad("`private_key` is not a PEM-encoded RSA private key".into()).with_source(e)
        })?;
        let parsed = ServiceAccountKey {
            client_email,
            private_key_id,
            project_id: file.project_id.filter(|s| !s.is_empty()),
            token_uri: file
                .token_uri
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| GOOGLE_TOKEN_URI.to_owned()),
            key,
        };
        // jsonwebtoken only checks the PEM framing; ring parses the RSA key when signing.
        parsed
            .assertion(SPREADSHEETS_SCOPE, GOOGLE_TOKEN_URI, SystemTime::now())
            .map_err(|e| {
                bad("`private_key` is not a usable RSA private key (at least 2048 bits)".into())
                    .with_source(e)
            })?;
        Ok(parsed)
    }

    /// Reads and parses the JSON key file at `path`.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming `setting` when the file cannot be read, and everything
    /// [`ServiceAccountKey::from_json`] reports.
    pub fn from_file(
        path: impl AsRef<Path>,
        setting: impl Into<Cow<'static, str>>,
    ) -> Result<Self> {
        let setting = setting.into();
        let path = path.as_ref();
        let json = std::fs::read_to_string(path).map_err(|e| {
            Error::configuration(
                setting.clone(),
                format!("cannot read the key file `{}`", path.display()),
            )
            .with_source(e)
        })?;
        ServiceAccountKey::from_json(&json, setting)
    }

    /// The account (`name@project.iam.gserviceaccount.com`), the assertion's `iss`.
    pub fn client_email(&self) -> &str {
        &self.client_email
    }
    /// The key id, sent as the JWT header's `kid`.
    pub fn private_key_id(&self) -> &str {
        &self.private_key_id
    }
    /// The project, when the key names one.
    pub fn project_id(&self) -> Option<&str> {
        self.project_id.as_deref()
    }
    /// The key's `token_uri` (default [`GOOGLE_TOKEN_URI`]), used as the assertion's audience.
    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// Signs an RS256 JWT assertion: header `kid` = the key id, claims `iss`, `scope`, `aud`,
    /// `iat` = `issued_at`, `exp` = `iat` + one hour.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming `private_key` if the key cannot sign, or
    /// [`Error::InvalidInput`] naming `issued_at` for a time before 1970.
    pub fn assertion(&self, scope: &str, audience: &str, issued_at: SystemTime) -> Result<String> {
        let iat = issued_at
            .duration_since(UNIX_EPOCH)
            .map_err(|_| Error::invalid_input("issued_at", "time before the unix epoch"))?
            .as_secs();
        let claims = Claims {
            iss: &self.client_email,
            scope,
            aud: audience,
            iat,
            exp: iat + ASSERTION_LIFETIME.as_secs(),
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.private_key_id.clone());
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| {
            Error::configuration("private_key", "the service-account key cannot sign")
                .with_source(e)
        })
    }
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("project_id", &self.project_id)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

/// The claims of a service-account assertion, as Google expects them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertionClaims<S = String> {
    /// The service account's email.
    pub iss: S,
    /// Space-separated OAuth scopes.
    pub scope: S,
    /// The token endpoint ([`GOOGLE_TOKEN_URI`]).
    pub aud: S,
    /// Issued at, unix seconds.
    pub iat: u64,
    /// Expires at, unix seconds (at most `iat` + 3600).
    pub exp: u64,
}

type Claims<'a> = AssertionClaims<&'a str>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_a_service_account_key() {
        let e = ServiceAccountKey::from_json(
            r#"{"type":"authorized_user","client_id":"x","refresh_token":"y"}"#,
            "GOOGLE_APPLICATION_CREDENTIALS",
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("GOOGLE_APPLICATION_CREDENTIALS"));
        assert!(e.to_string().contains("not a service-account key"), "{e}");
        assert!(e.to_string().contains("authorized_user"), "{e}");
    }

    #[test]
    fn missing_fields_are_named() {
        let e = ServiceAccountKey::from_json(r#"{"type":"service_account"}"#, "credentials")
            .unwrap_err();
        assert!(e.to_string().contains("`client_email` is missing"), "{e}");
        let e = ServiceAccountKey::from_json(
            r#"{"type":"service_account","client_email":"a@b","private_key_id":"k"}"#,
            "credentials",
        )
        .unwrap_err();
        assert!(e.to_string().contains("`private_key` is missing"), "{e}");
    }

    #[test]
    fn bad_pem_is_named() {
        let json = serde_json::json!({
            "type": "service_account",
            "client_email": "a@b.iam.gserviceaccount.com",
            "private_key_id": "k1",
            "private_key": "-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n",
        });
        let e = ServiceAccountKey::from_json(&json.to_string(), "credentials").unwrap_err();
        assert_eq!(e.kind(), integrations_core::ErrorKind::Configuration);
        assert!(e.to_string().contains("`private_key`"), "{e}");
        assert!(!e.to_string().contains("not base64 at all"), "{e}");
    }

    #[test]
    fn not_json_does_not_echo_input() {
        let e = ServiceAccountKey::from_json("SECRET-MATERIAL {", "credentials").unwrap_err();
        assert!(
            e.to_string().contains("not a JSON service-account key"),
            "{e}"
        );
        assert!(!format!("{e:?}").contains("SECRET-MATERIAL"), "{e:?}");
    }

    #[test]
    fn unreadable_file_is_named() {
        let e = ServiceAccountKey::from_file(
            "/definitely/not/here.json",
            "GOOGLE_APPLICATION_CREDENTIALS",
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("GOOGLE_APPLICATION_CREDENTIALS"));
        assert!(e.to_string().contains("/definitely/not/here.json"), "{e}");
    }
}
