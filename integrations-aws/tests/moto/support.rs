//! Finding the moto emulator started by `.ci/moto.sh start`.
//!
//! Settings come from `MOTO_ENDPOINT`, `MOTO_ACCESS_KEY_ID`, `MOTO_SECRET_ACCESS_KEY` (and
//! optionally `MOTO_REGION`), else from `target/moto-credentials.env` written by the harness.
//! Under `CI=true` a missing or unreachable emulator fails the test; elsewhere the test is skipped
//! with a loud message.

use std::collections::HashMap;
use std::path::PathBuf;

use integrations_aws::{AwsBuilder, AwsConfig, Credentials};

#[derive(Debug, Clone)]
pub(crate) struct Moto {
    pub(crate) endpoint: String,
    pub(crate) region: String,
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: String,
}

impl Moto {
    pub(crate) fn config(&self) -> AwsConfig {
        self.config_with(Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
        ))
    }

    pub(crate) fn config_with(&self, creds: Credentials) -> AwsConfig {
        AwsBuilder::new()
            .with_region(&self.region)
            .with_credentials(creds)
            .with_base_url(&self.endpoint)
            .build()
            .expect("moto config")
    }
}

fn from_file() -> HashMap<String, String> {
    let path = std::env::var("MOTO_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            // `.ci/moto.sh` writes it under the workspace's `target/`: the nearest ancestor of
            // the crate being tested that has one (this file also serves `examples/shop`).
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            dir.ancestors()
                .map(|d| d.join("target/moto-credentials.env"))
                .find(|p| p.exists())
                .unwrap_or_else(|| dir.join("../target/moto-credentials.env"))
        });
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn unavailable(why: &str) -> Option<Moto> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if ci {
        panic!("moto emulator required under CI=true but {why}: run `.ci/moto.sh start` first");
    }
    eprintln!("\n!!!!! SKIPPING moto test: {why}. Run `.ci/moto.sh start` to run it. !!!!!\n");
    None
}

/// The running emulator, or `None` (outside CI) when there is none.
pub(crate) fn moto() -> Option<Moto> {
    let file = from_file();
    let get = |k: &str| {
        std::env::var(k)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| file.get(k).cloned())
    };
    let (Some(endpoint), Some(access_key_id), Some(secret_access_key)) = (
        get("MOTO_ENDPOINT"),
        get("MOTO_ACCESS_KEY_ID"),
        get("MOTO_SECRET_ACCESS_KEY"),
    ) else {
        return unavailable("no MOTO_* settings and no target/moto-credentials.env");
    };
    let addr = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(&addr)
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| {
            std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(2)).is_ok()
        });
    if !reachable {
        return unavailable(&format!("nothing answers at {endpoint}"));
    }
    Some(Moto {
        endpoint,
        region: get("MOTO_REGION").unwrap_or_else(|| "us-east-1".to_owned()),
        access_key_id,
        secret_access_key,
    })
}

/// A name unique to this run (`<prefix>-<millis>-<hex>`).
pub(crate) fn unique(prefix: &str) -> String {
    let run = integrations_testkit::unique_run_id();
    format!("{prefix}-{}", run.trim_start_matches("run-"))
}

macro_rules! moto_or_skip {
    () => {
        match crate::support::moto() {
            Some(m) => m,
            None => return,
        }
    };
}
pub(crate) use moto_or_skip;
