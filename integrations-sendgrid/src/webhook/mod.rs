//! Signed Event Webhook: verify SendGrid's ECDSA signature, then parse the batch into typed
//! events.
//!
//! SendGrid signs `timestamp ‖ raw body` (the `X-Twilio-Email-Event-Webhook-Timestamp` header
//! value immediately followed by the body bytes) with ECDSA P-256 / SHA-256 and sends the
//! base64 DER signature in `X-Twilio-Email-Event-Webhook-Signature`. The verification key,
//! shown under Mail Settings → Signed Event Webhook, is a base64 DER SubjectPublicKeyInfo.
//!
//! SendGrid's own libraries check only the signature. This verifier also refuses timestamps more
//! than [`DEFAULT_TOLERANCE`] (300 s) from its [`Clock`], so a captured batch cannot be replayed
//! later, and bodies over [`DEFAULT_BODY_LIMIT`]. Deduplicate redeliveries by
//! [`Event::dedup_key`] (`sendgrid:<sg_event_id>`) with [`first_deliveries`] and a core
//! [`DedupStore`].
//!
//! ```
//! use integrations_core::clock::FixedClock;
//! use integrations_sendgrid::webhook::{EventWebhookSigner, EventType};
//!
//! let signer = EventWebhookSigner::generate();
//! let body = br#"[{"email":"a@example.com","timestamp":1700000000,"event":"delivered","sg_event_id":"ZXZ0","sg_message_id":"MSGID.filter-1.0","order_id":"42"}]"#;
//! let signed = signer.sign_for_test(1_700_000_000, body);
//!
//! let verifier = signer.verifier().with_clock(FixedClock::from_unix(1_700_000_010));
//! let events = verifier.construct_events(&signed.headers(), body)?;
//! assert_eq!(events[0].event_type(), EventType::Delivered);
//! assert_eq!(events[0].message_id(), Some("MSGID"));
//! assert_eq!(events[0].custom_arg("order_id"), Some("42"));
//! # Ok::<(), integrations_core::Error>(())
//! ```

