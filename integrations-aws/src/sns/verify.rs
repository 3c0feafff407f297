//! Verification of messages SNS POSTs to an HTTP(S) endpoint.
//!
//! The signature check runs on `ring` (`RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY` for
//! `SignatureVersion` 1, `RSA_PKCS1_2048_8192_SHA256` for 2), which rustls already brings into
//! every build, rather than on the `rsa` crate, whose non-constant-time arithmetic carries
//! RUSTSEC-2023-0071. Verifying only uses the public key, but one RSA implementation in the tree
//! is less to audit than two. The certificate itself is read with `x509-cert` (RustCrypto,
//! already a dependency here and maintained alongside `der`/`spki`): the subject names have to be
//! checked, which `rustls-webpki` does not expose (its name check ignores the CN that SNS
//! certificates carry), and `x509-parser` would be a second DER stack next to the `der` crate
//! already in the tree. From the certificate only the SubjectPublicKeyInfo's algorithm (must be
//! `rsaEncryption`) and its key bits (the PKCS#1 `RSAPublicKey` that `ring` takes) are used.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use integrations_core::clock::{Clock, SystemClock};
use integrations_core::webhook::{DEFAULT_BODY_LIMIT, check_body_size};
use integrations_core::{Error, ErrorKind, Result, SignatureFailure};
use ring::signature::{
    RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
};
use url::Url;
use x509_cert::Certificate;
use x509_cert::der::asn1::UintRef;
use x509_cert::der::{Decode, DecodePem, Reader, SliceReader};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use super::message::{SignatureVersion, SnsMessage};
use crate::config::Service;

const PROVIDER: &str = Service::Sns.provider_name();
/// Certificates larger than this are refused.
const MAX_CERT_BYTES: usize = 64 * 1024;
/// Distinct certificate URLs kept; SNS rotates rarely, so this is never reached in practice.
const MAX_CACHED_CERTS: usize = 64;
/// How long a failed certificate fetch (or an unusable certificate) is remembered before the URL
/// is tried again: a flood of messages naming one bad URL costs one fetch per period.
pub const DEFAULT_FAILURE_TTL: Duration = Duration::from_secs(60);

/// Fetches the PEM certificate at a `SigningCertURL` that passed the host check.
#[async_trait]
pub trait CertificateFetcher: Send + Sync + fmt::Debug {
    /// The PEM bytes.
    ///
    /// # Errors
    /// [`Error::Unavailable`] (or similar) when it cannot be fetched.
    async fn fetch(&self, url: &Url) -> Result<Vec<u8>>;
}

/// Fetches over HTTPS only, following no redirect (a redirect could lead off the checked
/// `sns.<region>.amazonaws.com` host), with a 10 s timeout, reading at most 64 KiB: the body is
/// read chunk by chunk and the fetch stops as soon as it grows past the limit.
#[derive(Debug, Clone)]
pub struct HttpsCertificateFetcher {
    client: reqwest::Client,
}

impl HttpsCertificateFetcher {
    /// With its own client: rustls, https only, no redirects.
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .user_agent(integrations_core::USER_AGENT)
            .build()
            .unwrap_or_else(|_| integrations_core::http::default_client());
        HttpsCertificateFetcher { client }
    }
    /// With `client` (a proxy, custom roots). Build it with
    /// `redirect(reqwest::redirect::Policy::none())`: a redirect answer is refused here, but a
    /// client that follows redirects never shows one.
    pub fn with_client(client: reqwest::Client) -> Self {
        HttpsCertificateFetcher { client }
    }
}

impl Default for HttpsCertificateFetcher {
    fn default() -> Self {
        Self::new()
    }
}

fn fetch_unavailable(m: &str) -> Error {
    Error::unavailable(format!("SNS signing certificate: {m}")).with_provider(PROVIDER)
}

/// GETs `url` with `client` and reads at most `limit` bytes of the body, chunk by chunk.
async fn fetch_capped(client: &reqwest::Client, url: &Url, limit: usize) -> Result<Vec<u8>> {
    let mut resp = client
        .get(url.clone())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| fetch_unavailable("request failed").with_source(e.without_url()))?;
    if resp.status().is_redirection() {
        return Err(fetch_unavailable(&format!(
            "HTTP {} (redirects are not followed)",
            resp.status()
        )));
    }
    if !resp.status().is_success() {
        return Err(fetch_unavailable(&format!("HTTP {}", resp.status())));
    }
    let too_large = || fetch_unavailable(&format!("certificate larger than {limit} bytes"));
    if resp
        .content_length()
        .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| fetch_unavailable("body failed").with_source(e.without_url()))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[async_trait]
