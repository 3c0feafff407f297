//! Latency histograms: fixed buckets counted since start (the Prometheus `_bucket` series) and a
//! sliding window of log-scale buckets (the snapshot's quantiles).
//!
//! Hand-written rather than on `hdrhistogram` (used here before) because recording into an HDR
//! histogram needs `&mut` and so a lock on every call, and its counts never reset; these are
//! relaxed atomic increments, and the window forgets what is older than [`WINDOW`]. Quantiles
//! of the window come from buckets 1/16 of a power of two wide: a reported quantile is within
//! about 3 % of the true one (exact below 16 µs).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::resilience::time::Moment;

/// One upper bound of a fixed-bucket histogram: in microseconds, and as written in the `le`
/// label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// Upper bound (inclusive) in microseconds.
    pub micros: u64,
    /// The same bound in seconds as Prometheus' `le` label writes it.
    pub le: &'static str,
}

const fn b(micros: u64, le: &'static str) -> Bound {
    Bound { micros, le }
}

/// Bucket bounds of `integration_latency_seconds`: 5 ms to 60 s (plus `+Inf`), from a quick
/// cache hit to a call stretched by retries up to the longest default deadline.
pub const LATENCY_BUCKETS: &[Bound] = &[
    b(5_000, "0.005"),
    b(10_000, "0.01"),
    b(25_000, "0.025"),
    b(50_000, "0.05"),
    b(100_000, "0.1"),
    b(250_000, "0.25"),
    b(500_000, "0.5"),
    b(1_000_000, "1"),
    b(2_500_000, "2.5"),
    b(5_000_000, "5"),
    b(10_000_000, "10"),
    b(30_000_000, "30"),
    b(60_000_000, "60"),
];

/// Length of the sliding window the snapshot's quantiles cover.
pub const WINDOW: Duration = Duration::from_secs(300);
/// The window moves in steps of this length: it holds the current step (partly elapsed) and the
/// nine before it, so it covers the last 4½ to 5 minutes.
pub const WINDOW_STEP: Duration = Duration::from_secs(30);
const STEPS: usize = 10;
const _: () = assert!(WINDOW.as_secs() == WINDOW_STEP.as_secs() * STEPS as u64);

/// Largest latency the window tells apart (10 minutes, in microseconds); longer ones count as
/// this.
const MAX_TRACKED_MICROS: u64 = 600_000_000;
/// Sub-buckets per power of two.
const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;
/// Log-scale buckets covering 0..=MAX_TRACKED_MICROS (2^30 > MAX_TRACKED_MICROS).
const LOG_BUCKETS: usize = (SUB + (30 - SUB_BITS as u64) * SUB) as usize;

pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Per log-scale bucket, how many of [`LATENCY_BUCKETS`]' bounds lie below the bucket's lowest
/// value: where the search for a latency's fixed bucket starts (see
/// [`FixedHistogram::record_micros`]).
const LATENCY_INDEX: [u8; LOG_BUCKETS] = index_table(LATENCY_BUCKETS);

const fn index_table(bounds: &[Bound]) -> [u8; LOG_BUCKETS] {
    assert!(bounds.len() < u8::MAX as usize);
    let mut table = [0u8; LOG_BUCKETS];
    let mut l = 0;
    while l < LOG_BUCKETS {
        let low = log_low(l);
        let mut below = 0;
        while below < bounds.len() && bounds[below].micros < low {
            below += 1;
        }
        table[l] = below as u8;
        l += 1;
    }
    table
}

/// Counts per fixed bucket since start, and their sum: a Prometheus histogram.
#[derive(Debug)]
pub struct FixedHistogram {
    bounds: &'static [Bound],
    /// [`LATENCY_INDEX`] when the bounds are [`LATENCY_BUCKETS`] (the policy's latency, on every
    /// call); other bounds are searched.
    index: Option<&'static [u8; LOG_BUCKETS]>,
    /// Per bucket (not cumulative), the last one is `+Inf`.
    counts: Box<[AtomicU64]>,
    sum_micros: AtomicU64,
}

/// A [`FixedHistogram`] read at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct FixedSnapshot {
    /// `(le, cumulative count)` per bound, `+Inf` last.
    pub buckets: Vec<(&'static str, u64)>,
    /// Observations (the `+Inf` bucket).
    pub count: u64,
    /// Sum of observations in seconds.
    pub sum_seconds: f64,
}

