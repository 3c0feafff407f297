//! The SQLite plumbing shared by the outbox and the saga log: opening the file with the durable
//! settings, versioned migrations, and running calls on tokio's blocking pool with their commits
//! grouped.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior};

use integrations_core::{Error, Result};

/// Name used as `provider` on errors raised by the SQLite stores.
pub const SQLITE: &str = "sqlite";

/// How hard SQLite works to make each commit durable (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Synchronous {
    /// `FULL` (the default): in WAL mode the log is fsynced at every commit, so a commit that
    /// returned survives a process kill *and* a power loss or kernel panic.
    Full,
    /// `NORMAL`: the log is fsynced only at checkpoints. A commit survives a process kill
    /// (`kill -9`, panic, OOM) because it is in the OS page cache, but the last commits before a
    /// power loss or kernel panic may roll back (the file stays consistent).
    Normal,
}

impl Synchronous {
    const fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// Settings of the SQLite stores.
///
/// The default is WAL journal, `synchronous = FULL` and a 5 s busy timeout. `FULL` because the
/// outbox's commit is what lets the webhook handler answer `200`: once a provider hears `200` it
/// never redelivers, so a commit lost to a power cut would be a confirmation email never sent.
/// `FULL` applies to the writes that need it (recording an event, replaying a dead letter, a
/// saga's progress); claims, completions and failures are committed with `NORMAL` either way,
/// since losing one only makes a job run again. `NORMAL` for everything is enough where only
/// process crashes matter (it survives `kill -9`) and skips the fsync per recorded event: on this
/// project's 2-core VM (release build, events of 4 jobs, one caller) about 3,500 `record_event`s
/// a second with `FULL` and 6,500 with `NORMAL`; with 16 concurrent callers, whose commits are
/// grouped, about 18,000 and 29,000.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// Durability of commits.
    pub synchronous: Synchronous,
    /// How long a call waits for another connection's write lock before failing with
    /// [`Error::Unavailable`].
    pub busy_timeout: Duration,
}

impl SqliteOptions {
    /// The defaults (`FULL`, 5 s).
    pub fn new() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
        }
    }
    /// Sets the durability of commits.
    #[must_use]
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }
    /// Sets the busy timeout.
    #[must_use]
    pub fn busy_timeout(mut self, busy_timeout: Duration) -> Self {
        self.busy_timeout = busy_timeout;
        self
    }
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions::new()
    }
}

/// What a call does to the file, which decides how its commit is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Reads only.
    Read,
    /// A write whose loss in a power cut only makes work happen again (a lease taken, a job
    /// marked done or failed): committed with `synchronous = NORMAL`, and made durable by the
    /// next durable commit or checkpoint. Like every commit, it survives a process kill.
    Write,
    /// A write that must survive a power cut once the call returns (an event recorded, which lets
    /// a webhook answer `200`; a replay; a saga's progress): committed with the configured
    /// [`Synchronous`] level.
    DurableWrite,
}

/// Most calls one commit carries.
const MAX_BATCH: usize = 64;

/// Answers a call's caller, given the batch's failure if there was one.
type Reply = Box<dyn FnOnce(Option<&BatchFailure>) + Send>;

/// Runs a call on the connection (`None`: the batch failed before it could run); returns whether
/// the call succeeded and its [`Reply`].
type Run = Box<dyn FnOnce(Option<&Connection>) -> (bool, Reply) + Send>;

/// A call queued for the connection's thread. `run` gets the connection (or `None` when the
/// batch failed before the call could run) and returns whether the call succeeded and how to
/// answer the caller once the batch's commit is known.
struct Command {
    access: Access,
    run: Run,
}

/// Why a whole batch failed: its transaction could not begin, or it could not commit.
#[derive(Debug)]
struct BatchFailure {
    code: Option<ErrorCode>,
    message: String,
}

impl BatchFailure {
    fn new(what: &str, e: &rusqlite::Error) -> BatchFailure {
        BatchFailure {
            code: e.sqlite_error_code(),
            message: format!("{what}: {e}"),
        }
    }

    fn error(&self) -> Error {
        error_for(self.code, self.message.clone()).with_provider(SQLITE)
    }
}

