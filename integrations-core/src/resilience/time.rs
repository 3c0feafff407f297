//! The policy's monotonic time: tokio's clock, read through the TSC on the hot path.
//!
//! Every [`Policy`](super::Policy) call needs a reading of tokio's clock for the rate limiter's
//! permit check, for the overall deadline and for the step of the metrics' sliding window, and
//! it reads `quanta` (the TSC) twice to time the call's latency. A reading of tokio's clock is a
//! `clock_gettime(CLOCK_MONOTONIC)`, about 20 ns through the vDSO on the development VM: a
//! sixth of a whole policy call (the `policy` bench). [`TimeSource::Tsc`] turns the latency
//! timer's TSC reading into a reading of tokio's clock instead, a [`Moment`] (integer
//! nanoseconds, which the hot path subtracts without `Instant`'s `timespec` arithmetic): the
//! TSC time since the origin's TSC reading, corrected once a second against `CLOCK_MONOTONIC` (which NTP
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

    /// tokio's time at the TSC reading `tsc` (taken a moment ago), as a [`Moment`].
    #[inline]
    pub(crate) fn moment_at(self, tsc: quanta::Instant) -> Moment {
        match self {
            TimeSource::Tsc => Anchor::get().moment(tsc),
            TimeSource::Tokio => Moment::now(),
        }
    }
}

/// A reading of tokio's clock as signed nanoseconds from a fixed origin (the first reading the
/// process took), the form the policy's hot path works in.
///
/// A tokio [`Instant`] is a `timespec`: every difference or sum of two normalises seconds and
/// nanoseconds in out-of-line `std` functions, and the rate limiter's check, the latency
/// window's step and the call's end each made one (an eighth of a composed call in `perf`).
/// Moments subtract as integers; they become an [`Instant`] again only where a timer needs one.
/// Signed, so that a paused test clock that reads earlier than the origin still maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Moment(i64);

impl Moment {
    /// tokio's clock now (a paused test clock included).
    pub(crate) fn now() -> Moment {
        Moment::of(Instant::now())
    }

    /// The moment of `instant`.
    pub(crate) fn of(instant: Instant) -> Moment {
        let origin = Instant::from_std(Anchor::get().mono);
        let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        if instant >= origin {
            Moment(nanos(instant - origin))
        } else {
            Moment(-nanos(origin - instant))
        }
    }

    /// The [`Instant`] of this moment (for a timer), `None` past the range of `Instant`.
    pub(crate) fn instant(self) -> Option<Instant> {
        let origin = Instant::from_std(Anchor::get().mono);
        let d = Duration::from_nanos(self.0.unsigned_abs());
        if self.0 >= 0 {
            origin.checked_add(d)
        } else {
            origin.checked_sub(d)
        }
    }

    /// `nanos` nanoseconds later.
    #[inline]
    pub(crate) fn after_nanos(self, nanos: u64) -> Moment {
        Moment(
            self.0
                .saturating_add(i64::try_from(nanos).unwrap_or(i64::MAX)),
        )
    }

    /// `d` later, or `None` past the range of a moment (~292 years): a `Duration::MAX`
    /// deadline is no deadline, as `Instant::checked_add` made it.
    #[inline]
    pub(crate) fn checked_after(self, d: Duration) -> Option<Moment> {
        let d = i64::try_from(nanos(d)).ok()?;
        self.0.checked_add(d).map(Moment)
    }

    /// Nanoseconds since `earlier` (0 if it is not earlier).
    #[inline]
    pub(crate) fn nanos_since(self, earlier: Moment) -> u64 {
        u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0)
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

/// `d` in nanoseconds, saturating at `u64::MAX` (~584 years). In `u64` arithmetic rather than
/// `as_nanos`' `u128`: after a `Duration` made from nanoseconds (a `quanta` difference) the
/// compiler then folds the round trip away, where the `u128` one cost two multiplications and a
/// division on every call.
#[inline]
pub(crate) fn nanos(d: Duration) -> u64 {
    d.as_secs()
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(u64::from(d.subsec_nanos())))
        .unwrap_or(u64::MAX)
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

