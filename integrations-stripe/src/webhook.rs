//! Stripe webhook verification: `Stripe-Signature` → typed [`Event`].
//!
//! Stripe signs `"{t}.{raw body}"` with HMAC-SHA256 keyed by the endpoint's whole signing secret
//! (`whsec_…`) and sends `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`. Verification, in
//! order:
//!
//! 1. body size within the limit (1 MiB by default), before any hashing;
//! 2. header parsed in one pass without allocating: exactly one `t`, at least one `v1` (at most
//!    [`MAX_SIGNATURES`]; `v0` and unknown schemes ignored);
//! 3. HMAC computed once per secret and compared in constant time with every `v1`: any match
//!    passes, which is how secret rotation works (several secrets here, several `v1` there);
//! 4. `t` within the tolerance of now (300 s by default), in either direction, on an injectable
//!    [`Clock`];
//! 5. only then the body is parsed as an [`Event`].
//!
//! Events stay readable when the account's API version moves ahead of the pinned one: the
//! envelope is all that is parsed, `data.object` stays raw until [`EventData::object`] asks for
//! it, and unknown fields and object types are accepted. The first event whose `api_version`
//! differs from the pinned one ([`DEFAULT_API_VERSION`](crate::DEFAULT_API_VERSION), or
//! [`StripeWebhookVerifier::with_api_version`]) is logged once per process (`tracing::warn!`
//! with `event_api_version` and `pinned_api_version`): upgrade the pin, or the endpoint's
//! version, before the typed fields drift.
//!
//! The raw bytes are what is signed: a body parsed and re-serialised by a framework no longer
//! verifies. Give the verifier the bytes as received.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use integrations_core::webhook::WebhookSecret;
//! use integrations_stripe::webhook::{self, DEFAULT_TOLERANCE};
//!
//! let secret = WebhookSecret::new("whsec_test_secret");
//! let body = br#"{"id":"evt_1","object":"event","type":"customer.created","created":1700000000,
//!   "livemode":false,"api_version":"2025-03-31.basil","data":{"object":{"id":"cus_1","object":"customer"}}}"#;
//! let header = webhook::sign_for_test(body, &secret, 1_700_000_000);
//! let now = UNIX_EPOCH + Duration::from_secs(1_700_000_060);
//! let event = webhook::verify(body, &header, &[secret], DEFAULT_TOLERANCE, now)?;
//! assert_eq!(event.type_, "customer.created");
//! # Ok::<(), integrations_core::Error>(())
//! ```

use std::fmt;
use std::sync::{Arc, Once};
use std::time::{Duration, SystemTime};

use integrations_core::clock::{Clock, SystemClock, unix_seconds};
pub use integrations_core::webhook::{DEFAULT_BODY_LIMIT, DEFAULT_TOLERANCE, WebhookSecret};
use integrations_core::webhook::{
    DedupOutcome, DedupStore, WebhookSigner, WebhookVerifier, check_body_size, check_timestamp,
    constant_time_eq,
};
use integrations_core::{Error, Result, SignatureFailure};

use crate::PROVIDER;
pub use crate::types::{Event, EventData, EventObject};

/// The header Stripe signs deliveries with.
pub const SIGNATURE_HEADER: &str = "Stripe-Signature";

/// Environment variable read by [`StripeWebhookVerifier::from_env`] (comma-separated for rotation).
pub const ENV_WEBHOOK_SECRET: &str = "STRIPE_WEBHOOK_SECRET";

/// Longest `Stripe-Signature` header accepted.
pub const MAX_HEADER_LEN: usize = 8 * 1024;

/// How long a verified event id is remembered by [`StripeWebhookVerifier::verify_and_dedup`]: 30 days,
/// covering Stripe's automatic retries (up to 3 days) and manual resends of retained events.
pub const DEFAULT_DEDUP_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

fn refused(reason: SignatureFailure) -> Error {
    Error::invalid_signature(reason).with_provider(PROVIDER)
}

fn malformed(why: &str) -> Error {
    refused(SignatureFailure::MalformedHeader(why.to_owned()))
}

