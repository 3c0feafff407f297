//! # integrations-core
//!
//! The shared core of the `integrations` crate family: what every provider crate (Stripe,
//! SendGrid, Google Sheets, AWS) builds on, done once.
//!
//! | module | what it gives you |
//! |---|---|
//! | [`money`] | [`Money`] in integer minor units with its [`Currency`] exponent; exact decimal parsing |
//! | [`idempotency`] | [`IdempotencyKey`] derived from the business operation, never from the clock |
//! | [`error`] | the one public [`Error`], by meaning, with [`Error::is_retryable`] and [`Error::retry_after`]; [`ErrorRecord`], an error as stored |
//! | [`clock`] | [`Clock`], injectable wall-clock time for verifiers, stores and tests |
//! | [`provider`] | the traits [`PaymentProvider`], [`EmailProvider`], [`SheetsSink`], [`Notifier`] and their plain types |
//! | [`resilience`] | backoff, retry, circuit breaker, rate limiter, bulkhead, composed as one [`Policy`] |
//! | [`metrics`] | per-integration counters, per-operation latency histograms and 5-minute window percentiles, as a snapshot or Prometheus text (and the `metrics` facade) |
//! | [`telemetry`] | the spans of every call and attempt (OpenTelemetry field names), W3C [`TraceParent`](telemetry::TraceParent) |
//! | [`webhook`] | constant-time HMAC, timestamp tolerance, body limits, dedup store, Standard Webhooks |
//! | [`failover`] | an ordered list of providers that moves on only when the previous one did not act |
//! | `http` | shared rustls `reqwest` client and a helper running a request under a policy (feature `http`) |
//!
//! ## Features
//! | feature | default | enables |
//! |---|---|---|
//! | `http` | yes | `reqwest` (rustls only) and [`http`] |
//! | `axum` | no | `webhook::WebhookRejection`, the answer of the axum webhook extractors |
//! | `reqwest-middleware` | no | `http::HttpClient` from a `reqwest_middleware::ClientWithMiddleware` (implies `http`) |
//! | `tower` | no | `resilience::PolicyLayer`: a [`Policy`] as a tower `Layer` (`tower-layer` and `tower-service` only) |
//! | `opentelemetry` | no | `telemetry::current_traceparent` and `telemetry::link_to` (`opentelemetry`, `tracing-opentelemetry`) |
//! | `metrics` | no | records every counter, gauge and histogram through the `metrics` crate facade as well |
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod clock;
pub mod error;
mod error_record;
pub mod failover;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
pub mod idempotency;
pub mod metrics;
pub mod money;
pub mod provider;
pub mod resilience;
pub mod telemetry;
pub mod webhook;

pub use clock::{Clock, FixedClock, SystemClock};
pub use error::{BoxError, Error, ErrorKind, ErrorRecord, Result, SignatureFailure};
pub use idempotency::IdempotencyKey;
pub use money::{Currency, Money, MoneyError};
pub use provider::{
    EmailMessage, EmailProvider, Mailbox, Notification, Notifier, PaymentProvider, Row, SheetsSink,
};
pub use resilience::Policy;

/// `integrations/<version>`, the user agent of every outbound request.
pub const USER_AGENT: &str = concat!("integrations/", env!("CARGO_PKG_VERSION"));
