//! The order table's wire format, against a mock DynamoDB endpoint.

use std::time::Duration;

use integrations_aws::{AwsBuilder, AwsConfig, Credentials};
use integrations_core::metrics::MetricsRegistry;
use integrations_core::resilience::{Policy, RetryPolicy};
use integrations_core::{Currency, Money};
use integrations_shop::{DynamoOrderStore, Order};
use serde_json::json;
use wiremock::matchers::{header, header_exists, header_regex, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// `AKIDEXAMPLE` credentials, region `us-east-1`, DynamoDB at `uri`, no retries.
fn config(uri: &str) -> AwsConfig {
    let policy = Policy::builder("aws-test")
        .retry(RetryPolicy::none())
        .no_circuit_breaker()
        .attempt_timeout(Duration::from_secs(5))
        .metrics(&MetricsRegistry::new())
        .build();
    AwsBuilder::new()
        .with_region("us-east-1")
        .with_credentials(Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        ))
        .with_base_url(uri)
        .with_policy(policy)
        .build()
        .unwrap()
}

/// The `Authorization` header a SigV4-signed request to `service` must carry.
fn auth_regex(service: &str, signed_headers: &str) -> String {
    format!(
        r"^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/\d{{8}}/us-east-1/{service}/aws4_request, SignedHeaders={signed_headers}, Signature=[0-9a-f]{{64}}$"
    )
}

#[tokio::test]
async fn put_order_is_a_signed_conditional_put_item() {
    let server = MockServer::start().await;
    let order = Order::new("o-1", "c-1", Money::from_minor(1999, Currency::USD))
        .with_created_at_ms(1_700_000_000_000);
    Mock::given(method("POST"))
        .and(path("/"))
        .and(header("x-amz-target", "DynamoDB_20120810.PutItem"))
        .and(header("content-type", "application/x-amz-json-1.0"))
        .and(header_exists("x-amz-date"))
        .and(header_regex(
            "authorization",
            &auth_regex("dynamodb", "content-type;host;x-amz-date;x-amz-target"),
        ))
        .and(body_with_write_token(json!({
            "TableName": "orders",
            "ConditionExpression": "attribute_not_exists(order_id)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            "Item": {
                "order_id": {"S": "o-1"},
                "customer_id": {"S": "c-1"},
                "status": {"S": "pending"},
                "total": {"M": {"minor": {"N": "1999"}, "currency": {"S": "USD"}}},
                "items": {"L": []},
                "created_at_ms": {"N": "1700000000000"},
                "updated_at_ms": {"N": "1700000000000"},
                "metadata": {"M": {}},
            },
        })))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .expect(1)
        .mount(&server)
        .await;
    DynamoOrderStore::new(&config(&server.uri()), "orders")
        .put(&order)
        .await
        .unwrap();
}

/// Matches a conditional write's body: equal to `want` once the call's random write token
/// (`Item.write_token`, a 32-digit hex string) is taken out.
fn body_with_write_token(want: serde_json::Value) -> impl wiremock::Match {
    move |req: &wiremock::Request| {
        let Ok(mut body) = serde_json::from_slice::<serde_json::Value>(&req.body) else {
            return false;
        };
        let token = body["Item"]
            .as_object_mut()
            .and_then(|i| i.remove("write_token"));
        let token_ok = token
            .as_ref()
            .and_then(|t| t["S"].as_str())
            .is_some_and(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()));
        token_ok && body == want
    }
}

/// One order behind a network that loses the answer to the first write: each write is applied
/// (when its condition holds), the first one answered with a 500; a failed condition answers
/// `ConditionalCheckFailedException` with the stored item (`ALL_OLD`), as DynamoDB does.
#[derive(Default)]
struct LossyOrders {
    stored: std::sync::Mutex<Option<serde_json::Value>>,
    writes: std::sync::atomic::AtomicUsize,
}

