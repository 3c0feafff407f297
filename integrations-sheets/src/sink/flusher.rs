//! The sink's background flusher: one append per sheet and batch, deduplicated by key, with
//! key-checked retries; updates by key with one read of the key column per batch.

use std::collections::{HashMap, HashSet};
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

/// Keys known to be in a sheet's column A: loaded with one read, then kept up to date by our own
/// appends. Marked stale after an append whose outcome is unknown.
#[derive(Debug, Default)]
struct KnownKeys {
    keys: HashSet<String>,
    loaded: bool,
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
    Ok(col
        .values
        .into_iter()
        .map(|row| {
            row.into_iter()
                .next()
                .map(|c| match c {
                    // Moved: the column is as long as the sheet.
                    Cell::Text(s) => s,
                    other => other.as_text(),
                })
                .filter(|k| !k.is_empty())
        })
        .collect())
}

async fn append_jobs(
    client: &GoogleSheetsClient,
    sheet: &str,
    keys: &mut KnownKeys,
    jobs: Vec<AppendJob>,
) -> Result<(), Error> {
    if !keys.loaded {
        match read_keys(client, sheet).await {
            Ok(col) => {
                keys.keys = col.into_iter().flatten().collect();
                keys.loaded = true;
            }
            Err(e) => return Err(fail_appends(jobs, e)),
        }
    }
    // Rows whose key is already in the sheet (or earlier in this batch) are not sent again.
    let mut outcomes = vec![AppendOutcome::default(); jobs.len()];
    let mut seen: HashSet<&str> = HashSet::new();
    let mut to_send: Vec<(usize, &Row)> = Vec::new();
    for (j, job) in jobs.iter().enumerate() {
        for row in &job.rows {
            if keys.keys.contains(row.key()) || !seen.insert(row.key()) {
                outcomes[j].already_present += 1;
            } else {
                to_send.push((j, row));
            }
        }
    }
    if !to_send.is_empty() {
        let rows: Vec<&Row> = to_send.iter().map(|(_, r)| *r).collect();
        match append_checked(client, sheet, &rows).await {
            Ok(()) => {
                for (j, row) in &to_send {
                    outcomes[*j].appended += 1;
                    keys.keys.insert(row.key().to_owned());
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
}

/// Appends `rows` under the write policy. Before an attempt that follows one whose outcome is
/// unknown (timeout, dropped connection, 5xx), reads the key column and drops the rows that did
/// land, so that no row is appended twice. On failure, says whether rows may have landed.
async fn append_checked(
    client: &GoogleSheetsClient,
    sheet: &str,
    rows: &[&Row],
) -> Result<(), (Error, bool)> {
    let range = A1Range::cell(sheet, 0, 1);
    let progress = Mutex::new(Progress {
        pending: (0..rows.len()).collect(),
        maybe_landed: false,
    });
    let lock = || progress.lock().unwrap_or_else(|p| p.into_inner());
    let result = client
        .write_policy()
        .call("values.append", |attempt| {
            let (range, lock) = (&range, &lock);
            async move {
                if lock().maybe_landed {
                    let present: HashSet<String> = read_keys(client, sheet)
                        .await?
                        .into_iter()
                        .flatten()
                        .collect();
                    let mut p = lock();
                    let before = p.pending.len();
                    p.pending.retain(|i| !present.contains(rows[*i].key()));
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
                    Ok(_) => {
                        p.maybe_landed = false;
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
    result.map_err(|e| (e, lock().maybe_landed))
}

async fn update_jobs(
    client: &GoogleSheetsClient,
    sheet: &str,
    keys: &mut KnownKeys,
    jobs: Vec<UpdateJob>,
) -> Result<(), Error> {
    // One read of the key column for the whole batch.
    let col = match read_keys(client, sheet).await {
        Ok(col) => col,
        Err(e) => return Err(fail_updates(jobs, e)),
    };
    // The first row of each key this batch updates, found in one pass over the column: a map of
    // the batch's keys, not of every row (the column is as long as the sheet).
    let mut row_of: HashMap<&str, usize> = jobs
        .iter()
        .flat_map(|job| &job.rows)
        .map(|row| (row.key(), 0))
        .collect();
    for (i, k) in col.iter().enumerate() {
        if let Some(r) = k.as_deref().and_then(|k| row_of.get_mut(k))
            && *r == 0
        {
            *r = i + 1;
        }
    }
    row_of.retain(|_, r| *r > 0);
    // The column read is the freshest list of keys: it replaces what the appends kept (moved,
    // not copied).
    keys.keys = col.into_iter().flatten().collect();
    keys.loaded = true;
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

fn fail_updates(jobs: Vec<UpdateJob>, e: Error) -> Error {
    for job in jobs {
        let _ = job.done.send(Err(replicate(&e)));
    }
    e
}