mod events;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue};
use integrations_core::clock::{Clock, SystemClock, unix_seconds};
use integrations_core::webhook::{
    DEFAULT_BODY_LIMIT, DEFAULT_TOLERANCE, DedupStore, WebhookSigner, WebhookVerifier,
    check_body_size, check_timestamp, release_all,
};
use integrations_core::{Error, Result, SignatureFailure};
use p256::ecdsa::signature::{DigestSigner, DigestVerifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use sha2::{Digest, Sha256};

pub use events::{Event, EventKind, EventType, message_id_of, parse_events};

use crate::PROVIDER;

/// Header carrying the base64 DER signature.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Email-Event-Webhook-Signature";
/// Header carrying the signed unix timestamp.
pub const TIMESTAMP_HEADER: &str = "X-Twilio-Email-Event-Webhook-Timestamp";
/// Environment variable [`EventWebhookVerifier::from_env`] reads.
pub const PUBLIC_KEY_ENV: &str = "SENDGRID_WEBHOOK_PUBLIC_KEY";

fn refused(reason: SignatureFailure) -> Error {
    Error::invalid_signature(reason).with_provider(PROVIDER)
}

/// A base64 DER SubjectPublicKeyInfo P-256 key; PEM armour and whitespace are tolerated.
fn parse_public_key(public_key: &str) -> Result<VerifyingKey> {
    let bad = |msg: &str| Error::configuration(PUBLIC_KEY_ENV, msg).with_provider(PROVIDER);
    let b64: String = public_key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = STANDARD
        .decode(b64)
        .map_err(|e| bad("the verification key is not base64").with_source(e))?;
    VerifyingKey::from_public_key_der(&der).map_err(|e| {
        bad("the verification key is not a P-256 public key (DER SPKI)").with_source(e)
    })
}

fn digest(timestamp: &str, body: &[u8]) -> Sha256 {
    let mut d = Sha256::new();
    d.update(timestamp.as_bytes());
    d.update(body);
    d
}

/// Verifies Signed Event Webhook requests.
#[derive(Clone)]
pub struct EventWebhookVerifier {
    /// Every key accepted: more than one during a key rotation.
    keys: Vec<VerifyingKey>,
    tolerance: Option<Duration>,
    body_limit: usize,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for EventWebhookVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventWebhookVerifier")
            .field("keys", &self.keys.len())
            .field("tolerance", &self.tolerance)
            .field("body_limit", &self.body_limit)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl EventWebhookVerifier {
    /// A verifier for the account's verification key (base64 DER SubjectPublicKeyInfo, as SendGrid
    /// shows it; PEM armour and whitespace are tolerated), with a 300 s tolerance, a 1 MiB body
    /// limit and the system clock.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming `SENDGRID_WEBHOOK_PUBLIC_KEY` if the key is not base64, not
    /// DER SPKI, or not a P-256 key.
    pub fn new(public_key: &str) -> Result<Self> {
        Ok(EventWebhookVerifier {
            keys: vec![parse_public_key(public_key)?],
            tolerance: Some(DEFAULT_TOLERANCE),
            body_limit: DEFAULT_BODY_LIMIT,
            clock: Arc::new(SystemClock),
        })
    }

    /// Also accepts signatures made with `public_key` (as [`EventWebhookVerifier::new`] reads
    /// it): during a key rotation, verify with the old and the new key until SendGrid signs with
    /// the new one only.
    ///
    /// # Errors
    /// As [`EventWebhookVerifier::new`].
    pub fn with_public_key(mut self, public_key: &str) -> Result<Self> {
        self.add_public_key(public_key)?;
        Ok(self)
    }

    /// [`EventWebhookVerifier::with_public_key`] in place.
    ///
    /// # Errors
    /// As [`EventWebhookVerifier::new`].
    pub fn add_public_key(&mut self, public_key: &str) -> Result<()> {
        self.keys.push(parse_public_key(public_key)?);
        Ok(())
    }

    /// How many keys are accepted.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// [`EventWebhookVerifier::new`] with the keys from `SENDGRID_WEBHOOK_PUBLIC_KEY`: one key, or
    /// several separated by commas during a key rotation (any of them verifies).
    ///
    /// # Errors
    /// [`Error::Configuration`] naming `SENDGRID_WEBHOOK_PUBLIC_KEY` if it is unset or a key in it
    /// is invalid.
    pub fn from_env() -> Result<Self> {
        let keys = std::env::var(PUBLIC_KEY_ENV)
            .map_err(|_| Error::configuration(PUBLIC_KEY_ENV, "not set").with_provider(PROVIDER))?;
        EventWebhookVerifier::from_key_list(&keys)
    }

    /// A verifier for a comma-separated list of keys (what [`EventWebhookVerifier::from_env`]
    /// reads); empty entries are skipped.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming `SENDGRID_WEBHOOK_PUBLIC_KEY` if the list holds no key or
    /// a key in it is invalid.
    pub fn from_key_list(keys: &str) -> Result<Self> {
        let mut parts = keys.split(',').filter(|k| !k.trim().is_empty());
        let first = parts.next().ok_or_else(|| {
            Error::configuration(PUBLIC_KEY_ENV, "no verification key").with_provider(PROVIDER)
        })?;
        parts.try_fold(EventWebhookVerifier::new(first)?, |v, k| {
            v.with_public_key(k)
        })
    }

    /// Allowed distance between the signed timestamp and now, either direction.
    #[must_use]
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = Some(tolerance);
        self
    }

    /// Checks the signature only, as SendGrid's libraries do (replays are then possible).
    #[must_use]
    pub fn without_tolerance(mut self) -> Self {
        self.tolerance = None;
        self
    }

    /// Largest body verified; larger ones are refused before hashing.
    #[must_use]
    pub fn with_body_limit(mut self, limit: usize) -> Self {
        self.body_limit = limit;
        self
    }

    /// Where "now" comes from.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Verifies `signature` (header value) over `timestamp` (header value) followed by `body`.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] with [`SignatureFailure::BodyTooLarge`],
    /// [`SignatureFailure::MalformedHeader`] (signature not base64 DER, timestamp not an integer),
    /// [`SignatureFailure::NoMatch`] (wrong key or altered body or timestamp), or
    /// [`SignatureFailure::TimestampOutsideTolerance`] (checked after the signature, so a forged
    /// request never learns about the clock).
    pub fn verify(&self, signature: &str, timestamp: &str, body: &[u8]) -> Result<()> {
        check_body_size(body.len(), self.body_limit).map_err(refused)?;
        let ts: i64 = timestamp.trim().parse().map_err(|_| {
            refused(SignatureFailure::MalformedHeader(format!(
                "{TIMESTAMP_HEADER} is not a unix timestamp"
            )))
        })?;
        let der = STANDARD.decode(signature.trim()).map_err(|_| {
            refused(SignatureFailure::MalformedHeader(format!(
                "{SIGNATURE_HEADER} is not base64"
            )))
        })?;
        let sig = Signature::from_der(&der).map_err(|_| {
            refused(SignatureFailure::MalformedHeader(format!(
                "{SIGNATURE_HEADER} is not a DER ECDSA signature"
            )))
        })?;
        let d = digest(timestamp, body);
        if !self
            .keys
            .iter()
            .any(|k| k.verify_digest(d.clone(), &sig).is_ok())
        {
            return Err(refused(SignatureFailure::NoMatch));
        }
        if let Some(tolerance) = self.tolerance {
            check_timestamp(ts, self.clock.now(), tolerance).map_err(refused)?;
        }
        Ok(())
    }

    /// [`EventWebhookVerifier::verify`] with the two headers read from `headers`.
    ///
    /// # Errors
    /// As [`EventWebhookVerifier::verify`];
    /// [`SignatureFailure::MalformedHeader`] if a header is missing or not text.
    pub fn verify_headers(&self, headers: &HeaderMap, body: &[u8]) -> Result<()> {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    refused(SignatureFailure::MalformedHeader(format!(
                        "{name} is missing"
                    )))
                })
        };
        let signature = get(SIGNATURE_HEADER)?;
        let timestamp = get(TIMESTAMP_HEADER)?;
        self.verify(signature, timestamp, body)
    }

    /// Verifies, then parses the batch.
    ///
    /// # Errors
    /// As [`EventWebhookVerifier::verify_headers`] and [`parse_events`].
    pub fn construct_events(&self, headers: &HeaderMap, body: &[u8]) -> Result<Vec<Event>> {
        self.verify_headers(headers, body)?;
        parse_events(body)
    }
}