/// One connection, and a queue of calls in front of it. A call joins the queue; if no task is
/// draining it, the call starts one on tokio's blocking pool. The drainer runs everything queued
/// as one transaction (group commit), each call in its own savepoint so that a call that fails is
/// rolled back alone, and every caller hears back only after the shared commit; then it takes
/// what queued up meanwhile, until the queue is empty. Under load this turns many small commits,
/// and their fsyncs, into few, with one blocking task at a time. (The blocking pool, rather than
/// a thread of our own, keeps tokio aware of the work: a runtime with paused time does not jump
/// ahead while a call is in SQLite.)
#[derive(Clone)]
pub(crate) struct Db {
    shared: Arc<Shared>,
    path: Arc<PathBuf>,
}

struct Shared {
    queue: Mutex<Queue>,
    conn: Mutex<Conn>,
}

#[derive(Default)]
struct Queue {
    calls: Vec<Command>,
    /// Whether a drainer has been started and has not yet found the queue empty.
    draining: bool,
}

struct Conn {
    conn: Connection,
    /// The `synchronous` level the connection is at now.
    current: Synchronous,
    /// The level durable writes get.
    configured: Synchronous,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Opens (creating if needed) `path`, applies `options`, and brings `component`'s schema to
    /// `migrations.len()`.
    pub(crate) async fn open(
        path: &Path,
        options: &SqliteOptions,
        component: &'static str,
        migrations: &'static [&'static str],
    ) -> Result<Db> {
        let path = path.to_path_buf();
        let options = options.clone();
        let p = path.clone();
        let conn = blocking(move || {
            let mut conn = Connection::open(&p)
                .map_err(|e| sql_error(e).with_operation(format!("open {}", p.display())))?;
            configure(&conn, &options)?;
            migrate(&mut conn, component, migrations)?;
            Ok(Conn {
                conn,
                current: options.synchronous,
                configured: options.synchronous,
            })
        })
        .await?;
        Ok(Db {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                conn: Mutex::new(conn),
            }),
            path: Arc::new(path),
        })
    }

    /// The file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the blocking pool, inside a savepoint of the current batch's transaction, and
    /// returns its result once that transaction has committed. `f` must not begin or end
    /// transactions itself. A panic in `f` rolls its savepoint back and fails the call; the
    /// connection carries on.
    pub(crate) async fn call<T, F>(&self, access: Access, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let run = move |conn: Option<&Connection>| -> (bool, Reply) {
            let Some(conn) = conn else {
                let reply: Reply = Box::new(move |failure| {
                    let _ = tx.send(Err(failure.map_or_else(stopped, BatchFailure::error)));
                });
                return (false, reply);
            };
            let result = catch_unwind(AssertUnwindSafe(|| f(conn))).unwrap_or_else(|_| {
                Err(
                    Error::provider("a SQLite call panicked; its changes were rolled back")
                        .with_provider(SQLITE),
                )
            });
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |failure| {
                let result = match (result, failure) {
                    (Ok(_), Some(failure)) => Err(failure.error()),
                    (result, _) => result,
                };
                let _ = tx.send(result);
            });
            (ok, reply)
        };
        let start_drainer = {
            let mut queue = lock(&self.shared.queue);
            queue.calls.push(Command {
                access,
                run: Box::new(run),
            });
            !std::mem::replace(&mut queue.draining, true)
        };
        if start_drainer {
            let mut drainer = Drainer {
                shared: Arc::clone(&self.shared),
                ran: false,
            };
            // Not awaited: the reply comes through `rx`.
            drop(tokio::task::spawn_blocking(move || {
                drainer.ran = true;
                drain(&drainer.shared);
            }));
        }
        rx.await.map_err(|_| stopped())?
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while a lock is held cannot leave these half-updated: calls run under
    // `catch_unwind`, and the queue is only pushed to and taken from.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn stopped() -> Error {
    Error::unavailable("the SQLite call was dropped before it ran (runtime shutting down)")
        .with_provider(SQLITE)
}

/// Runs batches until the queue is empty, taking everything queued meanwhile each time, so that
/// callers arriving during a commit share the next one.
fn drain(shared: &Shared) {
    let mut conn = lock(&shared.conn);
    loop {
        let batch = {
            let mut queue = lock(&shared.queue);
            if queue.calls.is_empty() {
                queue.draining = false;
                return;
            }
            let n = queue.calls.len().min(MAX_BATCH);
            queue.calls.drain(..n).collect::<Vec<_>>()
        };
        run_batch(&mut conn, batch);
    }
}

