//! `Failover` across email providers and notifiers, against the testkit's stubs.

use std::sync::Arc;

use integrations_core::failover::Failover;
use integrations_core::provider::{
    EmailCapabilities, EmailMessage, EmailProvider, Notification, Notifier,
};
use integrations_core::{Error, ErrorKind};
use integrations_testkit::{StubEmailProvider, StubNotifier, TracingCapture};

fn msg() -> EmailMessage {
    EmailMessage::builder("shop@example.com")
        .to("jane@example.com")
        .subject("Order confirmed")
        .text("Thanks!")
        .build()
}

type Stubs = (
    Arc<StubEmailProvider>,
    Arc<StubEmailProvider>,
    Failover<dyn EmailProvider>,
);

fn pair() -> Stubs {
    let a = Arc::new(StubEmailProvider::new_ok().with_name("sendgrid"));
    let b = Arc::new(StubEmailProvider::new_ok().with_name("ses"));
    let f = Failover::<dyn EmailProvider>::from_primary(a.clone()).with_fallback(b.clone());
    (a, b, f)
}

#[tokio::test]
async fn primary_serves_when_healthy() {
    let (a, b, f) = pair();
    let sent = f.send(&msg()).await.unwrap();
    assert_eq!(sent.provider, "sendgrid");
    assert_eq!((a.calls(), b.calls()), (1, 0));
    assert_eq!(f.served_counts(), vec![1, 0]);
    assert_eq!(f.last_served(), Some(0));
    assert_eq!(f.name(), "failover");
}

#[tokio::test]
async fn fails_over_on_every_failover_safe_error() {
    let safe: [fn() -> Error; 4] = [
        || Error::circuit_open("open"),
        || Error::rate_limited(None, "429"),
        || Error::bulkhead_full("full"),
        || Error::unavailable("connection refused").not_processed(),
    ];
    for (i, make) in safe.into_iter().enumerate() {
        let (a, b, f) = pair();
        a.fail_next(1, make);
        let sent = f.send(&msg()).await.unwrap();
        assert_eq!(sent.provider, "ses", "case {i}");
        assert_eq!(b.sent().len(), 1, "case {i}");
        assert_eq!(f.served_counts(), vec![0, 1], "case {i}");
        assert_eq!(f.failure_counts(), vec![1, 0], "case {i}");
        assert_eq!(f.last_served(), Some(1), "case {i}");
        // Recovered primary serves the next message again.
        assert_eq!(f.send(&msg()).await.unwrap().provider, "sendgrid");
        assert_eq!(f.last_served(), Some(0));
    }
}

#[tokio::test]
async fn never_fails_over_when_the_provider_may_have_acted() {
    let unsafe_errors: [fn() -> Error; 4] = [
        || Error::unavailable("502 after sending"),
        || Error::timeout("no answer"),
        || Error::unauthenticated("bad key"),
        || Error::invalid_input("personalizations[0].to", "refused by provider"),
    ];
    for (i, make) in unsafe_errors.into_iter().enumerate() {
        let (a, b, f) = pair();
        a.fail_next(1, make);
        let e = f.send(&msg()).await.unwrap_err();
        assert_eq!(e.kind(), make().kind(), "case {i}");
        assert_eq!(e.provider_name(), Some("sendgrid"), "case {i}");
        assert_eq!(b.calls(), 0, "case {i}: fallback must not be tried");
        assert_eq!(f.served_counts(), vec![0, 0]);
        assert_eq!(f.last_served(), None);
    }
}

#[tokio::test]
async fn invalid_message_reaches_no_provider() {
    let (a, b, f) = pair();
    let mut bad = msg();
    bad.personalizations.clear();
    let e = f.send(&bad).await.unwrap_err();
    assert_eq!(e.field(), Some("personalizations"));
    assert_eq!(e.provider_name(), Some("failover"));
    assert_eq!((a.calls(), b.calls()), (0, 0));
}

#[tokio::test]
async fn all_failed_returns_the_last_error() {
    let (a, b, f) = pair();
    a.fail_next(1, || Error::circuit_open("sendgrid open"));
    b.fail_next(1, || Error::rate_limited(None, "ses throttled"));
    let e = f.send(&msg()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.provider_name(), Some("ses"));
    assert_eq!(f.failure_counts(), vec![1, 1]);
    assert_eq!(f.served_counts(), vec![0, 0]);
}

