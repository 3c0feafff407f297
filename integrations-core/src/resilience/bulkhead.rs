//! Bulkhead: a bound on concurrent calls to one provider.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};

/// At most `max_concurrent` calls in flight; a further caller waits up to `max_wait` for a slot,
/// then is refused with [`Error::BulkheadFull`] (marked not processed). Cloning shares the slots.
///
/// A bulkhead keeps one slow provider from tying up every task (and connection) of the service.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use integrations_core::resilience::Bulkhead;
/// use integrations_core::ErrorKind;
///
/// let bulkhead = Bulkhead::new(1, Duration::ZERO);
/// let held = bulkhead.acquire().await.unwrap();
/// assert_eq!(bulkhead.acquire().await.unwrap_err().kind(), ErrorKind::BulkheadFull);
/// drop(held);
/// assert!(bulkhead.acquire().await.is_ok());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Bulkhead {
    slots: Arc<Semaphore>,
    max_concurrent: usize,
    max_wait: Duration,
}

/// A slot in a [`Bulkhead`], given back when dropped.
#[derive(Debug)]
pub struct BulkheadPermit {
    _permit: OwnedSemaphorePermit,
}

impl Bulkhead {
    /// A bulkhead of `max_concurrent` slots (at least 1) and a wait of at most `max_wait`.
    pub fn new(max_concurrent: usize, max_wait: Duration) -> Self {
        let max_concurrent = max_concurrent.clamp(1, Semaphore::MAX_PERMITS);
        Bulkhead {
            slots: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
            max_wait,
        }
    }

    /// Slots in total.
    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }
    /// The longest wait for a slot.
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }
    /// Slots free now.
    pub fn available(&self) -> usize {
        self.slots.available_permits()
    }

    /// Takes a slot if one is free now.
    pub fn try_acquire(&self) -> Option<BulkheadPermit> {
        Arc::clone(&self.slots)
            .try_acquire_owned()
            .ok()
            .map(|permit| BulkheadPermit { _permit: permit })
    }

    /// Takes a slot, waiting up to `max_wait`.
    ///
    /// # Errors
    /// [`Error::BulkheadFull`] when no slot frees up in time.
    pub async fn acquire(&self) -> Result<BulkheadPermit> {
        self.acquire_within(self.max_wait).await
    }

    /// Takes a slot, waiting up to `budget` instead of `max_wait`.
    ///
    /// # Errors
    /// [`Error::BulkheadFull`] when no slot frees up within `budget`.
    pub async fn acquire_within(&self, budget: Duration) -> Result<BulkheadPermit> {
        if let Some(permit) = self.try_acquire() {
            return Ok(permit);
        }
        if !budget.is_zero() {
            let wait = Arc::clone(&self.slots).acquire_owned();
            if let Ok(Ok(permit)) = tokio::time::timeout(budget, wait).await {
                return Ok(BulkheadPermit { _permit: permit });
            }
        }
        Err(Error::bulkhead_full("no free slot within the wait budget"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn waits_up_to_max_wait_then_refuses() {
        let b = Bulkhead::new(2, Duration::from_millis(100));
        let p1 = b.acquire().await.unwrap();
        let _p2 = b.try_acquire().unwrap();
        assert_eq!(b.available(), 0);
        assert!(b.try_acquire().is_none());
        let t0 = Instant::now();
        let err = b.acquire().await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::BulkheadFull);
        assert!(err.is_failover_safe());
        assert_eq!(t0.elapsed(), Duration::from_millis(100));

        // A slot freed during the wait is taken.
        let b2 = b.clone();
        let waiter = tokio::spawn(async move { b2.acquire().await.map(|_| Instant::now()) });
        tokio::time::sleep(Duration::from_millis(40)).await;
        drop(p1);
        let got = waiter.await.unwrap().unwrap();
        assert_eq!(got - t0, Duration::from_millis(140));
        assert_eq!(
            (b.max_concurrent(), b.max_wait()),
            (2, Duration::from_millis(100))
        );
    }

    #[test]
    fn zero_slots_means_one() {
        assert_eq!(Bulkhead::new(0, Duration::ZERO).max_concurrent(), 1);
    }
}
