//! [Standard Webhooks](https://www.standardwebhooks.com/): verify and sign generic inbound
//! webhooks (also what Svix, Resend, Clerk and others send).
//!
//! Three headers: `webhook-id` (the event id and dedup key), `webhook-timestamp` (unix seconds) and
//! `webhook-signature`: space-separated `v1,<base64 HMAC-SHA256>` entries over
//! `"{id}.{timestamp}.{raw body}"`, keyed with the base64-decoded part of the `whsec_…` secret.
//! Any matching `v1` entry passes (how senders rotate secrets); entries of other versions
//! (`v1a`, asymmetric) are ignored.
//!
//! ```
//! use integrations_core::webhook::{StandardHeaders, StandardWebhook};
//! use integrations_core::clock::FixedClock;
//!
//! let wh = StandardWebhook::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?
//!     .with_clock(FixedClock::from_unix(1_614_265_330));
//! let body = br#"{"test": 2432232314}"#;
//! let headers = StandardHeaders::from_pairs([
//!     ("Webhook-Id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
//!     ("Webhook-Timestamp", "1614265330"),
//!     ("Webhook-Signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
//! ])?;
//! wh.verify(&headers, body)?;
//! assert!(wh.verify(&headers, br#"{"test": 1}"#).is_err());
//! # Ok::<(), integrations_core::Error>(())
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::checks::{DEFAULT_BODY_LIMIT, DEFAULT_TOLERANCE, check_body_size, check_timestamp};
use super::contract::{StandardEvent, WebhookSigner, WebhookVerifier};
use super::dedup::{DedupOutcome, DedupStore};
use super::mac::{WebhookSecret, constant_time_eq};
use crate::clock::unix_seconds;
use crate::clock::{Clock, SystemClock};
use crate::{Error, Result, SignatureFailure};

/// Name used as the provider of errors raised here.
pub const PROVIDER: &str = "standard-webhooks";
/// `webhook-id` header.
pub const HEADER_ID: &str = "webhook-id";
/// `webhook-timestamp` header.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// `webhook-signature` header.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// Prefix of secrets in their usual text form.
pub const SECRET_PREFIX: &str = "whsec_";
/// The setting named by configuration errors about the secret.
pub const SECRET_SETTING: &str = "webhook_secret";

fn failure(reason: SignatureFailure) -> Error {
    Error::invalid_signature(reason).with_provider(PROVIDER)
}

fn malformed(msg: impl Into<String>) -> Error {
    failure(SignatureFailure::MalformedHeader(msg.into()))
}

/// The three Standard Webhooks headers, as received (unparsed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandardHeaders {
    /// `webhook-id`: unique per event, the same across redeliveries.
    pub id: String,
    /// `webhook-timestamp`: unix seconds, as text.
    pub timestamp: String,
    /// `webhook-signature`: space-separated `version,signature` entries.
    pub signature: String,
}

impl StandardHeaders {
    /// Headers from their three values.
    pub fn new(
        id: impl Into<String>,
        timestamp: impl Into<String>,
        signature: impl Into<String>,
    ) -> Self {
        StandardHeaders {
            id: id.into(),
            timestamp: timestamp.into(),
            signature: signature.into(),
        }
    }

