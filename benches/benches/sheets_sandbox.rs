//! The Sheets sandbox with its rows in memory against the same sandbox keeping only the latest
//! 1,000 in memory and the others in its file (`SandboxBuilder::resident_rows`), in one run.
//!
//! A sheet of 20,000 order rows (eight cells each, as the main job writes them), read and
//! appended to through the real client over the loopback:
//!
//! 1. `key_column`: `values.get` of `A:A`, the sink's read of every key (19,000 rows from the file);
//! 2. `first_rows`: the first 100 rows, all in the file;
//! 3. `last_rows`: the last 100 rows, in memory in both;
//! 4. `append`: an append of 10 rows (the sheet grows by 10 each time; past the limit the
//!    sandbox writes the oldest rows to its file during the request, 500 at a time).
//!
//! Report the ratio of `file/…` to `memory/…` for each: the same HTTP round trip, JSON and
//! client on both sides, so the difference is the rows' reading back (or writing out).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use integrations_core::Policy;
use integrations_core::provider::Cell;
use integrations_sheets::sandbox::Sandbox;
use integrations_sheets::{A1Range, GoogleSheetsClient};

const ROWS: u32 = 20_000;
const SHEET: &str = "Orders";

fn order_row(i: u32) -> Vec<Cell> {
    vec![
        Cell::Text(format!("ord_bench_{i:06}/paid")),
        Cell::Text(format!("ord_bench_{i:06}")),
        Cell::Text("paid".to_owned()),
        Cell::Int(i64::from(i) * 125 + 999),
        Cell::Text("EUR".to_owned()),
        Cell::Text(format!("customer{i}@example.com")),
        Cell::Int(2),
        Cell::Text("2026-12-04T12:00:00Z".to_owned()),
    ]
}

fn policy() -> Policy {
    Policy::builder("google-sheets")
        .no_circuit_breaker()
        .attempt_timeout(Duration::from_secs(30))
        .build()
}

async fn sandbox(resident: Option<usize>) -> (Sandbox, GoogleSheetsClient) {
    let mut builder = Sandbox::builder()
        .write_requests_per_minute(u32::MAX)
        .read_requests_per_minute(u32::MAX)
        .request_retention(100);
    if let Some(n) = resident {
        builder = builder.resident_rows(n);
    }
    let sandbox = builder.start().await.expect("sandbox");
    sandbox.add_sheet(sandbox.spreadsheet_id(), SHEET);
    let client = sandbox
        .client_builder()
        .with_read_policy(policy())
        .with_write_policy(policy())
        .with_token_policy(policy())
        .build_client()
        .expect("client");
    // Appended in pieces, as a sink appends: the limit applies as the rows arrive.
    let at = A1Range::parse("Orders!A1").expect("range");
    for first in (0..ROWS).step_by(1_000) {
        let rows: Vec<Vec<Cell>> = (first..first + 1_000).map(order_row).collect();
        client.append(&at, &rows).await.expect("seed");
    }
    (sandbox, client)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("sheets_sandbox");
    group.sample_size(20);
    for (label, resident) in [("memory", None), ("file", Some(1_000))] {
        let (sandbox, client) = rt.block_on(sandbox(resident));
        let reads = [
            ("key_column", A1Range::parse("Orders!A:A").expect("range")),
            (
                "first_rows",
                A1Range::parse("Orders!A1:H100").expect("range"),
            ),
            (
                "last_rows",
                A1Range::parse(&format!("Orders!A{}:H{ROWS}", ROWS - 99)).expect("range"),
            ),
        ];
        for (name, range) in reads {
            group.bench_function(BenchmarkId::new(label, name), |b| {
                b.to_async(&rt)
                    .iter(|| async { black_box(client.get(&range).await.expect("get")) })
            });
        }
        let append_at = A1Range::parse("Orders!A1").expect("range");
        let batch: Vec<Vec<Cell>> = (0..10)
            .map(|i| {
                vec![
                    Cell::Text(format!("ord_append_{i}/paid")),
                    Cell::Text("paid".to_owned()),
                    Cell::Int(i64::from(i) * 125),
                ]
            })
            .collect();
        group.bench_function(BenchmarkId::new(label, "append"), |b| {
            b.to_async(&rt).iter(|| async {
                black_box(client.append(&append_at, &batch).await.expect("append"))
            })
        });
        if let Some(n) = resident {
            let in_file = sandbox.stats().rows_in_file;
            assert!(in_file > 0, "with {n} resident rows, rows went to the file");
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
