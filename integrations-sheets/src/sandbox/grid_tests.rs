//! Tests of the sandbox grid (`grid.rs`).
use super::*;
use serde_json::json;

fn b(s: &str) -> Bounds {
    write_bounds(&A1Range::parse(s).unwrap())
}

fn rows(v: Value) -> Vec<Vec<Value>> {
    serde_json::from_value(v).unwrap()
}

#[test]
fn append_finds_the_table_and_inserts_after_it() {
    let mut s = Sheet::new("S");
    let first = s
        .append(
            &b("A1"),
            &rows(json!([["k1", 1], ["k2", 2]])),
            InputOption::Raw,
            true,
            0,
        )
        .unwrap();
    assert_eq!(first.table, None);
    assert_eq!(first.written.area.unwrap().render("S"), "S!A1:B2");
    assert_eq!(first.written.cells, 4);
    let second = s
        .append(
            &b("A1"),
            &rows(json!([["k3", 3, true]])),
            InputOption::Raw,
            true,
            0,
        )
        .unwrap();
    assert_eq!(second.table.unwrap().render("S"), "S!A1:B2");
    assert_eq!(second.written.area.unwrap().render("S"), "S!A3:C3");
    assert_eq!(
        s.snapshot(),
        vec![vec!["k1", "1"], vec!["k2", "2"], vec!["k3", "3", "TRUE"]]
    );
}

#[test]
fn insert_rows_shifts_what_lies_below_the_table() {
    let mut s = Sheet::new("S");
    s.write(&b("A1"), &rows(json!([["h"]])), InputOption::Raw, "A1")
        .unwrap();
    s.write(&b("A4"), &rows(json!([["footer"]])), InputOption::Raw, "A4")
        .unwrap();
    let a = s
        .append(
            &b("A1"),
            &rows(json!([["x"], ["y"]])),
            InputOption::Raw,
            true,
            0,
        )
        .unwrap();
    assert_eq!(a.written.area.unwrap().render("S"), "S!A2:A3");
    assert_eq!(s.snapshot()[5], vec!["footer"]);
    let mut o = Sheet::new("S");
    o.write(&b("A1"), &rows(json!([["h"]])), InputOption::Raw, "A1")
        .unwrap();
    o.write(&b("A3"), &rows(json!([["below"]])), InputOption::Raw, "A3")
        .unwrap();
    o.append(
        &b("A1"),
        &rows(json!([["x"], ["y"]])),
        InputOption::Raw,
        false,
        0,
    )
    .unwrap();
    assert_eq!(o.snapshot(), vec![vec!["h"], vec!["x"], vec!["y"]]);
}

#[test]
fn writes_past_the_grid_limit_are_refused_not_allocated() {
    let mut s = Sheet::new("S");
    let far = A1Range::parse("S!A999999").unwrap();
    let e = s
        .write(
            &write_bounds(&far),
            &rows(json!([["a"], ["b"], ["c"]])),
            InputOption::Raw,
            "S!A999999",
        )
        .unwrap_err();
    assert!(e.0.contains("exceeds grid limits"), "{e:?}");
    let top = A1Range::parse("S!A4294967295").unwrap();
    assert!(
        s.write(
            &write_bounds(&top),
            &rows(json!([["a"]])),
            InputOption::Raw,
            "x"
        )
        .is_err()
    );
    assert!(s.snapshot().is_empty());
    let three = rows(json!([["a"], ["b"], ["c"]]));
    assert!(
        s.append(&write_bounds(&far), &three, InputOption::Raw, true, 0)
            .is_err()
    );
    assert!(s.snapshot().is_empty());
}

