//! [`LocalNotifier`]: a [`Notifier`] that keeps notifications in the process, for local runs.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use integrations_core::metrics::MetricsRegistry;
use integrations_core::provider::{Notification, Published};
use integrations_core::resilience::{Policy, RetryPolicy};
use integrations_core::{Notifier, Result};

/// The name the local notifier records metrics under.
pub const LOCAL_NOTIFIER: &str = "local-notifier";

/// Notifications kept for inspection.
pub const KEPT: usize = 100;

/// Logs each notification and keeps the last [`KEPT`], deduplicating by `dedup_id` the way an SNS
/// FIFO topic does. Publishes run under a [`Policy`] so they show in the metrics like any
/// provider's calls.
pub struct LocalNotifier {
    policy: Policy,
    recent: Mutex<VecDeque<(Published, Notification)>>,
    published: AtomicU64,
}

impl fmt::Debug for LocalNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalNotifier")
            .field("published", &self.published())
            .finish_non_exhaustive()
    }
}

impl LocalNotifier {
    /// A notifier recording its metrics into `registry`.
    pub fn new(registry: &MetricsRegistry) -> Self {
        LocalNotifier {
            policy: Policy::builder(LOCAL_NOTIFIER)
                .retry(RetryPolicy::none())
                .attempt_timeout(Duration::from_secs(5))
                .metrics(registry)
                .build(),
            recent: Mutex::new(VecDeque::with_capacity(KEPT)),
            published: AtomicU64::new(0),
        }
    }

    /// Notifications published (duplicates not counted).
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// The last notifications, oldest first.
    pub fn recent(&self) -> Vec<Notification> {
        self.lock().iter().map(|(_, n)| n.clone()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(Published, Notification)>> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish_now(&self, n: &Notification) -> Result<Published> {
        n.validate()?;
        let mut recent = self.lock();
        if let Some(id) = &n.dedup_id {
            if let Some((p, _)) = recent.iter().find(|(_, m)| m.dedup_id.as_ref() == Some(id)) {
                return Ok(p.clone());
            }
        }
        let seq = self.published.fetch_add(1, Ordering::Relaxed) + 1;
        let published = Published::new(LOCAL_NOTIFIER, format!("local-{seq}"));
        tracing::info!(
            id = %published.message_id,
            subject = n.subject.as_deref().unwrap_or(""),
            body = %n.body,
            "notification"
        );
        if recent.len() == KEPT {
            recent.pop_front();
        }
        recent.push_back((published.clone(), n.clone()));
        Ok(published)
    }
}

#[async_trait]
impl Notifier for LocalNotifier {
    fn name(&self) -> &str {
        LOCAL_NOTIFIER
    }

    async fn publish(&self, notification: &Notification) -> Result<Published> {
        self.policy
            .call("publish", |_| async { self.publish_now(notification) })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn publishes_once_per_dedup_id_and_records_metrics() {
        let registry = MetricsRegistry::new();
        let n = LocalNotifier::new(&registry);
        let a = Notification::new("order 1 paid").dedup_id("evt_1/notify");
        let first = n.publish(&a).await.unwrap();
        let again = n.publish(&a).await.unwrap();
        assert_eq!(first, again);
        n.publish(&Notification::new("order 2 paid")).await.unwrap();
        assert_eq!(n.published(), 2);
        assert_eq!(n.recent().len(), 2);
        assert!(n.publish(&Notification::new("")).await.is_err());
        let snap = registry.snapshot();
        let m = snap.get(LOCAL_NOTIFIER).unwrap();
        assert_eq!((m.calls, m.successes), (4, 3));
    }
}