    /// Picks the three headers out of `(name, value)` pairs, names compared case-insensitively.
    /// Works with `&http::HeaderMap` directly, or any list of string pairs.
    ///
    /// Svix's `svix-id`, `svix-timestamp` and `svix-signature` are accepted where the
    /// `webhook-*` header is absent. Several `webhook-signature` values are joined into one list;
    /// several differing `webhook-id` or `webhook-timestamp` values are refused.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] with [`SignatureFailure::MalformedHeader`] naming a missing,
    /// repeated or non-UTF-8 header.
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        // [standard, svix] values of id, timestamp, signature.
        let mut found: [[Vec<String>; 2]; 3] = Default::default();
        const NAMES: [[&str; 2]; 3] = [
            [HEADER_ID, "svix-id"],
            [HEADER_TIMESTAMP, "svix-timestamp"],
            [HEADER_SIGNATURE, "svix-signature"],
        ];
        for (name, value) in pairs {
            let name = name.as_ref();
            for (h, variants) in NAMES.iter().enumerate() {
                for (v, wanted) in variants.iter().enumerate() {
                    if name.eq_ignore_ascii_case(wanted) {
                        let value = std::str::from_utf8(value.as_ref())
                            .map_err(|_| malformed(format!("header `{wanted}` is not UTF-8")))?;
                        found[h][v].push(value.trim().to_owned());
                    }
                }
            }
        }
        let mut pick = |h: usize, join: bool| -> Result<String> {
            let [standard, svix] = &mut found[h];
            let (values, name) = if standard.is_empty() {
                (std::mem::take(svix), NAMES[h][1])
            } else {
                (std::mem::take(standard), NAMES[h][0])
            };
            match values.as_slice() {
                [] => Err(malformed(format!("missing header `{}`", NAMES[h][0]))),
                [one] => Ok(one.clone()),
                _ if join => Ok(values.join(" ")),
                [first, rest @ ..] if rest.iter().all(|v| v == first) => Ok(first.clone()),
                _ => Err(malformed(format!(
                    "header `{name}` repeated with different values"
                ))),
            }
        };
        Ok(StandardHeaders {
            id: pick(0, false)?,
            timestamp: pick(1, false)?,
            signature: pick(2, true)?,
        })
    }
}

/// Verifier and signer of Standard Webhooks. See the [module docs](self).
///
/// Holds one or more secrets (the current one first; [`StandardWebhook::with_secret`] adds the
/// previous one while you rotate), the timestamp tolerance (default [`DEFAULT_TOLERANCE`]), the
/// body limit (default [`DEFAULT_BODY_LIMIT`]) and a clock. `Debug` never shows the secrets.
#[derive(Clone)]
pub struct StandardWebhook {
    secrets: Vec<WebhookSecret>,
    tolerance: Duration,
    body_limit: usize,
    clock: Arc<dyn Clock>,
}

fn decode_secret(secret: &str) -> Result<WebhookSecret> {
    let secret = secret.trim();
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    if encoded.is_empty() {
        return Err(
            Error::configuration(SECRET_SETTING, "the webhook secret is empty")
                .with_provider(PROVIDER),
        );
    }
    let key = BASE64.decode(encoded).map_err(|e| {
        Error::configuration(
            SECRET_SETTING,
            format!("the webhook secret is not `whsec_` followed by standard base64 ({e})"),
        )
        .with_provider(PROVIDER)
    })?;
    Ok(WebhookSecret::new(key))
}

impl StandardWebhook {
    /// A verifier for `secret` (`whsec_<base64>`, or the base64 part alone).
    ///
    /// # Errors
    /// [`Error::Configuration`] naming [`SECRET_SETTING`] when the secret is empty or not base64.
    pub fn new(secret: &str) -> Result<Self> {
        Ok(StandardWebhook::from_secret(decode_secret(secret)?))
    }

    /// A verifier for an already-decoded key.
    pub fn from_secret(secret: WebhookSecret) -> Self {
        StandardWebhook {
            secrets: vec![secret],
            tolerance: DEFAULT_TOLERANCE,
            body_limit: DEFAULT_BODY_LIMIT,
            clock: Arc::new(SystemClock),
        }
    }

    /// Also accepts signatures made with `secret` (e.g. the previous one during a rotation).
    /// [`StandardWebhook::sign`] keeps using the first secret.
    ///
    /// # Errors
    /// As [`StandardWebhook::new`].
    pub fn with_secret(mut self, secret: &str) -> Result<Self> {
        self.secrets.push(decode_secret(secret)?);
        Ok(self)
    }

    /// Sets the timestamp tolerance (either direction).
    #[must_use]
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Sets the largest body accepted, in bytes.
    #[must_use]
    pub fn with_body_limit(mut self, limit: usize) -> Self {
        self.body_limit = limit;
        self
    }

