//! [`JobHandler`]: what delivers one kind of job, and the shutdown signal of the dispatcher.

use std::fmt;
use std::future::Future;

use async_trait::async_trait;
use tokio::sync::watch;

use super::types::Job;
use crate::Result;

/// Delivers jobs of one kind (send the email, append the row, publish the notification).
///
/// Deliver under the provider's `Policy` (rate limit, breaker, short in-process retries) and pass
/// [`Job::idempotency_key`] wherever the provider accepts one. Return an error whose
/// [`is_retryable`](integrations_core::Error::is_retryable) tells the truth: a retryable error puts the job
/// back with backoff, anything else dead-letters it at once.
///
/// ```
/// use async_trait::async_trait;
/// use integrations_outbox::{Job, JobHandler};
/// use integrations_core::{Notification, Notifier, Result};
///
/// #[derive(Debug)]
/// struct Notify<N>(N);
///
/// #[async_trait]
/// impl<N: Notifier> JobHandler for Notify<N> {
///     async fn handle(&self, job: &Job) -> Result<()> {
///         let body = job.payload["text"].as_str().unwrap_or_default();
///         let n = Notification::new(body).dedup_id(job.idempotency_key.as_str());
///         self.0.publish(&n).await.map(drop)
///     }
/// }
/// ```
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// Delivers `job`.
    ///
    /// # Errors
    /// Whatever the delivery raised; retryable errors are retried with backoff.
    async fn handle(&self, job: &Job) -> Result<()>;
}

/// A [`JobHandler`] from an async closure; see [`handler_fn`].
#[derive(Clone)]
pub struct FnHandler<F>(F);

impl<F> fmt::Debug for FnHandler<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnHandler").finish_non_exhaustive()
    }
}

/// Wraps `f`, called with a clone of each job, as a [`JobHandler`].
///
/// ```
/// use integrations_outbox::handler_fn;
///
/// let handler = handler_fn(|job| async move {
///     tracing::info!(key = %job.idempotency_key, "delivered");
///     Ok(())
/// });
/// # let _ = handler;
/// ```
pub fn handler_fn<F, Fut>(f: F) -> FnHandler<F>
where
    F: Fn(Job) -> Fut + Send + Sync,
    Fut: Future<Output = Result<()>> + Send,
{
    FnHandler(f)
}

#[async_trait]
impl<F, Fut> JobHandler for FnHandler<F>
where
    F: Fn(Job) -> Fut + Send + Sync,
    Fut: Future<Output = Result<()>> + Send,
{
    async fn handle(&self, job: &Job) -> Result<()> {
        (self.0)(job.clone()).await
    }
}

/// Creates a shutdown pair: trigger it to make [`Dispatcher::run`](super::Dispatcher::run)
/// stop claiming, finish the jobs in flight, and return.
pub fn shutdown_channel() -> (ShutdownTrigger, ShutdownSignal) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), ShutdownSignal(rx))
}

/// The sending half of [`shutdown_channel`]. Dropping it does *not* trigger a shutdown.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

impl ShutdownTrigger {
    /// Asks every holder of a matching [`ShutdownSignal`] to stop.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

/// The receiving half of [`shutdown_channel`]; clone it for several dispatchers.
#[derive(Debug, Clone)]
pub struct ShutdownSignal(watch::Receiver<bool>);

impl ShutdownSignal {
    /// A signal that never fires.
    pub fn never() -> Self {
        // A channel closed while still `false` is what `wait` treats as "never".
        let (_, rx) = watch::channel(false);
        ShutdownSignal(rx)
    }

    /// Whether shutdown was triggered.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until shutdown is triggered (forever if the trigger was dropped untriggered).
    pub async fn wait(&mut self) {
        if self.0.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn shutdown_fires_for_every_clone_and_not_on_drop() {
        let (trigger, signal) = shutdown_channel();
        let mut a = signal.clone();
        let mut b = signal;
        assert!(!a.is_triggered());
        trigger.trigger();
        a.wait().await;
        b.wait().await;
        assert!(b.is_triggered());

        let (trigger, mut signal) = shutdown_channel();
        drop(trigger);
        let waited = tokio::time::timeout(Duration::from_secs(3600), signal.wait()).await;
        assert!(waited.is_err(), "a dropped trigger must not stop workers");
        let mut never = ShutdownSignal::never();
        assert!(
            tokio::time::timeout(Duration::from_secs(1), never.wait())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn handler_fn_sees_the_job() {
        let h = handler_fn(|job: Job| async move {
            if job.kind == "bad" {
                Err(integrations_core::Error::invalid_input("kind", "bad"))
            } else {
                Ok(())
            }
        });
        let mut job = Job {
            id: super::super::JobId::new("1"),
            event_id: "e".into(),
            kind: "ok".into(),
            payload: serde_json::Value::Null,
            idempotency_key: integrations_core::IdempotencyKey::new("e/ok").unwrap(),
            attempt: 1,
            max_attempts: 1,
            created_at: std::time::UNIX_EPOCH,
            traceparent: None,
        };
        assert!(h.handle(&job).await.is_ok());
        job.kind = "bad".into();
        assert!(h.handle(&job).await.is_err());
        assert!(format!("{h:?}").starts_with("FnHandler"));
    }
}
