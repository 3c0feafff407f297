//! # integrations-testkit
//!
//! Test doubles of every provider trait, the behaviour suites every provider must pass, and
//! (feature `sandbox`) the plumbing every provider's sandbox is built on.
//!
//! | item | what it is |
//! |---|---|
//! | [`StubEmailProvider`] | records messages; validates like a real provider; scriptable failures |
//! | [`StubNotifier`] | records notifications; drops redeliveries by dedup id like SNS FIFO |
//! | [`StubPaymentProvider`] | an in-memory payment state machine with idempotent replay, declines, capture, refunds |
//! | [`StubSheetsSink`] | in-memory sheets; dedup and update by row key |
//! | [`fast_policy`], [`fixture`], [`fixture_json`] | a quick, private-metrics policy for tests; files from `tests/fixtures/` |
//! | [`TracingCapture`], [`capture_tracing`] | this thread's `tracing` events, without the interest-cache race of a scoped subscriber |
//! | `sandbox` | one server runner, one `Fault` type and a bounded request log for every provider sandbox (feature `sandbox`) |
//! | [`payment_provider_suite`], [`email_provider_suite`], [`sheets_sink_suite`], [`notifier_suite`] | the contracts, as `async fn`s that panic naming what is broken |
//!
//! Every stub counts its calls (`calls()`), can fail its next calls (`fail_next(n, || error)`),
//! and checks its input as the trait's contract says a real provider must, so code tested against
//! a stub does not pass by accident. Every stub passes its suite (see this crate's tests), so a
//! provider crate can run the same suite against its sandbox or real account:
//!
//! ```
//! use integrations_testkit::{
//!     payment_provider_suite, unique_run_id, PaymentSuiteConfig, StubPaymentProvider,
//! };
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let provider = StubPaymentProvider::new_ok();
//! payment_provider_suite(&provider, &PaymentSuiteConfig::for_stub(unique_run_id())).await;
//! # });
//! ```

#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod payment_state;
#[cfg(feature = "sandbox")]
#[cfg_attr(docsrs, doc(cfg(feature = "sandbox")))]
pub mod sandbox;
mod script;
mod stub_email;
mod stub_notify;
mod stub_payment;
mod stub_sheets;
mod suite_email;
mod suite_notify;
mod suite_payment;
mod suite_sheets;
mod suite_support;
mod support;
mod tracing_capture;

use std::time::{SystemTime, UNIX_EPOCH};

pub use stub_email::StubEmailProvider;
pub use stub_notify::StubNotifier;
pub use stub_payment::{DECLINING_METHOD, SUCCEEDING_METHOD, StubPaymentProvider};
pub use stub_sheets::StubSheetsSink;
pub use suite_email::{EmailSuiteConfig, email_provider_suite};
pub use suite_notify::{NotifierSuiteConfig, notifier_suite};
pub use suite_payment::{PaymentSuiteConfig, payment_provider_suite};
pub use suite_sheets::{SheetsSuiteConfig, sheets_sink_suite};
pub use support::{fast_policy, fixture, fixture_json, fixture_path};
pub use tracing_capture::{CapturedEvent, CapturedSpan, TracingCapture, capture_tracing};

/// A run id unlikely to repeat (`run-<unix millis>-<random>`), for suites run against real
/// accounts where idempotency keys and row keys from earlier runs still exist.
pub fn unique_run_id() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("run-{millis}-{:08x}", fastrand::u32(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_differ_and_make_valid_keys() {
        let a = unique_run_id();
        let b = unique_run_id();
        assert_ne!(a, b);
        assert!(
            integrations_core::IdempotencyKey::derive(&format!("suite-{a}"), "payment").is_ok()
        );
    }
}
