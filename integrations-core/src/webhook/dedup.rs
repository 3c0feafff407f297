//! Dedup of inbound events: the first delivery of an event id has an effect, a redelivery does not.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::clock::{Clock, SystemClock};
use crate::{Error, Result};

/// Whether a key was seen before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DedupOutcome {
    /// First time within the TTL: process the event.
    New,
    /// Already recorded and not yet expired: acknowledge and do nothing.
    Duplicate,
}

impl DedupOutcome {
    /// `true` for [`DedupOutcome::New`].
    pub const fn is_new(self) -> bool {
        matches!(self, DedupOutcome::New)
    }
    /// `true` for [`DedupOutcome::Duplicate`].
    pub const fn is_duplicate(self) -> bool {
        matches!(self, DedupOutcome::Duplicate)
    }
}

/// A store of recently seen keys (event ids), with an atomic insert-if-absent.
///
/// Implementations must make [`DedupStore::insert_if_absent`] atomic: of any number of concurrent
/// calls with one key, exactly one sees [`DedupOutcome::New`] (DynamoDB's conditional `PutItem`,
/// SQL's `INSERT … ON CONFLICT DO NOTHING`, [`InMemoryDedupStore`]'s lock).
#[async_trait]
pub trait DedupStore: Send + Sync + fmt::Debug {
    /// Records `key` for `ttl` unless a record of it is still live.
    ///
    /// # Errors
    /// Whatever the backing store raises; [`Error::Unavailable`] when it cannot take more keys.
    async fn insert_if_absent(&self, key: &str, ttl: Duration) -> Result<DedupOutcome>;

    /// Forgets `key`, so its next delivery is [`DedupOutcome::New`] again: the undo of an
    /// [`insert_if_absent`](DedupStore::insert_if_absent) whose event could not be processed
    /// (a later insert of the same batch failed, the handler failed before its effect was
    /// durable). Without it, record-then-process loses such an event: the sender's redelivery
    /// is taken for a duplicate. Releasing an absent key is not an error.
    ///
    /// # Errors
    /// Whatever the backing store raises.
    async fn release(&self, key: &str) -> Result<()>;
}

#[async_trait]
impl<S: DedupStore + ?Sized> DedupStore for Arc<S> {
    async fn insert_if_absent(&self, key: &str, ttl: Duration) -> Result<DedupOutcome> {
        (**self).insert_if_absent(key, ttl).await
    }
    async fn release(&self, key: &str) -> Result<()> {
        (**self).release(key).await
    }
}

/// Releases `keys` (best effort: a failure to release is logged, not returned, since the caller
/// is already returning the error that made it release). For helpers that record several keys
/// and fail part-way.
pub async fn release_all<'a>(store: &dyn DedupStore, keys: impl IntoIterator<Item = &'a str>) {
    for key in keys {
        if let Err(e) = store.release(key).await {
            tracing::warn!(key, error = %e, "could not release a dedup key; its redelivery will be taken for a duplicate");
        }
    }
}