impl FixedHistogram {
    /// Empty, with `bounds` (ascending).
    pub fn new(bounds: &'static [Bound]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0].micros < w[1].micros));
        FixedHistogram {
            bounds,
            index: (bounds == LATENCY_BUCKETS).then_some(&LATENCY_INDEX),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Counts one observation.
    #[inline]
    pub fn record(&self, value: Duration) {
        self.record_micros(micros(value));
    }

    /// Counts one observation of `us` microseconds.
    #[inline]
    pub(crate) fn record_micros(&self, us: u64) {
        let i = match self.index {
            // The bounds below the value's log-scale bucket, then the few (most often none)
            // inside it: one load and a compare where a binary search made four dependent ones
            // (a quarter of the metrics' recording in `perf annotate`).
            Some(index) => {
                let mut i = usize::from(index[log_index(us)]);
                while self.bounds.get(i).is_some_and(|b| b.micros < us) {
                    i += 1;
                }
                i
            }
            None => self.bounds.partition_point(|b| b.micros < us),
        };
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        // Wraps only past u64 microseconds in all (half a million years of latency).
        self.sum_micros
            .fetch_add(us.min(u64::MAX / 2), Ordering::Relaxed);
    }

    /// Observations counted (the sum of the buckets).
    pub fn count(&self) -> u64 {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .fold(0, u64::saturating_add)
    }

    /// Cumulative counts, as Prometheus exposes them.
    pub fn snapshot(&self) -> FixedSnapshot {
        let mut total = 0u64;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            total = total.saturating_add(c.load(Ordering::Relaxed));
            let le = self.bounds.get(i).map_or("+Inf", |b| b.le);
            buckets.push((le, total));
        }
        FixedSnapshot {
            buckets,
            count: total,
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

impl FixedSnapshot {
    /// Adds `other`, a snapshot of a histogram with the same bounds.
    pub(crate) fn add(&mut self, other: &FixedSnapshot) {
        debug_assert_eq!(self.buckets.len(), other.buckets.len());
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            mine.1 = mine.1.saturating_add(theirs.1);
        }
        self.count = self.count.saturating_add(other.count);
        self.sum_seconds += other.sum_seconds;
    }
}

/// The lowest value of log-scale bucket `i`, in microseconds.
const fn log_low(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let shift = (i - SUB) / SUB;
    let sub = (i - SUB) % SUB;
    (SUB + sub) << shift
}

/// Index of the log-scale bucket holding `us`.
#[inline]
fn log_index(us: u64) -> usize {
    let us = us.min(MAX_TRACKED_MICROS);
    if us < SUB {
        return us as usize;
    }
    let msb = 63 - us.leading_zeros();
    let shift = msb - SUB_BITS;
    let sub = (us >> shift) & (SUB - 1);
    (SUB + u64::from(shift) * SUB + sub) as usize
}

/// The middle of bucket `i`, in microseconds (the bucket's only value below 16 µs).
fn log_value(i: usize) -> f64 {
    let i = i as u64;
    if i < SUB {
        return i as f64;
    }
    let shift = (i - SUB) / SUB;
    let sub = (i - SUB) % SUB;
    let low = (SUB + sub) << shift;
    let width = 1u64 << shift;
    low as f64 + (width - 1) as f64 / 2.0
}

struct Step {
    /// The step number held plus one (0: never used).
    epoch: AtomicU64,
    /// Taken only to clear the step when the window moves onto it.
    rotate: Mutex<()>,
    counts: Box<[AtomicU64]>,
    max_micros: AtomicU64,
}

/// Log-scale bucket counts of the last [`WINDOW`], in [`WINDOW_STEP`] steps.
pub(crate) struct Window {
    start: Moment,
    steps: [Step; STEPS],
}

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window").finish_non_exhaustive()
    }
}

/// The window's latencies at one moment.
#[derive(Debug, Clone)]
pub(crate) struct WindowCounts {
    counts: Vec<u64>,
    pub(crate) total: u64,
    pub(crate) max_micros: u64,
}

impl Window {
    pub(crate) fn new() -> Self {
        Window {
            start: Moment::now(),
            steps: std::array::from_fn(|_| Step {
                epoch: AtomicU64::new(0),
                rotate: Mutex::new(()),
                counts: (0..LOG_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
                max_micros: AtomicU64::new(0),
            }),
        }
    }

    fn step_number(&self, now: Moment) -> u64 {
        const STEP_NANOS: u64 = WINDOW_STEP.as_secs() * 1_000_000_000;
        now.nanos_since(self.start) / STEP_NANOS
    }

    /// Counts `value`, observed at `now`.
    #[cfg(test)]
    pub(crate) fn record(&self, value: Duration, now: Instant) {
        self.record_micros(micros(value), Moment::of(now));
    }

    /// Counts `us` microseconds, observed at `now`.
    #[inline]
    pub(crate) fn record_micros(&self, us: u64, now: Moment) {
        let n = self.step_number(now);
        let step = &self.steps[(n % STEPS as u64) as usize];
        let epoch = n + 1;
        if step.epoch.load(Ordering::Acquire) != epoch && !Self::rotate(step, epoch) {
            return; // a step already past the window (this thread was descheduled that long)
        }
        step.counts[log_index(us)].fetch_add(1, Ordering::Relaxed);
        // A plain load first: most calls are not the window's slowest, and a load is cheaper
        // than the read-modify-write of `fetch_max`.
        if us > step.max_micros.load(Ordering::Relaxed) {
            step.max_micros.fetch_max(us, Ordering::Relaxed);
        }
    }

    /// Moves `step` on to `epoch` (clearing it) unless another thread did; `false` if the step
    /// already holds a later epoch. Once per step and [`WINDOW_STEP`]: out of the hot path.
    #[cold]
    #[inline(never)]
    fn rotate(step: &Step, epoch: u64) -> bool {
        let _guard = step.rotate.lock().unwrap_or_else(PoisonError::into_inner);
        let held = step.epoch.load(Ordering::Acquire);
        if held > epoch {
            return false;
        }
        if held < epoch {
            for c in step.counts.iter() {
                c.store(0, Ordering::Relaxed);
            }
            step.max_micros.store(0, Ordering::Relaxed);
            step.epoch.store(epoch, Ordering::Release);
        }
        true
    }

    /// The counts of the steps still inside the window at `now`.
    pub(crate) fn read(&self, now: Instant) -> WindowCounts {
        let n = self.step_number(Moment::of(now));
        let mut out = WindowCounts {
            counts: vec![0; LOG_BUCKETS],
            total: 0,
            max_micros: 0,
        };
        for step in &self.steps {
            let epoch = step.epoch.load(Ordering::Acquire);
            if epoch == 0 || epoch > n + 1 || epoch + (STEPS as u64) <= n + 1 {
                continue;
            }
            for (sum, c) in out.counts.iter_mut().zip(step.counts.iter()) {
                *sum += c.load(Ordering::Relaxed);
            }
            out.max_micros = out.max_micros.max(step.max_micros.load(Ordering::Relaxed));
        }
        out.total = out.counts.iter().sum();
        out
    }
}

impl WindowCounts {
    /// Adds `other`'s counts (to merge operations into their provider).
    pub(crate) fn merge(&mut self, other: &WindowCounts) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max_micros = self.max_micros.max(other.max_micros);
    }