#[async_trait::async_trait]
impl WebhookVerifier for EventWebhookVerifier {
    type Event = Vec<Event>;

    fn provider(&self) -> &'static str {
        PROVIDER
    }

    /// [`EventWebhookVerifier::construct_events`]: the signature and timestamp headers checked,
    /// then the batch parsed.
    async fn verify_request(&self, headers: &HeaderMap, body: &[u8]) -> Result<Vec<Event>> {
        self.construct_events(headers, body)
    }
}

impl WebhookSigner for EventWebhookSigner {
    fn sign_for_test(&self, body: &[u8], timestamp: std::time::SystemTime) -> HeaderMap {
        EventWebhookSigner::sign_for_test(self, unix_seconds(timestamp), body).headers()
    }
}

/// How long [`first_deliveries`] remembers an event id by default: SendGrid retries failed
/// webhook posts for up to 24 hours, so a day and a margin.
pub const DEFAULT_DEDUP_TTL: Duration = Duration::from_secs(25 * 3600);

/// Keeps the events seen for the first time: each event's [`Event::dedup_key`]
/// (`sendgrid:<sg_event_id>`, namespaced so one store can be shared with other senders) is
/// recorded in `store` for `ttl`, and events already recorded — a redelivered batch — are
/// dropped, so they have no second effect.
///
/// All or nothing: if recording fails part-way, the keys this call recorded are released
/// ([`DedupStore::release`], best effort) before the error is returned, so SendGrid's
/// redelivery of the batch finds them new again instead of losing them as "duplicates". If your
/// processing of the returned events fails, release their keys the same way before answering
/// non-2xx.
///
/// # Errors
/// Whatever `store` raises; answer non-2xx and let SendGrid redeliver.
pub async fn first_deliveries(
    events: Vec<Event>,
    store: &dyn DedupStore,
    ttl: Duration,
) -> Result<Vec<Event>> {
    let mut fresh = Vec::with_capacity(events.len());
    for e in events {
        let key = e.dedup_key();
        match store.insert_if_absent(&key, ttl).await {
            Ok(outcome) if outcome.is_new() => fresh.push(e),
            Ok(_) => {}
            Err(err) => {
                // The failing insert may have landed before failing (a timeout): release it too.
                let recorded: Vec<String> = fresh.iter().map(Event::dedup_key).collect();
                release_all(
                    store,
                    recorded.iter().map(String::as_str).chain([key.as_str()]),
                )
                .await;
                return Err(err);
            }
        }
    }
    Ok(fresh)
}

/// A signature and timestamp, as SendGrid would send them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignedWebhook {
    /// Base64 DER signature ([`SIGNATURE_HEADER`]).
    pub signature: String,
    /// Unix timestamp ([`TIMESTAMP_HEADER`]).
    pub timestamp: String,
}

