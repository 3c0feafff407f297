//! # integrations
//!
//! One dependency for taking payments, sending email, syncing rows to a spreadsheet and using
//! AWS services from a Rust service, with retries, circuit breaking, rate limiting, idempotency
//! and webhook verification done once. Enable one feature per provider; the shared core
//! (`integrations-core`: money, idempotency keys, the one error, the provider traits, the
//! resilience policy, metrics, webhooks, failover) is re-exported at the root.
//!
//! ```sh
//! cargo add integrations -F stripe
//! ```
//!
//! | module | crate | feature |
//! |---|---|---|
//! | root (`integrations::Money`, `integrations::resilience`, …) | `integrations-core` | always (`http`, default: the shared client and `http::send`) |
//! | [`stripe`] | `integrations-stripe` | `stripe` |
//! | [`sendgrid`] | `integrations-sendgrid` | `sendgrid` |
//! | [`sheets`] | `integrations-sheets` | `sheets` |
//! | [`aws`] | `integrations-aws` | `aws-dynamodb`, `aws-sns`, `aws-ses`, `aws-sqs`, `aws-cloudwatch`, `aws-outbox` (one per service); `aws-config` for the AWS SDK's credentials chain |
//! | [`outbox`] | `integrations-outbox` | `outbox`; `sqlite` adds the embedded SQLite store, `postgres` the Postgres stores |
//! | [`dashboard`] | `integrations-dashboard` | `dashboard` (implies `outbox`) |
//! | [`testkit`] | `integrations-testkit` | `testkit` |
//! | `resilience::PolicyLayer` | `integrations-core` | `tower`: the policy as a tower `Layer` |
//! | `http::HttpClient` from a `ClientWithMiddleware` | `integrations-core` and the providers | `reqwest-middleware`: builders' `with_http_client` take one |
//!
//! Two features apply to every provider enabled: `axum` (core's `Verified<V>` and each
//! provider's webhook extractor; with an `aws-*` feature also the SNS extractor, which brings SNS
//! in) and `sandbox` (each provider's local in-process server; with `testkit`, the sandbox
//! plumbing). A third, `opentelemetry`, carries trace context across the durable hops: outbox
//! jobs keep the `traceparent` of the span that recorded them and each handler's span links to
//! it; SNS and SQS messages carry it as a message attribute. Every call's spans
//! (`integration.call`, `integration.attempt`) exist without it: see `docs/operations.md`.
//! Feature `metrics` also records the policies' metrics (and, with `outbox`, the
//! dispatcher's) through the [`metrics`](https://docs.rs/metrics) crate facade, for whatever
//! exporter the application installs.
//!
//! ## Example
//!
//! Take a payment with Stripe (`-F stripe`): the policy comes from Stripe's published limits and
//! the idempotency key from the order, so a retry or a restart never charges twice.
//!
#![cfg_attr(feature = "stripe", doc = "```no_run")]
#![cfg_attr(not(feature = "stripe"), doc = "```ignore")]
//! use integrations::provider::CreatePayment;
//! use integrations::stripe::StripeBuilder;
//! use integrations::{Currency, IdempotencyKey, Money, PaymentProvider};
//!
//! # async fn demo() -> integrations::Result<()> {
//! let stripe = StripeBuilder::from_env().build()?; // STRIPE_SECRET_KEY
//! let amount = Money::from_minor(5998, Currency::USD); // $59.98 in minor units, never a float
//! let key = IdempotencyKey::derive("order-42", "payment")?; // the same key on every retry
//! let payment = stripe
//!     .create_payment(
//!         &CreatePayment::new(amount)
//!             .payment_method("pm_card_visa")
//!             .confirm(true)
//!             .metadata("order_id", "order-42"),
//!         &key,
//!     )
//!     .await?;
//! println!("{} is {:?}", payment.id, payment.status);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use integrations_core::*;

/// Stripe: payment intents, refunds, customers, events, [`PaymentProvider`], webhooks
/// (the `integrations-stripe` crate).
#[cfg(feature = "stripe")]
#[cfg_attr(docsrs, doc(cfg(feature = "stripe")))]
pub mod stripe {
    pub use integrations_stripe::*;
}

/// SendGrid: mail send, [`EmailProvider`], templates, the signed event webhook
/// (the `integrations-sendgrid` crate).
#[cfg(feature = "sendgrid")]
#[cfg_attr(docsrs, doc(cfg(feature = "sendgrid")))]
pub mod sendgrid {
    pub use integrations_sendgrid::*;
}

/// Google Sheets: Google auth (service account, metadata server, application default
/// credentials), the values API, a batching [`SheetsSink`]
/// (the `integrations-sheets` crate).
#[cfg(feature = "sheets")]
#[cfg_attr(docsrs, doc(cfg(feature = "sheets")))]
pub mod sheets {
    pub use integrations_sheets::*;
}

/// Amazon Web Services: SigV4 and one module per service enabled with its `aws-*` feature
/// (the `integrations-aws` crate).
#[cfg(any(
    feature = "aws-dynamodb",
    feature = "aws-sns",
    feature = "aws-ses",
    feature = "aws-sqs",
    feature = "aws-cloudwatch",
    feature = "aws-outbox",
    feature = "aws-config"
))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(
        feature = "aws-dynamodb",
        feature = "aws-sns",
        feature = "aws-ses",
        feature = "aws-sqs",
        feature = "aws-cloudwatch",
        feature = "aws-outbox",
        feature = "aws-config"
    )))
)]
pub mod aws {
    pub use integrations_aws::*;
}

/// Durable side effects: outbox with leases and fencing, dead letters and replay, dispatcher,
/// saga (the `integrations-outbox` crate; `sqlite` adds the embedded store, `postgres` the
/// Postgres stores).
#[cfg(feature = "outbox")]
#[cfg_attr(docsrs, doc(cfg(feature = "outbox")))]
pub mod outbox {
    pub use integrations_outbox::*;
}

/// The monitoring dashboard as an axum `Router` to mount behind the service's own
/// authentication (the `integrations-dashboard` crate).
#[cfg(feature = "dashboard")]
#[cfg_attr(docsrs, doc(cfg(feature = "dashboard")))]
pub mod dashboard {
    pub use integrations_dashboard::*;
}

/// Stubs of every provider trait and the behaviour suites every provider passes
/// (the `integrations-testkit` crate).
#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub mod testkit {
    pub use integrations_testkit::*;
}
