//! [`GoogleSheetsSink`]: core's [`SheetsSink`] on Google Sheets, batching rows under quota.

mod buffer;
mod flusher;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use integrations_core::provider::{AppendOutcome, Row, SheetsSink, UpdateOutcome};
use integrations_core::{Error, Result};
use tokio::sync::{Notify, Semaphore, oneshot};
use tokio::task::JoinHandle;

use crate::PROVIDER;
use crate::client::{GoogleSheetsClient, replicate};
use buffer::Buffer;

/// When the sink flushes and how much it holds.
///
/// A sheet's buffered rows are sent as one append when `max_rows` rows or `max_bytes` bytes are
/// waiting, when the oldest has waited `max_delay`, on [`SheetsSink::flush`] and on
/// [`GoogleSheetsSink::shutdown`]. At most `buffer_rows` rows are buffered or in flight; beyond
/// that, `append_rows` waits for space (back-pressure) instead of growing memory.
///
/// Defaults ([`BatchConfig::DEFAULT`]): 1000 rows, 1 MiB (Google advises bodies under 2 MB), 2 s,
/// 10 000 buffered rows. At 60 writes a minute that is up to 60 000 rows a minute per sheet
/// before back-pressure, and at most 30 appends a minute per sheet at low volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchConfig {
    /// Rows per append, at most (a single call's rows beyond this go in further appends).
    pub max_rows: usize,
    /// Approximate JSON bytes per append, at most.
    pub max_bytes: usize,
    /// Longest a row waits before its sheet is flushed.
    pub max_delay: Duration,
    /// Rows buffered or in flight, at most.
    pub buffer_rows: usize,
}

impl BatchConfig {
    /// 1000 rows, 1 MiB, 2 s, 10 000 buffered rows.
    pub const DEFAULT: BatchConfig = BatchConfig {
        max_rows: 1000,
        max_bytes: 1024 * 1024,
        max_delay: Duration::from_secs(2),
        buffer_rows: 10_000,
    };
    /// The defaults.
    pub const fn new() -> Self {
        Self::DEFAULT
    }
    /// Rows per append (at least 1).
    #[must_use]
    pub const fn with_max_rows(mut self, n: usize) -> Self {
        self.max_rows = if n == 0 { 1 } else { n };
        self
    }
    /// Bytes per append (at least 1).
    #[must_use]
    pub const fn with_max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = if n == 0 { 1 } else { n };
        self
    }
    /// Longest wait of a buffered row.
    #[must_use]
    pub const fn with_max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }
    /// Rows buffered or in flight (at least 1).
    #[must_use]
    pub const fn with_buffer_rows(mut self, n: usize) -> Self {
        self.buffer_rows = if n == 0 { 1 } else { n };
        self
    }
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// State shared by the sink's handles and its flusher task.
pub(crate) struct Shared {
    config: BatchConfig,
    buffer: Mutex<Buffer>,
    /// Wakes the flusher (new rows, flush, shutdown).
    wake: Notify,
    /// Wakes `flush`/`shutdown` waiters after each batch.
    progress: Notify,
    /// Free buffer space, in rows.
    space: Semaphore,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Inner {
    shared: Arc<Shared>,
    client: GoogleSheetsClient,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: the flusher writes out what is buffered, then stops.
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
    }
}

