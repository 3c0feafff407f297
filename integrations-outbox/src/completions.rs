//! Group completion: the dispatcher's deliveries that finish while a completion is being
//! committed share the next commit ([`OutboxStore::complete_many`]).
//!
//! On a store where each commit waits for a disk flush (Postgres with synchronous commit), a
//! completion per job was a commit per job: the four deliveries of one event, finishing
//! together, made four flushes one after another. Here the first delivery to finish commits
//! alone (the leader); those that finish meanwhile queue, and when the leader's commit is done
//! the first of them leads the next commit with all of them, so a burst of `n` completions
//! costs about two commits, not `n`. Each job keeps its own result (fencing, lost leases and
//! unknown jobs are judged per job, exactly as by [`OutboxStore::complete`]), and each leader
//! commits one batch, so no delivery task is kept busy committing for others. Written by hand:
//! a mutex and a channel per waiter; no task is spawned per batch.

use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use super::store::OutboxStore;
use super::types::{JobId, LeaseToken};
use integrations_core::{Error, Result};

/// What a queued completion is told.
enum Turn {
    /// Its batch committed: its own result.
    Done(Result<()>),
    /// The previous leader is done: commit the queue (this completion included).
    Lead,
}

struct Waiter {
    ticket: u64,
    job_id: JobId,
    lease: LeaseToken,
    /// `None` once the waiter was told to lead (it reads its result from the batch itself).
    tell: Option<oneshot::Sender<Turn>>,
}

/// Completions waiting for the next commit, and whether a leader is committing.
#[derive(Default)]
pub(crate) struct Completions {
    state: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiter>,
    /// A leader is committing a batch; the next one is led by whoever it hands over to.
    committing: bool,
    next_ticket: u64,
}

impl Queue {
    /// Hands the lead to the first queued completion still waiting, or ends the run of commits
    /// when none is queued. A waiter whose task is gone cannot lead: the next one is asked;
    /// if none can, `false` (the caller must commit the queue itself).
    fn hand_over(&mut self) -> bool {
        if self.waiting.is_empty() {
            self.committing = false;
            return true;
        }
        for w in &mut self.waiting {
            if let Some(tell) = w.tell.take() {
                if tell.send(Turn::Lead).is_ok() {
                    return true;
                }
            }
        }
        false
    }
}

/// Hands the lead over if the leader's future is dropped mid-commit (its batch's senders are
/// dropped with it: each of those callers sees a retryable error and retries its mark), so
/// that no queued completion waits for a leader that is gone.
struct Leading<'a> {
    completions: &'a Completions,
    armed: bool,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut q = self.completions.lock();
            if !q.hand_over() {
                // Nobody queued can lead: refuse them (their marks are retried) and reset.
                q.waiting.clear();
                q.committing = false;
            }
        }
    }
}

/// A queued completion's wait: if its future is dropped after it was told to lead but before
/// it could, the lead passes on (its own completion stays queued and is committed by the next
/// leader: the delivery did succeed).
struct Queued<'a> {
    completions: &'a Completions,
    told: oneshot::Receiver<Turn>,
    /// Its turn was received (and is acted on by the caller).
    settled: bool,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if !self.settled {
            if let Ok(Turn::Lead) = self.told.try_recv() {
                let mut q = self.completions.lock();
                if !q.hand_over() {
                    q.waiting.clear();
                    q.committing = false;
                }
            }
        }
    }
}

impl Completions {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Completes `job_id` under `lease` in the next batch committed to `store`.
    pub(crate) async fn complete(
        &self,
        store: &dyn OutboxStore,
        job_id: JobId,
        lease: LeaseToken,
    ) -> Result<()> {
        let (tell, told) = oneshot::channel();
        let (ticket, lead) = {
            let mut q = self.lock();
            let ticket = q.next_ticket;
            q.next_ticket = q.next_ticket.wrapping_add(1);
            q.waiting.push(Waiter {
                ticket,
                job_id,
                lease,
                tell: Some(tell),
            });
            (ticket, !std::mem::replace(&mut q.committing, true))
        };
        if !lead {
            let mut queued = Queued {
                completions: self,
                told,
                settled: false,
            };
            let turn = (&mut queued.told).await;
            queued.settled = true;
            match turn {
                Ok(Turn::Done(result)) => return result,
                Ok(Turn::Lead) => {}
                Err(_) => {
                    return Err(Error::unavailable(
                        "the completion batch was dropped before it committed",
                    ));
                }
            }
        }
        self.lead(store, ticket).await
    }

    /// Commits everything queued (`ticket`'s own completion among it), tells each waiter its
    /// result, hands the lead over, and returns `ticket`'s result.
    async fn lead(&self, store: &dyn OutboxStore, ticket: u64) -> Result<()> {
        let mut leading = Leading {
            completions: self,
            armed: true,
        };
        let mut mine = None;
        loop {
            let batch = std::mem::take(&mut self.lock().waiting);
            let pairs: Vec<(JobId, LeaseToken)> = batch
                .iter()
                .map(|w| (w.job_id.clone(), w.lease.clone()))
                .collect();
            let mut results = store.complete_many(&pairs).await.into_iter();
            for w in batch {
                let result = results.next().unwrap_or_else(|| {
                    Err(Error::provider(format!(
                        "the store returned no result for job {}",
                        w.job_id
                    )))
                });
                if w.ticket == ticket {
                    mine = Some(result);
                } else if let Some(tell) = w.tell {
                    let _ = tell.send(Turn::Done(result));
                }
            }
            if self.lock().hand_over() {
                break;
            }
            // Every queued waiter is gone: commit their completions here, then hand over again.
        }
        leading.armed = false;
        mine.unwrap_or_else(|| {
            Err(Error::provider(
                "a completion was left out of its batch (outbox dispatcher bug)",
            ))
        })
    }
}

#[cfg(test)]
#[path = "completions_tests.rs"]
mod tests;
