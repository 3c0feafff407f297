//! `GoogleSheetsSink` against the sandbox: the core suite, no duplicates under faults, update by
//! key, batching thresholds, back-pressure, shutdown. All on tokio's paused clock.

mod common;

use std::time::Duration;

use common::{fast_builder, keys, requests_to};
use integrations_core::ErrorKind;
use integrations_core::provider::{Row, SheetsSink, UpdateOutcome};
use integrations_sheets::sandbox::{Endpoint, Fault, FaultRule, Sandbox};
use integrations_sheets::{A1Range, BatchConfig};
use integrations_testkit::{SheetsSuiteConfig, sheets_sink_suite};
use serde_json::json;
use tokio::time::Instant;

fn orders(range: std::ops::Range<u32>) -> Vec<Row> {
    range
        .map(|i| {
            Row::new(format!("order-{i}/paid"))
                .cell("EUR")
                .cell(i64::from(i) * 100)
        })
        .collect()
}

async fn sandbox_with(sheet: &str) -> Sandbox {
    let sandbox = Sandbox::start().await.unwrap();
    sandbox.add_sheet(sandbox.spreadsheet_id(), sheet);
    sandbox
}

#[tokio::test(start_paused = true)]
async fn sink_passes_the_core_suite_against_the_sandbox() {
    let sandbox = sandbox_with("Suite sheet").await;
    let sink = sandbox.client_builder().build().unwrap();
    sheets_sink_suite(&sink, &SheetsSuiteConfig::new("Suite sheet", "suite-run")).await;
    assert_eq!(sink.name(), "google-sheets");
    assert_eq!(sandbox.stats().quota_rejections, 0);
}

#[tokio::test(start_paused = true)]
async fn drop_after_accept_does_not_duplicate_rows() {
    let sheet = "It's here";
    let sandbox = sandbox_with(sheet).await;
    let sink = fast_builder(&sandbox).build().unwrap();
    sandbox.fail_next_on(Endpoint::Append, 1, Fault::DropAfterAccept);

    let out = sink.append_rows(sheet, orders(0..3)).await.unwrap();
    assert_eq!((out.appended, out.already_present), (3, 0));
    assert_eq!(
        keys(&sandbox, sheet),
        ["order-0/paid", "order-1/paid", "order-2/paid"]
    );
    // The dropped append was carried out; the retry read the key column, found every row and
    // sent nothing more.
    let appends = requests_to(&sandbox, Endpoint::Append);
    assert_eq!(appends.len(), 1);
    assert_eq!(appends[0].range.as_deref(), Some("'It''s here'!A1"));
    assert_eq!(
        requests_to(&sandbox, Endpoint::Get).len(),
        2,
        "initial key read + check after the drop"
    );

    // The same call again (an outbox redelivery) adds nothing.
    let again = sink.append_rows(sheet, orders(0..3)).await.unwrap();
    assert_eq!((again.appended, again.already_present), (0, 3));
    assert_eq!(keys(&sandbox, sheet).len(), 3);
}

#[tokio::test(start_paused = true)]
async fn drop_after_accept_mid_batch_resends_only_the_missing_rows() {
    let sandbox = sandbox_with("Orders").await;
    let sink = fast_builder(&sandbox).build().unwrap();
    sink.append_rows("Orders", orders(0..2)).await.unwrap();
    // A hang (nothing written) then a 500 (nothing written): both ambiguous to the client.
    sandbox.fail_next_on(Endpoint::Append, 1, Fault::Hang);
    sandbox.fail_next_on(Endpoint::Append, 1, Fault::ServerError);
    let started = Instant::now();
    let out = sink.append_rows("Orders", orders(0..5)).await.unwrap();
    assert_eq!((out.appended, out.already_present), (3, 2));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the hang was cut off by the attempt timeout"
    );
    assert_eq!(
        keys(&sandbox, "Orders"),
        (0..5)
            .map(|i| format!("order-{i}/paid"))
            .collect::<Vec<_>>()
    );
    let appends = requests_to(&sandbox, Endpoint::Append);
    assert_eq!(appends.iter().map(|r| r.rows).collect::<Vec<_>>(), [2, 3]);
}

