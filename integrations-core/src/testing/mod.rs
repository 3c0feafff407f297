//! Test doubles of every provider trait, and the behaviour suites every provider must pass
//! (feature `testing`).
//!
//! | item | what it is |
//! |---|---|
//! | [`StubEmailProvider`] | records messages; validates like a real provider; scriptable failures |
//! | [`StubNotifier`] | records notifications; drops redeliveries by dedup id like SNS FIFO |
//! | [`StubPaymentProvider`] | an in-memory payment state machine with idempotent replay, declines, capture, refunds |
//! | [`StubSheetsSink`] | in-memory sheets; dedup and update by row key |
//! | [`payment_provider_suite`], [`email_provider_suite`], [`sheets_sink_suite`], [`notifier_suite`] | the contracts, as `async fn`s that panic naming what is broken |
//!
//! Every stub counts its calls (`calls()`), can fail its next calls (`fail_next(n, || error)`),
//! and checks its input as the trait's contract says a real provider must, so code tested against
//! a stub does not pass by accident. Every stub passes its suite (see this crate's tests), so a
//! provider crate can run the same suite against its sandbox or real account:
//!
//! ```
//! use integrations_core::testing::{
//!     payment_provider_suite, unique_run_id, PaymentSuiteConfig, StubPaymentProvider,
//! };
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let provider = StubPaymentProvider::new_ok();
//! payment_provider_suite(&provider, &PaymentSuiteConfig::for_stub(unique_run_id())).await;
//! # });
//! ```

mod payment_state;
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

use std::time::{SystemTime, UNIX_EPOCH};

pub use stub_email::StubEmailProvider;
pub use stub_notify::StubNotifier;
pub use stub_payment::{DECLINING_METHOD, SUCCEEDING_METHOD, StubPaymentProvider};
pub use stub_sheets::StubSheetsSink;
pub use suite_email::{EmailSuiteConfig, email_provider_suite};
pub use suite_notify::{NotifierSuiteConfig, notifier_suite};
pub use suite_payment::{PaymentSuiteConfig, payment_provider_suite};
pub use suite_sheets::{SheetsSuiteConfig, sheets_sink_suite};

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
        assert!(crate::IdempotencyKey::derive(&format!("suite-{a}"), "payment").is_ok());
    }
}