#[test]
fn reads_drop_trailing_empties_and_render() {
    let mut s = Sheet::new("S");
    s.write(
        &b("A1"),
        &rows(json!([["a", "", 5], [], ["c"]])),
        InputOption::UserEntered,
        "A1",
    )
    .unwrap();
    s.write(
        &b("A2"),
        &rows(json!([[null, "=SUM(1)"]])),
        InputOption::UserEntered,
        "A2",
    )
    .unwrap();
    let area = s.clip(&A1Range::parse("A:A").unwrap().bounds());
    assert_eq!(area.last_row, 1000);
    assert_eq!(
        s.read(&area, RenderOption::Formatted),
        rows(json!([["a"], [], ["c"]]))
    );
    let all = s.clip(&A1Range::parse("A1:C3").unwrap().bounds());
    assert_eq!(
        s.read(&all, RenderOption::Unformatted),
        rows(json!([["a", "", 5], ["", "=SUM(1)"], ["c"]]))
    );
    assert!(
        s.read(
            &s.clip(&A1Range::parse("D1:D9").unwrap().bounds()),
            RenderOption::Formatted
        )
        .is_empty()
    );
}

/// A `values.get` answers from [`Sheet::view`]: it must serialize exactly as the rows
/// [`Sheet::read`] returns, for every kind of cell, both renderings and any area.
#[test]
fn a_view_serializes_as_the_rows_read_returns() {
    // In memory, and with all but one row in the sheet's file.
    for spill in [None, Some(spill(1))] {
        a_view_serializes_as_the_rows_read_returns_of(Sheet::spilling("S", spill));
    }
}

fn spill(resident_rows: usize) -> SpillConfig {
    SpillConfig {
        resident_rows,
        dir: None,
    }
}

fn a_view_serializes_as_the_rows_read_returns_of(mut s: Sheet) {
    s.write(
        &b("A1"),
        &rows(json!([
            ["key", "", true, 5, 2.5, "=SUM(1)"],
            [],
            [null, null, false, -7, 18446744073709551615u64, "TRUE"],
            ["", "", ""],
            ["c", "'012", 0.1, "1e3"],
            [],
            [null]
        ])),
        InputOption::UserEntered,
        "A1",
    )
    .unwrap();
    s.write(&b("H9"), &rows(json!([["far"]])), InputOption::Raw, "H9")
        .unwrap();
    let ranges = [
        "A:A", "A1:F7", "B:C", "C3:E5", "A2:A2", "D1:D9", "G1:G20", "A4:C4", "S", "H:H", "A8:Z20",
        "B1:F",
    ];
    for text in ranges {
        let range = A1Range::parse(&format!("S!{text}"))
            .or_else(|_| A1Range::parse(text))
            .unwrap();
        let area = s.clip(&range.bounds());
        for option in [RenderOption::Formatted, RenderOption::Unformatted] {
            let read = Value::from(s.read(&area, option));
            let view = s.view(&area, option);
            let rows = view.len();
            assert_eq!(
                serde_json::to_value(&view).unwrap(),
                read,
                "{text} {option:?}"
            );
            assert_eq!(rows, read.as_array().unwrap().len(), "{text}");
            // By columns: the rows read, turned (a cell past a shorter row's end is ""),
            // each column cut after its last non-empty cell.
            let read = s.read(&area, option);
            let width = read.iter().map(Vec::len).max().unwrap_or(0);
            let want: Vec<Vec<Value>> = (0..width)
                .map(|c| {
                    let mut col: Vec<Value> = read
                        .iter()
                        .map(|row| row.get(c).cloned().unwrap_or_else(|| json!("")))
                        .collect();
                    while col.last().is_some_and(|v| v == "") {
                        col.pop();
                    }
                    col
                })
                .collect();
            let columns = s.view(&area, option).columns();
            assert_eq!(columns.len(), want.len(), "{text} by columns");
            assert_eq!(
                serde_json::to_value(&columns).unwrap(),
                Value::from(want),
                "{text} {option:?} by columns"
            );
        }
    }
}

