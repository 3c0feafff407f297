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
//! | `ORDER_SERVICE_DATA_DIR` | `$TMPDIR/order-service-<pid>` | where the SQLite file (and a generated key) lives |
//! | `ORDER_SERVICE_API_KEYS` | generated | accepted API keys, comma-separated |
//! | `ORDER_SERVICE_EMAIL_FROM` | `orders@example.com` | sender of confirmation emails |
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

fn write_key_file(dir: &std::path::Path, key: &str) -> Result<PathBuf> {
    use std::io::Write as _;
    let path = dir.join("api-key");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options
        .open(&path)
        .map_err(|e| Error::unavailable(format!("{}: {e}", path.display())))?;
    writeln!(f, "{key}").map_err(|e| Error::unavailable(format!("{}: {e}", path.display())))?;
    Ok(path)
}

async fn run() -> Result<()> {
    let addr: SocketAddr = std::env::var("ORDER_SERVICE_ADDR")
        .unwrap_or_else(|_| DEFAULT_ADDR.to_owned())
        .parse()
        .map_err(|e| Error::configuration("ORDER_SERVICE_ADDR", format!("{e}")))?;
    let data_dir = match std::env::var_os("ORDER_SERVICE_DATA_DIR") {
        Some(d) => PathBuf::from(d),
        None => std::env::temp_dir().join(format!("order-service-{}", std::process::id())),
    };
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| Error::configuration("ORDER_SERVICE_DATA_DIR", e.to_string()))?;
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
    };
    let server = Server::start(config).await?;
    for i in &server.state().integrations().to_vec() {
        tracing::info!(integration = %i.name, role = %i.role, mode = i.mode.as_str(), "integration");
    }
    tracing::info!(url = %server.base_url(), "monitoring page");
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