/// Most `v1` signatures one header may carry (Stripe sends one per active secret: one, or two
/// during a rotation).
pub const MAX_SIGNATURES: usize = 8;

/// A parsed `Stripe-Signature`: the raw and numeric `t`, and the decodable `v1` signatures.
struct Header<'a> {
    t_raw: &'a str,
    t: i64,
    signatures: [[u8; 32]; MAX_SIGNATURES],
    count: usize,
}

impl Header<'_> {
    fn signatures(&self) -> &[[u8; 32]] {
        &self.signatures[..self.count]
    }
}

/// Parses the header in one pass, without allocating.
fn parse_header(header: &str) -> Result<Header<'_>> {
    if header.len() > MAX_HEADER_LEN {
        return Err(malformed("header too long"));
    }
    let mut timestamp: Option<(&str, i64)> = None;
    let mut signatures = [[0u8; 32]; MAX_SIGNATURES];
    let mut count = 0usize;
    let mut v1_seen = false;
    for item in header.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let Some((key, value)) = item.split_once('=') else {
            return Err(malformed("an element is not `key=value`"));
        };
        match key.trim() {
            "t" => {
                if timestamp.is_some() {
                    return Err(malformed("more than one `t`"));
                }
                let value = value.trim();
                let parsed = (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| value.parse::<i64>().ok())
                    .flatten()
                    .ok_or_else(|| malformed("`t` is not a unix timestamp"))?;
                timestamp = Some((value, parsed));
            }
            "v1" => {
                v1_seen = true;
                // A `v1` that is not 64 hex digits cannot match anything; it is skipped.
                let mut sig = [0u8; 32];
                if hex::decode_to_slice(value.trim(), &mut sig).is_ok() {
                    if count == MAX_SIGNATURES {
                        return Err(malformed("too many `v1` signatures"));
                    }
                    signatures[count] = sig;
                    count += 1;
                }
            }
            // `v0` (Stripe's legacy test scheme) and anything newer are ignored.
            _ => {}
        }
    }
    let (t_raw, t) = timestamp.ok_or_else(|| malformed("no timestamp `t`"))?;
    if !v1_seen {
        return Err(refused(SignatureFailure::NoSupportedSignature));
    }
    Ok(Header {
        t_raw,
        t,
        signatures,
        count,
    })
}

fn verify_signature_with_limit(
    raw_body: &[u8],
    header: &str,
    secrets: &[WebhookSecret],
    tolerance: Duration,
    now: SystemTime,
    body_limit: usize,
) -> Result<i64> {
    check_body_size(raw_body.len(), body_limit).map_err(refused)?;
    if secrets.is_empty() || secrets.iter().any(WebhookSecret::is_empty) {
        return Err(refused(SignatureFailure::InvalidKey(
            "no (or an empty) webhook signing secret configured".to_owned(),
        )));
    }
    let header = parse_header(header)?;
    let mut matched = false;
    for secret in secrets {
        // One HMAC per secret, whatever the number of `v1` signatures.
        let expected = secret.sign(&[header.t_raw.as_bytes(), b".", raw_body]);
        for sig in header.signatures() {
            // Constant time: how much of a forged signature matched stays secret.
            matched |= constant_time_eq(sig, &expected);
        }
    }
    if !matched {
        return Err(refused(SignatureFailure::NoMatch));
    }
    check_timestamp(header.t, now, tolerance).map_err(refused)?;
    Ok(header.t)
}

/// Verifies the signature of a delivery without parsing the body: size limit
/// ([`DEFAULT_BODY_LIMIT`]), header, HMAC against every secret, timestamp. Returns the signed
/// timestamp.
///
/// # Errors
/// [`Error::InvalidSignature`] with the [`SignatureFailure`]: `BodyTooLarge`, `InvalidKey` (no
/// secret), `MalformedHeader`, `NoSupportedSignature` (no `v1`), `NoMatch`,
/// `TimestampOutsideTolerance`.
pub fn verify_signature(
    raw_body: &[u8],
    header: &str,
    secrets: &[WebhookSecret],
    tolerance: Duration,
    now: SystemTime,
) -> Result<i64> {
    verify_signature_with_limit(
        raw_body,
        header,
        secrets,
        tolerance,
        now,
        DEFAULT_BODY_LIMIT,
    )
}

