//! [`StubNotifier`]: a recording, scriptable [`Notifier`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;

use super::script::{Script, lock};
use integrations_core::provider::{Notification, Notifier, Published};
use integrations_core::{Error, Result};

type Failing = Box<dyn Fn(&Notification) -> Error + Send + Sync>;

#[derive(Default)]
struct Log {
    published: Vec<(Published, Notification)>,
    by_dedup_id: HashMap<String, Published>,
}

/// A [`Notifier`] that publishes nothing and remembers everything.
///
/// Like a real notifier it validates ([`Notification::validate`]); like an SNS FIFO topic it
/// drops a second publish carrying an already seen [`Notification::dedup_id`], answering with the
/// first receipt. Scripted failures come after local validation, where a real client would reach
/// the network.
///
/// ```
/// use integrations_core::provider::{Notification, Notifier};
/// use integrations_testkit::StubNotifier;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sns = StubNotifier::new_ok().with_name("sns");
/// let n = Notification::new("order 42 paid").dedup_id("order-42/paid");
/// let first = sns.publish(&n).await?;
/// let again = sns.publish(&n).await?;
/// assert_eq!(first, again);
/// assert_eq!(sns.published().len(), 1);
/// # Ok::<(), integrations_core::Error>(())
/// # }).unwrap();
/// ```
pub struct StubNotifier {
    name: String,
    failing: Option<Failing>,
    script: Script,
    log: Mutex<Log>,
}

impl StubNotifier {
    /// A stub named `stub-notifier` accepting every valid notification.
    pub fn new_ok() -> Self {
        StubNotifier {
            name: "stub-notifier".to_owned(),
            failing: None,
            script: Script::default(),
            log: Mutex::new(Log::default()),
        }
    }

    /// A stub whose every publish of a valid notification fails with `f(notification)`.
    pub fn failing(f: impl Fn(&Notification) -> Error + Send + Sync + 'static) -> Self {
        StubNotifier {
            failing: Some(Box::new(f)),
            ..StubNotifier::new_ok()
        }
    }

    /// Renames the stub.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Makes the next `n` publishes of valid notifications fail with `error()`.
    pub fn fail_next(&self, n: usize, error: impl Fn() -> Error + Send + Sync + 'static) {
        self.script.fail_next(n, error);
    }

    /// Drops every scripted failure: the stub answers normally again (an outage ends).
    pub fn clear_failures(&self) {
        self.script.clear();
    }

    /// Notifications published (deduplicated ones once), in order.
    pub fn published(&self) -> Vec<Notification> {
        lock(&self.log)
            .published
            .iter()
            .map(|(_, n)| n.clone())
            .collect()
    }

    /// Receipts of the notifications published, in order.
    pub fn receipts(&self) -> Vec<Published> {
        lock(&self.log)
            .published
            .iter()
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// Calls to [`Notifier::publish`], failed and deduplicated ones included.
    pub fn calls(&self) -> usize {
        self.script.calls()
    }
}

impl fmt::Debug for StubNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StubNotifier")
            .field("name", &self.name)
            .field("failing", &self.failing.is_some())
            .field("calls", &self.calls())
            .field("published", &lock(&self.log).published.len())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Notifier for StubNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn publish(&self, notification: &Notification) -> Result<Published> {
        let provider = || self.name.clone();
        self.script.begin_call();
        notification
            .validate()
            .map_err(|e| e.or_provider(provider()))?;
        if let Some(e) = self.script.scripted_failure() {
            return Err(e.or_provider(provider()));
        }
        if let Some(f) = &self.failing {
            return Err(f(notification).or_provider(provider()));
        }
        let mut log = lock(&self.log);
        if let Some(id) = &notification.dedup_id {
            if let Some(first) = log.by_dedup_id.get(id) {
                return Ok(first.clone());
            }
        }
        let receipt = Published::new(
            self.name.clone(),
            format!("{}-msg-{}", self.name, log.published.len() + 1),
        );
        if let Some(id) = &notification.dedup_id {
            log.by_dedup_id.insert(id.clone(), receipt.clone());
        }
        log.published.push((receipt.clone(), notification.clone()));
        Ok(receipt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn validates_records_and_dedups() {
        let s = StubNotifier::new_ok();
        let e = s.publish(&Notification::new("")).await.unwrap_err();
        assert_eq!(e.field(), Some("body"));
        let a = s.publish(&Notification::new("a")).await.unwrap();
        let b = s.publish(&Notification::new("a")).await.unwrap();
        assert_ne!(a.message_id, b.message_id, "no dedup id, no dedup");
        let d1 = s
            .publish(&Notification::new("d").dedup_id("x"))
            .await
            .unwrap();
        let d2 = s
            .publish(&Notification::new("d").dedup_id("x"))
            .await
            .unwrap();
        assert_eq!(d1, d2);
        assert_eq!(s.published().len(), 3);
        assert_eq!(s.receipts()[2], d1);
        assert_eq!(s.calls(), 5);
    }

    #[tokio::test]
    async fn scripted_and_permanent_failures() {
        let s = StubNotifier::new_ok().with_name("sns");
        s.fail_next(1, || Error::rate_limited(None, "throttled"));
        let e = s.publish(&Notification::new("a")).await.unwrap_err();
        assert_eq!(e.provider_name(), Some("sns"));
        assert!(s.publish(&Notification::new("a")).await.is_ok());
        let f = StubNotifier::failing(|_| Error::unavailable("down"));
        assert!(f.publish(&Notification::new("a")).await.is_err());
        assert!(f.published().is_empty());
    }
}
