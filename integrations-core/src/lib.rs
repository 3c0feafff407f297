//! # integrations-core
//!
//! The shared core of the `integrations` crate family: what every provider crate (Stripe,
//! SendGrid, Google Sheets, AWS) builds on, done once.
//!
//! | module | what it gives you |
//! |---|---|
//! | [`money`] | [`Money`] in integer minor units with its [`Currency`] exponent; exact decimal parsing |
//! | [`idempotency`] | [`IdempotencyKey`] derived from the business operation, never from the clock |
//! | [`error`] | the one public [`Error`], by meaning, with [`Error::is_retryable`] and [`Error::retry_after`] |
//! | [`provider`] | the traits [`PaymentProvider`], [`EmailProvider`], [`SheetsSink`], [`Notifier`] and their plain types |
//! | [`resilience`] | backoff, retry, circuit breaker, rate limiter, bulkhead, composed as one [`Policy`] |
//! | [`metrics`] | per-integration counters and latency percentiles, as a snapshot or Prometheus text |
//! | [`webhook`] | constant-time HMAC, timestamp tolerance, body limits, dedup store, Standard Webhooks |
//! | [`outbox`] | durable side effects: outbox with leases, dead-letter queue and replay; SQLite store (feature `sqlite`) |
//! | [`saga`] | steps with compensations, progress recorded so a crashed saga resumes or compensates |
//! | [`failover`] | an ordered list of providers that moves on only when the previous one did not act |
//! | `http` | shared rustls `reqwest` client and a helper running a request under a policy (feature `http`) |
//! | `testing` | recording, scriptable test doubles and the behaviour suites providers must pass (feature `testing`) |
//!
//! ## Features
//! | feature | default | enables |
//! |---|---|---|
//! | `http` | yes | `reqwest` (rustls only) and [`http`](crate::http) |
//! | `sqlite` | no | the embedded SQLite outbox and saga store |
//! | `testing` | no | `testing`: stubs and behaviour suites |
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod error;
pub mod failover;
#[cfg(feature = "http")]
pub mod http;
pub mod idempotency;
pub mod metrics;
pub mod money;
pub mod outbox;
pub mod provider;
pub mod resilience;
pub mod saga;
#[cfg(feature = "testing")]
pub mod testing;
pub mod webhook;

pub use error::{BoxError, Error, ErrorKind, Result, SignatureFailure};
pub use idempotency::IdempotencyKey;
pub use money::{Currency, Money, MoneyError};
pub use provider::{
    EmailMessage, EmailProvider, Mailbox, Notification, Notifier, PaymentProvider, Row, SheetsSink,
};
pub use resilience::Policy;

/// `integrations/<version>`, the user agent of every outbound request.
pub const USER_AGENT: &str = concat!("integrations/", env!("CARGO_PKG_VERSION"));
