//! Cost of the resilience policy, each against a baseline or a peer in the same run.
//!
//! 1. `policy_call`: the composed policy (generous rate limiter, circuit breaker, retry,
//!    per-attempt timeout) around a trivial async fn, next to the same fn bare and under a bare
//!    `tokio::time::timeout`; the policy as a tower layer (`PolicyLayer`) over a `service_fn`;
//!    tower's own stack doing the same jobs (`ConcurrencyLimit` + `RateLimit` + `Retry` +
//!    `Timeout`, no breaker) over the same `service_fn`; `backon`'s retry, bare and with a tokio
//!    timeout per attempt.
//! 2. `metrics_record`: what the metrics recording inside every call costs alone (a counter and
//!    a latency sample).
//! 3. `short_circuit`: a call refused by a forced-open breaker, through the policy and through the
//!    breaker alone.
//! 4. `limiter_check`: our limiter's non-waiting check next to `governor`'s own direct limiter with
//!    the default clock, and the cost of one clock reading.
//!
//! # Measured (issue 13, item 6)
//!
//! Two measures of the same entries (defined once, in `policy/entries.rs`):
//!
//! - **criterion medians**, ns, one run of the whole bench each for `main` as of `f958ad4`
//!   (before) and for this code (after), back to back on the 2-core development VM while other
//!   builds ran (load average ~7), the bench process at real-time priority (`chrt -f 50
//!   target/release/deps/policy-* --bench --warm-up-time 1 --measurement-time 3`). Runs move by
//!   ±15 % here (tower's stack, untouched, read 146 and 133 ns); compare ratios within one run.
//! - **instructions per call** under callgrind (`scripts/policy-ir`, on the `policy_ir`
//!   example: the difference between 20 000 and 10 000 calls, after a warm-up), which do not
//!   move from run to run, and `clock_gettime` calls per call. Under valgrind the vDSO is not
//!   used, so a clock reading's own work (~25 ns natively, `limiter_check/clock_read_baseline`)
//!   is hardly counted, and an uncontended atomic read-modify-write (~20 cycles) counts as one
//!   instruction: instruction ratios overstate the policy's cost next to a bare timeout, whose
//!   time is mostly its one clock reading.
//!
//! | entry | before ns | ratio | after ns | ratio | before Ir | ratio | after Ir | ratio |
//! |---|---:|---:|---:|---:|---:|---:|---:|---:|
//! | `bare_call` | 2.3 | | 2.2 | | 17 | | 17 | |
//! | `bare_tokio_timeout` | 55.8 | 1 | 54.8 | 1 | 215 | 1 | 214 | 1 |
//! | `composed_policy` | 167.5 | 3.00× | 130.4 | 2.38× | 1513 | 7.04× | 987 | 4.61× |
//! | `policy_timeout_only` | 130.7 | 2.34× | 101.7 | 1.86× | 1206 | 5.61× | 718 | 3.36× |
//! | `policy_layer_service_fn` | 202.7 | 3.63× | 178.4 | 3.26× | 1973 | 9.18× | 1443 | 6.74× |
//! | `tower_stack_service_fn` | 146.1 | 2.62× | 133.4 | 2.43× | 672 | 3.13× | 672 | 3.14× |
//! | `bare_service_fn` | 8.1 | | 8.0 | | 38 | | 38 | |
//! | `backon_retry` | 27.7 | 0.50× | 27.1 | 0.49× | 231 | 1.07× | 231 | 1.08× |
//! | `backon_retry_tokio_timeout` | 82.0 | 1.47× | 87.2 | 1.59× | 476 | 2.21× | 500 | 2.34× |
//! | `metrics_record` (with a tokio clock reading) | 60.4 | | 57.4 | | | | | |
//!
//! `PolicyLayer` against tower's stack: 1.39× before, 1.34× after (criterion); 2.94× and 2.15×
//! in instructions. Clock readings per call were already at the minimum before and still are:
//! one of tokio's clock for the composed policy (the limiter's, reused for the first attempt's
//! timeout and for the window's end), one for the timeout-only policy (the window's end), two
//! for tower's stack; plus two `quanta` TSC readings for latency, which are not `clock_gettime`.
//!
//! What changed (each step measured in instructions, kept because it paid):
//! - no spans at all when no `tracing` dispatcher was ever set and `log` is off at `INFO`
//!   (`telemetry::interested`): `sqlx` turns on `tracing`'s `log` feature in this graph, and
//!   with it two disabled spans built their fields for `log` and logged their entry, exit and
//!   drop (1513 → 1141 instructions);
//! - the attempt's timer boxed and made only when an attempt does not finish on its first poll,
//!   and no `Span` values at all on that path (the call's future 808 → 704 bytes; 1141 → 1073);
//! - `call` returns `run`'s future instead of wrapping it in one more state machine (1073 →
//!   1066); the breaker's healthy path inline with the locked settle out of line (→ 1001);
//!   latency converted to microseconds once for both histograms, the window's step rotation out
//!   of line (→ 987).
//!
//! The goals are still missed: the composed policy is 2.38× a bare timeout (goal ≤ 2×,
//! ~20 ns over at these numbers) and `PolicyLayer` 1.34× tower's stack (goal: faster, ~45 ns
//! over). What the composed call still costs, from the callgrind profile after (987
//! instructions): the policy's own state machine with the breaker and the counters inlined
//! (~360), the metrics' histogram, window and operation lookup (~145), arithmetic on tokio's
//! `Instant` for the limiter's clock and the window's step (~150), governor and our limiter
//! around it (~100), `quanta` (~60), dropping the futures (~40). In time, the atomic
//! read-modify-writes weigh more than their instruction count: six per call (calls and successes
//! counters, histogram bucket and sum, window bucket, governor's compare-and-swap), ~35 ns of
//! the 130 by `metrics_record` less its clock reading. `PolicyLayer` adds to `Policy::call` a
//! boxed 832-byte future (allocation, free, and the copy into the box: ~250 instructions) and a
//! `Policy` clone per call. Not done: merging the since-start histogram into the window's
//! buckets (one read-modify-write less, but a counter must not be seen to go down while a step
//! is folded in), and a hand-written layer future (tried in the previous session, no gain).

