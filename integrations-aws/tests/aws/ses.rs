use integrations_aws::ses::SesEmail;
use integrations_core::{EmailMessage, EmailProvider, ErrorKind, Mailbox};
use integrations_testkit::{EmailSuiteConfig, email_provider_suite};
use serde_json::json;
use wiremock::matchers::{body_json, header, header_regex, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{auth_regex, config, fixture};

fn accepted() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("x-amzn-RequestId", "ses-req-1")
        .set_body_json(json!({"MessageId": "0100018c-ses-message-id"}))
}

#[tokio::test]
async fn send_email_is_a_signed_rest_json_post() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/email/outbound-emails"))
        .and(header("content-type", "application/json"))
        .and(header_regex("authorization", &auth_regex("ses", "content-type;host;x-amz-date")))
        .and(body_json(json!({
            "FromEmailAddress": "\"Shop\" <shop@example.com>",
            "Destination": {"ToAddresses": ["jane@example.com"]},
            "Content": {"Template": {"TemplateName": "order-confirmation", "TemplateData": "{\"order\":42}"}},
        })))
        .respond_with(accepted())
        .expect(1)
        .mount(&server)
        .await;
    let m = EmailMessage::builder(Mailbox::named("shop@example.com", "Shop"))
        .to("jane@example.com")
        .template("order-confirmation")
        .variable("order", 42)
        .build();
    let sent = SesEmail::new(&config(&server.uri()))
        .send(&m)
        .await
        .unwrap();
    assert_eq!(sent.message_id, "0100018c-ses-message-id");
    assert_eq!(sent.provider, "ses");
}

#[tokio::test]
async fn passes_the_email_suite_with_templates_on_the_wire() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/email/outbound-emails"))
        .respond_with(accepted())
        .mount(&server)
        .await;
    let cfg = EmailSuiteConfig::new("shop@example.com", "jane@example.com")
        .with_template("order-confirmation");
    email_provider_suite(&SesEmail::new(&config(&server.uri())), &cfg).await;
    // Only valid messages reached SES: the text message and the template message.
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn too_many_requests_is_rate_limited_and_failover_safe() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("x-amzn-ErrorType", "TooManyRequestsException")
                .insert_header("x-amzn-RequestId", "ses-429")
                .set_body_string(fixture("ses_too_many_requests.json")),
        )
        .mount(&server)
        .await;
    let m = EmailMessage::builder("shop@example.com")
        .to("a@example.com")
        .subject("s")
        .text("t")
        .build();
    let e = SesEmail::new(&config(&server.uri()))
        .send(&m)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.code(), Some("TooManyRequestsException"));
    assert_eq!(e.message(), "Maximum sending rate exceeded.");
    assert_eq!(e.request_id(), Some("ses-429"));
    assert!(
        e.is_failover_safe(),
        "core's failover may move on to the next provider"
    );
}
