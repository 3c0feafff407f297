//! Scheduled purge of finished outbox work: done jobs and recorded webhook events older than a
//! retention ([`DEFAULT_RETENTION`], `ORDER_SERVICE_RETENTION_DAYS`), once at start and then
//! every [`PURGE_INTERVAL`]. Dead letters, and the events they belong to, are kept until replayed
//! and done.
//!
//! A purged event id is no longer deduplicated, so the retention must exceed the longest
//! redelivery window of the webhook senders (Stripe retries for up to 3 days).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use integrations_core::Result;
use integrations_outbox::{OutboxStore, PurgeOutcome};

/// How long done jobs and recorded events are kept by default: 7 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often the purge runs.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Removes done jobs and recorded events older than `retention` as of `now`.
///
/// # Errors
/// The outbox's failures.
pub async fn purge_once(
    outbox: &dyn OutboxStore,
    retention: Duration,
    now: SystemTime,
) -> Result<PurgeOutcome> {
    let before = now.checked_sub(retention).unwrap_or(SystemTime::UNIX_EPOCH);
    let outcome = outbox.purge(before).await?;
    if outcome.jobs > 0 || outcome.events > 0 {
        tracing::info!(
            jobs = outcome.jobs,
            events = outcome.events,
            "purged finished outbox work"
        );
    }
    Ok(outcome)
}

/// Purges at once, then every `interval`, until `stop` fires (or its sender is dropped).
pub async fn purge_every(
    outbox: Arc<dyn OutboxStore>,
    retention: Duration,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = purge_once(&*outbox, retention, SystemTime::now()).await {
            tracing::warn!(error = %e, "outbox purge failed");
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// The retention from `ORDER_SERVICE_RETENTION_DAYS` (whole days, at least 1), or
/// [`DEFAULT_RETENTION`] when unset.
///
/// # Errors
/// [`integrations_core::Error::Configuration`] naming the variable for anything but a positive
/// whole number of days.
pub fn retention_from(value: Option<&str>) -> Result<Duration> {
    let Some(raw) = value else {
        return Ok(DEFAULT_RETENTION);
    };
    match raw.trim().parse::<u64>() {
        Ok(days) if (1..=36_500).contains(&days) => Ok(Duration::from_secs(days * 24 * 3600)),
        _ => Err(integrations_core::Error::configuration(
            "ORDER_SERVICE_RETENTION_DAYS",
            "must be a whole number of days between 1 and 36500",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_days_are_read_and_checked() {
        assert_eq!(retention_from(None).unwrap(), DEFAULT_RETENTION);
        assert_eq!(
            retention_from(Some("3")).unwrap(),
            Duration::from_secs(3 * 86_400)
        );
        for bad in ["0", "-1", "x", "1.5", ""] {
            let e = retention_from(Some(bad)).unwrap_err();
            assert_eq!(e.field(), Some("ORDER_SERVICE_RETENTION_DAYS"), "{bad}");
        }
    }
}
