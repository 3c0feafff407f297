//! Authentication: API keys, compared in constant time, and JWT bearer tokens ([`crate::jwt`]).
//!
//! Clients send `X-API-Key: <key>`, `Authorization: Bearer <key>` or
//! `Authorization: Bearer <jwt_token>` (when a [`JwtVerifier`] is configured: a bearer value that
//! is not one of the keys is verified as a JWT). The service keeps only the
//! SHA-256 digests of its keys; a presented key is hashed and compared with **every** digest
//! using [`subtle`]'s constant-time equality, without stopping at a match, so neither how much
//! of a key matched nor its length nor which key matched shows in the response time.

use std::fmt;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use integrations_core::{Error, Result};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::api::ApiError;
use crate::jwt::{Claims, JwtVerifier};

/// The environment variable [`ApiKeys::from_env`] reads: keys separated by commas (several keys
/// allow rotation).
pub const API_KEYS_ENV: &str = "ORDER_SERVICE_API_KEYS";

/// Shortest key accepted.
pub const MIN_KEY_LEN: usize = 16;

/// The header carrying the key (the alternative is `Authorization: Bearer`).
pub const API_KEY_HEADER: &str = "x-api-key";

/// The accepted API keys, kept as SHA-256 digests.
#[derive(Clone)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("keys", &self.digests.len())
            .finish_non_exhaustive()
    }
}

fn digest(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

impl ApiKeys {
    /// Accepts each of `keys`.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming `ORDER_SERVICE_API_KEYS` when there is no key or a key is
    /// shorter than [`MIN_KEY_LEN`] or not printable ASCII.
    pub fn new<I, K>(keys: I) -> Result<Self>
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        let mut digests = Vec::new();
        for key in keys {
            let key = key.as_ref();
            if key.len() < MIN_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(Error::configuration(
                    API_KEYS_ENV,
                    format!("each key must be at least {MIN_KEY_LEN} printable ASCII characters"),
                ));
            }
            digests.push(digest(key.as_bytes()));
        }
        if digests.is_empty() {
            return Err(Error::configuration(API_KEYS_ENV, "no API key configured"));
        }
        Ok(ApiKeys { digests })
    }

    /// The keys in `ORDER_SERVICE_API_KEYS` (comma-separated), or `None` when it is unset.
    ///
    /// # Errors
    /// As [`ApiKeys::new`].
    pub fn from_env() -> Result<Option<Self>> {
        match std::env::var(API_KEYS_ENV) {
            Ok(raw) => {
                ApiKeys::new(raw.split(',').map(str::trim).filter(|k| !k.is_empty())).map(Some)
            }
            Err(_) => Ok(None),
        }
    }

    /// A fresh random key (`osk_` and 256 bits from the OS's CSPRNG, in hex) and the set accepting
    /// it, for local runs.
    pub fn generate() -> (Self, String) {
        let key = format!("osk_{}", crate::random_hex::<32>());
        let keys = ApiKeys {
            digests: vec![digest(key.as_bytes())],
        };
        (keys, key)
    }

    /// Whether `presented` is one of the keys, in time independent of its content.
    pub fn verify(&self, presented: &[u8]) -> bool {
        let d = digest(presented);
        let mut found = Choice::from(0);
        for known in &self.digests {
            found |= known.ct_eq(&d);
        }
        found.into()
    }

    /// The key a request presents, from `X-API-Key` or `Authorization: Bearer`.
    pub fn presented(headers: &HeaderMap) -> Option<&[u8]> {
        if let Some(v) = headers.get(API_KEY_HEADER) {
            return Some(v.as_bytes());
        }
        let auth = headers.get(header::AUTHORIZATION)?.as_bytes();
        let (scheme, rest) = auth.split_at_checked(7)?;
        scheme
            .eq_ignore_ascii_case(b"bearer ")
            .then(|| rest.trim_ascii())
    }
}

/// What the API routes accept: the API keys and, when configured, JWTs.
#[derive(Debug, Clone)]
pub struct Authenticator {
    keys: ApiKeys,
    jwt: Option<JwtVerifier>,
}

