//! Verification of messages SNS POSTs to an HTTP(S) endpoint.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use integrations_core::clock::{Clock, SystemClock};
use integrations_core::webhook::{DEFAULT_BODY_LIMIT, check_body_size};
use integrations_core::{Error, Result, SignatureFailure};
use rsa::RsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use url::Url;
use x509_cert::Certificate;
use x509_cert::der::{DecodePem, Encode};

use super::message::{SignatureVersion, SnsMessage};
use crate::config::Service;

const PROVIDER: &str = Service::Sns.provider_name();
/// Certificates larger than this are refused.
const MAX_CERT_BYTES: usize = 64 * 1024;
/// Distinct certificate URLs kept; SNS rotates rarely, so this is never reached in practice.
const MAX_CACHED_CERTS: usize = 64;

/// Fetches the PEM certificate at a `SigningCertURL` that passed the host check.
#[async_trait]
pub trait CertificateFetcher: Send + Sync + fmt::Debug {
    /// The PEM bytes.
    ///
    /// # Errors
    /// [`Error::Unavailable`] (or similar) when it cannot be fetched.
    async fn fetch(&self, url: &Url) -> Result<Vec<u8>>;
}

/// Fetches over HTTPS with a `reqwest::Client` (default: core's shared client), 10 s timeout.
#[derive(Debug, Clone)]
pub struct HttpsCertificateFetcher {
    client: reqwest::Client,
}

impl HttpsCertificateFetcher {
    /// With core's shared client.
    pub fn new() -> Self {
        HttpsCertificateFetcher {
            client: integrations_core::http::default_client(),
        }
    }
    /// With `client`.
    pub fn with_client(client: reqwest::Client) -> Self {
        HttpsCertificateFetcher { client }
    }
}

impl Default for HttpsCertificateFetcher {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl CertificateFetcher for HttpsCertificateFetcher {
    async fn fetch(&self, url: &Url) -> Result<Vec<u8>> {
        let unavailable = |m: &str| {
            Error::unavailable(format!("SNS signing certificate: {m}")).with_provider(PROVIDER)
        };
        let resp = self
            .client
            .get(url.clone())
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| unavailable("request failed").with_source(e.without_url()))?;
        if !resp.status().is_success() {
            return Err(unavailable(&format!("HTTP {}", resp.status())));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| unavailable("body failed").with_source(e.without_url()))?;
        if body.len() > MAX_CERT_BYTES {
            return Err(unavailable("certificate too large"));
        }
        Ok(body.to_vec())
    }
}

/// Verifies inbound SNS messages: body size, `SignatureVersion` 1 (SHA1withRSA) or 2
/// (SHA256withRSA), the `SigningCertURL` (https, host `sns.<region>.amazonaws.com` or
/// `.amazonaws.com.cn`, path ending `.pem`), and the signature over the exact string SNS signs.
/// Each certificate is fetched once and cached.
///
/// SNS retries a delivery with its original `Timestamp`, so no timestamp window is enforced unless
/// [`SnsMessageVerifier::with_max_age`] sets one; deduplicate on `MessageId` instead.
pub struct SnsMessageVerifier {
    fetcher: Arc<dyn CertificateFetcher>,
    keys: Mutex<HashMap<String, RsaPublicKey>>,
    body_limit: usize,
    max_age: Option<Duration>,
    clock: Arc<dyn Clock>,
}

#[async_trait::async_trait]
impl integrations_core::webhook::WebhookVerifier for SnsMessageVerifier {
    type Event = SnsMessage;

    fn provider(&self) -> &'static str {
        PROVIDER
    }

    /// [`SnsMessageVerifier::verify`]: SNS signs the body itself, so no header is read.
    async fn verify_request(&self, _headers: &http::HeaderMap, body: &[u8]) -> Result<SnsMessage> {
        self.verify(body).await
    }
}