impl SignedWebhook {
    /// The two headers plus `Content-Type: application/json`.
    pub fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        // Base64 and decimal digits are always valid header values.
        if let Ok(v) = HeaderValue::from_str(&self.signature) {
            h.insert(SIGNATURE_HEADER, v);
        }
        if let Ok(v) = HeaderValue::from_str(&self.timestamp) {
            h.insert(TIMESTAMP_HEADER, v);
        }
        h
    }
}

/// A P-256 key that signs event batches the way SendGrid does: for tests of your own webhook
/// handler, and for the sandbox.
#[derive(Clone)]
pub struct EventWebhookSigner {
    key: SigningKey,
}

impl fmt::Debug for EventWebhookSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventWebhookSigner")
            .field("public_key", &self.public_key_base64())
            .finish_non_exhaustive()
    }
}

impl EventWebhookSigner {
    /// A fresh random key.
    pub fn generate() -> Self {
        EventWebhookSigner {
            key: SigningKey::random(&mut rand_core::OsRng),
        }
    }

    /// The verification key as SendGrid shows it: base64 DER SubjectPublicKeyInfo.
    pub fn public_key_base64(&self) -> String {
        // Encoding a valid P-256 point as SPKI cannot fail.
        self.key
            .verifying_key()
            .to_public_key_der()
            .map(|doc| STANDARD.encode(doc.as_bytes()))
            .unwrap_or_default()
    }

    /// A verifier for this key, with the default settings.
    pub fn verifier(&self) -> EventWebhookVerifier {
        EventWebhookVerifier {
            keys: vec![*self.key.verifying_key()],
            tolerance: Some(DEFAULT_TOLERANCE),
            body_limit: DEFAULT_BODY_LIMIT,
            clock: Arc::new(SystemClock),
        }
    }

