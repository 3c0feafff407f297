//! DynamoDB reads and conditional writes on the outbox table.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use integrations_core::{Error, Result};
use serde_json::{Value, json};

use super::DynamoSqsOutbox;
use super::item::{JobKey, Stored, corrupt, names, parse_job, s};
use crate::config::Service;
use crate::dynamodb::Item;

/// Largest page asked of one `Query`.
const PAGE: usize = 1000;

/// One entry of the status index (`KEYS_ONLY`: the table's and the index's keys).
#[derive(Debug, Clone)]
pub(super) struct IndexEntry {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) due: String,
}

impl IndexEntry {
    fn from_item(item: &Value) -> Result<Self> {
        let get = |name: &str| {
            item.pointer(&format!("/{name}/S"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| corrupt("index entry", format!("no string `{name}`")))
        };
        Ok(IndexEntry {
            pk: get("pk")?,
            sk: get("sk")?,
            due: get("due")?,
        })
    }

    /// The time in `due` (`{16-digit ms}#…`).
    pub(super) fn due_time(&self) -> Result<SystemTime> {
        self.due
            .get(..16)
            .and_then(|ms| ms.parse::<u64>().ok())
            .and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms)))
            .ok_or_else(|| corrupt("index due time", &self.due))
    }

    /// The event id of `EVT#{event_id}`.
    pub(super) fn event_id(&self) -> Result<&str> {
        self.pk
            .strip_prefix("EVT#")
            .ok_or_else(|| corrupt("partition key", &self.pk))
    }

    /// The job this entry is, if it is a job.
    pub(super) fn job_key(&self) -> Result<JobKey> {
        let index = self
            .sk
            .strip_prefix("JOB#")
            .and_then(|i| i.parse::<u8>().ok())
            .ok_or_else(|| corrupt("job sort key", &self.sk))?;
        Ok(JobKey {
            event_id: self.event_id()?.to_owned(),
            index,
        })
    }
}

/// `true` for the error of a failed `ConditionExpression`.
pub(super) fn condition_failed(e: &Error) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

impl DynamoSqsOutbox {
    /// The job at `key` (strongly consistent).
    pub(super) async fn get_job(&self, key: &JobKey) -> Result<Option<Stored>> {
        let item = self.db.get_item(&self.table, key.key()).await?;
        item.as_ref().map(parse_job).transpose()
    }

    /// Runs a conditional write; `Ok(None)` when its condition failed, else the response's
    /// `Attributes` (empty unless `ReturnValues` asked for them).
    pub(super) async fn conditional(
        &self,
        operation: &'static str,
        body: &Value,
    ) -> Result<Option<Item>> {
        match self.db.call(operation, body).await {
            Ok(resp) => Ok(Some(
                resp.get("Attributes")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
            )),
            Err(e) if condition_failed(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Up to `limit` index entries of `status`, ascending by `due`, only those with `due < below`
    /// when given. Eventually consistent, like every read of a global secondary index.
    pub(super) async fn query_index(
        &self,
        status: &str,
        below: Option<&str>,
        limit: usize,
    ) -> Result<Vec<IndexEntry>> {
        let mut out = Vec::new();
        let mut start: Option<Value> = None;
        while out.len() < limit {
            let (page, next) = self
                .query_page(status, below, limit - out.len(), start.take())
                .await?;
            out.extend(page);
            match next {
                Some(k) => start = Some(k),
                None => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// One page (at most `limit`, at most 1000 entries) of [`Self::query_index`], and where the
    /// next page starts.
    pub(super) async fn query_page(
        &self,
        status: &str,
        below: Option<&str>,
        limit: usize,
        start: Option<Value>,
    ) -> Result<(Vec<IndexEntry>, Option<Value>)> {
        let mut body = self.index_query(status, below);
        body["Limit"] = json!(limit.clamp(1, PAGE));
        if let Some(k) = start {
            body["ExclusiveStartKey"] = k;
        }
        let resp = self.db.call("Query", &body).await?;
        let entries = resp
            .get("Items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(IndexEntry::from_item)
            .collect::<Result<Vec<_>>>()?;
        Ok((entries, last_key(&resp)))
    }

    /// How many index entries `status` has (a `Select: COUNT` query, paged).
    pub(super) async fn count_index(&self, status: &str) -> Result<u64> {
        let mut total = 0u64;
        let mut start: Option<Value> = None;
        loop {
            let mut body = self.index_query(status, None);
            body["Select"] = json!("COUNT");
            if let Some(k) = start.take() {
                body["ExclusiveStartKey"] = k;
            }
            let resp = self.db.call("Query", &body).await?;
            total += resp.get("Count").and_then(Value::as_u64).ok_or_else(|| {
                Error::provider("Query with Select COUNT returned no Count")
                    .with_provider(Service::DynamoDb.provider_name())
            })?;
            match last_key(&resp) {
                Some(k) => start = Some(k),
                None => return Ok(total),
            }
        }
    }

    fn index_query(&self, status: &str, below: Option<&str>) -> Value {
        let condition = if below.is_some() {
            "#st = :st AND #due < :below"
        } else {
            "#st = :st"
        };
        let mut values = serde_json::Map::new();
        values.insert(":st".into(), s(status));
        if let Some(b) = below {
            values.insert(":below".into(), s(b));
        }
        json!({
            "TableName": self.table,
            "IndexName": super::INDEX,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names(&[condition]),
            "ExpressionAttributeValues": values,
            "ScanIndexForward": true,
        })
    }

    /// Whether the event partition still holds any job (strongly consistent).
    pub(super) async fn event_has_jobs(&self, pk: &str) -> Result<bool> {
        let condition = "#pk = :pk AND begins_with(#sk, :job)";
        let body = json!({
            "TableName": self.table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names(&[condition]),
            "ExpressionAttributeValues": { ":pk": s(pk), ":job": s("JOB#") },
            "ConsistentRead": true,
            "Limit": 1,
            "Select": "COUNT",
        });
        let resp = self.db.call("Query", &body).await?;
        Ok(resp.get("Count").and_then(Value::as_u64).unwrap_or(0) > 0 || last_key(&resp).is_some())
    }
}

fn last_key(resp: &Value) -> Option<Value> {
    resp.get("LastEvaluatedKey")
        .filter(|k| k.as_object().is_some_and(|o| !o.is_empty()))
        .cloned()
}