/// Longest TTL honoured; longer ones are capped (100 years: "forever" for a process).
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Default bound on stored keys of an [`InMemoryDedupStore`] (see
/// [`InMemoryDedupStore::sized_for`] to derive it from the TTL and the event rate instead).
pub const DEFAULT_MAX_ENTRIES: usize = 1_000_000;

/// Default number of expired entries removed per insert.
pub const DEFAULT_SWEEP_BATCH: usize = 64;

#[derive(Default)]
struct Entries {
    expiry_of: HashMap<String, SystemTime>,
    by_expiry: BTreeSet<(SystemTime, String)>,
}

impl Entries {
    /// Removes up to `limit` entries that expired at or before `now`; returns how many.
    fn sweep(&mut self, now: SystemTime, limit: usize) -> usize {
        let mut removed = 0;
        while removed < limit {
            match self.by_expiry.first() {
                Some((exp, _)) if *exp <= now => {}
                _ => break,
            }
            if let Some((_, key)) = self.by_expiry.pop_first() {
                self.expiry_of.remove(&key);
                removed += 1;
            }
        }
        removed
    }
}

/// An in-process [`DedupStore`]: a map of key → expiry behind a mutex, for a single instance (use
/// a shared store such as DynamoDB when several processes receive the same webhooks).
///
/// Each insert also removes a bounded number of expired entries (oldest first, O(log n) each), so
/// memory follows the live keys without a background task. The store holds at most
/// [`capacity`](InMemoryDedupStore::capacity) keys ([`DEFAULT_MAX_ENTRIES`] unless told
/// otherwise, or [`sized_for`](InMemoryDedupStore::sized_for) a TTL and a rate); past that, a
/// new key evicts the live key closest to expiry (the oldest, under one TTL), so the store keeps
/// accepting events and forgets the ones least likely to be redelivered. Evictions are counted
/// ([`evictions`](InMemoryDedupStore::evictions)) and [`fill_ratio`](InMemoryDedupStore::fill_ratio)
/// says how full it is: a store that evicts is too small for its TTL. To refuse new keys
/// instead (the sender retries later), use [`refuse_when_full`](InMemoryDedupStore::refuse_when_full).
///
/// ```
/// use std::time::Duration;
/// use integrations_core::webhook::{DedupOutcome, DedupStore, InMemoryDedupStore};
/// use integrations_core::clock::FixedClock;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let clock = FixedClock::from_unix(1_700_000_000);
/// let store = InMemoryDedupStore::new().with_clock(clock.clone());
/// let ttl = Duration::from_secs(3600);
/// assert_eq!(store.insert_if_absent("evt_1", ttl).await?, DedupOutcome::New);
/// assert_eq!(store.insert_if_absent("evt_1", ttl).await?, DedupOutcome::Duplicate);
/// clock.advance(ttl);
/// assert_eq!(store.insert_if_absent("evt_1", ttl).await?, DedupOutcome::New);
/// # Ok::<(), integrations_core::Error>(())
/// # }).unwrap();
/// ```
pub struct InMemoryDedupStore {
    clock: Arc<dyn Clock>,
    entries: Mutex<Entries>,
    max_entries: usize,
    sweep_batch: usize,
    refuse_when_full: bool,
    evictions: std::sync::atomic::AtomicU64,
}

impl InMemoryDedupStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        InMemoryDedupStore {
            clock: Arc::new(SystemClock),
            entries: Mutex::new(Entries::default()),
            max_entries: DEFAULT_MAX_ENTRIES,
            sweep_batch: DEFAULT_SWEEP_BATCH,
            refuse_when_full: false,
            evictions: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// An empty store sized for keys kept `ttl` at up to `events_per_second`: capacity
    /// `ttl × rate` (at least 1, at most `usize::MAX`), so at that rate nothing live is evicted.
    /// E.g. SendGrid's 25 h TTL at 10 events/s is 900 000 keys.
    pub fn sized_for(ttl: Duration, events_per_second: f64) -> Self {
        let wanted = ttl.min(MAX_TTL).as_secs_f64() * events_per_second.max(0.0);
        // `as` saturates on overflow and maps NaN to 0.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let capacity = wanted.ceil() as usize;
        InMemoryDedupStore::new().with_max_entries(capacity)
    }

    /// Uses `clock` for expiry (a [`FixedClock`](crate::FixedClock) in tests).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Bounds the number of stored keys (at least 1); past it the oldest key is evicted.
    #[must_use]
    pub fn with_max_entries(mut self, max: usize) -> Self {
        self.max_entries = max.max(1);
        self
    }

    /// Refuses new keys with [`Error::Unavailable`] (retryable, not processed) when the store is
    /// full of live keys, instead of evicting the oldest: no live key is ever forgotten, but a
    /// store too small for its traffic stops accepting events until keys expire.
    #[must_use]
    pub fn refuse_when_full(mut self) -> Self {
        self.refuse_when_full = true;
        self
    }

    /// The most keys stored at once.
    pub fn capacity(&self) -> usize {
        self.max_entries
    }

    /// Live keys forgotten to make room since the store was built (a growing count means the
    /// store is too small for its TTL and traffic: a redelivery of an evicted key is processed
    /// again).
    pub fn evictions(&self) -> u64 {
        self.evictions.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How full the store is, `len() / capacity()` in `0.0..=1.0`: a gauge to export.
    #[allow(clippy::cast_precision_loss)]
    pub fn fill_ratio(&self) -> f64 {
        self.len() as f64 / self.max_entries as f64
    }

    /// The store's fill as Prometheus text, for a service to append to its `/metrics`:
    /// `integrations_dedup_entries`, `integrations_dedup_capacity` (gauges) and
    /// `integrations_dedup_evictions_total` (a counter), labelled `store="<name>"`. Alert when
    /// entries approach capacity or evictions grow: redeliveries of evicted keys are processed
    /// again.
    pub fn prometheus(&self, name: &str) -> String {
        let label = name
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        format!(
            "# HELP integrations_dedup_entries Keys held by the dedup store.\n\
             # TYPE integrations_dedup_entries gauge\n\
             integrations_dedup_entries{{store=\"{label}\"}} {}\n\
             # HELP integrations_dedup_capacity Most keys the dedup store holds.\n\
             # TYPE integrations_dedup_capacity gauge\n\
             integrations_dedup_capacity{{store=\"{label}\"}} {}\n\
             # HELP integrations_dedup_evictions_total Live keys evicted to make room.\n\
             # TYPE integrations_dedup_evictions_total counter\n\
             integrations_dedup_evictions_total{{store=\"{label}\"}} {}\n",
            self.len(),
            self.capacity(),
            self.evictions()
        )
    }

    /// Sets how many expired entries each insert removes at most (at least 1).
    #[must_use]
    pub fn with_sweep_batch(mut self, n: usize) -> Self {
        self.sweep_batch = n.max(1);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stored keys, including expired ones not yet swept.
    pub fn len(&self) -> usize {
        self.lock().expiry_of.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `key` is recorded and live now.
    pub fn contains(&self, key: &str) -> bool {
        let now = self.clock.now();
        self.lock().expiry_of.get(key).is_some_and(|exp| *exp > now)
    }

    /// Removes every expired entry; returns how many.
    pub fn purge_expired(&self) -> usize {
        let now = self.clock.now();
        self.lock().sweep(now, usize::MAX)
    }

    /// Forgets `key`, so its next delivery is [`DedupOutcome::New`] again (for a handler whose
    /// processing failed after recording the key). Returns whether it was stored.
    pub fn remove(&self, key: &str) -> bool {
        let mut entries = self.lock();
        match entries.expiry_of.remove(key) {
            Some(exp) => {
                entries.by_expiry.remove(&(exp, key.to_owned()));
                true
            }
            None => false,
        }
    }

    fn insert_sync(&self, key: &str, ttl: Duration) -> Result<DedupOutcome> {
        let now = self.clock.now();
        let expiry = now
            .checked_add(ttl.min(MAX_TTL))
            .ok_or_else(|| Error::invalid_input("ttl", "expiry is beyond the clock's range"))?;
        let mut entries = self.lock();
        entries.sweep(now, self.sweep_batch);
        match entries.expiry_of.get(key).copied() {
            Some(exp) if exp > now => return Ok(DedupOutcome::Duplicate),
            Some(expired) => {
                entries.by_expiry.remove(&(expired, key.to_owned()));
            }
            None => {
                if entries.expiry_of.len() >= self.max_entries
                    && entries.sweep(now, usize::MAX) == 0
                {
                    if self.refuse_when_full {
                        return Err(Error::unavailable(format!(
                            "in-memory dedup store holds its maximum of {} live keys",
                            self.max_entries
                        ))
                        .not_processed());
                    }
                    while entries.expiry_of.len() >= self.max_entries {
                        let Some((_, oldest)) = entries.by_expiry.pop_first() else {
                            break;
                        };
                        entries.expiry_of.remove(&oldest);
                        let n = self
                            .evictions
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if n == 0 {
                            tracing::warn!(
                                capacity = self.max_entries,
                                "in-memory dedup store full: evicting the oldest live keys (make it larger for its TTL)"
                            );
                        }
                    }
                }
            }
        }
        if expiry > now {
            entries.expiry_of.insert(key.to_owned(), expiry);
            entries.by_expiry.insert((expiry, key.to_owned()));
        } else {
            // A zero TTL records nothing: every delivery is new.
            entries.expiry_of.remove(key);
        }
        Ok(DedupOutcome::New)
    }
}

impl Default for InMemoryDedupStore {
    fn default() -> Self {
        InMemoryDedupStore::new()
    }
}

impl fmt::Debug for InMemoryDedupStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryDedupStore")
            .field("entries", &self.len())
            .field("max_entries", &self.max_entries)
            .field("evictions", &self.evictions())
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl DedupStore for InMemoryDedupStore {
    async fn insert_if_absent(&self, key: &str, ttl: Duration) -> Result<DedupOutcome> {
        self.insert_sync(key, ttl)
    }
    async fn release(&self, key: &str) -> Result<()> {
        self.remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;

    const HOUR: Duration = Duration::from_secs(3600);

    fn store() -> (InMemoryDedupStore, FixedClock) {
        let clock = FixedClock::from_unix(1_700_000_000);
        (InMemoryDedupStore::new().with_clock(clock.clone()), clock)
    }

    #[tokio::test]
    async fn second_insert_is_duplicate_until_expiry() {
        let (s, clock) = store();
        assert_eq!(
            s.insert_if_absent("a", HOUR).await.unwrap(),
            DedupOutcome::New
        );
        assert!(s.insert_if_absent("a", HOUR).await.unwrap().is_duplicate());
        assert!(s.insert_if_absent("b", HOUR).await.unwrap().is_new());
        clock.advance(HOUR - Duration::from_secs(1));
        assert!(s.contains("a"));
        assert!(s.insert_if_absent("a", HOUR).await.unwrap().is_duplicate());
        clock.advance(Duration::from_secs(1));
        assert!(!s.contains("a"));
        assert!(s.insert_if_absent("a", HOUR).await.unwrap().is_new());
        // The re-insert took a fresh TTL.
        clock.advance(HOUR / 2);
        assert!(s.insert_if_absent("a", HOUR).await.unwrap().is_duplicate());
    }

    #[tokio::test]
    async fn zero_ttl_records_nothing() {
        let (s, _) = store();
        assert!(
            s.insert_if_absent("z", Duration::ZERO)
                .await
                .unwrap()
                .is_new()
        );
        assert!(
            s.insert_if_absent("z", Duration::ZERO)
                .await
                .unwrap()
                .is_new()
        );
        assert!(s.is_empty());
    }

    #[tokio::test]
    async fn expired_entries_are_swept_in_bounded_batches() {
        let (s, clock) = store();
        let s = s.with_sweep_batch(10);
        for i in 0..100 {
            s.insert_if_absent(&format!("k{i}"), HOUR).await.unwrap();
        }
        assert_eq!(s.len(), 100);
        clock.advance(HOUR);
        s.insert_if_absent("fresh", HOUR).await.unwrap();
        assert_eq!(s.len(), 91, "one insert sweeps at most 10");
        s.insert_if_absent("fresh2", HOUR).await.unwrap();
        assert_eq!(s.len(), 82);
        assert_eq!(s.purge_expired(), 80);
        assert_eq!(s.len(), 2);
        assert!(s.contains("fresh") && s.contains("fresh2"));
    }

    #[tokio::test]
    async fn full_store_refuses_new_keys_but_recovers_after_expiry() {
        let (s, clock) = store();
        // Refusing is opt-in since the store evicts by default (next test).
        let s = s.with_max_entries(2).refuse_when_full();
        s.insert_if_absent("a", HOUR).await.unwrap();
        s.insert_if_absent("b", HOUR * 2).await.unwrap();
        let e = s.insert_if_absent("c", HOUR).await.unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Unavailable);
        assert!(e.is_retryable());
        // Known keys still answer.
        assert!(s.insert_if_absent("a", HOUR).await.unwrap().is_duplicate());
        clock.advance(HOUR);
        assert!(s.insert_if_absent("c", HOUR).await.unwrap().is_new());
    }

    #[tokio::test]
    async fn full_store_evicts_the_oldest_key_instead_of_refusing() {
        let (s, clock) = store();
        let s = s.with_max_entries(2);
        assert_eq!(s.capacity(), 2);
        s.insert_if_absent("a", HOUR).await.unwrap();
        clock.advance(Duration::from_secs(1));
        s.insert_if_absent("b", HOUR).await.unwrap();
        assert!((s.fill_ratio() - 1.0).abs() < f64::EPSILON);
        clock.advance(Duration::from_secs(1));
        // A month in, the store is full of live keys: a new event is still accepted.
        assert!(s.insert_if_absent("c", HOUR).await.unwrap().is_new());
        assert_eq!(s.evictions(), 1);
        assert_eq!(s.len(), 2);
        assert!(!s.contains("a"), "the oldest key went");
        assert!(s.contains("b") && s.contains("c"));
        assert!(s.insert_if_absent("b", HOUR).await.unwrap().is_duplicate());
        let text = s.prometheus("webhooks");
        assert!(
            text.contains("integrations_dedup_entries{store=\"webhooks\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("integrations_dedup_capacity{store=\"webhooks\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("integrations_dedup_evictions_total{store=\"webhooks\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE integrations_dedup_evictions_total counter"),
            "{text}"
        );
    }

    #[test]
    fn sized_for_derives_the_capacity_from_ttl_and_rate() {
        let s = InMemoryDedupStore::sized_for(Duration::from_secs(25 * 3600), 10.0);
        assert_eq!(s.capacity(), 900_000);
        assert_eq!(
            InMemoryDedupStore::sized_for(HOUR, 0.0).capacity(),
            1,
            "at least one"
        );
        assert_eq!(
            InMemoryDedupStore::sized_for(MAX_TTL, f64::INFINITY).capacity(),
            usize::MAX
        );
        assert!(InMemoryDedupStore::new().fill_ratio() < f64::EPSILON);
    }

    #[tokio::test]
    async fn remove_allows_redelivery() {
        let (s, _) = store();
        s.insert_if_absent("a", HOUR).await.unwrap();
        assert!(s.remove("a"));
        assert!(!s.remove("a"));
        assert!(s.insert_if_absent("a", HOUR).await.unwrap().is_new());
    }

    #[tokio::test]
    async fn release_through_the_trait_allows_redelivery() {
        let (s, _) = store();
        let d: &dyn DedupStore = &s;
        assert!(d.insert_if_absent("a", HOUR).await.unwrap().is_new());
        d.release("a").await.unwrap();
        d.release("never-seen").await.unwrap();
        assert!(d.insert_if_absent("a", HOUR).await.unwrap().is_new());
        release_all(d, ["a"]).await;
        assert!(!s.contains("a"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_inserts_of_one_key_yield_exactly_one_new() {
        for round in 0..20 {
            let store: Arc<dyn DedupStore> = Arc::new(InMemoryDedupStore::new());
            let barrier = Arc::new(tokio::sync::Barrier::new(32));
            let tasks: Vec<_> = (0..32)
                .map(|_| {
                    let store = Arc::clone(&store);
                    let barrier = Arc::clone(&barrier);
                    tokio::spawn(async move {
                        barrier.wait().await;
                        store.insert_if_absent("evt_same", HOUR).await.unwrap()
                    })
                })
                .collect();
            let mut new = 0;
            for t in tasks {
                if t.await.unwrap().is_new() {
                    new += 1;
                }
            }
            assert_eq!(new, 1, "round {round}");
        }
    }

    #[test]
    fn debug_shows_counts_only() {
        let (s, _) = store();
        let d = format!("{s:?}");
        assert!(
            d.contains("InMemoryDedupStore") && d.contains("entries: 0"),
            "{d}"
        );
    }
}
