//! Contract tests against `wiremock`: exact method, path, headers and JSON body for each message
//! shape, every error mapping on SendGrid's real error bodies, and the checks that must stop a
//! send before any request.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use integrations_core::ErrorKind;
use integrations_core::clock::{FixedClock, from_unix_seconds};
use integrations_core::provider::{
    EmailCapabilities, EmailMessage, EmailProvider, Mailbox, Personalization,
};
use integrations_core::resilience::{Backoff, Policy, RetryPolicy};
use integrations_sendgrid::template::{Template, TemplateRegistry};
use integrations_sendgrid::{SendGridBuilder, SendGridEmail};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "SG.contract-test-key.0123456789";
const NOW: i64 = 1_700_000_000;

fn policy(retries: u32) -> Policy {
    Policy::builder("sendgrid")
        .retry(RetryPolicy::new(
            retries,
            Backoff::new(Duration::from_millis(1), Duration::from_millis(2), 2.0),
        ))
        .no_circuit_breaker()
        .attempt_timeout(Duration::from_secs(10))
        .build()
}

fn builder(server: &MockServer) -> SendGridBuilder {
    SendGridBuilder::new()
        .with_api_key(KEY)
        .with_base_url(server.uri())
        .with_policy(policy(0))
        .with_clock(FixedClock::from_unix(NOW))
}

fn provider(server: &MockServer) -> SendGridEmail {
    builder(server).build().unwrap()
}

fn accepted(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(202).insert_header("X-Message-Id", id)
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

async fn expect_send(server: &MockServer, body: Value, id: &str) {
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("content-type", "application/json"))
        .and(body_json(body))
        .respond_with(accepted(id))
        .expect(1)
        .mount(server)
        .await;
}

fn simple() -> EmailMessage {
    EmailMessage::builder(Mailbox::named("orders@shop.example", "Shop"))
        .to(Mailbox::named("jane@example.com", "Jane Doe"))
        .subject("Order 42 confirmed")
        .html("<p>Thanks!</p>")
        .text("Thanks!")
        .build()
}

#[tokio::test]
async fn simple_message_exact_request_and_message_id() {
    let server = MockServer::start().await;
    expect_send(
        &server,
        json!({
            "personalizations": [{"to": [{"email": "jane@example.com", "name": "Jane Doe"}]}],
            "from": {"email": "orders@shop.example", "name": "Shop"},
            "subject": "Order 42 confirmed",
            "content": [
                {"type": "text/plain", "value": "Thanks!"},
                {"type": "text/html", "value": "<p>Thanks!</p>"}
            ]
        }),
        "msg-simple",
    )
    .await;
    let sent = provider(&server).send(&simple()).await.unwrap();
    assert_eq!(sent.message_id, "msg-simple");
    assert_eq!(sent.provider, "sendgrid");
    let reqs = server.received_requests().await.unwrap();
    let names: Vec<&str> = reqs[0].headers.keys().map(|k| k.as_str()).collect();
    assert!(!names.contains(&"on-behalf-of"), "{names:?}");
    let ua = reqs[0].headers.get("user-agent").unwrap().to_str().unwrap();
    assert!(ua.starts_with("integrations/"), "{ua}");
}