/// Verifies a delivery ([`verify_signature`]) and parses it as an [`Event`].
///
/// # Errors
/// As [`verify_signature`]; [`Error::Provider`] when the signed body is not a Stripe event.
pub fn verify(
    raw_body: &[u8],
    header: &str,
    secrets: &[WebhookSecret],
    tolerance: Duration,
    now: SystemTime,
) -> Result<Event> {
    verify_signature(raw_body, header, secrets, tolerance, now)?;
    parse_event(raw_body, crate::DEFAULT_API_VERSION)
}

fn parse_event(raw_body: &[u8], pinned: &str) -> Result<Event> {
    let event: Event = serde_json::from_slice(raw_body).map_err(|e| {
        Error::provider(format!("signed webhook body is not a Stripe event: {e}"))
            .with_provider(PROVIDER)
            .with_source(e)
    })?;
    note_api_version(&event, pinned);
    Ok(event)
}

/// Set once the first API version mismatch has been logged.
static API_VERSION_MISMATCH: Once = Once::new();

/// Logs, once per process, an event rendered with another API version than the pinned one.
fn note_api_version(event: &Event, pinned: &str) {
    let Some(version) = event.api_version.as_deref() else {
        return;
    };
    if version != pinned {
        API_VERSION_MISMATCH.call_once(|| {
            tracing::warn!(
                provider = PROVIDER,
                event_id = %event.id,
                event_api_version = version,
                pinned_api_version = pinned,
                "Stripe event api_version {version} differs from the pinned {pinned}: typed \
                 fields may drift; align the webhook endpoint's version with the pin \
                 (logged once per process)"
            );
        });
    }
}

/// A `Stripe-Signature` header for `payload`, as Stripe would send it at `timestamp`: feed it to
/// your own handler in tests.
pub fn sign_for_test(payload: &[u8], secret: &WebhookSecret, timestamp: i64) -> String {
    let t = timestamp.to_string();
    let sig = secret.sign(&[t.as_bytes(), b".", payload]);
    format!("t={t},v1={}", hex::encode(sig))
}

/// The outcome of [`StripeWebhookVerifier::verify_and_dedup`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Verified {
    /// The verified event.
    pub event: Event,
    /// `true` when this event id was already seen: acknowledge it (2xx) and do nothing.
    pub duplicate: bool,
}

/// Secrets, tolerance, body limit and clock in one value, with dedup of redeliveries.
///
/// ```
/// use integrations_core::webhook::{InMemoryDedupStore, WebhookSecret};
/// use integrations_core::clock::FixedClock;
/// use integrations_stripe::webhook::{sign_for_test, StripeWebhookVerifier};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let clock = FixedClock::from_unix(1_700_000_000);
/// let verifier = StripeWebhookVerifier::new(WebhookSecret::new("whsec_new"))
///     .add_secret(WebhookSecret::new("whsec_old")) // rotation: both accepted
///     .with_clock(clock);
/// let body = br#"{"id":"evt_1","type":"charge.refunded","created":1700000000,"data":{"object":{"object":"balance"}}}"#;
/// let header = sign_for_test(body, &WebhookSecret::new("whsec_old"), 1_700_000_000);
/// let store = InMemoryDedupStore::new();
/// assert!(!verifier.verify_and_dedup(body, &header, &store).await?.duplicate);
/// assert!(verifier.verify_and_dedup(body, &header, &store).await?.duplicate);
/// # Ok::<(), integrations_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct StripeWebhookVerifier {
    secrets: Vec<WebhookSecret>,
    tolerance: Duration,
    body_limit: usize,
    clock: Arc<dyn Clock>,
    dedup_ttl: Duration,
    api_version: String,
}

impl fmt::Debug for StripeWebhookVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeWebhookVerifier")
            .field("secrets", &self.secrets.len())
            .field("tolerance", &self.tolerance)
            .field("body_limit", &self.body_limit)
            .field("clock", &self.clock)
            .field("dedup_ttl", &self.dedup_ttl)
            .field("api_version", &self.api_version)
            .finish_non_exhaustive()
    }
}