    /// Uses `clock` for [`StandardWebhook::verify`].
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The timestamp tolerance.
    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }

    /// The body limit.
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// Verifies `body` against `headers` at the clock's current time.
    ///
    /// # Errors
    /// As [`StandardWebhook::verify_parts`].
    pub fn verify(&self, headers: &StandardHeaders, body: &[u8]) -> Result<()> {
        self.verify_at(headers, body, self.clock.now())
    }

    /// Verifies `body` against `headers` as of `now`.
    ///
    /// # Errors
    /// As [`StandardWebhook::verify_parts`].
    pub fn verify_at(&self, headers: &StandardHeaders, body: &[u8], now: SystemTime) -> Result<()> {
        self.verify_parts(
            &headers.id,
            &headers.timestamp,
            &headers.signature,
            body,
            now,
        )
    }

    /// Verifies the raw header values and body as of `now`, in this order: body size, header
    /// syntax, timestamp tolerance, then the signatures (constant-time).
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] with the [`SignatureFailure`]:
    /// [`BodyTooLarge`](SignatureFailure::BodyTooLarge),
    /// [`MalformedHeader`](SignatureFailure::MalformedHeader) (empty id, non-integer timestamp,
    /// empty signature list, an entry without `,`),
    /// [`TimestampOutsideTolerance`](SignatureFailure::TimestampOutsideTolerance),
    /// [`NoSupportedSignature`](SignatureFailure::NoSupportedSignature) (no `v1` entry), or
    /// [`NoMatch`](SignatureFailure::NoMatch).
    pub fn verify_parts(
        &self,
        webhook_id: &str,
        webhook_timestamp: &str,
        webhook_signature: &str,
        body: &[u8],
        now: SystemTime,
    ) -> Result<()> {
        check_body_size(body.len(), self.body_limit).map_err(failure)?;
        if webhook_id.is_empty() {
            return Err(malformed("`webhook-id` is empty"));
        }
        let timestamp_text = webhook_timestamp.trim();
        let timestamp: i64 = timestamp_text
            .parse()
            .map_err(|_| malformed("`webhook-timestamp` is not an integer of unix seconds"))?;
        let candidates = parse_signatures(webhook_signature)?;
        check_timestamp(timestamp, now, self.tolerance).map_err(failure)?;
        if candidates.v1_entries == 0 {
            return Err(failure(SignatureFailure::NoSupportedSignature));
        }
        let parts: [&[u8]; 5] = [
            webhook_id.as_bytes(),
            b".",
            timestamp_text.as_bytes(),
            b".",
            body,
        ];
        let matched = self.secrets.iter().any(|secret| {
            let expected = secret.sign(&parts);
            candidates
                .decoded
                .iter()
                .any(|candidate| constant_time_eq(candidate, &expected))
        });
        if matched {
            Ok(())
        } else {
            Err(failure(SignatureFailure::NoMatch))
        }
    }

    /// Verifies, then records the event in `store` for `ttl` under
    /// [`StandardWebhook::dedup_key`] (`standard-webhooks:<webhook-id>`, namespaced so a store
    /// shared with other senders cannot be poisoned by an id one of them chose):
    /// [`DedupOutcome::Duplicate`] means a redelivery of an event already accepted, to acknowledge
    /// without acting again.
    ///
    /// If your processing of a [`DedupOutcome::New`] event then fails, call
    /// [`DedupStore::release`] with [`StandardWebhook::dedup_key`] before answering non-2xx, or the
    /// redelivery will be taken for a duplicate and the event lost.
    ///
    /// # Errors
    /// As [`StandardWebhook::verify`] (nothing is recorded then), or the store's error (the key
    /// is then released, best effort, in case the store recorded it before failing: a timeout
    /// after the write).
    pub async fn verify_once(
        &self,
        headers: &StandardHeaders,
        body: &[u8],
        store: &dyn DedupStore,
        ttl: Duration,
    ) -> Result<DedupOutcome> {
        self.verify(headers, body)?;
        let key = Self::dedup_key(&headers.id);
        match store.insert_if_absent(&key, ttl).await {
            Ok(outcome) => Ok(outcome),
            Err(e) => {
                super::dedup::release_all(store, [key.as_str()]).await;
                Err(e)
            }
        }
    }

    /// The dedup key [`StandardWebhook::verify_once`] records: `standard-webhooks:<webhook-id>`.
    pub fn dedup_key(webhook_id: &str) -> String {
        format!("standard-webhooks:{webhook_id}")
    }

    /// The `webhook-signature` value (`v1,<base64>`) for `body`, signed with the first secret.
    /// For testing your own handlers, or sending Standard Webhooks yourself.
    pub fn sign(&self, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
        let timestamp = timestamp.to_string();
        let tag = self.secrets[0].sign(&[
            webhook_id.as_bytes(),
            b".",
            timestamp.as_bytes(),
            b".",
            body,
        ]);
        format!("v1,{}", BASE64.encode(tag))
    }

    /// All three headers for `body`, signed with the first secret.
    pub fn signed_headers(&self, webhook_id: &str, timestamp: i64, body: &[u8]) -> StandardHeaders {
        StandardHeaders::new(
            webhook_id,
            timestamp.to_string(),
            self.sign(webhook_id, timestamp, body),
        )
    }
}

