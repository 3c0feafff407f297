use integrations_aws::sqs::{SendOptions, SqsClient};
use integrations_core::ErrorKind;
use serde_json::json;
use wiremock::matchers::{body_json, header, header_regex, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{auth_regex, config, fixture};

const QUEUE: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/jobs";

#[tokio::test]
async fn send_message_is_a_signed_json_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/"))
        .and(header("x-amz-target", "AmazonSQS.SendMessage"))
        .and(header("content-type", "application/x-amz-json-1.0"))
        .and(header_regex(
            "authorization",
            &auth_regex("sqs", "content-type;host;x-amz-date;x-amz-target"),
        ))
        .and(body_json(json!({
            "QueueUrl": QUEUE,
            "MessageBody": "{\"order\":42}",
            "DelaySeconds": 10,
            "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "order.paid"}},
        })))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"MessageId": "m-1", "MD5OfMessageBody": "x"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let opts = SendOptions::new()
        .attribute("kind", "order.paid")
        .delay(std::time::Duration::from_secs(10));
    let id = SqsClient::new(&config(&server.uri()))
        .send(QUEUE, "{\"order\":42}", &opts)
        .await
        .unwrap();
    assert_eq!(id, "m-1");
}

#[tokio::test]
async fn missing_queue_and_throttling_are_mapped() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("x-amz-target", "AmazonSQS.DeleteMessage"))
        .respond_with(
            ResponseTemplate::new(400)
                .insert_header(
                    "x-amzn-query-error",
                    "AWS.SimpleQueueService.NonExistentQueue;Sender",
                )
                .insert_header("x-amzn-RequestId", "sqs-404")
                .set_body_string(fixture("sqs_queue_does_not_exist.json")),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(header("x-amz-target", "AmazonSQS.ReceiveMessage"))
        .respond_with(
            ResponseTemplate::new(400)
                .insert_header("retry-after", "1")
                .set_body_json(json!({"__type": "com.amazonaws.sqs#RequestThrottled", "message": "Request is throttled."})),
        )
        .mount(&server)
        .await;
    let sqs = SqsClient::new(&config(&server.uri()));
    let e = sqs.delete(QUEUE, "rh").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.code(), Some("QueueDoesNotExist"));
    assert_eq!(e.request_id(), Some("sqs-404"));
    let e = sqs.receive(QUEUE, &Default::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(1)));
}
