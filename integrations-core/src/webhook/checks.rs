//! The checks every verifier runs before (body size) and after (timestamp) parsing headers.

use std::time::{Duration, SystemTime};

use crate::SignatureFailure;
use crate::clock::unix_seconds;

/// Default timestamp tolerance: 300 seconds either side of now (Stripe's and Standard Webhooks').
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Default body limit: 1 MiB. Larger bodies are refused before any MAC is computed.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Checks that the signed `timestamp_unix` is within `tolerance` of `now`, in either direction:
/// `|now − timestamp| ≤ tolerance`, in whole seconds (`now` rounded down, sub-second tolerance
/// ignored).
///
/// An old timestamp means a replay; one in the future means a skewed or forged clock. Both are
/// refused.
///
/// # Errors
/// [`SignatureFailure::TimestampOutsideTolerance`] carrying the timestamp, now and the tolerance.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use integrations_core::webhook::check_timestamp;
///
/// let now = UNIX_EPOCH + Duration::from_secs(1_000);
/// let tolerance = Duration::from_secs(300);
/// assert!(check_timestamp(700, now, tolerance).is_ok());
/// assert!(check_timestamp(1_300, now, tolerance).is_ok());
/// assert!(check_timestamp(699, now, tolerance).is_err());
/// assert!(check_timestamp(1_301, now, tolerance).is_err());
/// ```
pub fn check_timestamp(
    timestamp_unix: i64,
    now: SystemTime,
    tolerance: Duration,
) -> Result<(), SignatureFailure> {
    let now_secs = unix_seconds(now);
    let distance = (i128::from(now_secs) - i128::from(timestamp_unix)).unsigned_abs();
    if distance <= u128::from(tolerance.as_secs()) {
        Ok(())
    } else {
        Err(SignatureFailure::TimestampOutsideTolerance {
            timestamp: timestamp_unix,
            now: now_secs,
            tolerance_secs: tolerance.as_secs(),
        })
    }
}

/// Checks a body length against a limit (`len ≤ limit` passes).
///
/// # Errors
/// [`SignatureFailure::BodyTooLarge`].
///
/// ```
/// use integrations_core::webhook::{check_body_size, DEFAULT_BODY_LIMIT};
///
/// assert!(check_body_size(DEFAULT_BODY_LIMIT, DEFAULT_BODY_LIMIT).is_ok());
/// assert!(check_body_size(DEFAULT_BODY_LIMIT + 1, DEFAULT_BODY_LIMIT).is_err());
/// ```
pub fn check_body_size(len: usize, limit: usize) -> Result<(), SignatureFailure> {
    if len <= limit {
        Ok(())
    } else {
        Err(SignatureFailure::BodyTooLarge { size: len, limit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::from_unix_seconds;

    #[test]
    fn tolerance_is_symmetric_and_inclusive() {
        let now = from_unix_seconds(1_614_265_330);
        let t = DEFAULT_TOLERANCE;
        assert!(check_timestamp(1_614_265_330, now, t).is_ok());
        assert!(check_timestamp(1_614_265_330 - 300, now, t).is_ok());
        assert!(check_timestamp(1_614_265_330 + 300, now, t).is_ok());
        assert_eq!(
            check_timestamp(1_614_265_330 - 301, now, t),
            Err(SignatureFailure::TimestampOutsideTolerance {
                timestamp: 1_614_265_029,
                now: 1_614_265_330,
                tolerance_secs: 300
            })
        );
        assert!(check_timestamp(1_614_265_330 + 301, now, t).is_err());
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        let now = from_unix_seconds(1_614_265_330);
        assert!(check_timestamp(i64::MIN, now, DEFAULT_TOLERANCE).is_err());
        assert!(check_timestamp(i64::MAX, now, DEFAULT_TOLERANCE).is_err());
        assert!(check_timestamp(i64::MAX, now, Duration::MAX).is_ok());
        assert!(check_timestamp(-5, from_unix_seconds(-5), Duration::ZERO).is_ok());
    }

    #[test]
    fn body_limit() {
        assert!(check_body_size(0, 0).is_ok());
        assert_eq!(
            check_body_size(11, 10),
            Err(SignatureFailure::BodyTooLarge {
                size: 11,
                limit: 10
            })
        );
        assert_eq!(DEFAULT_BODY_LIMIT, 1_048_576);
    }
}
