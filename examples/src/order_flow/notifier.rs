//! [`JsonlNotifier`]: the local stand-in for Amazon SNS, one JSON line per notification, with
//! fault injection for chaos runs.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use integrations_core::clock::unix_seconds;
use integrations_core::provider::Published;
use integrations_core::{Error, Notification, Notifier, Policy, Result};
use serde::{Deserialize, Serialize};

use super::journal::{Journal, for_each_entry, read_entries};

/// The name the notifier reports, in metrics and receipts.
pub const NAME: &str = "notifier-jsonl";

/// How long a dedup id is remembered: SNS FIFO's deduplication interval, five minutes. A repeat
/// within it publishes nothing; one after it is a new message, as on SNS.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(300);

/// How long [`Fault::Hang`] holds a publish unless told otherwise ([`JsonlNotifier::with_hang`]).
pub const DEFAULT_HANG: Duration = Duration::from_secs(3600);

/// One line of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationLine {
    /// `jsonl-<n>`, the line number.
    pub message_id: String,
    /// Subject, if any.
    pub subject: Option<String>,
    /// Body.
    pub body: String,
    /// String attributes (`order_id`, `event`).
    pub attributes: std::collections::BTreeMap<String, String>,
    /// The outbox job's idempotency key.
    pub dedup_id: Option<String>,
    /// Ordering group (the order id).
    pub group_id: Option<String>,
    /// Unix seconds.
    pub published_at: i64,
}

/// The faults [`JsonlNotifier::fail_next`] injects: the testkit's, the same every provider's
/// sandbox understands. `ServerError`/`Unavailable` fail as unavailable and `RateLimited` as
/// rate limited, nothing written; `Hang` holds the publish for the hang time, then fails as
/// unavailable, nothing written; `DropAfterAccept` writes the line, then fails as if the answer
/// was lost.
pub use integrations_testkit::sandbox::Fault;

struct Lines {
    count: u64,
    // What an SNS FIFO topic does with `MessageDeduplicationId`: a repeat within
    // `DEDUP_WINDOW` publishes nothing and gets the first message's id back. Kept for the
    // window only, as SNS does: kept for the life of the file, the ids grew with the run.
    seen: HashMap<String, (String, i64)>,
    /// The ids in `seen` with the second they were published, in the order they were.
    published: VecDeque<(i64, String)>,
}

impl Lines {
    /// Forgets the dedup ids published before `now - DEDUP_WINDOW`.
    fn forget_before(&mut self, now: i64) {
        let oldest = now - DEDUP_WINDOW.as_secs() as i64;
        while let Some((at, _)) = self.published.front() {
            if *at >= oldest {
                break;
            }
            // An id published again after it was forgotten is in `published` twice (a file
            // read back holds both lines): only its own entry goes.
            if let Some((at, id)) = self.published.pop_front()
                && self
                    .seen
                    .get(&id)
                    .is_some_and(|(_, seen_at)| *seen_at == at)
            {
                self.seen.remove(&id);
            }
        }
    }

    fn remember(&mut self, at: i64, dedup_id: &str, message_id: &str) {
        self.seen
            .insert(dedup_id.to_owned(), (message_id.to_owned(), at));
        self.published.push_back((at, dedup_id.to_owned()));
    }
}

fn now_unix() -> i64 {
    unix_seconds(SystemTime::now())
}

/// A [`Notifier`] that appends each notification as a JSON line to a local file.
///
/// It behaves like an SNS FIFO topic where it matters to the outbox: a notification whose
/// `dedup_id` was published within the last [`DEDUP_WINDOW`] (five minutes, SNS's) — by this
/// process, or by an earlier one writing the same file ([`JsonlNotifier::open`]) — is not
/// written again, and the first message id is returned, so a redelivered job has no second
/// effect. Past the window a repeat is published again, as SNS would. Each line is written before `publish` returns. Calls go
/// through `policy`, so they show in the metrics like any provider's.
pub struct JsonlNotifier {
    policy: Policy,
    journal: Journal<NotificationLine>,
    lines: Mutex<Lines>,
    faults: Mutex<VecDeque<Fault>>,
    faults_applied: Mutex<u64>,
    hang: Duration,
    /// Unix seconds now (a test's own clock under `cfg(test)`).
    clock: fn() -> i64,
}

