use integrations_aws::dynamodb::DynamoDb;
use integrations_aws::{AwsBuilder, Credentials};
use integrations_core::ErrorKind;
use serde_json::json;
use wiremock::matchers::{header, header_regex, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{auth_regex, config, config_with, json_error, two_retries};

#[tokio::test]
async fn conditional_check_failure_is_conflict() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(json_error(
            400,
            "dynamodb_conditional_check_failed.json",
            "REQ-CCF",
        ))
        .mount(&server)
        .await;
    let db = DynamoDb::new(&config(&server.uri()));
    let e = db
        .put_item(
            "t",
            serde_json::Map::new(),
            Some("attribute_not_exists(pk)"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert_eq!(e.code(), Some("ConditionalCheckFailedException"));
    assert_eq!(e.request_id(), Some("REQ-CCF"));
    assert_eq!(e.status(), Some(400));
    assert_eq!(e.provider_name(), Some("aws-dynamodb"));
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn throughput_exceeded_is_rate_limited_and_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(json_error(
            400,
            "dynamodb_throughput_exceeded.json",
            "REQ-THR",
        ))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(r#"{"Item":{"order_id":{"S":"o-1"}}}"#),
        )
        .expect(1)
        .mount(&server)
        .await;
    let db = DynamoDb::new(&config_with(&server.uri(), two_retries()));
    let key = json!({"order_id": {"S": "o-1"}})
        .as_object()
        .unwrap()
        .clone();
    let item = db.get_item("orders", key.clone()).await.unwrap().unwrap();
    assert_eq!(item["order_id"], json!({"S": "o-1"}));

    // Without retries the mapped error surfaces.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(json_error(
            400,
            "dynamodb_throughput_exceeded.json",
            "REQ-THR",
        ))
        .mount(&server)
        .await;
    let e = DynamoDb::new(&config(&server.uri()))
        .get_item("orders", key)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.code(), Some("ProvisionedThroughputExceededException"));
    assert_eq!(e.request_id(), Some("REQ-THR"));
    assert!(e.is_retryable() && e.is_failover_safe());
}

#[tokio::test]
async fn server_errors_are_unavailable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(json_error(500, "dynamodb_internal_error.json", "REQ-500"))
        .mount(&server)
        .await;
    let e = DynamoDb::new(&config(&server.uri()))
        .call("ListTables", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert_eq!(e.code(), Some("InternalServerError"));
    assert!(e.is_retryable());

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let e = DynamoDb::new(&config(&server.uri()))
        .call("ListTables", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.is_failover_safe(), "503: not processed");
}

#[tokio::test]
async fn session_token_is_sent_and_signed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("x-amz-security-token", "FQoGZXIvYXdzEXAMPLETOKEN"))
        .and(header_regex(
            "authorization",
            &auth_regex(
                "dynamodb",
                "content-type;host;x-amz-date;x-amz-security-token;x-amz-target",
            ),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"TableNames":[]}"#))
        .expect(1)
        .mount(&server)
        .await;
    let cfg = AwsBuilder::new()
        .with_region("us-east-1")
        .with_credentials(
            Credentials::new("AKIDEXAMPLE", "secret")
                .with_session_token("FQoGZXIvYXdzEXAMPLETOKEN"),
        )
        .with_base_url(server.uri())
        .build()
        .unwrap();
    let r = DynamoDb::new(&cfg)
        .call("ListTables", &json!({}))
        .await
        .unwrap();
    assert_eq!(r, json!({"TableNames": []}));
}