impl fmt::Debug for SnsMessageVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnsMessageVerifier")
            .field("fetcher", &self.fetcher)
            .field(
                "cached_certificates",
                &self.keys.lock().map_or(0, |k| k.len()),
            )
            .field("body_limit", &self.body_limit)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl Default for SnsMessageVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl SnsMessageVerifier {
    /// Fetching certificates over HTTPS.
    pub fn new() -> Self {
        Self::with_fetcher(HttpsCertificateFetcher::new())
    }
    /// Fetching certificates with `fetcher` (tests, proxies, a pinned store).
    pub fn with_fetcher(fetcher: impl CertificateFetcher + 'static) -> Self {
        SnsMessageVerifier {
            fetcher: Arc::new(fetcher),
            keys: Mutex::new(HashMap::new()),
            body_limit: DEFAULT_BODY_LIMIT,
            max_age: None,
            clock: Arc::new(SystemClock),
        }
    }
    /// Refuses bodies over `limit` bytes (default 1 MiB).
    #[must_use]
    pub fn with_body_limit(mut self, limit: usize) -> Self {
        self.body_limit = limit;
        self
    }
    /// Refuses messages whose `Timestamp` is more than `max_age` in the past (or future).
    #[must_use]
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }
    /// Uses `clock` for "now".
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Verifies the raw body and returns the message.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] (malformed message, unsupported version, untrusted certificate
    /// URL, bad certificate, no match, too old, too large); [`Error::Unavailable`] when the
    /// certificate cannot be fetched (worth a retry: SNS redelivers).
    pub async fn verify(&self, body: &[u8]) -> Result<SnsMessage> {
        let fail = |f: SignatureFailure| Error::invalid_signature(f).with_provider(PROVIDER);
        check_body_size(body.len(), self.body_limit).map_err(fail)?;
        let msg = SnsMessage::parse(body)?;
        let version = SignatureVersion::parse(&msg.signature_version)
            .ok_or_else(|| fail(SignatureFailure::NoSupportedSignature))?;
        let url = check_cert_url(&msg.signing_cert_url).map_err(fail)?;
        let text = msg.string_to_sign().map_err(fail)?;
        let sig = STANDARD
            .decode(msg.signature.trim())
            .ok()
            .and_then(|b| Signature::try_from(b.as_slice()).ok())
            .ok_or_else(|| {
                fail(SignatureFailure::MalformedHeader(
                    "Signature is not base64".into(),
                ))
            })?;
        let key = self.key(&url).await?;
        let ok = match version {
            SignatureVersion::V1 => {
                VerifyingKey::<sha1::Sha1>::new(key).verify(text.as_bytes(), &sig)
            }
            SignatureVersion::V2 => {
                VerifyingKey::<sha2::Sha256>::new(key).verify(text.as_bytes(), &sig)
            }
        };
        ok.map_err(|_| fail(SignatureFailure::NoMatch))?;
        if let Some(max_age) = self.max_age {
            let ts = parse_timestamp(&msg.timestamp).ok_or_else(|| {
                fail(SignatureFailure::MalformedHeader(
                    "Timestamp is not ISO 8601".into(),
                ))
            })?;
            let now = integrations_core::clock::unix_seconds(self.clock.now());
            integrations_core::webhook::check_timestamp(ts, self.clock.now(), max_age).map_err(
                |f| {
                    tracing::debug!(timestamp = ts, now, "stale SNS message");
                    fail(f)
                },
            )?;
        }
        Ok(msg)
    }

    async fn key(&self, url: &Url) -> Result<RsaPublicKey> {
        if let Some(k) = self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(url.as_str())
        {
            return Ok(k.clone());
        }
        let pem = self.fetcher.fetch(url).await?;
        let key = public_key_from_pem(&pem)
            .map_err(|f| Error::invalid_signature(f).with_provider(PROVIDER))?;
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if keys.len() >= MAX_CACHED_CERTS {
            keys.clear();
        }
        keys.insert(url.as_str().to_owned(), key.clone());
        Ok(key)
    }
}

