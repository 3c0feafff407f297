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

/// A table of one item behind a flaky network: every `PutItem` is applied when its
/// `attribute_not_exists` condition holds, but the first answer is lost (a 500 after the write);
/// a failed condition answers `ConditionalCheckFailedException` with the stored item when the
/// request asked for `ReturnValuesOnConditionCheckFailure=ALL_OLD`, as DynamoDB does.
struct LossyTable {
    stored: std::sync::Mutex<Option<serde_json::Value>>,
    calls: std::sync::atomic::AtomicUsize,
}

impl wiremock::Respond for LossyTable {
    fn respond(&self, req: &wiremock::Request) -> ResponseTemplate {
        let call = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        let mut stored = self.stored.lock().unwrap();
        if stored.is_some() {
            let mut err = json!({
                "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
                "message": "The conditional request failed",
            });
            if body["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD" {
                err["Item"] = stored.clone().unwrap();
            }
            return ResponseTemplate::new(400)
                .insert_header("content-type", "application/x-amz-json-1.0")
                .set_body_json(err);
        }
        *stored = Some(body["Item"].clone());
        if call == 0 {
            return json_error(500, "dynamodb_internal_error.json", "REQ-LOST");
        }
        ResponseTemplate::new(200).set_body_string("{}")
    }
}

#[tokio::test]
async fn a_dedup_insert_whose_answer_was_lost_is_new_on_the_retry() {
    use integrations_aws::dynamodb::DynamoDedupStore;
    use integrations_core::webhook::{DedupOutcome, DedupStore};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(LossyTable {
            stored: std::sync::Mutex::new(None),
            calls: 0.into(),
        })
        .expect(3)
        .mount(&server)
        .await;
    let store = DynamoDedupStore::new(&config_with(&server.uri(), two_retries()), "seen");
    let ttl = std::time::Duration::from_secs(60);
    assert_eq!(
        store.insert_if_absent("evt_1", ttl).await.unwrap(),
        DedupOutcome::New,
        "the first delivery: applied on the first attempt, its answer lost"
    );
    assert_eq!(
        store.insert_if_absent("evt_1", ttl).await.unwrap(),
        DedupOutcome::Duplicate,
        "a redelivery (another call, another token)"
    );
}

#[tokio::test]
async fn conditional_write_tells_its_own_write_from_another() {
    use integrations_aws::dynamodb::{
        ConditionalWrite, WRITE_TOKEN_ATTRIBUTE, WriteToken, condition_failed_item,
    };
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(LossyTable {
            stored: std::sync::Mutex::new(None),
            calls: 0.into(),
        })
        .mount(&server)
        .await;
    let db = DynamoDb::new(&config(&server.uri()));
    let mine = WriteToken::random();
    let put = |t: &WriteToken| {
        json!({
            "TableName": "t",
            "Item": { "pk": {"S": "k"}, WRITE_TOKEN_ATTRIBUTE: t.attribute_value() },
            "ConditionExpression": "attribute_not_exists(pk)",
        })
    };
    // No retries: the first attempt's error is the caller's.
    assert_eq!(
        db.conditional_write("PutItem", &put(&mine), &mine)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Unavailable
    );
    // The same call again (what the policy's retry sends): its own write.
    assert_eq!(
        db.conditional_write("PutItem", &put(&mine), &mine)
            .await
            .unwrap(),
        ConditionalWrite::Applied { attributes: None }
    );
    // Another call: the condition failed, with the item it failed on.
    let other = WriteToken::random();
    let ConditionalWrite::ConditionFailed(Some(old)) = db
        .conditional_write("PutItem", &put(&other), &other)
        .await
        .unwrap()
    else {
        panic!("another call's write is a failed condition");
    };
    assert!(mine.wrote(&old) && !other.wrote(&old));
    // A plain call keeps the old item on the error.
    let e = db
        .call("PutItem", &{
            let mut b = put(&other);
            b["ReturnValuesOnConditionCheckFailure"] = json!("ALL_OLD");
            b
        })
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(condition_failed_item(&e).is_some_and(|i| mine.wrote(i)));
}
