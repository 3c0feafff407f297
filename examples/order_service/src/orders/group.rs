//! Group commit of the webhook writes to the SQLite order store.
//!
//! Every Stripe event the service accepts is one durable write: its order's change and the
//! event with its jobs ([`SqliteOrders::apply_payment_event`]), or the event alone, recorded so a
//! redelivery is known ([`SqliteOrders::record_event`]). One transaction each is one `fsync`
//! each, on the one writer SQLite has, shared with the API's writes and the outbox's claims and
//! completions: under load the intake took fewer events than the API made (issue 17,
//! `docs/scaling.md`). Here the writes that arrive while a commit is under way wait for it and
//! then go together, in one transaction, one `fsync`:
//!
//! - each write runs inside its own `SAVEPOINT`: one that fails (an order gone, bad input) is
//!   rolled back alone and its caller gets its error; the others commit;
//! - the same event twice in one group is recorded once: the second finds the first's record
//!   inside the transaction and is answered `Duplicate`, as across groups;
//! - no caller is answered before the commit that holds its write: if the commit fails, every
//!   caller of the group gets an error (and its webhook a 5xx, so the provider delivers again);
//! - the group is led by a spawned task, not by a caller's future: a webhook request whose
//!   client hangs up (its future dropped) strands no other caller.
//!
//! Hand-written because neither `rusqlite` nor the outbox batches independent callers' writes;
//! it is the usual leader/follower group commit, bounded by [`MAX_GROUP`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use integrations_core::{Error, Result};
use integrations_outbox::rusqlite::{Connection, Transaction};
use integrations_outbox::{NewJob, RecordOutcome, SqliteOutbox};
use tokio::sync::oneshot;

use super::model::OrderStatus;
use super::sqlite::{begin, db_error, get, set_status};
use super::store::{PaymentApplied, STORE, not_found};

/// Most writes in one transaction: a group's callers wait for all of it.
pub(super) const MAX_GROUP: usize = 64;

/// One webhook write.
#[derive(Debug)]
pub(super) enum Write {
    /// A payment event: the order's new status, and the event with its jobs.
    Payment {
        id: String,
        status: OrderStatus,
        event_id: String,
        jobs: Vec<NewJob>,
    },
    /// An event that changes no order, recorded so a redelivery is known.
    Event { event_id: String },
}

/// What a [`Write`] did, once committed.
#[derive(Debug)]
pub(super) enum Written {
    /// Boxed: the order it returns is large next to an event's outcome.
    Payment(Box<PaymentApplied>),
    Event(RecordOutcome),
}

pub(super) type Waiting = (Write, oneshot::Sender<Result<Written>>);

/// The writes waiting for the next commit, and whether a leader is committing.
#[derive(Default)]
pub(super) struct Group {
    state: Mutex<GroupState>,
    /// Groups written so far.
    groups: AtomicU64,
}

#[derive(Default)]
struct GroupState {
    waiting: Vec<Waiting>,
    leading: bool,
}

impl Group {
    /// Queues `write`; returns `true` if the caller must start a leader (none is running).
    fn push(&self, write: Waiting) -> bool {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.waiting.push(write);
        !std::mem::replace(&mut s.leading, true)
    }

    /// The next group to commit (at most [`MAX_GROUP`]), or `None` — and no leader any more —
    /// when nothing waits.
    fn next(&self) -> Option<Vec<Waiting>> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.waiting.is_empty() {
            s.leading = false;
            return None;
        }
        let take = s.waiting.len().min(MAX_GROUP);
        let rest = s.waiting.split_off(take);
        self.groups.fetch_add(1, Ordering::Relaxed);
        Some(std::mem::replace(&mut s.waiting, rest))
    }

    /// Groups taken for a commit so far (each one transaction).
    pub(super) fn groups(&self) -> u64 {
        self.groups.load(Ordering::Relaxed)
    }
}