/// The drainer's task. If the runtime drops it unrun (shutting down), or it panics, the calls
/// left in the queue are failed rather than left waiting, and the next call starts a drainer.
struct Drainer {
    shared: Arc<Shared>,
    ran: bool,
}

impl Drop for Drainer {
    fn drop(&mut self) {
        if self.ran && !std::thread::panicking() {
            return;
        }
        // Not run at all: `stopped()`. Run and panicked: say so.
        let panicked = self.ran.then(|| BatchFailure {
            code: None,
            message: "the SQLite call's batch panicked; nothing of it was committed".to_owned(),
        });
        let stranded = {
            let mut queue = lock(&self.shared.queue);
            queue.draining = false;
            std::mem::take(&mut queue.calls)
        };
        for c in stranded {
            let (_, reply) = (c.run)(None);
            reply(panicked.as_ref());
        }
    }
}

async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        Error::provider(format!("SQLite call did not finish: {e}")).with_provider(SQLITE)
    })?
}

fn run_batch(state: &mut Conn, batch: Vec<Command>) {
    let Conn {
        conn,
        current,
        configured,
    } = state;
    let conn = &*conn;
    if !conn.is_autocommit() {
        // Only after a failed `ROLLBACK` or a panic mid-batch: never keep the write lock.
        let _ = conn.execute_batch("ROLLBACK");
    }
    // Reads run first, each on its own, outside the write transaction: in WAL mode they never
    // wait for another process's writer. No caller can have a read queued behind its own write,
    // since a write's caller hears back only after the commit.
    let (reads, batch): (Vec<Command>, Vec<Command>) =
        batch.into_iter().partition(|c| c.access == Access::Read);
    for c in reads {
        let (_, reply) = (c.run)(Some(conn));
        reply(None);
    }
    if batch.is_empty() {
        return;
    }
    // Only batches that need it pay for the fsync. A durable commit makes every relaxed one
    // before it durable too: it syncs the whole write-ahead log.
    let wanted = if *configured == Synchronous::Full
        && batch.iter().any(|c| c.access == Access::DurableWrite)
    {
        Synchronous::Full
    } else {
        Synchronous::Normal
    };
    let mut failure = None;
    if wanted != *current {
        match conn.pragma_update(None, "synchronous", wanted.pragma()) {
            Ok(()) => *current = wanted,
            Err(e) => failure = Some(BatchFailure::new("setting synchronous", &e)),
        }
    }
    if failure.is_none() {
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            failure = Some(BatchFailure::new("beginning a transaction", &e));
        }
    }
    if let Some(failure) = failure {
        for c in batch {
            let (_, reply) = (c.run)(None);
            reply(Some(&failure));
        }
        return;
    }
    let mut replies = Vec::with_capacity(batch.len());
    for c in batch {
        if failure.is_some() {
            replies.push((c.run)(None).1);
            continue;
        }
        if let Err(e) = conn.execute_batch("SAVEPOINT call") {
            failure = Some(BatchFailure::new("opening a savepoint", &e));
            replies.push((c.run)(None).1);
            continue;
        }
        let (ok, reply) = (c.run)(Some(conn));
        let end = if ok {
            "RELEASE call"
        } else {
            "ROLLBACK TO call; RELEASE call"
        };
        if let Err(e) = conn.execute_batch(end) {
            failure = Some(BatchFailure::new("closing a savepoint", &e));
        }
        replies.push(reply);
    }
    if failure.is_none() {
        if let Err(e) = conn.execute_batch("COMMIT") {
            failure = Some(BatchFailure::new("committing", &e));
        }
    }
    if failure.is_some() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for reply in replies {
        reply(failure.as_ref());
    }
}

fn configure(conn: &Connection, options: &SqliteOptions) -> Result<()> {
    conn.busy_timeout(options.busy_timeout).map_err(sql_error)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(sql_error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::configuration(
            "path",
            format!("SQLite refused WAL mode (journal_mode is {mode}); use a file on a local disk"),
        ));
    }
    conn.pragma_update(None, "synchronous", options.synchronous.pragma())
        .map_err(sql_error)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(sql_error)?;
    Ok(())
}

