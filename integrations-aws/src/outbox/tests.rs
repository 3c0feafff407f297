//! Unit tests of the store: argument checks, `Debug`, and the exact requests it sends (on
//! `wiremock`), including the rare paths moto cannot provoke (a lost answer, a conflicting
//! transaction).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use integrations_core::metrics::MetricsRegistry;
use integrations_core::resilience::{Backoff, Policy, RetryPolicy};
use integrations_core::{Error, ErrorKind};
use integrations_outbox::{JobId, LEASE_LOST, LeaseToken, NewJob, OutboxStore};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::DynamoSqsOutbox;
use super::item::{MAX_EVENT_ID_BYTES, MAX_JOBS};
use super::store::table_definition;
use crate::sqs::MAX_WAIT;
use crate::{AwsBuilder, AwsConfig, Credentials};

/// AWS's answer to a transaction whose first item's condition failed.
const CANCELLED_DUPLICATE: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","CancellationReasons":[{"Code":"ConditionalCheckFailed","Message":"The conditional request failed"},{"Code":"None"}],"Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [ConditionalCheckFailed, None]"}"#;
/// … and to one that collided with another transaction on one of its items.
const CANCELLED_CONFLICT: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","CancellationReasons":[{"Code":"None"},{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"}],"Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [None, TransactionConflict]"}"#;
const CONDITION_FAILED: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"}"#;
const INTERNAL_ERROR: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error"}"#;

fn config(uri: &str, retries: u32) -> AwsConfig {
    let policy = Policy::builder("aws-test")
        .retry(RetryPolicy::new(
            retries,
            Backoff::new(Duration::from_millis(1), Duration::from_millis(2), 2.0),
        ))
        .no_circuit_breaker()
        .attempt_timeout(Duration::from_secs(5))
        .metrics(&MetricsRegistry::new())
        .build();
    AwsBuilder::new()
        .with_region("eu-west-1")
        .with_credentials(Credentials::new(
            "AKIDOUTBOX",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYOUTBOXKEY",
        ))
        .with_base_url(uri)
        .with_policy(policy)
        .build()
        .unwrap()
}

fn closed() -> DynamoSqsOutbox {
    // Nothing listens on port 9: any request would be an Unavailable error.
    DynamoSqsOutbox::new(
        &config("http://127.0.0.1:9", 0),
        "outbox",
        "http://127.0.0.1:9/0/jobs",
    )
}

fn target(t: &str) -> wiremock::matchers::HeaderExactMatcher {
    header("x-amz-target", t)
}

fn aws_error(status: u16, body: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("content-type", "application/x-amz-json-1.0")
        .set_body_string(body)
}

fn body_of(r: &Request) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

#[test]
fn debug_shows_where_not_secrets() {
    let o = closed().with_receive_wait(Duration::from_millis(1500));
    let d = format!("{o:?}");
    assert!(d.contains("\"outbox\"") && d.contains("/0/jobs"), "{d}");
    assert!(!d.contains("OUTBOXKEY"), "{d}");
    assert_eq!(o.receive_wait, Duration::from_secs(1), "whole seconds");
    assert_eq!(
        o.with_receive_wait(Duration::from_secs(60)).receive_wait,
        MAX_WAIT
    );
}

#[test]
fn table_has_the_status_index() {
    let d = table_definition("t");
    let gsi = &d["GlobalSecondaryIndexes"][0];
    assert_eq!(gsi["IndexName"], DynamoSqsOutbox::INDEX);
    assert_eq!(gsi["KeySchema"][0]["AttributeName"], "status");
    assert_eq!(gsi["KeySchema"][1]["AttributeName"], "due");
    assert_eq!(gsi["Projection"]["ProjectionType"], "KEYS_ONLY");
    assert_eq!(d["KeySchema"][1]["AttributeName"], "sk");
}