/// Google Sheets as a [`SheetsSink`]. Cheap to clone; clones share one buffer and flusher.
///
/// # Semantics
///
/// * **Durable on return.** [`append_rows`](SheetsSink::append_rows) buffers the rows and returns
///   once the append that carries them has succeeded at Google (or failed). Concurrent callers
///   share batches: many orders arriving together become one append per sheet. The
///   [`AppendOutcome`] is therefore exact: `appended` rows were written by this call,
///   `already_present` rows were skipped because their key (column A) was already in the sheet or
///   earlier in the same batch. Dropping the returned future does not withdraw the rows.
/// * **No duplicates.** Before the first append to a sheet the sink reads its key column once and
///   keeps its keys (and their rows) up to date with its own appends. It keeps a seeded 64-bit
///   hash of each key, not its text, so a known hash only says a key *may* be there: a row whose
///   key's hash is known is skipped only once one `values.batchGet` finds the key in the cell
///   where the sink saw it, or a read of the key column finds it (two keys of one hash cost that
///   read, never a row). An append whose outcome
///   is unknown (timeout, connection lost after sending, 5xx) is retried only after reading the
///   key column again and dropping the rows that did land. Rows written by other processes
///   after the first read are not seen by appends until such a re-read.
/// * **Updates by key** ([`update_row`](SheetsSink::update_row), [`GoogleSheetsSink::update_rows`])
///   go through the same buffer, after the sheet's pending appends, one `values.batchUpdate` per
///   batch however many rows it updates. The sink remembers the row of every key it has read or
///   appended (an append's `updatedRange` says where its rows went), but never writes on that
///   memory alone: it first reads the key cells of those rows with one `values.batchGet` and
///   writes there only if each still holds its key. It reads the whole key column once for the
///   batch instead when a cell holds anything else (rows inserted, deleted or sorted by somebody
///   else), when a key is not one it knows or its row is not known (an append whose answer had
///   no `updatedRange`, or whose outcome was unknown), when the batch has more keys than one
///   `batchGet` carries ([`GoogleSheetsClient::BATCH_GET_RANGES`], fewer for a long sheet name),
///   and when the `batchGet` fails (Google refuses a cell past the end of a sheet that lost
///   rows). A key not in the sheet (including an empty sheet) is [`UpdateOutcome::NotFound`]. A
///   key in several rows (somebody copied a row) updates one of them, not always the same one:
///   the row the sink appended, or the first in the column when it last read it.
/// * **Quota.** Every request runs under the client's policies; the default write limiter spaces
///   writes to at most 60 a minute (Google's per-user limit) and a `429 RESOURCE_EXHAUSTED` is
///   retried with backoff.
/// * **Back-pressure.** At most [`BatchConfig::buffer_rows`] rows are buffered or in flight;
///   further calls wait for space.
/// * **Cost with the sheet's size.** The map of keys to rows is the whole of column A: it grows
///   with the sheet (a hash and a row, 20–40 bytes a row with the map's spare room: ~2–4 MB at
///   100,000 rows; the keys' text was ~70–90 bytes a row) and lives as long as the sink. An
///   append whose keys are new costs no read; a retried one (keys the sink knows) a read of
///   their cells, or of the column when they are more than one `values.batchGet` carries. An
///   update of rows the sink knows costs a read of as many cells; an update of a key it does
///   not know or whose row moved, and each append after an unknown outcome, reads the whole
///   column: a response about as large as the column's text, and at its peak the parsed column
///   beside the new map. Google offers no lookup by key; a sheet of millions of rows is better
///   written through a sink that only appends, or kept in a database.
#[derive(Clone)]
pub struct GoogleSheetsSink {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GoogleSheetsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleSheetsSink")
            .field("client", &self.inner.client)
            .field("config", &self.inner.shared.config)
            .finish_non_exhaustive()
    }
}

fn shut_down() -> Error {
    Error::unavailable("the sheets sink is shut down")
        .with_provider(PROVIDER)
        .not_processed()
        .with_retry_hint(false)
}

