//! Sliding windows of call outcomes for the circuit breaker.

use std::time::Duration;

/// How many recent calls the breaker's failure rate is computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlidingWindow {
    /// The last `n` calls (at least 1).
    Count(u32),
    /// The calls of the last `d` (at least 1 ms). The window moves in tenths of `d`, so a call
    /// counts for between 0.9·d and d.
    Time(Duration),
}

/// Number of buckets a time window is split into.
const BUCKETS: u64 = 10;

#[derive(Debug)]
pub(super) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

#[derive(Debug)]
pub(super) struct CountWindow {
    outcomes: Vec<bool>,
    next: usize,
    filled: usize,
    failures: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    tick: u64,
    calls: u32,
    failures: u32,
}

#[derive(Debug)]
pub(super) struct TimeWindow {
    width_nanos: u64,
    buckets: [Bucket; BUCKETS as usize],
}

impl Window {
    pub(super) fn new(kind: SlidingWindow) -> Window {
        match kind {
            SlidingWindow::Count(n) => Window::Count(CountWindow {
                outcomes: vec![false; n.max(1) as usize],
                next: 0,
                filled: 0,
                failures: 0,
            }),
            SlidingWindow::Time(d) => {
                let total = u64::try_from(d.as_nanos())
                    .unwrap_or(u64::MAX)
                    .max(1_000_000);
                Window::Time(TimeWindow {
                    width_nanos: (total / BUCKETS).max(1),
                    buckets: [Bucket::default(); BUCKETS as usize],
                })
            }
        }
    }

    pub(super) fn clear(&mut self) {
        match self {
            Window::Count(w) => {
                w.next = 0;
                w.filled = 0;
                w.failures = 0;
            }
            Window::Time(w) => w.buckets = [Bucket::default(); BUCKETS as usize],
        }
    }

    /// Whether this is a full count window without a failure: recording a success then changes
    /// nothing, which lets the breaker skip its lock on the healthy path.
    pub(super) fn is_full_and_clean(&self) -> bool {
        match self {
            Window::Count(w) => w.failures == 0 && w.filled == w.outcomes.len(),
            Window::Time(_) => false,
        }
    }

    /// Records one outcome at `now_nanos` (ignored by the count window).
    pub(super) fn record(&mut self, now_nanos: u64, failure: bool) {
        match self {
            Window::Count(w) => {
                if w.filled == w.outcomes.len() {
                    if w.outcomes[w.next] {
                        w.failures -= 1;
                    }
                } else {
                    w.filled += 1;
                }
                w.outcomes[w.next] = failure;
                w.failures += u32::from(failure);
                w.next = (w.next + 1) % w.outcomes.len();
            }
            Window::Time(w) => {
                let tick = now_nanos / w.width_nanos;
                let b = &mut w.buckets[(tick % BUCKETS) as usize];
                if b.tick != tick || b.calls == 0 {
                    *b = Bucket {
                        tick,
                        calls: 0,
                        failures: 0,
                    };
                }
                b.calls = b.calls.saturating_add(1);
                b.failures = b.failures.saturating_add(u32::from(failure));
            }
        }
    }

    /// `(calls, failures)` in the window as of `now_nanos`.
    pub(super) fn totals(&self, now_nanos: u64) -> (u64, u64) {
        match self {
            Window::Count(w) => (w.filled as u64, u64::from(w.failures)),
            Window::Time(w) => {
                let tick = now_nanos / w.width_nanos;
                w.buckets
                    .iter()
                    .filter(|b| b.calls > 0 && b.tick <= tick && b.tick + BUCKETS > tick)
                    .fold((0, 0), |(c, f), b| {
                        (c + u64::from(b.calls), f + u64::from(b.failures))
                    })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_window_forgets_oldest() {
        let mut w = Window::new(SlidingWindow::Count(3));
        w.record(0, true);
        w.record(0, true);
        assert_eq!(w.totals(0), (2, 2));
        w.record(0, false);
        w.record(0, false); // pushes out the first failure
        assert_eq!(w.totals(0), (3, 1));
        assert!(!w.is_full_and_clean());
        w.record(0, false);
        assert_eq!(w.totals(0), (3, 0));
        assert!(w.is_full_and_clean());
        w.clear();
        assert!(!w.is_full_and_clean());
        assert_eq!(w.totals(0), (0, 0));
    }

    #[test]
    fn time_window_expires_old_buckets() {
        let sec = 1_000_000_000;
        let mut w = Window::new(SlidingWindow::Time(Duration::from_secs(10)));
        w.record(0, true);
        w.record(sec / 2, false);
        w.record(5 * sec, true);
        assert_eq!(w.totals(5 * sec), (3, 2));
        assert_eq!(w.totals(9 * sec + sec / 2), (3, 2));
        // The first second's bucket leaves the window once 10 s have passed.
        assert_eq!(w.totals(10 * sec), (1, 1));
        assert_eq!(w.totals(15 * sec), (0, 0));
        // A bucket slot reused a full turn later starts from zero.
        w.record(20 * sec, false);
        assert_eq!(w.totals(20 * sec), (1, 0));
        w.clear();
        assert_eq!(w.totals(20 * sec), (0, 0));
    }
}
