//! The shop's order table on DynamoDB: insert-once, consistent get, a customer's orders through a
//! global secondary index, and status updates that only move along allowed transitions.
//!
//! Built on the public DynamoDB client of `integrations-aws` ([`DynamoDb`], [`to_item`],
//! [`from_item`]).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use integrations_core::{Error, Result};
use serde_json::{Value, json};

use integrations_aws::dynamodb::{
    ConditionalWrite, DynamoDb, Item, WRITE_TOKEN_ATTRIBUTE, WriteToken, from_item, to_item,
};
use integrations_aws::{AwsConfig, Service};

use crate::order::{Order, OrderPage, OrderStatus, now_millis};

/// Orders in one DynamoDB table: partition key `order_id`, and a global secondary index
/// (default `customer_id-created_at_ms-index`) on `customer_id` / `created_at_ms`.
#[derive(Debug, Clone)]
pub struct DynamoOrderStore {
    db: DynamoDb,
    table: String,
    customer_index: String,
}

impl DynamoOrderStore {
    /// Default name of the customer index.
    pub const DEFAULT_CUSTOMER_INDEX: &'static str = "customer_id-created_at_ms-index";

    /// The store on `table`.
    pub fn new(config: &AwsConfig, table: impl Into<String>) -> Self {
        DynamoOrderStore {
            db: DynamoDb::new(config),
            table: table.into(),
            customer_index: Self::DEFAULT_CUSTOMER_INDEX.to_owned(),
        }
    }
    /// Uses another name for the customer index.
    #[must_use]
    pub fn with_customer_index(mut self, name: impl Into<String>) -> Self {
        self.customer_index = name.into();
        self
    }

    /// Creates the table and its index (on-demand capacity) unless it exists, and waits until it
    /// is active.
    ///
    /// # Errors
    /// See [`DynamoDb::ensure_table`].
    pub async fn create_table(&self) -> Result<()> {
        let def = json!({
            "TableName": self.table,
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [
                { "AttributeName": "order_id", "AttributeType": "S" },
                { "AttributeName": "customer_id", "AttributeType": "S" },
                { "AttributeName": "created_at_ms", "AttributeType": "N" },
            ],
            "KeySchema": [{ "AttributeName": "order_id", "KeyType": "HASH" }],
            "GlobalSecondaryIndexes": [{
                "IndexName": self.customer_index,
                "KeySchema": [
                    { "AttributeName": "customer_id", "KeyType": "HASH" },
                    { "AttributeName": "created_at_ms", "KeyType": "RANGE" },
                ],
                "Projection": { "ProjectionType": "ALL" },
            }],
        });
        self.db.ensure_table(&def, Duration::from_secs(120)).await
    }

    /// Stores a new order; never overwrites (`attribute_not_exists(order_id)`).
    ///
    /// # Errors
    /// [`Error::Conflict`] when an order with this id exists; [`Error::InvalidInput`] for an empty
    /// id; see [`DynamoDb::call`].
    pub async fn put(&self, order: &Order) -> Result<()> {
        if order.order_id.is_empty() || order.customer_id.is_empty() {
            return Err(Error::invalid_input(
                "order_id",
                "order and customer ids must not be empty",
            ));
        }
        // The call's token on the item: a retry of an attempt that was applied (its answer
        // lost) recognises its own write instead of reporting the order as existing.
        let token = WriteToken::random();
        let mut item = to_item(order)?;
        item.insert(WRITE_TOKEN_ATTRIBUTE.to_owned(), token.attribute_value());
        let body = json!({
            "TableName": self.table,
            "Item": item,
            "ConditionExpression": "attribute_not_exists(order_id)",
        });
        match self.db.conditional_write("PutItem", &body, &token).await? {
            ConditionalWrite::Applied { .. } => Ok(()),
            ConditionalWrite::ConditionFailed(_) => Err(Error::conflict(format!(
                "order `{}` already exists",
                order.order_id
            ))
            .with_provider(Service::DynamoDb.provider_name())
            .with_code("ConditionalCheckFailedException")),
        }
    }

    /// The order, if it exists (strongly consistent read).
    ///
    /// # Errors
    /// See [`DynamoDb::call`].
    pub async fn get(&self, order_id: &str) -> Result<Option<Order>> {
        let item = self.db.get_item(&self.table, key(order_id)).await?;
        item.as_ref().map(from_item).transpose()
    }