impl fmt::Debug for JsonlNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonlNotifier")
            .field("path", &self.journal.path())
            .field("policy", &self.policy.provider())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unopened(path: &Path, e: Error) -> Error {
    Error::configuration(
        "notifications_file",
        format!("cannot open {}: {e}", path.display()),
    )
    .with_source(e)
}

impl JsonlNotifier {
    /// Creates (or truncates) the file at `path`.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming `notifications_file` if it cannot be created.
    pub async fn create(path: impl Into<PathBuf>, policy: Policy) -> Result<Self> {
        let path = path.into();
        let journal = Journal::create(&path).map_err(|e| unopened(&path, e))?;
        Ok(JsonlNotifier::with_journal(
            journal,
            Vec::new(),
            policy,
            now_unix,
        ))
    }

    /// Opens the file at `path` to append to it (creating it if needed), remembering the dedup
    /// ids of the notifications published there within [`DEDUP_WINDOW`]: a run resumed within
    /// it publishes none of them again (after it, SNS would publish them again, and so does this).
    ///
    /// # Errors
    /// [`Error::Configuration`] naming `notifications_file` if it cannot be opened or holds
    /// something other than notification lines.
    pub async fn open(path: impl Into<PathBuf>, policy: Policy) -> Result<Self> {
        let path = path.into();
        let (journal, before) = Journal::open(&path).map_err(|e| unopened(&path, e))?;
        Ok(JsonlNotifier::with_journal(
            journal, before, policy, now_unix,
        ))
    }

    fn with_journal(
        journal: Journal<NotificationLine>,
        before: Vec<NotificationLine>,
        policy: Policy,
        clock: fn() -> i64,
    ) -> Self {
        let mut lines = Lines {
            count: before.len() as u64,
            seen: HashMap::new(),
            published: VecDeque::new(),
        };
        for l in &before {
            if let Some(d) = &l.dedup_id {
                lines.remember(l.published_at, d, &l.message_id);
            }
        }
        // Lines are in the order they were written; a clock set back between two starts
        // could only keep an id longer.
        lines.forget_before(clock());
        JsonlNotifier {
            policy,
            journal,
            lines: Mutex::new(lines),
            faults: Mutex::new(VecDeque::new()),
            faults_applied: Mutex::new(0),
            hang: DEFAULT_HANG,
            clock,
        }
    }

    /// The notifier on `clock` instead of the system's (unix seconds).
    #[cfg(test)]
    fn with_clock(mut self, clock: fn() -> i64) -> Self {
        self.clock = clock;
        lock(&self.lines).forget_before(clock());
        self
    }

    /// Sets how long [`Fault::Hang`] holds a publish.
    #[must_use]
    pub fn with_hang(mut self, hang: Duration) -> Self {
        self.hang = hang;
        self
    }

    /// The file.
    pub fn path(&self) -> &Path {
        self.journal.path()
    }

