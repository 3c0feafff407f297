//! Runs the order service.
//!
//! With no credentials set, every provider is its crate's in-process sandbox, the database is in
//! a directory under the system's temporary directory, and an API key is generated and written
//! (mode 0600) to `<data dir>/api-key`:
//!
//! ```text
//! cargo run -p integrations-order-service
//! ```
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `ORDER_SERVICE_ADDR` | `127.0.0.1:8080` | listen address |
//! | `ORDER_SERVICE_DATA_DIR` | a fresh private `$TMPDIR/order-service-XXXXXX` (mode 0700), removed on exit | where the SQLite file (orders, outbox, metrics history; none with `DATABASE_URL`) and a generated key live; a given directory must be the service user's and not group/other-writable |
//! | `ORDER_SERVICE_API_KEYS` | generated | accepted API keys, comma-separated |
//! | `ORDER_SERVICE_MONITORING_ADDR` | unset | a second listener serving the dashboard (read-only), `/metrics`, `/integrations` and health **without a key** (bind it to an internal address) |
//! | `ORDER_SERVICE_RETENTION_DAYS` | `7` | done outbox jobs and recorded webhook events older than this are purged hourly (dead letters are kept) |
//! | `DATABASE_URL` | unset | a Postgres URL: **everything** the service keeps lives there — orders and refund intents, the outbox (jobs, dead letters, webhook records), the metrics history — shared by every instance (which wake each other with `LISTEN/NOTIFY`), and no SQLite file is made; an order change and the jobs it owes commit in one transaction there as in SQLite. The tables are created and migrated at start (versioned; a database migrated by a newer build is refused) |
//! | `ORDER_SERVICE_EMAIL_FROM` | `orders@example.com` | sender of confirmation emails |
//! | `ORDER_SERVICE_SANDBOX_RETENTION` | `1000` | requests, events and messages each sandbox keeps (at least 100; Stripe's idempotency keys and its payment intents, charges, refunds and customers: at least 10,000; the Sheets sandbox's rows in memory, the rest in its temporary file) |
//! | `ORDER_SERVICE_SANDBOX_WEBHOOK_CONCURRENCY` | `32` | Stripe webhook deliveries the Stripe sandbox makes at once (Stripe's own are as concurrent as the events; at least 1; 1 delivers in order) |
//! | `ORDER_SERVICE_SANDBOX_WEBHOOK_BACKLOG` | `10000` | Stripe webhook deliveries that may wait for a slot before the Stripe sandbox holds the calls that make events (back-pressure from a slow webhook receiver; at least 1) |
//! | `RUST_LOG` | `info` | log filter |
//!
//! Provider credentials (`STRIPE_SECRET_KEY`, `SENDGRID_API_KEY`, …) switch that provider from
//! its sandbox to the real service; see `integrations_order_service::wiring`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use integrations_core::metrics::MetricsRegistry;
use integrations_core::{Error, Result};
use integrations_order_service::auth::ApiKeys;
use integrations_order_service::server::{DEFAULT_DISPATCHER_BACKOFF, Server, ServerConfig};
use tracing_subscriber::EnvFilter;

const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// Writes the generated key to `<dir>/api-key`, readable by the owner only. `create_new` fails
/// on any existing entry, a symbolic link included (`O_CREAT | O_EXCL` never follows one), so a
/// planted link cannot redirect the key.
fn write_key_file(dir: &std::path::Path, key: &str) -> Result<PathBuf> {
    use std::io::Write as _;
    let path = dir.join("api-key");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options.open(&path).map_err(|e| {
        Error::configuration(
            "ORDER_SERVICE_DATA_DIR",
            format!(
                "{}: {e} (remove it, or set ORDER_SERVICE_API_KEYS)",
                path.display()
            ),
        )
    })?;
    writeln!(f, "{key}").map_err(|e| Error::unavailable(format!("{}: {e}", path.display())))?;
    Ok(path)
}

