//! One [`Fault`] type for every sandbox, and the plan of which requests get one.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// What a sandbox does to a request instead of (or after) answering it normally.
///
/// Every provider's sandbox understands every fault; what differs is only the provider's own
/// error body ([`SandboxService::fault_response`](super::SandboxService::fault_response)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// `500` in the provider's error shape, before processing: nothing happened.
    ServerError,
    /// `503` in the provider's error shape, before processing: nothing happened.
    Unavailable,
    /// `429` in the provider's error shape, before processing, with `Retry-After` (or the
    /// provider's own rate-limit header) when `retry_after` is set.
    RateLimited {
        /// How long the client is told to wait; `None` sends no hint.
        retry_after: Option<Duration>,
    },
    /// No answer for the server's hang time ([`ServerOptions::hang`](super::ServerOptions)),
    /// then the connection is closed; nothing processed. Use a client timeout shorter than it.
    Hang,
    /// Processed normally (state changed, events sent), then the connection is closed without
    /// an answer: the client cannot know the request succeeded. The case idempotency keys
    /// exist for.
    DropAfterAccept,
}

impl Fault {
    /// `429` with `Retry-After: retry_after`.
    pub const fn rate_limited(retry_after: Duration) -> Self {
        Fault::RateLimited {
            retry_after: Some(retry_after),
        }
    }

    /// Whether the request is processed before the fault takes effect.
    pub const fn processes_request(&self) -> bool {
        matches!(self, Fault::DropAfterAccept)
    }

    /// A short name (`"server_error"`, `"rate_limited"`, …) for logs and records.
    pub const fn name(&self) -> &'static str {
        match self {
            Fault::ServerError => "server_error",
            Fault::Unavailable => "unavailable",
            Fault::RateLimited { .. } => "rate_limited",
            Fault::Hang => "hang",
            Fault::DropAfterAccept => "drop_after_accept",
        }
    }
}

impl std::fmt::Display for Fault {
    /// The [`name`](Fault::name), with the retry hint of a 429 (`rate_limited=2s`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())?;
        if let Fault::RateLimited {
            retry_after: Some(d),
        } = self
        {
            write!(f, "={}s", d.as_secs())?;
        }
        Ok(())
    }
}

/// Which requests a [`Fault`] hits: `times` requests, after letting `skip` through, optionally
/// only those of one operation (the name [`SandboxService::operation`](super::SandboxService::operation)
/// gives a request, such as `"values.append"` or `"POST /v1/refunds"`).
///
/// ```
/// use integrations_testkit::sandbox::{Fault, FaultRule};
/// // The 3rd and 4th append fail with 500; everything else passes.
/// let rule = FaultRule::new(Fault::ServerError).times(2).after(2).on("values.append");
/// # let _ = rule;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    fault: Fault,
    times: usize,
    skip: usize,
    operation: Option<String>,
}

impl FaultRule {
    /// The next request gets `fault`.
    pub fn new(fault: Fault) -> Self {
        FaultRule {
            fault,
            times: 1,
            skip: 0,
            operation: None,
        }
    }

    /// Hit `n` requests (default 1).
    pub fn times(mut self, n: usize) -> Self {
        self.times = n;
        self
    }

    /// Let `k` matching requests through first (default 0).
    pub fn after(mut self, k: usize) -> Self {
        self.skip = k;
        self
    }

    /// Only requests of this operation count.
    pub fn on(mut self, operation: impl Into<String>) -> Self {
        self.operation = Some(operation.into());
        self
    }

    /// The fault.
    pub fn fault(&self) -> Fault {
        self.fault
    }
}

/// The pending [`FaultRule`]s of one server, applied in the order they were added.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<VecDeque<FaultRule>>,
}

impl Faults {
    /// No faults.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<FaultRule>> {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next `n` requests (any operation) get `fault`.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        self.add(FaultRule::new(fault).times(n));
    }

    /// Adds a rule.
    pub fn add(&self, rule: FaultRule) {
        if rule.times > 0 {
            self.lock().push_back(rule);
        }
    }

    /// Requests that will still get a fault, over every rule.
    pub fn pending(&self) -> usize {
        self.lock().iter().map(|r| r.times).sum()
    }

    /// Drops every pending rule.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The fault for a request of `operation`, consuming it; `None` lets the request through.
    /// Every matching rule counts the request (its `after` countdown), the first one due fires.
    pub fn take(&self, operation: &str) -> Option<Fault> {
        let mut rules = self.lock();
        let mut fired = None;
        for rule in rules.iter_mut() {
            if rule.operation.as_deref().is_some_and(|o| o != operation) {
                continue;
            }
            if rule.skip > 0 {
                rule.skip -= 1;
                continue;
            }
            if fired.is_none() {
                fired = Some(rule.fault);
                rule.times -= 1;
            }
        }
        rules.retain(|r| r.times > 0);
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_fire_in_order_for_their_operation_after_their_skip() {
        let f = Faults::new();
        f.add(
            FaultRule::new(Fault::ServerError)
                .times(2)
                .after(1)
                .on("append"),
        );
        f.fail_next(1, Fault::Hang);
        assert_eq!(f.pending(), 3);
        // The `append` rule lets its first append through; the catch-all fires on it.
        assert_eq!(f.take("append"), Some(Fault::Hang));
        assert_eq!(f.take("get"), None);
        assert_eq!(f.take("append"), Some(Fault::ServerError));
        assert_eq!(f.take("append"), Some(Fault::ServerError));
        assert_eq!(f.take("append"), None);
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn zero_times_adds_nothing_and_clear_empties() {
        let f = Faults::new();
        f.add(FaultRule::new(Fault::Unavailable).times(0));
        assert_eq!(f.pending(), 0);
        f.fail_next(5, Fault::rate_limited(Duration::from_secs(1)));
        f.clear();
        assert_eq!(f.take("x"), None);
    }
}