impl CertificateFetcher for HttpsCertificateFetcher {
    async fn fetch(&self, url: &Url) -> Result<Vec<u8>> {
        if url.scheme() != "https" {
            return Err(Error::invalid_signature(SignatureFailure::InvalidKey(
                "SigningCertURL is not https".into(),
            ))
            .with_provider(PROVIDER));
        }
        fetch_capped(&self.client, url, MAX_CERT_BYTES).await
    }
}

/// A certificate URL's cache entry.
enum Cached {
    Key(RsaKey),
    /// The fetch or the certificate failed; not tried again before `until`.
    Failed {
        until: SystemTime,
        kind: ErrorKind,
        message: String,
    },
}

/// One entry per URL; its async lock makes concurrent verifications of one URL share one fetch.
type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// Verifies inbound SNS messages: body size, the topic (if [`with_allowed_topics`] set a list,
/// checked before anything is fetched), `SignatureVersion` 1 (SHA1withRSA) or 2 (SHA256withRSA),
/// the `SigningCertURL` (https, host `sns.<region>.amazonaws.com` — `.amazonaws.com.cn` for
/// `cn-` regions — with a real region label equal to the `TopicArn`'s region, path ending
/// `.pem`), the certificate's subject (CN `sns.amazonaws.com` or an `amazonaws.com` name) and the
/// signature over the exact string SNS signs.
///
/// Each certificate is fetched once and cached; concurrent verifications naming the same URL
/// share one fetch, and a failed fetch is remembered for [`DEFAULT_FAILURE_TTL`]
/// ([`with_failure_ttl`]) instead of being retried by every message.
///
/// The returned message holds only signed values, except [`SnsMessage::unverified`]
/// (`UnsubscribeURL`, `MessageAttributes`, which SNS never signs); unsigned fields of the
/// message's type (a notification's `SubscribeURL`/`Token`, a confirmation's `Subject`) are
/// dropped.
///
/// [`with_allowed_topics`]: SnsMessageVerifier::with_allowed_topics
/// [`with_failure_ttl`]: SnsMessageVerifier::with_failure_ttl
///
/// SNS retries a delivery with its original `Timestamp`, so no timestamp window is enforced unless
/// [`SnsMessageVerifier::with_max_age`] sets one; deduplicate on `MessageId` instead.
pub struct SnsMessageVerifier {
    fetcher: Arc<dyn CertificateFetcher>,
    keys: Mutex<HashMap<String, Slot>>,
    topics: Option<BTreeSet<String>>,
    failure_ttl: Duration,
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
            .field("allowed_topics", &self.topics)
            .field("failure_ttl", &self.failure_ttl)
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
            topics: None,
            failure_ttl: DEFAULT_FAILURE_TTL,
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
    /// Accepts messages of these topics only; any other `TopicArn` is [`Error::Forbidden`]
    /// before a certificate is fetched (anyone can point an SNS topic of theirs at your
    /// endpoint, and each message of theirs would otherwise cost a fetch).
    #[must_use]
    pub fn with_allowed_topics(
        mut self,
        topics: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.topics = Some(topics.into_iter().map(Into::into).collect());
        self
    }
    /// How long a failed certificate fetch is remembered (default [`DEFAULT_FAILURE_TTL`]).
    #[must_use]
    pub fn with_failure_ttl(mut self, ttl: Duration) -> Self {
        self.failure_ttl = ttl;
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
        let mut msg = self.parse(body)?;
        if let Some(topics) = &self.topics {
            check_topic(topics, &msg.topic_arn)?;
        }
        let version = SignatureVersion::parse(&msg.signature_version)
            .ok_or_else(|| fail(SignatureFailure::NoSupportedSignature))?;
        let (url, cert_region) = check_cert_url_region(&msg.signing_cert_url).map_err(fail)?;
        match topic_region(&msg.topic_arn) {
            Some(r) if r == cert_region => {}
            other => {
                return Err(fail(SignatureFailure::InvalidKey(format!(
                    "untrusted SigningCertURL: region `{cert_region}` is not the TopicArn's region ({})",
                    other.map_or_else(|| "none".to_owned(), |r| format!("`{r}`"))
                ))));
            }
        }
        let text = msg.string_to_sign().map_err(fail)?;
        let sig = STANDARD.decode(msg.signature.trim()).map_err(|_| {
            fail(SignatureFailure::MalformedHeader(
                "Signature is not base64".into(),
            ))
        })?;
        let key = self.key(&url).await?;
        key.verify(version, text.as_bytes(), &sig)
            .map_err(|()| fail(SignatureFailure::NoMatch))?;
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
        msg.drop_unsigned();
        Ok(msg)
    }

    /// The body-size check and [`SnsMessage::parse`], nothing verified: what
    /// [`SnsInboundHandler`](super::SnsInboundHandler) reads the topic from before verifying.
    pub(crate) fn parse(&self, body: &[u8]) -> Result<SnsMessage> {
        check_body_size(body.len(), self.body_limit)
            .map_err(|f| Error::invalid_signature(f).with_provider(PROVIDER))?;
        SnsMessage::parse(body)
    }

