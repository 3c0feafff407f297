//! Amazon CloudWatch (feature `cloudwatch`): metrics ([`CloudWatchMetrics`], from core's
//! [`MetricsSnapshot`](integrations_core::metrics::MetricsSnapshot)) and logs
//! ([`CloudWatchLogs`], and [`CloudWatchLogsLayer`] for `tracing`).

mod layer;
mod logs;
mod metrics;

use std::time::{SystemTime, UNIX_EPOCH};

pub use layer::{
    CloudWatchLogsLayer, LogShipper, LogShipperConfig, LogShipperHandle, LogShipperStats,
};
pub use logs::{
    CloudWatchLogs, EVENT_OVERHEAD_BYTES, LogEvent, MAX_BATCH_BYTES, MAX_BATCH_SPAN,
    MAX_EVENTS_PER_CALL, MAX_MESSAGE_BYTES, PutLogOutcome,
};
pub use metrics::{CloudWatchMetrics, MAX_DATA_PER_CALL, MAX_REQUEST_BYTES, MetricDatum};

/// `2024-02-29T12:00:00Z` (second precision, UTC).
pub(crate) fn iso8601(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_iso8601() {
        let at = |s: u64| iso8601(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(1_709_208_000), "2024-02-29T12:00:00Z");
        assert_eq!(at(1_335_920_046), "2012-05-02T00:54:06Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
    }
}