#[tokio::test]
async fn invalid_input_is_refused_before_any_request() {
    let o = closed();
    let field = |e: Error| e.field().map(str::to_owned);
    let long = "e".repeat(MAX_EVENT_ID_BYTES + 1);
    let e = o.record_event(&long, vec![]).await.unwrap_err();
    assert_eq!(field(e).as_deref(), Some("event_id"));
    let many = (0..=MAX_JOBS)
        .map(|i| NewJob::new("k", Value::Null).with_key_suffix(i.to_string()))
        .collect();
    let e = o.record_event("evt", many).await.unwrap_err();
    assert_eq!(field(e).as_deref(), Some("jobs"));
    let e = o.claim("", 1, Duration::from_secs(1)).await.unwrap_err();
    assert_eq!(field(e).as_deref(), Some("worker_id"));
    assert!(
        o.claim("w", 0, Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty()
    );
    let e = o
        .complete(&JobId::new("nope"), &LeaseToken::random())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(o.job(&JobId::new("nope")).await.unwrap().is_none());
    let cfg = config("http://127.0.0.1:9", 0);
    let e = DynamoSqsOutbox::create_resources(&cfg, "t", "q.fifo", 5)
        .await
        .unwrap_err();
    assert_eq!(field(e).as_deref(), Some("queue_name"));
}

#[tokio::test]
async fn record_event_is_one_conditional_transaction_then_one_message_per_job() {
    let server = MockServer::start().await;
    let seen = Arc::new(Mutex::new(Vec::<Value>::new()));
    let s = seen.clone();
    Mock::given(method("POST"))
        .and(path("/"))
        .and(target("DynamoDB_20120810.TransactWriteItems"))
        .respond_with(move |r: &Request| {
            s.lock().unwrap().push(body_of(r));
            ResponseTemplate::new(200).set_body_string("{}")
        })
        .expect(1)
        .mount(&server)
        .await;
    let s = seen.clone();
    Mock::given(method("POST"))
        .and(target("AmazonSQS.SendMessageBatch"))
        .respond_with(move |r: &Request| {
            s.lock().unwrap().push(body_of(r));
            ResponseTemplate::new(200).set_body_json(json!({
                "Successful": [
                    { "Id": "j0", "MessageId": "m0", "MD5OfMessageBody": "x" },
                    { "Id": "j1", "MessageId": "m1", "MD5OfMessageBody": "x" },
                ],
            }))
        })
        .expect(1)
        .mount(&server)
        .await;
    let queue = format!("{}/000000000000/jobs", server.uri());
    let o = DynamoSqsOutbox::new(&config(&server.uri(), 0), "outbox", &queue);
    let jobs = vec![
        NewJob::new("email", json!({ "order_id": "42" })).with_max_attempts(3),
        NewJob::new("sns", json!(null)),
    ];
    let out = o.record_event("evt_1", jobs).await.unwrap();
    let ids: Vec<String> = match out {
        integrations_outbox::RecordOutcome::Recorded { job_ids } => {
            job_ids.iter().map(|i| i.as_str().to_owned()).collect()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(ids, ["evt_1#0", "evt_1#1"]);

    let seen = seen.lock().unwrap();
    let tx = &seen[0];
    let token = tx["ClientRequestToken"].as_str().unwrap();
    assert!(
        token.len() == 32 && token.chars().all(|c| c.is_ascii_hexdigit()),
        "{token}"
    );
    let items = tx["TransactItems"].as_array().unwrap();
    assert_eq!(items.len(), 3, "the event record and two jobs");
    for it in items {
        assert_eq!(it["Put"]["TableName"], "outbox");
        assert_eq!(
            it["Put"]["ConditionExpression"],
            "attribute_not_exists(#pk)"
        );
        assert_eq!(
            it["Put"]["ExpressionAttributeNames"],
            json!({ "#pk": "pk" })
        );
    }
    let event = &items[0]["Put"]["Item"];
    assert_eq!(event["pk"], json!({ "S": "EVT#evt_1" }));
    assert_eq!(event["sk"], json!({ "S": "EVENT" }));
    assert_eq!(event["status"], json!({ "S": "event" }));
    let email = &items[1]["Put"]["Item"];
    assert_eq!(email["sk"], json!({ "S": "JOB#00" }));
    assert_eq!(email["status"], json!({ "S": "pending" }));
    assert_eq!(email["attempts"], json!({ "N": "0" }));
    assert_eq!(email["max_attempts"], json!({ "N": "3" }));
    assert_eq!(email["idempotency_key"], json!({ "S": "evt_1/email" }));
    assert_eq!(email["payload"], json!({ "S": "{\"order_id\":\"42\"}" }));
    let due = email["due"]["S"].as_str().unwrap();
    assert!(due.ends_with("#evt_1#00") && due.len() == 16 + 9, "{due}");

    let batch = &seen[1];
    assert_eq!(batch["QueueUrl"], queue);
    assert_eq!(
        batch["Entries"],
        json!([
            { "Id": "j0", "MessageBody": "{\"job_id\":\"evt_1#0\"}" },
            { "Id": "j1", "MessageBody": "{\"job_id\":\"evt_1#1\"}" },
        ])
    );
}

#[tokio::test]
async fn a_cancelled_transaction_is_a_duplicate_or_a_retryable_collision() {
    let server = MockServer::start().await;
    Mock::given(target("DynamoDB_20120810.TransactWriteItems"))
        .respond_with(aws_error(400, CANCELLED_DUPLICATE))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(target("DynamoDB_20120810.TransactWriteItems"))
        .respond_with(aws_error(400, CANCELLED_CONFLICT))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(target("AmazonSQS.SendMessageBatch"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .expect(0)
        .mount(&server)
        .await;
    let o = DynamoSqsOutbox::new(&config(&server.uri(), 0), "outbox", server.uri());
    let job = || vec![NewJob::new("email", json!({}))];
    let out = o.record_event("evt_1", job()).await.unwrap();
    assert!(
        out.is_duplicate(),
        "a failed event condition is a duplicate"
    );
    let e = o.record_event("evt_2", job()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.is_retryable());
    assert_eq!(e.code(), Some("TransactionCanceledException"));
}

/// A `complete` whose write DynamoDB applied but whose answer was lost (a 500) is retried by
/// the policy; the retry's condition fails, and the store recognises its own `settle_id`.
#[tokio::test]
async fn a_retried_complete_recognises_its_own_write() {
    for (own, want_ok) in [(true, true), (false, false)] {
        let server = MockServer::start().await;
        let settle = Arc::new(Mutex::new(String::new()));
        let s = settle.clone();
        Mock::given(target("DynamoDB_20120810.UpdateItem"))
            .respond_with(move |r: &Request| {
                let b = body_of(r);
                assert_eq!(b["ConditionExpression"], "#st = :leased AND #tok = :tok");
                assert_eq!(
                    b["ExpressionAttributeValues"][":tok"],
                    json!({ "S": "tok-1" })
                );
                let id = b["ExpressionAttributeValues"][":set"]["S"]
                    .as_str()
                    .unwrap();
                let mut seen = s.lock().unwrap();
                if seen.is_empty() {
                    *seen = id.to_owned();
                    aws_error(500, INTERNAL_ERROR)
                } else {
                    assert_eq!(*seen, id, "a retry sends the same settle id");
                    aws_error(400, CONDITION_FAILED)
                }
            })
            .expect(2)
            .mount(&server)
            .await;
        let s = settle.clone();
        Mock::given(target("DynamoDB_20120810.GetItem"))
            .respond_with(move |_: &Request| {
                let id = if own {
                    s.lock().unwrap().clone()
                } else {
                    "other".to_owned()
                };
                ResponseTemplate::new(200).set_body_json(json!({ "Item": {
                    "pk": { "S": "EVT#evt_1" }, "sk": { "S": "JOB#00" },
                    "status": { "S": "done" }, "due": { "S": "x" },
                    "event_id": { "S": "evt_1" }, "kind": { "S": "email" },
                    "idempotency_key": { "S": "evt_1/email" }, "payload": { "S": "{}" },
                    "attempts": { "N": "1" }, "max_attempts": { "N": "8" },
                    "available_at": { "N": "0" }, "created_at": { "N": "0" },
                    "updated_at": { "N": "0" }, "settle_id": { "S": id },
                }}))
            })
            .expect(1)
            .mount(&server)
            .await;
        let o = DynamoSqsOutbox::new(&config(&server.uri(), 1), "outbox", server.uri());
        let r = o
            .complete(&JobId::new("evt_1#0"), &LeaseToken::new("tok-1"))
            .await;
        if want_ok {
            r.expect("its own earlier write");
        } else {
            assert_eq!(r.unwrap_err().code(), Some(LEASE_LOST));
        }
    }
}
