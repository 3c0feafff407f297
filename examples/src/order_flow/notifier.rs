//! [`JsonlNotifier`]: the local stand-in for Amazon SNS, one JSON line per notification.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use async_trait::async_trait;
use integrations_core::provider::Published;
use integrations_core::webhook::unix_seconds;
use integrations_core::{Error, Notification, Notifier, Policy, Result};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// The name the notifier reports, in metrics and receipts.
pub const NAME: &str = "notifier-jsonl";

/// One line of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationLine {
    /// `jsonl-<n>`, the line number.
    pub message_id: String,
    /// Subject, if any.
    pub subject: Option<String>,
    /// Body.
    pub body: String,
    /// String attributes (`order_id`, `event`).
    pub attributes: std::collections::BTreeMap<String, String>,
    /// The outbox job's idempotency key.
    pub dedup_id: Option<String>,
    /// Ordering group (the order id).
    pub group_id: Option<String>,
    /// Unix seconds.
    pub published_at: i64,
}

struct File {
    file: tokio::fs::File,
    lines: u64,
    // What an SNS FIFO topic does with `MessageDeduplicationId`: a repeat publishes nothing and
    // gets the first message's id back. Kept for the life of the notifier (SNS keeps 5 minutes).
    seen: HashMap<String, String>,
}

/// A [`Notifier`] that appends each notification as a JSON line to a local file.
///
/// It behaves like an SNS FIFO topic where it matters to the outbox: a notification whose
/// `dedup_id` was published before is not written again, and the first message id is returned,
/// so a redelivered job has no second effect. Each line is flushed before `publish` returns.
/// Calls go through `policy`, so they show in the metrics like any provider's.
pub struct JsonlNotifier {
    path: PathBuf,
    policy: Policy,
    file: Mutex<File>,
}

impl fmt::Debug for JsonlNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonlNotifier")
            .field("path", &self.path)
            .field("policy", &self.policy.provider())
            .finish_non_exhaustive()
    }
}

impl JsonlNotifier {
    /// Creates (or truncates) the file at `path`.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming `notifications_file` if it cannot be created.
    pub async fn create(path: impl Into<PathBuf>, policy: Policy) -> Result<Self> {
        let path = path.into();
        let file = tokio::fs::File::create(&path).await.map_err(|e| {
            Error::configuration(
                "notifications_file",
                format!("cannot create {}: {e}", path.display()),
            )
            .with_source(e)
        })?;
        Ok(JsonlNotifier {
            path,
            policy,
            file: Mutex::new(File {
                file,
                lines: 0,
                seen: HashMap::new(),
            }),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads every line of the file at `path` back.
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the file cannot be read; [`Error::Provider`] for a line that is
    /// not a [`NotificationLine`].
    pub async fn read_lines(path: &Path) -> Result<Vec<NotificationLine>> {
        let text = tokio::fs::read_to_string(path).await.map_err(|e| {
            Error::unavailable(format!("cannot read {}: {e}", path.display())).with_source(e)
        })?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).map_err(|e| {
                    Error::provider(format!("bad line in {}: {e}", path.display())).with_source(e)
                })
            })
            .collect()
    }

    async fn append(&self, n: &Notification) -> Result<Published> {
        n.validate()?;
        let mut f = self.file.lock().await;
        if let Some(id) = n.dedup_id.as_ref().and_then(|d| f.seen.get(d)) {
            return Ok(Published::new(NAME, id.clone()));
        }
        let message_id = format!("jsonl-{}", f.lines + 1);
        let line = NotificationLine {
            message_id: message_id.clone(),
            subject: n.subject.clone(),
            body: n.body.clone(),
            attributes: n.attributes.clone(),
            dedup_id: n.dedup_id.clone(),
            group_id: n.group_id.clone(),
            published_at: unix_seconds(SystemTime::now()),
        };
        let mut bytes = serde_json::to_vec(&line)
            .map_err(|e| Error::provider(format!("cannot encode a notification: {e}")))?;
        bytes.push(b'\n');
        let io = |e: std::io::Error| {
            Error::unavailable(format!("cannot write {}: {e}", self.path.display()))
                .with_provider(NAME)
                .with_source(e)
        };
        f.file.write_all(&bytes).await.map_err(io)?;
        f.file.flush().await.map_err(io)?;
        f.lines += 1;
        if let Some(d) = &n.dedup_id {
            f.seen.insert(d.clone(), message_id.clone());
        }
        Ok(Published::new(NAME, message_id))
    }
}

#[async_trait]
impl Notifier for JsonlNotifier {
    fn name(&self) -> &str {
        NAME
    }

    async fn publish(&self, notification: &Notification) -> Result<Published> {
        self.policy
            .call("publish", |_| self.append(notification))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use integrations_core::metrics::MetricsRegistry;
    use integrations_core::testing::{NotifierSuiteConfig, notifier_suite};

    fn policy(registry: &MetricsRegistry) -> Policy {
        Policy::builder(NAME).metrics(registry).build()
    }

    #[tokio::test]
    async fn appends_lines_and_deduplicates_like_a_fifo_topic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.jsonl");
        let registry = MetricsRegistry::new();
        let n = JsonlNotifier::create(&path, policy(&registry))
            .await
            .unwrap();
        let first = Notification::new("order ord_1 paid")
            .subject("Order paid")
            .attribute("order_id", "ord_1")
            .dedup_id("evt_1/notify")
            .group_id("ord_1");
        let a = n.publish(&first).await.unwrap();
        let again = n.publish(&first).await.unwrap();
        assert_eq!(a, again, "a repeated dedup id returns the first receipt");
        let b = n
            .publish(&Notification::new("order ord_2 paid").dedup_id("evt_2/notify"))
            .await
            .unwrap();
        assert_ne!(a.message_id, b.message_id);
        let lines = JsonlNotifier::read_lines(&path).await.unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].attributes["order_id"], "ord_1");
        assert_eq!(lines[0].dedup_id.as_deref(), Some("evt_1/notify"));
        assert!(n.publish(&Notification::new("")).await.is_err());
        assert_eq!(registry.snapshot().get(NAME).unwrap().successes, 3);
    }

    #[tokio::test]
    async fn passes_the_core_notifier_suite() {
        let dir = tempfile::tempdir().unwrap();
        let registry = MetricsRegistry::new();
        let n = JsonlNotifier::create(dir.path().join("s.jsonl"), policy(&registry))
            .await
            .unwrap();
        notifier_suite(&n, &NotifierSuiteConfig::new("jsonl-suite")).await;
    }
}
