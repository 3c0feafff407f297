//! The sink's buffer: per-sheet queues of appends and updates, what is due, what a batch takes.

use std::collections::{BTreeSet, VecDeque};

use integrations_core::provider::{AppendOutcome, Cell, Row, UpdateOutcome};
use integrations_core::{Error, Result};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::BatchConfig;

/// Rough JSON size of a row in an append body.
pub(crate) fn row_bytes(row: &Row) -> usize {
    let cell = |c: &Cell| match c {
        Cell::Text(s) => s.len() + 3,
        Cell::Int(_) => 21,
        Cell::Bool(_) => 6,
        Cell::Empty => 3,
    };
    row.key().len() + 5 + row.cells().iter().map(cell).sum::<usize>()
}

/// Rows of one `append_rows` call (or one chunk of a large call).
#[derive(Debug)]
pub(crate) struct AppendJob {
    pub(crate) seq: u64,
    pub(crate) rows: Vec<Row>,
    pub(crate) bytes: usize,
    pub(crate) enqueued: Instant,
    pub(crate) done: oneshot::Sender<Result<AppendOutcome>>,
}

/// Rows of one `update_row(s)` call.
#[derive(Debug)]
pub(crate) struct UpdateJob {
    pub(crate) seq: u64,
    pub(crate) rows: Vec<Row>,
    pub(crate) enqueued: Instant,
    pub(crate) done: oneshot::Sender<Result<Vec<UpdateOutcome>>>,
}

/// What is waiting for one sheet.
#[derive(Debug)]
pub(crate) struct SheetQueue {
    pub(crate) sheet: String,
    appends: VecDeque<AppendJob>,
    updates: VecDeque<UpdateJob>,
    rows: usize,
    bytes: usize,
}

impl SheetQueue {
    fn oldest(&self) -> Option<(Instant, u64)> {
        let a = self.appends.front().map(|j| (j.enqueued, j.seq));
        let u = self.updates.front().map(|j| (j.enqueued, j.seq));
        match (a, u) {
            (Some(a), Some(u)) => Some(a.min(u)),
            (x, None) | (None, x) => x,
        }
    }
    fn is_empty(&self) -> bool {
        self.appends.is_empty() && self.updates.is_empty()
    }
}

/// A batch for one sheet, taken out of the buffer by the flusher.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) sheet: String,
    pub(crate) appends: Vec<AppendJob>,
    pub(crate) updates: Vec<UpdateJob>,
}

impl Batch {
    pub(crate) fn rows(&self) -> usize {
        self.appends.iter().map(|j| j.rows.len()).sum::<usize>()
            + self.updates.iter().map(|j| j.rows.len()).sum::<usize>()
    }
    pub(crate) fn seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.appends
            .iter()
            .map(|j| j.seq)
            .chain(self.updates.iter().map(|j| j.seq))
    }
}

/// Everything buffered, plus the bookkeeping `flush` and `shutdown` wait on.
#[derive(Debug, Default)]
pub(crate) struct Buffer {
    queues: Vec<SheetQueue>,
    next_seq: u64,
    /// Jobs buffered or in flight.
    pending: BTreeSet<u64>,
    /// Jobs with a lower sequence number are due now (set by `flush`).
    force_below: u64,
    pub(crate) closing: bool,
    pub(crate) failures: u64,
    pub(crate) last_failure: Option<Error>,
}

impl Buffer {
    fn queue(&mut self, sheet: &str) -> &mut SheetQueue {
        let idx = match self.queues.iter().position(|q| q.sheet == sheet) {
            Some(i) => i,
            None => {
                self.queues.push(SheetQueue {
                    sheet: sheet.to_owned(),
                    appends: VecDeque::new(),
                    updates: VecDeque::new(),
                    rows: 0,
                    bytes: 0,
                });
                self.queues.len() - 1
            }
        };
        &mut self.queues[idx]
    }

