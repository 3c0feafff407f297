//! # integrations-sendgrid
//!
//! SendGrid for the `integrations` crate family: transactional email through the v3 Mail Send
//! API as core's [`EmailProvider`](integrations_core::provider::EmailProvider), templates that
//! declare their variables, verification of the Signed Event Webhook, and a local sandbox.
//!
//! | item | what it gives you |
//! |---|---|
//! | [`SendGridBuilder`] | API key, region (`api.eu.sendgrid.com`) or base URL, `on-behalf-of`, client, policy, clock; `from_env()` reads `SENDGRID_API_KEY`, `SENDGRID_API_BASE`, `SENDGRID_REGION` |
//! | [`SendGridEmail`] | the [`EmailProvider`](integrations_core::provider::EmailProvider): checks, maps and sends an [`EmailMessage`](integrations_core::EmailMessage), returns the `X-Message-Id` |
//! | [`SendGridClient`], [`MailSend`] | the Mail Send body with every field the mapping uses, sent under the resilience policy |
//! | [`validate_mail`] | SendGrid's documented limits, checked before any request (recipients, categories, `custom_args` size, `send_at` ≤ 72 h, …) |
//! | [`parse_error`] | the one mapping of SendGrid answers to core's [`Error`](integrations_core::Error) |
//! | [`template`] | a registry of templates with required variables; hosted (`d-…`) or rendered locally with HTML escaping |
//! | [`webhook`] | Signed Event Webhook verification (ECDSA P-256), timestamp tolerance, typed events, dedup by `sg_event_id`, a signer for tests |
//! | `axum` | `SendGridEvents`, an axum extractor verifying the Signed Event Webhook on the raw body (feature `axum`) |
//! | `sandbox` | an in-process `/v3/mail/send` with SendGrid's validation and errors, rate limits, fault injection and signed event delivery (feature `sandbox`) |
//!
//! ## Features
//! | feature | default | enables |
//! |---|---|---|
//! | `axum` | no | `axum`: the webhook extractor |
//! | `sandbox` | no | `sandbox`: the local SendGrid server (on `integrations-testkit`'s sandbox plumbing) |
//!
//! ## Sending
//! ```no_run
//! use integrations_core::provider::{EmailMessage, EmailProvider};
//! use integrations_sendgrid::SendGridBuilder;
//!
//! # async fn demo() -> integrations_core::Result<()> {
//! let sendgrid = SendGridBuilder::from_env().build()?; // SendGridEmail; SENDGRID_API_KEY
//! let msg = EmailMessage::builder("orders@example.com")
//!     .to("jane@example.com")
//!     .subject("Order 42 confirmed")
//!     .text("Thanks!")
//!     .html("<p>Thanks!</p>")
//!     .custom_arg("order_id", "42") // comes back on every event webhook
//!     .build();
//! let sent = sendgrid.send(&msg).await?;
//! println!("X-Message-Id {}", sent.message_id);
//! # Ok(()) }
//! ```
//!
//! ## Failover
//! Core's [`Failover`](integrations_core::failover::Failover) puts SendGrid first and another
//! [`EmailProvider`](integrations_core::provider::EmailProvider) (Amazon SES) second. It moves on
//! only when SendGrid certainly did not act: connection refused, circuit breaker open, 429, 503,
//! 401/403. An invalid message is returned at once — the next provider would refuse it too — and
//! so is a timeout, a 500 or a lost answer, after which SendGrid may have sent the mail.
//!
//! Here against the sandbox, with core's `StubEmailProvider` standing in for SES
//! (`tests/failover.rs` has the breaker and the other cases):
//!
#![cfg_attr(feature = "sandbox", doc = "```")]
#![cfg_attr(not(feature = "sandbox"), doc = "```ignore")]
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> integrations_core::Result<()> {
//! use std::sync::Arc;
//! use integrations_core::failover::Failover;
//! use integrations_core::provider::{EmailMessage, EmailProvider};
//! use integrations_core::resilience::{Policy, RetryPolicy};
//! use integrations_testkit::StubEmailProvider;
//! use integrations_core::ErrorKind;
//! use integrations_sendgrid::sandbox::{Fault, Sandbox};
//!
//! let sandbox = Sandbox::start().await.expect("bind");
//! // No retries, to keep the example short: with retries, failover comes once they are used up.
//! let policy = Policy::builder("sendgrid").retry(RetryPolicy::none()).build();
//! let sendgrid: Arc<dyn EmailProvider> = Arc::new(sandbox.email().with_policy(policy).build()?);
//! let ses = Arc::new(StubEmailProvider::new_ok().with_name("ses"));
//! let email = Failover::<dyn EmailProvider>::from_primary(sendgrid)
//!     .with_fallback(ses.clone() as Arc<dyn EmailProvider>);
//!
//! let msg = EmailMessage::builder("orders@example.com")
//!     .to("jane@example.com")
//!     .subject("Order 42 confirmed")
//!     .text("Thanks!")
//!     .build();
//! assert_eq!(email.send(&msg).await?.provider, "sendgrid");
//!
//! sandbox.fail_next(1, Fault::Unavailable); // 503: SendGrid did not act
//! assert_eq!(email.send(&msg).await?.provider, "ses");
//!
//! let invalid = EmailMessage::builder("orders@example.com").subject("s").text("t").build();
//! let err = email.send(&invalid).await.unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::InvalidInput); // never sent elsewhere
//! assert_eq!(ses.calls(), 1);
//! # Ok(()) }
//! ```
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
mod client;
mod config;
mod email;
mod mail;
#[cfg(feature = "sandbox")]
#[cfg_attr(docsrs, doc(cfg(feature = "sandbox")))]
pub mod sandbox;
pub mod template;
mod validate;
pub mod webhook;

pub use client::{
    ActivityMessage, ErrorBody, ErrorItem, MAIL_SEND_PATH, MESSAGE_ID_HEADER, MESSAGES_PATH,
    RATE_LIMIT_LIMIT_HEADER, RATE_LIMIT_REMAINING_HEADER, RATE_LIMIT_RESET_HEADER, SendGridClient,
    custom_arg_query, parse_error,
};
pub use config::{
    ENV_API_KEY, ENV_BASE_URL, ENV_REGION, EU_BASE_URL, GLOBAL_BASE_URL, Region, SendGridBuilder,
    default_policy, default_policy_builder,
};
pub use email::SendGridEmail;
pub use mail::{
    Address, Content, MailAttachment, MailPersonalization, MailSend, TEXT_HTML, TEXT_PLAIN,
};
pub use validate::{
    MAX_BODY_BYTES, MAX_CATEGORIES, MAX_CATEGORY_CHARS, MAX_CUSTOM_ARGS_BYTES,
    MAX_PERSONALIZATIONS, MAX_RECIPIENTS, MAX_SCHEDULE_AHEAD, check_body_size, validate_mail,
};

/// The provider name in errors, metrics and receipts.
pub const PROVIDER: &str = "sendgrid";