    /// Applies `fault` to each of the next `n` publish attempts.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        lock(&self.faults).extend(std::iter::repeat_n(fault, n));
    }

    /// Publish attempts a fault was applied to so far.
    pub fn faults_applied(&self) -> u64 {
        *lock(&self.faults_applied)
    }

    /// Reads every complete line of the file at `path` back (a missing file has none; a last
    /// line still being written is skipped).
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the file cannot be read; [`Error::Configuration`] for a line
    /// that is not a [`NotificationLine`].
    pub async fn read_lines(path: &Path) -> Result<Vec<NotificationLine>> {
        read_entries(path)
    }

    /// Calls `f` with each complete line of the file at `path`, one in memory at a time.
    ///
    /// # Errors
    /// As [`read_lines`](Self::read_lines).
    pub fn for_each_line(path: &Path, f: impl FnMut(NotificationLine)) -> Result<()> {
        for_each_entry(path, f)
    }

    async fn append(&self, n: &Notification) -> Result<Published> {
        n.validate()?;
        let fault = lock(&self.faults).pop_front();
        if fault.is_some() {
            *lock(&self.faults_applied) += 1;
        }
        let injected = |what: &str| {
            Error::unavailable(format!("{what} (fault injection)")).with_provider(NAME)
        };
        match fault {
            Some(Fault::ServerError | Fault::Unavailable) => {
                return Err(injected("notifier unavailable").not_processed());
            }
            Some(Fault::RateLimited { retry_after }) => {
                return Err(Error::rate_limited(
                    retry_after,
                    "notifier rate limit (fault injection)",
                )
                .with_provider(NAME)
                .not_processed());
            }
            Some(Fault::Hang) => {
                tokio::time::sleep(self.hang).await;
                return Err(injected("notifier held the publish and dropped it").not_processed());
            }
            Some(Fault::DropAfterAccept) | None => {}
            // A fault kind newer than this notifier: nothing written, like a 5xx.
            Some(_) => return Err(injected("notifier fault").not_processed()),
        }
        let published = self.write(n)?;
        if fault == Some(Fault::DropAfterAccept) {
            return Err(injected("notifier answer lost after the write"));
        }
        Ok(published)
    }

    fn write(&self, n: &Notification) -> Result<Published> {
        let mut lines = lock(&self.lines);
        let now = (self.clock)();
        lines.forget_before(now);
        if let Some((id, _)) = n.dedup_id.as_ref().and_then(|d| lines.seen.get(d)) {
            return Ok(Published::new(NAME, id.clone()));
        }
        let message_id = format!("jsonl-{}", lines.count + 1);
        let line = NotificationLine {
            message_id: message_id.clone(),
            subject: n.subject.clone(),
            body: n.body.clone(),
            attributes: n.attributes.clone(),
            dedup_id: n.dedup_id.clone(),
            group_id: n.group_id.clone(),
            published_at: now,
        };
        self.journal
            .append(&line)
            .map_err(|e| e.with_provider(NAME))?;
        lines.count += 1;
        if let Some(d) = &n.dedup_id {
            lines.remember(now, d, &message_id);
        }
        Ok(Published::new(NAME, message_id))
    }
}

#[async_trait]
impl Notifier for JsonlNotifier {
    fn name(&self) -> &str {
        NAME
    }