impl StripeWebhookVerifier {
    /// A verifier for one signing secret, with the defaults: 300 s tolerance, 1 MiB bodies, the
    /// system clock, 30-day dedup.
    pub fn new(secret: WebhookSecret) -> Self {
        StripeWebhookVerifier {
            secrets: vec![secret],
            tolerance: DEFAULT_TOLERANCE,
            body_limit: DEFAULT_BODY_LIMIT,
            clock: Arc::new(SystemClock),
            dedup_ttl: DEFAULT_DEDUP_TTL,
            api_version: crate::DEFAULT_API_VERSION.to_owned(),
        }
    }

    /// A verifier reading `STRIPE_WEBHOOK_SECRET` (several secrets comma-separated, for
    /// rotation).
    ///
    /// # Errors
    /// [`Error::Configuration`] naming `STRIPE_WEBHOOK_SECRET` when unset or empty.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|n| std::env::var(n).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let raw = lookup(ENV_WEBHOOK_SECRET).unwrap_or_default();
        let mut secrets = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(WebhookSecret::new);
        let first = secrets.next().ok_or_else(|| {
            Error::configuration(ENV_WEBHOOK_SECRET, "missing or empty").with_provider(PROVIDER)
        })?;
        Ok(secrets.fold(Self::new(first), Self::add_secret))
    }

    /// Also accepts `secret` (during a rotation, keep the old and the new one).
    #[must_use]
    pub fn add_secret(mut self, secret: WebhookSecret) -> Self {
        self.secrets.push(secret);
        self
    }

    /// Timestamp tolerance, either direction.
    #[must_use]
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Largest body verified.
    #[must_use]
    pub fn with_body_limit(mut self, limit: usize) -> Self {
        self.body_limit = limit;
        self
    }

    /// The clock "now" is read from.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How long a seen event id counts as a duplicate.
    #[must_use]
    pub fn with_dedup_ttl(mut self, ttl: Duration) -> Self {
        self.dedup_ttl = ttl;
        self
    }

    /// The API version events are expected in (default
    /// [`DEFAULT_API_VERSION`](crate::DEFAULT_API_VERSION)): set it to the client's pinned
    /// version ([`StripeClient::api_version`](crate::StripeClient::api_version)). An event in
    /// another version is still accepted; the first one is logged once per process.
    #[must_use]
    pub fn with_api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = version.into();
        self
    }

    /// Verifies the signature only; returns the signed timestamp.
    ///
    /// # Errors
    /// As [`verify_signature`].
    pub fn verify_signature(&self, raw_body: &[u8], header: &str) -> Result<i64> {
        verify_signature_with_limit(
            raw_body,
            header,
            &self.secrets,
            self.tolerance,
            self.clock.now(),
            self.body_limit,
        )
    }

    /// Verifies and parses.
    ///
    /// # Errors
    /// As [`verify`].
    pub fn verify(&self, raw_body: &[u8], header: &str) -> Result<Event> {
        self.verify_signature(raw_body, header)?;
        parse_event(raw_body, &self.api_version)
    }

    /// Verifies, parses, and records the event id in `store`: a redelivery of the same event is
    /// reported with `duplicate: true`.
    ///
    /// The id is recorded as soon as the event verifies, so make the event's effect durable
    /// (e.g. write it to an outbox) before answering 2xx, and answer 5xx if that fails *and*
    /// nothing was recorded — or record the outcome in the same transaction as the effect, with
    /// a transactional dedup store. If processing a non-duplicate event fails, call
    /// [`DedupStore::release`] with `"stripe:{event.id}"` before answering 5xx, or the
    /// redelivery is taken for a duplicate and the event is lost.
    ///
    /// # Errors
    /// As [`verify`]; the store's own errors (answer 5xx so Stripe redelivers).
    pub async fn verify_and_dedup(
        &self,
        raw_body: &[u8],
        header: &str,
        store: &dyn DedupStore,
    ) -> Result<Verified> {
        let event = self.verify(raw_body, header)?;
        let key = format!("{PROVIDER}:{}", event.id);
        let outcome = match store.insert_if_absent(&key, self.dedup_ttl).await {
            Ok(outcome) => outcome,
            Err(e) => {
                // The insert may have landed before failing (a timeout): release it, best
                // effort, so Stripe's redelivery is processed rather than taken for a duplicate.
                integrations_core::webhook::release_all(store, [key.as_str()]).await;
                return Err(e);
            }
        };
        Ok(Verified {
            event,
            duplicate: outcome == DedupOutcome::Duplicate,
        })
    }
}

