//! # integrations-stripe
//!
//! Stripe for the `integrations` crate family: a client for payment intents, refunds, customers
//! and events, Stripe as a core [`PaymentProvider`](integrations_core::PaymentProvider),
//! verified webhooks with typed events, and a local Stripe to test against.
//!
//! | item | what it gives you |
//! |---|---|
//! | [`StripeBuilder`], [`StripeClient`] | configuration from code or `STRIPE_*` variables; every call under a resilience [`Policy`](integrations_core::Policy) with Stripe's published rate limits and the SDKs' retry behaviour, one `Idempotency-Key` per operation reused on every attempt |
//! | [`api`] | payment intents (create, retrieve, update metadata, confirm, capture, cancel), refunds, customers, charges, events, auto-paginating streams |
//! | [`StripeClient::request`], [`RequestOptions`] | any other endpoint (Checkout Sessions, SetupIntents, Subscriptions, …) under the same policy, idempotency rules and error mapping; per-request `Stripe-Account` (also [`StripeClient::for_account`] for the typed calls) |
//! | [`client::parse_error`] | the one mapping of Stripe's errors to [`integrations_core::Error`] (declines with `code`/`decline_code`, idempotency conflicts, rate limits, `Stripe-Should-Retry`, `Request-Id`) |
//! | [`StripePayments`] | [`PaymentProvider`](integrations_core::PaymentProvider): deterministic idempotency keys, refunds checked against what is refundable before any call |
//! | [`webhook`] | `Stripe-Signature` verification (rotation, tolerance, constant time, body limit, injectable clock), typed [`Event`](types::Event), dedup of redeliveries, `sign_for_test` |
//! | [`currency`] | core [`Money`](integrations_core::Money) ⇄ Stripe's wire amounts (ISK/UGX ×100, three-decimal rules) |
//! | [`types`] | the Stripe objects as read: `PaymentIntent`, `Charge`, `Refund`, `Customer`, `Event`, `List` |
//! | `sandbox` | an in-process Stripe: lifecycle, test-card declines, idempotent replay, signed webhooks, fault injection, counters (feature `sandbox`) |
//!
//! ## Features
//! | feature | default | enables |
//! |---|---|---|
//! | `sandbox` | no | `sandbox`: the local Stripe server |
//! | `axum` | no | `axum::StripeEvent`: an axum extractor that verifies webhooks on the raw body |
//!
//! ## Example
//! ```no_run
//! use integrations_core::provider::{CreatePayment, PaymentProvider};
//! use integrations_core::{Currency, IdempotencyKey, Money};
//! use integrations_stripe::{StripeBuilder, StripePayments};
//!
//! # async fn demo() -> integrations_core::Result<()> {
//! let payments = StripeBuilder::from_env().build()?;
//! // Derived from the order: the same key after a retry or a restart, so never a double charge.
//! let key = IdempotencyKey::derive("order-42", "payment")?;
//! let req = CreatePayment::new(Money::from_minor(5998, Currency::USD))
//!     .payment_method("pm_card_visa")
//!     .confirm(true)
//!     .metadata("order_id", "42");
//! let payment = payments.create_payment(&req, &key).await?;
//! # let _ = payment; Ok(()) }
//! ```
//!
//! ## Endpoints without a typed call
//! [`StripeClient::request`] reaches the rest of the API under the same policy, headers and
//! [`parse_error`]. Parameters are form-encoded like the typed calls' (`line_items[0][price]`,
//! `metadata[k]`); a `POST` needs an idempotency key, reused on every attempt;
//! [`RequestOptions::stripe_account`] acts as a connected account for this request only.
//! [`StripeClient::request_json`] returns a `serde_json::Value` instead.
//! ```no_run
//! use integrations_core::IdempotencyKey;
//! use integrations_stripe::{RequestOptions, StripeBuilder};
//! use serde_json::json;
//!
//! #[derive(serde::Deserialize)]
//! struct CheckoutSession {
//!     id: String,
//!     url: Option<String>,
//! }
//!
//! # async fn demo() -> integrations_core::Result<()> {
//! let payments = StripeBuilder::from_env().build()?;
//! let params = json!({
//!     "mode": "payment",
//!     "success_url": "https://example.com/done",
//!     "line_items": [{ "price": "price_123", "quantity": 2 }],
//!     "metadata": { "order_id": "42" },
//! });
//! let session: CheckoutSession = payments
//!     .client()
//!     .request(
//!         http::Method::POST,
//!         "/v1/checkout/sessions",
//!         &params,
//!         RequestOptions::new()
//!             .idempotency_key(IdempotencyKey::derive("order-42", "checkout")?)
//!             .stripe_account("acct_1Connected"), // optional: Connect
//!     )
//!     .await?;
//! # let _ = (session.id, session.url); Ok(()) }
//! ```
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// The sandbox renders Stripe objects with large `json!` literals.
#![cfg_attr(feature = "sandbox", recursion_limit = "256")]

pub mod api;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
pub mod client;
pub mod config;
pub mod currency;
mod form;
pub mod payments;
#[cfg(feature = "sandbox")]
#[cfg_attr(docsrs, doc(cfg(feature = "sandbox")))]
pub mod sandbox;
pub mod types;
pub mod webhook;

pub use client::{RequestOptions, StripeClient, parse_error};
pub use config::{
    DEFAULT_API_VERSION, DEFAULT_BASE_URL, Mode, StripeBuilder, default_policy,
    default_policy_builder,
};
pub use payments::StripePayments;
pub use webhook::{StripeWebhookVerifier, Verified};

/// Provider name used in errors, metrics and logs.
pub const PROVIDER: &str = "stripe";
