//! The Postgres schema: plain SQL migrations applied by [`migrate`], versioned per component.
//!
//! Plain SQL run by the store rather than `sqlx::migrate!`: the macro needs sqlx's `macros`
//! feature (a proc-macro build of the driver) and keeps its own `_sqlx_migrations` table, which
//! would collide with the service's own sqlx migrations in the same database. One row in
//! `integrations_schema` per component says how far this database is migrated.

use std::future::Future;
use std::pin::Pin;

use sqlx::Executor;
use sqlx::postgres::{PgConnection, PgPool};

use super::sql_error;
use integrations_core::{Error, Result};

/// The component name in `integrations_schema` (the SQLite stores use `outbox` and `saga`).
const COMPONENT: &str = "postgres";

/// Key of the advisory lock held while migrating, so processes starting together migrate once.
const MIGRATION_LOCK: i64 = 0x696e_7465_6772_6174; // "integrat"

/// Migrations in order; a database at version `n` has the first `n` applied. Never edit one
/// that has shipped: append.
pub(crate) const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE integrations_outbox_events (
        event_id text PRIMARY KEY,
        recorded_at bigint NOT NULL
    );
    CREATE INDEX integrations_outbox_events_recorded ON integrations_outbox_events (recorded_at);
    CREATE TABLE integrations_outbox_jobs (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        event_id text NOT NULL,
        kind text NOT NULL,
        idempotency_key text NOT NULL,
        payload jsonb NOT NULL,
        state text NOT NULL CHECK (state IN ('pending', 'leased', 'done', 'dead')),
        attempts bigint NOT NULL,
        max_attempts bigint NOT NULL,
        available_at bigint NOT NULL,
        lease_token text,
        leased_by text,
        lease_expires_at bigint,
        last_error jsonb,
        may_have_acted boolean,
        -- W3C trace context of the request that recorded the job (NULL: none).
        traceparent text,
        created_at bigint NOT NULL,
        updated_at bigint NOT NULL,
        UNIQUE (event_id, idempotency_key)
    );
    CREATE INDEX integrations_outbox_jobs_pending ON integrations_outbox_jobs (available_at, id)
        WHERE state = 'pending';
    CREATE INDEX integrations_outbox_jobs_leased ON integrations_outbox_jobs (lease_expires_at, id)
        WHERE state = 'leased';
    CREATE INDEX integrations_outbox_jobs_dead ON integrations_outbox_jobs (id)
        WHERE state = 'dead';
    CREATE INDEX integrations_outbox_jobs_done ON integrations_outbox_jobs (updated_at)
        WHERE state = 'done';

    CREATE TABLE integrations_dedup (
        key text PRIMARY KEY,
        expires_at bigint NOT NULL
    );
    CREATE INDEX integrations_dedup_expiry ON integrations_dedup (expires_at);

    CREATE TABLE integrations_saga_instances (
        saga_id text PRIMARY KEY,
        definition text NOT NULL,
        status text NOT NULL,
        version bigint NOT NULL,
        state jsonb NOT NULL,
        created_at bigint NOT NULL,
        updated_at bigint NOT NULL
    );
    CREATE INDEX integrations_saga_instances_status
        ON integrations_saga_instances (definition, status, updated_at, saga_id);
",
    "
    -- Claims by kind (`claim_kinds`): each kind's due jobs in order, without reading other kinds.
    CREATE INDEX integrations_outbox_jobs_pending_kind
        ON integrations_outbox_jobs (kind, available_at, id) WHERE state = 'pending';
    CREATE INDEX integrations_outbox_jobs_leased_kind
        ON integrations_outbox_jobs (kind, lease_expires_at, id) WHERE state = 'leased';
",
    "
    -- Vacuum the jobs table after 10,000 dead row versions, not after a fifth of the table:
    -- with a retention of done jobs the table is large, while each claim steps over the index
    -- entries of every job claimed or completed since the last vacuum (`docs/scaling.md`).
    ALTER TABLE integrations_outbox_jobs SET (
        autovacuum_vacuum_scale_factor = 0,
        autovacuum_vacuum_threshold = 10000
    );
",
];

/// The schema version this build knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database behind `pool` to [`SCHEMA_VERSION`]: creates the outbox, dedup and saga
/// tables (all prefixed `integrations_`) on first use, applies later migrations once, under an
/// advisory lock so processes starting together do not race. Every `connect` and `from_pool`
/// of the Postgres stores calls it; call it yourself to migrate at deploy time.
///
/// # Errors
/// [`Error::Configuration`] naming `schema` when the database was migrated by a newer build
/// (this one would not know its columns); [`Error::Unavailable`] when the server cannot be
/// reached; other store failures.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    let mut tx = pool.begin().await.map_err(sql_error)?;
    // Boxed as `Send` here, where the connection's lifetime is concrete: left to inference, the
    // caller's `tokio::spawn` trips rustc's "Executor is not general enough" (sqlx#1636).
    let run: Pin<Box<dyn Future<Output = Result<i64>> + Send + '_>> = Box::pin(migrate_in(&mut tx));
    let from = run.await?;
    if from == SCHEMA_VERSION {
        // Nothing changed: end the transaction without a commit record.
        return tx.rollback().await.map_err(sql_error);
    }
    tx.commit().await.map_err(sql_error)?;
    tracing::info!(
        from,
        to = SCHEMA_VERSION,
        "migrated the integrations Postgres schema"
    );
    Ok(())
}

/// The migration inside `conn`'s open transaction; returns the version found.
async fn migrate_in(conn: &mut PgConnection) -> Result<i64> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(sql_error)?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS integrations_schema (
            component text PRIMARY KEY,
            version bigint NOT NULL
        )",
    )
    .execute(&mut *conn)
    .await
    .map_err(sql_error)?;
    let current: Option<i64> =
        sqlx::query_scalar("SELECT version FROM integrations_schema WHERE component = $1")
            .bind(COMPONENT)
            .fetch_optional(&mut *conn)
            .await
            .map_err(sql_error)?;
    let current = current.unwrap_or(0);
    check_version(current)?;
    if current == SCHEMA_VERSION {
        return Ok(current);
    }
    for sql in &MIGRATIONS[usize::try_from(current).unwrap_or(0)..] {
        // A plain `&str` runs as a simple query: several statements in one round trip.
        Executor::execute(&mut *conn, *sql)
            .await
            .map_err(|e| sql_error(e).with_operation("migrate"))?;
    }
    sqlx::query(
        "INSERT INTO integrations_schema (component, version) VALUES ($1, $2)
         ON CONFLICT (component) DO UPDATE SET version = excluded.version",
    )
    .bind(COMPONENT)
    .bind(SCHEMA_VERSION)
    .execute(&mut *conn)
    .await
    .map_err(sql_error)?;
    Ok(current)
}

fn check_version(current: i64) -> Result<()> {
    if !(0..=SCHEMA_VERSION).contains(&current) {
        return Err(Error::configuration(
            "schema",
            format!(
                "the integrations schema in this database is version {current}, newer than this \
                 build knows ({SCHEMA_VERSION}): upgrade the service before running it here"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_schemas_are_refused_by_name() {
        assert!(check_version(0).is_ok());
        assert!(check_version(SCHEMA_VERSION).is_ok());
        let e = check_version(SCHEMA_VERSION + 1).unwrap_err();
        assert_eq!(e.kind(), integrations_core::ErrorKind::Configuration);
        assert!(e.to_string().contains("newer"), "{e}");
    }
}
