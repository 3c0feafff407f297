//! The sandbox with a resident-row limit (`SandboxBuilder::resident_rows`): what a client reads,
//! appends and updates is the same whether a row is in memory or in the sandbox's file.

mod common;

use common::{fast_builder, keys};
use integrations_core::provider::{Cell, Row, SheetsSink, UpdateOutcome};
use integrations_sheets::A1Range;
use integrations_sheets::sandbox::Sandbox;
use integrations_testkit::{SheetsSuiteConfig, sheets_sink_suite};

fn order(i: u32, status: &str) -> Row {
    Row::new(format!("order-{i}"))
        .cell(status)
        .cell(i64::from(i) * 100)
}

#[tokio::test(start_paused = true)]
async fn the_core_suite_passes_with_two_rows_in_memory() {
    let sandbox = Sandbox::builder().resident_rows(2).start().await.unwrap();
    sandbox.add_sheet(sandbox.spreadsheet_id(), "Suite sheet");
    let sink = sandbox.client_builder().build().unwrap();
    sheets_sink_suite(&sink, &SheetsSuiteConfig::new("Suite sheet", "suite-run")).await;
}

#[tokio::test(start_paused = true)]
async fn rows_in_the_file_are_read_updated_and_kept_as_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::builder()
        .resident_rows(20)
        .spill_dir(dir.path())
        .start()
        .await
        .unwrap();
    let id = sandbox.spreadsheet_id();
    sandbox.add_sheet(id, "Orders");
    let sink = fast_builder(&sandbox).build().unwrap();
    for batch in 0..6 {
        let rows = (batch * 50..batch * 50 + 50).map(|i| order(i, "paid"));
        let out = sink.append_rows("Orders", rows.collect()).await.unwrap();
        assert_eq!((out.appended, out.already_present), (50, 0));
    }
    let in_file = sandbox.stats().rows_in_file;
    assert!(
        (300 - 30..=300 - 20).contains(&in_file),
        "20 to 30 of 300 rows stay in memory: {in_file} in the file"
    );

    // The first rows are in the file: updated by key, appended again (already present).
    let out = sink
        .update_rows("Orders", (0..5).map(|i| order(i, "refunded")).collect())
        .await
        .unwrap();
    let rows: Vec<UpdateOutcome> = (1..=5).map(|row| UpdateOutcome::Updated { row }).collect();
    assert_eq!(out, rows);
    let again = sink
        .append_rows("Orders", (0..10).map(|i| order(i, "paid")).collect())
        .await
        .unwrap();
    assert_eq!((again.appended, again.already_present), (0, 10));

    let want: Vec<Vec<String>> = (0..300)
        .map(|i| {
            let status = if i < 5 { "refunded" } else { "paid" };
            vec![
                format!("order-{i}"),
                status.to_owned(),
                (i * 100).to_string(),
            ]
        })
        .collect();
    assert_eq!(sandbox.rows(id, "Orders").unwrap(), want);
    assert_eq!(sandbox.rows_page(id, "Orders", 3, 4).unwrap(), want[3..7]);
    assert_eq!(keys(&sandbox, "Orders").len(), 300);

    // Through the API: by rows, and a range that starts in the file and ends in memory.
    let client = fast_builder(&sandbox).build_client().unwrap();
    let read = client
        .get(&A1Range::parse("Orders!A1:C300").unwrap())
        .await
        .unwrap();
    let got: Vec<Vec<String>> = (read.values.iter())
        .map(|r| r.iter().map(Cell::as_text).collect())
        .collect();
    assert_eq!(got, want);
}
