//! [`TestDatabase`]: a fresh Postgres database per test (features `postgres` and `testing`).

use std::fmt;
use std::path::{Path, PathBuf};

use super::{PostgresOptions, sql_error};
use integrations_core::Result;

/// Variable naming the server the tests use (`.ci/postgres.sh start` writes it to
/// `target/postgres.env`, which `scripts/test` exports and [`TestDatabase::create`] also reads).
pub const TEST_URL_VAR: &str = "INTEGRATIONS_TEST_POSTGRES_URL";

/// A database created for one test on the test server, so tests run in parallel without
/// sharing tables. [`TestDatabase::drop_database`] removes it (the throwaway cluster of
/// `.ci/postgres.sh` is deleted whole anyway).
pub struct TestDatabase {
    admin: PostgresOptions,
    name: String,
    options: PostgresOptions,
}

impl fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestDatabase")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn url_from_file() -> Option<String> {
    let here = std::env::current_dir().ok();
    let candidates = here
        .iter()
        .flat_map(|d| d.ancestors())
        .chain(Path::new(env!("CARGO_MANIFEST_DIR")).ancestors())
        .map(|d| d.join("target/postgres.env"))
        .collect::<Vec<PathBuf>>();
    candidates.iter().find_map(|p| {
        std::fs::read_to_string(p).ok()?.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == TEST_URL_VAR).then(|| v.trim().to_owned())
        })
    })
}

/// The test server's URL, or `None` (outside CI) when none is configured.
///
/// # Panics
/// Under `CI=true` when no server is configured: tests that need Postgres fail there, never
/// skip.
pub fn test_url() -> Option<String> {
    let url = std::env::var(TEST_URL_VAR)
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(url_from_file);
    if url.is_none() {
        unavailable(&format!(
            "{TEST_URL_VAR} is unset and there is no target/postgres.env"
        ));
    }
    url
}

fn unavailable(why: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if ci {
        panic!("Postgres required under CI=true but {why}: run `.ci/postgres.sh start` first");
    }
    eprintln!(
        "\n!!!!! SKIPPING Postgres test: {why}. Run `.ci/postgres.sh start` to run it. !!!!!\n"
    );
}

impl TestDatabase {
    /// Creates an empty database named after `test` plus a random suffix on the test server.
    /// `None` (with a loud message) outside CI when no server is configured.
    ///
    /// # Panics
    /// Under `CI=true` when no server is configured or it cannot be reached; when the database
    /// cannot be created.
    pub async fn create(test: &str) -> Option<TestDatabase> {
        let url = test_url()?;
        let admin = PostgresOptions::new(&url)
            .expect("test Postgres URL")
            .max_connections(1);
        let pool = match admin.connect().await {
            Ok(p) => p,
            Err(e) => {
                unavailable(&format!("the test server is unreachable: {e}"));
                return None;
            }
        };
        let clean: String = test
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let name = format!("t_{clean}_{:08x}", fastrand::u32(..));
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&pool)
            .await
            .map_err(sql_error)
            .expect("create the test database");
        pool.close().await;
        let options = admin.clone().with_database(&name).max_connections(20);
        Some(TestDatabase {
            admin,
            name,
            options,
        })
    }

    /// Options for this database.
    pub fn options(&self) -> &PostgresOptions {
        &self.options
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database, disconnecting anyone still on it.
    ///
    /// # Errors
    /// Store failures.
    pub async fn drop_database(self) -> Result<()> {
        let pool = self.admin.connect().await?;
        sqlx::raw_sql(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ))
        .execute(&pool)
        .await
        .map_err(sql_error)?;
        pool.close().await;
        Ok(())
    }
}