/// Applies `migrations[v..]` where `v` is the component's recorded version, in one transaction.
fn migrate(conn: &mut Connection, component: &str, migrations: &[&str]) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_error)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS integrations_schema (
            component TEXT PRIMARY KEY NOT NULL,
            version INTEGER NOT NULL
        )",
    )
    .map_err(sql_error)?;
    let current: i64 = tx
        .query_row(
            "SELECT version FROM integrations_schema WHERE component = ?1",
            [component],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_error)?
        .unwrap_or(0);
    let known = i64::try_from(migrations.len()).unwrap_or(i64::MAX);
    if current > known {
        return Err(Error::configuration(
            "path",
            format!(
                "the {component} schema in this file is version {current}, newer than this build knows ({known})"
            ),
        ));
    }
    for sql in migrations
        .iter()
        .skip(usize::try_from(current).unwrap_or(0))
    {
        tx.execute_batch(sql).map_err(sql_error)?;
    }
    tx.execute(
        "INSERT INTO integrations_schema (component, version) VALUES (?1, ?2)
         ON CONFLICT(component) DO UPDATE SET version = excluded.version",
        rusqlite::params![component, known],
    )
    .map_err(sql_error)?;
    tx.commit().map_err(sql_error)
}

/// Maps a SQLite error: lock contention and I/O trouble are retryable, constraint violations are
/// conflicts, the rest is a store error.
pub(crate) fn sql_error(e: rusqlite::Error) -> Error {
    error_for(e.sqlite_error_code(), e.to_string())
        .with_provider(SQLITE)
        .with_source(e)
}

fn error_for(code: Option<ErrorCode>, msg: String) -> Error {
    match code {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            Error::unavailable(format!("database busy: {msg}"))
        }
        Some(
            ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::CannotOpen
            | ErrorCode::OutOfMemory
            | ErrorCode::FileLockingProtocolFailed,
        ) => Error::unavailable(msg),
        Some(ErrorCode::ConstraintViolation) => Error::conflict(msg),
        _ => Error::provider(msg),
    }
}

