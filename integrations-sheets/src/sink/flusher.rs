//! The sink's background flusher: one append per sheet and batch, deduplicated by key, with
//! key-checked retries; updates by key at the rows the sink knows, checked with one
//! `values.batchGet` of their key cells, or else found with one read of the key column.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use integrations_core::provider::{AppendOutcome, Cell, Row, UpdateOutcome};
use integrations_core::{Error, Result};
use serde_json::Value;
use tokio::time::Instant;

use super::Shared;
use super::buffer::{AppendJob, Batch, UpdateJob};
use crate::a1::A1Range;
use crate::client::{GoogleSheetsClient, may_have_landed, replicate};
use crate::values::rows_to_json;

/// Keys known to be in a sheet's column A, each with the row it was seen at (1-based; 0 when the
/// key is known to be there but not where): loaded with one read, then kept up to date by our
/// own appends, whose `updatedRange` says where their rows went. Marked stale after an append
/// whose outcome is unknown.
///
/// A row is a hint, never trusted alone: an update first reads the key cells of the rows it
/// would write (rows move when somebody inserts, deletes or sorts), and falls back to reading
/// the column when one of them holds another key.
///
/// A key is kept as a 64-bit hash (seeded per sink) with its row, not as its text: a sink knows
/// every key of its sheet for as long as it runs, and the text cost ~66 bytes a key (a sheet of
/// a million rows, 66 MB), the hash ~20–40. A hash is a hint too: a key whose hash is known is
/// skipped by an append, or written by an update, only once its cell has been read and holds
/// it, or once the column has been read and has it; two keys with one hash only cost a read of
/// the column.
#[derive(Debug, Default)]
struct KnownKeys<S = RandomState> {
    rows: HashMap<u64, u32>,
    seed: S,
    loaded: bool,
}

impl<S: BuildHasher> KnownKeys<S> {
    fn hash(&self, key: &str) -> u64 {
        self.seed.hash_one(key)
    }

    /// The row a key with `key`'s hash was seen at, if any (0: somewhere).
    fn row(&self, key: &str) -> Option<u32> {
        self.rows.get(&self.hash(key)).copied()
    }

    /// Whether a key with `key`'s hash is known: `key` may be in the sheet.
    fn may_hold(&self, key: &str) -> bool {
        self.rows.contains_key(&self.hash(key))
    }

    /// Notes that `key` is at `row`.
    fn insert(&mut self, key: &str, row: u32) {
        self.rows.insert(self.hash(key), row);
    }

    /// Replaces what is known with column A as read: each key at the first row that holds it.
    fn load(&mut self, col: &[Option<String>]) {
        let mut rows = HashMap::with_capacity(col.len());
        for (i, key) in col.iter().enumerate() {
            if let Some(key) = key {
                rows.entry(self.hash(key))
                    .or_insert(u32::try_from(i + 1).unwrap_or(0));
            }
        }
        self.rows = rows;
        self.loaded = true;
    }
}

/// The first row of each of `wanted` in column A as read (keys matched by their text).
fn rows_in<'b>(col: &[Option<String>], wanted: &HashSet<&'b str>) -> HashMap<&'b str, usize> {
    let mut rows = HashMap::with_capacity(wanted.len());
    for (i, key) in col.iter().enumerate() {
        if let Some(&k) = key.as_deref().and_then(|key| wanted.get(key)) {
            rows.entry(k).or_insert(i + 1);
        }
    }
    rows
}