impl GoogleSheetsSink {
    /// A sink over `client`, spawning its flusher on the current tokio runtime.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming `runtime` outside a tokio runtime.
    pub fn new(client: GoogleSheetsClient, config: BatchConfig) -> Result<Self> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::configuration(
                "runtime",
                "the sheets sink must be created inside a tokio runtime",
            )
        })?;
        let shared = Arc::new(Shared {
            config,
            buffer: Mutex::new(Buffer::default()),
            wake: Notify::new(),
            progress: Notify::new(),
            space: Semaphore::new(config.buffer_rows.min(Semaphore::MAX_PERMITS)),
        });
        let task = handle.spawn(flusher::run(Arc::clone(&shared), client.clone()));
        Ok(GoogleSheetsSink {
            inner: Arc::new(Inner {
                shared,
                client,
                task: Mutex::new(Some(task)),
            }),
        })
    }

    /// The underlying client.
    pub fn client(&self) -> &GoogleSheetsClient {
        &self.inner.client
    }
    /// The batching settings.
    pub fn batch_config(&self) -> BatchConfig {
        self.inner.shared.config
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Waits for `n` rows of buffer space (taken for good: the flusher gives them back).
    async fn reserve(&self, n: usize) -> Result<()> {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        let permit = self
            .shared()
            .space
            .acquire_many(n)
            .await
            .map_err(|_| shut_down())?;
        permit.forget();
        Ok(())
    }

    /// Updates several rows by key in one batch: one read of the key column and one
    /// `values.batchUpdate`, outcomes in the order of `rows`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty sheet name or key; the read's or the write's error
    /// (every row of the batch fails together).
    pub async fn update_rows(&self, sheet: &str, rows: Vec<Row>) -> Result<Vec<UpdateOutcome>> {
        validate(sheet, &rows)?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let chunk = self
            .shared()
            .config
            .buffer_rows
            .min(self.shared().config.max_rows);
        let mut out = Vec::with_capacity(rows.len());
        let mut rows = rows;
        while !rows.is_empty() {
            let rest = rows.split_off(rows.len().min(chunk));
            let part = std::mem::replace(&mut rows, rest);
            self.reserve(part.len()).await?;
            let rx = {
                let mut buf = self.shared().lock();
                if buf.closing {
                    drop(buf);
                    self.shared().space.add_permits(part.len());
                    return Err(shut_down());
                }
                buf.push_update(sheet, part)
            };
            self.shared().wake.notify_one();
            out.extend(rx.await.map_err(|_| shut_down())??);
        }
        Ok(out)
    }

    /// Flushes everything, stops the flusher and refuses further rows.
    ///
    /// # Errors
    /// The last flush failure among the rows still buffered, as [`SheetsSink::flush`].
    pub async fn shutdown(&self) -> Result<()> {
        self.shared().lock().closing = true;
        self.shared().space.close();
        let result = self.flush().await;
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
        result
    }
}

fn validate(sheet: &str, rows: &[Row]) -> Result<()> {
    if sheet.trim().is_empty() {
        return Err(Error::invalid_input("sheet", "the sheet name is empty"));
    }
    rows.iter().try_for_each(Row::validate)
}

#[async_trait]
impl SheetsSink for GoogleSheetsSink {
    fn name(&self) -> &str {
        PROVIDER
    }

    /// Buffers `rows` for `sheet` and waits until the append carrying them is done; see the
    /// [type docs](GoogleSheetsSink) for the outcome's meaning.
    async fn append_rows(&self, sheet: &str, rows: Vec<Row>) -> Result<AppendOutcome> {
        validate(sheet, &rows)?;
        let config = self.shared().config;
        let chunk = config.buffer_rows.min(config.max_rows);
        let mut total = AppendOutcome::default();
        let mut rows = rows;
        let mut waiting: Vec<oneshot::Receiver<Result<AppendOutcome>>> = Vec::new();
        while !rows.is_empty() {
            let rest = rows.split_off(rows.len().min(chunk));
            let part = std::mem::replace(&mut rows, rest);
            let n = part.len();
            // With a call larger than the buffer, earlier chunks must drain before later ones fit.
            if n > self.shared().space.available_permits() {
                for rx in waiting.drain(..) {
                    let o = rx.await.map_err(|_| shut_down())??;
                    total.appended += o.appended;
                    total.already_present += o.already_present;
                }
            }
            self.reserve(n).await?;
            let rx = {
                let mut buf = self.shared().lock();
                if buf.closing {
                    drop(buf);
                    self.shared().space.add_permits(n);
                    return Err(shut_down());
                }
                buf.push_append(sheet, part)
            };
            self.shared().wake.notify_one();
            waiting.push(rx);
        }
        for rx in waiting {
            let o = rx.await.map_err(|_| shut_down())??;
            total.appended += o.appended;
            total.already_present += o.already_present;
        }
        Ok(total)
    }

    async fn update_row(&self, sheet: &str, row: Row) -> Result<UpdateOutcome> {
        let mut out = self.update_rows(sheet, vec![row]).await?;
        Ok(out.pop().unwrap_or(UpdateOutcome::NotFound))
    }

    /// Sends everything buffered now and waits until it is done.
    ///
    /// # Errors
    /// A copy of the last failure among the batches flushed while waiting.
    async fn flush(&self) -> Result<()> {
        let shared = self.shared();
        let (target, failures_before) = {
            let mut buf = shared.lock();
            (buf.force_all(), buf.failures)
        };
        shared.wake.notify_one();
        loop {
            let notified = shared.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let buf = shared.lock();
                if !buf.pending_below(target) {
                    return match (&buf.last_failure, buf.failures > failures_before) {
                        (Some(e), true) => Err(replicate(e)),
                        _ => Ok(()),
                    };
                }
            }
            notified.await;
        }
    }
}