/// A data directory given by the user must be ours and not writable by others: the database
/// and the key file live there.
fn check_data_dir(dir: &std::path::Path) -> Result<()> {
    let bad = |why: String| Error::configuration("ORDER_SERVICE_DATA_DIR", why);
    let meta =
        std::fs::symlink_metadata(dir).map_err(|e| bad(format!("{}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(bad(format!("{} is not a directory", dir.display())));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        if meta.mode() & 0o022 != 0 {
            return Err(bad(format!(
                "{} is writable by group or others (mode {:o}): use a private directory",
                dir.display(),
                meta.mode() & 0o777
            )));
        }
        // Whoever we run as owns what we create: compare with a probe file.
        let probe = tempfile::NamedTempFile::new_in(dir)
            .map_err(|e| bad(format!("{}: {e}", dir.display())))?;
        let me = probe
            .as_file()
            .metadata()
            .map_err(|e| bad(format!("{}: {e}", dir.display())))?
            .uid();
        if meta.uid() != me {
            return Err(bad(format!(
                "{} belongs to another user (uid {})",
                dir.display(),
                meta.uid()
            )));
        }
    }
    Ok(())
}

async fn run() -> Result<()> {
    let addr: SocketAddr = std::env::var("ORDER_SERVICE_ADDR")
        .unwrap_or_else(|_| DEFAULT_ADDR.to_owned())
        .parse()
        .map_err(|e| Error::configuration("ORDER_SERVICE_ADDR", format!("{e}")))?;
    // Unset: a fresh private directory (random name, mode 0700), removed on exit.
    let (data_dir, _private) = match std::env::var_os("ORDER_SERVICE_DATA_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            std::fs::create_dir_all(&d)
                .map_err(|e| Error::configuration("ORDER_SERVICE_DATA_DIR", e.to_string()))?;
            check_data_dir(&d)?;
            (d, None)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("order-service-")
                .tempdir()
                .map_err(|e| Error::unavailable(format!("no temporary directory: {e}")))?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let api_keys = match ApiKeys::from_env()? {
        Some(keys) => keys,
        None => {
            let (keys, key) = ApiKeys::generate();
            let path = write_key_file(&data_dir, &key)?;
            tracing::info!(file = %path.display(), "generated an API key (ORDER_SERVICE_API_KEYS unset)");
            keys
        }
    };
    let config = ServerConfig {
        addr,
        data_dir: Some(data_dir),
        api_keys,
        metrics: MetricsRegistry::global().clone(),
        lookup: Box::new(|n| std::env::var(n).ok()),
        poll_interval: Duration::from_secs(1),
        dispatcher_backoff: DEFAULT_DISPATCHER_BACKOFF,
        metrics_interval: integrations_order_service::history::SAMPLE_INTERVAL,
        http_limits: Default::default(),
        monitoring_addr: match std::env::var("ORDER_SERVICE_MONITORING_ADDR") {
            Ok(a) => Some(a.parse().map_err(|e| {
                Error::configuration("ORDER_SERVICE_MONITORING_ADDR", format!("{e}"))
            })?),
            Err(_) => None,
        },
        monitoring_interval: integrations_order_service::monitoring::SNAPSHOT_INTERVAL,
        retention: integrations_order_service::retention::retention_from(
            std::env::var("ORDER_SERVICE_RETENTION_DAYS")
                .ok()
                .as_deref(),
        )?,
        purge_interval: integrations_order_service::retention::PURGE_INTERVAL,
    };
    let server = Server::start(config).await?;
    for i in &server.state().integrations().to_vec() {
        tracing::info!(integration = %i.name, role = %i.role, mode = i.mode.as_str(), "integration");
    }
    tracing::info!(url = %format!("{}/dashboard", server.base_url()), "dashboard");
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::warn!(error = %e, "cannot wait for Ctrl-C; shutting down");
    }
    tracing::info!("shutting down");
    let stats = server.shutdown().await?;
    tracing::info!(
        delivered = stats.succeeded,
        dead_lettered = stats.dead_lettered,
        "stopped"
    );
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "order service failed");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_is_never_overwritten_nor_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_key_file(dir.path(), "k1").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "k1\n");
        let e = write_key_file(dir.path(), "k2").unwrap_err();
        assert_eq!(e.field(), Some("ORDER_SERVICE_DATA_DIR"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "k1\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            let other = tempfile::tempdir().unwrap();
            let target = other.path().join("stolen");
            let planted = tempfile::tempdir().unwrap();
            std::os::unix::fs::symlink(&target, planted.path().join("api-key")).unwrap();
            assert!(write_key_file(planted.path(), "k3").is_err());
            assert!(!target.exists(), "the key followed a planted link");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_shared_data_dir_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        check_data_dir(dir.path()).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_data_dir(dir.path()).unwrap_err();
        assert!(e.to_string().contains("writable by group or others"), "{e}");
    }
}
