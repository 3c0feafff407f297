//! Webhook verification primitives shared by every provider's verifier.
//!
//! | item | what it does |
//! |---|---|
//! | [`hmac_sha256`], [`verify_hmac_sha256`] | HMAC-SHA256 over several parts; constant-time check |
//! | [`WebhookSecret`] | key bytes whose `Debug` is redacted |
//! | [`check_timestamp`], [`DEFAULT_TOLERANCE`] | `|now − t| ≤ tolerance` (300 s by default) |
//! | [`check_body_size`], [`DEFAULT_BODY_LIMIT`] | refuse oversized bodies before hashing (1 MiB) |
//! | [`DedupStore`], [`InMemoryDedupStore`] | a redelivered event id has no second effect |
//! | [`WebhookVerifier`], [`WebhookSigner`] | the one contract every provider's verifier implements: raw body + headers in, typed event out |
//! | `Verified<V>`, `WebhookRejection` | the axum extractor for any verifier, and its refusal (feature `axum`) |
//! | [`standard`] | complete [Standard Webhooks](https://www.standardwebhooks.com/) verifier and signer |
//!
//! The rules every verifier here follows: verify the raw bytes before parsing anything, compare
//! in constant time, accept any of several signatures (secret rotation), refuse timestamps outside
//! the tolerance in either direction, and offer a `sign` helper so users can test their handlers.
//!
//! ```
//! use std::time::Duration;
//! use integrations_core::webhook::{
//!     check_timestamp, hmac_sha256, verify_hmac_sha256, DEFAULT_TOLERANCE,
//! };
//! use integrations_core::{Clock, FixedClock};
//!
//! // A Stripe-style scheme: hex HMAC over "{t}.{body}".
//! let (secret, t, body) = (b"whsec_test", 1_700_000_000_i64, br#"{"id":"evt_1"}"#);
//! let tag = hmac_sha256(secret, &[t.to_string().as_bytes(), b".", body]);
//! let header_sig = hex::encode(tag);
//!
//! let clock = FixedClock::from_unix(t + 10);
//! let received = hex::decode(&header_sig).unwrap();
//! assert!(verify_hmac_sha256(secret, &[t.to_string().as_bytes(), b".", body], &received));
//! assert!(check_timestamp(t, clock.now(), DEFAULT_TOLERANCE).is_ok());
//! clock.advance(Duration::from_secs(600));
//! assert!(check_timestamp(t, clock.now(), DEFAULT_TOLERANCE).is_err());
//! ```

#[cfg(feature = "axum")]
mod axum;
mod checks;
mod contract;
mod dedup;
mod mac;
pub mod standard;

#[cfg(feature = "axum")]
pub use axum::{StandardWebhookEvent, Verified, WebhookRejection};
pub use checks::{DEFAULT_BODY_LIMIT, DEFAULT_TOLERANCE, check_body_size, check_timestamp};
pub use contract::{StandardEvent, WebhookSigner, WebhookVerifier};
pub use dedup::{
    DEFAULT_MAX_ENTRIES, DEFAULT_SWEEP_BATCH, DedupOutcome, DedupStore, InMemoryDedupStore,
    MAX_TTL, release_all,
};
pub use mac::{WebhookSecret, constant_time_eq, hmac_sha256, verify_hmac_sha256};
pub use standard::{StandardHeaders, StandardWebhook};
