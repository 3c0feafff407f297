//! The sandbox driven by the real client: core's email behaviour suite, SendGrid's validation
//! and error shape, rate limits, fault injection and signed event delivery.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use integrations_core::ErrorKind;
use integrations_core::clock::FixedClock;
use integrations_core::http::HttpResponse;
use integrations_core::provider::{EmailMessage, EmailProvider, Mailbox, Personalization};
use integrations_core::resilience::{Backoff, Policy, RetryPolicy};
use integrations_sendgrid::sandbox::{Fault, FaultRule, Sandbox, WebhookDelivery, WebhookTarget};
use integrations_sendgrid::webhook::{EventKind, EventType, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use integrations_sendgrid::{MailSend, SendGridEmail, parse_error};
use integrations_testkit::{EmailSuiteConfig, email_provider_suite};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const NOW: i64 = 1_700_000_000;

fn policy(retries: u32, attempt_timeout: Duration) -> Policy {
    Policy::builder("sendgrid")
        .retry(RetryPolicy::new(
            retries,
            Backoff::new(Duration::from_millis(1), Duration::from_millis(2), 2.0),
        ))
        .no_circuit_breaker()
        .attempt_timeout(attempt_timeout)
        .build()
}

fn provider(sandbox: &Sandbox) -> SendGridEmail {
    sandbox
        .email()
        .with_policy(policy(0, Duration::from_secs(10)))
        .build()
        .unwrap()
}

fn message() -> EmailMessage {
    EmailMessage::builder(Mailbox::named("orders@shop.example", "Shop"))
        .personalization(
            Personalization::to(Mailbox::named("jane@example.com", "Jane"))
                .cc("accounts@example.com")
                .bcc("audit@shop.example"),
        )
        .subject("Order 42 confirmed")
        .text("Thanks!")
        .html("<p>Thanks!</p>")
        .category("order_confirmation")
        .custom_arg("order_id", "42")
        .build()
}

async fn raw(sandbox: &Sandbox, auth: Option<&str>, body: Vec<u8>) -> HttpResponse {
    let mut req = reqwest::Client::new()
        .post(format!("{}/v3/mail/send", sandbox.base_url()))
        .header("content-type", "application/json")
        .body(body);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    HttpResponse {
        status: resp.status(),
        headers: resp.headers().clone(),
        body: resp.bytes().await.unwrap(),
    }
}

#[tokio::test]
async fn passes_core_email_behaviour_suite() {
    let sandbox = Sandbox::start().await.unwrap();
    let p = provider(&sandbox);
    let cfg = EmailSuiteConfig::new("suite@shop.example", "inbox@example.com")
        .with_template("d-integrations-suite");
    email_provider_suite(&p, &cfg).await;
    // The suite sends a text message and a template message; everything else is refused locally.
    assert_eq!(sandbox.messages().len(), 2);
    assert_eq!(sandbox.request_count(), 2);
}

#[tokio::test]
async fn records_exactly_what_was_sent() {
    let sandbox = Sandbox::start().await.unwrap();
    let p = sandbox
        .email()
        .with_on_behalf_of("subuser-1")
        .with_policy(policy(0, Duration::from_secs(10)))
        .build()
        .unwrap();
    let msg = message();
    let sent = p.send(&msg).await.unwrap();
    assert_eq!(sent.message_id.len(), 22, "{}", sent.message_id);
    let got = sandbox.message(&sent.message_id).unwrap();
    assert_eq!(got.mail, MailSend::from_message(&msg));
    assert_eq!(got.body["content"][0]["type"], "text/plain");
    assert_eq!(got.on_behalf_of.as_deref(), Some("subuser-1"));
}

#[tokio::test]
async fn validates_like_sendgrid_with_its_error_shape() {
    let sandbox = Sandbox::start().await.unwrap();
    let auth = format!("Bearer {}", sandbox.api_key());
    let body = json!({
        "personalizations": [{"to": [{"email": "jane@example.com"}, {"email": "JANE@example.com"}]}],
        "from": {"email": "orders@shop.example"},
        "subject": "s",
        "content": [{"type": "text/html", "value": "<p>x</p>"}, {"type": "text/plain", "value": "x"}]
    });
    let resp = raw(&sandbox, Some(&auth), serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(resp.status.as_u16(), 400);
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{v}");
    assert_eq!(errors[0]["field"], "personalizations.0");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Each email address in the personalization block should be unique")
    );
    assert_eq!(errors[1]["field"], "content");
    assert!(
        errors[1]["help"]
            .as_str()
            .unwrap()
            .starts_with("http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#")
    );
    let e = parse_error(&resp, std::time::SystemTime::now());
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(e.field(), Some("personalizations.0"));

    let resp = raw(&sandbox, Some(&auth), b"{not json".to_vec()).await;
    assert_eq!(resp.status.as_u16(), 400);
    let resp = raw(
        &sandbox,
        Some(&auth),
        serde_json::to_vec(&json!({"from": {"email": "x@y.co"}})).unwrap(),
    )
    .await;
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(v["errors"][0]["field"], "personalizations");
    assert!(sandbox.messages().is_empty());

    let sandbox_mode = json!({
        "personalizations": [{"to": [{"email": "jane@example.com"}]}],
        "from": {"email": "orders@shop.example"}, "subject": "s",
        "content": [{"type": "text/plain", "value": "x"}],
        "mail_settings": {"sandbox_mode": {"enable": true}}
    });
    let resp = raw(
        &sandbox,
        Some(&auth),
        serde_json::to_vec(&sandbox_mode).unwrap(),
    )
    .await;
    assert_eq!(resp.status.as_u16(), 200);
    assert!(sandbox.messages().is_empty());
}

#[tokio::test]
async fn checks_the_bearer_key() {
    let sandbox = Sandbox::start().await.unwrap();
    let resp = raw(&sandbox, None, b"{}".to_vec()).await;
    assert_eq!(resp.status.as_u16(), 401);
    assert_eq!(
        serde_json::from_slice::<Value>(&resp.body).unwrap()["errors"][0]["message"],
        "authorization required"
    );
    let wrong = sandbox
        .email()
        .with_api_key("SG.wrong")
        .with_policy(policy(0, Duration::from_secs(10)))
        .build()
        .unwrap();
    let e = wrong.send(&message()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    assert!(
        e.message().contains("authorization grant is invalid"),
        "{e}"
    );
}

#[tokio::test]
async fn refuses_bodies_over_30_mb() {
    let sandbox = Sandbox::start().await.unwrap();
    let auth = format!("Bearer {}", sandbox.api_key());
    let resp = raw(&sandbox, Some(&auth), vec![b' '; 30 * 1024 * 1024 + 1]).await;
    assert_eq!(resp.status.as_u16(), 413);
    let e = parse_error(&resp, std::time::SystemTime::now());
    assert_eq!(e.field(), Some("body"));
}

#[tokio::test]
async fn per_minute_limit_with_headers() {
    let clock = FixedClock::from_unix(NOW - NOW.rem_euclid(60) + 10);
    let sandbox = Sandbox::builder()
        .rate_limit_per_minute(2)
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    let p = provider(&sandbox);
    p.send(&message()).await.unwrap();
    let auth = format!("Bearer {}", sandbox.api_key());
    let body = serde_json::to_vec(&MailSend::from_message(&message())).unwrap();
    let resp = raw(&sandbox, Some(&auth), body).await;
    assert_eq!(resp.status.as_u16(), 202);
    assert_eq!(resp.header("x-ratelimit-limit"), Some("2"));
    assert_eq!(resp.header("x-ratelimit-remaining"), Some("0"));
    let reset = NOW - NOW.rem_euclid(60) + 60;
    assert_eq!(
        resp.header("x-ratelimit-reset"),
        Some(reset.to_string().as_str())
    );

    let e = p.send(&message()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(50)));
    assert_eq!(sandbox.messages().len(), 2);

    clock.advance(Duration::from_secs(50));
    p.send(&message()).await.unwrap();
    assert_eq!(sandbox.messages().len(), 3);
}

#[tokio::test]
async fn injected_status_faults() {
    let clock = FixedClock::from_unix(NOW);
    let sandbox = Sandbox::builder().clock(clock).start().await.unwrap();
    let p = provider(&sandbox);
    sandbox.fail_next(1, Fault::ServerError);
    sandbox.fail_next(1, Fault::Unavailable);
    sandbox.fail_next(1, Fault::rate_limited(Duration::from_secs(3)));
    let e = p.send(&message()).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.status(), e.is_failover_safe()),
        (ErrorKind::Unavailable, Some(500), false)
    );
    let e = p.send(&message()).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.status(), e.is_failover_safe()),
        (ErrorKind::Unavailable, Some(503), true)
    );
    let e = p.send(&message()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    assert!(sandbox.messages().is_empty());
    p.send(&message()).await.unwrap();
    assert_eq!(sandbox.messages().len(), 1);
    assert_eq!(sandbox.request_count(), 4);
}

