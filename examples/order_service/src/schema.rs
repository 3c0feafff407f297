//! The versions of the service's own tables, in both backends: one row per component in
//! `order_service_schema`, so a build refuses a database a newer build has migrated (it would not
//! know its columns), as the outbox's `migrate()` does for its tables.
//!
//! Plain SQL run by the store, as in the outbox, rather than `sqlx::migrate!` (a proc-macro build
//! of the driver, and a `_sqlx_migrations` table that would collide with a user's own).

use std::pin::Pin;

use integrations_core::{Error, Result};
use integrations_outbox::postgres::sqlx::{self, Executor, PgConnection, PgPool};
use integrations_outbox::rusqlite::{self, Connection, OptionalExtension, TransactionBehavior};

/// The component the order tables are versioned under.
pub(crate) const ORDERS: &str = "orders";
/// The component the metrics history tables are versioned under.
pub(crate) const HISTORY: &str = "metrics_history";

/// The version table (SQLite).
const SCHEMA_TABLE_SQLITE: &str = "CREATE TABLE IF NOT EXISTS order_service_schema (
    component TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL
)";

/// The version table (Postgres).
const SCHEMA_TABLE_PG: &str = "CREATE TABLE IF NOT EXISTS order_service_schema (
    component text PRIMARY KEY,
    version bigint NOT NULL
)";

/// The version `migrations` bring a database to.
pub(crate) fn version(migrations: &[&str]) -> i64 {
    i64::try_from(migrations.len()).unwrap_or(i64::MAX)
}

/// The migrations still to apply to a database at `current`: `None` when it is up to date.
///
/// # Errors
/// [`Error::Configuration`] naming `schema` when `current` is newer than `migrations` know.
pub(crate) fn pending<'a>(
    current: i64,
    migrations: &'a [&'a str],
) -> Result<Option<&'a [&'a str]>> {
    let known = version(migrations);
    if !(0..=known).contains(&current) {
        return Err(Error::configuration(
            "schema",
            format!(
                "the order service's tables in this database are at version {current}, newer \
                 than this build knows ({known}): upgrade the service before running it here"
            ),
        ));
    }
    if current == known {
        return Ok(None);
    }
    Ok(migrations.get(usize::try_from(current).unwrap_or(0)..))
}

/// Brings `component`'s tables in the SQLite file of `conn` to the version of `migrations`, in
/// one `BEGIN IMMEDIATE` transaction (connections opening the file together migrate once).
///
/// # Errors
/// As [`pending`]; store failures, mapped by `map`.
pub(crate) fn migrate_sqlite(
    conn: &mut Connection,
    component: &str,
    migrations: &[&str],
    map: fn(rusqlite::Error) -> Error,
) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map)?;
    tx.execute_batch(SCHEMA_TABLE_SQLITE).map_err(map)?;
    let current: Option<i64> = tx
        .query_row(
            "SELECT version FROM order_service_schema WHERE component = ?1",
            [component],
            |r| r.get(0),
        )
        .optional()
        .map_err(map)?;
    let Some(todo) = pending(current.unwrap_or(0), migrations)? else {
        return Ok(());
    };
    for sql in todo {
        tx.execute_batch(sql).map_err(map)?;
    }
    tx.execute(
        "INSERT INTO order_service_schema (component, version) VALUES (?1, ?2)
         ON CONFLICT (component) DO UPDATE SET version = excluded.version",
        rusqlite::params![component, version(migrations)],
    )
    .map_err(map)?;
    tx.commit().map_err(map)
}

/// Brings `component`'s tables in the Postgres database behind `pool` to the version of
/// `migrations`, in one transaction under the advisory lock `lock` (instances starting together
/// migrate once).
///
/// # Errors
/// As [`pending`]; store failures, mapped by `map`.
pub(crate) async fn migrate_pg(
    pool: &PgPool,
    component: &'static str,
    lock: i64,
    migrations: &'static [&'static str],
    map: fn(sqlx::Error) -> Error,
) -> Result<()> {
    let mut tx = pool.begin().await.map_err(map)?;
    // Boxed as `Send` where the connection's lifetime is concrete: left to inference, a caller's
    // `tokio::spawn` trips "Executor is not general enough" (sqlx#1636), as in the outbox.
    let run: Pin<Box<dyn Future<Output = Result<bool>> + Send + '_>> =
        Box::pin(migrate_pg_in(&mut tx, component, lock, migrations, map));
    if run.await? {
        tx.commit().await.map_err(map)?;
    }
    Ok(())
}

async fn migrate_pg_in(
    conn: &mut PgConnection,
    component: &'static str,
    lock: i64,
    migrations: &'static [&'static str],
    map: fn(sqlx::Error) -> Error,
) -> Result<bool> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock)
        .execute(&mut *conn)
        .await
        .map_err(map)?;
    Executor::execute(&mut *conn, SCHEMA_TABLE_PG)
        .await
        .map_err(map)?;
    let current: Option<i64> =
        sqlx::query_scalar("SELECT version FROM order_service_schema WHERE component = $1")
            .bind(component)
            .fetch_optional(&mut *conn)
            .await
            .map_err(map)?;
    let Some(todo) = pending(current.unwrap_or(0), migrations)? else {
        return Ok(false);
    };
    for sql in todo {
        // A plain `&str` runs as a simple query: several statements in one round trip.
        Executor::execute(&mut *conn, *sql)
            .await
            .map_err(|e| map(e).with_operation(format!("migrate {component}")))?;
    }
    sqlx::query(
        "INSERT INTO order_service_schema (component, version) VALUES ($1, $2)
         ON CONFLICT (component) DO UPDATE SET version = excluded.version",
    )
    .bind(component)
    .bind(version(migrations))
    .execute(&mut *conn)
    .await
    .map_err(map)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_schemas_are_refused_and_older_ones_get_the_rest() {
        let m = ["a", "b", "c"];
        assert_eq!(pending(0, &m).unwrap(), Some(&m[..]));
        assert_eq!(pending(2, &m).unwrap(), Some(&m[2..]));
        assert_eq!(pending(3, &m).unwrap(), None);
        let e = pending(4, &m).unwrap_err();
        assert_eq!(e.field(), Some("schema"));
        assert!(e.to_string().contains("newer"), "{e}");
        assert!(pending(-1, &m).is_err());
    }
}
