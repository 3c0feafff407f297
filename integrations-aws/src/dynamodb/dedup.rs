//! Core's [`DedupStore`] on DynamoDB: a conditional `PutItem` with a TTL attribute.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use integrations_core::clock::{Clock, SystemClock};
use integrations_core::webhook::{DedupOutcome, DedupStore, MAX_TTL};
use integrations_core::{Error, Result};
use serde_json::json;

use super::{ConditionalWrite, DynamoDb, Item, WRITE_TOKEN_ATTRIBUTE, WriteToken};
use crate::config::AwsConfig;

/// Seen keys in one DynamoDB table: partition key `pk` (string), expiry `expires_at` (unix
/// seconds, the table's TTL attribute).
///
/// [`DedupStore::insert_if_absent`] is one `PutItem` conditioned on
/// `attribute_not_exists(pk) OR expires_at <= :now`, so of concurrent inserts of one key exactly
/// one wins, and an expired record that DynamoDB's TTL sweeper (which may lag by up to days) has
/// not yet removed counts as absent. The item carries the call's [`WriteToken`], so a retried
/// attempt whose first answer was lost (the insert applied) is `New`, not a false `Duplicate`
/// that would acknowledge and drop a first delivery.
#[derive(Debug, Clone)]
pub struct DynamoDedupStore {
    db: DynamoDb,
    table: String,
    clock: Arc<dyn Clock>,
}

impl DynamoDedupStore {
    /// Key attribute.
    pub const KEY_ATTRIBUTE: &'static str = "pk";
    /// TTL attribute (unix seconds).
    pub const TTL_ATTRIBUTE: &'static str = "expires_at";
    /// Longest key DynamoDB accepts as a partition key, in bytes.
    pub const MAX_KEY_BYTES: usize = 2048;

    /// The store on `table`.
    pub fn new(config: &AwsConfig, table: impl Into<String>) -> Self {
        DynamoDedupStore {
            db: DynamoDb::new(config),
            table: table.into(),
            clock: Arc::new(SystemClock),
        }
    }
    /// Uses `clock` for "now" (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Creates the table (on-demand capacity) unless it exists, waits until it is active, and
    /// enables TTL on `expires_at`.
    ///
    /// # Errors
    /// See [`DynamoDb::ensure_table`] and [`DynamoDb::enable_ttl`].
    pub async fn create_table(&self) -> Result<()> {
        let def = json!({
            "TableName": self.table,
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{ "AttributeName": Self::KEY_ATTRIBUTE, "AttributeType": "S" }],
            "KeySchema": [{ "AttributeName": Self::KEY_ATTRIBUTE, "KeyType": "HASH" }],
        });
        self.db.ensure_table(&def, Duration::from_secs(120)).await?;
        self.db.enable_ttl(&self.table, Self::TTL_ATTRIBUTE).await
    }

    fn now_secs(&self) -> u64 {
        self.clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

#[async_trait]
impl DedupStore for DynamoDedupStore {
    async fn insert_if_absent(&self, key: &str, ttl: Duration) -> Result<DedupOutcome> {
        if key.is_empty() || key.len() > Self::MAX_KEY_BYTES {
            return Err(Error::invalid_input(
                "key",
                format!("must be 1 to {} bytes", Self::MAX_KEY_BYTES),
            ));
        }
        let now = self.now_secs();
        let ttl = ttl.min(MAX_TTL);
        // Round up: a record is live for at least `ttl`.
        let expires = now + ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let token = WriteToken::random();
        let item: Item = [
            (Self::KEY_ATTRIBUTE.to_owned(), json!({ "S": key })),
            (
                Self::TTL_ATTRIBUTE.to_owned(),
                json!({ "N": expires.to_string() }),
            ),
            (WRITE_TOKEN_ATTRIBUTE.to_owned(), token.attribute_value()),
        ]
        .into_iter()
        .collect();
        let body = json!({
            "TableName": self.table,
            "Item": item,
            "ConditionExpression": "attribute_not_exists(#pk) OR #exp <= :now",
            "ExpressionAttributeNames": { "#pk": Self::KEY_ATTRIBUTE, "#exp": Self::TTL_ATTRIBUTE },
            "ExpressionAttributeValues": { ":now": { "N": now.to_string() } },
        });
        match self.db.conditional_write("PutItem", &body, &token).await? {
            ConditionalWrite::Applied { .. } => Ok(DedupOutcome::New),
            ConditionalWrite::ConditionFailed(_) => Ok(DedupOutcome::Duplicate),
        }
    }

    /// `DeleteItem` of the key (deleting an absent item succeeds).
    async fn release(&self, key: &str) -> Result<()> {
        let body = json!({
            "TableName": self.table,
            "Key": { Self::KEY_ATTRIBUTE: { "S": key } },
        });
        self.db.call("DeleteItem", &body).await.map(|_| ())
    }
}
