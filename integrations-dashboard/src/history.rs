//! [`History`]: the last samples in memory, as many as fit in the history window (one hour by
//! default), oldest first. A restart empties it; a service that wants longer or durable series
//! persists the samples it receives from [`Dashboard::subscribe`](crate::Dashboard::subscribe).

use std::collections::VecDeque;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::sampler::{IntegrationPoint, Sample};

/// A ring of samples bounded by age.
#[derive(Debug, Clone)]
pub(crate) struct History {
    window_ms: i64,
    samples: VecDeque<Arc<Sample>>,
}

impl History {
    pub(crate) fn new(window_ms: i64) -> Self {
        History {
            window_ms,
            samples: VecDeque::new(),
        }
    }

    /// Appends `s` and drops the samples that fell out of the window ending at it. A sample
    /// older than the newest (a clock stepped back) restarts the ring rather than breaking the
    /// time order every chart relies on.
    pub(crate) fn push(&mut self, s: Arc<Sample>) {
        if self
            .samples
            .back()
            .is_some_and(|last| last.at_ms >= s.at_ms)
        {
            self.samples.clear();
        }
        let horizon = s.at_ms.saturating_sub(self.window_ms);
        self.samples.push_back(s);
        while self.samples.front().is_some_and(|f| f.at_ms <= horizon) {
            self.samples.pop_front();
        }
    }

    /// The samples, oldest first.
    pub(crate) fn samples(&self) -> Vec<Arc<Sample>> {
        self.samples.iter().cloned().collect()
    }
}

/// A number for JSON: `null` for `NaN` and infinities (JSON has neither).
pub(crate) fn num(v: f64) -> Value {
    if v.is_finite() { json!(v) } else { Value::Null }
}

fn point_json(p: &IntegrationPoint) -> Value {
    json!({
        "name": p.name,
        "calls": p.calls,
        "successes": p.successes,
        "errors": p.failures,
        "latencyCount": p.latency_count,
        "latencySumMs": num(p.latency_sum_ms),
        "p50Ms": p.p50().map_or(Value::Null, num),
        "p99Ms": p.p99().map_or(Value::Null, num),
    })
}

/// A sample as JSON: `at` in unix milliseconds, per-interval integration figures (quantiles
/// `null` when the interval has none), the outbox's counts (`null` when unread).
pub(crate) fn sample_json(s: &Sample) -> Value {
    json!({
        "at": s.at_ms,
        "integrations": s.integrations.iter().map(point_json).collect::<Vec<_>>(),
        "outbox": s.outbox.map(|c| json!({
            "pending": c.pending,
            "leased": c.leased,
            "done": c.done,
            "dead": c.dead,
            "events": c.events,
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Arc<Sample> {
        Arc::new(Sample {
            at_ms: ms,
            integrations: Vec::new(),
            outbox: None,
        })
    }

    #[test]
    fn keeps_only_the_window_in_time_order() {
        let mut h = History::new(1_000);
        for t in [100, 600, 1_100, 1_600] {
            h.push(at(t));
        }
        let kept: Vec<i64> = h.samples().iter().map(|s| s.at_ms).collect();
        assert_eq!(
            kept,
            [1_100, 1_600],
            "600 is at the horizon of 1600 and out"
        );
        h.push(at(50));
        let kept: Vec<i64> = h.samples().iter().map(|s| s.at_ms).collect();
        assert_eq!(kept, [50], "a clock stepped back restarts the ring");
    }

    #[test]
    fn nan_is_null_in_json() {
        assert_eq!(num(f64::NAN), Value::Null);
        assert_eq!(num(f64::INFINITY), Value::Null);
        assert_eq!(num(1.5), json!(1.5));
    }
}
