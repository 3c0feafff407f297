//! A run's directory: temporary, or the state directory of a run that can be killed and
//! resumed (`--state-dir`), with `run.json` saying which run it holds.
//!
//! | file | holds |
//! |---|---|
//! | [`RUN_FILE`] | the run id, when it began, its number of orders, how many times it started |
//! | `outbox.db` | the SQLite outbox: recorded events, their jobs, leases, dead letters |
//! | [`SHOP_FILE`] | the shop's database (SQLite): its orders, and the jobs its business counters counted |
//! | [`LEDGER_FILE`] | what the job handlers delivered |
//! | `notifications.jsonl` | the local notifier's topic |
//! | `metrics.prom` | the last start's metrics, in the Prometheus text format |

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use integrations_core::{Error, Result};
use serde::{Deserialize, Serialize};

use super::config::check_run_id;

/// The run's description in a state directory.
pub const RUN_FILE: &str = "run.json";
/// The shop's database (SQLite): the order store and the business counters' counted jobs.
pub const SHOP_FILE: &str = "shop.db";
/// The journals of earlier versions, which kept the orders and the counted jobs in memory: a
/// state directory holding one is refused, not resumed without them.
pub const OLD_FILES: [&str; 2] = ["orders.jsonl", "metrics.jsonl"];
/// The delivery ledger's journal.
pub const LEDGER_FILE: &str = "ledger.jsonl";

/// Which run a state directory holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    /// The run id (part of every order id).
    pub run_id: String,
    /// When the run first started, minus a few seconds (unix seconds): the oldest Stripe event
    /// or payment intent that can be the run's.
    pub since: i64,
    /// Orders in the run.
    pub orders: usize,
    /// Times the run was started, this one included.
    pub starts: u32,
}

/// A fresh run id: the time in milliseconds and a random suffix, in hex.
pub fn fresh_run_id() -> String {
    let millis = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{:x}{:04x}", millis, fastrand::u16(..))
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::unavailable(format!("{what}: {e}")).with_source(e)
}

/// Opens the run kept in `dir` (creating the directory and the run if there is none), counting
/// this start. A new run gets `run_id` (else a fresh one) and begins at `now`.
///
/// # Errors
/// [`Error::Configuration`] naming `run_id` or `orders` when the directory holds another run
/// or the same run with another number of orders, or `state_dir` when `run.json` is unreadable;
/// [`Error::InvalidInput`] for a malformed `run_id`; [`Error::Unavailable`] for I/O failures.
pub fn open_run(dir: &Path, run_id: Option<&str>, orders: usize, now: i64) -> Result<RunState> {
    if let Some(id) = run_id {
        check_run_id(id).map_err(|m| Error::invalid_input("run_id", m))?;
    }
    std::fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))?;
    // Before anything is written: the run belongs to the version that made it.
    if let Some(old) = OLD_FILES.iter().find(|f| dir.join(f).exists()) {
        return Err(Error::configuration(
            "state_dir",
            format!(
                "{} holds the state of an earlier version of order_flow ({old}); finish that \
                 run with that version, or use another directory",
                dir.display()
            ),
        ));
    }
    let path = dir.join(RUN_FILE);
    let state = match std::fs::read(&path) {
        Ok(bytes) => {
            let mut st: RunState = serde_json::from_slice(&bytes).map_err(|e| {
                Error::configuration("state_dir", format!("{}: {e}", path.display())).with_source(e)
            })?;
            if let Some(id) = run_id.filter(|id| *id != st.run_id) {
                return Err(Error::configuration(
                    "run_id",
                    format!(
                        "{} holds run {}, not {id}; use another directory for another run",
                        dir.display(),
                        st.run_id
                    ),
                ));
            }
            if st.orders != orders {
                return Err(Error::configuration(
                    "orders",
                    format!(
                        "run {} in {} has {} orders, not {orders}",
                        st.run_id,
                        dir.display(),
                        st.orders
                    ),
                ));
            }
            st.starts += 1;
            st
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => RunState {
            run_id: run_id.map_or_else(fresh_run_id, str::to_owned),
            since: now - 5,
            orders,
            starts: 1,
        },
        Err(e) => return Err(io(format!("cannot read {}", path.display()))(e)),
    };
    // Written whole then renamed over: a kill leaves the old file or the new one.
    let tmp = dir.join(format!("{RUN_FILE}.tmp"));
    let bytes = serde_json::to_vec_pretty(&state)
        .map_err(|e| Error::unavailable(format!("cannot encode {RUN_FILE}: {e}")))?;
    std::fs::write(&tmp, bytes).map_err(io(format!("cannot write {}", tmp.display())))?;
    std::fs::rename(&tmp, &path).map_err(io(format!("cannot write {}", path.display())))?;
    Ok(state)
}

/// Where a run keeps its files.
#[derive(Debug)]
pub(super) enum WorkDir {
    /// Removed at the end unless kept.
    Temp(tempfile::TempDir),
    /// A state directory, never removed.
    State(PathBuf),
}

impl WorkDir {
    /// A new temporary directory.
    pub(super) fn temp() -> Result<Self> {
        tempfile::Builder::new()
            .prefix("order_flow-")
            .tempdir()
            .map(WorkDir::Temp)
            .map_err(io("cannot create a temporary directory".to_owned()))
    }

    pub(super) fn path(&self) -> &Path {
        match self {
            WorkDir::Temp(t) => t.path(),
            WorkDir::State(p) => p,
        }
    }

    pub(super) fn is_state(&self) -> bool {
        matches!(self, WorkDir::State(_))
    }

    /// The directory if it outlives the run (a state directory, or `keep` set).
    pub(super) fn kept(self, keep: bool) -> Option<PathBuf> {
        match self {
            WorkDir::State(p) => Some(p),
            WorkDir::Temp(t) if keep => Some(t.keep()),
            WorkDir::Temp(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_created_then_resumed_and_guarded() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        let first = open_run(&dir, Some("r1"), 20, 1_000).unwrap();
        assert_eq!(
            first,
            RunState {
                run_id: "r1".into(),
                since: 995,
                orders: 20,
                starts: 1
            }
        );
        let again = open_run(&dir, None, 20, 2_000).unwrap();
        assert_eq!((again.run_id.as_str(), again.since), ("r1", 995));
        assert_eq!(again.starts, 2);
        let e = open_run(&dir, Some("r2"), 20, 3_000).unwrap_err();
        assert_eq!(e.field(), Some("run_id"));
        let e = open_run(&dir, Some("r1"), 21, 3_000).unwrap_err();
        assert_eq!(e.field(), Some("orders"));
        let e = open_run(&tmp.path().join("other"), Some("bad id"), 1, 0).unwrap_err();
        assert_eq!(e.field(), Some("run_id"));
        assert!(!dir.join(format!("{RUN_FILE}.tmp")).exists());
        std::fs::write(dir.join(RUN_FILE), "{").unwrap();
        let e = open_run(&dir, None, 20, 0).unwrap_err();
        assert_eq!(e.field(), Some("state_dir"));
    }

    #[test]
    fn fresh_ids_are_valid_and_only_temp_dirs_go_away() {
        assert!(check_run_id(&fresh_run_id()).is_ok());
        let t = WorkDir::temp().unwrap();
        let p = t.path().to_path_buf();
        assert!(!t.is_state());
        assert_eq!(t.kept(false), None);
        assert!(!p.exists());
        let s = WorkDir::State(p.clone());
        assert!(s.is_state());
        assert_eq!(s.kept(false), Some(p));
    }
}
