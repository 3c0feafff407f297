//! The policy builds no span when nobody can see it (`telemetry::interested`: no `tracing`
//! dispatcher was ever set and `log` is off at INFO), but a service that logs through `log`
//! alone still gets them: with `tracing`'s `log` feature a span is handed to `log` when no
//! dispatcher is set. Its own test binary, because setting a dispatcher anywhere in the process
//! (as the other span tests do) changes what this one checks.

use std::sync::Mutex;
use std::time::Duration;

use integrations_core::metrics::MetricsRegistry;
use integrations_core::resilience::RetryPolicy;
use integrations_core::telemetry::{ATTEMPT_SPAN, CALL_SPAN};
use integrations_core::{Error, Policy};

/// Every `log` record's target and message.
struct Capture(Mutex<Vec<(String, String)>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0
            .lock()
            .unwrap()
            .push((record.target().to_owned(), record.args().to_string()));
    }
    fn flush(&self) {}
}

static LOGGER: Capture = Capture(Mutex::new(Vec::new()));

#[tokio::test(flavor = "current_thread")]
async fn without_a_dispatcher_the_spans_go_to_log_when_it_listens_at_info() {
    assert!(
        !tracing::dispatcher::has_been_set(),
        "no dispatcher may be set in this test binary"
    );
    log::set_logger(&LOGGER).expect("the only logger");
    log::set_max_level(log::LevelFilter::Info);

    let policy = Policy::builder("log-provider")
        .retry(RetryPolicy::none())
        .attempt_timeout(Duration::from_secs(5))
        .metrics(&MetricsRegistry::new())
        .build();
    let out: Result<u32, Error> = policy.call("log_op", |_| async { Ok(7) }).await;
    assert_eq!(out.unwrap(), 7);

    let records = LOGGER.0.lock().unwrap().clone();
    let created = |name: &str| {
        records
            .iter()
            .find(|(_, m)| m.starts_with(&format!("{name};")))
            .unwrap_or_else(|| panic!("no record of span {name} in {records:?}"))
            .1
            .clone()
    };
    let call = created(CALL_SPAN);
    assert!(call.contains(r#"provider="log-provider""#), "{call}");
    assert!(call.contains(r#"operation="log_op""#), "{call}");
    let attempt = created(ATTEMPT_SPAN);
    assert!(attempt.contains("attempt=1"), "{attempt}");
}