    async fn publish(&self, notification: &Notification) -> Result<Published> {
        self.policy
            .call("publish", |_| self.append(notification))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use integrations_core::metrics::MetricsRegistry;
    use integrations_testkit::{NotifierSuiteConfig, notifier_suite};

    fn policy(registry: &MetricsRegistry) -> Policy {
        Policy::builder(NAME).metrics(registry).build()
    }

    #[tokio::test]
    async fn appends_lines_and_deduplicates_like_a_fifo_topic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.jsonl");
        let registry = MetricsRegistry::new();
        let n = JsonlNotifier::create(&path, policy(&registry))
            .await
            .unwrap();
        let first = Notification::new("order ord_1 paid")
            .subject("Order paid")
            .attribute("order_id", "ord_1")
            .dedup_id("evt_1/notify")
            .group_id("ord_1");
        let a = n.publish(&first).await.unwrap();
        let again = n.publish(&first).await.unwrap();
        assert_eq!(a, again, "a repeated dedup id returns the first receipt");
        let b = n
            .publish(&Notification::new("order ord_2 paid").dedup_id("evt_2/notify"))
            .await
            .unwrap();
        assert_ne!(a.message_id, b.message_id);
        let lines = JsonlNotifier::read_lines(&path).await.unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].attributes["order_id"], "ord_1");
        assert_eq!(lines[0].dedup_id.as_deref(), Some("evt_1/notify"));
        assert!(n.publish(&Notification::new("")).await.is_err());
        assert_eq!(registry.snapshot().get(NAME).unwrap().successes, 3);
    }

    #[tokio::test]
    async fn a_reopened_file_keeps_its_lines_and_dedup_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.jsonl");
        let registry = MetricsRegistry::new();
        let first = Notification::new("order ord_1 paid").dedup_id("evt_1/notify");
        let a = JsonlNotifier::create(&path, policy(&registry))
            .await
            .unwrap()
            .publish(&first)
            .await
            .unwrap();
        // A line cut short by a kill is dropped on reopening.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"message_id\":\"jso"))
            .unwrap();
        let n = JsonlNotifier::open(&path, policy(&registry)).await.unwrap();
        assert_eq!(
            n.publish(&first).await.unwrap(),
            a,
            "deduplicated across processes"
        );
        let b = n
            .publish(&Notification::new("order ord_2 paid").dedup_id("evt_2/notify"))
            .await
            .unwrap();
        assert_eq!(b.message_id, "jsonl-2");
        let lines = JsonlNotifier::read_lines(&path).await.unwrap();
        assert_eq!(lines.len(), 2);
    }

    static NOW: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1_800_000_000);

    fn test_clock() -> i64 {
        NOW.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[tokio::test]
    async fn a_dedup_id_is_remembered_for_snss_five_minutes_only() {
        use std::sync::atomic::Ordering::SeqCst;
        let window = DEDUP_WINDOW.as_secs() as i64;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.jsonl");
        let registry = MetricsRegistry::new();
        let n = JsonlNotifier::create(&path, policy(&registry))
            .await
            .unwrap()
            .with_clock(test_clock);
        let (one, two) = (
            Notification::new("order ord_1 paid").dedup_id("evt_1/notify"),
            Notification::new("order ord_2 paid").dedup_id("evt_2/notify"),
        );
        let a = n.publish(&one).await.unwrap();
        NOW.fetch_add(window - 10, SeqCst);
        let b = n.publish(&two).await.unwrap();
        NOW.fetch_add(10, SeqCst);
        assert_eq!(n.publish(&one).await.unwrap(), a, "still within the window");
        assert_eq!(lock(&n.lines).seen.len(), 2);
        NOW.fetch_add(1, SeqCst);
        let again = n.publish(&one).await.unwrap();
        assert_ne!(
            again, a,
            "past the window a repeat is a new message, as on SNS"
        );
        assert_eq!(n.publish(&two).await.unwrap(), b);
        assert_eq!(JsonlNotifier::read_lines(&path).await.unwrap().len(), 3);
        // Reopened later: only what is still within the window is remembered.
        drop(n);
        NOW.fetch_add(window - 5, SeqCst);
        let n = JsonlNotifier::open(&path, policy(&registry))
            .await
            .unwrap()
            .with_clock(test_clock);
        assert_eq!(lock(&n.lines).seen.len(), 1, "only evt_1's second message");
        assert_eq!(n.publish(&one).await.unwrap(), again);
        assert_ne!(n.publish(&two).await.unwrap(), b);
        assert_eq!(JsonlNotifier::read_lines(&path).await.unwrap().len(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn injected_faults_fail_as_a_provider_would() {
        use integrations_core::ErrorKind;
        use integrations_core::resilience::{Backoff, RetryPolicy};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.jsonl");
        let registry = MetricsRegistry::new();
        // No retries: each fault shows as the error it is.
        let n = JsonlNotifier::create(
            &path,
            Policy::builder(NAME)
                .retry(RetryPolicy::new(0, Backoff::DEFAULT))
                .attempt_timeout(Duration::from_secs(1))
                .metrics(&registry)
                .build(),
        )
        .await
        .unwrap()
        .with_hang(Duration::from_secs(60));
        let retry_after = Duration::from_secs(2);
        n.fail_next(1, Fault::ServerError);
        n.fail_next(1, Fault::rate_limited(retry_after));
        n.fail_next(1, Fault::Hang);
        n.fail_next(1, Fault::DropAfterAccept);
        let msg = Notification::new("order ord_1 paid").dedup_id("evt_1/notify");
        let e = n.publish(&msg).await.unwrap_err();
        assert_eq!((e.kind(), e.is_retryable()), (ErrorKind::Unavailable, true));
        let e = n.publish(&msg).await.unwrap_err();
        assert_eq!(
            (e.kind(), e.retry_after()),
            (ErrorKind::RateLimited, Some(retry_after))
        );
        let e = n.publish(&msg).await.unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::Timeout,
            "cut by the attempt timeout: {e}"
        );
        assert!(JsonlNotifier::read_lines(&path).await.unwrap().is_empty());
        let e = n.publish(&msg).await.unwrap_err();
        assert!(e.is_retryable(), "{e}");
        assert_eq!(JsonlNotifier::read_lines(&path).await.unwrap().len(), 1);
        let again = n.publish(&msg).await.unwrap();
        assert_eq!(again.message_id, "jsonl-1", "the retry is deduplicated");
        assert_eq!(n.faults_applied(), 4);
        assert_eq!(JsonlNotifier::read_lines(&path).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn passes_the_core_notifier_suite() {
        let dir = tempfile::tempdir().unwrap();
        let registry = MetricsRegistry::new();
        let n = JsonlNotifier::create(dir.path().join("s.jsonl"), policy(&registry))
            .await
            .unwrap();
        notifier_suite(&n, &NotifierSuiteConfig::new("jsonl-suite")).await;
    }
}