    /// Empty counts to merge into.
    pub(crate) fn empty() -> Self {
        WindowCounts {
            counts: vec![0; LOG_BUCKETS],
            total: 0,
            max_micros: 0,
        }
    }

    /// The `q` quantile (0..=1) in milliseconds; `NaN` when the window is empty.
    pub(crate) fn quantile_ms(&self, q: f64) -> f64 {
        if self.total == 0 {
            return f64::NAN;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return log_value(i).min(self.max_micros as f64) / 1000.0;
            }
        }
        self.max_micros as f64 / 1000.0
    }

    /// The largest latency in the window in milliseconds; `NaN` when empty.
    pub(crate) fn max_ms(&self) -> f64 {
        if self.total == 0 {
            f64::NAN
        } else {
            self.max_micros as f64 / 1000.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_buckets_cover_the_range_in_order() {
        assert_eq!(log_index(0), 0);
        assert_eq!(log_index(15), 15);
        assert_eq!(log_index(16), 16);
        assert_eq!(log_index(MAX_TRACKED_MICROS), log_index(u64::MAX));
        assert!(log_index(MAX_TRACKED_MICROS) < LOG_BUCKETS);
        let mut last = 0;
        for us in (0..2_000_000u64).step_by(7) {
            let i = log_index(us);
            assert!(i >= last, "{us}");
            last = i;
            // The bucket's middle is within 1/32 of any value in it.
            let mid = log_value(i);
            assert!(
                (mid - us as f64).abs() <= us as f64 / 32.0 + 0.5,
                "{us} {mid}"
            );
        }
    }

    /// The bucket a value is counted in, as the snapshot reads it back.
    fn bucket_of(h: &FixedHistogram, us: u64) -> usize {
        let before = h.snapshot();
        h.record_micros(us);
        let after = h.snapshot();
        (0..after.buckets.len())
            .find(|&i| after.buckets[i].1 != before.buckets[i].1)
            .expect("counted")
    }

    #[test]
    fn the_latency_index_finds_the_bucket_a_search_finds() {
        assert!(FixedHistogram::new(LATENCY_BUCKETS).index.is_some());
        let searched = FixedHistogram::new(&LATENCY_BUCKETS[..12]);
        assert!(searched.index.is_none());
        let h = FixedHistogram::new(LATENCY_BUCKETS);
        let mut values = vec![0, 1, 15, 16, 17, MAX_TRACKED_MICROS, MAX_TRACKED_MICROS + 1];
        values.extend([u64::MAX / 2, u64::MAX]);
        for b in LATENCY_BUCKETS {
            values.extend([b.micros - 1, b.micros, b.micros + 1]);
        }
        for i in 0..LOG_BUCKETS {
            let low = log_low(i);
            // The buckets past the largest tracked latency's are never used.
            if low <= MAX_TRACKED_MICROS {
                assert_eq!(log_index(low), i, "bucket {i} starts at {low}");
            }
            values.extend([low, low.saturating_sub(1)]);
        }
        for us in values {
            let want = LATENCY_BUCKETS.partition_point(|b| b.micros < us);
            assert_eq!(bucket_of(&h, us), want, "{us} µs");
        }
    }

    #[test]
    fn fixed_buckets_are_inclusive_and_cumulative() {
        let h = FixedHistogram::new(LATENCY_BUCKETS);
        h.record(Duration::from_millis(5)); // le 0.005 (inclusive)
        h.record(Duration::from_micros(5_001)); // le 0.01
        h.record(Duration::from_secs(61)); // +Inf only
        let s = h.snapshot();
        assert_eq!(s.buckets[0], ("0.005", 1));
        assert_eq!(s.buckets[1], ("0.01", 2));
        assert_eq!(s.buckets[12], ("60", 2));
        assert_eq!(s.buckets[13], ("+Inf", 3));
        assert_eq!(s.count, 3);
        assert!(
            (s.sum_seconds - 61.010001).abs() < 1e-9,
            "{}",
            s.sum_seconds
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_forgets_what_is_older_than_five_minutes() {
        let w = Window::new();
        for ms in 1..=100 {
            w.record(Duration::from_millis(ms), Instant::now());
        }
        let c = w.read(Instant::now());
        assert_eq!(c.total, 100);
        let p50 = c.quantile_ms(0.5);
        assert!((p50 - 50.0).abs() <= 50.0 / 32.0, "{p50}");
        assert_eq!(c.max_ms(), 100.0);

        tokio::time::advance(Duration::from_secs(150)).await;
        w.record(Duration::from_secs(2), Instant::now());
        let c = w.read(Instant::now());
        assert_eq!(c.total, 101);
        assert_eq!(c.max_ms(), 2000.0);

        // The first step leaves the window; the 2 s call (150 s later) is still inside.
        tokio::time::advance(WINDOW - Duration::from_secs(140)).await;
        let c = w.read(Instant::now());
        assert_eq!(c.total, 1);
        let p99 = c.quantile_ms(0.99);
        assert!((p99 - 2000.0).abs() <= 2000.0 / 32.0, "{p99}");

        tokio::time::advance(WINDOW).await;
        let c = w.read(Instant::now());
        assert_eq!(c.total, 0);
        assert!(c.quantile_ms(0.5).is_nan() && c.max_ms().is_nan());

        // A step slot used again after a full turn starts from zero.
        w.record(Duration::from_millis(7), Instant::now());
        let c = w.read(Instant::now());
        assert_eq!((c.total, c.max_micros), (1, 7_000));
    }
}
