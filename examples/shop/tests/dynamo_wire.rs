//! The order table's wire format, against a mock DynamoDB endpoint.

use std::time::Duration;

use integrations_aws::{AwsBuilder, AwsConfig, Credentials};
use integrations_core::metrics::MetricsRegistry;
use integrations_core::resilience::{Policy, RetryPolicy};
use integrations_core::{Currency, Money};
use integrations_shop::{DynamoOrderStore, Order};
use serde_json::json;
use wiremock::matchers::{body_json, header, header_exists, header_regex, method, path};
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
        .and(body_json(json!({
            "TableName": "orders",
            "ConditionExpression": "attribute_not_exists(order_id)",
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