/// Runs until the sink closes and its buffer is empty.
pub(crate) async fn run(shared: Arc<Shared>, client: GoogleSheetsClient) {
    let mut known: HashMap<String, KnownKeys> = HashMap::new();
    loop {
        let next = {
            let mut buf = shared.lock();
            match buf.next_batch(&shared.config, Instant::now()) {
                Ok(batch) => Ok(batch),
                Err(wake_at) => {
                    if buf.closing && buf.is_idle() {
                        drop(buf);
                        shared.progress.notify_waiters();
                        tracing::debug!(provider = crate::PROVIDER, "sheets sink flusher stopped");
                        return;
                    }
                    Err(wake_at)
                }
            }
        };
        match next {
            Ok(batch) => {
                let rows = batch.rows();
                let seqs: Vec<u64> = batch.seqs().collect();
                let failure = flush_batch(&client, &mut known, batch).await;
                {
                    let mut buf = shared.lock();
                    buf.complete(seqs);
                    if let Some(e) = failure {
                        buf.failures += 1;
                        buf.last_failure = Some(e);
                    }
                }
                shared.space.add_permits(rows);
                shared.progress.notify_waiters();
            }
            Err(wake_at) => {
                let sleep = async {
                    match wake_at {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = shared.wake.notified() => {}
                    () = sleep => {}
                }
            }
        }
    }
}

/// Flushes one sheet's batch; returns the failure (if any) for `flush()` to report.
async fn flush_batch(
    client: &GoogleSheetsClient,
    known: &mut HashMap<String, KnownKeys>,
    batch: Batch,
) -> Option<Error> {
    let sheet = batch.sheet;
    let keys = known.entry(sheet.clone()).or_default();
    let mut failure = None;
    if !batch.appends.is_empty() {
        if let Err(e) = append_jobs(client, &sheet, keys, batch.appends).await {
            failure = Some(e);
        }
    }
    if !batch.updates.is_empty() {
        if let Err(e) = update_jobs(client, &sheet, keys, batch.updates).await {
            failure = Some(e);
        }
    }
    failure
}

/// Column A of `sheet`, in row order (`None` for an empty key cell). An empty sheet has none.
async fn read_keys(client: &GoogleSheetsClient, sheet: &str) -> Result<Vec<Option<String>>> {
    let col = client.get(&A1Range::columns(sheet, 0, 0)).await?;
    Ok(col.values.into_iter().map(key_of).collect())
}

/// The key in a row read from column A (`None` for an empty cell).
fn key_of(row: Vec<Cell>) -> Option<String> {
    row.into_iter()
        .next()
        .map(|c| match c {
            // Moved: the column is as long as the sheet.
            Cell::Text(s) => s,
            other => other.as_text(),
        })
        .filter(|k| !k.is_empty())
}

/// The first row of an append's `updatedRange` (`'Orders'!A6:F9` is 6), if it names one.
fn first_row(updated_range: Option<&str>) -> Option<u32> {
    A1Range::parse(updated_range?)
        .ok()?
        .start()
        .and_then(|c| c.row)
}

async fn append_jobs<S: BuildHasher>(
    client: &GoogleSheetsClient,
    sheet: &str,
    keys: &mut KnownKeys<S>,
    jobs: Vec<AppendJob>,
) -> Result<(), Error> {
    // The column, when the sink does not know it yet: read once, and the batch's keys are
    // matched against its text.
    let fresh = if keys.loaded {
        None
    } else {
        match read_keys(client, sheet).await {
            Ok(col) => Some(col),
            Err(e) => return Err(fail_appends(jobs, e)),
        }
    };
    // Rows whose key is already in the sheet (or earlier in this batch) are not sent again.
    let mut outcomes = vec![AppendOutcome::default(); jobs.len()];
    let mut seen: HashSet<&str> = HashSet::new();
    let mut first: Vec<(usize, &Row)> = Vec::new();
    for (j, job) in jobs.iter().enumerate() {
        for row in &job.rows {
            if seen.insert(row.key()) {
                first.push((j, row));
            } else {
                outcomes[j].already_present += 1;
            }
        }
    }
    let present: HashSet<&str> = match fresh {
        Some(col) => {
            let present = rows_in(&col, &seen).into_keys().collect();
            keys.load(&col);
            present
        }
        None => {
            let maybe: HashSet<&str> = seen.iter().copied().filter(|k| keys.may_hold(k)).collect();
            match present_keys(client, sheet, keys, &maybe).await {
                Ok(present) => present,
                Err(e) => return Err(fail_appends(jobs, e)),
            }
        }
    };
    let mut to_send: Vec<(usize, &Row)> = Vec::with_capacity(first.len());
    for (j, row) in first {
        if present.contains(row.key()) {
            outcomes[j].already_present += 1;
        } else {
            to_send.push((j, row));
        }
    }
    if !to_send.is_empty() {
        let rows: Vec<&Row> = to_send.iter().map(|(_, r)| *r).collect();
        match append_checked(client, sheet, &rows).await {
            Ok(placed) => {
                for ((j, row), at) in to_send.iter().zip(placed) {
                    outcomes[*j].appended += 1;
                    keys.insert(row.key(), at);
                }
            }
            Err((e, unknown)) => {
                if unknown {
                    keys.loaded = false;
                }
                return Err(fail_appends(jobs, e));
            }
        }
    }
    let sent = to_send.len();
    tracing::debug!(
        provider = crate::PROVIDER,
        sheet,
        appended = sent,
        skipped = outcomes.iter().map(|o| o.already_present).sum::<usize>(),
        "sheets batch appended"
    );
    for (job, outcome) in jobs.into_iter().zip(outcomes) {
        let _ = job.done.send(Ok(outcome));
    }
    Ok(())
}

/// Which of `maybe` (keys whose hash the sink knows) are in the sheet: confirmed by one
/// `values.batchGet` of their cells when each is where the sink saw it, else by one read of the
/// column, which then replaces what the sink knows.
async fn present_keys<'b, S: BuildHasher>(
    client: &GoogleSheetsClient,
    sheet: &str,
    keys: &mut KnownKeys<S>,
    maybe: &HashSet<&'b str>,
) -> Result<HashSet<&'b str>> {
    if maybe.is_empty() {
        return Ok(HashSet::new());
    }
    if checked_rows(client, sheet, keys, maybe).await.is_some() {
        return Ok(maybe.clone());
    }
    let col = read_keys(client, sheet).await?;
    let present = rows_in(&col, maybe).into_keys().collect();
    keys.load(&col);
    Ok(present)
}