#[tokio::test]
async fn full_shape_exact_body() {
    let server = MockServer::start().await;
    let pdf = b"%PDF-1.4 receipt".to_vec();
    expect_send(
        &server,
        json!({
            "personalizations": [
                {
                    "to": [{"email": "jane@example.com", "name": "Jane"}, {"email": "joe@example.com"}],
                    "cc": [{"email": "accounts@example.com", "name": "Accounts"}],
                    "bcc": [{"email": "audit@shop.example"}],
                    "custom_args": {"recipient": "primary"}
                },
                {
                    "to": [{"email": "warehouse@shop.example", "name": "Warehouse"}],
                    "subject": "Pick list for order 42"
                }
            ],
            "from": {"email": "orders@shop.example", "name": "Shop"},
            "reply_to": {"email": "support@shop.example", "name": "Support"},
            "subject": "Order 42 confirmed",
            "content": [
                {"type": "text/plain", "value": "Thanks!"},
                {"type": "text/html", "value": "<p>Thanks!</p>"}
            ],
            "attachments": [{
                "content": STANDARD.encode(&pdf),
                "type": "application/pdf",
                "filename": "receipt-42.pdf",
                "disposition": "attachment"
            }],
            "categories": ["order_confirmation", "transactional"],
            "custom_args": {"order_id": "42", "tenant": "eu-1"},
            "send_at": NOW + 3600
        }),
        "msg-full",
    )
    .await;
    let mut first = Personalization::to(Mailbox::named("jane@example.com", "Jane"))
        .add_to("joe@example.com")
        .cc(Mailbox::named("accounts@example.com", "Accounts"))
        .bcc("audit@shop.example");
    first
        .custom_args
        .insert("recipient".into(), "primary".into());
    let msg = EmailMessage::builder(Mailbox::named("orders@shop.example", "Shop"))
        .personalization(first)
        .personalization(
            Personalization::to(Mailbox::named("warehouse@shop.example", "Warehouse"))
                .subject("Pick list for order 42"),
        )
        .reply_to(Mailbox::named("support@shop.example", "Support"))
        .subject("Order 42 confirmed")
        .text("Thanks!")
        .html("<p>Thanks!</p>")
        .category("order_confirmation")
        .category("transactional")
        .custom_arg("order_id", "42")
        .custom_arg("tenant", "eu-1")
        .attachment("receipt-42.pdf", "application/pdf", pdf.clone())
        .send_at(from_unix_seconds(NOW + 3600))
        .build();
    assert_eq!(
        provider(&server).send(&msg).await.unwrap().message_id,
        "msg-full"
    );
}

#[tokio::test]
async fn dynamic_template_exact_body() {
    let server = MockServer::start().await;
    expect_send(
        &server,
        json!({
            "personalizations": [
                {"to": [{"email": "jane@example.com"}],
                 "dynamic_template_data": {"customer_name": "Jane", "order_id": "42", "items": [{"name": "A", "quantity": 2}]}},
                {"to": [{"email": "joe@example.com"}],
                 "dynamic_template_data": {"customer_name": "Joe", "order_id": "42", "items": [{"name": "A", "quantity": 2}]}}
            ],
            "from": {"email": "orders@shop.example"},
            "template_id": "d-0123456789abcdef",
            "custom_args": {"order_id": "42"}
        }),
        "msg-template",
    )
    .await;
    let msg = EmailMessage::builder("orders@shop.example")
        .personalization(Personalization::to("jane@example.com").variable("customer_name", "Jane"))
        .personalization(Personalization::to("joe@example.com").variable("customer_name", "Joe"))
        .template("d-0123456789abcdef")
        .variable("order_id", "42")
        .variable("customer_name", "fallback")
        .variable("items", json!([{"name": "A", "quantity": 2}]))
        .custom_arg("order_id", "42")
        .build();
    provider(&server).send(&msg).await.unwrap();
}

#[tokio::test]
async fn on_behalf_of_and_eu_style_base_url_path() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .and(header("on-behalf-of", "subuser-eu"))
        .respond_with(accepted("msg-sub"))
        .expect(1)
        .mount(&server)
        .await;
    let p = builder(&server)
        .with_on_behalf_of("subuser-eu")
        .build()
        .unwrap();
    assert_eq!(p.send(&simple()).await.unwrap().message_id, "msg-sub");
}

async fn error_for(status: u16, body: &str, headers: &[(&str, &str)]) -> integrations_core::Error {
    let server = MockServer::start().await;
    let mut resp = ResponseTemplate::new(status).set_body_raw(body.to_owned(), "application/json");
    for (k, v) in headers {
        resp = resp.insert_header(*k, *v);
    }
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(resp)
        .expect(1)
        .mount(&server)
        .await;
    provider(&server).send(&simple()).await.unwrap_err()
}

#[tokio::test]
async fn field_errors_map_to_invalid_input_naming_sendgrids_field() {
    let e = error_for(400, &fixture("400_to_required.json"), &[]).await;
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(e.field(), Some("personalizations.0.to"));
    assert!(e.message().contains("The to array is required"), "{e}");
    assert_eq!(e.status(), Some(400));
    assert_eq!(e.provider_name(), Some("sendgrid"));
    assert!(!e.is_retryable() && !e.is_failover_safe());

    let e = error_for(400, &fixture("400_invalid_type.json"), &[]).await;
    assert_eq!(e.field(), Some("from"));
    assert!(
        e.message()
            .contains("personalizations.0.to.0: Invalid type"),
        "{e}"
    );

    let e = error_for(400, &fixture("400_to_email_required.json"), &[]).await;
    assert_eq!(e.field(), Some("personalizations.0.to.0.email"));

    let e = error_for(400, &fixture("400_personalizations_required.json"), &[]).await;
    assert_eq!(e.field(), Some("personalizations"));
}

