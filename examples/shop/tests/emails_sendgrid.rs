//! The shop's order emails sent through SendGrid (against `wiremock`): hosted templates get their
//! data, locally rendered ones escape every user-supplied value on the wire.

use std::time::Duration;

use integrations_core::clock::FixedClock;
use integrations_core::provider::{EmailCapabilities, EmailProvider};
use integrations_core::resilience::{Backoff, Policy, RetryPolicy};
use integrations_core::{Currency, Money};
use integrations_sendgrid::{SendGridBuilder, SendGridEmail};
use integrations_shop::{LineItem, OrderEmail, OrderTemplate, order_templates};
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

#[tokio::test]
async fn hosted_order_template_is_sent_with_its_data() {
    let server = MockServer::start().await;
    expect_send(
        &server,
        json!({
            "personalizations": [{"to": [{"email": "jane@example.com"}],
                "dynamic_template_data": {"customer_name": "Jane <3", "order_id": "42", "amount": "59.98 USD"}}],
            "from": {"email": "orders@shop.example"},
            "template_id": "d-payment-received",
            "categories": ["payment_received"],
            "custom_args": {"order_id": "42"}
        }),
        "msg-hosted",
    )
    .await;
    let mut reg = order_templates();
    reg.set_hosted_id(OrderTemplate::PaymentReceived, "d-payment-received")
        .unwrap();
    let p = builder(&server)
        .with_templates(reg.clone())
        .build()
        .unwrap();
    let email = OrderEmail::PaymentReceived {
        customer_name: "Jane <3".into(),
        order_id: "42".into(),
        amount: Money::from_minor(5998, Currency::USD),
    };
    let msg = email
        .message(
            &reg,
            "orders@shop.example",
            "jane@example.com",
            p.capabilities(),
        )
        .unwrap()
        .build();
    p.send(&msg).await.unwrap();
}

/// Locally rendered order emails escape every user-supplied value in the HTML part sent.
#[tokio::test]
async fn locally_rendered_templates_escape_html_on_the_wire() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(accepted("msg-local"))
        .expect(1)
        .mount(&server)
        .await;
    let email = OrderEmail::OrderConfirmation {
        customer_name: "<script>steal()</script>".into(),
        order_id: "42".into(),
        items: vec![LineItem::new(
            "mug",
            "Mug \"<b>\"",
            1,
            Money::from_minor(999, Currency::USD),
        )],
        total: Money::from_minor(999, Currency::USD),
    };
    let msg = email
        .message(
            &order_templates(),
            "orders@shop.example",
            "jane@example.com",
            EmailCapabilities::default(),
        )
        .unwrap()
        .build();
    provider(&server).send(&msg).await.unwrap();
    let reqs = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    let html = body["content"][1]["value"].as_str().unwrap();
    assert_eq!(body["content"][1]["type"], "text/html");
    assert!(
        html.contains("Hi &lt;script&gt;steal()&lt;/script&gt;,"),
        "{html}"
    );
    assert!(
        html.contains("<td>Mug &quot;&lt;b&gt;&quot;</td>"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
    assert_eq!(body["content"][0]["type"], "text/plain");
    assert_eq!(body["subject"], "Order #42 confirmed");
    assert_eq!(body["custom_args"]["order_id"], "42");
}
