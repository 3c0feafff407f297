//! Google's size limits as the sandbox keeps them: ten million cells a spreadsheet (the cells
//! of every sheet's grid, rows × columns, at least 1000 × 26, filled or not) and 50,000
//! characters a cell. A write past either is refused with Google's 400 and changes nothing.

mod common;

use common::fast_builder;
use integrations_core::ErrorKind;
use integrations_core::provider::Cell;
use integrations_sheets::sandbox::Sandbox;
use integrations_sheets::{A1Range, GoogleSheetsClient};

const LIMIT: &str = "above the limit of 10000000 cells";
/// The last row of a 26-column grid within the limit: 384,615 × 26 = 9,999,990 cells.
const LAST_ROW: u32 = 10_000_000 / 26;

/// A sandbox whose spreadsheet has `Sheet1` and the two `sheets`, and a client of it.
async fn with_sheets(sheets: [&str; 2]) -> (Sandbox, GoogleSheetsClient) {
    let sandbox = Sandbox::start().await.unwrap();
    let id = sandbox.spreadsheet_id().to_owned();
    for sheet in sheets {
        sandbox.add_sheet(&id, sheet);
    }
    let client = fast_builder(&sandbox).build_client().unwrap();
    (sandbox, client)
}

fn one(text: &str) -> Vec<Vec<Cell>> {
    vec![vec![Cell::from(text)]]
}

#[tokio::test(start_paused = true)]
async fn a_write_past_ten_million_cells_is_refused_and_changes_nothing() {
    let (_sandbox, client) = with_sheets(["Orders", "Refunds"]).await;

    // The other sheets' 1000 × 26 grids (`Sheet1`, which every sandbox starts with, and
    // `Refunds`) count too: Orders may reach only 2000 rows short of LAST_ROW.
    let orders_last = LAST_ROW - 2000;
    let e = client
        .update(&A1Range::cell("Orders", 0, orders_last + 1), &one("x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(e.code(), Some("INVALID_ARGUMENT"), "{e}");
    assert!(e.to_string().contains(LIMIT), "{e}");
    client
        .update(&A1Range::cell("Orders", 0, orders_last), &one("last"))
        .await
        .unwrap();

    // A wider row grows every row of the grid: refused, as is an append of one more row.
    let e = client
        .update(&A1Range::cell("Orders", 26, 1), &one("wide"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains(LIMIT), "{e}");
    let e = client
        .append(&A1Range::columns("Orders", 0, 1), &one("next"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains(LIMIT), "{e}");
    let refused = client
        .get(&A1Range::area(
            "Orders",
            0,
            orders_last,
            26,
            orders_last + 1,
        ))
        .await
        .unwrap();
    assert_eq!(refused.values, [vec![Cell::from("last")]]);

    // Within the grid it has, a sheet at the limit still takes writes.
    client
        .update(&A1Range::cell("Orders", 25, 2), &one("inside"))
        .await
        .unwrap();
    client
        .update(&A1Range::cell("Refunds", 25, 1000), &one("inside"))
        .await
        .unwrap();

    // A batch whose writes fit one by one but not together writes none of them.
    let e = client
        .batch_update(&[
            (A1Range::cell("Refunds", 0, 1), one("fits")),
            (A1Range::cell("Refunds", 0, 1001), one("over")),
        ])
        .await
        .unwrap_err();
    assert!(e.to_string().contains(LIMIT), "{e}");
    let first = client.get(&A1Range::cell("Refunds", 0, 1)).await.unwrap();
    assert!(first.values.is_empty(), "{first:?}");
}

#[tokio::test(start_paused = true)]
async fn a_batch_of_writes_that_together_pass_the_limit_is_refused_whole() {
    let (_sandbox, client) = with_sheets(["A", "B"]).await;
    // Each sheet to 200,000 rows of 26 columns alone fits (5.2 M + 2 × 26,000); both do not.
    let half = 200_000;
    let e = client
        .batch_update(&[
            (A1Range::cell("A", 0, half), one("a")),
            (A1Range::cell("B", 0, half), one("b")),
        ])
        .await
        .unwrap_err();
    assert!(e.to_string().contains(LIMIT), "{e}");
    for sheet in ["A", "B"] {
        let cell = client.get(&A1Range::cell(sheet, 0, half)).await.unwrap();
        assert!(cell.values.is_empty(), "{sheet}: {cell:?}");
    }
    client
        .batch_update(&[
            (A1Range::cell("A", 0, half), one("a")),
            (A1Range::cell("A", 1, half), one("a2")),
        ])
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_cell_over_fifty_thousand_characters_is_refused_and_changes_nothing() {
    const TOO_LONG: &str = "more than the maximum of 50000 characters in a single cell";
    let (_sandbox, client) = with_sheets(["Orders", "Refunds"]).await;
    // Characters count, not bytes: 50,000 two-byte characters fit.
    let at_limit = "é".repeat(50_000);
    client
        .update(&A1Range::cell("Orders", 0, 1), &one(&at_limit))
        .await
        .unwrap();
    let over = "x".repeat(50_001);
    let row = vec![vec![Cell::from("fits"), Cell::from(over.as_str())]];
    let refusals = [
        client
            .update(&A1Range::cell("Orders", 0, 2), &row)
            .await
            .map(|_| ()),
        client
            .append(&A1Range::columns("Orders", 0, 1), &row)
            .await
            .map(|_| ()),
        client
            .batch_update(&[
                (A1Range::cell("Refunds", 0, 1), one("fits")),
                (A1Range::cell("Refunds", 0, 2), one(&over)),
            ])
            .await
            .map(|_| ()),
    ];
    for e in refusals {
        let e = e.unwrap_err();
        assert_eq!(e.code(), Some("INVALID_ARGUMENT"), "{e}");
        assert!(e.to_string().contains(TOO_LONG), "{e}");
    }
    let orders = client
        .get(&A1Range::area("Orders", 0, 1, 1, 3))
        .await
        .unwrap();
    assert_eq!(orders.values, [vec![Cell::from(at_limit.as_str())]]);
    let refunds = client
        .get(&A1Range::columns("Refunds", 0, 1))
        .await
        .unwrap();
    assert!(refunds.values.is_empty(), "{refunds:?}");
}