#[tokio::test]
async fn retries_through_injected_faults() {
    let sandbox = Sandbox::start().await.unwrap();
    let p = sandbox
        .email()
        .with_policy(policy(2, Duration::from_secs(10)))
        .build()
        .unwrap();
    sandbox.fail_next(1, Fault::ServerError);
    sandbox.fail_next(1, Fault::rate_limited(Duration::ZERO));
    p.send(&message()).await.unwrap();
    assert_eq!(sandbox.request_count(), 3);
    assert_eq!(sandbox.messages().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn hang_times_out_without_sending() {
    let sandbox = Sandbox::start().await.unwrap();
    let p = sandbox
        .email()
        .with_policy(policy(0, Duration::from_millis(200)))
        .build()
        .unwrap();
    sandbox.fail_next(1, Fault::Hang);
    let e = p.send(&message()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(!e.is_failover_safe());
    assert!(sandbox.messages().is_empty());
}

/// The dangerous case: SendGrid accepted, the answer was lost. The error is not failover-safe,
/// and a retry sends the mail a second time — which is why mail retries are kept few.
#[tokio::test]
async fn drop_after_accept_records_and_fails() {
    let sandbox = Sandbox::start().await.unwrap();
    sandbox.fail_next(1, Fault::DropAfterAccept);
    let e = provider(&sandbox).send(&message()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(!e.is_failover_safe());
    assert_eq!(sandbox.messages().len(), 1);

    sandbox.fail_next(1, Fault::DropAfterAccept);
    let retrying = sandbox
        .email()
        .with_policy(policy(1, Duration::from_secs(10)))
        .build()
        .unwrap();
    retrying.send(&message()).await.unwrap();
    assert_eq!(
        sandbox.messages().len(),
        3,
        "the retry delivered a duplicate"
    );
}

#[tokio::test]
async fn stopped_sandbox_is_unavailable_and_failover_safe() {
    let sandbox = Sandbox::start().await.unwrap();
    let p = provider(&sandbox);
    sandbox.shutdown().await;
    let e = p.send(&message()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.is_failover_safe(), "{e}");
}

#[tokio::test]
async fn unknown_paths_answer_in_sendgrids_shape() {
    let sandbox = Sandbox::start().await.unwrap();
    let resp = reqwest::get(format!("{}/v3/nope", sandbox.base_url()))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let v: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(v["errors"][0]["message"], "not found");
}

fn check_events(sandbox: &Sandbox, d: &WebhookDelivery, message_id: &str, kind: EventType) {
    let events = sandbox
        .webhook_verifier()
        .construct_events(&d.headers(), &d.body)
        .unwrap();
    let emails: Vec<&str> = events.iter().map(|e| e.email.as_str()).collect();
    assert_eq!(
        emails,
        [
            "jane@example.com",
            "accounts@example.com",
            "audit@shop.example"
        ]
    );
    for e in &events {
        assert_eq!(e.event_type(), kind);
        assert_eq!(e.message_id(), Some(message_id));
        assert_eq!(e.custom_arg("order_id"), Some("42"));
        assert_eq!(e.categories, ["order_confirmation"]);
    }
    let mut ids: Vec<String> = events.iter().map(|e| e.dedup_key()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "sg_event_id is unique per event");
}

#[tokio::test]
async fn emits_signed_events_to_a_url() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks/sendgrid"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&receiver)
        .await;
    let sandbox = Sandbox::start().await.unwrap();
    sandbox.set_webhook_target(Some(WebhookTarget::Url(format!(
        "{}/hooks/sendgrid",
        receiver.uri()
    ))));
    let sent = provider(&sandbox).send(&message()).await.unwrap();
    let d = sandbox
        .emit_events(&sent.message_id, &[EventType::Delivered])
        .await
        .unwrap();
    assert_eq!(d.status, Some(204));
    assert!(d.body.ends_with(b"}]\r\n"));
    let got = &receiver.received_requests().await.unwrap()[0];
    assert_eq!(got.body, d.body.to_vec());
    let header = |name: &str| got.headers.get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "application/json");
    sandbox
        .webhook_verifier()
        .verify(
            &header(SIGNATURE_HEADER),
            &header(TIMESTAMP_HEADER),
            &got.body,
        )
        .unwrap();
    check_events(&sandbox, &d, &sent.message_id, EventType::Delivered);
    assert!(
        sandbox
            .emit_events("unknown", &[EventType::Open])
            .await
            .is_err()
    );
}

#[tokio::test]
async fn emits_events_to_a_callback_and_automatically() {
    let sandbox = Sandbox::start().await.unwrap();
    let got: Arc<Mutex<Vec<WebhookDelivery>>> = Arc::default();
    let sink = got.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    sandbox.set_webhook_target(Some(WebhookTarget::Callback(Arc::new(
        move |d: &WebhookDelivery| {
            sink.lock().unwrap().push(d.clone());
            let _ = tx.send(());
        },
    ))));
    let p = provider(&sandbox);
    let sent = p.send(&message()).await.unwrap();
    let d = sandbox
        .emit_events(&sent.message_id, &[EventType::Bounce])
        .await
        .unwrap();
    rx.recv().await.unwrap();
    check_events(&sandbox, &d, &sent.message_id, EventType::Bounce);
    let events = sandbox
        .webhook_verifier()
        .construct_events(&d.headers(), &d.body)
        .unwrap();
    assert!(matches!(&events[0].kind, EventKind::Bounce { status: Some(s), .. } if s == "5.1.1"));

    sandbox.set_auto_events(&[EventType::Processed]);
    let second = p.send(&message()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let auto = got.lock().unwrap().last().cloned().unwrap();
    check_events(&sandbox, &auto, &second.message_id, EventType::Processed);
    assert_eq!(sandbox.deliveries().len(), 2);

    let all = sandbox
        .emit_events_for_all(&[EventType::Open, EventType::Click])
        .await
        .unwrap();
    let events = sandbox
        .webhook_verifier()
        .construct_events(&all.headers(), &all.body)
        .unwrap();
    assert_eq!(events.len(), 2 * 3 * 2);
    assert_eq!(sandbox.webhook_public_key(), sandbox.webhook_public_key());
}

/// A rule with `.after(k).times(n)` hits exactly requests k+1 … k+n of its operation.
#[tokio::test]
async fn fault_rule_hits_exactly_the_intended_requests() {
    let sandbox = Sandbox::start().await.unwrap();
    let p = provider(&sandbox);
    sandbox.inject(
        FaultRule::new(Fault::Unavailable)
            .after(1)
            .times(2)
            .on("mail.send"),
    );
    // Not a mail send: passes through the rule untouched.
    let other = reqwest::Client::new()
        .post(format!("{}/v3/other", sandbox.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 404);

    let mut outcomes = Vec::new();
    for _ in 0..4 {
        outcomes.push(p.send(&message()).await.err().and_then(|e| e.status()));
    }
    assert_eq!(outcomes, [None, Some(503), Some(503), None]);
    assert_eq!(sandbox.messages().len(), 2);
    assert_eq!(sandbox.request_count(), 4);
    let totals = sandbox.requests().totals();
    assert_eq!((totals.requests, totals.faulted), (5, 2));
    let faulted: Vec<bool> = sandbox
        .requests()
        .recent()
        .iter()
        .filter(|r| r.operation == "mail.send")
        .map(|r| r.fault == Some(Fault::Unavailable))
        .collect();
    assert_eq!(faulted, [false, true, true, false]);
}

/// Records are bounded by the retentions; the totals still count everything.
#[tokio::test]
async fn retention_bounds_records_and_totals_stay_exact() {
    let sandbox = Sandbox::builder()
        .request_retention(2)
        .message_retention(3)
        .start()
        .await
        .unwrap();
    let p = provider(&sandbox);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(p.send(&message()).await.unwrap().message_id);
    }
    sandbox.fail_next(1, Fault::ServerError);
    p.send(&message()).await.unwrap_err();

    assert_eq!(sandbox.request_count(), 6);
    let totals = sandbox.requests().totals();
    assert_eq!((totals.requests, totals.faulted), (6, 1));
    assert_eq!(totals.by_status[&202], 5);
    let recent = sandbox.requests().recent();
    assert_eq!(recent.len(), 2);
    assert_eq!(recent[1].status, 500);
    assert!(
        recent[1].header("authorization").is_none(),
        "no API key kept"
    );

    assert_eq!(sandbox.accepted_count(), 5);
    let kept: Vec<String> = sandbox
        .messages()
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    assert_eq!(kept, ids[2..]);
    assert!(sandbox.message(&ids[0]).is_none(), "forgotten");
    assert_eq!(sandbox.message(&ids[4]).unwrap().message_id, ids[4]);

    for _ in 0..4 {
        sandbox
            .emit_events(&ids[4], &[EventType::Delivered])
            .await
            .unwrap();
    }
    assert_eq!(sandbox.deliveries().len(), 3);
    assert_eq!(sandbox.delivery_count(), 4);

    sandbox.reset();
    assert_eq!(
        (
            sandbox.request_count(),
            sandbox.accepted_count(),
            sandbox.delivery_count()
        ),
        (0, 0, 0)
    );
    assert!(sandbox.messages().is_empty() && sandbox.requests().recent().is_empty());
}

/// Dropped after accepting: the message is recorded, the request logged with the 202 that was
/// never delivered, and the client cannot tell.
#[tokio::test]
async fn drop_after_accept_records_the_message_and_the_undelivered_answer() {
    let sandbox = Sandbox::start().await.unwrap();
    sandbox.inject(FaultRule::new(Fault::DropAfterAccept));
    let e = provider(&sandbox).send(&message()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    let msgs = sandbox.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].body["custom_args"]["order_id"], "42");
    let rec = sandbox.requests().recent().pop().unwrap();
    assert_eq!(rec.fault, Some(Fault::DropAfterAccept));
    assert_eq!(rec.status, 202);
    assert_eq!(
        rec.response_header("x-message-id"),
        Some(msgs[0].message_id.as_str())
    );
}

/// A hang answers nothing, then closes the connection: the client times out, nothing is sent.
#[tokio::test(start_paused = true)]
async fn hang_closes_after_the_hang_time() {
    let sandbox = Sandbox::builder()
        .hang_for(Duration::from_secs(5))
        .start()
        .await
        .unwrap();
    let p = sandbox
        .email()
        .with_policy(policy(0, Duration::from_secs(60)))
        .build()
        .unwrap();
    sandbox.fail_next(1, Fault::Hang);
    let e = p.send(&message()).await.unwrap_err();
    assert_ne!(
        e.kind(),
        ErrorKind::Timeout,
        "closed before the client gave up: {e}"
    );
    assert!(sandbox.messages().is_empty());
    assert_eq!(sandbox.request_count(), 1);
}

/// A 429 fault without a retry hint carries SendGrid's limit headers but no reset.
#[tokio::test]
async fn rate_limited_fault_without_hint_has_no_reset() {
    let sandbox = Sandbox::start().await.unwrap();
    sandbox.fail_next(1, Fault::RateLimited { retry_after: None });
    let resp = raw(&sandbox, None, b"{}".to_vec()).await;
    assert_eq!(resp.status.as_u16(), 429);
    assert_eq!(resp.header("x-ratelimit-remaining"), Some("0"));
    assert!(resp.header("x-ratelimit-reset").is_none());
    let body: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(body["errors"][0]["message"], "too many requests");
}

#[tokio::test]
async fn lists_accepted_messages_by_custom_arg() {
    let sandbox = Sandbox::start().await.unwrap();
    let p = provider(&sandbox);
    let with = |key: &str| {
        let mut m = message();
        m.custom_args.insert("job_key".to_owned(), key.to_owned());
        m
    };
    p.send(&with("evt_1/email")).await.unwrap();
    let sent = p.send(&with("evt_2/email")).await.unwrap();
    let c = p.client();
    let found = c
        .messages_with_custom_arg("job_key", "evt_2/email", 10)
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].msg_id.starts_with(&sent.message_id));
    assert!(
        c.messages_with_custom_arg("job_key", "evt_3/email", 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        c.messages_with_custom_arg("other", "evt_1/email", 10)
            .await
            .unwrap()
            .is_empty()
    );
    let wrong = Sandbox::start().await.unwrap();
    let e = wrong.email().with_api_key("SG.wrong").build().unwrap();
    assert_eq!(
        e.client()
            .messages_with_custom_arg("job_key", "x", 1)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Unauthenticated
    );
}

/// An observer sees every accepted message, also those the retention forgot.
#[tokio::test]
async fn on_accept_sees_every_message_whatever_the_retention() {
    let sandbox = Sandbox::builder()
        .message_retention(1)
        .start()
        .await
        .unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    sandbox.on_accept(move |m| s.lock().unwrap().push(m.message_id.clone()));
    let p = provider(&sandbox);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(p.send(&message()).await.unwrap().message_id);
    }
    sandbox.fail_next(1, Fault::ServerError);
    p.send(&message()).await.unwrap_err();
    assert_eq!(*seen.lock().unwrap(), ids, "refused sends are not seen");
    assert_eq!(sandbox.messages().len(), 1);
}
