use integrations_aws::sns::SnsNotifier;
use integrations_core::{ErrorKind, Notification, Notifier};
use wiremock::matchers::{body_string, header, header_regex, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{auth_regex, config, fixture, xml_error};

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:orders.fifo";

#[tokio::test]
async fn publish_is_a_form_encoded_query_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/"))
        .and(header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ))
        .and(header_regex(
            "authorization",
            &auth_regex("sns", "content-type;host;x-amz-date"),
        ))
        .and(body_string(
            "Action=Publish&Version=2010-03-31\
             &TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A123456789012%3Aorders.fifo\
             &Message=order+42+paid%3A+19.99+USD+%26+more&Subject=Order+paid\
             &MessageAttributes.entry.1.Name=event&MessageAttributes.entry.1.Value.DataType=String\
             &MessageAttributes.entry.1.Value.StringValue=order.paid\
             &MessageGroupId=order-42&MessageDeduplicationId=order-42%2Fpaid",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_string(fixture("sns_publish.xml")))
        .expect(1)
        .mount(&server)
        .await;
    let n = Notification::new("order 42 paid: 19.99 USD & more")
        .subject("Order paid")
        .attribute("event", "order.paid")
        .group_id("order-42")
        .dedup_id("order-42/paid");
    let p = SnsNotifier::new(&config(&server.uri()), TOPIC)
        .publish(&n)
        .await
        .unwrap();
    assert_eq!(p.message_id, "567910cd-659e-55d4-8ccb-5aaf14679dc0");
    assert_eq!(p.provider, "sns");
}

#[tokio::test]
async fn throttling_is_rate_limited_with_the_request_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(xml_error(400, "sns_throttling.xml"))
        .mount(&server)
        .await;
    let n = Notification::new("x").group_id("g");
    let e = SnsNotifier::new(&config(&server.uri()), TOPIC)
        .publish(&n)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert_eq!(e.code(), Some("Throttling"));
    assert_eq!(e.request_id(), Some("9dd01905-5012-5f99-8663-4b3ecd0dfaef"));
    assert_eq!(e.provider_name(), Some("aws-sns"));
}

#[tokio::test]
async fn signature_mismatch_is_unauthenticated() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(xml_error(403, "sns_signature_does_not_match.xml"))
        .mount(&server)
        .await;
    let e = SnsNotifier::new(&config(&server.uri()), TOPIC)
        .publish(&Notification::new("x").group_id("g"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    assert_eq!(e.request_id(), Some("4d8a6f1e-0c4b-5b8e-9b0e-7d2f3a1c9e55"));
    assert!(!e.is_retryable());
}