    async fn key(&self, url: &Url) -> Result<RsaKey> {
        let slot = {
            let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(slot) = keys.get(url.as_str()) {
                slot.clone()
            } else {
                if keys.len() >= MAX_CACHED_CERTS {
                    keys.clear();
                }
                let slot = Slot::default();
                keys.insert(url.as_str().to_owned(), slot.clone());
                slot
            }
        };
        // Held across the fetch: a second verification of this URL waits for the first fetch's
        // outcome instead of fetching again.
        let mut entry = slot.lock().await;
        let now = self.clock.now();
        match &*entry {
            Some(Cached::Key(k)) => return Ok(k.clone()),
            Some(Cached::Failed {
                until,
                kind,
                message,
            }) if now < *until => {
                let again = format!("{message} (failed recently; not fetched again yet)");
                return Err(if *kind == ErrorKind::InvalidSignature {
                    Error::invalid_signature(SignatureFailure::InvalidKey(again))
                } else {
                    Error::unavailable(again)
                }
                .with_provider(PROVIDER));
            }
            _ => {}
        }
        let fetched = match self.fetcher.fetch(url).await {
            Ok(pem) => public_key_from_pem(&pem)
                .map_err(|f| Error::invalid_signature(f).with_provider(PROVIDER)),
            Err(e) => Err(e),
        };
        match fetched {
            Ok(key) => {
                *entry = Some(Cached::Key(key.clone()));
                Ok(key)
            }
            Err(e) => {
                *entry = Some(Cached::Failed {
                    until: now.checked_add(self.failure_ttl).unwrap_or(now),
                    kind: e.kind(),
                    message: e.message().to_owned(),
                });
                Err(e)
            }
        }
    }
}

/// [`Error::Forbidden`] unless `topic` is in `topics`.
pub(crate) fn check_topic(topics: &BTreeSet<String>, topic: &str) -> Result<()> {
    if topics.contains(topic) {
        Ok(())
    } else {
        Err(Error::forbidden(format!("topic `{topic}` is not allowed")).with_provider(PROVIDER))
    }
}

/// The region of `arn:<partition>:sns:<region>:<account>:<topic>`.
fn topic_region(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (arn_, _partition, service, region) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (arn_ == "arn" && service == "sns" && !region.is_empty()).then_some(region)
}

/// Compass directions of AWS region names (`us-east-1`, `ap-southeast-5`, `eu-central-2`).
const REGION_DIRECTIONS: &[&str] = &[
    "central",
    "north",
    "south",
    "east",
    "west",
    "northeast",
    "northwest",
    "southeast",
    "southwest",
];

