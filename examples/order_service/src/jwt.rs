//! JWT bearer tokens (`Authorization: Bearer <jwt_token>`, as the seed documents it), verified
//! with [`jsonwebtoken`].
//!
//! * HS256 with a shared secret (`ORDER_SERVICE_JWT_SECRET`, at least 32 bytes);
//! * RS256 / ES256 with the public keys of a JWKS document (`ORDER_SERVICE_JWKS_URL`), cached and
//!   fetched again when a token names an unknown `kid` (key rotation) — at most once a minute, so
//!   tokens with made-up key ids cannot make the service hammer the key server;
//! * always: `iss` must be `ORDER_SERVICE_JWT_ISSUER`, `aud` must contain
//!   `ORDER_SERVICE_JWT_AUDIENCE`, `exp` is required, `exp` and `nbf` are checked with
//!   [`LEEWAY_SECS`] of leeway. The algorithm is the one the key allows, never the one the token
//!   asks for (no `none`, no HS256 with a public key).
//!
//! Neither the secret nor a token ever reaches a log line or a `Debug` output.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use integrations_core::{Error, Result};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::{Map, Value};

/// HS256 shared secret.
pub const JWT_SECRET_ENV: &str = "ORDER_SERVICE_JWT_SECRET";
/// URL of the JWKS document holding the RS256 / ES256 public keys.
pub const JWKS_URL_ENV: &str = "ORDER_SERVICE_JWKS_URL";
/// The required `iss`.
pub const JWT_ISSUER_ENV: &str = "ORDER_SERVICE_JWT_ISSUER";
/// The required `aud`.
pub const JWT_AUDIENCE_ENV: &str = "ORDER_SERVICE_JWT_AUDIENCE";

/// Clock skew allowed on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 60;
/// Shortest HS256 secret accepted, in bytes (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_LEN: usize = 32;
/// Least time between two fetches of the JWKS.
pub const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// Time allowed for one JWKS fetch.
pub const JWKS_TIMEOUT: Duration = Duration::from_secs(5);

/// Claims of an accepted token.
pub type Claims = Map<String, Value>;

struct Jwks {
    url: reqwest::Url,
    client: reqwest::Client,
    refetch_interval: Duration,
    keys: RwLock<HashMap<String, (Algorithm, DecodingKey)>>,
    /// When the keys were last fetched; held across a fetch so only one runs at a time.
    fetched: tokio::sync::Mutex<Option<Instant>>,
}

/// Verifies bearer JWTs; cheap to clone (the JWKS cache is shared).
#[derive(Clone)]
pub struct JwtVerifier {
    secret: Option<Arc<DecodingKey>>,
    jwks: Option<Arc<Jwks>>,
    issuer: String,
    audience: String,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("hs256", &self.secret.is_some())
            .field("jwks_url", &self.jwks.as_ref().map(|j| j.url.as_str()))
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

fn config(var: &'static str, msg: impl Into<String>) -> Error {
    Error::configuration(var, msg)
}

impl JwtVerifier {
    /// Tokens issued by `issuer` for `audience`; add keys with [`JwtVerifier::hs256`] and/or
    /// [`JwtVerifier::jwks`].
    ///
    /// # Errors
    /// [`Error::Configuration`] when `issuer` or `audience` is empty.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Result<Self> {
        let (issuer, audience) = (issuer.into(), audience.into());
        if issuer.trim().is_empty() {
            return Err(config(JWT_ISSUER_ENV, "must not be empty"));
        }
        if audience.trim().is_empty() {
            return Err(config(JWT_AUDIENCE_ENV, "must not be empty"));
        }
        Ok(JwtVerifier {
            secret: None,
            jwks: None,
            issuer,
            audience,
        })
    }

