//! What every stub shares: a call counter, a queue of scripted failures, and an optional
//! permanent failure.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use integrations_core::Error;

type Factory = Arc<dyn Fn() -> Error + Send + Sync>;

/// Calls made and failures scripted for one stub.
#[derive(Default)]
pub(crate) struct Script {
    calls: AtomicUsize,
    // (remaining count, factory) runs; `usize::MAX` means "until cleared".
    queue: Mutex<VecDeque<(usize, Factory)>>,
}

impl Script {
    /// Queues `n` failures made by `factory`, consumed by the next `n` calls (`usize::MAX`: every
    /// call from now on, until [`Script::clear`]). Stored as one run, whatever `n` is.
    pub(crate) fn fail_next(&self, n: usize, factory: impl Fn() -> Error + Send + Sync + 'static) {
        if n == 0 {
            return;
        }
        lock(&self.queue).push_back((n, Arc::new(factory)));
    }

    /// Drops every scripted failure.
    pub(crate) fn clear(&self) {
        lock(&self.queue).clear();
    }

    /// Counts a call.
    pub(crate) fn begin_call(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }

    /// The next scripted failure, if any (called where a real client would go to the network).
    pub(crate) fn scripted_failure(&self) -> Option<Error> {
        let factory = {
            let mut q = lock(&self.queue);
            let (remaining, factory) = q.front_mut()?;
            let factory = factory.clone();
            if *remaining != usize::MAX {
                *remaining -= 1;
                if *remaining == 0 {
                    q.pop_front();
                }
            }
            factory
        };
        Some(factory())
    }

    /// Calls made so far.
    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// Locks, recovering from poisoning (a panicking test must not cascade into others).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_failures_are_consumed_in_order() {
        let s = Script::default();
        s.fail_next(2, || Error::unavailable("down").not_processed());
        for expected in [true, true, false] {
            s.begin_call();
            assert_eq!(s.scripted_failure().is_some(), expected);
        }
        assert_eq!(s.calls(), 3);
    }

    #[test]
    fn failing_forever_does_not_allocate_per_call_and_can_be_cleared() {
        let s = Script::default();
        s.fail_next(usize::MAX, || Error::unavailable("down"));
        for _ in 0..1000 {
            assert!(s.scripted_failure().is_some());
        }
        s.clear();
        assert!(s.scripted_failure().is_none());
    }
}
