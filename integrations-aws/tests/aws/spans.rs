//! The attempt spans of AWS calls: `rpc.*` and HTTP fields, and no credential in any field.

use integrations_aws::sns::SnsClient;
use integrations_aws::sqs::{SendOptions, SqsClient};
use integrations_core::Notification;
use integrations_testkit::TracingCapture;
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::config;

/// The secret key of `support::config`'s credentials.
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

#[tokio::test]
async fn aws_attempt_spans_name_the_rpc_and_never_carry_the_credentials() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/"))
        .and(header("x-amz-target", "AmazonSQS.SendMessage"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"MessageId": "m-1"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            "<PublishResponse><PublishResult><MessageId>p-1</MessageId></PublishResult></PublishResponse>",
        ))
        .mount(&server)
        .await;
    let capture = TracingCapture::start();
    let cfg = config(&server.uri());
    SqsClient::new(&cfg)
        .send(
            "https://sqs.us-east-1.amazonaws.com/123456789012/jobs",
            "{}",
            &SendOptions::new(),
        )
        .await
        .unwrap();
    SnsClient::new(&cfg)
        .publish(
            "arn:aws:sns:us-east-1:123456789012:orders",
            &Notification::new("paid"),
        )
        .await
        .unwrap();

    let spans = capture.spans();
    let attempts: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "integration.attempt")
        .collect();
    assert_eq!(attempts.len(), 2, "{spans:#?}");
    for (a, (service, method)) in attempts
        .iter()
        .zip([("SQS", "SendMessage"), ("SNS", "Publish")])
    {
        assert_eq!(a.field("rpc.system"), Some("aws-api"));
        assert_eq!(a.field("rpc.service"), Some(service));
        assert_eq!(a.field("rpc.method"), Some(method));
        assert_eq!(a.field("http.request.method"), Some("POST"));
        assert_eq!(a.field("server.address"), Some("127.0.0.1"));
        assert_eq!(a.field("http.response.status_code"), Some("200"));
    }
    let mut everything: Vec<String> = spans
        .iter()
        .flat_map(|s| s.fields.iter().map(|(k, v)| format!("{}: {k}={v}", s.name)))
        .collect();
    everything.extend(capture.lines());
    for field in &everything {
        for secret in [SECRET, "AWS4-HMAC-SHA256", "Signature="] {
            assert!(!field.contains(secret), "`{secret}` leaked into {field}");
        }
    }
}
