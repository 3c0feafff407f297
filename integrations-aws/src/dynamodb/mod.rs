//! Amazon DynamoDB (feature `dynamodb`): a low-level signed client ([`DynamoDb`]), serde
//! conversion of items ([`to_item`], [`from_item`]) and core's dedup store
//! ([`DynamoDedupStore`]), and conditional writes that recognise their own earlier attempt
//! ([`DynamoDb::conditional_write`], [`WriteToken`]). Typed stores of an application's own tables build on these.

mod attr;
mod conditional;
mod dedup;

use std::time::Duration;

use integrations_core::{Error, ErrorKind, Result};
use serde_json::{Value, json};

use crate::client::AwsClient;
use crate::config::{AwsConfig, Service};

pub use attr::{Item, from_attribute_value, from_item, to_attribute_value, to_item};
pub use conditional::{ConditionalWrite, WRITE_TOKEN_ATTRIBUTE, WriteToken, condition_failed_item};
pub use dedup::DynamoDedupStore;

const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// A signed DynamoDB client speaking the JSON protocol (`X-Amz-Target: DynamoDB_20120810.<Op>`).
///
/// [`DynamoDb::call`] runs any operation with a body in the wire's JSON form; the typed stores
/// build on it.
#[derive(Debug, Clone)]
pub struct DynamoDb {
    client: AwsClient,
}

impl DynamoDb {
    /// A client for `config`'s region, credentials and DynamoDB endpoint.
    pub fn new(config: &AwsConfig) -> Self {
        DynamoDb {
            client: AwsClient::new(config, Service::DynamoDb),
        }
    }

    /// Runs `operation` (`"PutItem"`, `"Query"`, …) with `body` and returns the response JSON.
    ///
    /// # Errors
    /// The mapped AWS error (`ConditionalCheckFailedException` is [`Error::Conflict`], throttling
    /// [`Error::RateLimited`], …), transport errors and the policy's own.
    pub async fn call(&self, operation: &'static str, body: &Value) -> Result<Value> {
        self.client
            .json(
                operation,
                CONTENT_TYPE,
                format!("DynamoDB_20120810.{operation}"),
                body,
            )
            .await
    }

    /// `PutItem`, optionally conditioned (`attribute_not_exists(pk)`).
    ///
    /// # Errors
    /// [`Error::Conflict`] when the condition fails; see [`DynamoDb::call`].
    pub async fn put_item(&self, table: &str, item: Item, condition: Option<&str>) -> Result<()> {
        let mut body = json!({ "TableName": table, "Item": item });
        if let Some(c) = condition {
            body["ConditionExpression"] = json!(c);
        }
        self.call("PutItem", &body).await.map(drop)
    }

    /// `GetItem` with a strongly consistent read.
    ///
    /// # Errors
    /// See [`DynamoDb::call`].
    pub async fn get_item(&self, table: &str, key: Item) -> Result<Option<Item>> {
        let body = json!({ "TableName": table, "Key": key, "ConsistentRead": true });
        let resp = self.call("GetItem", &body).await?;
        Ok(resp.get("Item").and_then(Value::as_object).cloned())
    }

    /// Creates a table with `definition` (the `CreateTable` body) unless it exists, then waits
    /// until it is `ACTIVE` (polling `DescribeTable`, up to `timeout`).
    ///
    /// # Errors
    /// [`Error::Timeout`] when the table is not active in time; see [`DynamoDb::call`].
    pub async fn ensure_table(&self, definition: &Value, timeout: Duration) -> Result<()> {
        let name = definition
            .get("TableName")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::invalid_input("TableName", "the definition names no table"))?;
        match self.call("CreateTable", definition).await {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Conflict => {} // ResourceInUseException: exists
            Err(e) => return Err(e),
        }
        let started = tokio::time::Instant::now();
        loop {
            let d = self
                .call("DescribeTable", &json!({ "TableName": name }))
                .await?;
            if d.pointer("/Table/TableStatus").and_then(Value::as_str) == Some("ACTIVE") {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(Error::timeout(format!(
                    "table `{name}` is not ACTIVE after {timeout:?}"
                ))
                .with_provider(Service::DynamoDb.provider_name()));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Turns on TTL expiry on `attribute` (unix seconds). Already enabled is not an error.
    ///
    /// # Errors
    /// See [`DynamoDb::call`].
    pub async fn enable_ttl(&self, table: &str, attribute: &str) -> Result<()> {
        let body = json!({
            "TableName": table,
            "TimeToLiveSpecification": { "Enabled": true, "AttributeName": attribute },
        });
        match self.call("UpdateTimeToLive", &body).await {
            Ok(_) => Ok(()),
            // "TimeToLive is already enabled"
            Err(e)
                if e.kind() == ErrorKind::InvalidInput
                    && e.message().contains("already enabled") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