fn fail_appends(jobs: Vec<AppendJob>, e: Error) -> Error {
    for job in jobs {
        let _ = job.done.send(Err(replicate(&e)));
    }
    e
}

/// Where an append stands between attempts.
struct Progress {
    /// Indexes of rows not known to be in the sheet.
    pending: Vec<usize>,
    /// The last attempt failed in a way that may have appended the rows.
    maybe_landed: bool,
    /// The sheet row of each of `rows` once it is known to be there (0 while not known).
    placed: Vec<u32>,
}

/// Appends `rows` under the write policy. Before an attempt that follows one whose outcome is
/// unknown (timeout, dropped connection, 5xx), reads the key column and drops the rows that did
/// land, so that no row is appended twice. On success, the row each of `rows` is at (0 where
/// Google's answer did not say); on failure, whether rows may have landed.
async fn append_checked(
    client: &GoogleSheetsClient,
    sheet: &str,
    rows: &[&Row],
) -> Result<Vec<u32>, (Error, bool)> {
    let range = A1Range::cell(sheet, 0, 1);
    let progress = Mutex::new(Progress {
        pending: (0..rows.len()).collect(),
        maybe_landed: false,
        placed: vec![0; rows.len()],
    });
    let lock = || progress.lock().unwrap_or_else(|p| p.into_inner());
    let result = client
        .write_policy()
        .call("values.append", |attempt| {
            let (range, lock) = (&range, &lock);
            async move {
                if lock().maybe_landed {
                    let col = read_keys(client, sheet).await?;
                    let wanted: HashSet<&str> = rows.iter().map(|r| r.key()).collect();
                    let present = rows_in(&col, &wanted);
                    let mut p = lock();
                    let before = p.pending.len();
                    let Progress {
                        pending, placed, ..
                    } = &mut *p;
                    pending.retain(|&i| match present.get(rows[i].key()) {
                        Some(&at) => {
                            placed[i] = u32::try_from(at).unwrap_or(0);
                            false
                        }
                        None => true,
                    });
                    p.maybe_landed = false;
                    tracing::info!(
                        provider = crate::PROVIDER,
                        sheet,
                        attempt = attempt.number,
                        landed = before - p.pending.len(),
                        still_missing = p.pending.len(),
                        "append outcome was unknown; key column checked before re-appending"
                    );
                }
                let values: Value = {
                    let mut p = lock();
                    if p.pending.is_empty() {
                        return Ok(());
                    }
                    p.maybe_landed = true;
                    let slice: Vec<Vec<_>> =
                        p.pending.iter().map(|i| rows[*i].to_values()).collect();
                    rows_to_json(&slice)
                };
                let result = client.append_attempt(attempt.number, range, &values).await;
                let mut p = lock();
                match result {
                    Ok(appended) => {
                        p.maybe_landed = false;
                        // Google writes the rows in the order sent, from the first row of
                        // `updatedRange`.
                        if let Some(first) = first_row(appended.updates.updated_range.as_deref()) {
                            let Progress {
                                pending, placed, ..
                            } = &mut *p;
                            for (n, &i) in pending.iter().enumerate() {
                                placed[i] = u32::try_from(n)
                                    .ok()
                                    .and_then(|n| first.checked_add(n))
                                    .unwrap_or(0);
                            }
                        }
                        p.pending.clear();
                        Ok(())
                    }
                    Err(e) => {
                        p.maybe_landed = may_have_landed(&e);
                        Err(e)
                    }
                }
            }
        })
        .await;
    // An attempt cut off by the policy's timeout never reached its `match`: `maybe_landed`
    // stayed set, which is what makes the next attempt (or flush) check the key column.
    match result {
        Ok(()) => Ok(std::mem::take(&mut lock().placed)),
        Err(e) => Err((e, lock().maybe_landed)),
    }
}

