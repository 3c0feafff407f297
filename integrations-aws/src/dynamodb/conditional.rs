//! Conditional writes that recognise their own earlier attempt.
//!
//! A conditional write runs under a retrying policy. When its first attempt was applied but the
//! answer was lost (a timeout, a 500 after the write), the retry's condition fails against the
//! item the first attempt wrote, and a plain caller would report a conflict with its own write:
//! a first webhook delivery reported as a duplicate, an order "already existing". So every call
//! draws a [`WriteToken`], writes it on the item (attribute [`WRITE_TOKEN_ATTRIBUTE`]) and asks
//! for `ReturnValuesOnConditionCheckFailure=ALL_OLD`: a condition failure whose old item carries
//! this call's token was this call's earlier attempt, and is success.

use integrations_core::{Error, ErrorKind, Result};
use serde_json::{Value, json};

use super::{DynamoDb, Item};
use crate::error::OldItem;

/// The attribute holding the [`WriteToken`] of the conditional write that last wrote the item.
pub const WRITE_TOKEN_ATTRIBUTE: &str = "write_token";

/// A random per-call token (128 bits, hex): one per logical write, the same for all its attempts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WriteToken(String);

impl WriteToken {
    /// A fresh token.
    pub fn random() -> Self {
        WriteToken(format!(
            "{:016x}{:016x}",
            fastrand::u64(..),
            fastrand::u64(..)
        ))
    }
    /// Wraps a known token (tests, or a caller replaying one logical write).
    pub fn new(token: impl Into<String>) -> Self {
        WriteToken(token.into())
    }
    /// The token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The token as an attribute value (`{"S": …}`), for an `Item` or an `UpdateExpression`'s
    /// values.
    pub fn attribute_value(&self) -> Value {
        json!({ "S": self.0 })
    }
    /// Whether `item` was last written by this token's call.
    pub fn wrote(&self, item: &Item) -> bool {
        item.get(WRITE_TOKEN_ATTRIBUTE)
            .and_then(|v| v.get("S"))
            .and_then(Value::as_str)
            == Some(self.0.as_str())
    }
}

/// The outcome of [`DynamoDb::conditional_write`].
#[derive(Debug, Clone, PartialEq)]
pub enum ConditionalWrite {
    /// Applied: by this attempt (`attributes` is the response's `Attributes`, when
    /// `ReturnValues` asked for them) or by an earlier attempt of the same call whose answer was
    /// lost (`attributes` is `None`).
    Applied {
        /// The response's `Attributes`.
        attributes: Option<Item>,
    },
    /// The condition failed against an item another call wrote (`None` when the service did
    /// not return it).
    ConditionFailed(Option<Item>),
}

/// The item a failed condition was checked against, when the request asked for
/// `ReturnValuesOnConditionCheckFailure=ALL_OLD` and the error is a
/// `ConditionalCheckFailedException`.
pub fn condition_failed_item(e: &Error) -> Option<&Item> {
    let src = std::error::Error::source(e)?;
    src.downcast_ref::<OldItem>().map(|o| &o.0)
}

impl DynamoDb {
    /// Runs a conditional `PutItem`, `UpdateItem` or `DeleteItem` written by the call that
    /// holds `token`: `body` must write the token on the item (`Item.write_token` for a put,
    /// `SET #wtok = :wtok` for an update; [`WRITE_TOKEN_ATTRIBUTE`],
    /// [`WriteToken::attribute_value`]). `ReturnValuesOnConditionCheckFailure=ALL_OLD` is
    /// added; a condition failure against an item carrying `token` is
    /// [`ConditionalWrite::Applied`] — the policy's retry of an attempt that was applied.
    ///
    /// # Errors
    /// See [`DynamoDb::call`]; a failed condition is not an error.
    pub async fn conditional_write(
        &self,
        operation: &'static str,
        body: &Value,
        token: &WriteToken,
    ) -> Result<ConditionalWrite> {
        let mut body = body.clone();
        body["ReturnValuesOnConditionCheckFailure"] = json!("ALL_OLD");
        match self.call(operation, &body).await {
            Ok(resp) => Ok(ConditionalWrite::Applied {
                attributes: resp.get("Attributes").and_then(Value::as_object).cloned(),
            }),
            Err(e)
                if e.kind() == ErrorKind::Conflict
                    && e.code() == Some("ConditionalCheckFailedException") =>
            {
                match condition_failed_item(&e) {
                    Some(old) if token.wrote(old) => {
                        tracing::debug!(
                            operation,
                            "conditional write: the condition failed on this call's own earlier attempt"
                        );
                        Ok(ConditionalWrite::Applied { attributes: None })
                    }
                    old => Ok(ConditionalWrite::ConditionFailed(old.cloned())),
                }
            }
            Err(e) => Err(e),
        }
    }
}