/// Runs `write` in the next group commit of `group` and returns what it did once committed.
/// `commit` writes one group on the store's connection (on the blocking pool).
pub(super) async fn submit<C, F>(group: &Arc<Group>, write: Write, commit: C) -> Result<Written>
where
    C: Fn(Vec<Waiting>) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    if group.push((write, tx)) {
        let group = Arc::clone(group);
        tokio::spawn(async move {
            while let Some(batch) = group.next() {
                commit(batch).await;
            }
        });
    }
    rx.await.map_err(|_| {
        Error::unavailable("the order store's group commit did not finish").with_provider(STORE)
    })?
}

/// Writes `batch` on `conn` in one transaction, each write in its own savepoint, and answers
/// each caller after the commit (every caller an error if there is no commit).
pub(super) fn commit_group(conn: &mut Connection, outbox: &SqliteOutbox, batch: Vec<Waiting>) {
    let fail_all = |batch: Vec<oneshot::Sender<Result<Written>>>, why: &str| {
        for answer in batch {
            let _ = answer.send(Err(Error::unavailable(format!(
                "order store: {why}; nothing of this write was kept"
            ))
            .with_provider(STORE)));
        }
    };
    let tx = match begin(conn) {
        Ok(tx) => tx,
        Err(e) => {
            let answers = batch.into_iter().map(|(_, a)| a).collect();
            return fail_all(answers, &format!("cannot begin a transaction: {e}"));
        }
    };
    let mut done = Vec::with_capacity(batch.len());
    let mut writes = batch.into_iter();
    for (write, answer) in writes.by_ref() {
        match in_savepoint(&tx, |tx| apply(tx, outbox, write)) {
            Ok(result) => done.push((answer, result)),
            // The savepoint could not be rolled back: what the transaction holds is unknown, so
            // none of it is committed (dropping `tx` rolls it back).
            Err(e) => {
                let why = format!("a write could not be undone alone ({e})");
                let answers = done
                    .into_iter()
                    .map(|(a, _)| a)
                    .chain([answer])
                    .chain(writes.map(|(_, a)| a))
                    .collect();
                return fail_all(answers, &why);
            }
        }
    }
    match tx.commit() {
        Ok(()) => {
            for (answer, result) in done {
                let _ = answer.send(result);
            }
        }
        Err(e) => fail_all(
            done.into_iter().map(|(a, _)| a).collect(),
            &format!("the commit failed ({})", db_error(e)),
        ),
    }
}

/// One write, inside the group's transaction.
fn apply(tx: &Transaction<'_>, outbox: &SqliteOutbox, write: Write) -> Result<Written> {
    match write {
        Write::Payment {
            id,
            status,
            event_id,
            jobs,
        } => {
            let outcome = outbox.record_event_in(tx, &event_id, jobs)?;
            if !outcome.is_duplicate() {
                set_status(tx, &id, status)?;
            }
            let order = get(tx, &id)?.ok_or_else(|| not_found(&id))?;
            Ok(Written::Payment(Box::new(PaymentApplied {
                order,
                outcome,
            })))
        }
        Write::Event { event_id } => Ok(Written::Event(outbox.record_event_in(
            tx,
            &event_id,
            Vec::new(),
        )?)),
    }
}

/// Runs `f` inside a savepoint of `tx`: kept if it succeeds, rolled back alone if it fails
/// (`Ok(Err(_))`). `Err(_)`: the savepoint itself failed, and the transaction must not commit.
fn in_savepoint<T>(
    tx: &Transaction<'_>,
    f: impl FnOnce(&Transaction<'_>) -> Result<T>,
) -> Result<Result<T>> {
    tx.execute_batch("SAVEPOINT webhook_write")
        .map_err(db_error)?;
    match f(tx) {
        Ok(v) => {
            tx.execute_batch("RELEASE webhook_write")
                .map_err(db_error)?;
            Ok(Ok(v))
        }
        Err(e) => {
            tx.execute_batch("ROLLBACK TO webhook_write; RELEASE webhook_write")
                .map_err(db_error)?;
            Ok(Err(e))
        }
    }
}