#[path = "policy/entries.rs"]
mod entries;

use std::hint::black_box;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use criterion::{Criterion, criterion_group, criterion_main};
use entries::{
    TIMEOUT, composed, drive, huge_quota, runtime, timeout_only, tower_stack, trivial,
    trivial_service,
};
use integrations_core::metrics::{IntegrationMetrics, MetricsRegistry};
use integrations_core::resilience::RateLimiter;
use integrations_core::{Error, Result};

fn policy_call(c: &mut Criterion) {
    let rt = runtime();
    let registry = MetricsRegistry::new();
    let policy = composed(&registry);
    let bare_policy = timeout_only(&registry);
    // The benches below measure the success path: make sure it is the one taken (checked before
    // measuring, so that a filter that skips them all does not fail the run).
    for p in [&policy, &bare_policy] {
        let v = rt
            .block_on(p.call("op", |_| trivial(1)))
            .expect("the policy lets a call through");
        assert_eq!(v, 2);
    }

    let mut group = c.benchmark_group("policy_call");
    group.bench_function("bare_call", |b| {
        b.to_async(&rt).iter(|| trivial(1));
    });
    group.bench_function("bare_tokio_timeout", |b| {
        b.to_async(&rt).iter(|| async {
            tokio::time::timeout(TIMEOUT, trivial(1))
                .await
                .expect("in time")
        });
    });
    group.bench_function("composed_policy", |b| {
        b.to_async(&rt)
            .iter(|| async { policy.call("op", |_| trivial(1)).await });
    });
    group.bench_function("policy_timeout_only", |b| {
        b.to_async(&rt)
            .iter(|| async { bare_policy.call("op", |_| trivial(1)).await });
    });
    // Our policy as a tower layer over the same `service_fn` as tower's stack below.
    group.bench_function("policy_layer_service_fn", |b| {
        let policy = &policy;
        b.to_async(&rt).iter_custom(|iters| async move {
            let svc = tower::ServiceBuilder::new()
                .layer(policy.layer("op"))
                .service(trivial_service());
            drive(svc, iters).await
        });
    });
    // tower's own stack doing the same jobs (see `entries::tower_stack`).
    group.bench_function("tower_stack_service_fn", |b| {
        b.to_async(&rt)
            .iter_custom(|iters| async move { drive(tower_stack(), iters).await });
    });
    group.bench_function("bare_service_fn", |b| {
        b.to_async(&rt)
            .iter_custom(|iters| async move { drive(trivial_service(), iters).await });
    });
    group.bench_function("backon_retry", |b| {
        let backoff = ExponentialBuilder::default().with_max_times(3);
        b.to_async(&rt)
            .iter(|| async { (|| trivial(1)).retry(backoff).await });
    });
    group.bench_function("backon_retry_tokio_timeout", |b| {
        let backoff = ExponentialBuilder::default().with_max_times(3);
        b.to_async(&rt).iter(|| async {
            (|| async {
                tokio::time::timeout(TIMEOUT, trivial(1))
                    .await
                    .map_err(|_| Error::timeout("attempt timed out"))?
            })
            .retry(backoff)
            .await
        });
    });
    group.finish();
}

/// What the policy's metrics recording costs on its own (counted inside `composed_policy`).
fn metrics_record(c: &mut Criterion) {
    let metrics = IntegrationMetrics::new("bench");
    let mut group = c.benchmark_group("metrics_record");
    group.bench_function("record_call_and_success", |b| {
        b.iter(|| {
            metrics.record_call();
            metrics.record_success(black_box(Duration::from_micros(180)));
        });
    });
    group.finish();
}

fn short_circuit(c: &mut Criterion) {
    let rt = runtime();
    let registry = MetricsRegistry::new();
    let policy = composed(&registry);
    let breaker = policy.circuit_breaker().expect("breaker").clone();
    breaker.force_open();

    let mut group = c.benchmark_group("short_circuit");
    group.bench_function("policy_call_forced_open", |b| {
        b.to_async(&rt).iter(|| async {
            let r: Result<u64> = policy.call("op", |_| trivial(1)).await;
            black_box(r.expect_err("refused"))
        });
    });
    group.bench_function("breaker_try_acquire_forced_open", |b| {
        b.iter(|| black_box(breaker.try_acquire("op").map(drop).expect_err("refused")));
    });
    group.bench_function("build_error_baseline", |b| {
        b.iter(|| black_box(Error::circuit_open(String::new()).with_provider("bench")));
    });
    group.finish();
}

fn limiter_check(c: &mut Criterion) {
    let ours = RateLimiter::new(huge_quota());
    let raw = governor::RateLimiter::direct(huge_quota());

    let mut group = c.benchmark_group("limiter_check");
    // What one clock reading costs here: the floor under every check below.
    group.bench_function("clock_read_baseline", |b| {
        b.iter(|| black_box(std::time::Instant::now()));
    });
    group.bench_function("governor_direct", |b| {
        b.iter(|| black_box(raw.check().is_ok()));
    });
    group.bench_function("ours_tokio_clock", |b| {
        b.iter(|| black_box(ours.check().is_ok()));
    });
    group.finish();
}

criterion_group!(
    benches,
    policy_call,
    metrics_record,
    short_circuit,
    limiter_check
);
criterion_main!(benches);
