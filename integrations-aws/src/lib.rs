//! # integrations-aws
//!
//! Amazon Web Services for the `integrations` crate family: SigV4-signed clients (signing by AWS's
//! own [`aws-sigv4`](https://docs.rs/aws-sigv4) crate) that send every request through
//! `integrations_core::http::send`, so core's policy (rate limit → circuit breaker → retry →
//! per-attempt timeout) and metrics apply, with one `parse_error` per AWS protocol mapping AWS
//! error codes to core's [`Error`](integrations_core::Error).
//!
//! | item | what it gives you | feature |
//! |---|---|---|
//! | [`AwsBuilder`], [`AwsConfig`] | region, credentials, endpoints (`AWS_ENDPOINT_URL[_<SERVICE>]`), HTTP client, policy | always |
//! | [`CredentialsProvider`], [`Credentials`], [`EnvironmentCredentials`], [`ProfileCredentials`], [`DefaultCredentialsChain`] | where keys come from; plug your own in | always |
//! | `AwsConfigCredentials` | the AWS SDK's default chain (web identity / IRSA, ECS and EKS Pod Identity, EC2 IMDSv2, SSO, `credential_process`), cached and refreshed before expiry | `aws-config` |
//! | [`dynamodb::DynamoDb`], [`dynamodb::DynamoDedupStore`] | signed client (any operation, conditional writes, tables, TTL), core's `DedupStore`, serde ↔ attribute values | `dynamodb` |
//! | [`sns::SnsNotifier`], [`sns::SnsClient`], [`sns::SnsMessageVerifier`], [`sns::SnsInboundHandler`] | core's `Notifier`; inbound message verification (SignatureVersion 1 and 2) and subscription confirmation | `sns` |
//! | [`ses::SesEmail`] | core's `EmailProvider` on SES v2 (content and stored templates) | `ses` |
//! | [`sqs::SqsClient`] | send (batched), long-poll receive, delete, visibility, queue + dead-letter queue | `sqs` |
//! | [`axum::VerifiedSnsMessage`] | an axum extractor verifying inbound SNS messages on the raw body | `axum` |
//! | [`outbox::DynamoSqsOutbox`] | core's `OutboxStore` across machines: events and jobs in DynamoDB (conditional writes, one transaction per event), work queue and dead-letter queue in SQS | `outbox` |
//! | [`cloudwatch::CloudWatchMetrics`], [`cloudwatch::CloudWatchLogs`], [`cloudwatch::CloudWatchLogsLayer`] | `PutMetricData` from core's metrics snapshot; `PutLogEvents`; a non-blocking `tracing` layer | `cloudwatch` |
//!
//! ## Features
//! | feature | default | enables |
//! |---|---|---|
//! | `dynamodb` | no | [`dynamodb`] |
//! | `sns` | no | [`sns`] (adds `ring` — already there through rustls — and `x509-cert` for inbound verification) |
//! | `ses` | no | [`ses`] |
//! | `sqs` | no | [`sqs`] |
//! | `cloudwatch` | no | [`cloudwatch`] (adds `tracing-subscriber`) |
//! | `outbox` | no | [`outbox`] (enables `dynamodb` and `sqs`) |
//! | `axum` | no | [`axum`]: the inbound SNS extractor (implies `sns`, adds `axum`) |
//! | `aws-config` | no | `AwsConfigCredentials`, and [`AwsBuilder::from_env`] uses it (adds `aws-config` with its STS and SSO clients, on rustls + `ring`) |
//! | `opentelemetry` | no | SNS and SQS messages carry the sending span's W3C `traceparent` as a message attribute; the outbox store (`outbox`) records it with each job |
//!
//! No feature is on by default: enable the services you use (`features = ["sqs"]`); each
//! compiles alone.
//!
//! ## Configuration
//! [`AwsBuilder::from_env`] reads `AWS_REGION` / `AWS_DEFAULT_REGION` (else the profile's
//! `region`), credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
//! `AWS_SESSION_TOKEN`, else the shared `credentials`/`config` files' profile `AWS_PROFILE`, and
//! endpoints from `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` (`DYNAMODB`, `SNS`, `SESV2`,
//! `SQS`, `CLOUDWATCH`, `CLOUDWATCH_LOGS`). With the feature `aws-config`, credentials come from
//! the AWS SDK's own default chain instead, which adds web identity (EKS IRSA), role assumption,
//! SSO, `credential_process`, container (ECS, EKS Pod Identity) and instance-metadata (EC2
//! IMDSv2) credentials; without it, the chain's error names the web identity and container
//! variables it found but cannot use.
//!
//! **Not built yet**: the config file's `endpoint_url` and `services` sections; SigV4a; SES attachments and bulk sends; SQS
//! batch receive/delete helpers.
//!
#![cfg_attr(feature = "sns", doc = "```no_run")]
#![cfg_attr(not(feature = "sns"), doc = "```ignore")]
//! # async fn demo() -> integrations_core::Result<()> {
//! use integrations_aws::AwsBuilder;
//! use integrations_aws::sns::SnsNotifier;
//! use integrations_core::{Notification, Notifier};
//!
//! let config = AwsBuilder::from_env().build()?;
//! let notifier = SnsNotifier::new(&config, "arn:aws:sns:eu-west-1:123456789012:orders");
//! notifier.publish(&Notification::new("order 42 paid").subject("Order paid")).await?;
//! # Ok(()) }
//! ```
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
// Without a service feature only configuration and credentials are compiled; the settings that
// only the service clients read are then unused.
#![cfg_attr(
    not(any(
        feature = "dynamodb",
        feature = "sns",
        feature = "ses",
        feature = "sqs",
        feature = "cloudwatch"
    )),
    allow(dead_code)
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(
    feature = "dynamodb",
    feature = "sns",
    feature = "ses",
    feature = "sqs",
    feature = "cloudwatch"
))]
mod client;
mod config;
mod credentials;
#[cfg(any(
    feature = "dynamodb",
    feature = "sns",
    feature = "ses",
    feature = "sqs",
    feature = "cloudwatch"
))]
mod error;
#[cfg(all(test, feature = "sns", feature = "sqs"))]
mod fuzz_tests;
mod profile;
#[cfg(feature = "aws-config")]
mod sdk_credentials;
mod service;
#[cfg(any(feature = "sns", feature = "sqs"))]
mod trace;
#[cfg(any(
    feature = "dynamodb",
    feature = "sns",
    feature = "ses",
    feature = "sqs",
    feature = "cloudwatch"
))]
mod xml;

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
#[cfg(feature = "cloudwatch")]
#[cfg_attr(docsrs, doc(cfg(feature = "cloudwatch")))]
pub mod cloudwatch;
#[cfg(feature = "dynamodb")]
#[cfg_attr(docsrs, doc(cfg(feature = "dynamodb")))]
pub mod dynamodb;
#[cfg(feature = "outbox")]
#[cfg_attr(docsrs, doc(cfg(feature = "outbox")))]
pub mod outbox;
#[cfg(feature = "ses")]
#[cfg_attr(docsrs, doc(cfg(feature = "ses")))]
pub mod ses;
#[cfg(feature = "sns")]
#[cfg_attr(docsrs, doc(cfg(feature = "sns")))]
pub mod sns;
#[cfg(feature = "sqs")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqs")))]
pub mod sqs;

pub use config::{AwsBuilder, AwsConfig, Service, default_policy, default_policy_builder};
pub use credentials::{
    Credentials, CredentialsProvider, DefaultCredentialsChain, EnvironmentCredentials,
    ProfileCredentials,
};
#[cfg(feature = "aws-config")]
#[cfg_attr(docsrs, doc(cfg(feature = "aws-config")))]
pub use sdk_credentials::{AwsConfigCredentials, DEFAULT_REFRESH_MARGIN};

/// The crate's provider family name; errors and metrics carry the service's own name
/// ([`Service::provider_name`]: `aws-sqs`, `aws-dynamodb`, …).
pub const PROVIDER: &str = "aws";