#[tokio::test(start_paused = true)]
async fn plain_client_append_is_not_retried_when_the_outcome_is_unknown() {
    let sandbox = sandbox_with("Orders").await;
    let client = fast_builder(&sandbox).build_client().unwrap();
    sandbox.fail_next_on(Endpoint::Append, 1, Fault::DropAfterAccept);
    let rows: Vec<Vec<_>> = orders(0..2).iter().map(Row::to_values).collect();
    let e = client
        .append(&A1Range::cell("Orders", 0, 1), &rows)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(!e.is_failover_safe(), "the rows may have landed");
    assert_eq!(
        keys(&sandbox, "Orders").len(),
        2,
        "landed once, not retried blindly"
    );
    // A 429 certainly did not land: that one is retried.
    sandbox.fail_next_on(
        Endpoint::Append,
        1,
        Fault::RateLimited {
            retry_after: Some(Duration::from_secs(1)),
        },
    );
    let ok = client
        .append(&A1Range::cell("Orders", 0, 1), &rows[..1])
        .await
        .unwrap();
    assert_eq!(ok.updates.updated_range.as_deref(), Some("Orders!A3:C3"));
    assert_eq!(ok.table_range.as_deref(), Some("Orders!A1:C2"));
}

#[tokio::test(start_paused = true)]
async fn a_new_sink_sees_rows_written_before_it_started() {
    let sandbox = sandbox_with("Orders").await;
    let first = fast_builder(&sandbox).build().unwrap();
    first.append_rows("Orders", orders(0..3)).await.unwrap();
    first.shutdown().await.unwrap();
    let second = fast_builder(&sandbox).build().unwrap();
    let out = second.append_rows("Orders", orders(0..5)).await.unwrap();
    assert_eq!((out.appended, out.already_present), (2, 3));
    assert_eq!(keys(&sandbox, "Orders").len(), 5);
    // Duplicates inside one call count as already present too.
    let dup = second
        .append_rows("Orders", [orders(7..8), orders(7..8)].concat())
        .await
        .unwrap();
    assert_eq!((dup.appended, dup.already_present), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn updates_read_the_key_column_once_per_batch() {
    let sandbox = Sandbox::start().await.unwrap();
    let seeded = (0..30)
        .map(|i| vec![json!(format!("order-{i}")), json!("placed")])
        .collect();
    sandbox.seed_rows(sandbox.spreadsheet_id(), "Status", seeded);
    let sink = fast_builder(&sandbox)
        .with_batch(BatchConfig::new().with_max_delay(Duration::from_secs(1)))
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for i in (0..20).step_by(2).chain([99]) {
        let sink = sink.clone();
        tasks.push(tokio::spawn(async move {
            sink.update_row("Status", Row::new(format!("order-{i}")).cell("paid"))
                .await
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap().unwrap());
    }
    let expected: Vec<UpdateOutcome> = (0..20)
        .step_by(2)
        .map(|i| UpdateOutcome::Updated { row: i + 1 })
        .chain([UpdateOutcome::NotFound])
        .collect();
    assert_eq!(outcomes, expected);
    assert_eq!(
        requests_to(&sandbox, Endpoint::Get).len(),
        1,
        "one key-column read for 11 updates"
    );
    let writes = requests_to(&sandbox, Endpoint::BatchUpdate);
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].rows, 10);
    let rows = sandbox.rows(sandbox.spreadsheet_id(), "Status").unwrap();
    assert_eq!(rows[4], ["order-4", "paid"]);
    assert_eq!(rows[5], ["order-5", "placed"]);
    // Read a page at a time, the same rows in the same order; past the end, none.
    let id = sandbox.spreadsheet_id();
    let paged: Vec<Vec<String>> = (0..rows.len().div_ceil(3))
        .flat_map(|p| sandbox.rows_page(id, "Status", p * 3, 3).unwrap())
        .collect();
    assert_eq!(paged, rows);
    assert_eq!(sandbox.rows_page(id, "Status", 4, 2).unwrap(), rows[4..6]);
    assert!(
        sandbox
            .rows_page(id, "Status", rows.len(), 10)
            .unwrap()
            .is_empty()
    );
    assert!(sandbox.rows_page(id, "No such sheet", 0, 10).is_none());

    let many = sink
        .update_rows(
            "Status",
            vec![
                Row::new("order-1").cell("shipped"),
                Row::new("nope").cell("x"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        many,
        [UpdateOutcome::Updated { row: 2 }, UpdateOutcome::NotFound]
    );
}

#[tokio::test(start_paused = true)]
async fn an_update_goes_to_the_first_row_of_its_key_and_keeps_the_keys_known() {
    let sandbox = Sandbox::start().await.unwrap();
    // `order-1` twice (a row a person copied), and an empty key cell between.
    let seeded = ["order-0", "order-1", "", "order-1", "order-2"]
        .iter()
        .map(|k| vec![json!(k), json!("placed")])
        .collect();
    sandbox.seed_rows(sandbox.spreadsheet_id(), "Status", seeded);
    let sink = fast_builder(&sandbox).build().unwrap();
    let out = sink
        .update_rows(
            "Status",
            vec![
                Row::new("order-2").cell("paid"),
                Row::new("order-1").cell("paid"),
                Row::new("order-1").cell("refunded"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        [
            UpdateOutcome::Updated { row: 5 },
            UpdateOutcome::Updated { row: 2 },
            UpdateOutcome::Updated { row: 2 },
        ]
    );
    let rows = sandbox.rows(sandbox.spreadsheet_id(), "Status").unwrap();
    assert_eq!(rows[3], ["order-1", "placed"], "the copy is left alone");
    // The keys read for the update are the sink's known keys: an append of one is skipped
    // without a second read.
    let gets = requests_to(&sandbox, Endpoint::Get).len();
    let appended = sink
        .append_rows("Status", vec![Row::new("order-0").cell("placed")])
        .await
        .unwrap();
    assert_eq!((appended.appended, appended.already_present), (0, 1));
    assert_eq!(requests_to(&sandbox, Endpoint::Get).len(), gets);
}

#[tokio::test(start_paused = true)]
async fn an_update_of_an_appended_row_checks_its_key_cell_not_the_column() {
    let sandbox = sandbox_with("Orders").await;
    let sink = fast_builder(&sandbox).build().unwrap();
    sink.append_rows("Orders", orders(0..40)).await.unwrap();
    sink.append_rows("Orders", orders(40..60)).await.unwrap();
    assert_eq!(
        requests_to(&sandbox, Endpoint::Get).len(),
        1,
        "the first append's read"
    );

    let out = sink
        .update_rows(
            "Orders",
            vec![
                Row::new("order-45/paid").cell("GBP"),
                Row::new("order-7/paid").cell("USD"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        [
            UpdateOutcome::Updated { row: 46 },
            UpdateOutcome::Updated { row: 8 }
        ]
    );
    // One read of the two key cells, no read of the column, one write.
    assert_eq!(requests_to(&sandbox, Endpoint::Get).len(), 1);
    let checks = requests_to(&sandbox, Endpoint::BatchGet);
    assert_eq!((checks.len(), checks[0].rows), (1, 2));
    assert_eq!(requests_to(&sandbox, Endpoint::BatchUpdate).len(), 1);
    let rows = sandbox.rows(sandbox.spreadsheet_id(), "Orders").unwrap();
    assert_eq!(rows.len(), 60);
    assert_eq!(rows[7], ["order-7/paid", "USD", "700"]);
    assert_eq!(rows[45], ["order-45/paid", "GBP", "4500"]);
    assert_eq!(rows[8], ["order-8/paid", "EUR", "800"]);
}

#[tokio::test(start_paused = true)]
async fn an_update_whose_row_moved_finds_it_again_in_the_column() {
    let sandbox = sandbox_with("Orders").await;
    let sink = fast_builder(&sandbox).build().unwrap();
    sink.append_rows("Orders", orders(0..10)).await.unwrap();
    // Somebody inserts a row at the top: every row moves down one.
    let mut moved = vec![vec![json!("a note"), json!("typed by a person")]];
    moved.extend(
        sandbox
            .rows(sandbox.spreadsheet_id(), "Orders")
            .unwrap()
            .into_iter()
            .map(|r| r.into_iter().map(serde_json::Value::from).collect()),
    );
    sandbox.seed_rows(sandbox.spreadsheet_id(), "Orders", moved);

    let out = sink
        .update_row("Orders", Row::new("order-3/paid").cell("USD"))
        .await
        .unwrap();
    assert_eq!(out, UpdateOutcome::Updated { row: 5 });
    // The key cell at the known row held another key: the column was read, and only then the
    // row written.
    assert_eq!(requests_to(&sandbox, Endpoint::BatchGet).len(), 1);
    assert_eq!(requests_to(&sandbox, Endpoint::Get).len(), 2);
    let rows = sandbox.rows(sandbox.spreadsheet_id(), "Orders").unwrap();
    assert_eq!(
        rows[3],
        ["order-2/paid", "EUR", "200"],
        "the row now at 4 is untouched"
    );
    assert_eq!(rows[4], ["order-3/paid", "USD", "300"]);
    // The column read refreshed every known row: the next update is checked, not read.
    let out = sink
        .update_row("Orders", Row::new("order-9/paid").cell("GBP"))
        .await
        .unwrap();
    assert_eq!(out, UpdateOutcome::Updated { row: 11 });
    assert_eq!(requests_to(&sandbox, Endpoint::Get).len(), 2);
    assert_eq!(requests_to(&sandbox, Endpoint::BatchGet).len(), 2);

    // A row deleted (its key cell cleared): checked, read, and not found.
    sandbox.seed_rows(
        sandbox.spreadsheet_id(),
        "Orders",
        vec![vec![], vec![], vec![], vec![], vec![], vec![json!("")]],
    );
    let out = sink
        .update_row("Orders", Row::new("order-4/paid").cell("GBP"))
        .await
        .unwrap();
    assert_eq!(out, UpdateOutcome::NotFound);
    assert_eq!(requests_to(&sandbox, Endpoint::Get).len(), 3);
}

#[tokio::test(start_paused = true)]
async fn an_update_reads_the_column_for_a_key_another_writer_added_or_a_check_that_failed() {
    let sandbox = sandbox_with("Orders").await;
    let sink = fast_builder(&sandbox).build().unwrap();
    sink.append_rows("Orders", orders(0..5)).await.unwrap();
    // Another process appends a row the sink has not seen.
    let mut rows: Vec<Vec<serde_json::Value>> = sandbox
        .rows(sandbox.spreadsheet_id(), "Orders")
        .unwrap()
        .into_iter()
        .map(|r| r.into_iter().map(serde_json::Value::from).collect())
        .collect();
    rows.push(vec![json!("theirs"), json!("placed")]);
    sandbox.seed_rows(sandbox.spreadsheet_id(), "Orders", rows);
    let gets = requests_to(&sandbox, Endpoint::Get).len();
    let out = sink
        .update_row("Orders", Row::new("theirs").cell("paid"))
        .await
        .unwrap();
    assert_eq!(out, UpdateOutcome::Updated { row: 6 });
    assert_eq!(requests_to(&sandbox, Endpoint::Get).len(), gets + 1);
    assert!(requests_to(&sandbox, Endpoint::BatchGet).is_empty());

    // The check of known rows fails (every attempt of the read policy): the column decides.
    sandbox.fail_next_on(Endpoint::BatchGet, 10, Fault::Unavailable);
    let reads = sandbox.stats().read_requests;
    let out = sink
        .update_row("Orders", Row::new("order-2/paid").cell("USD"))
        .await
        .unwrap();
    assert_eq!(out, UpdateOutcome::Updated { row: 3 });
    assert_eq!(requests_to(&sandbox, Endpoint::Get).len(), gets + 2);
    // The failed checks (answered 503, each attempt a read) and the column read.
    assert!(sandbox.stats().read_requests >= reads + 2);
}

#[tokio::test(start_paused = true)]
async fn more_keys_than_one_check_carries_read_the_column_once() {
    let sandbox = sandbox_with("Orders").await;
    let sink = fast_builder(&sandbox).build().unwrap();
    sink.append_rows("Orders", orders(0..150)).await.unwrap();
    let gets = requests_to(&sandbox, Endpoint::Get).len();
    let updates: Vec<Row> = (0..120)
        .map(|i| Row::new(format!("order-{i}/paid")).cell("USD"))
        .collect();
    let out = sink.update_rows("Orders", updates).await.unwrap();
    assert_eq!(out.len(), 120);
    assert_eq!(out[119], UpdateOutcome::Updated { row: 120 });
    assert!(requests_to(&sandbox, Endpoint::BatchGet).is_empty());
    assert_eq!(requests_to(&sandbox, Endpoint::Get).len(), gets + 1);
    // 100 keys still go by one check.
    let updates: Vec<Row> = (0..100)
        .map(|i| Row::new(format!("order-{i}/paid")).cell("GBP"))
        .collect();
    sink.update_rows("Orders", updates).await.unwrap();
    let checks = requests_to(&sandbox, Endpoint::BatchGet);
    assert_eq!((checks.len(), checks[0].rows), (1, 100));
    assert_eq!(requests_to(&sandbox, Endpoint::Get).len(), gets + 1);
}

#[tokio::test(start_paused = true)]
async fn the_sandbox_answers_batch_get_as_google_does() {
    let sandbox = sandbox_with("Orders").await;
    sandbox.seed_rows(
        sandbox.spreadsheet_id(),
        "Orders",
        vec![
            vec![json!("order-1"), json!(12.5)],
            vec![json!("order-2"), json!("x")],
        ],
    );
    let client = fast_builder(&sandbox).build_client().unwrap();
    let read = client
        .batch_get(&[
            A1Range::cell("Orders", 0, 2),
            A1Range::area("Orders", 0, 1, 1, 1),
            A1Range::cell("Orders", 0, 9),
        ])
        .await
        .unwrap();
    let got: Vec<(&str, Vec<Vec<String>>)> = read
        .iter()
        .map(|v| {
            let cells = v
                .values
                .iter()
                .map(|r| r.iter().map(|c| c.as_text()).collect())
                .collect();
            (v.range.as_str(), cells)
        })
        .collect();
    assert_eq!(
        got,
        [
            ("Orders!A2", vec![vec!["order-2".to_owned()]]),
            (
                "Orders!A1:B1",
                vec![vec!["order-1".to_owned(), "12.5".to_owned()]]
            ),
            ("Orders!A9", vec![]),
        ]
    );
    let e = client
        .batch_get(&[A1Range::cell("Orders", 0, 1), A1Range::cell("Nope", 0, 1)])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(
        e.to_string().contains("Unable to parse range: Nope!A1"),
        "{e}"
    );
    assert_eq!(sandbox.stats().read_requests, 2, "batchGet is a read");
    assert_eq!(sandbox.stats().write_requests, 0);
}

#[tokio::test(start_paused = true)]
async fn a_batch_update_with_one_bad_range_writes_nothing() {
    use integrations_core::provider::Cell;
    let sandbox = sandbox_with("Orders").await;
    sandbox.seed_rows(
        sandbox.spreadsheet_id(),
        "Orders",
        vec![vec![json!("order-1"), json!("placed")]],
    );
    let client = fast_builder(&sandbox).build_client().unwrap();
    let e = client
        .batch_update(&[
            (
                A1Range::area("Orders", 0, 1, 1, 1),
                vec![vec![Cell::from("order-1"), Cell::from("paid")]],
            ),
            // Two rows into a one-row range: Google refuses the whole request.
            (
                A1Range::area("Orders", 0, 5, 1, 5),
                vec![vec![Cell::from("a")], vec![Cell::from("b")]],
            ),
        ])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("tried writing to row [6]"), "{e}");
    assert_eq!(
        sandbox.rows(sandbox.spreadsheet_id(), "Orders").unwrap(),
        [["order-1", "placed"]],
        "the first range is not written either"
    );
}

#[tokio::test(start_paused = true)]
async fn update_on_an_empty_sheet_is_not_found_without_a_write() {
    let sandbox = sandbox_with("Empty").await;
    let sink = fast_builder(&sandbox).build().unwrap();
    let out = sink
        .update_row("Empty", Row::new("order-1").cell("paid"))
        .await
        .unwrap();
    assert_eq!(out, UpdateOutcome::NotFound);
    assert_eq!(requests_to(&sandbox, Endpoint::Get).len(), 1);
    assert_eq!(sandbox.stats().write_requests, 0);
}

#[tokio::test(start_paused = true)]
async fn a_sheet_flushes_on_time_or_size() {
    let sandbox = sandbox_with("Orders").await;
    let sink = fast_builder(&sandbox)
        .with_batch(
            BatchConfig::new()
                .with_max_rows(5)
                .with_max_delay(Duration::from_secs(2)),
        )
        .build()
        .unwrap();
    let t0 = Instant::now();
    sink.append_rows("Orders", orders(0..1)).await.unwrap();
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    let t1 = Instant::now();
    sink.append_rows("Orders", orders(1..6)).await.unwrap();
    assert!(
        t1.elapsed() < Duration::from_secs(2),
        "a full batch goes at once: {:?}",
        t1.elapsed()
    );
    // A call larger than a batch is split into several appends.
    let out = sink.append_rows("Orders", orders(10..22)).await.unwrap();
    assert_eq!(out.appended, 12);
    let sizes: Vec<usize> = requests_to(&sandbox, Endpoint::Append)
        .iter()
        .map(|r| r.rows)
        .collect();
    assert_eq!(sizes, [1, 5, 5, 5, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_full_buffer_makes_callers_wait() {
    let sandbox = sandbox_with("Orders").await;
    let sink = fast_builder(&sandbox)
        .with_batch(
            BatchConfig::new()
                .with_max_rows(100)
                .with_buffer_rows(10)
                .with_max_delay(Duration::from_secs(3600)),
        )
        .build()
        .unwrap();
    let a = tokio::spawn({
        let sink = sink.clone();
        async move { sink.append_rows("Orders", orders(0..10)).await }
    });
    tokio::task::yield_now().await;
    let b = tokio::spawn({
        let sink = sink.clone();
        async move { sink.append_rows("Orders", orders(10..15)).await }
    });
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!a.is_finished() && !b.is_finished());
    // The flush carries A's rows only: B was still waiting for space.
    sink.flush().await.unwrap();
    assert_eq!(a.await.unwrap().unwrap().appended, 10);
    sink.flush().await.unwrap();
    assert_eq!(b.await.unwrap().unwrap().appended, 5);
    let sizes: Vec<usize> = requests_to(&sandbox, Endpoint::Append)
        .iter()
        .map(|r| r.rows)
        .collect();
    assert_eq!(sizes, [10, 5]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_flushes_then_refuses() {
    let sandbox = sandbox_with("Orders").await;
    let sink = fast_builder(&sandbox)
        .with_batch(BatchConfig::new().with_max_delay(Duration::from_secs(3600)))
        .build()
        .unwrap();
    let pending = tokio::spawn({
        let sink = sink.clone();
        async move { sink.append_rows("Orders", orders(0..4)).await }
    });
    tokio::task::yield_now().await;
    let t0 = Instant::now();
    sink.shutdown().await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(60));
    assert_eq!(pending.await.unwrap().unwrap().appended, 4);
    assert_eq!(keys(&sandbox, "Orders").len(), 4);
    let e = sink.append_rows("Orders", orders(5..6)).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    let e = sink.append_rows("", orders(5..6)).await.unwrap_err();
    assert_eq!(e.field(), Some("sheet"));
}

#[tokio::test(start_paused = true)]
async fn failures_reach_every_caller_of_the_batch() {
    let sandbox = Sandbox::start().await.unwrap();
    let sink = fast_builder(&sandbox).build().unwrap();
    // No such sheet: Google answers 400 "Unable to parse range".
    let (a, b) = tokio::join!(
        sink.append_rows("Missing", orders(0..1)),
        sink.append_rows("Missing", orders(1..2)),
    );
    for e in [a.unwrap_err(), b.unwrap_err()] {
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(e.field(), Some("range"));
        assert_eq!(e.code(), Some("INVALID_ARGUMENT"));
    }
    let e = sink.flush().await;
    assert!(e.is_ok(), "nothing left to flush: {e:?}");
}

fn one_row(i: u32) -> Vec<Vec<integrations_core::provider::Cell>> {
    orders(i..i + 1).iter().map(Row::to_values).collect()
}

/// `.after(1).times(2)` on appends: the first append passes, the next two append requests get
/// the fault (the client retries through both 429s), reads in between are not counted.
#[tokio::test(start_paused = true)]
async fn fault_rule_after_times_hits_exactly_the_intended_appends() {
    let sandbox = sandbox_with("Orders").await;
    let client = fast_builder(&sandbox).build_client().unwrap();
    sandbox.inject(
        FaultRule::new(Fault::RateLimited { retry_after: None })
            .after(1)
            .times(2)
            .on(Endpoint::Append.name()),
    );
    let at = A1Range::cell("Orders", 0, 1);
    client.append(&at, &one_row(0)).await.unwrap();
    client.get(&A1Range::sheet("Orders")).await.unwrap();
    client.append(&at, &one_row(1)).await.unwrap();
    client.append(&at, &one_row(2)).await.unwrap();

    let faults: Vec<Option<Fault>> = sandbox
        .request_log()
        .recent()
        .into_iter()
        .filter(|r| r.operation == "values.append")
        .map(|r| r.fault)
        .collect();
    let limited = Some(Fault::RateLimited { retry_after: None });
    assert_eq!(faults, [None, limited, limited, None, None]);
    assert_eq!(
        keys(&sandbox, "Orders"),
        ["order-0/paid", "order-1/paid", "order-2/paid"]
    );
    assert_eq!(sandbox.stats().faults_injected, 2);
    assert_eq!(requests_to(&sandbox, Endpoint::Append).len(), 3, "served");
    assert_eq!(requests_to(&sandbox, Endpoint::Get).len(), 1);
}

/// The request log keeps the last `request_retention` requests; totals and stats stay exact.
#[tokio::test(start_paused = true)]
async fn request_retention_bounds_records_while_totals_stay_exact() {
    let sandbox = Sandbox::builder()
        .request_retention(3)
        .start()
        .await
        .unwrap();
    sandbox.add_sheet(sandbox.spreadsheet_id(), "Orders");
    let client = fast_builder(&sandbox).build_client().unwrap();
    sandbox.fail_next_on(
        Endpoint::Append,
        1,
        Fault::RateLimited {
            retry_after: Some(Duration::from_secs(1)),
        },
    );
    let at = A1Range::cell("Orders", 0, 1);
    for i in 0..5 {
        client.append(&at, &one_row(i)).await.unwrap();
    }
    let served = sandbox.requests();
    assert_eq!(served.len(), 3, "only the last three kept");
    assert!(
        served
            .iter()
            .all(|r| r.endpoint == Endpoint::Append && r.rows == 1)
    );
    let totals = sandbox.request_log().totals();
    assert_eq!((totals.requests, totals.faulted), (6, 1));
    assert_eq!(totals.by_operation["values.append"], 6);
    assert_eq!(totals.by_status[&429], 1);
    let stats = sandbox.stats();
    assert_eq!((stats.write_requests, stats.faults_injected), (6, 1));
    assert_eq!(sandbox.token_request_log().totals().requests, 1);
    assert_eq!(keys(&sandbox, "Orders").len(), 5);
}

/// Dropped after the append landed: the sink's retry re-reads the key column, finds the rows and
/// appends nothing more — rows appended once although the client retried.
#[tokio::test(start_paused = true)]
async fn drop_after_accept_rule_appends_once_though_the_client_retried() {
    let sandbox = sandbox_with("Orders").await;
    let sink = fast_builder(&sandbox).build().unwrap();
    sandbox.inject(FaultRule::new(Fault::DropAfterAccept).on(Endpoint::Append.name()));

    let out = sink.append_rows("Orders", orders(0..3)).await.unwrap();
    assert_eq!((out.appended, out.already_present), (3, 0));
    assert_eq!(keys(&sandbox, "Orders").len(), 3);

    let log = sandbox.request_log().recent();
    let appends: Vec<_> = log
        .iter()
        .filter(|r| r.operation == "values.append")
        .collect();
    assert_eq!(appends.len(), 1, "the retry sent no second append");
    assert_eq!(appends[0].fault, Some(Fault::DropAfterAccept));
    assert_eq!(
        appends[0].status, 200,
        "processed; the answer was not delivered"
    );
    let after_drop = log
        .iter()
        .skip_while(|r| r.fault.is_none())
        .skip(1)
        .map(|r| r.operation.as_str())
        .collect::<Vec<_>>();
    assert_eq!(
        after_drop,
        ["values.get"],
        "the client retried by re-reading"
    );
    assert_eq!(requests_to(&sandbox, Endpoint::Append)[0].rows, 3);
    assert_eq!(sandbox.token_request_log().totals().faulted, 0);
}

/// A hang answers nothing for the hang time, then closes the connection; the read is retried.
#[tokio::test(start_paused = true)]
async fn hang_closes_the_connection_after_the_hang_time() {
    let sandbox = Sandbox::builder()
        .hang_for(Duration::from_millis(500))
        .start()
        .await
        .unwrap();
    sandbox.add_sheet(sandbox.spreadsheet_id(), "Orders");
    let client = fast_builder(&sandbox).build_client().unwrap();
    client.get(&A1Range::sheet("Orders")).await.unwrap();
    sandbox.fail_next(1, Fault::Hang);
    let started = Instant::now();
    client.get(&A1Range::sheet("Orders")).await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(2),
        "closed at the hang time, before the 2 s attempt timeout: {waited:?}"
    );
    let gets: Vec<(Option<Fault>, u16)> = sandbox
        .request_log()
        .recent()
        .into_iter()
        .filter(|r| r.operation == "values.get")
        .map(|r| (r.fault, r.status))
        .collect();
    assert_eq!(gets, [(None, 200), (Some(Fault::Hang), 0), (None, 200)]);
    assert_eq!(
        requests_to(&sandbox, Endpoint::Get).len(),
        2,
        "the hang served nothing"
    );
}