#[test]
fn user_entered_parses_numbers_and_booleans() {
    assert_eq!(store(&json!("42"), InputOption::UserEntered), json!(42));
    assert_eq!(store(&json!("4.5"), InputOption::UserEntered), json!(4.5));
    assert_eq!(store(&json!("true"), InputOption::UserEntered), json!(true));
    assert_eq!(store(&json!("'42"), InputOption::UserEntered), json!("42"));
    assert_eq!(store(&json!("42"), InputOption::Raw), json!("42"));
    assert_eq!(store(&json!(""), InputOption::Raw), Value::Null);
}

#[test]
fn writes_outside_a_closed_range_are_refused() {
    let mut s = Sheet::new("S");
    let e = s
        .write(
            &b("A1:B1"),
            &rows(json!([["a"], ["b"]])),
            InputOption::Raw,
            "S!A1:B1",
        )
        .unwrap_err();
    assert!(e.0.contains("tried writing to row [2]"), "{e:?}");
    let e = s
        .write(
            &b("A1:B1"),
            &rows(json!([["a", "b", "c"]])),
            InputOption::Raw,
            "S!A1:B1",
        )
        .unwrap_err();
    assert!(e.0.contains("column [C]"), "{e:?}");
    assert!(s.snapshot().is_empty());
}