async fn update_jobs<S: BuildHasher>(
    client: &GoogleSheetsClient,
    sheet: &str,
    keys: &mut KnownKeys<S>,
    jobs: Vec<UpdateJob>,
) -> Result<(), Error> {
    let batch: HashSet<&str> = jobs
        .iter()
        .flat_map(|job| &job.rows)
        .map(Row::key)
        .collect();
    // The rows the sink knows, if their key cells still hold their keys; else one read of the
    // key column for the whole batch.
    let row_of = match checked_rows(client, sheet, keys, &batch).await {
        Some(rows) => rows,
        None => match read_keys(client, sheet).await {
            Ok(col) => {
                // The column read is the freshest list of keys: the batch's rows are found in
                // it by their text, and it replaces what the appends kept.
                let rows = rows_in(&col, &batch);
                keys.load(&col);
                rows
            }
            Err(e) => return Err(fail_updates(jobs, e)),
        },
    };
    let mut data = Vec::new();
    let mut outcomes: Vec<Vec<UpdateOutcome>> = Vec::with_capacity(jobs.len());
    for job in &jobs {
        let mut out = Vec::with_capacity(job.rows.len());
        for row in &job.rows {
            match row_of.get(row.key()) {
                Some(&r) => {
                    let values = row.to_values();
                    let last_col = u32::try_from(values.len().saturating_sub(1)).unwrap_or(0);
                    let r32 = u32::try_from(r).unwrap_or(u32::MAX);
                    data.push((A1Range::area(sheet, 0, r32, last_col, r32), vec![values]));
                    out.push(UpdateOutcome::Updated { row: r });
                }
                None => out.push(UpdateOutcome::NotFound),
            }
        }
        outcomes.push(out);
    }
    if !data.is_empty()
        && let Err(e) = client.batch_update(&data).await
    {
        return Err(fail_updates(jobs, e));
    }
    for (job, out) in jobs.into_iter().zip(outcomes) {
        let _ = job.done.send(Ok(out));
    }
    Ok(())
}