#[async_trait::async_trait]
impl WebhookVerifier for StandardWebhook {
    type Event = StandardEvent;

    fn provider(&self) -> &'static str {
        PROVIDER
    }

    async fn verify_request(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<StandardEvent> {
        let parsed = StandardHeaders::from_pairs(
            headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_bytes())),
        )?;
        self.verify(&parsed, body)?;
        let timestamp = parsed
            .timestamp
            .parse::<i64>()
            .map_err(|_| malformed("`webhook-timestamp` is not unix seconds"))?;
        Ok(StandardEvent {
            id: parsed.id,
            timestamp,
            payload: bytes::Bytes::copy_from_slice(body),
        })
    }
}

impl WebhookSigner for StandardWebhook {
    /// Signs with the first secret, under a fresh `msg_…` id.
    fn sign_for_test(&self, body: &[u8], timestamp: std::time::SystemTime) -> http::HeaderMap {
        let id = format!("msg_{:016x}", fastrand::u64(..));
        let h = self.signed_headers(&id, unix_seconds(timestamp), body);
        let mut map = http::HeaderMap::new();
        for (name, value) in [
            (HEADER_ID, h.id),
            (HEADER_TIMESTAMP, h.timestamp),
            (HEADER_SIGNATURE, h.signature),
        ] {
            if let Ok(v) = http::HeaderValue::from_str(&value) {
                map.insert(name, v);
            }
        }
        map
    }
}

impl fmt::Debug for StandardWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandardWebhook")
            .field("secrets", &self.secrets.len())
            .field("tolerance", &self.tolerance)
            .field("body_limit", &self.body_limit)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

struct Candidates {
    /// Decoded `v1` signatures.
    decoded: Vec<Vec<u8>>,
    /// `v1` entries seen, decodable or not.
    v1_entries: usize,
}

fn parse_signatures(header: &str) -> Result<Candidates> {
    let mut out = Candidates {
        decoded: Vec::new(),
        v1_entries: 0,
    };
    let mut entries = 0;
    for (i, entry) in header.split_ascii_whitespace().enumerate() {
        entries += 1;
        let Some((version, signature)) = entry.split_once(',') else {
            return Err(malformed(format!(
                "entry {i} of `webhook-signature` is not `version,signature`"
            )));
        };
        if version == "v1" {
            out.v1_entries += 1;
            // An undecodable v1 entry cannot match; it is kept out rather than failing the whole
            // header, so that one bad entry cannot hide a good one.
            if let Ok(bytes) = BASE64.decode(signature) {
                out.decoded.push(bytes);
            }
        }
    }
    if entries == 0 {
        return Err(malformed("`webhook-signature` is empty"));
    }
    Ok(out)
}

#[cfg(test)]
#[path = "standard_tests.rs"]
mod tests;