/// A cell for the sequences below: empty (`null`, left as it is), an empty string, or text.
fn cell() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    prop_oneof![
        2 => Just(Value::Null),
        1 => Just(json!("")),
        4 => "[a-c]{1,2}".prop_map(Value::from),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Write {
        row: u32,
        column: u32,
        values: Vec<Vec<Value>>,
    },
    Append {
        range: Bounds,
        values: Vec<Vec<Value>>,
        insert: bool,
    },
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    let values = || prop::collection::vec(prop::collection::vec(cell(), 0..4), 0..4);
    prop_oneof![
        1 => (1u32..10, 0u32..4, values())
            .prop_map(|(row, column, values)| Op::Write { row, column, values }),
        // A few ranges, so that appends to the same one follow each other (and start from
        // the table the last one kept) as often as appends to another.
        3 => (
            prop::sample::select(vec!["A1", "A3", "A2:B", "B1:C9", "A4:A5"]),
            values(),
            any::<bool>(),
        )
            .prop_map(|(range, values, insert)| Op::Append {
                range: A1Range::parse(range).unwrap().bounds(),
                values,
                insert,
            }),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// Appends that start from the table the last append kept answer and write exactly what
    /// appends that scan the sheet do, whatever writes and appends came before; the widest row
    /// kept is the widest there is.
    #[test]
    fn a_kept_table_answers_as_a_scan_does(ops in proptest::collection::vec(op(), 1..40)) {
        let mut kept = Sheet::new("S");
        let mut scanned = Sheet::new("S");
        // The same sheet with all but two rows in its file.
        let mut spilled = Sheet::spilling("S", Some(spill(2)));
        for op in ops {
            match op {
                Op::Write { row, column, values } => {
                    let at = Bounds { first_row: row, last_row: None, first_column: column, last_column: None };
                    let a = kept.write(&at, &values, InputOption::Raw, "");
                    let b = scanned.write(&at, &values, InputOption::Raw, "");
                    let c = spilled.write(&at, &values, InputOption::Raw, "");
                    proptest::prop_assert_eq!(&a, &b);
                    proptest::prop_assert_eq!(a, c);
                }
                Op::Append { range, values, insert } => {
                    scanned.last_table = None;
                    let a = kept.append(&range, &values, InputOption::Raw, insert, 0);
                    let b = scanned.append(&range, &values, InputOption::Raw, insert, 0);
                    let c = spilled.append(&range, &values, InputOption::Raw, insert, 0);
                    proptest::prop_assert_eq!(&a, &b, "append to {:?}", range);
                    proptest::prop_assert_eq!(a, c, "append to {:?}, spilled", range);
                }
            }
            proptest::prop_assert_eq!(kept.snapshot(), scanned.snapshot());
            proptest::prop_assert_eq!(kept.snapshot(), spilled.snapshot());
            let widest = (0..kept.rows.len())
                .map(|i| kept.rows.get(i).unwrap().len() as u32)
                .max()
                .unwrap_or(0);
            proptest::prop_assert_eq!(kept.widest, widest);
            proptest::prop_assert_eq!(spilled.widest, widest);
            for text in ["A:A", "A2:C", "B3:D9"] {
                let area = kept.clip(&A1Range::parse(text).unwrap().bounds());
                for option in [RenderOption::Formatted, RenderOption::Unformatted] {
                    let here = serde_json::to_value(kept.view(&area, option)).unwrap();
                    let there = serde_json::to_value(spilled.view(&area, option)).unwrap();
                    proptest::prop_assert_eq!(here, there, "{} rows", text);
                    let here = serde_json::to_value(kept.view(&area, option).columns()).unwrap();
                    let there =
                        serde_json::to_value(spilled.view(&area, option).columns()).unwrap();
                    proptest::prop_assert_eq!(here, there, "{} columns", text);
                }
            }
        }
    }
}

/// A table in rows 1-3 of column A and a row of its own at row 5.
fn table_and_a_row_below() -> Sheet {
    let mut s = Sheet::new("S");
    s.write(
        &b("A1"),
        &rows(json!([["h"], ["x"], ["below"]])),
        InputOption::Raw,
        "A1",
    )
    .unwrap();
    s.write(&b("A5"), &rows(json!([["far"]])), InputOption::Raw, "A5")
        .unwrap();
    s
}

#[test]
fn an_append_refused_for_its_width_inserts_nothing() {
    let mut s = table_and_a_row_below();
    let before = s.snapshot();
    let too_wide = vec![vec![json!("v"); MAX_COLUMN as usize + 2]];
    let refused = s.append(&b("A1"), &too_wide, InputOption::Raw, true, 0);
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(s.snapshot(), before);
}

#[test]
fn an_append_past_the_cell_limit_inserts_nothing() {
    let mut s = table_and_a_row_below();
    let before = s.snapshot();
    // The other sheets leave this one its 1000 × 26 grid and not a cell more.
    let others = MAX_CELLS - 1000 * 26;
    let full = |n| vec![vec![json!("v")]; n];
    // The table is rows 1-3; the insert moves `far` from row 5 down by as many rows as come.
    let refused = s.append(&b("A1"), &full(996), InputOption::Raw, true, others);
    assert_eq!(refused.unwrap_err(), over_cell_limit());
    assert_eq!(s.snapshot(), before);
    // 995 take the grid to exactly 1000 rows.
    s.append(&b("A1"), &full(995), InputOption::Raw, true, others)
        .unwrap();
    assert_eq!(s.grid(), (1000, 26));
    let wider = vec![vec![json!("v"); 27]];
    let refused = s.append(&b("A1"), &wider, InputOption::Raw, false, 0);
    assert!(refused.is_ok(), "no other sheets: {refused:?}");
}

#[test]
fn an_array_or_object_counts_as_the_json_text_the_cell_would_hold() {
    // `["…"]`: the text and four characters of JSON around it.
    let array = |n: usize| vec![vec![json!(["x".repeat(n)])]];
    assert!(check_write(&b("A1"), &array(MAX_CELL_CHARS - 4), "A1").is_ok());
    let e = check_write(&b("A1"), &array(MAX_CELL_CHARS - 3), "A1").unwrap_err();
    assert!(e.0.contains("maximum of 50000 characters"), "{e:?}");
    let object = vec![vec![json!({ "k": "é".repeat(MAX_CELL_CHARS) })]];
    assert!(check_write(&b("A1"), &object, "A1").is_err());
    let number = vec![vec![json!(u64::MAX), json!(true), Value::Null]];
    assert!(check_write(&b("A1"), &number, "A1").is_ok());
}