/// The most bytes the ranges of one `values.batchGet` may take in its URL, percent-encoded at
/// worst: the ranges travel in the query string, each with the quoted sheet name, and Google
/// refuses URLs much longer than this.
const BATCH_GET_URL_BYTES: usize = 8_000;

/// The row of each of `batch`'s keys, when the sink knows one for every key and a single
/// `values.batchGet` of their key cells finds each still holding its key. `None` means "read
/// the column": a key not known or whose row is not known, a cell that holds something else,
/// more keys than one request carries (at most [`GoogleSheetsClient::BATCH_GET_RANGES`], and
/// fewer for a long sheet name), or a `batchGet` that failed (a row past the end of a sheet
/// that lost rows is a 400 at Google) — the column read decides then, as it did before the
/// sink knew rows.
async fn checked_rows<'b, S: BuildHasher>(
    client: &GoogleSheetsClient,
    sheet: &str,
    keys: &KnownKeys<S>,
    batch: &HashSet<&'b str>,
) -> Option<HashMap<&'b str, usize>> {
    if !keys.loaded {
        return None;
    }
    let per_range = 3 * A1Range::cell(sheet, 0, u32::MAX).to_string().len() + "&ranges=".len();
    let most = GoogleSheetsClient::BATCH_GET_RANGES.min(BATCH_GET_URL_BYTES / per_range);
    if batch.len() > most {
        return None;
    }
    let mut known: Vec<(&str, u32)> = Vec::with_capacity(batch.len());
    for &key in batch {
        match keys.row(key) {
            Some(row) if row > 0 => known.push((key, row)),
            _ => return None,
        }
    }
    known.sort_unstable_by_key(|&(_, row)| row);
    let ranges: Vec<A1Range> = known
        .iter()
        .map(|&(_, row)| A1Range::cell(sheet, 0, row))
        .collect();
    let read = match client.batch_get(&ranges).await {
        Ok(read) => read,
        Err(e) => {
            tracing::debug!(
                provider = crate::PROVIDER,
                sheet,
                error = %e,
                "the key cells could not be read; reading the key column"
            );
            return None;
        }
    };
    if read.len() != known.len() {
        return None;
    }
    for (&(key, _), cell) in known.iter().zip(read) {
        if cell.values.into_iter().next().and_then(key_of).as_deref() != Some(key) {
            tracing::debug!(
                provider = crate::PROVIDER,
                sheet,
                "a key is no longer at its row; reading the key column"
            );
            return None;
        }
    }
    Some(
        known
            .into_iter()
            .map(|(key, row)| (key, row as usize))
            .collect(),
    )
}

fn fail_updates(jobs: Vec<UpdateJob>, e: Error) -> Error {
    for job in jobs {
        let _ = job.done.send(Err(replicate(&e)));
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_row_of_an_appends_updated_range() {
        assert_eq!(first_row(Some("Orders!A6:H9")), Some(6));
        assert_eq!(first_row(Some("'It''s here'!A12:C12")), Some(12));
        assert_eq!(first_row(Some("Orders!B7")), Some(7));
        // No row to take: the keys are kept with row 0 (known, not where), and an update of
        // them reads the column.
        assert_eq!(first_row(Some("Orders!A:C")), None);
        assert_eq!(first_row(Some("'unterminated!A1")), None);
        assert_eq!(first_row(None), None);
    }

    #[test]
    fn the_column_gives_each_keys_first_row() {
        let col = vec![
            Some("a".to_owned()),
            None,
            Some("b".to_owned()),
            Some("a".to_owned()),
        ];
        let rows = rows_in(&col, &HashSet::from(["a", "b"]));
        assert_eq!(rows.len(), 2);
        assert_eq!((rows["a"], rows["b"]), (1, 3));
    }
}

#[cfg(all(test, feature = "sandbox"))]
#[path = "flusher_tests.rs"]
mod hashed_keys_tests;
