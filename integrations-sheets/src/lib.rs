//! # integrations-sheets
//!
//! Google Sheets for the `integrations` family: Google authentication (service accounts, the
//! metadata server, `authorized_user` application-default credentials), the
//! `spreadsheets.values` API, core's [`SheetsSink`](integrations_core::SheetsSink) with batching
//! under Google's quota and without duplicate rows, and a local sandbox.
//!
//! | item | what it gives you |
//! |---|---|
//! | [`GoogleSheetsBuilder`] | configuration: credentials chosen as Google's libraries do (`GOOGLE_APPLICATION_CREDENTIALS` path or JSON, gcloud's well-known file, the metadata server) or any [`TokenProvider`], spreadsheet, endpoints, policies, batching |
//! | [`TokenProvider`], [`ServiceAccountTokens`], [`AuthorizedUserTokens`], [`MetadataServerTokens`], [`default_token_provider`] | where access tokens come from; plug your own in |
//! | [`ServiceAccountKey`] | a parsed service-account key and its RS256 JWT assertion (`iss`, `scope`, `aud`, `iat`, `exp`, `kid`) |
//! | [`GoogleSheetsClient`] | `values.get`, `values.update`, `values.batchUpdate`, `values.append` under per-minute read and write limits, token cache with single-flight refresh, 401 → refresh once |
//! | [`GoogleSheetsSink`] | [`SheetsSink`](integrations_core::SheetsSink): rows buffered per sheet and flushed as one append by size, time, `flush` or shutdown; bounded buffer; key-checked retries; update by key with one read per batch |
//! | [`A1Range`] | A1 notation built and parsed, sheet names quoted (`'It''s here'!A1:C`) |
//! | [`parse_error`] | Google's API and OAuth error JSON → [`integrations_core::Error`] |
//! | `sandbox` | an in-process Sheets + token endpoint with quota and fault injection, and throwaway keys (feature `sandbox`) |
//!
//! ## Features
//! | feature | default | enables |
//! |---|---|---|
//! | `sandbox` | no | `sandbox`: `Sandbox`, `Fault`, `test_service_account` (pulls in `integrations-testkit`'s sandbox server and `rsa`) |
//! | `reqwest-middleware` | no | `with_http_client` takes a `reqwest_middleware::ClientWithMiddleware`: its middleware sees every request, token fetches and retries included |
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod a1;
mod adc;
mod auth;
mod client;
mod config;
pub mod credentials;
#[cfg(feature = "sandbox")]
#[cfg_attr(docsrs, doc(cfg(feature = "sandbox")))]
pub mod sandbox;
mod sink;
pub mod token;
pub mod values;

pub use a1::{A1Error, A1Range, CellRef};
pub use adc::{DEFAULT_METADATA_HOST, ENV_METADATA_HOST};
pub use client::{GoogleSheetsClient, parse_error};
pub use config::{
    DEFAULT_BASE_URL, DEFAULT_REFRESH_BEFORE, DEFAULT_REQUESTS_PER_MINUTE, ENV_BASE_URL,
    ENV_CREDENTIALS, ENV_SPREADSHEET_ID, ENV_TOKEN_URL, GoogleSheetsBuilder,
};
pub use credentials::ServiceAccountKey;
pub use sink::{BatchConfig, GoogleSheetsSink};
pub use token::{
    AuthorizedUserTokens, FetchedToken, MetadataServerTokens, ServiceAccountTokens, TokenProvider,
    TokenRequest, default_token_provider,
};
pub use values::{
    AppendResponse, BatchUpdateResponse, UpdateResponse, ValueInputOption, ValueRange,
    ValueRenderOption,
};

/// This crate's provider name, in errors, metrics and logs.
pub const PROVIDER: &str = "google-sheets";
