//! The Postgres stores (feature `postgres`): [`PostgresOutbox`], [`PostgresDedupStore`] and
//! [`PostgresSagaLog`](crate::saga::PostgresSagaLog), all in the service's own database.
//!
//! Built on `sqlx` (no macros, rustls), the driver most Rust services already hold a pool of, so
//! the outbox can write **inside the caller's transaction**
//! ([`PostgresOutbox::record_event_in`]): the order row and the jobs it owes commit or roll back
//! together. Where many such transactions commit at once (a webhook endpoint under load),
//! [`PostgresOutbox::record_event_in_unannounced`] with [`PostgresOutbox::announce`] after the
//! commit lets them share WAL flushes, which a `NOTIFY` inside each would prevent. The schema is
//! plain SQL applied by [`migrate`] (run by every `connect`/`from_pool`),
//! versioned in `integrations_schema` so a build refuses a database migrated by a newer one.
//! Timestamps are kept as milliseconds since 1970 (`bigint`) read from the store's injectable
//! [`Clock`](integrations_core::Clock), like the SQLite store, so leases and retries are testable.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use integrations_core::{Error, Result};

mod dedup;
mod listen;
mod outbox;
mod record;
mod rows;
mod schema;
#[cfg(feature = "testing")]
pub mod testing;

pub use dedup::PostgresDedupStore;
pub use listen::WakeOnNotify;
pub use outbox::PostgresOutbox;
pub(crate) use rows::to_millis;
pub use schema::{SCHEMA_VERSION, migrate};
/// The `sqlx` these stores are built on, for transactions passed to
/// [`PostgresOutbox::record_event_in`] without a version mismatch.
pub use sqlx;

/// Provider name carried by the errors of the Postgres stores.
pub const POSTGRES: &str = "postgres";

/// The channel [`PostgresOutbox`] notifies when it records jobs (delivered on commit).
pub const NOTIFY_CHANNEL: &str = "integrations_outbox";

/// How to reach Postgres: the connection URL and pool settings.
///
/// The URL carries the password, so `Debug` prints only user, host, port and database.
///
/// ```
/// use integrations_outbox::PostgresOptions;
///
/// let options = PostgresOptions::new("postgres://app:s3cret@db.internal:5432/shop")?
///     .max_connections(20);
/// let shown = format!("{options:?}");
/// assert!(shown.contains("db.internal") && !shown.contains("s3cret"));
/// # Ok::<(), integrations_core::Error>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct PostgresOptions {
    connect: PgConnectOptions,
    /// Largest number of pooled connections (default 10).
    pub max_connections: u32,
    /// How long a call waits for a free connection before failing with
    /// [`Error::Unavailable`] (default 5 s).
    pub acquire_timeout: Duration,
    /// Whether the pool pings a connection before each call hands it out (default `true`).
    pub test_before_acquire: bool,
}

impl PostgresOptions {
    /// Options for the database at `url` (`postgres://user:password@host:port/database`,
    /// with libpq parameters such as `sslmode=verify-full`).
    ///
    /// # Errors
    /// [`Error::Configuration`] naming `DATABASE_URL` when the URL does not parse (the message
    /// does not repeat the URL, which may hold a password).
    pub fn new(url: &str) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url).map_err(|e| {
            Error::configuration(
                "DATABASE_URL",
                format!("not a Postgres connection URL: {}", redact_url_error(&e)),
            )
        })?;
        Ok(PostgresOptions {
            connect,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            test_before_acquire: true,
        })
    }

    /// Options from the `DATABASE_URL` environment variable.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming `DATABASE_URL` when it is unset or does not parse.
    pub fn from_env() -> Result<Self> {
        let url = std::env::var("DATABASE_URL")
            .map_err(|_| Error::configuration("DATABASE_URL", "not set"))?;
        PostgresOptions::new(&url)
    }

    /// Sets the largest number of pooled connections.
    #[must_use]
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets how long a call waits for a free connection.
    #[must_use]
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Sets whether the pool pings each connection before handing it out. The ping is a round
    /// trip before every call (a call of the outbox is otherwise one round trip); without it a
    /// connection the server dropped (a restart, an idle timeout) fails the one call that finds
    /// it, with a retryable [`Error::Unavailable`], and is replaced. Turn it off where calls
    /// are retried anyway (the dispatcher's claims and marks are; a webhook's record is retried
    /// by its sender).
    #[must_use]
    pub fn test_before_acquire(mut self, on: bool) -> Self {
        self.test_before_acquire = on;
        self
    }

    /// The database name, if the URL gives one.
    pub fn database(&self) -> Option<&str> {
        self.connect.get_database()
    }

    /// The same server and credentials, another database (tests create one per test).
    #[must_use]
    pub fn with_database(mut self, database: &str) -> Self {
        self.connect = self.connect.database(database);
        self
    }

    /// Opens a pool with these options (connections are made lazily but one is tried now).
    ///
    /// # Errors
    /// [`Error::Configuration`] for `max_connections` of 0; [`Error::Unavailable`] when the
    /// server cannot be reached or refuses the login.
    pub async fn connect(&self) -> Result<PgPool> {
        if self.max_connections == 0 {
            return Err(Error::configuration(
                "max_connections",
                "must be at least 1",
            ));
        }
        PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .test_before_acquire(self.test_before_acquire)
            .connect_with(self.connect.clone())
            .await
            .map_err(|e| sql_error(e).with_operation(format!("connect to {}", self.describe())))
    }

    /// `user@host:port/database`, without the password.
    pub fn describe(&self) -> String {
        describe(&self.connect)
    }
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("target", &self.describe())
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("test_before_acquire", &self.test_before_acquire)
            .finish_non_exhaustive()
    }
}