    /// Signs `timestamp ‖ body`.
    pub fn sign_for_test(&self, timestamp: i64, body: &[u8]) -> SignedWebhook {
        let timestamp = timestamp.to_string();
        let sig: Signature = self.key.sign_digest(digest(&timestamp, body));
        SignedWebhook {
            signature: STANDARD.encode(sig.to_der().as_bytes()),
            timestamp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use integrations_core::ErrorKind;
    use integrations_core::clock::FixedClock;

    fn reason(e: Error) -> SignatureFailure {
        match e {
            Error::InvalidSignature { reason, .. } => reason,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn generated_keys_sign_and_verify() {
        let s = EventWebhookSigner::generate();
        let body = br#"[{"event":"processed"}]"#;
        let signed = s.sign_for_test(1_000, body);
        let v = EventWebhookVerifier::new(&s.public_key_base64())
            .unwrap()
            .with_clock(FixedClock::from_unix(1_000));
        v.verify(&signed.signature, &signed.timestamp, body)
            .unwrap();
        v.verify_headers(&signed.headers(), body).unwrap();
        assert_eq!(
            reason(v.verify(&signed.signature, "1001", body).unwrap_err()),
            SignatureFailure::NoMatch
        );
    }

    #[test]
    fn pem_armoured_keys_are_accepted() {
        let s = EventWebhookSigner::generate();
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            s.public_key_base64()
        );
        assert!(EventWebhookVerifier::new(&pem).is_ok());
    }

    #[test]
    fn bad_keys_are_configuration_errors() {
        for k in ["", "not base64!", "AAAA"] {
            let e = EventWebhookVerifier::new(k).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Configuration);
            assert_eq!(e.field(), Some(PUBLIC_KEY_ENV));
        }
    }

    #[test]
    fn body_limit_and_missing_headers() {
        let s = EventWebhookSigner::generate();
        let v = s.verifier().with_body_limit(4);
        let signed = s.sign_for_test(1, b"12345");
        assert!(matches!(
            reason(
                v.verify(&signed.signature, &signed.timestamp, b"12345")
                    .unwrap_err()
            ),
            SignatureFailure::BodyTooLarge { size: 5, limit: 4 }
        ));
        let e = v.verify_headers(&HeaderMap::new(), b"[]").unwrap_err();
        assert!(
            matches!(reason(e), SignatureFailure::MalformedHeader(m) if m.contains(SIGNATURE_HEADER))
        );
    }

    #[tokio::test]
    async fn redelivered_events_have_no_second_effect() {
        use integrations_core::webhook::InMemoryDedupStore;
        let store = InMemoryDedupStore::new();
        let batch = |ids: &[&str]| {
            let events: Vec<String> = ids
                .iter()
                .map(|id| {
                    format!(
                        r#"{{"email":"a@b.co","timestamp":1,"event":"open","sg_event_id":"{id}"}}"#
                    )
                })
                .collect();
            parse_events(format!("[{}]", events.join(",")).as_bytes()).unwrap()
        };
        let first = first_deliveries(batch(&["a", "b"]), &store, DEFAULT_DEDUP_TTL)
            .await
            .unwrap();
        assert_eq!(first.len(), 2);
        let again = first_deliveries(batch(&["b", "c", "c"]), &store, DEFAULT_DEDUP_TTL)
            .await
            .unwrap();
        let ids: Vec<String> = again.iter().map(Event::dedup_key).collect();
        assert_eq!(ids, ["sendgrid:c"]);
        assert!(store.contains("sendgrid:a"));
        assert!(!store.contains("a"), "keys are namespaced by provider");
    }

    #[test]
    fn several_keys_verify_during_a_rotation() {
        let (old, new, other) = (
            EventWebhookSigner::generate(),
            EventWebhookSigner::generate(),
            EventWebhookSigner::generate(),
        );
        let body = br#"[{"event":"processed"}]"#;
        let list = format!("{}, {}", old.public_key_base64(), new.public_key_base64());
        let v = EventWebhookVerifier::from_key_list(&list)
            .unwrap()
            .with_clock(FixedClock::from_unix(1_000));
        assert_eq!(v.key_count(), 2);
        for s in [&old, &new] {
            let signed = s.sign_for_test(1_000, body);
            v.verify(&signed.signature, &signed.timestamp, body)
                .unwrap();
        }
        let forged = other.sign_for_test(1_000, body);
        assert_eq!(
            reason(
                v.verify(&forged.signature, &forged.timestamp, body)
                    .unwrap_err()
            ),
            SignatureFailure::NoMatch
        );
        let v = EventWebhookVerifier::new(&old.public_key_base64())
            .unwrap()
            .with_public_key(&other.public_key_base64())
            .unwrap()
            .with_clock(FixedClock::from_unix(1_000));
        v.verify(&forged.signature, &forged.timestamp, body)
            .unwrap();
        for bad in [
            "",
            " , ",
            "AAAA",
            &format!("{},AAAA", old.public_key_base64()),
        ] {
            let e = EventWebhookVerifier::from_key_list(bad).unwrap_err();
            assert_eq!(e.field(), Some(PUBLIC_KEY_ENV), "{bad}");
        }
    }

    /// Fails the insert of one key once (after which it behaves), like a store that is busy.
    #[derive(Debug)]
    struct FailsOnceOn {
        inner: integrations_core::webhook::InMemoryDedupStore,
        key: &'static str,
        failed: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl DedupStore for FailsOnceOn {
        async fn insert_if_absent(
            &self,
            key: &str,
            ttl: Duration,
        ) -> Result<integrations_core::webhook::DedupOutcome> {
            if key == self.key && !self.failed.swap(true, std::sync::atomic::Ordering::SeqCst) {
                return Err(Error::unavailable("dedup store busy"));
            }
            self.inner.insert_if_absent(key, ttl).await
        }
        async fn release(&self, key: &str) -> Result<()> {
            self.inner.release(key).await
        }
    }

    #[tokio::test]
    async fn a_batch_that_fails_half_way_is_whole_on_redelivery() {
        let store = FailsOnceOn {
            inner: integrations_core::webhook::InMemoryDedupStore::new(),
            key: "sendgrid:c",
            failed: false.into(),
        };
        let body = br#"[{"email":"a@b.co","timestamp":1,"event":"open","sg_event_id":"a"},
            {"email":"a@b.co","timestamp":1,"event":"open","sg_event_id":"b"},
            {"email":"a@b.co","timestamp":1,"event":"open","sg_event_id":"c"}]"#;
        let e = first_deliveries(parse_events(body).unwrap(), &store, DEFAULT_DEDUP_TTL)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(
            store.inner.is_empty(),
            "what the failed call recorded is released"
        );
        // SendGrid redelivers the batch: every event is processed, none lost as a "duplicate".
        let again = first_deliveries(parse_events(body).unwrap(), &store, DEFAULT_DEDUP_TTL)
            .await
            .unwrap();
        let ids: Vec<String> = again.iter().map(Event::dedup_key).collect();
        assert_eq!(ids, ["sendgrid:a", "sendgrid:b", "sendgrid:c"]);
    }

    #[test]
    fn debug_shows_no_private_key() {
        let s = EventWebhookSigner::generate();
        let dbg = format!("{s:?}");
        assert!(dbg.contains(&s.public_key_base64()));
        let secret = STANDARD.encode(s.key.to_bytes());
        assert!(!dbg.contains(&secret));
    }
}