#[async_trait::async_trait]
impl WebhookVerifier for StripeWebhookVerifier {
    type Event = Event;

    fn provider(&self) -> &'static str {
        PROVIDER
    }

    /// Verifies the `Stripe-Signature` header and the body, then parses the event envelope; the
    /// event's object is parsed only when asked for ([`Event::object`]).
    ///
    /// A signed body that is not a Stripe event is [`Error::InvalidInput`] on `body` here (the
    /// sender's fault, answered 400 by the extractor).
    async fn verify_request(&self, headers: &http::HeaderMap, body: &[u8]) -> Result<Event> {
        let header = match headers.get(SIGNATURE_HEADER).map(|v| v.to_str()) {
            Some(Ok(h)) => h,
            Some(Err(_)) => return Err(malformed("Stripe-Signature is not text")),
            None => return Err(malformed("Stripe-Signature is missing")),
        };
        self.verify(body, header).map_err(|e| {
            if e.kind() == integrations_core::ErrorKind::Provider {
                Error::invalid_input("body", e.message().to_owned()).with_provider(PROVIDER)
            } else {
                e
            }
        })
    }
}

impl WebhookSigner for StripeWebhookVerifier {
    /// Signs with the first secret, as Stripe would.
    fn sign_for_test(&self, body: &[u8], timestamp: SystemTime) -> http::HeaderMap {
        let value = sign_for_test(body, &self.secrets[0], unix_seconds(timestamp));
        let mut headers = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            headers.insert(SIGNATURE_HEADER, v);
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use integrations_core::clock::from_unix_seconds;

    const T: i64 = 1_700_000_000;

    fn secret() -> WebhookSecret {
        WebhookSecret::new("whsec_test_secret")
    }

    #[test]
    fn header_parsing() {
        let sig = "ab".repeat(32);
        let one = format!("t=123,v1={sig}");
        let Ok(h) = parse_header(&one) else {
            panic!("valid header refused")
        };
        assert_eq!((h.t_raw, h.t, h.signatures().len()), ("123", 123, 1));
        assert_eq!(h.signatures()[0], [0xab; 32]);
        let mixed = format!(" t=123 , v0=x, v1=ab, v1={sig} ,");
        let Ok(h) = parse_header(&mixed) else {
            panic!("valid header refused")
        };
        assert_eq!((h.t_raw, h.signatures().len()), ("123", 1));
        let many = format!("t=1{}", format!(",v1={sig}").repeat(MAX_SIGNATURES + 1));
        assert!(parse_header(&many).is_err());
        let enough = format!("t=1{}", format!(",v1={sig}").repeat(MAX_SIGNATURES));
        assert!(parse_header(&enough).is_ok_and(|h| h.signatures().len() == MAX_SIGNATURES));
        for (h, reason) in [
            ("", "no timestamp"),
            ("v1=ab", "no timestamp"),
            ("t=12a,v1=ab", "unix timestamp"),
            ("t=-5,v1=ab", "unix timestamp"),
            ("t=,v1=ab", "unix timestamp"),
            ("t=1,t=2,v1=ab", "more than one"),
            ("t=1;v1=ab", "unix timestamp"),
            ("garbage", "key=value"),
        ] {
            let Err(e) = parse_header(h) else {
                panic!("{h:?} parsed")
            };
            assert!(
                matches!(&e, Error::InvalidSignature { reason: SignatureFailure::MalformedHeader(m), .. } if m.contains(reason)),
                "{h:?}: {e}"
            );
        }
        let Err(e) = parse_header("t=1,v0=ab") else {
            panic!("parsed")
        };
        assert!(matches!(
            e,
            Error::InvalidSignature {
                reason: SignatureFailure::NoSupportedSignature,
                ..
            }
        ));
        let long = format!("t=1,v1={}", "a".repeat(MAX_HEADER_LEN));
        assert!(parse_header(&long).is_err());
    }

    /// Records the key, then fails like a store call that timed out after its write landed.
    #[derive(Debug)]
    struct WritesThenTimesOut(
        integrations_core::webhook::InMemoryDedupStore,
        std::sync::atomic::AtomicBool,
    );

    #[async_trait::async_trait]
    impl DedupStore for WritesThenTimesOut {
        async fn insert_if_absent(&self, key: &str, ttl: Duration) -> Result<DedupOutcome> {
            let outcome = self.0.insert_if_absent(key, ttl).await?;
            if self.1.swap(false, std::sync::atomic::Ordering::SeqCst) {
                return Err(Error::timeout("store did not answer"));
            }
            Ok(outcome)
        }
        async fn release(&self, key: &str) -> Result<()> {
            self.0.release(key).await
        }
    }

    #[tokio::test]
    async fn verify_and_dedup_releases_the_key_when_the_store_fails() {
        let verifier = StripeWebhookVerifier::new(secret())
            .with_clock(integrations_core::clock::FixedClock::from_unix(T));
        let body = br#"{"id":"evt_1","type":"charge.refunded","created":1700000000,"data":{"object":{"object":"balance"}}}"#;
        let header = sign_for_test(body, &secret(), T);
        let store = WritesThenTimesOut(
            integrations_core::webhook::InMemoryDedupStore::new(),
            true.into(),
        );
        let e = verifier
            .verify_and_dedup(body, &header, &store)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), integrations_core::ErrorKind::Timeout);
        // Stripe redelivers: processed, not taken for a duplicate.
        let again = verifier
            .verify_and_dedup(body, &header, &store)
            .await
            .unwrap();
        assert!(!again.duplicate);
    }

    #[test]
    fn sign_then_verify_round_trips() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign_for_test(body, &secret(), T);
        assert!(header.starts_with(&format!("t={T},v1=")));
        assert_eq!(header.len(), "t=1700000000,v1=".len() + 64);
        let t = verify_signature(
            body,
            &header,
            &[secret()],
            DEFAULT_TOLERANCE,
            from_unix_seconds(T),
        )
        .unwrap();
        assert_eq!(t, T);
    }

    #[test]
    fn refuses_empty_secrets_and_big_bodies() {
        let body = b"{}";
        let header = sign_for_test(body, &secret(), T);
        let now = from_unix_seconds(T);
        let e = verify_signature(body, &header, &[], DEFAULT_TOLERANCE, now).unwrap_err();
        assert!(matches!(
            e,
            Error::InvalidSignature {
                reason: SignatureFailure::InvalidKey(_),
                ..
            }
        ));
        let e = verify_signature(
            body,
            &header,
            &[WebhookSecret::new("")],
            DEFAULT_TOLERANCE,
            now,
        )
        .unwrap_err();
        assert!(matches!(
            e,
            Error::InvalidSignature {
                reason: SignatureFailure::InvalidKey(_),
                ..
            }
        ));
        let v = StripeWebhookVerifier::new(secret())
            .with_body_limit(1)
            .with_clock(integrations_core::clock::FixedClock::from_unix(T));
        let e = v.verify_signature(body, &header).unwrap_err();
        assert!(matches!(
            e,
            Error::InvalidSignature {
                reason: SignatureFailure::BodyTooLarge { size: 2, limit: 1 },
                ..
            }
        ));
    }

    #[test]
    fn from_env_splits_rotated_secrets() {
        let v = StripeWebhookVerifier::from_lookup(|_| Some("whsec_a, whsec_b".into())).unwrap();
        assert_eq!(v.secrets.len(), 2);
        let dbg = format!("{v:?}");
        assert!(!dbg.contains("whsec_a"), "{dbg}");
        let e = StripeWebhookVerifier::from_lookup(|_| None).unwrap_err();
        assert_eq!(e.field(), Some(ENV_WEBHOOK_SECRET));
        assert!(StripeWebhookVerifier::from_lookup(|_| Some(" , ".into())).is_err());
    }
}
