//! [`WakeOnNotify`]: dispatchers woken by `LISTEN/NOTIFY` instead of waiting out their poll.

use std::fmt;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};

use super::outbox::PostgresOutbox;
use super::{NOTIFY_CHANNEL, sql_error};
use crate::DispatcherWaker;

/// Pause before listening again after the listener failed to connect.
const RETRY: Duration = Duration::from_secs(1);

/// A background task that listens on [`NOTIFY_CHANNEL`] and wakes a [`Dispatcher`](crate::Dispatcher)
/// whenever jobs are recorded or replayed anywhere on the database (the notification is sent on
/// commit, so a rolled-back transaction wakes no one). Made by
/// [`PostgresOutbox::wake_on_notify`]; the task stops when this value is dropped.
///
/// Polling stays the fallback: notifications sent while the listening connection was down are
/// lost (Postgres keeps none), so the task wakes the dispatcher after every reconnect, and the
/// dispatcher's `poll_interval` covers retry times coming due (they send no notification).
pub struct WakeOnNotify {
    task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for WakeOnNotify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WakeOnNotify")
            .field("running", &!self.task.is_finished())
            .finish_non_exhaustive()
    }
}

impl Drop for WakeOnNotify {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PostgresOutbox {
    /// Starts a task (on the current tokio runtime) that wakes `waker`'s dispatcher on every
    /// notification of new or replayed jobs; keep the returned value as long as the dispatcher
    /// runs.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn wake_on_notify(&self, waker: DispatcherWaker) -> WakeOnNotify {
        let pool = self.pool().clone();
        WakeOnNotify {
            task: tokio::spawn(listen(pool, waker)),
        }
    }
}

async fn listen(pool: PgPool, waker: DispatcherWaker) {
    loop {
        let mut listener = match connect(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "outbox listener cannot listen; dispatchers poll meanwhile");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        // Anything recorded while no one listened was not announced.
        waker.wake();
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => waker.wake(),
                // The connection dropped: the next `try_recv` reconnects and listens again.
                Ok(None) => waker.wake(),
                Err(e) => {
                    tracing::warn!(error = %sql_error(e), "outbox listener lost its connection");
                    tokio::time::sleep(RETRY).await;
                    break;
                }
            }
        }
    }
}

async fn connect(pool: &PgPool) -> integrations_core::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await.map_err(sql_error)?;
    listener.listen(NOTIFY_CHANNEL).await.map_err(sql_error)?;
    Ok(listener)
}