#[tokio::test]
async fn auth_errors() {
    for f in ["401_invalid_grant.json", "401_authorization_required.json"] {
        let e = error_for(401, &fixture(f), &[]).await;
        assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{f}");
        assert!(!e.is_retryable());
    }
    let e = error_for(403, &fixture("403_sender_identity.json"), &[]).await;
    assert_eq!(e.kind(), ErrorKind::Forbidden);
    assert!(
        e.message()
            .starts_with("from: The from address does not match a verified Sender Identity"),
        "{e}"
    );
}

#[tokio::test]
async fn payload_too_large() {
    let e = error_for(413, &fixture("413_content_too_large.json"), &[]).await;
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(e.field(), Some("body"));
    assert!(e.message().contains("content too large"), "{e}");
}

#[tokio::test]
async fn rate_limited_with_reset_epoch() {
    let e = error_for(
        429,
        &fixture("429_too_many_requests.json"),
        &[
            ("X-RateLimit-Limit", "600"),
            ("X-RateLimit-Remaining", "0"),
            ("X-RateLimit-Reset", &(NOW + 17).to_string()),
        ],
    )
    .await;
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(17)));
    assert!(e.is_retryable() && e.is_failover_safe());
}

#[tokio::test]
async fn server_errors_are_unavailable() {
    let e = error_for(500, &fixture("500_internal_server_error.json"), &[]).await;
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.is_retryable());
    assert!(!e.is_failover_safe(), "a 500 may follow acceptance");
    assert_eq!(e.message(), "internal server error");
    let e = error_for(503, "", &[]).await;
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.is_failover_safe());
}

#[tokio::test]
async fn retries_a_500_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_raw(
            fixture("500_internal_server_error.json"),
            "application/json",
        ))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(accepted("msg-after-retry"))
        .expect(1)
        .mount(&server)
        .await;
    let p = builder(&server).with_policy(policy(2)).build().unwrap();
    assert_eq!(
        p.send(&simple()).await.unwrap().message_id,
        "msg-after-retry"
    );
}

#[tokio::test]
async fn accepted_without_message_id_is_a_provider_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&server)
        .await;
    let e = provider(&server).send(&simple()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Provider);
}

/// Messages SendGrid would refuse never reach it; each error names the field.
#[tokio::test]
async fn invalid_messages_make_no_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(accepted("never"))
        .expect(0)
        .mount(&server)
        .await;
    let p = provider(&server);
    let base = || {
        EmailMessage::builder("orders@shop.example")
            .to("jane@example.com")
            .subject("s")
            .text("t")
    };
    let too_many: Vec<Personalization> = (0..1001)
        .map(|i| Personalization::to(format!("u{i}@example.com").as_str()))
        .collect();
    let mut many = base();
    for pz in too_many {
        many = many.personalization(pz);
    }
    let cases: Vec<(EmailMessage, &str)> = vec![
        (
            EmailMessage::builder("orders@shop.example")
                .subject("s")
                .text("t")
                .build(),
            "personalizations",
        ),
        (
            base().cc("not-an-address").build(),
            "personalizations[0].cc[0].email",
        ),
        (
            EmailMessage::builder("orders@shop.example")
                .to("a@example.com")
                .subject("s")
                .build(),
            "content",
        ),
        (many.build(), "personalizations"),
        (
            base()
                .send_at(from_unix_seconds(NOW + 72 * 3600 + 1))
                .build(),
            "send_at",
        ),
        (
            (0..11)
                .fold(base(), |b, i| b.category(format!("c{i}")))
                .build(),
            "categories",
        ),
        (base().category("x".repeat(256)).build(), "categories[0]"),
        (
            base().custom_arg("blob", "x".repeat(10_001)).build(),
            "custom_args",
        ),
        (
            base()
                .attachment("empty.txt", "text/plain", Vec::new())
                .build(),
            "attachments[0].content",
        ),
        (
            EmailMessage::builder("orders@shop.example")
                .to("a@example.com")
                .template("not-dynamic")
                .build(),
            "template_id",
        ),
    ];
    for (msg, field) in cases {
        let e = p.send(&msg).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{field}: {e}");
        assert_eq!(e.field(), Some(field), "{e}");
    }
}

