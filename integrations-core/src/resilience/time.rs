//! The policy's monotonic time: tokio's clock, read through the TSC on the hot path.
//!
//! Every [`Policy`](super::Policy) call needs a reading of tokio's clock for the rate limiter's
//! permit check, for the overall deadline and for the step of the metrics' sliding window, and
//! it reads `quanta` (the TSC) twice to time the call's latency. A reading of tokio's clock is a
//! `clock_gettime(CLOCK_MONOTONIC)`, about 20 ns through the vDSO on the development VM: a
//! sixth of a whole policy call (the `policy` bench). [`TimeSource::Tsc`] turns the latency
//! timer's TSC reading into a tokio [`Instant`] instead: the clock's origin plus the TSC time
//! since the origin's TSC reading, corrected once a second against `CLOCK_MONOTONIC` (which NTP
//! slews, while the TSC's rate is whatever `quanta` calibrated at start), so the two never drift
//! apart by more than a second's drift (microseconds).
//!
//! Hand-written because neither `quanta` (its own `Instant` type, calibrated once) nor tokio
//! (whose `Instant::now` is always a system call or a vDSO read) maps one clock onto the other.
//!
//! That mapping follows real time, so it does not see a paused tokio clock
//! (`tokio::time::pause`, `#[tokio::test(start_paused = true)]`). [`TimeSource::Tokio`] reads
//! tokio's clock itself and does: it is the default with the `test-util` feature (and in this
//! crate's own unit tests), [`TimeSource::Tsc`] otherwise.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Where a policy call's readings of tokio's clock come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeSource {
    /// The call's TSC reading, mapped onto tokio's clock (real time only).
    Tsc,
    /// tokio's clock, read each time (follows a paused test clock).
    Tokio,
}

impl TimeSource {
    /// [`TimeSource::Tokio`] with the `test-util` feature and in this crate's unit tests,
    /// [`TimeSource::Tsc`] otherwise.
    pub(crate) const DEFAULT: TimeSource = if cfg!(any(test, feature = "test-util")) {
        TimeSource::Tokio
    } else {
        TimeSource::Tsc
    };

    /// tokio's time at the TSC reading `tsc` (taken a moment ago).
    #[inline]
    pub(crate) fn tokio_at(self, tsc: quanta::Instant) -> Instant {
        match self {
            TimeSource::Tsc => Anchor::get().map(tsc),
            TimeSource::Tokio => Instant::now(),
        }
    }
}

/// How often the mapping is corrected against `CLOCK_MONOTONIC`, in nanoseconds of TSC time.
const REFRESH_NANOS: u64 = 1_000_000_000;

/// One reading of both clocks, and the correction taken since.
struct Anchor {
    /// `CLOCK_MONOTONIC` at the origin (std's clock: a paused tokio clock must not leak in).
    mono: std::time::Instant,
    /// The TSC at the origin.
    tsc: quanta::Instant,
    /// Nanoseconds to add to TSC time since the origin to get monotonic time since the origin,
    /// as of the last correction.
    correction: AtomicI64,
    /// TSC time since the origin of the last correction, in nanoseconds.
    corrected_at: AtomicU64,
}

static ANCHOR: OnceLock<Anchor> = OnceLock::new();

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Anchor {
    #[inline]
    fn get() -> &'static Anchor {
        ANCHOR.get_or_init(|| {
            let tsc = quanta::Instant::now();
            let mono = std::time::Instant::now();
            Anchor {
                mono,
                tsc,
                correction: AtomicI64::new(0),
                corrected_at: AtomicU64::new(0),
            }
        })
    }

    /// Monotonic time at `tsc`, as a tokio [`Instant`].
    #[inline]
    fn map(&self, tsc: quanta::Instant) -> Instant {
        let since = nanos(tsc.saturating_duration_since(self.tsc));
        if since.saturating_sub(self.corrected_at.load(Ordering::Relaxed)) >= REFRESH_NANOS {
            self.correct();
        }
        let correction = self.correction.load(Ordering::Relaxed);
        let mono = since.saturating_add_signed(correction);
        Instant::from_std(self.mono) + Duration::from_nanos(mono)
    }

    /// Takes a fresh pair of readings. Out of the hot path: once a second, by whichever call
    /// notices first (two calls racing both store a valid correction).
    #[cold]
    #[inline(never)]
    fn correct(&self) {
        let tsc = quanta::Instant::now();
        let mono = std::time::Instant::now();
        let tsc_since = nanos(tsc.saturating_duration_since(self.tsc));
        let mono_since = nanos(mono.saturating_duration_since(self.mono));
        let correction = i64::try_from(i128::from(mono_since) - i128::from(tsc_since)).unwrap_or(
            if mono_since > tsc_since {
                i64::MAX
            } else {
                i64::MIN
            },
        );
        self.correction.store(correction, Ordering::Relaxed);
        self.corrected_at.store(tsc_since, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mapped clock reads what `CLOCK_MONOTONIC` reads, to well within a millisecond, and
    /// never runs backwards across corrections.
    #[test]
    fn the_tsc_mapping_follows_the_monotonic_clock() {
        let mut last = TimeSource::Tsc.tokio_at(quanta::Instant::now());
        let until = std::time::Instant::now() + Duration::from_millis(1_200);
        let mut worst = Duration::ZERO;
        let mut corrections = 0;
        let mut seen_at = ANCHOR.get().map(|a| a.corrected_at.load(Ordering::Relaxed));
        while std::time::Instant::now() < until {
            let before = std::time::Instant::now();
            let mapped = TimeSource::Tsc.tokio_at(quanta::Instant::now()).into_std();
            let after = std::time::Instant::now();
            // Off by at most what the anchor's drift allows (tens of µs), measured from the
            // nearest of the two readings around the mapping.
            let off = if mapped < before {
                before - mapped
            } else {
                mapped.saturating_duration_since(after)
            };
            worst = worst.max(off);
            // Corrections move the mapping by microseconds; allow that much backwards.
            assert!(
                mapped + Duration::from_micros(200) >= last.into_std(),
                "ran backwards"
            );
            last = Instant::from_std(mapped);
            let at = ANCHOR.get().map(|a| a.corrected_at.load(Ordering::Relaxed));
            if at != seen_at {
                corrections += 1;
                seen_at = at;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(worst < Duration::from_millis(1), "off by {worst:?}");
        assert!(corrections >= 1, "{corrections} corrections in 1.2 s");
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_tokio_source_follows_a_paused_clock() {
        let tsc = quanta::Instant::now();
        let before = TimeSource::Tokio.tokio_at(tsc);
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(
            TimeSource::Tokio.tokio_at(tsc) - before,
            Duration::from_secs(3600)
        );
        let real = TimeSource::Tsc.tokio_at(quanta::Instant::now());
        assert!(real < TimeSource::Tokio.tokio_at(tsc));
    }
}