/// A JSON column that failed to parse.
pub(crate) fn corrupt(what: &str, e: impl fmt::Display) -> Error {
    Error::provider(format!("stored {what} is unreadable: {e}")).with_provider(SQLITE)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &[&str] = &["CREATE TABLE t (a INTEGER)"];
    const V2: &[&str] = &[
        "CREATE TABLE t (a INTEGER)",
        "ALTER TABLE t ADD COLUMN b TEXT",
    ];

    #[tokio::test]
    async fn migrations_apply_once_and_refuse_newer_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let opts = SqliteOptions::new();
        let db = Db::open(&path, &opts, "test", V1).await.unwrap();
        drop(db);
        let db = Db::open(&path, &opts, "test", V2).await.unwrap();
        let cols: i64 = db
            .call(Access::Read, |c| {
                c.query_row("SELECT count(*) FROM pragma_table_info('t')", [], |r| {
                    r.get(0)
                })
                .map_err(sql_error)
            })
            .await
            .unwrap();
        assert_eq!(cols, 2);
        let mode: String = db
            .call(Access::Read, |c| {
                c.query_row("PRAGMA journal_mode", [], |r| r.get(0))
                    .map_err(sql_error)
            })
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = db
            .call(Access::Read, |c| {
                c.query_row("PRAGMA synchronous", [], |r| r.get(0))
                    .map_err(sql_error)
            })
            .await
            .unwrap();
        assert_eq!(sync, 2, "FULL");
        drop(db);
        let err = Db::open(&path, &opts, "test", V1).await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Configuration);
        assert!(err.to_string().contains("newer"), "{err}");
    }

    async fn table(path: &Path) -> Db {
        const T: &[&str] = &["CREATE TABLE t (a INTEGER PRIMARY KEY)"];
        Db::open(path, &SqliteOptions::new(), "test", T)
            .await
            .unwrap()
    }

    fn insert(a: i64) -> impl FnOnce(&Connection) -> Result<()> + Send + 'static {
        move |c| {
            c.execute("INSERT INTO t (a) VALUES (?1)", [a])
                .map_err(sql_error)?;
            Ok(())
        }
    }

    async fn rows(db: &Db) -> Vec<i64> {
        db.call(Access::Read, |c| {
            let mut stmt = c.prepare("SELECT a FROM t ORDER BY a").map_err(sql_error)?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(sql_error)?;
            rows.collect::<rusqlite::Result<Vec<i64>>>()
                .map_err(sql_error)
        })
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[allow(
        clippy::await_holding_lock,
        reason = "the test holds the connection on purpose while calls queue behind it"
    )]
    async fn calls_queued_together_share_a_commit_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = table(&dir.path().join("g.db")).await;
        // Hold the connection so that the calls below queue up and run as one batch.
        let held = lock(&db.shared.conn);
        let mut calls = Vec::new();
        for a in [1, 2, 2, 3] {
            let db = db.clone();
            calls.push(tokio::spawn(async move {
                db.call(Access::Write, insert(a)).await
            }));
        }
        let panics = {
            let db = db.clone();
            tokio::spawn(async move {
                db.call(Access::Write, |c: &Connection| -> Result<()> {
                    insert(4)(c)?;
                    panic!("a bug in a call");
                })
                .await
            })
        };
        while lock(&db.shared.queue).calls.len() < 5 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        drop(held);
        let results: Vec<_> = futures_util::future::join_all(calls).await;
        let kinds: Vec<_> = results
            .into_iter()
            .map(|r| r.unwrap().map_err(|e| e.kind()))
            .collect();
        // The calls queue in whatever order their tasks ran: either `2` may be the duplicate.
        assert_eq!((&kinds[0], &kinds[3]), (&Ok(()), &Ok(())), "{kinds:?}");
        let mut twos = [kinds[1], kinds[2]];
        twos.sort();
        assert_eq!(
            twos,
            [Ok(()), Err(crate::ErrorKind::Conflict)],
            "the duplicate fails alone"
        );
        let err = panics.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
        assert_eq!(
            rows(&db).await,
            [1, 2, 3],
            "the panicking call's insert is rolled back"
        );
        db.call(Access::Write, insert(5)).await.unwrap();
        assert_eq!(rows(&db).await, [1, 2, 3, 5], "the connection carries on");
    }

    async fn sync(db: &Db) -> Result<i64> {
        db.call(Access::Read, |c| {
            c.query_row("PRAGMA synchronous", [], |r| r.get(0))
                .map_err(sql_error)
        })
        .await
    }

    #[tokio::test]
    async fn only_durable_writes_pay_for_full_sync() {
        let dir = tempfile::tempdir().unwrap();
        let db = table(&dir.path().join("s.db")).await;
        db.call(Access::Write, insert(1)).await.unwrap();
        assert_eq!(sync(&db).await.unwrap(), 1, "NORMAL after a relaxed write");
        db.call(Access::DurableWrite, insert(2)).await.unwrap();
        assert_eq!(sync(&db).await.unwrap(), 2, "FULL after a durable write");

        let normal = Db::open(
            &dir.path().join("n.db"),
            &SqliteOptions::new().synchronous(Synchronous::Normal),
            "test",
            &["CREATE TABLE t (a INTEGER PRIMARY KEY)"],
        )
        .await
        .unwrap();
        normal.call(Access::DurableWrite, insert(1)).await.unwrap();
        assert_eq!(sync(&normal).await.unwrap(), 1, "NORMAL when configured so");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[allow(
        clippy::await_holding_lock,
        reason = "the test holds the connection on purpose while calls queue behind it"
    )]
    async fn reads_do_not_wait_for_another_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let db = Db::open(
            &path,
            &SqliteOptions::new().busy_timeout(Duration::from_millis(20)),
            "test",
            &["CREATE TABLE t (a INTEGER PRIMARY KEY)"],
        )
        .await
        .unwrap();
        db.call(Access::Write, insert(1)).await.unwrap();
        // Another process holds the write lock.
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        // A read and a write in one batch: the read must not wait for the write lock.
        let held = lock(&db.shared.conn);
        let read = tokio::spawn({
            let db = db.clone();
            async move { rows(&db).await }
        });
        let write = tokio::spawn({
            let db = db.clone();
            async move { db.call(Access::Write, insert(2)).await }
        });
        while lock(&db.shared.queue).calls.len() < 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        drop(held);
        assert_eq!(read.await.unwrap(), [1]);
        assert!(
            write.await.unwrap().unwrap_err().is_retryable(),
            "busy is retryable"
        );
        other.execute_batch("COMMIT").unwrap();
        db.call(Access::Write, insert(2)).await.unwrap();
        assert_eq!(rows(&db).await, [1, 2]);
    }

    #[test]
    fn busy_maps_to_retryable() {
        let e = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        let err = sql_error(e);
        assert!(err.is_retryable());
        assert_eq!(err.provider_name(), Some(SQLITE));
    }
}