/// Whether `label` is shaped like a real AWS region: `<2-letter area>(-gov|-iso[a-z]?)?-<direction>-<digits>`
/// (`us-east-1`, `cn-north-1`, `us-gov-west-1`, `us-isob-east-1`, `il-central-1`). Hosts such
/// as `sns.s3-external-1.amazonaws.com` (an S3 endpoint that serves anyone's objects) fail.
pub(crate) fn is_region(label: &str) -> bool {
    let parts: Vec<&str> = label.split('-').collect();
    let Some((area, rest)) = parts.split_first() else {
        return false;
    };
    if area.len() != 2 || !area.bytes().all(|b| b.is_ascii_lowercase()) {
        return false;
    }
    let rest = match rest {
        [q, tail @ ..]
            if *q == "gov"
                || (q.len() <= 4
                    && q.starts_with("iso")
                    && q.bytes().all(|b| b.is_ascii_lowercase())) =>
        {
            tail
        }
        _ => rest,
    };
    matches!(rest, [direction, n]
        if REGION_DIRECTIONS.contains(direction)
            && (1..=2).contains(&n.len())
            && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The URL, if it is `https://sns.<region>.amazonaws.com/….pem` (`.amazonaws.com.cn` for
/// `cn-` regions) with a real region label.
#[cfg(test)]
pub(crate) fn check_cert_url(raw: &str) -> Result<Url, SignatureFailure> {
    check_cert_url_region(raw).map(|(url, _)| url)
}

/// [`check_cert_url`] and the URL's region.
fn check_cert_url_region(raw: &str) -> Result<(Url, String), SignatureFailure> {
    let bad = |why: &str| {
        SignatureFailure::InvalidKey(format!(
            "untrusted SigningCertURL `{}`: {why}",
            raw.escape_debug()
        ))
    };
    let url = Url::parse(raw).map_err(|_| bad("not a URL"))?;
    if url.scheme() != "https" {
        return Err(bad("not https"));
    }
    if url.port().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(bad("unexpected port or user info"));
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d,
        _ => return Err(bad("host is not sns.<region>.amazonaws.com")),
    };
    let (region, china) = match host
        .strip_prefix("sns.")
        .and_then(|h| h.strip_suffix(".amazonaws.com.cn"))
    {
        Some(r) => (r, true),
        None => (
            host.strip_prefix("sns.")
                .and_then(|h| h.strip_suffix(".amazonaws.com"))
                .ok_or_else(|| bad("host is not sns.<region>.amazonaws.com"))?,
            false,
        ),
    };
    if !is_region(region) {
        return Err(bad(
            "host is not sns.<region>.amazonaws.com with a real region",
        ));
    }
    if china != region.starts_with("cn-") {
        return Err(bad("China regions use .amazonaws.com.cn, and only they do"));
    }
    if !url.path().ends_with(".pem") || url.query().is_some() || url.fragment().is_some() {
        return Err(bad("not a .pem path"));
    }
    let region = region.to_owned();
    Ok((url, region))
}

/// Whether the certificate names SNS: subject CN `sns.amazonaws.com` (or `sns.<…>.amazonaws.com`
/// / `.amazonaws.com.cn`), or a DNS subject alternative name ending in `.amazonaws.com` or
/// `.amazonaws.com.cn`.
fn names_sns(cert: &Certificate) -> bool {
    let amazon = |name: &str| {
        let name = name.to_ascii_lowercase();
        name.ends_with(".amazonaws.com") || name.ends_with(".amazonaws.com.cn")
    };
    let cn_ok = cert
        .tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter_map(|atv| atv.to_string().strip_prefix("CN=").map(str::to_owned))
        .any(|cn| cn == "sns.amazonaws.com" || (cn.starts_with("sns.") && amazon(&cn)));
    if cn_ok {
        return true;
    }
    match cert.tbs_certificate.get::<SubjectAltName>() {
        Ok(Some((_, san))) => san.0.iter().any(|n| match n {
            GeneralName::DnsName(d) => amazon(d.as_ref()),
            _ => false,
        }),
        _ => false,
    }
}

/// An SNS signing certificate's RSA public key: the DER `RSAPublicKey` (PKCS#1) that `ring`
/// verifies with, checked to be 2048 to 8192 bits when the certificate is read.
#[derive(Clone)]
struct RsaKey(Arc<[u8]>);

impl RsaKey {
    /// Whether `sig` is `version`'s PKCS#1 v1.5 signature of `text` by this key.
    fn verify(&self, version: SignatureVersion, text: &[u8], sig: &[u8]) -> Result<(), ()> {
        let alg = match version {
            SignatureVersion::V1 => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            SignatureVersion::V2 => &RSA_PKCS1_2048_8192_SHA256,
        };
        UnparsedPublicKey::new(alg, &*self.0)
            .verify(text, sig)
            .map_err(|_| ())
    }
}

/// `rsaEncryption` (RFC 8017, appendix A.1).
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

/// The bit length of a DER `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
fn rsa_modulus_bits(der: &[u8]) -> Result<usize, String> {
    let mut reader = SliceReader::new(der).map_err(|e| e.to_string())?;
    let bits = reader
        .sequence(|r| {
            let n = UintRef::decode(r)?;
            let _e = UintRef::decode(r)?;
            let bytes = n.as_bytes();
            let lead = bytes.first().map_or(0, |b| 8 - b.leading_zeros() as usize);
            Ok(bytes.len().saturating_sub(1) * 8 + lead)
        })
        .map_err(|e| e.to_string())?;
    reader.finish(bits).map_err(|e| e.to_string())
}

fn public_key_from_pem(pem: &[u8]) -> Result<RsaKey, SignatureFailure> {
    let bad = |why: String| SignatureFailure::InvalidKey(format!("SNS signing certificate: {why}"));
    let cert = Certificate::from_pem(pem).map_err(|e| bad(e.to_string()))?;
    if !names_sns(&cert) {
        return Err(bad(
            "its subject is not sns.amazonaws.com (nor an amazonaws.com name)".into(),
        ));
    }
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let oid = spki.algorithm.oid.to_string();
    if oid != RSA_ENCRYPTION {
        return Err(bad(format!(
            "not an RSA key (algorithm {oid}, expected rsaEncryption)"
        )));
    }
    let key = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| bad("the public key is not a whole number of bytes".into()))?;
    let bits = rsa_modulus_bits(key).map_err(|e| bad(format!("malformed RSA key: {e}")))?;
    if !(2048..=8192).contains(&bits) {
        return Err(bad(format!(
            "RSA key of {bits} bits (SNS keys are 2048 to 8192 bits)"
        )));
    }
    Ok(RsaKey(key.into()))
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
#[path = "verify_tests.rs"]
mod tests;
