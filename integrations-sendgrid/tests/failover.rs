//! Core's failover with SendGrid (on the sandbox) first and a second `EmailProvider` (core's
//! `StubEmailProvider`, standing in for Amazon SES): it moves on when SendGrid is unavailable
//! before acting or its breaker is open, and never when the message itself is invalid or SendGrid
//! may already have sent it.

use std::sync::Arc;
use std::time::Duration;

use integrations_core::ErrorKind;
use integrations_core::failover::Failover;
use integrations_core::provider::{EmailMessage, EmailProvider};
use integrations_core::resilience::{CircuitBreakerConfig, Policy, RetryPolicy, SlidingWindow};
use integrations_sendgrid::SendGridEmail;
use integrations_sendgrid::sandbox::{Fault, Sandbox};
use integrations_testkit::StubEmailProvider;

struct Setup {
    sandbox: Sandbox,
    sendgrid: Arc<SendGridEmail>,
    ses: Arc<StubEmailProvider>,
    email: Failover<dyn EmailProvider>,
}

/// A breaker that opens after 2 failures in the last 2 calls, and no retries, so each test
/// step is one request.
async fn setup() -> Setup {
    let sandbox = Sandbox::start().await.unwrap();
    let policy = Policy::builder("sendgrid")
        .retry(RetryPolicy::none())
        .circuit_breaker(
            CircuitBreakerConfig::new()
                .with_window(SlidingWindow::Count(2))
                .with_minimum_calls(2)
                .with_failure_rate_threshold(100)
                .with_open_duration(Duration::from_secs(600)),
        )
        .attempt_timeout(Duration::from_secs(10))
        .build();
    let sendgrid = Arc::new(sandbox.email().with_policy(policy).build().unwrap());
    let ses = Arc::new(StubEmailProvider::new_ok().with_name("ses"));
    let email =
        Failover::<dyn EmailProvider>::from_primary(sendgrid.clone() as Arc<dyn EmailProvider>)
            .with_fallback(ses.clone() as Arc<dyn EmailProvider>);
    Setup {
        sandbox,
        sendgrid,
        ses,
        email,
    }
}

fn message() -> EmailMessage {
    EmailMessage::builder("orders@shop.example")
        .to("jane@example.com")
        .subject("Order 42 confirmed")
        .text("Thanks!")
        .custom_arg("order_id", "42")
        .build()
}

#[tokio::test]
async fn healthy_sendgrid_serves() {
    let s = setup().await;
    let sent = s.email.send(&message()).await.unwrap();
    assert_eq!(sent.provider, "sendgrid");
    assert_eq!(s.sandbox.messages()[0].message_id, sent.message_id);
    assert_eq!(s.ses.calls(), 0);
    assert_eq!(s.email.served_counts(), [1, 0]);
}

#[tokio::test]
async fn unavailable_sendgrid_moves_to_the_second_provider() {
    let s = setup().await;
    s.sandbox.fail_next(1, Fault::Unavailable);
    let sent = s.email.send(&message()).await.unwrap();
    assert_eq!(sent.provider, "ses");
    assert!(s.sandbox.messages().is_empty());
    assert_eq!(s.ses.sent(), [message()]);
    assert_eq!(s.email.failure_counts(), [1, 0]);

    s.sandbox
        .fail_next(1, Fault::rate_limited(Duration::from_secs(30)));
    assert_eq!(s.email.send(&message()).await.unwrap().provider, "ses");
}

#[tokio::test]
async fn open_breaker_moves_on_without_calling_sendgrid() {
    let s = setup().await;
    s.sendgrid
        .client()
        .policy()
        .circuit_breaker()
        .unwrap()
        .force_open();
    let sent = s.email.send(&message()).await.unwrap();
    assert_eq!(sent.provider, "ses");
    assert_eq!(s.sandbox.request_count(), 0);
}

/// A 500 may follow acceptance, so it is returned, not failed over; once 500s open the breaker,
/// calls move to the second provider without touching SendGrid.
#[tokio::test]
async fn server_errors_open_the_breaker_then_failover_takes_over() {
    let s = setup().await;
    s.sandbox.fail_next(2, Fault::ServerError);
    for _ in 0..2 {
        let e = s.email.send(&message()).await.unwrap_err();
        assert_eq!((e.kind(), e.status()), (ErrorKind::Unavailable, Some(500)));
    }
    assert_eq!(s.ses.calls(), 0);
    let sent = s.email.send(&message()).await.unwrap();
    assert_eq!(sent.provider, "ses");
    assert_eq!(s.sandbox.request_count(), 2);
}

#[tokio::test]
async fn stopped_sendgrid_moves_on() {
    let s = setup().await;
    let Setup {
        sandbox,
        email,
        ses,
        ..
    } = s;
    sandbox.shutdown().await;
    assert_eq!(email.send(&message()).await.unwrap().provider, "ses");
    assert_eq!(ses.calls(), 1);
}

#[tokio::test]
async fn invalid_message_never_fails_over() {
    let s = setup().await;
    let bad = EmailMessage::builder("orders@shop.example")
        .to("jane@example.com")
        .subject("s")
        .text("t")
        .send_at(std::time::SystemTime::now() + Duration::from_secs(4 * 24 * 3600))
        .build();
    let e = s.email.send(&bad).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(e.field(), Some("send_at"));
    assert_eq!(s.ses.calls(), 0);
    assert_eq!(s.sandbox.request_count(), 0);

    let no_recipients = EmailMessage::builder("orders@shop.example")
        .subject("s")
        .text("t")
        .build();
    assert_eq!(
        s.email.send(&no_recipients).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(s.ses.calls(), 0);
}

#[tokio::test]
async fn possibly_sent_is_not_failed_over() {
    let s = setup().await;
    s.sandbox.fail_next(1, Fault::DropAfterAccept);
    let e = s.email.send(&message()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert_eq!(s.sandbox.messages().len(), 1, "SendGrid did accept it");
    assert_eq!(s.ses.calls(), 0, "so it must not be sent again elsewhere");
}
