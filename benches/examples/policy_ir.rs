//! Runs one entry of the `policy` bench `N` times with nothing else around it, for instruction
//! counts under `valgrind --tool=callgrind` (or `cachegrind`), which are free of the ±15 % noise
//! criterion sees on a shared machine. Not shipped (the benches crate is `publish = false`).
//!
//! ```text
//! cargo build --release -p integrations-benches --example policy_ir
//! valgrind --tool=callgrind --toggle-collect='*policy_ir::run' \
//!     target/release/examples/policy_ir composed_policy 20000
//! ```
//!
//! `bare_tokio_timeout_routine` and `composed_policy_routine` make each call in a fresh `async`
//! block returned by a closure, as criterion's `iter` does: the block is moved before it is
//! awaited, so a larger future costs more there than in the plain loop of the other entries.
//!
//! With `POLICY_IR_WALL=1` it prints the wall time per call of `run` alone (`scripts/policy-wall`
//! compares builds with it): the process's own time would count `quanta`'s calibration.
//!
//! Only `run` is counted, after a warm-up. Instructions per call are the difference between two
//! runs (say 20 000 and 10 000 calls) over the difference in calls, which cancels what one
//! `block_on` costs. `scripts/policy-ir` does that for every entry and prints each next to the
//! bare timeout.

#[path = "../benches/policy/entries.rs"]
mod entries;

use std::hint::black_box;

use backon::{ExponentialBuilder, Retryable};
use entries::{
    TIMEOUT, composed, drive, runtime, timeout_only, tower_stack, trivial, trivial_service,
};
use integrations_core::metrics::MetricsRegistry;
use integrations_core::{Error, Result};

/// The entries, as named in the bench's `policy_call` group.
const ENTRIES: &[&str] = &[
    "bare_call",
    "bare_tokio_timeout",
    "composed_policy",
    "composed_policy_routine",
    "bare_tokio_timeout_routine",
    "policy_timeout_only",
    "policy_layer_service_fn",
    "tower_stack_service_fn",
    "bare_service_fn",
    "backon_retry",
    "backon_retry_tokio_timeout",
];

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(entry), Some(n)) = (args.next(), args.next()) else {
        eprintln!(
            "usage: policy_ir <entry> <calls> (or `policy_ir sizes 0`); entries: {}",
            ENTRIES.join(", ")
        );
        std::process::exit(2);
    };
    let Ok(n) = n.parse::<u64>() else {
        eprintln!("calls must be a whole number, not {n:?}");
        std::process::exit(2);
    };
    let rt = runtime();
    let registry = MetricsRegistry::new();
    let policy = composed(&registry);
    let bare_policy = timeout_only(&registry);
    if entry == "sizes" {
        let _in_runtime = rt.enter();
        sizes(&policy);
        return;
    }
    // Warm-up outside the measured function: `quanta` calibrates its clock on first use (for a
    // time, not a number of steps, so it would add noise), and the metrics make their
    // operation's slot on the first call.
    calls(&rt, &policy, &bare_policy, &entry, 100);
    let started = std::time::Instant::now();
    run(&rt, &policy, &bare_policy, &entry, n);
    // The wall time of the measured calls alone, for `scripts/policy-wall`: timing the whole
    // process would count `quanta`'s calibration, whose length varies from run to run.
    if std::env::var_os("POLICY_IR_WALL").is_some() {
        let ns = started.elapsed().as_nanos() as f64 / n.max(1) as f64;
        eprintln!("wall {entry} {ns:.1}");
    }
}

/// Bytes of the composed policy's call future and of a bare timeout's, around the same trivial
/// call (before `Policy::call` was always inlined, each `.await` copied the call's future twice,
/// in `perf`). `policy_ir sizes 0`.
fn sizes(policy: &integrations_core::Policy) {
    let call = policy.call("op", |_| trivial(1));
    eprintln!(
        "composed_policy future: {} bytes",
        std::mem::size_of_val(&call)
    );
    let timeout = tokio::time::timeout(TIMEOUT, trivial(1));
    eprintln!(
        "bare_tokio_timeout future: {} bytes",
        std::mem::size_of_val(&timeout)
    );
}

/// The measured calls: what `--toggle-collect='*policy_ir::run'` counts.
#[inline(never)]
fn run(
    rt: &tokio::runtime::Runtime,
    policy: &integrations_core::Policy,
    bare_policy: &integrations_core::Policy,
    entry: &str,
    n: u64,
) {
    calls(rt, policy, bare_policy, entry, n);
}

/// `n` calls of `entry`.
fn calls(
    rt: &tokio::runtime::Runtime,
    policy: &integrations_core::Policy,
    bare_policy: &integrations_core::Policy,
    entry: &str,
    n: u64,
) {
    rt.block_on(async {
        match entry {
            "bare_call" => {
                for _ in 0..n {
                    black_box(trivial(1).await.expect("ok"));
                }
            }
            "bare_tokio_timeout" => {
                for _ in 0..n {
                    black_box(
                        tokio::time::timeout(TIMEOUT, trivial(1))
                            .await
                            .expect("in time"),
                    )
                    .expect("ok");
                }
            }
            "composed_policy_routine" => {
                let routine = || async { policy.call("op", |_| trivial(1)).await };
                for _ in 0..n {
                    black_box(routine().await.expect("ok"));
                }
            }
            "bare_tokio_timeout_routine" => {
                let routine = || async { tokio::time::timeout(TIMEOUT, trivial(1)).await };
                for _ in 0..n {
                    black_box(routine().await.expect("in time")).expect("ok");
                }
            }
            "composed_policy" => {
                for _ in 0..n {
                    black_box(policy.call("op", |_| trivial(1)).await.expect("ok"));
                }
            }
            "policy_timeout_only" => {
                for _ in 0..n {
                    black_box(bare_policy.call("op", |_| trivial(1)).await.expect("ok"));
                }
            }
            "policy_layer_service_fn" => {
                let svc = tower::ServiceBuilder::new()
                    .layer(policy.layer("op"))
                    .service(trivial_service());
                drive(svc, n).await;
            }
            "tower_stack_service_fn" => {
                drive(tower_stack(), n).await;
            }
            "bare_service_fn" => {
                drive(trivial_service(), n).await;
            }
            "backon_retry" => {
                let backoff = ExponentialBuilder::default().with_max_times(3);
                for _ in 0..n {
                    black_box((|| trivial(1)).retry(backoff).await.expect("ok"));
                }
            }
            "backon_retry_tokio_timeout" => {
                let backoff = ExponentialBuilder::default().with_max_times(3);
                for _ in 0..n {
                    let r: Result<u64> = (|| async {
                        tokio::time::timeout(TIMEOUT, trivial(1))
                            .await
                            .map_err(|_| Error::timeout("attempt timed out"))?
                    })
                    .retry(backoff)
                    .await;
                    black_box(r.expect("ok"));
                }
            }
            other => {
                eprintln!("unknown entry {other:?}; entries: {}", ENTRIES.join(", "));
                std::process::exit(2);
            }
        }
    });
}