    /// Accepts HS256 tokens signed with `secret`.
    ///
    /// # Errors
    /// [`Error::Configuration`] when the secret is shorter than [`MIN_SECRET_LEN`] bytes.
    pub fn hs256(mut self, secret: &[u8]) -> Result<Self> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(config(
                JWT_SECRET_ENV,
                format!("must be at least {MIN_SECRET_LEN} bytes"),
            ));
        }
        self.secret = Some(Arc::new(DecodingKey::from_secret(secret)));
        Ok(self)
    }

    /// Accepts RS256 and ES256 tokens signed with a key of the JWKS at `url` (https, or http to
    /// a loopback host), fetched when first needed and again for an unknown `kid`, at most once
    /// per [`JWKS_REFETCH_INTERVAL`].
    ///
    /// # Errors
    /// [`Error::Configuration`] for a malformed or plain-http non-loopback URL.
    pub fn jwks(self, url: &str) -> Result<Self> {
        self.jwks_with_interval(url, JWKS_REFETCH_INTERVAL)
    }

    /// As [`JwtVerifier::jwks`] with another least time between fetches (tests).
    ///
    /// # Errors
    /// As [`JwtVerifier::jwks`].
    pub fn jwks_with_interval(mut self, url: &str, refetch_interval: Duration) -> Result<Self> {
        let url = reqwest::Url::parse(url).map_err(|e| config(JWKS_URL_ENV, e.to_string()))?;
        let loopback = matches!(
            url.host_str(),
            Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
        );
        if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
            return Err(config(
                JWKS_URL_ENV,
                "must be https (plain http only to a loopback host)",
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(JWKS_TIMEOUT)
            .build()
            .map_err(|e| config(JWKS_URL_ENV, e.to_string()))?;
        self.jwks = Some(Arc::new(Jwks {
            url,
            client,
            refetch_interval,
            keys: RwLock::new(HashMap::new()),
            fetched: tokio::sync::Mutex::new(None),
        }));
        Ok(self)
    }

    /// The verifier the environment configures: `None` when neither `ORDER_SERVICE_JWT_SECRET`
    /// nor `ORDER_SERVICE_JWKS_URL` is set.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming the variable: a key source without issuer or audience, a
    /// short secret, a bad URL.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let secret = get(JWT_SECRET_ENV);
        let url = get(JWKS_URL_ENV);
        if secret.is_none() && url.is_none() {
            return Ok(None);
        }
        let issuer = get(JWT_ISSUER_ENV)
            .ok_or_else(|| config(JWT_ISSUER_ENV, "is required when JWTs are accepted"))?;
        let audience = get(JWT_AUDIENCE_ENV)
            .ok_or_else(|| config(JWT_AUDIENCE_ENV, "is required when JWTs are accepted"))?;
        let mut v = JwtVerifier::new(issuer, audience)?;
        if let Some(s) = secret {
            v = v.hs256(s.as_bytes())?;
        }
        if let Some(u) = url {
            v = v.jwks(u.trim())?;
        }
        Ok(Some(v))
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = LEEWAY_SECS;
        v.validate_exp = true;
        v.validate_nbf = true;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v
    }

    /// The claims of `token` if it is valid.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] saying why (expired, wrong audience, …), never quoting the
    /// token.
    pub async fn verify(&self, token: &str) -> Result<Claims> {
        let header = decode_header(token).map_err(|e| refused(&e))?;
        let (alg, key) = match header.alg {
            Algorithm::HS256 => {
                let key = self
                    .secret
                    .as_ref()
                    .ok_or_else(|| Error::unauthenticated("HS256 tokens are not accepted"))?;
                (Algorithm::HS256, DecodingKey::clone(key))
            }
            Algorithm::RS256 | Algorithm::ES256 => {
                let jwks = self.jwks.as_ref().ok_or_else(|| {
                    Error::unauthenticated(format!("{:?} tokens are not accepted", header.alg))
                })?;
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| Error::unauthenticated("the token names no key (kid)"))?;
                let (alg, key) = jwks.key(kid).await?;
                if alg != header.alg {
                    return Err(Error::unauthenticated(
                        "the token's algorithm is not its key's",
                    ));
                }
                (alg, key)
            }
            other => {
                return Err(Error::unauthenticated(format!(
                    "{other:?} tokens are not accepted"
                )));
            }
        };
        decode::<Claims>(token, &key, &self.validation(alg))
            .map(|d| d.claims)
            .map_err(|e| refused(&e))
    }
}

fn refused(e: &jsonwebtoken::errors::Error) -> Error {
    use jsonwebtoken::errors::ErrorKind as K;
    let why = match e.kind() {
        K::ExpiredSignature => "the token has expired",
        K::ImmatureSignature => "the token is not valid yet (nbf)",
        K::InvalidAudience => "the token is not for this service (aud)",
        K::InvalidIssuer => "the token is from another issuer (iss)",
        K::InvalidSignature => "the token's signature does not verify",
        K::MissingRequiredClaim(_) => "the token lacks a required claim (exp, iss, aud)",
        K::InvalidAlgorithm => "the token's algorithm is not accepted",
        _ => "the token is malformed",
    };
    Error::unauthenticated(why)
}

impl Jwks {
    fn cached(&self, kid: &str) -> Option<(Algorithm, DecodingKey)> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(kid)
            .cloned()
    }

    async fn key(&self, kid: &str) -> Result<(Algorithm, DecodingKey)> {
        if let Some(k) = self.cached(kid) {
            return Ok(k);
        }
        let mut fetched = self.fetched.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(k) = self.cached(kid) {
            return Ok(k);
        }
        if fetched.is_some_and(|t| t.elapsed() < self.refetch_interval) {
            return Err(Error::unauthenticated("the token's key (kid) is unknown"));
        }
        *fetched = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), url = %self.url, "JWKS fetched");
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
            }
            Err(e) => {
                // Keep the keys we had: the key server being down must not lock everyone out.
                tracing::warn!(error = %e, url = %self.url, "JWKS fetch failed");
            }
        }
        drop(fetched);
        self.cached(kid)
            .ok_or_else(|| Error::unauthenticated("the token's key (kid) is unknown"))
    }

    async fn fetch(&self) -> Result<HashMap<String, (Algorithm, DecodingKey)>> {
        let unavailable = |e: reqwest::Error| Error::unavailable(format!("JWKS: {e}"));
        let body = self
            .client
            .get(self.url.clone())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unavailable)?
            .bytes()
            .await
            .map_err(unavailable)?;
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| Error::unavailable(format!("JWKS is not a JWK set: {e}")))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            let alg = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                    Algorithm::ES256
                }
                _ => continue,
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid, (alg, key));
                }
                Err(e) => tracing::warn!(kid, error = %e, "JWKS key skipped"),
            }
        }
        Ok(keys)
    }
}