/// `user@host:port/database` of `connect`, never the password.
pub(crate) fn describe(connect: &PgConnectOptions) -> String {
    format!(
        "{}@{}:{}/{}",
        connect.get_username(),
        connect.get_host(),
        connect.get_port(),
        connect.get_database().unwrap_or("")
    )
}

/// The pool's target, for `Debug` of the stores.
pub(crate) fn describe_pool(pool: &PgPool) -> String {
    describe(&pool.connect_options())
}

/// sqlx's URL parse errors may quote the URL; keep only what names the problem.
fn redact_url_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Configuration(inner) => {
            let s = inner.to_string();
            if s.contains("://") || s.contains('@') {
                "malformed URL".to_owned()
            } else {
                s
            }
        }
        _ => "malformed URL".to_owned(),
    }
}

/// Maps a sqlx error: lost connections, pool exhaustion, lock and serialisation failures and
/// server shutdown are retryable ([`Error::Unavailable`]), unique violations are conflicts,
/// data exceptions are the caller's input, the rest is a store error.
pub(crate) fn sql_error(e: sqlx::Error) -> Error {
    let err = match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let msg = db.message().to_owned();
            let class = code.get(..2).unwrap_or("");
            let mapped = match (class, code.as_str()) {
                // Connection exceptions, insufficient resources, operator intervention
                // (shutdown, cancel), serialisation failure and deadlock, lock not available.
                ("08" | "53" | "57", _) | (_, "40001" | "40P01" | "55P03") => {
                    Error::unavailable(msg)
                }
                ("23", _) => Error::conflict(msg),
                ("22", _) => Error::invalid_input("value", msg),
                ("28", _) => Error::unauthenticated(msg),
                _ => Error::provider(msg),
            };
            mapped.with_code(code)
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Error::unavailable(e.to_string()),
        sqlx::Error::Configuration(_) => Error::configuration("DATABASE_URL", redact_url_error(&e)),
        _ => Error::provider(e.to_string()),
    };
    err.with_provider(POSTGRES).with_source(e)
}

/// A stored value that failed to parse.
pub(crate) fn corrupt(what: &str, e: impl fmt::Display) -> Error {
    Error::provider(format!("stored {what} is unreadable: {e}")).with_provider(POSTGRES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_never_show_the_password() {
        let o =
            PostgresOptions::new("postgres://app:hunter2-pw@db.example:6543/shop?sslmode=require")
                .unwrap();
        let shown = format!("{o:?}");
        assert!(!shown.contains("hunter2-pw"), "{shown}");
        assert!(shown.contains("app@db.example:6543/shop"), "{shown}");
        assert_eq!(o.database(), Some("shop"));
        let other = o.with_database("shop_test");
        assert!(!format!("{other:?}").contains("hunter2-pw"));
        assert_eq!(other.describe(), "app@db.example:6543/shop_test");
    }

    #[test]
    fn a_bad_url_names_the_setting_not_the_secret() {
        let e =
            PostgresOptions::new("postgres://app:hunter2-pw@db.example:notaport/shop").unwrap_err();
        assert_eq!(e.kind(), integrations_core::ErrorKind::Configuration);
        assert!(!e.to_string().contains("hunter2-pw"), "{e}");
        assert!(!format!("{e:?}").contains("hunter2-pw"), "{e:?}");
    }

    #[test]
    fn pool_errors_are_retryable() {
        let e = sql_error(sqlx::Error::PoolTimedOut);
        assert!(e.is_retryable(), "{e}");
        assert_eq!(e.provider_name(), Some(POSTGRES));
        let e = sql_error(sqlx::Error::RowNotFound);
        assert!(!e.is_retryable(), "{e}");
    }
}