/// A template declaring three required variables, as an application would register it.
fn payment_received() -> Template {
    Template::builder("payment_received")
        .subject("Payment received for order #{{order_id}}")
        .text("Hi {{customer_name}}, we received {{amount}} for order #{{order_id}}.")
        .required(["customer_name", "order_id", "amount"])
        .build()
        .unwrap()
}

#[tokio::test]
async fn missing_template_variable_fails_before_any_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(accepted("never"))
        .expect(0)
        .mount(&server)
        .await;
    let mut reg = TemplateRegistry::new();
    reg.insert(payment_received());
    reg.set_hosted_id("payment_received", "d-payment-received")
        .unwrap();
    let p = builder(&server)
        .with_templates(reg.clone())
        .build()
        .unwrap();
    let msg = EmailMessage::builder("orders@shop.example")
        .to("jane@example.com")
        .template("d-payment-received")
        .variable("customer_name", "Jane")
        .variable("order_id", "42")
        .build();
    let e = p.send(&msg).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(e.field(), Some("amount"));

    // The registry refuses the same before a message even exists.
    let vars = json!({"customer_name": "Jane"});
    let e = reg
        .message(
            "payment_received",
            "orders@shop.example",
            "jane@example.com",
            vars.as_object().unwrap(),
            EmailCapabilities::all(),
        )
        .unwrap_err();
    assert_eq!(e.field(), Some("amount"));

    let custom = Template::builder("custom")
        .subject("{{a}}")
        .text("{{b}}")
        .required(["a", "b"])
        .build()
        .unwrap();
    let e = custom
        .render(json!({"a": 1}).as_object().unwrap())
        .unwrap_err();
    assert_eq!(e.field(), Some("b"));
}

#[test]
fn debug_never_shows_the_key() {
    let p = SendGridBuilder::new().with_api_key(KEY).build().unwrap();
    for dbg in [
        format!("{p:?}"),
        format!("{:?}", p.client()),
        format!("{:?}", SendGridBuilder::new().with_api_key(KEY)),
    ] {
        assert!(
            !dbg.contains(KEY) && !dbg.contains("contract-test-key"),
            "{dbg}"
        );
    }
}

#[tokio::test]
async fn custom_arg_lookup_is_an_encoded_email_activity_query() {
    use wiremock::matchers::query_param;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/messages"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(query_param("limit", "5"))
        .and(query_param(
            "query",
            "unique_args['job_key']=\"evt_1/email\"",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messages": [{
                "from_email": "shop@example.com",
                "msg_id": "abc123.filter0001.16648.5515E0B88.0",
                "subject": "Your order",
                "to_email": "ada@example.com",
                "status": "delivered",
                "opens_count": 0,
                "clicks_count": 0,
                "last_event_time": "2026-12-02T08:00:00Z",
            }],
        })))
        .expect(1)
        .mount(&server)
        .await;
    let p = provider(&server);
    let found = p
        .client()
        .messages_with_custom_arg("job_key", "evt_1/email", 5)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].msg_id, "abc123.filter0001.16648.5515E0B88.0");
    assert_eq!(found[0].status, "delivered");
    assert_eq!(found[0].to_email, "ada@example.com");
    // The raw query string is percent-encoded.
    let reqs = server.received_requests().await.unwrap();
    assert!(
        reqs[0]
            .url
            .query()
            .unwrap()
            .contains("query=unique_args%5B%27job_key%27%5D%3D%22evt_1%2Femail%22"),
        "{}",
        reqs[0].url
    );
}

#[tokio::test]
async fn custom_arg_lookup_finds_nothing_refuses_bad_input_and_maps_errors() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "messages": [] })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v3/messages"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "errors": [{ "field": null, "message": "access forbidden" }],
        })))
        .mount(&server)
        .await;
    let p = provider(&server);
    let c = p.client();
    assert!(
        c.messages_with_custom_arg("job_key", "evt_2/email", 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        c.messages_with_custom_arg("job_key", "x", 10)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Forbidden,
        "no Email Activity access"
    );
    for (name, value, limit, field) in [
        ("", "v", 10, "name"),
        ("a'b", "v", 10, "name"),
        ("k", "say \"hi\"", 10, "value"),
        ("k", "v", 0, "limit"),
        ("k", "v", 1001, "limit"),
    ] {
        let e = c
            .messages_with_custom_arg(name, value, limit)
            .await
            .unwrap_err();
        assert_eq!(e.field(), Some(field), "{name} {value} {limit}");
    }
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        2,
        "refused locally"
    );
}