    /// Monotonic time at `tsc`, as a [`Moment`] (whose origin is this anchor's `mono`).
    #[inline]
    fn moment(&self, tsc: quanta::Instant) -> Moment {
        let since = nanos(tsc.saturating_duration_since(self.tsc));
        if since.saturating_sub(self.corrected_at.load(Ordering::Relaxed)) >= REFRESH_NANOS {
            self.correct();
        }
        let correction = self.correction.load(Ordering::Relaxed);
        let mono = since.saturating_add_signed(correction);
        Moment(i64::try_from(mono).unwrap_or(i64::MAX))
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
        let mut last = TimeSource::Tsc
            .moment_at(quanta::Instant::now())
            .instant()
            .unwrap();
        let until = std::time::Instant::now() + Duration::from_millis(1_200);
        let mut worst = Duration::ZERO;
        let mut corrections = 0;
        let mut seen_at = ANCHOR.get().map(|a| a.corrected_at.load(Ordering::Relaxed));
        while std::time::Instant::now() < until {
            let before = std::time::Instant::now();
            let mapped = TimeSource::Tsc
                .moment_at(quanta::Instant::now())
                .instant()
                .unwrap()
                .into_std();
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

    #[test]
    fn moments_map_back_to_their_instants_and_subtract_as_nanoseconds() {
        let now = Instant::now();
        let origin = Instant::from_std(Anchor::get().mono);
        for t in [
            now,
            origin,
            origin + Duration::from_nanos(1),
            now + Duration::from_secs(86_400),
        ] {
            assert_eq!(Moment::of(t).instant(), Some(t));
        }
        // Before the origin (a paused test clock can read there).
        if let Some(early) = origin.checked_sub(Duration::from_millis(3)) {
            let m = Moment::of(early);
            assert!(m < Moment::of(origin));
            assert_eq!(m.instant(), Some(early));
            assert_eq!(Moment::of(origin).nanos_since(m), 3_000_000);
        }
        let m = Moment::of(now);
        let later = m.after_nanos(nanos(Duration::from_micros(1_500)));
        assert_eq!(later.nanos_since(m), 1_500_000);
        assert_eq!(m.nanos_since(later), 0);
        assert_eq!(later.instant(), Some(now + Duration::from_micros(1_500)));
        assert_eq!(m.after_nanos(nanos(Duration::MAX)).0, i64::MAX);
        assert_eq!(m.checked_after(Duration::MAX), None);
        assert_eq!(
            m.checked_after(Duration::from_nanos(5)),
            Some(Moment(m.0 + 5))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_tokio_source_follows_a_paused_clock() {
        let tsc = quanta::Instant::now();
        let before = TimeSource::Tokio.moment_at(tsc).instant().unwrap();
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(
            TimeSource::Tokio.moment_at(tsc).instant().unwrap() - before,
            Duration::from_secs(3600)
        );
        let real = TimeSource::Tsc
            .moment_at(quanta::Instant::now())
            .instant()
            .unwrap();
        assert!(real < TimeSource::Tokio.moment_at(tsc).instant().unwrap());
    }

    #[test]
    fn nanos_agree_with_the_durations_own_and_saturate() {
        for d in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_nanos(999_999_999),
            Duration::from_secs(1),
            Duration::new(18_446_744_073, 709_551_615), // u64::MAX nanoseconds
        ] {
            assert_eq!(u128::from(nanos(d)), d.as_nanos(), "{d:?}");
        }
        assert_eq!(nanos(Duration::new(18_446_744_073, 709_551_616)), u64::MAX);
        assert_eq!(nanos(Duration::from_secs(u64::MAX)), u64::MAX);
        assert_eq!(nanos(Duration::MAX), u64::MAX);
    }
}