#[tokio::test]
async fn capabilities_are_the_intersection_and_gate_providers() {
    let mut no_templates = EmailCapabilities::all();
    no_templates.templates = false;
    let ses = Arc::new(
        StubEmailProvider::new_ok()
            .with_name("ses")
            .with_capabilities(no_templates),
    );
    let sendgrid = Arc::new(StubEmailProvider::new_ok().with_name("sendgrid"));
    let f =
        Failover::<dyn EmailProvider>::from_primary(ses.clone()).with_fallback(sendgrid.clone());
    assert_eq!(f.capabilities(), no_templates);
    let template = EmailMessage::builder("shop@example.com")
        .to("jane@example.com")
        .template("d-123")
        .build();
    let sent = f.send(&template).await.unwrap();
    assert_eq!(sent.provider, "sendgrid");
    assert_eq!(ses.calls(), 0, "a provider without templates is skipped");
    assert_eq!(f.served_counts(), vec![0, 1]);

    let only_ses = Failover::<dyn EmailProvider>::from_primary(ses.clone());
    let e = only_ses.send(&template).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(e.field(), Some("template_id"));
    assert_eq!(ses.calls(), 0);
}

#[tokio::test]
async fn skipped_and_failed_providers_report_the_failure() {
    let mut no_templates = EmailCapabilities::all();
    no_templates.templates = false;
    let a = Arc::new(StubEmailProvider::new_ok().with_name("a"));
    let b = Arc::new(
        StubEmailProvider::new_ok()
            .with_name("b")
            .with_capabilities(no_templates),
    );
    a.fail_next(1, || Error::circuit_open("open"));
    let f = Failover::new(vec![a as Arc<dyn EmailProvider>, b]).unwrap();
    let template = EmailMessage::builder("shop@example.com")
        .to("jane@example.com")
        .template("d-123")
        .build();
    let e = f.send(&template).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CircuitOpen);
}

#[tokio::test]
async fn notifier_failover() {
    let sns = Arc::new(StubNotifier::new_ok().with_name("sns"));
    let backup = Arc::new(StubNotifier::new_ok().with_name("backup"));
    let f = Failover::<dyn Notifier>::from_primary(sns.clone()).with_fallback(backup.clone());
    assert_eq!(Notifier::name(&f), "failover");
    sns.fail_next(1, || Error::unavailable("refused").not_processed());
    let p = f.publish(&Notification::new("paid")).await.unwrap();
    assert_eq!(p.provider, "backup");
    assert_eq!(f.served_counts(), vec![0, 1]);
    sns.fail_next(1, || Error::timeout("maybe published"));
    let e = f.publish(&Notification::new("paid")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(backup.calls(), 1, "no failover after a timeout");
    let e = f.publish(&Notification::new("")).await.unwrap_err();
    assert_eq!(e.field(), Some("body"));
    assert_eq!(sns.calls(), 2, "invalid input reaches no provider");
    sns.fail_next(1, || Error::rate_limited(None, "throttled"));
    backup.fail_next(1, || Error::circuit_open("open"));
    let e = f.publish(&Notification::new("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CircuitOpen);
    assert_eq!(e.provider_name(), Some("backup"));
}

#[test]
fn empty_list_is_a_configuration_error() {
    let e = Failover::<dyn EmailProvider>::new(Vec::new()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration);
    assert_eq!(e.field(), Some("providers"));
    let (_, _, f) = pair();
    let d = format!("{f:?}");
    assert!(d.contains("sendgrid") && d.contains("ses"), "{d}");
    assert_eq!(f.providers().len(), 2);
}

#[tokio::test]
async fn emits_tracing_events_for_failover_and_service() {
    // Not a scoped `set_default` subscriber: the "served" callsite, first reached by another test's
    // thread, would be cached as "never" for the whole binary (one run in four failed).
    let capture = TracingCapture::start();
    let (a, _, f) = pair();
    a.fail_next(1, || Error::circuit_open("open"));
    f.send(&msg()).await.unwrap();
    let events = capture.events();
    assert!(
        events.iter().any(|e| e.level == tracing::Level::WARN
            && e.message.contains("failing over")
            && e.field("provider") == Some("sendgrid")),
        "{:?}",
        capture.lines()
    );
    assert!(
        events.iter().any(|e| e.level == tracing::Level::INFO
            && e.message == "served"
            && e.field("provider") == Some("ses")),
        "{:?}",
        capture.lines()
    );
}