    fn take_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        self.pending.insert(s);
        s
    }

    pub(crate) fn push_append(
        &mut self,
        sheet: &str,
        rows: Vec<Row>,
    ) -> oneshot::Receiver<Result<AppendOutcome>> {
        let (done, rx) = oneshot::channel();
        let seq = self.take_seq();
        let bytes = rows.iter().map(row_bytes).sum();
        let q = self.queue(sheet);
        q.rows += rows.len();
        q.bytes += bytes;
        q.appends.push_back(AppendJob {
            seq,
            rows,
            bytes,
            enqueued: Instant::now(),
            done,
        });
        rx
    }

    pub(crate) fn push_update(
        &mut self,
        sheet: &str,
        rows: Vec<Row>,
    ) -> oneshot::Receiver<Result<Vec<UpdateOutcome>>> {
        let (done, rx) = oneshot::channel();
        let seq = self.take_seq();
        let q = self.queue(sheet);
        q.rows += rows.len();
        q.updates.push_back(UpdateJob {
            seq,
            rows,
            enqueued: Instant::now(),
            done,
        });
        rx
    }

    /// Makes everything buffered so far due now; returns the sequence number to wait for.
    pub(crate) fn force_all(&mut self) -> u64 {
        self.force_below = self.next_seq;
        self.next_seq
    }

    /// Whether a job numbered below `target` is still buffered or in flight.
    pub(crate) fn pending_below(&self, target: u64) -> bool {
        self.pending.first().is_some_and(|s| *s < target)
    }

    pub(crate) fn complete(&mut self, seqs: impl IntoIterator<Item = u64>) {
        for s in seqs {
            self.pending.remove(&s);
        }
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }

    fn is_due(&self, q: &SheetQueue, cfg: &BatchConfig, now: Instant) -> bool {
        let Some((since, seq)) = q.oldest() else {
            return false;
        };
        self.closing
            || seq < self.force_below
            || q.rows >= cfg.max_rows
            || q.bytes >= cfg.max_bytes
            || since + cfg.max_delay <= now
    }

    /// The next batch that is due (the sheet whose oldest job waited longest), or when the next
    /// one will be due.
    pub(crate) fn next_batch(
        &mut self,
        cfg: &BatchConfig,
        now: Instant,
    ) -> Result<Batch, Option<Instant>> {
        let due = self
            .queues
            .iter()
            .enumerate()
            .filter(|(_, q)| self.is_due(q, cfg, now))
            .min_by_key(|(_, q)| q.oldest())
            .map(|(i, _)| i);
        let Some(i) = due else {
            let next = self
                .queues
                .iter()
                .filter_map(|q| q.oldest().map(|(t, _)| t + cfg.max_delay))
                .min();
            return Err(next);
        };
        let q = &mut self.queues[i];
        let mut appends = Vec::new();
        let (mut rows, mut bytes) = (0usize, 0usize);
        while let Some(job) = q.appends.front() {
            let fits = rows + job.rows.len() <= cfg.max_rows && bytes + job.bytes <= cfg.max_bytes;
            if !appends.is_empty() && !fits {
                break;
            }
            let Some(job) = q.appends.pop_front() else {
                break;
            };
            rows += job.rows.len();
            bytes += job.bytes;
            appends.push(job);
        }
        q.rows -= rows;
        q.bytes -= bytes;
        let mut updates = Vec::new();
        let mut update_rows = 0usize;
        while let Some(job) = q.updates.front() {
            if !updates.is_empty() && update_rows + job.rows.len() > cfg.max_rows {
                break;
            }
            let Some(job) = q.updates.pop_front() else {
                break;
            };
            update_rows += job.rows.len();
            updates.push(job);
        }
        q.rows -= update_rows;
        let batch = Batch {
            sheet: q.sheet.clone(),
            appends,
            updates,
        };
        if q.is_empty() {
            self.queues.remove(i);
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg() -> BatchConfig {
        BatchConfig::new()
            .with_max_rows(3)
            .with_max_delay(Duration::from_secs(2))
    }

    fn rows(prefix: &str, n: usize) -> Vec<Row> {
        (0..n)
            .map(|i| Row::new(format!("{prefix}-{i}")).cell("x"))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn due_by_size_time_or_force() {
        let mut b = Buffer::default();
        let now = Instant::now();
        assert_eq!(b.next_batch(&cfg(), now).unwrap_err(), None);
        let _a = b.push_append("S", rows("a", 1));
        assert_eq!(
            b.next_batch(&cfg(), now).unwrap_err(),
            Some(now + Duration::from_secs(2))
        );
        let _c = b.push_append("S", rows("c", 2));
        let batch = b.next_batch(&cfg(), now).unwrap();
        assert_eq!(
            (batch.sheet.as_str(), batch.appends.len(), batch.rows()),
            ("S", 2, 3)
        );
        assert!(b.pending_below(2));
        b.complete(batch.seqs().collect::<Vec<_>>());
        assert!(b.is_idle());

        let _d = b.push_append("T", rows("d", 1));
        assert!(b.next_batch(&cfg(), now).is_err());
        let target = b.force_all();
        let batch = b.next_batch(&cfg(), now).unwrap();
        assert_eq!(batch.sheet, "T");
        assert!(b.pending_below(target));
        b.complete(batch.seqs().collect::<Vec<_>>());
        assert!(!b.pending_below(target));

        let _e = b.push_update("U", rows("e", 1));
        tokio::time::advance(Duration::from_secs(2)).await;
        let batch = b.next_batch(&cfg(), Instant::now()).unwrap();
        assert_eq!((batch.updates.len(), batch.appends.len()), (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn batches_split_at_the_row_limit_but_keep_jobs_whole() {
        let mut b = Buffer::default();
        let _x = b.push_append("S", rows("x", 2));
        let _y = b.push_append("S", rows("y", 2));
        let _z = b.push_append("S", rows("z", 5));
        let now = Instant::now();
        let first = b.next_batch(&cfg(), now).unwrap();
        assert_eq!(first.rows(), 2);
        b.closing = true;
        let second = b.next_batch(&cfg(), now).unwrap();
        assert_eq!(second.rows(), 2);
        // A job larger than the limit goes alone.
        let third = b.next_batch(&cfg(), now).unwrap();
        assert_eq!(third.rows(), 5);
        assert!(b.next_batch(&cfg(), now).is_err());
    }

    #[test]
    fn row_bytes_grow_with_content() {
        let small = Row::new("k").cell("a");
        let big = Row::new("k").cell("a".repeat(100));
        assert!(row_bytes(&big) > row_bytes(&small) + 90);
    }
}