/// The URL, if it is `https://sns.<region>.amazonaws.com[.cn]/….pem`.
pub(crate) fn check_cert_url(raw: &str) -> Result<Url, SignatureFailure> {
    let bad = |why: &str| {
        SignatureFailure::InvalidKey(format!("untrusted SigningCertURL `{raw}`: {why}"))
    };
    let url = Url::parse(raw).map_err(|_| bad("not a URL"))?;
    if url.scheme() != "https" {
        return Err(bad("not https"));
    }
    if url.port().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(bad("unexpected port or user info"));
    }
    let host = url.host_str().unwrap_or("");
    let region = host
        .strip_prefix("sns.")
        .and_then(|h| {
            h.strip_suffix(".amazonaws.com")
                .or_else(|| h.strip_suffix(".amazonaws.com.cn"))
        })
        .ok_or_else(|| bad("host is not sns.<region>.amazonaws.com"))?;
    let region_ok = !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !region_ok {
        return Err(bad("host is not sns.<region>.amazonaws.com"));
    }
    if !url.path().ends_with(".pem") || url.query().is_some() {
        return Err(bad("not a .pem path"));
    }
    Ok(url)
}

fn public_key_from_pem(pem: &[u8]) -> Result<RsaPublicKey, SignatureFailure> {
    let bad = |why: String| SignatureFailure::InvalidKey(format!("SNS signing certificate: {why}"));
    let cert = Certificate::from_pem(pem).map_err(|e| bad(e.to_string()))?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| bad(e.to_string()))?;
    RsaPublicKey::from_public_key_der(&spki).map_err(|e| bad(format!("not an RSA key: {e}")))
}

/// `2012-05-02T00:54:06.655Z` → unix seconds.
fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.split('.').next()?;
    let mut t = time.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm), checked: an absurd year (`99999999999…`
    // parses as an i64) must give `None`, not an overflow panic in debug builds.
    let y = if m <= 2 { y.checked_sub(1)? } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era.checked_mul(146_097)?.checked_add(doe - 719_468)?;
    days.checked_mul(86_400)?
        .checked_add(hh * 3600 + mm * 60 + ss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_url_host_check() {
        for ok in [
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
        ] {
            assert!(check_cert_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com.evil.com/x.pem",
            "https://evil.com/sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com/x.txt",
            "https://sns.amazonaws.com/x.pem",
            "https://sns.a.b.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com:8443/x.pem",
            "https://user@sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com/x.pem?y=1",
            "not a url",
        ] {
            assert!(check_cert_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            parse_timestamp("2012-05-02T00:54:06.655Z"),
            Some(1_335_920_046)
        );
        assert_eq!(parse_timestamp("2024-02-29T12:00:00Z"), Some(1_709_208_000));
        assert_eq!(parse_timestamp("2012-13-02T00:54:06Z"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn absurd_years_do_not_overflow() {
        assert_eq!(
            parse_timestamp("99999-01-01T00:00:00Z"),
            Some(3_093_496_444_800)
        );
        assert_eq!(
            parse_timestamp("-1-03-01T00:00:00Z"),
            None,
            "`-1-03-01` does not split into year, month, day"
        );
        assert_eq!(
            parse_timestamp("0000-01-01T00:00:00Z"),
            Some(-62_167_219_200)
        );
        for extreme in [
            "9223372036854775807-12-31T23:59:59Z",
            "9223372036854775807-01-01T00:00:00Z",
            "-9223372036854775808-01-01T00:00:00Z",
            "922337203685477-12-31T23:59:59Z",
            "-922337203685477-01-01T00:00:00Z",
        ] {
            // No panic; out-of-range years are not timestamps.
            let _ = parse_timestamp(extreme);
        }
        assert_eq!(parse_timestamp("9223372036854775807-12-31T23:59:59Z"), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn timestamps_never_panic(
            y in proptest::prelude::any::<i64>(),
            m in 1i64..=12,
            d in 1i64..=31,
            rest in "[0-9:.TZ-]{0,24}",
        ) {
            let _ = parse_timestamp(&format!("{y:04}-{m:02}-{d:02}T00:00:00Z"));
            let _ = parse_timestamp(&rest);
        }

        #[test]
        fn cert_url_check_never_panics(s in proptest::prelude::any::<String>()) {
            let _ = check_cert_url(&s);
        }
    }
}