    /// A customer's orders, newest first, `limit` (1–1000) per page.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad `limit` or `cursor`; see [`DynamoDb::call`].
    pub async fn list_for_customer(
        &self,
        customer_id: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<OrderPage> {
        if !(1..=1000).contains(&limit) {
            return Err(Error::invalid_input("limit", "must be between 1 and 1000"));
        }
        let mut body = json!({
            "TableName": self.table,
            "IndexName": self.customer_index,
            "KeyConditionExpression": "customer_id = :c",
            "ExpressionAttributeValues": { ":c": { "S": customer_id } },
            "ScanIndexForward": false,
            "Limit": limit,
        });
        if let Some(c) = cursor {
            body["ExclusiveStartKey"] = Value::Object(decode_cursor(c)?);
        }
        let resp = self.db.call("Query", &body).await?;
        let orders = resp
            .get("Items")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .map(|i| {
                        i.as_object()
                            .ok_or_else(|| Error::provider("Query returned a non-object item"))
                            .and_then(from_item)
                    })
                    .collect::<Result<Vec<Order>>>()
            })
            .transpose()?
            .unwrap_or_default();
        let next_cursor = resp
            .get("LastEvaluatedKey")
            .and_then(Value::as_object)
            .filter(|k| !k.is_empty())
            .map(encode_cursor);
        Ok(OrderPage {
            orders,
            next_cursor,
        })
    }

    /// Moves the order from `from` to `to`, only if `from → to` is allowed and the stored status is
    /// still `from` (a conditional update, so concurrent writers cannot both win).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (field `status`) for a transition that is not allowed;
    /// [`Error::Conflict`] when the stored status is not `from`; [`Error::NotFound`] when there is
    /// no such order; see [`DynamoDb::call`].
    pub async fn update_status(
        &self,
        order_id: &str,
        from: OrderStatus,
        to: OrderStatus,
    ) -> Result<Order> {
        if !from.can_transition_to(to) {
            return Err(Error::invalid_input(
                "status",
                format!("an order cannot move from `{from}` to `{to}`"),
            ));
        }
        // The call's token on the item: a retry of an attempt that was applied (its answer
        // lost) finds the status already moved by itself, which is success, not a conflict.
        let token = WriteToken::random();
        let body = json!({
            "TableName": self.table,
            "Key": key(order_id),
            "UpdateExpression": "SET #s = :to, updated_at_ms = :now, #wtok = :wtok",
            "ConditionExpression": "#s = :from",
            "ExpressionAttributeNames": { "#s": "status", "#wtok": WRITE_TOKEN_ATTRIBUTE },
            "ExpressionAttributeValues": {
                ":to": { "S": to.as_str() },
                ":from": { "S": from.as_str() },
                ":now": { "N": now_millis().to_string() },
                ":wtok": token.attribute_value(),
            },
            "ReturnValues": "ALL_NEW",
        });
        match self
            .db
            .conditional_write("UpdateItem", &body, &token)
            .await?
        {
            ConditionalWrite::Applied {
                attributes: Some(attrs),
            } => from_item(&attrs),
            // This call's earlier attempt moved it (its answer was lost): read what it wrote.
            ConditionalWrite::Applied { attributes: None } => {
                self.get(order_id).await?.ok_or_else(|| {
                    Error::not_found(format!("no order `{order_id}`"))
                        .with_provider(Service::DynamoDb.provider_name())
                })
            }
            ConditionalWrite::ConditionFailed(_) => {
                let provider = Service::DynamoDb.provider_name();
                Err(match self.get(order_id).await? {
                    None => {
                        Error::not_found(format!("no order `{order_id}`")).with_provider(provider)
                    }
                    Some(o) => Error::conflict(format!(
                        "order `{order_id}` is `{}`, not `{from}`",
                        o.status
                    ))
                    .with_provider(provider)
                    .with_code("ConditionalCheckFailedException"),
                })
            }
        }
    }
}

fn key(order_id: &str) -> Item {
    [("order_id".to_owned(), json!({ "S": order_id }))]
        .into_iter()
        .collect()
}

fn encode_cursor(key: &Item) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

fn decode_cursor(cursor: &str) -> Result<Item> {
    let bad = || Error::invalid_input("cursor", "not a cursor returned by list_for_customer");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    serde_json::from_slice::<Item>(&bytes).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let k = key("o-9");
        assert_eq!(decode_cursor(&encode_cursor(&k)).unwrap(), k);
        assert_eq!(decode_cursor("!!").unwrap_err().field(), Some("cursor"));
    }
}