impl wiremock::Respond for LossyOrders {
    fn respond(&self, req: &wiremock::Request) -> ResponseTemplate {
        let target = req
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        let mut stored = self.stored.lock().unwrap();
        let failed = |old: &Option<serde_json::Value>| {
            let mut err = json!({
                "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
                "message": "The conditional request failed",
            });
            if let (Some(old), "ALL_OLD") = (
                old,
                body["ReturnValuesOnConditionCheckFailure"]
                    .as_str()
                    .unwrap_or_default(),
            ) {
                err["Item"] = old.clone();
            }
            ResponseTemplate::new(400)
                .insert_header("content-type", "application/x-amz-json-1.0")
                .set_body_json(err)
        };
        let new = match target.as_str() {
            "DynamoDB_20120810.GetItem" => {
                return ResponseTemplate::new(200).set_body_json(match &*stored {
                    Some(i) => json!({ "Item": i }),
                    None => json!({}),
                });
            }
            "DynamoDB_20120810.PutItem" => {
                if stored.is_some() {
                    return failed(&stored);
                }
                body["Item"].clone()
            }
            "DynamoDB_20120810.UpdateItem" => {
                let values = &body["ExpressionAttributeValues"];
                let Some(mut item) = stored.clone().filter(|i| i["status"] == values[":from"])
                else {
                    return failed(&stored);
                };
                item["status"] = values[":to"].clone();
                item["updated_at_ms"] = values[":now"].clone();
                item["write_token"] = values[":wtok"].clone();
                item
            }
            other => panic!("unexpected {other}"),
        };
        *stored = Some(new.clone());
        if self
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            == 0
        {
            return ResponseTemplate::new(500)
                .insert_header("content-type", "application/x-amz-json-1.0")
                .set_body_string(r#"{"__type":"InternalServerError","message":"lost"}"#);
        }
        ResponseTemplate::new(200).set_body_json(json!({ "Attributes": new }))
    }
}

fn config_with_retries(uri: &str) -> AwsConfig {
    let policy = Policy::builder("aws-test")
        .retry(RetryPolicy::new(
            2,
            integrations_core::resilience::Backoff::new(
                Duration::from_millis(1),
                Duration::from_millis(2),
                2.0,
            ),
        ))
        .no_circuit_breaker()
        .attempt_timeout(Duration::from_secs(5))
        .metrics(&MetricsRegistry::new())
        .build();
    AwsBuilder::new()
        .with_region("us-east-1")
        .with_credentials(Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        ))
        .with_base_url(uri)
        .with_policy(policy)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_put_whose_answer_was_lost_is_not_a_conflict_with_itself() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(LossyOrders::default())
        .mount(&server)
        .await;
    let store = DynamoOrderStore::new(&config_with_retries(&server.uri()), "orders");
    let order = Order::new("o-1", "c-1", Money::from_minor(1999, Currency::USD));
    store
        .put(&order)
        .await
        .expect("applied on the first attempt, its answer lost: the retry is its own write");
    let again = store.put(&order).await.unwrap_err();
    assert_eq!(
        again.kind(),
        integrations_core::ErrorKind::Conflict,
        "another call"
    );
}

#[tokio::test]
async fn a_status_update_whose_answer_was_lost_is_not_a_conflict_with_itself() {
    use integrations_shop::OrderStatus;
    let server = MockServer::start().await;
    let lossy = LossyOrders::default();
    let order = Order::new("o-1", "c-1", Money::from_minor(1999, Currency::USD));
    *lossy.stored.lock().unwrap() = Some(serde_json::Value::Object(
        integrations_aws::dynamodb::to_item(&order).unwrap(),
    ));
    lossy.writes.store(0, std::sync::atomic::Ordering::SeqCst);
    Mock::given(method("POST"))
        .respond_with(lossy)
        .mount(&server)
        .await;
    let store = DynamoOrderStore::new(&config_with_retries(&server.uri()), "orders");
    let paid = store
        .update_status("o-1", OrderStatus::Pending, OrderStatus::Paid)
        .await
        .expect("applied on the first attempt, its answer lost: the retry is its own write");
    assert_eq!(paid.status, OrderStatus::Paid);
    let again = store
        .update_status("o-1", OrderStatus::Pending, OrderStatus::Paid)
        .await
        .unwrap_err();
    assert_eq!(
        again.kind(),
        integrations_core::ErrorKind::Conflict,
        "another call"
    );
}