impl Authenticator {
    /// Accepts `keys` and, with `jwt`, the tokens it verifies.
    pub fn new(keys: ApiKeys, jwt: Option<JwtVerifier>) -> Self {
        Authenticator { keys, jwt }
    }

    /// The accepted API keys.
    pub fn keys(&self) -> &ApiKeys {
        &self.keys
    }

    /// The JWT verifier, if JWTs are accepted.
    pub fn jwt(&self) -> Option<&JwtVerifier> {
        self.jwt.as_ref()
    }

    /// `Ok(Some(claims))` for a valid JWT, `Ok(None)` for an accepted API key.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] saying what was missing or wrong.
    pub async fn check(&self, headers: &HeaderMap) -> Result<Option<Claims>> {
        let bearer = headers.get(API_KEY_HEADER).is_none();
        let Some(presented) = ApiKeys::presented(headers) else {
            return Err(Error::unauthenticated(
                "missing credentials: send X-API-Key or Authorization: Bearer",
            ));
        };
        if self.keys.verify(presented) {
            return Ok(None);
        }
        match (&self.jwt, bearer, std::str::from_utf8(presented)) {
            (Some(jwt), true, Ok(token)) if token.contains('.') => {
                jwt.verify(token).await.map(Some)
            }
            (None, true, Ok(token)) if token.contains('.') => Err(Error::unauthenticated(
                "JWT bearer tokens are not configured on this service",
            )),
            _ => Err(Error::unauthenticated("invalid API key")),
        }
    }
}

/// Middleware: lets requests with an accepted API key or JWT through (a JWT's claims go into the
/// request's extensions as [`Claims`]), answers 401 otherwise (with `WWW-Authenticate: Bearer`).
pub async fn require_auth(
    State(auth): State<Authenticator>,
    mut req: Request,
    next: Next,
) -> Response {
    match auth.check(req.headers()).await {
        Ok(claims) => {
            if let Some(c) = claims {
                req.extensions_mut().insert(c);
            }
            next.run(req).await
        }
        Err(e) => {
            let mut resp = ApiError::from(e).into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"order-service\""),
            );
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "test-key-0123456789abcdef";

    #[test]
    fn verifies_exact_keys_only() {
        let keys = ApiKeys::new([KEY, "second-key-for-rotation"]).unwrap();
        assert!(keys.verify(KEY.as_bytes()));
        assert!(keys.verify(b"second-key-for-rotation"));
        for wrong in [
            "",
            "test-key-0123456789abcde",
            "test-key-0123456789abcdef0",
            "TEST-KEY-0123456789ABCDEF",
            "x",
        ] {
            assert!(!keys.verify(wrong.as_bytes()), "{wrong:?} accepted");
        }
    }

    #[test]
    fn refuses_weak_configuration() {
        assert!(ApiKeys::new(Vec::<String>::new()).is_err());
        let e = ApiKeys::new(["short"]).unwrap_err();
        assert_eq!(e.field(), Some(API_KEYS_ENV));
        assert!(ApiKeys::new(["has a space in the key!!"]).is_err());
    }

    #[test]
    fn presented_from_either_header() {
        let mut h = HeaderMap::new();
        assert_eq!(ApiKeys::presented(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  abc "),
        );
        assert_eq!(ApiKeys::presented(&h), Some(&b"abc"[..]));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(ApiKeys::presented(&h), None);
        h.insert(API_KEY_HEADER, HeaderValue::from_static("k"));
        assert_eq!(ApiKeys::presented(&h), Some(&b"k"[..]));
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let (keys, key) = ApiKeys::generate();
        assert!(key.starts_with("osk_") && key.len() == 68);
        assert!(keys.verify(key.as_bytes()));
        let dbg = format!("{keys:?}");
        assert!(!dbg.contains(&key), "{dbg}");
        assert!(!dbg.contains(&hex_prefix(&key)), "{dbg}");
        let (_, other) = ApiKeys::generate();
        assert_ne!(key, other);
    }

    fn hex_prefix(key: &str) -> String {
        key.chars().skip(4).take(8).collect()
    }
}
